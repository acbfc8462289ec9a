//! Per-hop latency summaries (p50 / p95 / max) from per-bar samples, and when a row became
//! visible, bracketed by the polls around its first sighting.

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The finite samples, sorted: histograms (metrics) and waterfalls (HTML) are built from them.
    pub samples_ms: Vec<f64>,
}

/// Nearest-rank percentiles; an empty sample has no figures rather than zeros.
pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = sorted.len();
        (n > 0).then(|| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Summary {
        count: sorted.len(),
        p50_ms: rank(0.50),
        p95_ms: rank(0.95),
        max_ms: sorted.last().copied(),
        samples_ms: sorted,
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.p50_ms, self.p95_ms, self.max_ms) {
            (Some(p50), Some(p95), Some(max)) => write!(
                f,
                "p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms (n={})",
                self.count
            ),
            _ => f.write_str("no samples"),
        }
    }
}

/// How the visibility times were found: polls of the run's row keys, each sighting bracketed
/// between the polls around it (the only method so far: `system.part_log` is not read).
pub const KEY_POLL: &str = "key-poll";

/// When a row became visible: after `not_before` (the last poll that did not see it: its send
/// time, or the server's clock before its snapshot) and by `by` (the first poll that did: its
/// answer time, or the server's clock after its snapshot). Visibility only grows (a
/// part, once committed, stays readable), so every earlier poll missed the row too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    pub not_before: OffsetDateTime,
    pub by: OffsetDateTime,
}

impl Bracket {
    /// The estimate reported: the middle of the bracket.
    pub fn midpoint(&self) -> OffsetDateTime {
        self.not_before + (self.by - self.not_before) / 2
    }

    /// The estimate's error: half the bracket, in milliseconds.
    pub fn half_width_ms(&self) -> f64 {
        (self.by - self.not_before).as_seconds_f64() * 500.0
    }

    /// The bracket of a latency counted from `ack`, the trigger's acknowledgement: the job may
    /// read a message before its acknowledgement travels back, so a row can be visible a moment
    /// before it; that part of the bracket is latency 0, not a negative one. (A row seen before
    /// `ack` at all is no sample: see `closed_before_trigger`.)
    pub fn from_ack(self, ack: OffsetDateTime) -> Bracket {
        Bracket {
            not_before: self.not_before.max(ack.min(self.by)),
            by: self.by,
        }
    }
}

/// First sightings of rows by a sequence of polls, one after another, whose send and answer
/// times are known (an injected clock: the caller passes the times).
#[derive(Debug, Clone)]
pub struct Sightings<K> {
    brackets: HashMap<K, Bracket>,
    /// The send time of the newest poll that answered: it saw no row first seen later.
    last_answered_send: OffsetDateTime,
}

impl<K: Hash + Eq + Clone> Sightings<K> {
    /// Sightings of rows that cannot have been visible before `start` (the run had published
    /// nothing yet): the lower bound of a row the very first poll sees.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            brackets: HashMap::new(),
            last_answered_send: start,
        }
    }

    /// Records a poll that saw `seen`: nothing else was visible at `sent` (its send time, or a
    /// later moment before its snapshot) and all of `seen` was by `answered` (its answer time,
    /// or an earlier moment after its snapshot). A poll that failed is not recorded: it saw
    /// nothing and missed nothing. Returns how many rows it saw first.
    pub fn observe(
        &mut self,
        sent: OffsetDateTime,
        answered: OffsetDateTime,
        seen: impl IntoIterator<Item = K>,
    ) -> usize {
        let not_before = self.last_answered_send;
        let mut new = 0;
        for key in seen {
            self.brackets.entry(key).or_insert_with(|| {
                new += 1;
                Bracket {
                    not_before,
                    by: answered,
                }
            });
        }
        self.last_answered_send = self.last_answered_send.max(sent);
        new
    }

    pub fn get(&self, key: &K) -> Option<&Bracket> {
        self.brackets.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.brackets.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.brackets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.brackets.is_empty()
    }
}

