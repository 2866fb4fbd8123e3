//! A tenant's effective policies (pure): its package's `policies` narrowed by its Account's, and the
//! namespace annotations the admission policies in `deploy/workload-policies-policy.yaml` read. An
//! absent annotation leaves that concern unrestricted, so namespaces of accounts on a package without
//! policies carry none of them.

use std::collections::BTreeMap;

use crate::api::{
    AllowedToleration, ClassPolicy, HostnamePolicy, ImagePolicy, IngressPolicy, Policies,
    SchedulingPolicy, TolerationPolicy,
};

/// Namespace annotation: the package whose policies the namespace's annotations carry (named in the
/// admission policies' messages).
pub const POLICY_PACKAGE_ANNOTATION: &str = "covenant.dev/policy-package";
/// Namespace annotation: allowed image reference prefixes, comma-separated.
pub const REGISTRIES_ANNOTATION: &str = "covenant.dev/allowed-registries";
/// Namespace annotation: forced node labels, `key=value` comma-separated.
pub const NODE_SELECTOR_ANNOTATION: &str = "covenant.dev/node-selector";
/// Namespace annotation: allowed tolerations, one `key|operator|value|effect` per line (empty =
/// any).
pub const TOLERATIONS_ANNOTATION: &str = "covenant.dev/allowed-tolerations";
/// Namespace annotation: allowed Ingress host patterns, comma-separated.
pub const HOSTNAMES_ANNOTATION: &str = "covenant.dev/allowed-hostnames";
/// Namespace annotation: `"true"` when the tier allows ingress controller configuration snippets
/// (absent: refused, in every tenant namespace).
pub const SNIPPETS_ANNOTATION: &str = "covenant.dev/allow-ingress-snippets";

/// Whether the host pattern `a` is within the pattern `p`: equal, or `p` is a wildcard (`*.x`) and
/// `a` a host one label under it (`shop.x`). A wildcard matches exactly one label, as the hostname
/// uniqueness rule does.
pub fn host_within(a: &str, p: &str) -> bool {
    a == p
        || p.strip_prefix('*').is_some_and(|suffix| {
            suffix.starts_with('.')
                && !a.starts_with('*')
                && a.find('.').is_some_and(|i| i > 0 && &a[i..] == suffix)
        })
}

/// Whether the allowed image prefix `r` (of an account) is within the prefix `q` (of its package), as
/// `covenant-images` matches them: `q` without `/` is a registry host (`q/`); `q` whose last component
/// names a repository (no trailing `/`, `:` or `@`) covers that repository and what is under it
/// (`q`, `q/...`, `q:...`, `q@...`), not a sibling that merely starts alike (`q-evil/`); any other `q`
/// is a plain prefix.
pub fn registry_within(r: &str, q: &str) -> bool {
    let host = |p: &str| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/")
        }
    };
    let (r, q) = (host(r), host(q));
    let (r, q) = (r.as_str(), q.as_str());
    let last = q.rsplit('/').next().unwrap_or_default();
    if q.ends_with('/') || last.contains(':') || last.contains('@') {
        return r.starts_with(q);
    }
    r == q
        || r.strip_prefix(q)
            .is_some_and(|rest| rest.starts_with(['/', ':', '@']))
}

/// The Account condition that reports objects (pods, claims, Ingresses) its tier's policies no longer
/// allow.
pub const COMPLIANCE_CONDITION: &str = "PoliciesCompliant";
/// The field manager of that condition (the compliance loop, not the account controller).
pub const COMPLIANCE_FIELD_MANAGER: &str = "covenant-policies";
/// Namespace annotation: the fingerprint ([`policies_fingerprint`]) of the policy annotations against
/// which every pod, claim, Ingress, Gateway and route in the namespace was last found compliant. Set
/// when Covenant creates the namespace (empty, it holds nothing to refuse; every object made in it since
/// was admitted under those policies) and by the compliance loop after a pass found nothing there;
/// removed when a pass finds an offending object. A restarted operator lists a namespace's objects
/// again only when this mark is not the fingerprint of its policy annotations now. Only the operator
/// sets covenant.dev/* annotations on a namespace (admission policy `covenant-namespace-labels`).
pub const COMPLIANCE_JUDGED_ANNOTATION: &str = "covenant.dev/compliance-judged";

