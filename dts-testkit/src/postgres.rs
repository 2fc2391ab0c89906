//! A PostgreSQL server for tests: private (started from the installed binaries) or external.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::endpoint::Endpoint;
use crate::error::IoContext;
use crate::instance::{server_handle, Instance, Signals};
use crate::process::{self, Signal};
use crate::programs::{self, PgPrograms};
use crate::tls::{ServerTls, TestCertificates, TlsAccount};
use crate::{layout, Error};

/// Bumped whenever the template's contents change, so that old templates are rebuilt.
const TEMPLATE_FORMAT: &str = "dts-testkit postgres template 1";

/// Environment variable naming an external server to use instead of a private one.
pub const PG_URL_VAR: &str = "DTS_TEST_PG_URL";

/// Trust everyone on the socket and on loopback, for normal and replication connections.
const PG_HBA: &str = "\
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
";

/// Group roles whose members may connect only over TLS: with a password, or with a client
/// certificate. Rules placed before [`PG_HBA`] on servers started with TLS.
const TLS_PASSWORD_GROUP: &str = "dts_tls_password";
const TLS_CERT_GROUP: &str = "dts_tls_cert";
const PG_HBA_TLS: &str = "\
hostssl    all  +dts_tls_password  127.0.0.1/32  scram-sha-256
hostssl    all  +dts_tls_password  ::1/128       scram-sha-256
hostnossl  all  +dts_tls_password  all           reject
hostssl    all  +dts_tls_cert      127.0.0.1/32  cert
hostssl    all  +dts_tls_cert      ::1/128       cert
hostnossl  all  +dts_tls_cert      all           reject
";

/// Server settings of a private server, passed as `-c name=value`.
const SETTINGS: &[&str] = &[
    "wal_level=logical",
    "max_replication_slots=20",
    "max_wal_senders=20",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=256MB",
    "max_connections=200",
    "logging_collector=off",
];

/// A PostgreSQL server: a private one started by the testkit, or an external one named by
/// URL.
///
/// The private server has logical decoding enabled (`wal_level=logical`, 20 replication
/// slots and WAL senders), trusts every local and loopback connection including replication
/// connections, has the superuser `postgres`, and trades durability for speed (`fsync`,
/// `synchronous_commit` and `full_page_writes` off). It listens on `127.0.0.1` on a free port
/// and on a private socket directory. Because PostgreSQL refuses to run as root, a root
/// process runs it as the system user `postgres` (or `nobody` if that does not exist).
///
/// SQL helpers run `psql -X -A -t -q -v ON_ERROR_STOP=1`: one line per row, columns
/// separated by `|`.
///
/// Dropping a private server shuts it down immediately and removes its directory.
pub struct Postgres {
    endpoint: Endpoint,
    psql: PathBuf,
    server: Option<Private>,
}

/// The parts of a private server.
struct Private {
    programs: PgPrograms,
    account: Option<Account>,
    instance: Instance,
    tls: Option<ServerTls>,
}

/// The unprivileged system account that runs PostgreSQL when this process is root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    /// `None` unless running as root; then `postgres`, or `nobody` if that is absent.
    fn for_server() -> Result<Option<Self>, Error> {
        if !process::running_as_root() {
            return Ok(None);
        }
        let passwd = fs::read_to_string("/etc/passwd").context(|| "read /etc/passwd".to_owned())?;
        ["postgres", "nobody"]
            .iter()
            .find_map(|name| Self::parse(&passwd, name))
            .map(Some)
            .ok_or_else(|| Error::MissingProgram {
                program: "system user `postgres` or `nobody`".to_owned(),
                searched: "/etc/passwd".to_owned(),
            })
    }

    /// The entry for `name` in `/etc/passwd` text.
    fn parse(passwd: &str, name: &str) -> Option<Self> {
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != name {
                return None;
            }
            let _password = fields.next()?;
            Some(Self {
                name: name.to_owned(),
                uid: fields.next()?.parse().ok()?,
                gid: fields.next()?.parse().ok()?,
            })
        })
    }

    /// Makes `path` belong to the account.
    fn own(&self, path: &Path) -> Result<(), Error> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .context(|| format!("give `{}` to user `{}`", path.display(), self.name))
    }

    /// Makes `command` run as the account.
    fn apply(&self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
    }
}

