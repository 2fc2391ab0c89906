//! The PostgreSQL → PostgreSQL planner: the target gets every object as the source has it.
//!
//! Nothing is translated: types (built-in, arrays, enums, domains), collations, defaults,
//! identity and serial columns, generated columns, indexes, foreign key actions and
//! comments are written back as the source's catalogs print them. The catalog is read with
//! `search_path = pg_catalog`, so every name in those texts that is not built in is
//! schema-qualified and means the same object in the target.
//!
//! Names are kept as they are: PostgreSQL names are case-sensitive and the expressions
//! copied verbatim (defaults, generated columns, domain checks) refer to them, so the
//! identifier case policy does not apply and renames are refused as a blocking problem.

use std::collections::{BTreeMap, BTreeSet};

use dts_core::{Catalog, ColumnDefault, IndexKind, Table, TableName, UserTypeKind};

use crate::ident::{quote_ident, quote_literal, quote_qualified};
use crate::options::SchemaOptions;
use crate::plan::{Phase, Problem, SchemaPlan, Statement, StatementKind, TablePlan};

/// Plans a PostgreSQL catalog into a PostgreSQL target, keeping every object as it is.
///
/// Pre-data: schemas, enums and domains (in the catalog's order, each after what it is
/// built on), the sequences of serial columns, tables with their columns, types,
/// collations, defaults, identity and generated columns (in source column order), the
/// primary key unless [`SchemaOptions::primary_keys_after_data`], and comments. Post-data:
/// the primary key when deferred, indexes, foreign keys with their actions, and identity
/// and serial sequences set past the copied maximum (and past the source's counter when
/// the catalog has it, [`Table::auto_increment`]).
///
/// Never panics: what cannot be planned (renames, a foreign key to a table that is not
/// selected) is a [`Problem`].
pub fn plan_pg_to_pg(catalog: &Catalog, opts: &SchemaOptions) -> SchemaPlan {
    let mut plan = SchemaPlan::default();
    renames(opts, &mut plan.problems);
    for o in &catalog.omitted_indexes {
        plan.problems.push(Problem::blocking(
            format!("{}.{}", o.table, o.name),
            format!(
                "index `{}` on table `{}` cannot be migrated: {} (`{}`)",
                o.name, o.table, o.reason, o.definition
            ),
        ));
    }

    let mut schemas = BTreeSet::new();
    for name in catalog
        .types
        .iter()
        .map(|t| &t.name.schema)
        .chain(catalog.tables().map(|t| &t.name.schema))
    {
        if schemas.insert(name.clone()) {
            plan.pre_data.push(Statement::new(
                Phase::PreData,
                StatementKind::Schema,
                None,
                name.clone(),
                format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(name)),
            ));
        }
    }
    types(catalog, &mut plan.pre_data);

    let selected: BTreeSet<&TableName> = catalog.tables().map(|t| &t.name).collect();
    let mut sequences = BTreeSet::new();
    let mut keys = Vec::new();
    let mut indexes = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut resets = Vec::new();
    for table in catalog.tables() {
        let qualified = quote_qualified(&table.name.schema, &table.name.name);
        let owned = serial_sequences(table);
        for (column, sequence) in &owned {
            if sequences.insert(sequence.clone()) {
                // `serial` and `smallserial` make sequences of their column's type.
                let kind = match table.column(column).map(|c| c.source_type.as_str()) {
                    Some(t @ ("integer" | "smallint")) => format!(" AS {t}"),
                    _ => String::new(),
                };
                plan.pre_data.push(Statement::new(
                    Phase::PreData,
                    StatementKind::Sequence,
                    Some(&table.name),
                    format!("{}.{column}", table.name),
                    format!("CREATE SEQUENCE IF NOT EXISTS {sequence}{kind}"),
                ));
            }
        }
        plan.pre_data.push(Statement::new(
            Phase::PreData,
            StatementKind::Table,
            Some(&table.name),
            table.name.to_string(),
            create_table(table, &qualified, !opts.primary_keys_after_data),
        ));
        for (column, sequence) in &owned {
            plan.pre_data.push(Statement::new(
                Phase::PreData,
                StatementKind::Sequence,
                Some(&table.name),
                format!("{}.{column}", table.name),
                format!(
                    "ALTER SEQUENCE {sequence} OWNED BY {qualified}.{}",
                    quote_ident(column)
                ),
            ));
        }
        comments(table, &qualified, &mut plan.pre_data);

        if let (Some(pk), true) = (&table.primary_key, opts.primary_keys_after_data) {
            keys.push(Statement::new(
                Phase::PostData,
                StatementKind::PrimaryKey,
                Some(&table.name),
                table.name.to_string(),
                primary_key_after_data(pk, &qualified),
            ));
        }
        for index in &table.indexes {
            let method = match index.kind {
                IndexKind::Hash => " USING hash",
                _ => "",
            };
            let columns: Vec<String> = index
                .columns
                .iter()
                .map(|c| {
                    let mut s = quote_ident(&c.name);
                    if c.descending {
                        s.push_str(" DESC");
                    }
                    s
                })
                .collect();
            indexes.push(Statement::new(
                Phase::PostData,
                if index.unique {
                    StatementKind::UniqueIndex
                } else {
                    StatementKind::Index
                },
                Some(&table.name),
                format!("{}.{}", table.name.schema, index.name),
                format!(
                    "CREATE {}INDEX {} ON {qualified}{method} ({})",
                    if index.unique { "UNIQUE " } else { "" },
                    quote_ident(&index.name),
                    columns.join(", ")
                ),
            ));
        }
        for fk in &table.foreign_keys {
            let object = format!("{}.{}", table.name, fk.name);
            if !selected.contains(&fk.referenced_table) {
                plan.problems.push(Problem::blocking(
                    object.clone(),
                    format!(
                        "foreign key `{object}` references `{}`, which is not selected",
                        fk.referenced_table
                    ),
                ));
                continue;
            }
            foreign_keys.push(Statement::new(
                Phase::PostData,
                StatementKind::ForeignKey,
                Some(&table.name),
                object,
                format!(
                    "ALTER TABLE {qualified} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
                    quote_ident(&fk.name),
                    idents(&fk.columns),
                    quote_qualified(&fk.referenced_table.schema, &fk.referenced_table.name),
                    idents(&fk.referenced_columns),
                    fk.on_delete.as_sql(),
                    fk.on_update.as_sql()
                ),
            ));
        }
        for column in table.columns.iter().filter(|c| is_sequenced(c)) {
            let floor = table.auto_increment.map_or(0, |n| n.saturating_sub(1));
            let floor = i64::try_from(floor).unwrap_or(i64::MAX);
            let col = quote_ident(&column.name);
            resets.push(Statement::new(
                Phase::PostData,
                StatementKind::SequenceReset,
                Some(&table.name),
                format!("{}.{}", table.name, column.name),
                format!(
                    "SELECT setval(pg_get_serial_sequence({}, {}), GREATEST(v, 1), v >= 1) FROM (SELECT GREATEST(COALESCE(max({col}), 0), {floor})::bigint AS v FROM {qualified}) AS m",
                    quote_literal(&qualified),
                    quote_literal(&column.name)
                ),
            ));
        }

        plan.tables
            .push(TablePlan::identity(table, table.name.clone()));
    }
    plan.post_data.extend(keys);
    plan.post_data.extend(indexes);
    plan.post_data.extend(foreign_keys);
    plan.post_data.extend(resets);
    plan
}

