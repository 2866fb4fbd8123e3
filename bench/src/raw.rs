//! The baseline: a plain kube client that creates exactly the objects Covenant creates for an account
//! (`covenant::model::plan::plan`, with the applied-hash annotation `covenant::apply` adds), by
//! server-side apply under the same field manager and identity, plus one status write per account,
//! `concurrency` accounts at a time. No operator runs.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use covenant::api::{Account, FIELD_MANAGER, SupportPackage};
use covenant::apply::Scoped;
use covenant::controller::account_quota as account_quota_ctl;
use covenant::model::account::Desired;
use covenant::model::account_quota;
use covenant::model::plan::{Observed, Plan, plan};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::k8s::{self, BENCH_MANAGER, OPERATOR_FLOW_SCHEMA};
use crate::report::{Load, Recorder, percentile};

/// Options of `covenant-bench raw`.
#[derive(Clone, Debug, clap::Args)]
pub struct RawArgs {
    /// The admin kubeconfig of a cluster with the CRDs installed and no operator running.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: std::path::PathBuf,
    /// Accounts.
    #[arg(long)]
    pub n: usize,
    /// Accounts provisioned at once (the operator's --concurrency).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Accounts provisioned one at a time afterwards, for the sequential per-tenant time.
    #[arg(long, default_value_t = 50)]
    pub sequential: usize,
    /// Where the figures are appended (JSON lines).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// The account-quota scenario: the package has an `accountQuota` and each account two or three
    /// namespaces, each with its share of the cap.
    #[arg(long)]
    pub account_quota: bool,
}

async fn ssa<K>(client: &Client, obj: &K) -> Result<()>
where
    K: Scoped + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = K::api(client, obj.meta().namespace.as_deref());
    // The body the operator sends: the object with its applied-hash annotation.
    let body = covenant::apply::with_applied_hash(&serde_json::to_value(obj)?);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// What the operator plans for `account` on `package` with nothing else observed (no suspension, no
/// notice, no namespace yet): the operator's own `plan`, whose objects and status (everything
/// applied) the raw client writes.
fn planned(account: &Account, package: &SupportPackage) -> Plan {
    let mut observed = Observed::of(account);
    observed.packages = vec![package.clone()];
    // The operator binds itself in each tenant namespace (it holds no `bind` of its own): the same
    // object, for the identity both run as.
    observed.operator = Some(k8s_openapi::api::rbac::v1::Subject {
        kind: "ServiceAccount".into(),
        name: "covenant".into(),
        namespace: Some("covenant-system".into()),
        api_group: None,
    });
    plan(&observed, Timestamp::now())
}

/// The shares of the account-wide quota as the operator leaves them once provisioned: one per
/// namespace, the cap split by the operator's own rules from empty shares (what its first rebalance
/// writes), and the Account's `status.quota` that goes with them. `None` without an `accountQuota`.
fn shares(
    account: &Account,
    package: &SupportPackage,
    namespaces: &[String],
) -> Option<(Vec<ResourceQuota>, covenant::api::AccountQuotaStatus)> {
    let cap = account_quota::effective(account, Some(package))?;
    let name = account.name_any();
    let empty: Vec<(ResourceQuota, account_quota::Share)> = namespaces
        .iter()
        .map(|ns| {
            let q = account_quota::new_share(&name, ns, &cap);
            let hard = q
                .spec
                .as_ref()
                .and_then(|s| s.hard.clone())
                .unwrap_or_default();
            let share = account_quota::Share {
                namespace: ns.clone(),
                enforced: hard.clone(),
                hard,
                ..Default::default()
            };
            (q, share)
        })
        .collect();
    let views: Vec<account_quota::Share> = empty.iter().map(|(_, s)| s.clone()).collect();
    let plan = account_quota::rebalance(&cap, &views);
    let quotas: Vec<ResourceQuota> = empty
        .into_iter()
        .map(|(mut q, s)| {
            if let (Some(w), Some(spec)) = (
                plan.raise.iter().find(|w| w.namespace == s.namespace),
                q.spec.as_mut(),
            ) {
                spec.hard = Some(w.hard.clone());
            }
            q
        })
        .collect();
    Some((quotas, account_quota::status(&cap, &views)))
}

