use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A map of resource name to quantity, as in a ResourceQuota's `hard` or a LimitRange item. Fields of
/// this type use [`resource_map_schema`], so that the API server refuses what is not a quantity.
pub type ResourceMap = BTreeMap<String, Quantity>;

/// A resource quantity that is not negative, as the API server parses one (`500m`, `1Gi`, `2e3`, `4`).
/// The pattern Kubernetes publishes for quantities, without the sign: a ResourceQuota or LimitRange
/// refuses negative amounts anyway, and would do so only after the Account was accepted.
pub const QUANTITY_PATTERN: &str = r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// The schema of an optional [`ResourceMap`] field: resource names to quantities (a string matching
/// [`QUANTITY_PATTERN`], or a whole number that is not negative), so a value that is no quantity is
/// refused where it is written instead of by the ResourceQuota or LimitRange built from it.
pub fn resource_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "maxProperties": 64,
        "additionalProperties": {
            "description": "A quantity that is not negative, e.g. 500m, 1Gi, 4.",
            "x-kubernetes-int-or-string": true,
            "pattern": QUANTITY_PATTERN,
            "minimum": 0,
        },
    })
}

/// The kind of an RBAC subject.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum SubjectKind {
    /// A user, as authenticated by the cluster.
    User,
    /// A group of users.
    Group,
    /// A ServiceAccount; `namespace` is required.
    ServiceAccount,
}

/// An RBAC subject: who is granted access (§4.2(2): appointed organizational administrators).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, KubeSchema,
)]
#[x_kube(
    validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)")
        .message("namespace is required for a ServiceAccount subject and not allowed for a User or Group"),
    validation = Rule::new("self.kind != 'ServiceAccount' || (size(self.name) <= 253 && self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))")
        .message("a ServiceAccount subject's name must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')")
)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// The user, group or ServiceAccount name. No control characters (a newline would split the
    /// admission policy's list of allowed subjects) and no surrounding spaces.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$")
    )]
    pub name: String,
    /// The ServiceAccount's namespace (ServiceAccount subjects only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
}

/// LimitRange defaults for containers: what a container gets when it asks for nothing, and the most
/// it may ask for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Default limits of a container that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_map_schema")]
    pub default: Option<ResourceMap>,
    /// Default requests of a container that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_map_schema")]
    pub default_request: Option<ResourceMap>,
    /// The most a single container may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_map_schema")]
    pub max: Option<ResourceMap>,
}

impl LimitsSpec {
    /// `self` with every entry of `overrides` on top (per resource, so an override of `cpu` keeps the
    /// package's `memory`).
    pub fn overlay(&self, overrides: &LimitsSpec) -> LimitsSpec {
        fn merge(base: &Option<ResourceMap>, top: &Option<ResourceMap>) -> Option<ResourceMap> {
            match (base, top) {
                (None, None) => None,
                (Some(b), None) => Some(b.clone()),
                (None, Some(t)) => Some(t.clone()),
                (Some(b), Some(t)) => {
                    let mut m = b.clone();
                    m.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(m)
                }
            }
        }
        LimitsSpec {
            default: merge(&self.default, &overrides.default),
            default_request: merge(&self.default_request, &overrides.default_request),
            max: merge(&self.max, &overrides.max),
        }
    }

    /// True when no field holds an entry (nothing to put in a LimitRange).
    pub fn is_empty(&self) -> bool {
        [&self.default, &self.default_request, &self.max]
            .iter()
            .all(|m| m.as_ref().is_none_or(BTreeMap::is_empty))
    }
}

/// The regex of a DNS-1123 label (a namespace name).
pub const DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// The regex of a DNS-1123 subdomain (the name of a cluster-scoped object).
pub const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
