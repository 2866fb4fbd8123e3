//! `helm upgrade` from the previous chart version keeps every tenant. The previous version is the chart
//! 0.1.0 as the repository had it before the chart was reworked by the Helm best practices (commit
//! [`PREVIOUS`]: the CRDs in the chart's `crds/` folder, which Helm installs once and never owns),
//! packaged from git history; the current one is `make dist`'s. Both are pushed to an OCI registry on
//! loopback (`crane registry serve`) with `helm push`, the previous one is installed from it, tenants
//! are provisioned (namespaces, bindings, a ConfigMap of their data), and the release is upgraded to
//! the current chart from the registry, with the image pointing at the registry.
//!
//! Helm refuses to take over the CRDs the previous chart installed from `crds/` (they carry no release
//! ownership), so the upgrade first gives them the release's ownership metadata, as docs/install.md's upgrade
//! note says; the test checks that without it the upgrade is refused and changes nothing.
//!
//! No kubelet: the operator runs as a child process, before the upgrade under the previous chart's
//! ServiceAccount, after it under the upgraded one with the upgraded Deployment's arguments. Like
//! `oci`, a stage of its own in `e2e/run.sh` (a cluster of its own, [`bare_cluster`]).

use std::collections::BTreeMap;

use covenant::api::Account;
use covenant_e2e::cluster::{CRDS, bare_cluster};
use covenant_e2e::fixtures::account;
use covenant_e2e::operator::Operator;
use covenant_e2e::release::{
    Registry, helm, image_archive, make_dist, operator_container, run_args,
    service_account_kubeconfig, wait_crds_established,
};
use covenant_e2e::{TestCtx, kubectl, repo_root, wait_account_ready};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The chart 0.1.0 as it was before the rework by the Helm best practices (CRDs in `crds/`).
const PREVIOUS: &str = "dc56be3eca7c1f7083bb94bb970b42d86076945c";
const PREVIOUS_VERSION: &str = "0.1.0";
const NS: &str = "covenant-system";

/// The previous chart, from git history (`git archive`), packaged by `helm package` into the log dir.
fn previous_chart() -> std::path::PathBuf {
    let c = bare_cluster();
    let dir = c
        .log_dir
        .join(format!("oci-upgrade-previous-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the previous chart");
    let archive = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"git -C "$1" archive "$2" charts/covenant | tar -x -C "$3""#)
        .arg("previous-chart")
        .arg(repo_root())
        .arg(PREVIOUS)
        .arg(&dir)
        .status()
        .expect("run git archive");
    assert!(
        archive.success(),
        "git archive {PREVIOUS} charts/covenant failed: the previous chart version comes from the \
         repository's history (a shallow clone lacks it: fetch the whole history)"
    );
    helm(
        c,
        &[
            "package",
            &dir.join("charts/covenant").to_string_lossy(),
            "--destination",
            &dir.to_string_lossy(),
        ],
    )
    .expect_ok();
    let tgz = dir.join(format!("covenant-{PREVIOUS_VERSION}.tgz"));
    assert!(tgz.is_file(), "helm package wrote {}", tgz.display());
    tgz
}

/// What a tenant namespace holds that an upgrade must keep: the namespace's uid, the administrators'
/// RoleBinding's uid, and the tenant's data.
#[derive(Debug, PartialEq)]
struct Kept {
    namespace_uid: String,
    binding_uid: String,
    data: BTreeMap<String, String>,
}

async fn kept(client: &Client, ns: &str) -> Kept {
    let n = Api::<Namespace>::all(client.clone())
        .get(ns)
        .await
        .unwrap_or_else(|e| panic!("tenant namespace {ns}: {e}"));
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "tenant namespace {ns} is not being deleted"
    );
    let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get("covenant-tenant-admin")
        .await
        .unwrap_or_else(|e| panic!("RoleBinding {ns}/covenant-tenant-admin: {e}"));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("tenant-data")
        .await
        .unwrap_or_else(|e| panic!("the tenant's data in {ns}: {e}"));
    Kept {
        namespace_uid: n.uid().expect("a uid"),
        binding_uid: rb.uid().expect("a uid"),
        data: cm.data.unwrap_or_default(),
    }
}

