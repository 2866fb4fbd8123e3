//! Suspensions end to end (§2.4), with the operator running: what a suspension does to a tenant
//! (read-only administrators, a freeze quota, a deny-all NetworkPolicy, workloads scaled to zero),
//! the notice of its cause (Events, the Account's `Suspended` condition, `status.noticeGivenAt`),
//! lifting (deleting the Suspension or `endAt` passing) restoring exactly what was there, also across
//! operator restarts, overlapping suspensions, `startAt`, and bad input.
//!
//! Every test makes its own package, account, namespaces and suspensions (random suffix) and deletes
//! them. The tests that kill and restart the operator take [`OPERATOR`] for writing, so they never run
//! while another test of this binary is waiting on the operator, and so does the test that other
//! tests' side effects would mask; every other test takes it for reading (they run in parallel with
//! each other).
//!
//! The notification webhook (`--notify-url`) needs an operator started with that flag: its test stops
//! the harness's operator, runs one of its own ([`Operator::custom`]) with the flag and the same
//! identity, and starts the harness's again afterwards, so two operators never act at once.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use covenant::api::{Account, AccountPhase, Suspension, SuspensionPhase};
use covenant_e2e::fixtures::{self, account, api_error, deployment, forbidden, hard, pod};
use covenant_e2e::operator::Operator;
use covenant_e2e::timing::{rfc3339, secs, until_plus_30s, watch_until};
use covenant_e2e::{
    TIMEOUT, Tenant, TestCtx, condition, eventually, impersonate, operator, wait_account,
    wait_account_ready, wait_for, wait_gone,
};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

/// Restart tests hold it for writing, every other test for reading.
static OPERATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const SUSPENSIONS: &str = "suspensions.covenant.dev";
/// On each workload: `<token>:<value>`, what it ran before the suspension.
const BEFORE_ANNOTATION: &str = "covenant.dev/before-suspension";
/// On the namespace: the token under which the workloads' records count (only Covenant writes it).
const TOKEN_ANNOTATION: &str = "covenant.dev/suspension-token";
const SCALED_MARKER: &str = "covenant.dev/workloads-scaled";
const FREEZE: &str = "covenant-freeze";
const DENY_ALL: &str = "covenant-suspension-deny-all";
const ADMIN_BINDING: &str = "covenant-tenant-admin";
const READONLY_BINDING: &str = "covenant-tenant-readonly";
/// The tenant's Deployment, and its replica count before any suspension.
const WEB: &str = "web";
const REPLICAS: i32 = 3;

/// A Ready tenant `base-<suffix>` with `namespaces` namespaces and the administrator
/// `alice-<suffix>`, on a package of its own with room for 10 pods, and the Deployment `web`
/// ([`REPLICAS`] replicas) in its first namespace.
async fn running_web(t: &TestCtx, base: &str, namespaces: usize) -> Tenant {
    let ten = t
        .tenant(base)
        .namespaces(namespaces)
        .admin(&t.name("alice"))
        .own_package(|p| {
            p.quota = Some(fixtures::resources(
                json!({ "pods": "10", "requests.cpu": "2", "configmaps": "20" }),
            ))
        })
        .await;
    let mut web = deployment(WEB);
    web.spec.replicas = Some(REPLICAS);
    Api::<Deployment>::namespaced(t.client.clone(), &ten.ns)
        .create(&PostParams::default(), &web)
        .await
        .expect("create the tenant's Deployment");
    ten
}

/// Applies a Suspension `base-<suffix>` (deleted after the test) and returns its name.
async fn suspend(
    t: &TestCtx,
    base: &str,
    account: &str,
    reason: &str,
    cause: &str,
    extra: Value,
) -> String {
    let name = t.name(base);
    t.track(SUSPENSIONS, &name);
    t.apply(&fixtures::suspension(&name, account, reason, cause, extra))
        .await;
    name
}

async fn delete_suspension(client: &Client, name: &str) {
    let api: Api<Suspension> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete Suspension {name}: {e}"));
    wait_gone(&api, name, false, TIMEOUT).await;
}

fn phase(s: &Suspension) -> Option<SuspensionPhase> {
    s.status.as_ref()?.phase
}

fn scond<'a>(s: &'a Suspension, type_: &str) -> Option<&'a Condition> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.replicas
}

/// The replica count of Deployment `name` in `ns` that a suspension recorded: the Deployment's own
/// annotation, counted only under the token on the namespace (which only Covenant writes).
async fn recorded(c: &Client, ns: &str, name: &str) -> Option<i32> {
    let n = Api::<Namespace>::all(c.clone()).get(ns).await.ok()?;
    let d = Api::<Deployment>::namespaced(c.clone(), ns)
        .get(name)
        .await
        .ok()?;
    record_of(&n, &d)?.parse().ok()
}

/// What `o`'s record says, when it counts: its token is the one on the namespace `n`.
fn record_of<K: kube::Resource>(n: &Namespace, o: &K) -> Option<String> {
    let token = n.annotations().get(TOKEN_ANNOTATION)?;
    let (t, value) = o.annotations().get(BEFORE_ANNOTATION)?.split_once(':')?;
    (t == token).then(|| value.to_string())
}

/// `now` plus `secs` seconds, at whole-second precision (rounded up).
fn in_secs(secs: i64) -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second() + 1 + secs).expect("a valid instant")
}

async fn wait_default_sa(client: &Client, ns: &str) {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for(&sa, "default", "be created", TIMEOUT, |_| true).await;
}

/// Events in `ns` about the object named `involved`, as core/v1 Events (the operator writes
/// events.k8s.io/v1 Events: `regarding` is `involvedObject`, `note` is `message`).
async fn events_about(client: &Client, ns: &str, involved: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={involved}")))
        .await
        .unwrap_or_else(|e| panic!("list events in {ns}: {e}"))
        .items
}

