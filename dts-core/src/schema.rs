//! The schema model: what a source reader produces and the schema translator consumes.
//!
//! Types are kept as the source engine declares them ([`Column::source_type`], e.g.
//! `int(10) unsigned` or `enum('a','b')`); the type-mapping crate parses and maps them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A qualified table name: schema (MySQL database) and table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    /// The schema (a database in MySQL terms).
    pub schema: String,
    /// The table.
    pub name: String,
}

impl TableName {
    /// A qualified name from its parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A set of schemas read from one server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The schemas, in name order.
    pub schemas: Vec<Schema>,
    /// User-defined types of the schemas (PostgreSQL enums and domains), in an order they
    /// can be created in. Empty for engines without them; absent from catalogs stored
    /// before types were read.
    #[serde(default)]
    pub types: Vec<UserType>,
    /// Indexes and constraints of the selected tables that the schema model cannot
    /// describe (PostgreSQL expression, partial and `INCLUDE` indexes, access methods other
    /// than B-tree and hash, exclusion constraints): read, left out of the tables, and
    /// named here so each planner decides (refused between PostgreSQL servers, left out
    /// with a warning into MySQL). Empty for MySQL sources.
    #[serde(default)]
    pub omitted_indexes: Vec<OmittedIndex>,
}

/// An index or constraint a source has that the schema model cannot describe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmittedIndex {
    /// The table it is on.
    pub table: TableName,
    /// Its name.
    pub name: String,
    /// Whether it enforces uniqueness (a unique index or an exclusion constraint).
    pub unique: bool,
    /// Why the model cannot describe it (`partial indexes are not supported`).
    pub reason: String,
    /// Its definition as the source prints it.
    pub definition: String,
}

/// A user-defined type (PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserType {
    /// Qualified name: schema and type name.
    pub name: TableName,
    /// What the type is.
    pub kind: UserTypeKind,
    /// Type comment, if non-empty.
    #[serde(default)]
    pub comment: Option<String>,
}

/// What a user-defined type is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UserTypeKind {
    /// An enum: its labels in sort order.
    Enum {
        /// The labels, in their sort order.
        labels: Vec<String>,
    },
    /// A domain over another type.
    Domain {
        /// The underlying type as the engine prints it (`integer`, `public.mood`,
        /// `character varying(20)`).
        base: String,
        /// A collation other than the base type's, quoted as SQL names it.
        collation: Option<String>,
        /// The default expression, if any.
        default: Option<String>,
        /// Whether the domain is `NOT NULL`.
        not_null: bool,
        /// `CHECK` constraints: name and definition as the engine prints it
        /// (`CHECK ((VALUE > 0))`).
        checks: Vec<(String, String)>,
    },
}

impl Catalog {
    /// All tables of all schemas.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.schemas.iter().flat_map(|s| s.tables.iter())
    }

    /// Looks up a table by name.
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables().find(|t| &t.name == name)
    }

    /// Looks up a table by name, to change it.
    pub fn table_mut(&mut self, name: &TableName) -> Option<&mut Table> {
        self.schemas
            .iter_mut()
            .flat_map(|s| s.tables.iter_mut())
            .find(|t| &t.name == name)
    }

    /// Keeps the tables `keep` selects (and the omitted indexes of those), dropping
    /// schemas left without tables.
    pub fn retain_tables(&mut self, mut keep: impl FnMut(&TableName) -> bool) {
        for schema in &mut self.schemas {
            schema.tables.retain(|t| keep(&t.name));
        }
        self.schemas.retain(|s| !s.tables.is_empty());
        self.omitted_indexes.retain(|o| keep(&o.table));
    }
}

/// One schema (a MySQL database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Schema name.
    pub name: String,
    /// Tables, in name order.
    pub tables: Vec<Table>,
}

