//! The SQLite source on a real file made by the `sqlite3` command line tool: the schema of a
//! fixture with every affinity, a rowid alias, `AUTOINCREMENT`, `WITHOUT ROWID`, `STRICT`,
//! indexes, foreign keys, defaults and a generated column; the snapshot reader's chunks and
//! key prober; a missing file.
//!
//! `cargo test -p dts-connectors --test sqlite_source`

#![cfg(feature = "sqlite")]

use std::path::PathBuf;
use std::process::Command;

use dts_connectors::sqlite::{SqliteSnapshot, SqliteSource};
use dts_core::{Chunk, ColumnDefault, ReferentialAction, SnapshotReader, TableName, Value};
use futures::TryStreamExt;

const FIXTURE: &str = include_str!("../../fixtures/sqlite/shop.sql");

/// Runs `sql` in the `sqlite3` command line tool on `path`, the SQL on standard input.
fn sqlite3(path: &std::path::Path, sql: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 command line tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A fresh SQLite file loaded with `sql`.
fn file(name: &str, sql: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dts-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    let out = sqlite3(&path, sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[tokio::test]
async fn reads_every_kind_of_schema_object() {
    let path = file("schema", FIXTURE);
    let source = SqliteSource::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(source.list_schemas().await.unwrap(), ["main"]);
    let catalog = source.read_catalog(&["main".to_string()]).await.unwrap();
    let names: Vec<_> = catalog.tables().map(|t| t.name.name.clone()).collect();
    assert_eq!(names, ["customers", "kinds", "orders", "strict_t", "tags"]);
    let t = |n: &str| catalog.table(&TableName::new("main", n)).unwrap();

    // A rowid alias with AUTOINCREMENT: identity, and the counter past the deleted row.
    let customers = t("customers");
    let id = customers.column("id").unwrap();
    assert!(id.auto_increment && !id.nullable);
    assert_eq!(customers.auto_increment, Some(4));
    assert_eq!(customers.column("name").unwrap().source_type, "varchar(20)");
    assert_eq!(
        customers.column("created").unwrap().default,
        Some(ColumnDefault::CurrentTimestamp(0))
    );
    assert_eq!(
        customers.column("active").unwrap().default,
        Some(ColumnDefault::Literal("1".into()))
    );
    let unique: Vec<_> = customers
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.unique))
        .collect();
    assert_eq!(unique, [("customers_email_key", true)]);
    assert_eq!(customers.estimated_rows, 2);

    // Declared types as written, the typeless column empty; no key: chunked by rowid.
    let kinds = t("kinds");
    let types: Vec<_> = kinds
        .columns
        .iter()
        .map(|c| c.source_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "int",
            "integer",
            "text",
            "blob",
            "real",
            "numeric",
            "decimal(10,2)",
            "",
            "varchar(5)",
            "date",
            "datetime"
        ]
    );
    assert!(kinds.primary_key.is_none());
    assert_eq!(
        kinds.column("v").unwrap().default,
        Some(ColumnDefault::Literal("n'a".into()))
    );

    // WITHOUT ROWID: the text key is the primary key, not an alias.
    let tags = t("tags");
    assert_eq!(tags.primary_key.as_ref().unwrap().columns, ["k"]);
    assert!(!tags.column("k").unwrap().auto_increment);
    assert_eq!(tags.comment.as_deref(), Some(dts_schema::WITHOUT_ROWID));

    // A rowid alias without AUTOINCREMENT; foreign keys with actions, one to a primary key
    // named by default; a generated column; partial and expression indexes left out.
    let orders = t("orders");
    assert!(orders.column("id").unwrap().auto_increment);
    assert_eq!(orders.auto_increment, None);
    let fk = &orders.foreign_keys;
    assert_eq!(fk.len(), 2);
    let to_customers = fk
        .iter()
        .find(|f| f.referenced_table.name == "customers")
        .unwrap();
    assert_eq!(to_customers.columns, ["customer_id"]);
    assert_eq!(to_customers.referenced_columns, ["id"]);
    assert_eq!(to_customers.on_delete, ReferentialAction::Cascade);
    assert_eq!(to_customers.on_update, ReferentialAction::Restrict);
    let to_tags = fk
        .iter()
        .find(|f| f.referenced_table.name == "tags")
        .unwrap();
    assert_eq!(to_tags.referenced_columns, ["k"]);
    let total = orders.column("total").unwrap().generated.clone().unwrap();
    assert_eq!(total.expression, "qty * price");
    assert!(!total.stored);
    let idx = &orders.indexes;
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0].name, "orders_customer");
    let cols: Vec<_> = idx[0]
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.descending))
        .collect();
    assert_eq!(cols, [("customer_id", false), ("qty", true)]);
    let mut omitted: Vec<_> = catalog
        .omitted_indexes
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    omitted.sort_unstable();
    assert_eq!(omitted, ["orders_big", "orders_expr"]);
    assert_eq!(
        orders.column("price").unwrap().default,
        Some(ColumnDefault::Literal("0.5".into()))
    );

    // STRICT: `INT PRIMARY KEY` is no rowid alias; `ANY` kept as declared.
    let strict = t("strict_t");
    assert!(!strict.column("id").unwrap().auto_increment);
    assert_eq!(strict.column("a").unwrap().source_type, "any");
}

