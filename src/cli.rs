//! Verbs of the command line and the exit-code contract.
//!
//! Exit codes: 0 pass, 1 a check failed, 2 usage or config error, 3 target unreachable or
//! preflight failed. clap's own usage errors also exit with 2. When a run's checks failed (1)
//! or a target was unreachable (3), that code stands even if an output file could not be
//! written (the error is printed); a passing run whose outputs could not all be written exits 2.
//!
//! A closed stdout or stderr (`| head -1`) never ends a verb early: console lines go through
//! `outln!`/`errln!`, which drop what cannot be written (see `stdio`).

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
    /// Run the scenarios again and again (each cycle an isolated run) until --max-runs or SIGTERM.
    Canary(CanaryArgs),
    /// Validate scenario files; errors as file:line:column.
    Lint(LintArgs),
    /// Compute the rows production must write for a recorded stream of forwarder messages.
    Oracle(OracleArgs),
    /// Verify the rows the TA job stored for real symbols over a past window against the oracle,
    /// read-only: the window's trades and quotes from Kafka, the rows from ClickHouse.
    Audit(AuditArgs),
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// Config file (TOML); TORGHUT_E2E_* environment variables override it.
    #[arg(long, short = 'c', env = "TORGHUT_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bound for each probe, in milliseconds (overrides the config's connect_timeout_ms).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: Option<u64>,
    /// Skip the WebDriver probe (runs without the browser stage).
    #[arg(long)]
    pub no_webdriver: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// Use this run id instead of a fresh one (its symbols must have no rows yet).
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// From the start of one cycle to the start of the next (e.g. 5m, 90s).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Wait up to this much more (uniformly random) before each next cycle.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub jitter: Option<std::time::Duration>,
    /// Stop after this many cycles (default: until SIGTERM or SIGINT).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_runs: Option<u64>,
    /// On SIGTERM or SIGINT, how long the current cycle may take to finish before it is aborted.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub stop_grace: std::time::Duration,
    /// History of recent cycles, JSON lines (default: <artifacts_dir>/canary-history.jsonl).
    #[arg(long, value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// How many cycles the history keeps.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub history_keep: usize,
}

/// What to run and against what; shared by `run` and `canary`.
#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// Scenario files or directories of them (`*.toml`).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Config file (TOML); TORGHUT_E2E_* environment variables override it.
    #[arg(long, short = 'c', env = "TORGHUT_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run only shard I of N (0-based): the scenario files sorted, every file whose position
    /// is I modulo N. For a Kubernetes Indexed Job: `--shard $(JOB_COMPLETION_INDEX)/N`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Reuse this reserved pool's symbols (`ZZT2E-<POOL>.<G>-<ALIAS>`), seeding expectations from
    /// their history in ClickHouse, instead of fresh symbols per run: keeps the TA job's state
    /// bounded for long-running canaries. One process per pool at a time.
    #[arg(long, value_name = "POOL", env = "TORGHUT_E2E_POOL")]
    pub pool: Option<crate::pool::PoolName>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Bounds on each scenario, checked before anything is generated or published.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LimitArgs {
    /// Latest event offset a scenario may have (e.g. 1h, 90m; at most 7 days).
    #[arg(long, value_name = "DURATION", default_value = "1h", env = "TORGHUT_E2E_MAX_SPAN",
          value_parser = humantime::parse_duration)]
    pub max_span: std::time::Duration,
    /// Most events (trades and quotes) a scenario may publish (at most 10000000).
    #[arg(long, value_name = "N", default_value_t = crate::scenario::DEFAULT_MAX_EVENTS,
          env = "TORGHUT_E2E_MAX_EVENTS")]
    pub max_events: u64,
}

impl LimitArgs {
    /// The limits, or a usage error naming the flag.
    pub fn limits(&self) -> Result<crate::scenario::Limits, String> {
        crate::scenario::Limits::new(self.max_span, self.max_events)
            .map_err(|e| format!("--max-span/--max-events: {e}"))
    }
}

/// Where a run's results go besides the console; shared by `run` and `canary`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Write the versioned JSON report here.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write JUnit XML here: one test case per check, failures with message and evidence paths.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the self-contained HTML evidence report here (plots, divergence, latency, evidence).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write Prometheus text-format metrics here (a node-exporter textfile works).
    #[arg(long, value_name = "PATH")]
    pub metrics: Option<PathBuf>,
    /// Push the same metrics to this Pushgateway (`<URL>/metrics/job/torghut-e2e`).
    #[arg(long, value_name = "URL", env = "TORGHUT_E2E_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
}

/// One share of a suite split across N workers: files at positions ≡ index (mod count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Keeps this shard's items; `items` must already be in a stable (sorted) order.
    pub fn select<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, t)| t)
            .collect()
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Scenario files or directories of them.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
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

