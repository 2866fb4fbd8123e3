//! The image and scheduling policies of `deploy/workload-policies-policy.yaml`, evaluated offline with
//! kube's CEL engine on sample pods and workloads in a namespace annotated as the operator annotates
//! a tenant's (the same evaluator `covenant check` uses): image normalisation edge cases, init and
//! ephemeral containers, updates that introduce nothing new, unrestricted namespaces.

use covenant::admission::{WORKLOAD_POLICIES, evaluate, matches, policies};
use serde_json::{Value, json};

fn policy(name: &str) -> Value {
    policies(WORKLOAD_POLICIES)
        .unwrap()
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("policy {name}"))
}

fn namespace(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "acme", "labels": {"covenant.dev/account": "acme"}, "annotations": annotations}})
}

fn registries(allowed: &str) -> Value {
    namespace(
        json!({"covenant.dev/allowed-registries": allowed, "covenant.dev/policy-package": "gold"}),
    )
}

fn pod(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "acme"},
           "spec": {"containers": containers}})
}

fn images(ns: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    evaluate(&policy("covenant-images"), object, old, ns, "alice").expect("the policy evaluates")
}

#[test]
fn image_references_are_normalised_before_the_prefix_match() {
    let ns = registries("docker.io/library/,registry.example/team/,localhost:5000,gcr.io");
    let admitted = [
        "nginx",
        "nginx:1.27",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx:1.27",
        "index.docker.io/library/nginx",
        "index.docker.io/nginx",
        "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "registry.example/team/app:2",
        "registry.example/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "localhost:5000/x",
        "gcr.io/project/image",
    ];
    for image in admitted {
        assert_eq!(
            images(&ns, &pod(&[image]), None),
            Vec::<String>::new(),
            "{image} is allowed"
        );
    }
    let refused = [
        ("foo/bar", "docker.io/foo/bar"),
        ("docker.io/foo/bar", "docker.io/foo/bar"),
        ("evil.io/nginx", "evil.io/nginx"),
        ("registry.example/other/app", "registry.example/other/app"),
        (
            "registry.example.evil.io/team/app",
            "registry.example.evil.io/team/app",
        ),
        ("localhost/x", "localhost/x"),
        ("localhost:5001/x", "localhost:5001/x"),
        // A host allowed without '/' matches only that host, not one it is a prefix of.
        ("gcr.io.evil.io/x", "gcr.io.evil.io/x"),
    ];
    for (image, normalised) in refused {
        let denied = images(&ns, &pod(&[image]), None);
        assert_eq!(denied.len(), 1, "{image} is refused: {denied:?}");
        assert!(denied[0].contains(image), "{denied:?}");
        assert!(
            denied[0].contains(normalised) || normalised == image,
            "{image} normalises to {normalised}: {denied:?}"
        );
        assert!(
            denied[0].contains("the gold tier allows (covenant-images): allowed: docker.io/library/, registry.example/team/, localhost:5000, gcr.io"),
            "{denied:?}"
        );
    }
}

#[test]
fn a_digest_does_not_make_a_one_component_name_a_registry_host() {
    let ns = registries("evil/");
    let image = "evil@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let denied = images(&ns, &pod(&[image]), None);
    assert!(
        denied.len() == 1 && denied[0].contains(&format!("(docker.io/library/{image})")),
        "{denied:?}"
    );
}

#[test]
fn init_and_ephemeral_containers_and_pod_templates_are_judged() {
    let ns = registries("docker.io/library/");
    let mut p = pod(&["nginx"]);
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "evil.io/init"}]);
    assert_eq!(images(&ns, &p, None).len(), 1, "init container");
    let mut running = pod(&["nginx"]);
    let old = running.clone();
    running["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "evil.io/debug"}]);
    let denied = images(&ns, &running, Some(&old));
    assert!(
        denied.len() == 1 && denied[0].contains("evil.io/debug"),
        "{denied:?}"
    );
    let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "acme"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "quay.io/x"}]}}}}}});
    assert!(matches(&policy("covenant-images"), &cronjob, "CREATE"));
    assert_eq!(images(&ns, &cronjob, None).len(), 1, "cronjob template");
    for (api, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
    ] {
        let w = json!({"apiVersion": api, "kind": kind, "metadata": {"name": "w", "namespace": "acme"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "quay.io/x"}]}}}});
        assert!(
            matches(&policy("covenant-images"), &w, "CREATE"),
            "{kind} is a pod path"
        );
        assert_eq!(images(&ns, &w, None).len(), 1, "{kind} template");
    }
}

