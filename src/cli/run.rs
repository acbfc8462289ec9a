//! The `run` and `lint` verbs: load, preflight, run each scenario, report, exit.

use std::time::Instant;

use crate::adapter::clickhouse::ClickHouse;
use crate::adapter::kafka::KafkaPublisher as Publisher;
use crate::cli::outputs::Outputs;
use crate::cli::signals::{Stop, StopSignals};
use crate::cli::{LintArgs, Outcome, RunArgs, Shard, SuiteArgs};
use crate::config::Config;
use crate::domain::pool::PoolName;
use crate::domain::report::{PreflightLine, RunReport, Target, Verdict};
use crate::domain::scenario::{self, Scenario, Stage};
use crate::domain::symbols::RunId;
use crate::report;
use crate::suite::ledger::Ledger;
use crate::suite::preflight::{self, Components};
use crate::suite::scenario::{LiveStages, Runner};
use crate::suite::seam::LiveWarehouse;

pub fn lint(args: &LintArgs) -> Outcome {
    let limits = match args.limits.limits() {
        Ok(l) => l,
        Err(e) => {
            errln!("torghut-e2e: {e}");
            return Outcome::UsageOrConfig;
        }
    };
    match load_scenarios(&args.scenarios, None, &limits) {
        Ok(list) => {
            for s in &list {
                outln!(
                    "{}: ok ({} events, stages {:?})",
                    s.path.display(),
                    s.events.len(),
                    s.stages
                );
            }
            Outcome::Pass
        }
        Err(outcome) => outcome,
    }
}

/// Loads every file (of the shard, when given); prints every problem; usage error when any.
fn load_scenarios(
    paths: &[std::path::PathBuf],
    shard: Option<Shard>,
    limits: &scenario::Limits,
) -> Result<Vec<Scenario>, Outcome> {
    let mut files = scenario::collect(paths).map_err(|e| {
        errln!("torghut-e2e: {e}");
        Outcome::UsageOrConfig
    })?;
    if files.is_empty() {
        errln!("torghut-e2e: no scenario files found");
        return Err(Outcome::UsageOrConfig);
    }
    if let Some(shard) = shard {
        // Every shard must see the same order, whatever order the paths were given in.
        files.sort();
        files.dedup();
        let total = files.len();
        files = shard.select(files);
        tracing::info!(%shard, files = files.len(), total, "running one shard of the suite");
        if files.is_empty() {
            // More shards than files (an Indexed Job sized for a larger suite): this shard has
            // nothing to check, which is not a failure of the pipeline.
            tracing::warn!(%shard, total, "this shard has no scenario file; only preflight runs");
        }
    }
    let mut scenarios = Vec::new();
    let mut failed = false;
    for f in files {
        match scenario::load_with(&f, limits) {
            Ok(s) => scenarios.push(s),
            Err(errors) => {
                failed = true;
                for e in errors {
                    errln!("{e}");
                }
            }
        }
    }
    if failed {
        Err(Outcome::UsageOrConfig)
    } else {
        Ok(scenarios)
    }
}

/// A suite ready to run: its configuration and (this shard's) scenarios.
pub struct Loaded {
    pub config: Config,
    pub scenarios: Vec<Scenario>,
    pub shard: Option<Shard>,
    pub pool: Option<PoolName>,
}

/// Loads the configuration and the scenarios, and every input file the run will read; the
/// outcome to exit with when that fails. Nothing is published before this has passed.
pub fn load(args: &SuiteArgs) -> Result<Loaded, Outcome> {
    let limits = args.limits.limits().map_err(|e| {
        errln!("torghut-e2e: {e}");
        Outcome::UsageOrConfig
    })?;
    let config = Config::load(args.config.as_deref()).map_err(|e| {
        errln!("torghut-e2e: {e}");
        Outcome::UsageOrConfig
    })?;
    let scenarios = load_scenarios(&args.scenarios, args.shard, &limits)?;
    if args.pool.is_some() {
        pool_aliases_unique(&scenarios)?;
    }
    if scenarios.iter().any(|s| s.stages.contains(&Stage::Browser)) {
        // The page model is an input like the scenarios: a broken one is the operator's
        // mistake, not a finding about the pipeline after a run has published.
        crate::stage::browser::model::PageModel::load_default().map_err(|e| {
            errln!(
                "torghut-e2e: {}: {e}",
                crate::stage::browser::model::MODEL_ENV
            );
            Outcome::UsageOrConfig
        })?;
    }
    Ok(Loaded {
        config,
        scenarios,
        shard: args.shard,
        pool: args.pool.clone(),
    })
}

