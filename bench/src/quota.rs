//! The account-wide quota's figures (8), with N accounts provisioned on a package with an
//! `accountQuota` (`--account-quota`): a fixed workload of pods over a few accounts' namespaces, what
//! the operator's rebalancing costs per pod admitted, how long a refusal by a share waits for its
//! retry to succeed, and that no account ever holds more than its cap.
//!
//! The workload, per account of the workload: one pod in each of its namespaces at once, then its
//! first namespace alone creates pods until the account's whole cap is used, so that it needs the room
//! the idle namespaces were given (the cap starts split evenly between the namespaces). Every create
//! refused by a share is retried every 100 ms until admitted (at most [`RETRY_FOR`]). There are no
//! kubelets: the pods stay Pending, which is what admission counts.

use std::time::{Duration, Instant};

use anyhow::Result;
use covenant::model::account_quota::{SHARE_NAME, milli};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::k8s::{self, ACCOUNT_QUOTA_PODS};
use crate::report::{Load, percentile};
use crate::suite::Run;
use crate::watch::Changes;

/// How long one pod's create is retried after a refusal before it counts as not admitted.
pub const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long the operator's write and list counters must stay still for the workload to be over.
const QUIET: Duration = Duration::from_secs(12);

/// A pod that never runs, admitted by the benchmark package's policies (Pod Security `restricted`, an
/// allowed registry); its requests are the LimitRange's defaults.
fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "seccompProfile": { "type": "RuntimeDefault" }
            },
            "containers": [{
                "name": "pause",
                "image": "registry.example.com/pause:3.10",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": { "drop": ["ALL"] }
                }
            }]
        }
    }))?)
}

/// What happened to one pod's create.
#[derive(Debug, Default)]
struct Outcome {
    admitted: bool,
    /// Refusals by a share of the account quota.
    refusals: u32,
    /// Refusals by another quota (the package's per namespace), or other errors.
    other: u32,
    /// From the first refusal by a share to the success of a retry.
    waited: Option<Duration>,
}