/// Creates each share and waits, as the operator does, until admission enforces it (its `status.hard`
/// names every capped resource; at most 5 s) before the bindings let anyone in. Returns the requests.
async fn create_shares(client: &Client, shares: &[ResourceQuota]) -> Result<u32> {
    let mut requests = 0;
    for q in shares {
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
        api.create(&PostParams::default(), q).await?;
        requests += 1;
        let want: Vec<String> = q
            .spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        let deadline = Instant::now() + account_quota_ctl::SHARE_ENFORCED_WITHIN;
        while Instant::now() < deadline {
            requests += 1;
            let enforced = api
                .get(account_quota::SHARE_NAME)
                .await
                .ok()
                .and_then(|q| q.status)
                .and_then(|s| s.hard)
                .is_some_and(|h| want.iter().all(|k| h.contains_key(k)));
            if enforced {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(requests)
}

/// Provisions one tenant, object after object, then writes its status. Returns the requests made.
async fn provision(client: &Client, package: &SupportPackage, account: &Account) -> Result<u32> {
    let Plan {
        children, status, ..
    } = planned(account, package);
    let Desired {
        namespaces,
        quotas,
        limit_ranges,
        network_policies,
        role_bindings,
        cluster_roles,
        cluster_role_bindings,
        untouched: _,
    } = children;
    let mut requests = 0;
    for o in &namespaces {
        ssa(client, o).await?;
        requests += 1;
    }
    let names: Vec<String> = namespaces.iter().map(|n| n.name_any()).collect();
    let quota = match shares(account, package, &names) {
        Some((made, status)) => {
            requests += create_shares(client, &made).await?;
            Some(status)
        }
        None => None,
    };
    for o in &quotas {
        ssa(client, o).await?;
        requests += 1;
    }
    for o in &limit_ranges {
        ssa(client, o).await?;
        requests += 1;
    }
    for o in &network_policies {
        ssa(client, o).await?;
        requests += 1;
    }
    for o in &role_bindings {
        ssa(client, o).await?;
        requests += 1;
    }
    // The administrators' read access to their own Account.
    for o in &cluster_roles {
        ssa(client, o).await?;
        requests += 1;
    }
    for o in &cluster_role_bindings {
        ssa(client, o).await?;
        requests += 1;
    }
    let api: Api<Account> = Api::all(client.clone());
    let mut status = status;
    // The operator writes `status.quota` apart (its own field manager); here it goes with the rest.
    status.quota = quota;
    let patch = json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Account",
        "status": status,
    });
    api.patch_status(
        &account.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(requests + 1)
}

/// Creates `names` as Accounts (the admin, `concurrency` at a time); returns them as stored.
pub async fn create_accounts(
    admin: &Client,
    names: &[String],
    concurrency: usize,
    spread: bool,
) -> Result<Vec<(Instant, Account)>> {
    futures::stream::iter(names.iter().cloned())
        .map(|name| async move {
            let t = Instant::now();
            let a = k8s::apply_cluster(admin, &k8s::account(&name, spread), BENCH_MANAGER).await?;
            anyhow::Ok((t, a))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Runs the baseline.
pub async fn run(args: RawArgs) -> Result<()> {
    let admin = k8s::client(&args.kubeconfig, false).await?;
    let raw = k8s::client(&args.kubeconfig, true).await?;
    let mut rec = Recorder::new(&args.out, args.n, "raw");
    if args.account_quota {
        rec = rec.scenario(crate::report::ACCOUNT_QUOTA_SCENARIO);
    }
    let package =
        k8s::apply_cluster(&admin, &k8s::package(args.account_quota), BENCH_MANAGER).await?;

    let names: Vec<String> = (0..args.n).map(|i| k8s::account_name("raw", i)).collect();
    eprintln!("[bench] raw: creating {} Accounts (not timed)", args.n);
    let accounts: Vec<Account> =
        create_accounts(&admin, &names, args.concurrency, args.account_quota)
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .collect();

    // Warm the client's connection pool as the operator's is (its watches and first requests), so
    // that TLS handshakes are not timed.
    let packages: Api<SupportPackage> = Api::all(raw.clone());
    for _ in 0..2 {
        futures::future::try_join_all((0..args.concurrency).map(|_| packages.get(k8s::PACKAGE)))
            .await?;
    }
    eprintln!(
        "[bench] raw: provisioning {} accounts, {} at a time",
        args.n, args.concurrency
    );
    let load = Load::now();
    let req0 = k8s::dispatched(&admin, OPERATOR_FLOW_SCHEMA).await?;
    let t0 = Instant::now();
    let done: Vec<(Duration, Duration, u32)> = futures::stream::iter(accounts.iter())
        .map(|a| {
            let (raw, package) = (&raw, &package);
            async move {
                let start = Instant::now();
                let requests = provision(raw, package, a).await?;
                anyhow::Ok((start.elapsed(), t0.elapsed(), requests))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let elapsed = t0.elapsed().as_secs_f64();
    let req = k8s::dispatched(&admin, OPERATOR_FLOW_SCHEMA).await? - req0;
    if done.len() != args.n {
        bail!("only {} of {} accounts provisioned", done.len(), args.n);
    }
    let made: u32 = done.iter().map(|d| d.2).sum();
    let detail = format!(
        "{} accounts in {elapsed:.2}s at concurrency {}",
        args.n, args.concurrency
    );
    rec.emit(
        "throughput",
        args.n as f64 / elapsed,
        "accounts/s",
        &load,
        detail,
    )?;
    rec.emit("provision_time", elapsed, "s", &load, "")?;
    rec.emit(
        "requests_per_account",
        req / args.n as f64,
        "requests",
        &load,
        format!(
            "{req} requests dispatched by the API server for the client's identity ({made} made by it)"
        ),
    )?;
    let tenant: Vec<f64> = done.iter().map(|d| d.0.as_secs_f64() * 1e3).collect();
    let from_start: Vec<f64> = done.iter().map(|d| d.1.as_secs_f64() * 1e3).collect();
    rec.emit(
        "tenant_p50",
        percentile(&tenant, 50.0),
        "ms",
        &load,
        format!(
            "one tenant's objects and status, sequentially, within the batch at concurrency {}",
            args.concurrency
        ),
    )?;
    rec.emit("tenant_p99", percentile(&tenant, 99.0), "ms", &load, "")?;
    rec.emit(
        "ready_p50",
        percentile(&from_start, 50.0),
        "ms",
        &load,
        "from the batch start to the tenant's status write",
    )?;
    rec.emit("ready_p99", percentile(&from_start, 99.0), "ms", &load, "")?;

    if args.sequential > 0 {
        let names: Vec<String> = (0..args.sequential)
            .map(|i| k8s::account_name("rawseq", i))
            .collect();
        let accounts =
            create_accounts(&admin, &names, args.concurrency, args.account_quota).await?;
        let load = Load::now();
        let mut times = Vec::new();
        for (_, a) in &accounts {
            let t = Instant::now();
            provision(&raw, &package, a).await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let detail = format!(
            "{} further tenants, one at a time, each object after the other",
            args.sequential
        );
        rec.emit(
            "tenant_seq_p50",
            percentile(&times, 50.0),
            "ms",
            &load,
            detail,
        )?;
        rec.emit("tenant_seq_p99", percentile(&times, 99.0), "ms", &load, "")?;
    }
    Ok(())
}
