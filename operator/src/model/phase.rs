//! An account's phase and its kstatus conditions (`Ready`, `Stalled`, `Reconciling`), decided from what
//! blocks it, what its limits allow and what the apply stage reported (pure: the decision table).
//!
//! | problem (first that holds)                     | Ready          | Stalled | Reconciling | phase        |
//! |------------------------------------------------|----------------|---------|-------------|--------------|
//! | a blocker (conflict, package, namespace cap)   | False, blocker | True    | False       | Degraded     |
//! | limits a LimitRange refuses                    | False, limits  | True    | False       | Degraded     |
//! | an object the API server refused (4xx)         | False, refusal | True    | False       | Degraded     |
//! | a failure that is retried, alone or with those | False          | False   | True        | Provisioning |
//! | none                                           | True           | False   | False       | Active       |
//!
//! A suspension in force makes the phase `Suspended` whatever else holds, and an account with no
//! problem Ready (reason `Suspended`: its guardrails are in force; `Suspended=True` says the rest).
//! `Terminating` is the phase of an account being deleted ([`terminating`]).
//!
//! [`status`] makes the whole status of an Account from what one reconcile observed and did: the
//! operator, `covenant check` and the benchmark's baseline all call it, so no status is built twice.

use kube::ResourceExt;

use crate::api::{Account, AccountPhase, AccountStatus, SupportPackage};
use crate::status::{Cond, reasons, types};

/// What keeps an account from being provisioned as its spec asks; only a person can remove it. A
/// namespace conflict withholds only the names someone else holds (never adopted, never touched): the
/// account's other namespaces are provisioned as usual. An unresolved package or too many namespaces
/// freeze the account: it takes no new namespace and releases none; it keeps what it owns in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// Namespaces in the spec that belong to someone else (each a sentence saying whose).
    NamespaceConflict(Vec<String>),
    /// The account's SupportPackage cannot be resolved (why, and the fix).
    PackageUnresolved(String),
    /// More namespaces than the package allows (the message, and the fix).
    TooManyNamespaces(Vec<String>),
}

impl Blocker {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::NamespaceConflict(_) => reasons::NAMESPACE_CONFLICT,
            Blocker::PackageUnresolved(_) => reasons::PACKAGE_UNRESOLVED,
            Blocker::TooManyNamespaces(_) => reasons::TOO_MANY_NAMESPACES,
        }
    }

    /// The condition message: what is wrong and how to fix it.
    pub fn message(&self) -> String {
        match self {
            Blocker::NamespaceConflict(c) => format!(
                "{}: Covenant never takes or touches a namespace someone else holds, and provisions the \
                 account's other namespaces; choose other names in spec.namespaces, or have the holder \
                 free the name",
                c.join("; ")
            ),
            Blocker::PackageUnresolved(m) => m.clone(),
            Blocker::TooManyNamespaces(m) => m.join("; "),
        }
    }
}

/// The blocker of an account, if any, first that holds: namespaces someone else holds, a package that
/// cannot be resolved (`package`: its error), the package's namespace cap (`over_cap`).
pub fn blocker(
    conflicts: &[String],
    package: Result<(), &str>,
    over_cap: &[String],
) -> Option<Blocker> {
    if !conflicts.is_empty() {
        Some(Blocker::NamespaceConflict(conflicts.to_vec()))
    } else if let Err(e) = package {
        Some(Blocker::PackageUnresolved(e.to_string()))
    } else if !over_cap.is_empty() {
        Some(Blocker::TooManyNamespaces(over_cap.to_vec()))
    } else {
        None
    }
}

/// What the apply stage reported: the objects it could not apply (each `Kind ns/name: the API server's
/// words`), and whether any of those failures is retried by itself (a conflict, throttling, an API
/// server that did not answer) rather than refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// One line per object that was not applied.
    pub failed: Vec<String>,
    /// Whether a failure is transient (the reconcile is retried).
    pub retry: bool,
}