/// Renames would leave the copied expressions naming the old objects: refused.
fn renames(opts: &SchemaOptions, problems: &mut Vec<Problem>) {
    let renamed = opts
        .schema_renames
        .keys()
        .cloned()
        .chain(opts.table_renames.keys().map(ToString::to_string))
        .chain(opts.column_renames.keys().map(|(t, c)| format!("{t}.{c}")));
    for object in renamed {
        problems.push(Problem::blocking(
            object.clone(),
            format!(
                "`{object}` is renamed, but a PostgreSQL to PostgreSQL migration keeps every name as it is"
            ),
        ));
    }
}

/// `CREATE TYPE … AS ENUM` and `CREATE DOMAIN`, with their comments.
fn types(catalog: &Catalog, out: &mut Vec<Statement>) {
    for t in &catalog.types {
        let qualified = quote_qualified(&t.name.schema, &t.name.name);
        let (sql, what) = match &t.kind {
            UserTypeKind::Enum { labels } => (
                format!(
                    "CREATE TYPE {qualified} AS ENUM ({})",
                    labels
                        .iter()
                        .map(|l| quote_literal(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "TYPE",
            ),
            UserTypeKind::Domain {
                base,
                collation,
                default,
                not_null,
                checks,
            } => {
                let mut sql = format!("CREATE DOMAIN {qualified} AS {base}");
                if let Some(c) = collation {
                    sql.push_str(" COLLATE ");
                    sql.push_str(c);
                }
                if let Some(d) = default {
                    sql.push_str(" DEFAULT ");
                    sql.push_str(d);
                }
                if *not_null {
                    sql.push_str(" NOT NULL");
                }
                for (name, check) in checks {
                    sql.push_str(" CONSTRAINT ");
                    sql.push_str(&quote_ident(name));
                    sql.push(' ');
                    sql.push_str(check);
                }
                (sql, "DOMAIN")
            }
            // The catalog reader produces no other kind.
            _ => continue,
        };
        out.push(Statement::new(
            Phase::PreData,
            StatementKind::Type,
            None,
            t.name.to_string(),
            sql,
        ));
        if let Some(comment) = &t.comment {
            out.push(Statement::new(
                Phase::PreData,
                StatementKind::Comment,
                None,
                t.name.to_string(),
                format!(
                    "COMMENT ON {what} {qualified} IS {}",
                    quote_literal(comment)
                ),
            ));
        }
    }
}

/// Whether a column takes its values from a sequence: identity or serial.
fn is_sequenced(c: &dts_core::Column) -> bool {
    matches!(c.default, Some(ColumnDefault::Identity { .. })) || serial_sequence(c).is_some()
}

/// The sequence a `DEFAULT nextval('…'::regclass)` draws from, as SQL names it.
fn serial_sequence(c: &dts_core::Column) -> Option<String> {
    let Some(ColumnDefault::Expression(e)) = &c.default else {
        return None;
    };
    let inner = e.strip_prefix("nextval('")?.strip_suffix("'::regclass)")?;
    // The regclass literal: quotes doubled inside.
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

/// The serial columns of `table` and their sequences.
fn serial_sequences(table: &Table) -> BTreeMap<String, String> {
    table
        .columns
        .iter()
        .filter_map(|c| serial_sequence(c).map(|s| (c.name.clone(), s)))
        .collect()
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn primary_key(pk: &dts_core::Key) -> String {
    let name = pk
        .name
        .as_ref()
        .map(|n| format!("CONSTRAINT {} ", quote_ident(n)))
        .unwrap_or_default();
    format!("{name}PRIMARY KEY ({})", idents(&pk.columns))
}

/// The primary key added after the data. A named key's index is built first, under a share
/// lock, so that it is built at the same time as the table's other indexes (adding the key
/// directly takes an exclusive lock, which waits for them and makes them wait); attaching
/// it as the primary key is then instant, its columns being `NOT NULL` already.
fn primary_key_after_data(pk: &dts_core::Key, qualified: &str) -> String {
    match &pk.name {
        Some(name) => format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {qualified} ({}); \
             ALTER TABLE {qualified} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}",
            idents(&pk.columns),
            name = quote_ident(name)
        ),
        None => format!("ALTER TABLE {qualified} ADD {}", primary_key(pk)),
    }
}

/// `CREATE TABLE` with every column as the source declares it, in source order.
fn create_table(table: &Table, qualified: &str, with_primary_key: bool) -> String {
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut def = format!("{} {}", quote_ident(&c.name), c.source_type);
            if let Some(collation) = &c.collation {
                def.push_str(" COLLATE ");
                def.push_str(collation);
            }
            if let Some(g) = &c.generated {
                def.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", g.expression));
            } else {
                match &c.default {
                    Some(ColumnDefault::Identity { always }) => def.push_str(if *always {
                        " GENERATED ALWAYS AS IDENTITY"
                    } else {
                        " GENERATED BY DEFAULT AS IDENTITY"
                    }),
                    Some(ColumnDefault::Expression(e) | ColumnDefault::Literal(e)) => {
                        def.push_str(" DEFAULT ");
                        def.push_str(e);
                    }
                    _ => {}
                }
            }
            if !c.nullable {
                def.push_str(" NOT NULL");
            }
            def
        })
        .collect();
    if let (Some(pk), true) = (&table.primary_key, with_primary_key) {
        parts.push(primary_key(pk));
    }
    format!("CREATE TABLE {qualified} ({})", parts.join(", "))
}

/// Table and column comments.
fn comments(table: &Table, qualified: &str, out: &mut Vec<Statement>) {
    if let Some(comment) = &table.comment {
        out.push(Statement::new(
            Phase::PreData,
            StatementKind::Comment,
            Some(&table.name),
            table.name.to_string(),
            format!("COMMENT ON TABLE {qualified} IS {}", quote_literal(comment)),
        ));
    }
    for c in &table.columns {
        if let Some(comment) = &c.comment {
            out.push(Statement::new(
                Phase::PreData,
                StatementKind::Comment,
                Some(&table.name),
                format!("{}.{}", table.name, c.name),
                format!(
                    "COMMENT ON COLUMN {qualified}.{} IS {}",
                    quote_ident(&c.name),
                    quote_literal(comment)
                ),
            ));
        }
    }
}

/// The change mapping of PostgreSQL → PostgreSQL replication: names and values pass as
/// they are (the plan keeps every name and type), and changes of tables not selected are
/// dropped.
///
/// Logical decoding carries no DDL; the source's relation descriptions
/// ([`dts_core::Change::Relation`]) show a table's replicated columns before its next row
/// change. When they differ from the tracked schema, the mapping makes a
/// [`dts_core::Change::Schema`] inside the transaction: `ALTER TABLE` adding the new
/// columns (with their `NOT NULL`, default, and the value a default gave the rows already
/// there, as the source's catalog has them when the description is read), dropping the
/// columns gone, and changing the type of retyped columns (`USING column::type`: an
/// expression the source used for its own conversion is not in the log); the tracked
/// schema follows and is recorded with the applied position. A rename, or a change it
/// cannot place, stops replication naming the table and both column lists
/// ([`crate::relation_diff`]). A row image whose columns are not the table's (generated
/// columns left out) also stops it.
///
/// An update's after image may carry fewer columns than the table has (values the update
/// left as they were and the source did not send); its columns must be among the table's.
pub struct PgToPgChangeMapper {
    /// The source schema as tracked (recorded at the stream's start, then followed).
    catalog: Catalog,
    /// Per selected table, its replicated columns in order.
    columns: BTreeMap<TableName, Vec<String>>,
    selects: std::sync::Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
}

impl std::fmt::Debug for PgToPgChangeMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgToPgChangeMapper")
            .field("tables", &self.columns.len())
            .finish_non_exhaustive()
    }
}

