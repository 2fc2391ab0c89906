//! The PostgreSQL apply sink against a real server: coalesced keyed changes and their
//! replay, tables without a key and duplicate rows, every mapped type, rollback of a batch
//! with a bad value, DDL, truncate, a large transaction in bounded memory, transactions in
//! parts (a million rows through the engine in bounded memory, failures part-way), and the
//! recorded position. Change events are built by hand (no MySQL needed).
//!
//! Runs on the testkit's private PostgreSQL (or the server named by `DTS_TEST_PG_URL`):
//! `cargo test -p dts-connectors --test pg_apply`. The apply speed benchmark:
//! `cargo test --release -p dts-connectors --test pg_apply -- --ignored --nocapture`.

#![cfg(feature = "postgres")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dts_cdc::{replicate, ApplySink, ApplyStats, CdcOptions};
use dts_connectors::postgres::{read_position, read_schema, record_position, PgApplySink};
use dts_core::{
    BitString, Catalog, Change, ChangeEvent, ChangeMapper, ChangeSource, Column, Date, DateTime,
    Error, ErrorKind, Key, Position, Result, RowImage, Schema, Table, TableName, Value,
};
use dts_schema::{plan_mysql_to_pg, SchemaOptions, SchemaTracker, TrackedChangeMapper};
use dts_typemap::MappingOptions;
use tokio::sync::watch;

const TASK: &str = "task-1";
const SCHEMA: &str = "shop";

fn binlog(offset: u64) -> Position {
    Position::Binlog {
        file: "mysql-bin.000001".into(),
        offset,
        gtid: None,
    }
}

fn column(name: &str, ordinal: usize, source_type: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        ordinal: u32::try_from(ordinal).unwrap(),
        source_type: source_type.into(),
        nullable,
        default: None,
        auto_increment: false,
        on_update_current_timestamp: false,
        generated: None,
        charset: None,
        collation: None,
        json_checked: false,
        comment: None,
    }
}

/// A source table of `(name, type)` columns (key columns `NOT NULL`, others nullable).
fn table(name: &str, columns: &[(&str, &str)], key: &[&str]) -> Table {
    Table {
        name: TableName::new(SCHEMA, name),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (c, t))| column(c, i + 1, t, !key.contains(c)))
            .collect(),
        primary_key: (!key.is_empty()).then(|| Key {
            name: None,
            columns: key.iter().map(|k| k.to_string()).collect(),
        }),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

/// Held by every test while it runs, and exclusively by the one that measures memory (the
/// resident size is the process's, so nothing else may run then).
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Gate {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// A fresh database holding the translated tables, with the snapshot position recorded.
struct Target {
    db: String,
    url: String,
    catalog: Catalog,
    _gate: Gate,
}

impl Target {
    async fn new(prefix: &str, tables: Vec<Table>) -> Self {
        Self::create(prefix, tables, Gate::Shared(GATE.read().await)).await
    }

    /// As [`Target::new`], with no other test running.
    async fn alone(prefix: &str, tables: Vec<Table>) -> Self {
        Self::create(prefix, tables, Gate::Alone(GATE.write().await)).await
    }

    async fn create(prefix: &str, tables: Vec<Table>, gate: Gate) -> Self {
        let pg = dts_testkit::postgres();
        let db = dts_testkit::unique_name(prefix);
        pg.create_database(&db).unwrap();
        let catalog = Catalog {
            types: Vec::new(),
            omitted_indexes: Vec::new(),
            schemas: vec![Schema {
                name: SCHEMA.into(),
                tables,
            }],
        };
        let plan = plan_mysql_to_pg(&catalog, &SchemaOptions::default());
        assert!(!plan.is_blocked(), "{:?}", plan.problems);
        pg.exec_in(&db, &plan.to_script()).unwrap();
        let url = pg.url_for(&db);
        let target = Self {
            db,
            url,
            catalog,
            _gate: gate,
        };
        let sink = target.sink(None).await;
        assert!(record_position(sink.client(), TASK, &binlog(4))
            .await
            .unwrap());
        target
    }

    async fn sink(&self, idempotent_until: Option<Position>) -> MappedSink {
        MappedSink::connect(&self.url, self.catalog.clone(), idempotent_until)
            .await
            .unwrap()
    }

    fn query(&self, sql: &str) -> String {
        dts_testkit::postgres().query_in(&self.db, sql).unwrap()
    }

    /// The rows of a table as `a|b|c` lines in key order.
    fn rows(&self, table: &str, order: &str) -> String {
        self.query(&format!(
            "SET TimeZone = 'UTC'; SELECT * FROM {SCHEMA}.{table} ORDER BY {order}"
        ))
    }
}

/// The apply sink as the task runner feeds it: the source's changes pass through the task's
/// change mapper (MySQL → PostgreSQL) first. After a failure the mapper starts again from
/// the source schema recorded with the applied position, as the engine's rebuilt source
/// does.
struct MappedSink {
    inner: PgApplySink,
    catalog: Catalog,
    skip_unsupported_ddl: bool,
    mapper: TrackedChangeMapper,
}

fn mapper_over(catalog: Catalog, skip_unsupported_ddl: bool) -> TrackedChangeMapper {
    let tracker = SchemaTracker::new(
        catalog,
        SchemaOptions::default(),
        Arc::new(|_: &TableName| true),
    );
    TrackedChangeMapper::new(tracker, MappingOptions::default())
        .with_skip_unsupported_ddl(skip_unsupported_ddl)
}

impl MappedSink {
    async fn connect(
        url: &str,
        catalog: Catalog,
        idempotent_until: Option<Position>,
    ) -> Result<Self> {
        let inner = PgApplySink::connect(url, TASK, idempotent_until).await?;
        let catalog = read_schema(inner.client(), TASK).await?.unwrap_or(catalog);
        Ok(Self {
            inner,
            mapper: mapper_over(catalog.clone(), false),
            catalog,
            skip_unsupported_ddl: false,
        })
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.inner.client()
    }

    fn with_skip_unsupported_ddl(mut self, skip: bool) -> Self {
        self.skip_unsupported_ddl = skip;
        self.mapper = mapper_over(self.mapper.tracker().catalog().clone(), skip);
        self
    }

    fn map(&mut self, events: &[ChangeEvent]) -> Result<Vec<ChangeEvent>> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.extend(self.mapper.map(e.clone())?);
        }
        Ok(out)
    }

    /// Starts over after a failure: the open target transaction is rolled back, and the
    /// mapper restarts from the schema at the applied position.
    async fn reset(&mut self) {
        let _ = self.inner.applied_position().await;
        let catalog = read_schema(self.inner.client(), TASK)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| self.catalog.clone());
        self.mapper = mapper_over(catalog, self.skip_unsupported_ddl);
    }
}

