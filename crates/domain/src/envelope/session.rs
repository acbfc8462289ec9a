//! The forwarder's market session (FWD-FEED `classifyMarketSession`).

use time::{Date, Month, Weekday};

use super::IsoInstant;

/// The forwarder's `marketSession` for an event time: the America/New_York wall-clock time of day
/// `< 04:00` overnight, `< 09:30` pre, `< 16:00` regular, `< 20:00` post, else overnight (no
/// weekend or holiday logic). US daylight-saving time is applied with the rules in force since
/// 2007 (second Sunday of March to first Sunday of November, switching at 02:00 local), so no time
/// zone database is needed; instants before 2007 get those rules too.
pub fn market_session(at: IsoInstant) -> &'static str {
    let offset_secs: i64 = if is_us_eastern_dst(at) {
        -4 * 3600
    } else {
        -5 * 3600
    };
    let minute_of_day = (at.unix_seconds() + offset_secs).rem_euclid(86_400) / 60;
    match minute_of_day {
        m if m < 4 * 60 => "overnight",
        m if m < 9 * 60 + 30 => "pre",
        m if m < 16 * 60 => "regular",
        m if m < 20 * 60 => "post",
        _ => "overnight",
    }
}

/// Whether US Eastern daylight time is in effect at `at`.
pub(super) fn is_us_eastern_dst(at: IsoInstant) -> bool {
    let year = at.to_offset_datetime().year();
    // 02:00 EST = 07:00 UTC on the second Sunday of March;
    // 02:00 EDT = 06:00 UTC on the first Sunday of November.
    let (Some(start), Some(end)) = (
        nth_sunday(year, Month::March, 2),
        nth_sunday(year, Month::November, 1),
    ) else {
        return false;
    };
    let start = start.midnight().assume_utc().unix_timestamp() + 7 * 3600;
    let end = end.midnight().assume_utc().unix_timestamp() + 6 * 3600;
    (start..end).contains(&at.unix_seconds())
}

pub(super) fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    let day = 1 + to_sunday + 7 * (n - 1);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    (date.weekday() == Weekday::Sunday).then_some(date)
}
