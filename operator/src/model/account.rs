//! Account rules that need no cluster: the access review (§4.2(2)), the namespace cap, and the
//! account's view of the notices that concern it.

use covenant_terms as terms;
use jiff::Timestamp;

use crate::api::{Account, SupportPackage};
use crate::status::{Cond, reasons, types};

/// Condition type of the monthly access review.
pub const ACCESS_REVIEW_CURRENT: &str = "AccessReviewCurrent";

/// Who may hold access to the tenant, and through what: what the access review (§4.2(2)) reviews.
/// The tenant's own RoleBindings can name no one else (admission policy `covenant-tenant-rolebindings`).
pub fn access_through(account: &Account) -> String {
    let list = |subjects: &[Subject]| {
        if subjects.is_empty() {
            "none".to_string()
        } else {
            subject_tokens(subjects.iter()).replace('\n', ", ")
        }
    };
    let domains: Vec<String> = account
        .spec
        .organization
        .iter()
        .flat_map(|o| &o.domains)
        .map(|d| format!("*@{d}"))
        .collect();
    format!(
        "access through: administrators (covenant-tenant-admin, granted by the platform): {}; \
         consented third parties (spec.allowedSubjects, bound by the administrators): {}; \
         the organization's people (spec.organization.domains, granted and ended by the administrators): {}; \
         and the ServiceAccounts of the tenant's namespaces",
        list(&account.spec.administrators),
        list(&account.spec.allowed_subjects),
        if domains.is_empty() {
            "none".to_string()
        } else {
            domains.join(", ")
        },
    )
}

