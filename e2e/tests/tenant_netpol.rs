//! Tenants' own NetworkPolicies can only narrow (SPEC "Network, by effect", the paragraph on tenant
//! policies), shown by effect: the API server's answers to real requests by the tenant's administrator
//! and by a ServiceAccount it bound, and the verdicts of an upstream NetworkPolicy engine (cyclonus'
//! matcher) on every live policy of the cluster — Covenant's guardrails and the tenant's — in each
//! state of the tenant: active, suspended, lifted, retained.

use std::collections::BTreeMap;

use covenant::api::PackageNetwork;
use covenant_e2e::fixtures::{self, api_error};
use covenant_e2e::k8s::{eventually, impersonate, wait_account, wait_for, wait_gone};
use covenant_e2e::netpol::{self, Peer, Probe};
use covenant_e2e::{TIMEOUT, Tenant, TenantBuilder, TestCtx};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const NAME_LABEL: &str = "kubernetes.io/metadata.name";
const ACCOUNT_LABEL: &str = "covenant.dev/account";
const READ_ONLY_LABEL: &str = "covenant.dev/read-only";
const NARROWED: &str = "covenant.dev/narrowed";
const NEUTRALISED: &str = "covenant.dev/neutralised";
const DENIED_CIDRS: &str = "covenant.dev/denied-cidrs";
const PLATFORM_SELECTORS: &str = "covenant.dev/platform-selectors";
const DENY_ALL: &str = "covenant-suspension-deny-all";
const BOUNDS: &str = "covenant-bounds";
const NP_COUNT: &str = "count/networkpolicies.networking.k8s.io";
const SUSPENSIONS: &str = "suspensions.covenant.dev";
const NETOPS: &str = "netops";

/// A tenant `base-<suffix>` with two namespaces, on a package of its own (room for 10 pods) whose
/// platform namespace `platform` (by name) may reach its tenants.
fn behind_platform<'a>(t: &'a TestCtx, base: &str, platform: &str) -> TenantBuilder<'a> {
    let from_platform = LabelSelector {
        match_labels: Some(fixtures::map(&[(NAME_LABEL, platform)])),
        ..Default::default()
    };
    t.tenant(base).namespaces(2).own_package(move |p| {
        p.quota = Some(fixtures::resources(json!({ "pods": "10" })));
        p.network = Some(PackageNetwork {
            ingress_from: vec![from_platform],
            ..Default::default()
        });
    })
}

/// The administrator makes the ServiceAccount `netops` in `ns` and binds it to a Role of its own
/// that writes NetworkPolicies (within the administrator's rights); returns a client acting as it.
async fn arm_netops(admin: &Client, ns: &str) -> Client {
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": NETOPS } })).unwrap(),
        )
        .await
        .expect("the administrator creates a ServiceAccount");
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": NETOPS },
        "rules": [{ "apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                    "verbs": ["get", "list", "create", "update", "patch", "delete"] }]
    }))
    .unwrap();
    eventually(
        "the administrator creates a Role that writes NetworkPolicies",
        TIMEOUT,
        || async {
            match Api::<Role>::namespaced(admin.clone(), ns)
                .create(&PostParams::default(), &role)
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": NETOPS },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NETOPS },
        "subjects": [{ "kind": "ServiceAccount", "name": NETOPS, "namespace": ns }]
    }))
    .unwrap();
    eventually("the administrator binds netops", TIMEOUT, || async {
        match Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &rb)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let sa = format!("system:serviceaccount:{ns}:{NETOPS}");
    impersonate(
        &sa,
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
        ],
    )
    .await
}

/// A NetworkPolicy `name` with `spec` (and `meta` merged into its metadata).
fn policy(name: &str, meta: Value, spec: Value) -> NetworkPolicy {
    let mut metadata = json!({ "name": name });
    if let (Value::Object(m), Value::Object(extra)) = (&mut metadata, meta) {
        m.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata, "spec": spec,
    }))
    .expect("a NetworkPolicy")
}

/// The namespace `ns` as the cluster has it.
async fn namespace(c: &Client, ns: &str) -> Namespace {
    Api::<Namespace>::all(c.clone())
        .get(ns)
        .await
        .unwrap_or_else(|e| panic!("namespace {ns}: {e}"))
}

/// The denied ranges Covenant published on `ns`, IPv4 and IPv6 apart.
async fn denied(c: &Client, ns: &str) -> (Vec<String>, Vec<String>) {
    let n = namespace(c, ns).await;
    let all = n
        .annotations()
        .get(DENIED_CIDRS)
        .cloned()
        .unwrap_or_default();
    assert!(
        all.contains("169.254.0.0/16"),
        "{ns}: {DENIED_CIDRS}={all:?}"
    );
    all.split(',')
        .map(String::from)
        .partition(|c| !c.contains(':'))
}

