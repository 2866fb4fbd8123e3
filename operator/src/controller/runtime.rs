//! The watches every controller shares, in one table: each watched kind once, with its cache, its
//! readiness flag, its indexes and the hooks of its deletions. Adding a kind is one line of
//! [`watched!`]'s table.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::core::DeserializeGuard;
use kube::core::PartialObjectMeta;

use crate::apply::Written;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use super::account_of;
use super::compact::{Children, Compact};
use crate::api::{
    ACCOUNT_LABEL, Account, DeprecationNotice, NoticeResponse, SupportPackage, Suspension,
};

/// Which objects of a kind are watched.
#[derive(Clone, Copy)]
enum Scope {
    /// Every object.
    All,
    /// Only those labelled with an account (what Covenant made).
    Labelled,
    /// Every object, metadata only (`PartialObjectMeta`): for a kind of which Covenant reads nothing
    /// but names, labels and annotations, so that any one can be looked up without a request.
    Metadata,
}

/// The sink of a kind in [`watched!`]'s table: kube's store unless the table names another.
macro_rules! sink {
    ($ty:ty) => {
        Kube<$ty>
    };
    ($ty:ty, $sink:ty) => {
        $sink
    };
}

/// The table of watched kinds: field, type, scope, and what it is. Generates [`Watches`] (the
/// watches, before they start), [`Stores`] (their caches, what reconciles read), and the glue
/// between them.
macro_rules! watched {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty $(=> $sink:ty)? = $scope:ident;)*) => {
        /// Every shared watch.
        pub struct Watches {
            $($(#[doc = $doc])* pub $field: Shared<$ty, sink!($ty $(, $sink)?)>,)*
            /// The objects this process applied, until their watches bring them back.
            pub applied: Arc<Written<String>>,
        }

        /// The caches every controller reads instead of asking the API server.
        #[derive(Clone)]
        pub struct Stores {
            $($(#[doc = $doc])* pub $field: <sink!($ty $(, $sink)?) as Sink<$ty>>::Cache,)*
            /// The labelled objects by account, and the answers by namespace.
            pub index: Indexes,
        }

        impl Watches {
            /// Every watch of the table on `client` (not started).
            pub fn new(client: &Client) -> Self {
                let mut w = Watches {
                    $($field: Shared::new(Api::all(client.clone()), config(Scope::$scope))
                        .metadata_only(Scope::$scope),)*
                    applied: Default::default(),
                };
                w.namespaces
                    .made_from_metadata(super::compact::cached_namespace);
                // Nothing reads an Account's annotations (GitOps tools may put a whole copy of it in
                // one: `kubectl.kubernetes.io/last-applied-configuration`).
                w.accounts.trim(trim_account);
                w.ingresses.trim(super::hostnames::trim_ingress);
                // Tenants write their answers, and the operator reads of one only its name, namespace,
                // identity, creation time, generation, spec and status (model::notice, the answer
                // controller, the index by namespace): whatever else a tenant put in its metadata is
                // not kept (the admission policy bounds it too; this keeps the cache to what is read
                // whatever a policy admits).
                w.responses.trim(trim_response);
                // A (re)list holds a page of them at once: answers admitted before their metadata
                // was bounded may still be large, so the page is smaller than other kinds'.
                w.responses.wc = w.responses.wc.clone().page_size(RESPONSES_PAGE_SIZE);
                // What the operator applies is remembered until its watch brings it back; a deletion
                // or a relist of the kind ends that before any reconcile hears of it.
                w.namespaces.remembers(&w.applied);
                w.quotas.remembers(&w.applied);
                w.limit_ranges.remembers(&w.applied);
                w.network_policies.remembers(&w.applied);
                w.role_bindings.remembers(&w.applied);
                w.cluster_roles.remembers(&w.applied);
                w.cluster_role_bindings.remembers(&w.applied);
                w
            }

            /// The caches and indexes of the watches (before they start).
            pub fn stores(&mut self) -> Stores {
                Stores {
                    $($field: self.$field.cache.clone(),)*
                    index: self.indexes(),
                }
            }

            /// One flag per watch, set once its first list is cached.
            pub fn synced(&self) -> Vec<Arc<std::sync::atomic::AtomicBool>> {
                vec![$(self.$field.synced(),)*]
            }

            /// Starts every watch.
            pub fn start_all(&mut self, health: &Arc<crate::http::Health>) {
                $(self.$field.start(health.clone());)*
            }
        }
    };
}

watched! {
    /// Accounts (objects that fail to parse are kept as errors and skipped).
    accounts: DeserializeGuard<Account> = All;
    /// SupportPackages.
    packages: DeserializeGuard<SupportPackage> = All;
    /// Suspensions.
    suspensions: DeserializeGuard<Suspension> = All;
    /// DeprecationNotices.
    notices: DeserializeGuard<DeprecationNotice> = All;
    /// Every namespace, metadata only: a new tenant's namespace names are checked against the cache
    /// (no request to learn that a name is free), and tenants' namespaces are found by their label.
    namespaces: Namespace = Metadata;
    /// ResourceQuotas labelled with an account (compact: see `compact`).
    quotas: Compact<ResourceQuota> => Children<ResourceQuota> = Labelled;
    /// LimitRanges labelled with an account (compact).
    limit_ranges: Compact<LimitRange> => Children<LimitRange> = Labelled;
    /// NetworkPolicies labelled with an account (compact).
    network_policies: Compact<NetworkPolicy> => Children<NetworkPolicy> = Labelled;
    /// RoleBindings labelled with an account (compact).
    role_bindings: Compact<RoleBinding> => Children<RoleBinding> = Labelled;
    /// NoticeResponses, in every namespace (the tenants' own answers).
    responses: DeserializeGuard<NoticeResponse> = All;
    /// ClusterRoles labelled with an account (each account's read access to itself; compact).
    cluster_roles: Compact<ClusterRole> => Children<ClusterRole> = Labelled;
    /// ClusterRoleBindings labelled with an account (compact).
    cluster_role_bindings: Compact<ClusterRoleBinding> => Children<ClusterRoleBinding> = Labelled;
    /// Every Ingress, trimmed to its identity and hosts (the hostnames tenants claim).
    ingresses: Ingress = All;
}

/// The page size of the NoticeResponse watch's (re)list.
const RESPONSES_PAGE_SIZE: u32 = 100;

/// What of an Account is cached: all but its annotations, owner references and self link.
fn trim_account(a: &mut DeserializeGuard<Account>) {
    let m = a.meta_mut();
    m.annotations = None;
    m.owner_references = None;
    m.self_link = None;
}

/// What of a NoticeResponse is cached: see [`Watches::new`]. Also for one that does not parse (its
/// metadata is all that is kept of it).
fn trim_response(r: &mut DeserializeGuard<NoticeResponse>) {
    let m = r.meta_mut();
    m.labels = None;
    m.annotations = None;
    m.owner_references = None;
    m.finalizers = None;
    m.generate_name = None;
    m.self_link = None;
}

fn config(scope: Scope) -> watcher::Config {
    match scope {
        Scope::All | Scope::Metadata => watcher::Config::default(),
        Scope::Labelled => watcher::Config::default().labels(ACCOUNT_LABEL),
    }
}

/// The indexes of the caches: what a reconcile of one account reads without scanning every tenant's
/// (a child kind's cache, [`Children`], is its own index by account).
#[derive(Clone)]
pub struct Indexes {
    /// Labelled namespaces by account.
    pub namespaces: Index<Namespace>,
    /// Namespaces by the account their self-service request label names.
    pub self_service: Index<Namespace>,
    /// NoticeResponses by namespace.
    pub responses: Index<DeserializeGuard<NoticeResponse>>,
}

impl Watches {
    /// Indexes of the watches (before they start).
    fn indexes(&mut self) -> Indexes {
        Indexes {
            namespaces: self.namespaces.index(account_of),
            self_service: self.namespaces.index(super::selfservice::request_key),
            responses: self.responses.index(namespace_key),
        }
    }
}

/// The objects of one cached kind by a key (the account they are labelled with, or their namespace),
/// kept up to date by the watch itself: a reconcile finds its own objects without scanning every
/// tenant's.
pub struct Index<K: Resource<DynamicType = ()>> {
    key: fn(&K) -> Option<String>,
    inner: Arc<std::sync::RwLock<IndexState>>,
}

impl<K: Resource<DynamicType = ()>> Clone for Index<K> {
    fn clone(&self) -> Self {
        Index {
            key: self.key,
            inner: self.inner.clone(),
        }
    }
}

/// An object as an [`Index`] files it: `namespace/name`, or `name` for a cluster-scoped object (neither
/// a name nor a namespace holds a `/`). One allocation per object, shared by both maps of the index.
type IndexRef = Arc<str>;

/// What an [`Index`] holds: per key the objects filed under it, and per object its key. Compact on
/// purpose (it holds a few entries per tenant): an object is one shared string, a key one shared
/// string, and the objects of a key a plain vector (a few per key). The `ObjectRef`s and `HashSet`s it
/// held before cost about 6.7 KB per account at N = 1000 (BENCHMARKS.md).
#[derive(Default)]
struct IndexState {
    by_key: std::collections::HashMap<Arc<str>, Vec<IndexRef>>,
    key_of: std::collections::HashMap<IndexRef, Arc<str>>,
    /// The index being rebuilt by a (re)list, swapped in when it is complete.
    relist: Option<Box<IndexState>>,
}

impl IndexState {
    fn remove(&mut self, r: &str) {
        if let Some(k) = self.key_of.remove(r)
            && let Some(refs) = self.by_key.get_mut(&k)
        {
            refs.retain(|x| **x != *r);
            if refs.is_empty() {
                self.by_key.remove(&k);
            }
        }
    }

    fn insert(&mut self, r: String, key: Option<String>) {
        if let (Some(old), Some(new)) = (self.key_of.get(r.as_str()), key.as_deref())
            && **old == *new
        {
            return;
        }
        self.remove(&r);
        if let Some(k) = key {
            let r: IndexRef = r.into();
            let k = match self.by_key.get_key_value(k.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(k),
            };
            self.by_key.entry(k.clone()).or_default().push(r.clone());
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
                let (r, k) = (index_ref(o), (self.key)(o));
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
                st.insert(index_ref(o), (self.key)(o));
            }
            watcher::Event::Delete(o) => st.remove(&index_ref(o)),
        }
    }

    /// The references filed under `key`.
    pub fn refs(&self, key: &str) -> Vec<reflector::ObjectRef<K>> {
        let st = self.inner.read().unwrap_or_else(|p| p.into_inner());
        st.by_key
            .get(key)
            .map(|refs| {
                refs.iter()
                    .map(|r| match r.split_once('/') {
                        Some((ns, name)) => reflector::ObjectRef::new(name).within(ns),
                        None => reflector::ObjectRef::new(r),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cached objects filed under `key`.
    pub fn objects(&self, store: &Store<K>, key: &str) -> Vec<Arc<K>> {
        self.refs(key).iter().filter_map(|r| store.get(r)).collect()
    }
}

/// The reference an [`Index`] files an object under: its name and namespace (see [`IndexRef`]).
fn index_ref<K: Resource<DynamicType = ()>>(o: &K) -> String {
    let name = o.meta().name.as_deref().unwrap_or_default();
    match o.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// What each object last showed a trigger: a fingerprint of the fields the triggered controller reads
/// of it, so that a change of anything else (its status, written as the controllers work) triggers
/// nothing. Forget an object when it is deleted, so that one re-created as it was is seen.
#[derive(Clone, Default)]
pub struct Seen(Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>);

impl Seen {
    /// Records what `name` shows now (`fields`, serialized and hashed: one number per object is
    /// kept); whether it differs from what it showed.
    pub fn changed(&self, name: &str, fields: &impl serde::Serialize) -> bool {
        let fingerprint =
            crate::model::fnv1a(serde_json::to_string(fields).unwrap_or_default().as_bytes());
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(name) == Some(&fingerprint) {
            return false;
        }
        seen.insert(name.to_string(), fingerprint);
        true
    }

    /// Forgets `name` (it was deleted).
    pub fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// The namespace of an object, the key of [`Index`]es by namespace.
pub fn namespace_key<K: Resource>(o: &K) -> Option<String> {
    o.meta().namespace.clone()
}

/// Where a watch keeps what it sees (kube's store, or a child kind's compact cache), and what the
/// subscriptions hear of.
pub trait Sink<K>: Sized + Send + 'static {
    /// What the cache holds of an object (what subscriptions receive).
    type Item: Send + Sync + 'static;
    /// What readers hold of the cache.
    type Cache: Clone;
    /// An empty cache, and the handle readers hold of it.
    fn make() -> (Self, Self::Cache);
    /// Follows one event; returns what subscriptions hear of, as kube's shared streams would: the
    /// object applied, and every object once a (re)list is complete.
    fn observe(&mut self, ev: &watcher::Event<K>) -> Vec<Arc<Self::Item>>;
}

/// kube's own store, as its reflector keeps it.
pub struct Kube<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: reflector::store::Writer<K>,
    store: Store<K>,
}

impl<K> Sink<K> for Kube<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    type Item = K;
    type Cache = Store<K>;

    fn make() -> (Self, Store<K>) {
        let (store, writer) = reflector::store();
        (
            Kube {
                writer,
                store: store.clone(),
            },
            store,
        )
    }

    fn observe(&mut self, ev: &watcher::Event<K>) -> Vec<Arc<K>> {
        self.writer.apply_watcher_event(ev);
        match ev {
            watcher::Event::Apply(obj) => self
                .store
                .get(&reflector::ObjectRef::from_obj(obj))
                .into_iter()
                .collect(),
            watcher::Event::InitDone => self.store.state(),
            _ => Vec::new(),
        }
    }
}

impl<K> Sink<Compact<K>> for Children<K>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    type Item = super::compact::Child<K>;
    type Cache = Children<K>;

    fn make() -> (Self, Children<K>) {
        let c = Children::default();
        (c.clone(), c)
    }

    fn observe(&mut self, ev: &watcher::Event<Compact<K>>) -> Vec<Arc<Self::Item>> {
        Children::observe(self, ev)
    }
}

/// A kind watched once and shared: its cache, and subscriptions to the objects it touches.
pub struct Shared<K: Resource<DynamicType = ()> + Clone + 'static, S: Sink<K> = Kube<K>> {
    /// The cache, as readers hold it.
    pub cache: S::Cache,
    sink: Option<S>,
    /// One channel per subscription: each applied object, as the cache holds it.
    subscribers: Vec<tokio::sync::mpsc::Sender<Arc<S::Item>>>,
    api: Api<K>,
    wc: watcher::Config,
    synced: Arc<std::sync::atomic::AtomicBool>,
    on_delete: Vec<DeleteHook<K>>,
    indexes: Vec<Index<K>>,
    metadata_only: bool,
    from_metadata: Option<fn(kube::core::ObjectMeta) -> K>,
    trim: Option<fn(&mut K)>,
    applied: Option<Arc<Written<String>>>,
}

/// How many objects a subscription may be behind before it holds its watch back (a relist of
/// thousands of objects is absorbed without stalling the watch).
const SUBSCRIPTION_BUFFER: usize = 1024;

/// Called with each object a watch sees deleted (shared streams carry only applied objects).
pub type DeleteHook<K> = Box<dyn Fn(&K) + Send + Sync>;

impl<K, S> Shared<K, S>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    S: Sink<K>,
{
    /// A shared watch of `api` (not started until [`Shared::start`]).
    pub fn new(api: Api<K>, wc: watcher::Config) -> Self {
        let (sink, cache) = S::make();
        Shared {
            cache,
            sink: Some(sink),
            subscribers: Vec::new(),
            api,
            wc: wc.page_size(500),
            synced: Default::default(),
            on_delete: Vec::new(),
            indexes: Vec::new(),
            metadata_only: false,
            from_metadata: None,
            trim: None,
            applied: None,
        }
    }

    /// Watches metadata only when `scope` says so: the cached objects hold their `metadata` and
    /// nothing else (a kind whose spec and status nothing reads).
    fn metadata_only(mut self, scope: Scope) -> Self {
        self.metadata_only = matches!(scope, Scope::Metadata);
        self
    }

    /// Drops from every cached object what nothing reads (`f` clears it), so the cache holds less.
    fn trim(&mut self, f: fn(&mut K)) {
        self.trim = Some(f);
    }

    /// Keeps `applied` (what the operator wrote of this kind, until the cache shows it) true: an object
    /// seen deleted, or a relist of the kind (which drops vanished objects without a deletion), ends
    /// what is remembered of it, before the cache and the controllers hear of the event.
    fn remembers(&mut self, applied: &Arc<Written<String>>) {
        self.applied = Some(applied.clone());
    }

    /// How a cached object is made of the metadata a metadata-only watch brings.
    fn made_from_metadata(&mut self, f: fn(kube::core::ObjectMeta) -> K) {
        self.from_metadata = Some(f);
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

    /// A stream of the objects this watch touches (each object applied, and every object once its
    /// (re)list is complete), as the cache holds them. Every subscription must be polled: a full one
    /// (`SUBSCRIPTION_BUFFER` objects behind) holds the watch back until it catches up.
    ///
    /// Not kube's `ReflectHandle`: it looks each object up in the cache when polled, and one deleted
    /// meanwhile makes it return `Pending` without asking to be woken (kube-runtime 5.0.0), so a
    /// controller whose other triggers are quiet stops hearing of new objects, and once its buffer is
    /// full the watch, and so the cache, stops for every controller (an Account created right after
    /// another was deleted was never reconciled). Here each subscription receives the objects
    /// themselves.
    pub fn subscribe(&mut self) -> futures::stream::BoxStream<'static, Arc<S::Item>> {
        assert!(self.sink.is_some(), "subscribe before start");
        let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIPTION_BUFFER);
        self.subscribers.push(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) })
            .boxed()
    }

    /// Starts the watch in the background. Its errors turn readiness off for a while (see
    /// `Health::watch_failed`); it retries with backoff by itself.
    pub fn start(&mut self, health: Arc<crate::http::Health>) {
        if let Some(sink) = self.sink.take() {
            // managedFields are most of a cached object's size and nothing reads them: the apply
            // check compares desired fields and the applied-hash annotation.
            let events = if self.metadata_only {
                let make = self
                    .from_metadata
                    .expect("a metadata-only watch says how to make its objects");
                let api = Api::<PartialObjectMeta<K>>::all(self.api.clone().into_client());
                watcher(api, self.wc.clone())
                    .map_ok(move |ev| map_event(ev, |m: PartialObjectMeta<K>| make(m.metadata)))
                    .boxed()
            } else {
                watcher(self.api.clone(), self.wc.clone()).boxed()
            };
            let (trim, applied) = (self.trim, self.applied.clone());
            let stream = events
                .inspect_ok(move |ev| {
                    let Some(applied) = &applied else { return };
                    match ev {
                        watcher::Event::Delete(o) => {
                            applied.forget(&reflector::ObjectRef::from_obj(o).to_string());
                        }
                        watcher::Event::Init => {
                            applied.forget_kind(&K::kind(&()));
                        }
                        _ => {}
                    }
                })
                .backoff(watch_backoff())
                .modify(move |o: &mut K| {
                    o.meta_mut().managed_fields = None;
                    if let Some(trim) = trim {
                        trim(o);
                    }
                });
            let watch = Follow {
                sink,
                synced: self.synced.clone(),
                hooks: std::mem::take(&mut self.on_delete),
                indexes: std::mem::take(&mut self.indexes),
                subscribers: std::mem::take(&mut self.subscribers),
            };
            let tracker = WatchHealth::new(K::kind(&()).into_owned(), health);
            tokio::spawn(watch.run(stream, tracker));
        }
    }

    /// Whether the first list of this watch is in the cache.
    pub fn synced(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.synced.clone()
    }
}

/// What follows a watch once its events are in the cache: the indexes, the synced flag, the delete
/// hooks and the subscriptions.
struct Follow<K: Resource<DynamicType = ()> + Clone + 'static, S: Sink<K>> {
    sink: S,
    synced: Arc<std::sync::atomic::AtomicBool>,
    hooks: Vec<DeleteHook<K>>,
    indexes: Vec<Index<K>>,
    subscribers: Vec<tokio::sync::mpsc::Sender<Arc<S::Item>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static, S: Sink<K>> Follow<K, S> {
    /// Follows `events` (each put in the cache first) until they end.
    async fn run<E: std::fmt::Display>(
        mut self,
        events: impl futures::Stream<Item = Result<watcher::Event<K>, E>>,
        mut tracker: WatchHealth,
    ) {
        use std::sync::atomic::Ordering;
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            tracker.observe(&ev);
            // The cache first, then the indexes, both before the synced flag: a reconcile that sees
            // the cache synced sees the indexes complete.
            let touched = match &ev {
                Ok(ev) => {
                    let touched = self.sink.observe(ev);
                    self.indexes.iter().for_each(|i| i.observe(ev));
                    touched
                }
                Err(_) => Vec::new(),
            };
            match ev {
                Ok(watcher::Event::InitDone) => self.synced.store(true, Ordering::Release),
                Ok(watcher::Event::Delete(obj)) => self.hooks.iter().for_each(|h| h(&obj)),
                _ => {}
            }
            for obj in touched {
                for s in &self.subscribers {
                    // A subscription dropped (its controller stopped) takes nothing more.
                    let _ = s.send(obj.clone()).await;
                }
            }
        }
    }
}

