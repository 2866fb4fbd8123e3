//! A tenant policy admitted under one account context is judged again when that context changes (SPEC
//! "Network, by effect": a tenant policy never opens SIP without telephony): once the platform
//! withdraws telephony, an egress policy to SIP that was admitted with it is neutralised (it selects
//! no pod, nothing is deleted) and reported on the Account; telephony restored, it is restored exactly
//! as written. Likewise for a range the package denies after an egress policy to it was admitted.
//! Shown by the upstream NetworkPolicy engine (cyclonus' matcher) on every live policy.

use covenant_e2e::fixtures;
use covenant_e2e::k8s::{condition, eventually, impersonate, wait_account_ready};
use covenant_e2e::netpol::{self, Peer, Probe};
use covenant_e2e::{TIMEOUT, TestCtx};
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const NARROWED: &str = "covenant.dev/narrowed";

/// What a narrowed pod probes (a pod labelled covenant.dev/narrowed gets only what its tenant's own
/// policies allow): its app label and IP, and the external address, port and protocol it reaches.
struct Egress {
    app: &'static str,
    pod_ip: &'static str,
    to: &'static str,
    port: u16,
    protocol: &'static str,
}

/// The narrowed `app=voip` pod reaching an external SIP server on UDP 5060.
const SIP: Egress = Egress {
    app: "voip",
    pod_ip: "10.244.1.20",
    to: "93.184.216.34",
    port: 5060,
    protocol: "UDP",
};

/// The narrowed `app=web` pod reaching 203.0.113.10 on TCP 443.
const WEB: Egress = Egress {
    app: "web",
    pod_ip: "10.244.1.21",
    to: "203.0.113.10",
    port: 443,
    protocol: "TCP",
};

/// Whether the engine lets the pod `e` describes, in `ns`, reach its destination.
async fn egress_allowed(c: &Client, ns: &str, e: &Egress) -> Result<bool, String> {
    let n = Api::<Namespace>::all(c.clone())
        .get(ns)
        .await
        .map_err(|e| e.to_string())?;
    let mut from = Peer::pod(&n, e.pod_ip);
    from.pod_labels = fixtures::map(&[("app", e.app), (NARROWED, "true")]);
    let probe = Probe {
        name: format!("{} → {} {} {}", e.app, e.to, e.protocol, e.port),
        from,
        to: Peer::external(e.to),
        port: e.port,
        protocol: e.protocol,
    };
    let v = netpol::evaluate(c, &[probe])
        .await
        .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
    Ok(v[0].allowed)
}

/// Waits until the engine's verdict on `e` from `ns` is `allowed`.
async fn expect_egress(c: &Client, ns: &str, e: &Egress, allowed: bool) {
    eventually(
        &format!(
            "the engine says {} egress to {} {} {} is {allowed} from {ns}",
            e.app, e.to, e.protocol, e.port
        ),
        TIMEOUT,
        || async {
            match egress_allowed(c, ns, e).await? {
                a if a == allowed => Ok(()),
                a => Err(format!("the engine says {a}")),
            }
        },
    )
    .await;
}

/// Waits until the tenant policy `name` of `ns`, as `created`, is neutralised and reported: the same
/// object is kept (never deleted) with its egress rules as written (only the selector changes), a
/// Warning Event on the Account names it and `why`, and the Account's condition names it. Returns it.
async fn neutralised_and_reported(
    t: &TestCtx,
    acct: &str,
    ns: &str,
    name: &str,
    created: &NetworkPolicy,
    why: &str,
) -> NetworkPolicy {
    let spec = |p: &NetworkPolicy| serde_json::to_value(&p.spec).unwrap();
    let as_written = spec(created);
    let now = Api::<NetworkPolicy>::namespaced(t.client.clone(), ns)
        .get(name)
        .await
        .expect("the policy is not deleted");
    assert_eq!(
        now.metadata.uid, created.metadata.uid,
        "the very policy is kept"
    );
    assert_eq!(
        spec(&now)["egress"],
        as_written["egress"],
        "only the selector is neutralised"
    );
    eventually(
        "the Account is told which policy was neutralised and why",
        TIMEOUT,
        || async {
            let evs = Api::<Event>::all(t.client.clone())
                .list(&ListParams::default().fields(&format!("involvedObject.name={acct}")))
                .await
                .map_err(|e| e.to_string())?
                .items;
            evs.iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("TenantNetworkPolicyNeutralised")
                        && e.involved_object.kind.as_deref() == Some("Account")
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.contains(&format!("{ns}/{name}")) && m.contains(why))
                })
                .then_some(())
                .ok_or_else(|| format!("{:?}", evs.iter().map(|e| &e.message).collect::<Vec<_>>()))
        },
    )
    .await;
    eventually(
        "the Account's condition names the neutralised policy",
        TIMEOUT,
        || async {
            let a = Api::<covenant::api::Account>::all(t.client.clone())
                .get(acct)
                .await
                .map_err(|e| e.to_string())?;
            let c = condition(&a, "TenantNetworkPoliciesAdmitted")
                .ok_or_else(|| format!("no condition: {:?}", a.status))?;
            (c.status == "False" && c.message.contains(&format!("{ns}/{name}")))
                .then_some(())
                .ok_or_else(|| format!("{c:?}"))
        },
    )
    .await;
    now
}

