//! Hostnames across tenants, by effect: whatever the package says, no Ingress host is held by two
//! tenants, and the first keeps it. Requests are made as each identity a tenant can hold (its
//! administrator, and a ServiceAccount it bound to a Role of its own) and the API server's answers are
//! read back: admitted, or refused with a message that names the host and says another tenant holds
//! it, never which one.

use std::time::Duration;

use covenant::api::Account;
use covenant_e2e::fixtures::{self, ingress};
use covenant_e2e::{TIMEOUT, TestCtx, condition, eventually, impersonate, wait_account_ready};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// What the API server says when an Ingress takes another tenant's host.
const HELD: &str = "is held by another tenant";
/// The condition that reports an Ingress admitted for a host another tenant holds.
const CONDITION: &str = "HostnamesHeld";

/// A tenant of the test: its Account (on the test's package), its one namespace, its administrator.
struct Tenant {
    account: String,
    ns: String,
    admin: String,
}

impl Tenant {
    async fn admin(&self) -> Client {
        impersonate(&self.admin, &[]).await
    }

    /// A ServiceAccount of the tenant's namespace that its administrator bound to a Role of its own
    /// that may write Ingresses: an identity the tenant can mint without the platform.
    async fn service_account(&self) -> Client {
        let admin = self.admin().await;
        Api::<ServiceAccount>::namespaced(admin.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": { "name": "deployer" } })).unwrap(),
            )
            .await
            .expect("the administrator creates a ServiceAccount");
        let manifests = [
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": { "name": "ingress-editor", "namespace": self.ns },
                "rules": [{ "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                            "verbs": ["get", "list", "create", "update", "patch", "delete"] }],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": { "name": "deployer-ingresses", "namespace": self.ns },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ingress-editor" },
                "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": self.ns }],
            }),
        ];
        for m in manifests {
            covenant_e2e::apply_yaml(&admin, &m.to_string())
                .await
                .unwrap_or_else(|e| panic!("the administrator applies {m}: {e:#}"));
        }
        let sa = format!("system:serviceaccount:{}:deployer", self.ns);
        let client = impersonate(
            &sa,
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{}", self.ns),
            ],
        )
        .await;
        // RBAC follows the binding within moments.
        let api: Api<Ingress> = Api::namespaced(client.clone(), &self.ns);
        eventually("the ServiceAccount may list Ingresses", TIMEOUT, || {
            let api = api.clone();
            async move {
                api.list(&Default::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        client
    }
}

/// A package and `names.len()` tenants on it, each Ready with its namespace's `default`
/// ServiceAccount.
async fn tenants(t: &TestCtx, names: &[&str]) -> Vec<Tenant> {
    tenants_with(t, names, "Delete").await
}

/// [`tenants`] with `deletionPolicy` `policy`.
async fn tenants_with(t: &TestCtx, names: &[&str], policy: &str) -> Vec<Tenant> {
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
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
            json!({ "deletionPolicy": policy }),
        ))
        .await;
        out.push(ten);
    }
    for ten in &out {
        wait_account_ready(&t.client, &ten.account).await;
    }
    out
}

async fn create(c: &Client, ns: &str, ing: &Ingress) -> Result<Ingress, kube::Error> {
    covenant_e2e::k8s::create_retrying_quota_conflicts(
        &Api::<Ingress>::namespaced(c.clone(), ns),
        &PostParams::default(),
        ing,
    )
    .await
}

/// `Ok(message)` when `r` is the API server's refusal of a host another tenant holds, naming `host`
/// and not `holder`'s account; else what happened instead.
fn refused_as_held<T>(
    what: &str,
    r: Result<T, kube::Error>,
    host: &str,
    holder: &str,
) -> Result<String, String> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let m = s.message;
            if !m.contains(host) || !m.contains(HELD) {
                return Err(format!(
                    "{what}: refused, but the message does not name host {host} as held by another tenant: {m}"
                ));
            }
            if m.contains(holder) {
                return Err(format!(
                    "{what}: the message names the holder {holder}: {m}"
                ));
            }
            Ok(m)
        }
        Err(e) => Err(format!("{what}: expected 403 Forbidden, got {e}")),
        Ok(_) => Err(format!("{what}: admitted")),
    }
}

