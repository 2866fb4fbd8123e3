//! NetworkPolicy verdicts by an engine independent of Covenant: the matcher of cyclonus
//! (`e2e/tools/netpol-oracle`, pinned at `CYCLONUS_VERSION` in `e2e/cluster/versions.env`).
//!
//! A probe is traffic from one peer to another on a port and protocol; the verdict is whether the
//! policies allow it: egress (policies selecting the source pod) and ingress (policies selecting the
//! destination pod) must both allow it. A peer outside the cluster is never policed itself.
//!
//! What cyclonus v0.5.6 judges (read from its source; details in `e2e/tools/netpol-oracle/main.go`):
//! `endPort` ranges and SCTP are honoured; an `ipBlock` matches a peer by its IP whether the peer is
//! in the cluster or not (so every peer has an IP); a named port in a policy never matches a
//! [`Probe`] (probes carry a port number only); label selectors follow Kubernetes except that `NotIn`
//! does not match an object lacking the key, and `matchLabels: {k: ""}` matches one lacking `k`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

/// One end of a probe: a pod in the cluster (with its namespace) or an address outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The pod's namespace; `None` for a peer outside the cluster.
    pub namespace: Option<String>,
    /// The labels of the pod's namespace (what namespace selectors see).
    pub namespace_labels: BTreeMap<String, String>,
    /// The pod's labels (what pod selectors see).
    pub pod_labels: BTreeMap<String, String>,
    /// The peer's IP (what ipBlocks see, for pods in the cluster too).
    pub ip: String,
}

impl Peer {
    /// A pod without labels, at `ip`, in the namespace `ns` as read from the cluster: its labels
    /// (including `kubernetes.io/metadata.name`, which the API server sets) are the real ones. Set
    /// [`Peer::pod_labels`] for a pod with labels.
    pub fn pod(ns: &Namespace, ip: &str) -> Peer {
        Peer {
            namespace: Some(ns.name_any()),
            namespace_labels: ns.labels().clone(),
            pod_labels: BTreeMap::new(),
            ip: ip.to_string(),
        }
    }

    /// An address outside the cluster.
    pub fn external(ip: &str) -> Peer {
        Peer {
            namespace: None,
            namespace_labels: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            ip: ip.to_string(),
        }
    }
}

/// Traffic to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// A name for messages (returned in the verdict).
    pub name: String,
    /// The source.
    pub from: Peer,
    /// The destination.
    pub to: Peer,
    /// The destination port (1-65535).
    pub port: u16,
    /// `"TCP"`, `"UDP"` or `"SCTP"`.
    pub protocol: &'static str,
}

/// The oracle's answer to one probe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Verdict {
    /// The probe's name.
    pub name: String,
    /// Whether the traffic is allowed (ingress and egress).
    pub allowed: bool,
    /// Whether the destination's ingress policies allow it.
    pub ingress: bool,
    /// Whether the source's egress policies allow it.
    pub egress: bool,
    /// Which policies decided, e.g. `ingress: allowed by acme/a; egress: denied: selected by acme/b, ...`.
    pub explanation: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerIn<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    namespace_labels: &'a BTreeMap<String, String>,
    pod_labels: &'a BTreeMap<String, String>,
    ip: &'a str,
}

impl<'a> From<&'a Peer> for PeerIn<'a> {
    fn from(p: &'a Peer) -> Self {
        PeerIn {
            namespace: p.namespace.as_deref(),
            namespace_labels: &p.namespace_labels,
            pod_labels: &p.pod_labels,
            ip: &p.ip,
        }
    }
}

#[derive(Serialize)]
struct ProbeIn<'a> {
    name: &'a str,
    from: PeerIn<'a>,
    to: PeerIn<'a>,
    port: u16,
    protocol: &'a str,
}

#[derive(Serialize)]
struct Input<'a> {
    policies: &'a [NetworkPolicy],
    probes: Vec<ProbeIn<'a>>,
}

#[derive(Deserialize)]
struct Output {
    results: Vec<Verdict>,
}

/// Reads every NetworkPolicy in the cluster and asks the oracle about `probes`; the verdicts are in
/// probe order.
pub async fn evaluate(client: &kube::Client, probes: &[Probe]) -> anyhow::Result<Vec<Verdict>> {
    let api: Api<NetworkPolicy> = Api::all(client.clone());
    let policies = api
        .list(&ListParams::default())
        .await
        .context("listing the NetworkPolicies")?
        .items;
    evaluate_policies(&policies, probes)
}

/// Asks the oracle about `probes` under `policies` (as the API server returns them: with
/// `spec.policyTypes`, which the oracle requires); the verdicts are in probe order.
pub fn evaluate_policies(
    policies: &[NetworkPolicy],
    probes: &[Probe],
) -> anyhow::Result<Vec<Verdict>> {
    let input = Input {
        policies,
        probes: probes
            .iter()
            .map(|p| ProbeIn {
                name: &p.name,
                from: (&p.from).into(),
                to: (&p.to).into(),
                port: p.port,
                protocol: p.protocol,
            })
            .collect(),
    };
    let stdin = serde_json::to_vec(&input).context("serializing the oracle's input")?;
    let stdout = crate::tools::run("netpol-oracle", &stdin)?;
    let out: Output = serde_json::from_slice(&stdout).with_context(|| {
        format!(
            "netpol-oracle printed something else than its results: {}",
            String::from_utf8_lossy(&stdout)
        )
    })?;
    if out.results.len() != probes.len()
        || out
            .results
            .iter()
            .zip(probes)
            .any(|(v, p)| v.name != p.name)
    {
        bail!(
            "netpol-oracle answered {} results for {} probes, or not in order",
            out.results.len(),
            probes.len()
        );
    }
    Ok(out.results)
}
