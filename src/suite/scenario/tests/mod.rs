//! The runner on in-memory seams: its pure parts (presence, closing trades, latency, judging)
//! and whole scenarios through a stand-in job, so each diagnosis is shown to follow from what
//! the warehouse holds.

use std::collections::BTreeMap;
use std::path::Path;

use time::macros::datetime;
use time::OffsetDateTime;

use crate::adapter::clickhouse::KeyTable;
use crate::domain::latency::Sightings;
use crate::domain::model::{Columns, RowKey};
use crate::domain::oracle::{Oracle, Trade};
use crate::domain::publish::{Channel, Delivery};
use crate::domain::report::{ScenarioReport, StageReport, Verdict};
use crate::domain::scenario::{Close, Event, Scenario};
use crate::suite::lane::Pin;
use crate::suite::scenario::expect::{expected_bars, Expectations};
use crate::suite::scenario::judge::{consumed_past, include_stages, latency_report};
use crate::suite::scenario::plan::{
    behind_pin, closing_trades, next_pin_at, open_bar_key, realtime_base, Plan, CLOCK_ALIAS,
};
use crate::suite::scenario::poll::{presence, Observed};
use crate::suite::scenario::publish::Sent;

mod runs;

const T0: OffsetDateTime = datetime!(2026-07-21 14:30:00 UTC);

fn ms(n: i64) -> time::Duration {
    time::Duration::milliseconds(n)
}

fn scenario(text: &str) -> Scenario {
    crate::domain::scenario::parse(text, Path::new("unit.toml")).expect("scenario")
}

/// Two symbols, three seconds of one trade per second each, compressed, closed by trades.
const TWO_SYMBOLS: &str = r#"
name = "unit"
symbols = ["A", "B"]
pacing = "compressed"
deadline_secs = 5
[[generators]]
kind = "ramp"
symbol = "A"
seconds = 3
per_second = 1
price = 10.0
step = 0.5
size = 2.0
[[generators]]
kind = "ramp"
symbol = "B"
seconds = 3
per_second = 1
price = 20.0
step = -0.5
size = 1.0
"#;

/// X trades in two seconds (its first bar closes on its own next trade), then a clock trade
/// moves the watermark past X's second bar. Returns the sends and the expectations.
fn closes() -> (Vec<Sent>, Expectations) {
    let mut oracle = Oracle::new();
    let mut expected = Expectations::default();
    let trades = [("X", 100), ("X", 1_100), ("CLOCK", 4_500)];
    let sent = trades
        .iter()
        .enumerate()
        .map(|(index, (symbol, at))| {
            let rows = oracle.on_trade(symbol, Trade::at(T0 + ms(*at), 10.0, 1.0));
            Sent {
                delivery: Delivery {
                    index,
                    channel: Channel::Trades,
                    symbol: symbol.to_string(),
                    partition: 0,
                    offset: index as i64,
                    acked_at: T0 + ms(*at + 20),
                },
                emitted: expected.add(rows),
            }
        })
        .collect();
    (sent, expected)
}

#[test]
fn a_bar_visible_before_its_trigger_was_acknowledged_times_no_hop() {
    // On a lane other writers use, the lane's watermark can close a bar before the trade meant
    // to close it is even sent (a scenario with a long gap): it is counted apart, not as a
    // negative latency.
    let (sent, expected) = closes();
    let bars = expected_bars(&sent, &expected);
    let a0 = bars[0].trigger_ack;
    let mut observed = Observed {
        sightings: Sightings::new(a0 - ms(5_000)),
        ..Observed::default()
    };
    let bar = |i: usize| (KeyTable::Microbars, bars[i].key.clone());
    observed
        .sightings
        .observe(a0 - ms(3_000), a0 - ms(2_990), [bar(0)]);
    observed
        .sightings
        .observe(a0 + ms(100), a0 + ms(120), [bar(0)]);
    let l = latency_report(&bars, &observed, Some(5_000));
    assert_eq!(l.closed_before_trigger, 1);
    assert_eq!(l.publish_to_visible.count, 0);
    assert_eq!(
        l.watermark_closed.publish_to_visible.count, 0,
        "bar 2 unseen"
    );
}