/// `ev` with each object turned into another by `f`.
fn map_event<A, B>(ev: watcher::Event<A>, f: impl Fn(A) -> B) -> watcher::Event<B> {
    use watcher::Event as E;
    match ev {
        E::Apply(o) => E::Apply(f(o)),
        E::Delete(o) => E::Delete(f(o)),
        E::Init => E::Init,
        E::InitApply(o) => E::InitApply(f(o)),
        E::InitDone => E::InitDone,
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
    // Nothing of these objects is kept: each is mapped to what it triggers and dropped. A (re)list
    // holds one page at once, so the page is small: tenants write these objects, and the API server
    // bounds each one only by its own limits (annotations 256 KiB, an object ~1.5 MiB).
    watcher(api, wc.page_size(TRIGGER_PAGE_SIZE))
        .backoff(watch_backoff())
        .filter_map(move |ev| {
            tracker.observe(&ev);
            std::future::ready(ev.ok().map(Ok))
        })
        .touched_objects()
}

/// The page size of a trigger stream's (re)list (see [`trigger_stream`]).
pub const TRIGGER_PAGE_SIZE: u32 = 25;

/// Every object of `api` that `lp` selects, listed `lp.limit` at a time: only one page is held at
/// once, however many objects there are (e.g. the RoleBindings a tenant made in a namespace).
pub fn paged<K>(
    api: Api<K>,
    lp: kube::api::ListParams,
) -> impl futures::Stream<Item = Result<K, kube::Error>> + Send + 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    futures::stream::try_unfold(Some(lp), move |next| {
        let api = api.clone();
        async move {
            let Some(lp) = next else {
                return Ok::<_, kube::Error>(None);
            };
            let list = api.list(&lp).await?;
            let next = list
                .metadata
                .continue_
                .filter(|c| !c.is_empty())
                .map(|c| lp.clone().continue_token(&c));
            Ok(Some((
                futures::stream::iter(list.items.into_iter().map(Ok)),
                next,
            )))
        }
    })
    .try_flatten()
}

