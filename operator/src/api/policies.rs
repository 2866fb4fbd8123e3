//! What a tier's tenants may use (`SupportPackage.spec.policies`, narrowed by
//! `Account.spec.policies`): registries, classes, scheduling. Enforced inside the API server by the
//! admission policies in `deploy/workload-policies-policy.yaml`, which read each tenant namespace's
//! effective policy from annotations only the operator may write.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What a tier's tenants may use. An absent field leaves that concern unrestricted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Where container images may come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagePolicy>,
    /// StorageClasses a PersistentVolumeClaim may name; `default` is set on claims that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_classes: Option<ClassPolicy>,
    /// IngressClasses an Ingress may name; `default` is set on Ingresses that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_classes: Option<ClassPolicy>,
    /// GatewayClasses a Gateway may name (enforced only where the Gateway API is served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_classes: Option<ClassPolicy>,
    /// PriorityClasses a pod may name; `default` is set on workload pod templates that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_classes: Option<ClassPolicy>,
    /// RuntimeClasses a pod may name; `default` is set on workload pod templates that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_classes: Option<ClassPolicy>,
    /// Where the tier's pods run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingPolicy>,
    /// Which taints the tier's pods may tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<TolerationPolicy>,
    /// Which hostnames the tier's Ingresses may route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<HostnamePolicy>,
    /// What the tier's Ingresses may ask of the ingress controller. Absent: configuration snippets are
    /// refused (they are refused in every tenant namespace unless the package allows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressPolicy>,
}

/// Which hostnames the tier's Ingresses may route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostnamePolicy {
    /// Host patterns: a host (`shop.example`) matches itself only; a wildcard (`*.acme.example`)
    /// matches any host one label under it (`shop.acme.example`, not `a.b.acme.example` nor
    /// `acme.example`) and the same wildcard. Every rule host and TLS host of an Ingress must match
    /// one, and an Ingress without host (the catch-all) is refused. Empty: no host is allowed.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            )
        ),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed: Vec<String>,
}

/// What the tier's Ingresses may ask of the ingress controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressPolicy {
    /// Whether Ingresses may carry annotations that inject configuration into the shared ingress
    /// controller (ingress-nginx's `nginx.ingress.kubernetes.io/*-snippet`: configuration-snippet,
    /// server-snippet, stream-snippet, auth-snippet, ...). Default false: refused.
    #[serde(default)]
    pub allow_snippets: bool,
}

/// Where container images may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicy {
    /// Prefixes of the normalised image reference (`nginx` is `docker.io/library/nginx`, `foo/bar` is
    /// `docker.io/foo/bar`), e.g. `registry.example/` or `docker.io/library/`. End a registry with `/`:
    /// `registry.example` alone also matches `registry.example.evil.io/...`.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9][a-z0-9._:/@-]*$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_registries: Vec<String>,
}

/// Which classes of a kind the tier's tenants may name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.default) || self.default in self.allowed")
        .message("default must be one of allowed")
)]
#[serde(rename_all = "camelCase")]
pub struct ClassPolicy {
    /// The class names tenants may use.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        ),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed: Vec<String>,
    /// The class set on objects that name none (one of `allowed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub default: Option<String>,
}

/// Where the tier's pods run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    /// Node labels forced onto every pod of the tier (`spec.nodeSelector`); a pod cannot override
    /// them.
    #[serde(default)]
    #[schemars(schema_with = "node_selector_schema")]
    pub node_selector: BTreeMap<String, String>,
}

fn node_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {
            "type": "string",
            "maxLength": 63,
            "pattern": r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
        }
    })
}

/// Which taints the tier's pods may tolerate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TolerationPolicy {
    /// A pod's toleration is allowed when one entry matches it: every field the entry sets is equal
    /// to the toleration's (an unset field matches anything). The tolerations the API server adds to
    /// every pod (`node.kubernetes.io/not-ready` and `unreachable`, NoExecute) are always allowed.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub allowed: Vec<AllowedToleration>,
}

/// A toleration pattern.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, KubeSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AllowedToleration {
    /// The taint key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
        )
    )]
    pub key: Option<String>,
    /// `Equal` or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Equal|Exists)$"))]
    pub operator: Option<String>,
    /// The taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 63),
        regex(pattern = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
    )]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(NoSchedule|PreferNoSchedule|NoExecute)$"))]
    pub effect: Option<String>,
}
