//! SQLite → PostgreSQL and SQLite → MariaDB, schema and full load, through the `dts`
//! command: a SQLite file made by the `sqlite3` command line tool (fixture
//! `fixtures/sqlite/shop.sql`: every affinity, NULLs, blobs, unicode, the extreme integers
//! and reals) into the testkit's private servers. Both ends are read independently of
//! dts's readers and writers — SQLite by `sqlite3`, the targets by `psql` and `mariadb` —
//! and compared value for value: texts and blobs as hex, reals as the doubles they print,
//! decimals as numbers. Misfit values stop the load naming table, column and key, are
//! rejected under `full.bad_rows = "reject"`, and are reported by the precheck's value
//! scan; incremental migration is refused; a missing file errors clearly; a load killed
//! (SIGKILL) four times resumes exactly.
//!
//! `cargo test -p dts-examples --test sqlite`

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{dts, text};

const FIXTURE: &str = include_str!("../../fixtures/sqlite/shop.sql");

fn sqlite3(path: &Path, args: &[&str], sql: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("sqlite3")
        .args(args)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 command line tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A SQLite file, and a target database for it.
struct Case {
    file: PathBuf,
    target_db: String,
    dir: PathBuf,
    mysql: bool,
}

impl Case {
    fn new(prefix: &str, sql: &str, mysql: bool) -> Self {
        let target_db = dts_testkit::unique_name(prefix);
        if !mysql {
            dts_testkit::postgres().create_database(&target_db).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("dts-test-{target_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("source.db");
        let _ = std::fs::remove_file(&file);
        sqlite3(&file, &[], sql);
        Self {
            file,
            target_db,
            dir,
            mysql,
        }
    }

    fn task_file(&self, migration: &str, extra: &str) -> String {
        let (target, rename) = if self.mysql {
            (
                dts_testkit::mariadb().url(),
                format!(
                    "objects.rename_databases = {{ \"main\" = \"{}\" }}\n",
                    self.target_db
                ),
            )
        } else {
            (
                dts_testkit::postgres().url_for(&self.target_db),
                String::new(),
            )
        };
        let text = format!(
            "name = \"{}\"\nmigration = {migration}\nsource.url = \"sqlite://{}\"\n\
             target.url = \"{target}\"\nobjects.include = [\"main\"]\n{rename}{extra}",
            self.target_db,
            self.file.display(),
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Rows of a target query, fields split.
    fn target(&self, sql: &str) -> Vec<Vec<String>> {
        if self.mysql {
            let out = dts_testkit::mariadb()
                .query_in(&self.target_db, sql)
                .unwrap();
            out.lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect()
        } else {
            let out = dts_testkit::postgres()
                .query_in(&self.target_db, &format!("SET search_path = main; {sql}"))
                .unwrap();
            out.lines()
                .filter(|l| !l.is_empty() && *l != "SET")
                .map(|l| l.split('|').map(str::to_string).collect())
                .collect()
        }
    }

    /// Rows of a source query, fields split.
    fn source(&self, sql: &str) -> Vec<Vec<String>> {
        let out = sqlite3(&self.file, &["-separator", "|", "-nullvalue", "NULL"], sql);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }
}

/// How a column is compared.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    /// Text, compared as hex of its UTF-8.
    Text,
    Blob,
    Decimal,
    Bool,
    /// Dates and timestamps, compared after normalising the separator and fraction.
    Time,
}

/// One column's expression in SQLite, PostgreSQL and MariaDB.
fn exprs(c: &str, k: Kind) -> (String, String, String) {
    let q = format!("\"{c}\"");
    let m = format!("`{c}`");
    match k {
        Kind::Int | Kind::Decimal | Kind::Time => (q.clone(), format!("{q}::text"), m),
        Kind::Float => (format!("printf('%!.17g', {q})"), format!("{q}::text"), m),
        Kind::Text => (
            format!("hex({q})"),
            format!("encode(convert_to({q}, 'UTF8'), 'hex')"),
            format!("HEX({m})"),
        ),
        Kind::Blob => (
            format!("hex({q})"),
            format!("encode({q}, 'hex')"),
            format!("HEX({m})"),
        ),
        Kind::Bool => (q.clone(), format!("{q}::int::text"), m),
    }
}

fn normal(v: &str, k: Kind) -> String {
    if v == "NULL" {
        return "NULL".into();
    }
    match k {
        Kind::Float => {
            let f: f64 = v.parse().unwrap_or_else(|_| panic!("a float: {v}"));
            // -0 and 0 are equal (MariaDB stores -0 as 0).
            format!("{:?}", if f == 0.0 { 0.0 } else { f })
        }
        Kind::Text | Kind::Blob => v.to_ascii_lowercase(),
        Kind::Decimal => {
            let v = &plain(v);
            let s = if v.contains('.') {
                v.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                v.to_string()
            };
            if s == "-0" {
                "0".into()
            } else {
                s
            }
        }
        Kind::Time => {
            let s = v.replace('T', " ");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
        Kind::Int | Kind::Bool => v.to_string(),
    }
}

/// `1.0e+20` as `100000000000000000000.0`: the digits of an exponent form written out.
fn plain(v: &str) -> String {
    let Some((m, e)) = v
        .to_ascii_lowercase()
        .split_once('e')
        .map(|(a, b)| (a.to_string(), b.to_string()))
    else {
        return v.to_string();
    };
    let e: i32 = e.parse().unwrap();
    let (neg, m) = m
        .strip_prefix('-')
        .map_or((false, m.as_str()), |r| (true, r));
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    let digits = format!("{int}{frac}");
    let point = i32::try_from(int.len()).unwrap() + e;
    let mut out = String::from(if neg { "-" } else { "" });
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(usize::try_from(-point).unwrap()));
        out.push_str(&digits);
    } else if usize::try_from(point).unwrap() >= digits.len() {
        out.push_str(&digits);
        out.push_str(&"0".repeat(usize::try_from(point).unwrap() - digits.len()));
        out.push_str(".0");
    } else {
        let p = usize::try_from(point).unwrap();
        out.push_str(&digits[..p]);
        out.push('.');
        out.push_str(&digits[p..]);
    }
    out
}

/// Compares a table value for value; returns the number of rows.
fn assert_same(case: &Case, table: &str, order: &str, cols: &[(&str, Kind)]) -> usize {
    let (s, p, m): (Vec<_>, Vec<_>, Vec<_>) = {
        let mut s = Vec::new();
        let mut p = Vec::new();
        let mut m = Vec::new();
        for (c, k) in cols {
            let (a, b, d) = exprs(c, *k);
            s.push(format!(
                "CASE WHEN \"{c}\" IS NULL THEN 'NULL' ELSE {a} END"
            ));
            p.push(b);
            m.push(d);
        }
        (s, p, m)
    };
    let source = case.source(&format!(
        "SELECT {} FROM \"{table}\" ORDER BY {order}",
        s.join(", ")
    ));
    let target_sql = if case.mysql {
        format!("SELECT {} FROM `{table}` ORDER BY {order}", m.join(", "))
    } else {
        let p: Vec<String> = p.iter().map(|e| format!("COALESCE({e}, 'NULL')")).collect();
        format!("SELECT {} FROM \"{table}\" ORDER BY {order}", p.join(", "))
    };
    let target = case.target(&target_sql);
    assert_eq!(source.len(), target.len(), "rows of {table}");
    for (sr, tr) in source.iter().zip(&target) {
        for (i, (c, k)) in cols.iter().enumerate() {
            let (a, b) = (normal(&sr[i], *k), normal(&tr[i], *k));
            if let (Kind::Float, Ok(x), Ok(y)) = (k, a.parse::<f64>(), b.parse::<f64>()) {
                // sqlite3's printf is exact to about 16 digits only: the doubles may differ
                // in their last bit as printed, never more.
                assert!(
                    x == y || (x - y).abs() <= 2.0 * f64::EPSILON * x.abs().max(y.abs()),
                    "{table}.{c}: {a} vs {b} in source row {sr:?}, target row {tr:?}"
                );
                continue;
            }
            assert_eq!(a, b, "{table}.{c} in source row {sr:?}, target row {tr:?}");
        }
    }
    source.len()
}

fn compare_fixture(case: &Case) {
    use Kind::*;
    assert_eq!(
        assert_same(
            case,
            "customers",
            "id",
            &[
                ("id", Int),
                ("name", Text),
                ("email", Text),
                ("created", Time),
                ("active", Bool)
            ]
        ),
        2
    );
    assert_eq!(
        assert_same(
            case,
            "kinds",
            "seq",
            &[
                ("seq", Int),
                ("i", Int),
                ("t", Text),
                ("b", Blob),
                ("r", Float),
                ("n", Decimal),
                ("d", Decimal),
                ("v", Text),
                ("dt", Time),
                ("ts", Time),
            ]
        ),
        5
    );
    assert_eq!(
        assert_same(case, "tags", "v IS NULL, v", &[("k", Text), ("v", Int)]),
        3
    );
    assert_eq!(
        assert_same(
            case,
            "strict_t",
            "id",
            &[("id", Int), ("r", Float), ("t", Text), ("b", Blob)]
        ),
        3
    );
    // The typeless and ANY columns: text holding each value's text.
    let untyped: Vec<String> = case
        .target("SELECT COALESCE(untyped, 'NULL') FROM kinds ORDER BY seq")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(untyped, ["7", "text", "2.5", "NULL", "-12"]);
    let any: Vec<String> = case
        .target("SELECT a FROM strict_t ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(any, ["5", "text", "2.5"]);
}

#[tokio::test]
async fn sqlite_to_postgres_schema_and_full_load() {
    let case = Case::new("sqlite_pg", FIXTURE, false);
    let task = case.task_file("[\"schema\", \"full\"]", "");
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));
    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));
    compare_fixture(&case);
    use Kind::*;
    assert_eq!(
        assert_same(
            &case,
            "orders",
            "id",
            &[
                ("id", Int),
                ("customer_id", Int),
                ("qty", Int),
                ("price", Float),
                ("tag", Text),
                ("total", Float)
            ]
        ),
        3
    );
    // Types, identity past the AUTOINCREMENT counter, defaults, foreign keys, indexes.
    let types = case.target(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'main' AND table_name = 'kinds' ORDER BY ordinal_position",
    );
    let types: Vec<String> = types.iter().map(|r| format!("{}:{}", r[0], r[1])).collect();
    assert_eq!(
        types,
        [
            "seq:bigint",
            "i:bigint",
            "t:text",
            "b:bytea",
            "r:double precision",
            "n:numeric",
            "d:numeric",
            "untyped:text",
            "v:character varying",
            "dt:date",
            "ts:timestamp without time zone"
        ]
    );
    // Verification from a SQLite source: equal, then a row only the target has.
    let verify = dts(&["verify", "--config", &task]);
    assert!(verify.status.success(), "{}", text(&verify));
    let next = case.target("INSERT INTO customers (name) VALUES ('new') RETURNING id, active::int");
    assert_eq!(next, [["4", "1"]]);
    let fks = case.target(
        "SELECT conname, confdeltype, confupdtype FROM pg_constraint WHERE contype = 'f' \
         AND conrelid = 'main.orders'::regclass ORDER BY conname",
    );
    let mut actions: Vec<String> = fks.iter().map(|r| format!("{}{}", r[1], r[2])).collect();
    actions.sort();
    assert_eq!(actions, ["aa", "cr"], "{fks:?}");
    let idx = case.target("SELECT indexname FROM pg_indexes WHERE schemaname = 'main' ORDER BY 1");
    let idx: Vec<&str> = idx.iter().map(|r| r[0].as_str()).collect();
    assert!(
        idx.contains(&"orders_customer") && idx.contains(&"customers_email_key"),
        "{idx:?}"
    );
    assert!(!idx.contains(&"orders_big"), "{idx:?}");

    let verify = dts(&["verify", "--config", &task]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("extra in target: 1\n    (id=4)"),
        "{}",
        text(&verify)
    );
}