#[tokio::test]
async fn helm_upgrade_from_the_previous_chart_version_in_the_registry_keeps_every_tenant() {
    let c = bare_cluster();
    let registry = Registry::start(c);
    let dist = make_dist(
        c,
        &c.log_dir
            .join(format!("oci-upgrade-dist-{}", std::process::id())),
    );
    let (digest, _) = registry.push_image(&image_archive(), &format!("covenant:{VERSION}"));
    registry.push_chart(c, &previous_chart());
    registry.push_chart(c, &dist.join(format!("covenant-{VERSION}.tgz")));
    let tags = registry.crane(&["ls", &format!("{}/charts/covenant", registry.host)]);
    let mut tags: Vec<&str> = tags.expect_ok().lines().collect();
    tags.sort();
    assert_eq!(
        tags,
        [PREVIOUS_VERSION, VERSION],
        "both chart versions are in the registry"
    );

    // The previous version, installed from the registry.
    helm(
        c,
        &[
            "install",
            "covenant",
            &registry.chart_url(),
            "--version",
            PREVIOUS_VERSION,
            "--plain-http",
            "-n",
            NS,
            "--create-namespace",
            "--wait=false",
        ],
    )
    .expect_ok();
    let t = TestCtx::without_operator("oci-upgrade").await;
    wait_crds_established(&t.client).await;

    // Tenants, provisioned before the upgrade: one with two namespaces (retained on deletion), one
    // with its default namespace; data in each namespace. The binary is the current one, which needs
    // more than the previous chart's ServiceAccount grants (Ingresses, ConfigMaps in its namespace,
    // CronJobs), so it runs as the cluster administrator here; after the upgrade the operator runs
    // under the upgraded release's ServiceAccount.
    let kc = c.kubeconfig.clone();
    let mut before = Operator::custom(
        c,
        "oci-upgrade-before",
        &kc,
        &[],
        &[("POD_NAME", "covenant-before-0"), ("POD_NAMESPACE", NS)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    before.start();
    let globex = t.account("globex");
    // Retained on deletion: the namespaces are deleted with the test's own.
    let globex_ns = [t.namespace("globex-prod"), t.namespace("globex-staging")];
    let initech = t.account("initech");
    let admin = format!("alice-{}", t.suffix);
    t.apply(&account(
        &globex,
        None,
        &[&globex_ns[0], &globex_ns[1]],
        &[&admin],
        json!({ "deletionPolicy": "Retain" }),
    ))
    .await;
    t.apply(&account(
        &initech,
        None,
        &[],
        &[&admin],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    wait_account_ready(&t.client, &globex).await;
    wait_account_ready(&t.client, &initech).await;
    let namespaces = [globex_ns[0].clone(), globex_ns[1].clone(), initech.clone()];
    for ns in &namespaces {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "tenant-data" },
            "data": { "orders.csv": format!("id,total\n1,{ns}\n") }
        }))
        .expect("a ConfigMap");
        Api::<ConfigMap>::namespaced(t.client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap_or_else(|e| panic!("create the tenant's data in {ns}: {e}"));
    }
    let mut was = BTreeMap::new();
    for ns in &namespaces {
        was.insert(ns.clone(), kept(&t.client, ns).await);
    }
    let accounts: Api<Account> = Api::all(t.client.clone());
    let mut account_uids = BTreeMap::new();
    for a in [&globex, &initech] {
        account_uids.insert(a.clone(), accounts.get(a).await.expect("Account").uid());
    }
    // An upgrade replaces the operator's pods: the old one stops before it.
    drop(before);

    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "upgrade".to_string(),
            "covenant".into(),
            registry.chart_url(),
            "--version".into(),
            VERSION.into(),
            "--plain-http".into(),
            "-n".into(),
            NS.into(),
            "--wait=false".into(),
            "--set".into(),
            format!("image.repository={}/covenant", registry.host),
            "--set".into(),
            format!("image.tag={VERSION}@{digest}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helm(c, &args)
    };

    // The previous chart installed its CRDs from crds/, unowned: Helm refuses to adopt them, and the
    // refused upgrade leaves the release as it was.
    let refused = upgrade(&[]);
    assert!(
        !refused.success && refused.stderr.contains("invalid ownership metadata"),
        "an upgrade over the previous chart's unowned CRDs is refused:\n{}\n{}",
        refused.stdout,
        refused.stderr
    );
    let listed: serde_json::Value =
        serde_json::from_str(helm(c, &["list", "-n", NS, "-a", "-o", "json"]).expect_ok())
            .expect("JSON");
    assert_eq!(
        listed[0]["chart"].as_str(),
        Some(format!("covenant-{PREVIOUS_VERSION}").as_str()),
        "the refused upgrade left the previous release: {listed}"
    );

    // docs/install.md's upgrade note: give the CRDs the release's ownership, then upgrade.
    let crds: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
    let mut label = vec!["label", "--overwrite"];
    label.extend(crds.iter().map(String::as_str));
    label.push("app.kubernetes.io/managed-by=Helm");
    kubectl(&label).expect_ok();
    let mut annotate = vec!["annotate", "--overwrite"];
    annotate.extend(crds.iter().map(String::as_str));
    annotate.extend([
        "meta.helm.sh/release-name=covenant",
        "meta.helm.sh/release-namespace=covenant-system",
    ]);
    kubectl(&annotate).expect_ok();
    upgrade(&[]).expect_ok();

    let listed: serde_json::Value =
        serde_json::from_str(helm(c, &["list", "-n", NS, "-o", "json"]).expect_ok()).expect("JSON");
    assert_eq!(
        (
            listed[0]["chart"].as_str(),
            listed[0]["status"].as_str(),
            listed[0]["app_version"].as_str()
        ),
        (
            Some(format!("covenant-{VERSION}").as_str()),
            Some("deployed"),
            Some(VERSION)
        ),
        "{listed}"
    );
    wait_crds_established(&t.client).await;
    let deployment = Api::<Deployment>::namespaced(t.client.clone(), NS)
        .get("covenant")
        .await
        .expect("the operator Deployment");
    let (image, args, _) = operator_container(&deployment);
    assert_eq!(
        image,
        format!("{}/covenant:{VERSION}@{digest}", registry.host),
        "the upgraded Deployment runs the pushed image"
    );

    // Every tenant is as it was: the same namespaces, bindings, data and Accounts ...
    for ns in &namespaces {
        assert_eq!(
            &kept(&t.client, ns).await,
            &was[ns],
            "tenant namespace {ns} after the upgrade"
        );
    }
    for (a, uid) in &account_uids {
        let after = accounts
            .get_opt(a)
            .await
            .expect("get the Account")
            .unwrap_or_else(|| panic!("Account {a} was deleted by the upgrade"));
        assert_eq!(&after.uid(), uid, "Account {a} is the same object");
    }
    // ... and Ready under the upgraded operator (the Deployment's arguments, the upgraded
    // ServiceAccount's token), which also provisions a new tenant.
    let kc = service_account_kubeconfig(c, NS, "covenant", "oci-upgrade-after");
    let mut after = Operator::custom(
        c,
        "oci-upgrade-after",
        &kc,
        &run_args(&args),
        &[("POD_NAME", "covenant-after-0"), ("POD_NAMESPACE", NS)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    after.start();
    let hooli = t.account("hooli");
    t.apply(&account(
        &hooli,
        None,
        &[],
        &[&admin],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    for a in [&globex, &initech, &hooli] {
        wait_account_ready(&t.client, a).await;
    }
    for ns in &namespaces {
        assert_eq!(
            &kept(&t.client, ns).await,
            &was[ns],
            "tenant namespace {ns} under the upgraded operator"
        );
    }
    after.assert_running();
    eprintln!(
        "[oci-upgrade] covenant-{PREVIOUS_VERSION} ({}) -> covenant-{VERSION} from {}: {} tenant namespaces kept",
        &PREVIOUS[..7],
        registry.host,
        namespaces.len()
    );
    drop(t);
}
