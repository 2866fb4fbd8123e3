//! The DeprecationNotice controller: records when notice was served (once), and keeps the window,
//! effective and per-account decision status exact, requeueing at the next boundary.

use std::sync::Arc;

use covenant_terms as terms;
use futures::{FutureExt, StreamExt};
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Context, ControllerFuture, Watches};
use crate::api::{DeprecationNotice, FIELD_MANAGER};
use crate::error::{Error, Result};
use crate::model::notice::evaluate;

const KIND: &str = "DeprecationNotice";

/// Builds the DeprecationNotice controller; an account change rechecks the notices (decisions and
/// selection depend on the account's labels and responses).
pub fn controller(
    ctx: Arc<Context>,
    w: &mut Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> ControllerFuture {
    let stores = ctx.stores.clone();
    let all = move |_: ()| {
        stores
            .notices
            .state()
            .iter()
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect::<Vec<_>>()
    };
    // A deleted account leaves every notice's account list.
    let (tx, deleted) = futures::channel::mpsc::unbounded();
    {
        let all = all.clone();
        w.accounts
            .on_delete(move |_| all(()).into_iter().for_each(|r| drop(tx.unbounded_send(r))));
    }
    Controller::for_shared_stream(w.notices.subscribe(), ctx.stores.notices.clone())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency),
        )
        .watches_shared_stream(w.accounts.subscribe(), move |_| all(()))
        .reconcile_on(deleted)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .boxed()
}

fn error_policy(
    _: Arc<DeserializeGuard<DeprecationNotice>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(error = %err.chain(), "notice reconcile failed");
    ctx.metrics.error(KIND, err.category());
    Action::requeue(super::requeue_after_error(err))
}

async fn reconcile(
    guard: Arc<DeserializeGuard<DeprecationNotice>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let Ok(notice) = &guard.0 else {
        return Ok(Action::await_change());
    };
    if !ctx.synced() {
        return Ok(Action::requeue(super::NOT_SYNCED_REQUEUE));
    }
    let started = std::time::Instant::now();
    let now = ctx.clock.now();
    let accounts = ctx.stores.accounts.state();
    let outcome = evaluate(
        notice,
        accounts.iter().filter_map(|g| g.0.as_ref().ok()),
        now,
    );
    let previous = notice.status.clone().unwrap_or_default();
    if !crate::status::unchanged(&outcome.status, &previous) {
        for c in &outcome.status.conditions {
            let before = previous.conditions.iter().find(|p| p.type_ == c.type_);
            if before.is_none_or(|b| b.status != c.status) {
                let warn = c.status == "False" && c.reason != "Pending";
                ctx.event(
                    notice,
                    if warn {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    &c.reason,
                    c.message.clone(),
                )
                .await;
            }
        }
        for a in &outcome.status.accounts {
            let before = previous.accounts.iter().find(|p| p.name == a.name);
            if before.is_some_and(|b| b.decision != a.decision) {
                let when = outcome
                    .status
                    .rejection_deadline
                    .as_ref()
                    .map(|d| terms::fmt_instant(d.0))
                    .unwrap_or_default();
                ctx.event(
                    notice,
                    EventType::Normal,
                    &format!("{:?}", a.decision),
                    format!(
                        "account {} is now {:?} (deadline {when})",
                        a.name, a.decision
                    ),
                )
                .await;
            }
        }
        let api: Api<DeprecationNotice> = Api::all(ctx.client.clone());
        let patch = json!({ "apiVersion": "covenant.dev/v1alpha1", "kind": KIND, "status": outcome.status });
        api.patch_status(
            &notice.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.metrics.write(KIND);
    }
    ctx.metrics.observe(KIND, started.elapsed());
    ctx.metrics.set_notices(
        ctx.stores
            .notices
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok()),
    );
    let next = terms::requeue_after([outcome.next_change], now, terms::MAX_REQUEUE);
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}
