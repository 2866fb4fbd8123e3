//! Clients (the admin, and the operator's identity by impersonation), the operator's kubeconfig, the
//! benchmark's SupportPackage and Accounts, server-side apply, and the API server's request counter.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use covenant::api::{
    Account, AccountSpec, Coverage, LimitsSpec, ServiceLevel, Subject, SubjectKind, SupportPackage,
    SupportPackageSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The operator's identity (deploy/operator-rbac.yaml). Both the operator and the raw baseline act as
/// it, so that the API server's priority-and-fairness metrics count their requests apart from everyone
/// else's (the admin is in flow schema `exempt`, the controller-manager in `kube-system-*`).
pub const OPERATOR_USER: &str = "system:serviceaccount:covenant-system:covenant";
/// The groups of [`OPERATOR_USER`].
pub const OPERATOR_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:covenant-system",
    "system:authenticated",
];
/// The flow schema the API server puts [`OPERATOR_USER`]'s requests in.
pub const OPERATOR_FLOW_SCHEMA: &str = "service-accounts";
/// The field manager of the benchmark's own applies (Accounts, the package, notices).
pub const BENCH_MANAGER: &str = "covenant-bench";
/// The benchmark's SupportPackage.
pub const PACKAGE: &str = "bench";

fn impersonate(kc: &mut Kubeconfig) {
    for u in &mut kc.auth_infos {
        if let Some(a) = u.auth_info.as_mut() {
            a.impersonate = Some(OPERATOR_USER.to_string());
            a.impersonate_groups = Some(OPERATOR_GROUPS.iter().map(|g| g.to_string()).collect());
        }
    }
}

/// A client of `kubeconfig`, as its user or (`as_operator`) as the operator's ServiceAccount.
pub async fn client(kubeconfig: &Path, as_operator: bool) -> Result<Client> {
    let mut kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("cannot read {}", kubeconfig.display()))?;
    if as_operator {
        impersonate(&mut kc);
    }
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    cfg.read_timeout = Some(Duration::from_secs(330));
    Ok(Client::try_from(cfg)?)
}

/// Writes the kubeconfig the operator runs with: the admin's, impersonating [`OPERATOR_USER`]
/// (JSON, which is YAML; readable by the owner only: it holds the admin's key).
pub fn write_operator_kubeconfig(admin: &Path, out: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut kc =
        Kubeconfig::read_from(admin).with_context(|| format!("cannot read {}", admin.display()))?;
    impersonate(&mut kc);
    let text = serde_json::to_string_pretty(&kc)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn q(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// The account-wide cap of the `--account-quota` scenario: less than one namespace's quota (20 pods),
/// so that one namespace can hold all of it and the package's per-namespace quota never refuses first.
/// Pods only: the rebalancer counts a namespace as wanting room once its usage reaches its share, and
/// a CPU or memory share can keep a remainder smaller than one pod's request (see BENCHMARKS.md).
pub const ACCOUNT_QUOTA: [(&str, &str); 1] = [("pods", "12")];

/// The pods [`ACCOUNT_QUOTA`] allows an account in all.
pub const ACCOUNT_QUOTA_PODS: usize = 12;

/// The benchmark's package: quota and limits (the shape of the chart's `standard`) and the tier's
/// policies (registries, an ingress class, hostnames: every namespace carries their annotations), the
/// default; with `account_quota`, also [`ACCOUNT_QUOTA`] as its `accountQuota`.
pub fn package(account_quota: bool) -> SupportPackage {
    let mut p = SupportPackage::new(
        PACKAGE,
        SupportPackageSpec {
            display_name: Some("Benchmark package".into()),
            default: true,
            service_levels: vec![ServiceLevel {
                severity: "P1".into(),
                initial_response: "4h".into(),
                coverage: Coverage::BusinessHours,
            }],
            quota: Some(q(&[
                ("requests.cpu", "4"),
                ("requests.memory", "8Gi"),
                ("limits.cpu", "8"),
                ("limits.memory", "16Gi"),
                ("pods", "20"),
            ])),
            limits: Some(LimitsSpec {
                default: Some(q(&[("cpu", "500m"), ("memory", "512Mi")])),
                default_request: Some(q(&[("cpu", "100m"), ("memory", "128Mi")])),
                max: Some(q(&[("cpu", "2"), ("memory", "4Gi")])),
            }),
            max_namespaces: Some(3),
            policies: Some(covenant::api::Policies {
                images: Some(covenant::api::ImagePolicy {
                    allowed_registries: vec![
                        "registry.example.com/".into(),
                        "docker.io/library/".into(),
                    ],
                }),
                ingress_classes: Some(covenant::api::ClassPolicy {
                    allowed: vec!["public".into()],
                    default: Some("public".into()),
                }),
                hostnames: Some(covenant::api::HostnamePolicy {
                    allowed: vec!["*.bench.example".into()],
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    if account_quota {
        p.spec.account_quota = Some(q(&ACCOUNT_QUOTA));
    }
    p
}

/// The name of the `i`th benchmark account.
pub fn account_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}

/// The namespaces of a benchmark account: its name alone, or (`spread`, the account-quota scenario)
/// two or three: its name and `<name>-b`, and `<name>-c` for every other account.
pub fn namespaces(name: &str, spread: bool) -> Vec<String> {
    if !spread {
        return vec![name.to_string()];
    }
    let third = name
        .rsplit('-')
        .next()
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i % 2 == 0);
    let mut out = vec![name.to_string(), format!("{name}-b")];
    if third {
        out.push(format!("{name}-c"));
    }
    out
}

/// A benchmark account: its [`namespaces`], one administrator, on [`PACKAGE`].
pub fn account(name: &str, spread: bool) -> Account {
    let mut a = Account::new(
        name,
        AccountSpec {
            display_name: Some(format!("Benchmark tenant {name}")),
            administrators: vec![Subject {
                kind: SubjectKind::User,
                name: format!("admin@{name}.example"),
                namespace: None,
            }],
            support_package: Some(PACKAGE.into()),
            retention_months: 13,
            ..Default::default()
        },
    );
    if spread {
        a.spec.namespaces = namespaces(name, true);
    }
    a
}

/// Server-side applies `obj` (cluster-scoped kinds) as `manager`, forced.
pub async fn apply_cluster<K>(client: &Client, obj: &K, manager: &str) -> Result<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::all(client.clone());
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// The API server's `/metrics` text.
pub async fn apiserver_metrics(client: &Client) -> Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// Requests the API server dispatched for flow schema `schema` (all verbs, watches included).
pub async fn dispatched(client: &Client, schema: &str) -> Result<f64> {
    let text = apiserver_metrics(client).await?;
    Ok(crate::prom::sum(
        &text,
        "apiserver_flowcontrol_dispatched_requests_total",
        &[("flow_schema", schema)],
    ))
}