/// The retry delays of a failing watch: 0.5 s doubling up to 5 s (with jitter), reset after a minute
/// of health. kube's default caps at 30 s, and two failures in a row (connection refused while the API
/// server is down, then 410 Gone as its watch cache restarts) then hold a watch back for up to a
/// minute after the API server is back; nine watches retrying every 5 s cost an API server little.
pub(super) fn watch_backoff() -> impl kube::runtime::utils::Backoff {
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

#[cfg(test)]
mod index_tests {
    use super::*;

    /// A subscription hears of every object applied, one deleted before the subscription was read
    /// included, and of the next one: kube's own subscription (it looks each object up when read)
    /// returned `Pending` for the deleted one without asking to be woken, and its controller then
    /// heard of nothing more while its other triggers were quiet (an Account created right after
    /// another was deleted was never reconciled).
    #[tokio::test]
    async fn a_subscription_hears_of_what_comes_after_an_object_deleted_before_it_was_read() {
        let (sink, store) = Kube::<Namespace>::make();
        let (tx, mut rx) = tokio::sync::mpsc::channel(SUBSCRIPTION_BUFFER);
        let follow = Follow {
            sink,
            synced: Default::default(),
            hooks: Vec::new(),
            indexes: Vec::new(),
            subscribers: vec![tx],
        };
        let synced = follow.synced.clone();
        use watcher::Event as E;
        let events = futures::stream::iter([
            E::Init,
            E::InitApply(ns("kept", None)),
            E::InitDone,
            E::Apply(ns("gone", None)),
            E::Delete(ns("gone", None)),
            E::Apply(ns("next", None)),
        ])
        .map(Ok::<_, watcher::Error>);
        let health = Arc::new(crate::http::Health::default());
        follow
            .run(events, WatchHealth::new("Namespace".into(), health))
            .await;
        assert!(synced.load(std::sync::atomic::Ordering::Acquire));
        let mut heard = Vec::new();
        while let Ok(o) = rx.try_recv() {
            heard.push(o.metadata.name.clone().unwrap_or_default());
        }
        assert_eq!(heard, ["kept", "gone", "next"]);
        assert!(store.get(&reflector::ObjectRef::new("gone")).is_none());
        assert!(store.get(&reflector::ObjectRef::new("next")).is_some());
    }

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
    fn a_cached_answer_keeps_what_is_read_and_nothing_a_tenant_padded_it_with() {
        let mut r: NoticeResponse = serde_json::from_value(serde_json::json!({
            "apiVersion": "covenant.dev/v1alpha1",
            "kind": "NoticeResponse",
            "metadata": {
                "name": "reject", "namespace": "acme", "uid": "u1", "generation": 1,
                "resourceVersion": "7", "creationTimestamp": "2026-01-02T03:04:05Z",
                "generateName": "re", "labels": { "l": "x" }, "annotations": { "a": "y" },
                "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2" }],
                "finalizers": ["f"]
            },
            "spec": { "notice": "dpa", "decision": "Reject" },
            "status": { "account": "acme" }
        }))
        .unwrap();
        let before = r.clone();
        let mut g = DeserializeGuard(Ok(r.clone()));
        trim_response(&mut g);
        r = g.0.unwrap();
        let m = &r.metadata;
        assert!(m.labels.is_none() && m.annotations.is_none() && m.generate_name.is_none());
        assert!(m.owner_references.is_none() && m.finalizers.is_none());
        // What the answer controller, the notice model and the index read stays.
        assert_eq!(m.name, before.metadata.name);
        assert_eq!(m.namespace, before.metadata.namespace);
        assert_eq!(m.uid, before.metadata.uid);
        assert_eq!(m.generation, before.metadata.generation);
        assert_eq!(m.resource_version, before.metadata.resource_version);
        assert_eq!(m.creation_timestamp, before.metadata.creation_timestamp);
        assert_eq!(r.spec, before.spec);
        assert_eq!(r.status, before.status);
    }

    #[test]
    fn an_index_follows_lists_relabels_and_deletions() {
        let i = Index::new(account_of::<Namespace>);
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

    #[test]
    fn objects_of_one_name_in_several_namespaces_are_filed_apart_and_found_in_the_store() {
        use k8s_openapi::api::rbac::v1::RoleBinding;
        let rb = |ns: &str, account: &str| RoleBinding {
            metadata: kube::core::ObjectMeta {
                name: Some("covenant-admin".into()),
                namespace: Some(ns.into()),
                labels: Some([(ACCOUNT_LABEL.to_string(), account.to_string())].into()),
                ..Default::default()
            },
            role_ref: Default::default(),
            subjects: None,
        };
        let i = Index::new(account_key_of::<RoleBinding>);
        let (store, mut writer) = reflector::store::<RoleBinding>();
        for ev in [
            watcher::Event::Apply(rb("a-main", "a")),
            watcher::Event::Apply(rb("a-dev", "a")),
            watcher::Event::Apply(rb("b-main", "b")),
        ] {
            i.observe(&ev);
            writer.apply_watcher_event(&ev);
        }
        let mut found: Vec<String> = i
            .objects(&store, "a")
            .iter()
            .map(|o| o.metadata.namespace.clone().unwrap_or_default())
            .collect();
        found.sort();
        assert_eq!(found, ["a-dev", "a-main"]);
        // Seen again unchanged, each is still filed once; deleting one leaves the other.
        i.observe(&watcher::Event::Apply(rb("a-main", "a")));
        assert_eq!(i.refs("a").len(), 2);
        i.observe(&watcher::Event::Delete(rb("a-main", "a")));
        let left: Vec<_> = i.refs("a").into_iter().map(|r| r.namespace).collect();
        assert_eq!(left, [Some("a-dev".to_string())]);
        assert_eq!(i.refs("b").len(), 1);
    }

    fn account_key_of<K: Resource>(o: &K) -> Option<String> {
        o.meta().labels.as_ref()?.get(ACCOUNT_LABEL).cloned()
    }

    #[test]
    fn an_index_files_objects_by_name_alone_and_finds_them_in_the_store() {
        let mut n = ns("a1", Some("a"));
        n.metadata.uid = Some("0b5c2f0e-0000-4000-8000-000000000001".into());
        n.metadata.resource_version = Some("123456".into());
        let i = Index::new(account_of::<Namespace>);
        i.observe(&watcher::Event::Apply(n.clone()));
        let refs = i.refs("a");
        assert_eq!(refs.len(), 1);
        // Neither the UID nor the resourceVersion is copied into the index...
        assert!(refs[0].extra.uid.is_none() && refs[0].extra.resource_version.is_none());
        // ...and the reference still finds the object in a store keyed as kube's reflector keys it.
        let (store, mut writer) = reflector::store::<Namespace>();
        writer.apply_watcher_event(&watcher::Event::Apply(n.clone()));
        let found = i.objects(&store, "a");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].metadata.uid, n.metadata.uid);
        // A later version of the object (a new resourceVersion) replaces the one filed, not adds one.
        n.metadata.resource_version = Some("123457".into());
        i.observe(&watcher::Event::Apply(n.clone()));
        assert_eq!(i.refs("a").len(), 1);
        i.observe(&watcher::Event::Delete(n));
        assert!(i.refs("a").is_empty());
    }
}
