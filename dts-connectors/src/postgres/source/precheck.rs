//! Prechecks of a PostgreSQL source.

use dts_core::{CheckStatus, PrecheckReport, Result, TableName};
use dts_schema::SchemaPlan;
use dts_typemap::DataCheck;
use tokio_postgres::Client;

use super::snapshot::quote_ident;
use super::PgSource;
use crate::postgres::error::map_error;

/// A table and its columns' data checks.
type TableChecks<'a> = (&'a TableName, Vec<(String, DataCheck)>);

/// Counts, in one scan of `table` (with its partitions, without inheritance children), the
/// rows each of `predicates` holds for.
async fn count_many(client: &Client, table: &TableName, predicates: &[&str]) -> Result<Vec<u64>> {
    let what = || format!("checking values of `{table}`");
    let qualified = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    let partitioned: bool = client
        .query_one(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = $1::text::regclass",
            &[&qualified],
        )
        .await
        .map_err(|e| map_error(e, what()))?
        .get(0);
    let counts: Vec<String> = predicates
        .iter()
        .map(|p| format!("count(*) FILTER (WHERE {p})"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{qualified}",
        counts.join(", "),
        if partitioned { "" } else { "ONLY " }
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| map_error(e, what()))?;
    Ok((0..predicates.len())
        .map(|i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0))
        .collect())
}

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

    /// `source.leftovers`: a warning naming the replication slots (and publications) an
    /// earlier dts task left on the source server, other than `own` (this task's), with the
    /// WAL each holds back: an inactive slot keeps every WAL segment since its position, until
    /// the disk fills.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_leftovers(&self, r: &mut PrecheckReport, own: &str) -> Result<()> {
        let what = "looking for replication slots and publications of earlier tasks";
        let slots = self
            .client()
            .query(
                "SELECT format('%s (database %s, %s of WAL held back)', slot_name, \
                               coalesce(database, '-'), \
                               pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), \
                                                              restart_lsn))) \
                 FROM pg_replication_slots \
                 WHERE slot_name LIKE 'dts\\_%' AND slot_name <> $1 \
                   AND NOT active AND NOT temporary ORDER BY slot_name",
                &[&own],
            )
            .await
            .map_err(|e| map_error(e, what))?;
        let publications = self
            .client()
            .query(
                "SELECT pubname::text FROM pg_publication \
                 WHERE pubname LIKE 'dts\\_%' AND pubname <> $1 ORDER BY pubname",
                &[&own],
            )
            .await
            .map_err(|e| map_error(e, what))?;
        let slots: Vec<String> = slots.iter().map(|row| row.get(0)).collect();
        let publications: Vec<String> = publications.iter().map(|row| row.get(0)).collect();
        if slots.is_empty() && publications.is_empty() {
            r.pass(
                "source.leftovers",
                "no replication slot or publication of another dts task",
            );
            return Ok(());
        }
        let mut found = Vec::new();
        if !slots.is_empty() {
            found.push(format!("inactive replication slots {}", slots.join(", ")));
        }
        if !publications.is_empty() {
            found.push(format!(
                "publications in this database {}",
                publications.join(", ")
            ));
        }
        r.push(
            "source.leftovers",
            CheckStatus::Warn,
            format!("earlier dts tasks left {}", found.join("; ")),
            "run `dts cleanup --config TASK.toml --yes` with the task file that made them, or \
             drop them: SELECT pg_drop_replication_slot('…'); DROP PUBLICATION …",
        );
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

    /// `source.values`. Into PostgreSQL, values are copied as they are (the copy stops on
    /// values the value model cannot carry: BC dates and timestamps). Into MySQL (a plan
    /// whose columns have [`PgToMySqlMapping`](dts_typemap::PgToMySqlMapping)s), counts per
    /// column the values the mapping cannot hold
    /// ([`dts_typemap::pg_data_checks`]: `NaN` and infinities, dates outside years
    /// 1–9999, numerics too large for their `decimal`, text too long for a key column, …),
    /// one scan per table, up to `workers` tables at a time; blocking ones fail the check
    /// when `stop_on_bad_rows`, and warn otherwise (the rows go to the reject file).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_values(
        &self,
        r: &mut PrecheckReport,
        plan: &SchemaPlan,
        workers: usize,
        stop_on_bad_rows: bool,
    ) -> Result<()> {
        let scans: Vec<TableChecks<'_>> = plan
            .tables
            .iter()
            .map(|tp| {
                let checks = tp
                    .copied_columns()
                    .filter_map(|c| c.pg_to_mysql.as_ref().map(|m| (c, m)))
                    .flat_map(|(c, m)| {
                        dts_typemap::pg_data_checks(m, &quote_ident(&c.source_name))
                            .into_iter()
                            .map(|check| (c.source_name.clone(), check))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>();
                (&tp.source, checks)
            })
            .filter(|(_, checks)| !checks.is_empty())
            .collect();
        if scans.is_empty() {
            r.pass(
                "source.values",
                "values are copied as they are; the copy checks every value",
            );
            return Ok(());
        }
        // One connection per worker, each scanning its share of the tables in turn.
        let workers = workers.clamp(1, scans.len());
        let mut clients = Vec::with_capacity(workers);
        for _ in 0..workers {
            clients.push(super::connect_source(self.options()).await?);
        }
        let mut shares: Vec<Vec<&TableChecks<'_>>> = vec![Vec::new(); workers];
        for (i, s) in scans.iter().enumerate() {
            shares[i % workers].push(s);
        }
        let results = futures::future::join_all(clients.iter().zip(shares).map(
            |(client, share)| async move {
                let mut out = Vec::new();
                for (table, checks) in share {
                    let predicates: Vec<&str> =
                        checks.iter().map(|(_, c)| c.predicate.as_str()).collect();
                    out.push((
                        *table,
                        checks,
                        count_many(client, table, &predicates).await?,
                    ));
                }
                Ok::<_, dts_core::Error>(out)
            },
        ))
        .await;
        let mut scanned = Vec::new();
        for result in results {
            for (table, checks, counts) in result? {
                scanned.push((table.to_string(), &checks[..], counts));
            }
        }
        crate::precheck::push_value_findings(r, scanned, stop_on_bad_rows);
        Ok(())
    }

    /// The checks change capture needs: `source.wal` (`wal_level = logical`, the
    /// `REPLICATION` attribute, a free slot and WAL sender, and the right to create the
    /// task's publication: `CREATE` on the database and ownership of every selected table),
    /// `source.replica_identity` (a table without a primary key needs `REPLICA IDENTITY
    /// FULL`, or a unique index as its identity, for its updates and deletes to carry the
    /// old row) and `source.wal_retention` (a warning when `max_slot_wal_keep_size` may
    /// make the server drop WAL the slot still needs).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_log(&self, r: &mut PrecheckReport, tables: &[TableName]) -> Result<()> {
        let rep = self.replication().await?;
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        if rep.wal_level != "logical" {
            problems.push(format!("wal_level is `{}`", rep.wal_level));
            fixes.push("set wal_level = logical and restart the server".to_string());
        }
        if !rep.may_replicate {
            problems.push("the source account has no REPLICATION attribute".to_string());
            fixes.push("ALTER ROLE the source account WITH REPLICATION".to_string());
        }
        if rep.free_slots < 1 {
            problems.push("no replication slot is free".to_string());
            fixes.push("raise max_replication_slots or drop unused slots".to_string());
        }
        if rep.free_senders < 1 {
            problems.push("no WAL sender is free".to_string());
            fixes.push("raise max_wal_senders".to_string());
        }
        let names: Vec<String> = tables.iter().map(|t| t.schema.clone()).collect();
        let relnames: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        let rows = self
            .client()
            .query(
                "SELECT t.schema, t.name, c.relreplident::text, \
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
                                AND i.indisprimary), \
                        pg_has_role(current_user, c.relowner, 'USAGE') \
                 FROM unnest($1::text[], $2::text[]) AS t(schema, name) \
                 JOIN pg_namespace n ON n.nspname = t.schema \
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name",
                &[&names, &relnames],
            )
            .await
            .map_err(|e| map_error(e, "reading the replica identity of the source tables"))?;
        let may_create: bool = self
            .client()
            .query_one(
                "SELECT has_database_privilege(current_database(), 'CREATE') \
                        OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "reading the source account's privileges"))?
            .get(0);
        if !may_create {
            problems.push("the source account may not create publications".to_string());
            fixes.push("GRANT CREATE ON DATABASE the source database TO the source account".into());
        }
        let quoted = |schema: &str, name: &str| {
            format!(
                "\"{}\".\"{}\"",
                schema.replace('"', "\"\""),
                name.replace('"', "\"\"")
            )
        };
        let not_owned: Vec<String> = rows
            .iter()
            .filter(|row| !row.get::<_, bool>(4))
            .map(|row| quoted(row.get(0), row.get(1)))
            .collect();
        if !not_owned.is_empty() {
            problems.push(format!(
                "the source account does not own {} (a publication of a table needs its owner)",
                not_owned.join(", ")
            ));
            fixes.push("run the task as the tables' owner, or a superuser".into());
        }
        if problems.is_empty() {
            r.pass(
                "source.wal",
                "logical decoding through the task's replication slot and publication",
            );
        } else {
            r.push(
                "source.wal",
                CheckStatus::Fail,
                format!(
                    "change capture needs logical decoding: {}",
                    problems.join("; ")
                ),
                fixes.join("; "),
            );
        }
        let lacking: Vec<String> = rows
            .iter()
            .filter(|row| {
                let ident: String = row.get(2);
                ident == "n" || (ident == "d" && !row.get::<_, bool>(3))
            })
            .map(|row| quoted(row.get(0), row.get(1)))
            .collect();
        if lacking.is_empty() {
            r.pass(
                "source.replica_identity",
                "every selected table's updates and deletes carry its key or its old row",
            );
        } else {
            r.push(
                "source.replica_identity",
                CheckStatus::Fail,
                format!(
                    "{} have neither a primary key nor a replica identity: their updates and \
                     deletes cannot be replicated (the source refuses them once published)",
                    lacking.join(", ")
                ),
                lacking
                    .iter()
                    .map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY FULL;"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let keep: String = self
            .client()
            .query_one("SELECT current_setting('max_slot_wal_keep_size')", &[])
            .await
            .map_err(|e| map_error(e, "reading max_slot_wal_keep_size"))?
            .get(0);
        if keep == "-1" {
            r.pass(
                "source.wal_retention",
                "the slot keeps the WAL until the target has applied it",
            );
        } else {
            r.push(
                "source.wal_retention",
                CheckStatus::Warn,
                format!(
                    "max_slot_wal_keep_size is {keep}: if replication falls that far behind, \
                     the server invalidates the slot and the task must start again"
                ),
                "set max_slot_wal_keep_size = -1, or keep replication running",
            );
        }
        Ok(())
    }
}
