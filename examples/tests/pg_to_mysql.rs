//! PostgreSQL → MySQL/MariaDB, schema and full load, through the `dts` command on real
//! servers: a database of the testkit's private PostgreSQL (or `DTS_TEST_PG_URL`) into a
//! database of its private MariaDB (or `DTS_TEST_MYSQL_URL`). PostgreSQL is read with
//! tokio-postgres and MySQL with mysql_async in the binary protocol, independently of dts's
//! readers and writers, and every value is compared through the documented conversions.
//!
//! `cargo test -p dts-examples --test pg_to_mysql`

mod common;

use std::time::{Duration, Instant};

use common::{dts, text};
use mysql_async::prelude::*;
use tokio_postgres::NoTls;

const FIXTURE: &str = include_str!("../../fixtures/postgres/torture_to_mysql.sql");

/// A loaded PostgreSQL source database and the MySQL database its schema `tort` becomes.
struct PgMy {
    source_db: String,
    target_db: String,
    dir: std::path::PathBuf,
}

impl PgMy {
    fn new(prefix: &str, sql: &str) -> Self {
        let pg = dts_testkit::postgres();
        let source_db = dts_testkit::unique_name(&format!("{prefix}_src"));
        pg.create_database(&source_db).unwrap();
        pg.exec_in(&source_db, sql).unwrap();
        let target_db = dts_testkit::unique_name(&format!("{prefix}_dst"));
        let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            source_db,
            target_db,
            dir,
        }
    }

    /// The task's name: every task's state lives in the MySQL server's one `dts_meta`.
    fn task(&self) -> &str {
        &self.target_db
    }

    fn task_file(&self, extra: &str) -> String {
        let text = format!(
            "name = \"{}\"\nmigration = [\"schema\", \"full\"]\nsource.url = \"{}\"\n\
             target.url = \"{}\"\nobjects.include = [\"tort\"]\n\
             objects.rename_databases = {{ \"tort\" = \"{}\" }}\n{extra}",
            self.task(),
            dts_testkit::postgres().url_for(&self.source_db),
            dts_testkit::mariadb().url(),
            self.target_db,
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&dts_testkit::postgres().url_for(&self.source_db), NoTls)
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

    async fn my(&self) -> mysql_async::Conn {
        let mut conn = mysql_async::Conn::new(
            mysql_async::Opts::from_url(&dts_testkit::mariadb().url()).unwrap(),
        )
        .await
        .unwrap();
        conn.query_drop("SET NAMES utf8mb4; SET time_zone = '+00:00'")
            .await
            .unwrap();
        conn
    }

    fn query(&self, sql: &str) -> String {
        dts_testkit::mariadb()
            .query(sql)
            .unwrap()
            .trim()
            .to_string()
    }
}

fn quote_my(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn quote_pg(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a column's values are compared, from its PostgreSQL base type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `boolean`: `1`/`0`.
    Bool,
    /// `real`: the bits.
    Float4,
    /// `double precision`: the bits.
    Float8,
    /// `numeric`: the number, trailing fraction zeros aside.
    Numeric,
    /// `bytea`: hexadecimal.
    Bytes,
    /// `timestamp`, `timestamptz` (UTC), `time`: trailing fraction zeros aside.
    Temporal,
    /// `date`.
    Date,
    /// Arrays: as `to_jsonb` prints them, the MySQL side read back through `jsonb`.
    Array,
    /// `bit(n)`, n ≤ 64: a bit string of n characters.
    Bit(usize),
    /// `inet`, `cidr`: as their output function prints them (a cast to text adds `/32`).
    Network,
    /// Everything else: PostgreSQL's text form, equal to MySQL's text.
    Text,
}

struct PgColumn {
    name: String,
    kind: Kind,
}

/// The columns of `tort.<table>`, their base types resolved through domains.
async fn pg_columns(pg: &tokio_postgres::Client, table: &str) -> Vec<PgColumn> {
    let rows = pg
        .query(
            "SELECT a.attname::text, b.typname::text, b.typcategory::text, \
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = ('tort.' || quote_ident($1))::regclass AND a.attnum > 0 \
               AND NOT a.attisdropped ORDER BY a.attnum",
            &[&table],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let typname: String = r.get(1);
            let category: String = r.get(2);
            let typmod: i32 = r.get(3);
            let kind = match typname.as_str() {
                _ if category == "A" => Kind::Array,
                "bool" => Kind::Bool,
                "float4" => Kind::Float4,
                "float8" => Kind::Float8,
                "numeric" => Kind::Numeric,
                "bytea" => Kind::Bytes,
                "timestamp" | "timestamptz" | "time" => Kind::Temporal,
                "date" => Kind::Date,
                "inet" | "cidr" => Kind::Network,
                "bit" if (1..=64).contains(&typmod) => Kind::Bit(usize::try_from(typmod).unwrap()),
                _ => Kind::Text,
            };
            PgColumn {
                name: r.get(0),
                kind,
            }
        })
        .collect()
}

