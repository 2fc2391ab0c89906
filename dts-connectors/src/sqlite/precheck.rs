//! The prechecks of a SQLite source: version, access, the consistent read, the value scan,
//! and the refusal of incremental migration.

use dts_core::{CheckStatus, PrecheckReport, Result, TableName, Value};
use dts_schema::{SchemaPlan, SqliteRowMapper, TablePlan};

use super::error::sqlite_error;
use super::snapshot::stored_values;
use super::source::{quote, SqliteSource};

/// At most this many columns are named per failing check.
const MAX_LINES: usize = 50;

impl SqliteSource {
    /// `source.version`: the SQLite library and the file's journal mode.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        r.pass(
            "source.version",
            format!(
                "SQLite {}, file `{}` in journal mode {}",
                self.info().version,
                self.path().display(),
                self.info().journal_mode
            ),
        );
    }

    /// `source.privileges`: the file is open read-only and its schema was read.
    ///
    /// # Errors
    ///
    /// None; the signature matches the other sources.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        tables: &[TableName],
    ) -> Result<()> {
        let _ = schemas;
        r.pass(
            "source.privileges",
            format!(
                "{} tables readable; the file is opened read-only",
                tables.len()
            ),
        );
        Ok(())
    }

    /// `source.snapshot`: every reader shares one read transaction.
    ///
    /// # Errors
    ///
    /// None; the signature matches the other sources.
    pub async fn precheck_snapshot(&self, r: &mut PrecheckReport, workers: usize) -> Result<()> {
        let how = if self.info().journal_mode.eq_ignore_ascii_case("wal") {
            format!(
                "WAL mode: the {workers} readers share one read transaction on one \
                 connection; writers go on meanwhile, unseen by the copy"
            )
        } else {
            format!(
                "the {workers} readers each begin a read transaction while the first one's \
                 shared lock holds every writer off; writers wait until the copy ends"
            )
        };
        r.pass("source.snapshot", format!("the copy is consistent: {how}"));
        Ok(())
    }

    /// The change-log check: SQLite keeps no change log, so incremental migration is
    /// refused.
    pub fn precheck_log(&self, r: &mut PrecheckReport) {
        r.push(
            "source.log",
            CheckStatus::Fail,
            "incremental migration from SQLite is not possible: SQLite keeps no change log \
             to follow",
            "migrate with `migration = [\"schema\", \"full\"]`, and stop the application's \
             writes to the file before the copy",
        );
    }

    /// `source.values`: reads every row of every planned table and counts per
    /// column the values that do not fit the column's target type (text in an integer
    /// column, a real in an integer column, a blob in a text column, text that is not
    /// UTF-8, a number too large for its `DECIMAL(p,s)`, …), with the first one's key and
    /// what is wrong. They fail the check when `stop_on_bad_rows`, and warn otherwise (the
    /// rows go to the reject file).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn precheck_values(
        &self,
        r: &mut PrecheckReport,
        plan: &SchemaPlan,
        stop_on_bad_rows: bool,
    ) -> Result<()> {
        let mut lines = Vec::new();
        for tp in &plan.tables {
            self.scan_table(tp, &mut lines).await?;
        }
        if lines.is_empty() {
            r.pass(
                "source.values",
                "every stored value fits its column's target type",
            );
            return Ok(());
        }
        let n = lines.len();
        lines.truncate(MAX_LINES);
        let mut message = format!(
            "{n} columns hold values that do not fit their target type: {}",
            lines.join("; ")
        );
        if n > MAX_LINES {
            message.push_str(&format!("; and {} more", n - MAX_LINES));
        }
        r.push(
            "source.values",
            if stop_on_bad_rows {
                CheckStatus::Fail
            } else {
                CheckStatus::Warn
            },
            message,
            "fix the values in the source, exclude the columns or tables, or set \
             full.bad_rows = \"reject\" to copy the other rows and write these to the reject \
             file",
        );
        Ok(())
    }

    async fn scan_table(&self, tp: &TablePlan, lines: &mut Vec<String>) -> Result<()> {
        let to_mysql = tp.copied_columns().any(|c| c.pg_to_mysql.is_some());
        let mapper = if to_mysql {
            SqliteRowMapper::to_mysql(tp)
        } else {
            SqliteRowMapper::to_pg(tp)
        };
        let copied: Vec<_> = tp.copied_columns().collect();
        let key: Vec<String> = tp.chunk_key.clone().unwrap_or_default();
        let key_sql: Vec<String> = key
            .iter()
            .map(|k| {
                if k == dts_schema::ROWID && !copied.iter().any(|c| c.source_name == *k) {
                    "rowid".to_string()
                } else {
                    quote(k)
                }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            copied
                .iter()
                .map(|c| quote(&c.source_name))
                .chain(key_sql.iter().cloned())
                .collect::<Vec<_>>()
                .join(", "),
            quote(&tp.source.name)
        );
        let to_mysql: Vec<_> = copied.iter().map(|c| c.pg_to_mysql.clone()).collect();
        let width = copied.len();
        let context = format!("cannot scan `{}`", tp.source);
        let bad = self
            .connection()
            .run(move |c| {
                scan(c, &sql, &mapper, &to_mysql, &key, width)
                    .map_err(|e| sqlite_error(context, e))?
            })
            .await?;
        for (c, (n, example)) in copied.iter().zip(bad) {
            if n > 0 {
                lines.push(format!(
                    "`{}`.`{}`: {n} values, first {}",
                    tp.source,
                    c.source_name,
                    example.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

/// Per column of a scan, how many values do not fit and the first one's key and error.
type Misfits = Vec<(u64, Option<String>)>;

/// Scans the rows `sql` selects (the `width` copied columns, then the `key` columns),
/// converting each value as the copy would.
fn scan(
    c: &rusqlite::Connection,
    sql: &str,
    mapper: &SqliteRowMapper,
    to_mysql: &[Option<dts_typemap::PgToMySqlMapping>],
    key: &[String],
    width: usize,
) -> rusqlite::Result<Result<Misfits>> {
    let mut bad: Misfits = vec![(0, None); width];
    let mut st = c.prepare(sql)?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let values = match stored_values(row, 0, width) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        {
            for (i, (v, pg_to_mysql)) in values.into_iter().zip(to_mysql).enumerate() {
                let result = mapper
                    .convert(i, v)
                    .map_err(dts_core::Error::from)
                    .and_then(|v| match pg_to_mysql {
                        Some(m) => dts_typemap::convert_pg_value(m, v)
                            .map(|_| ())
                            .map_err(Into::into),
                        None => Ok(()),
                    });
                if let Err(e) = result {
                    let entry = &mut bad[i];
                    entry.0 += 1;
                    if entry.1.is_none() {
                        let mut parts = Vec::new();
                        let kvs = stored_values(row, width, width + key.len())
                            .unwrap_or_else(|_| vec![Value::Null; key.len()]);
                        for (k, kv) in key.iter().zip(kvs) {
                            parts.push(format!("{k}={}", kv.short()));
                        }
                        entry.1 = Some(format!("at ({}): {}", parts.join(", "), e.message()));
                    }
                }
            }
        }
    }
    Ok(Ok(bad))
}
