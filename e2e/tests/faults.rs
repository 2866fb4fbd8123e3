//! Faults of the control plane and of stored data, injected for real on a cluster of this binary's
//! own (it stops the API server and etcd, and loosens a CRD's schema): the operator rides out each one
//! without restarting, its readiness shows the outage while it lasts, and every tenant ends in its
//! declared state.
//!
//! The tests take turns (a lock): each fault would disturb the others.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use covenant::api::Account;
use covenant_e2e::fixtures::{account, hard};
use covenant_e2e::operator::{self, Operator, metric_sum};
use covenant_e2e::{TestCtx, cluster, eventually, k8s, wait_account_ready, wait_for};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a component stays down (the issue asks for 20 s).
const OUTAGE: Duration = Duration::from_secs(20);
/// Accounts being provisioned when the fault strikes.
const LOAD: usize = 12;
/// How long the operator may take to notice an outage: its API check runs every 5 s with a 5 s
/// timeout, and a broken watch counts at once.
const NOTICE_WITHIN: Duration = Duration::from_secs(15);
/// How long the operator may take to recover after the component is back: its watches retry with
/// exponential backoff capped at 30 s.
const RECOVER_WITHIN: Duration = Duration::from_secs(60);

/// Polls the operator's `/readyz` until `want(code)` holds; returns how long it took.
async fn readyz_until(what: &str, timeout: Duration, want: impl Fn(u16) -> bool) -> Duration {
    let start = Instant::now();
    eventually(what, timeout, || {
        let code = operator::handle().readyz();
        let ok = code.as_ref().is_ok_and(|c| want(*c));
        async move {
            if ok {
                Ok(())
            } else {
                Err(format!("/readyz: {code:?}"))
            }
        }
    })
    .await;
    start.elapsed()
}

/// Waits until the API server answers `/readyz` with ok.
async fn api_server_ready() {
    eventually("the API server is ready again", RECOVER_WITHIN, || async {
        let out = covenant_e2e::kubectl(&["get", "--raw", "/readyz"]);
        if out.success && out.stdout.trim() == "ok" {
            Ok(())
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    })
    .await
}

/// Applies one Account once the control plane is back. Right after the API server restarts, an
/// admission policy whose parameters are a custom kind (`covenant-account-policies` reads
/// SupportPackages) refuses every request with "failed to configure policy: failed to find resource
/// referenced by paramKind" until the API server has rediscovered the custom kinds: the API server's
/// own state (the policy fails closed), not the operator's. The apply is repeated while that is the
/// answer; any other refusal fails the test.
async fn apply_account_after_restart(t: &TestCtx, base: &str) -> String {
    use covenant_e2e::ctx::Manifest;
    let name = t.account(&format!("{base}0"));
    let yaml = account(&name, None, &[], &["owner@faults.example"], json!({})).manifest();
    eventually(
        "the API server admits an Account again (its policies found their parameter kind)",
        RECOVER_WITHIN,
        || async {
            match k8s::apply_yaml(&t.client, &yaml).await {
                Ok(_) => Ok(()),
                Err(e)
                    if format!("{e:#}")
                        .contains("failed to find resource referenced by paramKind") =>
                {
                    Err(format!("{e:#}"))
                }
                Err(e) => panic!("apply failed: {e:#}\n{yaml}"),
            }
        },
    )
    .await;
    name
}

async fn apply_accounts(t: &TestCtx, base: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = t.account(&format!("{base}{i}"));
        t.apply(&account(
            &name,
            None,
            &[],
            &["owner@faults.example"],
            json!({}),
        ))
        .await;
        names.push(name);
    }
    names
}

