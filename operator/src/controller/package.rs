//! The SupportPackage controller: each package's account count and whether it is a usable default.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;

use super::{Context, ControllerFuture, Shutdown, Watches, valid};
use crate::api::{SupportPackage, SupportPackageStatus};
use crate::error::Error;
use crate::model::package::{account_count, package_ready};
use crate::status::merge;

/// Builds the SupportPackage controller; any account or package change rechecks every package.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let stores = ctx.stores.clone();
    let all = move || {
        stores
            .packages
            .state()
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
    };
    let all2 = all.clone();
    let (tx, deleted) = futures::channel::mpsc::unbounded();
    for_all_on_delete(w, tx, all.clone());
    let controller =
        Controller::for_shared_stream(w.packages.subscribe(), ctx.stores.packages.clone())
            .with_config(
                kube::runtime::controller::Config::default()
                    .concurrency(2)
                    .debounce(std::time::Duration::from_millis(500)),
            )
            .watches_shared_stream(w.accounts.subscribe(), move |_| all())
            .watches_shared_stream(w.packages.subscribe(), move |_| all2())
            .reconcile_on(deleted)
            .graceful_shutdown_on(shutdown);
    super::run_guarded(controller, ctx, ())
}

pub(super) async fn reconcile(package: &SupportPackage, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let packages = valid(&ctx.stores.packages);
    // Counted on the cache's own objects: nothing cloned per account.
    let accounts = ctx.stores.accounts.state();
    let previous = package.status.clone().unwrap_or_default();
    let status = SupportPackageStatus {
        observed_generation: package.metadata.generation,
        accounts: account_count(
            package,
            accounts.iter().filter_map(|g| g.0.as_ref().ok()),
            &packages,
        ),
        conditions: merge(
            &previous.conditions,
            {
                let ready = package_ready(package, &packages);
                let stalled = crate::status::stalled(&ready);
                vec![ready, stalled]
            },
            package.metadata.generation,
            now,
        ),
    };
    if !crate::status::unchanged(&status, &previous) {
        super::patch_status::<SupportPackage>(ctx, &package.name_any(), &status).await?;
    }
    Ok(Action::await_change())
}

/// A deleted account or package changes the counts and defaults of every package.
fn for_all_on_delete(
    w: &mut Watches,
    tx: futures::channel::mpsc::UnboundedSender<ObjectRef<DeserializeGuard<SupportPackage>>>,
    all: impl Fn() -> Vec<ObjectRef<DeserializeGuard<SupportPackage>>> + Clone + Send + Sync + 'static,
) {
    let (t, a) = (tx.clone(), all.clone());
    w.accounts
        .on_delete(move |_| a().into_iter().for_each(|r| drop(t.unbounded_send(r))));
    w.packages
        .on_delete(move |_| all().into_iter().for_each(|r| drop(tx.unbounded_send(r))));
}
