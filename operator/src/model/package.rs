//! SupportPackage resolution (§3): the package an account is on, and the package's own status.

use kube::ResourceExt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::api::{Account, LimitsSpec, PLATFORM_SELECTOR_KEYS, ResourceMap, SupportPackage};
use crate::model::account::NAMESPACE_NAME_LABEL;
use crate::status::{Cond, reasons, types};

/// Why an account's package cannot be resolved; the message says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// The account names a package that does not exist.
    #[error("SupportPackage {0:?} does not exist: create it or change spec.supportPackage")]
    NotFound(String),
    /// The account names none and no package is the default.
    #[error(
        "spec.supportPackage is not set and no SupportPackage has default: true: mark one package as the default or name a package"
    )]
    NoDefault,
    /// The account names none and several packages claim to be the default.
    #[error(
        "spec.supportPackage is not set and several SupportPackages have default: true ({0}): keep exactly one default"
    )]
    ConflictingDefaults(String),
}

/// The packages marked `default: true`, by name.
pub fn defaults(packages: &[SupportPackage]) -> Vec<&SupportPackage> {
    let mut d: Vec<&SupportPackage> = packages.iter().filter(|p| p.spec.default).collect();
    d.sort_by_key(|p| p.name_any());
    d
}

/// The package `account` is on: the one it names, or the single default (§3).
pub fn resolve<'a>(
    account: &Account,
    packages: &'a [SupportPackage],
) -> Result<&'a SupportPackage, PackageError> {
    match &account.spec.support_package {
        Some(name) => packages
            .iter()
            .find(|p| &p.name_any() == name)
            .ok_or_else(|| PackageError::NotFound(name.clone())),
        None => match defaults(packages).as_slice() {
            [] => Err(PackageError::NoDefault),
            [one] => Ok(one),
            many => Err(PackageError::ConflictingDefaults(
                many.iter()
                    .map(|p| p.name_any())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        },
    }
}

/// The quota of each of the account's namespaces: the package's, with the account's entries on top.
pub fn effective_quota(account: &Account, package: &SupportPackage) -> ResourceMap {
    let mut q = package.spec.quota.clone().unwrap_or_default();
    if let Some(o) = &account.spec.quota {
        q.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    q
}

/// The LimitRange container defaults: the package's, with the account's entries on top.
pub fn effective_limits(account: &Account, package: &SupportPackage) -> LimitsSpec {
    let base = package.spec.limits.clone().unwrap_or_default();
    match &account.spec.limits {
        Some(o) => base.overlay(o),
        None => base,
    }
}

/// The reason of a package's `Ready=False` (and of its accounts' `NetworkIsolated` message) when a
/// selector of `network.ingressFrom` is refused.
pub const REFUSED_PLATFORM_SELECTOR: &str = "RefusedPlatformSelector";

/// The package's `Ready` condition: False when it is one of several defaults, when its limits do not
/// fit in a LimitRange (`defaultRequest ≤ default ≤ max`), or when a selector of its
/// `network.ingressFrom` is refused (it is not applied: see [`refused_ingress_from`]).
pub fn package_ready(package: &SupportPackage, packages: &[SupportPackage]) -> Cond {
    let d = defaults(packages);
    if package.spec.default && d.len() > 1 {
        let names: Vec<String> = d.iter().map(|p| p.name_any()).collect();
        Cond::new(
            types::READY,
            false,
            "ConflictingDefault",
            format!(
                "several packages have default: true ({}): accounts without a package cannot be placed; keep exactly one default",
                names.join(", ")
            ),
        )
    } else {
        let problems = package_limit_problems(package);
        let selectors = refused_ingress_from(package);
        if !problems.is_empty() {
            Cond::new(
                types::READY,
                false,
                reasons::INVALID_LIMITS,
                problems.join("; "),
            )
        } else if !selectors.is_empty() {
            Cond::new(
                types::READY,
                false,
                REFUSED_PLATFORM_SELECTOR,
                selectors.join("; "),
            )
        } else {
            Cond::new(types::READY, true, reasons::READY, "the package is usable")
        }
    }
}

/// Why a platform selector of `network.ingressFrom` is refused (the rules of the CRD's CEL, for
/// packages stored before those rules existed), or `None` when it is acceptable: every key is
/// `kubernetes.io/metadata.name` or a `covenant.dev/*` label, every expression is `In` with values (or
/// `Exists` on a `covenant.dev/*` key), and it is not empty.
pub fn refused_selector(s: &LabelSelector) -> Option<String> {
    let allowed = |k: &str| k == NAMESPACE_NAME_LABEL || k.starts_with("covenant.dev/");
    let labels = s.match_labels.as_ref().filter(|m| !m.is_empty());
    let exprs = s.match_expressions.as_ref().filter(|e| !e.is_empty());
    if labels.is_none() && exprs.is_none() {
        return Some("it is empty, which selects every namespace".to_string());
    }
    if let Some(k) = labels
        .into_iter()
        .flat_map(|m| m.keys())
        .find(|k| !allowed(k))
    {
        return Some(format!(
            "matchLabels uses the label {k:?}, which anyone who may patch a namespace can set"
        ));
    }
    for e in exprs.into_iter().flatten() {
        if !allowed(&e.key) {
            return Some(format!(
                "matchExpressions uses the label {:?}, which anyone who may patch a namespace can set",
                e.key
            ));
        }
        let values = e.values.as_ref().map_or(0, Vec::len);
        let ok = match e.operator.as_str() {
            "In" => values > 0,
            "Exists" => e.key.starts_with("covenant.dev/") && values == 0,
            _ => false,
        };
        if !ok {
            return Some(format!(
                "matchExpressions {:?} {} is not allowed: use In with values (or Exists on a covenant.dev/* key)",
                e.key, e.operator
            ));
        }
    }
    None
}

/// What is wrong with the package's `network.ingressFrom`, one message per refused selector, each
/// saying what to change. Such a selector is never applied (it lets nothing in).
pub fn refused_ingress_from(package: &SupportPackage) -> Vec<String> {
    package
        .spec
        .network
        .iter()
        .flat_map(|n| n.ingress_from.iter().enumerate())
        .filter_map(|(i, s)| {
            refused_selector(s).map(|why| {
                format!(
                    "spec.network.ingressFrom[{i}] of package {:?} is not applied: {why}; select platform namespaces only by {PLATFORM_SELECTOR_KEYS}",
                    package.name_any()
                )
            })
        })
        .collect()
}

/// The package's platform selectors as the tenants' isolation policy uses them: the refused ones left
/// out, and each narrowed to namespaces that belong to no account (`covenant.dev/account` absent), so
/// a tenant's own namespace — whatever its name — is never a platform namespace.
pub fn platform_selectors(package: &SupportPackage) -> Vec<LabelSelector> {
    package
        .spec
        .network
        .iter()
        .flat_map(|n| n.ingress_from.iter())
        .filter(|s| refused_selector(s).is_none())
        .map(|s| {
            let mut s = s.clone();
            s.match_expressions
                .get_or_insert_default()
                .push(LabelSelectorRequirement {
                    key: crate::api::ACCOUNT_LABEL.to_string(),
                    operator: "DoesNotExist".to_string(),
                    values: None,
                });
            s
        })
        .collect()
}

/// How many accounts are on `package`.
pub fn account_count<'a>(
    package: &SupportPackage,
    accounts: impl IntoIterator<Item = &'a Account>,
    packages: &[SupportPackage],
) -> i32 {
    let name = package.name_any();
    let n = accounts
        .into_iter()
        .filter(|a| resolve(a, packages).is_ok_and(|p| p.name_any() == name))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The LimitRange fields in the order a LimitRange needs them: `defaultRequest ≤ default ≤ max`.
const LIMIT_ORDER: [(&str, &str); 3] = [
    ("defaultRequest", "default"),
    ("default", "max"),
    ("defaultRequest", "max"),
];

fn limit_field<'a>(l: &'a LimitsSpec, field: &str) -> Option<&'a ResourceMap> {
    match field {
        "default" => l.default.as_ref(),
        "defaultRequest" => l.default_request.as_ref(),
        _ => l.max.as_ref(),
    }
}

