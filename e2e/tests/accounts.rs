//! Accounts end to end, with the operator running: provisioning, what a tenant administrator can and
//! cannot do, drift correction, package changes, namespace conflicts and deletion (Retain/Delete).
//!
//! Every test makes its own packages, accounts and namespaces (random suffix) and deletes them; none
//! marks a package `default: true` (the cluster's default is `standard`, from deploy/).

use std::collections::BTreeMap;
use std::time::Duration;

use covenant::api::{Account, SupportPackage};
use covenant_e2e::fixtures::{
    self, account, api_error, deployment, egress_allows, forbidden, hard, label, map, pod,
    status_hard,
};
use covenant_e2e::{
    TIMEOUT, Tenant, TestCtx, condition, eventually, impersonate, kubectl, wait_account,
    wait_account_ready, wait_for, wait_gone,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

const ACCOUNT_LABEL: &str = "covenant.dev/account";

async fn wait_default_sa(client: &Client, ns: &str) {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for(&sa, "default", "be created", TIMEOUT, |_| true).await;
}

/// Waits until the quota controller has filled the status of `covenant-quota` with `pods` (admission
/// enforces a quota only from then on).
async fn wait_quota_status(client: &Client, ns: &str, name: &str, pods: &str) -> ResourceQuota {
    let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    wait_for(
        &api,
        name,
        &format!("have status.hard.pods={pods}"),
        TIMEOUT,
        |q| status_hard(q).get("pods").map(String::as_str) == Some(pods),
    )
    .await
}

/// Every object of kind K labelled for `account`, as `namespace/name`.
async fn labelled<K>(client: &Client, account: &str) -> Vec<String>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("{ACCOUNT_LABEL}={account}")))
        .await
        .expect("list labelled objects");
    let mut names: Vec<String> = list
        .items
        .iter()
        .map(|o| match o.meta().namespace.as_deref() {
            Some(ns) => format!("{ns}/{}", o.name_any()),
            None => o.name_any(),
        })
        .collect();
    names.sort();
    names
}

/// Everything labelled for `account`, by kind.
async fn everything_labelled(
    client: &Client,
    account: &str,
) -> BTreeMap<&'static str, Vec<String>> {
    BTreeMap::from([
        ("Namespace", labelled::<Namespace>(client, account).await),
        (
            "ResourceQuota",
            labelled::<ResourceQuota>(client, account).await,
        ),
        ("LimitRange", labelled::<LimitRange>(client, account).await),
        (
            "NetworkPolicy",
            labelled::<NetworkPolicy>(client, account).await,
        ),
        (
            "RoleBinding",
            labelled::<RoleBinding>(client, account).await,
        ),
    ])
}

#[tokio::test]
async fn an_account_gets_namespaces_quota_limits_network_policies_and_admin_bindings() {
    let t = TestCtx::new("provision").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    let (ns_a, ns_b) = (t.name("acct-a"), t.name("acct-b"));
    let alice = format!("alice-{}", t.suffix);
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[&ns_a, &ns_b],
        &[&alice],
        json!({
            "displayName": "E2E provisioning",
            "quota": { "pods": "2", "services": "5" },
            "limits": { "max": { "cpu": "500m" } }
        }),
    ))
    .await;
    let a = wait_account_ready(&t.client, &acct).await;

    // kstatus: `kubectl wait --for=condition=Ready` works on Accounts.
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("account/{acct}"),
        "--timeout=30s",
    ])
    .expect_ok();

    assert_the_status_says_ready(&a, &pkg, &[&ns_a, &ns_b]);
    for ns in [&ns_a, &ns_b] {
        assert_the_namespace_is_provisioned(&t.client, &acct, &alice, ns).await;
    }
    assert_exactly_these_objects_carry_the_label(&t.client, &acct, &ns_a, &ns_b).await;
}

/// The status of a Ready account on `pkg` with `namespaces`: its package, namespaces, generation,
/// phase Active and every condition True.
fn assert_the_status_says_ready(a: &Account, pkg: &str, namespaces: &[&str]) {
    let status = a.status.clone().expect("status");
    assert_eq!(status.support_package.as_deref(), Some(pkg));
    assert_eq!(status.namespaces, namespaces);
    assert_eq!(status.observed_generation, a.metadata.generation);
    assert_eq!(
        serde_json::to_value(status.phase).unwrap(),
        json!("Active"),
        "phase of a Ready account"
    );
    for c in [
        "NamespacesReady",
        "QuotaApplied",
        "NetworkIsolated",
        "AccessGranted",
    ] {
        let cond = condition(a, c).unwrap_or_else(|| panic!("no {c} condition: {status:?}"));
        assert_eq!(cond.status, "True", "{c}: {cond:?}");
    }
}

/// What Covenant provisions in each namespace of the account: the namespace labelled (with the
/// allowed subjects), quota, limits, network policies, the administrators' binding.
async fn assert_the_namespace_is_provisioned(admin: &Client, acct: &str, alice: &str, ns: &str) {
    let n = Api::<Namespace>::all(admin.clone()).get(ns).await.unwrap();
    assert_eq!(
        label(&n, ACCOUNT_LABEL).as_deref(),
        Some(acct),
        "namespace {ns}"
    );
    let allowed = n
        .annotations()
        .get("covenant.dev/allowed-subjects")
        .cloned()
        .unwrap_or_default();
    assert!(
        allowed.split('\n').any(|s| s == format!("User:{alice}")),
        "namespace {ns}: covenant.dev/allowed-subjects {allowed:?} lacks the administrator"
    );

    let q = Api::<ResourceQuota>::namespaced(admin.clone(), ns)
        .get("covenant-quota")
        .await
        .unwrap();
    assert_eq!(
        hard(&q),
        map(&[
            ("configmaps", "20"),
            ("pods", "2"),
            ("requests.cpu", "2"),
            ("services", "5")
        ]),
        "{ns}/covenant-quota: the package's quota with the account's overrides on top"
    );
    assert_eq!(label(&q, ACCOUNT_LABEL).as_deref(), Some(acct));

    let lr = Api::<LimitRange>::namespaced(admin.clone(), ns)
        .get("covenant-limits")
        .await
        .unwrap();
    let items = &lr.spec.as_ref().expect("LimitRange spec").limits;
    assert_eq!(items.len(), 1, "{ns}/covenant-limits: {items:?}");
    let item = &items[0];
    let q2s = fixtures::quantities;
    assert_eq!(item.type_, "Container");
    assert_eq!(
        q2s(&item.default),
        map(&[("cpu", "200m"), ("memory", "128Mi")])
    );
    assert_eq!(
        q2s(&item.default_request),
        map(&[("cpu", "100m"), ("memory", "64Mi")])
    );
    assert_eq!(
        q2s(&item.max),
        map(&[("cpu", "500m"), ("memory", "1Gi")]),
        "{ns}/covenant-limits: max is the package's with the account's cpu on top"
    );

    assert_the_namespace_is_isolated(admin, ns).await;
    let rb = Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .get("covenant-tenant-admin")
        .await
        .unwrap();
    assert_eq!(rb.role_ref.kind, "ClusterRole");
    assert_eq!(rb.role_ref.name, "covenant-tenant-admin");
    let subjects: Vec<(String, String)> = rb
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.clone(), s.name.clone()))
        .collect();
    assert_eq!(
        subjects,
        vec![("User".to_string(), alice.to_string())],
        "{ns}: subjects"
    );
}