#[tokio::test]
async fn sqlite_to_mariadb_schema_and_full_load() {
    // MariaDB takes no generated columns from SQLite (refused by name, tested below).
    let fixture = FIXTURE.replace(
        ",\n    total REAL GENERATED ALWAYS AS (qty * price) VIRTUAL",
        "",
    );
    let case = Case::new("sqlite_my", &fixture, true);
    let task = case.task_file("[\"schema\", \"full\"]", "");
    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));
    compare_fixture(&case);
    use Kind::*;
    assert_same(
        &case,
        "orders",
        "id",
        &[
            ("id", Int),
            ("customer_id", Int),
            ("qty", Int),
            ("price", Float),
            ("tag", Text),
        ],
    );
    let cols = case.target(
        "SELECT column_name, column_type FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = 'kinds' ORDER BY ordinal_position",
    );
    let cols: Vec<String> = cols.iter().map(|r| format!("{}:{}", r[0], r[1])).collect();
    assert!(
        cols.contains(&"r:double".to_string()) && cols.contains(&"b:longblob".to_string()),
        "{cols:?}"
    );
    let verify = dts(&["verify", "--config", &task]);
    assert!(verify.status.success(), "{}", text(&verify));

    let generated = Case::new("sqlite_my_gen", FIXTURE, true);
    let task = generated.task_file("[\"schema\", \"full\"]", "");
    let out = dts(&["precheck", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("generated column `main.orders.total`"),
        "{}",
        text(&out)
    );
}

