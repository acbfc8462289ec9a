//! From what the API answered to a cause at the ClickHouse → Jangar API hop, with a runbook.
//!
//! The same fault usually shows on every endpoint (a wrong `CH_DATABASE` breaks bars, signals
//! and latest alike), so such causes are grouped and the finding lists the endpoints.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::diagnose::{
    Finding, Hop, RUNBOOK_DUPLICATES, RUNBOOK_JANGAR_CLICKHOUSE, RUNBOOK_JANGAR_CONTRACT,
    RUNBOOK_JANGAR_DATABASE, RUNBOOK_JANGAR_DOWN, RUNBOOK_JANGAR_FRESHNESS,
};

use crate::adapter::jangar::{first_line, ApiError, CallResult, Endpoint};

/// A cause that several endpoints can share; the grouping key of findings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// 500 whose ClickHouse error is UNKNOWN_TABLE or UNKNOWN_DATABASE (`jangar.md` §1.3).
    WrongDatabase,
    /// 503 `CH_* is not configured` (§1.2).
    NotConfigured,
    /// Any other 500: ClickHouse timed out, refused, rejected the credentials, …
    QueryFailed,
    /// A status the contract does not have for valid parameters (404 route, 502 ingress, …).
    Status(u16),
    Timeout,
    NoAnswer,
    Unreachable,
    /// 200 without rows where this database holds them.
    EmptyWhileStored(String),
    /// UInt64 columns sent as JSON numbers.
    UnquotedU64,
}

impl Failure {
    /// Classifies a call whose answer was not the one expected; `None` for answers that are
    /// contract matters (a wrong 400 message, a 200 where a 400 was due).
    pub fn of(result: &CallResult) -> Option<Failure> {
        match result {
            Ok(a) => {
                let message = a.message().unwrap_or(&a.body);
                match a.status {
                    500 if message.contains("UNKNOWN_TABLE")
                        || message.contains("UNKNOWN_DATABASE") =>
                    {
                        Some(Failure::WrongDatabase)
                    }
                    503 if message.ends_with("is not configured") => Some(Failure::NotConfigured),
                    500 => Some(Failure::QueryFailed),
                    200 | 400 => None,
                    s => Some(Failure::Status(s)),
                }
            }
            Err(ApiError::Timeout(_)) => Some(Failure::Timeout),
            Err(ApiError::NoAnswer(_)) => Some(Failure::NoAnswer),
            Err(ApiError::Connect(_) | ApiError::Url(_)) => Some(Failure::Unreachable),
            // Already counted when the endpoint first failed.
            Err(ApiError::Skipped(_)) => None,
        }
    }
}

/// The endpoints that showed a cause, and what each said (first one first).
#[derive(Debug, Default)]
struct Group {
    endpoints: BTreeSet<Endpoint>,
    texts: Vec<String>,
}

/// Findings collected over a stage.
#[derive(Debug, Default)]
pub struct Findings {
    groups: BTreeMap<Failure, Group>,
    other: Vec<Finding>,
    /// `jangar.strict_contract`: drift the page survives is a failure, not a warning.
    strict: bool,
}

impl Findings {
    pub fn new(strict: bool) -> Self {
        Self {
            strict,
            ..Self::default()
        }
    }

    /// Drift the page survives: a warning, or a failure under `jangar.strict_contract`.
    pub fn drift(&mut self, cause: String, runbook: &'static str) {
        let finding = if self.strict {
            Finding::failure(Hop::JangarApi, cause, runbook)
        } else {
            Finding::warning(Hop::JangarApi, cause, runbook)
        };
        self.push(finding);
    }

    /// Notes a call that did not answer as it should; returns whether it was a transport or
    /// server failure (as opposed to a contract matter).
    pub fn call(&mut self, endpoint: Endpoint, result: &CallResult) -> bool {
        let Some(failure) = Failure::of(result) else {
            return false;
        };
        let text = match result {
            Ok(a) => format!(
                "{} `{}`",
                a.status,
                first_line(a.message().unwrap_or(&a.body))
            ),
            Err(e) => e.to_string(),
        };
        self.group(failure, endpoint, text);
        true
    }

    pub fn group(&mut self, failure: Failure, endpoint: Endpoint, text: String) {
        let g = self.groups.entry(failure).or_default();
        g.endpoints.insert(endpoint);
        if !g.texts.contains(&text) {
            g.texts.push(text);
        }
    }

    pub fn push(&mut self, finding: Finding) {
        if !self.other.contains(&finding) {
            self.other.push(finding);
        }
    }

    /// Grouped causes first (server and transport, the most fundamental), then the rest in the
    /// order found.
    pub fn into_vec(self, base_url: &str) -> Vec<Finding> {
        let strict = self.strict;
        let mut out: Vec<Finding> = self
            .groups
            .into_iter()
            .map(|(failure, group)| grouped(&failure, &group, base_url, strict))
            .collect();
        out.extend(self.other);
        out
    }
}

