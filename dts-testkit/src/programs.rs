//! Finding the installed server and client programs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// Directories searched after `PATH` (server binaries often live in `sbin`).
const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/local/mysql/bin",
];

/// The MariaDB programs the testkit runs.
#[derive(Debug, Clone)]
pub(crate) struct MariaDbPrograms {
    /// `mariadbd`.
    pub(crate) server: PathBuf,
    /// `mariadb-install-db`.
    pub(crate) install_db: PathBuf,
}

/// The PostgreSQL server programs the testkit runs.
#[derive(Debug, Clone)]
pub(crate) struct PgPrograms {
    /// `initdb`.
    pub(crate) initdb: PathBuf,
    /// `postgres`.
    pub(crate) postgres: PathBuf,
    /// `pg_isready`.
    pub(crate) pg_isready: PathBuf,
}

impl MariaDbPrograms {
    /// Finds the MariaDB server programs.
    pub(crate) fn find() -> Result<Self, Error> {
        Ok(Self {
            server: find(&["mariadbd", "mysqld"], &[])?,
            install_db: find(&["mariadb-install-db", "mysql_install_db"], &[])?,
        })
    }
}

impl PgPrograms {
    /// Finds the PostgreSQL server programs, preferring `$DTS_TESTKIT_PG_BINDIR`, then the
    /// newest `/usr/lib/postgresql/<version>/bin`, then `PATH`.
    pub(crate) fn find() -> Result<Self, Error> {
        let dirs = pg_bin_dirs();
        let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        Ok(Self {
            initdb: find(&["initdb"], &dirs)?,
            postgres: find(&["postgres"], &dirs)?,
            pg_isready: find(&["pg_isready"], &dirs)?,
        })
    }
}

/// The MariaDB command-line client.
pub(crate) fn mariadb_client() -> Result<PathBuf, Error> {
    find(&["mariadb", "mysql"], &[])
}

/// The PostgreSQL command-line client, from the same installation as the server if possible.
pub(crate) fn psql() -> Result<PathBuf, Error> {
    let dirs = pg_bin_dirs();
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    find(&["psql"], &dirs)
}

/// PostgreSQL binary directories to search before `PATH`.
fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("DTS_TESTKIT_PG_BINDIR") {
        dirs.push(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    dirs.extend(versions.into_iter().rev().map(|(_, bin)| bin));
    dirs
}

/// The first executable named one of `names` in `first_dirs`, `PATH` or [`EXTRA_DIRS`].
fn find(names: &[&str], first_dirs: &[&Path]) -> Result<PathBuf, Error> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = first_dirs
        .iter()
        .map(|dir| dir.to_path_buf())
        .chain(std::env::split_paths(&path_var))
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect();
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            let executable = fs::metadata(&candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
            if executable {
                return Ok(candidate);
            }
        }
    }
    Err(Error::MissingProgram {
        program: names.join("` or `"),
        searched: "PATH, /usr/lib/postgresql/*/bin and /usr/sbin".to_owned(),
    })
}
