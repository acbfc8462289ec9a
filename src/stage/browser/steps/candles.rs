//! Step 2: the run's symbol (or the live one), Last 15m and 1s; the candles drawn must be the
//! bars Jangar returned, and for the run's symbol every bar ClickHouse holds.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::Value;

use super::calls::*;
use super::{empty_text, show_count, Checklist, Failure, Outcome, Problems};
use crate::stage::browser::expect;
use crate::stage::browser::session::{PageState, Trigger};
use crate::stage::browser::{PAGE_SETTLED, UI_TIMEOUT};

/// How long after the page counted its candles the chart may take to appear: ECharts is a
/// module of about a megabyte, fetched and compiled on first use.
const CHART_DRAWN: std::time::Duration = std::time::Duration::from_secs(10);

impl Checklist<'_> {
    pub(super) async fn candles(&mut self) -> Outcome {
        let chosen = self.chosen.clone().map_err(|none| Failure {
            hop: none.hop,
            message: none.why,
        })?;
        let symbol = chosen.symbol.clone();
        let m = self.model.clone();
        let mark = self.select_window(&symbol).await?;
        let load = self.wait_window_load(mark, &symbol).await?;
        let showing = m.showing(&symbol);
        let (settled, mut state) = self
            .session
            .poll(PAGE_SETTLED, |s| {
                !s.busy() && s.showing.as_deref() == Some(showing.as_str())
            })
            .await?;
        // The page imports ECharts on first use (as the real page's `import('echarts')`): on a
        // busy machine its canvas comes seconds after the page counted the candles.
        if settled && !state.canvas && PageState::count(&state.candles).is_some_and(|n| n > 0) {
            state = self.session.poll(CHART_DRAWN, |s| s.canvas).await?.1;
        }
        self.save_json("02-bars.json", &load.bars);
        self.save_json("02-signals.json", &load.signals);
        self.save_json("02-latest.json", &load.latest);
        let mut problems = Problems::default();
        if !settled {
            problems.page(format!(
                "the page did not settle on \"{}\" within {} s of Jangar's answers: it shows \
                 {:?}{}",
                showing,
                PAGE_SETTLED.as_secs(),
                state.showing,
                if state.busy() {
                    " and is still loading"
                } else {
                    ""
                }
            ));
        }
        self.check_params(&load, &mut problems);
        let expected = self.check_candles(&load, &state, settled, &mut problems);
        let mut detail = format!(
            "{symbol} ({}): data-candle-count {} = the {expected} candles of /ta/bars (limit {}); \
             no empty-state text",
            if chosen.synthetic {
                "the run's symbol"
            } else {
                "live symbol"
            },
            show_count(PageState::count(&state.candles)),
            load.bars.param("limit").unwrap_or_default()
        );
        if chosen.synthetic {
            detail.push_str(&self.check_bars_stored(&load, &mut problems));
            let shown = PageState::count(&state.candles);
            detail.push_str(&self.candles_vs_oracle(&load, shown, &mut problems));
        }
        let note = self.triangulate(&load, &mut problems);
        detail.push_str(&note);
        self.pill_after_load = state.lag.clone().map(|p| (p, Instant::now()));
        self.charted = Some(symbol);
        self.load = Some(load);
        problems.outcome(detail)
    }

    /// The candles the page must draw for the bars it got, against what it shows; their count.
    /// The chart is judged only on a page that settled (one that did not is named as such).
    fn check_candles(
        &self,
        load: &Load,
        state: &PageState,
        settled: bool,
        problems: &mut Problems,
    ) -> usize {
        let m = &self.model;
        let rows = load.bars_rows();
        let expected = expect::candle_count(rows, &m.candles);
        let shown = PageState::count(&state.candles);
        if load.bars.status != Some(200) {
            problems.api(format!(
                "no candles: {} answered {}; the page shows data-candle-count {} and the \
                 banner {:?}",
                call_name(&load.bars),
                status_text(&load.bars),
                show_count(shown),
                state.banner.as_deref().unwrap_or("(none)")
            ));
        } else if expected == 0 {
            problems.api(format!(
                "no candles: Jangar returned {} bars for {} in the last {} (none with a time \
                 and numeric o/h/l/c){}",
                rows.len(),
                symbol_of(&load.bars),
                m.window.range_value,
                fallback_note(&load.bars)
            ));
        }
        if shown != Some(expected) {
            problems.page(format!(
                "data-candle-count is {}, but the bars answer the page got has {expected} \
                 candles ({} rows)",
                show_count(shown),
                rows.len()
            ));
        }
        if expected > 0 {
            for key in ["no_bars", "no_candles"] {
                if state.shows(key) {
                    problems.page(format!(
                        "the page shows the empty-state text \"{}\" with {expected} candles",
                        empty_text(m, key)
                    ));
                }
            }
            if settled && !state.canvas {
                problems.page(format!(
                    "the price chart has no <canvas> {} s after the page counted its candles: \
                     ECharts drew nothing",
                    CHART_DRAWN.as_secs()
                ));
            }
        }
        expected
    }

    /// For the run's symbol: every bar ClickHouse holds must be in Jangar's answer.
    fn check_bars_stored(&self, load: &Load, problems: &mut Problems) -> String {
        let missing = self.missing_rows(load, load.bars_rows(), Table::Bars);
        match missing.first {
            None => format!("; all {} bars ClickHouse holds are there", missing.stored),
            Some(first) => {
                problems.api(format!(
                    "Jangar's bars for {} lack {} of the {} rows ClickHouse holds in the window \
                     (first missing {})",
                    symbol_of(&load.bars),
                    missing.count,
                    missing.stored,
                    key_text(first)
                ));
                String::new()
            }
        }
    }

    /// Picks the symbol, Last 15m and 1s, changing only what is not already so; returns the
    /// proxy mark taken before the last change (the load that counts starts after it).
    ///
    /// What is "already so" comes from what the chart shows (the `Showing …` line) for the
    /// symbol, since the symbol trigger may show its placeholder while a symbol is charted
    /// (`jangar.md` §6.2), and from the triggers' value slots for range and resolution, never
    /// from a trigger's whole text (`AMD▼`, §6.1). Picking the symbol already charted would
    /// send no request.
    pub(super) async fn select_window(&mut self, symbol: &str) -> Result<u64, Failure> {
        let charted = self.charted_symbol().await?;
        let m = &self.model;
        let state = self.session.snapshot().await?;
        let shows = |t: &Option<Trigger>, values: &[&str]| {
            t.as_ref()
                .and_then(Trigger::value)
                .is_some_and(|v| values.contains(&v))
        };
        let w = &m.window;
        let mut changes: Vec<(&str, &str)> = Vec::new();
        if charted.as_deref() != Some(symbol) {
            changes.push((&m.selectors.symbol, symbol));
        }
        if !shows(&state.range, &[&w.range_value, &w.range_label]) {
            changes.push((&m.selectors.range, &w.range_label));
        }
        if !shows(
            &state.resolution,
            &[&w.resolution_value, &w.resolution_label],
        ) {
            changes.push((&m.selectors.resolution, &w.resolution_label));
        }
        let Some(((last_trigger, last_label), before)) = changes.split_last() else {
            // Everything is already so: Refresh makes the load this step observes.
            let mark = self.proxy.mark();
            self.click_refresh().await?;
            return Ok(mark);
        };
        for (trigger, label) in before {
            self.session.choose(trigger, label, UI_TIMEOUT).await?;
        }
        let mark = self.proxy.mark();
        self.session
            .choose(last_trigger, last_label, UI_TIMEOUT)
            .await?;
        Ok(mark)
    }

    /// The page must ask for the window the step chose (otherwise the limit truncates).
    pub(super) fn check_params(&self, load: &Load, problems: &mut Problems) {
        let w = &self.model.window;
        let sent = (
            load.bars.param("range"),
            load.bars.param("resolution"),
            load.bars.param("limit"),
        );
        let wanted = (
            Some(w.range_value.clone()),
            Some(w.resolution_value.clone()),
            Some(w.limit.to_string()),
        );
        if sent != wanted {
            problems.page(format!(
                "the page asked for range={:?} resolution={:?} limit={:?}, expected {}/{}/{}",
                sent.0, sent.1, sent.2, w.range_value, w.resolution_value, w.limit
            ));
        }
    }

    /// The rows ClickHouse held for the symbol at the end of the ClickHouse stage (inside the
    /// requested window) that Jangar's answer lacks.
    pub(super) fn missing_rows(&self, load: &Load, rows: &[Value], table: Table) -> Missing {
        let symbol = self
            .chosen
            .as_ref()
            .map(|c| c.symbol.as_str())
            .unwrap_or("");
        let (from, to) = load.window_ms().unwrap_or((i64::MIN, i64::MAX));
        let keys: Vec<(i64, u64)> = match table {
            Table::Bars => self
                .ctx
                .stored_bars
                .iter()
                .filter(|b| b.symbol == symbol)
                .map(|b| (unix_ms_of(b.event_ts), b.seq))
                .collect(),
            Table::Signals => self
                .ctx
                .stored_signals
                .iter()
                .filter(|s| s.symbol == symbol)
                .map(|s| (unix_ms_of(s.event_ts), s.seq))
                .collect(),
        };
        let stored: BTreeSet<(i64, u64)> = keys
            .into_iter()
            .filter(|(t, _)| (from..=to).contains(t))
            .collect();
        let got: BTreeSet<(i64, u64)> = expect::row_keys(rows, &self.model.candles.time)
            .into_iter()
            .collect();
        let missing: Vec<(i64, u64)> = stored.difference(&got).copied().collect();
        Missing {
            stored: stored.len(),
            count: missing.len(),
            first: missing.first().copied(),
        }
    }
}
