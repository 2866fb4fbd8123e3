//! Hostnames across tenants: the operator is the single writer of the claims that the
//! ValidatingAdmissionPolicy `covenant-hostnames` reads as params (see `model::hostnames`).
//!
//! One loop, not one reconcile per object: who holds a host depends on every tenant's Ingresses and
//! Gateway API routes (HTTPRoutes and GRPCRoutes, where served: `controller::gateway`) at once, in one
//! claim space. Any change of an Ingress, a route, a namespace, an Account or a claims ConfigMap wakes
//! it; it waits a moment for the burst to end, then decides from the caches (pure) and writes only what
//! differs: the claims ConfigMaps of the namespaces whose holdings changed (one for the hosts its
//! Ingresses hold, one for its routes', so each is bounded by its kinds' quotas; deleted when they hold
//! nothing), and the `HostnamesHeld` condition (with an Event) of the accounts whose objects were
//! admitted for a host another tenant holds, inside the window before the holder's claim was recorded.
//! Nothing of a tenant is ever deleted or changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressRule, IngressSpec};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::gateway::{self, RouteCache};
use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::ACCOUNT_LABEL;
use crate::error::{ApiErrorKind as K, Error};
use crate::model::hostnames::{
    self as model, CLAIMS, CLAIMS_LABEL, CONDITION, CONFIGMAP_PREFIX, Claim,
    GATEWAY_CONFIGMAP_PREFIX, NAMESPACE_LABEL, ROUTE_CONFIGMAP_PREFIX,
};

const KIND: &str = "Hostnames";

/// The condition this loop reports on Accounts whose Ingresses name a host another tenant holds.
const REPORT: super::OwnCondition = super::OwnCondition {
    type_: CONDITION,
    field_manager: model::FIELD_MANAGER,
    false_reason: "HostTakenByAnotherTenant",
    true_reason: "Held",
    true_message: "every host of the account's Ingresses and routes is the account's",
};
/// How many claims records are written at once.
const RECORD_WRITES: usize = 8;
/// How long a burst of changes may go on before the claims are decided (one decision per burst).
const SETTLE: Duration = Duration::from_millis(100);

/// What the cache keeps of an Ingress: its identity, creation time and hosts, nothing else (no
/// labels, annotations, backends, paths, TLS or status): a rule without host is kept as an empty
/// rule, a default backend as an empty one (both claim the catch-all).
pub fn trim_ingress(i: &mut Ingress) {
    let m = &mut i.metadata;
    m.labels = None;
    m.annotations = None;
    m.owner_references = None;
    m.finalizers = None;
    m.generate_name = None;
    i.status = None;
    i.spec = i.spec.take().map(|s| IngressSpec {
        rules: s.rules.map(|rules| {
            rules
                .into_iter()
                .map(|r| IngressRule {
                    host: r.host,
                    http: None,
                })
                .collect()
        }),
        default_backend: s.default_backend.map(|_| IngressBackend::default()),
        ..Default::default()
    });
}

/// The hosts an Ingress claims (`""`: the catch-all).
pub fn hosts_of(i: &Ingress) -> Vec<String> {
    let Some(spec) = &i.spec else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .map(|r| r.host.clone().unwrap_or_default())
        .collect();
    if spec.default_backend.is_some() {
        hosts.push(String::new());
    }
    hosts
}