/// A table with its columns, keys, indexes and foreign keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Qualified name.
    pub name: TableName,
    /// Columns in ordinal order.
    pub columns: Vec<Column>,
    /// The primary key, if any.
    pub primary_key: Option<Key>,
    /// Secondary indexes, unique or not (the primary key is not repeated here).
    pub indexes: Vec<Index>,
    /// Foreign keys declared on this table.
    pub foreign_keys: Vec<ForeignKey>,
    /// Table comment, if non-empty.
    pub comment: Option<String>,
    /// The server's estimate of the row count.
    pub estimated_rows: u64,
    /// The next `AUTO_INCREMENT` value the source would hand out, if known (PostgreSQL: the
    /// next value of the sequence of the table's only identity or serial column).
    pub auto_increment: Option<u64>,
}

impl Table {
    /// Looks up a column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The key used to split the table into chunks: the primary key, else the first unique
    /// index whose columns are all `NOT NULL`.
    pub fn chunk_key(&self) -> Option<Vec<String>> {
        if let Some(pk) = &self.primary_key {
            return Some(pk.columns.clone());
        }
        self.indexes
            .iter()
            .filter(|i| i.unique && i.columns.iter().all(|c| c.prefix_length.is_none()))
            .find(|i| {
                i.columns
                    .iter()
                    .all(|c| self.column(&c.name).is_some_and(|col| !col.nullable))
            })
            .map(|i| i.columns.iter().map(|c| c.name.clone()).collect())
    }
}

/// A column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// 1-based position in the table.
    pub ordinal: u32,
    /// The type as the source engine declares it, lowercase (`int(10) unsigned`).
    pub source_type: String,
    /// Whether the column accepts `NULL`.
    pub nullable: bool,
    /// The default value, if any.
    pub default: Option<ColumnDefault>,
    /// Whether values are generated by a sequence (`AUTO_INCREMENT`, identity).
    pub auto_increment: bool,
    /// Whether the value is set to the current time on every update
    /// (`ON UPDATE CURRENT_TIMESTAMP`).
    pub on_update_current_timestamp: bool,
    /// A generated (computed) column's expression.
    pub generated: Option<Generated>,
    /// Character set of a text column, if any.
    pub charset: Option<String>,
    /// Collation of a text column, if any.
    pub collation: Option<String>,
    /// Whether the source guarantees the text is JSON (MariaDB's `json_valid()` check).
    pub json_checked: bool,
    /// Column comment, if non-empty.
    pub comment: Option<String>,
}

impl Column {
    /// A nullable column of type `source_type` with nothing else declared: no default, not
    /// generated, no charset or comment, and ordinal 0 until it is placed in a table.
    pub fn new(name: impl Into<String>, source_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ordinal: 0,
            source_type: source_type.into(),
            nullable: true,
            default: None,
            auto_increment: false,
            on_update_current_timestamp: false,
            generated: None,
            charset: None,
            collation: None,
            json_checked: false,
            comment: None,
        }
    }
}

/// A column default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ColumnDefault {
    /// A literal value, as text (quotes removed).
    Literal(String),
    /// The current date/time (`CURRENT_TIMESTAMP`, `NOW()`), with fractional digits.
    CurrentTimestamp(u8),
    /// Any other expression, as the source wrote it.
    Expression(String),
    /// A PostgreSQL identity column (`GENERATED ALWAYS|BY DEFAULT AS IDENTITY`): values come
    /// from the column's own sequence. `always` forbids explicit values outside
    /// `OVERRIDING SYSTEM VALUE`.
    Identity {
        /// `GENERATED ALWAYS` (else `BY DEFAULT`).
        always: bool,
    },
}

/// A generated column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The expression, as the source wrote it.
    pub expression: String,
    /// Whether the value is stored (else computed on read).
    pub stored: bool,
}

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Constraint name, if the engine names it.
    pub name: Option<String>,
    /// Column names, in key order.
    pub columns: Vec<String>,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Index name (unique per table in MySQL).
    pub name: String,
    /// Whether the index is unique.
    pub unique: bool,
    /// The index kind.
    pub kind: IndexKind,
    /// Indexed columns, in order.
    pub columns: Vec<IndexColumn>,
}

