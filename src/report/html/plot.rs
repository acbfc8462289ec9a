//! Inline SVG: candles with indicator lines, and the latency waterfall.

use std::fmt::Write as _;

use super::esc;
use crate::domain::latency::Summary;
use crate::domain::report::LatencyReport;
use crate::domain::report::Point;

const W: f64 = 1000.0;
const H: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;

/// Reads one plotted value of a point.
type Value = fn(&Point) -> Option<f64>;

/// The indicator lines drawn, with their colours.
const LINES: &[(&str, &str, Value)] = &[
    ("close", "#24292f", |p| p.c),
    ("EMA 12", "#0969da", |p| p.ema12),
    ("EMA 26", "#bc4c00", |p| p.ema26),
    ("Bollinger upper", "#8250df", |p| p.boll_upper),
    ("Bollinger mid", "#a475f9", |p| p.boll_mid),
    ("Bollinger lower", "#8250df", |p| p.boll_lower),
];

pub fn candles(exp: &[&Point], obs: &[&Point], divergence: Option<(&str, &str)>) -> String {
    let mut times: Vec<time::OffsetDateTime> = exp.iter().chain(obs).map(|p| p.event_ts).collect();
    times.sort();
    times.dedup();
    if times.is_empty() {
        return String::new();
    }
    let slot = (W - LEFT - RIGHT) / times.len() as f64;
    let x_of = |t: time::OffsetDateTime| {
        let i = times.binary_search(&t).unwrap_or(0) as f64;
        LEFT + (i + 0.5) * slot
    };
    let (lo, hi) = range(exp.iter().chain(obs));
    let y_of = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" \
         role=\"img\" aria-label=\"expected and observed bars\">\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>"
    );
    axes(&mut svg, lo, hi, &times, y_of);
    for p in exp {
        candle(
            &mut svg,
            p,
            x_of(p.event_ts) - slot * 0.18,
            slot,
            &y_of,
            true,
        );
    }
    for p in obs {
        candle(
            &mut svg,
            p,
            x_of(p.event_ts) + slot * 0.18,
            slot,
            &y_of,
            false,
        );
    }
    for (_, colour, get) in LINES.iter().skip(1) {
        line(&mut svg, exp, *get, colour, true, &x_of, &y_of);
        line(&mut svg, obs, *get, colour, false, &x_of, &y_of);
    }
    if let Some((key, what)) = divergence {
        let at = exp.iter().chain(obs).find(|p| p.key() == key);
        if let Some(p) = at {
            let x = x_of(p.event_ts);
            // The label reads away from the line, towards the wider side.
            let right = x > W * 0.6;
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#cf222e\" \
                 stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#cf222e\" \
                 text-anchor=\"{}\">first divergence: {}</text>",
                H - BOTTOM,
                if right { x - 4.0 } else { x + 4.0 },
                TOP + 14.0,
                if right { "end" } else { "start" },
                esc(&shorten(what, 90))
            );
        }
    }
    legend(&mut svg);
    svg.push_str("</svg>");
    svg
}

fn range<'a>(points: impl Iterator<Item = &'a &'a Point>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in points {
        let values = [p.l, p.h, p.c, p.ema12, p.ema26, p.boll_upper, p.boll_lower];
        for v in values.into_iter().flatten().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-6).max(1e-9);
    (lo - pad, hi + pad)
}

fn axes(
    svg: &mut String,
    lo: f64,
    hi: f64,
    times: &[time::OffsetDateTime],
    y_of: impl Fn(f64) -> f64,
) {
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let y = y_of(v);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short_number(v)
        );
    }
    let clock =
        |t: &time::OffsetDateTime| format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let _ = write!(
            svg,
            "<text x=\"{LEFT}\" y=\"{}\">{} UTC</text><text x=\"{}\" y=\"{}\" \
             text-anchor=\"end\">{} ({} bars)</text>",
            H - 8.0,
            clock(first),
            W - RIGHT,
            H - 8.0,
            clock(last),
            times.len()
        );
    }
}

