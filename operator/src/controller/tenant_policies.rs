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
    NEUTRALISED_ANNOTATION, TOKEN_ANNOTATION, TenantPolicy, neutralise_patch, restore_patch,
};

/// How many policies are read at once.
const PAGE: u32 = 100;

/// The tenant's policies in `ns`: those without Covenant's `covenant.dev/account` label.
async fn tenant_policies(client: &Client, ns: &str) -> Result<Vec<TenantPolicy>> {
    use futures::TryStreamExt;
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
    let lp = ListParams::default()
        .labels(&format!("!{}", crate::api::ACCOUNT_LABEL))
        .limit(PAGE);
    let mut pages = std::pin::pin!(super::paged(api, lp));
    let mut out = Vec::new();
    while let Some(p) = pages.try_next().await? {
        out.push(TenantPolicy {
            name: p.name_any(),
            resource_version: p.resource_version(),
            record: p.annotations().get(NEUTRALISED_ANNOTATION).cloned(),
            pod_selector: p
                .spec
                .as_ref()
                .map(|s| serde_json::to_value(&s.pod_selector))
                .transpose()?
                .unwrap_or_else(|| json!({})),
        });
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

/// Restores every tenant policy in `ns` that has a trusted record, then removes the namespace's token
/// (only once all were restored: a restart restores the rest). Returns how many were restored.
pub async fn restore(client: &Client, ns: &str, metrics: &Metrics) -> Result<usize> {
    let (t, _) = token(client, ns).await?;
    let found = tenant_policies(client, ns).await?;
    let patches = found
        .iter()
        .filter_map(|p| restore_patch(p, &t).map(|patch| (p.name.clone(), patch)))
        .collect();
    let restored = patch_all(client, ns, patches, metrics).await?;
    let p = json!({ "metadata": { "annotations": { TOKEN_ANNOTATION: Value::Null } } });
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    metrics.write("Namespace");
    Ok(restored)
}

/// Whether the namespace (as cached) may hold neutralised policies to restore.
pub fn has_records(n: &Namespace) -> bool {
    n.annotations().contains_key(TOKEN_ANNOTATION)
}

/// Gives each bounds quota of `desired` room for one more NetworkPolicy while a suspension's deny-all
/// comes or goes: while the account is suspended, and while the cache still holds the deny-all in that
/// namespace (a lift creates the allow policies before the deny-all goes). A tenant that filled its
/// namespace can then never keep the deny-all out.
pub fn make_room(
    desired: &mut crate::model::account::Desired,
    suspended: bool,
    ctx: &super::Context,
) {
    use kube::runtime::reflector::ObjectRef;
    for q in &mut desired.quotas {
        if q.metadata.name.as_deref() != Some(crate::model::account::BOUNDS_QUOTA_NAME) {
            continue;
        }
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let deny_all = ctx
            .stores
            .network_policies
            .get(&ObjectRef::new(crate::model::account::SUSPENSION_POLICY).within(&ns));
        if (suspended || deny_all.is_some())
            && let Some(hard) = q.spec.as_mut().and_then(|s| s.hard.as_mut())
        {
            crate::model::tenant_policies::with_room(hard);
        }
    }
}

/// The bounds quota of a namespace being retained, from the cache, with room for the deny-all (see
/// [`make_room`]); `None` when the cache holds none.
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
