//! Chaos: the operator is SIGKILLed at random points while accounts are provisioned, suspended (their
//! Deployments scaled to zero) and lifted, and started again each time. When the killing stops,
//! everything must converge to the declared state: every account provisioned once, every suspension
//! in force, every lifted account restored with its replica counts.
//!
//! On a cluster of its own. Size and randomness from the environment:
//! - `CHAOS_ACCOUNTS` (default 24: the short version `make test` runs; `make chaos` runs 200),
//! - `CHAOS_SEED` (default: from the clock; printed, so a failing run can be replayed).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use covenant::api::{Account, AccountPhase, Suspension, SuspensionPhase};
use covenant_e2e::fixtures::{account, deployment};
use covenant_e2e::operator;
use covenant_e2e::{TestCtx, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// On each workload: `<token>:<count>`, its replica count before the suspension.
const BEFORE_ANNOTATION: &str = "covenant.dev/before-suspension";
/// On the namespace: the token under which the workloads' records count.
const TOKEN_ANNOTATION: &str = "covenant.dev/suspension-token";
const WEB: &str = "web";

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v} is not a number: {e}")),
        _ => default,
    }
}

/// What the test declared for one account.
#[derive(Clone, Debug)]
struct Tenant {
    account: String,
    replicas: i32,
    /// A pause before each step on this account, so that the steps spread over the kills.
    pause: Duration,
    /// The Suspension created for it, if any, and whether it was lifted (deleted) again.
    suspension: Option<(String, bool)>,
}

impl Tenant {
    fn suspended(&self) -> bool {
        matches!(self.suspension, Some((_, false)))
    }
}

/// Kills the operator at random moments until `stop`: each time after 0.2–2 s of running, then starts it
/// again after 0–1 s (waiting until it is ready, so that every kill hits a working operator).
fn spawn_killer(
    seed: u64,
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicU32>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(rng.millis(200, 2000));
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut op = operator::handle();
            op.kill();
            kills.fetch_add(1, Ordering::Relaxed);
            drop(op);
            std::thread::sleep(rng.millis(0, 1000));
            operator::handle().start();
        }
    })
}

