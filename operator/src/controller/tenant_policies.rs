//! What a suspension (or a retention) does to the tenant's own NetworkPolicies, and what the lift
//! restores: every tenant policy is neutralised (its podSelector matches no pod) while the namespace is
//! suspended or retained, since a deny-all is void beside any allow, and the lift restores each one
//! exactly (the pure part, and why restoring the selector is exact: `crate::model::tenant_policies`).
//!
//! Trust, as for workloads (`super::workloads`): a record counts only under the namespace's token
//! ([`TOKEN_ANNOTATION`]), written fresh by the operator before it neutralises anything and removed only
//! after every policy was restored; tenants cannot write covenant.dev/* annotations on a NetworkPolicy
//! nor change a neutralised one (admission policy `covenant-tenant-network-policies`), nor anything in
//! a read-only namespace (`covenant-read-only`).
//!
//! Bounded: tenant policies are not cached (the operator watches only the policies it labelled); they
//! are listed a page at a time, and only their name, resourceVersion, podSelector and record are kept.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::error::{ApiErrorKind as K, Result};
use crate::metrics::Metrics;
use crate::model::tenant_policies::{
    NEUTRALISED_ANNOTATION, POLICIES_JUDGED_ANNOTATION, TOKEN_ANNOTATION, TenantPolicy,
    judged_fingerprint, neutralise_patch, recorded, restore_patch,
};

/// How many policies are read at once.
const PAGE: u32 = 100;

