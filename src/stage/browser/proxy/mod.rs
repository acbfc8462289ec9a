//! The fault-injecting HTTP proxy between the browser and Jangar.
//!
//! The browser loads Jangar through it, so the validator can show the page an empty result, an
//! error status, a slow answer or a dropped connection for chosen API calls without touching the
//! deployment (which it may neither add symbols to nor break). It can also add the run's
//! synthetic symbols to the symbol list the page gets ([`FaultProxy::add_symbols`]): a real
//! Jangar never lists them (`jangar.md` §6.5), but serves their rows. Everything else is
//! forwarded unchanged. It logs every call with its answer: the evidence of what the page was
//! given and of which calls it made (toggles must make none).

mod answer;
mod serve;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use serve::accept_loop;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid Jangar URL {url:?}: {message}")]
    Upstream { url: String, message: String },
}

/// The shape of an empty answer: the real envelope with nothing in it (`jangar.md` §1.4–§1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyShape {
    /// `/ta/bars`, `/ta/signals`: `items: []`, the requested range echoed, no fallback.
    Series,
    /// `/ta/latest`: `bars: null, signals: null`.
    Latest,
    /// `/symbols`: `symbols: []`.
    Symbols,
}

/// What the proxy does to calls of one path instead of (or before) forwarding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// 200 with the envelope and no rows; Jangar is not asked.
    Empty { shape: EmptyShape },
    /// This status with Jangar's error body (`{"ok":false,"message":M,"error":M}`).
    Status { status: u16 },
    /// Wait this long, then forward.
    Delay { ms: u64 },
    /// Close the connection without answering.
    Drop,
}

/// One call through the proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub fault: Option<Fault>,
    /// The status the browser got; `None` while pending, or when the connection was dropped.
    pub status: Option<u16>,
    /// Why no answer came from Jangar (upstream failure, dropped on purpose, browser aborted).
    pub error: Option<String>,
    /// Milliseconds since the proxy started.
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// Wall clock (Unix ms) when the answer was handed to the browser.
    #[serde(skip)]
    pub finished_unix_ms: Option<i64>,
    /// Symbols the proxy added to Jangar's symbol list in this answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added_symbols: Vec<String>,
    /// Why an answer the proxy was to change went through unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The JSON body of an API answer, as the browser got it.
    #[serde(skip)]
    pub json: Option<Arc<Value>>,
}

impl Exchange {
    pub fn done(&self) -> bool {
        self.finished_ms.is_some()
    }

    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }

    /// A query parameter, URL-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

#[derive(Default)]
struct State {
    rules: BTreeMap<String, Fault>,
    /// Path of the symbols list → symbols to add to its compact answers.
    added: BTreeMap<String, Vec<String>>,
    log: Vec<Exchange>,
}

struct Shared {
    upstream: String,
    own_url: String,
    client: reqwest::Client,
    state: Mutex<State>,
    changed: Notify,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
struct Dropped;

impl FaultProxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `upstream` (e.g. Jangar's base
    /// URL); each forwarded call may take up to `timeout`.
    pub async fn start(
        listen: SocketAddr,
        upstream: &str,
        timeout: Duration,
    ) -> Result<Self, ProxyError> {
        Self::start_with_auth(listen, upstream, None, timeout).await
    }

    /// As [`start`](Self::start), sending `auth` with every forwarded call unless the browser
    /// sent its own (the base URL's user info, see `config`: the browser never sees it).
    pub async fn start_with_auth(
        listen: SocketAddr,
        upstream: &str,
        auth: Option<&crate::config::BasicAuth>,
        timeout: Duration,
    ) -> Result<Self, ProxyError> {
        let upstream = upstream.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&upstream).map_err(|e| ProxyError::Upstream {
            url: upstream.clone(),
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProxyError::Upstream {
                url: upstream,
                message: "expected an http:// or https:// URL".into(),
            });
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
            addr: listen.to_string(),
            source,
        })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .default_headers(crate::config::BasicAuth::headers(auth))
            // The browser must see Jangar's redirects, not follow-ups made on its behalf.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProxyError::Upstream {
                url: upstream.clone(),
                message: e.to_string(),
            })?;
        let shared = Arc::new(Shared {
            upstream,
            own_url: format!("http://{addr}"),
            client,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            started: Instant::now(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Applies `fault` to every later call of `path` (exact, a trailing `/` ignored).
    pub fn set(&self, path: &str, fault: Fault) {
        self.shared
            .lock()
            .rules
            .insert(normalize(path).to_string(), fault);
    }

    /// Forwards everything again (symbols being added stay added).
    pub fn clear(&self) {
        self.shared.lock().rules.clear();
    }

    /// Adds `symbols` to every later 200 answer of `path` (Jangar's `/api/torghut/symbols`)
    /// in the compact shape `{"symbols":[…]}` the page asks for: the same shape, each one
    /// placed in A-to-Z order among Jangar's own (which keep their order), nothing else
    /// changed. Each call logs what it added (`added_symbols`) or why it added nothing (`note`).
    pub fn add_symbols(&self, path: &str, symbols: Vec<String>) {
        self.shared
            .lock()
            .added
            .insert(normalize(path).to_string(), symbols);
    }

    /// The sequence number the next call will get: "calls since" starts here.
    pub fn mark(&self) -> u64 {
        self.shared.lock().log.len() as u64
    }

    pub fn log(&self) -> Vec<Exchange> {
        self.shared.lock().log.clone()
    }

    pub fn since(&self, mark: u64) -> Vec<Exchange> {
        self.shared
            .lock()
            .log
            .iter()
            .skip(mark as usize)
            .cloned()
            .collect()
    }

    /// Calls `check` with the calls since `mark` whenever one starts or ends, until it returns
    /// something or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        mark: u64,
        timeout: Duration,
        mut check: impl FnMut(&[Exchange]) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change between the look and the wait is not lost.
            notified.as_mut().enable();
            if let Some(found) = check(&self.since(mark)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&self.since(mark));
            }
        }
    }
}

fn normalize(path: &str) -> &str {
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
