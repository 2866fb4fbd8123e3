//! Server-side apply under one field manager, skipped when the cached object already holds every
//! desired field (no request at rest), and deletion of what Covenant labelled but no longer wants.

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{ACCOUNT_LABEL, FIELD_MANAGER};
use crate::error::Result;
use crate::metrics::Metrics;

/// True when every field of `desired` has the same value in `actual` (extra fields in `actual`, such
/// as status or defaults filled in by the API server, are ignored; lists must match item by item).
/// Strings that are both resource quantities compare by value: the API server stores `0.5` as `500m`.
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| is_subset(v, av))),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(x, y)| is_subset(x, y))
        }
        (Value::String(d), Value::String(a)) => d == a || quantities_equal(d, a),
        (d, a) => d == a,
    }
}

/// The value of a Kubernetes resource quantity (`500m`, `1Gi`, `2e3`), if `s` is one.
pub fn quantity_value(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(n * scale)
}

/// Whether `a` and `b` are the same quantity written differently (`0.5` and `500m`).
pub fn quantities_equal(a: &str, b: &str) -> bool {
    match (quantity_value(a), quantity_value(b)) {
        (Some(x), Some(y)) => x == y || ((x - y).abs() <= 1e-9 * x.abs().max(y.abs())),
        _ => false,
    }
}

/// Annotation holding a hash of what Covenant last applied, so that a field it stops setting (a
/// quota entry dropped from a package, a marker removed) is noticed even though the rest still
/// matches, and the object is applied again (which removes the field).
pub const APPLIED_ANNOTATION: &str = "covenant.dev/applied";

/// A stable 64-bit FNV-1a hash (std's hasher may change between releases; this one is stored).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `desired` as JSON with the applied-hash annotation set.
pub fn with_applied_hash(desired: &Value) -> Value {
    let mut want = desired.clone();
    let hash = format!("{:016x}", fnv1a(desired.to_string().as_bytes()));
    if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(APPLIED_ANNOTATION.to_string(), Value::String(hash));
        }
    }
    want
}

/// How to reach the API of a kind Covenant writes (cluster-scoped or in a namespace).
pub trait Scoped: Resource<DynamicType = ()> + Sized {
    /// The API for objects of this kind in `namespace` (ignored for cluster-scoped kinds).
    fn api(client: &Client, namespace: Option<&str>) -> Api<Self>;
}

macro_rules! namespaced {
    ($($t:ty),*) => {$(
        impl Scoped for $t {
            fn api(client: &Client, namespace: Option<&str>) -> Api<Self> {
                Api::namespaced(client.clone(), namespace.unwrap_or("default"))
            }
        }
    )*};
}
namespaced!(
    k8s_openapi::api::core::v1::ResourceQuota,
    k8s_openapi::api::core::v1::LimitRange,
    k8s_openapi::api::networking::v1::NetworkPolicy,
    k8s_openapi::api::rbac::v1::RoleBinding
);

macro_rules! cluster {
    ($($t:ty),*) => {$(
        impl Scoped for $t {
            fn api(client: &Client, _: Option<&str>) -> Api<Self> {
                Api::all(client.clone())
            }
        }
    )*};
}
cluster!(
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::rbac::v1::ClusterRole,
    k8s_openapi::api::rbac::v1::ClusterRoleBinding
);

/// Applies `desired` unless `cache` shows it is already in place. Returns whether a request was made.
pub async fn apply<K>(
    client: &Client,
    cache: &Store<K>,
    desired: &K,
    metrics: &Metrics,
) -> Result<bool>
where
    K: Scoped + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone();
    let mut key = ObjectRef::<K>::new(&name);
    if let Some(ns) = &ns {
        key = key.within(ns);
    }
    let want = with_applied_hash(&serde_json::to_value(desired)?);
    if let Some(have) = cache.get(&key)
        && is_subset(&want, &serde_json::to_value(have.as_ref())?)
    {
        return Ok(false);
    }
    let api: Api<K> = K::api(client, ns.as_deref());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&want),
    )
    .await?;
    metrics.write(K::kind(&()).as_ref());
    Ok(true)
}

/// Deletes the objects among `candidates` (the cached objects labelled for `account`, from the index
/// by account) that `keep` rejects. Only objects carrying the account label are ever considered:
/// Covenant never deletes what it did not create.
pub async fn delete_unwanted<K>(
    client: &Client,
    candidates: impl IntoIterator<Item = std::sync::Arc<K>>,
    account: &str,
    keep: impl Fn(&K) -> bool,
    metrics: &Metrics,
) -> Result<usize>
where
    K: Scoped + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut n = 0;
    for obj in candidates {
        if obj.labels().get(ACCOUNT_LABEL).map(String::as_str) != Some(account) || keep(&obj) {
            continue;
        }
        if obj.meta().deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<K> = K::api(client, obj.namespace().as_deref());
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&obj.name_any(), &dp).await {
            Ok(_) => {
                metrics.write(K::kind(&()).as_ref());
                n += 1;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_by_value() {
        assert!(quantities_equal("0.5", "500m"));
        assert!(quantities_equal("1024Mi", "1Gi"));
        assert!(quantities_equal("2e3", "2k"));
        assert!(!quantities_equal("1G", "1Gi"));
        assert!(!quantities_equal("abc", "abc1"));
        assert_eq!(quantity_value("Gi"), None);
    }

    #[test]
    fn subset_ignores_server_additions_but_not_changes() {
        let want = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "0.5"}}});
        let have = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "500m"}, "scopes": null}, "status": {}});
        assert!(is_subset(&want, &have));
        let drifted = json!({"spec": {"hard": {"pods": "11", "requests.cpu": "500m"}}});
        assert!(!is_subset(&want, &drifted));
    }

    #[test]
    fn a_dropped_field_changes_the_applied_hash() {
        let before = with_applied_hash(
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1", "cpu": "1"}}}),
        );
        let after =
            with_applied_hash(&json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}));
        // What is on the server (the old object) still holds every field of the new one...
        assert!(is_subset(
            &json!({"spec": {"hard": {"pods": "1"}}}),
            &before
        ));
        // ...but not its hash, so the new object is applied and the dropped field removed.
        assert!(!is_subset(&after, &before));
        assert_eq!(
            with_applied_hash(&json!({"metadata": {"name": "q"}})),
            with_applied_hash(&json!({"metadata": {"name": "q"}}))
        );
    }
}
