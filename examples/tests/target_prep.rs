//! What a task does with target tables that exist before it (`policy.conflicting_tables`):
//! `truncate` keeps them emptied before the copy, `drop` drops them and creates them as the
//! task plans them; the precheck names them either way, and nothing is touched by a
//! precheck. MySQL/MariaDB → PostgreSQL on the testkit's servers:
//! `cargo test -p dts-examples --test target_prep`.

mod common;

use common::{dts, text, Env};

const FIXTURE: &str = "CREATE TABLE a (id int PRIMARY KEY, v varchar(10));
     INSERT INTO a VALUES (1, 'one'), (2, 'two'), (3, 'three');";

/// The target table as it stood before the task: another column type, an extra column and
/// rows the source does not have.
fn existing(env: &Env) {
    let db = &env.db;
    env.pg(&format!(
        "CREATE SCHEMA {db}; CREATE TABLE {db}.a (id integer PRIMARY KEY, v text, old int);
         INSERT INTO {db}.a VALUES (1, 'stale', 7), (1000, 'extra', 8);"
    ));
}

#[test]
fn truncate_empties_and_drop_recreates_an_existing_table_named_by_the_precheck() {
    for (policy, columns) in [("truncate", "id,v,old"), ("drop", "id,v")] {
        let env = Env::new(&format!("prep_{policy}"), FIXTURE);
        existing(&env);
        let db = &env.db;
        let task = env.task_file(
            "[\"schema\", \"full\"]",
            &format!("[policy]\nconflicting_tables = \"{policy}\"\n"),
        );
        let task = task.to_str().unwrap();
        // The precheck names the table and what will happen to it, and changes nothing.
        let out = dts(&["precheck", "--config", task]);
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        let line = shown
            .lines()
            .find(|l| l.contains("target.conflicting_tables"))
            .unwrap_or_else(|| panic!("{shown}"));
        let what = if policy == "drop" {
            "DROPPED"
        } else {
            "EMPTIED"
        };
        assert!(
            line.contains(&format!("`{db}.a`")) && line.contains(what),
            "{shown}"
        );
        assert_eq!(env.pg(&format!("SELECT count(*) FROM {db}.a")), "2");

        let out = dts(&["run", "--config", task]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            env.pg(&format!(
                "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM {db}.a"
            )),
            "1:one,2:two,3:three"
        );
        assert_eq!(
            env.pg(&format!(
                "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) \
                 FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = 'a'"
            )),
            columns
        );
        // Run again: nothing is emptied or dropped a second time.
        env.my("INSERT INTO a VALUES (4, 'four')");
        let out = dts(&["run", "--config", task]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(env.pg(&format!("SELECT count(*) FROM {db}.a")), "3");
    }
}

/// A table another target table references cannot be emptied or dropped: the run stops
/// naming it, and the tables are left as they were.
#[test]
fn a_referenced_table_is_refused_naming_it() {
    let env = Env::new("prep_ref", FIXTURE);
    existing(&env);
    let db = &env.db;
    env.pg(&format!(
        "CREATE TABLE {db}.keeper (id int PRIMARY KEY REFERENCES {db}.a (id)); \
         INSERT INTO {db}.keeper VALUES (1000)"
    ));
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        "[policy]\nconflicting_tables = \"drop\"\n",
    );
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("dropping target tables \"{db}\".\"a\""))
            || err.contains(&format!("{db}.a")),
        "{}",
        text(&out)
    );
    assert_eq!(env.pg(&format!("SELECT count(*) FROM {db}.a")), "2");
}

/// The same into a MySQL/MariaDB target (MySQL → MySQL, the source database renamed to a
/// target database holding the table already); a referenced table cannot be emptied.
#[test]
fn into_mysql_truncate_empties_and_drop_recreates_and_a_referenced_table_is_refused() {
    let my = dts_testkit::mariadb();
    for policy in ["truncate", "drop", "refused"] {
        let source_db = my.create_unique_database("prep_my_src").unwrap();
        my.exec_in(&source_db, FIXTURE).unwrap();
        let target_db = my.create_unique_database("prep_my_dst").unwrap();
        my.exec_in(
            &target_db,
            "CREATE TABLE a (id int PRIMARY KEY, v text, old int);
             INSERT INTO a VALUES (1, 'stale', 7), (1000, 'extra', 8);",
        )
        .unwrap();
        if policy == "refused" {
            my.exec_in(
                &target_db,
                "CREATE TABLE keeper (id int PRIMARY KEY, FOREIGN KEY (id) REFERENCES a (id));
                 INSERT INTO keeper VALUES (1000);",
            )
            .unwrap();
        }
        let dir = std::env::temp_dir().join(format!("dts-test-{target_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        let task = dir.join("task.toml");
        std::fs::write(
            &task,
            format!(
                "name = \"{target_db}\"\nmigration = [\"schema\", \"full\"]\n\
                 source.url = \"{url}\"\ntarget.url = \"{url}\"\n\
                 objects.include = [\"{source_db}\"]\n\
                 objects.rename_databases = {{ \"{source_db}\" = \"{target_db}\" }}\n\
                 [policy]\nconflicting_tables = \"{}\"\n",
                if policy == "drop" { "drop" } else { "truncate" },
                url = my.url()
            ),
        )
        .unwrap();
        let task = task.to_str().unwrap();
        let rows = || {
            my.query_in(
                &target_db,
                "SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM a",
            )
            .unwrap()
            .trim()
            .to_string()
        };
        let out = dts(&["run", "--config", task]);
        if policy == "refused" {
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(&format!("`{target_db}`.`a`")),
                "{}",
                text(&out)
            );
            assert_eq!(rows(), "1:stale,1000:extra");
            continue;
        }
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(rows(), "1:one,2:two,3:three");
        let columns = my
            .query(&format!(
                "SELECT GROUP_CONCAT(column_name ORDER BY ordinal_position) \
                 FROM information_schema.columns \
                 WHERE table_schema = '{target_db}' AND table_name = 'a'"
            ))
            .unwrap();
        let expected = if policy == "drop" { "id,v" } else { "id,v,old" };
        assert_eq!(columns.trim(), expected);
    }
}
