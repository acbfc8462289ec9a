use super::*;

fn lint(text: &str) -> Result<Scenario, Vec<LintError>> {
    parse(text, Path::new("s.toml"))
}

const MINIMAL: &str = r#"
name = "t"
symbols = ["A"]
[[trades]]
symbol = "A"
at_ms = 100
price = 100.0
size = 10.0
"#;

#[test]
fn minimal_scenario_has_defaults() {
    let s = lint(MINIMAL).unwrap();
    assert_eq!(s.stages, vec![Stage::Clickhouse]);
    assert_eq!(s.tables, vec![Table::Microbars, Table::Signals]);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.deadline, std::time::Duration::from_secs(60));
    assert!(s.ignores(Table::Signals, "ingest_ts"));
}

#[test]
fn syntax_errors_point_at_line_and_column() {
    let errs = lint("name = \"t\"\nsymbols = [\"A\"\n").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
    assert!(errs[0].to_string().starts_with("s.toml:2:"), "{}", errs[0]);
}

#[test]
fn unknown_generator_kind_and_field_are_located() {
    let text = format!("{MINIMAL}\n[[generators]]\nkind = \"rampp\"\nsymbol = \"A\"\n");
    let errs = lint(&text).unwrap_err();
    assert!(errs[0].message.contains("rampp"), "{}", errs[0]);
    assert_eq!(errs[0].line, 11, "{}", errs[0]);
    let errs = lint(&MINIMAL.replace("size = 10.0", "size = 10.0\nsise = 1")).unwrap_err();
    assert!(errs[0].message.contains("sise"), "{}", errs[0]);
}

#[test]
fn semantic_errors_are_all_reported_with_places() {
    let text = r#"name = "t"
symbols = ["A", "bad-alias"]
[[trades]]
symbol = "B"
at_ms = 5
price = -1.0
size = 1.0
[[generators]]
kind = "ramp"
symbol = "A"
seconds = 0
per_second = 1
price = 1.0
step = 0.1
size = 1.0
"#;
    let errs = lint(text).unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.starts_with("s.toml:2:17: symbol alias \"bad-alias\"")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("s.toml:4:10: symbol \"B\" is not declared")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|e| e.contains("price must be positive")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.contains("seconds must be between 1 and 3600")),
        "{text:?}"
    );
}

#[test]
fn explicit_trades_must_not_go_back_in_time_per_symbol() {
    let text =
        format!("{MINIMAL}[[trades]]\nsymbol = \"A\"\nat_ms = 99\nprice = 1.0\nsize = 1.0\n");
    let errs = lint(&text).unwrap_err();
    assert!(
        errs[0].message.contains("non-decreasing at_ms"),
        "{}",
        errs[0]
    );
}

#[test]
fn several_trades_in_one_millisecond_are_published_in_file_order() {
    let mut text = MINIMAL.to_string();
    for price in [101.0, 99.5, 100.25] {
        text.push_str(&format!(
            "[[trades]]\nsymbol = \"A\"\nat_ms = 100\nprice = {price}\nsize = 1.0\n"
        ));
    }
    let s = lint(&text).expect("same-millisecond trades are valid");
    let prices: Vec<(u64, f64)> = s
        .events
        .iter()
        .map(|e| match e {
            Event::Trade(t) => (t.at_ms, t.price),
            _ => panic!("trades only"),
        })
        .collect();
    assert_eq!(
        prices,
        vec![(100, 100.0), (100, 101.0), (100, 99.5), (100, 100.25)]
    );
}

#[test]
fn a_sweep_prints_several_prices_in_one_millisecond() {
    let text = with_generator(
        "sweep",
        "at_ms = 1500\ncount = 4\nprice = 10.0\nstep = -0.01\nsize = 2.0",
    );
    let s = lint(&text).expect("valid");
    let trades: Vec<(u64, f64)> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) if t.at_ms == 1500 => Some((t.at_ms, t.price)),
            _ => None,
        })
        .collect();
    assert_eq!(
        trades,
        vec![(1500, 10.0), (1500, 9.99), (1500, 9.98), (1500, 9.97)]
    );
    let one = with_generator(
        "sweep",
        "at_ms = 1500\ncount = 1\nprice = 10.0\nstep = 0.01\nsize = 2.0",
    );
    assert!(lint(&one).is_err(), "a sweep is at least two trades");
}

