//! The person-readable summary printed on stdout after a run.

use std::io::Write;

use crate::domain::publish::Fate;
use crate::domain::report::{RunReport, Verdict};

/// The person-readable summary: one block per scenario, failures with hop, cause and runbook.
pub fn write_console(report: &RunReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "run {} against {} ({})",
        report.run_id, report.target.lane, report.target.clickhouse_database
    )?;
    for s in &report.scenarios {
        let symbols: Vec<&str> = s.symbols.values().map(String::as_str).collect();
        writeln!(
            out,
            "\n{} {} [{}]",
            mark(s.verdict),
            s.name,
            symbols.join(", ")
        )?;
        if let Some(e) = &s.error {
            writeln!(out, "  error: {e}")?;
        }
        if let Some(pool) = &s.pool {
            write_pool(out, pool)?;
        }
        if s.messages_published > 0 {
            writeln!(
                out,
                "  published {} messages ({} acknowledged); waited {} ms",
                s.messages_published, s.messages_acknowledged, s.waited_ms
            )?;
        }
        if !s.unconfirmed.is_empty() {
            let count = |f: fn(&Fate) -> bool| s.unconfirmed.iter().filter(|u| f(&u.fate)).count();
            writeln!(
                out,
                "  {} never acknowledged: {} not sent, {} found on the topic, {} unknown",
                s.unconfirmed.len(),
                count(|f| *f == Fate::NotSent),
                count(|f| matches!(f, Fate::Landed { .. })),
                count(|f| *f == Fate::Unknown),
            )?;
        }
        for (table, d) in &s.tables {
            writeln!(out, "  {table}: {}", d.summary())?;
            if let Some(m) = d.mismatches.first() {
                writeln!(out, "    first divergent row {}:", m.key)?;
                for c in &m.columns {
                    writeln!(
                        out,
                        "      {:<18} expected {:<24} observed {}",
                        c.column, c.expected, c.actual
                    )?;
                }
            }
            if let Some(k) = d.missing.first() {
                writeln!(out, "    first missing row {k}")?;
            }
        }
        if s.latency.publish_to_visible.count > 0 {
            writeln!(
                out,
                "  latency publish→visible {} (visible {}); TA emit→visible {}",
                s.latency.publish_to_visible,
                s.latency.visibility_error,
                s.latency.ta_emit_to_visible
            )?;
        }
        let w = &s.latency.watermark_closed;
        if w.publish_to_visible.count > 0 {
            writeln!(
                out,
                "  bars closed by the watermark: publish→visible {} (visible {}){}",
                w.publish_to_visible,
                w.visibility_error,
                w.limit_ms
                    .map_or(String::new(), |l| format!(" (limit {l:.0} ms)"))
            )?;
        }
        if s.latency.closed_before_trigger > 0 {
            writeln!(
                out,
                "  {} bar(s) visible before the trade meant to close them was acknowledged: the \
                 lane's watermark closed them first (no latency sample)",
                s.latency.closed_before_trigger
            )?;
        }
        let m = &s.latency.minute_signals;
        if m.publish_to_visible.count > 0 {
            writeln!(
                out,
                "  PT1M signals: publish→visible {} (visible {})",
                m.publish_to_visible, m.visibility_error
            )?;
        }
        if let (Some(ms), Some(what)) = (s.overhead_ms, &s.last_evidence) {
            writeln!(
                out,
                "  verdict {ms} ms after its last evidence ({what}); {} key polls ({} timed by \
                 the server's clock; round trip {}), {} full reads",
                s.latency.key_polls,
                s.latency.key_polls_server_clock,
                s.latency.key_poll_rtt_ms,
                s.latency.full_reads
            )?;
        }
        if let Some(problem) = &s.latency.part_log_problem {
            writeln!(
                out,
                "  the server's part log {problem}: key polls time the rest"
            )?;
        }
        for stage in &s.stages {
            let passed = stage.checks.iter().filter(|c| c.ok && !c.pending).count();
            let pending = stage.checks.iter().filter(|c| c.pending).count();
            // A stage whose only open question is pending is neither passed nor failed.
            let verdict = match (stage.verdict, pending) {
                (Verdict::Pass, 1..) => "PENDING",
                (v, _) => mark(v),
            };
            writeln!(
                out,
                "  {} stage: {verdict} ({passed}/{} checks{})",
                stage.stage,
                stage.checks.len(),
                if pending > 0 {
                    format!(", {pending} pending")
                } else {
                    String::new()
                }
            )?;
            for c in stage.checks.iter().filter(|c| !c.ok) {
                writeln!(out, "    FAIL {}: {}", c.name, c.detail)?;
            }
            for c in stage.checks.iter().filter(|c| c.pending) {
                writeln!(out, "    PENDING {}: {}", c.name, c.detail)?;
            }
        }
        for f in s
            .findings
            .iter()
            .chain(s.stages.iter().flat_map(|st| st.findings.iter()))
        {
            let what = if f.is_failure() { "FAILED" } else { "WARNING" };
            writeln!(out, "  {what} at {}: {}", f.hop.label(), f.cause)?;
            writeln!(out, "    runbook: {}", f.runbook)?;
        }
    }
    let passed = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::Pass)
        .count();
    writeln!(
        out,
        "\n{} {passed}/{} scenarios passed in {} ms",
        mark(report.verdict),
        report.scenarios.len(),
        report.duration_ms
    )
}

pub(super) fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    }
}

/// Which generation a pool run used and what it knew of each symbol's past.
fn write_pool(out: &mut dyn Write, pool: &crate::domain::pool::PoolReport) -> std::io::Result<()> {
    writeln!(out, "  pool {} generation {}", pool.pool, pool.generation)?;
    for r in &pool.retired {
        writeln!(
            out,
            "    retired generation {} ({}): {}",
            r.generation, r.symbol, r.reason
        )?;
    }
    for s in &pool.symbols {
        writeln!(
            out,
            "    {}: history {:?}, {} rows, seq {}..={}, vwap_session {}{}",
            s.symbol,
            s.history,
            s.history_rows,
            s.first_seq,
            s.last_seq,
            s.vwap_session,
            s.prior_volume
                .map(|v| format!(" (prior volume {v:.6})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample;

    #[test]
    fn failures_and_warnings_are_told_apart() {
        let mut text = Vec::new();
        write_console(&sample(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("  FAILED at Kafka → TA job: the TA job's values differ"),
            "{text}"
        );
        assert!(
            text.contains("  WARNING at ClickHouse → Jangar API: /api/torghut/ta/bars sends"),
            "{text}"
        );
    }
}
