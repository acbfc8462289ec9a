//! Step 3: every indicator toggle both ways; the counts the page shows must be what the signals
//! it got give by its own rules, and toggling must send no request.

use std::time::Duration;

use serde_json::Value;

use super::calls::*;
use super::{api, page, show_count, Checklist, Failure, Outcome, Problems};
use crate::stage::browser::expect;
use crate::stage::browser::model::{PageModel, Panel};
use crate::stage::browser::proxy::Exchange;
use crate::stage::browser::session::PageState;
use crate::stage::browser::UI_TIMEOUT;

/// After the last toggle, how long the page has to (wrongly) send a request before it counts.
const QUIET: Duration = Duration::from_millis(150);

impl Checklist<'_> {
    pub(super) async fn indicators(&mut self) -> Outcome {
        let Some(load) = self.load.clone() else {
            return Err(page("no load from step 2"));
        };
        let m = self.model.clone();
        if load.signals.status != Some(200) {
            return Err(api(format!(
                "no overlays: {} answered {}",
                call_name(&load.signals),
                status_text(&load.signals)
            )));
        }
        let rows = load.signals_rows();
        let points = expect::toggle_points(rows, &m);
        let mut problems = Problems::default();
        for (key, _) in points.iter().filter(|(_, n)| *n == 0) {
            problems.api(format!(
                "none of the {} signals Jangar returned has a value for {}: the toggle draws \
                 nothing",
                rows.len(),
                toggle_name(&m, key)
            ));
        }
        let on = self.toggles_as_loaded(&points, &mut problems).await?;
        let mark = self.proxy.mark();
        self.walk_toggles(on, &points, &mut problems).await?;
        self.expect_no_requests(mark, &mut problems).await;
        let all: Vec<&str> = m.toggles.iter().map(|t| t.key.as_str()).collect();
        let overlay = expect::panel_count(&points, &m, Panel::Overlay, &all);
        let signal = expect::panel_count(&points, &m, Panel::Signal, &all);
        let mut vs_oracle = String::new();
        if self.chosen.as_ref().is_ok_and(|c| c.synthetic) {
            self.compare_with_clickhouse(&load, rows, overlay, &mut problems);
            vs_oracle = self.points_vs_oracle(&load, &mut problems);
        }
        let per_toggle: Vec<String> = points
            .iter()
            .map(|(k, n)| format!("{} {n}", toggle_name(&m, k)))
            .collect();
        problems.outcome(format!(
            "{} signals: {}; data-overlay-count and data-signal-count matched at every toggle \
             (all on: {overlay} overlay, {signal} signal points){vs_oracle}; no request while \
             toggling",
            rows.len(),
            per_toggle.join(", ")
        ))
    }

    /// The toggles checked as the page loaded (its defaults), with the counts they must give.
    async fn toggles_as_loaded(
        &mut self,
        points: &[(String, usize)],
        problems: &mut Problems,
    ) -> Result<Vec<String>, Failure> {
        let m = &self.model;
        let state = self.session.snapshot().await?;
        let checked = |key: &str| {
            state
                .toggles
                .get(key)
                .copied()
                .flatten()
                .is_some_and(|c| c.checked)
        };
        let on: Vec<String> = m
            .toggles
            .iter()
            .filter(|t| checked(&t.key))
            .map(|t| t.key.clone())
            .collect();
        let defaults: Vec<String> = m
            .toggles
            .iter()
            .filter(|t| t.default)
            .map(|t| t.key.clone())
            .collect();
        if on != defaults {
            self.quirks.push(format!(
                "the toggles did not start at the page's defaults ({}): found {}",
                defaults.join(", "),
                on.join(", ")
            ));
        }
        let signal_on = m
            .toggles
            .iter()
            .any(|t| t.panel == Panel::Signal && on.contains(&t.key));
        if !signal_on && !state.shows("enable_signals") {
            problems.page(format!(
                "with MACD and RSI off the page does not say \"{}\"",
                m.texts.enable_signals
            ));
        }
        self.expect_counts(&on, points, "as loaded", problems)
            .await?;
        Ok(on)
    }

    /// Turns off what is on, then turns everything on, so each toggle changes both ways; the
    /// counts are checked after every click.
    async fn walk_toggles(
        &self,
        mut on: Vec<String>,
        points: &[(String, usize)],
        problems: &mut Problems,
    ) -> Result<(), Failure> {
        let m = &self.model;
        let mut plan: Vec<(String, bool)> = on.iter().map(|k| (k.clone(), false)).collect();
        plan.extend(m.toggles.iter().map(|t| (t.key.clone(), true)));
        for (key, wanted) in plan {
            let name = toggle_name(m, &key);
            self.session.click("checkbox", name, UI_TIMEOUT).await?;
            if wanted {
                on.push(key.clone());
            } else {
                on.retain(|k| k != &key);
            }
            let when = format!("after turning {name} {}", if wanted { "on" } else { "off" });
            self.expect_counts(&on, points, &when, problems).await?;
        }
        let end = self.session.snapshot().await?;
        if end.shows("no_indicator_points") {
            problems.page(format!(
                "with MACD and RSI on the page says \"{}\"",
                m.texts.no_indicator_points
            ));
        }
        Ok(())
    }

    /// Toggles re-derive overlays from the signals already loaded: any API call is a fault.
    async fn expect_no_requests(&self, mark: u64, problems: &mut Problems) {
        tokio::time::sleep(QUIET).await;
        let sent: Vec<String> = self
            .proxy
            .since(mark)
            .iter()
            .filter(|c| c.is_api())
            .map(Exchange::target)
            .collect();
        if !sent.is_empty() {
            problems.page(format!(
                "toggling the indicators sent {} request(s): {}",
                sent.len(),
                sent.join(", ")
            ));
        }
    }

    /// Polls until the page's counts are what the toggles in `on` make of `points`.
    pub(super) async fn expect_counts(
        &self,
        on: &[String],
        points: &[(String, usize)],
        when: &str,
        problems: &mut Problems,
    ) -> Result<(), Failure> {
        let m = &self.model;
        let on: Vec<&str> = on.iter().map(String::as_str).collect();
        let overlay = expect::panel_count(points, m, Panel::Overlay, &on);
        let signal_on = m
            .toggles
            .iter()
            .any(|t| t.panel == Panel::Signal && on.contains(&t.key.as_str()));
        let signal = signal_on.then(|| expect::panel_count(points, m, Panel::Signal, &on));
        let (ok, state) = self
            .session
            .poll(UI_TIMEOUT, |s| {
                PageState::count(&s.overlays) == Some(overlay)
                    && PageState::count(&s.signals) == signal
            })
            .await?;
        if !ok {
            problems.page(count_mismatch(
                m,
                points,
                &on,
                &state,
                (overlay, signal),
                when,
            ));
        }
        Ok(())
    }

    /// For the run's symbol: the overlays the page drew must cover every signal ClickHouse holds.
    pub(super) fn compare_with_clickhouse(
        &self,
        load: &Load,
        rows: &[Value],
        overlay: usize,
        problems: &mut Problems,
    ) {
        let missing = self.missing_rows(load, rows, Table::Signals);
        let Some(first) = missing.first else { return };
        let m = &self.model;
        let symbol = symbol_of(&load.signals);
        let (from, to) = load.window_ms().unwrap_or((i64::MIN, i64::MAX));
        let stored: Vec<Value> = self
            .ctx
            .stored_signals
            .iter()
            .filter(|s| s.symbol == symbol && (from..=to).contains(&unix_ms_of(s.event_ts)))
            .map(signal_json)
            .collect();
        let all: Vec<&str> = m.toggles.iter().map(|t| t.key.as_str()).collect();
        let truth =
            expect::panel_count(&expect::toggle_points(&stored, m), m, Panel::Overlay, &all);
        problems.api(format!(
            "wrong overlay count: with every overlay on the page draws {overlay} points from the {} \
             signals Jangar returned, but the {} signals ClickHouse holds for {symbol} give \
             {truth}: Jangar's answer lacks {} of them (first missing {})",
            rows.len(),
            missing.stored,
            missing.count,
            key_text(first)
        ));
    }
}

