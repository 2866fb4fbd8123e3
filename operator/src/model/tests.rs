//! Unit tests of the pure stages, with an injected `now`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};
use kube::ResourceExt;

use super::account::{self, BuildInput};
use super::{notice, package};
use crate::api::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

fn pkg(name: &str, default: bool) -> SupportPackage {
    SupportPackage::new(
        name,
        SupportPackageSpec {
            default,
            quota: Some(BTreeMap::from([
                ("pods".into(), q("10")),
                ("requests.cpu".into(), q("2")),
            ])),
            limits: Some(LimitsSpec {
                default: Some(BTreeMap::from([("cpu".into(), q("500m"))])),
                ..Default::default()
            }),
            max_namespaces: Some(2),
            ..Default::default()
        },
    )
}

fn acct(name: &str) -> Account {
    let mut a = Account::new(
        name,
        AccountSpec {
            administrators: vec![Subject {
                kind: SubjectKind::User,
                name: "alice".into(),
                namespace: None,
            }],
            allowed_subjects: vec![Subject {
                kind: SubjectKind::ServiceAccount,
                name: "ci".into(),
                namespace: Some("tools".into()),
            }],
            retention_months: 13,
            ..Default::default()
        },
    );
    a.metadata.creation_timestamp = Some(Time(at("2026-11-01T00:00:00Z")));
    a.metadata.generation = Some(1);
    a
}

fn input<'a>(a: &Account, p: &'a SupportPackage, suspended: bool, scale: bool) -> BuildInput<'a> {
    BuildInput {
        package: Some(p),
        suspended,
        scale_workloads: scale,
        namespaces: a.desired_namespaces(),
        operator: None,
        notices: Vec::new(),
        self_service: Vec::new(),
    }
}

#[test]
fn build_makes_every_object_per_namespace_with_the_overrides_on_top() {
    let mut a = acct("acme");
    a.spec.namespaces = vec!["acme-prod".into(), "acme-dev".into()];
    a.spec.quota = Some(BTreeMap::from([("pods".into(), q("30"))]));
    let p = pkg("standard", true);
    let d = account::build(&a, &input(&a, &p, false, false));
    assert_eq!(d.namespaces.len(), 2);
    // Per namespace: the bounds quota and the package's quota.
    assert_eq!(d.quotas.len(), 4);
    assert_eq!(d.limit_ranges.len(), 2);
    assert_eq!(d.network_policies.len(), 6);
    assert_eq!(d.role_bindings.len(), 2);
    let quota = d
        .quotas
        .iter()
        .find(|q| q.metadata.name.as_deref() == Some(account::QUOTA_NAME))
        .unwrap();
    let hard = quota.spec.as_ref().unwrap().hard.as_ref().unwrap();
    assert_eq!(hard["pods"], q("30"), "the account's override wins");
    assert_eq!(
        hard["requests.cpu"],
        q("2"),
        "the package's other entries stay"
    );
    for ns in &d.namespaces {
        let labels = ns.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[ACCOUNT_LABEL], "acme");
        let ann = ns.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann[account::ALLOWED_SUBJECTS_ANNOTATION],
            "ServiceAccount:tools:ci\nUser:alice"
        );
        assert_eq!(ann[account::NAMESPACES_ANNOTATION], "acme-prod,acme-dev");
    }
    let rb = &d.role_bindings[0];
    assert_eq!(rb.role_ref.name, account::TENANT_ADMIN_ROLE);
    assert_eq!(
        rb.subjects.as_ref().unwrap().len(),
        1,
        "only administrators get the admin role"
    );
}

#[test]
fn sip_egress_is_denied_unless_telephony_is_permitted() {
    let p = pkg("standard", true);
    let mut a = acct("acme");
    let d = account::build(&a, &input(&a, &p, false, false));
    let egress = d
        .network_policies
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(account::EGRESS_POLICY))
        .unwrap();
    let to = egress.spec.as_ref().unwrap().egress.as_ref().unwrap()[0]
        .to
        .clone()
        .unwrap();
    assert!(
        to.iter().any(
            |p| p.ip_block.as_ref().is_some_and(|b| b.cidr == "0.0.0.0/0"
                && b.except
                    .as_ref()
                    .is_some_and(|e| e.contains(&"169.254.0.0/16".to_string())))
        ),
        "cloud metadata (169.254.0.0/16) is excluded: {to:?}"
    );
    let ports = egress.spec.as_ref().unwrap().egress.as_ref().unwrap()[0]
        .ports
        .clone()
        .unwrap();
    for proto in ["TCP", "UDP", "SCTP"] {
        let covered = |port: i32| {
            ports.iter().any(|p| {
                p.protocol.as_deref() == Some(proto)
                    && match &p.port {
                        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                            lo,
                        )) => port >= *lo && port <= p.end_port.unwrap_or(*lo),
                        _ => false,
                    }
            })
        };
        assert!(
            !covered(5060) && !covered(5061),
            "{proto} SIP must not be allowed"
        );
        assert!(covered(53) && covered(443) && covered(5059) && covered(5062) && covered(65535));
    }
    a.spec.network = Some(NetworkSpec { telephony: true });
    let d = account::build(&a, &input(&a, &p, false, false));
    let egress = d
        .network_policies
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(account::EGRESS_POLICY))
        .unwrap();
    assert_eq!(
        egress.spec.as_ref().unwrap().egress.as_ref().unwrap()[0].ports,
        None,
        "all egress allowed"
    );
}

#[test]
fn suspension_swaps_the_binding_and_leaves_only_freeze_and_deny_all() {
    let p = pkg("standard", true);
    let a = acct("acme");
    let d = account::build(&a, &input(&a, &p, true, true));
    assert_eq!(
        d.role_bindings[0].role_ref.name,
        account::TENANT_READONLY_ROLE
    );
    assert!(
        d.quotas
            .iter()
            .any(|q| q.metadata.name.as_deref() == Some(account::FREEZE_QUOTA_NAME))
    );
    // Policies add up: while suspended the deny-all must be the only one, or any allow policy would
    // let traffic through.
    assert_eq!(d.network_policies.len(), 1);
    let deny = &d.network_policies[0];
    assert_eq!(
        deny.metadata.name.as_deref(),
        Some(account::SUSPENSION_POLICY)
    );
    assert_eq!(
        d.namespaces[0].metadata.labels.as_ref().unwrap()[READ_ONLY_LABEL],
        "suspended"
    );
    let spec = deny.spec.as_ref().unwrap();
    assert_eq!(spec.ingress, None);
    assert_eq!(spec.egress, None);
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    assert!(
        d.namespaces[0]
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(account::SCALED_MARKER)
    );
}

