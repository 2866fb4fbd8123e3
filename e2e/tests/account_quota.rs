//! The account-wide quota (`accountQuota`) end to end, with the operator running: what the API server
//! admits across all of an account's namespaces, read back from the objects that exist and from every
//! ResourceQuota's `status.used`.
//!
//! Each namespace holds a share (`covenant-account-share`) of the cap; the operator moves room to the
//! namespaces that use it. The API server enforces each share, so the total it admits is never above
//! the cap, however many namespaces race.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use covenant::api::Account;
use covenant_e2e::fixtures::{self, account, forbidden, pod};
use covenant_e2e::{TIMEOUT, TestCtx, eventually, impersonate, wait_account_ready};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const SHARE: &str = "covenant-account-share";

fn number(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i64 {
    q.and_then(|q| q.0.parse().ok()).unwrap_or(0)
}

/// Per namespace: the share's (spec.hard, status.hard, status.used) of `resource`.
async fn shares(client: &Client, namespaces: &[String], resource: &str) -> Vec<(i64, i64, i64)> {
    // One list: every share as of one resourceVersion. A GET per namespace, one after another, could
    // pair one share read before the room moved with another read after it, and add up to more than
    // admission ever enforced at any one moment.
    let listed = Api::<ResourceQuota>::all(client.clone())
        .list(&ListParams::default().fields(&format!("metadata.name={SHARE}")))
        .await
        .expect("list the shares");
    let mut out = Vec::new();
    for ns in namespaces {
        let q = listed
            .items
            .iter()
            .find(|q| q.metadata.namespace.as_deref() == Some(ns.as_str()))
            .expect("the share exists");
        let spec = q.spec.as_ref().and_then(|s| s.hard.as_ref());
        let st = q.status.as_ref();
        out.push((
            number(spec.and_then(|h| h.get(resource))),
            number(
                st.and_then(|s| s.hard.as_ref())
                    .and_then(|h| h.get(resource)),
            ),
            number(
                st.and_then(|s| s.used.as_ref())
                    .and_then(|h| h.get(resource)),
            ),
        ));
    }
    out
}

/// How many objects of kind K exist across `namespaces` (listed, not counted by a quota): one list
/// of the cluster's, as of one resourceVersion, so that a pod deleted in one namespace and one
/// created in another are never both counted.
async fn count<K>(client: &Client, namespaces: &[String]) -> usize
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|o| {
            o.meta()
                .namespace
                .as_ref()
                .is_some_and(|ns| namespaces.contains(ns))
        })
        .count()
}

/// An account on a fresh package with `account_quota`, three namespaces and administrator `admin`;
/// waits until it is Ready and every share enforces its part (the sum of `status.hard` is the cap).
async fn setup(
    t: &TestCtx,
    account_quota: serde_json::Value,
    resource: &str,
    cap: i64,
) -> (String, Vec<String>, String) {
    let pkg = t.package("pkg");
    let mut p = fixtures::package(&pkg, json!({ "pods": "20", "configmaps": "40" }));
    p.spec.account_quota = Some(fixtures::resources(account_quota));
    t.apply(&p).await;
    let acct = t.account("acct");
    let namespaces: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| t.name(&format!("acct-{s}")))
        .collect();
    let admin = format!("alice-{}", t.suffix);
    let ns_refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    t.apply(&account(&acct, Some(&pkg), &ns_refs, &[&admin], json!({})))
        .await;
    wait_account_ready(&t.client, &acct).await;
    let client = t.client.clone();
    let nss = namespaces.clone();
    eventually("the shares enforce the whole cap", TIMEOUT, || {
        let (client, nss) = (client.clone(), nss.clone());
        async move {
            let mut total = 0;
            for ns in &nss {
                let Ok(q) = Api::<ResourceQuota>::namespaced(client.clone(), ns)
                    .get(SHARE)
                    .await
                else {
                    return Err(format!("no share in {ns}"));
                };
                total += number(
                    q.status
                        .as_ref()
                        .and_then(|s| s.hard.as_ref())
                        .and_then(|h| h.get(resource)),
                );
            }
            if total == cap {
                Ok(())
            } else {
                Err(format!("status.hard of {resource} adds up to {total}"))
            }
        }
    })
    .await;
    (acct, namespaces, admin)
}

