//! The controllers and what they share: the clients, the caches of every watched kind, the event
//! recorder, the clock and the metrics.

pub mod account;
pub mod account_quota;
pub mod compact;
pub mod compliance;
pub mod gateway;
pub mod hostnames;
pub mod notice;
pub mod package;
pub mod response;
pub mod retention;
pub mod runtime;
pub mod selfservice;
pub mod suspension;
pub mod tenant_policies;
pub mod workloads;

pub use runtime::{
    DeleteHook, Index, Indexes, Seen, Shared, Stores, WatchHealth, Watches, namespace_key, paged,
    trigger_stream,
};

use std::sync::Arc;
use std::time::Duration;

use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client, Resource};

use crate::api::{
    ACCOUNT_LABEL, Account, DeprecationNotice, NoticeResponse, SupportPackage, Suspension,
};
use crate::clock::Clock;
use crate::error::{ApiErrorKind, Category, Error};
use crate::metrics::Metrics;

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How many objects of one kind are reconciled at once.
    pub concurrency: u16,
    /// Where suspension notices are POSTed, if anywhere.
    pub notify_url: Option<String>,
    /// The operator's namespace, where the hostname claims are recorded.
    pub namespace: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 8,
            notify_url: None,
            namespace: "covenant-system".into(),
        }
    }
}

impl Stores {
    /// Every answer `account` gave: the ones recorded on it and the NoticeResponses in the namespaces
    /// it owns (created by Covenant for its UID), from the caches. A namespace the account no longer
    /// lists but still owns (retained, read-only) keeps the answers given there while it was the
    /// tenant's. The Account, the notice and the response read the same answers, so they never
    /// disagree.
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
        // Every one of them is in a namespace the account owns (checked above).
        crate::model::notice::answers(account, responses, |_| true)
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

/// What every reconcile gets: only what the controllers share. What one controller alone keeps
/// between its reconciles is its own (a kind's [`Reconcile::Own`], handed to [`run_guarded`]).
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
    /// Where managed objects' writes are counted and remembered until the caches show them.
    pub writes: crate::apply::Writes,
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
            Some(f) => f.confirm().await.map_err(crate::error::Cause::NotLeading),
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

impl Context {
    /// Publishes an Event about `obj` for each condition [`crate::status::announced`] picks from
    /// `current` against `previous` (a Warning when `warning` says its present state is one): the one
    /// rule by which every kind's status turns into Events, called after the status write.
    pub async fn announce<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        current: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        warning: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition) -> Option<bool>,
    ) {
        for (c, warn) in crate::status::announced(previous, current, warning) {
            let kind = if warn {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(obj, kind, &c.reason, c.message.clone()).await;
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

/// Writes `status` of the cluster-scoped Covenant object `K/name` with server-side apply (one field
/// manager) and counts the write.
pub async fn patch_status<K>(
    ctx: &Context,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let object = format!("{} {name}", K::kind(&()));
    patch_status_in(
        ctx,
        Api::<K>::all(ctx.client.clone()),
        name,
        &object,
        status,
    )
    .await
}

/// [`patch_status`] through `api`, for kinds of either scope (a namespaced kind's `api` is of its
/// namespace); `object` names it in the error, as `Kind namespace/name`.
pub async fn patch_status_in<K>(
    ctx: &Context,
    api: Api<K>,
    name: &str,
    object: &str,
    status: &impl serde::Serialize,
) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let patch =
        serde_json::json!({ "apiVersion": K::api_version(&()), "kind": kind, "status": status });
    let written = api
        .patch_status(
            name,
            &kube::api::PatchParams::apply(crate::api::FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::Status {
            object: object.to_string(),
            source: e.into(),
        })?;
    ctx.metrics.write(kind.as_ref());
    Ok(written)
}

/// A kind whose controller reconciles the objects of a guarded cache: what it does with one object
/// that parsed. The wiring around it is the same for every such kind and written once:
/// [`run_guarded`] with [`reconcile`] and [`error_policy`].
pub trait Reconcile:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// What this kind's controller alone keeps between its reconciles, beside the shared
    /// [`Context`] (`()`: nothing). Its `controller` function makes it and hands it to
    /// [`run_guarded`].
    type Own: Send + Sync + 'static;

    /// The cache of this kind.
    fn store(stores: &Stores) -> &Store<DeserializeGuard<Self>>;

    /// Reconciles this object (it parsed, and every cache holds its first list).
    fn reconcile(
        &self,
        ctx: &Arc<Context>,
        own: &Self::Own,
    ) -> impl std::future::Future<Output = Result<Action, Error>> + Send;
}

/// The guarded kinds: each one's cache, its own reconcile and, in brackets, what its controller
/// alone keeps (nothing when there are none), a line a kind.
macro_rules! reconciled {
    ($($kind:ty: $store:ident => $reconcile:path $([$own:ty])?),* $(,)?) => {$(
        reconciled!(@one $kind, $store, $reconcile, $($own)?);
    )*};
    (@one $kind:ty, $store:ident, $reconcile:path, ) => {
        impl Reconcile for $kind {
            type Own = ();

            fn store(stores: &Stores) -> &Store<DeserializeGuard<Self>> {
                &stores.$store
            }

            fn reconcile(
                &self,
                ctx: &Arc<Context>,
                _: &(),
            ) -> impl std::future::Future<Output = Result<Action, Error>> + Send {
                $reconcile(self, ctx)
            }
        }
    };
    (@one $kind:ty, $store:ident, $reconcile:path, $own:ty) => {
        impl Reconcile for $kind {
            type Own = $own;

            fn store(stores: &Stores) -> &Store<DeserializeGuard<Self>> {
                &stores.$store
            }

            fn reconcile(
                &self,
                ctx: &Arc<Context>,
                own: &$own,
            ) -> impl std::future::Future<Output = Result<Action, Error>> + Send {
                $reconcile(self, ctx, own)
            }
        }
    };
}
reconciled!(
    Account: accounts => account::reconcile [account::State],
    SupportPackage: packages => package::reconcile,
    DeprecationNotice: notices => notice::reconcile,
    NoticeResponse: responses => response::reconcile,
    Suspension: suspensions => suspension::reconcile [suspension::State],
);

/// What the reconciles of one guarded kind get: the [`Context`] every controller shares, and what
/// this kind's controller alone keeps.
pub struct Guarded<K: Reconcile> {
    /// The shared context.
    pub ctx: Arc<Context>,
    /// The controller's own state.
    pub own: K::Own,
}

/// Runs the controller of a guarded kind until its shutdown: [`reconcile`] around the kind's own, with
/// [`error_policy`]. `own` is what this controller alone keeps between its reconciles.
pub fn run_guarded<K: Reconcile>(
    controller: kube::runtime::Controller<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    own: K::Own,
) -> ControllerFuture {
    use futures::{FutureExt, StreamExt};
    controller
        .run(
            reconcile::<K>,
            error_policy::<K>,
            Arc::new(Guarded::<K> { ctx, own }),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = %K::kind(&()), error = %e, "reconcile");
            }
        })
        .boxed()
}

