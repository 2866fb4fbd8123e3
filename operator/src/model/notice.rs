//! DeprecationNotice rules (preamble, §2.1–§2.3) on top of the terms engine: the notice's status and
//! each selected account's decision.

use std::collections::BTreeMap;

use covenant_terms as terms;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::{
    Account, AccountNoticeStatus, Decision, DecisionCounts, DeprecationNotice,
    DeprecationNoticeStatus, Exemption, NoticeAccountStatus, NoticeType, ResponseDecision,
};
use crate::status::{Cond, merge};

/// Condition type: the requested effective instant respects the notice window.
pub const NOTICE_WINDOW_SATISFIED: &str = "NoticeWindowSatisfied";
/// Condition type: the change is in effect.
pub const EFFECTIVE: &str = "Effective";

fn to_terms_type(t: NoticeType) -> terms::NoticeType {
    match t {
        NoticeType::Amendment => terms::NoticeType::Amendment,
        NoticeType::Discontinuation => terms::NoticeType::Discontinuation,
        NoticeType::UrlTermsUpdate => terms::NoticeType::UrlTermsUpdate,
    }
}

fn to_terms_exemption(e: Exemption) -> terms::Exemption {
    match e {
        Exemption::LegalRequirement => terms::Exemption::LegalRequirement,
        Exemption::SecurityRisk => terms::Exemption::SecurityRisk,
    }
}

fn from_terms_decision(d: terms::Decision) -> Decision {
    match d {
        terms::Decision::Pending => Decision::Pending,
        terms::Decision::Accepted => Decision::Accepted,
        terms::Decision::DeemedAccepted => Decision::DeemedAccepted,
        terms::Decision::Rejected => Decision::Rejected,
    }
}

/// When the notice counts as served: `spec.servedAt` when given, else the instant Covenant recorded
/// in status, else `now` (first observation). Never moved once recorded.
pub fn served_at(notice: &DeprecationNotice, now: Timestamp) -> Timestamp {
    notice
        .spec
        .served_at
        .as_ref()
        .or_else(|| notice.status.as_ref().and_then(|s| s.served_at.as_ref()))
        .map(|t| t.0)
        .unwrap_or(now)
}

/// The notice in the terms engine's terms, served at `served_at`.
pub fn terms_notice(notice: &DeprecationNotice, served_at: Timestamp) -> terms::Notice {
    terms::Notice {
        notice_type: to_terms_type(notice.spec.notice_type),
        served_at,
        effective_at: notice.spec.effective_at.0,
        has_replacement: notice.spec.replacement.is_some(),
        exemption: notice.spec.exemption.map(to_terms_exemption),
    }
}

/// Whether `notice` selects `account` (an absent or empty selector selects every account). A
/// selector that cannot be parsed selects nothing; [`evaluate`] reports it.
pub fn selects(notice: &DeprecationNotice, account: &Account) -> bool {
    match &notice.spec.accounts {
        None => true,
        Some(sel) => Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(account.labels())),
    }
}

/// One account's standing on a notice.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountDecision {
    /// The decision.
    pub decision: Decision,
    /// Why the account's response was not honoured, if it was not.
    pub unhonoured: Option<String>,
    /// When the decision changes next.
    pub next_change: Option<Timestamp>,
}

/// The account's decision on a served notice.
pub fn account_decision(
    notice: &DeprecationNotice,
    tn: &terms::Notice,
    eval: &terms::NoticeEvaluation,
    account: &Account,
    now: Timestamp,
) -> AccountDecision {
    let name = notice.name_any();
    let response = account
        .spec
        .notice_responses
        .iter()
        .find(|r| r.notice == name)
        .map(|r| terms::Response {
            answer: match r.decision {
                ResponseDecision::Accept => terms::Answer::Accept,
                ResponseDecision::Reject => terms::Answer::Reject,
            },
            at: r.at.0,
        });
    let d = terms::evaluate_decision(tn, eval, response.as_ref(), now);
    AccountDecision {
        decision: from_terms_decision(d.decision),
        unhonoured: d.unhonoured_rejection.map(|u| u.to_string()),
        next_change: d.next_change,
    }
}

