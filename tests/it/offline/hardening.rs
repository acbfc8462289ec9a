//! Hostile input at the command line, without the stack: every target points at a closed port,
//! so a verb that got as far as a probe would exit 3 ("unreachable"). Each test shows that the
//! input is refused before that (exit 2, naming the file, key or flag), or that the verb ends
//! with its own exit code however its output is cut short: no panic (exit 101), no abort (134).

use crate::common;
use crate::common::shown;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    // Whatever stack the caller's environment points at, these tests use closed ports.
    for (k, _) in std::env::vars() {
        if k.starts_with("TORGHUT_E2E_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.envs([
        ("TORGHUT_E2E_KAFKA_BOOTSTRAP", "127.0.0.1:1"),
        ("TORGHUT_E2E_KAFKA_PASSWORD", "closed-port-pw"),
        ("TORGHUT_E2E_CLICKHOUSE_URL", "http://127.0.0.1:1"),
        ("TORGHUT_E2E_WEBDRIVER_URL", "http://127.0.0.1:1"),
    ]);
    cmd
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(common::unique("t2e-hard"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config whose probes give up quickly, and the artifacts in `dir`.
fn quick_config(dir: &Path) -> PathBuf {
    let path = dir.join("quick.toml");
    std::fs::write(
        &path,
        format!(
            "connect_timeout_ms = 300\nartifacts_dir = {:?}\n",
            dir.join("artifacts").display().to_string()
        ),
    )
    .unwrap();
    path
}

const SHORT: &str = r#"name = "short"
symbols = ["A"]
pacing = "compressed"
[[generators]]
kind = "ramp"
symbol = "A"
seconds = 2
per_second = 2
price = 10.0
step = 0.01
size = 1.0
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 with `needle` on stderr, and no probe ran (nothing reached a target).
fn refused_before_preflight(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", shown(out));
    assert!(
        stderr(out).contains(needle),
        "{needle:?} missing: {}",
        shown(out)
    );
    let all = shown(out);
    assert!(!all.contains("preflight"), "a probe ran: {all}");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn lint_rejects_overflowing_offsets_with_their_place() {
    let dir = scratch();
    let explicit = write(
        &dir,
        "max.toml",
        "name = \"m\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"A\"\nat_ms = 18446744073709551615\nprice = 1.0\nsize = 1.0\n",
    );
    let ramp = write(
        &dir,
        "ramp.toml",
        "name = \"r\"\nsymbols = [\"A\"]\n[[generators]]\nkind = \"ramp\"\nsymbol = \"A\"\n\
         start_ms = 18446744073709551000\nseconds = 3\nper_second = 2\nprice = 1.0\nstep = 0.1\nsize = 1.0\n",
    );
    let out = bin()
        .arg("lint")
        .arg(&explicit)
        .arg(&ramp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:5:9: at_ms 18446744073709551615 ms is beyond",
            explicit.display()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{}:3:1: ", ramp.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn run_refuses_an_overflowing_offset_before_any_probe() {
    let dir = scratch();
    let s = write(
        &dir,
        "max.toml",
        "name = \"m\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"A\"\nat_ms = 18446744073709551615\nprice = 1.0\nsize = 1.0\n",
    );
    let out = bin()
        .arg("run")
        .arg(&s)
        .arg("--config")
        .arg(quick_config(&dir))
        .output()
        .unwrap();
    refused_before_preflight(&out, "max.toml:5:9:");
    std::fs::remove_dir_all(dir).ok();
}

/// Runs `cmd` to completion: its output and its own peak resident memory in KiB, from `wait4`'s
/// resource usage of that one child (tests of this binary run side by side, and
/// `RUSAGE_CHILDREN` would count their children too).
// The child is reaped by `wait4` below, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn output_and_max_rss_kib(cmd: &mut Command) -> (Output, i64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let out = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (out, usage.ru_maxrss)
}

#[test]
fn a_billion_generated_trades_and_a_ten_day_span_exit_2_at_once() {
    let dir = scratch();
    let ramp =
        "[[generators]]\nkind = \"ramp\"\nsymbol = \"A\"\nseconds = 3600\nper_second = 1000\n\
                price = 1.0\nstep = 0.0\nsize = 1.0\n";
    let big = write(
        &dir,
        "big.toml",
        &format!("name = \"big\"\nsymbols = [\"A\"]\n{}", ramp.repeat(278)),
    );
    let started = Instant::now();
    let (out, rss) = output_and_max_rss_kib(bin().arg("lint").arg(&big));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains("would publish 1000800000 events"),
        "{}",
        shown(&out)
    );
    eprintln!("1.0e9 generated trades: exit 2 in {took:?}, peak RSS {rss} KiB");
    // Generating them would take tens of GiB: the refusal came from arithmetic alone.
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB");

    let ten_days = write(
        &dir,
        "ten-days.toml",
        "name = \"t\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"A\"\nat_ms = 864000000000\nprice = 1.0\nsize = 1.0\n",
    );
    let gaps = write(
        &dir,
        "gaps.toml",
        "name = \"g\"\nsymbols = [\"A\"]\n[[generators]]\nkind = \"gaps\"\nsymbol = \"A\"\ntrades = 3600\n\
         every_secs = 3600\nprice = 1.0\nsize = 1.0\n",
    );
    let out = bin()
        .arg("run")
        .args([&ten_days, &gaps])
        .arg("--config")
        .arg(quick_config(&dir))
        .output()
        .unwrap();
    refused_before_preflight(&out, "ten-days.toml:5:9: at_ms 864000000000 ms is beyond");
    assert!(stderr(&out).contains("gaps.toml:3:1:"), "{}", shown(&out));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_limits_are_settable_within_their_ceilings() {
    let dir = scratch();
    let s = write(&dir, "s.toml", SHORT);
    let out = bin()
        .args(["lint", "--max-events", "3"])
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(stderr(&out).contains("would publish 4 events, over the event limit of 3"));
    let out = bin()
        .args(["lint", "--max-events", "4"])
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = bin()
        .args(["lint", "--max-span", "1s"])
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let out = bin()
        .arg("lint")
        .arg(&s)
        .env("TORGHUT_E2E_MAX_SPAN", "8d")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(stderr(&out).contains("--max-span"), "{}", shown(&out));
    std::fs::remove_dir_all(dir).ok();
}

/// Config file text, environment, and the key the error must name.
type ConfigCase = (String, Vec<(&'static str, &'static str)>, &'static str);

#[test]
fn config_errors_exit_2_at_once_naming_the_key() {
    let dir = scratch();
    let cases: Vec<ConfigCase> = vec![
        (
            String::new(),
            vec![("TORGHUT_E2E_KAFKA_BOOTSTRAP", "127.0.0.1:notaport")],
            "TORGHUT_E2E_KAFKA_BOOTSTRAP",
        ),
        (
            String::new(),
            vec![("TORGHUT_E2E_KAFKA_BOOTSTRAP", "127.0.0.1:70000")],
            "TORGHUT_E2E_KAFKA_BOOTSTRAP",
        ),
        (
            String::new(),
            vec![("TORGHUT_E2E_CLICKHOUSE_URL", "http://127.0.0.1:99999")],
            "TORGHUT_E2E_CLICKHOUSE_URL",
        ),
        (
            "[kafka]\nbootstrap = \"\"\n".into(),
            vec![],
            "kafka.bootstrap",
        ),
        (
            "connect_timeout_ms = 0\n".into(),
            vec![],
            "connect_timeout_ms",
        ),
        (
            "[jangar]\nrequest_timeout_ms = 0\n".into(),
            vec![],
            "jangar.request_timeout_ms",
        ),
        (
            "[jangar]\nretries = 1000000\n".into(),
            vec![],
            "jangar.retries",
        ),
        (
            "[jangar]\nbase_url = \"jangar:3000\"\n".into(),
            vec![],
            "jangar.base_url",
        ),
        // A broken file value behind a valid override.
        (
            "[clickhouse]\nurl = \"http://ch:port\"\n".into(),
            vec![],
            "clickhouse.url",
        ),
        (
            "[kafka]\nsecurity_protocol = \"SASL_SSL\"\nca_file = \"/nonexistent/ca.pem\"\n".into(),
            vec![],
            "kafka.ca_file",
        ),
    ];
    for (i, (text, vars, key)) in cases.iter().enumerate() {
        let config = write(&dir, &format!("c{i}.toml"), text);
        let out = bin()
            .arg("preflight")
            .arg("--config")
            .arg(&config)
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}: {}", shown(&out));
        assert!(stderr(&out).contains(key), "{key}: {}", shown(&out));
        assert!(
            out.stdout.is_empty(),
            "a probe ran for {key}: {}",
            shown(&out)
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn outputs_and_inputs_are_checked_before_anything_is_published() {
    let dir = scratch();
    let s = write(&dir, "short.toml", SHORT);
    let config = quick_config(&dir);
    let flags: [(&str, PathBuf); 5] = [
        ("--report-json", std::env::temp_dir()),
        ("--junit", dir.join("missing-dir/junit.xml")),
        ("--html", PathBuf::from("/proc/t2e.html")),
        ("--metrics", dir.clone()),
        ("--history", PathBuf::from("/proc/t2e/history.jsonl")),
    ];
    for (flag, path) in &flags {
        let verb = if *flag == "--history" {
            "canary"
        } else {
            "run"
        };
        let out = bin()
            .arg(verb)
            .arg(&s)
            .arg("--config")
            .arg(&config)
            .arg(flag)
            .arg(path)
            .args(["--max-runs", "1"].iter().filter(|_| verb == "canary"))
            .output()
            .unwrap();
        refused_before_preflight(&out, &format!("{flag} {}", path.display()));
    }
    // The page model is an input of a browser scenario: missing or malformed, it is refused
    // before publishing instead of failing the run as "Jangar API → charts page".
    let browser = write(
        &dir,
        "browser.toml",
        &SHORT.replace("pacing", "stages = [\"clickhouse\", \"browser\"]\npacing"),
    );
    let malformed = write(&dir, "model.toml", "[selectors\n");
    for model in [dir.join("no-such-model.toml"), malformed] {
        let out = bin()
            .arg("run")
            .arg(&browser)
            .arg("--config")
            .arg(&config)
            .env("TORGHUT_E2E_PAGE_MODEL", &model)
            .output()
            .unwrap();
        refused_before_preflight(&out, "TORGHUT_E2E_PAGE_MODEL");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Runs `cmd` with stdout (and, with `both`, stderr) a pipe whose reader is already gone.
fn closed_pipe(mut cmd: Command, both: bool) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer.try_clone().unwrap());
    if both {
        cmd.stderr(writer);
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panicked: {}", shown(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", shown(&out));
    out
}

#[test]
fn a_closed_stdout_or_stderr_never_panics_a_verb() {
    let dir = scratch();
    let s = write(&dir, "short.toml", SHORT);
    let config = quick_config(&dir);
    let messages = write(
        &dir,
        "m.jsonl",
        &(0..50)
            .map(|i| {
                let at =
                    time::macros::datetime!(2026-07-21 14:30:00 UTC) + time::Duration::seconds(i);
                torghut_e2e::domain::envelope::trade_message("ZZT2E-P-A", at, 10.0, 1.0, i + 1, at)
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for both in [false, true] {
        let mut preflight = bin();
        preflight.arg("preflight").arg("--config").arg(&config);
        assert_eq!(
            closed_pipe(preflight, both).status.code(),
            Some(3),
            "preflight"
        );

        let mut lint = bin();
        lint.arg("lint").arg(&s).arg(&s);
        assert_eq!(closed_pipe(lint, both).status.code(), Some(0), "lint");

        let mut run = bin();
        run.arg("run").arg(&s).arg("--config").arg(&config);
        assert_eq!(closed_pipe(run, both).status.code(), Some(3), "run");

        let mut canary = bin();
        canary
            .args(["canary", "--max-runs", "1"])
            .arg(&s)
            .arg("--config")
            .arg(&config);
        assert_eq!(closed_pipe(canary, both).status.code(), Some(3), "canary");

        let mut oracle = bin();
        oracle
            .args(["oracle", "--flush-open", "--input"])
            .arg(&messages);
        closed_pipe(oracle, both);

        let mut audit = bin();
        audit
            .args(["audit", "--symbols", "NVDA", "--last", "5m", "--config"])
            .arg(&config);
        assert_eq!(closed_pipe(audit, both).status.code(), Some(3), "audit");

        let mut help = bin();
        help.arg("--help");
        assert_eq!(closed_pipe(help, both).status.code(), Some(0), "--help");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_audit_that_fails_preflight_keeps_exit_3_and_writes_its_outputs() {
    let dir = scratch();
    let out = bin()
        .args([
            "audit",
            "--symbols",
            "NVDA,AMD",
            "--last",
            "15m",
            "--config",
        ])
        .arg(quick_config(&dir))
        .arg("--report-json")
        .arg(dir.join("r.json"))
        .arg("--junit")
        .arg(dir.join("j.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    for f in ["r.json", "j.xml"] {
        assert!(dir.join(f).is_file(), "{f}: {}", shown(&out));
    }
    // A window that cannot be audited is a usage error before any target is touched.
    for bad in [
        &["--symbols", "NVDA", "--last", "25h"][..],
        &["--symbols", "NV DA", "--last", "5m"],
        &["--symbols", "NVDA", "--from", "2026-07-21T14:30:00Z"],
        &["--symbols", "NVDA"],
    ] {
        let out = bin()
            .arg("audit")
            .args(bad)
            .arg("--config")
            .arg(quick_config(&dir))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", shown(&out));
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_run_that_fails_preflight_keeps_exit_3_and_writes_its_outputs() {
    // The preflight fails (closed ports): exit 3, and every output is written all the same.
    let dir = scratch();
    let s = write(&dir, "short.toml", SHORT);
    let out = bin()
        .arg("run")
        .arg(&s)
        .arg("--config")
        .arg(quick_config(&dir))
        .arg("--report-json")
        .arg(dir.join("r.json"))
        .arg("--junit")
        .arg(dir.join("j.xml"))
        .arg("--metrics")
        .arg(dir.join("m.prom"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    for f in ["r.json", "j.xml", "m.prom"] {
        assert!(dir.join(f).is_file(), "{f}: {}", shown(&out));
    }
    std::fs::remove_dir_all(dir).ok();
}
