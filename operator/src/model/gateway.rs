//! The Gateway API objects a tenant writes and the operator reads, bounded in number by the API server
//! like Ingresses: the `covenant-bounds` quota of every tenant namespace counts them too (a
//! ResourceQuota counts objects of any resource, served or not: where the Gateway API is not served
//! these keys bound nothing and cost nothing).

use crate::api::ResourceMap;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// How many of each a namespace may hold unless the package's or the account's `quota` names the same
/// key. HTTPRoutes and GRPCRoutes are cached for their hostnames (at most 16 each,
/// `covenant-route-hostnames-bounded`) and recorded in the namespace's route claims: 40 + 40 routes of
/// 16 maximal hostnames make as many keys as 40 Ingresses of 32 (the bound the Ingresses' record is
/// shown writable at). Gateways are cached for their listeners' hostnames (at most 64, the Gateway
/// API's schema) and recorded apart: 10 of them make at most half the keys of the routes' record.
pub const BOUNDED_COUNTS: [(&str, &str); 3] = [
    ("count/httproutes.gateway.networking.k8s.io", "40"),
    ("count/grpcroutes.gateway.networking.k8s.io", "40"),
    ("count/gateways.gateway.networking.k8s.io", "10"),
];

/// Adds [`BOUNDED_COUNTS`] to the `hard` of a bounds quota, each the value `quota` (the namespace's
/// package and account quota) names for it, else the default; a key `hard` already holds is kept.
pub fn with_bounds(hard: &mut ResourceMap, quota: Option<&ResourceMap>) {
    for (key, default) in BOUNDED_COUNTS {
        if hard.contains_key(key) {
            continue;
        }
        let value = quota
            .and_then(|q| q.get(key).cloned())
            .unwrap_or_else(|| Quantity(default.into()));
        hard.insert(key.to_string(), value);
    }
}

/// Adds [`BOUNDED_COUNTS`] to each bounds quota of `desired`, each overridden by the same key of the
/// namespace's package quota (`covenant-quota`, the package's with the account's on top).
pub fn bound(desired: &mut crate::model::account::Desired) {
    use crate::model::account::{BOUNDS_QUOTA_NAME, QUOTA_NAME};
    let quotas: std::collections::BTreeMap<String, ResourceMap> = desired
        .quotas
        .iter()
        .filter(|q| q.metadata.name.as_deref() == Some(QUOTA_NAME))
        .filter_map(|q| {
            Some((
                q.metadata.namespace.clone()?,
                q.spec.as_ref()?.hard.clone()?,
            ))
        })
        .collect();
    for q in &mut desired.quotas {
        if q.metadata.name.as_deref() != Some(BOUNDS_QUOTA_NAME) {
            continue;
        }
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        if let Some(hard) = q.spec.as_mut().and_then(|s| s.hard.as_mut()) {
            with_bounds(hard, quotas.get(&ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_count_routes_and_gateways_unless_the_quota_sets_them() {
        let mut hard = ResourceMap::from([(
            "count/ingresses.networking.k8s.io".to_string(),
            Quantity("40".into()),
        )]);
        let quota = ResourceMap::from([(
            "count/httproutes.gateway.networking.k8s.io".to_string(),
            Quantity("5".into()),
        )]);
        with_bounds(&mut hard, Some(&quota));
        let get = |k: &str| hard.get(k).map(|q| q.0.clone());
        assert_eq!(
            get("count/httproutes.gateway.networking.k8s.io").as_deref(),
            Some("5")
        );
        assert_eq!(
            get("count/grpcroutes.gateway.networking.k8s.io").as_deref(),
            Some("40")
        );
        assert_eq!(
            get("count/gateways.gateway.networking.k8s.io").as_deref(),
            Some("10")
        );
        assert_eq!(
            get("count/ingresses.networking.k8s.io").as_deref(),
            Some("40")
        );
    }
}
