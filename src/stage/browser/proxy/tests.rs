use super::serve::add_symbols;
use super::*;
use axum::routing::get;
use serde_json::json;

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
