//! Prechecks only a MySQL/MariaDB source can answer: version, privileges, the snapshot lock,
//! values the type mapping cannot hold, and the binlog settings change capture needs.

use dts_core::{CheckStatus, Error, ErrorKind, PrecheckReport, Result, TableName};
use dts_schema::SchemaPlan;
use dts_typemap::MappingOptions;
use futures::StreamExt;

use super::source::MySqlSource;

impl MySqlSource {
    /// `source.version`: MariaDB 10.2 or later, or MySQL 5.7 or later.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        let info = self.info();
        let ok = if info.is_mariadb {
            info.major_minor >= (10, 2)
        } else {
            info.major_minor >= (5, 7)
        };
        if ok {
            r.pass("source.version", info.version.clone());
        } else {
            r.push(
                "source.version",
                CheckStatus::Fail,
                format!("source version {} is too old", info.version),
                "use MariaDB 10.2 or later, or MySQL 5.7 or later",
            );
        }
    }

    /// `source.privileges`: the account can `SELECT` every selected table, and has a
    /// database-level `SELECT` on every selected database (tables it has no privilege on are
    /// invisible, so they would be left out unseen).
    ///
    /// # Errors
    ///
    /// Server errors other than missing privileges.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        databases: &[String],
        tables: &[TableName],
    ) -> Result<()> {
        // Source privileges: every selected table must be readable.
        let mut unreadable = Vec::new();
        for t in tables {
            if let Err(e) = self.check_select(t).await {
                if e.kind() == ErrorKind::Privilege {
                    unreadable.push(format!("`{t}`"));
                } else {
                    return Err(e);
                }
            }
        }
        // Tables the account has no privilege on are invisible in information_schema: a
        // database-level SELECT is needed so that no table is left out unseen.
        let grants = self.grants().await?;
        let dbs_without_select: Vec<String> = databases
            .iter()
            .filter(|d| !has_database_select(&grants, d))
            .map(|d| format!("`{d}`"))
            .collect();
        if !dbs_without_select.is_empty() {
            r.push(
                "source.privileges",
                CheckStatus::Fail,
                format!(
                    "the source account has no SELECT on all tables of {}: tables it cannot see \
                     would not be migrated{}",
                    dbs_without_select.join(", "),
                    if unreadable.is_empty() {
                        String::new()
                    } else {
                        format!("; it cannot SELECT from {}", unreadable.join(", "))
                    }
                ),
                "GRANT SELECT ON <database>.* TO the source account",
            );
        } else if unreadable.is_empty() {
            r.pass("source.privileges", "SELECT on every selected table");
        } else {
            r.push(
                "source.privileges",
                CheckStatus::Fail,
                format!(
                    "the source account cannot SELECT from {}",
                    unreadable.join(", ")
                ),
                "GRANT SELECT ON <database>.* TO the source account",
            );
        }
        Ok(())
    }

    /// `source.snapshot`: whether parallel readers can share one snapshot (the brief global
    /// read lock needs `RELOAD`).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_snapshot(&self, r: &mut PrecheckReport, workers: usize) -> Result<()> {
        let grants = self.grants().await?.join("\n").to_ascii_uppercase();
        let reload = grants.contains("ALL PRIVILEGES ON *.*") || grants.contains("RELOAD");
        if reload || workers <= 1 {
            r.pass(
                "source.snapshot",
                "parallel readers share one consistent snapshot",
            );
        } else {
            r.push(
                "source.snapshot",
                CheckStatus::Warn,
                "the source account lacks RELOAD: the snapshot cannot be shared by parallel \
                 readers, so the copy reads through one connection",
                "GRANT RELOAD ON *.* TO the source account for parallel reads",
            );
        }
        Ok(())
    }

    /// `source.values`: counts, per column, the values the type mapping cannot hold (one scan
    /// per table, `workers` tables at a time). Blocking problems fail the check when `stop_on_bad_rows`,
    /// and warn otherwise (the rows go to the reject file).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_values(
        &self,
        r: &mut PrecheckReport,
        plan: &SchemaPlan,
        options: &MappingOptions,
        workers: usize,
        stop_on_bad_rows: bool,
    ) -> Result<()> {
        // One scan per table counts every check of every column; tables are scanned
        // concurrently.
        let options = *options;
        let scans = plan.tables.iter().map(|tp| {
            let checks: Vec<(String, dts_typemap::DataCheck)> = tp
                .columns
                .iter()
                .filter(|c| c.copied)
                .filter_map(|col| col.mapping.as_ref().map(|mapping| (col, mapping)))
                .flat_map(|(col, mapping)| {
                    let quoted = format!("`{}`", col.source_name.replace('`', "``"));
                    dts_typemap::mysql_data_checks(mapping, &quoted, &options)
                        .into_iter()
                        .map(|check| (col.source_name.clone(), check))
                        .collect::<Vec<_>>()
                })
                .collect();
            async move {
                let predicates: Vec<String> =
                    checks.iter().map(|(_, c)| c.predicate.clone()).collect();
                let counts = self.count_many(&tp.source, &predicates).await?;
                Ok::<_, Error>((tp, checks, counts))
            }
        });
        let results: Vec<_> = futures::stream::iter(scans)
            .buffer_unordered(workers)
            .collect::<Vec<_>>()
            .await;
        let scanned = results.into_iter().collect::<Result<Vec<_>>>()?;
        crate::precheck::push_value_findings(
            r,
            scanned
                .iter()
                .map(|(tp, checks, counts)| (tp.source.to_string(), &checks[..], counts.clone())),
            stop_on_bad_rows,
        );
        Ok(())
    }

    /// `source.binlog`, `source.replication_privileges`, `source.binlog_retention`: the
    /// binlog settings, privileges and retention change capture needs.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_binlog(&self, r: &mut PrecheckReport) -> Result<()> {
        let vars = self
            .variables(&[
                "log_bin",
                "binlog_format",
                "binlog_row_image",
                "binlog_row_metadata",
                "server_id",
                "expire_logs_days",
                "binlog_expire_logs_seconds",
            ])
            .await?;
        let get = |k: &str| vars.get(k).map(|v| v.to_ascii_uppercase());
        let mut wrong = Vec::new();
        let mut fixes = Vec::new();
        for (name, want) in [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
        ] {
            match get(name) {
                Some(v) if v == want => {}
                Some(v) => {
                    wrong.push(format!("{name} is {v}, needs {want}"));
                    fixes.push(if name == "log_bin" {
                        "start the server with log-bin".to_string()
                    } else {
                        format!("SET GLOBAL {name} = '{want}' (and in the server's configuration)")
                    });
                }
                None => {
                    wrong.push(format!(
                        "{name} is not available (MariaDB 10.5+ or MySQL 8.0 needed)"
                    ));
                    fixes.push("upgrade the source server".into());
                }
            }
        }
        if get("server_id").as_deref() == Some("0") {
            wrong.push("server_id is 0".into());
            fixes.push("set server_id to a non-zero value".into());
        }
        if wrong.is_empty() {
            r.pass(
                "source.binlog",
                "log_bin ON, ROW format, FULL row image and metadata",
            );
        } else {
            r.push(
                "source.binlog",
                CheckStatus::Fail,
                wrong.join("; "),
                fixes.join("; "),
            );
        }

        let grants = self.grants().await?.join("\n").to_ascii_uppercase();
        let all = grants.contains("ALL PRIVILEGES ON *.*");
        let slave = all || grants.contains("REPLICATION SLAVE");
        let client = all
            || grants.contains("REPLICATION CLIENT")
            || grants.contains("BINLOG MONITOR")
            || grants.contains("SUPER");
        if slave && client {
            r.pass("source.replication_privileges", "may read the binlog");
        } else {
            let mut missing = Vec::new();
            if !slave {
                missing.push("REPLICATION SLAVE");
            }
            if !client {
                missing.push("REPLICATION CLIENT (BINLOG MONITOR on MariaDB)");
            }
            r.push(
                "source.replication_privileges",
                CheckStatus::Fail,
                format!("the source account lacks {}", missing.join(" and ")),
                format!("GRANT {} ON *.* TO the source account", missing.join(", ")),
            );
        }

        let seconds = get("binlog_expire_logs_seconds")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .or_else(|| {
                get("expire_logs_days")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|d| *d > 0.0)
                    .map(|d| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let s = (d * 86_400.0) as u64;
                        s
                    })
            });
        match seconds {
            Some(s) if s < 86_400 => r.push(
                "source.binlog_retention",
                CheckStatus::Warn,
                format!("binlogs are purged after {s} s: a pause longer than that loses changes"),
                "keep binlogs for at least a day (binlog_expire_logs_seconds)",
            ),
            Some(s) => r.pass(
                "source.binlog_retention",
                format!("binlogs are kept {:.1} days", s as f64 / 86_400.0),
            ),
            None => r.pass(
                "source.binlog_retention",
                "binlogs are never purged automatically",
            ),
        }
        Ok(())
    }
}

