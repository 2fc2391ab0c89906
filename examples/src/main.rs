//! `dts`: the command operators run.
//!
//! Prerequisites: a MySQL/MariaDB source and a PostgreSQL target reachable from this machine,
//! named in a task file (see `examples/task.toml`). `dts demo` needs neither: it starts
//! private servers from the installed MariaDB and PostgreSQL binaries.
//!
//! ```text
//! cargo build --release
//! target/release/dts demo                          # a real migration, nothing to configure
//! target/release/dts demo --direction pg-to-mysql  # … in another direction
//! target/release/dts precheck --config task.toml   # every check, its status and its fix
//! target/release/dts plan --config task.toml       # the DDL the task would run
//! target/release/dts run --config task.toml        # run the task
//! target/release/dts verify --config task.toml     # compare source and target
//! target/release/dts verify --config task.toml --repair   # and make the target match
//! target/release/dts status --config task.toml     # state and progress, from any machine
//! target/release/dts switchover --config task.toml --lock-source  # move the application over
//! target/release/dts rollback --config task.toml   # … and back, through the reverse task
//! target/release/dts stop --config task.toml       # stop the run, wherever it runs
//! target/release/dts cleanup --config task.toml --yes  # drop what the task left
//! ```
//!
//! Exit status: 0 done, 1 the task or a precheck failed, 2 the task file is bad. `verify`:
//! 0 source and target match (or every difference was repaired), 1 they differ. `status`
//! has its own codes (0 running, 3 finished, 4 stopped, 5 failed, 6 never run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod progress;
mod switch;

// The copy allocates and frees many small values per row; mimalloc does that markedly faster
// than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use dts::core::Error;
use dts::{Task, TaskConfig};

