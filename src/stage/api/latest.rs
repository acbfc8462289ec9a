//! `/ta/latest` against ClickHouse's newest rows (`jangar.md` §1.6), and API freshness:
//! now − the newest `event_ts` seen through the API, under the configured threshold.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::adapter::clickhouse::{ClickHouse, ClickHouseError};
use crate::domain::diagnose::RUNBOOK_JANGAR_DATABASE;
use crate::domain::model::{iso_millis, Microbar, Signal};

use super::decode::{self, Decoded, Encoding};
use super::envelope::ok_and_symbol;
use super::rows::ApiRow;
use super::{findings, Recorder};
use crate::adapter::jangar::{Endpoint, JangarClient};

/// The newest bar and signal of a symbol, read the way `/ta/latest` reads them (no FINAL, no
/// time bound, no `seq` tie-break). `database` overrides the client's (live-symbol mode).
pub(super) async fn newest(
    ch: &ClickHouse,
    database: Option<&str>,
    symbol: &str,
) -> Result<(Option<Microbar>, Option<Signal>), ClickHouseError> {
    let client = match database {
        Some(db) => ch.client().clone().with_database(db),
        None => ch.client().clone(),
    };
    let sql = |table: &str| {
        format!("SELECT ?fields FROM {table} WHERE symbol = ? ORDER BY event_ts DESC LIMIT 1")
    };
    let bar = client
        .query(&sql("ta_microbars"))
        .bind(symbol)
        .fetch_optional::<Microbar>();
    let bar = ch.bounded(bar).await?;
    let signal = client
        .query(&sql("ta_signals"))
        .bind(symbol)
        .fetch_optional::<Signal>();
    let signal = ch.bounded(signal).await?;
    Ok((bar, signal))
}

/// The `latest <label>` check. ClickHouse is read just before and just after the call, so a
/// row landing meanwhile cannot fail it. Returns the API's newest bar `event_ts`.
pub(super) async fn check(
    ch: &ClickHouse,
    database: Option<&str>,
    client: &JangarClient,
    rec: &mut Recorder,
    label: &str,
    symbol: &str,
) -> Option<OffsetDateTime> {
    let started = Instant::now();
    let name = format!("latest {label}");
    let before = newest(ch, database, symbol).await;
    let reply = client.get(Endpoint::Latest, &[("symbol", symbol)]).await;
    let after = newest(ch, database, symbol).await;
    let evidence = rec
        .save(&format!("latest-{label}.json"), &reply.result)
        .await;
    let json = match rec.expect_ok(Endpoint::Latest, &reply) {
        Ok(json) => json,
        Err(detail) => {
            rec.check(name, Err(detail), started, evidence);
            return None;
        }
    };
    let ((bar_before, signal_before), (bar_after, signal_after)) = match (before, after) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => {
            let detail = format!("cannot read ClickHouse's newest rows: {e}");
            rec.check(name, Err(detail), started, evidence);
            return None;
        }
    };
    let mut problems = ok_and_symbol(json, symbol);
    let mut encoding = Encoding::default();
    let bar = row(json, "bars", decode::microbar, &mut encoding, &mut problems);
    let signal = row(
        json,
        "signals",
        decode::signal,
        &mut encoding,
        &mut problems,
    );
    let db = database.unwrap_or(ch.database());
    let bars = Newest {
        key: "bars",
        api: bar.as_ref(),
        before: bar_before.as_ref(),
        after: bar_after.as_ref(),
    };
    let signals = Newest {
        key: "signals",
        api: signal.as_ref(),
        before: signal_before.as_ref(),
        after: signal_after.as_ref(),
    };
    problems.extend(bars.judge(rec, symbol, db));
    problems.extend(signals.judge(rec, symbol, db));
    note_encoding(rec, &encoding);
    let described = encoding.describe();
    if !encoding.is_acceptable(rec.strict) {
        problems.push(described.clone());
    }
    let outcome = if problems.is_empty() {
        let drift = if encoding.tolerated_drift(rec.strict) {
            format!(" (values decoded despite drift, a warning: {described})")
        } else {
            String::new()
        };
        Ok(format!(
            "newest bar {} and signal {} equal ClickHouse's{drift}",
            bars.shown(),
            signals.shown()
        ))
    } else {
        Err(problems.join("; "))
    };
    rec.check(name, outcome, started, evidence);
    bar.map(|b| b.event_ts)
}

