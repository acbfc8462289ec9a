//! Writing what a run found: the console summary and every output asked for, each one whatever
//! happened to the others.

use crate::adapter::pushgateway;
use crate::cli::outputs::Outputs;
use crate::config::Config;
use crate::domain::redact;
use crate::domain::report::RunReport;
use crate::report;

/// What writing the outputs came to.
#[derive(Debug, Default)]
pub struct Written {
    /// The last-success time published in the metrics.
    pub last_success: Option<f64>,
    /// The outputs that could not be written, by flag (each error was printed).
    pub failed: Vec<String>,
}

/// Prints the console summary and writes every requested output: each one that can be
/// written is, whatever happened to the others; the failures are printed and listed. A closed
/// stdout is not a failure (`| head`). A Pushgateway that refuses the push is logged but does
/// not change the run's outcome.
pub async fn write_outputs(
    report: &RunReport,
    outputs: &Outputs,
    previous_success: Option<f64>,
    secrets: &[String],
) -> Written {
    let mut written = Written::default();
    let mut failed = |flag: &str, e: &dyn std::fmt::Display| {
        errln!("torghut-e2e: {flag}: {e}");
        written.failed.push(flag.to_string());
    };
    let mut console = Vec::new();
    let shown = report::write_console(report, &mut console).and_then(|()| {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(&console)
    });
    match shown {
        Err(e) if !crate::cli::stdio::is_closed_pipe(&e) => failed("stdout", &e),
        _ => {}
    }
    if let Some(path) = &outputs.report_json {
        let json = serde_json::to_string_pretty(report).map_err(std::io::Error::from);
        // Belt and braces: no configured secret reaches the file, whatever a stage recorded.
        let saved = json.and_then(|j| std::fs::write(path, redact::scrub_known(&j).as_bytes()));
        if let Err(e) = saved {
            failed(
                "--report-json",
                &format!("cannot write {}: {e}", path.display()),
            );
        }
    }
    if let Some(path) = &outputs.junit {
        let linked: Vec<String> = [&outputs.report_json, &outputs.html]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        if let Err(e) = report::junit::write(report, path, &linked) {
            failed("--junit", &e);
        }
    }
    if let Some(path) = &outputs.html {
        if let Err(e) = report::html::write(report, path, secrets) {
            failed("--html", &e);
        }
    }
    let last_success = report::metrics::last_success(report, previous_success);
    if outputs.metrics.is_some() || outputs.pushgateway.is_some() {
        let text = report::metrics::render(report, last_success);
        if let Some(path) = &outputs.metrics {
            if let Err(e) = report::metrics::write_file(path, &text) {
                failed("--metrics", &e);
            }
        }
        if let Some(gateway) = &outputs.pushgateway {
            let url = report::metrics::push_url(&gateway.url, report);
            match pushgateway::push(&url, gateway.auth.as_ref(), text).await {
                Ok(()) => tracing::info!(url = %gateway.url, "metrics pushed"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
    written.last_success = last_success;
    written
}

/// The configured secret values, for scrubbing them from what the run writes.
pub fn secrets(config: &Config) -> Vec<String> {
    config.secrets().into_iter().map(str::to_string).collect()
}
