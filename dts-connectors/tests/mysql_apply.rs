//! The MySQL/MariaDB apply sink against a real server: coalesced keyed changes and their
//! replay, exactly-once after a connection killed mid-transaction, tables without a key
//! and duplicate rows, foreign key checks off (and the target's actions for a source that
//! does not log them), the binlog kept out on request (and refused without the
//! privilege), values the target cannot hold, truncation, DDL (exactly once after a kill
//! while it ran), schema changes inside a source transaction (split there, resumed exactly
//! after a kill), transactions in parts, and the compare-and-set position. Change events
//! are built by hand.
//!
//! Runs on the testkit's private MariaDB (or the server named by `DTS_TEST_MYSQL_URL`):
//! `cargo test -p dts-connectors --test mysql_apply`. The apply speed benchmark:
//! `cargo test --release -p dts-connectors --test mysql_apply -- --ignored --nocapture`.

#![cfg(feature = "mysql")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_cdc::{replicate, ApplySink, CdcOptions};
use dts_connectors::mysql::target::session_opts;
use dts_connectors::mysql::{MySqlApplySink, MySqlStateStore, MySqlTarget};
use dts_connectors::TargetBinlog;
use dts_core::{
    CascadeLogging, Catalog, Change, ChangeEvent, ChangeMapper, ChangeSource, CheckStatus, Column,
    ErrorKind, Key, Position, PrecheckReport, Result, RowImage, Schema, StateStore, Table,
    TableName, Value,
};
use dts_schema::{MySqlToMySqlChangeMapper, SchemaOptions};
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

fn binlog(offset: u64) -> Position {
    Position::Binlog {
        file: "mysql-bin.000001".into(),
        offset,
        gtid: None,
    }
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A fresh database holding `ddl`'s tables, with the task's position recorded at 4.
struct Target {
    db: String,
    task: String,
    url: String,
}

impl Target {
    async fn new(prefix: &str, ddl: &str) -> Self {
        let my = dts_testkit::mariadb();
        let db = my.create_unique_database(prefix).unwrap();
        if !ddl.is_empty() {
            my.exec_in(&db, ddl).unwrap();
        }
        let t = Self {
            task: db.clone(),
            db,
            url: my.url(),
        };
        let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
        assert!(store.start_position(&binlog(4)).await.unwrap());
        t
    }

    async fn sink(&self, idempotent_until: Option<Position>) -> MySqlApplySink {
        self.sink_with(idempotent_until, TargetBinlog::On, CascadeLogging::Logged)
            .await
            .unwrap()
    }

    async fn sink_with(
        &self,
        idempotent_until: Option<Position>,
        binlog: TargetBinlog,
        cascades: CascadeLogging,
    ) -> Result<MySqlApplySink> {
        let opts = session_opts(&self.url).await?;
        Ok(
            MySqlApplySink::connect(opts, &self.task, idempotent_until, binlog)
                .await?
                .with_cascade_logging(cascades),
        )
    }

    fn query(&self, sql: &str) -> String {
        dts_testkit::mariadb()
            .query_in(&self.db, sql)
            .unwrap()
            .trim()
            .to_string()
    }

    /// The rows of a table as tab-separated lines in `order`.
    fn rows(&self, table: &str, order: &str) -> String {
        self.query(&format!("SELECT * FROM `{table}` ORDER BY {order}"))
    }

    fn position(&self) -> String {
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT position FROM dts_meta.cdc_position WHERE task = '{}'",
                self.task
            ))
            .unwrap()
            .trim()
            .to_string()
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(self.db.clone(), name)
    }
}

/// Builds change events with increasing binlog offsets, naming tables of one database.
struct Log {
    db: String,
    offset: u64,
    events: Vec<ChangeEvent>,
    layouts: HashMap<String, Arc<Vec<String>>>,
}

impl Log {
    fn new(db: &str, offset: u64) -> Self {
        Self {
            db: db.into(),
            offset,
            events: Vec::new(),
            layouts: HashMap::new(),
        }
    }

    fn push(&mut self, change: Change) -> Position {
        self.offset += 100;
        let position = binlog(self.offset);
        self.events.push(ChangeEvent {
            change,
            position: position.clone(),
            timestamp: 1_700_000_000,
        });
        position
    }

    fn layout(&mut self, table: &str, columns: &[&str]) {
        self.layouts.insert(
            table.into(),
            Arc::new(columns.iter().map(|c| c.to_string()).collect()),
        );
    }

    fn image(&self, table: &str, values: Vec<Value>) -> RowImage {
        RowImage {
            columns: self.layouts[table].clone(),
            values,
        }
    }

    fn name(&self, table: &str) -> TableName {
        TableName::new(self.db.clone(), table)
    }

    fn begin(&mut self) {
        self.push(Change::Begin);
    }

    fn commit(&mut self) -> Position {
        self.push(Change::Commit)
    }

    fn insert(&mut self, table: &str, values: Vec<Value>) {
        let row = self.image(table, values);
        let table = self.name(table);
        self.push(Change::Insert { table, row });
    }

    fn update(&mut self, table: &str, before: Vec<Value>, after: Vec<Value>) {
        let (before, after) = (self.image(table, before), self.image(table, after));
        let table = self.name(table);
        self.push(Change::Update {
            table,
            before,
            after,
        });
    }

    fn delete(&mut self, table: &str, values: Vec<Value>) {
        let row = self.image(table, values);
        let table = self.name(table);
        self.push(Change::Delete { table, row });
    }

    fn truncate(&mut self, table: &str) {
        let table = self.name(table);
        self.push(Change::Truncate { table });
    }

    fn ddl(&mut self, sql: &str) -> Position {
        let schema = Some(self.db.clone());
        self.push(Change::Ddl {
            schema,
            sql: sql.into(),
            sql_mode: dts_core::SqlMode::default(),
        })
    }

    /// The events so far, and the position of the last.
    fn take(&mut self) -> (Vec<ChangeEvent>, Position) {
        let events = std::mem::take(&mut self.events);
        let position = events.last().unwrap().position.clone();
        (events, position)
    }
}

