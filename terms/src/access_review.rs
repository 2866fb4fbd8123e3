//! The monthly access review (§4.2(2): "review the authorization of Client's
//! individuals having access to the Platform on a monthly basis").

use jiff::Timestamp;

use crate::calendar::{add_days, next_instant};

/// Days after the last review (or the account's creation) until the next
/// review is due. "Monthly" is read as 30 days so the deadline is the same
/// length in every month.
pub const ACCESS_REVIEW_DAYS: i64 = 30;

/// The outcome of [`evaluate_access_review`] (`AccessReviewCurrent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessReview {
    /// `now <= due_at`: a review exactly 30 days old is still current.
    pub current: bool,
    /// The last instant at which the review is still current.
    pub due_at: Timestamp,
    /// `due_at + 1ns` (the first overdue instant) while current; `None` once
    /// overdue (only a new review changes that) or when `due_at` saturated.
    pub next_change: Option<Timestamp>,
}

/// Whether the account's access review is current at `now` (§4.2(2)).
///
/// `due_at` = `last_reviewed_at` (or `account_created_at` when never reviewed)
/// + 30 days. The account becomes overdue at the first instant after `due_at`.
///
/// A `last_reviewed_at` after `now` (clock skew between the reviewer and the
/// cluster) counts as a review already made, so the account is current; its
/// `due_at` stays `last_reviewed_at + 30 days` rather than being clamped to
/// `now + 30 days`, because a due date that moves with every evaluation would
/// change the status on every reconcile and make the controller spin.
pub fn evaluate_access_review(
    last_reviewed_at: Option<Timestamp>,
    account_created_at: Timestamp,
    now: Timestamp,
) -> AccessReview {
    let since = last_reviewed_at.unwrap_or(account_created_at);
    let due_at = add_days(since, ACCESS_REVIEW_DAYS);
    let current = now <= due_at;
    AccessReview {
        current,
        due_at,
        next_change: if current { next_instant(due_at) } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn exactly_30_days_is_current_one_nanosecond_more_is_overdue() {
        let reviewed = ts("2026-03-01T09:00:00Z");
        let created = ts("2025-01-01T00:00:00Z");
        let due = ts("2026-03-31T09:00:00Z");
        let r = evaluate_access_review(Some(reviewed), created, due);
        assert!(r.current);
        assert_eq!(r.due_at, due);
        assert_eq!(r.next_change, Some(ts("2026-03-31T09:00:00.000000001Z")));
        let r = evaluate_access_review(
            Some(reviewed),
            created,
            ts("2026-03-31T09:00:00.000000001Z"),
        );
        assert!(!r.current);
        assert_eq!(r.due_at, due);
        assert_eq!(r.next_change, None);
    }

    #[test]
    fn fresh_review_is_current() {
        let now = ts("2026-03-01T09:00:00Z");
        let r = evaluate_access_review(Some(now), ts("2020-01-01T00:00:00Z"), now);
        assert!(r.current);
        assert_eq!(r.due_at, ts("2026-03-31T09:00:00Z"));
    }

    #[test]
    fn never_reviewed_counts_from_creation() {
        let created = ts("2026-03-01T00:00:00Z");
        let r = evaluate_access_review(None, created, ts("2026-03-15T00:00:00Z"));
        assert!(r.current);
        assert_eq!(r.due_at, ts("2026-03-31T00:00:00Z"));
        assert_eq!(r.next_change, Some(ts("2026-03-31T00:00:00.000000001Z")));
        assert!(evaluate_access_review(None, created, ts("2026-03-31T00:00:00Z")).current);
        assert!(!evaluate_access_review(None, created, ts("2026-03-31T00:00:01Z")).current);
    }

    #[test]
    fn a_review_restores_currency() {
        let created = ts("2026-01-01T00:00:00Z");
        let now = ts("2026-06-01T00:00:00Z");
        assert!(!evaluate_access_review(None, created, now).current);
        assert!(!evaluate_access_review(Some(ts("2026-04-01T00:00:00Z")), created, now).current);
        assert!(evaluate_access_review(Some(ts("2026-05-15T00:00:00Z")), created, now).current);
    }

    #[test]
    fn review_in_the_future_counts_and_its_due_date_is_stable() {
        let created = ts("2020-01-01T00:00:00Z");
        let reviewed = ts("2026-03-01T00:00:05Z");
        let a = evaluate_access_review(Some(reviewed), created, ts("2026-03-01T00:00:00Z"));
        let b = evaluate_access_review(Some(reviewed), created, ts("2026-03-01T00:00:03Z"));
        assert!(a.current);
        assert_eq!(a, b);
        assert_eq!(a.due_at, ts("2026-03-31T00:00:05Z"));
    }

    #[test]
    fn saturated_due_date_never_becomes_overdue() {
        let r = evaluate_access_review(Some(Timestamp::MAX), Timestamp::MIN, Timestamp::MAX);
        assert!(r.current);
        assert_eq!(r.due_at, Timestamp::MAX);
        assert_eq!(r.next_change, None);
        let r = evaluate_access_review(None, Timestamp::MIN, Timestamp::MAX);
        assert!(!r.current);
        assert_eq!(r.next_change, None);
    }
}
