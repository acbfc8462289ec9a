//! The CI and operations outputs of a red run: a private stand-in TA job with wrong EMA maths
//! makes the run fail, and the JUnit file, the Prometheus metrics (file and Pushgateway push)
//! and the HTML evidence report must each show it. One red run is shared by every test here.

use crate::common;
use crate::common::refstack;

use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State};
use axum::http::Method;
use refstack::PrivateTa;

/// What a fake Pushgateway received: method, path, body.
type Pushes = Arc<Mutex<Vec<(String, String, String)>>>;

struct RedRun {
    out: Output,
    dir: PathBuf,
    pushes: Pushes,
    /// Keeps the fake Pushgateway's runtime alive for the whole test binary.
    _rt: tokio::runtime::Runtime,
}

impl RedRun {
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", self.shown()))
    }

    fn shown(&self) -> String {
        format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

async fn record(
    State(pushes): State<Pushes>,
    method: Method,
    Path(rest): Path<String>,
    body: String,
) -> &'static str {
    pushes
        .lock()
        .unwrap()
        .push((method.to_string(), format!("/metrics/{rest}"), body));
    ""
}

fn red_run() -> &'static RedRun {
    static RUN: OnceLock<RedRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let pushes: Pushes = Arc::default();
        let app = axum::Router::new()
            .route("/metrics/{*rest}", axum::routing::any(record))
            .with_state(pushes.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let gateway = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        let dir = std::env::temp_dir().join(common::unique("t2e-outputs"));
        std::fs::create_dir_all(&dir).unwrap();
        let ta = rt.block_on(PrivateTa::start(&["--wrong-math", "ema_sma_seed"]));
        let scenario = refstack::short_scenario("red-probe");
        let out = ta
            .command("run", &scenario)
            .arg("--report-json")
            .arg(dir.join("report.json"))
            .arg("--junit")
            .arg(dir.join("junit.xml"))
            .arg("--metrics")
            .arg(dir.join("metrics.prom"))
            .arg("--html")
            .arg(dir.join("report.html"))
            .args(["--pushgateway", &gateway])
            .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"))
            .output()
            .unwrap();
        drop(ta);
        RedRun {
            out,
            dir,
            pushes,
            _rt: rt,
        }
    })
}

