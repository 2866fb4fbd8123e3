//! A tier's policies attacked as a hostile tenant would: image references spelled so the policy and
//! the container runtime disagree on the registry, classes named by legacy annotations or not at all,
//! configuration snippets under another controller's prefix, TLS hosts that route nothing, nodes named
//! in templates, tolerations added to running pods, and the machinery itself (the namespace's policy
//! annotations, the hostname claims, bindings, cluster-scoped classes). Every request is real, made as
//! the tenant's administrator and as a ServiceAccount the administrator bound to a Role of its own
//! with its workload rights; the API server's answer (or, for the volume controller, what it did) is what is checked.
//! There is no kubelet, so pods never run.

use std::collections::BTreeMap;
use std::time::Duration;

use covenant::api::{Policies, SupportPackage};
use covenant_e2e::fixtures::{self, restricted_pod_spec};
use covenant_e2e::{TIMEOUT, TestCtx, condition, eventually, impersonate};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn object<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

/// A tenant's namespace, and clients of its administrator and of its ServiceAccount `deployer`,
/// which the administrator bound (itself) to a Role of its own with its workload rights.
struct Armed {
    ns: String,
    identities: Vec<(&'static str, Client)>,
}

/// A SupportPackage `name` (room for 40 pods) with `policies`.
fn package(name: &str, policies: Policies) -> SupportPackage {
    let mut p = fixtures::package(name, json!({ "pods": "40", "requests.cpu": "8" }));
    p.spec.policies = Some(policies);
    p
}

/// A tier's policies, as the operator's type (each field must be one it knows).
fn policies(v: Value) -> Policies {
    fixtures::with_fields("a tier's policies", Policies::default(), v)
}

/// A Ready tenant `base-<suffix>` on `pkg` whose administrator made the ServiceAccount `deployer`, a
/// Role of its own workload rights and a binding of the one to the other.
async fn armed(t: &TestCtx, base: &str, pkg: &str) -> Armed {
    let ten = t.tenant(base).package(pkg).await;
    let ns = ten.ns.clone();
    let a = ten.admin_client().await;
    let pp = PostParams::default();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(a.clone(), &ns)
        .create(&pp, &object(json!({ "metadata": { "name": "deployer" } })))
        .await
        .expect("the administrator creates a ServiceAccount");
    let verbs = json!([
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection"
    ]);
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(a.clone(), &ns)
        .create(
            &pp,
            &object(json!({
                "metadata": { "name": "deployer" },
                "rules": [
                    { "apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "configmaps"], "verbs": verbs },
                    { "apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"], "verbs": verbs },
                    { "apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": verbs },
                    { "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": verbs }
                ]
            })),
        )
        .await
        .expect("the administrator writes a Role with its own workload rights");
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(a.clone(), &ns)
        .create(
            &pp,
            &object(json!({
                "metadata": { "name": "deployer" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer" },
                "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": ns }]
            })),
        )
        .await
        .expect("the administrator binds its ServiceAccount to that Role");
    let user = format!("system:serviceaccount:{ns}:deployer");
    let groups = [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{ns}"),
    ];
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    // The API server's authorizer reads bindings from its own cache: a request made the instant the
    // binding is created may still be refused. Once it grants one rule of the Role, it has the binding
    // (and the Role, one object): wait for that.
    eventually(
        "the API server authorizes the bound ServiceAccount",
        TIMEOUT,
        || {
            let (client, user, groups, ns) =
                (t.client.clone(), user.clone(), groups.clone(), ns.clone());
            async move {
                if covenant_e2e::k8s::can(
                    &client,
                    &user,
                    &groups,
                    "create",
                    "persistentvolumeclaims",
                    "",
                    &ns,
                )
                .await
                {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            }
        },
    )
    .await;
    let sa = impersonate(&user, &groups).await;
    Armed {
        ns,
        identities: vec![("admin", a), ("sa", sa)],
    }
}

/// `Ok` when `r` was refused with a message holding every one of `words`.
fn refused<T>(what: &str, r: Result<T, kube::Error>, words: &[&str]) -> Result<(), String> {
    match r {
        Err(kube::Error::Api(s)) if words.iter().all(|w| s.message.contains(w)) => Ok(()),
        Err(e) => Err(format!("{what}: refused, but not naming {words:?}: {e}")),
        Ok(_) => Err(format!("{what}: admitted, but must be refused ({words:?})")),
    }
}

fn admitted<T>(what: &str, r: Result<T, kube::Error>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: refused, but the tier allows it: {e}"))
}

fn pod_spec(image: &str, extra: Value) -> Value {
    let mut spec = restricted_pod_spec();
    spec["containers"][0]["image"] = json!(image);
    if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
        s.extend(e);
    }
    spec
}

fn pod(name: &str, image: &str, extra: Value) -> Pod {
    object(json!({ "metadata": { "name": name }, "spec": pod_spec(image, extra) }))
}

fn template(image: &str, extra: Value) -> Value {
    json!({ "metadata": { "labels": { "app": "w" } }, "spec": pod_spec(image, extra) })
}

fn workload(name: &str, image: &str, extra: Value) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "w" } }, "template": template(image, extra) }
    })
}