/// The access review's condition, when it is due, and when the answer changes (§4.2(2): reviews are
/// monthly; a review more than 30 days old is overdue). Its message lists who may hold access through
/// what ([`access_through`]).
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
    let through = access_through(account);
    let cond = match (r.current, last) {
        (true, Some(l)) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "Reviewed",
            format!(
                "access last reviewed {}; next review due by {due}; {through}",
                terms::fmt_instant(l)
            ),
        ),
        (true, None) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "NewAccount",
            format!("first access review due by {due}; {through}"),
        ),
        (false, _) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            false,
            "ReviewOverdue",
            format!(
                "the monthly access review was due by {due} (§4.2(2)): review who has access and set spec.accessReview.lastReviewedAt; {through}"
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

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::{
    ACCOUNT_LABEL, ACCOUNT_UID_ANNOTATION, PodSecurityLevel, READ_ONLY_LABEL, RETAINED_UNTIL_LABEL,
    Subject, SubjectKind,
};

/// Name of the ClusterRole the administrators get in each tenant namespace.
pub const TENANT_ADMIN_ROLE: &str = "covenant-tenant-admin";
/// Name of the read-only ClusterRole used while suspended and during retention.
pub const TENANT_READONLY_ROLE: &str = "covenant-tenant-readonly";
/// The ClusterRole bound to the operator itself in each tenant namespace: `bind` there only, so that
/// it can take a withdrawn subject out of a RoleBinding the tenant made (RBAC escalation prevention
/// lets only someone who may bind the role edit a binding of it).
pub const OPERATOR_TENANT_ROLE: &str = "covenant-operator-tenant";
/// The name of the operator's own RoleBinding in each tenant namespace.
pub const OPERATOR_BINDING: &str = "covenant-operator";
/// The ResourceQuota with the package's quota.
pub const QUOTA_NAME: &str = "covenant-quota";
/// The ResourceQuota that stops new pods while suspended or retained.
pub const FREEZE_QUOTA_NAME: &str = "covenant-freeze";
/// The ResourceQuota that bounds, in every tenant namespace whatever its package, how many of the
/// objects a tenant writes and the operator reads there may exist (see [`BOUNDED_COUNTS`]).
pub const BOUNDS_QUOTA_NAME: &str = "covenant-bounds";
/// What the operator reads of what a tenant writes, and how many of each one namespace may hold unless
/// the package's or the account's `quota` names the same key: NoticeResponses (a tenant cannot delete
/// an answer, so this is a lifetime's answers per namespace: the platform records more in
/// `spec.noticeResponses`, or raises the bound), RoleBindings (the consent sweep reads every one of
/// a namespace) and Ingresses (cached for their hosts, and recorded in the namespace's hostname claims,
/// which the API server still accepts at 40 Ingresses of 32 hosts of maximal length: their
/// keys are listed twice, in the data and in the managedFields, and the request is refused from about 45). With each one's size bounded by the admission policies, this bounds
/// what one namespace can make the operator hold.
pub const BOUNDED_COUNTS: [(&str, &str); 4] = [
    ("count/noticeresponses.covenant.dev", "100"),
    ("count/rolebindings.rbac.authorization.k8s.io", "100"),
    ("count/ingresses.networking.k8s.io", "40"),
    // The tenant's own NetworkPolicies and Covenant's two (see crate::model::tenant_policies).
    (
        crate::model::tenant_policies::NETWORK_POLICIES_KEY,
        crate::model::tenant_policies::NETWORK_POLICIES_BOUND,
    ),
];
/// The LimitRange with the package's container defaults.
pub const LIMITS_NAME: &str = "covenant-limits";
/// The NetworkPolicy that admits traffic only from the tenant's own namespaces (and the platform's).
pub const ISOLATION_POLICY: &str = "covenant-isolation";
/// The NetworkPolicy that allows egress except cloud metadata and SIP (unless telephony is permitted).
pub const EGRESS_POLICY: &str = "covenant-egress";
/// The NetworkPolicy that denies all traffic of a suspended or retained tenant: while it is in force
/// it is the only policy Covenant keeps there, and the tenant's own are neutralised
/// ([`crate::model::tenant_policies`]): NetworkPolicies are a union of allows.
pub const SUSPENSION_POLICY: &str = "covenant-suspension-deny-all";
/// Namespace annotation read by the admission policy: the subjects RoleBindings may name, one
/// `User:name`, `Group:name` or `ServiceAccount:namespace:name` token per line (deploy/README.md).
pub const ALLOWED_SUBJECTS_ANNOTATION: &str = "covenant.dev/allowed-subjects";
/// Namespace annotation: the `allowed-subjects` value whose withdrawn subjects have been taken out of
/// every RoleBinding in the namespace (a hash). While it differs, Covenant sweeps the bindings.
pub const SUBJECTS_ENFORCED_ANNOTATION: &str = "covenant.dev/subjects-enforced";
/// Namespace annotation read by the admission policy `covenant-notice-responses`: the account's
/// administrators as subject tokens (see [`subject_tokens`]), the only ones who may answer a notice.
pub const ADMINISTRATORS_ANNOTATION: &str = "covenant.dev/administrators";
/// Namespace annotation read by the admission policy: the account's namespaces.
pub const NAMESPACES_ANNOTATION: &str = "covenant.dev/namespaces";
/// The label Covenant puts on everything it creates, with `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "covenant");
/// The Pod Security labels of a tenant namespace.
pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// Warn at `restricted` whatever is enforced.
pub const POD_SECURITY_WARN: &str = "pod-security.kubernetes.io/warn";
/// Audit at `restricted` whatever is enforced.
pub const POD_SECURITY_AUDIT: &str = "pod-security.kubernetes.io/audit";
/// The label the API server sets on every namespace to its name (tenants cannot forge it).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace annotation: workloads in it may have been scaled to zero by a suspension.
pub const SCALED_MARKER: &str = "covenant.dev/workloads-scaled";

/// SIP signalling ports (§1: no telecommunications service unless permitted).
pub const SIP_PORTS: [i32; 2] = [5060, 5061];
/// Where cloud metadata services answer; egress there is always denied, whatever the package says (it
/// can add to the list: `spec.network.deniedCidrs`). IPv4 link-local (AWS, GCE, Azure, OpenStack,
/// ...), Alibaba Cloud's `100.100.100.200`, the IPv6 metadata addresses of AWS (`fd00:ec2::254`) and
/// GCE (`fd20:ce::254`), `fd00:c1::a9fe:a9fe` (169.254.169.254 in an IPv6 prefix), the NAT64 form of
/// `169.254.169.254` (`64:ff9b::a9fe:a9fe`), and IPv6 link-local. The NAT64 form of every IPv4 range
/// denied is denied too ([`denied_cidrs`]).
pub const DEFAULT_DENIED_CIDRS: [&str; 7] = [
    "169.254.0.0/16",
    "100.100.100.200/32",
    "fd00:ec2::254/128",
    "fd00:c1::a9fe:a9fe/128",
    "64:ff9b::a9fe:a9fe/128",
    "fd20:ce::254/128",
    "fe80::/10",
];

/// The well-known NAT64 prefix (RFC 6052): `64:ff9b::a.b.c.d` reaches the IPv4 address `a.b.c.d`
/// through a NAT64 gateway.
const NAT64_PREFIX: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// A CIDR parsed and masked to its network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cidr {
    /// An IPv4 range.
    V4(std::net::Ipv4Addr, u8),
    /// An IPv6 range.
    V6(std::net::Ipv6Addr, u8),
}

