//! The schema registry the TA job writes its outputs through (`pipeline.md` §1.3): the
//! Confluent API (`GET /schemas/ids/{id}`, `GET /subjects`), which Karapace serves at its root
//! and Apicurio under `/apis/ccompat/v7`. Writer schemas are cached per run: an id names one
//! schema forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use tokio::sync::Mutex;

use crate::config::BasicAuth;
use crate::domain::outputs::DecodeError;

/// A registry client with the run's schema cache.
pub struct Registry {
    base: String,
    auth: Option<BasicAuth>,
    http: reqwest::Client,
    /// Found schemas and ids the registry said it does not have (neither changes within a run);
    /// an unreachable registry is asked again.
    cache: Mutex<HashMap<u32, Result<Arc<Schema>, DecodeError>>>,
}

#[derive(serde::Deserialize)]
struct SchemaAnswer {
    schema: String,
}

#[derive(serde::Deserialize)]
struct LatestAnswer {
    id: u32,
    schema: String,
}

impl Registry {
    /// `base` is the Confluent-compatible root, without a trailing slash and without user info.
    pub fn new(base: &str, auth: Option<BasicAuth>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Registry {
            base: base.to_string(),
            auth,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => request.basic_auth(&a.user, Some(a.password.expose())),
            None => request,
        }
    }

    /// The writer schema with this id.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let mut cache = self.cache.lock().await;
        if let Some(known) = cache.get(&id) {
            return known.clone();
        }
        let found = self.fetch(id).await;
        if !matches!(found, Err(DecodeError::RegistryUnreachable { .. })) {
            cache.insert(id, found.clone());
        }
        found
    }

    /// Caches the newest schema of `subject` under its id, so that records written with it
    /// decode without a round trip to the registry when the run's evidence is in (a writer
    /// with another id is fetched then, as before). Whether it was cached: a registry without
    /// that subject, or not answering, is asked by id later instead.
    pub async fn learn_latest(&self, subject: &str) -> bool {
        let answer = match self
            .get(&format!("/subjects/{subject}/versions/latest"))
            .send()
            .await
        {
            Ok(a) if a.status().is_success() => a,
            _ => return false,
        };
        let Ok(latest) = answer.json::<LatestAnswer>().await else {
            return false;
        };
        let Ok(schema) = Schema::parse_str(&latest.schema) else {
            return false;
        };
        self.cache
            .lock()
            .await
            .entry(latest.id)
            .or_insert(Ok(Arc::new(schema)));
        true
    }

    async fn fetch(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let unreachable = |detail: String| DecodeError::RegistryUnreachable { id, detail };
        let answer = self
            .get(&format!("/schemas/ids/{id}"))
            .send()
            .await
            .map_err(|e| unreachable(crate::domain::redact::scrub_text(&e.to_string())))?;
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(DecodeError::UnknownSchemaId(id));
        }
        if !status.is_success() {
            return Err(unreachable(format!("HTTP {status}")));
        }
        let body: SchemaAnswer = answer
            .json()
            .await
            .map_err(|e| unreachable(format!("unreadable answer: {e}")))?;
        Schema::parse_str(&body.schema).map(Arc::new).map_err(|e| {
            DecodeError::Undecodable(format!("registry schema {id} does not parse: {e}"))
        })
    }

    /// Preflight: the registry answers `GET /subjects`; the number of subjects it lists.
    pub async fn probe(&self) -> Result<usize, String> {
        let answer = self
            .get("/subjects")
            .send()
            .await
            .map_err(|e| crate::domain::redact::scrub_text(&e.to_string()))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!("GET /subjects answered HTTP {status}"));
        }
        let subjects: Vec<String> = answer
            .json()
            .await
            .map_err(|e| format!("GET /subjects: unreadable answer: {e}"))?;
        Ok(subjects.len())
    }
}
