//! The page model: selectors, texts and the page's counting rules, read from a TOML file under
//! `fixtures/pages/` so a change to the page is a change to data, not to code.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The model the binary carries, so a deployed validator needs no checkout.
const BUILTIN: &str = include_str!("../../../fixtures/pages/jangar-charts.toml");

/// Overrides the built-in model with a file (a page that changed before the validator did).
pub const MODEL_ENV: &str = "TORGHUT_E2E_PAGE_MODEL";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read page model {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid page model {path}: {message}")]
    Parse { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PageModel {
    pub name: String,
    pub paths: Paths,
    pub selectors: Selectors,
    pub attributes: Attributes,
    pub texts: Texts,
    pub window: Window,
    pub candles: Candles,
    pub toggles: Vec<Toggle>,
    pub lag: Lag,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    pub entry: String,
    pub page: String,
    pub symbols: String,
    pub bars: String,
    pub signals: String,
    pub latest: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    pub heading: String,
    pub symbol: String,
    pub range: String,
    pub resolution: String,
    /// The value slot inside a Select trigger (its whole text has the icon's `▼`).
    pub select_value: String,
    /// A Select's list; options are looked up only in the open one.
    pub listbox: String,
    pub option: String,
    pub checkbox: String,
    pub button: String,
    pub price_chart: String,
    pub signal_chart: String,
    /// The section around the price chart; the banner is one of its direct children.
    pub chart_section: String,
    pub error_banner: String,
    pub lag_label: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    pub hydrated: String,
    pub candle_count: String,
    pub overlay_count: String,
    pub signal_count: String,
    pub busy: String,
    /// On a Select trigger: nothing is selected (the slot shows the placeholder).
    pub placeholder: String,
    /// On an open Select trigger: the id of its list.
    pub controls: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub heading: String,
    pub disabled: String,
    pub no_symbols: String,
    pub symbols_failed: String,
    pub no_bars: String,
    pub no_candles: String,
    pub enable_signals: String,
    pub no_indicator_points: String,
    pub showing: String,
    pub refresh: String,
    pub lag_label: String,
    pub lag_none: String,
    pub latest_event: String,
    pub bars_failed: String,
    pub signals_failed: String,
    pub banner_separator: String,
    pub fetch_failed: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub range_value: String,
    pub range_label: String,
    pub resolution_value: String,
    pub resolution_label: String,
    pub limit: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Candles {
    pub time: String,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Panel {
    /// Counted by `data-overlay-count` on the price chart.
    Overlay,
    /// Counted by `data-signal-count` on the indicator chart.
    Signal,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub key: String,
    /// The checkbox's accessible name.
    pub name: String,
    pub default: bool,
    pub panel: Panel,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lag {
    pub neutral_class: String,
    pub tones: Vec<Tone>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tone {
    pub name: String,
    /// Upper bound (exclusive); absent on the last tone.
    pub below_secs: Option<u64>,
    pub class: String,
}

impl PageModel {
    /// The file named by `TORGHUT_E2E_PAGE_MODEL`, else the built-in model.
    pub fn load_default() -> Result<Self, ModelError> {
        match std::env::var(MODEL_ENV).ok().filter(|v| !v.is_empty()) {
            Some(path) => Self::load(Path::new(&path)),
            None => Self::parse(BUILTIN, "fixtures/pages/jangar-charts.toml (built in)"),
        }
    }

    pub fn builtin() -> Self {
        // The built-in text is tested below; a broken one is a build defect, not a runtime state.
        Self::parse(BUILTIN, "built-in").expect("the built-in page model parses")
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ModelError> {
        toml::from_str(text).map_err(|e| ModelError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// The symbol a `Showing SYM · Last 15m · 1s` line names (any range and resolution): the
    /// text between the template's prefix and the literal after `{symbol}`.
    pub fn charted_symbol(&self, line: &str) -> Option<String> {
        let (prefix, rest) = self.texts.showing.split_once("{symbol}")?;
        let after = rest.split('{').next().unwrap_or_default();
        let tail = line.strip_prefix(prefix)?;
        let symbol = if after.is_empty() {
            tail
        } else {
            tail.split_once(after)?.0
        };
        (!symbol.trim().is_empty()).then(|| symbol.trim().to_string())
    }

    /// `Showing SYM · Last 15m · 1s`.
    pub fn showing(&self, symbol: &str) -> String {
        self.texts
            .showing
            .replace("{symbol}", symbol)
            .replace("{range}", &self.window.range_label)
            .replace("{resolution}", &self.window.resolution_label)
    }

    /// The banner for failed bars and/or signals calls, as the page joins it.
    pub fn banner(&self, bars_status: Option<u16>, signals_status: Option<u16>) -> String {
        let mut parts = Vec::new();
        if let Some(s) = bars_status {
            parts.push(self.texts.bars_failed.replace("{status}", &s.to_string()));
        }
        if let Some(s) = signals_status {
            parts.push(
                self.texts
                    .signals_failed
                    .replace("{status}", &s.to_string()),
            );
        }
        parts.join(&self.texts.banner_separator)
    }

    /// The tone a lag of `secs` gets; `None` only for a model without tones.
    pub fn tone(&self, secs: u64) -> Option<&Tone> {
        self.lag
            .tones
            .iter()
            .find(|t| t.below_secs.is_none_or(|b| secs < b))
    }

    pub fn toggle(&self, key: &str) -> Option<&Toggle> {
        self.toggles.iter().find(|t| t.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_model_parses_and_fills_templates() {
        let m = PageModel::builtin();
        assert_eq!(m.showing("NVDA"), "Showing NVDA · Last 15m · 1s");
        assert_eq!(
            m.banner(Some(500), Some(500)),
            "Bars request failed (500). Signals request failed (500)"
        );
        assert_eq!(m.banner(None, Some(503)), "Signals request failed (503)");
        assert_eq!(m.tone(59).unwrap().name, "good");
        assert_eq!(m.tone(60).unwrap().name, "warn");
        assert_eq!(m.tone(179).unwrap().name, "warn");
        assert_eq!(m.tone(180).unwrap().name, "bad");
        assert_eq!(m.toggles.len(), 5);
        assert_eq!(
            m.charted_symbol("Showing AMD · Last 1h · 15s").as_deref(),
            Some("AMD")
        );
        assert_eq!(
            m.charted_symbol(&m.showing("ZZT2E-AB12CD34-CHART"))
                .as_deref(),
            Some("ZZT2E-AB12CD34-CHART")
        );
        assert_eq!(m.charted_symbol("Select symbol"), None);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_origin() {
        let text = BUILTIN.replace("[paths]", "typo = 1\n[paths]");
        let err = PageModel::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("typo"), "{err}");
    }
}
