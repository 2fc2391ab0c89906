//! Column selection, per-table operations and the replication throttle, through the `dts`
//! command on real servers, for each direction (MySQL → PostgreSQL, PostgreSQL →
//! PostgreSQL, PostgreSQL → MySQL, MySQL → MySQL): the testkit's private MariaDB and
//! PostgreSQL (or the servers named by `DTS_TEST_MYSQL_URL` / `DTS_TEST_PG_URL`). Both sides
//! are read with their own command-line clients, independently of dts's readers and
//! writers, and the kept columns are compared value for value.
//!
//! `cargo test -p dts-examples --test columns`

mod common;

use std::time::{Duration, Instant};

use common::text;

/// Runs the `dts` binary, printing how long it took.
fn dts(args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = common::dts(args);
    eprintln!("dts {} took {:?}", args[0], started.elapsed());
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    MySql,
    Postgres,
}

/// A source and a target database for one direction.
struct Pair {
    from: Engine,
    to: Engine,
    /// The source database (MySQL) or database holding schema `cs` (PostgreSQL).
    source_db: String,
    /// The target database: the MySQL database the source schema is renamed to, or the
    /// PostgreSQL database.
    target_db: String,
    dir: std::path::PathBuf,
}

impl Pair {
    fn new(prefix: &str, from: Engine, to: Engine) -> Self {
        let source_db = match from {
            Engine::MySql => dts_testkit::mariadb()
                .create_unique_database(&format!("{prefix}_src"))
                .unwrap(),
            Engine::Postgres => {
                let name = dts_testkit::unique_name(&format!("{prefix}_src"));
                dts_testkit::postgres().create_database(&name).unwrap();
                name
            }
        };
        let target_db = dts_testkit::unique_name(&format!("{prefix}_dst"));
        if to == Engine::Postgres {
            dts_testkit::postgres().create_database(&target_db).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            from,
            to,
            source_db,
            target_db,
            dir,
        }
    }

    /// The source schema holding the tables (a MySQL database is a schema).
    fn schema(&self) -> &str {
        match self.from {
            Engine::MySql => &self.source_db,
            Engine::Postgres => "cs",
        }
    }

    /// Where the tables land in the target: a MySQL database, or a PostgreSQL schema.
    fn target_schema(&self) -> String {
        match self.to {
            Engine::MySql => self.target_db.clone(),
            Engine::Postgres => self.schema().to_lowercase(),
        }
    }

