//! Covenant: a Kubernetes operator that provisions tenants and runs their lifecycle under a
//! platform's service terms.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod apply;
pub mod check;
pub mod clock;
pub mod controller;
pub mod error;
pub mod fence;
pub mod http;
pub mod metrics;
pub mod model;
pub mod run;
pub mod status;
pub mod timeline;
