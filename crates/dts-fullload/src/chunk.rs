//! Chunk planning: splitting a table into key ranges of about the same number of rows.
//!
//! The planner is a pure function over a [`KeyProber`], so it is unit-tested with an
//! in-memory prober and live-tested against a server through the MySQL prober.

use std::future::Future;

use dts_core::{Chunk, Result, Value};

/// Answers the planner's questions about one table's key.
///
/// Key tuples are compared as row values in key column order (`(a, b) > (x, y)` means
/// `a > x OR (a = x AND b > y)`), which is the order of the key's index.
pub trait KeyProber: Send {
    /// The key tuple that comes `step` rows after `after` (exclusive) in key order, i.e. the
    /// `step`-th key greater than `after` (the 1st being the smallest key greater than
    /// `after`); from the start of the table when `after` is `None`. `None` when fewer than
    /// `step` keys follow.
    fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send;
}

/// Plans the chunks of a table with key columns `key`, each about `rows_per_chunk` rows.
///
/// The chunks cover the whole key space with no gap and no overlap: the first has no lower
/// bound, the last no upper bound, and each chunk's upper bound is the next one's lower bound
/// (lower inclusive, upper exclusive). Rows inserted after planning fall into some chunk.
/// A table without a key (empty `key`) is one chunk.
pub async fn plan_chunks<P: KeyProber>(
    prober: &mut P,
    key: &[String],
    rows_per_chunk: u64,
) -> Result<Vec<Chunk>> {
    if key.is_empty() {
        return Ok(vec![Chunk::whole_table()]);
    }
    let step = rows_per_chunk.max(1);
    let mut bounds: Vec<Vec<Value>> = Vec::new();
    // The first boundary is the `step+1`-th key from the start: the first chunk holds `step`
    // rows. Each further boundary is `step` keys after the previous one's predecessor, i.e.
    // the `step`-th key after the previous boundary... counted inclusively.
    let mut last: Option<Vec<Value>> = None;
    loop {
        // Boundary b_{i+1} = the key `step` positions after b_i (b_i itself is inside chunk i+1).
        let next = match &last {
            None => prober.key_after(None, step + 1).await?,
            Some(b) => prober.key_after(Some(b), step).await?,
        };
        match next {
            Some(k) => {
                bounds.push(k.clone());
                last = Some(k);
            }
            None => break,
        }
    }
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut lower: Option<Vec<Value>> = None;
    for (i, b) in bounds.into_iter().enumerate() {
        chunks.push(Chunk {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            key: key.to_vec(),
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b);
    }
    chunks.push(Chunk {
        index: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        key: key.to_vec(),
        lower,
        upper: None,
    });
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory prober over sorted integer keys.
    struct VecProber(Vec<Vec<Value>>);

    fn cmp(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        for (x, y) in a.iter().zip(b) {
            let o = match (x, y) {
                (Value::Int(x), Value::Int(y)) => x.cmp(y),
                (Value::Text(x), Value::Text(y)) => x.cmp(y),
                _ => unreachable!(),
            };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    impl KeyProber for VecProber {
        async fn key_after(
            &mut self,
            after: Option<&[Value]>,
            step: u64,
        ) -> Result<Option<Vec<Value>>> {
            let start = match after {
                None => 0,
                Some(a) => self.0.partition_point(|k| cmp(k, a).is_le()),
            };
            let idx = start + usize::try_from(step).unwrap() - 1;
            Ok(self.0.get(idx).cloned())
        }
    }

    fn in_chunk(c: &Chunk, k: &[Value]) -> bool {
        c.lower.as_ref().is_none_or(|l| cmp(k, l).is_ge())
            && c.upper.as_ref().is_none_or(|u| cmp(k, u).is_lt())
    }

    fn check(keys: Vec<Vec<Value>>, step: u64) -> Vec<Chunk> {
        let mut p = VecProber(keys.clone());
        let key = vec!["a".to_string(), "b".to_string()];
        let chunks = futures::executor::block_on(plan_chunks(&mut p, &key, step)).unwrap();
        for k in &keys {
            let n = chunks.iter().filter(|c| in_chunk(c, k)).count();
            assert_eq!(n, 1, "key {k:?} is in {n} chunks");
        }
        for c in &chunks {
            let n = keys.iter().filter(|k| in_chunk(c, k)).count() as u64;
            assert!(n <= step, "chunk {} holds {n} > {step} rows", c.index);
        }
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.index as usize, i);
        }
        chunks
    }

    #[test]
    fn composite_keys_are_covered_exactly_once() {
        let mut keys = Vec::new();
        for a in 0..37 {
            for b in 0..(a % 5 + 1) {
                keys.push(vec![Value::Int(a), Value::Text(format!("k{b}"))]);
            }
        }
        for step in [1, 2, 3, 7, 10, 100, 1000] {
            let chunks = check(keys.clone(), step);
            let expected = keys.len().div_ceil(usize::try_from(step).unwrap()).max(1);
            assert!(
                chunks.len() <= expected + 1,
                "step {step}: {}",
                chunks.len()
            );
        }
    }

    #[test]
    fn empty_and_keyless_tables_are_one_chunk() {
        assert_eq!(check(vec![], 10).len(), 1);
        let mut p = VecProber(vec![]);
        let chunks = futures::executor::block_on(plan_chunks(&mut p, &[], 10)).unwrap();
        assert_eq!(chunks, vec![Chunk::whole_table()]);
    }
}
