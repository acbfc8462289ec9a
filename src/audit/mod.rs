//! `torghut-e2e audit`: the rows the TA job stored for **real** symbols over a past window,
//! against the oracle, read-only.
//!
//! The job's inputs stay on Kafka (35 days) and its outputs in ClickHouse, so any recent window
//! can be recomputed without publishing anything:
//!
//! 1. [`window`]: the window, checked (it must end `--settle` ago);
//! 2. [`reader`]: the offsets of its start and end by timestamp (`offsets_for_times`), then the
//!    chosen symbols' trades and quotes, assigned (no consumer group, nothing committed); a topic
//!    whose retention removed the window's start is refused;
//! 3. [`stored`]: the rows around the window (`FINAL`), split into the job's state epochs;
//! 4. [`anchor`]: where the audit of each symbol starts (the first bar whose predecessor is
//!    stored) and where a restart without state begins a new epoch;
//! 5. the seed at that start: the pool's seeding ([`crate::pool::seed`]) cut at that bar;
//! 6. [`judge`]: the rows predicted by the oracle ([`replay`]), compared with `run`'s comparator,
//!    tolerances and diagnosis, the quote columns judged apart ([`quotes`]);
//! 7. reports as `run` writes them, one "scenario" per symbol.
//!
//! Nothing is written to Kafka or ClickHouse: no producer exists here, the Kafka client has no
//! group id, and every query is a `SELECT`.

mod anchor;
pub mod judge;
pub mod quotes;
pub mod reader;
pub mod replay;
mod stored;
pub mod window;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{AuditArgs, Outcome};
use crate::clickhouse::{ClickHouse, ClickHouseError, HistoryCut};
use crate::compare::TableDiff;
use crate::config::Config;
use crate::diagnose::{self, Finding, Hop, SinkFacts};
use crate::model::{Columns, Microbar, Signal};
use crate::oracle::{Quote, SeedState, Trade};
use crate::pool::{self, HistoryKind, Seeded};
use crate::preflight::{self, Components};
use crate::report::{self, PreflightLine, RunReport, ScenarioReport, Series, Target, Verdict};
use crate::scenario::Tolerance;
use crate::symbols::RunId;

use anchor::{Segment, Start};
use judge::{CompareOptions, Comparison, PredictInput, Prediction};
use reader::{ReadError, Record, TopicQuery, TopicRead};
use replay::{Split, Timing};
use stored::{Epoch, SeqRange};
use window::Window;

/// Most symbols one audit takes.
pub const MAX_SYMBOLS: usize = 50;
/// An audit starting this long after the window's start says why (quiet symbols start late).
const LATE_START_SECS: i64 = 30;
/// Points plotted per symbol around the first divergence (or at the window's end).
const PLOTTED_SECONDS: i64 = 120;

/// The verb: exit 0 pass, 1 divergence (or nothing verified), 2 usage or a window that cannot
/// be audited, 3 a target unreachable.
pub async fn run(args: &AuditArgs) -> Outcome {
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
    let outputs = match crate::run::check_outputs(&args.outputs, &[], &config) {
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
        },
    )
    .await;
    let mut report = RunReport {
        schema: report::SCHEMA,
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
        audit(&ctx, &symbols, &mut report).await
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
    let secrets = crate::run::secrets(&config);
    let previous = outputs
        .metrics
        .as_deref()
        .and_then(report::metrics::read_last_success);
    // The Pushgateway gets the audit's own grouping key, so it never replaces the canary's.
    let mut local = outputs.clone();
    local.pushgateway = None;
    let written = crate::run::write_outputs(&report, &local, previous, &secrets).await;
    if let Some(gateway) = &outputs.pushgateway {
        let text = report::metrics::render(&report, written.last_success);
        let url = push_url(&gateway.url, &report);
        match report::metrics::push_to(&url, gateway.auth.as_ref(), text).await {
            Ok(()) => tracing::info!(%url, "metrics pushed"),
            Err(e) => tracing::error!("{e}"),
        }
    }
    crate::run::with_outputs(outcome, &written)
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
        clickhouse_url: crate::redact::url(&config.clickhouse.url),
        clickhouse_database: config.clickhouse.database.clone(),
    }
}

/// What every symbol's audit shares.
struct Context<'a> {
    config: &'a Config,
    clickhouse: ClickHouse,
    window: Window,
    timing: Timing,
    quote_slack_ms: i64,
    /// Every quote recorded before this is read.
    quote_horizon_ms: i64,
    now: OffsetDateTime,
}