impl<K> Default for Sightings<K> {
    fn default() -> Self {
        Self {
            brackets: HashMap::new(),
            last_answered_send: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// The error of a set of visibility times: their brackets' half-widths.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorBar {
    /// `key-poll`; empty without samples.
    pub method: String,
    pub count: usize,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl ErrorBar {
    pub fn of(method: &str, half_widths_ms: &[f64]) -> Self {
        let s = summarize(half_widths_ms);
        Self {
            method: if s.count > 0 {
                method.to_string()
            } else {
                String::new()
            },
            count: s.count,
            p95_ms: s.p95_ms,
            max_ms: s.max_ms,
        }
    }
}

impl std::fmt::Display for ErrorBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.p95_ms, self.max_ms) {
            (Some(p95), Some(max)) => {
                write!(f, "±{max:.0} ms max, ±{p95:.0} ms p95 ({})", self.method)
            }
            _ => f.write_str("no visibility times"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }

    #[test]
    fn a_sighting_is_bracketed_by_the_last_poll_that_missed_it_and_the_first_that_saw_it() {
        let mut s = Sightings::new(at(0));
        // Polls at 100–130 and 140–170 ms see nothing; 180–215 ms sees "a".
        assert_eq!(s.observe(at(100), at(130), []), 0);
        assert_eq!(s.observe(at(140), at(170), []), 0);
        assert_eq!(s.observe(at(180), at(215), ["a"]), 1);
        let b = *s.get(&"a").unwrap();
        assert_eq!(
            b,
            Bracket {
                not_before: at(140),
                by: at(215)
            }
        );
        assert_eq!(b.midpoint(), at(177) + time::Duration::microseconds(500));
        assert_eq!(b.half_width_ms(), 37.5);
        // Seen again later: the first sighting stands.
        assert_eq!(s.observe(at(220), at(240), ["a", "b"]), 1);
        assert_eq!(s.get(&"a"), Some(&b));
        assert_eq!(
            s.get(&"b"),
            Some(&Bracket {
                not_before: at(180),
                by: at(240)
            })
        );
    }

    #[test]
    fn a_bracket_counted_from_an_ack_inside_it_starts_there() {
        let b = Bracket {
            not_before: at(100),
            by: at(140),
        };
        // The ack came back at 130 ms, after the poll that missed the row was sent.
        let from = b.from_ack(at(130));
        assert_eq!((from.not_before, from.by), (at(130), at(140)));
        assert!(from.midpoint() >= at(130));
        assert_eq!(from.half_width_ms(), 5.0);
        // An ack before the bracket changes nothing.
        assert_eq!(b.from_ack(at(90)), b);
    }

    #[test]
    fn the_first_poll_brackets_from_the_start_and_a_failed_poll_moves_nothing() {
        let mut s = Sightings::new(at(0));
        assert_eq!(s.observe(at(10), at(30), ["a"]), 1);
        assert_eq!(s.get(&"a").unwrap().not_before, at(0));
        // A poll sent at 40 ms failed (not observed): "b", first seen by the poll sent at
        // 60 ms, may have been visible since the poll sent at 10 ms.
        s.observe(at(60), at(90), ["b"]);
        assert_eq!(s.get(&"b").unwrap().not_before, at(10));
        assert_eq!(s.get(&"b").unwrap().half_width_ms(), 40.0);
    }

    #[test]
    fn error_bars_name_their_method_only_with_samples() {
        let e = ErrorBar::of(KEY_POLL, &[10.0, 30.0, 20.0]);
        assert_eq!(
            (e.method.as_str(), e.count, e.p95_ms, e.max_ms),
            ("key-poll", 3, Some(30.0), Some(30.0))
        );
        assert_eq!(e.to_string(), "±30 ms max, ±30 ms p95 (key-poll)");
        let none = ErrorBar::of(KEY_POLL, &[]);
        assert_eq!((none.method.as_str(), none.max_ms), ("", None));
        assert_eq!(none.to_string(), "no visibility times");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.max_ms),
            (Some(50.0), Some(95.0), Some(100.0))
        );
        let s = summarize(&[7.0]);
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.max_ms),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert_eq!(summarize(&[]).count, 0);
        assert_eq!(summarize(&[]).to_string(), "no samples");
    }
}
