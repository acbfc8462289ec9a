//! The `run` and `lint` verbs: load, preflight, run each scenario, report, exit.

use std::time::Instant;

use crate::cli::{LintArgs, Outcome, RunArgs};
use crate::clickhouse::ClickHouse;
use crate::config::Config;
use crate::preflight::{self, Components};
use crate::publish::Publisher;
use crate::report::{self, PreflightLine, RunReport, ScenarioReport, Target, Verdict};
use crate::runner::Runner;
use crate::scenario::{self, Scenario, Stage};
use crate::symbols::RunId;

pub fn lint(args: &LintArgs) -> Outcome {
    match load_scenarios(&args.scenarios) {
        Ok(list) => {
            for s in &list {
                println!(
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

/// Loads every file; prints every problem; usage error when any.
fn load_scenarios(paths: &[std::path::PathBuf]) -> Result<Vec<Scenario>, Outcome> {
    let files = scenario::collect(paths).map_err(|e| {
        eprintln!("torghut-e2e: {e}");
        Outcome::UsageOrConfig
    })?;
    if files.is_empty() {
        eprintln!("torghut-e2e: no scenario files found");
        return Err(Outcome::UsageOrConfig);
    }
    let mut scenarios = Vec::new();
    let mut failed = false;
    for f in files {
        match scenario::load(&f) {
            Ok(s) => scenarios.push(s),
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{e}");
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

pub async fn run(args: &RunArgs) -> Outcome {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("torghut-e2e: {e}");
            return Outcome::UsageOrConfig;
        }
    };
    let scenarios = match load_scenarios(&args.scenarios) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let run_id = match &args.run_id {
        Some(id) => {
            match RunId::from_string(id) {
                Some(r) => r,
                None => {
                    eprintln!("torghut-e2e: invalid run id {id:?}: 1-10 characters of 0-9 A-Z (Crockford)");
                    return Outcome::UsageOrConfig;
                }
            }
        }
        None => RunId::generate(),
    };
    let needs_browser = scenarios.iter().any(|s| s.stages.contains(&Stage::Browser));
    let which = Components {
        kafka: true,
        clickhouse: true,
        webdriver: needs_browser,
    };
    let checks = preflight::run(&config, which).await;
    let mut report = RunReport {
        schema: report::SCHEMA,
        run_id: run_id.to_string(),
        started_at,
        duration_ms: 0,
        verdict: Verdict::Fail,
        exit_code: 0,
        target: target(&config),
        preflight: checks.iter().map(PreflightLine::from).collect(),
        scenarios: Vec::new(),
    };
    let outcome = if checks.iter().all(|c| c.ok) {
        run_scenarios(&config, &run_id, &scenarios, &mut report).await
    } else {
        for c in checks.iter().filter(|c| !c.ok) {
            eprintln!("preflight failed: {c}");
        }
        eprintln!("preflight failed: nothing was published");
        report.verdict = Verdict::Error;
        Outcome::Unreachable
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.exit_code = outcome as u8;
    finish(&report, args)
        .map(|()| outcome)
        .unwrap_or(Outcome::UsageOrConfig)
}

async fn run_scenarios(
    config: &Config,
    run_id: &RunId,
    scenarios: &[Scenario],
    report: &mut RunReport,
) -> Outcome {
    let publisher = match Publisher::new(&config.kafka, config.connect_timeout * 3) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("torghut-e2e: {e}");
            report.verdict = Verdict::Error;
            return Outcome::Unreachable;
        }
    };
    let clickhouse = ClickHouse::new(&config.clickhouse, config.connect_timeout);
    let runner = Runner {
        config,
        run_id,
        publisher: &publisher,
        clickhouse: &clickhouse,
    };
    let mut unreachable = false;
    for s in scenarios {
        tracing::info!(scenario = %s.name, events = s.events.len(), "running");
        let r = match runner.run(s).await {
            Ok(r) => r,
            Err(e) => {
                unreachable |= e.is_unreachable();
                ScenarioReport {
                    name: s.name.clone(),
                    path: s.path.display().to_string(),
                    description: s.description.clone(),
                    verdict: Verdict::Error,
                    error: Some(e.to_string()),
                    ..ScenarioReport::default()
                }
            }
        };
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
        clickhouse_url: config.clickhouse.url.clone(),
        clickhouse_database: config.clickhouse.database.clone(),
    }
}

fn finish(report: &RunReport, args: &RunArgs) -> Result<(), ()> {
    let mut stdout = std::io::stdout().lock();
    report::write_console(report, &mut stdout).map_err(|_| ())?;
    if let Some(path) = &args.report_json {
        let json = serde_json::to_vec_pretty(report).map_err(|e| eprintln!("torghut-e2e: {e}"))?;
        std::fs::write(path, json)
            .map_err(|e| eprintln!("torghut-e2e: cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