/// Waits until `c`'s dry-run create of an Ingress for `host` in `ns` is refused as held (the holder's
/// claim is recorded and in force in the API server); the refusal's message.
async fn wait_refused(c: &Client, ns: &str, host: &str, holder: &str) -> String {
    let api: Api<Ingress> = Api::namespaced(c.clone(), ns);
    let probe = ingress("probe", &[host]);
    eventually(
        &format!("an Ingress for {host} in {ns} is refused as held by another tenant"),
        TIMEOUT,
        || {
            let (api, probe) = (api.clone(), probe.clone());
            async move {
                let r = api
                    .create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &probe,
                    )
                    .await;
                refused_as_held("dry-run create", r, host, holder)
            }
        },
    )
    .await
}

/// Globex holds `shop.<suffix>.globex.example`. Acme's administrator and a ServiceAccount acme bound
/// itself are refused an Ingress for it, for a wildcard over it, and an update of acme's own Ingress
/// to it, each with a message that names the host and says another tenant holds it (not which);
/// globex's own second Ingress for the host is admitted. Once globex deletes its Ingresses, the host
/// is free: acme takes it, and then globex is the one refused.
#[tokio::test]
async fn a_tenant_cannot_take_another_tenants_ingress_host_and_a_released_host_is_free() {
    let t = TestCtx::new("hostnames").await;
    let ts = tenants(&t, &["globex", "acme"]).await;
    let (globex, acme) = (&ts[0], &ts[1]);
    let host = format!("shop.{}.globex.example", t.suffix);
    let wildcard = format!("*.{}.globex.example", t.suffix);
    let as_globex = globex.admin().await;
    let as_acme = acme.admin().await;
    let as_acme_sa = acme.service_account().await;

    create(&as_globex, &globex.ns, &ingress("shop", &[&host]))
        .await
        .expect("globex's Ingress for its host is admitted");
    let m = wait_refused(&as_acme, &acme.ns, &host, &globex.account).await;
    eprintln!("the API server to acme's administrator: {m}");

    let mut wrong = Vec::new();
    let mut check = |r: Result<String, String>| match r {
        Ok(m) => eprintln!("refused: {m}"),
        Err(e) => wrong.push(e),
    };
    check(refused_as_held(
        "acme's administrator creates an Ingress for globex's host",
        create(&as_acme, &acme.ns, &ingress("steal", &[&host])).await,
        &host,
        &globex.account,
    ));
    check(refused_as_held(
        "acme's ServiceAccount creates an Ingress for globex's host",
        create(&as_acme_sa, &acme.ns, &ingress("steal", &[&host])).await,
        &host,
        &globex.account,
    ));
    check(refused_as_held(
        "acme's ServiceAccount creates an Ingress for a wildcard over globex's host",
        create(&as_acme_sa, &acme.ns, &ingress("wild", &[&wildcard])).await,
        &wildcard,
        &globex.account,
    ));
    // An Ingress of acme's own, then updated to globex's host (beside its own), by each identity.
    let own = format!("www.{}.acme.example", t.suffix);
    let mine = create(&as_acme, &acme.ns, &ingress("www", &[&own]))
        .await
        .expect("acme's Ingress for a host nobody holds is admitted");
    for (who, c) in [("administrator", &as_acme), ("ServiceAccount", &as_acme_sa)] {
        let mut changed = mine.clone();
        changed.spec = ingress("www", &[&own, &host]).spec;
        check(refused_as_held(
            &format!("acme's {who} updates its own Ingress to globex's host"),
            Api::<Ingress>::namespaced(c.clone(), &acme.ns)
                .replace("www", &PostParams::default(), &changed)
                .await,
            &host,
            &globex.account,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    create(&as_globex, &globex.ns, &ingress("shop-again", &[&host]))
        .await
        .expect("globex's own second Ingress for its host is admitted");
    let still: Ingress = Api::namespaced(t.client.clone(), &acme.ns)
        .get("www")
        .await
        .expect("acme's Ingress is there");
    assert_eq!(
        covenant::controller::hostnames::hosts_of(&still),
        std::slice::from_ref(&own),
        "the refused update changed nothing"
    );

    // Released: globex deletes its Ingresses; acme may take the host, and then globex is refused.
    for name in ["shop", "shop-again"] {
        Api::<Ingress>::namespaced(as_globex.clone(), &globex.ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("globex deletes its Ingress");
    }
    let api: Api<Ingress> = Api::namespaced(as_acme.clone(), &acme.ns);
    let take = ingress("shop", &[&host]);
    eventually("acme may take the released host", TIMEOUT, || {
        let (api, take) = (api.clone(), take.clone());
        async move {
            api.create(&PostParams::default(), &take)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let m = wait_refused(&as_globex, &globex.ns, &host, &acme.account).await;
    eprintln!("the API server to globex's administrator, after acme took the host: {m}");
}

/// Two tenants create an Ingress for the same new host at the same instant, round after round. The
/// API server may admit both only inside the window before the first claim is recorded; then the
/// operator settles it: one keeps the host, the other is reported on its Account (HostnamesHeld=False
/// naming its own Ingress and host, not the holder) and its later Ingresses for the host are refused.
/// Never are both admitted and neither reported.
#[tokio::test]
async fn two_tenants_racing_for_one_host_never_both_hold_it() {
    const ROUNDS: usize = 16;
    let t = TestCtx::new("hostnames-race").await;
    let ts = tenants(&t, &["red", "blue"]).await;
    let clients = [ts[0].admin().await, ts[1].admin().await];
    let accounts: Api<Account> = Api::all(t.client.clone());
    let (mut refused, mut reported) = (0, 0);
    for round in 0..ROUNDS {
        if race_one_round(&ts, &clients, &accounts, &t.suffix, round).await {
            refused += 1;
        } else {
            reported += 1;
        }
    }
    eprintln!(
        "{ROUNDS} rounds: {refused} settled by the API server's refusal, {reported} admitted in the window and reported"
    );
    assert_eq!(refused + reported, ROUNDS);
    // Once the losers' Ingresses are gone, nothing is reported any more.
    for ten in &ts {
        eventually(
            &format!("{} reports no lost host", ten.account),
            TIMEOUT,
            || {
                let accounts = accounts.clone();
                async move {
                    let a = accounts
                        .get(&ten.account)
                        .await
                        .map_err(|e| e.to_string())?;
                    match condition(&a, CONDITION) {
                        Some(c) if c.status == "False" => Err(c.message.clone()),
                        _ => Ok(()),
                    }
                }
            },
        )
        .await;
    }
}

/// One round of the race for the host `r<round>.<suffix>.race.example`: both tenants create an
/// Ingress for it (at once, or one up to 1.5 s later); exactly one holds it, the other's create
/// refused as held (returns true) or admitted inside the window and reported (returns false); the
/// loser's next Ingress for it is refused; both delete what they made.
async fn race_one_round(
    ts: &[Tenant],
    clients: &[Client; 2],
    accounts: &Api<Account>,
    suffix: &str,
    round: usize,
) -> bool {
    let host = format!("r{round}.{suffix}.race.example");
    let name = format!("race-{round}");
    let ing = ingress(&name, &[&host]);
    // At the same instant in half the rounds; in the others one tenant follows by up to 1.5 s
    // (either one), across the window in which the first claim is not yet recorded.
    let lag = Duration::from_millis(if round.is_multiple_of(2) {
        0
    } else {
        300 * (round as u64 / 2 % 6)
    });
    let (first, second) = if round % 4 < 2 { (0, 1) } else { (1, 0) };
    let (a, b) = tokio::join!(create(&clients[first], &ts[first].ns, &ing), async {
        tokio::time::sleep(lag).await;
        create(&clients[second], &ts[second].ns, &ing).await
    });
    let (a, b) = if first == 0 { (a, b) } else { (b, a) };
    let results = [a, b];
    let admitted: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
    let (winner, loser) = match admitted.as_slice() {
        [only] => {
            let other = 1 - only;
            let refusal = match &results[other] {
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains(&host) && s.message.contains(HELD) =>
                {
                    s.message.clone()
                }
                e => panic!(
                    "round {round}: {} was neither admitted nor refused as held: {e:?}",
                    ts[other].account
                ),
            };
            assert!(
                !refusal.contains(&ts[*only].account),
                "round {round}: the refusal names the holder: {refusal}"
            );
            (*only, other)
        }
        [_, _] => {
            // Both admitted inside the window: exactly one is reported, naming its own Ingress.
            let needle = format!("Ingress {{}}/{name}: host {host}");
            let what = format!("one of the tenants is reported as the loser of {host}");
            let loser = eventually(&what, TIMEOUT, || async {
                let mut shown = Vec::new();
                for (i, ten) in ts.iter().enumerate() {
                    let a = accounts
                        .get(&ten.account)
                        .await
                        .map_err(|e| e.to_string())?;
                    let says = condition(&a, CONDITION).is_some_and(|c| {
                        c.status == "False"
                            && c.message.contains(&needle.replace("{}", &ten.ns))
                    });
                    if says {
                        shown.push(i);
                    }
                }
                match shown.as_slice() {
                    [one] => Ok(*one),
                    [_, _] => {
                        panic!("round {round}: both tenants are reported as losers of {host}")
                    }
                    _ => Err(format!(
                        "round {round}: both Ingresses for {host} were admitted and neither tenant is reported"
                    )),
                }
            })
            .await;
            let a = accounts.get(&ts[loser].account).await.expect("the Account");
            let msg = condition(&a, CONDITION)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            assert!(
                !msg.contains(&ts[1 - loser].account),
                "round {round}: the report names the holder: {msg}"
            );
            (1 - loser, loser)
        }
        [] => panic!(
            "round {round}: both refused although nobody held {host}: {:?} / {:?}",
            results[0].as_ref().err(),
            results[1].as_ref().err()
        ),
        _ => unreachable!(),
    };
    eprintln!(
        "round {round}: second create {lag:?} after the first: {} keeps {host}, {} {}",
        ts[winner].account,
        ts[loser].account,
        if admitted.len() == 1 {
            "refused"
        } else {
            "admitted and reported"
        }
    );
    // By effect: the host is the winner's; the loser's next Ingress for it is refused.
    wait_refused(&clients[loser], &ts[loser].ns, &host, &ts[winner].account).await;
    for (i, ten) in ts.iter().enumerate() {
        if admitted.contains(&i) {
            Api::<Ingress>::namespaced(clients[i].clone(), &ten.ns)
                .delete(&name, &DeleteParams::default())
                .await
                .expect("the tenant deletes its Ingress");
        }
    }
    admitted.len() == 1
}

/// A tenant's hosts stay held while its namespace is retained after its Account is deleted (its
/// Ingresses are still there, and a shared ingress controller still routes to them), and are free
/// once the namespace goes.
#[tokio::test]
async fn a_retained_tenants_hosts_stay_held_until_its_namespace_goes() {
    let t = TestCtx::new("hostnames-retained").await;
    let ts = tenants_with(&t, &["gone", "next"], "Retain").await;
    let (gone, next) = (&ts[0], &ts[1]);
    let host = format!("app.{}.gone.example", t.suffix);
    let as_next = next.admin().await;
    create(&gone.admin().await, &gone.ns, &ingress("app", &[&host]))
        .await
        .expect("the Ingress for a free host is admitted");
    wait_refused(&as_next, &next.ns, &host, &gone.account).await;

    Api::<Account>::all(t.client.clone())
        .delete(&gone.account, &DeleteParams::default())
        .await
        .expect("delete the Account (Retain)");
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    covenant_e2e::wait_for(&namespaces, &gone.ns, "be retained", TIMEOUT, |n| {
        n.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("covenant.dev/retained-until"))
    })
    .await;
    // The operator has seen the namespace change (and the Account go) and still records the claim.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = wait_refused(&as_next, &next.ns, &host, &gone.account).await;
    eprintln!("while retained: {m}");

    // The end of retention (here the platform deletes the namespace early) frees the host.
    namespaces
        .delete(&gone.ns, &DeleteParams::default())
        .await
        .expect("delete the retained namespace");
    let api: Api<Ingress> = Api::namespaced(as_next.clone(), &next.ns);
    let take = ingress("app", &[&host]);
    eventually(
        "the host is free once the retained namespace is gone",
        Duration::from_secs(90),
        || {
            let (api, take) = (api.clone(), take.clone());
            async move {
                api.create(&PostParams::default(), &take)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
}