#[test]
fn no_administrators_means_no_binding_rather_than_an_empty_one() {
    let p = pkg("standard", true);
    let mut a = acct("acme");
    a.spec.administrators.clear();
    let d = account::build(&a, &input(&a, &p, false, false));
    assert!(d.role_bindings.is_empty());
}

#[test]
fn package_resolution_explains_each_failure() {
    let a = acct("acme");
    assert_eq!(
        package::resolve(&a, &[pkg("standard", true), pkg("premium", false)])
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("standard")
    );
    assert_eq!(
        package::resolve(&a, &[pkg("premium", false)]),
        Err(package::PackageError::NoDefault)
    );
    let two = package::resolve(&a, &[pkg("a", true), pkg("b", true)]).unwrap_err();
    assert!(two.to_string().contains("a, b"), "{two}");
    let mut named = acct("x");
    named.spec.support_package = Some("gold".into());
    assert_eq!(
        package::resolve(&named, &[pkg("standard", true)]),
        Err(package::PackageError::NotFound("gold".into()))
    );
}

#[test]
fn max_namespaces_caps_the_account() {
    let mut a = acct("acme");
    a.spec.namespaces = vec!["a".into(), "b".into(), "c".into()];
    let errs = account::validate_on_package(&a, &pkg("standard", true));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("at most 2"), "{}", errs[0]);
}

#[test]
fn access_review_flips_right_after_thirty_days() {
    let mut a = acct("acme");
    a.spec.access_review = Some(AccessReviewSpec {
        last_reviewed_at: Some(Time(at("2026-11-10T00:00:00Z"))),
    });
    let (c, due, next) = account::access_review(&a, at("2026-12-10T00:00:00Z"));
    assert!(c.status, "exactly 30 days is still current");
    assert_eq!(due, at("2026-12-10T00:00:00Z"));
    let next = next.unwrap();
    let (c, _, _) = account::access_review(&a, next);
    assert!(!c.status);
    assert!(
        c.message.contains("lastReviewedAt"),
        "the message says how to fix it: {}",
        c.message
    );
}

fn amendment(served: &str, effective: &str) -> DeprecationNotice {
    let mut n = DeprecationNotice::new(
        "dpa",
        DeprecationNoticeSpec {
            notice_type: NoticeType::Amendment,
            summary: "s".into(),
            url: None,
            service: None,
            replacement: None,
            effective_at: Time(at(effective)),
            served_at: Some(Time(at(served))),
            exemption: None,
            accounts: None,
        },
    );
    n.metadata.generation = Some(1);
    n
}

/// A notice's status with the accounts' platform-recorded answers only.
fn eval(n: &DeprecationNotice, accounts: &[Account], now: Timestamp) -> notice::NoticeOutcome {
    let answers: Vec<Vec<notice::Answer>> = accounts
        .iter()
        .map(|a| notice::answers(a, [], |_| false))
        .collect();
    notice::evaluate(
        n,
        accounts.iter().zip(answers.iter().map(Vec::as_slice)),
        now,
    )
}

fn respond(a: &mut Account, decision: ResponseDecision, when: &str) {
    a.spec.notice_responses.push(RecordedResponse {
        notice: "dpa".into(),
        decision,
        at: Time(at(when)),
    });
}

#[test]
fn amendment_deemed_accepted_exactly_at_the_deadline_and_rejections_stay() {
    let n = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let silent = acct("silent");
    let mut rejecter = acct("rejecter");
    respond(
        &mut rejecter,
        ResponseDecision::Reject,
        "2026-11-15T00:00:00Z",
    );
    let mut late = acct("late");
    respond(&mut late, ResponseDecision::Reject, "2026-12-01T00:00:01Z");
    let accounts = vec![silent, rejecter, late];

    let before = eval(&n, &accounts, at("2026-11-30T23:59:59Z"));
    // Each account's decision is on the account (its status.notices row); the notice counts them.
    let decisions = |now: &str| {
        accounts
            .iter()
            .map(|a| {
                let answers = notice::answers(a, [], |_| false);
                let (rows, _) =
                    notice::account_notices(a, std::slice::from_ref(&n), &answers, at(now));
                (a.name_any(), rows[0].decision)
            })
            .collect::<std::collections::BTreeMap<String, Decision>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        before.status.counts,
        Some(DecisionCounts {
            pending: 2,
            accepted: 0,
            deemed_accepted: 0,
            rejected: 1
        }),
        "counts before the deadline"
    );
    assert_eq!(
        decisions("2026-11-30T23:59:59Z"),
        vec![
            ("late".into(), Decision::Pending),
            ("rejecter".into(), Decision::Rejected),
            ("silent".into(), Decision::Pending)
        ]
    );
    assert_eq!(
        before.next_change,
        Some(at("2026-12-01T00:00:00Z")),
        "requeue exactly at the deadline"
    );
    assert!(
        before
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Effective" && c.status == "False")
    );

    let after = eval(&n, &accounts, at("2026-12-01T00:00:00Z"));
    assert_eq!(
        decisions("2026-12-01T00:00:00Z"),
        vec![
            ("late".into(), Decision::DeemedAccepted),
            ("rejecter".into(), Decision::Rejected),
            ("silent".into(), Decision::DeemedAccepted)
        ]
    );
    assert!(
        after
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Effective" && c.status == "True")
    );
    let counts = after.status.counts.unwrap();
    assert_eq!(
        (counts.pending, counts.rejected, counts.deemed_accepted),
        (0, 1, 2)
    );

    let answers = notice::answers(&accounts[2], [], |_| false);
    let (rows, _) = notice::account_notices(
        &accounts[2],
        std::slice::from_ref(&n),
        &answers,
        at("2026-12-02T00:00:00Z"),
    );
    assert!(
        rows[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("deadline"),
        "late rejection is reported: {:?}",
        rows[0].message
    );
}

#[test]
fn too_short_discontinuation_names_the_earliest_lawful_instant() {
    let mut n = amendment("2026-08-31T00:00:00Z", "2026-12-01T00:00:00Z");
    n.spec.notice_type = NoticeType::Discontinuation;
    n.spec.service = Some("voice".into());
    let o = eval(&n, &[], at("2026-09-01T00:00:00Z"));
    let w = o
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == notice::NOTICE_WINDOW_SATISFIED)
        .unwrap();
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("False", "WindowTooShort")
    );
    assert!(w.message.contains("2027-02-28T00:00:00Z"), "{}", w.message);
    assert_eq!(
        o.status.enforced_effective_at,
        Some(Time(at("2027-02-28T00:00:00Z")))
    );
    assert!(!o.errors.is_empty());

    n.spec.exemption = Some(Exemption::SecurityRisk);
    let o = eval(&n, &[], at("2026-09-01T00:00:00Z"));
    let w = o
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == notice::NOTICE_WINDOW_SATISFIED)
        .unwrap();
    assert_eq!((w.status.as_str(), w.reason.as_str()), ("True", "Exempt"));
    assert_eq!(
        o.status.enforced_effective_at,
        Some(Time(at("2026-12-01T00:00:00Z")))
    );
}

