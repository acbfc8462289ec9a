//! The report's writers: the console summary (`console`), JUnit XML for CI (`junit`),
//! Prometheus metrics (`metrics`) and the self-contained HTML evidence report (`html`), all
//! rendered from the model in [`crate::domain::report`]. JUnit, metrics and the canary's history
//! share one flattening of the report into named checks (`checks`).

mod checks;
mod console;
pub mod html;
pub mod junit;
pub mod metrics;
#[cfg(test)]
pub(crate) mod sample;

pub use checks::{checks, hop_name, CheckKind, CheckStatus, NamedCheck, Suite};
pub use console::write_console;