#[test]
fn generators_expand_in_publish_order() {
    let text = r#"name = "g"
symbols = ["A"]
[[generators]]
kind = "ramp"
symbol = "A"
seconds = 3
per_second = 2
price = 100.0
step = 0.5
size = 1.0
[[generators]]
kind = "out_of_order"
symbol = "A"
at_ms = 2600
late_by_ms = 1500
price = 99.0
size = 2.0
"#;
    let s = lint(text).unwrap();
    let trades: Vec<(u64, f64)> = s
        .events
        .iter()
        .map(|e| match e {
            Event::Trade(t) => (t.at_ms, t.price),
            _ => unreachable!(),
        })
        .collect();
    // Ramp: 2 per second at +50 and +500 ms; the late trade is published after the 2,500 ms
    // trade but stamped 1,100 ms.
    assert_eq!(
        trades,
        vec![
            (50, 100.0),
            (500, 100.5),
            (1050, 101.0),
            (1500, 101.5),
            (2050, 102.0),
            (2500, 102.5),
            (1100, 99.0)
        ]
    );
    assert_eq!(s.span_ms(), 2500);
}

#[test]
fn random_walk_is_deterministic_and_priced_in_cents() {
    let text = r#"name = "w"
symbols = ["A"]
[[generators]]
kind = "random_walk"
symbol = "A"
seconds = 20
per_second = 3
price = 150.0
volatility = 0.001
max_size = 500
seed = 42
"#;
    let a = lint(text).unwrap().events;
    let b = lint(text).unwrap().events;
    assert_eq!(a, b);
    assert_eq!(a.len(), 60);
    for e in &a {
        let Event::Trade(t) = e else { unreachable!() };
        assert!((t.price * 100.0 - (t.price * 100.0).round()).abs() < 1e-6);
        assert!((1.0..=500.0).contains(&t.size));
    }
}

/// The seeded stream is part of every shipped scenario's data: pinned across processes and
/// releases, so a change of the generator or of rand_pcg's stream fails here instead of
/// silently publishing other trades than the ones reviewed.
#[test]
fn random_walk_stream_is_pinned() {
    let text = r#"name = "w"
symbols = ["A"]
[[generators]]
kind = "random_walk"
symbol = "A"
seconds = 2
per_second = 3
price = 150.0
volatility = 0.001
max_size = 500
seed = 42
"#;
    let first: Vec<(u64, f64, f64)> = lint(text)
        .unwrap()
        .events
        .iter()
        .map(|e| {
            let Event::Trade(t) = e else { unreachable!() };
            (t.at_ms, t.price, t.size)
        })
        .collect();
    assert_eq!(first, PINNED);
}

/// (offset ms, price, size) of the first six trades of seed 42, as generated by rand_pcg 0.10's
/// `Pcg64::seed_from_u64` stream.
const PINNED: [(u64, f64, f64); 6] = [
    (50, 149.92, 134.0),
    (350, 150.0, 29.0),
    (650, 150.14, 443.0),
    (1050, 150.05, 53.0),
    (1350, 150.14, 256.0),
    (1650, 150.06, 5.0),
];

#[test]
fn tolerance_accepts_relative_or_absolute() {
    let t = Tolerance {
        rel: 1e-9,
        abs: 1e-12,
    };
    assert!(t.accepts(100.0, 100.0 + 1e-8));
    assert!(!t.accepts(100.0, 100.0 + 1e-6));
    assert!(t.accepts(0.0, 1e-13));
    assert!(!t.accepts(0.0, 1e-10));
}

/// A scenario with one generator of `kind` and these extra lines.
fn with_generator(kind: &str, lines: &str) -> String {
    format!("name = \"g\"\nsymbols = [\"A\"]\n[[generators]]\nkind = \"{kind}\"\nsymbol = \"A\"\n{lines}")
}

const NEAR_MAX: u64 = u64::MAX - 5;

#[test]
fn offsets_near_u64_max_are_lint_errors_not_overflows() {
    let cases = [
        ("ramp", format!("start_ms = {NEAR_MAX}\nseconds = 2\nper_second = 2\nprice = 1.0\nstep = 0.1\nsize = 1.0")),
        ("random_walk", format!("start_ms = {NEAR_MAX}\nseconds = 2\nper_second = 2\nprice = 1.0\nvolatility = 0.01\nmax_size = 5\nseed = 1")),
        ("gaps", format!("start_ms = {NEAR_MAX}\ntrades = 3\nevery_secs = 2\nprice = 1.0\nsize = 1.0")),
        ("burst", format!("at_ms = {}\ncount = 10\nprice = 1.0\nsize = 1.0", u64::MAX)),
        ("boundaries", format!("start_ms = {NEAR_MAX}\nseconds = 2\nprice = 1.0\nsize = 1.0")),
        ("out_of_order", format!("at_ms = {}\nlate_by_ms = 1\nprice = 1.0\nsize = 1.0", u64::MAX)),
        ("duplicates", format!("at_ms = {}\ncopies = 2\nprice = 1.0\nsize = 1.0", u64::MAX)),
        ("zero_size", format!("at_ms = {}\nprice = 1.0", u64::MAX)),
    ];
    for (kind, lines) in cases {
        let errs = lint(&with_generator(kind, &lines)).expect_err(kind);
        assert_eq!(
            (errs[0].line, errs[0].column),
            (3, 1),
            "{kind}: {}",
            errs[0]
        );
        assert!(
            errs[0].message.contains("overflow") || errs[0].message.contains("span limit"),
            "{kind}: {}",
            errs[0]
        );
    }
}