/// Hostile policies, each with what the API server's refusal must say.
fn hostile(ten: &Tenant, other_ns: &str) -> Vec<(NetworkPolicy, &'static str)> {
    let sip = "without telephony no egress rule may reach SIP";
    let pin = "must pin kubernetes.io/metadata.name to namespaces of this account";
    let denied = "may not reach a denied range";
    let all = json!({});
    vec![
        (
            policy(
                "from-everywhere",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "from": [{ "namespaceSelector": {} }] }] }),
            ),
            pin,
        ),
        (
            // policyTypes says Egress only: the ingress rule is judged all the same.
            policy(
                "from-everywhere-typed-egress",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "ingress": [{ "from": [{ "namespaceSelector": {} }] }],
                "egress": [{ "to": [{ "podSelector": {} }], "ports": [{ "port": 443 }] }] }),
            ),
            pin,
        ),
        (
            policy(
                "from-any-source",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "ports": [{ "port": 8080 }] }] }),
            ),
            "an ingress rule without `from` admits every source",
        ),
        (
            policy(
                "from-ip-block",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "from": [{ "ipBlock": { "cidr": "10.0.0.0/8" } }] }] }),
            ),
            "an ingress ipBlock would admit other tenants",
        ),
        (
            policy(
                "from-account-label",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "from": [{ "namespaceSelector":
                { "matchLabels": { ACCOUNT_LABEL: ten.account } } }] }] }),
            ),
            pin,
        ),
        (
            policy(
                "from-other-tenant",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "from": [{ "namespaceSelector":
                { "matchExpressions": [{ "key": NAME_LABEL, "operator": "In", "values": [ten.namespaces[0], other_ns] }] } }] }] }),
            ),
            pin,
        ),
        (
            policy(
                "from-not-in",
                all.clone(),
                json!({ "podSelector": {}, "ingress": [{ "from": [{ "namespaceSelector":
                { "matchExpressions": [{ "key": NAME_LABEL, "operator": "NotIn", "values": [other_ns] }] } }] }] }),
            ),
            pin,
        ),
        (
            policy(
                "egress-anywhere",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"], "egress": [{}] }),
            ),
            "an egress rule without `to` reaches every destination",
        ),
        (
            policy(
                "egress-world-all-ports",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "0.0.0.0/0" } }], "ports": [{ "port": 443 }] }] }),
            ),
            denied,
        ),
        (
            policy(
                "egress-metadata",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "169.254.169.254/32" } }], "ports": [{ "port": 80 }] }] }),
            ),
            denied,
        ),
        (
            policy(
                "egress-nat64-metadata",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "64:ff9b::/96" } }], "ports": [{ "port": 80 }] }] }),
            ),
            denied,
        ),
        (
            // 169.254.169.254 written as an IPv4-mapped IPv6 address (Go's net matches it against IPv4).
            policy(
                "egress-v4-mapped-metadata",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "::ffff:a9fe:a9fe/128" } }], "ports": [{ "port": 80 }] }] }),
            ),
            "must not have an IPv4-mapped IPv6 address",
        ),
        (
            policy(
                "egress-v4-mapped-world",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "::ffff:0:0/96" } }], "ports": [{ "port": 80 }] }] }),
            ),
            "must not have an IPv4-mapped IPv6 address",
        ),
        (
            policy(
                "egress-sip-tcp",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "namespaceSelector": {} }], "ports": [{ "protocol": "TCP", "port": 5060 }] }] }),
            ),
            sip,
        ),
        (
            policy(
                "egress-sctp-every-port",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "podSelector": {} }], "ports": [{ "protocol": "SCTP" }] }] }),
            ),
            sip,
        ),
        (
            policy(
                "egress-udp-range",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "namespaceSelector": {} }], "ports": [{ "protocol": "UDP", "port": 5000, "endPort": 5100 }] }] }),
            ),
            sip,
        ),
        (
            policy(
                "egress-named-port",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "namespaceSelector": {} }], "ports": [{ "protocol": "TCP", "port": "sip" }] }] }),
            ),
            sip,
        ),
        (
            policy(
                "egress-no-ports",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "namespaceSelector": {} }] }] }),
            ),
            sip,
        ),
        (
            policy(
                "forged-label",
                json!({ "labels": { ACCOUNT_LABEL: ten.account } }),
                json!({ "podSelector": {}, "policyTypes": ["Ingress"] }),
            ),
            "cannot be given the label covenant.dev/account",
        ),
        (
            policy(
                "planted-record",
                json!({ "annotations": { NEUTRALISED: "x:{\"matchLabels\":{\"a\":\"b\"}}" } }),
                json!({ "podSelector": {}, "policyTypes": ["Ingress"] }),
            ),
            "only Covenant sets covenant.dev/* annotations on a NetworkPolicy",
        ),
        (
            policy(
                "too-many-rules",
                all.clone(),
                json!({ "podSelector": {}, "ingress":
                (0..17).map(|i| json!({ "from": [{ "podSelector": { "matchLabels": { "n": i.to_string() } } }] })).collect::<Vec<_>>() }),
            ),
            "is too large for a tenant policy",
        ),
        (
            policy(
                "covenant-isolation-2",
                all.clone(),
                json!({ "podSelector": {}, "policyTypes": ["Ingress"] }),
            ),
            "names starting with covenant- are reserved for Covenant",
        ),
    ]
}

