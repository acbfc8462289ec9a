//! Every file under `deploy/` parses, and the fields that decide how it behaves in a cluster
//! or in CI are right: the pinned image, arguments that are real flags of the binary, secrets
//! only by reference, restart policy, deadlines and retries, the CronJob's concurrency.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

const IMAGE: &str = "ghcr.io/torghut/torghut-e2e:0.1.0";

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML document in a file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn manifest(name: &str) -> Value {
    let mut docs = documents(&deploy().join("k8s").join(name));
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn str_of<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {:?}", get(v, path)))
}

fn int_of(v: &Value, path: &str) -> i64 {
    get(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {:?}", get(v, path)))
}

/// `torghut-e2e <verb> --help`, for the flags a manifest may use.
fn flags_of(verb: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"))
        .args([verb, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{verb} --help");
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(['.', ')']).to_string())
        .collect()
}

/// Checks the validator's arguments: a real verb, real flags, and the scenario paths it names
/// exist in the image (the repository's `scenarios/` is copied there).
fn assert_args_are_real(args: &[String], context: &str) {
    let verb = args.first().map(String::as_str).unwrap_or_default();
    assert!(
        ["run", "canary", "preflight", "audit"].contains(&verb),
        "{context}: verb {verb:?}"
    );
    let known = flags_of(verb);
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap();
        assert!(
            known.contains(flag),
            "{context}: {flag} is not a flag of {verb}: {known:?}"
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in args.iter().filter(|a| a.starts_with("scenarios/")) {
        assert!(root.join(a).exists(), "{context}: {a} is not shipped");
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect()
}

/// The pod-level rules every workload follows, a chromedriver sidecar for the ones that drive
/// a browser; returns the validator container.
fn assert_pod(pod: &Value, context: &str) -> Value {
    let init = get(pod, "spec.initContainers")
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    // chromedriver as a native sidecar: stops with the validator, so the Job completes.
    let driver = init.iter().find(|c| c["name"] == "chromedriver");
    let driver = driver.unwrap_or_else(|| panic!("{context}: chromedriver sidecar"));
    assert_eq!(str_of(driver, "restartPolicy"), "Always", "{context}");
    assert_pod_without_browser(pod, context)
}

/// [`assert_pod`] for a workload that drives no browser (the audit).
fn assert_pod_without_browser(pod: &Value, context: &str) -> Value {
    assert_eq!(str_of(pod, "spec.restartPolicy"), "Never", "{context}");
    assert_eq!(
        get(pod, "spec.securityContext.runAsNonRoot").as_bool(),
        Some(true),
        "{context}"
    );
    let containers = get(pod, "spec.containers").as_sequence().unwrap();
    let init = get(pod, "spec.initContainers")
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for c in containers.iter().chain(init.iter()) {
        assert_eq!(str_of(c, "image"), IMAGE, "{context}: pinned image");
        assert_secrets_by_reference(c, context);
    }
    let main = containers
        .iter()
        .find(|c| c["name"] == "torghut-e2e")
        .unwrap_or_else(|| panic!("{context}: torghut-e2e container"))
        .clone();
    // Secrets arrive as a secret volume (Kafka user) and secretKeyRef env (ClickHouse).
    let volumes = get(pod, "spec.volumes").as_sequence().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"].as_str() == Some("torghut-ws")),
        "{context}: the Kafka user's secret is mounted"
    );
    main
}

/// No literal value for anything that looks like a credential.
fn assert_secrets_by_reference(container: &Value, context: &str) {
    let env = container["env"].as_sequence().cloned().unwrap_or_default();
    for e in env {
        let name = str_of(&e, "name");
        let secretish = ["PASSWORD", "TOKEN", "SECRET", "KEY"]
            .iter()
            .any(|w| name.contains(w));
        if secretish {
            assert!(
                e["value"].is_null(),
                "{context}: {name} must not be a literal"
            );
            assert!(
                e["valueFrom"]["secretKeyRef"]["name"].is_string(),
                "{context}: {name} from a secretKeyRef"
            );
        }
    }
}

#[test]
fn canary_cronjob_runs_one_isolated_cycle_and_never_overlaps() {
    let cj = manifest("canary-cronjob.yaml");
    assert_eq!(str_of(&cj, "kind"), "CronJob");
    assert_eq!(str_of(&cj, "apiVersion"), "batch/v1");
    assert_eq!(str_of(&cj, "spec.concurrencyPolicy"), "Forbid");
    assert_eq!(int_of(&cj, "spec.jobTemplate.spec.backoffLimit"), 0);
    let deadline = int_of(&cj, "spec.jobTemplate.spec.activeDeadlineSeconds");
    assert!(
        (60..300).contains(&deadline),
        "under the 5-minute schedule: {deadline}"
    );
    assert_eq!(str_of(&cj, "spec.schedule"), "*/5 * * * *");
    let pod = get(&cj, "spec.jobTemplate.spec.template");
    let main = assert_pod(pod, "cronjob");
    let args = strings(&main["args"]);
    assert_args_are_real(&args, "cronjob");
    assert_eq!(args[0], "canary");
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1]);
    assert_eq!(at("--max-runs").map(String::as_str), Some("1"));
    // SIGTERM on the deadline: the grace period must cover --stop-grace.
    let grace = humantime::parse_duration(at("--stop-grace").unwrap()).unwrap();
    let termination = int_of(pod, "spec.terminationGracePeriodSeconds");
    assert!(
        grace.as_secs() as i64 + 5 <= termination,
        "{grace:?} vs {termination}"
    );
    assert!(at("--pushgateway").is_some(), "a canary publishes metrics");
    // Every-5-minutes runs on fresh symbols would grow the TA job's state forever.
    let pool = at("--pool").expect("a canary reuses a reserved pool");
    assert!(
        pool.parse::<torghut_e2e::domain::pool::PoolName>().is_ok(),
        "{pool}"
    );
}

#[test]
fn audit_cronjob_reads_production_on_a_schedule_with_a_read_only_config() {
    let cj = manifest("audit-cronjob.yaml");
    assert_eq!(str_of(&cj, "kind"), "CronJob");
    assert_eq!(str_of(&cj, "spec.concurrencyPolicy"), "Forbid");
    assert_eq!(int_of(&cj, "spec.jobTemplate.spec.backoffLimit"), 0);
    assert_eq!(str_of(&cj, "spec.timeZone"), "America/New_York");
    // Every 15 minutes, inside the regular session (09:30–16:00 New York), on weekdays.
    let schedule: Vec<&str> = str_of(&cj, "spec.schedule").split(' ').collect();
    assert_eq!(schedule[0], "*/15");
    let (first, last) = schedule[1].split_once('-').unwrap();
    let (first, last): (u32, u32) = (first.parse().unwrap(), last.parse().unwrap());
    assert!(first >= 10 && last <= 15, "{schedule:?}");
    assert_eq!(schedule[4], "1-5");
    let deadline = int_of(&cj, "spec.jobTemplate.spec.activeDeadlineSeconds");
    assert!(
        (60..900).contains(&deadline),
        "under the period: {deadline}"
    );
    let pod = get(&cj, "spec.jobTemplate.spec.template");
    let main = assert_pod_without_browser(pod, "audit");
    let args = strings(&main["args"]);
    assert_args_are_real(&args, "audit");
    assert_eq!(args[0], "audit");
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1]);
    // The window is the schedule's period, so consecutive audits cover the session.
    let last = humantime::parse_duration(at("--last").unwrap()).unwrap();
    assert_eq!(last.as_secs(), 15 * 60);
    let symbols = at("--symbols").unwrap();
    assert_eq!(
        symbols.split(',').count(),
        10,
        "the trading universe: {symbols}"
    );
    assert!(
        at("--pushgateway").is_some(),
        "a scheduled audit publishes metrics"
    );
    // Its config is the ConfigMap's audit.toml: the production lane, loadable read-only, and
    // refused by the verbs that publish.
    let config = at("--config").unwrap();
    let key = config.strip_prefix("/etc/torghut-e2e/").unwrap();
    let cm = manifest("configmap.yaml");
    let toml = get(&cm, "data")[key].as_str().unwrap();
    assert!(!toml.contains("password ="), "no password in the ConfigMap");
    let env: std::collections::HashMap<String, String> = [(
        "TORGHUT_E2E_KAFKA_PASSWORD".to_string(),
        "from-the-secret".to_string(),
    )]
    .into();
    let path = Path::new("configmap.yaml");
    let c = torghut_e2e::config::Config::from_toml_read_only(toml, path, &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.kafka.trades_topic, "torghut.trades.v1");
    assert_eq!(c.clickhouse.database, "torghut");
    assert!(!c.allow_production);
    let refused = torghut_e2e::config::Config::from_toml(toml, path, &env);
    assert!(
        refused.is_err(),
        "run and canary must refuse the audit's config"
    );
}

