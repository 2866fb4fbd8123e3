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
    DeprecationNoticeStatus, Exemption, NoticeResponse, NoticeResponseStatus, NoticeType,
    ResponseDecision,
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

/// How a notice was served: when first (`servedAt`, never moved), and the window the rules count
/// from (moved only when `effectiveAt` moves earlier than the instant the notice announced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    /// When notice was first served: recorded once, never moved.
    pub served_at: Timestamp,
    /// When the notice was served again because `effectiveAt` moved earlier, if it was.
    pub reserved_at: Option<Timestamp>,
    /// The `effectiveAt` the notice announces as served.
    pub served_for: Timestamp,
    /// Whether this evaluation serves it again (`effectiveAt` moved earlier just now).
    pub reserves_now: bool,
}

impl Service {
    /// The instant the windows count from.
    pub fn window_from(&self) -> Timestamp {
        self.reserved_at.unwrap_or(self.served_at)
    }
}

/// How `notice` stands served at `now`, or `Err(servedAt)` when `spec.servedAt` is in the future and
/// nothing was recorded (not served yet).
///
/// The recorded `status.servedAt` wins over everything (a notice, once served, is never moved), then
/// `spec.servedAt` (only given at creation), then `now` (first observation). A notice whose
/// `effectiveAt` moved earlier than the one it was served for, and that is not in effect yet, is served
/// again at `now`: a served notice cannot be shortened.
pub fn service(notice: &DeprecationNotice, now: Timestamp) -> Result<Service, Timestamp> {
    let status = notice.status.as_ref();
    let recorded = status.and_then(|s| s.served_at.as_ref()).map(|t| t.0);
    let given = notice.spec.served_at.as_ref().map(|t| t.0);
    if recorded.is_none()
        && let Some(g) = given
        && g > now
    {
        return Err(g);
    }
    let served_at = recorded.or(given).unwrap_or(now);
    let reserved_at = status.and_then(|s| s.reserved_at.as_ref()).map(|t| t.0);
    let effective = notice.spec.effective_at.0;
    let served_for = status
        .and_then(|s| s.served_for.as_ref())
        .map_or(effective, |t| t.0);
    let previous = Service {
        served_at,
        reserved_at,
        served_for,
        reserves_now: false,
    };
    if effective >= served_for {
        // Later (or the same): announced as it stands, counted from the same service.
        return Ok(Service {
            served_for: effective,
            ..previous
        });
    }
    // Earlier: served again from now, unless it is in effect already under its earlier service.
    let before = terms_notice_at(notice, previous.window_from(), served_for);
    if now >= terms::evaluate_notice(&before, now).enforced_effective_at {
        return Ok(previous);
    }
    Ok(Service {
        served_at,
        reserved_at: Some(now),
        served_for: effective,
        reserves_now: true,
    })
}

fn terms_notice_at(
    notice: &DeprecationNotice,
    window_from: Timestamp,
    effective_at: Timestamp,
) -> terms::Notice {
    terms::Notice {
        effective_at,
        ..terms_notice(notice, window_from)
    }
}

/// One answer an account gave to a notice: a NoticeResponse in one of its namespaces (its time is
/// the API server's `creationTimestamp`) or one the platform recorded in `spec.noticeResponses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The notice answered.
    pub notice: String,
    /// Accept or Reject.
    pub decision: ResponseDecision,
    /// When it was given.
    pub at: Timestamp,
    /// Where: `<namespace>/<name>` of a NoticeResponse, or `spec.noticeResponses`.
    pub source: String,
}

/// Where a platform-recorded answer comes from.
pub const RECORDED: &str = "spec.noticeResponses";