/// In a pool an alias names one symbol for the whole suite: two scenarios sharing it would
/// each change the history the other is predicted from.
fn pool_aliases_unique(scenarios: &[Scenario]) -> Result<(), Outcome> {
    let mut owner: std::collections::HashMap<&str, &Scenario> = Default::default();
    for s in scenarios {
        for alias in &s.symbols {
            if let Some(first) = owner.insert(alias, s) {
                errln!(
                    "torghut-e2e: symbol alias {alias:?} is used by {} and {}: with --pool every \
                     alias must belong to one scenario",
                    first.path.display(),
                    s.path.display()
                );
                return Err(Outcome::UsageOrConfig);
            }
        }
    }
    Ok(())
}

pub async fn run(args: &RunArgs) -> Outcome {
    let loaded = match load(&args.suite) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let run_id = match &args.run_id {
        Some(id) => match RunId::from_string(id) {
            Some(r) => r,
            None => {
                errln!(
                    "torghut-e2e: invalid run id {id:?}: 1-10 characters of 0-9 A-Z (Crockford)"
                );
                return Outcome::UsageOrConfig;
            }
        },
        None => RunId::generate(),
    };
    let outputs = match check_outputs(&args.outputs, &[], &loaded.config) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let ledger = Ledger::default();
    let started = (Instant::now(), time::OffsetDateTime::now_utc());
    let (outcome, report) = match until_stopped(execute(&loaded, &run_id, &ledger)).await {
        Ok(done) => done,
        Err(stop) => {
            let report = stopped_report(&loaded, &run_id, &ledger, started, stop);
            (stopped_outcome(stop), report)
        }
    };
    let previous = outputs
        .metrics
        .as_deref()
        .and_then(report::metrics::read_last_success);
    let secrets = secrets(&loaded.config);
    let written = write_outputs(&report, &outputs, previous, &secrets).await;
    with_outputs(outcome, &written)
}

/// Checks every output before anything is published (see `outputs`); prints every problem.
pub fn check_outputs(
    args: &crate::cli::OutputArgs,
    more: &[(&str, &std::path::Path)],
    config: &Config,
) -> Result<Outputs, Outcome> {
    Outputs::check(args, more, &config.artifacts_dir).map_err(|errors| {
        for e in errors {
            errln!("torghut-e2e: {e}");
        }
        Outcome::UsageOrConfig
    })
}

/// The exit code once the outputs are written: a failed check (1) or an unreachable target (3)
/// stands, whatever happened to the outputs; a pass whose outputs could not all be written is
/// a usage error (2): the evidence asked for is missing.
pub fn with_outputs(outcome: Outcome, written: &Written) -> Outcome {
    if outcome == Outcome::Pass && !written.failed.is_empty() {
        Outcome::UsageOrConfig
    } else {
        outcome
    }
}

/// Runs `work` unless a stop signal comes first; dropping it then ends what it started
/// (chromedriver and its browsers, the producer, queries).
async fn until_stopped<T>(work: impl std::future::Future<Output = T>) -> Result<T, Stop> {
    let mut stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the signal handlers: a stop kills at once");
            return Ok(work.await);
        }
    };
    tokio::select! {
        done = work => Ok(done),
        signal = stop.requested() => Err(signal),
    }
}

pub fn stopped_outcome(stop: Stop) -> Outcome {
    match stop {
        Stop::Term => Outcome::Terminated,
        Stop::Int => Outcome::Interrupted,
    }
}