#[tokio::test]
async fn keyed_changes_coalesce_and_replay_to_the_same_table() {
    let t = Target::new(
        "myapply_keyed",
        "CREATE TABLE orders (shop_id INT NOT NULL, order_no INT NOT NULL, \
         note VARCHAR(20), qty INT, PRIMARY KEY (shop_id, order_no), UNIQUE KEY (note))",
    )
    .await;
    let mut sink = t.sink(None).await;
    assert_eq!(sink.applied_position().await.unwrap(), Some(binlog(4)));

    let mut log = Log::new(&t.db, 4);
    log.layout("orders", &["shop_id", "order_no", "note", "qty"]);
    let row = |s, o, n: &str, q| vec![int(s), int(o), text(n), int(q)];
    log.begin();
    log.insert("orders", row(1, 1, "a", 1));
    log.insert("orders", row(1, 2, "b", 2));
    log.insert("orders", row(2, 1, "c", 3));
    log.insert("orders", row(3, 1, "gone", 4));
    log.commit();
    let (first, p1) = log.take();
    let stats = sink.apply(&first, &p1).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (1, 4));

    log.begin();
    log.update("orders", row(1, 1, "a", 1), row(1, 1, "a", 10));
    log.delete("orders", row(1, 2, "b", 2));
    // A key change: (2,1) moves to (2,5).
    log.update("orders", row(2, 1, "c", 3), row(2, 5, "moved", 3));
    log.insert("orders", row(1, 2, "again", 7));
    log.commit();
    log.begin();
    // A key moves away and another row takes its old key; unique values swap.
    log.update("orders", row(1, 1, "a", 10), row(1, 3, "a2", 10));
    log.update("orders", row(2, 5, "moved", 3), row(1, 1, "a", 3));
    log.update("orders", row(1, 2, "again", 7), row(1, 2, "moved", 7));
    log.delete("orders", row(3, 1, "gone", 4));
    log.commit();
    let (second, p2) = log.take();
    let stats = sink.apply(&second, &p2).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (2, 8));
    let want = "1\t1\ta\t3\n1\t2\tmoved\t7\n1\t3\ta2\t10";
    assert_eq!(t.rows("orders", "1, 2"), want);
    assert_eq!(sink.applied_position().await.unwrap(), Some(p2.clone()));

    // Transactions at or before the recorded position are skipped.
    let stats = sink.apply(&first, &p1).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (0, 0));
    assert_eq!(t.rows("orders", "1, 2"), want);

    // Replayed for real (the position set back, as after an inexact snapshot), both batches
    // give the same table.
    dts_testkit::mariadb()
        .exec(&format!(
            "UPDATE dts_meta.cdc_position SET position = '{}' WHERE task = '{}'",
            serde_json::to_string(&binlog(4)).unwrap(),
            t.task
        ))
        .unwrap();
    let mut replay = t.sink(Some(p2.clone())).await;
    replay.apply(&first, &p1).await.unwrap();
    replay.apply(&second, &p2).await.unwrap();
    assert_eq!(t.rows("orders", "1, 2"), want);
    assert_eq!(replay.applied_position().await.unwrap(), Some(p2));

    // Outside the window, a key the target holds against the source's history is a
    // conflict naming the key, and nothing of the batch stays.
    log.begin();
    log.insert("orders", row(9, 9, "new", 1));
    log.insert("orders", row(1, 1, "dup", 1));
    log.commit();
    let (dup, pd) = log.take();
    let e = replay.apply(&dup, &pd).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.report());
    assert!(
        e.message().contains(&format!("`{}.orders`", t.db))
            && e.message().contains("(shop_id, order_no) = (1,1)"),
        "{}",
        e.report()
    );
    assert_eq!(t.rows("orders", "1, 2"), want);
}

