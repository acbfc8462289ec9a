//! `scripts/stack` itself: the functions `up` relies on, run from a shell that sources the script
//! (sourcing defines everything and runs nothing), each in a scratch `STACK_DIR`. The schema
//! tests talk to the local stack's ClickHouse; nothing here touches the stack's processes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(common::unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// `bash -c` with the script sourced first, in `stack_dir`; the test's environment (the local
/// stack's ports and credentials) plus `env`.
fn sourced(stack_dir: &Path, script: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail\nsource scripts/stack\n{script}"))
        .current_dir(root())
        .env("STACK_DIR", stack_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("bash runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const PLANTED: &str = "planted-Secret-6c1d\\\"quote";

/// Issue 14 §6: about one random id in 64 starts with `-`, and the storage tool then takes it
/// for an option. 640 formats: with the old generator at least one such id comes up with
/// probability 1 − (63/64)^640 > 99.99 %. The SCRAM password must not reach the tool's command
/// line either (issue 15 item 7).
#[test]
fn cluster_ids_never_start_with_a_dash_and_the_storage_tool_gets_no_password() {
    let dir = Scratch::new("t2e-stack-ids");
    let formats = 640;
    let out = run(&mut sourced(
        dir.path(),
        &format!(
            r#"mkdir -p "$LOG_DIR"
java() {{ printf '%s\n' "$*" >>"$STACK_DIR/java-args"; }}
info() {{ :; }}
for _ in $(seq {formats}); do kafka_prepare; done"#
        ),
        &[("STACK_KAFKA_PASSWORD", PLANTED)],
    ));
    assert!(out.status.success(), "{}", text(&out));
    let calls = std::fs::read_to_string(dir.path().join("java-args")).unwrap();
    let ids: Vec<&str> = calls
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let at = words.iter().position(|w| *w == "-t").expect("-t ID");
            words[at + 1]
        })
        .collect();
    assert_eq!(ids.len(), formats, "one format per prepare");
    for id in &ids {
        assert!(!id.starts_with('-'), "cluster id {id:?} starts with a dash");
        assert_eq!(id.len(), 22, "{id:?}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id:?}"
        );
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids are random");
    assert!(
        !calls.contains("planted-Secret"),
        "the password is on the storage tool's command line"
    );
}

/// Runs the schema step as `up` does (inside a condition, where `set -e` does not act) on a
/// scratch STACK_DIR whose stamp says an older schema was applied.
fn apply_schema(schema: &[u8]) -> (Output, bool) {
    let dir = Scratch::new("t2e-stack-schema");
    let file = dir.path().join("schema.sql");
    std::fs::write(&file, schema).unwrap();
    let stamp = dir.path().join("clickhouse/.schema-applied");
    std::fs::create_dir_all(stamp.parent().unwrap()).unwrap();
    std::fs::write(&stamp, "an older schema").unwrap();
    let out = run(&mut sourced(
        dir.path(),
        r#"stack_tmp_init
mkdir -p "$LOG_DIR"
if clickhouse_ready; then echo "stack: READY"; else echo "stack: NOT READY"; fi"#,
        &[("STACK_CH_SCHEMA", file.to_str().unwrap())],
    ));
    (out, stamp.exists())
}

#[test]
fn a_schema_that_cannot_be_split_stops_up_and_leaves_no_stamp() {
    // Not UTF-8: the statement splitter fails, and used to yield zero statements, "applied".
    let (out, stamped) = apply_schema(b"CREATE TABLE t (x UInt8) ENGINE = Memory\xff\xfe;\n");
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(!shown.contains("READY"), "{shown}");
    assert!(
        shown.contains("cannot split") && shown.contains("schema.sql"),
        "{shown}"
    );
    assert!(!stamped, "the schema stamp was written: {shown}");
}

#[test]
fn a_failing_schema_statement_stops_up_and_leaves_no_stamp() {
    let (out, stamped) = apply_schema(b"SELECT throwIf(1, 'planted schema failure');\n");
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(!shown.contains("READY"), "{shown}");
    assert!(
        shown.contains("schema statement 1 for database torghut failed")
            && shown.contains("planted schema failure"),
        "{shown}"
    );
    assert!(
        !stamped,
        "a stale schema stamp survived a failed application: {shown}"
    );
}

/// Issue 15 item 7: `ps` shows every process's command line to every user, and an exported
/// variable reaches every later child.
#[test]
fn passwords_stay_off_command_lines_and_out_of_other_components() {
    let dir = Scratch::new("t2e-stack-secrets");
    let script = r#"stack_tmp_init
mkdir -p "$RUN_DIR" "$LOG_DIR"
# curl as ch_query calls it: its arguments, and the config it reads on stdin
curl() {
    printf '%s\n' "$@" >"$STACK_DIR/curl-args"
    cat >"$STACK_DIR/curl-stdin"
    printf 200
}
ch_query 'SELECT 1' >/dev/null
unset -f curl
# the components' commands: nothing they need may be exported to the next one
ta_command
jangar_command
env >"$STACK_DIR/exported"
# launch: CMD_ENV reaches that child only
for c in first second; do
    eval "${c}_ports() { :; }; ${c}_marker() { printf '%s' $c; }"
done
CMD=(bash -c 'env >"$0"; exec sleep 30' "$STACK_DIR/first.env")
CMD_ENV=("FIRST_ONLY_SECRET=$STACK_CH_PASSWORD")
launch first
CMD=(bash -c 'env >"$0"; exec sleep 30' "$STACK_DIR/second.env")
launch second
for c in first second; do
    until [[ -s $STACK_DIR/$c.env ]]; do sleep 0.05; done
    read -r pid _ <"$(pidfile "$c")"
    kill -KILL -- "-$pid"
done"#;
    let out = run(&mut sourced(
        dir.path(),
        script,
        &[
            ("STACK_CH_PASSWORD", PLANTED),
            ("STACK_KAFKA_PASSWORD", PLANTED),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(
        !read("curl-args").contains("planted-Secret"),
        "the ClickHouse password is on curl's command line"
    );
    assert!(
        read("curl-stdin").contains(r#"X-ClickHouse-Key: planted-Secret-6c1d\\\"quote"#),
        "curl's stdin config carries the key, escaped: {}",
        read("curl-stdin")
    );
    assert!(
        !read("exported").contains("planted-Secret"),
        "a password is exported to every later child"
    );
    assert!(read("first.env").contains("FIRST_ONLY_SECRET=planted-Secret"));
    let second = read("second.env");
    assert!(
        !second.contains("planted-Secret"),
        "another component's secret (or the caller's exported password) leaked: {second}"
    );
}

/// A process listening on a free port that looks like another checkout's stack component.
struct ForeignStack {
    child: std::process::Child,
    port: u16,
}

impl ForeignStack {
    fn start() -> ForeignStack {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, \
                 socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen()\n\
                 time.sleep(120)"
            ))
            .env("TORGHUT_STACK", "kafka@/elsewhere/.stack")
            .env("TORGHUT_STACK_PORTS", port.to_string())
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the stand-in never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        ForeignStack { child, port }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ForeignStack {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Issue 15 item 7: `up` used to stop another checkout's stack by default.
#[test]
fn taking_over_another_checkouts_port_is_opt_in() {
    let dir = Scratch::new("t2e-stack-takeover");
    let mut foreign = ForeignStack::start();
    let port = foreign.port.to_string();
    let check = |takeover: Option<&str>| {
        let mut cmd = sourced(
            dir.path(),
            r#"fake_ports() { printf '%s %s\n' "$FAKE_PORT" "fake, FAKE_PORT"; }
check_ports_free fake
echo "stack: PORTS FREE""#,
            &[("FAKE_PORT", &port)],
        );
        cmd.env_remove("STACK_TAKEOVER");
        if let Some(v) = takeover {
            cmd.env("STACK_TAKEOVER", v);
        }
        run(&mut cmd)
    };
    let refused = check(None);
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{shown}");
    assert!(shown.contains("STACK_TAKEOVER=1"), "{shown}");
    assert!(
        shown.contains("kafka@/elsewhere/.stack"),
        "names the holder: {shown}"
    );
    assert!(
        foreign.alive(),
        "another checkout's process was stopped by default"
    );
    let taken = check(Some("1"));
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(text(&taken).contains("PORTS FREE"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while foreign.alive() {
        assert!(
            Instant::now() < deadline,
            "STACK_TAKEOVER=1 did not stop it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 15 item 7: `status` stopped by TERM (a CI timeout) while a health check waits must not
/// leave its temporary files behind. A black-holed ClickHouse makes the check wait (`/ping`,
/// 2 s); the TERM comes once the temporary directory exists.
#[test]
fn temporary_files_go_when_the_script_is_stopped() {
    use std::os::unix::process::CommandExt;
    let dir = Scratch::new("t2e-stack-tmp");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in hole.incoming().take(8).flatten() {
            open.push(s); // accepted, never answered
        }
    });
    // A process that passes for the component: its command line holds clickhouse's marker.
    let stack_dir = dir.path().join("stack");
    let marker_dir = stack_dir.join("clickhouse");
    let mut component = Command::new("bash")
        .arg("-c")
        .arg("sleep 60")
        .arg("--data-dir")
        .arg(&marker_dir)
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", component.id())).unwrap();
    let starttime = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split(' ')
        .nth(19)
        .unwrap();
    std::fs::create_dir_all(stack_dir.join("run")).unwrap();
    std::fs::write(
        stack_dir.join("run/clickhouse.pid"),
        format!("{} {starttime}\n", component.id()),
    )
    .unwrap();
    let mut status = Command::new("scripts/stack")
        .arg("status")
        .current_dir(root())
        .env("STACK_DIR", &stack_dir)
        .env("STACK_COMPONENTS", "clickhouse")
        .env("STACK_CH_PORT", port.to_string())
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = || std::fs::read_dir(&tmp).unwrap().count();
    while entries() == 0 {
        assert!(
            Instant::now() < deadline,
            "status created no temporary file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // TERM to the whole job, as a CI runner or a terminal sends it.
    unsafe { libc::kill(-(status.id() as libc::pid_t), libc::SIGTERM) };
    let code = status.wait().unwrap();
    component.kill().ok();
    component.wait().ok();
    drop(held);
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind after TERM ({code}): {left:?}");
}