server_handle!(Postgres, env: PG_URL_VAR, user: "postgres");

impl Postgres {
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

    /// Starts a private server owned by the caller, as [`Postgres::start_owned`], that also
    /// accepts TLS connections (`ssl=on` with the server certificate of `certs`, and its
    /// authority as `ssl_ca_file` for client certificates; the files are copied into the
    /// server's directory). `pg_hba.conf` starts with `hostssl`/`hostnossl` rules for the
    /// accounts made by [`Postgres::create_tls_user`]; everyone else is trusted as on other
    /// private servers.
    ///
    /// # Errors
    ///
    /// As [`Postgres::start_owned`], and if the files cannot be copied.
    pub fn start_owned_tls(certs: &TestCertificates) -> Result<Self, Error> {
        let server = Self::start_private(Some(certs))?;
        server.exec(&format!(
            "CREATE ROLE {TLS_PASSWORD_GROUP} NOLOGIN; CREATE ROLE {TLS_CERT_GROUP} NOLOGIN;"
        ))?;
        Ok(server)
    }

    fn start_private(certs: Option<&TestCertificates>) -> Result<Self, Error> {
        let programs = PgPrograms::find()?;
        let psql = programs::psql()?;
        let account = Account::for_server()?;
        let template = layout::template(
            "postgres",
            &template_stamp(&programs, account.as_ref()),
            |dir| build_template(&programs, account.as_ref(), dir),
        )?;
        let dir = layout::instance_dir("pg")?;
        let instance = Instance::new(
            "postgres",
            dir,
            Signals {
                stop: Signal::Interrupt,
                kill: Signal::Quit,
                on_parent_death: Signal::Quit,
            },
        );
        if let Some(account) = &account {
            account.own(instance.dir())?;
        }
        process::copy_tree(&template.join("data"), &instance.data)?;
        let tls = match certs {
            None => None,
            Some(certs) => {
                let owner = account.as_ref().map(|a| (a.uid, a.gid));
                let tls = ServerTls::install(certs, instance.dir(), owner)?;
                let hba = instance.data.join("pg_hba.conf");
                fs::write(&hba, format!("{PG_HBA_TLS}{PG_HBA}"))
                    .context(|| format!("write `{}`", hba.display()))?;
                Some(tls)
            }
        };
        let mut server = Self {
            endpoint: Endpoint::loopback("postgres", 0, "postgres", Some("postgres")),
            psql,
            server: Some(Private {
                programs,
                account,
                instance,
                tls,
            }),
        };
        server.launch(false)?;
        Ok(server)
    }

    /// A handle to an external server, e.g. `postgres://postgres@127.0.0.1:5432/postgres`
    /// (the database defaults to `postgres`); checks that it answers `SELECT 1`.
    ///
    /// # Errors
    ///
    /// Fails if the URL is invalid, `psql` is missing or the server does not answer.
    pub fn external(url: &str) -> Result<Self, Error> {
        let mut endpoint = Endpoint::parse(url, &["postgres", "postgresql"], 5432, "postgres")?;
        endpoint
            .database
            .get_or_insert_with(|| "postgres".to_owned());
        let server = Self {
            endpoint,
            psql: programs::psql()?,
            server: None,
        };
        server.query("SELECT 1")?;
        Ok(server)
    }

    /// The URL of the maintenance database, e.g.
    /// `postgres://postgres@127.0.0.1:40123/postgres`.
    pub fn url(&self) -> String {
        self.endpoint.url_for(Some(self.maintenance_db()))
    }

