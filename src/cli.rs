//! Verbs of the command line and the exit-code contract.
//!
//! Exit codes: 0 pass, 1 a check failed, 2 usage or config error, 3 target unreachable or
//! preflight failed. clap's own usage errors also exit with 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Outcome of a verb, mapped onto the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass = 0,
    CheckFailed = 1,
    UsageOrConfig = 2,
    Unreachable = 3,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "torghut-e2e",
    version,
    about = "Synthetic end-to-end validator for the Torghut market-data pipeline"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that Kafka, ClickHouse and WebDriver answer, authenticate and have what a run needs.
    Preflight(PreflightArgs),
    /// Run scenarios end to end: publish, wait for the rows in ClickHouse, compare, diagnose.
    Run(RunArgs),
    /// Validate scenario files; errors as file:line:column.
    Lint(LintArgs),
    /// Compute the rows production must write for a recorded stream of forwarder messages.
    Oracle(OracleArgs),
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// Config file (TOML); TORGHUT_E2E_* environment variables override it.
    #[arg(long, short = 'c', env = "TORGHUT_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bound for each probe, in milliseconds (overrides the config's connect_timeout_ms).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Skip the WebDriver probe (runs without the browser stage).
    #[arg(long)]
    pub no_webdriver: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories of them (`*.toml`).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Config file (TOML); TORGHUT_E2E_* environment variables override it.
    #[arg(long, short = 'c', env = "TORGHUT_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    /// Write the versioned JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Use this run id instead of a fresh one (its symbols must have no rows yet).
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Scenario files or directories of them.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct OracleArgs {
    /// JSON lines, one Kafka message value per line exactly as the forwarder writes it, in publish order.
    #[arg(long)]
    pub input: PathBuf,
    /// Also emit the buckets still open at the end of the input, as if the watermark had passed them.
    #[arg(long)]
    pub flush_open: bool,
    /// Fail (exit 2, nothing printed) on the first malformed line instead of skipping it with a
    /// warning the way the TA job drops records it cannot decode.
    #[arg(long)]
    pub strict: bool,
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Preflight(args) => preflight(&args),
        Command::Run(args) => match runtime() {
            Ok(rt) => rt.block_on(crate::run::run(&args)),
            Err(e) => {
                eprintln!("torghut-e2e: cannot start the async runtime: {e}");
                Outcome::Unreachable
            }
        },
        Command::Lint(args) => crate::run::lint(&args),
        Command::Oracle(args) => crate::oracle::cli::run(&args),
    };
    outcome.into()
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn preflight(args: &PreflightArgs) -> Outcome {
    let mut config = match crate::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("torghut-e2e: {e}");
            return Outcome::UsageOrConfig;
        }
    };
    if let Some(ms) = args.timeout_ms {
        config.connect_timeout = std::time::Duration::from_millis(ms);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("torghut-e2e: cannot start the async runtime: {e}");
            return Outcome::Unreachable;
        }
    };
    let which = crate::preflight::Components {
        kafka: true,
        clickhouse: true,
        webdriver: !args.no_webdriver,
    };
    let checks = rt.block_on(crate::preflight::run(&config, which));
    for check in &checks {
        println!("{check}");
    }
    if checks.iter().all(|c| c.ok) {
        println!("preflight: all {} components pass", checks.len());
        Outcome::Pass
    } else {
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.component)
            .collect();
        println!("preflight: FAILED: {}", failed.join(", "));
        Outcome::Unreachable
    }
}