impl Context<'_> {
    fn ttl_floor(&self) -> OffsetDateTime {
        window::before(self.now, window::ROW_TTL)
    }
}

/// Reads both topics, audits each symbol, and fills the report; the outcome.
async fn audit(ctx: &Context<'_>, symbols: &[String], report: &mut RunReport) -> Outcome {
    let (trades, quotes) = match read_inputs(ctx, symbols).await {
        Ok(read) => read,
        Err(e) => {
            errln!("torghut-e2e audit: {e}");
            return if e.is_usage() {
                Outcome::UsageOrConfig
            } else {
                Outcome::Unreachable
            };
        }
    };
    tracing::info!(
        trades_scanned = trades.scanned,
        quotes_scanned = quotes.scanned,
        "read the window's inputs"
    );
    let mut unreachable = false;
    for symbol in symbols {
        let started = Instant::now();
        let input = SymbolInput {
            symbol,
            trades: trades.records.get(symbol).map_or(&[][..], Vec::as_slice),
            quotes: quotes.records.get(symbol).map_or(&[][..], Vec::as_slice),
            dropped: trades.dropped.get(symbol).copied().unwrap_or(0)
                + quotes.dropped.get(symbol).copied().unwrap_or(0),
            spread: trades.spread.contains(symbol) || quotes.spread.contains(symbol),
        };
        let mut scenario = match audit_symbol(ctx, &input).await {
            Ok(s) => s,
            Err(e) => {
                unreachable |= e.is_unreachable();
                ScenarioReport {
                    name: format!("audit {symbol}"),
                    verdict: Verdict::Error,
                    error: Some(e.to_string()),
                    ..ScenarioReport::default()
                }
            }
        };
        scenario.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(symbol = %symbol, verdict = ?scenario.verdict, "audited");
        report.scenarios.push(scenario);
    }
    let verified: usize = report
        .scenarios
        .iter()
        .flat_map(|s| s.tables.values())
        .map(|d| d.matched)
        .sum();
    let all_pass = report.scenarios.iter().all(|s| s.verdict == Verdict::Pass);
    if unreachable {
        report.verdict = Verdict::Error;
        return Outcome::Unreachable;
    }
    if verified == 0 {
        errln!(
            "torghut-e2e audit: nothing was verified: no stored row of {} in the window matched \
             a prediction (no trades, or none of the rows could be checked)",
            symbols.join(", ")
        );
        report.verdict = Verdict::Fail;
        return Outcome::CheckFailed;
    }
    report.verdict = if all_pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if all_pass {
        Outcome::Pass
    } else {
        Outcome::CheckFailed
    }
}

#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("reading Kafka failed: {0}")]
    Task(String),
}

impl InputError {
    fn is_usage(&self) -> bool {
        matches!(self, InputError::Read(e) if e.is_usage())
    }
}

/// Both topics, concurrently, on blocking threads.
async fn read_inputs(
    ctx: &Context<'_>,
    symbols: &[String],
) -> Result<(TopicRead<Trade>, TopicRead<Quote>), InputError> {
    let w = ctx.window;
    let kafka = ctx.config.kafka.clone();
    let timeout = ctx.config.connect_timeout * 3;
    let stale =
        Duration::from_millis(crate::oracle::SignalConfig::default().quote_stale_after_ms as u64);
    let to_ms = window::millis(window::after(w.to, window::TAIL));
    let trades_from = window::millis(window::before(w.from, window::TRADES_LEAD));
    // Quotes as far back as the trades (a restarted job's bars may end before the window), and
    // the freshness window before them: an older quote can only give NULL.
    let quotes_from = window::millis(window::before(
        w.from,
        stale + window::TRADES_LEAD + Duration::from_millis(ctx.quote_slack_ms as u64),
    ));
    let quotes_to = ctx.quote_horizon_ms;
    let (k1, s1) = (kafka.clone(), symbols.to_vec());
    let trades = tokio::task::spawn_blocking(move || {
        reader::read_trades(
            &k1,
            &TopicQuery {
                topic: &k1.trades_topic,
                symbols: &s1,
                from_ms: trades_from,
                to_ms,
                required: true,
                timeout,
            },
        )
    });
    let (k2, s2) = (kafka, symbols.to_vec());
    let quotes = tokio::task::spawn_blocking(move || {
        reader::read_quotes(
            &k2,
            &TopicQuery {
                topic: &k2.quotes_topic,
                symbols: &s2,
                from_ms: quotes_from,
                to_ms: quotes_to,
                required: false,
                timeout,
            },
        )
    });
    let (trades, quotes) = tokio::join!(trades, quotes);
    let trades = trades.map_err(|e| InputError::Task(e.to_string()))??;
    let quotes = quotes.map_err(|e| InputError::Task(e.to_string()))??;
    Ok((trades, quotes))
}

