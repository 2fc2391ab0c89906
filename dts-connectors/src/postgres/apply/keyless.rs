//! Tables without a usable key: changes in order, one row at a time.

use std::fmt::Write as _;

use bytes::BytesMut;
use dts_core::{Error, Result, TableName};
use tokio_postgres::{Client, Statement};

use super::{push_table, send_copy};
use crate::postgres::copy::PgCopyEncoder;
use crate::postgres::error::map_error;
use crate::postgres::sink::push_ident;

/// A table without a usable key: changes in order, one row at a time.
pub(super) struct Keyless {
    /// `COPY` straight into the table.
    pub(super) copy: Statement,
    pub(super) delete: Statement,
    pub(super) update: Statement,
    /// Encoded rows inserted and not yet copied.
    pub(super) inserts: BytesMut,
    pub(super) insert_rows: u64,
    pub(super) params: BytesMut,
    /// Whether rows are copied in text format (some column has no binary encoding).
    text: bool,
}

impl Keyless {
    pub(super) async fn prepare(
        client: &Client,
        target: &TableName,
        names: &[String],
        cols: &str,
        text: bool,
    ) -> Result<Self> {
        let mut target_sql = String::new();
        push_table(&mut target_sql, target);
        let width = names.len();
        let mut matches = String::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                matches.push_str(" AND ");
            }
            push_ident(&mut matches, name);
            let _ = write!(matches, " IS NOT DISTINCT FROM ${}", i + 1);
        }
        let one_row = |offset: usize| {
            let mut m = String::new();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    m.push_str(" AND ");
                }
                push_ident(&mut m, name);
                let _ = write!(m, " IS NOT DISTINCT FROM ${}", offset + i + 1);
            }
            format!("ctid = (SELECT ctid FROM {target_sql} WHERE {m} LIMIT 1)")
        };
        let mut sets = String::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                sets.push_str(", ");
            }
            push_ident(&mut sets, name);
            let _ = write!(sets, " = ${}", i + 1);
        }
        let prepare = |sql: String| async move {
            client
                .prepare(&sql)
                .await
                .map_err(|e| map_error(e, format!("preparing the row changes of `{target}`")))
        };
        let format = if text { "" } else { " (FORMAT binary)" };
        let copy = prepare(format!("COPY {target_sql} ({cols}) FROM STDIN{format}")).await?;
        let delete = prepare(format!("DELETE FROM {target_sql} WHERE {}", one_row(0))).await?;
        let update = prepare(format!(
            "UPDATE {target_sql} SET {sets} WHERE {}",
            one_row(width)
        ))
        .await?;
        Ok(Self {
            copy,
            delete,
            update,
            inserts: BytesMut::new(),
            insert_rows: 0,
            params: BytesMut::new(),
            text,
        })
    }

    /// Copies the buffered inserts into the table.
    pub(super) async fn flush(
        &mut self,
        client: &Client,
        target: &TableName,
        buffer: &mut BytesMut,
    ) -> Result<()> {
        if self.insert_rows == 0 {
            return Ok(());
        }
        let what = || format!("inserting rows into `{target}`");
        let rows = std::mem::take(&mut self.insert_rows);
        let data = self.inserts.split();
        buffer.clear();
        if !self.text {
            PgCopyEncoder::write_header(buffer);
        }
        let copied = send_copy(
            client,
            &self.copy,
            buffer,
            std::iter::once(data),
            self.text,
            &what,
        )
        .await?;
        if copied != rows {
            return Err(Error::internal(format!(
                "copy into `{target}` stored {copied} rows of {rows}"
            )));
        }
        Ok(())
    }
}
