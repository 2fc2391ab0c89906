//! Metrics and alerts of `dts run`, against real servers: the Prometheus endpoint scraped
//! during a full load and during replication (strictly parsed, counters moving, the task
//! file's labels on every sample, no password anywhere); the lag alert on a stalled target
//! (through a `FaultProxy`) posted to a real local HTTP listener and run as a command, then
//! resolved; the failure alert of a failed task.
//!
//! ```text
//! cargo test -p dts-examples --test metrics
//! ```

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{numbers_table, Env};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The source account's password, with characters URLs treat specially.
const PASSWORD: &str = "m3tr1cs/@?#pw";

fn encoded(password: &str) -> String {
    password
        .replace('/', "%2F")
        .replace('@', "%40")
        .replace('?', "%3F")
        .replace('#', "%23")
}

fn assert_no_secret(what: &str, text: &str) {
    for form in [PASSWORD.to_string(), encoded(PASSWORD), "m3tr1cs".into()] {
        assert!(
            !text.contains(&form),
            "{what} shows the password (as `{form}`):\n{}",
            text.chars().take(4000).collect::<String>()
        );
    }
}

/// A source URL for a new account with [`PASSWORD`].
fn source_with_password() -> String {
    let my = dts_testkit::mariadb();
    let user = dts_testkit::unique_name("met");
    my.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%';"
    ))
    .unwrap();
    format!(
        "mysql://{user}:{}@127.0.0.1:{}",
        encoded(PASSWORD),
        my.port()
    )
}

fn write_task(env: &Env, source: &str, target: &str, migration: &str, extra: &str) -> String {
    let path = env.dir.join("task.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"t\"\nmigration = {migration}\nsource.url = \"{source}\"\n\
             target.url = \"{target}\"\nobjects.include = [\"{}\"]\n{extra}",
            env.db
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// A `dts run` whose standard error is collected; `metrics` is the address it serves its
/// metrics on, when asked to.
struct Run {
    child: Child,
    log: Arc<Mutex<String>>,
    metrics: Option<String>,
}

impl Run {
    fn start(task: &str, metrics: bool) -> Run {
        let mut args = vec!["run", "--config", task];
        if metrics {
            args.extend(["--metrics-addr", "127.0.0.1:0"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(&args)
            .env("DTS_LOG", "debug,tokio_postgres=info,mysql_async=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("metrics: http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                {
                    let _ = tx.send(addr.to_string());
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let metrics = metrics.then(|| {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no metrics address printed: {}", log.lock().unwrap()))
        });
        Run {
            child,
            log,
            metrics,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn assert_running(&mut self, what: &str) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the run ended while waiting for {what}:\n{}",
            self.log()
        );
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status.code(), self.log());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("the run did not stop:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return (status.code(), self.log());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the run did not end within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET /metrics` over a plain TCP connection: the status line, the content type, the body.
async fn scrape(addr: &str) -> (String, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: dts\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Every sample of a scrape, checked strictly against the Prometheus text format (0.0.4):
/// `# HELP`/`# TYPE` lines well formed, one `# TYPE` per family before its samples, metric
/// and label names valid, label values correctly escaped, values numbers, each sample of a
/// declared family (histograms: `_bucket` with `le`, cumulative, its `+Inf` bucket equal to
/// `_count`, and `_sum`), no series twice.
fn parse_exposition(text: &str) -> Vec<Sample> {
    fn name_ok(n: &str, colon: bool) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    fn value(v: &str, line: &str) -> f64 {
        match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value `{v}` in `{line}`")),
        }
    }
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a scrape ends with a newline"
    );
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(name_ok(name, true), "`{line}`");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "`{line}`"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "a second TYPE for `{name}`"
                    );
                }
                (Some("HELP"), Some(name), _) => assert!(name_ok(name, true), "`{line}`"),
                _ => {}
            }
            continue;
        }
        assert!(!line.starts_with('#'), "`{line}`");
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("`{line}`"));
        let name = &line[..name_end];
        assert!(name_ok(name, true), "bad metric name in `{line}`");
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let end = loop {
                let Some(&(i, c)) = chars.peek() else {
                    panic!("unterminated labels in `{line}`")
                };
                if c == '}' {
                    break i;
                }
                let start = i;
                while chars.peek().is_some_and(|&(_, c)| c != '=') {
                    chars.next();
                }
                let (eq, _) = chars.next().unwrap_or_else(|| panic!("`{line}`"));
                let label = &inner[start..eq];
                assert!(
                    name_ok(label, false),
                    "bad label name `{label}` in `{line}`"
                );
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "`{line}`");
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => panic!("bad escape {other:?} in `{line}`"),
                        },
                        Some('\n') | None => panic!("unterminated label value in `{line}`"),
                        Some(c) => value.push(c),
                    }
                }
                assert!(
                    labels.insert(label.to_string(), value).is_none(),
                    "label `{label}` twice in `{line}`"
                );
                match chars.peek().map(|&(_, c)| c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => panic!("`{line}`"),
                }
            };
            rest = &inner[end + 1..];
        }
        let rest = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in `{line}`"));
        let mut fields = rest.split(' ');
        let v = value(fields.next().unwrap(), line);
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in `{line}`"));
        }
        assert!(fields.next().is_none(), "`{line}`");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| {
                    types
                        .get(*f)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("`{name}` has no TYPE before it"));
        if kind == "histogram" && name.ends_with("_bucket") {
            assert!(labels.contains_key("le"), "`{line}`");
        }
        assert!(
            seen.insert(format!("{name}{labels:?}")),
            "series twice: `{line}`"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: v,
        });
    }
    // Histograms: cumulative buckets, +Inf equal to the count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let bucket = format!("{family}_bucket");
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.name == bucket)
            .map(|s| (value(&s.labels["le"], &s.name), s.value))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "`{family}` buckets are cumulative: {buckets:?}"
        );
        let count = samples
            .iter()
            .find(|s| s.name == format!("{family}_count"))
            .map(|s| s.value);
        assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family}");
        assert_eq!(buckets.last().map(|b| b.1), count, "{family}");
        assert!(
            samples.iter().any(|s| s.name == format!("{family}_sum")),
            "{family}_sum"
        );
    }
    samples
}

