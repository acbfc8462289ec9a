//! The oracle: the `ta_microbars` and `ta_signals` rows the Torghut TA job must write for known
//! forwarder messages (pipeline.md §2–§4), in emission order.
//!
//! Feed it the message values in publish order ([`Oracle::on_message`]) — or trades and quotes
//! directly ([`Oracle::on_trade`], [`Oracle::on_quote`]) — and it returns, per message, the rows
//! that message makes the job emit: each emitted microbar is followed by exactly one signal row
//! with the same symbol, `event_ts`, `seq` and window. [`Oracle::flush_open`] closes the buckets
//! still in flight at the end. A forwarder 1-minute bar makes exactly one `PT1M` signal row and
//! no microbar ([`minute`]: the 1-minute path, its own signal operator per symbol).
//!
//! The pieces, one concept each: [`microbar`] (1-second buckets and `seq`), [`watermark`] (event
//! time and timers; its docs say where the oracle's single eager watermark can differ from
//! production), [`history`] (the retained bar list and the series ta4j rebuilds),
//! [`recursive`] (EMA/MACD/RSI with exact seed sliding), [`signals`] (one symbol's signal
//! operator), [`reference`] (a plain rebuild-per-bar statement of the same rules, for tests).
//!
//! `ingest_ts` is the job's wall clock at emission and cannot be predicted: expected rows carry the
//! Unix epoch there, comparisons must ignore the column, and the CLI prints it as `null`. (A
//! `PT1M` row carries the forwarder's `ingestTs`, which the oracle does know.)

pub mod history;
pub mod microbar;
pub mod minute;
pub mod recursive;
pub mod reference;
pub mod signals;
pub mod watermark;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use time::OffsetDateTime;

use crate::envelope::{self, Envelope, EnvelopeError, IsoInstant, Message, TradePayload};
use crate::model::{Microbar, Signal, SOURCE_TA, WINDOW_1S};
use microbar::{ClosedBar, MicrobarAggregator, SymbolId, Tick};
pub use minute::{minute_signal_row, MinuteInput};
pub use signals::{BarInput, Quote, SessionSums, SignalConfig, SignalEngine, SignalValues};

/// `version` of every row the 1-second path writes.
pub const ROW_VERSION: u32 = 1;

/// One row the job must write.
// Rows are moved straight into per-table vectors by their consumers; boxing the larger variant
// would cost an allocation per row for no benefit.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Microbar(Microbar),
    Signal(Signal),
}

impl Expected {
    pub fn table(&self) -> &'static str {
        match self {
            Expected::Microbar(_) => "ta_microbars",
            Expected::Signal(_) => "ta_signals",
        }
    }
}

/// Why a message value produced no rows at all.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// The job would drop this record (counted in `trades_parse_failures` /
    /// `quotes_parse_failures`, logged, offset advanced).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A trade as the job reads it: `payload.t` buckets it, `eventTs` drives the watermark; `p` and
/// `s` are all the payload it uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    pub t: IsoInstant,
    pub event_ts: IsoInstant,
    pub price: f64,
    pub size: f64,
}

impl Trade {
    /// A trade with `eventTs = payload.t = at`, as the forwarder writes live trades.
    pub fn at(at: OffsetDateTime, price: f64, size: f64) -> Self {
        let at = IsoInstant::from(at);
        Trade {
            t: at,
            event_ts: at,
            price,
            size,
        }
    }
}

impl From<&Envelope<TradePayload>> for Trade {
    fn from(env: &Envelope<TradePayload>) -> Self {
        Trade {
            t: env.payload.t.instant(),
            event_ts: env.event_ts,
            price: env.payload.price,
            size: env.payload.size,
        }
    }
}

/// A symbol's state from earlier runs, so expectations hold for a symbol with history
/// (§7.2.4: reuse a symbol and seed from its latest rows in ClickHouse).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedState {
    /// The last microbar `seq` the job emitted for the symbol; the next bar gets `last_seq + 1`.
    pub last_seq: u64,
    /// Retained bars in the job's list order: time order and, for equal end times, emission
    /// order — e.g. the symbol's latest `ta_microbars FINAL` rows ordered by `(event_ts, seq)`.
    /// Only the last 360 matter.
    pub bars: Vec<BarInput>,
    /// Σ c·v and Σ v over every bar the job ever processed for the symbol (`vwap_session`).
    pub session: SessionSums,
    /// The last quote the job processed for the symbol, if any.
    pub last_quote: Option<Quote>,
}