const MISFITS: &str = "
CREATE TABLE m (id INTEGER PRIMARY KEY, n INTEGER, t TEXT, d DECIMAL(5,2));
INSERT INTO m VALUES (1, 1, 'ok', 1.5), (2, 'two', 'ok', 2), (3, 3.5, 'ok', 3), (4, 4, x'ff', 4),
    (5, 5, CAST(x'ff00' AS TEXT), 5), (6, 6, 'ok', 1234.5), (7, 7, 'ok', 0.125), (8, 8, 'fine', 8);
";

#[tokio::test]
async fn misfit_values_are_reported_stop_the_load_and_are_rejected() {
    let case = Case::new("sqlite_bad", MISFITS, false);
    let task = case.task_file("[\"schema\", \"full\"]", "");
    let pre = dts(&["precheck", "--config", &task]);
    let report = text(&pre);
    assert_eq!(pre.status.code(), Some(1), "{report}");
    for expected in [
        "`main.m`.`n`: 2 values, first at (id=2): a sqlite text value cannot be stored in `bigint`",
        "`main.m`.`t`: 2 values, first at (id=4): a sqlite blob (or non-utf-8 text) value cannot be stored in `text`",
        "`main.m`.`d`: 2 values, first at (id=6): value `1234.5` out of range for `numeric(5,2)`",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
    // The copy stops on the first, naming table, column and key.
    let run = dts(&["run", "--config", &task]);
    let all = text(&run);
    assert_eq!(run.status.code(), Some(1), "{all}");
    assert!(
        all.contains("main.m") && all.contains("`n`") && all.contains("id=2"),
        "{all}"
    );

    // Rejected rows go to the reject file; the others are copied.
    let reject = case.dir.join("rejects.tsv");
    let task = case.task_file(
        "[\"schema\", \"full\"]",
        &format!(
            "full.bad_rows = \"reject\"\nfull.reject_file = \"{}\"\npolicy.conflicting_tables = \"drop\"\n",
            reject.display()
        ),
    );
    let run = dts(&["run", "--config", &task]);
    assert!(run.status.success(), "{}", text(&run));
    let ids = case.target("SELECT id, n, t, d FROM m ORDER BY id");
    assert_eq!(ids, [["1", "1", "ok", "1.50"], ["8", "8", "fine", "8.00"]]);
    let rejected = std::fs::read_to_string(&reject).unwrap();
    assert_eq!(rejected.lines().count(), 6, "{rejected}");
}

#[tokio::test]
async fn incremental_is_refused_and_a_missing_file_is_named() {
    let case = Case::new(
        "sqlite_inc",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);",
        false,
    );
    let task = case.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let pre = dts(&["precheck", "--config", &task]);
    assert_eq!(pre.status.code(), Some(1), "{}", text(&pre));
    assert!(
        text(&pre).contains("SQLite keeps no change log"),
        "{}",
        text(&pre)
    );

    std::fs::remove_file(&case.file).unwrap();
    let task = case.task_file("[\"schema\", \"full\"]", "");
    let run = dts(&["run", "--config", &task]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        text(&run).contains(&format!(
            "SQLite file `{}` does not exist",
            case.file.display()
        )),
        "{}",
        text(&run)
    );
}

