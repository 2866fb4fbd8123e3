//! Self-service namespaces, by their effect on the real API server: an account's administrators
//! create namespaces for it themselves (a Namespace labelled `covenant.dev/tenant: <account>`), up to
//! the package's `maxNamespaces` counted over all the account's namespaces, also when they race; the
//! namespace is provisioned like a declared one (the API server's own RBAC answers, quota, limits, Pod
//! Security and the NetworkPolicy engine's verdicts are the same); nobody else can make one for the
//! account, no UPDATE turns an existing namespace into one, a declared namespace cannot be deleted by
//! the tenant, and nothing can be created or deleted while the account is suspended or retained. The
//! Account's spec and generation never change (GitOps owns the spec).

use covenant::api::{Account, Origin, SelfServiceSpec, SupportPackageSpec};
use covenant_e2e::fixtures::{self, api_error, forbidden, pod};
use covenant_e2e::netpol::{self, Peer, Probe};
use covenant_e2e::{
    TIMEOUT, Tenant, TenantBuilder, TestCtx, can, condition, eventually, impersonate, wait_account,
};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const REQUEST: &str = "covenant.dev/tenant";
const ACCOUNT: &str = "covenant.dev/account";
const RETAINED: &str = "covenant.dev/retained-until";

/// A Namespace manifest named `name`, with the request label for `tenant` (if any) and `extra`
/// metadata merged in.
fn ns_manifest(name: &str, tenant: Option<&str>, extra: Value) -> Namespace {
    let mut labels = serde_json::Map::new();
    if let Some(t) = tenant {
        labels.insert(REQUEST.into(), json!(t));
    }
    let mut meta = json!({ "name": name, "labels": labels });
    if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
        for (k, v) in e {
            match (m.get_mut(&k), v) {
                (Some(Value::Object(have)), Value::Object(add)) => have.extend(add),
                (_, v) => {
                    m.insert(k, v);
                }
            }
        }
    }
    serde_json::from_value(json!({ "metadata": meta })).unwrap()
}

async fn create_ns(
    client: &Client,
    name: &str,
    tenant: Option<&str>,
    extra: Value,
) -> Result<Namespace, kube::Error> {
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns_manifest(name, tenant, extra))
        .await
}

/// A package named `base-<suffix>` with `maxNamespaces` 3, two pods per namespace, the fixtures'
/// limits, changed by `edit`.
async fn package(t: &TestCtx, base: &str, edit: impl FnOnce(&mut SupportPackageSpec)) -> String {
    let name = t.package(base);
    let mut p = fixtures::package(&name, json!({ "pods": "2", "requests.cpu": "2" }));
    edit(&mut p.spec);
    t.apply(&p).await;
    name
}

/// A Ready tenant `base-<suffix>` on `pkg` with one declared namespace `base-main-<suffix>` and the
/// administrator `<admin>-<suffix>`.
fn self_serving<'a>(t: &'a TestCtx, base: &str, pkg: &str, admin: &str) -> TenantBuilder<'a> {
    t.tenant(base)
        .package(pkg)
        .namespace_names(&[t.name(&format!("{base}-main"))])
        .admin(&t.name(admin))
}

async fn get_account(client: &Client, name: &str) -> Account {
    Api::<Account>::all(client.clone()).get(name).await.unwrap()
}

/// The spec and generation of an Account: what self-service must never change.
fn spec_of(a: &Account) -> (Value, Option<i64>) {
    (
        serde_json::to_value(&a.spec).unwrap(),
        a.metadata.generation,
    )
}