/// The namespace's network policies: isolation from other tenants (except what the tenant narrowed
/// itself), and egress without the metadata addresses.
async fn assert_the_namespace_is_isolated(admin: &Client, ns: &str) {
    let nps: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
    let iso = nps.get("covenant-isolation").await.unwrap();
    let spec = iso.spec.as_ref().expect("spec");
    // Every pod but those the tenant narrowed (covenant.dev/narrowed: only its own policies,
    // each admitted only if it narrows, let anything reach them; covenant-narrowed isolates them).
    assert_eq!(
        serde_json::to_value(spec.pod_selector.clone().unwrap_or_default()).unwrap(),
        json!({ "matchExpressions": [{ "key": "covenant.dev/narrowed", "operator": "DoesNotExist" }] }),
        "covenant-isolation selects every pod but the narrowed ones"
    );
    assert!(
        spec.policy_types
            .as_ref()
            .is_some_and(|p| p.iter().any(|t| t == "Ingress")),
        "covenant-isolation is an Ingress policy: {spec:?}"
    );
    let ingress = spec.ingress.as_ref().expect("ingress rules");
    let peers: Vec<_> = ingress
        .iter()
        .flat_map(|r| r.from.iter().flatten())
        .collect();
    assert!(
        peers
            .iter()
            .any(|p| p.namespace_selector.as_ref().is_some_and(|s| {
                s.match_expressions.as_ref().is_some_and(|e| {
                    e.iter().any(|r| {
                        r.key == "kubernetes.io/metadata.name"
                            && r.values
                                .as_ref()
                                .is_some_and(|v| v.contains(&ns.to_string()))
                    })
                })
            }) && p.pod_selector.is_none()
                && p.ip_block.is_none()),
        "covenant-isolation admits the tenant's own namespaces: {ingress:?}"
    );
    assert!(
        ingress
            .iter()
            .all(|r| r.from.as_ref().is_some_and(|f| !f.is_empty())),
        "covenant-isolation must not have a rule admitting everyone: {ingress:?}"
    );

    let egress = nps.get("covenant-egress").await.unwrap();
    assert!(
        egress
            .spec
            .as_ref()
            .and_then(|s| s.policy_types.as_ref())
            .is_some_and(|p| p.iter().any(|t| t == "Egress")),
        "covenant-egress is an Egress policy"
    );
    for proto in ["TCP", "UDP"] {
        for port in [5060, 5061] {
            assert!(
                !egress_allows(&egress, proto, port),
                "{ns}/covenant-egress allows SIP {proto}/{port} without telephony: {:?}",
                egress.spec
            );
        }
        for port in [53, 443, 5059, 5062] {
            assert!(
                egress_allows(&egress, proto, port),
                "{ns}/covenant-egress denies {proto}/{port}, only SIP should be denied: {:?}",
                egress.spec
            );
        }
    }
}

/// Exactly these objects, nothing else, carry the account's label.
async fn assert_exactly_these_objects_carry_the_label(
    admin: &Client,
    acct: &str,
    ns_a: &str,
    ns_b: &str,
) {
    let got = everything_labelled(admin, acct).await;
    let per_ns = |names: &[&str]| {
        let mut v: Vec<String> = [&ns_a, &ns_b]
            .iter()
            .flat_map(|ns| names.iter().map(move |n| format!("{ns}/{n}")))
            .collect();
        v.sort();
        v
    };
    let mut want_ns = vec![ns_a.to_string(), ns_b.to_string()];
    want_ns.sort();
    let want = BTreeMap::from([
        ("Namespace", want_ns),
        (
            "ResourceQuota",
            per_ns(&["covenant-bounds", "covenant-quota"]),
        ),
        ("LimitRange", per_ns(&["covenant-limits"])),
        (
            "NetworkPolicy",
            per_ns(&["covenant-egress", "covenant-isolation", "covenant-narrowed"]),
        ),
        // The operator binds itself (covenant-operator) so that it can withdraw consent from the
        // tenant's own bindings, unless it runs as a cluster administrator.
        (
            "RoleBinding",
            if std::env::var("COVENANT_E2E_OPERATOR_IDENTITY").as_deref() == Ok("admin") {
                per_ns(&["covenant-tenant-admin"])
            } else {
                per_ns(&["covenant-operator", "covenant-tenant-admin"])
            },
        ),
    ]);
    assert_eq!(got, want, "objects labelled {ACCOUNT_LABEL}={acct}");
}

#[tokio::test]
async fn telephony_permits_sip_egress() {
    let t = TestCtx::new("telephony").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("voip");
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[],
        &[],
        json!({ "network": { "telephony": true } }),
    ))
    .await;
    let a = wait_account_ready(&t.client, &acct).await;
    // No spec.namespaces: one namespace named after the account.
    assert_eq!(a.status.as_ref().unwrap().namespaces, vec![acct.clone()]);
    let np = Api::<NetworkPolicy>::namespaced(t.client.clone(), &acct)
        .get("covenant-egress")
        .await
        .unwrap();
    for proto in ["TCP", "UDP"] {
        for port in [5060, 5061, 443] {
            assert!(
                egress_allows(&np, proto, port),
                "telephony: covenant-egress must allow {proto}/{port}: {:?}",
                np.spec
            );
        }
    }
    // Turning telephony off closes SIP again.
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[],
        &[],
        json!({ "network": { "telephony": false } }),
    ))
    .await;
    let api: Api<NetworkPolicy> = Api::namespaced(t.client.clone(), &acct);
    wait_for(
        &api,
        "covenant-egress",
        "deny SIP egress again",
        TIMEOUT,
        |np| !egress_allows(np, "TCP", 5060) && !egress_allows(np, "UDP", 5061),
    )
    .await;
    wait_account_ready(&t.client, &acct).await;
}

/// The only test that relies on the default package (`standard`, from deploy/default-package.yaml).
/// Puts the API server's finalizer policy back when dropped (also when the test fails).
struct RestoreFinalizerPolicy;

impl Drop for RestoreFinalizerPolicy {
    fn drop(&mut self) {
        kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=covenant-e2e-install",
            "-f",
            &covenant_e2e::repo_root()
                .join("deploy/account-finalizer-policy.yaml")
                .to_string_lossy(),
        ])
        .expect_ok();
    }
}

/// Who wrote the Account's finalizers, by its managedFields.
fn finalizer_writers(a: &Account) -> Vec<String> {
    a.meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains("f:finalizers"))
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// Deleting a tenant always goes through Covenant (its namespaces retained or deleted as declared):
/// the API server puts the finalizer on every Account in the create itself, so the object the create
/// returns already carries it and the operator spends no request on it. Where that policy is not in
/// force (an older API server, or the file not installed) the operator adds the finalizer itself, and
/// still provisions the account.
#[tokio::test]
async fn every_account_is_under_the_finalizer_from_its_creation() {
    const FINALIZER: &str = "covenant.dev/account-cleanup";
    let t = TestCtx::new("finalizer").await;
    let first = t.account("fin-policy");
    let created = t
        .apply(&account(&first, None, &[], &[&t.name("dana")], json!({})))
        .await;
    assert_eq!(
        created[0].metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_string()][..]),
        "the create's own answer carries the finalizer"
    );
    let a = wait_account_ready(&t.client, &first).await;
    assert!(
        finalizer_writers(&a).is_empty(),
        "added in the create, so attributed to no later writer: {:?}",
        a.meta().managed_fields
    );

    // Without the policy's binding, the operator adds the finalizer with its own write.
    let _restore = RestoreFinalizerPolicy;
    kubectl(&[
        "delete",
        "mutatingadmissionpolicybinding",
        "covenant-account-finalizer",
    ])
    .expect_ok();
    // The API server notices the deletion within a moment: until it does, a new Account still gets
    // the finalizer in its create. Try new ones until one is created without it (each is cleaned up).
    let mut attempt = 0;
    let second = eventually(
        "an Account is created without the finalizer once the policy's binding is gone",
        Duration::from_secs(30),
        || {
            attempt += 1;
            let name = t.account(&format!("fin-operator-{attempt}"));
            let admin = t.name("erin");
            let t = &t;
            async move {
                let created = t
                    .apply(&account(&name, None, &[], &[&admin], json!({})))
                    .await;
                match created[0].metadata.finalizers.as_deref() {
                    None | Some([]) => Ok(name),
                    Some(f) => Err(format!("{name} created with {f:?}")),
                }
            }
        },
    )
    .await;
    let b = wait_account_ready(&t.client, &second).await;
    assert!(
        b.finalizers().iter().any(|f| f == FINALIZER),
        "the operator added the finalizer: {:?}",
        b.finalizers()
    );
    assert!(
        !finalizer_writers(&b).is_empty(),
        "written after the create, by the operator: {:?}",
        b.meta().managed_fields
    );
}

