//! The Account's reconcile, decided (pure): from what one reconcile observed ([`Observed`], every
//! read made up front) and `now` to the [`Plan`] the execute stage carries out: the desired children
//! (the tenancy ClusterRole and its binding included), the steps for the tenant's workloads and
//! NetworkPolicies (suspend, lift, keep), what is done to each namespace ([`NamespaceAction`]: created,
//! left alone as someone else's, or applied, with a consent sweep first when the subjects it allows
//! changed and Covenant's stray labels and annotations removed after), the namespaces to release,
//! what blocks the account, the whole status and the next instant at which something changes by time
//! alone. No client and no clock but `now`: the table tests below prove every combination of
//! suspended / lifted / held / blocked / retained / deleting without a cluster, and `covenant check`
//! calls the same function.
//!
//! The execute stage decides nothing about a namespace, with two exceptions, both by pure functions:
//! - A create the API server answers AlreadyExists (this process created the namespace before its
//!   cache heard of it) is the one place applying a namespace reads back: the namespace is read once
//!   and its action decided again by [`namespace_action`].
//! - The consent sweep decides per page, as it reads: which subjects leave each RoleBinding in a
//!   namespace whose allowed subjects changed (`model::account::withdrawn_subjects`). The tenant's own
//!   RoleBindings are not cached (only Covenant's labelled ones are): across every tenant they are
//!   unbounded in number (the bounds quota caps them per namespace only, and a package may raise it),
//!   and they are read only when the subjects change. So the sweep pages them from the API server and
//!   decides each binding as its page arrives (and again when the tenant changed it meanwhile).
//!
//! | guardrails (any owned namespace read-only `suspended`) | a suspension in force | Suspension CRD being deleted | suspended | held |
//! |---|---|---|---|---|
//! | any | yes | any | yes | no |
//! | yes | no | yes | yes | yes (the guardrails stay: an uninstall is no lift) |
//! | yes | no | no | no (lifted) | no |
//! | no | no | any | no | no |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::Subject as RbacSubject;
use kube::ResourceExt;

use crate::api::{
    Account, AccountStatus, DeletionPolicy, DeprecationNotice, READ_ONLY_LABEL,
    RETAINED_UNTIL_LABEL, SupportPackage, Suspension,
};
use crate::model::account::{self, BuildInput, Desired, ReadOnly, Released};
use crate::model::phase::{self, Applied, Blocker};
use crate::model::selfservice::{self, Candidate};
use crate::model::suspension::{ActiveSuspensions, active_suspensions};

/// What to suspend or lift in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Deployments, StatefulSets and bare ReplicaSets: scaled to zero.
    pub replicas: bool,
    /// CronJobs: suspended.
    pub cronjobs: bool,
}

impl Scope {
    /// Everything.
    pub const ALL: Scope = Scope {
        replicas: true,
        cronjobs: true,
    };
    /// Replica counts only.
    pub const REPLICAS: Scope = Scope {
        replicas: true,
        cronjobs: false,
    };
}

/// A namespace as the cache shows it, with what the decisions read of it.
#[derive(Clone, Debug)]
pub struct SeenNamespace {
    /// The namespace (metadata only).
    pub namespace: Arc<Namespace>,
    /// Whether it holds a suspension's records of workloads to lift (its token or an older record).
    pub workload_records: bool,
    /// Whether it holds neutralised tenant NetworkPolicies to restore.
    pub policy_records: bool,
    /// Whether the cache holds the suspension's deny-all policy in it.
    pub deny_all: bool,
}

/// Everything one reconcile of an Account read: from the caches, and the few requests the decisions
/// need (the self-made namespaces listed afresh when one is undecided, whether the Suspension CRD is
/// being deleted). Plain data: [`plan`] decides from it alone.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Account.
    pub account: &'a Account,
    /// The SupportPackages (valid ones).
    pub packages: Vec<SupportPackage>,
    /// The Suspensions that name the account.
    pub suspensions: Vec<Suspension>,
    /// Whether the Suspension CRD is being deleted (or is gone). Read only when a namespace of the
    /// account is read-only `suspended` (otherwise it decides nothing): false when not read.
    pub suspension_crd_deleting: bool,
    /// The cached namespaces the account names: declared in its spec, made by its administrators
    /// (labelled with the request label) or labelled with the account.
    pub namespaces: BTreeMap<String, SeenNamespace>,
    /// The names of the namespaces labelled with the account (Covenant's label).
    pub labelled: Vec<String>,
    /// The namespaces its administrators made (labelled with the request label).
    pub candidates: Vec<Candidate>,
    /// For an undecided self-made namespace: the other Account that declares it, if one does.
    pub declared_by_other: BTreeMap<String, String>,
    /// The DeprecationNotices (valid ones).
    pub notices: Vec<DeprecationNotice>,
    /// The account's answers to them.
    pub answers: Vec<crate::model::notice::Answer>,
    /// The status it shows (or this process wrote last, when the cache has not shown it yet).
    pub previous: AccountStatus,
    /// The operator's own identity, bound in each namespace; `None` for a cluster administrator.
    pub operator: Option<RbacSubject>,
}

impl Observed<'_> {
    /// An Account with nothing else observed: no package, suspension, namespace or notice.
    pub fn of(account: &Account) -> Observed<'_> {
        Observed {
            account,
            packages: Vec::new(),
            suspensions: Vec::new(),
            suspension_crd_deleting: false,
            namespaces: BTreeMap::new(),
            labelled: Vec::new(),
            candidates: Vec::new(),
            declared_by_other: BTreeMap::new(),
            notices: Vec::new(),
            answers: Vec::new(),
            previous: AccountStatus::default(),
            operator: None,
        }
    }

    fn seen(&self, ns: &str) -> Option<&SeenNamespace> {
        self.namespaces.get(ns)
    }

    /// Whether the cached namespace `ns` exists and is this Account's.
    fn owns(&self, ns: &str) -> bool {
        self.seen(ns)
            .is_some_and(|s| account::owns(self.account, &s.namespace))
    }
}

/// What happens to the workloads of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadStep {
    /// Nothing.
    Keep,
    /// Restored to what they ran before the suspension (before the namespace loses its marker).
    Lift(Scope),
    /// Stopped (after the guardrails are applied), its tenant NetworkPolicies neutralised;
    /// `lift_first`: replica counts a suspension no longer asks to keep at zero, restored before.
    Suspend {
        /// What is stopped.
        scope: Scope,
        /// What is restored first, before the guardrails are applied.
        lift_first: Option<Scope>,
    },
}