fn describe_events(evs: &[Event]) -> String {
    evs.iter()
        .map(|e| {
            format!(
                "{} {} {}/{}: {}",
                e.type_.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                e.involved_object.kind.as_deref().unwrap_or("?"),
                e.involved_object.name.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until a Warning Event with reason `Suspended` whose message contains `cause` regards the
/// Account (namespace `default`) and, in each tenant namespace, `resourcequota/covenant-freeze`.
async fn wait_notice_events(client: &Client, tenant: &Tenant, cause: &str) {
    let is_notice = |e: &Event, kind: &str| {
        e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("Suspended")
            && e.involved_object.kind.as_deref() == Some(kind)
            && e.message.as_deref().is_some_and(|m| m.contains(cause))
    };
    eventually(
        "a Warning Event `Suspended` with the cause regards the Account",
        TIMEOUT,
        || async {
            let evs = events_about(client, "default", &tenant.account).await;
            if evs.iter().any(|e| is_notice(e, "Account")) {
                Ok(())
            } else {
                Err(format!(
                    "events about Account {} in default:\n{}",
                    tenant.account,
                    describe_events(&evs)
                ))
            }
        },
    )
    .await;
    for ns in &tenant.namespaces {
        eventually(
            "a Warning Event `Suspended` with the cause is in each tenant namespace",
            TIMEOUT,
            || async {
                let evs = events_about(client, ns, FREEZE).await;
                if evs.iter().any(|e| is_notice(e, "ResourceQuota")) {
                    Ok(())
                } else {
                    Err(format!(
                        "events about {FREEZE} in {ns}:\n{}",
                        describe_events(&evs)
                    ))
                }
            },
        )
        .await;
    }
}

/// Waits until the account is suspended by `suspension` (`reason`, `cause`): the `Suspended`
/// condition, phase and Ready; in every namespace the read-only binding instead of the admin one, the
/// freeze quota and the deny-all policy; with `scaled`, the Deployment at zero with its count recorded
/// and the namespace marker.
async fn assert_suspended(
    t: &TestCtx,
    tenant: &Tenant,
    suspension: &str,
    reason: &str,
    cause: &str,
    scaled: bool,
) -> Account {
    let c = &t.client;
    let a = wait_account(c, &tenant.account, "Suspended", "True", Some(reason)).await;
    let cond = condition(&a, "Suspended").expect("a Suspended condition");
    assert!(
        cond.message.contains(cause) && cond.message.contains(suspension),
        "the Suspended condition must give the cause and name the suspension {suspension}: {cond:?}"
    );
    // A suspended account whose guardrails are in force is Ready (kstatus: a state, not a failure);
    // Suspended=True and the phase say the rest.
    let a = wait_account(c, &tenant.account, "Ready", "True", Some("Suspended")).await;
    let status = a.status.as_ref().expect("status");
    assert_eq!(
        status.phase,
        Some(AccountPhase::Suspended),
        "phase of a suspended account"
    );
    let access = condition(&a, "AccessGranted").expect("an AccessGranted condition");
    assert_eq!(
        (access.status.as_str(), access.reason.as_str()),
        ("False", "Suspended"),
        "{access:?}"
    );
    for ns in &tenant.namespaces {
        let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), ns);
        let ro = wait_for(&rbs, READONLY_BINDING, "exist", TIMEOUT, |_| true).await;
        assert_eq!(ro.role_ref.name, READONLY_BINDING, "{ns}: {ro:?}");
        assert!(
            ro.subjects.iter().flatten().any(|s| s.name == tenant.admin),
            "{ns}/{READONLY_BINDING} must bind the administrator: {ro:?}"
        );
        wait_gone(&rbs, ADMIN_BINDING, false, TIMEOUT).await;

        let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), ns);
        let freeze = wait_for(&quotas, FREEZE, "exist", TIMEOUT, |_| true).await;
        assert_eq!(
            hard(&freeze),
            fixtures::map(&[("pods", "0"), ("count/jobs.batch", "0")]),
            "{ns}/{FREEZE}"
        );

        let nps: Api<NetworkPolicy> = Api::namespaced(c.clone(), ns);
        let deny = wait_for(&nps, DENY_ALL, "exist", TIMEOUT, |_| true).await;
        let spec = deny.spec.as_ref().expect("a NetworkPolicy spec");
        assert_eq!(
            spec.pod_selector.clone().unwrap_or_default(),
            Default::default(),
            "{ns}/{DENY_ALL} must select every pod"
        );
        let mut types = spec.policy_types.clone().unwrap_or_default();
        types.sort();
        assert_eq!(
            types,
            vec!["Egress".to_string(), "Ingress".to_string()],
            "{ns}/{DENY_ALL}"
        );
        assert!(
            spec.ingress.as_ref().is_none_or(Vec::is_empty)
                && spec.egress.as_ref().is_none_or(Vec::is_empty),
            "{ns}/{DENY_ALL} must allow nothing: {spec:?}"
        );
    }
    if scaled {
        let deps: Api<Deployment> = Api::namespaced(c.clone(), tenant.ns.as_str());
        wait_for(&deps, WEB, "be scaled to 0", TIMEOUT, |d| {
            replicas(d) == Some(0)
        })
        .await;
        assert_eq!(
            recorded(c, tenant.ns.as_str(), WEB).await,
            Some(REPLICAS),
            "{}/{WEB} records its count in {BEFORE_ANNOTATION}",
            tenant.ns.as_str()
        );
        let n = Api::<Namespace>::all(c.clone())
            .get(tenant.ns.as_str())
            .await
            .unwrap();
        assert!(
            n.annotations().contains_key(SCALED_MARKER),
            "namespace {} must carry {SCALED_MARKER} while its workloads are scaled down: {:?}",
            tenant.ns.as_str(),
            n.annotations()
        );
    }
    a
}

/// Waits until everything a suspension changed is back: the admin binding (and no read-only one), no
/// freeze quota and no deny-all policy, the Deployment at exactly [`REPLICAS`] without the annotation,
/// and the account Ready and not Suspended (the namespace marker: [`assert_marker_removed`]).
async fn assert_lifted(t: &TestCtx, tenant: &Tenant) -> Account {
    let c = &t.client;
    wait_account(
        c,
        &tenant.account,
        "Suspended",
        "False",
        Some("NotSuspended"),
    )
    .await;
    let a = wait_account(c, &tenant.account, "Ready", "True", Some("Ready")).await;
    let s = condition(&a, "Suspended").expect("a Suspended condition");
    assert_eq!(
        (s.status.as_str(), s.reason.as_str()),
        ("False", "NotSuspended"),
        "{s:?}"
    );
    assert_eq!(
        a.status.as_ref().and_then(|s| s.phase),
        Some(AccountPhase::Active)
    );
    for ns in &tenant.namespaces {
        let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), ns);
        let rb = wait_for(&rbs, ADMIN_BINDING, "be back", TIMEOUT, |_| true).await;
        assert_eq!(rb.role_ref.name, ADMIN_BINDING);
        assert!(
            rb.subjects.iter().flatten().any(|s| s.name == tenant.admin),
            "{ns}/{ADMIN_BINDING} must bind the administrator again: {rb:?}"
        );
        wait_gone(&rbs, READONLY_BINDING, false, TIMEOUT).await;
        wait_gone(
            &Api::<ResourceQuota>::namespaced(c.clone(), ns),
            FREEZE,
            false,
            TIMEOUT,
        )
        .await;
        wait_gone(
            &Api::<NetworkPolicy>::namespaced(c.clone(), ns),
            DENY_ALL,
            false,
            TIMEOUT,
        )
        .await;
        // The tenant's usual objects are still (or again) there.
        Api::<ResourceQuota>::namespaced(c.clone(), ns)
            .get("covenant-quota")
            .await
            .unwrap_or_else(|e| panic!("{ns}/covenant-quota after lifting: {e}"));
        for np in ["covenant-isolation", "covenant-egress"] {
            Api::<NetworkPolicy>::namespaced(c.clone(), ns)
                .get(np)
                .await
                .unwrap_or_else(|e| panic!("{ns}/{np} after lifting: {e}"));
        }
    }
    let deps: Api<Deployment> = Api::namespaced(c.clone(), tenant.ns.as_str());
    wait_for(
        &deps,
        WEB,
        &format!("have replicas {REPLICAS} again"),
        TIMEOUT,
        |d| replicas(d) == Some(REPLICAS),
    )
    .await;
    eventually(
        &format!(
            "{}/{WEB} drops its record {BEFORE_ANNOTATION}",
            tenant.ns.as_str()
        ),
        TIMEOUT,
        || async {
            match recorded(c, tenant.ns.as_str(), WEB).await {
                None => Ok(()),
                Some(n) => Err(format!("still records {n}")),
            }
        },
    )
    .await;
    // Restored once: a second restore must not change the count (e.g. to the "1" of a missing record).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = deps.get(WEB).await.unwrap();
    assert_eq!(
        (replicas(&d), recorded(c, tenant.ns.as_str(), WEB).await),
        (Some(REPLICAS), None),
        "the Deployment after lifting"
    );
    a
}

/// Waits until the namespace marker that workloads may be scaled down is gone (it goes once everything
/// is restored). Checked last in each test, after everything else about the lift.
async fn assert_marker_removed(t: &TestCtx, tenant: &Tenant) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    wait_for(
        &nss,
        tenant.ns.as_str(),
        &format!("lose {SCALED_MARKER} after the lift"),
        TIMEOUT,
        |n| !n.annotations().contains_key(SCALED_MARKER),
    )
    .await;
}

