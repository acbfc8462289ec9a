//! Serving the browser: one task per connection, each call forwarded to Jangar or answered
//! with its fault, and logged.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::answer::{empty_body, error_body, json_answer, text_answer, Answer};
use super::{normalize, now_unix_ms, Dropped, Exchange, Fault, Shared};

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
pub(super) struct Pending {
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

pub(super) async fn handle(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Answer, Dropped> {
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

pub(super) fn copy_headers(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::new();
    for (name, value) in from {
        if !HOP_HEADERS.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
    to
}

pub(super) async fn forward(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    pending: Pending,
) -> Answer {
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
pub(super) fn add_symbols(
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
pub(super) fn rewrite_location(headers: &mut HeaderMap, upstream: &str, own: &str) {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if let Some(rest) = location.strip_prefix(upstream) {
        if let Ok(v) = HeaderValue::from_str(&format!("{own}{rest}")) {
            headers.insert(header::LOCATION, v);
        }
    }
}
