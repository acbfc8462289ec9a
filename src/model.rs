//! Rows of the two TA tables, as production writes them (`pipeline.md` §3.3, §4.6).
//!
//! One type per table, shared by the oracle (expected rows), the ClickHouse stage (observed rows)
//! and the reference stack (written rows), so a column can never mean two things.
//! Field order is the table's column order: the ClickHouse crate serializes RowBinary by position.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `window_size` / `window_step` of the 1-second path.
pub const WINDOW_1S: &str = "PT1S";
/// `source` of every row the TA job writes for live and synthetic trades.
pub const SOURCE_TA: &str = "ta";

/// One row of `ta_microbars`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct Microbar {
    pub symbol: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub ingest_ts: OffsetDateTime,
    pub is_final: u8,
    pub source: String,
    pub window_size: String,
    pub window_step: Option<String>,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub window_start: Option<OffsetDateTime>,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub window_end: Option<OffsetDateTime>,
    pub version: u32,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub vwap: Option<f64>,
    pub count: u64,
}

/// One row of `ta_signals`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct Signal {
    pub symbol: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub ingest_ts: OffsetDateTime,
    pub is_final: u8,
    pub source: String,
    pub window_size: String,
    pub window_step: Option<String>,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub window_start: Option<OffsetDateTime>,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub window_end: Option<OffsetDateTime>,
    pub version: u32,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_hist: Option<f64>,
    pub ema12: Option<f64>,
    pub ema26: Option<f64>,
    pub rsi14: Option<f64>,
    pub boll_mid: Option<f64>,
    pub boll_upper: Option<f64>,
    pub boll_lower: Option<f64>,
    pub vwap_session: Option<f64>,
    pub vwap_w5m: Option<f64>,
    pub imbalance_spread: Option<f64>,
    pub imbalance_bid_px: Option<f64>,
    pub imbalance_ask_px: Option<f64>,
    pub imbalance_bid_sz: Option<u64>,
    pub imbalance_ask_sz: Option<u64>,
    pub vol_realized_w60s: Option<f64>,
    pub microstructure_signal_v1: Option<String>,
}

/// Column names of `ta_microbars`, in table order.
pub const MICROBAR_COLUMNS: &[&str] = &[
    "symbol",
    "event_ts",
    "seq",
    "ingest_ts",
    "is_final",
    "source",
    "window_size",
    "window_step",
    "window_start",
    "window_end",
    "version",
    "o",
    "h",
    "l",
    "c",
    "v",
    "vwap",
    "count",
];

/// Column names of `ta_signals`, in table order.
pub const SIGNAL_COLUMNS: &[&str] = &[
    "symbol",
    "event_ts",
    "seq",
    "ingest_ts",
    "is_final",
    "source",
    "window_size",
    "window_step",
    "window_start",
    "window_end",
    "version",
    "macd",
    "macd_signal",
    "macd_hist",
    "ema12",
    "ema26",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "vwap_session",
    "vwap_w5m",
    "imbalance_spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
    "imbalance_bid_sz",
    "imbalance_ask_sz",
    "vol_realized_w60s",
    "microstructure_signal_v1",
];
