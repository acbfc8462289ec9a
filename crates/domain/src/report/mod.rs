//! What a run found, for machines and for people.
//!
//! JSON schema `torghut-e2e/report/v1`: a `RunReport` object. Fields are only ever added within
//! a version; renaming or removing one bumps the version. This is the model only; the console
//! summary, JUnit XML, Prometheus metrics and the HTML evidence report are rendered from it by
//! the writers at the top of the validator (`torghut_e2e::report`).

mod series;
mod stage;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare::TableDiff;
use crate::diagnose::Finding;
use crate::latency::{ErrorBar, Summary};
use crate::publish::{Delivery, Unconfirmed};

pub use series::{Point, Series};
pub use stage::{StageCheck, StageReport};

pub const SCHEMA: &str = "torghut-e2e/report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    #[default]
    Fail,
    /// The scenario could not run (unreachable target, refused symbol).
    Error,
}

/// Per-bar latency, in two populations judged apart. A bar closed by a later trade of its own
/// symbol is emitted as soon as the job reads that trade: these are the first three summaries,
/// judged against `max_latency_ms`. A bar closed by the job's watermark (`close = "watermark"`,
/// every pool run's last bars, a bar another symbol's trades overtook) is emitted only once every
/// partition the watermark waits for has moved on or gone idle, up to the job's idle timeout
/// later: those are in `watermark_closed`, with their own bound.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Bars closed by a trade: broker ack of that trade → the bar visible in ClickHouse.
    pub publish_to_visible: Summary,
    /// Bars closed by a trade: broker ack → the TA job's emission (`ingest_ts`; two hosts' clocks).
    pub publish_to_ta_emit: Summary,
    /// Bars closed by a trade: TA emission (`ingest_ts`) → visible to a FINAL query.
    pub ta_emit_to_visible: Summary,
    /// Every visibility time above and below is the midpoint of a bracket (the last poll that did
    /// not see the row, the first that did, narrowed to the commit of the part it was first seen
    /// in where the server's part log has it) and is off by at most half of it: the largest
    /// half-width over every population.
    pub polling_error_ms: f64,
    /// Bars closed by a trade: how their visibility times were found and their error (the
    /// brackets' half-widths).
    pub visibility_error: ErrorBar,
    /// Bars closed by the watermark.
    pub watermark_closed: WatermarkLatency,
    /// Bars visible before the trade meant to close them was acknowledged: the lane's watermark
    /// (other writers' trades, idle partitions) closed them first. They time no hop, so they are
    /// in neither population; their rows are compared all the same.
    pub closed_before_trigger: usize,
    /// The 1-minute path: broker ack of a 1-minute bar → its `PT1M` signal visible.
    pub minute_signals: MinuteLatency,
    /// Queries the visibility polling sent: cheap polls of the run's row keys, and full reads
    /// of its rows (the comparison's).
    pub key_polls: u64,
    /// Key polls whose brackets the server's own clock bounded on both edges (before its
    /// snapshot, as it executed): the rest fell back to the send and answer times, on a server
    /// without `nowInBlock64` or with a clock outside the round trip.
    pub key_polls_server_clock: u64,
    /// Why the server's part log (`system.part_log`) timed fewer sightings than it could: not
    /// readable (the table is not kept, no grant), or not flushed on request (then parts
    /// committed within its flush interval are missing). Those times come from the key polls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_log_problem: Option<String>,
    pub full_reads: u64,
    /// The key polls' round trips (without `samples_ms`): a bracket is about one to two of
    /// them wide, so this is what the error is made of.
    pub key_poll_rtt_ms: Summary,
}

/// Latency of the 1-minute path's signals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MinuteLatency {
    pub publish_to_visible: Summary,
    pub visibility_error: ErrorBar,
}

/// Latency of the bars the job's watermark closed, measured from the broker ack of the trade
/// whose event time carries the watermark past them (the run's clock trade, or another
/// symbol's trade).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatermarkLatency {
    pub publish_to_visible: Summary,
    pub publish_to_ta_emit: Summary,
    pub ta_emit_to_visible: Summary,
    pub visibility_error: ErrorBar,
    /// How long after that trade the job may rightly hold its watermark: the idle timeout of the
    /// partitions it waits for plus one periodic watermark (30 s + 1 s in production).
    pub hold_allowance_ms: f64,
    /// What p95 publish → visible is judged against: `max_latency_ms` plus the allowance; none
    /// when the scenario sets no `max_latency_ms`.
    pub limit_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub path: String,
    pub description: String,
    pub verdict: Verdict,
    /// Scenario alias → synthetic symbol.
    pub symbols: BTreeMap<String, String>,
    /// Set when the symbols came from a reserved pool: their history and how it was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::pool::PoolReport>,
    /// Set by `audit`: the window, where the audit of the symbol started and how it was seeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::AuditSymbol>,
    /// Messages handed to the producer (acknowledged or not).
    pub messages_published: usize,
    /// Messages the broker acknowledged: `deliveries`.
    pub messages_acknowledged: usize,
    pub deliveries: Vec<Delivery>,
    /// Messages sent but never acknowledged (the scenario stopped on them), with what became
    /// of each: `not_sent`, `landed` (found on the topic afterwards) or `unknown`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<Unconfirmed>,
    pub tables: BTreeMap<String, TableDiff>,
    pub findings: Vec<Finding>,
    /// The API and browser stages, when the scenario asks for them.
    pub stages: Vec<StageReport>,
    pub latency: LatencyReport,
    /// Expected and observed bars with their indicator lines, for the HTML plots.
    #[serde(skip_serializing_if = "Series::is_empty")]
    pub series: Series,
    pub wait_attempts: Vec<Attempt>,
    pub waited_ms: u64,
    /// From the last acknowledgement to the verdict: the wait plus the validator's own work.
    pub verdict_after_publish_ms: u64,
    /// The validator's own time: from the moment the last piece of evidence the verdict rests
    /// on was in hand (`last_evidence`) to the verdict. Absent when the scenario stopped short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_ms: Option<u64>,
    /// That last piece of evidence: `clickhouse_rows` (the poll that first saw the last
    /// expected row answered), `kafka_outputs` (the last output record of the run arrived),
    /// `heartbeat` (the newest heartbeat judged arrived), or a later stage's name (its last
    /// answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evidence: Option<String>,
    pub duration_ms: u64,
    /// Set when the scenario could not run.
    pub error: Option<String>,
}

/// What one poll of a wait saw (`wait_attempts`).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Since the wait started.
    pub at_ms: u64,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub lane: String,
    pub kafka_bootstrap: String,
    pub trades_topic: String,
    pub quotes_topic: String,
    pub clickhouse_url: String,
    pub clickhouse_database: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema: &'static str,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    pub duration_ms: u64,
    pub verdict: Verdict,
    pub exit_code: u8,
    pub target: Target,
    /// This run's evidence directory (`<artifacts_dir>/<run_id>`); stage evidence paths are
    /// relative to `<that>/<scenario>`.
    pub artifacts_dir: String,
    /// `--shard i/n` when the run took a share of the suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub preflight: Vec<PreflightLine>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreflightLine {
    pub component: &'static str,
    pub ok: bool,
    pub detail: String,
    pub elapsed_ms: u64,
}