/// What the (impersonated) administrator can do while suspended: read, not write. `Ok` when so.
async fn read_only(c: &Client, ns: &str, with_workloads: bool) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let mut failures = Vec::new();
    if let Err(e) = pods.list(&ListParams::default()).await {
        failures.push(format!("{ns}: list pods: {e}"));
    }
    if let Err(e) = deps.list(&ListParams::default()).await {
        failures.push(format!("{ns}: list deployments: {e}"));
    }
    if with_workloads {
        if let Err(e) = pods.get("keep").await {
            failures.push(format!("{ns}: get pod keep: {e}"));
        }
        if let Err(e) = deps.get(WEB).await {
            failures.push(format!("{ns}: get deployment {WEB}: {e}"));
        }
        // Dry runs: authorized exactly like real requests, and nothing changes if one is allowed.
        failures.extend(
            forbidden(
                &format!("{ns}: patch deployment {WEB}"),
                deps.patch(
                    WEB,
                    &PatchParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
                )
                .await,
            )
            .err(),
        );
    }
    let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "notes" } })).unwrap();
    failures.extend(
        forbidden(
            &format!("{ns}: create a ConfigMap"),
            cms.create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &cm,
            )
            .await,
        )
        .err(),
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

async fn create_config_map(c: &Client, ns: &str, name: &str) -> Result<(), String> {
    let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<ConfigMap>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .map(|_| ())
        .map_err(|e| format!("create ConfigMap {ns}/{name}: {e}"))
}

#[tokio::test]
async fn a_suspension_makes_the_tenant_read_only_frozen_isolated_and_scaled_down_and_lifting_restores_it()
 {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("suspend-lift").await;
    let ten = running_web(&t, "acme", 2).await;
    wait_default_sa(&t.client, ten.ns.as_str()).await;
    Api::<Pod>::namespaced(t.client.clone(), ten.ns.as_str())
        .create(&PostParams::default(), &pod("keep"))
        .await
        .expect("create a Pod to read later");
    let as_admin = impersonate(&ten.admin, &[]).await;
    eventually(
        "the administrator can create a ConfigMap before the suspension",
        TIMEOUT,
        || create_config_map(&as_admin, ten.ns.as_str(), "before"),
    )
    .await;

    let cause = format!(
        "Outbound bulk messaging exceeded the AUP's rate limits (ticket AUP-{})",
        t.suffix
    );
    let susp = suspend(
        &t,
        "aup",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    let a = assert_suspended(&t, &ten, &susp, "AcceptableUsePolicy", &cause, true).await;
    assert_eq!(
        condition(&a, "Suspended").unwrap().reason,
        "AcceptableUsePolicy",
        "the Suspended reason is the Suspension's reason"
    );

    assert_the_suspension_is_active_with_its_notice_given(&t, &susp).await;
    assert_the_suspended_tenant_reads_and_starts_nothing(&t, &ten, &as_admin, &cause).await;
    assert_the_lift_restores_writes_and_keeps_the_data(&t, &ten, &susp, &as_admin).await;
}

/// The Suspension's own record: Active, notice given, in force.
async fn assert_the_suspension_is_active_with_its_notice_given(t: &TestCtx, susp: &str) {
    // The Suspension's own record: Active, notice given.
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let s = wait_for(
        &susps,
        susp,
        "be Active with status.noticeGivenAt",
        TIMEOUT,
        |s| {
            phase(s) == Some(SuspensionPhase::Active)
                && s.status
                    .as_ref()
                    .is_some_and(|st| st.notice_given_at.is_some())
        },
    )
    .await;
    let given = scond(&s, "NoticeGiven").expect("a NoticeGiven condition");
    assert_eq!(
        (given.status.as_str(), given.reason.as_str()),
        ("True", "Given"),
        "{given:?}"
    );
    let ready = scond(&s, "Ready").expect("a Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "InForce"),
        "{ready:?}"
    );
}

/// The administrator reads but cannot write; no new pod starts, not even a cluster administrator's;
/// the tenant is told why.
async fn assert_the_suspended_tenant_reads_and_starts_nothing(
    t: &TestCtx,
    ten: &Tenant,
    as_admin: &Client,
    cause: &str,
) {
    // The administrator reads but cannot write (RBAC follows the binding swap within moments).
    for (i, ns) in ten.namespaces.iter().enumerate() {
        eventually(
            "the administrator has read-only access while suspended",
            TIMEOUT,
            || read_only(as_admin, ns, i == 0),
        )
        .await;
    }
    // No new pod starts, not even one created by a cluster administrator: the freeze quota refuses it.
    for ns in &ten.namespaces {
        wait_default_sa(&t.client, ns).await;
        let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ns);
        wait_for(
            &quotas,
            FREEZE,
            "have status.hard.pods=0 (admission enforces a quota from then on)",
            TIMEOUT,
            |q| fixtures::status_hard(q).get("pods").map(String::as_str) == Some("0"),
        )
        .await;
        let refused = api_error(
            "a new Pod in a suspended tenant",
            Api::<Pod>::namespaced(t.client.clone(), ns)
                .create(&PostParams::default(), &pod("late"))
                .await,
        );
        assert_eq!(refused.code, 403, "{refused:?}");
        assert!(
            refused.message.contains("exceeded quota") && refused.message.contains(FREEZE),
            "{ns}: a new Pod must be refused by {FREEZE}: {}",
            refused.message
        );
    }
    wait_notice_events(&t.client, ten, cause).await;
}

/// Lifted: the administrator writes again and the tenant's data survived.
async fn assert_the_lift_restores_writes_and_keeps_the_data(
    t: &TestCtx,
    ten: &Tenant,
    susp: &str,
    as_admin: &Client,
) {
    // Lift.
    delete_suspension(&t.client, susp).await;
    assert_lifted(t, ten).await;
    eventually(
        "the administrator can create a ConfigMap again after the lift",
        TIMEOUT,
        || create_config_map(as_admin, ten.ns.as_str(), "after"),
    )
    .await;
    // The tenant's data survived.
    Api::<ConfigMap>::namespaced(t.client.clone(), ten.ns.as_str())
        .get("before")
        .await
        .expect("the ConfigMap made before the suspension");
    Api::<Pod>::namespaced(t.client.clone(), ten.ns.as_str())
        .get("keep")
        .await
        .expect("the Pod made before the suspension");
    assert_marker_removed(t, ten).await;
}

