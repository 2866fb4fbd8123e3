//! A hostile tenant against the self-service capabilities, on the real API server and the operator:
//! what it tries, and what the cluster answers (objects read back, not the operator's word).

use std::time::{Duration, Instant};

use covenant_e2e::fixtures;
use covenant_e2e::netpol::{self, Peer, Probe};
use covenant_e2e::{TIMEOUT, TenantBuilder, TestCtx, eventually};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const SHARE: &str = "covenant-account-share";

/// A Secret held by a finalizer of the tenant's own: deleting it (or its namespace) leaves it in
/// place, counted by nothing once its namespace's quota objects are gone.
fn held_secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name, "finalizers": ["example.com/hold"] },
        "type": "Opaque",
        "data": { "k": "dg==" }
    }))
    .unwrap()
}

/// Creates held Secrets in `ns` as `client` until `want` were admitted or `within` passed (a refusal
/// is retried: room moves to a namespace that uses its share up); returns how many were admitted.
async fn fill(client: &Client, ns: &str, tag: &str, want: usize, within: Duration) -> usize {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + within;
    let mut made = 0;
    while made < want && Instant::now() < deadline {
        match api
            .create(
                &PostParams::default(),
                &held_secret(&format!("{tag}-{made}")),
            )
            .await
        {
            Ok(_) => made += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    made
}

/// Every Secret that exists in `ns` (terminating ones included), as a cluster administrator sees it.
async fn secrets(client: &Client, ns: &str) -> Vec<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Deleting a self-made namespace deletes its share with it, while objects its tenant holds there
/// by finalizers stay (the namespace stays Terminating): the room of those objects must not go to the
/// account's other namespaces, or the account holds more than its cap, once per namespace it deletes.
#[tokio::test]
async fn deleting_a_namespace_does_not_free_the_room_its_remaining_objects_hold() {
    let t = TestCtx::new("deleting_a_namespace_does_not_free_the_room").await;
    let cap = 4usize;
    let pkg = t.package("qpkg");
    let mut p = fixtures::package(&pkg, json!({ "secrets": "20" }));
    p.spec.account_quota = Some(fixtures::resources(json!({ "secrets": cap.to_string() })));
    t.apply(&p).await;
    // deletionPolicy left to its default, Retain.
    let qa = declaring_main(&t, "qa", &pkg)
        .admin(&t.name("alice"))
        .retain()
        .await;
    let (acct, main) = (qa.account.clone(), qa.ns.clone());
    let as_admin = qa.admin_client().await;

    // The administrator makes a namespace and fills the whole cap there with held Secrets.
    let own = t.namespace(&format!("{acct}-x"));
    self_made(&t, &as_admin, &acct, &own, &main).await;
    let made = fill(&as_admin, &own, "x", cap, TIMEOUT).await;
    assert_eq!(made, cap, "one namespace alone reaches the cap");

    // It deletes the namespace: the held Secrets stay, and so must their room.
    Api::<Namespace>::all(as_admin.clone())
        .delete(&own, &DeleteParams::default())
        .await
        .expect("the administrator deletes a namespace it made");
    let client = t.client.clone();
    eventually("the namespace's share is gone", TIMEOUT, || async {
        match Api::<ResourceQuota>::namespaced(client.clone(), &own)
            .get_opt(SHARE)
            .await
        {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let more = fill(&as_admin, &main, "m", cap, Duration::from_secs(30)).await;
    let left = secrets(&t.client, &own).await.len();
    let total = left + secrets(&t.client, &main).await.len();

    // Release the held Secrets (as a cluster administrator) so the namespaces can go.
    for ns in [&own, &main] {
        for s in secrets(&t.client, ns).await {
            let name = s.metadata.name.unwrap_or_default();
            let _ = Api::<Secret>::namespaced(t.client.clone(), ns)
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                )
                .await;
        }
    }
    assert_eq!(
        left, cap,
        "the held Secrets outlive their namespace's share"
    );
    assert!(
        total <= cap,
        "the account holds {total} Secrets for a cap of {cap} ({more} new in {main} after {own} was deleted)"
    );
}

/// A tenant `base-<suffix>` on `pkg` declaring the namespace `base-main-<suffix>` (deleted after the
/// test).
fn declaring_main<'a>(t: &'a TestCtx, base: &str, pkg: &str) -> TenantBuilder<'a> {
    t.tenant(base)
        .package(pkg)
        .namespace_names(&[t.namespace(&format!("{base}-main"))])
}

/// Creates the namespace `name` for `acct` as `client` (retried while the administrator's rights
/// arrive) and waits until Covenant took it for that account and listed it among its namespaces.
async fn self_made(t: &TestCtx, client: &Client, acct: &str, name: &str, main: &str) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "covenant.dev/tenant": acct } }
    }))
    .unwrap();
    eventually("the administrator makes a namespace", TIMEOUT, || async {
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let all = Api::<Namespace>::all(t.client.clone());
    eventually("the namespace is the account's", TIMEOUT, || async {
        let n = all.get(name).await.map_err(|e| e.to_string())?;
        let m = all.get(main).await.map_err(|e| e.to_string())?;
        let own = n.labels().get("covenant.dev/account").map(String::as_str) == Some(acct);
        let listed = m
            .annotations()
            .get("covenant.dev/namespaces")
            .is_some_and(|l| l.split(',').any(|x| x == name));
        (own && listed).then_some(()).ok_or("not yet".to_string())
    })
    .await;
}

/// A tenant lets in its own second namespace by name. It deletes that namespace, and another tenant
/// makes one under the same name: the name now belongs to the other tenant, and the first tenant's
/// policy must not let it in. So a tenant policy pins, with the names, the account's own label
/// (covenant.dev/account, which only Covenant sets): a name alone is refused by the API server.
#[tokio::test]
async fn a_name_another_tenant_takes_over_is_not_let_in() {
    let t = TestCtx::new("a_name_another_tenant_takes_over_is_not_let_in").await;
    let pkg = t.package("npkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let nv = declaring_main(&t, "nv", &pkg).await;
    let (victim, v_main, as_victim) = (nv.account.clone(), nv.ns.clone(), nv.admin_client().await);
    let nm = declaring_main(&t, "nm", &pkg).await;
    let (mallory, m_main, as_mallory) =
        (nm.account.clone(), nm.ns.clone(), nm.admin_client().await);
    let shared = t.namespace(&format!("{victim}-x"));
    self_made(&t, &as_victim, &victim, &shared, &v_main).await;

    let name_pin = json!({ "matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "In", "values": [shared] }] });
    let mut both = name_pin.clone();
    both["matchLabels"] = json!({ "covenant.dev/account": victim });
    let policy = |name: &str, sel: &Value| -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "podSelector": {}, "ingress": [{ "from": [{ "namespaceSelector": sel }] }] }
        }))
        .unwrap()
    };
    let nps = Api::<NetworkPolicy>::namespaced(as_victim.clone(), &v_main);
    let refused = nps
        .create(&PostParams::default(), &policy("by-name", &name_pin))
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("covenant.dev/account")),
        "a name alone is refused, saying what to add: {refused:?}"
    );
    // The policy reads the account's namespaces from the request namespace's annotation as the API
    // server's own namespace cache has it, which may lag the write the test saw for a moment.
    let pinned = policy("by-name-and-account", &both);
    eventually(
        "the name with the account's label is admitted",
        TIMEOUT,
        || async {
            nps.create(&PostParams::default(), &pinned)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;

    // The victim deletes its namespace (once its role names it); the other tenant takes the name.
    eventually(
        "the administrator deletes its namespace",
        TIMEOUT,
        || async {
            Api::<Namespace>::all(as_victim.clone())
                .delete(&shared, &DeleteParams::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let all = Api::<Namespace>::all(t.client.clone());
    eventually("the namespace is gone", TIMEOUT, || async {
        match all.get_opt(&shared).await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|n| n.map(|n| n.status)))),
        }
    })
    .await;
    self_made(&t, &as_mallory, &mallory, &shared, &m_main).await;

    // The engine on every live policy: the other tenant's pod in the taken name never gets in.
    let from = all.get(&shared).await.unwrap();
    let to = all.get(&v_main).await.unwrap();
    let verdicts = netpol::evaluate(
        &t.client,
        &[Probe {
            name: "taken name -> victim".into(),
            from: Peer::pod(&from, "10.9.0.1"),
            to: Peer::pod(&to, "10.9.0.2"),
            port: 80,
            protocol: "TCP",
        }],
    )
    .await
    .expect("the oracle answers");
    assert!(!verdicts[0].allowed, "{:?}", verdicts[0]);
}

