//! Hostnames across tenants, attacked as a hostile tenant would: hosts spelled to slip past the
//! claims (case, trailing dot, port, IP, non-ASCII, bare wildcard), a default backend against a held
//! catch-all, and a host long enough that its record cannot be spelled as a ConfigMap key. Each is a
//! real request as the tenant's administrator; the API server's answer is what is checked.

use std::time::{Duration, Instant};

use covenant_e2e::fixtures::{self, ingress};
use covenant_e2e::{TIMEOUT, TestCtx, eventually, impersonate, wait_account_ready};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

/// What the API server says when an Ingress takes another tenant's host.
const HELD: &str = "is held by another tenant";

struct Tenant {
    account: String,
    ns: String,
    admin: String,
}

/// A package and one Ready tenant per name, each with one namespace and one administrator.
async fn tenants(t: &TestCtx, names: &[&str]) -> Vec<Tenant> {
    tenants_with_quota(t, names, fixtures::default_quota()).await
}

/// [`tenants`] on a package with `quota`.
async fn tenants_with_quota(t: &TestCtx, names: &[&str], quota: Value) -> Vec<Tenant> {
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, quota)).await;
    let mut out = Vec::new();
    for base in names {
        let ten = Tenant {
            account: t.account(base),
            ns: t.name(base),
            admin: t.name(&format!("{base}-admin")),
        };
        t.apply(&fixtures::account(
            &ten.account,
            Some(&pkg),
            &[&ten.ns],
            &[&ten.admin],
            json!({ "deletionPolicy": "Delete" }),
        ))
        .await;
        out.push(ten);
    }
    for ten in &out {
        wait_account_ready(&t.client, &ten.account).await;
    }
    out
}

async fn create(
    c: &Client,
    ns: &str,
    ing: &Ingress,
    dry_run: bool,
) -> Result<Ingress, kube::Error> {
    covenant_e2e::k8s::create_retrying_quota_conflicts(
        &Api::<Ingress>::namespaced(c.clone(), ns),
        &PostParams {
            dry_run,
            ..Default::default()
        },
        ing,
    )
    .await
}

/// `Ok(message)` when `r` is the API server's refusal of a host another tenant holds (never naming
/// `holder`); else what happened.
fn refused_as_held<T>(r: Result<T, kube::Error>, holder: &str) -> Result<String, String> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(HELD) => {
            if s.message.contains(holder) {
                Err(format!(
                    "the refusal names the holder {holder}: {}",
                    s.message
                ))
            } else {
                Ok(s.message)
            }
        }
        Err(e) => Err(format!("expected 403 (held by another tenant), got {e}")),
        Ok(_) => Err("admitted".into()),
    }
}

/// Waits until a dry-run Ingress for `host` in `ns` is refused as held; how long it took.
async fn wait_refused(c: &Client, ns: &str, host: &str, holder: &str) -> Duration {
    let start = Instant::now();
    let probe = ingress("probe", &[host]);
    eventually(
        &format!("an Ingress for {host} in {ns} is refused as held by another tenant"),
        TIMEOUT,
        || {
            let (c, probe) = (c.clone(), probe.clone());
            async move { refused_as_held(create(&c, ns, &probe, true).await, holder) }
        },
    )
    .await;
    start.elapsed()
}

/// A concrete host of exactly `len` characters under `domain`, its first label one character long (so
/// the domain above it is as long as a host allows).
fn long_host(len: usize, domain: &str) -> String {
    // "a." + middle + "." + domain, the middle in labels of at most 61 characters.
    let m = len - 2 - 1 - domain.len();
    let middle: String = (0..m)
        .map(|i| if i % 61 == 60 && i != m - 1 { '.' } else { 'x' })
        .collect();
    let h = format!("a.{middle}.{domain}");
    assert_eq!(h.len(), len, "{h}");
    h
}

