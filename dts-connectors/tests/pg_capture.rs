//! Change capture from PostgreSQL against a real server: a permanent slot created with the
//! snapshot, a publication, `pgoutput` streamed (protocol 2, a transaction larger than
//! `logical_decoding_work_mem` streamed before its commit, a savepoint rolled back inside
//! it), unchanged TOASTed values, `REPLICA IDENTITY FULL`, truncate, a table left out, the
//! decoded changes replayed over the snapshot compared value for value with a fresh
//! snapshot read, feedback confirming a position to the slot, and a restart at a
//! transaction's end delivering exactly the transactions after it.
//!
//! Runs on the testkit's private PostgreSQL (`wal_level=logical`; or the server named by
//! `DTS_TEST_PG_URL`): `cargo test -p dts-connectors --test pg_capture`.

#![cfg(feature = "postgres")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_connectors::postgres::{
    PgChangeSource, PgSnapshot, PgSnapshotReader, PgSource, SlotLifetime,
};
use dts_core::{
    Change, ChangeEvent, ChangeSource, Chunk, Lsn, Position, SchemaSource, SnapshotReader, Table,
    TableName, Value,
};
use futures::StreamExt;

const SETUP: &str = "
    CREATE SCHEMA app;
    CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN app.posint AS integer CHECK (VALUE > 0);
    CREATE TABLE app.items (
        id integer PRIMARY KEY,
        note text,
        big text,
        amount numeric,
        at timestamptz,
        day date,
        raw bytea,
        doc jsonb,
        token uuid,
        tags text[],
        feeling app.mood,
        qty app.posint,
        flags bit(3),
        clock time,
        ok boolean,
        ratio double precision,
        twice integer GENERATED ALWAYS AS (id * 2) STORED
    );
    ALTER TABLE app.items ALTER COLUMN big SET STORAGE EXTERNAL;
    CREATE TABLE app.bag (a integer, b text);
    ALTER TABLE app.bag REPLICA IDENTITY FULL;
    CREATE TABLE app.other (id integer PRIMARY KEY);
    INSERT INTO app.items (id, note, big) VALUES (1, 'before', repeat('toast', 4000));
    INSERT INTO app.bag VALUES (1, 'x'), (1, 'x'), (2, 'y');
";

/// Every kind of change, in separate transactions.
const WORKLOAD: &[&str] = &[
    "INSERT INTO app.items VALUES (2, 'two', repeat('b', 3000), 12345678901234567890.000000001, \
     '2024-02-29 23:59:59.999999+00', '0001-01-01', '\\x00ff', '{\"k\": [1, null]}', \
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a,\"b c\",NULL}', 'happy', 7, B'101', '24:00:00', \
     true, 0.1)",
    // The TOASTed `big` is left unchanged: the change does not carry it.
    "UPDATE app.items SET note = 'after', amount = -1 WHERE id = 1",
    "UPDATE app.bag SET b = 'z' WHERE a = 2",
    "DELETE FROM app.bag WHERE ctid = (SELECT ctid FROM app.bag WHERE a = 1 LIMIT 1)",
    "INSERT INTO app.other VALUES (1)",
    "UPDATE app.items SET id = 3 WHERE id = 2",
    // Larger than logical_decoding_work_mem: streamed before its commit, with a savepoint
    // rolled back after part of it was streamed.
    "BEGIN; \
     INSERT INTO app.items (id, note, amount) SELECT g, md5(g::text), g FROM generate_series(100, 3099) g; \
     SAVEPOINT s; \
     INSERT INTO app.items (id, note) SELECT g, md5(g::text) FROM generate_series(10000, 11999) g; \
     ROLLBACK TO s; \
     UPDATE app.items SET note = 'in big' WHERE id BETWEEN 100 AND 199; \
     DELETE FROM app.items WHERE id BETWEEN 200 AND 299; \
     COMMIT",
    "TRUNCATE app.bag",
    "INSERT INTO app.bag VALUES (3, NULL)",
    "DELETE FROM app.items WHERE id = 3",
];

fn selects(t: &TableName) -> bool {
    t.schema == "app" && t.name != "other"
}

/// Reads until a transaction ends at or after `until`.
async fn read_until(source: &mut PgChangeSource, until: Lsn) -> Vec<ChangeEvent> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no transaction ended at {until}");
        let events = source
            .next_events(5000, Duration::from_millis(500))
            .await
            .unwrap();
        let done = events.iter().any(|e| {
            e.change == Change::Commit && matches!(&e.position, Position::Lsn(l) if *l >= until)
        });
        out.extend(events);
        if done {
            return out;
        }
    }
}