/// Random inserts, updates, key changes and deletes against a model of the table, in
/// batches large enough to be written out several times mid-batch, then a replay.
#[tokio::test]
async fn many_keyed_changes_match_a_model_and_replay() {
    let t = Target::new(
        "myapply_many",
        "CREATE TABLE items (a INT NOT NULL, b VARCHAR(8) NOT NULL, v BIGINT, \
         PRIMARY KEY (a, b))",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("items", &["a", "b", "v"]);
    let mut model: std::collections::BTreeMap<(i64, String), i64> = Default::default();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut batches = Vec::new();
    for _ in 0..6 {
        for _ in 0..40 {
            log.begin();
            for _ in 0..600 {
                let a = i64::try_from(next() % 300).unwrap();
                let b = format!("k{}", next() % 7);
                let key = (a, b.clone());
                match (model.get(&key).copied(), next() % 4) {
                    (None, _) => {
                        let v = i64::try_from(next() % 1000).unwrap();
                        log.insert("items", vec![int(a), text(&b), int(v)]);
                        model.insert(key, v);
                    }
                    (Some(v), 0) => {
                        log.delete("items", vec![int(a), text(&b), int(v)]);
                        model.remove(&key);
                    }
                    (Some(v), 1) => {
                        let to = (a + 1000, b.clone());
                        if let std::collections::btree_map::Entry::Vacant(e) =
                            model.entry(to.clone())
                        {
                            log.update(
                                "items",
                                vec![int(a), text(&b), int(v)],
                                vec![int(to.0), text(&b), int(v)],
                            );
                            e.insert(v);
                            model.remove(&key);
                        }
                    }
                    (Some(v), _) => {
                        log.update(
                            "items",
                            vec![int(a), text(&b), int(v)],
                            vec![int(a), text(&b), int(v + 1)],
                        );
                        model.insert(key, v + 1);
                    }
                }
            }
            log.commit();
        }
        let (events, position) = log.take();
        sink.apply(&events, &position).await.unwrap();
        batches.push((events, position));
    }
    let want: Vec<String> = model
        .iter()
        .map(|((a, b), v)| format!("{a}\t{b}\t{v}"))
        .collect();
    let want = want.join("\n");
    assert_eq!(t.rows("items", "a, b"), want);
    assert_eq!(
        t.query("SELECT COUNT(*) FROM items"),
        model.len().to_string()
    );

    // Replayed from the start in the idempotence window: the same table.
    dts_testkit::mariadb()
        .exec(&format!(
            "UPDATE dts_meta.cdc_position SET position = '{}' WHERE task = '{}'",
            serde_json::to_string(&binlog(4)).unwrap(),
            t.task
        ))
        .unwrap();
    let last = batches.last().unwrap().1.clone();
    let mut replay = t.sink(Some(last)).await;
    for (events, position) in &batches {
        replay.apply(events, position).await.unwrap();
    }
    assert_eq!(t.rows("items", "a, b"), want);
}

/// The session running a sink's transaction is killed mid-transaction (a transaction in
/// parts left open): nothing of it stays, the position is the last committed one, and
/// applying again from there gives every row once.
#[tokio::test]
async fn a_connection_killed_mid_transaction_leaves_nothing_and_applies_again_exactly_once() {
    let t = Target::new(
        "myapply_kill",
        "CREATE TABLE kv (k INT PRIMARY KEY, v VARCHAR(20)); CREATE TABLE bag (v INT)",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k", "v"]);
    log.layout("bag", &["v"]);
    log.begin();
    for k in 0..100 {
        log.insert("kv", vec![int(k), text("first")]);
        log.insert("bag", vec![int(k % 3)]);
    }
    log.commit();
    let (a, pa) = log.take();
    sink.apply(&a, &pa).await.unwrap();

    // A large transaction: its first part is applied and left open, then the session dies.
    log.begin();
    for k in 100..20_100 {
        log.insert("kv", vec![int(k), text("second")]);
        log.insert("bag", vec![int(k % 3)]);
    }
    for k in 0..50 {
        log.update(
            "kv",
            vec![int(k), text("first")],
            vec![int(k), text("changed")],
        );
        log.delete("bag", vec![int(k % 3)]);
    }
    log.commit();
    let (b, pb) = log.take();
    let split = b.len() / 2;
    sink.apply_part(&b[..split]).await.unwrap();
    let id: u64 = {
        let conn = sink.conn();
        conn.query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap()
    };
    dts_testkit::mariadb()
        .exec(&format!("KILL CONNECTION {id}"))
        .unwrap();
    let e = sink.apply(&b[split..], &pb).await.unwrap_err();
    assert!(e.is_retryable(), "{}", e.report());
    drop(sink);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "100");
    assert_eq!(t.query("SELECT COUNT(*) FROM bag"), "100");

    // A new session resumes at the recorded position and applies the transaction whole;
    // the batch before it, delivered again, is skipped.
    let mut again = t.sink(None).await;
    assert_eq!(again.applied_position().await.unwrap(), Some(pa.clone()));
    let mut both = a.clone();
    both.extend(b.iter().cloned());
    let stats = again.apply(&both, &pb).await.unwrap();
    assert_eq!(stats.transactions, 1);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "20100");
    assert_eq!(t.query("SELECT COUNT(*) FROM kv WHERE v = 'changed'"), "50");
    assert_eq!(
        t.query("SELECT COUNT(*) FROM bag"),
        (100 + 20_000 - 50).to_string()
    );
    assert_eq!(t.query("SELECT COUNT(DISTINCT k) = COUNT(*) FROM kv"), "1");
    assert_eq!(again.applied_position().await.unwrap(), Some(pb));
}

#[tokio::test]
async fn keyless_tables_change_one_of_several_identical_rows() {
    let t = Target::new(
        "myapply_keyless",
        "CREATE TABLE bag (k VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, \
         n INT, f FLOAT, j LONGTEXT)",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("bag", &["k", "n", "f", "j"]);
    let row = |k: &str, n| vec![text(k), int(n), Value::Float(0.1), Value::Null];
    log.begin();
    log.insert("bag", row("dup", 1));
    log.insert("bag", row("dup", 1));
    log.insert("bag", row("dup", 1));
    log.insert("bag", row("a", 2));
    log.insert("bag", row("A", 2));
    log.insert(
        "bag",
        vec![Value::Null, Value::Null, Value::Null, Value::Null],
    );
    log.commit();
    log.begin();
    // One of three identical rows goes, another changes.
    log.delete("bag", row("dup", 1));
    log.update("bag", row("dup", 1), row("dup", 5));
    // Rows that differ only in case are told apart.
    log.update("bag", row("A", 2), row("B", 2));
    log.delete(
        "bag",
        vec![Value::Null, Value::Null, Value::Null, Value::Null],
    );
    log.insert("bag", row("late", 9));
    log.commit();
    let (events, p) = log.take();
    let stats = sink.apply(&events, &p).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (2, 11));
    assert_eq!(
        t.query("SELECT k, n, f FROM bag ORDER BY k, n"),
        "a\t2\t0.1\nB\t2\t0.1\ndup\t1\t0.1\ndup\t5\t0.1\nlate\t9\t0.1"
    );

    // A delete that finds no row: the target has diverged; nothing of the batch stays.
    log.begin();
    log.insert("bag", row("x", 1));
    log.delete("bag", row("nowhere", 1));
    log.commit();
    let (events, p2) = log.take();
    let e = sink.apply(&events, &p2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.report());
    assert!(e.message().contains("diverged"), "{}", e.report());
    assert_eq!(t.query("SELECT COUNT(*) FROM bag"), "5");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p));

    // Before the idempotence window's end such changes cannot be replayed exactly.
    let mut windowed = t.sink(Some(binlog(1_000_000))).await;
    log.begin();
    log.delete("bag", row("late", 9));
    log.commit();
    let (events, p3) = log.take();
    let e = windowed.apply(&events, &p3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.report());
}

