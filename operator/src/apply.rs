//! Server-side apply under one field manager, skipped when the cached object already holds every
//! desired field (no request at rest), and deletion of what Covenant labelled but no longer wants.

use std::collections::BTreeMap;
use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::FIELD_MANAGER;
use std::sync::Arc;

use crate::controller::compact::{Child, Children};
use crate::error::{ApiErrorKind, Result};
use crate::metrics::Metrics;
use crate::model::{fnv1a, quantity};

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
        (Value::String(d), Value::String(a)) => d == a || quantity::equal(d, a),
        (d, a) => d == a,
    }
}

/// Annotation holding a hash of what Covenant last applied, so that a field it stops setting (a
/// quota entry dropped from a package, a marker removed) is noticed even though the rest still
/// matches, and the object is applied again (which removes the field).
pub const APPLIED_ANNOTATION: &str = "covenant.dev/applied";

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

/// What this process last wrote of each object, kept only until its cache shows that write (or a later
/// one): a reconcile that runs before the watch has brought back the operator's own write compares
/// with what it wrote, not with the stale copy, and sends nothing twice. Entries are dropped as soon as
/// the cache catches up, so at rest it holds nothing.
///
/// The cache is known to be behind when its copy is missing or its `resourceVersion` is lower than the
/// one the write returned. A missing copy means the write has not arrived: the watch forgets a write as
/// soon as it sees the object deleted, or relists its kind, before the cache and the controllers hear
/// of it (`controller::runtime`). resourceVersions are compared as the integers the API server issues
/// (etcd's revisions); one that is not an integer counts as caught up, so the object is compared as
/// usual.
pub struct Written<V> {
    recent: std::sync::Mutex<std::collections::HashMap<String, (u64, V)>>,
}

impl<V> Default for Written<V> {
    fn default() -> Self {
        Written {
            recent: Default::default(),
        }
    }
}

impl<V: Clone> Written<V> {
    /// What was written under `key`, while the cached copy (`cached`: its resourceVersion, None when
    /// the cache has no copy) is older than that write. Forgets the write once the cache has it.
    pub fn pending(&self, key: &str, cached: Option<&str>) -> Option<V> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let (rv, v) = recent.get(key)?;
        match cached.map(str::parse::<u64>) {
            Some(Ok(c)) if c < *rv => Some(v.clone()),
            None => Some(v.clone()),
            Some(_) => {
                recent.remove(key);
                None
            }
        }
    }

    /// Records that `v` was written under `key` and the API server answered with `rv`.
    pub fn record(&self, key: String, rv: Option<&str>, v: V) {
        if let Some(Ok(rv)) = rv.map(str::parse::<u64>) {
            self.recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (rv, v));
        }
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&self, key: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Forgets every object of `kind` (keys as [`ObjectRef`]'s `Display` writes them: the kind first).
    pub fn forget_kind(&self, kind: &str) {
        let prefix = format!("{kind}.");
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// How many writes the cache has not shown yet (or that were not looked at since).
    pub fn len(&self) -> usize {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where writes of managed objects are counted and remembered (see [`Written`]).
#[derive(Clone)]
pub struct Writes {
    /// `covenant_writes_total`.
    pub metrics: std::sync::Arc<Metrics>,
    /// The applied hash of each object this process applied, until the cache shows it.
    pub applied: std::sync::Arc<Written<String>>,
}

impl Writes {
    /// Counts one write of `kind`.
    pub fn write(&self, kind: &str) {
        self.metrics.write(kind);
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

/// An object as Covenant writes it: its name, namespace and cache key, its JSON with the applied-hash
/// annotation, and that hash.
struct Stamped<K: Resource<DynamicType = ()>> {
    name: String,
    ns: Option<String>,
    key: ObjectRef<K>,
    want: Value,
    hash: String,
}

fn stamped<K>(desired: &K) -> serde_json::Result<Stamped<K>>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone();
    let mut key = ObjectRef::<K>::new(&name);
    if let Some(ns) = &ns {
        key = key.within(ns);
    }
    let want = with_applied_hash(&serde_json::to_value(desired)?);
    let hash = want
        .pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Stamped {
        name,
        ns,
        key,
        want,
        hash,
    })
}

/// What a cache holds of an object that Covenant applies, and whether it shows the object as Covenant
/// wants it. A child kind is cached compactly (`controller::compact`: a digest of the fields Covenant's
/// apply owns, as served); a namespace as its metadata, compared with [`is_subset`].
pub trait Applied: Send + Sync + 'static {
    /// Whether the cached object is `want` (what Covenant would apply, stamped with its hash).
    fn in_place(&self, want: &Value) -> Result<bool>;
    /// The resourceVersion the cache holds.
    fn resource_version(&self) -> Option<&str>;
}

impl<K> Applied for Child<K>
where
    K: Send + Sync + 'static + crate::controller::compact::Compactable,
{
    fn in_place(&self, want: &Value) -> Result<bool> {
        Ok(Child::in_place(self, want))
    }
    fn resource_version(&self) -> Option<&str> {
        Some(Child::resource_version(self))
    }
}

impl Applied for k8s_openapi::api::core::v1::Namespace {
    /// As the cache keeps a namespace (`compact::cached_namespace`): [`is_subset`], the annotations
    /// only the API server reads compared by their digests.
    fn in_place(&self, want: &Value) -> Result<bool> {
        Ok(crate::controller::compact::namespace_in_place(self, want)?)
    }
    fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }
}

/// A cache [`apply`] reads: the object of a name, as the cache holds it.
pub trait Lookup {
    /// What the cache holds of an object.
    type Item: Applied;
    /// The cached object `name` (in `namespace`, for a namespaced kind).
    fn lookup(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Self::Item>>;
}

impl<C: Applied + Resource<DynamicType = ()> + Clone> Lookup for Store<C> {
    type Item = C;
    fn lookup(&self, namespace: Option<&str>, name: &str) -> Option<Arc<C>> {
        let mut r = ObjectRef::<C>::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.get(&r)
    }
}

impl<K> Lookup for Children<K>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static + crate::controller::compact::Compactable,
{
    type Item = Child<K>;
    fn lookup(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Child<K>>> {
        let mut r = ObjectRef::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.get(&r)
    }
}

/// Applies `desired` unless `cache` shows it is already in place, or this process applied exactly it
/// and the cache has not caught up with that write yet. Returns whether a request was made.
pub async fn apply<K, C>(client: &Client, cache: &C, desired: &K, writes: &Writes) -> Result<bool>
where
    K: Scoped + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
    C: Lookup,
{
    let Stamped {
        name,
        ns,
        key,
        want,
        hash,
    } = stamped(desired)?;
    let written_key = key.to_string();
    let have = cache.lookup(ns.as_deref(), &name);
    let cached_rv = have.as_ref().and_then(|h| h.resource_version());
    if writes.applied.pending(&written_key, cached_rv).as_ref() == Some(&hash) {
        return Ok(false);
    }
    if let Some(have) = have
        && have.in_place(&want)?
    {
        return Ok(false);
    }
    let api: Api<K> = K::api(client, ns.as_deref());
    let done = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&want),
        )
        .await?;
    writes.write(K::kind(&()).as_ref());
    writes
        .applied
        .record(written_key, done.meta().resource_version.as_deref(), hash);
    Ok(true)
}

/// Creates `desired` (a POST: an object of that name that exists already is the API server's
/// AlreadyExists, never taken over), stamped with the applied-hash annotation and remembered like an
/// apply, so that the cache's copy, when it arrives, is already in place and nothing is sent again.
/// `marks` are annotations the created object carries beyond `desired` (outside the applied hash, and
/// not owned by later applies: what is true of the object only as it is created, e.g. that an empty
/// namespace holds nothing its tier's policies refuse).
pub async fn create<K>(
    client: &Client,
    desired: &K,
    marks: &BTreeMap<String, String>,
    writes: &Writes,
) -> kube::Result<K>
where
    K: Scoped + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let Stamped {
        ns,
        key,
        mut want,
        hash,
        ..
    } = stamped(desired).map_err(kube::Error::SerdeError)?;
    if !marks.is_empty()
        && let Some(a) = want
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
    {
        a.extend(
            marks
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
        );
    }
    let object: K = serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
    let pp = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let made = K::api(client, ns.as_deref()).create(&pp, &object).await?;
    writes.write(K::kind(&()).as_ref());
    writes.applied.record(
        key.to_string(),
        made.meta().resource_version.as_deref(),
        hash,
    );
    Ok(made)
}

