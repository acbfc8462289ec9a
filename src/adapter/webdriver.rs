//! The WebDriver endpoint the browser stage drives (chromedriver, or any W3C WebDriver server).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WebDriverError {
    #[error("WebDriver at {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("WebDriver at {url} is not ready: {message}")]
    NotReady { url: String, message: String },
    #[error("WebDriver at {url} answered {status} to /status: {body}")]
    BadStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot start chromedriver {program}: {detail}")]
    Start { program: String, detail: String },
}

/// `GET /status` and require `value.ready == true` (W3C WebDriver §8.3).
pub async fn probe(url: &str, timeout: Duration) -> Result<String, WebDriverError> {
    let status_url = format!("{}/status", url.trim_end_matches('/'));
    let unreachable = |detail: String| WebDriverError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client
        .get(&status_url)
        .send()
        .await
        .map_err(|e| unreachable(describe(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| unreachable(describe(&e)))?;
    if status != 200 {
        return Err(WebDriverError::BadStatus {
            url: url.to_string(),
            status,
            body: body.chars().take(200).collect(),
        });
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| WebDriverError::BadStatus {
            url: url.to_string(),
            status,
            body: format!("not JSON ({e})"),
        })?;
    let value = &json["value"];
    let message = value["message"].as_str().unwrap_or_default().to_string();
    if value["ready"].as_bool() != Some(true) {
        return Err(WebDriverError::NotReady {
            url: url.to_string(),
            message,
        });
    }
    let version = value["build"]["version"]
        .as_str()
        .unwrap_or("unknown version");
    Ok(format!("ready ({version})"))
}

/// reqwest's Display hides the cause (e.g. "connection refused"); show the innermost one.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if error.is_timeout() {
        format!("timed out ({text})")
    } else {
        text
    }
}

/// Capabilities for headless Chromium: UTC, en-US, and none of Chromium's background network
/// traffic (the validator may run where only the targets are reachable).
pub fn chrome_capabilities(window: (u32, u32)) -> fantoccini::wd::Capabilities {
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--lang=en-US".into(),
        format!("--window-size={},{}", window.0, window.1),
    ];
    let mut options =
        serde_json::json!({ "args": args, "prefs": { "intl.accept_languages": "en-US" } });
    if let Some(binary) = chromium_binary() {
        options["binary"] = serde_json::Value::String(binary);
    }
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert("goog:chromeOptions".into(), options);
    // The console's messages, read back through ChromeDriver's log endpoint as run evidence.
    caps.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({ "browser": "ALL" }),
    );
    caps
}

/// Debian installs Chromium as /usr/bin/chromium, which chromedriver does not look for.
fn chromium_binary() -> Option<String> {
    std::env::var("TORGHUT_E2E_CHROMIUM").ok().or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
    })
}

/// Opens one browser session against a WebDriver server.
pub async fn connect(url: &str) -> Result<fantoccini::Client, fantoccini::error::NewSessionError> {
    connect_sized(url, (1280, 900)).await
}

/// [`connect`] with another window size (screenshots show the window, not the whole page).
pub async fn connect_sized(
    url: &str,
    window: (u32, u32),
) -> Result<fantoccini::Client, fantoccini::error::NewSessionError> {
    fantoccini::ClientBuilder::native()
        .capabilities(chrome_capabilities(window))
        .connect(url)
        .await
}

/// The chromedriver program: `TORGHUT_E2E_CHROMEDRIVER`, else `chromedriver` on `PATH`.
pub fn chromedriver_program() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("TORGHUT_E2E_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

/// A chromedriver the validator started because no WebDriver URL was configured. It runs with
/// `TZ=UTC` and an en-US locale, so the browsers it starts do too, and dies with this value.
///
/// It leads a process group of its own, which the Chromium processes it launches join: dropping
/// this value kills the whole group, so neither chromedriver nor a browser outlives the run,
/// also when a stop signal aborts it (`signals`). (A SIGKILL of the validator cannot be
/// handled: its chromedriver and browsers then stay until killed by group.)
pub struct LocalChromedriver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for LocalChromedriver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal; the group is the one this child leads
            // (process_group(0) at spawn), and the child is not reaped yet, so its id cannot
            // have been reused.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
        // `kill_on_drop` then reaps the chromedriver; the browsers are reaped by init.
    }
}

impl LocalChromedriver {
    /// Starts it on a free loopback port and waits until `/status` says ready.
    pub async fn start(timeout: Duration) -> Result<Self, WebDriverError> {
        let program = chromedriver_program().ok_or_else(|| WebDriverError::Start {
            program: "chromedriver".into(),
            detail: "not on PATH (set TORGHUT_E2E_CHROMEDRIVER or a WebDriver URL)".into(),
        })?;
        let shown = program.display().to_string();
        let fail = |detail: String| WebDriverError::Start {
            program: shown.clone(),
            detail,
        };
        let port = free_port().map_err(|e| fail(format!("no free port: {e}")))?;
        let mut child = tokio::process::Command::new(&program)
            .arg(format!("--port={port}"))
            .env("TZ", "UTC")
            .env("LANG", "en_US.UTF-8")
            .env("LANGUAGE", "en_US")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group, for the browsers too: see the Drop impl.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
                return Err(fail(format!("exited with {status} before it was ready")));
            }
            match probe(&url, Duration::from_millis(500)).await {
                Ok(_) => return Ok(Self { child, url }),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(fail(format!("not ready after {timeout:?}: {e}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The chromedriver's process id (its process group's too).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// A port the OS says is free now (chromedriver cannot report one it picked itself).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
