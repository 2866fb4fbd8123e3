//! The tests' independent judges on hand-written input, without a cluster: the NetworkPolicy oracle
//! (cyclonus' matcher, `covenant_e2e::netpol`) and kstatus (cli-utils, `covenant_e2e::kstatus`). Each
//! test states answers any correct engine gives, so a judge that drifted (a new version, a broken
//! build, a wrapper that mangles its input) fails here before it judges the operator.

use std::collections::BTreeMap;

use covenant::api::{Account, AccountSpec};
use covenant_e2e::kstatus::{self, KStatus};
use covenant_e2e::netpol::{Peer, Probe, Verdict, evaluate_policies};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

/// A namespace as the API server returns it: `kubernetes.io/metadata.name` set to its name, plus
/// `extra` labels.
fn namespace(name: &str, extra: &[(&str, &str)]) -> Namespace {
    let mut labels = BTreeMap::from([("kubernetes.io/metadata.name".into(), name.to_string())]);
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }))
    .expect("a Namespace")
}

/// A NetworkPolicy `name` in `ns` with `spec`.
fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("a NetworkPolicy")
}

fn probe(name: &str, from: &Peer, to: &Peer, port: u16, protocol: &'static str) -> Probe {
    Probe {
        name: name.into(),
        from: from.clone(),
        to: to.clone(),
        port,
        protocol,
    }
}

/// The verdicts, with the probe names checked.
#[track_caller]
fn judge(policies: &[NetworkPolicy], probes: &[Probe]) -> Vec<Verdict> {
    let verdicts = evaluate_policies(policies, probes).expect("the oracle answers");
    assert_eq!(verdicts.len(), probes.len());
    for (v, p) in verdicts.iter().zip(probes) {
        assert_eq!(v.name, p.name);
    }
    verdicts
}

/// Asserts (ingress, egress) for each verdict, naming the probe and the oracle's explanation on failure.
#[track_caller]
fn expect(verdicts: &[Verdict], want: &[(bool, bool)]) {
    assert_eq!(verdicts.len(), want.len());
    for (v, &(ingress, egress)) in verdicts.iter().zip(want) {
        assert_eq!(
            (v.ingress, v.egress, v.allowed),
            (ingress, egress, ingress && egress),
            "{}: {}",
            v.name,
            v.explanation
        );
    }
}

// ----- NetworkPolicy oracle -----

/// No policy at all: every traffic is allowed, both ways, and the explanation says no policy applies.
#[test]
fn no_policy_allows_everything() {
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let beta = Peer::pod(&namespace("beta", &[]), "10.0.1.5");
    let v = judge(
        &[],
        &[
            probe(
                "acme -> internet",
                &acme,
                &Peer::external("8.8.8.8"),
                443,
                "TCP",
            ),
            probe("beta -> acme", &beta, &acme, 80, "TCP"),
            probe(
                "internet -> acme",
                &Peer::external("1.2.3.4"),
                &acme,
                22,
                "UDP",
            ),
        ],
    );
    expect(&v, &[(true, true), (true, true), (true, true)]);
    assert!(
        v[1].explanation.contains("no policy selects"),
        "{}",
        v[1].explanation
    );
}

/// A deny-all (`policyTypes: [Ingress, Egress]`, no rules, every pod) isolates its namespace both
/// ways (even from itself), names itself as the decider, and leaves other namespaces alone.
#[test]
fn deny_all_denies_both_ways() {
    let deny = policy(
        "acme",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let acme2 = Peer::pod(&namespace("acme", &[]), "10.0.0.6");
    let beta = Peer::pod(&namespace("beta", &[]), "10.0.1.5");
    let v = judge(
        &[deny],
        &[
            probe(
                "acme -> internet",
                &acme,
                &Peer::external("8.8.8.8"),
                443,
                "TCP",
            ),
            probe("beta -> acme", &beta, &acme, 80, "TCP"),
            probe("acme -> acme", &acme, &acme2, 80, "TCP"),
            probe(
                "beta -> internet",
                &beta,
                &Peer::external("8.8.8.8"),
                443,
                "TCP",
            ),
        ],
    );
    expect(
        &v,
        &[(true, false), (false, true), (false, false), (true, true)],
    );
    assert!(
        v[0].explanation.contains("acme/deny-all"),
        "{}",
        v[0].explanation
    );
}

/// Egress by port ranges (`endPort`) around SIP, as Covenant builds it: TCP 1-5059 and 5062-65535.
/// TCP 5060 and 5061 fall in the gap; 443 and the range ends 5059 and 5062 are inside; UDP has no rule.
#[test]
fn end_port_ranges_leave_the_gap_closed() {
    let egress = policy(
        "acme",
        "egress",
        json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [
                {"protocol": "TCP", "port": 1, "endPort": 5059},
                {"protocol": "TCP", "port": 5062, "endPort": 65535},
            ]}],
        }),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let out = Peer::external("8.8.8.8");
    let v = judge(
        &[egress],
        &[
            probe("tcp 5060", &acme, &out, 5060, "TCP"),
            probe("tcp 5061", &acme, &out, 5061, "TCP"),
            probe("tcp 443", &acme, &out, 443, "TCP"),
            probe("tcp 5059", &acme, &out, 5059, "TCP"),
            probe("tcp 5062", &acme, &out, 5062, "TCP"),
            probe("udp 53", &acme, &out, 53, "UDP"),
        ],
    );
    expect(
        &v,
        &[
            (true, false),
            (true, false),
            (true, true),
            (true, true),
            (true, true),
            (true, false),
        ],
    );
    assert!(
        v[2].explanation.contains("egress: allowed by acme/egress"),
        "{}",
        v[2].explanation
    );
}

