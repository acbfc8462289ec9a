//! What the cells break: closed and black-holed ports, a TCP proxy that freezes, a private
//! Kafka broker and chromedriver (each leading its process group), scratch directories.

use super::*;

/// A loopback port nothing listens on (tcpmux: a free port picked here could be taken by
/// another cell's private server meanwhile).
pub(super) fn closed_port() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// `n` distinct ports free now.
pub(super) fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub(super) fn local(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    format!("127.0.0.1:{}", u.port().unwrap()).parse().unwrap()
}

/// A TCP proxy that can freeze: from then on it accepts connections and holds them open
/// without a byte in either direction (new ones and those in flight), as a stopped server does.
/// Without an upstream it is a black hole from the first connection.
pub(super) struct Proxy {
    pub(super) addr: SocketAddr,
    pub(super) state: Arc<ProxyState>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

pub(super) struct ProxyState {
    pub(super) frozen: watch::Sender<bool>,
    pub(super) frozen_at: Mutex<Option<Instant>>,
    pub(super) connections: AtomicUsize,
    /// Freeze when this connection (1-based) arrives.
    pub(super) freeze_from: Option<usize>,
}

impl ProxyState {
    pub(super) fn freeze(&self) {
        let mut at = self.frozen_at.lock().unwrap();
        if at.is_none() {
            *at = Some(Instant::now());
        }
        self.frozen.send_replace(true);
    }

    pub(super) fn frozen_at(&self) -> Option<Instant> {
        *self.frozen_at.lock().unwrap()
    }
}

impl Proxy {
    pub(super) async fn start(upstream: Option<SocketAddr>, freeze_from: Option<usize>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            frozen: watch::channel(false).0,
            frozen_at: Mutex::new(None),
            connections: AtomicUsize::new(0),
            freeze_from,
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.freeze_from.is_some_and(|k| n >= k) {
                    shared.freeze();
                }
                connections.spawn(relay(client, upstream, shared.frozen.subscribe()));
            }
        });
        Proxy { addr, state, task }
    }

    pub(super) fn freeze(&self) {
        self.state.freeze();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until the proxy freezes; then holds both sockets, silent, for ever.
pub(super) async fn relay(
    mut client: TcpStream,
    upstream: Option<SocketAddr>,
    mut frozen: watch::Receiver<bool>,
) {
    let frozen_now = *frozen.borrow_and_update();
    let Some(up) = upstream.filter(|_| !frozen_now) else {
        std::future::pending::<()>().await;
        return;
    };
    let Ok(mut server) = TcpStream::connect(up).await else {
        let _ = client.shutdown().await;
        return;
    };
    let freeze = async {
        let _ = frozen.wait_for(|f| *f).await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = freeze => std::future::pending::<()>().await,
    }
}

/// Whatever a cell holds until it ends.
#[derive(Default)]
pub(super) struct Guard {
    pub(super) proxy: Option<Proxy>,
}

pub(super) struct PrivateKafka {
    pub(super) dir: PathBuf,
    pub(super) pid: i32,
    pub(super) plain: u16,
}

impl PrivateKafka {
    /// `scripts/stack up` with only Kafka, in a scratch STACK_DIR on free ports: formatted, the
    /// lane's topics created.
    pub(super) async fn start(scratch: &Path) -> PrivateKafka {
        let dir = scratch.join("kafka-stack");
        let ports = free_ports(3);
        let out = Command::new("scripts/stack")
            .arg("up")
            .current_dir(common_root())
            .env("STACK_DIR", &dir)
            .env("STACK_BACKEND", "native")
            .env("STACK_COMPONENTS", "kafka")
            .env("STACK_KAFKA_PORT", ports[0].to_string())
            .env("STACK_KAFKA_SASL_PORT", ports[1].to_string())
            .env("STACK_KAFKA_CONTROLLER_PORT", ports[2].to_string())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "private Kafka: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pidfile = std::fs::read_to_string(dir.join("run/kafka.pid")).unwrap();
        let pid = pidfile.split(' ').next().unwrap().trim().parse().unwrap();
        PrivateKafka {
            dir,
            pid,
            plain: ports[0],
        }
    }

    pub(super) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.plain)
    }

    pub(super) fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.pid, signal) };
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
            libc::killpg(self.pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) struct PrivateChromedriver {
    pub(super) child: std::process::Child,
    pub(super) pid: i32,
    pub(super) url: String,
    pub(super) log: PathBuf,
}

impl PrivateChromedriver {
    pub(super) async fn start(scratch: &Path) -> PrivateChromedriver {
        let port = free_ports(1)[0];
        let log = scratch.join("chromedriver.log");
        let child = std::process::Command::new(
            torghut_e2e::adapter::webdriver::chromedriver_program().expect("chromedriver"),
        )
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while torghut_e2e::adapter::webdriver::probe(&url, Duration::from_secs(1))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "private chromedriver not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PrivateChromedriver {
            pid: child.id() as i32,
            child,
            url,
            log,
        }
    }

    /// Waits until the client has loaded its first page (the log line of the navigation's
    /// answer comes just before the answer is sent). The page's scripts follow for seconds, so
    /// a stop now lands on a script, never on a navigation.
    pub(super) async fn first_page_loaded(&self) {
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("] RESPONSE Navigate") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.pid, signal) };
    }
}

impl Drop for PrivateChromedriver {
    fn drop(&mut self) {
        // The chromedriver and the browsers it started: one process group.
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
            libc::killpg(self.pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

pub(super) fn common_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
