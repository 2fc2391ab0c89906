//! The command line of a benchmark binary: arguments in, exit code out.

use std::env;
use std::process::ExitCode;

/// Runs the benchmark `name`: `parse` reads the arguments (`Ok(None)` asks for `usage`,
/// which is printed), `run` runs it. Exits with 0 when the run holds, 1 when it does not or
/// fails, and 2 for bad arguments (printed with the usage).
pub fn main<A>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(env::Args) -> anyhow::Result<Option<A>>,
    run: impl FnOnce(&A) -> anyhow::Result<bool>,
) -> ExitCode {
    let mut words = env::args();
    words.next();
    let args = match parse(words) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e:#}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A comma-separated list of names, without duplicates, in the order given; `what` names
/// the kind of name in errors.
///
/// # Errors
///
/// A name `parse` does not know, or an empty list.
pub fn list<T: PartialEq>(
    value: &str,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    use anyhow::Context as _;
    let mut items = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let item = parse(name).with_context(|| format!("unknown {what} `{name}`"))?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.is_empty() {
        anyhow::bail!("empty {what} list");
    }
    Ok(items)
}
