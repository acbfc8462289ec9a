use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads with a Kafka password in the environment unless the text names a password file.
fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars = env(vars);
    if !text.contains("password_file") {
        vars.entry(env::KAFKA_PASSWORD.into())
            .or_insert_with(|| "pw".into());
    }
    Config::from_toml(text, Path::new("t.toml"), &vars)
}

#[test]
fn sasl_without_a_password_is_a_config_error() {
    for vars in [
        vec![(env::KAFKA_SECURITY_PROTOCOL, "SASL_PLAINTEXT")],
        vec![(env::KAFKA_USERNAME, "torghut-ws")],
        // A remote broker is never taken for the local stack's open listener.
        vec![(env::KAFKA_BOOTSTRAP, "kafka-kafka-bootstrap.kafka:9092")],
        vec![(env::KAFKA_BOOTSTRAP, "127.0.0.1:9092,10.0.0.7:9092")],
    ] {
        let err = Config::from_toml("", Path::new("t.toml"), &env(&vars)).unwrap_err();
        assert!(
            err.to_string().contains("TORGHUT_E2E_KAFKA_PASSWORD"),
            "{vars:?}: {err}"
        );
    }
    let plain = [(env::KAFKA_SECURITY_PROTOCOL, "PLAINTEXT")];
    assert!(Config::from_toml("", Path::new("t.toml"), &env(&plain)).is_ok());
}

#[test]
fn nothing_configured_is_the_local_stack_on_loopback() {
    let c = Config::from_toml("", Path::new("t.toml"), &env(&[])).unwrap();
    assert_eq!(c.lane, Lane::Sim);
    assert_eq!(c.kafka.security_protocol, SecurityProtocol::Plaintext);
    assert_eq!(c.kafka.bootstrap, "127.0.0.1:9092");
    assert_eq!(c.clickhouse.url, "http://127.0.0.1:8123");
    assert_eq!(c.clickhouse.user, "torghut");
    assert_eq!(c.clickhouse.password.expose(), "torghut-e2e-local");
    // Only the ports given: still the local stack, on those ports.
    let ports = [
        (env::KAFKA_BOOTSTRAP, "localhost:19092"),
        (env::CLICKHOUSE_URL, "http://[::1]:18123"),
    ];
    let c = Config::from_toml("", Path::new("t.toml"), &env(&ports)).unwrap();
    assert_eq!(c.kafka.security_protocol, SecurityProtocol::Plaintext);
    assert_eq!(c.kafka.bootstrap, "localhost:19092");
    assert_eq!(c.clickhouse.password.expose(), "torghut-e2e-local");
}

#[test]
fn the_local_stack_password_goes_nowhere_else() {
    let remote = [(
        env::CLICKHOUSE_URL,
        "http://torghut-clickhouse.torghut.svc:8123",
    )];
    let c = Config::from_toml("", Path::new("t.toml"), &env(&remote)).unwrap();
    assert_eq!(c.clickhouse.password.expose(), "");
    // A user of one's own on loopback: its password is one's own (none here).
    let own_user = [(env::CLICKHOUSE_USER, "default")];
    let c = Config::from_toml("", Path::new("t.toml"), &env(&own_user)).unwrap();
    assert_eq!(c.clickhouse.password.expose(), "");
    let own_password = [(env::CLICKHOUSE_PASSWORD, "mine")];
    let c = Config::from_toml("", Path::new("t.toml"), &env(&own_password)).unwrap();
    assert_eq!(c.clickhouse.password.expose(), "mine");
}

#[test]
fn defaults_point_at_the_local_sim_lane() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.lane, Lane::Sim);
    assert_eq!(c.kafka.trades_topic, "torghut.sim.trades.v1");
    assert_eq!(c.clickhouse.database, "torghut_sim_default");
    // A password and nothing else: SASL on the local stack's SASL listener.
    assert_eq!(c.kafka.security_protocol, SecurityProtocol::SaslPlaintext);
    assert_eq!(c.kafka.sasl_mechanism, SaslMechanism::ScramSha512);
    assert_eq!(c.kafka.bootstrap, "127.0.0.1:9093");
    assert_eq!(c.kafka.username, "torghut-ws");
}

