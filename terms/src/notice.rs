//! Notice windows for amendments, discontinuations and URL-terms updates
//! (preamble, §2.1–§2.3).
//!
//! A window that is too short is never silently accepted: the evaluation names
//! the earliest lawful instant and enforces that later instant instead.

use std::fmt;

use jiff::Timestamp;

use crate::calendar::{add_days, add_months};
use crate::requeue::earliest_after;

/// Days of notice an amendment needs before it takes effect, and the days an
/// account has to reject it (preamble: "no less than 30 days").
pub const AMENDMENT_NOTICE_DAYS: i64 = 30;

/// Calendar months of notice a discontinuation needs when no substantially
/// similar replacement is named (§2.1: "at least 6 months").
pub const DISCONTINUATION_NOTICE_MONTHS: i32 = 6;

/// What a notice announces; each kind has its own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeType {
    /// A change to the terms (preamble): 30 days' notice, rejectable.
    Amendment,
    /// A service, application or material functionality goes away (§2.1):
    /// 6 calendar months' notice unless a replacement is named.
    Discontinuation,
    /// A material update of the URL Terms (§2.2): notice no later than the change.
    UrlTermsUpdate,
}

impl NoticeType {
    /// The API spelling (`Amendment`, `Discontinuation`, `URLTermsUpdate`).
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeType::Amendment => "Amendment",
            NoticeType::Discontinuation => "Discontinuation",
            NoticeType::UrlTermsUpdate => "URLTermsUpdate",
        }
    }
}

impl fmt::Display for NoticeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a change is not bound by the notice windows (§2.3: changes required to
/// comply with law or to address a material security risk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// Required to comply with applicable law.
    LegalRequirement,
    /// Addresses a material security risk.
    SecurityRisk,
}

impl Exemption {
    /// The API spelling (`LegalRequirement`, `SecurityRisk`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Exemption::LegalRequirement => "LegalRequirement",
            Exemption::SecurityRisk => "SecurityRisk",
        }
    }
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notice as the rules need it: a DeprecationNotice reduced to its dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notice {
    /// What the notice announces.
    pub notice_type: NoticeType,
    /// When notice was given (`servedAt`); windows are counted from here.
    pub served_at: Timestamp,
    /// The requested effective instant (`effectiveAt`).
    pub effective_at: Timestamp,
    /// A substantially similar replacement is named (§2.1); only matters for
    /// discontinuations.
    pub has_replacement: bool,
    /// §2.3 exemption from the windows, if any. It reaches discontinuations
    /// (§2.1) and URL-terms updates (§2.2) only: an amendment always needs 30
    /// days' notice (preamble), so an exemption on one is ignored (and the API
    /// server refuses it).
    pub exemption: Option<Exemption>,
}

impl Notice {
    /// The exemption that applies: `exemption`, except on an amendment, which
    /// §2.3 does not reach.
    pub const fn effective_exemption(&self) -> Option<Exemption> {
        match self.notice_type {
            NoticeType::Amendment => None,
            NoticeType::Discontinuation | NoticeType::UrlTermsUpdate => self.exemption,
        }
    }
}

/// Whether the requested `effectiveAt` respects the notice window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The requested effectiveAt respects the required notice window.
    Satisfied,
    /// §2.3: not bound by the windows.
    Exempt(Exemption),
    /// Discontinuation with a substantially similar replacement (§2.1): no
    /// 6-month window.
    ReplacementProvided,
    /// The requested effectiveAt is earlier than the earliest lawful instant;
    /// the earliest lawful instant is enforced instead.
    TooShort,
}

impl Window {
    /// True unless the window is too short: what `NoticeWindowSatisfied=True`
    /// and a zero exit of `covenant check` mean.
    pub const fn is_lawful(self) -> bool {
        !matches!(self, Window::TooShort)
    }

