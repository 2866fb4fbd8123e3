//! The Suspension controller (§2.4): validates the suspension, gives notice of the cause at once
//! (Events on the Account and in each tenant namespace, `status.noticeGivenAt`, the optional
//! webhook) unless withheld, and records when it was lifted. The Account controller applies and
//! lifts the suspension's effects; this one keeps the Suspension's own record.

use std::sync::Arc;
use std::time::Duration;

use covenant_terms as terms;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::{Account, Suspension, SuspensionPhase, SuspensionStatus};
use crate::error::Error;
use crate::model::account::FREEZE_QUOTA_NAME;
use crate::status::{Cond, merge};

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
    super::run_guarded(controller, ctx)
}

/// What the pure stage decides for one suspension.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The status to write.
    pub status: SuspensionStatus,
    /// Give notice of the cause now (it is in force, not withheld, and not given before).
    pub give_notice: bool,
    /// It was lifted by `endAt` just now (not recorded before).
    pub lifted_now: bool,
    /// When the answer changes next.
    pub next_change: Option<jiff::Timestamp>,
}

/// The Suspension's status at `now`, given whether its account exists (pure).
/// `given` is when this process already gave notice for this suspension, if its status does not
/// show it yet (the status write may not be in the cache): notice is then not given twice.
pub fn evaluate(
    s: &Suspension,
    account_exists: bool,
    given: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Outcome {
    let previous = s.status.clone().unwrap_or_default();
    let generation = s.metadata.generation;
    let start = s.spec.start_at.as_ref().map(|t| t.0);
    let end = s.spec.end_at.as_ref().map(|t| t.0);
    let w = terms::evaluate_suspension(start, end, now);
    let mut status = SuspensionStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let (phase, ready) = if !account_exists {
        (
            SuspensionPhase::Invalid,
            Cond::new(
                crate::status::types::READY,
                false,
                "AccountNotFound",
                format!(
                    "Account {:?} does not exist: fix spec.account (it is immutable: delete this Suspension and create another)",
                    s.spec.account
                ),
            ),
        )
    } else {
        match w.phase {
            terms::suspension::SuspensionPhase::Pending => (
                SuspensionPhase::Pending,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "Scheduled",
                    format!(
                        "starts at {}",
                        start.map(terms::fmt_instant).unwrap_or_default()
                    ),
                ),
            ),
            terms::suspension::SuspensionPhase::Active => (
                SuspensionPhase::Active,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "InForce",
                    match end {
                        Some(e) => format!(
                            "account {} suspended until {}",
                            s.spec.account,
                            terms::fmt_instant(e)
                        ),
                        None => format!(
                            "account {} suspended until this Suspension is deleted",
                            s.spec.account
                        ),
                    },
                ),
            ),
            terms::suspension::SuspensionPhase::Ended => (
                SuspensionPhase::Lifted,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "Lifted",
                    format!(
                        "lifted at {}",
                        end.map(terms::fmt_instant).unwrap_or_default()
                    ),
                ),
            ),
        }
    };
    let active = phase == SuspensionPhase::Active;
    let due = active && !s.spec.withhold_notice && previous.notice_given_at.is_none();
    let give_notice = due && given.is_none();
    if due {
        status.notice_given_at = Some(Time(given.unwrap_or(now)));
    }
    let lifted_now = phase == SuspensionPhase::Lifted && previous.lifted_at.is_none();
    if lifted_now {
        // The instant it ended, not when the operator noticed: stable across restarts.
        status.lifted_at = end.map(Time);
    }
    let notice = if s.spec.withhold_notice {
        Cond::new(
            "NoticeGiven",
            false,
            "Withheld",
            "notice of the cause is withheld to the extent the law requires (§2.4, LegalCompliance)",
        )
    } else if let Some(t) = &status.notice_given_at {
        Cond::new(
            "NoticeGiven",
            true,
            "Given",
            format!(
                "the client was told the cause at {}",
                terms::fmt_instant(t.0)
            ),
        )
    } else {
        Cond::new(
            "NoticeGiven",
            false,
            "NotInForce",
            "notice is given when the suspension takes effect",
        )
    };
    status.phase = Some(phase);
    // An unknown account is fixed only by a person (kstatus: Failed, not InProgress forever).
    let stalled = crate::status::stalled(&ready);
    status.conditions = merge(
        &previous.conditions,
        vec![ready, stalled, notice],
        generation,
        now,
    );
    Outcome {
        status,
        give_notice,
        lifted_now,
        next_change: if account_exists { w.next_change } else { None },
    }
}

