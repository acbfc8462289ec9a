//! Prometheus metrics of a run, in the text exposition format (version 0.0.4): written to a
//! file (a node-exporter textfile collector reads it) and pushed to a Pushgateway.
//!
//! Metrics (all gauges but the histogram):
//! - `torghut_e2e_run_success`, `torghut_e2e_run_exit_code`, `torghut_e2e_run_duration_seconds`,
//!   `torghut_e2e_run_timestamp_seconds` (when the run ended)
//! - `torghut_e2e_last_success_timestamp_seconds`: when a run last passed; carried over from
//!   the previous file (or left alone in the Pushgateway) when this run failed
//! - `torghut_e2e_scenario_success{scenario}`, `torghut_e2e_scenario_duration_seconds{scenario}`
//! - `torghut_e2e_check_success{suite,check,kind}`: 1 pass, 0 fail, per check (as in JUnit)
//! - `torghut_e2e_findings{scenario,hop}`: failing diagnoses per hop
//! - `torghut_e2e_warnings{scenario,hop}`: warnings per hop (never part of a failed verdict)
//! - `torghut_e2e_hop_latency_seconds{scenario,hop}`: histogram of per-bar latencies; bars the
//!   job's watermark closed have hops of their own (`watermark_publish_to_visible`, …), the
//!   1-minute path's signals too (`pt1m_publish_to_visible`)
//! - `torghut_e2e_visibility_error_seconds{scenario,population,method,stat}`: the error of the
//!   visibility times behind those figures (`max`, `p95` of the brackets' half-widths)
//! - `torghut_e2e_overhead_seconds{scenario,last_evidence}`: the validator's own time from the
//!   last evidence to the verdict

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{checks, hop_name, CheckKind, CheckStatus, NamedCheck};
use crate::domain::diagnose::Severity;
use crate::domain::latency::Summary;
use crate::domain::report::{RunReport, Verdict};

/// Bucket bounds of the latency histogram, in seconds: local runs land in the first few,
/// production's sub-minute target in the middle, stalls in the last.
const BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// The name of the last-success gauge, also read back from a previous file.
const LAST_SUCCESS: &str = "torghut_e2e_last_success_timestamp_seconds";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// When the run ended, as Unix seconds.
pub fn ended_at(report: &RunReport) -> f64 {
    let end = report.started_at + Duration::from_millis(report.duration_ms);
    end.unix_timestamp_nanos() as f64 / 1e9
}

/// The last-success time to publish: this run's end when it passed, else the previous one.
pub fn last_success(report: &RunReport, previous: Option<f64>) -> Option<f64> {
    if report.verdict == Verdict::Pass {
        Some(ended_at(report))
    } else {
        previous
    }
}

/// Reads `torghut_e2e_last_success_timestamp_seconds` from a metrics file an earlier run wrote.
pub fn read_last_success(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(LAST_SUCCESS)?.trim().parse().ok())
}

/// The exposition text for a run.
pub fn render(report: &RunReport, last_success: Option<f64>) -> String {
    let mut m = Text::default();
    let ok = |b: bool| if b { 1.0 } else { 0.0 };
    m.family(
        "torghut_e2e_run_success",
        "gauge",
        "1 when the run passed every check on positive evidence, else 0.",
    );
    m.sample(
        "torghut_e2e_run_success",
        &[],
        ok(report.verdict == Verdict::Pass),
    );
    m.family(
        "torghut_e2e_run_exit_code",
        "gauge",
        "Exit code of the run (0 pass, 1 check failed, 2 usage, 3 unreachable).",
    );
    m.sample(
        "torghut_e2e_run_exit_code",
        &[],
        f64::from(report.exit_code),
    );
    m.family(
        "torghut_e2e_run_duration_seconds",
        "gauge",
        "Wall time of the run.",
    );
    m.sample(
        "torghut_e2e_run_duration_seconds",
        &[],
        report.duration_ms as f64 / 1e3,
    );
    m.family(
        "torghut_e2e_run_timestamp_seconds",
        "gauge",
        "When the run ended (Unix time).",
    );
    m.sample("torghut_e2e_run_timestamp_seconds", &[], ended_at(report));
    if let Some(t) = last_success {
        m.family(LAST_SUCCESS, "gauge", "When a run last passed (Unix time).");
        m.sample(LAST_SUCCESS, &[], t);
    }
    scenarios(&mut m, report);
    check_results(&mut m, report);
    findings(&mut m, report);
    latencies(&mut m, report);
    precision(&mut m, report);
    m.0
}