/// Every answer of `account`: the ones recorded on it, and the NoticeResponses in the namespaces it
/// owns (`owns(namespace)`). A response without a creation time (not yet stored) is left out.
pub fn answers<'a>(
    account: &Account,
    responses: impl IntoIterator<Item = &'a NoticeResponse>,
    owns: impl Fn(&str) -> bool,
) -> Vec<Answer> {
    let recorded = account.spec.notice_responses.iter().map(|r| Answer {
        notice: r.notice.clone(),
        decision: r.decision,
        at: r.at.0,
        source: RECORDED.to_string(),
    });
    let tenant = responses.into_iter().filter_map(|r| {
        let ns = r.metadata.namespace.as_deref()?;
        if !owns(ns) {
            return None;
        }
        Some(Answer {
            notice: r.spec.notice.clone(),
            decision: r.spec.decision,
            at: r.metadata.creation_timestamp.as_ref()?.0,
            source: format!("{ns}/{}", r.name_any()),
        })
    });
    let mut all: Vec<Answer> = recorded.chain(tenant).collect();
    // The tenant answers that stood when Covenant last wrote the Account's status, whose
    // NoticeResponse is gone since (its namespace deleted: dropped with deletionPolicy Delete, or at
    // the end of retention): an answer once given is never undone by where it was written going away.
    let standing = account
        .status
        .iter()
        .flat_map(|s| &s.notices)
        .filter_map(|row| {
            let source = row.answered_by.as_ref()?;
            let decision = match row.decision {
                Decision::Accepted => ResponseDecision::Accept,
                Decision::Rejected => ResponseDecision::Reject,
                Decision::Pending | Decision::DeemedAccepted => return None,
            };
            (source != RECORDED).then_some(Answer {
                notice: row.name.clone(),
                decision,
                at: row.answered_at.as_ref()?.0,
                source: source.clone(),
            })
        })
        .filter(|r| !all.iter().any(|a| a.source == r.source))
        .collect::<Vec<_>>();
    all.extend(standing);
    all.sort_by(|a, b| (a.at, &a.source).cmp(&(b.at, &b.source)));
    all
}

/// The notice as `service` served it: counted from its (latest) service, and never effective earlier
/// than the instant it was served for. `effectiveAt` moved earlier once the notice is in effect does
/// not serve it again ([`service`]), and must not move its rejection deadline back either: a
/// rejection given in time would turn, after the fact, into one given too late.
pub fn served_terms(notice: &DeprecationNotice, service: &Service) -> terms::Notice {
    terms_notice_at(
        notice,
        service.window_from(),
        notice.spec.effective_at.0.max(service.served_for),
    )
}

/// What the accounts and the answers read of a notice: its identity, spec and service as recorded (not
/// its decision rows, which change as accounts answer). Triggers compare it ([`crate::controller::Seen`]).
pub fn read_by_accounts(notice: &DeprecationNotice) -> impl serde::Serialize + '_ {
    let service = notice
        .status
        .as_ref()
        .map(|s| (&s.served_at, &s.served_for, &s.reserved_at));
    (
        &notice.metadata.uid,
        &notice.metadata.deletion_timestamp,
        &notice.spec,
        service,
    )
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
    /// The answer that decides it (`Answer::source`).
    pub answered_by: Option<String>,
    /// When that answer was given.
    pub answered_at: Option<Timestamp>,
    /// Why a response was not honoured, if one was not.
    pub unhonoured: Option<String>,
    /// When the decision changes next.
    pub next_change: Option<Timestamp>,
    /// What became of each of the account's answers to this notice, by `Answer::source`.
    pub verdicts: Vec<(String, terms::Verdict)>,
}

/// Whether `answer` can answer this `notice`: a tenant's NoticeResponse made before the notice
/// existed answered an earlier notice of the same name (deleted since, its terms gone), not this one.
/// Answers the platform recorded carry the time they were given (an e-mail may predate the object).
fn answers_this(notice: &DeprecationNotice, answer: &Answer) -> bool {
    answer.source == RECORDED
        || notice
            .metadata
            .creation_timestamp
            .as_ref()
            .is_none_or(|c| answer.at >= c.0)
}

