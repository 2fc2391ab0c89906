//! Changes to one table of the schema model, following the source's own rules: generated
//! key names, the index a foreign key creates, what dropping or renaming a column does to
//! the keys that use it.

use std::collections::BTreeSet;

use dts_core::{Column, ForeignKey, Index, IndexColumn, IndexKind, Key, Table};

use super::key::KeySpec;
use super::{Fail, SourceFlavor};

/// The position of `name` among `names`: the exact spelling first, else ignoring ASCII
/// case (MySQL column, index and foreign key names are case-insensitive).
fn name_pos<'a>(names: impl Iterator<Item = &'a str> + Clone, name: &str) -> Option<usize> {
    names
        .clone()
        .position(|n| n == name)
        .or_else(|| names.into_iter().position(|n| n.eq_ignore_ascii_case(name)))
}

/// The position of a column.
pub(super) fn column_pos(table: &Table, name: &str) -> Option<usize> {
    name_pos(table.columns.iter().map(|c| c.name.as_str()), name)
}

/// The column's name as the table spells it.
pub(super) fn column_name(table: &Table, name: &str) -> Result<String, Fail> {
    column_pos(table, name)
        .map(|i| table.columns[i].name.clone())
        .ok_or_else(|| Fail::Unsupported(format!("unknown column `{name}` of `{}`", table.name)))
}

/// Sets the 1-based ordinals after columns moved.
pub(super) fn renumber(table: &mut Table) {
    for (i, c) in table.columns.iter_mut().enumerate() {
        c.ordinal = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
}

/// The position of an index by name.
pub(super) fn index_pos(table: &Table, name: &str) -> Option<usize> {
    name_pos(table.indexes.iter().map(|i| i.name.as_str()), name)
}

/// The position of a foreign key by name.
pub(super) fn foreign_key_pos(table: &Table, name: &str) -> Option<usize> {
    name_pos(table.foreign_keys.iter().map(|f| f.name.as_str()), name)
}

fn index_name_taken(table: &Table, name: &str) -> bool {
    name.eq_ignore_ascii_case("PRIMARY") || index_pos(table, name).is_some()
}

/// A free index name: `base`, else `base_2`, `base_3`, … (MySQL's rule for unnamed keys).
pub(super) fn free_index_name(table: &Table, base: &str) -> String {
    if !index_name_taken(table, base) {
        return base.to_string();
    }
    (2u32..)
        .map(|n| format!("{base}_{n}"))
        .find(|name| !index_name_taken(table, name))
        .unwrap_or_else(|| base.to_string())
}

/// `{table}_ibfk_{n}`, past the highest `n` in use.
fn next_foreign_key_name(table: &Table) -> String {
    let prefix = format!("{}_ibfk_", table.name.name);
    let highest = table
        .foreign_keys
        .iter()
        .filter_map(|f| f.name.strip_prefix(&prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("{prefix}{}", highest + 1)
}

/// Whether key part list `a` is a prefix of `b`.
fn is_prefix(a: &[IndexColumn], b: &[IndexColumn]) -> bool {
    a.len() <= b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name.eq_ignore_ascii_case(&y.name) && x.prefix_length == y.prefix_length
        })
}

fn key_parts(columns: &[String]) -> Vec<IndexColumn> {
    columns
        .iter()
        .map(|c| IndexColumn {
            name: c.clone(),
            prefix_length: None,
            descending: false,
        })
        .collect()
}

/// The source's rule for the indexes it generates for foreign keys, applied as a key with
/// parts `new` joins the table: a generated index that is a prefix of another key is
/// redundant. Returns whether the new key is kept (a generated one is not when an existing
/// key covers it) and the existing generated index it replaces, now removed.
fn merge_generated(
    table: &mut Table,
    generated: &mut BTreeSet<String>,
    new: &[IndexColumn],
    new_generated: bool,
) -> (bool, Vec<String>) {
    let mut existing: Vec<(Option<usize>, Vec<IndexColumn>, bool)> = Vec::new();
    if let Some(pk) = &table.primary_key {
        existing.push((None, key_parts(&pk.columns), false));
    }
    for (i, index) in table.indexes.iter().enumerate() {
        if index.kind == IndexKind::BTree {
            existing.push((
                Some(i),
                index.columns.clone(),
                generated.contains(&index.name),
            ));
        }
    }
    for (pos, parts, existing_generated) in existing {
        if !existing_generated && !new_generated {
            continue;
        }
        let related = match (new_generated, existing_generated) {
            (true, true) if new.len() > parts.len() => is_prefix(&parts, new),
            (true, _) => is_prefix(new, &parts),
            (false, _) => is_prefix(&parts, new),
        };
        if !related {
            continue;
        }
        if !existing_generated || (new_generated && new.len() < parts.len()) {
            return (false, Vec::new());
        }
        let Some(i) = pos else {
            return (false, Vec::new());
        };
        let name = table.indexes.remove(i).name;
        generated.remove(&name);
        return (true, vec![name]);
    }
    (true, Vec::new())
}

/// What a key definition added to the table, and the generated indexes it made redundant
/// (removed from the model; the target must drop them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Added {
    Primary {
        removed: Vec<String>,
    },
    /// An index, by name.
    Index {
        name: String,
        removed: Vec<String>,
    },
    /// A foreign key, by name, and the index the source generated for it.
    Foreign {
        name: String,
        index: Option<String>,
        removed: Vec<String>,
    },
    /// A check constraint (not part of the model), or nothing because the key exists.
    Nothing,
}

