//! `torghut-e2e oracle`.
use crate::cli::{OracleArgs, Outcome};

pub fn run(_args: &OracleArgs) -> Outcome {
    Outcome::UsageOrConfig
}
