//! Retention of a deleted account's data (§6: stored for up to thirteen
//! months, downloadable during that time).

use jiff::Timestamp;

use crate::calendar::add_months;

/// The longest retention the terms allow, in calendar months (§6).
pub const MAX_RETENTION_MONTHS: u32 = 13;

/// When a deleted account's retained namespaces may be deleted:
/// `deleted_at + retention_months` calendar months, with `retention_months`
/// clamped to [`MAX_RETENTION_MONTHS`] (§6 allows no longer). Month ends are
/// clamped (2028-02-29 + 12 months = 2029-02-28); saturates, never panics.
pub fn retained_until(deleted_at: Timestamp, retention_months: u32) -> Timestamp {
    // Clamped to 13, so the conversion cannot fail.
    let months = i32::try_from(retention_months.min(MAX_RETENTION_MONTHS)).unwrap_or(0);
    add_months(deleted_at, months)
}

/// The outcome of [`evaluate_retention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retention {
    /// `now >= until`: the retention period has lapsed and the data may go.
    pub expired: bool,
    /// The end of the retention period ([`retained_until`]).
    pub until: Timestamp,
    /// `until` while not yet expired; `None` once expired.
    pub next_change: Option<Timestamp>,
}

/// Whether a deleted account's retention period has lapsed at `now` (§6).
/// `retention_months = 0` expires at the deletion instant itself.
pub fn evaluate_retention(
    deleted_at: Timestamp,
    retention_months: u32,
    now: Timestamp,
) -> Retention {
    let until = retained_until(deleted_at, retention_months);
    let expired = now >= until;
    Retention {
        expired,
        until,
        next_change: (!expired).then_some(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn zero_months_expires_immediately() {
        let deleted = ts("2026-03-01T12:00:00Z");
        let r = evaluate_retention(deleted, 0, deleted);
        assert!(r.expired);
        assert_eq!(r.until, deleted);
        assert_eq!(r.next_change, None);
    }

    #[test]
    fn thirteen_months() {
        let deleted = ts("2026-03-01T12:00:00Z");
        let until = ts("2027-04-01T12:00:00Z");
        assert_eq!(retained_until(deleted, 13), until);
        let r = evaluate_retention(deleted, 13, ts("2027-04-01T11:59:59.999999999Z"));
        assert!(!r.expired);
        assert_eq!(r.until, until);
        assert_eq!(r.next_change, Some(until));
        let r = evaluate_retention(deleted, 13, until);
        assert!(r.expired);
        assert_eq!(r.next_change, None);
    }

    #[test]
    fn longer_retention_is_clamped_to_13_months() {
        let deleted = ts("2026-03-01T12:00:00Z");
        assert_eq!(retained_until(deleted, 20), retained_until(deleted, 13));
        assert_eq!(
            retained_until(deleted, u32::MAX),
            retained_until(deleted, 13)
        );
        assert_eq!(retained_until(deleted, 14), ts("2027-04-01T12:00:00Z"));
    }

    #[test]
    fn month_ends() {
        assert_eq!(
            retained_until(ts("2028-02-29T00:00:00Z"), 12),
            ts("2029-02-28T00:00:00Z")
        );
        assert_eq!(
            retained_until(ts("2026-01-31T00:00:00Z"), 1),
            ts("2026-02-28T00:00:00Z")
        );
        assert_eq!(
            retained_until(ts("2027-01-31T00:00:00Z"), 13),
            ts("2028-02-29T00:00:00Z")
        );
        assert_eq!(
            retained_until(ts("2026-08-31T00:00:00Z"), 6),
            ts("2027-02-28T00:00:00Z")
        );
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let r = evaluate_retention(Timestamp::MAX, 13, Timestamp::MIN);
        assert_eq!(r.until, Timestamp::MAX);
        assert!(!r.expired);
        assert_eq!(r.next_change, Some(Timestamp::MAX));
        assert!(evaluate_retention(Timestamp::MAX, 13, Timestamp::MAX).expired);
    }
}