/// Ready=True for the current generation, waited for up to `timeout`.
async fn ready_within(client: &Client, name: &str, timeout: Duration) -> Account {
    let api: Api<Account> = Api::all(client.clone());
    wait_for(&api, name, "be Ready for its generation", timeout, |a| {
        a.status.as_ref().is_some_and(|s| {
            s.observed_generation == a.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await
}

/// Stops `component` for [`OUTAGE`] while accounts are being provisioned, starts it again, and checks
/// that the operator noticed (readiness), recovered by itself (same process), and converged.
async fn survive_outage(component: &str) {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new(&format!("{component} outage")).await;
    let c = cluster();
    let (pid, starts) = {
        let op = operator::handle();
        (op.pid(), op.starts())
    };
    readyz_until(
        "the operator is ready before the fault",
        RECOVER_WITHIN,
        |c| c == 200,
    )
    .await;

    let load = apply_accounts(&t, "load", LOAD).await;
    let stopped = Instant::now();
    c.stop_component(component);
    readyz_until(
        &format!("/readyz answers 503 while {component} is down"),
        NOTICE_WITHIN,
        |c| c == 503,
    )
    .await;
    // From the stop command (which waits up to 5 s for the process to end).
    let noticed = stopped.elapsed();
    let rest = OUTAGE.saturating_sub(stopped.elapsed());
    tokio::time::sleep(rest).await;
    // Still unready at the end of the outage, not just a blip.
    let code = operator::handle().readyz();
    assert_eq!(
        code,
        Ok(503),
        "/readyz after {:?} of {component} outage",
        stopped.elapsed()
    );
    c.start_component(component);
    let back = Instant::now();
    api_server_ready().await;
    let api_back = back.elapsed();
    // The controller-manager may give up while the API server is away; it is not under test.
    c.start_component("kube-controller-manager");
    readyz_until(
        &format!("/readyz answers 200 again after {component} is back"),
        RECOVER_WITHIN,
        |c| c == 200,
    )
    .await;
    let recovered = back.elapsed();
    {
        let mut op = operator::handle();
        op.assert_running();
        assert_eq!(
            (op.pid(), op.starts()),
            (pid, starts),
            "the operator must recover without a restart"
        );
    }
    // Every account applied before the fault converges, and one created after it too (its watch
    // works again).
    for name in &load {
        ready_within(&t.client, name, RECOVER_WITHIN).await;
    }
    let after = apply_account_after_restart(&t, "after").await;
    let took = Instant::now();
    ready_within(&t.client, &after, RECOVER_WITHIN).await;
    println!(
        "{component} down {OUTAGE:?}: operator /readyz 503 within {:.1}s of the stop; after the restart the API \
         server was ready in {:.1}s and the operator in {:.1}s; a new account Ready in {:.1}s",
        noticed.as_secs_f64(),
        api_back.as_secs_f64(),
        recovered.as_secs_f64(),
        took.elapsed().as_secs_f64()
    );
    let metrics = operator::metrics();
    assert_eq!(
        metric_sum(&metrics, "covenant_api_server_up"),
        1.0,
        "covenant_api_server_up after recovery"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_outage_is_ridden_out_without_a_restart() {
    survive_outage("kube-apiserver").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_outage_is_ridden_out_without_a_restart() {
    survive_outage("etcd").await;
}

/// Replaces the Account CRD's schema with one that accepts any spec (as a careless edit, or a newer
/// CRD version, might), stores an Account the operator cannot parse, and puts the real CRD back. The
/// operator reports that account (Warning event, metric) and skips it; other tenants are still
/// reconciled: a new one is provisioned and drift of an old one is repaired.
#[tokio::test(flavor = "multi_thread")]
async fn an_unparseable_stored_account_is_reported_and_skipped() {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new("unparseable account").await;
    let old = apply_accounts(&t, "old", 1).await.remove(0);
    wait_account_ready(&t.client, &old).await;

    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(t.client.clone());
    let mut loose = crds
        .get("accounts.covenant.dev")
        .await
        .expect("the Account CRD");
    for v in &mut loose.spec.versions {
        let schema = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("a structural schema");
        schema.x_kubernetes_validations = None;
        let props = schema.properties.as_mut().expect("properties");
        props.insert(
            "spec".into(),
            serde_json::from_value(json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            }))
            .expect("a schema"),
        );
    }
    crds.replace("accounts.covenant.dev", &PostParams::default(), &loose)
        .await
        .expect("replace the Account CRD with a loose schema");

    // Spec fields of the wrong types: the API server (loose schema) stores it; the operator cannot
    // read it.
    let bad = t.account("unparseable");
    let accounts: Api<Account> = Api::all(t.client.clone());
    let dynamic = Api::<kube::core::DynamicObject>::all_with(
        t.client.clone(),
        &kube::core::ApiResource::erase::<Account>(&()),
    );
    let bad_obj: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Account",
        "metadata": { "name": bad },
        "spec": { "namespaces": "not-a-list", "administrators": 42 }
    }))
    .expect("an object");
    eventually(
        "the loose schema accepts the bad account",
        Duration::from_secs(30),
        || async {
            dynamic
                .create(&PostParams::default(), &bad_obj)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
    // Who has written to an object (its managedFields' managers).
    let writers = |o: kube::core::DynamicObject| -> Vec<String> {
        o.metadata
            .managed_fields
            .into_iter()
            .flatten()
            .filter_map(|m| m.manager)
            .collect()
    };
    let created_by = writers(dynamic.get(&bad).await.expect("the bad account"));

    // The real CRD again: the stored object stays as it is (validation applies to writes).
    covenant_e2e::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=covenant-e2e-install",
        "-f",
        &covenant_e2e::repo_root().join("crds").to_string_lossy(),
    ])
    .expect_ok();

    // Reported: a Warning event on the account, naming what is wrong, and the metric.
    eventually(
        "a Warning InvalidObject event about the unparseable account",
        Duration::from_secs(30),
        || async {
            let ev = k8s::events_about(&bad);
            if ev.contains("InvalidObject") && ev.contains("does not parse") {
                Ok(())
            } else {
                Err(ev)
            }
        },
    )
    .await;
    eventually(
        "covenant_invalid_objects{kind=\"Account\"} is 1",
        Duration::from_secs(30),
        || async {
            let m = operator::metrics();
            let line = m
                .lines()
                .find(|l| l.starts_with("covenant_invalid_objects{kind=\"Account\"}"))
                .map(str::to_string);
            match line {
                Some(l) if l.ends_with(" 1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Skipped: the operator wrote nothing to it (its only writer is whoever created it: the API
    // server's finalizer policy acts inside that create), no status, no namespace.
    let stored = dynamic.get(&bad).await.expect("the bad account");
    assert_eq!(
        writers(stored.clone()),
        created_by,
        "nothing but its creation wrote to an account the operator cannot read"
    );
    assert!(stored.data.get("status").is_none(), "no status written");

    // Everyone else is still reconciled: a new account is provisioned, drift of an old one repaired.
    let new = apply_accounts(&t, "new", 1).await.remove(0);
    wait_account_ready(&t.client, &new).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), &old);
    quotas
        .delete("covenant-quota", &DeleteParams::default())
        .await
        .expect("delete the old account's quota");
    wait_for(
        &quotas,
        "covenant-quota",
        "be restored",
        Duration::from_secs(30),
        |q| !hard(q).is_empty(),
    )
    .await;

    // Fixing the object makes it a tenant like any other.
    accounts
        .patch(
            &bad,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "namespaces": null, "administrators": null } })),
        )
        .await
        .expect("fix the bad account");
    wait_account_ready(&t.client, &bad).await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .get(&bad)
        .await
        .expect("the fixed account's namespace");
}

