//! Nothing a tenant writes can take the operator down, judged by effect on the real control plane: a
//! suspended administrator (the read-only policy still lets it answer notices) tries to flood the
//! operator with NoticeResponses, and an administrator with RoleBindings the consent sweep reads. The
//! API server refuses what is too big (with the policy's message) and what is too many (by the quota
//! Covenant keeps in every tenant namespace); what it admits, made as big and as many as the bounds
//! allow, keeps the operator process (this test binary's own, on its own cluster) under a stated
//! memory bound, and another tenant is provisioned meanwhile.
//!
//! The operator's memory is its resident set as the kernel reports it (`VmRSS`, and the process's
//! peak `VmHWM`, in /proc/<pid>/status), in whatever build the harness runs (debug unless
//! COVENANT_BIN says otherwise).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use covenant::api::{NoticeResponse, NoticeType};
use covenant_e2e::fixtures::{self, api_error};
use covenant_e2e::{TIMEOUT, Tenant, TestCtx, eventually, impersonate, operator, wait_for};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NOTICES: &str = "deprecationnotices.covenant.dev";
const SUSPENSIONS: &str = "suspensions.covenant.dev";
const GROUP: &str = "e2e-flood-group";
const MIB: u64 = 1024 * 1024;

/// The bounds the admission policies and the quota state (deploy/notice-responses-policy.yaml,
/// deploy/admission-policy.yaml, the operator's BOUNDED_COUNTS).
const ANSWER_ENTRIES: usize = 16;
const ANSWER_BYTES: usize = 4096;
const ANSWERS_PER_NAMESPACE: usize = 100;
const BINDING_ENTRIES: usize = 32;
const BINDING_BYTES: usize = 32768;
const BINDING_SUBJECTS: usize = 100;
const INGRESSES_PER_NAMESPACE: usize = 40;

/// What the operator may grow by under a flood the bounds admit, and the most it may hold at all:
/// far under the chart's memory limit (256 Mi), which a flood of the unbounded kind took it past.
const FLOOD_GROWTH_BOUND: u64 = 48 * MIB;
const RSS_BOUND: u64 = 192 * MIB;

/// `VmRSS` and `VmHWM` (the process's peak) of the harness's operator, in bytes.
fn memory() -> (u64, u64) {
    let pid = operator::handle()
        .pid()
        .expect("the harness's operator is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Samples the operator's `VmRSS` every 100 ms until stopped; the highest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(memory().0));
        let handle = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(memory().0, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Sampler {
            stop,
            peak,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak.load(Ordering::Relaxed).max(memory().0)
    }
}

/// `n` annotations whose keys and values take exactly `bytes` bytes together.
fn annotations(n: usize, bytes: usize) -> Value {
    let keys: Vec<String> = (0..n)
        .map(|i| format!("e2e.covenant.dev/a{i:03}"))
        .collect();
    let key_bytes: usize = keys.iter().map(String::len).sum();
    let room = bytes - key_bytes;
    let mut m = serde_json::Map::new();
    for (i, k) in keys.into_iter().enumerate() {
        // The first values take one byte more until the room is used exactly.
        let len = room / n + usize::from(i < room % n);
        m.insert(k, json!("x".repeat(len)));
    }
    Value::Object(m)
}

fn answer(metadata: Value, notice: &str) -> NoticeResponse {
    serde_json::from_value(json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "NoticeResponse",
        "metadata": metadata,
        "spec": { "notice": notice, "decision": "Reject" }
    }))
    .expect("a NoticeResponse")
}

/// Waits until the quota `covenant-bounds` of `ns` counts `resource` (the quota controller has
/// computed its usage), so that what it refuses from then on is refused by its count.
async fn wait_bounds_counted(t: &TestCtx, ns: &str, resource: &str, hard: &str) {
    let api: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ns);
    let what = format!("count {resource} up to {hard}");
    wait_for(&api, "covenant-bounds", &what, TIMEOUT, |q| {
        let status = q.status.as_ref();
        status
            .and_then(|s| s.hard.as_ref())
            .and_then(|h| h.get(resource))
            .is_some_and(|h| h.0 == hard)
            && status
                .and_then(|s| s.used.as_ref())
                .is_some_and(|u| u.contains_key(resource))
    })
    .await;
}

