//! One headless Chromium session for the whole checklist: started (with its own chromedriver when
//! no WebDriver URL is configured), pinned to UTC and en-US, and the few page operations the
//! steps need, each one WebDriver round trip where possible.

mod page;

use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::Client;
use serde_json::{json, Value};

use super::model::PageModel;
use super::BrowserError;
use crate::adapter::webdriver::LocalChromedriver;

pub use page::{Checkbox, ConsoleEntry, PageState, Pill, Trigger};

const SNAPSHOT_JS: &str = include_str!("snapshot.js");
const FIND_JS: &str = include_str!("find.js");

/// Tall enough for the whole charts page, so one screenshot shows every panel.
const WINDOW: (u32, u32) = (1280, 1400);

/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often a condition on the page is re-read.
const POLL: Duration = Duration::from_millis(40);

/// How long the WebDriver may run one page script (its `script` timeout, see [`Session::bound`]).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long starting a browser may take, besides the WebDriver's answer (Chromium's first start
/// on a loaded machine takes seconds).
const BROWSER_START: Duration = Duration::from_secs(30);

pub struct Session {
    client: Client,
    model: Value,
    /// Kept alive for the session; killed when dropped.
    driver: Option<LocalChromedriver>,
    pub webdriver_url: String,
    limits: Limits,
}

/// How long each WebDriver command may take: what the WebDriver itself may spend on it (its
/// page-load and script timeouts) plus `answer`, the time it may take to answer. A command past
/// its bound marks the WebDriver as hung: every later command fails at once, so a WebDriver
/// that stops answering ends the checklist within one bound, not one per remaining command.
struct Limits {
    answer: Duration,
    page_load: std::sync::Mutex<Duration>,
    hung: std::sync::Mutex<Option<String>>,
}

/// A ChromeDriver extension command under `/session/{id}/…` (CDP, legacy logs).
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    method: http::Method,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