/// One symbol's inputs.
struct SymbolInput<'a> {
    symbol: &'a str,
    trades: &'a [Record<Trade>],
    quotes: &'a [Record<Quote>],
    dropped: u64,
    spread: bool,
}

/// What the audit of one symbol found, beyond the table diffs (`report.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditSymbol {
    pub symbol: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_to: Option<OffsetDateTime>,
    /// Trades and quotes of the symbol read (the trades from a little before the window).
    pub trades_read: usize,
    pub quotes_read: usize,
    /// Records of the symbol the job cannot decode (it drops them too).
    pub records_dropped: u64,
    /// No trade and no row in the window: nothing to check.
    pub quiet: bool,
    /// Where the audit started and each restart without state after it.
    pub stretches: Vec<Stretch>,
    /// The window's last bucket, still open (not closed by a trade or the watermark yet).
    #[serde(with = "time::serde::rfc3339::option")]
    pub open_at_end: Option<OffsetDateTime>,
    /// Expected rows past the 35-day TTL that are gone (not failures).
    pub expired_rows: usize,
}

/// One stretch of a symbol's audit: a start and the state it was predicted from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stretch {
    /// `continued` (the job's stored state before the start) or `fresh` (a state epoch
    /// began: the symbol's first bar, or a restart without state).
    pub start: &'static str,
    /// The first predicted bar.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_bar: Option<OffsetDateTime>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The stored history before the start: `fresh`, `complete`, `prefix_expired`, or
    /// `unseeded` (its retained bars could not be rebuilt).
    pub history: &'static str,
    /// Why the start could not be seeded exactly, if it could not.
    pub unseeded_reason: Option<String>,
    /// `exact`, `fitted` (the session volume before the start fitted, see the pool) or
    /// `unchecked`.
    pub vwap_session: &'static str,
    pub prior_volume: Option<f64>,
    /// Rows compared without the columns that depend on bars before the start.
    pub history_unchecked_rows: usize,
    /// Rows whose quote columns could not be judged: emitted after the quotes read ended.
    pub quote_rows_unjudged: usize,
    /// Buckets the job's watermark closed before a trade of their own second (followed).
    pub watermark_splits: Vec<Split>,
    pub trades: usize,
}

/// How a stretch was seeded.
struct Seeding {
    seed: SeedState,
    history: &'static str,
    unseeded_reason: Option<String>,
    /// Set when the session sums before the start are unknown: fit them.
    fit: Option<Seeded>,
    /// Rows below this seq skip the history columns.
    history_from_seq: u64,
    /// When the stretch's epoch began (for reading its rows).
    since: OffsetDateTime,
}

