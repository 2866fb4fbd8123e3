//! Running tenants against their tier's policies: a package tightened (or an Account narrowed) after a
//! tenant's pods were admitted never deletes or changes them; the pods whose images the tier no longer
//! allows are reported on the Account (condition `PoliciesCompliant=False` naming them, with a Warning
//! Event), and the condition turns True again once none is left.
//!
//! One loop, woken by namespace changes (the operator rewrites a tenant namespace's policy annotations
//! when its effective policy changes). A namespace is checked again only when its registries
//! annotation changed since this process last checked it, or while it holds offending pods (every 20
//! s, so the report clears once they are replaced). Pods are tenant-written, so they are never
//! cached: they are listed page by page (100 at a time) and judged by the shipped
//! `covenant-images` policy text with kube's CEL engine (the same implementation the API server and
//! `covenant check` run); only the offending pods' names and messages are kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::ACCOUNT_LABEL;
use crate::error::Error;
use crate::model::policies::{
    COMPLIANCE_CONDITION, COMPLIANCE_FIELD_MANAGER, POLICY_PACKAGE_ANNOTATION,
    REGISTRIES_ANNOTATION, noncompliance_message,
};

const KIND: &str = "Compliance";

/// The condition this loop reports on Accounts.
const REPORT: super::OwnCondition = super::OwnCondition {
    type_: COMPLIANCE_CONDITION,
    field_manager: COMPLIANCE_FIELD_MANAGER,
    false_reason: "NotAllowedByTier",
    true_reason: "Compliant",
    true_message: "every pod of the account complies with its tier's policies",
};
/// How long a burst of namespace changes may go on before a pass.
const SETTLE: Duration = Duration::from_secs(1);
/// How often the namespaces that hold offending pods are listed again while any do.
const RECHECK: Duration = Duration::from_secs(20);
/// Pods per list page.
const PAGE: u32 = 100;

/// Builds the compliance loop.
pub fn controller(ctx: Arc<Context>, w: &mut Watches, shutdown: Shutdown) -> ControllerFuture {
    let namespaces = w.namespaces.subscribe();
    let wake = Arc::new(tokio::sync::Notify::new());
    let triggers = {
        let wake = wake.clone();
        namespaces.for_each(move |_| {
            wake.notify_one();
            std::future::ready(())
        })
    };
    let run = {
        let ctx = ctx.clone();
        async move {
            let policy = crate::admission::policies(crate::admission::WORKLOAD_POLICIES)
                .ok()
                .and_then(|p| {
                    p.into_iter()
                        .find(|p| p["metadata"]["name"] == "covenant-images")
                });
            let Some(policy) = policy else {
                tracing::error!(
                    "the built-in covenant-images policy cannot be read: compliance is not reported"
                );
                return;
            };
            let mut state = State::default();
            loop {
                if state.checked.values().any(|(_, found)| !found.is_empty()) {
                    // Offending pods may go away without the namespace changing: look again.
                    let _ = tokio::time::timeout(RECHECK, wake.notified()).await;
                } else {
                    wake.notified().await;
                }
                tokio::time::sleep(SETTLE).await;
                while !ctx.synced() {
                    tokio::time::sleep(super::NOT_SYNCED_REQUEUE).await;
                }
                let started = std::time::Instant::now();
                if let Err(e) = pass(&ctx, &policy, &mut state).await {
                    super::on_error(KIND, "", &e, &ctx);
                    tokio::time::sleep(super::requeue_after_error(&e)).await;
                    wake.notify_one();
                }
                ctx.metrics.observe(KIND, started.elapsed());
            }
        }
    };
    async move {
        tokio::select! {
            _ = shutdown => {}
            _ = triggers => {}
            _ = run => {}
        }
    }
    .boxed()
}

/// What this process has found: per namespace, the registries annotation it was checked against and
/// its offending pods; per account, the message it last reported.
#[derive(Default)]
struct State {
    checked: BTreeMap<String, (String, Vec<String>)>,
    reported: BTreeMap<String, Option<String>>,
}

/// The offending pods of `ns` (`ns/pod: message`), judged against `namespace`'s annotations.
async fn offending(
    ctx: &Context,
    policy: &Value,
    ns: &str,
    namespace: &Value,
) -> Result<Vec<String>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.map_err(|e| Error::Observe {
            object: format!("pods in {ns}"),
            source: e.into(),
        })?;
        for pod in &page.items {
            let Some(spec) = &pod.spec else { continue };
            // Only what the policy reads: the name and the containers' images.
            let trimmed = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name_any(), "namespace": ns},
                "spec": {
                    "containers": spec.containers.iter().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>(),
                    "initContainers": spec.init_containers.iter().flatten().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>(),
                    "ephemeralContainers": spec.ephemeral_containers.iter().flatten().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>(),
                },
            });
            match crate::admission::evaluate(policy, &trimmed, None, namespace, "covenant") {
                Ok(denied) => found.extend(
                    denied
                        .into_iter()
                        .map(|m| format!("{ns}/{}: {m}", pod.name_any())),
                ),
                Err(e) => found.push(format!("{ns}/{}: cannot be judged: {e}", pod.name_any())),
            }
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(found);
        }
    }
}

async fn pass(ctx: &Context, policy: &Value, state: &mut State) -> Result<(), Error> {
    let mut failed = None;
    let mut accounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut live = Vec::new();
    for ns in ctx.stores.namespaces.state() {
        let Some(account) = ns.labels().get(ACCOUNT_LABEL).cloned() else {
            continue;
        };
        let name = ns.name_any();
        live.push(name.clone());
        let annotations = ns.annotations();
        let fingerprint = [REGISTRIES_ANNOTATION, POLICY_PACKAGE_ANNOTATION]
            .map(|k| annotations.get(k).cloned().unwrap_or_default())
            .join("\n");
        let stale = state
            .checked
            .get(&name)
            .is_none_or(|(f, _)| f != &fingerprint);
        if stale {
            let found = if annotations.contains_key(REGISTRIES_ANNOTATION) {
                let namespace = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "annotations": annotations},
                });
                match offending(ctx, policy, &name, &namespace).await {
                    Ok(f) => f,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            state.checked.insert(name.clone(), (fingerprint, found));
        }
        if let Some((_, found)) = state.checked.get(&name) {
            accounts
                .entry(account)
                .or_default()
                .extend(found.iter().cloned());
        }
    }
    state.checked.retain(|n, _| live.contains(n));
    for guard in ctx.stores.accounts.state() {
        let Ok(account) = &guard.0 else { continue };
        let message = accounts
            .get(&account.name_any())
            .and_then(|f| noncompliance_message(f));
        if let Err(e) =
            super::report_condition(ctx, account, &REPORT, message, &mut state.reported).await
        {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}
