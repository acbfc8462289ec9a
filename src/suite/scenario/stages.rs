//! The stages after ClickHouse, as the runner sees them: a seam given what the ClickHouse stage
//! established ([`Ran`]); the live one runs the Jangar API stage, then the charts page.

use std::collections::BTreeMap;
use std::future::Future;

use crate::adapter::clickhouse::ClickHouse;
use crate::config::Config;
use crate::domain::model::{Microbar, Signal};
use crate::domain::report::StageReport;
use crate::domain::scenario::Scenario;
use crate::domain::symbols::RunId;
use crate::stage::StageContext;

/// What the ClickHouse stage established, for the stages after it.
pub struct Ran<'a> {
    pub scenario: &'a Scenario,
    /// Scenario alias → symbol.
    pub symbols: &'a BTreeMap<String, String>,
    /// The oracle's rows (`ingest_ts` unknown).
    pub expected_bars: &'a [Microbar],
    pub expected_signals: &'a [Signal],
    /// The rows ClickHouse holds (FINAL, PT1S signals) at the end of the ClickHouse stage.
    pub stored_bars: &'a [Microbar],
    pub stored_signals: &'a [Signal],
}

/// The stages a scenario asks for after ClickHouse.
pub trait Stages {
    fn run(&self, ran: &Ran<'_>) -> impl Future<Output = Vec<StageReport>>;
}

/// The live stages, against the configured Jangar and WebDriver.
pub struct LiveStages<'a> {
    pub config: &'a Config,
    pub run_id: &'a RunId,
    pub clickhouse: &'a ClickHouse,
}

impl Stages for LiveStages<'_> {
    async fn run(&self, ran: &Ran<'_>) -> Vec<StageReport> {
        let ctx = StageContext {
            config: self.config,
            scenario: ran.scenario,
            run_id: self.run_id,
            symbols: ran.symbols,
            expected_bars: ran.expected_bars,
            expected_signals: ran.expected_signals,
            stored_bars: ran.stored_bars,
            stored_signals: ran.stored_signals,
            clickhouse: self.clickhouse,
            artifacts: self
                .config
                .artifacts_dir
                .join(self.run_id.as_str())
                .join(&ran.scenario.name),
        };
        crate::stage::after_clickhouse(&ctx).await
    }
}
