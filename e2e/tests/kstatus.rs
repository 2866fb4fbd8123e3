//! Readiness as GitOps tools read it: Flux's own kstatus library (cli-utils' `status.Compute`, through
//! `covenant_e2e::kstatus`) on live objects that the running operator has reconciled, in each state of
//! each kind. kstatus says `Current` (settled and healthy), `InProgress` (still converging), `Failed`
//! (`Stalled=True`: only a person can fix it) or `Terminating` (being deleted).
//!
//! Each test first waits until the operator has written the status for the object's generation, then
//! asks kstatus once: what it answers is what Flux would conclude about that object.

use covenant::api::{
    Account, AccountPhase, DeprecationNotice, LimitsSpec, SupportPackage, Suspension,
};
use covenant_e2e::fixtures::{self, default_quota};
use covenant_e2e::kstatus::{self, KStatus};
use covenant_e2e::{
    TIMEOUT, TenantBuilder, TestCtx, condition, eventually, wait_account, wait_account_ready,
    wait_for, wait_gone,
};
use k8s_openapi::api::core::v1::{LimitRange, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const SUSPENSIONS: &str = "suspensions.covenant.dev";
const NOTICES: &str = "deprecationnotices.covenant.dev";
/// A finalizer the test holds on an Account, so that it stays visible while it is being deleted after
/// Covenant's own finalizer has done its work.
const HOLD: &str = "e2e.covenant.dev/hold";

/// kstatus of the live object `name`.
async fn verdict<K>(api: &Api<K>, name: &str) -> KStatus
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    kstatus::of(api, name)
        .await
        .unwrap_or_else(|e| panic!("kstatus of {name}: {e:#}"))
}

#[track_caller]
fn assert_kstatus(s: &KStatus, status: &str) {
    assert_eq!(s.status, status, "kstatus of {} {}: {s:?}", s.kind, s.name);
}

fn phase(a: &Account) -> Option<AccountPhase> {
    a.status.as_ref()?.phase
}

/// A package of the shared fixtures (default cpu 200m, defaultRequest 100m, max 1), deleted after the
/// test, once the operator has judged it.
async fn package(t: &TestCtx, base: &str) -> String {
    let name = t.package(base);
    t.apply(&fixtures::package(&name, default_quota())).await;
    wait_package(&t.client, &name, "True").await;
    name
}

/// Waits until the package's `Ready` has `status` for its generation.
async fn wait_package(client: &Client, name: &str, status: &str) -> SupportPackage {
    let api: Api<SupportPackage> = Api::all(client.clone());
    wait_for(
        &api,
        name,
        &format!("have Ready={status} for its generation"),
        TIMEOUT,
        |p| {
            p.status.as_ref().is_some_and(|s| {
                s.observed_generation == p.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == status)
            })
        },
    )
    .await
}

/// An Account `base-<suffix>` on `package` administered by `admin@<account>.example`, applied
/// without waiting (what it becomes is what these tests judge); its namespace has its name.
fn on_package<'a>(t: &'a TestCtx, base: &str, package: &str) -> TenantBuilder<'a> {
    t.tenant(base)
        .package(package)
        .admin(&format!("admin@{}.example", t.name(base)))
        .retain()
        .unready()
}

/// Waits until the account says `Stalled=True` with `reason` for its generation.
async fn wait_stalled(client: &Client, name: &str, reason: &str) -> Account {
    wait_account(client, name, "Stalled", "True", Some(reason)).await
}

/// The names of Covenant's NetworkPolicies and RoleBindings in `ns`.
async fn policies_and_bindings(client: &Client, ns: &str) -> (Vec<String>, Vec<String>) {
    let lp = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=covenant");
    let mut nps: Vec<String> = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .expect("list NetworkPolicies")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let mut rbs: Vec<String> = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .expect("list RoleBindings")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    nps.sort();
    rbs.sort();
    (nps, rbs)
}

