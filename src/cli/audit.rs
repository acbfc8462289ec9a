//! The `audit` verb: the rows the TA job stored for real symbols over a past window, checked
//! against the oracle, read-only (`suite::audit`). Exit 0 pass, 1 divergence (or nothing
//! verified), 2 usage or a window that cannot be audited, 3 a target unreachable.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::outputs::OutputOptions;
use super::run::{check_outputs, with_outputs};
use super::write::{secrets, write_outputs};
use super::Outcome;
use crate::adapter::clickhouse::ClickHouse;
use crate::adapter::pushgateway;
use crate::config::Config;
use crate::domain::audit::replay::Timing;
use crate::domain::audit::window::{self, Window};
use crate::domain::report::{PreflightLine, RunReport, Target, Verdict};
use crate::domain::symbols::RunId;
use crate::report;
use crate::suite::audit::{self, Context, Ended, MAX_SYMBOLS};
use crate::suite::preflight::{self, Components};

/// Which symbols over which window, how much timing slack, where the reports go.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Symbols as the job keys them.
    pub symbols: Vec<String>,
    /// Window start and end, RFC 3339 (both or neither).
    pub from: Option<String>,
    pub to: Option<String>,
    /// The window of this length ending `settle` ago (instead of from/to).
    pub last: Option<Duration>,
    /// How long ago the window must end at the latest.
    pub settle: Duration,
    /// How far record timestamps, event times and the job's ingest_ts may disagree.
    pub clock_skew: Duration,
    /// The longest a bar may take from its emission to the job's signal operator.
    pub emit_delay: Duration,
    /// The job's watermark idle timeout.
    pub idle_timeout: Duration,
    pub config: Option<PathBuf>,
    pub outputs: OutputOptions,
}

/// The verb: exit 0 pass, 1 divergence (or nothing verified), 2 usage or a window that cannot
/// be audited, 3 a target unreachable.
pub async fn run(args: &AuditOptions) -> Outcome {
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    let symbols = match check_symbols(&args.symbols) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let window = match Window::resolve(
        args.from.as_deref(),
        args.to.as_deref(),
        args.last,
        args.settle,
        started_at,
    ) {
        Ok(w) => w,
        Err(e) => return usage(&e),
    };
    for (flag, d) in [
        ("--clock-skew", args.clock_skew),
        ("--emit-delay", args.emit_delay),
        ("--idle-timeout", args.idle_timeout),
    ] {
        if d > window::MAX_SETTLE {
            return usage(&format!(
                "{flag} must be at most {}",
                humantime::format_duration(window::MAX_SETTLE)
            ));
        }
    }
    let config = match Config::load_read_only(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let outputs = match check_outputs(&args.outputs, &[], &config) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let run_id = RunId::generate();
    let checks = preflight::run(
        &config,
        Components {
            kafka: true,
            clickhouse: true,
            webdriver: false,
            jangar: false,
            outputs: false,
        },
    )
    .await;
    let mut report = RunReport {
        schema: crate::domain::report::SCHEMA,
        run_id: format!("audit-{run_id}"),
        started_at,
        duration_ms: 0,
        verdict: Verdict::Error,
        exit_code: 0,
        target: target(&config),
        artifacts_dir: config
            .artifacts_dir
            .join(format!("audit-{run_id}"))
            .display()
            .to_string(),
        shard: None,
        preflight: checks.iter().map(PreflightLine::from).collect(),
        scenarios: Vec::new(),
    };
    let outcome = if checks.iter().all(|c| c.ok) {
        let ctx = Context {
            config: &config,
            clickhouse: ClickHouse::new(&config.clickhouse, config.connect_timeout * 3),
            window,
            timing: Timing {
                clock_skew_ms: args.clock_skew.as_millis() as i64,
                idle_timeout_ms: args.idle_timeout.as_millis() as i64,
            },
            quote_slack_ms: (args.clock_skew + args.emit_delay).as_millis() as i64,
            // Quotes are read some minutes past the window (the window's last bars may be
            // emitted well after it), or to the topic's end when that is sooner.
            quote_horizon_ms: window::millis(window::after(window.to, window::QUOTES_PAST))
                .min(window::millis(started_at)),
            now: started_at,
        };
        ended(audit::audit(&ctx, &symbols, &mut report).await)
    } else {
        for c in checks.iter().filter(|c| !c.ok) {
            errln!("preflight failed: {c}");
        }
        Outcome::Unreachable
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.exit_code = outcome as u8;
    if outcome == Outcome::UsageOrConfig {
        report.verdict = Verdict::Error;
    }
    let secrets = secrets(&config);
    let previous = outputs
        .metrics
        .as_deref()
        .and_then(report::metrics::read_last_success);
    // The Pushgateway gets the audit's own grouping key, so it never replaces the canary's.
    let mut local = outputs.clone();
    local.pushgateway = None;
    let written = write_outputs(&report, &local, previous, &secrets).await;
    if let Some(gateway) = &outputs.pushgateway {
        let text = report::metrics::render(&report, written.last_success);
        let url = push_url(&gateway.url, &report);
        match pushgateway::push(&url, gateway.auth.as_ref(), text).await {
            Ok(()) => tracing::info!(%url, "metrics pushed"),
            Err(e) => tracing::error!("{e}"),
        }
    }
    with_outputs(outcome, &written)
}

/// `<base>/metrics/job/torghut-e2e-audit/lane/<lane>`.
pub fn push_url(base: &str, report: &RunReport) -> String {
    format!(
        "{}/metrics/job/torghut-e2e-audit/lane/{}",
        base.trim_end_matches('/'),
        report.target.lane
    )
}

fn usage(message: &str) -> Outcome {
    errln!("torghut-e2e audit: {message}");
    Outcome::UsageOrConfig
}

/// Symbols as the job keys them: case kept, 1–32 characters of what tickers use
/// (`BRK.B`, `BTC/USD`), at most [`MAX_SYMBOLS`], no repeats.
fn check_symbols(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for s in list.iter().map(|s| s.trim()) {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
        if !ok {
            return Err(format!(
                "--symbols: {s:?} is not a symbol (1-32 characters of A-Z a-z 0-9 . _ : / -)"
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.is_empty() || out.len() > MAX_SYMBOLS {
        return Err(format!("--symbols: give 1 to {MAX_SYMBOLS} symbols"));
    }
    Ok(out)
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

/// The exit code of an audit that ran, with what it has to say.
fn ended(end: Ended) -> Outcome {
    match end {
        Ended::Judged(verdict) => Outcome::from(verdict),
        Ended::NothingVerified(why) => {
            errln!("torghut-e2e audit: {why}");
            Outcome::CheckFailed
        }
        Ended::Refused(why) => {
            errln!("torghut-e2e audit: {why}");
            Outcome::UsageOrConfig
        }
        Ended::Unreachable(why) => {
            if let Some(why) = why {
                errln!("torghut-e2e audit: {why}");
            }
            Outcome::Unreachable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_checked_and_deduplicated() {
        let list = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_symbols(&list(&["NVDA", "BRK.B", "BTC/USD", "NVDA"])).unwrap(),
            list(&["NVDA", "BRK.B", "BTC/USD"])
        );
        assert!(check_symbols(&list(&["NV DA"])).is_err());
        assert!(check_symbols(&list(&[""])).is_err());
        assert!(check_symbols(&list(&[])).is_err());
    }

    #[test]
    fn the_audit_pushes_under_its_own_job() {
        let r = crate::report::sample::sample();
        assert_eq!(
            push_url("http://pg:9091/", &r),
            "http://pg:9091/metrics/job/torghut-e2e-audit/lane/sim"
        );
    }
}