/// Creates `name` in `ns`, retrying every refusal every 100 ms for at most [`RETRY_FOR`].
async fn create(client: &Client, ns: &str, name: &str) -> Result<Outcome> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let body = pod(name)?;
    let mut out = Outcome::default();
    let mut first: Option<Instant> = None;
    let start = Instant::now();
    loop {
        match api.create(&PostParams::default(), &body).await {
            Ok(_) => {
                out.admitted = true;
                out.waited = first.map(|t| t.elapsed());
                return Ok(out);
            }
            // A retry whose first try was admitted after all (the answer was lost).
            Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
                out.admitted = true;
                out.waited = first.map(|t| t.elapsed());
                return Ok(out);
            }
            Err(kube::Error::Api(e))
                if e.code == 403
                    && e.message.contains("exceeded quota")
                    && e.message.contains(SHARE_NAME) =>
            {
                out.refusals += 1;
                first.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                out.other += 1;
                if out.other <= 3 {
                    eprintln!("[bench] pod {ns}/{name}: {e}; retrying");
                }
            }
        }
        if start.elapsed() > RETRY_FOR {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One account's part of the workload: a pod in each namespace at once, then pods in the first
/// namespace until the cap is used (or one of them is not admitted within [`RETRY_FOR`]).
async fn account(client: &Client, name: &str) -> Result<Vec<Outcome>> {
    let namespaces = k8s::namespaces(name, true);
    let mut outcomes: Vec<Outcome> =
        futures::future::try_join_all(namespaces.iter().map(|ns| create(client, ns, "spread-0")))
            .await?;
    let busy = &namespaces[0];
    let t0 = Instant::now();
    for j in 0..ACCOUNT_QUOTA_PODS.saturating_sub(namespaces.len()) {
        let o = create(client, busy, &format!("busy-{j}")).await?;
        let stuck = !o.admitted;
        outcomes.push(o);
        if stuck {
            // The rest would wait as long: counted as not admitted, not tried.
            let left = ACCOUNT_QUOTA_PODS - outcomes.len();
            outcomes.extend((0..left).map(|_| Outcome::default()));
            break;
        }
    }
    eprintln!(
        "[bench] account quota: {name}: {} of {} pods admitted, {} refusals by a share ({:.1}s in {busy})",
        outcomes.iter().filter(|o| o.admitted).count(),
        outcomes.len(),
        outcomes.iter().map(|o| o.refusals).sum::<u32>(),
        t0.elapsed().as_secs_f64()
    );
    Ok(outcomes)
}

/// The operator's own count of its requests for the account quota: every write it made (shares,
/// status, and anything else meanwhile) and every list of an account's shares.
async fn counters(run: &Run) -> Result<(f64, f64)> {
    let text = run.op.metrics().await?;
    Ok((
        crate::prom::sum(&text, "covenant_writes_total", &[]),
        crate::prom::sum(&text, "covenant_account_quota_rebalances_total", &[]),
    ))
}

/// Waits until the operator's writes and share lists have not changed for [`QUIET`] (at most `cap`).
async fn quiet(run: &Run, cap: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    let mut last = counters(run).await?;
    let mut since = Instant::now();
    while since.elapsed() < QUIET && t0.elapsed() < cap {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = counters(run).await?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok(t0.elapsed())
}

/// Per account of the workload: the pods of its namespaces as listed, and the sum of its shares'
/// `status.used` pods.
async fn read_back(client: &Client, name: &str) -> Result<(usize, i128)> {
    let mut pods = 0;
    let mut used = 0;
    for ns in k8s::namespaces(name, true) {
        pods += Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let share = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
            .get(SHARE_NAME)
            .await?;
        used += share
            .status
            .and_then(|s| s.used)
            .and_then(|u| u.get("pods").and_then(|q| milli(&q.0, true)))
            .unwrap_or(0)
            / 1000;
    }
    Ok((pods, used))
}

/// 8: the workload over `accounts` accounts spread over the N, what it cost until the operator is
/// quiet, and the writes at rest afterwards.
pub async fn workload(run: &Run, changes: &Changes, accounts: usize) -> Result<()> {
    let n = run.n();
    let k = accounts.min(n).max(1);
    // Spread over the whole range of names (the first, then every N/k-th).
    let chosen: Vec<String> = (0..k).map(|i| run.names[i * n / k].clone()).collect();
    let c = run.args.concurrency as usize;
    eprintln!(
        "[bench] account quota: {k} accounts of {n}, {c} at a time, each using its whole cap of {ACCOUNT_QUOTA_PODS} pods"
    );
    let load = Load::now();
    let req0 = run.requests().await?;
    let (w0, l0) = counters(run).await?;
    let wk0 = run.op.writes_by_kind().await?;
    let t0 = Instant::now();
    let outcomes: Vec<Outcome> = futures::stream::iter(chosen.iter())
        .map(|name| account(&run.admin, name))
        .buffer_unordered(c)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let busy = t0.elapsed();
    let settled = quiet(run, Duration::from_secs(180)).await?;
    let req = run.requests().await? - req0;
    let (w1, l1) = counters(run).await?;
    let (w, lists) = (w1 - w0, l1 - l0);
    let kinds = crate::prom::delta(&wk0, &run.op.writes_by_kind().await?);
    let admitted = outcomes.iter().filter(|o| o.admitted).count();
    let refusals: u32 = outcomes.iter().map(|o| o.refusals).sum();
    let other: u32 = outcomes.iter().map(|o| o.other).sum();
    let refused_pods = outcomes.iter().filter(|o| o.refusals > 0).count();
    let waits: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.waited)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    let per = admitted.max(1) as f64;
    let rec = &run.rec;
    let what = format!(
        "{admitted} pods admitted of {} created ({k} accounts × a cap of {ACCOUNT_QUOTA_PODS} pods, \
         2 or 3 namespaces each) in {:.1}s; until the operator was quiet {:.1}s later",
        outcomes.len(),
        busy.as_secs_f64(),
        settled.as_secs_f64()
    );
    rec.emit(
        "quota_requests_per_pod",
        (w + lists) / per,
        "requests",
        &load,
        format!("{what}: covenant_writes_total +{w} ({kinds}) and {lists} share lists"),
    )?;
    rec.emit(
        "quota_apiserver_requests_per_pod",
        req / per,
        "requests",
        &load,
        format!(
            "{req} requests dispatched by the API server for the operator's identity (writes, lists, \
             Events, the account controller's) over the same span"
        ),
    )?;
    rec.emit(
        "quota_rebalances",
        lists,
        "rebalances",
        &load,
        format!("{:.2} per account of the workload", lists / k as f64),
    )?;
    rec.emit(
        "quota_refusals",
        f64::from(refusals),
        "refusals",
        &load,
        format!(
            "{refused_pods} pods refused by a share at least once, each retried every 100 ms; \
             {other} other failed tries (conflicts, other quotas)"
        ),
    )?;
    rec.emit(
        "quota_retry_p50",
        percentile(&waits, 50.0),
        "ms",
        &load,
        format!(
            "over {} pods: from a pod's first refusal by a share to the success of a retry (retries every 100 ms)",
            waits.len()
        ),
    )?;
    rec.emit(
        "quota_retry_p99",
        percentile(&waits, 99.0),
        "ms",
        &load,
        format!(
            "max {:.0} ms",
            waits.iter().copied().fold(f64::NAN, f64::max)
        ),
    )?;
    rec.emit(
        "quota_unadmitted",
        (outcomes.len() - admitted) as f64,
        "pods",
        &load,
        format!("not admitted within {RETRY_FOR:?} of retries"),
    )?;
    rec.emit(
        "quota_pods_per_s",
        admitted as f64 / busy.as_secs_f64(),
        "pods/s",
        &load,
        format!("{c} accounts at a time, each account's pods one after the other"),
    )?;

    let mut over = 0;
    let mut most = (0, 0);
    for name in &chosen {
        let (pods, used) = read_back(&run.admin, name).await?;
        if pods > ACCOUNT_QUOTA_PODS || used > ACCOUNT_QUOTA_PODS as i128 {
            over += 1;
        }
        most = (most.0.max(pods), most.1.max(used));
    }
    rec.emit(
        "quota_over_cap",
        over as f64,
        "accounts",
        &load,
        format!(
            "of {k}: pods listed in their namespaces and the sum of their shares' status.used pods; \
             the most of any account: {} pods listed, {} used (cap {ACCOUNT_QUOTA_PODS})",
            most.0, most.1
        ),
    )?;

    // At rest after the workload: nothing moves.
    let secs = 15;
    let load = Load::now();
    changes.arm();
    let (w0, l0) = counters(run).await?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (w1, l1) = counters(run).await?;
    let (total, by) = changes.take();
    rec.emit(
        "quota_rest_writes",
        w1 - w0,
        "writes",
        &load,
        format!(
            "{secs}s window after the workload: {} share lists, {total} resourceVersion changes{}",
            l1 - l0,
            if by.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    by.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    )?;
    Ok(())
}