/// The admin's RBAC answers in `ns` for what a tenant administrator does (and must not do).
async fn answers(client: &Client, admin: &str, ns: &str) -> Vec<(String, bool)> {
    let mut v = Vec::new();
    for (verb, resource) in [
        ("create", "pods"),
        ("delete", "deployments.apps"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("get", "secrets"),
        ("update", "resourcequotas"),
        ("delete", "networkpolicies.networking.k8s.io"),
        ("update", "limitranges"),
        ("create", "daemonsets.apps"),
    ] {
        v.push((
            format!("{verb} {resource}"),
            can(client, admin, &[], verb, resource, "", ns).await,
        ));
    }
    v
}

/// Waits until the account lists `ns` as self-made and the administrator's RBAC answers in it are
/// those of the declared namespace `declared`.
async fn wait_provisioned(t: &TestCtx, acct: &str, admin: &str, ns: &str, declared: &str) {
    let want = answers(&t.client, admin, declared).await;
    assert!(
        want.iter().any(|(_, a)| *a),
        "the administrator holds rights in its declared namespace: {want:?}"
    );
    eventually(
        "the self-made namespace is provisioned like the declared one",
        TIMEOUT,
        || async {
            let got = answers(&t.client, admin, ns).await;
            let a = get_account(&t.client, acct).await;
            let s = a.status.clone().unwrap_or_default();
            let listed = s.namespaces.iter().any(|n| n == ns)
                && s.namespace_origins
                    .iter()
                    .any(|o| o.name == ns && o.origin == Origin::SelfService);
            if got == want && listed {
                Ok(())
            } else {
                Err(format!("answers {got:?} vs {want:?}; status {s:?}"))
            }
        },
    )
    .await;
}

/// The namespaces that exist labelled with the account's request label or its account label.
async fn account_namespaces(client: &Client, acct: &str) -> Vec<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut all = Vec::new();
    for sel in [format!("{REQUEST}={acct}"), format!("{ACCOUNT}={acct}")] {
        for n in api.list(&ListParams::default().labels(&sel)).await.unwrap() {
            if !all.iter().any(|h: &Namespace| h.name_any() == n.name_any()) {
                all.push(n);
            }
        }
    }
    all
}