/// The reconcile of every guarded kind: an object that does not parse is reported and left until it
/// changes; before the caches are synced it waits (it would mistake objects not yet seen for missing
/// ones); then the kind's own reconcile runs, counted and timed by kind.
pub async fn reconcile<K: Reconcile>(
    guard: Arc<DeserializeGuard<K>>,
    g: Arc<Guarded<K>>,
) -> Result<Action, Error> {
    let ctx = &g.ctx;
    let Some(obj) = parsed(&guard, K::store(&ctx.stores), ctx).await else {
        return Ok(Action::await_change());
    };
    if !ctx.synced() {
        return Ok(Action::requeue(NOT_SYNCED_REQUEUE));
    }
    let started = std::time::Instant::now();
    let result = obj.reconcile(ctx, &g.own).await;
    ctx.metrics.observe(&K::kind(&()), started.elapsed());
    result
}

/// The error policy of every guarded kind (see [`on_error`]).
pub fn error_policy<K: Reconcile>(
    guard: Arc<DeserializeGuard<K>>,
    err: &Error,
    g: Arc<Guarded<K>>,
) -> Action {
    on_error(
        &K::kind(&()),
        &kube::ResourceExt::name_any(guard.as_ref()),
        err,
        &g.ctx,
    )
}

/// The error policy of every controller: log the error with the object's name and the error's source
/// chain, count it by category, and requeue (conflicts at once, anything else after a pause).
pub fn on_error(kind: &str, name: &str, err: &Error, ctx: &Context) -> Action {
    tracing::warn!(kind, name, error = %err.chain(), "reconcile failed");
    ctx.metrics.error(kind, err.category().as_str());
    Action::requeue(requeue_after_error(err))
}

/// How long a reconcile that arrives before the caches are synced waits.
pub const NOT_SYNCED_REQUEUE: Duration = Duration::from_millis(200);

