//! The six checklist steps (one file each, `impl Checklist`), and the loop that runs them in one
//! session, times them and keeps their evidence.

mod calls;
mod candles;
mod indicators;
mod lag;
mod open;
mod oracle;
mod states;
mod triangulate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::model::PageModel;
use super::proxy::{Exchange, FaultProxy};
use super::session::{ConsoleEntry, Pill, Session};
use super::BrowserError;
use crate::domain::diagnose::{self, Finding, Hop};
use crate::domain::report::{StageCheck, StageReport};
use crate::stage::StageContext;
use calls::{json_of, Load};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Open,
    Candles,
    Indicators,
    Lag,
    Empty,
    Error,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::Open,
        Step::Candles,
        Step::Indicators,
        Step::Lag,
        Step::Empty,
        Step::Error,
    ];

    fn number(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    fn slug(self) -> &'static str {
        match self {
            Step::Open => "open",
            Step::Candles => "candles",
            Step::Indicators => "indicators",
            Step::Lag => "lag",
            Step::Empty => "empty",
            Step::Error => "error",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Open => "open /torghut/visuals",
            Step::Candles => "candlesticks from /ta/bars",
            Step::Indicators => "indicator toggles from /ta/signals",
            Step::Lag => "lag pill under the threshold",
            Step::Empty => "empty state",
            Step::Error => "error banner",
        }
    }

    fn name(self) -> String {
        format!("{}-{}", self.number(), self.slug())
    }
}

/// A failed step: the hop it points at and exactly what was wrong.
#[derive(Debug)]
struct Failure {
    hop: Hop,
    message: String,
}

impl From<BrowserError> for Failure {
    fn from(e: BrowserError) -> Self {
        page(e.to_string())
    }
}

impl From<fantoccini::error::CmdError> for Failure {
    fn from(e: fantoccini::error::CmdError) -> Self {
        page(BrowserError::from(e).to_string())
    }
}

fn page(message: impl Into<String>) -> Failure {
    Failure {
        hop: Hop::ChartsPage,
        message: message.into(),
    }
}

fn api(message: impl Into<String>) -> Failure {
    Failure {
        hop: Hop::JangarApi,
        message: message.into(),
    }
}

type Outcome = Result<String, Failure>;

/// Everything one step found wrong, most fundamental first; a step reports them all.
#[derive(Default)]
struct Problems(Vec<Failure>);

impl Problems {
    fn add(&mut self, failure: Failure) {
        self.0.push(failure);
    }

    fn page(&mut self, message: impl Into<String>) {
        self.add(page(message));
    }

    fn api(&mut self, message: impl Into<String>) {
        self.add(api(message));
    }