/// Whether quantity `a` is more than `b` (both as written; a value that is not a quantity is left to
/// the schema, which refuses it).
fn exceeds(a: &str, b: &str) -> bool {
    match (super::quantity::value(a), super::quantity::value(b)) {
        (Some(x), Some(y)) => x > y && !super::quantity::equal(a, b),
        _ => false,
    }
}

/// Where one of the effective limits comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Account,
    Package,
}

/// Every pair of the effective limits that a LimitRange refuses (`defaultRequest ≤ default ≤ max`, per
/// resource), as messages naming the field to fix. `overrides` are the account's own limits (None when
/// judging a package by itself: then every field is named as `spec.limits...` of the package).
fn limit_order_problems(
    base: &LimitsSpec,
    overrides: Option<&LimitsSpec>,
    package: &str,
) -> Vec<String> {
    let own = overrides.cloned().unwrap_or_default();
    let effective = base.overlay(&own);
    let source = |field: &str, resource: &str| match overrides {
        None => Source::Account,
        Some(o) if limit_field(o, field).is_some_and(|m| m.contains_key(resource)) => {
            Source::Account
        }
        Some(_) => Source::Package,
    };
    let mut problems = Vec::new();
    for (low, high) in LIMIT_ORDER {
        let (Some(lows), Some(highs)) =
            (limit_field(&effective, low), limit_field(&effective, high))
        else {
            continue;
        };
        // defaultRequest ≤ max follows from the other two where `default` names the resource.
        let through_default = |r: &str| {
            low == "defaultRequest"
                && high == "max"
                && limit_field(&effective, "default").is_some_and(|d| d.contains_key(r))
        };
        for (resource, lv) in lows {
            let Some(hv) = highs.get(resource) else {
                continue;
            };
            if through_default(resource) || !exceeds(&lv.0, &hv.0) {
                continue;
            }
            let (lv, hv) = (&lv.0, &hv.0);
            let message = match (source(low, resource), source(high, resource)) {
                (Source::Account, Source::Account) => format!(
                    "spec.limits.{low}.{resource} {lv} is above spec.limits.{high}.{resource} {hv}"
                ),
                (Source::Package, Source::Account) => {
                    format!("spec.limits.{high}.{resource} {hv} is below the package's {low} {lv}")
                }
                (Source::Account, Source::Package) => {
                    format!("spec.limits.{low}.{resource} {lv} is above the package's {high} {hv}")
                }
                (Source::Package, Source::Package) => format!(
                    "the limits of SupportPackage {package:?} do not fit together: its {low}.{resource} {lv} is above its {high}.{resource} {hv}"
                ),
            };
            problems.push(format!(
                "{message} (a LimitRange needs defaultRequest ≤ default ≤ max): change one of them"
            ));
        }
    }
    problems
}

