//! The release artifacts of `make dist` (hack/dist.sh) on a control plane of this binary's own:
//! `kubectl apply --server-side -f dist/covenant.yaml`, then `dist/default-package.yaml`, installs a
//! working operator (the binary, run with the Deployment's own arguments under the ServiceAccount the
//! file creates, with a token from the TokenRequest API, provisions an Account on the default
//! package); and every values combination of `charts/covenant/ci/values/` (the ones kube-score scores
//! in `make checks`), rendered by `helm template`, is accepted by the API server in a server-side dry
//! run, in a namespace that enforces Pod Security `restricted`, without a warning.
//!
//! Like `chart`, it needs a cluster without `deploy/` ([`bare_cluster`]); `e2e/run.sh` runs it as a
//! stage of its own, without `COVENANT_E2E_KUBECONFIG`. There is no kubelet: the Deployment's pods
//! never run, so the operator runs here as a child process, as the pod would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use covenant_e2e::cluster::{CRDS, bare_cluster};
use covenant_e2e::operator::Operator;
use covenant_e2e::release::{
    ready_account_on_the_default_package, run_args, service_account_kubeconfig,
};
use covenant_e2e::{TestCtx, kubectl, kubectl_stdin, repo_root};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::json;

const NS: &str = "covenant-system";
const SA: &str = "covenant";

/// The directory `hack/dist.sh` wrote, once its `covenant.yaml` and `default-package.yaml` are
/// applied (once per binary: both tests need the CRDs).
static DIST: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// Runs a command in the repository with the cluster's binaries first on PATH; panics with its output
/// unless it succeeds. Returns stdout and stderr.
#[track_caller]
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> (String, String) {
    let c = bare_cluster();
    let path = format!(
        "{}:{}",
        c.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(program)
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HELM_CACHE_HOME", c.log_dir.join("helm-home/cache"))
        .env("HELM_CONFIG_HOME", c.log_dir.join("helm-home/config"))
        .env("HELM_DATA_HOME", c.log_dir.join("helm-home/data"))
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// `make dist` into the log dir, then the two `kubectl apply`s README and docs/install.md give.
async fn dist_installed() -> &'static Path {
    DIST.get_or_init(|| async {
        let c = bare_cluster();
        let dir = c.log_dir.join(format!("dist-{}", std::process::id()));
        run("bash", &["hack/dist.sh", &dir.to_string_lossy()], None);
        let covenant = dir.join("covenant.yaml");
        run(
            "kubectl",
            &["apply", "--server-side", "-f", &covenant.to_string_lossy()],
            None,
        );
        let mut wait = vec!["wait", "--for", "condition=Established", "--timeout=60s"];
        let crds: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
        wait.extend(crds.iter().map(String::as_str));
        run("kubectl", &wait, None);
        let package = dir.join("default-package.yaml");
        run(
            "kubectl",
            &["apply", "--server-side", "-f", &package.to_string_lossy()],
            None,
        );
        dir
    })
    .await
}

/// The operator container's args and env var names, as dist/covenant.yaml's Deployment has them.
fn deployment_container(dist: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(dist.join("covenant.yaml")).expect("dist/covenant.yaml");
    for doc in serde_yaml::Deserializer::from_str(&text) {
        use serde::Deserialize;
        let v = serde_yaml::Value::deserialize(doc).expect("YAML");
        if v["kind"].as_str() != Some("Deployment") {
            continue;
        }
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        let strings = |seq: &serde_yaml::Value,
                       f: &dyn Fn(&serde_yaml::Value) -> Option<String>| {
            seq.as_sequence()
                .map(|s| s.iter().filter_map(f).collect())
                .unwrap_or_default()
        };
        return (
            strings(&c["args"], &|a| a.as_str().map(str::to_string)),
            strings(&c["env"], &|e| e["name"].as_str().map(str::to_string)),
        );
    }
    panic!("dist/covenant.yaml has no Deployment");
}

#[tokio::test]
async fn kubectl_apply_of_dist_covenant_yaml_installs_a_working_operator() {
    let dist = dist_installed().await;
    // The Deployment's own arguments, but the listen address (the harness picks a free port).
    let (args, env) = deployment_container(dist);
    let extra = run_args(&args);
    assert!(
        env.iter().any(|e| e == "POD_NAMESPACE"),
        "the Deployment passes POD_NAMESPACE (the Lease's namespace): {env:?}"
    );
    let kc = service_account_kubeconfig(bare_cluster(), NS, SA, "dist");
    let mut op = Operator::custom(
        bare_cluster(),
        "dist",
        &kc,
        &extra,
        &[("POD_NAME", "covenant-dist-0"), ("POD_NAMESPACE", NS)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    op.start();

    let t = TestCtx::without_operator("dist-install").await;
    // Provisioned on the default package of dist/default-package.yaml (the chart's `standard`).
    let (_, pods) = ready_account_on_the_default_package(&t, "dist").await;
    assert_eq!(
        pods.as_deref(),
        Some("20"),
        "the quota is the default package's"
    );
    // Ready means the ServiceAccount of dist/covenant.yaml was enough: its RBAC (binding the tenant
    // roles) and the admission policies that trust the operator by that name.
    op.assert_running();
    drop(t);
}

#[tokio::test]
async fn every_values_combination_is_accepted_by_the_api_server_under_restricted_pod_security() {
    dist_installed().await;
    let t = TestCtx::without_operator("dist-dry-run").await;
    // A namespace that enforces (and warns about) Pod Security `restricted`, as deploy/namespace.yaml.
    let ns = t.namespace("chart-dry-run");
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": { "name": ns, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        } }
    }))
    .expect("a Namespace");
    Api::<Namespace>::all(t.client.clone())
        .create(&Default::default(), &namespace)
        .await
        .expect("create the dry-run namespace");
    // The API server's own version, for the chart's kubeVersion and Capabilities.
    let version: serde_json::Value =
        serde_json::from_str(kubectl(&["version", "-o", "json"]).expect_ok()).expect("JSON");
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("serverVersion.gitVersion")
        .to_string();

    let dir = repo_root().join("charts/covenant/ci/values");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("charts/covenant/ci/values")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("defaults.yaml")),
        "the defaults are a combination: {files:?}"
    );
    for f in &files {
        let (rendered, _) = run(
            "helm",
            &[
                "template",
                "covenant",
                "charts/covenant",
                "--namespace",
                &ns,
                "--kube-version",
                &server,
                "-f",
                &f.to_string_lossy(),
            ],
            None,
        );
        let mut objects = 0;
        for doc in serde_yaml::Deserializer::from_str(&rendered) {
            use serde::Deserialize;
            if !serde_yaml::Value::deserialize(doc).expect("YAML").is_null() {
                objects += 1;
            }
        }
        // --force-conflicts: fields the applied dist/covenant.yaml set differently (names, labels)
        // belong to the same manager only when equal; a dry run changes nothing either way.
        let out = kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &rendered,
        );
        let combo = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            out.success,
            "{combo}: the API server refuses the chart:\n{}\n{}",
            out.stdout, out.stderr
        );
        assert!(
            !out.stderr.contains("Warning"),
            "{combo}: the API server warns (Pod Security `restricted`, deprecations):\n{}",
            out.stderr
        );
        let accepted = out
            .stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted, objects,
            "{combo}: every rendered object passed the dry run:\n{}",
            out.stdout
        );
        eprintln!("[dist] {combo}: {accepted} objects accepted by the API server (dry run)");
    }
}
