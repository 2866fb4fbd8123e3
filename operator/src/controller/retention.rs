//! Deletes released namespaces when their retention ends (§6: kept up to 13 months), by a timer at
//! the `covenant.dev/retained-until` instant, also after restarts (the watch relists them).

use std::sync::Arc;

use covenant_terms as terms;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};

use super::{Context, ControllerFuture, Shutdown, Watches, account_of};
use crate::api::{ACCOUNT_LABEL, ACCOUNT_UID_ANNOTATION};
use crate::error::Error;
use crate::model::account::parse_retained_until;

const KIND: &str = "RetainedNamespace";

/// Builds the retention controller over the labelled namespaces.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    Controller::for_shared_stream(w.namespaces.subscribe(), ctx.stores.namespaces.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(2))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |ns, err, ctx| super::on_error(KIND, &ns.name_any(), err, &ctx),
            ctx,
        )
        .for_each(|_| async {})
        .boxed()
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Only namespaces Covenant created for an account (the UID annotation, which only the operator
    // can set) and then released.
    let (Some(_), Some(until)) = (account_of(ns.as_ref()), parse_retained_until(&ns)) else {
        return Ok(Action::await_change());
    };
    if !ns.annotations().contains_key(ACCOUNT_UID_ANNOTATION) {
        return Ok(Action::await_change());
    }
    if ns.metadata.deletion_timestamp.is_some() || !ns.labels().contains_key(ACCOUNT_LABEL) {
        return Ok(Action::await_change());
    }
    if !ctx.synced() {
        return Ok(Action::requeue(super::NOT_SYNCED_REQUEUE));
    }
    let now = ctx.clock.now();
    tracing::debug!(namespace = %ns.name_any(), %until, %now, "retained namespace");
    if now < until {
        let delay = terms::requeue_after([Some(until)], now, terms::MAX_REQUEUE);
        return Ok(delay
            .map(Action::requeue)
            .unwrap_or_else(Action::await_change));
    }
    super::delete_namespace(&ctx, &ns)
        .await
        .map_err(|source| Error::Release {
            object: format!("namespace {}", ns.name_any()),
            source,
        })?;
    tracing::info!(namespace = %ns.name_any(), "retention ended; namespace deleted");
    Ok(Action::await_change())
}