/// Every hostile policy is refused, for the administrator and for the ServiceAccount it bound, with a
/// message that says why.
async fn hostile_policies_are_refused(
    t: &TestCtx,
    ten: &Tenant,
    other_ns: &str,
    clients: &[(&str, &Client)],
) {
    let ns = &ten.namespaces[0];
    for (who, c) in clients {
        let api: Api<NetworkPolicy> = Api::namespaced((*c).clone(), ns);
        for (p, why) in hostile(ten, other_ns) {
            let name = p.name_any();
            let s = api_error(
                &format!("{who} creates the hostile policy {name}"),
                api.create(&PostParams::default(), &p).await,
            );
            eprintln!("{who}, {name}: {} {}", s.code, s.message);
            assert!(
                s.code == 403 || s.code == 422,
                "{who}, {name}: refused with {} {}",
                s.code,
                s.message
            );
            assert!(
                s.message.contains(why),
                "{who}, {name}: the refusal says {:?}, expected it to say {why:?}",
                s.message
            );
        }
    }
    // None of them exists.
    let names: Vec<String> = Api::<NetworkPolicy>::namespaced(t.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for (p, _) in hostile(ten, other_ns) {
        assert!(
            !names.contains(&p.name_any()),
            "{} was stored: {names:?}",
            p.name_any()
        );
    }
}

// ----- The network table, with the tenant's policies in force -----

#[derive(Clone, Copy, Debug)]
enum End {
    /// An ordinary pod in the tenant's first namespace.
    Tenant,
    /// Another ordinary pod in the same namespace.
    Neighbour,
    /// A pod in the tenant's second namespace.
    SecondNamespace,
    /// A pod of another tenant.
    OtherTenant,
    /// Cluster DNS.
    Dns,
    /// An address outside the cluster.
    Address(&'static str),
    /// A pod of the platform namespace.
    Platform,
    /// A pod in a namespace forged with the account's label.
    Forged,
    /// The database: a pod `app=db` the tenant narrowed (`covenant.dev/narrowed`).
    Db,
    /// The frontend: a pod `app=frontend` in the first namespace.
    Frontend,
}

const STATES: [&str; 4] = ["active", "suspended", "lifted", "retained"];
const OPEN: [bool; 4] = [true, false, true, false];
const NEVER: [bool; 4] = [false; 4];

struct Row {
    probe: &'static str,
    from: End,
    to: End,
    port: u16,
    protocol: &'static str,
    verdicts: [bool; 4],
}

const fn row(
    probe: &'static str,
    from: End,
    to: End,
    port: u16,
    protocol: &'static str,
    verdicts: [bool; 4],
) -> Row {
    Row {
        probe,
        from,
        to,
        port,
        protocol,
        verdicts,
    }
}

/// The SPEC's table (an account without telephony: SIP denied throughout), plus the narrowed database:
/// only the frontend reaches it, and it reaches only cluster DNS.
#[rustfmt::skip]
const TABLE: &[Row] = {
    use End::*;
    &[
        row("→ a pod in the same namespace", Tenant, Neighbour, 8080, "TCP", OPEN),
        row("→ a pod in another namespace of the same account", Tenant, SecondNamespace, 8080, "TCP", OPEN),
        row("→ a pod of another tenant", Tenant, OtherTenant, 8080, "TCP", NEVER),
        row("→ cluster DNS, UDP 53", Tenant, Dns, 53, "UDP", OPEN),
        row("→ an external address, TCP 443", Tenant, Address("93.184.216.34"), 443, "TCP", OPEN),
        row("→ SIP 5060 over TCP", Tenant, Address("93.184.216.34"), 5060, "TCP", NEVER),
        row("→ SIP 5061 over UDP", Tenant, Address("93.184.216.34"), 5061, "UDP", NEVER),
        row("→ SIP 5060 over SCTP", Tenant, Address("93.184.216.34"), 5060, "SCTP", NEVER),
        row("→ SIP 5060 to a pod of the account, TCP", Tenant, SecondNamespace, 5060, "TCP", NEVER),
        row("→ 169.254.169.254 (cloud metadata)", Tenant, Address("169.254.169.254"), 80, "TCP", NEVER),
        row("→ 169.254.169.254 (cloud metadata), TCP 443", Tenant, Address("169.254.169.254"), 443, "TCP", NEVER),
        row("→ 100.100.100.200 (Alibaba Cloud metadata)", Tenant, Address("100.100.100.200"), 80, "TCP", NEVER),
        row("→ fd00:ec2::254 (AWS metadata over IPv6)", Tenant, Address("fd00:ec2::254"), 80, "TCP", NEVER),
        row("→ 64:ff9b::a9fe:a9fe (metadata through NAT64)", Tenant, Address("64:ff9b::a9fe:a9fe"), 80, "TCP", NEVER),
        row("another tenant's pod → a tenant pod", OtherTenant, Tenant, 8080, "TCP", NEVER),
        row("a platform namespace → a tenant pod", Platform, Tenant, 8080, "TCP", OPEN),
        row("a namespace forged with the account's label → a tenant pod", Forged, Tenant, 8080, "TCP", NEVER),
        row("an external address → a tenant pod", Address("198.51.100.7"), Tenant, 8080, "TCP", NEVER),
        // The tenant's narrowing policy does narrow.
        row("the frontend → the database", Frontend, Db, 5432, "TCP", OPEN),
        row("another pod of the namespace → the database", Neighbour, Db, 5432, "TCP", NEVER),
        row("the account's second namespace → the database", SecondNamespace, Db, 5432, "TCP", NEVER),
        row("a platform namespace → the database", Platform, Db, 5432, "TCP", NEVER),
        row("another tenant's pod → the database", OtherTenant, Db, 5432, "TCP", NEVER),
        row("the database → cluster DNS, UDP 53", Db, Dns, 53, "UDP", OPEN),
        row("the database → an external address, TCP 443", Db, Address("93.184.216.34"), 443, "TCP", NEVER),
        row("the database → a pod in the same namespace", Db, Neighbour, 8080, "TCP", NEVER),
        row("the database → cloud metadata", Db, Address("169.254.169.254"), 80, "TCP", NEVER),
    ]
};

struct Scene {
    tenant: [String; 2],
    other: String,
    platform: String,
    forged: String,
}

impl Scene {
    async fn peer(&self, c: &Client, end: End) -> Peer {
        let pod = |ns: Namespace, ip: &str, labels: &[(&str, &str)]| {
            let mut p = Peer::pod(&ns, ip);
            p.pod_labels = fixtures::map(labels);
            p
        };
        match end {
            End::Tenant => pod(namespace(c, &self.tenant[0]).await, "10.244.1.10", &[]),
            End::Neighbour => pod(namespace(c, &self.tenant[0]).await, "10.244.1.11", &[]),
            End::Frontend => pod(
                namespace(c, &self.tenant[0]).await,
                "10.244.1.12",
                &[("app", "frontend")],
            ),
            End::Db => pod(
                namespace(c, &self.tenant[0]).await,
                "10.244.1.13",
                &[("app", "db"), (NARROWED, "true")],
            ),
            End::SecondNamespace => pod(namespace(c, &self.tenant[1]).await, "10.244.2.10", &[]),
            End::OtherTenant => pod(namespace(c, &self.other).await, "10.244.3.10", &[]),
            End::Dns => pod(
                namespace(c, "kube-system").await,
                "10.244.0.10",
                &[("k8s-app", "kube-dns")],
            ),
            End::Address(ip) => Peer::external(ip),
            End::Platform => pod(namespace(c, &self.platform).await, "10.244.4.10", &[]),
            End::Forged => pod(namespace(c, &self.forged).await, "10.244.5.10", &[]),
        }
    }

    async fn matches(&self, c: &Client, state: usize) -> Result<(), String> {
        let mut probes = Vec::new();
        for r in TABLE {
            probes.push(Probe {
                name: r.probe.to_string(),
                from: self.peer(c, r.from).await,
                to: self.peer(c, r.to).await,
                port: r.port,
                protocol: r.protocol,
            });
        }
        let verdicts = netpol::evaluate(c, &probes)
            .await
            .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
        let word = |a: bool| if a { "allow" } else { "deny" };
        let wrong: Vec<String> = TABLE
            .iter()
            .zip(&verdicts)
            .filter(|(r, v)| v.allowed != r.verdicts[state])
            .map(|(r, v)| {
                format!(
                    "{}: expected {}, the engine says {}: {}",
                    r.probe,
                    word(r.verdicts[state]),
                    word(v.allowed),
                    v.explanation
                )
            })
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "state {}: {} of {} probes differ:\n{}",
                STATES[state],
                wrong.len(),
                TABLE.len(),
                wrong.join("\n")
            ))
        }
    }

    async fn expect(&self, c: &Client, state: usize) {
        eventually(
            &format!(
                "the engine's verdicts match the table when {}",
                STATES[state]
            ),
            TIMEOUT,
            || self.matches(c, state),
        )
        .await;
        eprintln!(
            "tenant policies, {}: the engine agrees on all {} probes",
            STATES[state],
            TABLE.len()
        );
    }
}

