//! The target objects of a tracked table besides its columns: keys and indexes created and
//! dropped as the model gains or loses them, and the `ON UPDATE CURRENT_TIMESTAMP` trigger
//! planned again when the columns change. Each is planned by the schema planner on a
//! variant of the table holding just that object, against the names already taken.

use dts_core::{Table, TableName};

use crate::ident::{quote_ident, quote_qualified};
use crate::plan::StatementKind;

use super::key::ParsedKey;
use super::model::{add_key, foreign_key_pos, index_pos, Added};
use super::state::{problems, State};
use super::{Fail, Out, SourceFlavor};

/// The table without keys, to plan its columns (or one key added back) alone.
pub(super) fn bare(table: &Table) -> Table {
    Table {
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        ..table.clone()
    }
}

/// Adds a key to a tracked table and creates it in the target; `Ok(false)` when nothing
/// changed (a check constraint, or `IF NOT EXISTS` and the key exists).
pub(super) fn add_key_to(
    state: &mut State,
    table: &TableName,
    key: ParsedKey,
    flavor: SourceFlavor,
    if_not_exists: bool,
    out: &mut Out,
) -> Result<bool, Fail> {
    let mut notes = Vec::new();
    let mut generated = state.generated.remove(table).unwrap_or_default();
    let added = add_key(
        state.table_mut(table)?,
        &mut generated,
        key.spec,
        flavor,
        if_not_exists || key.if_not_exists,
        &mut notes,
    );
    state.generated.insert(table.clone(), generated);
    let added = added?;
    for n in notes {
        if !out.notes.contains(&n) {
            out.notes.push(n);
        }
    }
    let removed = match &added {
        Added::Primary { removed }
        | Added::Index { removed, .. }
        | Added::Foreign { removed, .. } => removed.clone(),
        Added::Nothing => return Ok(false),
    };
    // The generated indexes the new key replaces.
    let target = state.target(table);
    for index in removed {
        if let Some(n) = state
            .objects
            .get_mut(table)
            .and_then(|o| o.indexes.remove(&index))
        {
            out.statements.push(format!(
                "DROP INDEX IF EXISTS {}",
                quote_qualified(&target.schema, &n)
            ));
            state.taken.relations_in(&target.schema).release(&n);
        }
    }
    match added {
        Added::Primary { .. } => create_primary_key(state, table, out)?,
        Added::Index { name, .. } => create_index(state, table, &name, out)?,
        Added::Foreign { name, index, .. } => {
            if let Some(index) = index {
                create_index(state, table, &index, out)?;
            }
            create(state, table, Object::ForeignKey(&name), out)?;
        }
        Added::Nothing => {}
    }
    Ok(true)
}

