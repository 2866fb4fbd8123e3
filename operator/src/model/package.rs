//! SupportPackage resolution (§3): the package an account is on, and the package's own status.

use kube::ResourceExt;

use crate::api::{Account, LimitsSpec, ResourceMap, SupportPackage};
use crate::status::Cond;

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

/// The package's `Ready` condition: False when it is one of several defaults.
pub fn package_ready(package: &SupportPackage, packages: &[SupportPackage]) -> Cond {
    let d = defaults(packages);
    if package.spec.default && d.len() > 1 {
        let names: Vec<String> = d.iter().map(|p| p.name_any()).collect();
        Cond::new(
            "Ready",
            false,
            "ConflictingDefault",
            format!(
                "several packages have default: true ({}): accounts without a package cannot be placed; keep exactly one default",
                names.join(", ")
            ),
        )
    } else {
        Cond::new("Ready", true, "Ready", "the package is usable")
    }
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