const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[tokio::test]
async fn an_image_is_judged_by_the_registry_the_runtime_pulls_it_from() {
    let t = TestCtx::new("tier-images").await;
    let pkg = t.package("images");
    t.apply(&package(
        &pkg,
        policies(json!({ "images": { "allowedRegistries": ["docker.io/", "ghcr.io/acme"] } })),
    ))
    .await;
    let ten = armed(&t, "acme", &pkg).await;
    let allowed = "allowed: docker.io/, ghcr.io/acme";
    let mut failures = Vec::new();
    for (who, c) in &ten.identities {
        failures.extend(image_spellings_as(who, c, &ten, allowed).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What one identity tries with images: references the runtime pulls from an allowed registry are
/// admitted, those spelled so the policy and the runtime disagree are refused; returns what was
/// not so.
async fn image_spellings_as(who: &str, c: &Client, ten: &Armed, allowed: &str) -> Vec<String> {
    let pp = PostParams::default();
    let mut failures = Vec::new();
    let pods: Api<Pod> = Api::namespaced(c.clone(), &ten.ns);
    // Where the runtime pulls these from is docker.io or ghcr.io/acme (a repository and its tags).
    let ok = [
        "nginx:1.27".to_string(),
        "library/busybox".into(),
        "index.docker.io/library/nginx".into(),
        "foo/bar:1".into(),
        format!("nginx:1.27@{ZERO_DIGEST}"),
        "ghcr.io/acme".into(),
        "ghcr.io/acme:1.0".into(),
        format!("ghcr.io/acme/web@{ZERO_DIGEST}"),
    ];
    for (i, image) in ok.iter().enumerate() {
        if let Err(e) = admitted(
            image,
            pods.create(&pp, &pod(&format!("{who}-ok-{i}"), image, json!({})))
                .await,
        ) {
            failures.push(format!("{who}: {e}"));
        }
    }
    // A first component with an upper-case letter is a registry host to the runtime (`Mirror/x`
    // is pulled from the host Mirror, `LocalHost/x` from the node itself); a repository prefix
    // does not cover its siblings; another host or port of Docker Hub is another registry.
    let bad = [
        "Mirror/x".to_string(),
        "LocalHost/x".into(),
        "localhost/x".into(),
        "docker.io.evil.io/x".into(),
        "ghcr.io/acme-evil/web".into(),
        "ghcr.io/acmex:1".into(),
        "GHCR.IO/acme/web".into(),
        "registry-1.docker.io/library/nginx".into(),
        "docker.io:443/library/nginx".into(),
        format!("evil.io/x@{ZERO_DIGEST}"),
    ];
    for (i, image) in bad.iter().enumerate() {
        if let Err(e) = refused(
            &format!("{who}: pod with image {image}"),
            pods.create(&pp, &pod(&format!("{who}-bad-{i}"), image, json!({})))
                .await,
            &["covenant-images", allowed],
        ) {
            failures.push(e);
        }
    }
    // The same through an init container and every workload kind the tenant may write.
    let mut init = pod(&format!("{who}-init"), "nginx", json!({}));
    let mut ic = init.spec.as_ref().unwrap().containers[0].clone();
    ic.name = "init".into();
    ic.image = Some("Mirror/init".into());
    init.spec.as_mut().unwrap().init_containers = Some(vec![ic]);
    failures.extend(
        refused(
            "init container Mirror/init",
            pods.create(&pp, &init).await,
            &["covenant-images", allowed],
        )
        .err(),
    );
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), &ten.ns);
    let replicasets: Api<ReplicaSet> = Api::namespaced(c.clone(), &ten.ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(c.clone(), &ten.ns);
    let cronjobs: Api<CronJob> = Api::namespaced(c.clone(), &ten.ns);
    failures.extend(
        refused(
            "Deployment of Mirror/x",
            deployments
                .create(
                    &pp,
                    &object(workload(&format!("{who}-d"), "Mirror/x", json!({}))),
                )
                .await,
            &["covenant-images"],
        )
        .err(),
    );
    failures.extend(
        refused(
            "ReplicaSet of ghcr.io/acme-evil/x",
            replicasets
                .create(
                    &pp,
                    &object(workload(
                        &format!("{who}-rs"),
                        "ghcr.io/acme-evil/x",
                        json!({}),
                    )),
                )
                .await,
            &["covenant-images"],
        )
        .err(),
    );
    let mut sts = workload(&format!("{who}-sts"), "LocalHost/x", json!({}));
    sts["spec"]["serviceName"] = json!("w");
    failures.extend(
        refused(
            "StatefulSet of LocalHost/x",
            statefulsets.create(&pp, &object(sts)).await,
            &["covenant-images"],
        )
        .err(),
    );
    let mut jt = template("Mirror/x", json!({ "restartPolicy": "Never" }));
    jt["metadata"] = json!({});
    failures.extend(
        refused(
            "CronJob of Mirror/x",
            cronjobs
                .create(
                    &pp,
                    &object(json!({
                        "metadata": { "name": format!("{who}-cj") },
                        "spec": { "schedule": "0 0 * * *", "jobTemplate": { "spec": { "template": jt } } }
                    })),
                )
                .await,
            &["covenant-images"],
        )
        .err(),
    );
    // UPDATE: a running Deployment's image patched to one the tier refuses.
    let name = format!("{who}-live");
    match admitted(
        "Deployment of nginx",
        deployments
            .create(&pp, &object(workload(&name, "nginx:1.27", json!({}))))
            .await,
    ) {
        Ok(_) => failures.extend(
            refused(
                "Deployment patched to Mirror/nginx",
                deployments
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Strategic(json!({ "spec": { "template": { "spec": {
                            "containers": [{ "name": "pause", "image": "Mirror/nginx" }] } } } })),
                    )
                    .await,
                &["covenant-images", allowed],
            )
            .err(),
        ),
        Err(e) => failures.push(e),
    }
    failures
}

/// A StorageClass `name` whose (external, absent) provisioner is `provisioner`: the volume controller
/// marks a claim of it with that provisioner, which shows which class it resolved.
async fn storage_class(t: &TestCtx, name: &str, provisioner: &str) {
    t.track("storageclasses.storage.k8s.io", name);
    t.apply(&json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": { "name": name }, "provisioner": provisioner,
        "volumeBindingMode": "Immediate"
    }))
    .await;
}