impl Cidr {
    /// Parses `addr/len` (the form `isCIDR` accepts), masking host bits; `None` when it is not a CIDR.
    /// A prefix length of 0 is refused: an `except` must be a strict subset of its `ipBlock`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = s.trim().split_once('/')?;
        let len: u8 = len.parse().ok()?;
        match addr.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) if (1..=32).contains(&len) => {
                let mask = u32::MAX << (32 - u32::from(len));
                Some(Cidr::V4((u32::from(a) & mask).into(), len))
            }
            std::net::IpAddr::V6(a) if (1..=128).contains(&len) && a.to_ipv4_mapped().is_none() => {
                let mask = u128::MAX << (128 - u32::from(len));
                Some(Cidr::V6((u128::from(a) & mask).into(), len))
            }
            _ => None,
        }
    }

    fn bits(self) -> (u128, u32, bool) {
        match self {
            Cidr::V4(a, l) => (u128::from(u32::from(a)), u32::from(l), false),
            Cidr::V6(a, l) => (u128::from(a), u32::from(l), true),
        }
    }

    /// Whether `other` lies within this range (same family).
    pub fn contains(self, other: Cidr) -> bool {
        let ((a, la, v6a), (b, lb, v6b)) = (self.bits(), other.bits());
        let width = if v6a { 128 } else { 32 };
        v6a == v6b && la <= lb && (a ^ b) >> (width - la) == 0
    }

    /// The NAT64 form of an IPv4 range (`64:ff9b::/96` + the address); `None` for IPv6.
    pub fn nat64(self) -> Option<Cidr> {
        match self {
            Cidr::V4(a, l) => Some(Cidr::V6(
                (u128::from(NAT64_PREFIX) | u128::from(u32::from(a))).into(),
                96 + l,
            )),
            Cidr::V6(..) => None,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cidr::V4(a, l) => write!(f, "{a}/{l}"),
            Cidr::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

/// The ranges tenants' pods may never reach, as the `except` lists of the IPv4 and the IPv6 "anywhere"
/// blocks: [`DEFAULT_DENIED_CIDRS`] plus the package's `deniedCidrs` (only ever added), plus the NAT64
/// form of every IPv4 range; masked, without a range another one already covers, sorted. An entry that
/// is not a CIDR (the API server refuses those) is left out rather than failing the whole policy.
pub fn denied_cidrs(extra: &[String]) -> (Vec<String>, Vec<String>) {
    let mut all: Vec<Cidr> = DEFAULT_DENIED_CIDRS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .filter_map(Cidr::parse)
        .collect();
    let nat64: Vec<Cidr> = all.iter().filter_map(|c| c.nat64()).collect();
    all.extend(nat64);
    all.sort();
    all.dedup();
    let kept: Vec<Cidr> = all
        .iter()
        .copied()
        .filter(|c| !all.iter().any(|o| o != c && o.contains(*c)))
        .collect();
    let (v4, v6): (Vec<Cidr>, Vec<Cidr>) =
        kept.into_iter().partition(|c| matches!(c, Cidr::V4(..)));
    (
        v4.iter().map(Cidr::to_string).collect(),
        v6.iter().map(Cidr::to_string).collect(),
    )
}

/// Why a namespace is read-only (the value of the `covenant.dev/read-only` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnly {
    /// A suspension of the account is in force (§2.4).
    Suspended,
    /// The account was deleted and the namespace is retained (§6).
    Retained,
}

impl ReadOnly {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadOnly::Suspended => "suspended",
            ReadOnly::Retained => "retained",
        }
    }
}

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
    /// Isolation and egress policies, or (while suspended) only the deny-all policy.
    pub network_policies: Vec<NetworkPolicy>,
    /// The administrators' bindings and the operator's own.
    pub role_bindings: Vec<RoleBinding>,
    /// The administrators' read access to their own Account and the notices that concern it
    /// ([`tenancy_role`]), with self-service's rules.
    pub cluster_roles: Vec<k8s_openapi::api::rbac::v1::ClusterRole>,
    /// Its binding ([`tenancy_binding`]): none without administrators.
    pub cluster_role_bindings: Vec<k8s_openapi::api::rbac::v1::ClusterRoleBinding>,
    /// Names of managed objects left as they are, neither applied nor deleted (those that depend on a
    /// package while the package cannot be resolved).
    pub untouched: BTreeSet<&'static str>,
}

/// What the build stage needs besides the account.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    /// The resolved package; `None` while it cannot be resolved: the guardrails and everything that
    /// does not depend on the package are still built, the package's quota and limits are left as they
    /// are, and Pod Security enforces `restricted`.
    pub package: Option<&'a crate::api::SupportPackage>,
    /// Whether a suspension of the account is in force.
    pub suspended: bool,
    /// Whether a suspension in force asks for the workloads to be scaled to zero.
    pub scale_workloads: bool,
    /// The namespaces to build: every desired one, or (while the account is blocked) only those it
    /// already owns.
    pub namespaces: Vec<String>,
    /// The operator's own identity, bound in each namespace to [`OPERATOR_TENANT_ROLE`]; `None` when it
    /// needs no binding (a cluster administrator).
    pub operator: Option<&'a RbacSubject>,
    /// The notices that concern the account, named in its ClusterRole.
    pub notices: Vec<String>,
    /// The rules self-service adds to its ClusterRole.
    pub self_service: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
}

fn labels(account: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ACCOUNT_LABEL.to_string(), account.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ])
}

