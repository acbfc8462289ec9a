//! The audit's pure half: recomputing what the TA job stored for real symbols over a past window
//! (`torghut-e2e audit`). The reading (Kafka, ClickHouse) is the validator's
//! (`torghut_e2e::suite::audit`); everything here works on what was read:
//!
//! 1. [`window`]: the window, checked (it must end `--settle` ago);
//! 2. [`record`]: a record read back from a topic, and [`epoch`]: the stored rows split into the
//!    job's state epochs;
//! 3. [`anchor`]: where the audit of each symbol starts (the first bar whose predecessor is
//!    stored) and where a restart without state begins a new epoch;
//! 4. [`replay`]: the oracle fed in the job's order, with the watermark's splits;
//! 5. [`judge`]: the rows predicted, compared with `run`'s comparator and tolerances, the quote
//!    columns judged apart ([`quotes`]);
//! 6. [`AuditSymbol`]: what the audit of one symbol found, for the report.

pub mod anchor;
pub mod epoch;
pub mod judge;
pub mod quotes;
pub mod record;
pub mod replay;
pub mod window;

use serde::Serialize;
use time::OffsetDateTime;

use replay::Split;

/// What the audit of one symbol found, beyond the table diffs (`report.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditSymbol {
    pub symbol: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_to: Option<OffsetDateTime>,
    /// Trades and quotes of the symbol read (the trades from a little before the window).
    pub trades_read: usize,
    pub quotes_read: usize,
    /// Records of the symbol the job cannot decode (it drops them too).
    pub records_dropped: u64,
    /// No trade and no row in the window: nothing to check.
    pub quiet: bool,
    /// Where the audit started and each restart without state after it.
    pub stretches: Vec<Stretch>,
    /// The window's last bucket, still open (not closed by a trade or the watermark yet).
    #[serde(with = "time::serde::rfc3339::option")]
    pub open_at_end: Option<OffsetDateTime>,
    /// Expected rows past the 35-day TTL that are gone (not failures).
    pub expired_rows: usize,
}

/// One stretch of a symbol's audit: a start and the state it was predicted from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stretch {
    /// `continued` (the job's stored state before the start) or `fresh` (a state epoch
    /// began: the symbol's first bar, or a restart without state).
    pub start: &'static str,
    /// The first predicted bar.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_bar: Option<OffsetDateTime>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The stored history before the start: `fresh`, `complete`, `prefix_expired`, or
    /// `unseeded` (its retained bars could not be rebuilt).
    pub history: &'static str,
    /// Why the start could not be seeded exactly, if it could not.
    pub unseeded_reason: Option<String>,
    /// `exact`, `fitted` (the session volume before the start fitted, see the pool) or
    /// `unchecked`.
    pub vwap_session: &'static str,
    pub prior_volume: Option<f64>,
    /// Rows compared without the columns that depend on bars before the start.
    pub history_unchecked_rows: usize,
    /// Rows whose quote columns could not be judged: emitted after the quotes read ended.
    pub quote_rows_unjudged: usize,
    /// Buckets the job's watermark closed before a trade of their own second (followed).
    pub watermark_splits: Vec<Split>,
    pub trades: usize,
}

/// Builders shared by the audit's unit tests (here and in the validator's audit).
#[doc(hidden)]
pub mod test_support {
    use crate::envelope::IsoInstant;
    use crate::model::{Microbar, Signal};
    use crate::oracle::Trade;

    use super::record::Record;

    /// A trade at offset `i`, stamped `t_ms` (event time = payload `t`), recorded at `ts_ms`.
    pub fn trade(i: i64, t_ms: i64, ts_ms: i64, price: f64) -> Record<Trade> {
        let at = IsoInstant::from_unix_millis(t_ms).expect("instant");
        Record {
            partition: 0,
            offset: i,
            ts_ms,
            value: Trade {
                t: at,
                event_ts: at,
                price,
                size: 1.0,
            },
        }
    }

    /// A stored bar ending at `end_ms` with `seq` and `count`.
    pub fn bar_at(end_ms: i64, seq: u64, count: u64) -> Microbar {
        let end = crate::oracle::datetime_from_millis(end_ms);
        Microbar {
            symbol: "X".into(),
            event_ts: end,
            seq,
            ingest_ts: end,
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: Some("PT1S".into()),
            window_start: Some(end - time::Duration::SECOND),
            window_end: Some(end),
            version: 1,
            o: 1.0,
            h: 1.0,
            l: 1.0,
            c: 1.0,
            v: 1.0,
            vwap: Some(1.0),
            count,
        }
    }

    /// A stored bar of second `second` with `seq`, emitted at `emitted` s.
    pub fn bar(second: i64, seq: u64, emitted: i64) -> Microbar {
        let mut b = bar_at((second + 1) * 1000, seq, 1);
        b.ingest_ts = crate::oracle::datetime_from_millis(100_000 + emitted * 1000);
        b
    }

    /// A stored signal without quote columns, ending at `end_ms`, emitted at `ingest_ms`.
    pub fn signal_at(end_ms: i64, seq: u64, ingest_ms: i64) -> Signal {
        let end = crate::oracle::datetime_from_millis(end_ms);
        Signal {
            symbol: "X".into(),
            event_ts: end,
            seq,
            ingest_ts: crate::oracle::datetime_from_millis(ingest_ms),
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: Some("PT1S".into()),
            window_start: Some(end - time::Duration::SECOND),
            window_end: Some(end),
            version: 1,
            macd: None,
            macd_signal: None,
            macd_hist: None,
            ema12: None,
            ema26: None,
            rsi14: None,
            boll_mid: None,
            boll_upper: None,
            boll_lower: None,
            vwap_session: None,
            vwap_w5m: None,
            imbalance_spread: None,
            imbalance_bid_px: None,
            imbalance_ask_px: None,
            imbalance_bid_sz: None,
            imbalance_ask_sz: None,
            vol_realized_w60s: None,
            microstructure_signal_v1: None,
        }
    }
}
