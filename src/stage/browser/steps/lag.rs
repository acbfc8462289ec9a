//! Step 4: the lag pill's text and tone against now − newest event_ts by the page's own rules,
//! under the configured threshold; the page's known quirks go into the report.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::calls::*;
use super::{api, page, Checklist, Failure, Outcome, Problems};
use crate::domain::diagnose::Hop;
use crate::stage::browser::expect;
use crate::stage::browser::session::Pill;

/// Step 4 reads the pill at least this long after the load, so a ticking pill would have moved.
const TICK: Duration = Duration::from_millis(1100);
/// Rounding and measurement slack when comparing the pill with the computed lag.
const LAG_SLACK_MS: i64 = 1000;

impl Checklist<'_> {
    pub(super) async fn lag(&mut self) -> Outcome {
        let Some(load) = self.load.clone() else {
            return Err(page("no load from step 2"));
        };
        let m = self.model.clone();
        let reading = self.read_pill().await?;
        let pill = &reading.pill;
        let newest = expect::newest_ms(&[load.bars_rows(), load.signals_rows()], &m.candles.time)
            .ok_or_else(|| {
            api(format!(
                "no bar or signal row with a time: the pill can only show \"{}\"",
                m.texts.lag_none
            ))
        })?;
        let (low, high) = expect::pill_range_ms(&pill.text).ok_or_else(|| {
            page(format!(
                "the pill shows {:?}, which is not a lag in the page's format (Ns, Mm Ss, Hh Mm)",
                pill.text
            ))
        })?;
        let mut problems = Problems::default();
        self.check_pill_value(&load, &reading, newest, (low, high), &mut problems);
        let tone = m.tone(u64::try_from(low / 1000).unwrap_or(0));
        if let Some(tone) = tone.filter(|t| !pill.class.split_whitespace().any(|c| c == t.class)) {
            problems.page(format!(
                "the pill's tone is wrong: {} is {} ({}) by the page's rules, but its classes \
                 are \"{}\"",
                pill.text, tone.name, tone.class, pill.class
            ));
        }
        let tone = tone.map_or("?", |t| t.name.as_str());
        let threshold = self.ctx.config.jangar.max_freshness;
        if low >= threshold.as_millis() as i64 {
            problems.add(stale(&load, pill, tone, newest, reading.read_at, threshold));
        }
        self.note_quirks(&load, pill, newest, reading.skew);
        problems.outcome(format!(
            "pill {} ({tone}) = now − newest event_ts {} by the page's rules, under the {} s \
             threshold; Latest event {}; quirks noted: {}",
            pill.text,
            iso(newest),
            threshold.as_secs(),
            reading.latest_event,
            self.quirks.len()
        ))
    }

    /// Reads the pill at least [`TICK`] after step 2's load, with the browser's clock.
    async fn read_pill(&self) -> Result<Reading, Failure> {
        let m = &self.model;
        if let Some((_, at)) = &self.pill_after_load {
            tokio::time::sleep(TICK.saturating_sub(at.elapsed())).await;
        }
        let before = unix_ms();
        let state = self.session.snapshot().await?;
        let read_at = unix_ms();
        let pill = state
            .lag
            .clone()
            .ok_or_else(|| page(format!("no lag pill next to \"{}\"", m.texts.lag_label)))?;
        let latest_event = state
            .latest_event
            .as_deref()
            .and_then(|l| l.strip_prefix(m.texts.latest_event.as_str()))
            .map_or_else(|| m.texts.lag_none.clone(), |v| v.trim().to_string());
        Ok(Reading {
            pill,
            latest_event,
            // The page computes the lag with the browser's clock.
            skew: state.now_ms - (before + read_at) / 2,
            read_at,
        })
    }

    /// The pill must be now − newest as of some moment between the page first getting the
    /// newest row and the reading (it is computed once, when the newest timestamp changes).
    fn check_pill_value(
        &self,
        load: &Load,
        reading: &Reading,
        newest: i64,
        (low, high): (i64, i64),
        problems: &mut Problems,
    ) {
        let first_seen = self.first_seen_ms(&symbol_of(&load.bars), newest);
        let skew = reading.skew;
        let drawn_from = (first_seen.min(load.answered_unix_ms()) + skew - newest).max(0);
        let drawn_to = (reading.read_at + skew - newest).max(0);
        if high + LAG_SLACK_MS <= drawn_from || low - LAG_SLACK_MS > drawn_to {
            problems.page(format!(
                "the pill shows {} but now − newest event_ts ({}) was {}–{} when the page drew it",
                reading.pill.text,
                iso(newest),
                expect::format_lag(drawn_from),
                expect::format_lag(drawn_to)
            ));
        }
    }

    /// When the page was first handed a bars or signals answer for `symbol` whose newest row is
    /// `newest` (validator clock).
    pub(super) fn first_seen_ms(&self, symbol: &str, newest: i64) -> i64 {
        let m = &self.model;
        self.proxy
            .log()
            .iter()
            .filter(|c| {
                (same_path(&c.path, &m.paths.bars) || same_path(&c.path, &m.paths.signals))
                    && c.status == Some(200)
                    && symbol_of(c) == symbol
                    && expect::newest_ms(&[expect::items(json_of(c))], &m.candles.time)
                        == Some(newest)
            })
            .filter_map(|c| c.finished_unix_ms)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The page's known lag quirks (`jangar.md` §2, §5), with this run's evidence.
    pub(super) fn note_quirks(&mut self, load: &Load, pill: &Pill, newest: i64, skew: i64) {
        let time = self.model.candles.time.clone();
        let latest = json_of(&load.latest);
        let from_latest = expect::newest_ms(
            &[
                std::slice::from_ref(&latest["bars"]),
                std::slice::from_ref(&latest["signals"]),
            ],
            &time,
        );
        self.quirks.push(match (load.latest.status, from_latest) {
            (Some(200), Some(t)) => format!(
                "the lag pill ignores /ta/latest (the page looks for a top-level event_ts; \
                 /latest answers {{ok, symbol, bars, signals}}) and shows now − the newest loaded \
                 bar/signal ({}); /latest's newest is {} ({} ms apart)",
                iso(newest),
                iso(t),
                (t - newest).abs()
            ),
            _ => format!(
                "the lag pill ignores /ta/latest (answered {}) and shows now − the newest \
                 loaded bar/signal ({})",
                status_text(&load.latest),
                iso(newest)
            ),
        });
        if let Some((first, at)) = &self.pill_after_load {
            let waited = at.elapsed().as_millis();
            self.quirks.push(if first.text == pill.text {
                format!(
                    "the lag pill does not tick: still \"{}\" {waited} ms after the load; it \
                     changes only when a load brings a newer row",
                    pill.text
                )
            } else {
                format!(
                    "the lag pill changed from \"{}\" to \"{}\" without a load ({waited} ms)",
                    first.text, pill.text
                )
            });
        }
        let rows = load.bars_rows();
        let limit: usize = load
            .bars
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        if rows.len() >= limit {
            self.quirks.push(format!(
                "the bars answer hit its limit ({limit}; ORDER BY event_ts ASC LIMIT): the chart \
                 and the pill show the start of the window, not its end"
            ));
        }
        if json_of(&load.bars)["range"]["fallback"] == json!(true) {
            self.quirks.push(
                "range.fallback = true: the window had no rows and Jangar answered the last \
                 window that has some; the page does not say so"
                    .into(),
            );
        }
        let keys = expect::row_keys(rows, &time);
        let unique: BTreeSet<&(i64, u64)> = keys.iter().collect();
        if unique.len() < keys.len() {
            self.quirks.push(format!(
                "{} duplicate bars in the answer (no FINAL): data-candle-count counts them",
                keys.len() - unique.len()
            ));
        }
        if skew.abs() > 500 {
            self.quirks.push(format!(
                "the browser's clock is {skew} ms off the validator's; the pill uses the browser's"
            ));
        }
    }
}

/// One reading of the pill.
struct Reading {
    pill: Pill,
    latest_event: String,
    /// Browser clock minus validator clock, in ms.
    skew: i64,
    /// Validator clock (Unix ms) right after the reading.
    read_at: i64,
}

/// Stale data: the pipeline is behind (or Jangar fell back to an older window).
fn stale(
    load: &Load,
    pill: &Pill,
    tone: &str,
    newest: i64,
    read_at: i64,
    threshold: Duration,
) -> Failure {
    let fallback = json_of(&load.bars)["range"]["fallback"] == json!(true);
    Failure {
        hop: if fallback { Hop::JangarApi } else { Hop::TaJob },
        message: format!(
            "stale lag: the pill shows {} ({tone}): the newest row Jangar returned for {} ({}) \
             is {} s old, over the {} s threshold (jangar.max_freshness_secs){}",
            pill.text,
            symbol_of(&load.bars),
            iso(newest),
            (read_at - newest) / 1000,
            threshold.as_secs(),
            fallback_note(&load.bars)
        ),
    }
}
