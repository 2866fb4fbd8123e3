use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{LimitsSpec, ResourceMap, Subject};

/// A tenant (§1: the client's Account). Reconciled into namespaces, quota, limits, network isolation
/// and RBAC for its appointed administrators.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "covenant.dev",
    version = "v1alpha1",
    kind = "Account",
    status = "AccountStatus",
    shortname = "acct",
    category = "covenant",
    derive = "PartialEq",
    derive = "Default",
    doc = "A tenant: namespaces, quota, limits, network isolation and RBAC for its administrators.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Package", type_ = "string", json_path = ".status.supportPackage"),
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".status.namespaces", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].message"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("an Account name must be a DNS-1123 label (at most 63 lowercase letters, digits and '-'): it names the tenant's default namespace and the covenant.dev/account label"),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// A human-readable name for the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// The tenant's namespaces (DNS-1123 labels). Empty means one namespace named after the account.
    /// The support package's `maxNamespaces` caps the count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub namespaces: Vec<String>,

    /// The appointed organizational administrators (§4.2(2)): they get the tenant-admin role in every
    /// namespace of the account, and nobody else gets it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub administrators: Vec<Subject>,

    /// Further subjects that RoleBindings inside the tenant may name (consented third-party access, §1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_subjects: Vec<Subject>,

    /// The client's own organization (§4.2(2)): its administrators grant and end access for the
    /// organization's people themselves, with RoleBindings in the tenant's namespaces, without the
    /// platform. Third parties still need `allowedSubjects` (§1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationSpec>,
    /// The SupportPackage this account is on; absent means the package marked `default: true` (§3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub support_package: Option<String>,

    /// ResourceQuota entries on top of the package's (per resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub quota: Option<ResourceMap>,

    /// Account-wide cap entries on top of the package's `accountQuota` (per resource): the sum over
    /// all the account's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub account_quota: Option<ResourceMap>,

    /// LimitRange container defaults on top of the package's (per resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,

    /// Network permissions of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// Narrows the package's `policies` for this account (each list a subset of the package's, each
    /// registry under one of the package's, the package's forced node labels kept). The API server
    /// refuses an override that widens the package (admission policy `covenant-account-policies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<super::Policies>,

    /// The monthly review of who has access (§4.2(2)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_review: Option<AccessReviewSpec>,

    /// Answers the platform received elsewhere (e-mail), with their time; tenants answer for themselves
    /// with NoticeResponse objects in their namespaces (preamble: the client may reject an amendment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["notice"])
    )]
    pub notice_responses: Vec<RecordedResponse>,

    /// What happens to the namespaces when the Account is deleted: `Retain` (default) releases them
    /// for `retentionMonths` (§6), `Delete` deletes them with the Account.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How long retained namespaces are kept after the Account is deleted, in calendar months (§6: up
    /// to 13).
    #[serde(default = "default_retention_months")]
    #[schemars(range(min = 0, max = 13))]
    pub retention_months: i32,
}

fn default_retention_months() -> i32 {
    13
}

/// Network permissions of a tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// §1 forbids operating a telecommunications service unless permitted: egress to SIP (5060 and
    /// 5061, TCP and UDP) is denied unless this is true.
    #[serde(default)]
    pub telephony: bool,
}

/// The client's own organization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// Identity domains the client owns: a User named `<person>@<domain>` (one `@`) is one of the
    /// organization's people, whom the administrators may bind in the tenant's namespaces. The
    /// platform's identity provider must issue such names only to the domain's owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
        ),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub domains: Vec<String>,
}

/// The last access review.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessReviewSpec {
    /// When the administrators last reviewed who has access (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reviewed_at: Option<Time>,
}

/// An answer the platform received elsewhere (e-mail) and recorded on the Account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedResponse {
    /// The DeprecationNotice's name.
    #[schemars(length(min = 1, max = 253))]
    pub notice: String,
    /// `Accept` or `Reject`.
    pub decision: ResponseDecision,
    /// When the tenant answered (RFC 3339). A rejection after the notice's deadline is not honoured.
    pub at: Time,
}