/// The replicated columns of each selected table of `catalog`.
fn replicated_columns(
    catalog: &Catalog,
    selects: &(dyn Fn(&TableName) -> bool + Send + Sync),
) -> BTreeMap<TableName, Vec<String>> {
    catalog
        .tables()
        .filter(|t| selects(&t.name))
        .map(|t| {
            let names = t
                .columns
                .iter()
                .filter(|c| c.generated.is_none())
                .map(|c| c.name.clone())
                .collect();
            (t.name.clone(), names)
        })
        .collect()
}

impl PgToPgChangeMapper {
    /// A mapping from the source schema `catalog` (as recorded at the stream's start) for
    /// the tables `selects` selects.
    pub fn new(
        catalog: &Catalog,
        selects: std::sync::Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    ) -> Self {
        Self {
            catalog: catalog.clone(),
            columns: replicated_columns(catalog, &*selects),
            selects,
        }
    }

    fn check(
        &self,
        table: &TableName,
        image: &dts_core::RowImage,
        whole: bool,
    ) -> dts_core::Result<()> {
        let expected = self.columns.get(table).ok_or_else(|| {
            dts_core::Error::new(
                dts_core::ErrorKind::Unsupported,
                format!("a change of `{table}`, a table the recorded source schema does not hold"),
            )
        })?;
        let fits = if whole {
            *image.columns == *expected
        } else {
            image.columns.iter().all(|c| expected.contains(c))
        };
        if fits {
            return Ok(());
        }
        Err(dts_core::Error::new(
            dts_core::ErrorKind::Unsupported,
            format!(
                "the columns of `{table}` changed at the source ({} became {}) without a \
                 relation description saying so; migrate the table again",
                expected.join(", "),
                image.columns.join(", ")
            ),
        ))
    }