/// Whether `SHOW GRANTS` lines give SELECT on every table of `database` (a global or
/// database-level grant of SELECT or ALL PRIVILEGES).
fn has_database_select(grants: &[String], database: &str) -> bool {
    let escaped = database.replace('_', "\\_");
    grants.iter().any(|g| {
        let upper = g.to_ascii_uppercase();
        let Some((privs, rest)) = upper.split_once(" ON ") else {
            return false;
        };
        let privs_ok = privs.contains("ALL PRIVILEGES")
            || privs
                .trim_start_matches("GRANT ")
                .split(',')
                .any(|p| p.trim() == "SELECT");
        let on = rest.split_whitespace().next().unwrap_or("");
        let on_ok = on == "*.*"
            || g.contains(&format!("`{database}`.*"))
            || g.contains(&format!("`{escaped}`.*"));
        privs_ok && on_ok
    })
}

#[cfg(test)]
mod tests {
    use super::has_database_select;

    #[test]
    fn database_select_grants_are_recognised() {
        let g = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_database_select(
            &g(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            "shop"
        ));
        assert!(has_database_select(
            &g(&[
                "GRANT USAGE ON *.* TO `u`@`%`",
                "GRANT SELECT, SHOW VIEW ON `shop`.* TO `u`@`%`"
            ]),
            "shop"
        ));
        assert!(has_database_select(
            &g(&["GRANT SELECT ON `my\\_db`.* TO `u`@`%`"]),
            "my_db"
        ));
        assert!(!has_database_select(
            &g(&[
                "GRANT USAGE ON *.* TO `u`@`%`",
                "GRANT SELECT ON `shop`.`orders` TO `u`@`%`"
            ]),
            "shop"
        ));
        assert!(!has_database_select(
            &g(&["GRANT INSERT ON `shop`.* TO `u`@`%`"]),
            "shop"
        ));
        assert!(!has_database_select(
            &g(&["GRANT SELECT ON `other`.* TO `u`@`%`"]),
            "shop"
        ));
    }
}
