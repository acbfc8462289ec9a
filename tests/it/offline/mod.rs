//! Tests that need no stack: the oracle against its properties and ta4j's golden data, the
//! readers of untrusted input, hostile command lines (every target a closed port) and the
//! deployment manifests.

mod deploy_manifests;
mod hardening;
mod input_fuzz;
mod oracle_golden;
mod oracle_props;
