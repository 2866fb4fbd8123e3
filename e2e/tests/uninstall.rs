//! Uninstalling the CRDs while accounts exist must not delete a single tenant namespace: there is no
//! owner reference from a Namespace to its Account, so the garbage collector has nothing to collect.
//! Then reinstalling the CRDs leaves the namespaces alone too.
//!
//! Its tests delete the CRDs of the whole cluster, so they run last (`e2e/run.sh` runs this binary
//! after the others; cargo also runs test binaries in name order, and `uninstall` sorts last), one at
//! a time ([`UNINSTALL`]), and each puts the CRDs back at the end.

use std::time::Duration;

use covenant_e2e::cluster::CRDS;
use covenant_e2e::fixtures::{self, account, label};
use covenant_e2e::{TestCtx, can, cluster, kubectl, wait_account_ready, wait_gone};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// Each test deletes every Covenant CRD and installs them again: one test at a time.
static UNINSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Installs the CRDs again as the harness first did (with `deploy/`, whose default package went with
/// them), and waits until they are Established.
fn try_reinstall() -> Result<(), String> {
    cluster().install()
}

#[track_caller]
fn reinstall() {
    if let Err(e) = try_reinstall() {
        panic!("{e}");
    }
}

/// Puts the CRDs back when a test fails half-way, so the next test (and the cleanup) find them.
/// Declared after the test's [`TestCtx`], so it is dropped before the cleanup runs.
struct CrdsBack;

impl Drop for CrdsBack {
    fn drop(&mut self) {
        if std::thread::panicking()
            && !kubectl(&["get", "crd", "accounts.covenant.dev"]).success
            && let Err(e) = try_reinstall()
        {
            eprintln!("[e2e] could not install the CRDs again after a failed test: {e}");
        }
    }
}

#[tokio::test]
async fn deleting_the_crds_deletes_no_tenant_namespace() {
    let _one_at_a_time = UNINSTALL.lock().await;
    let t = TestCtx::new("uninstall").await;
    let _crds_back = CrdsBack;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let one = t.account("one");
    let two = t.account("two");
    let (two_a, two_b) = (t.name("two-a"), t.name("two-b"));
    t.apply(&account(
        &one,
        Some(&pkg),
        &[],
        &[&t.name("alice")],
        json!({}),
    ))
    .await;
    t.apply(&account(
        &two,
        Some(&pkg),
        &[&two_a, &two_b],
        &[&t.name("bob")],
        json!({}),
    ))
    .await;
    wait_account_ready(&t.client, &one).await;
    wait_account_ready(&t.client, &two).await;
    let tenant_namespaces = [one.clone(), two_a.clone(), two_b.clone()];
    for ns in &tenant_namespaces {
        let cm: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": "data" }, "data": { "k": ns } }))
                .unwrap();
        Api::<ConfigMap>::namespaced(t.client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let uids: Vec<Option<String>> = {
        let mut v = Vec::new();
        for ns in &tenant_namespaces {
            let n = nss.get(ns).await.unwrap();
            assert!(
                n.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty),
                "tenant namespace {ns} has owner references: {:?}",
                n.metadata.owner_references
            );
            v.push(n.metadata.uid);
        }
        v
    };

    // Uninstall: delete every Covenant CRD (and so every Covenant object) at once.
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for name in CRDS {
        crds.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in CRDS {
        // The operator finalizes the accounts (releasing, not deleting, their namespaces).
        wait_gone(&crds, name, false, Duration::from_secs(60)).await;
    }
    // Give the garbage collector and the namespace controller time to do harm.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let check = |when: &'static str| {
        let nss = nss.clone();
        let t = &t;
        let tenant_namespaces = &tenant_namespaces;
        let uids = &uids;
        async move {
            for (ns, uid) in tenant_namespaces.iter().zip(uids) {
                let n = nss
                    .get_opt(ns)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{when}: tenant namespace {ns} was deleted"));
                assert!(
                    n.metadata.deletion_timestamp.is_none(),
                    "{when}: tenant namespace {ns} is being deleted"
                );
                assert_eq!(&n.metadata.uid, uid, "{when}: namespace {ns} was recreated");
                assert!(
                    label(&n, "covenant.dev/account").is_some(),
                    "{when}: namespace {ns} lost its account label"
                );
                let cm = Api::<ConfigMap>::namespaced(t.client.clone(), ns)
                    .get("data")
                    .await
                    .unwrap_or_else(|e| panic!("{when}: the ConfigMap in {ns} is gone: {e}"));
                assert_eq!(cm.data.unwrap().get("k"), Some(ns));
            }
        }
    };
    check("after the CRDs were deleted").await;

    // Reinstall: the namespaces are still left alone.
    reinstall();
    tokio::time::sleep(Duration::from_secs(5)).await;
    check("after the CRDs were reinstalled").await;
    // The operator is still alive after losing and regaining its CRDs.
    covenant_e2e::operator::ensure();
}

/// What an administrator may do in its namespaces (verb, resource), as the authorizer answers.
const ADMIN_RIGHTS: &[(&str, &str)] = &[
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "secrets"),
    ("create", "configmaps"),
    ("get", "configmaps"),
    ("create", "deployments.apps"),
];

/// Uninstalling is never a deletion. With the operator running and Accounts of both deletion policies
/// present (`Delete` and `Retain`), deleting Covenant's CRDs the way an uninstall does (`kubectl delete
/// crd`) makes the Account finalizer only remove itself: every tenant namespace still exists with its
/// data, nothing is released or made read-only, the administrators' RoleBinding is the same object,
/// and the authorizer still allows each administrator what it allowed before.
#[tokio::test]
async fn uninstalling_covenant_leaves_every_tenant_its_namespaces_data_and_access_whatever_its_deletion_policy()
 {
    let _one_at_a_time = UNINSTALL.lock().await;
    let t = TestCtx::new("uninstall-access").await;
    let _crds_back = CrdsBack;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let deleted = t.account("delete");
    let retained = t.account("retain");
    let (alice, carol) = (t.name("alice"), t.name("carol"));
    let (del_a, del_b) = (t.name("delete-a"), t.name("delete-b"));
    t.apply(&account(
        &deleted,
        Some(&pkg),
        &[&del_a, &del_b],
        &[&alice],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    t.apply(&account(
        &retained,
        Some(&pkg),
        &[],
        &[&carol],
        json!({ "deletionPolicy": "Retain" }),
    ))
    .await;
    wait_account_ready(&t.client, &deleted).await;
    wait_account_ready(&t.client, &retained).await;
    let tenants = [
        (del_a.clone(), alice.clone()),
        (del_b.clone(), alice.clone()),
        (retained.clone(), carol.clone()),
    ];
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let mut before = Vec::new();
    for (ns, admin) in &tenants {
        Api::<ConfigMap>::namespaced(t.client.clone(), ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({ "metadata": { "name": "data" }, "data": { "invoice": ns } }),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        let rb = Api::<RoleBinding>::namespaced(t.client.clone(), ns)
            .get("covenant-tenant-admin")
            .await
            .unwrap_or_else(|e| panic!("the administrators' RoleBinding in {ns}: {e}"));
        assert!(
            rb.subjects.iter().flatten().any(|s| &s.name == admin),
            "{ns}: {rb:?}"
        );
        for (verb, resource) in ADMIN_RIGHTS {
            assert!(
                can(&t.client, admin, &[], verb, resource, "", ns).await,
                "before the uninstall {admin} may {verb} {resource} in {ns}"
            );
        }
        let n = nss.get(ns).await.unwrap();
        before.push((n.uid(), n.labels().clone(), rb.uid(), rb.subjects.clone()));
    }

    // Uninstall, as an operator of the platform would: kubectl deletes the CRDs and waits for them
    // (and so for every Account's finalizer) to be gone.
    let mut delete = vec!["delete", "crd", "--wait=true", "--timeout=120s"];
    delete.extend(CRDS);
    kubectl(&delete).expect_ok();
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for name in CRDS {
        wait_gone(&crds, name, false, Duration::from_secs(60)).await;
    }
    // Give the operator, the garbage collector and the namespace controller time to do harm.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let mut failures = Vec::new();
    for ((ns, admin), before) in tenants.iter().zip(&before) {
        failures.extend(what_the_uninstall_changed(&t, ns, admin, before).await);
    }
    reinstall();
    covenant_e2e::operator::ensure();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a namespace held before the uninstall: its uid and labels, the administrators' binding's uid
/// and subjects.
type Before = (
    Option<String>,
    std::collections::BTreeMap<String, String>,
    Option<String>,
    Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
);

/// How the tenant namespace `ns` of `admin` differs, after the uninstall, from what it was: gone,
/// being deleted, recreated, relabelled, its data or the administrators' binding changed, a right
/// of the administrator lost.
async fn what_the_uninstall_changed(
    t: &TestCtx,
    ns: &str,
    admin: &str,
    (uid, labels, rb_uid, subjects): &Before,
) -> Vec<String> {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let mut failures = Vec::new();
    let Some(n) = nss.get_opt(ns).await.unwrap() else {
        failures.push(format!("namespace {ns} was deleted"));
        return failures;
    };
    if n.metadata.deletion_timestamp.is_some() {
        failures.push(format!("namespace {ns} is being deleted"));
    }
    if &n.uid() != uid {
        failures.push(format!("namespace {ns} was recreated"));
    }
    if n.labels() != labels {
        failures.push(format!(
            "the labels of namespace {ns} changed (released or made read-only?): {labels:?} -> {:?}",
            n.labels()
        ));
    }
    match Api::<ConfigMap>::namespaced(t.client.clone(), ns)
        .get("data")
        .await
    {
        Ok(cm)
            if cm
                .data
                .as_ref()
                .and_then(|d| d.get("invoice"))
                .map(String::as_str)
                == Some(ns) => {}
        Ok(cm) => failures.push(format!("the ConfigMap in {ns} changed: {:?}", cm.data)),
        Err(e) => failures.push(format!("the ConfigMap in {ns} is gone: {e}")),
    }
    match Api::<RoleBinding>::namespaced(t.client.clone(), ns)
        .get_opt("covenant-tenant-admin")
        .await
        .unwrap()
    {
        Some(rb) if &rb.uid() == rb_uid && &rb.subjects == subjects => {}
        Some(rb) => failures.push(format!(
            "the administrators' RoleBinding in {ns} changed: {subjects:?} -> {rb:?}"
        )),
        None => failures.push(format!("the administrators' RoleBinding in {ns} is gone")),
    }
    for (verb, resource) in ADMIN_RIGHTS {
        if !can(&t.client, admin, &[], verb, resource, "", ns).await {
            failures.push(format!(
                "after the uninstall {admin} may no longer {verb} {resource} in {ns}"
            ));
        }
    }
    failures
}
