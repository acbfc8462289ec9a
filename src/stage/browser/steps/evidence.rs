//! A step's evidence: screenshots, console lines and API answers saved, and the stage's report
//! assembled from the steps.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::calls::json_of;
use super::step::Step;
use super::Checklist;
use crate::domain::report::StageReport;
use crate::stage::browser::proxy::Exchange;
use crate::stage::browser::session::ConsoleEntry;

impl<'a> Checklist<'a> {
    /// The step's screenshot (named `-failed` when it failed), its extra files, and the console
    /// lines it produced.
    pub(super) async fn capture(&mut self, step: Step, failed: bool) -> Vec<String> {
        let mut evidence = Vec::new();
        let name = format!(
            "{:02}-{}{}.png",
            step.number(),
            step.slug(),
            if failed { "-failed" } else { "" }
        );
        match self.session.screenshot().await {
            Ok(png) => evidence.extend(self.write(&name, &png)),
            Err(e) => tracing::warn!(step = %step.name(), error = %e, "no screenshot"),
        }
        evidence.append(&mut self.evidence);
        match self.session.console().await {
            Ok(lines) => self.console.extend(lines.into_iter().map(|mut l| {
                l.step = step.name();
                l
            })),
            Err(e) => tracing::debug!(error = %e, "no console log"),
        }
        evidence
    }

    pub(super) async fn screenshot_extra(&mut self, name: &str) {
        if let Ok(png) = self.session.screenshot().await {
            if let Some(path) = self.write(name, &png) {
                self.evidence.push(path);
            }
        }
    }

    pub(super) fn save_json(&mut self, name: &str, exchange: &Exchange) {
        let body = json!({
            "request": exchange.target(),
            "status": exchange.status,
            "body": json_of(exchange),
        });
        if let Ok(bytes) = serde_json::to_vec_pretty(&body) {
            if let Some(path) = self.write(name, &bytes) {
                self.evidence.push(path);
            }
        }
    }

    /// Writes an evidence file; its name relative to the artifacts directory.
    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> Option<String> {
        let path = self.artifacts.join(name);
        match std::fs::write(&path, bytes) {
            Ok(()) => Some(name.to_string()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write evidence");
                None
            }
        }
    }

    /// Writes the run-wide evidence, fills `observed`, and closes the browser.
    pub(super) async fn finish(
        self,
        report: &mut StageReport,
        steps_ms: BTreeMap<String, Value>,
        started: Instant,
    ) {
        let errors: Vec<&ConsoleEntry> = self
            .console
            .iter()
            .filter(|c| matches!(c.level.as_str(), "SEVERE" | "WARNING"))
            .collect();
        if let Ok(bytes) = serde_json::to_vec_pretty(&errors) {
            self.write("console.json", &bytes);
        }
        let log = self.proxy.log();
        if let Ok(bytes) = serde_json::to_vec_pretty(&log) {
            self.write("proxy-log.json", &bytes);
        }
        let severe = errors.iter().filter(|c| c.level == "SEVERE").count();
        let checklist_ms: u64 = steps_ms.values().filter_map(Value::as_u64).sum();
        let o = &mut report.observed;
        o.extend(self.symbol_facts());
        for (key, value) in [
            ("page_model", json!(self.model.name)),
            ("jangar", json!(self.proxy.upstream())),
            ("proxy", json!(self.proxy.url())),
            ("webdriver", json!(self.session.webdriver_url)),
            (
                "started_chromedriver",
                json!(self.session.started_chromedriver()),
            ),
            ("session_ms", json!(self.session_ms)),
            ("checklist_ms", json!(checklist_ms)),
            ("stage_ms", json!(started.elapsed().as_millis() as u64)),
            ("steps_ms", json!(steps_ms)),
            ("quirks", json!(self.quirks)),
            ("symbols_added_by_proxy", json!(self.symbols_added)),
            ("console_errors", json!(severe)),
            (
                "api_calls",
                json!(log.iter().filter(|c| c.is_api()).count()),
            ),
        ] {
            o.insert(key.into(), value);
        }
        if let Some(api) = self.api_stage {
            o.insert("api_stage".into(), json!(api.verdict));
        }
        if let Some(tri) = &self.triangulation {
            o.insert("triangulation".into(), tri.clone());
        }
        self.session.close().await;
    }

    pub(super) fn symbol_facts(&self) -> Vec<(String, Value)> {
        match &self.chosen {
            Ok(c) => vec![
                ("symbol".into(), json!(c.symbol)),
                (
                    "symbol_source".into(),
                    json!(if c.synthetic { "synthetic" } else { "live" }),
                ),
                (
                    "symbol_listed_by".into(),
                    json!(if self.proxy_added(&c.symbol) {
                        "the validator's proxy"
                    } else {
                        "Jangar"
                    }),
                ),
            ],
            Err(none) => vec![
                ("symbol".into(), Value::Null),
                ("symbol_problem".into(), json!(none.why)),
            ],
        }
    }
}
