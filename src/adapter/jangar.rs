//! HTTP calls to Jangar's TA endpoints: one request timeout, bounded retries on connection
//! failures and 5xx answers, and the history of every attempt kept as evidence.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

/// The three TA endpoints (`jangar.md` §1.4–§1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Bars,
    Signals,
    Latest,
}

impl Endpoint {
    /// Short name for check names and evidence files.
    pub fn short(self) -> &'static str {
        match self {
            Endpoint::Bars => "bars",
            Endpoint::Signals => "signals",
            Endpoint::Latest => "latest",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Bars => "/api/torghut/ta/bars",
            Endpoint::Signals => "/api/torghut/ta/signals",
            Endpoint::Latest => "/api/torghut/ta/latest",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

/// Why a call produced no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the connection closed without a complete answer: {0}")]
    NoAnswer(String),
    #[error("invalid Jangar URL {0}")]
    Url(String),
    /// An earlier call to the same endpoint got no answer; calling again would only repeat the
    /// wait (a hung endpoint would cost a timeout per check).
    #[error("not called: {0} gave no answer earlier in this stage")]
    Skipped(Endpoint),
}

impl ApiError {
    /// Connection failures are worth another attempt; a timeout already spent the budget.
    fn is_retriable(&self) -> bool {
        matches!(self, ApiError::Connect(_) | ApiError::NoAnswer(_))
    }
}

/// An HTTP answer, body kept as received (key order matters to contract snapshots).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    /// Caching headers the contract says Jangar never sends (`jangar.md` §1.8).
    pub cache_headers: Vec<String>,
    pub body: String,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
}

impl Answer {
    /// `message` of a `{"ok":false,"message":M,"error":M}` error body.
    pub fn message(&self) -> Option<&str> {
        self.json.as_ref()?.get("message")?.as_str()
    }
}

/// One attempt of a call, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub outcome: String,
    pub elapsed_ms: u64,
}

/// One call and its attempts.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub endpoint: Endpoint,
    /// Path and query string as sent.
    pub request: String,
    pub attempts: Vec<Attempt>,
}

/// The outcome of a call: the last answer, or why there was none.
pub type CallResult = Result<Answer, ApiError>;

/// A call's outcome and how many attempts it took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub result: CallResult,
    pub attempts: usize,
}

impl Reply {
    /// `200`, `500 `ClickHouse request failed …` (3 attempts)`, `no answer within 1000 ms`.
    pub fn describe(&self) -> String {
        let what = match &self.result {
            Ok(a) => match a.message() {
                Some(m) if a.status != 200 => format!("answered {} `{}`", a.status, first_line(m)),
                _ => format!("answered {}", a.status),
            },
            Err(e) => e.to_string(),
        };
        if self.attempts > 1 {
            format!("{what} ({} attempts)", self.attempts)
        } else {
            what
        }
    }
}

pub struct JangarClient {
    http: reqwest::Client,
    base: Url,
    retries: u32,
    timeout: Duration,
    history: Mutex<Vec<CallRecord>>,
    /// Endpoints that gave no answer at all (timeout, connection); later calls are skipped.
    dead: Mutex<BTreeSet<Endpoint>>,
}

/// Pause between attempts: long enough for a restarting pod's socket, short for a test.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl JangarClient {
    pub fn new(base_url: &str, timeout: Duration, retries: u32) -> Result<Self, ApiError> {
        Self::with_auth(base_url, None, timeout, retries)
    }

    /// A client that sends `auth` with every call (the base URL's user info, see `config`).
    pub fn with_auth(
        base_url: &str,
        auth: Option<&crate::config::BasicAuth>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Self, ApiError> {
        let base = Url::parse(base_url)
            .map_err(|e| ApiError::Url(format!("{}: {e}", crate::domain::redact::url(base_url))))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .default_headers(crate::config::BasicAuth::headers(auth))
            .build()
            .map_err(|e| ApiError::Connect(e.to_string()))?;
        Ok(Self {
            http,
            base,
            retries,
            timeout,
            history: Mutex::new(Vec::new()),
            dead: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Every call so far, in order.
    pub fn history(&self) -> Vec<CallRecord> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// GET `endpoint` with exactly these query pairs (in order; empty values kept).
    pub async fn get(&self, endpoint: Endpoint, query: &[(&str, &str)]) -> Reply {
        let url = match self.url(endpoint, query) {
            Ok(url) => url,
            Err(e) => {
                return Reply {
                    result: Err(e),
                    attempts: 0,
                }
            }
        };
        let request = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        if self.is_dead(endpoint) {
            let result = Err(ApiError::Skipped(endpoint));
            self.record(endpoint, request, vec![outcome_of(&result, 0)]);
            return Reply {
                result,
                attempts: 0,
            };
        }
        let mut attempts = Vec::new();
        let mut result;
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            result = self.once(url.clone()).await;
            attempts.push(outcome_of(&result, started.elapsed().as_millis() as u64));
            let again = match &result {
                Ok(a) => a.status >= 500,
                Err(e) => e.is_retriable(),
            };
            if !again || attempt >= self.retries {
                break;
            }
            attempt += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        if result.is_err() {
            self.dead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(endpoint);
        }
        let n = attempts.len();
        self.record(endpoint, request, attempts);
        Reply {
            result,
            attempts: n,
        }
    }

    fn url(&self, endpoint: Endpoint, query: &[(&str, &str)]) -> Result<Url, ApiError> {
        let mut url = self
            .base
            .join(endpoint.path())
            .map_err(|e| ApiError::Url(e.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn is_dead(&self, endpoint: Endpoint) -> bool {
        self.dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&endpoint)
    }

    fn record(&self, endpoint: Endpoint, request: String, attempts: Vec<Attempt>) {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(CallRecord {
                endpoint,
                request,
                attempts,
            });
    }

    async fn once(&self, url: Url) -> CallResult {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let cache_headers = ["cache-control", "etag", "last-modified", "vary"]
            .into_iter()
            .filter(|h| response.headers().contains_key(*h))
            .map(str::to_string)
            .collect();
        let body = response.text().await.map_err(|e| self.classify(e))?;
        let json = serde_json::from_str(&body).ok();
        Ok(Answer {
            status,
            content_type,
            cache_headers,
            body,
            json,
        })
    }

    fn classify(&self, e: reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout(self.timeout)
        } else if e.is_connect() {
            ApiError::Connect(root_cause(&e))
        } else {
            ApiError::NoAnswer(root_cause(&e))
        }
    }
}

fn outcome_of(result: &CallResult, elapsed_ms: u64) -> Attempt {
    let outcome = match result {
        Ok(a) => match a.message() {
            Some(m) if a.status != 200 => format!("{} {}", a.status, first_line(m)),
            _ => a.status.to_string(),
        },
        Err(e) => e.to_string(),
    };
    Attempt {
        outcome,
        elapsed_ms,
    }
}

/// The first line of a message, cut to a length a report line can carry. ClickHouse's errors
/// quote the whole query in the middle and name the exception at the end, so the middle goes.
pub fn first_line(text: &str) -> String {
    const HEAD: usize = 140;
    const TAIL: usize = 60;
    let line = text.lines().next().unwrap_or_default();
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= HEAD + TAIL {
        return line.to_string();
    }
    let head: String = chars[..HEAD].iter().collect();
    let tail: String = chars[chars.len() - TAIL..].iter().collect();
    format!("{head} … {tail}")
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