#[test]
fn bars_closed_by_the_watermark_are_timed_and_limited_apart() {
    let (sent, expected) = closes();
    let bars = expected_bars(&sent, &expected);
    let kinds: Vec<(u64, bool)> = bars
        .iter()
        .map(|b| (b.key.seq, b.closed_by_watermark))
        .collect();
    assert_eq!(kinds, [(1, false), (2, true)]);

    // Bar 1 visible 300 ± 50 ms after the trade that closed it (missed by the poll sent at
    // 250 ms, seen by the one answering at 350 ms), bar 2 29 000 ± 20 ms after the clock trade
    // (the job waited for an idle partition).
    let mut observed = Observed {
        sightings: Sightings::new(bars[0].trigger_ack),
        ..Observed::default()
    };
    let (a0, a1) = (bars[0].trigger_ack, bars[1].trigger_ack);
    let bar = |i: usize| (KeyTable::Microbars, bars[i].key.clone());
    observed.sightings.observe(a0 + ms(250), a0 + ms(270), []);
    observed
        .sightings
        .observe(a0 + ms(300), a0 + ms(350), [bar(0)]);
    observed
        .sightings
        .observe(a1 + ms(28_980), a1 + ms(28_990), [bar(0)]);
    observed
        .sightings
        .observe(a1 + ms(29_000), a1 + ms(29_020), [bar(0), bar(1)]);
    for (bar, emitted_after) in [(&bars[0], 100), (&bars[1], 28_500)] {
        let mut row = expected
            .bars
            .iter()
            .find(|b| b.key() == bar.key)
            .expect("expected bar")
            .clone();
        row.ingest_ts = bar.trigger_ack + ms(emitted_after);
        observed.bars.push(row);
    }
    let l = latency_report(&bars, &observed, Some(5_000));
    assert_eq!(
        (l.publish_to_visible.count, l.publish_to_visible.p95_ms),
        (1, Some(300.0))
    );
    assert_eq!(l.ta_emit_to_visible.p95_ms, Some(200.0));
    assert_eq!(l.polling_error_ms, 50.0);
    assert_eq!(
        (
            l.visibility_error.method.as_str(),
            l.visibility_error.max_ms
        ),
        ("key-poll", Some(50.0))
    );
    let w = &l.watermark_closed;
    assert_eq!(w.visibility_error.max_ms, Some(20.0));
    assert_eq!(
        (w.publish_to_visible.count, w.publish_to_visible.p95_ms),
        (1, Some(29_000.0))
    );
    assert_eq!(w.publish_to_ta_emit.p95_ms, Some(28_500.0));
    assert_eq!(w.hold_allowance_ms, 31_000.0);
    assert_eq!(w.limit_ms, Some(36_000.0));
    assert_eq!(
        latency_report(&bars, &observed, None)
            .watermark_closed
            .limit_ms,
        None
    );
}

#[test]
fn presence_counts_bars_as_a_multiset_and_leaves_seqs_to_the_comparison() {
    let key = |symbol: &str, second: i64, seq: u64| RowKey {
        symbol: symbol.into(),
        event_ts: T0 + time::Duration::seconds(second),
        seq,
    };
    // Two bars ending in the same second (an out-of-order trade split one) need two rows.
    let wanted = [
        key("A", 1, 1),
        key("A", 1, 2),
        key("A", 2, 3),
        key("B", 1, 1),
    ];
    let rows = [key("A", 1, 7), key("A", 2, 9), key("C", 1, 1)];
    assert_eq!(
        presence(&wanted, rows.into_iter()),
        [true, false, true, false]
    );
    assert_eq!(presence(&wanted, std::iter::empty()), [false; 4]);
}

fn plan(scenario: &Scenario, close: Close) -> Plan {
    Plan {
        symbols: scenario
            .symbols
            .iter()
            .map(|a| (a.clone(), format!("ZZT2E-UNIT-{a}")))
            .collect(),
        clock: format!("ZZT2E-UNIT-{CLOCK_ALIAS}"),
        close,
        deadline: scenario.deadline,
        lease: None,
    }
}

