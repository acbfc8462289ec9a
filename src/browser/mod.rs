//! The browser stage (issue 8). Placeholder until built: always fails, never passes.
use crate::stage::{StageContext, StageReport};

pub async fn run_stage(_ctx: &StageContext<'_>, _api: Option<&StageReport>) -> StageReport {
    StageReport {
        stage: "browser".into(),
        ..StageReport::default()
    }
    .conclude()
}