async fn warning_events(client: &Client, acct: &str, reason: &str) -> Vec<String> {
    Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields(&format!("involvedObject.name={acct}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

/// An administrator makes a namespace for its account and gets it provisioned like a declared one:
/// the same RBAC answers, the package's quota and limits and Pod Security by their refusals, the
/// NetworkPolicy engine's verdicts; its status lists it as `SelfService`. Nobody else can make one for
/// the account, the administrator cannot make one without the label, with a reserved or existing
/// name, or with forged marks; it deletes its own and not the declared one. The Account's spec and
/// generation never change.
#[tokio::test]
async fn administrators_make_and_delete_their_own_namespaces() {
    let t = TestCtx::new("administrators_make_and_delete_their_own_namespaces").await;
    let pkg = package(&t, "ss", |_| {}).await;
    let Tenant {
        account: acct,
        ns: main,
        admin,
        ..
    } = self_serving(&t, "ssa", &pkg, "alice").await;
    let Tenant {
        account: other,
        ns: other_main,
        admin: other_admin,
        ..
    } = self_serving(&t, "ssb", &pkg, "bob").await;
    let before = spec_of(&get_account(&t.client, &acct).await);
    let as_admin = impersonate(&admin, &[]).await;
    let as_other = impersonate(&other_admin, &[]).await;
    let as_stranger = impersonate(&t.name("mallory"), &[]).await;

    // The administrator's role grants namespace creation only with the verbs the policy checks.
    eventually(
        "the administrator may create namespaces",
        TIMEOUT,
        || async {
            can(&t.client, &admin, &[], "create", "namespaces", "", "")
                .await
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;

    let dev = t.namespace("ssa-dev");
    assert_only_the_administrator_makes_one_and_without_forged_marks(
        &t,
        &acct,
        &dev,
        &other_main,
        &as_admin,
        &as_other,
        &as_stranger,
    )
    .await;
    assert_the_administrator_makes_one_provisioned_like_the_declared_one(
        &t, &acct, &admin, &dev, &main, &as_admin,
    )
    .await;
    assert_the_engine_treats_it_as_the_accounts(&t, &dev, &main, &other_main).await;
    assert_the_administrator_deletes_only_what_it_made(
        &t, &acct, &other, &dev, &main, &as_admin, &as_other, before,
    )
    .await;
}

/// Not for another account, not by a stranger, not without the request label, not a reserved or
/// existing name, not with any of Covenant's marks forged.
async fn assert_only_the_administrator_makes_one_and_without_forged_marks(
    t: &TestCtx,
    acct: &str,
    dev: &str,
    other_main: &str,
    as_admin: &Client,
    as_other: &Client,
    as_stranger: &Client,
) {
    // Not for another account, not by a stranger, not without the label.
    forbidden(
        "another account's administrator makes one for the account",
        create_ns(as_other, dev, Some(acct), json!({})).await,
    )
    .unwrap();
    forbidden(
        "a stranger makes one for the account",
        create_ns(as_stranger, dev, Some(acct), json!({})).await,
    )
    .unwrap();
    let unlabelled = api_error(
        "the administrator makes a namespace without the request label",
        create_ns(as_admin, dev, None, json!({})).await,
    );
    assert_eq!(unlabelled.code, 403, "{unlabelled:?}");
    assert!(
        unlabelled.message.contains(REQUEST),
        "the refusal says how: {}",
        unlabelled.message
    );
    // Reserved names, and a name that exists (another account's namespace).
    for name in [
        "default".to_string(),
        format!("kube-{}", t.suffix),
        format!("covenant-{}", t.suffix),
    ] {
        forbidden(
            &format!("the reserved name {name}"),
            create_ns(as_admin, &name, Some(acct), json!({})).await,
        )
        .unwrap();
    }
    let exists = api_error(
        "another account's existing namespace",
        create_ns(as_admin, other_main, Some(acct), json!({})).await,
    );
    assert_eq!(exists.code, 409, "{exists:?}");
    // Forged marks: the account label, the UID annotation, a Pod Security level, any other
    // covenant.dev/* label.
    for (what, extra) in [
        ("the account label", json!({ "labels": { ACCOUNT: acct } })),
        (
            "the account UID annotation",
            json!({ "annotations": { "covenant.dev/account-uid": "x" } }),
        ),
        (
            "a privileged Pod Security level",
            json!({ "labels": { "pod-security.kubernetes.io/enforce": "privileged" } }),
        ),
        (
            "the read-only label",
            json!({ "labels": { "covenant.dev/read-only": "no" } }),
        ),
        (
            "a node selector annotation",
            json!({ "annotations": { "scheduler.alpha.kubernetes.io/node-selector": "x=y" } }),
        ),
    ] {
        forbidden(
            &format!("a self-service namespace with {what}"),
            create_ns(as_admin, dev, Some(acct), extra).await,
        )
        .unwrap();
    }
}

/// The administrator makes one: provisioned like the declared one (labels, quota, limits, Pod
/// Security).
async fn assert_the_administrator_makes_one_provisioned_like_the_declared_one(
    t: &TestCtx,
    acct: &str,
    admin: &str,
    dev: &str,
    main: &str,
    as_admin: &Client,
) {
    // The administrator makes one: provisioned like the declared one.
    create_ns(as_admin, dev, Some(acct), json!({}))
        .await
        .expect("the administrator creates a namespace for its account");
    wait_provisioned(t, acct, admin, dev, main).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let made = nss.get(dev).await.unwrap();
    assert_eq!(fixtures::label(&made, ACCOUNT).as_deref(), Some(acct));
    // Quota: two pods, not three; limits: a container over the package's max is refused; Pod Security:
    // a privileged pod is refused.
    let pods: Api<Pod> = Api::namespaced(as_admin.clone(), dev);
    eventually("the quota is enforced", TIMEOUT, || async {
        let q = Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(t.client.clone(), dev)
            .get_opt("covenant-quota")
            .await
            .map_err(|e| e.to_string())?;
        q.filter(|q| fixtures::status_hard(q).get("pods").map(String::as_str) == Some("2"))
            .map(|_| ())
            .ok_or_else(|| "no quota status yet".into())
    })
    .await;
    for i in 0..2 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}")))
            .await
            .unwrap_or_else(|e| panic!("pod {i} within the quota: {e}"));
    }
    let over = api_error(
        "a third pod",
        pods.create(&PostParams::default(), &pod("p2")).await,
    );
    assert!(over.message.contains("exceeded quota"), "{over:?}");
    let mut big = pod("big");
    big.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({ "limits": { "cpu": "2" } })).unwrap());
    let limited = api_error(
        "a container over the package's max",
        pods.create(&PostParams::default(), &big).await,
    );
    assert!(limited.message.contains("maximum cpu"), "{limited:?}");
    let mut privileged = pod("priv");
    privileged.spec.as_mut().unwrap().containers[0].security_context =
        Some(serde_json::from_value(json!({ "privileged": true })).unwrap());
    let ps = api_error(
        "a privileged pod",
        pods.create(&PostParams::default(), &privileged).await,
    );
    assert!(ps.message.contains("violates PodSecurity"), "{ps:?}");
}

/// Network, by the engine: the account's namespaces reach each other, another tenant does not get
/// in, cloud metadata stays out of reach.
async fn assert_the_engine_treats_it_as_the_accounts(
    t: &TestCtx,
    dev: &str,
    main: &str,
    other_main: &str,
) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // Network, by the engine: the account's namespaces reach each other, another tenant does not get
    // in, cloud metadata stays out of reach.
    let pod_in = |ns: &Namespace, ip: &str| Peer::pod(ns, ip);
    let (n_dev, n_main, n_other) = (
        nss.get(dev).await.unwrap(),
        nss.get(main).await.unwrap(),
        nss.get(other_main).await.unwrap(),
    );
    let probes = vec![
        Probe {
            name: "self-made → declared".into(),
            from: pod_in(&n_dev, "10.244.1.1"),
            to: pod_in(&n_main, "10.244.1.2"),
            port: 8080,
            protocol: "TCP",
        },
        Probe {
            name: "declared → self-made".into(),
            from: pod_in(&n_main, "10.244.1.2"),
            to: pod_in(&n_dev, "10.244.1.1"),
            port: 8080,
            protocol: "TCP",
        },
        Probe {
            name: "another tenant → self-made".into(),
            from: pod_in(&n_other, "10.244.2.1"),
            to: pod_in(&n_dev, "10.244.1.1"),
            port: 8080,
            protocol: "TCP",
        },
        Probe {
            name: "self-made → cloud metadata".into(),
            from: pod_in(&n_dev, "10.244.1.1"),
            to: Peer::external("169.254.169.254"),
            port: 80,
            protocol: "TCP",
        },
    ];
    eventually(
        "the engine's verdicts on the live policies",
        TIMEOUT,
        || async {
            let v = netpol::evaluate(&t.client, &probes)
                .await
                .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
            let got: Vec<bool> = v.iter().map(|v| v.allowed).collect();
            if got == [true, true, false, false] {
                Ok(())
            } else {
                Err(format!("{v:#?}"))
            }
        },
    )
    .await;
}