#[tokio::test]
async fn a_suspension_survives_an_operator_restart_and_lifting_restores_exactly() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("restart-suspended").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "crash", 1).await;
    let cause = format!("Material breach: invoice {} unpaid", t.suffix);
    let susp = suspend(
        &t,
        "breach",
        &ten.account,
        "MaterialBreach",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    assert_suspended(&t, &ten, &susp, "MaterialBreach", &cause, true).await;

    operator::kill();
    operator::start();
    // The restarted operator keeps the suspension as it is: nothing scaled twice, nothing forgotten.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_suspended(&t, &ten, &susp, "MaterialBreach", &cause, true).await;

    delete_suspension(&t.client, &susp).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn a_suspension_created_while_the_operator_is_down_takes_effect_when_it_starts() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("restart-before-act").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "late", 1).await;
    let cause = format!("Court order {} requires suspension", t.suffix);

    // Killed before it could act on the new Suspension.
    operator::kill();
    let susp = suspend(
        &t,
        "court",
        &ten.account,
        "LegalCompliance",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = Api::<Deployment>::namespaced(t.client.clone(), ten.ns.as_str())
        .get(WEB)
        .await
        .unwrap();
    assert_eq!(
        replicas(&d),
        Some(REPLICAS),
        "nothing acts while the operator is down"
    );

    operator::start();
    assert_suspended(&t, &ten, &susp, "LegalCompliance", &cause, true).await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    wait_for(&susps, &susp, "record noticeGivenAt", TIMEOUT, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.notice_given_at.is_some())
    })
    .await;
    wait_notice_events(&t.client, &ten, &cause).await;

    delete_suspension(&t.client, &susp).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn a_suspension_deleted_while_the_operator_is_down_is_lifted_when_it_starts() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("restart-lift").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "down", 1).await;
    let cause = format!("AUP violation {}", t.suffix);
    let susp = suspend(
        &t,
        "aup",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    assert_suspended(&t, &ten, &susp, "AcceptableUsePolicy", &cause, true).await;

    operator::kill();
    delete_suspension(&t.client, &susp).await;
    operator::start();
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn overlapping_suspensions_keep_the_account_suspended_until_the_last_one_ends() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("overlap").await;
    let ten = running_web(&t, "both", 1).await;
    // Named so that `a` sorts first: the condition's reason is the first suspension in force.
    let cause_a = format!("AUP: spam campaign {}", t.suffix);
    let cause_b = format!("Material breach: contract {}", t.suffix);
    let a = suspend(
        &t,
        "a",
        &ten.account,
        "AcceptableUsePolicy",
        &cause_a,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    let b = suspend(
        &t,
        "b",
        &ten.account,
        "MaterialBreach",
        &cause_b,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    assert_suspended(&t, &ten, &a, "AcceptableUsePolicy", &cause_a, true).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    wait_for(
        &accounts,
        &ten.account,
        "name both suspensions in its Suspended condition",
        TIMEOUT,
        |acc| {
            condition(acc, "Suspended")
                .is_some_and(|c| c.message.contains(&cause_a) && c.message.contains(&cause_b))
        },
    )
    .await;

    // One ends: still suspended, by the other.
    delete_suspension(&t.client, &a).await;
    let acc = wait_for(
        &accounts,
        &ten.account,
        &format!("be suspended by {b} alone"),
        TIMEOUT,
        |acc| {
            condition(acc, "Suspended").is_some_and(|c| {
                c.status == "True" && c.message.contains(&b) && !c.message.contains(&a)
            })
        },
    )
    .await;
    assert_eq!(
        condition(&acc, "Suspended").unwrap().reason,
        "MaterialBreach",
        "the remaining suspension's reason"
    );
    // Give a wrong lift time to happen, then check that nothing was restored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_suspended(&t, &ten, &b, "MaterialBreach", &cause_b, true).await;

    // The last one ends: lifted.
    delete_suspension(&t.client, &b).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn each_of_two_overlapping_suspensions_gives_notice_of_its_own_cause() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("overlap-notice").await;
    let ten = running_web(&t, "twice", 1).await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let noticed = |s: &Suspension| {
        s.status
            .as_ref()
            .is_some_and(|st| st.notice_given_at.is_some())
    };
    let cause_a = format!("AUP: open relay {}", t.suffix);
    let a = suspend(
        &t,
        "a",
        &ten.account,
        "AcceptableUsePolicy",
        &cause_a,
        json!({}),
    )
    .await;
    wait_for(&susps, &a, "record noticeGivenAt", TIMEOUT, noticed).await;
    wait_notice_events(&t.client, &ten, &cause_a).await;
    // A second, different cause while the first is in force: the client must be told this one too.
    let cause_b = format!("Court order {} (second cause)", t.suffix);
    let b = suspend(
        &t,
        "b",
        &ten.account,
        "LegalCompliance",
        &cause_b,
        json!({}),
    )
    .await;
    wait_for(&susps, &b, "record noticeGivenAt", TIMEOUT, noticed).await;
    wait_notice_events(&t.client, &ten, &cause_b).await;
}

#[tokio::test]
async fn a_workload_scaled_up_while_suspended_is_scaled_back_down_and_later_restored_to_its_count()
{
    // Alone: other tests' package changes make the operator reconcile every account, which would
    // scale the workload back down by chance and hide a missing trigger.
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("scaled-up").await;
    let ten = running_web(&t, "sneaky", 1).await;
    let cause = format!("AUP: crypto mining {}", t.suffix);
    let susp = suspend(
        &t,
        "aup",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    assert_suspended(&t, &ten, &susp, "AcceptableUsePolicy", &cause, true).await;
    // Let the suspension settle: the scaled-down pods are gone and the quota controller has counted
    // that (its status writes also make the operator reconcile the account).
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), ten.ns.as_str());
    eventually("the scaled-down pods are gone", TIMEOUT, || async {
        let n = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} pods left"))
        }
    })
    .await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ten.ns.as_str());
    for q in ["covenant-quota", FREEZE] {
        wait_for(&quotas, q, "count 0 pods in use", TIMEOUT, |q| {
            q.status
                .as_ref()
                .and_then(|s| s.used.as_ref())
                .and_then(|u| u.get("pods"))
                .is_some_and(|p| p.0 == "0")
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Someone with write access (a cluster administrator) scales it up while suspended.
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), ten.ns.as_str());
    deps.patch(
        WEB,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
    )
    .await
    .unwrap();
    let scaled_up = Timestamp::now();
    let (_, seen) = watch_until(&deps, WEB, "be scaled back to 0", TIMEOUT, |d| {
        replicas(d) == Some(0)
    })
    .await;
    assert_eq!(
        recorded(&t.client, ten.ns.as_str(), WEB).await,
        Some(REPLICAS),
        "the count before the suspension is still the one recorded"
    );
    eprintln!(
        "[e2e] a Deployment scaled up while suspended was scaled back down {} later",
        secs(seen.duration_since(scaled_up))
    );
    delete_suspension(&t.client, &susp).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn a_suspension_is_lifted_by_itself_when_end_at_passes() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("end-at").await;
    let ten = running_web(&t, "ends", 1).await;
    let end = in_secs(10);
    let cause = format!("AUP: temporary block {}", t.suffix);
    let susp = suspend(
        &t,
        "temp",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({ "scaleWorkloads": true, "endAt": rfc3339(end) }),
    )
    .await;
    assert_suspended(&t, &ten, &susp, "AcceptableUsePolicy", &cause, true).await;
    assert!(
        Timestamp::now() < end,
        "the suspension took longer than its whole window to take effect (endAt {end})"
    );
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let s = susps.get(&susp).await.unwrap();
    let ready = scond(&s, "Ready").expect("a Ready condition");
    assert!(
        ready.message.contains(&rfc3339(end)),
        "the Suspension says until when: {ready:?}"
    );

    // Nobody touches anything from here on.
    let accounts: Api<Account> = Api::all(t.client.clone());
    let timeout = Duration::from_secs(30)
        + Duration::try_from(end.duration_since(Timestamp::now())).unwrap_or_default();
    let ((acc, account_seen), (s, lifted_seen)) = tokio::join!(
        watch_until(
            &accounts,
            &ten.account,
            "be Ready and not Suspended",
            timeout,
            |a| {
                a.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == a.metadata.generation)
                    && condition(a, "Ready").is_some_and(|c| c.status == "True")
                    && condition(a, "Suspended").is_some_and(|c| c.status == "False")
            }
        ),
        watch_until(&susps, &susp, "be Lifted", timeout, |s| {
            phase(s) == Some(SuspensionPhase::Lifted)
        }),
    );
    eprintln!(
        "[e2e] endAt {end}: the account was seen Ready {} after endAt, the Suspension Lifted {} after endAt",
        secs(account_seen.duration_since(end)),
        secs(lifted_seen.duration_since(end))
    );
    // Ready stays True across the suspension (guardrails in force); Suspended turns False at endAt.
    let suspended = condition(&acc, "Suspended").unwrap();
    assert!(
        suspended.last_transition_time.0 >= end,
        "the account was lifted before endAt {end}: {suspended:?}"
    );
    assert_eq!(
        s.status
            .as_ref()
            .and_then(|st| st.lifted_at.as_ref())
            .map(|t| t.0),
        Some(end),
        "status.liftedAt is endAt: {:?}",
        s.status
    );
    let ready = scond(&s, "Ready").expect("a Ready condition");
    assert_eq!(ready.reason, "Lifted", "{ready:?}");
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn a_suspension_with_start_at_is_pending_until_then() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("start-at").await;
    let ten = running_web(&t, "later", 1).await;
    let start = in_secs(10);
    let cause = format!("Scheduled maintenance breach {}", t.suffix);
    let susp = suspend(
        &t,
        "sched",
        &ten.account,
        "MaterialBreach",
        &cause,
        json!({ "startAt": rfc3339(start) }),
    )
    .await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let (s, seen) = watch_until(&susps, &susp, "be Pending", TIMEOUT, |s| {
        phase(s) == Some(SuspensionPhase::Pending)
    })
    .await;
    assert!(
        seen < start,
        "Pending was seen only at {seen}, after startAt {start}"
    );
    let ready = scond(&s, "Ready").expect("a Ready condition");
    assert_eq!(ready.reason, "Scheduled", "{ready:?}");
    let given = scond(&s, "NoticeGiven").expect("a NoticeGiven condition");
    assert_eq!(
        (given.status.as_str(), given.reason.as_str()),
        ("False", "NotInForce"),
        "{given:?}"
    );
    assert!(
        s.status.as_ref().unwrap().notice_given_at.is_none(),
        "no notice before the suspension is in force"
    );
    // Not in force yet: the account is untouched.
    let acc = Api::<Account>::all(t.client.clone())
        .get(&ten.account)
        .await
        .unwrap();
    let checked = Timestamp::now();
    assert!(
        checked < start,
        "the test was too slow to check the account before startAt"
    );
    assert!(
        condition(&acc, "Suspended").is_some_and(|c| c.status == "False")
            && condition(&acc, "Ready").is_some_and(|c| c.status == "True"),
        "a pending suspension must not suspend the account yet: {:?}",
        acc.status
    );

    let (s, active_seen) = watch_until(
        &susps,
        &susp,
        "be Active",
        Duration::from_secs(30)
            + Duration::try_from(start.duration_since(Timestamp::now())).unwrap_or_default(),
        |s| phase(s) == Some(SuspensionPhase::Active),
    )
    .await;
    eprintln!(
        "[e2e] startAt {start}: the Suspension was seen Active {} after startAt",
        secs(active_seen.duration_since(start))
    );
    assert!(
        active_seen >= start,
        "Active seen at {active_seen}, before startAt {start}"
    );
    let given_at = s
        .status
        .as_ref()
        .and_then(|st| st.notice_given_at.as_ref())
        .map(|t| t.0);
    assert!(
        given_at.is_some_and(|g| g >= start),
        "noticeGivenAt {given_at:?} must be set, at or after startAt {start}"
    );
    let a = assert_suspended(&t, &ten, &susp, "MaterialBreach", &cause, false).await;
    let c = condition(&a, "Suspended").unwrap();
    assert!(
        c.last_transition_time.0 >= start,
        "the account was suspended before startAt {start}: {c:?}"
    );
    delete_suspension(&t.client, &susp).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