/// The tests of this binary run one after the other: each measures the one operator process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_suspended_administrator_cannot_take_the_operator_down_with_answers() {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new("flood-answers").await;
    let Tenant { account, admin, .. } = t.tenant("mallory").label(GROUP, &t.suffix).await;
    let ns = account.clone();
    // A notice the answers name, so that the operator judges every one of them.
    let notice = amendment_of_the_group(&t).await;
    let suspension = t.name("aup");
    t.track(SUSPENSIONS, &suspension);
    t.apply(&fixtures::suspension(
        &suspension,
        &account,
        "AcceptableUsePolicy",
        &format!("Abuse report {} confirmed", t.suffix),
        json!({}),
    ))
    .await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    wait_for(&nss, &ns, "be read-only for the suspension", TIMEOUT, |n| {
        fixtures::label(n, "covenant.dev/read-only").as_deref() == Some("suspended")
    })
    .await;
    wait_bounds_counted(
        &t,
        &ns,
        "count/noticeresponses.covenant.dev",
        &ANSWERS_PER_NAMESPACE.to_string(),
    )
    .await;
    // At rest: the operator has provisioned and suspended the tenant and has nothing to do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rest, rest_peak) = memory();

    let mallory = impersonate(&admin, &[]).await;
    let answers: Api<NoticeResponse> = Api::namespaced(mallory.clone(), &ns);
    assert_answers_over_the_bounds_are_refused(&answers, &notice).await;

    // As many as the bounds allow, each as big as they allow (63-character names, 16 annotations
    // of 4096 bytes), as fast as the tenant can make them; another tenant signs up meanwhile.
    let sampler = Sampler::start();
    let pkg = t.package("other-pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    let other_tenant = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        t.tenant("other").package(&pkg).await;
        started.elapsed()
    };
    let flood_started = Instant::now();
    let flood = flood_the_namespace(&t, &answers, &ns, &notice, flood_started);
    let (other_ready, (made, fill, judged)) = tokio::join!(other_tenant, flood);
    let flood_peak = sampler.stop();

    // A restart lists everything again: the relist of the flood is bounded too.
    operator::kill();
    operator::start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (restarted, restarted_peak) = memory();

    eprintln!(
        "operator memory: at rest {:.1} MiB (peak so far {:.1} MiB); under the flood of {made} \
         answers of {ANSWER_BYTES} bytes of metadata (made in {:.1} s, all judged after {:.1} s) \
         peak {:.1} MiB; another tenant Ready {:.1} s after it was applied during the flood; after a \
         restart {:.1} MiB (peak {:.1} MiB)",
        mib(rest),
        mib(rest_peak),
        fill.as_secs_f64(),
        judged.as_secs_f64(),
        mib(flood_peak),
        other_ready.as_secs_f64(),
        mib(restarted),
        mib(restarted_peak),
    );
    assert!(
        flood_peak <= rest + FLOOD_GROWTH_BOUND,
        "the operator grew from {:.1} MiB at rest to {:.1} MiB under the flood (bound: {} MiB more)",
        mib(rest),
        mib(flood_peak),
        FLOOD_GROWTH_BOUND / MIB
    );
    assert!(
        flood_peak <= RSS_BOUND && restarted_peak <= RSS_BOUND,
        "the operator held {:.1} MiB under the flood, {:.1} MiB at most after a restart (bound: {} MiB)",
        mib(flood_peak),
        mib(restarted_peak),
        RSS_BOUND / MIB
    );
}

/// A notice that concerns the test's accounts, served a day ago for 40 days from now.
async fn amendment_of_the_group(t: &TestCtx) -> String {
    let notice = t.name("dpa");
    t.track(NOTICES, &notice);
    let now = Timestamp::now().as_second();
    let mut n = fixtures::notice(
        &notice,
        NoticeType::Amendment,
        "The data processing addendum changes.",
        Timestamp::from_second(now + 40 * 86_400).unwrap(),
        &[(GROUP, &t.suffix)],
    );
    n.spec.url = Some("https://example.com/dpa-v2".to_string());
    n.spec.served_at = Some(Time(Timestamp::from_second(now - 86_400).unwrap()));
    t.apply(&n).await;
    notice
}

