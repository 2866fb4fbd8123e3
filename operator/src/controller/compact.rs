//! The compact form in which the caches keep the child objects Covenant applies (quotas, limit
//! ranges, network policies, role bindings, cluster roles and their bindings).
//!
//! Of such an object the operator reads only:
//! - whether it is as Covenant wants it (`apply`): the fields Covenant's own server-side apply owns, as
//!   served. The object's `managedFields` entry of Covenant's field manager (operation `Apply`) names
//!   exactly those fields; their values, projected out of the object, are kept as one 64-bit digest
//!   ([`owned_digest`]), compared with the digest of what Covenant would apply now
//!   ([`desired_digest`]). Anyone else's change to one of them moves the field to their manager (or,
//!   by a forced apply, shares it with another value): the digest differs, and the object is applied
//!   again. Fields others own or the API server defaulted are not Covenant's, and do not count;
//! - the account it is labelled with (the index by account, the triggers, `delete_unwanted`);
//! - its name, namespace, resourceVersion and deletion mark (cache keys, the writes awaiting the
//!   cache, the deletions);
//! - of the `covenant-bounds` quota, its `spec.hard` (a retained namespace's bounds are re-made from it).
//!
//! So the cache holds those few fields, the digest and nothing else. A k8s-openapi struct holds every
//! label and annotation in a `BTreeMap` (a node of about 540 bytes each, even for one entry) and every
//! optional field inline; the JSON of the object, kept here before, was ≈ 650 bytes a child
//! (BENCHMARKS.md). The watch deserializes each object straight into [`Compact`] (with the
//! `ObjectMeta` kube's watcher reads), so a (re)list never holds a page of full structs beyond the one
//! being converted; the cache, [`Children`], keeps each as a [`Child`], without `ObjectMeta`, by one
//! shared `namespace/name` string, and is its own index by account (kube's store keyed each object by
//! an `ObjectRef` of four strings, and an index by account filed it again).

use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ACCOUNT_LABEL, FIELD_MANAGER};

/// A child kind cached compactly: what of an object is kept beyond the digest, for the few readers of
/// a field of a cached child, and what the API server adds to what Covenant applies.
pub trait Compactable: Resource<DynamicType = ()> + Serialize + DeserializeOwned {
    /// What of `self` is kept as JSON (read back by [`Child::object`]); nothing by default.
    fn kept(&self) -> Option<Value> {
        None
    }

    /// `want` (an object as Covenant applies it) with the defaults the API server sets inside the
    /// fields Covenant owns whole (an atomic list's items): what the object holds once applied.
    /// Nothing by default.
    fn as_served(_want: &mut Value) {}
}

impl Compactable for k8s_openapi::api::core::v1::ResourceQuota {
    fn kept(&self) -> Option<Value> {
        (self.metadata.name.as_deref() == Some(crate::model::account::BOUNDS_QUOTA_NAME))
            .then(|| serde_json::json!({ "spec": { "hard": self.spec.as_ref().and_then(|s| s.hard.as_ref()) } }))
    }
}
impl Compactable for k8s_openapi::api::core::v1::LimitRange {
    /// A `Container` item's defaults, as Kubernetes' `SetDefaults_LimitRangeItem` sets them (the items
    /// are one atomic list): a default limit from `max`, then a default request from the default limit,
    /// then from `min`; a map left empty is not served.
    fn as_served(want: &mut Value) {
        let Some(items) = want
            .pointer_mut("/spec/limits")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for item in items.iter_mut().filter(|i| i["type"] == "Container") {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let map = |item: &serde_json::Map<String, Value>, k: &str| {
                item.get(k)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let (max, min) = (map(item, "max"), map(item, "min"));
            let mut default = map(item, "default");
            for (k, v) in &max {
                default.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let mut request = map(item, "defaultRequest");
            for (k, v) in default.iter().chain(&min) {
                request.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (field, m) in [("default", default), ("defaultRequest", request)] {
                if m.is_empty() {
                    item.remove(field);
                } else {
                    item.insert(field.to_string(), Value::Object(m));
                }
            }
        }
    }
}
impl Compactable for k8s_openapi::api::networking::v1::NetworkPolicy {}
impl Compactable for k8s_openapi::api::rbac::v1::RoleBinding {}
impl Compactable for k8s_openapi::api::rbac::v1::ClusterRole {}
impl Compactable for k8s_openapi::api::rbac::v1::ClusterRoleBinding {}

/// A cached object of kind `K` in compact form (see the module's documentation).
pub struct Compact<K> {
    /// Name, namespace, resourceVersion and deletion mark; nothing else.
    metadata: ObjectMeta,
    /// The value of the account label.
    account: Option<Box<str>>,
    /// The digest of the fields Covenant's apply owns, as served ([`owned_digest`]); `None` when
    /// Covenant's apply owns nothing of it (never applied by Covenant: applied when wanted).
    owned: Option<u64>,
    /// What [`Compactable::kept`] keeps, as JSON.
    kept: Option<Box<str>>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            account: self.account.clone(),
            owned: self.owned,
            kept: self.kept.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compact")
            .field("metadata", &self.metadata)
            .field("account", &self.account)
            .field("owned", &self.owned)
            .field("kept", &self.kept)
            .finish()
    }
}

impl<K: Compactable> Compact<K> {
    /// The compact form of `obj` (as served, with its `managedFields`).
    pub fn new(obj: K) -> Self {
        let kept = obj.kept().map(|v| v.to_string().into_boxed_str());
        let m = obj.meta();
        let account = m
            .labels
            .as_ref()
            .and_then(|l| l.get(ACCOUNT_LABEL))
            .map(|a| a.as_str().into());
        let fields = m.managed_fields.iter().flatten().find(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER)
                && e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or_default().is_empty()
        });
        let owned = fields
            .and_then(|e| e.fields_v1.as_ref())
            .and_then(|f| Some(owned_digest(&serde_json::to_value(&obj).ok()?, &f.0)));
        let metadata = ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            resource_version: m.resource_version.clone(),
            deletion_timestamp: m.deletion_timestamp.clone(),
            ..Default::default()
        };
        Compact {
            metadata,
            account,
            owned,
            kept,
            kind: PhantomData,
        }
    }
}

