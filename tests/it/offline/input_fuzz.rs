//! Property tests with a fixed budget for the three readers of untrusted input: the scenario
//! parser, the config loader and the oracle's JSON-lines reader. Arbitrary bytes, and structured
//! mutations of valid input (the shipped scenarios, the deployed config, forwarder messages):
//! none may panic, each case must finish, and the memory a case allocates stays bounded.
//!
//! The budget is fixed and the runs are deterministic: a fixed case count per property and a
//! fixed seed (`SEED`), no failure persistence. Each property prints the cases it ran, the
//! slowest case and the peak allocation (`--nocapture`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use torghut_e2e::cli::oracle::Replay;
use torghut_e2e::domain::scenario::{self, Limits};

/// Counts live heap bytes and their high-water mark per thread, so a case that allocates without
/// bound fails here instead of taking the machine down. Per thread: a case runs on its test's
/// thread, and the other tests of this binary run beside it on theirs (a block freed on another
/// thread than the one that allocated it only lowers that thread's count).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let size = layout.size() as isize;
            // No destructor, constant initialiser: these never allocate nor go away.
            let live = LIVE.try_with(|l| {
                l.set(l.get() + size);
                l.get()
            });
            if let Ok(live) = live {
                PEAK.try_with(|peak| peak.set(peak.get().max(live))).ok();
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.try_with(|l| l.set(l.get() - layout.size() as isize))
            .ok();
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a measurement on this thread: the live bytes now, from which [`grown`] counts.
fn measure_from_here() -> isize {
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    live
}

/// The high-water mark of this thread's live bytes above `base`, since [`measure_from_here`].
fn grown(base: isize) -> usize {
    (PEAK.with(Cell::get) - base).max(0) as usize
}

const SEED: u64 = 0x7047_6875_7445_3245;
/// Above this many live bytes during a case, memory is not bounded by the input.
const MEMORY_BOUND: usize = 256 * 1024 * 1024;

/// Runs `cases` cases of `strategy` through `check`, deterministically; prints the figures.
fn run_budget<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let ran = AtomicUsize::new(0);
    let slowest = Mutex::new(Duration::ZERO);
    let base = measure_from_here();
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        check(value)?;
        let took = t.elapsed();
        let mut s = slowest.lock().unwrap();
        *s = (*s).max(took);
        let grew = grown(base);
        prop_assert!(grew < MEMORY_BOUND, "a case allocated {grew} bytes");
        Ok(())
    });
    let peak = grown(base);
    eprintln!(
        "{name}: {} cases (budget {cases}, seed {SEED:#x}) in {:?}; slowest case {:?}; peak \
         allocation {:.1} MiB",
        ran.load(Ordering::Relaxed),
        started.elapsed(),
        slowest.lock().unwrap(),
        peak as f64 / (1024.0 * 1024.0)
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert!(
        ran.load(Ordering::Relaxed) >= cases as usize,
        "{name}: not every case ran"
    );
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_scenarios() -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// Values a mutation puts where a number was: the edges of every integer type the parsers use,
/// floats that are not numbers, and things that are not numbers at all.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "999",
    "1000",
    "3600",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e308",
    "-1e308",
    "5e-324",
    "nan",
    "inf",
    "-inf",
    "-0.0",
    "0.5",
    "\"12\"",
    "[]",
    "{}",
    "true",
    "99999999999999999999999999999999999999",
];

