//! The Helm chart end to end ("Ship it: Helm chart ... HA with leader election"): `helm install` of
//! `charts/covenant` is accepted object by object; the chart's ServiceAccount, with a real token from
//! the TokenRequest API, is enough for the operator (run out of cluster with that token) and no more;
//! two replicas elect one leader and the other takes over after a `kill -9`; `helm uninstall` leaves
//! the tenants, their data, the CRDs and the Accounts in place.
//!
//! Helm owns what it installs and refuses objects it does not own, and the shared cluster of
//! `e2e/run.sh` has `deploy/` (the same cluster-scoped objects) applied: so this binary runs on a
//! cluster of its own ([`bare_cluster`]: started without the CRDs and `deploy/`), and `e2e/run.sh` runs
//! it as a stage of its own, without `COVENANT_E2E_KUBECONFIG`.
//!
//! There is no kubelet and no scheduler, and the image is not pulled: the chart's Deployment gets its
//! pods (Pending for ever). The operator runs here as child processes, under the chart's ServiceAccount.
//!
//! Every test takes [`CHART`] (one release, one Lease: they never overlap) and first makes sure the
//! release is installed (an uninstall test leaves it uninstalled), so they pass in any order.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use covenant::api::{Account, DeprecationNotice, NoticeType, SupportPackage, Suspension};
use covenant_e2e::cluster::{CRDS, bare_cluster};
use covenant_e2e::fixtures::{self, deployment, label};
use covenant_e2e::operator::{Operator, http_get, metric_sum};
use covenant_e2e::release;
use covenant_e2e::{
    KubectlOutput, TIMEOUT, TenantBuilder, TestCtx, condition, eventually, kubectl, kubectl_stdin,
    unique, wait_account, wait_account_ready, wait_for, wait_gone,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Pod, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// One release and one leader-election Lease per cluster: the tests take turns.
static CHART: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RELEASE: &str = "covenant";
const NS: &str = "covenant-system";
/// The chart's ServiceAccount (the release's full name: the release name contains the chart's).
const SA: &str = "covenant";
const SA_USER: &str = "system:serviceaccount:covenant-system:covenant";
/// The operator's ClusterRole (`<fullname>-operator`).
const OPERATOR_ROLE: &str = "covenant-operator";
const LEASE: &str = "covenant";
/// `--lease-duration` of the operators started here.
const LEASE_SECS: u64 = 6;
/// The label by which a test's DeprecationNotice selects its accounts.
const GROUP: &str = "e2e-chart-group";

// --- helm, kubectl --------------------------------------------------------------------------------

/// Runs `$BIN/helm` against the test cluster ([`release::helm`]).
fn helm(args: &[&str]) -> KubectlOutput {
    release::helm(bare_cluster(), args)
}

/// `helm status` of the release: its `info.status` (`deployed`, ...), or None when there is none.
fn release_status() -> Option<String> {
    let out = helm(&["status", RELEASE, "-n", NS, "-o", "json"]);
    if !out.success {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", out.command, out.stdout));
    v["info"]["status"].as_str().map(str::to_string)
}

/// `helm install` as the issue says (`--wait=false`: the operator pods never start here).
#[track_caller]
fn helm_install() -> String {
    let out = release::helm_install(
        bare_cluster(),
        &[
            "install",
            RELEASE,
            "charts/covenant",
            "-n",
            NS,
            "--create-namespace",
            "--wait=false",
        ],
    );
    out.expect_ok().to_string()
}

/// Installs the release unless it is deployed (an uninstall test leaves it uninstalled).
fn ensure_installed() {
    match release_status().as_deref() {
        Some("deployed") => {}
        Some(other) => {
            helm(&["uninstall", RELEASE, "-n", NS, "--wait"]).expect_ok();
            eprintln!("[chart] the release was {other}: uninstalled it");
            helm_install();
        }
        None => {
            helm_install();
        }
    }
}

/// `kubectl auth can-i VERB RESOURCE [args] --as=<the chart's ServiceAccount>`: yes or no.
fn sa_can(args: &[&str]) -> bool {
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    let as_sa = format!("--as={SA_USER}");
    a.push(&as_sa);
    let out = kubectl(&a);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "`{}` answered neither yes nor no:\n{}\n{}",
            out.command, out.stdout, out.stderr
        ),
    }
}

/// A kubeconfig that authenticates with a token of the chart's ServiceAccount from the TokenRequest
/// API, as a pod of the chart's Deployment ([`release::service_account_kubeconfig`]).
fn sa_kubeconfig(tag: &str) -> PathBuf {
    release::service_account_kubeconfig(bare_cluster(), NS, SA, &format!("chart-{tag}"))
}

// --- operators -------------------------------------------------------------------------------------

/// The operators a test started (each killed when dropped), whose logs are printed if the test fails.
/// Declared before the test's [`TestCtx`], so the test's accounts are cleaned up (finalizers) while
/// they still run.
#[derive(Default)]
struct Replicas(Vec<(String, Operator)>);

impl Replicas {
    /// An operator with the ServiceAccount token `kubeconfig`, leader election on the chart's Lease, and
    /// identity (`POD_NAME`) `identity`; not started.
    fn add(&mut self, identity: &str, kubeconfig: &std::path::Path) -> usize {
        let secs = LEASE_SECS.to_string();
        let op = Operator::custom(
            bare_cluster(),
            identity,
            kubeconfig,
            &[
                "--leader-elect",
                "--lease-namespace",
                NS,
                "--lease-name",
                LEASE,
                "--lease-duration",
                &secs,
            ],
            &[("POD_NAME", identity), ("POD_NAMESPACE", NS)],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.0.push((identity.to_string(), op));
        self.0.len() - 1
    }

    fn op(&mut self, i: usize) -> &mut Operator {
        &mut self.0[i].1
    }

    fn identity(&self, i: usize) -> &str {
        &self.0[i].0
    }

    /// `/metrics` of replica `i` (panics when it does not answer).
    fn metrics(&self, i: usize) -> String {
        self.0[i]
            .1
            .metrics()
            .unwrap_or_else(|e| panic!("/metrics of {}: {e}", self.0[i].0))
    }

    /// `covenant_leader` of replica `i`.
    fn leader(&self, i: usize) -> f64 {
        metric_sum(&self.metrics(i), "covenant_leader")
    }

    /// Panics (with its log) unless replica `i` runs.
    fn assert_running(&mut self, i: usize) {
        self.op(i).assert_running();
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (id, op) in &self.0 {
                eprintln!(
                    "----- operator {id}: last 60 lines of {} -----\n{}",
                    op.log_path().display(),
                    op.log_tail(60)
                );
            }
            eprintln!("{}", bare_cluster().component_logs(30));
        }
        for (_, op) in &mut self.0 {
            op.kill();
        }
    }
}