    /// The Unix socket directory of a private server; `None` for an external one.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.instance.dir())
    }

    /// The process id of a running private server's postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(|s| s.instance.pid())
    }

    /// Runs SQL statements in the maintenance database, discarding any output.
    ///
    /// # Errors
    ///
    /// Fails with [`Error::Command`] (carrying `psql`'s message) if a statement fails.
    pub fn exec(&self, sql: &str) -> Result<(), Error> {
        self.run(self.maintenance_db(), sql).map(drop)
    }

    /// Runs SQL statements in the maintenance database and returns their output with the
    /// final newline removed.
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn query(&self, sql: &str) -> Result<String, Error> {
        self.run(self.maintenance_db(), sql)
    }

    /// Runs SQL statements in `database`, discarding any output.
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn exec_in(&self, database: &str, sql: &str) -> Result<(), Error> {
        self.run(database, sql).map(drop)
    }

    /// Runs SQL statements in `database` and returns their output.
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn query_in(&self, database: &str, sql: &str) -> Result<String, Error> {
        self.run(database, sql)
    }

    /// Creates database `name`, first dropping it (`WITH (FORCE)`) if it exists.
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        let name = quote(name);
        self.exec(&format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE);\nCREATE DATABASE {name};"
        ))
    }

    /// Drops database `name` (`WITH (FORCE)`) if it exists.
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn drop_database(&self, name: &str) -> Result<(), Error> {
        self.exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE);",
            quote(name)
        ))
    }

    /// Creates the login role `user` with `password`, which may connect only over TLS: with
    /// its password ([`TlsAccount::Encrypted`], `hostssl … scram-sha-256`) or with a client
    /// certificate whose common name is `user` ([`TlsAccount::ClientCertificate`],
    /// `hostssl … cert`). Plain connections are rejected by `pg_hba.conf`. An existing role
    /// of that name is replaced. The rules exist only on servers from
    /// [`Postgres::start_owned_tls`].
    ///
    /// # Errors
    ///
    /// As [`Postgres::exec`].
    pub fn create_tls_user(
        &self,
        user: &str,
        password: &str,
        account: TlsAccount,
    ) -> Result<(), Error> {
        let group = match account {
            TlsAccount::Encrypted => TLS_PASSWORD_GROUP,
            TlsAccount::ClientCertificate => TLS_CERT_GROUP,
        };
        let user = quote(user);
        self.exec(&format!(
            "DROP ROLE IF EXISTS {user};\nCREATE ROLE {user} LOGIN PASSWORD '{}' IN ROLE {group};",
            password.replace('\'', "''")
        ))
    }

    /// Whether the private server's postmaster is running; `true` for an external server.
    pub fn is_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_none_or(|server| server.instance.is_running())
    }

    /// Shuts the private server down in an orderly way (fast shutdown, `SIGINT`) and waits
    /// for it to exit. Its data directory and port are kept for [`Postgres::start`].
    ///
    /// # Errors
    ///
    /// Fails for an external server or one that is not running.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.private_mut("stop")?.instance.stop()
    }

    /// Shuts the private server down abruptly (immediate shutdown, `SIGQUIT`, as
    /// `pg_ctl stop -m immediate`: connections drop, no checkpoint, crash recovery at the
    /// next start) and waits for it to exit. With `synchronous_commit=off`, the last
    /// commits may be lost. Its data directory and port are kept for [`Postgres::start`].
    ///
    /// # Errors
    ///
    /// Fails for an external server or one that is not running.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.private_mut("kill")?.instance.kill()
    }

    fn maintenance_db(&self) -> &str {
        self.endpoint.database.as_deref().unwrap_or("postgres")
    }

    /// Starts the private server: first on a free port, or again on its port.
    fn launch(&mut self, again: bool) -> Result<(), Error> {
        let Some(private) = self.server.as_mut() else {
            return Ok(());
        };
        let postgres = private.programs.postgres.clone();
        let pg_isready = private.programs.pg_isready.clone();
        let account = private.account.clone();
        let dir = private.instance.dir().to_path_buf();
        let tls = private.tls.clone();
        let command = move |port: u16| {
            let mut command = Command::new(&postgres);
            command
                .arg("-D")
                .arg(dir.join("data"))
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&dir)
                .args(["-h", "127.0.0.1"]);
            for setting in SETTINGS {
                command.arg("-c").arg(setting);
            }
            if let Some(tls) = &tls {
                command.args(["-c", "ssl=on"]);
                command
                    .arg("-c")
                    .arg(format!("ssl_ca_file={}", tls.ca.display()));
                command
                    .arg("-c")
                    .arg(format!("ssl_cert_file={}", tls.cert.display()));
                command
                    .arg("-c")
                    .arg(format!("ssl_key_file={}", tls.key.display()));
            }
            command.current_dir(&dir);
            if let Some(account) = &account {
                account.apply(&mut command);
            }
            Ok(command)
        };
        let probe = |port: u16| {
            process::accepts_tcp(port)
                && Command::new(&pg_isready)
                    .args([
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-t",
                        "5",
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                    ])
                    .arg("-p")
                    .arg(port.to_string())
                    .status()
                    .is_ok_and(|status| status.success())
        };
        let result = if again {
            private.instance.relaunch(command, probe)
        } else {
            private.instance.launch(command, probe)
        };
        self.endpoint.port = private.instance.port;
        result
    }

    fn run(&self, database: &str, sql: &str) -> Result<String, Error> {
        let mut command = Command::new(&self.psql);
        command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.endpoint.host)
            .arg("-p")
            .arg(self.endpoint.port.to_string())
            .arg("-U")
            .arg(&self.endpoint.user)
            .arg("-d")
            .arg(database)
            .args(["-f", "-"])
            .env("PGCONNECT_TIMEOUT", "10");
        // The password travels in the environment, not on the command line.
        match &self.endpoint.password {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
        let mut output = process::run(command, sql)?;
        if output.ends_with('\n') {
            output.pop();
        }
        Ok(output)
    }
}