fn strip_fraction_zeros(s: &str) -> String {
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

/// A PostgreSQL value (selected as text by [`pg_select`]) in the compared form.
fn pg_canonical(kind: Kind, v: Option<String>) -> Option<String> {
    let v = v?;
    Some(match kind {
        // MySQL stores -0 as 0 (documented): compared as 0.
        Kind::Float4 => format!("{:08x}", (v.parse::<f32>().unwrap() + 0.0).to_bits()),
        Kind::Float8 => format!("{:016x}", (v.parse::<f64>().unwrap() + 0.0).to_bits()),
        Kind::Numeric => {
            let s = strip_fraction_zeros(&v);
            if s == "-0" {
                "0".into()
            } else {
                s
            }
        }
        Kind::Temporal => strip_fraction_zeros(v.trim_end_matches("+00")),
        _ => v,
    })
}

fn pg_select(c: &PgColumn) -> String {
    let q = quote_pg(&c.name);
    match c.kind {
        Kind::Bool => format!("CASE WHEN {q} THEN '1' WHEN NOT {q} THEN '0' END"),
        Kind::Bytes => format!("encode({q}, 'hex')"),
        Kind::Array => format!("to_jsonb({q})::text"),
        Kind::Network => format!("CASE WHEN {q} IS NULL THEN NULL ELSE format('%s', {q}) END"),
        _ => format!("{q}::text"),
    }
}

/// A MySQL value, read in the binary protocol, in the compared form.
async fn my_canonical(
    kind: Kind,
    v: mysql_async::Value,
    pg: &tokio_postgres::Client,
) -> Option<String> {
    use mysql_async::Value as V;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    Some(match (kind, v) {
        (_, V::NULL) => return None,
        (Kind::Float4, V::Float(f)) => format!("{:08x}", f.to_bits()),
        (Kind::Float8, V::Double(f)) => format!("{:016x}", f.to_bits()),
        (Kind::Bool, V::Int(n)) => n.to_string(),
        (Kind::Bytes, V::Bytes(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        (Kind::Bit(n), V::Bytes(b)) => {
            let bits: String = b.iter().map(|x| format!("{x:08b}")).collect();
            bits[bits.len() - n..].to_string()
        }
        (Kind::Numeric, V::Bytes(b)) => {
            let s = strip_fraction_zeros(&text(&b));
            if s == "-0" {
                "0".into()
            } else {
                s
            }
        }
        (Kind::Array, V::Bytes(b)) => pg
            .query_one("SELECT $1::text::jsonb::text", &[&text(&b)])
            .await
            .unwrap()
            .get(0),
        (Kind::Date, V::Date(y, m, d, ..)) => format!("{y:04}-{m:02}-{d:02}"),
        (Kind::Temporal, V::Date(y, mo, d, h, mi, s, us)) => strip_fraction_zeros(&format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        (Kind::Temporal, V::Time(neg, days, h, mi, s, us)) => strip_fraction_zeros(&format!(
            "{}{:02}:{mi:02}:{s:02}.{us:06}",
            if neg { "-" } else { "" },
            days * 24 + u32::from(h)
        )),
        (_, V::Int(n)) => n.to_string(),
        (_, V::UInt(n)) => n.to_string(),
        (_, V::Bytes(b)) => text(&b),
        (kind, other) => panic!("unexpected MySQL value {other:?} for {kind:?}"),
    })
}

/// Compares every table of the source's `tort` schema with the target database, value for
/// value (rows as multisets); returns the number of rows compared.
async fn assert_same(pair: &PgMy) -> usize {
    let pg = pair.pg().await;
    let mut my = pair.my().await;
    let tables: Vec<String> = pg
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'tort' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let target_tables: Vec<String> = my
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME",
            (&pair.target_db,),
        )
        .await
        .unwrap();
    assert_eq!(tables, target_tables);
    let mut total = 0;
    for table in &tables {
        let columns = pg_columns(&pg, table).await;
        let select: Vec<String> = columns.iter().map(pg_select).collect();
        let mut expected: Vec<Vec<Option<String>>> = pg
            .query(
                &format!("SELECT {} FROM tort.{}", select.join(", "), quote_pg(table)),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| pg_canonical(c.kind, r.get(i)))
                    .collect()
            })
            .collect();
        let names: Vec<String> = columns.iter().map(|c| quote_my(&c.name)).collect();
        let rows: Vec<mysql_async::Row> = my
            .exec(
                format!(
                    "SELECT {} FROM {}.{}",
                    names.join(", "),
                    quote_my(&pair.target_db),
                    quote_my(table)
                ),
                (),
            )
            .await
            .unwrap();
        let mut actual = Vec::new();
        for row in rows {
            let values = row.unwrap();
            let mut out = Vec::new();
            for (c, v) in columns.iter().zip(values) {
                out.push(my_canonical(c.kind, v, &pg).await);
            }
            actual.push(out);
        }
        expected.sort();
        actual.sort();
        assert_eq!(expected.len(), actual.len(), "row count of {table}");
        for (e, a) in expected.iter().zip(&actual) {
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                assert_eq!(
                    x, y,
                    "table `{table}` column `{}` differs\nsource row {e:?}\ntarget row {a:?}",
                    columns[i].name
                );
            }
        }
        total += expected.len();
    }
    total
}

