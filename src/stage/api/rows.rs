//! API rows against ClickHouse's and the oracle's: which rows are missing, extra, duplicated or
//! different, and what that says about the hop.

use std::collections::BTreeMap;

use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::compare::{self, TableDiff};
use crate::domain::model::{Columns, Microbar, RowKey, Signal, WINDOW_1S};
use crate::domain::scenario::{Table, Tolerance};

use super::decode::{self, Decoded};
use super::findings::{self, Findings};
use crate::adapter::jangar::Endpoint;

/// What the API stage needs of a table's row type.
pub trait ApiRow:
    Columns + Clone + PartialEq + Send + Sync + clickhouse::RowOwned + clickhouse::RowRead
{
    const TABLE: Table;
    const ENDPOINT: Endpoint;
    fn decode(item: &Value) -> Decoded<Self>;
    fn event_ts(&self) -> OffsetDateTime;
    fn ingest_ts(&self) -> OffsetDateTime;
    /// Rows of the 1-second path, the ones the run compares (other windows are ignored).
    fn is_compared(&self) -> bool;
}

impl ApiRow for Microbar {
    const TABLE: Table = Table::Microbars;
    const ENDPOINT: Endpoint = Endpoint::Bars;
    fn decode(item: &Value) -> Decoded<Self> {
        decode::microbar(item)
    }
    fn event_ts(&self) -> OffsetDateTime {
        self.event_ts
    }
    fn ingest_ts(&self) -> OffsetDateTime {
        self.ingest_ts
    }
    fn is_compared(&self) -> bool {
        true
    }
}

impl ApiRow for Signal {
    const TABLE: Table = Table::Signals;
    const ENDPOINT: Endpoint = Endpoint::Signals;
    fn decode(item: &Value) -> Decoded<Self> {
        decode::signal(item)
    }
    fn event_ts(&self) -> OffsetDateTime {
        self.event_ts
    }
    fn ingest_ts(&self) -> OffsetDateTime {
        self.ingest_ts
    }
    fn is_compared(&self) -> bool {
        self.window_size == WINDOW_1S
    }
}

/// Exact comparison: the API must not change a single value ClickHouse holds.
pub fn exact(_: &str) -> Tolerance {
    Tolerance { rel: 0.0, abs: 0.0 }
}

/// One row per key, the newest `ingest_ts` winning (what ReplacingMergeTree keeps), and how
/// many rows that removed: the duplicates a reader without FINAL shows.
pub fn dedupe<R: ApiRow>(rows: &[R]) -> (Vec<R>, usize) {
    let mut by_key: BTreeMap<RowKey, R> = BTreeMap::new();
    for row in rows {
        match by_key.get(&row.key()) {
            Some(kept) if kept.ingest_ts() >= row.ingest_ts() => {}
            _ => {
                by_key.insert(row.key(), row.clone());
            }
        }
    }
    let removed = rows.len() - by_key.len();
    (by_key.into_values().collect(), removed)
}

/// Whether `event_ts` never decreases along the answer (`ORDER BY event_ts ASC`).
pub fn first_out_of_order<R: ApiRow>(rows: &[R]) -> Option<usize> {
    rows.windows(2)
        .position(|w| w[1].event_ts() < w[0].event_ts())
        .map(|i| i + 1)
}

/// The API's rows for a synthetic symbol against ClickHouse (FINAL) and the oracle.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    pub vs_clickhouse: TableDiff,
    /// `None` when the scenario does not compare this table.
    pub vs_oracle: Option<TableDiff>,
    /// Rows beyond one per key.
    pub duplicates: usize,
}

/// The oracle's rows and how the scenario compares them (ignored columns, float tolerance).
pub struct Oracle<'a, R> {
    pub rows: &'a [R],
    pub ignore: &'a dyn Fn(&str) -> bool,
    pub tolerance: &'a dyn Fn(&str) -> Tolerance,
}

/// `oracle` is `None` when the scenario does not compare this table.
pub fn judge<R: ApiRow>(api: &[R], stored: &[R], oracle: Option<Oracle<'_, R>>) -> Judged {
    let (unique, duplicates) = dedupe(api);
    let vs_clickhouse = compare::compare(stored, &unique, |_| false, exact);
    let vs_oracle = oracle.map(|o| compare::compare(o.rows, &unique, o.ignore, o.tolerance));
    Judged {
        vs_clickhouse,
        vs_oracle,
        duplicates,
    }
}

impl Judged {
    pub fn ok(&self) -> bool {
        self.vs_clickhouse.is_clean()
            && self.duplicates == 0
            && self.vs_oracle.as_ref().is_none_or(TableDiff::is_clean)
    }

