//! The controllers and what they share: the clients, the caches of every watched kind, the event
//! recorder, the clock and the metrics.

pub mod account;
pub mod notice;
pub mod package;
pub mod response;
pub mod retention;
pub mod suspension;
pub mod workloads;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use kube::{Api, Client, Resource};

use crate::api::{
    ACCOUNT_LABEL, Account, DeprecationNotice, NoticeResponse, SupportPackage, Suspension,
};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How many objects of one kind are reconciled at once.
    pub concurrency: u16,
    /// Where suspension notices are POSTed, if anywhere.
    pub notify_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 8,
            notify_url: None,
        }
    }
}

/// The caches every controller reads instead of asking the API server.
#[derive(Clone)]
pub struct Stores {
    /// Accounts (objects that fail to parse are kept as errors and skipped).
    pub accounts: Store<DeserializeGuard<Account>>,
    /// SupportPackages.
    pub packages: Store<DeserializeGuard<SupportPackage>>,
    /// Suspensions.
    pub suspensions: Store<DeserializeGuard<Suspension>>,
    /// DeprecationNotices.
    pub notices: Store<DeserializeGuard<DeprecationNotice>>,
    /// Namespaces labelled with an account.
    pub namespaces: Store<Namespace>,
    /// ResourceQuotas labelled with an account.
    pub quotas: Store<ResourceQuota>,
    /// LimitRanges labelled with an account.
    pub limit_ranges: Store<LimitRange>,
    /// NetworkPolicies labelled with an account.
    pub network_policies: Store<NetworkPolicy>,
    /// RoleBindings labelled with an account.
    pub role_bindings: Store<RoleBinding>,
    /// NoticeResponses, in every namespace (the tenants' own answers).
    pub responses: Store<DeserializeGuard<NoticeResponse>>,
    /// ClusterRoles labelled with an account (each account's read access to itself).
    pub cluster_roles: Store<ClusterRole>,
    /// ClusterRoleBindings labelled with an account.
    pub cluster_role_bindings: Store<ClusterRoleBinding>,
    /// The labelled objects by account, and the answers by namespace.
    pub index: Indexes,
}

/// The indexes of the caches: what a reconcile of one account reads without scanning every tenant's.
#[derive(Clone)]
pub struct Indexes {
    /// Labelled namespaces by account.
    pub namespaces: Index<Namespace>,
    /// Labelled quotas by account.
    pub quotas: Index<ResourceQuota>,
    /// Labelled limit ranges by account.
    pub limit_ranges: Index<LimitRange>,
    /// Labelled network policies by account.
    pub network_policies: Index<NetworkPolicy>,
    /// Labelled role bindings by account.
    pub role_bindings: Index<RoleBinding>,
    /// Labelled cluster role bindings by account.
    pub cluster_role_bindings: Index<ClusterRoleBinding>,
    /// NoticeResponses by namespace.
    pub responses: Index<DeserializeGuard<NoticeResponse>>,
}

impl Watches {
    /// Indexes of the watches (before they start).
    fn indexes(&mut self) -> Indexes {
        Indexes {
            namespaces: self.namespaces.index(account_key),
            quotas: self.quotas.index(account_key),
            limit_ranges: self.limit_ranges.index(account_key),
            network_policies: self.network_policies.index(account_key),
            role_bindings: self.role_bindings.index(account_key),
            cluster_role_bindings: self.cluster_role_bindings.index(account_key),
            responses: self.responses.index(namespace_key),
        }
    }
}