/// Adds a key to the table as the source would. `generated` names the table's indexes the
/// source generated for foreign keys; `if_not_exists` skips keys whose name is taken.
pub(super) fn add_key(
    table: &mut Table,
    generated: &mut BTreeSet<String>,
    key: KeySpec,
    flavor: SourceFlavor,
    if_not_exists: bool,
    notes: &mut Vec<String>,
) -> Result<Added, Fail> {
    let t = table.name.clone();
    match key {
        KeySpec::Primary(columns) => {
            if table.primary_key.is_some() {
                if if_not_exists {
                    return Ok(Added::Nothing);
                }
                return Err(Fail::Unsupported(format!("a second primary key for `{t}`")));
            }
            let columns = columns
                .iter()
                .map(|c| column_name(table, c))
                .collect::<Result<Vec<_>, _>>()?;
            for c in &columns {
                if let Some(i) = column_pos(table, c) {
                    table.columns[i].nullable = false;
                }
            }
            let (_, removed) = merge_generated(table, generated, &key_parts(&columns), false);
            table.primary_key = Some(Key {
                name: Some("PRIMARY".into()),
                columns,
            });
            Ok(Added::Primary { removed })
        }
        KeySpec::Index { name, mut index } => {
            for c in &mut index.columns {
                c.name = column_name(table, &c.name)?;
            }
            let Some(first) = index.columns.first().map(|c| c.name.clone()) else {
                return Err(Fail::Parse(format!("an index of `{t}` without columns")));
            };
            if let Some(n) = name.as_ref().filter(|n| index_name_taken(table, n)) {
                if if_not_exists {
                    return Ok(Added::Nothing);
                }
                return Err(Fail::Unsupported(format!(
                    "index `{n}` already exists on `{t}`"
                )));
            }
            // A generated index the new one replaces goes first: its name is free again.
            let (_, removed) = merge_generated(table, generated, &index.columns, false);
            index.name = name.unwrap_or_else(|| free_index_name(table, &first));
            let name = index.name.clone();
            table.indexes.push(index);
            Ok(Added::Index { name, removed })
        }
        KeySpec::Foreign {
            constraint,
            index_name,
            mut fk,
        } => {
            fk.columns = fk
                .columns
                .iter()
                .map(|c| column_name(table, c))
                .collect::<Result<Vec<_>, _>>()?;
            let explicit = match flavor {
                // MariaDB names the constraint after `FOREIGN KEY name` too.
                SourceFlavor::MariaDb => constraint.clone().or_else(|| index_name.clone()),
                SourceFlavor::MySql => constraint.clone(),
            };
            if let Some(n) = &explicit {
                if foreign_key_pos(table, n).is_some() {
                    if if_not_exists {
                        return Ok(Added::Nothing);
                    }
                    return Err(Fail::Unsupported(format!(
                        "foreign key `{n}` already exists on `{t}`"
                    )));
                }
            }
            fk.name = explicit.unwrap_or_else(|| next_foreign_key_name(table));
            let mut index = None;
            let parts = key_parts(&fk.columns);
            let (keep, removed) = merge_generated(table, generated, &parts, true);
            if keep {
                let base = index_name
                    .or(constraint)
                    .unwrap_or_else(|| fk.columns[0].clone());
                let name = free_index_name(table, &base);
                table.indexes.push(Index {
                    name: name.clone(),
                    unique: false,
                    kind: IndexKind::BTree,
                    columns: parts,
                });
                generated.insert(name.clone());
                index = Some(name);
            }
            let name = fk.name.clone();
            table.foreign_keys.push(fk);
            Ok(Added::Foreign {
                name,
                index,
                removed,
            })
        }
        KeySpec::Check { json_column } => {
            match json_column.and_then(|c| column_pos(table, &c)) {
                Some(i) => table.columns[i].json_checked = true,
                None => notes.push(format!("check constraints of `{t}` are not migrated")),
            }
            Ok(Added::Nothing)
        }
    }
}

