//! Property tests: invariants of the rules, exactness of every `next_change`,
//! and totality (no panic) over the whole `Timestamp` range.

use std::time::Duration;

use covenant_terms::*;
use proptest::prelude::*;

const NS_PER_DAY: i128 = 86_400 * 1_000_000_000;

fn from_ns_saturating(ns: i128) -> Timestamp {
    let ns = ns.clamp(
        Timestamp::MIN.as_nanosecond(),
        Timestamp::MAX.as_nanosecond(),
    );
    Timestamp::from_nanosecond(ns).unwrap()
}

fn shift(ts: Timestamp, ns: i128) -> Timestamp {
    from_ns_saturating(ts.as_nanosecond().saturating_add(ns))
}

/// Any instant, biased towards realistic dates and the two ends of the range.
fn any_ts() -> impl Strategy<Value = Timestamp> {
    let min = Timestamp::MIN.as_nanosecond();
    let max = Timestamp::MAX.as_nanosecond();
    let y2000 = 946_684_800i128 * 1_000_000_000;
    let y2100 = 4_102_444_800i128 * 1_000_000_000;
    prop_oneof![
        3 => (y2000..y2100).prop_map(from_ns_saturating),
        1 => (min..=max).prop_map(from_ns_saturating),
        1 => (0..=800 * NS_PER_DAY).prop_map(move |d| from_ns_saturating(max - d)),
        1 => (0..=800 * NS_PER_DAY).prop_map(move |d| from_ns_saturating(min + d)),
        1 => Just(Timestamp::MAX),
        1 => Just(Timestamp::MIN),
    ]
}

/// An offset that is either tiny (to land on and around boundaries) or large.
fn offset() -> impl Strategy<Value = i128> {
    prop_oneof![
        2 => -2i128..=2,
        1 => (-2i128..=2).prop_map(|s| s * 1_000_000_000),
        2 => -400 * NS_PER_DAY..=400 * NS_PER_DAY,
    ]
}

/// An instant placed relative to one of several anchors (chosen by `anchor`),
/// or anywhere: how the tests hit boundaries exactly.
#[derive(Debug, Clone, Copy)]
struct Rel {
    anchor: usize,
    offset: i128,
    free: Timestamp,
}

impl Rel {
    fn resolve(self, anchors: &[Timestamp]) -> Timestamp {
        match anchors.get(self.anchor) {
            Some(&a) => shift(a, self.offset),
            None => self.free,
        }
    }
}

fn rel() -> impl Strategy<Value = Rel> {
    (0usize..6, offset(), any_ts()).prop_map(|(anchor, offset, free)| Rel {
        anchor,
        offset,
        free,
    })
}

fn notice_type() -> impl Strategy<Value = NoticeType> {
    prop_oneof![
        Just(NoticeType::Amendment),
        Just(NoticeType::Discontinuation),
        Just(NoticeType::UrlTermsUpdate),
    ]
}

fn exemption() -> impl Strategy<Value = Option<Exemption>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Exemption::LegalRequirement)),
        1 => Just(Some(Exemption::SecurityRisk)),
    ]
}

/// A notice whose effectiveAt is placed around its own window boundaries.
fn notice() -> impl Strategy<Value = Notice> {
    (notice_type(), any_ts(), rel(), any::<bool>(), exemption()).prop_map(
        |(notice_type, served_at, eff, has_replacement, exemption)| {
            let anchors = [
                served_at,
                add_days(served_at, AMENDMENT_NOTICE_DAYS),
                add_months(served_at, DISCONTINUATION_NOTICE_MONTHS),
            ];
            Notice {
                notice_type,
                served_at,
                effective_at: eff.resolve(&anchors),
                has_replacement,
                exemption,
            }
        },
    )
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![Just(Answer::Accept), Just(Answer::Reject)]
}

/// A point in `[from, to)`, `to > from`, chosen by `pick`.
fn between(from: Timestamp, to: Timestamp, pick: u128) -> Timestamp {
    let span = (to.as_nanosecond() - from.as_nanosecond()) as u128;
    from_ns_saturating(from.as_nanosecond() + (pick % span) as i128)
}

