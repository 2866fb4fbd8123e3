//! Manifests and small checks the tests share.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource;
use serde_json::{Value, json};

/// The quota of [`package`] when no other is given.
pub fn default_quota() -> Value {
    json!({ "pods": "4", "requests.cpu": "2", "configmaps": "20" })
}

/// The limits of [`package`].
pub fn default_limits() -> Value {
    json!({
        "default": { "cpu": "200m", "memory": "128Mi" },
        "defaultRequest": { "cpu": "100m", "memory": "64Mi" },
        "max": { "cpu": "1", "memory": "1Gi" }
    })
}

/// A SupportPackage (never `default: true`: the shared cluster's default is `standard`) with `quota`
/// and [`default_limits`].
pub fn package(name: &str, quota: Value) -> String {
    json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "SupportPackage",
        "metadata": { "name": name },
        "spec": {
            "displayName": format!("e2e package {name}"),
            "serviceLevels": [{ "severity": "P1", "initialResponse": "4h", "coverage": "24x7" }],
            "quota": quota,
            "limits": default_limits(),
            "maxNamespaces": 3
        }
    })
    .to_string()
}

/// An Account on `package` (None: the default package) with `namespaces` (empty: the default one),
/// User administrators, and `extra` fields merged into its spec.
pub fn account(
    name: &str,
    package: Option<&str>,
    namespaces: &[&str],
    admins: &[&str],
    extra: Value,
) -> String {
    let mut spec = serde_json::Map::new();
    if let Some(p) = package {
        spec.insert("supportPackage".into(), json!(p));
    }
    if !namespaces.is_empty() {
        spec.insert("namespaces".into(), json!(namespaces));
    }
    if !admins.is_empty() {
        let subjects: Vec<Value> = admins
            .iter()
            .map(|a| json!({ "kind": "User", "name": a }))
            .collect();
        spec.insert("administrators".into(), Value::Array(subjects));
    }
    if let Value::Object(extra) = extra {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Account",
        "metadata": { "name": name },
        "spec": spec
    })
    .to_string()
}

/// The spec of a pause pod that the `restricted` Pod Security level admits (tenant namespaces enforce
/// it): a non-root user, the runtime's default seccomp profile, no privilege escalation, no
/// capabilities.
pub fn restricted_pod_spec() -> Value {
    json!({
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "seccompProfile": { "type": "RuntimeDefault" }
        },
        "containers": [{
            "name": "pause",
            "image": "registry.k8s.io/pause:3.10",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] }
            }
        }]
    })
}

/// A Pod that never runs (no kubelet): enough for quota and RBAC checks; `restricted`-compliant.
pub fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": restricted_pod_spec()
    }))
    .expect("a valid Pod")
}

/// A Deployment of one pause replica; its pod template is `restricted`-compliant.
pub fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": restricted_pod_spec()
            }
        }
    }))
    .expect("a valid Deployment")
}

/// A string map from pairs.
pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A map of quantities as strings (empty when absent).
pub fn quantities(m: &Option<BTreeMap<String, Quantity>>) -> BTreeMap<String, String> {
    m.as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// A ResourceQuota's `spec.hard` as strings.
pub fn hard(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// A ResourceQuota's `status.hard` as strings (filled by the quota controller; admission enforces the
/// quota only once it is there).
pub fn status_hard(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.status
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// Whether some egress rule of `np` lets pods reach `port`/`protocol` on some destination. Rules
/// without ports allow every port; a port entry without a port allows every port of its protocol.
pub fn egress_allows(np: &NetworkPolicy, protocol: &str, port: i32) -> bool {
    let Some(spec) = &np.spec else { return false };
    spec.egress.iter().flatten().any(|rule| match &rule.ports {
        None => true,
        Some(ports) if ports.is_empty() => true,
        Some(ports) => ports.iter().any(|p| {
            p.protocol.as_deref().unwrap_or("TCP") == protocol
                && match &p.port {
                    None => true,
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(from)) => {
                        let to = p.end_port.unwrap_or(*from);
                        (*from..=to).contains(&port)
                    }
                    // A named port is a container port of the destination; not SIP by number.
                    Some(_) => false,
                }
        }),
    })
}

/// `Ok` when `r` is a 403, else a description of what happened instead.
pub fn forbidden<T>(what: &str, r: Result<T, kube::Error>) -> Result<(), String> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(format!("{what}: expected 403 Forbidden, got error {e}")),
        Ok(_) => Err(format!(
            "{what}: expected 403 Forbidden, but it was allowed"
        )),
    }
}

/// The API error of `r` (panics when `r` succeeded or failed otherwise).
#[track_caller]
pub fn api_error<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        Err(e) => panic!("{what}: expected an API error, got {e}"),
        Ok(v) => panic!("{what}: expected an API error, but it succeeded: {v:?}"),
    }
}

/// The value of label `key` of an object.
pub fn label<K: Resource>(obj: &K, key: &str) -> Option<String> {
    obj.meta().labels.as_ref()?.get(key).cloned()
}

/// A Suspension of `account` for `reason` (one of the three causes of §2.4) with `cause`, and
/// `extra` fields merged into its spec (e.g. `scaleWorkloads`, `startAt`).
pub fn suspension(name: &str, account: &str, reason: &str, cause: &str, extra: Value) -> String {
    let mut spec = json!({ "account": account, "reason": reason, "cause": cause });
    if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
        s.extend(e);
    }
    json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Suspension",
        "metadata": { "name": name },
        "spec": spec
    })
    .to_string()
}

/// An Account `name` with `labels`, on `package` (None: the default), administered by the User
/// `admin`, with `extra` fields merged into its spec; `deletionPolicy: Delete` unless `extra` says
/// otherwise (a test's namespaces go with it).
pub fn labelled_account(
    name: &str,
    labels: Value,
    package: Option<&str>,
    admin: &str,
    extra: Value,
) -> String {
    let mut extra = extra;
    if let Value::Object(e) = &mut extra {
        e.entry("deletionPolicy").or_insert(json!("Delete"));
    }
    let mut doc: Value = serde_json::from_str(&account(name, package, &[], &[admin], extra))
        .expect("an Account manifest");
    doc["metadata"]["labels"] = labels;
    doc.to_string()
}

/// An Ingress `name` routing `hosts` to a Service `web` (an empty host: a rule without host).
pub fn ingress(name: &str, hosts: &[&str]) -> k8s_openapi::api::networking::v1::Ingress {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let mut r = json!({ "http": { "paths": [{ "path": "/", "pathType": "Prefix",
                "backend": { "service": { "name": "web", "port": { "number": 80 } } } }] } });
            if !h.is_empty() {
                r["host"] = json!(h);
            }
            r
        })
        .collect();
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": { "rules": rules } }))
        .expect("an Ingress")
}
