//! The fault matrix (issue 15): every target the validator talks to — Kafka, ClickHouse, the
//! WebDriver, Jangar — closed (nothing listens), black-holed (accepts, never answers) and
//! stopped in the middle of a run. Each cell runs `torghut-e2e run` and must get its verdict by
//! its bound, naming the right hop with the right exit code; a run stopped after publishing must
//! still report what it published.
//!
//! Only private stand-ins are broken: a port nothing listens on, a listener that never answers,
//! a TCP proxy in front of the local stack's ClickHouse or Jangar that freezes (holding every
//! connection open, as a SIGSTOPped server does), a Kafka broker of its own (`scripts/stack up`
//! in a scratch directory) and a chromedriver of its own, both SIGSTOPped. The stack's shared
//! processes are never signalled. All cells run at once; the table of times to verdict is
//! printed (`--nocapture`). `FAULT_CELLS=kafka,webdriver/stopped` runs a subset, `FAULT_KEEP=1`
//! keeps each cell's scratch directory (report, scenario, artifacts).

mod cells;
mod read_back;
mod run;
mod stand_ins;

use cells::*;
use read_back::*;
use run::*;
use stand_ins::*;

use crate::common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Every probe's and every WebDriver answer's bound in these runs (`connect_timeout_ms`); the
/// acknowledgement timeout is three of them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Jangar's per-call bound in these runs (`[jangar] request_timeout_ms`, no retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Margin on every bound for a loaded machine (process start, report writing).
const SLACK: Duration = Duration::from_secs(8);
/// No cell may take longer than this at all: past it the run is killed and the cell fails.
const HARD_CAP: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kafka,
    ClickHouse,
    WebDriver,
    Jangar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    BlackHoled,
    Stopped,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Kafka => "kafka",
            Target::ClickHouse => "clickhouse",
            Target::WebDriver => "webdriver",
            Target::Jangar => "jangar",
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::BlackHoled => "black-holed",
            Mode::Stopped => "stopped",
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_target_closed_black_holed_or_stopped_gets_its_verdict_in_time() {
    let filter = std::env::var("FAULT_CELLS").unwrap_or_default();
    let wanted = |t: Target, m: Mode| {
        filter.is_empty()
            || filter.split(',').any(|f| {
                let cell = format!("{}/{}", t.name(), m.name());
                cell.starts_with(f.trim())
            })
    };
    let mut cells = tokio::task::JoinSet::new();
    for target in [
        Target::Kafka,
        Target::ClickHouse,
        Target::WebDriver,
        Target::Jangar,
    ] {
        for mode in [Mode::Closed, Mode::BlackHoled, Mode::Stopped] {
            if wanted(target, mode) {
                cells.spawn(cell(target, mode));
            }
        }
    }
    let mut outcomes = Vec::new();
    while let Some(done) = cells.join_next().await {
        outcomes.push(done.expect("cell task"));
    }
    assert!(
        !outcomes.is_empty(),
        "FAULT_CELLS={filter:?} selects no cell"
    );
    outcomes.sort_by(|a, b| a.cell.cmp(&b.cell));
    let mut table = format!(
        "{:<24} {:>4}  {:<40} {:>9} {:>7} {:>9}\n",
        "cell", "exit", "hops", "verdict", "bound", "peak RSS"
    );
    for o in &outcomes {
        table.push_str(&format!(
            "{:<24} {:>4}  {:<40} {:>8.1}s {:>6.0}s {:>7} MB\n",
            o.cell,
            o.exit.map_or("-".into(), |c| c.to_string()),
            o.hops.join(","),
            o.verdict_after.as_secs_f64(),
            o.bound.as_secs_f64(),
            o.peak_rss_kb / 1024,
        ));
    }
    eprintln!("{table}");
    let problems: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.problems.iter().map(move |p| format!("{}: {p}", o.cell)))
        .collect();
    assert!(problems.is_empty(), "{}\n{table}", problems.join("\n\n"));
}
