//! The command line as clap parses it. Verbs never see these types: each converts into the
//! plain options of its verb (checking what clap cannot, such as the limits).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::audit::AuditOptions;
use super::canary::CanaryOptions;
use super::oracle::{OracleOptions, Replay};
use super::outputs::OutputOptions;
use super::preflight::PreflightOptions;
use super::run::{LintOptions, RunOptions};
use crate::config::{quote_window_ms, TaSettings, DEFAULT_QUOTE_STALE_AFTER_MS};
use crate::domain::pool::PoolName;
use crate::domain::scenario::{Limits, DEFAULT_MAX_EVENTS};
use crate::suite::{Shard, SuiteOptions};

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
    pub pool: Option<PoolName>,
    /// Run at most N scenarios at once (default 8). Real-time scenarios publish together;
    /// compressed ones, which need the lane to themselves while they publish, take turns
    /// first. 1: one after another, in file order.
    #[arg(long, short = 'j', value_name = "N", env = "TORGHUT_E2E_JOBS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
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
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EVENTS,
          env = "TORGHUT_E2E_MAX_EVENTS")]
    pub max_events: u64,
}

impl LimitArgs {
    /// The limits, or a usage error naming the flag.
    pub fn limits(&self) -> Result<Limits, String> {
        Limits::new(self.max_span, self.max_events)
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
    /// The job's TA_QUOTE_STALE_AFTER_MS: a quote older than this at the bar end is not
    /// attached (production and simulation: 15000; the job's code default: 2000; 0 or less: no
    /// age limit).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_QUOTE_STALE_AFTER_MS,
          allow_negative_numbers = true, value_parser = quote_window_ms)]
    pub quote_stale_after_ms: i64,
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

impl SuiteArgs {
    pub fn options(self) -> Result<SuiteOptions, String> {
        Ok(SuiteOptions {
            limits: self.limits.limits()?,
            scenarios: self.scenarios,
            config: self.config,
            shard: self.shard,
            pool: self.pool,
            jobs: self.jobs.map(usize::from),
        })
    }
}

impl From<OutputArgs> for OutputOptions {
    fn from(a: OutputArgs) -> Self {
        OutputOptions {
            report_json: a.report_json,
            junit: a.junit,
            html: a.html,
            metrics: a.metrics,
            pushgateway: a.pushgateway,
        }
    }
}

impl RunArgs {
    pub fn options(self) -> Result<RunOptions, String> {
        Ok(RunOptions {
            suite: self.suite.options()?,
            outputs: self.outputs.into(),
            run_id: self.run_id,
        })
    }
}

impl CanaryArgs {
    pub fn options(self) -> Result<CanaryOptions, String> {
        Ok(CanaryOptions {
            suite: self.suite.options()?,
            outputs: self.outputs.into(),
            interval: self.interval,
            jitter: self.jitter,
            max_runs: self.max_runs,
            stop_grace: self.stop_grace,
            history: self.history,
            history_keep: self.history_keep,
        })
    }
}

impl LintArgs {
    pub fn options(self) -> Result<LintOptions, String> {
        Ok(LintOptions {
            limits: self.limits.limits()?,
            scenarios: self.scenarios,
        })
    }
}

impl From<PreflightArgs> for PreflightOptions {
    fn from(a: PreflightArgs) -> Self {
        PreflightOptions {
            config: a.config,
            timeout_ms: a.timeout_ms,
            no_webdriver: a.no_webdriver,
        }
    }
}

impl From<AuditArgs> for AuditOptions {
    fn from(a: AuditArgs) -> Self {
        AuditOptions {
            symbols: a.symbols,
            from: a.from,
            to: a.to,
            last: a.last,
            settle: a.settle,
            clock_skew: a.clock_skew,
            emit_delay: a.emit_delay,
            idle_timeout: a.idle_timeout,
            config: a.config,
            outputs: a.outputs.into(),
        }
    }
}

impl From<OracleArgs> for OracleOptions {
    fn from(a: OracleArgs) -> Self {
        OracleOptions {
            input: a.input,
            replay: Replay {
                flush_open: a.flush_open,
                strict: a.strict,
                ta: TaSettings {
                    quote_stale_after_ms: a.quote_stale_after_ms,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let options = args.options().unwrap();
        assert_eq!(options.suite.shard, Some(Shard { index: 1, count: 2 }));
        assert_eq!(options.outputs.junit, Some(PathBuf::from("j.xml")));
        assert!(Cli::try_parse_from(["torghut-e2e", "run", "x", "--shard", "2/2"]).is_err());
    }

    #[test]
    fn limits_out_of_range_are_usage_errors_naming_the_flags() {
        let cli =
            Cli::try_parse_from(["torghut-e2e", "lint", "x.toml", "--max-events", "0"]).unwrap();
        let Command::Lint(args) = cli.command else {
            panic!("not lint")
        };
        let e = args.options().unwrap_err();
        assert!(e.starts_with("--max-span/--max-events: "), "{e}");
    }

    #[test]
    fn the_oracles_quote_window_is_checked_as_the_jobs() {
        let window = |v: &str| {
            Cli::try_parse_from(
                ["torghut-e2e", "oracle", "--input", "m.jsonl"]
                    .into_iter()
                    .chain(["--quote-stale-after-ms", v]),
            )
            .map(|cli| match cli.command {
                Command::Oracle(a) => a.quote_stale_after_ms,
                _ => panic!("not oracle"),
            })
        };
        assert_eq!(window("2000").unwrap(), 2_000);
        assert_eq!(
            window("-1").unwrap(),
            -1,
            "no age limit, as the job reads it"
        );
        for bad in ["86400001", "2s"] {
            let e = window(bad).unwrap_err().to_string();
            assert!(
                e.contains("up to 86400000") && e.contains("no age limit"),
                "{e}"
            );
        }
    }
}
