//! Self-service namespaces (pure): an account's administrators create namespaces for it themselves, a
//! plain `Namespace` labelled `covenant.dev/tenant: <account>`. The API server lets only that
//! account's administrators make one, only while the account is active and has room (the verbs of its
//! `covenant-account-<name>` ClusterRole, checked by the admission policy
//! `covenant-self-service-namespaces`); admission cannot count, so the operator decides which of
//! them the account takes, in a fixed order, never more than `maxNamespaces` in all.
//!
//! The order: namespaces the account already took (never given back), then the others by creation
//! time and name. One that would go over the cap, that another account declares, that this account
//! itself declares, or that has a reserved name, is refused: never provisioned, deleted (it was made
//! moments ago by an administrator who holds no right inside it until Covenant provisions it), with
//! an Event and the condition `NamespaceSelfService` naming it and why.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::ResourceExt;

use crate::api::{
    ACCOUNT_UID_ANNOTATION, Account, NamespaceOrigin, Origin, SupportPackage, TENANT_REQUEST_LABEL,
};
use crate::status::Cond;

/// The condition that says how many namespaces the administrators may still make, and which were
/// refused.
pub const CONDITION: &str = "NamespaceSelfService";
/// How many namespaces an account may have in all when its package sets no `maxNamespaces`: the
/// tenant creates cluster-scoped objects, which no ResourceQuota bounds, so there is always a cap.
pub const DEFAULT_MAX: usize = 10;
/// The custom verb on `accounts/<name>` that lets a subject create a namespace for that account (held
/// by its administrators while the account is active and has room).
pub const VERB_CREATE: &str = "create-namespaces";
/// The custom verb on `accounts/<name>` that lets a subject give the namespace any name (held unless
/// the package requires the `<account>-` prefix).
pub const VERB_ANY_NAME: &str = "create-namespaces-any-name";
/// The custom verb on `accounts` (no name) that marks a tenant administrator: the admission policy
/// refuses namespaces without the request label from one who holds it and cannot create Accounts.
pub const VERB_TENANT: &str = "self-service";
/// The custom verb on `accounts/<name>` that lets a subject delete a namespace made for that account
/// (labelled `covenant.dev/tenant=<name>`): held by its administrators, with `delete` of the
/// self-made namespaces by name, while the account is not suspended. The deletion admission policy
/// checks it against the namespace's own label, so a name left in a stale `delete` grant (the
/// namespace deleted and made again by another account while the operator was down) deletes nothing
/// of another account's.
pub const VERB_DELETE: &str = "delete-namespaces";

/// Why a name can never be a self-made namespace, if it cannot.
pub fn reserved(name: &str) -> Option<&'static str> {
    if name == "default" {
        Some("`default` is the cluster's")
    } else if name.starts_with("kube-") {
        Some("`kube-*` names are the cluster's")
    } else if name.starts_with("covenant-") {
        Some("`covenant-*` names are Covenant's")
    } else {
        None
    }
}

/// The cap of an account on `package`: its `maxNamespaces`, or [`DEFAULT_MAX`].
pub fn cap(package: Option<&SupportPackage>) -> usize {
    package
        .and_then(|p| p.spec.max_namespaces)
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(DEFAULT_MAX)
}

/// Whether the package lets administrators create namespaces (`selfService.enabled`, default true).
pub fn enabled(package: Option<&SupportPackage>) -> bool {
    package
        .and_then(|p| p.spec.self_service.as_ref())
        .and_then(|s| s.enabled)
        .unwrap_or(true)
}

/// Whether the package requires the `<account>-` prefix.
pub fn require_prefix(package: Option<&SupportPackage>) -> bool {
    package
        .and_then(|p| p.spec.self_service.as_ref())
        .is_some_and(|s| s.require_prefix)
}

/// A namespace labelled with the account's name, as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Its resourceVersion as read (every write about it is conditional on it).
    pub resource_version: Option<String>,
    /// The Account UID it was taken for, if it was taken.
    pub uid: Option<String>,
    /// Whether it is being deleted.
    pub terminating: bool,
}

