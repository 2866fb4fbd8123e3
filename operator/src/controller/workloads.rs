//! What a suspension does to a tenant's workloads (§2.4): CronJobs are suspended (always, and in
//! retained namespaces), and with `scaleWorkloads` Deployments, StatefulSets and bare ReplicaSets are
//! scaled to zero; the lift restores exactly what each had.
//!
//! The record: each workload keeps its own value from before the suspension, in the annotation
//! [`BEFORE_ANNOTATION`] on the workload itself (`<token>:<replicas>` or `<token>:<suspend>`), written
//! in the same patch that scales or suspends it (with the workload's resourceVersion): nothing is ever
//! scaled without its record, and the record of one workload never grows with the others, so it cannot
//! overflow however many workloads a namespace holds.
//!
//! Trust: a record counts only when its token is the one on the Namespace ([`TOKEN_ANNOTATION`]), which
//! the operator writes, fresh and unpredictable, before it suspends anything, and which only the
//! operator may write (admission policy `covenant-namespace-labels`). The namespace is read-only for
//! the tenant (admission policy `covenant-read-only`) from before the token exists until after it is
//! removed, so a tenant can neither choose what a lift restores nor plant a record beforehand: a
//! running workload's record is always overwritten when it is suspended, and a record with another
//! token is never read.
//!
//! Durability: the token is written before any workload is touched and removed only after every
//! workload was restored (restoring a workload removes its record in the same patch); a restart at any
//! point converges: nothing is suspended twice (a workload with a valid record keeps it), and nothing
//! is forgotten (a namespace with a token is lifted again until none is left). One workload that cannot
//! be changed does not stop the others (the first error is returned once all were tried: the reconcile
//! reports it as a condition and an Event, and retries).
//!
//! The namespace's record ([`RECORD_ANNOTATION`], `{"Deployment/web": 3, ...}`): where an earlier
//! version kept every count, read so that a namespace it suspended is still lifted exactly (a workload
//! it names keeps that count, and the lift restores it and then removes the annotation). It is written
//! only for a workload whose own annotations have no room for its record (a tenant can pad them to the
//! API server's limit), so it holds only those; that workload is stopped all the same, and if even the
//! namespace's record cannot be written the account reports it (a condition and an Event).
//!
//! What is scaled: Deployments, StatefulSets, and ReplicaSets that no live Deployment controls (a bare
//! one, or one whose Deployment is being deleted and so no longer scales it).

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiErrorKind as K, Result};
use crate::metrics::Metrics;

/// Annotation on a tenant Namespace: the replica counts of workloads before a suspension scaled them
/// to zero, by `Kind/name` (a CronJob's 0: it was not suspended). Earlier versions kept every count
/// here; now only workloads whose own annotations have no room for their record.
pub const RECORD_ANNOTATION: &str = "covenant.dev/replicas-before-suspension";
/// Annotation on a tenant Namespace: the token of the current suspension's records. Present from
/// before the first workload is suspended until after the last one is restored.
pub const TOKEN_ANNOTATION: &str = "covenant.dev/suspension-token";
/// Annotation on a tenant workload: `<token>:<value>`, its replica count (or a CronJob's
/// `spec.suspend`) before the suspension.
pub const BEFORE_ANNOTATION: &str = "covenant.dev/before-suspension";
pub use crate::model::account::SCALED_MARKER;

/// The counts recorded on the namespace, by `Kind/name` (see [`RECORD_ANNOTATION`]).
type LegacyRecord = BTreeMap<String, i32>;

/// What to suspend or lift (decided by `crate::model::plan`).
pub use crate::model::plan::Scope;

/// The kinds of workloads, with what their record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    ReplicaSet,
    CronJob,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::CronJob => "CronJob",
        }
    }

    fn in_scope(self, scope: Scope) -> bool {
        match self {
            Kind::CronJob => scope.cronjobs,
            _ => scope.replicas,
        }
    }
}