    /// A CamelCase condition reason (`Satisfied`, `Exempt`,
    /// `ReplacementProvided`, `TooShort`).
    pub const fn reason(self) -> &'static str {
        match self {
            Window::Satisfied => "Satisfied",
            Window::Exempt(_) => "Exempt",
            Window::ReplacementProvided => "ReplacementProvided",
            Window::TooShort => "TooShort",
        }
    }
}

/// The outcome of [`evaluate_notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoticeEvaluation {
    /// Whether the requested effectiveAt respects the window.
    pub window: Window,
    /// The earliest instant the window allows: Amendment `servedAt + 30 days`;
    /// Discontinuation `servedAt + 6 calendar months` (`servedAt` with a
    /// replacement); URLTermsUpdate `servedAt`. Computed the same way for
    /// exempt notices, where it is informational only (§2.3 lifts the window).
    pub earliest_lawful_at: Timestamp,
    /// The instant Covenant treats as effective: `max(effectiveAt,
    /// earliest_lawful_at)`, or `effectiveAt` when exempt.
    pub enforced_effective_at: Timestamp,
    /// Amendments only: `max(servedAt + 30 days, effectiveAt)` (also when
    /// exempt); an account may reject until and including this instant.
    pub rejection_deadline: Option<Timestamp>,
    /// `now >= enforced_effective_at` (inclusive).
    pub effective: bool,
    /// The first of `enforced_effective_at` and `rejection_deadline` strictly
    /// after `now`: when `effective` or the accounts' decisions next change.
    pub next_change: Option<Timestamp>,
}

/// The earliest instant the notice window allows for `n` (see
/// [`NoticeEvaluation::earliest_lawful_at`]). Saturates, never panics.
pub fn earliest_lawful_at(n: &Notice) -> Timestamp {
    match n.notice_type {
        NoticeType::Amendment => add_days(n.served_at, AMENDMENT_NOTICE_DAYS),
        NoticeType::Discontinuation if n.has_replacement => n.served_at,
        NoticeType::Discontinuation => add_months(n.served_at, DISCONTINUATION_NOTICE_MONTHS),
        NoticeType::UrlTermsUpdate => n.served_at,
    }
}

/// The rejection deadline of an amendment, `max(servedAt + 30 days,
/// effectiveAt)`; `None` for the types the terms give no right to reject.
pub fn rejection_deadline(n: &Notice) -> Option<Timestamp> {
    match n.notice_type {
        NoticeType::Amendment => {
            Some(add_days(n.served_at, AMENDMENT_NOTICE_DAYS).max(n.effective_at))
        }
        NoticeType::Discontinuation | NoticeType::UrlTermsUpdate => None,
    }
}

/// The window verdict for `n` (preamble, §2.1–§2.3). Every boundary is
/// inclusive: exactly 30 days or exactly 6 months is enough.
pub fn window(n: &Notice) -> Window {
    if let Some(e) = n.effective_exemption() {
        return Window::Exempt(e);
    }
    if n.notice_type == NoticeType::Discontinuation && n.has_replacement {
        return Window::ReplacementProvided;
    }
    if n.effective_at >= earliest_lawful_at(n) {
        Window::Satisfied
    } else {
        Window::TooShort
    }
}

