//! The account-wide quota's I/O (the rules are [`crate::model::account_quota`]'s): the shares'
//! watch, the ordered writes that move room between namespaces, the Account's `status.quota`, and
//! the Event that says why a namespace gets no more room.
//!
//! The shares are created by the account controller (with nothing in them) before the namespace's
//! bindings, so a tenant never has a namespace without its share ([`ensure_shares`]). This
//! controller only rewrites their `hard`, one account at a time (the controller never runs two
//! reconciles of one object at once). A decision to write is taken on the cache and re-taken on a
//! fresh list from the API server before anything is written; the lowerings carry that list's
//! resourceVersion as a precondition, and the raises follow only once every lowering succeeded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::{Context, ControllerFuture, Shutdown, Watches, account_of, valid};
use crate::api::{ACCOUNT_LABEL, Account};
use crate::error::{ApiErrorKind, Cause, Error};
use crate::model::account_quota::{
    Rebalance, SHARE_NAME, Share, effective, exhausted, held, less_held, milli, new_share,
    rebalance, status,
};

/// The field manager of the shares' `hard` and of the Account's `status.quota` (not the account
/// controller's: its status writes leave `status.quota` alone, and this one's leave the rest).
pub const FIELD_MANAGER: &str = "covenant-account-quota";

/// How long a namespace whose usage grew counts as active (it keeps the room it was given, and takes
/// the idle namespaces' while it is exhausted).
pub const ACTIVE_FOR: Duration = Duration::from_secs(10);

/// The least time between two writes of one Account's `status.quota` (usage changes with every pod).
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// How soon an account whose raises wait for a lowering to be in force is looked at again (the
/// share's watch event usually comes first).
pub const IN_FORCE_POLL: Duration = Duration::from_millis(300);

/// A share's usage last seen (thousandths, per resource), when it last grew and when it last shrank.
type Growth = (BTreeMap<String, i128>, Option<Instant>, Option<Instant>);

/// What the account-quota reconciles share.
pub struct QuotaContext {
    ctx: Arc<Context>,
    shares: Store<ResourceQuota>,
    /// Per share (`namespace`): the usage last seen (thousandths) and when it last grew.
    growth: Mutex<HashMap<String, Growth>>,
    /// Per account: when its `status.quota` was last written.
    written: Mutex<HashMap<String, Instant>>,
    /// Per account: the resources last announced as full (an Event on each change only).
    full: Mutex<HashMap<String, Vec<String>>>,
}

/// Builds the controller: an account is looked at when it changes, when one of its shares changes
/// (its usage, with every object admitted or removed), and when a package changes.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let api = Api::<ResourceQuota>::all(ctx.client.clone());
    let wc = watcher::Config::default()
        .labels(ACCOUNT_LABEL)
        .fields(&format!("metadata.name={SHARE_NAME}"));
    let (store, writer) = reflector::store();
    let shares = reflector::reflector(
        writer,
        watcher(api, wc)
            .default_backoff()
            .modify(|q| q.managed_fields_mut().clear()),
    )
    .applied_objects();
    let qctx = Arc::new(QuotaContext {
        ctx: ctx.clone(),
        shares: store,
        growth: Default::default(),
        written: Default::default(),
        full: Default::default(),
    });
    let accounts = ctx.stores.accounts.clone();
    let all = move |_| {
        accounts
            .state()
            .iter()
            .map(|a| ObjectRef::from_obj(a.as_ref()))
            .collect::<Vec<_>>()
    };
    let controller =
        Controller::for_shared_stream(w.accounts.subscribe(), ctx.stores.accounts.clone())
            .with_config(
                kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency),
            )
            .watches_stream(shares, |q: ResourceQuota| {
                account_of(&q).map(|a| ObjectRef::<DeserializeGuard<Account>>::new(&a))
            })
            .watches_shared_stream(w.packages.subscribe(), all)
            .graceful_shutdown_on(shutdown);
    controller
        .run(reconcile, error_policy, qctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "account quota reconcile");
            }
        })
        .boxed()
}

