//! The tracked schema: the source model, the table plans, and the target objects each
//! table owns (with the names taken in the target), changed together.

use std::collections::{BTreeMap, BTreeSet};

use dts_core::{Catalog, Schema, Table, TableName};

use crate::ddl::{plan_in_context, Planned, TableObjects, TakenNames};
use crate::ident::{quote_ident, quote_qualified};
use crate::options::SchemaOptions;
use crate::plan::{Problem, SchemaPlan, TablePlan};
use crate::plan_mysql_to_pg;

use super::{Fail, Out};

#[derive(Debug, Clone)]
pub(super) struct State {
    /// The tracked source tables.
    pub(super) catalog: Catalog,
    /// Their plans, by source name.
    pub(super) plans: BTreeMap<TableName, TablePlan>,
    /// The target objects of each table, by source name.
    pub(super) objects: BTreeMap<TableName, TableObjects>,
    /// Names taken in the target.
    pub(super) taken: TakenNames,
    pub(super) opts: SchemaOptions,
    /// The indexes the source generated for foreign keys, by table (it drops them when
    /// another key covers their columns).
    pub(super) generated: BTreeMap<TableName, BTreeSet<String>>,
}

/// A catalog of one table.
pub(super) fn one(table: Table) -> Catalog {
    Catalog {
        types: Vec::new(),
        omitted_indexes: Vec::new(),
        schemas: vec![Schema {
            name: table.name.schema.clone(),
            tables: vec![table],
        }],
    }
}

/// Fails with the blocking problems `relevant` selects; keeps the other relevant ones as
/// notes.
pub(super) fn problems(
    plan: &SchemaPlan,
    relevant: impl Fn(&Problem) -> bool,
    out: &mut Out,
) -> Result<(), Fail> {
    let mut blocking = Vec::new();
    for p in plan.problems.iter().filter(|p| relevant(p)) {
        if p.blocking {
            blocking.push(p.message.clone());
        } else if !out.notes.contains(&p.message) {
            out.notes.push(p.message.clone());
        }
    }
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(Fail::Unsupported(blocking.join("; ")))
    }
}

impl State {
    /// Replays the initial plan of `catalog` to learn the names it created.
    pub(super) fn new(catalog: Catalog, opts: SchemaOptions) -> Self {
        let planned = plan_in_context(&catalog, &opts, &Catalog::default(), TakenNames::default());
        let plans = planned
            .plan
            .tables
            .into_iter()
            .map(|p| (p.source.clone(), p))
            .collect();
        // information_schema does not say which indexes the source generated for foreign
        // keys; an index named after a foreign key on exactly its columns is taken as one.
        let mut generated: BTreeMap<TableName, BTreeSet<String>> = BTreeMap::new();
        for t in catalog.tables() {
            for i in &t.indexes {
                let columns: Vec<&str> = i.columns.iter().map(|c| c.name.as_str()).collect();
                if t.foreign_keys.iter().any(|fk| {
                    fk.name == i.name
                        && fk
                            .columns
                            .iter()
                            .map(String::as_str)
                            .eq(columns.iter().copied())
                }) {
                    generated
                        .entry(t.name.clone())
                        .or_default()
                        .insert(i.name.clone());
                }
            }
        }
        Self {
            catalog,
            plans,
            objects: planned.objects,
            taken: planned.taken,
            opts,
            generated,
        }
    }

    /// The tracked name of a table: the same name, or with `case_insensitive` (servers with
    /// `lower_case_table_names = 2`) the one name that differs only in letter case.
    pub(super) fn find(&self, name: &TableName, case_insensitive: bool) -> Option<TableName> {
        if self.catalog.table(name).is_some() {
            return Some(name.clone());
        }
        if !case_insensitive {
            return None;
        }
        let mut matches = self.catalog.tables().filter(|t| {
            t.name.schema.eq_ignore_ascii_case(&name.schema)
                && t.name.name.eq_ignore_ascii_case(&name.name)
        });
        match (matches.next(), matches.next()) {
            (Some(t), None) => Some(t.name.clone()),
            _ => None,
        }
    }

    pub(super) fn table(&self, name: &TableName) -> Result<&Table, Fail> {
        self.catalog
            .table(name)
            .ok_or_else(|| Fail::Unsupported(format!("table `{name}` is not tracked")))
    }

    pub(super) fn catalog_table_mut(&mut self, name: &TableName) -> Option<&mut Table> {
        self.catalog
            .schemas
            .iter_mut()
            .flat_map(|s| s.tables.iter_mut())
            .find(|t| &t.name == name)
    }

