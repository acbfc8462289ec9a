//! The cells: a target broken from the start, or stopped in the middle of a run.

use super::*;

/// One cell: break the target, run the validator, judge its verdict.
pub(super) async fn cell(target: Target, mode: Mode) -> Outcome {
    let name = format!("{}/{}", target.name(), mode.name());
    let scratch = common::ScratchDir::new("t2e-fault").kept_when("FAULT_KEEP");
    let mut run = Run::new(&scratch, &name);
    let mut guard = Guard::default();
    // Broken from the start: preflight fails, nothing is published.
    if mode != Mode::Stopped {
        let addr = match mode {
            Mode::Closed => closed_port(),
            _ => {
                let hole = Proxy::start(None, Some(1)).await;
                let addr = hole.addr;
                guard.proxy = Some(hole);
                addr
            }
        };
        run.point(target, addr);
        let started = Instant::now();
        let child = run.spawn(&run.scenario(&["clickhouse", "api", "browser"], 4, 6));
        let finished = run.finish(child, started).await;
        let bound = CONNECT_TIMEOUT + SLACK;
        let mut o = finished.outcome(name, bound);
        o.expect_exit(3);
        o.expect_preflight_failed(&finished.report, target.name());
        if !finished.report["scenarios"]
            .as_array()
            .is_some_and(|s| s.is_empty())
        {
            o.problem("a scenario ran although preflight failed".into());
        }
        return o;
    }
    match target {
        Target::Kafka => kafka_stopped(name, run, &scratch).await,
        Target::ClickHouse => clickhouse_stopped(name, run, &mut guard).await,
        Target::WebDriver => webdriver_stopped(name, run, &scratch).await,
        Target::Jangar => jangar_stopped(name, run, &mut guard).await,
    }
}

/// A private broker SIGSTOPped once it holds three of the run's messages, in a real-time
/// scenario of 40 s: before the fix the validator awaited acknowledgements only after the whole
/// loop and reported nothing it had published. The broker is continued when the validator says
/// it reads the topic back: the requests the stalled broker had received are then written
/// without an acknowledgement, and the read-back must find them (`landed`). The pause must stay
/// under the broker's session timeout (9 s), or its own controller fences it on waking and it
/// writes nothing: this run's acknowledgement timeout is 6 s.
pub(super) async fn kafka_stopped(
    name: String,
    mut run: Run,
    scratch: &common::ScratchDir,
) -> Outcome {
    let connect_timeout = Duration::from_secs(2);
    run.connect_timeout(connect_timeout);
    let broker = Arc::new(PrivateKafka::start(scratch.path()).await);
    run.env("TORGHUT_E2E_KAFKA_BOOTSTRAP", &broker.bootstrap());
    run.env("TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse"], 40, 10));
    let continued = Arc::new(AtomicUsize::new(0));
    let log = continue_on_read_back(&mut child, broker.clone(), continued.clone());
    let bootstrap = broker.bootstrap();
    let cancel = Cancel::default();
    let watching = cancel.clone();
    let landed = tokio::task::spawn_blocking(move || messages_on(&bootstrap, 3, &watching));
    let enough = tokio::select! {
        n = landed => n.unwrap_or(false),
        _ = child.wait() => false,
    };
    cancel.set();
    let stopped = Instant::now();
    broker.signal(libc::SIGSTOP);
    let mut finished = run.finish(child, started).await;
    broker.signal(libc::SIGCONT);
    finished.stderr = log.await.unwrap_or_default();
    let ack_timeout = connect_timeout * 3;
    // An acknowledgement timeout, the purge, the bounded read-back (3 s).
    let bound = ack_timeout + Duration::from_millis(3_500) + SLACK;
    let mut o = finished.outcome(name, bound);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    if !enough {
        o.problem("the run never put three messages on the private broker".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "kafka_publish");
    o.expect_published_facts(s, 3);
    let unconfirmed = s["unconfirmed"].as_array().cloned().unwrap_or_default();
    if unconfirmed.is_empty() {
        o.problem(format!("no unconfirmed message reported: {s}"));
    }
    for u in &unconfirmed {
        if !matches!(u["fate"].as_str(), Some("unknown" | "not_sent" | "landed")) {
            o.problem(format!("unconfirmed message without a fate: {u}"));
        }
    }
    if continued.load(Ordering::SeqCst) == 0 {
        o.problem("the validator never said it reads the topic back".into());
    } else if !unconfirmed.iter().any(|u| u["fate"] == "landed") {
        o.problem(format!(
            "none of the stalled broker's writes was found: {unconfirmed:?}"
        ));
    }
    let sent = s["messages_published"].as_u64().unwrap_or(0);
    let acked = s["messages_acknowledged"].as_u64().unwrap_or(0);
    if sent != acked + unconfirmed.len() as u64 {
        o.problem(format!(
            "{sent} sent ≠ {acked} acknowledged + {} unconfirmed",
            unconfirmed.len()
        ));
    }
    o
}

