//! The row filter evaluator against the real servers: each condition is evaluated by
//! MariaDB / PostgreSQL on a table of rows (NULLs, trailing spaces, case, decimals, floats,
//! dates, LIKE escapes), and by dts on the same rows as the source readers deliver them;
//! the three-valued results must agree on every row (unknown is told apart from false by
//! evaluating `NOT (condition)` as well).

use std::sync::Arc;

use dts_core::{Column, Date, DateTime, Engine, RowImage, Table, TableName, Value};
use dts_schema::filter::RowFilter;

fn table(name: TableName, columns: Vec<Column>) -> Table {
    Table {
        name,
        columns,
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

fn col(name: &str, ty: &str, collation: Option<&str>) -> Column {
    let mut c = Column::new(name, ty);
    c.collation = collation.map(String::from);
    c.charset = collation.map(|c| c.split('_').next().unwrap().to_string());
    c
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap())
}

fn date(s: &str) -> Value {
    Value::Date(s.parse::<Date>().unwrap())
}

fn dt(s: &str) -> Value {
    Value::DateTime(s.parse::<DateTime>().unwrap())
}

/// dts's verdict: `T`, `F` or `N` (unknown).
fn verdict(engine: Engine, t: &Table, cond: &str, row: &RowImage) -> char {
    let yes = RowFilter::parse(engine, t, cond).unwrap();
    let no = RowFilter::parse(engine, t, &format!("NOT ({cond})")).unwrap();
    assert!(
        yes.unevaluable().is_none(),
        "{cond}: {:?}",
        yes.unevaluable()
    );
    match (yes.matches(row).unwrap(), no.matches(row).unwrap()) {
        (true, false) => 'T',
        (false, true) => 'F',
        (false, false) => 'N',
        (true, true) => panic!("{cond} and its negation both hold"),
    }
}

fn select(conditions: &[&str], from: &str) -> String {
    let cases: Vec<String> = conditions
        .iter()
        .map(|c| format!("CASE WHEN ({c}) THEN 'T' WHEN NOT ({c}) THEN 'F' ELSE 'N' END"))
        .collect();
    format!("SELECT id, {} FROM {from} ORDER BY id", cases.join(", "))
}

fn compare(
    engine: Engine,
    t: &Table,
    conditions: &[&str],
    rows: &[Vec<Value>],
    output: &str,
    separator: char,
) {
    let names: Arc<Vec<String>> = Arc::new(t.columns.iter().map(|c| c.name.clone()).collect());
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), rows.len(), "{output}");
    let mut checked = 0;
    for (line, values) in lines.iter().zip(rows) {
        let fields: Vec<&str> = line.split(separator).collect();
        let row = RowImage {
            columns: names.clone(),
            values: values.clone(),
        };
        for (i, cond) in conditions.iter().enumerate() {
            let server = fields[i + 1].trim().chars().next().unwrap();
            let ours = verdict(engine, t, cond, &row);
            assert_eq!(
                ours, server,
                "{engine:?}: `{cond}` on row {} ({:?})",
                fields[0], values
            );
            checked += 1;
        }
    }
    println!("{engine:?}: {checked} evaluations agree");
}

