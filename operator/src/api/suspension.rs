use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A temporary suspension of a tenant's access (§2.4), for one of the three causes the terms allow.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "covenant.dev",
    version = "v1alpha1",
    kind = "Suspension",
    status = "SuspensionStatus",
    shortname = "susp",
    category = "covenant",
    derive = "PartialEq",
    doc = "A temporary suspension of a tenant's access, for one of the three causes the terms allow.",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.account"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".spec.reason"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ends", type_ = "string", json_path = ".spec.endAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.withholdNotice) || !self.withholdNotice || self.reason == 'LegalCompliance'")
        .message("withholdNotice is allowed only with reason LegalCompliance: §2.4 lets notice of the cause be withheld only to the extent the law requires"),
    validation = Rule::new("!has(self.startAt) || !has(self.endAt) || timestamp(self.endAt) > timestamp(self.startAt)")
        .message("endAt must be after startAt"),
)]
pub struct SuspensionSpec {
    /// The Account to suspend (immutable: lift this suspension and create another instead).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("account is immutable: delete this Suspension and create a new one"))]
    pub account: String,
    /// One of the three causes §2.4 allows.
    pub reason: SuspensionReason,
    /// The cause, as told to the client (§2.4: notice of the cause for suspension).
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("cause must not be empty: the client must be told the cause of a suspension (§2.4)"))]
    pub cause: String,
    /// Withhold the notice of the cause (only with `LegalCompliance`, "to the extent legally permitted").
    #[serde(default)]
    pub withhold_notice: bool,
    /// When the suspension starts (default: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Time>,
    /// When the suspension is lifted by itself (default: when the Suspension is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<Time>,
    /// Scale the tenant's Deployments and StatefulSets to zero while suspended (restored when lifted).
    #[serde(default)]
    pub scale_workloads: bool,
}

/// The three causes for which §2.4 allows a suspension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SuspensionReason {
    /// (a) necessary to comply with law.
    LegalCompliance,
    /// (b) use does not comply with the Acceptable Use Policy.
    AcceptableUsePolicy,
    /// (c) the client is in material breach of the Agreement.
    MaterialBreach,
}

/// Where a Suspension is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SuspensionPhase {
    /// `startAt` is in the future.
    Pending,
    /// The account is suspended.
    Active,
    /// `endAt` passed; access was restored.
    Lifted,
    /// The Suspension cannot take effect (e.g. unknown account); the conditions say why.
    Invalid,
}

/// The observed state of a Suspension.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspensionStatus {
    /// Pending, Active, Lifted or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SuspensionPhase>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the client was given notice of the cause (absent while withheld).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_given_at: Option<Time>,
    /// When the suspension was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<Time>,
    /// `Ready` (the suspension is in force as specified), `NoticeGiven`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