/// Namespace metadata a tenant could use against the cluster: a finalizer of its own keeps a deleted
/// namespace Terminating forever (the tenant cannot update its namespace to remove it, and one the
/// operator refused and deleted no longer counts, so bursts of racing creates would leave namespaces
/// behind without bound); an owner reference has it deleted with another object (around retention);
/// a generated name is checked once generated (no `kube-*`). All refused by the API server.
#[tokio::test]
async fn a_self_made_namespace_carries_no_finalizer_owner_or_reserved_generated_name() {
    let t = TestCtx::new("a_self_made_namespace_carries_no_finalizer").await;
    let pkg = t.package("fpkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let nf = declaring_main(&t, "nf", &pkg).await;
    let (acct, _main, as_admin) = (nf.account.clone(), nf.ns.clone(), nf.admin_client().await);
    let nss = Api::<Namespace>::all(as_admin.clone());
    let name = t.namespace(&format!("{acct}-f"));
    let with = |extra: Value| -> Namespace {
        let mut m = json!({ "name": name, "labels": { "covenant.dev/tenant": acct } });
        if let (Value::Object(m), Value::Object(e)) = (&mut m, extra.clone()) {
            m.extend(e.into_iter().filter(|(k, _)| k != "spec"));
        }
        serde_json::from_value(json!({ "metadata": m, "spec": extra.get("spec") })).unwrap()
    };
    // The administrator may make namespaces (a plain one is dry-run admitted) ...
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(
        "the administrator may make a namespace",
        TIMEOUT,
        || async {
            nss.create(&dry, &with(json!({})))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    // ... but none of these.
    let kube_generated: Namespace = serde_json::from_value(json!({ "metadata": {
        "generateName": "kube-", "labels": { "covenant.dev/tenant": acct } } }))
    .unwrap();
    for (what, ns, says) in [
        (
            "a finalizer",
            with(json!({ "finalizers": ["example.com/stuck"] })),
            "finalizers",
        ),
        (
            "a spec finalizer",
            with(json!({ "spec": { "finalizers": ["kubernetes", "example.com/stuck"] } })),
            "finalizers",
        ),
        (
            "an owner reference",
            with(
                json!({ "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap",
                "name": "x", "uid": "00000000-0000-0000-0000-000000000001" }] }),
            ),
            "ownerReferences",
        ),
        ("a generated kube-* name", kube_generated, "reserved"),
    ] {
        let r = nss.create(&PostParams::default(), &ns).await;
        assert!(
            matches!(&r, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(says)),
            "{what}: {r:?}"
        );
    }
}

/// The tenant writes policies as fast as it can (eight writers creating and deleting) while it is
/// being suspended: one admitted just before the namespace turned read-only may land after the
/// operator listed the policies to neutralise. Every tenant policy is neutralised all the same, and
/// the engine then denies what a suspension denies (pod to pod in the namespace).
#[tokio::test]
async fn policies_written_while_the_suspension_lands_are_neutralised() {
    let t = TestCtx::new("policies_written_while_the_suspension_lands").await;
    let pkg = t.package("rpkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let nr = declaring_main(&t, "nr", &pkg).await;
    let (acct, main, as_admin) = (nr.account.clone(), nr.ns.clone(), nr.admin_client().await);
    let nps = Api::<NetworkPolicy>::namespaced(as_admin.clone(), &main);
    let own_pods: NetworkPolicy = serde_json::from_value(json!({ "metadata": { "name": "seed" },
        "spec": { "podSelector": {}, "ingress": [{ "from": [{ "podSelector": {} }] }] } }))
    .unwrap();
    eventually("the tenant writes a policy", TIMEOUT, || async {
        nps.create(&PostParams::default(), &own_pods)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (nps, stop, mut p) = (nps.clone(), stop.clone(), own_pods.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    p.metadata.name = Some(format!("race-{w}-{i}"));
                    if nps.create(&PostParams::default(), &p).await.is_ok() {
                        let _ = nps
                            .delete(&format!("race-{w}-{i}"), &DeleteParams::default())
                            .await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let name = t.name("race-aup");
    t.track("suspensions.covenant.dev", &name);
    t.apply(&fixtures::suspension(
        &name,
        &acct,
        "AcceptableUsePolicy",
        "race",
        json!({}),
    ))
    .await;
    let all = Api::<Namespace>::all(t.client.clone());
    eventually("the namespace is read-only", TIMEOUT, || async {
        let n = all.get(&main).await.map_err(|e| e.to_string())?;
        n.labels()
            .contains_key("covenant.dev/read-only")
            .then_some(())
            .ok_or("not yet".into())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let admin_nps = Api::<NetworkPolicy>::namespaced(t.client.clone(), &main);
    eventually("every tenant policy is neutralised", TIMEOUT, || async {
        let l = admin_nps
            .list(&ListParams::default().labels("!covenant.dev/account"))
            .await
            .map_err(|e| e.to_string())?;
        let open: Vec<String> = l
            .items
            .iter()
            .filter(|p| !p.annotations().contains_key("covenant.dev/neutralised"))
            .map(|p| p.name_any())
            .collect();
        open.is_empty()
            .then_some(())
            .ok_or(format!("not neutralised: {open:?}"))
    })
    .await;
    let ns = all.get(&main).await.unwrap();
    let verdicts = netpol::evaluate(
        &t.client,
        &[Probe {
            name: "pod -> pod in the suspended namespace".into(),
            from: Peer::pod(&ns, "10.9.1.1"),
            to: Peer::pod(&ns, "10.9.1.2"),
            port: 80,
            protocol: "TCP",
        }],
    )
    .await
    .expect("the oracle answers");
    assert!(!verdicts[0].allowed, "{:?}", verdicts[0]);
}

/// Six creates race for the account's last two slots, and the administrator tries at once, over and
/// over, to put a pod and a RoleBinding into every namespace it asked for: nothing lands in a
/// namespace the operator refuses (the creator of a namespace holds no rights in it; only the
/// bindings Covenant applies when it takes one give the administrator any).
#[tokio::test]
async fn nothing_lands_in_a_namespace_refused_past_the_cap() {
    let t = TestCtx::new("nothing_lands_in_a_namespace_refused").await;
    let pkg = t.package("cpkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let nc = declaring_main(&t, "nc", &pkg).await;
    let (acct, _main, as_admin) = (nc.account.clone(), nc.ns.clone(), nc.admin_client().await);
    let names: Vec<String> = (0..6)
        .map(|i| t.namespace(&format!("{acct}-r{i}")))
        .collect();
    let nss = Api::<Namespace>::all(as_admin.clone());
    eventually("the administrator may make namespaces", TIMEOUT, || async {
        let ns: Namespace = serde_json::from_value(json!({ "metadata": {
            "name": names[0], "labels": { "covenant.dev/tenant": acct } } }))
        .unwrap();
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        nss.create(&dry, &ns)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (c, name, acct) = (as_admin.clone(), name.clone(), acct.clone());
            tokio::spawn(async move {
                let ns: Namespace = serde_json::from_value(json!({ "metadata": {
                    "name": name, "labels": { "covenant.dev/tenant": acct } } }))
                .unwrap();
                let _ = Api::<Namespace>::all(c.clone()).create(&PostParams::default(), &ns).await;
                let rb: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
                    "metadata": { "name": "probe" },
                    "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
                    "subjects": [{ "kind": "ServiceAccount", "name": "default", "namespace": name }] }))
                .unwrap();
                let (mut pod, mut binding) = (false, false);
                let until = Instant::now() + Duration::from_secs(15);
                while Instant::now() < until && !(pod && binding) {
                    let p = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.clone(), &name);
                    pod |= p.create(&PostParams::default(), &fixtures::pod("probe")).await.is_ok();
                    let r = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(c.clone(), &name);
                    binding |= r.create(&PostParams::default(), &rb).await.is_ok();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (name, pod || binding)
            })
        })
        .collect();
    let mut landed = Vec::new();
    for task in tasks {
        let (name, any) = task.await.unwrap();
        if any {
            landed.push(name);
        }
    }
    // The account keeps exactly two of them; the others are gone.
    let all = Api::<Namespace>::all(t.client.clone());
    // The namespace controller empties a deleted namespace before it goes: slow on a loaded machine.
    let kept = eventually("the refused namespaces are gone", TIMEOUT * 3, || async {
        let mut kept = Vec::new();
        for n in &names {
            match all.get_opt(n).await.map_err(|e| e.to_string())? {
                Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
                    return Err(format!("{n} terminating"));
                }
                Some(ns) if ns.labels().get("covenant.dev/account") == Some(&acct) => {
                    kept.push(n.clone())
                }
                Some(_) => return Err(format!("{n} undecided")),
                None => {}
            }
        }
        Ok(kept)
    })
    .await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        landed.iter().all(|n| kept.contains(n)),
        "a pod or RoleBinding landed in a refused namespace: landed in {landed:?}, kept {kept:?}"
    );
}

/// A tenant makes a namespace under a name the platform later declares for another account: the
/// namespace stays the tenant's (Covenant never adopts a namespace it did not create for that
/// Account), the other account's administrator gets nothing in it (the API server's answers), and
/// the other Account says which name conflicts. The conflict withholds only that name: the other
/// account's other namespace is provisioned as usual (its administrator works there, its quota is
/// in force), so a tenant that guesses a name cannot hold up another account's onboarding.
#[tokio::test]
async fn a_squatted_name_declared_later_is_not_handed_to_the_other_account() {
    let t = TestCtx::new("a_squatted_name_declared_later").await;
    let pkg = t.package("spkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let ns = declaring_main(&t, "ns", &pkg).await;
    let (squatter, s_main, as_squatter) =
        (ns.account.clone(), ns.ns.clone(), ns.admin_client().await);
    let name = t.namespace("payments");
    self_made(&t, &as_squatter, &squatter, &name, &s_main).await;
    let uid = Api::<Namespace>::all(t.client.clone())
        .get(&name)
        .await
        .unwrap()
        .metadata
        .uid;

    // The platform declares the same name for another account (with its own namespace too).
    let nd = t
        .tenant("nd")
        .package(&pkg)
        .namespace_names(&[t.namespace("nd-main"), name.clone()])
        .unready()
        .await;
    let (other, o_admin, o_main) = (nd.account, nd.admin, nd.namespaces[0].clone());
    // The other account says why, and stays not Ready (a person must pick another name), with its
    // other namespace listed and the conflicting one not.
    let accounts = Api::<covenant::api::Account>::all(t.client.clone());
    eventually("the other account names the conflict", TIMEOUT, || async {
        let a = accounts.get(&other).await.map_err(|e| e.to_string())?;
        let status = a.status.unwrap_or_default();
        let named = |t: &str, v: &str| {
            status.conditions.iter().any(|c| {
                c.type_ == t
                    && c.status == v
                    && c.reason == "NamespaceConflict"
                    && c.message.contains(&name)
            })
        };
        (named("Ready", "False")
            && named("Stalled", "True")
            && status.namespaces == [o_main.clone()])
        .then_some(())
        .ok_or(format!("{status:?}"))
    })
    .await;
    // Its other namespace is provisioned: its administrator may make pods there, and the package's
    // quota (pods: 4) refuses the fifth.
    assert!(
        covenant_e2e::can(&t.client, &o_admin, &[], "create", "pods", "", &o_main).await,
        "the other account's administrator may create pods in its own {o_main}"
    );
    let quota = Api::<ResourceQuota>::namespaced(t.client.clone(), &o_main);
    eventually("the quota is in force", TIMEOUT, || async {
        let q = quota
            .get("covenant-quota")
            .await
            .map_err(|e| e.to_string())?;
        (fixtures::status_hard(&q).get("pods").map(String::as_str) == Some("4"))
            .then_some(())
            .ok_or(format!("{:?}", q.status))
    })
    .await;
    let as_other = covenant_e2e::impersonate(&o_admin, &[]).await;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(as_other, &o_main);
    for i in 0..4 {
        // Retried: the namespace's default ServiceAccount may not exist yet.
        eventually("the administrator makes a pod", TIMEOUT, || async {
            pods.create(&PostParams::default(), &fixtures::pod(&format!("p{i}")))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    }
    match pods
        .create(&PostParams::default(), &fixtures::pod("p4"))
        .await
    {
        Err(kube::Error::Api(e)) => assert!(
            e.message.contains("exceeded quota") && e.message.contains("covenant-quota"),
            "the fifth pod is refused by the quota: {e:?}"
        ),
        other => panic!("the fifth pod must be refused by the quota: {other:?}"),
    }
    let n = Api::<Namespace>::all(t.client.clone())
        .get(&name)
        .await
        .unwrap();
    assert_eq!(n.metadata.uid, uid, "the same namespace");
    assert_eq!(
        n.labels().get("covenant.dev/account"),
        Some(&squatter),
        "still the squatter's"
    );
    for verb in ["create", "get", "delete"] {
        assert!(
            !covenant_e2e::can(&t.client, &o_admin, &[], verb, "pods", "", &name).await,
            "the other account's administrator may not {verb} pods in {name}"
        );
    }
    assert!(
        !covenant_e2e::can(&t.client, &o_admin, &[], "delete", "namespaces", "", &name).await,
        "the other account's administrator may not delete {name}"
    );
    // Nothing of the other account's landed in it: no quota, policy or binding labelled for it.
    let quotas = Api::<ResourceQuota>::namespaced(t.client.clone(), &name)
        .list(&ListParams::default().labels(&format!("covenant.dev/account={other}")))
        .await
        .unwrap();
    assert!(quotas.items.is_empty(), "{:?}", quotas.items);
    let policies = Api::<NetworkPolicy>::namespaced(t.client.clone(), &name)
        .list(&ListParams::default().labels(&format!("covenant.dev/account={other}")))
        .await
        .unwrap();
    assert!(policies.items.is_empty(), "{:?}", policies.items);
}

/// Egress tricks past the denied ranges and SIP: the world in two halves (each must except every
/// denied IPv4 range), an except that leaves part of a denied range open, the metadata address
/// written as an IPv4-mapped IPv6 address, a SIP range over SCTP by `endPort`, and port 0. Whatever
/// the API server admits, the engine on the live policies still denies a pod cloud metadata and SIP.
#[tokio::test]
async fn egress_tricks_never_reach_metadata_or_sip() {
    let t = TestCtx::new("egress_tricks_never_reach_metadata_or_sip").await;
    let pkg = t.package("epkg");
    t.apply(&fixtures::package(&pkg, json!({ "pods": "4" })))
        .await;
    let ne = declaring_main(&t, "ne", &pkg).await;
    let (_acct, main, as_admin) = (ne.account.clone(), ne.ns.clone(), ne.admin_client().await);
    let all = Api::<Namespace>::all(t.client.clone());
    eventually("the denied ranges are published", TIMEOUT, || async {
        let n = all.get(&main).await.map_err(|e| e.to_string())?;
        n.annotations()
            .contains_key("covenant.dev/denied-cidrs")
            .then_some(())
            .ok_or("not yet".into())
    })
    .await;
    let web = json!([{ "protocol": "TCP", "port": 80 }]);
    let tricks = [
        (
            "halves",
            json!([{ "ipBlock": { "cidr": "0.0.0.0/1" } }, { "ipBlock": { "cidr": "128.0.0.0/1" } }]),
            web.clone(),
        ),
        (
            "partial-except",
            json!([{ "ipBlock": { "cidr": "169.0.0.0/8", "except": ["169.254.0.0/17"] } }]),
            web.clone(),
        ),
        (
            "mapped",
            json!([{ "ipBlock": { "cidr": "::ffff:169.254.169.254/128" } }]),
            web.clone(),
        ),
        (
            "mapped-range",
            json!([{ "ipBlock": { "cidr": "::ffff:0:0/96" } }]),
            web.clone(),
        ),
        (
            "sctp-range",
            json!([{ "namespaceSelector": {} }]),
            json!([{ "protocol": "SCTP", "port": 5000, "endPort": 5070 }]),
        ),
        (
            "port-zero",
            json!([{ "namespaceSelector": {} }]),
            json!([{ "protocol": "UDP", "port": 0 }]),
        ),
    ];
    let nps = Api::<NetworkPolicy>::namespaced(as_admin.clone(), &main);
    let mut admitted = Vec::new();
    for (name, to, ports) in tricks {
        let p: NetworkPolicy = serde_json::from_value(json!({ "metadata": { "name": name },
            "spec": { "podSelector": {}, "policyTypes": ["Egress"], "egress": [{ "to": to, "ports": ports }] } }))
        .unwrap();
        if nps.create(&PostParams::default(), &p).await.is_ok() {
            admitted.push(name);
        }
    }
    // Only the IPv4-mapped range may pass (Covenant's own egress allows ::/0 but the denied IPv6
    // ranges: a mapped address is IPv6 to a policy, and no IPv4 metadata packet matches it).
    assert!(
        admitted.iter().all(|n| n.starts_with("mapped")),
        "admitted: {admitted:?}"
    );
    let ns = all.get(&main).await.unwrap();
    let probe = |name: &str, ip: &str, port: u16, protocol: &'static str| Probe {
        name: name.into(),
        from: Peer::pod(&ns, "10.9.2.1"),
        to: Peer::external(ip),
        port,
        protocol,
    };
    let verdicts = netpol::evaluate(
        &t.client,
        &[
            probe("metadata", "169.254.169.254", 80, "TCP"),
            probe("sip", "203.0.113.7", 5060, "SCTP"),
        ],
    )
    .await
    .expect("the oracle answers");
    for v in &verdicts {
        assert!(!v.allowed, "{v:?}");
    }
}