#[test]
fn mariadb_and_dts_agree_on_every_row() {
    let my = dts_testkit::mariadb();
    let db = my.create_unique_database("flt_eval").unwrap();
    my.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY, \
         s VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
         p VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin, \
         g VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, \
         n DECIMAL(10,2), i INT, f DOUBLE, d DATE, dt DATETIME(6), r FLOAT);
         INSERT INTO t VALUES
         (1, 'ab', 'ab', 'ab', 1.50, 1, 0.5, '2024-01-01', '2024-01-01 00:00:00', 0.1),
         (2, 'ab ', 'ab ', 'AB', 2.50, 2, 0.1, '2023-12-31', '2024-01-01 12:00:00.5', 0.5),
         (3, 'AB', 'AB', 'Ab ', -1.00, 3, -0.0, '2024-02-29', '2023-06-30 23:59:59', -0.0),
         (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (5, 'a_b', 'a_b', 'x', 0.00, 0, 1e300, '1999-01-01', '2024-01-01 11:59:59.999999', 3e38),
         (6, 'a%b', 'a%b', 'y', 100.00, -5, 0.25, '2024-01-01', '2024-01-02 00:00:00', 0.25),
         (7, 'axb', 'a\\tb', 'z', 2.00, 2, 2, '2024-01-02', '2024-01-01 12:00:00', 2),
         (8, 'a\\t', 'a\\t', '', 1.5, 1, 1.5, '2024-01-01', '2024-01-01 12:00:00', 1.5),
         (9, '', '', NULL, 99999999.99, 2147483647, -1e-300, '2000-02-29', '1970-01-01 00:00:00', 0.1);",
    )
    .unwrap();
    let t = table(
        TableName::new(&db, "t"),
        vec![
            col("id", "int(11)", None),
            col("s", "varchar(10)", Some("utf8mb4_bin")),
            col("p", "varchar(10)", Some("utf8mb4_nopad_bin")),
            col("g", "varchar(10)", Some("utf8mb4_general_ci")),
            col("n", "decimal(10,2)", None),
            col("i", "int(11)", None),
            col("f", "double", None),
            col("d", "date", None),
            col("dt", "datetime(6)", None),
            col("r", "float", None),
        ],
    );
    let rows = vec![
        vec![
            Value::Int(1),
            text("ab"),
            text("ab"),
            text("ab"),
            dec("1.50"),
            Value::Int(1),
            Value::Double(0.5),
            date("2024-01-01"),
            dt("2024-01-01 00:00:00"),
            Value::Float(0.1_f32),
        ],
        vec![
            Value::Int(2),
            text("ab "),
            text("ab "),
            text("AB"),
            dec("2.50"),
            Value::Int(2),
            Value::Double(0.1),
            date("2023-12-31"),
            dt("2024-01-01 12:00:00.5"),
            Value::Float(0.5_f32),
        ],
        vec![
            Value::Int(3),
            text("AB"),
            text("AB"),
            text("Ab "),
            dec("-1.00"),
            Value::Int(3),
            Value::Double(-0.0),
            date("2024-02-29"),
            dt("2023-06-30 23:59:59"),
            Value::Float(-0.0_f32),
        ],
        vec![
            Value::Int(4),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Int(5),
            text("a_b"),
            text("a_b"),
            text("x"),
            dec("0.00"),
            Value::Int(0),
            Value::Double(1e300),
            date("1999-01-01"),
            dt("2024-01-01 11:59:59.999999"),
            Value::Float(3e38_f32),
        ],
        vec![
            Value::Int(6),
            text("a%b"),
            text("a%b"),
            text("y"),
            dec("100.00"),
            Value::Int(-5),
            Value::Double(0.25),
            date("2024-01-01"),
            dt("2024-01-02 00:00:00"),
            Value::Float(0.25_f32),
        ],
        vec![
            Value::Int(7),
            text("axb"),
            text("a\tb"),
            text("z"),
            dec("2.00"),
            Value::Int(2),
            Value::Double(2.0),
            date("2024-01-02"),
            dt("2024-01-01 12:00:00"),
            Value::Float(2.0_f32),
        ],
        vec![
            Value::Int(8),
            text("a\t"),
            text("a\t"),
            text(""),
            dec("1.50"),
            Value::Int(1),
            Value::Double(1.5),
            date("2024-01-01"),
            dt("2024-01-01 12:00:00"),
            Value::Float(1.5_f32),
        ],
        vec![
            Value::Int(9),
            text(""),
            text(""),
            Value::Null,
            dec("99999999.99"),
            Value::Int(2147483647),
            Value::Double(-1e-300),
            date("2000-02-29"),
            dt("1970-01-01 00:00:00"),
            Value::Float(0.1_f32),
        ],
    ];
    let conditions = [
        "s = 'ab'",
        "s = 'ab   '",
        "s <> 'AB'",
        "s < 'ab'",
        "s > 'a'",
        "s >= 'a '",
        "s < 'a'",
        "p = 'ab'",
        "p < 'ab '",
        "p > 'a'",
        "s IN ('ab', NULL)",
        "s NOT IN ('ab', NULL)",
        "s NOT IN ('x', 'AB')",
        "s LIKE 'a%'",
        "s LIKE 'a\\_b'",
        "s LIKE 'a\\%b'",
        "s LIKE 'a!%b' ESCAPE '!'",
        "s LIKE 'ab'",
        "s LIKE '_b%'",
        "s NOT LIKE '%b'",
        "s LIKE ''",
        "g COLLATE utf8mb4_bin = 'AB'",
        "n = 1.5",
        "n BETWEEN 1 AND 2.50",
        "n NOT BETWEEN 1 AND 2",
        "n > -1",
        "n >= 99999999.99",
        "i > 2 OR n IS NULL",
        "NOT (i = 1) AND s IS NOT NULL",
        "i IN (1, 2) AND n > 0",
        "i = TRUE",
        "i = n",
        "i < 1.5",
        "f > 0.1",
        "f = 0.5",
        "f = 0",
        "f < 1e-300",
        "f > n",
        "r = 0.1",
        "r > 0.1",
        "r = 0.5",
        "r < f",
        "r >= 1e38",
        "d >= '2024-01-01'",
        "d = DATE '2024-02-29'",
        "d BETWEEN '2000-01-01' AND '2023-12-31'",
        "dt < '2024-01-01 12:00:00'",
        "dt >= '2024-01-01'",
        "dt = '2024-01-01 12:00:00.500000'",
        "dt > TIMESTAMP '2024-01-01 11:59:59.999999'",
        "(s = 'ab' OR i IS NULL) AND NOT (d IS NULL)",
        "s IS NULL OR n IS NULL",
        "NULL",
        "TRUE AND s = 'ab'",
    ];
    let out = my.query_in(&db, &select(&conditions, "t")).unwrap();
    compare(Engine::MySql, &t, &conditions, &rows, &out, '\t');
}