#[test]
fn an_explicit_offset_beyond_the_span_is_located_at_its_value() {
    let text = MINIMAL.replace("at_ms = 100", "at_ms = 18446744073709551615");
    let errs = lint(&text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (6, 9), "{}", errs[0]);
    assert!(
        errs[0].message.contains("span limit of 3600000 ms"),
        "{}",
        errs[0]
    );
    // Ten days of event time (the issue's example): refused under the default hour ...
    let ten_days = MINIMAL.replace("at_ms = 100", "at_ms = 864000000000");
    assert!(lint(&ten_days).is_err());
    // ... and accepted when the limit is raised that far.
    let week = Limits::new(MAX_SPAN_CEILING, DEFAULT_MAX_EVENTS).unwrap();
    let six_days = MINIMAL.replace("at_ms = 100", "at_ms = 518400000");
    assert!(lint(&six_days).is_err());
    assert!(parse_with(&six_days, Path::new("s.toml"), &week).is_ok());
}

#[test]
fn a_generator_spanning_months_is_refused() {
    // 3,600 trades every 3,600 s: 150 days.
    let text = with_generator(
        "gaps",
        "trades = 3600\nevery_secs = 3600\nprice = 1.0\nsize = 1.0",
    );
    let errs = lint(&text).unwrap_err();
    assert!(
        errs[0].message.contains("beyond the scenario span limit"),
        "{}",
        errs[0]
    );
}

#[test]
fn a_billion_generated_trades_is_refused_before_any_is_generated() {
    // 278 ramps of 3.6 M trades: 1.0e9 trades, each ramp within the per-generator bounds.
    let ramp =
        "[[generators]]\nkind = \"ramp\"\nsymbol = \"A\"\nseconds = 3600\nper_second = 1000\n\
                price = 1.0\nstep = 0.0\nsize = 1.0\n";
    let text = format!("name = \"big\"\nsymbols = [\"A\"]\n{}", ramp.repeat(278));
    let errs = lint(&text).unwrap_err();
    let count = errs
        .iter()
        .find(|e| e.message.contains("event limit"))
        .expect("count error");
    assert!(count.message.contains("1000800000 events"), "{count}");
    // Pointed at the first ramp: it alone crosses the default million.
    assert_eq!((count.line, count.column), (3, 1), "{count}");
}

#[test]
fn the_event_limit_is_exact_and_settable() {
    let text = with_generator(
        "ramp",
        "seconds = 10\nper_second = 10\nprice = 1.0\nstep = 0.0\nsize = 1.0",
    );
    let at = |n| {
        parse_with(
            &text,
            Path::new("s.toml"),
            &Limits::new(DEFAULT_MAX_SPAN, n).unwrap(),
        )
    };
    assert_eq!(at(100).unwrap().events.len(), 100);
    let errs = at(99).unwrap_err();
    assert!(errs[0].message.contains("100 events"), "{}", errs[0]);
    assert!(Limits::new(DEFAULT_MAX_SPAN, 0).is_err());
    assert!(Limits::new(DEFAULT_MAX_SPAN, MAX_EVENTS_CEILING + 1).is_err());
    assert!(Limits::new(MAX_SPAN_CEILING + std::time::Duration::from_secs(1), 1).is_err());
}

#[test]
fn extents_are_what_expansion_produces() {
    // The shipped scenarios, at the workspace root.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: RawScenario = toml::from_str(&text).unwrap();
        for g in &raw.generators {
            let extent = g.get_ref().extent().unwrap();
            let trades = g.get_ref().trades();
            assert_eq!(extent.count, trades.len() as u64, "{}", path.display());
            let latest = trades.iter().map(|(t, _)| t.at_ms).max().unwrap();
            let published = g.get_ref().publish_at().unwrap_or(latest);
            assert_eq!(extent.last_ms, latest.max(published), "{}", path.display());
        }
    }
}

