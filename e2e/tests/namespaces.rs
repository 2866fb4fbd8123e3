//! Who a tenant namespace belongs to, whoever runs the operator: Covenant creates an account's
//! namespaces (a create, never an apply into existence), so a namespace someone else made first —
//! even in the instant before the operator's cache hears of it — is never adopted, also when the
//! operator runs as a cluster administrator (`system:masters`, as `make run` does), whom no admission
//! policy holds back. Every Pod Security label on a tenant namespace is Covenant's.
//!
//! The tests take [`OPERATOR`] for writing: one of them stops the harness's operator and runs one of
//! each identity in turn (its ServiceAccount, then the cluster administrator), chosen by the test
//! whatever `COVENANT_E2E_OPERATOR_IDENTITY` says; no other test may run meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use covenant::api::Account;
use covenant_e2e::fixtures::{self, account};
use covenant_e2e::operator::{self, Identity, Operator};
use covenant_e2e::{TIMEOUT, TestCtx, condition, eventually, wait_account};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

static OPERATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const ACCOUNT_UID: &str = "covenant.dev/account-uid";
const POD_SECURITY: &str = "pod-security.kubernetes.io/";
/// A Pod Security label the squatter sets: it pins the `restricted` checks of Kubernetes 1.0, which
/// admit pods that today's `restricted` refuses.
const ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
/// How many races per operator identity.
const RACES: u64 = 5;

/// A user who may create namespaces and nothing else.
async fn squatter(t: &TestCtx) -> (String, Client) {
    t.user_with_cluster_rules(
        "squatter",
        json!([{ "apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"] }]),
    )
    .await
}

/// How a race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The squatter's create succeeded: the namespace is the squatter's.
    Squatter,
    /// The squatter got AlreadyExists: Covenant made it first.
    Covenant,
}

/// One race: the squatter creates the account's namespace name in a tight loop (starting `delay`
/// after the Account is created) while the Account is created, then the outcome is checked: either
/// the squatter's namespace is never adopted (no account UID, no Covenant label or Pod Security
/// label of Covenant's, and the Account reports the conflict), or Covenant's was made first (the
/// squatter got AlreadyExists, and the namespace is the Account's).
async fn race(t: &TestCtx, squatter: &Client, base: &str, delay: Duration) -> Outcome {
    let acct = t.account(base);
    // The squatter's namespace, if it wins, is deleted after the test.
    t.track("namespaces", &acct);
    let stop = Arc::new(AtomicBool::new(false));
    let loop_ = {
        let (client, name, stop) = (squatter.clone(), acct.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let nss: Api<Namespace> = Api::all(client);
            let ns: Namespace = serde_json::from_value(json!({
                "metadata": { "name": name, "labels": { ENFORCE_VERSION: "v1.0" } }
            }))
            .unwrap();
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match nss.create(&PostParams::default(), &ns).await {
                    Ok(_) => return Outcome::Squatter,
                    Err(kube::Error::Api(e)) if e.code == 409 => return Outcome::Covenant,
                    Err(e) if Instant::now() > deadline || stop.load(Ordering::Relaxed) => {
                        panic!("the squatter's create of {name} failed otherwise: {e}")
                    }
                    Err(_) => {}
                }
            }
        })
    };
    t.apply(&account(
        &acct,
        None,
        &[],
        &["alice"],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    let outcome = loop_.await.expect("the squatter's loop");
    stop.store(true, Ordering::Relaxed);
    let nss: Api<Namespace> = Api::all(t.client.clone());
    match outcome {
        Outcome::Squatter => {
            let a = wait_account(
                &t.client,
                &acct,
                "Ready",
                "False",
                Some("NamespaceConflict"),
            )
            .await;
            let msg = &condition(&a, "Ready").unwrap().message;
            assert!(msg.contains(&acct), "the conflict names {acct}: {msg}");
            // And stays so: nothing of Covenant's lands on it later.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let n = nss.get(&acct).await.unwrap();
            let covenant: Vec<&String> = n
                .labels()
                .keys()
                .chain(n.annotations().keys())
                .filter(|k| k.starts_with("covenant.dev/"))
                .collect();
            assert!(
                covenant.is_empty(),
                "the squatter's namespace {acct} was adopted: {covenant:?}"
            );
            assert_eq!(
                n.labels()
                    .keys()
                    .filter(|k| k.starts_with(POD_SECURITY))
                    .collect::<Vec<_>>(),
                vec![ENFORCE_VERSION],
                "the squatter's namespace {acct} keeps only its own label"
            );
        }
        Outcome::Covenant => {
            let a = covenant_e2e::wait_account_ready(&t.client, &acct).await;
            let n = nss.get(&acct).await.unwrap();
            assert_eq!(
                n.annotations().get(ACCOUNT_UID),
                a.metadata.uid.as_ref(),
                "Covenant made {acct} first"
            );
            assert!(
                !n.labels().contains_key(ENFORCE_VERSION),
                "{acct}: {:?}",
                n.labels()
            );
        }
    }
    // Gone before the next race (the account's namespace with it, or the squatter's, by cleanup).
    Api::<Account>::all(t.client.clone())
        .delete(&acct, &DeleteParams::default())
        .await
        .unwrap();
    outcome
}

/// Races of a squatter against account creation, `RACES` times under each operator identity (its
/// ServiceAccount, then the cluster administrator), the squatter starting a little later each time:
/// the squatter's namespace is never the tenant's.
#[tokio::test]
async fn a_namespace_a_squatter_creates_while_the_account_is_created_is_never_adopted_under_either_identity()
 {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("ns-race").await;
    let _ensure = operator::EnsureRunning;
    let (_, sq) = squatter(&t).await;
    // Only one operator at a time: the harness's stops, and one of each identity runs in turn.
    operator::kill();
    let c = covenant_e2e::cluster();
    let mut outcomes = Vec::new();
    for (identity, short) in [(Identity::ServiceAccount, "sa"), (Identity::Admin, "ad")] {
        let kubeconfig = c
            .log_dir
            .join(format!("ns-race-{short}-{}.kubeconfig", t.suffix));
        operator::kubeconfig_for(c, identity, &kubeconfig).unwrap_or_else(|e| panic!("{e}"));
        let mut op = Operator::custom(c, &format!("ns-race-{short}"), &kubeconfig, &[], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        op.start();
        for i in 0..RACES {
            let delay = Duration::from_millis(i * 80);
            let outcome = race(&t, &sq, &format!("r{short}{i}"), delay).await;
            outcomes.push((identity, outcome));
        }
        // The finalizers of the accounts deleted above need this operator, until it stops.
        eventually("the raced accounts are gone", TIMEOUT * 2, || async {
            let left = Api::<Account>::all(t.client.clone())
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .iter()
                .filter(|a| a.name_any().ends_with(&t.suffix))
                .count();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} left"))
            }
        })
        .await;
        op.kill();
    }
    eprintln!("[e2e] races (identity, who made the namespace): {outcomes:?}");
}

