//! Turning boundaries into requeue delays: conditions change at the instant
//! their boundary arrives, without periodic polling (DeprecationNotice rules).

use std::time::Duration;

use jiff::Timestamp;

/// The longest delay a controller should requeue for: one hour.
///
/// kube-runtime clamps long delays (beyond ~6 months), and a timer armed for
/// weeks drifts from the wall clock (host suspend, NTP steps) because it runs
/// on the monotonic clock. Callers therefore requeue at
/// `min(next boundary - now, cap)` and recompute then; with a one-hour cap the
/// drift is bounded by an hour and the wake-ups, a pure recomputation that
/// writes nothing when nothing changed, cost almost nothing.
pub const MAX_REQUEUE: Duration = Duration::from_secs(60 * 60);

/// The earliest of the given boundaries, ignoring `None`s; `None` if there are
/// none.
pub fn earliest(xs: impl IntoIterator<Item = Option<Timestamp>>) -> Option<Timestamp> {
    xs.into_iter().flatten().min()
}

/// The earliest of the given boundaries strictly after `now`: the
/// `next_change` of an evaluation whose answer changes at those boundaries.
pub fn earliest_after(
    xs: impl IntoIterator<Item = Option<Timestamp>>,
    now: Timestamp,
) -> Option<Timestamp> {
    earliest(xs.into_iter().map(|x| x.filter(|&t| t > now)))
}

/// How long to wait before recomputing, given the `next_change` boundaries of
/// everything a reconcile evaluated.
///
/// The delay runs until the earliest boundary, capped at `cap` (use
/// [`MAX_REQUEUE`]). A boundary at or before `now` (e.g. one computed against
/// an earlier clock reading) is due already and gives [`Duration::ZERO`].
/// `None` when no boundary is given at all: nothing changes with time alone.
pub fn requeue_after(
    next: impl IntoIterator<Item = Option<Timestamp>>,
    now: Timestamp,
    cap: Duration,
) -> Option<Duration> {
    let next = earliest(next)?;
    // A negative span (boundary already passed) fails to convert: due now.
    let until = Duration::try_from(next.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(until.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn earliest_ignores_none() {
        assert_eq!(earliest([]), None);
        assert_eq!(earliest([None, None]), None);
        assert_eq!(
            earliest([
                None,
                Some(ts("2026-02-01T00:00:00Z")),
                Some(ts("2026-01-01T00:00:00Z"))
            ]),
            Some(ts("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn earliest_after_is_strict() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(earliest_after([Some(now)], now), None);
        assert_eq!(
            earliest_after([Some(now), Some(ts("2026-01-02T00:00:00Z"))], now),
            Some(ts("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn delay_until_the_earliest_boundary() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            requeue_after(
                [
                    Some(ts("2026-01-01T00:10:00Z")),
                    None,
                    Some(ts("2026-01-01T00:05:00.5Z"))
                ],
                now,
                MAX_REQUEUE
            ),
            Some(Duration::from_millis(5 * 60 * 1000 + 500))
        );
    }

    #[test]
    fn delay_is_capped() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            requeue_after([Some(ts("2027-01-01T00:00:00Z"))], now, MAX_REQUEUE),
            Some(MAX_REQUEUE)
        );
        assert_eq!(
            requeue_after([Some(ts("2026-01-01T01:00:00Z"))], now, MAX_REQUEUE),
            Some(MAX_REQUEUE)
        );
        assert_eq!(
            requeue_after([Some(Timestamp::MAX)], Timestamp::MIN, Duration::MAX),
            Some(Duration::try_from(Timestamp::MAX.duration_since(Timestamp::MIN)).unwrap())
        );
        assert_eq!(
            requeue_after(
                [Some(ts("2026-01-01T00:00:10Z"))],
                now,
                Duration::from_secs(1)
            ),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn past_or_present_boundary_is_due_now() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            requeue_after([Some(now)], now, MAX_REQUEUE),
            Some(Duration::ZERO)
        );
        assert_eq!(
            requeue_after(
                [
                    Some(ts("2025-12-31T00:00:00Z")),
                    Some(ts("2026-01-01T00:05:00Z"))
                ],
                now,
                MAX_REQUEUE
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            requeue_after([Some(Timestamp::MIN)], Timestamp::MAX, MAX_REQUEUE),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn no_boundary_no_requeue() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(requeue_after([None, None], now, MAX_REQUEUE), None);
        assert_eq!(requeue_after(Vec::new(), now, MAX_REQUEUE), None);
    }

    #[test]
    fn max_requeue_is_one_hour() {
        assert_eq!(MAX_REQUEUE, Duration::from_secs(3600));
    }
}
