//! Account rules that need no cluster: the access review (§4.2(2)), the namespace cap, and the
//! account's view of the notices that concern it.

use covenant_terms as terms;
use jiff::Timestamp;

use crate::api::{Account, SupportPackage};
use crate::status::Cond;

/// Condition type of the monthly access review.
pub const ACCESS_REVIEW_CURRENT: &str = "AccessReviewCurrent";

/// The access review's condition, when it is due, and when the answer changes (§4.2(2): reviews are
/// monthly; a review more than 30 days old is overdue).
pub fn access_review(account: &Account, now: Timestamp) -> (Cond, Timestamp, Option<Timestamp>) {
    let created = account
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let last = account
        .spec
        .access_review
        .as_ref()
        .and_then(|r| r.last_reviewed_at.as_ref())
        .map(|t| t.0);
    let r = terms::evaluate_access_review(last, created, now);
    let due = terms::fmt_instant(r.due_at);
    let cond = match (r.current, last) {
        (true, Some(l)) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "Reviewed",
            format!(
                "access last reviewed {}; next review due by {due}",
                terms::fmt_instant(l)
            ),
        ),
        (true, None) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "NewAccount",
            format!("first access review due by {due}"),
        ),
        (false, _) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            false,
            "ReviewOverdue",
            format!(
                "the monthly access review was due by {due} (§4.2(2)): review who has access and set spec.accessReview.lastReviewedAt"
            ),
        ),
    };
    (cond, r.due_at, r.next_change)
}

/// Problems that make an account invalid on its package (the namespace cap), with the fix.
pub fn validate_on_package(account: &Account, package: &SupportPackage) -> Vec<String> {
    let mut errors = Vec::new();
    let wanted = account.desired_namespaces().len();
    if let Some(max) = package.spec.max_namespaces
        && wanted > max as usize
    {
        errors.push(format!(
                "the account asks for {wanted} namespaces but its SupportPackage {:?} allows at most {max}: remove namespaces or move to a larger package",
                kube::ResourceExt::name_any(package)
            ));
    }
    errors
}

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::{ACCOUNT_LABEL, RETAINED_UNTIL_LABEL, Subject, SubjectKind};

/// Name of the ClusterRole the administrators get in each tenant namespace.
pub const TENANT_ADMIN_ROLE: &str = "covenant-tenant-admin";
/// Name of the read-only ClusterRole used while suspended and during retention.
pub const TENANT_READONLY_ROLE: &str = "covenant-tenant-readonly";
/// The ResourceQuota with the package's quota.
pub const QUOTA_NAME: &str = "covenant-quota";
/// The ResourceQuota that stops new pods while suspended or retained.
pub const FREEZE_QUOTA_NAME: &str = "covenant-freeze";
/// The LimitRange with the package's container defaults.
pub const LIMITS_NAME: &str = "covenant-limits";
/// The NetworkPolicy that admits traffic only from the tenant's own namespaces.
pub const ISOLATION_POLICY: &str = "covenant-isolation";
/// The NetworkPolicy that allows egress except SIP (unless telephony is permitted).
pub const EGRESS_POLICY: &str = "covenant-egress";
/// The NetworkPolicy that denies all traffic of a suspended tenant.
pub const SUSPENSION_POLICY: &str = "covenant-suspension-deny-all";
/// Namespace annotation read by the admission policy: the subjects RoleBindings may name, one
/// `User:name`, `Group:name` or `ServiceAccount:namespace:name` token per line (deploy/README.md).
pub const ALLOWED_SUBJECTS_ANNOTATION: &str = "covenant.dev/allowed-subjects";
/// Namespace annotation read by the admission policy: the account's namespaces.
pub const NAMESPACES_ANNOTATION: &str = "covenant.dev/namespaces";
/// The label Covenant puts on everything it creates, with `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "covenant");

/// Namespace annotation: workloads in it may have been scaled to zero by a suspension.
pub const SCALED_MARKER: &str = "covenant.dev/workloads-scaled";

/// SIP signalling ports (§1: no telecommunications service unless permitted).
pub const SIP_PORTS: [i32; 2] = [5060, 5061];

/// The objects one account wants, per kind. Every field is applied; adding a kind here without
/// applying it fails to compile where the apply stage destructures this struct.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// The tenant's namespaces.
    pub namespaces: Vec<Namespace>,
    /// Quotas: the package's and, while suspended, the freeze quota.
    pub quotas: Vec<ResourceQuota>,
    /// Container defaults.
    pub limit_ranges: Vec<LimitRange>,
    /// Isolation, egress and (while suspended) deny-all policies.
    pub network_policies: Vec<NetworkPolicy>,
    /// The administrators' bindings.
    pub role_bindings: Vec<RoleBinding>,
}