/// FxHash: symbols are short keys hashed once per trade; SipHash's DoS resistance buys nothing.
#[derive(Debug, Clone, Copy, Default)]
struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.hash = (self.hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.hash = (self.hash.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Symbol names ↔ dense ids.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    ids: HashMap<String, SymbolId, BuildHasherDefault<FxHasher>>,
    names: Vec<String>,
}

impl SymbolTable {
    pub fn id(&mut self, symbol: &str) -> SymbolId {
        if let Some(&id) = self.ids.get(symbol) {
            return id;
        }
        let id = self.names.len() as SymbolId;
        self.names.push(symbol.to_string());
        self.ids.insert(symbol.to_string(), id);
        id
    }

    pub fn name(&self, id: SymbolId) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The TA job over every symbol: the 1-second path (microbar operator, then signal operator)
/// and the 1-minute path (the forwarder's 1-minute bars into a second signal operator).
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    symbols: SymbolTable,
    bars: MicrobarAggregator,
    signals: Vec<SignalEngine>,
    /// The 1-minute path's operator per symbol: its own bars, session and quote (§4.1).
    minute: Vec<SignalEngine>,
    config: SignalConfig,
    scratch: Vec<ClosedBar>,
}

impl Oracle {
    /// The production / simulation configuration (`SignalConfig::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Another signal configuration, e.g. the code default `TA_QUOTE_STALE_AFTER_MS` of 2000 ms
    /// for a deployment that does not override it.
    pub fn with_config(config: SignalConfig) -> Self {
        Oracle {
            config,
            ..Self::default()
        }
    }

    /// Gives `symbol` the state it has after earlier runs. Call it before any message of that
    /// symbol. A bucket the earlier run left open is not modelled: close it first (§7.2.6) or
    /// account for its bar in `last_seq`.
    pub fn seed(&mut self, symbol: &str, seed: SeedState) {
        let id = self.symbol(symbol);
        self.bars.set_last_seq(id, seed.last_seq);
        self.signals[id as usize] =
            SignalEngine::seeded(self.config, &seed.bars, seed.session, seed.last_quote);
    }

    /// One forwarder message value (a JSON line): the rows it makes the job emit, or why the job
    /// would drop it.
    pub fn on_message(&mut self, value: &str) -> Result<Vec<Expected>, OracleError> {
        match envelope::parse_message(value)? {
            Message::Trade(env) => Ok(self.on_trade(&env.symbol, Trade::from(&env))),
            Message::Quote(env) => {
                self.on_quote(&env.symbol, Quote::from(&env));
                Ok(Vec::new())
            }
            Message::Bar(env) => Ok(vec![
                self.on_minute_bar(&env.symbol, &MinuteInput::from(&env))
            ]),
        }
    }

    /// One 1-minute bar (`bars` or `updatedBars`): its `PT1M` signal row.
    pub fn on_minute_bar(&mut self, symbol: &str, bar: &MinuteInput) -> Expected {
        let id = self.symbol(symbol);
        let values = self.minute[id as usize].on_bar(bar.bar());
        Expected::Signal(minute_signal_row(symbol, bar, &values))
    }

    /// One trade: the rows it makes the job emit, in order.
    pub fn on_trade(&mut self, symbol: &str, trade: Trade) -> Vec<Expected> {
        let mut out = Vec::new();
        self.on_trade_into(symbol, trade, &mut out);
        out
    }

    /// [`Oracle::on_trade`] appending to `out` (no allocation when nothing is emitted).
    pub fn on_trade_into(&mut self, symbol: &str, trade: Trade, out: &mut Vec<Expected>) {
        let id = self.symbol(symbol);
        let tick = Tick {
            second: trade.t.unix_seconds(),
            event_ms: trade.event_ts.unix_millis(),
            price: trade.price,
            size: trade.size,
        };
        let mut closed = std::mem::take(&mut self.scratch);
        self.bars.on_trade(id, tick, &mut closed);
        self.emit(&closed, out);
        closed.clear();
        self.scratch = closed;
    }

    /// One quote: stored for the symbol's next bars on both paths (each operator is connected
    /// to the quotes stream); it never emits anything by itself.
    pub fn on_quote(&mut self, symbol: &str, quote: Quote) {
        let id = self.symbol(symbol);
        self.signals[id as usize].on_quote(quote);
        self.minute[id as usize].on_quote(quote);
    }

    /// Closes every bucket still in flight, as if the watermark had passed them.
    pub fn flush_open(&mut self) -> Vec<Expected> {
        let mut closed = Vec::new();
        self.bars.flush_open(&mut closed);
        let mut out = Vec::new();
        self.emit(&closed, &mut out);
        out
    }

    /// The last microbar `seq` emitted for `symbol` (0 if none).
    pub fn last_seq(&self, symbol: &str) -> u64 {
        self.symbols
            .ids
            .get(symbol)
            .map_or(0, |&id| self.bars.last_seq(id))
    }

    fn symbol(&mut self, symbol: &str) -> SymbolId {
        let id = self.symbols.id(symbol);
        if self.signals.len() <= id as usize {
            self.signals
                .resize_with(id as usize + 1, || SignalEngine::new(self.config));
            let minute = self.config.minute();
            self.minute
                .resize_with(id as usize + 1, || SignalEngine::new(minute));
        }
        id
    }

    /// Each closed bar becomes its microbar row, goes through the symbol's signal operator, and
    /// its signal row follows.
    fn emit(&mut self, closed: &[ClosedBar], out: &mut Vec<Expected>) {
        for bar in closed {
            let values = self.signals[bar.symbol as usize].on_bar(BarInput {
                end_ms: bar.end_ms(),
                close: bar.c,
                volume: bar.v,
            });
            let symbol = self.symbols.name(bar.symbol);
            out.push(Expected::Microbar(microbar_row(symbol, bar)));
            out.push(Expected::Signal(signal_row(symbol, bar, &values)));
        }
    }
}

/// `Instant.ofEpochMilli` as a row timestamp (saturating at the ends of the supported range).
pub fn datetime_from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

/// The `ta_microbars` row of a closed bar (§3.3).
pub fn microbar_row(symbol: &str, bar: &ClosedBar) -> Microbar {
    let (start, end) = (
        datetime_from_millis(bar.start_ms()),
        datetime_from_millis(bar.end_ms()),
    );
    Microbar {
        symbol: symbol.to_string(),
        event_ts: end,
        seq: bar.seq,
        ingest_ts: OffsetDateTime::UNIX_EPOCH,
        is_final: 1,
        source: SOURCE_TA.to_string(),
        window_size: WINDOW_1S.to_string(),
        window_step: Some(WINDOW_1S.to_string()),
        window_start: Some(start),
        window_end: Some(end),
        version: ROW_VERSION,
        o: bar.o,
        h: bar.h,
        l: bar.l,
        c: bar.c,
        v: bar.v,
        vwap: bar.vwap.and_then(signals::finite),
        count: bar.count,
    }
}

/// The `ta_signals` row of a closed bar (§4.6): the microbar's key and window, the bar's
/// indicator values. Sizes go from Java `long` to `UInt64` by two's complement, as a negative
/// `setLong` would land in the unsigned column.
pub fn signal_row(symbol: &str, bar: &ClosedBar, v: &SignalValues) -> Signal {
    let (start, end) = (
        datetime_from_millis(bar.start_ms()),
        datetime_from_millis(bar.end_ms()),
    );
    with_values(
        RowHead {
            symbol: symbol.to_string(),
            event_ts: end,
            seq: bar.seq,
            ingest_ts: OffsetDateTime::UNIX_EPOCH,
            is_final: 1,
            source: SOURCE_TA.to_string(),
            window: WINDOW_1S,
            window_start: start,
            window_end: end,
            version: ROW_VERSION,
        },
        v,
    )
}

/// What a signal row's two cadences set differently (§4.6): its key, flags and window.
pub(crate) struct RowHead {
    pub symbol: String,
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    pub ingest_ts: OffsetDateTime,
    pub is_final: u8,
    pub source: String,
    /// `window_size` and `window_step` alike.
    pub window: &'static str,
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    pub version: u32,
}

/// The row of `head` with the indicator columns of `v`, which both cadences fill alike.
pub(crate) fn with_values(head: RowHead, v: &SignalValues) -> Signal {
    Signal {
        symbol: head.symbol,
        event_ts: head.event_ts,
        seq: head.seq,
        ingest_ts: head.ingest_ts,
        is_final: head.is_final,
        source: head.source,
        window_size: head.window.to_string(),
        window_step: Some(head.window.to_string()),
        window_start: Some(head.window_start),
        window_end: Some(head.window_end),
        version: head.version,
        macd: v.macd,
        macd_signal: v.macd_signal,
        macd_hist: v.macd_hist,
        ema12: v.ema12,
        ema26: v.ema26,
        rsi14: v.rsi14,
        boll_mid: v.boll_mid,
        boll_upper: v.boll_upper,
        boll_lower: v.boll_lower,
        vwap_session: v.vwap_session,
        vwap_w5m: v.vwap_w5m,
        imbalance_spread: v.imbalance_spread,
        imbalance_bid_px: v.imbalance_bid_px,
        imbalance_ask_px: v.imbalance_ask_px,
        imbalance_bid_sz: v.imbalance_bid_sz.map(|s| s as u64),
        imbalance_ask_sz: v.imbalance_ask_sz.map(|s| s as u64),
        vol_realized_w60s: v.vol_realized_w60s,
        microstructure_signal_v1: None,
    }
}

#[cfg(test)]
mod tests;
