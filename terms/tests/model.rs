//! The engine against an independent, deliberately simple model of the rules
//! (issue #9).
//!
//! `properties.rs` checks invariants the engine should keep; it cannot catch a
//! rule that is consistently wrong. Here a second implementation, written from
//! `SPEC.md` and the terms text rather than from the engine's code, must agree
//! with the engine on random inputs and on a fixed grid of boundary instants and
//! calendar edges. It computes differently, so that one bug is unlikely to be
//! in both:
//!
//! - instants are `i128` nanoseconds since the Unix epoch, not `Timestamp`s, and
//!   "days" are steps of 86 400 s on that number;
//! - calendar months are added by hand on (year, month, day), with its own
//!   Gregorian day count and an explicit end-of-month clamp, not with jiff's
//!   span arithmetic; the day count is itself checked against dates written out
//!   literally;
//! - each rule is the spec's sentence as one direct comparison ("more than 30
//!   days old" is `now - reviewed > 30 days`), inclusive or exclusive as the
//!   spec words it;
//! - `next_change` is found by asking the model's own answer at every instant
//!   where it could change, not by a formula per rule.
//!
//! Where the spec is silent the model follows what the engine documents: the
//! earliest lawful instant of a discontinuation with a replacement
//! (`servedAt`), the deemed-acceptance instant of notices that cannot be
//! rejected, the exclusive end of a suspension, and saturation to `Timestamp::MAX` / `Timestamp::MIN`
//! of instants beyond jiff's range. Those choices are isolated in `model` so a
//! reader can see exactly where the model leans on the engine's documentation.

use std::time::Duration;

use covenant_terms as engine;
use engine::{Answer, Decision, Exemption, NoticeType, SuspensionPhase, Timestamp, Window};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use model::{NS_PER_DAY, NS_PER_SEC, Ns};

/// The model: plain integers and the spec's sentences, no engine code.
mod model {
    use std::time::Duration;

    use covenant_terms::{
        Answer, Decision, Exemption, NoticeType, SuspensionPhase, Timestamp, UnhonouredRejection,
        Window,
    };

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub type Ns = i128;
    pub const NS_PER_SEC: Ns = 1_000_000_000;
    /// "days are 24-hour days" (SPEC, conventions).
    pub const NS_PER_DAY: Ns = 86_400 * NS_PER_SEC;

    /// Preamble: notice "no less than 30 days prior", and rejection "within that time".
    const AMENDMENT_NOTICE_DAYS: Ns = 30;
    /// §2.1: "at least 6 months before discontinuing".
    const DISCONTINUATION_NOTICE_MONTHS: Ns = 6;
    /// SPEC: `AccessReviewCurrent=False` when the last review "is more than 30 days old".
    const ACCESS_REVIEW_DAYS: Ns = 30;
    /// §6: "stored for up to thirteen (13) months"; SPEC: `retentionMonths` 0–13.
    const MAX_RETENTION_MONTHS: u32 = 13;

    // ---- The proleptic Gregorian calendar, by hand ----

    pub fn is_leap(year: i128) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    pub fn month_len(year: i128, month: i128) -> i128 {
        match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Days from 0000-01-01 to `year`-01-01. Year 0 (1 BCE) exists and is a
    /// leap year, so the leap years before `year` are those in `[0, year)`;
    /// floor division keeps the count right for negative years too.
    fn days_before_year(year: i128) -> i128 {
        let y = year - 1;
        365 * year + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + 1
    }

    /// Days since 1970-01-01 of a (valid) civil date.
    pub fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
        let mut days = days_before_year(year) - days_before_year(1970);
        for earlier in 1..month {
            days += month_len(year, earlier);
        }
        days + day - 1
    }

    /// The civil date `days` after 1970-01-01: a rough guess of the year, then
    /// corrected by stepping, then the months walked one by one.
    pub fn civil_from_days(days: i128) -> (i128, i128, i128) {
        let mut year = 1970 + (days * 400).div_euclid(146_097);
        while days_from_civil(year, 1, 1) > days {
            year -= 1;
        }
        while days_from_civil(year + 1, 1, 1) <= days {
            year += 1;
        }
        let mut rest = days - days_from_civil(year, 1, 1);
        let mut month = 1;
        while rest >= month_len(year, month) {
            rest -= month_len(year, month);
            month += 1;
        }
        (year, month, rest + 1)
    }