/// Polls until replica `i` reports `covenant_leader 1`; returns the time since `since`.
async fn wait_leader(r: &Replicas, i: usize, since: Instant, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if r.0[i]
            .1
            .metrics()
            .is_ok_and(|m| metric_sum(&m, "covenant_leader") == 1.0)
        {
            return since.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "replica {} did not report covenant_leader 1 within {timeout:?}; its log:\n{}",
            r.identity(i),
            r.0[i].1.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until replica `i` answers 200 on `/readyz` (a leader, once its watches have synced).
async fn wait_ready(r: &Replicas, i: usize) {
    let addr = r.0[i].1.addr().expect("a running replica");
    eventually(
        "the replica answers 200 on /readyz",
        TIMEOUT,
        || async move {
            match http_get(addr, "/readyz") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// The Lease's holder.
async fn lease_holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// Lines of the operator log that say a request was refused (RBAC or admission).
fn refusals(op: &Operator) -> Vec<String> {
    std::fs::read_to_string(op.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("forbidden") || l.contains("cannot publish event")
        })
        .map(str::to_string)
        .collect()
}

// --- tenants ---------------------------------------------------------------------------------------

/// A tenant `base-<suffix>` of the test's notices' group on the cluster's default package,
/// administered by `alice-<suffix>`; applied without waiting (the operator may be down).
fn alices<'a>(t: &'a TestCtx, base: &str) -> TenantBuilder<'a> {
    t.tenant(base)
        .default_package()
        .admin(&t.name("alice"))
        .label(GROUP, &t.suffix)
        .unready()
}

/// Checks what Covenant provisions in a tenant namespace: the namespace (labelled for the account),
/// its quota and limits, both network policies, and the administrators' RoleBinding.
async fn assert_provisioned(client: &Client, acct: &str, ns: &str) {
    let n = Api::<Namespace>::all(client.clone())
        .get(ns)
        .await
        .unwrap_or_else(|e| panic!("the tenant namespace {ns}: {e}"));
    assert_eq!(
        label(&n, "covenant.dev/account").as_deref(),
        Some(acct),
        "namespace {ns} is labelled for its account"
    );
    let q = Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .get("covenant-quota")
        .await
        .unwrap_or_else(|e| panic!("ResourceQuota {ns}/covenant-quota: {e}"));
    let hard = covenant_e2e::fixtures::hard(&q);
    assert_eq!(
        hard.get("pods").map(String::as_str),
        Some("20"),
        "the quota is the chart's `standard` package's: {hard:?}"
    );
    kubectl(&["get", "limitrange", "covenant-limits", "-n", ns]).expect_ok();
    for np in ["covenant-isolation", "covenant-egress"] {
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get(np)
            .await
            .unwrap_or_else(|e| panic!("NetworkPolicy {ns}/{np}: {e}"));
    }
    let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get("covenant-tenant-admin")
        .await
        .unwrap_or_else(|e| panic!("RoleBinding {ns}/covenant-tenant-admin: {e}"));
    assert_eq!(rb.role_ref.name, "covenant-tenant-admin");
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.replicas
}

/// Deletes the managed NetworkPolicy `covenant-isolation` of `ns` (as the admin: system:masters may)
/// and returns its uid.
async fn delete_isolation_policy(client: &Client, ns: &str) -> String {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let np = api
        .get("covenant-isolation")
        .await
        .unwrap_or_else(|e| panic!("NetworkPolicy {ns}/covenant-isolation: {e}"));
    api.delete("covenant-isolation", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete NetworkPolicy {ns}/covenant-isolation: {e}"));
    np.uid().expect("a uid")
}

/// Waits until `covenant-isolation` in `ns` exists again as a new object (not `old_uid`).
async fn wait_isolation_policy_back(client: &Client, ns: &str, old_uid: &str, timeout: Duration) {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    wait_for(
        &api,
        "covenant-isolation",
        "be put back by the operator (a new object)",
        timeout,
        |np| np.uid().as_deref() != Some(old_uid),
    )
    .await;
}

// --- 1. install ------------------------------------------------------------------------------------

#[tokio::test]
async fn helm_install_is_accepted_object_by_object() {
    let _chart = CHART.lock().await;
    bare_cluster();
    if release_status().is_some() {
        // Another test installed it first: this test is about the install itself.
        helm(&["uninstall", RELEASE, "-n", NS, "--wait"]).expect_ok();
    }
    let notes = helm_install();
    let t = TestCtx::without_operator("chart-install").await;
    assert!(
        notes.contains("STATUS: deployed"),
        "helm install prints the deployed status:\n{notes}"
    );
    assert_eq!(
        release_status().as_deref(),
        Some("deployed"),
        "helm status says deployed"
    );

    assert_every_object_of_the_release_exists();
    assert_the_crds_and_admission_policies_are_in_force(&t).await;
    assert_the_operator_roles_are_bound_to_its_service_account(&t).await;
    let deploy = assert_the_deployment_is_leader_elected_and_locked_down(&t).await;
    assert_its_template_passes_the_restricted_standard(&t, &deploy).await;
    assert_the_deployments_pods_are_created(&t, &deploy).await;
    assert_pdb_service_and_network_policy_select_the_operator(&t, &deploy).await;
    // The default package.
    let standard = Api::<SupportPackage>::all(t.client.clone())
        .get("standard")
        .await
        .expect("the `standard` SupportPackage");
    assert!(standard.spec.default, "`standard` has default: true");
    assert_eq!(standard.spec.max_namespaces, Some(3));
}

/// Every object of the release's manifest exists, and its hooks' (on the install that creates the
/// CRDs the default SupportPackage is a post-install hook: Helm maps every object before it creates
/// any, and cannot map a SupportPackage before its CRD exists), and each belongs to the release.
fn assert_every_object_of_the_release_exists() {
    // Every object of the release's manifest exists, and its hooks' (on the install that creates the
    // CRDs the default SupportPackage is a post-install hook: Helm maps every object before it creates
    // any, and cannot map a SupportPackage before its CRD exists).
    let manifest = helm(&["get", "manifest", RELEASE, "-n", NS])
        .expect_ok()
        .to_string()
        + "\n---\n"
        + helm(&["get", "hooks", RELEASE, "-n", NS]).expect_ok();
    let mut rendered = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(&manifest) {
        use serde::Deserialize;
        let v = serde_yaml::Value::deserialize(doc).expect("the manifest is YAML");
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().expect("a kind").to_string();
        let name = v["metadata"]["name"].as_str().expect("a name").to_string();
        rendered.insert((kind, name));
    }
    let expected: BTreeSet<(String, String)> = [
        ("ServiceAccount", SA),
        ("ClusterRole", OPERATOR_ROLE),
        ("ClusterRole", "covenant-tenant-admin"),
        ("ClusterRole", "covenant-tenant-readonly"),
        ("ClusterRole", "covenant-tenant-admin-rules"),
        ("ClusterRole", "covenant-operator-tenant"),
        ("ClusterRoleBinding", OPERATOR_ROLE),
        ("Role", "covenant-leader-election"),
        ("RoleBinding", "covenant-leader-election"),
        ("ValidatingAdmissionPolicy", "covenant-tenant-rolebindings"),
        ("ValidatingAdmissionPolicy", "covenant-managed-objects"),
        ("ValidatingAdmissionPolicy", "covenant-read-only"),
        ("ValidatingAdmissionPolicy", "covenant-namespace-labels"),
        ("ValidatingAdmissionPolicy", "covenant-role-aggregation"),
        ("ValidatingAdmissionPolicy", "covenant-token-secrets"),
        ("ValidatingAdmissionPolicy", "covenant-token-lifetime"),
        ("ValidatingAdmissionPolicy", "covenant-tenant-services"),
        ("ValidatingAdmissionPolicy", "covenant-tenant-gateways"),
        (
            "ValidatingAdmissionPolicyBinding",
            "covenant-tenant-gateways",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "covenant-tenant-rolebindings",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "covenant-managed-objects",
        ),
        ("ValidatingAdmissionPolicyBinding", "covenant-read-only"),
        (
            "ValidatingAdmissionPolicyBinding",
            "covenant-namespace-labels",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "covenant-role-aggregation",
        ),
        ("Deployment", "covenant"),
        ("PodDisruptionBudget", "covenant"),
        ("Service", "covenant-metrics"),
        ("NetworkPolicy", "covenant"),
        ("SupportPackage", "standard"),
        ("CustomResourceDefinition", "accounts.covenant.dev"),
        ("CustomResourceDefinition", "supportpackages.covenant.dev"),
        ("CustomResourceDefinition", "suspensions.covenant.dev"),
        (
            "CustomResourceDefinition",
            "deprecationnotices.covenant.dev",
        ),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    let missing: Vec<_> = expected.difference(&rendered).collect();
    assert!(
        missing.is_empty(),
        "the release renders every object of the issue; missing: {missing:?}\nrendered: {rendered:?}"
    );
    let got = kubectl_stdin(&["get", "-f", "-", "-o", "name"], &manifest);
    let names: Vec<&str> = got.expect_ok().lines().collect();
    assert_eq!(
        names.len(),
        rendered.len(),
        "every object of the release exists:\n{}",
        got.stdout
    );
    let not_helms = kubectl_stdin(
        &[
            "get",
            "-f",
            "-",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name} {.metadata.annotations.meta\\.helm\\.sh/release-name}{\"\\n\"}{end}",
        ],
        &manifest,
    );
    for line in not_helms.expect_ok().lines() {
        assert!(
            line.ends_with(&format!(" {RELEASE}")),
            "every object belongs to the release (meta.helm.sh/release-name): {line}"
        );
    }
}

/// The CRDs (the chart's templates/crds/, generated from crds/) are Established, and every admission
/// policy compiles.
async fn assert_the_crds_and_admission_policies_are_in_force(t: &TestCtx) {
    // The CRDs (the chart's templates/crds/, generated from crds/) are Established.
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for crd in CRDS {
        wait_for(&crds, crd, "be Established", TIMEOUT, |c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
        })
        .await;
    }

    // Every admission policy compiles: the API server type-checked it without warnings.
    for vap in [
        "covenant-tenant-rolebindings",
        "covenant-managed-objects",
        "covenant-read-only",
        "covenant-namespace-labels",
        "covenant-role-aggregation",
        "covenant-token-secrets",
        "covenant-token-lifetime",
        "covenant-tenant-services",
        "covenant-tenant-gateways",
    ] {
        let out = eventually(
            "the admission policy's status is for its generation",
            TIMEOUT,
            || async move {
                let out = kubectl(&["get", "validatingadmissionpolicy", vap, "-o", "json"]);
                let v: serde_json::Value = serde_json::from_str(&out.stdout)
                    .map_err(|e| format!("{e}: {}", out.stderr))?;
                if v["status"]["observedGeneration"] == v["metadata"]["generation"] {
                    Ok(v)
                } else {
                    Err(format!("status: {}", v["status"]))
                }
            },
        )
        .await;
        let warnings = &out["status"]["typeChecking"]["expressionWarnings"];
        assert!(
            warnings.as_array().is_none_or(|w| w.is_empty()),
            "ValidatingAdmissionPolicy {vap} type-checks without warnings: {warnings}"
        );
        let b = kubectl(&[
            "get",
            "validatingadmissionpolicybinding",
            vap,
            "-o",
            "jsonpath={.spec.policyName} {.spec.validationActions}",
        ]);
        assert_eq!(
            b.expect_ok().trim(),
            format!("{vap} [\"Deny\"]"),
            "the binding of {vap} denies"
        );
    }
}

/// RBAC: the operator's ClusterRole bound to the chart's ServiceAccount; the Lease Role likewise.
async fn assert_the_operator_roles_are_bound_to_its_service_account(t: &TestCtx) {
    // RBAC: the operator's ClusterRole bound to the chart's ServiceAccount; the Lease Role likewise.
    let sa: Api<ServiceAccount> = Api::namespaced(t.client.clone(), NS);
    sa.get(SA).await.expect("the chart's ServiceAccount");
    let crb = Api::<ClusterRoleBinding>::all(t.client.clone())
        .get(OPERATOR_ROLE)
        .await
        .expect("the operator's ClusterRoleBinding");
    assert_eq!(crb.role_ref.name, OPERATOR_ROLE);
    let subjects = crb.subjects.unwrap_or_default();
    assert!(
        subjects.iter().any(|s| s.kind == "ServiceAccount"
            && s.name == SA
            && s.namespace.as_deref() == Some(NS)),
        "the ClusterRoleBinding names the chart's ServiceAccount: {subjects:?}"
    );
    for cr in [
        OPERATOR_ROLE,
        "covenant-tenant-admin",
        "covenant-tenant-readonly",
    ] {
        Api::<ClusterRole>::all(t.client.clone())
            .get(cr)
            .await
            .unwrap_or_else(|e| panic!("ClusterRole {cr}: {e}"));
    }
    let role = Api::<Role>::namespaced(t.client.clone(), NS)
        .get("covenant-leader-election")
        .await
        .expect("the leader-election Role");
    let rules = role.rules.unwrap_or_default();
    assert!(
        rules
            .iter()
            .all(|r| r.resources.iter().flatten().all(|res| res == "leases")),
        "the leader-election Role is about Leases only: {rules:?}"
    );
    let rb = Api::<RoleBinding>::namespaced(t.client.clone(), NS)
        .get("covenant-leader-election")
        .await
        .expect("the leader-election RoleBinding");
    assert_eq!(rb.role_ref.name, "covenant-leader-election");
}

/// The Deployment: 2 replicas, leader election, the ServiceAccount, the restricted security context,
/// its probes. Returns it.
async fn assert_the_deployment_is_leader_elected_and_locked_down(t: &TestCtx) -> Deployment {
    // The Deployment: 2 replicas, leader election, the ServiceAccount, the restricted security context.
    let deploy = Api::<Deployment>::namespaced(t.client.clone(), NS)
        .get("covenant")
        .await
        .expect("the operator Deployment");
    let spec = deploy.spec.clone();
    assert_eq!(spec.replicas, Some(2), "2 replicas");
    let pod_spec = spec.template.spec.clone().expect("a pod template spec");
    assert_eq!(pod_spec.service_account_name.as_deref(), Some(SA));
    let psc = pod_spec
        .security_context
        .clone()
        .expect("a pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "pod runAsNonRoot");
    assert_eq!(psc.run_as_user, Some(65532), "pod runAsUser");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "pod seccompProfile"
    );
    assert_eq!(pod_spec.containers.len(), 1);
    let ctr = &pod_spec.containers[0];
    let args = ctr.args.clone().unwrap_or_default();
    assert!(
        args.iter().any(|a| a == "--leader-elect")
            && args.first().map(String::as_str) == Some("run"),
        "the container runs `covenant run --leader-elect`: {args:?}"
    );
    let csc = ctr
        .security_context
        .clone()
        .expect("a container securityContext");
    assert_eq!(csc.run_as_non_root, Some(true), "container runAsNonRoot");
    assert_eq!(
        csc.read_only_root_filesystem,
        Some(true),
        "readOnlyRootFilesystem"
    );
    assert_eq!(
        csc.allow_privilege_escalation,
        Some(false),
        "allowPrivilegeEscalation"
    );
    assert_eq!(
        csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()]),
        "capabilities drop ALL"
    );
    assert_eq!(
        csc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "container seccompProfile"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&ctr.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(probe_path(&ctr.liveness_probe).as_deref(), Some("/livez"));
    deploy
}

/// The template passes the `restricted` Pod Security Standard: a dry-run Pod of it is admitted in a
/// namespace that enforces it (with the ServiceAccount it names).
async fn assert_its_template_passes_the_restricted_standard(t: &TestCtx, deploy: &Deployment) {
    let spec = deploy.spec.clone();
    let pod_spec = spec.template.spec.clone().expect("a pod template spec");
    // The template passes the `restricted` Pod Security Standard: a dry-run Pod of it is admitted in a
    // namespace that enforces it (with the ServiceAccount it names).
    let psa = t.namespace("psa");
    t.apply(&json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": psa,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"
            }
        }
    }))
    .await;
    t.apply(&json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": SA, "namespace": psa }
    }))
    .await;
    let pod = Pod {
        metadata: kube::core::ObjectMeta {
            name: Some("covenant-psa-check".into()),
            labels: spec.template.metadata.clone().and_then(|m| m.labels),
            ..Default::default()
        },
        spec: Some(pod_spec.clone()),
        status: None,
    };
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let admitted = eventually(
        "a Pod of the operator's template is admitted under the restricted Pod Security Standard",
        TIMEOUT,
        || {
            let (client, pod, dry, psa) = (t.client.clone(), pod.clone(), dry.clone(), psa.clone());
            async move {
                Api::<Pod>::namespaced(client, &psa)
                    .create(&dry, &pod)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    assert_eq!(admitted.name_any(), "covenant-psa-check");
}

/// The API server accepted the Deployment's pods (Pending for ever: no scheduler, no kubelet).
async fn assert_the_deployments_pods_are_created(t: &TestCtx, deploy: &Deployment) {
    let selector = deploy
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    // The API server accepted the Deployment's pods (Pending for ever: no scheduler, no kubelet).
    let sel = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), NS);
    eventually("the Deployment's 2 pods are created", TIMEOUT, || {
        let (pods, sel) = (pods.clone(), sel.clone());
        async move {
            let l = pods
                .list(&ListParams::default().labels(&sel))
                .await
                .map_err(|e| e.to_string())?;
            if l.items.len() == 2 {
                Ok(())
            } else {
                Err(format!("{} pods", l.items.len()))
            }
        }
    })
    .await;
}

