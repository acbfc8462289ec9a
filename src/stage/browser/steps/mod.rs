//! The six checklist steps (one file each, `impl Checklist`), and the loop that runs them in one
//! session, times them and keeps their evidence.

mod calls;
mod candles;
mod evidence;
mod indicators;
mod lag;
mod open;
mod oracle;
mod states;
mod step;
mod triangulate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::model::PageModel;
use super::proxy::FaultProxy;
use super::session::{ConsoleEntry, Pill, Session};
use super::{BrowserError, PAGE_SETTLED};
use crate::domain::diagnose::{self, Finding, Hop};
use crate::domain::report::{StageCheck, StageReport};
use crate::stage::StageContext;
use calls::Load;
use step::{api, page, Failure, Outcome, Problems, Step};

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

    /// Clicks Refresh, which the page disables while a load is in flight: Jangar's answers
    /// bound that (`PAGE_SETTLED`), not a click's reaction.
    async fn click_refresh(&self) -> Result<(), BrowserError> {
        self.session
            .click("button", &self.model.texts.refresh, PAGE_SETTLED)
            .await
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
        pending: false,
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