/// The tenant's policies in `ns` (those without Covenant's label), by name, with their specs.
async fn tenant_policies(c: &Client, ns: &str) -> BTreeMap<String, NetworkPolicy> {
    Api::<NetworkPolicy>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("!{ACCOUNT_LABEL}")))
        .await
        .unwrap_or_else(|e| panic!("list NetworkPolicies in {ns}: {e}"))
        .items
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect()
}

fn spec_json(p: &NetworkPolicy) -> Value {
    serde_json::to_value(&p.spec).unwrap()
}

/// Waits until every tenant policy in `ns` is neutralised: its podSelector selects no pod (the same
/// key must exist and not exist) and the original is recorded; the rest of its spec unchanged.
async fn wait_neutralised(c: &Client, ns: &str, before: &BTreeMap<String, NetworkPolicy>) {
    eventually(
        &format!("every tenant policy in {ns} is neutralised"),
        TIMEOUT,
        || async {
            let now = tenant_policies(c, ns).await;
            let mut wrong = Vec::new();
            for (name, was) in before {
                let Some(p) = now.get(name) else {
                    wrong.push(format!("{name} is gone"));
                    continue;
                };
                let sel = serde_json::to_value(&p.spec.as_ref().unwrap().pod_selector).unwrap();
                let keys: Vec<(&str, &str)> = sel["matchExpressions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| {
                                (
                                    e["key"].as_str().unwrap_or(""),
                                    e["operator"].as_str().unwrap_or(""),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let neutral = keys.contains(&(NEUTRALISED, "Exists"))
                    && keys.contains(&(NEUTRALISED, "DoesNotExist"))
                    && sel.get("matchLabels").is_none();
                let mut rest = spec_json(p);
                let mut rest_was = spec_json(was);
                rest["podSelector"] = Value::Null;
                rest_was["podSelector"] = Value::Null;
                if !neutral || !p.annotations().contains_key(NEUTRALISED) || rest != rest_was {
                    wrong.push(format!("{name}: {:?} {:?}", p.spec, p.annotations()));
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        },
    )
    .await;
}

/// A write refused in a read-only namespace: by RBAC (the administrators hold only the read-only
/// role then), by the read-only admission policy (a ServiceAccount keeps the Role it was bound to),
/// or — when the write touches a neutralised policy or its record — by the tenant-policy rules on
/// covenant.dev/* annotations and on neutralised policies (the API server reports whichever denying policy it evaluated first).
#[track_caller]
fn refused_while_read_only(who: &str, s: &kube::core::Status) {
    assert!(
        s.code == 403
            && (s.message.contains("is read-only")
                || s.message.contains("is forbidden: User")
                || s.message
                    .contains("only Covenant sets covenant.dev/* annotations")
                || s.message.contains("was neutralised by Covenant")),
        "{who}: {} {}",
        s.code,
        s.message
    );
}

/// Applies a Suspension of `account`; returns its name.
async fn suspend(t: &TestCtx, account: &str) -> String {
    let name = t.name("netpol-aup");
    t.track(SUSPENSIONS, &name);
    t.apply(&fixtures::suspension(
        &name,
        account,
        "AcceptableUsePolicy",
        &format!("Abuse report {}", t.suffix),
        json!({}),
    ))
    .await;
    name
}

async fn wait_read_only(c: &Client, ns: &str, value: Option<&str>) {
    let nss: Api<Namespace> = Api::all(c.clone());
    wait_for(
        &nss,
        ns,
        &format!("carry {READ_ONLY_LABEL}={value:?}"),
        TIMEOUT,
        |n| fixtures::label(n, READ_ONLY_LABEL).as_deref() == value,
    )
    .await;
}

/// Hostile tenant policies are refused by the API server, for the administrator and for a
/// ServiceAccount it bound, each with the reason; the policies admitted (a namespace of the same
/// account, the platform selector, egress to the world except every denied range and SIP, pods on
/// 443) and a narrowing policy (only the frontend reaches the database, which reaches only DNS) are
/// judged with Covenant's guardrails by the NetworkPolicy engine, which agrees with the SPEC's table
/// in every state: active, suspended (every tenant policy neutralised, none writable, its record not
/// removable), lifted (each restored exactly, read back), retained. The tenant fills its namespace up
/// to the bound first (the next policy is refused by the quota), and the suspension's deny-all still
/// comes in.
#[tokio::test]
async fn tenant_network_policies_only_narrow_in_every_state() {
    let t = TestCtx::new("tenant-netpol").await;
    let platform = t.namespace("platform");
    let forged = t.namespace("forged");
    // deletionPolicy left to its default, Retain: the test deletes the account and looks at what is
    // retained.
    let ten = behind_platform(&t, "np", &platform).retain().await;
    let other = behind_platform(&t, "npother", &platform).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    for (name, labels) in [
        (&platform, json!({})),
        (&forged, json!({ ACCOUNT_LABEL: ten.account })),
    ] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }
    let ns = ten.namespaces[0].clone();
    let admin = impersonate(&ten.admin, &[]).await;
    let sa = arm_netops(&admin, &ns).await;
    let clients = [("the administrator", &admin), ("its ServiceAccount", &sa)];

    hostile_policies_are_refused(&t, &ten, &other.namespaces[0], &clients).await;

    admit_harmless_and_narrowing_policies(&t, &ten, &platform, &clients).await;
    let scene = Scene {
        tenant: [ten.namespaces[0].clone(), ten.namespaces[1].clone()],
        other: other.namespaces[0].clone(),
        platform,
        forged,
    };
    scene.expect(&t.client, 0).await;

    let (before, one_more) = fill_to_the_bound(&t, &ns, &admin).await;
    let susp = assert_suspended_policies_are_neutralised_and_locked(
        &t, &ten, &clients, &before, &one_more,
    )
    .await;
    scene.expect(&t.client, 1).await;
    assert_the_lift_restores_every_policy_exactly(&t, &ten, &susp, &before).await;
    assert_an_update_is_judged_like_a_create(&t, &ten, &clients).await;
    scene.expect(&t.client, 2).await;
    // Retained: the Account deleted (Retain).
    let accounts: Api<covenant::api::Account> = Api::all(t.client.clone());
    accounts
        .delete(&ten.account, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &ten.account, false, TIMEOUT).await;
    for ns in &ten.namespaces {
        wait_read_only(&t.client, ns, Some("retained")).await;
    }
    wait_neutralised(&t.client, &ns, &before).await;
    scene.expect(&t.client, 3).await;
}

/// Admitted: policies harmless beside the guardrails, or narrowing, made alternately by the
/// administrator and its ServiceAccount; the administrator may change its own.
async fn admit_harmless_and_narrowing_policies(
    t: &TestCtx,
    ten: &Tenant,
    platform: &str,
    clients: &[(&str, &Client)],
) {
    let ns = ten.ns.as_str();
    let admin = clients[0].1;
    // Admitted: harmless beside the guardrails, or narrowing.
    let (v4, v6) = denied(&t.client, ns).await;
    let platform_tokens = namespace(&t.client, ns)
        .await
        .annotations()
        .get(PLATFORM_SELECTORS)
        .cloned()
        .unwrap_or_default();
    assert!(
        platform_tokens.contains(&format!("{NAME_LABEL}={platform}")),
        "{platform_tokens}"
    );
    let not_sip = json!([
        { "protocol": "TCP", "port": 1, "endPort": 5059 }, { "protocol": "TCP", "port": 5062, "endPort": 65535 },
        { "protocol": "UDP", "port": 1, "endPort": 5059 }, { "protocol": "UDP", "port": 5062, "endPort": 65535 }
    ]);
    // The harmless ones select every pod but the database (which the tenant narrowed).
    let not_narrowed =
        json!({ "matchExpressions": [{ "key": NARROWED, "operator": "DoesNotExist" }] });
    let admitted = [
        policy(
            "from-second-namespace",
            json!({}),
            json!({ "podSelector": not_narrowed.clone(), "ingress": [{ "from": [{ "namespaceSelector":
            { "matchLabels": { NAME_LABEL: ten.namespaces[1], ACCOUNT_LABEL: ten.account } } }] }] }),
        ),
        policy(
            "from-platform",
            json!({}),
            json!({ "podSelector": not_narrowed.clone(), "ingress": [{ "from": [{ "namespaceSelector":
            { "matchLabels": { NAME_LABEL: platform }, "matchExpressions": [{ "key": ACCOUNT_LABEL, "operator": "DoesNotExist" }] } }] }] }),
        ),
        policy(
            "egress-world-but-denied",
            json!({}),
            json!({ "podSelector": not_narrowed.clone(), "policyTypes": ["Egress"], "egress": [{
            "to": [{ "ipBlock": { "cidr": "0.0.0.0/0", "except": v4 } }, { "ipBlock": { "cidr": "::/0", "except": v6 } }],
            "ports": not_sip }] }),
        ),
        policy(
            "egress-pods-https",
            json!({}),
            json!({ "podSelector": not_narrowed.clone(), "policyTypes": ["Egress"], "egress": [{
            "to": [{ "namespaceSelector": {} }], "ports": [{ "protocol": "TCP", "port": 443 }] }] }),
        ),
        // The narrowing: only the frontend reaches the database, and the database reaches only DNS.
        policy(
            "db-from-frontend",
            json!({}),
            json!({ "podSelector": { "matchLabels": { "app": "db" } },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "frontend" } } }], "ports": [{ "port": 5432 }] }],
            "egress": [{ "to": [{ "namespaceSelector": { "matchLabels": { NAME_LABEL: "kube-system" } },
                                  "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } }],
                         "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] }] }),
        ),
    ];
    for (i, p) in admitted.iter().enumerate() {
        // Alternately as the administrator and as its ServiceAccount.
        let (who, c) = clients[i % 2];
        Api::<NetworkPolicy>::namespaced(c.clone(), ns)
            .create(&PostParams::default(), p)
            .await
            .unwrap_or_else(|e| panic!("{who} creates {}: {e}", p.name_any()));
    }
    // The administrator may change its own policy (still narrowing) and delete one.
    let api = Api::<NetworkPolicy>::namespaced(admin.clone(), ns);
    api.patch(
        "egress-pods-https",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "web" } } })),
    )
    .await
    .expect("the administrator relabels its own policy");
}

