//! The audited window: `--from/--to`, or `--last D` ending `--settle` ago, checked before any
//! target is touched.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The longest window one audit reads (an hour of a busy symbol is ~100,000 trades; a day
/// keeps memory and time bounded).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The longest `--settle`, `--clock-skew`, `--emit-delay` or `--idle-timeout` taken.
pub const MAX_SETTLE: Duration = Duration::from_secs(24 * 3600);
/// The rows' TTL (`pipeline.md` §5): older rows may be gone.
pub const ROW_TTL: Duration = Duration::from_secs(35 * 24 * 3600);

/// Trades are read from this long before the window's start: to see the second change the
/// audit starts at (see `anchor`), and the trades a job restarted early in the window read
/// again (it resumes from its last checkpoint, up to 60 s back, `pipeline.md` §9 item 4).
pub const TRADES_LEAD: Duration = Duration::from_secs(75);
/// Trades recorded this long after the window's end are read to close its last bar.
pub const TAIL: Duration = Duration::from_secs(10);
/// Quotes recorded this long after the window's end are read (or up to now): the signal
/// operator may meet them before the window's last bars (`quotes`).
pub const QUOTES_PAST: Duration = Duration::from_secs(300);
/// Stored rows ending this long around the window are read to find the start and restarts
/// (a restarted job re-reads up to a checkpoint interval, 60 s, of trades).
pub const ROWS_AROUND: Duration = Duration::from_secs(180);

/// `[from, to)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Window {
    /// The window the flags name, or why it cannot be audited (a usage error).
    pub fn resolve(
        from: Option<&str>,
        to: Option<&str>,
        last: Option<Duration>,
        settle: Duration,
        now: OffsetDateTime,
    ) -> Result<Window, String> {
        if settle > MAX_SETTLE {
            return Err(format!(
                "--settle must be at most {}",
                humantime::format_duration(MAX_SETTLE)
            ));
        }
        let latest = before(now, settle);
        let window = match (from, to, last) {
            (Some(from), Some(to), None) => Window {
                from: instant("--from", from)?,
                to: instant("--to", to)?,
            },
            (None, None, Some(last)) if last <= MAX_WINDOW => Window {
                from: before(latest, last),
                to: latest,
            },
            (None, None, Some(_)) => {
                return Err(format!(
                    "--last is longer than {}: audit it in parts",
                    humantime::format_duration(MAX_WINDOW)
                ))
            }
            _ => return Err("give --from and --to, or --last".into()),
        };
        if window.from >= window.to {
            return Err(format!(
                "the window is empty: --from {} is not before --to {}",
                window.from, window.to
            ));
        }
        if window.to > latest {
            return Err(format!(
                "the window must end at least --settle ({}) ago, by {latest}: the job may not \
                 have written the rows of its last bars yet (sink flush, watermark)",
                humantime::format_duration(settle)
            ));
        }
        if (window.to - window.from).unsigned_abs() > MAX_WINDOW {
            return Err(format!(
                "the window is longer than {}: audit it in parts",
                humantime::format_duration(MAX_WINDOW)
            ));
        }
        Ok(window)
    }

    pub fn from_ms(&self) -> i64 {
        millis(self.from)
    }

    pub fn to_ms(&self) -> i64 {
        millis(self.to)
    }
}

pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `t - d`, saturating at the ends of the supported range (no panic on a huge duration).
pub fn before(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}

/// `t + d`, saturating.
pub fn after(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// An RFC 3339 instant (`2026-07-21T14:30:00Z`); a usage error names the flag.
pub fn instant(flag: &str, text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|e| {
            format!("{flag} {text:?} is not an RFC 3339 time ({e}), e.g. 2026-07-21T14:30:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-07-21 15:00:00 UTC);
    const SETTLE: Duration = Duration::from_secs(60);

    #[test]
    fn last_ends_settle_ago_and_from_to_are_rfc3339() {
        let w = Window::resolve(None, None, Some(Duration::from_secs(900)), SETTLE, NOW).unwrap();
        assert_eq!(w.to, datetime!(2026-07-21 14:59:00 UTC));
        assert_eq!(w.from, datetime!(2026-07-21 14:44:00 UTC));
        let w = Window::resolve(
            Some("2026-07-21T14:30:00+02:00"),
            Some("2026-07-21T12:45:00Z"),
            None,
            SETTLE,
            NOW,
        )
        .unwrap();
        assert_eq!(w.from, datetime!(2026-07-21 12:30:00 UTC));
    }

    #[test]
    fn empty_future_unsettled_long_and_malformed_windows_are_usage_errors() {
        let r = |from: &str, to: &str| Window::resolve(Some(from), Some(to), None, SETTLE, NOW);
        assert!(r("2026-07-21T14:00:00Z", "2026-07-21T14:00:00Z")
            .unwrap_err()
            .contains("empty"));
        assert!(r("2026-07-21T14:00:00Z", "2026-07-21T14:59:30Z")
            .unwrap_err()
            .contains("--settle"));
        assert!(r("2026-07-19T14:00:00Z", "2026-07-21T14:00:00Z")
            .unwrap_err()
            .contains("longer than"));
        assert!(r("yesterday", "2026-07-21T14:00:00Z")
            .unwrap_err()
            .starts_with("--from \"yesterday\""));
        assert!(Window::resolve(None, None, None, SETTLE, NOW).is_err());
        // Durations near the type's limits are usage errors, not overflows.
        let huge = Duration::from_secs(u64::MAX / 2);
        assert!(Window::resolve(None, None, Some(huge), SETTLE, NOW).is_err());
        assert!(Window::resolve(None, None, Some(SETTLE), huge, NOW).is_err());
    }
}
