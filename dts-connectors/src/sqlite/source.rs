//! The SQLite source: the file, its version, and its schema read into the `dts-core` model.

use std::path::{Path, PathBuf};

use dts_core::{
    Catalog, Column, ColumnDefault, Error, ErrorKind, ForeignKey, Generated, Index, IndexColumn,
    IndexKind, Key, OmittedIndex, ReferentialAction, Result, Schema, Table, TableName,
};
// Every dynamic statement is built from quoted identifiers only; values are bound.
use rusqlite::{Connection, OptionalExtension};

use super::conn::Conn;
use super::error::sqlite_error;

/// The one schema of a SQLite source.
pub const MAIN: &str = "main";

/// What the source is.
#[derive(Debug, Clone)]
pub struct SqliteInfo {
    /// The SQLite library's version (`3.46.0`).
    pub version: String,
    /// The file's journal mode (`delete`, `wal`, …).
    pub journal_mode: String,
}

impl SqliteInfo {
    /// SQLite keeps no change log: nothing to say about cascaded rows in it.
    pub fn cascade_logging(&self) -> dts_core::CascadeLogging {
        dts_core::CascadeLogging::Logged
    }
}

/// A SQLite database file opened read-only, through one control connection (a snapshot
/// opens its own).
pub struct SqliteSource {
    path: PathBuf,
    conn: Conn,
    info: SqliteInfo,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl SqliteSource {
    /// Opens the file a `sqlite://PATH` or `sqlite:PATH` URL names, read-only.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; [`ErrorKind::Connection`] naming the path
    /// when the file does not exist or is not a SQLite database.
    pub async fn connect(url: &str) -> Result<Self> {
        let path = super::sqlite_path(url)?;
        let conn = Conn::open(&path).await?;
        let shown = path.display().to_string();
        let (version, journal_mode) = conn
            .run(move |c| {
                let version: String = c
                    .query_row("SELECT sqlite_version()", [], |r| r.get(0))
                    .map_err(|e| sqlite_error(format!("cannot read SQLite file `{shown}`"), e))?;
                let mode: String = c
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(|e| {
                        sqlite_error(format!("`{shown}` is not a readable SQLite database"), e)
                    })?;
                Ok((version, mode))
            })
            .await?;
        Ok(Self {
            path,
            conn,
            info: SqliteInfo {
                version,
                journal_mode,
            },
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The library version and the file's journal mode.
    pub fn info(&self) -> &SqliteInfo {
        &self.info
    }

    /// `["main"]`: a SQLite file's one schema (attached databases are not followed).
    ///
    /// # Errors
    ///
    /// None; the signature matches the other sources.
    pub async fn list_schemas(&self) -> Result<Vec<String>> {
        Ok(vec![MAIN.to_string()])
    }

    /// Reads every table of `main`, when `schemas` names it.
    ///
    /// # Errors
    ///
    /// Database errors; a table named `sqlite_sequence` is skipped, virtual tables are
    /// refused as [`ErrorKind::Unsupported`] naming them.
    pub async fn read_catalog(&self, schemas: &[String]) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        if !schemas.iter().any(|s| s == MAIN) {
            return Ok(catalog);
        }
        let (tables, omitted) = self.conn.run(read_tables).await?;
        catalog.omitted_indexes = omitted;
        catalog.schemas.push(Schema {
            name: MAIN.to_string(),
            tables,
        });
        Ok(catalog)
    }

    /// The control connection, for the prechecks.
    pub(crate) fn connection(&self) -> &Conn {
        &self.conn
    }
}

/// The rows `sql` selects with `param` bound to its one `?`, each as a tuple of its columns.
fn rows<T>(c: &Connection, sql: &str, param: &str) -> rusqlite::Result<Vec<T>>
where
    T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
{
    let mut st = c.prepare(sql)?;
    let out = st.query_map([param], |r| T::try_from(r))?.collect();
    out
}

/// Every table of `main`, and the indexes left out of them.
fn read_tables(c: &Connection) -> Result<(Vec<Table>, Vec<OmittedIndex>)> {
    let q = |e| sqlite_error("cannot read the SQLite schema", e);
    let tables: Vec<(String, String)> = c
        .prepare(
            "SELECT name, COALESCE(sql, '') FROM sqlite_schema \
             WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(q)?;
    let has_sequence: bool = c
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get(0),
        )
        .map_err(q)?;
    let mut out = Vec::new();
    let mut omitted_indexes = Vec::new();
    for (name, sql) in tables {
        if sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL")
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("virtual table `main.{name}` cannot be migrated: exclude it"),
            ));
        }
        let (table, omitted) = read_table(c, &name, &sql, has_sequence)?;
        omitted_indexes.extend(omitted);
        out.push(table);
    }
    Ok((out, omitted_indexes))
}