    fn outcome(self, detail: String) -> Outcome {
        let mut it = self.0.into_iter();
        match it.next() {
            None => Ok(detail),
            Some(first) => Err(Failure {
                hop: first.hop,
                message: std::iter::once(first.message)
                    .chain(it.map(|f| f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}

/// The symbol steps 2–4 observe.
#[derive(Debug, Clone)]
struct Chosen {
    symbol: String,
    /// The run's own symbol (its rows are known); otherwise the configured live symbol.
    synthetic: bool,
}

/// Why steps 2–4 have no symbol, and whose problem that is.
#[derive(Debug, Clone)]
struct NoSymbol {
    hop: Hop,
    why: String,
}

pub(super) struct Checklist<'a> {
    ctx: &'a StageContext<'a>,
    api_stage: Option<&'a StageReport>,
    model: PageModel,
    proxy: FaultProxy,
    session: Session,
    session_ms: u64,
    /// How long a load may take (`jangar.request_timeout`).
    timeout: Duration,
    artifacts: PathBuf,
    listed: Vec<String>,
    /// The symbol for steps 2–4, or why there is none.
    chosen: Result<Chosen, NoSymbol>,
    /// The symbol the chart shows (its `Showing …` line, or the page's last load): the truth
    /// of what is charted, which the symbol dropdown may not show (`jangar.md` §6.2).
    charted: Option<String>,
    /// Step 2's load, once the page has drawn it.
    load: Option<Load>,
    pill_after_load: Option<(Pill, Instant)>,
    quirks: Vec<String>,
    /// Whether and why the proxy adds the run's symbols to the page's list.
    symbols_added: String,
    /// The api stage's triangulation with the page's layers added (step 2).
    triangulation: Option<Value>,
    console: Vec<ConsoleEntry>,
    /// Extra evidence files of the running step.
    evidence: Vec<String>,
}

impl<'a> Checklist<'a> {
    pub(super) async fn start(
        ctx: &'a StageContext<'a>,
        api_stage: Option<&'a StageReport>,
        model: PageModel,
    ) -> Result<Checklist<'a>, BrowserError> {
        let jangar = &ctx.config.jangar;
        let upstream = jangar
            .base_url
            .as_deref()
            .ok_or(BrowserError::NoJangarUrl)?;
        std::fs::create_dir_all(&ctx.artifacts).map_err(|source| BrowserError::Artifacts {
            path: ctx.artifacts.clone(),
            source,
        })?;
        let upstream_timeout = upstream_timeout(jangar.request_timeout);
        let proxy = FaultProxy::start_with_auth(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            jangar.auth.as_ref(),
            upstream_timeout,
        )
        .await?;
        let (added, why) = symbols_to_add(ctx);
        if !added.is_empty() {
            proxy.add_symbols(&model.paths.symbols, added);
        }
        let opened = Instant::now();
        let session = Session::open(
            ctx.config.webdriver.url.as_deref(),
            &model,
            ctx.config.connect_timeout,
        )
        .await?;
        if let Err(e) = session.bound(upstream_timeout).await {
            session.close().await;
            return Err(e);
        }
        Ok(Checklist {
            ctx,
            api_stage,
            model,
            proxy,
            session,
            session_ms: opened.elapsed().as_millis() as u64,
            timeout: jangar.request_timeout,
            artifacts: ctx.artifacts.clone(),
            listed: Vec::new(),
            chosen: Err(NoSymbol {
                hop: Hop::ChartsPage,
                why: "step 1 did not list the symbols".into(),
            }),
            charted: None,
            load: None,
            pill_after_load: None,
            quirks: Vec::new(),
            symbols_added: why,
            triangulation: None,
            console: Vec::new(),
            evidence: Vec::new(),
        })
    }

    pub(super) async fn run(mut self, started: Instant) -> StageReport {
        let mut report = StageReport {
            stage: "browser".into(),
            ..StageReport::default()
        };
        let mut steps_ms = BTreeMap::new();
        let mut opened = false;
        for step in Step::ALL {
            let began = Instant::now();
            let outcome = match self.blocker(step, opened) {
                Some(reason) => {
                    report.checks.push(StageCheck {
                        name: step.name(),
                        ok: false,
                        detail: format!("not run: {reason}"),
                        ..StageCheck::default()
                    });
                    continue;
                }
                None => self.run_step(step).await,
            };
            let elapsed = began.elapsed();
            opened |= step == Step::Open && outcome.is_ok();
            let evidence = self.capture(step, outcome.is_err()).await;
            steps_ms.insert(step.name(), json!(elapsed.as_millis() as u64));
            record(&mut report, step, outcome, elapsed, evidence);
        }
        self.proxy.clear();
        let hung = self.session.hung();
        self.finish(&mut report, steps_ms, started).await;
        let mut report = report.conclude();
        // The WebDriver stopped answering: the checklist could not check the page.
        if hung.is_some() {
            report.verdict = crate::domain::report::Verdict::Error;
        }
        report
    }

    /// Why `step` cannot run, given what the earlier steps established.
    fn blocker(&self, step: Step, opened: bool) -> Option<String> {
        if step != Step::Open && !opened {
            return Some("step 1 failed: the page is not usable".into());
        }
        if matches!(step, Step::Indicators | Step::Lag) {
            if self.chosen.is_err() {
                return Some("no symbol to observe (see step 2)".into());
            }
            if self.load.is_none() {
                return Some("the page never drew the symbol's data (step 2)".into());
            }
        }
        None
    }

    async fn run_step(&mut self, step: Step) -> Outcome {
        match step {
            Step::Open => self.open().await,
            Step::Candles => self.candles().await,
            Step::Indicators => self.indicators().await,
            Step::Lag => self.lag().await,
            Step::Empty => {
                let r = self.empty().await;
                self.proxy.clear();
                r
            }
            Step::Error => {
                let r = self.error().await;
                self.proxy.clear();
                r
            }
        }
    }

    /// The symbol the chart shows: the `Showing …` line, else the symbol of the page's last
    /// bars call (the proxy saw it), else the last one known.
    async fn charted_symbol(&mut self) -> Result<Option<String>, Failure> {
        let state = self.session.snapshot().await?;
        let shown = state
            .showing
            .as_deref()
            .and_then(|line| self.model.charted_symbol(line));
        let loaded = || {
            self.proxy
                .log()
                .iter()
                .rev()
                .find(|c| calls::same_path(&c.path, &self.model.paths.bars))
                .map(calls::symbol_of)
        };
        if let Some(symbol) = shown.or_else(loaded) {
            self.charted = Some(symbol);
        }
        Ok(self.charted.clone())
    }

    /// The step's screenshot (named `-failed` when it failed), its extra files, and the console
    /// lines it produced.
    async fn capture(&mut self, step: Step, failed: bool) -> Vec<String> {
        let mut evidence = Vec::new();
        let name = format!(
            "{:02}-{}{}.png",
            step.number(),
            step.slug(),
            if failed { "-failed" } else { "" }
        );
        match self.session.screenshot().await {
            Ok(png) => evidence.extend(self.write(&name, &png)),
            Err(e) => tracing::warn!(step = %step.name(), error = %e, "no screenshot"),
        }
        evidence.append(&mut self.evidence);
        match self.session.console().await {
            Ok(lines) => self.console.extend(lines.into_iter().map(|mut l| {
                l.step = step.name();
                l
            })),
            Err(e) => tracing::debug!(error = %e, "no console log"),
        }
        evidence
    }

    async fn screenshot_extra(&mut self, name: &str) {
        if let Ok(png) = self.session.screenshot().await {
            if let Some(path) = self.write(name, &png) {
                self.evidence.push(path);
            }
        }
    }

    fn save_json(&mut self, name: &str, exchange: &Exchange) {
        let body = json!({
            "request": exchange.target(),
            "status": exchange.status,
            "body": json_of(exchange),
        });
        if let Ok(bytes) = serde_json::to_vec_pretty(&body) {
            if let Some(path) = self.write(name, &bytes) {
                self.evidence.push(path);
            }
        }
    }

    /// Writes an evidence file; its name relative to the artifacts directory.
    fn write(&self, name: &str, bytes: &[u8]) -> Option<String> {
        let path = self.artifacts.join(name);
        match std::fs::write(&path, bytes) {
            Ok(()) => Some(name.to_string()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write evidence");
                None
            }
        }
    }

    /// Writes the run-wide evidence, fills `observed`, and closes the browser.
    async fn finish(
        self,
        report: &mut StageReport,
        steps_ms: BTreeMap<String, Value>,
        started: Instant,
    ) {
        let errors: Vec<&ConsoleEntry> = self
            .console
            .iter()
            .filter(|c| matches!(c.level.as_str(), "SEVERE" | "WARNING"))
            .collect();
        if let Ok(bytes) = serde_json::to_vec_pretty(&errors) {
            self.write("console.json", &bytes);
        }
        let log = self.proxy.log();
        if let Ok(bytes) = serde_json::to_vec_pretty(&log) {
            self.write("proxy-log.json", &bytes);
        }
        let severe = errors.iter().filter(|c| c.level == "SEVERE").count();
        let checklist_ms: u64 = steps_ms.values().filter_map(Value::as_u64).sum();
        let o = &mut report.observed;
        o.extend(self.symbol_facts());
        for (key, value) in [
            ("page_model", json!(self.model.name)),
            ("jangar", json!(self.proxy.upstream())),
            ("proxy", json!(self.proxy.url())),
            ("webdriver", json!(self.session.webdriver_url)),
            (
                "started_chromedriver",
                json!(self.session.started_chromedriver()),
            ),
            ("session_ms", json!(self.session_ms)),
            ("checklist_ms", json!(checklist_ms)),
            ("stage_ms", json!(started.elapsed().as_millis() as u64)),
            ("steps_ms", json!(steps_ms)),
            ("quirks", json!(self.quirks)),
            ("symbols_added_by_proxy", json!(self.symbols_added)),
            ("console_errors", json!(severe)),
            (
                "api_calls",
                json!(log.iter().filter(|c| c.is_api()).count()),
            ),
        ] {
            o.insert(key.into(), value);
        }
        if let Some(api) = self.api_stage {
            o.insert("api_stage".into(), json!(api.verdict));
        }
        if let Some(tri) = &self.triangulation {
            o.insert("triangulation".into(), tri.clone());
        }
        self.session.close().await;
    }

    fn symbol_facts(&self) -> Vec<(String, Value)> {
        match &self.chosen {
            Ok(c) => vec![
                ("symbol".into(), json!(c.symbol)),
                (
                    "symbol_source".into(),
                    json!(if c.synthetic { "synthetic" } else { "live" }),
                ),
                (
                    "symbol_listed_by".into(),
                    json!(if self.proxy_added(&c.symbol) {
                        "the validator's proxy"
                    } else {
                        "Jangar"
                    }),
                ),
            ],
            Err(none) => vec![
                ("symbol".into(), Value::Null),
                ("symbol_problem".into(), json!(none.why)),
            ],
        }
    }
}

impl Checklist<'_> {
    /// Whether the page saw `symbol` in its list only because the proxy added it.
    pub(super) fn proxy_added(&self, symbol: &str) -> bool {
        self.proxy
            .log()
            .iter()
            .any(|c| c.added_symbols.iter().any(|s| s == symbol))
    }
}

/// The run's symbols the proxy adds to the page's symbol list, and why (or why none).
///
/// A real Jangar never lists them (its universe rejects equity symbols over 12 characters,
/// `jangar.md` §6.5) but serves their rows from its database. So they are added when Jangar
/// reads the database this run wrote to: in synthetic mode (no `jangar.live_symbol`: the local
/// stack, staging), or when `jangar.clickhouse_database` (default `torghut`) is the run's
/// database (a production-lane run that was explicitly allowed). A Jangar reading another
/// database has none of their rows: the page observes the live symbol instead. Only symbols
/// ClickHouse holds rows of are added.
fn symbols_to_add(ctx: &StageContext<'_>) -> (Vec<String>, String) {
    let jangar = &ctx.config.jangar;
    let run_db = ctx.clickhouse.database();
    let jangar_db = jangar
        .clickhouse_database
        .as_deref()
        .unwrap_or(crate::stage::api::JANGAR_DATABASE);
    if jangar.live_symbol.is_some() && jangar_db != run_db {
        return (
            Vec::new(),
            format!(
                "none: Jangar reads {jangar_db} (jangar.clickhouse_database), not the run's \
                 {run_db}, so the page observes the live symbol"
            ),
        );
    }
    let with_rows: Vec<String> = ctx
        .symbols
        .values()
        .filter(|s| ctx.stored_bars.iter().any(|b| &b.symbol == *s))
        .cloned()
        .collect();
    let why = if with_rows.is_empty() {
        format!("none: ClickHouse holds no rows of the run's symbols in {run_db}")
    } else {
        format!(
            "{}: Jangar reads {run_db}, where the run wrote them, but never lists them",
            with_rows.join(", ")
        )
    };
    (with_rows, why)
}

/// A step's check, and its finding when it failed.
fn record(
    report: &mut StageReport,
    step: Step,
    outcome: Outcome,
    elapsed: Duration,
    evidence: Vec<String>,
) {
    let (ok, detail) = match outcome {
        Ok(detail) => (true, detail),
        Err(f) => {
            report.findings.push(Finding {
                hop: f.hop,
                cause: format!(
                    "visuals step {} ({}): {}",
                    step.number(),
                    step.title(),
                    f.message
                ),
                runbook: runbook(f.hop),
                severity: crate::domain::diagnose::Severity::Failure,
            });
            (false, f.message)
        }
    };
    report.checks.push(StageCheck {
        name: step.name(),
        ok,
        detail,
        elapsed_ms: elapsed.as_millis() as u64,
        evidence,
    });
}

/// How long the fault proxy waits for Jangar, and so how long a page load may take. Generous on
/// purpose: a call Jangar never answers must look hung to the page, as it would without the
/// proxy, not turn into the proxy's own 502.
pub(super) fn upstream_timeout(request_timeout: Duration) -> Duration {
    (request_timeout * 3).max(Duration::from_secs(30))
}

fn runbook(hop: Hop) -> &'static str {
    match hop {
        Hop::JangarApi => diagnose::RUNBOOK_VISUALS_API,
        Hop::TaJob => diagnose::RUNBOOK_JANGAR_FRESHNESS,
        _ => diagnose::RUNBOOK_VISUALS,
    }
}

fn empty_text<'m>(m: &'m PageModel, key: &str) -> &'m str {
    match key {
        "no_bars" => &m.texts.no_bars,
        _ => &m.texts.no_candles,
    }
}

fn show_count(n: Option<usize>) -> String {
    n.map_or_else(|| "absent".into(), |n| n.to_string())
}

fn abbreviate(list: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = list
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        s.push_str(&format!(", … {} more", list.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_the_first_hop_and_every_message() {
        let mut p = Problems::default();
        assert_eq!(Problems::default().outcome("fine".into()).unwrap(), "fine");
        p.api("no candles");
        p.page("count differs");
        let f = p.outcome(String::new()).unwrap_err();
        assert_eq!(f.hop, Hop::JangarApi);
        assert_eq!(f.message, "no candles; count differs");
    }
}