#[tokio::test]
async fn an_account_without_a_package_is_on_the_default_package() {
    let t = TestCtx::new("default-package").await;
    let acct = t.account("plain");
    t.apply(&account(&acct, None, &[], &[&t.name("carol")], json!({})))
        .await;
    let a = wait_account_ready(&t.client, &acct).await;
    assert_eq!(
        a.status.as_ref().unwrap().support_package.as_deref(),
        Some("standard"),
        "an account naming no package is on the default one"
    );
    let standard = Api::<SupportPackage>::all(t.client.clone())
        .get("standard")
        .await
        .unwrap();
    let want: BTreeMap<String, String> = standard
        .spec
        .quota
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let q = Api::<ResourceQuota>::namespaced(t.client.clone(), &acct)
        .get("covenant-quota")
        .await
        .unwrap();
    assert_eq!(hard(&q), want, "the default package's quota");
}

#[tokio::test]
async fn a_tenant_admin_runs_workloads_within_the_quota_and_only_in_its_namespaces() {
    let t = TestCtx::new("tenant-admin").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    let (ns_a, ns_b) = (t.name("acct-a"), t.name("acct-b"));
    let alice = format!("alice-{}", t.suffix);
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[&ns_a, &ns_b],
        &[&alice],
        json!({ "quota": { "pods": "2" } }),
    ))
    .await;
    let other = t.account("other");
    let bob = format!("bob-{}", t.suffix);
    t.apply(&account(&other, Some(&pkg), &[], &[&bob], json!({})))
        .await;
    wait_account_ready(&t.client, &acct).await;
    wait_account_ready(&t.client, &other).await;
    wait_default_sa(&t.client, &ns_a).await;
    wait_default_sa(&t.client, &ns_b).await;
    wait_quota_status(&t.client, &ns_a, "covenant-quota", "2").await;

    let as_alice = impersonate(&alice, &[]).await;
    // A Deployment in one namespace...
    Api::<Deployment>::namespaced(as_alice.clone(), &ns_b)
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("the administrator creates a Deployment in its namespace");
    // ...and Pods in the other, until the quota (pods: 2) refuses one.
    let pods: Api<Pod> = Api::namespaced(as_alice.clone(), &ns_a);
    pods.create(&PostParams::default(), &pod("p1"))
        .await
        .expect("the administrator creates a Pod in its namespace");
    let p1 = pods.get("p1").await.unwrap();
    let requests = p1.spec.as_ref().unwrap().containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    assert_eq!(
        requests.get("cpu").map(|q| q.0.as_str()),
        Some("100m"),
        "covenant-limits gives a container without requests the package's defaultRequest"
    );
    pods.create(&PostParams::default(), &pod("p2"))
        .await
        .expect("a second Pod fits pods: 2");
    let refused = api_error(
        "a third Pod",
        pods.create(&PostParams::default(), &pod("p3")).await,
    );
    assert_eq!(refused.code, 403, "{refused:?}");
    assert!(
        refused.message.contains("exceeded quota") && refused.message.contains("covenant-quota"),
        "the third Pod must be refused by covenant-quota: {}",
        refused.message
    );

    // Nothing in another tenant's namespace.
    let theirs: Api<Pod> = Api::namespaced(as_alice.clone(), &other);
    let mut failures = Vec::new();
    failures.extend(
        forbidden(
            "list pods in another tenant's namespace",
            theirs.list(&ListParams::default()).await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            "create a pod in another tenant's namespace",
            theirs
                .create(&PostParams::default(), &pod("intruder"))
                .await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            "list secrets in another tenant's namespace",
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(as_alice.clone(), &other)
                .list(&ListParams::default())
                .await,
        )
        .err(),
    );
    // Nor cluster-wide.
    failures.extend(
        forbidden(
            "list pods in all namespaces",
            Api::<Pod>::all(as_alice.clone())
                .list(&ListParams::default())
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_tenant_admin_cannot_change_what_covenant_manages() {
    let t = TestCtx::new("managed-readonly").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    let alice = format!("alice-{}", t.suffix);
    t.apply(&account(&acct, Some(&pkg), &[], &[&alice], json!({})))
        .await;
    wait_account_ready(&t.client, &acct).await;
    let ns = acct.as_str();
    let c = impersonate(&alice, &[]).await;
    // Dry runs: authorization is checked exactly as for real requests, and nothing changes if a
    // request is (wrongly) allowed.
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let hack = Patch::Merge(json!({ "metadata": { "labels": { "hacked": "yes" } } }));
    let mut failures = Vec::new();
    macro_rules! check {
        ($t:ty, $name:expr) => {{
            let api: Api<$t> = Api::namespaced(c.clone(), ns);
            let kind = <$t as Resource>::kind(&());
            failures.extend(
                forbidden(
                    &format!("patch {kind} {}", $name),
                    api.patch($name, &pp, &hack).await,
                )
                .err(),
            );
            failures.extend(
                forbidden(
                    &format!("delete {kind} {}", $name),
                    api.delete($name, &dp).await,
                )
                .err(),
            );
        }};
    }
    check!(ResourceQuota, "covenant-quota");
    check!(ResourceQuota, "covenant-bounds");
    check!(LimitRange, "covenant-limits");
    check!(NetworkPolicy, "covenant-isolation");
    check!(NetworkPolicy, "covenant-egress");
    check!(RoleBinding, "covenant-tenant-admin");
    // The namespace's labels and annotations are what the admission policy trusts.
    let nss: Api<Namespace> = Api::all(c.clone());
    failures.extend(
        forbidden(
            "patch its own Namespace",
            nss.patch(
                ns,
                &pp,
                &Patch::Merge(json!({ "metadata": { "annotations": { "covenant.dev/allowed-subjects": "User:mallory" } } })),
            )
            .await,
        )
        .err(),
    );
    // Creating more quota is not theirs either, nor a policy that lets everything in (a tenant's own
    // NetworkPolicies can only narrow).
    let extra: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "allow-all" },
        "spec": { "podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"] }
    }))
    .unwrap();
    failures.extend(
        forbidden(
            "create a NetworkPolicy",
            Api::<NetworkPolicy>::namespaced(c.clone(), ns)
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &extra,
                )
                .await,
        )
        .err(),
    );
    // But it can read them.
    Api::<ResourceQuota>::namespaced(c.clone(), ns)
        .get("covenant-quota")
        .await
        .expect("the administrator reads its quota");
    Api::<NetworkPolicy>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("the administrator lists its network policies");
    assert!(
        failures.is_empty(),
        "the tenant administrator could change managed objects:\n{}",
        failures.join("\n")
    );
}

/// Waits until a dry-run create of `rb` is refused with `message` (the admission policy's view of the
/// namespace lags the API by a moment).
async fn refused_eventually(rbs: &Api<RoleBinding>, rb: &RoleBinding, message: &str) {
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(
        &format!("a RoleBinding is refused with {message:?}"),
        TIMEOUT,
        || async {
            match rbs.create(&dry, rb).await {
                Err(kube::Error::Api(s)) if s.message.contains(message) => Ok(()),
                Err(e) => Err(format!("refused otherwise: {e}")),
                Ok(_) => Err("allowed".to_string()),
            }
        },
    )
    .await
}

/// A RoleBinding `name` of the Role `pod-reader` to `subject`.
fn binding(name: &str, subject: serde_json::Value) -> RoleBinding {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader" },
        "subjects": [subject]
    }))
    .unwrap()
}

#[tokio::test]
async fn rolebindings_in_a_tenant_may_name_only_consented_subjects() {
    let t = TestCtx::new("rolebindings").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let (ns_a, ns_b) = (t.name("acct-a"), t.name("acct-b"));
    let alice = format!("alice-{}", t.suffix);
    let auditor = format!("auditor-{}", t.suffix);
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespace_names(&[&ns_a, &ns_b])
        .admin(&alice)
        .retain()
        .spec(|s| s.allowed_subjects = vec![fixtures::user(&auditor)])
        .unready()
        .await;
    let acct = ten.account.clone();
    let other = t
        .tenant("other")
        .package(&pkg)
        .admin(&t.name("bob"))
        .retain()
        .unready()
        .await
        .account;
    wait_account_ready(&t.client, &acct).await;
    wait_account_ready(&t.client, &other).await;

    let c = impersonate(&alice, &[]).await;
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "pod-reader" },
        "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] }]
    }))
    .unwrap();
    Api::<Role>::namespaced(c.clone(), &ns_a)
        .create(&PostParams::default(), &role)
        .await
        .expect("the administrator creates a Role");
    let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), &ns_a);

    assert_bindings_naming_outsiders_are_refused(&t, &rbs, &other).await;
    assert_bindings_naming_consented_subjects_are_allowed(&rbs, &ns_a, &ns_b, &auditor, &alice)
        .await;
    assert_withdrawn_consent_refuses_a_new_binding(&t, &ten, &rbs, &auditor).await;
}