fn grouped(failure: &Failure, group: &Group, base_url: &str, strict: bool) -> Finding {
    let list = group
        .endpoints
        .iter()
        .map(|e| e.path())
        .collect::<Vec<_>>()
        .join(", ");
    let text = group.texts.first().map(String::as_str).unwrap_or_default();
    let (cause, runbook) = match failure {
        Failure::WrongDatabase => {
            let name = if text.contains("UNKNOWN_DATABASE") {
                "UNKNOWN_DATABASE"
            } else {
                "UNKNOWN_TABLE"
            };
            (
                format!(
                    "Jangar's CH_DATABASE does not point at the TA database (ClickHouse says \
                     {name}): {list} answered {text}"
                ),
                RUNBOOK_JANGAR_DATABASE,
            )
        }
        Failure::NotConfigured => (
            format!("Jangar's ClickHouse settings are incomplete: {list} answered {text}"),
            RUNBOOK_JANGAR_CLICKHOUSE,
        ),
        Failure::QueryFailed => (
            format!("Jangar's ClickHouse query failed: {list} answered {text}"),
            RUNBOOK_JANGAR_CLICKHOUSE,
        ),
        Failure::Status(_) => (
            format!("{list} answered {text}, a status the contract does not have"),
            RUNBOOK_JANGAR_CONTRACT,
        ),
        Failure::Timeout => (
            format!("the API is too slow or hung: {list} gave {text}"),
            RUNBOOK_JANGAR_DOWN,
        ),
        Failure::NoAnswer => (
            format!("Jangar dropped the connection: {list}: {text}"),
            RUNBOOK_JANGAR_DOWN,
        ),
        Failure::Unreachable => (
            format!("Jangar at {base_url} is unreachable ({list}): {text}"),
            RUNBOOK_JANGAR_DOWN,
        ),
        Failure::EmptyWhileStored(db) => (
            format!(
                "the API returns no rows where {db} holds them ({}): Jangar reads another \
                 database or table (its CH_DATABASE is not {db})",
                group.texts.join("; ")
            ),
            RUNBOOK_JANGAR_DATABASE,
        ),
        Failure::UnquotedU64 => {
            let columns: BTreeSet<&str> = group.texts.iter().flat_map(|t| t.split(", ")).collect();
            let cause = format!(
                "{list} send UInt64 columns ({}) as JSON numbers, not strings: Jangar's \
                     ClickHouse no longer quotes 64-bit integers \
                     (output_format_json_quote_64bit_integers is 0 by default from 25.8), so \
                     values above 2^53 lose precision in the browser; the page survives it \
                     and the values were compared{}",
                columns.into_iter().collect::<Vec<_>>().join(", "),
                if strict {
                    " (a failure: jangar.strict_contract is set)"
                } else {
                    ""
                }
            );
            // Drift the page survives: a warning unless strict (jangar.md §6.7).
            return if strict {
                api(cause, RUNBOOK_JANGAR_CONTRACT)
            } else {
                Finding::warning(Hop::JangarApi, cause, RUNBOOK_JANGAR_CONTRACT)
            };
        }
    };
    api(cause, runbook)
}

pub fn api(cause: String, runbook: &'static str) -> Finding {
    Finding::failure(Hop::JangarApi, cause, runbook)
}

impl Findings {
    /// The API shows nothing for a window ClickHouse has rows in.
    pub fn empty_while_stored(
        &mut self,
        endpoint: Endpoint,
        symbol: &str,
        stored: usize,
        db: &str,
    ) {
        self.group(
            Failure::EmptyWhileStored(db.to_string()),
            endpoint,
            format!("{endpoint}: 0 of {stored} rows of {symbol}"),
        );
    }

    pub fn unquoted_u64(&mut self, endpoint: Endpoint, columns: &BTreeSet<String>) {
        let list: Vec<&str> = columns.iter().map(String::as_str).collect();
        self.group(Failure::UnquotedU64, endpoint, list.join(", "));
    }
}

/// Values differ between ClickHouse and the API for the same rows.
pub fn serialization(endpoint: Endpoint, columns: &[String]) -> Finding {
    api(
        format!(
            "{endpoint} rows differ from ClickHouse's in {}: Jangar's serialization changes \
             the values",
            columns.join(", ")
        ),
        RUNBOOK_JANGAR_CONTRACT,
    )
}

pub fn duplicates(endpoint: Endpoint, n: usize) -> Finding {
    api(
        format!(
            "{endpoint} shows {n} duplicate rows: Jangar reads without FINAL, so rows written \
             twice stay visible until parts merge"
        ),
        RUNBOOK_DUPLICATES,
    )
}

pub fn contract(detail: String) -> Finding {
    api(
        format!("the API breaks its contract: {detail}"),
        RUNBOOK_JANGAR_CONTRACT,
    )
}

pub fn stale(age_ms: i64, max_ms: u128, symbol: &str) -> Finding {
    api(
        format!(
            "API freshness for {symbol} is {:.1} s (now − newest event_ts), over the {:.1} s \
             threshold",
            age_ms as f64 / 1000.0,
            max_ms as f64 / 1000.0
        ),
        RUNBOOK_JANGAR_FRESHNESS,
    )
}

/// Jangar used its stale-window fallback for a window ClickHouse has rows in.
pub fn fallback_used(endpoint: Endpoint, symbol: &str) -> Finding {
    api(
        format!(
            "{endpoint} used its stale-window fallback (range.fallback true) for {symbol}'s window, \
             which holds rows: Jangar's window query found none, so its ClickHouse reads the \
             zone-less DateTime64 parameters in a non-UTC timezone or it reads another database"
        ),
        RUNBOOK_JANGAR_DATABASE,
    )
}