#[test]
fn postsync_hook_verifies_every_sync_once() {
    let job = manifest("postsync-hook-job.yaml");
    assert_eq!(str_of(&job, "kind"), "Job");
    // Keys with dots: indexed directly, not through a dotted path.
    let annotations = get(&job, "metadata.annotations");
    assert_eq!(annotations["argocd.argoproj.io/hook"], "PostSync");
    assert_eq!(
        annotations["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation"
    );
    assert_eq!(int_of(&job, "spec.backoffLimit"), 0);
    assert!(int_of(&job, "spec.activeDeadlineSeconds") > 0);
    let main = assert_pod(get(&job, "spec.template"), "postsync");
    let args = strings(&main["args"]);
    assert_args_are_real(&args, "postsync");
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--junit".to_string()));
}

#[test]
fn indexed_job_shards_agree_with_completions() {
    let job = manifest("sharded-suite-job.yaml");
    assert_eq!(str_of(&job, "spec.completionMode"), "Indexed");
    let n = int_of(&job, "spec.completions");
    assert_eq!(int_of(&job, "spec.parallelism"), n);
    assert_eq!(int_of(&job, "spec.backoffLimitPerIndex"), 0);
    assert!(int_of(&job, "spec.activeDeadlineSeconds") > 0);
    let main = assert_pod(get(&job, "spec.template"), "indexed");
    let args = strings(&main["args"]);
    assert_args_are_real(&args, "indexed");
    let shard = &args[args.iter().position(|a| a == "--shard").unwrap() + 1];
    assert_eq!(shard, &format!("$(JOB_COMPLETION_INDEX)/{n}"));
    // The variable is declared in the container, so Kubernetes expands it in args.
    let env = main["env"].as_sequence().unwrap();
    assert!(env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX"));
    // What the expansion produces is a shard the binary accepts, for every index.
    for i in 0..n {
        let expanded = shard.replace("$(JOB_COMPLETION_INDEX)", &i.to_string());
        assert!(
            expanded.parse::<torghut_e2e::suite::Shard>().is_ok(),
            "{expanded}"
        );
    }
}

#[test]
fn configmap_holds_a_valid_config_without_secrets() {
    let cm = manifest("configmap.yaml");
    let toml = get(&cm, "data")["torghut-e2e.toml"].as_str().unwrap();
    assert!(!toml.contains("password ="), "no password in the ConfigMap");
    let env: std::collections::HashMap<String, String> = [(
        "TORGHUT_E2E_KAFKA_PASSWORD".to_string(),
        "from-the-secret".to_string(),
    )]
    .into();
    let config = torghut_e2e::config::Config::from_toml(toml, Path::new("configmap.yaml"), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.clickhouse.database, "torghut_sim_default");
    assert!(!config.allow_production);
    assert_eq!(
        config.webdriver.url.as_deref(),
        Some("http://127.0.0.1:9515"),
        "the sidecar's port"
    );
    // The Service listens on 80 (jangar.md §4); Jangar reads `torghut`, not the sim lane's
    // database, so the API and browser stages must observe a live symbol read from there.
    assert_eq!(
        config.jangar.base_url.as_deref(),
        Some("http://jangar.jangar.svc")
    );
    assert_ne!(
        config.jangar.clickhouse_database.as_deref(),
        Some(config.clickhouse.database.as_str())
    );
    assert!(config.jangar.live_symbol.is_some());
}

#[test]
fn kustomization_names_existing_files() {
    let k = manifest("kustomization.yaml");
    for r in strings(&k["resources"]) {
        assert!(deploy().join("k8s").join(&r).exists(), "{r}");
    }
    for file in std::fs::read_dir(deploy().join("k8s")).unwrap() {
        // Every manifest parses and names its kind.
        let path = file.unwrap().path();
        for doc in documents(&path) {
            assert!(doc["kind"].is_string(), "{}", path.display());
        }
    }
}

#[test]
fn dockerfile_builds_in_stages_and_ships_chromium() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS builder"));
    assert!(froms[1].starts_with("FROM debian:") && froms[1].contains("-slim"));
    // The builder's toolchain satisfies the crate's rust-version.
    let manifest =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap();
    let wanted = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let have = froms[0]
        .trim_start_matches("FROM rust:")
        .split(['-', ' '])
        .next()
        .unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(version(have) >= version(wanted), "{have} < {wanted}");
    let runtime = &text[text.find(froms[1]).unwrap()..];
    for package in ["chromium", "chromium-driver", "ca-certificates"] {
        assert!(
            runtime.split_whitespace().any(|w| w == package),
            "{package} in the runtime stage"
        );
    }
    assert!(runtime.contains("COPY --from=builder"));
    assert!(
        text.contains("cargo build --release --locked"),
        "the locked graph"
    );
    assert!(runtime.contains("USER 10001"), "not root");
    assert!(runtime.contains("COPY scenarios "));
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/torghut-e2e\"]"));
    // The default command is a real invocation.
    let cmd = runtime
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .unwrap();
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    assert_args_are_real(&cmd, "Dockerfile CMD");
}