/// PDB, Service, NetworkPolicy select the operator pods.
async fn assert_pdb_service_and_network_policy_select_the_operator(
    t: &TestCtx,
    deploy: &Deployment,
) {
    let selector = deploy
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    // PDB, Service, NetworkPolicy select the operator pods.
    let pdb = Api::<PodDisruptionBudget>::namespaced(t.client.clone(), NS)
        .get("covenant")
        .await
        .expect("the PodDisruptionBudget");
    let pdb_spec = pdb.spec.expect("a PDB spec");
    assert_eq!(
        pdb_spec.min_available,
        Some(IntOrString::Int(1)),
        "minAvailable 1"
    );
    assert_eq!(
        pdb_spec
            .selector
            .and_then(|s| s.match_labels)
            .unwrap_or_default(),
        selector,
        "the PDB selects the operator pods"
    );
    let svc = Api::<Service>::namespaced(t.client.clone(), NS)
        .get("covenant-metrics")
        .await
        .expect("the metrics Service");
    let svc_spec = svc.spec.expect("a Service spec");
    assert_eq!(svc_spec.selector.clone().unwrap_or_default(), selector);
    let ports = svc_spec.ports.unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p.port == 8080 && p.target_port == Some(IntOrString::String("http".into()))),
        "the Service exposes 8080 -> http: {ports:?}"
    );
    let np = Api::<NetworkPolicy>::namespaced(t.client.clone(), NS)
        .get("covenant")
        .await
        .expect("the operator's NetworkPolicy");
    let np_spec = np.spec.expect("a NetworkPolicy spec");
    assert_eq!(
        np_spec
            .pod_selector
            .and_then(|s| s.match_labels)
            .unwrap_or_default(),
        selector,
        "the NetworkPolicy selects the operator pods"
    );
    let ingress = np_spec.ingress.unwrap_or_default();
    assert!(
        ingress.len() == 1
            && ingress[0]
                .ports
                .iter()
                .flatten()
                .all(|p| p.port == Some(IntOrString::String("http".into()))
                    && p.protocol.as_deref() == Some("TCP")),
        "ingress only to the http port: {ingress:?}"
    );
}