/// The fingerprint of a namespace's policy annotations (those [`is_policy_annotation`] names; every
/// other annotation is ignored), as [`COMPLIANCE_JUDGED_ANNOTATION`] holds it: stable across processes
/// and releases.
pub fn policies_fingerprint(annotations: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = annotations
        .iter()
        .filter(|(k, _)| is_policy_annotation(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{:016x}", super::fnv1a(lines.join("\n").as_bytes()))
}

/// At most this many offending objects are named in the condition; the rest are counted.
pub const NAMED_AT_MOST: usize = 10;

/// The `PoliciesCompliant=False` message for the offending objects (`ns/name: why`), `None` when
/// there are none. Nothing is deleted: the message says so and how to fix it.
pub fn noncompliance_message(found: &[String]) -> Option<String> {
    if found.is_empty() {
        return None;
    }
    let mut found = found.to_vec();
    found.sort();
    let more = found.len().saturating_sub(NAMED_AT_MOST);
    found.truncate(NAMED_AT_MOST);
    Some(format!(
        "{} object(s) no longer comply with the tier's policies (nothing was deleted or changed; replace them with compliant ones): {}{}",
        found.len() + more,
        found.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
}

/// The forced node labels (`covenant.dev/node-selector`, `forced`) a running pod's `nodeSelector` lacks
/// or sets otherwise, as `key=value` of the forced label. A pod created now gets them from
/// `covenant-node-selector`; one admitted before the tier forced them may run on any node.
pub fn unforced_labels(forced: &str, node_selector: &BTreeMap<String, String>) -> Vec<String> {
    forced
        .split(',')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, v)| node_selector.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The class kinds a package can restrict: (annotation stem, field of [`Policies`]).
pub const CLASS_KINDS: [&str; 5] = [
    "storage-classes",
    "ingress-classes",
    "gateway-classes",
    "priority-classes",
    "runtime-classes",
];

/// Namespace annotation of the allowed classes of a kind (`stem` from [`CLASS_KINDS`]).
pub fn allowed_annotation(stem: &str) -> String {
    format!("covenant.dev/allowed-{stem}")
}

/// Namespace annotation of the default class of a kind (`stem` from [`CLASS_KINDS`]).
pub fn default_annotation(stem: &str) -> String {
    format!("covenant.dev/default-{}", stem.trim_end_matches("es"))
}

fn classes<'a>(p: &'a Policies, stem: &str) -> Option<&'a ClassPolicy> {
    match stem {
        "storage-classes" => p.storage_classes.as_ref(),
        "ingress-classes" => p.ingress_classes.as_ref(),
        "gateway-classes" => p.gateway_classes.as_ref(),
        "priority-classes" => p.priority_classes.as_ref(),
        "runtime-classes" => p.runtime_classes.as_ref(),
        _ => None,
    }
}

fn narrow_classes(pkg: Option<&ClassPolicy>, acct: Option<&ClassPolicy>) -> Option<ClassPolicy> {
    match (pkg, acct) {
        (None, a) => a.cloned(),
        (p, None) => p.cloned(),
        (Some(p), Some(a)) => {
            let allowed: Vec<String> = a
                .allowed
                .iter()
                .filter(|c| p.allowed.contains(c))
                .cloned()
                .collect();
            let default = [a.default.as_ref(), p.default.as_ref()]
                .into_iter()
                .flatten()
                .find(|d| allowed.contains(d))
                .cloned();
            Some(ClassPolicy { allowed, default })
        }
    }
}

/// Whether the toleration pattern `a` is within `p` (every field `p` sets, `a` sets to the same).
fn within(a: &AllowedToleration, p: &AllowedToleration) -> bool {
    fn f(p: &Option<String>, a: &Option<String>) -> bool {
        p.is_none() || p == a
    }
    f(&p.key, &a.key)
        && f(&p.operator, &a.operator)
        && f(&p.value, &a.value)
        && f(&p.effect, &a.effect)
}

/// The policies in force for an account: the package's, narrowed by the account's. An account's entry
/// that would widen the package is dropped (the API server refuses such overrides; this keeps the
/// package's word also for an override written before the package was tightened).
pub fn effective(package: Option<&Policies>, account: Option<&Policies>) -> Policies {
    let empty = Policies::default();
    let p = package.unwrap_or(&empty);
    let a = account.unwrap_or(&empty);
    let images = match (&p.images, &a.images) {
        (None, x) | (x, None) => x.clone(),
        (Some(p), Some(a)) => Some(ImagePolicy {
            allowed_registries: a
                .allowed_registries
                .iter()
                .filter(|r| p.allowed_registries.iter().any(|q| registry_within(r, q)))
                .cloned()
                .collect(),
        }),
    };
    let scheduling = match (&p.scheduling, &a.scheduling) {
        (None, None) => None,
        (p, a) => {
            let mut node_selector = a
                .as_ref()
                .map(|a| a.node_selector.clone())
                .unwrap_or_default();
            if let Some(p) = p {
                node_selector.extend(p.node_selector.clone());
            }
            Some(SchedulingPolicy { node_selector })
        }
    };
    let tolerations = match (&p.tolerations, &a.tolerations) {
        (None, x) | (x, None) => x.clone(),
        (Some(p), Some(a)) => Some(TolerationPolicy {
            allowed: a
                .allowed
                .iter()
                .filter(|t| p.allowed.iter().any(|q| within(t, q)))
                .cloned()
                .collect(),
        }),
    };
    let hostnames = match (&p.hostnames, &a.hostnames) {
        (None, x) | (x, None) => x.clone(),
        (Some(p), Some(a)) => Some(HostnamePolicy {
            allowed: a
                .allowed
                .iter()
                .filter(|h| p.allowed.iter().any(|q| host_within(h, q)))
                .cloned()
                .collect(),
        }),
    };
    // Snippets are allowed only where the package allows them and the account does not refuse them.
    let ingress = p.ingress.as_ref().map(|pi| IngressPolicy {
        allow_snippets: pi.allow_snippets && a.ingress.as_ref().is_none_or(|ai| ai.allow_snippets),
    });
    Policies {
        images,
        storage_classes: narrow_classes(p.storage_classes.as_ref(), a.storage_classes.as_ref()),
        ingress_classes: narrow_classes(p.ingress_classes.as_ref(), a.ingress_classes.as_ref()),
        gateway_classes: narrow_classes(p.gateway_classes.as_ref(), a.gateway_classes.as_ref()),
        priority_classes: narrow_classes(p.priority_classes.as_ref(), a.priority_classes.as_ref()),
        runtime_classes: narrow_classes(p.runtime_classes.as_ref(), a.runtime_classes.as_ref()),
        scheduling,
        tolerations,
        hostnames,
        ingress,
    }
}

/// Where an account's `policies` widen its package's, one message each (empty when it only
/// narrows). The API server refuses such an Account (`covenant-account-policies`); `covenant check`
/// and the Account's status use the same words.
pub fn widenings(package: Option<&Policies>, account: &Policies) -> Vec<String> {
    let empty = Policies::default();
    let p = package.unwrap_or(&empty);
    let mut out = Vec::new();
    if let (Some(pi), Some(ai)) = (&p.images, &account.images) {
        for r in &ai.allowed_registries {
            if !pi.allowed_registries.iter().any(|q| registry_within(r, q)) {
                out.push(format!(
                    "policies.images.allowedRegistries: {r} is not under a registry the package allows ({})",
                    pi.allowed_registries.join(", ")
                ));
            }
        }
    }
    for (field, stem) in [
        ("storageClasses", "storage-classes"),
        ("ingressClasses", "ingress-classes"),
        ("gatewayClasses", "gateway-classes"),
        ("priorityClasses", "priority-classes"),
        ("runtimeClasses", "runtime-classes"),
    ] {
        if let (Some(pc), Some(ac)) = (classes(p, stem), classes(account, stem)) {
            for c in ac.allowed.iter().chain(ac.default.as_ref()) {
                if !pc.allowed.contains(c) {
                    out.push(format!(
                        "policies.{field}: {c} is not allowed by the package ({})",
                        pc.allowed.join(", ")
                    ));
                }
            }
        }
    }
    if let (Some(ps), Some(as_)) = (&p.scheduling, &account.scheduling) {
        for (k, v) in &ps.node_selector {
            if as_.node_selector.get(k).is_some_and(|w| w != v) {
                out.push(format!(
                    "policies.scheduling.nodeSelector: {k} is forced to {v} by the package"
                ));
            }
        }
    }
    if let (Some(pt), Some(at)) = (&p.tolerations, &account.tolerations) {
        for t in &at.allowed {
            if !pt.allowed.iter().any(|q| within(t, q)) {
                out.push(format!(
                    "policies.tolerations.allowed: {} is not within a toleration the package allows",
                    toleration_token(t)
                ));
            }
        }
    }
    if let (Some(ph), Some(ah)) = (&p.hostnames, &account.hostnames) {
        for h in &ah.allowed {
            if !ph.allowed.iter().any(|q| host_within(h, q)) {
                out.push(format!(
                    "policies.hostnames.allowed: {h} is not within a pattern the package allows ({})",
                    ph.allowed.join(", ")
                ));
            }
        }
    }
    let package_snippets = p.ingress.as_ref().is_some_and(|i| i.allow_snippets);
    if account.ingress.as_ref().is_some_and(|i| i.allow_snippets) && !package_snippets {
        out.push(
            "policies.ingress.allowSnippets: the package does not allow ingress configuration snippets"
                .to_string(),
        );
    }
    out.dedup();
    out
}

fn toleration_token(t: &AllowedToleration) -> String {
    [&t.key, &t.operator, &t.value, &t.effect]
        .map(|f| f.clone().unwrap_or_default())
        .join("|")
}

/// Whether `key` is one of the namespace annotations that carry policies ([`annotations`]): one the
/// desired namespace no longer carries is removed (a package that drops a policy lifts it).
pub fn is_policy_annotation(key: &str) -> bool {
    [
        POLICY_PACKAGE_ANNOTATION,
        REGISTRIES_ANNOTATION,
        NODE_SELECTOR_ANNOTATION,
        TOLERATIONS_ANNOTATION,
        HOSTNAMES_ANNOTATION,
        SNIPPETS_ANNOTATION,
    ]
    .contains(&key)
        || CLASS_KINDS
            .iter()
            .any(|stem| key == allowed_annotation(stem) || key == default_annotation(stem))
}

/// The namespace annotations that carry `policies` for the admission policies (`package`: the
/// package's name, for their messages). Empty when nothing is restricted.
pub fn annotations(policies: &Policies, package: &str) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if let Some(i) = &policies.images {
        a.insert(
            REGISTRIES_ANNOTATION.to_string(),
            i.allowed_registries.join(","),
        );
    }
    for stem in CLASS_KINDS {
        if let Some(c) = classes(policies, stem) {
            a.insert(allowed_annotation(stem), c.allowed.join(","));
            if let Some(d) = &c.default {
                a.insert(default_annotation(stem), d.clone());
            }
        }
    }
    if let Some(s) = policies
        .scheduling
        .as_ref()
        .filter(|s| !s.node_selector.is_empty())
    {
        let pairs: Vec<String> = s
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        a.insert(NODE_SELECTOR_ANNOTATION.to_string(), pairs.join(","));
    }
    if let Some(t) = &policies.tolerations {
        let lines: Vec<String> = t.allowed.iter().map(toleration_token).collect();
        a.insert(TOLERATIONS_ANNOTATION.to_string(), lines.join("\n"));
    }
    if let Some(h) = &policies.hostnames {
        a.insert(HOSTNAMES_ANNOTATION.to_string(), h.allowed.join(","));
    }
    if policies.ingress.as_ref().is_some_and(|i| i.allow_snippets) {
        a.insert(SNIPPETS_ANNOTATION.to_string(), "true".to_string());
    }
    if !a.is_empty() {
        a.insert(POLICY_PACKAGE_ANNOTATION.to_string(), package.to_string());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compliance mark names the policy annotations only: another annotation (the mark itself, a
    /// tenant's own) does not change it, any policy value does, and its value is fixed across releases
    /// (a mark an older operator wrote is read by a newer one).
    #[test]
    fn the_compliance_mark_follows_the_policy_annotations_and_nothing_else() {
        let policies = BTreeMap::from([
            (
                REGISTRIES_ANNOTATION.to_string(),
                "registry.example/".to_string(),
            ),
            (POLICY_PACKAGE_ANNOTATION.to_string(), "gold".to_string()),
        ]);
        let mark = policies_fingerprint(&policies);
        assert_eq!(mark, "09e948975cd53540", "the mark's algorithm changed");
        let mut other = policies.clone();
        other.insert(COMPLIANCE_JUDGED_ANNOTATION.into(), mark.clone());
        other.insert("example.com/owner".into(), "team-a".into());
        assert_eq!(policies_fingerprint(&other), mark);
        let mut narrowed = policies.clone();
        narrowed.insert(
            REGISTRIES_ANNOTATION.into(),
            "registry.example/team/".into(),
        );
        assert_ne!(policies_fingerprint(&narrowed), mark);
        assert_ne!(policies_fingerprint(&BTreeMap::new()), mark);
    }

    fn classes(allowed: &[&str], default: Option<&str>) -> Option<ClassPolicy> {
        Some(ClassPolicy {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            default: default.map(str::to_string),
        })
    }

    #[test]
    fn an_account_narrows_and_never_widens() {
        let pkg = Policies {
            images: Some(ImagePolicy {
                allowed_registries: vec!["registry.example/".into(), "docker.io/library/".into()],
            }),
            storage_classes: classes(&["standard", "fast"], Some("standard")),
            scheduling: Some(SchedulingPolicy {
                node_selector: BTreeMap::from([("pool".into(), "tenants".into())]),
            }),
            ..Default::default()
        };
        let acct = Policies {
            images: Some(ImagePolicy {
                allowed_registries: vec!["registry.example/acme/".into(), "evil.io/".into()],
            }),
            storage_classes: classes(&["fast", "premium"], Some("fast")),
            scheduling: Some(SchedulingPolicy {
                node_selector: BTreeMap::from([
                    ("pool".into(), "other".into()),
                    ("zone".into(), "a".into()),
                ]),
            }),
            ..Default::default()
        };
        let e = effective(Some(&pkg), Some(&acct));
        assert_eq!(
            e.images.unwrap().allowed_registries,
            vec!["registry.example/acme/"]
        );
        assert_eq!(e.storage_classes, classes(&["fast"], Some("fast")));
        assert_eq!(
            e.scheduling.unwrap().node_selector,
            BTreeMap::from([
                ("pool".into(), "tenants".into()),
                ("zone".into(), "a".into())
            ])
        );
        let w = widenings(Some(&pkg), &acct);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("evil.io/"), "{w:?}");
        assert!(w[1].contains("premium"), "{w:?}");
        assert!(w[2].contains("pool is forced to tenants"), "{w:?}");
        assert!(widenings(Some(&pkg), &effective(Some(&pkg), Some(&acct))).is_empty());
    }

    #[test]
    fn registry_prefixes_narrow_on_component_boundaries() {
        assert!(registry_within(
            "registry.example/acme/",
            "registry.example"
        ));
        assert!(!registry_within(
            "registry.example.evil.io/",
            "registry.example"
        ));
        assert!(registry_within("ghcr.io/acme/web", "ghcr.io/acme"));
        assert!(registry_within("ghcr.io/acme", "ghcr.io/acme"));
        assert!(registry_within("ghcr.io/acme:1.2", "ghcr.io/acme"));
        assert!(!registry_within("ghcr.io/acme-evil/", "ghcr.io/acme"));
        assert!(registry_within(
            "docker.io/library/nginx",
            "docker.io/library/"
        ));
        assert!(registry_within("ghcr.io/acme:1.25.3", "ghcr.io/acme:1.25"));
        assert!(registry_within("registry.example", "registry.example"));
        assert!(registry_within("registry.example", "registry.example/"));
        assert!(!registry_within(
            "registry.example",
            "registry.example/acme/"
        ));
    }

    #[test]
    fn a_running_pod_lacking_a_forced_label_is_named() {
        let sel = BTreeMap::from([("pool".to_string(), "gpu".to_string())]);
        assert_eq!(
            unforced_labels("pool=tenants,zone=a", &sel),
            vec!["pool=tenants", "zone=a"]
        );
        let sel = BTreeMap::from([
            ("pool".to_string(), "tenants".to_string()),
            ("zone".to_string(), "a".to_string()),
        ]);
        assert!(unforced_labels("pool=tenants,zone=a", &sel).is_empty());
    }

    #[test]
    fn no_policies_means_no_annotations() {
        assert!(annotations(&effective(None, None), "standard").is_empty());
        let p = Policies {
            storage_classes: classes(&["standard"], Some("standard")),
            tolerations: Some(TolerationPolicy {
                allowed: vec![AllowedToleration {
                    key: Some("dedicated".into()),
                    effect: Some("NoSchedule".into()),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let a = annotations(&p, "gold");
        assert_eq!(a["covenant.dev/allowed-storage-classes"], "standard");
        assert_eq!(a["covenant.dev/default-storage-class"], "standard");
        assert_eq!(
            a["covenant.dev/allowed-tolerations"],
            "dedicated|||NoSchedule"
        );
        assert_eq!(a[POLICY_PACKAGE_ANNOTATION], "gold");
    }

    #[test]
    fn host_patterns_match_one_label_and_narrow() {
        assert!(host_within("shop.acme.example", "*.acme.example"));
        assert!(host_within("*.acme.example", "*.acme.example"));
        assert!(host_within("shop.example", "shop.example"));
        assert!(!host_within("a.b.acme.example", "*.acme.example"));
        assert!(!host_within("acme.example", "*.acme.example"));
        assert!(!host_within("*.b.acme.example", "*.acme.example"));
        assert!(!host_within("*.acme.example", "shop.acme.example"));
        assert!(!host_within("shopacme.example", "*.acme.example"));
        let hosts = |h: &[&str]| {
            Some(HostnamePolicy {
                allowed: h.iter().map(|s| s.to_string()).collect(),
            })
        };
        let pkg = Policies {
            hostnames: hosts(&["*.acme.example", "shop.example"]),
            ..Default::default()
        };
        let acct = Policies {
            hostnames: hosts(&["api.acme.example", "*.example"]),
            ingress: Some(IngressPolicy {
                allow_snippets: true,
            }),
            ..Default::default()
        };
        let e = effective(Some(&pkg), Some(&acct));
        assert_eq!(e.hostnames, hosts(&["api.acme.example"]));
        assert_eq!(e.ingress, None);
        let w = widenings(Some(&pkg), &acct);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("*.example is not within"), "{w:?}");
        assert!(w[1].contains("allowSnippets"), "{w:?}");
        let a = annotations(&e, "hardened");
        assert_eq!(a[HOSTNAMES_ANNOTATION], "api.acme.example");
        assert!(!a.contains_key(SNIPPETS_ANNOTATION));
        let open = Policies {
            ingress: Some(IngressPolicy {
                allow_snippets: true,
            }),
            ..Default::default()
        };
        let a = annotations(&effective(Some(&open), None), "open");
        assert_eq!(a[SNIPPETS_ANNOTATION], "true");
        let refused = Policies {
            ingress: Some(IngressPolicy::default()),
            ..Default::default()
        };
        let e = effective(Some(&open), Some(&refused));
        assert!(!annotations(&e, "open").contains_key(SNIPPETS_ANNOTATION));
    }
}