#[tokio::test]
async fn a_suspension_of_an_unknown_account_is_invalid_and_changes_nothing() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("unknown-account").await;
    let sentinel = running_web(&t, "bystander", 1).await;
    // Tracked for cleanup: created later in this test.
    let ghost = t.account("ghost");
    let cause = format!("AUP violation {}", t.suffix);
    let susp = suspend(
        &t,
        "ghost",
        &ghost,
        "AcceptableUsePolicy",
        &cause,
        json!({}),
    )
    .await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let s = wait_for(
        &susps,
        &susp,
        "be Invalid with Ready=False reason AccountNotFound",
        TIMEOUT,
        |s| {
            phase(s) == Some(SuspensionPhase::Invalid)
                && scond(s, "Ready")
                    .is_some_and(|c| c.status == "False" && c.reason == "AccountNotFound")
        },
    )
    .await;
    let ready = scond(&s, "Ready").unwrap();
    assert!(
        ready.message.contains(&ghost),
        "the message names the account: {ready:?}"
    );
    assert!(
        s.status.as_ref().unwrap().notice_given_at.is_none(),
        "no notice for an invalid suspension"
    );

    // Nothing changed for any account.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = Api::<Account>::all(t.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let touched: Vec<String> = all
        .items
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.message.contains(&susp)))
        })
        .map(|a| a.name_any())
        .collect();
    assert!(
        touched.is_empty(),
        "accounts whose conditions mention the invalid suspension {susp}: {touched:?}"
    );
    let acc = wait_account_ready(&t.client, &sentinel.account).await;
    assert_eq!(
        condition(&acc, "Suspended").map(|c| c.status.as_str()),
        Some("False")
    );
    let d = Api::<Deployment>::namespaced(t.client.clone(), sentinel.ns.as_str())
        .get(WEB)
        .await
        .unwrap();
    assert_eq!(replicas(&d), Some(REPLICAS));

    // The account appears: the suspension takes effect.
    let pkg = t.name("bystander-pkg");
    t.apply(&account(
        &ghost,
        Some(&pkg),
        &[],
        &[&format!("alice-{}", t.suffix)],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    wait_for(
        &susps,
        &susp,
        "be Active once its account exists",
        TIMEOUT,
        |s| phase(s) == Some(SuspensionPhase::Active),
    )
    .await;
    wait_account(
        &t.client,
        &ghost,
        "Suspended",
        "True",
        Some("AcceptableUsePolicy"),
    )
    .await;
    delete_suspension(&t.client, &susp).await;
    wait_account_ready(&t.client, &ghost).await;
}

#[tokio::test]
async fn the_api_server_rejects_withheld_notice_without_legal_compliance_and_a_changed_account() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("susp-cel").await;
    let api: Api<Suspension> = Api::all(t.client.clone());
    for reason in ["MaterialBreach", "AcceptableUsePolicy"] {
        let name = t.name(&format!("withhold-{}", reason.to_lowercase()));
        t.track(SUSPENSIONS, &name);
        let mut s = fixtures::suspension(&name, &t.name("nobody"), reason, "a cause", json!({}));
        s.spec.withhold_notice = true;
        let err = api_error(
            &format!("withholdNotice with {reason}"),
            api.create(&PostParams::default(), &s).await,
        );
        assert_eq!(err.code, 422, "{err:?}");
        assert!(
            err.message
                .contains("withholdNotice is allowed only with reason LegalCompliance"),
            "{}",
            err.message
        );
        assert!(api.get_opt(&name).await.unwrap().is_none(), "{name} stored");
    }

    let name = suspend(
        &t,
        "moving",
        &t.name("nobody"),
        "MaterialBreach",
        "a cause",
        json!({}),
    )
    .await;
    let err = api_error(
        "changing spec.account",
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "account": t.name("somebody") } })),
        )
        .await,
    );
    assert_eq!(err.code, 422, "{err:?}");
    assert!(
        err.message.contains("account is immutable"),
        "{}",
        err.message
    );
    assert_eq!(api.get(&name).await.unwrap().spec.account, t.name("nobody"));
}

/// What of a withheld suspension shows in `text`: its name, its cause, its reason, or that notice was
/// withheld (which only a `LegalCompliance` suspension can be).
fn withheld_leaks(text: &str, name: &str, cause: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    [name, cause, "LegalCompliance", "withheld", "withhold"]
        .into_iter()
        .filter(|needle| lower.contains(&needle.to_lowercase()))
        .map(str::to_string)
        .collect()
}