/// Every `<testcase>` with its failure, if any: (name, failure message, failure text).
fn testcases(xml: &str) -> Vec<(String, Option<String>, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut in_failure = false;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let name = attr(&e, b"name").expect("a test case has a name");
                cases.push((name, None, String::new()));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"failure" => {
                in_failure = true;
                cases.last_mut().unwrap().1 = attr(&e, b"message");
            }
            Event::End(e) if e.name().as_ref() == b"failure" => in_failure = false,
            Event::Text(t) if in_failure => {
                let text = t.decode().unwrap();
                cases.last_mut().unwrap().2.push_str(&text);
            }
            Event::GeneralRef(r) if in_failure => {
                // Entities (&gt; ...) arrive apart from the text around them.
                let name = String::from_utf8_lossy(&r).to_string();
                cases.last_mut().unwrap().2.push_str(&format!("&{name};"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    cases
}

fn attr(e: &quick_xml::events::BytesStart, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                .unwrap()
                .to_string()
        })
}

#[test]
fn junit_marks_the_red_run_failed_with_message_and_evidence() {
    let run = red_run();
    assert_eq!(run.out.status.code(), Some(1), "{}", run.shown());
    let xml = run.file("junit.xml");
    let cases = testcases(&xml);
    let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    for expected in [
        "kafka",
        "clickhouse",
        "clickhouse ta_microbars",
        "clickhouse ta_signals",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let signals = cases
        .iter()
        .find(|c| c.0 == "clickhouse ta_signals")
        .unwrap();
    let message = signals.1.as_deref().expect("ta_signals is a failure");
    assert!(message.contains("differ"), "{message}");
    assert!(signals.2.contains("ema12"), "{}", signals.2);
    assert!(
        signals.2.contains("report.json"),
        "the failure points at the JSON report: {}",
        signals.2
    );
    let diagnosis = cases.iter().find(|c| c.0 == "diagnosis ta_job").unwrap();
    assert!(diagnosis.1.as_deref().unwrap().contains("ema12"));
    // CI marks a file failed by these counters.
    let root = xml
        .lines()
        .find(|l| l.contains("<testsuites"))
        .expect("a testsuites root");
    assert!(!root.contains("failures=\"0\""), "{root}");
}

#[test]
fn metrics_file_parses_and_shows_the_failure() {
    let run = red_run();
    let text = run.file("metrics.prom");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, check: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && check.is_none_or(|c| s.labels.get("check") == Some(c)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("{name} {check:?} missing:\n{text}"))
    };
    assert_eq!(value("torghut_e2e_run_success", None), 0.0);
    assert_eq!(value("torghut_e2e_run_exit_code", None), 1.0);
    assert!(value("torghut_e2e_run_duration_seconds", None) > 0.0);
    assert_eq!(
        value("torghut_e2e_check_success", Some("clickhouse ta_signals")),
        0.0
    );
    assert_eq!(
        value("torghut_e2e_check_success", Some("clickhouse ta_microbars")),
        1.0
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "torghut_e2e_hop_latency_seconds"
                && s.labels.get("hop") == Some("publish_to_visible")
        })
        .unwrap_or_else(|| panic!("latency histogram missing:\n{text}"));
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.last().unwrap();
            assert!(
                inf.less_than.is_infinite() && inf.count >= 6.0,
                "{buckets:?}"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // No success yet in this fresh file: the gauge is absent rather than zero.
    assert!(!text.contains("torghut_e2e_last_success_timestamp_seconds "));
}

#[test]
fn metrics_are_pushed_to_the_pushgateway() {
    let run = red_run();
    let pushes = run.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1, "{pushes:?}\n{}", run.shown());
    let (method, path, body) = &pushes[0];
    assert_eq!(method, "POST");
    assert_eq!(path, "/metrics/job/torghut-e2e/lane/sim");
    assert!(body.contains("torghut_e2e_run_success 0"), "{body}");
    assert_eq!(body, &run.file("metrics.prom"), "file and push agree");
}

#[test]
fn html_report_shows_the_divergence_at_a_glance_and_no_secret() {
    let run = red_run();
    let html = run.file("report.html");
    assert!(html.starts_with("<!doctype html>"));
    // Self-contained: nothing is fetched.
    for external in ["<script", "<link", "src=\"http", "href=\"http"] {
        assert!(!html.contains(external), "{external} in the report");
    }
    let banner = html.find("First divergence").expect("a divergence box");
    assert!(
        banner < html.find("<svg").unwrap(),
        "the divergence is the first thing under the scenario's title"
    );
    let divergence = &html[banner..banner + 400];
    assert!(divergence.contains("ta_signals"), "{divergence}");
    assert!(
        ["ema12", "ema26", "macd"]
            .iter()
            .any(|c| divergence.contains(c)),
        "{divergence}"
    );
    assert!(html.contains("first divergence: "), "marked on the plot");
    assert!(html.contains("<polyline"), "indicator lines are drawn");
    assert!(html.contains("latency waterfall"));
    assert!(html.contains("SQL used") && html.contains("ta_signals FINAL"));
    assert!(html.contains("Retry history"));
    let password = common::clickhouse("x").password.expose().to_string();
    assert!(!password.is_empty());
    assert!(!html.contains(&password), "the ClickHouse password leaked");
    let kafka = common::kafka_sasl().password.expose().to_string();
    assert!(!html.contains(&kafka), "the Kafka password leaked");
    // The JUnit failures point at the HTML report too.
    assert!(run.file("junit.xml").contains("report.html"));
}
