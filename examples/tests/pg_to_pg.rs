//! PostgreSQL → PostgreSQL, schema and full load, through the `dts` command on real
//! servers: two databases of the testkit's private server (or of the server named by
//! `DTS_TEST_PG_URL`). Both sides are read with tokio-postgres, independently of dts's
//! readers and writers, and compared value for value in each type's own text form.
//!
//! `cargo test -p dts-examples --test pg_to_pg`

mod common;

use std::time::{Duration, Instant};

use common::{dts, text};
use tokio_postgres::NoTls;

const FIXTURE: &str = include_str!("../../fixtures/postgres/torture.sql");

/// A loaded source database and an empty target database.
struct PgPair {
    source_db: String,
    target_db: String,
    dir: std::path::PathBuf,
}

impl PgPair {
    fn new(prefix: &str, sql: &str) -> Self {
        let pg = dts_testkit::postgres();
        let source_db = dts_testkit::unique_name(&format!("{prefix}_src"));
        pg.create_database(&source_db).unwrap();
        pg.exec_in(&source_db, sql).unwrap();
        let target_db = dts_testkit::unique_name(&format!("{prefix}_dst"));
        pg.create_database(&target_db).unwrap();
        let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            source_db,
            target_db,
            dir,
        }
    }

    fn task_file(&self, include: &str, extra: &str) -> String {
        self.task_file_for("[\"schema\", \"full\"]", include, extra)
    }

    fn task_file_for(&self, migration: &str, include: &str, extra: &str) -> String {
        let pg = dts_testkit::postgres();
        let text = format!(
            "name = \"t\"\nmigration = {migration}\nsource.url = \"{}\"\n\
             target.url = \"{}\"\nobjects.include = [{include}]\n{extra}",
            pg.url_for(&self.source_db),
            pg.url_for(&self.target_db),
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&dts_testkit::postgres().url_for(db), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
                 SET IntervalStyle = 'postgres'; SET extra_float_digits = 3",
            )
            .await
            .unwrap();
        client
    }

    fn target(&self, sql: &str) -> String {
        dts_testkit::postgres()
            .query_in(&self.target_db, sql)
            .unwrap()
            .trim()
            .to_string()
    }
}

/// Every row of `table`, each column in its type's text form, sorted.
async fn rows(client: &tokio_postgres::Client, table: &str) -> Vec<Vec<Option<String>>> {
    let (schema, name) = table.split_once('.').unwrap();
    let columns: Vec<String> = client
        .query(
            "SELECT quote_ident(attname) FROM pg_attribute \
             WHERE attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
               AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&schema, &name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let list: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
    let mut out: Vec<Vec<Option<String>>> = client
        .query(&format!("SELECT {} FROM {table}", list.join(", ")), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get(i)).collect())
        .collect();
    out.sort();
    out
}

/// The catalog facts a schema migration must keep, one line each, sorted.
async fn schema_facts(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let queries = [
        // Columns: type, collation, not null, default, identity, generated.
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
             || ' coll=' || coalesce(co.collname, '-') || ' notnull=' || a.attnotnull \
             || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') \
             || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text \
             || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-') \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100 \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
        // Indexes and constraints as the server prints them.
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c \
         ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1",
        "SELECT c.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        // Enums and domains.
        "SELECT t.typname || ' ' || t.typtype::text || ' ' || \
             coalesce(format_type(t.typbasetype, t.typtypmod), '') || ' ' || \
             coalesce(pg_get_expr(t.typdefaultbin, 0), '-') || ' ' || t.typnotnull || ' ' || \
             coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum \
                       WHERE enumtypid = t.oid), '') || ' ' || \
             coalesce((SELECT string_agg(pg_get_constraintdef(oid), ',' ORDER BY conname) \
                       FROM pg_constraint WHERE contypid = t.oid), '') || ' ' || \
             coalesce(obj_description(t.oid, 'pg_type'), '-') \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = $1 AND t.typtype IN ('e', 'd')",
        // Table comments.
        "SELECT c.relname || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '-') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r'",
    ];
    let mut facts = Vec::new();
    for q in queries {
        for row in client.query(q, &[&schema]).await.unwrap() {
            facts.push(row.get::<_, String>(0));
        }
    }
    facts.sort();
    facts
}