    /// The schema change a relation description of `table` makes, if it differs from the
    /// tracked table.
    fn relation(
        &mut self,
        table: &TableName,
        described: &[dts_core::RelationColumn],
    ) -> dts_core::Result<Option<dts_core::SchemaChange>> {
        let Some(tracked) = self.catalog.table(table) else {
            return Err(dts_core::Error::new(
                dts_core::ErrorKind::Unsupported,
                format!("a change of `{table}`, a table the recorded source schema does not hold"),
            ));
        };
        let diff = crate::relation_diff(tracked, described)?;
        if diff.is_empty() {
            return Ok(None);
        }
        let qualified = quote_qualified(&table.schema, &table.name);
        let mut actions: Vec<String> = Vec::new();
        for name in &diff.dropped {
            actions.push(format!("DROP COLUMN {}", quote_ident(name)));
        }
        for (name, _, new) in &diff.retyped {
            let column = quote_ident(name);
            actions.push(format!(
                "ALTER COLUMN {column} TYPE {new} USING {column}::{new}"
            ));
        }
        let mut after = Vec::new();
        for c in &diff.added {
            let column = quote_ident(&c.name);
            let mut action = format!("ADD COLUMN {column} {}", c.data_type);
            if let Some(missing) = &c.missing {
                // The rows already there hold this value; new rows come with theirs.
                action.push_str(&format!(
                    " DEFAULT {}::{}",
                    quote_literal(missing),
                    c.data_type
                ));
                after.push(match &c.default {
                    Some(expr) => format!("ALTER COLUMN {column} SET DEFAULT {expr}"),
                    None => format!("ALTER COLUMN {column} DROP DEFAULT"),
                });
            } else if let Some(expr) = &c.default {
                action.push_str(&format!(" DEFAULT {expr}"));
            }
            if c.not_null {
                action.push_str(" NOT NULL");
            }
            actions.push(action);
        }
        actions.extend(after);
        let statement = format!("ALTER TABLE {qualified} {}", actions.join(", "));
        let mut catalog = self.catalog.clone();
        if let Some(t) = catalog.table_mut(table) {
            crate::apply_relation_diff(t, &diff);
        }
        tracing::info!(table = %table, statement = %statement,
            "following a column change the source's relation description shows");
        self.columns = replicated_columns(&catalog, &*self.selects);
        self.catalog = catalog;
        Ok(Some(dts_core::SchemaChange {
            source_sql: format!("(relation description of `{table}`)"),
            statements: vec![statement],
            catalog: Some(std::sync::Arc::new(self.catalog.clone())),
            tables: vec![table.clone()],
            created: Vec::new(),
            within_transaction: true,
        }))
    }
}

