//! Manifests and small checks the tests share.

use std::collections::BTreeMap;

use covenant::api::{
    Account, AccountSpec, DeprecationNotice, DeprecationNoticeSpec, NoticeResponse,
    NoticeResponseSpec, NoticeType, ResourceMap, ResponseDecision, Subject, SubjectKind,
    SupportPackage, SupportPackageSpec, Suspension, SuspensionSpec,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
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
/// and [`default_limits`], at most 3 namespaces per account.
pub fn package(name: &str, quota: Value) -> SupportPackage {
    let mut spec: SupportPackageSpec = typed(
        "a SupportPackage spec",
        json!({
            "displayName": format!("e2e package {name}"),
            "serviceLevels": [{ "severity": "P1", "initialResponse": "4h", "coverage": "24x7" }],
            "limits": default_limits(),
        }),
    );
    spec.quota = Some(resources(quota));
    spec.max_namespaces = Some(3);
    SupportPackage::new(name, spec)
}

/// A map of resource names to quantities, e.g. `json!({ "pods": "4" })` (panics on anything else).
pub fn resources(map: Value) -> ResourceMap {
    typed("a map of resource quantities", map)
}

/// A subject of `kind` `User`.
pub fn user(name: &str) -> Subject {
    Subject {
        kind: SubjectKind::User,
        name: name.to_string(),
        namespace: None,
    }
}

/// An Account on `package` (None: the default package) with `namespaces` (empty: the default one),
/// User administrators, and `extra` fields merged into its spec (each must be a field of the
/// operator's `AccountSpec`: one it does not know panics rather than vanish).
pub fn account(
    name: &str,
    package: Option<&str>,
    namespaces: &[&str],
    admins: &[&str],
    extra: Value,
) -> Account {
    let mut account = Account::new(name, with_fields("an Account spec", account_spec(), extra));
    let spec = &mut account.spec;
    if let Some(p) = package {
        spec.support_package = Some(p.to_string());
    }
    if !namespaces.is_empty() {
        spec.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
    }
    if !admins.is_empty() {
        spec.administrators = admins.iter().map(|a| user(a)).collect();
    }
    account
}

/// An AccountSpec with nothing set: the defaults the API server gives (`retentionMonths: 13`, which
/// `AccountSpec::default()` does not have).
pub fn account_spec() -> AccountSpec {
    typed("an empty Account spec", json!({}))
}

/// `value` as a `T`; panics when it is not one.
#[track_caller]
pub fn typed<T: DeserializeOwned>(what: &str, value: Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}\n{value:#}"))
}

/// `base` with the fields of the JSON object `extra` set over its own, typed again; panics when a
/// field of `extra` does not survive the round trip (a name the type does not know would otherwise
/// be dropped silently, and the test would send something else than it says).
#[track_caller]
pub fn with_fields<T: Serialize + DeserializeOwned>(what: &str, base: T, extra: Value) -> T {
    let mut v = serde_json::to_value(&base).unwrap_or_else(|e| panic!("{what}: {e}"));
    let Value::Object(fields) = extra else {
        panic!("{what}: extra fields must be a JSON object, not {extra}");
    };
    if let Value::Object(o) = &mut v {
        o.extend(fields.clone());
    }
    let out: T = typed(what, v);
    let back = serde_json::to_value(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (k, want) in fields {
        let got = back.get(&k).unwrap_or(&Value::Null);
        if !same_json(got, &want) {
            panic!(
                "{what}: field {k} does not survive as the operator's type reads it: {want} became {got}"
            );
        }
    }
    out
}

/// Whether `a` says everything `b` does (`a` may add defaults; a number and the string of it count
/// as one quantity).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, v)| x.get(k).is_some_and(|w| same_json(w, v)) || v.is_null()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w))
        }
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            *s == n.to_string()
        }
        _ => a == b,
    }
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
pub fn suspension(
    name: &str,
    account: &str,
    reason: &str,
    cause: &str,
    extra: Value,
) -> Suspension {
    let spec: SuspensionSpec = typed(
        "a Suspension spec",
        json!({ "account": account, "reason": reason, "cause": cause }),
    );
    Suspension::new(name, with_fields("a Suspension spec", spec, extra))
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
) -> Account {
    let mut extra = extra;
    if let Value::Object(e) = &mut extra {
        e.entry("deletionPolicy").or_insert(json!("Delete"));
    }
    let mut account = account(name, package, &[], &[admin], extra);
    account.metadata.labels = Some(typed("labels", labels));
    account
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

/// A DeprecationNotice `name` of `notice_type` saying `summary`, effective at `effective`, for the
/// accounts labelled `accounts` (empty: every account); set `servedAt`, `url`, `exemption` on the
/// returned object.
pub fn notice(
    name: &str,
    notice_type: NoticeType,
    summary: &str,
    effective: jiff::Timestamp,
    accounts: &[(&str, &str)],
) -> DeprecationNotice {
    DeprecationNotice::new(
        name,
        DeprecationNoticeSpec {
            notice_type,
            summary: summary.to_string(),
            url: None,
            service: None,
            replacement: None,
            effective_at: Time(effective),
            served_at: None,
            exemption: None,
            accounts: (!accounts.is_empty()).then(|| LabelSelector {
                match_labels: Some(map(accounts)),
                ..Default::default()
            }),
        },
    )
}

/// A NoticeResponse `name` answering `notice` with `decision`.
pub fn response(name: &str, notice: &str, decision: ResponseDecision) -> NoticeResponse {
    NoticeResponse::new(
        name,
        NoticeResponseSpec {
            notice: notice.to_string(),
            decision,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed fixtures send what the JSON manifests they replaced sent, plus the defaults the API
    /// server would give anyway.
    #[test]
    fn typed_fixtures_serialize_as_the_manifests_did() {
        let p = serde_json::to_value(package("p", default_quota())).unwrap();
        assert_eq!(p["apiVersion"], "covenant.dev/v1alpha1");
        assert_eq!(p["kind"], "SupportPackage");
        assert_eq!(p["spec"]["quota"], default_quota());
        assert_eq!(p["spec"]["limits"], default_limits());
        assert_eq!(p["spec"]["maxNamespaces"], 3);
        assert_eq!(p["spec"]["serviceLevels"][0]["coverage"], "24x7");
        assert!(p.get("status").is_none(), "{p}");

        let a = serde_json::to_value(account(
            "a",
            Some("p"),
            &["a-0"],
            &["alice"],
            json!({ "deletionPolicy": "Delete", "quota": { "pods": "2" } }),
        ))
        .unwrap();
        assert_eq!(a["kind"], "Account");
        assert_eq!(a["spec"]["supportPackage"], "p");
        assert_eq!(a["spec"]["namespaces"], json!(["a-0"]));
        assert_eq!(
            a["spec"]["administrators"],
            json!([{ "kind": "User", "name": "alice" }])
        );
        assert_eq!(a["spec"]["deletionPolicy"], "Delete");
        assert_eq!(a["spec"]["quota"], json!({ "pods": "2" }));
        // The server's default, not AccountSpec::default()'s 0.
        assert_eq!(a["spec"]["retentionMonths"], 13);
        assert!(a.get("status").is_none(), "{a}");
    }

    #[test]
    #[should_panic(expected = "does not survive")]
    fn a_spec_field_the_operator_does_not_know_panics_rather_than_vanish() {
        account("a", None, &[], &[], json!({ "retentionMonth": 0 }));
    }
}