/// Why an account is not Ready, the first that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// See [`Blocker`].
    Blocked(Blocker),
    /// The package's limits with the account's on top do not fit in a LimitRange: the previous
    /// LimitRange stays as it was, everything else is applied.
    InvalidLimits(Vec<String>),
    /// Objects the API server refused or could not be reached for; the others were applied.
    ApplyFailed(Vec<String>),
}

impl Problem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::Blocked(b) => b.reason(),
            Problem::InvalidLimits(_) => reasons::INVALID_LIMITS,
            Problem::ApplyFailed(_) => reasons::APPLY_FAILED,
        }
    }

    /// The condition message.
    pub fn message(&self) -> String {
        match self {
            Problem::Blocked(b) => b.message(),
            Problem::InvalidLimits(m) => m.join("; "),
            Problem::ApplyFailed(f) => format!("the API server refused: {}", f.join("; ")),
        }
    }
}

/// The first problem of an account: its blocker, then its limits, then what was not applied.
pub fn problem(blocker: Option<&Blocker>, limits: &[String], applied: &Applied) -> Option<Problem> {
    match blocker {
        Some(b) => Some(Problem::Blocked(b.clone())),
        None if !limits.is_empty() => Some(Problem::InvalidLimits(limits.to_vec())),
        None if !applied.failed.is_empty() => Some(Problem::ApplyFailed(applied.failed.clone())),
        None => None,
    }
}

/// The account's phase and kstatus conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `status.phase`.
    pub phase: AccountPhase,
    /// `Ready`.
    pub ready: Cond,
    /// `Stalled`.
    pub stalled: Cond,
    /// `Reconciling`.
    pub reconciling: Cond,
}

/// Decides the phase and the kstatus conditions (the table in this module's documentation).
/// `suspended`: the summary of the suspensions in force, if any.
pub fn verdict(problem: Option<&Problem>, applied: &Applied, suspended: Option<&str>) -> Verdict {
    let ready = match (problem, suspended) {
        (Some(p), _) => Cond::new(types::READY, false, p.reason(), p.message()),
        (None, Some(summary)) => Cond::new(
            types::READY,
            true,
            reasons::SUSPENDED,
            format!("guardrails in force; {summary}"),
        ),
        (None, None) => Cond::new(
            types::READY,
            true,
            reasons::READY,
            "every managed object is in place",
        ),
    };
    let stalled = match problem {
        Some(p) if !applied.retry => Cond::new(types::STALLED, true, p.reason(), p.message()),
        _ => Cond::new(
            types::STALLED,
            false,
            reasons::NOT_STALLED,
            "nothing needs a person",
        ),
    };
    let reconciling = if applied.retry {
        Cond::new(
            types::RECONCILING,
            true,
            reasons::APPLY_FAILED,
            format!("retrying: {}", applied.failed.join("; ")),
        )
    } else {
        Cond::new(
            types::RECONCILING,
            false,
            reasons::RECONCILED,
            "no work under way",
        )
    };
    let phase = match (problem, suspended) {
        (_, Some(_)) => AccountPhase::Suspended,
        (Some(_), None) if applied.retry => AccountPhase::Provisioning,
        (Some(_), None) => AccountPhase::Degraded,
        (None, None) if applied.retry => AccountPhase::Provisioning,
        (None, None) => AccountPhase::Active,
    };
    Verdict {
        phase,
        ready,
        stalled,
        reconciling,
    }
}