impl dts_core::ChangeMapper for PgToPgChangeMapper {
    fn map(
        &mut self,
        event: dts_core::ChangeEvent,
    ) -> dts_core::Result<Option<dts_core::ChangeEvent>> {
        use dts_core::Change;
        let table = match &event.change {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. }
            | Change::Truncate { table }
            | Change::Relation { table, .. } => Some(table),
            Change::Ddl { sql, .. } => {
                return Err(dts_core::Error::new(
                    dts_core::ErrorKind::Unsupported,
                    format!("a DDL statement from a PostgreSQL source: {sql}"),
                ))
            }
            _ => None,
        };
        let Some(table) = table else {
            return Ok(Some(event));
        };
        if !(self.selects)(table) {
            return Ok(None);
        }
        match &event.change {
            Change::Insert { table, row } | Change::Delete { table, row } => {
                self.check(table, row, true)?;
            }
            Change::Update {
                table,
                before,
                after,
            } => {
                self.check(table, before, true)?;
                self.check(table, after, false)?;
            }
            Change::Relation { table, columns } => {
                let table = table.clone();
                return Ok(self
                    .relation(&table, columns)?
                    .map(|change| dts_core::ChangeEvent {
                        change: Change::Schema(Box::new(change)),
                        position: event.position.clone(),
                        timestamp: event.timestamp,
                    }));
            }
            _ => {}
        }
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use dts_core::{Column, ForeignKey, Generated, Key, ReferentialAction, Schema, UserType};

    use super::*;