/// The tenant's policies in `ns`: those without Covenant's `covenant.dev/account` label.
async fn tenant_policies(client: &Client, ns: &str) -> Result<Vec<TenantPolicy>> {
    Ok(listed(client, ns)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// [`tenant_policies`], each with its spec (as JSON) for [`admitted`] to judge.
async fn listed(client: &Client, ns: &str) -> Result<Vec<(TenantPolicy, Value)>> {
    use futures::TryStreamExt;
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
    let lp = ListParams::default()
        .labels(&format!("!{}", crate::api::ACCOUNT_LABEL))
        .limit(PAGE);
    let mut pages = std::pin::pin!(super::paged(api, lp));
    let mut out = Vec::new();
    while let Some(p) = pages.try_next().await? {
        let spec = serde_json::to_value(&p.spec)?;
        out.push((
            TenantPolicy {
                name: p.name_any(),
                resource_version: p.resource_version(),
                record: p.annotations().get(NEUTRALISED_ANNOTATION).cloned(),
                pod_selector: p
                    .spec
                    .as_ref()
                    .map(|s| serde_json::to_value(&s.pod_selector))
                    .transpose()?
                    .unwrap_or_else(|| json!({})),
            },
            spec,
        ));
    }
    Ok(out)
}

/// The namespace's token (empty when none) and its resourceVersion.
async fn token(client: &Client, ns: &str) -> Result<(String, Option<String>)> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    let t = n
        .annotations()
        .get(TOKEN_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    Ok((t, n.resource_version()))
}

/// Patches every policy, all of them even when some fail (a policy gone is nothing to do). Returns
/// how many were changed, or the first error once all were tried.
async fn patch_all(
    client: &Client,
    ns: &str,
    patches: Vec<(String, Value)>,
    metrics: &Metrics,
) -> Result<usize> {
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
    let (mut changed, mut first_error) = (0, None);
    for (name, p) in patches {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
            .await
        {
            Ok(_) => {
                metrics.write("NetworkPolicy");
                changed += 1;
            }
            Err(e) if K::of(&e) == K::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(changed),
    }
}

/// Neutralises every tenant policy in `ns` (call once the namespace is read-only): the token first,
/// then each policy's record and neutral selector in one patch. Returns how many were neutralised.
pub async fn neutralise(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    let found = tenant_policies(client, ns).await?;
    if found.iter().all(|p| p.record.is_some()) {
        return Ok(0);
    }
    let (mut t, rv) = token(client, ns).await?;
    if t.is_empty() {
        t = super::workloads::fresh_token();
        // Only over the version that was read: two writers never leave two tokens.
        let p = json!({ "metadata": {
            "resourceVersion": rv,
            "annotations": { TOKEN_ANNOTATION: t }
        }});
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        metrics.write("Namespace");
    }
    let patches = found
        .iter()
        .filter_map(|p| neutralise_patch(p, &t).map(|patch| (p.name.clone(), patch)))
        .collect();
    patch_all(client, ns, patches, metrics).await
}

/// Restores every tenant policy in `ns` that has a trusted record and that the admission policy would
/// admit as written in `namespace` (the namespace as Covenant applies it: its policy annotations), then
/// removes the namespace's token once no record is left (a restart restores the rest). A policy
/// refused now stays neutralised ([`rejudge`] restores it when the context allows it again). Returns
/// how many were restored.
pub async fn restore(
    client: &Client,
    ns: &str,
    namespace: &Value,
    metrics: &Metrics,
) -> Result<usize> {
    let (t, _) = token(client, ns).await?;
    let found = listed(client, ns).await?;
    let mut kept = 0;
    let mut patches = Vec::new();
    for (p, spec) in &found {
        let Some(original) = recorded(p, &t) else {
            kept += usize::from(p.record.is_some());
            continue;
        };
        if refusals(&p.name, ns, spec, Some(&original), namespace).is_empty() {
            patches.extend(restore_patch(p, &t).map(|patch| (p.name.clone(), patch)));
        } else {
            kept += 1;
        }
    }
    let restored = patch_all(client, ns, patches, metrics).await?;
    if kept == 0 {
        let p = json!({ "metadata": { "annotations": { TOKEN_ANNOTATION: Value::Null } } });
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        metrics.write("Namespace");
    }
    Ok(restored)
}

/// What a re-judge changed in a namespace: the policies neutralised (with why the admission policy
/// refuses them now) and those restored.
#[derive(Debug, Default)]
pub struct Rejudged {
    pub neutralised: Vec<(String, Vec<String>)>,
    pub restored: Vec<String>,
    /// Every policy neutralised because it is refused now (those of [`Rejudged::neutralised`] too).
    pub held: Vec<(String, Vec<String>)>,
}

/// Judges every tenant policy in `ns` (not suspended) again with the admission policy as written, in
/// `namespace` as Covenant applies it: a policy it would refuse now (telephony withdrawn, a range
/// denied since, a namespace or platform selector gone) is neutralised exactly as a suspension does,
/// under the same token; a neutralised one it admits again is restored exactly. A record under
/// another token is left alone. Writes nothing when no verdict changed.
pub async fn rejudge(
    client: &Client,
    ns: &str,
    namespace: &Value,
    metrics: &Metrics,
) -> Result<Rejudged> {
    let found = listed(client, ns).await?;
    // The token is read only when a record may need it: the common namespace has no neutralised
    // policy, and most have no tenant policy at all.
    let (mut t, mut rv) = if found.iter().any(|(p, _)| p.record.is_some()) {
        token(client, ns).await?
    } else {
        (String::new(), None)
    };
    let mut out = Rejudged::default();
    let (mut neutralise, mut restore) = (Vec::new(), Vec::new());
    for (p, spec) in &found {
        let original = recorded(p, &t);
        if p.record.is_some() && original.is_none() {
            continue;
        }
        let refused = refusals(&p.name, ns, spec, original.as_ref(), namespace);
        match (&original, refused.is_empty()) {
            (None, false) => {
                neutralise.push(p);
                out.held.push((p.name.clone(), refused.clone()));
                out.neutralised.push((p.name.clone(), refused));
            }
            (Some(_), false) => out.held.push((p.name.clone(), refused)),
            (Some(_), true) => {
                restore.extend(restore_patch(p, &t).map(|patch| (p.name.clone(), patch)));
                out.restored.push(p.name.clone());
            }
            (None, true) => {}
        }
    }
    if !neutralise.is_empty() && t.is_empty() && rv.is_none() {
        (t, rv) = token(client, ns).await?;
    }
    if !neutralise.is_empty() && t.is_empty() {
        t = super::workloads::fresh_token();
        let p = json!({ "metadata": {
            "resourceVersion": rv,
            "annotations": { TOKEN_ANNOTATION: t }
        }});
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        metrics.write("Namespace");
    }
    let mut patches: Vec<(String, Value)> = neutralise
        .iter()
        .filter_map(|p| neutralise_patch(p, &t).map(|patch| (p.name.clone(), patch)))
        .collect();
    patches.extend(restore);
    patch_all(client, ns, patches, metrics).await?;
    Ok(out)
}

/// Why the admission policy `covenant-tenant-network-policies` would refuse the tenant policy `name`
/// (its `spec`, with `original` as its podSelector when Covenant neutralised it) as a CREATE by a
/// tenant in `namespace`; empty when it would admit it.
pub fn refusals(
    name: &str,
    ns: &str,
    spec: &Value,
    original: Option<&Value>,
    namespace: &Value,
) -> Vec<String> {
    static POLICIES: std::sync::OnceLock<Result<Vec<Value>, String>> = std::sync::OnceLock::new();
    let policies = match POLICIES
        .get_or_init(|| crate::admission::policies(crate::admission::TENANT_NETWORK_POLICIES))
    {
        Ok(p) => p,
        Err(e) => return vec![format!("the built-in admission policy: {e}")],
    };
    let mut spec = spec.clone();
    if let Some(o) = original {
        spec["podSelector"] = o.clone();
    }
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": ns },
        "spec": spec,
    });
    let mut out = Vec::new();
    for p in policies {
        if !crate::admission::matches(p, &object, "CREATE") {
            continue;
        }
        match crate::admission::evaluate(p, &object, None, namespace, "covenant:rejudge") {
            Ok(denied) => out.extend(denied),
            Err(e) => out.push(e),
        }
    }
    out
}

/// Whether the namespace (as cached) may hold neutralised policies to restore.
pub fn has_records(n: &Namespace) -> bool {
    n.annotations().contains_key(TOKEN_ANNOTATION)
}

/// The bounds quota of a namespace being retained, from the cache, with room for the deny-all (as
/// `crate::model::plan` gives the account's); `None` when the cache holds none.
pub fn bounds_with_room(
    account: &str,
    ns: &str,
    ctx: &super::Context,
) -> Option<k8s_openapi::api::core::v1::ResourceQuota> {
    use kube::runtime::reflector::ObjectRef;
    let cached = ctx
        .stores
        .quotas
        .get(&ObjectRef::new(crate::model::account::BOUNDS_QUOTA_NAME).within(ns))?
        .object()?;
    let mut hard = cached.spec.as_ref()?.hard.clone()?;
    if ctx
        .stores
        .network_policies
        .get(&ObjectRef::new(crate::model::account::SUSPENSION_POLICY).within(ns))
        .is_none()
    {
        crate::model::tenant_policies::with_room(&mut hard);
    }
    Some(crate::model::account::bounds_quota(
        account,
        ns,
        Some(&hard),
    ))
}

/// The policy annotations each namespace's tenant policies were last judged under (by namespace uid):
/// empty at start, so every namespace is judged once; after that only when they change.
/// With each, the policies held neutralised there (`name: why`) as last judged.
type Judged = std::collections::HashMap<String, (u64, Vec<String>)>;

fn judged() -> &'static std::sync::Mutex<Judged> {
    static JUDGED: std::sync::OnceLock<std::sync::Mutex<Judged>> = std::sync::OnceLock::new();
    JUDGED.get_or_init(Default::default)
}

