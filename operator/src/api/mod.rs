//! The four `covenant.dev/v1alpha1` kinds. The Rust types are the source of truth: the CRDs in
//! `crds/` are generated from them (`covenant crd`) and their schema and CEL rules are what both the
//! API server and `covenant check` enforce.

mod account;
mod common;
mod notice;
pub mod schema;
mod support_package;
mod suspension;

pub use account::*;
pub use common::*;
pub use notice::*;
pub use support_package::*;
pub use suspension::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Covenant kind.
pub const GROUP: &str = "covenant.dev";
/// The label that marks every object Covenant manages with the account it belongs to.
pub const ACCOUNT_LABEL: &str = "covenant.dev/account";
/// The label on a released namespace: unix seconds after which Covenant deletes it (§6).
pub const RETAINED_UNTIL_LABEL: &str = "covenant.dev/retained-until";
/// The field manager of every server-side apply Covenant makes.
pub const FIELD_MANAGER: &str = "covenant";

/// All four CRDs, in a stable order (the order of `crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Account::crd(),
        SupportPackage::crd(),
        Suspension::crd(),
        DeprecationNotice::crd(),
    ]
}