/// Many policies: up to the bound, then the quota refuses. Returns the tenant's policies and the one
/// refused.
async fn fill_to_the_bound(
    t: &TestCtx,
    ns: &str,
    admin: &Client,
) -> (BTreeMap<String, NetworkPolicy>, NetworkPolicy) {
    let api = Api::<NetworkPolicy>::namespaced(admin.clone(), ns);
    // Many policies: up to the bound, then the quota refuses.
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ns);
    wait_for(
        &quotas,
        BOUNDS,
        "count NetworkPolicies (status.hard)",
        TIMEOUT,
        |q| fixtures::status_hard(q).contains_key(NP_COUNT),
    )
    .await;
    let q = quotas.get(BOUNDS).await.unwrap();
    let hard: usize = fixtures::status_hard(&q)[NP_COUNT].parse().unwrap();
    let covenant = Api::<NetworkPolicy>::namespaced(t.client.clone(), ns)
        .list(&ListParams::default().labels(ACCOUNT_LABEL))
        .await
        .unwrap()
        .items
        .len();
    let mut n = tenant_policies(&t.client, ns).await.len();
    assert_eq!(
        hard - covenant,
        20,
        "the tenant may hold 20 policies besides Covenant's {covenant}"
    );
    while n < hard - covenant {
        let p = policy(
            &format!("filler-{n}"),
            json!({}),
            json!({ "podSelector": { "matchLabels": { "filler": n.to_string() } }, "policyTypes": ["Ingress"] }),
        );
        eventually("a filler policy is admitted", TIMEOUT, || async {
            match api.create(&PostParams::default(), &p).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        n += 1;
    }
    let one_more = policy(
        "one-too-many",
        json!({}),
        json!({ "podSelector": {}, "policyTypes": ["Ingress"] }),
    );
    let s = api_error(
        "one policy past the bound",
        api.create(&PostParams::default(), &one_more).await,
    );
    assert!(
        s.message.contains("exceeded quota") && s.message.contains(NP_COUNT),
        "{}",
        s.message
    );

    let before = tenant_policies(&t.client, ns).await;
    assert_eq!(before.len(), 20);
    (before, one_more)
}

/// Suspended: read-only, the deny-all in (though the tenant filled the namespace), every tenant
/// policy neutralised; neither identity can change one or remove its record. Returns the Suspension.
async fn assert_suspended_policies_are_neutralised_and_locked(
    t: &TestCtx,
    ten: &Tenant,
    clients: &[(&str, &Client)],
    before: &BTreeMap<String, NetworkPolicy>,
    one_more: &NetworkPolicy,
) -> String {
    let ns = ten.ns.as_str();
    // Suspended: read-only, the deny-all in (though the tenant filled the namespace), every tenant
    // policy neutralised; neither identity can change one or remove its record.
    let susp = suspend(t, &ten.account).await;
    wait_account(&t.client, &ten.account, "Suspended", "True", None).await;
    for ns in &ten.namespaces {
        wait_read_only(&t.client, ns, Some("suspended")).await;
    }
    wait_for(
        &Api::<NetworkPolicy>::namespaced(t.client.clone(), ns),
        DENY_ALL,
        "exist",
        TIMEOUT,
        |_| true,
    )
    .await;
    wait_neutralised(&t.client, ns, before).await;
    for (who, c) in clients {
        let api = Api::<NetworkPolicy>::namespaced((*c).clone(), ns);
        let s = api_error(
            &format!("{who} removes the record of a neutralised policy"),
            api.patch(
                "db-from-frontend",
                &PatchParams::default(),
                &Patch::Json::<()>(
                    serde_json::from_value(json!([
                { "op": "remove", "path": "/metadata/annotations/covenant.dev~1neutralised" }]))
                    .unwrap(),
                ),
            )
            .await,
        );
        refused_while_read_only(who, &s);
        let s = api_error(
            &format!("{who} restores a neutralised policy's selector itself"),
            api.patch("db-from-frontend", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "podSelector": { "matchLabels": { "app": "db" }, "matchExpressions": null } } }))).await,
        );
        refused_while_read_only(who, &s);
        let s = api_error(
            &format!("{who} writes a new policy"),
            api.create(&PostParams::default(), one_more).await,
        );
        refused_while_read_only(who, &s);
    }
    susp
}

