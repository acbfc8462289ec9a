//! The `preflight` verb: every target answers, authenticates and has what a run needs.

use std::path::PathBuf;

use super::Outcome;

/// What `preflight` probes, and how.
#[derive(Debug, Clone, Default)]
pub struct PreflightOptions {
    /// Config file; `TORGHUT_E2E_*` variables override it.
    pub config: Option<PathBuf>,
    /// Bound for each probe (overrides the config's `connect_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Skip the WebDriver probe.
    pub no_webdriver: bool,
}

/// Probes every target and prints one line per component.
pub fn run(args: &PreflightOptions) -> Outcome {
    let mut config = match crate::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            errln!("torghut-e2e: {e}");
            return Outcome::UsageOrConfig;
        }
    };
    if let Some(ms) = args.timeout_ms {
        config.connect_timeout = std::time::Duration::from_millis(ms);
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("torghut-e2e: cannot start the async runtime: {e}");
            return Outcome::Unreachable;
        }
    };
    let which = crate::suite::preflight::Components {
        kafka: true,
        clickhouse: true,
        webdriver: !args.no_webdriver,
        jangar: true,
        outputs: true,
    };
    let checks = rt.block_on(crate::suite::preflight::run(&config, which));
    for check in &checks {
        outln!("{check}");
    }
    if checks.iter().all(|c| c.ok) {
        outln!("preflight: all {} components pass", checks.len());
        Outcome::Pass
    } else {
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.component)
            .collect();
        outln!("preflight: FAILED: {}", failed.join(", "));
        Outcome::Unreachable
    }
}
