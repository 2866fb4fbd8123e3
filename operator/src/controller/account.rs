//! The Account controller, a driver of four stages (`apply_account`): `observe` (every read, into
//! `model::plan::Observed`) → `model::plan::plan` (pure: every decision) → `execute` (applies,
//! deletes, scales, sweeps: SSA skipped when in place) → `report` (one status write, skipped when
//! unchanged, and its Events). The managed kinds are one table (`managed_kinds!`). Deletion goes
//! through a finalizer: `Retain` releases the namespaces for `retentionMonths`, `Delete` deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use covenant_terms as terms;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{Context, ControllerFuture, Shutdown, Watches, valid};
use crate::api::{Account, AccountStatus, Suspension};
use crate::apply::{apply, delete_unwanted};
use crate::error::{ApiErrorKind as K, Cause, Error, Result};
use crate::model::account::{self as model, Desired};
use crate::model::phase;
use crate::model::plan::{
    NamespaceAction, Observed, Outcome, Plan, Release, ReleaseKind, SeenNamespace,
    releases_on_delete,
};
use crate::model::suspension::active_suspensions;

/// The finalizer that lets Covenant release or delete an account's namespaces.
pub const FINALIZER: &str = "covenant.dev/account-cleanup";
const KIND: &str = "Account";

/// The kinds an Account's children are made of besides its namespaces, in the order they are applied
/// (guardrails first): each a field of [`Desired`], and the watch, cache and index of the same name
/// (`controller/runtime.rs`). From this one table come the triggers (a change or deletion of a
/// labelled child reconciles its account) and the apply stage, which destructures `Desired` without
/// `..`: a kind built but missing here does not compile. `$m` is the macro applied to the table.
macro_rules! managed_kinds {
    ($m:ident $(, $arg:ident)*) => {
        $m!($($arg,)* [
            quotas: "ResourceQuota",
            network_policies: "NetworkPolicy",
            role_bindings: "RoleBinding",
            limit_ranges: "LimitRange",
            cluster_roles: "ClusterRole",
            cluster_role_bindings: "ClusterRoleBinding",
        ])
    };
}

