//! No secret in any output: one real run against the local stack (Kafka with SASL, ClickHouse,
//! the stand-in Jangar through the API stage, a Pushgateway) with a different secret planted in
//! every secret-bearing input, and every output searched for each of them: stdout, stderr at
//! debug level (`RUST_LOG=debug`: HTTP client and librdkafka lines included), the JSON report,
//! JUnit, HTML, metrics, and every file of the artifacts directory.
//!
//! | input | secret |
//! | --- | --- |
//! | Kafka SASL password, from a password file (`TORGHUT_E2E_KAFKA_PASSWORD_FILE`) | the stack's |
//! | ClickHouse password, as user info of `clickhouse.url` in the config file | the stack's |
//! | Jangar base URL user info, from the environment (`TORGHUT_E2E_JANGAR_URL`) | a canary |
//! | Jangar base URL user info in the config file (overridden by the environment) | a canary |
//! | the variable the config names for the Kafka password (`password_env`, overridden) | a canary |
//! | Pushgateway basic auth, as user info of `--pushgateway` | a canary |
//!
//! The Kafka and ClickHouse secrets must be the real ones (the run has to authenticate): they
//! are the stack's `STACK_KAFKA_PASSWORD` and `STACK_CH_PASSWORD` (the same string unless the
//! stack was started with two). Jangar is reached through a proxy in this test that refuses any
//! call without the planted basic auth, and the Pushgateway is this test's: so the run proves
//! that the URL credentials travelled as authentication, not only that they were not printed.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn canary(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("Cnry-{label}-{}-{nanos:09}", std::process::id())
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// What the test's Jangar proxy and Pushgateway saw.
#[derive(Default)]
struct Seen {
    jangar_authorized: AtomicUsize,
    jangar_refused: AtomicUsize,
    pushes: Mutex<Vec<Option<String>>>,
}

#[derive(Clone)]
struct Gate {
    upstream: String,
    expected: String,
    client: reqwest::Client,
    seen: Arc<Seen>,
}

