//! What a tier allows, by effect: a SupportPackage's `policies` (registries, classes, forced node
//! labels, tolerations, Ingress hostnames and snippets), narrowed by its Accounts, enforced by the API server on every path that makes
//! a pod. Each case is a real request to the real control plane — as the tenant's administrator and as
//! a ServiceAccount of the tenant with edit rights — and what the API server answers (or what it
//! stored, read back) is what counts. There is no kubelet, so pods never run.

use covenant::api::{
    AllowedToleration, ClassPolicy, HostnamePolicy, ImagePolicy, IngressPolicy, Policies,
    SchedulingPolicy, SupportPackage, TolerationPolicy,
};
use covenant_e2e::fixtures::{self, api_error, restricted_pod_spec};
use covenant_e2e::{TIMEOUT, TenantBuilder, TestCtx, condition, eventually, impersonate};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const ALLOWED_REGISTRIES: &str = "registry.k8s.io/, docker.io/library/";

/// A package whose tier allows two registries, two storage classes (default `standard`), one
/// ingress class, one priority class (also the default), forces `pool=tenants` and allows one
/// toleration.
fn package_with_policies(name: &str, priority: &str) -> SupportPackage {
    let quota = json!({ "pods": "40", "requests.cpu": "8" });
    let mut p = fixtures::package(name, quota);
    p.spec.policies = Some(Policies {
        images: Some(registries(&["registry.k8s.io/", "docker.io/library/"])),
        storage_classes: Some(classes(&["standard", "fast"], Some("standard"))),
        ingress_classes: Some(classes(&["public"], None)),
        priority_classes: Some(classes(&[priority], Some(priority))),
        scheduling: Some(SchedulingPolicy {
            node_selector: fixtures::map(&[("pool", "tenants")]),
        }),
        tolerations: Some(TolerationPolicy {
            allowed: vec![AllowedToleration {
                key: Some("dedicated".into()),
                operator: None,
                value: Some("tenants".into()),
                effect: Some("NoSchedule".into()),
            }],
        }),
        ..Default::default()
    });
    p
}

/// An image policy allowing `allowed` registries.
fn registries(allowed: &[&str]) -> ImagePolicy {
    ImagePolicy {
        allowed_registries: allowed.iter().map(|r| r.to_string()).collect(),
    }
}

/// A class policy allowing `allowed`, with `default`.
fn classes(allowed: &[&str], default: Option<&str>) -> ClassPolicy {
    ClassPolicy {
        allowed: allowed.iter().map(|c| c.to_string()).collect(),
        default: default.map(String::from),
    }
}

/// Policies allowing the Ingress hosts `allowed` (and nothing else said).
fn hostnames(allowed: &[String]) -> Policies {
    Policies {
        hostnames: Some(HostnamePolicy {
            allowed: allowed.to_vec(),
        }),
        ..Default::default()
    }
}

/// A SupportPackage `base-<suffix>` with the default quota and `policies`.
async fn package_of(t: &TestCtx, base: &str, policies: Option<Policies>) -> String {
    let name = t.package(base);
    let mut p = fixtures::package(&name, fixtures::default_quota());
    p.spec.policies = policies;
    t.apply(&p).await;
    name
}

fn object<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

fn pod_with(name: &str, image: &str, extra: Value) -> Pod {
    let mut spec = restricted_pod_spec();
    spec["containers"][0]["image"] = json!(image);
    if let Value::Object(extra) = extra {
        spec.as_object_mut().unwrap().extend(extra);
    }
    object(json!({ "metadata": { "name": name }, "spec": spec }))
}

fn template(image: &str, extra: Value) -> Value {
    let mut spec = restricted_pod_spec();
    spec["containers"][0]["image"] = json!(image);
    if let Value::Object(extra) = extra {
        spec.as_object_mut().unwrap().extend(extra);
    }
    json!({ "metadata": { "labels": { "app": "w" } }, "spec": spec })
}

fn deployment_with(name: &str, image: &str, extra: Value) -> Deployment {
    object(json!({
        "metadata": { "name": name },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "w" } }, "template": template(image, extra) }
    }))
}

