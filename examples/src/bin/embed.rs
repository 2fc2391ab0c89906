//! Running a dts task from a Rust service, with live events.
//!
//! Prerequisites: a MariaDB/MySQL source with a `shop` database and a PostgreSQL target.
//!
//! ```text
//! DTS_SOURCE_URL=mysql://root@127.0.0.1:3306 \
//! DTS_TARGET_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! cargo run --release --bin embed -- shop
//! ```

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = std::env::args().nth(1).unwrap_or_else(|| "shop".into());
    let source = std::env::var("DTS_SOURCE_URL").context("set DTS_SOURCE_URL")?;
    let target = std::env::var("DTS_TARGET_URL").context("set DTS_TARGET_URL")?;
    let config: dts::TaskConfig = format!(
        "name = \"embedded\"\nmigration = [\"schema\"]\nsource.url = \"{source}\"\n\
         target.url = \"{target}\"\nobjects.include = [\"{database}\"]\n"
    )
    .parse()?;
    let task = dts::Task::new(config);

    let report = task.precheck().await?;
    println!("{report}");
    anyhow::ensure!(report.passed(), "precheck failed");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            println!("{event:?}");
        }
    });
    let done = task.run(Some(tx)).await?;
    events.await?;
    println!("created {} objects", done.created.len());
    Ok(())
}