/// A Pod Security label somebody else sets on a tenant namespace (here a cluster administrator, whom
/// the namespace-labels policy lets through) is removed by Covenant: a pod that Covenant's
/// `restricted` level refuses, but `restricted` of Kubernetes 1.0 admits, is refused again.
#[tokio::test]
async fn a_stray_pod_security_label_on_a_tenant_namespace_does_not_survive() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("ns-psa").await;
    let acct = t.account("psa");
    t.apply(&account(
        &acct,
        None,
        &[],
        &["alice"],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    covenant_e2e::wait_account_ready(&t.client, &acct).await;
    // Covenant's restricted refuses it (privilege escalation allowed, capabilities kept, no seccomp
    // profile); restricted of v1.0 checked only running as non-root.
    let old_restricted: Pod = serde_json::from_value(json!({
        "metadata": { "name": "v10" },
        "spec": {
            "securityContext": { "runAsNonRoot": true, "runAsUser": 65532 },
            "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10" }]
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &acct);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let refused = || async {
        match pods.create(&dry, &old_restricted).await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("PodSecurity") => {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    };
    eventually(
        "Covenant's restricted level refuses the pod",
        TIMEOUT,
        refused,
    )
    .await;
    // Without Covenant, the label would make it admissible (the API server's own answer, in a
    // namespace of the test's with the same labels).
    let control = t.namespace("psa-control");
    Api::<Namespace>::all(t.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": control, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted", ENFORCE_VERSION: "v1.0"
            }}}))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually("restricted of v1.0 admits the pod", TIMEOUT, || async {
        Api::<Pod>::namespaced(t.client.clone(), &control)
            .create(&dry, &old_restricted)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;

    Api::<Namespace>::all(t.client.clone())
        .patch(
            &acct,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                ENFORCE_VERSION: "v1.0", "pod-security.kubernetes.io/warn-version": "v1.0"
            }}})),
        )
        .await
        .expect("a cluster administrator sets a Pod Security version on the tenant namespace");
    eventually(
        "Covenant removes the stray Pod Security labels",
        TIMEOUT,
        || async {
            let n = Api::<Namespace>::all(t.client.clone())
                .get(&acct)
                .await
                .map_err(|e| e.to_string())?;
            let stray: Vec<&String> = n
                .labels()
                .keys()
                .filter(|k| k.starts_with(POD_SECURITY) && k.ends_with("-version"))
                .collect();
            if stray.is_empty() {
                Ok(())
            } else {
                Err(format!("{stray:?}"))
            }
        },
    )
    .await;
    eventually("the pod is refused again", TIMEOUT, refused).await;
    let n = Api::<Namespace>::all(t.client.clone())
        .get(&acct)
        .await
        .unwrap();
    assert_eq!(
        fixtures::label(&n, "pod-security.kubernetes.io/enforce").as_deref(),
        Some("restricted")
    );
}