/// Compares every table of `schema` on both sides; returns the number of rows.
async fn assert_same_data(pair: &PgPair, schema: &str) -> usize {
    let source = pair.client(&pair.source_db).await;
    let target = pair.client(&pair.target_db).await;
    let tables: Vec<String> = source
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname = $1 ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!tables.is_empty());
    let mut total = 0;
    for table in &tables {
        let expected = rows(&source, table).await;
        let actual = rows(&target, table).await;
        assert_eq!(expected.len(), actual.len(), "row count of {table}");
        for (e, a) in expected.iter().zip(&actual) {
            assert_eq!(e, a, "a row of {table}");
        }
        total += expected.len();
    }
    total
}

#[tokio::test]
async fn type_torture_fixture_is_copied_as_it_is() {
    let pair = PgPair::new("pgpg_torture", FIXTURE);
    let task = pair.task_file("\"tort\"", "full.rows_per_chunk = 3\nfull.workers = 3\n");

    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));

    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));

    let source = pair.client(&pair.source_db).await;
    let target = pair.client(&pair.target_db).await;
    assert_eq!(
        schema_facts(&source, "tort").await,
        schema_facts(&target, "tort").await
    );
    let copied = assert_same_data(&pair, "tort").await;
    assert!(copied >= 60, "{copied}");

    // Identity and serial columns continue past the copied values.
    // The source's sequence was ahead of the copied maximum (rows deleted): so is the
    // target's.
    assert_eq!(
        pair.target("INSERT INTO tort.parent (code) VALUES ('new') RETURNING id")
            .lines()
            .next()
            .unwrap(),
        "1001"
    );
    let next_id = pair.target("SELECT nextval(pg_get_serial_sequence('tort.everything', 'id'))");
    let max_id = pair.target("SELECT max(id) + 1 FROM tort.everything");
    assert_eq!(next_id, max_id);
    // Foreign key actions hold in the target.
    pair.target("DELETE FROM tort.parent WHERE code = 'p1'");
    assert_eq!(
        pair.target("SELECT count(*) FROM tort.child WHERE parent = 1"),
        "0"
    );

    // The finished task does nothing when run again.
    let again = dts(&["run", "--config", &task]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already finished"),
        "{}",
        text(&again)
    );
}

/// A table of the fixture's values in every built-in type (arrays, ranges, `inet`,
/// `money`, `xml`, … at their edges), enums and domains, with a date before year 1: each
/// of its columns passes between servers in its binary form.
const PASSING: &str = "
    CREATE TABLE tort.passing AS SELECT id, n, n2, n3, i2, i4, i8, f4, f8, b, t, vc, c, ts,
        tstz, ts3, d, tm, tmtz, iv, ivd, u, j, jb, by, bits, vbits, ia, ta, grid, mood, pos,
        lbl, ip, net, mac, rng, tsr, cash, doc, o, nm, ch, pt, tv FROM tort.everything;
    ALTER TABLE tort.passing ADD PRIMARY KEY (id);
    INSERT INTO tort.passing (id, d, ts, tstz, lbl)
    VALUES (1000, '0044-03-15 BC', '0044-03-15 12:00:00 BC', '4713-01-01 00:00:00+00 BC', 'bc');
";

