//! Shared helpers for the end-to-end tests: private servers, task files, and a
//! value-for-value comparison of a MySQL table with its PostgreSQL copy that reads both
//! servers through their own drivers, independently of dts's readers and writers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use mysql_async::prelude::*;

/// A source database loaded with SQL and an empty target database, on the shared servers.
pub struct Env {
    /// Source database name (also the target schema name).
    pub db: String,
    /// Target database name.
    pub target_db: String,
    /// A scratch directory for task files and reject files.
    pub dir: PathBuf,
}

impl Env {
    /// Creates the databases and loads `sql` into the source.
    pub fn new(prefix: &str, sql: &str) -> Env {
        let my = dts_testkit::mariadb();
        let pg = dts_testkit::postgres();
        let db = my.create_unique_database(prefix).unwrap();
        if !sql.is_empty() {
            my.exec_in(&db, sql).unwrap();
        }
        let target_db = dts_testkit::unique_name(prefix);
        pg.create_database(&target_db).unwrap();
        let dir = std::env::temp_dir().join(format!("dts-test-{db}"));
        std::fs::create_dir_all(&dir).unwrap();
        Env { db, target_db, dir }
    }

    /// The source URL with the database.
    pub fn mysql_url(&self) -> String {
        dts_testkit::mariadb().url_for(&self.db)
    }

    /// The target URL.
    pub fn pg_url(&self) -> String {
        dts_testkit::postgres().url_for(&self.target_db)
    }

    /// Writes a task file selecting the source database, with `extra` TOML appended.
    pub fn task_file(&self, migration: &str, extra: &str) -> PathBuf {
        let text = format!(
            "name = \"t\"\nmigration = {migration}\nsource.url = \"{}\"\n\
             target.url = \"{}\"\nobjects.include = [\"{}\"]\n{extra}",
            dts_testkit::mariadb().url(),
            self.pg_url(),
            self.db
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs a query on the target database and returns psql's unaligned output.
    pub fn pg(&self, sql: &str) -> String {
        dts_testkit::postgres()
            .query_in(&self.target_db, sql)
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs SQL on the source database.
    pub fn my(&self, sql: &str) -> String {
        dts_testkit::mariadb()
            .query_in(&self.db, sql)
            .unwrap()
            .trim()
            .to_string()
    }
}

/// Runs the `dts` binary with `args`.
pub fn dts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(args)
        .env("DTS_LOG", "warn")
        .output()
        .unwrap()
}

/// Stdout and stderr of an output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn strip_zero_fraction(s: &str) -> String {
    match s.split_once('.') {
        Some((head, frac)) if frac.bytes().all(|b| b.is_ascii_digit()) => {
            let f = frac.trim_end_matches('0');
            if f.is_empty() {
                head.to_string()
            } else {
                format!("{head}.{f}")
            }
        }
        _ => s.to_string(),
    }
}

/// One value from the source, normalised for comparison.
async fn normalise_mysql(
    data_type: &str,
    value: Option<String>,
    pg: &tokio_postgres::Client,
) -> Option<String> {
    let v = value?;
    Some(match data_type {
        "float" => format!("f32:{:08x}", v.parse::<f32>().unwrap().to_bits()),
        "double" => format!("f64:{:016x}", v.parse::<f64>().unwrap().to_bits()),
        "date" | "datetime" | "timestamp" if v.starts_with("0000-00-00") => return None,
        "datetime" | "timestamp" | "time" => strip_zero_fraction(&v),
        // Year 0 (MySQL's zero year) arrives as 0, like every other year.
        "year" => v.parse::<i64>().unwrap().to_string(),
        "json" | "longtext_json" => {
            let row = pg
                .query_one("SELECT $1::text::jsonb::text", &[&v])
                .await
                .unwrap();
            row.get(0)
        }
        _ => v,
    })
}

fn normalise_pg(data_type: &str, value: Option<&str>) -> Option<String> {
    let v = value?;
    Some(match data_type {
        "float" => format!("f32:{:08x}", v.parse::<f32>().unwrap().to_bits()),
        "double" => format!("f64:{:016x}", v.parse::<f64>().unwrap().to_bits()),
        "timestamp" => strip_zero_fraction(v.trim_end_matches("+00")),
        "datetime" | "time" => strip_zero_fraction(v),
        _ => v.to_string(),
    })
}

/// Asserts that every row of source table `table` equals its copy in the target (schema
/// `schema`), value for value, as multisets of rows. Returns the number of rows compared.
pub async fn assert_table_equal(env: &Env, table: &str, schema: &str) -> usize {
    let mut my = mysql_async::Conn::new(mysql_async::Opts::from_url(&env.mysql_url()).unwrap())
        .await
        .unwrap();
    my.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let (pg, conn) = tokio_postgres::connect(&env.pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(
        "SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET IntervalStyle = 'postgres'",
    )
    .await
    .unwrap();

    let cols: Vec<(String, String, String)> = my
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&env.db, table),
        )
        .await
        .unwrap();
    let json_cols: Vec<String> = my
        .exec(
            "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
            (&env.db, table),
        )
        .await
        .unwrap();
    let mut my_select = Vec::new();
    let mut pg_select = Vec::new();
    let mut kinds = Vec::new();
    for (name, data_type, column_type) in &cols {
        let q = format!("`{}`", name.replace('`', "``"));
        let pq = format!("\"{}\"", name.to_lowercase().replace('"', "\"\""));
        let kind = if json_cols.contains(name) {
            "longtext_json".to_string()
        } else {
            data_type.to_lowercase()
        };
        match kind.as_str() {
            "bit" => {
                let width: String = column_type
                    .trim_start_matches("bit(")
                    .trim_end_matches(')')
                    .to_string();
                my_select.push(format!("LPAD(BIN({q}), {width}, '0')"));
                pg_select.push(format!("{pq}::text"));
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                my_select.push(format!("HEX({q})"));
                pg_select.push(format!("upper(encode({pq}, 'hex'))"));
            }
            _ => {
                my_select.push(format!("CAST({q} AS CHAR)"));
                pg_select.push(format!("{pq}::text"));
            }
        }
        kinds.push(kind);
    }
    let my_rows: Vec<mysql_async::Row> = my
        .query(format!(
            "SELECT {} FROM `{}`.`{}`",
            my_select.join(", "),
            env.db,
            table
        ))
        .await
        .unwrap();
    let mut source = Vec::new();
    for row in my_rows {
        let mut out = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let v: Option<String> = row.get(i).unwrap();
            out.push(normalise_mysql(kind, v, &pg).await);
        }
        source.push(out);
    }
    let pg_rows = pg
        .query(
            &format!(
                "SELECT {} FROM \"{}\".\"{}\"",
                pg_select.join(", "),
                schema,
                table.to_lowercase()
            ),
            &[],
        )
        .await
        .unwrap();
    let mut target: Vec<Vec<Option<String>>> = pg_rows
        .iter()
        .map(|r| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| normalise_pg(k, r.get::<_, Option<&str>>(i)))
                .collect()
        })
        .collect();
    source.sort();
    target.sort();
    assert_eq!(
        source.len(),
        target.len(),
        "row count of `{table}`: source {} target {}",
        source.len(),
        target.len()
    );
    for (s, t) in source.iter().zip(&target) {
        for (i, (a, b)) in s.iter().zip(t).enumerate() {
            assert_eq!(
                a, b,
                "table `{table}` column `{}` differs: source {a:?}, target {b:?}\nsource row {s:?}\ntarget row {t:?}",
                cols[i].0
            );
        }
    }
    source.len()
}