#[test]
fn served_at_is_recorded_once_and_never_moves() {
    let mut n = amendment("2026-11-01T00:00:00Z", "2027-01-01T00:00:00Z");
    n.spec.served_at = None;
    let first = eval(&n, &[], at("2026-11-05T10:00:00Z"));
    assert_eq!(
        first.status.served_at,
        Some(Time(at("2026-11-05T10:00:00Z")))
    );
    n.status = Some(first.status.clone());
    let later = eval(&n, &[], at("2026-11-20T00:00:00Z"));
    assert_eq!(later.status.served_at, first.status.served_at);
    assert_eq!(
        later.status, first.status,
        "nothing changes at rest: no write"
    );
}

#[test]
fn served_in_the_future_is_invalid_until_then() {
    let n = amendment("2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z");
    let o = eval(&n, &[], at("2026-12-01T00:00:00Z"));
    assert!(o.errors.iter().any(|e| e.contains("in the future")));
    assert_eq!(o.next_change, Some(at("2027-01-01T00:00:00Z")));
}

#[test]
fn selector_limits_the_accounts_and_terms_current_reports_them() {
    let mut n = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    n.spec.accounts = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("region".into(), "eu".into())])),
        match_expressions: None,
    });
    let mut eu = acct("eu-tenant");
    eu.metadata.labels = Some(BTreeMap::from([("region".into(), "eu".into())]));
    let us = acct("us-tenant");
    let o = eval(&n, &[eu.clone(), us.clone()], at("2026-11-10T00:00:00Z"));
    assert_eq!(
        o.status.counts.as_ref().map(|c| c.pending),
        Some(1),
        "only eu counts"
    );
    let (rows, _) = notice::account_notices(&us, &[n.clone()], &[], at("2026-11-10T00:00:00Z"));
    assert!(rows.is_empty());
    assert!(notice::terms_current(&rows).status);
    let (rows, _) = notice::account_notices(&eu, &[n], &[], at("2026-11-10T00:00:00Z"));
    let c = notice::terms_current(&rows);
    assert_eq!((c.status, c.reason.as_str()), (false, "NoticePending"));
}

fn rb(
    ns: &str,
    subjects: &[(&str, &str, Option<&str>)],
) -> k8s_openapi::api::rbac::v1::RoleBinding {
    k8s_openapi::api::rbac::v1::RoleBinding {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("mine".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        subjects: Some(
            subjects
                .iter()
                .map(|(k, n, ns)| k8s_openapi::api::rbac::v1::Subject {
                    kind: (*k).into(),
                    name: (*n).into(),
                    namespace: ns.map(Into::into),
                    api_group: None,
                })
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn withdrawn_subjects_are_those_the_admission_policy_would_refuse_now() {
    let a = acct("acme");
    let allowed = account::allowed_subjects(&a);
    let tenant = vec!["acme".to_string(), "acme-dev".to_string()];
    let b = rb(
        "acme",
        &[
            ("User", "alice", None),
            ("User", "bob", None),
            ("ServiceAccount", "builder", None),
            ("ServiceAccount", "builder", Some("acme-dev")),
            ("ServiceAccount", "ci", Some("tools")),
            ("ServiceAccount", "other", Some("tools")),
            ("Group", "alice", None),
        ],
    );
    let names: Vec<String> = account::withdrawn_subjects(&b, &allowed, &tenant)
        .iter()
        .map(|s| format!("{}:{}", s.kind, s.name))
        .collect();
    assert_eq!(
        names,
        ["User:bob", "ServiceAccount:other", "Group:alice"],
        "an administrator, the tenant's own ServiceAccounts and allowed subjects stay"
    );
    assert_eq!(
        account::enforced_marker(&allowed, &tenant),
        account::enforced_marker(&account::allowed_subjects(&a), &tenant)
    );
    let mut b2 = a.clone();
    b2.spec.allowed_subjects.clear();
    assert_ne!(
        account::enforced_marker(&allowed, &tenant),
        account::enforced_marker(&account::allowed_subjects(&b2), &tenant),
        "a withdrawn subject changes the marker, so the bindings are swept again"
    );
    assert_ne!(
        account::enforced_marker(&allowed, &tenant),
        account::enforced_marker(&allowed, &tenant[..1]),
        "so does a namespace dropped from the account (its ServiceAccounts no longer pass)"
    );
}

#[test]
fn a_namespace_is_owned_only_by_the_account_uid_it_was_created_for() {
    let mut a = acct("acme");
    a.metadata.uid = Some("uid-1".into());
    let p = pkg("standard", true);
    let d = account::build(&a, &input(&a, &p, false, false));
    let ns = d.namespaces[0].clone();
    assert!(account::owns(&a, &ns));
    assert_eq!(account::ownership_conflict(&a, &ns), None);
    // The same name, a new Account: the retained namespace of the deleted one is not adopted.
    let mut again = a.clone();
    again.metadata.uid = Some("uid-2".into());
    let mut retained = ns.clone();
    retained
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(RETAINED_UNTIL_LABEL.into(), "1".into());
    let why = account::ownership_conflict(&again, &retained).unwrap();
    assert!(why.contains("retained from a deleted Account"), "{why}");
    // A label without the UID annotation is a forgery (or a namespace made by hand).
    let mut forged = ns.clone();
    forged
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(ACCOUNT_UID_ANNOTATION);
    assert!(!account::owns(&a, &forged));
    let why = account::ownership_conflict(&a, &forged).unwrap();
    assert!(why.contains("not created by Covenant"), "{why}");
    let mut foreign = ns.clone();
    foreign.metadata.labels = None;
    assert!(account::ownership_conflict(&a, &foreign).is_some());
}

#[test]
fn isolation_admits_the_tenant_by_namespace_name_and_the_platform_by_selector() {
    let mut a = acct("acme");
    a.spec.namespaces = vec!["acme".into(), "acme-dev".into()];
    let mut p = pkg("standard", true);
    let platform = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".into(),
            "ingress".into(),
        )])),
        match_expressions: None,
    };
    let forgeable = LabelSelector {
        match_labels: Some(BTreeMap::from([("team".into(), "platform".into())])),
        match_expressions: None,
    };
    p.spec.network = Some(PackageNetwork {
        ingress_from: vec![platform.clone(), forgeable],
        ..Default::default()
    });
    p.spec.pod_security = PodSecurityLevel::Baseline;
    let d = account::build(&a, &input(&a, &p, false, false));
    let iso = d
        .network_policies
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(account::ISOLATION_POLICY))
        .unwrap();
    let from = iso.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
        .from
        .clone()
        .unwrap();
    let own = from[0].namespace_selector.as_ref().unwrap();
    assert_eq!(own.match_labels, None, "no label a namespace could copy");
    let req = &own.match_expressions.as_ref().unwrap()[0];
    assert_eq!(req.key, "kubernetes.io/metadata.name");
    assert_eq!(req.values.as_deref().unwrap(), ["acme", "acme-dev"]);
    // The platform's selector, narrowed to namespaces of no account: a tenant namespace that happens
    // to carry the platform namespace's name is no platform namespace.
    let mut narrowed = platform.clone();
    narrowed.match_expressions = Some(vec![LabelSelectorRequirement {
        key: "covenant.dev/account".into(),
        operator: "DoesNotExist".into(),
        values: None,
    }]);
    assert_eq!(from[1].namespace_selector.as_ref(), Some(&narrowed));
    // A selector on a label anyone who may patch a namespace can set is not applied.
    assert_eq!(
        from.len(),
        2,
        "the forgeable selector is left out: {from:?}"
    );
    let labels = d.namespaces[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels[account::POD_SECURITY_ENFORCE], "baseline");
    assert_eq!(labels[account::POD_SECURITY_WARN], "restricted");
    assert!(!labels.contains_key(READ_ONLY_LABEL));
}

