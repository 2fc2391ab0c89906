//! Commit-to-visible latency under a steady load: single-row insert transactions offered at
//! a fixed rate to the source while dts replicates continuously, and a poller that notes
//! when each row first shows in the target.
//!
//! Each row's `created_at` is the source server's `NOW(6)` (in UTC) when its `INSERT` ran,
//! just before its commit; a row's visible time is the start of the first poll of the target
//! that returned it. Both servers run on this machine, so the server's clock and this
//! process's clock are the same clock. The poller also notes when the client got each
//! commit acknowledged (this process's monotonic clock), as a second measure that does not
//! depend on the servers' clocks at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use dts_benches::report::to_f64;
use mysql_async::prelude::Queryable as _;
use tokio_postgres::{Client, NoTls};

use crate::source::{DB, TABLE};
use crate::workload::{connect, insert, Rng};

/// Most late rows a load connection sends in one multi-statement batch to catch up.
const MAX_CATCH_UP: usize = 50;

/// The shape of the load and of the polling.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Offered rows (transactions) per second, over all connections.
    pub rate: u64,
    pub seconds: u64,
    pub connections: u64,
    /// Time between the starts of two polls of the target.
    pub poll_every: Duration,
    /// How long, after the load ends, rows may take to show before they count as missing.
    pub drain: Duration,
}

/// What the load and the poller saw.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Rows the load meant to insert: rate × seconds.
    pub planned: u64,
    /// Rows whose commit the source acknowledged.
    pub committed: u64,
    /// From the first row's due time to the last commit acknowledgement.
    pub send_time: Duration,
    /// The latest a row was sent after its due time.
    pub max_send_lag: Duration,
    /// Per visible row, in µs, sorted: visible time − `created_at` (the source's `NOW(6)`).
    pub from_commit: Vec<u64>,
    /// Per visible row, in µs, sorted: visible time − when the client got the commit
    /// acknowledged; 0 for rows seen before their acknowledgement arrived.
    pub from_ack: Vec<u64>,
    /// Committed rows that never showed in the target within the drain time.
    pub missing: u64,
    pub polls: u64,
    /// The mean time between the starts of two polls.
    pub mean_poll_interval: Duration,
    /// The mean and the longest time a poll took, query to result.
    pub mean_poll_time: Duration,
    pub max_poll_time: Duration,
}

impl Measured {
    /// Committed rows per second, from the first due time to the last acknowledgement.
    pub fn achieved_rate(&self) -> f64 {
        to_f64(self.committed) / self.send_time.as_secs_f64().max(1e-9)
    }
}

/// Connects to the target database.
pub async fn connect_target(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to the target")?;
    tokio::spawn(async move {
        // Ends when the client is dropped; a broken connection shows in the next query.
        let _ = connection.await;
    });
    Ok(client)
}