/// The requeue delay of an error: short first, growing with repeated failures of the same object is
/// left to kube's trigger backoff; a fixed pause keeps errors from becoming hot loops.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// The requeue delay after `err`: a conflict (someone else wrote in between) is retried at once on
/// fresher data, anything else after [`ERROR_REQUEUE`].
pub fn requeue_after_error(err: &Error) -> Duration {
    match err.category() {
        Category::Conflict => Duration::from_millis(500),
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
        Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sets the annotation `key` of the namespace `ns` to `value` (removes it, with `None`) as `manager`,
/// by a merge patch: one of Covenant's marks (what was judged there). A namespace deleted meanwhile
/// is nothing to mark.
pub async fn mark_namespace(
    ctx: &Context,
    ns: &str,
    key: &str,
    value: Option<&str>,
    manager: &str,
) -> kube::Result<()> {
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    let pp = kube::api::PatchParams {
        field_manager: Some(manager.to_string()),
        ..Default::default()
    };
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
        .patch(ns, &pp, &kube::api::Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.write("Namespace");
            Ok(())
        }
        Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
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
    let mut watches = Watches::new(&client);
    let stores = watches.stores();
    let ctx = Arc::new(Context {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter()),
        clock,
        writes: crate::apply::Writes {
            metrics: metrics.clone(),
            applied: watches.applied.clone(),
        },
        metrics,
        stores: stores.clone(),
        settings,
        synced: watches.synced(),
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
        account::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        account_quota::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        package::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        compliance::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        notice::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        response::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        retention::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        suspension::controller(ctx.clone(), &mut watches, Box::pin(shutdown.clone())),
        hostnames::controller(
            ctx.clone(),
            &mut watches,
            Box::pin(shutdown.clone()),
            ctx.settings.namespace.clone(),
        ),
    ]);
    watches.start_all(&health);

    // Ready once every cache has listed its objects and its indexes are complete (the flags are set
    // after both).
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

/// What stops a controller: the operator's shutdown (one clone per controller).
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

/// A boxed controller future.
pub type ControllerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A condition of the Account that a loop other than the Account controller writes, under a field
/// manager of its own: False with a message naming what is wrong, True otherwise.
pub struct OwnCondition {
    /// The condition type.
    pub type_: &'static str,
    /// The field manager its writes are made under.
    pub field_manager: &'static str,
    /// The reason while something is wrong.
    pub false_reason: &'static str,
    /// The reason once nothing is.
    pub true_reason: &'static str,
    /// The message once nothing is.
    pub true_message: &'static str,
}

/// Sets `condition` on `account` (False with `message` when there is one, True otherwise), writing
/// only when that differs from what the Account shows, and keeping the transition time while only the
/// message changes. An Event says so when it differs from what this process last reported
/// (`reported`, by account: a write the cache has not shown yet may be repeated, as a no-op, but is
/// not announced twice). Nothing is written for an Account being deleted.
pub async fn report_condition(
    ctx: &Context,
    account: &Account,
    condition: &OwnCondition,
    message: Option<String>,
    reported: &mut std::collections::BTreeMap<String, Option<String>>,
) -> Result<(), crate::error::Error> {
    use kube::ResourceExt;
    let name = account.name_any();
    let shown = account
        .status
        .as_ref()
        .and_then(|s| crate::status::find(&s.conditions, condition.type_));
    let needs = match (&message, shown) {
        (Some(m), Some(c)) if c.status == "False" => *m != c.message,
        (Some(_), _) => true,
        (None, Some(c)) => c.status == "False",
        (None, None) => false,
    };
    if !needs || account.metadata.deletion_timestamp.is_some() {
        reported.insert(name, message);
        return Ok(());
    }
    let (status, reason, text) = match &message {
        Some(m) => ("False", condition.false_reason, m.clone()),
        None => (
            "True",
            condition.true_reason,
            condition.true_message.to_string(),
        ),
    };
    // A message that changes while the condition stays False keeps its transition time.
    let transition = match (&message, shown) {
        (Some(_), Some(c)) if c.status == "False" => c.last_transition_time.clone(),
        _ => k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ctx.clock.now()),
    };
    let patch = serde_json::json!({
        "apiVersion": Account::api_version(&()),
        "kind": Account::kind(&()),
        "status": { "conditions": [{
            "type": condition.type_,
            "status": status,
            "reason": reason,
            "message": text,
            "lastTransitionTime": transition,
            "observedGeneration": account.metadata.generation,
        }]},
    });
    Api::<Account>::all(ctx.client.clone())
        .patch_status(
            &name,
            &kube::api::PatchParams::apply(condition.field_manager).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .map_err(|e| crate::error::Error::Status {
            object: format!("Account {name}"),
            source: e.into(),
        })?;
    ctx.metrics.write("Account");
    if reported.get(&name) != Some(&message) {
        let kind = match &message {
            Some(_) => EventType::Warning,
            None => EventType::Normal,
        };
        ctx.event(account, kind, reason, text).await;
    }
    reported.insert(name, message);
    Ok(())
}