// --- 2. RBAC ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_chart_service_account_is_enough_for_the_operator_and_no_more() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let kc = sa_kubeconfig("rbac");
    let mut ops = Replicas::default();
    let id = format!("rbac-{}", unique());
    let op = ops.add(&id, &kc);
    ops.op(op).start_live();
    wait_leader(&ops, op, Instant::now(), Duration::from_secs(60)).await;
    wait_ready(&ops, op).await;
    let t = TestCtx::without_operator("chart-rbac").await;

    // Provisioning.
    let acct = alices(&t, "rbac").await.account;
    let ns = acct.clone();
    let a = wait_account_ready(&t.client, &acct).await;
    assert_eq!(
        a.status
            .as_ref()
            .and_then(|s| s.support_package.clone())
            .as_deref(),
        Some("standard"),
        "the account is on the chart's default package"
    );
    assert_provisioned(&t.client, &acct, &ns).await;

    assert_a_suspension_scales_down_and_its_lift_restores(&t, &acct).await;
    assert_a_notice_is_served_and_judged(&t).await;
    // No request of the operator was refused.
    let refused = refusals(ops.op(op));
    assert!(
        refused.is_empty(),
        "the operator was refused nothing under the chart's RBAC; log lines:\n{}",
        refused.join("\n")
    );
    ops.assert_running(op);

    assert_the_service_account_holds_least_privilege(&ns);
    assert_no_wildcard_in_the_release_roles(&t).await;
    drop(t);
}

