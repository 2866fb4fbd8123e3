//! The control plane the tests run against: started once per test binary by `e2e/cluster/cluster.sh`
//! into a temporary directory, or the one named by `COVENANT_E2E_KUBECONFIG`. Either way the CRDs and
//! `deploy/` are applied (server-side, idempotent) and the CRDs are Established before any test runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The CRDs Covenant installs.
pub const CRDS: [&str; 5] = [
    "accounts.covenant.dev",
    "supportpackages.covenant.dev",
    "suspensions.covenant.dev",
    "deprecationnotices.covenant.dev",
    "noticeresponses.covenant.dev",
];

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The admin kubeconfig (system:masters).
    pub kubeconfig: PathBuf,
    /// The directory with `kubectl` (and `helm`).
    pub bin: PathBuf,
    /// The `cluster.sh` state directory, when known (its `logs/` hold the component logs).
    pub state_dir: Option<PathBuf>,
    /// Where the harness writes operator logs.
    pub log_dir: PathBuf,
    /// Whether this test binary started the cluster (and a watchdog stops it when the binary exits).
    pub owned: bool,
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent directory")
}

/// `target/<profile>`: where the test binary (in `deps/`) and the operator binary are.
pub fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| repo_root().join("target/debug"))
}

/// The name of this test binary without cargo's hash (`accounts`, `cluster`, ...).
pub fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_ref()
        .and_then(|e| e.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "e2e".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The cluster of this test binary, started (and set up) on first use. Panics, with the component
/// logs, when it cannot be started: a test never silently skips.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(init) {
        Ok(c) => c,
        Err(e) => panic!("the test cluster is not available:\n{e}"),
    }
}

/// Whether this binary's cluster got the CRDs and `deploy/` (through [`cluster`]).
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A cluster of this test binary's own, started on first use, WITHOUT the CRDs and `deploy/`: for tests
/// that install Covenant themselves (e.g. with Helm, whose install fails on objects it does not own).
/// Call it before anything else touches the cluster (then [`cluster`], and every helper, return the
/// same cluster). Panics when `COVENANT_E2E_KUBECONFIG` names a shared cluster (it has `deploy/`), or
/// when [`cluster`] already set this binary's cluster up.
pub fn bare_cluster() -> &'static Cluster {
    let c = match CLUSTER.get_or_init(init_bare) {
        Ok(c) => c,
        Err(e) => panic!("the test cluster is not available:\n{e}"),
    };
    assert!(
        !INSTALLED.load(std::sync::atomic::Ordering::SeqCst),
        "bare_cluster(): this binary's cluster was already set up with the CRDs and deploy/ by cluster()"
    );
    c
}

