use super::*;

fn facts() -> SinkFacts {
    SinkFacts {
        expected_bars: 10,
        found_bars: 10,
        ..Default::default()
    }
}

#[test]
fn clean_facts_have_no_findings() {
    assert!(sink(&facts()).is_empty());
}

#[test]
fn no_rows_points_at_the_ta_job_unless_rows_are_elsewhere() {
    let f = SinkFacts {
        found_bars: 0,
        ..facts()
    };
    let d = sink(&f);
    assert_eq!(d[0].hop, Hop::TaJob);
    assert!(d[0].cause.contains("not consuming"));
    let f = SinkFacts {
        found_bars: 0,
        rows_in_other_database: Some("default".into()),
        ..facts()
    };
    let d = sink(&f);
    assert_eq!(d[0].hop, Hop::ClickhouseSink);
    assert!(d[0].cause.contains("in default"));
}

#[test]
fn missing_tail_means_watermark_missing_middle_means_drops() {
    let d = sink(&SinkFacts {
        found_bars: 8,
        missing_positions: vec![8, 9],
        ..facts()
    });
    assert!(d[0].cause.contains("watermark"), "{}", d[0].cause);
    let d = sink(&SinkFacts {
        found_bars: 8,
        missing_positions: vec![3, 6],
        ..facts()
    });
    assert!(d[0].cause.contains("drops bars"), "{}", d[0].cause);
}

#[test]
fn watermark_closed_bars_have_their_own_limit() {
    let quick_sink = crate::latency::summarize(&[400.0]);
    assert_eq!(
        watermark_latency(36_000.0, 31_000.0, 30_900.0, &quick_sink),
        None
    );
    let f = watermark_latency(36_000.0, 31_000.0, 50_000.0, &quick_sink).expect("late");
    assert_eq!((f.hop, f.runbook), (Hop::TaJob, RUNBOOK_WATERMARK));
    assert!(
        f.cause
            .contains("the watermark closed 50000 ms exceeds 36000 ms"),
        "{}",
        f.cause
    );
    let slow_sink = crate::latency::summarize(&[30_000.0]);
    let f = watermark_latency(36_000.0, 31_000.0, 50_000.0, &slow_sink).expect("late");
    assert_eq!(f.hop, Hop::ClickhouseSink);
}

#[test]
fn value_mismatch_names_columns() {
    let d = sink(&SinkFacts {
        mismatched_columns: vec!["ema12".into()],
        ..facts()
    });
    assert_eq!(d[0].hop, Hop::TaJob);
    assert!(d[0].cause.contains("ema12"));
}

#[test]
fn a_shifted_seq_is_its_own_finding_and_not_a_value_column() {
    let d = sink(&SinkFacts {
        mismatched_columns: vec!["count".into(), "seq".into()],
        seq_shifted_rows: 73,
        ..facts()
    });
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d[0].cause.starts_with("73 bars arrived with another seq"),
        "{}",
        d[0].cause
    );
    assert!(d[1].cause.ends_with("oracle in count"), "{}", d[1].cause);
}

#[test]
fn missing_minute_rows_name_the_one_minute_branch() {
    let all = SinkFacts {
        expected_minute_signals: 5,
        found_minute_signals: 5,
        ..facts()
    };
    assert!(sink(&all).is_empty());
    let none = sink(&SinkFacts {
        found_minute_signals: 0,
        ..all.clone()
    });
    assert_eq!(none.len(), 1);
    assert_eq!((none[0].hop, none[0].runbook), (Hop::TaJob, RUNBOOK_BARS1M));
    assert!(
        none[0].cause.contains("1-minute branch"),
        "{}",
        none[0].cause
    );
    assert!(
        none[0].cause.contains("TA_BARS1M_TOPIC"),
        "{}",
        none[0].cause
    );
    let some = sink(&SinkFacts {
        found_minute_signals: 3,
        ..all.clone()
    });
    assert!(
        some[0].cause.starts_with("2 of 5 PT1M"),
        "{}",
        some[0].cause
    );
    // Named even when the 1-second path has no rows either (a scenario of minute bars alone,
    // or a job that writes nothing): the branch is one more broken path, not hidden.
    let both = sink(&SinkFacts {
        found_bars: 0,
        found_minute_signals: 0,
        ..all
    });
    assert!(both.iter().any(|f| f.runbook == RUNBOOK_BARS1M));
    assert!(both.iter().any(|f| f.cause.contains("not consuming")));
}