/// Builds the hostnames loop; `namespace` is where the claims ConfigMaps live (the operator's).
pub fn controller(
    ctx: Arc<Context>,
    w: &mut Watches,
    shutdown: Shutdown,
    namespace: String,
) -> ControllerFuture {
    let ingresses = w.ingresses.subscribe();
    let namespaces = w.namespaces.subscribe();
    let accounts = w.accounts.subscribe();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let (claims, writer) = reflector::store();
    let claims_synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    // The Gateway API's routes, each kind watched once (and while) the API server serves it.
    let routes: Vec<RouteCache> = gateway::CLAIMING.into_iter().map(RouteCache::new).collect();
    let route_watches = futures::future::join_all(routes.iter().map(|cache| {
        let wake = wake.clone();
        gateway::keep(
            ctx.client.clone(),
            cache.clone(),
            ctx.health.clone(),
            move || wake.notify_one(),
        )
    }));
    let recount = gateway::recount(ctx.clone(), routes.clone());
    let claims_stream = {
        let synced = claims_synced.clone();
        let wake = wake.clone();
        let mut tracker = super::WatchHealth::new("ConfigMap".into(), ctx.health.clone());
        reflector::reflector(
            writer,
            watcher(
                api.clone(),
                watcher::Config::default().labels(&format!("{CLAIMS_LABEL}={CLAIMS}")),
            )
            .backoff(super::runtime::watch_backoff()),
        )
        .for_each(move |ev| {
            tracker.observe(&ev);
            if let Ok(watcher::Event::InitDone) = ev {
                synced.store(true, std::sync::atomic::Ordering::Release);
            }
            wake.notify_one();
            std::future::ready(())
        })
    };
    let triggers = {
        let wake = wake.clone();
        futures::stream::select(
            futures::stream::select(ingresses.map(|_| ()), namespaces.map(|_| ())),
            accounts.map(|_| ()),
        )
        .for_each(move |_| {
            wake.notify_one();
            std::future::ready(())
        })
    };
    // Deletions reach no subscriber (shared streams carry applied objects): the delete hooks wake it.
    {
        let wake = wake.clone();
        w.ingresses.on_delete(move |_| wake.notify_one());
    }
    {
        let wake = wake.clone();
        w.namespaces.on_delete(move |_| wake.notify_one());
    }
    let run = {
        let ctx = ctx.clone();
        async move {
            let mut reported: BTreeMap<String, Option<String>> = BTreeMap::new();
            // Records the API server refused as too large, by the digest of what they would hold.
            let mut refused: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                wake.notified().await;
                tokio::time::sleep(SETTLE).await;
                // Routes not yet listed (or not yet known to be unserved) would release their hosts.
                while !ctx.synced()
                    || !claims_synced.load(std::sync::atomic::Ordering::Acquire)
                    || !routes.iter().all(RouteCache::ready)
                {
                    tokio::time::sleep(super::NOT_SYNCED_REQUEUE).await;
                }
                let started = std::time::Instant::now();
                if let Err(e) =
                    pass(&ctx, &api, &claims, &routes, &mut reported, &mut refused).await
                {
                    super::on_error(KIND, &namespace, &e, &ctx);
                    // Retried after a pause, or at the next change, whichever comes first: a record
                    // the API server keeps refusing (one tenant's) never holds back another tenant's
                    // new claims for the length of the pause.
                    tokio::select! {
                        _ = tokio::time::sleep(super::requeue_after_error(&e)) => {}
                        _ = wake.notified() => {}
                    }
                    wake.notify_one();
                }
                ctx.metrics.observe(KIND, started.elapsed());
            }
        }
    };
    async move {
        tokio::select! {
            _ = shutdown => {}
            _ = claims_stream => {}
            _ = triggers => {}
            _ = route_watches => {}
            _ = recount => {}
            _ = run => {}
        }
    }
    .boxed()
}

/// The name of the claims ConfigMap of tenant namespace `ns`'s Ingresses.
pub fn configmap_name(ns: &str) -> String {
    format!("{CONFIGMAP_PREFIX}{ns}")
}

/// The name of the claims ConfigMap of tenant namespace `ns`'s routes.
pub fn route_configmap_name(ns: &str) -> String {
    format!("{ROUTE_CONFIGMAP_PREFIX}{ns}")
}

/// The claims ConfigMap of the record `record` (a [`model::record_kind`]) of `ns`.
fn record_of(record: &str, ns: &str) -> String {
    match record {
        "Ingress" => configmap_name(ns),
        model::GATEWAYS => format!("{GATEWAY_CONFIGMAP_PREFIX}{ns}"),
        _ => route_configmap_name(ns),
    }
}

