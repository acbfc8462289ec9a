use super::*;

fn bar(end_s: i64, close: f64, volume: f64) -> ListBar {
    ListBar {
        end_ms: end_s * 1000,
        close,
        volume,
    }
}

#[test]
fn the_list_drops_its_oldest_bar_before_inserting_a_late_one() {
    let mut h = History::new(3, 300_000);
    for s in [10, 11, 12] {
        h.add(bar(s, s as f64, 1.0));
    }
    // Full: a bar older than everything drops 10 first, then becomes the front.
    assert_eq!(h.add(bar(1, 1.0, 1.0)), Change::Rebuilt);
    assert_eq!(h.list_ends(), vec![1000, 11_000, 12_000]);
    // The next in-order bar drops that late bar again: the seed slides from 1 to 11.
    let change = h.add(bar(13, 13.0, 1.0));
    let Change::Appended { slide: Some(slide) } = change else {
        panic!("{change:?}")
    };
    assert_eq!(
        (slide.old_seed, slide.new_seed, slide.latest_index),
        (1.0, 11.0, 2)
    );
    assert_eq!(
        h.closes().iter().copied().collect::<Vec<_>>(),
        vec![11.0, 12.0, 13.0]
    );
}

#[test]
fn duplicates_replace_in_the_series_and_count_twice_in_the_window() {
    let mut h = History::new(10, 300_000);
    h.add(bar(1, 10.0, 1.0));
    h.add(bar(2, 20.0, 1.0));
    assert_eq!(h.add(bar(2, 30.0, 2.0)), Change::Rebuilt);
    assert_eq!(
        h.closes().iter().copied().collect::<Vec<_>>(),
        vec![10.0, 30.0]
    );
    // (10·1 + 20·1 + 30·2) / 4
    assert_eq!(h.window_vwap(), Some(22.5));
    // Dropping the first copy of a duplicated time does not move the series.
    let mut h = History::new(2, 300_000);
    h.add(bar(1, 10.0, 1.0));
    h.add(bar(1, 11.0, 1.0));
    assert_eq!(h.add(bar(2, 12.0, 1.0)), Change::Appended { slide: None });
    assert_eq!(
        h.closes().iter().copied().collect::<Vec<_>>(),
        vec![11.0, 12.0]
    );
}

#[test]
fn the_window_excludes_the_bar_ending_exactly_at_the_cutoff() {
    let mut h = History::new(360, 300_000);
    h.add(bar(0, 100.0, 1.0));
    h.add(bar(1, 200.0, 1.0));
    assert_eq!(h.window_vwap(), Some(150.0));
    h.add(bar(300, 400.0, 2.0)); // cutoff = 0 s: bar 0 is out, bar 1 in
    assert_eq!(h.window_vwap(), Some((200.0 + 800.0) / 3.0));
    h.add(bar(700, 5.0, 0.0)); // alone in its window with zero volume
    assert_eq!(h.window_vwap(), None);
}

#[test]
fn negative_volumes_fall_back_to_the_direct_sum() {
    let mut h = History::new(360, 300_000);
    h.add(bar(1, 10.0, 2.0));
    h.add(bar(2, 10.0, -2.0));
    assert_eq!(h.window_vwap(), None, "Σ v = 0 exactly");
    h.add(bar(400, 10.0, 3.0));
    assert_eq!(h.window_vwap(), Some(10.0));
}

#[test]
fn rolling_sums_stay_exact_over_many_bars() {
    let mut h = History::new(360, 300_000);
    let mut s = 0;
    for i in 0..20_000i64 {
        s += 1 + i % 3;
        let volume = if i % 7 == 0 {
            0.001
        } else {
            1e6 + (i % 1000) as f64 * 0.37
        };
        h.add(bar(s, 100.0 + (i % 17) as f64 * 0.01, volume));
    }
    let direct = {
        let cutoff = h.list.back().map(|b| b.end_ms - 300_000).unwrap_or(0);
        let (pv, v) = h
            .list
            .iter()
            .filter(|b| b.end_ms > cutoff)
            .fold((0.0, 0.0), |(pv, v), b| {
                (pv + b.close * b.volume, v + b.volume)
            });
        pv / v
    };
    let rolling = h.window_vwap().expect("volume");
    assert!(
        (rolling - direct).abs() <= 1e-12 * direct,
        "{rolling} vs {direct}"
    );
}

#[test]
fn realized_vol_uses_at_most_the_last_60_returns() {
    let mut h = History::new(360, 300_000);
    assert_eq!(h.realized_vol(60), None);
    h.add(bar(1, 100.0, 1.0));
    assert_eq!(h.realized_vol(60), None);
    h.add(bar(2, 101.0, 1.0));
    assert_eq!(h.realized_vol(60), Some(0.0));
    for s in 3..100 {
        h.add(bar(s, if s % 2 == 0 { 101.0 } else { 100.0 }, 1.0));
    }
    // Alternating ±ln(1.01): mean 0 over an even count, deviation ln(1.01).
    let vol = h.realized_vol(60).expect("enough points");
    assert!((vol - (101.0f64 / 100.0).ln()).abs() < 1e-15, "{vol}");
}