pub(crate) fn meta(name: &str, namespace: Option<&str>, account: &str) -> ObjectMeta {
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

/// The subjects RoleBindings in the account's namespaces may name besides its ServiceAccounts, as the
/// admission policy reads them (sorted tokens, one per line).
///
/// The client's own identity domains (`spec.organization.domains`) are tokens `Domain:<domain>`: a
/// User named `<person>@<domain>` (exactly one `@`) passes, so the administrators grant and end access
/// for their organization's people without the platform (§4.2(2)).
pub fn allowed_subjects(account: &Account) -> String {
    let subjects = subject_tokens(
        account
            .spec
            .administrators
            .iter()
            .chain(&account.spec.allowed_subjects),
    );
    let mut domains: Vec<String> = account
        .spec
        .organization
        .iter()
        .flat_map(|o| &o.domains)
        .map(|d| format!("{DOMAIN_TOKEN}{d}"))
        .collect();
    if domains.is_empty() {
        return subjects;
    }
    domains.sort();
    domains.dedup();
    let mut all: Vec<String> = subjects
        .split('\n')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .chain(domains)
        .collect();
    all.sort();
    all.join("\n")
}

/// The token prefix of an identity domain of the client's organization in [`ALLOWED_SUBJECTS_ANNOTATION`].
pub const DOMAIN_TOKEN: &str = "Domain:";

/// Whether the User `name` is one of the organization's people by `tokens`: `<person>@<domain>` with
/// exactly one `@`, and `Domain:<domain>` among the tokens.
fn in_domain(name: &str, tokens: &BTreeSet<&str>) -> bool {
    match name.split_once('@') {
        Some((person, domain)) if !person.is_empty() && !domain.contains('@') => {
            tokens.contains(format!("{DOMAIN_TOKEN}{domain}").as_str())
        }
        _ => false,
    }
}

/// `subjects` as admission-policy tokens: sorted, without duplicates, one per line.
pub fn subject_tokens<'a>(subjects: impl Iterator<Item = &'a Subject>) -> String {
    let mut tokens: Vec<String> = subjects.map(subject_token).collect();
    tokens.sort();
    tokens.dedup();
    tokens.join("\n")
}

/// The value of [`SUBJECTS_ENFORCED_ANNOTATION`] once every binding honours `allowed` and `tenant` (the
/// namespaces whose ServiceAccounts pass): a stable hash of both, so that dropping a namespace from the
/// account sweeps the bindings that name its ServiceAccounts (its name could later be another
/// tenant's) as surely as withdrawing a subject does.
pub fn enforced_marker(allowed: &str, tenant: &[String]) -> String {
    let both = format!("{allowed}\n\n{}", tenant.join(","));
    format!("{:016x}", super::fnv1a(both.as_bytes()))
}

/// The subjects of `rb` that the account no longer allows (neither an administrator, an allowed subject
/// nor a ServiceAccount of one of `tenant_namespaces`): the same rule as the admission policy (whose
/// tenant namespaces always include the binding's own), applied to bindings that were made before
/// consent was withdrawn. With no tenant namespaces, no ServiceAccount passes unless `allowed` names it.
pub fn withdrawn_subjects(
    rb: &RoleBinding,
    allowed: &str,
    tenant_namespaces: &[String],
) -> Vec<RbacSubject> {
    let tokens: BTreeSet<&str> = allowed.split('\n').filter(|t| !t.is_empty()).collect();
    let own = rb.namespace().unwrap_or_default();
    rb.subjects
        .iter()
        .flatten()
        .filter(|s| {
            let ok = if s.kind == "ServiceAccount" {
                // No namespace means the binding's own (as RBAC reads it).
                let ns = s
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&own);
                tenant_namespaces.iter().any(|t| t == ns)
                    || tokens.contains(format!("ServiceAccount:{ns}:{}", s.name).as_str())
            } else {
                tokens.contains(format!("{}:{}", s.kind, s.name).as_str())
                    || (s.kind == "User" && in_domain(&s.name, &tokens))
            };
            !ok
        })
        .cloned()
        .collect()
}

/// How one tenant namespace is labelled and annotated.
#[derive(Clone, Debug)]
pub struct NamespaceInput {
    /// Why it is read-only, if it is.
    pub read_only: Option<ReadOnly>,
    /// The Pod Security level it enforces.
    pub pod_security: PodSecurityLevel,
    /// Whether workloads in it may be scaled to zero by a suspension.
    pub scaled: bool,
    /// The [`SUBJECTS_ENFORCED_ANNOTATION`] value, if any.
    pub enforced: Option<String>,
    /// The effective policies' annotations ([`crate::model::policies::annotations`]).
    pub policies: BTreeMap<String, String>,
}

/// A tenant namespace: owned by the Account's UID, labelled for the admission policies and Pod Security.
pub fn namespace(account: &Account, name: &str, input: &NamespaceInput) -> Namespace {
    namespace_of(account, name, &account.desired_namespaces(), input)
}

/// [`namespace`], with the account's namespaces as Covenant holds them (`tenant`: never one it does not
/// own, so a namespace squatted under a name in the spec is never trusted as the tenant's).
pub fn namespace_of(
    account: &Account,
    name: &str,
    tenant: &[String],
    input: &NamespaceInput,
) -> Namespace {
    let account_name = account.name_any();
    let mut m = meta(name, None, &account_name);
    let l = m.labels.get_or_insert_default();
    l.insert(
        POD_SECURITY_ENFORCE.to_string(),
        input.pod_security.as_str().to_string(),
    );
    for k in [POD_SECURITY_WARN, POD_SECURITY_AUDIT] {
        l.insert(
            k.to_string(),
            PodSecurityLevel::Restricted.as_str().to_string(),
        );
    }
    if let Some(r) = input.read_only {
        l.insert(READ_ONLY_LABEL.to_string(), r.as_str().to_string());
    }
    let mut a = BTreeMap::from([
        (
            ALLOWED_SUBJECTS_ANNOTATION.to_string(),
            allowed_subjects(account),
        ),
        (NAMESPACES_ANNOTATION.to_string(), tenant.join(",")),
        (
            ADMINISTRATORS_ANNOTATION.to_string(),
            subject_tokens(account.spec.administrators.iter()),
        ),
    ]);
    if let Some(uid) = &account.metadata.uid {
        a.insert(ACCOUNT_UID_ANNOTATION.to_string(), uid.clone());
    }
    if input.scaled {
        // Set before any workload is scaled; removed only after all are restored.
        a.insert(SCALED_MARKER.to_string(), "true".to_string());
    }
    if let Some(e) = &input.enforced {
        a.insert(SUBJECTS_ENFORCED_ANNOTATION.to_string(), e.clone());
    }
    a.extend(input.policies.clone());
    m.annotations = Some(a);
    Namespace {
        metadata: m,
        ..Default::default()
    }
}