#[test]
fn env_overrides_file() {
    let c = load(
        "[clickhouse]\nurl = \"http://file:8123\"\nuser = \"a\"",
        &[(env::CLICKHOUSE_URL, "http://env:8123")],
    )
    .unwrap();
    assert_eq!(c.clickhouse.url, "http://env:8123");
    assert_eq!(c.clickhouse.user, "a");
}

#[test]
fn production_is_refused_unless_allowed() {
    let err = load("lane = \"prod\"", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Unsafe(_)), "{err}");
    let err = load("[clickhouse]\ndatabase = \"torghut\"", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Unsafe(_)), "{err}");
    let c = load("lane = \"prod\"\nallow_production = true", &[]).unwrap();
    assert_eq!(c.kafka.trades_topic, "torghut.trades.v1");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let err = load("[kafka]\nbootstrapp = \"x\"", &[]).unwrap_err();
    assert!(err.to_string().contains("bootstrapp"), "{err}");
    let err = load("[kafka]\nsasl_mechanism = \"MD5\"", &[]).unwrap_err();
    assert!(err.to_string().contains("kafka.sasl_mechanism"), "{err}");
}

#[test]
fn secrets_come_from_env_or_files_and_never_print() {
    let dir = std::env::temp_dir().join(format!("t2e-secret-{}", std::process::id()));
    std::fs::write(&dir, "s3cret\n").unwrap();
    let text = format!("[kafka]\npassword_file = {:?}", dir.display().to_string());
    let c = load(&text, &[(env::CLICKHOUSE_PASSWORD, "chpw")]).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(c.kafka.password.expose(), "s3cret");
    assert_eq!(c.clickhouse.password.expose(), "chpw");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("chpw"),
        "{shown}"
    );
}

#[test]
fn missing_secret_file_is_a_config_error() {
    let err = load("[kafka]\npassword_file = \"/nonexistent/pw\"", &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/pw"), "{err}");
}

#[test]
fn jangar_settings_from_file_and_env() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.jangar.base_url, None);
    assert_eq!(c.jangar.request_timeout, Duration::from_secs(10));
    assert_eq!((c.jangar.retries, c.jangar.clickhouse_database), (2, None));
    let text = "[jangar]\nbase_url = \"http://j\"\nrequest_timeout_ms = 1500\nretries = 0\n\
                max_freshness_secs = 60\nlive_symbol = \"NVDA\"\nclickhouse_database = \"a\"";
    let c = load(text, &[(env::JANGAR_CLICKHOUSE_DATABASE, "torghut")]).unwrap();
    assert_eq!(c.jangar.base_url.as_deref(), Some("http://j"));
    assert_eq!(c.jangar.request_timeout, Duration::from_millis(1500));
    assert_eq!(c.jangar.max_freshness, Duration::from_secs(60));
    assert_eq!(c.jangar.live_symbol.as_deref(), Some("NVDA"));
    // Reading Jangar's production database for the comparison is not a production target.
    assert_eq!(c.jangar.clickhouse_database.as_deref(), Some("torghut"));
    assert_eq!(c.jangar.retries, 0);
}

