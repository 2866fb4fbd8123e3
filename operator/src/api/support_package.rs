use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{LimitsSpec, ResourceMap};

/// A service tier (§3: Platform Support Packages): service levels and the quota and limit defaults
/// of the accounts on it.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "covenant.dev",
    version = "v1alpha1",
    kind = "SupportPackage",
    status = "SupportPackageStatus",
    shortname = "spkg",
    category = "covenant",
    derive = "PartialEq",
    derive = "Default",
    doc = "A service tier: service levels and the quota and limit defaults of the accounts on it.",
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".status.accounts"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct SupportPackageSpec {
    /// A human-readable name, e.g. "Standard Support Features".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// The package of accounts that name none (§3: "if none specified ... Standard"). Exactly one
    /// package should be the default.
    #[serde(default)]
    pub default: bool,
    /// Response times by severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["severity"])
    )]
    pub service_levels: Vec<ServiceLevel>,
    /// ResourceQuota `hard` of each namespace of an account on this package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub quota: Option<ResourceMap>,
    /// LimitRange container defaults of each namespace of an account on this package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    /// The most namespaces an account on this package may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_namespaces: Option<i32>,
    /// The Pod Security level enforced in the namespaces of accounts on this package (`warn` and
    /// `audit` are always `restricted`).
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    /// Network settings of the accounts on this package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<PackageNetwork>,
}

/// A Pod Security Standard a tenant namespace enforces.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// The hardened standard: non-root, no privilege escalation, a seccomp profile, no capabilities.
    #[default]
    Restricted,
    /// Blocks known privilege escalations (privileged, host namespaces, hostPath, ...).
    Baseline,
}

impl PodSecurityLevel {
    /// The value of the `pod-security.kubernetes.io/enforce` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
        }
    }
}

/// Network settings of a package.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageNetwork {
    /// Platform namespaces (e.g. the ingress controller's and monitoring's) whose pods may reach the
    /// tenants' pods, as namespace label selectors. Tenants cannot label namespaces, so a selector
    /// should name labels only the platform sets (`kubernetes.io/metadata.name` is the safest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ingress_from: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// A service level: how soon support answers an issue of a severity, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevel {
    /// The severity, e.g. `P1`..`P4` or `Critical`.
    #[schemars(length(min = 1, max = 32))]
    pub severity: String,
    /// The initial response time as a duration, e.g. `30m`, `4h`, `2d`.
    #[schemars(regex(pattern = r"^([0-9]+(m|h|d))+$"))]
    pub initial_response: String,
    /// When support is available.
    pub coverage: Coverage,
}

/// Support coverage hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Coverage {
    /// Around the clock, every day.
    #[serde(rename = "24x7")]
    AllHours,
    /// Business hours on business days.
    BusinessHours,
}

/// The observed state of a SupportPackage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportPackageStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many accounts are on this package.
    #[serde(default)]
    pub accounts: i32,
    /// `Ready`; False when the package conflicts with another default package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
