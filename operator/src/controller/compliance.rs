//! Running tenants against their tier's policies: a package tightened (or an Account narrowed) after a
//! tenant's objects were admitted never deletes or changes them; what the tier no longer allows is
//! reported on the Account (condition `PoliciesCompliant=False` naming each object and why, with a
//! Warning Event), and the condition turns True again once none is left:
//! - pods: images (`covenant-images`), PriorityClass, RuntimeClass, tolerations and a node label set
//!   against the forced one (`covenant-scheduling`), and a forced node label the pod lacks (it was
//!   scheduled before the tier forced it);
//! - PersistentVolumeClaims: StorageClass (`covenant-classes`);
//! - Ingresses: IngressClass (`covenant-classes`), hosts (`covenant-allowed-hostnames`) and
//!   configuration snippets (`covenant-ingress-snippets`);
//! - where the cluster serves the Gateway API (asked of discovery at each pass): Gateways
//!   (GatewayClass, `covenant-classes`; listener hostnames, `covenant-allowed-hostnames`), HTTPRoutes
//!   and GRPCRoutes (hostnames, `covenant-allowed-hostnames`).
//!
//! One loop, woken by namespace changes (the operator rewrites a tenant namespace's policy annotations
//! when its effective policy changes). A namespace is checked again only when its policy annotations
//! changed since this process last checked it, or while it holds offending objects (every 20 s, so the
//! report clears once they are replaced). Pods, claims, Ingresses, Gateways and routes are
//! tenant-written, so they are
//! never cached: they are listed page by page (100 at a time) and judged by the shipped policy text
//! with kube's CEL engine (the same implementation the API server and `covenant check` run), as a
//! CREATE would be now (with the defaults `covenant-default-classes` would set); only the offending
//! objects' names and messages are kept. A pod is judged without `spec.nodeName` (the scheduler sets
//! it on every running pod).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Context, ControllerFuture, Shutdown, Watches};
use crate::api::ACCOUNT_LABEL;
use crate::error::Error;
use crate::model::policies::{
    COMPLIANCE_CONDITION, COMPLIANCE_FIELD_MANAGER, COMPLIANCE_JUDGED_ANNOTATION,
    NODE_SELECTOR_ANNOTATION, POLICY_PACKAGE_ANNOTATION, is_policy_annotation,
    noncompliance_message, policies_fingerprint, unforced_labels,
};

/// The shipped policies that judge running objects.
const JUDGES: [&str; 5] = [
    "covenant-images",
    "covenant-scheduling",
    "covenant-classes",
    "covenant-allowed-hostnames",
    "covenant-ingress-snippets",
];

const KIND: &str = "Compliance";