fn error_policy(
    guard: Arc<DeserializeGuard<Account>>,
    err: &Error,
    q: Arc<QuotaContext>,
) -> Action {
    super::on_error("AccountQuota", &guard.name_any(), err, &q.ctx)
}

/// Creates the share of every namespace in `namespaces` that has none yet, with nothing in it, when
/// the account has an account-wide quota. Called by the account controller right after the namespaces
/// and before the bindings that let the tenant use them.
pub async fn ensure_shares(
    account: &Account,
    namespaces: &[String],
    ctx: &Context,
) -> crate::error::Result<()> {
    let packages = valid(&ctx.stores.packages);
    let Ok(package) = crate::model::package::resolve(account, &packages) else {
        return Ok(());
    };
    let Some(cap) = effective(account, Some(package)) else {
        return Ok(());
    };
    let name = account.name_any();
    for ns in namespaces {
        let key = ObjectRef::new(SHARE_NAME).within(ns);
        if ctx.stores.quotas.get(&key).is_some() {
            continue;
        }
        let share = new_share(&name, ns, &cap);
        let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), ns);
        match api.create(&PostParams::default(), &share).await {
            Ok(_) => ctx.writes.write("ResourceQuota"),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Cause::Kube(e)),
        }
        // Admission enforces a quota only once the quota controller has filled its status.hard: wait
        // for that (bounded) before the bindings let the tenant into the namespace.
        let deadline = Instant::now() + SHARE_ENFORCED_WITHIN;
        while Instant::now() < deadline {
            let enforced = api
                .get(SHARE_NAME)
                .await
                .ok()
                .and_then(|q| q.status)
                .and_then(|s| s.hard)
                .is_some_and(|h| cap.keys().all(|k| h.contains_key(k)));
            if enforced {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Keeps active the namespaces that are active now and whose raise waits for a lowering to be in
/// force: the room is moving to them, and it must still be theirs when it arrives. Without this, a
/// quota controller slower than [`ACTIVE_FOR`] to enforce the lowering (a loaded control plane)
/// lets their activity lapse meanwhile, and at rest the room would go back to the idle namespace it
/// was taken from, to stay there while the claimants are refused.
fn keep_claimants_active(q: &QuotaContext, deferred: &[String]) {
    if deferred.is_empty() {
        return;
    }
    let mut growth = q.growth.lock().unwrap_or_else(|p| p.into_inner());
    renew(&mut growth, deferred, Instant::now());
}

/// Renews, at `now`, the activity of those of `namespaces` that are active at `now`.
fn renew(growth: &mut HashMap<String, Growth>, namespaces: &[String], now: Instant) {
    for ns in namespaces {
        if let Some((_, Some(t), _)) = growth.get_mut(ns)
            && now.duration_since(*t) < ACTIVE_FOR
        {
            *t = now;
        }
    }
}

/// How long a new namespace's share is waited for to be enforced before its bindings are applied.
pub const SHARE_ENFORCED_WITHIN: Duration = Duration::from_secs(5);

/// The shares as the rules read them; records when each one's usage grew.
fn observe(q: &QuotaContext, quotas: &[&ResourceQuota]) -> Vec<Share> {
    let now = Instant::now();
    let mut growth = q.growth.lock().unwrap_or_else(|p| p.into_inner());
    quotas
        .iter()
        .map(|rq| {
            let ns = rq.namespace().unwrap_or_default();
            let used = rq
                .status
                .as_ref()
                .and_then(|s| s.used.clone())
                .unwrap_or_default();
            let values: BTreeMap<String, i128> = used
                .iter()
                .filter_map(|(k, v)| milli(&v.0, true).map(|m| (k.clone(), m)))
                .collect();
            let entry = growth
                .entry(ns.clone())
                .or_insert((values.clone(), None, None));
            if values
                .iter()
                .any(|(k, v)| entry.0.get(k).is_some_and(|old| v > old))
            {
                entry.1 = Some(now);
            }
            if entry
                .0
                .iter()
                .any(|(k, old)| values.get(k).is_none_or(|v| v < old))
            {
                entry.2 = Some(now);
            }
            entry.0 = values;
            let recent = |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) < ACTIVE_FOR);
            let (active, giving) = (recent(entry.1), recent(entry.2));
            Share {
                namespace: ns,
                hard: rq
                    .spec
                    .as_ref()
                    .and_then(|s| s.hard.clone())
                    .unwrap_or_default(),
                used,
                enforced: rq
                    .status
                    .as_ref()
                    .and_then(|s| s.hard.clone())
                    .unwrap_or_default(),
                active,
                giving,
            }
        })
        .collect()
}

