//! The contract checks (`jangar.md` §1.1, §1.4–§1.6, §1.8): every 400 message in validation
//! order, the limit and 7-day bounds on both sides, accepted parameter forms, an unknown symbol,
//! and the content type. One check per case; each answer is kept as evidence, which is what the
//! shape snapshots in `tests/it/stack/api_stage/` read.

mod cases;

use std::time::Instant;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::stage::StageContext;

use super::envelope::{show, Envelope};
use super::{findings, Probe, Recorder};
use crate::adapter::jangar::{Endpoint, JangarClient, Reply};

pub(super) use cases::{cases, unknown_symbol};

pub(super) const SEVEN_DAYS: Duration = Duration::days(7);
pub(super) const PATTERN: &str = "symbol must be uppercase letters, numbers, or . _ : -";
pub(super) const LIMIT_RANGE: &str = "limit must be between 1 and 5000";
pub(super) const RANGE_TOO_LONG: &str = "range must be 7 days or less";

/// What a case must answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expect {
    /// 400 `{"ok":false,"message":M,"error":M}`.
    Rejected(&'static str),
    /// 200 bars/signals envelope for `symbol`.
    Range {
        symbol: String,
        count: Count,
        /// `range.requested` as the server must echo it.
        requested: (String, String),
        /// `range.fallback` must be false.
        no_fallback: bool,
    },
    /// 200 `{ok, symbol, bars, signals}`; `empty` means both null.
    Latest { symbol: String, empty: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Count {
    Any,
    Exactly(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    /// Also the evidence file name: `contract-<slug>.json`.
    pub(super) slug: &'static str,
    pub(super) what: &'static str,
    pub(super) endpoint: Endpoint,
    pub(super) query: Vec<(&'static str, String)>,
    pub(super) expect: Expect,
}

impl Case {
    pub(super) fn name(&self) -> String {
        let outcome = match &self.expect {
            Expect::Rejected(m) => format!("400 `{m}`"),
            Expect::Range { .. } | Expect::Latest { .. } => "200".into(),
        };
        format!(
            "contract {}: {} → {outcome}",
            self.endpoint.short(),
            self.what
        )
    }
}

pub(super) async fn check(
    ctx: &StageContext<'_>,
    client: &JangarClient,
    rec: &mut Recorder,
    probe: Option<Probe>,
) {
    let unknown = unknown_symbol(ctx.run_id);
    // Without a symbol that has rows, the validation cases still run, around the unknown one.
    let probe = probe.unwrap_or_else(|| {
        let now = OffsetDateTime::now_utc();
        let to = now.replace_millisecond(0).unwrap_or(now);
        Probe {
            symbol: unknown.clone(),
            from: to - Duration::minutes(5),
            to,
            bars_in_window: None,
            bars_at_from: None,
            exact: false,
        }
    });
    let mut content_types = Vec::new();
    let mut cache_headers = Vec::new();
    for c in cases(&probe, &unknown) {
        let started = Instant::now();
        let query: Vec<(&str, &str)> = c.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = client.get(c.endpoint, &query).await;
        let evidence = rec
            .save(&format!("contract-{}.json", c.slug), &reply.result)
            .await;
        if let Ok(a) = &reply.result {
            content_types.push((c.slug, a.content_type.clone()));
            cache_headers.extend(a.cache_headers.iter().cloned());
        }
        let outcome = judge(rec, &c, &reply);
        rec.check(c.name(), outcome, started, evidence);
    }
    super::zone::check(client, rec, &unknown, probe.to).await;
    content_type_check(rec, &content_types, cache_headers);
}

/// One case's verdict; causes go to the recorder. Shape and message problems are contract
/// drift; a count that differs (or a null newest row) follows from the data, whose own checks
/// name the cause.
fn judge(rec: &mut Recorder, c: &Case, reply: &Reply) -> Result<String, String> {
    let answer = match &reply.result {
        Ok(a) if a.status == 200 || a.status == 400 => a,
        result => {
            rec.findings.call(c.endpoint, result);
            return Err(format!("{} {}", c.endpoint, reply.describe()));
        }
    };
    let verdict = match (&c.expect, answer.status) {
        (Expect::Rejected(m), 400) => Verdict::drift(rejected(answer.json.as_ref(), m)),
        (Expect::Rejected(m), s) => Verdict::drift(vec![format!("answered {s}, not 400 `{m}`")]),
        (_, 400) => Verdict::drift(vec![format!(
            "answered 400 `{}` for valid parameters",
            answer.message().unwrap_or(&answer.body)
        )]),
        (Expect::Range { .. } | Expect::Latest { .. }, _) => match &answer.json {
            None => Verdict::drift(vec!["the body is not JSON".into()]),
            Some(json) => accepted(json, &c.expect),
        },
    };
    if verdict.drift.is_empty() && verdict.data.is_empty() {
        return Ok(match &c.expect {
            Expect::Rejected(_) => "400 with {ok:false, message, error} as specified".into(),
            _ => "200 as specified".into(),
        });
    }
    if !verdict.drift.is_empty() {
        rec.finding(findings::contract(format!(
            "{} with {}: {}",
            c.endpoint,
            c.what,
            verdict.drift.join("; ")
        )));
    }
    let mut all = verdict.drift;
    all.extend(verdict.data);
    Err(all.join("; "))
}

/// Problems of one answer: contract drift, and differences that follow from the data.
#[derive(Debug, Default, PartialEq)]
struct Verdict {
    drift: Vec<String>,
    data: Vec<String>,
}

impl Verdict {
    fn drift(drift: Vec<String>) -> Self {
        Self {
            drift,
            data: Vec::new(),
        }
    }
}

/// `{"ok":false,"message":M,"error":M}` with the exact message.
pub(super) fn rejected(json: Option<&Value>, message: &str) -> Vec<String> {
    let Some(json) = json else {
        return vec!["the 400 body is not JSON".into()];
    };
    let mut problems = Vec::new();
    if json.get("ok") != Some(&Value::Bool(false)) {
        problems.push(format!("ok is {}, not false", show(json.get("ok"))));
    }
    for key in ["message", "error"] {
        if json.get(key).and_then(Value::as_str) != Some(message) {
            problems.push(format!("{key} is {}, not {message:?}", show(json.get(key))));
        }
    }
    problems
}

fn accepted(json: &Value, expect: &Expect) -> Verdict {
    match expect {
        Expect::Range {
            symbol,
            count,
            requested,
            no_fallback,
        } => {
            let env = Envelope::read(json, symbol, &requested.0, &requested.1);
            let mut v = Verdict::drift(env.problems);
            if *no_fallback && env.fallback == Some(true) {
                v.drift.push("range.fallback is true".into());
            }
            if let Count::Exactly(n) = count {
                if env.items.len() != *n {
                    v.data.push(format!("{} items, not {n}", env.items.len()));
                }
            }
            v
        }
        Expect::Latest { symbol, empty } => {
            let mut v = Verdict::default();
            if json.get("ok") != Some(&Value::Bool(true)) {
                v.drift.push(format!("ok is {}", show(json.get("ok"))));
            }
            if json.get("symbol").and_then(Value::as_str) != Some(symbol.as_str()) {
                v.drift
                    .push(format!("symbol is {}", show(json.get("symbol"))));
            }
            for key in ["bars", "signals"] {
                match (json.get(key), empty) {
                    (None, _) => v.drift.push(format!("{key} is missing")),
                    (Some(Value::Null), true) | (Some(Value::Object(_)), false) => {}
                    (Some(Value::Null), false) => v.data.push(format!("{key} is null, not a row")),
                    (Some(x), true) => v.drift.push(format!("{key} is {x}, not null")),
                    (Some(x), false) => v.drift.push(format!("{key} is {x}, not a row")),
                }
            }
            v
        }
        Expect::Rejected(_) => Verdict::default(),
    }
}

/// Every answer is `application/json` (§1.8); caching headers are reported, not failed (an
/// ingress in front of Jangar may add them).
fn content_type_check(
    rec: &mut Recorder,
    seen: &[(&str, Option<String>)],
    mut cache_headers: Vec<String>,
) {
    let started = Instant::now();
    let wrong: Vec<String> = seen
        .iter()
        .filter(|(_, ct)| {
            !ct.as_deref()
                .is_some_and(|v| v.trim().starts_with("application/json"))
        })
        .map(|(slug, ct)| format!("{slug}: {}", ct.as_deref().unwrap_or("none")))
        .collect();
    cache_headers.sort();
    cache_headers.dedup();
    let caching = if cache_headers.is_empty() {
        "no caching headers".to_string()
    } else {
        format!("caching headers present: {}", cache_headers.join(", "))
    };
    let outcome = if seen.is_empty() {
        Err("no answer to check".to_string())
    } else if wrong.is_empty() {
        Ok(format!(
            "{} answers are application/json; {caching}",
            seen.len()
        ))
    } else {
        let detail = format!("not application/json: {}", wrong.join(", "));
        rec.finding(findings::contract(detail.clone()));
        Err(detail)
    };
    rec.check("contract content type", outcome, started, Vec::new());
}
