//! The source workloads: single-row autocommit transactions, generated quickly from several
//! connections while dts is not running, to leave a backlog in the binary log.
//!
//! Each statement runs in autocommit mode, so each is its own transaction (its own GTID and
//! `COMMIT` in the binary log). Statements are sent in multi-statement batches: one round
//! trip carries many transactions, which is what makes generating them fast.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};

use crate::source::TABLE;

/// Statements per multi-statement batch when generating a backlog.
const BATCH: usize = 200;

/// What a generator did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generated {
    /// Single-row transactions committed.
    pub transactions: u64,
    pub updates: u64,
    pub deletes: u64,
    /// From the first statement to the last commit.
    pub elapsed: Duration,
}

/// A deterministic pseudo-random sequence (xorshift), so that runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point.
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A connection to the source database, with the session in UTC so that `NOW(6)` is the
/// UTC time (the target's latency poller reads it as UTC).
pub async fn connect(url: &str) -> Result<Conn> {
    let opts = Opts::from_url(url).context("parsing the source URL")?;
    let mut conn = Conn::new(opts).await.context("connecting to the source")?;
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .context("setting the session time zone")?;
    Ok(conn)
}

/// An autocommit `INSERT` of row `id`; `created_at` is the server's `NOW(6)`.
pub fn insert(id: u64, rng: &mut Rng) -> String {
    const KINDS: [&str; 4] = ["deposit", "withdrawal", "transfer", "fee"];
    let account = 1 + rng.below(10_000);
    let kind = KINDS[usize::from(u8::try_from(rng.below(4)).unwrap_or(0))];
    let cents = rng.below(100_000_000);
    let tag = rng.next();
    format!(
        "INSERT INTO {TABLE} (id, account, kind, amount, note, created_at) VALUES \
         ({id}, {account}, '{kind}', {}.{:02}, 'ins {id} {tag:016x}', NOW(6))",
        cents / 100,
        cents % 100
    )
}

/// An autocommit `UPDATE` of row `id` that always changes it (`note` is unique per `tag`).
pub fn update(id: u64, tag: &str, rng: &mut Rng) -> String {
    let cents = rng.below(100_000_000);
    format!(
        "UPDATE {TABLE} SET amount = {}.{:02}, account = account + 1, note = 'upd {tag}' \
         WHERE id = {id}",
        cents / 100,
        cents % 100
    )
}

/// An autocommit `DELETE` of row `id`.
pub fn delete(id: u64) -> String {
    format!("DELETE FROM {TABLE} WHERE id = {id}")
}

/// Inserts rows `first..first + n`, one transaction each, from `connections` connections
/// (connection `c` inserts the ids `≡ first + c` modulo `connections`).
pub async fn inserts(
    url: &str,
    first: u64,
    n: u64,
    connections: u64,
    seed: u64,
) -> Result<Generated> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&url).await?;
            let mut rng = Rng::new(seed ^ (c + 1));
            let ids = (first + c..first + n).step_by(usize::try_from(connections)?);
            let mut batch = Vec::with_capacity(BATCH);
            let mut done = 0u64;
            for id in ids {
                batch.push(insert(id, &mut rng));
                if batch.len() == BATCH {
                    conn.query_drop(batch.join(";")).await?;
                    done += u64::try_from(batch.len())?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                conn.query_drop(batch.join(";")).await?;
                done += u64::try_from(batch.len())?;
            }
            conn.disconnect().await?;
            anyhow::Ok(done)
        }));
    }
    let mut generated = Generated::default();
    for task in tasks {
        generated.transactions += task.await.context("an insert connection panicked")??;
    }
    generated.elapsed = started.elapsed();
    Ok(generated)
}

/// Runs `n` single-row transactions on the rows `live` (their ids): about 70% `UPDATE`s
/// and 30% `DELETE`s of random live rows, from `connections` connections. Every statement
/// changes exactly one row: connection `c` touches only the ids `≡ c` modulo `connections`
/// and tracks which of them it has deleted.
pub async fn updates_and_deletes(
    url: &str,
    live: &[u64],
    n: u64,
    connections: u64,
    seed: u64,
) -> Result<Generated> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let url = url.to_owned();
        let mut mine: Vec<u64> = live
            .iter()
            .copied()
            .filter(|id| id % connections == c)
            .collect();
        // Connection c runs every connections-th of the n transactions.
        let count = (n + connections - 1 - c) / connections;
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&url).await?;
            let mut rng = Rng::new(seed ^ (c + 1));
            let mut generated = Generated::default();
            let mut batch = Vec::with_capacity(BATCH);
            for k in 0..count {
                if mine.is_empty() {
                    bail!("connection {c} ran out of rows to update or delete");
                }
                let len = u64::try_from(mine.len())?;
                let at = usize::try_from(rng.below(len))?;
                if rng.below(10) < 7 {
                    batch.push(update(mine[at], &format!("{c}-{k}"), &mut rng));
                    generated.updates += 1;
                } else {
                    batch.push(delete(mine.swap_remove(at)));
                    generated.deletes += 1;
                }
                if batch.len() == BATCH {
                    conn.query_drop(batch.join(";")).await?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                conn.query_drop(batch.join(";")).await?;
            }
            conn.disconnect().await?;
            generated.transactions = generated.updates + generated.deletes;
            anyhow::Ok(generated)
        }));
    }
    let mut total = Generated::default();
    for task in tasks {
        let g = task.await.context("a workload connection panicked")??;
        total.transactions += g.transactions;
        total.updates += g.updates;
        total.deletes += g.deletes;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_statements() {
        let mut rng = Rng::new(7);
        let sql = insert(42, &mut rng);
        assert!(sql.starts_with(
            "INSERT INTO events (id, account, kind, amount, note, created_at) VALUES (42, "
        ));
        assert!(sql.ends_with(", NOW(6))"));
        let sql = update(42, "0-1", &mut rng);
        assert!(sql.contains("note = 'upd 0-1' WHERE id = 42"));
        assert_eq!(delete(42), "DELETE FROM events WHERE id = 42");
    }

    #[test]
    fn random_numbers_are_repeatable_and_in_range() {
        let (mut a, mut b) = (Rng::new(0), Rng::new(0));
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
