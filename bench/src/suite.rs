//! The operator's figures at N accounts, in one run on a fresh cluster: provisioning (1, 2), writes and
//! requests at rest (3, 6), memory (5), a no-op reconcile of every account and one edited account (6),
//! a restart (4, 6), and notices turning Effective (7).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use covenant::api::{Account, DeprecationNotice, DeprecationNoticeSpec, NoticeType};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, ResourceQuota};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::json;

use crate::k8s::{self, BENCH_MANAGER, OPERATOR_FLOW_SCHEMA};
use crate::operator::Operator;
use crate::report::{Load, Recorder, percentile};
use crate::watch::{Changes, NoticeWatch, ReadyWatch, is_ready};

/// Options of `covenant-bench operator`.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorArgs {
    /// The admin kubeconfig of a cluster with crds/ and deploy/ installed and no operator running.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// The operator binary.
    #[arg(long, default_value = "target/release/covenant")]
    pub operator_bin: PathBuf,
    /// Accounts.
    #[arg(long)]
    pub n: usize,
    /// The operator's --concurrency (also how many Accounts the benchmark creates at once).
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Length of the at-rest window, seconds.
    #[arg(long, default_value_t = 120)]
    pub rest_secs: u64,
    /// DeprecationNotices created for the notice timing.
    #[arg(long, default_value_t = 20)]
    pub notices: usize,
    /// Seconds between creating the notices and their effective instant (default 15 + N/50).
    #[arg(long)]
    pub notice_lead_secs: Option<i64>,
    /// Where the operator's logs and kubeconfig go.
    #[arg(long)]
    pub log_dir: PathBuf,
    /// Where the figures are appended (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    /// The account-quota scenario: the package has an `accountQuota`, each account two or three
    /// namespaces, and a workload of pods measures what rebalancing costs (figures 8).
    #[arg(long)]
    pub account_quota: bool,
    /// Accounts of the account-quota workload (spread over the N).
    #[arg(long, default_value_t = 20)]
    pub quota_accounts: usize,
}

/// The context of one run.
pub(crate) struct Run {
    pub(crate) args: OperatorArgs,
    pub(crate) admin: Client,
    pub(crate) op: Operator,
    pub(crate) rec: Recorder,
    pub(crate) names: Vec<String>,
    /// VmRSS (MiB) of the operator on an empty cluster, once ready.
    rss_empty: f64,
}

impl Run {
    pub(crate) fn n(&self) -> usize {
        self.args.n
    }

    /// Events about objects of `kind`: Event objects, and occurrences (each series' count) by reason.
    async fn events(&self, kind: &str) -> Result<(usize, String)> {
        let api: Api<Event> = Api::all(self.admin.clone());
        let list = api
            .list(&ListParams::default().fields(&format!("involvedObject.kind={kind}")))
            .await?;
        let mut by: std::collections::BTreeMap<String, i64> = Default::default();
        for e in &list.items {
            let n = e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1)
                .max(1) as i64;
            *by.entry(e.reason.clone().unwrap_or_default()).or_default() += n;
        }
        let total: i64 = by.values().sum();
        let reasons = by
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok((list.items.len(), format!("{total} occurrences: {reasons}")))
    }

    pub(crate) async fn requests(&self) -> Result<f64> {
        k8s::dispatched(&self.admin, OPERATOR_FLOW_SCHEMA).await
    }

    /// Waits until no reconcile starts for `quiet` (at most `cap`); logs how long that took.
    async fn settle(&self, what: &str, quiet: u64, cap: u64) -> Result<Duration> {
        let (waited, ok) = self
            .op
            .wait_quiet(Duration::from_secs(quiet), Duration::from_secs(cap))
            .await?;
        if ok {
            eprintln!(
                "[bench] {what}: quiet (no reconcile for {quiet}s) after {:.1}s",
                waited.as_secs_f64()
            );
        } else {
            eprintln!("[bench] {what}: still reconciling after {cap}s; going on");
        }
        Ok(waited)
    }
}