/// Creates as many pods as it can in `ns` until `deadline`, retrying refused creates every 100 ms;
/// returns how many were admitted.
async fn create_pods(client: Client, ns: String, tag: String, deadline: Instant) -> usize {
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let mut made = 0;
    let mut i = 0;
    while Instant::now() < deadline {
        match api
            .create(&PostParams::default(), &pod(&format!("{tag}-{i}")))
            .await
        {
            Ok(_) => {
                made += 1;
                i += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    made
}

/// Samples, every 50 ms until `stop`, the account's totals over `nss`: the worst (pods the shares
/// enforce, pods the shares count used, pods, ConfigMaps) seen.
fn spawn_totals_watcher(
    client: Client,
    nss: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(i64, i64, usize, usize)> {
    tokio::spawn(async move {
        let mut worst = (0i64, 0i64, 0usize, 0usize);
        while !stop.load(Ordering::Relaxed) {
            let s = shares(&client, &nss, "pods").await;
            let enforced: i64 = s.iter().map(|x| x.1).sum();
            let used: i64 = s.iter().map(|x| x.2).sum();
            let pods = count::<Pod>(&client, &nss).await;
            let cms = count::<ConfigMap>(&client, &nss).await;
            worst = (
                worst.0.max(enforced),
                worst.1.max(used),
                worst.2.max(pods),
                worst.3.max(cms),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worst
    })
}

/// As `alice`, creates pods and ConfigMaps in every namespace at once until `deadline`. Returns how
/// many were admitted: pods then ConfigMaps, per namespace.
async fn create_pods_and_config_maps_everywhere(
    alice: &Client,
    namespaces: &[String],
    deadline: Instant,
) -> Vec<usize> {
    let mut tasks = Vec::new();
    for ns in namespaces {
        tasks.push(tokio::spawn(create_pods(
            alice.clone(),
            ns.clone(),
            "p".into(),
            deadline,
        )));
        let (client, ns) = (alice.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, &ns);
            let mut made = 0;
            let mut i = 0;
            while Instant::now() < deadline {
                let cm: ConfigMap =
                    serde_json::from_value(json!({ "metadata": { "name": format!("cm-{i}") } }))
                        .expect("a ConfigMap");
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => {
                        made += 1;
                        i += 1;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            made
        }));
    }
    let mut made = Vec::new();
    for task in tasks {
        made.push(task.await.expect("creator"));
    }
    made
}

#[tokio::test]
async fn namespaces_racing_for_the_last_units_never_get_more_than_the_cap() {
    let t = TestCtx::new("aq-race").await;
    let cap_pods = 5;
    let (_acct, namespaces, admin) = setup(
        &t,
        json!({ "pods": "5", "count/configmaps": "9" }),
        "pods",
        cap_pods,
    )
    .await;
    // The tenant administrator creates, in the three namespaces at once, more pods and ConfigMaps
    // than the account may hold; a watcher samples the totals meanwhile.
    let alice = impersonate(&admin, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = spawn_totals_watcher(t.client.clone(), namespaces.clone(), stop.clone());
    let mut made = create_pods_and_config_maps_everywhere(
        &alice,
        &namespaces,
        Instant::now() + Duration::from_secs(20),
    )
    .await;
    // Then the first namespace frees its pods and stays idle while the two others race for them:
    // the room has to move out of its share while they create at once.
    let first: Api<Pod> = Api::namespaced(t.client.clone(), &namespaces[0]);
    let freed = made[0];
    for i in 0..freed {
        first
            .delete(&format!("p-{i}"), &DeleteParams::default().grace_period(0))
            .await
            .expect("delete a pod");
    }
    // Long enough for the rebalancing to follow on a loaded machine; the racers create until then, so
    // any room beyond what was freed would be taken too.
    let deadline = Instant::now() + TIMEOUT;
    let racers: Vec<_> = namespaces[1..]
        .iter()
        .map(|ns| tokio::spawn(create_pods(alice.clone(), ns.clone(), "q".into(), deadline)))
        .collect();
    let mut moved = 0;
    for r in racers {
        moved += r.await.expect("racer");
    }
    stop.store(true, Ordering::Relaxed);
    let worst = watcher.await.expect("watcher");
    eprintln!("{freed} pods freed in the first namespace; {moved} admitted in the others");
    assert_eq!(
        moved, freed,
        "the freed room moved to the racing namespaces, and no more"
    );
    made[0] -= freed;
    made[2] += moved;
    let pods_made: usize = made.iter().step_by(2).sum();
    let cms_made: usize = made.iter().skip(1).step_by(2).sum();

    // Read back: the objects that exist, and what every share counts.
    let pods = count::<Pod>(&t.client, &namespaces).await;
    let cms = count::<ConfigMap>(&t.client, &namespaces).await;
    let pod_shares = shares(&t.client, &namespaces, "pods").await;
    let cm_shares = shares(&t.client, &namespaces, "count/configmaps").await;
    let used_pods: i64 = pod_shares.iter().map(|x| x.2).sum();
    let used_cms: i64 = cm_shares.iter().map(|x| x.2).sum();
    eprintln!(
        "admitted pods per namespace+kind {made:?}; pods {pods}, configmaps {cms} (incl. kube-root-ca.crt); \
         shares pods {pod_shares:?} configmaps {cm_shares:?}; worst sampled {worst:?}"
    );
    assert_eq!(pods, pods_made, "every admitted pod exists");
    assert!(
        pods as i64 <= cap_pods,
        "{pods} pods exist across the account, cap {cap_pods}"
    );
    assert!(
        used_pods <= cap_pods,
        "the shares count {used_pods} pods, cap {cap_pods}"
    );
    assert!(
        worst.0 <= cap_pods,
        "the shares enforced {} pods at once, cap {cap_pods}",
        worst.0
    );
    assert!(
        worst.1 <= cap_pods && worst.2 as i64 <= cap_pods,
        "sampled over the cap: {worst:?}"
    );
    // The ConfigMaps (each namespace's kube-root-ca.crt counts too).
    assert!(
        cms <= 9 && used_cms <= 9 && worst.3 <= 9,
        "configmaps over the cap: {cms} {used_cms} {worst:?}"
    );
    assert!(cms_made > 0);
    // And the account's room was used: the last units went to someone.
    assert_eq!(
        pods as i64, cap_pods,
        "all the account's pods were admitted to somebody"
    );
    assert_eq!(
        used_cms, 9,
        "all the account's ConfigMaps were admitted to somebody"
    );
}

#[tokio::test]
async fn one_namespace_alone_reaches_the_cap_and_a_lowered_cap_admits_nothing_until_usage_is_under_it()
 {
    let t = TestCtx::new("aq-alone").await;
    let cap = 6;
    let (acct, namespaces, admin) = setup(&t, json!({ "pods": "6" }), "pods", cap).await;
    let alice = impersonate(&admin, &[]).await;
    let ns_a = namespaces[0].clone();

    // One namespace, the others idle: every refusal turns into a success on a retry within seconds,
    // up to the whole cap.
    let started = Instant::now();
    let made = create_pods(
        alice.clone(),
        ns_a.clone(),
        "p".into(),
        started + Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        made as i64, cap,
        "one namespace reaches the account's cap alone"
    );
    let pods = count::<Pod>(&t.client, &namespaces).await;
    assert_eq!(pods as i64, cap);
    let s = shares(&t.client, &namespaces, "pods").await;
    assert_eq!(s[0].2, cap, "{s:?}");
    assert_eq!(s.iter().map(|x| x.1).sum::<i64>(), cap, "{s:?}");

    // status.quota: the cap and the account's usage.
    let accounts: Api<Account> = Api::all(t.client.clone());
    eventually("status.quota shows used and hard", TIMEOUT, || {
        let accounts = accounts.clone();
        let acct = acct.clone();
        async move {
            let a = accounts.get(&acct).await.map_err(|e| e.to_string())?;
            let q = a.status.and_then(|s| s.quota).ok_or("no status.quota")?;
            let pair = (
                q.hard.get("pods").map(|q| q.0.clone()),
                q.used.get("pods").map(|q| q.0.clone()),
            );
            if pair == (Some("6".into()), Some("6".into())) {
                Ok(())
            } else {
                Err(format!("{pair:?}"))
            }
        }
    })
    .await;

    assert_a_cap_lowered_under_the_usage_admits_nothing_until_usage_is_under_it(
        &t,
        &acct,
        &namespaces,
        &alice,
    )
    .await;
}

/// The cap lowered to 3 under the usage of 6 (the Account's override): nothing new is admitted
/// anywhere; down to the cap, still nothing; one under it, exactly one pod fits.
async fn assert_a_cap_lowered_under_the_usage_admits_nothing_until_usage_is_under_it(
    t: &TestCtx,
    acct: &str,
    namespaces: &[String],
    alice: &Client,
) {
    let accounts: Api<Account> = Api::all(t.client.clone());
    let ns_a = &namespaces[0];
    // Lower the cap under the usage (the Account's override): nothing new is admitted anywhere.
    accounts
        .patch(
            acct,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "accountQuota": { "pods": "3" } } })),
        )
        .await
        .expect("lower the cap");
    let client = t.client.clone();
    let nss = namespaces.to_vec();
    eventually("every share enforces 0 pods", TIMEOUT, || {
        let (client, nss) = (client.clone(), nss.clone());
        async move {
            let s = shares(&client, &nss, "pods").await;
            if s.iter().all(|x| x.1 == 0 && x.0 == 0) {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        }
    })
    .await;
    let refused_until = Instant::now() + Duration::from_secs(4);
    for ns in namespaces {
        let made = create_pods(alice.clone(), ns.clone(), "over".into(), refused_until).await;
        assert_eq!(
            made, 0,
            "a pod was admitted in {ns} while the account is over its cap"
        );
    }
    // Down to the cap (3 of 6 deleted): still nothing new, since the account has no room.
    let pods_a: Api<Pod> = Api::namespaced(t.client.clone(), ns_a);
    for i in 0..3 {
        pods_a
            .delete(&format!("p-{i}"), &DeleteParams::default().grace_period(0))
            .await
            .expect("delete");
    }
    let made = create_pods(
        alice.clone(),
        namespaces[1].clone(),
        "at".into(),
        Instant::now() + Duration::from_secs(4),
    )
    .await;
    assert_eq!(
        made, 0,
        "a pod was admitted while the account uses its whole cap"
    );
    // Under the cap: the one freed pod fits, tried in every namespace at once; never two.
    pods_a
        .delete("p-3", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(8);
    let tries: Vec<_> = namespaces
        .iter()
        .map(|ns| {
            tokio::spawn(create_pods(
                alice.clone(),
                ns.clone(),
                "under".into(),
                deadline,
            ))
        })
        .collect();
    let mut made = 0;
    for t in tries {
        made += t.await.expect("creator");
    }
    assert_eq!(made, 1, "exactly the one freed pod fits");
    assert_eq!(count::<Pod>(&t.client, namespaces).await, 3);
}

#[tokio::test]
async fn tenants_cannot_edit_or_delete_a_share_and_the_shares_go_with_the_account_quota() {
    let t = TestCtx::new("aq-protect").await;
    let (acct, namespaces, admin) = setup(&t, json!({ "pods": "4" }), "pods", 4).await;
    let alice = impersonate(&admin, &[]).await;
    let ns = &namespaces[0];
    let api: Api<ResourceQuota> = Api::namespaced(alice.clone(), ns);
    forbidden(
        "the administrator raising its share",
        api.patch(
            SHARE,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "hard": { "pods": "100" } } })),
        )
        .await,
    )
    .expect("refused");
    forbidden(
        "the administrator deleting its share",
        api.delete(SHARE, &DeleteParams::default()).await,
    )
    .expect("refused");
    assert_the_tenants_service_account_cannot_touch_it(&alice, ns).await;
    // The share is as the operator left it.
    let s = shares(&t.client, &namespaces, "pods").await;
    assert_eq!(s.iter().map(|x| x.0).sum::<i64>(), 4, "{s:?}");

    // The package drops its accountQuota: the shares go, and the Account no longer shows one.
    Api::<covenant::api::SupportPackage>::all(t.client.clone())
        .patch(
            &t.name("pkg"),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "accountQuota": null } })),
        )
        .await
        .expect("drop the accountQuota");
    let (client, nss) = (t.client.clone(), namespaces.clone());
    eventually("the shares are gone and status.quota too", TIMEOUT, || {
        let (client, nss, acct) = (client.clone(), nss.clone(), acct.clone());
        async move {
            for ns in &nss {
                if Api::<ResourceQuota>::namespaced(client.clone(), ns)
                    .get_opt(SHARE)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    return Err(format!("a share is still in {ns}"));
                }
            }
            let a = Api::<Account>::all(client.clone())
                .get(&acct)
                .await
                .map_err(|e| e.to_string())?;
            match a.status.and_then(|s| s.quota) {
                None => Ok(()),
                Some(q) => Err(format!("status.quota still {q:?}")),
            }
        }
    })
    .await;
}

