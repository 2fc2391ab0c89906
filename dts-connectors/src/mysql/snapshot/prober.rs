//! The key prober chunk planning runs over, and the key columns chunk bounds compare.

use std::fmt::Write as _;

use dts_core::KeyProber;
use dts_core::{Error, ErrorKind, Result, Table, TableName, Value};
use dts_typemap::mysql::MySqlType;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::connect;
use super::decode::decode;
use super::param::mysql_param;
use crate::mysql::error::map_error;
use crate::mysql::options::MySqlConnectOptions;
use crate::mysql::source::quote_ident;
use crate::mysql::types::{MySqlColumn, ValueKind as Kind};

/// A key prober over one table's key, running on a snapshot reader's connection or on a
/// connection of its own.
///
/// [`KeyProber::key_after`] runs `SELECT k1, k2 FROM t FORCE INDEX (…) WHERE (k1, k2) > (…)
/// ORDER BY k1, k2 LIMIT 1 OFFSET step-1`, with the row comparison expanded for the range
/// optimizer. Key values of `ENUM` and `SET` columns are their numbers (1-based member
/// index, member bit mask), because that is the order the server sorts them in; chunk
/// bounds from this prober are read back correctly by [`MySqlSnapshotReader`](super::MySqlSnapshotReader).
#[derive(Debug)]
pub struct MySqlKeyProber<'c> {
    conn: ConnSlot<'c>,
    table: TableName,
    select: String,
    key: KeyColumns,
}

#[derive(Debug)]
enum ConnSlot<'c> {
    Borrowed(&'c mut Conn),
    Owned(Conn),
}

impl ConnSlot<'_> {
    fn get(&mut self) -> &mut Conn {
        match self {
            ConnSlot::Borrowed(c) => c,
            ConnSlot::Owned(c) => c,
        }
    }
}

impl<'c> MySqlKeyProber<'c> {
    /// A prober for `table` over the key columns `key` on `conn` (e.g. a snapshot reader's
    /// connection: see [`MySqlSnapshotReader::key_prober`](super::MySqlSnapshotReader::key_prober)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if `key` is empty or names a column the table does not have;
    /// [`ErrorKind::Unsupported`] for key column types that cannot be compared exactly
    /// (JSON, spatial).
    pub fn new(conn: &'c mut Conn, table: &Table, key: &[String]) -> Result<Self> {
        Self::with_slot(ConnSlot::Borrowed(conn), table, key)
    }

    fn with_slot(conn: ConnSlot<'c>, table: &Table, key: &[String]) -> Result<Self> {
        let key = KeyColumns::new(table, key)?;
        let mut select = String::from("SELECT ");
        for (i, k) in key.columns.iter().enumerate() {
            if i > 0 {
                select.push_str(", ");
            }
            select.push_str(&k.select_expr());
        }
        let _ = write!(select, " FROM {}", qualified(&table.name));
        if let Some(index) = &key.index {
            let _ = write!(select, " FORCE INDEX ({})", quote_ident(index));
        }
        Ok(Self {
            conn,
            table: table.name.clone(),
            select,
            key,
        })
    }
}

impl MySqlKeyProber<'static> {
    /// A prober on a fresh connection to `url` (outside any snapshot: the plan reflects the
    /// data at the time of each probe, which is still correct, as chunks cover the whole key
    /// space).
    ///
    /// # Errors
    ///
    /// Connection errors, and as [`MySqlKeyProber::new`].
    pub async fn connect(url: &str, table: &Table, key: &[String]) -> Result<Self> {
        let opts: MySqlConnectOptions = url.parse()?;
        let conn = connect(&opts).await?;
        Self::with_slot(ConnSlot::Owned(conn), table, key)
    }
}

impl MySqlKeyProber<'_> {
    /// The first key tuple in key order (`DESC` for the last), if the table has rows.
    async fn key_at_end(&mut self, descending: bool) -> Result<Option<Vec<Value>>> {
        let mut sql = self.select.clone();
        sql.push_str(" ORDER BY ");
        for (i, k) in self.key.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&k.name));
            if descending {
                sql.push_str(" DESC");
            }
        }
        sql.push_str(" LIMIT 1");
        let table = &self.table;
        let row: Option<Row> = self
            .conn
            .get()
            .query_first(sql)
            .await
            .map_err(|e| map_error(e, format!("probing the key of `{table}`")))?;
        row.map(|row| self.decode_key(row)).transpose()
    }

    fn decode_key(&self, row: Row) -> Result<Vec<Value>> {
        let table = &self.table;
        let raw = row.unwrap_raw();
        let mut key = Vec::with_capacity(raw.len());
        for (v, k) in raw.into_iter().zip(&self.key.columns) {
            let v = decode(k.probe_kind, v.unwrap_or(mysql_async::Value::NULL)).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("{} in key column `{}.{}`", e.describe(), table, k.name),
                )
            })?;
            key.push(v);
        }
        Ok(key)
    }
}

#[dts_core::async_trait]
impl KeyProber for MySqlKeyProber<'_> {
    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let Some(min) = self.key_at_end(false).await? else {
            return Ok(None);
        };
        let max = self.key_at_end(true).await?.unwrap_or_else(|| min.clone());
        Ok(Some((min, max)))
    }

    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        let step = step.max(1);
        let mut sql = self.select.clone();
        let mut params = Vec::new();
        if let Some(after) = after {
            let term = self.key.compare(after, Cmp::Gt, &mut params)?;
            let _ = write!(sql, " WHERE {term}");
        }
        sql.push_str(" ORDER BY ");
        for (i, k) in self.key.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&k.name));
        }
        sql.push_str(" LIMIT 1 OFFSET ?");
        params.push(mysql_async::Value::UInt(step - 1));
        let table = &self.table;
        let row: Option<Row> = self
            .conn
            .get()
            .exec_first(sql, params)
            .await
            .map_err(|e| map_error(e, format!("probing the key of `{table}`")))?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.decode_key(row).map(Some)
    }
}

