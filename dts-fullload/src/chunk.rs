//! Chunk planning: splitting a table into key ranges of about the same number of rows.
//!
//! The planner is a pure function over a [`KeyProber`], so it is unit-tested with an
//! in-memory prober and live-tested against a server through the MySQL prober.

use dts_core::{Chunk, KeyProber, Result, Value};

/// The integer value of a single-column key bound, if it is an integer.
fn as_i128(key: &[Value]) -> Option<i128> {
    match key {
        [Value::Int(i)] => Some(i128::from(*i)),
        [Value::UInt(u)] => Some(i128::from(*u)),
        _ => None,
    }
}

/// Splits a dense integer key range arithmetically: `n` ranges of equal width between `min`
/// and `max`. Returns the inner boundaries, in the key's value type.
fn arithmetic_bounds(min: &[Value], max: &[Value], n: u64) -> Option<Vec<Vec<Value>>> {
    let (lo, hi) = (as_i128(min)?, as_i128(max)?);
    let span = hi - lo + 1;
    let unsigned = matches!(min, [Value::UInt(_)]);
    let mut out = Vec::new();
    let mut last = lo;
    for i in 1..n {
        let b = lo + span * i128::from(i) / i128::from(n);
        if b <= last || b > hi {
            continue;
        }
        last = b;
        out.push(vec![if unsigned {
            Value::UInt(u64::try_from(b).ok()?)
        } else {
            Value::Int(i64::try_from(b).ok()?)
        }]);
    }
    Some(out)
}

/// Plans the chunks of a table with key columns `key`, each about `rows_per_chunk` rows.
///
/// The chunks cover the whole key space with no gap and no overlap: the first has no lower
/// bound, the last no upper bound, and each chunk's upper bound is the next one's lower bound
/// (lower inclusive, upper exclusive). Rows inserted after planning fall into some chunk.
/// A table without a key (empty `key`) is one chunk.
///
/// A single integer key whose range is dense (at most twice as wide as `estimated_rows`) is
/// split arithmetically into ranges of equal width, which costs two index lookups instead
/// of a walk over the key; other keys are walked with [`KeyProber::key_after`], which gives
/// chunks of exactly `rows_per_chunk` rows.
pub async fn plan_chunks<P: KeyProber>(
    prober: &mut P,
    key: &[String],
    rows_per_chunk: u64,
    estimated_rows: u64,
) -> Result<Vec<Chunk>> {
    if key.is_empty() {
        return Ok(vec![Chunk::whole_table()]);
    }
    let step = rows_per_chunk.max(1);
    let mut bounds: Vec<Vec<Value>> = Vec::new();
    if key.len() == 1 && estimated_rows > 0 {
        if let Some((min, max)) = prober.key_range().await? {
            if let (Some(lo), Some(hi)) = (as_i128(&min), as_i128(&max)) {
                let span = hi - lo + 1;
                if span <= 2 * i128::from(estimated_rows) {
                    let n = estimated_rows.div_ceil(step).max(1);
                    if let Some(b) = arithmetic_bounds(&min, &max, n) {
                        return Ok(chunks_from_bounds(key, b));
                    }
                }
            }
        } else {
            return Ok(chunks_from_bounds(key, Vec::new()));
        }
    }
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
    Ok(chunks_from_bounds(key, bounds))
}

/// Chunks between consecutive boundaries, open at both ends.
fn chunks_from_bounds(key: &[String], bounds: Vec<Vec<Value>>) -> Vec<Chunk> {
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
    chunks
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

    #[dts_core::async_trait]
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

        async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
            Ok(self.0.first().cloned().zip(self.0.last().cloned()))
        }
    }

    fn in_chunk(c: &Chunk, k: &[Value]) -> bool {
        c.lower.as_ref().is_none_or(|l| cmp(k, l).is_ge())
            && c.upper.as_ref().is_none_or(|u| cmp(k, u).is_lt())
    }

    fn check(keys: Vec<Vec<Value>>, step: u64) -> Vec<Chunk> {
        let mut p = VecProber(keys.clone());
        let key = vec!["a".to_string(), "b".to_string()];
        let chunks =
            futures::executor::block_on(plan_chunks(&mut p, &key, step, keys.len() as u64))
                .unwrap();
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

    fn plan_ints(keys: &[i64], step: u64, estimate: u64) -> Vec<Chunk> {
        let keys: Vec<Vec<Value>> = keys.iter().map(|k| vec![Value::Int(*k)]).collect();
        let mut p = VecProber(keys.clone());
        let key = vec!["id".to_string()];
        let chunks =
            futures::executor::block_on(plan_chunks(&mut p, &key, step, estimate)).unwrap();
        for k in &keys {
            assert_eq!(chunks.iter().filter(|c| in_chunk(c, k)).count(), 1, "{k:?}");
        }
        chunks
    }

    #[test]
    fn dense_integer_keys_split_arithmetically() {
        let keys: Vec<i64> = (-50..950).collect();
        let chunks = plan_ints(&keys, 100, 1000);
        assert_eq!(chunks.len(), 10);
        assert_eq!(chunks[1].lower, Some(vec![Value::Int(50)]));
        // A wrong estimate only changes chunk sizes, never coverage.
        assert_eq!(plan_ints(&keys, 100, 600).len(), 6);
        // Sparse keys are walked: chunks hold at most `step` rows.
        let sparse: Vec<i64> = (0..100).map(|i| i * i * 1000).collect();
        let chunks = plan_ints(&sparse, 10, 100);
        assert_eq!(chunks.len(), 10);
        // Unsigned keys keep their type.
        let mut p = VecProber(
            (0..20u64)
                .map(|k| vec![Value::UInt(u64::MAX - 30 + k)])
                .collect(),
        );
        let c = futures::executor::block_on(plan_chunks(&mut p, &["id".into()], 5, 20)).unwrap();
        assert_eq!(c.len(), 4);
        assert!(matches!(c[1].lower.as_deref(), Some([Value::UInt(_)])));
    }

    #[test]
    fn empty_and_keyless_tables_are_one_chunk() {
        assert_eq!(check(vec![], 10).len(), 1);
        let mut p = VecProber(vec![]);
        let chunks = futures::executor::block_on(plan_chunks(&mut p, &[], 10, 0)).unwrap();
        assert_eq!(chunks, vec![Chunk::whole_table()]);
    }
}
