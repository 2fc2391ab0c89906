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