    /// A UTC civil date and time of day.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Civil {
        pub year: i128,
        pub month: i128,
        pub day: i128,
        pub time_ns: i128,
    }

    pub fn to_civil(ns: Ns) -> Civil {
        let (year, month, day) = civil_from_days(ns.div_euclid(NS_PER_DAY));
        Civil {
            year,
            month,
            day,
            time_ns: ns.rem_euclid(NS_PER_DAY),
        }
    }

    pub fn from_civil(c: Civil) -> Ns {
        days_from_civil(c.year, c.month, c.day) * NS_PER_DAY + c.time_ns
    }

    /// `ns` plus `months` calendar months in UTC, the day clamped to the end of
    /// a shorter month and the time of day kept (SPEC: 2026-08-31 + 6 months =
    /// 2027-02-28). Not saturated: the result may lie beyond jiff's range.
    pub fn plus_months(ns: Ns, months: i128) -> Ns {
        let c = to_civil(ns);
        let index = c.year * 12 + (c.month - 1) + months;
        let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
        let day = c.day.min(month_len(year, month));
        from_civil(Civil {
            year,
            month,
            day,
            time_ns: c.time_ns,
        })
    }

    /// `ns` plus `days` 24-hour days. Not saturated.
    pub fn plus_days(ns: Ns, days: i128) -> Ns {
        ns + days * NS_PER_DAY
    }

    // ---- The ends of the timeline ----

    /// `Timestamp::MIN` as jiff documents it: -9999-01-02T01:59:59Z.
    pub fn min_ns() -> Ns {
        from_civil(Civil {
            year: -9999,
            month: 1,
            day: 2,
            time_ns: (3600 + 59 * 60 + 59) * NS_PER_SEC,
        })
    }

    /// `Timestamp::MAX` as jiff documents it: 9999-12-30T22:00:00.999999999Z.
    pub fn max_ns() -> Ns {
        from_civil(Civil {
            year: 9999,
            month: 12,
            day: 30,
            time_ns: 22 * 3600 * NS_PER_SEC + NS_PER_SEC - 1,
        })
    }

    /// The engine documents that arithmetic leaving the range saturates to
    /// `Timestamp::MAX` / `Timestamp::MIN`; the model follows that.
    pub fn saturate(ns: Ns) -> Ns {
        ns.clamp(min_ns(), max_ns())
    }

    pub fn ts(ns: Ns) -> Timestamp {
        Timestamp::from_nanosecond(ns).expect("an instant on jiff's timeline")
    }

    /// RFC 3339 UTC at whole seconds (SPEC: "All instants are RFC 3339 UTC"),
    /// the fraction dropped towards the past; years outside 0..=9999 in the
    /// six-digit signed form of RFC 3339's ISO 8601 extension, as jiff prints.
    pub fn rfc3339_seconds(ns: Ns) -> String {
        let c = to_civil(ns);
        let secs = c.time_ns / NS_PER_SEC;
        let year = if (0..=9999).contains(&c.year) {
            format!("{:04}", c.year)
        } else {
            format!("{:+07}", c.year)
        };
        format!(
            "{year}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.month,
            c.day,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    // ---- `next_change` ----

    /// The first instant after `now`, up to the end of the range, at which
    /// `answer` differs from its value at `now`. `answer` may only compare time
    /// with the instants in `candidates`, so it is constant between them and
    /// checking those instants is enough.
    pub fn first_change<A: PartialEq>(
        now: Ns,
        candidates: &[Ns],
        answer: impl Fn(Ns) -> A,
    ) -> Option<Ns> {
        let here = answer(now);
        let mut later: Vec<Ns> = candidates
            .iter()
            .copied()
            .filter(|&c| c > now && c <= max_ns())
            .collect();
        later.sort_unstable();
        later.into_iter().find(|&c| answer(c) != here)
    }

    // ---- Notices (preamble, §2.1–§2.3; SPEC "DeprecationNotice") ----

    #[derive(Debug, Clone, Copy)]
    pub struct Notice {
        pub kind: NoticeType,
        pub served: Ns,
        pub effective: Ns,
        pub replacement: bool,
        pub exemption: Option<Exemption>,
    }

    impl Notice {
        fn replaced(&self) -> bool {
            self.kind == NoticeType::Discontinuation && self.replacement
        }

        /// The end of the window, possibly beyond the timeline. With a
        /// replacement §2.1 asks for no window; the engine documents
        /// `servedAt` as the earliest lawful instant then.
        fn window_end(&self) -> Ns {
            match self.kind {
                NoticeType::Amendment => plus_days(self.served, AMENDMENT_NOTICE_DAYS),
                NoticeType::Discontinuation if self.replacement => self.served,
                NoticeType::Discontinuation => {
                    plus_months(self.served, DISCONTINUATION_NOTICE_MONTHS)
                }
                NoticeType::UrlTermsUpdate => self.served,
            }
        }

        pub fn earliest_lawful(&self) -> Ns {
            saturate(self.window_end())
        }

        pub fn window(&self) -> Window {
            if let Some(e) = self.exemption
                && self.kind != NoticeType::Amendment
            {
                // §2.3: such discontinuations and URL-terms updates are not bound by the
                // windows; it does not reach amendments (preamble: always 30 days).
                return Window::Exempt(e);
            }
            if self.replaced() {
                return Window::ReplacementProvided;
            }
            let given = self.effective - self.served;
            let enough = match self.kind {
                // "effective no less than 30 days after servedAt"; exactly 30 is enough.
                NoticeType::Amendment => given >= AMENDMENT_NOTICE_DAYS * NS_PER_DAY,
                // "at least 6 calendar months after servedAt".
                NoticeType::Discontinuation => {
                    self.effective >= plus_months(self.served, DISCONTINUATION_NOTICE_MONTHS)
                }
                // "servedAt must not be after effectiveAt".
                NoticeType::UrlTermsUpdate => self.served <= self.effective,
            };
            // Documented saturation: a window ending beyond the timeline ends
            // at `Timestamp::MAX`, which an effectiveAt of exactly MAX meets.
            let saturated = self.window_end() > max_ns() && self.effective == max_ns();
            if enough || saturated {
                Window::Satisfied
            } else {
                Window::TooShort
            }
        }

        /// SPEC: `enforcedEffectiveAt` = max(effectiveAt, earliest lawful
        /// instant); = effectiveAt when exempt.
        pub fn enforced(&self) -> Ns {
            match self.window() {
                Window::Exempt(_) => self.effective,
                _ => self.effective.max(self.earliest_lawful()),
            }
        }

        /// SPEC: `rejectionDeadline` = max(servedAt + 30 days, effectiveAt),
        /// amendments only (exempt or not: §2.3 lifts the windows, not the
        /// right to reject).
        pub fn rejection_deadline(&self) -> Option<Ns> {
            (self.kind == NoticeType::Amendment).then(|| {
                saturate(plus_days(self.served, AMENDMENT_NOTICE_DAYS)).max(self.effective)
            })
        }

        /// SPEC: `Effective` is "True from `enforcedEffectiveAt` on".
        pub fn is_effective(&self, now: Ns) -> bool {
            now >= self.enforced()
        }

        /// What a notice's evaluation reports that moves with time: whether it
        /// is effective, and whether its accounts' silence has become acceptance.
        pub fn state(&self, now: Ns) -> (bool, bool) {
            (self.is_effective(now), now >= self.deemed_from())
        }

        pub fn state_changes(&self) -> Vec<Ns> {
            vec![self.enforced(), self.deemed_from()]
        }

        /// Silence is acceptance from the rejection deadline on ("deemed
        /// accepted at that instant"). Discontinuations and URL-terms updates
        /// cannot be rejected; the engine documents them as deemed accepted
        /// from the enforced effective instant.
        pub fn deemed_from(&self) -> Ns {
            self.rejection_deadline().unwrap_or_else(|| self.enforced())
        }

        /// An account's standing at `now` given its (single) answer.
        pub fn decide(
            &self,
            response: Option<Response>,
            now: Ns,
        ) -> (Decision, Option<UnhonouredRejection>) {
            let silence = if now >= self.deemed_from() {
                Decision::DeemedAccepted
            } else {
                Decision::Pending
            };
            // An answer dated after `now` has not been given yet.
            let Some(given) = response.filter(|r| r.at <= now) else {
                return (silence, None);
            };
            match (given.answer, self.rejection_deadline()) {
                (Answer::Accept, _) => (Decision::Accepted, None),
                (Answer::Reject, None) => (
                    silence,
                    Some(UnhonouredRejection::NotRejectable {
                        notice_type: self.kind,
                    }),
                ),
                // "may reject it until rejectionDeadline": inclusive.
                (Answer::Reject, Some(deadline)) if given.at <= deadline => {
                    (Decision::Rejected, None)
                }
                // "A rejection whose at is after the deadline is not honoured,
                // and the status says so."
                (Answer::Reject, Some(deadline)) => (
                    silence,
                    Some(UnhonouredRejection::AfterDeadline {
                        at: ts(given.at),
                        deadline: ts(deadline),
                    }),
                ),
            }
        }

        /// SPEC: with several answers, "the latest response before the
        /// deadline stands; later ones are recorded as not honoured", and a
        /// rejection of a notice that cannot be rejected never counts. Two
        /// answers at the same instant: the rejection (the tenant keeps its
        /// right). Returns the standing answer and the decision.
        pub fn decide_all(&self, responses: &[Response], now: Ns) -> (Option<Answer>, Decision) {
            let rejectable = self.rejection_deadline().is_some();
            let standing = responses
                .iter()
                .filter(|r| r.at <= now && r.at <= self.deemed_from())
                .filter(|r| rejectable || r.answer == Answer::Accept)
                .max_by_key(|r| (r.at, r.answer == Answer::Reject))
                .map(|r| r.answer);
            let decision = match standing {
                Some(Answer::Accept) => Decision::Accepted,
                Some(Answer::Reject) => Decision::Rejected,
                None if now >= self.deemed_from() => Decision::DeemedAccepted,
                None => Decision::Pending,
            };
            (standing, decision)
        }

        pub fn decision_changes(&self, response: Option<Response>) -> Vec<Ns> {
            let mut at = vec![self.deemed_from()];
            at.extend(response.map(|r| r.at));
            at
        }
    }

    #[derive(Debug, Clone, Copy)]
    pub struct Response {
        pub answer: Answer,
        pub at: Ns,
    }

    // ---- The monthly access review (§4.2(2)) ----

    /// "When the last review is more than 30 days old (or missing on an
    /// account older than 30 days)" the review is not current.
    pub fn review_current(last: Option<Ns>, created: Ns, now: Ns) -> bool {
        let age = now - last.unwrap_or(created);
        let overdue = age > ACCESS_REVIEW_DAYS * NS_PER_DAY;
        !overdue
    }

    /// The last instant at which the review is current (saturated).
    pub fn review_due(last: Option<Ns>, created: Ns) -> Ns {
        saturate(plus_days(last.unwrap_or(created), ACCESS_REVIEW_DAYS))
    }

    pub fn review_changes(last: Option<Ns>, created: Ns) -> Vec<Ns> {
        vec![plus_days(last.unwrap_or(created), ACCESS_REVIEW_DAYS) + 1]
    }

    // ---- Retention of a deleted account's data (§6) ----

    /// "deletion + retentionMonths", never more than 13 months.
    pub fn retained_until(deleted: Ns, months: u32) -> Ns {
        saturate(plus_months(
            deleted,
            i128::from(months.min(MAX_RETENTION_MONTHS)),
        ))
    }

    /// "Covenant deletes them when that time comes": released from `until` on.
    pub fn released(deleted: Ns, months: u32, now: Ns) -> bool {
        now >= retained_until(deleted, months)
    }

    // ---- Suspension windows (§2.4) ----

    /// In force from `startAt` (inclusive, or from the start when absent)
    /// until "endAt passing" lifts it; the engine documents the end as
    /// exclusive and the lifting as winning over a later start.
    pub fn suspension_phase(start: Option<Ns>, end: Option<Ns>, now: Ns) -> SuspensionPhase {
        let lifted = end.is_some_and(|e| now >= e);
        let started = start.is_none_or(|s| s <= now);
        match (lifted, started) {
            (true, _) => SuspensionPhase::Ended,
            (false, true) => SuspensionPhase::Active,
            (false, false) => SuspensionPhase::Pending,
        }
    }

    /// A window that ends before (or as) it starts.
    pub fn empty_window(start: Option<Ns>, end: Option<Ns>) -> bool {
        matches!((start, end), (Some(s), Some(e)) if e <= s)
    }

    // ---- Requeueing ("requeue at the next boundary (capped, then recomputed)") ----

    pub fn requeue(boundaries: &[Option<Ns>], now: Ns, cap: Duration) -> Option<Duration> {
        let next = boundaries.iter().flatten().copied().min()?;
        let wait = (next - now).max(0);
        let exact = Duration::new(
            u64::try_from(wait / NS_PER_SEC).expect("the timeline spans < 2^64 s"),
            u32::try_from(wait % NS_PER_SEC).expect("a fraction of a second"),
        );
        Some(exact.min(cap))
    }
}

// ---- Glue between the model's integers and the engine's types ----

fn ts(ns: Ns) -> Timestamp {
    model::ts(ns)
}

fn engine_notice(n: &model::Notice) -> engine::Notice {
    engine::Notice {
        notice_type: n.kind,
        served_at: ts(n.served),
        effective_at: ts(n.effective),
        has_replacement: n.replacement,
        exemption: n.exemption,
    }
}

/// Asks `answer` just before and at the engine's `next_change`: unchanged up
/// to it, changed at it; with no `next_change`, unchanged at the end of time.
fn check_next_change<A: PartialEq + std::fmt::Debug>(
    now: Ns,
    next: Option<Timestamp>,
    answer: impl Fn(Ns) -> A,
) -> Result<(), TestCaseError> {
    let here = answer(now);
    match next.map(|t| t.as_nanosecond()) {
        Some(t) => {
            prop_assert!(t > now, "next_change {} is not after now {}", t, now);
            prop_assert_eq!(&answer(t - 1), &here, "changed before next_change {}", t);
            prop_assert_ne!(&answer(t), &here, "unchanged at next_change {}", t);
        }
        None => prop_assert_eq!(&answer(model::max_ns()), &here, "changed, no next_change"),
    }
    Ok(())
}

// ---- The comparisons, shared by the random and the fixed-grid tests ----

fn check_notice(n: &model::Notice, now: Ns) -> Result<(), TestCaseError> {
    let en = engine_notice(n);
    let e = engine::evaluate_notice(&en, ts(now));
    prop_assert_eq!(e.window, n.window());
    prop_assert_eq!(engine::window(&en), n.window());
    prop_assert_eq!(e.window.is_lawful(), n.window() != Window::TooShort);
    prop_assert_eq!(e.earliest_lawful_at, ts(n.earliest_lawful()));
    prop_assert_eq!(engine::earliest_lawful_at(&en), ts(n.earliest_lawful()));
    prop_assert_eq!(e.enforced_effective_at, ts(n.enforced()));
    prop_assert_eq!(e.rejection_deadline, n.rejection_deadline().map(ts));
    prop_assert_eq!(
        engine::rejection_deadline(&en),
        n.rejection_deadline().map(ts)
    );
    prop_assert_eq!(e.effective, n.is_effective(now));
    let expected = model::first_change(now, &n.state_changes(), |t| n.state(t));
    prop_assert_eq!(e.next_change, expected.map(ts));
    check_next_change(now, e.next_change, |t| n.state(t))
}

fn check_decision(
    n: &model::Notice,
    response: Option<model::Response>,
    now: Ns,
) -> Result<(), TestCaseError> {
    let en = engine_notice(n);
    let er = response.map(|r| engine::Response {
        answer: r.answer,
        at: ts(r.at),
    });
    let at = |t: Ns| {
        let eval = engine::evaluate_notice(&en, ts(t));
        engine::evaluate_decision(&en, &eval, er.as_ref(), ts(t))
    };
    let d = at(now);
    prop_assert_eq!(
        (d.decision, d.unhonoured_rejection),
        n.decide(response, now)
    );
    let changes = n.decision_changes(response);
    let expected = model::first_change(now, &changes, |t| n.decide(response, t));
    prop_assert_eq!(d.next_change, expected.map(ts));
    check_next_change(now, d.next_change, |t| n.decide(response, t))
}

fn check_responses(
    n: &model::Notice,
    responses: &[model::Response],
    now: Ns,
) -> Result<(), TestCaseError> {
    let en = engine_notice(n);
    let er: Vec<engine::Response> = responses
        .iter()
        .map(|r| engine::Response {
            answer: r.answer,
            at: ts(r.at),
        })
        .collect();
    let eval = engine::evaluate_notice(&en, ts(now));
    let e = engine::evaluate_responses(&en, &eval, &er, ts(now));
    let (answer, decision) = n.decide_all(responses, now);
    prop_assert_eq!(e.decision.decision, decision);
    prop_assert_eq!(e.standing.map(|i| responses[i].answer), answer);
    // Exactly one response stands when any is honoured, and only it.
    let honoured = e.verdicts.iter().filter(|v| v.honoured()).count();
    prop_assert_eq!(honoured, usize::from(answer.is_some()));
    Ok(())
}

fn check_review(last: Option<Ns>, created: Ns, now: Ns) -> Result<(), TestCaseError> {
    let r = engine::evaluate_access_review(last.map(ts), ts(created), ts(now));
    let current = |t| model::review_current(last, created, t);
    prop_assert_eq!(r.current, current(now));
    prop_assert_eq!(r.due_at, ts(model::review_due(last, created)));
    let expected = model::first_change(now, &model::review_changes(last, created), current);
    prop_assert_eq!(r.next_change, expected.map(ts));
    check_next_change(now, r.next_change, current)
}

fn check_retention(deleted: Ns, months: u32, now: Ns) -> Result<(), TestCaseError> {
    let until = model::retained_until(deleted, months);
    prop_assert_eq!(engine::retained_until(ts(deleted), months), ts(until));
    let r = engine::evaluate_retention(ts(deleted), months, ts(now));
    let released = |t| model::released(deleted, months, t);
    prop_assert_eq!(r.until, ts(until));
    prop_assert_eq!(r.expired, released(now));
    prop_assert_eq!(
        r.next_change,
        model::first_change(now, &[until], released).map(ts)
    );
    check_next_change(now, r.next_change, released)
}

fn check_suspension(start: Option<Ns>, end: Option<Ns>, now: Ns) -> Result<(), TestCaseError> {
    let w = engine::evaluate_suspension(start.map(ts), end.map(ts), ts(now));
    let phase = |t| model::suspension_phase(start, end, t);
    prop_assert_eq!(w.phase, phase(now));
    prop_assert_eq!(w.active, phase(now) == SuspensionPhase::Active);
    prop_assert_eq!(
        engine::is_empty_window(start.map(ts), end.map(ts)),
        model::empty_window(start, end)
    );
    let changes: Vec<Ns> = start.into_iter().chain(end).collect();
    prop_assert_eq!(
        w.next_change,
        model::first_change(now, &changes, phase).map(ts)
    );
    check_next_change(now, w.next_change, phase)
}

// ---- Inputs ----

/// Civil instants that stress month arithmetic: month ends, Feb 29 in leap and
/// non-leap (incl. century) years, the last nanosecond of a day and of a year,
/// and years at both ends of the range (clamped onto it).
fn calendar_edge() -> impl Strategy<Value = Ns> {
    let year = prop_oneof![
        prop_oneof![
            Just(1900i128),
            Just(2000),
            Just(2023),
            Just(2024),
            Just(2026),
            Just(2027),
            Just(2028),
            Just(2099),
            Just(2100),
        ],
        prop_oneof![
            Just(0i128),
            Just(-1),
            Just(-4),
            Just(-9999),
            Just(9998),
            Just(9999)
        ],
        1970i128..2101,
        -9999i128..=9999,
    ];
    let day = prop_oneof![
        2 => prop_oneof![Just(28i128), Just(29), Just(30), Just(31)],
        1 => Just(1i128),
        1 => 1i128..=31,
    ];
    let time = prop_oneof![
        Just(0i128),
        Just(NS_PER_DAY - 1),
        Just(22 * 3600 * NS_PER_SEC),
        0..NS_PER_DAY,
    ];
    (year, 1i128..=12, day, time).prop_map(|(year, month, day, time_ns)| {
        model::saturate(model::from_civil(model::Civil {
            year,
            month,
            day: day.min(model::month_len(year, month)),
            time_ns,
        }))
    })
}

/// Any instant on jiff's timeline, biased to calendar edges, realistic dates
/// and the two ends of the range.
fn instant() -> impl Strategy<Value = Ns> {
    let (min, max) = (model::min_ns(), model::max_ns());
    let y2000 = 946_684_800 * NS_PER_SEC;
    let y2100 = 4_102_444_800 * NS_PER_SEC;
    prop_oneof![
        4 => calendar_edge(),
        3 => y2000..y2100,
        1 => min..=max,
        1 => (0..=400 * NS_PER_DAY).prop_map(move |d| max - d),
        1 => (0..=400 * NS_PER_DAY).prop_map(move |d| min + d),
        1 => prop_oneof![Just(min), Just(max)],
    ]
}

/// Mostly the boundary itself and one nanosecond either side.
fn offset() -> impl Strategy<Value = i128> {
    prop_oneof![
        4 => -1i128..=1,
        1 => prop_oneof![
            Just(-NS_PER_SEC),
            Just(NS_PER_SEC),
            Just(-NS_PER_DAY),
            Just(NS_PER_DAY),
        ],
        2 => -400 * NS_PER_DAY..=400 * NS_PER_DAY,
    ]
}

/// An instant near one of some anchors the test computes with the model (so
/// boundaries are hit exactly), or, for `anchor` past the end, anywhere.
#[derive(Debug, Clone, Copy)]
struct Near {
    anchor: usize,
    offset: i128,
    free: Ns,
}

impl Near {
    fn resolve(self, anchors: &[Ns]) -> Ns {
        match anchors.get(self.anchor) {
            Some(&a) => model::saturate(a + self.offset),
            None => self.free,
        }
    }
}

/// A [`Near`] that lands on one of `anchors` anchors with probability
/// `anchors / (anchors + 1)`.
fn near(anchors: usize) -> impl Strategy<Value = Near> {
    (0..=anchors, offset(), instant()).prop_map(|(anchor, offset, free)| Near {
        anchor,
        offset,
        free,
    })
}

fn notice() -> impl Strategy<Value = model::Notice> {
    let kind = prop_oneof![
        Just(NoticeType::Amendment),
        Just(NoticeType::Discontinuation),
        Just(NoticeType::UrlTermsUpdate),
    ];
    let exemption = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Exemption::LegalRequirement)),
        1 => Just(Some(Exemption::SecurityRisk)),
    ];
    (kind, instant(), near(3), any::<bool>(), exemption).prop_map(
        |(kind, served, effective, replacement, exemption)| model::Notice {
            kind,
            served,
            effective: effective.resolve(&[
                served,
                model::plus_days(served, 30),
                model::plus_months(served, 6),
            ]),
            replacement,
            exemption,
        },
    )
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![Just(Answer::Accept), Just(Answer::Reject)]
}

