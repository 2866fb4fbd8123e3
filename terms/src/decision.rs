//! An account's decision on a notice: acceptance, rejection until the
//! deadline, and deemed acceptance (preamble, §2.1, §2.2).

use std::fmt;

use jiff::Timestamp;

use crate::notice::{Notice, NoticeEvaluation, NoticeType, rejection_deadline};
use crate::requeue::earliest;

/// What an account answered (`noticeResponses[].decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// The account accepts the notice.
    Accept,
    /// The account rejects the notice (honoured for amendments up to the
    /// rejection deadline only).
    Reject,
}

impl Answer {
    /// The API spelling (`Accept`, `Reject`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Answer::Accept => "Accept",
            Answer::Reject => "Reject",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's recorded answer to a notice, and when it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// The answer.
    pub answer: Answer,
    /// When it was given (`noticeResponses[].at`).
    pub at: Timestamp,
}

/// The account's standing on a notice (its Account's `status.notices[].decision`; the notice counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// No answer yet and the deadline has not arrived.
    Pending,
    /// Explicitly accepted.
    Accepted,
    /// Not rejected by the deadline, so deemed accepted from that instant on.
    DeemedAccepted,
    /// Rejected in time (amendments only).
    Rejected,
}

impl Decision {
    /// The API spelling (`Pending`, `Accepted`, `DeemedAccepted`, `Rejected`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Pending => "Pending",
            Decision::Accepted => "Accepted",
            Decision::DeemedAccepted => "DeemedAccepted",
            Decision::Rejected => "Rejected",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection that was recorded but not honoured, and why; the operator
/// shows it in status (the spec: "the status says so").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnhonouredRejection {
    /// The rejection came after the amendment's rejection deadline.
    AfterDeadline {
        /// When the rejection was given.
        at: Timestamp,
        /// The rejection deadline it missed.
        deadline: Timestamp,
    },
    /// The terms give no right to reject this type of notice (§2.1, §2.2).
    NotRejectable {
        /// The notice's type.
        notice_type: NoticeType,
    },
}

impl fmt::Display for UnhonouredRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UnhonouredRejection::AfterDeadline { at, deadline } => write!(
                f,
                "rejection given at {at} is after the rejection deadline {deadline} and is not honoured"
            ),
            UnhonouredRejection::NotRejectable { notice_type } => write!(
                f,
                "a {notice_type} notice cannot be rejected under the terms; the rejection is not honoured"
            ),
        }
    }
}

/// The outcome of [`evaluate_decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionEvaluation {
    /// The account's standing.
    pub decision: Decision,
    /// A rejection that was not honoured, and why (e.g. it came after the
    /// deadline, or the notice type cannot be rejected); the operator shows it
    /// in status.
    pub unhonoured_rejection: Option<UnhonouredRejection>,
    /// The next instant strictly after `now` at which `decision` or
    /// `unhonoured_rejection` changes; `None` if never.
    pub next_change: Option<Timestamp>,
}

/// Evaluates one account's decision on a notice at `now`.
///
/// - Amendment: `Accept` (any time) → `Accepted`; `Reject` at or before the
///   rejection deadline → `Rejected`; a later `Reject` is not honoured
///   ([`UnhonouredRejection::AfterDeadline`]) and counts as no answer. With no
///   honoured answer the account is `Pending` before the deadline and
///   `DeemedAccepted` from the deadline instant on (inclusive).
/// - Discontinuation, URLTermsUpdate: the terms give no right to reject them,
///   so `Reject` is not honoured ([`UnhonouredRejection::NotRejectable`]);
///   `Accept` → `Accepted`; otherwise `Pending` before
///   `enforced_effective_at` and `DeemedAccepted` from it on.
///
/// A response whose `at` is after `now` has not been made yet: it is ignored
/// until `now` reaches `at`, and `next_change` includes `at`.
///
/// `eval` must be `evaluate_notice(notice, _)`; its `rejection_deadline` and
/// `enforced_effective_at` are used (an amendment evaluation without a
/// deadline falls back to computing it from `notice`).
pub fn evaluate_decision(
    notice: &Notice,
    eval: &NoticeEvaluation,
    response: Option<&Response>,
    now: Timestamp,
) -> DecisionEvaluation {
    // A response dated in the future is not made yet; it changes things at `at`.
    let (made, future_at) = match response {
        Some(r) if r.at > now => (None, Some(r.at)),
        Some(r) => (Some(r), None),
        None => (None, None),
    };

    // The instant from which silence counts as acceptance.
    let deemed_at = deemed_at(notice, eval);
    let silent = |unhonoured: Option<UnhonouredRejection>| {
        if now >= deemed_at {
            (Decision::DeemedAccepted, unhonoured, None)
        } else {
            (Decision::Pending, unhonoured, Some(deemed_at))
        }
    };

    let (decision, unhonoured_rejection, boundary) = match made.map(|r| (r.answer, r.at)) {
        Some((Answer::Accept, _)) => (Decision::Accepted, None, None),
        Some((Answer::Reject, at)) => match notice.notice_type {
            NoticeType::Amendment if at <= deemed_at => (Decision::Rejected, None, None),
            NoticeType::Amendment => silent(Some(UnhonouredRejection::AfterDeadline {
                at,
                deadline: deemed_at,
            })),
            notice_type @ (NoticeType::Discontinuation | NoticeType::UrlTermsUpdate) => {
                silent(Some(UnhonouredRejection::NotRejectable { notice_type }))
            }
        },
        None => silent(None),
    };

    DecisionEvaluation {
        decision,
        unhonoured_rejection,
        next_change: earliest([boundary, future_at]),
    }
}