/// The conditions of the account's parts (`NamespacesReady`, `QuotaApplied`, `NetworkIsolated`,
/// `AccessGranted`): as applied on `package` when there is no problem; with invalid limits the same
/// but `QuotaApplied=False` naming the field; with a namespace conflict the same but
/// `NamespacesReady=False` naming the conflicts; otherwise all False with the problem.
pub fn part_conditions(
    account: &Account,
    package: Option<&SupportPackage>,
    suspended: bool,
    problem: Option<&Problem>,
) -> Vec<Cond> {
    match (problem, package) {
        (None, Some(p)) => super::account::applied_conditions(account, p, suspended),
        // A conflict withholds only the names someone else holds: the rest is applied as usual.
        (Some(pr @ Problem::Blocked(Blocker::NamespaceConflict(_))), Some(p)) => {
            let mut conds = super::account::applied_conditions(account, p, suspended);
            for c in &mut conds {
                if c.type_ == types::NAMESPACES_READY {
                    *c = Cond::new(types::NAMESPACES_READY, false, pr.reason(), pr.message());
                }
            }
            conds
        }
        (Some(pr @ Problem::InvalidLimits(_)), Some(p)) => {
            let mut conds = super::account::applied_conditions(account, p, suspended);
            for c in &mut conds {
                if c.type_ == types::QUOTA_APPLIED {
                    *c = Cond::new(
                        types::QUOTA_APPLIED,
                        false,
                        pr.reason(),
                        format!(
                            "quota of package {:?} applied; the LimitRange is left as it was: {}",
                            p.name_any(),
                            pr.message()
                        ),
                    );
                }
            }
            conds
        }
        (pr, _) => {
            let (reason, message) = match pr {
                Some(pr) => (pr.reason(), pr.message()),
                None => (
                    reasons::PACKAGE_UNRESOLVED,
                    "the SupportPackage is not known".to_string(),
                ),
            };
            [
                types::NAMESPACES_READY,
                types::QUOTA_APPLIED,
                types::NETWORK_ISOLATED,
                types::ACCESS_GRANTED,
            ]
            .into_iter()
            .map(|t| Cond::new(t, false, reason, message.clone()))
            .collect()
        }
    }
}

/// The status of an account being deleted: what it was, with phase `Terminating` (the finalizer
/// releases or deletes its namespaces).
pub fn terminating(previous: Option<&AccountStatus>) -> AccountStatus {
    AccountStatus {
        phase: Some(AccountPhase::Terminating),
        ..previous.cloned().unwrap_or_default()
    }
}

/// Everything an Account's status is made of: what one reconcile observed and did (or, for `covenant
/// check` and the benchmark's baseline, what they assume).
pub struct StatusInput<'a> {
    /// The account.
    pub account: &'a Account,
    /// Its resolved package, or why it cannot be resolved.
    pub package: Result<&'a SupportPackage, &'a str>,
    /// What keeps it from being provisioned ([`blocker`]).
    pub blocked: Option<&'a Blocker>,
    /// What a LimitRange would refuse of its limits.
    pub limits: &'a [String],
    /// What the apply stage reported.
    pub applied: &'a Applied,
    /// The suspensions in force.
    pub suspensions: &'a crate::model::suspension::ActiveSuspensions,
    /// Whether its guardrails are in force (a suspension, or guardrails held while the Suspension CRD
    /// is uninstalled).
    pub suspended: bool,
    /// The notices, and the answers the account gave.
    pub notices: &'a [crate::api::DeprecationNotice],
    /// The account's answers.
    pub answers: &'a [crate::model::notice::Answer],
    /// The declared namespaces `status.namespaces` lists: every one but those someone else holds, or
    /// only those it owns while an unresolved package or too many namespaces freeze it.
    pub declared: &'a [String],
    /// The conditions it showed (a condition that keeps its status keeps its transition time).
    pub previous: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    /// Now.
    pub now: jiff::Timestamp,
}

/// An Account's status, and the instants after now at which it changes by time alone.
pub struct StatusPlan {
    /// The status.
    pub status: AccountStatus,
    /// The next access review and notice boundaries (each `None` when there is none).
    pub next: [Option<jiff::Timestamp>; 2],
}

