use super::*;

fn stats(rows: u64, first: u64, last: u64) -> HistoryStats {
    HistoryStats {
        rows,
        first_seq: first,
        last_seq: last,
        ..HistoryStats::empty("ZZT2E-P.0-A")
    }
}

#[test]
fn names_are_reserved_distinct_from_run_symbols_and_valid_for_jangar() {
    let pool: PoolName = "CANARY".parse().expect("valid");
    let s = pool.symbol(9, "ABCDEFGH");
    assert_eq!(s, "ZZT2E-CANARY.9-ABCDEFGH");
    assert!(s.len() <= 32 && crate::symbols::is_synthetic(&s), "{s}");
    assert!(crate::symbols::is_synthetic(&pool.clock()));
    for bad in ["", "canary", "TOOLONGNAME", "A.B", "A-B"] {
        assert!(bad.parse::<PoolName>().is_err(), "{bad}");
    }
}

#[test]
fn histories_are_classified_by_what_they_let_the_oracle_know() {
    assert_eq!(classify(&stats(0, 0, 0)), Ok(HistoryKind::Fresh));
    assert_eq!(classify(&stats(5, 1, 5)), Ok(HistoryKind::Complete));
    assert_eq!(
        classify(&stats(360, 41, 400)),
        Ok(HistoryKind::PrefixExpired)
    );
    let gap = classify(&stats(4, 1, 5)).expect_err("gap");
    assert!(gap.contains("1 of seqs 1..=5 missing"), "{gap}");
    let short = classify(&stats(359, 42, 400)).expect_err("too few");
    assert!(short.contains("only 359 remain"), "{short}");
    assert!(classify(&stats(6, 1, 5)).is_err());
}

/// The session the job holds: the expired rows' sums plus the run's bars.
fn session_values(prior: (f64, f64), bars: &[(f64, f64)]) -> Vec<Option<f64>> {
    let mut s = SessionSums {
        pv: prior.0,
        volume: prior.1,
    };
    bars.iter()
        .map(|&(c, v)| {
            s.add(c, v);
            Some(s.value())
        })
        .collect()
}

#[test]
fn the_prior_volume_is_recovered_from_the_observed_session_vwap() {
    let prior = (101.37 * 2.5e7, 2.5e7);
    let bars = [(101.0, 10.0), (101.5, 0.0), (103.2, 40.0), (99.0, 7.0)];
    let observed = session_values(prior, &bars);
    let fit = fit_prior_volume(101.37, &bars, &observed).expect("moved");
    assert!((fit.volume / prior.1 - 1.0).abs() < 1e-6, "{fit:?}");
    assert_eq!(fit.row, 2, "the row that moved furthest");
    let predicted = session_values((101.37 * fit.volume, fit.volume), &bars);
    for (p, o) in predicted.iter().zip(&observed) {
        let (p, o) = (p.expect("value"), o.expect("value"));
        assert!((p - o).abs() <= 1e-9 * o.abs(), "{p} vs {o}");
    }
}

#[test]
fn no_movement_leaves_the_volume_unknown_and_a_wrong_value_gives_a_negative_volume() {
    let flat = [(50.0, 3.0), (50.0, 4.0)];
    assert_eq!(
        fit_prior_volume(50.0, &flat, &[Some(50.0), Some(50.0)]),
        None
    );
    // Moving away from every close is no weighted mean at all.
    let fit = fit_prior_volume(50.0, &[(51.0, 1.0)], &[Some(52.0)]).expect("moved");
    assert!(fit.volume < 0.0, "{fit:?}");
}

fn bar(symbol: &str, seq: u64, c: f64, v: f64) -> Microbar {
    let t = time::macros::datetime!(2026-01-01 00:00:00 UTC) + time::Duration::seconds(seq as i64);
    Microbar {
        symbol: symbol.into(),
        event_ts: t,
        seq,
        ingest_ts: t,
        is_final: 1,
        source: crate::model::SOURCE_TA.into(),
        window_size: crate::model::WINDOW_1S.into(),
        window_step: None,
        window_start: None,
        window_end: None,
        version: 1,
        o: c,
        h: c,
        l: c,
        c,
        v,
        vwap: Some(c),
        count: 1,
    }
}

#[test]
fn a_seed_catches_up_only_with_every_bar_emitted_after_it() {
    let history = HistoryStats {
        rows: 3,
        first_seq: 1,
        last_seq: 3,
        sum_cv: 60.0,
        sum_v: 6.0,
        ..HistoryStats::empty("ZZT2E-P.0-A")
    };
    let bars: Vec<Microbar> = (1..=3).map(|q| bar("ZZT2E-P.0-A", q, 10.0, 2.0)).collect();
    let seeded = Seeded::from_history(history, HistoryKind::Complete, &bars, Some(10.0));
    assert_eq!(seeded.seed.bars.len(), 3);
    // The run's first bar continues the history: nothing to catch up.
    assert_eq!(seeded.missed_seqs(Some(4)), None);
    assert!(!seeded.state_was_reset(Some(4)));
    // Seq 6 first: seqs 4 and 5 were emitted after seeding.
    assert_eq!(seeded.missed_seqs(Some(6)), Some((3, 6)));
    let mut partial = seeded.clone();
    assert!(!partial.catch_up(6, &[bar("ZZT2E-P.0-A", 4, 11.0, 1.0)]));
    assert_eq!(
        partial.seed.last_seq, 3,
        "unchanged without every missed bar"
    );
    let mut caught = seeded.clone();
    let missed = [
        bar("ZZT2E-P.0-A", 4, 11.0, 1.0),
        bar("ZZT2E-P.0-A", 5, 12.0, 1.0),
    ];
    assert!(caught.catch_up(6, &missed));
    assert_eq!(caught.seed.last_seq, 5);
    assert_eq!(caught.seed.bars.len(), 5);
    assert_eq!(caught.seed.session.volume, 8.0);
    // Seq 1 after a history: the job lost its state.
    assert!(seeded.state_was_reset(Some(1)));
    let mut reset = seeded;
    reset.reset();
    assert_eq!((reset.kind, reset.seed.last_seq), (HistoryKind::Fresh, 0));
}