async fn set_telephony(t: &TestCtx, account: &str, on: bool) {
    Api::<covenant::api::Account>::all(t.client.clone())
        .patch(
            account,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "network": { "telephony": on } } })),
        )
        .await
        .unwrap_or_else(|e| panic!("set telephony {on} on {account}: {e}"));
}

#[tokio::test]
async fn withdrawn_telephony_neutralises_an_admitted_sip_policy_and_restores_it() {
    let t = TestCtx::new("rejudge").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("voip");
    let ns = t.name("voip-0");
    let admin_name = t.name("voip-admin");
    t.apply(&fixtures::account(
        &acct,
        Some(&pkg),
        &[&ns],
        &[&admin_name],
        json!({ "network": { "telephony": true } }),
    ))
    .await;
    wait_account_ready(&t.client, &acct).await;
    let admin = impersonate(&admin_name, &[]).await;

    // Without any tenant policy the narrowed pod reaches nothing.
    expect_egress(&t.client, &ns, &SIP, false).await;
    let written: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": { "name": "sip-out" },
        "spec": {
            "podSelector": { "matchLabels": { "app": "voip" } },
            "policyTypes": ["Egress"],
            "egress": [{ "to": [{ "ipBlock": { "cidr": "93.184.216.34/32" } }],
                         "ports": [{ "protocol": "UDP", "port": 5060 }] }],
        },
    }))
    .unwrap();
    let api = Api::<NetworkPolicy>::namespaced(admin.clone(), &ns);
    let created = api
        .create(&PostParams::default(), &written)
        .await
        .expect("with telephony the administrator's SIP policy is admitted");
    let spec = |p: &NetworkPolicy| serde_json::to_value(&p.spec).unwrap();
    let as_written = spec(&created);
    expect_egress(&t.client, &ns, &SIP, true).await;

    // Telephony withdrawn: the same policy would now be refused, so it opens SIP no more.
    set_telephony(&t, &acct, false).await;
    expect_egress(&t.client, &ns, &SIP, false).await;
    let now = neutralised_and_reported(&t, &acct, &ns, "sip-out", &created, "SIP").await;
    // The tenant cannot restore it by editing (a neutralised policy cannot be updated).
    let mut edit = now.clone();
    edit.metadata.annotations = None;
    edit.metadata.managed_fields = None;
    if let Some(s) = edit.spec.as_mut() {
        s.pod_selector =
            serde_json::from_value(json!({ "matchLabels": { "app": "voip" } })).unwrap();
    }
    assert!(
        api.replace("sip-out", &PostParams::default(), &edit)
            .await
            .is_err(),
        "the administrator cannot un-neutralise the policy"
    );

    // Telephony restored: the policy reads back exactly as written and SIP is allowed again.
    set_telephony(&t, &acct, true).await;
    expect_egress(&t.client, &ns, &SIP, true).await;
    eventually("the policy reads back as written", TIMEOUT, || async {
        let p = Api::<NetworkPolicy>::namespaced(t.client.clone(), &ns)
            .get("sip-out")
            .await
            .map_err(|e| e.to_string())?;
        let annotations = p.annotations().clone();
        if spec(&p) == as_written && annotations.keys().all(|k| !k.starts_with("covenant.dev/")) {
            Ok(())
        } else {
            Err(format!("{:?} {annotations:?}", p.spec))
        }
    })
    .await;
    eventually("the Account's condition clears", TIMEOUT, || async {
        let a = Api::<covenant::api::Account>::all(t.client.clone())
            .get(&acct)
            .await
            .map_err(|e| e.to_string())?;
        match condition(&a, "TenantNetworkPoliciesAdmitted") {
            Some(c) if c.status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// A range the package denies after a tenant's egress policy to it was admitted: the policy would
/// now be refused (covenant.dev/denied-cidrs on the namespace names the range), so it is neutralised
/// (it selects no pod, nothing is deleted) and reported on the Account; once the package no longer
/// denies the range, it is restored exactly as written.
#[tokio::test]
async fn a_range_the_package_denies_later_neutralises_an_admitted_egress_policy_and_restores_it() {
    let t = TestCtx::new("rejudge-denied").await;
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let acct = t.account("web");
    let ns = t.name("web-0");
    let admin_name = t.name("web-admin");
    t.apply(&fixtures::account(
        &acct,
        Some(&pkg),
        &[&ns],
        &[&admin_name],
        json!({}),
    ))
    .await;
    wait_account_ready(&t.client, &acct).await;
    let admin = impersonate(&admin_name, &[]).await;
    let annotation = |denied: bool| {
        let (c, ns) = (t.client.clone(), ns.clone());
        async move {
            let n = Api::<Namespace>::all(c)
                .get(&ns)
                .await
                .map_err(|e| e.to_string())?;
            let a = n
                .annotations()
                .get("covenant.dev/denied-cidrs")
                .cloned()
                .unwrap_or_default();
            (!a.is_empty() && a.contains("203.0.113.0/24") == denied)
                .then_some(())
                .ok_or(format!("covenant.dev/denied-cidrs {a:?}"))
        }
    };
    eventually("the denied ranges are published", TIMEOUT, || {
        annotation(false)
    })
    .await;

    // Without any tenant policy the narrowed pod reaches nothing.
    expect_egress(&t.client, &ns, &WEB, false).await;
    let written: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": { "name": "web-out" },
        "spec": {
            "podSelector": { "matchLabels": { "app": "web" } },
            "policyTypes": ["Egress"],
            "egress": [{ "to": [{ "ipBlock": { "cidr": "203.0.113.10/32" } }],
                         "ports": [{ "protocol": "TCP", "port": 443 }] }],
        },
    }))
    .unwrap();
    let api = Api::<NetworkPolicy>::namespaced(admin.clone(), &ns);
    let created = api
        .create(&PostParams::default(), &written)
        .await
        .expect("a range the package does not deny is admitted");
    let spec = |p: &NetworkPolicy| serde_json::to_value(&p.spec).unwrap();
    let as_written = spec(&created);
    expect_egress(&t.client, &ns, &WEB, true).await;

    // The package denies the range: the same policy would now be refused, so it opens it no more.
    let packages = Api::<covenant::api::SupportPackage>::all(t.client.clone());
    let set_denied = |denied: serde_json::Value| {
        let (packages, pkg) = (packages.clone(), pkg.clone());
        async move {
            packages
                .patch(
                    &pkg,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "network": { "deniedCidrs": denied } } })),
                )
                .await
                .unwrap_or_else(|e| panic!("set deniedCidrs on {pkg}: {e}"));
        }
    };
    set_denied(json!(["203.0.113.0/24"])).await;
    eventually("the namespace names the denied range", TIMEOUT, || {
        annotation(true)
    })
    .await;
    expect_egress(&t.client, &ns, &WEB, false).await;
    neutralised_and_reported(&t, &acct, &ns, "web-out", &created, "203.0.113.0/24").await;

    // The denial removed: the policy reads back exactly as written and the range is reached again.
    set_denied(serde_json::Value::Null).await;
    eventually("the namespace no longer names the range", TIMEOUT, || {
        annotation(false)
    })
    .await;
    expect_egress(&t.client, &ns, &WEB, true).await;
    eventually("the policy reads back as written", TIMEOUT, || async {
        let p = Api::<NetworkPolicy>::namespaced(t.client.clone(), &ns)
            .get("web-out")
            .await
            .map_err(|e| e.to_string())?;
        let annotations = p.annotations().clone();
        if spec(&p) == as_written && annotations.keys().all(|k| !k.starts_with("covenant.dev/")) {
            Ok(())
        } else {
            Err(format!("{:?} {annotations:?}", p.spec))
        }
    })
    .await;
    eventually("the Account's condition clears", TIMEOUT, || async {
        let a = Api::<covenant::api::Account>::all(t.client.clone())
            .get(&acct)
            .await
            .map_err(|e| e.to_string())?;
        match condition(&a, "TenantNetworkPoliciesAdmitted") {
            Some(c) if c.status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
