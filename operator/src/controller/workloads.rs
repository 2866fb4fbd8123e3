//! Scaling a suspended tenant's workloads to zero and back (§2.4 with `scaleWorkloads`).
//!
//! Durability and trust: the replica counts are recorded on the tenant's Namespace (annotation
//! [`RECORD_ANNOTATION`], a JSON object `{"Deployment/web": 3, ...}`), which only the operator may
//! write (admission policy `covenant-namespace-labels`): a tenant can neither choose what a lift
//! restores nor make the record too large to write. The record is written (with the Namespace's
//! resourceVersion, so no concurrent write is lost) before anything is scaled, through the `scale`
//! subresource, and removed only after everything was restored; a restart at any point converges:
//! nothing is scaled twice, and nothing is forgotten. One workload that cannot be scaled does not stop
//! the others (the first error is returned once all were tried, and the reconcile retries).
//!
//! What is scaled: Deployments, StatefulSets, and ReplicaSets that no live Deployment controls (a bare
//! one, or one whose Deployment is being deleted and so no longer scales it).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::Result;
use crate::metrics::Metrics;

/// Annotation on a tenant Namespace: the replica counts of its workloads before a suspension scaled
/// them to zero, by `Kind/name`.
pub const RECORD_ANNOTATION: &str = "covenant.dev/replicas-before-suspension";
pub use crate::model::account::SCALED_MARKER;

/// The replica counts a suspension recorded, by `Kind/name`.
type Record = BTreeMap<String, i32>;

/// A workload that can be scaled: its kind, name and replica count.
struct Workload {
    kind: &'static str,
    name: String,
    replicas: i32,
}

impl Workload {
    fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// Every scalable workload in `ns` (see the module documentation for which ReplicaSets).
async fn workloads(client: &Client, ns: &str) -> Result<Vec<Workload>> {
    let lp = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?;
    let live: Vec<String> = deployments
        .iter()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .collect();
    let mut out: Vec<Workload> = deployments
        .iter()
        .map(|d| Workload {
            kind: "Deployment",
            name: d.name_any(),
            replicas: d.spec.replicas.unwrap_or(1),
        })
        .collect();
    for s in Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
    {
        out.push(Workload {
            kind: "StatefulSet",
            name: s.name_any(),
            replicas: s.spec.replicas.unwrap_or(1),
        });
    }
    for r in Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
    {
        let controlled = r.owner_references().iter().any(|o| {
            o.controller == Some(true) && o.kind == "Deployment" && live.contains(&o.name)
        });
        if !controlled {
            out.push(Workload {
                kind: "ReplicaSet",
                name: r.name_any(),
                replicas: r.spec.replicas.unwrap_or(1),
            });
        }
    }
    Ok(out)
}

/// Sets the replica count of a workload through its `scale` subresource.
async fn scale(client: &Client, ns: &str, kind: &str, name: &str, replicas: i32) -> Result<bool> {
    let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
    let pp = PatchParams::default();
    let r = match kind {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), ns)
            .patch_scale(name, &pp, &patch)
            .await
            .map(drop),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .patch_scale(name, &pp, &patch)
            .await
            .map(drop),
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .patch_scale(name, &pp, &patch)
            .await
            .map(drop),
        _ => return Ok(false),
    };
    match r {
        Ok(()) => Ok(true),
        // Gone meanwhile: nothing to scale or restore.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The namespace `ns` as it is now, and its record.
async fn current(client: &Client, ns: &str) -> Result<(Namespace, Record)> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    let record = n
        .annotations()
        .get(RECORD_ANNOTATION)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    Ok((n, record))
}

/// Writes (or, with `None`, removes) the record, only over the version of the namespace it was read
/// from.
async fn write_record(client: &Client, n: &Namespace, record: Option<&Record>) -> Result<()> {
    let value = match record {
        Some(r) => json!(serde_json::to_string(r)?),
        None => serde_json::Value::Null,
    };
    let patch = json!({ "metadata": {
        "resourceVersion": n.resource_version(),
        "annotations": { RECORD_ANNOTATION: value }
    }});
    Api::<Namespace>::all(client.clone())
        .patch(
            &n.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Records the replica counts of the running workloads in `ns` (keeping counts already recorded: a
/// workload scaled up again while suspended is restored to what it had before) and scales them to
/// zero. Returns how many were scaled.
pub async fn suspend(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    let running: Vec<Workload> = workloads(client, ns)
        .await?
        .into_iter()
        .filter(|w| w.replicas > 0)
        .collect();
    if running.is_empty() {
        return Ok(0);
    }
    let (n, mut record) = current(client, ns).await?;
    let before = record.clone();
    for w in &running {
        record.entry(w.key()).or_insert(w.replicas);
    }
    if record != before {
        write_record(client, &n, Some(&record)).await?;
        metrics.write("Namespace");
    }
    let (mut scaled, mut first_error) = (0, None);
    for w in &running {
        match scale(client, ns, w.kind, &w.name, 0).await {
            Ok(true) => {
                metrics.write(w.kind);
                scaled += 1;
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(scaled),
    }
}

/// Restores every workload in `ns` that the record names, then removes the record. Returns how many
/// were restored.
pub async fn lift(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    let (n, record) = current(client, ns).await?;
    if record.is_empty() && !n.annotations().contains_key(RECORD_ANNOTATION) {
        return Ok(0);
    }
    let (mut restored, mut first_error) = (0, None);
    for (key, replicas) in &record {
        let Some((kind, name)) = key.split_once('/') else {
            continue;
        };
        match scale(client, ns, kind, name, *replicas).await {
            Ok(true) => {
                metrics.write(kind);
                restored += 1;
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    write_record(client, &n, None).await?;
    metrics.write("Namespace");
    Ok(restored)
}