    /// A task file for `migration`, the tables' settings `extra` appended (`{s}` in it
    /// stands for the source schema).
    fn task_file(&self, migration: &str, extra: &str) -> String {
        let source_url = match self.from {
            Engine::MySql => dts_testkit::mariadb().url(),
            Engine::Postgres => dts_testkit::postgres().url_for(&self.source_db),
        };
        let (target_url, rename) = match self.to {
            Engine::MySql => (
                dts_testkit::mariadb().url(),
                format!(
                    "objects.rename_databases = {{ \"{}\" = \"{}\" }}\n",
                    self.schema(),
                    self.target_db
                ),
            ),
            Engine::Postgres => (
                dts_testkit::postgres().url_for(&self.target_db),
                String::new(),
            ),
        };
        let text = format!(
            "name = \"{}\"\nmigration = {migration}\nsource.url = \"{source_url}\"\n\
             target.url = \"{target_url}\"\nobjects.include = [\"{}\"]\n{rename}{}",
            self.target_db,
            self.schema(),
            extra.replace("{s}", self.schema()),
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Runs SQL on the source; `{s}.` in it stands for the tables' schema prefix (none on
    /// MySQL, whose statements run in the source database).
    fn source(&self, sql: &str) {
        match self.from {
            Engine::MySql => dts_testkit::mariadb()
                .exec_in(&self.source_db, &sql.replace("{s}.", ""))
                .unwrap(),
            Engine::Postgres => dts_testkit::postgres()
                .exec_in(&self.source_db, &sql.replace("{s}.", "cs."))
                .unwrap(),
        }
    }

    fn query_source(&self, sql: &str) -> String {
        match self.from {
            Engine::MySql => dts_testkit::mariadb()
                .query_in(&self.source_db, &sql.replace("{s}.", ""))
                .unwrap(),
            Engine::Postgres => dts_testkit::postgres()
                .query_in(&self.source_db, &sql.replace("{s}.", "cs."))
                .unwrap(),
        }
        .trim()
        .to_string()
    }

    /// Runs a query on the target; `{s}.` in it stands for the target schema.
    fn query_target(&self, sql: &str) -> String {
        let sql = sql.replace("{s}.", &format!("{}.", self.target_schema()));
        match self.to {
            Engine::MySql => dts_testkit::mariadb().query(&sql).unwrap(),
            Engine::Postgres => dts_testkit::postgres()
                .query_in(&self.target_db, &sql)
                .unwrap(),
        }
        .trim()
        .to_string()
    }

    /// The rows of `table`'s columns `columns`, one line per row in key order, on the
    /// source and on the target.
    fn rows(&self, table: &str, columns: &[&str]) -> (String, String) {
        let sql = |engine: Engine| {
            let parts: Vec<String> = columns
                .iter()
                .map(|c| match engine {
                    Engine::MySql => format!("coalesce(cast({c} AS char), '(null)')"),
                    Engine::Postgres => format!("coalesce({c}::text, '(null)')"),
                })
                .collect();
            format!(
                "SELECT concat_ws('|', {}) FROM {{s}}.{table} ORDER BY id",
                parts.join(", ")
            )
        };
        (
            self.query_source(&sql(self.from)),
            self.query_target(&sql(self.to)),
        )
    }

    /// The target table's columns, in order.
    fn target_columns(&self, table: &str) -> String {
        self.query_target(&format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{}' \
             AND table_name = '{table}' ORDER BY ordinal_position",
            self.target_schema()
        ))
        .lines()
        .collect::<Vec<_>>()
        .join(",")
    }

    fn cleanup(&self, task: &str) {
        if self.from == Engine::Postgres {
            let out = dts(&["cleanup", "--config", task, "--yes"]);
            assert!(out.status.success(), "{}", text(&out));
        }
    }
}

/// The source tables: `ex` leaves out `secret` (`exclude`), `inc` keeps `id`, `name`, `n`
/// (`include`), `ins_only` replicates inserts only, `all_ops` everything.
fn setup(pair: &Pair) {
    let create = "CREATE TABLE {s}.ex (id int PRIMARY KEY, keep_a varchar(20), \
                  secret varchar(20) NOT NULL, keep_b int);
                  CREATE TABLE {s}.inc (id int PRIMARY KEY, name varchar(20), \
                  hidden varchar(20), n int);
                  CREATE TABLE {s}.ins_only (id int PRIMARY KEY, v int);
                  CREATE TABLE {s}.all_ops (id int PRIMARY KEY, v int);";
    let fill = match pair.from {
        Engine::MySql => {
            "INSERT INTO ex SELECT seq, concat('a', seq), concat('s', seq), seq * 2 FROM seq_1_to_200;
             INSERT INTO inc SELECT seq, concat('n', seq), concat('h', seq), seq FROM seq_1_to_200;
             INSERT INTO ins_only SELECT seq, seq FROM seq_1_to_50;
             INSERT INTO all_ops SELECT seq, seq FROM seq_1_to_50;"
        }
        Engine::Postgres => {
            "INSERT INTO cs.ex SELECT g, 'a' || g, 's' || g, g * 2 FROM generate_series(1, 200) g;
             INSERT INTO cs.inc SELECT g, 'n' || g, 'h' || g, g FROM generate_series(1, 200) g;
             INSERT INTO cs.ins_only SELECT g, g FROM generate_series(1, 50) g;
             INSERT INTO cs.all_ops SELECT g, g FROM generate_series(1, 50) g;"
        }
    };
    if pair.from == Engine::Postgres {
        pair.source("CREATE SCHEMA cs");
    }
    pair.source(create);
    pair.source(fill);
}

const SETTINGS: &str = "[tables.\"{s}.ex\"]\ncolumns.exclude = [\"secret\"]\n\
                        [tables.\"{s}.inc\"]\ncolumns.include = [\"id\", \"name\", \"n\"]\n\
                        [tables.\"{s}.ins_only\"]\noperations = [\"insert\"]\n";

async fn columns_operations(from: Engine, to: Engine) {
    let pair = Pair::new("cols", from, to);
    setup(&pair);
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", SETTINGS);
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pair.target_columns("ex"), "id,keep_a,keep_b");
    assert_eq!(pair.target_columns("inc"), "id,name,n");

