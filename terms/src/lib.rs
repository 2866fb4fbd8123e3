//! The pure rules of Covenant's service terms.
//!
//! Notice windows and deemed acceptance (preamble, §2.1–§2.3), the monthly
//! access review (§4.2(2)), data retention (§6) and suspension windows (§2.4),
//! with no Kubernetes types so that the operator, `covenant check` and the
//! tests all share one implementation.
//!
//! Conventions, from the spec: instants are UTC [`Timestamp`]s; "months" are
//! calendar months in UTC civil time with the day clamped (2026-08-31 + 6
//! months = 2027-02-28); "days" are 24-hour days; every boundary is inclusive.
//! Every evaluation takes `now` explicitly (an injected clock) and returns a
//! `next_change`: the next instant strictly after `now` at which its answer
//! changes, so a controller can requeue exactly then (see [`requeue_after`]).
//! Nothing here panics: arithmetic that leaves the [`Timestamp`] range
//! saturates to [`Timestamp::MAX`] / [`Timestamp::MIN`].
//!
//! ```
//! use covenant_terms::*;
//!
//! let served: Timestamp = "2026-08-31T00:00:00Z".parse().unwrap();
//! let notice = Notice {
//!     notice_type: NoticeType::Discontinuation,
//!     served_at: served,
//!     effective_at: "2026-12-01T00:00:00Z".parse().unwrap(),
//!     has_replacement: false,
//!     exemption: None,
//! };
//! let now = served;
//! let eval = evaluate_notice(&notice, now);
//! assert_eq!(eval.window, Window::TooShort);
//! assert_eq!(fmt_instant(eval.enforced_effective_at), "2027-02-28T00:00:00Z");
//!
//! let decision = evaluate_decision(&notice, &eval, None, now);
//! assert_eq!(decision.decision, Decision::Pending);
//!
//! // Requeue at the next boundary, capped, and recompute then.
//! let delay = requeue_after([eval.next_change, decision.next_change], now, MAX_REQUEUE);
//! assert_eq!(delay, Some(MAX_REQUEUE));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_review;
pub mod calendar;
pub mod decision;
pub mod notice;
pub mod requeue;
pub mod retention;
pub mod suspension;

pub use access_review::{ACCESS_REVIEW_DAYS, AccessReview, evaluate_access_review};
pub use calendar::{add_days, add_months, fmt_instant, next_instant};
pub use decision::{
    Answer, Decision, DecisionEvaluation, Response, ResponsesEvaluation, UnhonouredRejection,
    Verdict, deemed_at, evaluate_decision, evaluate_responses,
};
pub use jiff::Timestamp;
pub use notice::{
    AMENDMENT_NOTICE_DAYS, DISCONTINUATION_NOTICE_MONTHS, Exemption, Notice, NoticeEvaluation,
    NoticeType, Window, earliest_lawful_at, evaluate_notice, rejection_deadline, window,
};
pub use requeue::{MAX_REQUEUE, earliest, earliest_after, requeue_after};
pub use retention::{MAX_RETENTION_MONTHS, Retention, evaluate_retention, retained_until};
pub use suspension::{SuspensionPhase, SuspensionWindow, evaluate_suspension, is_empty_window};