/// A suspension scales the tenant's Deployment to 0; lifting it restores 2 replicas.
async fn assert_a_suspension_scales_down_and_its_lift_restores(t: &TestCtx, acct: &str) {
    let ns = acct;
    // A suspension scales the tenant's Deployment to 0; lifting it restores 2 replicas.
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), ns);
    let mut web = deployment("web");
    web.spec.replicas = Some(2);
    deployments
        .create(&PostParams::default(), &web)
        .await
        .expect("create the tenant's Deployment");
    let susp = t.name("aup");
    t.track("suspensions.covenant.dev", &susp);
    let cause = format!(
        "Bulk messaging over the AUP's limits (ticket AUP-{})",
        t.suffix
    );
    let mut suspension =
        fixtures::suspension(&susp, acct, "AcceptableUsePolicy", &cause, json!({}));
    suspension.spec.scale_workloads = true;
    t.apply(&suspension).await;
    let suspended = wait_account(&t.client, acct, "Suspended", "True", None).await;
    assert_eq!(
        condition(&suspended, "Suspended").map(|c| c.message.contains(&cause)),
        Some(true),
        "the Suspended condition gives the cause"
    );
    wait_for(&deployments, "web", "be scaled to 0", TIMEOUT, |d| {
        replicas(d) == Some(0)
    })
    .await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    wait_for(&susps, &susp, "record status.noticeGivenAt", TIMEOUT, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.notice_given_at.is_some())
    })
    .await;
    susps
        .delete(&susp, &DeleteParams::default())
        .await
        .expect("delete the Suspension");
    wait_gone(&susps, &susp, false, TIMEOUT).await;
    wait_for(&deployments, "web", "be scaled back to 2", TIMEOUT, |d| {
        replicas(d) == Some(2)
    })
    .await;
    wait_account(&t.client, acct, "Suspended", "False", None).await;
    wait_account_ready(&t.client, acct).await;
}

/// A DeprecationNotice: servedAt recorded, the window judged.
async fn assert_a_notice_is_served_and_judged(t: &TestCtx) {
    // A DeprecationNotice: servedAt recorded, the window judged.
    let notice = t.name("amend");
    t.track("deprecationnotices.covenant.dev", &notice);
    let effective = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 40 * 86_400)
        .expect("an instant");
    t.apply(&fixtures::notice(
        &notice,
        NoticeType::Amendment,
        "New data processing addendum",
        effective,
        &[(GROUP, &t.suffix)],
    ))
    .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = wait_for(
        &notices,
        &notice,
        "record status.servedAt and NoticeWindowSatisfied, and count the selected account",
        TIMEOUT,
        |n| {
            n.status.as_ref().is_some_and(|s| {
                s.served_at.is_some()
                    && s.counts.as_ref().is_some_and(|c| c.pending == 1)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "NoticeWindowSatisfied")
            })
        },
    )
    .await;
    let st = n.status.expect("a status");
    let window = st
        .conditions
        .iter()
        .find(|c| c.type_ == "NoticeWindowSatisfied")
        .expect("NoticeWindowSatisfied");
    assert_eq!(
        window.status, "True",
        "40 days is more than the 30 an amendment needs: {window:?}"
    );
    assert_eq!(
        st.counts.as_ref().map(|c| c.pending),
        Some(1),
        "the notice counts the selected account as Pending: {:?}",
        st.counts
    );
}

/// Least privilege, as the API server's authorizer answers for the ServiceAccount: what it must not
/// do in a tenant namespace `ns` and elsewhere, and what it must.
fn assert_the_service_account_holds_least_privilege(ns: &str) {
    // Least privilege, as the API server's authorizer answers for the ServiceAccount.
    for (what, args) in [
        (
            "get secrets in kube-system",
            vec!["get", "secrets", "-n", "kube-system"],
        ),
        (
            "get secrets in a tenant namespace",
            vec!["get", "secrets", "-n", ns],
        ),
        (
            "list secrets in any namespace",
            vec!["list", "secrets", "--all-namespaces"],
        ),
        (
            "get configmaps in a tenant namespace",
            vec!["get", "configmaps", "-n", ns],
        ),
        (
            "bind cluster-admin",
            vec!["bind", "clusterroles/cluster-admin"],
        ),
        ("escalate clusterroles", vec!["escalate", "clusterroles"]),
        (
            "create roles in a tenant namespace",
            vec!["create", "roles", "-n", ns],
        ),
        (
            "delete customresourcedefinitions",
            vec!["delete", "customresourcedefinitions"],
        ),
        ("impersonate users", vec!["impersonate", "users"]),
        ("impersonate groups", vec!["impersonate", "groups"]),
        (
            "impersonate serviceaccounts",
            vec!["impersonate", "serviceaccounts", "-n", ns],
        ),
        (
            "create pods in a tenant namespace",
            vec!["create", "pods", "-n", ns],
        ),
        (
            "create serviceaccount tokens",
            vec!["create", "serviceaccounts/token", "-n", NS],
        ),
        ("delete accounts", vec!["delete", "accounts.covenant.dev"]),
        (
            "update leases outside its namespace",
            vec!["update", "leases", "-n", "kube-system"],
        ),
        (
            "change admission policies",
            vec!["update", "validatingadmissionpolicies"],
        ),
    ] {
        assert!(!sa_can(&args), "the chart's ServiceAccount must not {what}");
    }
    assert_the_service_account_may_do_its_work(ns);
}

