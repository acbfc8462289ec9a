//! Scenario files (TOML): which synthetic trades and quotes to publish, what to check, and how
//! long to wait. Parsing keeps source spans so `lint` can point at file:line:column.
//!
//! A scenario is bounded before anything is generated ([`Limits`]): its span (the latest event
//! offset) and its event count are computed from the generators' parameters with checked
//! arithmetic, so an offset near `u64::MAX` or a billion generated trades is a lint error, not
//! an overflow panic, an allocation failure or a ten-day run.

mod bars;
mod check;
mod expand;
mod generate;
mod raw;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use check::{check_extent, check_names, check_tolerances, locate};
use raw::{build, RawScenario};

pub use bars::{minute_start, BarSpec, MINUTE_MS};
pub use expand::{expand, BarEvent, Event, QuoteEvent, TradeEvent};
pub use generate::{Extent, Generator, MAX_PRICE, MAX_SIZE};

/// Default bound on a scenario's span: one hour of event time.
pub const DEFAULT_MAX_SPAN: Duration = Duration::from_secs(3600);
/// Default bound on a scenario's events (trades, quotes and 1-minute bars, before the closing
/// trades).
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;
/// The highest the span bound may be raised: a week keeps every offset, deadline and wall-clock
/// time far inside the arithmetic's range.
pub const MAX_SPAN_CEILING: Duration = Duration::from_secs(7 * 24 * 3600);
/// The highest the event bound may be raised (a run holds every event and its message value,
/// a few hundred bytes each, in memory).
pub const MAX_EVENTS_CEILING: u64 = 10_000_000;
/// Larger scenario files are refused unread.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What one scenario may ask for; checked by `lint` (and by `run` before anything is published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No event may be published or stamped later than this after offset 0.
    pub max_span: Duration,
    pub max_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_span: DEFAULT_MAX_SPAN,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

impl Limits {
    /// Limits within their ceilings, or why not.
    pub fn new(max_span: Duration, max_events: u64) -> Result<Self, String> {
        if max_span.is_zero() || max_span > MAX_SPAN_CEILING {
            return Err(format!(
                "the span limit must be positive and at most {}",
                humantime::format_duration(MAX_SPAN_CEILING)
            ));
        }
        if !(1..=MAX_EVENTS_CEILING).contains(&max_events) {
            return Err(format!(
                "the event limit must be between 1 and {MAX_EVENTS_CEILING}"
            ));
        }
        Ok(Self {
            max_span,
            max_events,
        })
    }

    fn max_span_ms(&self) -> u64 {
        u64::try_from(self.max_span.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A scenario problem with its place in the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct LintError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Which stages of a run a scenario asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Clickhouse,
    Api,
    Browser,
}

/// How event times are laid out against the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// Publish each event when the wall clock reaches its offset; event time = that instant.
    #[default]
    Realtime,
    /// Lay the events out so the last one is "now" and publish them back to back: every event
    /// time is in the recent past, never in the future (`pipeline.md` §7.2 rule 3).
    Compressed,
}

/// How the last open bar of each symbol gets closed (`pipeline.md` §7.2 rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Close {
    /// One more trade of the same symbol in the next second: rule 3, independent of watermarks.
    #[default]
    Trade,
    /// One trade of a separate clock symbol 3 s later: the bars close only when the watermark
    /// passes them, which needs idle partitions to be released (failure mode 16).
    Watermark,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
pub enum Table {
    #[serde(rename = "ta_microbars")]
    Microbars,
    #[serde(rename = "ta_signals")]
    Signals,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Microbars => "ta_microbars",
            Table::Signals => "ta_signals",
        }
    }
}

/// Relative and absolute tolerance for a float column; a value passes when either holds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(default = "default_rel")]
    pub rel: f64,
    #[serde(default = "default_abs")]
    pub abs: f64,
}

fn default_rel() -> f64 {
    1e-9
}
fn default_abs() -> f64 {
    1e-12
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            rel: default_rel(),
            abs: default_abs(),
        }
    }
}

