//! torghut-e2e: a synthetic end-to-end validator for the Torghut market-data pipeline.
//!
//! The module tree follows the pipeline: configuration → envelope (what the forwarder writes) →
//! oracle (what the TA job must write) → kafka → clickhouse → webdriver, with `preflight`
//! checking each target before anything is published.

/// `println!` that a closed stdout cannot turn into a panic (see [`stdio`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdio::out(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics and never prints a secret (see [`stdio`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::stdio::err(format_args!($($arg)*))
    };
}

pub mod api;
pub mod audit;
pub mod browser;
pub mod canary;
pub mod cli;
pub mod clickhouse;
pub mod compare;
pub mod config;
pub mod diagnose;
pub mod envelope;
pub mod kafka;
pub mod latency;
pub mod model;
pub mod oracle;
pub mod outputs;
pub mod pool;
pub mod preflight;
pub mod progress;
pub mod publish;
pub mod redact;
pub mod report;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod stage;
pub mod stdio;
pub mod symbols;
pub mod wait;
pub mod webdriver;
