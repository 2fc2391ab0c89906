//! The result of a schema translation: per-table plans, DDL statements in two phases, and
//! the problems found on the way.

use std::fmt;

use dts_core::TableName;
use dts_typemap::{ColumnMapping, PgToMySqlMapping};

/// A translated schema: what to create before the bulk copy, what to create after it, and
/// everything that could not be translated.
///
/// Statements are in execution order within each phase. Each [`Statement::sql`] is one SQL
/// statement without a trailing semicolon.
#[derive(Debug, Clone, Default)]
pub struct SchemaPlan {
    /// One plan per source table, in catalog order.
    pub tables: Vec<TablePlan>,
    /// Schemas, types, sequences, tables (columns, types, `NOT NULL`, defaults, identity, primary
    /// key, the mapping's `CHECK`s) and comments: run before the bulk copy.
    pub pre_data: Vec<Statement>,
    /// Generated columns, unique and secondary indexes, foreign keys, `ON UPDATE
    /// CURRENT_TIMESTAMP` triggers and sequence values past the copied maximum: run after it.
    pub post_data: Vec<Statement>,
    /// Everything that cannot be translated as is, by name.
    pub problems: Vec<Problem>,
}

impl SchemaPlan {
    /// The problems that must stop the task.
    pub fn blocking_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.blocking)
    }

    /// Whether any problem must stop the task.
    pub fn is_blocked(&self) -> bool {
        self.problems.iter().any(|p| p.blocking)
    }

    /// The plan of a source table.
    pub fn table(&self, source: &TableName) -> Option<&TablePlan> {
        self.tables.iter().find(|t| &t.source == source)
    }

    /// Every statement, pre-data first.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.pre_data.iter().chain(self.post_data.iter())
    }

    /// The statements of one phase and kind, e.g. the [`StatementKind::SequenceReset`]s to run
    /// again at switchover.
    pub fn statements_of(&self, kind: StatementKind) -> impl Iterator<Item = &Statement> {
        self.statements().filter(move |s| s.kind == kind)
    }

    /// Both phases as one SQL script (statements ended by `;`), for review or a dry run.
    pub fn to_script(&self) -> String {
        let mut out = String::new();
        for (title, phase) in [("pre-data", &self.pre_data), ("post-data", &self.post_data)] {
            out.push_str("-- ");
            out.push_str(title);
            out.push('\n');
            for s in phase {
                out.push_str(&s.sql);
                out.push_str(";\n");
            }
        }
        out
    }
}

/// How one source table lands in the target.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The source table.
    pub source: TableName,
    /// The target table (renamed, case policy applied, fitted to 63 bytes).
    pub target: TableName,
    /// The columns that exist in the target, in source order (columns of unsupported types
    /// are left out and reported as blocking problems).
    pub columns: Vec<ColumnPlan>,
    /// The source columns to split the table into chunks by (from
    /// [`dts_core::Table::chunk_key`]).
    pub chunk_key: Option<Vec<String>>,
}

impl TablePlan {
    /// The plan of a table created as the source has it (same engine): every column under
    /// its own name and type, generated columns computed by the target, not copied.
    pub fn identity(table: &dts_core::Table, target: TableName) -> Self {
        Self {
            source: table.name.clone(),
            target,
            columns: table
                .columns
                .iter()
                .map(|c| ColumnPlan {
                    source_name: c.name.clone(),
                    target_name: c.name.clone(),
                    target_type: c.source_type.clone(),
                    mapping: None,
                    pg_to_mysql: None,
                    copied: c.generated.is_none(),
                })
                .collect(),
            chunk_key: table.chunk_key(),
        }
    }

    /// The columns the bulk copy and change capture write, in order.
    pub fn copied_columns(&self) -> impl Iterator<Item = &ColumnPlan> {
        self.columns.iter().filter(|c| c.copied)
    }

    /// The plan of a source column.
    pub fn column(&self, source_name: &str) -> Option<&ColumnPlan> {
        self.columns.iter().find(|c| c.source_name == source_name)
    }
}