/// What became of one of several responses an account gave to a notice
/// ([`evaluate_responses`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The latest response given by the deadline: it is the account's answer.
    Stands,
    /// Given in time, but a later response (also in time) replaced it.
    Superseded,
    /// Given after the deadline (the rejection deadline of an amendment, the
    /// enforced effective instant otherwise): not honoured.
    AfterDeadline {
        /// The deadline it missed.
        deadline: Timestamp,
    },
    /// A rejection of a notice the terms give no right to reject (§2.1, §2.2).
    NotRejectable,
    /// Dated after `now`: not given yet (only a self-reported time can be).
    NotYetGiven,
}

impl Verdict {
    /// A CamelCase reason (`Stands`, `Superseded`, `AfterDeadline`,
    /// `NotRejectable`, `NotYetGiven`).
    pub const fn reason(self) -> &'static str {
        match self {
            Verdict::Stands => "Stands",
            Verdict::Superseded => "Superseded",
            Verdict::AfterDeadline { .. } => "AfterDeadline",
            Verdict::NotRejectable => "NotRejectable",
            Verdict::NotYetGiven => "NotYetGiven",
        }
    }

    /// Whether the response is the account's answer.
    pub const fn honoured(self) -> bool {
        matches!(self, Verdict::Stands)
    }
}

/// The outcome of [`evaluate_responses`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponsesEvaluation {
    /// The account's standing, from the response that stands (if any).
    pub decision: DecisionEvaluation,
    /// The index of the response that stands.
    pub standing: Option<usize>,
    /// One verdict per response, in the order given.
    pub verdicts: Vec<Verdict>,
}

/// The instant from which silence counts as acceptance: an amendment's
/// rejection deadline, the enforced effective instant of any other notice.
/// Responses given after it are not honoured.
pub fn deemed_at(notice: &Notice, eval: &NoticeEvaluation) -> Timestamp {
    match notice.notice_type {
        NoticeType::Amendment => eval
            .rejection_deadline
            .or_else(|| rejection_deadline(notice))
            .unwrap_or(eval.enforced_effective_at),
        NoticeType::Discontinuation | NoticeType::UrlTermsUpdate => eval.enforced_effective_at,
    }
}