impl WorkloadStep {
    /// What is restored before the guardrails are applied.
    pub fn lift(self) -> Option<Scope> {
        match self {
            WorkloadStep::Keep => None,
            WorkloadStep::Lift(s) => Some(s),
            WorkloadStep::Suspend { lift_first, .. } => lift_first,
        }
    }

    /// What is stopped after the guardrails are applied.
    pub fn suspend(self) -> Option<Scope> {
        match self {
            WorkloadStep::Suspend { scope, .. } => Some(scope),
            _ => None,
        }
    }
}

/// What the execute stage does to one desired namespace, decided from the namespace as cached.
#[derive(Clone, Debug, PartialEq)]
pub enum NamespaceAction {
    /// The cache does not hold it: created whole (the mark that its bindings were checked included:
    /// a namespace new with this request holds no binding to check). One that exists already is
    /// read back once and decided again ([`namespace_action`]): this Account's (this process created
    /// it before its cache heard of it) is applied; someone else's is the API server's
    /// AlreadyExists, reported.
    Create,
    /// It exists and is not this Account's: left alone, never adopted, whoever runs the operator (the
    /// conflict is the status's). A self-made namespace taken in this very reconcile is one too, as
    /// cached: it is applied by the next reconcile, which its taking triggers.
    NotOurs,
    /// It is this Account's: kept in shape by server-side apply.
    Apply {
        /// When the subjects the account allows changed since the bindings in it were last checked
        /// (its mark differs from the desired one) or were never checked (it has none): the
        /// namespace as first applied, with the new allowed subjects and the old mark (so the
        /// admission policy refuses new bindings of a withdrawn subject); then every RoleBinding in
        /// it, the tenant's own too, loses the withdrawn subjects, and only then is it applied with
        /// the new mark (a restart in between checks again).
        recheck: Option<Box<Namespace>>,
        /// Pod Security labels and Covenant's markers it carries and the desired namespace does not,
        /// as a merge patch removing them after the apply (server-side apply removes only the fields
        /// it owns: a label someone else set, or one the create set, stays otherwise). `None`: none.
        stray: Option<serde_json::Value>,
    },
}

/// What is done to the namespace `desired` of `account`, the namespace `current` being as the cache
/// shows it (`None`: absent) (pure).
pub fn namespace_action(
    account: &Account,
    desired: &Namespace,
    current: Option<&Namespace>,
) -> NamespaceAction {
    let Some(current) = current else {
        return NamespaceAction::Create;
    };
    if !account::owns(account, current) {
        return NamespaceAction::NotOurs;
    }
    let mark = |n: &Namespace| {
        n.annotations()
            .get(account::SUBJECTS_ENFORCED_ANNOTATION)
            .cloned()
    };
    let (have, want) = (mark(current), mark(desired));
    let recheck = (have != want).then(|| {
        let mut first = desired.clone();
        let annotations = first.metadata.annotations.get_or_insert_default();
        match have {
            Some(h) => {
                annotations.insert(account::SUBJECTS_ENFORCED_ANNOTATION.to_string(), h);
            }
            None => {
                annotations.remove(account::SUBJECTS_ENFORCED_ANNOTATION);
            }
        }
        Box::new(first)
    });
    let stray = account::stray_namespace_keys(desired, current);
    let stray = stray
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then_some(stray);
    NamespaceAction::Apply { recheck, stray }
}

/// The steps of one of the account's namespaces.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceStep {
    /// The namespace.
    pub namespace: String,
    /// What is done to the namespace itself.
    pub apply: NamespaceAction,
    /// The tenant's neutralised NetworkPolicies are restored (those admitted under this namespace as
    /// it is applied), before the namespace loses its read-only label.
    pub restore_policies: Option<Namespace>,
    /// Its workloads.
    pub workloads: WorkloadStep,
}

/// How a namespace leaves the account.
#[derive(Clone, Debug)]
pub enum ReleaseKind {
    /// Deleted (`deletionPolicy: Delete`).
    Delete,
    /// Retained read-only until `until` (`deletionPolicy: Retain`, §6) as `released` says.
    Retain {
        /// The end of retention.
        until: Timestamp,
        /// What the namespace keeps.
        released: Box<Released>,
        /// The administrators as admission-policy tokens: the only subjects left in the tenant's
        /// own RoleBindings there.
        administrators: String,
    },
}

/// A namespace the account releases: dropped from its spec, or all of them when it is deleted.
#[derive(Clone, Debug)]
pub struct Release {
    /// The namespace as cached (its deletion is conditional on that very object).
    pub namespace: Arc<Namespace>,
    /// Delete or retain.
    pub kind: ReleaseKind,
}

/// The account's self-made namespaces: what is decided about them and the rules it gives.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfService {
    /// Which it keeps, takes and refuses.
    pub plan: selfservice::Plan,
    /// Whether the package requires the `<account>-` prefix.
    pub prefix: bool,
    /// Whether the account may take new ones (it is not frozen, the package allows it).
    pub open: bool,
}

/// Everything one reconcile does to an Account, decided.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What keeps the account from being provisioned as its spec asks.
    pub blocked: Option<Blocker>,
    /// Whether its guardrails are in force (a suspension, or `held`).
    pub suspended: bool,
    /// Whether the guardrails stay only because the Suspension CRD is being deleted.
    pub held: bool,
    /// Whether its workloads are scaled to zero.
    pub scale: bool,
    /// The namespaces provisioned, in order: declared (but none someone else holds; while frozen by
    /// an unresolved package or too many namespaces, only those it owns), then the self-made ones it
    /// keeps and takes.
    pub namespaces: Vec<String>,
    /// The desired children, the tenancy ClusterRole and its binding included.
    pub children: Desired,
    /// The subjects RoleBindings in its namespaces may name (admission-policy tokens): a binding's
    /// other subjects are withdrawn when the list changes.
    pub allowed_subjects: String,
    /// The self-made namespaces.
    pub selfservice: SelfService,
    /// The steps of each namespace: one per desired namespace (`children.namespaces`), in its order
    /// (the order of `namespaces`).
    pub steps: Vec<NamespaceStep>,
    /// The namespaces whose tenant NetworkPolicies are judged again (those applied, while not
    /// suspended) and reported on.
    pub rejudge: Option<Vec<Namespace>>,
    /// The namespaces released (never while frozen by an unresolved package or too many
    /// namespaces).
    pub release: Vec<Release>,
    /// The status when every step succeeds ([`Plan::status`] for the others).
    pub status: AccountStatus,
    /// The next instant at which something changes by time alone.
    pub next_change: Option<Timestamp>,
    /// What a LimitRange would refuse of the account's limits.
    limits: Vec<String>,
    /// The suspensions in force.
    suspensions: ActiveSuspensions,
    /// The declared namespaces provisioned: all but those someone else holds, or only those it owns
    /// while it is frozen (an unresolved package, too many namespaces).
    declared: Vec<String>,
    /// When the plan was made.
    now: Timestamp,
}