/// The labels and annotations of the tenant namespace `actual` that Covenant decides and `desired`
/// does not carry, as a merge patch removing them (an empty object when there are none): every Pod
/// Security label (`enforce-version`, `warn-version`... set by anyone but Covenant's apply), the
/// read-only label and the scaled marker.
pub fn stray_namespace_keys(desired: &Namespace, actual: &Namespace) -> serde_json::Value {
    let stray = |have: &BTreeMap<String, String>,
                 want: &BTreeMap<String, String>,
                 ours: &dyn Fn(&str) -> bool| {
        have.keys()
            .filter(|k| ours(k) && !want.contains_key(*k))
            .map(|k| (k.clone(), serde_json::Value::Null))
            .collect::<serde_json::Map<_, _>>()
    };
    let labels = stray(actual.labels(), desired.labels(), &|k| {
        k.starts_with("pod-security.kubernetes.io/") || k == READ_ONLY_LABEL
    });
    // The policy annotations too: one the create set is co-owned by that request, so server-side
    // apply alone would leave a policy in force after the package dropped it.
    let annotations = stray(actual.annotations(), desired.annotations(), &|k| {
        k == SCALED_MARKER || crate::model::policies::is_policy_annotation(k)
    });
    let mut meta = serde_json::Map::new();
    if !labels.is_empty() {
        meta.insert("labels".into(), labels.into());
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), annotations.into());
    }
    if meta.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "metadata": meta })
    }
}

/// Whether `ns` was created by Covenant for `account` (this Account, not a deleted one of the same
/// name): its UID annotation names the Account's UID. The annotation and the label can only be set by
/// the operator (admission policy `covenant-namespace-labels`).
pub fn owns(account: &Account, ns: &Namespace) -> bool {
    let uid = account.metadata.uid.as_deref();
    ns.labels().get(ACCOUNT_LABEL).map(String::as_str) == Some(account.name_any().as_str())
        && uid.is_some()
        && ns
            .annotations()
            .get(ACCOUNT_UID_ANNOTATION)
            .map(String::as_str)
            == uid
}

/// Why `account` may not take the existing namespace `ns`, if it may not (None: it owns it).
pub fn ownership_conflict(account: &Account, ns: &Namespace) -> Option<String> {
    if owns(account, ns) {
        return None;
    }
    let name = ns.name_any();
    let labelled = ns.labels().get(ACCOUNT_LABEL);
    let uid = ns.annotations().get(ACCOUNT_UID_ANNOTATION);
    Some(match (labelled, uid) {
        (None, _) => format!("namespace {name:?} already exists and was not created by Covenant"),
        (Some(o), _) if o != &account.name_any() => {
            format!("namespace {name:?} belongs to Account {o:?}")
        }
        (Some(_), Some(uid)) if ns.labels().contains_key(RETAINED_UNTIL_LABEL) => format!(
            "namespace {name:?} is retained from a deleted Account of the same name (uid {uid}); Covenant never \
             adopts it. To restore that data to this Account on purpose, a cluster administrator sets the \
             namespace's annotation {ACCOUNT_UID_ANNOTATION} to this Account's uid and removes the label \
             {RETAINED_UNTIL_LABEL}"
        ),
        (Some(_), Some(uid)) => {
            format!("namespace {name:?} belongs to another Account of the same name (uid {uid})")
        }
        (Some(_), None) => format!(
            "namespace {name:?} carries the label {ACCOUNT_LABEL} but was not created by Covenant (no \
             {ACCOUNT_UID_ANNOTATION} annotation)"
        ),
    })
}

/// A RoleBinding of `subjects` to `role` in `namespace`, or None when there is nobody to bind (an
/// empty subject list would be rewritten by the API server on every apply).
pub fn role_binding(
    account: &str,
    namespace: &str,
    role: &str,
    subjects: &[Subject],
) -> Option<RoleBinding> {
    let subjects: Vec<RbacSubject> = subjects.iter().map(rbac_subject).collect();
    binding(account, namespace, role, role, subjects)
}

fn binding(
    account: &str,
    namespace: &str,
    name: &str,
    role: &str,
    subjects: Vec<RbacSubject>,
) -> Option<RoleBinding> {
    if subjects.is_empty() {
        return None;
    }
    Some(RoleBinding {
        metadata: meta(name, Some(namespace), account),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(subjects),
    })
}

/// The name of the per-account ClusterRole (and its binding) that lets the administrators read their
/// own Account, and nothing of other tenants.
pub fn tenancy_role_name(account: &str) -> String {
    format!("covenant-account-{account}")
}

