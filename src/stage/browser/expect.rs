//! What the page must show for the data it was given, computed by the page's own rules
//! (`jangar.md` §2, §3.6) from the JSON the proxy saw: candles, overlay and signal points, the
//! newest timestamp behind the lag pill, and the pill's format.

use serde_json::Value;

use super::model::{Candles, PageModel, Panel};

/// The rows of a bars or signals answer, as `extractItems` finds them.
pub fn items(payload: &Value) -> &[Value] {
    if let Value::Array(rows) = payload {
        return rows;
    }
    ["items", "bars", "signals", "data", "rows"]
        .iter()
        .find_map(|k| payload.get(*k).filter(|v| !v.is_null()))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A field spec `a|b.c`: the page's `row.a ?? row.b?.c`.
pub fn lookup<'a>(row: &'a Value, spec: &str) -> Option<&'a Value> {
    spec.split('|').find_map(|alternative| {
        let value = alternative
            .split('.')
            .try_fold(row, |v, key| v.as_object()?.get(key))?;
        (!value.is_null()).then_some(value)
    })
}

/// `toNumber`: finite numbers and numeric non-blank strings.
pub fn to_number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if !s.trim().is_empty() => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// `toTimestamp` in a UTC browser: `Date.parse` of a row time, `None` when unparseable or zero
/// (the page skips falsy times). Covers what Jangar sends (`YYYY-MM-DD HH:MM:SS.mmm`, zone-less
/// and so local, i.e. UTC) and ISO 8601 with or without a zone.
pub fn timestamp_ms(value: &Value) -> Option<i64> {
    let text = value.as_str()?.trim();
    let ms = parse_js_date(text)?;
    (ms != 0).then_some(ms)
}

fn parse_js_date(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    // Zone-less date-time (with ' ' or 'T'), read as local time; the browser runs in UTC.
    let (date, clock) = text.split_once([' ', 'T']).unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some() {
        return None;
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut c = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm) = (c.next()??, c.next()??);
    let ss = c.next().flatten().unwrap_or(0);
    let millis = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(3).collect();
        format!("{digits:0<3}").parse::<i64>().ok()?
    };
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(hh).ok()?,
        u8::try_from(mm).ok()?,
        u8::try_from(ss).ok()?,
    )
    .ok()?;
    let t = time::PrimitiveDateTime::new(date, clock).assume_utc();
    Some(t.unix_timestamp() * 1000 + millis)
}

/// `data-candle-count`: rows with a time and numeric open, high, low and close (duplicates
/// included).
pub fn candle_count(bars: &[Value], fields: &Candles) -> usize {
    bars.iter()
        .filter(|row| {
            lookup(row, &fields.time).and_then(timestamp_ms).is_some()
                && [&fields.open, &fields.high, &fields.low, &fields.close]
                    .iter()
                    .all(|f| lookup(row, f).and_then(to_number).is_some())
        })
        .count()
}

/// Points each toggle would plot, in model order.
pub fn toggle_points(signals: &[Value], model: &PageModel) -> Vec<(String, usize)> {
    model
        .toggles
        .iter()
        .map(|t| {
            let n = signals
                .iter()
                .filter(|row| {
                    lookup(row, &model.candles.time)
                        .and_then(timestamp_ms)
                        .is_some()
                })
                .map(|row| {
                    t.fields
                        .iter()
                        .filter(|f| lookup(row, f).and_then(to_number).is_some())
                        .count()
                })
                .sum();
            (t.key.clone(), n)
        })
        .collect()
}

/// The attribute value for a panel with the toggles in `on` checked.
pub fn panel_count(
    points: &[(String, usize)],
    model: &PageModel,
    panel: Panel,
    on: &[&str],
) -> usize {
    points
        .iter()
        .filter(|(key, _)| on.contains(&key.as_str()))
        .filter(|(key, _)| model.toggle(key).is_some_and(|t| t.panel == panel))
        .map(|(_, n)| n)
        .sum()
}

/// `extractLatestTimestampFromSeries`: the newest row time among bars and signals.
pub fn newest_ms(rows: &[&[Value]], time_field: &str) -> Option<i64> {
    rows.iter()
        .flat_map(|r| r.iter())
        .filter_map(|row| lookup(row, time_field).and_then(timestamp_ms))
        .max()
}

/// `formatLag`.
pub fn format_lag(ms: i64) -> String {
    let total = ms.max(0) / 1000;
    if total < 60 {
        return format!("{total}s");
    }
    let (minutes, seconds) = (total / 60, total % 60);
    if minutes < 60 {
        return format!("{minutes}m {seconds}s");
    }
    format!("{}h {}m", minutes / 60, minutes % 60)
}

/// The lag a pill text stands for: `[low, high)` in milliseconds (`formatLag` floors).
pub fn pill_range_ms(text: &str) -> Option<(i64, i64)> {
    let num = |s: &str, unit: char| s.strip_suffix(unit)?.parse::<i64>().ok();
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [s] => {
            let s = num(s, 's')?;
            (s < 60).then_some((s * 1000, (s + 1) * 1000))
        }
        [m, s] if m.ends_with('m') => {
            let (m, s) = (num(m, 'm')?, num(s, 's')?);
            let low = (m * 60 + s) * 1000;
            (m < 60 && s < 60).then_some((low, low + 1000))
        }
        [h, m] => {
            let (h, m) = (num(h, 'h')?, num(m, 'm')?);
            let low = (h * 3600 + m * 60) * 1000;
            (m < 60).then_some((low, low + 60_000))
        }
        _ => None,
    }
}