/// Deletes the objects among `candidates` (the cached objects labelled for `account`, from the index
/// by account) that `keep` rejects. Only objects carrying the account label are ever considered:
/// Covenant never deletes what it did not create.
pub async fn delete_unwanted<K>(
    client: &Client,
    candidates: impl IntoIterator<Item = Arc<Child<K>>>,
    account: &str,
    keep: impl Fn(&Child<K>) -> bool,
    writes: &Writes,
) -> Result<usize>
where
    K: Scoped + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut n = 0;
    for obj in candidates {
        if obj.account() != Some(account) || keep(&obj) {
            continue;
        }
        if obj.deleting() {
            continue;
        }
        let ns = obj.namespace();
        let api: Api<K> = K::api(client, ns.as_deref());
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&obj.name_any(), &dp).await {
            Ok(_) => {
                writes.write(K::kind(&()).as_ref());
                let mut key = ObjectRef::<K>::new(&obj.name_any());
                if let Some(ns) = &ns {
                    key = key.within(ns);
                }
                writes.applied.forget(&key.to_string());
                n += 1;
            }
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => {}
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
    fn a_write_is_remembered_only_until_the_cache_shows_it() {
        let w: Written<&str> = Written::default();
        w.record("q".into(), Some("100"), "applied");
        // The cache has no copy yet, or an older one: what was written counts.
        assert_eq!(w.pending("q", None), Some("applied"));
        assert_eq!(w.pending("q", Some("99")), Some("applied"));
        // The cache shows the write (or a later one, someone else's too): compare with the cache, and
        // nothing is kept any more.
        assert_eq!(w.pending("q", Some("100")), None);
        assert!(w.is_empty());
        w.record("q".into(), Some("200"), "again");
        assert_eq!(w.pending("q", Some("350")), None);
        assert!(w.is_empty());
        // A resourceVersion that is not an integer: no ordering is assumed, the cache is compared.
        w.record("q".into(), Some("300"), "x");
        assert_eq!(w.pending("q", Some("opaque")), None);
        w.record("q".into(), Some("opaque"), "x");
        assert!(
            w.is_empty(),
            "an answer without an integer resourceVersion is not remembered"
        );
        assert_eq!(w.pending("other", None), None);
        // A relist of a kind forgets that kind only.
        w.record(
            "RoleBinding.v1.rbac.authorization.k8s.io/a.ns".into(),
            Some("1"),
            "rb",
        );
        w.record(
            "ClusterRoleBinding.v1.rbac.authorization.k8s.io/a".into(),
            Some("1"),
            "crb",
        );
        w.forget_kind("RoleBinding");
        assert_eq!(w.len(), 1);
        assert_eq!(
            w.pending("ClusterRoleBinding.v1.rbac.authorization.k8s.io/a", None),
            Some("crb")
        );
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