/// The ClusterRole that lets the administrators read their own Account (its status lists the notices
/// that concern them, with their deadlines and the account's decisions): `get`, `list` and `watch` of
/// that one Account by name; and of the DeprecationNotices that concern it (`notices`, the names in
/// its `status.notices`), by name: RBAC cannot filter by label, so each is named, and a notice that
/// does not concern the account stays refused. A `list` or `watch` is allowed only with a
/// `metadata.name` field selector naming one of them (`kubectl get deprecationnotice X -w`). No
/// notices: no rule at all (an empty `resourceNames` would allow every notice). Owned by the Account,
/// so it goes with it.
pub fn tenancy_role(
    account: &Account,
    notices: &[String],
) -> k8s_openapi::api::rbac::v1::ClusterRole {
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
    let name = account.name_any();
    let mut metadata = meta(&tenancy_role_name(&name), None, &name);
    metadata.owner_references = owner(account);
    let read = |resource: &str, names: Vec<String>| PolicyRule {
        api_groups: Some(vec![crate::api::GROUP.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: Some(names),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    };
    let mut rules = vec![read("accounts", vec![name])];
    let mut notices = notices.to_vec();
    notices.sort();
    notices.dedup();
    if !notices.is_empty() {
        rules.push(read("deprecationnotices", notices));
    }
    ClusterRole {
        metadata,
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// The binding of the administrators to [`tenancy_role`]; `None` without administrators.
pub fn tenancy_binding(
    account: &Account,
) -> Option<k8s_openapi::api::rbac::v1::ClusterRoleBinding> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let name = account.name_any();
    let subjects: Vec<RbacSubject> = account
        .spec
        .administrators
        .iter()
        .map(rbac_subject)
        .collect();
    if subjects.is_empty() {
        return None;
    }
    let mut metadata = meta(&tenancy_role_name(&name), None, &name);
    metadata.owner_references = owner(account);
    Some(ClusterRoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: tenancy_role_name(&name),
        },
        subjects: Some(subjects),
    })
}

/// An owner reference to `account` (cluster-scoped objects only: namespaces never get one, so that a
/// CRD uninstall cannot let the garbage collector take tenant data).
fn owner(
    account: &Account,
) -> Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>> {
    use kube::Resource;
    // No blockOwnerDeletion: it would need update on accounts/finalizers where the
    // OwnerReferencesPermissionEnforcement admission plugin runs, and nothing waits for these.
    account.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = None;
        vec![r]
    })
}

/// The operator's own binding in a tenant namespace (see [`OPERATOR_TENANT_ROLE`]).
pub fn operator_binding(account: &str, namespace: &str, operator: &RbacSubject) -> RoleBinding {
    binding(
        account,
        namespace,
        OPERATOR_BINDING,
        OPERATOR_TENANT_ROLE,
        vec![operator.clone()],
    )
    .unwrap_or_default()
}

/// The freeze quota: no new pods and no new Jobs (suspension, retention).
pub fn freeze_quota(account: &str, namespace: &str) -> ResourceQuota {
    ResourceQuota {
        metadata: meta(FREEZE_QUOTA_NAME, Some(namespace), account),
        spec: Some(ResourceQuotaSpec {
            // No pod, and no Job (defence in depth: CronJobs are suspended too).
            hard: Some(BTreeMap::from(["pods", "count/jobs.batch"].map(|r| {
                (
                    r.to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("0".into()),
                )
            }))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The bounds quota of a tenant namespace: [`BOUNDED_COUNTS`], each overridden by the same key in
/// `quota` (the package's with the account's on top, or the account's alone while its package is
/// unresolved: the bounds never wait for the account to be valid).
pub fn bounds_quota(
    account: &str,
    namespace: &str,
    quota: Option<&crate::api::ResourceMap>,
) -> ResourceQuota {
    let hard = BOUNDED_COUNTS
        .iter()
        .map(|(key, default)| {
            let value = quota.and_then(|q| q.get(*key).cloned()).unwrap_or_else(|| {
                k8s_openapi::apimachinery::pkg::api::resource::Quantity((*default).into())
            });
            (key.to_string(), value)
        })
        .collect();
    ResourceQuota {
        metadata: meta(BOUNDS_QUOTA_NAME, Some(namespace), account),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The deny-all policy of a suspended or retained namespace: no ingress, no egress.
pub fn deny_all_policy(account: &str, namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(SUSPENSION_POLICY, Some(namespace), account),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }
}

fn port_range(protocol: &str, from: i32, to: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(from)),
        end_port: (to > from).then_some(to),
    }
}

/// The egress rule: to any pod of the cluster and to any address but the denied ranges (cloud
/// metadata, and what the package adds: [`denied_cidrs`]), each excluded from its family's "anywhere"
/// block; on every port, or (without telephony) on every port but SIP's, for TCP, UDP and SCTP.
/// NetworkPolicies only allow, so "all but SIP" is the port ranges around 5060-5061.
pub fn egress_rules(
    telephony: bool,
    denied: &(Vec<String>, Vec<String>),
) -> Vec<NetworkPolicyEgressRule> {
    let ports = (!telephony).then(|| {
        let (lo, hi) = (SIP_PORTS[0], SIP_PORTS[1]);
        ["TCP", "UDP", "SCTP"]
            .into_iter()
            .flat_map(|proto| {
                [
                    port_range(proto, 1, lo - 1),
                    port_range(proto, hi + 1, 65535),
                ]
            })
            .collect()
    });
    let block = |cidr: &str, except: &[String]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.into(),
            except: (!except.is_empty()).then(|| except.to_vec()),
        }),
        ..Default::default()
    };
    vec![NetworkPolicyEgressRule {
        ports,
        to: Some(vec![
            NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                ..Default::default()
            },
            block("0.0.0.0/0", &denied.0),
            block("::/0", &denied.1),
        ]),
    }]
}