/// One edit of a TOML text, by line.
#[derive(Debug, Clone)]
enum Edit {
    /// Replaces the value of the `i`-th `key = value` line.
    Value(usize, &'static str),
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// Cuts the text at this fraction of its length.
    Truncate(f64),
    /// Inserts a line at `i`.
    Insert(usize, &'static str),
}

const INSERTED: &[&str] = &[
    "[[generators]]",
    "[[trades]]",
    "[[quotes]]",
    "[tolerance.columns.ema12]",
    "kind = \"ramp\"",
    "kind = \"gaps\"",
    "start_ms = 18446744073709551615",
    "at_ms = 18446744073709551615",
    "seconds = 3600",
    "per_second = 1000",
    "symbols = []",
    "[kafka]",
    "[clickhouse]",
    "[jangar]",
    "url = \"http://u:p@h:99999\"",
    "bootstrap = \"\"",
    "= =",
    "\"\"\"",
    "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<usize>(), prop::sample::select(EXTREMES)).prop_map(|(i, v)| Edit::Value(i, v)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Duplicate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        1 => (0.0..1.0f64).prop_map(Edit::Truncate),
        2 => (any::<usize>(), prop::sample::select(INSERTED)).prop_map(|(i, l)| Edit::Insert(i, l)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            Edit::Value(i, v) => {
                let assignments: Vec<usize> =
                    (0..n).filter(|&j| lines[j].contains(" = ")).collect();
                if let Some(&j) = assignments.get(i % assignments.len().max(1)) {
                    let key = lines[j].split(" = ").next().unwrap_or_default().to_string();
                    lines[j] = format!("{key} = {v}");
                }
            }
            Edit::Delete(i) => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Edit::Swap(a, b) => lines.swap(a % n, b % n),
            Edit::Truncate(f) => {
                let joined = lines.join("\n");
                let mut cut = (joined.len() as f64 * f) as usize;
                while !joined.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = joined[..cut].lines().map(str::to_string).collect();
            }
            Edit::Insert(i, line) => lines.insert(i % (n + 1), line.to_string()),
        }
    }
    lines.join("\n")
}

/// A parsed scenario keeps its limits; a refused one says where.
fn check_scenario(text: &str) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    match scenario::parse_with(text, Path::new("fuzz.toml"), &limits) {
        Ok(s) => {
            prop_assert!(s.events.len() as u64 <= limits.max_events);
            prop_assert!(s.span_ms() <= limits.max_span.as_millis() as u64);
            // The runner's conversion of every offset to a wall-clock time succeeds.
            let now = time::OffsetDateTime::now_utc();
            prop_assert!(scenario::time_at(now, s.span_ms() + 3_500).is_some());
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.line >= 1 && e.column >= 1, "{e}");
            }
        }
    }
    Ok(())
}

#[test]
fn scenario_parser_survives_arbitrary_bytes() {
    run_budget(
        "scenario/bytes",
        1_500,
        prop::collection::vec(any::<u8>(), 0..2_048),
        |bytes| check_scenario(&String::from_utf8_lossy(&bytes)),
    );
}

#[test]
fn scenario_parser_survives_toml_like_noise() {
    run_budget(
        "scenario/toml-noise",
        1_500,
        "(name = \"x\"\nsymbols = \\[\"A\"\\]\n)?([a-z_]{1,12} = [-0-9a-z.\"\\[\\]{}, ]{0,24}\n|\\[\\[?(generators|trades|quotes|tolerance)\\]\\]?\n){0,24}",
        |text| check_scenario(&text),
    );
}

#[test]
fn scenario_parser_survives_mutated_shipped_scenarios() {
    let shipped = shipped_scenarios();
    let n = shipped.len();
    run_budget(
        "scenario/mutations",
        1_500,
        (0..n, prop::collection::vec(edit(), 1..5)),
        |(which, edits)| check_scenario(&apply(&shipped[which], &edits)),
    );
}

/// The deployed config plus every section, the base the config mutations start from.
fn sample_config() -> String {
    r#"lane = "sim"
allow_production = false
connect_timeout_ms = 5000
artifacts_dir = "/tmp/t2e-fuzz-artifacts"
[kafka]
bootstrap = "kafka-kafka-bootstrap.kafka:9092"
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "SCRAM-SHA-512"
username = "torghut-ws"
password_env = "FUZZ_KAFKA_PASSWORD"
trades_topic = "torghut.sim.trades.v1"
[clickhouse]
url = "http://u:fuzz-secret-1@ch.svc:8123"
database = "torghut_sim_default"
password_env = "FUZZ_CH_PASSWORD"
[webdriver]
url = "http://127.0.0.1:9515"
[jangar]
base_url = "http://j:fuzz-secret-2@jangar.svc:3000"
request_timeout_ms = 10000
retries = 2
max_freshness_secs = 180
"#
    .to_string()
}

