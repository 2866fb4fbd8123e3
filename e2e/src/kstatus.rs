//! kstatus of live objects, by the library GitOps tools use to decide that what they applied has
//! settled: cli-utils' `kstatus/status.Compute` (`e2e/tools/kstatus`, pinned at `CLI_UTILS_VERSION` in
//! `e2e/cluster/versions.env`).
//!
//! For a custom resource such as an `Account`, kstatus says: `Terminating` with a deletion timestamp;
//! else `InProgress` while `status.observedGeneration` (when present) differs from
//! `metadata.generation`; else `InProgress` with `Reconciling=True`, `Failed` with `Stalled=True`;
//! else by `Ready` (`True`: Current; `False`/`Unknown`: InProgress); else `Current`, which is also
//! its answer for an object with no status at all.

use anyhow::{Context, bail};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The kstatus of one object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KStatus {
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's namespace (empty for a cluster-scoped object).
    pub namespace: String,
    /// `Current`, `InProgress`, `Failed`, `Terminating`, `NotFound` (from [`of`] only) or `Unknown`
    /// (kstatus could not read the object's status; the message says why).
    pub status: String,
    /// kstatus' message.
    pub message: String,
}

/// The kstatus of each of `objects` (Kubernetes objects with `apiVersion` and `kind`, as read from the
/// API server), in order.
pub fn compute(objects: &[serde_json::Value]) -> anyhow::Result<Vec<KStatus>> {
    let stdin = serde_json::to_vec(objects).context("serializing the objects")?;
    let stdout = crate::tools::run("kstatus", &stdin)?;
    let out: Vec<KStatus> = serde_json::from_slice(&stdout).with_context(|| {
        format!(
            "kstatus printed something else than its results: {}",
            String::from_utf8_lossy(&stdout)
        )
    })?;
    if out.len() != objects.len() {
        bail!(
            "kstatus answered {} results for {} objects",
            out.len(),
            objects.len()
        );
    }
    Ok(out)
}

/// The kstatus of the object `name` read live through `api`; `NotFound` (message `Resource not
/// found`, as kstatus' poller says) when it does not exist.
pub async fn of<K>(api: &Api<K>, name: &str) -> anyhow::Result<KStatus>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let Some(obj) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading {} {name}", K::kind(&())))?
    else {
        return Ok(KStatus {
            kind: K::kind(&()).into_owned(),
            name: name.to_string(),
            namespace: api.namespace().unwrap_or_default().to_string(),
            status: "NotFound".into(),
            message: "Resource not found".into(),
        });
    };
    let value = serde_json::to_value(&obj).context("serializing the object")?;
    let mut out = compute(&[value])?;
    out.pop().context("kstatus gave no result")
}
