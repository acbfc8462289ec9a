//! The oracle: expected `ta_microbars` / `ta_signals` rows from known trades and quotes.
pub mod cli;