/// Builds the Account controller and its triggers.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let stores = ctx.stores.clone();
    let all_accounts = {
        let stores = stores.clone();
        move || {
            stores
                .accounts
                .state()
                .iter()
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    // A package change rechecks the accounts it serves: those that name it, those it was resolved for,
    // and, while it is (or was) the default, those that name none. Only a change of what accounts read
    // (its spec, or its going) counts: the package's own status (how many accounts it serves) changes
    // with every account provisioned and must not requeue every account each time.
    let (package_seen, notice_seen) = (super::Seen::default(), super::Seen::default());
    let on_package = {
        let stores = stores.clone();
        let seen = package_seen.clone();
        let was_default = Arc::new(std::sync::Mutex::new(
            std::collections::BTreeSet::<String>::new(),
        ));
        move |p: Arc<DeserializeGuard<crate::api::SupportPackage>>| {
            let Ok(p) = &p.0 else { return Vec::new() };
            let name = p.name_any();
            if !seen.changed(&name, &(&p.spec, &p.metadata.deletion_timestamp)) {
                return Vec::new();
            }
            let default = {
                let mut d = was_default.lock().unwrap_or_else(|e| e.into_inner());
                let before = d.contains(&name);
                if p.spec.default {
                    d.insert(name.clone());
                } else {
                    d.remove(&name);
                }
                before || p.spec.default
            };
            accounts_where(&stores, |a| {
                a.spec.support_package.as_deref() == Some(name.as_str())
                    || a.status.as_ref().and_then(|s| s.support_package.as_deref())
                        == Some(name.as_str())
                    || (default && a.spec.support_package.is_none())
            })
        }
    };
    let on_suspension = |s: Arc<DeserializeGuard<Suspension>>| {
        s.0.as_ref()
            .ok()
            .map(|s| ObjectRef::<DeserializeGuard<Account>>::new(&s.spec.account))
    };
    // A notice change rechecks the accounts it selects and those that list it (a narrowed selector
    // drops some). Only what accounts read of it counts (its spec, labels, its service as recorded):
    // the notice's own counts change as accounts answer and must not requeue every account.
    let on_notice = {
        let stores = stores.clone();
        let seen = notice_seen.clone();
        move |n: Arc<DeserializeGuard<crate::api::DeprecationNotice>>| {
            let Ok(n) = &n.0 else { return Vec::new() };
            let name = n.name_any();
            if !seen.changed(&name, &crate::model::notice::read_by_accounts(n)) {
                return Vec::new();
            }
            accounts_where(&stores, |a| {
                crate::model::notice::selects(n, a)
                    || a.status
                        .as_ref()
                        .is_some_and(|s| s.notices.iter().any(|r| r.name == name))
            })
        }
    };
    // A Deployment or StatefulSet whose spec changes in a tenant namespace (e.g. scaled up while the
    // account is suspended): metadata only, and only generation changes, so status churn is ignored.
    let workload_owner = {
        let stores = stores.clone();
        move |ns: Option<String>| {
            ns.and_then(|ns| stores.account_of_namespace(&ns))
                .map(|a| ObjectRef::<DeserializeGuard<Account>>::new(&a))
        }
    };
    use kube::core::PartialObjectMeta;
    let deployments = super::trigger_stream(
        Api::<PartialObjectMeta<k8s_openapi::api::apps::v1::Deployment>>::all(ctx.client.clone()),
        kube::runtime::watcher::Config::default(),
        ctx.health.clone(),
    )
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let statefulsets = super::trigger_stream(
        Api::<PartialObjectMeta<k8s_openapi::api::apps::v1::StatefulSet>>::all(ctx.client.clone()),
        kube::runtime::watcher::Config::default(),
        ctx.health.clone(),
    )
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let (owner_d, owner_s) = (workload_owner.clone(), workload_owner);
    // Deletions of what an account depends on (a managed child, a suspension, a notice, a package).
    let (tx, deleted) = futures::channel::mpsc::unbounded::<ObjectRef<DeserializeGuard<Account>>>();
    macro_rules! on_child_delete {
        ($w:ident, [$($watch:ident: $kind:literal,)*]) => {$({
            let tx = tx.clone();
            $w.$watch.on_delete(move |o| {
                if let Some(r) = by_label(Arc::new(o.clone())) {
                    let _ = tx.unbounded_send(r);
                }
            });
        })*};
    }
    on_child_delete!(w, [namespaces: "Namespace",]);
    managed_kinds!(on_child_delete, w);
    // A tenant's answer (or its deletion by a cluster administrator) changes its account's notices.
    let answering = {
        let stores = stores.clone();
        move |r: &DeserializeGuard<crate::api::NoticeResponse>| {
            kube::Resource::meta(r)
                .namespace
                .as_deref()
                .and_then(|ns| stores.account_of_namespace(ns))
                .map(|a| ObjectRef::<DeserializeGuard<Account>>::new(&a))
        }
    };
    let on_response = {
        let answering = answering.clone();
        move |r: Arc<DeserializeGuard<crate::api::NoticeResponse>>| answering(&r)
    };
    {
        let tx = tx.clone();
        w.responses.on_delete(move |r| {
            if let Some(a) = answering(r) {
                let _ = tx.unbounded_send(a);
            }
        });
    }
    {
        let tx = tx.clone();
        w.suspensions.on_delete(move |s| {
            if let Ok(s) = &s.0 {
                let _ = tx.unbounded_send(ObjectRef::new(&s.spec.account));
            }
        });
    }
    {
        let (tx, all, seen) = (tx.clone(), all_accounts.clone(), package_seen);
        w.packages.on_delete(move |p| {
            if let Ok(p) = &p.0 {
                seen.forget(&p.name_any());
            }
            all().into_iter().for_each(|r| drop(tx.unbounded_send(r)))
        });
    }
    {
        let (tx, all, seen) = (tx.clone(), all_accounts.clone(), notice_seen);
        w.notices.on_delete(move |n| {
            if let Ok(n) = &n.0 {
                seen.forget(&n.name_any());
            }
            all().into_iter().for_each(|r| drop(tx.unbounded_send(r)))
        });
    }
    let config = kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency);
    let mut controller =
        Controller::for_shared_stream(w.accounts.subscribe(), stores.accounts.clone())
            .with_config(config)
            .watches_shared_stream(w.packages.subscribe(), on_package)
            .watches_shared_stream(w.suspensions.subscribe(), on_suspension)
            .watches_shared_stream(w.notices.subscribe(), on_notice)
            .watches_shared_stream(
                w.namespaces.subscribe(),
                super::selfservice::namespace_owner,
            );
    macro_rules! on_child_change {
        ($c:ident, $w:ident, [$($watch:ident: $kind:literal,)*]) => {$(
            $c = $c.reconcile_on(futures::StreamExt::filter_map(
                $w.$watch.subscribe(),
                |o| std::future::ready(by_label(o)),
            ));
        )*};
    }
    managed_kinds!(on_child_change, controller, w);
    let controller = controller
        .watches_shared_stream(w.responses.subscribe(), on_response)
        .watches_stream(deployments, move |d| owner_d(d.metadata.namespace))
        .watches_stream(statefulsets, move |s| owner_s(s.metadata.namespace))
        .reconcile_on(deleted)
        .graceful_shutdown_on(shutdown);
    super::run_guarded(controller, ctx, State::default())
}

/// What the Account controller alone keeps between its reconciles.
#[derive(Default)]
pub struct State {
    /// The Account status this process last wrote, by uid, until the cache shows it (see
    /// `write_status`).
    statuses_written: crate::apply::Written<AccountStatus>,
}

