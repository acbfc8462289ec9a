//! One module per system the validator talks to, and nothing about runs or scenarios: Kafka
//! (probe, producer, offsets, read-back), ClickHouse (the TA tables, the schema check), the
//! WebDriver (chromedriver), Jangar's TA API, a Prometheus Pushgateway.

pub mod clickhouse;
pub mod jangar;
pub mod kafka;
pub mod pushgateway;
pub mod registry;
pub mod webdriver;