/// A user edits an Account again and again while the operator reconciles it: the result is the last
/// declared state (quota and administrators), whatever the interleaving.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_edits_converge_to_the_last_declared_state() {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new("concurrent edits").await;
    let name = apply_accounts(&t, "edited", 1).await.remove(0);
    wait_account_ready(&t.client, &name).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let mut last = (String::new(), String::new());
    for i in 0..25 {
        let pods = format!("{}", 10 + i);
        let admin = format!("admin{i}@faults.example");
        accounts
            .patch(
                &name,
                &PatchParams::apply(covenant_e2e::k8s::FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "covenant.dev/v1alpha1",
                    "kind": "Account",
                    "metadata": { "name": name },
                    "spec": {
                        "administrators": [{ "kind": "User", "name": admin }],
                        "quota": { "pods": pods }
                    }
                })),
            )
            .await
            .expect("edit the account");
        last = (pods, admin);
        // Edits land between, during and after reconciles.
        tokio::time::sleep(Duration::from_millis(37 * (i % 4))).await;
    }
    wait_account_ready(&t.client, &name).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), &name);
    let (pods, admin) = last;
    wait_for(
        &quotas,
        "covenant-quota",
        "have the last declared pods",
        Duration::from_secs(30),
        |q| hard(q).get("pods") == Some(&pods),
    )
    .await;
    let rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), &name);
    wait_for(
        &rbs,
        "covenant-tenant-admin",
        "bind only the last declared administrator",
        Duration::from_secs(30),
        |rb| {
            let subjects: Vec<&str> = rb
                .subjects
                .iter()
                .flatten()
                .map(|s| s.name.as_str())
                .collect();
            subjects == [admin.as_str()]
        },
    )
    .await;
}

