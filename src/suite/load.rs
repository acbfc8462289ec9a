//! What a run reads before anything is published: the configuration, the scenario files (of
//! one shard of the suite), the page model; every problem at once.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::Config;
use crate::domain::pool::PoolName;
use crate::domain::scenario::{self, Event, Limits, Scenario, Stage};
use crate::stage::browser::model::{PageModel, MODEL_ENV};

/// What to run and against what.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Scenario files or directories of them (`*.toml`).
    pub scenarios: Vec<PathBuf>,
    /// Config file; `TORGHUT_E2E_*` variables override it.
    pub config: Option<PathBuf>,
    pub shard: Option<Shard>,
    /// Reuse this reserved pool's symbols instead of fresh ones per run.
    pub pool: Option<PoolName>,
    pub limits: Limits,
    /// At most this many scenarios at once (default: [`DEFAULT_JOBS`]).
    pub jobs: Option<usize>,
}

/// Scenarios run at once unless `--jobs` says otherwise: every shipped one, with room; a
/// bound all the same, since each holds its rows, its evidence and maybe a browser.
pub const DEFAULT_JOBS: usize = 8;

/// A suite ready to run: its configuration and (this shard's) scenarios.
pub struct Suite {
    pub config: Config,
    pub scenarios: Vec<Scenario>,
    pub shard: Option<Shard>,
    pub pool: Option<PoolName>,
    /// How many scenarios run at once (1: one after another, in file order).
    pub jobs: usize,
}

/// Why a suite cannot run: every problem, each a line for the operator (a usage or
/// configuration error: nothing was published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    fn one(line: impl Into<String>) -> Self {
        Problems(vec![line.into()])
    }
}

/// Loads the configuration, the scenarios and every input file the run will read. Nothing is
/// published before this has passed.
pub fn load(options: &SuiteOptions) -> Result<Suite, Problems> {
    let config = Config::load(options.config.as_deref())
        .map_err(|e| Problems::one(format!("torghut-e2e: {e}")))?;
    let scenarios = load_scenarios(&options.scenarios, options.shard, &options.limits)?;
    if options.pool.is_some() {
        pool_aliases_unique(&scenarios)?;
        pool_without_minute_bars(&scenarios)?;
        pool_with_quote_age_limit(&config)?;
    }
    if scenarios.iter().any(|s| s.stages.contains(&Stage::Browser)) {
        // The page model is an input like the scenarios: a broken one is the operator's
        // mistake, not a finding about the pipeline after a run has published.
        PageModel::load_default()
            .map_err(|e| Problems::one(format!("torghut-e2e: {MODEL_ENV}: {e}")))?;
    }
    let jobs = jobs(options, &scenarios);
    Ok(Suite {
        config,
        scenarios,
        shard: options.shard,
        pool: options.pool.clone(),
        jobs,
    })
}

/// How many scenarios run at once. A pool's scenarios share its clock symbol and are each
/// predicted from a history the others write to: they run one at a time.
fn jobs(options: &SuiteOptions, scenarios: &[Scenario]) -> usize {
    let asked = options.jobs.unwrap_or(DEFAULT_JOBS).max(1);
    if options.pool.is_some() {
        if asked > 1 && options.jobs.is_some() {
            tracing::warn!(
                jobs = asked,
                "a pool's scenarios run one at a time (they share the pool's clock symbol)"
            );
        }
        return 1;
    }
    if let (true, Some((alias, first, second))) = (asked > 1, shared_alias(scenarios)) {
        // One run, one symbol per alias: together both would publish to it at once. One
        // after the other, the second finds the first's rows and says so, as it always has.
        tracing::warn!(
            alias,
            first = %first.path.display(),
            second = %second.path.display(),
            "two scenarios share a symbol alias: the suite runs one scenario at a time"
        );
        return 1;
    }
    asked.min(scenarios.len()).max(1)
}

/// Loads every file (of the shard, when given); every problem when any.
pub fn load_scenarios(
    paths: &[PathBuf],
    shard: Option<Shard>,
    limits: &Limits,
) -> Result<Vec<Scenario>, Problems> {
    let mut files =
        scenario::collect(paths).map_err(|e| Problems::one(format!("torghut-e2e: {e}")))?;
    if files.is_empty() {
        return Err(Problems::one("torghut-e2e: no scenario files found"));
    }
    if let Some(shard) = shard {
        // Every shard must see the same order, whatever order the paths were given in.
        files.sort();
        files.dedup();
        let total = files.len();
        files = shard.select(files);
        tracing::info!(%shard, files = files.len(), total, "running one shard of the suite");
        if files.is_empty() {
            // More shards than files (an Indexed Job sized for a larger suite): this shard has
            // nothing to check, which is not a failure of the pipeline.
            tracing::warn!(%shard, total, "this shard has no scenario file; only preflight runs");
        }
    }
    let mut scenarios = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match scenario::load_with(&f, limits) {
            Ok(s) => scenarios.push(s),
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        Ok(scenarios)
    } else {
        Err(Problems(problems))
    }
}

/// In a pool an alias names one symbol for the whole suite: two scenarios sharing it would
/// each change the history the other is predicted from.
fn pool_aliases_unique(scenarios: &[Scenario]) -> Result<(), Problems> {
    match shared_alias(scenarios) {
        None => Ok(()),
        Some((alias, first, second)) => Err(Problems::one(format!(
            "torghut-e2e: symbol alias {alias:?} is used by {} and {}: with --pool every \
             alias must belong to one scenario",
            first.path.display(),
            second.path.display()
        ))),
    }
}