/// The stack's ClickHouse behind a proxy that freezes once the run's first message is on the
/// topic, in a real-time scenario: the rows are written (the TA job writes past the proxy) but
/// the validator cannot read them.
pub(super) async fn clickhouse_stopped(name: String, mut run: Run, guard: &mut Guard) -> Outcome {
    let upstream = local(&common::clickhouse("torghut_sim_default").url);
    let proxy = Proxy::start(Some(upstream), None).await;
    run.env(
        "TORGHUT_E2E_CLICKHOUSE_URL",
        &format!("http://{}", proxy.addr),
    );
    let prefix = format!("ZZT2E-{}-", run.run_id);
    let from = shared_trades_end();
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse"], 4, 6));
    let cancel = Cancel::default();
    let watching = cancel.clone();
    let seen = tokio::task::spawn_blocking(move || key_on_shared_topic(&prefix, from, &watching));
    let published = tokio::select! {
        s = seen => s.unwrap_or(false),
        _ = child.wait() => false,
    };
    cancel.set();
    proxy.freeze();
    let stopped = Instant::now();
    guard.proxy = Some(proxy);
    let finished = run.finish(child, started).await;
    // The rest of the publishing (≤ 5 s), the deadline (6 s), a query's bound.
    let bound = Duration::from_secs(5 + 6) + 2 * CONNECT_TIMEOUT + SLACK;
    let mut o = finished.outcome(name, bound);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    if !published {
        o.problem("the run's first message never showed on the topic".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "clickhouse_sink");
    o.expect_published_facts(s, 1);
    if s["messages_published"] != s["messages_acknowledged"] {
        o.problem(format!(
            "Kafka was up, yet not every message was acknowledged: {s}"
        ));
    }
    o
}

/// A private chromedriver SIGSTOPped once the browser has loaded its first page, while the page
/// is read by scripts: before the fix `run` waited for it for ever.
pub(super) async fn webdriver_stopped(
    name: String,
    mut run: Run,
    scratch: &common::ScratchDir,
) -> Outcome {
    let driver = PrivateChromedriver::start(scratch.path()).await;
    run.env("TORGHUT_E2E_WEBDRIVER_URL", &driver.url);
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse", "browser"], 4, 15));
    let appeared = tokio::select! {
        () = driver.first_page_loaded() => true,
        _ = child.wait() => false,
    };
    driver.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let finished = run.finish(child, started).await;
    driver.signal(libc::SIGCONT);
    // One WebDriver command's bound, then the rest at once: a script's (10 s) plus an answer.
    // The report names the bound it applied. (Stopped on a navigation, it would be the
    // page-load timeout, 30 s here: 20 s more of this tier's time, in two CI runs of five.)
    let longest = Duration::from_secs(10) + CONNECT_TIMEOUT;
    let mut o = finished.outcome(name, longest + SLACK);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    match o.causes.iter().find_map(|c| applied_bound(c)) {
        Some(applied) if applied <= longest => o.bound = applied + SLACK,
        other => o.problem(format!(
            "no WebDriver bound (≤ {longest:?}) named: {other:?}"
        )),
    }
    if !appeared {
        o.problem("the run never opened a browser on the private chromedriver".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "charts_page");
    let browser = s["stages"]
        .as_array()
        .and_then(|st| st.iter().find(|x| x["stage"] == "browser"))
        .cloned()
        .unwrap_or(Value::Null);
    if browser["verdict"] != "error" {
        o.problem(format!(
            "browser stage verdict {} (want error)",
            browser["verdict"]
        ));
    }
    if !browser.to_string().contains("did not answer") {
        o.problem(format!(
            "the browser stage does not say the WebDriver hung: {browser}"
        ));
    }
    o
}

/// The stack's Jangar behind a proxy that lets preflight's `/health` through and black-holes
/// every later connection: the API stage's calls hang.
pub(super) async fn jangar_stopped(name: String, mut run: Run, guard: &mut Guard) -> Outcome {
    let proxy = Proxy::start(Some(local(&common::jangar_url())), Some(2)).await;
    run.env("TORGHUT_E2E_JANGAR_URL", &format!("http://{}", proxy.addr));
    let started = Instant::now();
    let child = run.spawn(&run.scenario(&["clickhouse", "api"], 4, 15));
    let state = proxy.state.clone();
    guard.proxy = Some(proxy);
    let finished = run.finish(child, started).await;
    // Each of the three endpoints waits once (later calls to a silent endpoint are skipped).
    let bound = 3 * REQUEST_TIMEOUT + SLACK;
    let mut o = finished.outcome(name, bound);
    match state.frozen_at() {
        Some(at) => o.verdict_after = finished.exited.saturating_duration_since(at),
        None => {
            o.problem("the API stage never reached Jangar".into());
            return o;
        }
    }
    o.expect_exit(1);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "jangar_api");
    if !s.to_string().contains("no answer within") {
        o.problem("the API stage does not say Jangar gave no answer".into());
    }
    o
}