async fn audit_symbol(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
) -> Result<ScenarioReport, ClickHouseError> {
    let ch = &ctx.clickhouse;
    let w = ctx.window;
    let rows_to = window::after(w.to, window::TAIL + window::ROWS_AROUND);
    let around = stored::bars_between(
        ch,
        input.symbol,
        window::before(w.from, window::ROWS_AROUND),
        rows_to,
    )
    .await?;
    let epochs = stored::epochs(&around);
    let segments = anchor::segments(input.trades, &epochs, w.from_ms(), ctx.timing);
    let mut section = AuditSymbol {
        symbol: input.symbol.to_string(),
        window_from: Some(w.from),
        window_to: Some(w.to),
        trades_read: input.trades.len(),
        quotes_read: input.quotes.len(),
        records_dropped: input.dropped,
        ..AuditSymbol::default()
    };
    let mut findings = Vec::new();
    if input.spread {
        findings.push(Finding::warning(
            Hop::KafkaPublish,
            format!(
                "{} has records on more than one partition: the job's order across them is not \
                 known, so they were ordered by record timestamp",
                input.symbol
            ),
            diagnose::RUNBOOK_KAFKA_PRODUCE,
        ));
    }
    if segments.is_empty() {
        return Ok(unanchored(ctx.window, input, &around, section, findings));
    }
    let first_epoch = segments[0].epoch;
    for (index, epoch) in epochs.iter().enumerate().skip(first_epoch + 1) {
        if epoch.since.is_some() && !segments.iter().any(|s| s.epoch == index) {
            findings.push(Finding::warning(
                Hop::TaJob,
                format!(
                    "{}: the job began a new state epoch (seq 1, emitted {}) but no trade read \
                     opens its first bars, so its rows were not audited (a restart that re-read \
                     trades from before those read, or bars that do not follow the trades)",
                    input.symbol,
                    epoch
                        .since
                        .map(crate::model::iso_millis)
                        .unwrap_or_default()
                ),
                diagnose::RUNBOOK_TA_STALLED,
            ));
        }
    }
    let mut expected = (Vec::new(), Vec::new());
    let mut observed = (Vec::new(), Vec::new());
    let mut diffs = (TableDiff::default(), TableDiff::default());
    for (i, segment) in segments.iter().enumerate() {
        let epoch = &epochs[segment.epoch];
        let outcome = stretch(ctx, input, segment, epoch, rows_to).await?;
        if i > 0 {
            findings.push(restart_warning(input.symbol, epoch));
        }
        if let Some(reason) = &outcome.stretch.unseeded_reason {
            findings.push(Finding::warning(
                Hop::ClickhouseSink,
                format!(
                    "{}: the window's start could not be seeded exactly ({reason}); {} rows \
                     were compared without the columns that depend on earlier bars ({})",
                    input.symbol,
                    outcome.stretch.history_unchecked_rows,
                    judge::HISTORY_COLUMNS.join(", ")
                ),
                pool::RUNBOOK_POOL,
            ));
        }
        findings.extend(outcome.problem.iter().map(|p| {
            Finding::failure(
                Hop::TaJob,
                format!("{}: {p}", input.symbol),
                diagnose::RUNBOOK_TA_MATHS,
            )
        }));
        section.expired_rows += outcome.comparison.expired;
        section.open_at_end = outcome.prediction.open_at_end.or(section.open_at_end);
        expected.0.extend(outcome.prediction.bars.iter().cloned());
        expected
            .1
            .extend(outcome.prediction.signals.iter().cloned());
        observed.0.extend(outcome.observed_bars);
        observed.1.extend(outcome.observed_signals);
        diffs.0 = judge::merge(std::mem::take(&mut diffs.0), outcome.comparison.bars);
        diffs.1 = judge::merge(std::mem::take(&mut diffs.1), outcome.comparison.signals);
        section.stretches.push(outcome.stretch);
    }
    if let Some(first) = section.stretches.first().and_then(|s| s.first_bar) {
        let late = first - w.from;
        if late > time::Duration::seconds(LATE_START_SECS) {
            findings.push(Finding::warning(
                Hop::TaJob,
                format!(
                    "{}: the audit starts at the bar ending {}, {late} after the window's start: \
                     no earlier change of second among the trades was followed by two stored \
                     bars ending in those seconds (a quiet start, or bars the job merged, split \
                     or lost there), so the bars before it are not audited",
                    input.symbol,
                    crate::model::iso_millis(first)
                ),
                diagnose::RUNBOOK_TA_MATHS,
            ));
        }
    }
    if section.expired_rows > 0 {
        findings.push(Finding::warning(
            Hop::ClickhouseSink,
            format!(
                "{}: {} expected rows end more than 35 days ago and are gone (the tables' TTL)",
                input.symbol, section.expired_rows
            ),
            diagnose::RUNBOOK_TA_STALLED,
        ));
    }
    let tables: BTreeMap<String, TableDiff> = [
        ("ta_microbars".to_string(), diffs.0),
        ("ta_signals".to_string(), diffs.1),
    ]
    .into();
    let facts = facts(ctx, input, &expected.0, &tables).await?;
    findings.extend(diagnose::sink(&facts));
    let extra: usize = tables.values().map(|d| d.extra.len()).sum();
    if extra > 0 {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{extra} stored rows of {} among the audited seqs that the oracle did not \
                 predict (a bar split or emitted twice, or another writer)",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
    }
    let clean = tables.values().all(TableDiff::is_clean);
    if !clean && !diagnose::any_failure(&findings) {
        findings.push(Finding::failure(
            Hop::TaJob,
            "rows differ from the oracle (see the table diffs)",
            diagnose::RUNBOOK_TA_MATHS,
        ));
    }
    let verdict = if clean && !diagnose::any_failure(&findings) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let series = plotted(&expected, &observed, &tables, w);
    Ok(ScenarioReport {
        name: format!("audit {}", input.symbol),
        description: describe(&section),
        verdict,
        symbols: [(input.symbol.to_string(), input.symbol.to_string())].into(),
        tables,
        findings,
        series,
        audit: Some(section),
        ..ScenarioReport::default()
    })
}

/// What one stretch came to.
struct StretchOutcome {
    stretch: Stretch,
    prediction: Prediction,
    comparison: Comparison,
    observed_bars: Vec<Microbar>,
    observed_signals: Vec<Signal>,
    /// A stored session VWAP that no earlier volume explains.
    problem: Option<String>,
}