/// The transactions of `events`, empty ones left out, with their commit positions.
fn transactions(events: &[ChangeEvent]) -> Vec<(Position, Vec<Change>)> {
    let mut out = Vec::new();
    let mut open: Option<Vec<Change>> = None;
    let mut last_end: Option<Position> = None;
    for e in events {
        match &e.change {
            Change::Begin => {
                assert!(open.is_none(), "a transaction begins inside another");
                if let Some(end) = &last_end {
                    assert!(
                        e.position.log_cmp(end).unwrap().is_gt(),
                        "a transaction's first event at {} is not after the last end {end}",
                        e.position
                    );
                }
                open = Some(Vec::new());
            }
            Change::Commit => {
                let changes = open.take().expect("a commit outside a transaction");
                if let Some(end) = &last_end {
                    assert!(e.position.log_cmp(end).unwrap().is_ge());
                }
                last_end = Some(e.position.clone());
                if !changes.is_empty() {
                    out.push((e.position.clone(), changes));
                }
            }
            other => open
                .as_mut()
                .expect("a change outside a transaction")
                .push(other.clone()),
        }
    }
    assert!(open.is_none(), "a transaction was left open");
    out
}

/// Rows by column name.
type Row = BTreeMap<String, Value>;

fn row(image: &dts_core::RowImage) -> Row {
    image
        .columns
        .iter()
        .cloned()
        .zip(image.values.iter().cloned())
        .collect()
}

/// The tables' rows, replayed: `items` by `id`, `bag` as a list.
#[derive(Debug, Default, PartialEq)]
struct Model {
    items: BTreeMap<i64, Row>,
    bag: Vec<Row>,
}

impl Model {
    fn key(r: &Row) -> i64 {
        match r.get("id") {
            Some(Value::Int(i)) => *i,
            other => panic!("no id: {other:?}"),
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Insert { table, row: r } if table.name == "items" => {
                assert!(self.items.insert(Self::key(&row(r)), row(r)).is_none());
            }
            Change::Insert { row: r, .. } => self.bag.push(row(r)),
            Change::Update {
                table,
                before,
                after,
            } if table.name == "items" => {
                let mut new = self
                    .items
                    .remove(&Self::key(&row(before)))
                    .expect("updated row exists");
                // Columns the after image lacks keep their value.
                new.extend(row(after));
                self.items.insert(Self::key(&new), new);
            }
            Change::Update { before, after, .. } => {
                let i = self
                    .bag
                    .iter()
                    .position(|r| *r == row(before))
                    .expect("updated row exists");
                self.bag[i] = row(after);
            }
            Change::Delete { table, row: r } if table.name == "items" => {
                assert!(self.items.remove(&Self::key(&row(r))).is_some());
            }
            Change::Delete { row: r, .. } => {
                let i = self
                    .bag
                    .iter()
                    .position(|x| *x == row(r))
                    .expect("deleted row exists");
                self.bag.remove(i);
            }
            Change::Truncate { table } => {
                assert_eq!(table.name, "bag");
                self.bag.clear();
            }
            // A table's columns, before its first change of the stream: the model's
            // tables keep theirs.
            Change::Relation { table, columns } => {
                assert!(["items", "bag"].contains(&table.name.as_str()), "{table}");
                assert!(!columns.is_empty());
                if table.name == "items" {
                    assert_eq!(columns[0].name, "id");
                    assert!(columns[0].key);
                    assert_eq!(columns[0].ordinal, Some(1));
                }
            }
            other => panic!("unexpected change {other:?}"),
        }
    }

    async fn read(source: &PgSource, slot: &str) -> Self {
        let catalog = source.read_catalog(&["app".into()]).await.unwrap();
        let (_, mut readers) = PgSnapshot::open(source.options(), 1, slot).await.unwrap();
        let reader = &mut readers[0];
        let mut model = Self::default();
        for r in read_table(
            reader,
            catalog.table(&TableName::new("app", "items")).unwrap(),
        )
        .await
        {
            model.items.insert(Self::key(&r), r);
        }
        model.bag = read_table(
            reader,
            catalog.table(&TableName::new("app", "bag")).unwrap(),
        )
        .await;
        model.bag.sort_by_key(|r| format!("{r:?}"));
        model
    }
}

async fn read_table(reader: &mut PgSnapshotReader, table: &Table) -> Vec<Row> {
    let names: Vec<String> = PgSnapshotReader::columns_read(table)
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut out = Vec::new();
    let chunk = Chunk::whole_table();
    let mut stream = reader.read_chunk(table, &chunk);
    while let Some(batch) = stream.next().await {
        for values in batch.unwrap().rows {
            out.push(names.iter().cloned().zip(values).collect());
        }
    }
    out
}

fn lsn(text: &str) -> Lsn {
    text.trim().parse().unwrap()
}