#[test]
fn an_update_is_judged_only_on_what_it_introduces() {
    let ns = registries("registry.example/");
    // Admitted before the package was tightened; scaling or relabelling it introduces no image.
    let old = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "acme"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(3);
    assert_eq!(images(&ns, &scaled, Some(&old)), Vec::<String>::new());
    let mut changed = old.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_eq!(images(&ns, &changed, Some(&old)).len(), 1);
}

#[test]
fn a_namespace_without_the_annotations_is_unrestricted() {
    for p in policies(WORKLOAD_POLICIES).unwrap() {
        let ns = namespace(json!({}));
        let mut any = pod(&["evil.io/x"]);
        any["spec"]["nodeName"] = json!("n1");
        any["spec"]["priorityClassName"] = json!("system-cluster-critical");
        any["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(
            evaluate(&p, &any, None, &ns, "alice").unwrap(),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

#[test]
fn tolerations_node_labels_and_priority_are_judged_against_the_annotations() {
    let ns = namespace(json!({
        "covenant.dev/policy-package": "gold",
        "covenant.dev/node-selector": "pool=tenants",
        "covenant.dev/allowed-tolerations": "dedicated||tenants|NoSchedule",
        "covenant.dev/allowed-priority-classes": "low",
    }));
    let scheduling = policy("covenant-scheduling");
    let mut p = pod(&["nginx"]);
    p["spec"]["nodeSelector"] = json!({"pool": "tenants"});
    p["spec"]["tolerations"] = json!([
        {"key": "dedicated", "value": "tenants", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    ]);
    p["spec"]["priorityClassName"] = json!("low");
    assert_eq!(
        evaluate(&scheduling, &p, None, &ns, "alice").unwrap(),
        Vec::<String>::new()
    );
    let mut bad = p.clone();
    bad["spec"]["nodeSelector"] = json!({"pool": "gpu"});
    bad["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    bad["spec"]["priorityClassName"] = json!("high");
    let denied = evaluate(&scheduling, &bad, None, &ns, "alice").unwrap();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(
        denied[0].contains("priorityClassName high") && denied[0].contains("allowed: low"),
        "{denied:?}"
    );
    assert!(
        denied[1].contains("pool=gpu") && denied[1].contains("forced: pool=tenants"),
        "{denied:?}"
    );
    assert!(
        denied[2].contains("toleration *")
            && denied[2].contains("allowed: dedicated=tenants:NoSchedule"),
        "{denied:?}"
    );
}

fn ingress(hosts: &[&str], tls: &[&str], annotations: Value) -> Value {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let mut r = json!({"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}});
            if !h.is_empty() {
                r["host"] = json!(h);
            }
            r
        })
        .collect();
    let mut spec = json!({"rules": rules});
    if !tls.is_empty() {
        spec["tls"] = json!([{"hosts": tls, "secretName": "cert"}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "web", "namespace": "acme", "annotations": annotations},
           "spec": spec})
}

#[test]
fn ingress_hosts_must_match_a_pattern_and_a_wildcard_matches_one_label() {
    let ns = namespace(json!({
        "covenant.dev/policy-package": "hardened",
        "covenant.dev/allowed-hostnames": "*.acme.example,shop.example",
    }));
    let p = policy("covenant-allowed-hostnames");
    let judge = |o: &Value, old: Option<&Value>| evaluate(&p, o, old, &ns, "alice").unwrap();
    assert!(matches(&p, &ingress(&[], &[], json!({})), "CREATE"));
    for ok in [
        ingress(&["shop.example"], &[], json!({})),
        ingress(
            &["api.acme.example", "*.acme.example"],
            &["api.acme.example"],
            json!({}),
        ),
    ] {
        assert_eq!(judge(&ok, None), Vec::<String>::new(), "{ok}");
    }
    for (bad, host) in [
        (
            ingress(&["a.b.acme.example"], &[], json!({})),
            "host a.b.acme.example",
        ),
        (
            ingress(&["acme.example"], &[], json!({})),
            "host acme.example",
        ),
        (
            ingress(&["www.shop.example"], &[], json!({})),
            "host www.shop.example",
        ),
        (ingress(&["*.example"], &[], json!({})), "host *.example"),
        (
            ingress(&["shop.example"], &["evil.example"], json!({})),
            "host evil.example",
        ),
        (
            ingress(&[""], &[], json!({})),
            "a rule without host (the catch-all)",
        ),
    ] {
        let denied = judge(&bad, None);
        assert_eq!(denied.len(), 1, "{bad}: {denied:?}");
        assert!(
            denied[0].contains(host)
                && denied[0].contains("hardened tier")
                && denied[0].contains("covenant-allowed-hostnames")
                && denied[0].contains("allowed: *.acme.example, shop.example"),
            "{denied:?}"
        );
    }
    // An update is judged on the hosts it adds: a host routed before the tier was narrowed stays.
    let old = ingress(&["old.example"], &[], json!({}));
    let kept = ingress(&["old.example", "shop.example"], &[], json!({}));
    assert_eq!(judge(&kept, Some(&old)), Vec::<String>::new());
    let added = ingress(&["old.example", "new.example"], &[], json!({}));
    assert_eq!(judge(&added, Some(&old)).len(), 1);
    // Without the annotation, any host.
    let open = namespace(json!({}));
    let any = ingress(&["", "x.y.z"], &[], json!({}));
    assert!(evaluate(&p, &any, None, &open, "alice").unwrap().is_empty());
}

#[test]
fn ingress_snippets_are_refused_unless_the_tier_allows_them() {
    let p = policy("covenant-ingress-snippets");
    let snippet = json!({"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers x;",
                         "nginx.ingress.kubernetes.io/rewrite-target": "/"});
    let o = ingress(&["shop.example"], &[], snippet);
    // No annotation at all (a package without policies): refused.
    let denied = evaluate(&p, &o, None, &namespace(json!({})), "alice").unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("nginx.ingress.kubernetes.io/configuration-snippet")
            && !denied[0].contains("rewrite-target")
            && denied[0].contains("covenant-ingress-snippets")
            && denied[0].contains("allowSnippets"),
        "{denied:?}"
    );
    for key in [
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/stream-snippet",
        "nginx.ingress.kubernetes.io/auth-snippet",
        "nginx.org/location-snippets",
    ] {
        let o = ingress(&["shop.example"], &[], json!({key: "x"}));
        assert_eq!(
            evaluate(&p, &o, None, &namespace(json!({})), "alice")
                .unwrap()
                .len(),
            1,
            "{key}"
        );
    }
    let allowing = namespace(json!({"covenant.dev/allow-ingress-snippets": "true"}));
    assert!(
        evaluate(&p, &o, None, &allowing, "alice")
            .unwrap()
            .is_empty()
    );
    // An update that keeps a snippet unchanged is admitted; one that changes it is judged.
    let ns = namespace(json!({}));
    let relabelled = o.clone();
    assert!(
        evaluate(&p, &relabelled, Some(&o), &ns, "alice")
            .unwrap()
            .is_empty()
    );
    let mut changed = o.clone();
    changed["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"] =
        json!("return 200;");
    assert_eq!(
        evaluate(&p, &changed, Some(&o), &ns, "alice")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn an_account_may_not_widen_its_tiers_hostnames() {
    let p = policies(include_str!("../../deploy/account-policies-policy.yaml"))
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let package = json!({"apiVersion": "covenant.dev/v1alpha1", "kind": "SupportPackage",
        "metadata": {"name": "hosted"},
        "spec": {"policies": {"hostnames": {"allowed": ["*.acme.example", "shop.example"]}}}});
    let account = |hosts: Value, snippets: bool| {
        json!({"apiVersion": "covenant.dev/v1alpha1", "kind": "Account",
            "metadata": {"name": "acme"},
            "spec": {"supportPackage": "hosted", "policies": {
                "hostnames": {"allowed": hosts}, "ingress": {"allowSnippets": snippets}}}})
    };
    let judge = |a: &Value| {
        covenant::admission::evaluate_with_params(&p, a, None, &json!(null), "alice", &package)
            .unwrap()
    };
    assert!(judge(&account(json!(["api.acme.example", "shop.example"]), false)).is_empty());
    let denied = judge(&account(json!(["*.example", "a.b.acme.example"]), true));
    assert_eq!(denied.len(), 1, "{denied:?}");
    for needle in [
        "policies.hostnames.allowed: *.example",
        "a.b.acme.example is not within",
        "(*.acme.example, shop.example)",
        "policies.ingress.allowSnippets",
    ] {
        assert!(denied[0].contains(needle), "{needle}: {denied:?}");
    }
    // Judged against another package (the binding takes every package as params), nothing widens.
    let mut other = package.clone();
    other["metadata"]["name"] = json!("plain");
    other["spec"] = json!({});
    let wide = account(json!(["*.example"]), true);
    assert!(
        covenant::admission::evaluate_with_params(&p, &wide, None, &json!(null), "alice", &other)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_upper_case_first_component_is_a_registry_host_as_the_runtime_reads_it() {
    // The container runtime takes a first component with an upper-case letter as a registry host
    // (`Mirror/x` is pulled from the host Mirror, `LocalHost/x` from the node): never docker.io's.
    let ns = registries("docker.io/");
    for image in ["Mirror/x", "LocalHost/x", "DOCKER.IO/library/nginx"] {
        let denied = images(&ns, &pod(&[image]), None);
        assert!(
            denied.len() == 1 && !denied[0].contains("docker.io/Mirror"),
            "{image}: {denied:?}"
        );
    }
    for image in ["nginx", "mirror/x", "index.docker.io/library/nginx"] {
        assert!(images(&ns, &pod(&[image]), None).is_empty(), "{image}");
    }
}

#[test]
fn a_repository_prefix_covers_its_tags_and_children_not_its_siblings() {
    let ns = registries("ghcr.io/acme,registry.example/team/app:1.2");
    for image in [
        "ghcr.io/acme",
        "ghcr.io/acme:1",
        "ghcr.io/acme/web",
        "ghcr.io/acme@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "registry.example/team/app:1.2.3",
    ] {
        assert!(images(&ns, &pod(&[image]), None).is_empty(), "{image}");
    }
    for image in [
        "ghcr.io/acme-evil/web",
        "ghcr.io/acmex",
        "registry.example/team/app:2",
    ] {
        assert_eq!(images(&ns, &pod(&[image]), None).len(), 1, "{image}");
    }
}

fn classes(object: &Value, old: Option<&Value>, annotations: Value) -> Vec<String> {
    evaluate(
        &policy("covenant-classes"),
        object,
        old,
        &namespace(annotations),
        "alice",
    )
    .expect("the policy evaluates")
}

#[test]
fn a_storage_class_counts_by_the_legacy_annotation_and_in_claim_templates() {
    let tier = json!({"covenant.dev/allowed-storage-classes": "cheap",
                      "covenant.dev/default-storage-class": "cheap"});
    let pvc = |class: Option<&str>, legacy: Option<&str>| {
        let mut o = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "acme"}, "spec": {}});
        if let Some(c) = class {
            o["spec"]["storageClassName"] = json!(c);
        }
        if let Some(l) = legacy {
            o["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": l});
        }
        o
    };
    let d = classes(&pvc(Some("cheap"), Some("dear")), None, tier.clone());
    assert!(
        d.len() == 1 && d[0].contains("storageClassName dear") && d[0].contains("allowed: cheap"),
        "{d:?}"
    );
    assert!(classes(&pvc(None, Some("cheap")), None, tier.clone()).is_empty());
    // Added on UPDATE (the API server also refuses it: the annotation is immutable).
    assert_eq!(
        classes(
            &pvc(Some("cheap"), Some("dear")),
            Some(&pvc(Some("cheap"), None)),
            tier.clone()
        )
        .len(),
        1
    );
    let sts = |template: Value| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "acme"},
               "spec": {"serviceName": "db", "selector": {}, "template": {},
                        "volumeClaimTemplates": [template]}})
    };
    let by_field = sts(json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "dear"}}));
    let by_legacy = sts(json!({"metadata": {"name": "data", "annotations": {
        "volume.beta.kubernetes.io/storage-class": "dear"}}, "spec": {}}));
    for o in [&by_field, &by_legacy] {
        let d = classes(o, None, tier.clone());
        assert!(
            d.len() == 1 && d[0].contains("dear of StatefulSet db"),
            "{d:?}"
        );
    }
    let plain = sts(json!({"metadata": {"name": "data"}, "spec": {}}));
    assert!(classes(&plain, None, tier.clone()).is_empty());
    // An update that keeps the templates is not judged again.
    assert!(classes(&by_field, Some(&by_field), tier).is_empty());
}