    fn catalog() -> Catalog {
        let column = |name: &str, ty: &str| Column {
            ordinal: 1,
            ..Column::new(name, ty)
        };
        let table = Table {
            name: TableName::new("s", "t"),
            columns: vec![
                Column {
                    default: Some(ColumnDefault::Expression(
                        "nextval('s.t_id_seq'::regclass)".into(),
                    )),
                    auto_increment: true,
                    nullable: false,
                    ..column("id", "integer")
                },
                Column {
                    default: Some(ColumnDefault::Identity { always: true }),
                    auto_increment: true,
                    ..column("seq", "bigint")
                },
                Column {
                    collation: Some("\"C\"".into()),
                    default: Some(ColumnDefault::Expression("'ok'::s.mood".into())),
                    ..column("Mood", "s.mood")
                },
                Column {
                    generated: Some(Generated {
                        expression: "(seq * 2)".into(),
                        stored: true,
                    }),
                    ..column("twice", "bigint")
                },
            ],
            primary_key: Some(Key {
                name: Some("t_pkey".into()),
                columns: vec!["id".into()],
            }),
            indexes: vec![],
            foreign_keys: vec![ForeignKey {
                name: "t_other".into(),
                columns: vec!["seq".into()],
                referenced_table: TableName::new("s", "elsewhere"),
                referenced_columns: vec!["id".into()],
                on_delete: ReferentialAction::Cascade,
                on_update: ReferentialAction::NoAction,
            }],
            comment: None,
            estimated_rows: 0,
            auto_increment: Some(42),
        };
        Catalog {
            schemas: vec![Schema {
                name: "s".into(),
                tables: vec![table],
            }],
            types: vec![UserType {
                name: TableName::new("s", "mood"),
                kind: UserTypeKind::Enum {
                    labels: vec!["ok".into(), "it's".into()],
                },
                comment: None,
            }],
            omitted_indexes: Vec::new(),
        }
    }

    #[test]
    fn change_mapping_passes_rows_and_stops_on_changed_columns() {
        use dts_core::{
            Change, ChangeEvent, ChangeMapper, ErrorKind, Lsn, Position, RowImage, Value,
        };
        use std::sync::Arc;

        let selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync> =
            Arc::new(|t: &TableName| t.schema == "s");
        let mut mapper = PgToPgChangeMapper::new(&catalog(), selects);
        let image = |cols: &[&str]| RowImage {
            columns: Arc::new(cols.iter().map(|c| (*c).to_string()).collect()),
            values: cols.iter().map(|_| Value::Int(1)).collect(),
        };
        let event = |change| ChangeEvent {
            change,
            position: Position::Lsn(Lsn(1)),
            timestamp: 0,
        };
        let t = TableName::new("s", "t");
        // The generated column is not replicated; an update's after image may leave
        // unchanged columns out.
        let full = image(&["id", "seq", "Mood"]);
        let update = event(Change::Update {
            table: t.clone(),
            before: full.clone(),
            after: image(&["id", "Mood"]),
        });
        assert_eq!(mapper.map(update.clone()).unwrap(), Some(update));
        let other = event(Change::Insert {
            table: TableName::new("x", "t"),
            row: full.clone(),
        });
        assert_eq!(mapper.map(other).unwrap(), None);
        let commit = event(Change::Commit);
        assert_eq!(mapper.map(commit.clone()).unwrap(), Some(commit));
        // A column added at the source stops replication, naming both lists.
        let err = mapper
            .map(event(Change::Insert {
                table: t,
                row: image(&["id", "seq", "Mood", "added"]),
            }))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            err.to_string()
                .contains("id, seq, Mood became id, seq, Mood, added"),
            "{err}"
        );