/// Killed (SIGKILL) during start-up and then after a quarter, half and three quarters of
/// the chunks committed, the load resumes each time where it was and ends with every row
/// exactly once: amounts stored as reals into `numeric(12,2)`, text, blobs, timestamps and
/// NULLs, compared value for value, then verified by `dts verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_the_load_resumes_exactly() {
    const ROWS: usize = 40_000;
    let case = Case::new(
        "sqlite_kill",
        &format!(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount DECIMAL(12,2), \
               note VARCHAR(40), created DATETIME, raw BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO orders
             SELECT i, CASE WHEN i % 97 = 0 THEN NULL ELSE ((i * 7919) % 10000000) / 100.0 END,
               'note ' || i || ' – ü', datetime(1600000000 + i * 61, 'unixepoch'),
               CASE WHEN i % 5 = 0 THEN randomblob(8) END
             FROM n;"
        ),
        false,
    );
    let task = case.task_file(
        "[\"schema\", \"full\"]",
        "full.rows_per_chunk = 1000\nfull.workers = 2\nfull.max_rows_per_second = 10000\n",
    );
    let count = |sql: &str| -> i64 {
        dts_testkit::postgres()
            .query_in(&case.target_db, sql)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let chunks_done = || count("SELECT count(*) FROM dts_meta.chunk");
    let planned = || count("SELECT sum(jsonb_array_length(plan)) FROM dts_meta.chunk_plan");
    common::kill_at_chunk_points(&task, &[-1, 25, 50, 75], chunks_done, planned).await;
    common::resume_after_kills(&task);
    use Kind::*;
    let cols = [
        ("id", Int),
        ("amount", Decimal),
        ("note", Text),
        ("created", Time),
        ("raw", Blob),
    ];
    assert_eq!(assert_same(&case, "orders", "id", &cols), ROWS);
    let verify = dts(&["verify", "--config", &task]);
    assert!(verify.status.success(), "{}", text(&verify));
}