/// Foreign key checks are off: rows arrive in the source's order whatever the keys, and a
/// source that logs the rows its actions change (PostgreSQL) gets nothing cascaded twice.
/// A source that does not (MariaDB) has the target perform the actions.
#[tokio::test]
async fn foreign_key_checks_are_off_and_actions_follow_the_source_logging() {
    let t = Target::new(
        "myapply_fk",
        "CREATE TABLE parent (id INT PRIMARY KEY, code VARCHAR(5)); \
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, owner INT, \
           FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE, \
           FOREIGN KEY (owner) REFERENCES parent (id) ON DELETE SET NULL ON UPDATE CASCADE)",
    )
    .await;
    let mut log = Log::new(&t.db, 4);
    log.layout("parent", &["id", "code"]);
    log.layout("child", &["id", "parent_id", "owner"]);
    // A child before its parent: fine with checks off.
    log.begin();
    log.insert("child", vec![int(1), int(1), int(2)]);
    log.insert("child", vec![int(2), int(2), int(1)]);
    log.insert("parent", vec![int(1), text("p1")]);
    log.insert("parent", vec![int(2), text("p2")]);
    log.commit();
    // The source cascaded the delete itself and logged the child's delete.
    log.begin();
    log.delete("parent", vec![int(1), text("p1")]);
    log.commit();
    let (events, p) = log.take();
    let mut logged = t
        .sink_with(None, TargetBinlog::On, CascadeLogging::Logged)
        .await
        .unwrap();
    logged.apply(&events, &p).await.unwrap();
    // Not cascaded on the target: the source's own changes of the children would follow.
    assert_eq!(t.rows("child", "id"), "1\t1\t2\n2\t2\t1");
    drop(logged);

    // A source that does not log them: the target deletes and nulls as InnoDB did.
    let mut unlogged = t
        .sink_with(None, TargetBinlog::On, CascadeLogging::Unlogged)
        .await
        .unwrap();
    log.begin();
    log.insert("parent", vec![int(3), text("p3")]);
    log.update(
        "parent",
        vec![int(2), text("p2")],
        vec![int(20), text("p2")],
    );
    log.commit();
    log.begin();
    log.delete("parent", vec![int(20), text("p2")]);
    log.insert("child", vec![int(3), int(3), int(3)]);
    log.commit();
    let (events, p) = log.take();
    unlogged.apply(&events, &p).await.unwrap();
    // Child 2 followed its parent's key change to 20, then went with it; child 1's owner
    // (2, then 20) was set to NULL.
    assert_eq!(t.rows("child", "id"), "1\t1\tNULL\n3\t3\t3");
    assert_eq!(t.rows("parent", "id"), "3\tp3");
    // The session's checks are off again afterwards.
    log.begin();
    log.insert("child", vec![int(4), int(99), Value::Null]);
    log.commit();
    let (events, p) = log.take();
    unlogged.apply(&events, &p).await.unwrap();
    assert_eq!(t.query("SELECT COUNT(*) FROM child"), "3");
}

/// The binlog file and offset the server writes next.
fn binlog_end() -> (String, u64) {
    let status = dts_testkit::mariadb().query("SHOW MASTER STATUS").unwrap();
    let mut fields = status.split('\t');
    let file = fields.next().unwrap().trim().to_string();
    let offset = fields.next().unwrap().trim().parse().unwrap();
    (file, offset)
}

/// Whether the binlog since `from` holds a row event of table `db.table`.
fn logged_since(from: &(String, u64), db: &str, table: &str) -> bool {
    let events = dts_testkit::mariadb()
        .query(&format!(
            "SHOW BINLOG EVENTS IN '{}' FROM {}",
            from.0, from.1
        ))
        .unwrap();
    events
        .lines()
        .any(|l| l.contains("Table_map") && l.contains(&format!("({db}.{table})")))
}

#[tokio::test]
async fn the_target_binlog_gets_the_changes_unless_asked_and_permitted() {
    let t = Target::new("myapply_binlog", "CREATE TABLE kv (k INT PRIMARY KEY)").await;
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k"]);

    let from = binlog_end();
    let mut on = t.sink(None).await;
    log.begin();
    log.insert("kv", vec![int(1)]);
    log.commit();
    let (events, p) = log.take();
    on.apply(&events, &p).await.unwrap();
    assert!(logged_since(&from, &t.db, "kv"));
    drop(on);

    let from = binlog_end();
    let mut off = t
        .sink_with(None, TargetBinlog::Off, CascadeLogging::Logged)
        .await
        .unwrap();
    log.begin();
    log.insert("kv", vec![int(2)]);
    log.commit();
    let (events, p) = log.take();
    off.apply(&events, &p).await.unwrap();
    assert!(!logged_since(&from, &t.db, "kv"));
    assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "2");

    // An account without BINLOG ADMIN: the precheck fails naming the fix, and so does the
    // sink.
    let my = dts_testkit::mariadb();
    let user = format!("u{}", &t.db[t.db.len() - 8..]);
    my.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
         GRANT ALL ON `{}`.* TO '{user}'@'%'; GRANT ALL ON dts_meta.* TO '{user}'@'%'",
        t.db
    ))
    .unwrap();
    let weak_url = format!("mysql://{user}:pw@{}:{}", my.host(), my.port());
    let target = MySqlTarget::connect(&weak_url).await.unwrap();
    let mut report = PrecheckReport::default();
    target
        .precheck_apply(&mut report, TargetBinlog::Off)
        .await
        .unwrap();
    let check = report
        .items
        .iter()
        .find(|i| i.code == "target.binlog")
        .unwrap();
    assert_eq!(check.status, CheckStatus::Fail, "{check:?}");
    assert!(check.fix.contains("BINLOG ADMIN"), "{check:?}");
    let mut report = PrecheckReport::default();
    target
        .precheck_apply(&mut report, TargetBinlog::On)
        .await
        .unwrap();
    assert_eq!(report.items[0].status, CheckStatus::Pass);
    let opts = session_opts(&weak_url).await.unwrap();
    let e = MySqlApplySink::connect(opts, &t.task, None, TargetBinlog::Off)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Privilege, "{}", e.report());
    assert!(
        e.message().contains("incremental.target_binlog = true")
            && e.message().contains("BINLOG ADMIN"),
        "{}",
        e.report()
    );
    my.exec(&format!("DROP USER '{user}'@'%'")).unwrap();
}