/// The cached accounts that satisfy `pred`.
fn accounts_where(
    stores: &super::Stores,
    pred: impl Fn(&Account) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<Account>>> {
    stores
        .accounts
        .state()
        .iter()
        .filter(|g| g.0.as_ref().is_ok_and(&pred))
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// The account a labelled child belongs to.
fn by_label<K: super::compact::OfAccount>(
    obj: Arc<K>,
) -> Option<ObjectRef<DeserializeGuard<Account>>> {
    obj.account_label().map(|a| ObjectRef::new(&a))
}

// The finalizer's outcome, as matched, is the reconcile's.
#[allow(clippy::let_and_return)]
pub(super) async fn reconcile(
    account: &Account,
    ctx: &Arc<Context>,
    state: &State,
) -> Result<Action, Error> {
    let (account, ctx) = (account.clone(), ctx.clone());
    let api: Api<Account> = Api::all(ctx.client.clone());
    use kube::runtime::finalizer::Error as F;
    // The API server adds the finalizer at creation (deploy/account-finalizer-policy.yaml). Where it
    // did not, add it here and go on with the patched Account in the same reconcile: waiting for the
    // watch to bring the patch back would cost every new tenant a round trip through the queue.
    let account = match add_finalizer(&api, account, &ctx.metrics).await {
        Ok(a) => a,
        Err(e) if matches!(K::of(&e), K::Conflict | K::Invalid | K::NotFound) => {
            // The cache is behind (someone changed the finalizers first), or the Account is gone.
            return Ok(Action::requeue(std::time::Duration::from_millis(500)));
        }
        Err(e) => return Err(Error::Finalizer(Box::new(F::AddFinalizer(e)))),
    };
    let result = finalizer(&api, FINALIZER, Arc::new(account), |event| async {
        match event {
            Finalizer::Apply(a) => apply_account(&a, &ctx, state).await,
            Finalizer::Cleanup(a) => cleanup(&a, &ctx, state).await,
        }
    })
    .await;
    // Benign races on a cache that is behind our own finalizer patch: the finalizer is already there
    // (the JSON-patch test fails: 422) or the object is already gone (404). Retry or stop quietly.
    let result = match result {
        Err(F::AddFinalizer(e)) if matches!(K::of(&e), K::Invalid | K::Conflict) => {
            Ok(Action::requeue(std::time::Duration::from_millis(500)))
        }
        Err(F::RemoveFinalizer(e)) if matches!(K::of(&e), K::NotFound | K::Invalid) => {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    result
}

/// `account` with Covenant's finalizer: as it is when it has it (or is being deleted, when it is too
/// late to add one), else after a JSON patch that adds it. The patch tests the finalizers it read, so
/// it never drops another controller's finalizer added meanwhile (409/422: the caller retries).
async fn add_finalizer(
    api: &Api<Account>,
    account: Account,
    metrics: &crate::metrics::Metrics,
) -> kube::Result<Account> {
    let has = account.finalizers().iter().any(|f| f == FINALIZER);
    if has || account.metadata.deletion_timestamp.is_some() {
        return Ok(account);
    }
    // The test pins the finalizers it read, so another controller's added meanwhile is never dropped.
    let ops = if account.finalizers().is_empty() {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ])
    } else {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": account.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ])
    };
    let ops: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    let patched = api
        .patch(
            &account.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(ops),
        )
        .await?;
    metrics.write(KIND);
    Ok(patched)
}

/// The reconcile of an Account that is not being deleted: observe → plan → execute → report.
async fn apply_account(account: &Account, ctx: &Context, state: &State) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let observed = observe(account, now, ctx, state).await?;
    let plan = crate::model::plan::plan(&observed, now);
    let (outcome, failures) = execute(account, &plan, ctx).await;
    report(account, &observed, &plan, &outcome, &failures, ctx, state).await?;
    // Transient: retried with the error policy's pause, after the status said so.
    if let Some(f) = failures.0.into_iter().find(|f| !f.permanent()) {
        return Err(f.error);
    }
    // Measured after the work, so a long reconcile does not make the next boundary late.
    let next = terms::requeue_after([plan.next_change], ctx.clock.now(), terms::MAX_REQUEUE);
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// Every read one reconcile of `account` makes, into plain data: the caches, the self-made
/// namespaces (listed afresh when one is undecided), and whether the Suspension CRD is being deleted
/// (read only while a namespace of the account is held read-only `suspended` and no suspension of it
/// is in force: only then can it decide anything).
async fn observe<'a>(
    account: &'a Account,
    now: jiff::Timestamp,
    ctx: &Context,
    state: &State,
) -> Result<Observed<'a>, Error> {
    let name = account.name_any();
    let s = &ctx.stores;
    let suspensions: Vec<Suspension> = s
        .suspensions
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|x| x.spec.account == name)
        .cloned()
        .collect();
    let (candidates, declared_by_other) = super::selfservice::candidates(account, ctx)
        .await
        .map_err(|source| Error::Observe {
            object: "self-service namespaces".into(),
            source,
        })?;
    // The cache holds every namespace (metadata only): a free name costs no request.
    let labelled: Vec<String> = s
        .index
        .namespaces
        .objects(&s.namespaces, &name)
        .iter()
        .map(|n| n.name_any())
        .collect();
    let names: BTreeSet<String> = account
        .desired_namespaces()
        .into_iter()
        .chain(candidates.iter().map(|c| c.name.clone()))
        .chain(labelled.iter().cloned())
        .collect();
    let namespaces: BTreeMap<String, SeenNamespace> = names
        .into_iter()
        .filter_map(|ns| {
            let n = s.namespaces.get(&ObjectRef::new(&ns))?;
            let deny_all = ObjectRef::new(model::SUSPENSION_POLICY).within(&ns);
            let seen = SeenNamespace {
                workload_records: super::workloads::has_records(&n),
                policy_records: super::tenant_policies::has_records(&n),
                deny_all: s.network_policies.get(&deny_all).is_some(),
                namespace: n,
            };
            Some((ns, seen))
        })
        .collect();
    let enforced = namespaces.values().any(|n| {
        n.namespace
            .labels()
            .get(crate::api::READ_ONLY_LABEL)
            .map(String::as_str)
            == Some(model::ReadOnly::Suspended.as_str())
    });
    let suspension_crd_deleting = enforced
        && !active_suspensions(&suspensions, now).active
        && crd_uninstalling(ctx, "suspensions.covenant.dev")
            .await
            .map_err(|source| Error::Observe {
                object: "CustomResourceDefinition suspensions.covenant.dev".into(),
                source,
            })?;
    // A reconcile triggered by a child's event can run before our own last status write reached the
    // cache: then what this process wrote is the status to build on (transition times, and no second
    // write of the same status).
    let previous = state
        .statuses_written
        .pending(
            &status_key(account),
            account.metadata.resource_version.as_deref(),
        )
        .or_else(|| account.status.clone())
        .unwrap_or_default();
    Ok(Observed {
        account,
        packages: valid(&s.packages),
        suspensions,
        suspension_crd_deleting,
        namespaces,
        labelled,
        candidates,
        declared_by_other,
        notices: valid(&s.notices),
        answers: s.answers(account),
        previous,
        operator: ctx.operator.clone(),
    })
}