/// Lifted: every policy exactly as it was.
async fn assert_the_lift_restores_every_policy_exactly(
    t: &TestCtx,
    ten: &Tenant,
    susp: &str,
    before: &BTreeMap<String, NetworkPolicy>,
) {
    let ns = ten.ns.as_str();
    // Lifted: every policy exactly as it was.
    let suspensions: Api<covenant::api::Suspension> = Api::all(t.client.clone());
    suspensions
        .delete(susp, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&suspensions, susp, false, TIMEOUT).await;
    for ns in &ten.namespaces {
        wait_read_only(&t.client, ns, None).await;
    }
    eventually(
        "every tenant policy is restored exactly",
        TIMEOUT,
        || async {
            let now = tenant_policies(&t.client, ns).await;
            let wrong: Vec<String> = before
                .iter()
                .filter(|(name, was)| {
                    now.get(*name).is_none_or(|p| {
                        spec_json(p) != spec_json(was)
                            || p.annotations() != was.annotations()
                            || p.labels() != was.labels()
                    })
                })
                .map(|(name, was)| {
                    format!(
                        "{name}: was {:?}, now {:?}",
                        was.spec,
                        now.get(name).map(|p| (&p.spec, p.annotations()))
                    )
                })
                .collect();
            if wrong.is_empty() && now.len() == before.len() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        },
    )
    .await;
}

