//! The Gateway API, where the cluster serves it: HTTPRoutes, GRPCRoutes and Gateways' listeners claim
//! hostnames in the same claim space as Ingresses (see `model::hostnames`), and Gateways name a
//! GatewayClass the tier must allow.
//!
//! Most clusters do not serve the Gateway API, so nothing here is a shared watch (whose first list
//! every controller waits for): each route kind has a watch of its own, started once discovery says the
//! API server serves the kind (asked again every [`DISCOVERY`] until it does, so CRDs installed after
//! the operator started are picked up without a restart), and stopped, its cache emptied, when a watch
//! error comes with discovery saying the kind is gone (CRDs deleted: their routes went with them).
//!
//! What is cached of a route is what the hostnames loop reads: namespace, name, UID, creation time and
//! `spec.hostnames`; the watch deserializes each object into a struct of only `spec.hostnames` (plus
//! its metadata, dropped as soon as the claim is taken), so a (re)list holds at most one page of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::ApiResource;
use kube::core::{NotUsed, Object};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};

/// The Gateway API's group.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The version watched and listed.
pub const VERSION: &str = "v1";
/// How often discovery is asked again while a kind is not served.
pub const DISCOVERY: Duration = Duration::from_secs(10);
/// Routes per page of a (re)list.
const PAGE: u32 = 100;

/// A kind of the Gateway API that Covenant reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    /// Its kind, e.g. `HTTPRoute`.
    pub kind: &'static str,
    /// Its resource (plural), e.g. `httproutes`.
    pub plural: &'static str,
}

/// HTTPRoutes (`spec.hostnames[]`).
pub const HTTP_ROUTE: Kind = Kind {
    kind: "HTTPRoute",
    plural: "httproutes",
};
/// GRPCRoutes (`spec.hostnames[]`).
pub const GRPC_ROUTE: Kind = Kind {
    kind: "GRPCRoute",
    plural: "grpcroutes",
};
/// Gateways (`spec.listeners[].hostname` claimed; `spec.gatewayClassName` judged by the compliance
/// report, which lists them).
pub const GATEWAY: Kind = Kind {
    kind: "Gateway",
    plural: "gateways",
};
/// The route kinds whose hostnames are claimed.
pub const ROUTES: [Kind; 2] = [HTTP_ROUTE, GRPC_ROUTE];
/// Every kind whose hostnames are claimed: the routes', and Gateways' listener hostnames (a listener
/// for a host receives its traffic wherever Gateways of a class share a data plane).
pub const CLAIMING: [Kind; 3] = [HTTP_ROUTE, GRPC_ROUTE, GATEWAY];

impl Kind {
    /// Its `ApiResource` (for dynamic APIs).
    pub fn resource(&self) -> ApiResource {
        ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

/// What the watch reads of a route's or a Gateway's spec: a route's hostnames, a Gateway's listeners'
/// hostnames, nothing else.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RouteSpec {
    /// A route's hostnames (none: the catch-all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// A Gateway's listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
}

/// What the watch reads of a Gateway's listener: its hostname.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Listener {
    /// Its hostname (none: it takes what the routes attached to it name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A route as the watch reads it.
pub type Route = Object<RouteSpec, NotUsed>;

/// What is cached of one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedRoute {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its `creationTimestamp`.
    pub created: jiff::Timestamp,
    /// Its hosts (`""`: the catch-all, a route without hostnames).
    pub hosts: Vec<String>,
}

/// The hosts an object of `kind` claims: a route's hostnames (`""`, the catch-all, when it names
/// none), a Gateway's listener hostnames (a listener without one claims nothing: the routes attached
/// to it do).
pub fn hosts_of(kind: Kind, spec: &RouteSpec) -> Vec<String> {
    if kind == GATEWAY {
        spec.listeners
            .iter()
            .filter_map(|l| l.hostname.clone())
            .collect()
    } else if spec.hostnames.is_empty() {
        vec![String::new()]
    } else {
        spec.hostnames.clone()
    }
}

/// The cached form of `r`, of `kind`.
pub fn cached(kind: Kind, r: &Route) -> CachedRoute {
    CachedRoute {
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        uid: r.uid().unwrap_or_default(),
        created: r
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_default(),
        hosts: hosts_of(kind, &r.spec),
    }
}