async fn reconcile(
    guard: Arc<DeserializeGuard<Account>>,
    q: Arc<QuotaContext>,
) -> Result<Action, Error> {
    let ctx = &q.ctx;
    let Ok(account) = &guard.0 else {
        return Ok(Action::await_change());
    };
    if !ctx.synced() || q.shares.wait_until_ready().now_or_never().is_none() {
        return Ok(Action::requeue(super::NOT_SYNCED_REQUEUE));
    }
    let name = account.name_any();
    let packages = valid(&ctx.stores.packages);
    // An account whose package is unresolved keeps its shares as they are (the account controller
    // says why it is not Ready).
    let Ok(package) = crate::model::package::resolve(account, &packages) else {
        return Ok(Action::await_change());
    };
    let cap = effective(account, Some(package));
    let cached: Vec<Arc<ResourceQuota>> = q
        .shares
        .state()
        .into_iter()
        .filter(|s| account_of(s.as_ref()).as_deref() == Some(name.as_str()))
        .collect();
    let shares = observe(&q, &cached.iter().map(|a| a.as_ref()).collect::<Vec<_>>());
    let Some(cap) = cap else {
        // No account-wide quota: the account controller deletes the shares; the status says nothing.
        if account.status.as_ref().is_some_and(|s| s.quota.is_some()) {
            write_status(&q, account, None).await?;
        }
        return Ok(Action::await_change());
    };
    // The room still held by the account's namespaces being deleted, whose share is gone already, is
    // not divided: the shares partition what is left of the cap.
    let holding = gone_shares(&q, &name, &cached);
    let full_cap = cap;
    let cap = less_held(&full_cap, &holding);
    let mut shares = shares;
    let cached_plan = rebalance(&cap, &shares);
    keep_claimants_active(&q, &cached_plan.deferred);
    if cached_plan.lower.is_empty() && cached_plan.raise.is_empty() && cached_plan.waiting {
        // A lowering is not in force yet: the quota controller's copy brings the account back.
        return Ok(Action::requeue(IN_FORCE_POLL));
    }
    if !cached_plan.is_empty() {
        // Decided on the cache; decided again on what the API server holds now, and written so.
        let api = Api::<ResourceQuota>::all(ctx.client.clone());
        let lp = ListParams::default()
            .labels(&format!("{ACCOUNT_LABEL}={name}"))
            .fields(&format!("metadata.name={SHARE_NAME}"));
        let fresh = api.list(&lp).await.map_err(|e| Error::Observe {
            object: format!("the account quota shares of {name}"),
            source: e.into(),
        })?;
        ctx.metrics.account_quota_rebalances.inc();
        shares = observe(&q, &fresh.items.iter().collect::<Vec<_>>());
        let plan = rebalance(&cap, &shares);
        keep_claimants_active(&q, &plan.deferred);
        if let Some(again) = execute(ctx, &plan, &fresh.items).await? {
            return Ok(again);
        }
        if !plan.lower.is_empty() || plan.waiting {
            // The raises follow once the lowerings are in force (the next rounds).
            return Ok(Action::requeue(IN_FORCE_POLL));
        }
    }
    let st = status(&full_cap, &shares);
    if account.status.as_ref().and_then(|s| s.quota.as_ref()) != Some(&st) {
        let last = q
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .copied();
        match last.map(|t| t.elapsed()) {
            Some(e) if e < STATUS_EVERY => return Ok(Action::requeue(STATUS_EVERY - e)),
            _ => write_status(&q, account, Some(st)).await?,
        }
    }
    announce(&q, account, exhausted(&cap, &shares), held(&cap, &shares)).await;
    // A namespace's activity (or giving) ends without any event: look again then (the room it was kept may go to
    // a namespace that used up its share meanwhile).
    let now = Instant::now();
    let expiry = q
        .growth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(ns, _)| shares.iter().any(|s| &s.namespace == *ns))
        .flat_map(|(_, (_, grew, shrank))| [*grew, *shrank])
        .flatten()
        .map(|t| (t + ACTIVE_FOR).saturating_duration_since(now))
        .filter(|d| !d.is_zero())
        .min();
    // Nothing is heard when a namespace being deleted is finally gone: look again for its room.
    let expiry = match (expiry, holding.is_empty()) {
        (e, true) => e,
        (e, false) => Some(e.map_or(HELD_POLL, |d| d.min(HELD_POLL))),
    };
    Ok(match expiry {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// How often an account whose namespaces being deleted still hold room is looked at again.
pub const HELD_POLL: Duration = Duration::from_secs(2);

/// The account's namespaces being deleted whose share is gone already (the namespace controller
/// deletes it with the rest of the namespace while pods end their grace period and objects wait for
/// their finalizers): per namespace, its usage last seen, or `None` when this process never saw its
/// share (it started meanwhile). Forgets the usage of namespaces that are gone.
fn gone_shares(
    q: &QuotaContext,
    account: &str,
    shares: &[Arc<ResourceQuota>],
) -> Vec<Option<BTreeMap<String, i128>>> {
    let s = &q.ctx.stores;
    let mut growth = q.growth.lock().unwrap_or_else(|p| p.into_inner());
    growth.retain(|ns, _| {
        s.namespaces
            .get(&ObjectRef::<k8s_openapi::api::core::v1::Namespace>::new(ns))
            .is_some()
    });
    s.index
        .namespaces
        .objects(&s.namespaces, account)
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .filter(|n| {
            let ns = n.name_any();
            !shares
                .iter()
                .any(|q| q.namespace().as_deref() == Some(ns.as_str()))
        })
        .map(|n| growth.get(&n.name_any()).map(|(used, _, _)| used.clone()))
        .collect()
}

/// Writes the plan: every lowering with the listed resourceVersion as a precondition, then, once all
/// succeeded, every raise. A lowering refused because the share changed meanwhile (its usage grew)
/// stops the plan before any raise; the account is looked at again at once (`Some`).
async fn execute(
    ctx: &Context,
    plan: &Rebalance,
    listed: &[ResourceQuota],
) -> Result<Option<Action>, Error> {
    let patch = |ns: &str, hard: &crate::api::ResourceMap, rv: Option<&str>| {
        let old = listed
            .iter()
            .find(|s| s.namespace().as_deref() == Some(ns))
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        let mut h = serde_json::Map::new();
        for k in old.keys().filter(|k| !hard.contains_key(*k)) {
            h.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in hard {
            h.insert(k.clone(), serde_json::Value::String(v.0.clone()));
        }
        let mut body = serde_json::json!({ "spec": { "hard": h } });
        if let Some(rv) = rv {
            body["metadata"] = serde_json::json!({ "resourceVersion": rv });
        }
        body
    };
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for w in &plan.lower {
        let rv = listed
            .iter()
            .find(|s| s.namespace().as_deref() == Some(w.namespace.as_str()))
            .and_then(|s| s.resource_version());
        let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), &w.namespace);
        match api
            .patch(
                SHARE_NAME,
                &pp,
                &Patch::Merge(patch(&w.namespace, &w.hard, rv.as_deref())),
            )
            .await
        {
            Ok(_) => ctx.writes.write("ResourceQuota"),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => {
                return Ok(Some(Action::requeue(Duration::from_millis(100))));
            }
            Err(e) => {
                return Err(Error::Apply {
                    object: format!("ResourceQuota {}/{SHARE_NAME}", w.namespace),
                    source: e.into(),
                });
            }
        }
    }
    for w in &plan.raise {
        let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), &w.namespace);
        api.patch(
            SHARE_NAME,
            &pp,
            &Patch::Merge(patch(&w.namespace, &w.hard, None)),
        )
        .await
        .map_err(|e| Error::Apply {
            object: format!("ResourceQuota {}/{SHARE_NAME}", w.namespace),
            source: e.into(),
        })?;
        ctx.writes.write("ResourceQuota");
    }
    Ok(None)
}