/// `audit`: which symbols over which window, how much timing slack, where the reports go.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("window").required(true).args(["from", "last"])))]
pub struct AuditArgs {
    /// Symbols to audit, comma-separated (e.g. NVDA,AMD).
    #[arg(long, required = true, value_delimiter = ',', value_name = "SYMBOLS")]
    pub symbols: Vec<String>,
    /// Window start, RFC 3339 (e.g. 2026-07-21T14:30:00Z); with --to.
    #[arg(long, requires = "to", value_name = "TIME")]
    pub from: Option<String>,
    /// Window end, RFC 3339; at least --settle ago.
    #[arg(long, requires = "from", value_name = "TIME")]
    pub to: Option<String>,
    /// The window of this length ending --settle ago (e.g. 15m, 1h).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["from", "to"],
          value_parser = humantime::parse_duration)]
    pub last: Option<std::time::Duration>,
    /// How long ago the window must end at the latest, so the job has written its last bars.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = humantime::parse_duration)]
    pub settle: std::time::Duration,
    /// How far record timestamps, event times and the job's ingest_ts may disagree.
    #[arg(long, value_name = "DURATION", default_value = "500ms",
          value_parser = humantime::parse_duration)]
    pub clock_skew: std::time::Duration,
    /// The longest a bar may take from its emission (ingest_ts) to the job's signal operator,
    /// i.e. how late a quote may still be processed before it.
    #[arg(long, value_name = "DURATION", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub emit_delay: std::time::Duration,
    /// The job's watermark idle timeout (TA_WATERMARK_IDLE_TIMEOUT_MS).
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Config file (TOML); TORGHUT_E2E_* environment variables override it. The production
    /// lane needs no allow_production: the audit only reads.
    #[arg(long, short = 'c', env = "TORGHUT_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub outputs: OutputArgs,
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
        .with_writer(crate::progress::LogWriter)
        .with_target(false)
        .init();
}

pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Preflight(args) => preflight(&args),
        Command::Run(args) => match runtime() {
            Ok(rt) => rt.block_on(crate::run::run(&args)),
            Err(e) => {
                errln!("torghut-e2e: cannot start the async runtime: {e}");
                Outcome::Unreachable
            }
        },
        Command::Canary(args) => match runtime() {
            Ok(rt) => {
                let outcome = rt.block_on(crate::canary::run(&args));
                // An aborted cycle may leave blocking work behind (a Kafka metadata call): the
                // stop bound must not wait for it.
                rt.shutdown_timeout(std::time::Duration::from_secs(2));
                outcome
            }
            Err(e) => {
                errln!("torghut-e2e: cannot start the async runtime: {e}");
                Outcome::Unreachable
            }
        },
        Command::Lint(args) => crate::run::lint(&args),
        Command::Oracle(args) => crate::oracle::cli::run(&args),
        Command::Audit(args) => match runtime() {
            Ok(rt) => rt.block_on(crate::audit::run(&args)),
            Err(e) => {
                errln!("torghut-e2e: cannot start the async runtime: {e}");
                Outcome::Unreachable
            }
        },
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
            errln!("torghut-e2e: {e}");
            return Outcome::UsageOrConfig;
        }
    };
    if let Some(ms) = args.timeout_ms {
        config.connect_timeout = std::time::Duration::from_millis(ms);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("torghut-e2e: cannot start the async runtime: {e}");
            return Outcome::Unreachable;
        }
    };
    let which = crate::preflight::Components {
        kafka: true,
        clickhouse: true,
        webdriver: !args.no_webdriver,
        jangar: true,
    };
    let checks = rt.block_on(crate::preflight::run(&config, which));
    for check in &checks {
        outln!("{check}");
    }
    if checks.iter().all(|c| c.ok) {
        outln!("preflight: all {} components pass", checks.len());
        Outcome::Pass
    } else {
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.component)
            .collect();
        outln!("preflight: FAILED: {}", failed.join(", "));
        Outcome::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parses_and_rejects_out_of_range() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 0, count: 3 }.to_string(), "0/3");
    }

    #[test]
    fn shards_partition_the_suite() {
        let files: Vec<u32> = (0..10).collect();
        let mut seen = Vec::new();
        for index in 0..3 {
            let part = Shard { index, count: 3 }.select(files.clone());
            assert!(part.iter().all(|f| f % 3 == index as u32), "{part:?}");
            seen.extend(part);
        }
        seen.sort();
        assert_eq!(seen, files, "every file in exactly one shard");
        assert_eq!(Shard { index: 0, count: 1 }.select(files.clone()), files);
    }

    #[test]
    fn run_accepts_the_output_flags() {
        let cli = Cli::try_parse_from([
            "torghut-e2e",
            "run",
            "scenarios/",
            "--shard",
            "1/2",
            "--junit",
            "j.xml",
            "--metrics",
            "m.prom",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.suite.shard, Some(Shard { index: 1, count: 2 }));
        assert_eq!(args.outputs.junit, Some(PathBuf::from("j.xml")));
        assert!(Cli::try_parse_from(["torghut-e2e", "run", "x", "--shard", "2/2"]).is_err());
    }
}