/// The whole status of an Account (pure).
pub fn status(input: &StatusInput<'_>) -> StatusPlan {
    let StatusInput { account, now, .. } = *input;
    let problem = problem(input.blocked, input.limits, input.applied);
    let summary = input.suspended.then(|| input.suspensions.summary());
    let verdict = verdict(problem.as_ref(), input.applied, summary.as_deref());
    let mut conds = vec![verdict.ready, verdict.stalled, verdict.reconciling];
    conds.extend(part_conditions(
        account,
        input.package.ok(),
        input.suspended,
        problem.as_ref(),
    ));
    conds.push(input.suspensions.condition());
    let (review, due, review_next) = crate::model::account::access_review(account, now);
    conds.push(review);
    let (rows, notices_next) =
        crate::model::notice::account_notices(account, input.notices, input.answers, now);
    conds.push(crate::model::notice::terms_current(&rows));
    StatusPlan {
        status: AccountStatus {
            phase: Some(verdict.phase),
            observed_generation: account.metadata.generation,
            support_package: input.package.ok().map(|p| p.name_any()),
            namespaces: input.declared.to_vec(),
            namespace_origins: Vec::new(),
            access_review_due_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(due)),
            notices: rows,
            conditions: crate::status::merge(
                input.previous,
                conds,
                account.metadata.generation,
                now,
            ),
            // Written by the account-quota controller, under its own field manager.
            quota: None,
        },
        next: [review_next, notices_next],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(failed: &[&str], retry: bool) -> Applied {
        Applied {
            failed: failed.iter().map(|s| s.to_string()).collect(),
            retry,
        }
    }

    /// One row of the decision table: the inputs, then the phase, Ready (status and reason), Stalled
    /// and Reconciling expected.
    struct Row {
        name: &'static str,
        blocker: Option<Blocker>,
        limits: &'static [&'static str],
        applied: Applied,
        suspended: bool,
        phase: AccountPhase,
        ready: (bool, &'static str),
        stalled: bool,
        reconciling: bool,
    }

    fn conflict() -> Blocker {
        Blocker::NamespaceConflict(vec!["namespace \"x\" belongs to Account \"y\"".into()])
    }
    fn unresolved() -> Blocker {
        Blocker::PackageUnresolved("SupportPackage \"gold\" does not exist".into())
    }
    fn over_cap() -> Blocker {
        Blocker::TooManyNamespaces(vec!["allows at most 1".into()])
    }
    const LIMITS: &[&str] = &["spec.limits.max.cpu 250m is below the package's default 500m"];
    const REFUSED: &[&str] = &["LimitRange t/covenant-limits: forbidden"];

    /// A problem: its name, blocker, limit problems and apply outcome, and the reason it gives.
    type ProblemCase = (
        &'static str,
        Option<Blocker>,
        &'static [&'static str],
        Applied,
        &'static str,
    );

    fn rows() -> Vec<Row> {
        use AccountPhase::*;
        let mut rows = Vec::new();
        // Each problem, alone, permanent: Stalled, Degraded (or Suspended while a suspension is in
        // force), never Ready.
        let problems: Vec<ProblemCase> = vec![
            (
                "namespace conflict",
                Some(conflict()),
                &[],
                Applied::default(),
                reasons::NAMESPACE_CONFLICT,
            ),
            (
                "package unresolved",
                Some(unresolved()),
                &[],
                Applied::default(),
                reasons::PACKAGE_UNRESOLVED,
            ),
            (
                "too many namespaces",
                Some(over_cap()),
                &[],
                Applied::default(),
                reasons::TOO_MANY_NAMESPACES,
            ),
            (
                "invalid limits",
                None,
                LIMITS,
                Applied::default(),
                reasons::INVALID_LIMITS,
            ),
            (
                "refused object",
                None,
                &[],
                applied(REFUSED, false),
                reasons::APPLY_FAILED,
            ),
        ];
        for (name, blocker, limits, a, reason) in problems {
            for suspended in [false, true] {
                rows.push(Row {
                    name,
                    blocker: blocker.clone(),
                    limits,
                    applied: a.clone(),
                    suspended,
                    phase: if suspended { Suspended } else { Degraded },
                    ready: (false, reason),
                    stalled: true,
                    reconciling: false,
                });
                // The same with a failure that is retried: Reconciling, not Stalled; Provisioning.
                let mut retried = a.clone();
                retried
                    .failed
                    .push("Namespace t: connection refused".into());
                retried.retry = true;
                rows.push(Row {
                    name,
                    blocker: blocker.clone(),
                    limits,
                    applied: retried,
                    suspended,
                    phase: if suspended { Suspended } else { Provisioning },
                    ready: (false, reason),
                    stalled: false,
                    reconciling: true,
                });
            }
        }
        // No problem: Active and Ready, or Suspended and Ready with its guardrails.
        for suspended in [false, true] {
            rows.push(Row {
                name: "no problem",
                blocker: None,
                limits: &[],
                applied: Applied::default(),
                suspended,
                phase: if suspended { Suspended } else { Active },
                ready: (
                    true,
                    if suspended {
                        reasons::SUSPENDED
                    } else {
                        reasons::READY
                    },
                ),
                stalled: false,
                reconciling: false,
            });
            // Only a transient failure: not Ready, work under way.
            rows.push(Row {
                name: "transient failure only",
                blocker: None,
                limits: &[],
                applied: applied(&["Namespace t: connection refused"], true),
                suspended,
                phase: if suspended { Suspended } else { Provisioning },
                ready: (false, reasons::APPLY_FAILED),
                stalled: false,
                reconciling: true,
            });
        }
        rows
    }

    #[test]
    fn each_row_of_the_phase_and_blocker_table() {
        let rows = rows();
        assert_eq!(rows.len(), 24);
        for r in rows {
            let label = format!("{} (suspended: {})", r.name, r.suspended);
            let limits: Vec<String> = r.limits.iter().map(|s| s.to_string()).collect();
            let p = problem(r.blocker.as_ref(), &limits, &r.applied);
            let v = verdict(
                p.as_ref(),
                &r.applied,
                r.suspended
                    .then_some("suspended (§2.4) by s: MaterialBreach: unpaid"),
            );
            assert_eq!(v.phase, r.phase, "{label}: phase");
            assert_eq!(
                (v.ready.status, v.ready.reason.as_str()),
                r.ready,
                "{label}: Ready"
            );
            assert_eq!(v.stalled.status, r.stalled, "{label}: Stalled");
            assert_eq!(v.reconciling.status, r.reconciling, "{label}: Reconciling");
            // A person is told what to fix: Stalled carries Ready's reason and message.
            if v.stalled.status {
                assert_eq!(v.stalled.reason, v.ready.reason, "{label}");
                assert_eq!(v.stalled.message, v.ready.message, "{label}");
            }
            // kstatus never sees Ready=True next to Stalled or Reconciling.
            assert!(
                !(v.ready.status && (v.stalled.status || v.reconciling.status)),
                "{label}"
            );
        }
    }

    #[test]
    fn a_blocker_comes_before_limits_and_refused_objects_and_names_its_fix() {
        let limits: Vec<String> = LIMITS.iter().map(|s| s.to_string()).collect();
        let p = problem(Some(&unresolved()), &limits, &applied(REFUSED, false)).unwrap();
        assert_eq!(p.reason(), reasons::PACKAGE_UNRESOLVED);
        assert!(p.message().contains("\"gold\" does not exist"));
        let p = problem(None, &limits, &applied(REFUSED, false)).unwrap();
        assert_eq!(p.reason(), reasons::INVALID_LIMITS);
        assert!(p.message().contains("spec.limits.max.cpu 250m"));
        let p = problem(None, &[], &applied(REFUSED, false)).unwrap();
        assert_eq!(
            p.message(),
            "the API server refused: LimitRange t/covenant-limits: forbidden"
        );
    }

    #[test]
    fn blockers_in_order_conflict_then_package_then_namespace_cap() {
        let c = vec!["namespace \"x\" belongs to Account \"y\"".to_string()];
        let cap = vec!["allows at most 1".to_string()];
        assert_eq!(
            blocker(&c, Err("no package"), &cap).map(|b| b.reason()),
            Some(reasons::NAMESPACE_CONFLICT)
        );
        assert_eq!(
            blocker(&[], Err("no package"), &cap).map(|b| b.reason()),
            Some(reasons::PACKAGE_UNRESOLVED)
        );
        assert_eq!(
            blocker(&[], Ok(()), &cap).map(|b| b.reason()),
            Some(reasons::TOO_MANY_NAMESPACES)
        );
        assert_eq!(blocker(&[], Ok(()), &[]), None);
        let m = blocker(&c, Ok(()), &[]).unwrap().message();
        assert!(
            m.contains("provisions the account's other namespaces")
                && m.ends_with(
                    "choose other names in spec.namespaces, or have the holder free the name"
                ),
            "{m}"
        );
    }

    #[test]
    fn terminating_keeps_the_status_it_had_with_its_phase() {
        let before = AccountStatus {
            phase: Some(AccountPhase::Active),
            observed_generation: Some(3),
            namespaces: vec!["acme".into()],
            ..Default::default()
        };
        let t = terminating(Some(&before));
        assert_eq!(t.phase, Some(AccountPhase::Terminating));
        assert_eq!(t.observed_generation, Some(3));
        assert_eq!(t.namespaces, before.namespaces);
        assert_eq!(terminating(None).phase, Some(AccountPhase::Terminating));
    }

    /// The whole status from one function: a provisioned account lists its desired namespaces and its
    /// package, a blocked one only the namespaces it owns (no package), and a condition that keeps its
    /// status keeps its transition time.
    #[test]
    fn the_whole_status_comes_from_one_function() {
        use crate::api::{AccountSpec, SupportPackageSpec};
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let mut account = Account::new(
            "acme",
            AccountSpec {
                namespaces: vec!["acme".into(), "acme-dev".into()],
                ..Default::default()
            },
        );
        account.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        let package = SupportPackage::new("standard", SupportPackageSpec::default());
        let none = crate::model::suspension::active_suspensions(&[], now);
        let input =
            |blocked: Option<&'static Blocker>,
             previous: &'static [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
             at| StatusInput {
                account: &account,
                package: if blocked.is_some() {
                    Err("SupportPackage \"gold\" does not exist")
                } else {
                    Ok(&package)
                },
                blocked,
                limits: &[],
                applied: &APPLIED,
                suspensions: &none,
                suspended: false,
                notices: &[],
                answers: &[],
                // What the plan lists: every declared namespace, or only those it owns (none here)
                // while the package cannot be resolved.
                declared: if blocked.is_some() {
                    &[]
                } else {
                    &DECLARED[..]
                },
                previous,
                now: at,
            };
        static APPLIED: std::sync::LazyLock<Applied> = std::sync::LazyLock::new(Applied::default);
        static DECLARED: std::sync::LazyLock<[String; 2]> =
            std::sync::LazyLock::new(|| ["acme".into(), "acme-dev".into()]);
        static BLOCKED: std::sync::LazyLock<Blocker> = std::sync::LazyLock::new(unresolved);

        let ready = status(&input(None, &[], now));
        assert_eq!(ready.status.phase, Some(AccountPhase::Active));
        assert_eq!(ready.status.namespaces, ["acme", "acme-dev"]);
        assert_eq!(ready.status.support_package.as_deref(), Some("standard"));
        let cond = |s: &AccountStatus, t: &str| {
            s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap()
        };
        assert_eq!(cond(&ready.status, types::READY).status, "True");
        assert!(
            ready.next[0].is_some(),
            "the access review falls due some day"
        );

        let blocked = status(&input(Some(&BLOCKED), &[], now));
        assert_eq!(blocked.status.phase, Some(AccountPhase::Degraded));
        assert!(
            blocked.status.namespaces.is_empty(),
            "a frozen account lists only what it owns"
        );
        assert_eq!(blocked.status.support_package, None);
        assert_eq!(cond(&blocked.status, types::STALLED).status, "True");

        // An hour later, nothing changed: every condition keeps its transition time.
        let previous: &'static [_] = Box::leak(ready.status.conditions.clone().into_boxed_slice());
        let later = status(&input(
            None,
            previous,
            now + jiff::SignedDuration::from_hours(1),
        ));
        assert_eq!(later.status.conditions, ready.status.conditions);
    }
}