/// Every Ingress and route in a tenant namespace as a claim (the account from its namespace's label,
/// which only the operator sets).
fn claims_of(ctx: &Context, routes: &[RouteCache]) -> Vec<Claim> {
    let mut out = route_claims(ctx, routes);
    out.extend(ingress_claims(ctx));
    out
}

/// Every route in a tenant namespace as a claim.
fn route_claims(ctx: &Context, routes: &[RouteCache]) -> Vec<Claim> {
    routes
        .iter()
        .flat_map(|cache| {
            cache.routes().into_iter().filter_map(|r| {
                let account = ctx.stores.account_of_namespace(&r.namespace)?;
                Some(Claim {
                    kind: cache.kind.kind,
                    account,
                    namespace: r.namespace,
                    name: r.name,
                    uid: r.uid,
                    created: r.created,
                    hosts: r.hosts,
                })
            })
        })
        .collect()
}

/// Every Ingress in a tenant namespace as a claim.
fn ingress_claims(ctx: &Context) -> Vec<Claim> {
    ctx.stores
        .ingresses
        .state()
        .iter()
        .filter_map(|i| {
            let ns = i.namespace()?;
            let account = ctx.stores.account_of_namespace(&ns)?;
            Some(Claim {
                kind: "Ingress",
                account,
                namespace: ns,
                name: i.name_any(),
                uid: i.uid().unwrap_or_default(),
                created: i
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or_default(),
                hosts: hosts_of(i),
            })
        })
        .collect()
}

/// A digest of a record's holder and keys (in memory only: which refused record not to send again).
fn record_digest(account: &str, data: &BTreeMap<String, String>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    account.hash(&mut h);
    data.hash(&mut h);
    h.finish()
}

/// The holder of every host recorded in the claims ConfigMaps.
fn recorded(claims: &Store<ConfigMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cm in claims.state() {
        let Some(account) = cm.labels().get(ACCOUNT_LABEL) else {
            continue;
        };
        for k in cm.data.iter().flat_map(|d| d.keys()) {
            if let Some(h) = model::host_of(k) {
                out.entry(h).or_insert_with(|| account.clone());
            }
        }
    }
    out
}

