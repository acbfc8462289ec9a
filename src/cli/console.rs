//! What the command line shows while a suite runs: a spinner per scenario on a terminal, and
//! the suite's notices on stderr.

use std::collections::BTreeMap;
use std::sync::Mutex;

use indicatif::ProgressBar;

use super::progress;
use crate::domain::report::ScenarioReport;
use crate::domain::scenario::Scenario;
use crate::suite::Observer;

/// The terminal's view of a run: a spinner per running scenario (several when they run
/// concurrently), keyed by the scenario's file.
#[derive(Default)]
pub struct Console {
    spinners: Mutex<BTreeMap<std::path::PathBuf, ProgressBar>>,
}

impl Observer for Console {
    fn scenario_started(&self, index: usize, total: usize, s: &Scenario) {
        // Realtime scenarios publish for minutes and every scenario may wait up to its
        // deadline: on a terminal a spinner shows that the run is alive.
        let spinner = progress::spinner(format!(
            "[{}/{}] {}: {} events, {} pacing, deadline {} s",
            index + 1,
            total,
            s.name,
            s.events.len(),
            format!("{:?}", s.pacing).to_lowercase(),
            s.deadline.as_secs()
        ));
        if let Some(old) = self.lock().insert(s.path.clone(), spinner) {
            old.finish_and_clear();
        }
    }

    fn scenario_finished(&self, scenario: &Scenario, _report: &ScenarioReport) {
        if let Some(spinner) = self.lock().remove(&scenario.path) {
            spinner.finish_and_clear();
        }
    }

    fn notice(&self, line: &str) {
        errln!("{line}");
    }
}

impl Console {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<std::path::PathBuf, ProgressBar>> {
        self.spinners.lock().unwrap_or_else(|e| e.into_inner())
    }
}