/// What a workload runs: a replica count, or whether a CronJob is suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Running {
    Replicas(i32),
    Suspend(bool),
}

impl Running {
    /// Whether a suspension has something to stop.
    fn active(self) -> bool {
        match self {
            Running::Replicas(n) => n > 0,
            Running::Suspend(s) => !s,
        }
    }

    /// What a suspension leaves.
    fn stopped(self) -> Running {
        match self {
            Running::Replicas(_) => Running::Replicas(0),
            Running::Suspend(_) => Running::Suspend(true),
        }
    }

    fn value(self) -> String {
        match self {
            Running::Replicas(n) => n.to_string(),
            Running::Suspend(s) => s.to_string(),
        }
    }

    /// The spec fields that set it.
    fn spec(self) -> Value {
        match self {
            Running::Replicas(n) => json!({ "replicas": n }),
            Running::Suspend(s) => json!({ "suspend": s }),
        }
    }

    /// `value` read as the same kind of value as `self`.
    fn parse_like(self, value: &str) -> Option<Running> {
        match self {
            Running::Replicas(_) => value
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Running::Replicas),
            Running::Suspend(_) => value.parse::<bool>().ok().map(Running::Suspend),
        }
    }
}

/// One workload as listed: kind, name, resourceVersion, what it runs, and its record annotation.
#[derive(Clone, Debug)]
struct Workload {
    kind: Kind,
    name: String,
    resource_version: Option<String>,
    running: Running,
    record: Option<String>,
}

