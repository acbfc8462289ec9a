//! The contract checks (`jangar.md` §1.1, §1.4–§1.6, §1.8): every 400 message in validation
//! order, the limit and 7-day bounds on both sides, accepted parameter forms, an unknown symbol,
//! and the content type. One check per case; each answer is kept as evidence, which is what the
//! shape snapshots in `tests/api_stage.rs` read.

use std::time::Instant;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::model::iso_millis;
use crate::domain::symbols;
use crate::stage::StageContext;

use super::decode::range_form;
use super::envelope::{show, Envelope};
use super::{findings, Probe, Recorder};
use crate::adapter::jangar::{Endpoint, JangarClient, Reply};

const SEVEN_DAYS: Duration = Duration::days(7);
const PATTERN: &str = "symbol must be uppercase letters, numbers, or . _ : -";
const LIMIT_RANGE: &str = "limit must be between 1 and 5000";
const RANGE_TOO_LONG: &str = "range must be 7 days or less";

/// What a case must answer.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
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
enum Count {
    Any,
    Exactly(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    /// Also the evidence file name: `contract-<slug>.json`.
    slug: &'static str,
    what: &'static str,
    endpoint: Endpoint,
    query: Vec<(&'static str, String)>,
    expect: Expect,
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

fn case(
    slug: &'static str,
    what: &'static str,
    endpoint: Endpoint,
    query: &[(&'static str, &str)],
    expect: Expect,
) -> Case {
    Case {
        slug,
        what,
        endpoint,
        query: query.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        expect,
    }
}

/// The reserved symbol no run writes: Jangar must answer it with empty data, not an error.
pub(super) fn unknown_symbol(run: &symbols::RunId) -> String {
    symbols::synthetic(run, "NODATA")
}

/// Every case, built around a symbol that has rows in a window.
pub(super) fn cases(p: &Probe, unknown: &str) -> Vec<Case> {
    use Endpoint::{Bars, Latest, Signals};
    use Expect::Rejected;
    let s = p.symbol.as_str();
    let (f, t) = (iso_millis(p.from), iso_millis(p.to));
    let before_from = iso_millis(p.from - Duration::seconds(1));
    let week = iso_millis(p.to - SEVEN_DAYS);
    let week_and_ms = iso_millis(p.to - SEVEN_DAYS - Duration::milliseconds(1));
    let long = iso_millis(p.to - Duration::days(8));
    let n = |known: Option<usize>| match (p.exact, known) {
        (true, Some(n)) => Count::Exactly(n),
        _ => Count::Any,
    };
    let range =
        |symbol: &str, count: Count, from: OffsetDateTime, to: OffsetDateTime| Expect::Range {
            symbol: symbol.to_string(),
            count,
            requested: (range_form(from), range_form(to)),
            no_fallback: p.exact,
        };
    let all = n(p.bars_in_window);
    let from_ms = (p.from.unix_timestamp_nanos() / 1_000_000).to_string();
    let to_ms = (p.to.unix_timestamp_nanos() / 1_000_000).to_string();
    let from_s = p.from.unix_timestamp().to_string();
    // Ceiling, so the window in whole seconds still holds every bar.
    let to_s_value = p.to.unix_timestamp() + i64::from(p.to.nanosecond() > 0);
    let to_s = to_s_value.to_string();
    let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap_or(p.to);
    let long_symbol = "A".repeat(33);
    let lower = s.to_lowercase();
    vec![
        // §1.1, in validation order.
        case(
            "bars-no-symbol",
            "no symbol",
            Bars,
            &[("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "bars-blank-symbol",
            "blank symbol",
            Bars,
            &[("symbol", "  "), ("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "bars-slash-symbol",
            "symbol BTC/USD",
            Bars,
            &[("symbol", "BTC/USD"), ("from", &f), ("to", &t)],
            Rejected(PATTERN),
        ),
        case(
            "bars-long-symbol",
            "33-character symbol",
            Bars,
            &[("symbol", &long_symbol), ("from", &f), ("to", &t)],
            Rejected(PATTERN),
        ),
        case(
            "bars-no-from",
            "no from",
            Bars,
            &[("symbol", s), ("to", &t)],
            Rejected("from is required"),
        ),
        case(
            "bars-bad-from",
            "from not a time",
            Bars,
            &[("symbol", s), ("from", "not-a-date"), ("to", &t)],
            Rejected("from must be a valid timestamp"),
        ),
        case(
            "bars-no-to",
            "no to",
            Bars,
            &[("symbol", s), ("from", &f)],
            Rejected("to is required"),
        ),
        case(
            "bars-bad-to",
            "to not a time",
            Bars,
            &[("symbol", s), ("from", &f), ("to", "not-a-date")],
            Rejected("to must be a valid timestamp"),
        ),
        case(
            "bars-to-before-from",
            "to before from",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &before_from)],
            Rejected("to must be after from"),
        ),
        case(
            "bars-range-7d-1ms",
            "7 days + 1 ms",
            Bars,
            &[("symbol", s), ("from", &week_and_ms), ("to", &t)],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "bars-limit-abc",
            "limit=abc",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "abc")],
            Rejected("limit must be a number"),
        ),
        case(
            "bars-limit-0",
            "limit=0",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "0")],
            Rejected(LIMIT_RANGE),
        ),
        case(
            "bars-limit-5001",
            "limit=5001",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5001")],
            Rejected(LIMIT_RANGE),
        ),
        // The first failing rule wins.
        case(
            "bars-order-symbol-first",
            "bad symbol and no from",
            Bars,
            &[("symbol", "BAD SYM")],
            Rejected(PATTERN),
        ),
        case(
            "bars-order-range-before-limit",
            "8 days and limit=abc",
            Bars,
            &[("symbol", s), ("from", &long), ("to", &t), ("limit", "abc")],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "bars-order-to-before-limit",
            "to before from and limit=0",
            Bars,
            &[
                ("symbol", s),
                ("from", &f),
                ("to", &before_from),
                ("limit", "0"),
            ],
            Rejected("to must be after from"),
        ),
        // Accepted forms and bounds.
        case(
            "bars-range-7d",
            "exactly 7 days",
            Bars,
            &[("symbol", s), ("from", &week), ("to", &t)],
            range(s, Count::Any, p.to - SEVEN_DAYS, p.to),
        ),
        case(
            "bars-limit-5000",
            "limit=5000",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5000")],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-limit-1",
            "limit=1 (the oldest row)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "1")],
            range(s, n(p.bars_in_window.map(|n| n.min(1))), p.from, p.to),
        ),
        // `Number.parseInt` reads the leading digits: "2abc" is 2 and "1.9" is 1.
        case(
            "bars-limit-2abc",
            "limit=2abc (parseInt)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "2abc")],
            range(s, n(p.bars_in_window.map(|n| n.min(2))), p.from, p.to),
        ),
        case(
            "bars-limit-1.9",
            "limit=1.9 (parseInt)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "1.9")],
            range(s, n(p.bars_in_window.map(|n| n.min(1))), p.from, p.to),
        ),
        case(
            "bars-from-equals-to",
            "from = to",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &f)],
            range(s, n(p.bars_at_from), p.from, p.from),
        ),
        case(
            "bars-empty-limit",
            "empty limit (default 1000)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "")],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-lowercase-symbol",
            "lower-case symbol",
            Bars,
            &[("symbol", &lower), ("from", &f), ("to", &t)],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-epoch-ms",
            "epoch milliseconds",
            Bars,
            &[("symbol", s), ("from", &from_ms), ("to", &to_ms)],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-epoch-s",
            "epoch seconds",
            Bars,
            &[("symbol", s), ("from", &from_s), ("to", &to_s)],
            range(s, all, at(p.from.unix_timestamp()), at(to_s_value)),
        ),
        case(
            "bars-unknown-symbol",
            "unknown symbol",
            Bars,
            &[("symbol", unknown), ("from", &f), ("to", &t)],
            Expect::Range {
                symbol: unknown.into(),
                count: Count::Exactly(0),
                requested: (range_form(p.from), range_form(p.to)),
                no_fallback: true,
            },
        ),
        // Signals share the validation (§1.5).
        case(
            "signals-no-symbol",
            "no symbol",
            Signals,
            &[("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "signals-limit-5001",
            "limit=5001",
            Signals,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5001")],
            Rejected(LIMIT_RANGE),
        ),
        case(
            "signals-range-8d",
            "8 days",
            Signals,
            &[("symbol", s), ("from", &long), ("to", &t)],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "signals-unknown-symbol",
            "unknown symbol",
            Signals,
            &[("symbol", unknown), ("from", &f), ("to", &t)],
            Expect::Range {
                symbol: unknown.into(),
                count: Count::Exactly(0),
                requested: (range_form(p.from), range_form(p.to)),
                no_fallback: true,
            },
        ),
        // Latest: only `symbol` (§1.6).
        case(
            "latest-no-symbol",
            "no symbol",
            Latest,
            &[],
            Rejected("symbol is required"),
        ),
        case(
            "latest-slash-symbol",
            "symbol BTC/USD",
            Latest,
            &[("symbol", "BTC/USD")],
            Rejected(PATTERN),
        ),
        case(
            "latest-unknown-symbol",
            "unknown symbol",
            Latest,
            &[("symbol", unknown)],
            Expect::Latest {
                symbol: unknown.into(),
                empty: true,
            },
        ),
        case(
            "latest-ignores-range",
            "from/to/limit ignored",
            Latest,
            &[("symbol", s), ("from", "x"), ("limit", "abc")],
            Expect::Latest {
                symbol: s.into(),
                empty: false,
            },
        ),
    ]
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