#[tokio::test]
async fn a_value_the_target_cannot_hold_names_table_column_and_key() {
    let t = Target::new(
        "myapply_values",
        "CREATE TABLE t (id INT PRIMARY KEY, small TINYINT, s VARCHAR(3), d DOUBLE); \
         CREATE TABLE nokey (small TINYINT)",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("t", &["id", "small", "s", "d"]);
    log.layout("nokey", &["small"]);
    log.begin();
    log.insert("t", vec![int(1), int(1), text("ok"), Value::Double(1.5)]);
    log.commit();
    let (events, p1) = log.take();
    sink.apply(&events, &p1).await.unwrap();

    // The third row of a multi-row insert is out of range.
    log.begin();
    for i in 2..=5 {
        let small = if i == 4 { 1000 } else { i };
        log.insert("t", vec![int(i), int(small), text("ok"), Value::Null]);
    }
    log.commit();
    let (events, p2) = log.take();
    let e = sink.apply(&events, &p2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{}", e.report());
    assert!(
        e.message().starts_with(&format!(
            "the target cannot hold the value of column `small` of `{}.t` at key (id) = 4",
            t.db
        )),
        "{}",
        e.report()
    );
    // A string too long, an update.
    log.begin();
    log.update(
        "t",
        vec![int(1), int(1), text("ok"), Value::Double(1.5)],
        vec![int(1), int(1), text("too long"), Value::Double(1.5)],
    );
    log.commit();
    let (events, p3) = log.take();
    let e = sink.apply(&events, &p3).await.unwrap_err();
    assert!(
        e.message().contains("column `s`") && e.message().contains("at key (id) = 1"),
        "{}",
        e.report()
    );
    // A NaN: no MySQL column holds it.
    log.begin();
    log.insert(
        "t",
        vec![int(7), int(1), text("x"), Value::Double(f64::NAN)],
    );
    log.commit();
    let (events, p4) = log.take();
    let e = sink.apply(&events, &p4).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{}", e.report());
    assert!(
        e.message().contains("column `d`") && e.message().contains("(id=7)"),
        "{}",
        e.report()
    );
    // A table without a key names the row.
    log.begin();
    log.insert("nokey", vec![int(1)]);
    log.insert("nokey", vec![int(300)]);
    log.commit();
    let (events, p5) = log.take();
    let e = sink.apply(&events, &p5).await.unwrap_err();
    assert!(
        e.message().contains("column `small`") && e.message().contains("(300)"),
        "{}",
        e.report()
    );
    // Nothing of the failed batches stays.
    assert_eq!(t.rows("t", "id"), "1\t1\tok\t1.5");
    assert_eq!(t.query("SELECT COUNT(*) FROM nokey"), "0");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p1));
}

#[tokio::test]
async fn truncate_applies_in_order() {
    let t = Target::new(
        "myapply_truncate",
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT); CREATE TABLE bag (v INT)",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k", "v"]);
    log.layout("bag", &["v"]);
    log.begin();
    log.insert("kv", vec![int(1), int(1)]);
    log.insert("bag", vec![int(1)]);
    log.commit();
    log.begin();
    log.truncate("kv");
    log.truncate("bag");
    log.commit();
    log.begin();
    log.insert("kv", vec![int(1), int(2)]);
    log.insert("bag", vec![int(2)]);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    assert_eq!(t.rows("kv", "k"), "1\t2");
    assert_eq!(t.rows("bag", "v"), "2");
}

/// A mapper over the target database's tables (source and target are the same database
/// here: the renames are none).
fn mapper(db: &str, tables: Vec<Table>) -> MySqlToMySqlChangeMapper {
    let db = db.to_string();
    let catalog = Catalog {
        schemas: vec![Schema {
            name: db.clone(),
            tables,
        }],
        types: Vec::new(),
        omitted_indexes: Vec::new(),
    };
    MySqlToMySqlChangeMapper::new(
        catalog,
        SchemaOptions::default(),
        Arc::new(move |t: &TableName| t.schema == db),
    )
}