/// The error of the visibility times, per population, and the validator's overhead.
fn precision(m: &mut Text, report: &RunReport) {
    let name = "torghut_e2e_visibility_error_seconds";
    m.family(
        name,
        "gauge",
        "Error of the visibility times behind the latency figures: the max and p95 of the \
         half-widths of the brackets (last poll that missed a row, first that saw it, narrowed \
         to its part's commit where the server's part log has it), per population \
         (trade_closed, watermark_closed, pt1m) and method (part-log, key-poll).",
    );
    for s in &report.scenarios {
        let l = &s.latency;
        for (population, e) in [
            ("trade_closed", &l.visibility_error),
            ("watermark_closed", &l.watermark_closed.visibility_error),
            ("pt1m", &l.minute_signals.visibility_error),
        ] {
            for by in &e.by_method {
                for (stat, v) in [("max", by.max_ms), ("p95", by.p95_ms)] {
                    if let Some(v) = v {
                        let labels = [
                            ("scenario", s.name.as_str()),
                            ("population", population),
                            ("method", by.method.as_str()),
                            ("stat", stat),
                        ];
                        m.sample(name, &labels, v / 1e3);
                    }
                }
            }
        }
    }
    let name = "torghut_e2e_overhead_seconds";
    m.family(
        name,
        "gauge",
        "The validator's own time: from the last evidence its verdict rests on (clickhouse_rows, \
         kafka_outputs, heartbeat, a later stage) to the verdict.",
    );
    for s in &report.scenarios {
        if let (Some(ms), Some(what)) = (s.overhead_ms, &s.last_evidence) {
            let labels = [
                ("scenario", s.name.as_str()),
                ("last_evidence", what.as_str()),
            ];
            m.sample(name, &labels, ms as f64 / 1e3);
        }
    }
}

fn scenarios(m: &mut Text, report: &RunReport) {
    m.family(
        "torghut_e2e_scenario_success",
        "gauge",
        "1 when the scenario passed, else 0.",
    );
    for s in &report.scenarios {
        let v = if s.verdict == Verdict::Pass { 1.0 } else { 0.0 };
        m.sample("torghut_e2e_scenario_success", &[("scenario", &s.name)], v);
    }
    m.family(
        "torghut_e2e_scenario_duration_seconds",
        "gauge",
        "Wall time of the scenario.",
    );
    for s in &report.scenarios {
        let v = s.duration_ms as f64 / 1e3;
        m.sample(
            "torghut_e2e_scenario_duration_seconds",
            &[("scenario", &s.name)],
            v,
        );
    }
}

fn check_results(m: &mut Text, report: &RunReport) {
    m.family(
        "torghut_e2e_check_success",
        "gauge",
        "1 when the check passed, else 0; one series per JUnit test case but the diagnoses.",
    );
    for suite in checks(report) {
        let findings = [CheckKind::Finding, CheckKind::Warning];
        let judged = |c: &&NamedCheck| c.status != CheckStatus::Pending;
        for c in suite
            .checks
            .iter()
            .filter(|c| !findings.contains(&c.kind))
            .filter(judged)
        {
            let v = if c.status == CheckStatus::Pass {
                1.0
            } else {
                0.0
            };
            let labels = [
                ("suite", suite.name.as_str()),
                ("check", c.name.as_str()),
                ("kind", kind_label(c.kind)),
            ];
            m.sample("torghut_e2e_check_success", &labels, v);
        }
    }
    m.family(
        "torghut_e2e_check_pending",
        "gauge",
        "1 for a check not judgeable yet (the TA heartbeat between two beats): neither pass nor failure.",
    );
    for suite in checks(report) {
        for c in suite
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Pending)
        {
            let labels = [
                ("suite", suite.name.as_str()),
                ("check", c.name.as_str()),
                ("kind", kind_label(c.kind)),
            ];
            m.sample("torghut_e2e_check_pending", &labels, 1.0);
        }
    }
}