/// Cases per property; with the fixed grid below the whole file runs in a few
/// seconds in a debug build.
const CASES: u32 = 1000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn notice_matches_the_model(n in notice(), now in near(5)) {
        let now = now.resolve(&[
            n.served,
            n.effective,
            n.earliest_lawful(),
            n.enforced(),
            n.deemed_from(),
        ]);
        check_notice(&n, now)?;
    }

    #[test]
    fn decision_matches_the_model(
        n in notice(),
        response in proptest::option::of((answer(), near(4))),
        now in near(4),
    ) {
        let anchors = [n.deemed_from(), n.enforced(), n.served, n.effective];
        let response = response.map(|(answer, at)| model::Response { answer, at: at.resolve(&anchors) });
        let now = now.resolve(&[
            n.deemed_from(),
            response.map_or(n.enforced(), |r| r.at),
            n.enforced(),
            n.served,
        ]);
        check_decision(&n, response, now)?;
    }

    #[test]
    fn several_responses_match_the_model(
        n in notice(),
        responses in proptest::collection::vec((answer(), near(4)), 0..5),
        now in near(4),
    ) {
        let anchors = [n.deemed_from(), n.enforced(), n.served, n.effective];
        let responses: Vec<model::Response> = responses
            .into_iter()
            .map(|(answer, at)| model::Response { answer, at: at.resolve(&anchors) })
            .collect();
        let now = now.resolve(&[n.deemed_from(), n.enforced(), n.served]);
        check_responses(&n, &responses, now)?;
    }

    #[test]
    fn access_review_matches_the_model(
        created in instant(),
        last in proptest::option::of(near(2)),
        now in near(3),
    ) {
        let last = last.map(|l| l.resolve(&[created, model::plus_days(created, 30)]));
        let since = last.unwrap_or(created);
        let now = now.resolve(&[model::plus_days(since, 30), since, created]);
        check_review(last, created, now)?;
    }

    #[test]
    fn retention_matches_the_model(
        deleted in instant(),
        months in prop_oneof![6 => 0u32..=13, 1 => 14u32..=40, 1 => any::<u32>()],
        now in near(3),
    ) {
        let now = now.resolve(&[
            model::retained_until(deleted, months),
            deleted,
            model::plus_months(deleted, 13),
        ]);
        check_retention(deleted, months, now)?;
    }

    #[test]
    fn suspension_matches_the_model(
        start in proptest::option::of(instant()),
        end in proptest::option::of(near(1)),
        now in near(2),
    ) {
        let from = start.unwrap_or(0);
        let end = end.map(|e| e.resolve(&[from]));
        let now = now.resolve(&[from, end.unwrap_or(from)]);
        check_suspension(start, end, now)?;
    }

    #[test]
    fn requeue_matches_the_model(
        now in instant(),
        boundaries in proptest::collection::vec(proptest::option::of(near(1)), 0..5),
        cap in prop_oneof![
            Just(engine::MAX_REQUEUE),
            Just(Duration::ZERO),
            Just(Duration::MAX),
            (0u64..200_000).prop_map(Duration::from_secs),
        ],
    ) {
        let boundaries: Vec<Option<Ns>> =
            boundaries.into_iter().map(|b| b.map(|b| b.resolve(&[now]))).collect();
        let engine_boundaries = || boundaries.iter().map(|b| b.map(ts));
        prop_assert_eq!(
            engine::requeue_after(engine_boundaries(), ts(now), cap),
            model::requeue(&boundaries, now, cap)
        );
        let after = boundaries.iter().flatten().copied().filter(|&b| b > now).min();
        prop_assert_eq!(engine::earliest_after(engine_boundaries(), ts(now)), after.map(ts));
        prop_assert_eq!(
            engine::earliest(engine_boundaries()),
            boundaries.iter().flatten().copied().min().map(ts)
        );
    }

    #[test]
    fn calendar_arithmetic_matches_the_model(
        t in instant(),
        days in prop_oneof![3 => -1000i64..=1000, 1 => any::<i64>()],
        months in prop_oneof![
            3 => -30i32..=30,
            // Around the whole range in months, from the ends of the range.
            1 => 239_960i32..=239_990,
            1 => -239_990i32..=-239_960,
            1 => any::<i32>(),
        ],
    ) {
        prop_assert_eq!(
            engine::add_days(ts(t), days),
            ts(model::saturate(model::plus_days(t, i128::from(days))))
        );
        prop_assert_eq!(
            engine::add_months(ts(t), months),
            ts(model::saturate(model::plus_months(t, i128::from(months))))
        );
        prop_assert_eq!(engine::fmt_instant(ts(t)), model::rfc3339_seconds(t));
        let next = (t < model::max_ns()).then(|| ts(t + 1));
        prop_assert_eq!(engine::next_instant(ts(t)), next);
    }

    /// The model's own calendar: days and civil dates convert both ways, and
    /// the day after a date is the next day of its month or the first of the
    /// next month.
    #[test]
    fn model_calendar_is_consistent(days in -4_000_000i128..=4_000_000) {
        let (y, m, d) = model::civil_from_days(days);
        prop_assert!((1..=12).contains(&m) && (1..=model::month_len(y, m)).contains(&d));
        prop_assert_eq!(model::days_from_civil(y, m, d), days);
        let expected_next = if d < model::month_len(y, m) {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        };
        prop_assert_eq!(model::civil_from_days(days + 1), expected_next);
    }
}