/// Environment overrides a mutation may add: valid, broken, and credential-carrying values.
const ENV_VALUES: &[(&str, &str)] = &[
    ("TORGHUT_E2E_CLICKHOUSE_URL", "http://ch:notaport"),
    (
        "TORGHUT_E2E_CLICKHOUSE_URL",
        "http://a:fuzz-secret-3@ch:8123/?password=fuzz-secret-4",
    ),
    ("TORGHUT_E2E_KAFKA_BOOTSTRAP", ""),
    ("TORGHUT_E2E_KAFKA_BOOTSTRAP", "a:1,b:65536"),
    ("TORGHUT_E2E_KAFKA_BOOTSTRAP", "u:fuzz-secret-5@b:9092"),
    ("TORGHUT_E2E_JANGAR_URL", "http://u:fuzz-secret-6@j:3000"),
    ("TORGHUT_E2E_JANGAR_URL", "jangar"),
    ("TORGHUT_E2E_LANE", "prod"),
    ("TORGHUT_E2E_ALLOW_PRODUCTION", "maybe"),
    ("TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL", "SSL"),
    ("TORGHUT_E2E_KAFKA_CA_FILE", "/nonexistent/ca.pem"),
    ("TORGHUT_E2E_KAFKA_PASSWORD_FILE", "/nonexistent/pw"),
    ("TORGHUT_E2E_WEBDRIVER_URL", "http://u:fuzz-secret-7@wd:1"),
    ("TORGHUT_E2E_ARTIFACTS_DIR", ""),
];

const FUZZ_SECRETS: &[&str] = &[
    "fuzz-secret-1",
    "fuzz-secret-2",
    "fuzz-secret-3",
    "fuzz-secret-4",
    "fuzz-secret-5",
    "fuzz-secret-6",
    "fuzz-secret-7",
    "fuzz-kafka-pw",
];

fn check_config(text: &str, overrides: &[(&str, &str)]) -> Result<(), TestCaseError> {
    let mut env: HashMap<String, String> = HashMap::from([(
        "FUZZ_KAFKA_PASSWORD".to_string(),
        "fuzz-kafka-pw".to_string(),
    )]);
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let result = torghut_e2e::config::Config::from_toml(text, Path::new("fuzz.toml"), &env);
    let shown = match &result {
        Ok(c) => {
            prop_assert!(!c.clickhouse.url.contains('@'), "{}", c.clickhouse.url);
            prop_assert!(c
                .jangar
                .base_url
                .as_deref()
                .is_none_or(|u| !u.contains('@')));
            prop_assert!(!c.connect_timeout.is_zero());
            prop_assert!(!c.jangar.request_timeout.is_zero());
            format!("{c:?}")
        }
        Err(e) => e.to_string(),
    };
    for secret in FUZZ_SECRETS {
        prop_assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    Ok(())
}

#[test]
fn config_loader_survives_arbitrary_bytes() {
    run_budget(
        "config/bytes",
        1_500,
        prop::collection::vec(any::<u8>(), 0..2_048),
        |bytes| check_config(&String::from_utf8_lossy(&bytes), &[]),
    );
}

#[test]
fn config_loader_survives_mutations_and_overrides() {
    let base = sample_config();
    run_budget(
        "config/mutations",
        1_500,
        (
            prop::collection::vec(edit(), 0..5),
            prop::collection::vec(prop::sample::select(ENV_VALUES), 0..4),
        ),
        |(edits, overrides)| check_config(&apply(&base, &edits), &overrides),
    );
}

/// Valid forwarder messages: the base the JSON-lines mutations start from.
fn messages() -> Vec<String> {
    let t0 = time::macros::datetime!(2026-07-21 14:30:00 UTC);
    let mut out = Vec::new();
    for i in 0..12i64 {
        let at = t0 + time::Duration::milliseconds(i * 400);
        out.push(torghut_e2e::domain::envelope::trade_message(
            "ZZT2E-FUZZ-A",
            at,
            100.0 + i as f64 * 0.01,
            10.0,
            i + 1,
            at,
        ));
        if i % 4 == 0 {
            out.push(torghut_e2e::domain::envelope::quote_message(
                "ZZT2E-FUZZ-A",
                at,
                99.9,
                5.0,
                100.1,
                6.0,
                i + 1,
                at,
            ));
        }
    }
    out
}

/// One edit of a JSON line: a byte changed, the line cut, a number replaced, deep nesting.
#[derive(Debug, Clone)]
enum LineEdit {
    Byte(usize, u8),
    Cut(usize),
    Number(usize, &'static str),
    Nest(usize),
    Keep,
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| LineEdit::Byte(i, b)),
        1 => any::<usize>().prop_map(LineEdit::Cut),
        4 => (any::<usize>(), prop::sample::select(EXTREMES)).prop_map(|(i, v)| LineEdit::Number(i, v)),
        1 => (1usize..5_000).prop_map(LineEdit::Nest),
        3 => Just(LineEdit::Keep),
    ]
}