#[dts_core::async_trait]
impl ApplySink for MappedSink {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        let result = match self.map(events) {
            Ok(mapped) => self.inner.apply(&mapped, position).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        let result = match self.map(events) {
            Ok(mapped) => self.inner.apply_part(&mapped).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        self.inner.applied_position().await
    }
}

/// Builds change events with increasing binlog offsets.
#[derive(Default)]
struct Log {
    offset: u64,
    events: Vec<ChangeEvent>,
    layouts: HashMap<String, Arc<Vec<String>>>,
}

impl Log {
    fn starting_at(offset: u64) -> Self {
        Self {
            offset,
            ..Self::default()
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

    /// The column layout of a table's row images.
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

    fn begin(&mut self) {
        self.push(Change::Begin);
    }

    fn commit(&mut self) -> Position {
        self.push(Change::Commit)
    }

    fn insert(&mut self, table: &str, values: Vec<Value>) {
        let row = self.image(table, values);
        self.push(Change::Insert {
            table: TableName::new(SCHEMA, table),
            row,
        });
    }

    fn update(&mut self, table: &str, before: Vec<Value>, after: Vec<Value>) {
        let (before, after) = (self.image(table, before), self.image(table, after));
        self.push(Change::Update {
            table: TableName::new(SCHEMA, table),
            before,
            after,
        });
    }

    fn delete(&mut self, table: &str, values: Vec<Value>) {
        let row = self.image(table, values);
        self.push(Change::Delete {
            table: TableName::new(SCHEMA, table),
            row,
        });
    }

    fn truncate(&mut self, table: &str) {
        self.push(Change::Truncate {
            table: TableName::new(SCHEMA, table),
        });
    }

    fn ddl(&mut self, sql: &str) -> Position {
        self.push(Change::Ddl {
            schema: Some(SCHEMA.into()),
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

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[tokio::test]
async fn keyed_changes_coalesce_and_replay_to_the_same_table() {
    let t = Target::new(
        "apply_keyed",
        vec![table(
            "orders",
            &[
                ("shop_id", "int(11)"),
                ("order_no", "int(11)"),
                ("note", "varchar(20)"),
                ("qty", "int(11)"),
            ],
            &["shop_id", "order_no"],
        )],
    )
    .await;
    let mut sink = t.sink(None).await;
    assert_eq!(sink.applied_position().await.unwrap(), Some(binlog(4)));

    let mut log = Log::starting_at(4);
    log.layout("orders", &["shop_id", "order_no", "note", "qty"]);
    let row = |s, o, n: &str, q| vec![int(s), int(o), text(n), int(q)];
    log.begin();
    log.insert("orders", row(1, 1, "a", 1));
    log.insert("orders", row(1, 2, "b", 2));
    log.insert("orders", row(2, 1, "c", 3));
    log.insert("orders", row(3, 1, "gone", 4));
    log.commit();
    log.begin();
    log.update("orders", row(1, 1, "a", 1), row(1, 1, "a", 10));
    log.delete("orders", row(1, 2, "b", 2));
    // A key change: (2,1) moves to (2,5).
    log.update("orders", row(2, 1, "c", 3), row(2, 5, "moved", 3));
    log.insert("orders", row(1, 2, "again", 7));
    log.commit();
    log.begin();
    // A key moves away and another row takes its old key, in one transaction.
    log.update("orders", row(1, 1, "a", 10), row(1, 3, "a", 10));
    log.update("orders", row(2, 5, "moved", 3), row(1, 1, "moved", 3));
    log.delete("orders", row(3, 1, "gone", 4));
    log.commit();
    let (first, p1) = log.take();
    let stats = sink.apply(&first, &p1).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (3, 11));
    let want = "1|1|moved|3\n1|2|again|7\n1|3|a|10";
    assert_eq!(t.rows("orders", "1, 2"), want);
    assert_eq!(sink.applied_position().await.unwrap(), Some(p1.clone()));

    // A second batch on top, in the same sink (staging tables are reused).
    log.begin();
    log.update("orders", row(1, 2, "again", 7), row(1, 2, "again", 8));
    log.insert("orders", row(4, 4, "new", 4));
    log.commit();
    let (second, p2) = log.take();
    sink.apply(&second, &p2).await.unwrap();
    let want2 = "1|1|moved|3\n1|2|again|8\n1|3|a|10\n4|4|new|4";
    assert_eq!(t.rows("orders", "1, 2"), want2);

    // Transactions at or before the recorded position are skipped.
    let stats = sink.apply(&first, &p1).await.unwrap();
    assert_eq!((stats.transactions, stats.rows), (0, 0));
    assert_eq!(t.rows("orders", "1, 2"), want2);

    // Replayed for real (the position set back, as after an inexact snapshot), both batches
    // give the same table.
    t.query(&format!(
        "UPDATE dts_meta.cdc_position SET position = '{}'::jsonb",
        serde_json::to_string(&binlog(4)).unwrap()
    ));
    let mut replay = t.sink(Some(p2.clone())).await;
    replay.apply(&first, &p1).await.unwrap();
    replay.apply(&second, &p2).await.unwrap();
    assert_eq!(t.rows("orders", "1, 2"), want2);
    assert_eq!(replay.applied_position().await.unwrap(), Some(p2));
}

/// Many keys per batch go through the staging table: random inserts, updates, key changes
/// and deletes against a model of the table, then a replay.
#[tokio::test]
async fn many_keyed_changes_match_a_model_and_replay() {
    let t = Target::new(
        "apply_many",
        vec![table(
            "items",
            &[("a", "int(11)"), ("b", "varchar(8)"), ("v", "bigint(20)")],
            &["a", "b"],
        )],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("items", &["a", "b", "v"]);
    let mut model: std::collections::BTreeMap<(i64, String), i64> = Default::default();
    let mut seed: u64 = 42;
    let mut rand = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let row = |k: &(i64, String), v: i64| vec![int(k.0), text(&k.1), int(v)];
    let mut batches = Vec::new();
    for _ in 0..3 {
        for _ in 0..40 {
            log.begin();
            for _ in 0..=rand(6) {
                let key = (i64::try_from(rand(50)).unwrap(), format!("k{}", rand(4)));
                let v = i64::try_from(rand(1000)).unwrap();
                match (model.get(&key).copied(), rand(3)) {
                    (None, _) => {
                        log.insert("items", row(&key, v));
                        model.insert(key, v);
                    }
                    (Some(old), 0) => {
                        log.update("items", row(&key, old), row(&key, v));
                        model.insert(key, v);
                    }
                    (Some(old), 1) => {
                        let moved = (key.0 + 1000, key.1.clone());
                        if !model.contains_key(&moved) {
                            log.update("items", row(&key, old), row(&moved, old));
                            model.remove(&key);
                            model.insert(moved, old);
                        }
                    }
                    (Some(old), _) => {
                        log.delete("items", row(&key, old));
                        model.remove(&key);
                    }
                }
            }
            log.commit();
        }
        let batch = log.take();
        sink.apply(&batch.0, &batch.1).await.unwrap();
        batches.push(batch);
    }
    let want: Vec<String> = model
        .iter()
        .map(|((a, b), v)| format!("{a}|{b}|{v}"))
        .collect();
    let want = want.join("\n");
    assert_eq!(t.rows("items", "1, 2"), want);

    t.query(&format!(
        "UPDATE dts_meta.cdc_position SET position = '{}'::jsonb",
        serde_json::to_string(&binlog(4)).unwrap()
    ));
    let mut replay = t.sink(None).await;
    for (events, p) in &batches {
        replay.apply(events, p).await.unwrap();
    }
    assert_eq!(t.rows("items", "1, 2"), want);
}

#[tokio::test]
async fn keyless_tables_change_one_of_several_identical_rows() {
    let t = Target::new(
        "apply_keyless",
        vec![table("log", &[("a", "int(11)"), ("b", "varchar(10)")], &[])],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("log", &["a", "b"]);
    let row = |a, b: &str| vec![int(a), text(b)];
    log.begin();
    log.insert("log", row(1, "x"));
    log.insert("log", row(1, "x"));
    log.insert("log", row(2, "y"));
    log.insert("log", vec![Value::Null, text("n")]);
    log.commit();
    log.begin();
    log.update("log", row(1, "x"), row(1, "z"));
    log.delete("log", row(2, "y"));
    log.update("log", vec![Value::Null, text("n")], row(3, "n"));
    log.insert("log", row(2, "y"));
    log.commit();
    let (events, p) = log.take();
    let stats = sink.apply(&events, &p).await.unwrap();
    assert_eq!(stats.rows, 8);
    assert_eq!(t.rows("log", "1, 2"), "1|x\n1|z\n2|y\n3|n");

    log.begin();
    log.delete("log", row(1, "x"));
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    assert_eq!(t.rows("log", "1, 2"), "1|z\n2|y\n3|n");

    // A row the target does not have: the target diverged; nothing of the batch stays.
    log.begin();
    log.insert("log", row(9, "new"));
    log.delete("log", row(5, "q"));
    log.commit();
    let (events, p_bad) = log.take();
    let e = sink.apply(&events, &p_bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("`shop.log`"), "{e}");
    assert_eq!(t.rows("log", "1, 2"), "1|z\n2|y\n3|n");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p.clone()));

    // Before the consistency point, keyless changes cannot be made idempotent…
    let mut early = t.sink(Some(binlog(1_000_000))).await;
    log.begin();
    log.insert("log", row(7, "dup?"));
    log.commit();
    let (events, p2) = log.take();
    let e = early.apply(&events, &p2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("`shop.log`"), "{e}");
    // …unless they change nothing.
    log.begin();
    log.update("log", row(1, "z"), row(1, "z"));
    log.commit();
    let (events, p3) = log.take();
    assert_eq!(early.apply(&events, &p3).await.unwrap().rows, 1);
    assert_eq!(t.rows("log", "1, 2"), "1|z\n2|y\n3|n");
}

/// Every column type of the type mapping, with values as a binlog reader delivers them.
#[tokio::test]
async fn every_mapped_type_is_converted_and_applied() {
    let columns: &[(&str, &str, Value, Value, &str)] = &[
        ("id", "int(11)", int(1), int(1), "1"),
        ("ti", "tinyint(4)", int(-128), int(5), "-128"),
        ("tb", "tinyint(1)", int(1), int(0), "1"),
        ("tu", "tinyint(3) unsigned", Value::UInt(255), int(1), "255"),
        (
            "su",
            "smallint(5) unsigned",
            Value::UInt(65535),
            int(1),
            "65535",
        ),
        ("mi", "mediumint(9)", int(-8_388_608), int(1), "-8388608"),
        (
            "iu",
            "int(10) unsigned",
            Value::UInt(4_294_967_295),
            int(1),
            "4294967295",
        ),
        (
            "bi",
            "bigint(20)",
            int(i64::MIN),
            int(1),
            "-9223372036854775808",
        ),
        (
            "bu",
            "bigint(20) unsigned",
            Value::UInt(u64::MAX),
            int(1),
            "18446744073709551615",
        ),
        (
            "de",
            "decimal(65,30)",
            Value::Decimal("-12.5".parse().unwrap()),
            Value::Decimal("1".parse().unwrap()),
            "-12.500000000000000000000000000000",
        ),
        ("fl", "float", Value::Float(1.5), Value::Float(0.0), "1.5"),
        (
            "db",
            "double",
            Value::Double(0.1),
            Value::Double(0.0),
            "0.1",
        ),
        (
            "bt",
            "bit(10)",
            Value::Bits(BitString::new(10, 0b10_0000_0001).unwrap()),
            Value::Bits(BitString::new(10, 0).unwrap()),
            "1000000001",
        ),
        ("ch", "char(5)", text("ab"), text("x"), "ab"),
        ("vc", "varchar(10)", text("héllo 😀"), text("x"), "héllo 😀"),
        ("tx", "text", text("some text"), text("x"), "some text"),
        (
            "bn",
            "binary(4)",
            Value::Bytes(vec![1, 2]),
            Value::Bytes(vec![]),
            "\\x01020000",
        ),
        (
            "vb",
            "varbinary(8)",
            Value::Bytes(vec![0, 255]),
            Value::Bytes(vec![]),
            "\\x00ff",
        ),
        (
            "bl",
            "blob",
            Value::Bytes(b"blob".to_vec()),
            Value::Bytes(vec![]),
            "\\x626c6f62",
        ),
        (
            "dt",
            "date",
            Value::Date(Date::new(2024, 2, 29)),
            Value::Date(Date::new(2000, 1, 1)),
            "2024-02-29",
        ),
        (
            "zd",
            "date",
            Value::Date(Date::new(0, 0, 0)),
            Value::Null,
            "",
        ),
        (
            "ts",
            "datetime(6)",
            Value::DateTime("2024-05-06 07:08:09.123456".parse::<DateTime>().unwrap()),
            Value::Null,
            "2024-05-06 07:08:09.123456",
        ),
        (
            "tz",
            "timestamp(3)",
            Value::Timestamp("2024-05-06 07:08:09.123".parse::<DateTime>().unwrap()),
            Value::Null,
            "2024-05-06 07:08:09.123+00",
        ),
        (
            "tm",
            "time",
            Value::Time("-838:59:59".parse().unwrap()),
            Value::Null,
            "-838:59:59",
        ),
        ("yr", "year(4)", Value::Year(2024), Value::Null, "2024"),
        (
            "en",
            "enum('small','large')",
            int(2),
            text("small"),
            "large",
        ),
        (
            "st",
            "set('a','b','c')",
            Value::UInt(0b101),
            text(""),
            "a,c",
        ),
        (
            "js",
            "json",
            Value::Json("{\"b\": [1, 2.50], \"a\": null}".into()),
            Value::Json("[]".into()),
            "{\"a\": null, \"b\": [1, 2.50]}",
        ),
    ];
    let defs: Vec<(&str, &str)> = columns.iter().map(|c| (c.0, c.1)).collect();
    let t = Target::new("apply_types", vec![table("all_types", &defs, &["id"])]).await;
    let mut sink = t.sink(None).await;
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let mut log = Log::starting_at(4);
    log.layout("all_types", &names);
    let first: Vec<Value> = columns.iter().map(|c| c.2.clone()).collect();
    let mut second: Vec<Value> = columns.iter().map(|c| c.3.clone()).collect();
    second[0] = int(2);
    log.begin();
    log.insert("all_types", first.clone());
    log.insert("all_types", second.clone());
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    let want: Vec<&str> = columns.iter().map(|c| c.4).collect();
    let got = t.rows("all_types", "id");
    assert_eq!(got.lines().next().unwrap(), want.join("|"));

    // Update and delete through every type (the before images are converted too).
    let mut changed = first.clone();
    changed[14] = text("changed");
    log.begin();
    log.update("all_types", first, changed);
    log.delete("all_types", second);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    let mut want = want;
    want[14] = "changed";
    assert_eq!(t.rows("all_types", "id"), want.join("|"));
}

#[tokio::test]
async fn a_bad_value_rolls_back_the_whole_batch_and_its_position() {
    let t = Target::new(
        "apply_bad",
        vec![table(
            "t",
            &[("id", "int(11)"), ("v", "varchar(3)")],
            &["id"],
        )],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("t", &["id", "v"]);
    log.begin();
    log.insert("t", vec![int(1), text("ok")]);
    log.commit();
    log.begin();
    log.insert("t", vec![int(2), text("toolong")]);
    log.insert("t", vec![int(3), text("ok")]);
    log.commit();
    let (events, p) = log.take();
    let e = sink.apply(&events, &p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    let message = e.message();
    assert!(
        message.contains("`shop.t`.`v`") && message.contains("(id=2)"),
        "{message}"
    );
    assert!(!message.contains("toolong"), "{message}");
    assert_eq!(t.rows("t", "id"), "");
    assert_eq!(sink.applied_position().await.unwrap(), Some(binlog(4)));

    // A column the schema does not know is an error naming it.
    log.layout("t", &["id", "v", "surprise"]);
    log.begin();
    log.insert("t", vec![int(4), text("ok"), int(1)]);
    log.commit();
    let (events, p) = log.take();
    let e = sink.apply(&events, &p).await.unwrap_err();
    assert!(
        e.message().contains("`surprise`") && e.message().contains("`shop.t`"),
        "{e}"
    );
    // The sink is still usable.
    log.layout("t", &["id", "v"]);
    log.begin();
    log.insert("t", vec![int(5), text("ok")]);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    assert_eq!(t.rows("t", "id"), "5|ok");
}

#[tokio::test]
async fn truncate_applies_in_order() {
    let t = Target::new(
        "apply_truncate",
        vec![
            table("k", &[("id", "int(11)"), ("v", "int(11)")], &["id"]),
            table("nk", &[("v", "int(11)")], &[]),
        ],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("k", &["id", "v"]);
    log.layout("nk", &["v"]);
    log.begin();
    for i in 1..=3 {
        log.insert("k", vec![int(i), int(i)]);
        log.insert("nk", vec![int(i)]);
    }
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    log.begin();
    log.insert("k", vec![int(4), int(4)]);
    log.insert("nk", vec![int(4)]);
    log.commit();
    log.truncate("k");
    log.truncate("nk");
    log.commit();
    log.begin();
    log.insert("k", vec![int(5), int(5)]);
    log.insert("nk", vec![int(5)]);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    assert_eq!(t.rows("k", "id"), "5|5");
    assert_eq!(t.rows("nk", "v"), "5");
}

#[tokio::test]
async fn ddl_then_rows_using_the_new_column() {
    let t = Target::new(
        "apply_ddl",
        vec![table(
            "t",
            &[("id", "int(11)"), ("v", "varchar(10)")],
            &["id"],
        )],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("t", &["id", "v"]);
    log.begin();
    log.insert("t", vec![int(1), text("a")]);
    log.commit();
    log.ddl("ALTER TABLE t ADD COLUMN c int unsigned");
    log.layout("t", &["id", "v", "c"]);
    log.begin();
    log.insert("t", vec![int(2), text("b"), Value::UInt(7)]);
    log.update(
        "t",
        vec![int(1), text("a"), Value::Null],
        vec![int(1), text("a"), Value::UInt(1)],
    );
    log.commit();
    let (events, p) = log.take();
    let stats = sink.apply(&events, &p).await.unwrap();
    assert_eq!(stats.transactions, 3);
    assert_eq!(t.rows("t", "id"), "1|a|1\n2|b|7");
    // The schema after the DDL is recorded with the data, for a restart.
    let recorded = read_schema(sink.client(), TASK).await.unwrap().unwrap();
    let columns: Vec<&str> = recorded
        .table(&TableName::new(SCHEMA, "t"))
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["id", "v", "c"]);

    // A batch failing after a DDL statement leaves neither the target nor the tracker
    // changed.
    log.ddl("ALTER TABLE t ADD COLUMN d int");
    log.layout("t", &["id", "v", "c", "d"]);
    log.begin();
    log.insert(
        "t",
        vec![int(9), text("far too long"), Value::UInt(1), int(1)],
    );
    log.commit();
    let (events, p_failed) = log.take();
    assert!(sink.apply(&events, &p_failed).await.is_err());
    assert_eq!(
        t.query("SELECT count(*) FROM pg_attribute WHERE attrelid = 'shop.t'::regclass AND attname = 'd'"),
        "0"
    );
    log.layout("t", &["id", "v", "c"]);
    log.begin();
    log.insert("t", vec![int(3), text("c"), Value::UInt(3)]);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();
    assert_eq!(t.rows("t", "id"), "1|a|1\n2|b|7\n3|c|3");
    log.begin();
    log.delete("t", vec![int(3), text("c"), Value::UInt(3)]);
    log.commit();
    let (events, p) = log.take();
    sink.apply(&events, &p).await.unwrap();

    // A statement the tracker cannot translate stops the batch, and nothing of it stays…
    log.begin();
    log.insert("t", vec![int(3), text("c"), Value::UInt(3)]);
    log.commit();
    log.ddl("CREATE SPATIAL INDEX sp ON t (g)");
    let (events, p_bad) = log.take();
    let e = sink.apply(&events, &p_bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(t.rows("t", "id"), "1|a|1\n2|b|7");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p));
    // …unless the task skips such statements.
    let mut sink = sink.with_skip_unsupported_ddl(true);
    sink.apply(&events, &p_bad).await.unwrap();
    assert_eq!(t.rows("t", "id"), "1|a|1\n2|b|7\n3|c|3");
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_large_transaction_is_streamed_in_bounded_memory() {
    const ROWS: i64 = 300_000;
    let t = Target::alone(
        "apply_large",
        vec![table(
            "big",
            &[("id", "bigint(20)"), ("pad", "varchar(200)")],
            &["id"],
        )],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("big", &["id", "pad"]);
    log.begin();
    let pad = "p".repeat(150);
    for i in 0..ROWS {
        log.insert("big", vec![int(i), text(&pad)]);
    }
    log.commit();
    let (events, p) = log.take();
    // Mapped ahead, as the engine's source stage does, so that only the sink is measured.
    let events = sink.map(&events).unwrap();
    // Reset the peak resident size, so that it measures the apply alone.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = rss_kib("VmRSS:");
    let stats = sink.inner.apply(&events, &p).await.unwrap();
    let peak = rss_kib("VmHWM:");
    assert_eq!(stats.rows, 300_000);
    assert_eq!(t.query("SELECT count(*) FROM shop.big"), ROWS.to_string());
    if let (Some(before), Some(peak)) = (before, peak) {
        // Holding the encoded transaction whole would take over 60 MiB more.
        let grown = peak.saturating_sub(before);
        println!("resident size grew by {grown} KiB while applying {ROWS} rows");
        assert!(grown < 40 << 10, "grew by {grown} KiB");
    }
    drop(events);
}

/// One transaction applied in parts through the sink directly: committed once, with the
/// rows of both a keyed and a keyless table; read again in parts it is skipped; a part
/// failing, or the sink asked for its position, rolls back everything of the transaction.
#[tokio::test]
async fn a_transaction_in_parts_commits_once_and_is_skipped_when_read_again() {
    let t = Target::new(
        "apply_parts",
        vec![
            table("k", &[("id", "int(11)"), ("v", "varchar(5)")], &["id"]),
            table("nk", &[("v", "int(11)")], &[]),
        ],
    )
    .await;
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("k", &["id", "v"]);
    log.layout("nk", &["v"]);
    log.begin();
    for i in 1..=30 {
        log.insert("k", vec![int(i), text("a")]);
        log.insert("nk", vec![int(i)]);
    }
    log.update("k", vec![int(1), text("a")], vec![int(1), text("b")]);
    log.delete("nk", vec![int(2)]);
    log.commit();
    // A second transaction in the closing batch.
    log.begin();
    log.insert("k", vec![int(100), text("z")]);
    log.commit();
    let (events, p) = log.take();
    let (part1, rest) = events.split_at(25);
    let (part2, rest) = rest.split_at(30);
    let s1 = sink.apply_part(part1).await.unwrap();
    let s2 = sink.apply_part(part2).await.unwrap();
    assert_eq!((s1.transactions, s1.rows, s2.rows), (0, 24, 30));
    // Nothing is visible to others before the closing apply.
    assert_eq!(t.query("SELECT count(*) FROM shop.k"), "0");
    let s3 = sink.apply(rest, &p).await.unwrap();
    assert_eq!(
        s3,
        ApplyStats {
            transactions: 2,
            rows: 9
        }
    );
    assert_eq!(t.query("SELECT count(*), min(v) FROM shop.k"), "31|a");
    assert_eq!(t.query("SELECT count(*) FROM shop.nk"), "29");
    assert_eq!(t.query("SELECT v FROM shop.k WHERE id = 1"), "b");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p.clone()));

    // The same transactions read again, in parts: ignored, nothing changes (the keyless
    // table would get duplicate rows otherwise).
    for sink in [&mut sink, &mut t.sink(None).await] {
        assert_eq!(sink.apply_part(part1).await.unwrap(), ApplyStats::default());
        assert_eq!(sink.apply_part(part2).await.unwrap(), ApplyStats::default());
        assert_eq!(sink.apply(rest, &p).await.unwrap(), ApplyStats::default());
        assert_eq!(t.query("SELECT count(*) FROM shop.nk"), "29");
        assert_eq!(t.query("SELECT count(*) FROM shop.k"), "31");
    }

    // A part failing (a value too long) rolls back the parts before it and leaves the
    // position; the sink is usable again.
    log.begin();
    for i in 200..210 {
        log.insert("k", vec![int(i), text("x")]);
        log.insert("nk", vec![int(i)]);
    }
    let (good, _) = log.take();
    log.insert("k", vec![int(300), text("toolong")]);
    let (bad, _) = log.take();
    sink.apply_part(&good).await.unwrap();
    let e = sink.apply_part(&bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{e}");
    assert_eq!(t.query("SELECT count(*) FROM shop.k WHERE id >= 200"), "0");
    assert_eq!(t.query("SELECT count(*) FROM shop.nk WHERE v >= 200"), "0");
    assert_eq!(sink.applied_position().await.unwrap(), Some(p.clone()));

    // Asking for the position in the middle of a transaction in parts rolls it back.
    sink.apply_part(&good).await.unwrap();
    assert_eq!(sink.applied_position().await.unwrap(), Some(p.clone()));
    log.insert("k", vec![int(210), text("x")]);
    log.commit();
    let (rest, p2) = log.take();
    sink.apply(&rest, &p2).await.unwrap();
    assert_eq!(t.query("SELECT count(*) FROM shop.k WHERE id >= 200"), "1");
    assert_eq!(t.query("SELECT count(*) FROM shop.nk WHERE v >= 200"), "0");

    // A part holding the end of a transaction is refused.
    log.begin();
    log.insert("nk", vec![int(500)]);
    log.commit();
    let (whole, _) = log.take();
    let e = sink.apply_part(&whole).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
}

/// A source generating one transaction of `rows` inserts into `shop.big` on the fly (the
/// test never holds it): event `i` (0-based; the `Begin`, the inserts, the `Commit`) sits
/// at offset `4 + 100 * (i + 1)`.
struct GeneratedSource {
    rows: u64,
    next: u64,
    /// The row (0-based) whose value is too long for its column, if any.
    bad_row: Option<u64>,
    columns: Arc<Vec<String>>,
}

impl GeneratedSource {
    fn at(position: &Position, rows: u64, bad_row: Option<u64>) -> Self {
        let Position::Binlog { offset, .. } = position else {
            unreachable!()
        };
        Self {
            rows,
            next: (offset - 4) / 100,
            bad_row,
            columns: Arc::new(vec!["id".into(), "pad".into()]),
        }
    }

    fn commit_position(rows: u64) -> Position {
        binlog(4 + 100 * (rows + 2))
    }

    fn event(&self, i: u64) -> ChangeEvent {
        let change = if i == 0 {
            Change::Begin
        } else if i == self.rows + 1 {
            Change::Commit
        } else {
            let row = i - 1;
            let pad = if Some(row) == self.bad_row { 300 } else { 150 };
            Change::Insert {
                table: TableName::new(SCHEMA, "big"),
                row: RowImage {
                    columns: self.columns.clone(),
                    values: vec![
                        Value::Int(i64::try_from(row).unwrap()),
                        Value::Text("p".repeat(pad)),
                    ],
                },
            }
        };
        ChangeEvent {
            change,
            position: binlog(4 + 100 * (i + 1)),
            timestamp: 1_700_000_000,
        }
    }
}

#[dts_core::async_trait]
impl ChangeSource for GeneratedSource {
    async fn next_events(&mut self, max: usize, _timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let end = (self.rows + 2).min(self.next + max as u64);
        let out = (self.next..end).map(|i| self.event(i)).collect();
        self.next = end;
        Ok(out)
    }

    fn acknowledge(&mut self, _: &dts_core::Position) {}
}

/// The sink, counting its parts and their largest size, failing the `fail_at`-th part
/// (across sinks, 1-based) with a lost connection without passing it on; the inner sink is
/// then dropped with its target transaction open.
struct CountingSink {
    inner: MappedSink,
    parts: Arc<AtomicU64>,
    largest_part: Arc<AtomicUsize>,
    fail_at: Option<u64>,
}

#[dts_core::async_trait]
impl ApplySink for CountingSink {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        self.inner.apply(events, position).await
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        let n = self.parts.fetch_add(1, Ordering::SeqCst) + 1;
        self.largest_part.fetch_max(events.len(), Ordering::SeqCst);
        if Some(n) == self.fail_at {
            return Err(Error::new(
                ErrorKind::Connection,
                "connection lost (injected)",
            ));
        }
        self.inner.apply_part(events).await
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        self.inner.applied_position().await
    }
}

/// What [`replicate_generated`] saw.
struct Generated {
    result: Result<dts_cdc::CdcSummary>,
    parts: u64,
    largest_part: usize,
    /// The target's row count and position each time a sink connected after the first.
    at_reconnects: Vec<(String, Option<Position>)>,
}

/// Replicates a generated transaction of `rows` rows through the engine into `shop.big`.
async fn replicate_generated(
    t: &Target,
    rows: u64,
    bad_row: Option<u64>,
    max_batch_rows: usize,
    fail_at: Option<u64>,
) -> Generated {
    let catalog = t.catalog.clone();
    let parts = Arc::new(AtomicU64::new(0));
    let largest_part = Arc::new(AtomicUsize::new(0));
    let at_reconnects = Arc::new(Mutex::new(Vec::new()));
    let connects = Arc::new(AtomicU64::new(0));
    let (_stop_tx, stop) = watch::channel(false);
    let result = replicate(
        move |position: Position| {
            std::future::ready(Ok(GeneratedSource::at(&position, rows, bad_row)))
        },
        || {
            let url = t.url.clone();
            let catalog = catalog.clone();
            let (parts, largest_part) = (parts.clone(), largest_part.clone());
            let (connects, at_reconnects) = (connects.clone(), at_reconnects.clone());
            let db = t.db.clone();
            async move {
                if connects.fetch_add(1, Ordering::SeqCst) > 0 {
                    let pg = dts_testkit::postgres();
                    let count = pg.query_in(&db, "SELECT count(*) FROM shop.big").unwrap();
                    let client = dts_connectors::postgres::connect_client(&url).await?;
                    let position = read_position(&client, TASK).await?;
                    at_reconnects.lock().unwrap().push((count, position));
                }
                let inner = MappedSink::connect(&url, catalog, None).await?;
                Ok(CountingSink {
                    inner,
                    parts,
                    largest_part,
                    fail_at,
                })
            }
        },
        CdcOptions {
            max_batch_rows,
            until: Some(GeneratedSource::commit_position(rows)),
            ..CdcOptions::default()
        },
        None,
        stop,
    )
    .await;
    let at_reconnects = at_reconnects.lock().unwrap().clone();
    Generated {
        result,
        parts: parts.load(Ordering::SeqCst),
        largest_part: largest_part.load(Ordering::SeqCst),
        at_reconnects,
    }
}

fn big_table() -> Table {
    table(
        "big",
        &[("id", "bigint(20)"), ("pad", "varchar(200)")],
        &["id"],
    )
}

/// A million-row transaction through the engine, in parts, with the process's resident
/// size growing by far less than holding its events would take (about 650 MiB).
#[tokio::test]
async fn a_million_row_transaction_replicates_in_bounded_memory() {
    const ROWS: u64 = 1_000_000;
    let t = Target::alone("apply_million", vec![big_table()]).await;
    // Reset the peak resident size, so that it measures the replication alone.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = rss_kib("VmRSS:");
    let started = Instant::now();
    let run = replicate_generated(&t, ROWS, None, CdcOptions::default().max_batch_rows, None).await;
    let peak = rss_kib("VmHWM:");
    let summary = run.result.unwrap();
    println!(
        "{ROWS} rows in one transaction replicated in {:.1} s, {} parts",
        started.elapsed().as_secs_f64(),
        run.parts
    );
    assert_eq!(summary.rows, ROWS);
    assert_eq!(summary.transactions, 1);
    assert_eq!(
        summary.position,
        Some(GeneratedSource::commit_position(ROWS))
    );
    assert_eq!(
        t.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM shop.big"),
        format!("{ROWS}|{ROWS}|0|{}", ROWS - 1)
    );
    assert_eq!(run.parts, ROWS / 20_000);
    assert!(run.largest_part <= 20_001, "{}", run.largest_part);
    if let (Some(before), Some(peak)) = (before, peak) {
        let grown = peak.saturating_sub(before);
        println!("resident size grew by {grown} KiB while replicating {ROWS} rows");
        assert!(grown < 150 << 10, "grew by {grown} KiB");
    }
}

/// Failures part-way through a large transaction: a bad value in a late part stops
/// replication with none of the transaction's rows in the target and the position
/// unchanged; a lost connection after some parts does the same until the retry, which
/// applies the whole transaction again, exactly once.
#[tokio::test]
async fn a_failure_after_some_parts_leaves_nothing_of_the_transaction() {
    const ROWS: u64 = 100_000;
    let t = Target::new("apply_parts_fail", vec![big_table()]).await;
    let run = replicate_generated(&t, ROWS, Some(65_432), 10_000, None).await;
    let e = run.result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{e}");
    assert_eq!(run.parts, 7, "the bad value sits in the seventh part");
    assert_eq!(t.query("SELECT count(*) FROM shop.big"), "0");
    let sink = t.sink(None).await;
    assert_eq!(
        read_position(sink.client(), TASK).await.unwrap(),
        Some(binlog(4))
    );

    let run = replicate_generated(&t, ROWS, None, 10_000, Some(4)).await;
    let summary = run.result.unwrap();
    assert_eq!(summary.rows, ROWS);
    assert_eq!(run.parts, 3 + 1 + 10);
    assert_eq!(run.at_reconnects, [("0".to_string(), Some(binlog(4)))]);
    assert_eq!(
        t.query("SELECT count(*), count(DISTINCT id) FROM shop.big"),
        format!("{ROWS}|{ROWS}")
    );
    assert_eq!(
        read_position(sink.client(), TASK).await.unwrap(),
        Some(GeneratedSource::commit_position(ROWS))
    );
}

#[tokio::test]
async fn positions_round_trip_and_are_recorded_once() {
    let t = Target::new(
        "apply_position",
        vec![table("t", &[("id", "int(11)")], &["id"])],
    )
    .await;
    let pg = dts_testkit::postgres();
    let client = {
        let (client, connection) =
            tokio_postgres::connect(&pg.url_for(&t.db), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
    };
    assert_eq!(read_position(&client, TASK).await.unwrap(), Some(binlog(4)));
    // The snapshot position is recorded only if none is.
    assert!(!record_position(&client, TASK, &binlog(99)).await.unwrap());
    assert_eq!(read_position(&client, TASK).await.unwrap(), Some(binlog(4)));
    assert_eq!(read_position(&client, "other").await.unwrap(), None);
    let gtid = Position::Binlog {
        file: "mysql-bin.000002".into(),
        offset: 1234,
        gtid: Some("0-1-77,1-2-3".into()),
    };
    let mut sink = t.sink(None).await;
    let mut log = Log::starting_at(4);
    log.layout("t", &["id"]);
    log.begin();
    log.insert("t", vec![int(1)]);
    log.commit();
    let (mut events, _) = log.take();
    events.last_mut().unwrap().position = gtid.clone();
    sink.apply(&events, &gtid).await.unwrap();
    assert_eq!(sink.applied_position().await.unwrap(), Some(gtid.clone()));
    assert_eq!(read_position(&client, TASK).await.unwrap(), Some(gtid));
    assert_eq!(
        t.query("SELECT applied_at IS NOT NULL FROM dts_meta.cdc_position"),
        "t"
    );
}

#[test]
fn apply_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    async fn apply(sink: &mut PgApplySink, events: &[ChangeEvent], p: &Position) {
        let _ = sink.apply_part(events).await;
        let _ = sink.apply(events, p).await;
        let _ = sink.applied_position().await;
    }
    let _ = |sink: &'static mut PgApplySink, e: &'static [ChangeEvent], p: &'static Position| {
        assert_send(apply(sink, e, p));
    };
}

/// A source handing over prepared events (a stand-in for the binlog reader).
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

    fn acknowledge(&mut self, _: &dts_core::Position) {}
}

/// Replicates `events` (starting after position 4) through the engine into the target;
/// returns rows per second.
async fn replicate_all(t: &Target, events: Vec<ChangeEvent>) -> f64 {
    let until = events.last().unwrap().position.clone();
    let events = Arc::new(events);
    let catalog = t.catalog.clone();
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
        {
            let url = t.url.clone();
            move || {
                let url = url.clone();
                let catalog = catalog.clone();
                async move { MappedSink::connect(&url, catalog, None).await }
            }
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
    let secs = started.elapsed().as_secs_f64();
    summary.rows as f64 / secs
}

/// Apply speed through the engine: single-row INSERT transactions, then mixed single-row
/// UPDATE and DELETE transactions.
#[tokio::test]
#[ignore = "benchmark"]
async fn apply_speed() {
    const ROWS: i64 = 200_000;
    let t = Target::new(
        "apply_speed",
        vec![table(
            "bench",
            &[
                ("id", "bigint(20)"),
                ("name", "varchar(64)"),
                ("qty", "int(11)"),
                ("price", "decimal(12,2)"),
                ("at", "datetime(6)"),
            ],
            &["id"],
        )],
    )
    .await;
    let mut log = Log::starting_at(4);
    log.layout("bench", &["id", "name", "qty", "price", "at"]);
    let row = |i: i64, qty: i64| {
        vec![
            int(i),
            text(&format!("customer name {i}")),
            int(qty),
            Value::Decimal(format!("{}.{:02}", i % 100_000, i % 100).parse().unwrap()),
            Value::DateTime(
                DateTime::from_micros_since_unix_epoch(1_700_000_000_000_000 + i).unwrap(),
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
    assert_eq!(t.query("SELECT count(*) FROM shop.bench"), ROWS.to_string());

    // A million more rows, so that changes hit a table of realistic size.
    t.query(
        "INSERT INTO shop.bench SELECT g, 'filler', 1, 1.00, now() \
         FROM generate_series(1000000, 1999999) g; ANALYZE shop.bench",
    );
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
        t.query("SELECT count(*), sum(qty) FROM shop.bench"),
        format!(
            "{}|{}",
            1_000_000 + ROWS - ROWS / 4,
            1_000_000 + ROWS - ROWS / 4 + ROWS / 4
        )
    );

    // Unbatched: one single-row transaction per target transaction (a quiet source).
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

/// Positions move compare-and-set: a second writer of the task (a run that got past the
/// run lock) can neither overwrite the position another run wrote nor move it backwards,
/// and what it applied with the refused position is not committed.
#[tokio::test]
async fn a_second_writer_of_the_task_cannot_move_its_position() {
    let t = Target::new(
        "apply_cas",
        vec![table(
            "kv",
            &[("k", "int(11)"), ("v", "varchar(20)")],
            &["k"],
        )],
    )
    .await;
    // Two sinks of the same task, both starting at the recorded position.
    let mut first = t.sink(None).await;
    let mut second = t.sink(None).await;
    assert_eq!(first.applied_position().await.unwrap(), Some(binlog(4)));
    assert_eq!(second.applied_position().await.unwrap(), Some(binlog(4)));

    let mut log = Log::starting_at(4);
    log.layout("kv", &["k", "v"]);
    log.begin();
    log.insert("kv", vec![int(1), text("first")]);
    log.commit();
    let (a, pa) = log.take();
    first.apply(&a, &pa).await.unwrap();

    // The second writer's view (position 4) is stale: its batch, ending past the first
    // writer's position, is refused and rolled back.
    log.begin();
    log.insert("kv", vec![int(2), text("second")]);
    log.commit();
    let (b, pb) = log.take();
    let e = second.apply(&b, &pb).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.report());
    assert!(
        e.message()
            .contains("the applied position of task `task-1` is `mysql-bin.000001:304`"),
        "{}",
        e.report()
    );
    assert_eq!(t.rows("kv", "k"), "1|first");
    assert_eq!(
        read_position(first.client(), TASK).await.unwrap(),
        Some(pa.clone())
    );

    // Nor can it move the position backwards, to one before the first writer's: after the
    // refusal it knows the recorded position and skips what lies before it.
    let mut back = Log::starting_at(0);
    back.layout("kv", &["k", "v"]);
    back.begin();
    back.insert("kv", vec![int(3), text("back")]);
    back.commit();
    let (c, pc) = back.take();
    assert_eq!(pc, binlog(300));
    let stats = second.apply(&c, &pc).await.unwrap();
    assert_eq!(stats.transactions, 0);
    assert_eq!(t.rows("kv", "k"), "1|first");
    assert_eq!(
        read_position(first.client(), TASK).await.unwrap(),
        Some(pa.clone())
    );

    // The first writer goes on from its own position.
    first.apply(&b, &pb).await.unwrap();
    assert_eq!(t.rows("kv", "k"), "1|first\n2|second");
    assert_eq!(read_position(first.client(), TASK).await.unwrap(), Some(pb));
}

/// A run killed just after sending its last `COMMIT` leaves the server committing it after
/// the client is gone. The next run's sink waits for that commit before it reads the
/// applied position (otherwise it would read the position before it and apply the batch a
/// second time); and an earlier session left idle inside a transaction (its client cut
/// off: no `COMMIT` will come) is ended, its transaction rolled back.
#[tokio::test]
async fn a_new_sink_waits_for_an_earlier_sessions_commit_in_flight() {
    let t = Target::new(
        "apply_late",
        vec![table(
            "kv",
            &[("k", "int(11)"), ("v", "varchar(20)")],
            &["k"],
        )],
    )
    .await;
    let first = t.sink(None).await;
    // The earlier session's last transaction: its rows and position written, its COMMIT
    // still running (a slow commit, here made slow by a sleep) when the next sink starts.
    let late = format!(
        "BEGIN; INSERT INTO {SCHEMA}.kv VALUES (1, 'late'); \
         UPDATE dts_meta.cdc_position SET applied_at = now() WHERE task = '{TASK}'; \
         SELECT pg_sleep(2); COMMIT"
    );
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let second = t.sink(None).await;
        let waited = started.elapsed();
        // When it has read the position, the earlier transaction has committed.
        (second, waited, t.rows("kv", "k"))
    };
    let (committed, (second, waited, rows)) =
        tokio::join!(first.client().batch_execute(&late), second);
    committed.unwrap();
    assert!(
        waited >= Duration::from_millis(1000),
        "the sink did not wait: {waited:?}"
    );
    assert_eq!(rows, "1|late");
    drop(second);

    // Idle inside a transaction: ended after a few seconds, its rows rolled back.
    first
        .client()
        .batch_execute(&format!(
            "BEGIN; INSERT INTO {SCHEMA}.kv VALUES (2, 'abandoned')"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let mut third = t.sink(None).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(first.client().is_closed() || first.client().simple_query("SELECT 1").await.is_err());
    assert_eq!(t.rows("kv", "k"), "1|late");
    assert_eq!(third.applied_position().await.unwrap(), Some(binlog(4)));
}