/// The account's decision on a served notice, from every answer it gave (`answers`: the account's,
/// any notice; see [`answers`]).
pub fn account_decision(
    notice: &DeprecationNotice,
    tn: &terms::Notice,
    eval: &terms::NoticeEvaluation,
    answers: &[Answer],
    now: Timestamp,
) -> AccountDecision {
    let name = notice.name_any();
    let mine: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.notice == name && answers_this(notice, a))
        .collect();
    let responses: Vec<terms::Response> = mine
        .iter()
        .map(|a| terms::Response {
            answer: match a.decision {
                ResponseDecision::Accept => terms::Answer::Accept,
                ResponseDecision::Reject => terms::Answer::Reject,
            },
            at: a.at,
        })
        .collect();
    let e = terms::evaluate_responses(tn, eval, &responses, now);
    AccountDecision {
        decision: from_terms_decision(e.decision.decision),
        answered_by: e.standing.map(|i| mine[i].source.clone()),
        answered_at: e.standing.map(|i| mine[i].at),
        unhonoured: e.decision.unhonoured_rejection.map(|u| u.to_string()),
        next_change: e.decision.next_change,
        verdicts: mine
            .iter()
            .zip(&e.verdicts)
            .map(|(a, v)| (a.source.clone(), *v))
            .collect(),
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

/// Computes a notice's status from the notice, every Account with its answers (see [`answers`]),
/// and `now`.
pub fn evaluate<'a>(
    notice: &DeprecationNotice,
    accounts: impl IntoIterator<Item = (&'a Account, &'a [Answer])>,
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
    if notice.spec.notice_type == NoticeType::Amendment
        && let Some(e) = notice.spec.exemption
    {
        errors.push(format!(
            "spec.exemption {e:?} does not apply to an Amendment: §2.3 reaches discontinuations (§2.1) and URL-terms updates (§2.2) only, and an amendment always needs 30 days' notice (preamble); remove spec.exemption"
        ));
    }
    let service = match service(notice, now) {
        Ok(s) => s,
        Err(served) => return not_served(notice, &previous, served, errors, now),
    };
    let served = service.window_from();
    // What only a person can fix (a too-short window is not: the lawful instant is enforced).
    let invalid = errors.clone();
    let tn = served_terms(notice, &service);
    let eval = terms::evaluate_notice(&tn, now);
    // Said in the window's message: a notice served again counts from the change.
    let again = service
        .reserved_at
        .map(|at| {
            format!(
                " (effectiveAt moved earlier than the {} it was first served for: served again at {}, the windows count from then)",
                terms::fmt_instant(service.served_for.max(tn.effective_at)),
                terms::fmt_instant(at)
            )
        })
        .unwrap_or_default();
    let enforced = terms::fmt_instant(eval.enforced_effective_at);
    let requested = terms::fmt_instant(tn.effective_at);
    let window = match eval.window {
        terms::Window::Satisfied => Cond::new(
            NOTICE_WINDOW_SATISFIED,
            true,
            "Satisfied",
            format!(
                "served {} and effective {requested}: {}{again}",
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
                "effectiveAt {requested} is too early: {} served {} requires {}; the earliest lawful instant is {}, which Covenant enforces instead{again}. Set effectiveAt to {} or later{}",
                notice_type_name(notice.spec.notice_type),
                terms::fmt_instant(served),
                required_window(notice.spec.notice_type),
                terms::fmt_instant(eval.earliest_lawful_at),
                terms::fmt_instant(eval.earliest_lawful_at),
                if notice.spec.notice_type == NoticeType::Amendment {
                    ""
                } else {
                    ", or name an exemption if §2.3 applies"
                },
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

    // Counts only: each account's decision is on its own Account (`status.notices`).
    let mut next = vec![eval.next_change];
    let mut counts = DecisionCounts::default();
    for (_, answers) in accounts.into_iter().filter(|(a, _)| selects(notice, a)) {
        let d = account_decision(notice, &tn, &eval, answers, now);
        next.push(d.next_change);
        match d.decision {
            Decision::Pending => counts.pending += 1,
            Decision::Accepted => counts.accepted += 1,
            Decision::DeemedAccepted => counts.deemed_accepted += 1,
            Decision::Rejected => counts.rejected += 1,
        }
    }

    NoticeOutcome {
        status: DeprecationNoticeStatus {
            observed_generation: generation,
            served_at: Some(Time(service.served_at)),
            served_for: Some(Time(service.served_for)),
            reserved_at: service.reserved_at.map(Time),
            enforced_effective_at: Some(Time(eval.enforced_effective_at)),
            rejection_deadline: eval.rejection_deadline.map(Time),
            counts: Some(counts),
            conditions: merge(
                &previous.conditions,
                vec![
                    ready(&invalid, &effective),
                    stalled(&invalid),
                    window,
                    effective,
                ],
                generation,
                now,
            ),
        },
        next_change: terms::earliest_after(next, now),
        errors,
    }
}

/// The status of a notice whose `spec.servedAt` is still in the future: not served, nothing in effect.
fn not_served(
    notice: &DeprecationNotice,
    previous: &DeprecationNoticeStatus,
    served: Timestamp,
    mut errors: Vec<String>,
    now: Timestamp,
) -> NoticeOutcome {
    let generation = notice.metadata.generation;
    errors.push(format!(
        "spec.servedAt {} is in the future: notice cannot be served ahead of time; set it to when notice was actually given, or omit it",
        terms::fmt_instant(served)
    ));
    let conds = vec![
        Cond::new(
            READY,
            false,
            "NotServed",
            format!(
                "served only at {}: {}",
                terms::fmt_instant(served),
                errors.join("; ")
            ),
        ),
        stalled(&[]),
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
    NoticeOutcome {
        status: DeprecationNoticeStatus {
            observed_generation: generation,
            conditions: merge(&previous.conditions, conds, generation, now),
            ..Default::default()
        },
        // servedAt in the future becomes valid once it passes.
        next_change: Some(served),
        errors,
    }
}

/// Condition type: the notice is valid and in force as its other conditions say (kstatus).
pub const READY: &str = "Ready";
/// Condition type: only a person can fix the notice (kstatus).
pub const STALLED: &str = "Stalled";

/// `Ready`: True while the notice is valid (a too-short window included: Covenant enforces the
/// earliest lawful instant), False with what to fix otherwise.
fn ready(invalid: &[String], effective: &Cond) -> Cond {
    if invalid.is_empty() {
        Cond::new(READY, true, "Served", effective.message.clone())
    } else {
        Cond::new(READY, false, "InvalidSpec", invalid.join("; "))
    }
}

/// `Stalled`: True while the notice's spec is invalid.
fn stalled(invalid: &[String]) -> Cond {
    if invalid.is_empty() {
        Cond::new(STALLED, false, "NotStalled", "nothing needs a person")
    } else {
        Cond::new(STALLED, true, "InvalidSpec", invalid.join("; "))
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

/// The notices that concern `account` at `now`, with how each stands served: those that select it
/// and whose service is recorded (or given in spec, and not in the future). One not yet observed by
/// Covenant has not been served. Its `status.notices` has a row for each, and its administrators may
/// read each of them (and no other notice).
pub fn concerning<'a>(
    account: &'a Account,
    notices: &'a [DeprecationNotice],
    now: Timestamp,
) -> impl Iterator<Item = (&'a DeprecationNotice, Result<Service, Timestamp>)> + 'a {
    notices
        .iter()
        .filter(move |n| selects(n, account))
        .filter(|n| {
            n.spec.served_at.is_some() || n.status.as_ref().is_some_and(|s| s.served_at.is_some())
        })
        .map(move |n| (n, service(n, now)))
}

/// The names of the notices that concern `account` (see [`concerning`]), sorted: what its
/// administrators may read.
pub fn concerning_names(
    account: &Account,
    notices: &[DeprecationNotice],
    now: Timestamp,
) -> Vec<String> {
    let mut names: Vec<String> = concerning(account, notices, now)
        .filter(|(_, s)| s.is_ok())
        .map(|(n, _)| n.name_any())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The notices concerning one account, for its `status.notices` and `TermsCurrent`, from its answers
/// (see [`answers`]): a row for each notice [`concerning`] it.
pub fn account_notices(
    account: &Account,
    notices: &[DeprecationNotice],
    answers: &[Answer],
    now: Timestamp,
) -> (Vec<AccountNoticeStatus>, Option<Timestamp>) {
    let mut rows = Vec::new();
    let mut next = Vec::new();
    for (notice, service) in concerning(account, notices, now) {
        let service = match service {
            Ok(s) => s,
            Err(at) => {
                next.push(Some(at));
                continue;
            }
        };
        let tn = served_terms(notice, &service);
        let eval = terms::evaluate_notice(&tn, now);
        let d = account_decision(notice, &tn, &eval, answers, now);
        next.push(d.next_change);
        next.push(eval.next_change);
        rows.push(AccountNoticeStatus {
            name: notice.name_any(),
            notice_type: notice.spec.notice_type,
            summary: Some(notice.spec.summary.clone()),
            url: notice.spec.url.clone(),
            effective_at: Time(eval.enforced_effective_at),
            rejection_deadline: eval.rejection_deadline.map(Time),
            decision: d.decision,
            answered_by: d.answered_by,
            answered_at: d.answered_at.map(Time),
            message: d.unhonoured,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    (rows, terms::earliest_after(next, now))
}

/// Condition type of a NoticeResponse: whether it is the account's answer.
pub const HONOURED: &str = "Honoured";

/// When `notice` was issued, if that was after `response` was given (it answered an earlier notice of
/// the same name).
fn issued_after(notice: &DeprecationNotice, response: &NoticeResponse) -> Option<Timestamp> {
    let given = response.metadata.creation_timestamp.as_ref()?.0;
    let issued = notice.metadata.creation_timestamp.as_ref()?.0;
    (given < issued).then_some(issued)
}

/// The verdict on an answer to a notice the account does not have (absent, or not its own).
fn unknown_notice(notice: &str) -> Cond {
    Cond::new(
        HONOURED,
        false,
        "UnknownNotice",
        format!(
            "there is no DeprecationNotice {notice:?} for your account: name one listed in your Account's status.notices"
        ),
    )
}

/// The status of one NoticeResponse: the account it answers for (`None`: its namespace belongs to no
/// account), the notice (`None`: no such notice), and that account's answers (see [`answers`]). Also
/// returns when it changes next.
pub fn response_status(
    response: &NoticeResponse,
    account: Option<&Account>,
    notice: Option<&DeprecationNotice>,
    answers: &[Answer],
    now: Timestamp,
) -> (NoticeResponseStatus, Option<Timestamp>) {
    let previous = response.status.clone().unwrap_or_default();
    let generation = response.metadata.generation;
    let ns = response.metadata.namespace.clone().unwrap_or_default();
    let source = format!("{ns}/{}", response.name_any());
    let mut decision = None;
    let mut next = None;
    let cond = match (account, notice) {
        (None, _) => Cond::new(
            HONOURED,
            false,
            "NoAccount",
            format!(
                "namespace {ns} belongs to no Account: answer in one of your account's namespaces"
            ),
        ),
        // A notice that does not concern the account is, to its tenant, no notice at all: the
        // status must not tell a tenant which notices other tenants were served.
        (Some(_), None) => unknown_notice(&response.spec.notice),
        (Some(a), Some(n)) if !selects(n, a) => unknown_notice(&response.spec.notice),
        (Some(_), Some(n)) if issued_after(n, response).is_some() => {
            let issued = issued_after(n, response).unwrap_or(now);
            Cond::new(
                HONOURED,
                false,
                "BeforeNotice",
                format!(
                    "given before DeprecationNotice {} was issued ({}): it answered an earlier notice of that name, not this one; answer again",
                    n.name_any(),
                    terms::fmt_instant(issued)
                ),
            )
        }
        (Some(a), Some(n)) => match service(n, now) {
            Err(at) => {
                next = Some(at);
                Cond::new(
                    HONOURED,
                    false,
                    "NotServed",
                    format!(
                        "DeprecationNotice {} is served only at {}",
                        n.name_any(),
                        terms::fmt_instant(at)
                    ),
                )
            }
            Ok(service) => {
                let tn = served_terms(n, &service);
                let eval = terms::evaluate_notice(&tn, now);
                let d = account_decision(n, &tn, &eval, answers, now);
                next = d.next_change;
                let deadline = terms::fmt_instant(terms::deemed_at(&tn, &eval));
                let verdict = d
                    .verdicts
                    .iter()
                    .find(|(s, _)| *s == source)
                    .map(|(_, v)| *v);
                // Only the answer that stands says the account's decision, and no other answer
                // names it: a new answer then rewrites the one it supersedes and itself, never
                // every earlier one (a tenant answering again and again would make the operator
                // write without end). The Account's status.notices has the whole picture.
                if verdict == Some(terms::Verdict::Stands) {
                    decision = Some(d.decision);
                }
                match verdict {
                    Some(terms::Verdict::Stands) => Cond::new(
                        HONOURED,
                        true,
                        "Stands",
                        format!(
                            "the answer of Account {} (given by the deadline {deadline}): {:?}",
                            a.name_any(),
                            d.decision
                        ),
                    ),
                    Some(terms::Verdict::Superseded) => Cond::new(
                        HONOURED,
                        false,
                        "Superseded",
                        format!(
                            "a later answer of Account {} stands (its status.notices names it)",
                            a.name_any()
                        ),
                    ),
                    Some(terms::Verdict::AfterDeadline { deadline }) => Cond::new(
                        HONOURED,
                        false,
                        "AfterDeadline",
                        format!(
                            "given after the deadline {}: not honoured (Account {}'s status.notices has its decision)",
                            terms::fmt_instant(deadline),
                            a.name_any()
                        ),
                    ),
                    Some(terms::Verdict::NotRejectable) => Cond::new(
                        HONOURED,
                        false,
                        "NotRejectable",
                        format!(
                            "a {} cannot be rejected under the terms (§2.1, §2.2): not honoured",
                            to_terms_type(n.spec.notice_type).as_str()
                        ),
                    ),
                    Some(terms::Verdict::NotYetGiven) | None => Cond::new(
                        HONOURED,
                        false,
                        "Pending",
                        "not yet counted: Covenant has not seen this response among the account's answers",
                    ),
                }
            }
        },
    };
    (
        NoticeResponseStatus {
            observed_generation: generation,
            account: account.map(|a| a.name_any()),
            account_decision: decision,
            conditions: merge(&previous.conditions, vec![cond], generation, now),
        },
        next,
    )
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
