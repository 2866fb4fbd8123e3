//! The NoticeResponse controller: says on each tenant answer what became of it (the account's answer,
//! superseded by a later one, given after the deadline, ...). The decisions themselves are folded into
//! the notice's and the Account's status by their own controllers, from the same answers.

use std::sync::Arc;

use covenant_terms as terms;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::{DeprecationNotice, NoticeResponse};
use crate::error::Error;
use crate::model::notice::response_status;

const KIND: &str = "NoticeResponse";

/// Builds the NoticeResponse controller. A response's verdict depends on the other answers of its
/// account to the same notice and on the notice itself.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    // A notice: only a change of what a verdict reads of it (its spec, its service as recorded, its
    // identity) rechecks the answers that name it; its counts change with every answer.
    let by_notice = {
        let stores = ctx.stores.clone();
        let seen = super::Seen::default();
        move |n: Arc<DeserializeGuard<DeprecationNotice>>| {
            let Ok(n) = &n.0 else { return Vec::new() };
            let name = n.name_any();
            if !seen.changed(&name, &crate::model::notice::read_by_accounts(n)) {
                return Vec::new();
            }
            stores
                .responses
                .state()
                .iter()
                .filter(|g| g.0.as_ref().is_ok_and(|r| r.spec.notice == name))
                .map(|g| ObjectRef::from_obj(g.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    // A new answer supersedes the one that stood: that one (its account's answer to the same notice
    // that says it stands) is rechecked, not every earlier answer, so a tenant answering again and
    // again costs the operator a bounded amount each time.
    let by_sibling = {
        let stores = ctx.stores.clone();
        move |r: Arc<DeserializeGuard<NoticeResponse>>| {
            let Ok(r) = &r.0 else { return Vec::new() };
            let Some(account) = r
                .metadata
                .namespace
                .as_deref()
                .and_then(|ns| stores.account_of_namespace(ns))
            else {
                return Vec::new();
            };
            stores
                .index
                .namespaces
                .refs(&account)
                .iter()
                .flat_map(|ns| stores.index.responses.objects(&stores.responses, &ns.name))
                .filter(|g| {
                    g.0.as_ref().is_ok_and(|o| {
                        o.spec.notice == r.spec.notice
                            && o.status.as_ref().is_some_and(|s| {
                                s.conditions
                                    .iter()
                                    .any(|c| c.type_ == "Honoured" && c.status == "True")
                            })
                    })
                })
                .map(|g| ObjectRef::from_obj(g.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let controller =
        Controller::for_shared_stream(w.responses.subscribe(), ctx.stores.responses.clone())
            .with_config(
                kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency),
            )
            .watches_shared_stream(w.notices.subscribe(), by_notice)
            .watches_shared_stream(w.responses.subscribe(), by_sibling)
            .graceful_shutdown_on(shutdown);
    super::run_guarded(controller, ctx, ())
}

pub(super) async fn reconcile(response: &NoticeResponse, ctx: &Context) -> Result<Action, Error> {
    // An answer's verdict counts from its creation: one the cache holds without it waits.
    if response.metadata.creation_timestamp.is_none() {
        return Ok(Action::requeue(super::NOT_SYNCED_REQUEUE));
    }
    let ns = response.namespace().unwrap_or_default();
    let account = ctx.stores.owner_of(&ns);
    let notice = ctx
        .stores
        .notices
        .get(&ObjectRef::new(&response.spec.notice))
        .and_then(|g| g.0.as_ref().ok().cloned());
    let answers = account
        .as_ref()
        .map(|a| ctx.stores.answers(a))
        .unwrap_or_default();
    let (status, next) = response_status(
        response,
        account.as_ref(),
        notice.as_ref(),
        &answers,
        ctx.clock.now(),
    );
    let previous = response.status.clone().unwrap_or_default();
    if !crate::status::unchanged(&status, &previous) {
        let name = response.name_any();
        super::patch_status_in(
            ctx,
            Api::<NoticeResponse>::namespaced(ctx.client.clone(), &ns),
            &name,
            &format!("{KIND} {ns}/{name}"),
            &status,
        )
        .await?;
    }
    let next = terms::requeue_after([next], ctx.clock.now(), terms::MAX_REQUEUE);
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}
