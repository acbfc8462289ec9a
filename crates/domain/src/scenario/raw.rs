//! A scenario file as written, and the scenario it becomes once checked.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::generate;
use super::{expand, Close, Pacing, Scenario, Stage, Table, Tolerance};

/// A scenario as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    /// Aliases of the synthetic symbols; each run maps them onto reserved names.
    pub(super) symbols: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "default_stages")]
    pub(super) stages: Vec<Stage>,
    #[serde(default)]
    pub(super) pacing: Pacing,
    pub(super) deadline_secs: Option<Spanned<u64>>,
    /// Fail when p95 publish → visible exceeds this (milliseconds).
    pub(super) max_latency_ms: Option<u64>,
    #[serde(default)]
    pub(super) close: Close,
    #[serde(default = "default_tables")]
    pub(super) tables: Vec<Table>,
    /// Columns left out of the comparison, per table (`ingest_ts` always is).
    #[serde(default)]
    pub(super) ignore_columns: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) tolerance: RawTolerance,
    #[serde(default)]
    pub(super) trades: Vec<Spanned<generate::TradeSpec>>,
    #[serde(default)]
    pub(super) quotes: Vec<Spanned<generate::QuoteSpec>>,
    #[serde(default)]
    pub(super) generators: Vec<Spanned<generate::Generator>>,
    /// 1-minute bars for the lane's `bars.1m` topic.
    #[serde(default)]
    pub(super) bars: Vec<Spanned<super::bars::BarSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTolerance {
    pub(super) default: Option<Tolerance>,
    #[serde(default)]
    pub(super) columns: BTreeMap<String, Spanned<Tolerance>>,
}

pub(super) fn default_stages() -> Vec<Stage> {
    vec![Stage::Clickhouse]
}

pub(super) fn default_tables() -> Vec<Table> {
    vec![Table::Microbars, Table::Signals]
}

pub(super) fn build(raw: RawScenario, path: &Path) -> Scenario {
    let events = expand(&raw.trades, &raw.quotes, &raw.generators, &raw.bars);
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