/// The value of the sample `name` whose labels include `labels`.
fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Scrapes until `check` holds on the samples (each scrape parsed strictly).
async fn scrape_until(
    run: &mut Run,
    what: &str,
    limit: Duration,
    check: impl Fn(&[Sample]) -> bool,
) -> (Vec<Sample>, String) {
    let addr = run.metrics.clone().unwrap();
    let started = Instant::now();
    loop {
        let (status, content_type, body) = scrape(&addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let samples = parse_exposition(&body);
        if check(&samples) {
            return (samples, body);
        }
        run.assert_running(what);
        assert!(
            started.elapsed() < limit,
            "no {what} within {limit:?}; last scrape:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_during_a_full_load_and_replication() {
    let env = Env::new("metrics", &numbers_table(8_000));
    let source = source_with_password();
    // A throttled copy (about 4 s) in small chunks, so the load is scraped half done.
    let task = write_task(
        &env,
        &source,
        &env.pg_url(),
        "[\"schema\", \"full\", \"incremental\"]",
        "full.rows_per_chunk = 500\nfull.workers = 2\nfull.max_rows_per_second = 2000\n\
         [metrics]\nlabels = { env = \"prod\", region = \"eu \\\"west\\\"\" }\n",
    );
    let mut run = Run::start(&task, true);
    let table = format!("{}.numbers", env.db);
    let rows_copied = |s: &[Sample]| {
        value_of(s, "dts_full_rows_copied_total", &[("table", &table)]).unwrap_or(0.0)
    };

    // During the full load.
    let (first, first_text) =
        scrape_until(&mut run, "a half-done copy", Duration::from_secs(60), |s| {
            value_of(s, "dts_task_state", &[("state", "full")]) == Some(1.0)
                && rows_copied(s) > 0.0
                && rows_copied(s) < 8_000.0
        })
        .await;
    assert_eq!(
        value_of(&first, "dts_full_rows_estimated", &[("table", &table)]).map(|v| v > 0.0),
        Some(true)
    );
    assert_eq!(
        value_of(&first, "dts_task_state", &[("state", "incremental")]),
        Some(0.0)
    );
    assert_eq!(
        value_of(&first, "dts_retries_total", &[("phase", "incremental")]),
        Some(0.0),
        "retries are shown from the start"
    );
    // Every sample carries the task's name and the task file's labels, escaped.
    for s in &first {
        assert_eq!(s.labels.get("task").map(String::as_str), Some("t"), "{s:?}");
        assert_eq!(
            s.labels.get("env").map(String::as_str),
            Some("prod"),
            "{s:?}"
        );
        assert_eq!(
            s.labels.get("region").map(String::as_str),
            Some("eu \"west\""),
            "{s:?}"
        );
    }
    assert_no_secret("a scrape", &first_text);

    // The copy goes on: the counter moves between scrapes.
    let (second, _) = scrape_until(&mut run, "more rows copied", Duration::from_secs(60), |s| {
        rows_copied(s) > rows_copied(&first)
    })
    .await;
    assert!(
        value_of(
            &second,
            "dts_full_chunks_copied_total",
            &[("table", &table)]
        )
        .unwrap()
            >= value_of(&first, "dts_full_chunks_copied_total", &[("table", &table)]).unwrap()
    );

    // Replication with writes: rows applied per table and operation, batch latencies, the
    // lag and the position.
    let (replicating, _) = scrape_until(&mut run, "replication", Duration::from_secs(60), |s| {
        value_of(s, "dts_task_state", &[("state", "incremental")]) == Some(1.0)
    })
    .await;
    assert_eq!(rows_copied(&replicating), 8_000.0);
    assert_eq!(
        value_of(&replicating, "dts_task_state", &[("state", "full")]),
        Some(0.0)
    );
    env.my("INSERT INTO numbers (grp, id, label, amount, at, payload) \
         SELECT 1, 900000 + seq, 'later', 1, '2024-06-01', NULL FROM seq_1_to_50");
    env.my("UPDATE numbers SET label = 'changed' WHERE id <= 20");
    env.my("DELETE FROM numbers WHERE id BETWEEN 21 AND 25");
    let applied = |s: &[Sample], op: &str| {
        value_of(
            s,
            "dts_replication_rows_applied_total",
            &[("table", &table), ("operation", op)],
        )
        .unwrap_or(0.0)
    };
    let (moved, moved_text) = scrape_until(
        &mut run,
        "the changes applied",
        Duration::from_secs(60),
        |s| {
            applied(s, "insert") >= 50.0
                && applied(s, "update") >= 20.0
                && applied(s, "delete") >= 5.0
        },
    )
    .await;
    assert_eq!(applied(&moved, "insert"), 50.0, "{moved_text}");
    assert_eq!(applied(&moved, "update"), 20.0, "{moved_text}");
    assert_eq!(applied(&moved, "delete"), 5.0, "{moved_text}");
    assert!(value_of(&moved, "dts_replication_transactions_applied_total", &[]).unwrap() >= 3.0);
    assert!(
        value_of(&moved, "dts_replication_batch_apply_seconds_count", &[]).unwrap() >= 1.0,
        "{moved_text}"
    );
    assert!(
        value_of(&moved, "dts_replication_lag_seconds", &[]).is_some(),
        "{moved_text}"
    );
    assert!(
        value_of(&moved, "dts_replication_applied_position", &[]).unwrap()
            > value_of(&replicating, "dts_replication_applied_position", &[]).unwrap_or(0.0),
        "the position moves"
    );
    assert!(value_of(&moved, "dts_replication_applied_binlog_file", &[]).unwrap() >= 1.0);
    assert_no_secret("a scrape", &moved_text);

    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "a stopped run exits 0:\n{log}");
    assert_no_secret("the run's log", &log);
}

/// A local HTTP listener standing for a webhook: answers the first `failures` requests with
/// 503, the others with 200, and keeps every request's body.
struct Hook {
    addr: String,
    bodies: Arc<Mutex<Vec<(u16, Value)>>>,
}

impl Hook {
    async fn start(failures: usize) -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            let mut served = 0usize;
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as many body bytes as Content-Length says.
                let (head_end, length) = loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the request ended early");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        assert!(
                            head.starts_with("post /alerts?token=abc http/1.1"),
                            "{head}"
                        );
                        assert!(head.contains("content-type: application/json"), "{head}");
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the body ended early");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: Value =
                    serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
                served += 1;
                let status = if served <= failures { 503 } else { 200 };
                kept.lock().unwrap().push((status, body));
                let answer = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    if status == 200 {
                        "OK"
                    } else {
                        "Service Unavailable"
                    }
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        Hook { addr, bodies }
    }

    fn url(&self) -> String {
        format!("http://{}/alerts?token=abc", self.addr)
    }

    /// The bodies answered 200.
    fn delivered(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b.clone())
            .collect()
    }

    async fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&[Value]) -> bool) {
        let started = Instant::now();
        while !check(&self.delivered()) {
            assert!(
                started.elapsed() < limit,
                "no {what} within {limit:?}; received {:?}",
                self.bodies.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Lines of JSON a command alert appended to `path`.
fn command_alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_target_fires_the_lag_alert_and_its_resolution() {
    let env = Env::new(
        "metrics_lag",
        "CREATE TABLE ticks (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL);",
    );
    let pg = dts_testkit::postgres();
    let proxy = dts_testkit::FaultProxy::start(pg.host(), pg.port()).unwrap();
    let target = proxy.proxied_url(&env.pg_url());
    // The first attempt to post is refused (503): the alert is retried.
    let hook = Hook::start(1).await;
    let out = env.dir.join("lag-alerts.jsonl");
    let _ = std::fs::remove_file(&out);
    let task = write_task(
        &env,
        &source_with_password(),
        &target,
        "[\"schema\", \"full\", \"incremental\"]",
        &format!(
            "[metrics]\nlabels = {{ env = \"test\" }}\n\
             [[alerts]]\non = \"lag\"\nlag_seconds = 3\nfor_seconds = 1\nwebhook = \"{hook}\"\n\
             [[alerts]]\non = \"lag\"\nlag_seconds = 3\n\
             command = \"cat >> '{out}'; echo >> '{out}'; echo \\\"$DTS_ALERT $DTS_ALERT_STATUS\\\" >> '{out}.env'\"\n",
            hook = hook.url(),
            out = out.display()
        ),
    );
    let mut run = Run::start(&task, true);
    scrape_until(&mut run, "replication", Duration::from_secs(60), |s| {
        value_of(s, "dts_task_state", &[("state", "incremental")]) == Some(1.0)
    })
    .await;

    // The source takes a write every 100 ms throughout.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let db = env.db.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let my = dts_testkit::mariadb();
        let mut n = 0;
        while !*stop_rx.borrow() {
            my.exec_in(&db, "INSERT INTO ticks (at) VALUES (NOW(6))")
                .unwrap();
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        n
    });
    // Replication keeps up at first: no alert.
    let table = format!("{}.ticks", env.db);
    scrape_until(&mut run, "ticks applied", Duration::from_secs(30), |s| {
        value_of(
            s,
            "dts_replication_rows_applied_total",
            &[("table", &table), ("operation", "insert")],
        )
        .is_some_and(|v| v >= 5.0)
    })
    .await;
    assert!(
        hook.bodies.lock().unwrap().is_empty(),
        "no alert while caught up"
    );

    // The target stalls: nothing goes through the proxy, the lag grows past 3 s.
    proxy.stall();
    let stalled_at = Instant::now();
    let (lagging, _) = scrape_until(&mut run, "a growing lag", Duration::from_secs(30), |s| {
        value_of(s, "dts_replication_lag_seconds", &[]).is_some_and(|l| l > 4.0)
    })
    .await;
    assert!(value_of(&lagging, "dts_replication_lag_seconds", &[]).unwrap() > 4.0);
    hook.wait_for("the lag alert", Duration::from_secs(30), |b| {
        b.iter().any(|b| b["status"] == "firing")
    })
    .await;
    let fired_after = stalled_at.elapsed();
    let firing = hook.delivered()[0].clone();
    assert_eq!(firing["task"], "t", "{firing}");
    assert_eq!(firing["alert"], "lag", "{firing}");
    assert_eq!(firing["state"], "incremental", "{firing}");
    assert_eq!(firing["threshold_seconds"], 3.0, "{firing}");
    assert_eq!(firing["for_seconds"], 1, "{firing}");
    assert!(firing["lag_seconds"].as_f64().unwrap() > 3.0, "{firing}");
    assert_eq!(firing["labels"]["env"], "test", "{firing}");
    assert!(firing["time"].as_str().unwrap().ends_with('Z'), "{firing}");
    // The first post was refused and retried.
    let refused = hook
        .bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == 503)
        .count();
    assert_eq!(refused, 1);
    // The command alert ran with the payload on its input and the alert in its environment.
    let started = Instant::now();
    while command_alerts(&out).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no command alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_command = &command_alerts(&out)[0];
    assert_eq!(by_command["alert"], "lag");
    assert_eq!(by_command["status"], "firing");
    let env_lines = std::fs::read_to_string(format!("{}.env", out.display())).unwrap();
    assert_eq!(env_lines.lines().next(), Some("lag firing"));

    // The target comes back: replication catches up and the alert is resolved.
    proxy.resume();
    hook.wait_for("the resolution", Duration::from_secs(60), |b| {
        b.iter().any(|b| b["status"] == "resolved")
    })
    .await;
    let (caught_up, _) = scrape_until(
        &mut run,
        "the lag back down",
        Duration::from_secs(30),
        |s| value_of(s, "dts_replication_lag_seconds", &[]).is_some_and(|l| l < 3.0),
    )
    .await;
    assert_eq!(
        value_of(
            &caught_up,
            "dts_alerts_total",
            &[("alert", "lag"), ("status", "firing")]
        ),
        Some(2.0),
        "two lag alerts fired (webhook and command)"
    );
    stop_tx.send(true).unwrap();
    let writes = writer.await.unwrap();
    let (_, log) = run.stop();
    println!("lag alert fired {fired_after:?} after the stall began; {writes} source writes");
    for b in hook.delivered() {
        assert_no_secret("a webhook payload", &b.to_string());
    }
    assert!(
        !log.contains("token=abc"),
        "the webhook's token is not logged:\n{log}"
    );
    assert_no_secret("the run's log", &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_fires_the_failure_alert() {
    let env = Env::new(
        "metrics_fail",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
         INSERT INTO notes SELECT seq, CONCAT('note ', seq) FROM seq_1_to_500;
         UPDATE notes SET body = CONCAT('a', CHAR(0), 'b') WHERE id = 321;",
    );
    let hook = Hook::start(0).await;
    let out = env.dir.join("failed-alerts.jsonl");
    let _ = std::fs::remove_file(&out);
    let alerts = format!(
        "[[alerts]]\non = \"failed\"\nwebhook = \"{}\"\ncommand = \"cat >> '{1}'; echo >> '{1}'\"\n",
        hook.url(),
        out.display()
    );
    let source = source_with_password();

    // A value the target cannot hold, with `bad_rows = "stop"` (the default).
    let task = write_task(
        &env,
        &source,
        &env.pg_url(),
        "[\"schema\", \"full\"]",
        &format!("full.rows_per_chunk = 100\nfull.bad_rows = \"stop\"\n{alerts}"),
    );
    let (code, log) = Run::start(&task, false).wait(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{log}");
    // Delivered before the process exited.
    let delivered = hook.delivered();
    assert_eq!(delivered.len(), 1, "{delivered:?}\n{log}");
    let failed = &delivered[0];
    assert_eq!(failed["alert"], "failed", "{failed}");
    assert_eq!(failed["status"], "firing", "{failed}");
    assert_eq!(failed["task"], "t", "{failed}");
    assert_eq!(failed["error_kind"], "value", "{failed}");
    assert_eq!(failed["state"], "full", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("`{}.notes`.`body`", env.db)) && error.contains("id=321"),
        "{failed}"
    );
    assert_eq!(command_alerts(&out), vec![failed.clone()]);
    assert_no_secret("the failure alert", &failed.to_string());
    assert_no_secret("the run's log", &log);

    // A source refusing the password: the run fails in its precheck, and says so.
    let wrong = source.replace(&encoded(PASSWORD), &encoded("m3tr1cs/@?#wrong"));
    let task = write_task(
        &env,
        &wrong,
        &env.pg_url(),
        "[\"schema\", \"full\"]",
        &alerts,
    );
    let (code, log) = Run::start(&task, false).wait(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{log}");
    let delivered = hook.delivered();
    assert_eq!(delivered.len(), 2, "{delivered:?}\n{log}");
    let refused = &delivered[1];
    assert_eq!(refused["alert"], "failed", "{refused}");
    assert_eq!(refused["state"], "prechecking", "{refused}");
    assert!(!refused["error"].as_str().unwrap().is_empty(), "{refused}");
    assert_no_secret("the failure alert", &refused.to_string());
    assert_no_secret("the failure alert", &std::fs::read_to_string(&out).unwrap());
    assert_no_secret("the run's log", &log);

    // A run that succeeds sends no alert.
    let task = write_task(&env, &source, &env.pg_url(), "[\"schema\"]", &alerts);
    let (code, log) = Run::start(&task, false).wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        hook.delivered().len(),
        2,
        "no alert for a run that succeeded"
    );
}

#[test]
fn a_metrics_address_in_use_is_a_clear_error() {
    let env = Env::new("metrics_addr", "CREATE TABLE t (id INT PRIMARY KEY);");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let task = write_task(
        &env,
        &dts_testkit::mariadb().url(),
        &env.pg_url(),
        "[\"schema\"]",
        "",
    );
    let out = common::dts(&["run", "--config", &task, "--metrics-addr", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics scrapes on {addr}")),
        "{}",
        common::text(&out)
    );
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
            env.db
        )),
        "0",
        "nothing was run"
    );
}
