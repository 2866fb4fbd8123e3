//! The Suspension controller (§2.4): validates the suspension, gives notice of the cause at once
//! (Events on the Account and in each tenant namespace, `status.noticeGivenAt`, the optional
//! webhook) unless withheld, and records when it was lifted. The Account controller applies and
//! lifts the suspension's effects; this one keeps the Suspension's own record.

use std::sync::Arc;
use std::time::Duration;

use covenant_terms as terms;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::{Account, Suspension};
use crate::error::Error;
use crate::model::account::FREEZE_QUOTA_NAME;

/// Builds the Suspension controller; an Account change rechecks its suspensions.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let stores = ctx.stores.clone();
    let of_account = move |a: Arc<DeserializeGuard<Account>>| {
        let name = a.0.as_ref().map(|a| a.name_any()).unwrap_or_default();
        stores
            .suspensions
            .state()
            .iter()
            .filter(|s| s.0.as_ref().is_ok_and(|s| s.spec.account == name))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect::<Vec<_>>()
    };
    // A deleted account makes its suspensions Invalid.
    let (tx, deleted) = futures::channel::mpsc::unbounded();
    {
        let of_account = of_account.clone();
        w.accounts.on_delete(move |a| {
            of_account(Arc::new(a.clone()))
                .into_iter()
                .for_each(|r| drop(tx.unbounded_send(r)))
        });
    }
    let controller =
        Controller::for_shared_stream(w.suspensions.subscribe(), ctx.stores.suspensions.clone())
            .with_config(
                kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency),
            )
            .watches_shared_stream(w.accounts.subscribe(), of_account)
            .reconcile_on(deleted)
            .graceful_shutdown_on(shutdown);
    super::run_guarded(controller, ctx, State::default())
}

/// What the Suspension controller alone keeps between its reconciles.
#[derive(Default)]
pub struct State {
    /// Suspensions (by uid) whose notice this process gave, and when: a reconcile that runs before
    /// the status write reaches the cache must not give notice twice.
    notices_given: std::sync::Mutex<std::collections::HashMap<String, jiff::Timestamp>>,
}

pub use crate::model::suspension::{Outcome, evaluate};

pub(super) async fn reconcile(
    s: &Suspension,
    ctx: &Context,
    state: &State,
) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let account = ctx
        .stores
        .accounts
        .get(&ObjectRef::new(&s.spec.account))
        .and_then(|g| g.0.as_ref().ok().cloned());
    let uid = s.uid().unwrap_or_default();
    let given = state
        .notices_given
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .copied();
    let outcome = evaluate(s, account.is_some(), given, now);
    if outcome.give_notice {
        state
            .notices_given
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, now);
    }
    let previous = s.status.clone().unwrap_or_default();

    if let (true, Some(account)) = (outcome.give_notice, &account) {
        give_notice(s, account, ctx).await;
    }
    // A withheld suspension is never named to the tenant (the Account's Events are theirs to read) nor
    // to the notification webhook: its lift shows only as the Account's conditions changing.
    if outcome.lifted_now && !s.spec.withhold_notice {
        if let Some(account) = &account {
            ctx.event(
                account,
                EventType::Normal,
                "SuspensionLifted",
                format!(
                    "suspension {} ended at its endAt; access is restored",
                    s.name_any()
                ),
            )
            .await;
        }
        notify(ctx, s, "Lifted", now);
    }
    if !crate::status::unchanged(&outcome.status, &previous) {
        super::patch_status::<Suspension>(ctx, &s.name_any(), &outcome.status).await?;
    }
    let next = terms::requeue_after([outcome.next_change], now, terms::MAX_REQUEUE);
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// Notice of the cause (§2.4): an Event on the Account, one in each tenant namespace, and the webhook.
async fn give_notice(s: &Suspension, account: &Account, ctx: &Context) {
    let note = format!(
        "account {} is suspended ({:?}, §2.4): {}{}",
        s.spec.account,
        s.spec.reason,
        s.spec.cause,
        s.spec
            .end_at
            .as_ref()
            .map(|e| format!("; until {}", terms::fmt_instant(e.0)))
            .unwrap_or_default()
    );
    // Each suspension's notice relates to that Suspension, so overlapping suspensions give distinct
    // Events (the recorder folds events with the same key into one series, keeping the first note).
    let related = s.object_ref(&());
    let ev = Event {
        type_: EventType::Warning,
        reason: "Suspended".into(),
        note: Some(note.clone()),
        action: "Suspend".into(),
        secondary: Some(related.clone()),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &account.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish the suspension notice on the Account");
    }
    // Events in a tenant namespace must regard an object there: the freeze quota the suspension adds.
    // Only in the namespaces the account owns (declared and self-made): a name in its spec that
    // someone else holds is not its, and the notice is none of that holder's business.
    let stores = &ctx.stores;
    let mut owned: Vec<String> = stores
        .index
        .namespaces
        .objects(&stores.namespaces, &account.name_any())
        .iter()
        .filter(|n| crate::model::account::owns(account, n))
        .map(|n| n.name_any())
        .collect();
    owned.sort();
    for ns in owned {
        let quota = ResourceQuota {
            metadata: kube::api::ObjectMeta {
                name: Some(FREEZE_QUOTA_NAME.into()),
                namespace: Some(ns),
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: "Suspended".into(),
            note: Some(note.clone()),
            action: "Suspend".into(),
            secondary: Some(related.clone()),
        };
        if let Err(e) = ctx.recorder.publish(&ev, &quota.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish the suspension notice in a tenant namespace");
        }
    }
    notify(ctx, s, "Suspended", ctx.clock.now());
}

/// POSTs the notice to the configured webhook in the background, retrying with backoff; a failure is
/// reported as a Warning event and never blocks the suspension.
fn notify(ctx: &Context, s: &Suspension, event: &str, at: jiff::Timestamp) {
    let Some(url) = ctx.settings.notify_url.clone() else {
        return;
    };
    let body = json!({
        "event": event,
        "suspension": s.name_any(),
        "account": s.spec.account,
        "reason": s.spec.reason,
        "cause": if s.spec.withhold_notice { None } else { Some(&s.spec.cause) },
        "startAt": s.spec.start_at,
        "endAt": s.spec.end_at,
        "at": terms::fmt_instant(at),
    });
    let recorder = ctx.recorder.clone();
    let reference = s.object_ref(&());
    let event = event.to_string();
    let client = ctx.http.clone();
    tokio::spawn(async move {
        use backon::Retryable;
        // Six attempts, 1 s doubling up to a minute between them (with jitter).
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(5)
            .with_jitter();
        let post = || async {
            let r = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", r.status()))
            }
        };
        let Err(last) = post.retry(backoff).sleep(tokio::time::sleep).await else {
            return;
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: "NotificationFailed".into(),
            note: Some(format!(
                "the notification webhook did not accept the {event} notice after 6 attempts: {last}"
            )),
            action: "Notify".into(),
            secondary: None,
        };
        let _ = recorder.publish(&ev, &reference).await;
    });
}