/// Whether a route kind's cache can be decided from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Discovery has not answered yet.
    Unknown,
    /// The API server does not serve the kind: there are no such routes.
    NotServed,
    /// Served; the watch has not listed every route yet.
    Listing,
    /// Served, and every route is cached.
    Synced,
}

struct Inner {
    state: State,
    routes: HashMap<String, CachedRoute>,
    /// The routes of a (re)list under way, swapped in when it is complete.
    relist: Option<HashMap<String, CachedRoute>>,
}

/// The cache of one route kind (see the module's documentation).
#[derive(Clone)]
pub struct RouteCache {
    /// The kind cached.
    pub kind: Kind,
    inner: Arc<Mutex<Inner>>,
}

fn key(r: &CachedRoute) -> String {
    format!("{}/{}", r.namespace, r.name)
}

impl RouteCache {
    /// An empty cache of `kind`, its state unknown.
    pub fn new(kind: Kind) -> Self {
        RouteCache {
            kind,
            inner: Arc::new(Mutex::new(Inner {
                state: State::Unknown,
                routes: HashMap::new(),
                relist: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its state.
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Whether a decision may read it: the kind is not served, or every route is cached.
    pub fn ready(&self) -> bool {
        matches!(self.state(), State::NotServed | State::Synced)
    }

    /// Every cached route.
    pub fn routes(&self) -> Vec<CachedRoute> {
        self.lock().routes.values().cloned().collect()
    }

    /// The kind is not served: no route of it exists.
    pub fn not_served(&self) {
        let mut i = self.lock();
        i.state = State::NotServed;
        i.routes.clear();
        i.relist = None;
    }

    /// Applies one event of the watch.
    pub fn apply(&self, ev: watcher::Event<Route>) {
        let kind = self.kind;
        let cached = |r: &Route| cached(kind, r);
        let mut i = self.lock();
        match ev {
            watcher::Event::Apply(r) => {
                let c = cached(&r);
                i.routes.insert(key(&c), c);
            }
            watcher::Event::Delete(r) => {
                let c = cached(&r);
                i.routes.remove(&key(&c));
            }
            watcher::Event::Init => {
                i.relist = Some(HashMap::new());
                if i.state != State::Synced {
                    i.state = State::Listing;
                }
            }
            watcher::Event::InitApply(r) => {
                let c = cached(&r);
                i.relist.get_or_insert_with(HashMap::new).insert(key(&c), c);
            }
            watcher::Event::InitDone => {
                if let Some(all) = i.relist.take() {
                    i.routes = all;
                }
                i.state = State::Synced;
            }
        }
    }
}

/// Whether the API server serves `kind` (`Err` when discovery cannot say).
pub async fn served(client: &Client, kind: Kind) -> Result<bool, kube::Error> {
    Ok(!served_of(client, &[kind]).await?.is_empty())
}

/// Those of `kinds` the API server serves, by one discovery request (`Err` when it cannot say).
pub async fn served_of(client: &Client, kinds: &[Kind]) -> Result<Vec<Kind>, kube::Error> {
    match client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(list) => Ok(kinds
            .iter()
            .filter(|k| list.resources.iter().any(|r| r.name == k.plural))
            .copied()
            .collect()),
        Err(e) if crate::error::ApiErrorKind::of(&e) == crate::error::ApiErrorKind::NotFound => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Keeps `cache` of its kind: discovery until the kind is served, then its watch, calling `changed`
/// after every change; back to discovery (the cache emptied) when the kind is no longer served.
/// Runs until dropped.
pub async fn keep(
    client: Client,
    cache: RouteCache,
    health: Arc<crate::http::Health>,
    changed: impl Fn() + Send + Sync + 'static,
) {
    let kind = cache.kind;
    loop {
        match served(&client, kind).await {
            Ok(true) => {}
            Ok(false) => {
                if cache.state() != State::NotServed {
                    tracing::info!(
                        kind = kind.kind,
                        "the API server does not serve {GROUP}/{VERSION} {}: their hostnames are not claimed until it does (discovery is asked again every {}s)",
                        kind.plural,
                        DISCOVERY.as_secs()
                    );
                    cache.not_served();
                    changed();
                }
                tokio::time::sleep(DISCOVERY).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(kind = kind.kind, error = %e, "discovery of the Gateway API failed; asked again");
                tokio::time::sleep(DISCOVERY).await;
                continue;
            }
        }
        tracing::info!(
            kind = kind.kind,
            "the API server serves {GROUP}/{VERSION} {}: watching their hostnames",
            kind.plural
        );
        let api: Api<Route> = Api::all_with(client.clone(), &kind.resource());
        let mut tracker = super::WatchHealth::new(kind.kind.to_string(), health.clone());
        let mut stream = watcher(api, watcher::Config::default().page_size(PAGE))
            .backoff(super::runtime::watch_backoff())
            .boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    tracker.observe(&Ok::<(), String>(()));
                    cache.apply(ev);
                    changed();
                }
                Err(e) => {
                    // Gone (its CRD deleted): forget its routes and go back to discovery. Else an
                    // error of the watch like any other, retried with backoff.
                    if matches!(served(&client, kind).await, Ok(false)) {
                        tracing::info!(
                            kind = kind.kind,
                            "no longer served: its routes are forgotten"
                        );
                        break;
                    }
                    tracker.observe(&Err::<(), _>(e));
                }
            }
        }
        cache.not_served();
        changed();
    }
}

/// The key added to each `covenant-bounds` quota once the Gateway API has been served for
/// [`QUOTA_SETTLE`], so that the quota controller counts the routes and Gateways there (see
/// [`recount`]). A count of a cluster-scoped kind: no namespaced object is ever counted against it,
/// and the API server's quota admission looks only at the keys of the kind being created.
pub const RECOUNT_KEY: &str = "count/gatewayclasses.gateway.networking.k8s.io";
/// Longer than the quota controller's discovery period (30 s in kube-controller-manager).
pub const QUOTA_SETTLE: Duration = Duration::from_secs(45);
/// The field manager of [`RECOUNT_KEY`] (not the account controller's, whose applies keep it).
const RECOUNT_MANAGER: &str = "covenant-gateway-counts";

/// Makes the quota controller count the Gateway API's kinds in quotas that existed before it learnt
/// of them. The `covenant-bounds` quota counts routes and Gateways from the start (so they are bounded
/// the moment they are served), but the quota controller computes a key's usage only once its
/// discovery (every 30 s) has found the kind, and computes a quota again only when its `spec.hard`
/// changes or at its full resync (`--resource-quota-sync-period`, 5 min by default); until then the
/// API server refuses every create of the kind there ("status unknown for quota"). So once a route
/// kind has been served for [`QUOTA_SETTLE`], every bounds quota in the cache that lacks
/// [`RECOUNT_KEY`] gets it (one write per namespace, once), which makes the quota controller compute
/// it again, now with the new kinds. Runs until dropped.
pub async fn recount(ctx: Arc<super::Context>, routes: Vec<RouteCache>) {
    use crate::model::account::BOUNDS_QUOTA_NAME;
    use kube::api::{Patch, PatchParams};
    let served = || routes.iter().any(|c| c.state() == State::Synced);
    loop {
        while !served() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(QUOTA_SETTLE).await;
        let mut pending = true;
        while pending && served() {
            pending = false;
            for q in ctx.stores.quotas.state() {
                if q.name_any() != BOUNDS_QUOTA_NAME {
                    continue;
                }
                let ns = q.namespace().unwrap_or_default();
                let has = q
                    .object()
                    .and_then(|q| q.spec?.hard)
                    .is_some_and(|h| h.contains_key(RECOUNT_KEY));
                if has {
                    continue;
                }
                let patch = serde_json::json!({
                    "apiVersion": "v1", "kind": "ResourceQuota",
                    "metadata": { "name": BOUNDS_QUOTA_NAME, "namespace": ns },
                    "spec": { "hard": { RECOUNT_KEY: "0" } },
                });
                let api: Api<k8s_openapi::api::core::v1::ResourceQuota> =
                    Api::namespaced(ctx.client.clone(), &ns);
                match api
                    .patch(
                        BOUNDS_QUOTA_NAME,
                        &PatchParams::apply(RECOUNT_MANAGER),
                        &Patch::Apply(&patch),
                    )
                    .await
                {
                    Ok(_) => ctx.metrics.write("ResourceQuota"),
                    Err(e) => {
                        tracing::warn!(namespace = %ns, error = %e, "cannot make the quota controller count the Gateway API there; tried again");
                        pending = true;
                    }
                }
            }
            if pending {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        tracing::info!("the bounds quotas count the Gateway API's kinds");
        while served() {
            tokio::time::sleep(DISCOVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(name: &str, hostnames: serde_json::Value) -> Route {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": name, "namespace": "acme", "uid": format!("u-{name}"),
                          "creationTimestamp": "2026-01-01T00:00:00Z",
                          "annotations": { "big": "x".repeat(1000) } },
            "spec": { "hostnames": hostnames,
                      "parentRefs": [{ "name": "shared", "namespace": "infra" }],
                      "rules": [{ "backendRefs": [{ "name": "web", "port": 80 }] }] },
            "status": { "parents": [] },
        }))
        .unwrap()
    }

    #[test]
    fn a_route_is_read_as_its_hostnames_and_none_is_the_catch_all() {
        let r = route("shop", json!(["shop.acme.example", "*.acme.example"]));
        assert_eq!(
            serde_json::to_value(&r.spec).unwrap(),
            json!({ "hostnames": ["shop.acme.example", "*.acme.example"] })
        );
        let c = cached(HTTP_ROUTE, &r);
        assert_eq!(c.hosts, ["shop.acme.example", "*.acme.example"]);
        assert_eq!((c.namespace.as_str(), c.name.as_str()), ("acme", "shop"));
        let none: Route = serde_json::from_value(json!({
            "metadata": { "name": "any", "namespace": "acme" }, "spec": {},
        }))
        .unwrap();
        assert_eq!(cached(GRPC_ROUTE, &none).hosts, [""]);
        assert_eq!(cached(HTTP_ROUTE, &route("e", json!([]))).hosts, [""]);
        let gw: Route = serde_json::from_value(json!({
            "metadata": { "name": "gw", "namespace": "acme" },
            "spec": { "gatewayClassName": "public", "listeners": [
                { "name": "a", "port": 80, "protocol": "HTTP" },
                { "name": "b", "port": 443, "protocol": "HTTPS", "hostname": "shop.acme.example",
                  "tls": { "certificateRefs": [{ "name": "cert" }] } },
            ] },
        }))
        .unwrap();
        assert_eq!(cached(GATEWAY, &gw).hosts, ["shop.acme.example"]);
        assert_eq!(
            serde_json::to_value(&gw.spec).unwrap(),
            json!({ "listeners": [{}, { "hostname": "shop.acme.example" }] })
        );
    }

    #[test]
    fn the_cache_is_ready_only_once_listed_or_not_served_and_a_relist_replaces_it() {
        let c = RouteCache::new(HTTP_ROUTE);
        assert!(!c.ready());
        c.apply(watcher::Event::Init);
        c.apply(watcher::Event::InitApply(route("a", json!(["a.example"]))));
        assert!(!c.ready(), "a list under way is not complete");
        c.apply(watcher::Event::InitDone);
        assert!(c.ready());
        assert_eq!(c.routes().len(), 1);
        c.apply(watcher::Event::Apply(route("b", json!(["b.example"]))));
        c.apply(watcher::Event::Delete(route("a", json!(["a.example"]))));
        assert_eq!(c.routes()[0].name, "b");
        // A relist keeps the old routes until it is complete, then holds only what it listed.
        c.apply(watcher::Event::Init);
        assert!(c.ready() && c.routes().len() == 1);
        c.apply(watcher::Event::InitApply(route("c", json!(["c.example"]))));
        c.apply(watcher::Event::InitDone);
        let names: Vec<String> = c.routes().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["c"]);
        c.not_served();
        assert!(c.ready() && c.routes().is_empty());
    }
}
