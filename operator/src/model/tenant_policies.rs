//! Tenants' own NetworkPolicies (pure): what Covenant publishes on a tenant namespace for the admission
//! policy `covenant-tenant-network-policies` (deploy/tenant-network-policies-policy.yaml) to judge that
//! a tenant policy can only narrow, and how a suspension neutralises a tenant policy and the lift
//! restores it exactly.
//!
//! Neutralised: a deny-all is void beside any allow (NetworkPolicies are a union of allows), so while a
//! namespace is suspended or retained every tenant policy's `podSelector` is replaced by one that
//! matches no pod ([`neutral_selector`]: a key that both exists and does not, so no label a tenant set
//! on a pod beforehand can match it), and the original selector is kept on the policy itself in
//! [`NEUTRALISED_ANNOTATION`] as `<token>:<JSON>`, under the token of the namespace
//! ([`TOKEN_ANNOTATION`]). Only the selector changes, and the tenant can change nothing while the
//! namespace is read-only, nor a neutralised policy or any `covenant.dev/*` annotation of a policy
//! ever: restoring the selector restores the policy exactly.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Value, json};

/// Namespace annotation: the ranges tenant egress may never reach, comma-separated (what
/// covenant-egress excepts from `0.0.0.0/0` and `::/0`).
pub const DENIED_CIDRS_ANNOTATION: &str = "covenant.dev/denied-cidrs";
/// Namespace annotation: `permitted` when the account has telephony (SIP egress), else `denied`.
pub const SIP_EGRESS_ANNOTATION: &str = "covenant.dev/sip-egress";
/// Namespace annotation: the package's platform selectors as covenant-isolation applies them, one per
/// `;`, each as its requirements ([`selector_tokens`]) separated by `,`.
pub const PLATFORM_SELECTORS_ANNOTATION: &str = "covenant.dev/platform-selectors";
/// Annotation on a tenant NetworkPolicy that Covenant neutralised: `<token>:<original podSelector as
/// JSON>`.
pub const NEUTRALISED_ANNOTATION: &str = "covenant.dev/neutralised";
/// Namespace annotation: the token of the current suspension's neutralised policies. Written before
/// the first policy is neutralised, removed after the last one is restored.
pub const TOKEN_ANNOTATION: &str = "covenant.dev/network-policies-token";
/// Namespace annotation: the fingerprint ([`judged_fingerprint`]) of the namespace, as Covenant applies
/// it, under which every tenant NetworkPolicy in it was last judged admissible (none held neutralised).
/// Set when Covenant creates the namespace (empty: every policy made in it since was admitted under it)
/// and after a re-judge held none; removed after one held any. A restarted operator re-judges a
/// namespace only when this mark is not the namespace's fingerprint now. Only the operator sets
/// covenant.dev/* annotations on a namespace (admission policy `covenant-namespace-labels`).
pub const POLICIES_JUDGED_ANNOTATION: &str = "covenant.dev/network-policies-judged";

/// The fingerprint of the namespace `desired` (as Covenant applies it) that the tenant's
/// NetworkPolicies are judged in: its labels and annotations, but for the judgement marks. Stable
/// across processes and releases (it is kept on the namespace).
pub fn judged_fingerprint(desired: &k8s_openapi::api::core::v1::Namespace) -> String {
    let skip = |k: &str| {
        k == POLICIES_JUDGED_ANNOTATION || k == crate::model::policies::COMPLIANCE_JUDGED_ANNOTATION
    };
    let m = &desired.metadata;
    let mut text = String::new();
    for map in [&m.labels, &m.annotations] {
        for (k, v) in map.iter().flatten().filter(|(k, _)| !skip(k)) {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        text.push('\n');
    }
    format!("{:016x}", crate::model::fnv1a(text.as_bytes()))
}

/// The label key of [`neutral_selector`].
pub const NEUTRAL_KEY: &str = "covenant.dev/neutralised";
/// How many NetworkPolicies a tenant namespace may hold (the `covenant-bounds` quota's
/// `count/networkpolicies.networking.k8s.io`, unless the package's or the account's quota names it):
/// the tenant's 20, and Covenant's own three.
pub const NETWORK_POLICIES_BOUND: &str = "23";
/// The quota key that counts NetworkPolicies.
pub const NETWORK_POLICIES_KEY: &str = "count/networkpolicies.networking.k8s.io";

/// The requirements of a selector as the admission policy spells them: `key=value` for each of
/// `matchLabels`, `key Operator v1|v2` for each of `matchExpressions` (values in their order).
pub fn selector_tokens(s: &LabelSelector) -> Vec<String> {
    let labels = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"));
    let exprs = s.match_expressions.iter().flatten().map(|e| {
        format!(
            "{} {} {}",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join("|")
        )
    });
    labels.chain(exprs).collect()
}

/// What the admission policy reads on every namespace of an account: the denied ranges (both
/// families), whether SIP egress is permitted, and the platform selectors applied.
pub fn namespace_annotations(
    telephony: bool,
    denied: &(Vec<String>, Vec<String>),
    platform: &[LabelSelector],
) -> BTreeMap<String, String> {
    let cidrs: Vec<&str> = denied
        .0
        .iter()
        .chain(&denied.1)
        .map(String::as_str)
        .collect();
    let platform: Vec<String> = platform
        .iter()
        .map(|s| selector_tokens(s).join(","))
        .filter(|l| !l.is_empty())
        .collect();
    BTreeMap::from([
        (DENIED_CIDRS_ANNOTATION.to_string(), cidrs.join(",")),
        (
            SIP_EGRESS_ANNOTATION.to_string(),
            if telephony { "permitted" } else { "denied" }.to_string(),
        ),
        (
            PLATFORM_SELECTORS_ANNOTATION.to_string(),
            platform.join(";"),
        ),
    ])
}

/// The pod label by which a tenant takes a pod out of Covenant's allow policies (covenant-isolation,
/// covenant-egress): such a pod gets only what the tenant's own policies allow, each of which can only
/// narrow, and [`NARROWED_POLICY`] selects it for both directions so that with no tenant policy it
/// gets nothing. Any value.
pub const NARROWED_LABEL: &str = "covenant.dev/narrowed";
/// Covenant's policy that isolates the pods labelled [`NARROWED_LABEL`] both ways (no rule: only the
/// tenant's own policies let anything through).
pub const NARROWED_POLICY: &str = "covenant-narrowed";

/// The podSelector of Covenant's allow policies: every pod but those the tenant narrowed.
pub fn not_narrowed() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NARROWED_LABEL.into(),
            operator: "DoesNotExist".into(),
            values: None,
        }]),
        match_labels: None,
    }
}