/// Waits until the account's isolation, egress and narrowed-pods policies and the administrators'
/// binding are in its namespace `ns`.
async fn wait_isolated_and_bound(client: &Client, ns: &str) {
    eventually(
        "the account's NetworkPolicies and RoleBinding are applied",
        TIMEOUT,
        || async {
            let (nps, rbs) = policies_and_bindings(client, ns).await;
            let want_np = ["covenant-egress", "covenant-isolation", "covenant-narrowed"];
            if nps != want_np || !rbs.iter().any(|r| r == "covenant-tenant-admin") {
                return Err(format!("NetworkPolicies {nps:?}, RoleBindings {rbs:?}"));
            }
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn a_ready_account_and_a_valid_package_are_current() {
    let t = TestCtx::new("kstatus-ready").await;
    let pkg = package(&t, "ks-pkg").await;
    let name = on_package(&t, "ks-ready", &pkg).await.account;
    let a = wait_account_ready(&t.client, &name).await;
    assert_eq!(phase(&a), Some(AccountPhase::Active));
    assert_kstatus(
        &verdict(&Api::<Account>::all(t.client.clone()), &name).await,
        "Current",
    );
    assert_kstatus(
        &verdict(&Api::<SupportPackage>::all(t.client.clone()), &pkg).await,
        "Current",
    );
}

#[tokio::test]
async fn an_account_whose_package_does_not_exist_is_failed_not_in_progress() {
    let t = TestCtx::new("kstatus-no-package").await;
    let missing = t.name("no-such-package");
    let name = on_package(&t, "ks-orphan", &missing).await.account;
    let a = wait_stalled(&t.client, &name, "PackageUnresolved").await;
    assert_eq!(phase(&a), Some(AccountPhase::Degraded));
    let s = verdict(&Api::<Account>::all(t.client.clone()), &name).await;
    assert_kstatus(&s, "Failed");
    // kstatus passes on Stalled's message, which says what to do.
    assert!(
        s.message
            .contains(&format!("SupportPackage {missing:?} does not exist")),
        "{s:?}"
    );
}

/// `limits.max.gpu` is a name a LimitRange refuses ("must be a standard resource type"), which no
/// CRD rule can know: the API server refuses the LimitRange, and the account must say so rather than
/// look healthy, with everything else still applied.
#[tokio::test]
async fn an_account_whose_limit_range_the_api_server_refuses_is_failed_never_current() {
    let t = TestCtx::new("kstatus-refused").await;
    let pkg = package(&t, "ks-pkg").await;
    let name = on_package(&t, "ks-refused", &pkg)
        .spec(|s| {
            s.limits = Some(LimitsSpec {
                max: Some(fixtures::resources(json!({ "gpu": "1" }))),
                ..Default::default()
            })
        })
        .await
        .account;
    let a = wait_stalled(&t.client, &name, "ApplyFailed").await;
    let stalled = condition(&a, "Stalled").expect("Stalled");
    assert!(
        stalled.message.contains("LimitRange") && stalled.message.contains("gpu"),
        "Stalled names the refused object and the API server's words: {stalled:?}"
    );
    assert_eq!(phase(&a), Some(AccountPhase::Degraded));
    assert_kstatus(
        &verdict(&Api::<Account>::all(t.client.clone()), &name).await,
        "Failed",
    );
    // One refused object stops nothing else.
    wait_isolated_and_bound(&t.client, &name).await;
    let lr = Api::<LimitRange>::namespaced(t.client.clone(), &name)
        .get_opt("covenant-limits")
        .await
        .expect("read LimitRange");
    assert!(
        lr.is_none(),
        "the refused LimitRange does not exist: {lr:?}"
    );
}

/// An override that breaks `defaultRequest ≤ default ≤ max` once merged with the package's: the
/// operator names the field instead of sending a LimitRange the API server would refuse, keeps the
/// LimitRange that was in force, and applies everything else. Fixing the override makes it Current.
#[tokio::test]
async fn an_account_whose_limit_override_is_below_the_packages_default_is_failed_with_the_field_named()
 {
    let t = TestCtx::new("kstatus-limits").await;
    let pkg = package(&t, "ks-pkg").await;
    let name = on_package(&t, "ks-limits", &pkg).await.account;
    wait_account_ready(&t.client, &name).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let override_max = |cpu: &str| {
        json!({ "apiVersion": "covenant.dev/v1alpha1", "kind": "Account",
                "spec": { "limits": { "max": { "cpu": cpu } } } })
    };
    accounts
        .patch(
            &name,
            &PatchParams::apply("kstatus-e2e").force(),
            &Patch::Apply(override_max("150m")),
        )
        .await
        .expect("override limits.max.cpu");
    let a = wait_stalled(&t.client, &name, "InvalidLimits").await;
    let ready = condition(&a, "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains("spec.limits.max.cpu 150m is below the package's default 200m"),
        "{ready:?}"
    );
    let quota = condition(&a, "QuotaApplied").expect("QuotaApplied");
    assert_eq!(
        (quota.status.as_str(), quota.reason.as_str()),
        ("False", "InvalidLimits")
    );
    assert_kstatus(&verdict(&accounts, &name).await, "Failed");
    // The LimitRange in force stays the package's, and the rest is still in place.
    let lr = Api::<LimitRange>::namespaced(t.client.clone(), &name)
        .get("covenant-limits")
        .await
        .expect("the LimitRange in force stays");
    let max = lr.spec.as_ref().expect("spec").limits[0]
        .max
        .clone()
        .unwrap_or_default();
    assert_eq!(max.get("cpu").map(|q| q.0.as_str()), Some("1"));
    wait_isolated_and_bound(&t.client, &name).await;

    accounts
        .patch(
            &name,
            &PatchParams::apply("kstatus-e2e").force(),
            &Patch::Apply(override_max("500m")),
        )
        .await
        .expect("fix limits.max.cpu");
    wait_account_ready(&t.client, &name).await;
    assert_kstatus(&verdict(&accounts, &name).await, "Current");
}

/// Suspended is a state, not a failure: the account is Current with `Suspended=True`, and so is the
/// Suspension in force; lifted, both stay Current. A Suspension of an account that does not exist is
/// Failed (only a person can fix it), and one whose window has passed is Current as Lifted.
#[tokio::test]
async fn suspensions_in_force_lifted_and_invalid_and_a_suspended_account() {
    let t = TestCtx::new("kstatus-suspended").await;
    let pkg = package(&t, "ks-pkg").await;
    let name = on_package(&t, "ks-susp", &pkg).await.account;
    wait_account_ready(&t.client, &name).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let suspensions: Api<Suspension> = Api::all(t.client.clone());
    let suspension = |n: &str, account: &str, extra: Value| {
        let mut spec = json!({ "account": account, "reason": "MaterialBreach",
                               "cause": "Invoices unpaid for 90 days" });
        if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
            s.extend(e);
        }
        json!({ "apiVersion": "covenant.dev/v1alpha1", "kind": "Suspension",
                "metadata": { "name": n }, "spec": spec })
        .to_string()
    };
    let phase_of = |s: &Suspension| s.status.as_ref().and_then(|s| s.phase);
    let observed = |s: &Suspension| {
        s.status
            .as_ref()
            .is_some_and(|st| st.observed_generation == s.metadata.generation)
    };

    // In force.
    let in_force = t.name("ks-in-force");
    t.track(SUSPENSIONS, &in_force);
    t.apply(&suspension(&in_force, &name, json!({}))).await;
    wait_account(&t.client, &name, "Suspended", "True", None).await;
    let a = wait_for(&accounts, &name, "be Suspended and Ready", TIMEOUT, |a| {
        phase(a) == Some(AccountPhase::Suspended) && a_ready(a)
    })
    .await;
    assert_eq!(phase(&a), Some(AccountPhase::Suspended));
    assert_kstatus(&verdict(&accounts, &name).await, "Current");
    wait_for(&suspensions, &in_force, "be Active", TIMEOUT, |s| {
        observed(s) && phase_of(s) == Some(covenant::api::SuspensionPhase::Active)
    })
    .await;
    assert_kstatus(&verdict(&suspensions, &in_force).await, "Current");

    // Lifted by its end passing (a window entirely in the past).
    let ended = t.name("ks-ended");
    t.track(SUSPENSIONS, &ended);
    t.apply(&suspension(
        &ended,
        &name,
        json!({ "startAt": "2026-01-01T00:00:00Z", "endAt": "2026-01-02T00:00:00Z" }),
    ))
    .await;
    wait_for(&suspensions, &ended, "be Lifted", TIMEOUT, |s| {
        observed(s) && phase_of(s) == Some(covenant::api::SuspensionPhase::Lifted)
    })
    .await;
    assert_kstatus(&verdict(&suspensions, &ended).await, "Current");

    // Invalid: its account does not exist.
    let invalid = t.name("ks-invalid");
    t.track(SUSPENSIONS, &invalid);
    t.apply(&suspension(&invalid, &t.name("no-such-account"), json!({})))
        .await;
    wait_for(&suspensions, &invalid, "be Invalid", TIMEOUT, |s| {
        observed(s) && phase_of(s) == Some(covenant::api::SuspensionPhase::Invalid)
    })
    .await;
    let s = verdict(&suspensions, &invalid).await;
    assert_kstatus(&s, "Failed");
    assert!(s.message.contains("does not exist"), "{s:?}");

    // Lifted by deleting the one in force: the account is Active and Current again.
    suspensions
        .delete(&in_force, &DeleteParams::default())
        .await
        .expect("delete the Suspension");
    wait_gone(&suspensions, &in_force, false, TIMEOUT).await;
    wait_account(&t.client, &name, "Suspended", "False", None).await;
    let a = wait_for(&accounts, &name, "be Active", TIMEOUT, |a| {
        phase(a) == Some(AccountPhase::Active)
    })
    .await;
    assert!(a_ready(&a));
    assert_kstatus(&verdict(&accounts, &name).await, "Current");
}

fn a_ready(a: &Account) -> bool {
    a.status
        .as_ref()
        .is_some_and(|s| s.observed_generation == a.metadata.generation)
        && condition(a, "Ready").is_some_and(|c| c.status == "True")
}

/// While an Account is deleted, kstatus says Terminating, and the status says so too (phase
/// `Terminating`) while Covenant's finalizer releases its namespaces (here `Retain`: they stay,
/// labelled with the instant they go). The test holds a finalizer of its own to look at it after
/// Covenant's is done.
#[tokio::test]
async fn an_account_being_deleted_is_terminating_and_its_namespace_retained() {
    let t = TestCtx::new("kstatus-deleting").await;
    let pkg = package(&t, "ks-pkg").await;
    let name = on_package(&t, "ks-del", &pkg).await.account;
    wait_account_ready(&t.client, &name).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    { "op": "add", "path": "/metadata/finalizers/-", "value": HOLD }
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect("hold a finalizer");
    accounts
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the Account");
    let a = wait_for(
        &accounts,
        &name,
        "be Terminating with only the test's finalizer left",
        TIMEOUT,
        |a| phase(a) == Some(AccountPhase::Terminating) && a.finalizers() == [HOLD.to_string()],
    )
    .await;
    assert!(a.metadata.deletion_timestamp.is_some());
    assert_kstatus(&verdict(&accounts, &name).await, "Terminating");
    let ns = Api::<Namespace>::all(t.client.clone())
        .get(&name)
        .await
        .expect("the namespace is retained");
    assert!(
        ns.labels().contains_key("covenant.dev/retained-until"),
        "{:?}",
        ns.labels()
    );
    // Let it go.
    let a = accounts.get(&name).await.expect("read the Account");
    let at = a
        .finalizers()
        .iter()
        .position(|f| f == HOLD)
        .expect("the test's finalizer");
    accounts
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    { "op": "test", "path": format!("/metadata/finalizers/{at}"), "value": HOLD },
                    { "op": "remove", "path": format!("/metadata/finalizers/{at}") }
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect("release the test's finalizer");
    wait_gone(&accounts, &name, false, TIMEOUT).await;
    assert_kstatus(&verdict(&accounts, &name).await, "NotFound");
}

/// A package whose own limits do not fit in a LimitRange is Failed with the field named (every
/// account on it would be refused its LimitRange); fixed, it is Current.
#[tokio::test]
async fn a_package_whose_limits_do_not_fit_is_failed_and_current_once_fixed() {
    let t = TestCtx::new("kstatus-package").await;
    let name = t.package("ks-lopsided");
    let manifest = |default_memory: &str| {
        json!({ "apiVersion": "covenant.dev/v1alpha1", "kind": "SupportPackage",
                "metadata": { "name": name },
                "spec": { "limits": { "default": { "memory": default_memory },
                                      "max": { "memory": "1Gi" } } } })
        .to_string()
    };
    t.apply(&manifest("2Gi")).await;
    let p = wait_package(&t.client, &name, "False").await;
    let stalled = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled"))
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidLimits")
    );
    let packages: Api<SupportPackage> = Api::all(t.client.clone());
    let s = verdict(&packages, &name).await;
    assert_kstatus(&s, "Failed");
    assert!(
        s.message
            .contains("spec.limits.default.memory 2Gi is above spec.limits.max.memory 1Gi"),
        "{s:?}"
    );
    t.apply(&manifest("512Mi")).await;
    wait_package(&t.client, &name, "True").await;
    assert_kstatus(&verdict(&packages, &name).await, "Current");
}

/// Notices are settled objects whether their effective instant is still ahead or already passed:
/// Current once Covenant has observed their generation. Each selects only accounts labelled for this
/// test (none), so no other tenant's terms change.
#[tokio::test]
async fn deprecation_notices_pending_and_effective_are_current() {
    let t = TestCtx::new("kstatus-notices").await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let selector = json!({ "matchLabels": { "kstatus-e2e": t.suffix } });
    let notice = |n: &str, spec: Value| {
        json!({ "apiVersion": "covenant.dev/v1alpha1", "kind": "DeprecationNotice",
                "metadata": { "name": n }, "spec": spec })
        .to_string()
    };
    let effective = |n: &DeprecationNotice| {
        let s = n.status.as_ref();
        let observed = s.is_some_and(|s| {
            s.observed_generation.is_some() && s.observed_generation == n.metadata.generation
        });
        let eff = s.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Effective"));
        observed.then(|| eff.map(|c| c.status.clone())).flatten()
    };

    // Pending: an amendment effective in 60 days, served now.
    let pending = t.name("ks-pending");
    t.track(NOTICES, &pending);
    let in_60_days = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(60 * 24);
    t.apply(&notice(
        &pending,
        json!({ "type": "Amendment", "summary": "New sub-processors.",
                "url": "https://platform.example/terms/dpa", "accounts": selector,
                "effectiveAt": in_60_days.round(jiff::Unit::Second).expect("round").to_string() }),
    ))
    .await;
    wait_for(
        &notices,
        &pending,
        "be observed, not yet effective",
        TIMEOUT,
        |n| effective(n).as_deref() == Some("False"),
    )
    .await;
    assert_kstatus(&verdict(&notices, &pending).await, "Current");

    // Effective: a terms URL update served and effective in the past.
    let done = t.name("ks-effective");
    t.track(NOTICES, &done);
    t.apply(&notice(
        &done,
        json!({ "type": "URLTermsUpdate", "summary": "Terms moved.",
                "url": "https://platform.example/terms", "accounts": selector,
                "servedAt": "2026-01-01T00:00:00Z", "effectiveAt": "2026-02-01T00:00:00Z" }),
    ))
    .await;
    wait_for(&notices, &done, "be observed and effective", TIMEOUT, |n| {
        effective(n).as_deref() == Some("True")
    })
    .await;
    assert_kstatus(&verdict(&notices, &done).await, "Current");
}