fn claim(name: &str, class: Option<&str>, legacy: Option<&str>) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": { "name": name },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
    });
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    if let Some(l) = legacy {
        c["metadata"]["annotations"] = json!({ "volume.beta.kubernetes.io/storage-class": l });
    }
    object(c)
}

/// Waits until the volume controller has asked `provisioner` for the claim `name` in `ns`.
async fn provisioned_by(c: &Client, ns: &str, name: &str, provisioner: &str) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
    eventually(
        &format!("the volume controller asks {provisioner} for claim {ns}/{name}"),
        TIMEOUT,
        || {
            let pvcs = pvcs.clone();
            async move {
                let p = pvcs.get(name).await.map_err(|e| e.to_string())?;
                let got = p
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .get("volume.kubernetes.io/storage-provisioner")
                    .cloned();
                if got.as_deref() == Some(provisioner) {
                    Ok(())
                } else {
                    Err(format!("storage-provisioner {got:?}"))
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_claim_cannot_take_a_storage_class_the_tier_refuses_by_any_spelling() {
    let t = TestCtx::new("tier-storage").await;
    let cheap = t.name("cheap");
    let dear = t.name("dear");
    storage_class(&t, &cheap, "example.com/cheap").await;
    storage_class(&t, &dear, "example.com/dear").await;

    // Why the legacy annotation matters: outside any tier, a claim whose field names cheap and whose
    // annotation names dear is provisioned by dear's provisioner (the volume controller reads the
    // annotation first).
    let plain = t.namespace("plain");
    Api::<Namespace>::all(t.client.clone())
        .create(
            &PostParams::default(),
            &object(json!({ "metadata": { "name": plain } })),
        )
        .await
        .expect("a namespace outside any tier");
    Api::<PersistentVolumeClaim>::namespaced(t.client.clone(), &plain)
        .create(
            &PostParams::default(),
            &claim("both", Some(&cheap), Some(&dear)),
        )
        .await
        .expect("a claim outside any tier");
    provisioned_by(&t.client, &plain, "both", "example.com/dear").await;

    let pkg = t.package("storage");
    t.apply(&package(
        &pkg,
        policies(json!({ "storageClasses": { "allowed": [cheap], "default": cheap } })),
    ))
    .await;
    let ten = armed(&t, "acme", &pkg).await;
    let allowed = format!("allowed: {cheap}");
    let words = ["covenant-classes", allowed.as_str()];
    let mut failures = Vec::new();
    for (who, c) in &ten.identities {
        failures.extend(storage_class_spellings_as(&t, who, c, &ten, &cheap, &dear, &words).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What one identity tries to take a storage class the tier refuses (by the legacy annotation, by
/// both spellings, by none when the default is another): each must be refused; returns what was
/// not.
async fn storage_class_spellings_as(
    t: &TestCtx,
    who: &str,
    c: &Client,
    ten: &Armed,
    cheap: &str,
    dear: &str,
    words: &[&str],
) -> Vec<String> {
    let pp = PostParams::default();
    let mut failures = Vec::new();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), &ten.ns);
    failures.extend(
        refused(
            "a claim naming dear by the legacy annotation",
            pvcs.create(&pp, &claim(&format!("{who}-legacy"), None, Some(dear)))
                .await,
            words,
        )
        .err(),
    );
    failures.extend(
        refused(
            "a claim naming cheap by the field and dear by the legacy annotation",
            pvcs.create(&pp, &claim(&format!("{who}-both"), Some(cheap), Some(dear)))
                .await,
            words,
        )
        .err(),
    );
    // The annotation naming an allowed class is honoured, and not contradicted by the default.
    let name = format!("{who}-legacy-ok");
    match admitted(
        "a claim naming cheap by the legacy annotation",
        pvcs.create(&pp, &claim(&name, None, Some(cheap))).await,
    ) {
        Ok(_) => provisioned_by(&t.client, &ten.ns, &name, "example.com/cheap").await,
        Err(e) => failures.push(e),
    }
    // A claim naming no class gets the tier's default, never the cluster's.
    let name = format!("{who}-none");
    match admitted(
        "a claim naming no class",
        pvcs.create(&pp, &claim(&name, None, None)).await,
    ) {
        Ok(_) => provisioned_by(&t.client, &ten.ns, &name, "example.com/cheap").await,
        Err(e) => failures.push(e),
    }
    // UPDATE: the annotation added to an admitted claim.
    failures.extend(
        refused(
            "the legacy annotation naming dear added to a claim",
            pvcs.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": {
                    "volume.beta.kubernetes.io/storage-class": dear } } })),
            )
            .await,
            &[],
        )
        .err(),
    );
    // A StatefulSet's claim template is refused at the StatefulSet, by either spelling.
    let statefulsets: Api<StatefulSet> = Api::namespaced(c.clone(), &ten.ns);
    for (i, (class, legacy)) in [(Some(dear), None), (None, Some(dear))]
        .into_iter()
        .enumerate()
    {
        let mut sts = workload(&format!("{who}-sts-{i}"), "nginx", json!({}));
        sts["spec"]["serviceName"] = json!("w");
        sts["spec"]["volumeClaimTemplates"] =
            json!([serde_json::to_value(claim("data", class, legacy)).unwrap()]);
        failures.extend(
            refused(
                &format!("a StatefulSet whose claim template names dear ({i})"),
                statefulsets.create(&pp, &object(sts)).await,
                words,
            )
            .err(),
        );
    }
    failures
}