/// [`NARROWED_POLICY`] in `namespace`.
pub fn narrowed_policy(account: &str, namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: crate::model::account::meta(NARROWED_POLICY, Some(namespace), account),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NARROWED_LABEL.into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
                match_labels: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }
}

/// A selector that matches no pod whatever its labels: the same key must exist and not exist.
pub fn neutral_selector() -> Value {
    json!({
        "matchLabels": null,
        "matchExpressions": [
            { "key": NEUTRAL_KEY, "operator": "Exists" },
            { "key": NEUTRAL_KEY, "operator": "DoesNotExist" },
        ],
    })
}

/// A tenant policy as the suspension sees it: name, resourceVersion, its `podSelector` (as JSON) and
/// its [`NEUTRALISED_ANNOTATION`], if any.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantPolicy {
    pub name: String,
    pub resource_version: Option<String>,
    pub pod_selector: Value,
    pub record: Option<String>,
}

/// The merge patch that neutralises `p` under `token` (its selector recorded, then replaced), or
/// `None` when it is neutralised already (a record is kept as it is: it holds the original).
pub fn neutralise_patch(p: &TenantPolicy, token: &str) -> Option<Value> {
    if p.record.is_some() {
        return None;
    }
    let original = serde_json::to_string(&p.pod_selector).ok()?;
    Some(json!({
        "metadata": {
            "resourceVersion": p.resource_version,
            "annotations": { NEUTRALISED_ANNOTATION: format!("{token}:{original}") },
        },
        "spec": { "podSelector": neutral_selector() },
    }))
}

/// The original selector recorded on `p` under `token`, if its record is one (a record under
/// another token, or unreadable, is no record).
pub fn recorded(p: &TenantPolicy, token: &str) -> Option<Value> {
    let (t, original) = p.record.as_deref()?.split_once(':')?;
    if token.is_empty() || t != token {
        return None;
    }
    serde_json::from_str::<LabelSelector>(original).ok()?;
    serde_json::from_str(original).ok()
}

/// The merge patch that restores `p` from its record under `token` (the selector exactly as it was:
/// fields it lacked are removed) and removes the record; `None` when it has no trusted record.
pub fn restore_patch(p: &TenantPolicy, token: &str) -> Option<Value> {
    let original = recorded(p, token)?;
    let field = |k: &str| original.get(k).cloned().unwrap_or(Value::Null);
    Some(json!({
        "metadata": {
            "resourceVersion": p.resource_version,
            "annotations": { NEUTRALISED_ANNOTATION: Value::Null },
        },
        "spec": { "podSelector": {
            "matchLabels": field("matchLabels"),
            "matchExpressions": field("matchExpressions"),
        }},
    }))
}

