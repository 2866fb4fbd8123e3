//! Self-service namespaces, the I/O around [`crate::model::selfservice`]: find the namespaces labelled
//! with an account's name, take (claim) those it accepts, refuse (delete) the others, and report.
//!
//! Found in the cache (the namespace watch, indexed by the request label). When one is neither taken
//! nor being deleted, the labelled namespaces are listed from the API server (a handful: the API
//! server admits them only while the account has room) and the decision is made on that list, so a
//! cache that lags behind Covenant's own claims never lets the account past its cap. Every claim and
//! every refusal is conditional on the resourceVersion the decision read.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::{Account, TENANT_REQUEST_LABEL};
use crate::error::Result;
use crate::model::account::{Desired, SUBJECTS_ENFORCED_ANNOTATION};
use crate::model::selfservice::{self as model, Candidate, Plan};

/// The account a namespace event concerns: the one it is labelled with (a managed namespace), or the
/// one a self-service request names.
pub fn namespace_owner(
    ns: Arc<Namespace>,
) -> Option<ObjectRef<kube::core::DeserializeGuard<Account>>> {
    super::account_of(ns.as_ref())
        .or_else(|| model::requested_for(&ns).map(str::to_string))
        .map(|a| ObjectRef::new(&a))
}

/// The index key of a namespace: the account its request label names.
pub fn request_key(ns: &Namespace) -> Option<String> {
    model::requested_for(ns).map(str::to_string)
}

/// The Account other than `account` that declares `ns` in its spec, from the cache.
fn declared_by_other(ctx: &Context, account: &str, ns: &str) -> Option<String> {
    ctx.stores.accounts.state().iter().find_map(|g| {
        let a = g.0.as_ref().ok()?;
        let name = a.name_any();
        (name != account && a.desired_namespaces().iter().any(|n| n == ns)).then_some(name)
    })
}

/// An Event about `account` that names the namespace `ns` as its related object: one per namespace
/// (events about the same object with the same reason and no related object form one series, which
/// would keep only the first namespace's note).
async fn event_about(
    ctx: &Context,
    account: &Account,
    ns: &str,
    type_: EventType,
    reason: &str,
    note: String,
) {
    use kube::Resource;
    let related = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Namespace".into()),
        name: Some(ns.to_string()),
        ..Default::default()
    };
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: reason.to_string(),
        secondary: Some(related),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &account.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "cannot publish event");
    }
}

/// The namespaces labelled with the account's name (the candidates its administrators made), and for
/// each one not yet decided the other Account that declares it, if one does. From the cache; listed
/// afresh from the API server when one is neither taken nor being deleted, so a cache that lags
/// behind Covenant's own claims never lets the account past its cap.
pub async fn candidates(
    account: &Account,
    ctx: &Context,
) -> Result<(Vec<Candidate>, std::collections::BTreeMap<String, String>)> {
    let name = account.name_any();
    let s = &ctx.stores;
    let cached = s.index.self_service.objects(&s.namespaces, &name);
    let undecided = cached.iter().any(|n| {
        n.metadata.deletion_timestamp.is_none()
            && !n
                .annotations()
                .contains_key(crate::api::ACCOUNT_UID_ANNOTATION)
    });
    let candidates: Vec<Candidate> = if undecided {
        let lp = ListParams::default().labels(&format!("{TENANT_REQUEST_LABEL}={name}"));
        Api::<Namespace>::all(ctx.client.clone())
            .list_metadata(&lp)
            .await?
            .items
            .iter()
            .filter(|m| m.labels().get(TENANT_REQUEST_LABEL) == Some(&name))
            .map(|m| {
                Candidate::of(&Namespace {
                    metadata: m.metadata.clone(),
                    ..Default::default()
                })
            })
            .collect()
    } else {
        cached.iter().map(|n| Candidate::of(n)).collect()
    };
    let declared = candidates
        .iter()
        .filter(|c| c.uid.is_none() && !c.terminating)
        .filter_map(|c| Some((c.name.clone(), declared_by_other(ctx, &name, &c.name)?)))
        .collect();
    Ok((candidates, declared))
}

/// Takes the namespaces the plan accepts: one merge patch each, conditional on the resourceVersion
/// read, that gives it every label and annotation the account's namespaces carry (its Pod Security
/// level and the policies' annotations included, before anything is granted in it). A namespace that
/// cannot be taken is returned: nothing is provisioned in it.
pub async fn claim(
    account: &Account,
    plan: &Plan,
    desired: &Desired,
    ctx: &Context,
) -> Vec<String> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut failed = Vec::new();
    for (ns, rv) in &plan.claim {
        let Some(want) = desired.namespaces.iter().find(|n| &n.name_any() == ns) else {
            failed.push(ns.clone());
            continue;
        };
        let mut annotations = want.annotations().clone();
        // Not marked as checked: the next reconcile sweeps its bindings as for any namespace new to it.
        annotations.remove(SUBJECTS_ENFORCED_ANNOTATION);
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": rv,
                "labels": want.labels(),
                "annotations": annotations,
            }
        });
        let r = match ctx.confirm_leading().await {
            Ok(()) => api
                .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(crate::error::Cause::from),
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => {
                ctx.metrics.write("Namespace");
                event_about(
                    ctx,
                    account,
                    ns,
                    EventType::Normal,
                    "NamespaceAccepted",
                    format!(
                        "namespace {ns} created by an administrator is now the account's ({} of {} namespaces)",
                        plan.count, plan.cap
                    ),
                )
                .await;
            }
            Err(e) => {
                tracing::info!(account = %account.name_any(), namespace = %ns, error = %e, "cannot take a self-made namespace now (retried)");
                failed.push(ns.clone());
            }
        }
    }
    failed
}

/// Refuses what the plan refuses: deletes each namespace, only as it was read (resourceVersion and
/// UID preconditions: one taken or changed since is left alone), with a Warning Event that names it
/// and says why. This is the one case where Covenant deletes a namespace it did not create: one an
/// administrator made moments ago with the request label for this account, in which nobody but the
/// API server's own controllers has written anything (Covenant grants nothing inside it before it is
/// taken).
pub async fn refuse(account: &Account, plan: &Plan, ctx: &Context) {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for (ns, rv, why) in &plan.refuse {
        let Ok(Some(current)) = api.get_metadata_opt(ns).await else {
            continue;
        };
        if current.metadata.resource_version.as_ref() != rv.as_ref()
            || current.labels().get(TENANT_REQUEST_LABEL) != Some(&account.name_any())
            || current
                .annotations()
                .contains_key(crate::api::ACCOUNT_UID_ANNOTATION)
        {
            continue;
        }
        let n = Namespace {
            metadata: current.metadata,
            ..Default::default()
        };
        match super::delete_namespace(ctx, &n).await {
            Ok(()) => {
                event_about(
                    ctx,
                    account,
                    ns,
                    EventType::Warning,
                    "NamespaceRefused",
                    format!(
                        "namespace {ns} created by an administrator was refused and deleted: {why}"
                    ),
                )
                .await
            }
            Err(e) => {
                tracing::info!(account = %account.name_any(), namespace = %ns, error = %e, "cannot delete a refused namespace now (retried)");
            }
        }
    }
}
