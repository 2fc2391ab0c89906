//! A MariaDB server for tests: private (started from the installed binaries) or external.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::endpoint::Endpoint;
use crate::instance::{server_handle, Instance, Signals};
use crate::process::{self, Signal};
use crate::programs::{self, MariaDbPrograms};
use crate::tls::{ServerTls, TestCertificates, TlsAccount};
use crate::{layout, Error};

/// Bumped whenever the template's contents change, so that old templates are rebuilt.
const TEMPLATE_FORMAT: &str = "dts-testkit mariadb template 1";

/// Environment variable naming an external server to use instead of a private one.
pub const MYSQL_URL_VAR: &str = "DTS_TEST_MYSQL_URL";

/// Run once on the freshly installed template (in bootstrap mode, without grant checks):
/// root may log in without password from `localhost` (socket) and `127.0.0.1`/`::1` (TCP).
const TEMPLATE_SQL: &str = "\
INSERT IGNORE INTO mysql.global_priv (Host, User, Priv) \
  SELECT h.Host, p.User, p.Priv FROM mysql.global_priv p \
  JOIN (SELECT '127.0.0.1' AS Host UNION ALL SELECT '::1') h \
  WHERE p.User = 'root' AND p.Host = 'localhost';
DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1');
";

/// A MariaDB server: a private one started by the testkit, or an external one named by URL.
///
/// The private server runs as root with binary logging in row format with full row images
/// and metadata (`--log-bin --binlog-format=ROW --binlog-row-image=FULL
/// --binlog-row-metadata=FULL --server-id=1`), real grant tables (`root@localhost` and
/// `root@127.0.0.1` without password), `utf8mb4`, `--local-infile=1`, 1 GiB packets and
/// relaxed durability (`--innodb-flush-log-at-trx-commit=2 --sync-binlog=0`). It listens on
/// `127.0.0.1` on a free port and on a private socket.
///
/// SQL helpers run the `mariadb` command-line client in batch mode without column names:
/// one line per row, columns separated by tabs, special characters escaped as `\n`, `\t`,
/// `\\` and `NULL`.
///
/// Dropping a private server kills it and removes its directory.
pub struct MariaDb {
    endpoint: Endpoint,
    client: PathBuf,
    server: Option<Private>,
}

/// The parts of a private server.
struct Private {
    programs: MariaDbPrograms,
    socket: PathBuf,
    instance: Instance,
    tls: Option<ServerTls>,
}

server_handle!(MariaDb, env: MYSQL_URL_VAR, user: "root");

impl MariaDb {
    /// Starts a private server owned by the caller, on a fresh copy of the initialised
    /// template (built on first use).
    ///
    /// # Errors
    ///
    /// Fails if the programs are missing, the template cannot be built, or the server does
    /// not accept connections within 60 s (the error shows the end of its log).
    pub fn start_owned() -> Result<Self, Error> {
        Self::start_private(None)
    }

    /// Starts a private server owned by the caller, as [`MariaDb::start_owned`], that also
    /// accepts TLS connections with the server certificate of `certs` (`--ssl-ca`,
    /// `--ssl-cert`, `--ssl-key`; the files are copied into the server's directory). Plain
    /// connections stay allowed except for accounts made by [`MariaDb::create_tls_user`].
    ///
    /// # Errors
    ///
    /// As [`MariaDb::start_owned`], and if the files cannot be copied.
    pub fn start_owned_tls(certs: &TestCertificates) -> Result<Self, Error> {
        Self::start_private(Some(certs))
    }

    fn start_private(certs: Option<&TestCertificates>) -> Result<Self, Error> {
        let programs = MariaDbPrograms::find()?;
        let client = programs::mariadb_client()?;
        let template = layout::template("mariadb", &template_stamp(&programs), |dir| {
            build_template(&programs, dir)
        })?;
        let dir = layout::instance_dir("my")?;
        let socket = dir.join("mysqld.sock");
        let instance = Instance::new(
            "mariadb",
            dir,
            Signals {
                stop: Signal::Terminate,
                kill: Signal::Kill,
                on_parent_death: Signal::Kill,
            },
        );
        process::copy_tree(&template.join("data"), &instance.data)?;
        let tls = certs
            .map(|certs| ServerTls::install(certs, instance.dir(), None))
            .transpose()?;
        let mut server = Self {
            endpoint: Endpoint::loopback("mysql", 0, "root", None),
            client,
            server: Some(Private {
                programs,
                socket,
                instance,
                tls,
            }),
        };
        server.launch(false)?;
        Ok(server)
    }

