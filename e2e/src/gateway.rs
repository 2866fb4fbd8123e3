//! The Gateway API's CRDs for the e2e suite `gateway`: the standard channel of the Go module
//! sigs.k8s.io/gateway-api at the version `e2e/cluster/versions.env` pins, fetched and cached by
//! `e2e/tools/gateway-api.sh` (the Go module proxy). Found the way the judges are:
//! `COVENANT_E2E_GATEWAY_API` names their directory, else the script prints it (fetching them on the
//! machine's first run, failing loudly if it cannot).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::cluster::cluster;

static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The route kinds whose hostnames Covenant claims, as `<plural>.<group>` (their CRDs' names).
pub const ROUTE_CRDS: [&str; 2] = [
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
];

/// The directory of the standard-channel CRD files.
pub fn crds_dir() -> Result<PathBuf, String> {
    DIR.get_or_init(find).clone()
}

fn find() -> Result<PathBuf, String> {
    crate::tools::dir_from("COVENANT_E2E_GATEWAY_API", "e2e/tools/gateway-api.sh")
}

/// Whether this binary's cluster serves `crd` (`<plural>.<group>`), by discovery (`kubectl
/// api-resources`).
pub fn served(plural: &str) -> bool {
    let out = cluster().kubectl(&[
        "api-resources",
        "--api-group=gateway.networking.k8s.io",
        "-o",
        "name",
    ]);
    out.stdout.lines().any(|l| l.trim() == plural)
}

/// Installs the standard-channel CRDs into this binary's cluster (server-side: the HTTPRoute CRD is
/// too large for client-side apply's annotation) and waits until they are established. Panics, saying
/// why, when they cannot be fetched or installed.
pub fn install_crds() {
    let dir = crds_dir().unwrap_or_else(|e| panic!("the Gateway API CRDs are not available: {e}"));
    let dir = dir.display().to_string();
    cluster()
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=covenant-e2e",
            "-f",
            &dir,
        ])
        .expect_ok();
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = ROUTE_CRDS
        .iter()
        .map(|c| format!("crd/{c}"))
        .chain(["crd/gateways.gateway.networking.k8s.io".to_string()])
        .collect();
    args.extend(names.iter().map(String::as_str));
    cluster().kubectl(&args).expect_ok();
}
