//! Starts real servers from the installed binaries (or uses `DTS_TEST_MYSQL_URL` /
//! `DTS_TEST_PG_URL`) and checks that they are configured and managed as documented.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use dts_testkit::{
    mariadb, postgres, unique_name, Error, MariaDb, Postgres, TestCertificates, TlsAccount,
};

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn accepts_tcp(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The value column of a `SHOW VARIABLES LIKE '<name>'` row.
fn variable(server: &MariaDb, name: &str) -> String {
    let row = server
        .query(&format!("SHOW VARIABLES LIKE '{name}'"))
        .unwrap();
    let (found, value) = row.split_once('\t').unwrap();
    assert_eq!(found, name);
    value.to_owned()
}

#[test]
fn shared_mariadb_logs_full_rows_with_metadata() {
    let server = mariadb();
    assert_eq!(server.query("SELECT 1").unwrap(), "1");
    assert!(std::ptr::eq(server, mariadb()));
    if server.is_external() {
        return;
    }
    assert_eq!(
        server.url(),
        format!("mysql://root@127.0.0.1:{}", server.port())
    );
    assert_eq!(
        server.url_for("shop"),
        format!("mysql://root@127.0.0.1:{}/shop", server.port())
    );
    assert!(server.socket().unwrap().exists());
    for (name, expected) in [
        ("binlog_row_metadata", "FULL"),
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("server_id", "1"),
        ("bind_address", "127.0.0.1"),
        ("skip_name_resolve", "ON"),
        ("local_infile", "ON"),
        ("character_set_server", "utf8mb4"),
        ("collation_server", "utf8mb4_general_ci"),
        ("max_allowed_packet", "1073741824"),
        ("innodb_buffer_pool_size", "268435456"),
        ("innodb_log_file_size", "268435456"),
        ("innodb_flush_log_at_trx_commit", "2"),
        ("sync_binlog", "0"),
    ] {
        assert_eq!(variable(server, name), expected, "variable {name}");
    }
}

#[test]
fn mariadb_has_real_accounts_and_privileges() {
    let server = mariadb();
    if server.is_external() {
        return;
    }
    // Root without password over TCP, by address and by the name `localhost`.
    assert_eq!(
        server.query("SELECT CURRENT_USER()").unwrap(),
        "root@127.0.0.1"
    );
    let by_name = MariaDb::external(&format!("mysql://root@localhost:{}", server.port())).unwrap();
    assert_eq!(by_name.query("SELECT 1").unwrap(), "1");
    // Root without password over the socket.
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", server.socket().unwrap().display()))
        .args(["--user=root", "--batch", "--skip-column-names"])
        .args(["--execute", "SELECT CURRENT_USER()"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "root@localhost"
    );

    // Grants are enforced.
    let db = server.create_unique_database("grants").unwrap();
    let user = unique_name("limited");
    server
        .exec(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p@ss word';\
             GRANT SELECT ON `{db}`.* TO '{user}'@'127.0.0.1';"
        ))
        .unwrap();
    let limited = MariaDb::external(&format!(
        "mysql://{user}:p%40ss%20word@127.0.0.1:{}",
        server.port()
    ))
    .unwrap();
    assert_eq!(
        limited.query("SELECT CURRENT_USER()").unwrap(),
        format!("{user}@127.0.0.1")
    );
    let denied = limited.exec_in(&db, "CREATE TABLE t (id INT)").unwrap_err();
    assert!(matches!(denied, Error::Command { .. }), "{denied:?}");
    assert!(denied.to_string().contains("denied"), "{denied}");
    assert!(!format!("{limited:?}").contains("p%40ss"));
    server
        .exec(&format!("DROP USER '{user}'@'127.0.0.1'"))
        .unwrap();
    server.drop_database(&db).unwrap();
}

#[test]
fn shared_postgres_decodes_logically() {
    let server = postgres();
    assert_eq!(server.query("SELECT 1").unwrap(), "1");
    assert!(std::ptr::eq(server, postgres()));
    assert_eq!(server.query("SHOW wal_level").unwrap(), "logical");
    if server.is_external() {
        return;
    }
    assert_eq!(
        server.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", server.port())
    );
    for (name, expected) in [
        ("max_replication_slots", "20"),
        ("max_wal_senders", "20"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("shared_buffers", "256MB"),
        ("max_connections", "200"),
        ("listen_addresses", "127.0.0.1"),
        ("server_encoding", "UTF8"),
    ] {
        assert_eq!(
            server.query(&format!("SHOW {name}")).unwrap(),
            expected,
            "setting {name}"
        );
    }
    assert_eq!(
        server
            .query("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
            .unwrap(),
        "t"
    );

    // Replication connections are trusted, and logical slots work.
    let output = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "IDENTIFY_SYSTEM", "-d"])
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres replication=database",
            server.port()
        ))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let db = server.create_unique_database("slots").unwrap();
    let slot = unique_name("slot");
    server
        .exec_in(
            &db,
            &format!(
                "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');\
                 SELECT pg_drop_replication_slot('{slot}');"
            ),
        )
        .unwrap();
    server.drop_database(&db).unwrap();
}