/// One managed object the API server refused (or could not be reached for), as the stage that failed.
struct Failure {
    error: Error,
}

impl Failure {
    /// Whether only a person can fix it: the API server refused the object itself (4xx other than a
    /// conflict or throttling). Anything else is retried.
    fn permanent(&self) -> bool {
        self.error
            .cause()
            .and_then(Cause::api)
            .is_some_and(|s| K::of_status(s).permanent())
    }

    /// The object and the API server's own message (or what else the request failed with).
    fn message(&self) -> String {
        let object = self.error.object().unwrap_or_default();
        match self.error.cause() {
            Some(c) => match c.api() {
                Some(s) => format!("{object}: {}", s.message),
                None => format!("{object}: {c}"),
            },
            None => self.error.to_string(),
        }
    }
}

/// Collects failures so that one refused object never stops the others.
#[derive(Default)]
struct Failures(Vec<Failure>);

impl Failures {
    fn record<T>(&mut self, r: Result<T>, stage: impl FnOnce(Cause) -> Error) -> Option<T> {
        r.map_err(|source| {
            self.0.push(Failure {
                error: stage(source),
            })
        })
        .ok()
    }

    /// Applying (or deleting) the managed objects `what`.
    fn apply<T>(&mut self, what: impl FnOnce() -> String, r: Result<T>) -> Option<T> {
        self.record(r, |source| Error::Apply {
            object: what(),
            source,
        })
    }

    /// Scaling the workloads `what`.
    fn scale<T>(&mut self, what: impl FnOnce() -> String, r: Result<T>) -> Option<T> {
        self.record(r, |source| Error::Scale {
            object: what(),
            source,
        })
    }

    /// Releasing the namespace `what`.
    fn release<T>(&mut self, what: impl FnOnce() -> String, r: Result<T>) -> Option<T> {
        self.record(r, |source| Error::Release {
            object: what(),
            source,
        })
    }

    /// What the status says of them.
    fn applied(&self) -> phase::Applied {
        phase::Applied {
            failed: self.0.iter().map(Failure::message).collect(),
            retry: self.0.iter().any(|f| !f.permanent()),
        }
    }
}

