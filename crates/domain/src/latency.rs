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

/// How a visibility time was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The server's record of the commit of the part that held the row when it was first seen
    /// (`system.part_log`), within the key polls' bracket.
    PartLog,
    /// Bracketed by the polls of the run's row keys around its first sighting.
    KeyPoll,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PartLog => "part-log",
            Method::KeyPoll => "key-poll",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long before its `system.part_log` time a part was committed, at most: ClickHouse takes
/// that time as it logs the new part, right after the insert's commit made the part visible
/// (`MergeTreeSink`: `renameTempPartAndAdd`, then `PartLog::addNewPart`), with no I/O between.
pub const COMMIT_TO_PART_LOG_MS: i64 = 1;

/// When a row became visible: after `not_before` (the last poll that did not see it: its send
/// time, or the server's clock before its snapshot) and by `by` (the first poll that did: its
/// answer time, or the server's clock after its snapshot). Visibility only grows (a
/// part, once committed, stays readable), so every earlier poll missed the row too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    pub not_before: OffsetDateTime,
    pub by: OffsetDateTime,
    pub method: Method,
}

impl Bracket {
    /// The bracket of a part the server logged as committed at `logged`.
    pub fn committed(logged: OffsetDateTime) -> Bracket {
        Bracket {
            not_before: logged - time::Duration::milliseconds(COMMIT_TO_PART_LOG_MS),
            by: logged,
            method: Method::PartLog,
        }
    }

    /// The row became visible at one of these commits (logged at these times: the commit of
    /// the part it was seen in, or of the parts merged into it), and within the polls'
    /// bracket: so at one of the commits that lie within it. The bracket is theirs, within
    /// the polls'. `None` when none does (the records are of another server or clock), and the
    /// polls' bracket stands.
    pub fn narrowed_by(self, logged: &[OffsetDateTime]) -> Option<Bracket> {
        let within: Vec<Bracket> = logged
            .iter()
            .map(|t| Bracket::committed(*t))
            .filter(|c| c.not_before <= self.by && c.by >= self.not_before)
            .collect();
        let first = within.iter().map(|c| c.not_before).min()?;
        let last = within.iter().map(|c| c.by).max()?;
        Some(Bracket {
            not_before: self.not_before.max(first),
            by: self.by.min(last),
            method: Method::PartLog,
        })
    }

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
            ..self
        }
    }
}

/// First sightings of rows by a sequence of polls, one after another, whose send and answer
/// times are known (an injected clock: the caller passes the times).
#[derive(Debug, Clone)]
pub struct Sightings<K> {
    brackets: HashMap<K, Bracket>,
    /// Brackets narrowed by the server's record of a commit.
    narrowed: HashMap<K, Bracket>,
    /// The send time of the newest poll that answered: it saw no row first seen later.
    last_answered_send: OffsetDateTime,
}

impl<K: Hash + Eq + Clone> Sightings<K> {
    /// Sightings of rows that cannot have been visible before `start` (the run had published
    /// nothing yet): the lower bound of a row the very first poll sees.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            brackets: HashMap::new(),
            narrowed: HashMap::new(),
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
                    method: Method::KeyPoll,
                }
            });
        }
        self.last_answered_send = self.last_answered_send.max(sent);
        new
    }

    /// Narrows a sighting's bracket by the commits that may have made the row visible (see
    /// [`Bracket::narrowed_by`]); whether it did. The polls' bracket is kept: see [`Self::polled`].
    pub fn narrow(&mut self, key: &K, logged: &[OffsetDateTime]) -> bool {
        let Some(narrowed) = self.brackets.get(key).and_then(|b| b.narrowed_by(logged)) else {
            return false;
        };
        self.narrowed.insert(key.clone(), narrowed);
        true
    }

    /// When the row became visible, as narrowly as known.
    pub fn get(&self, key: &K) -> Option<&Bracket> {
        self.narrowed.get(key).or_else(|| self.brackets.get(key))
    }

    /// The bracket of the polls alone, whose edges are the run's own polls: what a row seen
    /// before a moment of the run (a trade's acknowledgement) is judged by.
    pub fn polled(&self, key: &K) -> Option<&Bracket> {
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
            narrowed: HashMap::new(),
            last_answered_send: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// The error of a set of visibility times: their brackets' half-widths, over every method and
/// per method.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorBar {
    /// The methods that gave the times, joined by `+` (`part-log`, `key-poll`); empty without
    /// samples.
    pub method: String,
    pub count: usize,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Each method's share of the times and their error.
    pub by_method: Vec<MethodError>,
}