fn ingress(name: &str, hosts: &[&str], class: Option<&str>, annotations: Value) -> Ingress {
    let mut i = serde_json::to_value(fixtures::ingress(name, hosts)).unwrap();
    i["metadata"]["annotations"] = annotations;
    if let Some(c) = class {
        i["spec"]["ingressClassName"] = json!(c);
    }
    object(i)
}

#[tokio::test]
async fn an_ingress_cannot_reach_past_its_class_hosts_or_the_controllers_configuration() {
    let t = TestCtx::new("tier-ingress").await;
    let public = t.name("public");
    let internal = t.name("internal");
    let zone = format!("{}.example", t.suffix);
    let pkg = t.package("ingress");
    t.apply(&package(
        &pkg,
        policies(json!({
            "ingressClasses": { "allowed": [public] },
            "hostnames": { "allowed": [format!("*.acme.{zone}"), format!("*.globex.{zone}")] }
        })),
    ))
    .await;
    let acme = armed(&t, "acme", &pkg).await;
    let globex = armed(&t, "globex", &pkg).await;
    let shop = format!("shop.globex.{zone}");
    let pp = PostParams::default();
    let (_, g) = &globex.identities[0];
    Api::<Ingress>::namespaced(g.clone(), &globex.ns)
        .create(&pp, &ingress("shop", &[&shop], Some(&public), json!({})))
        .await
        .expect("globex routes its own host");

    let mut failures = Vec::new();
    for (who, c) in &acme.identities {
        failures.extend(ingress_attacks_as(who, c, &acme, &globex, &public, &zone, &shop).await);
    }

    // The cluster's default IngressClass is one the tier does not allow: an Ingress naming no class
    // gets it from the API server, and is refused naming it.
    t.track("ingressclasses.networking.k8s.io", &internal);
    t.apply(&json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": { "name": internal, "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true" } },
        "spec": { "controller": "example.com/internal" }
    }))
    .await;
    let (_, a) = &acme.identities[0];
    let host = format!("default.acme.{zone}");
    eventually(
        "an Ingress naming no class gets the cluster's default, which the tier refuses",
        TIMEOUT,
        || {
            let a = a.clone();
            let (ns, host, internal) = (acme.ns.clone(), host.clone(), internal.clone());
            async move {
                refused(
                    "an Ingress naming no class, under a default IngressClass",
                    Api::<Ingress>::namespaced(a, &ns)
                        .create(
                            &PostParams {
                                dry_run: true,
                                ..Default::default()
                            },
                            &ingress("default", &[&host], None, json!({})),
                        )
                        .await,
                    &["covenant-classes", &format!("ingressClassName {internal}")],
                )
            }
        },
    )
    .await;
    Api::<k8s_openapi::api::networking::v1::IngressClass>::all(t.client.clone())
        .delete(&internal, &DeleteParams::default())
        .await
        .expect("the default IngressClass is removed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What one identity of acme tries with Ingresses (no class, snippets under any controller's prefix,
/// a TLS host of globex's, a forged host claim): each must be refused; returns what was not.
async fn ingress_attacks_as(
    who: &str,
    c: &Client,
    acme: &Armed,
    globex: &Armed,
    public: &str,
    zone: &str,
    shop: &str,
) -> Vec<String> {
    let pp = PostParams::default();
    let mut failures = Vec::new();
    let (_, g) = &globex.identities[0];
    let ingresses: Api<Ingress> = Api::namespaced(c.clone(), &acme.ns);
    let host = format!("{who}.acme.{zone}");
    // No class: any controller that serves Ingresses without class would take it.
    failures.extend(
        refused(
            "an Ingress naming no class",
            ingresses
                .create(
                    &pp,
                    &ingress(&format!("{who}-noclass"), &[&host], None, json!({})),
                )
                .await,
            &["covenant-classes", "names no ingressClassName", public],
        )
        .err(),
    );
    // Snippets under any controller's prefix (ingress-nginx with a custom --annotations-prefix,
    // HAProxy, haproxy-ingress), and the well-known ones.
    for (i, key) in [
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/auth-snippet",
        "ingress.example.com/configuration-snippet",
        "haproxy.org/backend-config-snippet",
        "haproxy-ingress.github.io/config-backend",
        "ingress.kubernetes.io/config-frontend",
        "nginx.org/location-snippets",
    ]
    .iter()
    .enumerate()
    {
        failures.extend(
            refused(
                &format!("an Ingress with {key}"),
                ingresses
                    .create(
                        &pp,
                        &ingress(
                            &format!("{who}-snip-{i}"),
                            &[&host],
                            Some(public),
                            json!({ *key: "return 200;" }),
                        ),
                    )
                    .await,
                &["covenant-ingress-snippets", key],
            )
            .err(),
        );
    }
    let name = format!("{who}-ok");
    if let Err(e) = admitted(
        "an Ingress of class public, with an ordinary annotation",
        ingresses
            .create(
                &pp,
                &ingress(
                    &name,
                    &[&host],
                    Some(public),
                    json!({ "nginx.ingress.kubernetes.io/rewrite-target": "/" }),
                ),
            )
            .await,
    ) {
        failures.push(e);
    }
    // A TLS host asks for (cert-manager) and serves a certificate for that name: globex's host
    // in acme's TLS, with a rule only for acme's own host, on CREATE and on UPDATE.
    let mut tls = ingress(&format!("{who}-tls"), &[&host], Some(public), json!({}));
    tls.spec.as_mut().unwrap().tls = Some(vec![object(
        json!({ "hosts": [host, shop], "secretName": "cert" }),
    )]);
    failures.extend(
        refused(
            "a TLS host another tenant holds",
            ingresses.create(&pp, &tls).await,
            &["covenant-ingress-hosts-bounded", shop],
        )
        .err(),
    );
    failures.extend(
        refused(
            "a TLS host another tenant holds, added by UPDATE",
            ingresses
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({ "spec": { "tls": [{ "hosts": [shop], "secretName": "cert" }] } }),
                    ),
                )
                .await,
            &["covenant-ingress-hosts-bounded", shop],
        )
        .err(),
    );
    // A claim forged in the tenant's own namespace is not read: only the operator's namespace is.
    let forged = format!("{who}-forged.globex.{zone}");
    failures.extend(
        Api::<ConfigMap>::namespaced(c.clone(), &acme.ns)
            .create(
                &pp,
                &object(json!({
                    "metadata": { "name": format!("covenant-hostnames-{who}"), "labels": {
                        "covenant.dev/hostnames": "claims", "covenant.dev/account": acme.ns } },
                    "data": { forged.clone(): "" }
                })),
            )
            .await
            .err()
            .map(|e| format!("the tenant may write ConfigMaps in its namespace: {e}")),
    );
    failures.extend(
        admitted(
            "globex's Ingress for a host acme forged a claim on",
            Api::<Ingress>::namespaced(g.clone(), &globex.ns)
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &ingress("forged", &[&forged], Some(public), json!({})),
                )
                .await,
        )
        .err(),
    );
    failures
}