/// Carries out `plan`, in the order the guardrails need: the self-made namespaces taken (or refused),
/// what a lift restores (before the namespaces lose their read-only label), every desired object
/// (guardrails first) and the releases, the tenant's NetworkPolicies judged again, then what a
/// suspension stops (after its guardrails are in place). One failure never stops the others.
async fn execute(account: &Account, plan: &Plan, ctx: &Context) -> (Outcome, Failures) {
    if plan.held {
        tracing::warn!(account = %account.name_any(), "the Suspension CRD is being deleted: keeping the account's guardrails in force");
    }
    let unclaimed =
        super::selfservice::claim(account, &plan.selfservice.plan, &plan.children, ctx).await;
    super::selfservice::refuse(account, &plan.selfservice.plan, ctx).await;
    let mut failures = Failures::default();
    for step in &plan.steps {
        let ns = &step.namespace;
        if let Some(namespace) = &step.restore_policies {
            let namespace = serde_json::to_value(namespace).unwrap_or_default();
            let r =
                super::tenant_policies::restore(&ctx.client, ns, &namespace, &ctx.metrics).await;
            failures.apply(|| format!("the tenant's NetworkPolicies in {ns}"), r);
        }
    }
    for step in &plan.steps {
        let ns = &step.namespace;
        let Some(scope) = step.workloads.lift() else {
            continue;
        };
        let r = super::workloads::lift(&ctx.client, ns, scope, &ctx.metrics).await;
        if let Some(n) = failures.scale(|| format!("workloads in {ns}"), r)
            && n > 0
        {
            ctx.event(
                account,
                EventType::Normal,
                "WorkloadsRestored",
                format!("{n} workload(s) in {ns} restored to their replica counts and schedules"),
            )
            .await;
        }
    }
    apply_desired(account, plan, &unclaimed, ctx, &mut failures).await;
    if let Some(namespaces) = &plan.rejudge {
        let judged: Vec<Namespace> = namespaces
            .iter()
            .filter(|n| !unclaimed.contains(&n.name_any()))
            .cloned()
            .collect();
        for n in &judged {
            let r = super::tenant_policies::rejudge_if_changed(account, n, ctx).await;
            failures.apply(
                || {
                    format!(
                        "re-judging the tenant's NetworkPolicies in {}",
                        n.name_any()
                    )
                },
                r,
            );
        }
        if let Err(e) = super::tenant_policies::report(account, &judged, ctx).await {
            tracing::warn!(account = %account.name_any(), error = %e, "reporting re-judged tenant NetworkPolicies");
        }
    }
    // Suspending: the marker is in place (applied above) before any workload is scaled, and the
    // namespace is read-only: the tenant's policies allow nothing more.
    for step in &plan.steps {
        let ns = &step.namespace;
        let Some(scope) = step.workloads.suspend() else {
            continue;
        };
        let r = super::tenant_policies::neutralise(&ctx.client, ns, &ctx.metrics).await;
        failures.apply(|| format!("the tenant's NetworkPolicies in {ns}"), r);
        let r = super::workloads::suspend(&ctx.client, ns, scope, &ctx.metrics).await;
        if let Some(n) = failures.scale(|| format!("workloads in {ns}"), r)
            && n > 0
        {
            ctx.event(
                account,
                EventType::Normal,
                "WorkloadsSuspended",
                format!("{n} workload(s) in {ns} scaled to zero or suspended while the account is suspended"),
            )
            .await;
        }
    }
    for f in &failures.0 {
        tracing::warn!(account = %account.name_any(), error = %f.message(), "cannot apply a managed object");
    }
    let outcome = Outcome {
        applied: failures.applied(),
        unclaimed,
    };
    (outcome, failures)
}

/// Writes the status the plan gives for what was done (only when it changed), with an Event on each
/// transition of a summary condition, and a Warning naming every object not applied.
async fn report(
    account: &Account,
    observed: &Observed<'_>,
    plan: &Plan,
    outcome: &Outcome,
    failures: &Failures,
    ctx: &Context,
    state: &State,
) -> Result<(), Error> {
    let status = plan.status(observed, outcome);
    write_status(account, &observed.previous, status, ctx, state).await?;
    if !failures.0.is_empty() {
        let chain = outcome.applied.failed.join("; ");
        ctx.event(
            account,
            EventType::Warning,
            "ApplyFailed",
            format!("cannot apply every managed object (the others were applied): {chain}"),
        )
        .await;
    }
    Ok(())
}

/// Applies every desired object of `plan`, guardrails first (namespaces with their read-only label,
/// the freeze quota, the deny-all policy), and deletes the labelled ones no longer wanted, then the
/// releases. A refused object is recorded and the rest still
/// applied. Nothing is provisioned in a self-made namespace that could not be taken (`unclaimed`).
async fn apply_desired(
    account: &Account,
    plan: &Plan,
    unclaimed: &[String],
    ctx: &Context,
    failures: &mut Failures,
) {
    let Desired { untouched, .. } = &plan.children;
    let s = &ctx.stores;
    let (c, m) = (&ctx.client, &ctx.writes);
    let name = account.name_any();
    let taken = |ns: Option<String>| !unclaimed.contains(&ns.unwrap_or_default());
    let namespaces: Vec<(&Namespace, &NamespaceAction)> = plan
        .namespace_actions()
        .filter(|(n, _)| taken(n.metadata.name.clone()))
        .collect();
    let tenant: Vec<String> = namespaces.iter().map(|(n, _)| n.name_any()).collect();
    for (o, action) in &namespaces {
        let ns = o.name_any();
        let r = apply_namespace(account, o, action, &tenant, &plan.allowed_subjects, ctx).await;
        failures.apply(|| format!("Namespace {ns}"), r);
    }
    // Each namespace's share of the account-wide quota exists before the bindings let anyone use it.
    let r = super::account_quota::ensure_shares(account, &tenant, ctx).await;
    failures.apply(|| "the account quota shares".into(), r);
    let wanted_ns: BTreeSet<String> = tenant.iter().cloned().collect();
    let key = |ns: Option<String>, n: String| (ns.unwrap_or_default(), n);
    macro_rules! sync {
        ($kind:literal, $objs:expr, $store:expr) => {{
            let objs: Vec<_> = $objs.iter().filter(|o| taken(o.namespace())).collect();
            // NetworkPolicies add up: in a namespace where one was refused (a deny-all, for a moment),
            // the ones it replaces stay until it is in place.
            let mut refused: BTreeSet<String> = BTreeSet::new();
            for o in &objs {
                let r = apply(c, &$store, *o, m).await;
                if r.is_err() && $kind == "NetworkPolicy" {
                    refused.insert(o.namespace().unwrap_or_default());
                }
                let what = || match o.namespace() {
                    Some(ns) => format!("{} {ns}/{}", $kind, o.name_any()),
                    None => format!("{} {}", $kind, o.name_any()),
                };
                failures.apply(what, r);
            }
            let keep: BTreeSet<(String, String)> = objs.iter().map(|o| key(o.namespace(), o.name_any())).collect();
            // Objects in namespaces the account released (retention) are the release's, not orphans;
            // objects that depend on an unresolved package stay as they are.
            let r = delete_unwanted(c, $store.of_account(&name), &name, |o| {
                keep.contains(&key(o.namespace(), o.name_any()))
                    || refused.contains(&o.namespace().unwrap_or_default())
                    || o.namespace().is_some_and(|ns| !wanted_ns.contains(&ns))
                    || untouched.contains(o.name_any().as_str())
            }, m).await;
            failures.apply(|| format!("deleting unwanted {} objects", $kind), r);
        }};
    }
    // Guardrails first: a suspension's freeze quota and deny-all before anything else; the kinds in
    // the order of their table. Every field of `Desired`, named: one missing does not compile.
    macro_rules! apply_children {
        ([$($field:ident: $kind:literal,)*]) => {{
            let Desired { namespaces: _, untouched: _, $($field,)* } = &plan.children;
            $(sync!($kind, $field, s.$field);)*
        }};
    }
    managed_kinds!(apply_children);
    // Namespaces dropped from spec.namespaces are released like those of a deleted account.
    for release in &plan.release {
        let ns = release.namespace.name_any();
        let r = release_namespace(account, release, ctx).await;
        failures.release(|| format!("releasing namespace {ns}"), r);
    }
}