/// `v` without what identifies the object rather than holds what is applied (its kind, name and
/// namespace: never in a field set).
fn without_identity(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("name");
            m.remove("namespace");
        }
    }
}

/// The digest of `want` (an object as Covenant applies it, as the API server will serve it) without
/// what identifies it: the fields its apply will own, with these values.
fn desired_digest(mut want: Value) -> u64 {
    without_identity(&mut want);
    digest(&want)
}

/// The digest of the fields of `served` that the field set `fields` (a `managedFields` entry's
/// `fieldsV1`) names, with their values as served: what Covenant's apply owns of the object.
fn owned_digest(served: &Value, fields: &Value) -> u64 {
    let mut v = project(served, fields).unwrap_or(Value::Null);
    without_identity(&mut v);
    digest(&v)
}

/// The part of `value` that the field set `set` names (`fieldsV1`: `f:<field>` for a field of an
/// object, `k:<keys>` for the item of an associative list whose keys these are, `v:<value>` for the
/// item of a set, `i:<index>` for an item by position, `.` for the node itself; an empty set is the
/// whole value, e.g. an atomic list). Items of a list come in the order the object holds them.
fn project(value: &Value, set: &Value) -> Option<Value> {
    let set = set.as_object()?;
    if set.is_empty() {
        return Some(value.clone());
    }
    match value {
        Value::Object(o) => Some(Value::Object(
            set.iter()
                .filter_map(|(k, sub)| {
                    let field = k.strip_prefix("f:")?;
                    Some((field.to_string(), project(o.get(field)?, sub)?))
                })
                .collect(),
        )),
        Value::Array(items) => {
            let mut picked: Vec<(usize, Value)> = Vec::new();
            for (k, sub) in set {
                if let Some(keys) = k.strip_prefix("k:") {
                    let keys: serde_json::Map<String, Value> = serde_json::from_str(keys).ok()?;
                    for (i, item) in items.iter().enumerate() {
                        if keys.iter().all(|(f, want)| item.get(f) == Some(want)) {
                            picked.extend(project(item, sub).map(|p| (i, p)));
                        }
                    }
                } else if let Some(want) = k.strip_prefix("v:") {
                    let want: Value = serde_json::from_str(want).ok()?;
                    for (i, item) in items.iter().enumerate() {
                        if *item == want {
                            picked.push((i, item.clone()));
                        }
                    }
                } else if let Some(i) = k.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok())
                    && let Some(item) = items.get(i)
                {
                    picked.extend(project(item, sub).map(|p| (i, p)));
                }
            }
            picked.sort_by_key(|(i, _)| *i);
            Some(Value::Array(picked.into_iter().map(|(_, v)| v).collect()))
        }
        other => Some(other.clone()),
    }
}