/// Active again (once the administrators hold their role again): an update is judged like a
/// create, and a record cannot be planted; the suspension's token is gone.
async fn assert_an_update_is_judged_like_a_create(
    t: &TestCtx,
    ten: &Tenant,
    clients: &[(&str, &Client)],
) {
    let ns = ten.ns.as_str();
    // Active again (once the administrators hold their role again): an update is judged like a
    // create, and a record cannot be planted.
    let attacks = [
        (
            json!({ "spec": { "ingress": [{ "from": [{ "namespaceSelector": {} }] }] } }),
            "must pin kubernetes.io/metadata.name",
        ),
        (
            json!({ "metadata": { "annotations": { NEUTRALISED: "t:{}" } } }),
            "only Covenant sets covenant.dev/* annotations",
        ),
    ];
    for (who, c) in clients {
        let api = Api::<NetworkPolicy>::namespaced((*c).clone(), ns);
        for (patch, why) in &attacks {
            eventually(
                &format!("{who}'s update {patch} is refused because it {why}"),
                TIMEOUT,
                || async {
                    match api
                        .patch(
                            "from-second-namespace",
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                    {
                        Err(kube::Error::Api(s)) if s.message.contains(why) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
            .await;
        }
    }
    let namespace_token = namespace(&t.client, ns)
        .await
        .annotations()
        .contains_key("covenant.dev/network-policies-token");
    assert!(
        !namespace_token,
        "the suspension's token is gone once every policy is restored"
    );
}