/// Too big: the API server refuses an answer over the bounds, saying why, before anything is stored
/// or watched.
async fn assert_answers_over_the_bounds_are_refused(answers: &Api<NoticeResponse>, notice: &str) {
    let pp = PostParams::default();
    // Too big: the API server refuses it, saying why, before anything is stored or watched.
    let many_labels: serde_json::Map<String, Value> = (0..6000)
        .map(|i| (format!("flood.example/l{i}"), json!("x".repeat(40))))
        .collect();
    let s = api_error(
        "an answer with 6000 labels",
        answers
            .create(
                &pp,
                &answer(
                    json!({ "generateName": "flood-", "labels": many_labels }),
                    notice,
                ),
            )
            .await,
    );
    assert!(
        s.message.contains("at most 16 labels and annotations"),
        "an answer with 6000 labels was refused, but not by the bound: {}",
        s.message
    );
    let s = api_error(
        "an answer with 4097 bytes of annotations",
        answers
            .create(
                &pp,
                &answer(
                    json!({ "generateName": "flood-", "annotations": annotations(1, ANSWER_BYTES + 1) }),
                    notice,
                ),
            )
            .await,
    );
    assert!(
        s.message.contains("at most 4096 bytes"),
        "an answer with 4097 bytes of annotations was refused, but not by the bound: {}",
        s.message
    );
    let s = api_error(
        "an answer named with 64 characters",
        answers
            .create(&pp, &answer(json!({ "name": "a".repeat(64) }), notice))
            .await,
    );
    assert!(
        s.message.contains("at most 63 characters"),
        "an answer with a 64-character name was refused, but not by the bound: {}",
        s.message
    );
}

/// As many answers as the bounds allow, each as big as they allow, as fast as the tenant can make
/// them, until the quota refuses one; then until the operator judged them all. Returns how many, and
/// when they were made and judged.
async fn flood_the_namespace(
    t: &TestCtx,
    answers: &Api<NoticeResponse>,
    ns: &str,
    notice: &str,
    flood_started: Instant,
) -> (usize, Duration, Duration) {
    let pp = PostParams::default();
    let big = json!({
        "generateName": format!("{}-", "a".repeat(57)),
        "annotations": annotations(ANSWER_ENTRIES, ANSWER_BYTES),
    });
    let mut made = 0;
    let refusal = loop {
        match answers.create(&pp, &answer(big.clone(), notice)).await {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(
            made <= ANSWERS_PER_NAMESPACE,
            "{made} answers admitted in one namespace"
        );
    };
    let fill = flood_started.elapsed();
    assert_eq!(
        made, ANSWERS_PER_NAMESPACE,
        "the flood stopped early: {refusal}"
    );
    let s = api_error("one answer too many", Err::<(), _>(refusal));
    assert!(
        s.code == 403 && s.message.contains("exceeded quota: covenant-bounds"),
        "the answer after the bound was refused, but not by the quota: {}",
        s.message
    );
    // The operator judges every answer (each gets its Honoured condition).
    let admin_answers: Api<NoticeResponse> = Api::namespaced(t.client.clone(), ns);
    eventually(
        "the operator judged every answer",
        Duration::from_secs(120),
        || async {
            let list = admin_answers
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let judged = list
                .items
                .iter()
                .filter(|r| r.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
                .count();
            if judged == ANSWERS_PER_NAMESPACE {
                Ok(())
            } else {
                Err(format!("{judged} of {ANSWERS_PER_NAMESPACE} judged"))
            }
        },
    )
    .await;
    (made, fill, flood_started.elapsed())
}

fn binding(name: &str, subjects: Value, metadata: Value) -> RoleBinding {
    let mut m = json!({ "name": name });
    if let (Value::Object(m), Value::Object(extra)) = (&mut m, metadata) {
        m.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": m,
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": subjects
    }))
    .expect("a RoleBinding")
}

