//! Statement parameters already in PostgreSQL's binary format.

use bytes::{Buf, BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// A parameter already in PostgreSQL's binary format.
#[derive(Debug)]
pub(super) struct Encoded<'a>(pub(super) Option<&'a [u8]>);

impl ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.put_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Parameters as the driver takes them.
pub(super) fn as_params<'a>(params: &'a [Encoded<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Splits fields written by [`PgCopyEncoder::encode_field`] (length, then value) into
/// parameters.
pub(super) fn fields(mut buf: &[u8]) -> Vec<Encoded<'_>> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = buf.get_i32();
        match usize::try_from(len) {
            Ok(n) if n <= buf.len() => {
                out.push(Encoded(Some(&buf[..n])));
                buf = &buf[n..];
            }
            _ => out.push(Encoded(None)),
        }
    }
    out
}