#[test]
fn guardrails_are_built_without_a_package_and_the_package_objects_are_left_alone() {
    let a = acct("acme");
    let d = account::build(
        &a,
        &BuildInput {
            package: None,
            suspended: true,
            scale_workloads: false,
            namespaces: a.desired_namespaces(),
            operator: None,
            notices: Vec::new(),
            self_service: Vec::new(),
        },
    );
    assert_eq!(
        d.quotas
            .iter()
            .map(|q| q.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        [account::BOUNDS_QUOTA_NAME, account::FREEZE_QUOTA_NAME]
    );
    assert!(d.limit_ranges.is_empty());
    assert!(d.untouched.contains(account::QUOTA_NAME));
    assert!(d.untouched.contains(account::LIMITS_NAME));
    assert_eq!(d.network_policies.len(), 1);
    assert_eq!(
        d.namespaces[0].metadata.labels.as_ref().unwrap()[account::POD_SECURITY_ENFORCE],
        "restricted"
    );
}

#[test]
fn the_operator_is_bound_in_each_namespace_to_edit_tenant_bindings() {
    let a = acct("acme");
    let p = pkg("standard", true);
    let op = k8s_openapi::api::rbac::v1::Subject {
        kind: "ServiceAccount".into(),
        name: "covenant".into(),
        namespace: Some("covenant-system".into()),
        api_group: None,
    };
    let mut i = input(&a, &p, false, false);
    i.operator = Some(&op);
    let d = account::build(&a, &i);
    let b = d
        .role_bindings
        .iter()
        .find(|b| b.metadata.name.as_deref() == Some(account::OPERATOR_BINDING))
        .unwrap();
    assert_eq!(b.role_ref.name, account::OPERATOR_TENANT_ROLE);
    assert_eq!(b.subjects.as_deref(), Some(&[op][..]));
}

#[test]
fn a_retained_namespace_keeps_only_the_administrators_in_tenant_bindings() {
    let a = acct("acme");
    let admins = account::subject_tokens(a.spec.administrators.iter());
    let b = rb(
        "acme",
        &[
            ("User", "alice", None),
            ("ServiceAccount", "builder", None),
            ("ServiceAccount", "ci", Some("tools")),
        ],
    );
    // No tenant namespace passes: the tenant's own ServiceAccounts and the allowed subjects go too.
    let names: Vec<String> = account::withdrawn_subjects(&b, &admins, &[])
        .iter()
        .map(|s| format!("{}:{}", s.kind, s.name))
        .collect();
    assert_eq!(names, ["ServiceAccount:builder", "ServiceAccount:ci"]);
}

fn tenant_response(
    ns: &str,
    name: &str,
    decision: ResponseDecision,
    created: &str,
) -> NoticeResponse {
    let mut r = NoticeResponse::new(
        name,
        NoticeResponseSpec {
            notice: "dpa".into(),
            decision,
        },
    );
    r.metadata.namespace = Some(ns.into());
    r.metadata.creation_timestamp = Some(Time(at(created)));
    r.metadata.generation = Some(1);
    r
}

/// The notice after its first reconcile at `now` (its status recorded).
fn served(mut n: DeprecationNotice, now: &str) -> DeprecationNotice {
    n.status = Some(eval(&n, &[], at(now)).status);
    n
}

#[test]
fn a_servedat_added_later_never_moves_the_recorded_service() {
    // First seen on 03-01 without servedAt, effective 03-10: enforced at 03-31, reject by 03-31.
    let mut n = amendment("2026-03-01T00:00:00Z", "2026-03-10T00:00:00Z");
    n.spec.served_at = None;
    let n = served(n, "2026-03-01T00:00:00Z");
    let mut edited = n.clone();
    // The API server refuses this edit (CEL); were it stored anyway, the recorded instant wins.
    edited.spec.served_at = Some(Time(at("2026-01-01T00:00:00Z")));
    let o = eval(&edited, &[], at("2026-03-05T00:00:00Z"));
    assert_eq!(o.status.served_at, Some(Time(at("2026-03-01T00:00:00Z"))));
    assert_eq!(
        o.status.rejection_deadline,
        Some(Time(at("2026-03-31T00:00:00Z")))
    );
    // A future value does not wipe it either.
    edited.spec.served_at = Some(Time(at("2027-01-01T00:00:00Z")));
    let o = eval(&edited, &[], at("2026-03-05T00:00:00Z"));
    assert_eq!(o.status.served_at, Some(Time(at("2026-03-01T00:00:00Z"))));
    assert!(
        !o.errors.iter().any(|e| e.contains("in the future")),
        "{:?}",
        o.errors
    );
}

#[test]
fn moving_effective_at_earlier_serves_the_notice_again() {
    // Served 03-01 for 06-01; on 04-15 moved to 04-01.
    let n = served(
        amendment("2026-03-01T00:00:00Z", "2026-06-01T00:00:00Z"),
        "2026-03-01T00:00:00Z",
    );
    assert_eq!(
        n.status.as_ref().unwrap().served_for,
        Some(Time(at("2026-06-01T00:00:00Z")))
    );
    let silent = acct("silent");
    let mut moved = n.clone();
    moved.spec.effective_at = Time(at("2026-04-01T00:00:00Z"));
    let now = at("2026-04-15T00:00:00Z");
    let o = eval(&moved, std::slice::from_ref(&silent), now);
    // Not deemed accepted at once: served again on 04-15, so 30 days from then.
    assert_eq!(o.status.reserved_at, Some(Time(now)));
    assert_eq!(o.status.served_at, Some(Time(at("2026-03-01T00:00:00Z"))));
    assert_eq!(
        o.status.rejection_deadline,
        Some(Time(at("2026-05-15T00:00:00Z")))
    );
    assert_eq!(
        o.status.enforced_effective_at,
        Some(Time(at("2026-05-15T00:00:00Z")))
    );
    assert_eq!(o.status.counts.as_ref().map(|c| c.pending), Some(1));
    let w = o
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == notice::NOTICE_WINDOW_SATISFIED)
        .unwrap();
    assert!(
        w.message.contains("served again at 2026-04-15"),
        "{}",
        w.message
    );
    // Recorded: later reconciles keep the same window and write nothing new.
    moved.status = Some(o.status.clone());
    let again = eval(
        &moved,
        std::slice::from_ref(&silent),
        at("2026-04-20T00:00:00Z"),
    );
    assert_eq!(again.status.reserved_at, o.status.reserved_at);
    assert_eq!(again.status.rejection_deadline, o.status.rejection_deadline);
    // The account's own view agrees, even before the notice's status records the new service.
    let (rows, _) = notice::account_notices(&silent, std::slice::from_ref(&moved), &[], now);
    assert_eq!(
        rows[0].rejection_deadline,
        Some(Time(at("2026-05-15T00:00:00Z")))
    );
    // Moving it later is no new service.
    let mut later = n.clone();
    later.spec.effective_at = Time(at("2026-07-01T00:00:00Z"));
    let o = eval(&later, &[], now);
    assert_eq!(o.status.reserved_at, None);
    assert_eq!(o.status.served_for, Some(Time(at("2026-07-01T00:00:00Z"))));
}