/// What the API server would refuse in the LimitRange of an account on `package`: the package's limits
/// with the account's on top must keep `defaultRequest ≤ default ≤ max` for every resource. Each
/// message names the field to fix, e.g. `spec.limits.max.cpu 250m is below the package's default 500m`.
pub fn account_limit_problems(account: &Account, package: &SupportPackage) -> Vec<String> {
    let base = package.spec.limits.clone().unwrap_or_default();
    limit_order_problems(
        &base,
        Some(&account.spec.limits.clone().unwrap_or_default()),
        &package.name_any(),
    )
}

/// The same rule for a package's own limits (`spec.limits...` of the package).
pub fn package_limit_problems(package: &SupportPackage) -> Vec<String> {
    let base = package.spec.limits.clone().unwrap_or_default();
    limit_order_problems(&base, None, &package.name_any())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::api::{AccountSpec, SupportPackageSpec};

    fn map(entries: &[(&str, &str)]) -> Option<ResourceMap> {
        Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    /// The package of the examples: default 500m, defaultRequest 100m, max 2 (cpu); 512Mi, 128Mi, 4Gi.
    fn standard() -> SupportPackage {
        SupportPackage::new(
            "standard",
            SupportPackageSpec {
                limits: Some(LimitsSpec {
                    default: map(&[("cpu", "500m"), ("memory", "512Mi")]),
                    default_request: map(&[("cpu", "100m"), ("memory", "128Mi")]),
                    max: map(&[("cpu", "2"), ("memory", "4Gi")]),
                }),
                ..Default::default()
            },
        )
    }

    fn account(limits: LimitsSpec) -> Account {
        Account::new(
            "acme",
            AccountSpec {
                limits: Some(limits),
                ..Default::default()
            },
        )
    }

    #[test]
    fn an_override_below_the_packages_default_names_the_field_and_both_values() {
        let a = account(LimitsSpec {
            max: map(&[("cpu", "250m")]),
            ..Default::default()
        });
        let problems = account_limit_problems(&a, &standard());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.limits.max.cpu 250m is below the package's default 500m"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_override_above_the_packages_bound_and_one_above_another_override() {
        let a = account(LimitsSpec {
            default_request: map(&[("cpu", "1")]),
            default: map(&[("memory", "8Gi")]),
            max: map(&[("memory", "6Gi")]),
        });
        let problems = account_limit_problems(&a, &standard());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| {
            p.starts_with("spec.limits.defaultRequest.cpu 1 is above the package's default 500m")
        }));
        assert!(problems.iter().any(|p| {
            p.starts_with("spec.limits.default.memory 8Gi is above spec.limits.max.memory 6Gi")
        }));
    }

    #[test]
    fn equal_quantities_written_differently_and_a_higher_max_are_fine() {
        let a = account(LimitsSpec {
            default: map(&[("cpu", "0.5"), ("memory", "0.5Gi")]),
            default_request: map(&[("cpu", "500m"), ("memory", "512Mi")]),
            max: map(&[("cpu", "4"), ("memory", "512Mi")]),
        });
        assert_eq!(
            account_limit_problems(&a, &standard()),
            Vec::<String>::new()
        );
        assert_eq!(package_limit_problems(&standard()), Vec::<String>::new());
    }

    #[test]
    fn default_request_is_held_to_max_where_no_default_names_the_resource() {
        let p = SupportPackage::new(
            "p",
            SupportPackageSpec {
                limits: Some(LimitsSpec {
                    default_request: map(&[("cpu", "3")]),
                    max: map(&[("cpu", "2")]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let problems = package_limit_problems(&p);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("spec.limits.defaultRequest.cpu 3 is above spec.limits.max.cpu 2")
        );
        // The package is not Ready, and an account on it is told that the package is at fault.
        let ready = package_ready(&p, std::slice::from_ref(&p));
        assert!(!ready.status);
        assert_eq!(ready.reason, "InvalidLimits");
        let a = account(LimitsSpec::default());
        let problems = account_limit_problems(&a, &p);
        assert!(
            problems[0].starts_with("the limits of SupportPackage \"p\" do not fit together: its defaultRequest.cpu 3 is above its max.cpu 2"),
            "{problems:?}"
        );
    }
}
