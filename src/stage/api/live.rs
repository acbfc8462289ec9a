//! Live-symbol mode: where Jangar cannot see synthetic symbols (production reads only `torghut`
//! and lists only the trading universe), observe a configured symbol of the universe instead.
//!
//! There is no oracle for live data, so the API is held to ClickHouse read exactly the way
//! Jangar reads it: the same window (`range.effective`, which follows the stale-window fallback
//! when the market is closed), no FINAL, `ORDER BY event_ts ASC LIMIT n`, compared as multisets
//! (duplicates a merge has not collapsed yet show on both sides). The database is Jangar's
//! (`jangar.clickhouse_database`, default `torghut`), read only, never the validator's own.

use std::time::Instant;

use serde_json::Value;
use time::OffsetDateTime;

use crate::adapter::clickhouse::{ClickHouse, ClickHouseError};
use crate::domain::model::{iso_millis, Microbar, Signal};
use crate::stage::StageContext;

use super::decode::{self, range_form};
use super::envelope::{encoding_check, Envelope};
use super::latest;
use super::rows::{self, ApiRow};
use super::{findings, Probe, Recorder};
use crate::adapter::jangar::JangarClient;

/// Jangar's `CH_DATABASE` default and the deployed value (`jangar.md` §1.2).
pub const JANGAR_DATABASE: &str = "torghut";
/// The window ends this far back, so rows still in flight (TA emission, sink batching) cannot
/// make the two reads differ.
const SETTLE: time::Duration = time::Duration::seconds(60);
const SPAN: time::Duration = time::Duration::minutes(5);
const LIMIT: usize = 5000;
/// Reads of both sides when they differ: a merge or a late row between the two reads explains
/// one difference, not two in a row.
const ROUNDS: usize = 2;

pub(super) async fn observe(
    ctx: &StageContext<'_>,
    client: &JangarClient,
    rec: &mut Recorder,
    symbol: &str,
) -> Option<Probe> {
    let db = ctx
        .config
        .jangar
        .clickhouse_database
        .as_deref()
        .unwrap_or(JANGAR_DATABASE);
    rec.observe("live_symbol", Value::from(symbol));
    rec.observe("clickhouse_database", Value::from(db));
    let now = OffsetDateTime::now_utc();
    let to = now.replace_millisecond(0).unwrap_or(now) - SETTLE;
    let from = to - SPAN;
    table::<Microbar>(ctx.clickhouse, client, rec, db, symbol, from, to).await;
    table::<Signal>(ctx.clickhouse, client, rec, db, symbol, from, to).await;
    let newest = latest::check(ctx.clickhouse, Some(db), client, rec, "live", symbol).await;
    latest::freshness(
        rec,
        &[(symbol.to_string(), newest)],
        ctx.config.jangar.max_freshness,
    );
    Some(Probe {
        symbol: symbol.to_string(),
        from,
        to,
        bars_in_window: None,
        bars_at_from: None,
        exact: false,
    })
}

/// Rows of `symbol` in [from, to] (zone-less UTC, inclusive) the way Jangar selects them.
async fn read_window<R: ApiRow>(
    ch: &ClickHouse,
    db: &str,
    symbol: &str,
    from: &str,
    to: &str,
) -> Result<Vec<R>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM {} WHERE symbol = ? \
         AND event_ts >= parseDateTime64BestEffort(?, 3, 'UTC') \
         AND event_ts <= parseDateTime64BestEffort(?, 3, 'UTC') \
         ORDER BY event_ts ASC LIMIT {LIMIT}",
        R::TABLE.name()
    );
    let client = ch.client().clone().with_database(db);
    ch.bounded(
        client
            .query(&sql)
            .bind(symbol)
            .bind(from)
            .bind(to)
            .fetch_all::<R>(),
    )
    .await
}

async fn table<R: ApiRow>(
    ch: &ClickHouse,
    client: &JangarClient,
    rec: &mut Recorder,
    db: &str,
    symbol: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) {
    let started = Instant::now();
    let name = R::ENDPOINT.short();
    let (f, t, limit) = (iso_millis(from), iso_millis(to), LIMIT.to_string());
    let query = [
        ("symbol", symbol),
        ("from", f.as_str()),
        ("to", t.as_str()),
        ("limit", limit.as_str()),
    ];
    let mut evidence = Vec::new();
    let mut last = String::new();
    for round in 0..ROUNDS {
        let reply = client.get(R::ENDPOINT, &query).await;
        evidence = rec.save(&format!("{name}-live.json"), &reply.result).await;
        let json = match rec.expect_ok(R::ENDPOINT, &reply) {
            Ok(json) => json,
            Err(detail) => {
                rec.check(format!("{name} rows live"), Err(detail), started, evidence);
                return;
            }
        };
        let env = Envelope::read(json, symbol, &range_form(from), &range_form(to));
        let (api, encoding) = decode::all(env.items, R::decode);
        let effective = env
            .effective
            .clone()
            .unwrap_or_else(|| (range_form(from), range_form(to)));
        if round == 0 {
            let mut problems = env.problems.clone();
            if let Some(i) = rows::first_out_of_order(&api) {
                problems.push(format!("item {i} breaks the ascending event_ts order"));
            }
            rec.observe(
                &format!("{name}_live_window"),
                serde_json::json!({
                    "from": effective.0, "to": effective.1,
                    "fallback": env.fallback, "rows": api.len(),
                }),
            );
            encoding_check(
                rec,
                R::ENDPOINT,
                &format!("{name} encoding live"),
                problems,
                &encoding,
                started,
                evidence.clone(),
            );
        }
        let stored = match read_window::<R>(ch, db, symbol, &effective.0, &effective.1).await {
            Ok(rows) => rows,
            Err(e) => {
                let detail = format!("cannot read {db}.{}: {e}", R::TABLE.name());
                rec.check(format!("{name} rows live"), Err(detail), started, evidence);
                return;
            }
        };
        let diff = rows::multiset(&api, &stored);
        last = diff.detail();
        if diff.is_clean() {
            let detail = format!("{last}: equal, window {} – {}", effective.0, effective.1);
            rec.check(format!("{name} rows live"), Ok(detail), started, evidence);
            return;
        }
        if round + 1 == ROUNDS {
            note_difference::<R>(rec, &diff, symbol, db);
        }
    }
    rec.check(format!("{name} rows live"), Err(last), started, evidence);
}

fn note_difference<R: ApiRow>(
    rec: &mut Recorder,
    diff: &rows::MultisetDiff,
    symbol: &str,
    db: &str,
) {
    if diff.api == 0 && diff.clickhouse > 0 {
        rec.findings
            .empty_while_stored(R::ENDPOINT, symbol, diff.clickhouse, db);
    } else if !diff.columns.is_empty() {
        rec.finding(findings::serialization(R::ENDPOINT, &diff.columns));
    } else {
        rec.finding(findings::api(
            format!(
                "{} and {db} disagree on {symbol}'s rows: {}",
                R::ENDPOINT,
                diff.detail()
            ),
            crate::domain::diagnose::RUNBOOK_JANGAR_DATABASE,
        ));
    }
}