#[tokio::test]
async fn type_torture_fixture_is_copied_value_for_value() {
    let pair = PgMy::new("pgmy_torture", FIXTURE);
    let task = pair.task_file("full.rows_per_chunk = 3\nfull.workers = 3\n");

    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));
    let report = String::from_utf8_lossy(&pre.stdout);
    // The indexes MySQL cannot have are named as left out.
    for index in ["texts_lower", "texts_partial"] {
        assert!(report.contains(&format!("index `{index}`")), "{report}");
    }

    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));

    let copied = assert_same(&pair).await;
    assert_eq!(copied, 12 + 10 + 7 + 7 + 34 + 20 + 6 + 4);

    let db = &pair.target_db;
    let mut my = pair.my().await;
    // Unique keys are whole-value B-tree indexes (no prefix, no hidden hash), and text
    // uses the binary NO PAD collation.
    for table in ["texts", "misc", "numbers", "parent", "times", "child"] {
        let (_, ddl): (String, String) = my
            .query_first(format!("SHOW CREATE TABLE {}.{table}", quote_my(db)))
            .await
            .unwrap()
            .unwrap();
        assert!(!ddl.contains("USING HASH"), "{ddl}");
        assert!(!ddl.contains("utf8mb4_general_ci"), "{ddl}");
    }
    assert_eq!(
        pair.query(&format!(
            "SELECT COLUMN_TYPE, COLLATION_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'texts' AND COLUMN_NAME = 't'"
        )),
        "varchar(763)\tutf8mb4_nopad_bin"
    );
    // timestamptz past 2038 is a DATETIME holding UTC.
    assert_eq!(
        pair.query(&format!(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'times' AND COLUMN_NAME = 'tstz'"
        )),
        "datetime"
    );
    // Values distinct only by case, accent or trailing space stay distinct, and a lookup
    // finds exactly one of them.
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{db}`.texts WHERE t IN ('a', 'A', 'a ', 'e', _utf8mb4 x'C3A9', _utf8mb4 x'65CC81')"
        )),
        "6"
    );
    assert_eq!(
        pair.query(&format!("SELECT id FROM `{db}`.texts WHERE t = 'a '")),
        "3"
    );
    // The identity counter continues past the source's (1000), the serial past the rows.
    assert_eq!(
        pair.query(&format!(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'parent'"
        )),
        "1001"
    );
    pair.query(&format!(
        "INSERT INTO `{db}`.parent (code) VALUES ('new'); \
         INSERT INTO `{db}`.times () VALUES ()"
    ));
    assert_eq!(
        pair.query(&format!("SELECT id FROM `{db}`.parent WHERE code = 'new'")),
        "1001"
    );
    // Defaults: the domain's, the enum's, now() in UTC.
    assert_eq!(
        pair.query(&format!(
            "SELECT id > 7, made > UTC_TIMESTAMP() - INTERVAL 1 MINUTE AND made <= UTC_TIMESTAMP(6), \
                    day = UTC_DATE() OR day = CURRENT_DATE FROM `{db}`.times WHERE ts IS NULL AND tstz IS NULL AND id > 7"
        )),
        "1\t1\t1"
    );
    // Foreign key actions hold: deleting a parent cascades and sets null.
    pair.query(&format!("DELETE FROM `{db}`.parent WHERE id = 3"));
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*), SUM(other IS NULL) FROM `{db}`.child WHERE parent = 3 OR other IS NULL"
        )),
        "18\t18"
    );
    // The domain's NOT NULL holds, and enums keep labels that differ only in case.
    let refused = dts_testkit::mariadb().query(&format!(
        "INSERT INTO `{db}`.misc (id, lbl) VALUES ('x', NULL)"
    ));
    assert!(refused.is_err());
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{db}`.misc WHERE mood = 'Sad' OR mood = 'sad'"
        )),
        "2"
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

/// Values MySQL cannot hold, each in a column of its own.
const BAD_VALUES: &str = "
    CREATE SCHEMA tort;
    CREATE TABLE tort.bad (
        id int PRIMARY KEY, n numeric, f double precision, ts timestamptz, d date,
        k text, note text
    );
    CREATE UNIQUE INDEX bad_k ON tort.bad (k);
    INSERT INTO tort.bad VALUES
        (1, 'NaN', 1, '2000-01-01', '2000-01-01', 'a', 'x'),
        (2, 1, 'Infinity', 'infinity', '2000-01-01', 'b', 'x'),
        (3, 1e40, 1, '2000-01-01', '10000-01-01', repeat('k', 800), 'x'),
        (4, 1, 1, '2000-01-01', '0044-03-15 BC', 'd', 'x');
";

