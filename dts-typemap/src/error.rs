//! The errors of type mapping ([`TypeError`]) and value conversion ([`ConvertError`]).
//!
//! Messages are lowercase, have no trailing period and never contain the contents of a text,
//! blob or JSON value (row values are not logged). Short scalars such as an integer, a date
//! or a time may be named. The caller adds the table and column with
//! [`dts_core::Error::context`].

use dts_core::{Error, ErrorKind};

/// A column type that cannot be parsed or mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypeError {
    /// A type dts does not migrate (spatial types, `inet6`, `uuid`, unknown names).
    #[error("unsupported type `{type_name}`")]
    Unsupported {
        /// The type as the source declares it.
        type_name: String,
    },
    /// A type whose declaration is malformed or out of the engine's limits.
    #[error("invalid type `{type_name}`: {reason}")]
    Invalid {
        /// The type as the source declares it.
        type_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed type that has no lossless target (e.g. an enum member containing U+0000).
    #[error("type `{type_name}` cannot be mapped: {reason}")]
    Unmappable {
        /// The type as the source declares it.
        type_name: String,
        /// Why no target holds it.
        reason: &'static str,
    },
}

impl TypeError {
    pub(crate) fn unsupported(type_name: &str) -> Self {
        Self::Unsupported {
            type_name: type_name.trim().to_string(),
        }
    }

    pub(crate) fn invalid(type_name: &str, reason: &'static str) -> Self {
        Self::Invalid {
            type_name: type_name.trim().to_string(),
            reason,
        }
    }
}

impl From<TypeError> for Error {
    fn from(e: TypeError) -> Self {
        Error::new(ErrorKind::Unsupported, e.to_string())
    }
}

/// A value that cannot be converted to the target type without loss.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// Text containing U+0000, which PostgreSQL `text` and `varchar` cannot hold.
    #[error("text contains a NUL character (U+0000), which PostgreSQL text cannot hold")]
    NulInText,
    /// JSON containing a `\u0000` escape, which PostgreSQL `jsonb` refuses.
    #[error("json contains a \\u0000 escape, which PostgreSQL jsonb cannot hold")]
    NulInJson,
    /// JSON text that PostgreSQL would not accept.
    #[error("invalid json at byte {offset}: {reason}")]
    InvalidJson {
        /// Byte offset of the first offending character.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes handed as text that are not UTF-8.
    #[error("text is not valid utf-8 (at byte {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A zero or partial-zero date (or year 0), which PostgreSQL has no value for, under the
    /// `Error` policy or in a `NOT NULL` column.
    #[error(
        "zero date `{value}` has no PostgreSQL equivalent{}",
        if *not_null { " and the column is NOT NULL" } else { "" }
    )]
    ZeroDate {
        /// The date as MySQL prints it.
        value: String,
        /// Whether the `Null` policy applied but the column cannot hold `NULL`.
        not_null: bool,
    },
    /// A date that is not on the calendar (stored under MySQL's `ALLOW_INVALID_DATES`).
    #[error("invalid calendar date `{value}`")]
    InvalidDate {
        /// The date as MySQL prints it.
        value: String,
    },
    /// A number, time or bit string outside the source's domain or the target's range.
    #[error("value `{value}` out of range for `{target}`")]
    OutOfRange {
        /// The value (a short scalar).
        value: String,
        /// The type it does not fit, e.g. `tinyint unsigned` or `numeric(5,2)`.
        target: String,
    },
    /// A value other than 0 and 1 for a column mapped to `boolean`.
    #[error("value `{value}` is not a boolean (0 or 1)")]
    NotBoolean {
        /// The integer.
        value: String,
    },
    /// A MySQL `TIME` outside `00:00:00..=24:00:00` for a column mapped to `time`.
    #[error("time `{value}` is outside 00:00:00..24:00:00 and cannot be stored as time")]
    TimeOutOfRange {
        /// The time as MySQL prints it.
        value: String,
    },
    /// A text or binary value longer than the target allows.
    #[error("value of {length} {unit} is too long for `{target}`")]
    TooLong {
        /// Length of the value.
        length: usize,
        /// `characters` or `bytes`.
        unit: &'static str,
        /// The type or limit it exceeds.
        target: String,
    },
    /// An enum or set value that is not one of the declared members.
    #[error("value is not a member of the {kind}")]
    NotAMember {
        /// `enum` or `set`.
        kind: &'static str,
    },
    /// Text that does not parse as the expected scalar.
    #[error("text is not a valid {expected}")]
    Unparsable {
        /// What was expected (`decimal`, `date`…).
        expected: &'static str,
    },
    /// A value of the wrong kind for the column's type.
    #[error("expected {expected} value, found {found}")]
    Mismatch {
        /// What the column takes.
        expected: &'static str,
        /// The kind of value received ([`dts_core::Value::kind`]).
        found: &'static str,
    },
    /// A value the target has no equivalent for: `NaN`, an infinite date, an array's lower
    /// bounds.
    #[error("{what} cannot be stored in `{target}`")]
    Unrepresentable {
        /// What the value is (`NaN`, `infinity`, …; never the contents of a text).
        what: String,
        /// The target type or form.
        target: String,
    },
    /// A SQLite value of a storage class the column's target type does not take (text or
    /// a real in an integer column, a blob in a text column).
    #[error("a sqlite {storage} value cannot be stored in `{target}`")]
    StorageClass {
        /// The value's storage class (`integer`, `real`, `text`, `blob`).
        storage: &'static str,
        /// The target type.
        target: String,
    },
    /// A mapping whose target cannot take values of its source type.
    #[error("cannot convert `{source_type}` values to `{target}`")]
    Unmapped {
        /// The source type.
        source_type: String,
        /// The target type.
        target: String,
    },
}

impl From<ConvertError> for Error {
    fn from(e: ConvertError) -> Self {
        Error::new(ErrorKind::Value, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_classified() {
        let e: Error = TypeError::unsupported("geometry").into();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(e.message(), "unsupported type `geometry`");
        let e = e.context("column `shop.orders.location`");
        assert_eq!(
            e.message(),
            "column `shop.orders.location`: unsupported type `geometry`"
        );

        let e: Error = ConvertError::ZeroDate {
            value: "0000-00-00".into(),
            not_null: true,
        }
        .into();
        assert!(e.is_bad_value());
        assert_eq!(
            e.message(),
            "zero date `0000-00-00` has no PostgreSQL equivalent and the column is NOT NULL"
        );
        assert_eq!(
            ConvertError::Mismatch {
                expected: "an integer",
                found: "text"
            }
            .to_string(),
            "expected an integer value, found text"
        );
    }
}