/// What a notice's reconcile computes.
#[derive(Clone, Debug, PartialEq)]
pub struct NoticeOutcome {
    /// The status to write.
    pub status: DeprecationNoticeStatus,
    /// The next instant at which any part of the status changes.
    pub next_change: Option<Timestamp>,
    /// Problems with the notice itself (also in the conditions); empty when valid.
    pub errors: Vec<String>,
}

/// Computes a notice's status from the notice, every Account, and `now`.
pub fn evaluate<'a>(
    notice: &DeprecationNotice,
    accounts: impl IntoIterator<Item = &'a Account>,
    now: Timestamp,
) -> NoticeOutcome {
    let previous = notice.status.clone().unwrap_or_default();
    let generation = notice.metadata.generation;
    let mut errors = Vec::new();
    if let Some(sel) = &notice.spec.accounts
        && let Err(e) = Selector::try_from(sel.clone())
    {
        errors.push(format!(
            "spec.accounts is not a valid label selector ({e}): fix the selector"
        ));
    }
    let served = served_at(notice, now);
    if served > now {
        errors.push(format!(
            "spec.servedAt {} is in the future: notice cannot be served ahead of time; set it to when notice was actually given, or omit it",
            terms::fmt_instant(served)
        ));
        let conds = vec![
            Cond::new(
                NOTICE_WINDOW_SATISFIED,
                false,
                "InvalidServedAt",
                errors.join("; "),
            ),
            Cond::new(
                EFFECTIVE,
                false,
                "NotServed",
                "the notice has not been served yet",
            ),
        ];
        return NoticeOutcome {
            status: DeprecationNoticeStatus {
                observed_generation: generation,
                conditions: merge(&previous.conditions, conds, generation, now),
                ..Default::default()
            },
            // servedAt in the future becomes valid once it passes.
            next_change: Some(served),
            errors,
        };
    }
    let tn = terms_notice(notice, served);
    let eval = terms::evaluate_notice(&tn, now);
    let enforced = terms::fmt_instant(eval.enforced_effective_at);
    let requested = terms::fmt_instant(tn.effective_at);
    let window = match eval.window {
        terms::Window::Satisfied => Cond::new(
            NOTICE_WINDOW_SATISFIED,
            true,
            "Satisfied",
            format!(
                "served {} and effective {requested}: {}",
                terms::fmt_instant(served),
                required_window(notice.spec.notice_type)
            ),
        ),
        terms::Window::Exempt(e) => Cond::new(
            NOTICE_WINDOW_SATISFIED,
            true,
            "Exempt",
            format!("exempt from the notice windows ({e}, §2.3); effective {requested}"),
        ),
        terms::Window::ReplacementProvided => Cond::new(
            NOTICE_WINDOW_SATISFIED,
            true,
            "ReplacementProvided",
            format!(
                "a substantially similar replacement ({}) is provided (§2.1), so no 6-month notice is needed; effective {enforced}",
                notice.spec.replacement.as_deref().unwrap_or_default()
            ),
        ),
        terms::Window::TooShort => {
            let msg = format!(
                "effectiveAt {requested} is too early: {} served {} requires {}; the earliest lawful instant is {}, which Covenant enforces instead. Set effectiveAt to {} or later, or name an exemption if §2.3 applies",
                notice_type_name(notice.spec.notice_type),
                terms::fmt_instant(served),
                required_window(notice.spec.notice_type),
                terms::fmt_instant(eval.earliest_lawful_at),
                terms::fmt_instant(eval.earliest_lawful_at),
            );
            errors.push(msg.clone());
            Cond::new(NOTICE_WINDOW_SATISFIED, false, "WindowTooShort", msg)
        }
    };
    let effective = if eval.effective {
        Cond::new(
            EFFECTIVE,
            true,
            "Effective",
            format!("in effect since {enforced}"),
        )
    } else {
        Cond::new(
            EFFECTIVE,
            false,
            "Pending",
            format!("takes effect at {enforced}"),
        )
    };

    let mut next = vec![eval.next_change];
    let mut rows = Vec::new();
    let mut counts = DecisionCounts::default();
    for account in accounts.into_iter().filter(|a| selects(notice, a)) {
        let d = account_decision(notice, &tn, &eval, account, now);
        next.push(d.next_change);
        match d.decision {
            Decision::Pending => counts.pending += 1,
            Decision::Accepted => counts.accepted += 1,
            Decision::DeemedAccepted => counts.deemed_accepted += 1,
            Decision::Rejected => counts.rejected += 1,
        }
        rows.push(NoticeAccountStatus {
            name: account.name_any(),
            decision: d.decision,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));

    NoticeOutcome {
        status: DeprecationNoticeStatus {
            observed_generation: generation,
            served_at: Some(Time(served)),
            enforced_effective_at: Some(Time(eval.enforced_effective_at)),
            rejection_deadline: eval.rejection_deadline.map(Time),
            accounts: rows,
            counts: Some(counts),
            conditions: merge(
                &previous.conditions,
                vec![window, effective],
                generation,
                now,
            ),
        },
        next_change: terms::earliest_after(next, now),
        errors,
    }
}

fn notice_type_name(t: NoticeType) -> &'static str {
    match t {
        NoticeType::Amendment => "an amendment",
        NoticeType::Discontinuation => "a discontinuation",
        NoticeType::UrlTermsUpdate => "a URL-terms update",
    }
}