#[tokio::test]
async fn values_mysql_cannot_hold_block_naming_table_and_column() {
    let pair = PgMy::new("pgmy_bad", BAD_VALUES);
    let task = pair.task_file("");
    let out = dts(&["precheck", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "`tort.bad`.`n`: 1 rows: NaN and infinities",
        "`tort.bad`.`n`: 1 rows: values with more than 35 integer digits",
        "`tort.bad`.`f`: 1 rows: NaN and infinities",
        "`tort.bad`.`ts`: 1 rows: infinity and -infinity",
        "`tort.bad`.`d`: 2 rows: dates before year 1 or after 9999",
        "`tort.bad`.`k`: 1 rows: values longer than 768",
    ] {
        assert!(report.contains(expected), "{expected}\n{}", text(&out));
    }
    // `dts run` scanning the values first writes nothing.
    let scanning = pair.task_file("full.precheck_values = true\n");
    let run = dts(&["run", "--config", &scanning]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            pair.target_db
        )),
        "0"
    );

    // With the values fixed but for one, the copy itself refuses it naming table, column
    // and key (full.precheck_values is off, so only the copy sees it).
    dts_testkit::postgres()
        .exec_in(
            &pair.source_db,
            "UPDATE tort.bad SET n = 1, f = 1, ts = '2000-01-01', d = '2000-01-01', \
             k = 'c' || id WHERE id <> 2; UPDATE tort.bad SET f = 1 WHERE id = 2",
        )
        .unwrap();
    let task = pair.task_file("");
    let run = dts(&["run", "--config", &task]);
    let all = text(&run);
    assert_eq!(run.status.code(), Some(1), "{all}");
    assert!(
        all.contains("tort.bad") && all.contains("`ts`") && all.contains("id=2"),
        "{all}"
    );
    assert!(
        all.contains("infinity cannot be stored in `datetime(6)`"),
        "{all}"
    );

    // The options turn it into NULL, counted.
    let task = pair.task_file("types.infinity = \"null\"\n");
    let run = dts(&["run", "--config", &task]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{}`.bad WHERE ts IS NULL",
            pair.target_db
        )),
        "1"
    );
}

#[tokio::test]
async fn identifiers_mysql_cannot_hold_are_blocked_by_name() {
    let pair = PgMy::new(
        "pgmy_names",
        "CREATE SCHEMA tort; CREATE TABLE tort.t (id int PRIMARY KEY, \"Name\" text, name text);",
    );
    let long = "t".repeat(65);
    let task = pair.task_file(&format!(
        "objects.rename_tables = {{ \"tort.t\" = \"{long}\" }}\n"
    ));
    let out = dts(&["precheck", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!(
            "table name `{long}` is 65 characters long, more than MySQL's 64: rename it with objects.rename_tables"
        )),
        "{report}"
    );
    assert!(
        report.contains("columns `Name` and `name` of `tort.t` both become `name`"),
        "{report}"
    );
}

/// Rows for the kill test: a uuid key, a composite key with text, a keyless table, values
/// with the load file's special characters.
const KILL_FIXTURE: &str = "
    CREATE SCHEMA tort;
    CREATE TABLE tort.plain (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        n numeric, t text, ts timestamptz, b bytea, f double precision, bits bit(12),
        arr int[], u uuid
    );
    INSERT INTO tort.plain (n, t, ts, b, f, bits, arr, u)
    SELECT g / 7.0, 'row ' || g || E'\\t\\\\\\n', '2000-01-01'::timestamptz + g * interval '1 minute',
           decode(md5(g::text), 'hex'), g / 3.0, (g % 4096)::bit(12), ARRAY[g, -g],
           md5(g::text)::uuid
    FROM generate_series(1, 60000) g;
    CREATE TABLE tort.mixed (a int, b text, tag varchar(20), PRIMARY KEY (a, b));
    INSERT INTO tort.mixed SELECT g % 97, 'k' || g, 'x' || g FROM generate_series(1, 60000) g;
    CREATE TABLE tort.keyless (v text, w int);
    INSERT INTO tort.keyless SELECT 'v' || (g % 1000), g FROM generate_series(1, 30000) g;
";

#[tokio::test]
async fn sigkill_mid_copy_resumes_exactly() {
    let pair = PgMy::new("pgmy_kill", KILL_FIXTURE);
    // Throttled so the copy lasts long enough to be killed at chosen points.
    let task = pair.task_file(
        "full.rows_per_chunk = 3000\nfull.workers = 2\nfull.max_rows_per_second = 30000\n",
    );
    let count = |sql: &str| -> i64 {
        dts_testkit::mariadb()
            .query(sql)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let chunks_done = || {
        count(&format!(
            "SELECT COUNT(*) FROM dts_meta.chunk WHERE task = '{}'",
            pair.task()
        ))
    };
    let planned = || {
        count(&format!(
            "SELECT COALESCE(SUM(chunks), 0) FROM dts_meta.chunk_plan WHERE task = '{}'",
            pair.task()
        ))
    };
    common::kill_at_chunk_points(&task, &[10, 35, 65], chunks_done, planned).await;
    common::resume_after_kills(&task);
    assert_eq!(assert_same(&pair).await, 150_000);
}

#[tokio::test]
async fn type_options_change_the_lossy_cases() {
    let pair = PgMy::new(
        "pgmy_opts",
        "CREATE SCHEMA tort;
         CREATE TABLE tort.opts (id uuid PRIMARY KEY, iv interval, n numeric,
             f double precision, ts timestamp(3), d date, tz timestamptz);
         INSERT INTO tort.opts VALUES
             ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04.5', 'NaN', 'NaN',
              'infinity', '-infinity', 'infinity'),
             ('00000000-0000-0000-0000-000000000001', '-838:59:59', '1.50', '-0',
              '2000-01-01', '2000-01-01', '2038-01-19 03:14:08+00');",
    );
    let task = pair.task_file(
        "[types]\nuuid_as = \"binary\"\ninterval_as = \"time\"\n\
         unbounded_numeric_as = \"text\"\nnan = \"null\"\ninfinity = \"clamp\"\n",
    );
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));
    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for column in [
        "tort.opts.f: 2 values",
        "tort.opts.ts: 1 values",
        "tort.opts.tz: 1 values",
    ] {
        assert!(stdout.contains(column), "{column}\n{}", text(&out));
    }
    let db = &pair.target_db;
    assert_eq!(
        pair.query(&format!(
            "SELECT HEX(id), iv, n, COALESCE(f, 'NULL'), ts, d, tz FROM `{db}`.opts ORDER BY id"
        )),
        "00000000000000000000000000000001\t-838:59:59.000000\t1.50\t0\t\
         2000-01-01 00:00:00.000\t2000-01-01\t2038-01-19 03:14:08.000000\n\
         A0EEBC999C0B4EF8BB6D6BB9BD380A11\t26:03:04.500000\tNaN\tNULL\t\
         9999-12-31 23:59:59.999\t0001-01-01\t9999-12-31 23:59:59.999999"
    );
    assert_eq!(
        pair.query(&format!(
            "SELECT GROUP_CONCAT(COLUMN_TYPE ORDER BY ORDINAL_POSITION) FROM \
             information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'opts'"
        )),
        "binary(16),time(6),longtext,double,datetime(3),date,datetime(6)"
    );
}

/// The `i`-th statement of the replication workload over the torture fixture: every type
/// through row copies with new keys, deletes cascading from `parent` to `child` (and
/// setting `child.other` to NULL), updates leaving large values unchanged, a keyless table
/// changed row by row, a rolled-back transaction, a transaction of many rows.
fn pg_my_statement(i: u64) -> String {
    // A row copied with new values in its unique columns.
    let copy = |table: &str, fresh: &str| {
        format!(
            "INSERT INTO tort.{table} SELECT (jsonb_populate_record(NULL::tort.{table}, \
             to_jsonb(r) || jsonb_build_object({fresh}))).* FROM tort.{table} r \
             ORDER BY r.id::text LIMIT 1 OFFSET {}",
            i % 5
        )
    };
    match i % 12 {
        0 => copy("numbers", &format!("'id', {0}, 'n', {0}", 100_000 + i)),
        1 => copy("times", &format!("'id', {}", 100_000 + i)),
        2 => copy("misc", "'id', gen_random_uuid(), 'u', gen_random_uuid()"),
        3 => format!(
            "WITH p AS (INSERT INTO tort.parent (code) VALUES ('w{i}') RETURNING id) \
             INSERT INTO tort.child SELECT {i}, 'c' || g, p.id, p.id, 'w' || g \
             FROM p, generate_series(1, 3) g"
        ),
        4 => format!(
            "DELETE FROM tort.parent WHERE code = 'w{}'",
            i.saturating_sub(13)
        ),
        5 => format!(
            "UPDATE tort.texts SET vc = left('u{i}', 5) WHERE id = {}",
            i % 10 + 1
        ),
        6 => format!("INSERT INTO tort.keyless VALUES ('k{i}', {i}, '{{a,b}}')"),
        7 => "DELETE FROM tort.keyless WHERE ctid = (SELECT ctid FROM tort.keyless \
              WHERE n IS NOT NULL ORDER BY n LIMIT 1)"
            .to_string(),
        8 => format!("BEGIN; INSERT INTO tort.serials (note) VALUES ('gone {i}'); ROLLBACK"),
        9 => format!(
            "INSERT INTO tort.texts (t, vc, big) VALUES ('w{i}', 'A', repeat('x', {}))",
            i % 3 * 5000
        ),
        10 if i % 48 == 10 => format!(
            "INSERT INTO tort.numbers (id, i4, n, n2) SELECT 200000 + {i} * 1000 + g, g, \
             200000 + {i} * 1000 + g / 7.0, g FROM generate_series(1, 800) g"
        ),
        _ => format!(
            "UPDATE tort.serials SET note = 'n{i}' WHERE id = {}",
            i % 5 + 1
        ),
    }
}

#[tokio::test]
async fn replication_under_writes_survives_sigkill_and_catches_up() {
    let pair = PgMy::new(
        "pgmy_cdc",
        &format!("{FIXTURE}\nALTER TABLE tort.keyless REPLICA IDENTITY FULL;"),
    );
    let task = pair.task_file("incremental.max_batch_rows = 300\n");
    let text_of_task = std::fs::read_to_string(&task).unwrap().replace(
        "migration = [\"schema\", \"full\"]",
        "migration = [\"schema\", \"full\", \"incremental\"]",
    );
    std::fs::write(&task, text_of_task).unwrap();
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));

    // The workload runs all along, from before the snapshot to the end.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = pair.source_db.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = pg_my_statement(i);
                if let Err(e) = dts_testkit::postgres().exec_in(&db, &sql) {
                    panic!("workload statement {i} `{sql}`: {e}");
                }
                i += 1;
            }
            i
        })
    };
    let applied = || {
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT position FROM dts_meta.cdc_position WHERE task = '{}'",
                pair.task()
            ))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for round in 0..3 {
        let log = pair.dir.join(format!("run-{round}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(["run", "--config", &task])
            .stdout(std::fs::File::create(pair.dir.join("run.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Replication applies some batches, then the process is killed.
        let first = applied();
        let started = Instant::now();
        let mut advanced = 0;
        let mut last = first.clone();
        while advanced < 2 + round {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(started.elapsed() < Duration::from_secs(180), "no progress");
            let now = applied();
            if !now.is_empty() && now != last {
                advanced += 1;
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statements = writer.join().unwrap();
    assert!(statements > 50, "{statements}");

    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = assert_same(&pair).await;
    assert!(rows > 300, "{rows}");

    // A column change the log cannot show stops replication by name, applying nothing.
    dts_testkit::postgres()
        .exec_in(
            &pair.source_db,
            "ALTER TABLE tort.serials RENAME COLUMN note TO remark; \
             INSERT INTO tort.serials (remark) VALUES ('after')",
        )
        .unwrap();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("column `note` was renamed to `remark`"),
        "{}",
        text(&out)
    );
    let clean = dts(&["cleanup", "--config", &task, "--yes"]);
    assert!(clean.status.success(), "{}", text(&clean));
}

/// Tables for the column change test: a keyed table and a keyless one (`REPLICA IDENTITY
/// FULL`).
const COLUMNS_FIXTURE: &str = "
    CREATE SCHEMA tort;
    CREATE TABLE tort.items (
        id bigint PRIMARY KEY, note text, n numeric, small integer, raw bytea,
        vc character varying(10), day date
    );
    INSERT INTO tort.items
    SELECT g, 'row ' || g, g / 7.0, g, decode(md5(g::text), 'hex'), left(md5(g::text), 10),
           '2024-02-29'::date + g
    FROM generate_series(1, 3000) g;
    CREATE TABLE tort.bag (a integer, b text, c text);
    ALTER TABLE tort.bag REPLICA IDENTITY FULL;
    INSERT INTO tort.bag SELECT g % 10, 'b' || g, 'c' || g FROM generate_series(1, 100) g;
";

/// The `i`-th statement of the column change workload: row changes of both tables, with
/// columns added (a stored default, none, `NOT NULL`), dropped and retyped at a few points,
/// one transaction with rows before and after its column changes (large enough to be
/// streamed before it commits), and other streamed transactions.
fn column_statement(i: u64) -> String {
    match i {
        // Retypes that rewrite the table come first: a rewrite stores the value of every
        // column, after which PostgreSQL's catalog no longer says what a stored default
        // gave the rows already there (a column added with one is then refused).
        12 => return "ALTER TABLE tort.items ALTER COLUMN small TYPE bigint".into(),
        13 => return "UPDATE tort.items SET small = small * 10000000000 WHERE id <= 50".into(),
        24 => {
            return "ALTER TABLE tort.items ALTER COLUMN day TYPE timestamp(3) without time zone"
                .into()
        }
        36 => return "ALTER TABLE tort.items ALTER COLUMN n TYPE numeric(40,12)".into(),
        // A stored ("fast") default: the rows already there hold 'fast' unlogged.
        48 => return "ALTER TABLE tort.items ADD COLUMN extra text DEFAULT 'fast'".into(),
        60 => return "ALTER TABLE tort.items ADD COLUMN tally integer".into(),
        61 => return "UPDATE tort.items SET tally = id % 7 WHERE id <= 300".into(),
        66 => return "ALTER TABLE tort.bag ADD COLUMN d integer DEFAULT 5".into(),
        72 => return "ALTER TABLE tort.items DROP COLUMN raw".into(),
        78 => return "ALTER TABLE tort.items ALTER COLUMN vc TYPE character varying(40)".into(),
        79 => return "UPDATE tort.items SET vc = repeat('v', 40) WHERE id <= 20".into(),
        // Rows before and after column changes of both tables in one transaction (added
        // with a stored default, retyped, dropped).
        84 => {
            return "BEGIN; \
                INSERT INTO tort.items (id, note) \
                SELECT 8000000 + g, md5(g::text) FROM generate_series(1, 2000) g; \
                INSERT INTO tort.bag (a, b) VALUES (77, 'before'); \
                UPDATE tort.items SET note = 'before' WHERE id = 7; \
                ALTER TABLE tort.items ADD COLUMN late integer NOT NULL DEFAULT 3; \
                ALTER TABLE tort.bag ADD COLUMN e numeric(8,2) DEFAULT 1.5; \
                ALTER TABLE tort.items ALTER COLUMN vc TYPE text; \
                INSERT INTO tort.items (id, note, late, vc) \
                VALUES (7000002, 'after', 9, repeat('w', 100)); \
                UPDATE tort.items SET late = 4 WHERE id = 8; \
                UPDATE tort.bag SET e = 2.25 WHERE a = 77; \
                INSERT INTO tort.bag (a, b, e) VALUES (78, 'after', 3); \
                ALTER TABLE tort.bag DROP COLUMN c; \
                INSERT INTO tort.bag (a, b) VALUES (79, 'last'); \
                COMMIT"
                .into()
        }
        // The rows already there hold 3; new rows get 4.
        90 => {
            return "ALTER TABLE tort.bag ADD COLUMN f integer DEFAULT 3; \
                    ALTER TABLE tort.bag ALTER COLUMN f SET DEFAULT 4; \
                    INSERT INTO tort.bag (a, b) VALUES (90, 'f')"
                .into()
        }
        _ => {}
    }
    let k = i * 37 % 3000 + 1;
    match i % 6 {
        _ if i % 20 == 19 => format!(
            // Larger than logical_decoding_work_mem: streamed before it commits.
            "BEGIN; INSERT INTO tort.items (id, note) \
             SELECT {} + g, md5(g::text) FROM generate_series(1, 1500) g; \
             UPDATE tort.items SET note = note || '+' WHERE id BETWEEN {k} AND {k} + 100; \
             COMMIT",
            1_000_000 + i * 10_000
        ),
        0 => format!(
            "INSERT INTO tort.items (id, note) VALUES ({}, 'w{i}')",
            100_000 + i
        ),
        1 => format!("UPDATE tort.items SET note = 'u{i}' WHERE id = {k}"),
        2 => format!("DELETE FROM tort.items WHERE id = {}", i * 53 % 3000 + 1),
        3 => format!("INSERT INTO tort.bag (a, b) VALUES ({}, 'b{i}')", i % 10),
        4 => format!(
            "UPDATE tort.bag SET b = b || 'x' \
             WHERE ctid = (SELECT ctid FROM tort.bag WHERE a = {} LIMIT 1)",
            i % 10
        ),
        _ => format!(
            "DELETE FROM tort.bag WHERE ctid = (SELECT ctid FROM tort.bag WHERE a = {} LIMIT 1)",
            (i + 3) % 10
        ),
    }
}

/// The columns of a MySQL table: name, type, nullability and default, in order.
fn my_columns(pair: &PgMy, table: &str) -> String {
    pair.query(&format!(
        "SELECT GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
         IFNULL(COLUMN_DEFAULT, '-')) ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}'",
        pair.target_db
    ))
}