/// Everything the tenant's administrator can read that a suspension could write to, read as the
/// administrator: its Account, the Events and Covenant's objects in its namespaces, and (where its
/// rights reach) the namespaces themselves and the Events in `default` (where those about the Account
/// are). What it may not read is listed as such, never silently skipped.
async fn tenant_view(admin: &Client, tenant: &Tenant) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    let mut unreadable = Vec::new();
    let mut record = |what: String, r: Result<Value, kube::Error>| match r {
        Ok(v) => seen.push(format!("{what}: {v}")),
        Err(kube::Error::Api(e)) if e.code == 403 => unreadable.push(what),
        Err(e) => panic!("{what}: {e}"),
    };
    let account = Api::<Account>::all(admin.clone())
        .get(&tenant.account)
        .await;
    record(
        format!("Account {}", tenant.account),
        account.map(|a| serde_json::to_value(a).unwrap()),
    );
    let ev = Api::<Event>::namespaced(admin.clone(), "default")
        .list(&ListParams::default())
        .await;
    record(
        "Events in default".into(),
        ev.map(|l| serde_json::to_value(l.items).unwrap()),
    );
    for ns in &tenant.namespaces {
        let n = Api::<Namespace>::all(admin.clone()).get(ns).await;
        record(
            format!("Namespace {ns}"),
            n.map(|n| json!({ "labels": n.labels(), "annotations": n.annotations() })),
        );
        let ev = Api::<Event>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await;
        record(
            format!("Events in {ns}"),
            ev.map(|l| serde_json::to_value(l.items).unwrap()),
        );
        let q = Api::<ResourceQuota>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await;
        record(
            format!("ResourceQuotas in {ns}"),
            q.map(|l| serde_json::to_value(l.items).unwrap()),
        );
        let np = Api::<NetworkPolicy>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await;
        record(
            format!("NetworkPolicies in {ns}"),
            np.map(|l| serde_json::to_value(l.items).unwrap()),
        );
        let rb = Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await;
        record(
            format!("RoleBindings in {ns}"),
            rb.map(|l| serde_json::to_value(l.items).unwrap()),
        );
    }
    (seen.join("\n"), unreadable)
}

/// A suspension whose notice is withheld (`LegalCompliance`, "to the extent legally permitted") tells
/// the tenant nothing of itself: read as the tenant's administrator — its Account (whose status says
/// it is suspended), the Events and Covenant's objects in its namespaces, whatever else its rights
/// reach — nothing names the Suspension, its reason or its cause, or says that notice was withheld;
/// not while it is in force, and not after `endAt` lifts it. The Suspension itself is not the
/// tenant's to read, and the Events about the Account (in `default`) say nothing of it either.
#[tokio::test]
async fn a_withheld_suspension_tells_the_tenant_nothing_of_itself() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("withheld").await;
    let ten = running_web(&t, "sealed", 2).await;
    let cause = format!("Sealed court order {} (do not disclose)", t.suffix);
    let end = in_secs(25);
    let susp = suspend(
        &t,
        "hooli-lawful-intercept-case-4471",
        &ten.account,
        "LegalCompliance",
        &cause,
        json!({ "withholdNotice": true, "endAt": rfc3339(end) }),
    )
    .await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    let s = wait_for(&susps, &susp, "be Active", TIMEOUT, |s| {
        phase(s) == Some(SuspensionPhase::Active)
    })
    .await;
    let st = s.status.as_ref().unwrap();
    assert!(
        st.notice_given_at.is_none(),
        "noticeGivenAt must be absent while withheld: {st:?}"
    );
    let given = scond(&s, "NoticeGiven").expect("a NoticeGiven condition");
    assert_eq!(
        (given.status.as_str(), given.reason.as_str()),
        ("False", "Withheld"),
        "{given:?}"
    );
    let a = wait_account(
        &t.client,
        &ten.account,
        "Suspended",
        "True",
        Some("Suspended"),
    )
    .await;
    assert_eq!(
        a.status.as_ref().and_then(|s| s.phase),
        Some(AccountPhase::Suspended),
        "the account is suspended all the same"
    );
    for ns in &ten.namespaces {
        Api::<NetworkPolicy>::namespaced(t.client.clone(), ns)
            .get(DENY_ALL)
            .await
            .unwrap_or_else(|e| panic!("{ns}/{DENY_ALL} while suspended: {e}"));
    }

    let admin = impersonate(&ten.admin, &[]).await;
    assert_the_tenant_reads_nothing_of_the_withheld_suspension(&t, &ten, &admin, &susp, &cause)
        .await;
    assert_its_end_lifts_it_naming_nothing(&t, &ten, &admin, &susp, &cause, end).await;
}

/// While the withheld suspension is in force, nothing the administrator can read names it: not the
/// Suspension, not its Account and namespaces, not the namespaces' metadata, not the Events about the
/// Account.
async fn assert_the_tenant_reads_nothing_of_the_withheld_suspension(
    t: &TestCtx,
    ten: &Tenant,
    admin: &Client,
    susp: &str,
    cause: &str,
) {
    let refused = Api::<Suspension>::all(admin.clone()).get(susp).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "the tenant cannot read the Suspension: {refused:?}"
    );
    // Events follow a status write: give them a moment to arrive before reading everything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (view, unreadable) = tenant_view(admin, ten).await;
    assert!(
        view.contains("\"phase\":\"Suspended\""),
        "the administrator reads its Account, which says it is suspended:\n{view}"
    );
    let leaked = withheld_leaks(&view, susp, cause);
    assert!(
        leaked.is_empty(),
        "while suspended, the administrator reads {leaked:?} (unreadable to it: {unreadable:?}):\n{view}"
    );
    eprintln!(
        "withheld: the administrator read {} lines, none about the suspension; unreadable to it: {unreadable:?}",
        view.lines().count()
    );
    // The namespaces' labels and annotations (whoever reads them) name nothing either.
    for ns in &ten.namespaces {
        let n = Api::<Namespace>::all(t.client.clone())
            .get(ns)
            .await
            .unwrap();
        let meta = json!({ "labels": n.labels(), "annotations": n.annotations() }).to_string();
        let leaked = withheld_leaks(&meta, susp, cause);
        assert!(
            leaked.is_empty(),
            "namespace {ns} carries {leaked:?}: {meta}"
        );
    }
    // The Events about the Account (a notice channel to the tenant, kept in `default`) name nothing.
    let about =
        serde_json::to_string(&events_about(&t.client, "default", &ten.account).await).unwrap();
    let leaked = withheld_leaks(&about, susp, cause);
    assert!(
        leaked.is_empty(),
        "Events about the Account carry {leaked:?}: {about}"
    );
}

/// endAt lifts it; the lift names nothing either.
async fn assert_its_end_lifts_it_naming_nothing(
    t: &TestCtx,
    ten: &Tenant,
    admin: &Client,
    susp: &str,
    cause: &str,
    end: Timestamp,
) {
    let susps: Api<Suspension> = Api::all(t.client.clone());
    // endAt lifts it; the lift names nothing either.
    wait_for(
        &susps,
        susp,
        "be Lifted at its endAt",
        until_plus_30s(end),
        |s| phase(s) == Some(SuspensionPhase::Lifted),
    )
    .await;
    assert_lifted(t, ten).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (view, unreadable) = tenant_view(admin, ten).await;
    let leaked = withheld_leaks(&view, susp, cause);
    assert!(
        leaked.is_empty(),
        "after the lift, the administrator reads {leaked:?} (unreadable to it: {unreadable:?}):\n{view}"
    );
    let about =
        serde_json::to_string(&events_about(&t.client, "default", &ten.account).await).unwrap();
    let leaked = withheld_leaks(&about, susp, cause);
    assert!(
        leaked.is_empty(),
        "Events about the Account carry {leaked:?}: {about}"
    );
    delete_suspension(&t.client, susp).await;
    assert_marker_removed(t, ten).await;
}