fn kv_table(db: &str) -> Table {
    let column = |name: &str, ty: &str, ordinal| Column {
        ordinal,
        nullable: name != "k",
        ..Column::new(name, ty)
    };
    Table {
        name: TableName::new(db, "kv"),
        columns: vec![column("k", "int(11)", 1), column("v", "int(11)", 2)],
        primary_key: Some(Key {
            name: None,
            columns: vec!["k".into()],
        }),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

fn mapped(m: &mut MySqlToMySqlChangeMapper, events: &[ChangeEvent]) -> Vec<ChangeEvent> {
    events
        .iter()
        .filter_map(|e| m.map(e.clone()).unwrap())
        .collect()
}

/// A schema change runs once, splitting the target transaction; its record says what was
/// done when a run is killed while the statement runs, or before it started.
#[tokio::test]
async fn ddl_applies_once_even_when_a_run_is_killed_around_it() {
    let t = Target::new(
        "myapply_ddl",
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT); \
         INSERT INTO kv SELECT seq, seq FROM seq_1000_to_400000",
    )
    .await;
    let mut m = mapper(&t.db, vec![kv_table(&t.db)]);
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k", "v"]);
    log.begin();
    log.insert("kv", vec![int(1), int(1)]);
    log.commit();
    // A table rebuild that takes a while.
    log.ddl("ALTER TABLE kv ADD COLUMN extra INT DEFAULT 7, ALGORITHM=COPY");
    log.layout("kv", &["k", "v", "extra"]);
    log.begin();
    log.insert("kv", vec![int(2), int(2), int(8)]);
    log.commit();
    let (events, p) = log.take();
    let events = mapped(&mut m, &events);

    // The run is killed while the statement runs (the server goes on with it).
    let mut sink = t.sink(None).await;
    let cut = tokio::time::timeout(Duration::from_millis(300), sink.apply(&events, &p)).await;
    assert!(cut.is_err(), "the statement ended too soon to be cut");
    drop(sink);
    // What came before it is committed, with the record of the statement.
    assert_eq!(t.query("SELECT v FROM kv WHERE k = 1"), "1");
    assert_eq!(
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT COUNT(*) FROM dts_meta.cdc_ddl WHERE task = '{}'",
                t.task
            ))
            .unwrap()
            .trim(),
        "1"
    );
    let mut again = t.sink(None).await;
    let applied = again.applied_position().await.unwrap().unwrap();
    assert_eq!(applied, events[2].position);
    // Delivered again from the recorded position: the statement is found applied.
    let stats = again.apply(&events[3..], &p).await.unwrap();
    assert_eq!(stats.transactions, 2);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv WHERE extra = 7"), "399002");
    assert_eq!(t.rows("kv", "k LIMIT 2"), "1\t1\t7\n2\t2\t8");
    assert_eq!(again.applied_position().await.unwrap(), Some(p.clone()));
    assert_eq!(
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT COUNT(*) FROM dts_meta.cdc_ddl WHERE task = '{}'",
                t.task
            ))
            .unwrap()
            .trim(),
        "0"
    );
    // The schema after it is recorded with its position.
    let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
    let schema = store.tracked_schema().await.unwrap().unwrap();
    let kv = schema.table(&t.table("kv")).unwrap();
    assert_eq!(kv.columns.len(), 3);

    // Killed after recording the statement and before running it: it runs.
    log.ddl("ALTER TABLE kv ADD COLUMN more INT");
    log.layout("kv", &["k", "v", "extra", "more"]);
    log.begin();
    log.insert("kv", vec![int(3), int(3), int(3), int(3)]);
    log.commit();
    let (events, p2) = log.take();
    let events = mapped(&mut m, &events);
    let definition = t.query("SHOW CREATE TABLE kv");
    let definition = definition.split_once('\t').unwrap().1.replace("\\n", "\n");
    let definitions = serde_json::json!({ format!("{}.kv", t.db): definition }).to_string();
    dts_testkit::mariadb()
        .exec(&format!(
            "INSERT INTO dts_meta.cdc_ddl VALUES ('{}', '{}', 1, 0, '{}', UTC_TIMESTAMP(6), NULL)",
            t.task,
            serde_json::to_string(&events[0].position).unwrap(),
            definitions.replace('\\', "\\\\").replace('\'', "''")
        ))
        .unwrap();
    let stats = again.apply(&events, &p2).await.unwrap();
    assert_eq!(stats.transactions, 2);
    assert_eq!(
        t.rows("kv", "k LIMIT 3"),
        "1\t1\t7\tNULL\n2\t2\t8\tNULL\n3\t3\t3\t3"
    );
}

fn lsn(n: u64) -> Position {
    Position::Lsn(dts_core::Lsn(n))
}

/// A schema change inside a source transaction (as PostgreSQL's relation descriptions
/// make them), at `position` with the transaction's other events.
fn within(statement: &str, table: TableName, position: Position) -> ChangeEvent {
    ChangeEvent {
        change: Change::Schema(Box::new(dts_core::SchemaChange {
            source_sql: "(relation description)".into(),
            statements: vec![statement.into()],
            catalog: None,
            tables: vec![table],
            created: Vec::new(),
            within_transaction: true,
        })),
        position,
        timestamp: 1_700_000_000,
    }
}

/// One source transaction as PostgreSQL's are delivered: every event at `commit + 1` but
/// the commit, at `end`.
fn pg_transaction(t: &Target, commit: u64, end: u64, changes: Vec<Change>) -> Vec<ChangeEvent> {
    let event = |change, position| ChangeEvent {
        change,
        position,
        timestamp: 1_700_000_000,
    };
    let mut events = vec![event(Change::Begin, lsn(commit + 1))];
    for c in changes {
        let c = match c {
            Change::Schema(s) => within(&s.statements[0], t.table("kv"), lsn(commit + 1)).change,
            other => other,
        };
        events.push(event(c, lsn(commit + 1)));
    }
    events.push(event(Change::Commit, lsn(end)));
    events
}

fn kv_insert(t: &Target, columns: &[&str], values: Vec<Value>) -> Change {
    Change::Insert {
        table: t.table("kv"),
        row: RowImage {
            columns: Arc::new(columns.iter().map(|c| c.to_string()).collect()),
            values,
        },
    }
}

fn ddl_records(t: &Target) -> String {
    dts_testkit::mariadb()
        .query(&format!(
            "SELECT COUNT(*) FROM dts_meta.cdc_ddl WHERE task = '{}'",
            t.task
        ))
        .unwrap()
        .trim()
        .to_string()
}

