//! Verification and repair on MySQL/MariaDB: reading a table's rows by key range into values
//! of the form the type mapping writes ([`MySqlTargetReader`]), and running the statements
//! that make a table match its source ([`MySqlRepairSink`]).
//!
//! The target is read with the MySQL snapshot reader's own chunk reads and decoders (one
//! typed description per table, parsed from its declared column types), so MySQL → MySQL,
//! whose rows pass the mapping unchanged, compares like for like. From PostgreSQL, whose
//! values the PostgreSQL → MySQL mapping converts, the one value read otherwise is a
//! `boolean`'s `TINYINT(1)`: its 0 and 1 read as the booleans the mapping writes (any other
//! number stays a number, and so a difference).

use std::collections::HashMap;

use dts_core::{
    async_trait, Chunk, Column, Engine, Error, ErrorKind, Key, Repair, RepairMode, RepairSink,
    Result, RowBatch, Table, TableName, TargetReader, TargetTable, Value,
};
use dts_typemap::mysql::MySqlType;
use futures::stream::{BoxStream, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::apply::literal::{push_ident, push_literal, push_quoted};
use super::session_opts;
use crate::mysql::error::map_error;
use crate::mysql::snapshot::read_chunk_on;
use crate::mysql::source::lowercase_outside_quotes;

/// Reads target tables for verification, through one connection of the target's session
/// set-up (UTC time zone, `utf8mb4`).
///
/// Each table is described once from `information_schema` (declared column types, the
/// `json_valid()` checks that make a `LONGTEXT` MariaDB's JSON, the primary key), then its
/// chunks are read as the MySQL snapshot reader reads a source chunk: integers with their
/// sign, `DECIMAL` with its scale, floats bit-exact, text, bytes, dates, `DATETIME`,
/// `TIMESTAMP` in UTC, `TIME`, `YEAR`, `BIT`, JSON as its text; the chunk's key-range
/// condition in the server's row order (a table without a key is read whole).
pub struct MySqlTargetReader {
    conn: Conn,
    source: Engine,
    tables: HashMap<TableName, (Table, Vec<bool>)>,
}

impl std::fmt::Debug for MySqlTargetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlTargetReader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MySqlTargetReader {
    /// Connects to the target at `url`, to read values in the form rows from a `source`
    /// engine take after the row mapping.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection errors.
    pub async fn connect(url: &str, source: Engine) -> Result<Self> {
        let opts = session_opts(url).await?;
        let conn = Conn::new(opts)
            .await
            .map_err(|e| map_error(e, "cannot connect to target"))?;
        Ok(Self {
            conn,
            source,
            tables: HashMap::new(),
        })
    }
}

/// The names of the columns a `json_valid()` check of `clauses` validates.
fn json_checked_columns<'a>(clauses: &'a [String], columns: &'a [String]) -> Vec<&'a String> {
    columns
        .iter()
        .filter(|c| {
            let mut quoted = String::new();
            push_ident(&mut quoted, c);
            let needle = format!("json_valid({quoted})");
            clauses.iter().any(|cl| {
                cl.to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase())
            })
        })
        .collect()
}