/// Failing findings and warnings as two metrics, so an alert on failures never fires on drift
/// the pipeline survives.
fn findings(m: &mut Text, report: &RunReport) {
    for (name, help, severity) in [
        (
            "torghut_e2e_findings",
            "Diagnosed failures of the scenario at a hop of the pipeline.",
            Severity::Failure,
        ),
        (
            "torghut_e2e_warnings",
            "Warnings of the scenario at a hop: drift the pipeline survives, not failed on.",
            Severity::Warning,
        ),
    ] {
        m.family(name, "gauge", help);
        for s in &report.scenarios {
            let mut per_hop: std::collections::BTreeMap<String, u32> = Default::default();
            let all = s
                .findings
                .iter()
                .chain(s.stages.iter().flat_map(|st| st.findings.iter()));
            for f in all.filter(|f| f.severity == severity) {
                *per_hop.entry(hop_name(f)).or_default() += 1;
            }
            for (hop, n) in per_hop {
                let labels = [("scenario", s.name.as_str()), ("hop", hop.as_str())];
                m.sample(name, &labels, f64::from(n));
            }
        }
    }
}

fn latencies(m: &mut Text, report: &RunReport) {
    let name = "torghut_e2e_hop_latency_seconds";
    m.family(
        name,
        "histogram",
        "Per-bar latency of a hop: publish_to_visible (broker ack to visible in ClickHouse), \
         publish_to_ta_emit, ta_emit_to_visible for bars closed by a trade; the same with a \
         watermark_ prefix for bars closed by the job's watermark (these may wait for idle \
         partitions); publish_to_kafka (broker ack to the bar on the TA job's bars topic).",
    );
    for s in &report.scenarios {
        let (l, w) = (&s.latency, &s.latency.watermark_closed);
        let hops: [(&str, &Summary); 7] = [
            ("publish_to_visible", &l.publish_to_visible),
            ("publish_to_ta_emit", &l.publish_to_ta_emit),
            ("ta_emit_to_visible", &l.ta_emit_to_visible),
            ("watermark_publish_to_visible", &w.publish_to_visible),
            ("watermark_publish_to_ta_emit", &w.publish_to_ta_emit),
            ("watermark_ta_emit_to_visible", &w.ta_emit_to_visible),
            (
                "pt1m_publish_to_visible",
                &l.minute_signals.publish_to_visible,
            ),
        ];
        for (hop, summary) in hops {
            if !summary.samples_ms.is_empty() {
                histogram(m, name, &[("scenario", &s.name), ("hop", hop)], summary);
            }
        }
        // The Kafka hop (broker ack → the bar on the TA job's bars topic), from its stage.
        let kafka = s.stages.iter().filter(|st| st.stage == "kafka_outputs");
        for latency in kafka.filter_map(|st| st.observed.get("latency")) {
            for hop in ["publish_to_kafka", "watermark_publish_to_kafka"] {
                let samples: Vec<f64> = latency[hop]["samples_ms"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                    .unwrap_or_default();
                if !samples.is_empty() {
                    let summary = crate::domain::latency::summarize(&samples);
                    histogram(m, name, &[("scenario", &s.name), ("hop", hop)], &summary);
                }
            }
        }
    }
}

/// Cumulative buckets, `+Inf`, sum and count. Samples can be negative (two hosts' clocks):
/// they count in every bucket, as Prometheus would.
fn histogram(m: &mut Text, name: &str, labels: &[(&str, &str)], s: &Summary) {
    let secs: Vec<f64> = s.samples_ms.iter().map(|v| v / 1e3).collect();
    let bucket = format!("{name}_bucket");
    for le in BUCKETS {
        let n = secs.iter().filter(|v| **v <= *le).count();
        let le = le.to_string();
        let mut l = labels.to_vec();
        l.push(("le", &le));
        m.sample(&bucket, &l, n as f64);
    }
    let mut l = labels.to_vec();
    l.push(("le", "+Inf"));
    m.sample(&bucket, &l, secs.len() as f64);
    m.sample(&format!("{name}_sum"), labels, secs.iter().sum());
    m.sample(&format!("{name}_count"), labels, secs.len() as f64);
}

fn kind_label(kind: CheckKind) -> &'static str {
    match kind {
        CheckKind::Preflight => "preflight",
        CheckKind::Run => "run",
        CheckKind::Table => "table",
        CheckKind::Stage => "stage",
        CheckKind::Finding => "finding",
        CheckKind::Warning => "warning",
    }
}

