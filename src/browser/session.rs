//! One headless Chromium session for the whole checklist: started (with its own chromedriver when
//! no WebDriver URL is configured), pinned to UTC and en-US, and the few page operations the
//! steps need, each one WebDriver round trip where possible.

use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::PageModel;
use super::BrowserError;
use crate::webdriver::LocalChromedriver;

const SNAPSHOT_JS: &str = include_str!("snapshot.js");
const FIND_JS: &str = include_str!("find.js");

/// Tall enough for the whole charts page, so one screenshot shows every panel.
const WINDOW: (u32, u32) = (1280, 1400);

/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often a condition on the page is re-read.
const POLL: Duration = Duration::from_millis(40);

pub struct Session {
    client: Client,
    model: Value,
    /// Kept alive for the session; killed when dropped.
    driver: Option<LocalChromedriver>,
    pub webdriver_url: String,
}

/// What the snapshot script reads (see `snapshot.js`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PageState {
    pub path: String,
    pub hydrated: Option<String>,
    pub heading: Option<String>,
    /// Texts of the model without placeholders → whether the page shows them.
    pub shown: std::collections::BTreeMap<String, bool>,
    /// The `Showing …` line.
    pub showing: Option<String>,
    pub candles: Option<String>,
    pub overlays: Option<String>,
    pub canvas: bool,
    pub signals: Option<String>,
    pub lag: Option<Pill>,
    pub latest_event: Option<String>,
    pub banner: Option<String>,
    pub busy: Option<String>,
    pub symbol: Option<Trigger>,
    pub range: Option<Trigger>,
    pub resolution: Option<Trigger>,
    pub toggles: std::collections::BTreeMap<String, Option<Checkbox>>,
    pub now_ms: i64,
    pub time_zone: String,
    pub tz_offset_min: i64,
    pub language: String,
    pub locale: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Pill {
    pub text: String,
    pub class: String,
}

/// A Select trigger as the page shows it (`jangar.md` §6.1).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Trigger {
    pub tag: String,
    pub disabled: bool,
    /// The button's whole text, icon included (`AMD▼`): evidence, never the value.
    pub text: String,
    /// The value slot's text: the value, or the placeholder when `placeholder` is set.
    pub slot: Option<String>,
    /// The trigger carries the placeholder attribute: nothing is selected.
    pub placeholder: bool,
    /// The id of the list it has open.
    pub controls: Option<String>,
}

impl Trigger {
    /// The selected value: the value slot's text, unless the trigger shows its placeholder.
    pub fn value(&self) -> Option<&str> {
        self.slot
            .as_deref()
            .filter(|v| !self.placeholder && !v.is_empty())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub struct Checkbox {
    pub checked: bool,
    pub disabled: bool,
}

impl PageState {
    pub fn shows(&self, key: &str) -> bool {
        self.shown.get(key).copied().unwrap_or(false)
    }

    pub fn busy(&self) -> bool {
        self.busy.as_deref() == Some("true")
    }

    pub fn count(value: &Option<String>) -> Option<usize> {
        value.as_deref()?.parse().ok()
    }
}

/// One line of the browser console.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleEntry {
    #[serde(default)]
    pub step: String,
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub source: Option<String>,
    pub timestamp: i64,
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
    /// Connects to `webdriver_url`, or starts chromedriver when there is none.
    pub async fn open(
        webdriver_url: Option<&str>,
        model: &PageModel,
        timeout: Duration,
    ) -> Result<Self, BrowserError> {
        let (driver, url) = match webdriver_url {
            Some(url) => (None, url.to_string()),
            None => {
                let d = LocalChromedriver::start(timeout).await?;
                let url = d.url().to_string();
                (Some(d), url)
            }
        };
        let client = crate::webdriver::connect_sized(&url, WINDOW)
            .await
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
        };
        session.pin_locale().await;
        Ok(session)
    }

    /// Bounds the WebDriver's own waits, so a page that never loads fails the step instead of
    /// holding the run for ChromeDriver's default five minutes.
    pub async fn bound(&self, page_load: Duration) -> Result<(), BrowserError> {
        let timeouts = fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(10)),
            Some(page_load),
            Some(Duration::ZERO),
        );
        self.client.update_timeouts(timeouts).await?;
        Ok(())
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
            if let Err(e) = self.client.issue_cmd(command).await {
                tracing::debug!(%cmd, error = %e, "CDP override not applied");
            }
        }
    }

    pub async fn close(self) {
        if let Err(e) = self.client.close().await {
            tracing::debug!(error = %e, "closing the browser session");
        }
        drop(self.driver);
    }

    pub async fn goto(&self, url: &str) -> Result<(), CmdError> {
        self.client.goto(url).await
    }

    pub async fn snapshot(&self) -> Result<PageState, BrowserError> {
        let value = self
            .client
            .execute(SNAPSHOT_JS, vec![self.model.clone()])
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
        self.client
            .execute(FIND_JS, vec![self.model.clone(), want])
            .await
    }

    async fn find(&self, want: &Value) -> Result<Option<Element>, CmdError> {
        let found = self.find_js(want.clone()).await?;
        Ok(found.get(ELEMENT_KEY).and_then(Value::as_str).map(|id| {
            Element::from_element_id(self.client.clone(), ElementRef::from(id.to_string()))
        }))
    }

    /// Clicks what the model locates as `want`, waiting up to `timeout` for it.
    async fn click_found(&self, want: Value, timeout: Duration) -> Result<(), BrowserError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find(&want).await? {
                element.click().await?;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::NotFound(format!(
                    "{} {:?}",
                    want["kind"].as_str().unwrap_or_default(),
                    want["value"].as_str().unwrap_or_default()
                )));
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
        self.client.screenshot().await
    }

    /// Console lines since the last call (ChromeDriver's `browser` log, which it empties on read).
    pub async fn console(&self) -> Result<Vec<ConsoleEntry>, CmdError> {
        let command = SessionCommand {
            path: "se/log",
            method: http::Method::POST,
            body: Some(json!({ "type": "browser" })),
        };
        let value = self.client.issue_cmd(command).await?;
        Ok(serde_json::from_value(value).unwrap_or_default())
    }
}