impl Session {
    /// Connects to `webdriver_url`, or starts chromedriver when there is none. `answer` bounds
    /// each WebDriver answer beyond the WebDriver's own waits (see [`Limits`]).
    pub async fn open(
        webdriver_url: Option<&str>,
        model: &PageModel,
        answer: Duration,
    ) -> Result<Self, BrowserError> {
        let (driver, url) = match webdriver_url {
            Some(url) => (None, url.to_string()),
            None => {
                let d = LocalChromedriver::start(answer.max(Duration::from_secs(10))).await?;
                let url = d.url().to_string();
                (Some(d), url)
            }
        };
        let start = BROWSER_START + answer;
        let client = tokio::time::timeout(
            start,
            crate::adapter::webdriver::connect_sized(&url, WINDOW),
        )
        .await
        .map_err(|_| {
            BrowserError::Hung(format!(
                "WebDriver at {url} did not open a browser session within {start:?}"
            ))
        })?
        .map_err(|e| BrowserError::Session {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let model = serde_json::to_value(model).unwrap_or(Value::Null);
        let session = Self {
            client,
            model,
            driver,
            webdriver_url: url,
            limits: Limits {
                answer,
                page_load: std::sync::Mutex::new(Duration::from_secs(300)),
                hung: std::sync::Mutex::new(None),
            },
        };
        session.pin_locale().await;
        Ok(session)
    }

    /// Bounds the WebDriver's own waits, so a page that never loads fails the step instead of
    /// holding the run for ChromeDriver's default five minutes.
    pub async fn bound(&self, page_load: Duration) -> Result<(), BrowserError> {
        let timeouts = fantoccini::wd::TimeoutConfiguration::new(
            Some(SCRIPT_TIMEOUT),
            Some(page_load),
            Some(Duration::ZERO),
        );
        self.command("set timeouts", self.client.update_timeouts(timeouts))
            .await?;
        *self
            .limits
            .page_load
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = page_load;
        Ok(())
    }

    /// Why the WebDriver is taken as hung (a command got no answer within its bound), if it is.
    pub fn hung(&self) -> Option<String> {
        self.limits
            .hung
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One WebDriver command that may run a page script: see [`Self::within`].
    async fn command<T>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = Result<T, CmdError>>,
    ) -> Result<T, CmdError> {
        self.within(what, SCRIPT_TIMEOUT + self.limits.answer, command)
            .await
    }

    /// Runs one WebDriver command within `bound`; past it, the WebDriver is taken as hung and
    /// this and every later command fail at once with a timed-out error naming the command.
    async fn within<T>(
        &self,
        what: &str,
        bound: Duration,
        command: impl std::future::Future<Output = Result<T, CmdError>>,
    ) -> Result<T, CmdError> {
        if let Some(why) = self.hung() {
            return Err(timed_out(why));
        }
        match tokio::time::timeout(bound, command).await {
            Ok(result) => result,
            Err(_) => {
                let why = format!(
                    "WebDriver at {} did not answer {what} within {bound:?}",
                    self.webdriver_url
                );
                *self.limits.hung.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                Err(timed_out(why))
            }
        }
    }

    pub fn started_chromedriver(&self) -> bool {
        self.driver.is_some()
    }

    /// UTC and en-US even on a WebDriver the validator did not start (the lag and the candle
    /// times are computed in the browser's zone). Best effort: step 1 checks the outcome.
    async fn pin_locale(&self) {
        for (cmd, params) in [
            (
                "Emulation.setTimezoneOverride",
                json!({ "timezoneId": "UTC" }),
            ),
            ("Emulation.setLocaleOverride", json!({ "locale": "en-US" })),
        ] {
            let command = SessionCommand {
                path: "goog/cdp/execute",
                method: http::Method::POST,
                body: Some(json!({ "cmd": cmd, "params": params })),
            };
            if let Err(e) = self.command(cmd, self.client.issue_cmd(command)).await {
                tracing::debug!(%cmd, error = %e, "CDP override not applied");
            }
        }
    }

    /// Ends the session (a hung WebDriver is not asked) and the chromedriver it started.
    pub async fn close(self) {
        let close = self.client.clone().close();
        if let Err(e) = self
            .within("delete session", self.limits.answer, close)
            .await
        {
            tracing::debug!(error = %e, "closing the browser session");
        }
        drop(self.driver);
    }

    pub async fn goto(&self, url: &str) -> Result<(), CmdError> {
        let page_load = *self
            .limits
            .page_load
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.within(
            "navigate",
            page_load + self.limits.answer,
            self.client.goto(url),
        )
        .await
    }

    pub async fn snapshot(&self) -> Result<PageState, BrowserError> {
        let value = self
            .command(
                "execute script (snapshot)",
                self.client.execute(SNAPSHOT_JS, vec![self.model.clone()]),
            )
            .await?;
        serde_json::from_value(value).map_err(|e| BrowserError::Script(e.to_string()))
    }

    /// Reads the page until `ready` accepts it or `timeout` passes; the last state either way.
    pub async fn poll(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&PageState) -> bool,
    ) -> Result<(bool, PageState), BrowserError> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.snapshot().await?;
            if ready(&state) {
                return Ok((true, state));
            }
            if Instant::now() >= deadline {
                return Ok((false, state));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `find.js`: `want` is `{kind, value[, trigger]}`.
    async fn find_js(&self, want: Value) -> Result<Value, CmdError> {
        self.command(
            "execute script (find)",
            self.client.execute(FIND_JS, vec![self.model.clone(), want]),
        )
        .await
    }

    async fn find(&self, want: &Value) -> Result<Option<Element>, CmdError> {
        let found = self.find_js(want.clone()).await?;
        Ok(found.get(ELEMENT_KEY).and_then(Value::as_str).map(|id| {
            Element::from_element_id(self.client.clone(), ElementRef::from(id.to_string()))
        }))
    }

    /// Clicks what the model locates as `want` once it is there and enabled, waiting up to
    /// `timeout`: a click on a disabled control (Refresh while a load is in flight, `jangar.md`
    /// §3.3) is dropped by the browser without a word, and the load it was meant to start
    /// would then be waited for in vain.
    async fn click_found(&self, want: Value, timeout: Duration) -> Result<(), BrowserError> {
        let deadline = Instant::now() + timeout;
        let what = || {
            format!(
                "{} {:?}",
                want["kind"].as_str().unwrap_or_default(),
                want["value"].as_str().unwrap_or_default()
            )
        };
        loop {
            let found = self.find(&want).await?;
            if let Some(element) = &found {
                if self.command("is enabled", element.is_enabled()).await? {
                    self.command("element click", element.click()).await?;
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(match found {
                    Some(_) => BrowserError::Disabled(format!("{} for {timeout:?}", what())),
                    None => BrowserError::NotFound(what()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks what the model locates as `kind`/`value`, waiting up to `timeout` for it.
    pub async fn click(
        &self,
        kind: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<(), BrowserError> {
        self.click_found(json!({ "kind": kind, "value": value }), timeout)
            .await
    }

    /// Opens a Select by its trigger and picks the option labelled `label` from the list that
    /// trigger opened (closed lists stay in the DOM, `jangar.md` §6.3).
    pub async fn choose(
        &self,
        trigger: &str,
        label: &str,
        timeout: Duration,
    ) -> Result<(), BrowserError> {
        self.click("css", trigger, timeout).await?;
        let want = json!({ "kind": "option", "value": label, "trigger": trigger });
        match self.click_found(want, timeout).await {
            Err(BrowserError::NotFound(_)) => {
                let offered = self
                    .find_js(json!({ "kind": "options", "value": "", "trigger": trigger }))
                    .await
                    .ok()
                    .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                    .unwrap_or_default();
                Err(BrowserError::NotFound(if offered.is_empty() {
                    format!("option {label:?}: the {trigger} dropdown opened no list")
                } else {
                    format!(
                        "option {label:?} in the {trigger} dropdown, which offers {}",
                        offered.join(", ")
                    )
                }))
            }
            other => other,
        }
    }

    pub async fn screenshot(&self) -> Result<Vec<u8>, CmdError> {
        self.command("take screenshot", self.client.screenshot())
            .await
    }

    /// Console lines since the last call (ChromeDriver's `browser` log, which it empties on read).
    pub async fn console(&self) -> Result<Vec<ConsoleEntry>, CmdError> {
        let command = SessionCommand {
            path: "se/log",
            method: http::Method::POST,
            body: Some(json!({ "type": "browser" })),
        };
        let value = self
            .command("get log", self.client.issue_cmd(command))
            .await?;
        Ok(serde_json::from_value(value).unwrap_or_default())
    }
}

/// The error of a command the WebDriver did not answer in time.
fn timed_out(why: String) -> CmdError {
    CmdError::Lost(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
}

/// Whether `error` is a command the WebDriver did not answer in time (see [`Session::hung`]).
pub fn is_timed_out(error: &CmdError) -> bool {
    matches!(error, CmdError::Lost(e) if e.kind() == std::io::ErrorKind::TimedOut)
}