fn edit_line(line: &str, e: &LineEdit) -> Vec<u8> {
    let mut bytes = line.as_bytes().to_vec();
    match e {
        LineEdit::Byte(i, b) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[i % n] = *b;
        }
        LineEdit::Cut(i) => bytes.truncate(i % (bytes.len() + 1)),
        LineEdit::Number(i, v) => {
            // The i-th run of digits becomes `v`.
            let text = line.to_string();
            let runs: Vec<(usize, usize)> = text
                .char_indices()
                .filter(|(j, c)| {
                    c.is_ascii_digit() && (*j == 0 || !text.as_bytes()[j - 1].is_ascii_digit())
                })
                .map(|(j, _)| {
                    let end = text[j..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(text.len(), |k| j + k);
                    (j, end)
                })
                .collect();
            if let Some(&(a, b)) = runs.get(i % runs.len().max(1)) {
                bytes = format!("{}{v}{}", &text[..a], &text[b..]).into_bytes();
            }
        }
        LineEdit::Nest(depth) => {
            bytes = format!("{}{}", "[".repeat(*depth), "]".repeat(*depth)).into_bytes();
        }
        _ => {}
    }
    bytes
}

fn check_oracle(input: &[u8], strict: bool) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let mut warnings = 0usize;
    let result = torghut_e2e::cli::oracle::process_with(
        std::io::Cursor::new(input),
        Path::new("fuzz.jsonl"),
        Replay {
            flush_open: true,
            strict,
            ..Replay::default()
        },
        &mut out,
        &mut |_| warnings += 1,
    );
    if let Ok(summary) = result {
        prop_assert!(summary.skipped <= summary.lines);
        prop_assert_eq!(summary.skipped, warnings, "one warning per skipped line");
    }
    // Whatever was printed is one JSON object per line.
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| TestCaseError::fail(format!("output not JSON: {e}")))?;
        prop_assert!(v.get("table").is_some());
    }
    Ok(())
}

#[test]
fn oracle_reader_survives_arbitrary_bytes() {
    run_budget(
        "oracle/bytes",
        1_500,
        (prop::collection::vec(any::<u8>(), 0..4_096), any::<bool>()),
        |(bytes, strict)| check_oracle(&bytes, strict),
    );
}

#[test]
fn oracle_reader_survives_mutated_messages() {
    let base = messages();
    let n = base.len();
    run_budget(
        "oracle/mutations",
        1_000,
        (
            prop::collection::vec((0..n, line_edit()), 1..40),
            any::<bool>(),
        ),
        |(picks, strict)| {
            let mut input = Vec::new();
            for (i, e) in picks {
                input.extend(edit_line(&base[i], &e));
                input.push(b'\n');
            }
            check_oracle(&input, strict)
        },
    );
}

/// A line of many megabytes without a newline is skipped without being held in memory.
#[test]
fn oracle_reader_does_not_hold_an_endless_line() {
    let line = vec![b'x'; 64 * 1024 * 1024];
    let ok = messages().join("\n");
    let mut input = ok.as_bytes().to_vec();
    input.push(b'\n');
    input.extend(&line);
    input.push(b'\n');
    input.extend(ok.as_bytes());
    let base = measure_from_here();
    let mut out = Vec::new();
    let summary = torghut_e2e::cli::oracle::process_with(
        std::io::BufReader::new(std::io::Cursor::new(&input)),
        Path::new("long.jsonl"),
        Replay::default(),
        &mut out,
        &mut |w| assert!(w.contains("line longer than"), "{w}"),
    )
    .unwrap();
    let grew = grown(base);
    assert_eq!(summary.skipped, 1, "{summary:?}");
    assert!(
        !out.is_empty(),
        "the messages around the long line were read"
    );
    assert!(
        grew < 8 * 1024 * 1024,
        "the reader held {grew} bytes for a 64 MiB line"
    );
}