async fn stretch(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
    segment: &Segment,
    epoch: &Epoch,
    rows_to: OffsetDateTime,
) -> Result<StretchOutcome, ClickHouseError> {
    let ch = &ctx.clickhouse;
    let mut seeding = seeding(ch, input.symbol, segment, epoch).await?;
    let range = SeqRange {
        after: seeding.seed.last_seq,
        since: seeding.since,
        until: epoch.until,
        ends_by: rows_to,
    };
    let (stored_bars, stored_signals) = tokio::try_join!(
        stored::bars_after(ch, input.symbol, range),
        stored::signals_after(ch, input.symbol, range)
    )?;
    let predict_input = PredictInput {
        symbol: input.symbol,
        trades: input.trades,
        first: segment.start.first(),
        stored: &stored_bars,
        to_ms: ctx.window.to_ms(),
        last_seq: epoch.until.and_then(|_| epoch.last_seq()),
        timing: ctx.timing,
    };
    let mut prediction = judge::predict(&predict_input, seeding.seed.clone());
    let after = prediction.after_seq;
    let mut observed_bars = judge::in_seqs(&stored_bars, after, prediction.last_seq());
    let mut observed_signals = judge::in_seqs(&stored_signals, after, prediction.last_seq());
    let mut vwap_session = "exact";
    let mut prior_volume = None;
    let mut problem = None;
    let mut skip_session = false;
    if let Some(seeded) = &seeding.fit {
        let fit = pool::fit_session(seeded, &observed_bars, &observed_signals);
        if seeded.last_vwap_session.is_none() {
            // Nothing stored to continue from: the column cannot be checked.
            skip_session = true;
            vwap_session = "unchecked";
        } else {
            vwap_session = "fitted";
            prior_volume = fit.prior_volume;
            problem = fit.problem.clone();
            seeding.seed.session = fit.session;
            prediction = judge::predict(&predict_input, seeding.seed.clone());
            observed_bars = judge::in_seqs(&stored_bars, after, prediction.last_seq());
            observed_signals = judge::in_seqs(&stored_signals, after, prediction.last_seq());
        }
    }
    let comparison = judge::compare(
        &prediction,
        &observed_bars,
        &observed_signals,
        input.quotes,
        CompareOptions {
            tolerance: Tolerance::default(),
            history_from_seq: seeding.history_from_seq,
            skip_session,
            ttl_floor: ctx.ttl_floor(),
            quotes: quotes::QuoteBounds {
                slack_ms: ctx.quote_slack_ms,
                horizon_ms: ctx.quote_horizon_ms,
                to_end: ctx.quote_horizon_ms >= window::millis(ctx.now),
            },
        },
    );
    let stretch = Stretch {
        start: match segment.start {
            Start::After { .. } => "continued",
            Start::Fresh { .. } => "fresh",
        },
        first_bar: prediction.bars.first().map(|b| b.event_ts),
        first_seq: after + 1,
        last_seq: prediction.last_seq(),
        history: seeding.history,
        unseeded_reason: seeding.unseeded_reason.clone(),
        vwap_session,
        prior_volume,
        history_unchecked_rows: comparison.history_unchecked,
        quote_rows_unjudged: comparison.quotes_unjudged,
        watermark_splits: prediction.splits.clone(),
        trades: prediction.window_trades + prediction.tail_trades,
    };
    Ok(StretchOutcome {
        stretch,
        prediction,
        comparison,
        observed_bars,
        observed_signals,
        problem,
    })
}