        // A relation description like the tracked table passes as nothing; one with a
        // new column becomes an ALTER TABLE inside the transaction, and rows then carry it.
        let column = |name: &str, ty: &str, ordinal| dts_core::RelationColumn {
            name: name.into(),
            data_type: ty.into(),
            key: name == "id",
            ordinal: Some(ordinal),
            not_null: false,
            default: None,
            missing: None,
        };
        let same = vec![
            column("id", "integer", 1),
            column("seq", "bigint", 1),
            column("Mood", "s.mood", 1),
        ];
        let relation = |columns| {
            event(Change::Relation {
                table: TableName::new("s", "t"),
                columns,
            })
        };
        assert_eq!(mapper.map(relation(same.clone())).unwrap(), None);
        let mut added = same;
        added.push(column("added", "text[]", 9));
        let Some(ChangeEvent {
            change: Change::Schema(change),
            ..
        }) = mapper.map(relation(added)).unwrap()
        else {
            panic!("no schema change")
        };
        assert!(change.within_transaction);
        assert_eq!(
            change.statements,
            ["ALTER TABLE \"s\".\"t\" ADD COLUMN \"added\" text[]"]
        );
        assert!(change
            .catalog
            .unwrap()
            .table(&TableName::new("s", "t"))
            .unwrap()
            .column("added")
            .is_some());
        assert!(mapper
            .map(event(Change::Insert {
                table: TableName::new("s", "t"),
                row: image(&["id", "seq", "Mood", "added"]),
            }))
            .unwrap()
            .is_some());
    }

    #[test]
    fn keeps_every_object_as_it_is() {
        let plan = plan_pg_to_pg(&catalog(), &SchemaOptions::default());
        let sql: Vec<&str> = plan.pre_data.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "CREATE SCHEMA IF NOT EXISTS \"s\"",
                "CREATE TYPE \"s\".\"mood\" AS ENUM ('ok', 'it''s')",
                "CREATE SEQUENCE IF NOT EXISTS s.t_id_seq AS integer",
                "CREATE TABLE \"s\".\"t\" (\"id\" integer DEFAULT nextval('s.t_id_seq'::regclass) NOT NULL, \
                 \"seq\" bigint GENERATED ALWAYS AS IDENTITY, \
                 \"Mood\" s.mood COLLATE \"C\" DEFAULT 'ok'::s.mood, \
                 \"twice\" bigint GENERATED ALWAYS AS ((seq * 2)) STORED, \
                 CONSTRAINT \"t_pkey\" PRIMARY KEY (\"id\"))",
                "ALTER SEQUENCE s.t_id_seq OWNED BY \"s\".\"t\".\"id\"",
            ]
        );
        // Names kept, case policy or not; no value mapping.
        let t = plan.table(&TableName::new("s", "t")).unwrap();
        assert_eq!(t.target, TableName::new("s", "t"));
        assert_eq!(t.column("Mood").unwrap().target_name, "Mood");
        assert!(t.columns.iter().all(|c| c.mapping.is_none()));
        assert!(!t.column("twice").unwrap().copied);
        // Both sequenced columns are set past the copied maximum and the source's counter.
        let resets: Vec<&Statement> = plan.statements_of(StatementKind::SequenceReset).collect();
        assert_eq!(resets.len(), 2);
        assert!(resets[0].sql.contains("41)::bigint"), "{}", resets[0].sql);
        // A foreign key to a table that is not selected blocks.
        assert_eq!(plan.blocking_problems().count(), 1);
        assert!(plan.problems[0].message.contains("not selected"));

        // So does an index the model cannot describe.
        let mut c = catalog();
        c.omitted_indexes.push(dts_core::OmittedIndex {
            table: TableName::new("s", "t"),
            name: "t_part".into(),
            unique: false,
            reason: "partial indexes are not supported".into(),
            definition: "CREATE INDEX t_part ON s.t USING btree (id) WHERE (id > 0)".into(),
        });
        let plan = plan_pg_to_pg(&c, &SchemaOptions::default());
        assert!(plan.problems.iter().any(|p| p.blocking
            && p.message
                == "index `t_part` on table `s.t` cannot be migrated: partial indexes are not \
                    supported (`CREATE INDEX t_part ON s.t USING btree (id) WHERE (id > 0)`)"));
    }

    #[test]
    fn primary_key_after_data_and_renames_refused() {
        let opts = SchemaOptions {
            primary_keys_after_data: true,
            ..SchemaOptions::default()
        }
        .rename_table(TableName::new("s", "t"), "u");
        let plan = plan_pg_to_pg(&catalog(), &opts);
        assert!(plan
            .statements_of(StatementKind::PrimaryKey)
            .any(|s| s.sql
                == "CREATE UNIQUE INDEX IF NOT EXISTS \"t_pkey\" ON \"s\".\"t\" (\"id\"); \
                    ALTER TABLE \"s\".\"t\" ADD CONSTRAINT \"t_pkey\" PRIMARY KEY USING INDEX \"t_pkey\""));
        assert!(plan
            .problems
            .iter()
            .any(|p| p.blocking && p.message.contains("keeps every name as it is")));
    }
}