/// `name` as a double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Identifies the template: its format, the server binary and the owning account.
fn template_stamp(programs: &PgPrograms, account: Option<&Account>) -> String {
    let owner = account.map_or_else(|| "current user".to_owned(), |a| format!("{a:?}"));
    format!(
        "{TEMPLATE_FORMAT}\n{}\n{}\n{owner}\n",
        layout::fingerprint(&programs.postgres),
        layout::fingerprint(&programs.initdb),
    )
}

/// Initialises a data directory in `dir/data` with superuser `postgres`, UTF-8 and trust
/// authentication.
fn build_template(
    programs: &PgPrograms,
    account: Option<&Account>,
    dir: &Path,
) -> Result<(), Error> {
    if let Some(account) = account {
        account.own(dir)?;
    }
    let data = dir.join("data");
    let initdb = |locale: &str| {
        let mut command = Command::new(&programs.initdb);
        command
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                locale,
            ])
            .current_dir(dir);
        if let Some(account) = account {
            account.apply(&mut command);
        }
        process::run(command, "")
    };
    if initdb("--locale=C.UTF-8").is_err() {
        // Systems without a C.UTF-8 locale: fall back to plain C with UTF-8 encoding.
        let _ = fs::remove_dir_all(&data);
        initdb("--no-locale")?;
    }
    let hba = data.join("pg_hba.conf");
    fs::write(&hba, PG_HBA).context(|| format!("write `{}`", hba.display()))?;
    fs::set_permissions(&hba, fs::Permissions::from_mode(0o600))
        .context(|| format!("set permissions of `{}`", hba.display()))?;
    if let Some(account) = account {
        account.own(&hba)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_entries() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            Account::parse(passwd, "postgres"),
            Some(Account {
                name: "postgres".to_owned(),
                uid: 101,
                gid: 104
            })
        );
        assert_eq!(Account::parse(passwd, "nobody"), None);
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