/// Runs every operator figure at N.
pub async fn run(args: OperatorArgs) -> Result<()> {
    std::fs::create_dir_all(&args.log_dir)?;
    let admin = k8s::client(&args.kubeconfig, false).await?;
    let op_kubeconfig = args.log_dir.join("operator.kubeconfig");
    k8s::write_operator_kubeconfig(&args.kubeconfig, &op_kubeconfig)?;
    let op = Operator::new(
        &args.operator_bin,
        &op_kubeconfig,
        &args.log_dir,
        args.concurrency,
    )?;
    k8s::apply_cluster(&admin, &k8s::package(args.account_quota), BENCH_MANAGER).await?;
    let names = (0..args.n).map(|i| k8s::account_name("acct", i)).collect();
    let mut rec = Recorder::new(&args.out, args.n, "covenant");
    if args.account_quota {
        rec = rec.scenario(crate::report::ACCOUNT_QUOTA_SCENARIO);
    }
    let mut run = Run {
        rec,
        args,
        admin,
        op,
        names,
        rss_empty: f64::NAN,
    };
    let changes = Changes::start(&run.admin);
    changes.synced(Duration::from_secs(60)).await?;
    let ready = ReadyWatch::start(&run.admin, "acct-");
    ready.synced().await;
    let first = run.op.start().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.rss_empty = run.op.memory()?.1;
    eprintln!(
        "[bench] operator ready {:.2}s after spawn (empty cluster); VmRSS {:.1} MiB",
        first.as_secs_f64(),
        run.rss_empty
    );

    provisioning(&run, &ready).await?;
    run.settle("after provisioning", 5, 120).await?;
    at_rest(&run, &changes).await?;
    if run.args.account_quota {
        crate::quota::workload(&run, &changes, run.args.quota_accounts).await?;
    }
    noop(&run).await?;
    edit(&run).await?;
    restart(&mut run, &changes).await?;
    notices(&run).await?;
    run.op.kill().await?;
    Ok(())
}

/// 1 and 2: N Accounts applied with the operator running, until all are Ready (seen by a watch).
async fn provisioning(run: &Run, ready: &ReadyWatch) -> Result<()> {
    let n = run.n();
    let c = run.args.concurrency as usize;
    eprintln!("[bench] applying {n} Accounts, {c} at a time, operator running");
    let load = Load::now();
    let (req0, w0) = (run.requests().await?, run.op.writes().await?);
    let wk0 = run.op.writes_by_kind().await?;
    let t0 = Instant::now();
    let created =
        crate::raw::create_accounts(&run.admin, &run.names, c, run.args.account_quota).await?;
    let applied = t0.elapsed();
    let timeout = Duration::from_secs(120) + Duration::from_millis(500 * n as u64);
    let all = ready.wait(n, timeout).await;
    let seen = ready.seen();
    let last = seen.values().max().copied().unwrap_or(t0);
    let elapsed = last.duration_since(t0).as_secs_f64();
    let req_ready = run.requests().await? - req0;
    let w_ready = run.op.writes().await? - w0;
    let rec = &run.rec;
    let mut detail = format!(
        "{} of {n} Ready {elapsed:.2}s after the first apply; the {n} applies took {:.2}s; operator --concurrency {c}",
        seen.len(),
        applied.as_secs_f64()
    );
    if !all {
        detail.push_str(&format!("; TIMEOUT after {timeout:?}"));
    }
    rec.emit(
        "throughput",
        seen.len() as f64 / elapsed,
        "accounts/s",
        &load,
        detail,
    )?;
    rec.emit("provision_time", elapsed, "s", &load, "")?;
    let lat: Vec<f64> = created
        .iter()
        .filter_map(|(t, a)| {
            let name = a.metadata.name.as_deref()?;
            Some(seen.get(name)?.duration_since(*t).as_secs_f64() * 1e3)
        })
        .collect();
    rec.emit(
        "ready_p50",
        percentile(&lat, 50.0),
        "ms",
        &load,
        "from the client's apply of the Account to Ready=True seen through a watch",
    )?;
    rec.emit("ready_p99", percentile(&lat, 99.0), "ms", &load, "")?;
    // The whole cost of provisioning: until the operator stops reconciling.
    let settled = run.settle("provisioning", 5, 120).await?;
    let req = run.requests().await? - req0;
    let w = run.op.writes().await? - w0;
    let recs = run.op.reconciles(Some("Account")).await?;
    let kinds = crate::prom::delta(&wk0, &run.op.writes_by_kind().await?);
    let (ev, occ) = run.events("Account").await?;
    rec.emit(
        "requests_per_account",
        req / n as f64,
        "requests",
        &load,
        format!(
            "{req} requests by the operator's identity until quiet ({req_ready} until all Ready; quiet {:.1}s later); \
             covenant_writes_total {w} ({w_ready} until all Ready), {:.2} per account ({kinds}); {recs} Account reconciles; {ev} Event objects about Accounts ({occ})",
            settled.as_secs_f64(),
            w / n as f64
        ),
    )?;
    Ok(())
}