/// Changes the `note` of row `id` in the source and waits until the change shows in the
/// target, polling every `poll_every`: the proof that dts is replicating. Returns how long
/// the change took to show; fails after `timeout`.
pub async fn probe(
    source_url: &str,
    target: &Client,
    id: u64,
    poll_every: Duration,
    timeout: Duration,
) -> Result<Duration> {
    let tag = format!(
        "probe {}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros()
    );
    let mut conn = connect(source_url).await?;
    let started = Instant::now();
    conn.query_drop(format!("UPDATE {TABLE} SET note = '{tag}' WHERE id = {id}"))
        .await
        .context("updating the probe row")?;
    conn.disconnect().await?;
    let sql = format!("SELECT note FROM {DB}.{TABLE} WHERE id = $1");
    let id = i64::try_from(id)?;
    loop {
        let rows = target.query(&sql, &[&id]).await?;
        if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some(tag.as_str()) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!(
                "a change to the source did not show in the target within {} s: \
                 dts is not replicating",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(poll_every).await;
    }
}

/// Offers the load (rows with ids `first..first + rate × seconds`) and polls the target
/// until every committed row has shown, or `drain` after the load ended.
pub async fn measure(
    source_url: &str,
    target: &Client,
    first: u64,
    settings: Settings,
) -> Result<Measured> {
    let total = settings.rate * settings.seconds;
    let slots = usize::try_from(total)?;
    let epoch = Instant::now();
    // Per row: when its commit was acknowledged, in µs since `epoch`, plus 1 (0: not yet).
    let acks: Arc<Vec<AtomicU64>> = Arc::new((0..slots).map(|_| AtomicU64::new(0)).collect());
    let committed = Arc::new(AtomicU64::new(0));
    let last_ack = Arc::new(AtomicU64::new(0));
    let max_lag = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicUsize::new(usize::try_from(settings.connections)?));

    // Every connection connects before the clock starts.
    let mut conns = Vec::new();
    for _ in 0..settings.connections {
        conns.push(connect(source_url).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let due = move |i: u64| start + Duration::from_secs_f64(to_f64(i) / to_f64(settings.rate));
    let mut tasks = Vec::new();
    for (c, mut conn) in (0u64..).zip(conns) {
        let (acks, committed, last_ack, max_lag, running) = (
            acks.clone(),
            committed.clone(),
            last_ack.clone(),
            max_lag.clone(),
            running.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = async {
                let mut rng = Rng::new(0x1a7e ^ (c + 1));
                // Row i (id first + i) is due at start + i / rate; connection c sends the
                // rows i ≡ c modulo the number of connections.
                let mine: Vec<u64> = (c..total)
                    .step_by(usize::try_from(settings.connections)?)
                    .collect();
                let mut k = 0;
                while k < mine.len() {
                    tokio::time::sleep_until(due(mine[k]).into()).await;
                    let now = Instant::now();
                    let mut end = k + 1;
                    while end < mine.len() && end - k < MAX_CATCH_UP && due(mine[end]) <= now {
                        end += 1;
                    }
                    let lag = micros(now.saturating_duration_since(due(mine[k])));
                    max_lag.fetch_max(lag, Ordering::Relaxed);
                    let batch: Vec<String> = mine[k..end]
                        .iter()
                        .map(|i| insert(first + i, &mut rng))
                        .collect();
                    conn.query_drop(batch.join(";")).await?;
                    let ack = micros(epoch.elapsed()) + 1;
                    for &i in &mine[k..end] {
                        acks[usize::try_from(i)?].store(ack, Ordering::Relaxed);
                    }
                    committed.fetch_add(u64::try_from(end - k)?, Ordering::Relaxed);
                    last_ack.fetch_max(ack, Ordering::Relaxed);
                    k = end;
                }
                conn.disconnect().await?;
                anyhow::Ok(())
            };
            let result = body.await;
            running.fetch_sub(1, Ordering::Relaxed);
            result
        }));
    }

    let sql = format!(
        "SELECT id, (extract(epoch FROM created_at) * 1000000)::int8 FROM {DB}.{TABLE} \
         WHERE id >= $1 AND id < $2 ORDER BY id"
    );
    let statement = target.prepare(&sql).await?;
    let end_id = i64::try_from(first + total)?;
    let mut seen = vec![false; slots];
    let mut measured = Measured {
        planned: total,
        ..Measured::default()
    };
    // Rows below `low` have all been seen. The load's connections commit their rows out of
    // id order, so each poll reads everything from the first row not yet seen.
    let mut low = 0usize;
    let mut seen_count = 0u64;
    let mut drain_deadline: Option<Instant> = None;
    let mut poll_time_total = Duration::ZERO;
    // The starts of the first and of the latest poll.
    let mut polled: Option<(Instant, Instant)> = None;
    loop {
        let poll_start = Instant::now();
        let wall = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros())?;
        let low_id = i64::try_from(first + u64::try_from(low)?)?;
        let rows = target
            .query(&statement, &[&low_id, &end_id])
            .await
            .context("polling the target")?;
        let poll_time = poll_start.elapsed();
        measured.polls += 1;
        poll_time_total += poll_time;
        measured.max_poll_time = measured.max_poll_time.max(poll_time);
        polled = Some((polled.map_or(poll_start, |(first, _)| first), poll_start));
        let at = micros(poll_start.duration_since(epoch));
        for row in rows {
            let id: i64 = row.get(0);
            let created: i64 = row.get(1);
            let index = usize::try_from(u64::try_from(id)? - first)?;
            if std::mem::replace(&mut seen[index], true) {
                continue;
            }
            seen_count += 1;
            measured
                .from_commit
                .push(u64::try_from(wall - created).unwrap_or(0));
            let from_ack = match acks[index].load(Ordering::Relaxed) {
                0 => 0,
                ack => at.saturating_sub(ack - 1),
            };
            measured.from_ack.push(from_ack);
        }
        while low < slots && seen[low] {
            low += 1;
        }
        if seen_count == total {
            break;
        }
        if running.load(Ordering::Relaxed) == 0 {
            if seen_count >= committed.load(Ordering::Relaxed) {
                break;
            }
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + settings.drain);
            if Instant::now() >= deadline {
                break;
            }
        }
        tokio::time::sleep_until((poll_start + settings.poll_every).into()).await;
    }
    for task in tasks {
        task.await.context("a load connection panicked")??;
    }

    measured.committed = committed.load(Ordering::Relaxed);
    measured.missing = measured.committed.saturating_sub(seen_count);
    let last_ack = last_ack.load(Ordering::Relaxed).saturating_sub(1);
    measured.send_time = (epoch + Duration::from_micros(last_ack)).saturating_duration_since(start);
    measured.max_send_lag = Duration::from_micros(max_lag.load(Ordering::Relaxed));
    if let (Some((first_poll, last_poll)), true) = (polled, measured.polls > 1) {
        let intervals = u32::try_from(measured.polls - 1).unwrap_or(u32::MAX);
        measured.mean_poll_interval = (last_poll - first_poll) / intervals;
    }
    measured.mean_poll_time = poll_time_total / u32::try_from(measured.polls).unwrap_or(u32::MAX);
    measured.from_commit.sort_unstable();
    measured.from_ack.sort_unstable();
    Ok(measured)
}

/// A duration in whole microseconds (saturating: durations here are far below 2^64 µs).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
