//! End-to-end test harness of Covenant: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager from `e2e/cluster/cluster.sh`), the CRDs and `deploy/` manifests, and the
//! operator binary running as a child process.
//!
//! One cluster and one operator per test binary, shared by its tests (which run in parallel and so
//! name everything with a random suffix). With `COVENANT_E2E_KUBECONFIG` set, the tests use that
//! cluster instead of starting one (`e2e/run.sh` starts one cluster for every test binary).
//!
//! Environment:
//! - `COVENANT_E2E_KUBECONFIG`: use this cluster (admin kubeconfig) instead of starting one.
//! - `COVENANT_E2E_STATE_DIR`: that cluster's `cluster.sh` state directory (for its component logs).
//! - `COVENANT_E2E_BIN`: the directory holding `kubectl` (default: what `e2e/cluster/build.sh` prints).
//! - `COVENANT_E2E_TOOLS`: the directory holding the judges `netpol-oracle` and `kstatus` ([`netpol`],
//!   [`kstatus`]) and `crane` ([`release::Registry`]); default: what `e2e/tools/build.sh` prints.
//! - `COVENANT_IMAGE_ARCHIVE`: the image archive of `hack/build-image.sh` ([`release::image_archive`]).
//! - `COVENANT_E2E_LOG_DIR`: where operator logs go (default: `target/<profile>/e2e-logs`).
//! - `COVENANT_BIN`: the operator binary (default: `target/<profile>/covenant`, from
//!   `cargo build -p covenant`).
//! - `COVENANT_E2E_OPERATOR_IDENTITY`: `serviceaccount` (default: the operator acts as
//!   `system:serviceaccount:covenant-system:covenant`, so `deploy/operator-rbac.yaml` is exercised) or
//!   `admin`.

pub mod cluster;
pub mod ctx;
pub mod fixtures;
pub mod gateway;
pub mod k8s;
pub mod kstatus;
pub mod netpol;
pub mod operator;
pub mod release;
pub mod tenant;
pub mod timing;
mod tools;

pub use cluster::{Cluster, KubectlOutput, cluster, kubectl, kubectl_stdin, repo_root};
pub use ctx::{Manifest, TestCtx};
pub use k8s::{
    apply_yaml, can, client, condition, eventually, impersonate, wait_account, wait_account_ready,
    wait_for, wait_gone,
};
pub use tenant::{Tenant, TenantBuilder};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The default timeout of a wait.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(250);

/// A random lowercase alphanumeric string of 5 characters (for unique, DNS-1123-safe names).
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    // splitmix64 of time, pid and a counter.
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::new();
    // First a letter, so a suffix is never all digits.
    s.push(ALPHABET[(x % 26) as usize] as char);
    x /= 26;
    for _ in 0..4 {
        s.push(ALPHABET[(x % 36) as usize] as char);
        x /= 36;
    }
    s
}