    // Replication runs while the source takes writes: inserts, updates of kept and of
    // left-out columns, deletes, schema changes of a left-out column and a column added to
    // the `include` table.
    let mut running = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .env("DTS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    pair.source(
        "INSERT INTO {s}.ex VALUES (201, 'a201', 's201', 402), (202, NULL, 's202', NULL);
         UPDATE {s}.ex SET keep_a = concat(keep_a, '-u') WHERE id <= 20;
         UPDATE {s}.ex SET secret = 'changed' WHERE id BETWEEN 21 AND 40;
         UPDATE {s}.ex SET secret = 'both', keep_b = -1 WHERE id BETWEEN 41 AND 45;
         DELETE FROM {s}.ex WHERE id BETWEEN 190 AND 195;
         INSERT INTO {s}.inc VALUES (201, 'n201', 'h201', 201);
         UPDATE {s}.inc SET name = 'renamed' WHERE id <= 10;
         UPDATE {s}.inc SET hidden = 'secret' WHERE id BETWEEN 11 AND 20;
         DELETE FROM {s}.inc WHERE id > 195 AND id < 201;
         INSERT INTO {s}.ins_only VALUES (51, 51), (52, 52);
         INSERT INTO {s}.all_ops VALUES (51, 51);",
    );
    let (ins_only_before_deletes, _) = pair.rows("ins_only", &["id", "v"]);
    let retype = match from {
        Engine::MySql => "ALTER TABLE ex MODIFY secret varchar(40) NOT NULL",
        Engine::Postgres => "ALTER TABLE cs.ex ALTER COLUMN secret TYPE varchar(40)",
    };
    pair.source(&format!(
        "DELETE FROM {{s}}.ins_only WHERE id <= 10;
         DELETE FROM {{s}}.all_ops WHERE id <= 10;
         {retype};
         UPDATE {{s}}.ex SET secret = 'a longer value than before!' WHERE id = 1;
         ALTER TABLE {{s}}.inc ADD COLUMN extra int;
         INSERT INTO {{s}}.inc (id, name, hidden, n, extra) VALUES (202, 'n202', 'h202', 202, 7);
         UPDATE {{s}}.inc SET extra = 1, n = n + 1000 WHERE id <= 5;
         ALTER TABLE {{s}}.ex DROP COLUMN secret;
         INSERT INTO {{s}}.ex VALUES (203, 'a203', 406);
         UPDATE {{s}}.ex SET keep_b = keep_b + 1 WHERE id BETWEEN 100 AND 110;"
    ));
    // Converged: the kept columns of every table as in the source, the insert-only table
    // with the rows deleted in the source.
    let tables = [
        ("ex", &["id", "keep_a", "keep_b"][..]),
        ("inc", &["id", "name", "n"][..]),
        ("all_ops", &["id", "v"][..]),
    ];
    let started = Instant::now();
    loop {
        let same = tables.iter().all(|(t, c)| {
            let (source, target) = pair.rows(t, c);
            source == target
        }) && pair.rows("ins_only", &["id", "v"]).1 == ins_only_before_deletes;
        if same {
            break;
        }
        if let Some(status) = running.try_wait().unwrap() {
            let mut said = String::new();
            std::io::Read::read_to_string(running.stderr.as_mut().unwrap(), &mut said).unwrap();
            panic!("the run ended ({status}): {said}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "replication did not converge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = running.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM did not stop dts cleanly");

    // The columns left out do not exist in the target; the added one is left out too.
    assert_eq!(pair.target_columns("ex"), "id,keep_a,keep_b");
    assert_eq!(pair.target_columns("inc"), "id,name,n");
    for (table, columns, rows) in [
        ("ex", &["id", "keep_a", "keep_b"][..], 197),
        ("inc", &["id", "name", "n"][..], 197),
        ("all_ops", &["id", "v"][..], 41),
    ] {
        let (source, target) = pair.rows(table, columns);
        assert_eq!(source.lines().count(), rows, "{table}");
        assert_eq!(source, target, "table `{table}` differs");
    }
    assert!(pair.rows("ex", &["keep_a"]).1.contains("a1-u"));
    assert!(pair.rows("inc", &["n"]).1.contains("1001"));
    // Deletes of the insert-only table are not replicated.
    let (source, target) = pair.rows("ins_only", &["id", "v"]);
    assert_eq!(source.lines().count(), 42);
    assert_eq!(target, ins_only_before_deletes);
    assert_eq!(target.lines().count(), 52);

    // The verification compares the kept columns only, and finds no difference once the
    // rows the insert-only table kept are gone from the target too.
    pair.query_target("DELETE FROM {s}.ins_only WHERE id <= 10");
    let verify = dts(&["verify", "--config", &task]);
    let said = text(&verify);
    assert_eq!(verify.status.code(), Some(0), "{said}");
    for table in ["ex", "inc", "ins_only", "all_ops"] {
        assert!(said.contains(table), "{said}");
    }
    pair.cleanup(&task);
}

#[tokio::test]
async fn mysql_to_postgres() {
    columns_operations(Engine::MySql, Engine::Postgres).await;
}

#[tokio::test]
async fn postgres_to_postgres() {
    columns_operations(Engine::Postgres, Engine::Postgres).await;
}

#[tokio::test]
async fn postgres_to_mysql() {
    columns_operations(Engine::Postgres, Engine::MySql).await;
}

#[tokio::test]
async fn mysql_to_mysql() {
    columns_operations(Engine::MySql, Engine::MySql).await;
}

/// The precheck refuses a column selection that leaves out what is kept needs, or names a
/// column the table lacks, naming the table and the column; and a kept target table whose
/// column the task does not write is `NOT NULL` without a default.
#[tokio::test]
async fn precheck_refuses_naming_table_and_column() {
    let pair = Pair::new("colsbad", Engine::MySql, Engine::Postgres);
    pair.source(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, g int AS (b * 2) STORED, \
         c int, KEY c_idx (c));",
    );
    let db = pair.schema().to_string();
    for (settings, column, why) in [
        ("columns.exclude = [\"id\"]", "id", "primary key"),
        ("columns.exclude = [\"b\"]", "b", "generated column `g`"),
        (
            "columns.include = [\"id\", \"a\", \"b\", \"g\"]",
            "c",
            "index `c_idx`",
        ),
        ("columns.exclude = [\"nope\"]", "nope", "does not have"),
        (
            "columns.exclude = [\"a\"]\nwhere = \"a > 1\"",
            "a",
            "row filter",
        ),
    ] {
        let task = pair.task_file(
            "[\"schema\", \"full\"]",
            &format!("[tables.\"{{s}}.t\"]\n{settings}\n"),
        );
        let out = dts(&["precheck", "--config", &task]);
        let said = text(&out);
        assert_ne!(out.status.code(), Some(0), "{said}");
        let line = said
            .lines()
            .find(|l| l.contains("objects.columns"))
            .unwrap_or_else(|| panic!("no objects.columns item: {said}"));
        assert!(line.contains(&format!("`{db}.t`")), "{said}");
        assert!(line.contains(&format!("`{column}`")), "{said}");
        assert!(line.contains(why), "{said}");
    }
    // The target table exists with the column left out NOT NULL and without a default.
    dts_testkit::postgres()
        .exec_in(
            &pair.target_db,
            &format!(
                "CREATE SCHEMA \"{db}\"; CREATE TABLE \"{db}\".t (id int PRIMARY KEY, a int, \
                 b int, g int, c int, d int NOT NULL)"
            ),
        )
        .unwrap();
    let task = pair.task_file(
        "[\"schema\", \"full\"]",
        "policy.conflicting_tables = \"ignore\"\n[tables.\"{s}.t\"]\ncolumns.exclude = [\"a\"]\n",
    );
    let out = dts(&["precheck", "--config", &task]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    let line = said
        .lines()
        .find(|l| l.contains("target.unfilled_columns"))
        .unwrap_or_else(|| panic!("no target.unfilled_columns item: {said}"));
    assert!(
        line.contains("`d`") && line.contains(&format!("`{db}.t`")),
        "{said}"
    );
    // With the column nullable, the same task passes that check.
    dts_testkit::postgres()
        .exec_in(
            &pair.target_db,
            &format!("ALTER TABLE \"{db}\".t ALTER COLUMN d DROP NOT NULL"),
        )
        .unwrap();
    let out = dts(&["precheck", "--config", &task]);
    let said = text(&out);
    assert!(
        said.lines()
            .any(|l| l.contains("target.unfilled_columns") && !l.contains("`d`")),
        "{said}"
    );
}

/// `incremental.max_rows_per_second` holds replication to about that rate: 2,000 rows at
/// 500 rows/s take about 4 s to arrive (the first quarter second's rows pass at once).
#[tokio::test]
async fn replication_throttle_limits_the_applied_rate() {
    let pair = Pair::new("colsrate", Engine::MySql, Engine::Postgres);
    pair.source("CREATE TABLE r (id int PRIMARY KEY, v int)");
    let task = pair.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "incremental.max_rows_per_second = 500\nincremental.max_batch_rows = 100\n",
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // 40 transactions of 50 rows: the target applies each whole.
    let inserts: String = (0..40)
        .map(|i| {
            format!(
                "INSERT INTO r SELECT seq, seq FROM seq_{}_to_{};\n",
                i * 50 + 1,
                i * 50 + 50
            )
        })
        .collect();
    pair.source(&inserts);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task, "--until-caught-up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = || -> u64 {
        pair.query_target("SELECT count(*) FROM {s}.r")
            .parse()
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut first = None;
    loop {
        let n = count();
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n == 2000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stalled at {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = first.unwrap().elapsed();
    eprintln!("2,000 rows at 500 rows/s arrived over {took:?}");
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        took >= Duration::from_millis(2500),
        "2,000 rows at 500 rows/s arrived in {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (source, target) = pair.rows("r", &["id", "v"]);
    assert_eq!(source, target);
}
