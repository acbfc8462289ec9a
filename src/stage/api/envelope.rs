//! The envelope of a bars or signals answer and the encoding check of its rows
//! (`jangar.md` §1.4): what counts as contract drift and which findings it implies.

use std::time::Instant;

use serde_json::Value;

use super::decode::Encoding;
use super::{findings, Recorder};
use crate::adapter::jangar::Endpoint;

const AS_SPECIFIED: &str =
    "envelope as specified, zone-less UTC timestamps, UInt64 as strings, ascending event_ts";

/// A bars or signals answer's envelope: `{ok, symbol, items, range}` (`jangar.md` §1.4).
pub(crate) struct Envelope<'a> {
    pub items: &'a [Value],
    pub fallback: Option<bool>,
    /// `range.effective` as sent (zone-less ISO).
    pub effective: Option<(String, String)>,
    pub problems: Vec<String>,
}

impl<'a> Envelope<'a> {
    /// `from`/`to` are the zone-less forms `range.requested` must echo.
    pub fn read(json: &'a Value, symbol: &str, from: &str, to: &str) -> Self {
        let mut problems = ok_and_symbol(json, symbol);
        let items = match json.get("items").and_then(Value::as_array) {
            Some(items) => items.as_slice(),
            None => {
                problems.push("items is not an array".into());
                &[]
            }
        };
        let range = json.get("range");
        let pair = |key: &str| {
            let w = range?.get(key)?;
            Some((
                w.get("from")?.as_str()?.to_string(),
                w.get("to")?.as_str()?.to_string(),
            ))
        };
        let requested = pair("requested");
        let effective = pair("effective");
        let wanted = (from.to_string(), to.to_string());
        if requested.as_ref() != Some(&wanted) {
            problems.push(format!(
                "range.requested is {}, not {{from: {from}, to: {to}}} (zone-less UTC)",
                show(range.and_then(|r| r.get("requested")))
            ));
        }
        let fallback = range
            .and_then(|r| r.get("fallback"))
            .and_then(Value::as_bool);
        match fallback {
            None => problems.push("range.fallback is not a boolean".into()),
            Some(false) if effective != requested => problems
                .push("range.effective differs from range.requested without fallback".into()),
            _ => {}
        }
        if effective.is_none() {
            problems.push("range.effective is missing".into());
        }
        Self {
            items,
            fallback,
            effective,
            problems,
        }
    }
}

/// `ok: true` and the requested `symbol`, which every TA answer carries (`jangar.md` §1.4, §1.5).
pub(crate) fn ok_and_symbol(json: &Value, symbol: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if json.get("ok") != Some(&Value::Bool(true)) {
        problems.push(format!("ok is {}, not true", show(json.get("ok"))));
    }
    if json.get("symbol").and_then(Value::as_str) != Some(symbol) {
        problems.push(format!(
            "symbol is {}, not {symbol:?}",
            show(json.get("symbol"))
        ));
    }
    problems
}

pub(crate) fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "missing".to_string(), Value::to_string)
}

/// Records an encoding check and the findings its problems imply. `problems` are the
/// envelope's; a fallback on a window with rows is a finding of its own, not contract drift.
pub(crate) fn encoding_check(
    rec: &mut Recorder,
    endpoint: Endpoint,
    name: &str,
    problems: Vec<String>,
    encoding: &Encoding,
    started: Instant,
    evidence: Vec<String>,
) {
    if !encoding.unquoted_u64.is_empty() {
        rec.findings.unquoted_u64(endpoint, &encoding.unquoted_u64);
    }
    let drift: Vec<&String> = problems.iter().filter(|p| *p != FALLBACK_TRUE).collect();
    if !drift.is_empty() || !encoding.problems.is_empty() || !encoding.missing_columns.is_empty() {
        let mut all: Vec<String> = drift.into_iter().cloned().collect();
        all.extend(encoding.problems.iter().cloned());
        all.extend(
            encoding
                .missing_columns
                .iter()
                .map(|c| format!("column {c} is missing")),
        );
        rec.finding(findings::contract(format!(
            "{endpoint}: {}",
            all.join("; ")
        )));
    }
    let ok = problems.is_empty() && encoding.is_acceptable(rec.strict);
    let described = encoding.describe();
    let detail = match (ok, described.is_empty()) {
        (true, true) => AS_SPECIFIED.to_string(),
        (true, false) if encoding.tolerated_drift(rec.strict) => {
            format!("values decoded despite drift (a warning; jangar.strict_contract fails it): {described}")
        }
        (true, false) => format!("as specified; {described}"),
        (false, _) => {
            let mut all = problems;
            if !described.is_empty() {
                all.push(described);
            }
            all.join("; ")
        }
    };
    rec.check(
        name,
        if ok { Ok(detail) } else { Err(detail) },
        started,
        evidence,
    );
}

/// The envelope problem for a stale-window fallback (see [`findings::fallback_used`]).
pub(crate) const FALLBACK_TRUE: &str = "range.fallback is true";