fn note_encoding(rec: &mut Recorder, encoding: &Encoding) {
    if !encoding.unquoted_u64.is_empty() {
        rec.findings
            .unquoted_u64(Endpoint::Latest, &encoding.unquoted_u64);
    }
    if !encoding.problems.is_empty() || !encoding.missing_columns.is_empty() {
        rec.finding(findings::contract(format!(
            "{}: {}",
            Endpoint::Latest,
            encoding.describe()
        )));
    }
}

/// `bars` / `signals` of the answer: a row, or `null` for a symbol without data.
fn row<R>(
    json: &Value,
    key: &str,
    decode: fn(&Value) -> Decoded<R>,
    encoding: &mut Encoding,
    problems: &mut Vec<String>,
) -> Option<R> {
    match json.get(key) {
        None => {
            problems.push(format!("{key} is missing"));
            None
        }
        Some(Value::Null) => None,
        Some(item) => {
            let d = decode(item);
            encoding.merge(d.encoding);
            d.row
        }
    }
}

/// One table's newest row as the API gave it and as ClickHouse had it around the call.
struct Newest<'a, R> {
    key: &'static str,
    api: Option<&'a R>,
    before: Option<&'a R>,
    after: Option<&'a R>,
}

impl<R: ApiRow> Newest<'_, R> {
    fn shown(&self) -> String {
        self.api
            .map_or_else(|| "none".into(), |r| iso_millis(r.event_ts()))
    }

    /// `None` when the API's row is ClickHouse's; otherwise the problem, its cause noted.
    fn judge(&self, rec: &mut Recorder, symbol: &str, db: &str) -> Option<String> {
        let key = self.key;
        if self.api == self.before || self.api == self.after {
            return None;
        }
        let Some(ch) = self.after.or(self.before) else {
            return Some(format!("{key} is a row ClickHouse does not have"));
        };
        let Some(api) = self.api else {
            rec.findings
                .empty_while_stored(Endpoint::Latest, symbol, 1, db);
            return Some(format!("{key} is null while {db} has rows for {symbol}"));
        };
        if api.key() != ch.key() {
            rec.finding(findings::api(
                format!(
                    "{} returned {} as {symbol}'s newest {key}, but ClickHouse's newest is {}",
                    Endpoint::Latest,
                    api.key(),
                    ch.key()
                ),
                RUNBOOK_JANGAR_DATABASE,
            ));
            return Some(format!(
                "{key} is {}, but ClickHouse's newest is {}",
                api.key(),
                ch.key()
            ));
        }
        let columns: Vec<String> = api
            .cells()
            .into_iter()
            .zip(ch.cells())
            .filter(|(a, c)| a.1 != c.1)
            .map(|(a, _)| a.0.to_string())
            .collect();
        rec.finding(findings::serialization(Endpoint::Latest, &columns));
        Some(format!(
            "{key} differs from ClickHouse's in {}",
            columns.join(", ")
        ))
    }
}

/// Now − the newest `event_ts` seen through the API, per symbol, under `max`.
pub(super) fn freshness(
    rec: &mut Recorder,
    newest: &[(String, Option<OffsetDateTime>)],
    max: Duration,
) {
    let started = Instant::now();
    let now = OffsetDateTime::now_utc();
    let mut parts = Vec::new();
    let mut ok = true;
    let mut ages = Map::new();
    for (symbol, seen) in newest {
        let Some(t) = seen else {
            ok = false;
            parts.push(format!("{symbol}: no row seen through the API"));
            continue;
        };
        let age_ms = (now - *t).whole_milliseconds() as i64;
        ages.insert(symbol.clone(), Value::from(age_ms));
        parts.push(format!("{symbol} {:.1} s", age_ms as f64 / 1000.0));
        // A negative age is a clock problem or a row from the future: not fresh either.
        if age_ms < 0 || age_ms as u128 > max.as_millis() {
            ok = false;
            rec.finding(findings::stale(age_ms, max.as_millis(), symbol));
        }
    }
    rec.observe("freshness_ms", Value::Object(ages));
    let detail = format!(
        "now − newest event_ts: {} (threshold {} s)",
        parts.join(", "),
        max.as_secs_f64()
    );
    let outcome = if ok { Ok(detail) } else { Err(detail) };
    rec.check("freshness", outcome, started, Vec::new());
}
