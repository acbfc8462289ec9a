//! The validator's model of the pipeline: what the forwarder writes (`envelope`), what the TA
//! job must write for it (`oracle`, `model`), what a run publishes (`scenario`, `symbols`,
//! `publish`, `pool`), how it judges what it finds (`compare`, `diagnose`, `latency`) and the
//! report it gives (`report`).
//!
//! Pure: no network, no waiting, no process. The validator (`torghut-e2e`, which re-exports
//! this crate as `torghut_e2e::domain`) does the talking; this crate's unit and golden tests
//! build without librdkafka, the HTTP clients or the WebDriver client. The optional
//! `clickhouse` feature derives the `clickhouse` crate's `Row` for the table rows, so the
//! validator and the reference stack read and write them as they are.

pub mod audit;
pub mod compare;
pub mod diagnose;
pub mod envelope;
pub mod latency;
pub mod model;
pub mod oracle;
pub mod outputs;
pub mod pool;
pub mod publish;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod symbols;