/// The Account condition that names the tenant policies neutralised because they would no longer be
/// admitted.
pub const REJUDGE_CONDITION: &str = "TenantNetworkPoliciesAdmitted";

const REPORT: super::OwnCondition = super::OwnCondition {
    type_: REJUDGE_CONDITION,
    field_manager: "covenant-tenant-policies",
    false_reason: "NoLongerAdmitted",
    true_reason: "Admitted",
    true_message: "every tenant NetworkPolicy would be admitted as written now",
};

/// Reports on `account` the tenant policies held neutralised in `namespaces` (as last re-judged):
/// condition [`REJUDGE_CONDITION`], written only when it changes.
pub async fn report(
    account: &crate::api::Account,
    namespaces: &[Namespace],
    ctx: &super::Context,
) -> Result<(), crate::error::Error> {
    use kube::runtime::reflector::ObjectRef;
    static REPORTED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<String, Option<String>>>,
    > = std::sync::OnceLock::new();
    let mut held: Vec<String> = Vec::new();
    if let Ok(m) = judged().lock() {
        for n in namespaces {
            let uid = ctx
                .stores
                .namespaces
                .get(&ObjectRef::new(&n.name_any()))
                .and_then(|c| c.uid());
            if let Some((_, h)) = uid.and_then(|u| m.get(&u)) {
                held.extend(h.iter().cloned());
            }
        }
    }
    held.sort();
    let message = (!held.is_empty()).then(|| {
        format!(
            "{} tenant NetworkPolicy(ies) would no longer be admitted and select no pod until the \
             account allows them again (nothing deleted; delete or rewrite them): {}",
            held.len(),
            held.join("; ")
        )
    });
    let mut reported = REPORTED
        .get_or_init(Default::default)
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let r = super::report_condition(ctx, account, &REPORT, message, &mut reported).await;
    if let Ok(mut m) = REPORTED.get_or_init(Default::default).lock() {
        *m = reported;
    }
    r
}

