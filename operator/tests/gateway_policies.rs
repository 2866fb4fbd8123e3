//! The Gateway API in the shipped policies, evaluated offline with kube's CEL engine (the evaluator of
//! `covenant check` and of the compliance report): a Gateway's class and listener hostnames, a route's
//! hostnames against the tier's patterns, and the bounds of a route's hostnames. The claims of other
//! tenants (`covenant-hostnames`, whose optional-field syntax this engine does not parse) and all of
//! this are shown on the API server by the e2e suite `gateway`.

use covenant::admission::{WORKLOAD_POLICIES, evaluate, matches, policies};
use serde_json::{Value, json};

const HOSTNAMES: &str = include_str!("../../deploy/hostnames-policy.yaml");

fn policy(yaml: &str, name: &str) -> Value {
    policies(yaml)
        .unwrap()
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("policy {name}"))
}

fn namespace(account: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": account, "labels": {"covenant.dev/account": account}, "annotations": annotations}})
}

fn gateway(class: &str, hostnames: &[&str]) -> Value {
    let listeners: Vec<Value> = hostnames
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut l = json!({"name": format!("l{i}"), "port": 80, "protocol": "HTTP"});
            if !h.is_empty() {
                l["hostname"] = json!(h);
            }
            l
        })
        .collect();
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": "gw", "namespace": "acme"},
           "spec": {"gatewayClassName": class, "listeners": listeners}})
}

fn route(kind: &str, hostnames: &[&str]) -> Value {
    let mut r = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
           "metadata": {"name": "web", "namespace": "acme"},
           "spec": {"parentRefs": [{"name": "gw"}]}});
    if !hostnames.is_empty() {
        r["spec"]["hostnames"] = json!(hostnames);
    }
    r
}

