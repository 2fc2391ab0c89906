//! Reading a MySQL/MariaDB server: its version, its schema from `information_schema`, and
//! precheck probes.

use std::collections::BTreeMap;

use dts_core::{
    CascadeLogging, Catalog, Column, ColumnDefault, Error, ErrorKind, ForeignKey, Generated, Index,
    IndexColumn, IndexKind, Key, ReferentialAction, Result, Schema, SchemaSource, Table, TableName,
};
use mysql_async::prelude::*;
use mysql_async::{Conn, Pool, Row};

use super::error::map_error;
use super::options::MySqlConnectOptions;

/// What a MySQL-compatible server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlServerInfo {
    /// `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.0.36`.
    pub version: String,
    /// Whether the server is MariaDB (else MySQL or a compatible server).
    pub is_mariadb: bool,
    /// Major and minor version numbers.
    pub major_minor: (u32, u32),
}

impl MySqlServerInfo {
    /// Whether the server's binlog carries the rows its foreign key actions change: MySQL
    /// 9.6 and later run the actions in the SQL layer and log those rows; MariaDB and older
    /// MySQL run them inside InnoDB and do not.
    pub fn cascade_logging(&self) -> CascadeLogging {
        if !self.is_mariadb && self.major_minor >= (9, 6) {
            CascadeLogging::Logged
        } else {
            CascadeLogging::Unlogged
        }
    }
}

/// A MySQL or MariaDB source server, reached through a connection pool.
#[derive(Clone)]
pub struct MySqlSource {
    pool: Pool,
    info: MySqlServerInfo,
}

impl std::fmt::Debug for MySqlSource {
    // The pool's options hold the password: leave them out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSource")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A `LOCK TABLES … READ` held on a connection of its own (see
/// [`MySqlSource::lock_for_read`]). Dropped without [`MySqlReadLock::release`], the
/// connection goes back to the pool, whose reset releases the lock.
pub struct MySqlReadLock {
    conn: Option<Conn>,
    tables: Vec<TableName>,
}

impl std::fmt::Debug for MySqlReadLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlReadLock")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl MySqlReadLock {
    /// Locks `tables` for reading on `conn`, waiting at most `lock_wait_timeout` seconds.
    pub(crate) async fn take(
        mut conn: Conn,
        tables: &[TableName],
        lock_wait_timeout: u32,
    ) -> Result<Self> {
        let list: Vec<String> = tables
            .iter()
            .map(|t| format!("{}.{} READ", quote_ident(&t.schema), quote_ident(&t.name)))
            .collect();
        let what = || {
            let names: Vec<String> = tables.iter().map(|t| format!("`{t}`")).collect();
            format!("locking {} for reading", names.join(", "))
        };
        conn.query_drop(format!(
            "SET SESSION lock_wait_timeout = {lock_wait_timeout}"
        ))
        .await
        .map_err(|e| map_error(e, what()))?;
        conn.query_drop(format!("LOCK TABLES {}", list.join(", ")))
            .await
            .map_err(|e| map_error(e, what()))?;
        Ok(MySqlReadLock {
            conn: Some(conn),
            tables: tables.to_vec(),
        })
    }

    /// The tables locked.
    pub fn tables(&self) -> &[TableName] {
        &self.tables
    }

    /// Releases the lock (`UNLOCK TABLES`).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn release(mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(|e| map_error(e, "releasing the read lock of source tables"))?;
        }
        Ok(())
    }
}

