//! The fault-injecting HTTP proxy between the browser and Jangar.
//!
//! The browser loads Jangar through it, so the validator can show the page an empty result, an
//! error status, a slow answer or a dropped connection for chosen API calls without touching the
//! deployment (which it may neither add symbols to nor break). It can also add the run's
//! synthetic symbols to the symbol list the page gets ([`FaultProxy::add_symbols`]): a real
//! Jangar never lists them (`jangar.md` §6.5), but serves their rows. Everything else is
//! forwarded unchanged. It logs every call with its answer: the evidence of what the page was
//! given and of which calls it made (toggles must make none).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE; back off rather than spin.
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request).await }
            });
            // A handler cannot close a connection without answering; a service error can: hyper
            // then drops the socket, which is what the `Drop` fault needs.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Marks an exchange finished when the answer is ready, or aborted when the browser gave up
/// (its future dropped) first.
struct Pending {
    shared: Arc<Shared>,
    seq: u64,
    settled: bool,
}

impl Pending {
    fn start(shared: &Arc<Shared>, request: &Request<Incoming>, fault: Option<Fault>) -> Self {
        let started_ms = shared.started.elapsed().as_millis() as u64;
        let mut state = shared.lock();
        let seq = state.log.len() as u64;
        state.log.push(Exchange {
            seq,
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().unwrap_or_default().to_string(),
            fault,
            status: None,
            error: None,
            started_ms,
            finished_ms: None,
            finished_unix_ms: None,
            added_symbols: Vec::new(),
            note: None,
            json: None,
        });
        drop(state);
        shared.changed.notify_waiters();
        Self {
            shared: shared.clone(),
            seq,
            settled: false,
        }
    }

    fn finish(mut self, status: Option<u16>, error: Option<String>, json: Option<Value>) {
        self.record(status, error, json);
    }

    /// What the proxy changed in this answer, or why it did not.
    fn changed(&self, added: Vec<String>, note: Option<String>) {
        if let Some(e) = self.shared.lock().log.get_mut(self.seq as usize) {
            e.added_symbols = added;
            e.note = note;
        }
    }

    fn record(&mut self, status: Option<u16>, error: Option<String>, json: Option<Value>) {
        self.settled = true;
        let finished_ms = self.shared.started.elapsed().as_millis() as u64;
        if let Some(e) = self.shared.lock().log.get_mut(self.seq as usize) {
            e.status = status;
            e.error = error;
            e.json = json.map(Arc::new);
            e.finished_ms = Some(finished_ms);
            e.finished_unix_ms = Some(now_unix_ms());
        }
        self.shared.changed.notify_waiters();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            self.record(None, Some("aborted by the browser".into()), None);
        }
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(shared: &Arc<Shared>, request: Request<Incoming>) -> Result<Answer, Dropped> {
    let fault = shared
        .lock()
        .rules
        .get(normalize(request.uri().path()))
        .copied();
    let pending = Pending::start(shared, &request, fault);
    match fault {
        Some(Fault::Drop) => {
            pending.finish(None, Some("dropped on purpose".into()), None);
            return Err(Dropped);
        }
        Some(Fault::Status { status }) => {
            let body = error_body(status);
            let answer = json_answer(status, &body);
            pending.finish(Some(status), None, Some(body));
            return Ok(answer);
        }
        Some(Fault::Empty { shape }) => {
            let query = request.uri().query().unwrap_or_default().to_string();
            let body = empty_body(shape, &query);
            let answer = json_answer(200, &body);
            pending.finish(Some(200), None, Some(body));
            return Ok(answer);
        }
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        None => {}
    }
    Ok(forward(shared, request, pending).await)
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus `accept-encoding`:
/// answers come back uncompressed so the proxy can read the JSON it passes on.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "accept-encoding",
    "content-length",
];

fn copy_headers(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::new();
    for (name, value) in from {
        if !HOP_HEADERS.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
    to
}

async fn forward(shared: &Arc<Shared>, request: Request<Incoming>, pending: Pending) -> Answer {
    let (parts, body) = request.into_parts();
    let target = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let message = format!("reading the browser's request: {e}");
            pending.finish(Some(400), Some(message.clone()), None);
            return text_answer(StatusCode::BAD_REQUEST, message);
        }
    };
    let sent = shared
        .client
        .request(parts.method, &target)
        .headers(copy_headers(&parts.headers))
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let message = format!(
                "Jangar did not answer {target}: {}",
                crate::adapter::webdriver::describe(&e)
            );
            pending.finish(Some(502), Some(message.clone()), None);
            return text_answer(StatusCode::BAD_GATEWAY, message);
        }
    };
    let status = response.status();
    let mut headers = copy_headers(response.headers());
    rewrite_location(&mut headers, &shared.upstream, &shared.own_url);
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let message = format!(
                "Jangar's answer to {target} broke off: {}",
                crate::adapter::webdriver::describe(&e)
            );
            pending.finish(Some(502), Some(message.clone()), None);
            return text_answer(StatusCode::BAD_GATEWAY, message);
        }
    };
    let additions = shared
        .lock()
        .added
        .get(normalize(parts.uri.path()))
        .cloned();
    let bytes = match additions {
        Some(symbols) if status == StatusCode::OK => {
            let query = parts.uri.query().unwrap_or_default();
            match add_symbols(&bytes, query, &symbols) {
                Ok((body, added)) => {
                    pending.changed(added, None);
                    body
                }
                Err(why) => {
                    pending.changed(Vec::new(), Some(format!("no symbol added: {why}")));
                    bytes
                }
            }
        }
        _ => bytes,
    };
    let json = parts
        .uri
        .path()
        .starts_with("/api/")
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten();
    let mut answer = Response::new(Full::new(bytes));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    pending.finish(Some(status.as_u16()), None, json);
    answer
}