#[test]
fn a_notice_in_effect_is_not_served_again() {
    let n = served(
        amendment("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        "2026-03-01T00:00:00Z",
    );
    let mut moved = n;
    moved.spec.effective_at = Time(at("2026-03-31T00:00:00Z"));
    let o = eval(&moved, &[], at("2026-04-02T00:00:00Z"));
    assert_eq!(o.status.reserved_at, None);
    assert!(
        o.status
            .conditions
            .iter()
            .any(|c| c.type_ == notice::EFFECTIVE && c.status == "True")
    );
}

#[test]
fn a_notice_in_effect_moved_earlier_keeps_its_rejection_deadline() {
    // Served 03-01 for 04-15; rejected on 04-10; in effect on 04-15; on 04-20 moved to 03-31.
    let n = served(
        amendment("2026-03-01T00:00:00Z", "2026-04-15T00:00:00Z"),
        "2026-03-01T00:00:00Z",
    );
    let mut rejecter = acct("rejecter");
    respond(
        &mut rejecter,
        ResponseDecision::Reject,
        "2026-04-10T00:00:00Z",
    );
    let mut moved = n;
    moved.spec.effective_at = Time(at("2026-03-31T00:00:00Z"));
    let now = at("2026-04-20T00:00:00Z");
    let o = eval(&moved, std::slice::from_ref(&rejecter), now);
    assert_eq!(o.status.reserved_at, None);
    assert_eq!(
        o.status.rejection_deadline,
        Some(Time(at("2026-04-15T00:00:00Z")))
    );
    assert_eq!(o.status.counts.as_ref().map(|c| c.rejected), Some(1));
    let answers = notice::answers(&rejecter, [], |_| false);
    let (rows, _) = notice::account_notices(&rejecter, std::slice::from_ref(&moved), &answers, now);
    assert_eq!(rows[0].decision, Decision::Rejected);
}

#[test]
fn an_exemption_on_an_amendment_is_an_error_and_shortens_nothing() {
    let mut n = amendment("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z");
    n.spec.exemption = Some(Exemption::LegalRequirement);
    let o = eval(&n, &[], at("2026-03-02T00:00:00Z"));
    assert!(
        o.errors.iter().any(|e| e.contains("§2.3")),
        "{:?}",
        o.errors
    );
    assert_eq!(
        o.status.enforced_effective_at,
        Some(Time(at("2026-03-31T00:00:00Z")))
    );
}

#[test]
fn tenants_answer_in_their_namespaces_and_the_latest_answer_by_the_deadline_stands() {
    let n = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let a = acct("acme");
    let responses = [
        tenant_response(
            "acme",
            "first",
            ResponseDecision::Accept,
            "2026-11-05T00:00:00Z",
        ),
        tenant_response(
            "acme",
            "second",
            ResponseDecision::Reject,
            "2026-11-20T00:00:00Z",
        ),
        // After the deadline: not honoured.
        tenant_response(
            "acme",
            "late",
            ResponseDecision::Accept,
            "2026-12-01T00:00:01Z",
        ),
        // Another tenant's namespace: not this account's answer.
        tenant_response(
            "other",
            "forged",
            ResponseDecision::Accept,
            "2026-11-25T00:00:00Z",
        ),
    ];
    let owns = |ns: &str| ns == "acme";
    let answers = notice::answers(&a, &responses, owns);
    assert_eq!(answers.len(), 3);
    let now = at("2026-12-02T00:00:00Z");
    let o = notice::evaluate(&n, [(&a, answers.as_slice())], now);
    assert_eq!(o.status.counts.as_ref().map(|c| c.rejected), Some(1));
    let (rows, _) = notice::account_notices(&a, std::slice::from_ref(&n), &answers, now);
    assert_eq!(rows[0].decision, Decision::Rejected);
    assert_eq!(rows[0].answered_by.as_deref(), Some("acme/second"));
    assert_eq!(rows[0].summary.as_deref(), Some("s"));

    let reason = |r: &NoticeResponse| {
        let (s, _) = notice::response_status(r, Some(&a), Some(&n), &answers, now);
        let c = s.conditions[0].clone();
        (c.status, c.reason)
    };
    assert_eq!(reason(&responses[0]), ("False".into(), "Superseded".into()));
    assert_eq!(reason(&responses[1]), ("True".into(), "Stands".into()));
    assert_eq!(
        reason(&responses[2]),
        ("False".into(), "AfterDeadline".into())
    );
    // A namespace of no account, a notice that does not exist.
    let (s, _) = notice::response_status(&responses[3], None, Some(&n), &[], now);
    assert_eq!(s.conditions[0].reason, "NoAccount");
    let (s, _) = notice::response_status(&responses[1], Some(&a), None, &answers, now);
    assert_eq!(s.conditions[0].reason, "UnknownNotice");
}

#[test]
fn the_access_review_lists_who_may_hold_access_through_what() {
    let mut a = acct("acme");
    a.spec.organization = Some(OrganizationSpec {
        domains: vec!["acme.example".into()],
    });
    let (c, _, _) = account::access_review(&a, at("2026-11-02T00:00:00Z"));
    for part in [
        "administrators (covenant-tenant-admin, granted by the platform): User:alice",
        "consented third parties (spec.allowedSubjects, bound by the administrators): ServiceAccount:tools:ci",
        "the organization's people (spec.organization.domains, granted and ended by the administrators): *@acme.example",
    ] {
        assert!(c.message.contains(part), "{part:?} not in {:?}", c.message);
    }
}

fn egress_blocks(d: &account::Desired) -> BTreeMap<String, Vec<String>> {
    let egress = d
        .network_policies
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(account::EGRESS_POLICY))
        .unwrap();
    egress.spec.as_ref().unwrap().egress.as_ref().unwrap()[0]
        .to
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|p| p.ip_block.as_ref())
        .map(|b| (b.cidr.clone(), b.except.clone().unwrap_or_default()))
        .collect()
}