/// Carries out what the plan decided for one tenant namespace (`action`, see [`NamespaceAction`]):
/// creates it, leaves someone else's alone, or applies it: first as `recheck` says followed by the
/// consent sweep (`withdraw_consent`, with `allowed` and `tenant`), then as desired, then removes the
/// `stray` labels and annotations.
async fn apply_namespace(
    account: &Account,
    desired: &Namespace,
    action: &NamespaceAction,
    tenant: &[String],
    allowed: &str,
    ctx: &Context,
) -> Result<()> {
    let (c, m, s) = (&ctx.client, &ctx.writes, &ctx.stores);
    let ns = desired.name_any();
    let read_back;
    let action = match action {
        NamespaceAction::Create => match create_namespace(account, desired, ctx).await? {
            // New, and made whole by this request: nothing more to do (one request a namespace).
            None => return Ok(()),
            // It existed already and is this Account's: decided again on what was read back.
            Some(a) => {
                read_back = a;
                &read_back
            }
        },
        a => a,
    };
    let NamespaceAction::Apply { recheck, stray } = action else {
        // Someone else's: the conflict is reported from the cache (observe), never adopted.
        return Ok(());
    };
    if let Some(first) = recheck {
        apply(c, &s.namespaces, first.as_ref(), m).await?;
        withdraw_consent(account, &ns, allowed, tenant, CONSENT_WITHDRAWN, ctx).await?;
    }
    apply(c, &s.namespaces, desired, m).await?;
    if let Some(stray) = stray {
        Api::<Namespace>::all(c.clone())
            .patch(
                &ns,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(stray),
            )
            .await?;
        m.write("Namespace");
    }
    Ok(())
}

/// How many RoleBindings the consent sweep reads at once.
const CONSENT_SWEEP_PAGE: u32 = 100;

