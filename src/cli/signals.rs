//! Stop requests: SIGTERM (Kubernetes, systemd, a CI timeout) and SIGINT (a terminal).
//!
//! The handlers replace the default action (die at once), so a stopped `run` or `canary` drops
//! what it was doing: the chromedriver it started and the browsers under it are killed by their
//! owners' `Drop` (see `webdriver::LocalChromedriver`), the producer and queries end, and the
//! report says what was published before the stop.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Which signal asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Term,
    Int,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Int => "SIGINT",
        }
    }
}

/// Both signals as one stream of stop requests.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next stop request.
    pub async fn requested(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Term,
            _ = self.int.recv() => Stop::Int,
        }
    }
}