/// Whether `ip` is in any of `cidrs` (as a NetworkPolicy engine matches an ipBlock's except).
fn in_any(ip: &str, cidrs: &[String]) -> bool {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let host = match ip {
        std::net::IpAddr::V4(_) => format!("{ip}/32"),
        std::net::IpAddr::V6(_) => format!("{ip}/128"),
    };
    let host = account::Cidr::parse(&host).unwrap();
    cidrs
        .iter()
        .any(|c| account::Cidr::parse(c).unwrap().contains(host))
}

#[test]
fn egress_anywhere_excludes_every_metadata_address_in_its_own_family() {
    let mut p = pkg("standard", true);
    p.spec.network = Some(PackageNetwork {
        // Host bits set, and a range the default already covers: both taken as the API server would
        // accept them, masked, without duplicates.
        denied_cidrs: vec![
            "10.20.30.40/16".into(),
            "fd12:3456::1/48".into(),
            "169.254.169.254/32".into(),
        ],
        ..Default::default()
    });
    let a = acct("acme");
    let blocks = egress_blocks(&account::build(&a, &input(&a, &p, false, false)));
    assert_eq!(blocks.len(), 2, "one IPv4 and one IPv6 block: {blocks:?}");
    let (v4, v6) = (&blocks["0.0.0.0/0"], &blocks["::/0"]);
    for ip in [
        "169.254.169.254",
        "169.254.0.1",
        "100.100.100.200",
        "10.20.0.1",
    ] {
        assert!(in_any(ip, v4), "{ip} excluded from 0.0.0.0/0: {v4:?}");
    }
    for ip in [
        "fd00:ec2::254",
        "fd00:c1::a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "fd20:ce::254",
        "fe80::1",
        "fd12:3456:0:1::1",
        // The NAT64 forms of every IPv4 range denied, the package's too.
        "64:ff9b::6464:64c8",
        "64:ff9b::a9fe:1",
        "64:ff9b::a14:1",
    ] {
        assert!(in_any(ip, v6), "{ip} excluded from ::/0: {v6:?}");
    }
    for ip in ["93.184.216.34", "100.100.100.201", "10.21.0.1"] {
        assert!(!in_any(ip, v4), "{ip} stays reachable: {v4:?}");
    }
    for ip in ["2606:4700::1111", "64:ff9b::5db8:d822"] {
        assert!(!in_any(ip, v6), "{ip} stays reachable: {v6:?}");
    }
    assert!(
        v4.iter().chain(v6).all(|c| {
            let parsed = account::Cidr::parse(c).unwrap();
            parsed.to_string() == *c
        }),
        "every except is canonical: {v4:?} {v6:?}"
    );
    assert_eq!(
        v4.iter().filter(|c| c.starts_with("169.254.")).count(),
        1,
        "a range inside another is not listed twice: {v4:?}"
    );
}

#[test]
fn the_default_metadata_addresses_are_denied_without_a_package_and_never_less_with_one() {
    let a = acct("acme");
    let none = egress_blocks(&account::build(
        &a,
        &BuildInput {
            package: None,
            suspended: false,
            scale_workloads: false,
            namespaces: a.desired_namespaces(),
            operator: None,
            notices: Vec::new(),
            self_service: Vec::new(),
        },
    ));
    let with = egress_blocks(&account::build(
        &a,
        &input(&a, &pkg("standard", true), false, false),
    ));
    assert_eq!(none, with, "a package that adds nothing denies the default");
    for c in account::DEFAULT_DENIED_CIDRS {
        let host = account::Cidr::parse(c).unwrap();
        let family = if c.contains(':') { "::/0" } else { "0.0.0.0/0" };
        assert!(
            none[family]
                .iter()
                .any(|e| account::Cidr::parse(e).unwrap().contains(host)),
            "{c} is excluded from {family}: {none:?}"
        );
    }
    // What is not a CIDR (the API server refuses it) adds nothing and removes nothing.
    assert_eq!(account::Cidr::parse("0.0.0.0/0"), None);
    assert_eq!(account::Cidr::parse("::ffff:169.254.0.0/112"), None);
    assert_eq!(account::Cidr::parse("169.254.0.0"), None);
    assert_eq!(
        account::denied_cidrs(&["nonsense".into(), "::/0".into()]),
        account::denied_cidrs(&[])
    );
}