/// A binding naming an outsider, or another tenant's ServiceAccount, is refused by the admission
/// policy, which names it.
async fn assert_bindings_naming_outsiders_are_refused(
    t: &TestCtx,
    rbs: &Api<RoleBinding>,
    other: &str,
) {
    let pp = PostParams::default();
    // Outsiders: refused, by name.
    let mallory = format!("mallory-{}", t.suffix);
    // The admission policy reads the namespace from the API server's informer: wait (dry runs) until
    // it sees the stamped namespace, then check for real.
    refused_eventually(
        rbs,
        &binding(
            "outsider",
            json!({ "kind": "User", "name": mallory, "apiGroup": "rbac.authorization.k8s.io" }),
        ),
        &format!("not allowed: User:{mallory}"),
    )
    .await;
    let denied = api_error(
        "a RoleBinding naming an outsider",
        rbs.create(
            &pp,
            &binding(
                "outsider",
                json!({ "kind": "User", "name": mallory, "apiGroup": "rbac.authorization.k8s.io" }),
            ),
        )
        .await,
    );
    assert!(
        denied
            .message
            .contains(&format!("not allowed: User:{mallory}")),
        "the admission policy must name the outsider: {}",
        denied.message
    );
    let foreign_sa = api_error(
        "a RoleBinding naming another tenant's ServiceAccount",
        rbs.create(
            &pp,
            &binding(
                "foreign",
                json!({ "kind": "ServiceAccount", "name": "default", "namespace": other }),
            ),
        )
        .await,
    );
    assert!(
        foreign_sa
            .message
            .contains(&format!("not allowed: ServiceAccount:{other}:default")),
        "{}",
        foreign_sa.message
    );
}

/// A binding naming a ServiceAccount of its own namespace or of another namespace of the account, an
/// allowed subject or an administrator is allowed.
async fn assert_bindings_naming_consented_subjects_are_allowed(
    rbs: &Api<RoleBinding>,
    ns_a: &str,
    ns_b: &str,
    auditor: &str,
    alice: &str,
) {
    let pp = PostParams::default();
    // Its own ServiceAccounts, its other namespaces', its allowed subjects and administrators.
    rbs.create(
        &pp,
        &binding(
            "own-sa",
            json!({ "kind": "ServiceAccount", "name": "deployer", "namespace": ns_a }),
        ),
    )
    .await
    .expect("a RoleBinding naming a ServiceAccount of its own namespace is allowed");
    rbs.create(
        &pp,
        &binding(
            "sibling-sa",
            json!({ "kind": "ServiceAccount", "name": "ci", "namespace": ns_b }),
        ),
    )
    .await
    .expect(
        "a RoleBinding naming a ServiceAccount of another namespace of the same account is allowed",
    );
    rbs.create(
        &pp,
        &binding(
            "auditor",
            json!({ "kind": "User", "name": auditor, "apiGroup": "rbac.authorization.k8s.io" }),
        ),
    )
    .await
    .expect("a RoleBinding naming an allowedSubject is allowed");
    rbs.create(
        &pp,
        &binding(
            "admin-self",
            json!({ "kind": "User", "name": alice, "apiGroup": "rbac.authorization.k8s.io" }),
        ),
    )
    .await
    .expect("a RoleBinding naming an administrator is allowed");
}

/// Consent can be withdrawn: once the auditor leaves allowedSubjects, a new binding naming them is
/// refused.
async fn assert_withdrawn_consent_refuses_a_new_binding(
    t: &TestCtx,
    ten: &Tenant,
    rbs: &Api<RoleBinding>,
    auditor: &str,
) {
    let pp = PostParams::default();
    let (acct, ns_a) = (&ten.account, &ten.namespaces[0]);
    // Consent can be withdrawn: once the auditor leaves allowedSubjects, a new binding naming them is
    // refused.
    let mut withdrawn = ten.applied.clone();
    withdrawn.spec.allowed_subjects.clear();
    t.apply(&withdrawn).await;
    wait_account_ready(&t.client, acct).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    wait_for(
        &nss,
        ns_a,
        "drop the auditor from covenant.dev/allowed-subjects",
        TIMEOUT,
        |n| {
            !n.annotations()
                .get("covenant.dev/allowed-subjects")
                .is_some_and(|a| a.contains(auditor))
        },
    )
    .await;
    refused_eventually(
        rbs,
        &binding(
            "auditor-2",
            json!({ "kind": "User", "name": auditor, "apiGroup": "rbac.authorization.k8s.io" }),
        ),
        &format!("not allowed: User:{auditor}"),
    )
    .await;
    let withdrawn = api_error(
        "a RoleBinding naming a former allowedSubject",
        rbs.create(
            &pp,
            &binding(
                "auditor-2",
                json!({ "kind": "User", "name": auditor, "apiGroup": "rbac.authorization.k8s.io" }),
            ),
        )
        .await,
    );
    assert!(
        withdrawn
            .message
            .contains(&format!("not allowed: User:{auditor}")),
        "{}",
        withdrawn.message
    );
}

#[tokio::test]
async fn hand_edits_of_managed_objects_are_undone() {
    let t = TestCtx::new("drift").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let alice = format!("alice-{}", t.suffix);
    let acct = t
        .tenant("acct")
        .package(&pkg)
        .admin(&alice)
        .retain()
        .await
        .account;
    let ns = acct.as_str();
    assert_hand_edits_of_policies_and_quota_are_undone(&t, ns).await;
    assert_hand_edits_of_bindings_limits_and_annotations_are_undone(&t, ns, &alice).await;
}

/// A deleted NetworkPolicy comes back, an edited quota is restored, an egress policy opened by hand
/// is closed again.
async fn assert_hand_edits_of_policies_and_quota_are_undone(t: &TestCtx, ns: &str) {
    let hand = PatchParams::default();
    // A deleted NetworkPolicy comes back.
    let nps: Api<NetworkPolicy> = Api::namespaced(t.client.clone(), ns);
    let before = nps.get("covenant-isolation").await.unwrap();
    nps.delete("covenant-isolation", &DeleteParams::default())
        .await
        .unwrap();
    let uid = before.uid();
    let after = wait_for(&nps, "covenant-isolation", "be recreated", TIMEOUT, |np| {
        np.uid() != uid
    })
    .await;
    assert_eq!(after.spec, before.spec, "the recreated policy is the same");

    // An edited quota is restored.
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ns);
    quotas
        .patch(
            "covenant-quota",
            &hand,
            &Patch::Merge(json!({ "spec": { "hard": { "pods": "99" } } })),
        )
        .await
        .unwrap();
    wait_for(
        &quotas,
        "covenant-quota",
        "get hard.pods=4 back",
        TIMEOUT,
        |q| hard(q).get("pods").map(String::as_str) == Some("4"),
    )
    .await;

    // An egress policy opened by hand is closed again.
    nps.patch(
        "covenant-egress",
        &hand,
        &Patch::Merge(json!({ "spec": { "egress": [{}] } })),
    )
    .await
    .unwrap();
    wait_for(&nps, "covenant-egress", "deny SIP again", TIMEOUT, |np| {
        !egress_allows(np, "TCP", 5060) && egress_allows(np, "TCP", 443)
    })
    .await;
}