/// The condition this loop reports on Accounts.
const REPORT: super::OwnCondition = super::OwnCondition {
    type_: COMPLIANCE_CONDITION,
    field_manager: COMPLIANCE_FIELD_MANAGER,
    false_reason: "NotAllowedByTier",
    true_reason: "Compliant",
    true_message: "every pod, claim, Ingress, Gateway and route of the account complies with its tier's policies",
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
            let policies: Vec<Value> =
                crate::admission::policies(crate::admission::WORKLOAD_POLICIES)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| JUDGES.iter().any(|n| p["metadata"]["name"] == *n))
                    .collect();
            if policies.len() != JUDGES.len() {
                tracing::error!(
                    "the built-in workload policies cannot be read: compliance is not reported"
                );
                return;
            }
            let mut state = State::default();
            loop {
                if state
                    .checked
                    .values()
                    .any(|(_, found, _)| !found.is_empty())
                {
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
                if let Err(e) = pass(&ctx, &policies, &mut state).await {
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

/// What this process has found: per namespace, the policy annotations it was checked against and
/// its offending objects; per account, the message it last reported.
#[derive(Default)]
struct State {
    /// Per namespace: a hash of the policy annotations it was checked against (one number, not
    /// the annotations, per namespace), its offending objects, and when.
    checked: BTreeMap<String, (u64, Vec<String>, std::time::Instant)>,
    reported: BTreeMap<String, Option<String>>,
}

/// Every object of `api`, page by page, each handed to `f`.
async fn each<K>(api: &Api<K>, what: &str, mut f: impl FnMut(&K)) -> Result<(), Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.map_err(|e| Error::Observe {
            object: what.to_string(),
            source: e.into(),
        })?;
        page.items.iter().for_each(&mut f);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Only the fields of `value` (an object's spec) named in `keys`.
fn only(value: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .filter_map(|k| value.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
    )
}

/// The offending objects of `ns` (`Kind ns/name: message`), judged against `namespace`'s annotations.
async fn offending(
    ctx: &Context,
    policies: &[Value],
    ns: &str,
    namespace: &Value,
    annotations: &BTreeMap<String, String>,
    served: &[super::gateway::Kind],
) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let mut judge = |kind: &str, name: &str, object: &Value| {
        for p in policies {
            if !crate::admission::matches(p, object, "CREATE") {
                continue;
            }
            match crate::admission::evaluate(p, object, None, namespace, "covenant") {
                Ok(denied) => found.extend(
                    denied
                        .into_iter()
                        .map(|m| format!("{kind} {ns}/{name}: {m}")),
                ),
                Err(e) => found.push(format!("{kind} {ns}/{name}: cannot be judged: {e}")),
            }
        }
    };
    let forced = annotations.get(NODE_SELECTOR_ANNOTATION);
    let package = annotations
        .get(POLICY_PACKAGE_ANNOTATION)
        .map_or("package's", String::as_str);
    let mut unforced = Vec::new();
    each(&Api::<Pod>::namespaced(ctx.client.clone(), ns), &format!("pods in {ns}"), |pod| {
        let Some(spec) = &pod.spec else { return };
        let name = pod.name_any();
        let s = serde_json::to_value(spec).unwrap_or_default();
        // Only what the policies read (not nodeName, which the scheduler sets on every running pod).
        let mut spec = only(&s, &["containers", "initContainers", "ephemeralContainers",
            "priorityClassName", "runtimeClassName", "nodeSelector", "tolerations"]);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(Value::Array(cs)) = spec.get_mut(list) {
                cs.iter_mut().for_each(|c| *c = only(c, &["name", "image"]));
            }
        }
        let trimmed = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        });
        judge("Pod", &name, &trimmed);
        if let Some(forced) = forced {
            let selector: BTreeMap<String, String> =
                serde_json::from_value(spec["nodeSelector"].clone()).unwrap_or_default();
            let labels = unforced_labels(forced, &selector);
            if !labels.is_empty() {
                unforced.push(format!(
                    "Pod {ns}/{name}: nodeSelector lacks {}, which the {package} tier forces (covenant-node-selector): it may run on any node",
                    labels.join(", ")
                ));
            }
        }
    })
    .await?;
    if annotations.contains_key("covenant.dev/allowed-storage-classes") {
        each(
            &Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns),
            &format!("persistentvolumeclaims in {ns}"),
            |pvc| {
                let name = pvc.name_any();
                let legacy: BTreeMap<&String, &String> = pvc
                    .annotations()
                    .iter()
                    .filter(|(k, _)| *k == "volume.beta.kubernetes.io/storage-class")
                    .collect();
                // A claim without storageClassName has no such key (not a null one).
                let spec = serde_json::to_value(&pvc.spec).unwrap_or_default();
                let trimmed = json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": ns, "annotations": legacy},
                    "spec": only(&spec, &["storageClassName"]),
                });
                judge(
                    "PersistentVolumeClaim",
                    &name,
                    &crate::check::with_defaults(&trimmed, annotations),
                );
            },
        )
        .await?;
    }
    // Snippets are refused in every tenant namespace unless allowed: judged wherever a tier restricts
    // anything (a namespace without policy annotations is not listed at all).
    each(
        &Api::<Ingress>::namespaced(ctx.client.clone(), ns),
        &format!("ingresses in {ns}"),
        |ing| {
            let name = ing.name_any();
            let spec = serde_json::to_value(&ing.spec).unwrap_or_default();
            let trimmed = json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": ns, "annotations": ing.annotations()},
                "spec": only(&spec, &["ingressClassName", "rules", "tls", "defaultBackend"]),
            });
            judge(
                "Ingress",
                &name,
                &crate::check::with_defaults(&trimmed, annotations),
            );
        },
    )
    .await?;
    for kind in served {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &kind.resource());
        each(&api, &format!("{} in {ns}", kind.plural), |o| {
            let name = o.name_any();
            let spec = o.data.get("spec").cloned().unwrap_or_default();
            let trimmed = json!({
                "apiVersion": kind.resource().api_version, "kind": kind.kind,
                "metadata": {"name": name, "namespace": ns},
                "spec": gateway_spec(kind, &spec),
            });
            judge(kind.kind, &name, &trimmed);
        })
        .await?;
    }
    found.extend(unforced);
    Ok(found)
}

