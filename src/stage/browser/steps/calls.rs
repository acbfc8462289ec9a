//! The page's API calls as the proxy saw them: one load (bars, signals, latest), what came back,
//! and how the answers compare with what ClickHouse holds.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{api, page, Checklist, Failure};
use crate::domain::model::Signal;
use crate::stage::browser::expect;
use crate::stage::browser::model::PageModel;
use crate::stage::browser::proxy::Exchange;

/// One load of the page: the three calls it made, as answered.
#[derive(Debug, Clone)]
pub(super) struct Load {
    pub(super) bars: Exchange,
    pub(super) signals: Exchange,
    pub(super) latest: Exchange,
}

pub(super) fn json_of(e: &Exchange) -> &Value {
    static NULL: Value = Value::Null;
    e.json.as_deref().unwrap_or(&NULL)
}

impl Load {
    pub(super) fn bars_rows(&self) -> &[Value] {
        expect::items(json_of(&self.bars))
    }

    pub(super) fn signals_rows(&self) -> &[Value] {
        expect::items(json_of(&self.signals))
    }

    /// When the last of the three answers left the proxy (validator clock).
    pub(super) fn answered_unix_ms(&self) -> i64 {
        [&self.bars, &self.signals, &self.latest]
            .iter()
            .filter_map(|e| e.finished_unix_ms)
            .max()
            .unwrap_or_else(unix_ms)
    }

    /// The requested window `[from, to]` in Unix ms, when the page sent a parseable one.
    pub(super) fn window_ms(&self) -> Option<(i64, i64)> {
        let ms = |name: &str| {
            let v = Value::String(self.bars.param(name)?);
            expect::timestamp_ms(&v)
        };
        Some((ms("from")?, ms("to")?))
    }
}

pub(super) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn iso(ms: i64) -> String {
    crate::domain::model::iso_millis(crate::domain::oracle::datetime_from_millis(ms))
}

pub(super) fn status_text(e: &Exchange) -> String {
    match (e.status, &e.error) {
        (Some(s), _) => {
            // Jangar passes ClickHouse's body through, trailing newline and all.
            let message = json_of(e)
                .get("message")
                .and_then(Value::as_str)
                .map(|m| format!(" ({})", m.split_whitespace().collect::<Vec<_>>().join(" ")))
                .unwrap_or_default();
            format!("{s}{message}")
        }
        (None, Some(err)) => format!("no answer: {err}"),
        (None, None) => "no answer yet".into(),
    }
}

pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// `GET /api/torghut/ta/bars?symbol=NVDA`: the call without the page's long window parameters
/// (the evidence files have the full request).
pub(super) fn call_name(e: &Exchange) -> String {
    match e.param("symbol") {
        Some(s) => format!("{} {}?symbol={s}", e.method, e.path),
        None => format!("{} {}", e.method, e.path),
    }
}

pub(super) fn symbol_of(e: &Exchange) -> String {
    e.param("symbol").unwrap_or_default().trim().to_uppercase()
}

/// The latest complete load of `symbol` among `calls`: the last bars call, its signals twin (the
/// page sends both with the same parameters) and the last latest call.
pub(super) fn find_load(calls: &[Exchange], m: &PageModel, symbol: &str) -> Option<Load> {
    find_load_where(calls, m, symbol, |_| true)
}

/// The same, for the model's window (its range and resolution): the last bars call for it.
pub(super) fn find_window_load(calls: &[Exchange], m: &PageModel, symbol: &str) -> Option<Load> {
    find_load_where(calls, m, symbol, |bars| {
        bars.param("range").as_deref() == Some(m.window.range_value.as_str())
            && bars.param("resolution").as_deref() == Some(m.window.resolution_value.as_str())
    })
}

