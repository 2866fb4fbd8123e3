//! Uninstalling the CRDs while accounts exist must not delete a single tenant namespace: there is no
//! owner reference from a Namespace to its Account, so the garbage collector has nothing to collect.
//! Then reinstalling the CRDs leaves the namespaces alone too.
//!
//! It deletes the CRDs of the whole cluster, so it runs last (`e2e/run.sh` runs this binary after the
//! others; cargo also runs test binaries in name order, and `uninstall` sorts last). It puts the CRDs
//! back at the end.

use std::time::Duration;

use covenant_e2e::cluster::{CRDS, repo_root};
use covenant_e2e::fixtures::{self, account, label};
use covenant_e2e::{TestCtx, kubectl, wait_account_ready, wait_gone};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn deleting_the_crds_deletes_no_tenant_namespace() {
    let t = TestCtx::new("uninstall").await;
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
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=covenant-e2e-install",
        "-f",
        &repo_root().join("crds").to_string_lossy(),
    ])
    .expect_ok();
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
    wait.extend(names.iter().map(String::as_str));
    kubectl(&wait).expect_ok();
    // And the default package that went with them.
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=covenant-e2e-install",
        "-f",
        &repo_root()
            .join("deploy/default-package.yaml")
            .to_string_lossy(),
    ])
    .expect_ok();
    tokio::time::sleep(Duration::from_secs(5)).await;
    check("after the CRDs were reinstalled").await;
    // The operator is still alive after losing and regaining its CRDs.
    covenant_e2e::operator::ensure();
}