impl Candidate {
    /// The candidate view of a namespace.
    pub fn of(ns: &Namespace) -> Candidate {
        Candidate {
            name: ns.name_any(),
            created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0),
            resource_version: ns.metadata.resource_version.clone(),
            uid: ns.annotations().get(ACCOUNT_UID_ANNOTATION).cloned(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Whether `ns` asks to be a namespace of the account `account` (its request label).
pub fn requested_for(ns: &Namespace) -> Option<&str> {
    ns.labels().get(TENANT_REQUEST_LABEL).map(String::as_str)
}

/// What the operator does with an account's self-made namespaces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The self-made namespaces the account holds (taken before), not being deleted.
    pub kept: Vec<String>,
    /// Those it takes now: (name, resourceVersion read).
    pub claim: Vec<(String, Option<String>)>,
    /// Those it refuses: (name, resourceVersion read, why).
    pub refuse: Vec<(String, Option<String>, String)>,
    /// Those it neither takes nor refuses while the account is frozen (an unresolved package, too
    /// many declared namespaces; a namespace conflict alone does not freeze it).
    pub pending: Vec<String>,
    /// The account's namespaces, declared and self-made, counted against the cap.
    pub count: usize,
    /// The cap.
    pub cap: usize,
    /// Whether new ones wait because the package turned self-service off (not because the account
    /// is frozen).
    pub blocked_by_package_setting: bool,
}

impl Plan {
    /// The self-made namespaces to provision: those kept and those taken now.
    pub fn provisioned(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .kept
            .iter()
            .cloned()
            .chain(self.claim.iter().map(|(n, _)| n.clone()))
            .collect();
        v.sort();
        v
    }

    /// Whether the account has room for another namespace.
    pub fn room(&self) -> bool {
        self.count < self.cap
    }
}

/// What [`plan`] decides from.
pub struct PlanInput<'a> {
    /// The account.
    pub account: &'a Account,
    /// Its cap ([`cap`]).
    pub cap: usize,
    /// Whether the package requires the `<account>-` prefix.
    pub require_prefix: bool,
    /// Whether it may take new namespaces (it is not frozen).
    pub open: bool,
    /// The namespaces labelled with its name.
    pub candidates: &'a [Candidate],
    /// The Account that declares a name in its spec, other than this one, if any.
    pub declared_by_other: &'a dyn Fn(&str) -> Option<String>,
}

/// Which self-made namespaces the account keeps, takes and refuses (pure; see the module docs).
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let account = input.account;
    let name = account.name_any();
    let uid = account.metadata.uid.as_deref();
    let declared: BTreeSet<String> = account.desired_namespaces().into_iter().collect();
    let mut p = Plan {
        cap: input.cap,
        count: declared.len(),
        ..Default::default()
    };
    let mut open: Vec<&Candidate> = Vec::new();
    for c in input.candidates {
        match c.uid.as_deref() {
            // Taken for this Account: it counts while it exists.
            Some(u) if Some(u) == uid => {
                if !declared.contains(&c.name) {
                    p.count += 1;
                    if !c.terminating {
                        p.kept.push(c.name.clone());
                    }
                }
            }
            // Taken for another Account (a deleted one of the same name): never touched.
            Some(_) => {}
            None if c.terminating => {}
            None => open.push(c),
        }
    }
    open.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    for c in open {
        let refuse = if declared.contains(&c.name) {
            Some(format!(
                "Account {name:?} declares {:?} in spec.namespaces: Covenant creates it",
                c.name
            ))
        } else if let Some(why) = reserved(&c.name) {
            Some(format!("the name is reserved: {why}"))
        } else if let Some(other) = (input.declared_by_other)(&c.name) {
            Some(format!("Account {other:?} declares it"))
        } else if input.require_prefix && !c.name.starts_with(&format!("{name}-")) {
            Some(format!(
                "the package requires names that start with {:?}",
                format!("{name}-")
            ))
        } else if !input.open {
            p.pending.push(c.name.clone());
            None
        } else if p.count >= p.cap {
            Some(format!(
                "the account already has {} of its {} namespaces (the package's maxNamespaces, declared and self-made together): delete one, or ask the platform for a larger package",
                p.count, p.cap
            ))
        } else {
            p.count += 1;
            p.claim.push((c.name.clone(), c.resource_version.clone()));
            None
        };
        if let Some(why) = refuse {
            p.refuse
                .push((c.name.clone(), c.resource_version.clone(), why));
        }
    }
    p.kept.sort();
    p
}