/// A deleted admin binding and LimitRange come back, a subject added by hand to the admin binding is
/// removed, and the namespace annotation the admission policy trusts is restored.
async fn assert_hand_edits_of_bindings_limits_and_annotations_are_undone(
    t: &TestCtx,
    ns: &str,
    alice: &str,
) {
    let hand = PatchParams::default();
    // A deleted admin binding and LimitRange come back.
    let rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), ns);
    rbs.delete("covenant-tenant-admin", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &rbs,
        "covenant-tenant-admin",
        "be recreated",
        TIMEOUT,
        |rb| rb.subjects.iter().flatten().any(|s| s.name == alice),
    )
    .await;
    let lrs: Api<LimitRange> = Api::namespaced(t.client.clone(), ns);
    lrs.delete("covenant-limits", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&lrs, "covenant-limits", "be recreated", TIMEOUT, |_| true).await;

    // A subject added by hand to the admin binding is removed (nobody else gets the role).
    rbs.patch(
        "covenant-tenant-admin",
        &hand,
        &Patch::Merge(json!({ "subjects": [
            { "kind": "User", "name": alice, "apiGroup": "rbac.authorization.k8s.io" },
            { "kind": "ServiceAccount", "name": "default", "namespace": ns }
        ] })),
    )
    .await
    .unwrap();
    wait_for(
        &rbs,
        "covenant-tenant-admin",
        "name only the administrator again",
        TIMEOUT,
        |rb| {
            rb.subjects
                .as_ref()
                .is_some_and(|s| s.len() == 1 && s[0].name == alice)
        },
    )
    .await;

    // The namespace annotation the admission policy trusts is restored.
    let nss: Api<Namespace> = Api::all(t.client.clone());
    nss.patch(
        ns,
        &hand,
        &Patch::Merge(json!({ "metadata": { "annotations": { "covenant.dev/allowed-subjects": format!("User:{alice}\nUser:mallory") } } })),
    )
    .await
    .unwrap();
    wait_for(
        &nss,
        ns,
        "get its covenant.dev/allowed-subjects back",
        TIMEOUT,
        |n| n.annotations().get("covenant.dev/allowed-subjects") == Some(&format!("User:{alice}")),
    )
    .await;
    wait_account_ready(&t.client, ns).await;
}

#[tokio::test]
async fn a_package_change_reaches_every_account_on_it() {
    let t = TestCtx::new("package-change").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(
        &pkg,
        json!({ "pods": "5", "configmaps": "10" }),
    ))
    .await;
    let one = t.account("one");
    let two = t.account("two");
    t.apply(&account(&one, Some(&pkg), &[], &[], json!({})))
        .await;
    t.apply(&account(
        &two,
        Some(&pkg),
        &[],
        &[],
        json!({ "quota": { "pods": "3" } }),
    ))
    .await;
    wait_account_ready(&t.client, &one).await;
    wait_account_ready(&t.client, &two).await;
    let quota = |ns: &str| Api::<ResourceQuota>::namespaced(t.client.clone(), ns);
    assert_eq!(
        hard(&quota(&one).get("covenant-quota").await.unwrap()),
        map(&[("configmaps", "10"), ("pods", "5")])
    );
    assert_eq!(
        hard(&quota(&two).get("covenant-quota").await.unwrap()),
        map(&[("configmaps", "10"), ("pods", "3")])
    );
    let packages: Api<SupportPackage> = Api::all(t.client.clone());
    wait_for(&packages, &pkg, "count 2 accounts", TIMEOUT, |p| {
        p.status.as_ref().is_some_and(|s| s.accounts == 2)
    })
    .await;

    t.apply(&fixtures::package(
        &pkg,
        json!({ "pods": "7", "configmaps": "12", "secrets": "9" }),
    ))
    .await;
    wait_for(
        &quota(&one),
        "covenant-quota",
        "get the package's new quota",
        TIMEOUT,
        |q| hard(q) == map(&[("configmaps", "12"), ("pods", "7"), ("secrets", "9")]),
    )
    .await;
    wait_for(
        &quota(&two),
        "covenant-quota",
        "get the new quota under its override",
        TIMEOUT,
        |q| hard(q) == map(&[("configmaps", "12"), ("pods", "3"), ("secrets", "9")]),
    )
    .await;
    wait_account_ready(&t.client, &one).await;
    wait_account_ready(&t.client, &two).await;
}

#[tokio::test]
async fn an_account_never_adopts_a_namespace_it_does_not_own() {
    let t = TestCtx::new("conflict").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let owner = t.account("owner");
    let shared = t.name("shared");
    t.apply(&account(
        &owner,
        Some(&pkg),
        &[&shared],
        &[&t.name("alice")],
        json!({}),
    ))
    .await;
    wait_account_ready(&t.client, &owner).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let before = nss.get(&shared).await.unwrap();

    // Another account claiming the namespace: a conflict, and nothing changes.
    let claimant = t.account("claimant");
    let own = t.name("claimant-own");
    t.apply(&account(
        &claimant,
        Some(&pkg),
        &[&shared, &own],
        &[&t.name("mallory")],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    let a = wait_account(
        &t.client,
        &claimant,
        "Ready",
        "False",
        Some("NamespaceConflict"),
    )
    .await;
    let msg = &condition(&a, "Ready").unwrap().message;
    assert!(
        msg.contains(&shared) && msg.contains(&owner),
        "the conflict names the namespace and its owner: {msg}"
    );
    // Give the operator time to do something wrong.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = nss.get(&shared).await.unwrap();
    assert_eq!(
        after.labels(),
        before.labels(),
        "the owner's namespace labels changed"
    );
    assert_eq!(
        after.annotations(),
        before.annotations(),
        "the owner's namespace annotations changed"
    );
    let rb = Api::<RoleBinding>::namespaced(t.client.clone(), &shared)
        .get("covenant-tenant-admin")
        .await
        .unwrap();
    assert!(
        rb.subjects
            .iter()
            .flatten()
            .all(|s| !s.name.starts_with("mallory")),
        "the claimant's administrator got into the owner's namespace: {rb:?}"
    );
    // The conflict withholds only the name in conflict: the claimant's own namespace is provisioned,
    // and nothing labelled for it lands in the owner's.
    wait_quota_status(&t.client, &own, "covenant-quota", "4").await;
    let theirs = everything_labelled(&t.client, &claimant).await;
    for (kind, objects) in &theirs {
        assert!(
            objects
                .iter()
                .all(|o| o == &own || o.starts_with(&format!("{own}/"))),
            "a conflicting account must change nothing of the owner's, but these {kind} are \
             labelled for it: {objects:?}"
        );
    }
    assert!(
        !theirs["Namespace"].is_empty() && !theirs["ResourceQuota"].is_empty(),
        "the claimant's own namespace is provisioned: {theirs:?}"
    );
    wait_account_ready(&t.client, &owner).await;

    // Deleting the claimant (deletionPolicy Delete) must not delete the owner's namespace.
    Api::<Account>::all(t.client.clone())
        .delete(&claimant, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &Api::<Account>::all(t.client.clone()),
        &claimant,
        false,
        TIMEOUT,
    )
    .await;
    let n = nss.get(&shared).await.unwrap();
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "the owner's namespace is being deleted"
    );
    assert_eq!(label(&n, ACCOUNT_LABEL).as_deref(), Some(owner.as_str()));
}

/// The operator finds out whether a namespace name is free from its cache. If someone creates the
/// namespace in the instant before the cache hears of it, the operator's apply lands on an existing
/// namespace, and the API server refuses it: the operator's own identity may mark a namespace as an
/// Account's (its UID annotation) only in the namespace's creation. So even a stale cache never
/// adopts anyone's namespace, nor one made for another Account.
#[tokio::test]
async fn the_operators_own_identity_cannot_mark_an_existing_namespace_as_a_tenants() {
    let t = TestCtx::new("no-adopt-race").await;
    let operator =
        covenant_e2e::impersonate(covenant_e2e::operator::OPERATOR_SERVICEACCOUNT, &[]).await;
    let as_operator: Api<Namespace> = Api::all(operator);
    let mark = |name: &str, uid: &str| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": { "covenant.dev/account": "someone" },
                "annotations": { "covenant.dev/account-uid": uid }
            }
        })
    };
    let ssa = PatchParams::apply("covenant").force();

    // Someone else's namespace: the apply (an update) is refused and the namespace is unchanged.
    let foreign = t.namespace("foreign");
    Api::<Namespace>::all(t.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": foreign } })).unwrap(),
        )
        .await
        .expect("create a namespace of someone else's");
    let refused = api_error(
        "marking an existing namespace as the operator",
        as_operator
            .patch(&foreign, &ssa, &Patch::Apply(mark(&foreign, "u-1")))
            .await,
    );
    assert_eq!(refused.code, 403, "{refused:?}");
    assert!(
        refused.message.contains("never adopts"),
        "{}",
        refused.message
    );
    let after = Api::<Namespace>::all(t.client.clone())
        .get(&foreign)
        .await
        .unwrap();
    assert!(
        after
            .annotations()
            .get("covenant.dev/account-uid")
            .is_none()
    );
    assert!(after.labels().get("covenant.dev/account").is_none());

    // A namespace the operator creates may carry the mark, and keep it through later applies; another
    // Account's mark cannot replace it.
    let fresh = t.namespace("fresh");
    as_operator
        .patch(&fresh, &ssa, &Patch::Apply(mark(&fresh, "u-2")))
        .await
        .expect("create a namespace with the mark");
    as_operator
        .patch(&fresh, &ssa, &Patch::Apply(mark(&fresh, "u-2")))
        .await
        .expect("apply it again unchanged");
    let refused = api_error(
        "giving the namespace another Account's mark",
        as_operator
            .patch(&fresh, &ssa, &Patch::Apply(mark(&fresh, "u-3")))
            .await,
    );
    assert_eq!(refused.code, 403, "{refused:?}");
    assert!(
        refused.message.contains("another Account"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn an_account_never_adopts_or_deletes_a_namespace_covenant_did_not_create() {
    let t = TestCtx::new("preexisting").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let pre = t.namespace("pre");
    let nss: Api<Namespace> = Api::all(t.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": pre } })).unwrap(),
    )
    .await
    .unwrap();
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "precious" }, "data": { "k": "v" } }))
            .unwrap();
    Api::<ConfigMap>::namespaced(t.client.clone(), &pre)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let before = nss.get(&pre).await.unwrap();

    let acct = t.account("squatter");
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[&pre],
        &[&t.name("mallory")],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    let a = wait_account(
        &t.client,
        &acct,
        "Ready",
        "False",
        Some("NamespaceConflict"),
    )
    .await;
    let msg = &condition(&a, "Ready").unwrap().message;
    assert!(
        msg.contains(&pre),
        "the conflict names the namespace: {msg}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = nss.get(&pre).await.unwrap();
    assert_eq!(
        after.labels(),
        before.labels(),
        "labels of a namespace Covenant did not create changed"
    );
    assert_eq!(after.annotations(), before.annotations());
    let theirs = everything_labelled(&t.client, &acct).await;
    assert!(
        theirs.values().all(Vec::is_empty),
        "labelled for the squatter: {theirs:?}"
    );
    let rbs = Api::<RoleBinding>::namespaced(t.client.clone(), &pre)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        rbs.items.is_empty(),
        "RoleBindings appeared in {pre}: {:?}",
        rbs.items
    );

    Api::<Account>::all(t.client.clone())
        .delete(&acct, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &Api::<Account>::all(t.client.clone()),
        &acct,
        false,
        TIMEOUT,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = nss.get(&pre).await.unwrap();
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "Covenant deleted a namespace it did not create"
    );
    Api::<ConfigMap>::namespaced(t.client.clone(), &pre)
        .get("precious")
        .await
        .expect("the ConfigMap in the pre-existing namespace survives");
}

