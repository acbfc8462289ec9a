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
fn explicit_trades_must_increase_per_symbol() {
    let text =
        format!("{MINIMAL}[[trades]]\nsymbol = \"A\"\nat_ms = 100\nprice = 1.0\nsize = 1.0\n");
    let errs = lint(&text).unwrap_err();
    assert!(errs[0].message.contains("increasing at_ms"), "{}", errs[0]);
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
            Event::Quote(_) => unreachable!(),
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