async fn names_bob(client: &Client, ns: &str, bob: &str) -> Vec<String> {
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list RoleBindings")
        .items
        .into_iter()
        .filter(|rb| rb.subjects.iter().flatten().any(|s| s.name == bob))
        .filter_map(|rb| rb.metadata.name)
        .collect()
}

/// Room for 150 RoleBindings in the bindings test's namespace (Covenant's own two among them), so
/// the consent sweep reads two pages.
const ROLEBINDINGS_HARD: usize = 150;

#[tokio::test]
async fn a_tenants_role_bindings_and_ingresses_are_bounded_and_consent_is_withdrawn_from_all_bindings()
 {
    let _serial = SERIAL.lock().await;
    let t = TestCtx::new("flood-bindings").await;
    let bob = t.name("bob");
    let quota = fixtures::resources(
        json!({ "count/rolebindings.rbac.authorization.k8s.io": ROLEBINDINGS_HARD.to_string() }),
    );
    let acme = t
        .tenant("acme")
        .label(GROUP, &t.suffix)
        .spec(|s| {
            s.allowed_subjects = vec![fixtures::user(&bob)];
            s.quota = Some(quota);
        })
        .await;
    let (account, admin) = (acme.account.clone(), acme.admin.clone());
    let ns = account.clone();
    wait_bounds_counted(
        &t,
        &ns,
        "count/rolebindings.rbac.authorization.k8s.io",
        &ROLEBINDINGS_HARD.to_string(),
    )
    .await;
    let alice = impersonate(&admin, &[]).await;
    let rbs: Api<RoleBinding> = Api::namespaced(alice.clone(), &ns);
    let bob_subject =
        json!([{ "kind": "User", "name": bob, "apiGroup": "rbac.authorization.k8s.io" }]);

    assert_bindings_over_the_bounds_are_refused(&rbs, &ns, &bob_subject).await;
    // As many as the quota allows, each as big as the policy allows, each naming bob.
    let sampler = Sampler::start();
    let (_, before) = memory();
    let made = fill_with_bindings_naming_bob(&t, &rbs, &ns, &bob_subject).await;
    assert_ingresses_are_bounded(&t, &alice, &ns).await;
    // Consent withdrawn: bob leaves allowedSubjects; the sweep reads every binding a page at a time
    // and takes bob out of each one (the authorizer's answer is the effect).
    let withdrawn = Instant::now();
    let mut withdrawn_from_bob = acme.applied.clone();
    withdrawn_from_bob.spec.allowed_subjects.clear();
    t.apply(&withdrawn_from_bob).await;
    eventually(
        "no RoleBinding names bob any more",
        Duration::from_secs(120),
        || async {
            let left = names_bob(&t.client, &ns, &bob).await;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{} still name bob", left.len()))
            }
        },
    )
    .await;
    assert!(
        !covenant_e2e::can(&t.client, &bob, &[], "get", "pods", "", &ns).await,
        "bob may still read pods in {ns}"
    );
    let swept = withdrawn.elapsed();
    let peak = sampler.stop();
    eprintln!(
        "consent withdrawn from {made} RoleBindings of {BINDING_BYTES} bytes of metadata in {:.1} s; \
         operator memory {:.1} MiB before, peak {:.1} MiB",
        swept.as_secs_f64(),
        mib(before),
        mib(peak)
    );
    assert!(
        peak <= before + FLOOD_GROWTH_BOUND && peak <= RSS_BOUND,
        "the operator grew from {:.1} MiB to {:.1} MiB over the sweep",
        mib(before),
        mib(peak)
    );
}