#[test]
fn prices_sizes_and_tolerances_must_be_sane() {
    let ramp_down = with_generator(
        "ramp",
        "seconds = 10\nper_second = 10\nprice = 1.0\nstep = -0.5\nsize = 1.0",
    );
    assert!(lint(&ramp_down).unwrap_err()[0]
        .message
        .contains("stay positive"));
    let huge = MINIMAL.replace("price = 100.0", "price = 1e300");
    assert!(lint(&huge).unwrap_err()[0]
        .message
        .contains("price must be positive"));
    let nan_tolerance = format!("{MINIMAL}[tolerance.columns.ema12]\nrel = nan\n");
    assert!(lint(&nan_tolerance).unwrap_err()[0]
        .message
        .contains("finite"));
}

#[test]
fn offsets_map_onto_wall_clock_times_only_when_they_fit() {
    let base = time::macros::datetime!(2026-07-21 14:30:00 UTC);
    assert_eq!(
        time_at(base, 1_500),
        Some(time::macros::datetime!(2026-07-21 14:30:01.5 UTC))
    );
    assert_eq!(time_at(base, u64::MAX), None);
    assert_eq!(time_at(base, i64::MAX as u64), None);
}

const BARS: &str = r#"
name = "m"
symbols = ["A"]
[[bars]]
symbol = "A"
minute = 0
open = 10.0
high = 11.0
low = 9.0
close = 10.5
volume = 100.0
count = 4
vwap = 10.2
[[bars]]
symbol = "A"
minute = 0
at_ms = 61000
open = 10.0
high = 11.0
low = 9.0
close = 10.75
volume = 120.0
updated = true
"#;

#[test]
fn minute_bars_default_to_the_end_of_their_minute_and_corrections_follow() {
    let s = lint(BARS).unwrap();
    let bars: Vec<&BarEvent> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Bar(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(bars.len(), 2);
    assert_eq!((bars[0].minute, bars[0].at_ms), (0, 60_000));
    assert_eq!((bars[0].bar.count, bars[0].bar.vwap), (4, Some(10.2)));
    assert!(!bars[0].bar.updated);
    assert_eq!((bars[1].at_ms, bars[1].bar.updated), (61_000, true));
    assert_eq!((bars[1].bar.count, bars[1].bar.vwap), (0, None));
    assert_eq!(s.span_ms(), 61_000);
}

#[test]
fn minute_bars_are_checked_with_places() {
    let broken = |from: &str, to: &str| {
        let errs = lint(&BARS.replacen(from, to, 1)).unwrap_err();
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(broken("low = 9.0", "low = 10.6").contains("must enclose"));
    assert!(broken("high = 11.0", "high = 10.1").contains("must enclose"));
    assert!(broken("volume = 100.0", "volume = -1.0").contains("volume"));
    assert!(broken("close = 10.5", "close = inf").contains("positive and finite"));
    assert!(broken("vwap = 10.2", "vwap = 0.0").contains("positive and finite"));
    assert!(broken(
        "symbol = \"A\"\nminute = 0\nopen",
        "symbol = \"B\"\nminute = 0\nopen"
    )
    .contains("not declared"));
    // Published as its minute starts: allowed; a moment before: its time would be ahead.
    let on_time = BARS.replacen("minute = 0\nopen", "minute = 0\nat_ms = 0\nopen", 1);
    assert!(lint(&on_time).is_ok());
    let future = broken("minute = 0\nopen", "minute = 1\nat_ms = 59999\nopen");
    assert!(future.contains("before its minute starts"), "{future}");
    let lone = broken("minute = 0\nat_ms = 61000", "minute = 2\nat_ms = 180000");
    assert!(lone.contains("corrects no earlier bar"), "{lone}");
    assert!(
        broken("minute = 0\nopen", "minute = 18446744073709551615\nopen").contains("overflows")
    );
    let far = broken("minute = 0\nopen", "minute = 100000\nopen");
    assert!(far.contains("span limit"), "{far}");
    let unknown = broken("updated = true", "updated = true\nfinal = false");
    assert!(unknown.contains("final"), "{unknown}");
}

#[test]
fn a_scenario_of_bars_alone_is_valid_and_one_of_nothing_is_not() {
    assert!(lint(BARS).is_ok());
    let errs = lint("name = \"t\"\nsymbols = [\"A\"]\n").unwrap_err();
    assert!(
        errs[0].message.contains("no trades and no 1-minute bars"),
        "{}",
        errs[0]
    );
}

#[test]
fn a_minute_index_maps_onto_whole_minutes() {
    let base = time::macros::datetime!(2026-07-21 14:30:17.250 UTC);
    assert_eq!(
        minute_start(base, 2),
        Some(time::macros::datetime!(2026-07-21 14:32:00 UTC))
    );
    assert_eq!(minute_start(base, u64::MAX), None);
}