/// Row keys `(event time ms, seq)` of an answer, for comparing with what ClickHouse holds.
pub fn row_keys(rows: &[Value], time_field: &str) -> Vec<(i64, u64)> {
    rows.iter()
        .filter_map(|row| {
            let t = lookup(row, time_field).and_then(timestamp_ms)?;
            let seq = match row.get("seq")? {
                Value::String(s) => s.parse().ok()?,
                v => v.as_u64()?,
            };
            Some((t, seq))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> PageModel {
        PageModel::builtin()
    }

    #[test]
    fn items_follow_extract_items() {
        assert_eq!(items(&json!([1, 2])).len(), 2);
        assert_eq!(items(&json!({"items": [1]})).len(), 1);
        assert_eq!(items(&json!({"items": null, "rows": [1, 2, 3]})).len(), 3);
        assert!(items(&json!({"ok": false})).is_empty());
    }

    #[test]
    fn lookups_follow_nullish_coalescing() {
        let row = json!({"macd": {"macd": 1.5, "signal": 2}, "ema12": null, "ema": {"ema12": "3"}});
        let m = model();
        let macd = &m.toggle("macd").unwrap().fields;
        assert_eq!(lookup(&row, &macd[0]).and_then(to_number), Some(1.5));
        assert_eq!(lookup(&row, &macd[1]).and_then(to_number), Some(2.0));
        assert_eq!(
            lookup(&row, "ema12|ema.ema12").and_then(to_number),
            Some(3.0)
        );
        let flat = json!({"macd": 0.25});
        assert_eq!(lookup(&flat, &macd[0]).and_then(to_number), Some(0.25));
        assert_eq!(to_number(&json!("")), None);
        assert_eq!(to_number(&json!("abc")), None);
    }

    #[test]
    fn timestamps_parse_like_date_parse_in_utc() {
        let jangar = timestamp_ms(&json!("2026-03-05 19:59:59.000")).unwrap();
        assert_eq!(jangar, 1_772_740_799_000);
        assert_eq!(timestamp_ms(&json!("2026-03-05T19:59:59Z")), Some(jangar));
        assert_eq!(
            timestamp_ms(&json!("2026-03-05T20:59:59+01:00")),
            Some(jangar)
        );
        assert_eq!(
            timestamp_ms(&json!("2026-03-05 19:59:59.5")),
            Some(jangar + 500)
        );
        assert_eq!(timestamp_ms(&json!("nope")), None);
        assert_eq!(timestamp_ms(&json!(12)), None);
    }

    #[test]
    fn counts_follow_the_page() {
        let m = model();
        let t = "2026-03-05 19:59:59.000";
        let bars = [
            json!({"event_ts": t, "o": 1, "h": "2", "l": 0.5, "c": 1.5}),
            json!({"event_ts": t, "o": 1, "h": 2, "l": 0.5}),
            json!({"event_ts": "bad", "o": 1, "h": 2, "l": 0.5, "c": 1}),
            json!({"ts": t, "open": 1, "high": 2, "low": 0.5, "close": 1}),
        ];
        assert_eq!(candle_count(&bars, &m.candles), 2);
        let signals = [
            json!({"event_ts": t, "ema12": 1, "ema26": null, "boll_mid": 1, "boll_upper": 1, "boll_lower": 1, "macd": 0.1, "macd_signal": 0.1, "rsi14": 50}),
            json!({"event_ts": t, "ema12": 1, "ema26": 1, "vwap_session": 1, "rsi_14": 40}),
            json!({"ema12": 1}),
        ];
        let points = toggle_points(&signals, &m);
        let get = |k: &str| points.iter().find(|(key, _)| key == k).unwrap().1;
        assert_eq!(
            (
                get("ema"),
                get("boll"),
                get("vwap"),
                get("macd"),
                get("rsi")
            ),
            (3, 3, 1, 2, 2)
        );
        assert_eq!(
            panel_count(&points, &m, Panel::Overlay, &["ema", "boll"]),
            6
        );
        assert_eq!(panel_count(&points, &m, Panel::Overlay, &["ema", "rsi"]), 3);
        assert_eq!(panel_count(&points, &m, Panel::Signal, &["macd", "rsi"]), 4);
    }

    #[test]
    fn lag_format_round_trips_through_the_pill_range() {
        for ms in [
            0,
            999,
            42_000,
            59_999,
            60_000,
            125_400,
            3_599_999,
            3_600_000,
            8_040_000,
            180_000_000,
        ] {
            let (low, high) = pill_range_ms(&format_lag(ms)).unwrap();
            assert!(
                low <= ms && ms < high,
                "{ms} → {} → [{low}, {high})",
                format_lag(ms)
            );
        }
        assert_eq!(format_lag(125_000), "2m 5s");
        assert_eq!(format_lag(8_040_000), "2h 14m");
        assert_eq!(pill_range_ms("—"), None);
        assert_eq!(pill_range_ms("61s"), None);
    }

    #[test]
    fn newest_and_keys() {
        let a = [json!({"event_ts": "2026-03-05 19:59:59.000", "seq": "7"})];
        let b = [json!({"event_ts": "2026-03-05 20:00:01.000", "seq": 8})];
        assert_eq!(newest_ms(&[&a, &b], "event_ts"), Some(1_772_740_801_000));
        assert_eq!(row_keys(&a, "event_ts"), vec![(1_772_740_799_000, 7)]);
        assert_eq!(row_keys(&b, "event_ts"), vec![(1_772_740_801_000, 8)]);
    }
}