/// `"name"` quoted for SQLite.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `sql` (a `CREATE TABLE`) has `keyword` outside quotes and comments, as a whole
/// word.
fn has_keyword(sql: &str, keyword: &str) -> bool {
    use sqlparser::dialect::SQLiteDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    Tokenizer::new(&SQLiteDialect {}, sql)
        .tokenize()
        .map(|tokens| {
            tokens.iter().any(|t| match t {
                Token::Word(w) => w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword),
                _ => false,
            })
        })
        .unwrap_or(false)
}

/// The generation expressions of a `CREATE TABLE`, by column name (lowercase).
fn generated_expressions(sql: &str) -> Option<Vec<(String, String)>> {
    use sqlparser::ast::{ColumnOption, Statement};
    use sqlparser::dialect::SQLiteDialect;
    use sqlparser::parser::Parser;
    let statements = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
    let Some(Statement::CreateTable(ct)) = statements.first() else {
        return None;
    };
    let mut out = Vec::new();
    for c in &ct.columns {
        for o in &c.options {
            if let ColumnOption::Generated {
                generation_expr: Some(e),
                ..
            } = &o.option
            {
                out.push((c.name.value.to_lowercase(), e.to_string()));
            }
        }
    }
    Some(out)
}

fn read_table(
    c: &Connection,
    name: &str,
    sql: &str,
    has_sequence: bool,
) -> Result<(Table, Vec<OmittedIndex>)> {
    let table_name = TableName::new(MAIN, name);
    let q = |e| sqlite_error(format!("cannot read the schema of `main.{name}`"), e);
    let without_rowid = has_keyword(sql, "WITHOUT") && has_keyword(sql, "ROWID");
    let autoincrement = has_keyword(sql, "AUTOINCREMENT");

    /// `pragma_table_xinfo`'s `name, type, notnull, dflt_value, pk, hidden`.
    type XInfo = (String, Option<String>, i64, Option<String>, i64, i64);
    let cols: Vec<XInfo> = rows(
        c,
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
             FROM pragma_table_xinfo(?) ORDER BY cid",
        name,
    )
    .map_err(q)?;
    let generated = if cols.iter().any(|r| r.5 >= 2) {
        generated_expressions(sql)
    } else {
        Some(Vec::new())
    };
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut columns = Vec::new();
    for (i, (col_name, declared, not_null, default, pk_pos, hidden)) in cols.into_iter().enumerate()
    {
        let declared = declared.unwrap_or_default();
        if hidden == 1 {
            continue;
        }
        if pk_pos > 0 {
            pk.push((pk_pos, col_name.clone()));
        }
        let mut col = Column::new(col_name.clone(), declared.trim().to_lowercase());
        col.ordinal = u32::try_from(i + 1).unwrap_or(u32::MAX);
        col.nullable = not_null == 0 && pk_pos == 0;
        col.default = default.as_deref().and_then(parse_default);
        if hidden >= 2 {
            let expression = generated
                .as_ref()
                .and_then(|g| g.iter().find(|(n, _)| *n == col_name.to_lowercase()))
                .map_or_else(|| "(expression not read)".to_string(), |(_, e)| e.clone());
            col.generated = Some(Generated {
                expression,
                stored: hidden == 3,
            });
            col.default = None;
        }
        columns.push(col);
    }
    pk.sort();
    let primary_key = (!pk.is_empty()).then(|| Key {
        name: None,
        columns: pk.iter().map(|(_, n)| n.clone()).collect(),
    });
    // `INTEGER PRIMARY KEY` (the declared type exactly) makes the column the rowid.
    let rowid_alias = match pk.as_slice() {
        [(_, col)] if !without_rowid => columns
            .iter()
            .position(|c| &c.name == col && c.source_type == "integer"),
        _ => None,
    };
    if let Some(i) = rowid_alias {
        columns[i].auto_increment = true;
        columns[i].nullable = false;
    } else if !without_rowid {
        // SQLite lets a rowid table's primary key hold NULL; a chunk of the key would
        // never see those rows, and no target key takes them.
        for (_, col) in &pk {
            let nulls: i64 = c
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {} IS NULL",
                        quote(name),
                        quote(col)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(q)?;
            if nulls > 0 {
                return Err(Error::new(
                    ErrorKind::Value,
                    format!(
                        "primary key column `main.{name}.{col}` holds NULL in {nulls} rows \
                         (SQLite allows it in a rowid table, no target does): fix those rows \
                         or exclude the table"
                    ),
                ));
            }
        }
    }
    let mut auto_increment = None;
    if autoincrement && has_sequence && rowid_alias.is_some() {
        let seq: Option<i64> = c
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(q)?
            .flatten();
        auto_increment = seq.and_then(|s| u64::try_from(s).ok()).map(|s| s + 1);
    }

    let (indexes, omitted) = read_indexes(c, &table_name, &columns)?;
    let foreign_keys = read_foreign_keys(c, &table_name)?;
    let estimated_rows: i64 = c
        .query_row(&format!("SELECT count(*) FROM {}", quote(name)), [], |r| {
            r.get(0)
        })
        .map_err(q)?;
    Ok((
        Table {
            name: table_name,
            columns,
            primary_key,
            indexes,
            foreign_keys,
            comment: without_rowid.then(|| dts_schema::WITHOUT_ROWID.to_string()),
            estimated_rows: u64::try_from(estimated_rows).unwrap_or(0),
            auto_increment,
        },
        omitted,
    ))
}