/// How one source column lands in the target.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// The source column name.
    pub source_name: String,
    /// The target column name.
    pub target_name: String,
    /// The target column's type as SQL spells it (`bigint`, `numeric(10,2)`,
    /// `shop.mood[]`).
    pub target_type: String,
    /// The type mapping (target type, `CHECK`, notes) when the type is translated between
    /// engines; `None` when the target keeps the source's type as it is (same engine), and
    /// values pass unchanged.
    pub mapping: Option<ColumnMapping>,
    /// The PostgreSQL → MySQL/MariaDB type mapping, in a plan of that direction (and then
    /// [`ColumnPlan::mapping`] is `None`): values are converted by
    /// [`dts_typemap::convert_pg_value`].
    pub pg_to_mysql: Option<PgToMySqlMapping>,
    /// Whether values are copied; `false` for generated columns, which the target computes.
    pub copied: bool,
}

/// One DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// When it runs.
    pub phase: Phase,
    /// What it creates.
    pub kind: StatementKind,
    /// The target table it concerns, if any.
    pub table: Option<TableName>,
    /// A human name of the target object: `shop.orders`, `shop.orders_email_idx`,
    /// `shop.orders.fk_customer`, … Not a unique key: a table and its comment, or a sequence's
    /// `CREATE` and `OWNED BY`, share one.
    pub object: String,
    /// The SQL text, one statement, no trailing semicolon.
    pub sql: String,
}

impl Statement {
    /// A statement of `phase` creating a `kind` object named `object` (of `table`).
    pub fn new(
        phase: Phase,
        kind: StatementKind,
        table: Option<&TableName>,
        object: String,
        sql: String,
    ) -> Self {
        Self {
            phase,
            kind,
            table: table.cloned(),
            object,
            sql,
        }
    }
}

/// When a statement runs relative to the bulk copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Before the bulk copy.
    PreData,
    /// After the bulk copy.
    PostData,
}

/// What a statement creates or sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatementKind {
    /// `CREATE SCHEMA`.
    Schema,
    /// `CREATE TYPE … AS ENUM` / `CREATE DOMAIN` (same-engine plans).
    Type,
    /// `CREATE SEQUENCE` / `ALTER SEQUENCE … OWNED BY` for an `AUTO_INCREMENT` column that
    /// cannot be an identity column.
    Sequence,
    /// `CREATE TABLE`.
    Table,
    /// `COMMENT ON`.
    Comment,
    /// A primary key added after the copy (only when it covers a generated column).
    PrimaryKey,
    /// `CREATE INDEX`.
    Index,
    /// `CREATE UNIQUE INDEX`.
    UniqueIndex,
    /// `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY`.
    ForeignKey,
    /// A trigger function or trigger (`ON UPDATE CURRENT_TIMESTAMP`).
    Trigger,
    /// `ALTER TABLE … ADD COLUMN … GENERATED ALWAYS AS`.
    GeneratedColumn,
    /// `setval` past the copied maximum and the source's `AUTO_INCREMENT` counter.
    SequenceReset,
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Schema => "schema",
            Self::Type => "type",
            Self::Sequence => "sequence",
            Self::Table => "table",
            Self::Comment => "comment",
            Self::PrimaryKey => "primary key",
            Self::Index => "index",
            Self::UniqueIndex => "unique index",
            Self::ForeignKey => "foreign key",
            Self::Trigger => "trigger",
            Self::GeneratedColumn => "generated column",
            Self::SequenceReset => "sequence reset",
        })
    }
}

/// Something that cannot be translated as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The source object: `shop.orders`, `shop.orders.location`, `shop.orders.idx_name`.
    pub object: String,
    /// What is wrong, naming the object (lowercase, no trailing period).
    pub message: String,
    /// Whether the task must stop (else it is a note the user should read).
    pub blocking: bool,
}

impl Problem {
    pub(crate) fn blocking(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            message: message.into(),
            blocking: true,
        }
    }

    pub(crate) fn note(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            message: message.into(),
            blocking: false,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
