//! Step 1: open /torghut/visuals, follow the client-side redirect, wait for hydration and the
//! symbols, and pick the symbol steps 2–4 observe.

use serde_json::Value;

use super::calls::*;
use super::{abbreviate, api, page, Checklist, Chosen, Failure, NoSymbol, Outcome};
use crate::domain::diagnose::Hop;
use crate::stage::browser::session::{PageState, Trigger};
use crate::stage::browser::PAGE_SETTLED;

impl Checklist<'_> {
    pub(super) async fn open(&mut self) -> Outcome {
        let m = &self.model;
        let mark = self.proxy.mark();
        self.session
            .goto(&format!("{}{}", self.proxy.url(), m.paths.entry))
            .await?;
        let state = self.reach_page().await?;
        let listed = self.symbols_listed(mark).await?;
        let trigger = self.symbol_dropdown(listed.len()).await?;
        let (charted, line) = self.first_charted().await?;
        let shown = self.symbol_trigger_vs_chart(&trigger, &charted, &line)?;
        let m = &self.model;
        let detail = format!(
            "{} → {} (client-side redirect), hydrated, heading \"{}\"; {} symbols listed ({}); \
             charts {charted} ({shown}); browser in {} ({})",
            m.paths.entry,
            m.paths.page,
            m.texts.heading,
            listed.len(),
            abbreviate(&listed),
            state.time_zone,
            state.language
        );
        self.charted = Some(charted);
        self.chosen = self.choose_symbol(&listed);
        self.listed = listed;
        Ok(detail)
    }

    /// The symbol the page charts after the symbols arrived (the first A to Z): its `Showing …`
    /// line, which is the truth of what is charted.
    async fn first_charted(&mut self) -> Result<(String, String), Failure> {
        let m = self.model.clone();
        let (_, state) = self
            .session
            .poll(PAGE_SETTLED, |s| {
                s.showing
                    .as_deref()
                    .and_then(|l| m.charted_symbol(l))
                    .is_some()
            })
            .await?;
        match self.charted_symbol().await? {
            Some(symbol) => Ok((symbol, state.showing.unwrap_or_default())),
            None => Err(page(format!(
                "with symbols listed the page charts none: no \"{}\" line (it shows {})",
                m.texts.showing.split(" {").next().unwrap_or_default(),
                if state.shows("no_symbols") {
                    format!("\"{}\"", m.texts.no_symbols)
                } else {
                    "neither chart nor no-symbol section".into()
                }
            ))),
        }
    }

    /// What the symbol dropdown shows against what is charted. The first-load placeholder is a
    /// known upstream quirk (`jangar.md` §6.2), noted with its evidence; a trigger naming another
    /// symbol than the chart, or without a value slot, is a failure.
    fn symbol_trigger_vs_chart(
        &mut self,
        trigger: &Trigger,
        charted: &str,
        line: &str,
    ) -> Result<String, Failure> {
        let m = &self.model;
        match (&trigger.slot, trigger.value()) {
            (None, _) => Err(page(format!(
                "the symbol dropdown {} has no value slot {} (its whole text is {:?}): the \
                 page no longer renders the Select the page model describes",
                m.selectors.symbol, m.selectors.select_value, trigger.text
            ))),
            (Some(_), Some(value)) if value == charted => {
                Ok(format!("the symbol dropdown shows {value}"))
            }
            (Some(_), Some(value)) => Err(page(format!(
                "the symbol dropdown shows {value} while the chart shows {charted}"
            ))),
            (Some(slot), None) => {
                self.quirks.push(format!(
                    "the symbol dropdown shows its placeholder \"{slot}\" ({} on {}) while the \
                     chart shows \"{line}\": the page passes value={{selectedSymbol || undefined}} \
                     to the Select, undefined on the first render, so the Select stays \
                     uncontrolled until someone picks a symbol (jangar.md §6.2; see \
                     01-open.png)",
                    m.attributes.placeholder, m.selectors.symbol,
                ));
                Ok(format!(
                    "the symbol dropdown shows its placeholder \"{slot}\", a known quirk"
                ))
            }
        }
    }

    /// The client-side redirect, hydration, the flag, the heading and the browser's zone.
    async fn reach_page(&self) -> Result<PageState, Failure> {
        let m = &self.model;
        let (ok, state) = self
            .session
            .poll(self.timeout, |s| {
                s.path == m.paths.page && s.hydrated.as_deref() == Some("true")
            })
            .await?;
        if !ok && state.path != m.paths.page {
            return Err(page(format!(
                "{} did not redirect to {}: the browser stayed at {}",
                m.paths.entry, m.paths.page, state.path
            )));
        }
        if !ok {
            return Err(page(format!(
                "the page never hydrated (html[{}] is {:?} after {:?})",
                m.attributes.hydrated, state.hydrated, self.timeout
            )));
        }
        // The app shell sets the marker on its mount; a route whose code is loaded lazily draws
        // its heading (or the disabled notice) after it, which the deployed test's
        // auto-waiting `toBeVisible` allows.
        let (_, state) = self
            .session
            .poll(PAGE_SETTLED, |s| {
                s.heading.as_deref() == Some(m.texts.heading.as_str()) || s.shows("disabled")
            })
            .await?;
        if state.shows("disabled") {
            return Err(page(format!(
                "the page says the charts are disabled (\"{}…\"): this build has \
                 VITE_TORGHUT_VISUALS_ENABLED off, and the flag is baked in at build time",
                m.texts.disabled
            )));
        }
        if state.heading.as_deref() != Some(m.texts.heading.as_str()) {
            return Err(page(format!(
                "the heading is {:?}, not {:?}",
                state.heading, m.texts.heading
            )));
        }
        if state.tz_offset_min != 0 {
            return Err(page(format!(
                "the browser is not in UTC ({}, offset {} min): the page would read Jangar's \
                 zone-less times as local time and every lag would be off",
                state.time_zone, state.tz_offset_min
            )));
        }
        Ok(state)
    }

    /// The symbol dropdown, enabled once the page took in the symbols (a busy browser may take
    /// seconds), and still the button the model describes (a native <select> would mean the
    /// page changed).
    async fn symbol_dropdown(&self, listed: usize) -> Result<Trigger, Failure> {
        let m = &self.model;
        let (ok, state) = self
            .session
            .poll(PAGE_SETTLED, |s| {
                s.symbol.as_ref().is_some_and(|t| !t.disabled)
            })
            .await?;
        let trigger = state.symbol.unwrap_or_default();
        if !ok {
            return Err(page(format!(
                "the symbol dropdown ({}) is missing or stayed disabled after {listed} symbols \
                 loaded",
                m.selectors.symbol
            )));
        }
        if trigger.tag != "BUTTON" {
            return Err(page(format!(
                "{} is a <{}>, not the button dropdown the page model describes",
                m.selectors.symbol, trigger.tag
            )));
        }
        Ok(trigger)
    }

    /// The symbols call the page made on mount, and the list it got.
    pub(super) async fn symbols_listed(&self, mark: u64) -> Result<Vec<String>, Failure> {
        let path = &self.model.paths.symbols;
        let call = self
            .proxy
            .wait_for(mark, self.timeout, |calls| {
                calls
                    .iter()
                    .rev()
                    .find(|c| same_path(&c.path, path) && c.done())
                    .cloned()
            })
            .await
            .ok_or_else(|| {
                page(format!(
                    "the page made no {path} request within {:?} (or Jangar never answered it)",
                    self.timeout
                ))
            })?;
        if call.status != Some(200) {
            return Err(api(format!(
                "{} answered {}: the page shows \"{} (…)\" and no symbol",
                call_name(&call),
                status_text(&call),
                self.model.texts.symbols_failed
            )));
        }
        let listed: Vec<String> = json_of(&call)
            .get("symbols")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .ok_or_else(|| api(format!("{} has no symbols array", call_name(&call))))?;
        if listed.is_empty() {
            return Err(api(format!(
                "Jangar lists no enabled symbols: the page shows \"{}\"",
                self.model.texts.no_symbols
            )));
        }
        Ok(listed)
    }

    /// The run's synthetic symbol where the page lists it, else the configured live symbol.
    pub(super) fn choose_symbol(&self, listed: &[String]) -> Result<Chosen, NoSymbol> {
        let mut synthetic: Vec<&String> = self.ctx.symbols.values().collect();
        // The symbol with the most rows makes the strongest check.
        synthetic.sort_by_key(|s| {
            std::cmp::Reverse(
                self.ctx
                    .stored_bars
                    .iter()
                    .filter(|b| &&b.symbol == s)
                    .count(),
            )
        });
        if let Some(s) = synthetic.iter().find(|s| listed.contains(s)) {
            return Ok(Chosen {
                symbol: (*s).clone(),
                synthetic: true,
            });
        }
        let ours = synthetic
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match &self.ctx.config.jangar.live_symbol {
            Some(live) if listed.contains(live) => Ok(Chosen {
                symbol: live.clone(),
                synthetic: false,
            }),
            Some(live) => Err(NoSymbol {
                hop: Hop::JangarApi,
                why: format!(
                    "the page lists neither the run's symbols ({ours}) nor the live symbol \
                     {live}; it lists {} (run symbols added by the proxy: {})",
                    abbreviate(listed),
                    self.symbols_added
                ),
            }),
            // Not a fault of the deployment: the validator is missing a setting.
            None => Err(NoSymbol {
                hop: Hop::Preflight,
                why: format!(
                    "the page does not list the run's symbols ({ours}) (Jangar lists only the \
                     trading universe; run symbols added by the proxy: {}) and no live symbol is \
                     configured (jangar.live_symbol or TORGHUT_E2E_JANGAR_LIVE_SYMBOL); it \
                     lists {}",
                    self.symbols_added,
                    abbreviate(listed)
                ),
            }),
        }
    }
}
