//! The `dts` command's handling of bad task files, unreachable servers and missing
//! privileges: one clear error, a non-zero exit, and nothing changed in the target.

mod common;

use common::{dts, text, Env};

fn target_schemas(env: &Env) -> String {
    env.pg(&format!(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('{}', 'dts_meta')",
        env.db
    ))
}

#[test]
fn a_bad_task_file_gets_one_clear_error_and_changes_nothing() {
    let env = Env::new("cli_bad", "CREATE TABLE t (id INT PRIMARY KEY);");
    for (extra, expected) in [
        ("colour = \"blue\"\n", "unknown field `colour`"),
        (
            "[policy]\nconflicting_tables = \"maybe\"\n",
            "unknown variant `maybe`",
        ),
        (
            "[full]\nworkers = 0\n",
            "`full.workers` must be between 1 and 64",
        ),
        ("[objects.rename_tables]\n\"t\" = \"u\"\n", "database.table"),
    ] {
        let task = env.task_file("[\"schema\", \"full\"]", extra);
        for command in ["run", "precheck", "plan"] {
            let out = dts(&[command, "--config", task.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {extra}: {}",
                text(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(expected), "{command} {extra}: {}", text(&out));
            assert_eq!(err.lines().count(), 1, "more than one line: {}", text(&out));
        }
    }
    // A malformed URL and a missing file.
    let task = env.dir.join("bad-url.toml");
    std::fs::write(
        &task,
        "source.url = \"oracle://x\"\ntarget.url = \"postgres://y/z\"\nobjects.include = [\"a\"]\n",
    )
    .unwrap();
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with mysql://"));
    let out = dts(&["run", "--config", "/nonexistent/task.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/task.toml"));
    assert_eq!(target_schemas(&env), "0");
}

#[test]
fn unreachable_servers_and_missing_privileges_fail_the_precheck_with_the_fix() {
    let env = Env::new("cli_priv", "CREATE TABLE t (id INT PRIMARY KEY);");
    // Unreachable source: run and precheck exit 1, naming the server, and write nothing.
    let task = env.dir.join("unreachable.toml");
    std::fs::write(
        &task,
        format!(
            "migration = [\"schema\", \"full\"]\nsource.url = \"mysql://root:pw@127.0.0.1:1\"\n\
             target.url = \"{}\"\nobjects.include = [\"{}\"]\n",
            env.pg_url(),
            env.db
        ),
    )
    .unwrap();
    let out = dts(&["precheck", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[FAIL] source.connectivity"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("127.0.0.1:1"), "{}", text(&out));
    assert!(stdout.contains("fix:"), "{}", text(&out));
    assert!(!stdout.contains("pw@"), "password printed: {}", text(&out));
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("source.connectivity"),
        "{}",
        text(&out)
    );

    // A source account without SELECT, and without the replication privileges.
    let user = dts_testkit::unique_name("cli");
    dts_testkit::mariadb()
        .exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .unwrap();
    std::fs::write(
        &task,
        format!(
            "migration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"mysql://{user}:pw@127.0.0.1:{}\"\n\
             target.url = \"{}\"\nobjects.include = [\"{}\"]\n",
            dts_testkit::mariadb().port(),
            env.pg_url(),
            env.db
        ),
    )
    .unwrap();
    let out = dts(&["precheck", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[FAIL] objects.selection") || stdout.contains("[FAIL] source.privileges"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("[FAIL] source.replication_privileges"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("REPLICATION SLAVE"), "{}", text(&out));
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(target_schemas(&env), "0");
}
