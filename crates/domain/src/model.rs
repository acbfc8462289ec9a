//! Rows of the two TA tables, as production writes them (`pipeline.md` §3.3, §4.6).
//!
//! One type per table, shared by the oracle (expected rows), the ClickHouse stage (observed rows)
//! and the reference stack (written rows), so a column can never mean two things.
//! Field order is the table's column order: the ClickHouse crate serializes RowBinary by position.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `window_size` / `window_step` of the 1-second path.
pub const WINDOW_1S: &str = "PT1S";
/// `window_size` / `window_step` of the 1-minute path (the forwarder's 1-minute bars).
pub const WINDOW_1M: &str = "PT1M";
/// `source` of every row the TA job writes for live and synthetic trades.
pub const SOURCE_TA: &str = "ta";

/// One row of `ta_microbars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct Microbar {
    pub symbol: String,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    pub ingest_ts: OffsetDateTime,
    pub is_final: u8,
    pub source: String,
    pub window_size: String,
    pub window_step: Option<String>,
    #[serde(with = "time::serde::timestamp::milliseconds_i64::option")]
    pub window_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::timestamp::milliseconds_i64::option")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct Signal {
    pub symbol: String,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    pub ingest_ts: OffsetDateTime,
    pub is_final: u8,
    pub source: String,
    pub window_size: String,
    pub window_step: Option<String>,
    #[serde(with = "time::serde::timestamp::milliseconds_i64::option")]
    pub window_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::timestamp::milliseconds_i64::option")]
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

/// Expected columns of `ta_microbars` as `system.columns` reports them (`pipeline.md` §3.3).
pub const MICROBAR_SCHEMA: &[(&str, &str)] = &[
    ("symbol", "LowCardinality(String)"),
    ("event_ts", "DateTime64(3, 'UTC')"),
    ("seq", "UInt64"),
    ("ingest_ts", "DateTime64(3, 'UTC')"),
    ("is_final", "UInt8"),
    ("source", "LowCardinality(String)"),
    ("window_size", "LowCardinality(String)"),
    ("window_step", "Nullable(String)"),
    ("window_start", "Nullable(DateTime64(3, 'UTC'))"),
    ("window_end", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt32"),
    ("o", "Float64"),
    ("h", "Float64"),
    ("l", "Float64"),
    ("c", "Float64"),
    ("v", "Float64"),
    ("vwap", "Nullable(Float64)"),
    ("count", "UInt64"),
];

/// Expected columns of `ta_signals` (`pipeline.md` §4.6).
pub const SIGNAL_SCHEMA: &[(&str, &str)] = &[
    ("symbol", "LowCardinality(String)"),
    ("event_ts", "DateTime64(3, 'UTC')"),
    ("seq", "UInt64"),
    ("ingest_ts", "DateTime64(3, 'UTC')"),
    ("is_final", "UInt8"),
    ("source", "LowCardinality(String)"),
    ("window_size", "LowCardinality(String)"),
    ("window_step", "Nullable(String)"),
    ("window_start", "Nullable(DateTime64(3, 'UTC'))"),
    ("window_end", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt32"),
    ("macd", "Nullable(Float64)"),
    ("macd_signal", "Nullable(Float64)"),
    ("macd_hist", "Nullable(Float64)"),
    ("ema12", "Nullable(Float64)"),
    ("ema26", "Nullable(Float64)"),
    ("rsi14", "Nullable(Float64)"),
    ("boll_mid", "Nullable(Float64)"),
    ("boll_upper", "Nullable(Float64)"),
    ("boll_lower", "Nullable(Float64)"),
    ("vwap_session", "Nullable(Float64)"),
    ("vwap_w5m", "Nullable(Float64)"),
    ("imbalance_spread", "Nullable(Float64)"),
    ("imbalance_bid_px", "Nullable(Float64)"),
    ("imbalance_ask_px", "Nullable(Float64)"),
    ("imbalance_bid_sz", "Nullable(UInt64)"),
    ("imbalance_ask_sz", "Nullable(UInt64)"),
    ("vol_realized_w60s", "Nullable(Float64)"),
    ("microstructure_signal_v1", "Nullable(String)"),
];

/// The TA tables and their expected columns.
pub const TA_TABLES: &[(&str, &[(&str, &str)])] = &[
    ("ta_microbars", MICROBAR_SCHEMA),
    ("ta_signals", SIGNAL_SCHEMA),
];

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

/// One cell of a row, typed enough to compare with a tolerance and to print.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Time(Option<OffsetDateTime>),
    UInt(Option<u64>),
    Float(Option<f64>),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(Some(s)) => write!(f, "{s:?}"),
            Cell::Time(Some(t)) => f.write_str(&iso_millis(*t)),
            Cell::UInt(Some(u)) => write!(f, "{u}"),
            Cell::Float(Some(x)) => write!(f, "{x}"),
            _ => f.write_str("NULL"),
        }
    }
}

