//! Statement parameters already in PostgreSQL's binary format.

use bytes::{Buf, BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};

/// A parameter already encoded: in PostgreSQL's binary format, or, for a column of a type
/// without a binary encoding here, as its text (`text`: read by the type's input function).
#[derive(Debug, Clone, Copy)]
pub(super) struct Encoded<'a>(pub(super) Option<&'a [u8]>, pub(super) bool);

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

    fn encode_format(&self, _ty: &Type) -> Format {
        if self.1 {
            Format::Text
        } else {
            Format::Binary
        }
    }

    to_sql_checked!();
}

/// Parameters as the driver takes them.
pub(super) fn as_params<'a>(params: &'a [Encoded<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Splits fields written by [`PgCopyEncoder::encode_field`] (length, then value) into
/// parameters; `text(i)` says whether the `i`th field is a value's text (see
/// [`PgCopyEncoder::is_text_column`]).
pub(super) fn fields(mut buf: &[u8], text: impl Fn(usize) -> bool) -> Vec<Encoded<'_>> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = buf.get_i32();
        let text = text(out.len());
        match usize::try_from(len) {
            Ok(n) if n <= buf.len() => {
                out.push(Encoded(Some(&buf[..n]), text));
                buf = &buf[n..];
            }
            _ => out.push(Encoded(None, text)),
        }
    }
    out
}