// ---- Fixed checks: the model's calendar and readings of the spec ----

fn civil(year: i128, month: i128, day: i128) -> Ns {
    model::from_civil(model::Civil {
        year,
        month,
        day,
        time_ns: 0,
    })
}

fn parsed(s: &str) -> Ns {
    s.parse::<Timestamp>().unwrap().as_nanosecond()
}

#[test]
fn model_calendar_agrees_with_dates_written_out() {
    for (y, m, d, text) in [
        (1970, 1, 1, "1970-01-01T00:00:00Z"),
        (1969, 12, 31, "1969-12-31T00:00:00Z"),
        (1900, 3, 1, "1900-03-01T00:00:00Z"),
        (2000, 2, 29, "2000-02-29T00:00:00Z"),
        (2000, 3, 1, "2000-03-01T00:00:00Z"),
        (2024, 12, 31, "2024-12-31T00:00:00Z"),
        (2100, 3, 1, "2100-03-01T00:00:00Z"),
        (0, 2, 29, "0000-02-29T00:00:00Z"),
        (0, 1, 1, "0000-01-01T00:00:00Z"),
        (-1, 12, 31, "-000001-12-31T00:00:00Z"),
        (-4, 2, 29, "-000004-02-29T00:00:00Z"),
        (-9999, 1, 3, "-009999-01-03T00:00:00Z"),
        (9999, 12, 30, "9999-12-30T00:00:00Z"),
    ] {
        assert_eq!(civil(y, m, d), parsed(text), "{text}");
        assert_eq!(model::rfc3339_seconds(civil(y, m, d)), text);
    }
    assert_eq!(civil(1970, 1, 1), 0);
    assert_eq!(civil(2000, 1, 1) / NS_PER_SEC, 946_684_800);
    assert_eq!(model::min_ns(), Timestamp::MIN.as_nanosecond());
    assert_eq!(model::max_ns(), Timestamp::MAX.as_nanosecond());
    assert!(!model::is_leap(1900) && !model::is_leap(2100) && !model::is_leap(2027));
    assert!(model::is_leap(2000) && model::is_leap(2028) && model::is_leap(0));
}