impl Workload {
    fn key(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// The value recorded for `w` under `token`, if its record is one (a record with another token, or
/// none, is no record).
fn trusted(w: &Workload, token: &str) -> Option<Running> {
    let (t, value) = w.record.as_deref()?.split_once(':')?;
    (!token.is_empty() && t == token)
        .then(|| w.running.parse_like(value))
        .flatten()
}

/// The annotation value recording `before` under `token`.
fn record_value(token: &str, before: Running) -> String {
    format!("{token}:{}", before.value())
}

/// What suspending `w` writes, if anything: the record (when it has no trusted one: then what it runs
/// now, or what an earlier version's `legacy` record says) and the stopped spec.
fn suspend_patch(w: &Workload, token: &str, legacy: &LegacyRecord) -> Option<Value> {
    if !w.running.active() {
        return None;
    }
    let mut meta = json!({ "resourceVersion": w.resource_version });
    if trusted(w, token).is_none() {
        let before = match (w.running, legacy.get(&w.key())) {
            (Running::Replicas(_), Some(n)) => Running::Replicas(*n),
            (r, _) => r,
        };
        meta["annotations"] = json!({ BEFORE_ANNOTATION: record_value(token, before) });
    }
    Some(json!({ "metadata": meta, "spec": w.running.stopped().spec() }))
}

/// What lifting `w` writes, if anything: the recorded spec, and the record removed. A workload an
/// earlier version's `legacy` record names (and that has no trusted record) gets that count.
fn lift_patch(w: &Workload, token: &str, legacy: &LegacyRecord) -> Option<Value> {
    let mut meta = json!({ "resourceVersion": w.resource_version });
    let before = match trusted(w, token) {
        Some(b) => {
            meta["annotations"] = json!({ BEFORE_ANNOTATION: Value::Null });
            b
        }
        None => match (w.running, legacy.get(&w.key())) {
            (Running::Replicas(_), Some(n)) => Running::Replicas(*n),
            // Recorded on the namespace only when it ran (see `suspend_without_room`).
            (Running::Suspend(_), Some(_)) => Running::Suspend(false),
            _ => return None,
        },
    };
    Some(json!({ "metadata": meta, "spec": before.spec() }))
}

/// A fresh token nobody can guess before the operator writes it: 128 bits from two of std's randomly
/// keyed hashers, over the time and the process.
pub(crate) fn fresh_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let part = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", part(), part())
}

fn listed<K: Resource + ResourceExt>(kind: Kind, o: &K, running: Running) -> Workload {
    Workload {
        kind,
        name: o.name_any(),
        resource_version: o.resource_version(),
        running,
        record: o.annotations().get(BEFORE_ANNOTATION).cloned(),
    }
}

/// How many workloads of a kind are read at once: only one page of the tenant's objects is held at a
/// time, however many it made (what is kept of each is a [`Workload`]: its name, count and record).
const PAGE: u32 = 100;

/// Every workload of `scope` in `ns` (see the module documentation for which ReplicaSets).
async fn workloads(client: &Client, ns: &str, scope: Scope) -> Result<Vec<Workload>> {
    use futures::TryStreamExt;
    let lp = ListParams::default().limit(PAGE);
    let mut out = Vec::new();
    if scope.replicas {
        let mut live = Vec::new();
        let api = Api::<Deployment>::namespaced(client.clone(), ns);
        let mut deployments = std::pin::pin!(super::paged(api, lp.clone()));
        while let Some(d) = deployments.try_next().await? {
            if d.metadata.deletion_timestamp.is_none() {
                live.push(d.name_any());
            }
            let n = d.spec.replicas.unwrap_or(1);
            out.push(listed(Kind::Deployment, &d, Running::Replicas(n)));
        }
        let api = Api::<StatefulSet>::namespaced(client.clone(), ns);
        let mut sets = std::pin::pin!(super::paged(api, lp.clone()));
        while let Some(s) = sets.try_next().await? {
            let n = s.spec.replicas.unwrap_or(1);
            out.push(listed(Kind::StatefulSet, &s, Running::Replicas(n)));
        }
        // After every Deployment was seen: whether one controls a ReplicaSet needs them all.
        let api = Api::<ReplicaSet>::namespaced(client.clone(), ns);
        let mut replica_sets = std::pin::pin!(super::paged(api, lp.clone()));
        while let Some(r) = replica_sets.try_next().await? {
            let controlled = r.owner_references().iter().any(|o| {
                o.controller == Some(true) && o.kind == "Deployment" && live.contains(&o.name)
            });
            if !controlled {
                let n = r.spec.replicas.unwrap_or(1);
                out.push(listed(Kind::ReplicaSet, &r, Running::Replicas(n)));
            }
        }
    }
    if scope.cronjobs {
        let api = Api::<CronJob>::namespaced(client.clone(), ns);
        let mut cronjobs = std::pin::pin!(super::paged(api, lp));
        while let Some(c) = cronjobs.try_next().await? {
            let s = c.spec.suspend.unwrap_or(false);
            out.push(listed(Kind::CronJob, &c, Running::Suspend(s)));
        }
    }
    Ok(out)
}

async fn patch_as<K>(client: &Client, ns: &str, name: &str, patch: &Value) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
}