/// An ingress rule selecting namespaces by `kubernetes.io/metadata.name` (set by the API server, not
/// forgeable) admits that namespace only: a namespace carrying a forged `covenant.dev/account: acme`
/// label is refused. The same rule on `covenant.dev/account` would admit the forger, which the second
/// policy shows: selectors match labels, whoever set them.
#[test]
fn namespace_selector_on_metadata_name_refuses_forged_labels() {
    let by_name = policy(
        "acme",
        "isolation",
        json!({
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "acme"}}}]}],
        }),
    );
    let by_label = policy(
        "beta",
        "isolation",
        json!({
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {
                "matchLabels": {"covenant.dev/account": "beta"}}}]}],
        }),
    );
    let acme = Peer::pod(
        &namespace("acme", &[("covenant.dev/account", "acme")]),
        "10.0.0.5",
    );
    let acme2 = Peer::pod(
        &namespace("acme", &[("covenant.dev/account", "acme")]),
        "10.0.0.6",
    );
    let beta = Peer::pod(
        &namespace("beta", &[("covenant.dev/account", "beta")]),
        "10.0.1.5",
    );
    let forger = Peer::pod(
        &namespace(
            "mallory",
            &[("covenant.dev/account", "acme"), ("other", "beta")],
        ),
        "10.0.2.5",
    );
    let forger_beta = Peer::pod(
        &namespace("mallory2", &[("covenant.dev/account", "beta")]),
        "10.0.3.5",
    );
    let v = judge(
        &[by_name, by_label],
        &[
            probe("acme -> acme", &acme2, &acme, 8080, "TCP"),
            probe("forged acme label -> acme", &forger, &acme, 8080, "TCP"),
            probe("beta -> acme", &beta, &acme, 8080, "TCP"),
            probe(
                "forged beta label -> beta",
                &forger_beta,
                &beta,
                8080,
                "TCP",
            ),
        ],
    );
    expect(
        &v,
        &[(true, true), (false, true), (false, true), (true, true)],
    );
    assert!(
        v[1].explanation.contains("acme/isolation"),
        "{}",
        v[1].explanation
    );
}

/// An ipBlock `0.0.0.0/0 except 169.254.0.0/16` denies the cloud metadata address and allows the
/// internet. cyclonus also matches ipBlocks against pods in the cluster by their IP (the API leaves
/// that to the network plugin): a pod in another namespace is reached through 0.0.0.0/0.
#[test]
fn ip_block_except_denies_metadata_address() {
    let egress = policy(
        "acme",
        "egress",
        json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]}],
        }),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let beta = Peer::pod(&namespace("beta", &[]), "10.0.1.5");
    let v = judge(
        &[egress],
        &[
            probe(
                "metadata",
                &acme,
                &Peer::external("169.254.169.254"),
                80,
                "TCP",
            ),
            probe("internet", &acme, &Peer::external("8.8.8.8"), 53, "UDP"),
            probe("pod by ip", &acme, &beta, 80, "TCP"),
        ],
    );
    expect(&v, &[(true, false), (true, true), (true, true)]);
}

