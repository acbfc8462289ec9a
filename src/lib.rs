//! torghut-e2e: a synthetic end-to-end validator for the Torghut market-data pipeline.
//!
//! The tree is the validator's layers, each using only those below it (`src/layers.rs`
//! fails on an import against the grain):
//!
//! | layer | what |
//! | --- | --- |
//! | [`cli`] | the verbs, their options and exit codes; the outputs a run writes; the terminal |
//! | [`report`] | the report's writers: console, JUnit, HTML, Prometheus metrics |
//! | [`suite`] | a run: preflight, each scenario (plan, publish, poll, judge) against two seams, the pool, the ledger |
//! | [`stage`] | the hops after ClickHouse: the Jangar API, the charts page in a browser |
//! | [`adapter`] | one module per system the validator talks to: Kafka, ClickHouse, WebDriver, Jangar, a Pushgateway |
//! | [`config`] | where the targets are and how to reach them |
//! | [`domain`] | the pure model (crate `torghut-e2e-domain`): envelopes, oracle, scenarios, comparison, diagnosis, the report |
//!
//! Data flows down the table when a run starts and back up as the report.

/// `println!` that a closed stdout cannot turn into a panic (see [`cli::stdio`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::stdio::out(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics and never prints a secret (see [`cli::stdio`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::stdio::err(format_args!($($arg)*))
    };
}

pub use torghut_e2e_domain as domain;

pub mod adapter;
pub mod cli;
pub mod config;
#[cfg(test)]
mod layers;
pub mod report;
pub mod stage;
pub mod suite;
