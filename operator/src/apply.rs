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
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| is_subset(v, av))),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(x, y)| is_subset(x, y))
        }
        (d, a) => d == a,
    }
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

impl Scoped for k8s_openapi::api::core::v1::Namespace {
    fn api(client: &Client, _: Option<&str>) -> Api<Self> {
        Api::all(client.clone())
    }
}

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
    let want = serde_json::to_value(desired)?;
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

/// Deletes the cached objects labelled for `account` that `keep` rejects. Only objects carrying the
/// account label are ever considered: Covenant never deletes what it did not create.
pub async fn delete_unwanted<K>(
    client: &Client,
    cache: &Store<K>,
    account: &str,
    keep: impl Fn(&K) -> bool,
    metrics: &Metrics,
) -> Result<usize>
where
    K: Scoped + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut n = 0;
    for obj in cache.state() {
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
