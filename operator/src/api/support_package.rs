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
    /// A cap on the sum over all the namespaces of an account on this package, for any resource a
    /// ResourceQuota knows (`pods`, `requests.cpu`, `requests.storage`, `count/configmaps`, ...). Kept
    /// by a ResourceQuota `covenant-account-share` per namespace whose `hard` values add up to at
    /// most the cap; Covenant moves the free room to the namespaces that use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resource_map_schema")]
    pub account_quota: Option<ResourceMap>,
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
    /// What the tier's tenants may use (registries, classes, scheduling), enforced by the API server
    /// on every path that makes a pod. An Account may narrow these, never widen them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<super::Policies>,
    /// How the administrators of accounts on this package create namespaces themselves (a Namespace
    /// labelled `covenant.dev/tenant: <account>`), up to `maxNamespaces` counted over all the account's
    /// namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_service: Option<SelfServiceSpec>,
}

/// Self-service namespaces of a package's accounts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfServiceSpec {
    /// Whether the administrators may create namespaces themselves (default true). Turning it off
    /// takes nothing away: the namespaces they made stay the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Namespaces the administrators make must be named `<account>-<something>` (like Capsule's
    /// `forceTenantPrefix`), enforced by the API server.
    #[serde(default)]
    pub require_prefix: bool,
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
    /// tenants' pods, as namespace label selectors. A selector may use only `kubernetes.io/metadata.name`
    /// (which the API server sets to the namespace's name) and `covenant.dev/*` labels (which only
    /// Covenant and cluster administrators may set on a namespace): any other label can be set by
    /// whoever may patch a namespace, who would thereby let it reach every tenant. `matchExpressions`
    /// use `In` (or `Exists` on a `covenant.dev/*` key). A tenant's own namespace is never a platform
    /// namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "platform_selectors_schema")]
    pub ingress_from: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Addresses the tenants' pods may never reach, as CIDRs such as `10.20.0.0/16` or
    /// `fd12:3456::/48`, in addition to the cloud metadata addresses that are always denied:
    /// 169.254.0.0/16, 100.100.100.200/32, fd00:ec2::254/128, fd00:c1::a9fe:a9fe/128,
    /// 64:ff9b::a9fe:a9fe/128, fd20:ce::254/128 and fe80::/10. The list only adds to those, never
    /// removes from them; the NAT64 form (`64:ff9b::/96`) of each IPv4 range is denied too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "denied_cidrs_schema")]
    pub denied_cidrs: Vec<String>,
}

/// The label keys a platform namespace may be selected by, as the CEL rules and the operator state them.
pub const PLATFORM_SELECTOR_KEYS: &str = "kubernetes.io/metadata.name (set by the API server) or a covenant.dev/* label (set only by Covenant and cluster administrators)";

/// The schema of `network.ingressFrom`: bounded label selectors whose keys the API server restricts
/// (see [`PackageNetwork::ingress_from`]). `crate::model::package::refused_ingress_from` states the
/// same rules for packages stored before they existed.
pub fn platform_selectors_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let key_rule = "self == 'kubernetes.io/metadata.name' || self.startsWith('covenant.dev/')";
    let key_message = format!(
        "a platform namespace may be selected only by {PLATFORM_SELECTOR_KEYS}: any other namespace label can be set by whoever may patch a namespace, which would let that namespace reach every tenant"
    );
    schemars::json_schema!({
        "type": "array",
        "maxItems": 32,
        "items": {
            "description": "A selector of platform namespaces (keys: kubernetes.io/metadata.name or covenant.dev/*).",
            "type": "object",
            "properties": {
                "matchLabels": {
                    "description": "Labels the namespace carries: keys kubernetes.io/metadata.name or covenant.dev/* only.",
                    "type": "object",
                    "maxProperties": 16,
                    "additionalProperties": { "type": "string", "maxLength": 63 },
                    "x-kubernetes-validations": [{
                        "rule": format!("self.all(k, {})", key_rule.replace("self", "k")),
                        "message": format!("matchLabels: {key_message}"),
                    }],
                },
                "matchExpressions": {
                    "description": "Requirements on the namespace's labels: key kubernetes.io/metadata.name or covenant.dev/*, operator In (or Exists on a covenant.dev/* key).",
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "required": ["key", "operator"],
                        "properties": {
                            "key": { "type": "string", "maxLength": 317 },
                            "operator": { "type": "string", "maxLength": 16 },
                            "values": {
                                "type": "array",
                                "maxItems": 64,
                                "items": { "type": "string", "maxLength": 63 },
                            },
                        },
                        "x-kubernetes-validations": [
                            {
                                "rule": key_rule.replace("self", "self.key"),
                                "message": format!("matchExpressions key: {key_message}"),
                            },
                            {
                                "rule": "self.operator == 'In' || (self.operator == 'Exists' && self.key.startsWith('covenant.dev/'))",
                                "message": "matchExpressions operator must be In (or Exists on a covenant.dev/* key): NotIn and DoesNotExist select namespaces that lack a label, which anyone who may create a namespace can make, and Exists on kubernetes.io/metadata.name selects every namespace",
                            },
                            {
                                "rule": "self.operator == 'In' ? has(self.values) && size(self.values) > 0 : self.operator != 'Exists' || !has(self.values) || size(self.values) == 0",
                                "message": "matchExpressions values: In needs at least one value, Exists takes none",
                            },
                        ],
                    },
                },
            },
            "x-kubernetes-validations": [{
                "rule": "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                "message": "an empty selector selects every namespace, other tenants' too: name the platform namespaces, e.g. matchLabels: {kubernetes.io/metadata.name: ingress-nginx}",
            }],
        },
    })
}

/// The schema of `network.deniedCidrs`: CIDRs, checked by the API server's CEL `isCIDR`.
pub fn denied_cidrs_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 64,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": "isCIDR(self) && cidr(self).prefixLength() > 0",
                "message": "each deniedCidrs entry must be a CIDR with a prefix length of at least 1, e.g. 10.20.0.0/16 or fd12:3456::/48 (it is excluded from egress to 0.0.0.0/0 or ::/0)",
            }],
        },
    })
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
