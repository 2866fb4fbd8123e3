//! Covenant: a Kubernetes operator that provisions tenants and runs their lifecycle under a
//! platform's service terms.
#![forbid(unsafe_code)]

pub mod api;
pub mod check;
pub mod model;
pub mod status;
