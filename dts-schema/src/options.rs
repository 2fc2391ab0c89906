//! What the user chose: identifier case, renames and the type-mapping options, and the one
//! place that turns a source name into its target name.

use std::collections::{BTreeMap, BTreeSet};

use dts_core::TableName;
use dts_typemap::MappingOptions;

use crate::ident::{fit_identifier, IdentifierCase};

/// Options of a schema translation.
///
/// The default lowercases identifiers, renames nothing and uses the lossless type mapping.
/// Renames are taken verbatim (the case policy does not touch them); every target name,
/// renamed or not, is fitted to PostgreSQL's 63-byte limit by
/// [`fit_identifier`](crate::fit_identifier).
///
/// Other crates map names through [`SchemaOptions::target_table`] and
/// [`SchemaOptions::target_column`] so the copy, the change capture and the DDL always agree.
#[derive(Debug, Clone, Default)]
pub struct SchemaOptions {
    /// How identifiers are spelled in the target.
    pub case: IdentifierCase,
    /// Source schema → target schema name.
    pub schema_renames: BTreeMap<String, String>,
    /// Source table → target table name (the schema comes from `schema_renames` and `case`).
    pub table_renames: BTreeMap<TableName, String>,
    /// (source table, source column) → target column name.
    pub column_renames: BTreeMap<(TableName, String), String>,
    /// The column selection of source tables that migrate only some of their columns. A
    /// column left out is not in the catalog the plan is made from; replication follows
    /// this selection for columns added, changed or dropped later (DDL on a column left
    /// out is skipped, a column added to a table with [`ColumnFilter::Include`] is left
    /// out).
    pub columns: BTreeMap<TableName, ColumnFilter>,
    /// Type-mapping choices.
    pub mapping: MappingOptions,
    /// Create primary keys after the data (post-data), as a bulk index build, instead of
    /// in `CREATE TABLE`. Faster when a full load follows; the copy's checkpoints already
    /// guarantee no row is written twice.
    pub primary_keys_after_data: bool,
    /// The target server's version (`SELECT VERSION()`), when known. Plans into MySQL and
    /// MariaDB spell a few things per server family ([`dts_typemap::MySqlFlavor`]): the
    /// binary `NO PAD` collation is `utf8mb4_nopad_bin` on MariaDB and `utf8mb4_0900_bin`
    /// on MySQL 8. Unknown, MariaDB's spellings are used.
    pub target_version: Option<String>,
}

/// Which columns of a table migrate. Column names compare ASCII case-insensitively (as
/// MySQL compares them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnFilter {
    /// Only these columns migrate.
    Include(BTreeSet<String>),
    /// Every column but these migrates.
    Exclude(BTreeSet<String>),
}

impl ColumnFilter {
    /// The columns the filter names (included or excluded).
    pub fn names(&self) -> &BTreeSet<String> {
        match self {
            ColumnFilter::Include(set) | ColumnFilter::Exclude(set) => set,
        }
    }

    /// Whether column `name` migrates.
    pub fn keeps(&self, name: &str) -> bool {
        let named = |set: &BTreeSet<String>| set.iter().any(|c| c.eq_ignore_ascii_case(name));
        match self {
            ColumnFilter::Include(set) => named(set),
            ColumnFilter::Exclude(set) => !named(set),
        }
    }
}

impl SchemaOptions {
    /// Sets the column selection of a source table.
    #[must_use]
    pub fn select_columns(mut self, table: TableName, filter: ColumnFilter) -> Self {
        self.columns.insert(table, filter);
        self
    }

    /// Whether column `column` of source table `table` migrates (every column of a table
    /// without a column selection does).
    pub fn keeps_column(&self, table: &TableName, column: &str) -> bool {
        self.columns.get(table).is_none_or(|f| f.keeps(column))
    }

    /// Sets the identifier case policy.
    #[must_use]
    pub fn with_case(mut self, case: IdentifierCase) -> Self {
        self.case = case;
        self
    }