/// Evaluates a notice's window and whether it is in effect at `now`.
///
/// A too-short window is never silently accepted: the enforced instant moves
/// to the earliest lawful one. Exempt notices (§2.3: discontinuations and
/// URL-terms updates only) keep their `effectiveAt`.
pub fn evaluate_notice(n: &Notice, now: Timestamp) -> NoticeEvaluation {
    let window = window(n);
    let earliest_lawful_at = earliest_lawful_at(n);
    let enforced_effective_at = match window {
        Window::Exempt(_) => n.effective_at,
        Window::Satisfied | Window::ReplacementProvided | Window::TooShort => {
            n.effective_at.max(earliest_lawful_at)
        }
    };
    let rejection_deadline = rejection_deadline(n);
    NoticeEvaluation {
        window,
        earliest_lawful_at,
        enforced_effective_at,
        rejection_deadline,
        effective: now >= enforced_effective_at,
        next_change: earliest_after([Some(enforced_effective_at), rejection_deadline], now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::fmt_instant;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn notice(t: NoticeType, served: &str, effective: &str) -> Notice {
        Notice {
            notice_type: t,
            served_at: ts(served),
            effective_at: ts(effective),
            has_replacement: false,
            exemption: None,
        }
    }

    const ALL_TYPES: [NoticeType; 3] = [
        NoticeType::Amendment,
        NoticeType::Discontinuation,
        NoticeType::UrlTermsUpdate,
    ];
    const ALL_EXEMPTIONS: [Exemption; 2] = [Exemption::LegalRequirement, Exemption::SecurityRisk];

    #[test]
    fn amendment_exactly_30_days_is_satisfied() {
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T10:00:00Z",
            "2026-03-31T10:00:00Z",
        );
        let e = evaluate_notice(&n, ts("2026-03-01T10:00:00Z"));
        assert_eq!(e.window, Window::Satisfied);
        assert_eq!(e.earliest_lawful_at, ts("2026-03-31T10:00:00Z"));
        assert_eq!(e.enforced_effective_at, n.effective_at);
        assert_eq!(e.rejection_deadline, Some(ts("2026-03-31T10:00:00Z")));
        assert!(!e.effective);
        assert_eq!(e.next_change, Some(ts("2026-03-31T10:00:00Z")));
    }

    #[test]
    fn amendment_one_second_short_is_too_short() {
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T10:00:00Z",
            "2026-03-31T09:59:59Z",
        );
        let e = evaluate_notice(&n, ts("2026-03-10T00:00:00Z"));
        assert_eq!(e.window, Window::TooShort);
        assert!(!e.window.is_lawful());
        assert_eq!(e.earliest_lawful_at, ts("2026-03-31T10:00:00Z"));
        assert_eq!(e.enforced_effective_at, ts("2026-03-31T10:00:00Z"));
        assert_eq!(e.rejection_deadline, Some(ts("2026-03-31T10:00:00Z")));
        // Not effective at the requested instant, only at the enforced one.
        assert!(!evaluate_notice(&n, n.effective_at).effective);
        assert!(evaluate_notice(&n, ts("2026-03-31T10:00:00Z")).effective);
    }

    #[test]
    fn amendment_one_nanosecond_short_is_too_short() {
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T10:00:00Z",
            "2026-03-31T09:59:59.999999999Z",
        );
        assert_eq!(window(&n), Window::TooShort);
    }

    #[test]
    fn amendment_rejection_deadline_is_the_later_of_window_and_effective() {
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T00:00:00Z",
            "2026-06-01T00:00:00Z",
        );
        let e = evaluate_notice(&n, ts("2026-03-01T00:00:00Z"));
        assert_eq!(e.rejection_deadline, Some(ts("2026-06-01T00:00:00Z")));
        assert_eq!(e.window, Window::Satisfied);
        // Too short: the deadline is served + 30 days.
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T00:00:00Z",
            "2026-03-05T00:00:00Z",
        );
        assert_eq!(rejection_deadline(&n), Some(ts("2026-03-31T00:00:00Z")));
    }

    #[test]
    fn amendment_effective_flag_flips_exactly_at_enforced_instant() {
        let n = notice(
            NoticeType::Amendment,
            "2026-03-01T00:00:00Z",
            "2026-04-15T00:00:00Z",
        );
        let at = ts("2026-04-15T00:00:00Z");
        let before = evaluate_notice(&n, ts("2026-04-14T23:59:59.999999999Z"));
        assert!(!before.effective);
        assert_eq!(before.next_change, Some(at));
        let on = evaluate_notice(&n, at);
        assert!(on.effective);
        assert_eq!(on.next_change, None);
    }

    #[test]
    fn discontinuation_month_end() {
        let n = notice(
            NoticeType::Discontinuation,
            "2026-08-31T00:00:00Z",
            "2027-02-28T00:00:00Z",
        );
        let e = evaluate_notice(&n, ts("2026-09-01T00:00:00Z"));
        assert_eq!(e.window, Window::Satisfied);
        assert_eq!(e.earliest_lawful_at, ts("2027-02-28T00:00:00Z"));
        assert_eq!(e.enforced_effective_at, ts("2027-02-28T00:00:00Z"));
        assert_eq!(e.rejection_deadline, None);
        assert_eq!(e.next_change, Some(ts("2027-02-28T00:00:00Z")));

        let short = Notice {
            effective_at: ts("2027-02-27T23:59:59Z"),
            ..n
        };
        let e = evaluate_notice(&short, ts("2026-09-01T00:00:00Z"));
        assert_eq!(e.window, Window::TooShort);
        assert_eq!(e.earliest_lawful_at, ts("2027-02-28T00:00:00Z"));
        assert_eq!(e.enforced_effective_at, ts("2027-02-28T00:00:00Z"));
    }

    #[test]
    fn discontinuation_leap_year() {
        let n = notice(
            NoticeType::Discontinuation,
            "2027-08-31T00:00:00Z",
            "2028-02-29T00:00:00Z",
        );
        assert_eq!(earliest_lawful_at(&n), ts("2028-02-29T00:00:00Z"));
        assert_eq!(window(&n), Window::Satisfied);
        let short = Notice {
            effective_at: ts("2028-02-28T23:59:59Z"),
            ..n
        };
        assert_eq!(window(&short), Window::TooShort);
    }

    #[test]
    fn discontinuation_is_counted_in_calendar_months_not_days() {
        // 6 months from 2026-01-15 is 2026-07-15 (181 days), not 180 days.
        let n = notice(
            NoticeType::Discontinuation,
            "2026-01-15T00:00:00Z",
            "2026-07-14T00:00:00Z",
        );
        assert_eq!(window(&n), Window::TooShort);
        assert_eq!(earliest_lawful_at(&n), ts("2026-07-15T00:00:00Z"));
    }

    #[test]
    fn discontinuation_with_replacement_has_no_window() {
        let n = Notice {
            has_replacement: true,
            ..notice(
                NoticeType::Discontinuation,
                "2026-03-01T00:00:00Z",
                "2026-03-02T00:00:00Z",
            )
        };
        let e = evaluate_notice(&n, ts("2026-03-01T00:00:00Z"));
        assert_eq!(e.window, Window::ReplacementProvided);
        assert!(e.window.is_lawful());
        assert_eq!(e.earliest_lawful_at, n.served_at);
        assert_eq!(e.enforced_effective_at, n.effective_at);
        assert_eq!(e.rejection_deadline, None);
        // A replacement cannot make a change effective before notice was given.
        let early = Notice {
            effective_at: ts("2026-02-01T00:00:00Z"),
            ..n
        };
        let e = evaluate_notice(&early, ts("2026-03-01T00:00:00Z"));
        assert_eq!(e.window, Window::ReplacementProvided);
        assert_eq!(e.enforced_effective_at, n.served_at);
        assert!(e.effective);
    }

    #[test]
    fn replacement_is_irrelevant_for_other_types() {
        for t in [NoticeType::Amendment, NoticeType::UrlTermsUpdate] {
            let n = Notice {
                has_replacement: true,
                ..notice(t, "2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z")
            };
            assert_eq!(window(&n), Window::TooShort, "{t}");
        }
    }

    #[test]
    fn url_terms_update() {
        let equal = notice(
            NoticeType::UrlTermsUpdate,
            "2026-03-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        );
        let e = evaluate_notice(&equal, ts("2026-03-01T00:00:00Z"));
        assert_eq!(e.window, Window::Satisfied);
        assert_eq!(e.enforced_effective_at, equal.effective_at);
        assert!(e.effective);
        assert_eq!(e.next_change, None);
        assert_eq!(e.rejection_deadline, None);

        let late = notice(
            NoticeType::UrlTermsUpdate,
            "2026-03-02T00:00:00Z",
            "2026-03-01T00:00:00Z",
        );
        let e = evaluate_notice(&late, ts("2026-03-01T12:00:00Z"));
        assert_eq!(e.window, Window::TooShort);
        assert_eq!(e.earliest_lawful_at, late.served_at);
        assert_eq!(e.enforced_effective_at, late.served_at);
        assert!(!e.effective);
        assert_eq!(e.next_change, Some(late.served_at));

        let later = notice(
            NoticeType::UrlTermsUpdate,
            "2026-03-01T00:00:00Z",
            "2026-03-01T00:00:01Z",
        );
        assert_eq!(window(&later), Window::Satisfied);
    }

    #[test]
    fn an_exemption_never_shortens_an_amendment() {
        for ex in ALL_EXEMPTIONS {
            let n = Notice {
                exemption: Some(ex),
                ..notice(
                    NoticeType::Amendment,
                    "2026-03-01T00:00:00Z",
                    "2026-03-02T00:00:00Z",
                )
            };
            let e = evaluate_notice(&n, ts("2026-03-02T00:00:00Z"));
            assert_eq!(e.window, Window::TooShort, "{ex}");
            assert_eq!(e.enforced_effective_at, ts("2026-03-31T00:00:00Z"));
            assert_eq!(e.rejection_deadline, Some(ts("2026-03-31T00:00:00Z")));
            assert!(!e.effective);
        }
    }

    #[test]
    fn every_exemption_for_discontinuations_and_url_terms_keeps_effective_at() {
        for t in [NoticeType::Discontinuation, NoticeType::UrlTermsUpdate] {
            for ex in ALL_EXEMPTIONS {
                for replacement in [false, true] {
                    // Effective the instant notice is served, and even before it.
                    for effective in ["2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z"] {
                        let n = Notice {
                            exemption: Some(ex),
                            has_replacement: replacement,
                            ..notice(t, "2026-03-01T00:00:00Z", effective)
                        };
                        let e = evaluate_notice(&n, ts("2026-03-01T00:00:00Z"));
                        assert_eq!(e.window, Window::Exempt(ex), "{t} {ex}");
                        assert!(e.window.is_lawful());
                        assert_eq!(e.window.reason(), "Exempt");
                        assert_eq!(e.enforced_effective_at, n.effective_at, "{t} {ex}");
                        assert!(e.effective);
                        assert_eq!(e.earliest_lawful_at, earliest_lawful_at(&n));
                        assert_eq!(e.rejection_deadline, None, "{t} {ex}");
                        assert_eq!(e.next_change, None, "{t} {ex}");
                    }
                }
            }
        }
    }

    #[test]
    fn api_spellings() {
        assert_eq!(NoticeType::UrlTermsUpdate.to_string(), "URLTermsUpdate");
        assert_eq!(NoticeType::Amendment.as_str(), "Amendment");
        assert_eq!(NoticeType::Discontinuation.as_str(), "Discontinuation");
        assert_eq!(Exemption::LegalRequirement.to_string(), "LegalRequirement");
        assert_eq!(Exemption::SecurityRisk.as_str(), "SecurityRisk");
        assert_eq!(Window::TooShort.reason(), "TooShort");
        assert_eq!(Window::Satisfied.reason(), "Satisfied");
        assert_eq!(Window::ReplacementProvided.reason(), "ReplacementProvided");
    }

    #[test]
    fn extremes_saturate() {
        for t in ALL_TYPES {
            let n = Notice {
                notice_type: t,
                served_at: Timestamp::MAX,
                effective_at: Timestamp::MAX,
                has_replacement: false,
                exemption: None,
            };
            let e = evaluate_notice(&n, Timestamp::MIN);
            assert_eq!(e.enforced_effective_at, Timestamp::MAX);
            assert_eq!(fmt_instant(e.earliest_lawful_at), "9999-12-30T22:00:00Z");
            let e = evaluate_notice(&n, Timestamp::MAX);
            assert!(e.effective);
            assert_eq!(e.next_change, None);
        }
    }
}
