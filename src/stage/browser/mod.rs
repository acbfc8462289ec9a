//! The browser stage (issue 8): the six steps of the runbook's visuals checklist
//! (`torghut-runbooks.md` "Torghut TA visuals validation") against the charts page as it works
//! today (`jangar.md` §3–§4), in one headless Chromium session.
//!
//! The browser loads Jangar through a fault-injecting proxy inside the validator
//! ([`proxy::FaultProxy`]): it sees every API call the page makes and what came back (the
//! expected counts are computed from exactly that), and it produces the empty and error states
//! of steps 5 and 6 without adding symbols to, or breaking, the deployment. Selectors, texts and
//! the page's counting rules come from a page model file ([`model::PageModel`]).
//!
//! Evidence in the scenario's artifacts directory: a PNG per step (`01-open.png` …, `-failed`
//! when the step failed), `console.json` (the browser console's errors and warnings, by step),
//! `proxy-log.json` (every call through the proxy) and the step-2 API answers.

pub mod expect;
pub mod model;
pub mod proxy;
pub mod session;
mod steps;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::domain::diagnose::{Finding, Hop};
use crate::domain::report::{StageCheck, StageReport};
use crate::stage::StageContext;
use model::{ModelError, PageModel};
use proxy::ProxyError;

/// Why the checklist could not start, or a step could not talk to the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("no Jangar URL configured: set jangar.base_url or TORGHUT_E2E_JANGAR_URL")]
    NoJangarUrl,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("fault proxy: {0}")]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    WebDriver(#[from] crate::adapter::webdriver::WebDriverError),
    #[error("cannot open a browser session on {url}: {message}")]
    Session { url: String, message: String },
    /// The WebDriver stopped answering (a command past its bound).
    #[error("{0}")]
    Hung(String),
    #[error("WebDriver command failed: {0}")]
    Command(Box<fantoccini::error::CmdError>),
    #[error("the page script failed: {0}")]
    Script(String),
    #[error("not found on the page: {0}")]
    NotFound(String),
    #[error("disabled on the page: {0}")]
    Disabled(String),
    #[error("cannot write evidence to {path}: {source}")]
    Artifacts {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<fantoccini::error::CmdError> for BrowserError {
    fn from(e: fantoccini::error::CmdError) -> Self {
        // The timed-out command's own words, without fantoccini's "connection lost".
        if let fantoccini::error::CmdError::Lost(io) = &e {
            if session::is_timed_out(&e) {
                return BrowserError::Hung(io.to_string());
            }
        }
        BrowserError::Command(Box::new(e))
    }
}

/// The stage, with the page model from `TORGHUT_E2E_PAGE_MODEL` or the built-in one.
pub async fn run_stage(ctx: &StageContext<'_>, api: Option<&StageReport>) -> StageReport {
    match PageModel::load_default() {
        Ok(model) => run_with_model(ctx, api, model).await,
        Err(e) => not_started(&e.into(), Duration::ZERO),
    }
}

/// The stage against a given page model (a page that changed is a different model), within
/// [`stage_bound`]: every WebDriver command has a bound of its own, and this one covers the
/// stage as a whole, whatever else could wait.
pub async fn run_with_model(
    ctx: &StageContext<'_>,
    api: Option<&StageReport>,
    model: PageModel,
) -> StageReport {
    let started = Instant::now();
    let bound = stage_bound(ctx.config);
    let stage = async {
        match steps::Checklist::start(ctx, api, model).await {
            Ok(checklist) => checklist.run(started).await,
            Err(e) => not_started(&e, started.elapsed()),
        }
    };
    match tokio::time::timeout(bound, stage).await {
        Ok(report) => report,
        // Dropping the stage closed its proxy and killed the chromedriver it started.
        Err(_) => not_started(
            &BrowserError::Hung(format!(
                "the browser stage did not finish within {bound:?} (WebDriver or page hung)"
            )),
            started.elapsed(),
        ),
    }
}

/// The longest the browser stage may take: a browser start, then six steps that may each wait
/// for a page load as long as the proxy waits for Jangar, plus the WebDriver's answers.
pub fn stage_bound(config: &crate::config::Config) -> Duration {
    let page_load = steps::upstream_timeout(config.jangar.request_timeout);
    Duration::from_secs(60) + 2 * config.connect_timeout + 6 * page_load
}

/// The stage's report when no step could run (no Jangar URL, no browser, no proxy). A WebDriver
/// that stopped answering could not check anything: the stage is an error (exit 3), not a
/// failed check of the page.
fn not_started(error: &BrowserError, elapsed: Duration) -> StageReport {
    let cause = format!("the visuals checklist could not start: {error}");
    let hung = matches!(error, BrowserError::Hung(_));
    let mut report = StageReport {
        stage: "browser".into(),
        checks: vec![StageCheck {
            name: "session".into(),
            ok: false,
            detail: cause.clone(),
            elapsed_ms: elapsed.as_millis() as u64,
            evidence: Vec::new(),
            pending: false,
        }],
        findings: vec![Finding {
            hop: Hop::ChartsPage,
            cause,
            runbook: crate::domain::diagnose::RUNBOOK_VISUALS,
            severity: crate::domain::diagnose::Severity::Failure,
        }],
        ..StageReport::default()
    }
    .conclude();
    if hung {
        report.verdict = crate::domain::report::Verdict::Error;
    }
    report
}

/// Bound for the page to react to a click (a dropdown opening, a count changing).
const UI_TIMEOUT: Duration = Duration::from_secs(2);

/// Bound for the page to draw what it was given: its route's content after the hydration marker,
/// the symbol list (the dropdown enabled, the first symbol charted), and Jangar's data answers
/// once the proxy passed them on (parsed, up to 900 bars drawn), which also ends the load that
/// keeps Refresh disabled. On a busy machine the browser waits for CPU first; a click's reaction
/// (`UI_TIMEOUT`) is not a bound for that.
const PAGE_SETTLED: Duration = Duration::from_secs(10);
