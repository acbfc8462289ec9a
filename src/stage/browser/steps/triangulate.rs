//! The api stage's triangulated bar (oracle → ClickHouse → API, `observed.triangulation`), one
//! layer further: the bars answer the page got. The chart itself is not read: Jangar imports
//! ECharts as a module (`jangar.md` §6.4), so no global exposes what it drew; the page's own
//! evidence is `data-candle-count`, which step 2 checks against this answer and the oracle.

use serde_json::{json, Value};

use super::calls::*;
use super::{Checklist, Failure, Problems};
use crate::domain::diagnose::Hop;
use crate::stage::browser::expect;

/// `[open, high, low, close]`.
type Ohlc = [f64; 4];

impl Checklist<'_> {
    /// Extends the api stage's triangulation for step 2's symbol; a divergence at the page is a
    /// problem of step 2. Returns a note for the step's detail.
    pub(super) fn triangulate(&mut self, load: &Load, problems: &mut Problems) -> String {
        let Some(mut tri) = self
            .api_stage
            .and_then(|a| a.observed.get("triangulation"))
            .cloned()
        else {
            return String::new();
        };
        let (Some(t), Some(seq)) = (expect::timestamp_ms(&tri["event_ts"]), tri["seq"].as_u64())
        else {
            return String::new();
        };
        if tri["symbol"] != json!(symbol_of(&load.bars)) {
            return String::new();
        }
        let api = ohlc_of(&tri["api"], ["o", "h", "l", "c"]);
        let answer = load
            .bars_rows()
            .iter()
            .find(|row| {
                expect::row_keys(std::slice::from_ref(*row), &self.model.candles.time) == [(t, seq)]
            })
            .and_then(|row| {
                let c = &self.model.candles;
                ohlc_of(row, [&c.open, &c.high, &c.low, &c.close])
            });
        let page_diverges = page_divergence(api, answer);
        if let (Some(why), true) = (&page_diverges, tri["diverges_at"].is_null()) {
            problems.add(Failure {
                hop: Hop::ChartsPage,
                message: format!(
                    "the triangulated bar {} {} seq {seq}: {why}",
                    symbol_of(&load.bars),
                    tri["event_ts"].as_str().unwrap_or_default()
                ),
            });
            tri["diverges_at"] = json!("page");
        }
        tri["page"] = json!({
            "answer": answer.map(ohlc_json),
            "chart": "counted, not read: data-candle-count is the page's evidence (ECharts is \
                      imported as a module, no global exposes its data)",
        });
        self.triangulation = Some(tri);
        match page_diverges {
            Some(_) => String::new(),
            None => "; the api stage's triangulated bar is in the page's answer".into(),
        }
    }
}

/// Why the page's answer differs from the API stage's, if it does.
fn page_divergence(api: Option<Ohlc>, answer: Option<Ohlc>) -> Option<String> {
    let same = |a: Ohlc, b: Ohlc| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9);
    match (api, answer) {
        (_, None) => Some("it is not in the bars answer the page got".into()),
        (Some(a), Some(b)) if !same(a, b) => {
            Some(format!("the page got o/h/l/c {b:?}, the API stage {a:?}"))
        }
        _ => None,
    }
}

fn ohlc_of<S: AsRef<str>>(row: &Value, fields: [S; 4]) -> Option<Ohlc> {
    let mut out = [0.0; 4];
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = expect::lookup(row, field.as_ref()).and_then(expect::to_number)?;
    }
    Some(out)
}

fn ohlc_json([o, h, l, c]: Ohlc) -> Value {
    json!({ "o": o, "h": h, "l": l, "c": c })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_layer_that_differs_is_named() {
        let a = [1.0, 2.0, 0.5, 1.5];
        assert_eq!(page_divergence(Some(a), Some(a)), None);
        assert!(page_divergence(Some(a), None)
            .unwrap()
            .contains("not in the bars answer"));
        let b = [1.0, 2.0, 0.5, 1.6];
        assert!(page_divergence(Some(a), Some(b))
            .unwrap()
            .contains("the API stage"));
    }

    #[test]
    fn ohlc_follows_the_page_fields() {
        let row = json!({"o": "1", "h": 2, "l": 0.5, "close": 1.5});
        assert_eq!(
            ohlc_of(&row, ["o|open", "h|high", "l|low", "c|close"]),
            Some([1.0, 2.0, 0.5, 1.5])
        );
        assert_eq!(ohlc_of(&json!({"o": 1}), ["o", "h", "l", "c"]), None);
    }
}