/// IPv6 ipBlocks are judged like IPv4 ones (Go's `net` parses either family), and the families do not
/// mix: `::/0` never admits an IPv4 address nor `0.0.0.0/0` an IPv6 one, so each family's metadata
/// addresses must be excepted from that family's block; an IPv6 address inside an except is denied,
/// one outside it allowed.
#[test]
fn ipv6_ip_blocks_are_judged_and_the_families_do_not_mix() {
    let egress = policy(
        "acme",
        "egress",
        json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "::/0", "except": ["fd00:ec2::254/128", "64:ff9b::a9fe:0/112"]}}]}],
        }),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let v = judge(
        &[egress],
        &[
            probe(
                "aws v6 metadata",
                &acme,
                &Peer::external("fd00:ec2::254"),
                80,
                "TCP",
            ),
            probe(
                "nat64 metadata",
                &acme,
                &Peer::external("64:ff9b::a9fe:a9fe"),
                80,
                "TCP",
            ),
            probe(
                "v6 internet",
                &acme,
                &Peer::external("2606:4700::1111"),
                443,
                "TCP",
            ),
            probe("v4 internet", &acme, &Peer::external("8.8.8.8"), 443, "TCP"),
        ],
    );
    expect(
        &v,
        &[(true, false), (true, false), (true, true), (true, false)],
    );
}

/// SCTP is a protocol of its own: a port entry `{protocol: SCTP}` without a port opens every SCTP
/// port and no TCP or UDP one; an SCTP port does not open the same TCP port.
#[test]
fn sctp_is_matched_by_protocol() {
    let egress = policy(
        "acme",
        "egress",
        json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "SCTP"}, {"protocol": "TCP", "port": 443}]}],
        }),
    );
    let ingress = policy(
        "beta",
        "diameter",
        json!({
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "SCTP", "port": 3868}]}],
        }),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let beta = Peer::pod(&namespace("beta", &[]), "10.0.1.5");
    let out = Peer::external("8.8.8.8");
    let v = judge(
        &[egress, ingress],
        &[
            probe("sctp 5060 out", &acme, &out, 5060, "SCTP"),
            probe("tcp 5060 out", &acme, &out, 5060, "TCP"),
            probe("udp 5060 out", &acme, &out, 5060, "UDP"),
            probe("sctp 3868 in", &out, &beta, 3868, "SCTP"),
            probe("tcp 3868 in", &out, &beta, 3868, "TCP"),
        ],
    );
    expect(
        &v,
        &[
            (true, true),
            (true, false),
            (true, false),
            (true, true),
            (false, true),
        ],
    );
}

/// Known limits of cyclonus v0.5.6, pinned so an upgrade that changes them is noticed: a named port
/// in a policy never matches a probe (probes carry numbers; cyclonus does not resolve names), and a
/// `NotIn` selector does not match a namespace lacking the key (Kubernetes' selectors would match it).
#[test]
fn cyclonus_limits_named_ports_and_not_in() {
    let named = policy(
        "acme",
        "web",
        json!({
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": "http"}]}],
        }),
    );
    let not_in = policy(
        "beta",
        "not-suspended",
        json!({
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "suspended", "operator": "NotIn", "values": ["true"]}]}}]}],
        }),
    );
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let beta = Peer::pod(&namespace("beta", &[]), "10.0.1.5");
    let v = judge(
        &[named, not_in],
        &[
            probe("port 80 vs named port http", &beta, &acme, 80, "TCP"),
            probe("NotIn, key absent", &acme, &beta, 80, "TCP"),
        ],
    );
    expect(&v, &[(false, true), (false, true)]);
}

/// The oracle refuses input it cannot judge instead of guessing: a policy without `policyTypes`
/// (the API server always sets them) and a peer without an IP are errors.
#[test]
fn bad_input_is_an_error() {
    let acme = Peer::pod(&namespace("acme", &[]), "10.0.0.5");
    let untyped = policy("acme", "untyped", json!({"podSelector": {}}));
    let err = evaluate_policies(
        &[untyped],
        &[probe("x", &acme, &Peer::external("8.8.8.8"), 443, "TCP")],
    )
    .expect_err("a policy without policyTypes is refused");
    assert!(format!("{err:#}").contains("policyTypes"), "{err:#}");
    let err = evaluate_policies(&[], &[probe("x", &acme, &Peer::external(""), 443, "TCP")])
        .expect_err("a peer without an IP is refused");
    assert!(format!("{err:#}").contains("not an IP address"), "{err:#}");
}

// ----- kstatus -----

/// A custom resource (an Account as the API server would return it) with `generation` and `status`.
fn account(generation: i64, status: Option<Value>) -> Value {
    let mut obj = json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "Account",
        "metadata": {"name": "acme", "generation": generation, "uid": "u-1"},
        "spec": {},
    });
    if let Some(s) = status {
        obj["status"] = s;
    }
    obj
}