/// `2026-07-21T14:30:01.000Z`: UTC with milliseconds, the form reports and the oracle use.
pub fn iso_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The replacing key of both tables: `ORDER BY (symbol, event_ts, seq)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub symbol: String,
    pub event_ts: OffsetDateTime,
    pub seq: u64,
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} seq {}",
            self.symbol,
            iso_millis(self.event_ts),
            self.seq
        )
    }
}

/// A row seen as named cells in table order.
pub trait Columns {
    fn key(&self) -> RowKey;
    fn cells(&self) -> Vec<(&'static str, Cell)>;
}

fn text(s: &str) -> Cell {
    Cell::Text(Some(s.to_string()))
}

macro_rules! common_cells {
    ($r:expr) => {
        vec![
            ("symbol", text(&$r.symbol)),
            ("event_ts", Cell::Time(Some($r.event_ts))),
            ("seq", Cell::UInt(Some($r.seq))),
            ("ingest_ts", Cell::Time(Some($r.ingest_ts))),
            ("is_final", Cell::UInt(Some($r.is_final as u64))),
            ("source", text(&$r.source)),
            ("window_size", text(&$r.window_size)),
            ("window_step", Cell::Text($r.window_step.clone())),
            ("window_start", Cell::Time($r.window_start)),
            ("window_end", Cell::Time($r.window_end)),
            ("version", Cell::UInt(Some($r.version as u64))),
        ]
    };
}

impl Columns for Microbar {
    fn key(&self) -> RowKey {
        RowKey {
            symbol: self.symbol.clone(),
            event_ts: self.event_ts,
            seq: self.seq,
        }
    }
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        let mut cells = common_cells!(self);
        cells.extend([
            ("o", Cell::Float(Some(self.o))),
            ("h", Cell::Float(Some(self.h))),
            ("l", Cell::Float(Some(self.l))),
            ("c", Cell::Float(Some(self.c))),
            ("v", Cell::Float(Some(self.v))),
            ("vwap", Cell::Float(self.vwap)),
            ("count", Cell::UInt(Some(self.count))),
        ]);
        cells
    }
}

impl Columns for Signal {
    fn key(&self) -> RowKey {
        RowKey {
            symbol: self.symbol.clone(),
            event_ts: self.event_ts,
            seq: self.seq,
        }
    }
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        let mut cells = common_cells!(self);
        cells.extend([
            ("macd", Cell::Float(self.macd)),
            ("macd_signal", Cell::Float(self.macd_signal)),
            ("macd_hist", Cell::Float(self.macd_hist)),
            ("ema12", Cell::Float(self.ema12)),
            ("ema26", Cell::Float(self.ema26)),
            ("rsi14", Cell::Float(self.rsi14)),
            ("boll_mid", Cell::Float(self.boll_mid)),
            ("boll_upper", Cell::Float(self.boll_upper)),
            ("boll_lower", Cell::Float(self.boll_lower)),
            ("vwap_session", Cell::Float(self.vwap_session)),
            ("vwap_w5m", Cell::Float(self.vwap_w5m)),
            ("imbalance_spread", Cell::Float(self.imbalance_spread)),
            ("imbalance_bid_px", Cell::Float(self.imbalance_bid_px)),
            ("imbalance_ask_px", Cell::Float(self.imbalance_ask_px)),
            ("imbalance_bid_sz", Cell::UInt(self.imbalance_bid_sz)),
            ("imbalance_ask_sz", Cell::UInt(self.imbalance_ask_sz)),
            ("vol_realized_w60s", Cell::Float(self.vol_realized_w60s)),
            (
                "microstructure_signal_v1",
                Cell::Text(self.microstructure_signal_v1.clone()),
            ),
        ]);
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_constants_follow_the_row_types() {
        let names: Vec<&str> = MICROBAR_SCHEMA.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, MICROBAR_COLUMNS);
        let names: Vec<&str> = SIGNAL_SCHEMA.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, SIGNAL_COLUMNS);
    }

    #[test]
    fn cells_follow_the_column_lists() {
        let t = time::macros::datetime!(2026-01-01 00:00:01 UTC);
        let bar = Microbar {
            symbol: "X".into(),
            event_ts: t,
            seq: 1,
            ingest_ts: t,
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: None,
            window_start: None,
            window_end: None,
            version: 1,
            o: 1.0,
            h: 1.0,
            l: 1.0,
            c: 1.0,
            v: 1.0,
            vwap: None,
            count: 1,
        };
        let names: Vec<&str> = bar.cells().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, MICROBAR_COLUMNS);
        assert_eq!(iso_millis(t), "2026-01-01T00:00:01.000Z");
    }
}
