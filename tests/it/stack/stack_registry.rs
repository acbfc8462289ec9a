//! The stack's schema registry through the validator's client: a topic's newest writer schema,
//! learnt by subject before a run publishes, decodes its records without asking the registry
//! by id once the run's evidence is in. Requests go through a forwarder that records their
//! paths, so the test sees which round trips were made.

use std::sync::{Arc, Mutex};

use torghut_e2e::adapter::registry::Registry;

use crate::common;

/// The stack's registry (the Confluent API root).
fn registry_url() -> String {
    std::env::var("TORGHUT_E2E_SCHEMA_REGISTRY_URL")
        .expect("the stack's registry (scripts/stack up starts one; eval \"$(scripts/stack env)\")")
}

/// Registers `schema` under `subject` on the real registry; its id.
async fn register(subject: &str, schema: &str) -> u32 {
    let url = format!("{}/subjects/{subject}/versions", registry_url());
    let body = serde_json::json!({ "schema": schema });
    let answer: serde_json::Value = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&body)
        .send()
        .await
        .expect("registry reachable")
        .json()
        .await
        .expect("registry answer");
    answer["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id: {answer}")) as u32
}

/// A forwarder to the real registry that records each request's path; its base URL.
async fn recording(paths: Arc<Mutex<Vec<String>>>) -> String {
    let upstream = registry_url();
    let forward = move |uri: axum::http::Uri| {
        let (paths, upstream) = (paths.clone(), upstream.clone());
        async move {
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            paths.lock().unwrap().push(path.clone());
            let answer = reqwest::get(format!("{upstream}{path}")).await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            (axum::http::StatusCode::from_u16(status).unwrap(), body)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(forward)).await });
    format!("http://{addr}")
}

fn record(name: &str) -> String {
    format!(
        r#"{{"type":"record","name":"{name}","namespace":"t2e.test","fields":[{{"name":"x","type":"long"}}]}}"#
    )
}

#[tokio::test]
async fn a_subjects_newest_schema_is_learnt_once_and_needs_no_fetch_by_id() {
    let subject = format!("{}-value", common::unique("t2e.registry"));
    let learnt_id = register(&subject, &record("Learnt")).await;
    let paths = Arc::new(Mutex::new(Vec::new()));
    let registry = Registry::new(&recording(paths.clone()).await, None, common::TIMEOUT).unwrap();

    assert!(
        registry.learn_latest(&subject).await,
        "{:?}",
        paths.lock().unwrap()
    );
    let schema = registry.schema(learnt_id).await.expect("the learnt schema");
    assert_eq!(schema.name().map(|n| n.name.as_str()), Some("Learnt"));
    assert_eq!(
        *paths.lock().unwrap(),
        [format!("/subjects/{subject}/versions/latest")],
        "the learnt id was fetched again"
    );

    // A subject the registry does not have teaches nothing; an id not learnt is fetched.
    let missing = format!("{}-value", common::unique("t2e.registry.none"));
    assert!(!registry.learn_latest(&missing).await);
    let other_subject = format!("{}-value", common::unique("t2e.registry"));
    let other_id = register(&other_subject, &record("Other")).await;
    assert_ne!(other_id, learnt_id);
    let other = registry.schema(other_id).await.expect("fetched by id");
    assert_eq!(other.name().map(|n| n.name.as_str()), Some("Other"));
    assert_eq!(
        paths.lock().unwrap().last(),
        Some(&format!("/schemas/ids/{other_id}"))
    );
}