/// A number from the clock, for kill points that differ from run to run.
fn jitter(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) % below
}

#[tokio::test]
async fn column_changes_under_writes_survive_sigkill_and_are_followed() {
    let pair = PgMy::new("pgmy_cols", COLUMNS_FIXTURE);
    dts_testkit::postgres()
        .exec(&format!(
            "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
            pair.source_db
        ))
        .unwrap();
    let task = pair.task_file("incremental.max_batch_rows = 300\n");
    let text_of_task = std::fs::read_to_string(&task).unwrap().replace(
        "migration = [\"schema\", \"full\"]",
        "migration = [\"schema\", \"full\", \"incremental\"]",
    );
    std::fs::write(&task, text_of_task).unwrap();

    // The workload runs all along, from before the snapshot to the end, paced so that the
    // kills fall among its column changes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Column changes wait for the full load to end: a table rewrite (`ALTER COLUMN …
    // TYPE`) is not MVCC-safe, so a snapshot taken before it sees the table empty.
    let replicating = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let written = written.clone();
        let replicating = replicating.clone();
        let db = pair.source_db.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if i == 12 {
                    while !replicating.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let sql = column_statement(i);
                if let Err(e) = dts_testkit::postgres().exec_in(&db, &sql) {
                    panic!("workload statement {i} `{sql}`: {e}");
                }
                i += 1;
                written.store(i, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(40));
            }
            i
        })
    };
    let applied = || {
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT position FROM dts_meta.cdc_position WHERE task = '{}'",
                pair.task()
            ))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut kills = 0;
    for round in 0..5 {
        let log = pair.dir.join(format!("run-{round}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(["run", "--config", &task])
            .env("DTS_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Replication applies batches until the workload is past a point among its column
        // changes, then the process is killed at a random moment.
        let started = Instant::now();
        let mut last = applied();
        let mut advanced = 0;
        let past = 12 + 18 * round + jitter(10);
        while advanced < 1 || written.load(std::sync::atomic::Ordering::Relaxed) < past {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(started.elapsed() < Duration::from_secs(180), "no progress");
            let now = applied();
            if !now.is_empty() {
                replicating.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if !now.is_empty() && now != last {
                advanced += 1;
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(jitter(400))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        eprintln!(
            "killed after workload statement {} at applied position {}",
            written.load(std::sync::atomic::Ordering::Relaxed),
            applied()
        );
    }
    assert!(kills >= 3);
    // Every column change of the workload is made.
    let started = Instant::now();
    while written.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the workload stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statements = writer.join().unwrap();
    assert!(statements >= 100, "{statements}");

    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = assert_same(&pair).await;
    assert!(rows > 3000, "{rows}");
    // The MySQL tables have the columns PostgreSQL has, typed by the task's mapping, with
    // their NOT NULL and defaults.
    assert_eq!(
        my_columns(&pair, "items"),
        "id bigint(20) NO -, note longtext YES NULL, n decimal(40,12) YES NULL, \
         small bigint(20) YES NULL, vc longtext YES NULL, day datetime(3) YES NULL, \
         extra longtext YES 'fast', tally int(11) YES NULL, late int(11) NO 3"
    );
    assert_eq!(
        my_columns(&pair, "bag"),
        "a int(11) YES NULL, b longtext YES NULL, d int(11) YES 5, e decimal(8,2) YES 1.50, \
         f int(11) YES 4"
    );
    // The rows already there and those written before the change in its transaction hold
    // the stored default.
    let target = |sql: &str| pair.query(&sql.replace("{db}", &quote_my(&pair.target_db)));
    assert_eq!(
        target("SELECT late FROM {db}.items WHERE id IN (8000001, 7000002) ORDER BY id"),
        "9\n3"
    );
    assert_eq!(
        target("SELECT a, e FROM {db}.bag WHERE a BETWEEN 77 AND 79 ORDER BY a"),
        "77\t2.25\n78\t3.00\n79\t1.50"
    );
    assert_eq!(
        target("SELECT a, f FROM {db}.bag WHERE a IN (77, 90) ORDER BY a"),
        "77\t3\n90\t4"
    );
    let clean = dts(&["cleanup", "--config", &task, "--yes"]);
    assert!(clean.status.success(), "{}", text(&clean));
}

/// What cannot be followed stops replication naming the table and the column, and nothing
/// of it is applied: a renamed column, a column added with a volatile default, a retype
/// MySQL would convert otherwise than PostgreSQL did, a stored default the target cannot
/// hold.
#[tokio::test]
async fn column_changes_that_cannot_be_followed_stop_naming_table_and_column() {
    for (change, expected) in [
        (
            "ALTER TABLE tort.t RENAME COLUMN b TO bee",
            "column `b` was renamed to `bee`",
        ),
        (
            "ALTER TABLE tort.t ADD COLUMN u uuid DEFAULT gen_random_uuid()",
            "new column `u` has a default",
        ),
        (
            "ALTER TABLE tort.t ALTER COLUMN b TYPE integer USING length(b)",
            "column `b` of `tort.t` changed at the source",
        ),
        (
            "ALTER TABLE tort.t ADD COLUMN f real DEFAULT 'NaN'",
            "column `f` of `tort.t` changed at the source",
        ),
    ] {
        let pair = PgMy::new(
            "pgmy_refused",
            "CREATE SCHEMA tort; CREATE TABLE tort.t (id int PRIMARY KEY, b text); \
             INSERT INTO tort.t SELECT g, 'b' || g FROM generate_series(1, 10) g;",
        );
        let task = pair.task_file("");
        let text_of_task = std::fs::read_to_string(&task).unwrap().replace(
            "migration = [\"schema\", \"full\"]",
            "migration = [\"schema\", \"full\", \"incremental\"]",
        );
        std::fs::write(&task, text_of_task).unwrap();
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert!(out.status.success(), "{}", text(&out));
        let before = my_columns(&pair, "t");
        dts_testkit::postgres()
            .exec_in(
                &pair.source_db,
                &format!("{change}; INSERT INTO tort.t (id) VALUES (11)"),
            )
            .unwrap();
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains(expected), "{said}");
        assert!(said.contains("tort.t"), "{said}");
        // Nothing of the change was applied.
        assert_eq!(my_columns(&pair, "t"), before);
        assert_eq!(
            pair.query(&format!(
                "SELECT COUNT(*) FROM {}.t",
                quote_my(&pair.target_db)
            )),
            "10"
        );
        let clean = dts(&["cleanup", "--config", &task, "--yes"]);
        assert!(clean.status.success(), "{}", text(&clean));
    }
}