/// A default as `pragma_table_xinfo` prints it: a literal (quotes removed), the current
/// time, or another expression.
fn parse_default(text: &str) -> Option<ColumnDefault> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("null") {
        return None;
    }
    if t.eq_ignore_ascii_case("current_timestamp") {
        return Some(ColumnDefault::CurrentTimestamp(0));
    }
    if let Some(s) = t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(ColumnDefault::Literal(s.replace("''", "'")));
    }
    let number = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !number.is_empty() && number.parse::<f64>().is_ok() && !number.contains(['i', 'I', 'n', 'N'])
    {
        return Some(ColumnDefault::Literal(
            t.strip_prefix('+').unwrap_or(t).to_string(),
        ));
    }
    if t.eq_ignore_ascii_case("true") {
        return Some(ColumnDefault::Literal("1".into()));
    }
    if t.eq_ignore_ascii_case("false") {
        return Some(ColumnDefault::Literal("0".into()));
    }
    Some(ColumnDefault::Expression(t.to_string()))
}

fn read_indexes(
    c: &Connection,
    table: &TableName,
    columns: &[Column],
) -> Result<(Vec<Index>, Vec<OmittedIndex>)> {
    let q = |e| sqlite_error(format!("cannot read the indexes of `{table}`"), e);
    /// `pragma_index_list`'s `name, unique, origin, partial` and the index's SQL.
    type Listed = (String, i64, String, i64, String);
    let list: Vec<Listed> = rows(
        c,
        "SELECT l.name, l.\"unique\", l.origin, l.partial, COALESCE(s.sql, '') \
             FROM pragma_index_list(?) l \
             LEFT JOIN sqlite_schema s ON s.type = 'index' AND s.name = l.name \
             ORDER BY l.name",
        &table.name,
    )
    .map_err(q)?;
    let mut indexes = Vec::new();
    let mut omitted = Vec::new();
    for (name, unique, origin, partial, sql) in list {
        if origin == "pk" {
            continue;
        }
        let parts: Vec<(i64, Option<String>, i64)> = rows(
            c,
            "SELECT cid, name, \"desc\" FROM pragma_index_xinfo(?) \
                 WHERE key = 1 ORDER BY seqno",
            &name,
        )
        .map_err(q)?;
        let mut cols = Vec::new();
        let mut expression = false;
        for (cid, col, desc) in parts {
            match col {
                Some(col) if cid >= 0 && columns.iter().any(|c| c.name == col) => {
                    cols.push(IndexColumn {
                        name: col,
                        prefix_length: None,
                        descending: desc != 0,
                    });
                }
                _ => expression = true,
            }
        }
        let reason = if partial != 0 {
            Some("partial indexes are not migrated")
        } else if expression {
            Some("indexes on expressions are not migrated")
        } else {
            None
        };
        if let Some(reason) = reason {
            omitted.push(OmittedIndex {
                table: table.clone(),
                name,
                unique: unique != 0,
                reason: reason.to_string(),
                definition: sql,
            });
            continue;
        }
        // The unnamed indexes of UNIQUE constraints get a name of their own.
        let name = if name.starts_with("sqlite_autoindex_") {
            let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            format!("{}_{}_key", table.name, names.join("_"))
        } else {
            name
        };
        indexes.push(Index {
            name,
            unique: unique != 0,
            kind: IndexKind::BTree,
            columns: cols,
        });
    }
    Ok((indexes, omitted))
}

