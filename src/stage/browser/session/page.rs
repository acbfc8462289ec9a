//! What the page shows, as the snapshot script reads it, and what its console said.

use serde::{Deserialize, Serialize};

/// What the snapshot script reads (see `snapshot.js`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PageState {
    pub path: String,
    pub hydrated: Option<String>,
    pub heading: Option<String>,
    /// Texts of the model without placeholders → whether the page shows them.
    pub shown: std::collections::BTreeMap<String, bool>,
    /// The `Showing …` line.
    pub showing: Option<String>,
    pub candles: Option<String>,
    pub overlays: Option<String>,
    pub canvas: bool,
    pub signals: Option<String>,
    pub lag: Option<Pill>,
    pub latest_event: Option<String>,
    pub banner: Option<String>,
    pub busy: Option<String>,
    pub symbol: Option<Trigger>,
    pub range: Option<Trigger>,
    pub resolution: Option<Trigger>,
    pub toggles: std::collections::BTreeMap<String, Option<Checkbox>>,
    pub now_ms: i64,
    pub time_zone: String,
    pub tz_offset_min: i64,
    pub language: String,
    pub locale: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Pill {
    pub text: String,
    pub class: String,
}

/// A Select trigger as the page shows it (`jangar.md` §6.1).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Trigger {
    pub tag: String,
    pub disabled: bool,
    /// The button's whole text, icon included (`AMD▼`): evidence, never the value.
    pub text: String,
    /// The value slot's text: the value, or the placeholder when `placeholder` is set.
    pub slot: Option<String>,
    /// The trigger carries the placeholder attribute: nothing is selected.
    pub placeholder: bool,
    /// The id of the list it has open.
    pub controls: Option<String>,
}

impl Trigger {
    /// The selected value: the value slot's text, unless the trigger shows its placeholder.
    pub fn value(&self) -> Option<&str> {
        self.slot
            .as_deref()
            .filter(|v| !self.placeholder && !v.is_empty())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub struct Checkbox {
    pub checked: bool,
    pub disabled: bool,
}

impl PageState {
    pub fn shows(&self, key: &str) -> bool {
        self.shown.get(key).copied().unwrap_or(false)
    }

    pub fn busy(&self) -> bool {
        self.busy.as_deref() == Some("true")
    }

    pub fn count(value: &Option<String>) -> Option<usize> {
        value.as_deref()?.parse().ok()
    }
}

/// One line of the browser console.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleEntry {
    #[serde(default)]
    pub step: String,
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub source: Option<String>,
    pub timestamp: i64,
}
