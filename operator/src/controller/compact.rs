//! The compact form in which the caches keep the child objects Covenant applies (quotas, limit
//! ranges, network policies, role bindings, cluster roles and their bindings).
//!
//! Of such an object the operator reads only:
//! - what `apply::is_subset` compares with what it wants to apply: the object's own fields as the API
//!   server serves them (spec, labels, annotations with the applied hash, owner references);
//! - the account it is labelled with (the index by account, the triggers, `delete_unwanted`);
//! - its name, namespace, UID, resourceVersion and deletion mark (cache keys, the writes awaiting
//!   the cache, the deletions).
//!
//! So the cache holds those few metadata fields apart and the rest as one JSON string, parsed only when
//! an apply compares. A k8s-openapi struct holds every label and annotation in a `BTreeMap` (a node of
//! about 540 bytes each, even for one entry) and every optional field inline: the JSON of the same
//! object is several times smaller (measured in BENCHMARKS.md). The watch deserializes each object
//! straight into this form, so a (re)list never holds a page of full structs beyond the one being
//! converted.

use std::borrow::Cow;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ACCOUNT_LABEL;

/// A child kind cached compactly: what of an object is dropped before it is kept (beyond
/// `managedFields` and the metadata the API server manages, always dropped).
pub trait Compactable: Resource<DynamicType = ()> + Serialize + DeserializeOwned {
    /// Clears what nothing reads (e.g. a quota's usage, which changes with every pod).
    fn trim(&mut self) {}
}

impl Compactable for k8s_openapi::api::core::v1::ResourceQuota {
    fn trim(&mut self) {
        self.status = None;
    }
}
impl Compactable for k8s_openapi::api::core::v1::LimitRange {}
impl Compactable for k8s_openapi::api::networking::v1::NetworkPolicy {}
impl Compactable for k8s_openapi::api::rbac::v1::RoleBinding {}
impl Compactable for k8s_openapi::api::rbac::v1::ClusterRole {}
impl Compactable for k8s_openapi::api::rbac::v1::ClusterRoleBinding {}

/// A cached object of kind `K` in compact form (see the module's documentation).
pub struct Compact<K> {
    /// Name, namespace, UID, resourceVersion and deletion mark; nothing else.
    metadata: ObjectMeta,
    /// The value of the account label.
    account: Option<Box<str>>,
    /// The object as served, without its managedFields, status (where trimmed) and the metadata
    /// held above or managed by the API server (UID, resourceVersion, creation time, generation).
    json: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            account: self.account.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compact")
            .field("metadata", &self.metadata)
            .field("account", &self.account)
            .field("json", &self.json)
            .finish()
    }
}

impl<K: Compactable> Compact<K> {
    /// The compact form of `obj`.
    pub fn new(mut obj: K) -> Self {
        obj.trim();
        let m = obj.meta_mut();
        let account = m
            .labels
            .as_ref()
            .and_then(|l| l.get(ACCOUNT_LABEL))
            .map(|a| a.as_str().into());
        let metadata = ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.take(),
            resource_version: m.resource_version.take(),
            deletion_timestamp: m.deletion_timestamp.clone(),
            ..Default::default()
        };
        m.managed_fields = None;
        m.creation_timestamp = None;
        m.generation = None;
        m.self_link = None;
        // A struct that serialized once serializes again; nothing is compared against an empty one.
        let json = serde_json::to_string(&obj).unwrap_or_default().into();
        Compact {
            metadata,
            account,
            json,
            kind: PhantomData,
        }
    }
}

impl<K: DeserializeOwned> Compact<K> {
    /// The object as its kind's struct, read back from the JSON (without the metadata kept apart), for
    /// the few readers of a field of a cached child; `None` if it cannot be read back.
    pub fn object(&self) -> Option<K> {
        serde_json::from_str(&self.json).ok()
    }
}

impl<K> Compact<K> {
    /// The object's fields as JSON, for `apply::is_subset` (`Null` if it cannot be read back, which
    /// compares as different: the object is applied again).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// The account the object is labelled with.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
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

/// The account of a cached object, for [`super::Index`]es by account.
pub fn account_key<K: OfAccount>(o: &K) -> Option<String> {
    o.account_label()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{is_subset, with_applied_hash};
    use k8s_openapi::api::core::v1::ResourceQuota;
    use serde_json::json;

    fn served() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {
                "name": "covenant-quota", "namespace": "acme", "uid": "u-1",
                "resourceVersion": "42", "creationTimestamp": "2026-01-02T03:04:05Z",
                "labels": { (ACCOUNT_LABEL): "acme", "app.kubernetes.io/managed-by": "covenant" },
                "annotations": { "covenant.dev/applied": "0123456789abcdef" },
                "managedFields": [{ "manager": "covenant", "operation": "Apply",
                    "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": {} } }]
            },
            "spec": { "hard": { "pods": "20", "requests.cpu": "500m" } },
            "status": { "hard": { "pods": "20" }, "used": { "pods": "3" } }
        })
    }

    #[test]
    fn a_compact_object_keeps_what_is_compared_and_read_and_drops_the_rest() {
        let c: Compact<ResourceQuota> = serde_json::from_value(served()).unwrap();
        assert_eq!(c.account(), Some("acme"));
        assert_eq!(kube::ResourceExt::name_any(&c), "covenant-quota");
        assert_eq!(c.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(c.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(c.metadata.resource_version.as_deref(), Some("42"));
        // The labels are not held as a map (the account is apart), but the JSON keeps them for the
        // comparison.
        assert!(c.metadata.labels.is_none() && c.metadata.annotations.is_none());
        let j = c.json();
        assert_eq!(j["metadata"]["labels"][ACCOUNT_LABEL], "acme");
        assert_eq!(
            j["metadata"]["annotations"]["covenant.dev/applied"],
            "0123456789abcdef"
        );
        // Usage, managedFields and the server's bookkeeping are gone.
        assert!(j.get("status").is_none());
        for gone in [
            "managedFields",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            assert!(j["metadata"].get(gone).is_none(), "{gone} kept");
        }
    }

    #[test]
    fn the_apply_check_answers_the_same_on_the_compact_form() {
        let want = with_applied_hash(&json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": { "name": "covenant-quota", "namespace": "acme",
                "labels": { (ACCOUNT_LABEL): "acme" } },
            "spec": { "hard": { "pods": "20", "requests.cpu": "0.5" } }
        }));
        let mut live = served();
        live["metadata"]["annotations"] = want["metadata"]["annotations"].clone();
        let full: ResourceQuota = serde_json::from_value(live.clone()).unwrap();
        let c: Compact<ResourceQuota> = serde_json::from_value(live.clone()).unwrap();
        assert!(is_subset(&want, &serde_json::to_value(&full).unwrap()));
        assert!(is_subset(&want, &c.json()));
        // Someone changed the quota (drift): both forms see it.
        live["spec"]["hard"]["pods"] = json!("200");
        let c: Compact<ResourceQuota> = serde_json::from_value(live.clone()).unwrap();
        assert!(!is_subset(&want, &c.json()));
        // Someone removed the account label: seen too, and the object is no longer filed under it.
        let mut unlabelled = served();
        unlabelled["metadata"]["labels"] = json!({});
        let c: Compact<ResourceQuota> = serde_json::from_value(unlabelled).unwrap();
        assert_eq!(c.account(), None);
        assert!(!is_subset(&want, &c.json()));
    }
}