    /// A line for the check, e.g. `12/12 rows equal to ClickHouse (FINAL) and the oracle`.
    pub fn detail(&self) -> String {
        let d = &self.vs_clickhouse;
        if d.expected == 0 {
            return "ClickHouse holds no rows for the window: nothing to observe (see the \
                    ClickHouse stage)"
                .into();
        }
        let mut parts = vec![format!(
            "{}/{} rows equal to ClickHouse (FINAL), {} returned",
            d.matched,
            d.expected,
            d.observed + self.duplicates
        )];
        if let Some(k) = d.missing.first() {
            parts.push(format!("{} missing (first {k})", d.missing.len()));
        }
        if let Some(k) = d.extra.first() {
            parts.push(format!("{} extra (first {k})", d.extra.len()));
        }
        if self.duplicates > 0 {
            parts.push(format!("{} duplicates", self.duplicates));
        }
        if let Some(m) = d.mismatches.first() {
            let c = &m.columns[0];
            parts.push(format!(
                "{} differ, first {} {}: ClickHouse {} API {}",
                d.mismatches.len(),
                m.key,
                c.column,
                c.expected,
                c.actual
            ));
        }
        match &self.vs_oracle {
            Some(o) if o.is_clean() => parts.push("all equal to the oracle".into()),
            Some(o) => {
                let cols = mismatched_columns(o);
                let storage = if self.vs_clickhouse.is_clean() {
                    " where ClickHouse does (the storage layer: see the ClickHouse stage)"
                } else {
                    ""
                };
                parts.push(format!(
                    "{}/{} equal to the oracle{}{storage}",
                    o.matched,
                    o.expected,
                    if cols.is_empty() {
                        String::new()
                    } else {
                        format!(", differing in {}", cols.join(", "))
                    }
                ));
            }
            None => {}
        }
        parts.join("; ")
    }

    /// Causes at the API hop: only where the API departs from ClickHouse.
    pub fn findings(&self, endpoint: Endpoint, symbol: &str, db: &str, out: &mut Findings) {
        let d = &self.vs_clickhouse;
        if d.expected == 0 {
            return;
        }
        if d.observed == 0 {
            out.empty_while_stored(endpoint, symbol, d.expected, db);
            return;
        }
        let cols = mismatched_columns(d);
        if !cols.is_empty() {
            out.push(findings::serialization(endpoint, &cols));
        }
        if self.duplicates > 0 {
            out.push(findings::duplicates(endpoint, self.duplicates));
        }
        if !d.missing.is_empty() || !d.extra.is_empty() {
            out.push(findings::api(
                format!(
                    "{endpoint} returned {} of the {} rows {db} holds for {symbol}'s window and \
                     {} it does not hold: Jangar's query reads another window, table or database",
                    d.matched + d.mismatches.len(),
                    d.expected,
                    d.extra.len()
                ),
                crate::domain::diagnose::RUNBOOK_JANGAR_DATABASE,
            ));
        }
    }
}

pub fn mismatched_columns(d: &TableDiff) -> Vec<String> {
    let mut cols: Vec<String> = d
        .mismatches
        .iter()
        .flat_map(|m| m.columns.iter().map(|c| c.column.to_string()))
        .collect();
    cols.sort();
    cols.dedup();
    cols
}

/// API rows against rows read the way Jangar reads them (no FINAL): equal as multisets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MultisetDiff {
    pub api: usize,
    pub clickhouse: usize,
    /// Keys with rows on one side only.
    pub only_api: Vec<String>,
    pub only_clickhouse: Vec<String>,
    /// Keys present on both sides with a different number of rows (a merge in between).
    pub count_differs: Vec<String>,
    /// Columns that differ between rows of the same key and `ingest_ts`.
    pub columns: Vec<String>,
}

impl MultisetDiff {
    pub fn is_clean(&self) -> bool {
        self.only_api.is_empty()
            && self.only_clickhouse.is_empty()
            && self.count_differs.is_empty()
            && self.columns.is_empty()
    }

    pub fn detail(&self) -> String {
        let mut parts = vec![format!(
            "API {} rows, ClickHouse (no FINAL) {} rows",
            self.api, self.clickhouse
        )];
        if let Some(k) = self.only_api.first() {
            parts.push(format!(
                "{} keys only in the API (first {k})",
                self.only_api.len()
            ));
        }
        if let Some(k) = self.only_clickhouse.first() {
            parts.push(format!(
                "{} keys only in ClickHouse (first {k})",
                self.only_clickhouse.len()
            ));
        }
        if let Some(k) = self.count_differs.first() {
            parts.push(format!(
                "{} keys with another number of copies (first {k})",
                self.count_differs.len()
            ));
        }
        if !self.columns.is_empty() {
            parts.push(format!("values differ in {}", self.columns.join(", ")));
        }
        parts.join("; ")
    }
}

pub fn multiset<R: ApiRow>(api: &[R], clickhouse: &[R]) -> MultisetDiff {
    fn group<R: ApiRow>(rows: &[R]) -> BTreeMap<RowKey, Vec<&R>> {
        let mut map: BTreeMap<RowKey, Vec<&R>> = BTreeMap::new();
        for r in rows {
            map.entry(r.key()).or_default().push(r);
        }
        for v in map.values_mut() {
            v.sort_by_key(|r| r.ingest_ts());
        }
        map
    }
    let (a, c) = (group(api), group(clickhouse));
    let mut diff = MultisetDiff {
        api: api.len(),
        clickhouse: clickhouse.len(),
        ..MultisetDiff::default()
    };
    let mut columns = std::collections::BTreeSet::new();
    for (key, rows) in &a {
        let Some(other) = c.get(key) else {
            diff.only_api.push(key.to_string());
            continue;
        };
        if rows.len() != other.len() {
            diff.count_differs.push(key.to_string());
        }
        for (x, y) in rows.iter().zip(other) {
            for ((name, a), (_, b)) in x.cells().into_iter().zip(y.cells()) {
                if a != b {
                    columns.insert(name.to_string());
                }
            }
        }
    }
    diff.only_clickhouse = c
        .keys()
        .filter(|k| !a.contains_key(*k))
        .map(ToString::to_string)
        .collect();
    diff.columns = columns.into_iter().collect();
    diff
}