/// Acme holds its host. Globex spells it in every way the API server might read as another host — in
/// capitals, with a trailing dot, with a port, as punycode's raw Unicode form, behind a bare `*` — or
/// claims a wildcard over it: each is refused (422 for what is no valid host at all, 403 for the
/// wildcard). Acme holds the catch-all with a rule without host; globex's Ingress with only a default
/// backend, and one with a rule without host, are refused as held.
#[tokio::test]
async fn a_host_respelled_or_behind_a_wildcard_or_a_default_backend_is_not_another_host() {
    let t = TestCtx::new("attacks-spelling").await;
    let ts = tenants(&t, &["acme", "globex"]).await;
    let (acme, globex) = (&ts[0], &ts[1]);
    let as_acme = impersonate(&acme.admin, &[]).await;
    let as_globex = impersonate(&globex.admin, &[]).await;
    let domain = format!("{}.acme.example", t.suffix);
    let host = format!("shop.{domain}");
    create(&as_acme, &acme.ns, &ingress("shop", &[&host, ""]), false)
        .await
        .expect("acme's Ingress for its host and the catch-all is admitted");
    wait_refused(&as_globex, &globex.ns, &host, &acme.account).await;

    let mut wrong = Vec::new();
    let respelled = [
        host.to_uppercase(),
        format!("Shop.{domain}"),
        format!("{host}."),
        format!("{host}:443"),
        format!("shöp.{domain}"),
        "*".to_string(),
        "127.0.0.1".to_string(),
        format!("shop..{domain}"),
    ];
    for h in &respelled {
        match create(&as_globex, &globex.ns, &ingress("respelled", &[h]), false).await {
            Err(kube::Error::Api(s)) if s.code == 422 => {
                eprintln!("{h:?}: not a valid host: {}", s.message)
            }
            other => wrong.push(format!("{h:?}: expected 422 Invalid, got {other:?}")),
        }
    }
    for (what, ing) in [
        (
            "a wildcard over acme's host",
            ingress("wild", &[&format!("*.{domain}")]),
        ),
        ("a rule without host", ingress("any", &[""])),
        (
            "a default backend only",
            serde_json::from_value(json!({ "metadata": { "name": "default" }, "spec": {
                "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } } }))
            .unwrap(),
        ),
    ] {
        match refused_as_held(
            create(&as_globex, &globex.ns, &ing, false).await,
            &acme.account,
        ) {
            Ok(m) => eprintln!("{what}: refused: {m}"),
            Err(e) => wrong.push(format!("{what}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A host of 252 characters is a valid Ingress host, but the key recording "a host under this
/// domain is held" (`_in.` and the domain) would be 254 characters, longer than a ConfigMap key may
/// be. Acme's Ingress for such a host, beside one for an ordinary host of its own, never keeps the
/// ordinary host from being recorded (globex is refused it), and never delays another tenant's
/// records: globex's new host is held against acme within moments.
#[tokio::test]
async fn a_host_too_long_for_a_claims_key_never_leaves_a_namespace_unrecorded_nor_delays_others() {
    let t = TestCtx::new("attacks-long").await;
    let ts = tenants(&t, &["acme", "globex"]).await;
    let (acme, globex) = (&ts[0], &ts[1]);
    let as_acme = impersonate(&acme.admin, &[]).await;
    let as_globex = impersonate(&globex.admin, &[]).await;
    let long = long_host(252, &format!("{}.acme.example", t.suffix));
    create(&as_acme, &acme.ns, &ingress("long", &[&long]), false)
        .await
        .expect("a 252-character host is a valid Ingress host");
    let mine = format!("mine.{}.acme.example", t.suffix);
    create(&as_acme, &acme.ns, &ingress("mine", &[&mine]), false)
        .await
        .expect("acme's ordinary host is admitted");
    let took = wait_refused(&as_globex, &globex.ns, &mine, &acme.account).await;
    eprintln!("acme's ordinary host held against globex after {took:?}");
    let took = wait_refused(&as_globex, &globex.ns, &long, &acme.account).await;
    eprintln!("acme's long host held against globex after {took:?}");

    // Three rounds: globex claims a new host while acme's long host is there; its claim is recorded
    // (acme's probes are refused as held: how long that took is printed, not asserted), and then
    // acme's real Ingress for it is refused.
    for round in 0..3 {
        let new = format!("new{round}.{}.globex.example", t.suffix);
        create(
            &as_globex,
            &globex.ns,
            &ingress(&format!("new{round}"), &[&new]),
            false,
        )
        .await
        .expect("globex's new host is admitted");
        let took = wait_refused(&as_acme, &acme.ns, &new, &globex.account).await;
        eprintln!("round {round}: globex's new host held against acme after {took:?}");
        let r = create(
            &as_acme,
            &acme.ns,
            &ingress(&format!("steal{round}"), &[&new]),
            false,
        )
        .await;
        if let Err(e) = refused_as_held(r, &globex.account) {
            panic!(
                "round {round}: acme's Ingress for globex's new host {new}, once it is held: {e}"
            );
        }
    }
}

/// A package whose quota lets a namespace hold 80 Ingresses (above the default bound): acme writes 70
/// Ingresses of 32 hosts of 251 characters each (every host under a domain of its own), whose record
/// the API server refuses (too large a request) every time the operator writes it. That refusal is
/// acme's alone: globex's new hosts are still held against acme within moments (three rounds, acme
/// trying each 2 s after globex claimed it).
#[tokio::test]
async fn a_namespace_whose_claims_overflow_a_configmap_never_delays_another_tenants_claims() {
    let t = TestCtx::new("attacks-flood").await;
    let mut quota = fixtures::default_quota();
    quota["count/ingresses.networking.k8s.io"] = json!("80");
    let ts = tenants_with_quota(&t, &["acme", "globex"], quota).await;
    let (acme, globex) = (&ts[0], &ts[1]);
    let as_acme = impersonate(&acme.admin, &[]).await;
    let as_globex = impersonate(&globex.admin, &[]).await;
    let started = Instant::now();
    for i in 0..70 {
        let hosts: Vec<String> = (0..32)
            .map(|j| long_host(251, &format!("d{i}-{j}.{}.acme.example", t.suffix)))
            .collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        create(
            &as_acme,
            &acme.ns,
            &ingress(&format!("flood{i}"), &hosts),
            false,
        )
        .await
        .expect("acme's Ingress of 32 long hosts is admitted");
    }
    eprintln!(
        "70 Ingresses of 32 long hosts written in {:?}",
        started.elapsed()
    );
    // Acme's record is refused by now (the operator decided after the last write).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for round in 0..3 {
        let new = format!("new{round}.{}.globex.example", t.suffix);
        create(
            &as_globex,
            &globex.ns,
            &ingress(&format!("new{round}"), &[&new]),
            false,
        )
        .await
        .expect("globex's new host is admitted");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = create(
            &as_acme,
            &acme.ns,
            &ingress(&format!("steal{round}"), &[&new]),
            false,
        )
        .await;
        if let Err(e) = refused_as_held(r, &globex.account) {
            panic!(
                "round {round}: acme's Ingress for globex's new host {new}, once it is held: {e}"
            );
        }
    }
}

/// Acme fills its namespace to the default bound of Ingresses (what quota `covenant-bounds` allows),
/// each with 32 hosts of 251 characters under domains of their own: the largest record a tenant can
/// make the operator write without the platform raising a quota. The record is still accepted: the
/// last host acme claimed is refused to globex, and the next Ingress is refused by the quota.
#[tokio::test]
async fn a_tenant_filling_its_namespace_to_the_ingress_bound_with_maximal_hosts_stays_recorded() {
    let t = TestCtx::new("attacks-bound").await;
    let ts = tenants(&t, &["acme", "globex"]).await;
    let (acme, globex) = (&ts[0], &ts[1]);
    let as_acme = impersonate(&acme.admin, &[]).await;
    let as_globex = impersonate(&globex.admin, &[]).await;
    let mut last = String::new();
    let mut made = 0;
    loop {
        let hosts: Vec<String> = (0..32)
            .map(|j| long_host(251, &format!("d{made}-{j}.{}.acme.example", t.suffix)))
            .collect();
        let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        match create(
            &as_acme,
            &acme.ns,
            &ingress(&format!("fill{made}"), &refs),
            false,
        )
        .await
        {
            Ok(_) => {
                made += 1;
                last = hosts[31].clone();
            }
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {
                break;
            }
            Err(e) => panic!("acme's Ingress {made}: {e}"),
        }
        assert!(made <= 200, "200 Ingresses admitted: no bound");
    }
    eprintln!(
        "{made} Ingresses of 32 hosts of 251 characters admitted, the next refused by the quota"
    );
    let took = wait_refused(&as_globex, &globex.ns, &last, &acme.account).await;
    eprintln!("acme's last host held against globex after {took:?}");
}
