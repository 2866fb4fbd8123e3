use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An amendment to the terms, a discontinuation, or an update of URL terms, with the notice the
/// terms require (preamble, §2.1–§2.3).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "covenant.dev",
    version = "v1alpha1",
    kind = "DeprecationNotice",
    status = "DeprecationNoticeStatus",
    shortname = "notice",
    category = "covenant",
    derive = "PartialEq",
    doc = "An amendment, discontinuation or URL-terms update, with the notice window the terms require.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Window",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"NoticeWindowSatisfied\")].reason"
    ),
    printcolumn(
        name = "Served",
        type_ = "date",
        json_path = ".status.servedAt",
        priority = 1
    ),
    printcolumn(
        name = "Effective At",
        type_ = "string",
        json_path = ".status.enforcedEffectiveAt"
    ),
    printcolumn(
        name = "Reject By",
        type_ = "string",
        json_path = ".status.rejectionDeadline"
    ),
    printcolumn(
        name = "Effective",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Effective\")].status"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.counts.pending",
        priority = 1
    ),
    printcolumn(
        name = "Rejected",
        type_ = "integer",
        json_path = ".status.counts.rejected",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.servedAt) == has(oldSelf.servedAt) && (!has(self.servedAt) || self.servedAt == oldSelf.servedAt)")
        .message("spec.servedAt can be given only when the notice is created, and never changed: a notice, once served, cannot be moved or shortened"),
    validation = Rule::new("self.type != 'Amendment' || !has(self.exemption)")
        .message("spec.exemption applies only to a Discontinuation (§2.1) or a URLTermsUpdate (§2.2): §2.3 does not reach amendments, which always need 30 days' notice (preamble); remove spec.exemption"),
    validation = Rule::new("self.type != 'Discontinuation' || has(self.service)")
        .message("a Discontinuation must name the service, application or functionality that goes away in spec.service"),
)]
pub struct DeprecationNoticeSpec {
    /// `Amendment`, `Discontinuation` or `URLTermsUpdate`.
    #[serde(rename = "type")]
    pub notice_type: NoticeType,
    /// What changes, in a sentence.
    #[schemars(length(min = 1, max = 1024))]
    pub summary: String,
    /// Where the full text of the change is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: Option<String>,
    /// The service, application or functionality concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service: Option<String>,
    /// A substantially similar replacement (§2.1): a discontinuation with one needs no 6-month notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub replacement: Option<String>,
    /// When the change is requested to take effect (RFC 3339).
    pub effective_at: Time,
    /// When notice was given, for notices imported from elsewhere; never in the future. Default: when
    /// Covenant first observed the notice. Can be given only when the notice is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_at: Option<Time>,
    /// §2.3: discontinuations and URL-terms updates required by law or to address a material security
    /// risk are not bound by the windows (never on an Amendment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<Exemption>,
    /// The accounts concerned; empty selects every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<LabelSelector>,
}

/// The kind of change a notice announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum NoticeType {
    /// A change to the terms: at least 30 days' notice; tenants may reject it.
    Amendment,
    /// A service, application or material functionality goes away: at least 6 months' notice.
    Discontinuation,
    /// An update of URL terms (§2.2): effective no earlier than notice.
    #[serde(rename = "URLTermsUpdate")]
    UrlTermsUpdate,
}

/// Why a change is not bound by the notice windows (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Exemption {
    /// Required to comply with applicable law.
    LegalRequirement,
    /// Addresses a material security risk.
    SecurityRisk,
}

/// The observed state of a DeprecationNotice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeprecationNoticeStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When notice was served: recorded once, never moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_at: Option<Time>,
    /// The `effectiveAt` the notice was last served for: moving `effectiveAt` earlier than this serves
    /// the notice again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_for: Option<Time>,
    /// When the notice was served again because `effectiveAt` moved earlier: the windows count from
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_at: Option<Time>,
    /// The instant the change takes effect: the requested one, or the earliest lawful one when the
    /// requested window is too short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_effective_at: Option<Time>,
    /// Amendments: until when a tenant may reject; silence until then is deemed acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_deadline: Option<Time>,
    /// How many selected accounts are in each decision. No row per account: each account's own
    /// decision is on its Account (`status.notices`), so the notice's size does not grow with the
    /// number of tenants, and the tenants it concerns can read it without learning of each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<DecisionCounts>,
    /// `NoticeWindowSatisfied`, `Effective`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Selected accounts per decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionCounts {
    /// Not answered, deadline not passed.
    pub pending: i32,
    /// Accepted explicitly.
    pub accepted: i32,
    /// Did not reject in time.
    pub deemed_accepted: i32,
    /// Rejected in time.
    pub rejected: i32,
}
