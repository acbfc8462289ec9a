//! Whole scenarios on the in-memory seams: each diagnosis follows from what the warehouse holds.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::TaSettings;
use crate::domain::diagnose::Hop;
use crate::domain::envelope::{parse_message, Message};
use crate::domain::latency::Method;
use crate::domain::model::Columns;
use crate::domain::oracle::Expected;
use crate::domain::pool::PoolName;
use crate::domain::publish::Channel;
use crate::domain::publish::Fate;
use crate::domain::report::{ScenarioReport, StageReport, Verdict};
use crate::domain::scenario::Scenario;
use crate::domain::symbols::RunId;
use crate::suite::lane::Lane;
use crate::suite::ledger::Ledger;
use crate::suite::scenario::fake::{
    Edit, FakeJob, FakePublisher, FakeStages, FakeWarehouse, Taken, FAKE_PARTITIONS,
};
use crate::suite::scenario::{RunError, Runner, Stopped};
use crate::suite::shared_reads::SharedReads;

use super::*;

/// The seams of one test run: a warehouse, a publisher feeding the stand-in job (or nothing),
/// later stages.
struct Rig {
    warehouse: Arc<FakeWarehouse>,
    publisher: FakePublisher,
    stages: FakeStages,
    ledger: Ledger,
    run_id: RunId,
}

impl Rig {
    /// A job that writes what the oracle predicts, edited by `edit`.
    fn with_job(warehouse: FakeWarehouse, edit: Edit) -> Self {
        let warehouse = Arc::new(warehouse);
        let job = FakeJob::new(warehouse.clone(), edit);
        Rig {
            publisher: FakePublisher::feeding(job),
            ..Rig::without_job(warehouse)
        }
    }

    /// Nothing reaches the warehouse.
    fn without_job(warehouse: Arc<FakeWarehouse>) -> Self {
        Rig {
            warehouse,
            publisher: FakePublisher::default(),
            stages: FakeStages::default(),
            ledger: Ledger::default(),
            run_id: RunId::from_string("FAKE").unwrap(),
        }
    }

    async fn run(&self, scenario: &Scenario) -> Result<ScenarioReport, Box<Stopped>> {
        self.run_in(scenario, None).await
    }

    async fn run_in(
        &self,
        scenario: &Scenario,
        pool: Option<&PoolName>,
    ) -> Result<ScenarioReport, Box<Stopped>> {
        self.run_on(scenario, pool, &Lane::sequential()).await
    }

    async fn run_on(
        &self,
        scenario: &Scenario,
        pool: Option<&PoolName>,
        lane: &Lane,
    ) -> Result<ScenarioReport, Box<Stopped>> {
        let runner = Runner {
            run_id: &self.run_id,
            publisher: &self.publisher,
            warehouse: self.warehouse.as_ref(),
            stages: &self.stages,
            pool,
            ledger: &self.ledger,
            lane,
            reads: &SharedReads::default(),
            outputs: None,
            ta: TaSettings::default(),
        };
        runner.run(scenario).await
    }
}

fn keep() -> Edit {
    Box::new(Some)
}