#[test]
fn postgres_and_dts_agree_on_every_row() {
    let pg = dts_testkit::postgres();
    let db = dts_testkit::unique_name("flt_eval");
    pg.create_database(&db).unwrap();
    pg.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY, s TEXT, c TEXT COLLATE \"C\", b CHAR(5), \
         v VARCHAR(10), n NUMERIC(10,2), i BIGINT, f FLOAT8, r REAL, d DATE, dt TIMESTAMP, \
         flag BOOLEAN);
         INSERT INTO t VALUES
         (1, 'ab', 'ab', 'ab', 'ab', 1.50, 1, 0.5, 0.5, '2024-01-01', '2024-01-01 00:00:00', true),
         (2, 'ab ', 'ab ', 'ab ', 'ab ', 2.50, 2, 0.1, 0.1, '2023-12-31', '2024-01-01 12:00:00.5', false),
         (3, 'AB', 'AB', 'AB', 'AB', -1.00, 3, '-0', '-0', '2024-02-29', '2023-06-30 23:59:59', NULL),
         (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (5, 'a_b', 'a_b', 'a_b', 'a_b', 0.00, 0, 'NaN', 'NaN', '1999-01-01', '2024-01-01 11:59:59.999999', true),
         (6, 'a%b', 'a%b', 'a%b', 'a%b', 100.00, -5, 0.25, 0.25, '2024-01-01', '2024-01-02 00:00:00', false),
         (7, 'a\\b', 'a\\b', 'ä', 'ä', 2.00, 2, 2, 2, '2024-01-02', '2024-01-01 12:00:00', true),
         (8, '', '', '', '', 99999999.99, 9223372036854775807, 1e300, 3e38, '2000-02-29', '1970-01-01 00:00:00', false);",
    )
    .unwrap();
    let t = table(
        TableName::new("public", "t"),
        vec![
            col("id", "integer", None),
            col("s", "text", None),
            col("c", "text", Some("C")),
            col("b", "character(5)", None),
            col("v", "character varying(10)", None),
            col("n", "numeric(10,2)", None),
            col("i", "bigint", None),
            col("f", "double precision", None),
            col("r", "real", None),
            col("d", "date", None),
            col("dt", "timestamp without time zone", None),
            col("flag", "boolean", None),
        ],
    );
    let f32v = |x: f32| Value::Float(x);
    let rows = vec![
        vec![
            Value::Int(1),
            text("ab"),
            text("ab"),
            text("ab   "),
            text("ab"),
            dec("1.50"),
            Value::Int(1),
            Value::Double(0.5),
            f32v(0.5),
            date("2024-01-01"),
            dt("2024-01-01 00:00:00"),
            Value::Bool(true),
        ],
        vec![
            Value::Int(2),
            text("ab "),
            text("ab "),
            text("ab   "),
            text("ab "),
            dec("2.50"),
            Value::Int(2),
            Value::Double(0.1),
            f32v(0.1),
            date("2023-12-31"),
            dt("2024-01-01 12:00:00.5"),
            Value::Bool(false),
        ],
        vec![
            Value::Int(3),
            text("AB"),
            text("AB"),
            text("AB   "),
            text("AB"),
            dec("-1.00"),
            Value::Int(3),
            Value::Double(-0.0),
            f32v(-0.0),
            date("2024-02-29"),
            dt("2023-06-30 23:59:59"),
            Value::Null,
        ],
        vec![
            Value::Int(4),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Int(5),
            text("a_b"),
            text("a_b"),
            text("a_b  "),
            text("a_b"),
            dec("0.00"),
            Value::Int(0),
            Value::Double(f64::NAN),
            f32v(f32::NAN),
            date("1999-01-01"),
            dt("2024-01-01 11:59:59.999999"),
            Value::Bool(true),
        ],
        vec![
            Value::Int(6),
            text("a%b"),
            text("a%b"),
            text("a%b  "),
            text("a%b"),
            dec("100.00"),
            Value::Int(-5),
            Value::Double(0.25),
            f32v(0.25),
            date("2024-01-01"),
            dt("2024-01-02 00:00:00"),
            Value::Bool(false),
        ],
        vec![
            Value::Int(7),
            text("a\\b"),
            text("a\\b"),
            text("ä    "),
            text("ä"),
            dec("2.00"),
            Value::Int(2),
            Value::Double(2.0),
            f32v(2.0),
            date("2024-01-02"),
            dt("2024-01-01 12:00:00"),
            Value::Bool(true),
        ],
        vec![
            Value::Int(8),
            text(""),
            text(""),
            text("     "),
            text(""),
            dec("99999999.99"),
            Value::Int(i64::MAX),
            Value::Double(1e300),
            f32v(3e38),
            date("2000-02-29"),
            dt("1970-01-01 00:00:00"),
            Value::Bool(false),
        ],
    ];
    let conditions = [
        "s = 'ab'",
        "s = 'ab '",
        "s <> 'AB'",
        "s IN ('ab', NULL)",
        "s NOT IN ('ab', NULL)",
        "s NOT IN ('x', 'AB')",
        "s LIKE 'a%'",
        "s LIKE 'a\\_b'",
        "s LIKE 'a\\%b'",
        "s LIKE 'a\\\\b'",
        "s LIKE 'a!%b' ESCAPE '!'",
        "s LIKE '_b%'",
        "s NOT LIKE '%b'",
        "s LIKE ''",
        "c < 'ab'",
        "c > 'a'",
        "c >= 'AB'",
        "c < 'ä'",
        "s COLLATE \"C\" BETWEEN 'a' AND 'ab'",
        "b = 'ab'",
        "b = 'ab  '",
        "b LIKE 'ab'",
        "b LIKE 'ab%'",
        "b LIKE '% '",
        "b COLLATE \"C\" < 'ac'",
        "b = ''",
        "v = 'ab'",
        "v LIKE '_'",
        "n = 1.5",
        "n BETWEEN 1 AND 2.50",
        "n NOT BETWEEN 1 AND 2",
        "n >= 99999999.99",
        "i > 2 OR n IS NULL",
        "i >= 9223372036854775807",
        "i IN (1, 2) AND n > 0",
        "i = n",
        "i < 1.5",
        "f > 0.1",
        "f = 0",
        "f > 100000000000000000000",
        "f > 1000",
        "r = 0.1",
        "r > 0.1",
        "r < f",
        "f > n",
        "d >= '2024-01-01'",
        "d = DATE '2024-02-29'",
        "dt < '2024-01-01 12:00:00'",
        "dt >= '2024-01-01'",
        "dt = '2024-01-01 12:00:00.5'",
        "flag",
        "NOT flag",
        "flag IS TRUE",
        "flag IS NOT FALSE",
        "flag = false",
        "flag OR s = 'AB'",
        "NULL OR flag",
    ];
    let out = pg.query_in(&db, &select(&conditions, "t")).unwrap();
    compare(Engine::Postgres, &t, &conditions, &rows, &out, '|');
}
