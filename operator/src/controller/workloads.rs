//! Scaling a suspended tenant's workloads to zero and back (§2.4 with `scaleWorkloads`).
//!
//! Durability: each workload's replica count is recorded on the workload itself, in the same patch
//! that scales it to zero, and a marker on the Namespace says that workloads there may be scaled.
//! Lifting restores every annotated workload first and only then drops the marker, so a restart at
//! any point converges: nothing is scaled twice, and nothing is forgotten.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::Result;
use crate::metrics::Metrics;

/// Annotation on a workload: its replica count before the suspension scaled it to zero.
pub const REPLICAS_ANNOTATION: &str = "covenant.dev/replicas-before-suspension";
pub use crate::model::account::SCALED_MARKER;

trait Scalable:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
    fn replicas(&self) -> i32;
}

impl Scalable for Deployment {
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
}

impl Scalable for StatefulSet {
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
}

async fn scale_down<K: Scalable>(
    client: &Client,
    ns: &str,
    fresh: bool,
    metrics: &Metrics,
) -> Result<usize> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut n = 0;
    for w in api.list(&ListParams::default()).await? {
        let replicas = w.replicas();
        if replicas == 0 {
            continue;
        }
        // A suspension that starts now (the namespace was not marked) records the count it sees: one
        // the tenant wrote into the annotation beforehand is not what it had. While the suspension goes
        // on, the first recorded count is kept: a workload scaled up again meanwhile is scaled back
        // down, and restored to what the tenant had before. (A workload already at zero is left as it
        // is, so a cache that has not seen the marker yet never loses a recorded count.)
        let recorded = match w.annotations().get(REPLICAS_ANNOTATION) {
            Some(a) if !fresh => a.clone(),
            _ => replicas.to_string(),
        };
        let patch = json!({
            "metadata": { "annotations": { REPLICAS_ANNOTATION: recorded } },
            "spec": { "replicas": 0 }
        });
        api.patch(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        metrics.write(K::kind(&()).as_ref());
        n += 1;
    }
    Ok(n)
}

async fn restore<K: Scalable>(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut n = 0;
    for w in api.list(&ListParams::default()).await? {
        let Some(recorded) = w.annotations().get(REPLICAS_ANNOTATION) else {
            continue;
        };
        // An unparsable record (edited by hand) restores one replica rather than none.
        let replicas: i32 = recorded.parse().unwrap_or(1);
        let patch = json!({
            "metadata": { "annotations": { REPLICAS_ANNOTATION: null } },
            "spec": { "replicas": replicas }
        });
        api.patch(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        metrics.write(K::kind(&()).as_ref());
        n += 1;
    }
    Ok(n)
}

/// Scales every Deployment and StatefulSet in `ns` to zero, recording the replica counts. `fresh`: the
/// suspension starts now (the namespace was not marked yet), so no recorded count is trusted.
pub async fn suspend(client: &Client, ns: &str, fresh: bool, metrics: &Metrics) -> Result<usize> {
    Ok(scale_down::<Deployment>(client, ns, fresh, metrics).await?
        + scale_down::<StatefulSet>(client, ns, fresh, metrics).await?)
}

/// Restores every workload in `ns` that a suspension scaled to zero.
pub async fn lift(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    Ok(restore::<Deployment>(client, ns, metrics).await?
        + restore::<StatefulSet>(client, ns, metrics).await?)
}