/// Patches a workload (the patch pins the resourceVersion it was listed at). Returns false when it
/// is gone (nothing to suspend or restore).
async fn patch(client: &Client, ns: &str, w: &Workload, patch: &Value) -> Result<bool> {
    let r = match w.kind {
        Kind::Deployment => patch_as::<Deployment>(client, ns, &w.name, patch).await,
        Kind::StatefulSet => patch_as::<StatefulSet>(client, ns, &w.name, patch).await,
        Kind::ReplicaSet => patch_as::<ReplicaSet>(client, ns, &w.name, patch).await,
        Kind::CronJob => patch_as::<CronJob>(client, ns, &w.name, patch).await,
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if K::of(&e) == K::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The namespace `ns` as it is now: its token (empty when none) and an earlier version's record.
async fn current(client: &Client, ns: &str) -> Result<(Namespace, String, LegacyRecord)> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    let token = n
        .annotations()
        .get(TOKEN_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let legacy = n
        .annotations()
        .get(RECORD_ANNOTATION)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    Ok((n, token, legacy))
}

/// Whether the namespace (as cached) may hold records to lift: a token, or an earlier version's record.
pub fn has_records(n: &Namespace) -> bool {
    let a = n.annotations();
    a.contains_key(TOKEN_ANNOTATION) || a.contains_key(RECORD_ANNOTATION)
}

/// Applies `patches` (one per workload), all of them even when some fail. Returns how many were
/// changed, or the first error once all were tried.
async fn patch_all(
    client: &Client,
    ns: &str,
    patches: Vec<(&Workload, Value)>,
    metrics: &Metrics,
) -> Result<usize> {
    let (mut changed, mut first_error) = (0, None);
    for (w, p) in patches {
        match patch(client, ns, w, &p).await {
            Ok(true) => {
                metrics.write(w.kind.as_str());
                changed += 1;
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(changed),
    }
}

/// Suspends every workload of `scope` in `ns` that still runs: records what it runs (keeping a
/// trusted record: a workload scaled up again while suspended is restored to what it had before) and
/// stops it, in one patch. The namespace's token is written first. Returns how many were suspended.
pub async fn suspend(client: &Client, ns: &str, scope: Scope, metrics: &Metrics) -> Result<usize> {
    let found = workloads(client, ns, scope).await?;
    if !found.iter().any(|w| w.running.active()) {
        return Ok(0);
    }
    let (n, mut token, legacy) = current(client, ns).await?;
    if token.is_empty() {
        token = fresh_token();
        // Only over the version that was read: two writers never leave two tokens.
        let p = json!({ "metadata": {
            "resourceVersion": n.resource_version(),
            "annotations": { TOKEN_ANNOTATION: token }
        }});
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        metrics.write("Namespace");
    }
    let (mut changed, mut first_error) = (0, None);
    for w in &found {
        let Some(p) = suspend_patch(w, &token, &legacy) else {
            continue;
        };
        let r = match patch(client, ns, w, &p).await {
            Err(crate::error::Cause::Kube(e)) if too_large(&e) => {
                suspend_without_room(client, ns, w, metrics).await
            }
            r => r,
        };
        match r {
            Ok(true) => {
                metrics.write(w.kind.as_str());
                changed += 1;
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(changed),
    }
}

/// Whether the API server refused a write because the object (or its annotations) would be too large.
fn too_large(e: &kube::Error) -> bool {
    // A metadata.annotations that is "Too long" is an Invalid (422) answer.
    matches!(K::of(e), K::TooLarge | K::Invalid)
}

/// Suspends `w` whose own annotations have no room for its record (a tenant can pad them to the API
/// server's limit): the record goes into the namespace's record ([`RECORD_ANNOTATION`], which only the
/// operator writes; it holds only such workloads), and the workload is stopped all the same. When
/// even that record cannot be written, the workload is still stopped (the guardrail never waits) and
/// the error is returned: the account reports it (a condition and an Event), and the lift leaves the
/// workload stopped.
async fn suspend_without_room(
    client: &Client,
    ns: &str,
    w: &Workload,
    metrics: &Metrics,
) -> Result<bool> {
    let recorded = async {
        let (n, _, mut record) = current(client, ns).await?;
        let before = match w.running {
            Running::Replicas(n) => n,
            Running::Suspend(_) => 0,
        };
        if let std::collections::btree_map::Entry::Vacant(e) = record.entry(w.key()) {
            e.insert(before);
            let p = json!({ "metadata": {
                "resourceVersion": n.resource_version(),
                "annotations": { RECORD_ANNOTATION: serde_json::to_string(&record)? }
            }});
            Api::<Namespace>::all(client.clone())
                .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
                .await?;
            metrics.write("Namespace");
        }
        Ok::<(), crate::error::Cause>(())
    }
    .await;
    let stop = json!({
        "metadata": { "resourceVersion": w.resource_version },
        "spec": w.running.stopped().spec()
    });
    let stopped = patch(client, ns, w, &stop).await?;
    recorded.map(|()| stopped)
}

/// Restores every workload of `scope` in `ns` that has a trusted record (or that an earlier
/// version's record names), removing its record in the same patch. With [`Scope::ALL`] the
/// namespace's token and an earlier version's record are removed once all are restored. Returns how
/// many were restored.
pub async fn lift(client: &Client, ns: &str, scope: Scope, metrics: &Metrics) -> Result<usize> {
    let (_, token, legacy) = current(client, ns).await?;
    let found = workloads(client, ns, scope).await?;
    let patches = found
        .iter()
        .filter(|w| w.kind.in_scope(scope))
        .filter_map(|w| lift_patch(w, &token, &legacy).map(|p| (w, p)))
        .collect();
    let restored = patch_all(client, ns, patches, metrics).await?;
    if scope == Scope::ALL {
        let p = json!({ "metadata": { "annotations": {
            TOKEN_ANNOTATION: Value::Null,
            RECORD_ANNOTATION: Value::Null,
        }}});
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        metrics.write("Namespace");
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: Kind, name: &str, running: Running, record: Option<&str>) -> Workload {
        Workload {
            kind,
            name: name.into(),
            resource_version: Some("7".into()),
            running,
            record: record.map(String::from),
        }
    }

    #[test]
    fn suspending_records_what_runs_in_the_same_patch_that_stops_it() {
        let d = w(Kind::Deployment, "web", Running::Replicas(3), None);
        let p = suspend_patch(&d, "tok", &LegacyRecord::new()).unwrap();
        assert_eq!(
            p,
            json!({ "metadata": { "resourceVersion": "7", "annotations": { BEFORE_ANNOTATION: "tok:3" } },
                    "spec": { "replicas": 0 } })
        );
        let c = w(Kind::CronJob, "nightly", Running::Suspend(false), None);
        let p = suspend_patch(&c, "tok", &LegacyRecord::new()).unwrap();
        assert_eq!(p["metadata"]["annotations"][BEFORE_ANNOTATION], "tok:false");
        assert_eq!(p["spec"], json!({ "suspend": true }));
    }

    #[test]
    fn what_does_not_run_is_left_alone_and_a_trusted_record_is_kept() {
        let idle = w(Kind::Deployment, "idle", Running::Replicas(0), None);
        assert_eq!(suspend_patch(&idle, "tok", &LegacyRecord::new()), None);
        let paused = w(Kind::CronJob, "paused", Running::Suspend(true), None);
        assert_eq!(suspend_patch(&paused, "tok", &LegacyRecord::new()), None);
        // Scaled up again while suspended (by a controller the read-only policy exempts): stopped
        // again, and the lift restores what it had before the suspension.
        let up = w(Kind::StatefulSet, "db", Running::Replicas(5), Some("tok:2"));
        let p = suspend_patch(&up, "tok", &LegacyRecord::new()).unwrap();
        assert_eq!(p["metadata"].get("annotations"), None);
        assert_eq!(p["spec"], json!({ "replicas": 0 }));
        let stopped = w(Kind::StatefulSet, "db", Running::Replicas(0), Some("tok:2"));
        assert_eq!(
            lift_patch(&stopped, "tok", &LegacyRecord::new()).unwrap()["spec"],
            json!({ "replicas": 2 })
        );
    }

    #[test]
    fn a_record_planted_before_the_suspension_is_overwritten_and_never_restored() {
        // Planted by the tenant before the token existed: a running workload gets its real count.
        let planted = w(
            Kind::Deployment,
            "web",
            Running::Replicas(1),
            Some("guess:500"),
        );
        let p = suspend_patch(&planted, "tok", &LegacyRecord::new()).unwrap();
        assert_eq!(p["metadata"]["annotations"][BEFORE_ANNOTATION], "tok:1");
        // On a workload that does not run, it is never read: the lift leaves it as it is.
        let idle = w(
            Kind::Deployment,
            "idle",
            Running::Replicas(0),
            Some("guess:500"),
        );
        assert_eq!(lift_patch(&idle, "tok", &LegacyRecord::new()), None);
        // Nor without a token (a namespace with no suspension's token trusts nothing).
        let empty = w(Kind::Deployment, "idle", Running::Replicas(0), Some(":500"));
        assert_eq!(lift_patch(&empty, "", &LegacyRecord::new()), None);
        // A CronJob record that is not a boolean is no record.
        let bad = w(Kind::CronJob, "c", Running::Suspend(true), Some("tok:3"));
        assert_eq!(lift_patch(&bad, "tok", &LegacyRecord::new()), None);
    }

    #[test]
    fn lifting_restores_exactly_and_removes_the_record_in_the_same_patch() {
        let d = w(Kind::Deployment, "web", Running::Replicas(0), Some("tok:3"));
        assert_eq!(
            lift_patch(&d, "tok", &LegacyRecord::new()).unwrap(),
            json!({ "metadata": { "resourceVersion": "7", "annotations": { BEFORE_ANNOTATION: null } },
                    "spec": { "replicas": 3 } })
        );
        // A CronJob suspended by the suspension is resumed; one suspended before was never recorded.
        let c = w(
            Kind::CronJob,
            "nightly",
            Running::Suspend(true),
            Some("tok:false"),
        );
        assert_eq!(
            lift_patch(&c, "tok", &LegacyRecord::new()).unwrap()["spec"],
            json!({ "suspend": false })
        );
        let before = w(Kind::CronJob, "paused", Running::Suspend(true), None);
        assert_eq!(lift_patch(&before, "tok", &LegacyRecord::new()), None);
    }

    #[test]
    fn an_earlier_versions_namespace_record_is_still_restored() {
        let legacy = LegacyRecord::from([("Deployment/web".to_string(), 4)]);
        let d = w(Kind::Deployment, "web", Running::Replicas(0), None);
        let p = lift_patch(&d, "", &legacy).unwrap();
        assert_eq!(p["spec"], json!({ "replicas": 4 }));
        assert_eq!(p["metadata"].get("annotations"), None);
        // Scaled up while suspended after the upgrade: recorded with the count from before.
        let up = w(Kind::Deployment, "web", Running::Replicas(2), None);
        let p = suspend_patch(&up, "tok", &legacy).unwrap();
        assert_eq!(p["metadata"]["annotations"][BEFORE_ANNOTATION], "tok:4");
        // A CronJob of the same name is not confused with it; one recorded there (its own
        // annotations were full) ran before.
        let c = w(Kind::CronJob, "web", Running::Suspend(true), None);
        assert_eq!(lift_patch(&c, "", &legacy), None);
        let full = LegacyRecord::from([("CronJob/web".to_string(), 0)]);
        assert_eq!(
            lift_patch(&c, "", &full).unwrap()["spec"],
            json!({ "suspend": false })
        );
    }

    #[test]
    fn a_record_does_not_grow_with_the_number_of_workloads() {
        // The longest name a workload can have, and the largest count: every record is this small,
        // whatever else is in the namespace (one namespace annotation held them all before, and
        // passed the API server's 256 KiB limit at about 970 such workloads).
        let name = "x".repeat(253);
        let d = w(Kind::Deployment, &name, Running::Replicas(i32::MAX), None);
        let token = fresh_token();
        let p = suspend_patch(&d, &token, &LegacyRecord::new()).unwrap();
        let value = p["metadata"]["annotations"][BEFORE_ANNOTATION]
            .as_str()
            .unwrap()
            .to_string();
        assert!(value.len() <= 32 + 1 + 10, "{value}");
        let old_record_per_workload = format!("\"Deployment/{name}\":{},", i32::MAX).len();
        assert!(old_record_per_workload * 1000 > 256 * 1024);
    }

    #[test]
    fn tokens_differ() {
        let (a, b) = (fresh_token(), fresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