    pub(super) fn table_mut(&mut self, name: &TableName) -> Result<&mut Table, Fail> {
        self.catalog_table_mut(name)
            .ok_or_else(|| Fail::Unsupported(format!("table `{name}` is not tracked")))
    }

    /// The target table of a tracked source table.
    pub(super) fn target(&self, source: &TableName) -> TableName {
        self.plans
            .get(source)
            .map_or_else(|| self.opts.target_table(source), |p| p.target.clone())
    }

    /// `"schema"."table"` of a tracked table's target.
    pub(super) fn qualified(&self, source: &TableName) -> String {
        let t = self.target(source);
        quote_qualified(&t.schema, &t.name)
    }

    /// The quoted target column of a source column.
    pub(super) fn column_sql(&self, source: &TableName, column: &str) -> String {
        quote_ident(&self.opts.target_column(source, column))
    }

    /// Plans the table again after a change.
    pub(super) fn refresh_plan(&mut self, source: &TableName) {
        let Some(table) = self.catalog.table(source).cloned() else {
            self.plans.remove(source);
            return;
        };
        let plan = plan_mysql_to_pg(&one(table), &self.opts);
        if let Some(p) = plan.tables.into_iter().next() {
            self.plans.insert(source.clone(), p);
        }
    }

    /// Plans a variant of a table (a single index, a single foreign key, …) against `taken`;
    /// foreign keys reference the tracked tables.
    pub(super) fn plan_variant(
        &self,
        variant: Table,
        opts: &SchemaOptions,
        taken: TakenNames,
    ) -> Planned {
        plan_in_context(&one(variant), opts, &self.catalog, taken)
    }

    fn insert_table(&mut self, table: Table) {
        let schema = table.name.schema.clone();
        let pos = match self
            .catalog
            .schemas
            .binary_search_by(|s| s.name.as_str().cmp(&schema))
        {
            Ok(i) => i,
            Err(i) => {
                self.catalog.schemas.insert(
                    i,
                    Schema {
                        name: schema,
                        tables: Vec::new(),
                    },
                );
                i
            }
        };
        let tables = &mut self.catalog.schemas[pos].tables;
        let at = tables.partition_point(|t| t.name.name < table.name.name);
        tables.insert(at, table);
    }

    fn remove_table(&mut self, name: &TableName) -> Option<Table> {
        let schema = self
            .catalog
            .schemas
            .iter_mut()
            .find(|s| s.name == name.schema)?;
        let pos = schema.tables.iter().position(|t| &t.name == name)?;
        Some(schema.tables.remove(pos))
    }

    /// Creates a table: the planner's pre-data and post-data statements.
    pub(super) fn create_table(
        &mut self,
        table: Table,
        generated: BTreeSet<String>,
        out: &mut Out,
    ) -> Result<(), Fail> {
        let name = table.name.clone();
        let mut opts = self.opts.clone();
        // The table is empty: its primary key goes into CREATE TABLE.
        opts.primary_keys_after_data = false;
        let planned = plan_in_context(
            &one(table.clone()),
            &opts,
            &self.catalog,
            self.taken.clone(),
        );
        problems(&planned.plan, |_| true, out)?;
        out.statements
            .extend(planned.plan.statements().map(|s| s.sql.clone()));
        self.taken = planned.taken;
        self.objects.insert(
            name.clone(),
            planned.objects.get(&name).cloned().unwrap_or_default(),
        );
        self.insert_table(table);
        self.refresh_plan(&name);
        self.generated.insert(name, generated);
        Ok(())
    }

    /// Drops tracked tables: one `DROP TABLE IF EXISTS` for all (PostgreSQL then resolves
    /// foreign keys among them), then what the tables leave behind.
    pub(super) fn drop_tables(&mut self, names: &[TableName], out: &mut Out) {
        if names.is_empty() {
            return;
        }
        let list: Vec<String> = names.iter().map(|n| self.qualified(n)).collect();
        out.statements
            .push(format!("DROP TABLE IF EXISTS {}", list.join(", ")));
        self.forget_tables(names, out);
    }

    /// Forgets dropped tables and frees their names; drops their trigger functions, which
    /// outlive the table.
    pub(super) fn forget_tables(&mut self, names: &[TableName], out: &mut Out) {
        for name in names {
            let target = self.target(name);
            let relations = self.taken.relations_in(&target.schema);
            if let Some(objects) = self.objects.remove(name) {
                if let Some(p) = &objects.pkey {
                    relations.release(p);
                }
                for i in objects.indexes.values() {
                    relations.release(i);
                }
                for c in objects.columns.values() {
                    if let Some((s, _)) = &c.sequence {
                        relations.release(s);
                    }
                }
                if let Some((function, _)) = &objects.trigger {
                    out.statements.push(format!(
                        "DROP FUNCTION IF EXISTS {}()",
                        quote_qualified(&target.schema, function)
                    ));
                    self.taken.functions_in(&target.schema).release(function);
                }
            }
            self.taken
                .relations_in(&target.schema)
                .release(&target.name);
            self.taken.constraints.remove(&target);
            self.generated.remove(name);
            self.plans.remove(name);
            self.remove_table(name);
        }
    }