#[test]
fn strict_contract_from_file_and_env() {
    assert!(!load("", &[]).unwrap().jangar.strict_contract);
    let file = "[jangar]\nstrict_contract = true";
    assert!(load(file, &[]).unwrap().jangar.strict_contract);
    let off = load(file, &[(env::JANGAR_STRICT_CONTRACT, "0")]).unwrap();
    assert!(!off.jangar.strict_contract, "the environment wins");
    let err = load("", &[(env::JANGAR_STRICT_CONTRACT, "maybe")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("TORGHUT_E2E_JANGAR_STRICT_CONTRACT"),
        "{err}"
    );
}

/// The error for `text` (plus `vars`): a config error, naming `key`.
fn refused(text: &str, vars: &[(&str, &str)], key: &str) -> String {
    let err = load(text, vars).expect_err(text).to_string();
    assert!(err.contains(key), "{text:?} {vars:?}: {err}");
    err
}

#[test]
fn malformed_targets_are_config_errors_naming_the_key() {
    for (text, key) in [
        ("[kafka]\nbootstrap = \"\"", "kafka.bootstrap"),
        ("[kafka]\nbootstrap = \" , \"", "kafka.bootstrap"),
        ("[kafka]\nbootstrap = \"broker:port\"", "kafka.bootstrap"),
        ("[kafka]\nbootstrap = \"broker:70000\"", "kafka.bootstrap"),
        ("[kafka]\nbootstrap = \"a:9092,b:0\"", "kafka.bootstrap"),
        ("[kafka]\nbootstrap = \"FTP://a:9092\"", "kafka.bootstrap"),
        (
            "[kafka]\ntrades_topic = \"has space\"",
            "kafka.trades_topic",
        ),
        ("[clickhouse]\nurl = \"http://ch:abc\"", "clickhouse.url"),
        ("[clickhouse]\nurl = \"http://ch:65536\"", "clickhouse.url"),
        ("[clickhouse]\nurl = \"http://ch:0\"", "clickhouse.url"),
        ("[clickhouse]\nurl = \"ch:8123\"", "clickhouse.url"),
        ("[clickhouse]\nurl = \"http://\"", "clickhouse.url"),
        ("[jangar]\nbase_url = \"not a url\"", "jangar.base_url"),
        ("[webdriver]\nurl = \"http://wd:99999\"", "webdriver.url"),
        ("connect_timeout_ms = 0", "connect_timeout_ms"),
        (
            "connect_timeout_ms = 18446744073709551615",
            "connect_timeout_ms",
        ),
        (
            "[jangar]\nrequest_timeout_ms = 0",
            "jangar.request_timeout_ms",
        ),
        ("[jangar]\nretries = 4000000000", "jangar.retries"),
        (
            "[jangar]\nmax_freshness_secs = 0",
            "jangar.max_freshness_secs",
        ),
    ] {
        refused(text, &[], key);
    }
    // Ports and IPv6 literals that are fine.
    let c = load(
        "[kafka]\nbootstrap = \"a:9092, [::1]:9093,SASL_SSL://b:1,c\"",
        &[],
    )
    .unwrap();
    assert!(c.kafka.bootstrap.starts_with("a:9092"));
}

#[test]
fn an_env_override_does_not_hide_a_broken_file_value() {
    let overridden = [
        (
            "[clickhouse]\nurl = \"http://ch:99999\"",
            env::CLICKHOUSE_URL,
            "http://ok:8123",
            "clickhouse.url",
        ),
        (
            "[kafka]\nbootstrap = \"\"",
            env::KAFKA_BOOTSTRAP,
            "ok:9092",
            "kafka.bootstrap",
        ),
        ("lane = \"staging\"", env::LANE, "sim", "lane"),
        (
            "[jangar]\nbase_url = \"jangar\"",
            env::JANGAR_URL,
            "http://ok",
            "jangar.base_url",
        ),
    ];
    for (text, var, good, key) in overridden {
        refused(text, &[(var, good)], key);
    }
    // And a broken variable over a good file value is named by the variable.
    refused(
        "[clickhouse]\nurl = \"http://ch:8123\"",
        &[(env::CLICKHOUSE_URL, "http://ch:port")],
        env::CLICKHOUSE_URL,
    );
    // A password file named in the file is checked as a path even when the environment
    // gives the password (it need not exist here: it may be a secret mounted elsewhere).
    refused(
        "[clickhouse]\npassword_file = \"\"",
        &[
            (env::CLICKHOUSE_PASSWORD, "pw"),
            (env::KAFKA_PASSWORD, "pw"),
        ],
        "clickhouse password file",
    );
    let elsewhere = "[clickhouse]\npassword_file = \"/var/run/secrets/ch/password\"";
    let vars = [
        (env::CLICKHOUSE_PASSWORD, "pw"),
        (env::KAFKA_PASSWORD, "pw"),
    ];
    assert!(load(elsewhere, &vars).is_ok());
}

#[test]
fn a_missing_ca_file_fails_when_tls_is_used() {
    let text = "[kafka]\nsecurity_protocol = \"SASL_SSL\"\nca_file = \"/nonexistent/ca.pem\"";
    refused(text, &[], "kafka.ca_file");
    refused(
        "[kafka]\nsecurity_protocol = \"SSL\"",
        &[(env::KAFKA_CA_FILE, "/nonexistent/env-ca.pem")],
        env::KAFKA_CA_FILE,
    );
    // Without TLS the CA bundle is not used, so not opened.
    let plain =
        "[kafka]\nsecurity_protocol = \"SASL_PLAINTEXT\"\nca_file = \"/nonexistent/ca.pem\"";
    assert!(load(plain, &[]).is_ok());
    let ca = std::env::temp_dir().join(format!("t2e-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let text = format!(
        "[kafka]\nsecurity_protocol = \"SSL\"\nca_file = {:?}",
        ca.display().to_string()
    );
    let c = load(&text, &[]);
    std::fs::remove_file(&ca).ok();
    assert_eq!(c.unwrap().kafka.ca_file, Some(ca));
}

#[test]
fn url_credentials_move_into_the_clients_auth() {
    let c = load(
        "[clickhouse]\nurl = \"http://ch-user:s%40cret%2F1@ch:8123\"\n\
         [jangar]\nbase_url = \"https://j-user:j%20pw@jangar.svc/\"",
        &[],
    )
    .unwrap();
    assert_eq!(c.clickhouse.url, "http://ch:8123");
    assert_eq!(c.clickhouse.user, "ch-user");
    assert_eq!(c.clickhouse.password.expose(), "s@cret/1");
    assert_eq!(c.jangar.base_url.as_deref(), Some("https://jangar.svc"));
    let auth = c.jangar.auth.as_ref().unwrap();
    assert_eq!(
        (auth.user.as_str(), auth.password.expose()),
        ("j-user", "j pw")
    );
    assert!(auth.header().is_sensitive());
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("cret") && !shown.contains("j pw"),
        "{shown}"
    );
    assert_eq!(c.secrets(), vec!["pw", "s@cret/1", "j pw"]);
    // ClickHouse's own credential parameters move too; other parameters stay.
    let c = load(
        "[clickhouse]\nurl = \"http://ch:8123/?password=qp&x=1\"",
        &[],
    )
    .unwrap();
    assert_eq!(c.clickhouse.url, "http://ch:8123/?x=1");
    assert_eq!(c.clickhouse.password.expose(), "qp");
}

#[test]
fn credentials_given_twice_must_agree() {
    let text = "[clickhouse]\nurl = \"http://a:pw1@ch:8123\"";
    refused(text, &[(env::CLICKHOUSE_PASSWORD, "pw2")], "give it once");
    refused(text, &[(env::CLICKHOUSE_USER, "b")], "give it once");
    let same = load(
        text,
        &[
            (env::CLICKHOUSE_PASSWORD, "pw1"),
            (env::CLICKHOUSE_USER, "a"),
        ],
    );
    assert_eq!(same.unwrap().clickhouse.password.expose(), "pw1");
    // The WebDriver client cannot authenticate: its URL must not carry credentials.
    refused(
        "[webdriver]\nurl = \"http://u:p@wd:9515\"",
        &[],
        "webdriver.url",
    );
}

#[test]
fn an_invalid_url_is_shown_without_its_credentials() {
    let err = refused(
        "[clickhouse]\nurl = \"http://u:hunter22@ch:99999\"",
        &[],
        "clickhouse.url",
    );
    assert!(!err.contains("hunter22"), "{err}");
    let err = refused(
        "[kafka]\nbootstrap = \"u:hunter22@broker:9092\"",
        &[],
        "kafka.bootstrap",
    );
    assert!(!err.contains("hunter22"), "{err}");
    let err = refused(
        "[jangar]\nbase_url = \"ftp://u:hunter22@j\"",
        &[],
        "jangar.base_url",
    );
    assert!(!err.contains("hunter22"), "{err}");
}

#[test]
fn oversized_config_and_secret_files_are_refused_unread() {
    let dir = std::env::temp_dir().join(format!("t2e-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.toml");
    std::fs::write(&big, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
    let err = Config::load(Some(&big)).unwrap_err().to_string();
    assert!(err.contains("larger than"), "{err}");
    let pw = dir.join("pw");
    std::fs::write(&pw, "x".repeat(MAX_SECRET_BYTES as usize + 1)).unwrap();
    let err = load(
        &format!("[kafka]\npassword_file = {:?}", pw.display().to_string()),
        &[],
    )
    .unwrap_err()
    .to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn output_topics_follow_the_lane_and_can_be_overridden() {
    let c = load("", &[]).unwrap();
    assert!(c.outputs.enabled);
    assert_eq!(c.outputs.bars_topic, "torghut.sim.ta.bars.1s.v1");
    assert_eq!(c.outputs.signals_topic, "torghut.sim.ta.signals.v1");
    assert_eq!(c.outputs.status_topic, "torghut.sim.ta.status.v1");
    assert_eq!(c.outputs.status_interval, Duration::from_secs(60));
    assert_eq!(c.outputs.schema_registry_url, None);
    let c = load(
        "lane = \"prod\"\nallow_production = true\n[outputs]\nsignals_topic = \"x.signals\"\n\
         status_interval_ms = 2000\nenabled = false",
        &[],
    )
    .unwrap();
    assert_eq!(c.outputs.bars_topic, "torghut.ta.bars.1s.v1");
    assert_eq!(c.outputs.signals_topic, "x.signals");
    assert_eq!(c.outputs.status_interval, Duration::from_secs(2));
    assert!(!c.outputs.enabled);
    let on = load("[outputs]\nenabled = false", &[(env::CHECK_OUTPUTS, "1")]).unwrap();
    assert!(on.outputs.enabled);
    let fast = load("", &[(env::STATUS_INTERVAL_MS, "1000")]).unwrap();
    assert_eq!(fast.outputs.status_interval, Duration::from_secs(1));
    for bad in ["1s", "999"] {
        let err = load("", &[(env::STATUS_INTERVAL_MS, bad)]).unwrap_err();
        assert!(err.to_string().contains(env::STATUS_INTERVAL_MS), "{err}");
    }
    for (text, name) in [
        (
            "[outputs]\nstatus_topic = \"has space\"",
            "outputs.status_topic",
        ),
        (
            "[outputs]\nstatus_interval_ms = 10",
            "outputs.status_interval_ms",
        ),
        (
            "[outputs]\nschema_registry_url = \"ftp://x\"",
            "outputs.schema_registry_url",
        ),
    ] {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains(name), "{text}: {err}");
    }
}

#[test]
fn registry_credentials_leave_the_url_and_are_redacted() {
    let c = load(
        "",
        &[(
            env::SCHEMA_REGISTRY_URL,
            "http://reg:s3cret-reg@127.0.0.1:8081/apis/ccompat/v7/",
        )],
    )
    .unwrap();
    assert_eq!(
        c.outputs.schema_registry_url.as_deref(),
        Some("http://127.0.0.1:8081/apis/ccompat/v7")
    );
    let auth = c.outputs.registry_auth.as_ref().unwrap();
    assert_eq!(auth.user, "reg");
    assert!(c.secrets().contains(&"s3cret-reg"));
}

#[test]
fn the_quote_freshness_window_is_productions_unless_the_deployment_says_otherwise() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.ta.quote_stale_after_ms, 15_000);
    assert_eq!(c.ta.signal_config().quote_stale_after_ms, 15_000);
    // A deployment that keeps the job's code default, and one that turns the limit off.
    let c = load("[ta]\nquote_stale_after_ms = 2000", &[]).unwrap();
    assert_eq!(c.ta.quote_stale_after_ms, 2_000);
    let c = load("[ta]\nquote_stale_after_ms = -1", &[]).unwrap();
    assert_eq!(c.ta.quote_stale_after_ms, -1);
    let c = load(
        "[ta]\nquote_stale_after_ms = 2000",
        &[(env::TA_QUOTE_STALE_AFTER_MS, "3000")],
    )
    .unwrap();
    assert_eq!(c.ta.quote_stale_after_ms, 3_000, "the variable wins");
    for bad in ["15s", "86400001", "1.5"] {
        let err = load("", &[(env::TA_QUOTE_STALE_AFTER_MS, bad)]).unwrap_err();
        assert!(
            err.to_string().contains(env::TA_QUOTE_STALE_AFTER_MS),
            "{err}"
        );
    }
    let err = load("[ta]\nquote_stale_after_ms = 90000000", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ta.quote_stale_after_ms"), "{err}");
    let err = load("[ta]\nquote_stale = 1", &[]).unwrap_err().to_string();
    assert!(err.contains("quote_stale"), "{err}");
}