/// Reads the description of target table `table`, with only its columns named in
/// `table.columns`, in that order.
async fn describe(conn: &mut Conn, table: &TargetTable) -> Result<Table> {
    let what = || format!("reading the columns of `{}`", table.name);
    let name = &table.name;
    let params = (name.schema.as_str(), name.name.as_str());
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            params,
        )
        .await
        .map_err(|e| map_error(e, what()))?;
    // MariaDB names a check's table in CHECK_CONSTRAINTS (and check names are per table);
    // MySQL only through TABLE_CONSTRAINTS.
    let clauses: Vec<String> = match conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            params,
        )
        .await
    {
        Ok(c) => c,
        Err(mysql_async::Error::Server(e)) if e.code == 1054 => conn
            .exec(
                "SELECT cc.CHECK_CLAUSE FROM information_schema.TABLE_CONSTRAINTS tc \
                 JOIN information_schema.CHECK_CONSTRAINTS cc \
                   ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA \
                  AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME \
                 WHERE tc.CONSTRAINT_TYPE = 'CHECK' AND tc.TABLE_SCHEMA = ? \
                   AND tc.TABLE_NAME = ?",
                params,
            )
            .await
            .map_err(|e| map_error(e, what()))?,
        Err(e) => return Err(map_error(e, what())),
    };
    let primary: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
             ORDER BY SEQ_IN_INDEX",
            params,
        )
        .await
        .map_err(|e| map_error(e, what()))?;
    let all: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let json = json_checked_columns(&clauses, &all);
    let mut columns = Vec::with_capacity(table.columns.len());
    for (ordinal, c) in table.columns.iter().enumerate() {
        let (_, ty, nullable) = rows.iter().find(|r| &r.0 == c).ok_or_else(|| {
            Error::new(
                ErrorKind::Database,
                format!("column `{}.{c}` does not exist in the target", table.name),
            )
        })?;
        // Typed as the source's schema reader types a column (`ENUM` labels kept).
        let mut column = Column::new(c.clone(), lowercase_outside_quotes(ty));
        column.ordinal = u32::try_from(ordinal + 1).unwrap_or(u32::MAX);
        column.nullable = nullable == "YES";
        column.json_checked = json.contains(&c);
        columns.push(column);
    }
    Ok(Table {
        name: table.name.clone(),
        columns,
        primary_key: (!primary.is_empty()).then_some(Key {
            name: None,
            columns: primary,
        }),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    })
}

/// Which columns of `table` hold a PostgreSQL `boolean` when rows come from `source`: the
/// PostgreSQL → MySQL mapping's `TINYINT(1)`, which no other PostgreSQL type maps to.
fn boolean_columns(table: &Table, source: Engine) -> Vec<bool> {
    table
        .columns
        .iter()
        .map(|c| {
            source == Engine::Postgres
                && matches!(
                    MySqlType::parse(&c.source_type),
                    Ok(MySqlType::TinyInt {
                        unsigned: false,
                        display_width: Some(1),
                    })
                )
        })
        .collect()
}

/// A `TINYINT(1)` value as the mapping of a `boolean` writes it: 0 and 1 are booleans,
/// other numbers stay numbers (no boolean maps to them).
fn as_boolean(v: Value) -> Value {
    match v {
        Value::Int(0) => Value::Bool(false),
        Value::Int(1) => Value::Bool(true),
        v => v,
    }
}

impl TargetReader for MySqlTargetReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let start = async move {
            if !self.tables.contains_key(&table.name) {
                let described = describe(&mut self.conn, table).await?;
                let booleans = boolean_columns(&described, self.source);
                self.tables
                    .insert(table.name.clone(), (described, booleans));
            }
            let (described, booleans) = &self.tables[&table.name];
            let stream = read_chunk_on(&mut self.conn, described, chunk);
            Ok::<_, Error>(stream.map(move |batch| {
                let mut batch = batch?;
                if booleans.iter().any(|b| *b) {
                    for row in &mut batch.rows {
                        for (v, b) in row.iter_mut().zip(booleans) {
                            if *b {
                                *v = as_boolean(std::mem::replace(v, Value::Null));
                            }
                        }
                    }
                }
                Ok(batch)
            }))
        };
        futures::stream::once(start)
            .map(|s| match s {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }
}

/// Runs repair statements on MySQL/MariaDB, one transaction per call, with foreign key
/// checks off (`foreign_key_checks = 0`, as the full load and the apply write). Values are
/// written as literals the target session's `sql_mode` reads back exactly (backslash
/// escapes in quoted text, binary strings in hexadecimal, floats as the shortest text of
/// the double that holds them); a row of a table without a key is found by every column
/// compared byte for byte, so a copy differing in case or trailing spaces is not taken for
/// it. MySQL cannot turn triggers off for a session: a target table's triggers fire.
pub struct MySqlRepairSink {
    conn: Conn,
}

impl std::fmt::Debug for MySqlRepairSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlRepairSink").finish_non_exhaustive()
    }
}

impl MySqlRepairSink {
    /// Connects to the target at `url`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection errors.
    pub async fn connect(url: &str) -> Result<Self> {
        // Found rows, not changed ones: an update that writes a value equal under the
        // column's comparison still counts as finding its row.
        let opts = OptsBuilder::from_opts(session_opts(url).await?).client_found_rows(true);
        let conn = Conn::new(opts)
            .await
            .map_err(|e| map_error(e, "cannot connect to target"))?;
        Ok(Self { conn })
    }
}