#[derive(Parser)]
#[command(
    name = "dts",
    version,
    about = "Migrate a live MySQL/MariaDB database to PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the migration types the task lists. With incremental migration it runs until
    /// stopped (Ctrl-C / SIGTERM: the current batch is finished and its position saved; a
    /// second Ctrl-C exits at once, rolling back what is in flight).
    Run {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
        /// Apply everything the source committed before the incremental phase began, then
        /// exit 0.
        #[arg(long)]
        until_caught_up: bool,
        /// Serve Prometheus metrics on this address (`127.0.0.1:9187`; port 0 picks a free
        /// one, printed on standard error) at `/metrics` while the task runs.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<String>,
    },
    /// Run the prechecks and print each with its status and fix.
    Precheck {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the DDL the task would run, without running it.
    Plan {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compare every selected table of the source with the target, through the task's type
    /// mapping; exit 0 when they match, 1 when they differ.
    Verify {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Make the target match: insert missing rows, delete extra ones, update different
        /// ones, one transaction per chunk, every statement written to the SQL file.
        #[arg(long)]
        repair: bool,
        /// With --repair: only write the SQL file, change nothing.
        #[arg(long, requires = "repair")]
        dry_run: bool,
        /// Where repair statements are written.
        #[arg(long, default_value = "dts-repair.sql")]
        sql_file: PathBuf,
        /// Keys listed per table and kind of difference.
        #[arg(long, default_value_t = 10)]
        max_keys: usize,
    },
    /// Show the task's state and progress, read from the target (from any machine that
    /// reaches it). Exit status: 0 running, 3 finished, 4 stopped (or killed; running it
    /// again resumes), 5 failed, 6 never run.
    Status {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the status as one JSON object (one per line with --watch).
        #[arg(long)]
        json: bool,
        /// Show the status again every 2 seconds until no process runs the task.
        #[arg(long)]
        watch: bool,
    },
    /// Stop the task's run, on whichever machine it runs, at a clean point (as on SIGTERM),
    /// and wait for it to exit.
    Stop {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
        /// Seconds to wait for the run to exit.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Drop what the task left: its state in the target's dts_meta schema (the schema too
    /// once empty) and its binlog reader on the source. Refuses while the task runs.
    Cleanup {
        /// The task file.
        #[arg(long, short)]
        config: PathBuf,
        /// Drop it (without this, only says what would be dropped).
        #[arg(long)]
        yes: bool,
    },
    /// Switch the application over to the target of the running task, with a rollback path:
    /// wait for the lag, stop the source's writes, wait until the target applied them, move
    /// identity counters, verify, end the replication and start the reverse task
    /// (TASK.reverse.toml, target → source).
    Switchover(switch::SwitchoverArgs),
    /// Go back to the source after a switchover: the reverse task catches up, the source's
    /// identity counters move, the reverse task ends and the source is writable again.
    Rollback(switch::SwitchArgs),
    /// Start private MariaDB and PostgreSQL servers, load a sample database, migrate it and
    /// show what was created.
    Demo {
        /// Which engines: the source's sample database and the target it is migrated to.
        #[arg(long, value_enum, default_value_t = DemoDirection::MysqlToPg)]
        direction: DemoDirection,
        /// Keep the servers running until Ctrl-C, to look around.
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DTS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                config,
                until_caught_up,
                metrics_addr,
            } => run(&config, until_caught_up, metrics_addr).await,
            Command::Precheck { config } => precheck(&config).await,
            Command::Plan { config } => plan(&config).await,
            Command::Verify {
                config,
                json,
                repair,
                dry_run,
                sql_file,
                max_keys,
            } => {
                let mut options = dts::VerifyOptions::default().max_keys(max_keys);
                if repair {
                    let mode = if dry_run {
                        dts::core::RepairMode::DryRun
                    } else {
                        dts::core::RepairMode::Apply
                    };
                    options = options.repair(mode, sql_file);
                }
                verify(&config, &options, json).await
            }
            Command::Status {
                config,
                json,
                watch,
            } => status(&config, json, watch).await,
            Command::Stop { config, timeout } => stop(&config, timeout).await,
            Command::Cleanup { config, yes } => cleanup(&config, yes).await,
            Command::Demo { direction, keep } => demo(direction, keep).await,
            Command::Switchover(args) => switch::switchover(args).await,
            Command::Rollback(args) => switch::rollback(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.report());
            if e.kind() == dts::core::ErrorKind::Config {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn load(path: &Path) -> Result<Task, Error> {
    Ok(Task::new(TaskConfig::from_file(path)?))
}

async fn precheck(path: &Path) -> Result<ExitCode, Error> {
    let task = load(path)?;
    let report = task.precheck().await?;
    println!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn verify(path: &Path, options: &dts::VerifyOptions, json: bool) -> Result<ExitCode, Error> {
    let task = load(path)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(progress::verify_display(rx));
    let result = task.verify(options, Some(tx)).await;
    let _ = printer.await;
    let report = result?;
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::internal("cannot write the report").with_source(e))?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    let repaired = options
        .repair
        .as_ref()
        .is_some_and(|(mode, _)| *mode == dts::core::RepairMode::Apply)
        && report.repaired();
    Ok(if report.matches() || repaired {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn plan(path: &Path) -> Result<ExitCode, Error> {
    let task = load(path)?;
    let plan = task.plan().await?;
    println!("-- pre-data");
    for s in &plan.schema.pre_data {
        println!("{};\n", s.sql.trim_end_matches(';'));
    }
    println!("-- post-data");
    for s in &plan.schema.post_data {
        println!("{};\n", s.sql.trim_end_matches(';'));
    }
    for p in &plan.schema.problems {
        let level = if p.blocking { "error" } else { "note" };
        println!("-- {level}: {}: {}", p.object, p.message);
    }
    Ok(if plan.schema.problems.iter().any(|p| p.blocking) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn status(path: &Path, json: bool, watch: bool) -> Result<ExitCode, Error> {
    let config = TaskConfig::from_file(path)?;
    loop {
        let status = dts::status::TaskStatus::read(&config).await?;
        if json {
            let text = serde_json::to_string(&status)
                .map_err(|e| Error::internal("cannot encode the status").with_source(e))?;
            println!("{text}");
        } else {
            if watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Clear the screen and go home.
                print!("\x1b[2J\x1b[H");
            }
            print!("{status}");
        }
        if !watch || status.outcome != dts::status::Outcome::Running {
            return Ok(ExitCode::from(status.outcome.exit_code()));
        }
        if !json {
            println!();
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

async fn stop(path: &Path, timeout: u64) -> Result<ExitCode, Error> {
    use dts::status::StopOutcome;
    let config = TaskConfig::from_file(path)?;
    let name = &config.name;
    match dts::status::stop(&config, std::time::Duration::from_secs(timeout)).await? {
        StopOutcome::NotRunning => {
            println!("task `{name}` is not running");
            Ok(ExitCode::SUCCESS)
        }
        StopOutcome::Stopped(h) => {
            println!(
                "task `{name}` stopped (pid {} on host `{}`); run it again to resume",
                h.pid, h.host
            );
            Ok(ExitCode::SUCCESS)
        }
        StopOutcome::StillRunning(h) => {
            eprintln!(
                "error: task `{name}` is still running after {timeout} s (pid {} on host `{}`): \
                 it stops once the work in flight is done; run `dts stop` again to wait \
                 longer, or end the process on that host",
                h.pid, h.host
            );
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::from(1)),
    }
}

async fn cleanup(path: &Path, yes: bool) -> Result<ExitCode, Error> {
    let config = TaskConfig::from_file(path)?;
    let name = &config.name;
    if !yes {
        let left = dts::status::leftovers(&config).await?;
        if left.record.is_none() && left.reader.is_none() {
            println!("task `{name}` left nothing to clean up (its record is absent)");
        }
        println!("`dts cleanup --yes` would drop:");
        println!("  every row of task `{name}` in the target's dts_meta schema (the schema too once no task has rows in it)");
        if let Some(id) = left.reader {
            println!(
                "  the task's binlog reader on the source (connection {id}), if it still runs"
            );
        }
        println!("the migrated tables stay as they are; run again with --yes to drop it");
        return Ok(ExitCode::from(1));
    }
    let cleaned = dts::status::cleanup(&config).await?;
    if let Some(id) = cleaned.reader_ended {
        println!("ended the change reader on the source (connection {id})");
    }
    for dropped in &cleaned.capture_dropped {
        println!("dropped the {dropped} on the source");
    }
    for (table, n) in &cleaned.rows {
        println!("dropped {n} rows of dts_meta.{table}");
    }
    if cleaned.schema_dropped {
        println!("dropped the dts_meta schema (no task has state left in it)");
    }
    if cleaned.rows.is_empty()
        && cleaned.reader_ended.is_none()
        && cleaned.capture_dropped.is_empty()
    {
        println!("task `{name}` left nothing to clean up");
    } else {
        println!("task `{name}` is cleaned up");
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(
    path: &Path,
    until_caught_up: bool,
    metrics_addr: Option<String>,
) -> Result<ExitCode, Error> {
    let task = load(path)?;
    if let Some(addr) = metrics_addr {
        let exporter = dts::Exporter::serve(&addr, task.config()).await?;
        eprintln!("metrics: http://{}/metrics", exporter.local_addr());
    }
    run_task(
        &task,
        dts::RunOptions::default().until_caught_up(until_caught_up),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_task(task: &Task, options: dts::RunOptions) -> Result<dts::RunReport, Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(progress::display(rx));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        let mut signals = StopSignals::new();
        signals.next().await;
        eprintln!(
            "stopping: finishing the work in flight (run again to resume; \
             Ctrl-C again to exit at once)"
        );
        let _ = stop_tx.send(true);
        signals.next().await;
        // Whatever is in flight is in open target transactions, which the server rolls
        // back when the connections close: a rerun resumes as after a kill.
        eprintln!("exiting at once: the work in flight is rolled back (run again to resume)");
        std::process::exit(130);
    });
    let result = task.run_with(Some(tx), stop_rx, options).await;
    signals.abort();
    let tracker = printer
        .await
        .map_err(|e| Error::internal("progress display panicked").with_source(e))?;
    let report = result?;
    if let Some(full) = &report.full {
        println!("\n{}", progress::summary(&tracker));
        if let Some(p) = &full.position {
            println!("snapshot position: {p}");
        }
        let from_postgres = dts::core::Engine::from_url(&task.config().source.url)
            .is_ok_and(|e| e == dts::core::Engine::Postgres);
        for (column, n) in &full.zero_dates {
            if from_postgres {
                println!(
                    "note: {column}: {n} values written as the type options say (NaN and \
                     infinities as NULL or clamped, -0 as 0)"
                );
            } else {
                println!("note: {column}: {n} zero dates written as NULL");
            }
        }
        if full.copy.rejected > 0 {
            println!(
                "note: {} rows rejected, written to {}",
                full.copy.rejected,
                task.config().full.reject_file.display()
            );
        }
        if full.retries > 0 {
            println!(
                "note: the copy went on after {} lost connections or other transient failures",
                full.retries
            );
        }
        if full.copy.chunks_skipped > 0 {
            println!(
                "resumed: {} chunks were done by an earlier run",
                full.copy.chunks_skipped
            );
        }
        if let Some(v) = &full.verify {
            println!(
                "verified: {} rows in {} tables compared in {:.1} s, source and target match",
                v.rows(),
                v.tables.len(),
                v.elapsed_ms as f64 / 1000.0
            );
        }
    }
    if let Some(inc) = &report.incremental {
        println!(
            "incremental: {} transactions, {} rows applied{}",
            inc.transactions,
            inc.rows,
            inc.position
                .as_ref()
                .map(|p| format!(", position {p}"))
                .unwrap_or_default()
        );
    }
    for w in &report.warnings {
        println!("note: {w}");
    }
    if report.created.is_empty()
        && report.full.is_none()
        && report.incremental.is_none()
        && !report.already_done.is_empty()
    {
        println!(
            "task `{}` was already finished: nothing to do",
            task.config().name
        );
    } else {
        println!(
            "task `{}` finished: {} objects created, {} skipped",
            task.config().name,
            report.created.len(),
            report.skipped.len()
        );
    }
    Ok(report)
}

/// SIGINT and SIGTERM, received one after another.
struct StopSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    /// Starts listening, so that no signal is missed between two [`StopSignals::next`].
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.streams {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The sample database of a MySQL/MariaDB source.
const MYSQL_SAMPLE: &str = include_str!("../../fixtures/mysql/shop.sql");
/// The sample database of a PostgreSQL source.
const PG_SAMPLE: &str = include_str!("../../fixtures/postgres/shop.sql");

/// The engines of a demo: the source with its sample database, the target it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoDirection {
    /// MariaDB → PostgreSQL (the sample of `fixtures/mysql/shop.sql`).
    MysqlToPg,
    /// PostgreSQL → PostgreSQL (the sample of `fixtures/postgres/shop.sql`).
    PgToPg,
    /// PostgreSQL → MariaDB.
    PgToMysql,
    /// MariaDB → MariaDB.
    MysqlToMysql,
}

impl DemoDirection {
    fn source_is_pg(self) -> bool {
        matches!(self, Self::PgToPg | Self::PgToMysql)
    }

    fn target_is_pg(self) -> bool {
        matches!(self, Self::MysqlToPg | Self::PgToPg)
    }
}

/// The private servers of a demo; only those its direction needs are started.
struct DemoServers {
    mysql: Option<dts_testkit::MariaDb>,
    pg: Option<dts_testkit::Postgres>,
}

impl DemoServers {
    fn mysql(&self) -> &dts_testkit::MariaDb {
        self.mysql.as_ref().expect("started for this direction")
    }

    fn pg(&self) -> &dts_testkit::Postgres {
        self.pg.as_ref().expect("started for this direction")
    }
}

fn demo_io(what: &'static str) -> impl Fn(dts_testkit::Error) -> Error {
    move |e| Error::new(dts::core::ErrorKind::Io, what).with_source(e)
}

async fn demo(direction: DemoDirection, keep: bool) -> Result<ExitCode, Error> {
    let io = demo_io;
    let need_mysql = !direction.source_is_pg() || !direction.target_is_pg();
    let need_pg = direction.source_is_pg() || direction.target_is_pg();
    println!(
        "starting {}…",
        match (need_mysql, need_pg) {
            (true, true) => "private MariaDB and PostgreSQL servers",
            (true, false) => "a private MariaDB server",
            _ => "a private PostgreSQL server",
        }
    );
    let servers = tokio::task::spawn_blocking(move || {
        Ok::<_, Error>(DemoServers {
            mysql: need_mysql
                .then(dts_testkit::MariaDb::start_owned)
                .transpose()
                .map_err(io("cannot start mariadb"))?,
            pg: need_pg
                .then(dts_testkit::Postgres::start_owned)
                .transpose()
                .map_err(io("cannot start postgresql"))?,
        })
    })
    .await
    .map_err(|e| Error::internal("server start panicked").with_source(e))??;
    if let Some(mysql) = &servers.mysql {
        println!("  mariadb    {}", mysql.url());
    }
    if let Some(pg) = &servers.pg {
        println!("  postgresql {}", pg.url());
    }

    // The source: database `shop` (its tables in schema `shop` in PostgreSQL).
    let source_url = if direction.source_is_pg() {
        let pg = servers.pg();
        pg.create_database("shop")
            .map_err(io("cannot create the sample database"))?;
        pg.exec_in("shop", PG_SAMPLE)
            .map_err(io("cannot load the sample database"))?;
        println!("loaded the sample schema `shop` (fixtures/postgres/shop.sql) into postgresql");
        pg.url_for("shop")
    } else {
        let mysql = servers.mysql();
        mysql
            .create_database("shop")
            .map_err(io("cannot create the sample database"))?;
        mysql
            .exec_in("shop", MYSQL_SAMPLE)
            .map_err(io("cannot load the sample database"))?;
        println!("loaded the sample database `shop` (fixtures/mysql/shop.sql) into mariadb");
        mysql.url()
    };
    // The target: schema `shop` in PostgreSQL's database `shop_copy`, or MariaDB's
    // database `shop_copy`.
    let (target_url, rename) = if direction.target_is_pg() {
        let pg = servers.pg();
        pg.create_database("shop_copy")
            .map_err(io("cannot create the target database"))?;
        (pg.url_for("shop_copy"), String::new())
    } else {
        (
            servers.mysql().url(),
            "rename_databases = { shop = \"shop_copy\" }\n".to_owned(),
        )
    };

    let config_text = format!(
        "name = \"demo\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\n[source]\nurl = \"{source_url}\"\n\n[target]\nurl = \"{target_url}\"\n\n[objects]\ninclude = [\"shop\"]\n{rename}",
    );
    println!("\ntask file:\n{config_text}");
    let task = Task::new(config_text.parse()?);
    let report = task.precheck().await?;
    println!("{report}\n");
    if !report.passed() {
        return Ok(ExitCode::from(1));
    }
    let until_caught_up = dts::RunOptions::default().until_caught_up(true);
    run_task(&task, until_caught_up).await?;

    // Changes after the snapshot reach the target through the binlog or the WAL.
    if direction.source_is_pg() {
        let changes = "INSERT INTO shop.customers (email, first_name, last_name) \
                       VALUES ('eve@example.com', 'Eve', 'Ng');
                       UPDATE shop.products SET price = price * 1.10 WHERE sku = 'SKU-1';
                       DELETE FROM shop.audit_log WHERE message = 'other';
                       DELETE FROM shop.customers WHERE email = 'bo@example.com';";
        println!(
            "\nchanging the source after the full load (the customer's orders and their items \
             go with it, each cascaded row a change of its own in the WAL):\n{changes}\n"
        );
        servers
            .pg()
            .exec_in("shop", changes)
            .map_err(io("cannot change the sample database"))?;
    } else {
        let changes = "INSERT INTO customers (email, first_name, last_name) \
                       VALUES ('eve@example.com', 'Eve', 'Ng');
                       UPDATE products SET price = price * 1.10 WHERE sku = 'SKU-1';
                       DELETE FROM audit_log WHERE message = 'other';
                       ALTER TABLE customers ADD COLUMN loyalty_points INT NOT NULL DEFAULT 0;
                       UPDATE customers SET loyalty_points = 120 WHERE email = 'ann@example.com';";
        println!("\nchanging the source after the full load:\n{changes}\n");
        servers
            .mysql()
            .exec_in("shop", changes)
            .map_err(io("cannot change the sample database"))?;
    }
    run_task(&task, until_caught_up).await?;
    if direction.target_is_pg() {
        show_pg_target(servers.pg(), direction)?;
    } else {
        show_mysql_target(servers.mysql(), direction)?;
    }
    if keep {
        println!("\nservers keep running; press Ctrl-C to stop them");
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what the demo left in its PostgreSQL target: the replicated customers, the
/// columns with their types, the indexes and the row counts.
fn show_pg_target(pg: &dts_testkit::Postgres, direction: DemoDirection) -> Result<(), Error> {
    let io = demo_io;
    let customers = if direction.source_is_pg() {
        "SELECT format('%s %s %s', id, email, created_at) FROM shop.customers ORDER BY id"
    } else {
        "SELECT format('%s %s points=%s', id, email, loyalty_points) FROM shop.customers \
         ORDER BY id"
    };
    let replicated = pg
        .query_in("shop_copy", customers)
        .map_err(io("cannot read the replicated rows"))?;
    println!("\nshop.customers in PostgreSQL after replication:\n{replicated}");
    let listing = pg
        .query_in(
            "shop_copy",
            "SELECT c.table_name || '.' || c.column_name || ' ' || \
                    CASE WHEN c.data_type = 'USER-DEFINED' THEN c.udt_name \
                         ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END \
                    || CASE WHEN c.is_nullable = 'NO' THEN ' not null' ELSE '' END \
             FROM information_schema.columns c \
             JOIN pg_catalog.pg_attribute a \
               ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass \
              AND a.attname = c.column_name \
             WHERE c.table_schema = 'shop' ORDER BY c.table_name, c.ordinal_position",
        )
        .map_err(io("cannot list the created tables"))?;
    println!("\ncreated in PostgreSQL (schema `shop`):\n{listing}");
    let indexes = pg
        .query_in(
            "shop_copy",
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'shop' ORDER BY indexname",
        )
        .map_err(io("cannot list the created indexes"))?;
    println!("\nindexes:\n{indexes}");
    let tables = pg
        .query_in(
            "shop_copy",
            "SELECT tablename FROM pg_tables WHERE schemaname = 'shop' ORDER BY tablename",
        )
        .map_err(io("cannot list the created tables"))?;
    let count_all: Vec<String> = tables
        .lines()
        .map(|t| {
            format!(
                "SELECT format('%-14s %s rows', {}, count(*)) FROM shop.{}",
                dts::typemap::quote::quote_literal(t),
                dts::typemap::quote::quote_ident(t)
            )
        })
        .collect();
    let counts = pg
        .query_in("shop_copy", &count_all.join(" UNION ALL "))
        .map_err(io("cannot count the copied rows"))?;
    println!("\nrows in PostgreSQL:\n{counts}");
    Ok(())
}

/// Prints what the demo left in its MariaDB target database `shop_copy`, as
/// [`show_pg_target`] does.
fn show_mysql_target(mysql: &dts_testkit::MariaDb, direction: DemoDirection) -> Result<(), Error> {
    let io = demo_io;
    let customers = if direction.source_is_pg() {
        "SELECT CONCAT_WS(' ', id, email, created_at) FROM customers ORDER BY id"
    } else {
        "SELECT CONCAT(id, ' ', email, ' points=', loyalty_points) FROM customers ORDER BY id"
    };
    let replicated = mysql
        .query_in("shop_copy", customers)
        .map_err(io("cannot read the replicated rows"))?;
    println!("\nshop_copy.customers in MariaDB after replication:\n{replicated}");
    let listing = mysql
        .query(
            "SELECT CONCAT(table_name, '.', column_name, ' ', column_type, \
                    IF(is_nullable = 'NO', ' not null', ''), \
                    IF(collation_name IS NULL, '', CONCAT(' collate ', collation_name))) \
             FROM information_schema.columns WHERE table_schema = 'shop_copy' \
             ORDER BY table_name, ordinal_position",
        )
        .map_err(io("cannot list the created tables"))?;
    println!("\ncreated in MariaDB (database `shop_copy`):\n{listing}");
    let indexes = mysql
        .query(
            "SELECT CONCAT(table_name, ' ', IF(non_unique = 0, 'UNIQUE ', ''), index_name, ' (', \
                    GROUP_CONCAT(column_name ORDER BY seq_in_index SEPARATOR ', '), ')') \
             FROM information_schema.statistics WHERE table_schema = 'shop_copy' \
             GROUP BY table_name, index_name, non_unique ORDER BY table_name, index_name",
        )
        .map_err(io("cannot list the created indexes"))?;
    println!("\nindexes:\n{indexes}");
    let tables = mysql
        .query(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'shop_copy' ORDER BY table_name",
        )
        .map_err(io("cannot list the created tables"))?;
    let count_all: Vec<String> = tables
        .lines()
        .map(|t| {
            format!(
                "SELECT CONCAT(RPAD('{t}', 14, ' '), ' ', COUNT(*), ' rows') FROM `{}`",
                t.replace('`', "``")
            )
        })
        .collect();
    if !count_all.is_empty() {
        let counts = mysql
            .query_in("shop_copy", &count_all.join(" UNION ALL "))
            .map_err(io("cannot count the copied rows"))?;
        println!("\nrows in MariaDB:\n{counts}");
    }
    Ok(())
}