#[tokio::test]
async fn deleting_a_retained_account_keeps_its_data_read_only() {
    let t = TestCtx::new("retain").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let alice = format!("alice-{}", t.suffix);
    // deletionPolicy and retentionMonths left to their defaults: Retain, 13.
    let acct = t
        .tenant("acct")
        .package(&pkg)
        .admin(&alice)
        .retain()
        .await
        .account;
    let ns = acct.as_str();
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "name": "data" }, "data": { "invoice": "42" } }),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // A CronJob that would make a Job every minute for the 13 months of retention.
    let mut job_pod = fixtures::restricted_pod_spec();
    job_pod["restartPolicy"] = json!("Never");
    let cron: CronJob = serde_json::from_value(json!({
        "metadata": { "name": "nightly" },
        "spec": { "schedule": "*/1 * * * *",
                  "jobTemplate": { "spec": { "template": { "spec": job_pod } } } }
    }))
    .unwrap();
    let cronjobs: Api<CronJob> = Api::namespaced(t.client.clone(), ns);
    cronjobs
        .create(&PostParams::default(), &cron)
        .await
        .unwrap();

    let accounts: Api<Account> = Api::all(t.client.clone());
    let deleted_from = jiff::Timestamp::now();
    accounts
        .delete(&acct, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &acct, false, TIMEOUT).await;
    let deleted_by = jiff::Timestamp::now();

    assert_the_namespace_is_retained_13_months(&t, ns, deleted_from, deleted_by).await;
    assert_it_is_read_only_and_frozen(&t, ns, &alice).await;
    assert_the_administrator_reads_but_writes_nothing(&t, ns, &alice).await;
}

/// The namespace is retained (not deleted) until 13 months after the deletion, with its data.
async fn assert_the_namespace_is_retained_13_months(
    t: &TestCtx,
    ns: &str,
    deleted_from: jiff::Timestamp,
    deleted_by: jiff::Timestamp,
) {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let n = wait_for(
        &nss,
        ns,
        "be labelled covenant.dev/retained-until",
        TIMEOUT,
        |n| label(n, "covenant.dev/retained-until").is_some(),
    )
    .await;
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "a retained namespace must not be deleted"
    );
    let until: i64 = label(&n, "covenant.dev/retained-until")
        .unwrap()
        .parse()
        .expect("retained-until is unix seconds");
    let plus13 = |ts: jiff::Timestamp| {
        ts.to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(jiff::Span::new().months(13))
            .unwrap()
            .timestamp()
            .as_second()
    };
    assert!(
        (plus13(deleted_from) - 1..=plus13(deleted_by) + 1).contains(&until),
        "retained-until {until} is not deletion + 13 months ({}..{})",
        plus13(deleted_from),
        plus13(deleted_by)
    );
    cms.get("data")
        .await
        .expect("the tenant's ConfigMap survives");
}

/// Only Covenant's read-only binding of the administrators, and the freeze quota; no Job is made
/// there again.
async fn assert_it_is_read_only_and_frozen(t: &TestCtx, ns: &str, alice: &str) {
    let cronjobs: Api<CronJob> = Api::namespaced(t.client.clone(), ns);
    // Only Covenant's read-only binding of the administrators, and the freeze quota.
    let rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), ns);
    let ro = wait_for(&rbs, "covenant-tenant-readonly", "exist", TIMEOUT, |_| true).await;
    assert_eq!(ro.role_ref.name, "covenant-tenant-readonly");
    assert!(
        ro.subjects.iter().flatten().any(|s| s.name == alice),
        "{ro:?}"
    );
    assert!(
        rbs.get_opt("covenant-tenant-admin")
            .await
            .unwrap()
            .is_none(),
        "covenant-tenant-admin must be gone from a retained namespace"
    );
    let freeze = wait_quota_status(&t.client, ns, "covenant-freeze", "0").await;
    assert_eq!(hard(&freeze).get("pods").map(String::as_str), Some("0"));
    // No Job is made there again: the CronJob is suspended (a retained namespace is never lifted),
    // and the freeze quota refuses a Job even from a cluster administrator (a dry run).
    let c = cronjobs.get("nightly").await.unwrap();
    assert_eq!(
        c.spec.suspend,
        Some(true),
        "the retained CronJob is suspended"
    );
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "by-hand" },
        "spec": serde_json::to_value(&c.spec.job_template).unwrap()["spec"].clone()
    }))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match Api::<Job>::namespaced(t.client.clone(), ns)
        .create(&dry, &job)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("covenant-freeze") => {}
        other => panic!("the freeze quota must refuse a Job in a retained namespace: {other:?}"),
    }
}