fn literal(table: &TargetTable, column: &str, v: &Value) -> Result<String> {
    let mut out = String::new();
    push_literal(&mut out, v).map_err(|why| {
        Error::new(
            ErrorKind::Value,
            format!(
                "column `{}.{column}` cannot hold {why} in a MySQL target",
                table.name
            ),
        )
    })?;
    Ok(out)
}

fn ident(name: &str) -> String {
    let mut s = String::new();
    push_ident(&mut s, name);
    s
}

fn key_condition(table: &TargetTable, key: &[String], values: &[Value]) -> Result<String> {
    let mut c = Vec::with_capacity(key.len());
    for (k, v) in key.iter().zip(values) {
        c.push(match v {
            Value::Null => format!("{} IS NULL", ident(k)),
            v => format!("{} = {}", ident(k), literal(table, k, v)?),
        });
    }
    Ok(c.join(" AND "))
}

/// The condition that `column` holds exactly `v`: text compared as its `utf8mb4` bytes (not
/// by the column's collation, which may ignore case or trailing spaces).
fn exact_condition(table: &TargetTable, column: &str, v: &Value) -> Result<String> {
    let c = ident(column);
    Ok(match v {
        Value::Null => format!("{c} IS NULL"),
        Value::Text(s) | Value::Json(s) => {
            let mut lit = String::new();
            push_quoted(&mut lit, s);
            format!("CAST(CONVERT({c} USING utf8mb4) AS BINARY) = CAST({lit} AS BINARY)")
        }
        v => format!("{c} = {}", literal(table, column, v)?),
    })
}

/// The statements of one repair transaction.
pub(crate) fn repair_statements(
    table: &TargetTable,
    key: &[String],
    repairs: &[Repair],
) -> Result<Vec<String>> {
    let name = format!("{}.{}", ident(&table.name.schema), ident(&table.name.name));
    let mut out = vec![
        "SET SESSION foreign_key_checks = 0".to_string(),
        "START TRANSACTION".to_string(),
    ];
    let columns: Vec<String> = table.columns.iter().map(|c| ident(c)).collect();
    for r in repairs {
        out.push(match r {
            Repair::Insert(row) => {
                let values = table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| literal(table, c, v))
                    .collect::<Result<Vec<_>>>()?;
                format!(
                    "INSERT INTO {name} ({}) VALUES ({})",
                    columns.join(", "),
                    values.join(", ")
                )
            }
            Repair::Update { key: k, row } => {
                let set = table
                    .columns
                    .iter()
                    .zip(row)
                    .filter(|(c, _)| !key.contains(c))
                    .map(|(c, v)| Ok(format!("{} = {}", ident(c), literal(table, c, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                if set.is_empty() {
                    continue;
                }
                format!(
                    "UPDATE {name} SET {} WHERE {}",
                    set.join(", "),
                    key_condition(table, key, k)?
                )
            }
            Repair::Delete { key: k } => {
                format!("DELETE FROM {name} WHERE {}", key_condition(table, key, k)?)
            }
            Repair::DeleteOne(row) => {
                let c = table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| exact_condition(table, c, v))
                    .collect::<Result<Vec<_>>>()?;
                format!("DELETE FROM {name} WHERE {} LIMIT 1", c.join(" AND "))
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("repair {other:?} is not supported by the MySQL target"),
                ))
            }
        });
    }
    out.push("COMMIT".to_string());
    out.push("SET SESSION foreign_key_checks = 1".to_string());
    Ok(out)
}

#[async_trait]
impl RepairSink for MySqlRepairSink {
    async fn hold_apply(&mut self, task: &str) -> Result<Option<dts_core::Position>> {
        // The MySQL apply writes a key first inserted in its batch without deleting it
        // first: a row the repair inserted would stop it with a duplicate key.
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "a repair beside the running apply of task `{task}` needs a PostgreSQL \
                 target; stop the task with `dts stop`, repair, then run it again"
            ),
        ))
    }

    async fn repair(
        &mut self,
        table: &TargetTable,
        key: &[String],
        repairs: &[Repair],
        mode: RepairMode,
    ) -> Result<Vec<String>> {
        let statements = repair_statements(table, key, repairs)?;
        if mode == RepairMode::Apply {
            let what = || format!("repairing `{}`", table.name);
            let result = run(&mut self.conn, table, &statements).await;
            if result.is_err() {
                let _ = self.conn.query_drop("ROLLBACK").await;
                let _ = self
                    .conn
                    .query_drop("SET SESSION foreign_key_checks = 1")
                    .await;
            }
            result.map_err(|e| e.context(what()))?;
        }
        Ok(statements)
    }
}