/// What the build stage needs besides the account.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    /// The resolved package.
    pub package: &'a SupportPackage,
    /// Whether a suspension of the account is in force.
    pub suspended: bool,
    /// Whether a suspension in force asks for the workloads to be scaled to zero.
    pub scale_workloads: bool,
}

fn labels(account: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ACCOUNT_LABEL.to_string(), account.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, account: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(account)),
        ..Default::default()
    }
}

/// The admission policy's token for a subject: `User:name`, `Group:name`, `ServiceAccount:ns:name`.
pub fn subject_token(s: &Subject) -> String {
    match s.kind {
        SubjectKind::User => format!("User:{}", s.name),
        SubjectKind::Group => format!("Group:{}", s.name),
        SubjectKind::ServiceAccount => format!(
            "ServiceAccount:{}:{}",
            s.namespace.as_deref().unwrap_or_default(),
            s.name
        ),
    }
}

fn rbac_subject(s: &Subject) -> RbacSubject {
    match s.kind {
        SubjectKind::ServiceAccount => RbacSubject {
            kind: "ServiceAccount".into(),
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            api_group: None,
        },
        k => RbacSubject {
            kind: if k == SubjectKind::User {
                "User"
            } else {
                "Group"
            }
            .into(),
            name: s.name.clone(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// A tenant namespace, labelled and annotated for the admission policy.
pub fn namespace(account: &Account, name: &str) -> Namespace {
    let account_name = account.name_any();
    let mut allowed: Vec<String> = account
        .spec
        .administrators
        .iter()
        .chain(&account.spec.allowed_subjects)
        .map(subject_token)
        .collect();
    allowed.sort();
    allowed.dedup();
    let mut m = meta(name, None, &account_name);
    m.annotations = Some(BTreeMap::from([
        (ALLOWED_SUBJECTS_ANNOTATION.to_string(), allowed.join("\n")),
        (
            NAMESPACES_ANNOTATION.to_string(),
            account.desired_namespaces().join(","),
        ),
    ]));
    Namespace {
        metadata: m,
        ..Default::default()
    }
}

/// A RoleBinding of `subjects` to `role` in `namespace`, or None when there is nobody to bind (an
/// empty subject list would be rewritten by the API server on every apply).
pub fn role_binding(
    account: &str,
    namespace: &str,
    role: &str,
    subjects: &[Subject],
) -> Option<RoleBinding> {
    if subjects.is_empty() {
        return None;
    }
    Some(RoleBinding {
        metadata: meta(role, Some(namespace), account),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(subjects.iter().map(rbac_subject).collect()),
    })
}

/// The freeze quota: no new pods (suspension, retention).
pub fn freeze_quota(account: &str, namespace: &str) -> ResourceQuota {
    ResourceQuota {
        metadata: meta(FREEZE_QUOTA_NAME, Some(namespace), account),
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([(
                "pods".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("0".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port_range(protocol: &str, from: i32, to: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(from)),
        end_port: (to > from).then_some(to),
    }
}

/// The egress rules: everything, or everything but SIP. NetworkPolicies only allow, so "all but SIP" is
/// the port ranges around 5060-5061 for TCP and UDP (SCTP stays open).
pub fn egress_rules(telephony: bool) -> Vec<NetworkPolicyEgressRule> {
    if telephony {
        return vec![NetworkPolicyEgressRule::default()];
    }
    let (lo, hi) = (SIP_PORTS[0], SIP_PORTS[1]);
    let mut ports = Vec::new();
    for proto in ["TCP", "UDP"] {
        ports.push(port_range(proto, 1, lo - 1));
        ports.push(port_range(proto, hi + 1, 65535));
    }
    ports.push(NetworkPolicyPort {
        protocol: Some("SCTP".into()),
        port: None,
        end_port: None,
    });
    vec![NetworkPolicyEgressRule {
        ports: Some(ports),
        to: None,
    }]
}

fn tenant_selector(account: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            ACCOUNT_LABEL.to_string(),
            account.to_string(),
        )])),
        match_expressions: None,
    }
}

/// Builds every object the account wants (pure).
pub fn build(account: &Account, input: &BuildInput<'_>) -> Desired {
    let name = account.name_any();
    let quota = crate::model::package::effective_quota(account, input.package);
    let limits = crate::model::package::effective_limits(account, input.package);
    let telephony = account.spec.network.as_ref().is_some_and(|n| n.telephony);
    let mut d = Desired::default();
    for ns in account.desired_namespaces() {
        let mut n = namespace(account, &ns);
        if input.suspended && input.scale_workloads {
            // Set before any workload is scaled; removed only after all are restored.
            n.metadata
                .annotations
                .get_or_insert_default()
                .insert(SCALED_MARKER.to_string(), "true".to_string());
        }
        d.namespaces.push(n);
        if !quota.is_empty() {
            d.quotas.push(ResourceQuota {
                metadata: meta(QUOTA_NAME, Some(&ns), &name),
                spec: Some(ResourceQuotaSpec {
                    hard: Some(quota.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if !limits.is_empty() {
            d.limit_ranges.push(LimitRange {
                metadata: meta(LIMITS_NAME, Some(&ns), &name),
                spec: Some(LimitRangeSpec {
                    limits: vec![LimitRangeItem {
                        type_: "Container".into(),
                        default: limits.default.clone().filter(|m| !m.is_empty()),
                        default_request: limits.default_request.clone().filter(|m| !m.is_empty()),
                        max: limits.max.clone().filter(|m| !m.is_empty()),
                        ..Default::default()
                    }],
                }),
            });
        }
        d.network_policies.push(NetworkPolicy {
            metadata: meta(ISOLATION_POLICY, Some(&ns), &name),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(tenant_selector(&name)),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                egress: None,
            }),
        });
        d.network_policies.push(NetworkPolicy {
            metadata: meta(EGRESS_POLICY, Some(&ns), &name),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(egress_rules(telephony)),
                ingress: None,
            }),
        });
        if input.suspended {
            d.quotas.push(freeze_quota(&name, &ns));
            d.network_policies.push(NetworkPolicy {
                metadata: meta(SUSPENSION_POLICY, Some(&ns), &name),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(LabelSelector::default()),
                    policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                    ingress: None,
                    egress: None,
                }),
            });
        }
        let role = if input.suspended {
            TENANT_READONLY_ROLE
        } else {
            TENANT_ADMIN_ROLE
        };
        d.role_bindings
            .extend(role_binding(&name, &ns, role, &account.spec.administrators));
    }
    d
}

/// The conditions of an account whose objects were all applied on `package` (pure): the namespaces,
/// the quota and limits, the network isolation, and the administrators' access.
pub fn applied_conditions(
    account: &Account,
    package: &SupportPackage,
    suspended: bool,
) -> Vec<Cond> {
    let sip = if account.spec.network.as_ref().is_some_and(|n| n.telephony) {
        "SIP egress permitted (telephony)"
    } else {
        "SIP egress (5060-5061) denied"
    };
    let access = if suspended {
        Cond::new(
            "AccessGranted",
            false,
            "Suspended",
            "administrators have read-only access while the account is suspended",
        )
    } else if account.spec.administrators.is_empty() {
        Cond::new(
            "AccessGranted",
            true,
            "NoAdministrators",
            "no administrators are appointed (§4.2(2)): add spec.administrators",
        )
    } else {
        Cond::new(
            "AccessGranted",
            true,
            "Granted",
            format!(
                "{} administrator(s) bound to {}",
                account.spec.administrators.len(),
                TENANT_ADMIN_ROLE
            ),
        )
    };
    vec![
        Cond::new(
            "NamespacesReady",
            true,
            "Created",
            format!("namespaces: {}", account.desired_namespaces().join(", ")),
        ),
        Cond::new(
            "QuotaApplied",
            true,
            "Applied",
            format!(
                "quota and limits of package {:?} applied",
                package.name_any()
            ),
        ),
        Cond::new(
            "NetworkIsolated",
            true,
            "Isolated",
            format!("ingress only from the tenant's namespaces; {sip}"),
        ),
        access,
    ]
}

/// The label value of a retained namespace: unix seconds of `until`, rounded down, so that data is
/// never kept past the retention limit (the terms allow up to 13 months, not more).
pub fn retained_until_label(until: Timestamp) -> String {
    until.as_second().to_string()
}

/// Parses a namespace's `retained-until` label.
pub fn parse_retained_until(ns: &Namespace) -> Option<Timestamp> {
    ns.labels()
        .get(RETAINED_UNTIL_LABEL)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
}

/// What a released namespace keeps (§6): its labels plus the retained-until label, read-only access
/// for the administrators, and a freeze quota so nothing new starts.
pub fn released(
    account: &Account,
    ns: &str,
    until: Timestamp,
) -> (Namespace, Option<RoleBinding>, ResourceQuota) {
    let name = account.name_any();
    let mut n = namespace(account, ns);
    n.metadata.labels.get_or_insert_default().insert(
        RETAINED_UNTIL_LABEL.to_string(),
        retained_until_label(until),
    );
    (
        n,
        role_binding(
            &name,
            ns,
            TENANT_READONLY_ROLE,
            &account.spec.administrators,
        ),
        freeze_quota(&name, ns),
    )
}
