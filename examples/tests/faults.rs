//! Fault injection end to end, through the `dts` command, on real servers: dts reaches both
//! servers through [`FaultProxy`]s that cut every live connection at random moments of the
//! full load and of replication under a write load; each run must go on by itself and end
//! in a value-for-value copy of the source. A source that stays down ends the full load
//! once the retry window has passed, and a second Ctrl-C while the copy is stalled exits at
//! once; in both cases the rerun completes.
//!
//! Each test prints its counts (faults injected, faults survived, rows compared) on
//! standard error: `cargo test -p dts-examples --test faults -- --nocapture`.

mod common;

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{assert_table_equal, numbers_table, source_tables, text, Env};
use dts_testkit::FaultProxy;
use mysql_async::prelude::*;

/// A pseudo-random sequence (xorshift); the seed is printed so a failure can be replayed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    /// Seeded from `DTS_FAULT_SEED` if set, else from the clock.
    fn from_env() -> Rng {
        let seed = std::env::var("DTS_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                u64::try_from(nanos % u128::from(u64::MAX)).unwrap() | 1
            });
        eprintln!("fault seed {seed} (set DTS_FAULT_SEED to replay)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A proxy in front of each server.
struct Proxies {
    source: Arc<FaultProxy>,
    target: Arc<FaultProxy>,
}

impl Proxies {
    fn start() -> Proxies {
        let my = dts_testkit::mariadb();
        let pg = dts_testkit::postgres();
        Proxies {
            source: Arc::new(FaultProxy::start(my.host(), my.port()).unwrap()),
            target: Arc::new(FaultProxy::start(pg.host(), pg.port()).unwrap()),
        }
    }

    /// A task file whose URLs go through the proxies.
    fn task_file(&self, env: &Env, migration: &str, extra: &str) -> String {
        let text = format!(
            "name = \"t\"\nmigration = {migration}\nsource.url = \"{}\"\n\
             target.url = \"{}\"\nobjects.include = [\"{}\"]\n\
             incremental.retry_window_seconds = 30\n{extra}",
            self.source.proxied_url(&dts_testkit::mariadb().url()),
            self.target.proxied_url(&env.pg_url()),
            env.db
        );
        let path = env.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

/// What a test did to dts and what held.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Cuts that closed at least one live connection.
    injected: u64,
    /// Of those, cuts of the source's connections.
    source: u64,
    /// Of those, cuts of the target's connections.
    target: u64,
    /// Connections closed by the cuts.
    connections: u64,
}

/// Whether the full load of the task in target database `db` has begun copying: its chunk
/// plans are stored.
fn copying(db: &str) -> bool {
    dts_testkit::postgres()
        .query_in(db, "SELECT count(*) FROM dts_meta.chunk_plan")
        .is_ok_and(|n| n.trim() != "0")
}

/// Whether the task in target database `db` has begun replicating: the full load is done
/// and a replication position is recorded.
fn replication_started(db: &str) -> bool {
    dts_testkit::postgres()
        .query_in(
            db,
            "SELECT (SELECT count(*) FROM dts_meta.step WHERE step = 'full') \
                  + (SELECT count(*) FROM dts_meta.cdc_position)",
        )
        .is_ok_and(|n| n.trim() == "2")
}

/// Cuts the source's or the target's connections (chosen at random) every 0.3–1.5 s in a
/// thread, from the moment the full load of the task in target database `db` begins copying
/// until stopped. (The run's start, the precheck, is not retried: a lost connection there
/// ends the run at once, with nothing written.)
struct Cutter {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Counts>,
}

impl Cutter {
    fn start(proxies: &Proxies, db: &str, mut rng: Rng) -> Cutter {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, source, target) = (stop.clone(), proxies.source.clone(), proxies.target.clone());
        let db = db.to_string();
        let handle = std::thread::spawn(move || {
            let mut counts = Counts::default();
            while !copying(&db) {
                if s.load(Ordering::Relaxed) {
                    return counts;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            loop {
                let wait = Instant::now() + Duration::from_millis(300 + rng.below(1200));
                while Instant::now() < wait {
                    if s.load(Ordering::Relaxed) {
                        return counts;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let on_source = rng.below(2) == 0;
                let n = if on_source {
                    source.cut()
                } else {
                    target.cut()
                };
                if n > 0 {
                    counts.injected += 1;
                    counts.connections += n as u64;
                    if on_source {
                        counts.source += 1;
                    } else {
                        counts.target += 1;
                    }
                }
            }
        });
        Cutter { stop, handle }
    }

    fn finish(self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn spawn_dts(task: &str, until_caught_up: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dts"));
    cmd.args(["run", "--config", task]);
    if until_caught_up {
        cmd.arg("--until-caught-up");
    }
    cmd.env("DTS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, at most `limit`, reading its output meanwhile.
fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let started = Instant::now();
    while !waiter.is_finished() {
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let out = waiter.join().unwrap();
            panic!("dts did not exit within {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

/// Sends `signal` (`INT`, `TERM`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The number in the `dts run` line telling how often the copy went on after a failure.
fn copy_retries(out: &Output) -> u64 {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("note: the copy went on after ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

async fn compare_all(env: &Env) -> usize {
    let mut rows = 0;
    for t in source_tables(env) {
        rows += assert_table_equal(env, &t, &env.db).await;
    }
    rows
}

/// A source database for the fault tests: a composite-key table and a table without a key
/// (copied whole, changed one matching row at a time).
fn source_sql(rows: u32) -> String {
    numbers_table(rows)
        + "CREATE TABLE notes (at DATETIME(6) NOT NULL, note VARCHAR(40));
           INSERT INTO notes SELECT '2024-01-01' + INTERVAL seq MINUTE, CONCAT('n', seq)
           FROM seq_1_to_2000;"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_survives_cut_connections() {
    let mut rng = Rng::from_env();
    let mut total = Counts::default();
    let (mut survived, mut compared, mut retries) = (0, 0, 0);
    for round in 0..3 {
        let env = Env::new("fault_full", &source_sql(40_000));
        let proxies = Proxies::start();
        // Small chunks, two workers and a throttle: the copy lasts a few seconds, long enough
        // for several cuts to land in it.
        let task = proxies.task_file(
            &env,
            "[\"schema\", \"full\"]",
            "full.workers = 2\nfull.rows_per_chunk = 2000\nfull.max_rows_per_second = 15000\n",
        );
        if round == 2 {
            // Slow links as well: cuts land in the middle of longer exchanges.
            proxies.source.slow(Duration::from_millis(1));
            proxies.target.slow(Duration::from_millis(1));
        }
        let child = spawn_dts(&task, false);
        let cutter = Cutter::start(&proxies, &env.target_db, Rng(rng.next() | 1));
        let out = wait_output(child, Duration::from_secs(90));
        let counts = cutter.finish();
        assert!(
            out.status.success(),
            "round {round}, after {counts:?}: {}",
            text(&out)
        );
        let rows = compare_all(&env).await;
        eprintln!(
            "full load round {round}: {} cuts ({} source, {} target, {} connections), \
             copy retried {} times, {rows} rows compared",
            counts.injected,
            counts.source,
            counts.target,
            counts.connections,
            copy_retries(&out)
        );
        total.injected += counts.injected;
        total.source += counts.source;
        total.target += counts.target;
        total.connections += counts.connections;
        survived += counts.injected;
        retries += copy_retries(&out);
        compared += rows;
    }
    eprintln!(
        "full load: faults injected {}, survived {survived} ({} source, {} target cuts, \
         {} connections closed), copy retries {retries}, rows compared {compared}",
        total.injected, total.source, total.target, total.connections
    );
    assert!(total.injected >= 6, "too few cuts landed: {total:?}");
    assert!(retries >= 3, "the copy itself was cut only {retries} times");
}

/// A writer changing the source (directly, not through a proxy) until stopped.
struct Workload {
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl Workload {
    fn start(url: String, mut rng: Rng) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), transactions.clone());
        let handle = tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let mut next_id: u64 = 10_000_000;
            while !s.load(Ordering::Relaxed) {
                let mut tx = conn
                    .start_transaction(mysql_async::TxOpts::default())
                    .await
                    .unwrap();
                for _ in 0..1 + rng.below(3) {
                    let id = 1 + rng.below(20_000);
                    let sql = match rng.below(8) {
                        0..=2 => {
                            next_id += 1;
                            format!(
                                "INSERT INTO numbers VALUES ({g}, {next_id}, 'ins-{next_id}', \
                                 {next_id}.5, NOW(6), UNHEX(MD5({next_id})))",
                                g = next_id % 7
                            )
                        }
                        3..=4 => format!(
                            "UPDATE numbers SET label = CONCAT(label, '+'), amount = amount + 1 \
                             WHERE id = {id}"
                        ),
                        5 => format!("DELETE FROM numbers WHERE id = {id}"),
                        6 => format!("INSERT INTO notes VALUES (NOW(6), 'w{}')", rng.below(1000)),
                        _ => "DELETE FROM notes ORDER BY at LIMIT 1".to_string(),
                    };
                    tx.query_drop(sql).await.unwrap();
                }
                tx.commit().await.unwrap();
                t.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Workload {
            stop,
            transactions,
            handle,
        }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap();
        self.transactions.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_survives_cut_connections_under_writes() {
    let mut rng = Rng::from_env();
    let mut total = Counts::default();
    let (mut compared, mut written) = (0, 0);
    for round in 0..2 {
        let env = Env::new("fault_inc", &source_sql(20_000));
        let proxies = Proxies::start();
        let task = proxies.task_file(
            &env,
            "[\"schema\", \"full\", \"incremental\"]",
            "full.workers = 2\nfull.rows_per_chunk = 2000\nfull.max_rows_per_second = 10000\n",
        );
        let workload = Workload::start(env.mysql_url(), Rng(rng.next() | 1));
        let mut child = spawn_dts(&task, false);
        let cutter = Cutter::start(&proxies, &env.target_db, Rng(rng.next() | 1));
        // Cuts land in the full load, then for five seconds in replication.
        let started = Instant::now();
        let mut replicating: Option<Instant> = None;
        while replicating.is_none_or(|r| r.elapsed() < Duration::from_secs(5)) {
            if replicating.is_none() && replication_started(&env.target_db) {
                replicating = Some(Instant::now());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "round {round}: replication did not start"
            );
            if child.try_wait().unwrap().is_some() {
                let counts = cutter.finish();
                let out = wait_output(child, Duration::from_secs(5));
                panic!(
                    "round {round}: dts exited while replicating, after {counts:?}: {}",
                    text(&out)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let counts = cutter.finish();
        let txs = workload.finish().await;
        // A clean stop, then a catch-up run to everything the source committed.
        signal(child.id(), "TERM");
        let out = wait_output(child, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "round {round}, after {counts:?}: {}",
            text(&out)
        );
        let out = wait_output(spawn_dts(&task, true), Duration::from_secs(60));
        assert!(out.status.success(), "round {round}: {}", text(&out));
        let rows = compare_all(&env).await;
        eprintln!(
            "replication round {round}: {} cuts ({} source, {} target, {} connections), \
             {txs} source transactions, {rows} rows compared",
            counts.injected, counts.source, counts.target, counts.connections
        );
        assert!(txs > 100, "the workload wrote only {txs} transactions");
        total.injected += counts.injected;
        total.source += counts.source;
        total.target += counts.target;
        total.connections += counts.connections;
        compared += rows;
        written += txs;
    }
    eprintln!(
        "replication: faults injected {}, survived {} ({} source, {} target cuts, \
         {} connections closed), source transactions {written}, rows compared {compared}",
        total.injected, total.injected, total.source, total.target, total.connections
    );
    assert!(total.injected >= 10, "too few cuts landed: {total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_interrupt_exits_at_once_and_the_rerun_completes() {
    let env = Env::new("fault_int", &source_sql(20_000));
    let proxies = Proxies::start();
    let task = proxies.task_file(
        &env,
        "[\"schema\", \"full\"]",
        "full.workers = 2\nfull.rows_per_chunk = 2000\nfull.max_rows_per_second = 10000\n",
    );
    let mut child = spawn_dts(&task, false);
    // Wait until the copy is under way, then stall the target: the chunks in flight cannot
    // finish, so the first interrupt cannot stop the run.
    let started = Instant::now();
    while !dts_testkit::postgres()
        .query_in(&env.target_db, "SELECT count(*) FROM dts_meta.chunk")
        .is_ok_and(|n| n.trim() != "0")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk copied"
        );
        assert!(child.try_wait().unwrap().is_none(), "dts exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxies.target.stall();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(child.id(), "INT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first interrupt ended a stalled run"
    );
    let interrupted = Instant::now();
    signal(child.id(), "INT");
    let mut stderr = String::new();
    let out = wait_output(child, Duration::from_secs(10));
    let waited = interrupted.elapsed();
    out.stderr.as_slice().read_to_string(&mut stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(waited < Duration::from_secs(3), "exited after {waited:?}");
    assert!(stderr.contains("exiting at once"), "{}", text(&out));

    // The rerun resumes and the copy is exact.
    proxies.target.resume();
    proxies.target.cut();
    let out = wait_output(spawn_dts(&task, false), Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    let rows = compare_all(&env).await;
    eprintln!("second interrupt: exited after {waited:?}; {rows} rows compared after the rerun");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_load_gives_up_once_the_retry_window_has_passed() {
    let env = Env::new("fault_window", &source_sql(20_000));
    let proxies = Proxies::start();
    let task = proxies.task_file(
        &env,
        "[\"schema\", \"full\"]",
        "full.workers = 2\nfull.rows_per_chunk = 2000\nfull.max_rows_per_second = 10000\n",
    );
    // The task file's window is 30 s; this run's is 3 s.
    let text_with_window = std::fs::read_to_string(&task)
        .unwrap()
        .replace("retry_window_seconds = 30", "retry_window_seconds = 3");
    std::fs::write(&task, text_with_window).unwrap();
    let mut child = spawn_dts(&task, false);
    let started = Instant::now();
    while !copying(&env.target_db) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk plan stored"
        );
        assert!(child.try_wait().unwrap().is_none(), "dts exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The source goes down for good: the copy retries for the window, then gives up.
    proxies.source.refuse();
    let down = Instant::now();
    let out = wait_output(child, Duration::from_secs(60));
    let waited = down.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retry window"), "{}", text(&out));
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(20),
        "gave up after {waited:?}: {}",
        text(&out)
    );

    // Once the source is back, the task resumes and the copy is exact.
    proxies.source.resume();
    let out = wait_output(spawn_dts(&task, false), Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    let rows = compare_all(&env).await;
    eprintln!("retry window: gave up {waited:?} after the source went down; {rows} rows compared after the rerun");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_connection_that_goes_silent_is_given_up_and_the_copy_goes_on() {
    let env = Env::new("fault_silent", &source_sql(20_000));
    let proxies = Proxies::start();
    let task = proxies.task_file(
        &env,
        "[\"schema\", \"full\"]",
        "full.workers = 2\nfull.rows_per_chunk = 2000\nfull.max_rows_per_second = 10000\n\
         full.stall_timeout_seconds = 2\n",
    );
    let child = spawn_dts(&task, false);
    let started = Instant::now();
    while !dts_testkit::postgres()
        .query_in(&env.target_db, "SELECT count(*) FROM dts_meta.chunk")
        .is_ok_and(|n| n.trim() != "0")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk copied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The snapshot readers' connections go silent for good, without closing: only the
    // stall watchdog can tell. New connections get through.
    let silenced = proxies.source.blackhole();
    assert!(silenced > 0, "no source connection to silence");
    let silent = Instant::now();
    let out = wait_output(child, Duration::from_secs(90));
    assert!(out.status.success(), "{}", text(&out));
    let retries = copy_retries(&out);
    assert!(
        retries >= 1,
        "the copy never gave up on the silent connections: {}",
        text(&out)
    );
    let rows = compare_all(&env).await;
    eprintln!(
        "silent source: {silenced} connections silenced, the run finished {:?} later after \
         {retries} retries; {rows} rows compared",
        silent.elapsed()
    );
}