/// The namespaces whose pods may reach the tenant's: its own, by the name label the API server sets
/// (a label anyone could copy would let a forged namespace in), and the package's platform namespaces.
pub fn ingress_peers(namespaces: &[String], platform: &[LabelSelector]) -> Vec<NetworkPolicyPeer> {
    let own = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.into(),
                operator: "In".into(),
                values: Some(namespaces.to_vec()),
            }]),
            match_labels: None,
        }),
        ..Default::default()
    };
    std::iter::once(own)
        .chain(platform.iter().map(|s| NetworkPolicyPeer {
            namespace_selector: Some(s.clone()),
            ..Default::default()
        }))
        .collect()
}

/// The annotations the admission policies read on each of the account's namespaces: the tier's
/// effective policies (what the workload policies judge) and the denied ranges, SIP and platform
/// selectors (what judges the tenant's own NetworkPolicies). One source for the operator and
/// `covenant check`.
pub fn policy_annotations(
    account: &Account,
    package: Option<&SupportPackage>,
) -> BTreeMap<String, String> {
    let telephony = account.spec.network.as_ref().is_some_and(|n| n.telephony);
    // While the package cannot be resolved, the default ranges are still denied (never less).
    let denied = denied_cidrs(
        package
            .and_then(|p| p.spec.network.as_ref())
            .map(|n| n.denied_cidrs.as_slice())
            .unwrap_or_default(),
    );
    let platform = package
        .map(crate::model::package::platform_selectors)
        .unwrap_or_default();
    let mut annotations = package
        .map(|p| {
            let effective = crate::model::policies::effective(
                p.spec.policies.as_ref(),
                account.spec.policies.as_ref(),
            );
            crate::model::policies::annotations(&effective, &p.name_any())
        })
        .unwrap_or_default();
    annotations.extend(crate::model::tenant_policies::namespace_annotations(
        telephony, &denied, &platform,
    ));
    annotations
}

