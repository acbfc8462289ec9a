//! The run's reads of its rows, shared by the scenarios' pollers.
//!
//! Each scenario polls for its rows' keys up to 25 times a second while rows are due, and
//! reads its rows in full once their keys are complete; with the compressed scenarios
//! publishing together, six pollers at once would queue at the server and each one's round
//! trip, and with it the visibility error and the validator's overhead, would grow with their
//! number. So for each kind of read the requests that arrive while a query is in flight wait
//! for it and go out together as the next query, over the union of their windows, and each
//! takes its own share of the answer: one key query, one full read and one part-log lookup at
//! a time per run. Scenarios published together complete together, and one key poll's answer
//! completes several: their full reads and lookups wait a moment (a linger, as a Kafka
//! producer's) so that they go out as one query, not as one and then the others.

mod coalesce;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::adapter::clickhouse::{KeyTable, PartCommits, RowKeys};
use crate::domain::model::{Columns, Microbar, RowKey, Signal};
use coalesce::sorted_union;
pub use coalesce::{Answer, Ask, Share, Shared};

/// The rows one scenario reads: its symbols' bars and 1-second signals ending after `after`,
/// and their 1-minute signals starting after `minutes_after` when it publishes 1-minute bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub symbols: Vec<String>,
    pub after: OffsetDateTime,
    pub minutes_after: Option<OffsetDateTime>,
}

impl Ask for Window {
    /// The window every one of `windows` lies in.
    fn union(windows: &[&Window]) -> Option<Window> {
        let after = windows.iter().map(|w| w.after).min()?;
        let symbols = sorted_union(windows.iter().map(|w| &w.symbols));
        let minutes_after = windows.iter().filter_map(|w| w.minutes_after).min();
        Some(Window {
            symbols,
            after,
            minutes_after,
        })
    }
}

/// A part-log lookup: the commits of these parts, by the records since `since`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsAsked {
    pub parts: Vec<(KeyTable, String)>,
    pub since: OffsetDateTime,
}

impl Ask for PartsAsked {
    fn union(asks: &[&PartsAsked]) -> Option<PartsAsked> {
        let since = asks.iter().map(|a| a.since).min()?;
        let parts = sorted_union(asks.iter().map(|a| &a.parts));
        Some(PartsAsked { parts, since })
    }
}

impl Share<PartsAsked> for PartCommits {
    /// The commits of the parts it asked for; the log's server and flush for every one.
    fn share(&self, asked: &PartsAsked) -> Self {
        PartCommits {
            committed: self
                .committed
                .iter()
                .filter(|(part, _)| asked.parts.contains(part))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            server: self.server.clone(),
            flush_refused: self.flush_refused.clone(),
        }
    }
}

impl Window {
    /// Whether the row of `table` with `key` lies in this window.
    fn holds(&self, table: KeyTable, key: &RowKey) -> bool {
        self.symbols.contains(&key.symbol)
            && match table {
                KeyTable::MinuteSignals => self.minutes_after.is_some_and(|m| key.event_ts > m),
                KeyTable::Microbars | KeyTable::Signals => key.event_ts > self.after,
            }
    }

    /// The entries of a map by row key that lie in this window.
    fn own_keyed<V: Clone>(
        &self,
        map: &HashMap<(KeyTable, RowKey), V>,
    ) -> HashMap<(KeyTable, RowKey), V> {
        map.iter()
            .filter(|((table, key), _)| self.holds(*table, key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn own<R: Columns + Clone>(&self, table: KeyTable, rows: &[R]) -> Vec<R> {
        rows.iter()
            .filter(|r| self.holds(table, &r.key()))
            .cloned()
            .collect()
    }
}

impl Share<Window> for RowKeys {
    fn share(&self, window: &Window) -> Self {
        RowKeys {
            keys: self
                .keys
                .iter()
                .filter(|(table, key)| window.holds(*table, key))
                .cloned()
                .collect(),
            parts: window.own_keyed(&self.parts),
            copies: window.own_keyed(&self.copies),
            server: self.server.clone(),
            server_start: self.server_start,
            server_executing: self.server_executing,
        }
    }
}

/// The rows in full (FINAL), as the comparison reads them, with the symbols' unmerged
/// duplicates at that moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    pub minute_signals: Vec<Signal>,
    /// `ta_microbars` rows visible without FINAL beyond one per key, per symbol that has some.
    pub unmerged: Vec<(String, u64)>,
}

impl Share<Window> for Rows {
    fn share(&self, window: &Window) -> Self {
        Rows {
            bars: window.own(KeyTable::Microbars, &self.bars),
            signals: window.own(KeyTable::Signals, &self.signals),
            minute_signals: window.own(KeyTable::MinuteSignals, &self.minute_signals),
            unmerged: self
                .unmerged
                .iter()
                .filter(|(symbol, _)| window.symbols.contains(symbol))
                .cloned()
                .collect(),
        }
    }
}

/// How long a full read or a part-log lookup waits for the others of a key poll's answer: the
/// scenarios it completed ask within a millisecond or two of each other.
const LINGER: Duration = Duration::from_millis(3);

/// The run's shared reads: key polls, full reads, part-log lookups.
pub struct SharedReads {
    pub keys: Shared<Window, RowKeys>,
    pub rows: Shared<Window, Rows>,
    pub commits: Shared<PartsAsked, PartCommits>,
}

impl Default for SharedReads {
    fn default() -> Self {
        Self {
            keys: Shared::default(),
            rows: Shared::lingering(LINGER),
            commits: Shared::lingering(LINGER),
        }
    }
}
