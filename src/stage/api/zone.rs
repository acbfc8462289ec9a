//! Whether Jangar's process runs in UTC (`jangar.md` §6.8, §5.6): Jangar parses a zone-less
//! `from`/`to` with `new Date()`, i.e. in the server process's time zone, then echoes the
//! instant in `range.requested` as zone-less UTC. Sending a zone-less time and reading the echo
//! measures the server's UTC offset at that instant.
//!
//! The page sends `toISOString()` times (with `Z`) and so never notices; a client sending
//! zone-less times gets a shifted window. That is a warning (a failure with
//! `jangar.strict_contract`), with the measured offset.

use std::time::Instant;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::diagnose::RUNBOOK_JANGAR_TIMEZONE;

use super::decode::range_form;
use super::{findings, Recorder};
use crate::adapter::jangar::{Endpoint, JangarClient};

/// The check's name in reports.
pub(super) const CHECK: &str = "contract bars: zone-less from/to → read as UTC";

/// Asks `symbol`'s bars (the reserved unknown symbol: empty, no fallback, whatever the zone)
/// for the five minutes before `to`, both sent without a zone.
pub(super) async fn check(
    client: &JangarClient,
    rec: &mut Recorder,
    symbol: &str,
    to: OffsetDateTime,
) {
    let started = Instant::now();
    let (from, to) = (to - Duration::minutes(5), to);
    let sent = (range_form(from), range_form(to));
    let query = [
        ("symbol", symbol),
        ("from", sent.0.as_str()),
        ("to", sent.1.as_str()),
    ];
    let reply = client.get(Endpoint::Bars, &query).await;
    let evidence = rec.save("contract-bars-zoneless.json", &reply.result).await;
    let json = match rec.expect_ok(Endpoint::Bars, &reply) {
        Ok(json) => json.clone(),
        Err(detail) => {
            rec.check(CHECK, Err(detail), started, evidence);
            return;
        }
    };
    let outcome = match echoed_offset(&json, (from, to)) {
        Err(problem) => {
            rec.finding(findings::contract(format!(
                "{} with zone-less from/to: {problem}",
                Endpoint::Bars
            )));
            Err(problem)
        }
        Ok(0) => {
            rec.observe("server_utc_offset_min", Value::from(0));
            Ok(format!(
                "from {} echoed unchanged: Jangar's process runs in UTC",
                sent.0
            ))
        }
        Ok(minutes) => {
            rec.observe("server_utc_offset_min", Value::from(minutes));
            let detail = format!(
                "Jangar reads zone-less from/to in its process time zone, {}: from {} came back \
                 as {} (range.requested)",
                utc_offset(minutes),
                sent.0,
                range_form(from - Duration::minutes(minutes))
            );
            rec.findings.drift(
                format!(
                    "Jangar's process time zone is {} (measured), not UTC: it reads zone-less \
                     from/to as local time, so a client sending them gets a window shifted by \
                     {}; the page sends UTC with `Z` and is not affected",
                    utc_offset(minutes),
                    shift(minutes)
                ),
                RUNBOOK_JANGAR_TIMEZONE,
            );
            if rec.strict {
                Err(detail)
            } else {
                Ok(format!("{detail} (a warning)"))
            }
        }
    };
    rec.check(CHECK, outcome, started, evidence);
}

/// The server's UTC offset in minutes, from `range.requested` against what was sent: a server
/// at UTC+h reads local `L` as the instant `L − h`, so offset = sent − echoed.
fn echoed_offset(
    json: &Value,
    (from, to): (OffsetDateTime, OffsetDateTime),
) -> Result<i64, String> {
    let requested = &json["range"]["requested"];
    let read = |key: &str| {
        let text = requested[key].as_str()?;
        let parsed = super::decode::parse_zoneless(&text.replacen('T', " ", 1))?;
        Some(parsed)
    };
    let (Some(echo_from), Some(echo_to)) = (read("from"), read("to")) else {
        return Err(format!(
            "range.requested is {}, not a zone-less from/to",
            requested
        ));
    };
    let offset_from = (from - echo_from).whole_minutes();
    let offset_to = (to - echo_to).whole_minutes();
    if offset_from != offset_to {
        return Err(format!(
            "range.requested {requested} is shifted unevenly ({offset_from} and {offset_to} min)"
        ));
    }
    Ok(offset_from)
}

/// `UTC−05:00`, `UTC+05:30`.
fn utc_offset(minutes: i64) -> String {
    let sign = if minutes < 0 { '−' } else { '+' };
    let m = minutes.abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `5 h`, `5 h 30 min`, `45 min`.
fn shift(minutes: i64) -> String {
    let m = minutes.abs();
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn answer(from: &str, to: &str) -> Value {
        json!({"ok": true, "range": {"requested": {"from": from, "to": to}}})
    }

    #[test]
    fn the_offset_is_what_was_sent_minus_what_came_back() {
        let from = datetime!(2026-12-01 21:26:56 UTC);
        let to = from + Duration::minutes(5);
        // jangar.md §6.8: under TZ=America/New_York, 21:26:56 comes back as 02:26:56 next day.
        let ny = answer("2026-12-02T02:26:56.000", "2026-12-02T02:31:56.000");
        assert_eq!(echoed_offset(&ny, (from, to)), Ok(-300));
        let utc = answer("2026-12-01T21:26:56.000", "2026-12-01T21:31:56.000");
        assert_eq!(echoed_offset(&utc, (from, to)), Ok(0));
        let india = answer("2026-12-01T15:56:56.000", "2026-12-01T16:01:56.000");
        assert_eq!(echoed_offset(&india, (from, to)), Ok(330));
        assert!(echoed_offset(&json!({"ok": true}), (from, to))
            .unwrap_err()
            .contains("not a zone-less"));
        let uneven = answer("2026-12-01T21:26:56.000", "2026-12-01T22:31:56.000");
        assert!(echoed_offset(&uneven, (from, to))
            .unwrap_err()
            .contains("unevenly"));
    }

    #[test]
    fn offsets_read_like_a_person_writes_them() {
        assert_eq!(utc_offset(-300), "UTC−05:00");
        assert_eq!(utc_offset(330), "UTC+05:30");
        assert_eq!(shift(-300), "5 h");
        assert_eq!(shift(330), "5 h 30 min");
        assert_eq!(shift(45), "45 min");
    }
}