#[tokio::test]
async fn a_pod_cannot_be_placed_or_prioritised_around_the_tier() {
    let t = TestCtx::new("tier-scheduling").await;
    let low = t.name("low");
    t.track("priorityclasses.scheduling.k8s.io", &low);
    t.apply(&json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": { "name": low }, "value": 100, "preemptionPolicy": "Never"
    }))
    .await;
    let pkg = t.package("scheduling");
    t.apply(&package(
        &pkg,
        policies(json!({
            "priorityClasses": { "allowed": [low] },
            "scheduling": { "nodeSelector": { "pool": "tenants" } },
            "tolerations": { "allowed": [{ "key": "dedicated", "value": "tenants", "effect": "NoSchedule" }] }
        })),
    ))
    .await;
    let ten = armed(&t, "acme", &pkg).await;
    let mut failures = Vec::new();
    for (who, c) in &ten.identities {
        failures.extend(placement_attacks_as(who, c, &ten, &low).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What one identity tries to place or prioritise a pod around the tier (nodes named in templates,
/// other pools, priorities, tolerations added later): each must be refused; returns what was not.
async fn placement_attacks_as(who: &str, c: &Client, ten: &Armed, low: &str) -> Vec<String> {
    let pp = PostParams::default();
    let mut failures = Vec::new();
    let pods: Api<Pod> = Api::namespaced(c.clone(), &ten.ns);
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), &ten.ns);
    // A template naming a node is refused at the workload, not only at each pod.
    failures.extend(
        refused(
            "a Deployment whose template names a node",
            deployments
                .create(
                    &pp,
                    &object(workload(
                        &format!("{who}-node"),
                        "nginx",
                        json!({ "nodeName": "gpu-1" }),
                    )),
                )
                .await,
            &["covenant-scheduling", "spec.nodeName", "pool=tenants"],
        )
        .err(),
    );
    // Required node affinity for another pool: the forced label is still on the pod, and the
    // scheduler must satisfy both.
    let affinity = json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "pool", "operator": "In", "values": ["gpu"] }] }] } } } });
    match admitted(
        "a pod with node affinity for pool=gpu",
        pods.create(&pp, &pod(&format!("{who}-aff"), "nginx", affinity))
            .await,
    ) {
        Ok(p) => {
            let sel = p.spec.and_then(|s| s.node_selector).unwrap_or_default();
            if sel.get("pool").map(String::as_str) != Some("tenants") {
                failures.push(format!(
                    "a pod with affinity for pool=gpu was stored with nodeSelector {sel:?}"
                ));
            }
        }
        Err(e) => failures.push(e),
    }
    // A toleration added to a running pod (the API server lets pods gain tolerations).
    let name = format!("{who}-tol");
    match admitted(
        "a pod with the allowed toleration",
        pods.create(
            &pp,
            &pod(
                &name,
                "nginx",
                json!({ "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "tenants", "effect": "NoSchedule" }] }),
            ),
        )
        .await,
    ) {
        Ok(p) => {
            let mut tolerations = p.spec.unwrap().tolerations.unwrap_or_default();
            tolerations.push(object(json!({ "operator": "Exists" })));
            failures.extend(
                refused(
                    "a toleration of every taint added by UPDATE",
                    pods.patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "spec": { "tolerations": tolerations } })),
                    )
                    .await,
                    &["covenant-scheduling", "toleration"],
                )
                .err(),
            );
        }
        Err(e) => failures.push(e),
    }
    // The allowed class with a preemption policy it does not have, or a priority without class.
    failures.extend(
        refused(
            "an allowed PriorityClass with preemptionPolicy PreemptLowerPriority",
            pods.create(
                &pp,
                &pod(
                    &format!("{who}-preempt"),
                    "nginx",
                    json!({ "priorityClassName": low, "preemptionPolicy": "PreemptLowerPriority" }),
                ),
            )
            .await,
            &["PreemptionPolicy"],
        )
        .err(),
    );
    failures.extend(
        refused(
            "a priority value without class",
            pods.create(
                &pp,
                &pod(
                    &format!("{who}-prio"),
                    "nginx",
                    json!({ "priority": 1000000000 }),
                ),
            )
            .await,
            &["priority"],
        )
        .err(),
    );
    failures
}