#[test]
fn model_reads_the_spec_examples() {
    let at = parsed;
    // SPEC: "2026-08-31 + 6 months = 2027-02-28", and the same clamping at other month ends.
    for (from, months, to) in [
        ("2026-08-31T00:00:00Z", 6, "2027-02-28T00:00:00Z"),
        ("2027-08-31T12:00:00Z", 6, "2028-02-29T12:00:00Z"),
        ("2028-02-29T00:00:00Z", 12, "2029-02-28T00:00:00Z"),
        (
            "2026-12-31T23:59:59.999999999Z",
            1,
            "2027-01-31T23:59:59.999999999Z",
        ),
        ("2026-03-31T00:00:00Z", -1, "2026-02-28T00:00:00Z"),
    ] {
        assert_eq!(
            model::plus_months(at(from), months),
            at(to),
            "{from} {months:+} months"
        );
    }
    // "at least 30 days before" accepts exactly 30 days, not a nanosecond less.
    let n = |effective: &str| model::Notice {
        kind: NoticeType::Amendment,
        served: at("2026-03-01T10:00:00Z"),
        effective: at(effective),
        replacement: false,
        exemption: None,
    };
    assert_eq!(n("2026-03-31T10:00:00Z").window(), Window::Satisfied);
    assert_eq!(
        n("2026-03-31T09:59:59.999999999Z").window(),
        Window::TooShort
    );
    // A rejection at the deadline is in time; deemed accepted at that instant.
    let amendment = n("2026-04-15T00:00:00Z");
    let deadline = at("2026-04-15T00:00:00Z");
    let reject = |at| {
        Some(model::Response {
            answer: Answer::Reject,
            at,
        })
    };
    assert_eq!(amendment.decide(None, deadline - 1).0, Decision::Pending);
    assert_eq!(amendment.decide(None, deadline).0, Decision::DeemedAccepted);
    assert_eq!(
        amendment.decide(reject(deadline), deadline).0,
        Decision::Rejected
    );
    assert_eq!(
        amendment.decide(reject(deadline + 1), deadline + 1).0,
        Decision::DeemedAccepted
    );
    // A review exactly 30 days old is current, a nanosecond older is not.
    let reviewed = at("2026-03-01T09:00:00Z");
    assert!(model::review_current(
        Some(reviewed),
        0,
        reviewed + 30 * NS_PER_DAY
    ));
    assert!(!model::review_current(
        Some(reviewed),
        0,
        reviewed + 30 * NS_PER_DAY + 1
    ));
    // The end of the range: 6 months from 9999-06-30T23:00Z is past
    // Timestamp::MAX (9999-12-30T22:00Z) and saturates; from 21:00 it is not.
    let late = model::Notice {
        kind: NoticeType::Discontinuation,
        served: at("9999-06-30T23:00:00Z"),
        effective: model::max_ns(),
        replacement: false,
        exemption: None,
    };
    assert_eq!(late.earliest_lawful(), model::max_ns());
    assert_eq!(late.window(), Window::Satisfied);
    assert_eq!(
        model::plus_months(at("9999-06-30T21:00:00Z"), 6),
        at("9999-12-30T21:00:00Z")
    );
}