fn cond(type_: &str, status: &str) -> Value {
    json!({"type": type_, "status": status, "reason": "Test", "message": format!("{type_} is {status}"),
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3})
}

#[track_caller]
fn one(obj: Value) -> KStatus {
    let mut out = kstatus::compute(&[obj]).expect("kstatus answers");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// `status.observedGeneration == metadata.generation` and `Ready=True`: Current.
#[test]
fn kstatus_ready_and_observed_is_current() {
    let s = one(account(
        3,
        Some(json!({"observedGeneration": 3, "conditions": [cond("Ready", "True")]})),
    ));
    assert_eq!(
        (s.kind.as_str(), s.name.as_str(), s.namespace.as_str()),
        ("Account", "acme", "")
    );
    assert_eq!(s.status, "Current", "{s:?}");
}

/// `Reconciling=True` (kstatus' abnormal-true condition): InProgress, even with Ready=True.
#[test]
fn kstatus_reconciling_is_in_progress() {
    let s = one(account(
        3,
        Some(json!({"observedGeneration": 3,
                    "conditions": [cond("Ready", "True"), cond("Reconciling", "True")]})),
    ));
    assert_eq!(s.status, "InProgress", "{s:?}");
    assert_eq!(s.message, "Reconciling is True");
}

/// `Stalled=True`: Failed, with the condition's message.
#[test]
fn kstatus_stalled_is_failed() {
    let s = one(account(
        3,
        Some(json!({"observedGeneration": 3,
                    "conditions": [cond("Ready", "False"), cond("Stalled", "True")]})),
    ));
    assert_eq!(s.status, "Failed", "{s:?}");
    assert_eq!(s.message, "Stalled is True");
}

/// `metadata.generation` ahead of `status.observedGeneration`: InProgress whatever the conditions say
/// (the status describes an older spec).
#[test]
fn kstatus_generation_ahead_is_in_progress() {
    let s = one(account(
        4,
        Some(json!({"observedGeneration": 3, "conditions": [cond("Ready", "True")]})),
    ));
    assert_eq!(s.status, "InProgress", "{s:?}");
    assert_eq!(
        s.message,
        "Account generation is 4, but latest observed generation is 3"
    );
}

/// `Ready=False` with the generation observed: InProgress (kstatus cannot tell a slow resource from
/// a doomed one by Ready alone).
#[test]
fn kstatus_not_ready_is_in_progress() {
    let s = one(account(
        3,
        Some(json!({"observedGeneration": 3, "conditions": [cond("Ready", "False")]})),
    ));
    assert_eq!(s.status, "InProgress", "{s:?}");
}

/// No status at all (nothing observed yet): kstatus says Current ("Resource is current"): it cannot
/// know the resource has a controller. A test that waits for Current must first see a status.
#[test]
fn kstatus_no_status_is_current() {
    let s = one(account(1, None));
    assert_eq!(
        (s.status.as_str(), s.message.as_str()),
        ("Current", "Resource is current")
    );
}

/// A deletion timestamp: Terminating, before anything else.
#[test]
fn kstatus_deleting_is_terminating() {
    let mut obj = account(
        3,
        Some(json!({"observedGeneration": 3, "conditions": [cond("Ready", "True")]})),
    );
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(one(obj).status, "Terminating");
}

/// A status kstatus cannot read (a condition that is not an object): Unknown, with the error as the
/// message, as kstatus' own poller reports it.
#[test]
fn kstatus_malformed_status_is_unknown() {
    let s = one(account(3, Some(json!({"conditions": [1]}))));
    assert_eq!(s.status, "Unknown", "{s:?}");
    assert!(!s.message.is_empty());
}

/// The operator's own Account type serializes with `apiVersion` and `kind` (what kstatus reads to pick
/// its rules, and what `kstatus::of` sends), and the answers keep the input order.
#[test]
fn kstatus_of_typed_objects_in_order() {
    let typed = Account::new("typed", AccountSpec::default());
    let value = serde_json::to_value(&typed).expect("an Account serializes");
    assert_eq!(value["apiVersion"], "covenant.dev/v1alpha1");
    assert_eq!(value["kind"], "Account");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "acme"}});
    let out = kstatus::compute(&[
        value,
        account(2, Some(json!({"observedGeneration": 1}))),
        cm,
    ])
    .expect("kstatus answers");
    let got: Vec<(&str, &str, &str)> = out
        .iter()
        .map(|s| (s.name.as_str(), s.namespace.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("typed", "", "Current"),
            ("acme", "", "InProgress"),
            ("cm", "acme", "Current")
        ]
    );
}