impl Stores {
    /// Every answer `account` gave: the ones recorded on it and the NoticeResponses in the namespaces
    /// it owns (created by Covenant for its UID), from the caches. A namespace the account no longer
    /// lists but still owns (retained, read-only) keeps the answers given there while it was the
    /// tenant's: the same answers [`Stores::answers_of_all`] finds, so the Account, the notice and
    /// the response never disagree.
    pub fn answers(&self, account: &Account) -> Vec<crate::model::notice::Answer> {
        // Every namespace the account owns (from the index by account, then the ownership check),
        // and the answers in them (from the index by namespace): nothing of other tenants is read.
        let owned: Vec<String> = self
            .index
            .namespaces
            .objects(&self.namespaces, &kube::ResourceExt::name_any(account))
            .into_iter()
            .filter(|n| crate::model::account::owns(account, n))
            .map(|n| kube::ResourceExt::name_any(n.as_ref()))
            .collect();
        let mine: Vec<Arc<DeserializeGuard<NoticeResponse>>> = owned
            .iter()
            .flat_map(|ns| self.index.responses.objects(&self.responses, ns))
            .collect();
        let responses = mine.iter().filter_map(|g| g.0.as_ref().ok());
        crate::model::notice::answers(account, responses, |ns| {
            self.namespaces
                .get(&reflector::ObjectRef::new(ns))
                .is_some_and(|n| crate::model::account::owns(account, &n))
        })
    }

    /// The answers of each of `accounts` (as [`Stores::answers`]), in one pass over the responses.
    pub fn answers_of_all(&self, accounts: &[&Account]) -> Vec<Vec<crate::model::notice::Answer>> {
        let state = self.responses.state();
        let mut by_account: std::collections::HashMap<String, Vec<&NoticeResponse>> =
            Default::default();
        for r in state.iter().filter_map(|g| g.0.as_ref().ok()) {
            let owner = r
                .metadata
                .namespace
                .as_deref()
                .and_then(|ns| self.account_of_namespace(ns));
            if let Some(a) = owner {
                by_account.entry(a).or_default().push(r);
            }
        }
        accounts
            .iter()
            .map(|a| {
                let mine = by_account
                    .get(&kube::ResourceExt::name_any(*a))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                crate::model::notice::answers(a, mine.iter().copied(), |ns| {
                    self.namespaces
                        .get(&reflector::ObjectRef::new(ns))
                        .is_some_and(|n| crate::model::account::owns(a, &n))
                })
            })
            .collect()
    }

    /// The account whose label the cached namespace `ns` carries (a tenant namespace), if any.
    pub fn account_of_namespace(&self, ns: &str) -> Option<String> {
        self.namespaces
            .get(&reflector::ObjectRef::new(ns))
            .and_then(|n| account_of(n.as_ref()))
    }

    /// The Account that owns namespace `ns` (by its label and UID annotation), if any.
    pub fn owner_of(&self, ns: &str) -> Option<Account> {
        let n = self.namespaces.get(&reflector::ObjectRef::new(ns))?;
        let name = account_of(n.as_ref())?;
        let a = self
            .accounts
            .get(&reflector::ObjectRef::new(&name))?
            .0
            .as_ref()
            .ok()?
            .clone();
        crate::model::account::owns(&a, &n).then_some(a)
    }
}

/// The objects of a guarded cache that parsed.
pub fn valid<K: Clone>(store: &Store<DeserializeGuard<K>>) -> Vec<K>
where
    DeserializeGuard<K>: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok().cloned())
        .collect()
}

/// The object behind `guard`, or `None` after reporting that it does not parse.
///
/// A stored object can fail to parse although the API server accepted it: written through a looser
/// schema, or by a newer version of the CRD. It gets a Warning event and a log line, counts in
/// `covenant_invalid_objects`, and is left alone until it changes; every other object keeps being
/// reconciled.
pub async fn parsed<'a, K>(
    guard: &'a DeserializeGuard<K>,
    store: &Store<DeserializeGuard<K>>,
    ctx: &Context,
) -> Option<&'a K>
where
    K: Resource<DynamicType = ()>,
    DeserializeGuard<K>: Resource<DynamicType = ()> + Clone,
{
    let kind = K::kind(&());
    // Recounted only when the gauge can change: an invalid object, or one fixed while some were
    // invalid. At steady state (none invalid) a reconcile pays nothing for it.
    if guard.0.is_err() || ctx.metrics.invalid(&kind) != 0 {
        ctx.metrics.set_invalid(&kind, count_invalid(store));
    }
    match &guard.0 {
        Ok(obj) => Some(obj),
        Err(invalid) => {
            report_invalid::<K>(ctx, invalid).await;
            None
        }
    }
}