fn toggle_name<'m>(m: &'m PageModel, key: &'m str) -> &'m str {
    m.toggle(key).map_or(key, |t| t.name.as_str())
}

/// "wrong overlay count after turning VWAP on: data-overlay-count 90, expected 150 (EMA 12/26
/// 60 + Bollinger 90)", and the same for the signal panel.
fn count_mismatch(
    m: &PageModel,
    points: &[(String, usize)],
    on: &[&str],
    state: &PageState,
    (overlay, signal): (usize, Option<usize>),
    when: &str,
) -> String {
    let breakdown = |panel: Panel| {
        let parts: Vec<String> = points
            .iter()
            .filter(|(k, _)| on.contains(&k.as_str()))
            .filter_map(|(k, n)| {
                let t = m.toggle(k)?;
                (t.panel == panel).then(|| format!("{} {n}", t.name))
            })
            .collect();
        if parts.is_empty() {
            "nothing on".to_string()
        } else {
            parts.join(" + ")
        }
    };
    let shown_overlay = PageState::count(&state.overlays);
    let shown_signal = PageState::count(&state.signals);
    let mut parts = Vec::new();
    if shown_overlay != Some(overlay) {
        parts.push(format!(
            "wrong overlay count {when}: data-overlay-count {}, expected {overlay} ({})",
            show_count(shown_overlay),
            breakdown(Panel::Overlay)
        ));
    }
    if shown_signal != signal {
        parts.push(match signal {
            Some(n) => format!(
                "wrong signal count {when}: data-signal-count {}, expected {n} ({})",
                show_count(shown_signal),
                breakdown(Panel::Signal)
            ),
            None => format!(
                "{when} the indicator chart is still there (data-signal-count {})",
                show_count(shown_signal)
            ),
        });
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_mismatch_says_when_and_what_each_toggle_contributes() {
        let m = PageModel::builtin();
        let points: Vec<(String, usize)> = [
            ("ema", 60),
            ("boll", 90),
            ("vwap", 60),
            ("macd", 58),
            ("rsi", 29),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
        let state = PageState {
            overlays: Some("90".into()),
            signals: None,
            ..PageState::default()
        };
        let message = count_mismatch(
            &m,
            &points,
            &["ema", "boll", "macd"],
            &state,
            (150, Some(58)),
            "after turning MACD on",
        );
        assert_eq!(
            message,
            "wrong overlay count after turning MACD on: data-overlay-count 90, expected 150 \
             (EMA 12/26 60 + Bollinger 90); wrong signal count after turning MACD on: \
             data-signal-count absent, expected 58 (MACD 58)"
        );
    }
}
