//! Fitting keys into InnoDB's index limit, and rows into MySQL's row limit.

use dts_typemap::pg_to_mysql::MYSQL_MAX_KEY_BYTES;
use dts_typemap::PgToMySqlMapping;

/// Shares `budget` bytes among columns wanting `wants` bytes each (`None`: unbounded),
/// fairly: the smallest wishes are met first and what is left is split evenly. Returns
/// each column's share, in the order given.
pub(super) fn share(budget: u32, wants: &[Option<u32>]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| wants[i].unwrap_or(u32::MAX));
    let mut out = vec![0; wants.len()];
    let mut left = budget;
    for (k, &i) in order.iter().enumerate() {
        let remaining = u32::try_from(order.len() - k).unwrap_or(u32::MAX).max(1);
        let fair = left / remaining;
        let got = wants[i].map_or(fair, |w| w.min(fair));
        out[i] = got;
        left -= got;
    }
    out
}

/// The most bytes each column of `columns` may take so that the index over them stays
/// within InnoDB's limit, given the columns' current mappings: `None` for columns that are
/// not variable-length (they keep their type).
pub(super) fn key_shares(
    mappings: &[Option<PgToMySqlMapping>],
    columns: &[usize],
) -> Vec<Option<u32>> {
    let mut fixed: u32 = 0;
    let mut variable = Vec::new();
    for (k, &c) in columns.iter().enumerate() {
        let Some(m) = mappings.get(c).and_then(Option::as_ref) else {
            continue;
        };
        if m.is_variable_length() {
            variable.push((k, m.key_bytes()));
        } else {
            fixed = fixed.saturating_add(m.key_bytes().unwrap_or(0));
        }
    }
    let budget = MYSQL_MAX_KEY_BYTES.saturating_sub(fixed);
    let wants: Vec<Option<u32>> = variable.iter().map(|(_, w)| *w).collect();
    let shares = share(budget, &wants);
    let mut out = vec![None; columns.len()];
    for ((k, _), s) in variable.iter().zip(shares) {
        out[*k] = Some(s);
    }
    out
}

/// MySQL's limit on the bytes of a row's columns other than `TEXT`/`BLOB`, with room for
/// length bytes and the `NULL` bitmap.
const ROW_BUDGET: u64 = 65_000;

/// The bytes a column takes against the row limit (`TEXT`/`BLOB` values are stored apart).
fn row_bytes(m: &PgToMySqlMapping) -> u64 {
    match m.key_bytes() {
        Some(b) if m.is_variable_length() => u64::from(b) + 2,
        Some(b) => u64::from(b),
        None => 12,
    }
}

/// The columns (indexes into `mappings`) to store as `TEXT` types so the row fits MySQL's
/// row limit: the widest `varchar`s not in `keep` first.
pub(super) fn row_overflow(
    mappings: &[Option<PgToMySqlMapping>],
    keep: &std::collections::BTreeSet<usize>,
) -> Vec<usize> {
    let mut total: u64 = mappings.iter().flatten().map(row_bytes).sum();
    let mut candidates: Vec<(u64, usize)> = mappings
        .iter()
        .enumerate()
        .filter(|(i, _)| !keep.contains(i))
        .filter_map(|(i, m)| {
            let m = m.as_ref()?;
            matches!(m.target, dts_typemap::mysql::MySqlType::VarChar(_)).then(|| (row_bytes(m), i))
        })
        .collect();
    candidates.sort_by(|a, b| b.cmp(a));
    let mut out = Vec::new();
    for (bytes, i) in candidates {
        if total <= ROW_BUDGET {
            break;
        }
        total = total - bytes + 12;
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_meet_small_wishes_first() {
        assert_eq!(share(3072, &[None]), [3072]);
        assert_eq!(share(3072, &[Some(80), None]), [80, 2992]);
        assert_eq!(share(3072, &[None, None]), [1536, 1536]);
        assert_eq!(share(100, &[Some(200), Some(10)]), [90, 10]);
        assert_eq!(share(3064, &[Some(20), Some(36), None]), [20, 36, 3008]);
    }
}