/// Creates the namespace `desired` whole, with the mark that its bindings were checked: a namespace
/// that did not exist before this request holds no binding to check, and the admission policy checks
/// every binding made in it from then on against the subjects it carries. Returns `None` once created.
///
/// The one place applying a namespace reads back: when the namespace exists already (the API server's
/// AlreadyExists), it is read and its action decided again by the plan's own rule
/// ([`crate::model::plan::namespace_action`]). This Account's (this process created it before its
/// cache heard of it) gives the action to carry out; someone else's is the API server's
/// AlreadyExists: the reconcile reports it and runs again at once, when the cache shows the conflict.
async fn create_namespace(
    account: &Account,
    desired: &Namespace,
    ctx: &Context,
) -> Result<Option<NamespaceAction>> {
    // Empty as it is made, it holds nothing its policies refuse: every object made in it from now on
    // is admitted under them. Marked so, its objects are never listed to be judged until its policies
    // change (the compliance loop and the re-judge of tenant NetworkPolicies), also after a restart.
    let marks = BTreeMap::from([
        (
            crate::model::policies::COMPLIANCE_JUDGED_ANNOTATION.to_string(),
            crate::model::policies::policies_fingerprint(desired.annotations()),
        ),
        (
            crate::model::tenant_policies::POLICIES_JUDGED_ANNOTATION.to_string(),
            crate::model::tenant_policies::judged_fingerprint(desired),
        ),
    ]);
    match crate::apply::create(&ctx.client, desired, &marks, &ctx.writes).await {
        Ok(_) => Ok(None),
        Err(e) if K::of(&e) == K::AlreadyExists => {
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            let current = api.get_opt(&desired.name_any()).await?;
            match crate::model::plan::namespace_action(account, desired, current.as_ref()) {
                a @ NamespaceAction::Apply { .. } => Ok(Some(a)),
                _ => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Why a subject was taken out of a tenant's binding while the account is active.
const CONSENT_WITHDRAWN: &str = "no longer an administrator or allowed subject of the account (§1)";
/// Why a subject was taken out of a tenant's binding when the namespace was retained.
const RETAINED_FOR_ADMINISTRATORS: &str =
    "the namespace is retained read-only for the account's administrators only (§6)";

/// Takes every subject that `allowed` (admission-policy tokens) and `tenant` (namespaces whose
/// ServiceAccounts pass) do not admit out of the RoleBindings in `ns` (also those the tenant made), with
/// a Warning Event naming each binding and `why`. Covenant's own bindings are rebuilt anyway.
/// A binding the tenant changes meanwhile is read again and retried; one that cannot be changed does not
/// stop the others (the first error is returned after all were tried, so the namespace is checked again).
async fn withdraw_consent(
    account: &Account,
    ns: &str,
    allowed: &str,
    tenant: &[String],
    why: &str,
    ctx: &Context,
) -> Result<()> {
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), ns);
    let mut first_error = None;
    // A page at a time: however many bindings the tenant made, one page is held at once.
    let lp = kube::api::ListParams::default().limit(CONSENT_SWEEP_PAGE);
    let mut bindings = std::pin::pin!(super::paged(api.clone(), lp));
    while let Some(rb) = futures::TryStreamExt::try_next(&mut bindings).await? {
        if super::account_of(&rb).is_some() {
            continue;
        }
        let mut rb = rb;
        let mut attempts = 0;
        loop {
            let withdrawn = model::withdrawn_subjects(&rb, allowed, tenant);
            if withdrawn.is_empty() {
                break;
            }
            match remove_subjects(&api, &rb, &withdrawn).await {
                Ok(()) => {
                    ctx.metrics.write("RoleBinding");
                    let names: Vec<String> = withdrawn
                        .iter()
                        .map(|s| format!("{}:{}", s.kind, s.name))
                        .collect();
                    ctx.event(
                        account,
                        EventType::Warning,
                        "ConsentWithdrawn",
                        format!(
                            "removed {} from RoleBinding {ns}/{}: {why}",
                            names.join(", "),
                            rb.name_any()
                        ),
                    )
                    .await;
                    break;
                }
                // Changed since it was read (the resourceVersion test fails: 422, or 409): read again.
                Err(e) if matches!(K::of(&e), K::Conflict | K::Invalid) && attempts < 5 => {
                    attempts += 1;
                    match api.get_opt(&rb.name_any()).await {
                        Ok(Some(fresh)) => rb = fresh,
                        Ok(None) => break,
                        Err(e) => {
                            first_error.get_or_insert(e);
                            break;
                        }
                    }
                }
                Err(e) if K::of(&e) == K::NotFound => break,
                Err(e) => {
                    first_error.get_or_insert(e);
                    break;
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Removes `withdrawn` from the subjects of `rb`, only if it is still the version that was read.
async fn remove_subjects(
    api: &Api<RoleBinding>,
    rb: &RoleBinding,
    withdrawn: &[k8s_openapi::api::rbac::v1::Subject],
) -> std::result::Result<(), kube::Error> {
    let kept: Vec<_> = rb
        .subjects
        .iter()
        .flatten()
        .filter(|s| !withdrawn.contains(s))
        .cloned()
        .collect();
    let ops = serde_json::json!([
        { "op": "test", "path": "/metadata/resourceVersion", "value": rb.resource_version() },
        if kept.is_empty() {
            serde_json::json!({ "op": "remove", "path": "/subjects" })
        } else {
            serde_json::json!({ "op": "replace", "path": "/subjects", "value": kept })
        },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    api.patch(
        &rb.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::<()>::Json(patch),
    )
    .await
    .map(|_| ())
}

/// Carries out one release the plan decided: deletes the namespace (Delete), or leaves it read-only
/// for the administrators until the end of retention (Retain).
async fn release_namespace(account: &Account, release: &Release, ctx: &Context) -> Result<()> {
    let name = release.namespace.name_any();
    let ns = name.as_str();
    let (c, m, s) = (&ctx.client, &ctx.writes, &ctx.stores);
    let (until, r, admins) = match &release.kind {
        ReleaseKind::Delete => return super::delete_namespace(ctx, &release.namespace).await,
        ReleaseKind::Retain {
            until,
            released,
            administrators,
        } => (until, released, administrators),
    };
    // Guardrails first: no new pods, no traffic, then read-only in the API server.
    apply(c, &s.quotas, &r.freeze, m).await?;
    if let Some(q) = super::tenant_policies::bounds_with_room(&account.name_any(), ns, ctx) {
        apply(c, &s.quotas, &q, m).await?;
    }
    apply(c, &s.network_policies, &r.deny_all, m).await?;
    if let Some(rb) = &r.role_binding {
        apply(c, &s.role_bindings, rb, m).await?;
    }
    // Only the administrators keep (read-only) access: every other subject leaves the tenant's own
    // bindings, its ServiceAccounts included. Before the label that marks the release done (so a
    // restart sweeps again), and after it (so nothing bound in between stays).
    let sweep = || withdraw_consent(account, ns, admins, &[], RETAINED_FOR_ADMINISTRATORS, ctx);
    sweep().await?;
    // No Job is created in it again: its CronJobs are suspended (and never resumed: a retained
    // namespace is deleted, not lifted), before the label that marks the release done.
    let cronjobs = super::workloads::Scope {
        replicas: false,
        cronjobs: true,
    };
    super::workloads::suspend(c, ns, cronjobs, &ctx.metrics).await?;
    apply(c, &s.namespaces, &r.namespace, m).await?;
    // Read-only now: the tenant's own NetworkPolicies allow nothing more.
    super::tenant_policies::neutralise(c, ns, &ctx.metrics).await?;
    sweep().await?;
    // The admin binding and the allow policies go; only what Covenant labelled is deleted.
    let account_name = account.name_any();
    let withdrawn = |kind: &str, n: &str| {
        model::WITHDRAWN_ON_RELEASE
            .iter()
            .any(|(k, w)| *k == kind && *w == n)
    };
    delete_unwanted(
        c,
        s.role_bindings.of_account(&account_name),
        &account_name,
        |o| o.namespace().as_deref() != Some(ns) || !withdrawn("RoleBinding", &o.name_any()),
        m,
    )
    .await?;
    delete_unwanted(
        c,
        s.network_policies.of_account(&account_name),
        &account_name,
        |o| o.namespace().as_deref() != Some(ns) || !withdrawn("NetworkPolicy", &o.name_any()),
        m,
    )
    .await?;
    ctx.event(
        account,
        EventType::Normal,
        "NamespaceRetained",
        format!(
            "namespace {ns} released read-only until {} (§6)",
            terms::fmt_instant(*until)
        ),
    )
    .await;
    Ok(())
}

/// Whether the CRD `name` is being deleted (or is gone): Covenant is being uninstalled.
async fn crd_uninstalling(ctx: &Context, name: &str) -> Result<bool> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    Ok(match crds.get_opt(name).await? {
        Some(crd) => crd.metadata.deletion_timestamp.is_some(),
        None => true,
    })
}

/// Whether Covenant is being uninstalled: the Account CRD is being deleted (or is gone). Then deleting
/// an Account is no tenant's deletion, and the finalizer must release and delete nothing.
async fn uninstalling(ctx: &Context) -> Result<bool> {
    crd_uninstalling(ctx, "accounts.covenant.dev").await
}

async fn cleanup(account: &Account, ctx: &Context, state: &State) -> Result<Action, Error> {
    if let Some(uid) = &account.metadata.uid {
        state.statuses_written.forget(uid);
    }
    if uninstalling(ctx).await.map_err(|source| Error::Observe {
        object: "CustomResourceDefinition accounts.covenant.dev".into(),
        source,
    })? {
        tracing::info!(account = %account.name_any(), "the Account CRD is being deleted (uninstall): its namespaces, data and bindings stay as they are");
        return Ok(Action::await_change());
    }
    // Terminating while the finalizer releases or deletes the namespaces (kstatus reads the deletion).
    let previous = crate::status::own(&account.status.clone().unwrap_or_default());
    let status = phase::terminating(Some(&previous));
    if !crate::status::unchanged(&status, &previous) {
        super::patch_status::<Account>(ctx, &account.name_any(), &status).await?;
    }
    // Every namespace this Account owns, whether or not still in the spec; none other.
    let labelled = ctx
        .stores
        .index
        .namespaces
        .objects(&ctx.stores.namespaces, &account.name_any());
    for release in releases_on_delete(account, &labelled, ctx.clock.now()) {
        release_namespace(account, &release, ctx)
            .await
            .map_err(|source| Error::Release {
                object: format!("releasing namespace {}", release.namespace.name_any()),
                source,
            })?;
    }
    ctx.event(
        account,
        EventType::Normal,
        "Released",
        format!(
            "account deleted with deletionPolicy {:?}",
            account.spec.deletion_policy
        ),
    )
    .await;
    Ok(Action::await_change())
}

/// The key of an Account's status in `State::statuses_written`: its UID (a new Account of the same
/// name starts afresh).
fn status_key(account: &Account) -> String {
    account
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| account.name_any())
}

async fn write_status(
    account: &Account,
    previous: &AccountStatus,
    status: AccountStatus,
    ctx: &Context,
    state: &State,
) -> Result<(), Error> {
    if crate::status::unchanged(&status, &crate::status::own(previous)) {
        return Ok(());
    }
    let written = super::patch_status::<Account>(ctx, &account.name_any(), &status).await?;
    state.statuses_written.record(
        status_key(account),
        written.metadata.resource_version.as_deref(),
        status.clone(),
    );
    // Events on every transition of a summary condition, after the write (so a condition changes at
    // its instant); a condition's first appearance is no transition: only a warning one is announced.
    ctx.announce(
        account,
        &previous.conditions,
        &status.conditions,
        crate::status::account_warning,
    )
    .await;
    Ok(())
}
