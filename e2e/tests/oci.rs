//! Published and installed as a user installs it: the container image (the archive of
//! `hack/build-image.sh`) and the packaged chart of `make dist` are pushed to an OCI registry on
//! loopback (`crane registry serve`, go-containerregistry built from its Go module) with `crane push`
//! and `helm push`, read back from it, and `helm install oci://…` of the pushed chart, with the image
//! pointing at the registry, installs a working operator on a control plane of this binary's own.
//!
//! There is no kubelet: the Deployment's pods never run and nothing pulls the image, so the test
//! checks what the API server holds (the Deployment's image is the pushed digest, the CRDs are
//! Established) and runs the operator as a child process with the Deployment's own arguments, under
//! the installed ServiceAccount's identity (a TokenRequest token), as its pod would.
//!
//! Like `chart` and `dist`, it needs a cluster without `deploy/` ([`bare_cluster`]); `e2e/run.sh` runs
//! it as a stage of its own, after building the image archive (`COVENANT_IMAGE_ARCHIVE`).

use covenant_e2e::TestCtx;
use covenant_e2e::cluster::bare_cluster;
use covenant_e2e::operator::Operator;
use covenant_e2e::release::{
    Registry, helm, helm_install, image_archive, make_dist, operator_container,
    ready_account_on_the_default_package, run_args, service_account_kubeconfig,
    wait_crds_established,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const NS: &str = "covenant-system";

#[tokio::test]
async fn the_pushed_image_and_chart_install_a_working_operator_with_helm_from_the_registry() {
    let c = bare_cluster();
    let registry = Registry::start(c);
    let dist = make_dist(
        c,
        &c.log_dir.join(format!("oci-dist-{}", std::process::id())),
    );

    // The image: what the registry serves is the archive's manifest, byte for byte (same digest).
    let image = format!("{}/covenant:{VERSION}", registry.host);
    let (digest, manifest) = registry.push_image(&image_archive(), &format!("covenant:{VERSION}"));
    assert_eq!(
        registry.crane(&["digest", &image]).expect_ok().trim(),
        digest,
        "the registry serves {image} with the archive's manifest digest"
    );
    let served = registry.crane(&["manifest", &image]);
    assert_eq!(
        served.expect_ok().as_bytes(),
        manifest.as_slice(),
        "crane manifest {image} is the archive's manifest"
    );
    let config: serde_json::Value =
        serde_json::from_str(registry.crane(&["config", &image]).expect_ok()).expect("JSON");
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"].as_str(),
        Some(VERSION),
        "the image's version label: {config}"
    );

    // The chart: `helm push` of dist/covenant-<version>.tgz; `helm pull` gives back the same file.
    let tgz = dist.join(format!("covenant-{VERSION}.tgz"));
    let chart_digest = registry.push_chart(c, &tgz);
    let chart_ref = format!("{}/charts/covenant:{VERSION}", registry.host);
    assert_eq!(
        registry.crane(&["digest", &chart_ref]).expect_ok().trim(),
        chart_digest,
        "the registry serves the chart helm pushed"
    );
    let pulled = c.log_dir.join(format!("oci-pull-{}", std::process::id()));
    std::fs::create_dir_all(&pulled).expect("helm pull's destination");
    helm(
        c,
        &[
            "pull",
            &registry.chart_url(),
            "--version",
            VERSION,
            "--plain-http",
            "--destination",
            &pulled.to_string_lossy(),
        ],
    )
    .expect_ok();
    assert_eq!(
        std::fs::read(pulled.join(format!("covenant-{VERSION}.tgz"))).expect("the pulled chart"),
        std::fs::read(&tgz).expect("the packaged chart"),
        "helm pull gives back the packaged chart, byte for byte"
    );

    // helm install from the registry, the image by tag and digest (what a pull would verify).
    let image_ref = format!("{}/covenant:{VERSION}@{digest}", registry.host);
    helm_install(
        c,
        &[
            "install",
            "covenant",
            &registry.chart_url(),
            "--version",
            VERSION,
            "--plain-http",
            "-n",
            NS,
            "--create-namespace",
            "--wait=false",
            "--set",
            &format!("image.repository={}/covenant", registry.host),
            "--set",
            &format!("image.tag={VERSION}@{digest}"),
        ],
    )
    .expect_ok();
    let listed: serde_json::Value =
        serde_json::from_str(helm(c, &["list", "-n", NS, "-o", "json"]).expect_ok()).expect("JSON");
    assert_eq!(
        (listed[0]["chart"].as_str(), listed[0]["status"].as_str()),
        (
            Some(format!("covenant-{VERSION}").as_str()),
            Some("deployed")
        ),
        "{listed}"
    );

    // What the API server holds: the Deployment runs the pushed image; the CRDs are served.
    let t = TestCtx::without_operator("oci-install").await;
    let deployment = Api::<Deployment>::namespaced(t.client.clone(), NS)
        .get("covenant")
        .await
        .expect("the operator Deployment");
    let (held, args, env) = operator_container(&deployment);
    assert_eq!(held, image_ref, "the Deployment's image is the pushed one");
    assert!(
        env.iter().any(|e| e == "POD_NAMESPACE"),
        "the Deployment passes POD_NAMESPACE: {env:?}"
    );
    wait_crds_established(&t.client).await;

    // The operator, with the Deployment's arguments and the installed ServiceAccount's token.
    let kc = service_account_kubeconfig(c, NS, "covenant", "oci");
    let mut op = Operator::custom(
        c,
        "oci",
        &kc,
        &run_args(&args),
        &[("POD_NAME", "covenant-oci-0"), ("POD_NAMESPACE", NS)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    op.start();
    let (acct, pods) = ready_account_on_the_default_package(&t, "oci").await;
    assert_eq!(
        pods.as_deref(),
        Some("20"),
        "provisioned on the chart's default package (`standard`)"
    );
    op.assert_running();
    eprintln!(
        "[oci] {image_ref} and {chart_ref} ({chart_digest}) pushed to {}; helm install from it: account {acct} Ready",
        registry.host
    );
    drop(t);
}