fn candle(
    svg: &mut String,
    p: &Point,
    x: f64,
    slot: f64,
    y_of: &impl Fn(f64) -> f64,
    expected: bool,
) {
    let (Some(o), Some(h), Some(l), Some(c)) = (p.o, p.h, p.l, p.c) else {
        return;
    };
    let w = (slot * 0.32).clamp(1.0, 14.0);
    let (top, bottom) = (y_of(o.max(c)), y_of(o.min(c)));
    let colour = if expected {
        "#8c959f"
    } else if c >= o {
        "#1f883d"
    } else {
        "#cf222e"
    };
    let fill = if expected { "none" } else { colour };
    // Wicks above and below the body, so a hollow body stays empty.
    let _ = write!(
        svg,
        "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{top:.1}\" stroke=\"{colour}\"/>\
         <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/>\
         <rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{fill}\" \
         stroke=\"{colour}\"/>",
        y_of(h),
        y_of(l),
        x - w / 2.0,
        (bottom - top).max(1.0)
    );
}

/// A polyline per run of points that have the value (NULLs break the line).
fn line(
    svg: &mut String,
    points: &[&Point],
    get: Value,
    colour: &str,
    expected: bool,
    x_of: &impl Fn(time::OffsetDateTime) -> f64,
    y_of: &impl Fn(f64) -> f64,
) {
    let dash = if expected {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    };
    let width = if expected { 1.2 } else { 1.6 };
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, svg: &mut String| {
        if run.len() > 1 {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"{dash} points=\"{}\"/>",
                run.join(" ")
            );
        }
        run.clear();
    };
    for p in points {
        match get(p).filter(|v| v.is_finite()) {
            Some(v) => run.push(format!("{:.1},{:.1}", x_of(p.event_ts), y_of(v))),
            None => flush(&mut run, svg),
        }
    }
    flush(&mut run, svg);
}

fn legend(svg: &mut String) {
    let mut x = LEFT;
    for (name, colour, _) in LINES.iter().skip(1) {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"3\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"12\">{name}</text>",
            x + 14.0
        );
        x += 130.0;
    }
}

/// Bars from the broker's acknowledgement: the TA job's emission, visibility in ClickHouse,
/// then the later stages. p50 bars with a whisker to p95.
pub fn waterfall(l: &LatencyReport, stages: &[(String, u64)]) -> String {
    let p50 = |s: &Summary| s.p50_ms.unwrap_or(0.0).max(0.0);
    let p95 = |s: &Summary| s.p95_ms.unwrap_or(0.0).max(0.0);
    let emit = p50(&l.publish_to_ta_emit);
    let visible = p50(&l.publish_to_visible);
    let mut rows: Vec<(String, f64, f64, f64)> = vec![
        (
            "broker ack → TA emit".into(),
            0.0,
            emit,
            p95(&l.publish_to_ta_emit),
        ),
        (
            "TA emit → visible".into(),
            emit,
            emit + p50(&l.ta_emit_to_visible),
            emit + p95(&l.ta_emit_to_visible),
        ),
        (
            "broker ack → visible".into(),
            0.0,
            visible,
            p95(&l.publish_to_visible),
        ),
    ];
    let w = &l.watermark_closed;
    if w.publish_to_visible.count > 0 {
        rows.push((
            "watermark-closed → visible".into(),
            0.0,
            p50(&w.publish_to_visible),
            p95(&w.publish_to_visible),
        ));
    }
    let mut start = visible;
    for (name, ms) in stages {
        let end = start + *ms as f64;
        rows.push((name.clone(), start, end, end));
        start = end;
    }
    let max = rows.iter().map(|r| r.2.max(r.3)).fold(1.0, f64::max) * 1.1;
    let row_h = 24.0;
    let label_w = 200.0;
    let height = TOP + rows.len() as f64 * row_h + BOTTOM;
    let x_of = |ms: f64| label_w + ms / max * (W - label_w - RIGHT);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height}\" width=\"100%\" \
         role=\"img\" aria-label=\"latency waterfall\"><rect width=\"{W}\" height=\"{height}\" fill=\"#fff\"/>"
    );
    for i in 0..=4 {
        let ms = max * f64::from(i) / 4.0;
        let x = x_of(ms);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#eaeef2\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{ms:.0} ms</text>",
            height - BOTTOM,
            height - 10.0
        );
    }
    for (i, (name, from, to, whisker)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * row_h;
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.1}\">{}</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"#54aeff\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" \
             y2=\"{:.1}\" stroke=\"#0969da\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.0} ms</text>",
            y + 15.0,
            esc(name),
            x_of(*from),
            y + 4.0,
            (x_of(*to) - x_of(*from)).max(1.0),
            row_h - 8.0,
            x_of(*to),
            x_of(*whisker),
            y + row_h / 2.0,
            y + row_h / 2.0,
            x_of(whisker.max(*to)) + 4.0,
            y + 15.0,
            to - from
        );
    }
    svg.push_str("</svg>");
    svg
}

fn short_number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}