/// The kind of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IndexKind {
    /// An ordinary B-tree index.
    BTree,
    /// A hash index.
    Hash,
    /// A full-text index.
    FullText,
    /// A spatial index.
    Spatial,
}

/// One column of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexColumn {
    /// Column name.
    pub name: String,
    /// For a prefix index, the number of leading characters (or bytes) indexed.
    pub prefix_length: Option<u32>,
    /// Whether the column is sorted descending.
    pub descending: bool,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns of this table.
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced_table: TableName,
    /// Referenced columns, matching [`ForeignKey::columns`] one to one.
    pub referenced_columns: Vec<String>,
    /// Action on delete of the parent row.
    pub on_delete: ReferentialAction,
    /// Action on update of the parent key.
    pub on_update: ReferentialAction,
}

/// What a foreign key does when the parent row changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReferentialAction {
    /// `NO ACTION` (the default).
    NoAction,
    /// `RESTRICT`.
    Restrict,
    /// `CASCADE`.
    Cascade,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`.
    SetDefault,
}

impl ReferentialAction {
    /// Parses the `information_schema` spelling (`NO ACTION`, `CASCADE`, …).
    pub fn from_sql(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NO ACTION" => Self::NoAction,
            "RESTRICT" => Self::Restrict,
            "CASCADE" => Self::Cascade,
            "SET NULL" => Self::SetNull,
            "SET DEFAULT" => Self::SetDefault,
            _ => return None,
        })
    }

    /// The SQL spelling.
    pub fn as_sql(&self) -> &'static str {
        match self {
            Self::NoAction => "NO ACTION",
            Self::Restrict => "RESTRICT",
            Self::Cascade => "CASCADE",
            Self::SetNull => "SET NULL",
            Self::SetDefault => "SET DEFAULT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, nullable: bool) -> Column {
        Column {
            ordinal: 1,
            nullable,
            ..Column::new(name, "int")
        }
    }

    #[test]
    fn catalogs_stored_without_types_still_read() {
        let old = r#"{"schemas":[]}"#;
        let c: Catalog = serde_json::from_str(old).unwrap();
        assert!(c.types.is_empty());
        let with = Catalog {
            schemas: vec![],
            types: vec![UserType {
                name: TableName::new("s", "mood"),
                kind: UserTypeKind::Enum {
                    labels: vec!["a".into()],
                },
                comment: None,
            }],
            omitted_indexes: vec![OmittedIndex {
                table: TableName::new("s", "t"),
                name: "t_part".into(),
                unique: false,
                reason: "partial indexes are not supported".into(),
                definition: "CREATE INDEX t_part ON s.t USING btree (a) WHERE (a > 0)".into(),
            }],
        };
        let back: Catalog = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn chunk_key_prefers_primary_then_not_null_unique() {
        let uniq = |name: &str, cols: &[&str]| Index {
            name: name.into(),
            unique: true,
            kind: IndexKind::BTree,
            columns: cols
                .iter()
                .map(|c| IndexColumn {
                    name: (*c).into(),
                    prefix_length: None,
                    descending: false,
                })
                .collect(),
        };
        let mut t = Table {
            name: TableName::new("s", "t"),
            columns: vec![col("a", true), col("b", false)],
            primary_key: None,
            indexes: vec![uniq("ua", &["a"]), uniq("ub", &["b"])],
            foreign_keys: vec![],
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        };
        assert_eq!(t.chunk_key(), Some(vec!["b".to_string()]));
        t.indexes.pop();
        assert_eq!(t.chunk_key(), None);
        t.primary_key = Some(Key {
            name: None,
            columns: vec!["a".into()],
        });
        assert_eq!(t.chunk_key(), Some(vec!["a".to_string()]));
    }
}