/// Quotes a MySQL identifier with backquotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl MySqlSource {
    /// Connects to the server at `url` (`mysql://user:password@host:port[/db]`, options as
    /// [`MySqlConnectOptions`] parses them) and reads its version.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(&url.parse()?).await
    }

    /// Connects to the server `options` name and reads its version. Every connection of
    /// the pool uses the same options (TLS mode settled by the first connection).
    pub async fn connect_with(options: &MySqlConnectOptions) -> Result<Self> {
        let (mut conn, opts) = options.connect_with_opts().await?;
        let pool = Pool::new(opts);
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| map_error(e, "reading source version"))?
            .unwrap_or_default();
        // The pool opens its own connections.
        let _ = conn.disconnect().await;
        let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let major_minor = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        Ok(Self {
            pool,
            info: MySqlServerInfo {
                version,
                is_mariadb,
                major_minor,
            },
        })
    }

    /// The server's version information.
    pub fn info(&self) -> &MySqlServerInfo {
        &self.info
    }

    /// A connection from the pool.
    pub async fn conn(&self) -> Result<Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| map_error(e, "cannot connect to source"))
    }

    /// The databases on the server, without the system ones.
    pub async fn list_schemas(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        conn.query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN ('mysql','information_schema','performance_schema','sys') \
             ORDER BY SCHEMA_NAME",
        )
        .await
        .map_err(|e| map_error(e, "listing source databases"))
    }

    /// The values of the named global variables (missing ones are absent from the map).
    pub async fn variables(&self, names: &[&str]) -> Result<BTreeMap<String, String>> {
        let mut conn = self.conn().await?;
        let mut out = BTreeMap::new();
        for name in names {
            // SHOW cannot be prepared; the name is quoted as a literal.
            let sql = format!(
                "SHOW GLOBAL VARIABLES LIKE '{}'",
                name.replace('\\', "\\\\").replace('\'', "''")
            );
            let row: Option<(String, String)> = conn
                .query_first(sql)
                .await
                .map_err(|e| map_error(e, format!("reading variable `{name}`")))?;
            if let Some((k, v)) = row {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// Checks that the account can read `table`, by running a query that returns no rows.
    pub async fn check_select(&self, table: &TableName) -> Result<()> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "SELECT 1 FROM {}.{} LIMIT 0",
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        conn.query_drop(sql)
            .await
            .map_err(|e| map_error(e, format!("cannot read table `{table}`")))
    }

    /// Counts the rows of `table` for which the MySQL `predicate` holds.
    pub async fn count_where(&self, table: &TableName, predicate: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "SELECT COUNT(*) FROM {}.{} WHERE {predicate}",
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        let n: Option<u64> = conn
            .query_first(sql)
            .await
            .map_err(|e| map_error(e, format!("checking values of `{table}`")))?;
        Ok(n.unwrap_or(0))
    }

    /// Counts, in one scan of `table`, the rows for which each MySQL predicate holds.
    pub async fn count_many(&self, table: &TableName, predicates: &[String]) -> Result<Vec<u64>> {
        if predicates.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let sums: Vec<String> = predicates
            .iter()
            .map(|p| format!("COUNT(CASE WHEN {p} THEN 1 END)"))
            .collect();
        let sql = format!(
            "SELECT {} FROM {}.{}",
            sums.join(", "),
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        let row: Option<Row> = conn
            .query_first(sql)
            .await
            .map_err(|e| map_error(e, format!("checking values of `{table}`")))?;
        let row = row.ok_or_else(|| Error::internal("count query returned no row"))?;
        Ok((0..predicates.len())
            .map(|i| opt_u64(&row, i).unwrap_or(0))
            .collect())
    }

    /// The base tables of databases `schemas` whose storage engine is not transactional
    /// (`information_schema.ENGINES.TRANSACTIONS` is not `YES`: MyISAM, Aria, MEMORY, CSV,
    /// …), with their engine, in name order. Such tables are not part of a consistent
    /// snapshot: a reader sees their current rows, whatever its snapshot.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn non_transactional_tables(
        &self,
        schemas: &[String],
    ) -> Result<Vec<(TableName, String)>> {
        if schemas.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let marks = vec!["?"; schemas.len()].join(",");
        let params: Vec<mysql_async::Value> = schemas.iter().map(|s| s.as_str().into()).collect();
        let rows: Vec<(String, String, String)> = conn
            .exec(
                format!(
                    "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.ENGINE \
                     FROM information_schema.TABLES t \
                     LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE \
                     WHERE t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_SCHEMA IN ({marks}) \
                       AND t.ENGINE IS NOT NULL AND COALESCE(e.TRANSACTIONS, 'NO') <> 'YES' \
                     ORDER BY t.TABLE_SCHEMA, t.TABLE_NAME"
                ),
                params,
            )
            .await
            .map_err(|e| map_error(e, "reading the storage engines of source tables"))?;
        Ok(rows
            .into_iter()
            .map(|(db, table, engine)| (TableName::new(db, table), engine))
            .collect())
    }

    /// Takes `LOCK TABLES … READ` on `tables` on a connection of its own and holds it until
    /// [`MySqlReadLock::release`] (or until the lock is dropped, or its process ends):
    /// meanwhile the tables can be read, by any session, and not written. Waits at most
    /// `lock_wait_timeout` seconds for writes in progress.
    ///
    /// # Errors
    ///
    /// Server errors; a lock wait timeout is [`ErrorKind::Transient`].
    pub async fn lock_for_read(
        &self,
        tables: &[TableName],
        lock_wait_timeout: u32,
    ) -> Result<MySqlReadLock> {
        MySqlReadLock::take(self.conn().await?, tables, lock_wait_timeout).await
    }

    /// The account and client address (`USER`, `HOST` of the process list, the address as
    /// `host:port` for TCP connections) of connection `id`, if it exists.
    pub async fn connection_identity(&self, id: u64) -> Result<Option<(String, String)>> {
        let mut conn = self.conn().await?;
        conn.exec_first(
            "SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .await
        .map_err(|e| map_error(e, format!("looking up connection {id} on the source")))
    }

    /// Ends connection `id` if it is still a binlog reader (`Binlog Dump` command) of account
    /// `user` from client address `host` (as [`MySqlSource::connection_identity`] returned
    /// them), e.g. one left by a killed process. A connection that now has the id but not
    /// the account and address (the server restarted and counts ids afresh) is left alone.
    /// Returns whether it was running.
    pub async fn end_binlog_reader(&self, id: u64, user: &str, host: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let running: Option<u64> = conn
            .exec_first(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE ID = ? AND COMMAND LIKE 'Binlog Dump%' AND USER = ? AND HOST = ?",
                (id, user, host),
            )
            .await
            .map_err(|e| map_error(e, "looking for an earlier binlog reader"))?;
        if running.is_none() {
            return Ok(false);
        }
        match conn.query_drop(format!("KILL CONNECTION {id}")).await {
            Ok(()) => Ok(true),
            // It ended by itself meanwhile.
            Err(mysql_async::Error::Server(e)) if e.code == 1094 => Ok(false),
            Err(e) => Err(map_error(
                e,
                format!("ending the earlier binlog reader {id}"),
            )),
        }
    }

    /// The account's grants, as `SHOW GRANTS` prints them.
    pub async fn grants(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        conn.query("SHOW GRANTS")
            .await
            .map_err(|e| map_error(e, "reading the source account's grants"))
    }

    async fn read_catalog_inner(&self, schemas: &[String]) -> Result<Catalog> {
        if schemas.is_empty() {
            return Ok(Catalog::default());
        }
        let mut conn = self.conn().await?;
        let marks = vec!["?"; schemas.len()].join(",");
        let params: Vec<mysql_async::Value> = schemas.iter().map(|s| s.as_str().into()).collect();
        let err = |e| map_error(e, "reading source schema from information_schema");

        let mut tables: BTreeMap<TableName, Table> = BTreeMap::new();
        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, AUTO_INCREMENT, TABLE_COMMENT \
                     FROM information_schema.TABLES \
                     WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({marks})"
                ),
                params.clone(),
            )
            .await
            .map_err(err)?;
        for row in rows {
            let name = TableName::new(text(&row, 0), text(&row, 1));
            let comment = opt_text(&row, 4).filter(|c| !c.is_empty());
            tables.insert(
                name.clone(),
                Table {
                    name,
                    columns: Vec::new(),
                    primary_key: None,
                    indexes: Vec::new(),
                    foreign_keys: Vec::new(),
                    comment,
                    estimated_rows: opt_u64(&row, 2).unwrap_or(0),
                    auto_increment: opt_u64(&row, 3),
                },
            );
        }

        // Columns validated by a `json_valid()` check are MariaDB's JSON.
        let json_checked: std::collections::BTreeSet<(String, String, String)> =
            if self.info.is_mariadb {
                let rows: Vec<Row> = conn
                    .exec(
                        format!(
                            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE \
                         FROM information_schema.CHECK_CONSTRAINTS \
                         WHERE CONSTRAINT_SCHEMA IN ({marks})"
                        ),
                        params.clone(),
                    )
                    .await
                    .map_err(err)?;
                rows.iter()
                    .filter_map(|r| {
                        let clause = text(r, 2);
                        let col = clause
                            .strip_prefix("json_valid(`")?
                            .strip_suffix("`)")?
                            .replace("``", "`");
                        Some((text(r, 0), text(r, 1), col))
                    })
                    .collect()
            } else {
                Default::default()
            };

        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, \
                            COLUMN_DEFAULT, IS_NULLABLE, DATA_TYPE, COLUMN_TYPE, \
                            CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, COLUMN_COMMENT, \
                            GENERATION_EXPRESSION \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA IN ({marks}) \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
                ),
                params.clone(),
            )
            .await
            .map_err(err)?;
        for row in rows {
            let name = TableName::new(text(&row, 0), text(&row, 1));
            let Some(table) = tables.get_mut(&name) else {
                continue; // a view
            };
            let col_name = text(&row, 2);
            let data_type = text(&row, 6).to_ascii_lowercase();
            let extra = text(&row, 10).to_ascii_lowercase();
            let generated = opt_text(&row, 12)
                .filter(|e| !e.is_empty() && extra.contains("generated"))
                .map(|expression| Generated {
                    expression,
                    stored: extra.contains("stored") || extra.contains("persistent"),
                });
            let default = if generated.is_some() {
                None
            } else {
                parse_default(opt_text(&row, 4), &data_type, &extra, self.info.is_mariadb)
            };
            let json =
                json_checked.contains(&(name.schema.clone(), name.name.clone(), col_name.clone()));
            table.columns.push(Column {
                ordinal: u32::try_from(opt_u64(&row, 3).unwrap_or(0)).unwrap_or(u32::MAX),
                source_type: lowercase_outside_quotes(&text(&row, 7)),
                nullable: text(&row, 5) == "YES",
                default,
                auto_increment: extra.contains("auto_increment"),
                on_update_current_timestamp: extra.contains("on update current_timestamp"),
                generated,
                charset: opt_text(&row, 8),
                collation: opt_text(&row, 9),
                json_checked: json,
                comment: opt_text(&row, 11).filter(|c| !c.is_empty()),
                name: col_name,
            });
        }

        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, \
                            SUB_PART, INDEX_TYPE, COLLATION \
                     FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA IN ({marks}) \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
                ),
                params.clone(),
            )
            .await
            .map_err(err)?;
        for row in rows {
            let name = TableName::new(text(&row, 0), text(&row, 1));
            let Some(table) = tables.get_mut(&name) else {
                continue;
            };
            let index_name = text(&row, 2);
            let Some(col) = opt_text(&row, 4) else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("unsupported expression index `{index_name}` on table `{name}`"),
                ));
            };
            if index_name == "PRIMARY" {
                table
                    .primary_key
                    .get_or_insert_with(|| Key {
                        name: None,
                        columns: Vec::new(),
                    })
                    .columns
                    .push(col);
                continue;
            }
            let column = IndexColumn {
                name: col,
                prefix_length: opt_u64(&row, 5).and_then(|n| u32::try_from(n).ok()),
                descending: opt_text(&row, 7).as_deref() == Some("D"),
            };
            if let Some(ix) = table.indexes.iter_mut().find(|i| i.name == index_name) {
                ix.columns.push(column);
            } else {
                let kind = match text(&row, 6).to_ascii_uppercase().as_str() {
                    "HASH" => IndexKind::Hash,
                    "FULLTEXT" => IndexKind::FullText,
                    "SPATIAL" => IndexKind::Spatial,
                    _ => IndexKind::BTree,
                };
                table.indexes.push(Index {
                    name: index_name,
                    unique: opt_u64(&row, 3) == Some(0),
                    kind,
                    columns: vec![column],
                });
            }
        }

        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, \
                            k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, \
                            k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE \
                     FROM information_schema.KEY_COLUMN_USAGE k \
                     JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                       ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
                      AND r.TABLE_NAME = k.TABLE_NAME \
                      AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                     WHERE k.TABLE_SCHEMA IN ({marks}) AND k.REFERENCED_TABLE_NAME IS NOT NULL \
                     ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, \
                              k.ORDINAL_POSITION"
                ),
                params,
            )
            .await
            .map_err(err)?;
        for row in rows {
            let name = TableName::new(text(&row, 0), text(&row, 1));
            let Some(table) = tables.get_mut(&name) else {
                continue;
            };
            let fk_name = text(&row, 2);
            let action = |i| ReferentialAction::from_sql(&text(&row, i));
            if let Some(fk) = table.foreign_keys.iter_mut().find(|f| f.name == fk_name) {
                fk.columns.push(text(&row, 3));
                fk.referenced_columns.push(text(&row, 6));
            } else {
                table.foreign_keys.push(ForeignKey {
                    name: fk_name,
                    columns: vec![text(&row, 3)],
                    referenced_table: TableName::new(text(&row, 4), text(&row, 5)),
                    referenced_columns: vec![text(&row, 6)],
                    on_delete: action(7).unwrap_or(ReferentialAction::NoAction),
                    on_update: action(8).unwrap_or(ReferentialAction::NoAction),
                });
            }
        }

        let mut by_schema: BTreeMap<String, Vec<Table>> = BTreeMap::new();
        for (name, table) in tables {
            by_schema.entry(name.schema).or_default().push(table);
        }
        Ok(Catalog {
            types: Vec::new(),
            omitted_indexes: Vec::new(),
            schemas: by_schema
                .into_iter()
                .map(|(name, tables)| Schema { name, tables })
                .collect(),
        })
    }
}