#[tokio::test]
async fn a_tenant_cannot_touch_what_enforces_its_tier() {
    let t = TestCtx::new("tier-machinery").await;
    let pkg = t.package("machinery");
    let zone = format!("{}.example", t.suffix);
    t.apply(&package(
        &pkg,
        policies(json!({ "images": { "allowedRegistries": ["registry.k8s.io/"] } })),
    ))
    .await;
    let acme = armed(&t, "acme", &pkg).await;
    let globex = armed(&t, "globex", &pkg).await;
    let (_, g) = &globex.identities[0];
    Api::<Ingress>::namespaced(g.clone(), &globex.ns)
        .create(
            &PostParams::default(),
            &fixtures::ingress("shop", &[&format!("shop.{zone}")]),
        )
        .await
        .expect("globex routes its host");
    let claims = format!("covenant-hostnames-{}", globex.ns);
    let system: Api<ConfigMap> = Api::namespaced(t.client.clone(), "covenant-system");
    eventually("globex's claim is recorded", TIMEOUT, || {
        let system = system.clone();
        let claims = claims.clone();
        async move {
            system
                .get(&claims)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;

    let mut failures = Vec::new();
    for (who, c) in &acme.identities {
        failures.extend(machinery_attacks_as(&t, who, c, &acme, &claims).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What one identity of acme tries on what enforces its tier (the namespace's policy annotations,
/// the hostname claims, bindings, pods bound to a node, ephemeral containers, cluster-scoped
/// classes): each must be refused; returns what was not.
async fn machinery_attacks_as(
    t: &TestCtx,
    who: &str,
    c: &Client,
    acme: &Armed,
    claims: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            failures.push(format!("{what}: {e}"));
        }
    };
    let ns = &acme.ns;
    let pp = PostParams::default();
    check(
        who,
        fixtures::forbidden(
            "lift the tier by editing the namespace's policy annotation",
            Api::<Namespace>::all(c.clone())
                .patch(
                    ns,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "annotations": {
                        "covenant.dev/allowed-registries": "evil.io/" } } })),
                )
                .await,
        ),
    );
    let theirs: Api<ConfigMap> = Api::namespaced(c.clone(), "covenant-system");
    check(
        who,
        fixtures::forbidden(
            "delete another tenant's hostname claims",
            theirs.delete(claims, &DeleteParams::default()).await,
        ),
    );
    check(
        who,
        fixtures::forbidden(
            "edit another tenant's hostname claims",
            theirs
                .patch(
                    claims,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "data": null })),
                )
                .await,
        ),
    );
    check(
        who,
        fixtures::forbidden(
            "write a claim of its own in the operator's namespace",
            theirs
                .create(
                    &pp,
                    &object(
                        json!({ "metadata": { "name": format!("forged-{who}"), "labels": {
                        "covenant.dev/hostnames": "claims" } }, "data": { "x.example": "" } }),
                    ),
                )
                .await,
        ),
    );
    // Pods: binding to a node, and ephemeral containers, are not the tenant's to make.
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let name = format!("{who}-p");
    pods.create(&pp, &pod(&name, "registry.k8s.io/pause:3.10", json!({})))
        .await
        .expect("an allowed pod");
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": name },
        "target": { "apiVersion": "v1", "kind": "Node", "name": "gpu-1" }
    });
    check(
        who,
        fixtures::forbidden(
            "bind its pod to a node (pods/binding)",
            c.request::<Value>(
                http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/binding"))
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(&binding).unwrap())
                    .unwrap(),
            )
            .await,
        ),
    );
    check(
        who,
        fixtures::forbidden(
            "add an ephemeral container",
            pods.patch_subresource(
                "ephemeralcontainers",
                &name,
                &PatchParams::default(),
                &Patch::Strategic(json!({ "spec": { "ephemeralContainers": [{
                    "name": "dbg", "image": "evil.io/debug" }] } })),
            )
            .await,
        ),
    );
    // Cluster-scoped classes the tier's names refer to.
    for (what, group, version, kind, extra) in [
        (
            "create a PriorityClass",
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            json!({ "value": 1000000 }),
        ),
        (
            "create a StorageClass",
            "storage.k8s.io",
            "v1",
            "StorageClass",
            json!({ "provisioner": "example.com/x" }),
        ),
        (
            "create an IngressClass",
            "networking.k8s.io",
            "v1",
            "IngressClass",
            json!({ "spec": { "controller": "example.com/x" } }),
        ),
        (
            "create a RuntimeClass",
            "node.k8s.io",
            "v1",
            "RuntimeClass",
            json!({ "handler": "runc" }),
        ),
    ] {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let mut o = json!({ "apiVersion": format!("{group}/{version}"), "kind": kind,
            "metadata": { "name": format!("{who}-{}", t.suffix) } });
        if let (Value::Object(o), Value::Object(e)) = (&mut o, extra) {
            o.extend(e);
        }
        check(
            who,
            fixtures::forbidden(
                what,
                Api::<DynamicObject>::all_with(c.clone(), &ar)
                    .create(&pp, &object(o))
                    .await,
            ),
        );
    }
    failures
}

