//! The contract's cases, in the order the API validates: the table of requests and answers.

use time::{Duration, OffsetDateTime};

use super::{Case, Count, Expect, LIMIT_RANGE, PATTERN, RANGE_TOO_LONG, SEVEN_DAYS};
use crate::adapter::jangar::Endpoint;
use crate::domain::model::iso_millis;
use crate::domain::symbols;
use crate::stage::api::decode::range_form;
use crate::stage::api::Probe;

fn case(
    slug: &'static str,
    what: &'static str,
    endpoint: Endpoint,
    query: &[(&'static str, &str)],
    expect: Expect,
) -> Case {
    Case {
        slug,
        what,
        endpoint,
        query: query.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        expect,
    }
}

/// The reserved symbol no run writes: Jangar must answer it with empty data, not an error.
pub(in crate::stage::api) fn unknown_symbol(run: &symbols::RunId) -> String {
    symbols::synthetic(run, "NODATA")
}

/// Every case, built around a symbol that has rows in a window.
pub(in crate::stage::api) fn cases(p: &Probe, unknown: &str) -> Vec<Case> {
    use Endpoint::{Bars, Latest, Signals};
    use Expect::Rejected;
    let s = p.symbol.as_str();
    let (f, t) = (iso_millis(p.from), iso_millis(p.to));
    let before_from = iso_millis(p.from - Duration::seconds(1));
    let week = iso_millis(p.to - SEVEN_DAYS);
    let week_and_ms = iso_millis(p.to - SEVEN_DAYS - Duration::milliseconds(1));
    let long = iso_millis(p.to - Duration::days(8));
    let n = |known: Option<usize>| match (p.exact, known) {
        (true, Some(n)) => Count::Exactly(n),
        _ => Count::Any,
    };
    let range =
        |symbol: &str, count: Count, from: OffsetDateTime, to: OffsetDateTime| Expect::Range {
            symbol: symbol.to_string(),
            count,
            requested: (range_form(from), range_form(to)),
            no_fallback: p.exact,
        };
    let all = n(p.bars_in_window);
    let from_ms = (p.from.unix_timestamp_nanos() / 1_000_000).to_string();
    let to_ms = (p.to.unix_timestamp_nanos() / 1_000_000).to_string();
    let from_s = p.from.unix_timestamp().to_string();
    // Ceiling, so the window in whole seconds still holds every bar.
    let to_s_value = p.to.unix_timestamp() + i64::from(p.to.nanosecond() > 0);
    let to_s = to_s_value.to_string();
    let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap_or(p.to);
    let long_symbol = "A".repeat(33);
    let lower = s.to_lowercase();
    vec![
        // §1.1, in validation order.
        case(
            "bars-no-symbol",
            "no symbol",
            Bars,
            &[("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "bars-blank-symbol",
            "blank symbol",
            Bars,
            &[("symbol", "  "), ("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "bars-slash-symbol",
            "symbol BTC/USD",
            Bars,
            &[("symbol", "BTC/USD"), ("from", &f), ("to", &t)],
            Rejected(PATTERN),
        ),
        case(
            "bars-long-symbol",
            "33-character symbol",
            Bars,
            &[("symbol", &long_symbol), ("from", &f), ("to", &t)],
            Rejected(PATTERN),
        ),
        case(
            "bars-no-from",
            "no from",
            Bars,
            &[("symbol", s), ("to", &t)],
            Rejected("from is required"),
        ),
        case(
            "bars-bad-from",
            "from not a time",
            Bars,
            &[("symbol", s), ("from", "not-a-date"), ("to", &t)],
            Rejected("from must be a valid timestamp"),
        ),
        case(
            "bars-no-to",
            "no to",
            Bars,
            &[("symbol", s), ("from", &f)],
            Rejected("to is required"),
        ),
        case(
            "bars-bad-to",
            "to not a time",
            Bars,
            &[("symbol", s), ("from", &f), ("to", "not-a-date")],
            Rejected("to must be a valid timestamp"),
        ),
        case(
            "bars-to-before-from",
            "to before from",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &before_from)],
            Rejected("to must be after from"),
        ),
        case(
            "bars-range-7d-1ms",
            "7 days + 1 ms",
            Bars,
            &[("symbol", s), ("from", &week_and_ms), ("to", &t)],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "bars-limit-abc",
            "limit=abc",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "abc")],
            Rejected("limit must be a number"),
        ),
        case(
            "bars-limit-0",
            "limit=0",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "0")],
            Rejected(LIMIT_RANGE),
        ),
        case(
            "bars-limit-5001",
            "limit=5001",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5001")],
            Rejected(LIMIT_RANGE),
        ),
        // The first failing rule wins.
        case(
            "bars-order-symbol-first",
            "bad symbol and no from",
            Bars,
            &[("symbol", "BAD SYM")],
            Rejected(PATTERN),
        ),
        case(
            "bars-order-range-before-limit",
            "8 days and limit=abc",
            Bars,
            &[("symbol", s), ("from", &long), ("to", &t), ("limit", "abc")],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "bars-order-to-before-limit",
            "to before from and limit=0",
            Bars,
            &[
                ("symbol", s),
                ("from", &f),
                ("to", &before_from),
                ("limit", "0"),
            ],
            Rejected("to must be after from"),
        ),
        // Accepted forms and bounds.
        case(
            "bars-range-7d",
            "exactly 7 days",
            Bars,
            &[("symbol", s), ("from", &week), ("to", &t)],
            range(s, Count::Any, p.to - SEVEN_DAYS, p.to),
        ),
        case(
            "bars-limit-5000",
            "limit=5000",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5000")],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-limit-1",
            "limit=1 (the oldest row)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "1")],
            range(s, n(p.bars_in_window.map(|n| n.min(1))), p.from, p.to),
        ),
        // `Number.parseInt` reads the leading digits: "2abc" is 2 and "1.9" is 1.
        case(
            "bars-limit-2abc",
            "limit=2abc (parseInt)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "2abc")],
            range(s, n(p.bars_in_window.map(|n| n.min(2))), p.from, p.to),
        ),
        case(
            "bars-limit-1.9",
            "limit=1.9 (parseInt)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "1.9")],
            range(s, n(p.bars_in_window.map(|n| n.min(1))), p.from, p.to),
        ),
        case(
            "bars-from-equals-to",
            "from = to",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &f)],
            range(s, n(p.bars_at_from), p.from, p.from),
        ),
        case(
            "bars-empty-limit",
            "empty limit (default 1000)",
            Bars,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "")],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-lowercase-symbol",
            "lower-case symbol",
            Bars,
            &[("symbol", &lower), ("from", &f), ("to", &t)],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-epoch-ms",
            "epoch milliseconds",
            Bars,
            &[("symbol", s), ("from", &from_ms), ("to", &to_ms)],
            range(s, all, p.from, p.to),
        ),
        case(
            "bars-epoch-s",
            "epoch seconds",
            Bars,
            &[("symbol", s), ("from", &from_s), ("to", &to_s)],
            range(s, all, at(p.from.unix_timestamp()), at(to_s_value)),
        ),
        case(
            "bars-unknown-symbol",
            "unknown symbol",
            Bars,
            &[("symbol", unknown), ("from", &f), ("to", &t)],
            Expect::Range {
                symbol: unknown.into(),
                count: Count::Exactly(0),
                requested: (range_form(p.from), range_form(p.to)),
                no_fallback: true,
            },
        ),
        // Signals share the validation (§1.5).
        case(
            "signals-no-symbol",
            "no symbol",
            Signals,
            &[("from", &f), ("to", &t)],
            Rejected("symbol is required"),
        ),
        case(
            "signals-limit-5001",
            "limit=5001",
            Signals,
            &[("symbol", s), ("from", &f), ("to", &t), ("limit", "5001")],
            Rejected(LIMIT_RANGE),
        ),
        case(
            "signals-range-8d",
            "8 days",
            Signals,
            &[("symbol", s), ("from", &long), ("to", &t)],
            Rejected(RANGE_TOO_LONG),
        ),
        case(
            "signals-unknown-symbol",
            "unknown symbol",
            Signals,
            &[("symbol", unknown), ("from", &f), ("to", &t)],
            Expect::Range {
                symbol: unknown.into(),
                count: Count::Exactly(0),
                requested: (range_form(p.from), range_form(p.to)),
                no_fallback: true,
            },
        ),
        // Latest: only `symbol` (§1.6).
        case(
            "latest-no-symbol",
            "no symbol",
            Latest,
            &[],
            Rejected("symbol is required"),
        ),
        case(
            "latest-slash-symbol",
            "symbol BTC/USD",
            Latest,
            &[("symbol", "BTC/USD")],
            Rejected(PATTERN),
        ),
        case(
            "latest-unknown-symbol",
            "unknown symbol",
            Latest,
            &[("symbol", unknown)],
            Expect::Latest {
                symbol: unknown.into(),
                empty: true,
            },
        ),
        case(
            "latest-ignores-range",
            "from/to/limit ignored",
            Latest,
            &[("symbol", s), ("from", "x"), ("limit", "abc")],
            Expect::Latest {
                symbol: s.into(),
                empty: false,
            },
        ),
    ]
}
