//! The `copy_table` example run as written against private servers.

mod common;

use std::process::Command;

use common::{assert_table_equal, text, Env};

const ITEMS: &str = "
CREATE TABLE items (
  id INT NOT NULL, sub SMALLINT UNSIGNED NOT NULL, name VARCHAR(40), price DECIMAL(30,10),
  big BIGINT UNSIGNED, at DATETIME(6), day DATE, payload BLOB, doc JSON, flag BIT(3),
  parent INT, PRIMARY KEY (id, sub), KEY name_idx (name));
INSERT INTO items VALUES
  (1, 1, 'one', 1.5, 18446744073709551615, '2024-02-29 12:34:56.123456', '2024-02-29',
   x'00ff10', '{\"a\": [1, 2.50]}', b'101', NULL),
  (1, 2, 'öne ✓', -99999999999999999999.0000000001, 0, '1970-01-01 00:00:00', '1000-01-01',
   x'', '[]', b'000', 1),
  (2, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 7, 'it''s \"quoted\"\\ttab', 0, 42, '9999-12-31 23:59:59.999999', '9999-12-31',
   REPEAT(x'ab', 3000), '{}', b'111', 2);
";

#[tokio::test]
async fn copy_table_copies_one_table_value_for_value() {
    let env = Env::new("ex_copy", ITEMS);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_copy_table"))
            .args([format!("{}.items", env.db), env.mysql_url(), env.pg_url()])
            // One row per chunk: the key prober plans four chunks, two workers copy them.
            .env("DTS_ROWS_PER_CHUNK", "1")
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("4 rows copied")
            && String::from_utf8_lossy(&out.stdout).contains("(4 chunks, 0 done before)"),
        "{}",
        text(&out)
    );
    assert_eq!(assert_table_equal(&env, "items", &env.db).await, 4);
    // The secondary index was built after the data.
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = '{}' AND tablename = 'items'",
            env.db
        )),
        "2"
    );

    // A second run finds every chunk done and copies nothing.
    let again = run();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 rows copied")
            && String::from_utf8_lossy(&again.stdout).contains("(0 chunks, 4 done before)"),
        "{}",
        text(&again)
    );
    assert_eq!(assert_table_equal(&env, "items", &env.db).await, 4);
}