fn cronjob_with(name: &str, image: &str) -> CronJob {
    let mut t = template(image, json!({ "restartPolicy": "Never" }));
    t["metadata"] = json!({});
    object(json!({
        "metadata": { "name": name },
        "spec": { "schedule": "0 0 * * *", "jobTemplate": { "spec": { "template": t } } }
    }))
}

fn job_with(name: &str, image: &str, extra: Value) -> Job {
    let mut t = template(image, extra);
    t["metadata"] = json!({});
    t["spec"]["restartPolicy"] = json!("Never");
    object(json!({ "metadata": { "name": name }, "spec": { "template": t } }))
}

/// `Ok` when `r` was refused with a message naming `policy` and every one of `allowed`.
fn refused<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, kube::Error>,
    policy: &str,
    allowed: &str,
) -> Result<(), String> {
    match r {
        Err(kube::Error::Api(s)) if s.message.contains(policy) && s.message.contains(allowed) => {
            Ok(())
        }
        Err(e) => Err(format!(
            "{what}: refused, but not by {policy} naming {allowed}: {e}"
        )),
        Ok(v) => Err(format!(
            "{what}: admitted, but {policy} should refuse it: {v:?}"
        )),
    }
}

fn admitted<T>(what: &str, r: Result<T, kube::Error>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: refused, but the tier allows it: {e}"))
}

/// Every pod path, as `client` (one identity of the tenant) in `ns`; `tag` keeps names apart.
async fn try_every_path(client: &Client, ns: &str, tag: &str, priority: &str) -> Vec<String> {
    let mut failures = try_pods(client, ns, tag).await;
    failures.extend(try_workloads(client, ns, tag, priority).await);
    failures.extend(try_classes(client, ns, tag).await);
    failures
}

/// Pods: images from the allowed registries (in the forms a tenant writes them) with the forced
/// node labels, nothing else; an init container is a container too.
async fn try_pods(client: &Client, ns: &str, tag: &str) -> Vec<String> {
    let pp = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut failures = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(e);
        }
    };
    // Images: allowed registries, in the forms a tenant writes them.
    for (i, image) in [
        "registry.k8s.io/pause:3.10",
        "nginx:1.27",
        "library/busybox",
        "docker.io/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("{tag}-ok-{i}");
        match admitted(
            image,
            pods.create(&pp, &pod_with(&name, image, json!({}))).await,
        ) {
            // The forced node labels are on the pod the API server stored.
            Ok(p) => {
                let sel = p.spec.and_then(|s| s.node_selector).unwrap_or_default();
                if sel.get("pool").map(String::as_str) != Some("tenants") {
                    check(Err(format!(
                        "pod {name}: nodeSelector {sel:?} lacks the forced pool=tenants"
                    )));
                }
            }
            Err(e) => check(Err(e)),
        }
    }
    // A pod that asks for another pool gets the forced one.
    match admitted(
        "a pod asking for pool=gpu",
        pods.create(
            &pp,
            &pod_with(
                &format!("{tag}-pool"),
                "registry.k8s.io/pause:3.10",
                json!({ "nodeSelector": { "pool": "gpu" } }),
            ),
        )
        .await,
    ) {
        Ok(p) => {
            let sel = p.spec.and_then(|s| s.node_selector).unwrap_or_default();
            if sel.get("pool").map(String::as_str) != Some("tenants") {
                check(Err(format!(
                    "pod asking for pool=gpu was stored with {sel:?}"
                )));
            }
        }
        Err(e) => check(Err(e)),
    }
    for (i, image) in [
        "evil.io/miner",
        "foo/bar",
        "registry.k8s.io.evil.io/pause",
        "localhost:5000/x",
        "quay.io/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]
    .iter()
    .enumerate()
    {
        check(refused(
            &format!("pod with image {image}"),
            pods.create(&pp, &pod_with(&format!("{tag}-bad-{i}"), image, json!({})))
                .await,
            "covenant-images",
            ALLOWED_REGISTRIES,
        ));
    }
    // An init container is a container too.
    let mut init = pod_with(
        &format!("{tag}-init"),
        "registry.k8s.io/pause:3.10",
        json!({}),
    );
    let mut c = init.spec.as_ref().unwrap().containers[0].clone();
    c.name = "init".into();
    c.image = Some("evil.io/init".into());
    init.spec.as_mut().unwrap().init_containers = Some(vec![c]);
    check(refused(
        "an init container from evil.io",
        pods.create(&pp, &init).await,
        "covenant-images",
        ALLOWED_REGISTRIES,
    ));
    failures
}