/// The names of the base tables of the source database.
pub fn source_tables(env: &Env) -> Vec<String> {
    env.my(&format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' \
         AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        env.db
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

/// Rows for the snapshot and kill tests: a composite key and assorted types.
pub fn numbers_table(rows: u32) -> String {
    format!(
        "CREATE TABLE numbers (
           grp INT NOT NULL, id INT NOT NULL, label VARCHAR(40) NOT NULL,
           amount DECIMAL(20,4) NOT NULL, at DATETIME(6) NOT NULL, payload BLOB,
           PRIMARY KEY (grp, id));
         INSERT INTO numbers
         SELECT s.seq % 7, s.seq, CONCAT('row-', s.seq), s.seq * 1.0001,
                '2024-01-01' + INTERVAL s.seq SECOND, UNHEX(MD5(s.seq))
         FROM seq_1_to_{rows} s;"
    )
}

/// Runs `dts run --config task` and kills it (SIGKILL) at each of `points`: a negative
/// point 150 ms after start-up, a percentage once that share of the planned chunks
/// (`planned()`) has committed (`chunks_done()`). Asserts each run was still going at its
/// point and that the committed chunks never went backwards; returns the chunks committed
/// at the last kill, which must be fewer than planned.
pub async fn kill_at_chunk_points(
    task: &str,
    points: &[i64],
    chunks_done: impl Fn() -> i64,
    planned: impl Fn() -> i64,
) -> i64 {
    use std::time::{Duration, Instant};
    let mut last_done = 0;
    for &percent in points {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(["run", "--config", task])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        loop {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the copy finished before kill point {percent}%"
            );
            let total = planned();
            let reached = if percent < 0 {
                started.elapsed() > Duration::from_millis(150)
            } else {
                total > 0 && chunks_done() * 100 >= total * percent
            };
            if reached {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let done = chunks_done();
        assert!(done >= last_done, "checkpoints went backwards");
        last_done = done;
    }
    assert!(
        last_done < planned(),
        "all chunks were done before the last kill"
    );
    last_done
}

/// Runs `dts run --config task` to the end after killed runs: it must succeed and say
/// that chunks were done by an earlier run.
pub fn resume_after_kills(task: &str) {
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("chunks were done by an earlier run"),
        "{}",
        text(&out)
    );
}