impl Tolerance {
    pub fn accepts(&self, expected: f64, actual: f64) -> bool {
        if expected == actual {
            return true;
        }
        let diff = (expected - actual).abs();
        diff <= self.abs || diff <= self.rel * expected.abs().max(actual.abs())
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub symbols: Vec<String>,
    pub stages: Vec<Stage>,
    pub pacing: Pacing,
    /// How long to wait for the expected rows after the last publish.
    pub deadline: std::time::Duration,
    pub max_latency_ms: Option<u64>,
    pub close: Close,
    pub tables: Vec<Table>,
    pub ignore_columns: BTreeMap<String, Vec<String>>,
    pub default_tolerance: Tolerance,
    pub column_tolerance: BTreeMap<String, Tolerance>,
    /// Events in publish order.
    pub events: Vec<Event>,
}

impl Scenario {
    pub fn tolerance(&self, column: &str) -> Tolerance {
        self.column_tolerance
            .get(column)
            .copied()
            .unwrap_or(self.default_tolerance)
    }

    pub fn ignores(&self, table: Table, column: &str) -> bool {
        column == "ingest_ts"
            || self
                .ignore_columns
                .get(table.name())
                .is_some_and(|cols| cols.iter().any(|c| c == column))
    }

    /// Span of event time the scenario covers, in milliseconds.
    pub fn span_ms(&self) -> u64 {
        self.events.iter().map(Event::at_ms).max().unwrap_or(0)
    }
}

/// The wall-clock time of offset `at_ms` from `base`; `None` when it does not fit (never for a
/// scenario within its limits, which the runner still does not take on trust).
pub fn time_at(base: time::OffsetDateTime, at_ms: u64) -> Option<time::OffsetDateTime> {
    let ms = i64::try_from(at_ms).ok()?;
    base.checked_add(time::Duration::milliseconds(ms))
}

/// Reads and validates one scenario file under the default limits.
pub fn load(path: &Path) -> Result<Scenario, Vec<LintError>> {
    load_with(path, &Limits::default())
}

/// Reads and validates one scenario file.
pub fn load_with(path: &Path, limits: &Limits) -> Result<Scenario, Vec<LintError>> {
    let unreadable = |message: String| {
        vec![LintError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message,
        }]
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| unreadable(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_FILE_BYTES} bytes: refused unread"
        )));
    }
    parse_with(&text, path, limits)
}

/// Parses scenario text under the default limits; `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, Vec<LintError>> {
    parse_with(text, path, &Limits::default())
}

/// Parses scenario text; `path` is used in messages only.
pub fn parse_with(text: &str, path: &Path, limits: &Limits) -> Result<Scenario, Vec<LintError>> {
    let at = |span: Option<Range<usize>>, message: String| locate(text, path, span, message);
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| vec![at(e.span(), e.message().to_string())])?;
    let mut errors = Vec::new();
    check_names(&raw, &mut errors, &at);
    let known = |alias: &str, span: Range<usize>, errors: &mut Vec<LintError>| {
        if !raw.symbols.get_ref().iter().any(|s| s.get_ref() == alias) {
            errors.push(at(
                Some(span),
                format!("symbol {alias:?} is not declared in `symbols`"),
            ));
        }
    };
    for t in &raw.trades {
        let symbol = &t.get_ref().symbol;
        known(symbol.get_ref(), symbol.span(), &mut errors);
        if let Err(m) = t.get_ref().validate() {
            errors.push(at(Some(t.span()), m));
        }
    }
    for q in &raw.quotes {
        let symbol = &q.get_ref().symbol;
        known(symbol.get_ref(), symbol.span(), &mut errors);
        if let Err(m) = q.get_ref().validate() {
            errors.push(at(Some(q.span()), m));
        }
    }
    for g in &raw.generators {
        known(g.get_ref().symbol(), g.span(), &mut errors);
        if let Err(m) = g.get_ref().validate() {
            errors.push(at(Some(g.span()), m));
        }
    }
    for b in &raw.bars {
        let symbol = &b.get_ref().symbol;
        known(symbol.get_ref(), symbol.span(), &mut errors);
        if let Err(m) = b.get_ref().validate() {
            errors.push(at(Some(b.span()), m));
        }
    }
    for (span, m) in bars::check_corrections(&raw.bars) {
        errors.push(at(Some(span), m));
    }
    check_tolerances(&raw, &mut errors, &at);
    check_extent(&raw, limits, &mut errors, &at);
    if let Err(m) = generate::check_explicit_order(&raw.trades) {
        errors.push(at(Some(m.0), m.1));
    }
    if raw.trades.is_empty() && raw.generators.is_empty() && raw.bars.is_empty() {
        errors.push(at(
            Some(raw.name.span()),
            "the scenario publishes no trades and no 1-minute bars".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(build(raw, path))
}

/// Scenario files named on the command line: files as given, directories by their `*.toml`.
pub fn collect(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