/// The key columns of a table, with what is needed to compare them with bound values.
#[derive(Debug, Clone)]
pub(super) struct KeyColumns {
    pub(super) columns: Vec<KeyColumn>,
    /// The index to force: `PRIMARY` or the unique index over exactly these columns.
    pub(super) index: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct KeyColumn {
    name: String,
    /// How a bound value is written in SQL (`?`, or a cast for exact decimal comparison).
    placeholder: String,
    /// Whether the column is compared by number (`ENUM`, `SET`).
    numeric_member: bool,
    /// How the prober decodes the column.
    probe_kind: Kind,
}

impl KeyColumn {
    pub(super) fn select_expr(&self) -> String {
        if self.numeric_member {
            format!("({} + 0)", quote_ident(&self.name))
        } else {
            quote_ident(&self.name)
        }
    }
}

/// A comparison of a key tuple with a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    /// key > bound
    Gt,
    /// key >= bound
    Ge,
    /// key < bound
    Lt,
}

impl KeyColumns {
    pub(super) fn new(table: &Table, key: &[String]) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::config(format!(
                "no key columns given for table `{}`",
                table.name
            )));
        }
        let mut columns = Vec::with_capacity(key.len());
        for name in key {
            let column = table.column(name).ok_or_else(|| {
                Error::config(format!("key column `{}.{name}` does not exist", table.name))
            })?;
            // Parsed once: the declared type decides the placeholder, the shape the value.
            let parsed = MySqlColumn::of(table, column)?;
            let (placeholder, numeric_member, probe_kind) = match &parsed.ty {
                MySqlType::Decimal { precision, scale } => (
                    format!("CAST(? AS DECIMAL({precision},{scale}))"),
                    false,
                    Kind::Decimal,
                ),
                MySqlType::Enum(_) | MySqlType::Set(_) => ("?".to_string(), true, Kind::UInt),
                MySqlType::Json | MySqlType::Spatial(_) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "column `{}.{}` of type `{}` cannot be a chunk key",
                            table.name, column.name, column.source_type
                        ),
                    ))
                }
                _ => ("?".to_string(), false, parsed.kind),
            };
            columns.push(KeyColumn {
                name: name.clone(),
                placeholder,
                numeric_member,
                probe_kind,
            });
        }
        let index = if table
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.columns == key)
        {
            Some("PRIMARY".to_string())
        } else {
            table
                .indexes
                .iter()
                .find(|i| {
                    i.unique
                        && i.columns.len() == key.len()
                        && i.columns
                            .iter()
                            .zip(key)
                            .all(|(c, k)| &c.name == k && c.prefix_length.is_none())
                })
                .map(|i| i.name.clone())
        };
        Ok(Self { columns, index })
    }

    /// The expanded row comparison `key <cmp> bound`, e.g. for `(a, b) >= (x, y)`:
    /// `a >= x AND (a > x OR (a = x AND b >= y))`. The leading single-column term lets the
    /// range optimizer bound the scan even where it gives up on the disjunction.
    /// `key = bound`, column by column (a [`dts_core::Chunk::point`]).
    pub(super) fn equal(
        &self,
        bound: &[Value],
        params: &mut Vec<mysql_async::Value>,
    ) -> Result<String> {
        if bound.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "chunk bound has {} values for a key of {} columns",
                bound.len(),
                self.columns.len()
            )));
        }
        let terms: Vec<String> = self
            .columns
            .iter()
            .zip(bound)
            .map(|(c, v)| {
                params.push(mysql_param(v));
                format!("{} = {}", quote_ident(&c.name), c.placeholder)
            })
            .collect();
        Ok(terms.join(" AND "))
    }

    pub(super) fn compare(
        &self,
        bound: &[Value],
        cmp: Cmp,
        params: &mut Vec<mysql_async::Value>,
    ) -> Result<String> {
        if bound.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "chunk bound has {} values for a key of {} columns",
                bound.len(),
                self.columns.len()
            )));
        }
        let (strict, last, outer) = match cmp {
            Cmp::Gt => (">", ">", ">="),
            Cmp::Ge => (">", ">=", ">="),
            Cmp::Lt => ("<", "<", "<="),
        };
        let n = self.columns.len();
        let push = |i: usize, params: &mut Vec<mysql_async::Value>| -> String {
            params.push(mysql_param(&bound[i]));
            self.columns[i].placeholder.clone()
        };
        let col = |i: usize| quote_ident(&self.columns[i].name);
        if n == 1 {
            let p = push(0, params);
            return Ok(format!("{} {last} {p}", col(0)));
        }
        let mut sql = String::new();
        let p = push(0, params);
        let _ = write!(sql, "{} {outer} {p} AND (", col(0));
        for i in 0..n {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push('(');
            for j in 0..i {
                let p = push(j, params);
                let _ = write!(sql, "{} = {p} AND ", col(j));
            }
            let op = if i + 1 == n { last } else { strict };
            let p = push(i, params);
            let _ = write!(sql, "{} {op} {p})", col(i));
        }
        sql.push(')');
        Ok(sql)
    }
}

pub(super) fn qualified(name: &TableName) -> String {
    format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name))
}