#[test]
fn each_test_gets_separate_databases() {
    let my = mariadb();
    let (a, b) = (
        my.create_unique_database("sep").unwrap(),
        my.create_unique_database("sep").unwrap(),
    );
    assert_ne!(a, b);
    my.exec_in(
        &a,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    assert_eq!(my.query_in(&a, "SELECT COUNT(*) FROM t").unwrap(), "2");
    assert!(my.query_in(&b, "SELECT COUNT(*) FROM t").is_err());
    // Creating again starts from an empty database.
    my.create_database(&a).unwrap();
    assert!(my.query_in(&a, "SELECT COUNT(*) FROM t").is_err());
    my.drop_database(&a).unwrap();
    my.drop_database(&b).unwrap();

    let pg = postgres();
    let (a, b) = (
        pg.create_unique_database("sep").unwrap(),
        pg.create_unique_database("sep").unwrap(),
    );
    pg.exec_in(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    assert_eq!(pg.query_in(&a, "SELECT count(*) FROM t").unwrap(), "2");
    assert!(pg.query_in(&b, "SELECT count(*) FROM t").is_err());
    assert_eq!(
        pg.query_in(&a, "SELECT id, 'x' FROM t ORDER BY id")
            .unwrap(),
        "1|x\n2|x"
    );
    assert!(pg.url_for(&a).ends_with(&format!("/{a}")));
    // Dropping with connections open is forced.
    let mut idle = Command::new("psql")
        .args(["-X", "-q", "-d", &pg.url_for(&a)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        pg.query(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{a}'"
        ))
        .is_ok_and(|n| n != "0")
    }));
    pg.create_database(&a).unwrap();
    assert!(pg.query_in(&a, "SELECT count(*) FROM t").is_err());
    let _ = idle.kill();
    let _ = idle.wait();
    pg.drop_database(&a).unwrap();
    pg.drop_database(&b).unwrap();
}

#[test]
fn sql_errors_carry_the_client_message() {
    let err = mariadb().query("SELECT * FROM no_such_db.t").unwrap_err();
    assert!(err.to_string().contains("no_such_db"), "{err}");
    let err = postgres().query("SELECT * FROM no_such_table").unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
    // Nothing after the failing statement runs.
    let pg = postgres();
    let db = pg.create_unique_database("stop").unwrap();
    assert!(pg
        .exec_in(&db, "CREATE TABLE a (); SELECT 1/0; CREATE TABLE b ();")
        .is_err());
    assert_eq!(
        pg.query_in(
            &db,
            "SELECT string_agg(relname, ',') FROM pg_class WHERE relname IN ('a', 'b')"
        )
        .unwrap(),
        "a"
    );
    pg.drop_database(&db).unwrap();
    let my = mariadb();
    let db = my.create_unique_database("stop").unwrap();
    assert!(my
        .exec_in(
            &db,
            "CREATE TABLE a (id INT); SELECT 1/0 FROM no_such; CREATE TABLE b (id INT);"
        )
        .is_err());
    assert_eq!(my.query_in(&db, "SHOW TABLES").unwrap(), "a");
    my.drop_database(&db).unwrap();
}

#[test]
fn owned_servers_are_removed_on_drop() {
    let my = MariaDb::start_owned().unwrap();
    let pg = Postgres::start_owned().unwrap();
    let dirs: Vec<PathBuf> = [my.data_dir(), pg.data_dir()]
        .iter()
        .map(|d| d.unwrap().parent().unwrap().to_path_buf())
        .collect();
    let pids = [my.pid().unwrap(), pg.pid().unwrap()];
    let ports = [my.port(), pg.port()];
    assert!(dirs.iter().all(|d| d.is_dir()));
    assert!(pg
        .socket_dir()
        .unwrap()
        .join(format!(".s.PGSQL.{}", pg.port()))
        .exists());
    drop(my);
    drop(pg);
    for ((dir, pid), port) in dirs.iter().zip(pids).zip(ports) {
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(!process_exists(pid), "server {pid} still runs");
        assert!(!accepts_tcp(port), "port {port} still accepts connections");
    }
}