/// Jangar's compact symbols answer with `symbols` added, and the ones that were not there yet.
/// Only `{"symbols":[strings]}` for the equity list is changed (`jangar.md` §1.7: the page asks
/// `format=compact`; `full` and `assetClass=crypto` are other lists); Jangar's order is kept and
/// each addition goes before the first listed symbol that sorts after it.
fn add_symbols(
    body: &[u8],
    query: &str,
    symbols: &[String],
) -> Result<(Bytes, Vec<String>), String> {
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("format").as_deref() == Some("full") {
        return Err("format=full is not the page's list".into());
    }
    if param("assetClass").as_deref() == Some("crypto") {
        return Err("assetClass=crypto is not the page's list".into());
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let listed: Vec<String> = match parsed.as_object() {
        Some(o) if o.len() == 1 => o
            .get("symbols")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
            .ok_or("the answer is not {\"symbols\":[strings]}")?,
        _ => return Err("the answer is not {\"symbols\":[strings]}".into()),
    };
    let mut list = listed.clone();
    let mut added = Vec::new();
    for symbol in symbols {
        if list.contains(symbol) {
            continue;
        }
        let at = list
            .iter()
            .position(|s| s.as_str() > symbol.as_str())
            .unwrap_or(list.len());
        list.insert(at, symbol.clone());
        added.push(symbol.clone());
    }
    if added.is_empty() {
        return Ok((Bytes::copy_from_slice(body), added));
    }
    let text = serde_json::to_vec(&json!({ "symbols": list })).map_err(|e| e.to_string())?;
    Ok((Bytes::from(text), added))
}

/// An absolute redirect to Jangar would take the browser past the proxy.
fn rewrite_location(headers: &mut HeaderMap, upstream: &str, own: &str) {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if let Some(rest) = location.strip_prefix(upstream) {
        if let Ok(v) = HeaderValue::from_str(&format!("{own}{rest}")) {
            headers.insert(header::LOCATION, v);
        }
    }
}

fn json_answer(status: u16, body: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

fn text_answer(status: StatusCode, text: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}

/// Jangar's error envelope; the message says where it came from, in Jangar's own wording for
/// the statuses it really sends (`jangar.md` §1.2–§1.3).
fn error_body(status: u16) -> Value {
    let message = match status {
        500 => "ClickHouse request failed (500): injected by the torghut-e2e fault proxy".into(),
        503 => "CH_HOST is not configured".into(),
        _ => format!("injected by the torghut-e2e fault proxy ({status})"),
    };
    json!({ "ok": false, "message": message, "error": message })
}

fn empty_body(shape: EmptyShape, query: &str) -> Value {
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    // Jangar trims and upper-cases the symbol (normalizeTorghutSymbol).
    let symbol = param("symbol").trim().to_uppercase();
    match shape {
        EmptyShape::Series => {
            let (from, to) = (
                clickhouse_time(&param("from")),
                clickhouse_time(&param("to")),
            );
            let window = json!({ "from": from, "to": to });
            json!({
                "ok": true,
                "symbol": symbol,
                "items": [],
                "range": { "requested": window, "effective": window, "fallback": false },
            })
        }
        EmptyShape::Latest => {
            json!({ "ok": true, "symbol": symbol, "bars": null, "signals": null })
        }
        EmptyShape::Symbols => json!({ "symbols": [] }),
    }
}

/// `2026-03-05T19:59:58.123Z` → `2026-03-05T19:59:58.123` (`formatClickHouseDateTime64`);
/// anything else is echoed.
fn clickhouse_time(value: &str) -> String {
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339);
    match parsed {
        Ok(t) => {
            let iso = crate::domain::model::iso_millis(t);
            iso.trim_end_matches('Z').to_string()
        }
        Err(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn upstream() -> String {
        let app = axum::Router::new()
            .route(
                "/api/torghut/ta/bars",
                get(|| async { axum::Json(json!({"ok": true, "items": [{"o": 1}]})) }),
            )
            .route(
                "/api/torghut/symbols",
                get(|| async { axum::Json(json!({"symbols": ["AMD", "NVDA"]})) }),
            )
            .route("/page", get(|| async { "hello" }))
            .route(
                "/moved",
                get(|| async { axum::response::Redirect::temporary("/page") }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn proxy() -> FaultProxy {
        FaultProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            &upstream().await,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn forwards_and_logs_the_json_the_browser_got() {
        let p = proxy().await;
        let r = client()
            .get(format!("{}/api/torghut/ta/bars?symbol=nvda", p.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["items"][0]["o"], 1);
        let page = client()
            .get(format!("{}/page", p.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.text().await.unwrap(), "hello");
        let moved = client()
            .get(format!("{}/moved", p.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 307);
        let log = p.log();
        assert_eq!(log.len(), 3);
        assert_eq!(log[0].param("symbol").as_deref(), Some("nvda"));
        assert_eq!(log[0].status, Some(200));
        assert!(log[0].json.is_some() && log[1].json.is_none());
    }

    #[tokio::test]
    async fn injects_empty_results_errors_delays_and_drops() {
        let p = proxy().await;
        let url = format!(
            "{}/api/torghut/ta/bars?symbol=nvda&from=2026-03-05T19%3A59%3A58.123Z&to=x",
            p.url()
        );
        p.set(
            "/api/torghut/ta/bars/",
            Fault::Empty {
                shape: EmptyShape::Series,
            },
        );
        let body: Value = client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["symbol"], "NVDA");
        assert_eq!(body["items"], json!([]));
        assert_eq!(
            body["range"]["requested"]["from"],
            "2026-03-05T19:59:58.123"
        );
        assert_eq!(body["range"]["fallback"], false);

        p.set("/api/torghut/ta/bars", Fault::Status { status: 500 });
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["message"], body["error"]);

        p.set("/api/torghut/ta/bars", Fault::Delay { ms: 300 });
        let started = Instant::now();
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        p.set("/api/torghut/ta/bars", Fault::Drop);
        let err = client().get(&url).send().await.unwrap_err();
        assert!(err.is_request() || err.is_connect(), "{err:?}");

        p.clear();
        assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
        let log = p.log();
        assert_eq!(log[3].status, None);
        assert_eq!(log[3].fault, Some(Fault::Drop));
        assert!(log.iter().all(Exchange::done));
    }

    #[tokio::test]
    async fn adds_the_run_symbols_to_the_list_and_logs_it() {
        let p = proxy().await;
        let symbols = format!("{}/api/torghut/symbols?format=compact", p.url());
        p.add_symbols(
            "/api/torghut/symbols",
            vec!["ZZT2E-AB12CD34-CHART".into(), "AMD".into(), "B.X".into()],
        );
        let text = client()
            .get(&symbols)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The same compact shape, A to Z, only the missing symbols added.
        assert_eq!(
            text,
            r#"{"symbols":["AMD","B.X","NVDA","ZZT2E-AB12CD34-CHART"]}"#
        );
        // Other lists of the same route are left alone, and say why.
        let full = client()
            .get(format!("{}/api/torghut/symbols?format=full", p.url()))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(full, json!({"symbols": ["AMD", "NVDA"]}));
        let log = p.log();
        assert_eq!(log[0].added_symbols, ["ZZT2E-AB12CD34-CHART", "B.X"]);
        assert_eq!(
            log[0].json.as_deref().unwrap()["symbols"][3],
            "ZZT2E-AB12CD34-CHART"
        );
        assert!(log[1].added_symbols.is_empty());
        assert!(log[1].note.as_deref().unwrap().contains("format=full"));
        let logged = serde_json::to_value(&log[0]).unwrap();
        assert_eq!(logged["added_symbols"][0], "ZZT2E-AB12CD34-CHART");
        assert!(add_symbols(br#"{"symbols":[1]}"#, "", &["X".into()]).is_err());
        assert!(add_symbols(br#"{"symbols":[],"x":1}"#, "", &["X".into()]).is_err());
    }

    #[tokio::test]
    async fn waits_for_calls_and_reports_an_unreachable_jangar() {
        let p = FaultProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1:9",
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let mark = p.mark();
        let url = format!("{}/api/x", p.url());
        let fetch = tokio::spawn(async move { client().get(url).send().await });
        let seen = p
            .wait_for(mark, Duration::from_secs(5), |calls| {
                calls.iter().find(|c| c.done()).cloned()
            })
            .await
            .unwrap();
        assert_eq!(seen.status, Some(502));
        assert!(seen.error.unwrap().contains("did not answer"));
        assert_eq!(fetch.await.unwrap().unwrap().status(), 502);
    }
}