/// Deletion: not the declared namespace, not by another account; its own, yes, and the Account's
/// spec never changed.
#[allow(clippy::too_many_arguments)]
async fn assert_the_administrator_deletes_only_what_it_made(
    t: &TestCtx,
    acct: &str,
    other: &str,
    dev: &str,
    main: &str,
    as_admin: &Client,
    as_other: &Client,
    before: (Value, Option<i64>),
) {
    // Deletion: not the declared namespace; its own, yes.
    forbidden(
        "the administrator deletes the declared namespace",
        nss_as(as_admin)
            .delete(main, &DeleteParams::default())
            .await,
    )
    .unwrap();
    forbidden(
        "another account's administrator deletes the self-made namespace",
        nss_as(as_other).delete(dev, &DeleteParams::default()).await,
    )
    .unwrap();
    nss_as(as_admin)
        .delete(dev, &DeleteParams::default())
        .await
        .expect("the administrator deletes the namespace it made");
    eventually("the account no longer lists it", TIMEOUT, || async {
        let a = get_account(&t.client, acct).await;
        let s = a.status.unwrap_or_default();
        (!s.namespaces.iter().any(|n| n == dev))
            .then_some(())
            .ok_or_else(|| format!("{:?}", s.namespaces))
    })
    .await;
    let a = get_account(&t.client, acct).await;
    assert_eq!(
        spec_of(&a),
        before,
        "the Account's spec and generation never change"
    );
    assert!(
        condition(&a, "Ready").is_some_and(|c| c.status == "True"),
        "{:?}",
        a.status
    );
    assert!(get_account(&t.client, other).await.status.is_some());
}

fn nss_as(client: &Client) -> Api<Namespace> {
    Api::all(client.clone())
}