/// A schema change inside a source transaction splits the target transaction at it: the
/// rows before it commit with a record of it, the statement runs, and the rest commits
/// with the transaction's end. A run killed while the statement runs, or after it and
/// before the transaction's end, resumes at the change: nothing twice, nothing lost.
#[tokio::test]
async fn a_schema_change_inside_a_transaction_splits_it_and_resumes_exactly() {
    let t = Target::new(
        "myapply_within",
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT); \
         INSERT INTO kv SELECT seq, seq FROM seq_1000_to_400000",
    )
    .await;
    let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
    store.drop_task().await.unwrap();
    let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
    assert!(store.start_position(&lsn(10)).await.unwrap());
    let schema = |sql: &str| within(sql, t.table("kv"), lsn(0)).change;
    let events = pg_transaction(
        &t,
        100,
        200,
        vec![
            kv_insert(&t, &["k", "v"], vec![int(1), int(1)]),
            schema(&format!(
                "ALTER TABLE `{}`.kv ADD COLUMN extra INT DEFAULT 7, ALGORITHM=COPY",
                t.db
            )),
            kv_insert(&t, &["k", "v", "extra"], vec![int(2), int(2), int(8)]),
        ],
    );
    // Killed while the statement runs.
    let mut sink = t.sink(None).await;
    let cut =
        tokio::time::timeout(Duration::from_millis(300), sink.apply(&events, &lsn(200))).await;
    assert!(
        cut.is_err(),
        "the statement ended too soon to be cut: {cut:?}"
    );
    drop(sink);
    assert_eq!(t.query("SELECT v FROM kv WHERE k = 1"), "1");
    assert_eq!(ddl_records(&t), "1");
    // Delivered again, whole: the row before it is not written twice (it would collide).
    let mut again = t.sink(None).await;
    assert_eq!(again.applied_position().await.unwrap(), Some(lsn(10)));
    let stats = again.apply(&events, &lsn(200)).await.unwrap();
    assert_eq!(stats.transactions, 1);
    assert_eq!(t.rows("kv", "k LIMIT 2"), "1\t1\t7\n2\t2\t8");
    assert_eq!(t.query("SELECT COUNT(*) FROM kv WHERE extra = 7"), "399002");
    assert_eq!(ddl_records(&t), "0");
    assert_eq!(again.applied_position().await.unwrap(), Some(lsn(200)));

    // Killed after the statement, before the transaction's end (delivered in parts).
    let events = pg_transaction(
        &t,
        300,
        400,
        vec![
            kv_insert(&t, &["k", "v", "extra"], vec![int(3), int(3), int(3)]),
            schema(&format!("ALTER TABLE `{}`.kv DROP COLUMN extra", t.db)),
            kv_insert(&t, &["k", "v"], vec![int(4), int(4)]),
            kv_insert(&t, &["k", "v"], vec![int(5), int(5)]),
        ],
    );
    again.apply_part(&events[..4]).await.unwrap();
    drop(again);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv WHERE k IN (3, 4, 5)"), "1");
    assert_eq!(ddl_records(&t), "1");
    let mut third = t.sink(None).await;
    third.apply_part(&events[..3]).await.unwrap();
    let stats = third.apply(&events[3..], &lsn(400)).await.unwrap();
    assert_eq!(stats.transactions, 1);
    assert_eq!(t.rows("kv", "k LIMIT 5"), "1\t1\n2\t2\n3\t3\n4\t4\n5\t5");
    assert_eq!(ddl_records(&t), "0");
    // Read again after its end: skipped.
    let stats = third.apply(&events, &lsn(400)).await.unwrap();
    assert_eq!(stats.transactions, 0);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv WHERE k < 1000"), "5");
}

/// A schema change inside a transaction that values the target holds do not fit stops
/// naming the table and the column; the rows before it stay committed with its record,
/// and the change is tried again (and refused again) by the next run.
#[tokio::test]
async fn a_change_the_values_do_not_fit_names_table_and_column() {
    let t = Target::new(
        "myapply_within_value",
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1000, 1000)",
    )
    .await;
    let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
    store.drop_task().await.unwrap();
    let store = MySqlStateStore::connect(&t.url, &t.task).await.unwrap();
    assert!(store.start_position(&lsn(10)).await.unwrap());
    let modify = format!("ALTER TABLE `{}`.kv MODIFY COLUMN v TINYINT", t.db);
    let events = pg_transaction(
        &t,
        100,
        200,
        vec![
            kv_insert(&t, &["k", "v"], vec![int(1), int(1)]),
            within(&modify, t.table("kv"), lsn(0)).change,
            kv_insert(&t, &["k", "v"], vec![int(2), int(2)]),
        ],
    );
    for _ in 0..2 {
        let mut sink = t.sink(None).await;
        let err = sink.apply(&events, &lsn(200)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Value, "{err}");
        let said = err.to_string();
        assert!(said.contains("column `v`"), "{said}");
        assert!(said.contains(&format!("`{}.kv`", t.db)), "{said}");
        assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "2");
        assert_eq!(ddl_records(&t), "1");
    }
}

/// A transaction in parts commits once, with the rest in the closing apply, and is skipped
/// when read again.
#[tokio::test]
async fn a_transaction_in_parts_commits_once_and_is_skipped_when_read_again() {
    let t = Target::new(
        "myapply_parts",
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT)",
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k", "v"]);
    log.begin();
    for k in 0..25_000 {
        log.insert("kv", vec![int(k), int(k)]);
    }
    for k in 0..10 {
        log.update("kv", vec![int(k), int(k)], vec![int(k), int(-k)]);
    }
    log.commit();
    log.begin();
    log.insert("kv", vec![int(-1), int(0)]);
    log.commit();
    let (events, p) = log.take();
    let (a, rest) = events.split_at(10_000);
    let (b, rest) = rest.split_at(10_000);
    assert_eq!(sink.apply_part(a).await.unwrap().rows, 9_999);
    assert_eq!(sink.apply_part(b).await.unwrap().rows, 10_000);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "0");
    let stats = sink.apply(rest, &p).await.unwrap();
    assert_eq!(stats.transactions, 2);
    assert_eq!(t.query("SELECT COUNT(*), SUM(v) FROM kv"), {
        let sum: i64 = (0..25_000i64).sum::<i64>() - 2 * (0..10i64).sum::<i64>();
        format!("25001\t{sum}")
    });
    // Read again: the parts and the rest are skipped.
    assert_eq!(sink.apply_part(a).await.unwrap().rows, 0);
    let stats = sink.apply(rest, &p).await.unwrap();
    assert_eq!(stats.transactions, 0);
    assert_eq!(t.query("SELECT COUNT(*) FROM kv"), "25001");
}

#[tokio::test]
async fn a_second_writer_of_the_task_cannot_move_its_position() {
    let t = Target::new("myapply_cas", "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)").await;
    let mut first = t.sink(None).await;
    let mut second = t.sink(None).await;
    let mut log = Log::new(&t.db, 4);
    log.layout("kv", &["k", "v"]);
    log.begin();
    log.insert("kv", vec![int(1), text("first")]);
    log.commit();
    let (a, pa) = log.take();
    first.apply(&a, &pa).await.unwrap();

    log.begin();
    log.insert("kv", vec![int(2), text("second")]);
    log.commit();
    let (b, pb) = log.take();
    let e = second.apply(&b, &pb).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.report());
    assert!(
        e.message().contains(&format!(
            "the applied position of task `{}` is `mysql-bin.000001:304`",
            t.task
        )),
        "{}",
        e.report()
    );
    assert_eq!(t.rows("kv", "k"), "1\tfirst");
    // It knows the recorded position now, and skips what lies before it.
    assert_eq!(second.apply(&a, &pa).await.unwrap().transactions, 0);
    first.apply(&b, &pb).await.unwrap();
    assert_eq!(t.rows("kv", "k"), "1\tfirst\n2\tsecond");
    assert!(t.position().contains("604"), "{}", t.position());
}