#[tokio::test]
async fn captures_every_kind_of_change_and_resumes_at_a_transaction_end() {
    let pg = dts_testkit::postgres();
    let db = dts_testkit::unique_name("pgcap");
    pg.create_database(&db).unwrap();
    pg.exec_in(&db, SETUP).unwrap();
    pg.exec(&format!(
        "ALTER DATABASE {db} SET logical_decoding_work_mem = '64kB'"
    ))
    .unwrap();
    let url = pg.url_for(&db);
    let source = PgSource::connect(&url).await.unwrap();
    let slot = db.clone();
    let publication = format!("{db}_pub");
    source
        .ensure_publication(
            &publication,
            &[TableName::new("app", "items"), TableName::new("app", "bag")],
        )
        .await
        .unwrap();

    // The permanent slot and its snapshot: the state replication starts from.
    let (snapshot, readers) =
        PgSnapshot::open_with(source.options(), 1, &slot, SlotLifetime::Permanent)
            .await
            .unwrap();
    let Position::Lsn(start) = snapshot.position else {
        panic!("not an lsn")
    };
    drop(readers);
    let mut model = Model::read(&source, &format!("{db}_s1")).await;
    assert_eq!(source.slot_position(&slot).await.unwrap(), Some(start));

    for sql in WORKLOAD {
        pg.exec_in(&db, sql).unwrap();
    }
    let end = lsn(&pg
        .query_in(&db, "SELECT pg_current_wal_insert_lsn()")
        .unwrap());

    // A spool file a killed process left behind is removed when capture starts.
    let stale = std::env::temp_dir().join("dts-pgstream-4194303999-7-0");
    std::fs::write(&stale, b"left behind").unwrap();

    let tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync> = Arc::new(selects);
    let mut capture =
        PgChangeSource::start(source.options(), &slot, &publication, start, tables.clone())
            .await
            .unwrap();
    assert!(!stale.exists(), "a stale spool file was left");
    let events = read_until(&mut capture, end).await;
    // Each selected table is described before its first change (and again where the
    // server sends its description again: in streamed transactions, after invalidations).
    let described: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.change {
            Change::Relation { table, .. } => Some(table.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(described[..2], ["items", "bag"], "{described:?}");
    assert!(described.iter().all(|t| t == "items" || t == "bag"));
    for e in &events {
        if let Change::Relation { .. } = &e.change {
            model.apply(&e.change);
        }
    }
    let events: Vec<ChangeEvent> = events
        .into_iter()
        .filter(|e| !matches!(e.change, Change::Relation { .. }))
        .collect();
    let txns = transactions(&events);
    // Every workload statement but the one on the table left out is one transaction.
    let summary: Vec<String> = txns
        .iter()
        .map(|(p, c)| {
            let kinds: Vec<String> = c
                .iter()
                .take(3)
                .map(|c| format!("{c:?}").chars().take(40).collect())
                .collect();
            format!("{p}: {} changes {kinds:?}", c.len())
        })
        .collect();
    assert_eq!(txns.len(), WORKLOAD.len() - 1, "{summary:#?}");
    for (_, changes) in &txns {
        for change in changes {
            model.apply(change);
        }
    }
    // The unchanged TOASTed value is not in the update; the old row of `bag` is whole.
    let Change::Update { after, .. } = &txns[1].1[0] else {
        panic!("{:?}", txns[1])
    };
    assert!(!after.columns.contains(&"big".to_string()), "{after:?}");
    assert!(after.columns.contains(&"note".to_string()));
    let Change::Update { before, .. } = &txns[2].1[0] else {
        panic!("{:?}", txns[2])
    };
    assert_eq!(before.values, vec![Value::Int(2), Value::Text("y".into())]);
    // The large transaction: the rolled back savepoint's rows are not there.
    let big = &txns[5].1;
    assert_eq!(
        big.iter()
            .filter(|c| matches!(c, Change::Insert { .. }))
            .count(),
        3000
    );
    let streamed: String = pg
        .query_in(
            &db,
            &format!(
                "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = '{slot}'"
            ),
        )
        .unwrap();
    assert!(
        streamed.trim().parse::<i64>().unwrap_or(0) >= 1,
        "the large transaction was not streamed: {streamed}"
    );

    // Value for value, the replayed changes give what a snapshot reads now.
    let mut now = Model::read(&source, &format!("{db}_s2")).await;
    model.bag.sort_by_key(|r| format!("{r:?}"));
    now.bag.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(model, now);

    // Feedback: the confirmed position reaches the slot.
    let (resume_at, _) = txns[2].clone();
    capture.feedback().confirm(&resume_at);
    let Position::Lsn(resume_lsn) = resume_at.clone() else {
        unreachable!()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = capture
            .next_events(100, Duration::from_millis(200))
            .await
            .unwrap();
        if source.slot_position(&slot).await.unwrap() == Some(resume_lsn) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot did not confirm {resume_lsn}"
        );
    }

    // A restart at a transaction's end delivers exactly the transactions after it.
    let pid = capture.backend_pid();
    drop(capture);
    let _ = source.end_slot_reader(&slot, Some(pid)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut again = loop {
        match PgChangeSource::start(
            source.options(),
            &slot,
            &publication,
            resume_lsn,
            tables.clone(),
        )
        .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // The resumed stream describes the tables again before their first changes.
    let replayed: Vec<ChangeEvent> = read_until(&mut again, end)
        .await
        .into_iter()
        .filter(|e| !matches!(e.change, Change::Relation { .. }))
        .collect();
    let replayed = transactions(&replayed);
    assert_eq!(replayed, txns[3..].to_vec());

    drop(again);
    assert!(source.drop_slot(&slot).await.unwrap());
    assert!(source.drop_publication(&publication).await.unwrap());
    assert_eq!(source.slot_position(&slot).await.unwrap(), None);
}