/// The rules the account's `covenant-account-<name>` ClusterRole gains for self-service: while the
/// account is active (not suspended, not frozen by an unresolved package or too many namespaces)
/// and has room, `create` on namespaces with the verbs the admission policy checks; while it is not
/// suspended, `delete` of the self-made namespaces it holds, by name (RBAC cannot say "the ones you
/// made" otherwise: the list is kept current), with [`VERB_DELETE`] on its own Account. No
/// administrators: no rules.
pub fn rules(
    account: &Account,
    plan: &Plan,
    suspended: bool,
    open: bool,
    prefix: bool,
) -> Vec<PolicyRule> {
    let name = account.name_any();
    if account.spec.administrators.is_empty() || suspended {
        return Vec::new();
    }
    let mut rules = Vec::new();
    if open && plan.room() {
        let mut verbs = vec![VERB_CREATE.to_string()];
        if !prefix {
            verbs.push(VERB_ANY_NAME.to_string());
        }
        rules.extend([
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["namespaces".into()]),
                verbs: vec!["create".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![crate::api::GROUP.into()]),
                resources: Some(vec!["accounts".into()]),
                verbs: vec![VERB_TENANT.into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![crate::api::GROUP.into()]),
                resources: Some(vec!["accounts".into()]),
                resource_names: Some(vec![name.clone()]),
                verbs,
                ..Default::default()
            },
        ]);
    }
    // Only the namespaces this account holds (an empty resourceNames would allow every one), and the
    // verb the deletion policy checks against the namespace's own request label: the name alone may
    // be stale (the list is kept current by the operator, which may be down).
    if !plan.kept.is_empty() {
        rules.push(PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["namespaces".into()]),
            resource_names: Some(plan.kept.clone()),
            verbs: vec!["delete".into()],
            ..Default::default()
        });
        rules.push(PolicyRule {
            api_groups: Some(vec![crate::api::GROUP.into()]),
            resources: Some(vec!["accounts".into()]),
            resource_names: Some(vec![name]),
            verbs: vec![VERB_DELETE.into()],
            ..Default::default()
        });
    }
    rules
}

/// Every namespace of the account with its origin: `listed` (what the status lists of the declared
/// ones) and the self-made ones provisioned.
pub fn origins(listed: &[String], plan: &Plan) -> (Vec<String>, Vec<NamespaceOrigin>) {
    let mut names = listed.to_vec();
    let mut rows: Vec<NamespaceOrigin> = listed
        .iter()
        .map(|n| NamespaceOrigin {
            name: n.clone(),
            origin: Origin::Declared,
        })
        .collect();
    for n in plan.provisioned() {
        if !names.contains(&n) {
            names.push(n.clone());
            rows.push(NamespaceOrigin {
                name: n,
                origin: Origin::SelfService,
            });
        }
    }
    rows.sort();
    // Only an account with a self-made namespace says where each came from: with declared ones alone
    // the field stays out of the status, so a status write still fits the schema of a CRD that
    // predates it (an operator upgraded before its CRDs).
    if !rows.iter().any(|r| r.origin == Origin::SelfService) {
        rows.clear();
    }
    (names, rows)
}

