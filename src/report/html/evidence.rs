//! A scenario's evidence: the plots, the latency waterfall, the stages' checks with their files
//! embedded, the SQL that reads its rows, the poll history.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use super::rows::Divergence;
use super::{esc, plot, MAX_IMAGE_EVIDENCE, MAX_TEXT_EVIDENCE};
use crate::domain::redact::scrub_text;
use crate::domain::report::{Point, RunReport, ScenarioReport};
use crate::report::{checks, CheckKind, CheckStatus};

pub(super) fn plots(out: &mut String, s: &ScenarioReport, divergence: Option<&Divergence>) {
    if s.series.is_empty() {
        return;
    }
    let mut symbols: Vec<&str> = s
        .series
        .expected
        .iter()
        .chain(&s.series.observed)
        .map(|p| p.symbol.as_str())
        .collect();
    symbols.sort();
    symbols.dedup();
    out.push_str(
        "<h3>Expected (oracle) against observed (ClickHouse)</h3><p><small>Hollow grey \
         candles: expected; filled: observed. Dashed lines: expected; solid: observed.</small></p>",
    );
    for symbol in symbols {
        let exp: Vec<&Point> = s
            .series
            .expected
            .iter()
            .filter(|p| p.symbol == symbol)
            .collect();
        let obs: Vec<&Point> = s
            .series
            .observed
            .iter()
            .filter(|p| p.symbol == symbol)
            .collect();
        let mark = divergence.filter(|d| d.key.starts_with(&format!("{symbol} ")));
        let _ = write!(out, "<p><code>{}</code></p>", esc(symbol));
        out.push_str(&plot::candles(
            &exp,
            &obs,
            mark.map(|d| (d.key.as_str(), d.what.as_str())),
        ));
    }
}

pub(super) fn latency(out: &mut String, s: &ScenarioReport) {
    let l = &s.latency;
    let w = &l.watermark_closed;
    if l.publish_to_visible.count == 0 && w.publish_to_visible.count == 0 {
        return;
    }
    out.push_str("<h3>Latency per hop</h3>");
    let stages: Vec<(String, u64)> = s
        .stages
        .iter()
        .map(|st| {
            let ms = st.checks.iter().map(|c| c.elapsed_ms).sum();
            (format!("{} stage (checks)", st.stage), ms)
        })
        .collect();
    out.push_str(&plot::waterfall(l, &stages));
    out.push_str(
        "<table><tr><th>hop</th><th>n</th><th>p50 ms</th><th>p95 ms</th><th>max ms</th></tr>",
    );
    for (name, sm) in [
        ("broker ack → TA emit", &l.publish_to_ta_emit),
        ("TA emit → visible (FINAL)", &l.ta_emit_to_visible),
        ("broker ack → visible", &l.publish_to_visible),
        (
            "watermark-closed: broker ack → TA emit",
            &w.publish_to_ta_emit,
        ),
        ("watermark-closed: TA emit → visible", &w.ta_emit_to_visible),
        (
            "watermark-closed: broker ack → visible",
            &w.publish_to_visible,
        ),
        (
            "PT1M: broker ack of the 1-minute bar → visible",
            &l.minute_signals.publish_to_visible,
        ),
    ] {
        if sm.count == 0 && (name.starts_with("watermark") || name.starts_with("PT1M")) {
            continue;
        }
        let _ = write!(
            out,
            "<tr><td>{name}</td><td class=\"num\">{}</td>{}</tr>",
            sm.count,
            [sm.p50_ms, sm.p95_ms, sm.max_ms]
                .iter()
                .map(|v| format!(
                    "<td class=\"num\">{}</td>",
                    v.map_or("–".into(), |v| format!("{v:.0}"))
                ))
                .collect::<String>()
        );
    }
    let _ = write!(
        out,
        "</table><p><small>Visibility times are the midpoints of brackets between the last \
         poll of the run's row keys that did not see a row and the first that did, narrowed to \
         the commit of the part the row was first seen in where the server's part log has it \
         ({}): off by at most ±{:.0} ms ({} key polls, {} of them timed by the server's clock; \
         {} full reads{}); TA emit times come from the job's clock.</small></p>",
        l.visibility_error,
        l.polling_error_ms,
        l.key_polls,
        l.key_polls_server_clock,
        l.full_reads,
        l.part_log_problem
            .as_ref()
            .map_or(String::new(), |p| format!("; the part log {}", esc(p)))
    );
    if w.publish_to_visible.count > 0 {
        let _ = write!(
            out,
            "<p><small>Bars closed by a trade are judged against <code>max_latency_ms</code>. \
             Bars closed by the job's watermark are timed from the trade that carries the \
             watermark past them and may wait {:.0} ms more for idle partitions{}.</small></p>",
            w.hold_allowance_ms,
            w.limit_ms
                .map_or(String::new(), |l| format!(" (limit {l:.0} ms)"))
        );
    }
}

