//! Synthetic mode: the run's symbols through bars, signals and latest, exactly against
//! ClickHouse (FINAL) and the oracle; freshness; and one bar triangulated across the layers.

use std::time::Instant;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::model::{iso_millis, Cell, Columns, Microbar};
use crate::domain::scenario::Tolerance;
use crate::stage::StageContext;

use super::decode::{self, range_form};
use super::envelope::{encoding_check, Envelope, FALLBACK_TRUE};
use super::rows::{self, ApiRow, Oracle};
use super::{findings, latest, Probe, Recorder};
use crate::adapter::jangar::JangarClient;

/// One synthetic symbol and the window its expected bars span (both ends inclusive, as in
/// Jangar's query). The closing trade's bar lies after `to`, so its arrival cannot race.
#[derive(Debug, Clone)]
pub(super) struct Window {
    pub alias: String,
    pub symbol: String,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Window {
    fn holds(&self, symbol: &str, t: OffsetDateTime) -> bool {
        symbol == self.symbol && self.from <= t && t <= self.to
    }

    fn select<R: ApiRow>(&self, rows: &[R]) -> Vec<R> {
        rows.iter()
            .filter(|r| self.holds(&r.key().symbol, r.event_ts()))
            .cloned()
            .collect()
    }
}

pub(super) fn windows(ctx: &StageContext<'_>) -> Vec<Window> {
    ctx.symbols
        .iter()
        .filter_map(|(alias, symbol)| {
            let times = ctx
                .expected_bars
                .iter()
                .filter(|b| &b.symbol == symbol)
                .map(|b| b.event_ts);
            let from = times.clone().min()?;
            let to = times.max()?;
            Some(Window {
                alias: alias.clone(),
                symbol: symbol.clone(),
                from,
                to,
            })
        })
        .collect()
}

pub(super) async fn synthetic(
    ctx: &StageContext<'_>,
    client: &JangarClient,
    rec: &mut Recorder,
) -> Option<Probe> {
    let windows = windows(ctx);
    if windows.is_empty() {
        rec.check(
            "synthetic symbols",
            Err("the oracle expects no bars for the run's symbols: nothing to observe".into()),
            Instant::now(),
            Vec::new(),
        );
        return None;
    }
    let mut newest = Vec::new();
    let mut triangulated = false;
    for w in &windows {
        let stored_bars = w.select(ctx.stored_bars);
        let oracle_bars = w.select(ctx.expected_bars);
        let api_bars = table(ctx, client, rec, w, &stored_bars, &oracle_bars).await;
        let stored_signals = w.select(ctx.stored_signals);
        let oracle_signals = w.select(ctx.expected_signals);
        table(ctx, client, rec, w, &stored_signals, &oracle_signals).await;
        let latest = latest::check(ctx.clickhouse, None, client, rec, &w.alias, &w.symbol).await;
        let seen = latest.or_else(|| api_bars.iter().map(|b| b.event_ts).max());
        newest.push((w.symbol.clone(), seen));
        if !triangulated {
            triangulated = true;
            triangulate(ctx, rec, &oracle_bars, &stored_bars, &api_bars);
        }
    }
    latest::freshness(rec, &newest, ctx.config.jangar.max_freshness);
    let first = &windows[0];
    let in_window = first.select(ctx.stored_bars);
    Some(Probe {
        symbol: first.symbol.clone(),
        from: first.from,
        to: first.to,
        bars_in_window: Some(in_window.len()),
        bars_at_from: Some(
            in_window
                .iter()
                .filter(|b| b.event_ts == first.from)
                .count(),
        ),
        exact: true,
    })
}

/// Bars or signals for one window: the encoding check and the rows check. Returns the rows the
/// API gave (compared ones only).
async fn table<R: ApiRow>(
    ctx: &StageContext<'_>,
    client: &JangarClient,
    rec: &mut Recorder,
    w: &Window,
    stored: &[R],
    oracle: &[R],
) -> Vec<R> {
    let started = Instant::now();
    let name = R::ENDPOINT.short();
    let (from, to) = (iso_millis(w.from), iso_millis(w.to));
    // Room above the expected count, so extra and duplicated rows show instead of being cut.
    let limit = (stored.len() + 10).min(5000).to_string();
    let query = [
        ("symbol", w.symbol.as_str()),
        ("from", from.as_str()),
        ("to", to.as_str()),
        ("limit", limit.as_str()),
    ];
    let reply = client.get(R::ENDPOINT, &query).await;
    let evidence = rec
        .save(&format!("{name}-{}.json", w.alias), &reply.result)
        .await;
    let json = match rec.expect_ok(R::ENDPOINT, &reply) {
        Ok(json) => json,
        Err(detail) => {
            rec.check(
                format!("{name} rows {}", w.alias),
                Err(detail),
                started,
                evidence,
            );
            return Vec::new();
        }
    };
    let envelope = Envelope::read(json, &w.symbol, &range_form(w.from), &range_form(w.to));
    let (all, encoding) = decode::all(envelope.items, R::decode);
    let mut problems = envelope.problems;
    if envelope.fallback == Some(true) {
        problems.push(FALLBACK_TRUE.into());
        rec.finding(findings::fallback_used(R::ENDPOINT, &w.symbol));
    }
    if let Some(i) = rows::first_out_of_order(&all) {
        problems.push(format!("item {i} breaks the ascending event_ts order"));
    }
    encoding_check(
        rec,
        R::ENDPOINT,
        &format!("{name} encoding {}", w.alias),
        problems,
        &encoding,
        started,
        evidence.clone(),
    );
    let api: Vec<R> = all.into_iter().filter(R::is_compared).collect();
    let ignore = |c: &str| ctx.scenario.ignores(R::TABLE, c);
    let tolerance = |c: &str| ctx.scenario.tolerance(c);
    let oracle = ctx.scenario.tables.contains(&R::TABLE).then_some(Oracle {
        rows: oracle,
        ignore: &ignore,
        tolerance: &tolerance,
    });
    let judged = rows::judge(&api, stored, oracle);
    judged.findings(
        R::ENDPOINT,
        &w.symbol,
        ctx.clickhouse.database(),
        &mut rec.findings,
    );
    let detail = judged.detail();
    let outcome = if judged.ok() { Ok(detail) } else { Err(detail) };
    rec.check(
        format!("{name} rows {}", w.alias),
        outcome,
        started,
        evidence,
    );
    api
}

/// The newest expected bar of the first symbol from the oracle, ClickHouse and the API; the
/// first layer that differs is named (`observed.triangulation`, which the browser stage reads
/// to add the page).
fn triangulate(
    ctx: &StageContext<'_>,
    rec: &mut Recorder,
    oracle: &[Microbar],
    stored: &[Microbar],
    api: &[Microbar],
) {
    let started = Instant::now();
    let Some(bar) = oracle.iter().max_by_key(|b| b.event_ts) else {
        return;
    };
    let key = bar.key();
    let ch = stored.iter().find(|b| b.key() == key);
    let seen = api.iter().find(|b| b.key() == key);
    let storage_differs = ch.is_none_or(|c| {
        c.cells()
            .iter()
            .zip(bar.cells())
            .any(|((name, got), (_, want))| {
                !ctx.scenario
                    .ignores(crate::domain::scenario::Table::Microbars, name)
                    && !same_cell(&want, got, ctx.scenario.tolerance(name))
            })
    });
    // The first layer that departs from the one before it: oracle → storage → API.
    let (diverges_at, why) = if storage_differs {
        (
            Some("storage"),
            "ClickHouse's bar differs from the oracle's or is absent",
        )
    } else if seen.is_none() {
        (Some("api"), "the bar is not in the API's answer")
    } else if seen != ch {
        (
            Some("api serialization"),
            "the API's values differ from ClickHouse's",
        )
    } else {
        (None, "")
    };
    rec.observe(
        "triangulation",
        serde_json::json!({
            "symbol": key.symbol,
            "event_ts": iso_millis(key.event_ts),
            "seq": key.seq,
            // The oracle cannot know when the TA job emits: no ingest_ts.
            "oracle": without(cells_json(Some(bar)), "ingest_ts"),
            "clickhouse": cells_json(ch),
            "api": cells_json(seen),
            "diverges_at": diverges_at,
        }),
    );
    let detail = format!("bar {key}: oracle, ClickHouse and API");
    let outcome = match diverges_at {
        None => Ok(format!("{detail} agree")),
        Some(layer) => Err(format!("{detail} diverge at the {layer} layer: {why}")),
    };
    rec.check("triangulation", outcome, started, Vec::new());
}

fn without(mut row: Value, key: &str) -> Value {
    if let Some(map) = row.as_object_mut() {
        map.remove(key);
    }
    row
}

fn same_cell(want: &Cell, got: &Cell, tolerance: Tolerance) -> bool {
    match (want, got) {
        (Cell::Float(Some(a)), Cell::Float(Some(b))) => tolerance.accepts(*a, *b),
        _ => want == got,
    }
}

/// A row as a JSON object of its cells (numbers stay numbers), for reports and later stages.
fn cells_json<R: Columns>(row: Option<&R>) -> Value {
    let Some(row) = row else {
        return Value::Null;
    };
    let map: Map<String, Value> = row
        .cells()
        .into_iter()
        .map(|(name, cell)| {
            let v = match cell {
                Cell::Text(s) => s.map_or(Value::Null, Value::from),
                Cell::Time(t) => t.map_or(Value::Null, |t| Value::from(iso_millis(t))),
                Cell::UInt(u) => u.map_or(Value::Null, Value::from),
                Cell::Float(x) => x.map_or(Value::Null, Value::from),
            };
            (name.to_string(), v)
        })
        .collect();
    Value::Object(map)
}
