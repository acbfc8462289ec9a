//! A run of the suite: load what it reads (`load`), preflight every target (`preflight`), then
//! each scenario end to end (`scenario`, against the `seam`s), recording what it publishes as
//! it goes (`ledger`); a reserved pool's symbols come from their history (`pool`). The result is
//! the report of [`crate::domain::report`]; the verbs of [`crate::cli`] decide the exit code and
//! write the outputs.

pub mod audit;
pub mod lane;
pub mod ledger;
mod load;
pub mod pool;
pub mod preflight;
pub mod scenario;
pub mod seam;
pub mod shared_reads;
pub mod wait;

use std::time::Instant;

use futures::StreamExt;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::adapter::clickhouse::ClickHouse;
use crate::adapter::kafka::KafkaPublisher;
use crate::config::Config;
use crate::domain::redact;
use crate::domain::report::{self, PreflightLine, RunReport, ScenarioReport, Target, Verdict};
use crate::domain::scenario::{Pacing, Scenario, Stage};
use crate::domain::symbols::RunId;
use lane::Lane;
use ledger::Ledger;
use preflight::Components;
use scenario::{LiveStages, Runner};
use seam::LiveWarehouse;
use shared_reads::SharedReads;

pub use load::{load, load_scenarios, Problems, Shard, Suite, SuiteOptions, DEFAULT_JOBS};

/// Told what the run does as it goes: the command line shows a spinner per scenario and
/// prints the notices on stderr. Scenarios may run concurrently: calls for several scenarios
/// interleave, each scenario's start before its finish.
pub trait Observer {
    /// Scenario `index` (0-based, its place in the suite) of `total` starts.
    fn scenario_started(&self, index: usize, total: usize, scenario: &Scenario);
    fn scenario_finished(&self, scenario: &Scenario, report: &ScenarioReport);
    /// A line for the operator: why nothing was published, or what was before a target
    /// stopped answering.
    fn notice(&self, line: &str);
}