#[test]
fn a_gateway_must_name_a_class_the_tier_allows_and_the_message_names_the_policy_and_the_allowed() {
    let p = policy(WORKLOAD_POLICIES, "covenant-classes");
    let ns = namespace(
        "acme",
        json!({"covenant.dev/allowed-gateway-classes": "public,internal", "covenant.dev/policy-package": "gold"}),
    );
    let ok = gateway("public", &[]);
    assert!(matches(&p, &ok, "CREATE"));
    assert!(evaluate(&p, &ok, None, &ns, "alice").unwrap().is_empty());
    let d = evaluate(&p, &gateway("premium", &[]), None, &ns, "alice").unwrap();
    assert_eq!(
        d,
        [
            "gatewayClassName premium of Gateway gw is not one of the GatewayClasses the gold tier allows (covenant-classes): allowed: public, internal"
        ]
    );
    // A Gateway admitted before the tier was tightened may still be updated (its class is not new).
    let old = gateway("premium", &[]);
    assert!(
        evaluate(
            &p,
            &gateway("premium", &["x.example"]),
            Some(&old),
            &ns,
            "alice"
        )
        .unwrap()
        .is_empty()
    );
    // A namespace without the annotation: any class.
    let free = namespace("acme", json!({}));
    assert!(
        evaluate(&p, &gateway("premium", &[]), None, &free, "alice")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn route_and_listener_hostnames_must_match_the_tiers_patterns_and_a_route_without_any_is_the_catch_all()
 {
    let p = policy(WORKLOAD_POLICIES, "covenant-allowed-hostnames");
    let ns = namespace(
        "acme",
        json!({"covenant.dev/allowed-hostnames": "*.acme.example,shop.example", "covenant.dev/policy-package": "gold"}),
    );
    for kind in ["HTTPRoute", "GRPCRoute"] {
        let ok = route(
            kind,
            &["shop.acme.example", "shop.example", "*.acme.example"],
        );
        assert!(matches(&p, &ok, "CREATE"), "{kind}");
        assert!(evaluate(&p, &ok, None, &ns, "alice").unwrap().is_empty());
        for (hosts, shown) in [
            (vec!["a.b.acme.example"], "host a.b.acme.example"),
            (
                vec!["shop.example", "shop.globex.example"],
                "host shop.globex.example",
            ),
            (vec![], "no hostnames (the catch-all)"),
        ] {
            let d = evaluate(&p, &route(kind, &hosts), None, &ns, "alice").unwrap();
            assert_eq!(
                d,
                [format!(
                    "{kind} web: {shown} is not within the hostnames the gold tier allows (covenant-allowed-hostnames; a wildcard matches one label): allowed: *.acme.example, shop.example"
                )]
            );
        }
        // An update judges only the hostnames it adds.
        let old = route(kind, &["shop.globex.example"]);
        assert!(
            evaluate(&p, &old, Some(&old), &ns, "alice")
                .unwrap()
                .is_empty()
        );
    }
    // A Gateway's listener hostnames; a listener without one is not the catch-all of a route.
    let gw = gateway("public", &["", "shop.acme.example"]);
    assert!(evaluate(&p, &gw, None, &ns, "alice").unwrap().is_empty());
    let d = evaluate(
        &p,
        &gateway("public", &["shop.globex.example"]),
        None,
        &ns,
        "alice",
    )
    .unwrap();
    assert!(
        d.len() == 1 && d[0].starts_with("Gateway gw: host shop.globex.example is not within"),
        "{d:?}"
    );
}

#[test]
fn a_route_has_at_most_16_hostnames_in_lower_case_without_a_final_dot() {
    let p = policy(HOSTNAMES, "covenant-route-hostnames-bounded");
    let ns = namespace("acme", json!({}));
    let many: Vec<String> = (0..17).map(|i| format!("h{i}.acme.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(
        evaluate(&p, &route("HTTPRoute", &many[..16]), None, &ns, "alice")
            .unwrap()
            .is_empty()
    );
    let d = evaluate(&p, &route("HTTPRoute", &many), None, &ns, "alice").unwrap();
    assert!(
        d.len() == 1 && d[0].contains("at most 16 hostnames"),
        "{d:?}"
    );
    for odd in ["Shop.globex.example", "shop.globex.example."] {
        let d = evaluate(&p, &route("GRPCRoute", &[odd]), None, &ns, "alice").unwrap();
        assert_eq!(
            d,
            [format!(
                "GRPCRoute web in namespace acme: hostname \"{odd}\" is not in lower case without a trailing dot (covenant-route-hostnames-bounded: a hostname is claimed as written, so it must be written as it is served); write it in lower case without the final dot"
            )]
        );
    }
    assert!(
        evaluate(&p, &route("HTTPRoute", &[]), None, &ns, "alice")
            .unwrap()
            .is_empty()
    );
}

/// A route without hostnames takes every host of the listeners it attaches to: it attaches only to
/// parents of its own namespace (a parentRef without namespace, or naming its own); a route that
/// names its hostnames attaches anywhere (its hostnames are claimed).
#[test]
fn a_route_without_hostnames_attaches_only_to_parents_of_its_own_namespace() {
    let p = policy(HOSTNAMES, "covenant-route-hostnames-bounded");
    let ns = namespace("acme", json!({}));
    let with_parents = |hostnames: &[&str], parents: Value| {
        let mut r = route("HTTPRoute", hostnames);
        r["spec"]["parentRefs"] = parents;
        r
    };
    let local =
        json!([{"name": "gw"}, {"name": "gw2", "namespace": "acme", "sectionName": "http"}]);
    let remote = json!([{"name": "gw"}, {"name": "shared", "namespace": "edge"}]);
    for (route, admitted) in [
        (with_parents(&[], local.clone()), true),
        (with_parents(&[], remote.clone()), false),
        (with_parents(&["shop.acme.example"], remote), true),
        (with_parents(&["shop.acme.example"], local), true),
    ] {
        let d = evaluate(&p, &route, None, &ns, "alice").unwrap();
        if admitted {
            assert!(d.is_empty(), "{route}: {d:?}");
        } else {
            assert!(
                d.len() == 1
                    && d[0].contains("a route without hostnames takes every host of the listeners")
                    && d[0].contains("name its hostnames"),
                "{route}: {d:?}"
            );
        }
    }
}

#[test]
fn covenant_check_judges_gateways_and_routes_against_the_tenants_package() {
    use covenant::check::{self, Report};
    let text = r#"
apiVersion: covenant.dev/v1alpha1
kind: SupportPackage
metadata: {name: gold}
spec:
  displayName: Gold
  serviceLevels: [{severity: P1, initialResponse: 1h, coverage: 24x7}]
  policies:
    gatewayClasses: {allowed: [public]}
    hostnames: {allowed: ["*.acme.example"]}
---
apiVersion: covenant.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec:
  displayName: Acme
  supportPackage: gold
  administrators: [{kind: User, name: alice@acme.example}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: premium, namespace: acme}
spec:
  gatewayClassName: premium
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: acme}
spec:
  gatewayClassName: public
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: shop.acme.example}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: steal, namespace: acme}
spec:
  parentRefs: [{name: public}]
  hostnames: [shop.acme.example, shop.globex.example]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: upper, namespace: acme}
spec:
  parentRefs: [{name: public}]
  hostnames: [Api.acme.example]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fine, namespace: acme}
spec:
  parentRefs: [{name: public}]
  hostnames: [www.acme.example]
"#;
    let mut report = Report::default();
    let docs = check::parse_docs("tenant.yaml", text, &mut report);
    check::check(docs, "2026-11-28T12:00:00Z".parse().unwrap(), &mut report);
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has(
            "gatewayClassName premium of Gateway premium is not one of the GatewayClasses the gold tier allows (covenant-classes): allowed: public"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            "HTTPRoute steal: host shop.globex.example is not within the hostnames the gold tier allows"
        ),
        "{problems:#?}"
    );
    assert!(
        has(
            "GRPCRoute upper in namespace acme: hostname \"Api.acme.example\" is not in lower case"
        ),
        "{problems:#?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("fine") || p.contains("Gateway public")),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert_eq!(report.exit_code(), check::exit::INVALID);
}
