//! Date arithmetic as the terms count it: calendar months in UTC civil time,
//! days of exactly 24 hours, and saturation instead of overflow.
//!
//! Every function here is total: an addition that leaves the range of
//! [`Timestamp`] saturates to [`Timestamp::MAX`] (or [`Timestamp::MIN`] for a
//! negative amount). A boundary at `Timestamp::MAX` therefore means "not within
//! the representable range", which callers treat as (practically) never.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// Seconds in one day of the terms: days are 24-hour days, not civil days.
const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// The value an overflowing addition of `amount_is_negative` saturates to.
fn saturated(amount_is_negative: bool) -> Timestamp {
    if amount_is_negative {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    }
}

/// `ts` plus `days` days of exactly 24 hours each ("days are 24-hour days").
///
/// Saturates to [`Timestamp::MAX`] / [`Timestamp::MIN`] on overflow; never panics.
pub fn add_days(ts: Timestamp, days: i64) -> Timestamp {
    let Some(secs) = days.checked_mul(SECONDS_PER_DAY) else {
        return saturated(days < 0);
    };
    ts.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| saturated(days < 0))
}

/// `ts` plus `months` calendar months, counted in UTC civil time.
///
/// The day of month is clamped to the end of a shorter month, so
/// 2026-08-31 + 6 months = 2027-02-28 and 2027-08-31 + 6 months = 2028-02-29;
/// the time of day is kept. Saturates to [`Timestamp::MAX`] /
/// [`Timestamp::MIN`] on overflow; never panics.
pub fn add_months(ts: Timestamp, months: i32) -> Timestamp {
    // As years and months of one sign, not months alone: a span holds at most
    // 239 976 months, fewer than the range holds (MIN + 239 977 months is
    // 9999-02-02, not an overflow). Years and months are added together and
    // the day clamped once, so the result is the same. Beyond 19 998 years
    // the result always leaves the range.
    let span = Span::new()
        .try_years(months / 12)
        .and_then(|s| s.try_months(months % 12));
    let Ok(span) = span else {
        return saturated(months < 0);
    };
    ts.to_zoned(TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| saturated(months < 0))
}

/// The instant one nanosecond after `ts`: the first instant strictly after an
/// inclusive boundary. `None` when `ts` is [`Timestamp::MAX`].
pub fn next_instant(ts: Timestamp) -> Option<Timestamp> {
    ts.checked_add(SignedDuration::from_nanos(1)).ok()
}

/// `ts` in RFC 3339 UTC at second precision (fraction truncated), e.g.
/// `2027-02-28T00:00:00Z`: the form condition messages use to state dates.
pub fn fmt_instant(ts: Timestamp) -> String {
    format!("{ts:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn month_end_is_clamped() {
        assert_eq!(
            add_months(ts("2026-08-31T00:00:00Z"), 6),
            ts("2027-02-28T00:00:00Z")
        );
        assert_eq!(
            add_months(ts("2026-01-31T12:34:56.789Z"), 1),
            ts("2026-02-28T12:34:56.789Z")
        );
        assert_eq!(
            add_months(ts("2026-03-31T00:00:00Z"), 1),
            ts("2026-04-30T00:00:00Z")
        );
    }

    #[test]
    fn leap_years() {
        assert_eq!(
            add_months(ts("2027-08-31T00:00:00Z"), 6),
            ts("2028-02-29T00:00:00Z")
        );
        assert_eq!(
            add_months(ts("2028-02-29T00:00:00Z"), 12),
            ts("2029-02-28T00:00:00Z")
        );
        assert_eq!(
            add_months(ts("2028-02-29T00:00:00Z"), 48),
            ts("2032-02-29T00:00:00Z")
        );
        // 2100 is not a leap year.
        assert_eq!(
            add_months(ts("2099-08-31T00:00:00Z"), 6),
            ts("2100-02-28T00:00:00Z")
        );
    }

    #[test]
    fn months_are_utc_civil_months() {
        // Late on the last day of a month in UTC: no local time zone shifts it.
        assert_eq!(
            add_months(ts("2026-01-31T23:30:00Z"), 1),
            ts("2026-02-28T23:30:00Z")
        );
        assert_eq!(
            add_months(ts("2026-12-15T00:00:00Z"), 1),
            ts("2027-01-15T00:00:00Z")
        );
    }

    #[test]
    fn days_are_24_hours() {
        assert_eq!(
            add_days(ts("2026-03-01T10:00:00Z"), 30),
            ts("2026-03-31T10:00:00Z")
        );
        assert_eq!(
            add_days(ts("2028-02-01T00:00:00Z"), 30),
            ts("2028-03-02T00:00:00Z")
        );
        assert_eq!(
            add_days(ts("2026-03-01T10:00:00Z"), 0),
            ts("2026-03-01T10:00:00Z")
        );
    }

    #[test]
    fn overflow_saturates() {
        assert_eq!(add_days(Timestamp::MAX, 1), Timestamp::MAX);
        assert_eq!(add_days(Timestamp::MIN, -1), Timestamp::MIN);
        assert_eq!(add_days(Timestamp::UNIX_EPOCH, i64::MAX), Timestamp::MAX);
        assert_eq!(add_days(Timestamp::UNIX_EPOCH, i64::MIN), Timestamp::MIN);
        assert_eq!(add_months(Timestamp::MAX, 1), Timestamp::MAX);
        assert_eq!(add_months(Timestamp::MIN, -1), Timestamp::MIN);
        assert_eq!(add_months(Timestamp::UNIX_EPOCH, i32::MAX), Timestamp::MAX);
        assert_eq!(add_months(Timestamp::UNIX_EPOCH, i32::MIN), Timestamp::MIN);
        assert_eq!(add_months(Timestamp::MAX, 0), Timestamp::MAX);
        assert_eq!(add_months(Timestamp::MIN, 0), Timestamp::MIN);
    }

    #[test]
    fn month_counts_spanning_the_whole_range_do_not_saturate_early() {
        // More months than a jiff span holds, yet inside the range.
        assert_eq!(
            add_months(Timestamp::MIN, 239_977),
            ts("9999-02-02T01:59:59Z")
        );
        assert_eq!(
            add_months(Timestamp::MIN, 239_987),
            ts("9999-12-02T01:59:59Z")
        );
        assert_eq!(add_months(Timestamp::MIN, 239_988), Timestamp::MAX);
        assert_eq!(
            add_months(Timestamp::MAX, -239_977),
            ts("-009999-11-30T22:00:00.999999999Z")
        );
        assert_eq!(add_months(Timestamp::MAX, -239_988), Timestamp::MIN);
    }

    #[test]
    fn next_instant_is_one_nanosecond_later() {
        assert_eq!(
            next_instant(ts("2026-01-01T00:00:00Z")),
            Some(ts("2026-01-01T00:00:00.000000001Z"))
        );
        assert_eq!(next_instant(Timestamp::MAX), None);
    }

    #[test]
    fn formats_at_second_precision() {
        assert_eq!(
            fmt_instant(ts("2027-02-28T00:00:00Z")),
            "2027-02-28T00:00:00Z"
        );
        assert_eq!(
            fmt_instant(ts("2027-02-28T12:34:56.999999999Z")),
            "2027-02-28T12:34:56Z"
        );
        assert_eq!(fmt_instant(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_instant(Timestamp::MAX), "9999-12-30T22:00:00Z");
        // Never panics at the other end either.
        assert!(!fmt_instant(Timestamp::MIN).is_empty());
    }
}
