//! A scenario's rows: the findings, its symbols and pool history, the first divergence and the
//! table diffs.

use std::fmt::Write as _;

use super::esc;
use crate::domain::compare::TableDiff;
use crate::domain::report::ScenarioReport;

/// The failing findings under "Diagnosis", then the warnings (drift the run passed despite).
pub(super) fn findings(out: &mut String, s: &ScenarioReport) {
    let all: Vec<_> = s
        .findings
        .iter()
        .chain(s.stages.iter().flat_map(|st| st.findings.iter()))
        .collect();
    let (failures, warnings): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| f.is_failure());
    for (title, class, list) in [
        ("Diagnosis", "finding", failures),
        ("Warnings", "finding warning", warnings),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{title}</h3>");
        for f in list {
            let _ = write!(
                out,
                "<div class=\"{class}\"><b>{}</b>: {}<br><small>runbook: {}</small></div>",
                esc(f.hop.label()),
                esc(&f.cause),
                esc(f.runbook)
            );
        }
    }
}

pub(super) fn symbols(out: &mut String, s: &ScenarioReport) {
    if s.symbols.is_empty() {
        return;
    }
    let list: Vec<String> = s
        .symbols
        .iter()
        .map(|(a, sym)| format!("{} = <code>{}</code>", esc(a), esc(sym)))
        .collect();
    let _ = write!(
        out,
        "<p>Symbols: {}. Published {} messages; waited {} ms.</p>",
        list.join(", "),
        s.messages_published,
        s.waited_ms
    );
}

/// A pool run: the generation used, what was retired, and each symbol's history.
pub(super) fn pool(out: &mut String, s: &ScenarioReport) {
    let Some(p) = &s.pool else { return };
    let _ = write!(
        out,
        "<h3>Reserved pool {} (generation {})</h3><p>Only rows ending after {} belong to \
         this run; the history before them seeded the oracle.</p>",
        esc(&p.pool),
        p.generation,
        esc(&p.rows_after.to_string())
    );
    for r in &p.retired {
        let _ = write!(
            out,
            "<div class=\"finding\">retired generation {} (<code>{}</code>): {}</div>",
            r.generation,
            esc(&r.symbol),
            esc(&r.reason)
        );
    }
    out.push_str(
        "<table><tr><th>symbol</th><th>history</th><th>rows</th><th>seqs</th>\
         <th>vwap_session</th><th>caught up</th></tr>",
    );
    for y in &p.symbols {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{:?}</td><td>{}</td><td>{}..={}</td><td>{}{}</td><td>{}</td></tr>",
            esc(&y.symbol),
            y.history,
            y.history_rows,
            y.first_seq,
            y.last_seq,
            y.vwap_session,
            y.prior_volume
                .map(|v| format!(" (prior volume {v})"))
                .unwrap_or_default(),
            y.caught_up_bars
        );
    }
    out.push_str("</table>");
}

/// Where the rows first stopped matching: the earliest mismatched or missing key.
pub(super) struct Divergence {
    pub(super) table: String,
    pub(super) key: String,
    pub(super) what: String,
}

pub(super) fn first_divergence(s: &ScenarioReport) -> Option<Divergence> {
    let mut candidates = Vec::new();
    for (table, d) in &s.tables {
        if let Some(m) = d.mismatches.first() {
            let cols: Vec<String> = m
                .columns
                .iter()
                .take(3)
                .map(|c| format!("{} expected {} observed {}", c.column, c.expected, c.actual))
                .collect();
            let more = m.columns.len().saturating_sub(3);
            let mut what = cols.join("; ");
            if more > 0 {
                let _ = write!(what, " (and {more} more columns)");
            }
            candidates.push((m.key.clone(), table.clone(), what));
        }
        if let Some(k) = d.missing.first() {
            candidates.push((k.clone(), table.clone(), "row missing".into()));
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .next()
        .map(|(key, table, what)| Divergence { table, key, what })
}

pub(super) fn tables(out: &mut String, s: &ScenarioReport) {
    if s.tables.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Rows compared with the oracle</h3><table><tr><th>table</th><th>matched</th>\
         <th>expected</th><th>observed</th><th>missing</th><th>extra</th><th>duplicate</th>\
         <th>differ</th></tr>",
    );
    for (name, d) in &s.tables {
        let _ = write!(
            out,
            "<tr><td>{}</td>{}</tr>",
            esc(name),
            [
                d.matched,
                d.expected,
                d.observed,
                d.missing.len(),
                d.extra.len(),
                d.duplicates.len(),
                d.mismatches.len()
            ]
            .iter()
            .map(|n| format!("<td class=\"num\">{n}</td>"))
            .collect::<String>()
        );
    }
    out.push_str("</table>");
    for (name, d) in &s.tables {
        table_detail(out, name, d);
    }
}

pub(super) fn table_detail(out: &mut String, name: &str, d: &TableDiff) {
    if let Some(m) = d.mismatches.first() {
        let _ = write!(
            out,
            "<p>{}: first divergent row <code>{}</code></p><table><tr><th>column</th>\
             <th>expected</th><th>observed</th></tr>",
            esc(name),
            esc(&m.key)
        );
        for c in &m.columns {
            let _ = write!(
                out,
                "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(c.column),
                esc(&c.expected),
                esc(&c.actual)
            );
        }
        out.push_str("</table>");
    }
    for (what, keys) in [
        ("missing", &d.missing),
        ("extra", &d.extra),
        ("duplicate", &d.duplicates),
    ] {
        if !keys.is_empty() {
            let shown: Vec<String> = keys.iter().take(10).map(|k| esc(k)).collect();
            let _ = write!(
                out,
                "<p>{}: {} {what} row(s): <code>{}</code>{}</p>",
                esc(name),
                keys.len(),
                shown.join("</code>, <code>"),
                if keys.len() > 10 { ", …" } else { "" }
            );
        }
    }
}