#[test]
fn an_ingress_naming_no_class_is_refused_where_the_tier_names_classes_without_a_default() {
    let o = ingress(&["shop.example"], &[], json!({}));
    let d = classes(
        &o,
        None,
        json!({"covenant.dev/allowed-ingress-classes": "public"}),
    );
    assert!(
        d.len() == 1 && d[0].contains("names no ingressClassName") && d[0].contains("public"),
        "{d:?}"
    );
    assert!(classes(&o, None, json!({})).is_empty());
    // An update of an Ingress admitted before is not judged for it.
    assert!(
        classes(
            &o,
            Some(&o),
            json!({"covenant.dev/allowed-ingress-classes": "public"})
        )
        .is_empty()
    );
}

#[test]
fn snippets_count_under_any_prefix() {
    let p = policy("covenant-ingress-snippets");
    for key in [
        "ingress.example.com/server-snippet",
        "haproxy.org/backend-config-snippet",
        "haproxy-ingress.github.io/config-backend",
        "ingress.kubernetes.io/config-frontend",
        "nginx.ingress.kubernetes.io/Configuration-Snippet",
    ] {
        let o = ingress(&["shop.example"], &[], json!({key: "x"}));
        assert_eq!(
            evaluate(&p, &o, None, &namespace(json!({})), "alice")
                .unwrap()
                .len(),
            1,
            "{key}"
        );
    }
    for key in [
        "nginx.ingress.kubernetes.io/rewrite-target",
        "ingress.kubernetes.io/ssl-redirect",
    ] {
        let o = ingress(&["shop.example"], &[], json!({key: "x"}));
        assert!(
            evaluate(&p, &o, None, &namespace(json!({})), "alice")
                .unwrap()
                .is_empty(),
            "{key}"
        );
    }
}