    /// Renames a tracked table (possibly into another database).
    pub(super) fn rename_table(
        &mut self,
        from: &TableName,
        to: &TableName,
        out: &mut Out,
    ) -> Result<(), Fail> {
        if self.catalog.table(to).is_some() {
            return Err(Fail::Unsupported(format!(
                "`{from}` is renamed to `{to}`, which already exists"
            )));
        }
        let old_target = self.target(from);
        // Column renames of the table follow it.
        let moved: Vec<(String, String)> = self
            .opts
            .column_renames
            .iter()
            .filter(|((t, _), _)| t == from)
            .map(|((_, c), v)| (c.clone(), v.clone()))
            .collect();
        for (c, v) in moved {
            self.opts.column_renames.remove(&(from.clone(), c.clone()));
            self.opts.column_renames.insert((to.clone(), c), v);
        }
        // So does its column selection.
        if let Some(filter) = self.opts.columns.remove(from) {
            self.opts.columns.insert(to.clone(), filter);
        }
        let mut table = self
            .remove_table(from)
            .ok_or_else(|| Fail::Unsupported(format!("table `{from}` is not tracked")))?;
        table.name = to.clone();
        let mut objects = self.objects.remove(from).unwrap_or_default();
        let generated = format!("{}_ibfk_", from.name);
        for fk in &mut table.foreign_keys {
            if &fk.referenced_table == from {
                fk.referenced_table = to.clone();
            }
            // InnoDB renames the foreign keys it named after the table; the target's
            // constraints keep their names.
            if let Some(n) = fk.name.strip_prefix(&generated) {
                let renamed = format!("{}_ibfk_{n}", to.name);
                if let Some(target) = objects.foreign_keys.remove(&fk.name) {
                    objects.foreign_keys.insert(renamed.clone(), target);
                }
                fk.name = renamed;
            }
        }
        for t in self
            .catalog
            .schemas
            .iter_mut()
            .flat_map(|s| s.tables.iter_mut())
        {
            for fk in &mut t.foreign_keys {
                if &fk.referenced_table == from {
                    fk.referenced_table = to.clone();
                }
            }
        }
        self.insert_table(table);
        if let Some(g) = self.generated.remove(from) {
            self.generated.insert(to.clone(), g);
        }
        self.plans.remove(from);
        self.refresh_plan(to);
        let new_target = self.target(to);

        // Names: the table's own moves; indexes, keys and sequences keep their names (and
        // move with the table to another schema).
        self.taken
            .relations_in(&old_target.schema)
            .release(&old_target.name);
        if old_target.schema != new_target.schema {
            let mut owned: Vec<&String> = objects.indexes.values().collect();
            owned.extend(objects.pkey.iter());
            owned.extend(
                objects
                    .columns
                    .values()
                    .filter_map(|c| c.sequence.as_ref().map(|s| &s.0)),
            );
            for n in owned {
                self.taken.relations_in(&old_target.schema).release(n);
                self.taken.relations_in(&new_target.schema).reserve(n);
            }
        }
        self.taken
            .relations_in(&new_target.schema)
            .reserve(&new_target.name);
        if let Some(ns) = self.taken.constraints.remove(&old_target) {
            self.taken.constraints.insert(new_target.clone(), ns);
        }
        self.objects.insert(to.clone(), objects);

        let old_q = quote_qualified(&old_target.schema, &old_target.name);
        if old_target.schema != new_target.schema {
            out.statements.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(&new_target.schema)
            ));
            out.statements.push(format!(
                "ALTER TABLE {old_q} SET SCHEMA {}",
                quote_ident(&new_target.schema)
            ));
            if old_target.name != new_target.name {
                out.statements.push(format!(
                    "ALTER TABLE {} RENAME TO {}",
                    quote_qualified(&new_target.schema, &old_target.name),
                    quote_ident(&new_target.name)
                ));
            }
        } else if old_target.name != new_target.name {
            out.statements.push(format!(
                "ALTER TABLE {old_q} RENAME TO {}",
                quote_ident(&new_target.name)
            ));
        }
        Ok(())
    }
}
