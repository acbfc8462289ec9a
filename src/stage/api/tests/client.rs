//! The client against a local server: retries, timeouts, an unreachable Jangar.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::adapter::jangar::{ApiError, Endpoint, JangarClient};

/// Serves `/api/torghut/ta/*`: 500 for the first `failures` requests, then 200 (or never
/// answers when `hang`).
async fn server(failures: usize, hang: bool) -> (String, Arc<AtomicUsize>) {
    use axum::routing::get;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/api/torghut/ta/{endpoint}",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                let status = if n < failures { 500 } else { 200 };
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    json!({"ok": status == 200, "message": "ClickHouse request failed (500): boom"})
                        .to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn a_5xx_is_retried_up_to_the_bound_and_recorded() {
    let (url, hits) = server(1, false).await;
    let client = JangarClient::new(&url, Duration::from_secs(2), 2).unwrap();
    let reply = client.get(Endpoint::Bars, &[("symbol", "S")]).await;
    assert_eq!(reply.result.unwrap().status, 200);
    assert_eq!(reply.attempts, 2);
    let (url, hits_always) = server(usize::MAX, false).await;
    let client = JangarClient::new(&url, Duration::from_secs(2), 2).unwrap();
    let reply = client.get(Endpoint::Signals, &[]).await;
    assert_eq!(reply.result.as_ref().unwrap().status, 500);
    assert_eq!(hits_always.load(Ordering::SeqCst), 3, "1 try + 2 retries");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let history = client.history();
    assert_eq!(history[0].request, "/api/torghut/ta/signals");
    let outcomes: Vec<&str> = history[0]
        .attempts
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["500 ClickHouse request failed (500): boom"; 3]);
    assert!(
        reply.describe().ends_with("(3 attempts)"),
        "{}",
        reply.describe()
    );
}

#[tokio::test]
async fn a_hung_endpoint_times_out_once_then_is_skipped() {
    let (url, hits) = server(0, true).await;
    let client = JangarClient::new(&url, Duration::from_millis(200), 2).unwrap();
    let started = Instant::now();
    let first = client.get(Endpoint::Latest, &[("symbol", "S")]).await;
    assert!(
        matches!(first.result, Err(ApiError::Timeout(_))),
        "{first:?}"
    );
    assert_eq!(first.attempts, 1, "a timeout already spent the budget");
    let second = client.get(Endpoint::Latest, &[("symbol", "T")]).await;
    assert!(matches!(
        second.result,
        Err(ApiError::Skipped(Endpoint::Latest))
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(client.history().len(), 2);
}

#[tokio::test]
async fn an_unreachable_jangar_is_a_connect_error_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = JangarClient::new(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(1),
        1,
    )
    .unwrap();
    let reply = client.get(Endpoint::Bars, &[]).await;
    assert!(
        matches!(reply.result, Err(ApiError::Connect(_))),
        "{reply:?}"
    );
    assert_eq!(reply.attempts, 2);
}