fn count_invalid<K>(store: &Store<DeserializeGuard<K>>) -> i64
where
    DeserializeGuard<K>: Resource<DynamicType = ()> + Clone,
{
    store.state().iter().filter(|g| g.0.is_err()).count() as i64
}

async fn report_invalid<K: Resource<DynamicType = ()>>(ctx: &Context, invalid: &InvalidObject) {
    let kind = K::kind(&());
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let deleting = if invalid.metadata.deletion_timestamp.is_some() {
        " It is being deleted: Covenant keeps its finalizer, and so the tenant's data, until the object \
         parses again (then the deletion completes under its deletionPolicy)."
    } else {
        ""
    };
    tracing::warn!(kind = %kind, name, error = %invalid.error, "skipping an object that does not parse");
    let note = format!(
        "{kind} {name} does not parse and is skipped until it is fixed: {}. Correct it (kubectl edit, \
         or re-apply it from source) so that it matches the {kind} schema.{deleting}",
        invalid.error
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(kind.into_owned()),
        name: invalid.metadata.name.clone(),
        uid: invalid.metadata.uid.clone(),
        resource_version: invalid.metadata.resource_version.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(truncate(note, 1000)),
        action: "Skip".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// What every reconcile gets.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The shared event recorder (one, so repeated events group into a series).
    pub recorder: Recorder,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The caches.
    pub stores: Stores,
    /// The settings.
    pub settings: Settings,
    /// One flag per watch, set once its first list is cached.
    pub synced: Vec<Arc<std::sync::atomic::AtomicBool>>,
    /// Suspensions (by uid) whose notice this process gave, and when: a reconcile that runs before
    /// the status write reaches the cache must not give notice twice.
    pub notices_given: std::sync::Mutex<std::collections::HashMap<String, jiff::Timestamp>>,
    /// The Account status this process last wrote, by uid (see `account::write_status`).
    pub statuses_written: std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>,
    /// What readiness reports (watches of a controller's own track their errors in it).
    pub health: Arc<crate::http::Health>,
    /// The operator's own identity as an RBAC subject, bound in each tenant namespace so that it may
    /// edit the tenant's RoleBindings (`None`: a cluster administrator, who needs no binding).
    pub operator: Option<k8s_openapi::api::rbac::v1::Subject>,
    /// The leader's fence (`None` without leader election).
    pub fence: Option<Arc<crate::fence::Fence>>,
    /// The one HTTP client of the notification webhook (its connection pool is shared).
    pub http: reqwest::Client,
}

impl Context {
    /// Re-reads the leader-election Lease before something that cannot be taken back (deleting a
    /// namespace): a replica that no longer leads does nothing from its stale cache.
    pub async fn confirm_leading(&self) -> crate::error::Result<()> {
        match &self.fence {
            None => Ok(()),
            Some(f) => f.confirm().await.map_err(crate::error::Error::NotLeading),
        }
    }

    /// Whether every cache holds its first list. Reconciling before that would mistake objects not yet
    /// seen for missing ones and re-apply them.
    pub fn synced(&self) -> bool {
        self.synced
            .iter()
            .all(|s| s.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Publishes an event about `obj`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The reporter of Covenant's events.
pub fn reporter() -> Reporter {
    Reporter {
        controller: "covenant".into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

/// The objects of one cached kind by a key (the account they are labelled with, or their namespace),
/// kept up to date by the watch itself: a reconcile finds its own objects without scanning every
/// tenant's.
pub struct Index<K: Resource<DynamicType = ()>> {
    key: fn(&K) -> Option<String>,
    inner: Arc<std::sync::RwLock<IndexState<K>>>,
}

impl<K: Resource<DynamicType = ()>> Clone for Index<K> {
    fn clone(&self) -> Self {
        Index {
            key: self.key,
            inner: self.inner.clone(),
        }
    }
}

struct IndexState<K: Resource<DynamicType = ()>> {
    by_key: std::collections::HashMap<String, std::collections::HashSet<reflector::ObjectRef<K>>>,
    key_of: std::collections::HashMap<reflector::ObjectRef<K>, String>,
    /// The index being rebuilt by a (re)list, swapped in when it is complete.
    relist: Option<Box<IndexState<K>>>,
}

impl<K: Resource<DynamicType = ()>> Default for IndexState<K> {
    fn default() -> Self {
        IndexState {
            by_key: Default::default(),
            key_of: Default::default(),
            relist: None,
        }
    }
}

impl<K: Resource<DynamicType = ()>> IndexState<K> {
    fn remove(&mut self, r: &reflector::ObjectRef<K>) {
        if let Some(k) = self.key_of.remove(r)
            && let Some(set) = self.by_key.get_mut(&k)
        {
            set.remove(r);
            if set.is_empty() {
                self.by_key.remove(&k);
            }
        }
    }

    fn insert(&mut self, r: reflector::ObjectRef<K>, key: Option<String>) {
        self.remove(&r);
        if let Some(k) = key {
            self.by_key.entry(k.clone()).or_default().insert(r.clone());
            self.key_of.insert(r, k);
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Index<K> {
    /// An empty index by `key`.
    pub fn new(key: fn(&K) -> Option<String>) -> Self {
        Index {
            key,
            inner: Default::default(),
        }
    }

    /// Follows one event of the watch (a relist builds a new index, swapped in when it is done).
    fn observe(&self, ev: &watcher::Event<K>) {
        let mut st = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match ev {
            watcher::Event::Init => st.relist = Some(Box::default()),
            watcher::Event::InitApply(o) => {
                let (r, k) = (reflector::ObjectRef::from_obj(o), (self.key)(o));
                match st.relist.as_mut() {
                    Some(next) => next.insert(r, k),
                    None => st.insert(r, k),
                }
            }
            watcher::Event::InitDone => {
                if let Some(next) = st.relist.take() {
                    *st = *next;
                }
            }
            watcher::Event::Apply(o) => {
                st.insert(reflector::ObjectRef::from_obj(o), (self.key)(o));
            }
            watcher::Event::Delete(o) => st.remove(&reflector::ObjectRef::from_obj(o)),
        }
    }

    /// The references filed under `key`.
    pub fn refs(&self, key: &str) -> Vec<reflector::ObjectRef<K>> {
        let st = self.inner.read().unwrap_or_else(|p| p.into_inner());
        st.by_key
            .get(key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The cached objects filed under `key`.
    pub fn objects(&self, store: &Store<K>, key: &str) -> Vec<Arc<K>> {
        self.refs(key).iter().filter_map(|r| store.get(r)).collect()
    }
}

/// The account label of an object, the key of [`Index`]es by account.
pub fn account_key<K: Resource>(o: &K) -> Option<String> {
    account_of(o)
}

/// The namespace of an object, the key of [`Index`]es by namespace.
pub fn namespace_key<K: Resource>(o: &K) -> Option<String> {
    o.meta().namespace.clone()
}

/// A kind watched once and shared: its cache, and subscriptions to the objects it touches.
pub struct Shared<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The cache.
    pub store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
    api: Api<K>,
    wc: watcher::Config,
    synced: Arc<std::sync::atomic::AtomicBool>,
    on_delete: Vec<DeleteHook<K>>,
    indexes: Vec<Index<K>>,
}

/// Called with each object a watch sees deleted (shared streams carry only applied objects).
pub type DeleteHook<K> = Box<dyn Fn(&K) + Send + Sync>;

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// A shared watch of `api` (not started until [`Shared::start`]).
    pub fn new(api: Api<K>, wc: watcher::Config) -> Self {
        // The buffer absorbs bursts (a relist of thousands of objects) without stalling the watch.
        let (store, writer) = reflector::store_shared(1024);
        Shared {
            store,
            writer: Some(writer),
            api,
            wc: wc.page_size(500),
            synced: Default::default(),
            on_delete: Vec::new(),
            indexes: Vec::new(),
        }
    }

    /// An index of this watch's objects by `key`, kept up to date as the cache is.
    pub fn index(&mut self, key: fn(&K) -> Option<String>) -> Index<K> {
        let index = Index::new(key);
        self.indexes.push(index.clone());
        index
    }

    /// Runs `hook` for every object this watch sees deleted, so that controllers can react to
    /// deletions (kube's shared streams deliver applied objects only).
    pub fn on_delete(&mut self, hook: impl Fn(&K) + Send + Sync + 'static) {
        self.on_delete.push(Box::new(hook));
    }

    /// A stream of the objects this watch touches. Every subscription must be polled.
    pub fn subscribe(&self) -> reflector::ReflectHandle<K> {
        self.writer
            .as_ref()
            .and_then(|w| w.subscribe())
            .expect("subscribe before start")
    }

    /// Starts the watch in the background. Its errors turn readiness off for a while (see
    /// `Health::watch_failed`); it retries with backoff by itself.
    pub fn start(&mut self, health: Arc<crate::http::Health>) {
        use std::sync::atomic::Ordering;
        if let Some(writer) = self.writer.take() {
            // managedFields are most of a cached object's size and nothing reads them: the apply
            // check compares desired fields and the applied-hash annotation.
            let stream = watcher(self.api.clone(), self.wc.clone())
                .backoff(watch_backoff())
                .modify(|o: &mut K| o.meta_mut().managed_fields = None)
                .reflect_shared(writer);
            let synced = self.synced.clone();
            let hooks = std::mem::take(&mut self.on_delete);
            let indexes = std::mem::take(&mut self.indexes);
            let mut tracker = WatchHealth::new(K::kind(&()).into_owned(), health);
            tokio::spawn(async move {
                stream
                    .for_each(|ev| {
                        tracker.observe(&ev);
                        // Before the synced flag: a reconcile that sees the cache synced sees the
                        // indexes complete.
                        if let Ok(ev) = &ev {
                            indexes.iter().for_each(|i| i.observe(ev));
                        }
                        match ev {
                            Ok(watcher::Event::InitDone) => synced.store(true, Ordering::Release),
                            Ok(watcher::Event::Delete(obj)) => hooks.iter().for_each(|h| h(&obj)),
                            _ => {}
                        }
                        std::future::ready(())
                    })
                    .await;
            });
        }
    }

    /// Whether the first list of this watch is in the cache.
    pub fn synced(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.synced.clone()
    }
}

/// Follows one watch's errors: logs them and records them in `Health` (readiness), and logs when the
/// watch works again.
pub struct WatchHealth {
    kind: String,
    health: Arc<crate::http::Health>,
    failing: bool,
}

impl WatchHealth {
    /// A healthy watch of `kind`.
    pub fn new(kind: String, health: Arc<crate::http::Health>) -> Self {
        WatchHealth {
            kind,
            health,
            failing: false,
        }
    }

    /// Records the outcome of one step of the watch.
    pub fn observe<T, E: std::fmt::Display>(&mut self, ev: &Result<T, E>) {
        match ev {
            Err(e) => {
                tracing::warn!(kind = %self.kind, error = %e, "watch error; retrying with backoff");
                self.health.watch_failed();
                self.failing = true;
            }
            Ok(_) if self.failing => {
                self.failing = false;
                tracing::info!(kind = %self.kind, "watch recovered");
            }
            Ok(_) => {}
        }
    }
}

/// A trigger stream for a controller from a watch of its own (not a shared one): errors are logged and
/// tracked in `health`, then dropped. A controller backs off ALL its triggers when any of them yields an
/// error, so one failing watch would otherwise hold up every reconcile of that controller.
pub fn trigger_stream<K>(
    api: Api<K>,
    wc: watcher::Config,
    health: Arc<crate::http::Health>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut tracker = WatchHealth::new(K::kind(&()).into_owned(), health);
    watcher(api, wc)
        .backoff(watch_backoff())
        .filter_map(move |ev| {
            tracker.observe(&ev);
            std::future::ready(ev.ok().map(Ok))
        })
        .touched_objects()
}

/// The retry delays of a failing watch: 0.5 s doubling up to 5 s (with jitter), reset after a minute
/// of health. kube's default caps at 30 s, and two failures in a row (connection refused while the API
/// server is down, then 410 Gone as its watch cache restarts) then hold a watch back for up to a
/// minute after the API server is back; nine watches retrying every 5 s cost an API server little.
fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        kube::runtime::watcher::ExponentialBackoff::from(exponential),
        Duration::from_secs(60),
    )
}

/// Writes `status` of the cluster-scoped Covenant object `K/name` with server-side apply (one field
/// manager) and counts the write.
pub async fn patch_status<K>(
    ctx: &Context,
    name: &str,
    status: &impl serde::Serialize,
) -> crate::error::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let patch =
        serde_json::json!({ "apiVersion": K::api_version(&()), "kind": kind, "status": status });
    Api::<K>::all(ctx.client.clone())
        .patch_status(
            name,
            &kube::api::PatchParams::apply(crate::api::FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.write(kind.as_ref());
    Ok(())
}

/// The error policy of every controller: log the error with its source chain, count it by category,
/// and requeue (conflicts at once, anything else after a pause).
pub fn on_error(
    kind: &str,
    err: &crate::error::Error,
    ctx: &Context,
) -> kube::runtime::controller::Action {
    tracing::warn!(kind, error = %err.chain(), "reconcile failed");
    ctx.metrics.error(kind, err.category());
    kube::runtime::controller::Action::requeue(requeue_after_error(err))
}

/// How long a reconcile that arrives before the caches are synced waits.
pub const NOT_SYNCED_REQUEUE: Duration = Duration::from_millis(200);

/// The requeue delay of an error: short first, growing with repeated failures of the same object is
/// left to kube's trigger backoff; a fixed pause keeps errors from becoming hot loops.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// The requeue delay after `err`: a conflict (someone else wrote in between) is retried at once on
/// fresher data, anything else after [`ERROR_REQUEUE`].
pub fn requeue_after_error(err: &crate::error::Error) -> Duration {
    match err.category() {
        "conflict" => Duration::from_millis(500),
        _ => ERROR_REQUEUE,
    }
}

/// Deletes the namespace `ns` as the cache shows it: only while this replica leads (the Lease is read
/// again first), and only that very object (UID and resourceVersion preconditions), so a namespace
/// restored, re-created or relabelled since the cache saw it is never deleted on a stale decision (the
/// API server answers 409 and the reconcile retries on fresh data).
pub async fn delete_namespace(
    ctx: &Context,
    ns: &k8s_openapi::api::core::v1::Namespace,
) -> crate::error::Result<()> {
    use kube::ResourceExt;
    ctx.confirm_leading().await?;
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: ns.metadata.uid.clone(),
            resource_version: ns.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
        .delete(&ns.name_any(), &dp)
        .await
    {
        Ok(_) => {
            ctx.metrics.write("Namespace");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The account an object labelled by Covenant belongs to.
pub fn account_of<K: Resource>(obj: &K) -> Option<String> {
    obj.meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(ACCOUNT_LABEL))
        .cloned()
}

/// Runs every controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    health: Arc<crate::http::Health>,
    fence: Option<Arc<crate::fence::Fence>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let operator = operator_subject(&client).await;
    let labelled = watcher::Config::default().labels(ACCOUNT_LABEL);
    let mut watches = Watches {
        accounts: Shared::new(Api::all(client.clone()), Default::default()),
        packages: Shared::new(Api::all(client.clone()), Default::default()),
        suspensions: Shared::new(Api::all(client.clone()), Default::default()),
        notices: Shared::new(Api::all(client.clone()), Default::default()),
        namespaces: Shared::new(Api::all(client.clone()), labelled.clone()),
        quotas: Shared::new(Api::all(client.clone()), labelled.clone()),
        limit_ranges: Shared::new(Api::all(client.clone()), labelled.clone()),
        network_policies: Shared::new(Api::all(client.clone()), labelled.clone()),
        role_bindings: Shared::new(Api::all(client.clone()), labelled.clone()),
        responses: Shared::new(Api::all(client.clone()), Default::default()),
        cluster_roles: Shared::new(Api::all(client.clone()), labelled.clone()),
        cluster_role_bindings: Shared::new(Api::all(client.clone()), labelled),
    };
    let stores = Stores {
        accounts: watches.accounts.store.clone(),
        packages: watches.packages.store.clone(),
        suspensions: watches.suspensions.store.clone(),
        notices: watches.notices.store.clone(),
        namespaces: watches.namespaces.store.clone(),
        quotas: watches.quotas.store.clone(),
        limit_ranges: watches.limit_ranges.store.clone(),
        network_policies: watches.network_policies.store.clone(),
        role_bindings: watches.role_bindings.store.clone(),
        responses: watches.responses.store.clone(),
        cluster_roles: watches.cluster_roles.store.clone(),
        cluster_role_bindings: watches.cluster_role_bindings.store.clone(),
        index: watches.indexes(),
    };
    let ctx = Arc::new(Context {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter()),
        clock,
        metrics,
        stores: stores.clone(),
        settings,
        synced: vec![
            watches.accounts.synced(),
            watches.packages.synced(),
            watches.suspensions.synced(),
            watches.notices.synced(),
            watches.namespaces.synced(),
            watches.quotas.synced(),
            watches.limit_ranges.synced(),
            watches.network_policies.synced(),
            watches.role_bindings.synced(),
            watches.responses.synced(),
            watches.cluster_roles.synced(),
            watches.cluster_role_bindings.synced(),
        ],
        notices_given: Default::default(),
        statuses_written: Default::default(),
        health: health.clone(),
        operator,
        fence,
    });

    // The gauges over every tenant are computed from the caches when scraped, never per reconcile.
    {
        let (stores, clock) = (stores.clone(), ctx.clock.clone());
        ctx.metrics.set_source(move |m| {
            let (accounts, notices, suspensions, namespaces) = (
                stores.accounts.state(),
                stores.notices.state(),
                stores.suspensions.state(),
                stores.namespaces.state(),
            );
            m.set_snapshot(&crate::metrics::Snapshot {
                accounts: accounts.iter().filter_map(|g| g.0.as_ref().ok()).collect(),
                notices: notices.iter().filter_map(|g| g.0.as_ref().ok()).collect(),
                suspensions: suspensions
                    .iter()
                    .filter_map(|g| g.0.as_ref().ok())
                    .collect(),
                namespaces: namespaces.iter().map(|n| n.as_ref()).collect(),
                now: clock.now(),
            });
        });
    }
    // Every controller subscribes before the watches start, so none misses the initial list.
    let controllers = futures::future::join_all([
        account::controller(ctx.clone(), &mut watches, shutdown.clone()),
        package::controller(ctx.clone(), &mut watches, shutdown.clone()),
        notice::controller(ctx.clone(), &mut watches, shutdown.clone()),
        response::controller(ctx.clone(), &mut watches, shutdown.clone()),
        retention::controller(ctx.clone(), &mut watches, shutdown.clone()),
        suspension::controller(ctx.clone(), &mut watches, shutdown.clone()),
    ]);
    watches.start_all(&health);

    // Ready once every cache has listed its objects.
    let synced = ctx.synced.clone();
    tokio::spawn(async move {
        while !synced
            .iter()
            .all(|s| s.load(std::sync::atomic::Ordering::Acquire))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        health
            .synced
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("caches synced");
    });
    controllers.await;
}

/// The operator's own identity as an RBAC subject, asked of the API server (SelfSubjectReview). `None`
/// for a member of `system:masters`, which needs no binding, and when the API server cannot say (then
/// the tenant's RoleBindings can be edited only where RBAC already allows it; logged).
async fn operator_subject(client: &Client) -> Option<k8s_openapi::api::rbac::v1::Subject> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = match api
        .create(&Default::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the API server who the operator is (SelfSubjectReview)");
            return None;
        }
    };
    let user = review.status.and_then(|s| s.user_info)?;
    let (name, groups) = (user.username?, user.groups.unwrap_or_default());
    tracing::info!(user = %name, ?groups, "operator identity");
    if groups.iter().any(|g| g == "system:masters") {
        return None;
    }
    Some(match name.strip_prefix("system:serviceaccount:") {
        Some(rest) => {
            let (ns, sa) = rest.split_once(':')?;
            k8s_openapi::api::rbac::v1::Subject {
                kind: "ServiceAccount".into(),
                name: sa.into(),
                namespace: Some(ns.into()),
                api_group: None,
            }
        }
        None => k8s_openapi::api::rbac::v1::Subject {
            kind: "User".into(),
            name,
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    })
}

/// Every shared watch.
pub struct Watches {
    /// Accounts.
    pub accounts: Shared<DeserializeGuard<Account>>,
    /// SupportPackages.
    pub packages: Shared<DeserializeGuard<SupportPackage>>,
    /// Suspensions.
    pub suspensions: Shared<DeserializeGuard<Suspension>>,
    /// DeprecationNotices.
    pub notices: Shared<DeserializeGuard<DeprecationNotice>>,
    /// Labelled namespaces.
    pub namespaces: Shared<Namespace>,
    /// Labelled quotas.
    pub quotas: Shared<ResourceQuota>,
    /// Labelled limit ranges.
    pub limit_ranges: Shared<LimitRange>,
    /// Labelled network policies.
    pub network_policies: Shared<NetworkPolicy>,
    /// Labelled role bindings.
    pub role_bindings: Shared<RoleBinding>,
    /// NoticeResponses.
    pub responses: Shared<DeserializeGuard<NoticeResponse>>,
    /// Labelled cluster roles.
    pub cluster_roles: Shared<ClusterRole>,
    /// Labelled cluster role bindings.
    pub cluster_role_bindings: Shared<ClusterRoleBinding>,
}

impl Watches {
    fn start_all(&mut self, health: &Arc<crate::http::Health>) {
        self.accounts.start(health.clone());
        self.packages.start(health.clone());
        self.suspensions.start(health.clone());
        self.notices.start(health.clone());
        self.namespaces.start(health.clone());
        self.quotas.start(health.clone());
        self.limit_ranges.start(health.clone());
        self.network_policies.start(health.clone());
        self.role_bindings.start(health.clone());
        self.responses.start(health.clone());
        self.cluster_roles.start(health.clone());
        self.cluster_role_bindings.start(health.clone());
    }
}

/// A boxed controller future.
pub type ControllerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[cfg(test)]
mod index_tests {
    use super::*;

    fn ns(name: &str, account: Option<&str>) -> Namespace {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        if let Some(a) = account {
            n.metadata.labels = Some([(ACCOUNT_LABEL.to_string(), a.to_string())].into());
        }
        n
    }

    fn names(i: &Index<Namespace>, key: &str) -> Vec<String> {
        let mut v: Vec<String> = i.refs(key).into_iter().map(|r| r.name).collect();
        v.sort();
        v
    }

    #[test]
    fn an_index_follows_lists_relabels_and_deletions() {
        let i = Index::new(account_key::<Namespace>);
        i.observe(&watcher::Event::Init);
        i.observe(&watcher::Event::InitApply(ns("a1", Some("a"))));
        i.observe(&watcher::Event::InitApply(ns("a2", Some("a"))));
        // Until the list is complete, the previous index (empty) answers.
        assert!(names(&i, "a").is_empty());
        i.observe(&watcher::Event::InitDone);
        assert_eq!(names(&i, "a"), ["a1", "a2"]);
        // Relabelled to another account: filed under the new one only.
        i.observe(&watcher::Event::Apply(ns("a2", Some("b"))));
        assert_eq!(names(&i, "a"), ["a1"]);
        assert_eq!(names(&i, "b"), ["a2"]);
        // The label removed, then deleted.
        i.observe(&watcher::Event::Apply(ns("a1", None)));
        assert!(names(&i, "a").is_empty());
        i.observe(&watcher::Event::Delete(ns("a2", Some("b"))));
        assert!(names(&i, "b").is_empty());
        // A relist replaces everything: what it no longer lists is gone.
        i.observe(&watcher::Event::Apply(ns("c1", Some("c"))));
        i.observe(&watcher::Event::Init);
        i.observe(&watcher::Event::InitApply(ns("d1", Some("d"))));
        i.observe(&watcher::Event::InitDone);
        assert!(names(&i, "c").is_empty());
        assert_eq!(names(&i, "d"), ["d1"]);
    }
}
