//! The DeprecationNotice controller: records when notice was served (once), and keeps the window,
//! effective status and the counts per decision exact (each account's own decision is on its
//! Account), requeueing at the next boundary.

use std::sync::Arc;

use covenant_terms as terms;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::DeprecationNotice;
use crate::error::Error;
use crate::model::notice::evaluate;

/// How many times `--concurrency` notices are reconciled at once.
const NOTICE_FANOUT: u16 = 4;

/// Builds the DeprecationNotice controller; an account change rechecks the notices (decisions and
/// selection depend on the account's labels and responses).
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let stores = ctx.stores.clone();
    let all = move |_: ()| {
        stores
            .notices
            .state()
            .iter()
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect::<Vec<_>>()
    };
    // What each account last showed the notices (see below); forgotten when it is deleted, so a new
    // account of the same name is seen.
    let seen = super::Seen::default();
    // A deleted account leaves every notice's account list.
    let (tx, deleted) = futures::channel::mpsc::unbounded();
    {
        let (all, seen) = (all.clone(), seen.clone());
        w.accounts.on_delete(move |a| {
            if let Ok(a) = &a.0 {
                seen.forget(&a.name_any());
            }
            all(()).into_iter().for_each(|r| drop(tx.unbounded_send(r)))
        });
    }
    // Notices are few and many share a boundary (amendments that take effect on the same day): they
    // are reconciled NOTICE_FANOUT times as many at once as other kinds, so that none waits for a
    // turn at its instant.
    let controller =
        Controller::for_shared_stream(w.notices.subscribe(), ctx.stores.notices.clone())
            .with_config(
                kube::runtime::controller::Config::default()
                    .concurrency(ctx.settings.concurrency.saturating_mul(NOTICE_FANOUT)),
            )
            .watches_shared_stream(w.accounts.subscribe(), {
                // Only what a notice reads of an account (its labels, for selection, and its responses)
                // retriggers the notices: not every status write of every account.
                move |a: Arc<DeserializeGuard<crate::api::Account>>| {
                    let Ok(a) = &a.0 else { return Vec::new() };
                    if !seen.changed(
                        &a.name_any(),
                        &(a.metadata.labels.as_ref(), &a.spec.notice_responses),
                    ) {
                        return Vec::new();
                    }
                    all(())
                }
            })
            // A tenant's answer changes the decision of its account on the notice it names.
            .watches_shared_stream(
                w.responses.subscribe(),
                |r: Arc<DeserializeGuard<crate::api::NoticeResponse>>| {
                    r.0.as_ref().ok().map(|r| {
                        ObjectRef::<DeserializeGuard<DeprecationNotice>>::new(&r.spec.notice)
                    })
                },
            )
            .reconcile_on(deleted)
            .graceful_shutdown_on(shutdown);
    super::run_guarded(controller, ctx, ())
}

pub(super) async fn reconcile(notice: &DeprecationNotice, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let state = ctx.stores.accounts.state();
    let accounts: Vec<&crate::api::Account> =
        state.iter().filter_map(|g| g.0.as_ref().ok()).collect();
    let answers: Vec<_> = accounts.iter().map(|a| ctx.stores.answers(a)).collect();
    let outcome = evaluate(
        notice,
        accounts
            .iter()
            .copied()
            .zip(answers.iter().map(Vec::as_slice)),
        now,
    );
    let previous = notice.status.clone().unwrap_or_default();
    if !crate::status::unchanged(&outcome.status, &previous) {
        // The status first: a condition changes at its instant, then the Events tell about it.
        super::patch_status::<DeprecationNotice>(ctx, &notice.name_any(), &outcome.status).await?;
        if outcome.status.reserved_at != previous.reserved_at
            && let Some(at) = &outcome.status.reserved_at
        {
            ctx.event(
                notice,
                EventType::Warning,
                "ServedAgain",
                format!(
                    "effectiveAt moved earlier: the notice is served again at {}, and its windows count from then",
                    terms::fmt_instant(at.0)
                ),
            )
            .await;
        }
        let warning = |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
            Some(c.status == "False" && c.reason != "Pending")
        };
        ctx.announce(
            notice,
            &previous.conditions,
            &outcome.status.conditions,
            warning,
        )
        .await;
        // One Event per decision whose count rose (a deadline that passes for thousands of accounts
        // is one Event, not one per account). Counts only: the accounts and their decisions are on
        // the Accounts, and nothing about the notice names a tenant.
        if let Some(now) = &outcome.status.counts {
            let before = previous.counts.clone().unwrap_or_default();
            let when = outcome
                .status
                .rejection_deadline
                .as_ref()
                .map(|d| format!(" (deadline {})", terms::fmt_instant(d.0)))
                .unwrap_or_default();
            let totals = format!(
                "pending {}, accepted {}, deemed accepted {}, rejected {}",
                now.pending, now.accepted, now.deemed_accepted, now.rejected
            );
            for (decision, after, was) in [
                ("Accepted", now.accepted, before.accepted),
                (
                    "DeemedAccepted",
                    now.deemed_accepted,
                    before.deemed_accepted,
                ),
                ("Rejected", now.rejected, before.rejected),
            ] {
                if previous.counts.is_some() && after > was {
                    let note = format!(
                        "{} more account(s) {decision}{when}; now {totals}",
                        after - was
                    );
                    ctx.event(notice, EventType::Normal, decision, note).await;
                }
            }
        }
    }
    // Measured after the work, so a long reconcile does not make the next boundary late.
    let next = terms::requeue_after([outcome.next_change], ctx.clock.now(), terms::MAX_REQUEUE);
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}
