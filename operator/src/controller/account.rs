//! The Account controller: fetch (caches) → validate → build (pure) → apply (SSA, skipped when in
//! place) → status (one write, skipped when unchanged). Deletion goes through a finalizer: `Retain`
//! releases the namespaces for `retentionMonths`, `Delete` deletes them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use covenant_terms as terms;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{Context, ControllerFuture, Watches, account_of, valid};
use crate::api::{Account, AccountPhase, AccountStatus, RETAINED_UNTIL_LABEL, Suspension};
use crate::apply::{apply, delete_unwanted};
use crate::error::{Error, Result};
use crate::model::account::{self as model, BuildInput, Desired};
use crate::model::notice::{account_notices, terms_current};
use crate::model::package::resolve;
use crate::model::suspension::{ActiveSuspensions, active_suspensions};
use crate::status::{Cond, merge};

/// The finalizer that lets Covenant release or delete an account's namespaces.
pub const FINALIZER: &str = "covenant.dev/account-cleanup";
const KIND: &str = "Account";

/// Builds the Account controller and its triggers.
pub fn controller(
    ctx: Arc<Context>,
    w: &mut Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> ControllerFuture {
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
    let on_package = {
        let all = all_accounts.clone();
        // A package change can move the default and so any account that names none: recheck all (cheap:
        // an unchanged account makes no request).
        move |_: Arc<DeserializeGuard<crate::api::SupportPackage>>| all()
    };
    let on_suspension = |s: Arc<DeserializeGuard<Suspension>>| {
        s.0.as_ref()
            .ok()
            .map(|s| ObjectRef::<DeserializeGuard<Account>>::new(&s.spec.account))
    };
    // A notice change can add accounts to its selection or drop them (a narrowed selector), and only
    // the new notice is seen here: recheck every account (one with nothing to do makes no request).
    let on_notice = {
        let all = all_accounts.clone();
        move |_: Arc<DeserializeGuard<crate::api::DeprecationNotice>>| all()
    };
    // A Deployment or StatefulSet whose spec changes in a tenant namespace (e.g. scaled up while the
    // account is suspended): metadata only, and only generation changes, so status churn is ignored.
    let workload_owner = {
        let stores = stores.clone();
        move |ns: Option<String>| {
            ns.and_then(|ns| stores.namespaces.get(&ObjectRef::new(&ns)))
                .and_then(|n| account_of(n.as_ref()))
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
        ($($watch:ident),*) => {$({
            let tx = tx.clone();
            w.$watch.on_delete(move |o| {
                if let Some(r) = by_label(Arc::new(o.clone())) {
                    let _ = tx.unbounded_send(r);
                }
            });
        })*};
    }
    on_child_delete!(
        namespaces,
        quotas,
        limit_ranges,
        network_policies,
        role_bindings
    );
    {
        let tx = tx.clone();
        w.suspensions.on_delete(move |s| {
            if let Ok(s) = &s.0 {
                let _ = tx.unbounded_send(ObjectRef::new(&s.spec.account));
            }
        });
    }
    {
        let (tx, all) = (tx.clone(), all_accounts.clone());
        w.packages
            .on_delete(move |_| all().into_iter().for_each(|r| drop(tx.unbounded_send(r))));
    }
    {
        let (tx, all) = (tx.clone(), all_accounts.clone());
        w.notices
            .on_delete(move |_| all().into_iter().for_each(|r| drop(tx.unbounded_send(r))));
    }
    let config = kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency);
    Controller::for_shared_stream(w.accounts.subscribe(), stores.accounts.clone())
        .with_config(config)
        .watches_shared_stream(w.packages.subscribe(), on_package)
        .watches_shared_stream(w.suspensions.subscribe(), on_suspension)
        .watches_shared_stream(w.notices.subscribe(), on_notice)
        .watches_shared_stream(w.namespaces.subscribe(), by_label)
        .watches_shared_stream(w.quotas.subscribe(), by_label)
        .watches_shared_stream(w.limit_ranges.subscribe(), by_label)
        .watches_shared_stream(w.network_policies.subscribe(), by_label)
        .watches_shared_stream(w.role_bindings.subscribe(), by_label)
        .watches_stream(deployments, move |d| owner_d(d.metadata.namespace))
        .watches_stream(statefulsets, move |s| owner_s(s.metadata.namespace))
        .reconcile_on(deleted)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "account reconcile");
            }
        })
        .boxed()
}