/// What the chart's ServiceAccount must be able to do for its work in a tenant namespace `ns`.
fn assert_the_service_account_may_do_its_work(ns: &str) {
    for (what, args) in [
        (
            "patch accounts/status",
            vec!["patch", "accounts.covenant.dev", "--subresource=status"],
        ),
        (
            "create rolebindings in a tenant namespace",
            vec!["create", "rolebindings", "-n", ns],
        ),
        (
            "bind covenant-tenant-admin",
            vec!["bind", "clusterroles/covenant-tenant-admin"],
        ),
        (
            "update its Lease",
            vec!["update", "leases/covenant", "-n", NS],
        ),
        // Each account's covenant-account-<name> ClusterRole and binding (its administrators read
        // that one Account). RBAC's escalation check bounds them: without `escalate` or `bind` on
        // other roles it can grant only what it holds itself (the must-nots above: no cluster-admin).
        ("create clusterroles", vec!["create", "clusterroles"]),
        (
            "create clusterrolebindings",
            vec!["create", "clusterrolebindings"],
        ),
        // A suspension patches each workload with its own record of what it ran, in the same write
        // that stops it (replicas, or a CronJob's suspend).
        (
            "patch deployments in a tenant namespace",
            vec!["patch", "deployments.apps", "-n", ns],
        ),
        (
            "patch statefulsets in a tenant namespace",
            vec!["patch", "statefulsets.apps", "-n", ns],
        ),
        (
            "patch replicasets in a tenant namespace",
            vec!["patch", "replicasets.apps", "-n", ns],
        ),
        (
            "patch cronjobs in a tenant namespace",
            vec!["patch", "cronjobs.batch", "-n", ns],
        ),
    ] {
        assert!(
            sa_can(&args),
            "the chart's ServiceAccount must be able to {what}"
        );
    }
}

/// No wildcard anywhere in the release's roles, and the operator's ClusterRole grants no secrets,
/// pods, roles or RBAC beyond what it needs.
async fn assert_no_wildcard_in_the_release_roles(t: &TestCtx) {
    // No wildcard anywhere in the release's roles.
    let mut roles: Vec<(String, Vec<k8s_openapi::api::rbac::v1::PolicyRule>)> = Vec::new();
    for cr in [
        OPERATOR_ROLE,
        "covenant-tenant-admin",
        "covenant-tenant-readonly",
    ] {
        let r = Api::<ClusterRole>::all(t.client.clone())
            .get(cr)
            .await
            .unwrap_or_else(|e| panic!("ClusterRole {cr}: {e}"));
        roles.push((format!("ClusterRole {cr}"), r.rules.unwrap_or_default()));
    }
    let r = Api::<Role>::namespaced(t.client.clone(), NS)
        .get("covenant-leader-election")
        .await
        .expect("the leader-election Role");
    roles.push((
        "Role covenant-leader-election".into(),
        r.rules.unwrap_or_default(),
    ));
    for (name, rules) in &roles {
        assert!(!rules.is_empty(), "{name} has rules");
        for rule in rules {
            let words = rule
                .verbs
                .iter()
                .chain(rule.resources.iter().flatten())
                .chain(rule.api_groups.iter().flatten());
            for w in words {
                assert!(!w.contains('*'), "{name} has a wildcard `{w}` in {rule:?}");
            }
        }
    }
    let (_, operator_rules) = &roles[0];
    for rule in operator_rules {
        for res in rule.resources.iter().flatten() {
            assert!(
                ![
                    "secrets",
                    "pods",
                    "clusterroles",
                    "clusterrolebindings",
                    "roles"
                ]
                .contains(&res.as_str())
                    || (res == "clusterroles"
                        && rule.verbs == ["bind"]
                        && rule.resource_names.is_some())
                    // Reporting the pods a tightened tier no longer allows: list only (page by page
                    // when a tenant namespace's policy changes), never get, watch or write; the pod
                    // templates it could already read through the workloads it scales say as much.
                    || (res == "pods" && rule.verbs == ["list"])
                    // Each account's tenancy ClusterRole and binding: plain verbs, never escalate
                    // or bind (the escalation check then bounds what it can grant).
                    || ((res == "clusterroles" || res == "clusterrolebindings")
                        && !rule
                            .verbs
                            .iter()
                            .any(|v| v == "escalate" || v == "bind" || v == "impersonate")),
                "the operator's ClusterRole grants {res}: {rule:?}"
            );
        }
    }
}

// --- 3. leader election ----------------------------------------------------------------------------