/// A key or index of a tracked table's model, created in the target on its own.
#[derive(Debug, Clone, Copy)]
enum Object<'a> {
    PrimaryKey,
    /// An index, by source name.
    Index(&'a str),
    /// A foreign key, by source name.
    ForeignKey(&'a str),
}

/// Creates an index of the model in the target.
pub(super) fn create_index(
    state: &mut State,
    table: &TableName,
    name: &str,
    out: &mut Out,
) -> Result<(), Fail> {
    create(state, table, Object::Index(name), out)
}

/// Creates the model's primary key in the target.
pub(super) fn create_primary_key(
    state: &mut State,
    table: &TableName,
    out: &mut Out,
) -> Result<(), Fail> {
    create(state, table, Object::PrimaryKey, out)
}

/// Creates one key or index of the model in the target: the planner plans a [`bare`] copy
/// of the table holding just that object, against the names already taken; its problems
/// about the object are passed on, its statements added to `out` and the name it chose
/// taken.
fn create(
    state: &mut State,
    table: &TableName,
    object: Object<'_>,
    out: &mut Out,
) -> Result<(), Fail> {
    let t = state.table(table)?;
    let mut opts = state.opts.clone();
    let mut variant = bare(t);
    // The source name, how messages call the object, and the statements that create it.
    let (name, label, kinds): (String, String, &[StatementKind]) = match object {
        Object::PrimaryKey => {
            opts.primary_keys_after_data = true;
            variant.primary_key = t.primary_key.clone();
            (
                String::new(),
                "primary key".into(),
                &[StatementKind::PrimaryKey],
            )
        }
        Object::Index(name) => {
            let index = index_pos(t, name)
                .map(|i| t.indexes[i].clone())
                .ok_or_else(|| Fail::Unsupported(format!("unknown index `{name}` of `{table}`")))?;
            let name = index.name.clone();
            variant.indexes = vec![index];
            let label = format!("index `{name}` of `{table}`");
            (
                name,
                label,
                &[StatementKind::Index, StatementKind::UniqueIndex],
            )
        }
        Object::ForeignKey(name) => {
            let fk = foreign_key_pos(t, name)
                .map(|i| t.foreign_keys[i].clone())
                .ok_or_else(|| {
                    Fail::Unsupported(format!("unknown foreign key `{name}` of `{table}`"))
                })?;
            let name = fk.name.clone();
            variant.foreign_keys = vec![fk];
            let label = format!("foreign key `{name}` of `{table}`");
            (name, label, &[StatementKind::ForeignKey])
        }
    };
    let planned = state.plan_variant(variant, &opts, state.taken.clone());
    let source = match object {
        Object::PrimaryKey => table.to_string(),
        _ => format!("{table}.{name}"),
    };
    problems(
        &planned.plan,
        |p| match object {
            Object::PrimaryKey => p.object == source && p.message.contains(&label),
            _ => p.object == source || p.message.contains(&label),
        },
        out,
    )?;
    out.statements.extend(
        planned
            .plan
            .post_data
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .map(|s| s.sql.clone()),
    );
    let Some(named) = planned.objects.get(table) else {
        return Ok(());
    };
    let target = state.target(table);
    let objects = state.objects.entry(table.clone());
    match object {
        Object::PrimaryKey => {
            if let Some(n) = &named.pkey {
                state.taken.relations_in(&target.schema).reserve(n);
                state.taken.constraints_of(&target).reserve(n);
                objects.or_default().pkey = Some(n.clone());
            }
        }
        Object::Index(_) => {
            if let Some(n) = named.indexes.get(&name) {
                state.taken.relations_in(&target.schema).reserve(n);
                objects.or_default().indexes.insert(name, n.clone());
            }
        }
        Object::ForeignKey(_) => {
            if let Some(n) = named.foreign_keys.get(&name) {
                state.taken.constraints_of(&target).reserve(n);
                objects.or_default().foreign_keys.insert(name, n.clone());
            }
        }
    }
    Ok(())
}

pub(super) fn drop_primary_key(
    state: &mut State,
    table: &TableName,
    out: &mut Out,
) -> Result<(), Fail> {
    state.table_mut(table)?.primary_key = None;
    let target = state.target(table);
    let qualified = state.qualified(table);
    if let Some(n) = state.objects.get_mut(table).and_then(|o| o.pkey.take()) {
        out.statements.push(format!(
            "ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {}",
            quote_ident(&n)
        ));
        state.taken.relations_in(&target.schema).release(&n);
        state.taken.constraints_of(&target).release(&n);
    }
    Ok(())
}

/// Drops an index (or, named `PRIMARY`, the primary key).
pub(super) fn drop_index(
    state: &mut State,
    table: &TableName,
    name: &str,
    out: &mut Out,
) -> Result<(), Fail> {
    if name.eq_ignore_ascii_case("PRIMARY") {
        return drop_primary_key(state, table, out);
    }
    let t = state.table_mut(table)?;
    let pos = index_pos(t, name)
        .ok_or_else(|| Fail::Unsupported(format!("unknown index `{name}` of `{table}`")))?;
    let index = t.indexes.remove(pos);
    if let Some(g) = state.generated.get_mut(table) {
        g.remove(&index.name);
    }
    let target = state.target(table);
    if let Some(n) = state
        .objects
        .get_mut(table)
        .and_then(|o| o.indexes.remove(&index.name))
    {
        out.statements.push(format!(
            "DROP INDEX IF EXISTS {}",
            quote_qualified(&target.schema, &n)
        ));
        state.taken.relations_in(&target.schema).release(&n);
    }
    Ok(())
}

pub(super) fn drop_foreign_key(
    state: &mut State,
    table: &TableName,
    name: &str,
    out: &mut Out,
) -> Result<(), Fail> {
    let t = state.table_mut(table)?;
    let Some(pos) = foreign_key_pos(t, name) else {
        return Ok(());
    };
    let fk = t.foreign_keys.remove(pos);
    let target = state.target(table);
    let qualified = state.qualified(table);
    if let Some(n) = state
        .objects
        .get_mut(table)
        .and_then(|o| o.foreign_keys.remove(&fk.name))
    {
        out.statements.push(format!(
            "ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {}",
            quote_ident(&n)
        ));
        state.taken.constraints_of(&target).release(&n);
    }
    Ok(())
}

/// A trigger's function and trigger names, and its statements.
type PlannedTrigger = (Option<(String, String)>, Vec<String>);

/// The `ON UPDATE CURRENT_TIMESTAMP` trigger the table's columns call for: its function and
/// trigger names and statements (planned with the table's own function name free).
pub(super) fn planned_trigger(
    state: &State,
    table: &TableName,
    out: &mut Out,
) -> Result<PlannedTrigger, Fail> {
    let target = state.target(table);
    let mut taken = state.taken.clone();
    if let Some((f, _)) = state.objects.get(table).and_then(|o| o.trigger.as_ref()) {
        taken.functions_in(&target.schema).release(f);
    }
    let planned = state.plan_variant(bare(state.table(table)?), &state.opts, taken);
    let source = table.to_string();
    problems(
        &planned.plan,
        |p| p.object.starts_with(&source) && p.message.contains("on update current_timestamp"),
        out,
    )?;
    let names = planned.objects.get(table).and_then(|o| o.trigger.clone());
    let sql = planned
        .plan
        .post_data
        .iter()
        .filter(|s| s.kind == StatementKind::Trigger)
        .map(|s| s.sql.clone())
        .collect();
    Ok((names, sql))
}

/// Plans the `ON UPDATE CURRENT_TIMESTAMP` trigger of a table again after its columns
/// changed: replaced when its statements differ from `before` (the trigger before the
/// change), dropped when no such column is left, and the old one dropped when the new one
/// has another name (the table was renamed since).
pub(super) fn refresh_trigger(
    state: &mut State,
    table: &TableName,
    before: Option<&[String]>,
    out: &mut Out,
) -> Result<(), Fail> {
    let target = state.target(table);
    let old = state.objects.get(table).and_then(|o| o.trigger.clone());
    let (new, sql) = planned_trigger(state, table, out)?;
    if old.is_none() && new.is_none() {
        return Ok(());
    }
    if old == new && before == Some(sql.as_slice()) {
        return Ok(());
    }
    let qualified = state.qualified(table);
    if let Some((function, trigger)) = &old {
        if new.as_ref() != old.as_ref() {
            out.statements.push(format!(
                "DROP TRIGGER IF EXISTS {} ON {qualified}",
                quote_ident(trigger)
            ));
            out.statements.push(format!(
                "DROP FUNCTION IF EXISTS {}()",
                quote_qualified(&target.schema, function)
            ));
        }
        state.taken.functions_in(&target.schema).release(function);
    }
    out.statements.extend(sql);
    if let Some((function, _)) = &new {
        state.taken.functions_in(&target.schema).reserve(function);
    }
    state.objects.entry(table.clone()).or_default().trigger = new;
    Ok(())
}