/// Only what the policies read of a Gateway's or a route's spec: a Gateway's class and its listeners'
/// hostnames, a route's hostnames.
fn gateway_spec(kind: &super::gateway::Kind, spec: &Value) -> Value {
    if *kind == super::gateway::GATEWAY {
        let mut s = only(spec, &["gatewayClassName", "listeners"]);
        if let Some(Value::Array(ls)) = s.get_mut("listeners") {
            ls.iter_mut()
                .for_each(|l| *l = only(l, &["name", "hostname"]));
        }
        s
    } else {
        only(spec, &["hostnames"])
    }
}

/// The Gateway API kinds the compliance report lists, of those the API server serves.
async fn served_gateway_kinds(ctx: &Context) -> Result<Vec<super::gateway::Kind>, Error> {
    use super::gateway::{GATEWAY, GROUP, GRPC_ROUTE, HTTP_ROUTE, served_of};
    served_of(&ctx.client, &[GATEWAY, HTTP_ROUTE, GRPC_ROUTE])
        .await
        .map_err(|e| Error::Observe {
            object: format!("the discovery of {GROUP}"),
            source: e.into(),
        })
}

async fn pass(ctx: &Context, policies: &[Value], state: &mut State) -> Result<(), Error> {
    let mut failed = None;
    let mut served: Option<Vec<super::gateway::Kind>> = None;
    let mut accounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut live = std::collections::HashSet::new();
    for ns in ctx.stores.namespaces.state() {
        let Some(account) = ns.labels().get(ACCOUNT_LABEL).cloned() else {
            continue;
        };
        // Only a namespace Covenant made (or took) for this very Account: one that anyone else
        // labelled with an account is neither judged nor marked (Covenant never changes it).
        let owned = ctx
            .stores
            .accounts
            .get(&kube::runtime::reflector::ObjectRef::new(&account))
            .is_some_and(|g| {
                g.0.as_ref()
                    .is_ok_and(|a| crate::model::account::owns(a, &ns))
            });
        if !owned {
            continue;
        }
        let name = ns.name_any();
        live.insert(name.clone());
        let annotations: BTreeMap<String, String> = ns
            .annotations()
            .iter()
            .filter(|(k, _)| is_policy_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mark = policies_fingerprint(&annotations);
        let fingerprint = crate::model::fnv1a(mark.as_bytes());
        let marked = ns.annotations().get(COMPLIANCE_JUDGED_ANNOTATION);
        // Found compliant under these very policies before (by an earlier process, or as Covenant made
        // it, empty): every object made since was admitted under them. Not listed again.
        if !state.checked.contains_key(&name) && marked == Some(&mark) {
            state.checked.insert(
                name.clone(),
                (fingerprint, Vec::new(), std::time::Instant::now()),
            );
        }
        // Listed again when its policy changed, and every RECHECK while it holds offending objects
        // (they may have been replaced without the namespace changing); not on every namespace event,
        // which would judge the same objects again and again.
        let stale = state.checked.get(&name).is_none_or(|(f, found, at)| {
            *f != fingerprint || (!found.is_empty() && at.elapsed() >= RECHECK)
        });
        if stale {
            let found = if annotations.is_empty() {
                Vec::new()
            } else {
                let namespace = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "annotations": annotations},
                });
                if served.is_none() {
                    served = Some(served_gateway_kinds(ctx).await?);
                }
                let kinds = served.as_deref().unwrap_or_default();
                match offending(ctx, policies, &name, &namespace, &annotations, kinds).await {
                    Ok(f) => f,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                }
            };
            // The mark says what the next process may skip: these policies, when nothing offends;
            // nothing, when something does (a pass with other policies later must list it again).
            let want = found.is_empty().then_some(&mark);
            if marked != want
                && let Err(e) = super::mark_namespace(
                    ctx,
                    &name,
                    COMPLIANCE_JUDGED_ANNOTATION,
                    want.map(String::as_str),
                    COMPLIANCE_FIELD_MANAGER,
                )
                .await
            {
                failed.get_or_insert(Error::Apply {
                    object: format!("Namespace {name}"),
                    source: e.into(),
                });
            }
            state.checked.insert(
                name.clone(),
                (fingerprint, found, std::time::Instant::now()),
            );
        }
        if let Some((_, found, _)) = state.checked.get(&name) {
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
