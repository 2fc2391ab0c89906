//! The target objects of a tracked table besides its columns: keys and indexes created and
//! dropped as the model gains or loses them, and the `ON UPDATE CURRENT_TIMESTAMP` trigger
//! planned again when the columns change. Each is planned by the schema planner on a
//! variant of the table holding just that object, against the names already taken.

use dts_core::{Table, TableName};

use crate::ddl::TableObjects;
use crate::ident::{quote_ident, quote_qualified};
use crate::plan::{Problem, StatementKind};
use crate::SchemaOptions;

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
            create_foreign_key(state, table, &name, out)?;
        }
        Added::Nothing => {}
    }
    Ok(true)
}

/// Plans `variant` (a [`bare`] copy of `table` holding one object), passes on the problems
/// `concerns` picks and adds the post-data statements of the `kinds` to `out`; returns the
/// target objects the planner named.
fn plan_object(
    state: &State,
    table: &TableName,
    variant: Table,
    opts: &SchemaOptions,
    concerns: impl Fn(&Problem) -> bool,
    kinds: &[StatementKind],
    out: &mut Out,
) -> Result<TableObjects, Fail> {
    let planned = state.plan_variant(variant, opts, state.taken.clone());
    problems(&planned.plan, concerns, out)?;
    out.statements.extend(
        planned
            .plan
            .post_data
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .map(|s| s.sql.clone()),
    );
    Ok(planned.objects.get(table).cloned().unwrap_or_default())
}

/// Picks the planner problems about the `kind` (`index`, `foreign key`) `name` of `table`.
fn about(table: &TableName, kind: &str, name: &str) -> impl Fn(&Problem) -> bool {
    let object = format!("{table}.{name}");
    let label = format!("{kind} `{name}` of `{table}`");
    move |p| p.object == object || p.message.contains(&label)
}

/// Creates an index of the model in the target.
pub(super) fn create_index(
    state: &mut State,
    table: &TableName,
    name: &str,
    out: &mut Out,
) -> Result<(), Fail> {
    let t = state.table(table)?;
    let index = index_pos(t, name)
        .map(|i| t.indexes[i].clone())
        .ok_or_else(|| Fail::Unsupported(format!("unknown index `{name}` of `{table}`")))?;
    let variant = Table {
        indexes: vec![index.clone()],
        ..bare(t)
    };
    let planned = plan_object(
        state,
        table,
        variant,
        &state.opts,
        about(table, "index", &index.name),
        &[StatementKind::Index, StatementKind::UniqueIndex],
        out,
    )?;
    if let Some(n) = planned.indexes.get(&index.name) {
        let target = state.target(table);
        state.taken.relations_in(&target.schema).reserve(n);
        state
            .objects
            .entry(table.clone())
            .or_default()
            .indexes
            .insert(index.name.clone(), n.clone());
    }
    Ok(())
}

/// Creates the model's primary key in the target.
pub(super) fn create_primary_key(
    state: &mut State,
    table: &TableName,
    out: &mut Out,
) -> Result<(), Fail> {
    let t = state.table(table)?;
    let variant = Table {
        primary_key: t.primary_key.clone(),
        ..bare(t)
    };
    let mut opts = state.opts.clone();
    opts.primary_keys_after_data = true;
    let source = table.to_string();
    let planned = plan_object(
        state,
        table,
        variant,
        &opts,
        |p| p.object == source && p.message.contains("primary key"),
        &[StatementKind::PrimaryKey],
        out,
    )?;
    if let Some(n) = planned.pkey {
        let target = state.target(table);
        state.taken.relations_in(&target.schema).reserve(&n);
        state.taken.constraints_of(&target).reserve(&n);
        state.objects.entry(table.clone()).or_default().pkey = Some(n);
    }
    Ok(())
}

/// Creates a foreign key of the model in the target.
fn create_foreign_key(
    state: &mut State,
    table: &TableName,
    name: &str,
    out: &mut Out,
) -> Result<(), Fail> {
    let t = state.table(table)?;
    let fk = foreign_key_pos(t, name)
        .map(|i| t.foreign_keys[i].clone())
        .ok_or_else(|| Fail::Unsupported(format!("unknown foreign key `{name}` of `{table}`")))?;
    let variant = Table {
        foreign_keys: vec![fk.clone()],
        ..bare(t)
    };
    let planned = plan_object(
        state,
        table,
        variant,
        &state.opts,
        about(table, "foreign key", &fk.name),
        &[StatementKind::ForeignKey],
        out,
    )?;
    if let Some(n) = planned.foreign_keys.get(&fk.name) {
        let target = state.target(table);
        state.taken.constraints_of(&target).reserve(n);
        state
            .objects
            .entry(table.clone())
            .or_default()
            .foreign_keys
            .insert(fk.name.clone(), n.clone());
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