pub(super) fn stages(out: &mut String, report: &RunReport, s: &ScenarioReport) {
    if s.stages.is_empty() {
        return;
    }
    let dir = Path::new(&report.artifacts_dir).join(&s.name);
    let suite = checks(report).into_iter().find(|x| x.name == s.name);
    out.push_str(
        "<h3>Stages</h3><table><tr><th>check</th><th></th><th>detail</th><th>ms</th></tr>",
    );
    for c in suite.iter().flat_map(|x| x.checks.iter()) {
        if c.kind != CheckKind::Stage {
            continue;
        }
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&c.name),
            match c.status {
                CheckStatus::Pass => "ok",
                CheckStatus::Pending => "<i>pending</i>",
                _ => "<b>FAIL</b>",
            },
            esc(&scrub_text(&c.message)),
            c.elapsed_ms
        );
    }
    out.push_str("</table>");
    for stage in &s.stages {
        for check in &stage.checks {
            for e in &check.evidence {
                evidence(out, &dir.join(e), e);
            }
        }
    }
}

/// One evidence file, embedded: images as data URIs, text scrubbed and escaped.
pub(super) fn evidence(out: &mut String, path: &Path, label: &str) {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    match (ext.as_str(), size) {
        (_, None) => {
            let _ = write!(out, "<p>{} (file not found)</p>", esc(label));
        }
        ("png", Some(n)) if n <= MAX_IMAGE_EVIDENCE => {
            if let Ok(bytes) = std::fs::read(path) {
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                let _ = write!(
                    out,
                    "<h3>{}</h3><img alt=\"{}\" src=\"data:image/png;base64,{data}\">",
                    esc(label),
                    esc(label)
                );
            }
        }
        ("json" | "txt" | "html" | "log" | "sql" | "csv", Some(_)) => {
            let text = std::fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let cut = text.len() > MAX_TEXT_EVIDENCE;
            let mut shown: String = text.chars().take(MAX_TEXT_EVIDENCE).collect();
            if cut {
                shown.push_str("\n… (cut; the full file is in the evidence directory)");
            }
            let _ = write!(
                out,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(label),
                esc(&scrub_text(&shown))
            );
        }
        _ => {
            let _ = write!(out, "<p>evidence: <code>{}</code></p>", esc(label));
        }
    }
}

/// The queries that read the run's rows, with the symbols filled in, for a person to re-run.
pub(super) fn sql(out: &mut String, report: &RunReport, s: &ScenarioReport) {
    if s.symbols.is_empty() {
        return;
    }
    let db = &report.target.clickhouse_database;
    let list: Vec<String> = s
        .symbols
        .values()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    // Reused pool symbols: only the run's own rows, after its start.
    let floor = s.pool.as_ref().map_or(String::new(), |p| {
        format!(
            " AND event_ts > fromUnixTimestamp64Milli({}, 'UTC')",
            p.rows_after.unix_timestamp_nanos() / 1_000_000
        )
    });
    let rows = format!("has([{}], symbol){floor}", list.join(", "));
    let text = format!(
        "SELECT * FROM {db}.ta_microbars FINAL WHERE {rows}\n  ORDER BY symbol, event_ts, seq;\n\n\
         SELECT * FROM {db}.ta_signals FINAL WHERE {rows} AND window_size = 'PT1S'\n  ORDER BY symbol, event_ts, seq;\n\n\
         -- duplicates not yet merged (what Jangar, which reads without FINAL, shows)\n\
         SELECT (SELECT count() FROM {db}.ta_microbars WHERE {rows})\n     - (SELECT count() FROM {db}.ta_microbars FINAL WHERE {rows});\n"
    );
    let _ = write!(out, "<h3>SQL used</h3><pre>{}</pre>", esc(&text));
}

pub(super) fn retries(out: &mut String, s: &ScenarioReport) {
    if s.wait_attempts.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<details><summary>Retry history: {} polls over {} ms</summary><table>\
         <tr><th>at ms</th><th>outcome</th></tr>",
        s.wait_attempts.len(),
        s.waited_ms
    );
    for a in &s.wait_attempts {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td></tr>",
            a.at_ms,
            esc(&scrub_text(&a.outcome))
        );
    }
    out.push_str("</table></details>");
}