/// Renames a column and every key that uses it; `tables` are the other tables, whose foreign
/// keys referencing the column follow.
pub(super) fn rename_column_refs<'a>(
    table: &mut Table,
    old: &str,
    new: &str,
    others: impl Iterator<Item = &'a mut Table>,
) {
    let same = |n: &str| n.eq_ignore_ascii_case(old);
    if let Some(pk) = &mut table.primary_key {
        for c in &mut pk.columns {
            if same(c) {
                *c = new.to_string();
            }
        }
    }
    for i in &mut table.indexes {
        for c in &mut i.columns {
            if same(&c.name) {
                c.name = new.to_string();
            }
        }
    }
    let name = table.name.clone();
    for fk in &mut table.foreign_keys {
        for c in &mut fk.columns {
            if same(c) {
                *c = new.to_string();
            }
        }
        if fk.referenced_table == name {
            for c in &mut fk.referenced_columns {
                if same(c) {
                    *c = new.to_string();
                }
            }
        }
    }
    for other in others {
        for fk in &mut other.foreign_keys {
            if fk.referenced_table == name {
                for c in &mut fk.referenced_columns {
                    if same(c) {
                        *c = new.to_string();
                    }
                }
            }
        }
    }
}

/// What dropping a column did to the keys.
#[derive(Debug, Default)]
pub(super) struct Dropped {
    /// The primary key lost a column (it is gone if the model has none left).
    pub(super) primary_key: bool,
    /// Indexes that lost a column and remain, by name.
    pub(super) shrunk: Vec<String>,
    /// Indexes that lost their last column, by name.
    pub(super) removed: Vec<String>,
    /// Foreign keys that used the column, by name.
    pub(super) foreign_keys: Vec<String>,
}

/// Removes a column and its uses in keys, as the source does.
pub(super) fn drop_column(table: &mut Table, name: &str) -> Option<(Column, Dropped)> {
    let pos = column_pos(table, name)?;
    let column = table.columns.remove(pos);
    renumber(table);
    let same = |n: &str| n.eq_ignore_ascii_case(&column.name);
    let mut dropped = Dropped::default();
    if let Some(pk) = &mut table.primary_key {
        if pk.columns.iter().any(|c| same(c)) {
            pk.columns.retain(|c| !same(c));
            dropped.primary_key = true;
        }
    }
    if table
        .primary_key
        .as_ref()
        .is_some_and(|pk| pk.columns.is_empty())
    {
        table.primary_key = None;
    }
    for i in &mut table.indexes {
        if i.columns.iter().any(|c| same(&c.name)) {
            i.columns.retain(|c| !same(&c.name));
            if i.columns.is_empty() {
                dropped.removed.push(i.name.clone());
            } else {
                dropped.shrunk.push(i.name.clone());
            }
        }
    }
    table.indexes.retain(|i| !i.columns.is_empty());
    table.foreign_keys.retain(|fk| {
        let uses = fk.columns.iter().any(|c| same(c));
        if uses {
            dropped.foreign_keys.push(fk.name.clone());
        }
        !uses
    });
    Some((column, dropped))
}

/// A copy of `table` for `CREATE TABLE … LIKE`: columns, keys and comment, no foreign keys
/// (the source does not copy them), no auto-increment counter.
pub(super) fn like(table: &Table, name: dts_core::TableName) -> Table {
    Table {
        name,
        columns: table.columns.clone(),
        primary_key: table.primary_key.clone(),
        indexes: table.indexes.clone(),
        foreign_keys: Vec::<ForeignKey>::new(),
        comment: table.comment.clone(),
        estimated_rows: 0,
        auto_increment: None,
    }
}