fn init_bare() -> Result<Cluster, String> {
    if env_path("COVENANT_E2E_KUBECONFIG").is_some() {
        return Err(format!(
            "{} needs a cluster of its own (it installs Covenant itself): run it without COVENANT_E2E_KUBECONFIG",
            binary_name()
        ));
    }
    let log_dir =
        env_path("COVENANT_E2E_LOG_DIR").unwrap_or_else(|| profile_dir().join("e2e-logs"));
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    start_own(log_dir)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn init() -> Result<Cluster, String> {
    let log_dir =
        env_path("COVENANT_E2E_LOG_DIR").unwrap_or_else(|| profile_dir().join("e2e-logs"));
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    let c = match env_path("COVENANT_E2E_KUBECONFIG") {
        Some(kubeconfig) => {
            if !kubeconfig.is_file() {
                return Err(format!(
                    "COVENANT_E2E_KUBECONFIG={} is not a file",
                    kubeconfig.display()
                ));
            }
            let bin = match env_path("COVENANT_E2E_BIN") {
                Some(b) => b,
                None => build_bin()?,
            };
            Cluster {
                kubeconfig,
                bin,
                state_dir: env_path("COVENANT_E2E_STATE_DIR"),
                log_dir,
                owned: false,
            }
        }
        None => start_own(log_dir)?,
    };
    c.install()?;
    INSTALLED.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(c)
}

/// `e2e/cluster/build.sh`: prints the directory of the built control-plane binaries and kubectl.
fn build_bin() -> Result<PathBuf, String> {
    let out = Command::new("bash")
        .arg(repo_root().join("e2e/cluster/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run e2e/cluster/build.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("e2e/cluster/build.sh failed: {}", out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Starts a cluster of our own in a fresh temporary directory, and a watchdog that runs
/// `cluster.sh down` on it once this test binary has exited (however it exits).
fn start_own(log_dir: PathBuf) -> Result<Cluster, String> {
    let script = repo_root().join("e2e/cluster/cluster.sh");
    let state = std::env::temp_dir().join(format!(
        "covenant-e2e-{}-{}-{}",
        binary_name(),
        std::process::id(),
        crate::unique()
    ));
    let out = Command::new("bash")
        .arg(&script)
        .arg("up")
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    // The watchdog first, so even a half-started cluster is stopped.
    spawn_down_watchdog(&script, &state);
    if !out.status.success() {
        return Err(format!(
            "`cluster.sh up {}` failed ({}):\n{}\n{}\n{}",
            state.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            component_logs(&state, 60)
        ));
    }
    let env = std::fs::read_to_string(state.join("env"))
        .map_err(|e| format!("cannot read {}/env: {e}", state.display()))?;
    let bin = env
        .lines()
        .find_map(|l| l.strip_prefix("BIN="))
        .map(|b| PathBuf::from(b.trim_matches('\'').trim_matches('"')))
        .ok_or_else(|| format!("no BIN= in {}/env", state.display()))?;
    // Record where the cluster is, for humans and scripts that clean up after a crash.
    let registry = log_dir.join("clusters.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&registry)
    {
        let _ = writeln!(f, "{} {}", std::process::id(), state.display());
    }
    Ok(Cluster {
        kubeconfig: state.join("kubeconfig"),
        bin,
        state_dir: Some(state),
        log_dir,
        owned: true,
    })
}

/// A detached process (own session, so a Ctrl-C of the tests does not stop it first) that waits for
/// this process to end, then stops the cluster.
fn spawn_down_watchdog(script: &Path, state: &Path) {
    let r = Command::new("setsid")
        .arg("bash")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$2" down "$3" >/dev/null 2>&1"#)
        .arg("covenant-e2e-cluster-watchdog")
        .arg(std::process::id().to_string())
        .arg(script)
        .arg(state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = r {
        eprintln!(
            "[e2e] cannot start the watchdog that stops the cluster at exit ({e}); stop it with: bash {} down {}",
            script.display(),
            state.display()
        );
    }
}

/// The last `lines` lines of each component log in a `cluster.sh` state directory.
pub fn component_logs(state: &Path, lines: usize) -> String {
    let mut s = String::new();
    for c in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        let p = state.join("logs").join(format!("{c}.log"));
        if let Ok(text) = std::fs::read_to_string(&p) {
            s.push_str(&format!(
                "----- last {lines} lines of {} -----\n",
                p.display()
            ));
            s.push_str(&tail(&text, lines));
            s.push('\n');
        }
    }
    s
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a kubectl run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// The command line (for messages).
    pub command: String,
    /// Whether it exited 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// Panics with the output unless kubectl succeeded; returns its stdout.
    #[track_caller]
    pub fn expect_ok(&self) -> &str {
        assert!(
            self.success,
            "`{}` failed:\n{}\n{}",
            self.command, self.stdout, self.stderr
        );
        &self.stdout
    }
}

impl Cluster {
    /// Runs the built kubectl against this cluster (admin).
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        let kubectl = self.bin.join("kubectl");
        let command = format!("kubectl {}", args.join(" "));
        let mut cmd = Command::new(&kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=60s")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return KubectlOutput {
                    command,
                    success: false,
                    stdout: String::new(),
                    stderr: format!("cannot run {}: {e}", kubectl.display()),
                };
            }
        };
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(input.as_bytes());
        }
        match child.wait_with_output() {
            Ok(out) => KubectlOutput {
                command,
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => KubectlOutput {
                command,
                success: false,
                stdout: String::new(),
                stderr: e.to_string(),
            },
        }
    }

    /// Applies the CRDs and `deploy/` (idempotent: also to put them back after a test deleted the
    /// CRDs), waits for the CRDs to be Established and the admission policies to be in force.
    pub fn install(&self) -> Result<(), String> {
        let root = repo_root();
        let crds = root.join("crds");
        let deploy = root.join("deploy");
        let run = |args: &[&str]| {
            let out = self.kubectl(args);
            if out.success {
                Ok(out)
            } else {
                Err(format!(
                    "`{}` failed:\n{}\n{}{}",
                    out.command,
                    out.stdout,
                    out.stderr,
                    self.state_dir
                        .as_deref()
                        .map(|s| component_logs(s, 40))
                        .unwrap_or_default()
                ))
            }
        };
        run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=covenant-e2e-install",
            "-f",
            &crds.to_string_lossy(),
        ])?;
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        let names: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
        wait.extend(names.iter().map(String::as_str));
        run(&wait)?;
        // After the CRDs: deploy/default-package.yaml is a SupportPackage.
        run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=covenant-e2e-install",
            "-f",
            &deploy.to_string_lossy(),
        ])?;
        self.wait_policies_in_force()?;
        self.wait_quota_counts_answers()
    }

    /// Waits until the quota controller counts NoticeResponses. It discovers new kinds every 30 s,
    /// and computes a quota's usage of a kind it does not know yet as nothing at all: the quota
    /// `covenant-bounds` of a namespace made before that would not count answers until its next full
    /// resync (5 minutes), and admission refuses every answer meanwhile ("status unknown for quota").
    /// A probe quota is made again until its usage counts them (in the policy probe's namespace).
    fn wait_quota_counts_answers(&self) -> Result<(), String> {
        const PROBE: &str = "covenant-e2e-policy-probe";
        const KEY: &str = "count/noticeresponses.covenant.dev";
        let quota = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\",\"metadata\":{{\"name\":\"answers-probe\",\"namespace\":\"{PROBE}\"}},\"spec\":{{\"hard\":{{\"{KEY}\":\"1\"}}}}}}"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let out = self.kubectl_stdin(&["create", "-f", "-"], Some(&quota));
            if !out.success && !out.stderr.contains("AlreadyExists") {
                return Err(format!("cannot create the quota probe: {}", out.stderr));
            }
            // The controller computes a new quota's usage within a moment.
            let computed = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while std::time::Instant::now() < computed {
                let out = self.kubectl(&[
                    "get",
                    "resourcequota",
                    "answers-probe",
                    "-n",
                    PROBE,
                    "-o",
                    "jsonpath={.status.used}",
                ]);
                if out.success && out.stdout.contains(KEY) {
                    self.kubectl(&["delete", "resourcequota", "answers-probe", "-n", PROBE]);
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            self.kubectl(&[
                "delete",
                "resourcequota",
                "answers-probe",
                "-n",
                PROBE,
                "--wait=true",
            ]);
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the quota controller does not count {KEY} after 90 s: {}",
                    self.state_dir
                        .as_deref()
                        .map(|s| component_logs(s, 40))
                        .unwrap_or_default()
                ));
            }
        }
    }

    /// Waits until the API server enforces the admission policies just applied (it loads them
    /// asynchronously): a dry-run RoleBinding naming a subject nobody consented to, in a namespace
    /// labelled as a tenant's but never reconciled, must be refused. Tests that start before would see
    /// requests allowed that the policies refuse.
    fn wait_policies_in_force(&self) -> Result<(), String> {
        const PROBE: &str = "covenant-e2e-policy-probe";
        let ns = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{PROBE}\",\"labels\":{{\"covenant.dev/account\":\"{PROBE}\"}}}}}}"
        );
        let out = self.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&ns));
        if !out.success {
            return Err(format!(
                "cannot create the policy probe namespace: {}",
                out.stderr
            ));
        }
        let rb = format!(
            "{{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\",\"metadata\":{{\"name\":\"probe\",\"namespace\":\"{PROBE}\"}},\"roleRef\":{{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"view\"}},\"subjects\":[{{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"User\",\"name\":\"nobody\"}}]}}"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = self.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], Some(&rb));
            if !out.success && out.stderr.contains("covenant-tenant-rolebindings") {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the admission policies of deploy/ are not in force after 60 s: {} {}",
                    out.stdout, out.stderr
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Stops one component (`etcd`, `kube-apiserver` or `kube-controller-manager`) of this cluster:
    /// a fault for the operator to survive. Panics when the cluster's state directory is unknown or the
    /// component does not stop.
    #[track_caller]
    pub fn stop_component(&self, name: &str) {
        self.component("stop", name)
    }

    /// Starts a component stopped by [`Cluster::stop_component`] again, with the same command line
    /// (so the same ports and data). Returns as soon as the process runs, not when it is ready.
    #[track_caller]
    pub fn start_component(&self, name: &str) {
        self.component("start", name)
    }

    #[track_caller]
    fn component(&self, action: &str, name: &str) {
        let state = self.state_dir.as_deref().unwrap_or_else(|| {
            panic!("{action} {name}: this cluster's state directory is unknown")
        });
        let out = Command::new("bash")
            .arg(repo_root().join("e2e/cluster/cluster.sh"))
            .args([action.as_ref(), state.as_os_str(), name.as_ref()])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cluster.sh {action}: {e}"));
        assert!(
            out.status.success(),
            "`cluster.sh {action} {} {name}` failed ({}):\n{}{}",
            state.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The component logs of this cluster (when its state directory is known).
    pub fn component_logs(&self, lines: usize) -> String {
        self.state_dir
            .as_deref()
            .map(|s| component_logs(s, lines))
            .unwrap_or_default()
    }
}

/// Runs the built kubectl against the test cluster (admin).
pub fn kubectl(args: &[&str]) -> KubectlOutput {
    cluster().kubectl(args)
}

/// Runs kubectl with `stdin` as its standard input.
pub fn kubectl_stdin(args: &[&str], stdin: &str) -> KubectlOutput {
    cluster().kubectl_stdin(args, Some(stdin))
}