/// Builds every object the account wants in `input.namespaces` (pure).
pub fn build(account: &Account, input: &BuildInput<'_>) -> Desired {
    let name = account.name_any();
    let telephony = account.spec.network.as_ref().is_some_and(|n| n.telephony);
    let mut d = Desired::default();
    let (quota, limits, pod_security, platform) = match input.package {
        Some(p) => (
            Some(crate::model::package::effective_quota(account, p)),
            Some(crate::model::package::effective_limits(account, p)),
            p.spec.pod_security,
            crate::model::package::platform_selectors(p),
        ),
        None => {
            d.untouched.extend([QUOTA_NAME, LIMITS_NAME]);
            (None, None, PodSecurityLevel::Restricted, Vec::new())
        }
    };
    // The account-wide quota's shares are the rebalancer's (model::account_quota): never rewritten
    // here, and deleted as unwanted only once no accountQuota applies.
    if input.package.is_none()
        || crate::model::account_quota::effective(account, input.package).is_some()
    {
        d.untouched.insert(crate::model::account_quota::SHARE_NAME);
    }
    // While the package cannot be resolved, the default ranges are still denied (never less).
    let denied = denied_cidrs(
        input
            .package
            .and_then(|p| p.spec.network.as_ref())
            .map(|n| n.denied_cidrs.as_slice())
            .unwrap_or_default(),
    );
    // Only the namespaces built here are the tenant's: while the account is blocked, a name in its spec
    // that someone else holds is neither admitted by its isolation nor trusted by the binding policy.
    let all = &input.namespaces;
    let allowed = allowed_subjects(account);
    let policies = policy_annotations(account, input.package);
    for ns in &input.namespaces {
        d.namespaces.push(namespace_of(
            account,
            ns,
            all,
            &NamespaceInput {
                read_only: input.suspended.then_some(ReadOnly::Suspended),
                pod_security,
                scaled: input.suspended && input.scale_workloads,
                enforced: Some(enforced_marker(&allowed, all)),
                policies: policies.clone(),
            },
        ));
        d.quotas.push(bounds_quota(
            &name,
            ns,
            quota.as_ref().or(account.spec.quota.as_ref()),
        ));
        if let Some(quota) = quota.as_ref().filter(|q| !q.is_empty()) {
            d.quotas.push(ResourceQuota {
                metadata: meta(QUOTA_NAME, Some(ns), &name),
                spec: Some(ResourceQuotaSpec {
                    hard: Some(quota.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if let Some(limits) = limits.as_ref().filter(|l| !l.is_empty()) {
            d.limit_ranges.push(LimitRange {
                metadata: meta(LIMITS_NAME, Some(ns), &name),
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
        if input.suspended {
            // Only the deny-all: the allow policies are withdrawn, since any one of them would let
            // traffic through (policies add up).
            d.quotas.push(freeze_quota(&name, ns));
            d.network_policies.push(deny_all_policy(&name, ns));
        } else {
            // Pods the tenant labelled covenant.dev/narrowed get only what its own policies allow
            // (each admitted only if it narrows): Covenant's allow policies leave them out.
            d.network_policies
                .push(crate::model::tenant_policies::narrowed_policy(&name, ns));
            d.network_policies.push(NetworkPolicy {
                metadata: meta(ISOLATION_POLICY, Some(ns), &name),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(crate::model::tenant_policies::not_narrowed()),
                    policy_types: Some(vec!["Ingress".into()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(ingress_peers(all, &platform)),
                        ports: None,
                    }]),
                    egress: None,
                }),
            });
            d.network_policies.push(NetworkPolicy {
                metadata: meta(EGRESS_POLICY, Some(ns), &name),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(crate::model::tenant_policies::not_narrowed()),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(egress_rules(telephony, &denied)),
                    ingress: None,
                }),
            });
        }
        let role = if input.suspended {
            TENANT_READONLY_ROLE
        } else {
            TENANT_ADMIN_ROLE
        };
        d.role_bindings
            .extend(role_binding(&name, ns, role, &account.spec.administrators));
        if let Some(op) = input.operator {
            d.role_bindings.push(operator_binding(&name, ns, op));
        }
    }
    let mut role = tenancy_role(account, &input.notices);
    role.rules
        .get_or_insert_default()
        .extend(input.self_service.iter().cloned());
    d.cluster_roles.push(role);
    d.cluster_role_bindings.extend(tenancy_binding(account));
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
            types::ACCESS_GRANTED,
            false,
            reasons::SUSPENDED,
            "administrators have read-only access while the account is suspended",
        )
    } else if account.spec.administrators.is_empty() {
        Cond::new(
            types::ACCESS_GRANTED,
            true,
            "NoAdministrators",
            "no administrators are appointed (§4.2(2)): add spec.administrators",
        )
    } else {
        Cond::new(
            types::ACCESS_GRANTED,
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
            types::NAMESPACES_READY,
            true,
            "Created",
            format!("namespaces: {}", account.desired_namespaces().join(", ")),
        ),
        Cond::new(
            types::QUOTA_APPLIED,
            true,
            "Applied",
            format!(
                "quota and limits of package {:?} applied",
                package.name_any()
            ),
        ),
        {
            // A refused platform selector is not applied: the tenant stays isolated (True), and the
            // message says what the package must change before the platform's traffic gets in.
            let refused = crate::model::package::refused_ingress_from(package);
            let message = format!(
                "ingress only from the tenant's namespaces and the package's platform namespaces; egress to cloud metadata denied; {sip}"
            );
            if refused.is_empty() {
                Cond::new(types::NETWORK_ISOLATED, true, "Isolated", message)
            } else {
                Cond::new(
                    types::NETWORK_ISOLATED,
                    true,
                    crate::model::package::REFUSED_PLATFORM_SELECTOR,
                    format!("{message}; {}", refused.join("; ")),
                )
            }
        },
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

/// What a released namespace keeps (§6): its labels plus the retained-until label and the read-only
/// label (writes refused in the API server), read-only access for the administrators, a freeze quota
/// so nothing new starts, and the deny-all policy as its only policy.
#[derive(Clone, Debug)]
pub struct Released {
    /// The namespace, labelled retained and read-only.
    pub namespace: Namespace,
    /// The administrators' read-only binding.
    pub role_binding: Option<RoleBinding>,
    /// No new pods.
    pub freeze: ResourceQuota,
    /// No traffic.
    pub deny_all: NetworkPolicy,
}

/// The released state of the account's namespace `ns`, retained until `until`.
pub fn released(account: &Account, ns: &str, until: Timestamp) -> Released {
    let name = account.name_any();
    let mut n = namespace(
        account,
        ns,
        &NamespaceInput {
            read_only: Some(ReadOnly::Retained),
            pod_security: PodSecurityLevel::Restricted,
            scaled: false,
            enforced: Some(enforced_marker(&allowed_subjects(account), &[])),
            policies: BTreeMap::new(),
        },
    );
    n.metadata.labels.get_or_insert_default().insert(
        RETAINED_UNTIL_LABEL.to_string(),
        retained_until_label(until),
    );
    Released {
        namespace: n,
        role_binding: role_binding(
            &name,
            ns,
            TENANT_READONLY_ROLE,
            &account.spec.administrators,
        ),
        freeze: freeze_quota(&name, ns),
        deny_all: deny_all_policy(&name, ns),
    }
}

/// The managed objects a released namespace no longer has: the admin binding and the allow policies.
pub const WITHDRAWN_ON_RELEASE: [(&str, &str); 4] = [
    ("RoleBinding", TENANT_ADMIN_ROLE),
    ("NetworkPolicy", ISOLATION_POLICY),
    ("NetworkPolicy", EGRESS_POLICY),
    (
        "NetworkPolicy",
        crate::model::tenant_policies::NARROWED_POLICY,
    ),
];