#[test]
fn apply_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    async fn apply(sink: &mut MySqlApplySink, events: &[ChangeEvent], p: &Position) {
        let _ = sink.apply_part(events).await;
        let _ = sink.apply(events, p).await;
        let _ = sink.applied_position().await;
    }
    let _ = |sink: &'static mut MySqlApplySink, e: &'static [ChangeEvent], p: &'static Position| {
        assert_send(apply(sink, e, p));
    };
}

/// A source handing over prepared events.
struct VecSource {
    events: Arc<Vec<ChangeEvent>>,
    next: usize,
}

#[dts_core::async_trait]
impl ChangeSource for VecSource {
    async fn next_events(&mut self, max: usize, _timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let end = self.events.len().min(self.next + max);
        let out = self.events[self.next..end].to_vec();
        self.next = end;
        Ok(out)
    }

    fn acknowledge(&mut self, _: &Position) {}
}

/// Replicates `events` through the engine into the target; returns rows per second.
async fn replicate_all(t: &Target, events: Vec<ChangeEvent>) -> f64 {
    let until = events.last().unwrap().position.clone();
    let events = Arc::new(events);
    let (_stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let summary = replicate(
        {
            let events = events.clone();
            move |position: Position| {
                let events = events.clone();
                async move {
                    let Position::Binlog { offset, .. } = position else {
                        unreachable!()
                    };
                    let next = events.partition_point(|e| match &e.position {
                        Position::Binlog { offset: o, .. } => *o <= offset,
                        _ => false,
                    });
                    Ok(VecSource { events, next })
                }
            }
        },
        || async {
            t.sink_with(None, TargetBinlog::On, CascadeLogging::Logged)
                .await
        },
        CdcOptions {
            until: Some(until),
            ..CdcOptions::default()
        },
        None,
        stop,
    )
    .await
    .unwrap();
    summary.rows as f64 / started.elapsed().as_secs_f64()
}

/// Apply speed through the engine: single-row INSERT transactions, then single-row UPDATE
/// and DELETE transactions on a table of a million rows, then one-row batches.
#[tokio::test]
#[ignore = "benchmark"]
async fn apply_speed() {
    const ROWS: i64 = 200_000;
    let t = Target::new(
        "myapply_speed",
        "CREATE TABLE bench (id BIGINT PRIMARY KEY, name VARCHAR(64), qty INT, \
         price DECIMAL(12,2), at DATETIME(6))",
    )
    .await;
    let mut log = Log::new(&t.db, 4);
    log.layout("bench", &["id", "name", "qty", "price", "at"]);
    let row = |i: i64, qty: i64| {
        vec![
            int(i),
            text(&format!("customer name {i}")),
            int(qty),
            Value::Decimal(format!("{}.{:02}", i % 100_000, i % 100).parse().unwrap()),
            Value::DateTime(
                dts_core::DateTime::from_micros_since_unix_epoch(1_700_000_000_000_000 + i)
                    .unwrap(),
            ),
        ]
    };
    for i in 0..ROWS {
        log.begin();
        log.insert("bench", row(i, 1));
        log.commit();
    }
    let (inserts, _) = log.take();
    let rate = replicate_all(&t, inserts).await;
    println!("single-row INSERT transactions: {rate:.0} rows/s");
    assert_eq!(t.query("SELECT COUNT(*) FROM bench"), ROWS.to_string());

    t.query("INSERT INTO bench SELECT seq, 'filler', 1, 1.00, NOW() FROM seq_1000000_to_1999999");
    for i in 0..ROWS / 2 {
        log.begin();
        if i % 2 == 0 {
            log.update("bench", row(i, 1), row(i, 2));
        } else {
            log.delete("bench", row(i, 1));
        }
        log.commit();
    }
    let (mixed, _) = log.take();
    let rate = replicate_all(&t, mixed).await;
    println!("single-row UPDATE/DELETE transactions: {rate:.0} rows/s");
    assert_eq!(
        t.query("SELECT COUNT(*), SUM(qty) FROM bench"),
        format!(
            "{}\t{}",
            1_000_000 + ROWS - ROWS / 4,
            1_000_000 + ROWS - ROWS / 4 + ROWS / 4
        )
    );

    let mut sink = t.sink(None).await;
    let started = Instant::now();
    const SMALL: i64 = 2_000;
    for i in 0..SMALL {
        log.begin();
        log.update("bench", row(ROWS - 1 - i, 1), row(ROWS - 1 - i, 3));
        log.commit();
        let (events, p) = log.take();
        sink.apply(&events, &p).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "one-row batches: {:.0} batches/s ({:.2} ms each)",
        SMALL as f64 / secs,
        secs * 1000.0 / SMALL as f64
    );
}

/// A run killed just after sending its last `COMMIT` leaves the server committing it after
/// the client is gone: the next run's sink waits for that commit before it reads the
/// applied position, so the batch is not applied a second time.
#[tokio::test]
async fn a_new_sink_waits_for_an_earlier_sessions_commit_in_flight() {
    let t = Target::new(
        "myapply_late",
        "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)",
    )
    .await;
    let mut first = t.sink(None).await;
    let late = format!(
        "BEGIN; INSERT INTO `{}`.kv VALUES (1, 'late'); \
         UPDATE dts_meta.cdc_position SET applied_at = UTC_TIMESTAMP(6) WHERE task = '{}'; \
         DO SLEEP(2); COMMIT",
        t.db, t.task
    );
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let second = t.sink(None).await;
        (second, started.elapsed(), t.rows("kv", "k"))
    };
    let (committed, (_second, waited, rows)) = tokio::join!(first.conn().query_drop(late), second);
    committed.unwrap();
    assert!(
        waited >= Duration::from_millis(1000),
        "the sink did not wait: {waited:?}"
    );
    assert_eq!(rows, "1\tlate");
}