/// One run of the suite under `run_id`: preflight, then every scenario, each recording what it
/// publishes in `ledger` as it goes. The verdict is `error` when a target could not be reached.
pub async fn execute(
    suite: &Suite,
    run_id: &RunId,
    ledger: &Ledger,
    observer: &dyn Observer,
) -> RunReport {
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    let Suite {
        config, scenarios, ..
    } = suite;
    let needs_browser = scenarios.iter().any(|s| s.stages.contains(&Stage::Browser));
    let needs_jangar = needs_browser || scenarios.iter().any(|s| s.stages.contains(&Stage::Api));
    let which = Components {
        kafka: true,
        clickhouse: true,
        webdriver: needs_browser,
        jangar: needs_jangar,
        outputs: true,
    };
    let checks = preflight::run(config, which).await;
    let mut report = empty_report(suite, run_id, started_at);
    report.preflight = checks.iter().map(PreflightLine::from).collect();
    if checks.iter().all(|c| c.ok) {
        run_scenarios(suite, run_id, ledger, observer, &mut report).await;
    } else {
        for c in checks.iter().filter(|c| !c.ok) {
            observer.notice(&format!("preflight failed: {c}"));
        }
        observer.notice("preflight failed: nothing was published");
        report.verdict = Verdict::Error;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn run_scenarios(
    suite: &Suite,
    run_id: &RunId,
    ledger: &Ledger,
    observer: &dyn Observer,
    report: &mut RunReport,
) {
    let Suite {
        config, scenarios, ..
    } = suite;
    let publisher = match KafkaPublisher::new(&config.kafka, config.connect_timeout * 3) {
        Ok(p) => p,
        Err(e) => {
            observer.notice(&format!("torghut-e2e: {e}"));
            report.verdict = Verdict::Error;
            return;
        }
    };
    let outputs = match scenario::OutputsCheck::new(config) {
        Ok(o) => o,
        Err(e) => {
            observer.notice(&format!("torghut-e2e: the schema registry client: {e}"));
            report.verdict = Verdict::Error;
            return;
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
    let concurrent = suite.jobs > 1;
    let lane = if concurrent {
        Lane::concurrent(
            scenarios
                .iter()
                .filter(|s| s.pacing == Pacing::Compressed)
                .count(),
        )
    } else {
        Lane::sequential()
    };
    let runner = Runner {
        run_id,
        publisher: &publisher,
        warehouse: &warehouse,
        stages: &stages,
        pool: suite.pool.as_ref(),
        ledger,
        lane: &lane,
        reads: &SharedReads::default(),
        outputs: outputs.as_ref(),
        ta: config.ta,
    };
    let total = scenarios.len();
    let runs = futures::stream::iter(schedule(scenarios, concurrent))
        .map(|i| {
            let s = &scenarios[i];
            let runner = &runner;
            async move {
                tracing::info!(events = s.events.len(), pacing = ?s.pacing, "running");
                observer.scenario_started(i, total, s);
                let (r, unreachable) = match runner.run(s).await {
                    // An error verdict on a finished scenario: a stage's tool (the WebDriver)
                    // stopped answering.
                    Ok(r) => {
                        let unreachable = r.verdict == Verdict::Error;
                        (r, unreachable)
                    }
                    Err(stopped) => (stopped.report, stopped.error.is_unreachable()),
                };
                observer.scenario_finished(s, &r);
                tracing::info!(verdict = ?r.verdict, duration_ms = r.duration_ms, "finished");
                (i, r, unreachable)
            }
            // Every log line of the scenario names it, however the scenarios interleave.
            .instrument(tracing::info_span!("scenario", name = %s.name))
        })
        .buffer_unordered(suite.jobs.max(1));
    let mut finished: Vec<(usize, ScenarioReport, bool)> = runs.collect().await;
    // Reports in file order, whatever order the scenarios finished in.
    finished.sort_by_key(|(i, _, _)| *i);
    let mut unreachable = false;
    for (_, r, u) in finished {
        unreachable |= u;
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
            observer.notice(&format!(
                "torghut-e2e: a target stopped answering during the run, after publishing: \
                 {totals} (the report lists every delivery and unconfirmed message)"
            ));
        }
    }
}

/// The report of a run that was stopped before it finished (`cause`): the scenarios that
/// finished, and the one it cut short with what that had published.
pub fn stopped_report(
    suite: &Suite,
    run_id: &RunId,
    ledger: &Ledger,
    (started, started_at): (Instant, OffsetDateTime),
    cause: &str,
) -> RunReport {
    let mut scenarios = ledger.reports(cause);
    // Concurrent scenarios begin in schedule order: report them in file order.
    scenarios.sort_by_key(|r| {
        suite
            .scenarios
            .iter()
            .position(|s| s.path.display().to_string() == r.path)
    });
    RunReport {
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: Verdict::Error,
        scenarios,
        ..empty_report(suite, run_id, started_at)
    }
}

/// The order scenarios start in: file order one at a time; concurrently, the compressed ones
/// first (they take turns on the lane, and the real-time ones wait for every turn: see
/// [`Lane`]), then the real-time ones, each group in file order.
fn schedule(scenarios: &[Scenario], concurrent: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scenarios.len()).collect();
    if concurrent {
        order.sort_by_key(|&i| scenarios[i].pacing != Pacing::Compressed);
    }
    order
}

/// A report with the run's identity and target, and nothing run yet.
fn empty_report(suite: &Suite, run_id: &RunId, started_at: OffsetDateTime) -> RunReport {
    RunReport {
        schema: report::SCHEMA,
        run_id: run_id.to_string(),
        started_at,
        duration_ms: 0,
        verdict: Verdict::Fail,
        exit_code: 0,
        target: target(&suite.config),
        artifacts_dir: suite
            .config
            .artifacts_dir
            .join(run_id.as_str())
            .display()
            .to_string(),
        shard: suite.shard.map(|s| s.to_string()),
        preflight: Vec::new(),
        scenarios: Vec::new(),
    }
}

fn target(config: &Config) -> Target {
    Target {
        lane: format!("{:?}", config.lane).to_lowercase(),
        kafka_bootstrap: config.kafka.bootstrap.clone(),
        trades_topic: config.kafka.trades_topic.clone(),
        quotes_topic: config.kafka.quotes_topic.clone(),
        clickhouse_url: redact::url(&config.clickhouse.url),
        clickhouse_database: config.clickhouse.database.clone(),
    }
}