/// A ServiceAccount of the tenant, bound by the administrator to what the administrator may grant
/// (the built-in `view` role in its namespace), cannot edit or delete a share either.
async fn assert_the_tenants_service_account_cannot_touch_it(alice: &Client, ns: &str) {
    // A ServiceAccount of the tenant, bound by the administrator to what the administrator may grant
    // (the built-in `view` role in its namespace), cannot touch it either.
    let sa_name = "builder";
    let sa_api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(alice.clone(), ns);
    sa_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": sa_name } })).expect("sa"),
        )
        .await
        .expect("the administrator creates a ServiceAccount");
    let rb_api: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(alice.clone(), ns);
    let bound = rb_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "builder-view" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
                "subjects": [{ "kind": "ServiceAccount", "name": sa_name, "namespace": ns }]
            }))
            .expect("rb"),
        )
        .await;
    bound.expect("the administrator binds view to its ServiceAccount");
    let sa = impersonate(
        &format!("system:serviceaccount:{ns}:{sa_name}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
        ],
    )
    .await;
    let api: Api<ResourceQuota> = Api::namespaced(sa, ns);
    forbidden(
        "the tenant's ServiceAccount raising the share",
        api.patch(
            SHARE,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "hard": { "pods": "100" } } })),
        )
        .await,
    )
    .expect("refused");
    forbidden(
        "the tenant's ServiceAccount deleting the share",
        api.delete(SHARE, &DeleteParams::default()).await,
    )
    .expect("refused");
}