/// Forwards to the stand-in Jangar only with the expected basic auth.
async fn jangar_gate(State(gate): State<Gate>, request: Request) -> Response {
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == gate.expected.as_bytes());
    if !authorized {
        gate.seen.jangar_refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "basic auth required").into_response();
    }
    gate.seen.jangar_authorized.fetch_add(1, Ordering::Relaxed);
    let target = format!(
        "{}{}",
        gate.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    match gate.client.get(&target).send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let mut headers = HeaderMap::new();
            if let Some(ct) = r.headers().get("content-type") {
                headers.insert("content-type", ct.to_str().unwrap().parse().unwrap());
            }
            let body = r.bytes().await.unwrap_or_default();
            (status, headers, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn pushgateway(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    _body: Bytes,
) -> &'static str {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    seen.pushes.lock().unwrap().push(auth);
    ""
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

#[test]
fn no_planted_secret_reaches_any_output() {
    let dir = std::env::temp_dir().join(common::unique("t2e-leak"));
    std::fs::create_dir_all(&dir).unwrap();
    let kafka_pw = var("STACK_KAFKA_PASSWORD", "torghut-e2e-local");
    let ch_pw = var("STACK_CH_PASSWORD", "torghut-e2e-local");
    let ch_user = var("STACK_CH_USER", "torghut");
    let jangar_env = canary("jangar-env");
    let jangar_file = canary("jangar-file");
    let named_env = canary("named-env");
    let push = canary("pushgateway");
    let registry_pw = canary("registry");
    // The stack's schema registry, when it runs one: reached with credentials in its URL.
    let registry = std::env::var("TORGHUT_E2E_SCHEMA_REGISTRY_URL")
        .ok()
        .filter(|u| !u.is_empty());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Seen::default());
    let gate = Gate {
        upstream: common::jangar_url(),
        expected: basic("jangar-e2e", &jangar_env),
        client: reqwest::Client::new(),
        seen: seen.clone(),
    };
    let serve = |app: axum::Router| {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        addr
    };
    let jangar = serve(axum::Router::new().fallback(jangar_gate).with_state(gate));
    let gateway = serve(
        axum::Router::new()
            .route("/metrics/{*rest}", axum::routing::any(pushgateway))
            .with_state(seen.clone()),
    );
    // The gate refuses a call without the credentials: what it counts below is meaningful.
    let refused = rt
        .block_on(reqwest::get(format!("http://{jangar}/health")))
        .unwrap();
    assert_eq!(refused.status(), 401);

    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let kafka_file = dir.join("kafka-password");
    std::fs::write(&kafka_file, format!("{kafka_pw}\n")).unwrap();
    let config = dir.join("leak.toml");
    std::fs::write(
        &config,
        format!(
            "connect_timeout_ms = 5000\n\
             [kafka]\npassword_env = \"T2E_LEAK_NAMED_PASSWORD\"\n\
             [clickhouse]\nurl = \"http://{ch_user}:{}@127.0.0.1:{}\"\n\
             [jangar]\nbase_url = \"http://file-user:{}@127.0.0.1:1\"\n",
            enc(&ch_pw),
            var("STACK_CH_PORT", "8123"),
            enc(&jangar_file),
        ),
    )
    .unwrap();
    // Real-time pacing: the shared simulation lane carries other tests' runs meanwhile.
    let scenario = dir.join("leak.toml.scenario");
    std::fs::write(
        &scenario,
        r#"name = "leak-probe"
symbols = ["LEAK"]
stages = ["clickhouse", "api"]
pacing = "realtime"
deadline_secs = 30
[[generators]]
kind = "ramp"
symbol = "LEAK"
seconds = 4
per_second = 2
price = 20.0
step = 0.01
size = 2.0
"#,
    )
    .unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TORGHUT_E2E_") {
            cmd.env_remove(k);
        }
    }
    let k = common::kafka_sasl();
    let report = |name: &str| dir.join(name);
    if let Some(url) = &registry {
        let with_user = url.replacen("://", &format!("://reg-user:{}@", enc(&registry_pw)), 1);
        cmd.env("TORGHUT_E2E_SCHEMA_REGISTRY_URL", with_user);
    }
    let out = cmd
        .arg("-v")
        .arg("run")
        .arg(&scenario)
        .arg("--config")
        .arg(&config)
        .arg("--report-json")
        .arg(report("report.json"))
        .arg("--junit")
        .arg(report("junit.xml"))
        .arg("--html")
        .arg(report("report.html"))
        .arg("--metrics")
        .arg(report("metrics.prom"))
        .arg("--pushgateway")
        .arg(format!("http://pg-user:{}@{gateway}", enc(&push)))
        .envs([
            ("RUST_LOG", "debug"),
            ("TORGHUT_E2E_KAFKA_BOOTSTRAP", k.bootstrap.as_str()),
            ("TORGHUT_E2E_KAFKA_USERNAME", k.username.as_str()),
            (
                "TORGHUT_E2E_KAFKA_PASSWORD_FILE",
                kafka_file.to_str().unwrap(),
            ),
            ("T2E_LEAK_NAMED_PASSWORD", named_env.as_str()),
            (
                "TORGHUT_E2E_JANGAR_URL",
                &format!("http://jangar-e2e:{}@{jangar}", enc(&jangar_env)),
            ),
            (
                "TORGHUT_E2E_ARTIFACTS_DIR",
                dir.join("artifacts").to_str().unwrap(),
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown = || {
        format!(
            "exit {:?}\n{stdout}\n--- stderr (tail) ---\n{}",
            out.status.code(),
            tail(&stderr)
        )
    };

    // No secret, in any spelling, anywhere (searched first: a run that failed early must not
    // have printed one either).
    let secrets = [
        ("kafka password (password file)", kafka_pw.clone(), None),
        (
            "clickhouse password (URL user info)",
            ch_pw.clone(),
            Some(ch_user.as_str()),
        ),
        (
            "jangar URL user info (env)",
            jangar_env.clone(),
            Some("jangar-e2e"),
        ),
        (
            "jangar URL user info (config file)",
            jangar_file.clone(),
            Some("file-user"),
        ),
        ("named password variable (env)", named_env.clone(), None),
        ("pushgateway auth", push.clone(), Some("pg-user")),
        (
            "schema registry URL user info",
            registry_pw.clone(),
            Some("reg-user"),
        ),
    ];
    let mut outputs: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), out.stdout.clone()),
        ("stderr".into(), out.stderr.clone()),
    ];
    for name in ["report.json", "junit.xml", "report.html", "metrics.prom"] {
        let bytes = std::fs::read(report(name));
        outputs.push((
            name.into(),
            bytes.unwrap_or_else(|e| panic!("{name}: {e}\n{}", shown())),
        ));
    }
    let artifacts = files(&dir.join("artifacts"));
    for f in &artifacts {
        outputs.push((f.display().to_string(), std::fs::read(f).unwrap()));
    }
    let mut leaks = Vec::new();
    for (what, secret, user) in &secrets {
        let mut forms = vec![secret.clone(), enc(secret)];
        if let Some(user) = user {
            forms.push(basic(user, secret).trim_start_matches("Basic ").to_string());
        }
        for (name, bytes) in &outputs {
            for form in &forms {
                if contains(bytes, form) {
                    leaks.push(format!("{what} in {name}"));
                }
            }
        }
    }
    leaks.dedup();
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}\n{}", shown());

    // The run really talked to every target, with the credentials taken from the URLs.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", shown());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report("report.json")).unwrap()).unwrap();
    for p in json["preflight"].as_array().unwrap() {
        assert_eq!(p["ok"], true, "{p}");
    }
    let components: Vec<&str> = json["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["component"].as_str().unwrap())
        .collect();
    let mut expected = vec!["kafka", "clickhouse", "jangar", "ta-outputs"];
    expected.extend(registry.as_ref().map(|_| "registry"));
    assert_eq!(components, expected, "{}", shown());
    let published = json["scenarios"][0]["messages_published"].as_u64().unwrap();
    assert!(published >= 8, "{}", shown());
    assert!(
        seen.jangar_authorized.load(Ordering::Relaxed) > 5,
        "the API stage did not reach Jangar with its credentials: {}",
        shown()
    );
    assert_eq!(
        seen.jangar_refused.load(Ordering::Relaxed),
        1,
        "only the test's own call"
    );
    let pushes = seen.pushes.lock().unwrap().clone();
    assert_eq!(pushes, vec![Some(basic("pg-user", &push))], "{}", shown());
    assert!(
        stderr.contains("DEBUG"),
        "debug logging was not on: {}",
        shown()
    );
    assert!(!artifacts.is_empty(), "the run wrote no evidence");

    eprintln!(
        "searched {} outputs ({} bytes of stderr at debug level) for {} secrets",
        outputs.len(),
        out.stderr.len(),
        secrets.len()
    );
    drop(rt);
    std::fs::remove_dir_all(dir).ok();
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