/// A pool symbol's history seeds the 1-second path only: the job's 1-minute operator of a
/// reused symbol keeps bars, session sums and quote from earlier runs that the oracle does not
/// read back, so a prediction would fail on the pipeline's behalf. Refused before publishing.
fn pool_without_minute_bars(scenarios: &[Scenario]) -> Result<(), Problems> {
    match scenarios
        .iter()
        .find(|s| s.events.iter().any(|e| matches!(e, Event::Bar(_))))
    {
        None => Ok(()),
        Some(s) => Err(Problems::one(format!(
            "torghut-e2e: {} publishes 1-minute bars, which --pool does not support (a reused \
             symbol's 1-minute history is not seeded): run it with fresh symbols",
            s.path.display()
        ))),
    }
}

/// A reused symbol's last quote is not read back from its history: the run waits until it is
/// too old to attach. With the job's age limit off it never is, and the prediction would fail
/// on the pipeline's behalf. Refused before publishing.
fn pool_with_quote_age_limit(config: &Config) -> Result<(), Problems> {
    if config.ta.quote_stale_after_ms > 0 {
        return Ok(());
    }
    Err(Problems::one(format!(
        "torghut-e2e: --pool needs the TA job's quote-age limit (ta.quote_stale_after_ms is {}, \
         i.e. none): a reused symbol's last quote would reach the run's bars. Run with fresh \
         symbols",
        config.ta.quote_stale_after_ms
    )))
}

/// An alias two scenarios share (so, in one run, one symbol), with the two.
fn shared_alias(scenarios: &[Scenario]) -> Option<(&str, &Scenario, &Scenario)> {
    let mut owner: HashMap<&str, &Scenario> = HashMap::new();
    for s in scenarios {
        for alias in &s.symbols {
            if let Some(first) = owner.insert(alias, s) {
                return Some((alias, first, s));
            }
        }
    }
    None
}

/// One share of a suite split across N workers: files at positions ≡ index (mod count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Keeps this shard's items; `items` must already be in a stable (sorted) order.
    pub fn select<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, t)| t)
            .collect()
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(alias: &str) -> Scenario {
        let text = format!(
            "name = \"{alias}\"\nsymbols = [\"{alias}\"]\n[[trades]]\nsymbol = \"{alias}\"\n\
             at_ms = 0\nprice = 1.0\nsize = 1.0\n"
        );
        scenario::parse(&text, std::path::Path::new("x.toml")).unwrap()
    }

    fn options(jobs: Option<usize>, pool: bool) -> SuiteOptions {
        SuiteOptions {
            scenarios: Vec::new(),
            config: None,
            shard: None,
            pool: pool.then(|| "CANARY".parse().unwrap()),
            limits: Limits::default(),
            jobs,
        }
    }

    #[test]
    fn jobs_default_to_every_scenario_up_to_the_bound() {
        let three: Vec<Scenario> = ["A", "B", "C"].map(scenario).into();
        assert_eq!(jobs(&options(None, false), &three), 3);
        assert_eq!(jobs(&options(Some(2), false), &three), 2);
        assert_eq!(jobs(&options(Some(1), false), &three), 1);
        let many: Vec<Scenario> = (0..20).map(|i| scenario(&format!("S{i}"))).collect();
        assert_eq!(jobs(&options(None, false), &many), DEFAULT_JOBS);
    }

    #[test]
    fn a_pool_or_a_shared_alias_runs_one_at_a_time() {
        let three: Vec<Scenario> = ["A", "B", "C"].map(scenario).into();
        assert_eq!(jobs(&options(Some(3), true), &three), 1);
        let shared: Vec<Scenario> = ["A", "B", "A"].map(scenario).into();
        assert_eq!(jobs(&options(None, false), &shared), 1);
    }

    #[test]
    fn a_pool_needs_the_jobs_quote_age_limit() {
        let config = |text: &str| {
            let none = std::collections::HashMap::<String, String>::new();
            Config::from_toml(text, std::path::Path::new("t.toml"), &none).unwrap()
        };
        assert!(pool_with_quote_age_limit(&config("")).is_ok());
        assert!(pool_with_quote_age_limit(&config("[ta]\nquote_stale_after_ms = 2000")).is_ok());
        for off in ["0", "-1"] {
            let text = format!("[ta]\nquote_stale_after_ms = {off}");
            let err = pool_with_quote_age_limit(&config(&text)).unwrap_err();
            assert!(format!("{err:?}").contains("quote-age limit"), "{err:?}");
        }
    }

    #[test]
    fn a_pool_refuses_minute_bars() {
        let trades: Vec<Scenario> = ["A", "B"].map(scenario).into();
        assert!(pool_without_minute_bars(&trades).is_ok());
        let bars = scenario::parse(
            "name = \"m\"\nsymbols = [\"M\"]\nbars = [{ symbol = \"M\", minute = 0, open = 1.0, \
             high = 1.0, low = 1.0, close = 1.0, volume = 1.0 }]\n",
            std::path::Path::new("m.toml"),
        )
        .unwrap();
        let err = pool_without_minute_bars(&[bars]).unwrap_err();
        assert!(
            format!("{err:?}").contains("m.toml publishes 1-minute bars"),
            "{err:?}"
        );
    }

    #[test]
    fn shard_parses_and_rejects_out_of_range() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 0, count: 3 }.to_string(), "0/3");
    }

    #[test]
    fn shards_partition_the_suite() {
        let files: Vec<u32> = (0..10).collect();
        let mut seen = Vec::new();
        for index in 0..3 {
            let part = Shard { index, count: 3 }.select(files.clone());
            assert!(part.iter().all(|f| f % 3 == index as u32), "{part:?}");
            seen.extend(part);
        }
        seen.sort();
        assert_eq!(seen, files, "every file in exactly one shard");
        assert_eq!(Shard { index: 0, count: 1 }.select(files.clone()), files);
    }
}