/// Administrators racing for the last slots: eight concurrent creates on an account with one declared
/// namespace and a cap of three. Whatever the API server admitted, the account never holds more than
/// three namespaces (read back from the API server throughout), the ones past the cap are deleted with
/// an Event and a condition naming each, and once at the cap the API server refuses new ones.
#[tokio::test]
async fn racing_creates_never_pass_the_cap() {
    let t = TestCtx::new("racing_creates_never_pass_the_cap").await;
    let pkg = package(&t, "race", |_| {}).await;
    let Tenant {
        account: acct,
        admin,
        ..
    } = self_serving(&t, "race", &pkg, "carol").await;
    let before = spec_of(&get_account(&t.client, &acct).await);
    let as_admin = impersonate(&admin, &[]).await;
    eventually(
        "the administrator may create namespaces",
        TIMEOUT,
        || async {
            can(&t.client, &admin, &[], "create", "namespaces", "", "")
                .await
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let names: Vec<String> = (0..8).map(|i| t.namespace(&format!("race-{i}"))).collect();
    let creates = names.iter().map(|n| {
        let (c, n, acct) = (as_admin.clone(), n.clone(), acct.clone());
        async move { create_ns(&c, &n, Some(&acct), json!({})).await.is_ok() }
    });
    let admitted = futures::future::join_all(creates)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert!(
        admitted >= 2,
        "the API server admitted at least the room: {admitted}"
    );
    // Throughout: never more than three namespaces marked as the account's.
    let settled = eventually("the operator decided every namespace", TIMEOUT, || async {
        let all = account_namespaces(&t.client, &acct).await;
        let owned: Vec<String> = all
            .iter()
            .filter(|n| fixtures::label(*n, ACCOUNT).as_deref() == Some(acct.as_str()))
            .map(|n| n.name_any())
            .collect();
        assert!(owned.len() <= 3, "over the cap: {owned:?}");
        let undecided: Vec<String> = all
            .iter()
            .filter(|n| {
                fixtures::label(*n, ACCOUNT).is_none() && n.metadata.deletion_timestamp.is_none()
            })
            .map(|n| n.name_any())
            .collect();
        if owned.len() == 3 && undecided.is_empty() {
            Ok(owned)
        } else {
            Err(format!("owned {owned:?}, undecided {undecided:?}"))
        }
    })
    .await;
    assert_the_status_lists_what_it_holds_and_each_refusal_is_announced(
        &t, &acct, settled, admitted,
    )
    .await;
    assert_the_api_server_refuses_one_past_the_cap(&t, &acct, &admin, &as_admin, before).await;
}

/// The status lists exactly the namespaces it holds, two of them self-made; those refused are gone
/// (or going), each named in an Event with the reason.
async fn assert_the_status_lists_what_it_holds_and_each_refusal_is_announced(
    t: &TestCtx,
    acct: &str,
    settled: Vec<String>,
    admitted: usize,
) {
    // The status lists exactly the namespaces it holds, two of them self-made.
    eventually(
        "the status lists the namespaces it holds",
        TIMEOUT,
        || async {
            let s = get_account(&t.client, acct)
                .await
                .status
                .unwrap_or_default();
            let selfmade: Vec<&str> = s
                .namespace_origins
                .iter()
                .filter(|o| o.origin == Origin::SelfService)
                .map(|o| o.name.as_str())
                .collect();
            let mut listed = s.namespaces.clone();
            listed.sort();
            let mut held = settled.clone();
            held.sort();
            (listed == held && selfmade.len() == 2)
                .then_some(())
                .ok_or_else(|| format!("{s:?}"))
        },
    )
    .await;
    // Those refused are gone (or going), each named in an Event with the reason.
    let refused = admitted - 2;
    if refused > 0 {
        eventually("each refusal is announced", TIMEOUT, || async {
            let ev = warning_events(&t.client, acct, "NamespaceRefused").await;
            (ev.len() >= refused && ev.iter().all(|m| m.contains("maxNamespaces")))
                .then_some(())
                .ok_or_else(|| format!("{ev:?}"))
        })
        .await;
        let c = condition(&get_account(&t.client, acct).await, "NamespaceSelfService").cloned();
        assert!(
            c.as_ref()
                .is_some_and(|c| c.reason == "Refused" && c.message.contains("refused namespace")),
            "{c:?}"
        );
    }
}

/// At the cap, the API server refuses the next one; the Account's spec never changed.
async fn assert_the_api_server_refuses_one_past_the_cap(
    t: &TestCtx,
    acct: &str,
    admin: &str,
    as_admin: &Client,
    before: (Value, Option<i64>),
) {
    // At the cap, the API server refuses the next one.
    eventually("the role no longer grants creation", TIMEOUT, || async {
        (!can(&t.client, admin, &[], "create", "namespaces", "", "").await)
            .then_some(())
            .ok_or_else(|| "still granted".to_string())
    })
    .await;
    let late = t.namespace("race-late");
    forbidden(
        "a namespace past the cap",
        create_ns(as_admin, &late, Some(acct), json!({})).await,
    )
    .unwrap();
    let a = get_account(&t.client, acct).await;
    assert_eq!(
        spec_of(&a),
        before,
        "the Account's spec and generation never change"
    );
}

/// While the account is suspended its administrators can neither create nor delete namespaces; after
/// the lift they can again; when the Account is deleted with `Retain`, the self-made namespace is
/// retained like a declared one and cannot be deleted by the tenant.
#[tokio::test]
async fn suspended_and_retained_accounts_cannot_create_or_delete() {
    let t = TestCtx::new("suspended_and_retained_accounts_cannot_create_or_delete").await;
    let pkg = package(&t, "susp", |_| {}).await;
    // deletionPolicy left to its default, Retain.
    let Tenant {
        account: acct,
        ns: main,
        admin,
        ..
    } = self_serving(&t, "susp", &pkg, "dave").retain().await;
    let as_admin = impersonate(&admin, &[]).await;
    let own = t.namespace("susp-own");
    eventually("the administrator creates a namespace", TIMEOUT, || async {
        create_ns(&as_admin, &own, Some(&acct), json!({}))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    wait_provisioned(&t, &acct, &admin, &own, &main).await;
    eventually(
        "the administrator may delete its namespace",
        TIMEOUT,
        || async {
            nss_as(&as_admin)
                .delete(&own, &DeleteParams::default().dry_run())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;

    assert_a_suspension_stops_creation_and_deletion_until_its_lift(
        &t, &acct, &admin, &as_admin, &own,
    )
    .await;
    assert_a_retained_self_made_namespace_cannot_be_deleted(&t, &acct, &as_admin, &own).await;
}

/// Suspended, the administrator can neither create nor delete namespaces, and its self-made
/// namespace is read-only; after the lift it may delete again.
async fn assert_a_suspension_stops_creation_and_deletion_until_its_lift(
    t: &TestCtx,
    acct: &str,
    admin: &str,
    as_admin: &Client,
    own: &str,
) {
    let susp = t.name("susp");
    t.track("suspensions.covenant.dev", &susp);
    t.apply(&fixtures::suspension(
        &susp,
        acct,
        "AcceptableUsePolicy",
        "self-service test",
        json!({}),
    ))
    .await;
    wait_account(&t.client, acct, "Suspended", "True", None).await;
    let another = t.namespace("susp-more");
    eventually(
        "creation and deletion are refused while suspended",
        TIMEOUT,
        || async {
            forbidden(
                "create while suspended",
                create_ns(as_admin, &another, Some(acct), json!({})).await,
            )?;
            // A dry run: the refusal is the API server's, without deleting anything if it were allowed.
            forbidden(
                "delete while suspended",
                nss_as(as_admin)
                    .delete(own, &DeleteParams::default().dry_run())
                    .await,
            )
        },
    )
    .await;
    // The self-made namespace is suspended like the declared one: read-only for the administrator.
    eventually("the self-made namespace is read-only", TIMEOUT, || async {
        (!can(&t.client, admin, &[], "create", "pods", "", own).await
            && can(&t.client, admin, &[], "get", "pods", "", own).await)
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    Api::<covenant::api::Suspension>::all(t.client.clone())
        .delete(&susp, &DeleteParams::default())
        .await
        .unwrap();
    wait_account(&t.client, acct, "Suspended", "False", None).await;
    eventually(
        "deletion is allowed again after the lift",
        TIMEOUT,
        || async {
            nss_as(as_admin)
                .delete(own, &DeleteParams::default().dry_run())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// Retained: the Account goes (Retain, the default); its self-made namespace is released like the
/// declared one and the tenant cannot delete it.
async fn assert_a_retained_self_made_namespace_cannot_be_deleted(
    t: &TestCtx,
    acct: &str,
    as_admin: &Client,
    own: &str,
) {
    // Retained: the Account goes (Retain, the default); its self-made namespace is released like the
    // declared one and the tenant cannot delete it.
    Api::<Account>::all(t.client.clone())
        .delete(acct, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the self-made namespace is retained", TIMEOUT, || async {
        let n = Api::<Namespace>::all(t.client.clone())
            .get(own)
            .await
            .map_err(|e| e.to_string())?;
        fixtures::label(&n, RETAINED)
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", n.labels()))
    })
    .await;
    forbidden(
        "delete a retained namespace",
        nss_as(as_admin)
            .delete(own, &DeleteParams::default().dry_run())
            .await,
    )
    .unwrap();
}

/// A hostile tenant: an UPDATE cannot add the request label to an existing namespace (not by a user
/// allowed to update namespaces, not through the status subresource); a ServiceAccount the
/// administrator bound cannot create one; a name another account declares is refused and deleted by
/// the operator; the package's prefix rule is enforced by the API server.
#[tokio::test]
async fn hostile_tenants_cannot_widen_self_service() {
    let t = TestCtx::new("hostile_tenants_cannot_widen_self_service").await;
    let pkg = package(&t, "host", |p| {
        p.self_service = Some(SelfServiceSpec {
            require_prefix: true,
            ..Default::default()
        })
    })
    .await;
    let Tenant {
        account: acct,
        ns: main,
        admin,
        ..
    } = self_serving(&t, "host", &pkg, "erin").await;
    let as_admin = impersonate(&admin, &[]).await;

    assert_nobody_adds_the_request_label_to_an_existing_namespace(&t, &acct, &as_admin).await;
    assert_the_administrators_service_account_makes_none(&t, &acct, &main, &as_admin).await;
    assert_the_prefix_rule_holds(&t, &acct, &admin, &as_admin).await;
    let (blocked, squatted) = a_blocked_account_declaring_a_prefixed_name(&t, &acct, &admin).await;
    assert_a_namespace_requested_for_a_blocked_account_is_not_taken(&t, &admin, &blocked).await;
    assert_a_name_another_account_declares_is_refused_and_deleted(
        &t, &acct, &as_admin, &blocked, &squatted,
    )
    .await;
}

/// Neither a user who may update namespaces (and their status) nor the administrator adds the request
/// label to an existing namespace.
async fn assert_nobody_adds_the_request_label_to_an_existing_namespace(
    t: &TestCtx,
    acct: &str,
    as_admin: &Client,
) {
    // A user who may update namespaces (and their status), but is no cluster administrator.
    let (editor, as_editor) = t
        .user_with_cluster_rules(
            "ns-editor",
            json!([{ "apiGroups": [""], "resources": ["namespaces", "namespaces/status"],
                     "verbs": ["get", "update", "patch"] }]),
        )
        .await;
    let plain = t.namespace("host-plain");
    create_ns(&t.client, &plain, None, json!({})).await.unwrap();
    let add_label = json!({ "metadata": { "labels": { REQUEST: acct } } });
    eventually("the editor's role is in force", TIMEOUT, || async {
        can(&t.client, &editor, &[], "patch", "namespaces", "", &plain)
            .await
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    for (who, client) in [("the editor", &as_editor), ("the administrator", as_admin)] {
        forbidden(
            &format!("{who} adds the request label to an existing namespace"),
            nss_as(client)
                .patch(&plain, &PatchParams::default(), &Patch::Merge(&add_label))
                .await,
        )
        .unwrap();
    }
    forbidden(
        "the editor adds the request label through the status subresource",
        nss_as(&as_editor)
            .patch_status(&plain, &PatchParams::default(), &Patch::Merge(&add_label))
            .await,
    )
    .unwrap();
    let n = nss_as(&t.client).get(&plain).await.unwrap();
    assert!(fixtures::label(&n, REQUEST).is_none(), "{:?}", n.labels());
}

/// A ServiceAccount the administrator bound, to what the administrator may bind, makes no namespace.
async fn assert_the_administrators_service_account_makes_none(
    t: &TestCtx,
    acct: &str,
    main: &str,
    as_admin: &Client,
) {
    // A ServiceAccount the administrator bound, to what the administrator may bind.
    let sa_name = "bot";
    Api::<ServiceAccount>::namespaced(as_admin.clone(), main)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": sa_name } })).unwrap(),
        )
        .await
        .expect("the administrator creates a ServiceAccount");
    let sa_user = format!("system:serviceaccount:{main}:{sa_name}");
    for role in [
        format!("covenant-account-{acct}"),
        "covenant-tenant-admin".to_string(),
    ] {
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": format!("bot-{role}") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": sa_name, "namespace": main }]
        }))
        .unwrap();
        // Whether or not the binding is admitted, the ServiceAccount gains no namespace creation.
        let _ = Api::<RoleBinding>::namespaced(as_admin.clone(), main)
            .create(&PostParams::default(), &rb)
            .await;
    }
    let as_sa = impersonate(
        &sa_user,
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{main}"),
        ],
    )
    .await;
    forbidden(
        "the administrator's ServiceAccount makes a namespace for the account",
        create_ns(
            &as_sa,
            &t.namespace(&format!("{acct}-bot")),
            Some(acct),
            json!({}),
        )
        .await,
    )
    .unwrap();
}

/// The prefix rule: only `<account>-*`.
async fn assert_the_prefix_rule_holds(t: &TestCtx, acct: &str, admin: &str, as_admin: &Client) {
    // The prefix rule: only `<account>-*`.
    eventually(
        "the administrator may create namespaces",
        TIMEOUT,
        || async {
            can(&t.client, admin, &[], "create", "namespaces", "", "")
                .await
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let unprefixed = api_error(
        "a name without the account's prefix",
        create_ns(as_admin, &t.namespace("noprefix"), Some(acct), json!({})).await,
    );
    assert!(
        unprefixed.code == 403
            && unprefixed
                .message
                .contains("requires names that start with"),
        "{unprefixed:?}"
    );
}

/// A name another account declares but has not made yet (its package does not exist, so it is
/// blocked and creates nothing). Returns the blocked account and the name.
async fn a_blocked_account_declaring_a_prefixed_name(
    t: &TestCtx,
    acct: &str,
    admin: &str,
) -> (String, String) {
    // A name another account declares but has not made yet (its package does not exist, so it is
    // blocked and creates nothing): admitted by the API server, refused and deleted by the operator.
    let squatted = format!("{acct}-declared");
    t.track("namespaces", &squatted);
    let blocked = t
        .tenant("host-blocked")
        .package(&t.name("no-such-package"))
        .namespace_names(&[&squatted])
        .admin(admin)
        .retain()
        .unready()
        .await
        .account;
    wait_account(&t.client, &blocked, "Stalled", "True", None).await;
    (blocked, squatted)
}

/// A namespace requested for the blocked account (made by a cluster administrator: its
/// administrators may not) is neither taken nor provisioned, and grants its administrator nothing.
async fn assert_a_namespace_requested_for_a_blocked_account_is_not_taken(
    t: &TestCtx,
    admin: &str,
    blocked: &str,
) {
    // A namespace requested for the blocked account (made by a cluster administrator: its
    // administrators may not) is neither taken nor provisioned, and grants its administrator nothing.
    let waiting = t.namespace("host-waiting");
    create_ns(&t.client, &waiting, Some(blocked), json!({}))
        .await
        .unwrap();
    eventually(
        "the blocked account reports the waiting namespace",
        TIMEOUT,
        || async {
            let c = condition(
                &get_account(&t.client, blocked).await,
                "NamespaceSelfService",
            )
            .cloned();
            c.as_ref()
                .filter(|c| c.reason == "Blocked" && c.message.contains(&waiting))
                .map(|_| ())
                .ok_or_else(|| format!("{c:?}"))
        },
    )
    .await;
    let granted: Vec<(String, bool)> = answers(&t.client, admin, &waiting)
        .await
        .into_iter()
        .filter(|(_, a)| *a)
        .collect();
    assert!(
        granted.is_empty(),
        "an untaken namespace grants nothing: {granted:?}"
    );
    let n = nss_as(&t.client).get(&waiting).await.unwrap();
    assert!(fixtures::label(&n, ACCOUNT).is_none(), "{:?}", n.labels());
}

/// The administrator cannot write its own Account's status (where the origins are listed), and a
/// namespace it makes with a name another account declares is admitted by the API server, then
/// refused and deleted by the operator, never taken.
async fn assert_a_name_another_account_declares_is_refused_and_deleted(
    t: &TestCtx,
    acct: &str,
    as_admin: &Client,
    blocked: &str,
    squatted: &str,
) {
    // Nor can the administrator write its own Account's status (where the origins are listed).
    forbidden(
        "the administrator patches its Account's status",
        Api::<Account>::all(as_admin.clone())
            .patch_status(
                acct,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "namespaces": ["x"] } })),
            )
            .await,
    )
    .unwrap();
    let refused_before = warning_events(&t.client, acct, "NamespaceRefused")
        .await
        .len();
    create_ns(as_admin, squatted, Some(acct), json!({}))
        .await
        .expect("the API server cannot know the other account's names");
    eventually(
        "the squatted name is refused and deleted",
        TIMEOUT,
        || async {
            let ev = warning_events(&t.client, acct, "NamespaceRefused").await;
            let n = nss_as(&t.client)
                .get_opt(squatted)
                .await
                .map_err(|e| e.to_string())?;
            let going = n
                .as_ref()
                .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
            let announced = ev.len() > refused_before
                && ev
                    .iter()
                    .any(|m| m.contains(squatted) && m.contains(blocked));
            let never_taken = n
                .as_ref()
                .is_none_or(|n| fixtures::label(n, ACCOUNT).is_none());
            assert!(never_taken, "the squatted namespace was taken: {n:?}");
            (going && announced)
                .then_some(())
                .ok_or_else(|| format!("events {ev:?}, namespace {n:?}"))
        },
    )
    .await;
}
