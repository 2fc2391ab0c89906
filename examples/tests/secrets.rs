//! Secrets never show: a whole run (schema, full load, replication) with trace logging, and
//! a failing one, leave the source password nowhere in the output, the log or the task
//! state in the target.

mod common;

use std::process::Command;

use common::Env;

/// A password with the characters URLs and shells treat specially.
const PASSWORD: &str = "s3cr3t/@?#pw";

fn encoded(password: &str) -> String {
    password
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('@', "%40")
        .replace('?', "%3F")
        .replace('#', "%23")
}

fn dts_traced(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(args)
        .env("DTS_LOG", "trace")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_no_secret(what: &str, text: &str) {
    for form in [
        PASSWORD.to_string(),
        encoded(PASSWORD),
        "s3cr3t".to_string(),
    ] {
        assert!(
            !text.contains(&form),
            "{what} shows the password (as `{form}`):\n{}",
            text.chars().take(4000).collect::<String>()
        );
    }
}

#[tokio::test]
async fn the_password_appears_in_no_output_log_or_task_state() {
    let env = Env::new(
        "secrets",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a');",
    );
    let my = dts_testkit::mariadb();
    let user = dts_testkit::unique_name("sec");
    my.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%';"
    ))
    .unwrap();
    let source = format!(
        "mysql://{user}:{}@127.0.0.1:{}",
        encoded(PASSWORD),
        my.port()
    );
    let write_task = |source: &str| {
        let path = env.dir.join("task.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"t\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
                 source.url = \"{source}\"\ntarget.url = \"{}\"\n\
                 objects.include = [\"{}\"]\n",
                env.pg_url(),
                env.db
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };

    // A whole run, traced: precheck, schema, full load, replication of a later change.
    let task = write_task(&source);
    let (ok, text) = dts_traced(&["run", "--config", &task, "--until-caught-up"]);
    assert!(ok, "{text}");
    assert_no_secret("the first run", &text);
    env.my("INSERT INTO t VALUES (2, 'b')");
    let (ok, text) = dts_traced(&["run", "--config", &task, "--until-caught-up"]);
    assert!(ok, "{text}");
    assert_no_secret("the replicating run", &text);
    let (_, text) = dts_traced(&["precheck", "--config", &task]);
    assert_no_secret("the precheck", &text);
    assert_eq!(
        env.pg(&format!("SELECT count(*) FROM {}.t", env.db)),
        "2",
        "the run did its work"
    );

    // Everything the task stored in the target.
    let tables = env.pg(
        "SELECT string_agg(table_name, ' ') FROM information_schema.tables \
         WHERE table_schema = 'dts_meta'",
    );
    assert!(!tables.is_empty());
    for table in tables.split_whitespace() {
        let rows = env.pg(&format!(
            "SELECT coalesce(string_agg(row_to_json(r)::text, E'\\n'), '') FROM dts_meta.{table} r"
        ));
        assert_no_secret(&format!("dts_meta.{table}"), &rows);
    }

    // Failures: a wrong password, and an unreachable source.
    let wrong = source.replace(&encoded(PASSWORD), &encoded("s3cr3t/@?#wrong"));
    let task = write_task(&wrong);
    let (ok, text) = dts_traced(&["run", "--config", &task]);
    assert!(!ok, "{text}");
    assert_no_secret("a run with a wrong password", &text);
    assert!(
        text.contains(&user) || text.contains("***"),
        "the error names the account or the redacted url: {text}"
    );
    let unreachable = source.replace(&format!(":{}", my.port()), ":1");
    let task = write_task(&unreachable);
    let (ok, text) = dts_traced(&["precheck", "--config", &task]);
    assert!(!ok, "{text}");
    assert_no_secret("a precheck of an unreachable source", &text);
}