/// Re-judges the tenant policies of `desired` (a namespace of `account` as Covenant applies it, not
/// suspended) when its annotations changed since the last judgement (or since start), and tells the
/// account which policies were neutralised and why, and which restored. Returns how many changed.
pub async fn rejudge_if_changed(
    account: &crate::api::Account,
    desired: &Namespace,
    ctx: &super::Context,
) -> Result<usize> {
    use kube::runtime::events::EventType;
    use kube::runtime::reflector::ObjectRef;
    let ns = desired.name_any();
    let Some(cached) = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(&ns))
        .filter(|n| crate::model::account::owns(account, n))
    else {
        return Ok(0);
    };
    let Some(uid) = cached.uid() else {
        return Ok(0);
    };
    let mark = judged_fingerprint(desired);
    let sum = crate::model::fnv1a(mark.as_bytes());
    let marked = cached.annotations().get(POLICIES_JUDGED_ANNOTATION);
    if let Ok(mut m) = judged().lock() {
        if m.get(&uid).is_some_and(|(h, _)| *h == sum) {
            return Ok(0);
        }
        // Judged under this very namespace before (by an earlier process, or as Covenant made it,
        // empty) with none held: every policy made since was admitted under it. Not listed again.
        if !m.contains_key(&uid) && marked == Some(&mark) {
            m.insert(uid, (sum, Vec::new()));
            return Ok(0);
        }
    }
    let namespace = serde_json::to_value(desired)?;
    let r = rejudge(&ctx.client, &ns, &namespace, &ctx.metrics).await?;
    // What the next process may skip: this namespace, when none is held; nothing otherwise.
    let want = r.held.is_empty().then_some(&mark);
    if marked != want {
        super::mark_namespace(
            ctx,
            &ns,
            POLICIES_JUDGED_ANNOTATION,
            want.map(String::as_str),
            crate::api::FIELD_MANAGER,
        )
        .await?;
    }
    for (name, why) in &r.neutralised {
        ctx.event(
            account,
            EventType::Warning,
            "TenantNetworkPolicyNeutralised",
            format!(
                "NetworkPolicy {ns}/{name} would no longer be admitted ({}); it now selects no pod \
                 (nothing deleted) and is restored exactly when the account allows it again",
                why.join("; ")
            ),
        )
        .await;
    }
    for name in &r.restored {
        ctx.event(
            account,
            EventType::Normal,
            "TenantNetworkPolicyRestored",
            format!("NetworkPolicy {ns}/{name} is admitted again and was restored as written"),
        )
        .await;
    }
    if let Ok(mut m) = judged().lock() {
        let held = r
            .held
            .iter()
            .map(|(name, why)| format!("{ns}/{name}: {}", why.join(", ")))
            .collect();
        m.insert(uid, (sum, held));
    }
    Ok(r.neutralised.len() + r.restored.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(sip: &str) -> Value {
        let mut a = crate::model::tenant_policies::namespace_annotations(
            sip == "permitted",
            &crate::model::account::denied_cidrs(&[]),
            &[],
        );
        a.insert("covenant.dev/namespaces".into(), "voip".into());
        json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": "voip", "labels": { "covenant.dev/account": "a" }, "annotations": a } })
    }

    /// The admission policy's own text judges a policy again: SIP egress admitted with telephony is
    /// refused without it, judged on the recorded selector when the policy is neutralised.
    #[test]
    fn sip_egress_is_refused_once_telephony_is_withdrawn() {
        let spec = json!({
            "podSelector": crate::model::tenant_policies::neutral_selector(),
            "policyTypes": ["Egress"],
            "egress": [{ "to": [{ "ipBlock": { "cidr": "93.184.216.34/32" } }],
                         "ports": [{ "protocol": "UDP", "port": 5060 }] }],
        });
        let original = json!({ "matchLabels": { "app": "voip" } });
        let ok = refusals(
            "sip",
            "voip",
            &spec,
            Some(&original),
            &namespace("permitted"),
        );
        assert_eq!(ok, Vec::<String>::new());
        let refused = refusals("sip", "voip", &spec, Some(&original), &namespace("denied"));
        assert!(refused.iter().any(|m| m.contains("SIP")), "{refused:?}");
    }
}