pub(super) async fn reconcile(s: &Suspension, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let account = ctx
        .stores
        .accounts
        .get(&ObjectRef::new(&s.spec.account))
        .and_then(|g| g.0.as_ref().ok().cloned());
    let uid = s.uid().unwrap_or_default();
    let given = ctx
        .notices_given
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .copied();
    let outcome = evaluate(s, account.is_some(), given, now);
    if outcome.give_notice {
        ctx.notices_given
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, now);
    }
    let previous = s.status.clone().unwrap_or_default();

    if let (true, Some(account)) = (outcome.give_notice, &account) {
        give_notice(s, account, ctx).await;
    }
    if outcome.lifted_now {
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
    for ns in account.desired_namespaces() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SuspensionReason, SuspensionSpec};

    fn suspension(start: Option<&str>, end: Option<&str>, withhold: bool) -> Suspension {
        let mut s = Suspension::new(
            "s",
            SuspensionSpec {
                account: "acme".into(),
                reason: SuspensionReason::LegalCompliance,
                cause: "court order 42".into(),
                withhold_notice: withhold,
                start_at: start.map(|t| Time(t.parse().unwrap())),
                end_at: end.map(|t| Time(t.parse().unwrap())),
                scale_workloads: false,
            },
        );
        s.metadata.generation = Some(1);
        s
    }

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn notice_is_given_once_when_the_suspension_takes_effect() {
        let s = suspension(Some("2027-01-01T00:00:00Z"), None, false);
        let before = evaluate(&s, true, None, at("2026-12-31T23:59:59Z"));
        assert_eq!(before.status.phase, Some(SuspensionPhase::Pending));
        assert!(!before.give_notice);
        assert_eq!(before.next_change, Some(at("2027-01-01T00:00:00Z")));
        let mut s2 = s.clone();
        s2.status = Some(before.status);
        let during = evaluate(&s2, true, None, at("2027-01-01T00:00:00Z"));
        assert_eq!(during.status.phase, Some(SuspensionPhase::Active));
        assert!(during.give_notice);
        assert_eq!(
            during.status.notice_given_at,
            Some(Time(at("2027-01-01T00:00:00Z")))
        );
        s2.status = Some(during.status);
        let again = evaluate(&s2, true, None, at("2027-01-02T00:00:00Z"));
        assert!(!again.give_notice, "notice is given once");
        assert_eq!(
            again.status,
            s2.status.clone().unwrap(),
            "nothing changes at rest"
        );
    }

    #[test]
    fn withheld_notice_is_never_given() {
        let s = suspension(None, None, true);
        let o = evaluate(&s, true, None, at("2027-01-01T00:00:00Z"));
        assert!(!o.give_notice);
        assert!(o.status.notice_given_at.is_none());
        assert!(
            o.status
                .conditions
                .iter()
                .any(|c| c.type_ == "NoticeGiven" && c.reason == "Withheld")
        );
    }

    #[test]
    fn lifted_at_is_the_end_instant() {
        let s = suspension(None, Some("2027-01-01T00:00:00Z"), false);
        let o = evaluate(&s, true, None, at("2027-01-01T00:00:07Z"));
        assert_eq!(o.status.phase, Some(SuspensionPhase::Lifted));
        assert!(o.lifted_now);
        assert_eq!(o.status.lifted_at, Some(Time(at("2027-01-01T00:00:00Z"))));
    }

    #[test]
    fn notice_already_given_by_this_process_is_not_given_again() {
        let s = suspension(None, None, false);
        let first = at("2027-01-01T00:00:00Z");
        let o = evaluate(&s, true, Some(first), at("2027-01-01T00:00:02Z"));
        assert!(!o.give_notice);
        assert_eq!(
            o.status.notice_given_at,
            Some(Time(first)),
            "the first instant is kept"
        );
    }

    #[test]
    fn unknown_account_is_invalid() {
        let o = evaluate(
            &suspension(None, None, false),
            false,
            None,
            at("2027-01-01T00:00:00Z"),
        );
        assert_eq!(o.status.phase, Some(SuspensionPhase::Invalid));
        assert!(!o.give_notice);
        assert!(
            o.status
                .conditions
                .iter()
                .any(|c| c.reason == "AccountNotFound" && c.message.contains("acme"))
        );
    }
}