fn hops(report: &ScenarioReport) -> Vec<Hop> {
    report.findings.iter().map(|f| f.hop).collect()
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_rows_all_arrive_passes_on_every_row() {
    let rig = Rig::with_job(FakeWarehouse::default(), keep());
    let s = scenario(TWO_SYMBOLS);
    let report = rig.run(&s).await.expect("the scenario runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    // Three bars per symbol, each closed by a trade of its own symbol.
    for table in ["ta_microbars", "ta_signals"] {
        let t = &report.tables[table];
        assert_eq!((t.expected, t.matched), (6, 6), "{table}: {t:?}");
    }
    assert_eq!(report.symbols["A"], "ZZT2E-FAKE-A");
    // Six events and a closing trade per symbol, every one acknowledged, in publish order.
    assert_eq!(report.messages_published, 8);
    let order: Vec<usize> = report.deliveries.iter().map(|d| d.index).collect();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
    assert_eq!(report.latency.publish_to_visible.count, 6);
    assert_eq!(report.latency.watermark_closed.publish_to_visible.count, 0);
    assert!(report
        .wait_attempts
        .last()
        .is_some_and(|a| a.outcome == "ready"));
    // The ledger holds the finished report.
    assert_eq!(rig.ledger.totals().sent, 8);
    assert_eq!(rig.ledger.reports("unused")[0].verdict, Verdict::Pass);
}

#[tokio::test(start_paused = true)]
async fn rows_are_timed_by_their_parts_commits_where_the_warehouse_logs_them() {
    let s = scenario(TWO_SYMBOLS);
    // Without a part log, by the polls around each first sighting.
    let report = Rig::with_job(FakeWarehouse::default(), keep())
        .run(&s)
        .await
        .expect("the scenario runs");
    let methods = |r: &ScenarioReport| {
        r.latency
            .visibility_error
            .by_method
            .iter()
            .map(|m| (m.method, m.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(methods(&report), [(Method::KeyPoll, 6)]);
    // With one, by the commit each row was logged at: within a millisecond.
    let logging = FakeWarehouse {
        part_log: true,
        ..FakeWarehouse::default()
    };
    let report = Rig::with_job(logging, keep())
        .run(&s)
        .await
        .expect("the scenario runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    assert_eq!(methods(&report), [(Method::PartLog, 6)]);
    assert!(
        report.latency.polling_error_ms <= 0.5,
        "{:?}",
        report.latency
    );
    assert_eq!(report.latency.part_log_problem, None);
    // A part log slow to answer holds nothing back: the polls' brackets stand, and why.
    let slow = FakeWarehouse {
        part_log: true,
        part_log_delay: std::time::Duration::from_secs(30),
        ..FakeWarehouse::default()
    };
    let started = tokio::time::Instant::now();
    let report = Rig::with_job(slow, keep())
        .run(&s)
        .await
        .expect("the scenario runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    assert_eq!(methods(&report), [(Method::KeyPoll, 6)]);
    assert_eq!(
        report.latency.part_log_problem.as_deref(),
        Some("not read: did not answer within 2000 ms")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_write_a_key_poll_saw_is_named_even_when_merged_before_the_full_read() {
    // The job's second copy of a bar is seen by one key poll, then folded by a merge: the full
    // read (FINAL) and a count at the end would both find nothing.
    let duplicated = FakeWarehouse {
        unmerged: 1,
        merged_after_polls: Some(1),
        ..FakeWarehouse::default()
    };
    let rig = Rig::with_job(duplicated, keep());
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(hops(&report), [Hop::ClickhouseSink]);
    assert!(
        report.findings[0]
            .cause
            .starts_with("1 duplicate rows visible without FINAL"),
        "{}",
        report.findings[0].cause
    );
    // With no copy ever seen, nothing is said.
    let report = Rig::with_job(FakeWarehouse::default(), keep())
        .run(&scenario(TWO_SYMBOLS))
        .await
        .expect("runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
}

#[tokio::test(start_paused = true)]
async fn a_bar_lost_between_others_is_missing_and_named_at_the_ta_job() {
    // The job loses symbol A's second bar (and its signal).
    let lose: Edit = Box::new(|row: Expected| {
        let k = match &row {
            Expected::Microbar(b) => b.key(),
            Expected::Signal(s) => s.key(),
        };
        (!(k.symbol == "ZZT2E-FAKE-A" && k.seq == 2)).then_some(row)
    });
    let rig = Rig::with_job(FakeWarehouse::default(), lose);
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.tables["ta_microbars"].missing.len(), 1);
    let f = &report.findings[0];
    assert_eq!(f.hop, Hop::TaJob);
    assert!(
        f.cause.contains("1 of 6 bars are missing between rows"),
        "{}",
        f.cause
    );
    // The deadline passed waiting for the lost bar.
    assert!(report.waited_ms >= 5_000, "{}", report.waited_ms);
}

#[tokio::test(start_paused = true)]
async fn a_value_the_job_gets_wrong_is_a_column_diff() {
    let skew: Edit = Box::new(|row: Expected| match row {
        Expected::Signal(mut s) if s.symbol == "ZZT2E-FAKE-B" && s.seq == 3 => {
            s.ema12 = s.ema12.map(|v| v + 0.01);
            Some(Expected::Signal(s))
        }
        other => Some(other),
    });
    let rig = Rig::with_job(FakeWarehouse::default(), skew);
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Fail);
    let signals = &report.tables["ta_signals"];
    assert_eq!(signals.mismatches.len(), 1);
    assert_eq!(signals.mismatches[0].columns[0].column, "ema12");
    assert!(report.tables["ta_microbars"].is_clean());
    assert_eq!(hops(&report), [Hop::TaJob]);
    assert!(report.findings[0].cause.contains("ema12"));
}

#[tokio::test(start_paused = true)]
async fn no_row_anywhere_is_placed_by_what_else_the_warehouse_knows() {
    let s = scenario(TWO_SYMBOLS);
    // Nothing committed: the job is not consuming.
    let rig = Rig::without_job(Arc::new(FakeWarehouse::default()));
    let report = rig.run(&s).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(hops(&report), [Hop::TaJob]);
    assert!(report.findings[0].cause.contains("not consuming"));

    // The group committed past every trade: the writes fail.
    let committed = FakeWarehouse {
        committed: [(0, 100)].into(),
        ..FakeWarehouse::default()
    };
    let report = Rig::without_job(Arc::new(committed))
        .run(&s)
        .await
        .expect("runs");
    assert_eq!(hops(&report), [Hop::ClickhouseSink]);
    assert!(report.findings[0].cause.contains("consumed every trade"));

    // The rows are in another database.
    let elsewhere = FakeWarehouse {
        other_database: Some("torghut".into()),
        ..FakeWarehouse::default()
    };
    let report = Rig::without_job(Arc::new(elsewhere))
        .run(&s)
        .await
        .expect("runs");
    assert_eq!(hops(&report), [Hop::ClickhouseSink]);
    assert!(report.findings[0].cause.contains("rows are in torghut"));
}

#[tokio::test(start_paused = true)]
async fn a_symbol_that_already_has_rows_is_refused_before_anything_is_published() {
    let taken = FakeWarehouse {
        taken: vec!["ZZT2E-FAKE-B".into()],
        ..FakeWarehouse::default()
    };
    let rig = Rig::without_job(Arc::new(taken));
    let stopped = rig.run(&scenario(TWO_SYMBOLS)).await.unwrap_err();
    assert!(matches!(&stopped.error, RunError::SymbolNotFresh(s) if s == "ZZT2E-FAKE-B"));
    assert!(!stopped.error.is_unreachable());
    assert_eq!(stopped.report.verdict, Verdict::Error);
    assert!(rig.publisher.sent.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_stops_acknowledging_stops_the_scenario_and_keeps_what_it_sent() {
    let mut rig = Rig::with_job(FakeWarehouse::default(), keep());
    rig.publisher.stall_at = Some(3);
    // Message 3 was written although never acknowledged.
    rig.publisher.landed = BTreeSet::from([3]);
    let stopped = rig.run(&scenario(TWO_SYMBOLS)).await.unwrap_err();
    assert!(stopped.error.is_unreachable());
    let r = &stopped.report;
    assert_eq!(r.verdict, Verdict::Error);
    assert_eq!(hops(r), [Hop::KafkaPublish]);
    assert_eq!(r.messages_published, 8);
    assert_eq!(r.messages_acknowledged, 3);
    let fates: Vec<(usize, Fate)> = r.unconfirmed.iter().map(|u| (u.index, u.fate)).collect();
    assert_eq!(
        fates,
        [
            (
                3,
                Fate::Landed {
                    partition: 0,
                    offset: 3
                }
            ),
            (4, Fate::NotSent),
            (5, Fate::NotSent),
            (6, Fate::NotSent),
            (7, Fate::NotSent),
        ]
    );
    assert_eq!(rig.ledger.totals().acknowledged, 3);
}

#[tokio::test(start_paused = true)]
async fn a_stage_after_clickhouse_that_errs_makes_the_scenario_an_error() {
    let mut rig = Rig::with_job(FakeWarehouse::default(), keep());
    rig.stages = FakeStages(vec![StageReport {
        stage: "browser".into(),
        verdict: Verdict::Error,
        ..StageReport::default()
    }]);
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert!(report.tables.values().all(|t| t.is_clean()));
    assert_eq!(report.verdict, Verdict::Error);
    assert_eq!(report.stages.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pool_run_reuses_the_pool_symbols_and_closes_by_the_watermark() {
    let rig = Rig::with_job(FakeWarehouse::default(), keep());
    let pool: PoolName = "UNIT".parse().unwrap();
    let report = rig
        .run_in(&scenario(TWO_SYMBOLS), Some(&pool))
        .await
        .expect("runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    assert_eq!(report.symbols["A"], "ZZT2E-UNIT.0-A");
    let p = report.pool.as_ref().expect("a pool report");
    assert_eq!((p.pool.as_str(), p.generation), ("UNIT", 0));
    // The first clock trade closes both symbols' last bars: those are timed apart.
    let last = rig.publisher.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.symbol, "ZZT2E-UNIT.CLOCK");
    assert_eq!(report.latency.watermark_closed.publish_to_visible.count, 2);
    assert_eq!(report.latency.publish_to_visible.count, 4);
}

/// A trade's event time.
fn event_time(taken: &Taken) -> OffsetDateTime {
    match parse_message(&taken.value) {
        Ok(Message::Trade(t)) => t.event_ts.into(),
        other => panic!("not a trade: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn compressed_scenarios_publish_behind_one_pin_and_one_closed_by_watermark_pins_past_itself()
{
    let rig = Rig::with_job(FakeWarehouse::default(), keep());
    let lane = Lane::sequential();
    let renamed = |a: &str, b: &str| {
        TWO_SYMBOLS
            .replace("\"A\"", &format!("\"{a}\""))
            .replace("\"B\"", &format!("\"{b}\""))
    };
    let other = renamed("C", "D");
    let by_watermark = renamed("E", "F").replace(
        "deadline_secs = 5",
        "deadline_secs = 5\nclose = \"watermark\"",
    );
    for s in [TWO_SYMBOLS, other.as_str(), by_watermark.as_str()] {
        let report = rig.run_on(&scenario(s), None, &lane).await.expect("runs");
        assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    }
    let sent = rig.publisher.sent.lock().unwrap().clone();
    let clock = "ZZT2E-FAKE-CLOCK";
    // The lane is pinned once, first: one clock trade on every partition, at one time.
    let pin: Vec<&Taken> = sent.iter().take_while(|t| t.symbol == clock).collect();
    assert_eq!(
        pin.iter().map(|t| t.partition).collect::<Vec<_>>(),
        FAKE_PARTITIONS.map(Some)
    );
    let pinned_at = event_time(pin[0]);
    assert!(pin.iter().all(|t| event_time(t) == pinned_at));
    // Every trade of the three scenarios (closing trades included) lies in a second that ends
    // before the pinned watermark, so none can move it or be split by it.
    let scenario_trades = sent[pin.len()..]
        .iter()
        .filter(|t| t.channel == Channel::Trades && t.symbol != clock);
    let mut count = 0;
    for t in scenario_trades {
        let at = event_time(t);
        let bucket_end = at.replace_millisecond(0).unwrap() + ms(1_000);
        assert!(bucket_end <= pinned_at - ms(2_001), "{} at {at}", t.symbol);
        count += 1;
    }
    // Six trades each, and a closing trade per symbol in the two closed by trade.
    assert_eq!(count, 3 * 6 + 2 * 2);
    // The scenario closed by watermark pins past itself: the clock on every partition, a
    // second after the lane's pin, and last.
    let next: Vec<&Taken> = sent[pin.len()..]
        .iter()
        .filter(|t| t.symbol == clock)
        .collect();
    assert_eq!(
        next.iter().map(|t| t.partition).collect::<Vec<_>>(),
        FAKE_PARTITIONS.map(Some)
    );
    assert!(next.iter().all(|t| event_time(t) == pinned_at + ms(1_000)));
    assert_eq!(sent.last().map(|t| t.symbol.as_str()), Some(clock));
}

#[tokio::test(start_paused = true)]
async fn a_compressed_run_on_a_lane_with_other_writers_passes_with_a_warning_naming_them() {
    let warehouse = FakeWarehouse {
        // Another writer's bars, and this run's own (its prefix): only the former count.
        writers: vec![("AAPL".into(), 12), ("ZZT2E-FAKE-OLD".into(), 3)],
        ..FakeWarehouse::default()
    };
    let rig = Rig::with_job(warehouse, keep());
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    let warnings: Vec<_> = report.findings.iter().filter(|f| !f.is_failure()).collect();
    assert_eq!(warnings.len(), 1, "{:?}", report.findings);
    assert_eq!(warnings[0].hop, Hop::Preflight);
    assert!(
        warnings[0].cause.contains("AAPL (12 bars)"),
        "{}",
        warnings[0].cause
    );
    assert!(
        !warnings[0].cause.contains("ZZT2E-FAKE"),
        "{}",
        warnings[0].cause
    );

    // A lane to itself: no warning.
    let rig = Rig::with_job(FakeWarehouse::default(), keep());
    let report = rig.run(&scenario(TWO_SYMBOLS)).await.expect("runs");
    assert_eq!(report.findings, []);
}

/// Three 1-minute bars (the last a correction) and nothing else.
const MINUTE_BARS: &str = r#"
name = "minutes"
symbols = ["M"]
pacing = "compressed"
deadline_secs = 5
bars = [
  { symbol = "M", minute = 0, open = 10.0, high = 10.5, low = 9.5, close = 10.2, volume = 100.0 },
  { symbol = "M", minute = 1, open = 10.2, high = 10.6, low = 10.0, close = 10.4, volume = 80.0 },
  { symbol = "M", minute = 1, at_ms = 121000, open = 10.2, high = 10.7, low = 10.0, close = 10.6, volume = 90.0, updated = true },
]
"#;

#[tokio::test(start_paused = true)]
async fn minute_bars_alone_pass_on_their_pt1m_rows() {
    let rig = Rig::with_job(FakeWarehouse::default(), keep());
    let report = rig.run(&scenario(MINUTE_BARS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.findings);
    let t = &report.tables["ta_signals_pt1m"];
    assert_eq!((t.expected, t.matched), (3, 3), "{t:?}");
    // No trade: the 1-second path expects nothing and is not judged on an empty table.
    assert!(
        !report.tables.contains_key("ta_microbars"),
        "{:?}",
        report.tables.keys()
    );
    assert_eq!(report.messages_published, 3);
    assert_eq!(
        report
            .deliveries
            .iter()
            .map(|d| d.channel)
            .collect::<Vec<_>>(),
        [Channel::Bars1m; 3]
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_without_the_minute_branch_is_named() {
    let no_minutes: Edit = Box::new(|row: Expected| match &row {
        Expected::Signal(s) if s.window_size == "PT1M" => None,
        _ => Some(row),
    });
    let rig = Rig::with_job(FakeWarehouse::default(), no_minutes);
    let report = rig.run(&scenario(MINUTE_BARS)).await.expect("runs");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.tables["ta_signals_pt1m"].missing.len(), 3);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.hop == Hop::TaJob && f.cause.contains("1-minute branch")),
        "{:?}",
        report.findings
    );
}