    /// A handle to an external server, e.g. `mysql://root@127.0.0.1:3306`; checks that it
    /// answers `SELECT 1`. A database in the URL path is ignored: [`MariaDb::url`] and the
    /// SQL helpers name none unless given one.
    ///
    /// # Errors
    ///
    /// Fails if the URL is invalid, the client is missing or the server does not answer.
    pub fn external(url: &str) -> Result<Self, Error> {
        let endpoint = Endpoint::parse(url, &["mysql", "mariadb"], 3306, "root")?;
        let server = Self {
            endpoint,
            client: programs::mariadb_client()?,
            server: None,
        };
        server.query("SELECT 1")?;
        Ok(server)
    }

    /// The server URL without database, e.g. `mysql://root@127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.endpoint.url_for(None)
    }

    /// The Unix socket of a private server; `None` for an external one.
    pub fn socket(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.socket.as_path())
    }

    /// The process id of a running private server.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(|s| s.instance.pid())
    }

    /// Runs SQL statements (separated by `;`), discarding any output.
    ///
    /// # Errors
    ///
    /// Fails with [`Error::Command`] (carrying the client's message) if a statement fails.
    pub fn exec(&self, sql: &str) -> Result<(), Error> {
        self.run(None, sql).map(drop)
    }

    /// Runs SQL statements and returns their output with the final newline removed.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn query(&self, sql: &str) -> Result<String, Error> {
        self.run(None, sql)
    }

    /// Runs SQL statements with `database` as the default database.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn exec_in(&self, database: &str, sql: &str) -> Result<(), Error> {
        self.run(Some(database), sql).map(drop)
    }

    /// Runs SQL statements with `database` as the default database and returns their output.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn query_in(&self, database: &str, sql: &str) -> Result<String, Error> {
        self.run(Some(database), sql)
    }

    /// Creates database `name`, dropping it first if it exists.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        let name = quote(name);
        self.exec(&format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};"
        ))
    }

    /// Drops database `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn drop_database(&self, name: &str) -> Result<(), Error> {
        self.exec(&format!("DROP DATABASE IF EXISTS {};", quote(name)))
    }

    /// Creates the account `user`@`%` with all privileges (including replication), that may
    /// connect only over TLS (`REQUIRE SSL`) or only with a client certificate signed by the
    /// server's authority (`REQUIRE X509`). An existing account of that name is replaced.
    ///
    /// # Errors
    ///
    /// As [`MariaDb::exec`].
    pub fn create_tls_user(
        &self,
        user: &str,
        password: &str,
        account: TlsAccount,
    ) -> Result<(), Error> {
        let require = match account {
            TlsAccount::Encrypted => "SSL",
            TlsAccount::ClientCertificate => "X509",
        };
        let user = literal(user);
        self.exec(&format!(
            "DROP USER IF EXISTS {user}@'%'; \
             CREATE USER {user}@'%' IDENTIFIED BY {} REQUIRE {require}; \
             GRANT ALL PRIVILEGES ON *.* TO {user}@'%';",
            literal(password)
        ))
    }

    /// Whether the private server's process is running; `true` for an external server.
    pub fn is_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_none_or(|server| server.instance.is_running())
    }

    /// Shuts the private server down in an orderly way (`SIGTERM`) and waits for it to exit.
    /// Its data directory and port are kept for [`MariaDb::start`].
    ///
    /// # Errors
    ///
    /// Fails for an external server or one that is not running.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.private_mut("stop")?.instance.stop()
    }

    /// Kills the private server (`SIGKILL`), as in a crash, and waits for it to exit. Its
    /// data directory and port are kept for [`MariaDb::start`].
    ///
    /// # Errors
    ///
    /// Fails for an external server or one that is not running.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.private_mut("kill")?.instance.kill()
    }

    /// Starts the private server: first on a free port, or again on its port.
    fn launch(&mut self, again: bool) -> Result<(), Error> {
        let client = self.client.clone();
        let Some(private) = self.server.as_mut() else {
            return Ok(());
        };
        let programs = private.programs.clone();
        let socket = private.socket.clone();
        let data = private.instance.data.clone();
        let tls = private.tls.clone();
        let command = move |port: u16| {
            let mut command = server_command(&programs, &data, &socket, port);
            if let Some(tls) = &tls {
                command.arg(format!("--ssl-ca={}", tls.ca.display()));
                command.arg(format!("--ssl-cert={}", tls.cert.display()));
                command.arg(format!("--ssl-key={}", tls.key.display()));
            }
            Ok(command)
        };
        let probe = |port: u16| {
            let endpoint = Endpoint::loopback("mysql", port, "root", None);
            process::accepts_tcp(port) && run_client(&client, &endpoint, None, "SELECT 1").is_ok()
        };
        let result = if again {
            private.instance.relaunch(command, probe)
        } else {
            private.instance.launch(command, probe)
        };
        self.endpoint.port = private.instance.port;
        result
    }

    fn run(&self, database: Option<&str>, sql: &str) -> Result<String, Error> {
        run_client(&self.client, &self.endpoint, database, sql)
    }
}