/// The condition: how many namespaces the account has of its cap, whether its administrators may make
/// more (and how), and the namespaces refused now. A refusal stays in the message (reason `Refused`)
/// until the account's count changes, so it can be read after the Event is gone.
pub fn condition(
    account: &Account,
    plan: &Plan,
    suspended: bool,
    open: bool,
    prefix: bool,
    previous: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
) -> Cond {
    let name = account.name_any();
    let head = format!("{} of {} namespaces in use", plan.count, plan.cap);
    if !plan.refuse.is_empty() {
        let refused: Vec<String> = plan
            .refuse
            .iter()
            .map(|(n, _, why)| format!("refused namespace {n:?} (deleted): {why}"))
            .collect();
        return Cond::new(
            CONDITION,
            false,
            "Refused",
            format!("{head}; {}", refused.join("; ")),
        );
    }
    if let Some(p) = previous.filter(|p| p.reason == "Refused")
        && p.message.split(';').next() == Some(head.as_str())
    {
        return Cond::new(CONDITION, false, "Refused", p.message.clone());
    }
    let how = format!(
        "create one with the label {TENANT_REQUEST_LABEL}={name}{}",
        if prefix {
            format!(", named {name}-<something>")
        } else {
            String::new()
        }
    );
    if account.spec.administrators.is_empty() {
        Cond::new(
            CONDITION,
            false,
            "NoAdministrators",
            format!("{head}; no administrators to create namespaces"),
        )
    } else if suspended {
        Cond::new(
            CONDITION,
            false,
            "Suspended",
            format!(
                "{head}; administrators cannot create or delete namespaces while the account is suspended"
            ),
        )
    } else if !open && plan.blocked_by_package_setting {
        Cond::new(
            CONDITION,
            false,
            "Disabled",
            format!(
                "{head}; the package does not let administrators create namespaces (selfService.enabled: false)"
            ),
        )
    } else if !open {
        let pending = if plan.pending.is_empty() {
            String::new()
        } else {
            format!(
                " ({} waiting: {})",
                plan.pending.len(),
                plan.pending.join(", ")
            )
        };
        Cond::new(
            CONDITION,
            false,
            "Blocked",
            format!(
                "{head}; administrators cannot create namespaces until the account is provisioned (see Ready){pending}"
            ),
        )
    } else if plan.room() {
        Cond::new(
            CONDITION,
            true,
            "Open",
            format!(
                "{head}; the administrators may create {} more: {how}",
                plan.cap - plan.count
            ),
        )
    } else {
        Cond::new(
            CONDITION,
            false,
            "AtCapacity",
            format!(
                "{head}; the administrators may create no more (delete a self-made one, or ask the platform for a larger package)"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccountSpec, Subject, SubjectKind};

    fn account(declared: &[&str]) -> Account {
        let mut a = Account::new(
            "acme",
            AccountSpec {
                namespaces: declared.iter().map(|s| s.to_string()).collect(),
                administrators: vec![Subject {
                    kind: SubjectKind::User,
                    name: "alice".into(),
                    namespace: None,
                }],
                ..Default::default()
            },
        );
        a.metadata.uid = Some("uid-1".into());
        a
    }

    fn cand(name: &str, secs: i64, uid: Option<&str>) -> Candidate {
        Candidate {
            name: name.into(),
            created: Timestamp::from_second(secs).ok(),
            resource_version: Some(format!("rv-{name}")),
            uid: uid.map(str::to_string),
            terminating: false,
        }
    }

    fn run(a: &Account, cap: usize, open: bool, c: &[Candidate]) -> Plan {
        let other = |n: &str| (n == "taken").then(|| "other".to_string());
        plan(&PlanInput {
            account: a,
            cap,
            require_prefix: false,
            open,
            candidates: c,
            declared_by_other: &other,
        })
    }

    /// Races past the cap: the earliest (then by name) fill the room, the rest are refused, and a
    /// namespace taken before keeps its place whatever its creation time.
    #[test]
    fn cap_holds_in_creation_order() {
        let a = account(&["acme"]);
        let c = [
            cand("acme-c", 10, None),
            cand("acme-b", 10, None),
            cand("acme-a", 20, None),
            cand("acme-old", 30, Some("uid-1")),
        ];
        let p = run(&a, 3, true, &c);
        assert_eq!(p.kept, ["acme-old"]);
        assert_eq!(
            p.claim.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["acme-b"]
        );
        let refused: Vec<&str> = p.refuse.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(refused, ["acme-c", "acme-a"]);
        assert!(p.refuse[0].2.contains("3 of its 3"));
        assert_eq!(p.count, 3);
        assert!(!p.room());
        // At the cap: no create verbs; delete only of the namespace it holds (and the verb on its
        // own Account the deletion policy checks).
        let r = rules(&a, &p, false, true, false);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].verbs, [VERB_DELETE]);
        assert_eq!(r[0].verbs, ["delete"]);
        assert_eq!(
            r[0].resource_names.as_deref(),
            Some(&["acme-old".to_string()][..])
        );
    }

    /// Names another account declares, the account's own declared names and reserved names are
    /// refused whatever the room; a blocked account takes nothing new and refuses nothing for room;
    /// a namespace taken for another Account of the same name is never touched.
    #[test]
    fn refusals_and_blocked() {
        let a = account(&["acme"]);
        let c = [
            cand("taken", 1, None),
            cand("acme", 2, None),
            cand("kube-x", 3, None),
            cand("acme-new", 4, None),
            cand("acme-gone", 5, Some("uid-0")),
        ];
        let p = run(&a, 10, false, &c);
        assert_eq!(p.refuse.len(), 3);
        assert!(p.refuse[0].2.contains("\"other\" declares"));
        assert!(p.refuse[1].2.contains("declares \"acme\""));
        assert!(p.refuse[2].2.contains("reserved"));
        assert_eq!(p.pending, ["acme-new"]);
        assert!(p.claim.is_empty());
        assert_eq!(p.count, 1);
        assert!(rules(&a, &p, false, false, false).is_empty());
        let cond = condition(&a, &p, false, false, false, None);
        assert_eq!(cond.reason, "Refused");
    }

    /// While suspended, the administrators can neither create nor delete; with room they get the
    /// create verbs, and the any-name verb only without the prefix rule.
    #[test]
    fn rules_follow_state() {
        let a = account(&["acme"]);
        let c = [cand("acme-x", 1, Some("uid-1"))];
        let p = run(&a, 3, true, &c);
        assert!(rules(&a, &p, true, true, false).is_empty());
        let r = rules(&a, &p, false, true, true);
        let named = r
            .iter()
            .find(|r| r.resource_names.as_deref() == Some(&["acme".to_string()][..]))
            .unwrap();
        assert_eq!(named.verbs, [VERB_CREATE]);
        let r = rules(&a, &p, false, true, false);
        assert!(
            r.iter()
                .any(|r| r.verbs.contains(&VERB_ANY_NAME.to_string()))
        );
        let cond = condition(&a, &p, false, true, false, None);
        assert!(cond.status && cond.message.starts_with("2 of 3"));
        let (names, rows) = origins(&["acme".into()], &p);
        assert_eq!(names, ["acme", "acme-x"]);
        assert_eq!(rows[0].origin, Origin::Declared);
        assert_eq!(rows[1].origin, Origin::SelfService);
        // With declared namespaces alone, no origins are listed.
        let (names, rows) = origins(&["acme".into()], &Plan::default());
        assert_eq!(names, ["acme"]);
        assert!(rows.is_empty());
    }

    /// A package that turns self-service off grants no creation and says so; nothing is taken away.
    #[test]
    fn disabled_by_the_package() {
        let a = account(&["acme"]);
        let mut p = run(
            &a,
            3,
            false,
            &[cand("acme-x", 1, Some("uid-1")), cand("acme-y", 2, None)],
        );
        p.blocked_by_package_setting = true;
        assert_eq!(p.kept, ["acme-x"]);
        assert_eq!(p.pending, ["acme-y"]);
        let r = rules(&a, &p, false, false, false);
        assert!(
            r.iter()
                .all(|r| r.verbs == ["delete"] || r.verbs == [VERB_DELETE]),
            "{r:?}"
        );
        assert_eq!(
            condition(&a, &p, false, false, false, None).reason,
            "Disabled"
        );
    }

    /// The administrators may delete the self-made namespaces they hold, by name, and hold the verb on
    /// their own Account that the deletion policy checks against a namespace's request label; both go
    /// while the account is suspended, and neither is given when it holds no self-made namespace.
    #[test]
    fn deletion_is_granted_by_name_and_by_the_accounts_verb() {
        let a = account(&["acme"]);
        let p = run(&a, 3, true, &[cand("acme-x", 1, Some("uid-1"))]);
        for (open, prefix) in [(true, false), (true, true), (false, false)] {
            let r = rules(&a, &p, false, open, prefix);
            let by_name = r
                .iter()
                .find(|r| r.verbs == ["delete"])
                .expect("delete by name");
            assert_eq!(
                by_name.resources.as_deref(),
                Some(&["namespaces".to_string()][..])
            );
            assert_eq!(
                by_name.resource_names.as_deref(),
                Some(&["acme-x".to_string()][..])
            );
            let verb = r
                .iter()
                .find(|r| r.verbs == [VERB_DELETE])
                .expect("the deletion verb");
            assert_eq!(
                verb.api_groups.as_deref(),
                Some(&[crate::api::GROUP.to_string()][..])
            );
            assert_eq!(
                verb.resources.as_deref(),
                Some(&["accounts".to_string()][..])
            );
            assert_eq!(
                verb.resource_names.as_deref(),
                Some(&["acme".to_string()][..]),
                "only on its own Account"
            );
        }
        // Suspended: nothing.
        assert!(rules(&a, &p, true, true, false).is_empty());
        // No self-made namespace held: nothing to delete, no verb.
        let none = run(&a, 3, true, &[]);
        assert!(
            rules(&a, &none, false, true, false)
                .iter()
                .all(|r| !r.verbs.iter().any(|v| v == "delete" || v == VERB_DELETE))
        );
        // No administrators: no rules at all.
        let mut nobody = a.clone();
        nobody.spec.administrators.clear();
        assert!(rules(&nobody, &p, false, true, false).is_empty());
    }

    /// A refusal stays in the condition until the count changes.
    #[test]
    fn refusal_is_remembered() {
        let a = account(&["acme"]);
        let p = run(&a, 1, true, &[cand("acme-x", 1, None)]);
        let refused = condition(&a, &p, false, true, false, None);
        let prev = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: CONDITION.into(),
            status: "False".into(),
            reason: refused.reason.clone(),
            message: refused.message.clone(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        };
        let later = run(&a, 1, true, &[]);
        let c = condition(&a, &later, false, true, false, Some(&prev));
        assert_eq!(c.message, refused.message);
        let c = condition(&a, &run(&a, 2, true, &[]), false, true, false, Some(&prev));
        assert_eq!(c.reason, "Open");
    }
}