/// The value of the metric line `name{labels...}` whose labels include every `(key, value)` of
/// `labels`, summed over the lines that match (counters by kind add up).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (lbl, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|(k, v)| lbl.contains(&format!("{k}=\"{v}\"")))
        {
            let v: f64 = value.split_whitespace().next()?.parse().ok()?;
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[tokio::test]
async fn the_metrics_show_each_accounts_quota_and_what_moving_room_costs() {
    let t = TestCtx::new("aq-metrics").await;
    // Under the package's per-namespace quota (20 pods), which applies too.
    let cap = 18;
    let (acct, namespaces, admin) = setup(&t, json!({ "pods": "18" }), "pods", cap).await;
    let alice = impersonate(&admin, &[]).await;
    let scrape = || covenant_e2e::operator::handle().metrics().expect("metrics");
    let before = scrape();
    let writes0 = metric(&before, "covenant_writes_total", &[]).unwrap_or(0.0);
    let lists0 = metric(&before, "covenant_account_quota_rebalances_total", &[]).unwrap_or(0.0);
    // One namespace fills the whole cap, pod by pod, retrying each refusal.
    let made = create_pods(
        alice.clone(),
        namespaces[0].clone(),
        "p".into(),
        Instant::now() + Duration::from_secs(30),
    )
    .await;
    assert_eq!(made as i64, cap);
    let acct2 = acct.clone();
    let text = eventually("the metrics show the account's quota", TIMEOUT, || {
        let acct = acct2.clone();
        async move {
            let text = scrape();
            let used = metric(
                &text,
                "covenant_account_quota_used",
                &[("account", &acct), ("resource", "pods")],
            );
            let hard = metric(
                &text,
                "covenant_account_quota_hard",
                &[("account", &acct), ("resource", "pods")],
            );
            if used == Some(18.0) && hard == Some(18.0) {
                Ok(text)
            } else {
                Err(format!("used {used:?}, hard {hard:?}"))
            }
        }
    })
    .await;
    let writes = metric(&text, "covenant_writes_total", &[]).unwrap_or(0.0) - writes0;
    let lists =
        metric(&text, "covenant_account_quota_rebalances_total", &[]).unwrap_or(0.0) - lists0;
    // The figure (other tests of this binary may add to the counters when run in parallel: measure
    // with --test-threads=1).
    eprintln!(
        "account quota cost: {made} pods created in one of 3 namespaces up to a cap of {cap}: \
         {writes} operator writes (shares and status) and {lists} share lists, \
         {:.2} requests per pod",
        (writes + lists) / made as f64
    );
    assert!(
        lists >= 1.0,
        "room was moved at least once (one namespace cannot start with all of it)"
    );

    // At rest (the namespace's activity over), nothing is written: not the shares, not the Account.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let versions = || {
        let (client, nss, acct) = (t.client.clone(), namespaces.clone(), acct.clone());
        async move {
            let mut v = Vec::new();
            for ns in &nss {
                let q = Api::<ResourceQuota>::namespaced(client.clone(), ns)
                    .get(SHARE)
                    .await
                    .expect("share");
                v.push(q.metadata.resource_version.unwrap_or_default());
            }
            let a = Api::<Account>::all(client.clone())
                .get(&acct)
                .await
                .expect("account");
            v.push(a.metadata.resource_version.unwrap_or_default());
            v
        }
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        versions().await,
        before,
        "shares or Account written at rest"
    );
}