#[test]
fn closing_trades_close_each_symbol_or_move_the_watermark_past_every_bar() {
    let s = scenario(TWO_SYMBOLS);
    // Per symbol, one trade 100 ms into the second after its last one, at its last price.
    let by_trade = closing_trades(&s, &plan(&s, Close::Trade), T0, None).unwrap();
    let got: Vec<(String, OffsetDateTime, f64)> = by_trade
        .iter()
        .map(|c| match &c.event {
            Event::Trade(t) => (c.symbol.clone(), c.at, t.price),
            _ => panic!("a closing quote or bar"),
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ZZT2E-UNIT-A".into(), T0 + ms(3_100), 11.0),
            ("ZZT2E-UNIT-B".into(), T0 + ms(3_100), 19.0),
        ]
    );
    assert!(by_trade.iter().all(|c| c.channel == Channel::Trades));
    // The closing trade's own bar is tolerated: its key is the end of the second it opens.
    let open = open_bar_key("ZZT2E-UNIT-A", T0 + ms(3_100));
    assert_eq!(open.event_ts, T0 + ms(4_000));

    // By watermark: a clock trade 2.5 s into the second after the last event, past the 2 s
    // out-of-orderness bound, twice at the same time.
    let by_watermark = closing_trades(&s, &plan(&s, Close::Watermark), T0, None).unwrap();
    let ticks: Vec<_> = by_watermark
        .iter()
        .map(|c| (c.symbol.as_str(), c.at))
        .collect();
    assert_eq!(
        ticks,
        [
            ("ZZT2E-UNIT-CLOCK", T0 + ms(5_500)),
            ("ZZT2E-UNIT-CLOCK", T0 + ms(5_500))
        ]
    );
}

#[test]
fn behind_a_pin_every_bar_ends_before_the_pinned_watermark_and_the_next_pin_moves_it_past() {
    let s = scenario(TWO_SYMBOLS);
    let pin = Pin::acknowledged(T0 + ms(60_456), vec![0, 1, 2], Vec::new());
    let base = behind_pin(&s, pin.at);
    assert_eq!(base.millisecond(), 0);
    // The pinned watermark is pin − 2,001 ms; every bucket, and the one the closing trades
    // open, ends before it.
    let pinned_watermark = pin.at - ms(2_001);
    let closers = closing_trades(&s, &plan(&s, Close::Trade), base, Some(&pin)).unwrap();
    let last_closer = closers.iter().map(|c| c.at).max().unwrap();
    let bucket_end = |at: OffsetDateTime| at.replace_millisecond(0).unwrap() + ms(1_000);
    assert!(
        bucket_end(last_closer) <= pinned_watermark,
        "{last_closer} vs {pinned_watermark}"
    );
    assert!(base + ms(s.span_ms() as i64) < last_closer);
    assert!(closers.iter().all(|c| c.partition.is_none()));

    // Closed by watermark: the next pin, a second later, on every partition.
    let ticks = closing_trades(&s, &plan(&s, Close::Watermark), base, Some(&pin)).unwrap();
    let got: Vec<_> = ticks
        .iter()
        .map(|c| (c.symbol.as_str(), c.at, c.partition))
        .collect();
    let next = next_pin_at(&pin);
    assert_eq!(next, pin.at + ms(1_000));
    assert_eq!(got, [0, 1, 2].map(|p| ("ZZT2E-UNIT-CLOCK", next, Some(p))));
    // Past every bucket's end by more than the out-of-orderness bound.
    assert!(next - ms(2_001) > bucket_end(last_closer));
}

#[test]
fn realtime_starts_on_the_next_second() {
    assert_eq!(realtime_base(T0 + ms(10_456)), T0 + ms(11_000));
}

#[test]
fn the_job_has_consumed_only_past_the_last_trade_of_every_partition() {
    let last: BTreeMap<i32, i64> = [(0, 10), (1, 4)].into();
    let committed = |c: &[(i32, i64)]| c.iter().copied().collect::<BTreeMap<_, _>>();
    assert_eq!(
        consumed_past(&last, &committed(&[(0, 11), (1, 5)])),
        Some(true)
    );
    // A committed offset is the next to read: 10 means offset 10 is not consumed yet.
    assert_eq!(
        consumed_past(&last, &committed(&[(0, 10), (1, 5)])),
        Some(false)
    );
    assert_eq!(consumed_past(&last, &committed(&[(0, 11)])), Some(false));
    assert_eq!(consumed_past(&last, &committed(&[])), None, "no commit yet");
}

#[test]
fn a_later_stage_that_fails_or_errs_decides_the_scenario() {
    let stage = |verdict| StageReport {
        stage: "api".into(),
        verdict,
        ..StageReport::default()
    };
    let with = |verdicts: &[Verdict]| {
        let mut r = ScenarioReport {
            verdict: Verdict::Pass,
            stages: verdicts.iter().map(|v| stage(*v)).collect(),
            ..ScenarioReport::default()
        };
        include_stages(&mut r);
        r.verdict
    };
    assert_eq!(with(&[]), Verdict::Pass);
    assert_eq!(with(&[Verdict::Pass]), Verdict::Pass);
    assert_eq!(with(&[Verdict::Pass, Verdict::Fail]), Verdict::Fail);
    assert_eq!(with(&[Verdict::Fail, Verdict::Error]), Verdict::Error);
}