#[tokio::test]
async fn of_two_replicas_one_leads_and_the_other_takes_over_after_kill_9() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let kc = sa_kubeconfig("ha");
    let mut ops = Replicas::default();
    let suffix = unique();
    let a = ops.add(&format!("replica-a-{suffix}"), &kc);
    let b = ops.add(&format!("replica-b-{suffix}"), &kc);
    ops.op(a).start_live();
    ops.op(b).start_live();
    let t = TestCtx::without_operator("chart-ha").await;

    // Exactly one leads (a previous test's operator may hold the Lease until it expires).
    let (leader, follower) = eventually(
        "exactly one replica reports covenant_leader 1",
        Duration::from_secs(60),
        || {
            let (la, lb) = (ops.leader(a), ops.leader(b));
            async move {
                match (la, lb) {
                    (1.0, 0.0) => Ok((a, b)),
                    (0.0, 1.0) => Ok((b, a)),
                    other => Err(format!("covenant_leader of a, b: {other:?}")),
                }
            }
        },
    )
    .await;
    let (leader_id, follower_id) = (
        ops.identity(leader).to_string(),
        ops.identity(follower).to_string(),
    );
    for _ in 0..10 {
        assert_eq!(
            (ops.leader(leader), ops.leader(follower)),
            (1.0, 0.0),
            "one leader ({leader_id}) and one follower ({follower_id}), stably"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        lease_holder(&t.client).await.as_deref(),
        Some(leader_id.as_str()),
        "the Lease is held by the replica that reports covenant_leader 1"
    );

    let one = assert_the_leader_alone_provisions_and_corrects(&t, &ops, leader, follower).await;
    // kill -9 the leader; meanwhile a drift and a new Account wait for the next leader.
    ops.op(leader).kill();
    let killed = Instant::now();
    let uid = delete_isolation_policy(&t.client, &one).await;
    let two = alices(&t, "ha-two").await.account;

    let takeover_s = wait_leader(&ops, follower, killed, Duration::from_secs(60)).await;
    eprintln!(
        "[chart] takeover: {follower_id} reported covenant_leader 1 {:.2} s after kill -9 of {leader_id} (--lease-duration {LEASE_SECS})",
        takeover_s.as_secs_f64()
    );
    assert!(
        takeover_s < Duration::from_secs(30),
        "the follower took over within 30 s (took {takeover_s:?})"
    );
    wait_isolation_policy_back(&t.client, &one, &uid, TIMEOUT).await;
    let corrected = killed.elapsed();
    wait_account_ready(&t.client, &two).await;
    assert_provisioned(&t.client, &two, &two).await;
    eprintln!(
        "[chart] after the kill: drift corrected at {:.2} s, new Account Ready at {:.2} s",
        corrected.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    eventually("the Lease is held by the new leader", TIMEOUT, || {
        let (client, id) = (t.client.clone(), follower_id.clone());
        async move {
            match lease_holder(&client).await {
                Some(h) if h == id => Ok(()),
                other => Err(format!("holder {other:?}")),
            }
        }
    })
    .await;
    let after = ops.metrics(follower);
    assert!(
        metric_sum(&after, "covenant_writes_total") > 0.0,
        "the new leader made the writes"
    );
    ops.assert_running(follower);
    let refused = refusals(ops.op(follower));
    assert!(
        refused.is_empty(),
        "the new leader was refused nothing; log lines:\n{}",
        refused.join("\n")
    );
    drop(t);
}

/// The leader provisions an Account and corrects a drift, with its writes; the follower writes and
/// reconciles nothing while following. Returns the Account.
async fn assert_the_leader_alone_provisions_and_corrects(
    t: &TestCtx,
    ops: &Replicas,
    leader: usize,
    follower: usize,
) -> String {
    // The leader provisions, and corrects a drift.
    let one = alices(t, "ha-one").await.account;
    wait_account_ready(&t.client, &one).await;
    assert_provisioned(&t.client, &one, &one).await;
    let uid = delete_isolation_policy(&t.client, &one).await;
    wait_isolation_policy_back(&t.client, &one, &uid, TIMEOUT).await;
    let leader_metrics = ops.metrics(leader);
    assert!(
        metric_sum(&leader_metrics, "covenant_writes_total") > 0.0,
        "the leader made the writes"
    );

    // The follower wrote nothing, and reconciled nothing, while following.
    let follower_metrics = ops.metrics(follower);
    assert_eq!(
        metric_sum(&follower_metrics, "covenant_writes_total"),
        0.0,
        "the follower made no writes while following:\n{follower_metrics}"
    );
    assert_eq!(
        metric_sum(&follower_metrics, "covenant_reconciles_total"),
        0.0,
        "the follower reconciled nothing while following:\n{follower_metrics}"
    );
    assert_eq!(metric_sum(&follower_metrics, "covenant_leader"), 0.0);
    one
}

// --- 3b. a follower is ready ----------------------------------------------------------------------

/// docs/install.md ("With leader election, followers serve /livez, /readyz and /metrics") and `http.rs` ("ready
/// once every watch has synced and, with leader election, this replica leads or follows a healthy
/// leader"): the chart's readinessProbe is `/readyz`, so a follower that never gets ready leaves the
/// Deployment at 1/2 ready for ever (`kubectl rollout status`, as NOTES.txt suggests, never returns;
/// with `maxUnavailable: 0` a rolling update waits for a new pod that, as a follower, never gets ready).
#[tokio::test]
async fn a_follower_answers_readyz() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let kc = sa_kubeconfig("ready");
    let mut ops = Replicas::default();
    let suffix = unique();
    let a = ops.add(&format!("ready-a-{suffix}"), &kc);
    let b = ops.add(&format!("ready-b-{suffix}"), &kc);
    ops.op(a).start_live();
    wait_leader(&ops, a, Instant::now(), Duration::from_secs(60)).await;
    ops.op(b).start_live();
    let addr = ops.op(b).addr().expect("the follower's address");
    let deadline = Instant::now() + TIMEOUT;
    let last = loop {
        let r = http_get(addr, "/readyz");
        if matches!(r, Ok((200, _))) {
            break r;
        }
        if Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(ops.leader(b), 0.0, "b follows");
    assert_eq!(ops.leader(a), 1.0, "a leads");
    assert!(
        matches!(last, Ok((200, _))),
        "the follower answers 200 on /readyz within {TIMEOUT:?} (the leader leads and is ready); last answer: {last:?}"
    );
}

// --- 4. uninstall ----------------------------------------------------------------------------------

/// Provisions an Account with two namespaces and a ConfigMap of data in each (an operator under the
/// chart's ServiceAccount, stopped afterwards: `helm uninstall` takes the operator away). Returns the
/// account, its namespaces and their uids.
async fn tenant_with_data(t: &TestCtx, tag: &str) -> (String, Vec<(String, String)>) {
    let kc = sa_kubeconfig(tag);
    let mut ops = Replicas::default();
    let op = ops.add(&format!("{tag}-{}", unique()), &kc);
    ops.op(op).start_live();
    wait_leader(&ops, op, Instant::now(), Duration::from_secs(60)).await;
    wait_ready(&ops, op).await;
    // Not registered with the TestCtx: the accounts must outlive the uninstall (and this cluster is
    // the test binary's own).
    let nss = [t.name(&format!("{tag}-a")), t.name(&format!("{tag}-b"))];
    let acct = alices(t, tag)
        .namespace_names(&nss)
        .retain()
        .untracked()
        .await
        .account;
    wait_account_ready(&t.client, &acct).await;
    let mut out = Vec::new();
    for ns in &nss {
        assert_provisioned(&t.client, &acct, ns).await;
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "tenant-data" },
            "data": { "orders.csv": format!("id,total\n1,{ns}\n") }
        }))
        .expect("a ConfigMap");
        Api::<ConfigMap>::namespaced(t.client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap_or_else(|e| panic!("create the tenant's data in {ns}: {e}"));
        let uid = Api::<Namespace>::all(t.client.clone())
            .get(ns)
            .await
            .expect("the namespace")
            .uid()
            .expect("a uid");
        out.push((ns.clone(), uid));
    }
    drop(ops);
    (acct, out)
}