#[test]
fn owned_mariadb_restarts_after_kill_and_stop() {
    let mut server = MariaDb::start_owned().unwrap();
    let port = server.port();
    server
        .exec(
            "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1);",
        )
        .unwrap();

    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(server.query("SELECT 1").is_err());
    assert!(matches!(server.kill(), Err(Error::State { .. })));
    server.start().unwrap();
    assert!(matches!(server.start(), Err(Error::State { .. })));
    assert_eq!(server.port(), port);
    assert_eq!(server.query("SELECT COUNT(*) FROM d.t").unwrap(), "1");

    server.exec("INSERT INTO d.t VALUES (2)").unwrap();
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.query("SELECT COUNT(*) FROM d.t").unwrap(), "2");
    // Every start opened a new binary log file.
    let logs = server.query("SHOW BINARY LOGS").unwrap();
    assert!(logs.lines().count() >= 3, "{logs}");
}

#[test]
fn owned_postgres_restarts_after_kill_and_stop() {
    let mut server = Postgres::start_owned().unwrap();
    let port = server.port();
    let first_pid = server.pid().unwrap();
    server
        .exec(
            "SET synchronous_commit = on;\
             CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        )
        .unwrap();

    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(!process_exists(first_pid));
    assert!(server.query("SELECT 1").is_err());
    assert!(matches!(server.stop(), Err(Error::State { .. })));
    server.start().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.query("SELECT count(*) FROM t").unwrap(), "1");

    server.exec("INSERT INTO t VALUES (2)").unwrap();
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.query("SELECT count(*) FROM t").unwrap(), "2");
}

#[test]
fn owned_servers_start_from_the_template() {
    // The first start of each engine may build the template; the second only copies it.
    for round in ["first", "second"] {
        let started = Instant::now();
        let my = MariaDb::start_owned().unwrap();
        let my_time = started.elapsed();
        let started = Instant::now();
        let pg = Postgres::start_owned().unwrap();
        let pg_time = started.elapsed();
        eprintln!("{round} owned start: mariadb {my_time:?}, postgres {pg_time:?}");
        assert_eq!(my.query("SELECT 1").unwrap(), "1");
        assert_eq!(pg.query("SELECT 1").unwrap(), "1");
        assert_ne!(my.port(), mariadb().port());
        assert_ne!(pg.port(), postgres().port());
    }
}

#[test]
fn servers_outlive_the_thread_that_started_them() {
    let (mut my, mut pg) = thread::spawn(|| {
        (
            MariaDb::start_owned().unwrap(),
            Postgres::start_owned().unwrap(),
        )
    })
    .join()
    .unwrap();
    // Give a wrongly delivered parent-death signal time to act.
    assert!(!eventually(Duration::from_millis(500), || {
        !my.is_running() || !pg.is_running()
    }));
    assert_eq!(my.query("SELECT 1").unwrap(), "1");
    assert_eq!(pg.query("SELECT 1").unwrap(), "1");
}

#[test]
fn external_handles_refuse_lifecycle_operations() {
    let mut my = MariaDb::external(&mariadb().url()).unwrap();
    assert!(my.is_external());
    assert!(my.is_running());
    assert!(matches!(my.kill(), Err(Error::External { .. })));
    assert_eq!(my.socket(), None);
    let mut pg = Postgres::external(&postgres().url()).unwrap();
    assert!(matches!(pg.restart(), Err(Error::External { .. })));
    assert_eq!(pg.query("SELECT current_user").unwrap(), "postgres");

    let err = MariaDb::external("postgres://root@127.0.0.1:1").unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    let err = Postgres::external("postgres://postgres@127.0.0.1:1/postgres").unwrap_err();
    assert!(matches!(err, Error::Command { .. }), "{err}");
}

/// Environment variable that turns [`helper_process_holding_servers`] on.
const HELPER_VAR: &str = "DTS_TESTKIT_HELPER";

/// Not a test by itself: run by [`servers_die_with_their_process`] in a child process,
/// which it starts servers in and which is then killed.
#[test]
#[ignore = "helper run by servers_die_with_their_process"]
fn helper_process_holding_servers() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let my = mariadb();
    let pg = postgres();
    println!(
        "SERVERS {} {} {} {}",
        my.pid().unwrap(),
        my.port(),
        pg.pid().unwrap(),
        pg.port()
    );
    thread::sleep(Duration::from_secs(600));
}