/// Workloads: the pod template is judged when the workload is made.
async fn try_workloads(client: &Client, ns: &str, tag: &str, priority: &str) -> Vec<String> {
    let pp = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let mut failures = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(e);
        }
    };
    // Workloads: the pod template is judged when the workload is made.
    check(
        admitted(
            "a Deployment from registry.k8s.io",
            deployments
                .create(
                    &pp,
                    &deployment_with(
                        &format!("{tag}-web"),
                        "registry.k8s.io/pause:3.10",
                        json!({}),
                    ),
                )
                .await,
        )
        .map(|_| ()),
    );
    check(refused(
        "a Deployment from evil.io",
        deployments
            .create(
                &pp,
                &deployment_with(&format!("{tag}-evil"), "evil.io/x:1", json!({})),
            )
            .await,
        "covenant-images",
        ALLOWED_REGISTRIES,
    ));
    check(refused(
        "a Deployment overriding the forced pool",
        deployments
            .create(
                &pp,
                &deployment_with(
                    &format!("{tag}-gpu"),
                    "registry.k8s.io/pause:3.10",
                    json!({ "nodeSelector": { "pool": "gpu" } }),
                ),
            )
            .await,
        "covenant-scheduling",
        "forced: pool=tenants",
    ));
    match admitted(
        "a CronJob from docker.io/library",
        cronjobs
            .create(&pp, &cronjob_with(&format!("{tag}-cron"), "busybox:1.36"))
            .await,
    ) {
        // The tier's default PriorityClass is set on the template that named none.
        Ok(cj) => {
            let got = serde_json::to_value(&cj)
                .unwrap()
                .pointer("/spec/jobTemplate/spec/template/spec/priorityClassName")
                .and_then(Value::as_str)
                .map(str::to_string);
            if got.as_deref() != Some(priority) {
                check(Err(format!(
                    "CronJob template priorityClassName {got:?}, expected the default {priority}"
                )));
            }
        }
        Err(e) => check(Err(e)),
    }
    check(refused(
        "a CronJob from ghcr.io",
        cronjobs
            .create(
                &pp,
                &cronjob_with(&format!("{tag}-cron-bad"), "ghcr.io/x/y:1"),
            )
            .await,
        "covenant-images",
        ALLOWED_REGISTRIES,
    ));
    check(admitted(
        "a Job tolerating dedicated=tenants:NoSchedule",
        jobs.create(&pp, &job_with(&format!("{tag}-job"), "registry.k8s.io/pause:3.10", json!({ "tolerations": [{ "key": "dedicated", "value": "tenants", "effect": "NoSchedule" }] }))).await,
    ).map(|_| ()));
    check(refused(
        "a Job tolerating every taint",
        jobs.create(
            &pp,
            &job_with(
                &format!("{tag}-job-any"),
                "registry.k8s.io/pause:3.10",
                json!({ "tolerations": [{ "operator": "Exists" }] }),
            ),
        )
        .await,
        "covenant-scheduling",
        "allowed: dedicated=tenants:NoSchedule",
    ));
    check(refused(
        "a pod with PriorityClass system-cluster-critical",
        pods.create(
            &pp,
            &pod_with(
                &format!("{tag}-crit"),
                "registry.k8s.io/pause:3.10",
                json!({ "priorityClassName": "system-cluster-critical" }),
            ),
        )
        .await,
        "covenant-scheduling",
        &format!("allowed: {priority}"),
    ));
    check(refused(
        "a pod naming its node",
        pods.create(
            &pp,
            &pod_with(
                &format!("{tag}-node"),
                "registry.k8s.io/pause:3.10",
                json!({ "nodeName": "any-node" }),
            ),
        )
        .await,
        "covenant-scheduling",
        "forced: pool=tenants",
    ));
    failures
}