/// The `mariadbd` command line of a private server.
fn server_command(programs: &MariaDbPrograms, data: &Path, socket: &Path, port: u16) -> Command {
    let mut command = Command::new(&programs.server);
    command.arg("--no-defaults");
    command.arg(format!("--datadir={}", data.display()));
    if process::running_as_root() {
        command.arg("--user=root");
    }
    command.arg(format!("--port={port}"));
    command.arg(format!("--socket={}", socket.display()));
    command.arg(format!(
        "--pid-file={}",
        data.with_file_name("mysqld.pid").display()
    ));
    command.args([
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
        "--log-bin=binlog",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--server-id=1",
        "--local-infile=1",
        "--innodb-buffer-pool-size=256M",
        "--innodb-log-file-size=256M",
        "--innodb-flush-log-at-trx-commit=2",
        "--sync-binlog=0",
        "--max-allowed-packet=1G",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
    ]);
    if let Some(dir) = data.parent() {
        command.current_dir(dir);
    }
    command
}

/// Runs `sql` through the `mariadb` client against `endpoint`.
fn run_client(
    client: &Path,
    endpoint: &Endpoint,
    database: Option<&str>,
    sql: &str,
) -> Result<String, Error> {
    let mut command = Command::new(client);
    command.args([
        "--no-defaults",
        "--batch",
        "--skip-column-names",
        "--protocol=TCP",
        "--default-character-set=utf8mb4",
    ]);
    command.arg(format!("--host={}", endpoint.host));
    command.arg(format!("--port={}", endpoint.port));
    command.arg(format!("--user={}", endpoint.user));
    if let Some(database) = database {
        command.arg(format!("--database={database}"));
    }
    // The password travels in the environment, not on the command line.
    match &endpoint.password {
        Some(password) => command.env("MYSQL_PWD", password),
        None => command.env_remove("MYSQL_PWD"),
    };
    let mut output = process::run(command, sql)?;
    if output.ends_with('\n') {
        output.pop();
    }
    Ok(output)
}

/// `text` as a single-quoted string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `name` as a backquoted identifier.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Identifies the template: its format and the server binary it was made with.
fn template_stamp(programs: &MariaDbPrograms) -> String {
    format!(
        "{TEMPLATE_FORMAT}\n{}\n{}\n",
        layout::fingerprint(&programs.server),
        layout::fingerprint(&programs.install_db)
    )
}

/// Initialises a data directory in `dir/data`.
///
/// The redo log is created small; each server resizes it to 256 MiB at startup, which is
/// much faster than copying a 256 MiB file.
fn build_template(programs: &MariaDbPrograms, dir: &Path) -> Result<(), Error> {
    let data = dir.join("data");
    let mut install = Command::new(&programs.install_db);
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--innodb-log-file-size=4M",
        ])
        .current_dir(dir);
    if process::running_as_root() {
        install.arg("--user=root");
    }
    process::run(install, "")?;
    let mut bootstrap = Command::new(&programs.server);
    bootstrap
        .arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", data.display()))
        .args(["--innodb-log-file-size=4M", "--log-warnings=0"])
        .current_dir(dir);
    if process::running_as_root() {
        bootstrap.arg("--user=root");
    }
    process::run(bootstrap, TEMPLATE_SQL)?;
    Ok(())
}