/// The latest complete load of `symbol` whose bars call is `wanted`.
fn find_load_where(
    calls: &[Exchange],
    m: &PageModel,
    symbol: &str,
    wanted: impl Fn(&Exchange) -> bool,
) -> Option<Load> {
    let of_symbol = |c: &Exchange, path: &str| same_path(&c.path, path) && symbol_of(c) == symbol;
    let last = |path: &str| calls.iter().rev().find(|c| of_symbol(c, path));
    let bars = calls
        .iter()
        .rev()
        .find(|c| of_symbol(c, &m.paths.bars) && wanted(c))?;
    let signals = calls
        .iter()
        .rev()
        .find(|c| same_path(&c.path, &m.paths.signals) && c.query == bars.query)
        .or_else(|| last(&m.paths.signals))?;
    let latest = last(&m.paths.latest)?;
    (bars.done() && signals.done() && latest.done()).then(|| Load {
        bars: bars.clone(),
        signals: signals.clone(),
        latest: latest.clone(),
    })
}

/// Rows ClickHouse holds that an answer lacks.
pub(super) struct Missing {
    pub(super) stored: usize,
    pub(super) count: usize,
    pub(super) first: Option<(i64, u64)>,
}

pub(super) fn key_text((t, seq): (i64, u64)) -> String {
    format!("{} seq {seq}", iso(t))
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Table {
    Bars,
    Signals,
}

pub(super) fn unix_ms_of(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A stored signal as Jangar would send it (what the page's rules count).
pub(super) fn signal_json(s: &Signal) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    let when = crate::domain::model::iso_millis(s.event_ts);
    v["event_ts"] = json!(when.trim_end_matches('Z').replace('T', " "));
    v
}

pub(super) fn fallback_note(bars: &Exchange) -> String {
    if json_of(bars)["range"]["fallback"] == json!(true) {
        " (range.fallback = true: Jangar answered an older window)".into()
    } else {
        String::new()
    }
}

impl Checklist<'_> {
    /// Waits for the load of `symbol` for the window step 2 chose (`model.window`'s range and
    /// resolution). Choosing the symbol and the range sends loads of their own, and one sent late
    /// (a busy browser) can reach the proxy after `mark`, or be answered before the last choice's
    /// load: that load is not the one the step judges. A page that never asks for the window
    /// gets its newest load judged, whose parameters the step reports.
    pub(super) async fn wait_window_load(&self, mark: u64, symbol: &str) -> Result<Load, Failure> {
        let m = &self.model;
        let of_window = |calls: &[Exchange]| find_window_load(calls, m, symbol);
        match self.proxy.wait_for(mark, self.timeout, of_window).await {
            Some(load) => Ok(load),
            None => self.wait_load(mark, symbol).await,
        }
    }

    /// Waits for the three calls of a load of `symbol` after `mark` to be answered.
    pub(super) async fn wait_load(&self, mark: u64, symbol: &str) -> Result<Load, Failure> {
        let m = &self.model;
        if let Some(load) = self
            .proxy
            .wait_for(mark, self.timeout, |calls| find_load(calls, m, symbol))
            .await
        {
            return Ok(load);
        }
        let calls = self.proxy.since(mark);
        let mut pending = Vec::new();
        let mut never = Vec::new();
        for path in [&m.paths.bars, &m.paths.signals, &m.paths.latest] {
            match calls
                .iter()
                .rev()
                .find(|c| same_path(&c.path, path) && symbol_of(c) == symbol)
            {
                Some(c) if !c.done() => pending.push(call_name(c)),
                Some(_) => {}
                None => never.push(path.as_str()),
            }
        }
        Err(if !pending.is_empty() {
            api(format!(
                "the page never finished loading {symbol}: Jangar did not answer {} within {:?}",
                pending.join(", "),
                self.timeout
            ))
        } else {
            page(format!(
                "the page did not request {} for {symbol} within {:?}",
                never.join(", "),
                self.timeout
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64, path: &str, query: &str, done: bool) -> Exchange {
        Exchange {
            seq,
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            fault: None,
            status: done.then_some(200),
            error: None,
            started_ms: seq,
            finished_ms: done.then_some(seq + 1),
            finished_unix_ms: done.then_some(1_000 + seq as i64),
            added_symbols: Vec::new(),
            note: None,
            json: None,
        }
    }

    #[test]
    fn a_load_is_the_last_bars_call_its_signals_twin_and_the_last_latest() {
        let m = PageModel::builtin();
        let q1 = "symbol=NVDA&range=1h&from=a";
        let q2 = "symbol=NVDA&range=15m&from=b";
        let calls = vec![
            call(0, "/api/torghut/ta/bars", q1, true),
            call(1, "/api/torghut/ta/signals", q1, true),
            call(2, "/api/torghut/ta/latest", "symbol=NVDA", true),
            call(3, "/api/torghut/ta/signals", q2, true),
            call(4, "/api/torghut/ta/bars", q2, true),
            call(5, "/api/torghut/ta/latest", "symbol=NVDA", false),
        ];
        assert!(
            find_load(&calls, &m, "NVDA").is_none(),
            "latest still pending"
        );
        let mut calls = calls;
        calls[5] = call(5, "/api/torghut/ta/latest", "symbol=nvda", true);
        let load = find_load(&calls, &m, "NVDA").unwrap();
        assert_eq!(
            (load.bars.seq, load.signals.seq, load.latest.seq),
            (4, 3, 5)
        );
        assert_eq!(load.answered_unix_ms(), 1_005);
        assert!(find_load(&calls, &m, "AMD").is_none());
    }

    #[test]
    fn the_windows_load_is_the_one_for_its_range_and_resolution_whatever_came_after() {
        let m = PageModel::builtin();
        let (r, res) = (&m.window.range_value, &m.window.resolution_value);
        let window = format!("symbol=NVDA&range={r}&resolution={res}&from=b");
        // The range's own load (the old resolution), sent late: after the window's.
        let late = format!("symbol=NVDA&range={r}&resolution=15s&from=a");
        let mut calls = vec![
            call(0, "/api/torghut/ta/bars", &window, false),
            call(1, "/api/torghut/ta/signals", &window, true),
            call(2, "/api/torghut/ta/latest", "symbol=NVDA", true),
            call(3, "/api/torghut/ta/bars", &late, true),
            call(4, "/api/torghut/ta/signals", &late, true),
            call(5, "/api/torghut/ta/latest", "symbol=NVDA", true),
        ];
        // The latest load is complete, but not the window's: wait for that.
        assert_eq!(find_load(&calls, &m, "NVDA").unwrap().bars.seq, 3);
        assert!(find_window_load(&calls, &m, "NVDA").is_none());
        calls[0] = call(0, "/api/torghut/ta/bars", &window, true);
        let load = find_window_load(&calls, &m, "NVDA").unwrap();
        assert_eq!((load.bars.seq, load.signals.seq), (0, 1));
    }

    #[test]
    fn stored_signals_render_like_jangar_rows() {
        let t = time::macros::datetime!(2026-03-05 19:59:59.250 UTC);
        let s = Signal {
            symbol: "X".into(),
            event_ts: t,
            seq: 1,
            ingest_ts: t,
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: None,
            window_start: None,
            window_end: None,
            version: 1,
            macd: Some(0.1),
            macd_signal: None,
            macd_hist: None,
            ema12: Some(1.0),
            ema26: Some(1.0),
            rsi14: None,
            boll_mid: None,
            boll_upper: None,
            boll_lower: None,
            vwap_session: Some(2.0),
            vwap_w5m: None,
            imbalance_spread: None,
            imbalance_bid_px: None,
            imbalance_ask_px: None,
            imbalance_bid_sz: None,
            imbalance_ask_sz: None,
            vol_realized_w60s: None,
            microstructure_signal_v1: None,
        };
        let v = signal_json(&s);
        assert_eq!(v["event_ts"], "2026-03-05 19:59:59.250");
        let m = PageModel::builtin();
        let points = expect::toggle_points(&[v], &m);
        assert_eq!(
            points,
            vec![
                ("ema".to_string(), 2),
                ("boll".to_string(), 0),
                ("vwap".to_string(), 1),
                ("macd".to_string(), 1),
                ("rsi".to_string(), 0)
            ]
        );
    }
}