/// The times one method gave, and their error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodError {
    pub method: Method,
    pub count: usize,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl ErrorBar {
    /// From each time's method and half-width.
    pub fn of(samples: &[(Method, f64)]) -> Self {
        let widths: Vec<f64> = samples.iter().map(|(_, w)| *w).collect();
        let s = summarize(&widths);
        let mut methods: Vec<Method> = samples.iter().map(|(m, _)| *m).collect();
        methods.sort();
        methods.dedup();
        let by_method: Vec<MethodError> = methods
            .into_iter()
            .map(|method| {
                let widths: Vec<f64> = samples
                    .iter()
                    .filter(|(m, _)| *m == method)
                    .map(|(_, w)| *w)
                    .collect();
                let s = summarize(&widths);
                MethodError {
                    method,
                    count: s.count,
                    p95_ms: s.p95_ms,
                    max_ms: s.max_ms,
                }
            })
            .collect();
        Self {
            method: by_method
                .iter()
                .map(|m| m.method.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            count: s.count,
            p95_ms: s.p95_ms,
            max_ms: s.max_ms,
            by_method,
        }
    }
}

impl std::fmt::Display for ErrorBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Some(p95), Some(max)) = (self.p95_ms, self.max_ms) else {
            return f.write_str("no visibility times");
        };
        write!(f, "±{} ms max, ±{} ms p95 (", ms(max), ms(p95))?;
        match self.by_method.as_slice() {
            [one] => write!(f, "{}", one.method)?,
            many => {
                for (i, m) in many.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    let max = ms(m.max_ms.unwrap_or_default());
                    write!(f, "{sep}{} {} at ±{max} ms max", m.method, m.count)?;
                }
            }
        }
        f.write_str(")")
    }
}

/// An error in milliseconds: to a tenth below 10 ms (a commit's is half of one).
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
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
                by: at(215),
                method: Method::KeyPoll,
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
                by: at(240),
                method: Method::KeyPoll,
            })
        );
    }

    #[test]
    fn a_part_logs_commit_narrows_the_polls_bracket_only_where_they_overlap() {
        let mut s = Sightings::new(at(0));
        s.observe(at(100), at(130), []);
        s.observe(at(140), at(215), ["a", "b", "c"]);
        // Committed 1 ms before the server logged it at 160 ms: well inside the polls' bracket.
        assert!(s.narrow(&"a", &[at(160)]));
        let a = *s.get(&"a").unwrap();
        assert_eq!(
            (a.not_before, a.by, a.method),
            (at(159), at(160), Method::PartLog)
        );
        assert_eq!(a.half_width_ms(), 0.5);
        assert_eq!(s.polled(&"a").unwrap().not_before, at(100));
        // Logged just after the poll that missed it started: the poll's edge stands below.
        assert!(s.narrow(&"b", &[at(100) + time::Duration::microseconds(400)]));
        let b = *s.get(&"b").unwrap();
        assert_eq!(b.not_before, at(100));
        // A record outside the bracket (another server's, another clock): the polls' stands.
        let c = *s.get(&"c").unwrap();
        assert!(!s.narrow(&"c", &[at(400)]));
        assert!(!s.narrow(&"c", &[at(50), at(98)]));
        assert_eq!(s.get(&"c"), Some(&c));
        assert_eq!(c.method, Method::KeyPoll);
        // Seen in a merged part: of the commits merged into it, those within the polls'
        // bracket may have been the row's.
        assert!(s.narrow(&"c", &[at(20), at(150), at(170), at(300)]));
        let c = *s.get(&"c").unwrap();
        assert_eq!((c.not_before, c.by), (at(149), at(170)));
        // A row never seen has nothing to narrow.
        assert!(!s.narrow(&"d", &[at(160)]));
    }

    #[test]
    fn a_bracket_counted_from_an_ack_inside_it_starts_there() {
        let b = Bracket {
            not_before: at(100),
            by: at(140),
            method: Method::KeyPoll,
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
        let key_poll = |w: f64| (Method::KeyPoll, w);
        let e = ErrorBar::of(&[key_poll(10.0), key_poll(30.0), key_poll(20.0)]);
        assert_eq!(
            (e.method.as_str(), e.count, e.p95_ms, e.max_ms),
            ("key-poll", 3, Some(30.0), Some(30.0))
        );
        assert_eq!(e.to_string(), "±30 ms max, ±30 ms p95 (key-poll)");
        // Mixed: the figures over all, and each method's share.
        let e = ErrorBar::of(&[
            (Method::PartLog, 0.5),
            key_poll(40.0),
            (Method::PartLog, 0.5),
        ]);
        assert_eq!((e.method.as_str(), e.count), ("part-log+key-poll", 3));
        assert_eq!(
            e.by_method
                .iter()
                .map(|m| (m.method, m.count, m.max_ms))
                .collect::<Vec<_>>(),
            [
                (Method::PartLog, 2, Some(0.5)),
                (Method::KeyPoll, 1, Some(40.0))
            ]
        );
        assert_eq!(
            e.to_string(),
            "±40 ms max, ±40 ms p95 (part-log 2 at ±0.5 ms max; key-poll 1 at ±40 ms max)"
        );
        let none = ErrorBar::of(&[]);
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
