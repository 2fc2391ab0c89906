//! The servers' own command-line clients (`mariadb`, `psql`), as the benchmarks' raw pipes
//! and set-up steps run them: no defaults files, TCP, UTF-8, the password from the URL
//! through the environment (never on the command line).

use std::process::Command;

use dts_testkit::{MariaDb, Postgres};

/// `mariadb` connected to `database` on `server`, in batch mode (`--quick --batch
/// --skip-column-names`: rows streamed as tab-separated lines, tab, newline and backslash
/// escaped as `LOAD DATA` and `COPY` read them), with `LOAD DATA LOCAL` allowed, running
/// `sql`.
pub fn mariadb(server: &MariaDb, database: &str, sql: &str) -> Command {
    let mut command = Command::new("mariadb");
    command
        .args([
            "--no-defaults",
            "--quick",
            "--batch",
            "--skip-column-names",
            "--protocol=TCP",
            "--default-character-set=utf8mb4",
            "--local-infile=1",
        ])
        .arg(format!("--host={}", server.host()))
        .arg(format!("--port={}", server.port()))
        .arg(format!("--user={}", server.user()))
        .arg(database)
        .arg("-e")
        .arg(sql);
    match url_password(&server.url()) {
        Some(password) => command.env("MYSQL_PWD", password),
        None => command.env_remove("MYSQL_PWD"),
    };
    command
}

/// `psql` connected to `database` on `server`, stopping at the first error, running `sql`.
/// The session's time zone is UTC (`PGTZ`).
pub fn psql(server: &Postgres, database: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg("-h")
        .arg(server.host())
        .arg("-p")
        .arg(server.port().to_string())
        .arg("-U")
        .arg(server.user())
        .arg("-d")
        .arg(database)
        .arg("-c")
        .arg(sql)
        .env("PGTZ", "UTC");
    match url_password(&server.url()) {
        Some(password) => command.env("PGPASSWORD", password),
        None => command.env_remove("PGPASSWORD"),
    };
    command
}

/// The percent-decoded password of a `scheme://user:password@host…` URL.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    let bytes = password.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = password
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())?;
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passwords_from_urls() {
        assert_eq!(url_password("mysql://root@127.0.0.1:3306"), None);
        assert_eq!(url_password("mysql://root:@h:1").as_deref(), Some(""));
        assert_eq!(
            url_password("postgres://u:p%40ss%3Aw@h:5432/db?x=1").as_deref(),
            Some("p@ss:w")
        );
        assert_eq!(url_password("mysql://u:bad%4@h"), None);
    }
}
