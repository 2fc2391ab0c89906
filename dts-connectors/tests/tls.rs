//! TLS and connection options on real servers: private MariaDB and PostgreSQL servers
//! started with test certificates whose server certificate is issued only for
//! `localhost`, with accounts that may connect only over TLS or only with a client
//! certificate. Every success is checked to be encrypted on the server's side, and every
//! TLS-only account is checked to refuse plain text, so none of the tests passes with TLS
//! silently off.

#![cfg(all(feature = "mysql", feature = "postgres"))]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dts_connectors::mysql::{BinlogFilter, MySqlBinlogSource, MySqlConnectOptions, MySqlSource};
use dts_connectors::postgres::{connect_client, PgConnectOptions, PgTarget};
use dts_core::{Change, ChangeSource, ErrorKind};
use dts_testkit::{MariaDb, Postgres, TestCertificates, TlsAccount};
use mysql_async::prelude::Queryable;

/// The password of the TLS-only accounts: every URL-special character, percent-encoded in
/// URLs.
const PASSWORD: &str = "p@ss/w?rd#1";
const PASSWORD_ENCODED: &str = "p%40ss%2Fw%3Frd%231";

struct Servers {
    certs: TestCertificates,
    mariadb: MariaDb,
    postgres: Postgres,
}

/// One TLS MariaDB and one TLS PostgreSQL for the whole test binary, with the accounts
/// `tls_user` (password, TLS only) and `cert_user` (client certificate).
fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let certs = TestCertificates::generate(&["localhost"], "cert_user").unwrap();
        let mariadb = MariaDb::start_owned_tls(&certs).unwrap();
        let postgres = Postgres::start_owned_tls(&certs).unwrap();
        for (user, account) in [
            ("tls_user", TlsAccount::Encrypted),
            ("cert_user", TlsAccount::ClientCertificate),
        ] {
            mariadb.create_tls_user(user, PASSWORD, account).unwrap();
            postgres.create_tls_user(user, PASSWORD, account).unwrap();
        }
        Servers {
            certs,
            mariadb,
            postgres,
        }
    })
}

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

fn my_url(host: &str, user: &str, query: &str) -> String {
    let s = servers();
    format!(
        "mysql://{user}:{PASSWORD_ENCODED}@{host}:{}/?{query}",
        s.mariadb.port()
    )
}

fn pg_url(host: &str, user: &str, query: &str) -> String {
    let s = servers();
    format!(
        "postgres://{user}:{PASSWORD_ENCODED}@{host}:{}/postgres?{query}",
        s.postgres.port()
    )
}

/// The error's full report, checked not to contain the password.
fn report(e: &dts_core::Error) -> String {
    let text = e.report();
    let debug = format!("{e:?}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(PASSWORD), "password shown: {shown}");
        assert!(!shown.contains(PASSWORD_ENCODED), "password shown: {shown}");
    }
    text
}

/// The session's TLS cipher, empty for a plain connection.
async fn my_cipher(conn: &mut mysql_async::Conn) -> String {
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    row.unwrap().1
}

async fn my_connect(url: &str) -> dts_core::Result<mysql_async::Conn> {
    let opts: MySqlConnectOptions = url.parse()?;
    let shown = format!("{opts:?} {opts}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains(PASSWORD_ENCODED),
        "{shown}"
    );
    opts.connect().await
}

