//! The stages after ClickHouse: what they get from a scenario run (their reports are in
//! [`crate::domain::report`]).
//!
//! The ClickHouse stage establishes the expected rows (oracle) and the stored rows (FINAL);
//! the API and browser stages observe the same bars one and two hops further on.

pub mod api;
pub mod browser;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::adapter::clickhouse::ClickHouse;
use crate::config::Config;
use crate::domain::model::{Microbar, Signal};
use crate::domain::report::StageReport;
use crate::domain::scenario::{Scenario, Stage};
use crate::domain::symbols::RunId;

/// Everything a later stage may use; borrowed from the run.
pub struct StageContext<'a> {
    pub config: &'a Config,
    pub scenario: &'a Scenario,
    pub run_id: &'a RunId,
    /// Scenario alias → synthetic symbol.
    pub symbols: &'a BTreeMap<String, String>,
    /// The oracle's rows (ingest_ts unknown).
    pub expected_bars: &'a [Microbar],
    pub expected_signals: &'a [Signal],
    /// The rows ClickHouse holds (FINAL, PT1S signals) at the end of the ClickHouse stage.
    pub stored_bars: &'a [Microbar],
    pub stored_signals: &'a [Signal],
    pub clickhouse: &'a ClickHouse,
    /// This scenario's evidence directory (created by the stage when it writes).
    pub artifacts: PathBuf,
}

/// The scenario's stages after ClickHouse: the API stage, then the browser stage (which may use
/// what the API returned).
pub async fn after_clickhouse(ctx: &StageContext<'_>) -> Vec<StageReport> {
    let mut stages = Vec::new();
    if ctx.scenario.stages.contains(&Stage::Api) {
        stages.push(api::run_stage(ctx).await);
    }
    if ctx.scenario.stages.contains(&Stage::Browser) {
        let api = stages.iter().find(|s| s.stage == "api");
        let browser = browser::run_stage(ctx, api).await;
        stages.push(browser);
    }
    stages
}