#[test]
fn servers_die_with_their_process() {
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process_holding_servers",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_VAR, "1")
        .env_remove("DTS_TEST_MYSQL_URL")
        .env_remove("DTS_TEST_PG_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(helper.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("SERVERS "))
        .expect("helper printed its servers");
    let numbers: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let [my_pid, my_port, pg_pid, pg_port] = numbers[..] else {
        panic!("unexpected helper output `{line}`");
    };
    assert!(process_exists(my_pid) && process_exists(pg_pid));
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            !process_exists(my_pid) && !process_exists(pg_pid)
        }),
        "servers survived their process"
    );
    for port in [my_port, pg_port] {
        let port = u16::try_from(port).unwrap();
        assert!(eventually(Duration::from_secs(10), || !accepts_tcp(port)));
    }
}

/// Runs the `mariadb` client over TCP with extra arguments; returns (success, stdout+stderr).
fn mariadb_client(server: &MariaDb, args: &[String], sql: &str) -> (bool, String) {
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .args([
            "--protocol=TCP",
            "--host=127.0.0.1",
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("--port={}", server.port()))
        .args(args)
        .args(["--execute", sql])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text.trim().to_owned())
}

#[test]
fn owned_tls_mariadb_enforces_tls_accounts() {
    let certs = TestCertificates::generate(&["localhost", "127.0.0.1"], "x509_user").unwrap();
    let server = MariaDb::start_owned_tls(&certs).unwrap();
    assert_eq!(variable(&server, "have_ssl"), "YES");
    server
        .create_tls_user("tls_user", "tls pass", TlsAccount::Encrypted)
        .unwrap();
    server
        .create_tls_user("x509_user", "x509 pass", TlsAccount::ClientCertificate)
        .unwrap();
    let ca = format!("--ssl-ca={}", certs.ca_cert().display());
    let cipher = "SHOW STATUS LIKE 'Ssl_cipher'";

    let (ok, text) = mariadb_client(
        &server,
        &[
            "--user=tls_user".into(),
            "--password=tls pass".into(),
            "--ssl".into(),
            ca.clone(),
        ],
        cipher,
    );
    assert!(ok, "{text}");
    assert!(
        text.starts_with("Ssl_cipher\t") && text.len() > "Ssl_cipher\t".len(),
        "{text}"
    );

    let (ok, text) = mariadb_client(
        &server,
        &[
            "--user=tls_user".into(),
            "--password=tls pass".into(),
            "--skip-ssl".into(),
        ],
        "SELECT 1",
    );
    assert!(!ok && text.contains("Access denied"), "{text}");

    let x509 = [
        "--user=x509_user".to_owned(),
        "--password=x509 pass".into(),
        "--ssl".into(),
        ca,
    ];
    let (ok, text) = mariadb_client(&server, &x509, "SELECT 1");
    assert!(!ok && text.contains("Access denied"), "{text}");
    let mut with_cert = x509.to_vec();
    with_cert.push(format!("--ssl-cert={}", certs.client_cert().display()));
    with_cert.push(format!("--ssl-key={}", certs.client_key().display()));
    let (ok, text) = mariadb_client(&server, &with_cert, "SELECT CURRENT_USER()");
    assert!(ok, "{text}");
    assert_eq!(text, "x509_user@%");
}

/// Runs `psql` with a libpq connection string; returns (success, stdout+stderr).
fn psql(conninfo: &str, sql: &str) -> (bool, String) {
    let output = Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-c", sql, conninfo])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text.trim().to_owned())
}

#[test]
fn owned_tls_postgres_enforces_tls_accounts() {
    let certs = TestCertificates::generate(&["localhost", "127.0.0.1"], "cert_user").unwrap();
    let server = Postgres::start_owned_tls(&certs).unwrap();
    assert_eq!(server.query("SHOW ssl").unwrap(), "on");
    server
        .create_tls_user("tls_user", "tls pass", TlsAccount::Encrypted)
        .unwrap();
    server
        .create_tls_user("cert_user", "unused", TlsAccount::ClientCertificate)
        .unwrap();
    let base = format!("host=127.0.0.1 port={} dbname=postgres", server.port());
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    let (ok, text) = psql(
        &format!("{base} user=tls_user password='tls pass' sslmode=require"),
        ssl,
    );
    assert!(ok, "{text}");
    assert_eq!(text, "t");
    let (ok, text) = psql(
        &format!("{base} user=tls_user password='tls pass' sslmode=disable"),
        ssl,
    );
    assert!(!ok && text.contains("no encryption"), "{text}");

    let (ok, text) = psql(
        &format!(
            "{base} user=cert_user sslmode=verify-full sslrootcert={}",
            certs.ca_cert().display()
        ),
        ssl,
    );
    assert!(!ok, "{text}");
    let (ok, text) = psql(
        &format!(
            "{base} user=cert_user sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            certs.ca_cert().display(),
            certs.client_cert().display(),
            certs.client_key().display()
        ),
        ssl,
    );
    assert!(ok, "{text}");
    assert_eq!(text, "t");
}
