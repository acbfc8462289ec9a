//! The command line: its verbs, their options and the exit-code contract.
//!
//! Exit codes: 0 pass, 1 a check failed, 2 usage or config error, 3 target unreachable or
//! preflight failed, 130/143 stopped by SIGINT/SIGTERM. clap's own usage errors also exit with 2.
//! When a run's checks failed (1) or a target was unreachable (3), that code stands even if an
//! output file could not be written (the error is printed); a passing run whose outputs could
//! not all be written exits 2.
//!
//! clap's types stay in `args`; every verb takes plain options. A closed stdout or stderr
//! (`| head -1`) never ends a verb early: console lines go through `outln!`/`errln!`, which drop
//! what cannot be written (see `stdio`).

pub mod args;
pub mod audit;
pub mod canary;
mod console;
pub mod oracle;
pub mod outputs;
pub mod preflight;
pub mod progress;
pub mod run;
pub mod signals;
pub mod stdio;
pub mod write;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::domain::report::Verdict;
use args::{Cli, Command};

/// Outcome of a verb, mapped onto the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass = 0,
    CheckFailed = 1,
    UsageOrConfig = 2,
    Unreachable = 3,
    /// Stopped by SIGINT or SIGTERM before it finished: 128 + the signal, as a shell reports it.
    Interrupted = 130,
    Terminated = 143,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o as u8)
    }
}

impl From<Verdict> for Outcome {
    /// A finished run's exit code: its checks passed, one failed, or a target could not be
    /// reached (the run's verdict is `error` only then).
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail => Outcome::CheckFailed,
            Verdict::Error => Outcome::Unreachable,
        }
    }
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr so stdout stays machine-readable (oracle rows, reports).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::cli::progress::LogWriter)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false)
        .init();
}

/// Colour codes only for a person at a terminal: a log piped to a file or a CI collector
/// keeps plain text (which the redactor and `grep` read as written), and a non-empty
/// `NO_COLOR` turns them off everywhere (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Runs the verb `cli` names; its exit code.
pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Preflight(args) => preflight::run(&args.into()),
        Command::Run(args) => match args.options() {
            Ok(options) => in_runtime(run::run(&options)),
            Err(e) => usage(&e),
        },
        Command::Canary(args) => match args.options() {
            Ok(options) => in_runtime(canary::run(&options)),
            Err(e) => usage(&e),
        },
        Command::Lint(args) => match args.options() {
            Ok(options) => run::lint(&options),
            Err(e) => usage(&e),
        },
        Command::Oracle(args) => oracle::run(&args.into()),
        Command::Audit(args) => in_runtime(audit::run(&args.into())),
    };
    outcome.into()
}

fn usage(problem: &str) -> Outcome {
    errln!("torghut-e2e: {problem}");
    Outcome::UsageOrConfig
}

/// Runs an async verb to its end.
fn in_runtime(verb: impl std::future::Future<Output = Outcome>) -> Outcome {
    match runtime() {
        Ok(rt) => {
            let outcome = rt.block_on(verb);
            // A run or an aborted canary cycle stopped by a signal may leave blocking work
            // behind (a Kafka metadata call): the stop bound must not wait for it.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            outcome
        }
        Err(e) => {
            errln!("torghut-e2e: cannot start the async runtime: {e}");
            Outcome::Unreachable
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use crate::cli::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