/// The report of a run that a signal stopped: the scenarios that finished, and the one it cut
/// short with what that had published.
pub fn stopped_report(
    loaded: &Loaded,
    run_id: &RunId,
    ledger: &Ledger,
    (started, started_at): (Instant, time::OffsetDateTime),
    stop: Stop,
) -> RunReport {
    let cause = format!("stopped by {} before it finished", stop.name());
    let totals = ledger.totals();
    if totals.published_anything() {
        eprintln!("torghut-e2e: {cause}, after publishing: {totals}");
    } else {
        eprintln!("torghut-e2e: {cause}; nothing was published");
    }
    RunReport {
        schema: crate::domain::report::SCHEMA,
        run_id: run_id.to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: Verdict::Error,
        exit_code: stopped_outcome(stop) as u8,
        target: target(&loaded.config),
        artifacts_dir: loaded
            .config
            .artifacts_dir
            .join(run_id.as_str())
            .display()
            .to_string(),
        shard: loaded.shard.map(|s| s.to_string()),
        preflight: Vec::new(),
        scenarios: ledger.reports(&cause),
    }
}

/// One run of the suite under `run_id`: preflight, then every scenario, each recording what it
/// publishes in `ledger` as it goes. The report carries the outcome as its exit code.
pub async fn execute(loaded: &Loaded, run_id: &RunId, ledger: &Ledger) -> (Outcome, RunReport) {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let Loaded {
        config, scenarios, ..
    } = loaded;
    let needs_browser = scenarios.iter().any(|s| s.stages.contains(&Stage::Browser));
    let needs_jangar = needs_browser || scenarios.iter().any(|s| s.stages.contains(&Stage::Api));
    let which = Components {
        kafka: true,
        clickhouse: true,
        webdriver: needs_browser,
        jangar: needs_jangar,
    };
    let checks = preflight::run(config, which).await;
    let mut report = RunReport {
        schema: crate::domain::report::SCHEMA,
        run_id: run_id.to_string(),
        started_at,
        duration_ms: 0,
        verdict: Verdict::Fail,
        exit_code: 0,
        target: target(config),
        artifacts_dir: config
            .artifacts_dir
            .join(run_id.as_str())
            .display()
            .to_string(),
        shard: loaded.shard.map(|s| s.to_string()),
        preflight: checks.iter().map(PreflightLine::from).collect(),
        scenarios: Vec::new(),
    };
    let outcome = if checks.iter().all(|c| c.ok) {
        run_scenarios(loaded, run_id, ledger, &mut report).await
    } else {
        for c in checks.iter().filter(|c| !c.ok) {
            errln!("preflight failed: {c}");
        }
        errln!("preflight failed: nothing was published");
        report.verdict = Verdict::Error;
        Outcome::Unreachable
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.exit_code = outcome as u8;
    (outcome, report)
}

async fn run_scenarios(
    loaded: &Loaded,
    run_id: &RunId,
    ledger: &Ledger,
    report: &mut RunReport,
) -> Outcome {
    let Loaded {
        config, scenarios, ..
    } = loaded;
    let publisher = match Publisher::new(&config.kafka, config.connect_timeout * 3) {
        Ok(p) => p,
        Err(e) => {
            errln!("torghut-e2e: {e}");
            report.verdict = Verdict::Error;
            return Outcome::Unreachable;
        }
    };
    let clickhouse = ClickHouse::new(&config.clickhouse, config.connect_timeout);
    let warehouse = LiveWarehouse {
        clickhouse: &clickhouse,
        kafka: &config.kafka,
    };
    let stages = LiveStages {
        config,
        run_id,
        clickhouse: &clickhouse,
    };
    let runner = Runner {
        run_id,
        publisher: &publisher,
        warehouse: &warehouse,
        stages: &stages,
        pool: loaded.pool.as_ref(),
        ledger,
    };
    let mut unreachable = false;
    for (i, s) in scenarios.iter().enumerate() {
        tracing::info!(scenario = %s.name, events = s.events.len(), "running");
        // Realtime scenarios publish for minutes and every scenario may wait up to its deadline:
        // on a terminal a spinner shows that the run is alive.
        let spinner = crate::cli::progress::spinner(format!(
            "[{}/{}] {}: {} events, {} pacing, deadline {} s",
            i + 1,
            scenarios.len(),
            s.name,
            s.events.len(),
            format!("{:?}", s.pacing).to_lowercase(),
            s.deadline.as_secs()
        ));
        let r = match runner.run(s).await {
            // An error verdict on a finished scenario: a stage's tool (the WebDriver) stopped
            // answering.
            Ok(r) => {
                unreachable |= r.verdict == Verdict::Error;
                r
            }
            Err(stopped) => {
                unreachable |= stopped.error.is_unreachable();
                stopped.report
            }
        };
        spinner.finish_and_clear();
        tracing::info!(scenario = %s.name, verdict = ?r.verdict, duration_ms = r.duration_ms, "finished");
        report.scenarios.push(r);
    }
    let all_pass = report.scenarios.iter().all(|s| s.verdict == Verdict::Pass);
    report.verdict = if all_pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if unreachable {
        report.verdict = Verdict::Error;
        // Exit 3 alone would suggest nothing was written, as when preflight fails.
        let totals = ledger.totals();
        if totals.published_anything() {
            eprintln!(
                "torghut-e2e: a target stopped answering during the run, after publishing: \
                 {totals} (the report lists every delivery and unconfirmed message)"
            );
        }
        Outcome::Unreachable
    } else if all_pass {
        Outcome::Pass
    } else {
        Outcome::CheckFailed
    }
}

fn target(config: &Config) -> Target {
    Target {
        lane: format!("{:?}", config.lane).to_lowercase(),
        kafka_bootstrap: config.kafka.bootstrap.clone(),
        trades_topic: config.kafka.trades_topic.clone(),
        quotes_topic: config.kafka.quotes_topic.clone(),
        clickhouse_url: crate::domain::redact::url(&config.clickhouse.url),
        clickhouse_database: config.clickhouse.database.clone(),
    }
}

/// What writing the outputs came to.
#[derive(Debug, Default)]
pub struct Written {
    /// The last-success time published in the metrics.
    pub last_success: Option<f64>,
    /// The outputs that could not be written, by flag (each error was printed).
    pub failed: Vec<String>,
}

/// Prints the console summary and writes every requested output: each one that can be
/// written is, whatever happened to the others; the failures are printed and listed. A closed
/// stdout is not a failure (`| head`). A Pushgateway that refuses the push is logged but does
/// not change the run's outcome.
pub async fn write_outputs(
    report: &RunReport,
    outputs: &Outputs,
    previous_success: Option<f64>,
    secrets: &[String],
) -> Written {
    let mut written = Written::default();
    let mut failed = |flag: &str, e: &dyn std::fmt::Display| {
        errln!("torghut-e2e: {flag}: {e}");
        written.failed.push(flag.to_string());
    };
    let mut console = Vec::new();
    let shown = report::write_console(report, &mut console).and_then(|()| {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(&console)
    });
    match shown {
        Err(e) if !crate::cli::stdio::is_closed_pipe(&e) => failed("stdout", &e),
        _ => {}
    }
    if let Some(path) = &outputs.report_json {
        let json = serde_json::to_string_pretty(report).map_err(std::io::Error::from);
        // Belt and braces: no configured secret reaches the file, whatever a stage recorded.
        let saved = json
            .and_then(|j| std::fs::write(path, crate::domain::redact::scrub_known(&j).as_bytes()));
        if let Err(e) = saved {
            failed(
                "--report-json",
                &format!("cannot write {}: {e}", path.display()),
            );
        }
    }
    if let Some(path) = &outputs.junit {
        let linked: Vec<String> = [&outputs.report_json, &outputs.html]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        if let Err(e) = report::junit::write(report, path, &linked) {
            failed("--junit", &e);
        }
    }
    if let Some(path) = &outputs.html {
        if let Err(e) = report::html::write(report, path, secrets) {
            failed("--html", &e);
        }
    }
    let last_success = report::metrics::last_success(report, previous_success);
    if outputs.metrics.is_some() || outputs.pushgateway.is_some() {
        let text = report::metrics::render(report, last_success);
        if let Some(path) = &outputs.metrics {
            if let Err(e) = report::metrics::write_file(path, &text) {
                failed("--metrics", &e);
            }
        }
        if let Some(gateway) = &outputs.pushgateway {
            let url = &gateway.url;
            match report::metrics::push(url, gateway.auth.as_ref(), report, text).await {
                Ok(()) => tracing::info!(%url, "metrics pushed"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
    written.last_success = last_success;
    written
}

/// The configured secret values, for scrubbing them from what the run writes.
pub fn secrets(config: &Config) -> Vec<String> {
    config.secrets().into_iter().map(str::to_string).collect()
}