/// Uninstalls the release and waits until the garbage collector has removed the Deployment's
/// ReplicaSets (so it has run over what the uninstall deleted).
async fn helm_uninstall(client: &Client) {
    let rs_names: Vec<String> = Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/instance=covenant"))
        .await
        .expect("list the ReplicaSets")
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    let out = helm(&["uninstall", RELEASE, "-n", NS, "--wait"]);
    assert!(
        out.expect_ok().contains("uninstalled"),
        "helm uninstall says so: {}",
        out.stdout
    );
    assert_eq!(
        release_status(),
        None,
        "helm status finds no release after the uninstall"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    wait_gone(&deployments, "covenant", false, TIMEOUT).await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    for rs in &rs_names {
        wait_gone(&rss, rs, false, Duration::from_secs(60)).await;
    }
}

#[tokio::test]
async fn helm_uninstall_keeps_the_tenants_their_data_the_crds_and_the_accounts() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let t = TestCtx::without_operator("chart-uninstall").await;
    let (acct, nss) = tenant_with_data(&t, "keep").await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let before = accounts.get(&acct).await.expect("the Account");

    helm_uninstall(&t.client).await;
    // The release's own objects are gone (it did uninstall) ...
    for (kind, name) in [
        ("clusterrole", OPERATOR_ROLE),
        ("clusterrole", "covenant-tenant-admin"),
        ("validatingadmissionpolicy", "covenant-tenant-rolebindings"),
    ] {
        let out = kubectl(&["get", kind, name, "--ignore-not-found", "-o", "name"]);
        assert_eq!(out.expect_ok().trim(), "", "{kind} {name} was uninstalled");
    }
    // ... and a few seconds more for anything that would follow.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The tenant namespaces and their data are in place.
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    for (ns, uid) in &nss {
        let n = namespaces
            .get_opt(ns)
            .await
            .expect("get the namespace")
            .unwrap_or_else(|| panic!("tenant namespace {ns} was deleted by the uninstall"));
        assert_eq!(
            n.uid().as_deref(),
            Some(uid.as_str()),
            "namespace {ns} is the same object"
        );
        assert!(
            n.metadata.deletion_timestamp.is_none(),
            "tenant namespace {ns} is not being deleted"
        );
        let cm = Api::<ConfigMap>::namespaced(t.client.clone(), ns)
            .get("tenant-data")
            .await
            .unwrap_or_else(|e| panic!("the tenant's data in {ns}: {e}"));
        assert_eq!(
            cm.data
                .unwrap_or_default()
                .get("orders.csv")
                .map(String::as_str),
            Some(format!("id,total\n1,{ns}\n").as_str()),
            "the tenant's data in {ns} is intact"
        );
    }

    // The CRDs (`helm.sh/resource-policy: keep`, crds.keep) and the Accounts remain.
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for crd in CRDS {
        let c = crds
            .get_opt(crd)
            .await
            .expect("get the CRD")
            .unwrap_or_else(|| panic!("CRD {crd} was deleted by the uninstall"));
        assert!(
            c.metadata.deletion_timestamp.is_none(),
            "CRD {crd} is not being deleted"
        );
    }
    let after = accounts
        .get_opt(&acct)
        .await
        .expect("get the Account")
        .unwrap_or_else(|| panic!("Account {acct} was deleted by the uninstall"));
    assert_eq!(after.uid(), before.uid(), "the Account is the same object");
    assert!(
        after.metadata.deletion_timestamp.is_none(),
        "the Account is not being deleted"
    );
    assert_eq!(
        serde_json::to_value(&after.spec).unwrap(),
        serde_json::to_value(&before.spec).unwrap(),
        "the Account's spec is unchanged"
    );
    let phase = kubectl(&[
        "get",
        "accounts.covenant.dev",
        &acct,
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase.expect_ok().trim(), "Active", "its status is kept");

    // Installing again finds everything in place (the CRDs are kept, not re-created).
    helm_install();
    assert_eq!(release_status().as_deref(), Some("deployed"));
    drop(t);
}

/// charts/covenant/README.md: "`helm uninstall` does **not** delete the CRDs, so every Account,
/// Suspension, SupportPackage and DeprecationNotice survives an uninstall".
#[tokio::test]
async fn helm_uninstall_keeps_every_support_package() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let t = TestCtx::without_operator("chart-uninstall-packages").await;
    let packages: Api<SupportPackage> = Api::all(t.client.clone());
    let standard = packages
        .get("standard")
        .await
        .expect("the `standard` SupportPackage");
    helm_uninstall(&t.client).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = packages
        .get_opt("standard")
        .await
        .expect("get the SupportPackage");
    let ok = after.as_ref().is_some_and(|p| p.uid() == standard.uid());
    // Put the release back for whatever runs next, whatever the outcome.
    helm_install();
    assert!(
        ok,
        "the `standard` SupportPackage survives `helm uninstall` (the chart README says every \
         SupportPackage does; accounts without spec.supportPackage are on it); after the uninstall: {}",
        after
            .map(|p| format!("uid {:?} (before: {:?})", p.uid(), standard.uid()))
            .unwrap_or_else(|| "not found".into())
    );
    drop(t);
}

// --- 5. upgrade ------------------------------------------------------------------------------------

/// `helm upgrade` of the release with `args`.
#[track_caller]
fn helm_upgrade(args: &[&str]) {
    let mut a = vec![
        "upgrade",
        RELEASE,
        "charts/covenant",
        "-n",
        NS,
        "--wait=false",
    ];
    a.extend_from_slice(args);
    helm(&a).expect_ok();
}

/// charts/covenant/README.md, CRDs: the CRDs are objects of the release (`helm upgrade` upgrades them:
/// crds.keep takes the keep annotation off and puts it back), and the default package, a hook on the
/// install that created the CRDs, becomes an object of the release whose values `helm upgrade`
/// applies from the upgrade after the one that adopts it.
#[tokio::test]
async fn helm_upgrade_upgrades_the_crds_and_the_default_package() {
    let _chart = CHART.lock().await;
    bare_cluster();
    ensure_installed();
    let t = TestCtx::without_operator("chart-upgrade").await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let packages: Api<SupportPackage> = Api::all(t.client.clone());
    let keep = |c: &CustomResourceDefinition| {
        c.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str)
            == Some("keep")
    };
    let max_namespaces = |p: &SupportPackage| p.spec.max_namespaces;

    // Whatever the release's history, two upgrades with a value make it the package's.
    helm_upgrade(&["--set", "defaultPackage.maxNamespaces=7"]);
    helm_upgrade(&["--set", "defaultPackage.maxNamespaces=7"]);
    let manifest = helm(&["get", "manifest", RELEASE, "-n", NS])
        .expect_ok()
        .to_string();
    let in_release = manifest.contains("kind: SupportPackage");
    let seven = max_namespaces(&packages.get("standard").await.expect("standard"));

    // The CRDs follow crds.keep: the release upgrades them.
    helm_upgrade(&[
        "--set",
        "defaultPackage.maxNamespaces=7",
        "--set",
        "crds.keep=false",
    ]);
    let unkept: Vec<String> = {
        let mut v = Vec::new();
        for crd in CRDS {
            if keep(&crds.get(crd).await.expect("the CRD")) {
                v.push(crd.to_string());
            }
        }
        v
    };
    // Back to the defaults (the package's value too: one upgrade, now that it is the release's).
    // --reset-values: without values, helm upgrade would reuse the last release's.
    helm_upgrade(&["--reset-values"]);
    let three = max_namespaces(&packages.get("standard").await.expect("standard"));
    let mut rekept = true;
    for crd in CRDS {
        rekept &= keep(&crds.get(crd).await.expect("the CRD"));
    }

    assert!(
        in_release,
        "after an upgrade the default package is an object of the release:\n{manifest}"
    );
    assert_eq!(seven, Some(7), "the upgraded defaultPackage.maxNamespaces");
    assert!(
        unkept.is_empty(),
        "crds.keep=false takes helm.sh/resource-policy: keep off every CRD; still on: {unkept:?}"
    );
    assert_eq!(
        three,
        Some(3),
        "an upgrade back to the defaults puts the package's maxNamespaces back"
    );
    assert!(
        rekept,
        "crds.keep=true puts the keep annotation back on every CRD"
    );
    drop(t);
}