/// One HTTP request the webhook receiver got.
#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Value,
}

/// A tiny HTTP/1.1 server on a free loopback port that answers 200 to every request and sends each
/// request (body parsed as JSON) to the returned channel.
async fn webhook_receiver() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Received>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let (head, body_start) = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
                    }
                };
                let header = |name: &str| {
                    head.lines().skip(1).find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                };
                let len: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = &buf[body_start.min(buf.len())..(body_start + len).min(buf.len())];
                let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
                let received = Received {
                    method: request_line.next().unwrap_or("").to_string(),
                    path: request_line.next().unwrap_or("").to_string(),
                    content_type: header("content-type"),
                    body: serde_json::from_slice(body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(body).into_owned())
                    }),
                };
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = sock.shutdown().await;
                let _ = tx.send(received);
            });
        }
    });
    (addr, rx)
}

/// Waits for a request whose JSON body has `event` and `suspension`, first among those received
/// before (`backlog`), and returns it; the others stay in `backlog`.
async fn wait_request(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    backlog: &mut Vec<Received>,
    event: &str,
    suspension: &str,
    timeout: Duration,
) -> Received {
    let matches = |r: &Received| {
        r.body.get("event").and_then(Value::as_str) == Some(event)
            && r.body.get("suspension").and_then(Value::as_str) == Some(suspension)
    };
    if let Some(i) = backlog.iter().position(matches) {
        return backlog.remove(i);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) if matches(&r) => return r,
            Ok(Some(r)) => backlog.push(r),
            Ok(None) | Err(_) => panic!(
                "no {event} notification for Suspension {suspension} arrived within {timeout:?}; requests received:\n{backlog:#?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_webhook_gets_a_json_post_with_the_account_reason_and_cause() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("webhook").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "hooked", 1).await;
    let (addr, mut rx) = webhook_receiver().await;
    let url = format!("http://{addr}/hook");

    // Only one operator at a time: the harness's stops, one with --notify-url (same identity) runs.
    let c = covenant_e2e::cluster();
    let kubeconfig = c.log_dir.join(format!(
        "operator-{}-{}.kubeconfig",
        covenant_e2e::cluster::binary_name(),
        std::process::id()
    ));
    assert!(
        kubeconfig.is_file(),
        "the harness's operator kubeconfig {} is not where it used to be",
        kubeconfig.display()
    );
    operator::kill();
    let mut notifying = Operator::custom(c, "notify", &kubeconfig, &["--notify-url", &url], &[])
        .unwrap_or_else(|e| panic!("{e}"));
    notifying.start();

    let mut backlog = Vec::new();
    let end = in_secs(10);
    let cause = format!("Outbound spam from tenant {} (ticket AUP-77)", t.suffix);
    let a = suspend(
        &t,
        "aup",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({ "endAt": rfc3339(end) }),
    )
    .await;
    let r = wait_request(&mut rx, &mut backlog, "Suspended", &a, TIMEOUT).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hook"),
        "{r:?}"
    );
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "a JSON POST: {r:?}"
    );
    let b = &r.body;
    assert_eq!(b["account"], json!(ten.account), "{b}");
    assert_eq!(b["reason"], json!("AcceptableUsePolicy"), "{b}");
    assert_eq!(b["cause"], json!(cause), "{b}");
    assert_eq!(b["endAt"], json!(rfc3339(end)), "{b}");

    // A withheld notice: the webhook is told of the suspension, never of its cause.
    let sealed = format!("Sealed order {} (do not disclose)", t.suffix);
    let w = suspend(
        &t,
        "sealed",
        &ten.account,
        "LegalCompliance",
        &sealed,
        json!({ "withholdNotice": true }),
    )
    .await;
    let susps: Api<Suspension> = Api::all(t.client.clone());
    wait_for(&susps, &w, "be Active", TIMEOUT, |s| {
        phase(s) == Some(SuspensionPhase::Active)
    })
    .await;
    // Anything about it that arrives within a few seconds must not carry the cause.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(
            !r.body.to_string().contains(&sealed),
            "a withheld cause was sent to the webhook: {}",
            r.body
        );
        backlog.push(r);
    }

    // endAt passes: the lift is notified too.
    let r = wait_request(&mut rx, &mut backlog, "Lifted", &a, until_plus_30s(end)).await;
    assert_eq!(r.body["account"], json!(ten.account), "{}", r.body);
    delete_suspension(&t.client, &w).await;
    wait_account_ready(&t.client, &ten.account).await;

    notifying.kill();
    operator::start();
}

/// A CronJob that runs every minute, `suspend` as given; its pods are `restricted`-compliant.
fn cron_job(name: &str, suspend: bool) -> CronJob {
    let mut pod = fixtures::restricted_pod_spec();
    pod["restartPolicy"] = json!("Never");
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "schedule": "*/1 * * * *",
            "suspend": suspend,
            "jobTemplate": { "spec": { "template": { "spec": pod } } }
        }
    }))
    .expect("a valid CronJob")
}

fn suspended(c: &CronJob) -> Option<bool> {
    c.spec.suspend
}

/// The Jobs in `ns`, by name.
async fn job_names(c: &Client, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = Api::<Job>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list Jobs in {ns}: {e}"))
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// While an account is suspended (without `scaleWorkloads`: CronJobs are suspended always) no Job
/// is created in its namespaces, for longer than a CronJob period and across an operator restart, and
/// the freeze quota refuses a Job even from a cluster administrator; the lift gives each CronJob back
/// exactly the `suspend` it had (one suspended before stays suspended).
#[tokio::test]
async fn no_job_is_created_while_suspended_and_the_lift_restores_each_cronjobs_suspend_exactly() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("cronjobs").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "cron", 1).await;
    let ns = ten.ns.as_str().to_string();
    let cronjobs: Api<CronJob> = Api::namespaced(t.client.clone(), &ns);
    for (name, suspend) in [("tick", false), ("paused", true)] {
        cronjobs
            .create(&PostParams::default(), &cron_job(name, suspend))
            .await
            .unwrap_or_else(|e| panic!("create CronJob {name}: {e}"));
    }
    // The cronjob controller runs: "tick" makes a Job within a period.
    eventually(
        "CronJob tick makes a Job",
        Duration::from_secs(150),
        || async {
            let jobs = job_names(&t.client, &ns).await;
            if jobs.iter().any(|j| j.starts_with("tick-")) {
                Ok(())
            } else {
                Err(format!("{jobs:?}"))
            }
        },
    )
    .await;

    let cause = format!("Acceptable use: crypto mining {}", t.suffix);
    let susp = suspend(
        &t,
        "aup",
        &ten.account,
        "AcceptableUsePolicy",
        &cause,
        json!({}),
    )
    .await;
    assert_suspended(&t, &ten, &susp, "AcceptableUsePolicy", &cause, false).await;
    wait_for(&cronjobs, "tick", "be suspended", TIMEOUT, |c| {
        suspended(c) == Some(true)
    })
    .await;
    let before = job_names(&t.client, &ns).await;
    assert_the_freeze_quota_refuses_a_new_job(&t, &ns).await;
    assert_no_job_comes_across_a_restart(&t, &ns, &cronjobs, &before).await;

    delete_suspension(&t.client, &susp).await;
    wait_for(&cronjobs, "tick", "run again", TIMEOUT, |c| {
        suspended(c) == Some(false) && !c.annotations().contains_key(BEFORE_ANNOTATION)
    })
    .await;
    assert_lifted(&t, &ten).await;
    let paused = cronjobs.get("paused").await.unwrap();
    assert_eq!(
        suspended(&paused),
        Some(true),
        "a CronJob suspended before the suspension stays suspended"
    );
    let n = Api::<Namespace>::all(t.client.clone())
        .get(&ns)
        .await
        .unwrap();
    assert!(
        !n.annotations().contains_key(TOKEN_ANNOTATION),
        "the token goes with the lift: {:?}",
        n.annotations()
    );
}