/// One decision and the writes it needs.
async fn pass(
    ctx: &Context,
    api: &Api<ConfigMap>,
    claims: &Store<ConfigMap>,
    routes: &[RouteCache],
    reported: &mut BTreeMap<String, Option<String>>,
    refused: &mut BTreeMap<String, u64>,
) -> Result<(), Error> {
    let all = claims_of(ctx, routes);
    let decision = model::decide(&all, &recorded(claims));
    let records = model::records(&all, &decision);
    let existing: BTreeMap<String, Arc<ConfigMap>> = claims
        .state()
        .into_iter()
        .map(|c| (c.name_any(), c))
        .collect();
    // Records first, so a host is held in the API server before anything else happens. They are
    // written side by side: one record the API server is slow to refuse (a namespace's hosts past what
    // a ConfigMap can hold) never holds back another's, and one it refuses never stops the others (the
    // first failure is returned after the rest is done). A record refused as too large is not sent
    // again while what it would hold is the same: it would be refused again, at the cost of a large
    // request at every other tenant's change.
    let mut failed: Option<Error> = None;
    let mut writes = Vec::new();
    for ((ns, kind), (account, hosts)) in &records {
        let name = record_of(kind, ns);
        let data: BTreeMap<String, String> = model::keys(hosts)
            .into_iter()
            .map(|k| (k, String::new()))
            .collect();
        let in_place = existing.get(&name).is_some_and(|c| {
            c.data.clone().unwrap_or_default() == data
                && c.labels().get(ACCOUNT_LABEL) == Some(account)
        });
        if in_place {
            refused.remove(&name);
            continue;
        }
        let sum = record_digest(account, &data);
        if refused.get(&name) == Some(&sum) {
            continue;
        }
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "labels": {
                    CLAIMS_LABEL: CLAIMS,
                    ACCOUNT_LABEL: account,
                    NAMESPACE_LABEL: ns,
                    "app.kubernetes.io/part-of": "covenant",
                },
            },
            "data": data,
        });
        writes.push(async move {
            let r = api
                .patch(
                    &name,
                    &PatchParams::apply(model::FIELD_MANAGER).force(),
                    &Patch::Apply(&cm),
                )
                .await;
            (name, ns, sum, r)
        });
    }
    let mut done = futures::stream::iter(writes).buffer_unordered(RECORD_WRITES);
    while let Some((name, ns, sum, r)) = done.next().await {
        match r {
            Ok(_) => {
                refused.remove(&name);
                ctx.metrics.write("ConfigMap");
            }
            Err(e) => {
                if K::of(&e) == K::TooLarge {
                    refused.insert(name.clone(), sum);
                }
                failed.get_or_insert(Error::Apply {
                    object: format!("ConfigMap {name} (the hostnames of namespace {ns})"),
                    source: e.into(),
                });
            }
        }
    }
    drop(done);
    let wanted: std::collections::BTreeSet<String> = records
        .keys()
        .map(|(ns, kind)| record_of(kind, ns))
        .collect();
    for (name, cm) in &existing {
        let ours = [
            CONFIGMAP_PREFIX,
            ROUTE_CONFIGMAP_PREFIX,
            GATEWAY_CONFIGMAP_PREFIX,
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if wanted.contains(name) || !ours {
            continue;
        }
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: cm.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => ctx.metrics.write("ConfigMap"),
            Err(e) if matches!(K::of(&e), K::NotFound | K::Conflict) => {}
            Err(e) => {
                failed.get_or_insert(Error::Apply {
                    object: format!("deleting ConfigMap {name} (released hostnames)"),
                    source: e.into(),
                });
            }
        }
    }
    // Then the reports, on the Accounts whose objects lost a host (and those that no longer do).
    for guard in ctx.stores.accounts.state() {
        let Ok(account) = &guard.0 else { continue };
        let message = decision
            .lost
            .get(&account.name_any())
            .and_then(model::lost_message);
        if let Err(e) = super::report_condition(ctx, account, &REPORT, message, reported).await {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_has_a_configmap_of_its_own_per_namespace() {
        let names: Vec<String> = ["Ingress", model::ROUTES, model::GATEWAYS]
            .iter()
            .map(|r| record_of(r, "acme"))
            .collect();
        assert_eq!(
            names,
            [
                "covenant-hostnames-acme",
                "covenant-route-hostnames-acme",
                "covenant-gateway-hostnames-acme"
            ]
        );
        for k in ["Ingress", "HTTPRoute", "GRPCRoute", "Gateway"] {
            assert!(
                names.contains(&record_of(model::record_kind(k), "acme")),
                "{k}"
            );
        }
    }

    #[test]
    fn the_cache_keeps_only_an_ingress_identity_and_its_hosts() {
        let mut i: Ingress = serde_json::from_value(json!({
            "metadata": {
                "name": "shop", "namespace": "acme", "uid": "u",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": { "a": "b" }, "annotations": { "big": "x".repeat(1000) },
            },
            "spec": {
                "ingressClassName": "nginx",
                "defaultBackend": { "service": { "name": "s", "port": { "number": 80 } } },
                "tls": [{ "hosts": ["shop.acme.example"], "secretName": "t" }],
                "rules": [
                    { "host": "shop.acme.example", "http": { "paths": [{ "path": "/", "pathType": "Prefix",
                      "backend": { "service": { "name": "s", "port": { "number": 80 } } } }] } },
                    { "http": { "paths": [] } },
                ],
            },
            "status": { "loadBalancer": { "ingress": [{ "ip": "1.2.3.4" }] } },
        }))
        .unwrap();
        trim_ingress(&mut i);
        assert_eq!(
            serde_json::to_value(&i).unwrap(),
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": { "name": "shop", "namespace": "acme", "uid": "u",
                              "creationTimestamp": "2026-01-01T00:00:00Z" },
                "spec": { "defaultBackend": {}, "rules": [{ "host": "shop.acme.example" }, {}] },
            })
        );
        assert_eq!(hosts_of(&i), ["shop.acme.example", "", ""]);
    }
}
