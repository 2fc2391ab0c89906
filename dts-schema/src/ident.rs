//! PostgreSQL identifiers: case policy, the 63-byte limit and per-namespace uniqueness.
//! Quoting of identifiers and literals is [`dts_typemap::quote`]'s, re-exported here.

use std::collections::BTreeSet;

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones are cut by the
/// server, silently, which could make two names collide.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// How source identifiers are spelled in the target.
///
/// Every identifier is quoted in the generated DDL, so either policy works for reserved words
/// and unusual characters; the policy only decides which spelling the target keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentifierCase {
    /// Lowercase ASCII letters (`CamelTable` → `cameltable`), as the managed services do.
    ///
    /// Only ASCII is folded, exactly as PostgreSQL folds unquoted identifiers, so
    /// applications that write names unquoted in any case find the objects.
    #[default]
    Lower,
    /// Keep the source spelling; applications must then quote mixed-case names.
    Keep,
}

impl IdentifierCase {
    /// Applies the policy to one identifier.
    pub fn apply(&self, name: &str) -> String {
        match self {
            Self::Lower => name.to_ascii_lowercase(),
            Self::Keep => name.to_string(),
        }
    }
}

pub(crate) use dts_typemap::quote::quote_qualified;
pub use dts_typemap::quote::{quote_ident, quote_literal};

/// Fits a name into [`MAX_IDENTIFIER_BYTES`]: a longer name keeps its first bytes (cut at a
/// character boundary) followed by `_` and eight hex digits of a hash of the whole name, so
/// the result is deterministic and two long names that share a prefix stay distinct.
pub fn fit_identifier(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.to_string();
    }
    let keep = MAX_IDENTIFIER_BYTES - 9;
    let mut cut = keep;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], hash32(name))
}

/// 32 bits of FNV-1a (64-bit, folded): stable across platforms and releases.
fn hash32(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 32) ^ (h & 0xffff_ffff)
}

/// Names already taken in one PostgreSQL namespace (relations of a schema, constraints of a
/// table, functions of a schema).
#[derive(Debug, Clone, Default)]
pub(crate) struct Namespace {
    taken: BTreeSet<String>,
}

impl Namespace {
    /// Marks a name as taken; returns whether it was free.
    pub(crate) fn reserve(&mut self, name: &str) -> bool {
        self.taken.insert(name.to_string())
    }

    /// Frees a name (its object was dropped or renamed).
    pub(crate) fn release(&mut self, name: &str) {
        self.taken.remove(name);
    }

    /// Takes `base` (fitted to 63 bytes) if free, else the first free `base1`, `base2`, …
    /// (PostgreSQL's own habit for generated names).
    pub(crate) fn claim(&mut self, base: &str) -> String {
        let first = fit_identifier(base);
        if self.taken.insert(first.clone()) {
            return first;
        }
        let mut n: u32 = 1;
        loop {
            let candidate = fit_identifier(&format!("{base}{n}"));
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
            n += 1;
        }
    }
}

/// Whether `sql` is one parenthesised group, e.g. `(a || b)` but not `(a) + (b)`.
pub(crate) fn is_wrapped(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    if bytes.first() != Some(&b'(') || bytes.last() != Some(&b')') {
        return false;
    }
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) => {
                if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' => depth += 1,
                b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 && i + 1 != bytes.len() {
                        return false;
                    }
                }
                _ => {}
            },
        }
    }
    depth == 0
}

/// Wraps `sql` in parentheses unless it already is one group.
pub(crate) fn parenthesize(sql: &str) -> String {
    if is_wrapped(sql) {
        sql.to_string()
    } else {
        format!("({sql})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_policy_folds_ascii_only() {
        assert_eq!(IdentifierCase::Lower.apply("CamelTable"), "cameltable");
        assert_eq!(IdentifierCase::Lower.apply("ÄBC"), "Äbc");
        assert_eq!(IdentifierCase::Keep.apply("CamelTable"), "CamelTable");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let a = "a".repeat(70);
        let mut b = "a".repeat(69);
        b.push('b');
        let fa = fit_identifier(&a);
        let fb = fit_identifier(&b);
        assert_eq!(fa.len(), MAX_IDENTIFIER_BYTES);
        assert_eq!(fb.len(), MAX_IDENTIFIER_BYTES);
        assert_ne!(fa, fb);
        assert_eq!(fa, fit_identifier(&a));
        assert!(fa.starts_with(&"a".repeat(54)));
        assert_eq!(fit_identifier("short"), "short");
        // Multi-byte characters are never split.
        let wide = "é".repeat(40);
        let fw = fit_identifier(&wide);
        assert!(fw.len() <= MAX_IDENTIFIER_BYTES);
        assert!(fw.starts_with(&"é".repeat(27)));
    }

    #[test]
    fn namespace_claims_distinct_names() {
        let mut ns = Namespace::default();
        assert!(ns.reserve("t"));
        assert_eq!(ns.claim("t"), "t1");
        assert_eq!(ns.claim("t"), "t2");
        assert_eq!(ns.claim("u"), "u");
        assert!(!ns.reserve("u"));
    }

    #[test]
    fn wrapped_detection() {
        assert!(is_wrapped("(a || b)"));
        assert!(is_wrapped("((a) + (b))"));
        assert!(!is_wrapped("(a) + (b)"));
        assert!(!is_wrapped("a"));
        assert!(is_wrapped("(')(')"));
        assert_eq!(parenthesize("a + b"), "(a + b)");
        assert_eq!(parenthesize("(a + b)"), "(a + b)");
    }
}