/// The seed of a stretch: nothing for a fresh epoch; for a continued one the pool's seeding cut
/// at the bar before the start (see `anchor`), falling back to what can still be checked.
async fn seeding(
    ch: &ClickHouse,
    symbol: &str,
    segment: &Segment,
    epoch: &Epoch,
) -> Result<Seeding, ClickHouseError> {
    let cut = match segment.start {
        Start::Fresh { .. } => {
            return Ok(Seeding {
                seed: SeedState::default(),
                history: "fresh",
                unseeded_reason: None,
                fit: None,
                history_from_seq: 0,
                since: epoch.since_or_epoch(),
            })
        }
        Start::After { cut, .. } => cut,
    };
    let since = stored::epoch_start(ch, symbol, cut.ingest_ts)
        .await?
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let stats = ch
        .history_stats(&[symbol.to_string()], Some(cut))
        .await?
        .into_iter()
        .next()
        .unwrap_or_else(|| pool::empty_stats(symbol));
    match pool::classify(&stats) {
        Ok(kind) => {
            let seeded = pool::seed(ch, stats, kind, Some(cut)).await?;
            Ok(Seeding {
                seed: seeded.seed.clone(),
                history: history_name(kind),
                unseeded_reason: None,
                fit: (kind == HistoryKind::PrefixExpired).then_some(seeded),
                history_from_seq: 0,
                since,
            })
        }
        Err(reason) => {
            // The session sums are not known; the retained bars may still be.
            let seeded = pool::seed(ch, stats, HistoryKind::PrefixExpired, Some(cut)).await?;
            let retained = retained_is_complete(ch, symbol, cut).await?;
            let (history, history_from_seq) = if retained {
                ("prefix_expired", 0)
            } else {
                ("unseeded", cut.seq + 1 + pool::RETAINED_BARS as u64)
            };
            Ok(Seeding {
                seed: seeded.seed.clone(),
                history,
                unseeded_reason: Some(reason),
                fit: Some(seeded),
                history_from_seq,
                since,
            })
        }
    }
}

/// Whether the job's retained list at the cut is fully stored: the newest seqs up to the cut,
/// as many as the job keeps (or all since seq 1), without a gap.
async fn retained_is_complete(
    ch: &ClickHouse,
    symbol: &str,
    cut: HistoryCut,
) -> Result<bool, ClickHouseError> {
    let bars = ch
        .latest_microbars(symbol, pool::RETAINED_BARS, Some(cut))
        .await?;
    let want = (pool::RETAINED_BARS as u64).min(cut.seq);
    let seqs: HashSet<u64> = bars.iter().map(|b| b.seq).collect();
    Ok(seqs.len() as u64 == want && (cut.seq + 1 - want..=cut.seq).all(|s| seqs.contains(&s)))
}

fn history_name(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Fresh => "fresh",
        HistoryKind::Complete => "complete",
        HistoryKind::PrefixExpired => "prefix_expired",
    }
}

fn restart_warning(symbol: &str, epoch: &Epoch) -> Finding {
    let at = epoch
        .bar(1)
        .map(|b| crate::model::iso_millis(b.event_ts))
        .unwrap_or_default();
    Finding::warning(
        Hop::TaJob,
        format!(
            "{symbol}: the job restarted without state in the window (seq back to 1 at the bar \
             ending {at}, emitted {}): predicted from nothing from there on, as after a \
             stateless upgrade (pipeline.md §9 item 4)",
            epoch
                .since
                .map(crate::model::iso_millis)
                .unwrap_or_default()
        ),
        diagnose::RUNBOOK_TA_STALLED,
    )
}