fn read_foreign_keys(c: &Connection, table: &TableName) -> Result<Vec<ForeignKey>> {
    let q = |e| sqlite_error(format!("cannot read the foreign keys of `{table}`"), e);
    /// `pragma_foreign_key_list`'s `id, table, from, to, on_update, on_delete`.
    type Listed = (i64, String, String, Option<String>, String, String);
    let listed: Vec<Listed> = rows(
        c,
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
             FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        &table.name,
    )
    .map_err(q)?;
    let mut out: Vec<(i64, ForeignKey, bool)> = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in listed {
        let action =
            |s: &str| ReferentialAction::from_sql(s).unwrap_or(ReferentialAction::NoAction);
        let (on_update, on_delete) = (action(&on_update), action(&on_delete));
        if out.last().is_none_or(|(last, _, _)| *last != id) {
            out.push((
                id,
                ForeignKey {
                    name: format!("{}_{}_fkey", table.name, id),
                    columns: Vec::new(),
                    referenced_table: TableName::new(MAIN, parent.clone()),
                    referenced_columns: Vec::new(),
                    on_delete,
                    on_update,
                },
                false,
            ));
        }
        if let Some((_, fk, to_pk)) = out.last_mut() {
            fk.columns.push(from);
            match to {
                Some(to) => fk.referenced_columns.push(to),
                None => *to_pk = true,
            }
        }
    }
    let mut fks = Vec::new();
    for (_, mut fk, to_pk) in out {
        if to_pk {
            // `REFERENCES parent` without columns: the parent's primary key.
            let pk: Vec<(String,)> = rows(
                c,
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                &fk.referenced_table.name,
            )
            .map_err(q)?;
            fk.referenced_columns = pk.into_iter().map(|(n,)| n).collect();
        }
        fks.push(fk);
    }
    Ok(fks)
}