#[tokio::test]
async fn reads_chunks_by_rowid_and_key_in_one_transaction() {
    let path = file("chunks", FIXTURE);
    let source = SqliteSource::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let catalog = source.read_catalog(&["main".to_string()]).await.unwrap();
    let kinds = catalog.table(&TableName::new("main", "kinds")).unwrap();
    let (_snapshot, mut readers) = SqliteSnapshot::open(&path, 2).await.unwrap();

    // Rows written after the snapshot began are not seen by any of its readers.
    let out = sqlite3(&path, "INSERT INTO kinds (seq) VALUES (6);");
    // Outside WAL mode the writer waits for the readers' lock: it fails as busy.
    assert!(!out.status.success());

    let key = vec!["rowid".to_string()];
    let mut prober = readers[0].key_prober(kinds, &key).unwrap();
    let (first, last) = prober.key_range().await.unwrap().unwrap();
    assert_eq!((first, last), (vec![Value::Int(1)], vec![Value::Int(5)]));
    assert_eq!(
        prober.key_after(Some(&[Value::Int(1)]), 2).await.unwrap(),
        Some(vec![Value::Int(3)])
    );
    drop(prober);
    let chunk = Chunk {
        index: 0,
        key: key.clone(),
        lower: Some(vec![Value::Int(2)]),
        upper: Some(vec![Value::Int(5)]),
    };
    let rows: Vec<_> = readers[1]
        .read_chunk(kinds, &chunk)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|b| b.rows)
        .collect();
    let seqs: Vec<_> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(seqs, [Value::Int(2), Value::Int(3), Value::Int(4)]);
    // Storage classes as stored: text, blob, real, integer.
    assert_eq!(rows[0][2], Value::Text("ünïcode ✓ 𝄞".into()));
    assert_eq!(rows[0][3], Value::Bytes(vec![]));
    assert_eq!(rows[0][4], Value::Double(f64::MAX));
    assert_eq!(rows[0][7], Value::Text("text".into()));
    assert_eq!(rows[1][7], Value::Double(2.5));

    let whole: usize = readers[0]
        .read_chunk(kinds, &Chunk::whole_table())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|b| b.rows.len())
        .sum();
    assert_eq!(whole, 5);
}

#[tokio::test]
async fn in_wal_mode_readers_share_one_transaction_and_writers_go_on() {
    let path = file(
        "wal",
        "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); \
         INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    );
    let source = SqliteSource::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(source.info().journal_mode, "wal");
    let catalog = source.read_catalog(&["main".to_string()]).await.unwrap();
    let t = catalog.table(&TableName::new("main", "t")).unwrap();
    let (_snapshot, mut readers) = SqliteSnapshot::open(&path, 2).await.unwrap();
    // The writer commits; neither reader sees its row.
    let out = sqlite3(&path, "INSERT INTO t VALUES (3, 'c');");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for reader in &mut readers {
        let rows: usize = reader
            .read_chunk(t, &Chunk::whole_table())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .map(|b| b.rows.len())
            .sum();
        assert_eq!(rows, 2);
    }
}

#[tokio::test]
async fn null_in_a_rowid_tables_primary_key_is_refused_by_name() {
    let path = file(
        "nullkey",
        "CREATE TABLE t (k TEXT PRIMARY KEY, v INT); INSERT INTO t VALUES ('a', 1), (NULL, 2);",
    );
    let source = SqliteSource::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let e = source
        .read_catalog(&["main".to_string()])
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("primary key column `main.t.k` holds NULL in 1 rows"),
        "{e}"
    );
}

#[tokio::test]
async fn a_missing_file_is_an_error_naming_it() {
    let e = SqliteSource::connect("sqlite:///nonexistent/dir/app.db")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), dts_core::ErrorKind::Connection);
    assert!(
        e.message()
            .contains("`/nonexistent/dir/app.db` does not exist"),
        "{e}"
    );
    let e = dts_connectors::Source::connect("sqlite://missing.db")
        .await
        .unwrap_err();
    assert!(
        e.report().contains("`missing.db` does not exist"),
        "{}",
        e.report()
    );
}