/// Runs `statements`, checking that each delete and update touched exactly one row.
async fn run(conn: &mut Conn, table: &TargetTable, statements: &[String]) -> Result<()> {
    for s in statements {
        conn.query_drop(s.as_str())
            .await
            .map_err(|e| map_error(e, format!("repairing `{}`", table.name)))?;
        let n = conn.affected_rows();
        let delete_or_update = s.starts_with("DELETE") || s.starts_with("UPDATE");
        if delete_or_update && n != 1 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "repairing `{}`: a row changed since it was compared (a statement touched {n} rows); verify again",
                    table.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TargetTable {
        TargetTable {
            name: TableName::new("s", "t"),
            columns: vec!["id".into(), "v".into(), "f".into()],
        }
    }

    #[test]
    fn repairs_are_mysql_statements_in_one_transaction() {
        let st = repair_statements(
            &t(),
            &["id".into()],
            &[
                Repair::Delete {
                    key: vec![Value::Int(3)],
                },
                Repair::Update {
                    key: vec![Value::Int(1)],
                    row: vec![
                        Value::Int(1),
                        Value::Text("it's ".into()),
                        Value::Float(0.1),
                    ],
                },
                Repair::Insert(vec![Value::Int(2), Value::Null, Value::Bytes(vec![0, 255])]),
            ],
        )
        .unwrap();
        assert_eq!(
            st,
            [
                "SET SESSION foreign_key_checks = 0",
                "START TRANSACTION",
                "DELETE FROM `s`.`t` WHERE `id` = 3",
                "UPDATE `s`.`t` SET `v` = 'it''s ', `f` = 1.0000000149011612e-1 WHERE `id` = 1",
                "INSERT INTO `s`.`t` (`id`, `v`, `f`) VALUES (2, NULL, X'00FF')",
                "COMMIT",
                "SET SESSION foreign_key_checks = 1",
            ]
        );
    }

    #[test]
    fn a_keyless_row_is_found_byte_for_byte() {
        let st = repair_statements(
            &t(),
            &[],
            &[Repair::DeleteOne(vec![
                Value::Null,
                Value::Text("A ".into()),
                Value::Double(0.5),
            ])],
        )
        .unwrap();
        assert_eq!(
            st[2],
            "DELETE FROM `s`.`t` WHERE `id` IS NULL AND \
             CAST(CONVERT(`v` USING utf8mb4) AS BINARY) = CAST('A ' AS BINARY) AND \
             `f` = 5e-1 LIMIT 1"
        );
        let nan = repair_statements(&t(), &[], &[Repair::Insert(vec![Value::Double(f64::NAN)])]);
        assert_eq!(nan.unwrap_err().kind(), ErrorKind::Value);
    }

    #[test]
    fn booleans_only_from_postgres_tinyint1() {
        let table = Table {
            name: TableName::new("s", "t"),
            columns: vec![
                Column::new("b", "tinyint(1)"),
                Column::new("i", "tinyint(4)"),
                Column::new("u", "tinyint(1) unsigned"),
            ],
            primary_key: None,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        };
        assert_eq!(
            boolean_columns(&table, Engine::Postgres),
            [true, false, false]
        );
        assert_eq!(boolean_columns(&table, Engine::MySql), [false; 3]);
        assert_eq!(as_boolean(Value::Int(1)), Value::Bool(true));
        assert_eq!(as_boolean(Value::Int(0)), Value::Bool(false));
        assert_eq!(as_boolean(Value::Int(2)), Value::Int(2));
        assert_eq!(as_boolean(Value::Null), Value::Null);
    }

    #[test]
    fn json_checks_name_their_columns() {
        let clauses = vec![
            "json_valid(`j`)".to_string(),
            "json_valid(`a``b`) and `x` > 0".to_string(),
        ];
        let cols = vec!["j".to_string(), "a`b".to_string(), "x".to_string()];
        assert_eq!(json_checked_columns(&clauses, &cols), [&cols[0], &cols[1]]);
    }
}