/// The account a labelled child belongs to.
fn by_label<K: kube::Resource>(obj: Arc<K>) -> Option<ObjectRef<DeserializeGuard<Account>>> {
    account_of(obj.as_ref()).map(|a| ObjectRef::new(&a))
}

fn error_policy(_: Arc<DeserializeGuard<Account>>, err: &Error, ctx: Arc<Context>) -> Action {
    super::on_error(KIND, err, &ctx)
}

async fn reconcile(guard: Arc<DeserializeGuard<Account>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(account) = super::parsed(&guard, &ctx.stores.accounts, &ctx)
        .await
        .cloned()
    else {
        return Ok(Action::await_change());
    };
    if !ctx.synced() {
        return Ok(Action::requeue(super::NOT_SYNCED_REQUEUE));
    }
    let started = Instant::now();
    let api: Api<Account> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, Arc::new(account), |event| async {
        match event {
            Finalizer::Apply(a) => apply_account(&a, &ctx).await,
            Finalizer::Cleanup(a) => cleanup(&a, &ctx).await,
        }
    })
    .await;
    // Benign races on a cache that is behind our own finalizer patch: the finalizer is already there
    // (the JSON-patch test fails: 422) or the object is already gone (404). Retry or stop quietly.
    use kube::runtime::finalizer::Error as F;
    let result = match result {
        Err(F::AddFinalizer(kube::Error::Api(s))) if s.code == 422 || s.code == 409 => {
            Ok(Action::requeue(std::time::Duration::from_millis(500)))
        }
        Err(F::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 || s.code == 422 => {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    ctx.metrics.observe(KIND, started.elapsed());
    ctx.metrics.set_accounts(
        ctx.stores
            .accounts
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok()),
    );
    result
}

/// Everything the account's conditions are computed from.
struct Observed {
    package: Result<crate::api::SupportPackage, String>,
    invalid: Vec<String>,
    conflicts: Vec<String>,
    suspensions: ActiveSuspensions,
}

async fn observe(account: &Account, ctx: &Context) -> Result<Observed> {
    let now = ctx.clock.now();
    let name = account.name_any();
    let packages = valid(&ctx.stores.packages);
    let package = resolve(account, &packages)
        .cloned()
        .map_err(|e| e.to_string());
    let invalid = match &package {
        Ok(p) => model::validate_on_package(account, p),
        Err(_) => Vec::new(),
    };
    let suspensions: Vec<Suspension> = valid(&ctx.stores.suspensions)
        .into_iter()
        .filter(|s| s.spec.account == name)
        .collect();
    let suspensions = active_suspensions(&suspensions, now);
    // A namespace Covenant has not labelled for this account must not be adopted: look it up only when
    // the cache does not know it (first creation), so a settled account costs no request.
    let mut conflicts = Vec::new();
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in account.desired_namespaces() {
        let cached = ctx.stores.namespaces.get(&ObjectRef::new(&ns));
        let owner = match cached {
            Some(n) => account_of(n.as_ref()),
            None => ns_api
                .get_opt(&ns)
                .await?
                .map(|n| account_of(&n).unwrap_or_default()),
        };
        match owner.as_deref() {
            None => {}
            Some(o) if o == name => {}
            Some("") => conflicts.push(format!(
                "namespace {ns:?} already exists and was not created by Covenant"
            )),
            Some(o) => conflicts.push(format!("namespace {ns:?} belongs to Account {o:?}")),
        }
    }
    Ok(Observed {
        package,
        invalid,
        conflicts,
        suspensions,
    })
}

async fn apply_account(account: &Account, ctx: &Context) -> Result<Action> {
    let now = ctx.clock.now();
    let obs = observe(account, ctx).await?;
    let mut conds = Vec::new();
    let blocked: Option<(&str, String)> = if !obs.conflicts.is_empty() {
        Some((
            "NamespaceConflict",
            format!(
                "{}: choose other namespace names in spec.namespaces; Covenant changed nothing",
                obs.conflicts.join("; ")
            ),
        ))
    } else if let Err(e) = &obs.package {
        Some(("PackageUnresolved", e.clone()))
    } else if !obs.invalid.is_empty() {
        Some(("TooManyNamespaces", obs.invalid.join("; ")))
    } else {
        None
    };

    let suspended = obs.suspensions.active;
    if let (None, Ok(package)) = (&blocked, &obs.package) {
        let scale = suspended && obs.suspensions.scale_workloads;
        let desired = model::build(
            account,
            &BuildInput {
                package,
                suspended,
                scale_workloads: scale,
            },
        );
        // Lifting: restore the workloads before the namespace apply drops the marker.
        if !scale {
            for ns in account.desired_namespaces() {
                let marked = ctx
                    .stores
                    .namespaces
                    .get(&ObjectRef::new(&ns))
                    .is_some_and(|n| n.annotations().contains_key(model::SCALED_MARKER));
                if marked {
                    let n = super::workloads::lift(&ctx.client, &ns, &ctx.metrics).await?;
                    if n > 0 {
                        ctx.event(
                            account,
                            EventType::Normal,
                            "WorkloadsRestored",
                            format!("{n} workload(s) in {ns} restored to their replica counts"),
                        )
                        .await;
                    }
                }
            }
        }
        apply_desired(account, desired, ctx).await?;
        // Suspending: the marker is in place (applied above) before any workload is scaled.
        if scale {
            for ns in account.desired_namespaces() {
                let n = super::workloads::suspend(&ctx.client, &ns, &ctx.metrics).await?;
                if n > 0 {
                    ctx.event(
                        account,
                        EventType::Normal,
                        "WorkloadsScaledDown",
                        format!("{n} workload(s) in {ns} scaled to zero while suspended"),
                    )
                    .await;
                }
            }
        }
        conds.extend(model::applied_conditions(account, package, suspended));
    } else if let Some((reason, msg)) = &blocked {
        for t in [
            "NamespacesReady",
            "QuotaApplied",
            "NetworkIsolated",
            "AccessGranted",
        ] {
            conds.push(Cond::new(t, false, *reason, msg.clone()));
        }
    }
    conds.push(obs.suspensions.condition());

    let (review, due, review_next) = model::access_review(account, now);
    conds.push(review);
    let notices = valid(&ctx.stores.notices);
    let (rows, notices_next) = account_notices(account, &notices, now);
    conds.push(terms_current(&rows));

    let ready = match (&blocked, suspended) {
        (Some((reason, msg)), _) => Cond::new("Ready", false, *reason, msg.clone()),
        (None, true) => Cond::new("Ready", false, "Suspended", obs.suspensions.summary()),
        (None, false) => Cond::new("Ready", true, "Ready", "every managed object is in place"),
    };
    let phase = match (&blocked, suspended, ready.status) {
        (_, true, _) => AccountPhase::Suspended,
        (Some(_), _, _) => AccountPhase::Degraded,
        (None, false, true) => AccountPhase::Active,
        _ => AccountPhase::Provisioning,
    };
    conds.insert(0, ready);

    let previous = account.status.clone().unwrap_or_default();
    let status = AccountStatus {
        phase: Some(phase),
        observed_generation: account.metadata.generation,
        support_package: obs.package.as_ref().ok().map(|p| p.name_any()),
        namespaces: if blocked.is_some() {
            previous.namespaces.clone()
        } else {
            account.desired_namespaces()
        },
        access_review_due_at: Some(Time(due)),
        notices: rows,
        conditions: merge(
            &previous.conditions,
            conds,
            account.metadata.generation,
            now,
        ),
    };
    write_status(account, &previous, status, ctx).await?;

    let next = terms::requeue_after(
        [review_next, notices_next, obs.suspensions.next_change],
        now,
        terms::MAX_REQUEUE,
    );
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// Applies every desired object and deletes the labelled ones no longer wanted.
async fn apply_desired(account: &Account, desired: Desired, ctx: &Context) -> Result<()> {
    let Desired {
        namespaces,
        quotas,
        limit_ranges,
        network_policies,
        role_bindings,
    } = desired;
    let s = &ctx.stores;
    let (c, m) = (&ctx.client, ctx.metrics.as_ref());
    let name = account.name_any();
    for o in &namespaces {
        apply(c, &s.namespaces, o, m).await?;
    }
    let wanted_ns: BTreeSet<String> = namespaces.iter().map(|n| n.name_any()).collect();
    let key = |ns: Option<String>, n: String| (ns.unwrap_or_default(), n);
    macro_rules! sync {
        ($objs:expr, $store:expr) => {{
            for o in &$objs {
                apply(c, &$store, o, m).await?;
            }
            let keep: BTreeSet<(String, String)> = $objs.iter().map(|o| key(o.namespace(), o.name_any())).collect();
            // Objects in namespaces the account released (retention) are the release's, not orphans.
            delete_unwanted(c, &$store, &name, |o| keep.contains(&key(o.namespace(), o.name_any())) || !wanted_ns.contains(&o.namespace().unwrap_or_default()), m).await?;
        }};
    }
    sync!(quotas, s.quotas);
    sync!(limit_ranges, s.limit_ranges);
    sync!(network_policies, s.network_policies);
    sync!(role_bindings, s.role_bindings);
    // Namespaces dropped from spec.namespaces are released like those of a deleted account.
    for ns in s.namespaces.state() {
        if account_of(ns.as_ref()).as_deref() == Some(name.as_str())
            && !wanted_ns.contains(&ns.name_any())
            && !ns.labels().contains_key(RETAINED_UNTIL_LABEL)
            && ns.metadata.deletion_timestamp.is_none()
        {
            release_namespace(account, &ns.name_any(), ctx).await?;
        }
    }
    Ok(())
}

/// Releases (Retain) or deletes (Delete) one namespace of the account.
async fn release_namespace(account: &Account, ns: &str, ctx: &Context) -> Result<()> {
    let now = ctx.clock.now();
    let (c, m, s) = (&ctx.client, ctx.metrics.as_ref(), &ctx.stores);
    match account.spec.deletion_policy {
        crate::api::DeletionPolicy::Delete => {
            let api: Api<Namespace> = Api::all(c.clone());
            match api.delete(ns, &Default::default()).await {
                Ok(_) => m.write("Namespace"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        crate::api::DeletionPolicy::Retain => {
            let until = terms::retained_until(
                now,
                u32::try_from(account.spec.retention_months).unwrap_or(0),
            );
            let (n, rb, q) = model::released(account, ns, until);
            apply(c, &s.quotas, &q, m).await?;
            if let Some(rb) = rb {
                apply(c, &s.role_bindings, &rb, m).await?;
            }
            // The admin binding goes; the read-only one stays.
            let rb_api: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
                Api::namespaced(c.clone(), ns);
            match rb_api
                .delete(model::TENANT_ADMIN_ROLE, &Default::default())
                .await
            {
                Ok(_) => m.write("RoleBinding"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            // The label last: once it is there the namespace is the retention controller's.
            apply(c, &s.namespaces, &n, m).await?;
            ctx.event(
                account,
                EventType::Normal,
                "NamespaceRetained",
                format!(
                    "namespace {ns} released read-only until {} (§6)",
                    terms::fmt_instant(until)
                ),
            )
            .await;
        }
    }
    Ok(())
}

async fn cleanup(account: &Account, ctx: &Context) -> Result<Action> {
    if let Some(uid) = &account.metadata.uid {
        ctx.statuses_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
    let name = account.name_any();
    // Every namespace labelled for this account, whether or not still in the spec; none other.
    let owned: Vec<String> = ctx
        .stores
        .namespaces
        .state()
        .iter()
        .filter(|n| {
            account_of(n.as_ref()).as_deref() == Some(name.as_str())
                && !n.labels().contains_key(RETAINED_UNTIL_LABEL)
        })
        .map(|n| n.name_any())
        .collect();
    for ns in owned {
        release_namespace(account, &ns, ctx).await?;
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

async fn write_status(
    account: &Account,
    previous: &AccountStatus,
    status: AccountStatus,
    ctx: &Context,
) -> Result<()> {
    if crate::status::unchanged(&status, previous) {
        return Ok(());
    }
    // A reconcile triggered by a child's event can run before our own last status write reached the
    // cache: compare with what this process last wrote too, so the same status is not sent twice.
    let key = account
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| account.name_any());
    let serialized = serde_json::to_value(&status)?;
    if ctx
        .statuses_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        == Some(&serialized)
    {
        return Ok(());
    }
    super::patch_status::<Account>(ctx, &account.name_any(), &status).await?;
    ctx.statuses_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, serialized);
    // Events on every condition transition (after the write, so a condition changes at its instant).
    // A condition's first appearance is no transition: only a warning one is worth an Event then.
    for c in &status.conditions {
        let before = previous.conditions.iter().find(|p| p.type_ == c.type_);
        let warn = matches!(
            (c.type_.as_str(), c.status.as_str()),
            ("Suspended", "True") | ("Ready" | "AccessReviewCurrent" | "TermsCurrent", "False")
        );
        let transition = match before {
            Some(b) => b.status != c.status,
            None => warn,
        };
        if transition {
            let kind = if warn {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event(
                account,
                kind,
                &format!("{}{}", c.type_, c.status),
                c.message.clone(),
            )
            .await;
        }
    }
    Ok(())
}