/// Classes: storage (with its default) and ingress.
async fn try_classes(client: &Client, ns: &str, tag: &str) -> Vec<String> {
    let pp = PostParams::default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let mut failures = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(e);
        }
    };
    // Classes: storage (with its default) and ingress.
    let claim = |name: &str, class: Option<&str>| -> PersistentVolumeClaim {
        let mut spec = json!({ "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } });
        if let Some(c) = class {
            spec["storageClassName"] = json!(c);
        }
        object(json!({ "metadata": { "name": name }, "spec": spec }))
    };
    match admitted(
        "a claim naming no class",
        pvcs.create(&pp, &claim(&format!("{tag}-data"), None)).await,
    ) {
        Ok(c) => {
            let got = c.spec.and_then(|s| s.storage_class_name);
            if got.as_deref() != Some("standard") {
                check(Err(format!(
                    "claim naming no class got {got:?}, expected the default standard"
                )));
            }
        }
        Err(e) => check(Err(e)),
    }
    check(
        admitted(
            "a claim of class fast",
            pvcs.create(&pp, &claim(&format!("{tag}-fast"), Some("fast")))
                .await,
        )
        .map(|_| ()),
    );
    check(refused(
        "a claim of class premium",
        pvcs.create(&pp, &claim(&format!("{tag}-premium"), Some("premium")))
            .await,
        "covenant-classes",
        "allowed: standard, fast",
    ));
    let ingress = |name: &str, class: Value, annotations: Value| -> Ingress {
        object(json!({
            "metadata": { "name": name, "annotations": annotations },
            "spec": { "ingressClassName": class, "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } }
        }))
    };
    check(
        admitted(
            "an Ingress of class public",
            ingresses
                .create(
                    &pp,
                    &ingress(&format!("{tag}-pub"), json!("public"), json!({})),
                )
                .await,
        )
        .map(|_| ()),
    );
    check(refused(
        "an Ingress of class internal",
        ingresses
            .create(
                &pp,
                &ingress(&format!("{tag}-int"), json!("internal"), json!({})),
            )
            .await,
        "covenant-classes",
        "allowed: public",
    ));
    check(refused(
        "an Ingress naming class internal by the legacy annotation",
        ingresses
            .create(
                &pp,
                &ingress(
                    &format!("{tag}-legacy"),
                    Value::Null,
                    json!({ "kubernetes.io/ingress.class": "internal" }),
                ),
            )
            .await,
        "covenant-classes",
        "allowed: public",
    ));
    failures
}

/// A tenant `base-<suffix>` on `package` administered by `admin`, whose administrator bound a
/// ServiceAccount `deployer` to the built-in `edit` role in its namespace; returns the namespace.
async fn with_deployer(t: &TestCtx, tenant: TenantBuilder<'_>) -> String {
    let ns = tenant.await.ns;
    t.apply(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": { "name": "deployer", "namespace": ns }
    }))
    .await;
    t.apply(&json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "deployer-edit", "namespace": ns },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
        "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": ns }]
    }))
    .await;
    ns
}

async fn priority_class(t: &TestCtx, base: &str) -> String {
    let name = t.name(base);
    t.track("priorityclasses.scheduling.k8s.io", &name);
    t.apply(&json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": { "name": name }, "value": 100
    }))
    .await;
    name
}

