//! A Prometheus Pushgateway: the run's metrics pushed in the text format.

use std::time::Duration;

use crate::config::BasicAuth;

#[derive(Debug, thiserror::Error)]
#[error("pushgateway {url}: {message}")]
pub struct PushError {
    pub url: String,
    pub message: String,
}

/// Pushes `text` to `url` (a grouping key's URL, see `report::metrics::push_url`) with POST: it
/// replaces only the metric names pushed, so a failed run (which pushes no last-success gauge)
/// leaves the previous success time in place. `url` carries no credentials: they come as
/// `auth` (taken out of the `--pushgateway` URL when the outputs were checked).
pub async fn push(url: &str, auth: Option<&BasicAuth>, text: String) -> Result<(), PushError> {
    let fail = |message: String| PushError {
        url: url.to_string(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(BasicAuth::headers(auth))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .post(url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(text)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(fail(format!("HTTP {status}: {}", body.trim())))
    }
}