#[dts_core::async_trait]
impl SchemaSource for MySqlSource {
    async fn list_schemas(&self) -> Result<Vec<String>> {
        MySqlSource::list_schemas(self).await
    }

    async fn read_catalog(&self, schemas: &[String]) -> Result<Catalog> {
        self.read_catalog_inner(schemas).await
    }
}

fn opt_text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        v => Some(v.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn text(row: &Row, i: usize) -> String {
    opt_text(row, i).unwrap_or_default()
}

fn opt_u64(row: &Row, i: usize) -> Option<u64> {
    match row.as_ref(i)? {
        mysql_async::Value::Int(n) => u64::try_from(*n).ok(),
        mysql_async::Value::UInt(n) => Some(*n),
        mysql_async::Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A column type in lowercase, except inside quotes: `ENUM`/`SET` members keep their case
/// (`enum('A','b')`), which the stored values have.
pub(crate) fn lowercase_outside_quotes(column_type: &str) -> String {
    let mut out = String::with_capacity(column_type.len());
    let mut quoted = false;
    for c in column_type.chars() {
        if c == '\'' {
            // A doubled quote inside a member closes and reopens: the state comes back.
            quoted = !quoted;
        }
        out.push(if quoted { c } else { c.to_ascii_lowercase() });
    }
    out
}

/// Interprets `information_schema.COLUMNS.COLUMN_DEFAULT`.
///
/// MariaDB 10.2.7+ quotes literal strings (`'abc'`), prints `NULL` for an explicit `DEFAULT
/// NULL` and prints expressions bare (`current_timestamp(3)`, `uuid()`). MySQL prints the
/// literal bare and marks expressions with `DEFAULT_GENERATED` in `EXTRA`.
fn parse_default(
    raw: Option<String>,
    data_type: &str,
    extra: &str,
    is_mariadb: bool,
) -> Option<ColumnDefault> {
    let raw = raw?;
    let current_ts = |s: &str| -> Option<u8> {
        let l = s.to_ascii_lowercase();
        let rest = l
            .strip_prefix("current_timestamp")
            .or_else(|| l.strip_prefix("now"))?;
        if rest.is_empty() || rest == "()" {
            return Some(0);
        }
        rest.strip_prefix('(')?.strip_suffix(')')?.parse().ok()
    };
    if is_mariadb {
        if raw == "NULL" {
            return None;
        }
        if let Some(body) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return Some(ColumnDefault::Literal(unescape_mariadb_literal(body)));
        }
        if let Some(fsp) = current_ts(&raw) {
            return Some(ColumnDefault::CurrentTimestamp(fsp));
        }
        if data_type == "bit" && raw.starts_with("b'") {
            return Some(ColumnDefault::Literal(raw));
        }
        if raw.parse::<f64>().is_ok() {
            return Some(ColumnDefault::Literal(raw));
        }
        return Some(ColumnDefault::Expression(raw));
    }
    if extra.contains("default_generated") {
        return Some(match current_ts(&raw) {
            Some(fsp) => ColumnDefault::CurrentTimestamp(fsp),
            None => ColumnDefault::Expression(raw),
        });
    }
    Some(ColumnDefault::Literal(raw))
}

/// Undoes the escaping MariaDB applies to quoted defaults: `''` and backslash escapes.
fn unescape_mariadb_literal(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some('Z') => out.push('\x1a'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_keep_the_case_of_enum_members() {
        assert_eq!(
            lowercase_outside_quotes("ENUM('A','b''C','')"),
            "enum('A','b''C','')"
        );
        assert_eq!(
            lowercase_outside_quotes("INT(10) UNSIGNED"),
            "int(10) unsigned"
        );
    }

    #[test]
    fn mariadb_defaults_are_classified() {
        let d = |raw: &str, ty: &str| parse_default(Some(raw.into()), ty, "", true);
        assert_eq!(d("NULL", "int"), None);
        assert_eq!(
            d("'x''y'", "varchar"),
            Some(ColumnDefault::Literal("x'y".into()))
        );
        assert_eq!(d("''", "enum"), Some(ColumnDefault::Literal(String::new())));
        assert_eq!(
            d("current_timestamp(3)", "timestamp"),
            Some(ColumnDefault::CurrentTimestamp(3))
        );
        assert_eq!(
            d("current_timestamp()", "datetime"),
            Some(ColumnDefault::CurrentTimestamp(0))
        );
        assert_eq!(
            d("b'101'", "bit"),
            Some(ColumnDefault::Literal("b'101'".into()))
        );
        assert_eq!(
            d("1.5", "float"),
            Some(ColumnDefault::Literal("1.5".into()))
        );
        assert_eq!(
            d("uuid()", "varchar"),
            Some(ColumnDefault::Expression("uuid()".into()))
        );
        assert_eq!(
            d("'a\\\\b'", "varchar"),
            Some(ColumnDefault::Literal("a\\b".into()))
        );
    }

    #[test]
    fn mysql_defaults_use_extra() {
        assert_eq!(
            parse_default(
                Some("CURRENT_TIMESTAMP".into()),
                "timestamp",
                "default_generated",
                false
            ),
            Some(ColumnDefault::CurrentTimestamp(0))
        );
        assert_eq!(
            parse_default(Some("abc".into()), "varchar", "", false),
            Some(ColumnDefault::Literal("abc".into()))
        );
        assert_eq!(parse_default(None, "varchar", "", false), None);
    }
}
