//! The time window of a temporary suspension (§2.4): optional `startAt` and
//! `endAt`.

use std::fmt;

use jiff::Timestamp;

use crate::requeue::earliest_after;

/// Where `now` falls relative to a suspension's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuspensionPhase {
    /// Before `startAt` (and before `endAt`).
    Pending,
    /// In force: at or after `startAt` (or no `startAt`) and before `endAt`.
    Active,
    /// At or after `endAt`: the suspension is lifted by time.
    Ended,
}

impl SuspensionPhase {
    /// A CamelCase name (`Pending`, `Active`, `Ended`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SuspensionPhase::Pending => "Pending",
            SuspensionPhase::Active => "Active",
            SuspensionPhase::Ended => "Ended",
        }
    }
}

impl fmt::Display for SuspensionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`evaluate_suspension`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SuspensionWindow {
    /// `phase == Active`: the account's access is suspended now.
    pub active: bool,
    /// Where `now` falls in the window.
    pub phase: SuspensionPhase,
    /// The next `startAt` / `endAt` strictly after `now` at which the phase
    /// changes; `None` if never.
    pub next_change: Option<Timestamp>,
}

/// Evaluates a suspension's window at `now` (§2.4). The start is inclusive,
/// the end exclusive: active iff `(startAt is None or now >= startAt) and
/// (endAt is None or now < endAt)`.
///
/// `Ended` is decided first: from `endAt` on the phase is `Ended`, whatever
/// `startAt` is. So a window with `endAt <= startAt` (see
/// [`is_empty_window`]) is never active: `Pending` before `endAt`, `Ended`
/// from it on.
pub fn evaluate_suspension(
    start_at: Option<Timestamp>,
    end_at: Option<Timestamp>,
    now: Timestamp,
) -> SuspensionWindow {
    let phase = if end_at.is_some_and(|end| now >= end) {
        SuspensionPhase::Ended
    } else if start_at.is_none_or(|start| now >= start) {
        SuspensionPhase::Active
    } else {
        SuspensionPhase::Pending
    };
    let next_change = match phase {
        // Pending: whichever comes first, start (→ Active) or end (→ Ended).
        SuspensionPhase::Pending => earliest_after([start_at, end_at], now),
        SuspensionPhase::Active => earliest_after([end_at], now),
        SuspensionPhase::Ended => None,
    };
    SuspensionWindow {
        active: phase == SuspensionPhase::Active,
        phase,
        next_change,
    }
}

/// True when `endAt <= startAt`: the window can never be active, which the
/// operator should report rather than silently ignore.
pub fn is_empty_window(start_at: Option<Timestamp>, end_at: Option<Timestamp>) -> bool {
    matches!((start_at, end_at), (Some(start), Some(end)) if end <= start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_window_is_active_forever() {
        let w = evaluate_suspension(None, None, ts("2026-01-01T00:00:00Z"));
        assert!(w.active);
        assert_eq!(w.phase, SuspensionPhase::Active);
        assert_eq!(w.next_change, None);
        assert!(evaluate_suspension(None, None, Timestamp::MIN).active);
        assert!(evaluate_suspension(None, None, Timestamp::MAX).active);
    }

    #[test]
    fn start_is_inclusive() {
        let start = ts("2026-02-01T00:00:00Z");
        let w = evaluate_suspension(Some(start), None, ts("2026-01-31T23:59:59.999999999Z"));
        assert_eq!(w.phase, SuspensionPhase::Pending);
        assert!(!w.active);
        assert_eq!(w.next_change, Some(start));
        let w = evaluate_suspension(Some(start), None, start);
        assert_eq!(w.phase, SuspensionPhase::Active);
        assert!(w.active);
        assert_eq!(w.next_change, None);
    }

    #[test]
    fn end_is_exclusive() {
        let end = ts("2026-02-01T00:00:00Z");
        let w = evaluate_suspension(None, Some(end), ts("2026-01-31T23:59:59.999999999Z"));
        assert!(w.active);
        assert_eq!(w.next_change, Some(end));
        let w = evaluate_suspension(None, Some(end), end);
        assert_eq!(w.phase, SuspensionPhase::Ended);
        assert!(!w.active);
        assert_eq!(w.next_change, None);
    }

    #[test]
    fn bounded_window() {
        let start = Some(ts("2026-02-01T00:00:00Z"));
        let end = Some(ts("2026-03-01T00:00:00Z"));
        let at = |s: &str| evaluate_suspension(start, end, ts(s));
        assert_eq!(at("2026-01-15T00:00:00Z").phase, SuspensionPhase::Pending);
        assert_eq!(at("2026-01-15T00:00:00Z").next_change, start);
        assert_eq!(at("2026-02-01T00:00:00Z").phase, SuspensionPhase::Active);
        assert_eq!(at("2026-02-01T00:00:00Z").next_change, end);
        assert_eq!(at("2026-02-28T23:59:59Z").phase, SuspensionPhase::Active);
        assert_eq!(at("2026-03-01T00:00:00Z").phase, SuspensionPhase::Ended);
        assert_eq!(at("2026-03-01T00:00:00Z").next_change, None);
        assert!(!is_empty_window(start, end));
    }

    #[test]
    fn empty_window_is_never_active() {
        let start = Some(ts("2026-03-01T00:00:00Z"));
        let end = Some(ts("2026-02-01T00:00:00Z"));
        assert!(is_empty_window(start, end));
        assert!(is_empty_window(start, start));
        let w = evaluate_suspension(start, end, ts("2026-01-01T00:00:00Z"));
        assert_eq!(w.phase, SuspensionPhase::Pending);
        assert_eq!(w.next_change, end);
        for now in [
            "2026-02-01T00:00:00Z",
            "2026-02-15T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ] {
            let w = evaluate_suspension(start, end, ts(now));
            assert_eq!(w.phase, SuspensionPhase::Ended, "{now}");
            assert!(!w.active);
            assert_eq!(w.next_change, None);
        }
        // start == end: never active either.
        let w = evaluate_suspension(start, start, ts("2026-03-01T00:00:00Z"));
        assert_eq!(w.phase, SuspensionPhase::Ended);
        assert!(!is_empty_window(None, end));
        assert!(!is_empty_window(start, None));
    }

    #[test]
    fn phase_names() {
        assert_eq!(SuspensionPhase::Pending.to_string(), "Pending");
        assert_eq!(SuspensionPhase::Active.as_str(), "Active");
        assert_eq!(SuspensionPhase::Ended.as_str(), "Ended");
    }
}