/// Runs `f` over `items`, 8 at a time.
async fn each<T: Clone, F, Fut>(items: &[T], f: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(items.iter().cloned().map(f))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// Server-side applies `obj` as the test (forced), retrying while the API server is busy.
async fn apply_json<K>(api: &Api<K>, name: &str, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let pp = &PatchParams::apply(covenant_e2e::k8s::FIELD_MANAGER).force();
    eventually(&format!("apply {name}"), Duration::from_secs(60), || {
        let obj = obj.clone();
        async move {
            api.patch(name, pp, &Patch::Apply(obj))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_random_points_the_operator_converges_to_the_declared_state() {
    let n = env_number("CHAOS_ACCOUNTS", 24) as usize;
    let seed = env_number(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    println!("chaos: {n} accounts, CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let t = TestCtx::new("chaos").await;
    let c = &t.client;
    let started = Instant::now();

    let mut tenants: Vec<Tenant> = (0..n)
        .map(|i| Tenant {
            account: t.account(&format!("c{i}")),
            replicas: 1 + rng.below(5) as i32,
            pause: rng.millis(0, 1500),
            suspension: None,
        })
        .collect();
    // About half are suspended; half of those lifted again.
    for tenant in &mut tenants {
        if rng.below(2) == 0 {
            let name = format!("{}-susp", tenant.account);
            t.track("suspensions.covenant.dev", &name);
            tenant.suspension = Some((name, rng.below(2) == 0));
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = spawn_killer(seed, stop.clone(), kills.clone());

    // 1. Provision every account.
    let accounts: Api<Account> = Api::all(c.clone());
    each(&tenants, |tn| {
        let accounts = accounts.clone();
        let manifest = account(&tn.account, None, &[], &["owner@chaos.example"], json!({}));
        async move {
            tokio::time::sleep(tn.pause).await;
            let v = serde_json::to_value(&manifest).expect("an Account serializes");
            apply_json(&accounts, &tn.account, v).await;
        }
    })
    .await;

    // 2. A Deployment in every namespace, as soon as the operator has made it.
    let provision_timeout = Duration::from_secs(120 + 2 * n as u64);
    each(&tenants, |tn| {
        let c = c.clone();
        async move {
            let nss: Api<Namespace> = Api::all(c.clone());
            eventually(
                &format!("namespace {} exists", tn.account),
                provision_timeout,
                || async {
                    nss.get(&tn.account)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                },
            )
            .await;
            let mut d = deployment(WEB);
            d.spec.replicas = Some(tn.replicas);
            let deployments: Api<Deployment> = Api::namespaced(c.clone(), &tn.account);
            apply_json(
                &deployments,
                WEB,
                serde_json::to_value(&d).expect("a Deployment"),
            )
            .await;
        }
    })
    .await;

    // 3. Suspend; 4. lift (delete) the ones to lift once the operator has scaled them down, so that
    // lifting has something to restore.
    let suspensions: Api<Suspension> = Api::all(c.clone());
    let to_suspend: Vec<Tenant> = tenants
        .iter()
        .filter(|tn| tn.suspension.is_some())
        .cloned()
        .collect();
    each(&to_suspend, |tn| {
        let suspensions = suspensions.clone();
        let (name, _) = tn.suspension.clone().expect("a suspension");
        async move {
            tokio::time::sleep(tn.pause).await;
            apply_json(
                &suspensions,
                &name,
                json!({
                    "apiVersion": "covenant.dev/v1alpha1",
                    "kind": "Suspension",
                    "metadata": { "name": name },
                    "spec": {
                        "account": tn.account,
                        "reason": "AcceptableUsePolicy",
                        "cause": format!("Chaos test suspension of {}", tn.account),
                        "scaleWorkloads": true
                    }
                }),
            )
            .await;
        }
    })
    .await;
    let to_lift: Vec<Tenant> = to_suspend
        .iter()
        .filter(|tn| matches!(tn.suspension, Some((_, true))))
        .cloned()
        .collect();
    each(&to_lift, |tn| {
        let c = c.clone();
        let suspensions = suspensions.clone();
        let (name, _) = tn.suspension.clone().expect("a suspension");
        async move {
            let deployments: Api<Deployment> = Api::namespaced(c.clone(), &tn.account);
            eventually(
                &format!("{}/{WEB} scaled to 0 by the suspension", tn.account),
                provision_timeout,
                || async {
                    let d = deployments.get(WEB).await.map_err(|e| e.to_string())?;
                    match d.spec.replicas {
                        Some(0) => Ok(()),
                        r => Err(format!("replicas {r:?}")),
                    }
                },
            )
            .await;
            match suspensions.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => panic!("lift {name}: {e}"),
            }
        }
    })
    .await;

    // Chaos goes on while the operator converges, until enough kills have landed.
    let min_kills = (n as u32 / 10).max(5);
    eventually(
        &format!("{min_kills} kills"),
        Duration::from_secs(120),
        || {
            let k = kills.load(Ordering::Relaxed);
            async move {
                if k >= min_kills {
                    Ok(())
                } else {
                    Err(format!("{k} kills"))
                }
            }
        },
    )
    .await;
    // The killing stops; the last operator started stays up.
    stop.store(true, Ordering::Relaxed);
    killer.join().expect("the killer thread");
    operator::ensure();
    let kills = kills.load(Ordering::Relaxed);
    println!(
        "chaos: {kills} SIGKILLs in {:.0}s; now converging",
        started.elapsed().as_secs_f64()
    );

    // 5. Converged: every account in its declared phase, its objects once, its replicas right.
    let converge = Instant::now();
    each(&tenants, |tn| {
        let c = c.clone();
        let accounts = accounts.clone();
        async move {
            let want = if tn.suspended() {
                AccountPhase::Suspended
            } else {
                AccountPhase::Active
            };
            eventually(
                &format!("account {} is {want:?} for its generation", tn.account),
                provision_timeout,
                || async {
                    let a = accounts.get(&tn.account).await.map_err(|e| e.to_string())?;
                    let s = a.status.as_ref().ok_or("no status")?;
                    if s.observed_generation == a.metadata.generation && s.phase == Some(want) {
                        Ok(())
                    } else {
                        Err(format!(
                            "phase {:?}, conditions {:?}",
                            s.phase, s.conditions
                        ))
                    }
                },
            )
            .await;
            let deployments: Api<Deployment> = Api::namespaced(c.clone(), &tn.account);
            let (replicas, recorded) = if tn.suspended() {
                (0, Some(tn.replicas))
            } else {
                (tn.replicas, None)
            };
            let namespaces: Api<Namespace> = Api::all(c.clone());
            eventually(
                &format!(
                    "{}/{WEB} has replicas {replicas} (recorded {recorded:?})",
                    tn.account
                ),
                provision_timeout,
                || async {
                    let d = deployments.get(WEB).await.map_err(|e| e.to_string())?;
                    // The count a suspension recorded on the Deployment, under the namespace's
                    // token.
                    let n = namespaces
                        .get(&tn.account)
                        .await
                        .map_err(|e| e.to_string())?;
                    let record = n.annotations().get(TOKEN_ANNOTATION).and_then(|token| {
                        let (t, v) = d.annotations().get(BEFORE_ANNOTATION)?.split_once(':')?;
                        (t == token).then(|| v.parse::<i32>().ok()).flatten()
                    });
                    let got = (d.spec.replicas, record);
                    if got == (Some(replicas), recorded) {
                        Ok(())
                    } else {
                        Err(format!("{got:?}"))
                    }
                },
            )
            .await;
        }
    })
    .await;
    println!(
        "chaos: converged {:.1}s after the last kill",
        converge.elapsed().as_secs_f64()
    );

    // Nothing duplicated, nothing forgotten: one namespace per account, the right bindings, every
    // remaining suspension Active with its notice given.
    check_objects(c, &tenants).await;
    for tn in tenants.iter().filter(|tn| tn.suspended()) {
        let (name, _) = tn.suspension.as_ref().expect("a suspension");
        let s = suspensions.get(name).await.expect("the suspension");
        let st = s.status.as_ref().expect("a status");
        assert_eq!(st.phase, Some(SuspensionPhase::Active), "{name}: {st:?}");
        assert!(
            st.notice_given_at.is_some(),
            "{name}: no notice given: {st:?}"
        );
    }
}

async fn check_objects(c: &Client, tenants: &[Tenant]) {
    let labelled = ListParams::default().labels("covenant.dev/account");
    let mut namespaces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ns in Api::<Namespace>::all(c.clone())
        .list(&labelled)
        .await
        .expect("list namespaces")
    {
        let owner = ns.labels()["covenant.dev/account"].clone();
        namespaces.entry(owner).or_default().push(ns.name_any());
    }
    let quotas = Api::<ResourceQuota>::all(c.clone())
        .list(&labelled)
        .await
        .expect("list quotas");
    let bindings = Api::<RoleBinding>::all(c.clone())
        .list(&labelled)
        .await
        .expect("list role bindings");
    for tn in tenants {
        assert_eq!(
            namespaces.get(&tn.account),
            Some(&vec![tn.account.clone()]),
            "account {} must own exactly its one namespace",
            tn.account
        );
        let q = names_in(&quotas.items, &tn.account);
        let b = names_in(&bindings.items, &tn.account);
        let (want_q, mut want_b) = if tn.suspended() {
            (
                vec!["covenant-bounds", "covenant-freeze", "covenant-quota"],
                vec!["covenant-tenant-readonly"],
            )
        } else {
            (
                vec!["covenant-bounds", "covenant-quota"],
                vec!["covenant-tenant-admin"],
            )
        };
        // The operator's own binding (to withdraw consent from tenant bindings), unless it runs as a
        // cluster administrator.
        if std::env::var("COVENANT_E2E_OPERATOR_IDENTITY").as_deref() != Ok("admin") {
            want_b.insert(0, "covenant-operator");
        }
        assert_eq!(q, want_q, "{}: quotas", tn.account);
        assert_eq!(b, want_b, "{}: role bindings", tn.account);
    }
}

/// The sorted names of the objects in namespace `ns`.
fn names_in<K: kube::Resource>(objects: &[K], ns: &str) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    names.sort();
    names
}