#[test]
fn release_workflow_gates_publishing_on_the_suite() {
    let wf = documents(&deploy().join("github/release-gate.yml")).remove(0);
    let jobs = wf["jobs"].as_mapping().unwrap();
    for (name, job) in jobs {
        assert!(
            job["timeout-minutes"].as_i64().is_some(),
            "{name:?} has a timeout"
        );
    }
    let needs = strings(&wf["jobs"]["publish"]["needs"]);
    assert!(needs.contains(&"test".into()) && needs.contains(&"staging-e2e".into()));
    let test_steps = wf["jobs"]["test"]["steps"].as_sequence().unwrap();
    assert!(test_steps.iter().any(|s| s["run"] == "scripts/test"));
    // The staging run: secrets by reference only, a real invocation, JUnit published.
    let steps = wf["jobs"]["staging-e2e"]["steps"].as_sequence().unwrap();
    let run = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("docker run")))
        .unwrap();
    for (k, v) in run["env"].as_mapping().unwrap() {
        let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
        if k.contains("PASSWORD") {
            assert!(v.starts_with("${{ secrets."), "{k} by reference: {v}");
        }
    }
    let script = run["run"].as_str().unwrap().replace("\\\n", " ");
    // The validator's arguments follow the image reference ("$IMAGE:${{ github.sha }}").
    let words: Vec<&str> = script.split_whitespace().collect();
    let image = words
        .iter()
        .position(|w| w.starts_with("\"$IMAGE"))
        .unwrap();
    let verb = image + words[image..].iter().position(|w| *w == "run").unwrap();
    let invocation: Vec<String> = words[verb..].iter().map(|w| w.to_string()).collect();
    assert_args_are_real(&invocation, "workflow");
    assert!(invocation.contains(&"--junit".to_string()));
    assert!(steps.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("mikepenz/action-junit-report"))));
}