/// The freeze quota refuses a Job even from a cluster administrator (whom the read-only policy lets
/// through): the API server's answer to a dry run.
async fn assert_the_freeze_quota_refuses_a_new_job(t: &TestCtx, ns: &str) {
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "by-hand" },
        "spec": { "template": serde_json::to_value(cron_job("x", false)).unwrap()["spec"]["jobTemplate"]["spec"]["template"] }
    }))
    .unwrap();
    // The freeze quota refuses a Job even from a cluster administrator (whom the read-only policy
    // lets through): the API server's answer to a dry run.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually("the freeze quota refuses a new Job", TIMEOUT, || async {
        match Api::<Job>::namespaced(t.client.clone(), ns)
            .create(&dry, &job)
            .await
        {
            Err(kube::Error::Api(e))
                if e.code == 403 && e.message.contains(FREEZE) && e.message.contains("jobs") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// A restart changes nothing, and no Job comes for longer than a period; without scaleWorkloads the
/// Deployment keeps running.
async fn assert_no_job_comes_across_a_restart(
    t: &TestCtx,
    ns: &str,
    cronjobs: &Api<CronJob>,
    before: &[String],
) {
    // A restart changes nothing, and no Job comes for longer than a period.
    operator::kill();
    operator::start();
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert_eq!(
        job_names(&t.client, ns).await,
        before,
        "no Job is created while suspended"
    );
    for (name, want) in [("tick", true), ("paused", true)] {
        assert_eq!(
            suspended(&cronjobs.get(name).await.unwrap()),
            Some(want),
            "{name}"
        );
    }
    // Without scaleWorkloads the Deployment keeps running.
    let d = Api::<Deployment>::namespaced(t.client.clone(), ns)
        .get(WEB)
        .await
        .unwrap();
    assert_eq!(replicas(&d), Some(REPLICAS));
}

/// Many workloads with long names: the record an earlier version kept in one namespace annotation
/// would pass the API server's 256 KiB limit, and then nothing was scaled. Each workload holds its own
/// record now: all are scaled to zero, stay so across an operator restart, and the lift gives each one
/// exactly its count back. The Deployments are paused (they make no ReplicaSet and no pod, so the
/// test measures the records, not the control plane's pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_workloads_with_long_names_are_each_scaled_down_and_restored_exactly() {
    const N: usize = 1040;
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("many").await;
    let _ensure = operator::EnsureRunning;
    let ten = running_web(&t, "many", 1).await;
    let ns = ten.ns.as_str().to_string();
    // 240 characters: a ReplicaSet's name (the Deployment's, a dash and a 10-character hash) must
    // still be a valid name.
    let names: Vec<String> = (0..N)
        .map(|i| format!("{i:04}-{}", "w".repeat(235)))
        .collect();
    let old_record: std::collections::BTreeMap<String, i32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("Deployment/{n}"), many_replicas(i)))
        .collect();
    let old_size = serde_json::to_string(&old_record).unwrap().len();
    assert!(
        old_size > 256 * 1024,
        "the old record would be {old_size} bytes: the test must pass the 256 KiB limit"
    );
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
    create_many_paused_deployments(&deps, &names).await;

    let cause = format!("Material breach {}", t.suffix);
    let susp = suspend(
        &t,
        "breach",
        &ten.account,
        "MaterialBreach",
        &cause,
        json!({ "scaleWorkloads": true }),
    )
    .await;
    let suspended_ok = |_: usize, d: &Deployment| {
        replicas(d) == Some(0) && d.annotations().contains_key(BEFORE_ANNOTATION)
    };
    wait_every_deployment(&deps, &names, "scaled to 0", &suspended_ok).await;
    // Each record holds that workload's own count, under the namespace's token.
    let n = Api::<Namespace>::all(t.client.clone())
        .get(&ns)
        .await
        .unwrap();
    let got = deployments_by_name(&deps).await.unwrap();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            record_of(&n, &got[name]).as_deref(),
            Some(many_replicas(i).to_string().as_str()),
            "{name}"
        );
    }

    operator::kill();
    operator::start();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = deployments_by_name(&deps).await.unwrap();
    assert_eq!(
        unmatched(&names, &got, &suspended_ok),
        0,
        "still scaled down after a restart"
    );

    delete_suspension(&t.client, &susp).await;
    let restored = |i: usize, d: &Deployment| {
        replicas(d) == Some(many_replicas(i)) && !d.annotations().contains_key(BEFORE_ANNOTATION)
    };
    wait_every_deployment(&deps, &names, "restored", &restored).await;
    assert_lifted(&t, &ten).await;
    assert_marker_removed(&t, &ten).await;
}

/// The replicas of the i-th of the many Deployments.
fn many_replicas(i: usize) -> i32 {
    i32::try_from(1 + i % 5).unwrap()
}

/// Creates a paused Deployment of [`many_replicas`] for each name (8 at a time).
async fn create_many_paused_deployments(deps: &Api<Deployment>, names: &[String]) {
    use futures::StreamExt;
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(8, |(i, name)| {
            let deps = deps.clone();
            async move {
                // A label value holds at most 63 characters: the selector is by index.
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": { "name": name },
                    "spec": {
                        "replicas": many_replicas(i),
                        "paused": true,
                        "selector": { "matchLabels": { "app": format!("w{i}") } },
                        "template": {
                            "metadata": { "labels": { "app": format!("w{i}") } },
                            "spec": fixtures::restricted_pod_spec()
                        }
                    }
                }))
                .unwrap();
                deps.create(&PostParams::default(), &d)
                    .await
                    .unwrap_or_else(|e| panic!("create Deployment {name}: {e}"));
            }
        })
        .await;
}

/// The Deployments of `deps`' namespace by name.
async fn deployments_by_name(
    deps: &Api<Deployment>,
) -> Result<std::collections::BTreeMap<String, Deployment>, String> {
    let list = deps
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.items.into_iter().map(|d| (d.name_any(), d)).collect())
}

/// How many of `names` (the i-th with index i) are missing from `got` or fail `f`.
fn unmatched(
    names: &[String],
    got: &std::collections::BTreeMap<String, Deployment>,
    f: &dyn Fn(usize, &Deployment) -> bool,
) -> usize {
    names
        .iter()
        .enumerate()
        .filter(|(i, n)| !got.get(*n).is_some_and(|d| f(*i, d)))
        .count()
}

/// Waits (up to 5 minutes) until every one of `names` satisfies `f` (`what` it then is), and says
/// how long that took.
async fn wait_every_deployment(
    deps: &Api<Deployment>,
    names: &[String],
    what: &str,
    f: &dyn Fn(usize, &Deployment) -> bool,
) {
    let started = Instant::now();
    eventually(
        &format!("every Deployment is {what}"),
        Duration::from_secs(300),
        || async {
            let got = deployments_by_name(deps).await?;
            match unmatched(names, &got, f) {
                0 => Ok(()),
                n => Err(format!("{n} not yet")),
            }
        },
    )
    .await;
    eprintln!(
        "[e2e] {} Deployments {what} in {:.1}s",
        names.len(),
        started.elapsed().as_secs_f64()
    );
}
