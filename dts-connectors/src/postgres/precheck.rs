//! Prechecks only a PostgreSQL target can answer: version, privileges, the replication role.

use std::collections::BTreeSet;

use dts_core::{CheckStatus, PrecheckReport, Result, TableName};

use super::target::PgTarget;

impl PgTarget {
    /// `target.version`: PostgreSQL 12 or later.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        if self.major_version() >= 12 {
            r.pass("target.version", self.version().to_string());
        } else {
            r.push(
                "target.version",
                CheckStatus::Fail,
                format!("target version {} is too old", self.version()),
                "use PostgreSQL 12 or later",
            );
        }
    }

    /// `target.privileges`: the account may create the target schemas (those that do not
    /// exist yet) and tables in them. `existing` are the tables found in those schemas.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        existing: &BTreeSet<TableName>,
    ) -> Result<()> {
        let (can_create_schema, dbname) = self.can_create_schemas().await?;
        let no_create = self.schemas_without_create(schemas).await?;
        let existing_schemas: BTreeSet<&String> = existing.iter().map(|t| &t.schema).collect();
        let need_schema_create = schemas.iter().any(|s| !existing_schemas.contains(s));
        if !no_create.is_empty() {
            r.push(
                "target.privileges",
                CheckStatus::Fail,
                format!(
                    "the target account cannot create tables in schema {}",
                    no_create.join(", ")
                ),
                "GRANT CREATE ON SCHEMA <schema> TO the target account",
            );
        } else if need_schema_create && !can_create_schema {
            r.push(
                "target.privileges",
                CheckStatus::Fail,
                format!("the target account cannot create schemas in database `{dbname}`"),
                format!(
                    "GRANT CREATE ON DATABASE {} TO the target account",
                    dts_schema::quote_ident(&dbname)
                ),
            );
        } else {
            r.pass(
                "target.privileges",
                "may create the target schemas and tables",
            );
        }
        Ok(())
    }

    /// `target.replication_role`: the account may set `session_replication_role`, which
    /// applying replicated changes needs.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_apply(&self, r: &mut PrecheckReport) -> Result<()> {
        if self.can_set_replication_role().await? {
            r.pass(
                "target.replication_role",
                "may set session_replication_role (triggers off while applying)",
            );
        } else {
            r.push(
                "target.replication_role",
                CheckStatus::Fail,
                "the target account may not set session_replication_role, which applying \
                 changes needs so that triggers and foreign keys do not fire twice",
                "use a superuser, or on PostgreSQL 15+: GRANT SET ON PARAMETER \
                 session_replication_role TO the target account",
            );
        }
        Ok(())
    }
}