/// Evaluates every response an account gave to one notice at `now`: the
/// latest one given by the deadline ([`deemed_at`], inclusive) stands and
/// decides (see [`evaluate_decision`]); earlier ones in time are superseded;
/// later ones are not honoured, nor are rejections of notices that cannot be
/// rejected. Two responses given at the same instant: the rejection stands (a
/// tenant's right to reject is not lost to a tie), else the later in the list.
///
/// `DecisionEvaluation::unhonoured_rejection` names the latest rejection that
/// was not honoured and came after the standing response (or with none
/// standing), so that the status says why a rejection did not count.
pub fn evaluate_responses(
    notice: &Notice,
    eval: &NoticeEvaluation,
    responses: &[Response],
    now: Timestamp,
) -> ResponsesEvaluation {
    let deadline = deemed_at(notice, eval);
    let mut verdicts: Vec<Verdict> = responses
        .iter()
        .map(|r| {
            if r.at > now {
                Verdict::NotYetGiven
            } else if r.answer == Answer::Reject && notice.notice_type != NoticeType::Amendment {
                Verdict::NotRejectable
            } else if r.at > deadline {
                Verdict::AfterDeadline { deadline }
            } else {
                Verdict::Superseded
            }
        })
        .collect();
    let rank = |i: usize| {
        let r = &responses[i];
        (r.at, r.answer == Answer::Reject, i)
    };
    let standing = (0..responses.len())
        .filter(|&i| verdicts[i] == Verdict::Superseded)
        .max_by_key(|&i| rank(i));
    if let Some(i) = standing {
        verdicts[i] = Verdict::Stands;
    }
    let mut decision = evaluate_decision(notice, eval, standing.map(|i| &responses[i]), now);
    decision.unhonoured_rejection = (0..responses.len())
        .filter(|&i| responses[i].answer == Answer::Reject)
        .filter(|&i| standing.is_none_or(|s| rank(i) > rank(s)))
        .filter_map(|i| match verdicts[i] {
            Verdict::AfterDeadline { deadline } => Some((
                rank(i),
                UnhonouredRejection::AfterDeadline {
                    at: responses[i].at,
                    deadline,
                },
            )),
            Verdict::NotRejectable => Some((
                rank(i),
                UnhonouredRejection::NotRejectable {
                    notice_type: notice.notice_type,
                },
            )),
            _ => None,
        })
        .max_by_key(|(k, _)| *k)
        .map(|(_, u)| u);
    let not_yet = responses.iter().filter(|r| r.at > now).map(|r| Some(r.at));
    decision.next_change = earliest(not_yet.chain([decision.next_change]));
    ResponsesEvaluation {
        decision,
        standing,
        verdicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{Exemption, evaluate_notice};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn amendment() -> Notice {
        // Deadline = max(2026-03-31, 2026-04-15) = 2026-04-15.
        Notice {
            notice_type: NoticeType::Amendment,
            served_at: ts("2026-03-01T00:00:00Z"),
            effective_at: ts("2026-04-15T00:00:00Z"),
            has_replacement: false,
            exemption: None,
        }
    }

    const DEADLINE: &str = "2026-04-15T00:00:00Z";

    fn decide(n: &Notice, r: Option<Response>, now: &str) -> DecisionEvaluation {
        let now = ts(now);
        evaluate_decision(n, &evaluate_notice(n, now), r.as_ref(), now)
    }

    fn reject(at: &str) -> Option<Response> {
        Some(Response {
            answer: Answer::Reject,
            at: ts(at),
        })
    }

    fn accept(at: &str) -> Option<Response> {
        Some(Response {
            answer: Answer::Accept,
            at: ts(at),
        })
    }

    #[test]
    fn silence_is_deemed_acceptance_exactly_at_the_deadline() {
        let n = amendment();
        let before = decide(&n, None, "2026-04-14T23:59:59.999999999Z");
        assert_eq!(before.decision, Decision::Pending);
        assert_eq!(before.unhonoured_rejection, None);
        assert_eq!(before.next_change, Some(ts(DEADLINE)));
        let at = decide(&n, None, DEADLINE);
        assert_eq!(at.decision, Decision::DeemedAccepted);
        assert_eq!(at.next_change, None);
        assert_eq!(
            decide(&n, None, "2030-01-01T00:00:00Z").decision,
            Decision::DeemedAccepted
        );
    }

    #[test]
    fn deadline_is_served_plus_30_days_when_effective_is_earlier() {
        let n = Notice {
            effective_at: ts("2026-03-20T00:00:00Z"),
            ..amendment()
        };
        assert_eq!(
            decide(&n, None, "2026-03-30T23:59:59Z").decision,
            Decision::Pending
        );
        assert_eq!(
            decide(&n, None, "2026-03-31T00:00:00Z").decision,
            Decision::DeemedAccepted
        );
    }

    #[test]
    fn rejection_in_time_is_honoured() {
        let n = amendment();
        let d = decide(&n, reject("2026-03-10T00:00:00Z"), "2026-03-10T00:00:00Z");
        assert_eq!(d.decision, Decision::Rejected);
        assert_eq!(d.unhonoured_rejection, None);
        assert_eq!(d.next_change, None);
        // And stays rejected after the deadline.
        let d = decide(&n, reject("2026-03-10T00:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(d.decision, Decision::Rejected);
    }

    #[test]
    fn rejection_exactly_at_the_deadline_is_honoured() {
        let n = amendment();
        let d = decide(&n, reject(DEADLINE), DEADLINE);
        assert_eq!(d.decision, Decision::Rejected);
        assert_eq!(d.unhonoured_rejection, None);
    }

    #[test]
    fn late_rejection_is_not_honoured() {
        let n = amendment();
        let late = "2026-04-15T00:00:01Z";
        let d = decide(&n, reject(late), "2026-05-01T00:00:00Z");
        assert_eq!(d.decision, Decision::DeemedAccepted);
        assert_eq!(
            d.unhonoured_rejection,
            Some(UnhonouredRejection::AfterDeadline {
                at: ts(late),
                deadline: ts(DEADLINE)
            })
        );
        assert_eq!(d.next_change, None);
        assert_eq!(
            d.unhonoured_rejection.unwrap().to_string(),
            "rejection given at 2026-04-15T00:00:01Z is after the rejection deadline \
             2026-04-15T00:00:00Z and is not honoured"
        );
    }

    #[test]
    fn rejection_one_nanosecond_late_is_not_honoured() {
        let n = amendment();
        let d = decide(
            &n,
            reject("2026-04-15T00:00:00.000000001Z"),
            "2026-05-01T00:00:00Z",
        );
        assert_eq!(d.decision, Decision::DeemedAccepted);
        // The message keeps sub-second precision so it never reads as on time.
        assert_eq!(
            d.unhonoured_rejection.unwrap().to_string(),
            "rejection given at 2026-04-15T00:00:00.000000001Z is after the rejection deadline \
             2026-04-15T00:00:00Z and is not honoured"
        );
    }

    #[test]
    fn accept_any_time() {
        let n = amendment();
        for at in [
            "2026-02-01T00:00:00Z",
            "2026-03-10T00:00:00Z",
            DEADLINE,
            "2026-06-01T00:00:00Z",
        ] {
            let d = decide(&n, accept(at), "2026-06-01T00:00:00Z");
            assert_eq!(d.decision, Decision::Accepted, "{at}");
            assert_eq!(d.unhonoured_rejection, None);
            assert_eq!(d.next_change, None);
        }
    }

    #[test]
    fn future_response_is_not_made_yet() {
        let n = amendment();
        // A rejection dated tomorrow: pending until then, rejected from then.
        let d = decide(&n, reject("2026-03-11T00:00:00Z"), "2026-03-10T00:00:00Z");
        assert_eq!(d.decision, Decision::Pending);
        assert_eq!(d.next_change, Some(ts("2026-03-11T00:00:00Z")));
        let d = decide(&n, reject("2026-03-11T00:00:00Z"), "2026-03-11T00:00:00Z");
        assert_eq!(d.decision, Decision::Rejected);

        // A future rejection after the deadline: the deadline comes first.
        let d = decide(&n, reject("2026-05-01T00:00:00Z"), "2026-03-10T00:00:00Z");
        assert_eq!(d.decision, Decision::Pending);
        assert_eq!(d.unhonoured_rejection, None);
        assert_eq!(d.next_change, Some(ts(DEADLINE)));
        let d = decide(&n, reject("2026-05-01T00:00:00Z"), DEADLINE);
        assert_eq!(d.decision, Decision::DeemedAccepted);
        assert_eq!(d.unhonoured_rejection, None);
        assert_eq!(d.next_change, Some(ts("2026-05-01T00:00:00Z")));
        let d = decide(&n, reject("2026-05-01T00:00:00Z"), "2026-05-01T00:00:00Z");
        assert!(matches!(
            d.unhonoured_rejection,
            Some(UnhonouredRejection::AfterDeadline { .. })
        ));

        // A future acceptance after deemed acceptance still becomes Accepted.
        let d = decide(&n, accept("2026-05-01T00:00:00Z"), DEADLINE);
        assert_eq!(d.decision, Decision::DeemedAccepted);
        assert_eq!(d.next_change, Some(ts("2026-05-01T00:00:00Z")));
        assert_eq!(
            decide(&n, accept("2026-05-01T00:00:00Z"), "2026-05-01T00:00:00Z").decision,
            Decision::Accepted
        );
    }

    #[test]
    fn discontinuation_cannot_be_rejected() {
        let n = Notice {
            notice_type: NoticeType::Discontinuation,
            served_at: ts("2026-08-31T00:00:00Z"),
            effective_at: ts("2027-02-28T00:00:00Z"),
            has_replacement: false,
            exemption: None,
        };
        let d = decide(&n, reject("2026-09-01T00:00:00Z"), "2026-09-01T00:00:00Z");
        assert_eq!(d.decision, Decision::Pending);
        assert_eq!(
            d.unhonoured_rejection,
            Some(UnhonouredRejection::NotRejectable {
                notice_type: NoticeType::Discontinuation
            })
        );
        assert_eq!(d.next_change, Some(ts("2027-02-28T00:00:00Z")));
        assert_eq!(
            d.unhonoured_rejection.unwrap().to_string(),
            "a Discontinuation notice cannot be rejected under the terms; the rejection is not honoured"
        );
        let d = decide(&n, reject("2026-09-01T00:00:00Z"), "2027-02-28T00:00:00Z");
        assert_eq!(d.decision, Decision::DeemedAccepted);
        assert!(d.unhonoured_rejection.is_some());
        assert_eq!(d.next_change, None);

        // Deemed accepted at the enforced instant, not the requested one.
        let short = Notice {
            effective_at: ts("2026-10-01T00:00:00Z"),
            ..n
        };
        assert_eq!(
            decide(&short, None, "2026-10-01T00:00:00Z").decision,
            Decision::Pending
        );
        assert_eq!(
            decide(&short, None, "2027-02-27T23:59:59.999999999Z").decision,
            Decision::Pending
        );
        assert_eq!(
            decide(&short, None, "2027-02-28T00:00:00Z").decision,
            Decision::DeemedAccepted
        );
        assert_eq!(
            decide(
                &short,
                accept("2026-09-02T00:00:00Z"),
                "2026-09-02T00:00:00Z"
            )
            .decision,
            Decision::Accepted
        );
    }

    #[test]
    fn url_terms_update_cannot_be_rejected() {
        let n = Notice {
            notice_type: NoticeType::UrlTermsUpdate,
            served_at: ts("2026-03-01T00:00:00Z"),
            effective_at: ts("2026-03-05T00:00:00Z"),
            has_replacement: false,
            exemption: None,
        };
        let d = decide(&n, reject("2026-03-02T00:00:00Z"), "2026-03-02T00:00:00Z");
        assert_eq!(d.decision, Decision::Pending);
        assert_eq!(
            d.unhonoured_rejection,
            Some(UnhonouredRejection::NotRejectable {
                notice_type: NoticeType::UrlTermsUpdate
            })
        );
        assert_eq!(
            decide(&n, None, "2026-03-05T00:00:00Z").decision,
            Decision::DeemedAccepted
        );
    }

    #[test]
    fn an_exemption_on_an_amendment_neither_shortens_nor_takes_the_right_to_reject() {
        // §2.3 does not reach amendments: 30 days' notice, rejectable until the deadline.
        let n = Notice {
            exemption: Some(Exemption::LegalRequirement),
            effective_at: ts("2026-03-02T00:00:00Z"),
            ..amendment()
        };
        let e = evaluate_notice(&n, ts("2026-03-10T00:00:00Z"));
        assert!(!e.effective);
        assert_eq!(e.enforced_effective_at, ts("2026-03-31T00:00:00Z"));
        assert_eq!(e.rejection_deadline, Some(ts("2026-03-31T00:00:00Z")));
        assert_eq!(
            decide(&n, reject("2026-03-31T00:00:00Z"), "2026-04-01T00:00:00Z").decision,
            Decision::Rejected
        );
        assert_eq!(
            decide(&n, None, "2026-03-30T00:00:00Z").decision,
            Decision::Pending
        );
    }

    #[test]
    fn amendment_evaluation_without_deadline_falls_back_to_the_notice() {
        let n = amendment();
        let now = ts("2026-03-10T00:00:00Z");
        let eval = NoticeEvaluation {
            rejection_deadline: None,
            ..evaluate_notice(&n, now)
        };
        let d = evaluate_decision(&n, &eval, None, now);
        assert_eq!(d.next_change, Some(ts(DEADLINE)));
    }

    #[test]
    fn api_spellings() {
        assert_eq!(Decision::DeemedAccepted.to_string(), "DeemedAccepted");
        assert_eq!(Decision::Pending.as_str(), "Pending");
        assert_eq!(Decision::Accepted.as_str(), "Accepted");
        assert_eq!(Decision::Rejected.as_str(), "Rejected");
        assert_eq!(Answer::Accept.to_string(), "Accept");
        assert_eq!(Answer::Reject.as_str(), "Reject");
    }

    fn at(answer: Answer, t: &str) -> Response {
        Response { answer, at: ts(t) }
    }

    fn responses(n: &Notice, rs: &[Response], now: &str) -> ResponsesEvaluation {
        let now = ts(now);
        evaluate_responses(n, &evaluate_notice(n, now), rs, now)
    }

    #[test]
    fn the_latest_response_in_time_stands() {
        let n = amendment();
        let rs = [
            at(Answer::Reject, "2026-03-02T00:00:00Z"),
            at(Answer::Accept, "2026-03-03T00:00:00Z"),
        ];
        let e = responses(&n, &rs, "2026-03-04T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::Accepted);
        assert_eq!(e.standing, Some(1));
        assert_eq!(e.verdicts, vec![Verdict::Superseded, Verdict::Stands]);
        // Listed in any order: time decides, not position.
        let rev = [rs[1], rs[0]];
        let e = responses(&n, &rev, "2026-03-04T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::Accepted);
        assert_eq!(e.verdicts, vec![Verdict::Stands, Verdict::Superseded]);
    }

    #[test]
    fn a_response_after_the_deadline_changes_nothing() {
        let n = amendment();
        let rs = [
            at(Answer::Accept, "2026-03-02T00:00:00Z"),
            at(Answer::Reject, "2026-04-15T00:00:01Z"),
        ];
        let e = responses(&n, &rs, "2026-05-01T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::Accepted);
        assert_eq!(
            e.verdicts,
            vec![
                Verdict::Stands,
                Verdict::AfterDeadline {
                    deadline: ts(DEADLINE)
                }
            ]
        );
        assert_eq!(
            e.decision.unhonoured_rejection,
            Some(UnhonouredRejection::AfterDeadline {
                at: ts("2026-04-15T00:00:01Z"),
                deadline: ts(DEADLINE)
            })
        );
        // A late acceptance is not honoured either: silence until the deadline was acceptance.
        let late_accept = [at(Answer::Accept, "2026-04-15T00:00:01Z")];
        let e = responses(&n, &late_accept, "2026-05-01T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::DeemedAccepted);
        assert!(!e.verdicts[0].honoured());
        assert_eq!(e.decision.unhonoured_rejection, None);
    }

    #[test]
    fn a_response_exactly_at_the_deadline_stands() {
        let n = amendment();
        let e = responses(&n, &[at(Answer::Reject, DEADLINE)], "2026-06-01T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::Rejected);
        assert_eq!(e.verdicts, vec![Verdict::Stands]);
    }

    #[test]
    fn a_tie_keeps_the_rejection() {
        let n = amendment();
        let t = "2026-03-05T00:00:00Z";
        for rs in [
            [at(Answer::Reject, t), at(Answer::Accept, t)],
            [at(Answer::Accept, t), at(Answer::Reject, t)],
        ] {
            let e = responses(&n, &rs, t);
            assert_eq!(e.decision.decision, Decision::Rejected);
            assert_eq!(rs[e.standing.unwrap()].answer, Answer::Reject);
        }
    }

    #[test]
    fn a_rejection_of_a_discontinuation_leaves_the_earlier_acceptance() {
        let n = Notice {
            notice_type: NoticeType::Discontinuation,
            effective_at: ts("2026-10-01T00:00:00Z"),
            ..amendment()
        };
        let rs = [
            at(Answer::Accept, "2026-03-02T00:00:00Z"),
            at(Answer::Reject, "2026-03-03T00:00:00Z"),
        ];
        let e = responses(&n, &rs, "2026-03-04T00:00:00Z");
        assert_eq!(e.decision.decision, Decision::Accepted);
        assert_eq!(e.verdicts, vec![Verdict::Stands, Verdict::NotRejectable]);
        assert_eq!(
            e.decision.unhonoured_rejection,
            Some(UnhonouredRejection::NotRejectable {
                notice_type: NoticeType::Discontinuation
            })
        );
    }

    #[test]
    fn no_responses_is_silence() {
        let n = amendment();
        let e = responses(&n, &[], "2026-03-04T00:00:00Z");
        assert_eq!(e.decision, decide(&n, None, "2026-03-04T00:00:00Z"));
        assert_eq!(e.standing, None);
    }

    #[test]
    fn a_response_dated_ahead_is_not_given_yet() {
        let n = amendment();
        let e = responses(
            &n,
            &[at(Answer::Reject, "2026-03-11T00:00:00Z")],
            "2026-03-10T00:00:00Z",
        );
        assert_eq!(e.decision.decision, Decision::Pending);
        assert_eq!(e.verdicts, vec![Verdict::NotYetGiven]);
        assert_eq!(e.decision.next_change, Some(ts("2026-03-11T00:00:00Z")));
    }
}
