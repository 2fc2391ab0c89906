//! Prechecks of a PostgreSQL source.

use dts_core::{CheckStatus, PrecheckReport, Result, TableName};

use super::PgSource;
use crate::postgres::error::map_error;

/// What the server's settings and the account allow for logical decoding.
struct Replication {
    wal_level: String,
    may_replicate: bool,
    free_slots: i64,
    free_senders: i64,
}

impl PgSource {
    /// `source.version`: PostgreSQL 12 or later.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        if self.info().version_num >= 120_000 {
            r.pass("source.version", self.info().version.clone());
        } else {
            r.push(
                "source.version",
                CheckStatus::Fail,
                format!("source version {} is too old", self.info().version),
                "use PostgreSQL 12 or later",
            );
        }
    }

    /// `source.privileges`: the account may use every selected schema and read every
    /// selected table.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        tables: &[TableName],
    ) -> Result<()> {
        let (names, rels): (Vec<String>, Vec<String>) = tables
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .unzip();
        let rows = self
            .client()
            .query(
                "SELECT s || '.' || t FROM unnest($1::text[], $2::text[]) AS x(s, t) \
                 WHERE NOT has_schema_privilege(s, 'USAGE') \
                    OR NOT has_table_privilege(quote_ident(s) || '.' || quote_ident(t), 'SELECT') \
                 UNION ALL \
                 SELECT s FROM unnest($3::text[]) AS y(s) \
                 WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) \
                   AND NOT has_schema_privilege(s, 'USAGE')",
                &[&names, &rels, &schemas],
            )
            .await
            .map_err(|e| map_error(e, "checking source privileges"))?;
        let mut missing: Vec<String> = rows
            .iter()
            .map(|row| format!("`{}`", row.get::<_, String>(0)))
            .collect();
        missing.dedup();
        if missing.is_empty() {
            r.pass("source.privileges", "every selected table is readable");
        } else {
            r.push(
                "source.privileges",
                CheckStatus::Fail,
                format!("the source account cannot read {}", missing.join(", ")),
                "GRANT USAGE ON SCHEMA and SELECT ON the tables to the source account",
            );
        }
        Ok(())
    }

    async fn replication(&self) -> Result<Replication> {
        let row = self
            .client()
            .query_one(
                "SELECT current_setting('wal_level'), \
                        (SELECT rolreplication OR rolsuper FROM pg_roles \
                         WHERE rolname = current_user), \
                        current_setting('max_replication_slots')::int8 \
                          - (SELECT count(*) FROM pg_replication_slots), \
                        current_setting('max_wal_senders')::int8 \
                          - (SELECT count(*) FROM pg_stat_replication)",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "reading source replication settings"))?;
        Ok(Replication {
            wal_level: row.get(0),
            may_replicate: row.get::<_, Option<bool>>(1).unwrap_or(false),
            free_slots: row.get(2),
            free_senders: row.get(3),
        })
    }

    /// `source.snapshot`: parallel readers share one snapshot exported by a logical
    /// replication slot, which needs `wal_level = logical`, the `REPLICATION` attribute (or
    /// superuser), a free replication slot and a free WAL sender.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_snapshot(&self, r: &mut PrecheckReport, _workers: usize) -> Result<()> {
        let rep = self.replication().await?;
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        if rep.wal_level != "logical" {
            problems.push(format!("wal_level is `{}`", rep.wal_level));
            fixes.push("set wal_level = logical and restart the server");
        }
        if !rep.may_replicate {
            problems.push("the source account has no REPLICATION attribute".to_string());
            fixes.push("ALTER ROLE the source account WITH REPLICATION");
        }
        if rep.free_slots < 1 {
            problems.push("no replication slot is free".to_string());
            fixes.push("raise max_replication_slots or drop unused slots");
        }
        if rep.free_senders < 1 {
            problems.push("no WAL sender is free".to_string());
            fixes.push("raise max_wal_senders");
        }
        if problems.is_empty() {
            r.pass(
                "source.snapshot",
                "parallel readers share one snapshot exported by a temporary logical slot",
            );
        } else {
            r.push(
                "source.snapshot",
                CheckStatus::Fail,
                format!(
                    "the consistent snapshot needs a logical replication slot: {}",
                    problems.join("; ")
                ),
                fixes.join("; "),
            );
        }
        Ok(())
    }

    /// `source.values`: the mapping between PostgreSQL servers keeps every value as it
    /// is; values the value model cannot carry (`NaN` and infinite `numeric`, infinite or
    /// BC dates and timestamps) stop the copy naming table and column.
    ///
    /// # Errors
    ///
    /// None today; the signature matches the other sources'.
    pub async fn precheck_values(&self, r: &mut PrecheckReport) -> Result<()> {
        r.pass(
            "source.values",
            "values are copied as they are; the copy checks every value",
        );
        Ok(())
    }

    /// The checks change capture needs. Change capture from PostgreSQL is not available
    /// yet, so `source.wal` fails saying so.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_log(&self, r: &mut PrecheckReport) -> Result<()> {
        r.push(
            "source.wal",
            CheckStatus::Fail,
            "change capture from PostgreSQL is not available in this release",
            "run schema and full migration only",
        );
        Ok(())
    }
}