/// 3 and 6: resourceVersion changes, writes, requests and reconciles over the rest window; then 5.
async fn at_rest(run: &Run, changes: &Changes) -> Result<()> {
    let secs = run.args.rest_secs;
    eprintln!(
        "[bench] at rest for {secs}s ({} objects watched)",
        changes.objects()
    );
    let load = Load::now();
    let (q0, w0, r0) = (
        run.requests().await?,
        run.op.writes().await?,
        run.op.reconciles(None).await?,
    );
    changes.arm();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (total, by) = changes.take();
    let (q, w, r) = (
        run.requests().await? - q0,
        run.op.writes().await? - w0,
        run.op.reconciles(None).await? - r0,
    );
    let rec = &run.rec;
    let by = if by.is_empty() {
        "none".to_string()
    } else {
        by.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rec.emit(
        "rest_changes",
        total as f64,
        "changes",
        &load,
        format!(
            "{secs}s window over {} watched objects; {by}",
            changes.objects()
        ),
    )?;
    rec.emit("rest_writes", w, "writes", &load, format!("{secs}s window"))?;
    rec.emit(
        "rest_requests",
        q,
        "requests",
        &load,
        format!("{secs}s window, dispatched for the operator's identity (flow schema {OPERATOR_FLOW_SCHEMA}; includes watch re-establishment)"),
    )?;
    rec.emit(
        "rest_reconciles",
        r,
        "reconciles",
        &load,
        format!("{secs}s window, all kinds"),
    )?;

    let (hwm, rss) = run.op.memory()?;
    let n = run.n() as f64;
    rec.emit(
        "mem_peak",
        hwm,
        "MiB",
        &load,
        "VmHWM after provisioning and rest",
    )?;
    rec.emit(
        "mem_rss",
        rss,
        "MiB",
        &load,
        "VmRSS at the end of the rest window",
    )?;
    rec.emit(
        "mem_empty",
        run.rss_empty,
        "MiB",
        &load,
        "VmRSS once ready on the empty cluster",
    )?;
    rec.emit(
        "mem_rss_per_1000",
        (rss - run.rss_empty) * 1000.0 / n,
        "MiB",
        &load,
        format!(
            "(steady VmRSS {rss:.1} − empty {:.1}) × 1000 / N",
            run.rss_empty
        ),
    )?;
    // A scrape's size grows with the number of accounts (the per-account gauges): what a Prometheus
    // scraping the operator receives each time, per account.
    let scrape = run.op.metrics().await?.len() as f64;
    rec.emit(
        "metrics_bytes_per_account",
        scrape / n,
        "bytes",
        &load,
        format!("one /metrics scrape at rest: {scrape} bytes"),
    )?;
    Ok(())
}

/// 6: every account touched (an annotation: a reconcile with nothing to do), requests per reconcile.
async fn noop(run: &Run) -> Result<()> {
    let n = run.n();
    eprintln!("[bench] touching {n} Accounts (annotation only)");
    let load = Load::now();
    let (q0, w0, ra0, r0, s0) = (
        run.requests().await?,
        run.op.writes().await?,
        run.op.reconciles(Some("Account")).await?,
        run.op.reconciles(None).await?,
        run.op.reconcile_seconds("Account").await?,
    );
    let cpu0 = run.op.cpu_seconds().await?;
    let stamp = Timestamp::now().to_string();
    let api: Api<Account> = Api::all(run.admin.clone());
    futures::stream::iter(run.names.iter())
        .map(|name| {
            let (api, stamp) = (api.clone(), stamp.clone());
            async move {
                let p = json!({"metadata": {"annotations": {"bench.covenant.dev/touched": stamp}}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
                    .await
            }
        })
        .buffer_unordered(run.args.concurrency as usize)
        .try_collect::<Vec<_>>()
        .await?;
    let deadline =
        Instant::now() + Duration::from_secs(120) + Duration::from_millis(200 * n as u64);
    while run.op.reconciles(Some("Account")).await? - ra0 < n as f64 && Instant::now() < deadline {
        // A scrape is work for the operator at large N (see `Operator::wait_quiet`).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    run.settle("after the touch", 3, 60).await?;
    let (q, w, ra, r, secs) = (
        run.requests().await? - q0,
        run.op.writes().await? - w0,
        run.op.reconciles(Some("Account")).await? - ra0,
        run.op.reconciles(None).await? - r0,
        run.op.reconcile_seconds("Account").await? - s0,
    );
    let cpu = run.op.cpu_seconds().await? - cpu0;
    // What one reconcile with nothing to do costs the operator itself: flat in N when no reconcile
    // reads other tenants' objects. Wall time (reconciles run --concurrency at once, so each one's
    // time includes waiting for a core) and the process's CPU time over every reconcile of the
    // touch (watch decoding and every kind's reconciles included).
    run.rec.emit(
        "noop_reconcile_ms",
        secs * 1000.0 / ra.max(1.0),
        "ms",
        &load,
        format!(
            "{secs:.3} s in {ra} Account reconciles after annotating {n} Accounts ({} at once)",
            run.args.concurrency
        ),
    )?;
    run.rec.emit(
        "noop_cpu_ms",
        cpu * 1000.0 / r.max(1.0),
        "ms",
        &load,
        format!("process_cpu_seconds_total +{cpu:.2} s over {r} reconciles of every kind ({ra} of Accounts), from the first annotation until quiet"),
    )?;
    run.rec.emit(
        "noop_requests_per_reconcile",
        q / r.max(1.0),
        "requests",
        &load,
        format!("{q} requests for {r} reconciles ({ra} of Accounts) after annotating {n} Accounts; covenant_writes_total +{w}"),
    )?;
    Ok(())
}

/// 6: one account's quota edited: time until the ResourceQuota has it, requests and reconciles.
async fn edit(run: &Run) -> Result<()> {
    let Some(name) = run.names.first().cloned() else {
        return Ok(());
    };
    eprintln!("[bench] editing the quota of {name}");
    let load = Load::now();
    let (q0, w0, r0) = (
        run.requests().await?,
        run.op.writes().await?,
        run.op.reconciles(None).await?,
    );
    let wk0 = run.op.writes_by_kind().await?;
    let accounts: Api<Account> = Api::all(run.admin.clone());
    let quotas: Api<ResourceQuota> = Api::namespaced(run.admin.clone(), &name);
    let t = Instant::now();
    let p = json!({"spec": {"quota": {"pods": "21"}}});
    accounts
        .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    let has = |q: Option<&ResourceQuota>| {
        q.and_then(|q| q.spec.as_ref()?.hard.as_ref()?.get("pods"))
            .is_some_and(|p| p.0 == "21")
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(quotas, covenant::model::account::QUOTA_NAME, has),
    )
    .await??;
    let latency = t.elapsed();
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(accounts, &name, |a: Option<&Account>| {
            a.is_some_and(is_ready)
        }),
    )
    .await??;
    let ready = t.elapsed();
    run.settle("after the edit", 3, 60).await?;
    let (q, w, r) = (
        run.requests().await? - q0,
        run.op.writes().await? - w0,
        run.op.reconciles(None).await? - r0,
    );
    let rec = &run.rec;
    rec.emit(
        "edit_latency",
        latency.as_secs_f64() * 1e3,
        "ms",
        &load,
        format!(
            "spec.quota.pods 20 → 21; Ready for the new generation after {:.0} ms",
            ready.as_secs_f64() * 1e3
        ),
    )?;
    rec.emit(
        "edit_requests",
        q,
        "requests",
        &load,
        format!(
            "until quiet; covenant_writes_total +{w} ({})",
            crate::prom::delta(&wk0, &run.op.writes_by_kind().await?)
        ),
    )?;
    rec.emit("edit_reconciles", r, "reconciles", &load, "all kinds")?;
    Ok(())
}

/// 4: SIGKILL, a new process, time to /readyz and until every Account is reconciled; what it wrote.
async fn restart(run: &mut Run, changes: &Changes) -> Result<()> {
    let n = run.n() as f64;
    eprintln!("[bench] restarting the operator (SIGKILL)");
    let load = Load::now();
    changes.arm();
    let q0 = run.requests().await?;
    run.op.kill().await?;
    let t0 = run.op.spawn()?;
    run.op.wait_ready().await?;
    let readyz = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut converged = None;
    while Instant::now() < deadline {
        if run.op.reconciles(Some("Account")).await.unwrap_or(0.0) >= n {
            converged = Some(t0.elapsed());
            break;
        }
        // Every 250 ms: a scrape is work for the restarted operator at large N.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.settle("after the restart", 5, 60).await?;
    let (total, by) = changes.take();
    let q = run.requests().await? - q0;
    let w = run.op.writes().await?;
    let wk = crate::prom::delta(&Default::default(), &run.op.writes_by_kind().await?);
    let r = run.op.reconciles(None).await?;
    let ra = run.op.reconciles(Some("Account")).await?;
    let rec = &run.rec;
    rec.emit("restart_readyz", readyz.as_secs_f64(), "s", &load, "")?;
    rec.emit(
        "restart_converge",
        converged.map_or(f64::NAN, |d| d.as_secs_f64()),
        "s",
        &load,
        match converged {
            Some(_) => {
                format!("covenant_reconciles_total{{kind=\"Account\"}} ≥ {n} (read every 250 ms)")
            }
            None => format!("TIMEOUT: only {ra} Account reconciles in 300s"),
        },
    )?;
    rec.emit(
        "restart_writes",
        w,
        "writes",
        &load,
        format!("covenant_writes_total of the new process until quiet ({wk})"),
    )?;
    let by = if by.is_empty() {
        "none".to_string()
    } else {
        by.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rec.emit("restart_changes", total as f64, "changes", &load, by)?;
    rec.emit(
        "restart_requests_per_reconcile",
        q / r.max(1.0),
        "requests",
        &load,
        format!("{q} requests (including the initial lists and watches) for {r} reconciles ({ra} of Accounts)"),
    )?;
    let (hwm, _) = run.op.memory()?;
    rec.emit(
        "restart_mem_peak",
        hwm,
        "MiB",
        &load,
        "VmHWM of the restarted process",
    )?;
    Ok(())
}

/// 7: K amendments whose effective instant (= servedAt + 30 days = rejection deadline) is a few seconds
/// ahead, selecting every account; how late Effective=True flips.
async fn notices(run: &Run) -> Result<()> {
    let k = run.args.notices;
    if k == 0 {
        return Ok(());
    }
    let n = run.n();
    let lead = run.args.notice_lead_secs.unwrap_or(15 + n as i64 / 50);
    let watch = NoticeWatch::start(&run.admin, "bench-notice-");
    watch.synced().await;
    // API times have whole seconds.
    let at = Timestamp::from_second(Timestamp::now().as_second() + lead + 1)?;
    let served = at - SignedDuration::from_hours(30 * 24);
    eprintln!("[bench] {k} Amendments over {n} accounts, effective at {at} (in ~{lead}s)");
    let load = Load::now();
    let (q0, w0, r0) = (
        run.requests().await?,
        run.op.writes().await?,
        run.op.reconciles(None).await?,
    );
    let wk0 = run.op.writes_by_kind().await?;
    for i in 0..k {
        let notice = DeprecationNotice::new(
            &format!("bench-notice-{i:03}"),
            DeprecationNoticeSpec {
                notice_type: NoticeType::Amendment,
                summary: format!("Benchmark amendment {i}"),
                url: Some(format!("https://bench.example/terms/{i}")),
                service: None,
                replacement: None,
                effective_at: Time(at),
                served_at: Some(Time(served)),
                exemption: None,
                accounts: None,
            },
        );
        k8s::apply_cluster(&run.admin, &notice, BENCH_MANAGER).await?;
    }
    let timeout = Duration::from_secs(lead as u64 + 300) + Duration::from_millis(300 * n as u64);
    let all = watch.wait_effective(k, timeout).await;
    let processed_before = watch.processed_before(at);
    let flips = watch.flips();
    let late: Vec<f64> = flips
        .values()
        .map(|f| f.observed.duration_since(at).as_secs_f64() * 1e3)
        .collect();
    let ltt: Vec<f64> = flips
        .values()
        .filter_map(|f| Some(f.transition?.duration_since(f.enforced?).as_secs_f64()))
        .collect();
    let exact = flips.values().filter(|f| f.enforced == Some(at)).count();
    // Every account's status changes at the instant too (its decision on each notice): those writes
    // drain behind the notices' own. Meanwhile a probe reads a notice every 500 ms as the operator's
    // identity, in the API server's queue the operator's writes wait in: what the drain costs the
    // API server's latency.
    let probe = LatencyProbe::start(
        k8s::client(&run.args.kubeconfig, true).await?,
        "/apis/covenant.dev/v1alpha1/deprecationnotices/bench-notice-000",
    );
    let cap = 600.max(n as u64 * 3 / 20);
    let settled = run.settle("after the notices", 5, cap).await?;
    let drained = (Timestamp::now() - SignedDuration::from_secs(5))
        .duration_since(at)
        .as_secs_f64()
        .max(0.0);
    let probed = probe.stop().await;
    let (q, w, r) = (
        run.requests().await? - q0,
        run.op.writes().await? - w0,
        run.op.reconciles(None).await? - r0,
    );
    let wk = crate::prom::delta(&wk0, &run.op.writes_by_kind().await?);
    let (events, occ) = run.events("DeprecationNotice").await?;
    let mut detail = format!(
        "{} of {k} Effective; {processed_before} of {k} had their first status before the instant; \
         enforcedEffectiveAt = effectiveAt for {exact}; lead {lead}s; from creation until quiet ({:.0}s after the last flip): \
         {q} requests, covenant_writes_total +{w} ({wk}), {r} reconciles, {events} Event objects about notices ({occ}); each notice's lateness (s): {}",
        flips.len(),
        settled.as_secs_f64(),
        {
            let mut l = late.clone();
            l.sort_by(f64::total_cmp);
            l.iter()
                .map(|v| format!("{:.1}", v / 1e3))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    if !all {
        detail.push_str(&format!("; TIMEOUT after {timeout:?}"));
    }
    let rec = &run.rec;
    rec.emit(
        "notice_late_p50",
        percentile(&late, 50.0),
        "ms",
        &load,
        detail,
    )?;
    rec.emit(
        "notice_late_p99",
        percentile(&late, 99.0),
        "ms",
        &load,
        format!(
            "max {:.0} ms",
            late.iter().copied().fold(f64::NAN, f64::max)
        ),
    )?;
    rec.emit(
        "notice_ltt_p50",
        percentile(&ltt, 50.0),
        "s",
        &load,
        "condition lastTransitionTime (whole seconds) − status.enforcedEffectiveAt",
    )?;
    rec.emit("notice_ltt_p99", percentile(&ltt, 99.0), "s", &load, "")?;
    rec.emit(
        "notice_drain",
        drained,
        "s",
        &load,
        format!(
            "from the effective instant until the operator's last reconcile (no reconcile for 5 s after it{})",
            if settled.as_secs() >= cap { format!("; still reconciling after the {cap} s cap") } else { String::new() }
        ),
    )?;
    let failed = probed.iter().filter(|p| p.is_none()).count();
    let ms: Vec<f64> = probed.iter().flatten().copied().collect();
    rec.emit(
        "drain_get_p50",
        percentile(&ms, 50.0),
        "ms",
        &load,
        format!(
            "a GET of a notice every 500 ms as the operator's identity, from the last flip until quiet: {} reads, {failed} failed",
            probed.len()
        ),
    )?;
    rec.emit(
        "drain_get_p99",
        percentile(&ms, 99.0),
        "ms",
        &load,
        format!("max {:.0} ms", ms.iter().copied().fold(f64::NAN, f64::max)),
    )?;
    // The notice object as every watcher of notices receives it: counts, no row per account.
    let mut largest = 0;
    for i in 0..k {
        let req = http::Request::get(format!(
            "/apis/covenant.dev/v1alpha1/deprecationnotices/bench-notice-{i:03}"
        ))
        .body(Vec::new())?;
        largest = largest.max(run.admin.request_text(req).await?.len());
    }
    rec.emit(
        "notice_bytes_max",
        largest as f64,
        "B",
        &load,
        format!("the largest of {k} notices selecting every one of {n} accounts, read once they were quiet"),
    )?;
    Ok(())
}

/// Reads one path every 500 ms until stopped, timing each read (`None`: the read failed).
struct LatencyProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Option<f64>>>,
}

impl LatencyProbe {
    fn start(client: Client, path: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, path) = (stop.clone(), path.to_string());
        let task = tokio::spawn(async move {
            let mut taken = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = match http::Request::get(&path).body(Vec::new()) {
                    Ok(req) => client.request_text(req).await.is_ok(),
                    Err(_) => false,
                };
                taken.push(ok.then(|| t0.elapsed().as_secs_f64() * 1e3));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            taken
        });
        LatencyProbe { stop, task }
    }

    async fn stop(self) -> Vec<Option<f64>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