/// A 64-bit digest of `v` that does not depend on the order of an object's keys, and in which a
/// string that is a resource quantity counts by its value ([`crate::model::quantity::canonical`]: the
/// API server stores `0.5` as `500m`).
fn digest(v: &Value) -> u64 {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(&o[k.as_str()], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for i in items {
                    write(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::String(s) => match crate::model::quantity::canonical(s) {
                Some(q) => {
                    out.push('#');
                    out.push_str(&q);
                }
                None => out.push_str(&v.to_string()),
            },
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    crate::model::fnv1a(out.as_bytes())
}

impl<'de, K: Compactable> Deserialize<'de> for Compact<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        K::deserialize(d).map(Compact::new)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A child as the cache keeps it: what [`Compact`] read of the object as served, without the
/// `ObjectMeta` that the watch needs while it reads it (about 350 bytes inline, and a map entry keyed
/// by kube's `ObjectRef` of four strings in kube's store). Its name and namespace are one shared
/// string (the key of [`Children`]), its account the string its index files it under.
pub struct Child<K> {
    /// `namespace/name`, or `name` of a cluster-scoped object (neither holds a `/`).
    key: Arc<str>,
    resource_version: Box<str>,
    account: Option<Arc<str>>,
    owned: Option<u64>,
    kept: Option<Box<str>>,
    deleting: bool,
    kind: PhantomData<fn() -> K>,
}

impl<K> std::fmt::Debug for Child<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("key", &self.key)
            .field("resource_version", &self.resource_version)
            .field("account", &self.account)
            .field("owned", &self.owned)
            .field("deleting", &self.deleting)
            .finish()
    }
}

impl<K> Child<K> {
    /// The object's name.
    pub fn name_any(&self) -> String {
        self.key.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// The object's namespace (`None` for a cluster-scoped kind).
    pub fn namespace(&self) -> Option<String> {
        self.key.split_once('/').map(|(ns, _)| ns.to_string())
    }

    /// The resourceVersion the cache holds.
    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// Whether the object is being deleted.
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// The account the object is labelled with.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}

impl<K: Compactable> Child<K> {
    /// Whether Covenant's apply owns exactly the fields of `want` (the object it would apply, as
    /// JSON), with the same values as the API server serves them (its defaults inside what Covenant
    /// owns whole, [`Compactable::as_served`]; resource quantities by value): the object is in place.
    pub fn in_place(&self, want: &Value) -> bool {
        let mut served = want.clone();
        K::as_served(&mut served);
        self.owned == Some(desired_digest(served))
    }

    /// The kept fields ([`Compactable::kept`]) as the kind's struct, with the name and namespace;
    /// `None` if nothing is kept of it.
    pub fn object(&self) -> Option<K> {
        let mut v: Value = serde_json::from_str(self.kept.as_deref()?).ok()?;
        v["metadata"] = serde_json::json!({
            "name": self.name_any(), "namespace": self.namespace(),
        });
        serde_json::from_value(v).ok()
    }
}

impl<K> OfAccount for Child<K> {
    fn account_label(&self) -> Option<String> {
        self.account.as_deref().map(str::to_string)
    }
}

/// The key of an object in [`Children`]: `namespace/name`, or `name`.
fn child_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The cache of one child kind: each object as a [`Child`] by `namespace/name`, and the objects of
/// each account (what kube's store and an index by account held before, in about a third of the
/// memory). Fed by the kind's watch ([`super::runtime::Sink`]); a (re)list builds a new one, swapped
/// in when it is complete, so a reader never sees a half-listed cache.
pub struct Children<K> {
    inner: Arc<RwLock<ChildState<K>>>,
}

impl<K> Clone for Children<K> {
    fn clone(&self) -> Self {
        Children {
            inner: self.inner.clone(),
        }
    }
}

impl<K> Default for Children<K> {
    fn default() -> Self {
        Children {
            inner: Default::default(),
        }
    }
}

struct ChildState<K> {
    objects: HashMap<Arc<str>, Arc<Child<K>>>,
    by_account: HashMap<Arc<str>, Vec<Arc<str>>>,
    relist: Option<Box<ChildState<K>>>,
}

impl<K> Default for ChildState<K> {
    fn default() -> Self {
        ChildState {
            objects: HashMap::new(),
            by_account: HashMap::new(),
            relist: None,
        }
    }
}

impl<K> ChildState<K> {
    fn remove(&mut self, key: &str) {
        let Some(old) = self.objects.remove(key) else {
            return;
        };
        if let Some(a) = &old.account
            && let Some(keys) = self.by_account.get_mut(a.as_ref())
        {
            keys.retain(|k| **k != *key);
            if keys.is_empty() {
                self.by_account.remove(a.as_ref());
            }
        }
    }

    fn insert(&mut self, c: Compact<K>) -> Arc<Child<K>> {
        let key = child_key(
            c.metadata.namespace.as_deref(),
            c.metadata.name.as_deref().unwrap_or_default(),
        );
        // The key's string is shared with the old entry's, and the account's with its index's.
        let key: Arc<str> = match self.objects.get_key_value(key.as_str()) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        let account: Option<Arc<str>> =
            c.account
                .as_deref()
                .map(|a| match self.by_account.get_key_value(a) {
                    Some((k, _)) => k.clone(),
                    None => a.into(),
                });
        let same_account = self
            .objects
            .get(&key)
            .is_some_and(|old| old.account == account);
        if !same_account {
            self.remove(&key);
            if let Some(a) = &account {
                self.by_account
                    .entry(a.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
        let child = Arc::new(Child {
            key: key.clone(),
            resource_version: c.metadata.resource_version.unwrap_or_default().into(),
            account,
            owned: c.owned,
            kept: c.kept,
            deleting: c.metadata.deletion_timestamp.is_some(),
            kind: PhantomData,
        });
        self.objects.insert(key, child.clone());
        child
    }
}

impl<K> Children<K> {
    /// The cached object `r` names.
    pub fn get(&self, r: &kube::runtime::reflector::ObjectRef<Compact<K>>) -> Option<Arc<Child<K>>>
    where
        K: Resource<DynamicType = ()>,
    {
        let st = self.inner.read().unwrap_or_else(|p| p.into_inner());
        st.objects
            .get(child_key(r.namespace.as_deref(), &r.name).as_str())
            .cloned()
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<Child<K>>> {
        let st = self.inner.read().unwrap_or_else(|p| p.into_inner());
        st.objects.values().cloned().collect()
    }

    /// The cached objects labelled with `account`.
    pub fn of_account(&self, account: &str) -> Vec<Arc<Child<K>>> {
        let st = self.inner.read().unwrap_or_else(|p| p.into_inner());
        st.by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|k| st.objects.get(k).cloned())
            .collect()
    }

    /// Follows one event of the watch; returns what subscriptions hear of: the object applied, or
    /// every object once a (re)list is complete.
    pub fn observe(&self, ev: &kube::runtime::watcher::Event<Compact<K>>) -> Vec<Arc<Child<K>>> {
        use kube::runtime::watcher::Event;
        let mut st = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match ev {
            Event::Init => {
                st.relist = Some(Box::default());
                Vec::new()
            }
            Event::InitApply(o) => {
                let o = o.clone();
                match st.relist.as_mut() {
                    Some(next) => drop(next.insert(o)),
                    None => drop(st.insert(o)),
                }
                Vec::new()
            }
            Event::InitDone => {
                if let Some(next) = st.relist.take() {
                    *st = *next;
                }
                st.objects.values().cloned().collect()
            }
            Event::Apply(o) => vec![st.insert(o.clone())],
            Event::Delete(o) => {
                let m = &o.metadata;
                st.remove(&child_key(
                    m.namespace.as_deref(),
                    m.name.as_deref().unwrap_or_default(),
                ));
                Vec::new()
            }
        }
    }
}

/// Annotations of a tenant namespace that only the API server reads (the admission policies' params:
/// who may be bound, the account's namespaces and administrators, the denied ranges, SIP, the platform
/// selectors) and the applied hash: nothing in the operator reads their values but the check that the
/// namespace is as Covenant applies it. The cache keeps one 64-bit digest of each instead
/// ([`ADMISSION_DIGESTS`]): a tenant namespace's annotations then fit one node of a `BTreeMap` (eleven
/// entries) instead of three, and the long, identical values (the denied ranges) are not held once per
/// namespace.
const ADMISSION_ONLY: [&str; 7] = [
    crate::model::account::ALLOWED_SUBJECTS_ANNOTATION,
    crate::model::account::NAMESPACES_ANNOTATION,
    crate::model::account::ADMINISTRATORS_ANNOTATION,
    crate::model::tenant_policies::DENIED_CIDRS_ANNOTATION,
    crate::model::tenant_policies::SIP_EGRESS_ANNOTATION,
    crate::model::tenant_policies::PLATFORM_SELECTORS_ANNOTATION,
    crate::apply::APPLIED_ANNOTATION,
];

/// The cache's annotation holding the digests of the [`ADMISSION_ONLY`] annotations a namespace has:
/// `index:digest` for each, by their index in that list. Not a valid annotation key (`~`): were a
/// cached namespace ever sent back, the API server would refuse it rather than keep it.
pub const ADMISSION_DIGESTS: &str = "covenant.dev/~admission-digests";

/// The digest of an annotation's value in [`ADMISSION_DIGESTS`].
fn value_digest(v: &str) -> u64 {
    crate::model::fnv1a(v.as_bytes())
}

/// A namespace as the cache keeps it, made of the metadata its watch brings: the annotations only the
/// API server reads are kept as their digests ([`ADMISSION_DIGESTS`]), and nothing of managedFields.
pub fn cached_namespace(mut metadata: ObjectMeta) -> k8s_openapi::api::core::v1::Namespace {
    metadata.managed_fields = None;
    if let Some(a) = metadata.annotations.as_mut() {
        let digests: Vec<String> = ADMISSION_ONLY
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some(format!("{i}:{:016x}", value_digest(&a.remove(*k)?))))
            .collect();
        if !digests.is_empty() {
            a.insert(ADMISSION_DIGESTS.to_string(), digests.join(","));
        }
    }
    k8s_openapi::api::core::v1::Namespace {
        metadata,
        ..Default::default()
    }
}

/// Whether the cached namespace `cached` ([`cached_namespace`]) holds every field of `want` (a
/// namespace as Covenant applies it, as JSON) with the same value: [`crate::apply::is_subset`], the
/// [`ADMISSION_ONLY`] annotations by their digests.
pub fn namespace_in_place(
    cached: &k8s_openapi::api::core::v1::Namespace,
    want: &Value,
) -> serde_json::Result<bool> {
    let mut want = want.clone();
    let held: HashMap<usize, &str> = cached
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADMISSION_DIGESTS))
        .map(|v| {
            v.split(',')
                .filter_map(|d| d.split_once(':'))
                .filter_map(|(i, h)| Some((i.parse().ok()?, h)))
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = want
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for (i, k) in ADMISSION_ONLY.iter().enumerate() {
            let Some(v) = a.remove(*k) else { continue };
            let same = v.as_str().is_some_and(|v| {
                held.get(&i) == Some(&format!("{:016x}", value_digest(v)).as_str())
            });
            if !same {
                return Ok(false);
            }
        }
    }
    Ok(crate::apply::is_subset(
        &want,
        &serde_json::to_value(cached)?,
    ))
}

/// What a cached object says about the account it belongs to (the label Covenant sets on what it
/// makes): the key of the indexes by account and of the Account controller's triggers.
pub trait OfAccount {
    /// The account label's value.
    fn account_label(&self) -> Option<String>;
}

impl<K> OfAccount for Compact<K> {
    fn account_label(&self) -> Option<String> {
        self.account.as_deref().map(str::to_string)
    }
}

impl OfAccount for k8s_openapi::api::core::v1::Namespace {
    fn account_label(&self) -> Option<String> {
        super::account_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{APPLIED_ANNOTATION, with_applied_hash};
    use k8s_openapi::api::core::v1::ResourceQuota;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use serde_json::json;

    /// What Covenant applies: a quota written as Covenant writes it (`0.5`, not `500m`).
    fn want() -> Value {
        with_applied_hash(&json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": { "name": "covenant-quota", "namespace": "acme",
                "labels": { (ACCOUNT_LABEL): "acme", "app.kubernetes.io/managed-by": "covenant" } },
            "spec": { "hard": { "pods": "20", "requests.cpu": "0.5" } }
        }))
    }

    /// Covenant's field set after applying [`want`], as the API server records it.
    fn covenant_fields() -> Value {
        json!({
            "f:metadata": {
                "f:annotations": { "f:covenant.dev/applied": {} },
                "f:labels": { "f:app.kubernetes.io/managed-by": {}, (format!("f:{ACCOUNT_LABEL}")): {} }
            },
            "f:spec": { "f:hard": { "f:pods": {}, "f:requests.cpu": {} } }
        })
    }

    /// [`want`] as the API server serves it: quantities in canonical form, its bookkeeping, the usage
    /// the quota controller writes, and a label someone else added (under their own manager).
    fn served(fields: Value) -> Value {
        let want = want();
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {
                "name": "covenant-quota", "namespace": "acme", "uid": "u-1",
                "resourceVersion": "42", "creationTimestamp": "2026-01-02T03:04:05Z",
                "labels": { (ACCOUNT_LABEL): "acme", "app.kubernetes.io/managed-by": "covenant",
                    "team": "platform" },
                "annotations": want["metadata"]["annotations"],
                "managedFields": [
                    { "manager": "covenant", "operation": "Apply", "apiVersion": "v1",
                      "fieldsType": "FieldsV1", "fieldsV1": fields },
                    { "manager": "kubectl-label", "operation": "Update", "apiVersion": "v1",
                      "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": { "f:labels": { "f:team": {} } } } },
                    { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                      "subresource": "status", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:status": { "f:hard": { ".": {}, "f:pods": {} }, "f:used": {} } } }
                ]
            },
            "spec": { "hard": { "pods": "20", "requests.cpu": "500m" } },
            "status": { "hard": { "pods": "20" }, "used": { "pods": "3" } }
        })
    }

    fn compact<K: Compactable>(v: Value) -> Compact<K> {
        serde_json::from_value(v).unwrap()
    }

    /// `v` as the cache of its kind keeps it.
    fn child<K: Compactable>(v: Value) -> Arc<Child<K>> {
        let cache = Children::default();
        cache.observe(&kube::runtime::watcher::Event::Apply(compact(v)));
        cache.state().pop().unwrap()
    }

    #[test]
    fn a_compact_object_keeps_what_is_read_and_nothing_else() {
        let c: Compact<ResourceQuota> = compact(served(covenant_fields()));
        assert_eq!(c.account.as_deref(), Some("acme"));
        assert_eq!(kube::ResourceExt::name_any(&c), "covenant-quota");
        assert_eq!(c.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(c.metadata.resource_version.as_deref(), Some("42"));
        // No labels, annotations, UID or managedFields held: the account is apart, the rest a digest.
        assert!(c.metadata.labels.is_none() && c.metadata.annotations.is_none());
        assert!(c.metadata.uid.is_none() && c.metadata.managed_fields.is_none());
        assert!(c.owned.is_some() && c.kept.is_none());
        // Of the bounds quota, its hard limits are kept (a retained namespace's bounds come from them).
        let mut bounds = served(covenant_fields());
        bounds["metadata"]["name"] = json!(crate::model::account::BOUNDS_QUOTA_NAME);
        let q: ResourceQuota = child::<ResourceQuota>(bounds).object().unwrap();
        assert_eq!(q.metadata.namespace.as_deref(), Some("acme"));
        let hard = q.spec.unwrap().hard.unwrap();
        assert_eq!(hard["requests.cpu"].0, "500m");
    }

    /// In place exactly when the fields Covenant's apply owns hold what it would apply: the API
    /// server's canonical quantities, its bookkeeping, usage and someone else's label do not count;
    /// someone's change of a field Covenant applied (which moves the field to them) does, as does a
    /// removal, a forced change of the value, and an object Covenant's apply owns nothing of.
    #[test]
    fn in_place_means_covenants_own_fields_hold_its_values() {
        let want = want();
        let c: Arc<Child<ResourceQuota>> = child(served(covenant_fields()));
        assert!(c.in_place(&want));

        // Edited by someone else (`kubectl edit`): the field moved to their manager, with a new value.
        let mut edited = served(covenant_fields());
        edited["spec"]["hard"]["pods"] = json!("200");
        edited["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:hard"]
            .as_object_mut()
            .unwrap()
            .remove("f:pods");
        assert!(!child::<ResourceQuota>(edited).in_place(&want));
        // A value changed while Covenant's set still names the field.
        let mut forced = served(covenant_fields());
        forced["spec"]["hard"]["requests.cpu"] = json!("2");
        assert!(!child::<ResourceQuota>(forced).in_place(&want));
        // The account label removed.
        let mut unlabelled = served(covenant_fields());
        unlabelled["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(ACCOUNT_LABEL);
        let c: Arc<Child<ResourceQuota>> = child(unlabelled);
        assert_eq!(c.account(), None);
        assert!(!c.in_place(&want));
        // What Covenant wants changed (a new hash, a new limit): not in place until applied again.
        let mut more = want.clone();
        more["spec"]["hard"]["pods"] = json!("21");
        assert!(!child::<ResourceQuota>(served(covenant_fields())).in_place(&more));
        // Never applied by Covenant (no Apply entry of its manager): applied when wanted.
        let mut foreign = served(covenant_fields());
        foreign["metadata"]["managedFields"][0]["manager"] = json!("someone");
        let c: Arc<Child<ResourceQuota>> = child(foreign);
        assert!(c.owned.is_none() && !c.in_place(&want));
    }

    /// A quota of account `account` in namespace `ns`, as served with resourceVersion `rv`.
    fn quota_in(ns: &str, name: &str, account: Option<&str>, rv: &str) -> Compact<ResourceQuota> {
        let mut v = served(covenant_fields());
        v["metadata"]["namespace"] = json!(ns);
        v["metadata"]["name"] = json!(name);
        v["metadata"]["resourceVersion"] = json!(rv);
        match account {
            Some(a) => v["metadata"]["labels"][ACCOUNT_LABEL] = json!(a),
            None => drop(
                v["metadata"]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove(ACCOUNT_LABEL),
            ),
        }
        compact(v)
    }

    /// The cache of a child kind answers by name and by account as the watch's events leave it: an
    /// object relabelled moves to its new account, one deleted goes from both, and a relist replaces
    /// the whole cache only once it is complete (readers see the old one until then).
    #[test]
    fn the_cache_of_a_child_kind_follows_the_watch_by_name_and_by_account() {
        use kube::runtime::reflector::ObjectRef;
        use kube::runtime::watcher::Event;
        let cache: Children<ResourceQuota> = Children::default();
        let names = |v: Vec<Arc<Child<ResourceQuota>>>| {
            let mut n: Vec<String> = v
                .iter()
                .map(|c| format!("{}/{}", c.namespace().unwrap(), c.name_any()))
                .collect();
            n.sort();
            n
        };
        let heard = cache.observe(&Event::Apply(quota_in("a1", "q", Some("acme"), "1")));
        assert_eq!(names(heard), ["a1/q"]);
        cache.observe(&Event::Apply(quota_in("a2", "q", Some("acme"), "2")));
        cache.observe(&Event::Apply(quota_in("g1", "q", Some("globex"), "3")));
        assert_eq!(names(cache.of_account("acme")), ["a1/q", "a2/q"]);
        let got = cache.get(&ObjectRef::new("q").within("a2")).unwrap();
        assert_eq!(
            (got.resource_version(), got.account(), got.deleting()),
            ("2", Some("acme"), false)
        );
        assert!(got.in_place(&want()));
        assert!(cache.get(&ObjectRef::new("q").within("zz")).is_none());
        // Relabelled to another account; then unlabelled (found by name, filed under no account).
        cache.observe(&Event::Apply(quota_in("a2", "q", Some("globex"), "4")));
        assert_eq!(names(cache.of_account("acme")), ["a1/q"]);
        assert_eq!(names(cache.of_account("globex")), ["a2/q", "g1/q"]);
        cache.observe(&Event::Apply(quota_in("a2", "q", None, "5")));
        assert_eq!(names(cache.of_account("globex")), ["g1/q"]);
        assert_eq!(
            cache
                .get(&ObjectRef::new("q").within("a2"))
                .unwrap()
                .account(),
            None
        );
        // Deleted.
        cache.observe(&Event::Delete(quota_in("g1", "q", Some("globex"), "6")));
        assert!(cache.of_account("globex").is_empty());
        assert_eq!(names(cache.state()), ["a1/q", "a2/q"]);
        // A relist: the old cache until it is complete, then exactly what it listed.
        cache.observe(&Event::Init);
        cache.observe(&Event::InitApply(quota_in("n1", "q", Some("acme"), "7")));
        assert_eq!(names(cache.of_account("acme")), ["a1/q"]);
        let heard = cache.observe(&Event::InitDone);
        assert_eq!(names(heard), ["n1/q"]);
        assert_eq!(names(cache.state()), ["n1/q"]);
        assert_eq!(names(cache.of_account("acme")), ["n1/q"]);
    }

    /// A tenant namespace is cached with the annotations only the API server reads as their digests,
    /// and compared as before: in place exactly when every label and annotation Covenant applies holds
    /// its value, one it does not apply (another's, or one the namespace's create left) not counting.
    #[test]
    fn a_namespace_is_cached_with_digests_of_what_only_admission_reads_and_compared_by_them() {
        use crate::model::account::{ADMINISTRATORS_ANNOTATION, ALLOWED_SUBJECTS_ANNOTATION};
        use crate::model::tenant_policies::{DENIED_CIDRS_ANNOTATION, SIP_EGRESS_ANNOTATION};
        let want = with_applied_hash(&json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": "acme", "labels": { (ACCOUNT_LABEL): "acme" },
                "annotations": { (ALLOWED_SUBJECTS_ANNOTATION): "User:a", (ADMINISTRATORS_ANNOTATION): "User:a",
                    (DENIED_CIDRS_ANNOTATION): "169.254.0.0/16", "covenant.dev/account-uid": "u-1" } }
        }));
        let served = |edit: &dyn Fn(&mut Value)| {
            let mut v = want.clone();
            v["metadata"]["resourceVersion"] = json!("7");
            v["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!("acme");
            edit(&mut v);
            let m: ObjectMeta = serde_json::from_value(v["metadata"].clone()).unwrap();
            cached_namespace(m)
        };
        let same = served(&|_| {});
        let a = same.metadata.annotations.as_ref().unwrap();
        // Read by the operator: kept as it is. Read only by admission: a digest, not the value.
        assert_eq!(a["covenant.dev/account-uid"], "u-1");
        for k in [
            ALLOWED_SUBJECTS_ANNOTATION,
            DENIED_CIDRS_ANNOTATION,
            APPLIED_ANNOTATION,
        ] {
            assert!(!a.contains_key(k), "{k}");
        }
        assert_eq!(a[ADMISSION_DIGESTS].split(',').count(), 4);
        assert!(namespace_in_place(&same, &want).unwrap());
        // One the create left that Covenant no longer applies: not Covenant's, does not count.
        let extra =
            served(&|v| v["metadata"]["annotations"][SIP_EGRESS_ANNOTATION] = json!("denied"));
        assert!(namespace_in_place(&extra, &want).unwrap());
        // A value changed, one removed, a label changed, another annotation changed: not in place.
        let changed = served(&|v| {
            v["metadata"]["annotations"][ALLOWED_SUBJECTS_ANNOTATION] = json!("User:b")
        });
        assert!(!namespace_in_place(&changed, &want).unwrap());
        let removed = served(&|v| {
            v["metadata"]["annotations"]
                .as_object_mut()
                .unwrap()
                .remove(DENIED_CIDRS_ANNOTATION);
        });
        assert!(!namespace_in_place(&removed, &want).unwrap());
        let relabelled = served(&|v| v["metadata"]["labels"][ACCOUNT_LABEL] = json!("globex"));
        assert!(!namespace_in_place(&relabelled, &want).unwrap());
        let uid =
            served(&|v| v["metadata"]["annotations"]["covenant.dev/account-uid"] = json!("u-2"));
        assert!(!namespace_in_place(&uid, &want).unwrap());
        // What Covenant wants changed: not in place until applied again.
        let mut more = want.clone();
        more["metadata"]["annotations"][ADMINISTRATORS_ANNOTATION] = json!("User:a\nUser:c");
        assert!(!namespace_in_place(&same, &more).unwrap());
    }

    /// A limit range whose package gives only a maximum is served with the defaults Kubernetes derives
    /// from it (inside the atomic list of items Covenant owns whole): still in place.
    #[test]
    fn a_limit_range_is_compared_with_the_defaults_the_api_server_adds() {
        use k8s_openapi::api::core::v1::LimitRange;
        let want = with_applied_hash(&json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": { "name": "covenant-limits", "namespace": "acme",
                "labels": { (ACCOUNT_LABEL): "acme" } },
            "spec": { "limits": [{ "type": "Container", "max": { "cpu": "2", "memory": "1Gi" },
                "default": { "cpu": "0.5" } }] }
        }));
        let mut served = want.clone();
        served["spec"]["limits"][0] = json!({ "type": "Container",
            "max": { "cpu": "2", "memory": "1Gi" },
            "default": { "cpu": "500m", "memory": "1Gi" },
            "defaultRequest": { "cpu": "500m", "memory": "1Gi" } });
        served["metadata"]["managedFields"] = json!([{ "manager": "covenant", "operation": "Apply",
            "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {
                "f:metadata": { "f:annotations": { "f:covenant.dev/applied": {} },
                    "f:labels": { (format!("f:{ACCOUNT_LABEL}")): {} } },
                "f:spec": { "f:limits": {} } } }]);
        assert!(child::<LimitRange>(served.clone()).in_place(&want));
        let mut lowered = served;
        lowered["spec"]["limits"][0]["max"]["cpu"] = json!("1");
        assert!(!child::<LimitRange>(lowered).in_place(&want));
    }

    /// Lists as the API server tracks them: an atomic list (a policy's rules) is owned whole, and of
    /// an associative list (owner references, by UID) only Covenant's own item counts.
    #[test]
    fn lists_count_whole_when_atomic_and_by_item_when_keyed() {
        let want = with_applied_hash(&json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": { "name": "covenant-isolation", "namespace": "acme",
                "labels": { (ACCOUNT_LABEL): "acme" },
                "ownerReferences": [{ "apiVersion": "covenant.dev/v1alpha1", "kind": "Account",
                    "name": "acme", "uid": "u-acct" }] },
            "spec": { "podSelector": {}, "policyTypes": ["Ingress"],
                "ingress": [{ "from": [{ "podSelector": {} }] }] }
        }));
        let fields = json!({
            "f:metadata": {
                "f:annotations": { "f:covenant.dev/applied": {} },
                "f:labels": { (format!("f:{ACCOUNT_LABEL}")): {} },
                "f:ownerReferences": { "k:{\"uid\":\"u-acct\"}": {} }
            },
            "f:spec": { "f:ingress": {}, "f:podSelector": {}, "f:policyTypes": {} }
        });
        let mut served = want.clone();
        served["metadata"]["uid"] = json!("u-np");
        served["metadata"]["ownerReferences"]
            .as_array_mut()
            .unwrap()
            .insert(
                0,
                json!({ "apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u-cm" }),
            );
        served["metadata"]["managedFields"] = json!([{ "manager": "covenant", "operation": "Apply",
            "apiVersion": "networking.k8s.io/v1", "fieldsType": "FieldsV1", "fieldsV1": fields }]);
        assert!(child::<NetworkPolicy>(served.clone()).in_place(&want));
        // A rule added to the atomic list: Covenant's list is not as it applied it.
        let mut widened = served.clone();
        widened["spec"]["ingress"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "from": [{ "ipBlock": { "cidr": "0.0.0.0/0" } }] }));
        assert!(!child::<NetworkPolicy>(widened).in_place(&want));
        // Its owner reference gone: not in place either.
        let mut orphaned = served;
        orphaned["metadata"]["ownerReferences"]
            .as_array_mut()
            .unwrap()
            .truncate(1);
        assert!(!child::<NetworkPolicy>(orphaned).in_place(&want));
    }
}
