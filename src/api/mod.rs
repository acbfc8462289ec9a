//! The Jangar API stage (issue 7). Placeholder until built: always fails, never passes.
use crate::stage::{StageContext, StageReport};

pub async fn run_stage(_ctx: &StageContext<'_>) -> StageReport {
    StageReport {
        stage: "api".into(),
        ..StageReport::default()
    }
    .conclude()
}