/// The administrator can still download its data, but not write; nothing new starts; it is still
/// there a little later.
async fn assert_the_administrator_reads_but_writes_nothing(t: &TestCtx, ns: &str, alice: &str) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // The administrator can still download its data, but not write.
    let c = impersonate(alice, &[]).await;
    let theirs: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let got = theirs
        .get("data")
        .await
        .expect("the administrator reads its retained ConfigMap");
    assert_eq!(
        got.data.unwrap().get("invoice").map(String::as_str),
        Some("42")
    );
    let mut failures = Vec::new();
    let new_cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "new" } })).unwrap();
    failures.extend(
        forbidden(
            "create a ConfigMap in a retained namespace",
            theirs.create(&PostParams::default(), &new_cm).await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            "create a Pod in a retained namespace",
            Api::<Pod>::namespaced(c.clone(), ns)
                .create(&PostParams::default(), &pod("late"))
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing new starts, not even for someone with write access.
    wait_default_sa(&t.client, ns).await;
    let refused = api_error(
        "an admin's Pod in a retained namespace",
        Api::<Pod>::namespaced(t.client.clone(), ns)
            .create(&PostParams::default(), &pod("late"))
            .await,
    );
    assert!(
        refused.message.contains("exceeded quota"),
        "{}",
        refused.message
    );

    // Still there a little later (the retention is 13 months, not seconds).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nss.get(ns).await.unwrap();
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "the retained namespace is being deleted"
    );
}

#[tokio::test]
async fn a_retention_of_zero_months_deletes_the_namespaces() {
    let t = TestCtx::new("retain-zero").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[],
        &[&t.name("alice")],
        json!({ "retentionMonths": 0 }),
    ))
    .await;
    wait_account_ready(&t.client, &acct).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .delete(&acct, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &acct, false, TIMEOUT).await;
    wait_gone(
        &Api::<Namespace>::all(t.client.clone()),
        &acct,
        true,
        TIMEOUT,
    )
    .await;
}

#[tokio::test]
async fn deleting_an_account_with_policy_delete_deletes_its_namespaces() {
    let t = TestCtx::new("policy-delete").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    let (ns_a, ns_b) = (t.name("acct-a"), t.name("acct-b"));
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[&ns_a, &ns_b],
        &[&t.name("alice")],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    wait_account_ready(&t.client, &acct).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .delete(&acct, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &acct, false, TIMEOUT).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    for ns in [&ns_a, &ns_b] {
        wait_gone(&nss, ns, true, TIMEOUT).await;
    }
}

#[tokio::test]
async fn a_namespace_dropped_from_an_account_is_released_not_deleted() {
    let t = TestCtx::new("drop-namespace").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("acct");
    let (ns_a, ns_b) = (t.name("acct-a"), t.name("acct-b"));
    let alice = t.name("alice");
    t.apply(&account(
        &acct,
        Some(&pkg),
        &[&ns_a, &ns_b],
        &[&alice],
        json!({}),
    ))
    .await;
    wait_account_ready(&t.client, &acct).await;
    t.apply(&account(&acct, Some(&pkg), &[&ns_a], &[&alice], json!({})))
        .await;
    let a = wait_account_ready(&t.client, &acct).await;
    assert_eq!(a.status.unwrap().namespaces, vec![ns_a.clone()]);
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let n = wait_for(
        &nss,
        &ns_b,
        "be released (covenant.dev/retained-until)",
        TIMEOUT,
        |n| label(n, "covenant.dev/retained-until").is_some(),
    )
    .await;
    assert!(n.metadata.deletion_timestamp.is_none());
    let rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), &ns_b);
    wait_for(&rbs, "covenant-tenant-readonly", "exist", TIMEOUT, |_| true).await;
    eventually(
        "covenant-tenant-admin is gone from the released namespace",
        TIMEOUT,
        || async {
            match rbs.get_opt("covenant-tenant-admin").await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    // The namespace still in the spec keeps everything.
    Api::<RoleBinding>::namespaced(t.client.clone(), &ns_a)
        .get("covenant-tenant-admin")
        .await
        .expect("the kept namespace keeps the admin binding");
}

/// From the tenant administrator's side (impersonated): no way to escalate (bind cluster-admin, grant
/// roles it does not hold), to make namespaces, or to touch Covenant's own objects, such as lifting
/// its own suspension. `kubectl auth can-i` answers for RBAC; real requests show the API server agrees.
#[tokio::test]
async fn a_tenant_admin_cannot_escalate_make_namespaces_or_lift_its_own_suspension() {
    let t = TestCtx::new("no-escalation").await;
    let alice = format!("alice-{}", t.suffix);
    let acct = t
        .tenant("esc")
        .default_package()
        .admin(&alice)
        .retain()
        .await
        .account;
    let mut failures = authorizer_refusals(&alice, &acct);
    let c = impersonate(&alice, &[]).await;
    failures.extend(refusals_of_real_requests(&t, &c, &alice, &acct).await);
    // Its own suspension: neither deleted (lifted) nor its status rewritten.
    let susp = t.name("susp");
    t.track("suspensions.covenant.dev", &susp);
    t.apply(&fixtures::suspension(
        &susp,
        &acct,
        "MaterialBreach",
        "Unpaid invoices past 60 days",
        json!({}),
    ))
    .await;
    wait_account(
        &t.client,
        &acct,
        "Suspended",
        "True",
        Some("MaterialBreach"),
    )
    .await;
    let suspensions: Api<covenant::api::Suspension> = Api::all(c.clone());
    failures.extend(
        forbidden(
            "delete (lift) its own Suspension",
            suspensions.delete(&susp, &DeleteParams::default()).await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            "mark its own Suspension lifted",
            suspensions
                .patch_status(
                    &susp,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": { "phase": "Lifted" } })),
                )
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    wait_account(
        &t.client,
        &acct,
        "Suspended",
        "True",
        Some("MaterialBreach"),
    )
    .await;
}

/// What the API server's authorizer refuses a tenant administrator (`kubectl auth can-i --as`),
/// after the control (it may create Deployments in its namespace): the refusals it did not give.
fn authorizer_refusals(alice: &str, acct: &str) -> Vec<String> {
    let can_i = |args: &[&str]| {
        let mut full = vec!["auth", "can-i", "--as", alice];
        full.extend_from_slice(args);
        let out = kubectl(&full);
        (out.stdout.trim().to_string(), out.stderr.trim().to_string())
    };
    // The control: what an administrator is for.
    assert_eq!(can_i(&["create", "deployments", "-n", acct]).0, "yes");
    let mut failures = Vec::new();
    let own_account = format!("accounts.covenant.dev/{acct}");
    // `create namespaces` is granted (self-service, for its own account only): the real request below
    // shows that a namespace that is not for its account is refused.
    for args in [
        vec!["create", "clusterrolebindings"],
        vec!["bind", "clusterroles"],
        vec!["escalate", "roles", "-n", &acct],
        vec!["bind", "clusterroles/cluster-admin", "-n", &acct],
        vec!["update", "accounts.covenant.dev"],
        vec!["patch", own_account.as_str()],
        vec!["create", "suspensions.covenant.dev"],
        vec!["delete", "suspensions.covenant.dev"],
        vec!["patch", "suspensions.covenant.dev", "--subresource=status"],
        vec!["update", "supportpackages.covenant.dev"],
        vec!["create", "deprecationnotices.covenant.dev"],
        vec!["impersonate", "users"],
        vec!["create", "serviceaccounts/token", "-n", "covenant-system"],
    ] {
        let (answer, stderr) = can_i(&args);
        if answer != "no" {
            failures.push(format!("can-i {}: {answer} {stderr}", args.join(" ")));
        }
    }
    failures
}

/// What the API server refuses a tenant administrator's real requests (binding cluster-admin,
/// creating a namespace, editing its Account): the refusals it did not give.
async fn refusals_of_real_requests(
    t: &TestCtx,
    c: &Client,
    alice: &str,
    acct: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let to_cluster_admin: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "take-over" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "kind": "User", "name": alice, "apiGroup": "rbac.authorization.k8s.io" }]
    }))
    .unwrap();
    failures.extend(
        forbidden(
            "bind cluster-admin in its own namespace",
            Api::<RoleBinding>::namespaced(c.clone(), acct)
                .create(&PostParams::default(), &to_cluster_admin)
                .await,
        )
        .err(),
    );
    let ns: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": t.name("mine") } })).unwrap();
    failures.extend(
        forbidden(
            "create a namespace",
            Api::<Namespace>::all(c.clone())
                .create(&PostParams::default(), &ns)
                .await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            "edit its own Account",
            Api::<Account>::all(c.clone())
                .patch(
                    acct,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "quota": { "pods": "100000" } } })),
                )
                .await,
        )
        .err(),
    );
    failures
}