/// Too big, each way (subjects, a subject's name, annotations by number and by size): refused by the
/// API server, saying why.
async fn assert_bindings_over_the_bounds_are_refused(
    rbs: &Api<RoleBinding>,
    ns: &str,
    bob_subject: &Value,
) {
    let pp = PostParams::default();
    // Too big, each way: refused by the API server, saying why.
    let many: Vec<Value> = (0..=BINDING_SUBJECTS)
        .map(|i| json!({ "kind": "ServiceAccount", "name": format!("sa-{i}"), "namespace": ns }))
        .collect();
    let refused = [
        (
            "101 subjects",
            binding("too-many-subjects", json!(many), json!({})),
            "at most 100 subjects",
        ),
        (
            "a subject named with 257 characters",
            binding(
                "long-subject",
                json!([{ "kind": "User", "name": "u".repeat(257), "apiGroup": "rbac.authorization.k8s.io" }]),
                json!({}),
            ),
            "at most 256 characters",
        ),
        (
            "33 annotations",
            binding(
                "many-annotations",
                bob_subject.clone(),
                json!({ "annotations": annotations(BINDING_ENTRIES + 1, 2048) }),
            ),
            "at most 32 labels and annotations",
        ),
        (
            "32769 bytes of annotations",
            binding(
                "big-annotations",
                bob_subject.clone(),
                json!({ "annotations": annotations(4, BINDING_BYTES + 1) }),
            ),
            "at most 32768 bytes",
        ),
    ];
    for (what, rb, says) in refused {
        let s = api_error(what, rbs.create(&pp, &rb).await);
        assert!(
            s.message.contains(says),
            "a RoleBinding with {what} was refused, but not by its bound: {}",
            s.message
        );
    }
}

/// As many RoleBindings as the quota allows, each as big as the policy allows, each naming bob, until
/// the quota refuses one. Returns how many were made.
async fn fill_with_bindings_naming_bob(
    t: &TestCtx,
    rbs: &Api<RoleBinding>,
    ns: &str,
    bob_subject: &Value,
) -> usize {
    let pp = PostParams::default();
    let big = json!({ "annotations": annotations(BINDING_ENTRIES, BINDING_BYTES) });
    let mut made = 0;
    let refusal = loop {
        match rbs
            .create(
                &pp,
                &binding(&format!("bob-{made:03}"), bob_subject.clone(), big.clone()),
            )
            .await
        {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(
            made <= ROLEBINDINGS_HARD,
            "{made} RoleBindings admitted in one namespace"
        );
    };
    let s = api_error("one RoleBinding too many", Err::<(), _>(refusal));
    // The raised count is in the package's quota and in the bounds quota alike: whichever the
    // API server checks first refuses it, by the count of RoleBindings.
    assert!(
        s.code == 403
            && (s.message.contains("exceeded quota: covenant-bounds")
                || s.message.contains("exceeded quota: covenant-quota"))
            && s.message.contains(&format!(
                "limited: count/rolebindings.rbac.authorization.k8s.io={ROLEBINDINGS_HARD}"
            )),
        "the RoleBinding after the bound was refused, but not by the quota: {}",
        s.message
    );
    let all = Api::<RoleBinding>::namespaced(t.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list RoleBindings")
        .items
        .len();
    assert_eq!(
        all, ROLEBINDINGS_HARD,
        "the quota admitted {all} RoleBindings, not {ROLEBINDINGS_HARD}"
    );
    assert!(
        made > 100,
        "only {made} bindings: the sweep would read one page"
    );
    made
}

/// Ingresses, which the operator caches (for their hosts): as many as the default bound allows, then
/// the quota refuses.
async fn assert_ingresses_are_bounded(t: &TestCtx, alice: &Client, ns: &str) {
    let pp = PostParams::default();
    // Ingresses, which the operator caches (for their hosts): as many as the default bound allows.
    let ingresses: Api<Ingress> = Api::namespaced(alice.clone(), ns);
    let mut made_ingresses = 0;
    let refusal = loop {
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": { "name": format!("web-{made_ingresses:03}") },
            "spec": { "rules": [{ "host": format!("web-{made_ingresses:03}.{}.example", t.suffix) }] }
        }))
        .expect("an Ingress");
        match ingresses.create(&pp, &ing).await {
            Ok(_) => made_ingresses += 1,
            Err(e) => break e,
        }
        assert!(
            made_ingresses <= INGRESSES_PER_NAMESPACE,
            "{made_ingresses} Ingresses admitted"
        );
    };
    let s = api_error("one Ingress too many", Err::<(), _>(refusal));
    assert!(
        made_ingresses == INGRESSES_PER_NAMESPACE
            && s.code == 403
            && s.message.contains("exceeded quota: covenant-bounds"),
        "after {made_ingresses} Ingresses one was refused, but not by the quota: {}",
        s.message
    );
}