/// `covenant_leader` of an operator (`None` while it does not answer).
fn leads(op: &Operator) -> Option<bool> {
    op.metrics()
        .ok()
        .map(|m| metric_sum(&m, "covenant_leader") == 1.0)
}

/// Waits until `op` leads.
async fn until_leading(op: &Mutex<Operator>, who: &str, timeout: Duration) {
    eventually(&format!("{who} leads"), timeout, || {
        let l = leads(&op.lock().unwrap_or_else(|p| p.into_inner()));
        async move {
            if l == Some(true) {
                Ok(())
            } else {
                Err(format!("covenant_leader: {l:?}"))
            }
        }
    })
    .await
}

/// Two replicas with leader election. The leader freezes (SIGSTOP, as in a long pause or a stalled
/// node) while users edit accounts; the follower takes over once the lease expires and applies the
/// edits. Then the old leader wakes up with stale caches and reconciles still in flight: it must find
/// out that it lost the lease and exit, and whatever it wrote meanwhile must be put right, so that the
/// result is the last declared state.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_wakes_up_after_losing_its_lease_cannot_undo_the_new_leaders_work() {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new("leader race").await;
    let c = cluster();
    let kubeconfig = operator::handle().kubeconfig().to_path_buf();
    // The harness's operator does not elect a leader: it must not reconcile alongside the two.
    operator::kill();
    let _restart = RestartHarnessOperator;
    let lease = t.name("lease");
    let args = [
        "--leader-elect",
        "--lease-duration",
        "4",
        "--lease-name",
        lease.as_str(),
    ];
    let a = Mutex::new(
        Operator::custom(c, "race-a", &kubeconfig, &args, &[("POD_NAME", "race-a")])
            .expect("operator a"),
    );
    lock(&a).start_live();
    until_leading(&a, "a", Duration::from_secs(30)).await;
    let b = Mutex::new(
        Operator::custom(c, "race-b", &kubeconfig, &args, &[("POD_NAME", "race-b")])
            .expect("operator b"),
    );
    lock(&b).start_live();

    let names = apply_accounts(&t, "raced", 4).await;
    for n in &names {
        wait_account_ready(&t.client, n).await;
    }
    assert_eq!(leads(&lock(&b)), Some(false), "b follows while a leads");

    let accounts: Api<Account> = Api::all(t.client.clone());
    let set_pods = |pods: &'static str| {
        let accounts = accounts.clone();
        let names = names.clone();
        async move {
            for n in &names {
                accounts
                    .patch(
                        n,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "spec": { "quota": { "pods": pods } } })),
                    )
                    .await
                    .expect("edit an account");
            }
        }
    };
    lock(&a).signal("STOP");
    set_pods("41").await;
    let fresh = apply_accounts(&t, "during", 2).await;
    until_leading(&b, "b (after a's lease expired)", Duration::from_secs(30)).await;
    for n in names.iter().chain(&fresh) {
        wait_account_ready(&t.client, n).await;
    }
    // The last edits land just before the old leader wakes up with its stale view (pods 41 or older).
    set_pods("42").await;
    lock(&a).signal("CONT");
    eventually(
        "the old leader exits once it sees it lost the lease",
        Duration::from_secs(30),
        || {
            let status = lock(&a).exit_status();
            async move { status.map(drop).ok_or_else(|| "still running".to_string()) }
        },
    )
    .await;
    let log = lock(&a).log_tail(40);
    assert!(
        log.contains("lost the leader-election lease")
            || log.contains("leader-election task ended")
            || log.contains("was not renewed within the renew deadline"),
        "the old leader must say why it exits:\n{log}"
    );
    assert_eq!(leads(&lock(&b)), Some(true), "b still leads");

    for n in &names {
        let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), n);
        wait_for(
            &quotas,
            "covenant-quota",
            "hold the last declared pods (42)",
            Duration::from_secs(30),
            |q| hard(q).get("pods").map(String::as_str) == Some("42"),
        )
        .await;
        wait_account_ready(&t.client, n).await;
    }
    for n in &fresh {
        wait_account_ready(&t.client, n).await;
    }
}

fn lock(m: &Mutex<Operator>) -> std::sync::MutexGuard<'_, Operator> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the harness's operator again when the test ends (passed or not), for the tests after it.
struct RestartHarnessOperator;

impl Drop for RestartHarnessOperator {
    fn drop(&mut self) {
        let mut op = operator::handle();
        if !op.running() {
            op.start();
        }
    }
}