/// What the execute stage could not do: the objects not applied, and the self-made namespaces it
/// could not take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The failures.
    pub applied: Applied,
    /// Self-made namespaces whose claim failed (retried).
    pub unclaimed: Vec<String>,
}

/// How a namespace the account owns is released at `now` (pure; the Account's deletion, or its spec
/// dropping the namespace).
pub fn release(account: &Account, namespace: Arc<Namespace>, now: Timestamp) -> Release {
    let kind = match account.spec.deletion_policy {
        DeletionPolicy::Delete => ReleaseKind::Delete,
        DeletionPolicy::Retain => {
            // Retention runs from the Account's deletion (§6), not from when a replica got to it.
            let from = account
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(now);
            let until = covenant_terms::retained_until(
                from,
                u32::try_from(account.spec.retention_months).unwrap_or(0),
            );
            ReleaseKind::Retain {
                until,
                released: Box::new(account::released(account, &namespace.name_any(), until)),
                administrators: account::subject_tokens(account.spec.administrators.iter()),
            }
        }
    };
    Release { namespace, kind }
}

/// Whether a namespace is released already (or on its way out): retained, or being deleted.
fn released_already(ns: &Namespace) -> bool {
    ns.labels().contains_key(RETAINED_UNTIL_LABEL) || ns.metadata.deletion_timestamp.is_some()
}

/// What the Account's deletion releases: every namespace it owns (declared or not), none other, and
/// none already retained.
pub fn releases_on_delete(
    account: &Account,
    labelled: &[Arc<Namespace>],
    now: Timestamp,
) -> Vec<Release> {
    labelled
        .iter()
        .filter(|n| account::owns(account, n) && !n.labels().contains_key(RETAINED_UNTIL_LABEL))
        .map(|n| release(account, n.clone(), now))
        .collect()
}