#[test]
fn a_platform_selector_on_a_label_anyone_may_set_is_refused_and_reported() {
    let sel = |labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]| LabelSelector {
        match_labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        match_expressions: (!exprs.is_empty()).then(|| {
            exprs
                .iter()
                .map(|(k, op, vs)| LabelSelectorRequirement {
                    key: k.to_string(),
                    operator: op.to_string(),
                    values: (!vs.is_empty()).then(|| vs.iter().map(|v| v.to_string()).collect()),
                })
                .collect()
        }),
    };
    for ok in [
        sel(&[("kubernetes.io/metadata.name", "ingress-nginx")], &[]),
        sel(&[("covenant.dev/platform", "true")], &[]),
        sel(
            &[],
            &[("kubernetes.io/metadata.name", "In", &["monitoring"])],
        ),
        sel(&[], &[("covenant.dev/platform", "Exists", &[])]),
    ] {
        assert_eq!(package::refused_selector(&ok), None, "{ok:?}");
    }
    for bad in [
        sel(&[], &[]),
        sel(&[("team", "platform")], &[]),
        sel(
            &[("kubernetes.io/metadata.name", "ingress")],
            &[("app.kubernetes.io/part-of", "In", &["x"])],
        ),
        sel(&[], &[("kubernetes.io/metadata.name", "NotIn", &["acme"])]),
        sel(&[], &[("kubernetes.io/metadata.name", "Exists", &[])]),
        sel(&[], &[("covenant.dev/platform", "DoesNotExist", &[])]),
        sel(&[], &[("kubernetes.io/metadata.name", "In", &[])]),
    ] {
        assert!(package::refused_selector(&bad).is_some(), "{bad:?}");
    }
    let mut p = pkg("standard", true);
    p.spec.network = Some(PackageNetwork {
        ingress_from: vec![
            sel(&[("kubernetes.io/metadata.name", "ingress-nginx")], &[]),
            sel(&[("team", "platform")], &[]),
        ],
        ..Default::default()
    });
    let ready = package::package_ready(&p, std::slice::from_ref(&p));
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (false, package::REFUSED_PLATFORM_SELECTOR),
        "{ready:?}"
    );
    assert!(
        ready.message.contains("ingressFrom[1]")
            && ready.message.contains("\"team\"")
            && ready.message.contains("kubernetes.io/metadata.name"),
        "the message names the selector, the label and the keys allowed: {}",
        ready.message
    );
    let a = acct("acme");
    let conds = account::applied_conditions(&a, &p, false);
    let net = conds
        .iter()
        .find(|c| c.type_ == crate::status::types::NETWORK_ISOLATED)
        .unwrap();
    assert!(
        net.status && net.message.contains("ingressFrom[1]"),
        "the tenant stays isolated and is told what the package must change: {net:?}"
    );
}

#[test]
fn a_notice_status_counts_decisions_and_names_no_account() {
    let n = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let mut accounts: Vec<Account> = (0..50).map(|i| acct(&format!("tenant-{i}"))).collect();
    respond(
        &mut accounts[7],
        ResponseDecision::Reject,
        "2026-11-15T00:00:00Z",
    );
    respond(
        &mut accounts[8],
        ResponseDecision::Accept,
        "2026-11-15T00:00:00Z",
    );
    let few = eval(&n, &accounts[..2], at("2026-11-20T00:00:00Z"));
    let many = eval(&n, &accounts, at("2026-11-20T00:00:00Z"));
    assert_eq!(
        many.status.counts,
        Some(DecisionCounts {
            pending: 48,
            accepted: 1,
            deemed_accepted: 0,
            rejected: 1
        })
    );
    let json = serde_json::to_string(&many.status).unwrap();
    assert!(
        !json.contains("tenant-"),
        "the status names an account: {json}"
    );
    // The size does not grow with the number of accounts (only the counts' digits do).
    let small = serde_json::to_string(&few.status).unwrap();
    assert!(
        json.len() <= small.len() + 8,
        "{} bytes at 50 accounts, {} at 2",
        json.len(),
        small.len()
    );
}

#[test]
fn administrators_may_read_the_notices_that_concern_their_account_and_no_other() {
    let a = acct("acme");
    let rules = |notices: &[String]| account::tenancy_role(&a, notices).rules.unwrap();
    // No notice: the Account alone; never a rule with empty resourceNames (that would be every
    // notice).
    let none = rules(&[]);
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].resources, Some(vec!["accounts".to_string()]));
    assert_eq!(none[0].resource_names, Some(vec!["acme".to_string()]));
    let some = rules(&["dpa".into(), "aup".into(), "dpa".into()]);
    assert_eq!(some.len(), 2);
    assert_eq!(
        some[1].resources,
        Some(vec!["deprecationnotices".to_string()])
    );
    assert_eq!(
        some[1].resource_names,
        Some(vec!["aup".to_string(), "dpa".to_string()])
    );
    assert_eq!(some[1].verbs, ["get", "list", "watch"]);

    // Which notices: those selecting the account and served (the rows of its status.notices).
    let served = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let mut elsewhere = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    elsewhere.metadata.name = Some("eu-only".into());
    elsewhere.spec.accounts = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("region".into(), "eu".into())])),
        match_expressions: None,
    });
    let mut later = amendment("2026-12-01T00:00:00Z", "2027-02-01T00:00:00Z");
    later.metadata.name = Some("not-yet".into());
    let mut unobserved = amendment("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    unobserved.metadata.name = Some("unobserved".into());
    unobserved.spec.served_at = None;
    let notices = [served, elsewhere, later, unobserved];
    let now = at("2026-11-10T00:00:00Z");
    let names = notice::concerning_names(&a, &notices, now);
    assert_eq!(names, ["dpa"]);
    let (rows, _) = notice::account_notices(&a, &notices, &[], now);
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        names,
        "the role names exactly the notices the account's status lists"
    );
}