async fn my_encrypted(url: &str) {
    let mut conn = my_connect(url)
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    assert!(!my_cipher(&mut conn).await.is_empty(), "not encrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_required_encrypts_for_a_tls_only_account() {
    my_encrypted(&my_url("127.0.0.1", "tls_user", "ssl-mode=REQUIRED")).await;
    // The default (PREFERRED) uses TLS when the server offers it.
    my_encrypted(&my_url("127.0.0.1", "tls_user", "")).await;

    // Every connection of the source's pool is encrypted too.
    let source = MySqlSource::connect(&my_url("127.0.0.1", "tls_user", "ssl-mode=REQUIRED"))
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    assert!(!format!("{source:?}").contains(PASSWORD));
    let mut conn = source.conn().await.unwrap();
    assert!(!my_cipher(&mut conn).await.is_empty());

    let e = my_connect(&my_url("127.0.0.1", "tls_user", "ssl-mode=DISABLED"))
        .await
        .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Privilege, "{text}");
    assert!(text.contains("Access denied"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_verify_ca_checks_the_chain_only() {
    let ca = path(servers().certs.ca_cert());
    // The certificate is issued for `localhost` only: VERIFY_CA does not mind.
    my_encrypted(&my_url(
        "127.0.0.1",
        "tls_user",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
    ))
    .await;
    // `ssl-ca` alone means VERIFY_CA.
    my_encrypted(&my_url("127.0.0.1", "tls_user", &format!("ssl-ca={ca}"))).await;

    let other = path(servers().certs.other_ca_cert());
    let e = my_connect(&my_url(
        "127.0.0.1",
        "tls_user",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={other}"),
    ))
    .await
    .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Connection, "{text}");
    assert!(
        e.message().contains("failed the certificate check"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_verify_identity_checks_the_host_name() {
    let ca = path(servers().certs.ca_cert());
    let query = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}");
    my_encrypted(&my_url("localhost", "tls_user", &query)).await;
    let e = my_connect(&my_url("127.0.0.1", "tls_user", &query))
        .await
        .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Connection, "{text}");
    assert!(e.message().contains("failed the host name check"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_client_certificate_accounts_need_the_certificate() {
    let certs = &servers().certs;
    let ca = path(certs.ca_cert());
    let with_cert = format!(
        "ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}&ssl-cert={}&ssl-key={}",
        path(certs.client_cert()),
        path(certs.client_key())
    );
    my_encrypted(&my_url("localhost", "cert_user", &with_cert)).await;
    let e = my_connect(&my_url(
        "localhost",
        "cert_user",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ))
    .await
    .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Privilege, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_password_file_is_read_at_connect_time() {
    let dir = servers().certs.dir();
    let file = dir.join("mysql-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let url = format!(
        "mysql://tls_user@127.0.0.1:{}?ssl-mode=REQUIRED&password_file={}",
        servers().mariadb.port(),
        file.display()
    );
    my_encrypted(&url).await;
    std::fs::write(&file, "wrong\n").unwrap();
    let e = my_connect(&url).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Privilege, "{}", report(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_binlog_reads_over_tls() {
    let s = servers();
    let db = s.mariadb.create_unique_database("tls_binlog").unwrap();
    s.mariadb
        .exec_in(&db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        .unwrap();
    // The account refuses plain text, so the binlog connection can only work over TLS.
    let url = my_url("127.0.0.1", "tls_user", "ssl-mode=REQUIRED");
    let from = MySqlBinlogSource::current_position(&url)
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    let mut binlog = MySqlBinlogSource::start(&url, 4242, &from, BinlogFilter::all())
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    s.mariadb
        .exec_in(&db, "INSERT INTO t VALUES (1, 'secret')")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no insert read from the binlog");
        let events = binlog
            .next_events(100, Duration::from_millis(500))
            .await
            .unwrap_or_else(|e| panic!("{}", report(&e)));
        if events.iter().any(
            |e| matches!(&e.change, Change::Insert { table, .. } if table.schema == db && table.name == "t"),
        ) {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connect_timeout_names_host_and_port() {
    // A non-routable address: either nothing answers (the timeout) or the network says so.
    let started = Instant::now();
    let e = my_connect("mysql://u:s3cret@10.255.255.1:3306?connect_timeout=1")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.report());
    assert!(e.message().contains("10.255.255.1:3306"), "{}", e.report());
    assert!(!e.report().contains("s3cret"));
}

/// Whether the client's session is encrypted, as the server sees it.
async fn pg_ssl(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn pg_connect(url: &str) -> dts_core::Result<tokio_postgres::Client> {
    let opts: PgConnectOptions = url.parse()?;
    let shown = format!("{opts:?} {opts}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains(PASSWORD_ENCODED),
        "{shown}"
    );
    connect_client(url).await
}

async fn pg_encrypted(url: &str) {
    let client = pg_connect(url)
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    assert!(pg_ssl(&client).await, "not encrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_require_encrypts_for_a_tls_only_account() {
    pg_encrypted(&pg_url("127.0.0.1", "tls_user", "sslmode=require")).await;
    // The default (prefer) uses TLS when the server accepts it.
    pg_encrypted(&pg_url("127.0.0.1", "tls_user", "")).await;
    let target = PgTarget::connect(&pg_url("127.0.0.1", "tls_user", "sslmode=require"))
        .await
        .unwrap_or_else(|e| panic!("{}", report(&e)));
    assert!(pg_ssl(target.client()).await);

    let e = pg_connect(&pg_url("127.0.0.1", "tls_user", "sslmode=disable"))
        .await
        .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Privilege, "{text}");
    assert!(text.contains("no encryption"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_verify_ca_checks_the_chain_only() {
    let ca = path(servers().certs.ca_cert());
    pg_encrypted(&pg_url(
        "127.0.0.1",
        "tls_user",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await;
    let other = path(servers().certs.other_ca_cert());
    for mode in ["verify-ca", "require"] {
        // With a root certificate, `require` verifies the chain as libpq does.
        let e = pg_connect(&pg_url(
            "127.0.0.1",
            "tls_user",
            &format!("sslmode={mode}&sslrootcert={other}"),
        ))
        .await
        .unwrap_err();
        let text = report(&e);
        assert_eq!(e.kind(), ErrorKind::Connection, "{text}");
        assert!(
            e.message().contains("failed the certificate check"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_verify_full_checks_the_host_name() {
    let ca = path(servers().certs.ca_cert());
    let query = format!("sslmode=verify-full&sslrootcert={ca}");
    pg_encrypted(&pg_url("localhost", "tls_user", &query)).await;
    let e = pg_connect(&pg_url("127.0.0.1", "tls_user", &query))
        .await
        .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Connection, "{text}");
    assert!(e.message().contains("failed the host name check"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_client_certificate_accounts_need_the_certificate() {
    let certs = &servers().certs;
    let ca = path(certs.ca_cert());
    let with_cert = format!(
        "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        path(certs.client_cert()),
        path(certs.client_key())
    );
    pg_encrypted(&pg_url("localhost", "cert_user", &with_cert)).await;
    let e = pg_connect(&pg_url(
        "localhost",
        "cert_user",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap_err();
    let text = report(&e);
    assert_eq!(e.kind(), ErrorKind::Privilege, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_password_file_is_read_at_connect_time() {
    let file = servers().certs.dir().join("pg-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let url = format!(
        "postgres://tls_user@127.0.0.1:{}/postgres?sslmode=require&password_file={}",
        servers().postgres.port(),
        file.display()
    );
    pg_encrypted(&url).await;
    std::fs::write(&file, "wrong\n").unwrap();
    let e = pg_connect(&url).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Privilege, "{}", report(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_connect_timeout_names_host_and_port() {
    let started = Instant::now();
    let e = pg_connect("postgres://u:s3cret@10.255.255.1:5432/db?connect_timeout=1")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.report());
    assert!(e.message().contains("10.255.255.1:5432"), "{}", e.report());
    assert!(!e.report().contains("s3cret"));
}
