//! Tests against the local stack (`scripts/stack up`): the stack's own parts, the validator's
//! verbs end to end, its stages and reports, and its behaviour when a target breaks.

mod api_stage;
mod audit;
mod browser_stage;
mod canary;
mod cli_preflight;
mod concurrency;
mod fault_matrix;
mod kafka_outputs;
mod newcomer;
mod outputs_check;
mod pool;
mod report_outputs;
mod run_scenarios;
mod secrets_leak;
mod stack_browser;
mod stack_clickhouse;
mod stack_kafka;
mod stack_registry;
mod stop_signals;
