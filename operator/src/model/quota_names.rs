//! Which `quota` and `accountQuota` entries the API server accepts in a ResourceQuota's `spec.hard`:
//! the rules of Kubernetes' own validation (`ValidateResourceQuotaSpec`), so that `covenant check`
//! says offline what the API server would answer when Covenant writes the ResourceQuota of such an
//! entry (`covenant-quota`, or each namespace's share of the account-wide quota), with its message.

use crate::api::ResourceMap;

/// What `ResourceQuota` accepts without a `/` (Kubernetes' `standardQuotaResources`), besides the
/// `hugepages-*` and `requests.hugepages-*` names.
const STANDARD_QUOTA: [&str; 19] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Names without a `/` that are resources at all (Kubernetes' `standardResources`), not all of them
/// quota resources.
const STANDARD: [&str; 20] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Counted in whole units (Kubernetes' `integerResources`); names with a `/` outside
/// `kubernetes.io` and `requests.*` (extended resources, `count/...`) are too.
const INTEGER: [&str; 9] = [
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

fn hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// A DNS-1123 subdomain (the prefix of a qualified name).
fn subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A qualified name (`[prefix/]name`, Kubernetes' `IsQualifiedName`).
fn qualified(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(subdomain) && s.matches('/').count() <= 1
}

/// Whether a valid resource name counts in whole units.
fn integer(name: &str) -> bool {
    if INTEGER.contains(&name) {
        return true;
    }
    // An extended resource: outside kubernetes.io, not a `requests.` name, and qualified once
    // `requests.` is put in front.
    name.contains('/')
        && !name.contains("kubernetes.io/")
        && !name.starts_with("requests.")
        && qualified(&format!("requests.{name}"))
}

/// Whether `q` is a whole number (as a quantity: `2`, `2k`, `1e3`; not `1.5` nor `500m`).
fn whole(q: &str) -> bool {
    crate::model::account_quota::milli(q, false).is_some_and(|m| m % 1000 == 0)
        && crate::model::account_quota::milli(q, true)
            == crate::model::account_quota::milli(q, false)
}

/// What the API server refuses of `map` in a ResourceQuota's `spec.hard`, each as
/// `<field>[<resource>]: Invalid value: ...: <its message>` followed by what Covenant writes from it
/// (`writes`) and how to fix it. `field` is where the map is (`spec.accountQuota`).
pub fn problems(field: &str, map: Option<&ResourceMap>, writes: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, q) in map.into_iter().flatten() {
        let mut refusals: Vec<String> = Vec::new();
        let slash = name.contains('/');
        if !qualified(name) {
            refusals.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'"
                    .into(),
            );
        } else if !slash {
            if !(STANDARD.contains(&name.as_str()) || hugepages(name)) {
                refusals.push("must be a standard resource type or fully qualified".into());
            }
            if !(STANDARD_QUOTA.contains(&name.as_str()) || hugepages(name)) {
                refusals.push("must be a standard resource for quota".into());
            }
        }
        if refusals.is_empty() && integer(name) && !whole(&q.0) {
            refusals.push("must be an integer".into());
        }
        for r in refusals {
            out.push(format!(
                "{field}[{name}]: Invalid value: {:?}: {r} (the API server refuses {writes} with it): \
                 use a resource ResourceQuota counts, e.g. pods, requests.cpu, requests.memory, \
                 requests.storage, count/<resource>.<group>, with a whole number for counts",
                if r == "must be an integer" { &q.0 } else { name },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn map(entries: &[(&str, &str)]) -> ResourceMap {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    #[test]
    fn what_resourcequota_accepts_passes() {
        let ok = map(&[
            ("pods", "12"),
            ("requests.cpu", "1500m"),
            ("limits.memory", "16Gi"),
            ("requests.storage", "100Gi"),
            ("gold.storageclass.storage.k8s.io/requests.storage", "10Gi"),
            ("count/deployments.apps", "20"),
            ("count/configmaps", "2k"),
            ("requests.nvidia.com/gpu", "4"),
            ("hugepages-2Mi", "1Gi"),
            ("services.loadbalancers", "0"),
        ]);
        assert_eq!(
            problems("spec.accountQuota", Some(&ok), "x"),
            Vec::<String>::new()
        );
        assert!(problems("spec.accountQuota", None, "x").is_empty());
    }

    #[test]
    fn what_the_api_server_refuses_is_said_with_its_message() {
        let p = problems(
            "spec.accountQuota",
            Some(&map(&[("cpus", "2")])),
            "the shares",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with(
            "spec.accountQuota[cpus]: Invalid value: \"cpus\": must be a standard resource type or fully qualified"
        ));
        assert!(p[1].contains("must be a standard resource for quota"));
        // A resource that exists but is no quota resource.
        let p = problems("spec.quota", Some(&map(&[("storage", "1Gi")])), "x");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("must be a standard resource for quota"));
        // Counts are whole numbers.
        for (name, q) in [
            ("pods", "1.5"),
            ("count/secrets", "500m"),
            ("configmaps", "1500m"),
        ] {
            let p = problems("spec.accountQuota", Some(&map(&[(name, q)])), "x");
            assert_eq!(p.len(), 1, "{name}: {p:?}");
            assert!(
                p[0].starts_with(&format!(
                    "spec.accountQuota[{name}]: Invalid value: {q:?}: must be an integer"
                )),
                "{p:?}"
            );
        }
        // Not a qualified name at all.
        let p = problems("spec.accountQuota", Some(&map(&[("a/b/c", "1")])), "x");
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