#[test]
fn every_namespace_bounds_what_a_tenant_writes_and_the_operator_reads() {
    let bounds = |d: &account::Desired| {
        let q: Vec<_> = d
            .quotas
            .iter()
            .filter(|q| q.metadata.name.as_deref() == Some(account::BOUNDS_QUOTA_NAME))
            .collect();
        q.iter()
            .map(|q| q.spec.as_ref().unwrap().hard.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let answers = "count/noticeresponses.covenant.dev";
    let bindings = "count/rolebindings.rbac.authorization.k8s.io";
    let mut a = acct("acme");
    a.spec.namespaces = vec!["acme-prod".into(), "acme-dev".into()];
    let mut p = pkg("standard", true);
    // One per namespace, with the defaults.
    let d = account::build(&a, &input(&a, &p, false, false));
    let b = bounds(&d);
    assert_eq!(b.len(), 2);
    assert!(
        b.iter()
            .all(|h| h[answers] == q("100") && h[bindings] == q("100"))
    );
    let ingresses = "count/ingresses.networking.k8s.io";
    assert!(b.iter().all(|h| h[ingresses] == q("40")));
    // The package raises one, the account another on top.
    p.spec
        .quota
        .get_or_insert_default()
        .insert(answers.into(), q("300"));
    a.spec.quota = Some(BTreeMap::from([(bindings.into(), q("40"))]));
    let d = account::build(&a, &input(&a, &p, true, false));
    let b = bounds(&d);
    assert!(
        b.iter()
            .all(|h| h[answers] == q("300") && h[bindings] == q("40"))
    );
    // Without a package, and suspended: still there, with the account's own entries.
    let d = account::build(
        &a,
        &BuildInput {
            package: None,
            suspended: true,
            scale_workloads: false,
            namespaces: a.desired_namespaces(),
            operator: None,
            notices: Vec::new(),
            self_service: Vec::new(),
        },
    );
    let b = bounds(&d);
    assert_eq!(b.len(), 2);
    assert!(
        b.iter()
            .all(|h| h[answers] == q("100") && h[bindings] == q("40"))
    );
}

#[test]
fn every_pod_security_label_and_marker_covenant_does_not_want_is_stray() {
    use k8s_openapi::api::core::v1::Namespace;
    let ns = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| {
        let mut n = Namespace::default();
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    };
    let desired = ns(
        &[(account::POD_SECURITY_ENFORCE, "restricted")],
        &[("covenant.dev/allowed-subjects", "x")],
    );
    // In shape: nothing to remove (no request at rest).
    assert_eq!(
        account::stray_namespace_keys(&desired, &desired),
        serde_json::json!({})
    );
    let actual = ns(
        &[
            (account::POD_SECURITY_ENFORCE, "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "v1.0"),
            (READ_ONLY_LABEL, "suspended"),
            ("team", "web"),
        ],
        &[
            ("covenant.dev/allowed-subjects", "x"),
            (account::SCALED_MARKER, "true"),
            ("covenant.dev/suspension-token", "t"),
            (
                crate::model::policies::REGISTRIES_ANNOTATION,
                "registry.example/",
            ),
            ("note", "kept"),
        ],
    );
    // Foreign Pod Security labels, markers of a state that is over and policies the package dropped go; other labels, and
    // annotations Covenant keeps elsewhere (a suspension's token), stay.
    assert_eq!(
        account::stray_namespace_keys(&desired, &actual),
        serde_json::json!({ "metadata": {
            "labels": { "pod-security.kubernetes.io/enforce-version": null, READ_ONLY_LABEL: null },
            "annotations": {
                account::SCALED_MARKER: null,
                crate::model::policies::REGISTRIES_ANNOTATION: null
            }
        }})
    );
}

#[test]
fn the_effective_policies_are_annotated_on_every_namespace_and_a_package_without_any_adds_none() {
    let mut a = acct("acme");
    a.spec.namespaces = vec!["acme-prod".into(), "acme-dev".into()];
    a.spec.policies = Some(crate::api::Policies {
        images: Some(crate::api::ImagePolicy {
            allowed_registries: vec!["registry.example/acme/".into()],
        }),
        ..Default::default()
    });
    let mut p = pkg("gold", false);
    p.spec.policies = Some(crate::api::Policies {
        images: Some(crate::api::ImagePolicy {
            allowed_registries: vec!["registry.example/".into(), "docker.io/library/".into()],
        }),
        scheduling: Some(crate::api::SchedulingPolicy {
            node_selector: BTreeMap::from([("pool".into(), "tenants".into())]),
        }),
        ..Default::default()
    });
    let d = account::build(&a, &input(&a, &p, false, false));
    assert_eq!(d.namespaces.len(), 2);
    for ns in &d.namespaces {
        let ann = ns.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["covenant.dev/allowed-registries"],
            "registry.example/acme/"
        );
        assert_eq!(ann["covenant.dev/node-selector"], "pool=tenants");
        assert_eq!(ann["covenant.dev/policy-package"], "gold");
    }
    let plain = account::build(&a, &input(&a, &pkg("standard", true), false, false));
    for ns in &plain.namespaces {
        let ann = ns.metadata.annotations.as_ref().unwrap();
        // The account's own narrowing stands on a package without policies; nothing else is added.
        assert_eq!(
            ann["covenant.dev/allowed-registries"],
            "registry.example/acme/"
        );
        assert!(!ann.contains_key("covenant.dev/node-selector"));
    }
    a.spec.policies = None;
    let none = account::build(&a, &input(&a, &pkg("standard", true), false, false));
    for ns in &none.namespaces {
        let ann = ns.metadata.annotations.as_ref().unwrap();
        assert!(
            !ann.keys().any(|k| (k.starts_with("covenant.dev/allowed-")
                && k != "covenant.dev/allowed-subjects")
                || k == "covenant.dev/policy-package"
                || k == "covenant.dev/node-selector"),
            "{ann:?}"
        );
    }
}

#[test]
fn the_compliance_report_names_at_most_ten_pods_and_counts_the_rest() {
    use crate::model::policies::noncompliance_message;
    assert_eq!(noncompliance_message(&[]), None);
    let found: Vec<String> = (0..12).map(|i| format!("acme/p{i:02}: image x")).collect();
    let m = noncompliance_message(&found).unwrap();
    assert!(m.starts_with("12 object(s) no longer comply"), "{m}");
    assert!(m.contains("nothing was deleted"), "{m}");
    assert!(m.contains("acme/p09") && !m.contains("acme/p10"), "{m}");
    assert!(m.ends_with("; and 2 more"), "{m}");
}