/// Writes `status.quota` under this controller's own field manager (`None` removes it).
async fn write_status(
    q: &QuotaContext,
    account: &Account,
    quota: Option<crate::api::AccountQuotaStatus>,
) -> Result<(), Error> {
    let name = account.name_any();
    let mut status = serde_json::json!({});
    if let Some(quota) = quota {
        status["quota"] = serde_json::to_value(quota).map_err(|e| Error::Status {
            object: format!("Account {name}"),
            source: e.into(),
        })?;
    }
    let patch = serde_json::json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Account",
        "status": status,
    });
    Api::<Account>::all(q.ctx.client.clone())
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::Status {
            object: format!("Account {name}"),
            source: e.into(),
        })?;
    q.ctx.metrics.write("Account");
    q.written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name, Instant::now());
    Ok(())
}

/// An Event when the resources on which the account is full change (a namespace refused for want of
/// room then learns that the account, not its namespace, is out of it), and when the account's last
/// units are held by other namespaces than one that used up its share (it learns where they are).
async fn announce(
    q: &QuotaContext,
    account: &Account,
    full: Vec<String>,
    held: Vec<(
        String,
        Vec<(
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        )>,
    )>,
) {
    let name = account.name_any();
    let said: Vec<String> = held
        .iter()
        .map(|(r, holders)| {
            let who: Vec<String> = holders
                .iter()
                .map(|(ns, room)| format!("{ns} ({})", room.0))
                .collect();
            format!("{r}: {}", who.join(", "))
        })
        .collect();
    let key = |k: &str| format!("{name}\u{0}{k}");
    let changed = |k: &str, now: &Vec<String>| {
        let mut m = q.full.lock().unwrap_or_else(|p| p.into_inner());
        let before = m.get(&key(k)).cloned().unwrap_or_default();
        m.insert(key(k), now.clone());
        &before != now
    };
    if changed("held", &said) && !said.is_empty() {
        q.ctx
            .event(
                account,
                EventType::Normal,
                "AccountQuotaHeld",
                format!(
                    "a namespace of the account used up its share of the accountQuota; the account's \
                     remaining room is held by (namespace and room) {}: it moves when those \
                     namespaces stay idle while another one grows, or is freed by them",
                    said.join("; ")
                ),
            )
            .await;
    }
    if changed("full", &full) && !full.is_empty() {
        q.ctx
            .event(
                account,
                EventType::Warning,
                "AccountQuotaFull",
                format!(
                    "the account's namespaces together use all of its accountQuota for {}: nothing \
                     more of it is admitted in any of its namespaces until some is freed or the \
                     package's or the Account's accountQuota is raised",
                    full.join(", ")
                ),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimant_stays_active_while_its_room_waits_and_an_idle_namespace_does_not_become_one() {
        let t0 = Instant::now();
        let mut growth: HashMap<String, Growth> = HashMap::new();
        growth.insert("racer".into(), (BTreeMap::new(), Some(t0), None));
        growth.insert("idle".into(), (BTreeMap::new(), None, None));
        growth.insert("lapsed".into(), (BTreeMap::new(), Some(t0), None));
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Rounds every few seconds while the lowering waits, past ACTIVE_FOR since the growth.
        let mut now = t0;
        for _ in 0..5 {
            now += ACTIVE_FOR / 2;
            renew(&mut growth, &names(&["racer", "idle"]), now);
        }
        assert_eq!(growth["racer"].1, Some(now), "the claimant is still active");
        assert_eq!(growth["idle"].1, None, "activity is never made up");
        // A namespace whose activity lapsed before the room moved to it is not revived.
        renew(&mut growth, &names(&["lapsed"]), now);
        assert_eq!(growth["lapsed"].1, Some(t0));
    }
}