#[tokio::test]
async fn a_tightened_tier_reports_every_kind_of_object_it_no_longer_allows_and_deletes_none() {
    let t = TestCtx::new("tier-tighten").await;
    let mut classes = BTreeMap::new();
    for base in ["cheap", "dear", "low", "high", "public", "internal"] {
        classes.insert(base, t.name(base));
    }
    storage_class(&t, &classes["cheap"], "example.com/cheap").await;
    storage_class(&t, &classes["dear"], "example.com/dear").await;
    for (base, value) in [("low", 100), ("high", 1000)] {
        t.track("priorityclasses.scheduling.k8s.io", &classes[base]);
        t.apply(
            &json!({ "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": { "name": classes[base] }, "value": value }),
        )
        .await;
    }
    let zone = format!("{}.example", t.suffix);
    let wide = json!({
        "storageClasses": { "allowed": [classes["cheap"], classes["dear"]], "default": classes["cheap"] },
        "priorityClasses": { "allowed": [classes["low"], classes["high"]] },
        "ingressClasses": { "allowed": [classes["public"], classes["internal"]] },
        "hostnames": { "allowed": [format!("*.{zone}")] },
        "tolerations": { "allowed": [{ "key": "dedicated" }] }
    });
    let pkg = t.package("tighten");
    t.apply(&package(&pkg, policies(wide.clone()))).await;
    let ten = armed(&t, "acme", &pkg).await;
    let ns = ten.ns.clone();
    let (_, c) = &ten.identities[1];
    make_one_of_each_while_the_tier_allows_it(&t, c, &ns, &classes, &zone).await;
    // The platform narrows every one of them, and forces a node pool.
    let mut narrow = wide.clone();
    narrow["storageClasses"] =
        json!({ "allowed": [classes["cheap"]], "default": classes["cheap"] });
    narrow["priorityClasses"] = json!({ "allowed": [classes["low"]] });
    narrow["ingressClasses"] = json!({ "allowed": [classes["public"]] });
    narrow["hostnames"] = json!({ "allowed": [format!("*.new.{zone}")] });
    narrow["tolerations"] = json!({ "allowed": [{ "key": "dedicated", "value": "tenants" }] });
    narrow["scheduling"] = json!({ "nodeSelector": { "pool": "tenants" } });
    narrow["images"] = json!({ "allowedRegistries": ["registry.k8s.io/"] });
    t.apply(&package(&pkg, policies(narrow))).await;

    let expected = [
        format!(
            "PersistentVolumeClaim {ns}/data: storageClassName {}",
            classes["dear"]
        ),
        format!("Ingress {ns}/web: ingressClassName {}", classes["internal"]),
        format!("Ingress {ns}/web: Ingress web: host old.{zone}"),
        format!("Pod {ns}/batch: priorityClassName {}", classes["high"]),
        format!("Pod {ns}/batch: toleration dedicated=gpu:NoSchedule"),
        format!("Pod {ns}/batch: nodeSelector lacks pool=tenants"),
    ];
    let accounts: Api<covenant::api::Account> = Api::all(t.client.clone());
    let report = eventually(
        "the Account names each object the tier no longer allows",
        TIMEOUT * 3,
        || {
            let accounts = accounts.clone();
            let (ns, expected) = (ns.clone(), expected.clone());
            async move {
                let a = accounts.get(&ns).await.map_err(|e| e.to_string())?;
                match condition(&a, "PoliciesCompliant") {
                    Some(c)
                        if c.status == "False"
                            && expected.iter().all(|e| c.message.contains(e.as_str())) =>
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
    eventually("a Warning Event names the objects", TIMEOUT, || {
        let ns = ns.clone();
        async move {
            let events = covenant_e2e::k8s::events_about(&ns);
            if events.contains("NotAllowedByTier") && events.contains(&format!("{ns}/data")) {
                Ok(())
            } else {
                Err(events)
            }
        }
    })
    .await;
    assert_nothing_was_deleted_and_a_new_replica_is_judged(&t, c, &ns, &classes).await;
    assert_the_report_clears_once_all_is_replaced(&t, c, &ns).await;
}

/// While the tier allows them: a claim of the dear class, an Ingress of the internal class on an old
/// host, a pod of high priority with a toleration, a Deployment from any registry (with its
/// ReplicaSet).
async fn make_one_of_each_while_the_tier_allows_it(
    t: &TestCtx,
    c: &Client,
    ns: &str,
    classes: &BTreeMap<&str, String>,
    zone: &str,
) {
    let pp = PostParams::default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    pvcs.create(&pp, &claim("data", Some(&classes["dear"]), None))
        .await
        .expect("dear is allowed");
    ingresses
        .create(
            &pp,
            &ingress(
                "web",
                &[&format!("old.{zone}")],
                Some(&classes["internal"]),
                json!({}),
            ),
        )
        .await
        .expect("internal and the host are allowed");
    pods.create(
        &pp,
        &pod(
            "batch",
            "nginx",
            json!({ "priorityClassName": classes["high"],
                "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule" }] }),
        ),
    )
    .await
    .expect("high and the toleration are allowed");
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    deployments
        .create(&pp, &object(workload("web", "nginx:1.27", json!({}))))
        .await
        .expect("any registry is allowed");
    let replicasets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), ns);
    eventually(
        "the Deployment's ReplicaSet is created before the tier is tightened",
        TIMEOUT * 2,
        || {
            let replicasets = replicasets.clone();
            async move {
                let n = replicasets
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .len();
                if n > 0 {
                    Ok(())
                } else {
                    Err("none yet".to_string())
                }
            }
        },
    )
    .await;
}