/// A tenant's answer to a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ResponseDecision {
    /// The tenant accepts the change.
    Accept,
    /// The tenant rejects the change (amendments only, until the rejection deadline).
    Reject,
}

/// What deleting an Account does to its namespaces.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Release the namespaces, read-only, for `retentionMonths`, then delete them (§6).
    #[default]
    Retain,
    /// Delete the namespaces with the Account.
    Delete,
}

/// The lifecycle phase of an Account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum AccountPhase {
    /// Objects are being created, or the account is not yet Ready.
    Provisioning,
    /// Every managed object is in place.
    Active,
    /// A Suspension of the account is active.
    Suspended,
    /// Something is wrong; the conditions say what.
    Degraded,
    /// The Account is being deleted.
    Terminating,
}

/// The observed state of an Account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AccountPhase>,
    /// The generation the status describes (kstatus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The support package in force (the resolved default when the spec names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_package: Option<String>,
    /// The namespaces Covenant manages for this account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Where each of `namespaces` came from: `Declared` (spec.namespaces) or `SelfService` (created
    /// by an administrator with the label `covenant.dev/tenant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub namespace_origins: Vec<NamespaceOrigin>,
    /// When the next access review is due (30 days after the last one, §4.2(2)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_review_due_at: Option<Time>,
    /// Every notice that concerns the account, with its deadline and the account's decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<AccountNoticeStatus>,
    /// Ready, NamespacesReady, QuotaApplied, NetworkIsolated, AccessGranted, Suspended,
    /// AccessReviewCurrent, TermsCurrent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The account-wide quota (`accountQuota`): the cap and what all the account's namespaces use
    /// together, per resource. Written by the account-quota rebalancer (its own field manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<AccountQuotaStatus>,
}

/// The account-wide quota in force and its use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountQuotaStatus {
    /// The cap per resource (the package's `accountQuota` with the account's on top).
    #[serde(default)]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub hard: ResourceMap,
    /// The sum of what the account's namespaces use, per capped resource.
    #[serde(default)]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub used: ResourceMap,
}

/// One namespace of an account and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceOrigin {
    /// The namespace.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
}

/// Where an account's namespace came from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Origin {
    /// Declared by the platform in `spec.namespaces`.
    Declared,
    /// Created by one of the account's administrators.
    SelfService,
}

/// One notice as it concerns one account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountNoticeStatus {
    /// The DeprecationNotice's name.
    pub name: String,
    /// The notice's type.
    #[serde(rename = "type")]
    pub notice_type: super::NoticeType,
    /// When the change takes effect (the enforced instant).
    pub effective_at: Time,
    /// Until when the account may reject it (amendments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_deadline: Option<Time>,
    /// What changes, in a sentence (the notice's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Where the full text of the change is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The account's decision.
    pub decision: Decision,
    /// The answer that decides it: a NoticeResponse (`<namespace>/<name>`) or `spec.noticeResponses`.
    /// Recorded here with its time, it stands even once the NoticeResponse is gone (its namespace
    /// deleted): an answer, once given, is never undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// When that answer was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<Time>,
    /// Why a response was not honoured, when one was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An account's standing on a notice.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Decision {
    /// No answer yet and the deadline has not passed.
    Pending,
    /// The account accepted.
    Accepted,
    /// The account did not reject by the deadline.
    DeemedAccepted,
    /// The account rejected in time.
    Rejected,
}

impl Account {
    /// The namespaces the account asks for: `spec.namespaces`, or one named after the account.
    pub fn desired_namespaces(&self) -> Vec<String> {
        if self.spec.namespaces.is_empty() {
            vec![kube::ResourceExt::name_any(self)]
        } else {
            self.spec.namespaces.clone()
        }
    }
}
