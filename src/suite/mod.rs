//! A run of the suite: preflight, then each scenario end to end.

pub mod ledger;
pub mod pool;
pub mod preflight;
pub mod scenario;
pub mod seam;
pub mod wait;