/// No start could be found: a quiet symbol, or rows that do not follow the trades.
fn unanchored(
    w: Window,
    input: &SymbolInput<'_>,
    around: &[Microbar],
    mut section: AuditSymbol,
    mut findings: Vec<Finding>,
) -> ScenarioReport {
    let in_window_trades = input
        .trades
        .iter()
        .filter(|r| r.ts_ms >= w.from_ms() && r.ts_ms < w.to_ms())
        .count();
    // Bars wholly inside the window: a bar ending in the start's second may hold trades
    // recorded before it.
    let in_window_rows = around
        .iter()
        .filter(|b| b.event_ts > w.from + time::Duration::SECOND && b.event_ts <= w.to)
        .count();
    let verdict = if in_window_trades == 0 && in_window_rows == 0 {
        section.quiet = true;
        findings.push(Finding::warning(
            Hop::TaJob,
            format!(
                "{}: no trade and no row in the window: nothing to check",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_STALLED,
        ));
        Verdict::Pass
    } else if in_window_trades == 0 {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{}: {in_window_rows} stored bars in the window but no trade recorded in it: \
                 rows without input (another writer, or the job's clock or bucketing is off)",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Fail
    } else if anchor::changes(input.trades, w.from_ms()).next().is_none() {
        // One trade (or one second of trades) after a long silence: no change of second
        // after a known trade, so no start can be found; nothing says the rows are wrong.
        findings.push(Finding::warning(
            Hop::TaJob,
            format!(
                "{}: {in_window_trades} trades and {in_window_rows} stored bars in the window, \
                 but no change of second after a trade read: too few trades to find where the \
                 job's state stood, so nothing was checked",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Pass
    } else if in_window_rows == 0 {
        let facts = SinkFacts {
            expected_bars: in_window_trades,
            found_bars: 0,
            ta_consumed: None,
            ..SinkFacts::default()
        };
        findings.extend(diagnose::sink(&facts));
        Verdict::Fail
    } else {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{}: {in_window_trades} trades and {in_window_rows} stored bars in the window, \
                 but no change of second among the trades is followed by stored bars ending \
                 in those seconds: the job's bars do not follow the trades (bars merged, \
                 split or lost), so no start for the audit could be found",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Fail
    };
    ScenarioReport {
        name: format!("audit {}", input.symbol),
        description: describe(&section),
        verdict,
        symbols: [(input.symbol.to_string(), input.symbol.to_string())].into(),
        findings,
        audit: Some(section),
        ..ScenarioReport::default()
    }
}

/// The ClickHouse stage's facts, as `run` gathers them, for `diagnose::sink`.
async fn facts(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
    expected: &[Microbar],
    tables: &BTreeMap<String, TableDiff>,
) -> Result<SinkFacts, ClickHouseError> {
    let missing: HashSet<&String> = tables
        .get("ta_microbars")
        .map(|d| d.missing.iter().collect())
        .unwrap_or_default();
    let missing_positions: Vec<usize> = expected
        .iter()
        .enumerate()
        .filter(|(_, b)| missing.contains(&b.key().to_string()))
        .map(|(i, _)| i)
        .collect();
    let mut mismatched: Vec<String> = tables
        .values()
        .flat_map(|d| {
            d.mismatches
                .iter()
                .flat_map(|m| m.columns.iter().map(|c| c.column.to_string()))
        })
        .collect();
    mismatched.sort();
    mismatched.dedup();
    let unmerged = ctx
        .clickhouse
        .unmerged_duplicates("ta_microbars", &[input.symbol.to_string()], ctx.window.from)
        .await?;
    Ok(SinkFacts {
        expected_bars: expected.len(),
        found_bars: expected.len() - missing_positions.len(),
        missing_positions,
        mismatched_columns: mismatched,
        seq_shifted_rows: tables.get("ta_microbars").map_or(0, |d| {
            d.mismatches
                .iter()
                .filter(|m| m.columns.iter().any(|c| c.column == "seq"))
                .count()
        }),
        duplicates_final: tables.values().map(|d| d.duplicates.len()).sum(),
        duplicates_unmerged: unmerged as usize,
        ..SinkFacts::default()
    })
}

/// The plotted stretch: two minutes around the first divergence, or the window's last two.
fn plotted(
    expected: &(Vec<Microbar>, Vec<Signal>),
    observed: &(Vec<Microbar>, Vec<Signal>),
    tables: &BTreeMap<String, TableDiff>,
    w: Window,
) -> Series {
    let mut series = Series::new(&expected.0, &expected.1, &observed.0, &observed.1);
    let first = tables
        .values()
        .flat_map(|d| {
            d.mismatches
                .iter()
                .map(|m| m.key.as_str())
                .chain(d.missing.iter().map(String::as_str))
        })
        .min()
        .and_then(|key| {
            let at = key.split(' ').nth(1)?;
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        });
    let span = time::Duration::seconds(PLOTTED_SECONDS);
    let (lo, hi) = match first {
        Some(at) => (at - span / 2, at + span / 2),
        None => (w.to - span, w.to + span),
    };
    series
        .expected
        .retain(|p| p.event_ts >= lo && p.event_ts <= hi);
    series
        .observed
        .retain(|p| p.event_ts >= lo && p.event_ts <= hi);
    series
}

/// One line for the report's description (shown by every renderer).
fn describe(s: &AuditSymbol) -> String {
    let window = match (s.window_from, s.window_to) {
        (Some(a), Some(b)) => format!(
            "{} to {}",
            crate::model::iso_millis(a),
            crate::model::iso_millis(b)
        ),
        _ => String::new(),
    };
    if s.quiet {
        return format!(
            "Audit of {} over {window}: quiet (no trades, no rows).",
            s.symbol
        );
    }
    let stretches: Vec<String> = s
        .stretches
        .iter()
        .map(|st| {
            format!(
                "{} at {} seqs {}..={} (history {}, vwap_session {}{})",
                st.start,
                st.first_bar
                    .map(crate::model::iso_millis)
                    .unwrap_or_else(|| "-".into()),
                st.first_seq,
                st.last_seq,
                st.history,
                st.vwap_session,
                if st.watermark_splits.is_empty() {
                    String::new()
                } else {
                    format!(", {} watermark splits", st.watermark_splits.len())
                }
            )
        })
        .collect();
    format!(
        "Audit of {} over {window}: {} trades and {} quotes read; {}.",
        s.symbol,
        s.trades_read,
        s.quotes_read,
        if stretches.is_empty() {
            "no start found".to_string()
        } else {
            stretches.join("; then ")
        }
    )
}

#[cfg(test)]
pub(crate) mod tests {
    //! Builders shared by the audit's unit tests.
    use super::*;
    use crate::envelope::IsoInstant;

    /// A trade at offset `i`, stamped `t_ms` (event time = payload `t`), recorded at `ts_ms`.
    pub fn trade(i: i64, t_ms: i64, ts_ms: i64, price: f64) -> Record<Trade> {
        let at = IsoInstant::from_unix_millis(t_ms).expect("instant");
        Record {
            partition: 0,
            offset: i,
            ts_ms,
            value: Trade {
                t: at,
                event_ts: at,
                price,
                size: 1.0,
            },
        }
    }

    /// A stored bar ending at `end_ms` with `seq` and `count`.
    pub fn bar_at(end_ms: i64, seq: u64, count: u64) -> Microbar {
        let end = crate::oracle::datetime_from_millis(end_ms);
        Microbar {
            symbol: "X".into(),
            event_ts: end,
            seq,
            ingest_ts: end,
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: Some("PT1S".into()),
            window_start: Some(end - time::Duration::SECOND),
            window_end: Some(end),
            version: 1,
            o: 1.0,
            h: 1.0,
            l: 1.0,
            c: 1.0,
            v: 1.0,
            vwap: Some(1.0),
            count,
        }
    }

    /// A stored bar of second `second` with `seq`, emitted at `emitted` s.
    pub fn bar(second: i64, seq: u64, emitted: i64) -> Microbar {
        let mut b = bar_at((second + 1) * 1000, seq, 1);
        b.ingest_ts = crate::oracle::datetime_from_millis(100_000 + emitted * 1000);
        b
    }

    /// A stored signal without quote columns, ending at `end_ms`, emitted at `ingest_ms`.
    pub fn signal_at(end_ms: i64, seq: u64, ingest_ms: i64) -> Signal {
        let end = crate::oracle::datetime_from_millis(end_ms);
        Signal {
            symbol: "X".into(),
            event_ts: end,
            seq,
            ingest_ts: crate::oracle::datetime_from_millis(ingest_ms),
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: Some("PT1S".into()),
            window_start: Some(end - time::Duration::SECOND),
            window_end: Some(end),
            version: 1,
            macd: None,
            macd_signal: None,
            macd_hist: None,
            ema12: None,
            ema26: None,
            rsi14: None,
            boll_mid: None,
            boll_upper: None,
            boll_lower: None,
            vwap_session: None,
            vwap_w5m: None,
            imbalance_spread: None,
            imbalance_bid_px: None,
            imbalance_ask_px: None,
            imbalance_bid_sz: None,
            imbalance_ask_sz: None,
            vol_realized_w60s: None,
            microstructure_signal_v1: None,
        }
    }

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
    fn a_symbol_without_a_start_is_quiet_thin_or_wrong() {
        let w = Window {
            from: crate::oracle::datetime_from_millis(10_000),
            to: crate::oracle::datetime_from_millis(60_000),
        };
        let verdict = |trades: &[Record<Trade>], rows: &[Microbar]| {
            let input = SymbolInput {
                symbol: "X",
                trades,
                quotes: &[],
                dropped: 0,
                spread: false,
            };
            let r = unanchored(w, &input, rows, AuditSymbol::default(), Vec::new());
            let failed = diagnose::any_failure(&r.findings);
            (r.verdict, failed, r.audit.is_some_and(|a| a.quiet))
        };
        assert_eq!(verdict(&[], &[]), (Verdict::Pass, false, true), "quiet");
        let row = [bar_at(20_000, 7, 1)];
        assert_eq!(
            verdict(&[], &row),
            (Verdict::Fail, true, false),
            "rows without trades"
        );
        let one = [trade(0, 19_500, 19_500, 1.0)];
        assert_eq!(
            verdict(&one, &row),
            (Verdict::Pass, false, false),
            "too thin to start"
        );
        let two = [one[0], trade(1, 21_500, 21_500, 1.0)];
        assert_eq!(
            verdict(&two, &row),
            (Verdict::Fail, true, false),
            "rows off the trades"
        );
        assert_eq!(
            verdict(&two, &[]),
            (Verdict::Fail, true, false),
            "trades, no rows"
        );
    }

    #[test]
    fn the_audit_pushes_under_its_own_job() {
        let r = crate::report::tests::sample();
        assert_eq!(
            push_url("http://pg:9091/", &r),
            "http://pg:9091/metrics/job/torghut-e2e-audit/lane/sim"
        );
    }
}