/// `text` without its ANSI colour sequences.
fn plain(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn tables_copied_encoded_and_as_values_in_one_task_arrive_unchanged() {
    let pair = PgPair::new("pgpg_encoded", &format!("{FIXTURE}\n{PASSING}"));
    let task = pair.task_file("\"tort\"", "full.rows_per_chunk = 3\nfull.workers = 3\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .env("DTS_LOG", "dts::full=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = plain(&out.stderr);
    // Every column of these keeps its binary form; `everything` has arrays of an enum,
    // whose binary form names the enum's OID: its rows go as values.
    for (table, encoded) in [
        ("tort.passing", true),
        ("tort.parent", true),
        ("tort.child", true),
        ("tort.keyless", true),
        ("tort.everything", false),
    ] {
        let line = format!("table={table} encoded={encoded}");
        assert!(log.contains(&line), "no `{line}` in the log:\n{log}");
    }
    let copied = assert_same_data(&pair, "tort").await;
    assert!(copied >= 100, "{copied}");
    assert_eq!(
        pair.target("SELECT d::text || ' ' || ts::text FROM tort.passing WHERE id = 1000"),
        "0044-03-15 BC 0044-03-15 12:00:00 BC"
    );
}

#[tokio::test]
async fn renames_are_refused_before_anything_is_written() {
    let pair = PgPair::new("pgpg_rename", FIXTURE);
    let task = pair.task_file(
        "\"tort\"",
        "objects.rename_tables = { \"tort.parent\" = \"mother\" }\n",
    );
    let out = dts(&["run", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keeps every name as it is"),
        "{}",
        text(&out)
    );
    assert_eq!(
        pair.target("SELECT count(*) FROM pg_namespace WHERE nspname = 'tort'"),
        "0"
    );
}

/// Rows for the kill test: a composite key, a keyless table, arrays and ranges (copied in
/// text format) beside a table of binary-only types.
const KILL_FIXTURE: &str = "
    CREATE SCHEMA big;
    CREATE TYPE big.color AS ENUM ('red', 'green', 'blue');
    CREATE TABLE big.plain (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        n numeric, t text, ts timestamptz, u uuid, b bytea, c big.color
    );
    INSERT INTO big.plain (n, t, ts, u, b, c)
    SELECT g / 7.0, 'row ' || g || E'\\t\\\\', '2000-01-01'::timestamptz + g * interval '1 min',
           md5(g::text)::uuid, decode(md5(g::text), 'hex'),
           (ARRAY['red', 'green', 'blue'])[g % 3 + 1]::big.color
    FROM generate_series(1, 60000) g;
    CREATE TABLE big.mixed (
        a int, b int, tags text[], r int4range, ip inet, wait interval,
        PRIMARY KEY (a, b)
    );
    INSERT INTO big.mixed
    SELECT g % 97, g, ARRAY['x' || g, NULL, 'q\"uote'], int4range(g, g + 10),
           ('10.0.' || (g % 256) || '.' || (g % 200))::inet, g * interval '1 mon 1 day 1 sec'
    FROM generate_series(1, 60000) g;
    CREATE TABLE big.keyless (v text, w int[]);
    INSERT INTO big.keyless SELECT 'v' || (g % 1000), ARRAY[g, g] FROM generate_series(1, 30000) g;
";

#[tokio::test]
async fn sigkill_mid_copy_resumes_exactly() {
    let pair = PgPair::new("pgpg_kill", KILL_FIXTURE);
    // Throttled so the copy lasts long enough to be killed at chosen points.
    let task = pair.task_file(
        "\"big\"",
        "full.rows_per_chunk = 3000\nfull.workers = 2\nfull.max_rows_per_second = 30000\n",
    );
    let count = |sql: &str| -> i64 {
        dts_testkit::postgres()
            .query_in(&pair.target_db, sql)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let chunks_done = || count("SELECT count(*) FROM dts_meta.chunk WHERE task = 't'");
    let planned =
        || count("SELECT sum(jsonb_array_length(plan)) FROM dts_meta.chunk_plan WHERE task = 't'");
    common::kill_at_chunk_points(&task, &[10, 35, 65], chunks_done, planned).await;
    common::resume_after_kills(&task);
    assert_eq!(assert_same_data(&pair, "big").await, 150_000);
    // No temporary replication slot is left behind by the killed runs.
    assert_eq!(
        pair.target("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'dts_snapshot_%' AND NOT active"),
        "0"
    );
}

/// Tables for the replication test: a keyed table with large TOASTed values, a keyless
/// table with `REPLICA IDENTITY FULL`, both with columns of types that have no binary
/// encoding in dts (arrays, `inet`, ranges, `money`, `timetz`).
const CDC_FIXTURE: &str = "
    CREATE SCHEMA live;
    CREATE TYPE live.mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE live.items (
        id bigint PRIMARY KEY, note text, big text, n numeric, ts timestamptz,
        mood live.mood, raw bytea, tags text[], addr inet, span int4range, price money,
        at timetz, days date[]
    );
    ALTER TABLE live.items ALTER COLUMN big SET STORAGE EXTERNAL;
    INSERT INTO live.items
    SELECT g, 'row ' || g, CASE WHEN g <= 200 THEN repeat(md5(g::text), 200) END, g / 7.0,
           '2000-01-01'::timestamptz + g * interval '1 min',
           (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::live.mood, decode(md5(g::text), 'hex'),
           ARRAY['t' || g, 'with \"quote', NULL], ('10.0.' || g % 256 || '.1/24')::inet,
           int4range(g, g + 10), (g / 100.0)::money, '12:34:56.789+05:30'::timetz,
           ARRAY['2024-02-29'::date + g, 'infinity']
    FROM generate_series(1, 20000) g;
    CREATE TABLE live.bag (a int, b text, c int[]);
    ALTER TABLE live.bag REPLICA IDENTITY FULL;
    INSERT INTO live.bag SELECT g % 10, 'b' || g, ARRAY[g, g % 3] FROM generate_series(1, 100) g;
";

/// The `i`-th statement of the mixed write workload: rows changes, with column changes
/// (which logical decoding shows only as relation descriptions) at a few points.
fn cdc_statement(i: u64) -> String {
    let k = i * 37 % 20_000 + 1;
    match i {
        // A fast default: the rows already there hold 'fast' without a logged change.
        20 => return "ALTER TABLE live.items ADD COLUMN extra text DEFAULT 'fast'".into(),
        45 => return "ALTER TABLE live.items ADD COLUMN tally int".into(),
        46 => return "UPDATE live.items SET tally = id % 7 WHERE id <= 300".into(),
        60 => return "ALTER TABLE live.bag ADD COLUMN d int".into(),
        // An original column (a column added and dropped again while replication lags
        // behind stops it, naming the column: its description can no longer be read).
        70 => return "ALTER TABLE live.items DROP COLUMN raw".into(),
        90 => return "ALTER TABLE live.items ALTER COLUMN n TYPE numeric(40,12)".into(),
        // Rows before and after a column change in one transaction.
        110 => {
            return "BEGIN; INSERT INTO live.items (id, note) VALUES (7000001, 'before'); \
                    ALTER TABLE live.items ADD COLUMN late int NOT NULL DEFAULT 3; \
                    INSERT INTO live.items (id, note, late) VALUES (7000002, 'after', 9); \
                    UPDATE live.bag SET d = a WHERE a < 5; COMMIT"
                .into()
        }
        _ => {}
    }
    match i % 8 {
        _ if i % 25 == 24 => format!(
            // Larger than logical_decoding_work_mem: streamed before it commits.
            "BEGIN; INSERT INTO live.items (id, note, n) \
             SELECT {} + g, md5(g::text), g FROM generate_series(1, 3000) g; \
             UPDATE live.items SET n = n + 1, note = note || '+' WHERE id BETWEEN {k} AND {k} + 300; \
             COMMIT",
            1_000_000 + i * 10_000
        ),
        _ if i % 40 == 39 => "TRUNCATE live.bag".to_string(),
        0 => format!(
            "INSERT INTO live.items (id, note, n, tags, addr, span, price, at, days) \
             VALUES ({}, 'w{i}', {i} / 3.0, '{{a,\"b c\",NULL}}', '::1', '[1,{}]', {i}.25, \
             '23:59:59-11', '{{2000-01-01,-infinity}}')",
            100_000 + i,
            i + 1
        ),
        // Rows with a large value: the update leaves it unchanged.
        1 => format!(
            "UPDATE live.items SET note = 'u{i}', mood = 'ok', tags = tags || 'u{i}'::text, \
             span = int4range({i}, NULL) WHERE id = {}",
            i % 200 + 1
        ),
        2 => format!("DELETE FROM live.items WHERE id = {}", i * 53 % 20_000 + 201),
        3 => format!("INSERT INTO live.bag VALUES ({}, 'b{i}', '{{{i},7}}')", i % 10),
        4 => format!(
            "UPDATE live.bag SET b = b || 'x' \
             WHERE ctid = (SELECT ctid FROM live.bag WHERE a = {} LIMIT 1)",
            i % 10
        ),
        5 => format!(
            "DELETE FROM live.bag WHERE ctid = (SELECT ctid FROM live.bag WHERE a = {} LIMIT 1)",
            (i + 3) % 10
        ),
        6 => format!("UPDATE live.items SET id = id + 5000000 WHERE id = {k} + 200"),
        _ => format!(
            "UPDATE live.items SET big = repeat('n{i}', 3000), ts = now() WHERE id = {}",
            i % 200 + 1
        ),
    }
}

/// Three SIGKILLs and a SIGTERM under the mixed workload (streamed transactions, column
/// changes, a keyless table), then catching up and a value-for-value comparison. A kill just
/// after a batch's `COMMIT` was sent leaves the server committing it after the client is
/// gone: the next run waits for that before it reads the applied position (a keyless row
/// deleted twice showed it, one run in about ten, under load).
#[tokio::test]
async fn replication_under_writes_survives_sigkill_and_sigterm_and_catches_up() {
    let pair = PgPair::new("pgpg_cdc", CDC_FIXTURE);
    let pg = dts_testkit::postgres();
    pg.exec(&format!(
        "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
        pair.source_db
    ))
    .unwrap();
    let task = pair.task_file_for(
        "[\"schema\", \"full\", \"incremental\"]",
        "\"live\"",
        "incremental.max_batch_rows = 500\n",
    );
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));

    // The workload runs all along, from before the snapshot to the end.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let stop = stop.clone();
        let written = written.clone();
        let db = pair.source_db.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                dts_testkit::postgres()
                    .exec_in(&db, &cdc_statement(i))
                    .unwrap();
                i += 1;
                written.store(i, std::sync::atomic::Ordering::Relaxed);
            }
            i
        })
    };
    let applied = || {
        dts_testkit::postgres()
            .query_in(
                &pair.target_db,
                "SELECT position->>'lsn' FROM dts_meta.cdc_position \
                 WHERE task = 't' AND applied_at IS NOT NULL",
            )
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for round in 0..3 {
        let log = pair.dir.join(format!("run-{round}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(["run", "--config", &task])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Replication applies some batches, then the process is killed.
        let first = applied();
        let started = Instant::now();
        let mut advanced = 0;
        while advanced < 3 + round {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(started.elapsed() < Duration::from_secs(180), "no progress");
            let now = applied();
            if !now.is_empty() && now != first {
                advanced += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // SIGTERM stops a run cleanly, under writes.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = applied();
    let started = Instant::now();
    while applied() == first {
        assert!(child.try_wait().unwrap().is_none(), "the run ended");
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "SIGTERM did not stop the run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0), "SIGTERM did not stop dts cleanly");
    // Every column change of the workload is made.
    let started = Instant::now();
    while written.load(std::sync::atomic::Ordering::Relaxed) < 130 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the workload stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statements = writer.join().unwrap();
    assert!(statements >= 130, "{statements}");

    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // The column changes were followed: same columns, types and NOT NULL on both sides.
    let columns = "SELECT string_agg(format('%s.%s %s%s', attrelid::regclass, attname, \
                   format_type(atttypid, atttypmod), CASE WHEN attnotnull THEN ' not null' END), \
                   ', ' ORDER BY attrelid::regclass::text, attnum) FROM pg_attribute \
                   WHERE attrelid IN ('live.items'::regclass, 'live.bag'::regclass) \
                   AND attnum > 0 AND NOT attisdropped";
    let source_columns = pg.query_in(&pair.source_db, columns).unwrap();
    assert_eq!(source_columns, pair.target(columns));
    assert!(
        source_columns.contains("n numeric(40,12)"),
        "{source_columns}"
    );
    assert!(
        source_columns.contains("late integer not null"),
        "{source_columns}"
    );
    assert!(source_columns.contains("extra text"), "{source_columns}");
    assert!(!source_columns.contains(" raw "), "{source_columns}");
    let rows = assert_same_data(&pair, "live").await;
    assert!(rows > 1000, "{rows}");

    // The task's slot is on the source until the task is cleaned up.
    let slots = || {
        pg.query_in(
            &pair.source_db,
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE database = '{}'",
                pair.source_db
            ),
        )
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(slots(), "1");
    // Transactions larger than logical_decoding_work_mem came streamed.
    let streamed: i64 = pg
        .query_in(
            &pair.source_db,
            "SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots \
             WHERE slot_name LIKE 'dts\\_t\\_%'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(streamed > 0, "no transaction was streamed");
    let clean = dts(&["cleanup", "--config", &task, "--yes"]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(
        text(&clean).contains("replication slot"),
        "{}",
        text(&clean)
    );
    assert_eq!(slots(), "0");
}

/// What a relation description cannot show is refused by name, and the slot keeps the
/// changes: a renamed column (which a drop and an add would empty in the target), and a
/// column added with a volatile default (the table rewrite that fills it is not logged).
#[tokio::test]
async fn column_changes_the_log_cannot_show_stop_replication_naming_them() {
    for (change, expected) in [
        (
            "ALTER TABLE r.t RENAME COLUMN b TO bee",
            "column `b` was renamed to `bee`",
        ),
        (
            "ALTER TABLE r.t ADD COLUMN u uuid DEFAULT gen_random_uuid()",
            "new column `u` has a default",
        ),
    ] {
        let pair = PgPair::new(
            "pgpg_relation",
            "CREATE SCHEMA r; CREATE TABLE r.t (id int PRIMARY KEY, b text); \
             INSERT INTO r.t SELECT g, 'b' || g FROM generate_series(1, 10) g;",
        );
        let task = pair.task_file_for("[\"schema\", \"full\", \"incremental\"]", "\"r\"", "");
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert!(out.status.success(), "{}", text(&out));
        dts_testkit::postgres()
            .exec_in(
                &pair.source_db,
                &format!("{change}; INSERT INTO r.t (id) VALUES (11)"),
            )
            .unwrap();
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains(expected), "{said}");
        assert!(said.contains("`r.t`"), "{said}");
        // Nothing of the change was applied.
        assert_eq!(pair.target("SELECT count(*) FROM r.t"), "10");
        let clean = dts(&["cleanup", "--config", &task, "--yes"]);
        assert!(clean.status.success(), "{}", text(&clean));
    }
}

/// The precheck warns about replication slots and publications an earlier task left on the
/// source (an inactive slot holds back WAL until the disk fills), naming them and how to
/// drop them; this task's own are not listed.
#[tokio::test]
async fn the_precheck_warns_about_slots_and_publications_earlier_tasks_left() {
    let pair = PgPair::new(
        "pgpg_left",
        "CREATE SCHEMA r; CREATE TABLE r.t (id int PRIMARY KEY);",
    );
    let pg = dts_testkit::postgres();
    let gone = dts_testkit::unique_name("dts_gone");
    pg.exec_in(
        &pair.source_db,
        &format!(
            "SELECT pg_create_logical_replication_slot('{gone}', 'pgoutput'); \
             CREATE PUBLICATION {gone} FOR TABLE r.t"
        ),
    )
    .unwrap();
    let task = pair.task_file_for("[\"schema\"]", "\"r\"", "");
    let out = dts(&["precheck", "--config", &task]);
    // Dropped before asserting: slots are server-wide and hold back WAL.
    pg.exec_in(
        &pair.source_db,
        &format!("SELECT pg_drop_replication_slot('{gone}'); DROP PUBLICATION {gone}"),
    )
    .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.contains("source.leftovers"))
        .unwrap_or_else(|| panic!("no source.leftovers check: {shown}"));
    assert!(
        line.contains(&format!("inactive replication slots {gone} (database"))
            && line.contains(&format!("publications in this database {gone}")),
        "{shown}"
    );
    assert!(shown.contains("pg_drop_replication_slot"), "{shown}");
    // Once dropped, nothing is listed.
    let out = dts(&["precheck", "--config", &task]);
    let shown = text(&out);
    assert!(!shown.contains(&gone), "{shown}");
}

/// A table truncated (or rewritten) on the source after the full load's snapshot, before
/// its copy, would be seen empty by the snapshot while replication replays changes to rows
/// it never copied. The full load holds its tables against such changes: the `TRUNCATE`
/// waits for the copy, replication then applies it, and the target ends exactly as the
/// source, keyless table included. (A change that slips in between the snapshot and the
/// hold is found by the reader, and the table copied from a new snapshot: `pg_source`.)
#[tokio::test]
async fn a_table_truncated_during_the_full_load_waits_for_its_copy() {
    let pair = PgPair::new(
        "pgpg_trunc",
        "CREATE SCHEMA w;
         CREATE TABLE w.aaa (id int PRIMARY KEY, v text);
         INSERT INTO w.aaa SELECT g, 'a' || g FROM generate_series(1, 20000) g;
         CREATE TABLE w.zzz (a int, b text);
         ALTER TABLE w.zzz REPLICA IDENTITY FULL;
         INSERT INTO w.zzz SELECT g % 7, 'z' || g FROM generate_series(1, 300) g;",
    );
    let task = pair.task_file_for(
        "[\"schema\", \"full\", \"incremental\"]",
        "\"w\"",
        "full.workers = 1\nfull.rows_per_chunk = 1000\nfull.max_rows_per_second = 4000\n",
    );
    let log = pair.dir.join("run.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Once the first chunk of `aaa` is in, the snapshot is taken and `zzz` not read yet
    // (one worker, tables in order, `aaa` throttled to about five seconds).
    let started = Instant::now();
    loop {
        let done = dts_testkit::postgres()
            .query_in(
                &pair.target_db,
                "SELECT count(*) FROM dts_meta.chunk WHERE table_name = 'aaa'",
            )
            .unwrap_or_default();
        if done.trim().parse::<u32>().unwrap_or(0) >= 1 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended");
        assert!(started.elapsed() < Duration::from_secs(60), "no chunk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pg = dts_testkit::postgres();
    let truncating = Instant::now();
    pg.exec_in(
        &pair.source_db,
        "INSERT INTO w.zzz VALUES (1, 'before'); DELETE FROM w.zzz WHERE b = 'z7'; \
         TRUNCATE w.zzz; INSERT INTO w.zzz VALUES (2, 'after'), (2, 'after'), (3, NULL); \
         DELETE FROM w.zzz WHERE a = 3; UPDATE w.aaa SET v = 'changed' WHERE id = 20000",
    )
    .unwrap();
    // The copy of `aaa` had about four seconds to go: the TRUNCATE waited for it.
    let waited = truncating.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "the TRUNCATE did not wait for the copy ({waited:?})"
    );
    // Replication applies what came after; then the run stops and catches up.
    let started = Instant::now();
    while pair.target("SELECT count(*) FROM dts_meta.cdc_position WHERE applied_at IS NOT NULL")
        != "1"
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no replication"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        pair.target("SELECT string_agg(a || ':' || b, ',' ORDER BY a, b) FROM w.zzz"),
        "2:after,2:after"
    );
    assert_eq!(
        pair.target("SELECT v FROM w.aaa WHERE id = 20000"),
        "changed"
    );
    assert_same_data(&pair, "w").await;
    let clean = dts(&["cleanup", "--config", &task, "--yes"]);
    assert!(clean.status.success(), "{}", text(&clean));
}