/// `hard` with room for one more NetworkPolicy: while a suspension's deny-all comes or goes (it is
/// created before the allow policies go, and the allow policies before it goes) Covenant holds three;
/// a tenant that filled the namespace must not delay the deny-all. A value that is not a whole
/// number is left as it is.
pub fn with_room(hard: &mut crate::api::ResourceMap) {
    if let Some(q) = hard.get_mut(NETWORK_POLICIES_KEY)
        && let Ok(n) = q.0.parse::<u64>()
    {
        q.0 = (n + 1).to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NetworkPolicy mark names the namespace as applied (labels and annotations), not the marks
    /// on it; a suspension's read-only label changes it; its value is fixed across releases.
    #[test]
    fn the_network_policy_mark_follows_the_namespace_but_not_the_marks() {
        // The namespace with these labels and annotations.
        let namespace = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| {
            let map = |kv: &[(&str, &str)]| {
                Some(
                    kv.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            };
            let mut ns = k8s_openapi::api::core::v1::Namespace::default();
            ns.metadata.labels = map(labels);
            ns.metadata.annotations = map(annotations);
            judged_fingerprint(&ns)
        };
        let account = ("covenant.dev/account", "a");
        let denied = (SIP_EGRESS_ANNOTATION, "denied");
        let mark = namespace(&[account], &[denied]);
        assert_eq!(mark, "b3cffd4161857d60", "the mark's algorithm changed");
        let marks = [
            (POLICIES_JUDGED_ANNOTATION, mark.as_str()),
            (crate::model::policies::COMPLIANCE_JUDGED_ANNOTATION, "x"),
        ];
        assert_eq!(namespace(&[account], &[denied, marks[0], marks[1]]), mark);
        let read_only = ("covenant.dev/read-only", "suspended");
        assert_ne!(namespace(&[account, read_only], &[denied]), mark);
        assert_ne!(
            namespace(&[account], &[(SIP_EGRESS_ANNOTATION, "permitted")]),
            mark
        );
    }

    fn policy(selector: Value, record: Option<&str>) -> TenantPolicy {
        TenantPolicy {
            name: "db".into(),
            resource_version: Some("7".into()),
            pod_selector: selector,
            record: record.map(String::from),
        }
    }

    /// Neutralising records the selector under the token and replaces it; restoring puts back exactly
    /// the fields it had (a field it lacked is removed) and removes the record.
    #[test]
    fn neutralise_then_restore_round_trips() {
        let original = json!({ "matchLabels": { "app": "db" } });
        let p = policy(original.clone(), None);
        let patch = neutralise_patch(&p, "t1").unwrap();
        assert_eq!(patch["spec"]["podSelector"], neutral_selector());
        let record = patch["metadata"]["annotations"][NEUTRALISED_ANNOTATION]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(record, r#"t1:{"matchLabels":{"app":"db"}}"#);
        let neutralised = policy(neutral_selector(), Some(&record));
        assert_eq!(
            neutralise_patch(&neutralised, "t1"),
            None,
            "a record is never overwritten"
        );
        let restore = restore_patch(&neutralised, "t1").unwrap();
        assert_eq!(
            restore["spec"]["podSelector"],
            json!({ "matchLabels": { "app": "db" }, "matchExpressions": null })
        );
        assert_eq!(
            restore["metadata"]["annotations"][NEUTRALISED_ANNOTATION],
            Value::Null
        );
        assert_eq!(restore["metadata"]["resourceVersion"], "7");
    }

    /// A record under another token, or one that is not a selector, is not trusted: nothing is restored.
    #[test]
    fn untrusted_records_restore_nothing() {
        let p = policy(
            neutral_selector(),
            Some(r#"t0:{"matchLabels":{"app":"db"}}"#),
        );
        assert_eq!(restore_patch(&p, "t1"), None);
        assert_eq!(restore_patch(&p, ""), None);
        let bad = policy(neutral_selector(), Some("t1:[1,2]"));
        assert_eq!(restore_patch(&bad, "t1"), None);
    }

    /// The annotations spell the denied ranges of both families, SIP and the platform selectors as the
    /// admission policy compares them.
    #[test]
    fn namespace_annotations_spell_what_the_policy_reads() {
        let denied = crate::model::account::denied_cidrs(&[]);
        let platform = LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "ingress".to_string(),
            )])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "covenant.dev/account".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        let a = namespace_annotations(false, &denied, &[platform.clone(), platform]);
        assert!(a[DENIED_CIDRS_ANNOTATION].starts_with("100.100.100.200/32,169.254.0.0/16,"));
        assert!(a[DENIED_CIDRS_ANNOTATION].contains("fd00:ec2::254/128"));
        assert_eq!(a[SIP_EGRESS_ANNOTATION], "denied");
        assert_eq!(
            a[PLATFORM_SELECTORS_ANNOTATION],
            "kubernetes.io/metadata.name=ingress,covenant.dev/account DoesNotExist ;\
             kubernetes.io/metadata.name=ingress,covenant.dev/account DoesNotExist "
        );
        assert_eq!(
            namespace_annotations(true, &denied, &[])[SIP_EGRESS_ANNOTATION],
            "permitted"
        );
    }

    #[test]
    fn room_for_one_more_policy() {
        let mut hard = crate::api::ResourceMap::from([(
            NETWORK_POLICIES_KEY.to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("23".into()),
        )]);
        with_room(&mut hard);
        assert_eq!(hard[NETWORK_POLICIES_KEY].0, "24");
    }
}