/// Decides one reconcile of the Account (pure).
pub fn plan(o: &Observed<'_>, now: Timestamp) -> Plan {
    let account = o.account;
    let package = crate::model::package::resolve(account, &o.packages).map_err(|e| e.to_string());
    let (invalid, limits) = match &package {
        Ok(p) => (
            account::validate_on_package(account, p),
            crate::model::package::account_limit_problems(account, p),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let suspensions = active_suspensions(&o.suspensions, now);
    // A namespace is this account's only when Covenant created it for this Account's UID; one that
    // exists and is not is a conflict.
    let (mut conflicts, mut conflicting, mut owned) = (Vec::new(), BTreeSet::new(), Vec::new());
    for ns in account.desired_namespaces() {
        match o
            .seen(&ns)
            .map(|s| account::ownership_conflict(account, &s.namespace))
        {
            None => {}
            Some(None) => owned.push(ns),
            Some(Some(c)) => {
                conflicts.push(c);
                conflicting.insert(ns);
            }
        }
    }
    let blocked = phase::blocker(
        &conflicts,
        package.as_ref().map(|_| ()).map_err(String::as_str),
        &invalid,
    );
    // A conflict withholds only the names someone else holds: the account's other namespaces are
    // provisioned, taken and released as usual (the conflict is its status's). An unresolved package
    // or a spec over the namespace cap freezes it: it takes no new namespace and releases none.
    let frozen = package.is_err() || !invalid.is_empty();
    // A lift is a Suspension deleted or ended, never the Suspension CRD being uninstalled (which
    // deletes every Suspension): while it is, guardrails in force stay.
    let scaled = |ns: &str| {
        o.seen(ns).is_some_and(|s| {
            s.namespace
                .annotations()
                .contains_key(account::SCALED_MARKER)
        })
    };
    let enforced = owned.iter().any(|ns| {
        o.seen(ns).is_some_and(|s| {
            s.namespace
                .labels()
                .get(READ_ONLY_LABEL)
                .map(String::as_str)
                == Some(ReadOnly::Suspended.as_str())
        })
    });
    let held = enforced && !suspensions.active && o.suspension_crd_deleting;
    let suspended = suspensions.active || held;
    // Held: workloads stay as they are (scaled down only where the marker says they were).
    let marked = owned.iter().any(|ns| scaled(ns));
    let scale = suspended && (suspensions.scale_workloads || (held && marked));
    // A frozen account keeps what it owns in order, guardrails first: a suspension is enforced (and a
    // lift restored) even while the account is otherwise not Ready. It takes no new namespace.
    let declared = if frozen {
        owned.clone()
    } else {
        account
            .desired_namespaces()
            .into_iter()
            .filter(|ns| !conflicting.contains(ns))
            .collect()
    };
    let mut namespaces = declared.clone();
    // The namespaces its administrators made: those it holds, and those it takes now (only when not
    // frozen), provisioned like the declared ones.
    let pkg = package.as_ref().ok().copied();
    let selfservice = {
        let enabled = selfservice::enabled(pkg);
        let open = !frozen && enabled;
        let prefix = selfservice::require_prefix(pkg);
        let other = |ns: &str| o.declared_by_other.get(ns).cloned();
        let mut plan = selfservice::plan(&selfservice::PlanInput {
            account,
            cap: selfservice::cap(pkg),
            require_prefix: prefix,
            open,
            candidates: &o.candidates,
            declared_by_other: &other,
        });
        plan.blocked_by_package_setting = !enabled;
        SelfService { plan, prefix, open }
    };
    namespaces.extend(selfservice.plan.provisioned());
    let mut children = account::build(
        account,
        &BuildInput {
            package: pkg,
            suspended,
            scale_workloads: scale,
            namespaces: namespaces.clone(),
            operator: o.operator.as_ref(),
            // The administrators' read access to their own Account and the notices that concern it
            // (the rows of its status.notices), and to nothing of other tenants.
            notices: crate::model::notice::concerning_names(account, &o.notices, now),
            self_service: selfservice::rules(
                account,
                &selfservice.plan,
                suspended,
                selfservice.open,
                selfservice.prefix,
            ),
        },
    );
    // Limits a LimitRange refuses: the LimitRange in place stays as it was, the rest is applied.
    if !limits.is_empty() {
        children.limit_ranges.clear();
        children.untouched.insert(account::LIMITS_NAME);
    }
    // The Gateway API's kinds are bounded like Ingresses (model::gateway::BOUNDED_COUNTS).
    crate::model::gateway::bound(&mut children);
    // Room for one more NetworkPolicy in each bounds quota while a suspension's deny-all comes or
    // goes: while suspended, and while the deny-all is still there (a lift creates the allow policies
    // before the deny-all goes). A tenant that filled its namespace can never keep the deny-all out.
    for q in &mut children.quotas {
        if q.metadata.name.as_deref() != Some(account::BOUNDS_QUOTA_NAME) {
            continue;
        }
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let deny_all = o.seen(&ns).is_some_and(|s| s.deny_all);
        if (suspended || deny_all)
            && let Some(hard) = q.spec.as_mut().and_then(|s| s.hard.as_mut())
        {
            crate::model::tenant_policies::with_room(hard);
        }
    }
    let steps = children
        .namespaces
        .iter()
        .map(|desired| {
            let ns = &desired.name_any();
            let own = o.owns(ns);
            let seen = o.seen(ns);
            let apply = namespace_action(account, desired, seen.map(|s| s.namespace.as_ref()));
            // Lifting: the tenant's NetworkPolicies are restored before the namespace apply drops
            // the read-only label, only those the admission policy admits now.
            let restore_policies = (!suspended && own && seen.is_some_and(|s| s.policy_records))
                .then(|| desired.clone());
            // Lifting restores the workloads before the namespace apply drops the marker and the
            // read-only label. CronJobs and a suspension's records are lifted when no suspension is
            // in force; replica counts also when the suspensions in force no longer scale.
            let lift = if !suspended {
                (own && (scaled(ns) || seen.is_some_and(|s| s.workload_records)))
                    .then_some(Scope::ALL)
            } else if !scale && scaled(ns) {
                Some(Scope::REPLICAS)
            } else {
                None
            };
            // Suspending: CronJobs whenever the account is (no Job is created while it is), replicas
            // only when asked; only in a namespace it owns (a new one may not exist yet).
            let workloads = match (suspended && own, lift) {
                (true, lift_first) => WorkloadStep::Suspend {
                    scope: Scope {
                        replicas: scale,
                        cronjobs: true,
                    },
                    lift_first,
                },
                (false, Some(s)) => WorkloadStep::Lift(s),
                (false, None) => WorkloadStep::Keep,
            };
            NamespaceStep {
                namespace: ns.clone(),
                apply,
                restore_policies,
                workloads,
            }
        })
        .collect();
    // Tenant policies are judged again when what the admission policy reads changed: once the
    // namespace carries it.
    let rejudge = (!suspended).then(|| children.namespaces.clone());
    // Namespaces dropped from the spec are released like those of a deleted account; a frozen
    // account releases none.
    let wanted: BTreeSet<&str> = children
        .namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let release = if frozen {
        Vec::new()
    } else {
        o.labelled
            .iter()
            .filter_map(|ns| o.seen(ns))
            .filter(|s| {
                account::owns(account, &s.namespace)
                    && !wanted.contains(s.namespace.name_any().as_str())
                    && !released_already(&s.namespace)
            })
            .map(|s| release(account, s.namespace.clone(), now))
            .collect()
    };
    let mut plan = Plan {
        blocked,
        suspended,
        held,
        scale,
        namespaces,
        children,
        allowed_subjects: account::allowed_subjects(account),
        selfservice,
        steps,
        rejudge,
        release,
        status: AccountStatus::default(),
        next_change: None,
        limits,
        suspensions,
        declared,
        now,
    };
    let (status, next) = plan.status_of(o, &package, &Outcome::default());
    plan.status = status;
    plan.next_change = next;
    plan
}

impl Plan {
    /// Each desired namespace with what is done to it, in order.
    pub fn namespace_actions(&self) -> impl Iterator<Item = (&Namespace, &NamespaceAction)> {
        // The steps are made from the desired namespaces, one each, in their order.
        self.children
            .namespaces
            .iter()
            .zip(&self.steps)
            .map(|(n, s)| (n, &s.apply))
    }

    /// The status after the execute stage's `outcome` (pure): [`Plan::status`] when everything
    /// succeeded, else the same made again with what failed.
    pub fn status(&self, o: &Observed<'_>, outcome: &Outcome) -> AccountStatus {
        if *outcome == Outcome::default() {
            return self.status.clone();
        }
        let package =
            crate::model::package::resolve(o.account, &o.packages).map_err(|e| e.to_string());
        self.status_of(o, &package, outcome).0
    }

    fn status_of(
        &self,
        o: &Observed<'_>,
        package: &Result<&SupportPackage, String>,
        outcome: &Outcome,
    ) -> (AccountStatus, Option<Timestamp>) {
        let account = o.account;
        let made = phase::status(&phase::StatusInput {
            account,
            package: package.as_ref().copied().map_err(String::as_str),
            blocked: self.blocked.as_ref(),
            limits: &self.limits,
            applied: &outcome.applied,
            suspensions: &self.suspensions,
            suspended: self.suspended,
            notices: &o.notices,
            answers: &o.answers,
            declared: &self.declared,
            previous: &o.previous.conditions,
            now: self.now,
        });
        let mut status = made.status;
        // The self-made namespaces: listed after the declared ones, with where each came from, and
        // the condition that says how many the account has of its cap.
        let mut ss = self.selfservice.plan.clone();
        ss.claim.retain(|(n, _)| !outcome.unclaimed.contains(n));
        let (names, origins) = selfservice::origins(&status.namespaces, &ss);
        status.namespaces = names;
        status.namespace_origins = origins;
        let before = crate::status::find(&o.previous.conditions, selfservice::CONDITION);
        let cond = selfservice::condition(
            account,
            &ss,
            self.suspended,
            self.selfservice.open,
            self.selfservice.prefix,
            before,
        );
        status.conditions.extend(crate::status::merge(
            &o.previous.conditions,
            vec![cond],
            account.metadata.generation,
            self.now,
        ));
        let [review, notices] = made.next;
        let next = [review, notices, self.suspensions.next_change]
            .into_iter()
            .flatten()
            .min();
        (status, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ACCOUNT_LABEL, ACCOUNT_UID_ANNOTATION, AccountPhase, AccountSpec, Subject, SubjectKind,
        SupportPackageSpec, SuspensionReason, SuspensionSpec,
    };
    use crate::status::{reasons, types};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-05T12:00:00Z";

    fn account(deletion: DeletionPolicy) -> Account {
        let mut a = Account::new(
            "acme",
            AccountSpec {
                administrators: vec![Subject {
                    kind: SubjectKind::User,
                    name: "alice".into(),
                    namespace: None,
                }],
                namespaces: vec!["acme-prod".into(), "acme-dev".into()],
                retention_months: 13,
                deletion_policy: deletion,
                ..Default::default()
            },
        );
        a.metadata.uid = Some("uid-acme".into());
        a.metadata.generation = Some(1);
        a.metadata.creation_timestamp = Some(Time(at("2026-12-01T00:00:00Z")));
        a
    }

    fn package() -> SupportPackage {
        SupportPackage::new(
            "gold",
            SupportPackageSpec {
                default: true,
                max_namespaces: Some(5),
                ..Default::default()
            },
        )
    }

    /// A namespace as cached: `owner` the account UID it was created for (None: not Covenant's).
    fn ns(name: &str, owner: Option<&str>, labels: &[(&str, &str)], marked: bool) -> SeenNamespace {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut a = BTreeMap::new();
        if let Some(uid) = owner {
            l.insert(ACCOUNT_LABEL.into(), "acme".into());
            a.insert(ACCOUNT_UID_ANNOTATION.to_string(), uid.to_string());
        }
        if marked {
            a.insert(account::SCALED_MARKER.to_string(), "true".into());
        }
        SeenNamespace {
            namespace: Arc::new(Namespace {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(l),
                    annotations: Some(a),
                    ..Default::default()
                },
                ..Default::default()
            }),
            workload_records: labels.iter().any(|(k, _)| *k == READ_ONLY_LABEL),
            policy_records: labels.iter().any(|(k, _)| *k == READ_ONLY_LABEL),
            deny_all: labels.iter().any(|(k, _)| *k == READ_ONLY_LABEL),
        }
    }

    fn suspension(scale: bool) -> Suspension {
        let mut s = Suspension::new(
            "s",
            SuspensionSpec {
                account: "acme".into(),
                reason: SuspensionReason::MaterialBreach,
                cause: "unpaid".into(),
                withhold_notice: false,
                start_at: Some(Time(at("2026-12-02T00:00:00Z"))),
                end_at: None,
                scale_workloads: scale,
            },
        );
        s.metadata.generation = Some(1);
        s
    }

    /// A suspension of the account: none, in force keeping replicas, in force scaling to zero.
    #[derive(Clone, Copy, Debug)]
    enum Susp {
        None,
        Keep,
        Scale,
    }

    /// The guardrails the cache shows on the owned namespace: none, read-only `suspended`, and
    /// read-only with the workloads marked scaled.
    #[derive(Clone, Copy, Debug)]
    enum Guard {
        None,
        ReadOnly,
        Scaled,
    }

    /// A namespace dropped from the spec: none, owned (released), already retained, being deleted.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Dropped {
        None,
        Owned,
        Retained,
        Deleting,
    }

    /// What blocks the account: nothing; `acme-dev` (declared) held by someone else; a package that
    /// cannot be resolved; more declared namespaces than the package allows; a conflict and an
    /// unresolved package together.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Block {
        None,
        Conflict,
        Unresolved,
        OverCap,
        ConflictUnresolved,
    }

    impl Block {
        fn conflict(self) -> bool {
            matches!(self, Block::Conflict | Block::ConflictUnresolved)
        }
        /// An unresolved package or too many namespaces freeze the account; a conflict alone does not.
        fn frozen(self) -> bool {
            matches!(
                self,
                Block::Unresolved | Block::OverCap | Block::ConflictUnresolved
            )
        }
        fn reason(self) -> Option<&'static str> {
            match self {
                Block::None => None,
                Block::Conflict | Block::ConflictUnresolved => Some(reasons::NAMESPACE_CONFLICT),
                Block::Unresolved => Some(reasons::PACKAGE_UNRESOLVED),
                Block::OverCap => Some(reasons::TOO_MANY_NAMESPACES),
            }
        }
    }

    struct Case {
        susp: Susp,
        guard: Guard,
        crd_deleting: bool,
        blocked: Block,
        dropped: Dropped,
    }

    fn observe<'a>(a: &'a Account, c: &Case) -> Observed<'a> {
        let mut o = Observed::of(a);
        o.packages = match c.blocked {
            // No package at all: none is the default.
            Block::Unresolved | Block::ConflictUnresolved => vec![],
            Block::OverCap => {
                let mut p = package();
                p.spec.max_namespaces = Some(1);
                vec![p]
            }
            Block::None | Block::Conflict => vec![package()],
        };
        o.suspensions = match c.susp {
            Susp::None => vec![],
            Susp::Keep => vec![suspension(false)],
            Susp::Scale => vec![suspension(true)],
        };
        o.suspension_crd_deleting = c.crd_deleting;
        let ro = [(READ_ONLY_LABEL, "suspended")];
        let prod = match c.guard {
            Guard::None => ns("acme-prod", Some("uid-acme"), &[], false),
            Guard::ReadOnly => ns("acme-prod", Some("uid-acme"), &ro, false),
            Guard::Scaled => ns("acme-prod", Some("uid-acme"), &ro, true),
        };
        o.namespaces.insert("acme-prod".into(), prod);
        o.labelled.push("acme-prod".into());
        if c.blocked.conflict() {
            // Someone else's namespace under a name the spec declares.
            o.namespaces
                .insert("acme-dev".into(), ns("acme-dev", None, &[], false));
        }
        let old = match c.dropped {
            Dropped::None => None,
            Dropped::Owned => Some(ns("acme-old", Some("uid-acme"), &[], false)),
            Dropped::Retained => Some(ns(
                "acme-old",
                Some("uid-acme"),
                &[(RETAINED_UNTIL_LABEL, "1900000000")],
                false,
            )),
            Dropped::Deleting => {
                let mut n = ns("acme-old", Some("uid-acme"), &[], false);
                let mut inner = (*n.namespace).clone();
                inner.metadata.deletion_timestamp = Some(Time(at(NOW)));
                n.namespace = Arc::new(inner);
                Some(n)
            }
        };
        if let Some(old) = old {
            o.namespaces.insert("acme-old".into(), old);
            o.labelled.push("acme-old".into());
        }
        o
    }

    /// What the owned namespace's workloads get, by suspension, guardrails and the Suspension CRD:
    /// (suspended, held, the step).
    fn expected(c: &Case) -> (bool, bool, WorkloadStep) {
        use WorkloadStep::*;
        let cron = Scope {
            replicas: false,
            cronjobs: true,
        };
        match (c.susp, c.guard, c.crd_deleting) {
            // In force and scaling: everything stops.
            (Susp::Scale, _, _) => (
                true,
                false,
                Suspend {
                    scope: Scope::ALL,
                    lift_first: None,
                },
            ),
            // In force, replicas kept: CronJobs stop; replicas a former suspension scaled come back.
            (Susp::Keep, Guard::Scaled, _) => (
                true,
                false,
                Suspend {
                    scope: cron,
                    lift_first: Some(Scope::REPLICAS),
                },
            ),
            (Susp::Keep, _, _) => (
                true,
                false,
                Suspend {
                    scope: cron,
                    lift_first: None,
                },
            ),
            // No suspension, no guardrails: nothing to do, whatever the CRD.
            (Susp::None, Guard::None, _) => (false, false, Keep),
            // Guardrails without a suspension: lifted, unless the CRD is being deleted (held, and
            // scaled only where the marker says a suspension scaled).
            (Susp::None, _, false) => (false, false, Lift(Scope::ALL)),
            (Susp::None, Guard::ReadOnly, true) => (
                true,
                true,
                Suspend {
                    scope: cron,
                    lift_first: None,
                },
            ),
            (Susp::None, Guard::Scaled, true) => (
                true,
                true,
                Suspend {
                    scope: Scope::ALL,
                    lift_first: None,
                },
            ),
        }
    }

    fn cases() -> Vec<Case> {
        let mut out = Vec::new();
        for susp in [Susp::None, Susp::Keep, Susp::Scale] {
            for guard in [Guard::None, Guard::ReadOnly, Guard::Scaled] {
                for crd_deleting in [false, true] {
                    for blocked in [
                        Block::None,
                        Block::Conflict,
                        Block::Unresolved,
                        Block::OverCap,
                        Block::ConflictUnresolved,
                    ] {
                        for dropped in [
                            Dropped::None,
                            Dropped::Owned,
                            Dropped::Retained,
                            Dropped::Deleting,
                        ] {
                            out.push(Case {
                                susp,
                                guard,
                                crd_deleting,
                                blocked,
                                dropped,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Every combination of suspended / lifted / held / blocked / retained / deleting: the steps of
    /// the owned namespace, what is provisioned and released, and the status.
    #[test]
    fn every_combination_plans_its_steps_releases_and_status() {
        let a = account(DeletionPolicy::Retain);
        let now = at(NOW);
        for c in cases() {
            let o = observe(&a, &c);
            let p = plan(&o, now);
            let why = format!(
                "{:?} {:?} crd_deleting={} blocked={:?} {:?}",
                c.susp, c.guard, c.crd_deleting, c.blocked, c.dropped
            );
            let (suspended, held, step) = expected(&c);
            assert_eq!((p.suspended, p.held), (suspended, held), "{why}");
            let prod = p.steps.iter().find(|s| s.namespace == "acme-prod");
            assert_eq!(prod.map(|s| s.workloads), Some(step), "{why}");
            // The tenant's policies come back exactly when a lift restores the workloads.
            assert_eq!(
                prod.is_some_and(|s| s.restore_policies.is_some()),
                !suspended && !matches!(c.guard, Guard::None),
                "{why}"
            );
            // A frozen account keeps what it owns and takes no new namespace; a conflict withholds
            // only acme-dev, someone else's (never built, so never applied to nor trusted).
            // Otherwise every declared namespace is provisioned.
            let want: &[&str] = if c.blocked.frozen() || c.blocked.conflict() {
                &["acme-prod"]
            } else {
                &["acme-prod", "acme-dev"]
            };
            assert_eq!(p.namespaces, want, "{why}");
            let built: Vec<String> = p.children.namespaces.iter().map(|n| n.name_any()).collect();
            assert_eq!(built, want, "{why}");
            // Only the namespace a not-frozen account dropped, owns, and has not released yet: a
            // conflict does not keep the account from releasing what its spec dropped.
            let released: Vec<String> = p.release.iter().map(|r| r.namespace.name_any()).collect();
            let expect_release = !c.blocked.frozen() && c.dropped == Dropped::Owned;
            assert_eq!(
                released,
                if expect_release {
                    vec!["acme-old".to_string()]
                } else {
                    vec![]
                },
                "{why}"
            );
            if let Some(r) = p.release.first() {
                let ReleaseKind::Retain { until, .. } = &r.kind else {
                    panic!("{why}: a Retain account's namespace is retained");
                };
                assert_eq!(*until, covenant_terms::retained_until(now, 13), "{why}");
            }
            // Guardrails while suspended: the freeze quota and deny-all, read-only label.
            let policies: Vec<String> = p
                .children
                .network_policies
                .iter()
                .filter(|n| n.namespace().as_deref() == Some("acme-prod"))
                .map(|n| n.name_any())
                .collect();
            assert_eq!(
                policies == vec![account::SUSPENSION_POLICY.to_string()],
                suspended,
                "{why}: {policies:?}"
            );
            // The status: phase, Ready, Suspended.
            let s = &p.status;
            let cond = |t: &str| crate::status::find(&s.conditions, t).cloned().unwrap();
            let ready = cond(types::READY);
            let blocker = c.blocked.reason();
            let phase = match (suspended, blocker) {
                (true, _) => AccountPhase::Suspended,
                (false, Some(_)) => AccountPhase::Degraded,
                (false, None) => AccountPhase::Active,
            };
            assert_eq!(s.phase, Some(phase), "{why}");
            let reason = match (blocker, suspended) {
                (Some(r), _) => r,
                (None, true) => reasons::SUSPENDED,
                (None, false) => reasons::READY,
            };
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                (if blocker.is_some() { "False" } else { "True" }, reason),
                "{why}"
            );
            // Stalled names the blocker: only a person can remove it.
            let stalled = cond(types::STALLED);
            assert_eq!(
                (stalled.status.as_str(), stalled.reason.as_str()),
                match blocker {
                    Some(r) => ("True", r),
                    None => ("False", reasons::NOT_STALLED),
                },
                "{why}"
            );
            if c.blocked.conflict() {
                assert!(
                    ready.message.contains("\"acme-dev\""),
                    "{why}: {}",
                    ready.message
                );
                assert!(
                    ready
                        .message
                        .contains("choose other names in spec.namespaces"),
                    "{why}: {}",
                    ready.message
                );
            }
            // A conflict alone: the parts are applied, NamespacesReady says what is withheld.
            if c.blocked == Block::Conflict {
                let parts = |t: &str| {
                    let c = cond(t);
                    (c.status, c.reason)
                };
                assert_eq!(
                    parts(types::NAMESPACES_READY),
                    ("False".into(), reasons::NAMESPACE_CONFLICT.into()),
                    "{why}"
                );
                assert_eq!(parts(types::QUOTA_APPLIED).0, "True", "{why}");
                assert_eq!(parts(types::NETWORK_ISOLATED).0, "True", "{why}");
            }
            // Self-service takes new namespaces unless the account is frozen.
            assert_eq!(p.selfservice.open, !c.blocked.frozen(), "{why}");
            // Suspended=True only for a suspension in force: held guardrails are no suspension.
            let in_force = !matches!(c.susp, Susp::None);
            assert_eq!(
                cond(types::SUSPENDED).status,
                if in_force { "True" } else { "False" },
                "{why}"
            );
            // status.namespaces never lists the conflicting name: it is not the account's.
            assert_eq!(s.namespaces, want, "{why}");
            // The administrators read their Account; self-service gives no rule while suspended.
            assert_eq!(p.children.cluster_role_bindings.len(), 1, "{why}");
            let rules = p.children.cluster_roles[0]
                .rules
                .as_deref()
                .unwrap_or_default();
            assert_eq!(
                rules[0].resource_names.as_deref(),
                Some(&["acme".to_string()][..]),
                "{why}"
            );
            assert!(p.rejudge.is_some() != suspended, "{why}");
        }
    }

    /// Deleting the Account releases every namespace it owns and has not released yet, from the
    /// Account's deletion (Retain), or deletes them (Delete); none of someone else's.
    #[test]
    fn deleting_the_account_releases_what_it_owns_from_its_deletion() {
        let deleted = at("2026-12-04T00:00:00Z");
        let now = at(NOW);
        for policy in [DeletionPolicy::Retain, DeletionPolicy::Delete] {
            let mut a = account(policy);
            a.metadata.deletion_timestamp = Some(Time(deleted));
            let labelled: Vec<Arc<Namespace>> = [
                ns("acme-prod", Some("uid-acme"), &[], false),
                ns("acme-dev", Some("uid-other"), &[], false),
                ns(
                    "acme-old",
                    Some("uid-acme"),
                    &[(RETAINED_UNTIL_LABEL, "1")],
                    false,
                ),
            ]
            .into_iter()
            .map(|s| s.namespace)
            .collect();
            let r = releases_on_delete(&a, &labelled, now);
            let names: Vec<String> = r.iter().map(|r| r.namespace.name_any()).collect();
            assert_eq!(names, ["acme-prod"], "{policy:?}");
            match (&r[0].kind, policy) {
                (ReleaseKind::Delete, DeletionPolicy::Delete) => {}
                (
                    ReleaseKind::Retain {
                        until,
                        released,
                        administrators,
                    },
                    DeletionPolicy::Retain,
                ) => {
                    assert_eq!(*until, covenant_terms::retained_until(deleted, 13));
                    assert_eq!(administrators, "User:alice");
                    assert_eq!(
                        released
                            .namespace
                            .labels()
                            .get(READ_ONLY_LABEL)
                            .map(String::as_str),
                        Some("retained")
                    );
                }
                (k, p) => panic!("{p:?} released as {k:?}"),
            }
        }
    }

    /// What the execute stage could not do changes the status only: a retried failure makes the
    /// account Provisioning, a self-made namespace not taken is not listed.
    #[test]
    fn the_status_follows_what_execute_could_not_do() {
        let a = account(DeletionPolicy::Retain);
        let c = Case {
            susp: Susp::None,
            guard: Guard::None,
            crd_deleting: false,
            blocked: Block::None,
            dropped: Dropped::None,
        };
        let o = observe(&a, &c);
        let p = plan(&o, at(NOW));
        assert_eq!(p.status(&o, &Outcome::default()), p.status);
        let failed = Outcome {
            applied: Applied {
                failed: vec!["ResourceQuota acme-prod/covenant-quota: conflict".into()],
                retry: true,
            },
            unclaimed: vec![],
        };
        let s = p.status(&o, &failed);
        assert_eq!(s.phase, Some(AccountPhase::Provisioning));
        let reconciling = crate::status::find(&s.conditions, types::RECONCILING).unwrap();
        assert_eq!(reconciling.status, "True");
    }

    /// The namespace under test as the cache shows it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Cached {
        Absent,
        NotOurs,
        Ours,
    }

    /// The mark that its bindings were checked, against the desired one.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Mark {
        Equal,
        Different,
        Absent,
    }

    /// A foreign Pod Security label and a policy annotation the package does not give: Covenant's
    /// to remove.
    const STRAY_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

    /// `desired` as the cache would show it: `cached` decides whose it is, `mark` its bindings mark,
    /// `stray` whether it carries labels and annotations Covenant removes.
    fn cached_as(
        desired: &Namespace,
        cached: Cached,
        mark: Mark,
        stray: bool,
    ) -> Option<Namespace> {
        let mut n = desired.clone();
        match cached {
            Cached::Absent => return None,
            Cached::Ours => {}
            // Created by Covenant for a deleted Account of the same name.
            Cached::NotOurs => {
                n.annotations_mut()
                    .insert(ACCOUNT_UID_ANNOTATION.into(), "uid-old".into());
            }
        }
        let a = n.annotations_mut();
        match mark {
            Mark::Equal => {}
            Mark::Different => {
                a.insert(account::SUBJECTS_ENFORCED_ANNOTATION.into(), "old".into());
            }
            Mark::Absent => {
                a.remove(account::SUBJECTS_ENFORCED_ANNOTATION);
            }
        }
        if stray {
            a.insert(
                crate::model::policies::REGISTRIES_ANNOTATION.into(),
                "registry.example/".into(),
            );
            n.labels_mut().insert(STRAY_LABEL.into(), "v1.0".into());
        }
        Some(n)
    }

    /// What is done to `desired` cached as `cached`, `mark`, `stray`.
    fn expected_action(
        desired: &Namespace,
        cached: Cached,
        mark: Mark,
        stray: bool,
    ) -> NamespaceAction {
        let recheck = match mark {
            Mark::Equal => None,
            // First applied with the new subjects and the mark it has (or none), then swept.
            Mark::Different => {
                let mut first = desired.clone();
                first
                    .annotations_mut()
                    .insert(account::SUBJECTS_ENFORCED_ANNOTATION.into(), "old".into());
                Some(Box::new(first))
            }
            Mark::Absent => {
                let mut first = desired.clone();
                first
                    .annotations_mut()
                    .remove(account::SUBJECTS_ENFORCED_ANNOTATION);
                Some(Box::new(first))
            }
        };
        let stray = stray.then(|| {
            serde_json::json!({ "metadata": {
                "labels": { STRAY_LABEL: null },
                "annotations": { crate::model::policies::REGISTRIES_ANNOTATION: null },
            }})
        });
        match cached {
            Cached::Absent => NamespaceAction::Create,
            Cached::NotOurs => NamespaceAction::NotOurs,
            Cached::Ours => NamespaceAction::Apply { recheck, stray },
        }
    }

    fn every_cached_namespace() -> Vec<(Cached, Mark, bool)> {
        let mut out = Vec::new();
        for cached in [Cached::Absent, Cached::NotOurs, Cached::Ours] {
            for mark in [Mark::Equal, Mark::Different, Mark::Absent] {
                for stray in [false, true] {
                    out.push((cached, mark, stray));
                }
            }
        }
        out
    }

    /// The desired acme-prod of a plan that observed none of the account's namespaces.
    fn desired_prod(a: &Account) -> Namespace {
        let mut o = Observed::of(a);
        o.packages = vec![package()];
        let p = plan(&o, at(NOW));
        let prod = p
            .children
            .namespaces
            .iter()
            .find(|n| n.name_any() == "acme-prod");
        let prod = prod.cloned().unwrap();
        assert!(
            prod.annotations()
                .contains_key(account::SUBJECTS_ENFORCED_ANNOTATION)
        );
        prod
    }

    /// What is done to a namespace, by whose it is (absent, someone else's, the account's), its
    /// bindings mark (the desired one, another, none) and whether it carries stray keys: created;
    /// left alone; applied, with the consent sweep first exactly when the mark is not the desired
    /// one, and the stray keys removed after exactly when there are some.
    #[test]
    fn each_namespace_is_created_left_alone_or_applied_as_its_cached_copy_calls_for() {
        let a = account(DeletionPolicy::Retain);
        let desired = desired_prod(&a);
        for (cached, mark, stray) in every_cached_namespace() {
            let why = format!("{cached:?} mark {mark:?} stray {stray}");
            let current = cached_as(&desired, cached, mark, stray);
            assert_eq!(
                namespace_action(&a, &desired, current.as_ref()),
                expected_action(&desired, cached, mark, stray),
                "{why}"
            );
        }
    }

    /// The same table through the whole plan: the step of acme-prod carries its action, and every
    /// desired namespace is paired with its own step. Someone else's declared namespace gets no step
    /// at all (never adopted, never touched); the account's other namespaces are provisioned.
    #[test]
    fn the_plan_gives_each_desired_namespace_its_action() {
        let a = account(DeletionPolicy::Retain);
        let desired = desired_prod(&a);
        for (cached, mark, stray) in every_cached_namespace() {
            let why = format!("{cached:?} mark {mark:?} stray {stray}");
            let mut o = Observed::of(&a);
            o.packages = vec![package()];
            if let Some(n) = cached_as(&desired, cached, mark, stray) {
                o.labelled.push("acme-prod".into());
                o.namespaces.insert(
                    "acme-prod".into(),
                    SeenNamespace {
                        namespace: Arc::new(n),
                        workload_records: false,
                        policy_records: false,
                        deny_all: false,
                    },
                );
            }
            let p = plan(&o, at(NOW));
            for (n, s) in p.children.namespaces.iter().zip(&p.steps) {
                assert_eq!(n.name_any(), s.namespace, "{why}");
            }
            assert_eq!(p.steps.len(), p.children.namespaces.len(), "{why}");
            let actions: BTreeMap<String, NamespaceAction> = p
                .namespace_actions()
                .map(|(n, a)| (n.name_any(), a.clone()))
                .collect();
            let want = match cached {
                Cached::NotOurs => None,
                _ => Some(expected_action(&desired, cached, mark, stray)),
            };
            assert_eq!(actions.get("acme-prod").cloned(), want, "{why}");
            // acme-dev is absent in every case: created, also when acme-prod is someone else's (a
            // conflict withholds only the name in conflict).
            let dev = Some(NamespaceAction::Create);
            assert_eq!(actions.get("acme-dev").cloned(), dev, "{why}");
        }
    }

    /// A self-made namespace the account takes in this reconcile is not its own yet as cached: the
    /// take (a merge patch) is the execute stage's, and the namespace is applied by the next
    /// reconcile, which the take triggers.
    #[test]
    fn a_self_made_namespace_taken_now_is_applied_by_the_next_reconcile() {
        let a = account(DeletionPolicy::Retain);
        let mut o = Observed::of(&a);
        o.packages = vec![package()];
        let web = Namespace {
            metadata: ObjectMeta {
                name: Some("acme-web".into()),
                resource_version: Some("7".into()),
                labels: Some(BTreeMap::from([(
                    crate::api::TENANT_REQUEST_LABEL.to_string(),
                    "acme".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        o.candidates
            .push(crate::model::selfservice::Candidate::of(&web));
        o.namespaces.insert(
            "acme-web".into(),
            SeenNamespace {
                namespace: Arc::new(web),
                workload_records: false,
                policy_records: false,
                deny_all: false,
            },
        );
        let p = plan(&o, at(NOW));
        assert_eq!(
            p.selfservice.plan.claim,
            vec![("acme-web".to_string(), Some("7".to_string()))]
        );
        let web = p
            .namespace_actions()
            .find(|(n, _)| n.name_any() == "acme-web");
        assert_eq!(web.map(|(_, a)| a), Some(&NamespaceAction::NotOurs));
    }
}