/// Puts the generated SupportPackage CRD back as `make crds` wrote it (also when the test that
/// relaxed it fails half-way: other tests of this binary rely on its rules).
struct RestorePackageCrd;

impl RestorePackageCrd {
    fn restore(&self) {
        let file = covenant_e2e::repo_root().join("crds/supportpackages.covenant.dev.yaml");
        let out = kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=covenant-e2e-install",
            "-f",
            &file.to_string_lossy(),
        ]);
        assert!(
            out.success,
            "restore the SupportPackage CRD: {}",
            out.stderr
        );
    }
}

impl Drop for RestorePackageCrd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let file = covenant_e2e::repo_root().join("crds/supportpackages.covenant.dev.yaml");
            kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=covenant-e2e-install",
                "-f",
                &file.to_string_lossy(),
            ]);
        }
    }
}

/// A SupportPackage `name` (room for 5 pods) whose platform namespaces are selected each by one
/// label of `selectors`.
fn package_selecting(name: &str, selectors: &[(&str, &str)]) -> SupportPackage {
    let mut spec: covenant::api::SupportPackageSpec = fixtures::typed("a package spec", json!({}));
    spec.quota = Some(fixtures::resources(json!({ "pods": "5" })));
    spec.network = Some(covenant::api::PackageNetwork {
        ingress_from: selectors
            .iter()
            .map(
                |(k, v)| k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(fixtures::map(&[(k, v)])),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    });
    SupportPackage::new(name, spec)
}

/// A package stored before the API server refused platform selectors on labels anyone who may patch
/// a namespace can set (made here by lifting that rule from the CRD for one create, as an older
/// Covenant's CRD would have let it in) keeps its tenants isolated: the refused selector is not
/// applied, so a namespace carrying its label gets no traffic in (judged by the NetworkPolicy engine on
/// the live policies) while the platform namespace selected by name still does; the package is
/// `Ready=False` (`RefusedPlatformSelector`) and the account's `NetworkIsolated` message both name the
/// selector and what to change. Once the package drops it, the package is Ready again.
#[tokio::test]
async fn a_package_stored_with_a_now_refused_platform_selector_lets_nothing_in_by_it_and_says_so() {
    let t = TestCtx::new("stored-selector").await;
    let platform = t.namespace("platform");
    let squat = t.namespace("squat");
    let team = format!("platform-{}", t.suffix);
    let pkg = t.package("pkg");
    let stored = package_selecting(
        &pkg,
        &[("team", &team), ("kubernetes.io/metadata.name", &platform)],
    );
    let packages: Api<SupportPackage> = Api::all(t.client.clone());

    store_under_a_crd_without_the_rule(&t, &packages, &stored).await;
    let acct =
        assert_the_account_and_the_package_name_the_refused_selector(&t, &pkg, &packages).await;
    assert_only_the_platform_by_name_gets_in(&t, &acct, &platform, &squat, &team).await;
    // Fixed by the platform: the refused selector goes, and the package is Ready again.
    t.apply(&package_selecting(
        &pkg,
        &[("kubernetes.io/metadata.name", &platform)],
    ))
    .await;
    wait_for(&packages, &pkg, "be Ready again", TIMEOUT, |p| {
        p.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    wait_account(
        &t.client,
        &acct,
        "NetworkIsolated",
        "True",
        Some("Isolated"),
    )
    .await;
}

/// Stores `stored` under the CRD without the rule on matchLabels keys, as before the rule existed;
/// then restores the CRD and sees the same package, new, refused again.
async fn store_under_a_crd_without_the_rule(
    t: &TestCtx,
    packages: &Api<SupportPackage>,
    stored: &SupportPackage,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    // The CRD without the rule on matchLabels keys, as before the rule existed.
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd_name = "supportpackages.covenant.dev";
    let guard = RestorePackageCrd;
    let mut relaxed = serde_json::to_value(crds.get(crd_name).await.unwrap()).unwrap();
    let match_labels = &mut relaxed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["spec"]["properties"]["network"]["properties"]["ingressFrom"]["items"]["properties"]["matchLabels"];
    assert!(
        match_labels
            .as_object_mut()
            .and_then(|m| m.remove("x-kubernetes-validations"))
            .is_some(),
        "the CRD has a rule on ingressFrom matchLabels: {match_labels}"
    );
    crds.replace(
        crd_name,
        &PostParams::default(),
        &serde_json::from_value(relaxed).unwrap(),
    )
    .await
    .expect("relax the SupportPackage CRD");
    eventually(
        "the package with a selector on `team` is stored under the relaxed CRD",
        TIMEOUT,
        || async {
            packages
                .create(&PostParams::default(), stored)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    guard.restore();
    // The rule is back: the same package, new, is refused again.
    let mut again = stored.clone();
    again.metadata.name = Some(t.package("again"));
    eventually(
        "the restored CRD refuses the selector again",
        TIMEOUT,
        || async {
            match packages.create(&PostParams::default(), &again).await {
                Err(kube::Error::Api(e)) if e.message.contains("kubernetes.io/metadata.name") => {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    drop(guard);
}

/// An account on it is Ready, and told which selector is not applied and what to use instead, as
/// the package is. Returns the account.
async fn assert_the_account_and_the_package_name_the_refused_selector(
    t: &TestCtx,
    pkg: &str,
    packages: &Api<SupportPackage>,
) -> String {
    // An account on it: told which selector is not applied, as the package is.
    let acct = t
        .tenant("acct")
        .package(pkg)
        .admin(&t.name("alice"))
        .unready()
        .await
        .account;
    let a = wait_account_ready(&t.client, &acct).await;
    let net = condition(&a, "NetworkIsolated").expect("a NetworkIsolated condition");
    assert_eq!(
        (net.status.as_str(), net.reason.as_str()),
        ("True", "RefusedPlatformSelector"),
        "{net:?}"
    );
    assert!(
        net.message.contains("ingressFrom[0]")
            && net.message.contains("\"team\"")
            && net.message.contains("kubernetes.io/metadata.name"),
        "the account is told which selector is not applied and what to use instead: {net:?}"
    );
    let p = wait_for(
        packages,
        pkg,
        "be Ready=False RefusedPlatformSelector",
        TIMEOUT,
        |p| {
            p.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Ready"
                        && c.status == "False"
                        && c.reason == "RefusedPlatformSelector"
                })
            })
        },
    )
    .await;
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .unwrap();
    assert!(
        ready.message.contains("ingressFrom[0]") && ready.message.contains("\"team\""),
        "{ready:?}"
    );
    acct
}

/// The engine on the live policies: the platform by name gets in, the squatter by team does not.
async fn assert_only_the_platform_by_name_gets_in(
    t: &TestCtx,
    acct: &str,
    platform: &str,
    squat: &str,
    team: &str,
) {
    use covenant_e2e::netpol::{self, Peer, Probe};
    // The engine on the live policies: the platform by name gets in, the squatter by team does not.
    let nss: Api<Namespace> = Api::all(t.client.clone());
    for (name, labels) in [(&platform, json!({})), (&squat, json!({ "team": team }))] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }
    let tenant_pod = Peer::pod(&nss.get(acct).await.unwrap(), "10.244.1.10");
    let probes = vec![
        Probe {
            name: "the platform namespace, selected by name → a tenant pod".into(),
            from: Peer::pod(&nss.get(platform).await.unwrap(), "10.244.4.10"),
            to: tenant_pod.clone(),
            port: 8080,
            protocol: "TCP",
        },
        Probe {
            name: format!("a namespace labelled team={team} → a tenant pod"),
            from: Peer::pod(&nss.get(squat).await.unwrap(), "10.244.5.10"),
            to: tenant_pod.clone(),
            port: 8080,
            protocol: "TCP",
        },
    ];
    eventually(
        "the engine's verdicts on the live policies",
        TIMEOUT,
        || async {
            let v = netpol::evaluate(&t.client, &probes)
                .await
                .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
            if v[0].allowed && !v[1].allowed {
                Ok(())
            } else {
                Err(format!("{v:#?}"))
            }
        },
    )
    .await;
}