#[test]
fn a_template_naming_a_node_is_refused_where_node_labels_are_forced() {
    let ns = namespace(json!({"covenant.dev/node-selector": "pool=tenants"}));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "acme"},
        "spec": {"template": {"spec": {"nodeName": "gpu-1", "containers": [{"name": "c", "image": "x"}]}}}});
    let p = policy("covenant-scheduling");
    let d = evaluate(&p, &deployment, None, &ns, "alice").unwrap();
    assert!(
        d.len() == 1 && d[0].contains("Deployment d names a node"),
        "{d:?}"
    );
    // A running pod keeps the node the scheduler bound it to through its updates.
    let bound = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "acme"},
        "spec": {"nodeName": "n1", "nodeSelector": {"pool": "tenants"}, "containers": [{"name": "c", "image": "x"}]}});
    assert!(
        evaluate(&p, &bound, Some(&bound), &ns, "alice")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_tls_host_must_be_one_the_ingress_routes() {
    let p = policies(include_str!("../../deploy/hostnames-policy.yaml"))
        .unwrap()
        .into_iter()
        .find(|p| p["metadata"]["name"] == "covenant-ingress-hosts-bounded")
        .expect("covenant-ingress-hosts-bounded");
    let ns = namespace(json!({}));
    let mut stray = ingress(&["shop.acme.example"], &["shop.globex.example"], json!({}));
    stray["metadata"]["namespace"] = json!("acme");
    let d = evaluate(&p, &stray, None, &ns, "alice").unwrap();
    assert!(
        d.len() == 1 && d[0].contains("TLS host shop.globex.example is not a host of its rules"),
        "{d:?}"
    );
    let own = ingress(&["shop.acme.example"], &["shop.acme.example"], json!({}));
    assert!(evaluate(&p, &own, None, &ns, "alice").unwrap().is_empty());
    // Kept through updates once admitted (an Ingress from before the rule).
    assert!(
        evaluate(&p, &stray, Some(&stray), &ns, "alice")
            .unwrap()
            .is_empty()
    );
}