/// Exposition text under construction.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// Go's formatting of special values; finite values as Rust prints them (round-trip exact).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes the file atomically (a scraper never reads half a file): temp file, then rename.
pub fn write_file(path: &Path, text: &str) -> Result<(), MetricsError> {
    let tmp = path.with_extension("prom.tmp");
    let err = |source| MetricsError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The Pushgateway grouping key: job `torghut-e2e`, then the lane and, for a sharded run, the
/// shard, so lanes and shards do not overwrite each other's metrics.
pub fn push_url(base: &str, report: &RunReport) -> String {
    let mut url = format!(
        "{}/metrics/job/torghut-e2e/lane/{}",
        base.trim_end_matches('/'),
        report.target.lane
    );
    if let Some(shard) = &report.shard {
        let index = shard.split('/').next().unwrap_or(shard);
        let _ = write!(url, "/shard/{index}");
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample;

    #[test]
    fn the_kafka_hop_and_a_pending_check_have_their_series() {
        let mut report = sample();
        report.scenarios[0]
            .stages
            .push(crate::domain::report::StageReport {
                stage: "kafka_outputs".into(),
                observed: [(
                    "latency".to_string(),
                    serde_json::json!({"publish_to_kafka": {"samples_ms": [40.0, 60.0, 700.0]}}),
                )]
                .into(),
                ..Default::default()
            });
        report.scenarios[0]
            .stages
            .push(crate::domain::report::StageReport {
                stage: "heartbeat".into(),
                verdict: Verdict::Pass,
                checks: vec![crate::domain::report::StageCheck {
                    name: "status".into(),
                    ok: true,
                    pending: true,
                    ..Default::default()
                }],
                ..Default::default()
            });
        let text = render(&report, Some(1_700_000_000.0));
        assert!(text.contains(
            "torghut_e2e_hop_latency_seconds_bucket{scenario=\"probe\",hop=\"publish_to_kafka\",le=\"0.1\"} 2"
        ), "{text}");
        assert!(text.contains(
            "torghut_e2e_check_pending{suite=\"probe\",check=\"heartbeat status\",kind=\"stage\"} 1"
        ), "{text}");
        assert!(!text.contains("check_success{suite=\"probe\",check=\"heartbeat status\""));
    }

    #[test]
    fn every_line_is_a_comment_or_a_well_formed_sample() {
        let text = render(&sample(), Some(1_700_000_000.0));
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            assert!(series.starts_with("torghut_e2e_"), "{line}");
        }
        assert!(text.contains("torghut_e2e_run_success 0\n"), "{text}");
        assert!(text.contains(
            "torghut_e2e_check_success{suite=\"probe\",check=\"clickhouse ta_signals\",kind=\"table\"} 0"
        ));
        assert!(text.contains(
            "torghut_e2e_hop_latency_seconds_bucket{scenario=\"probe\",hop=\"publish_to_visible\",le=\"0.5\"} 2"
        ));
        // Watermark-closed bars keep their 30 s out of the trade-closed histogram.
        assert!(text.contains(
            "torghut_e2e_hop_latency_seconds_bucket{scenario=\"probe\",hop=\"watermark_publish_to_visible\",le=\"30\"} 1"
        ), "{text}");
        assert!(text.contains(
            "torghut_e2e_hop_latency_seconds_bucket{scenario=\"probe\",hop=\"publish_to_visible\",le=\"10\"} 3"
        ));
        assert!(text.contains("torghut_e2e_findings{scenario=\"probe\",hop=\"ta_job\"} 1"));
        assert!(text.contains("torghut_e2e_warnings{scenario=\"probe\",hop=\"jangar_api\"} 1"));
        assert!(!text.contains("torghut_e2e_findings{scenario=\"probe\",hop=\"jangar_api\"}"));
        assert!(!text.contains("check=\"warning jangar_api\""), "{text}");
    }

    #[test]
    fn last_success_carries_over_a_failed_run() {
        let report = sample();
        assert_eq!(last_success(&report, Some(5.0)), Some(5.0));
        let mut passed = report.clone();
        passed.verdict = Verdict::Pass;
        assert_eq!(last_success(&passed, Some(5.0)), Some(ended_at(&passed)));
        let dir = std::env::temp_dir().join(format!("t2e-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.prom");
        write_file(&path, &render(&report, Some(1234.5))).unwrap();
        assert_eq!(read_last_success(&path), Some(1234.5));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn labels_are_escaped_and_the_push_url_groups_by_lane_and_shard() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut r = sample();
        assert_eq!(
            push_url("http://pg:9091/", &r),
            "http://pg:9091/metrics/job/torghut-e2e/lane/sim"
        );
        r.shard = Some("2/4".into());
        assert!(push_url("http://pg:9091", &r).ends_with("/lane/sim/shard/2"));
    }
}