/// Checks that `next` is exactly when `answer` changes: strictly after `now`,
/// different at `next`, the same everywhere in `[now, next)`; and that with no
/// `next` nothing changes later.
fn check_next_change<A: PartialEq + std::fmt::Debug>(
    now: Timestamp,
    next: Option<Timestamp>,
    pick: u128,
    answer: impl Fn(Timestamp) -> A,
) -> Result<(), TestCaseError> {
    let here = answer(now);
    match next {
        Some(t) => {
            prop_assert!(t > now, "next_change {t} not after now {now}");
            prop_assert_ne!(&answer(t), &here, "answer unchanged at next_change {}", t);
            let just_before = shift(t, -1);
            prop_assert_eq!(
                &answer(just_before),
                &here,
                "changed before next_change, at {}",
                just_before
            );
            let mid = between(now, t, pick);
            prop_assert_eq!(
                &answer(mid),
                &here,
                "changed before next_change, at {}",
                mid
            );
        }
        None => {
            if now < Timestamp::MAX {
                let later = between(now, Timestamp::MAX, pick);
                prop_assert_eq!(
                    &answer(later),
                    &here,
                    "changed at {} with no next_change",
                    later
                );
            }
            prop_assert_eq!(&answer(Timestamp::MAX), &here, "changed by the end of time");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn notice_invariants(n in notice(), now_rel in rel()) {
        let now = now_rel.resolve(&[n.served_at, n.effective_at]);
        let e = evaluate_notice(&n, now);
        prop_assert_eq!(e.earliest_lawful_at, earliest_lawful_at(&n));
        match n.effective_exemption() {
            Some(x) => {
                prop_assert_eq!(e.window, Window::Exempt(x));
                prop_assert_eq!(e.enforced_effective_at, n.effective_at);
            }
            None => {
                prop_assert!(e.enforced_effective_at >= n.effective_at);
                prop_assert!(e.enforced_effective_at >= e.earliest_lawful_at);
                prop_assert_eq!(
                    e.enforced_effective_at,
                    n.effective_at.max(e.earliest_lawful_at)
                );
            }
        }
        match e.window {
            Window::Satisfied | Window::Exempt(_) => {
                prop_assert_eq!(e.enforced_effective_at, n.effective_at);
            }
            Window::TooShort => {
                prop_assert!(n.effective_at < e.earliest_lawful_at);
                prop_assert_eq!(e.enforced_effective_at, e.earliest_lawful_at);
            }
            Window::ReplacementProvided => {
                prop_assert!(n.notice_type == NoticeType::Discontinuation && n.has_replacement);
                prop_assert_eq!(e.earliest_lawful_at, n.served_at);
            }
        }
        prop_assert_eq!(e.window.is_lawful(), e.window != Window::TooShort);
        prop_assert_eq!(e.effective, now >= e.enforced_effective_at);
        let deadline = (n.notice_type == NoticeType::Amendment)
            .then(|| add_days(n.served_at, AMENDMENT_NOTICE_DAYS).max(n.effective_at));
        prop_assert_eq!(e.rejection_deadline, deadline);
        if let Some(d) = e.rejection_deadline {
            prop_assert!(d >= e.enforced_effective_at);
        }
        // Inclusive windows: the exact boundary is satisfied.
        if n.effective_exemption().is_none() && !(n.notice_type == NoticeType::Discontinuation && n.has_replacement) {
            prop_assert_eq!(e.window == Window::Satisfied, n.effective_at >= e.earliest_lawful_at);
        }
    }

    #[test]
    fn notice_next_change_is_exact(n in notice(), now_rel in rel(), pick in any::<u128>()) {
        let e0 = evaluate_notice(&n, n.served_at);
        let now = now_rel.resolve(&[
            n.served_at,
            n.effective_at,
            e0.enforced_effective_at,
            e0.rejection_deadline.unwrap_or(n.served_at),
        ]);
        let e = evaluate_notice(&n, now);
        // The notice's own answer is `effective`; the rejection deadline is
        // the other boundary it reports (for the accounts' decisions).
        let answer = |t| {
            let ev = evaluate_notice(&n, t);
            (ev.effective, ev.rejection_deadline.is_some_and(|d| t >= d))
        };
        check_next_change(now, e.next_change, pick, answer)?;
        // Everything but `effective` and `next_change` is independent of now.
        if now < Timestamp::MAX {
            let later = evaluate_notice(&n, between(now, Timestamp::MAX, pick));
            prop_assert_eq!(later.window, e.window);
            prop_assert_eq!(later.enforced_effective_at, e.enforced_effective_at);
            prop_assert_eq!(later.rejection_deadline, e.rejection_deadline);
        }
    }

    #[test]
    fn decision_next_change_is_exact(
        n in notice(),
        response in proptest::option::of((answer(), rel())),
        now_rel in rel(),
        pick in any::<u128>(),
    ) {
        let e0 = evaluate_notice(&n, n.served_at);
        let anchors = [
            n.served_at,
            n.effective_at,
            e0.enforced_effective_at,
            e0.rejection_deadline.unwrap_or(e0.enforced_effective_at),
        ];
        let response = response.map(|(answer, at)| Response { answer, at: at.resolve(&anchors) });
        let now = now_rel.resolve(&[
            anchors[2],
            anchors[3],
            response.map_or(n.served_at, |r| r.at),
            n.served_at,
        ]);
        let decide = |t| {
            let e = evaluate_notice(&n, t);
            evaluate_decision(&n, &e, response.as_ref(), t)
        };
        let d = decide(now);

        // The rules, restated.
        let made = response.filter(|r| r.at <= now);
        let deemed_at = e0.rejection_deadline.unwrap_or(e0.enforced_effective_at);
        let expected = match made {
            Some(Response { answer: Answer::Accept, .. }) => Decision::Accepted,
            Some(Response { answer: Answer::Reject, at })
                if n.notice_type == NoticeType::Amendment && at <= deemed_at => Decision::Rejected,
            _ if now >= deemed_at => Decision::DeemedAccepted,
            _ => Decision::Pending,
        };
        prop_assert_eq!(d.decision, expected);
        let expected_unhonoured = match made {
            Some(Response { answer: Answer::Reject, at }) => match n.notice_type {
                NoticeType::Amendment if at <= deemed_at => None,
                NoticeType::Amendment => Some(UnhonouredRejection::AfterDeadline { at, deadline: deemed_at }),
                notice_type => Some(UnhonouredRejection::NotRejectable { notice_type }),
            },
            _ => None,
        };
        prop_assert_eq!(d.unhonoured_rejection, expected_unhonoured);

        check_next_change(now, d.next_change, pick, |t| {
            let d = decide(t);
            (d.decision, d.unhonoured_rejection)
        })?;
    }

    #[test]
    fn access_review_next_change_is_exact(
        created in any_ts(),
        last in proptest::option::of(rel()),
        now_rel in rel(),
        pick in any::<u128>(),
    ) {
        let last = last.map(|r| r.resolve(&[created]));
        let base = last.unwrap_or(created);
        let due = add_days(base, ACCESS_REVIEW_DAYS);
        let now = now_rel.resolve(&[due, base, created]);
        let r = evaluate_access_review(last, created, now);
        prop_assert_eq!(r.due_at, due);
        prop_assert_eq!(r.current, now <= due);
        check_next_change(now, r.next_change, pick, |t| evaluate_access_review(last, created, t).current)?;
        // The due date does not move with the clock (a stable status).
        if now < Timestamp::MAX {
            prop_assert_eq!(evaluate_access_review(last, created, between(now, Timestamp::MAX, pick)).due_at, due);
        }
        // A later review never makes an account overdue.
        if let Some(l) = last {
            let later = evaluate_access_review(Some(shift(l, 1_000)), created, now);
            prop_assert!(later.current || !r.current);
        }
    }

    #[test]
    fn retention_next_change_is_exact(
        deleted in any_ts(),
        months in prop_oneof![4 => 0u32..=20, 1 => any::<u32>()],
        now_rel in rel(),
        pick in any::<u128>(),
    ) {
        let until = retained_until(deleted, months);
        prop_assert_eq!(until, retained_until(deleted, months.min(MAX_RETENTION_MONTHS)));
        prop_assert!(until >= deleted);
        prop_assert!(until <= add_months(deleted, 13));
        let now = now_rel.resolve(&[until, deleted]);
        let r = evaluate_retention(deleted, months, now);
        prop_assert_eq!(r.until, until);
        prop_assert_eq!(r.expired, now >= until);
        check_next_change(now, r.next_change, pick, |t| evaluate_retention(deleted, months, t).expired)?;
    }

    #[test]
    fn suspension_next_change_is_exact(
        start in proptest::option::of(any_ts()),
        end in proptest::option::of(rel()),
        now_rel in rel(),
        pick in any::<u128>(),
    ) {
        let end = end.map(|r| r.resolve(&[start.unwrap_or(Timestamp::UNIX_EPOCH)]));
        let now = now_rel.resolve(&[
            start.unwrap_or(Timestamp::UNIX_EPOCH),
            end.unwrap_or(Timestamp::UNIX_EPOCH),
        ]);
        let w = evaluate_suspension(start, end, now);
        let active = start.is_none_or(|s| now >= s) && end.is_none_or(|e| now < e);
        prop_assert_eq!(w.active, active);
        prop_assert_eq!(w.active, w.phase == SuspensionPhase::Active);
        if is_empty_window(start, end) {
            prop_assert!(!w.active);
        }
        if end.is_some_and(|e| now >= e) {
            prop_assert_eq!(w.phase, SuspensionPhase::Ended);
        }
        check_next_change(now, w.next_change, pick, |t| evaluate_suspension(start, end, t).phase)?;
    }

    #[test]
    fn requeue_is_the_capped_delay_to_the_earliest_boundary(
        next in proptest::collection::vec(proptest::option::of(rel()), 0..5),
        now in any_ts(),
        cap_secs in 0u64..=100_000,
    ) {
        let next: Vec<Option<Timestamp>> = next.into_iter().map(|o| o.map(|r| r.resolve(&[now]))).collect();
        let cap = Duration::from_secs(cap_secs);
        let got = requeue_after(next.iter().copied(), now, cap);
        match earliest(next.iter().copied()) {
            None => prop_assert_eq!(got, None),
            Some(t) if t <= now => prop_assert_eq!(got, Some(Duration::ZERO)),
            Some(t) => {
                let exact = Duration::try_from(t.duration_since(now)).unwrap();
                prop_assert_eq!(got, Some(exact.min(cap)));
                prop_assert!(exact > Duration::ZERO);
            }
        }
        if let Some(g) = got {
            prop_assert!(g <= cap);
        }
        prop_assert_eq!(
            earliest_after(next.iter().copied(), now),
            next.iter().flatten().copied().filter(|&t| t > now).min()
        );
    }

    #[test]
    fn calendar_arithmetic_is_total_and_monotone(
        ts in any_ts(),
        days in prop_oneof![3 => -1000i64..=1000, 1 => any::<i64>()],
        months in prop_oneof![3 => -50i32..=50, 1 => any::<i32>()],
    ) {
        let d = add_days(ts, days);
        let m = add_months(ts, months);
        match days.cmp(&0) {
            std::cmp::Ordering::Greater => prop_assert!(d > ts || d == Timestamp::MAX),
            std::cmp::Ordering::Less => prop_assert!(d < ts || d == Timestamp::MIN),
            std::cmp::Ordering::Equal => prop_assert_eq!(d, ts),
        }
        match months.cmp(&0) {
            std::cmp::Ordering::Greater => prop_assert!(m > ts || m == Timestamp::MAX),
            std::cmp::Ordering::Less => prop_assert!(m < ts || m == Timestamp::MIN),
            std::cmp::Ordering::Equal => prop_assert_eq!(m, ts),
        }
        if d != Timestamp::MAX && d != Timestamp::MIN {
            prop_assert_eq!(d.duration_since(ts).as_secs(), days * 86_400);
        }
        if m != Timestamp::MAX && m != Timestamp::MIN {
            // Same time of day; the day of month never grows.
            use jiff::tz::TimeZone;
            let (a, b) = (ts.to_zoned(TimeZone::UTC), m.to_zoned(TimeZone::UTC));
            prop_assert_eq!(a.time(), b.time());
            prop_assert!(b.day() <= a.day());
        }
        let s = fmt_instant(ts);
        prop_assert!(s.ends_with('Z'));
        prop_assert!(!s.contains('.'));
    }
}
