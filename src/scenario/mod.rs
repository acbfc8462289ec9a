//! Scenario files (TOML): which synthetic trades and quotes to publish, what to check, and how
//! long to wait. Parsing keeps source spans so `lint` can point at file:line:column.

mod generate;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use generate::{expand, Event, QuoteEvent, TradeEvent};

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

/// A scenario as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    /// Aliases of the synthetic symbols; each run maps them onto reserved names.
    symbols: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "default_stages")]
    stages: Vec<Stage>,
    #[serde(default)]
    pacing: Pacing,
    deadline_secs: Option<Spanned<u64>>,
    /// Fail when p95 publish → visible exceeds this (milliseconds).
    max_latency_ms: Option<u64>,
    #[serde(default)]
    close: Close,
    #[serde(default = "default_tables")]
    tables: Vec<Table>,
    /// Columns left out of the comparison, per table (`ingest_ts` always is).
    #[serde(default)]
    ignore_columns: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    tolerance: RawTolerance,
    #[serde(default)]
    trades: Vec<Spanned<generate::TradeSpec>>,
    #[serde(default)]
    quotes: Vec<Spanned<generate::QuoteSpec>>,
    #[serde(default)]
    generators: Vec<Spanned<generate::Generator>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTolerance {
    default: Option<Tolerance>,
    #[serde(default)]
    columns: BTreeMap<String, Spanned<Tolerance>>,
}

fn default_stages() -> Vec<Stage> {
    vec![Stage::Clickhouse]
}

fn default_tables() -> Vec<Table> {
    vec![Table::Microbars, Table::Signals]
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

/// Reads and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, Vec<LintError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![LintError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(&text, path)
}

/// Parses scenario text; `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, Vec<LintError>> {
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
    if let Err(m) = generate::check_explicit_order(&raw.trades) {
        errors.push(at(Some(m.0), m.1));
    }
    if raw.trades.is_empty() && raw.generators.is_empty() {
        errors.push(at(
            Some(raw.name.span()),
            "the scenario publishes no trades".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(build(raw, path))
}

fn check_names(
    raw: &RawScenario,
    errors: &mut Vec<LintError>,
    at: &impl Fn(Option<Range<usize>>, String) -> LintError,
) {
    if raw.symbols.get_ref().is_empty() {
        errors.push(at(
            Some(raw.symbols.span()),
            "`symbols` must name at least one alias".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for alias in raw.symbols.get_ref() {
        let a = alias.get_ref();
        let valid = !a.is_empty()
            && a.len() <= 8
            && a.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            errors.push(at(
                Some(alias.span()),
                format!("symbol alias {a:?} must be 1-8 characters of A-Z and 0-9"),
            ));
        }
        if !seen.insert(a.clone()) {
            errors.push(at(
                Some(alias.span()),
                format!("symbol alias {a:?} is declared twice"),
            ));
        }
    }
    for (table, cols) in &raw.ignore_columns {
        let schema = match table.as_str() {
            "ta_microbars" => crate::model::MICROBAR_COLUMNS,
            "ta_signals" => crate::model::SIGNAL_COLUMNS,
            _ => {
                let span = cols.first().map(Spanned::span);
                errors.push(at(
                    span,
                    format!("unknown table {table:?} in ignore_columns"),
                ));
                continue;
            }
        };
        for c in cols {
            if !schema.contains(&c.get_ref().as_str()) {
                errors.push(at(
                    Some(c.span()),
                    format!("{table} has no column {:?}", c.get_ref()),
                ));
            }
        }
    }
    for (column, tol) in &raw.tolerance.columns {
        let known = crate::model::MICROBAR_COLUMNS.contains(&column.as_str())
            || crate::model::SIGNAL_COLUMNS.contains(&column.as_str());
        if !known {
            errors.push(at(
                Some(tol.span()),
                format!("tolerance for unknown column {column:?}"),
            ));
        }
    }
    if let Some(d) = &raw.deadline_secs {
        if *d.get_ref() == 0 || *d.get_ref() > 3600 {
            errors.push(at(
                Some(d.span()),
                "deadline_secs must be between 1 and 3600".into(),
            ));
        }
    }
}

fn build(raw: RawScenario, path: &Path) -> Scenario {
    let events = expand(&raw.trades, &raw.quotes, &raw.generators);
    Scenario {
        path: path.to_path_buf(),
        name: raw.name.into_inner(),
        description: raw.description,
        symbols: raw
            .symbols
            .into_inner()
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        stages: raw.stages,
        pacing: raw.pacing,
        deadline: std::time::Duration::from_secs(raw.deadline_secs.map_or(60, Spanned::into_inner)),
        max_latency_ms: raw.max_latency_ms,
        close: raw.close,
        tables: raw.tables,
        ignore_columns: raw
            .ignore_columns
            .into_iter()
            .map(|(t, c)| (t, c.into_iter().map(Spanned::into_inner).collect()))
            .collect(),
        default_tolerance: raw.tolerance.default.unwrap_or_default(),
        column_tolerance: raw
            .tolerance
            .columns
            .into_iter()
            .map(|(c, t)| (c, t.into_inner()))
            .collect(),
        events,
    }
}

/// Turns a byte span into 1-based line and column.
fn locate(text: &str, path: &Path, span: Option<Range<usize>>, message: String) -> LintError {
    let offset = span.map_or(0, |s| s.start.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    LintError {
        path: path.display().to_string(),
        line,
        column,
        message,
    }
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
