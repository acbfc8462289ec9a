//! Steps 5 and 6: the empty state and the error banner, made by the validator's fault proxy so
//! they work against a real deployment (no symbol added, nothing broken).

use super::{empty_text, show_count, Checklist, Failure, Outcome, Problems};
use crate::stage::browser::proxy::{EmptyShape, Fault};
use crate::stage::browser::session::PageState;
use crate::stage::browser::{PAGE_SETTLED, UI_TIMEOUT};

/// The status the proxy gives failing bars and signals calls in step 6.
const ERROR_STATUS: u16 = 500;

impl Checklist<'_> {
    /// Step 5: another listed symbol (or the same one, refreshed) answered empty by the proxy.
    pub(super) async fn empty(&mut self) -> Outcome {
        let m = self.model.clone();
        // Another symbol than the one charted, or picking it would send no request.
        let shown = self.charted_symbol().await?.unwrap_or_default();
        let other = self.listed.iter().find(|s| **s != shown).cloned();
        let symbol = other.clone().unwrap_or_else(|| shown.clone());
        for (path, shape) in [
            (&m.paths.bars, EmptyShape::Series),
            (&m.paths.signals, EmptyShape::Series),
            (&m.paths.latest, EmptyShape::Latest),
        ] {
            self.proxy.set(path, Fault::Empty { shape });
        }
        let mark = self.proxy.mark();
        match &other {
            Some(s) => {
                self.session
                    .choose(&m.selectors.symbol, s, UI_TIMEOUT)
                    .await?
            }
            None => self.click_refresh().await?,
        }
        self.wait_load(mark, &symbol).await?;
        let (_, state) = self
            .session
            .poll(PAGE_SETTLED, |s| {
                !s.busy() && s.shows("no_bars") && s.shows("no_candles")
            })
            .await?;
        self.check_empty_state(&state).outcome(format!(
            "{symbol} answered empty by the proxy (bars, signals, latest): \"{}\" and \"{}\" \
             shown, data-candle-count 0, lag {} (neutral), no banner",
            m.texts.no_bars, m.texts.no_candles, m.texts.lag_none
        ))
    }

    fn check_empty_state(&self, state: &PageState) -> Problems {
        let m = &self.model;
        let mut problems = Problems::default();
        for key in ["no_bars", "no_candles"] {
            if !state.shows(key) {
                problems.page(format!(
                    "the page does not show \"{}\" for a symbol with no data",
                    empty_text(m, key)
                ));
            }
        }
        if PageState::count(&state.candles) != Some(0) {
            problems.page(format!(
                "data-candle-count is {} for a symbol with no data",
                show_count(PageState::count(&state.candles))
            ));
        }
        match &state.lag {
            Some(p) if p.text == m.texts.lag_none => {
                if !p.class.split_whitespace().any(|c| c == m.lag.neutral_class) {
                    problems.page(format!(
                        "the lag pill shows {} without the neutral tone {} (classes \"{}\")",
                        m.texts.lag_none, m.lag.neutral_class, p.class
                    ));
                }
            }
            other => problems.page(format!(
                "the lag pill shows {:?}, expected \"{}\" with no data",
                other.as_ref().map(|p| p.text.as_str()),
                m.texts.lag_none
            )),
        }
        if let Some(banner) = &state.banner {
            problems.page(format!("an error banner shows with no error: \"{banner}\""));
        }
        problems
    }

    /// Step 6: bars and signals answering an error status, then the bars connection dropped.
    pub(super) async fn error(&mut self) -> Outcome {
        let m = self.model.clone();
        let symbol = self.charted_symbol().await?.unwrap_or_default();
        let expected = m.banner(Some(ERROR_STATUS), Some(ERROR_STATUS));
        let mut problems = Problems::default();
        let status = Fault::Status {
            status: ERROR_STATUS,
        };
        self.proxy.set(&m.paths.bars, status);
        self.proxy.set(&m.paths.signals, status);
        let shown = self
            .refresh_until_banner(&symbol)
            .await
            .map_err(|f| Failure {
                hop: f.hop,
                message: format!("missing banner \"{expected}\": {}", f.message),
            })?;
        match shown {
            Some(b) if b == expected => {}
            None => problems.page(format!(
                "missing banner: with bars and signals answering {ERROR_STATUS} the page shows \
                 no \"{expected}\""
            )),
            Some(b) => problems.page(format!(
                "wrong banner: \"{b}\", expected exactly \"{expected}\""
            )),
        }
        self.screenshot_extra("06-error-status.png").await;
        self.proxy.clear();
        self.proxy.set(&m.paths.bars, Fault::Drop);
        self.check_dropped(&symbol, &mut problems).await?;
        problems.outcome(format!(
            "bars and signals answering {ERROR_STATUS} (proxy): banner \"{expected}\" exactly; \
             bars connection dropped: \"{}\", candles cleared",
            m.texts.fetch_failed
        ))
    }

    /// A dropped connection rejects the page's fetch: the raw browser message, series cleared.
    async fn check_dropped(
        &mut self,
        symbol: &str,
        problems: &mut Problems,
    ) -> Result<(), Failure> {
        let m = self.model.clone();
        let dropped = self.refresh_until_banner(symbol).await?;
        if dropped.as_deref() != Some(m.texts.fetch_failed.as_str()) {
            problems.page(format!(
                "with the bars connection dropped the banner is {:?}, expected \"{}\"",
                dropped, m.texts.fetch_failed
            ));
        }
        let state = self.session.snapshot().await?;
        if PageState::count(&state.candles) != Some(0) {
            problems.page(format!(
                "after \"{}\" the page still draws {} candles",
                m.texts.fetch_failed,
                show_count(PageState::count(&state.candles))
            ));
        }
        Ok(())
    }

    /// Clicks Refresh and returns the banner once the load has settled.
    async fn refresh_until_banner(&mut self, symbol: &str) -> Result<Option<String>, Failure> {
        let mark = self.proxy.mark();
        self.click_refresh().await?;
        self.wait_load(mark, symbol).await?;
        let (_, state) = self
            .session
            .poll(PAGE_SETTLED, |s| !s.busy() && s.banner.is_some())
            .await?;
        Ok(state.banner)
    }
}