fn required_window(t: NoticeType) -> &'static str {
    match t {
        NoticeType::Amendment => "at least 30 days' notice (preamble)",
        NoticeType::Discontinuation => "at least 6 calendar months' notice (§2.1)",
        NoticeType::UrlTermsUpdate => "notice no later than the effective date (§2.2)",
    }
}

/// The notices concerning one account, for its `status.notices` and `TermsCurrent`. Only notices
/// whose served instant is recorded (or given in spec) count: one not yet observed by Covenant has
/// not been served.
pub fn account_notices(
    account: &Account,
    notices: &[DeprecationNotice],
    now: Timestamp,
) -> (Vec<AccountNoticeStatus>, Option<Timestamp>) {
    let mut rows = Vec::new();
    let mut next = Vec::new();
    for notice in notices.iter().filter(|n| selects(n, account)) {
        let recorded = notice
            .spec
            .served_at
            .as_ref()
            .or_else(|| notice.status.as_ref().and_then(|s| s.served_at.as_ref()));
        let Some(served) = recorded.map(|t| t.0) else {
            continue;
        };
        if served > now {
            next.push(Some(served));
            continue;
        }
        let tn = terms_notice(notice, served);
        let eval = terms::evaluate_notice(&tn, now);
        let d = account_decision(notice, &tn, &eval, account, now);
        next.push(d.next_change);
        next.push(eval.next_change);
        rows.push(AccountNoticeStatus {
            name: notice.name_any(),
            notice_type: notice.spec.notice_type,
            effective_at: Time(eval.enforced_effective_at),
            rejection_deadline: eval.rejection_deadline.map(Time),
            decision: d.decision,
            message: d.unhonoured,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    (rows, terms::earliest_after(next, now))
}

/// The `TermsCurrent` condition of an account from its notices: False while a notice awaits its
/// decision or was rejected.
pub fn terms_current(rows: &[AccountNoticeStatus]) -> Cond {
    let mut by: BTreeMap<Decision, Vec<String>> = BTreeMap::new();
    for r in rows {
        by.entry(r.decision)
            .or_default()
            .push(match &r.rejection_deadline {
                Some(d) if r.decision == Decision::Pending => {
                    format!("{} (reject by {})", r.name, terms::fmt_instant(d.0))
                }
                _ => r.name.clone(),
            });
    }
    let rejected = by.get(&Decision::Rejected);
    let pending = by.get(&Decision::Pending);
    match (rejected, pending) {
        (None, None) => Cond::new(
            "TermsCurrent",
            true,
            "Current",
            "no notice awaits a decision",
        ),
        (Some(r), _) => Cond::new(
            "TermsCurrent",
            false,
            "NoticeRejected",
            format!(
                "rejected: {}{}",
                r.join(", "),
                pending
                    .map(|p| format!("; pending: {}", p.join(", ")))
                    .unwrap_or_default()
            ),
        ),
        (None, Some(p)) => Cond::new(
            "TermsCurrent",
            false,
            "NoticePending",
            format!("pending: {}", p.join(", ")),
        ),
    }
}