// ---- Fixed grid: every boundary of hand-picked calendar edges ----

/// Served/deleted/reviewed instants where month arithmetic is delicate.
fn edges() -> Vec<Ns> {
    let mut v: Vec<Ns> = [
        "2026-01-31T00:00:00Z",
        "2026-02-28T12:00:00Z",
        "2028-02-29T00:00:00Z",
        "2027-08-31T23:59:59.999999999Z",
        "2026-08-31T00:00:00Z",
        "2099-08-31T00:00:00Z",
        "2100-02-28T00:00:00Z",
        "2026-12-31T23:59:59.999999999Z",
        "2027-01-01T00:00:00Z",
        "9999-06-30T21:00:00Z",
        "9999-06-30T23:00:00Z",
        "9999-11-30T22:00:00.999999999Z",
        "9999-12-01T00:00:00Z",
    ]
    .into_iter()
    .map(parsed)
    .collect();
    v.extend([
        model::min_ns(),
        model::max_ns(),
        model::max_ns() - 30 * NS_PER_DAY,
        model::max_ns() - 30 * NS_PER_DAY + 1,
    ]);
    v
}

/// Each anchor and one nanosecond either side, kept on the timeline.
fn around(anchors: &[Ns]) -> Vec<Ns> {
    let mut v: Vec<Ns> = anchors
        .iter()
        .flat_map(|&a| [a - 1, a, a + 1])
        .map(model::saturate)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn grid(check: impl FnOnce() -> Result<(), TestCaseError>, what: impl std::fmt::Debug) {
    if let Err(e) = check() {
        panic!("{what:?}: {e}");
    }
}

#[test]
fn notices_and_decisions_at_every_boundary_of_calendar_edges() {
    let kinds = [
        NoticeType::Amendment,
        NoticeType::Discontinuation,
        NoticeType::UrlTermsUpdate,
    ];
    for served in edges() {
        for kind in kinds {
            for (replacement, exemption) in [
                (false, None),
                (true, None),
                (false, Some(Exemption::SecurityRisk)),
            ] {
                let windows = [
                    served,
                    model::plus_days(served, 30),
                    model::plus_months(served, 6),
                ];
                for effective in around(&windows) {
                    let n = model::Notice {
                        kind,
                        served,
                        effective,
                        replacement,
                        exemption,
                    };
                    let nows = around(&[served, effective, n.enforced(), n.deemed_from()]);
                    for &now in &nows {
                        grid(|| check_notice(&n, now), (&n, now));
                        grid(|| check_decision(&n, None, now), (&n, now));
                    }
                    for answer in [Answer::Accept, Answer::Reject] {
                        for at in around(&[n.deemed_from()]) {
                            let r = Some(model::Response { answer, at });
                            for now in around(&[at, n.deemed_from()]) {
                                grid(|| check_decision(&n, r, now), (&n, r, now));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn reviews_retention_and_suspensions_at_every_boundary_of_calendar_edges() {
    for base in edges() {
        for last in [None, Some(base)] {
            let created = if last.is_some() {
                model::min_ns()
            } else {
                base
            };
            for now in around(&[base, model::plus_days(base, 30)]) {
                grid(|| check_review(last, created, now), (last, created, now));
            }
        }
        for months in [0, 1, 6, 12, 13, 14, u32::MAX] {
            let until = model::retained_until(base, months);
            for now in around(&[base, until]) {
                grid(|| check_retention(base, months, now), (base, months, now));
            }
        }
        let ends = around(&[base, model::plus_months(base, 1)]);
        for start in [None, Some(base)] {
            for end in ends.iter().copied().map(Some).chain([None]) {
                for now in around(&[base, end.unwrap_or(base)]) {
                    grid(|| check_suspension(start, end, now), (start, end, now));
                }
            }
        }
    }
}