    /// Renames a source schema.
    #[must_use]
    pub fn rename_schema(mut self, source: impl Into<String>, target: impl Into<String>) -> Self {
        self.schema_renames.insert(source.into(), target.into());
        self
    }

    /// Renames a source table (its schema follows the schema rules).
    #[must_use]
    pub fn rename_table(mut self, source: TableName, target: impl Into<String>) -> Self {
        self.table_renames.insert(source, target.into());
        self
    }

    /// Renames a column of a source table.
    #[must_use]
    pub fn rename_column(
        mut self,
        table: TableName,
        source: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        self.column_renames
            .insert((table, source.into()), target.into());
        self
    }

    /// Sets the type-mapping options.
    #[must_use]
    pub fn with_mapping(mut self, mapping: MappingOptions) -> Self {
        self.mapping = mapping;
        self
    }

    /// Sets the target server's version.
    #[must_use]
    pub fn with_target_version(mut self, version: impl Into<String>) -> Self {
        self.target_version = Some(version.into());
        self
    }

    /// The MySQL server family of the target, from [`SchemaOptions::target_version`].
    pub fn mysql_flavor(&self) -> dts_typemap::MySqlFlavor {
        self.target_version
            .as_deref()
            .map(dts_typemap::MySqlFlavor::from_version)
            .unwrap_or_default()
    }

    /// The target name of a source schema.
    pub fn target_schema(&self, schema: &str) -> String {
        match self.schema_renames.get(schema) {
            Some(renamed) => fit_identifier(renamed),
            None => fit_identifier(&self.case.apply(schema)),
        }
    }

    /// The target name of a source table.
    pub fn target_table(&self, table: &TableName) -> TableName {
        let name = match self.table_renames.get(table) {
            Some(renamed) => fit_identifier(renamed),
            None => fit_identifier(&self.case.apply(&table.name)),
        };
        TableName::new(self.target_schema(&table.schema), name)
    }

    /// The target name of a column of a source table.
    pub fn target_column(&self, table: &TableName, column: &str) -> String {
        match self
            .column_renames
            .get(&(table.clone(), column.to_string()))
        {
            Some(renamed) => fit_identifier(renamed),
            None => fit_identifier(&self.case.apply(column)),
        }
    }

    /// The unfitted spelling of a name under the case policy and renames, used to tell the
    /// user when a name had to be cut.
    pub(crate) fn spelled_table(&self, table: &TableName) -> String {
        self.table_renames
            .get(table)
            .cloned()
            .unwrap_or_else(|| self.case.apply(&table.name))
    }

    pub(crate) fn spelled_schema(&self, schema: &str) -> String {
        self.schema_renames
            .get(schema)
            .cloned()
            .unwrap_or_else(|| self.case.apply(schema))
    }

    pub(crate) fn spelled_column(&self, table: &TableName, column: &str) -> String {
        self.column_renames
            .get(&(table.clone(), column.to_string()))
            .cloned()
            .unwrap_or_else(|| self.case.apply(column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_case_and_renames() {
        let t = TableName::new("Shop", "CamelTable");
        let lower = SchemaOptions::default();
        assert_eq!(lower.target_table(&t), TableName::new("shop", "cameltable"));
        assert_eq!(lower.target_column(&t, "MixedCol"), "mixedcol");

        let keep = SchemaOptions::default().with_case(IdentifierCase::Keep);
        assert_eq!(keep.target_table(&t), TableName::new("Shop", "CamelTable"));

        let renamed = SchemaOptions::default()
            .rename_schema("Shop", "Store")
            .rename_table(t.clone(), "Things")
            .rename_column(t.clone(), "MixedCol", "Renamed");
        assert_eq!(renamed.target_table(&t), TableName::new("Store", "Things"));
        assert_eq!(renamed.target_column(&t, "MixedCol"), "Renamed");
        assert_eq!(renamed.target_column(&t, "Other"), "other");
    }

    #[test]
    fn long_names_are_fitted() {
        let t = TableName::new("s", "x".repeat(70));
        let target = SchemaOptions::default().target_table(&t);
        assert_eq!(target.name.len(), 63);
    }
}