#[tokio::test]
async fn a_tier_admits_what_it_allows_and_refuses_the_rest_on_every_pod_path() {
    let t = TestCtx::new("policies-paths").await;
    let priority = priority_class(&t, "tenant-low").await;
    let pkg = t.package("gold");
    t.apply(&package_with_policies(&pkg, &priority)).await;
    let admin = format!("alice-{}", t.suffix);
    let ns = with_deployer(&t, t.tenant("acme").package(&pkg).admin(&admin).retain()).await;

    let mut failures = Vec::new();
    let alice = impersonate(&admin, &[]).await;
    failures.extend(try_every_path(&alice, &ns, "admin", &priority).await);
    let sa = impersonate(
        &format!("system:serviceaccount:{ns}:deployer"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
        ],
    )
    .await;
    failures.extend(try_every_path(&sa, &ns, "sa", &priority).await);

    // Ephemeral containers (kubectl debug) are a path to a new container in a running pod: neither
    // tenant role grants pods/ephemeralcontainers, so this is tried with the cluster admin, whom the
    // policies do not exempt either.
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);
    let debug = |image: &str, name: &str| {
        json!({ "spec": { "ephemeralContainers": [{
            "name": name, "image": image,
            "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
        }] } })
    };
    let ephemeral = |patch: Value| {
        let pods = pods.clone();
        async move {
            pods.patch_subresource(
                "ephemeralcontainers",
                "admin-ok-0",
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        }
    };
    if let Err(e) = refused(
        "an ephemeral container from evil.io",
        ephemeral(debug("evil.io/debug", "dbg")).await,
        "covenant-images",
        ALLOWED_REGISTRIES,
    ) {
        failures.push(e);
    }
    if let Err(e) = admitted(
        "an ephemeral container of busybox",
        ephemeral(debug("busybox:1.36", "dbg2")).await,
    ) {
        failures.push(e);
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_account_on_a_package_without_policies_is_unaffected() {
    let t = TestCtx::new("policies-none").await;
    let pkg = package_of(&t, "plain", None).await;
    let admin = format!("bob-{}", t.suffix);
    let ns = with_deployer(&t, t.tenant("plain").package(&pkg).admin(&admin).retain()).await;
    let bob = impersonate(&admin, &[]).await;
    let pods: Api<Pod> = Api::namespaced(bob, &ns);
    let p = pods
        .create(
            &PostParams::default(),
            &pod_with(
                "anything",
                "evil.io/miner:1",
                json!({ "nodeSelector": { "pool": "gpu" } }),
            ),
        )
        .await
        .expect("a package without policies restricts no registry");
    assert_eq!(
        p.spec
            .and_then(|s| s.node_selector)
            .unwrap_or_default()
            .get("pool")
            .map(String::as_str),
        Some("gpu"),
        "no node label is forced"
    );
}

#[tokio::test]
async fn an_account_narrows_its_package_and_cannot_widen_it() {
    let t = TestCtx::new("policies-narrow").await;
    let priority = priority_class(&t, "tenant-low").await;
    let pkg = t.package("gold");
    t.apply(&package_with_policies(&pkg, &priority)).await;
    let admin = format!("carol-{}", t.suffix);
    let wide = t.account("wide");
    let accounts: Api<kube::core::DynamicObject> = Api::all_with(
        t.client.clone(),
        &kube::discovery::ApiResource::erase::<covenant::api::Account>(&()),
    );
    let mut widening = fixtures::account(&wide, Some(&pkg), &[], &[&admin], json!({}));
    widening.spec.policies = Some(Policies {
        images: Some(registries(&["registry.k8s.io/", "evil.io/"])),
        storage_classes: Some(classes(&["premium"], None)),
        ..Default::default()
    });
    let obj: kube::core::DynamicObject =
        serde_json::from_value(serde_json::to_value(&widening).unwrap()).unwrap();
    // The API server loads a policy whose params are a custom resource once it discovers the kind.
    let message = eventually(
        "the API server refuses an Account that widens its package",
        TIMEOUT * 4,
        || {
            let accounts = accounts.clone();
            let obj = obj.clone();
            async move {
                match accounts
                    .create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &obj,
                    )
                    .await
                {
                    Err(kube::Error::Api(s)) if s.message.contains("covenant-account-policies") => {
                        Ok(s.message)
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    for needle in [
        "evil.io/",
        "premium",
        "registry.k8s.io/, docker.io/library/",
        "standard, fast",
    ] {
        assert!(
            message.contains(needle),
            "the refusal names {needle}: {message}"
        );
    }

    // Narrowing is admitted and is what the API server enforces in the account's namespace.
    let ns = with_deployer(
        &t,
        t.tenant("narrow")
            .package(&pkg)
            .admin(&admin)
            .retain()
            .spec(|s| {
                s.policies = Some(Policies {
                    images: Some(registries(&["registry.k8s.io/pause"])),
                    ..Default::default()
                })
            }),
    )
    .await;
    let carol = impersonate(&admin, &[]).await;
    let pods: Api<Pod> = Api::namespaced(carol, &ns);
    let pp = PostParams::default();
    pods.create(
        &pp,
        &pod_with("pause", "registry.k8s.io/pause:3.10", json!({})),
    )
    .await
    .expect("the narrowed registry is allowed");
    let e = api_error(
        "nginx, allowed by the package but not the account",
        pods.create(&pp, &pod_with("nginx", "nginx:1.27", json!({})))
            .await,
    );
    assert!(
        e.message.contains("covenant-images")
            && e.message.contains("allowed: registry.k8s.io/pause"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_package_tightened_under_a_running_tenant_deletes_nothing() {
    let t = TestCtx::new("policies-tighten").await;
    let priority = priority_class(&t, "tenant-low").await;
    let pkg = t.package("gold");
    t.apply(&package_with_policies(&pkg, &priority)).await;
    let admin = format!("dave-{}", t.suffix);
    let ns = with_deployer(&t, t.tenant("acme").package(&pkg).admin(&admin).retain()).await;
    let dave = impersonate(&admin, &[]).await;
    let pods: Api<Pod> = Api::namespaced(dave.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(dave, &ns);
    let pp = PostParams::default();
    pods.create(&pp, &pod_with("old", "nginx:1.27", json!({})))
        .await
        .expect("docker.io/library is allowed");
    deployments
        .create(&pp, &deployment_with("old", "nginx:1.27", json!({})))
        .await
        .expect("docker.io/library is allowed");

    // The platform drops docker.io/library/ from the tier.
    let mut p = package_with_policies(&pkg, &priority);
    p.spec.policies.as_mut().unwrap().images = Some(registries(&["registry.k8s.io/"]));
    t.apply(&p).await;
    eventually(
        "new pods from docker.io/library are refused",
        TIMEOUT,
        || {
            let pods = pods.clone();
            async move {
                refused(
                    "a new pod from docker.io/library",
                    pods.create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &pod_with("new", "nginx:1.27", json!({})),
                    )
                    .await,
                    "covenant-images",
                    "allowed: registry.k8s.io/",
                )
            }
        },
    )
    .await;
    assert_the_account_reports_what_the_tier_no_longer_allows(&t, &ns).await;
    // The tenant can still operate what it runs: scale, relabel, delete.
    pods.get("old")
        .await
        .expect("the running pod is not deleted");
    deployments
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .expect("a Deployment whose image the tier no longer allows can still be scaled");
    pods.patch(
        "old",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "note": "kept" } } })),
    )
    .await
    .expect("a pod whose image the tier no longer allows can still be relabelled");
    pods.delete("old", &DeleteParams::default())
        .await
        .expect("and deleted");
}

/// What runs stays, and is reported on the Account: a condition naming the pod, and an Event.
async fn assert_the_account_reports_what_the_tier_no_longer_allows(t: &TestCtx, ns: &str) {
    // What runs stays, and is reported on the Account: a condition naming the pod, and an Event.
    let accounts: Api<covenant::api::Account> = Api::all(t.client.clone());
    let report = eventually(
        "the Account reports the pod the tier no longer allows",
        TIMEOUT * 2,
        || {
            let accounts = accounts.clone();
            let ns = ns.to_string();
            async move {
                let a = accounts.get(&ns).await.map_err(|e| e.to_string())?;
                match condition(&a, "PoliciesCompliant") {
                    Some(c)
                        if c.status == "False"
                            && c.message.contains(&format!("{ns}/old: image nginx:1.27")) =>
                    {
                        Ok(c.message.clone())
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    assert!(report.contains("nothing was deleted"), "{report}");
    assert!(report.contains("allowed: registry.k8s.io/"), "{report}");
    eventually("a Warning Event names the pod", TIMEOUT, || {
        let ns = ns.to_string();
        async move {
            let events = covenant_e2e::k8s::events_about(&ns);
            if events.contains("NotAllowedByTier") && events.contains(&format!("{ns}/old")) {
                Ok(())
            } else {
                Err(events)
            }
        }
    })
    .await;
}

/// An Ingress routing `hosts` (`""`: a rule without host, the catch-all) with `annotations`.
fn ingress_for(name: &str, hosts: &[&str], annotations: Value) -> Ingress {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let mut r = json!({ "http": { "paths": [{ "path": "/", "pathType": "Prefix",
                "backend": { "service": { "name": "web", "port": { "number": 80 } } } }] } });
            if !h.is_empty() {
                r["host"] = json!(h);
            }
            r
        })
        .collect();
    object(
        json!({ "metadata": { "name": name, "annotations": annotations }, "spec": { "rules": rules } }),
    )
}

/// The tier's hostnames and snippets, as `client` in `ns`: hosts under `*.<zone>` or `shop.<zone>` are
/// admitted, any other host, a wildcard wider than the tier's and a catch-all are refused naming the
/// policy and the patterns, and a configuration snippet is refused (this tier does not allow them).
async fn try_hosts(client: &Client, ns: &str, tag: &str, zone: &str) -> Vec<String> {
    let pp = PostParams::default();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let allowed = format!("allowed: *.{zone}, shop.{zone}");
    let mut failures = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(e);
        }
    };
    let shop = format!("shop.{zone}");
    let api = format!("{tag}-api.{zone}");
    let wild = format!("*.{zone}");
    check(
        admitted(
            "hosts the tier allows",
            ingresses
                .create(
                    &pp,
                    &ingress_for(&format!("{tag}-ok"), &[&api, &wild], json!({})),
                )
                .await,
        )
        .map(|_| ()),
    );
    for (i, host) in [
        format!("a.b.{zone}"),
        format!("www.shop.{zone}"),
        "shop.globex.example".to_string(),
    ]
    .iter()
    .enumerate()
    {
        check(refused(
            &format!("host {host}"),
            ingresses
                .create(
                    &pp,
                    &ingress_for(&format!("{tag}-bad-{i}"), &[host], json!({})),
                )
                .await,
            "covenant-allowed-hostnames",
            &allowed,
        ));
    }
    // A TLS host is judged like a rule host (and must be one: covenant-ingress-hosts-bounded may
    // answer first, naming the host).
    let mut tls = ingress_for(&format!("{tag}-tls"), &[&shop], json!({}));
    tls.spec.as_mut().unwrap().tls = Some(vec![object(
        json!({ "hosts": [shop, "evil.example"], "secretName": "cert" }),
    )]);
    let r = ingresses.create(&pp, &tls).await;
    if !matches!(&r, Err(kube::Error::Api(s)) if s.message.contains("covenant-ingress-hosts-bounded") && s.message.contains("evil.example"))
    {
        check(refused(
            "TLS host evil.example",
            r,
            "covenant-allowed-hostnames",
            &allowed,
        ));
    }
    // The catch-all. Another tenant of this cluster may hold it, in which case covenant-hostnames
    // may answer first; either way it is refused, and when the tier's policy answers it names the
    // patterns (the offline tests of the policy show its answer alone).
    match ingresses
        .create(&pp, &ingress_for(&format!("{tag}-all"), &[""], json!({})))
        .await
    {
        Err(kube::Error::Api(s))
            if (s.message.contains("covenant-allowed-hostnames")
                && s.message.contains("the catch-all")
                && s.message.contains(&allowed))
                || s.message.contains("covenant-hostnames") => {}
        other => check(Err(format!(
            "a catch-all: expected refused by covenant-allowed-hostnames, got {other:?}"
        ))),
    }
    check(refused(
        "a configuration snippet",
        ingresses
            .create(
                &pp,
                &ingress_for(
                    &format!("{tag}-snip"),
                    &[&shop],
                    json!({ "nginx.ingress.kubernetes.io/server-snippet": "location /x { return 200; }" }),
                ),
            )
            .await,
        "covenant-ingress-snippets",
        "allowSnippets",
    ));
    failures
}

#[tokio::test]
async fn a_tier_bounds_ingress_hosts_and_refuses_snippets_unless_it_allows_them() {
    let t = TestCtx::new("policies-hosts").await;
    let zone = format!("acme-{}.example", t.suffix);
    let pkg = package_of(
        &t,
        "hosted",
        Some(hostnames(&[format!("*.{zone}"), format!("shop.{zone}")])),
    )
    .await;
    let admin = format!("dave-{}", t.suffix);
    let ns = with_deployer(&t, t.tenant("hosts").package(&pkg).admin(&admin).retain()).await;

    let mut failures = Vec::new();
    let dave = impersonate(&admin, &[]).await;
    failures.extend(try_hosts(&dave, &ns, "admin", &zone).await);
    let sa = impersonate(
        &format!("system:serviceaccount:{ns}:deployer"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
        ],
    )
    .await;
    failures.extend(try_hosts(&sa, &ns, "sa", &zone).await);

    // A package without policies refuses snippets too; one that allows them admits them.
    let plain = package_of(&t, "plain", None).await;
    let open = package_of(
        &t,
        "snippets",
        Some(Policies {
            ingress: Some(IngressPolicy {
                allow_snippets: true,
            }),
            ..Default::default()
        }),
    )
    .await;
    let snippet = json!({ "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers \"X: y\";" });
    for (package, base, allows) in [(&plain, "plain", false), (&open, "open", true)] {
        let ns = with_deployer(&t, t.tenant(base).package(package).admin(&admin).retain()).await;
        let host = format!("{base}-{}.example", t.suffix);
        let r = Api::<Ingress>::namespaced(dave.clone(), &ns)
            .create(
                &PostParams::default(),
                &ingress_for("snippet", &[&host], snippet.clone()),
            )
            .await;
        let r = if allows {
            admitted("a snippet on a package that allows them", r).map(|_| ())
        } else {
            refused(
                "a snippet on a package without policies",
                r,
                "covenant-ingress-snippets",
                "allowSnippets",
            )
        };
        if let Err(e) = r {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_account_narrows_its_hostnames_and_cannot_widen_them() {
    let t = TestCtx::new("policies-hosts-narrow").await;
    let zone = format!("acme-{}.example", t.suffix);
    let pkg = package_of(&t, "hosted", Some(hostnames(&[format!("*.{zone}")]))).await;
    let admin = format!("erin-{}", t.suffix);
    let accounts: Api<kube::core::DynamicObject> = Api::all_with(
        t.client.clone(),
        &kube::discovery::ApiResource::erase::<covenant::api::Account>(&()),
    );
    let mut widening = fixtures::account(&t.account("wide"), Some(&pkg), &[], &[&admin], json!({}));
    widening.spec.policies = Some(Policies {
        ingress: Some(IngressPolicy {
            allow_snippets: true,
        }),
        ..hostnames(&["*.example".to_string(), format!("a.b.{zone}")])
    });
    let obj: kube::core::DynamicObject =
        serde_json::from_value(serde_json::to_value(&widening).unwrap()).unwrap();
    let message = eventually(
        "the API server refuses an Account that widens its package's hostnames",
        TIMEOUT * 4,
        || {
            let accounts = accounts.clone();
            let obj = obj.clone();
            async move {
                match accounts
                    .create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &obj,
                    )
                    .await
                {
                    Err(kube::Error::Api(s)) if s.message.contains("covenant-account-policies") => {
                        Ok(s.message)
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    for needle in [
        "policies.hostnames.allowed: *.example",
        &format!("a.b.{zone}"),
        &format!("(*.{zone})"),
        "policies.ingress.allowSnippets",
    ] {
        assert!(
            message.contains(needle),
            "the refusal names {needle}: {message}"
        );
    }

    // Narrowed to one host: the package's other hosts are refused in the account's namespace.
    let ns = with_deployer(
        &t,
        t.tenant("narrow")
            .package(&pkg)
            .admin(&admin)
            .retain()
            .spec(|s| s.policies = Some(hostnames(&[format!("shop.{zone}")]))),
    )
    .await;
    let erin = impersonate(&admin, &[]).await;
    let ingresses: Api<Ingress> = Api::namespaced(erin, &ns);
    let pp = PostParams::default();
    let shop = format!("shop.{zone}");
    ingresses
        .create(&pp, &ingress_for("shop", &[&shop], json!({})))
        .await
        .expect("the narrowed host is allowed");
    let api = format!("api.{zone}");
    let e = api_error(
        "a host the package allows but the account does not",
        ingresses
            .create(&pp, &ingress_for("api", &[&api], json!({})))
            .await,
    );
    assert!(
        e.message.contains("covenant-allowed-hostnames")
            && e.message.contains(&format!("allowed: shop.{zone}")),
        "{}",
        e.message
    );
}