/// Nothing was deleted or changed; the Deployment can still be scaled, and the new replica its
/// ReplicaSet creates is a new pod, judged like any other, and the ReplicaSet says so.
async fn assert_nothing_was_deleted_and_a_new_replica_is_judged(
    t: &TestCtx,
    c: &Client,
    ns: &str,
    classes: &BTreeMap<&str, String>,
) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let replicasets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), ns);
    // Nothing was deleted or changed.
    let data = pvcs.get("data").await.expect("the claim is kept");
    assert_eq!(
        data.spec.and_then(|s| s.storage_class_name).as_deref(),
        Some(classes["dear"].as_str())
    );
    let web = ingresses.get("web").await.expect("the Ingress is kept");
    assert_eq!(
        web.spec.and_then(|s| s.ingress_class_name).as_deref(),
        Some(classes["internal"].as_str())
    );
    pods.get("batch").await.expect("the pod is kept");
    // The Deployment can still be scaled; the new replica its ReplicaSet creates is a new pod, judged
    // like any other, and the ReplicaSet says so.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .expect("a Deployment whose image the tier no longer allows can still be scaled");
    eventually(
        "the ReplicaSet reports its new replica refused by covenant-images",
        TIMEOUT * 2,
        || {
            let replicasets = replicasets.clone();
            async move {
                let rs = replicasets
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut seen = String::new();
                for r in rs.items {
                    let events =
                        covenant_e2e::k8s::events_about(&r.metadata.name.unwrap_or_default());
                    if events.contains("FailedCreate") && events.contains("covenant-images") {
                        return Ok(());
                    }
                    seen.push_str(&events);
                }
                Err(seen)
            }
        },
    )
    .await;
}

/// Replaced by compliant ones (here: deleted), the report clears.
async fn assert_the_report_clears_once_all_is_replaced(t: &TestCtx, c: &Client, ns: &str) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let accounts: Api<covenant::api::Account> = Api::all(t.client.clone());
    // Replaced by compliant ones, the report clears.
    pods.delete("batch", &DeleteParams::default().grace_period(0))
        .await
        .expect("the tenant deletes its pod");
    ingresses
        .delete("web", &DeleteParams::default())
        .await
        .expect("the tenant deletes its Ingress");
    pvcs.delete("data", &DeleteParams::default())
        .await
        .expect("the tenant deletes its claim");
    deployments
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("the tenant deletes its Deployment");
    eventually(
        "the Account reports compliance once nothing offends",
        TIMEOUT * 3 + Duration::from_secs(30),
        || {
            let accounts = accounts.clone();
            let ns = ns.to_string();
            async move {
                let a = accounts.get(&ns).await.map_err(|e| e.to_string())?;
                match condition(&a, "PoliciesCompliant") {
                    Some(c) if c.status == "True" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_namespace_the_tenant_makes_itself_is_under_its_tier_from_its_first_usable_moment() {
    let t = TestCtx::new("tier-selfmade").await;
    let pkg = t.package("selfmade");
    t.apply(&package(
        &pkg,
        policies(json!({ "images": { "allowedRegistries": ["registry.k8s.io/"] } })),
    ))
    .await;
    let ten = armed(&t, "acme", &pkg).await;
    let (_, admin) = &ten.identities[0];
    let dev = format!("{}-dev", ten.ns);
    // Deleted with the Account (deletionPolicy Delete), as the namespaces it made are.
    eventually("the administrator makes a namespace itself", TIMEOUT, || {
        let (admin, dev, account) = (admin.clone(), dev.clone(), ten.ns.clone());
        async move {
            Api::<Namespace>::all(admin)
                .create(
                    &PostParams::default(),
                    &object(json!({ "metadata": { "name": dev, "labels": { "covenant.dev/tenant": account } } })),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    // Try a pod from a registry the tier refuses from the first moment on: until the tenant may
    // write there RBAC refuses it; from then on the tier must refuse it; it is never admitted.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &dev);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut denied_by_rbac = 0;
    let deadline = std::time::Instant::now() + TIMEOUT * 2;
    loop {
        match pods
            .create(&dry, &pod("first", "evil.io/miner", json!({})))
            .await
        {
            Ok(_) => panic!("a pod from evil.io was admitted in the self-made namespace {dev}"),
            Err(kube::Error::Api(s)) if s.message.contains("covenant-images") => break,
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => denied_by_rbac += 1,
            Err(e) => panic!("unexpected answer: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the self-made namespace {dev} never became usable ({denied_by_rbac} refusals by RBAC)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{denied_by_rbac} refusals by RBAC before the tier's");
}
