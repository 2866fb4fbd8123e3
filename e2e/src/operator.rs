//! The operator under test: `covenant run` as a child process of the test binary, logging to a file,
//! with its `/readyz` and `/metrics` on a free loopback port.
//!
//! A stray operator never outlives the tests: each one has a watchdog process that kills it (SIGKILL)
//! as soon as the test binary is gone, its pid is recorded in `<log dir>/operator.pids` (for
//! `e2e/run.sh`), and [`Operator`] kills it when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, binary_name, cluster, profile_dir, tail};

/// How long the operator may take to answer 200 on `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The identity the operator uses by default: its ServiceAccount from `deploy/operator-rbac.yaml`.
pub const OPERATOR_SERVICEACCOUNT: &str = "system:serviceaccount:covenant-system:covenant";

/// A handle on the operator process: [`Operator::kill`] (SIGKILL, like a crashed pod) and
/// [`Operator::start`] (a new process, waited for until ready) for restart tests.
#[derive(Debug)]
pub struct Operator {
    binary: PathBuf,
    kubeconfig: PathBuf,
    log: PathBuf,
    pids: PathBuf,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    starts: u32,
    /// Arguments after `run --metrics-addr ADDR` (see [`Operator::custom`]).
    extra_args: Vec<String>,
    /// Extra environment variables (see [`Operator::custom`]).
    env: Vec<(String, String)>,
}

impl Operator {
    fn new(c: &Cluster) -> Result<Self, String> {
        let stem = format!("operator-{}-{}", binary_name(), std::process::id());
        let mut op = Operator::blank(c, &stem);
        op.kubeconfig = c.log_dir.join(format!("{stem}.kubeconfig"));
        let as_admin = std::env::var("COVENANT_E2E_OPERATOR_IDENTITY").is_ok_and(|v| v == "admin");
        write_operator_kubeconfig(&c.kubeconfig, &op.kubeconfig, as_admin)?;
        Ok(op)
    }

    /// An operator process of a test's own making, not started yet: it uses `kubeconfig` as it is
    /// (e.g. a ServiceAccount token's), gets `extra_args` after `run --metrics-addr ADDR` (e.g.
    /// `--leader-elect`) and `env` (e.g. `POD_NAME`), and logs to
    /// `<log dir>/operator-<binary>-<pid>-<name>.log`. Like the harness's operator it is recorded in
    /// `operator.pids`, has a kill watchdog, and is killed when dropped. Start it with
    /// [`Operator::start`] (waits for `/readyz`) or [`Operator::start_live`] (waits for `/livez` only,
    /// e.g. a leader-election follower).
    pub fn custom(
        c: &Cluster,
        name: &str,
        kubeconfig: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut op = Operator::new_unconfigured(c, name);
        op.kubeconfig = kubeconfig.to_path_buf();
        op.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        op.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(op)
    }

    /// Runs `binary` instead of the harness's (`COVENANT_BIN`), e.g. one taken out of the container
    /// image.
    pub fn with_binary(mut self, binary: &Path) -> Self {
        self.binary = binary.to_path_buf();
        self
    }

    /// What [`Operator::custom`] starts from: no kubeconfig, arguments or environment yet.
    fn new_unconfigured(c: &Cluster, name: &str) -> Self {
        let stem = format!("operator-{}-{}-{name}", binary_name(), std::process::id());
        Operator::blank(c, &stem)
    }

    /// A handle that has started nothing, logging to `<log dir>/<stem>.log`.
    fn blank(c: &Cluster, stem: &str) -> Self {
        Operator {
            binary: operator_binary(),
            kubeconfig: PathBuf::new(),
            log: c.log_dir.join(format!("{stem}.log")),
            pids: c.log_dir.join("operator.pids"),
            child: None,
            addr: None,
            starts: 0,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Starts a new process and waits only until `/livez` answers 200 (a leader-election follower
    /// does not reconcile, so it may not get ready). Panics (with the log) when it does not.
    #[track_caller]
    pub fn start_live(&mut self) {
        if let Err(e) = self.spawn().and_then(|()| self.wait_path("/livez")) {
            panic!("{e}");
        }
    }

    /// Whether the process runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts a new operator process and waits until its `/readyz` answers 200. Panics (with the log)
    /// when it does not get ready.
    #[track_caller]
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_ready()
    }

    /// Starts the process without waiting for it.
    fn spawn(&mut self) -> Result<(), String> {
        if self.running() {
            return Err("the operator is already running".into());
        }
        // Checked here, not when configured: an operator given its own binary never needs the
        // harness's one.
        if !self.binary.is_file() {
            return Err(format!(
                "the operator binary {} does not exist: run `cargo build -p covenant` first (or set COVENANT_BIN)",
                self.binary.display()
            ));
        }
        let addr = free_port()?;
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let _ = writeln!(
            log,
            "===== e2e: operator start #{} at {} (metrics {addr}) =====",
            self.starts,
            jiff::Timestamp::now()
        );
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file handle: {e}"))?;
        let child = Command::new(&self.binary)
            .args(["run", "--metrics-addr", &addr.to_string()])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("COVENANT_LOG_LEVEL", "info,covenant=debug")
            .env("RUST_BACKTRACE", "1")
            .env_remove("COVENANT_METRICS_ADDR")
            .env_remove("COVENANT_NOTIFY_URL")
            .env_remove("COVENANT_LOG_JSON")
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let pid = child.id();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pids)
        {
            let _ = writeln!(f, "{pid}");
        }
        spawn_kill_watchdog(pid, "covenant run", "operator");
        self.child = Some(child);
        self.addr = Some(addr);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        self.wait_path("/readyz")
    }

    /// Waits until `path` answers 200.
    fn wait_path(&mut self, path: &str) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.addr.ok_or("no metrics address")?;
        let mut last;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!(
                    "the operator exited ({status}) before it answered 200 on {path}; its log {}:\n{}",
                    self.log.display(),
                    self.log_tail(80)
                ));
            }
            match http_get(addr, path) {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => last = format!("{code} {body}"),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the operator did not answer 200 on http://{addr}{path} within {READY_TIMEOUT:?} (last: {last}); its log {}:\n{}",
                    self.log.display(),
                    self.log_tail(80)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the operator with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.addr = None;
    }

    /// Panics, with the log, when the operator is not running: it crashed, or a test killed it and did
    /// not start it again.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if self.running() {
            return;
        }
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| format!("exited: {s}"))
            .unwrap_or_else(|| "not started".into());
        panic!(
            "the operator is not running ({status}); its log {}:\n{}",
            self.log.display(),
            self.log_tail(80)
        );
    }

    /// The process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The kubeconfig the process uses (for the harness's operator: the operator's ServiceAccount).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running process: `STOP` freezes it as a stalled node
    /// or a long GC pause would. Panics when it is not running or `kill` fails.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("SIG{signal}: the operator is not running"));
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// How many processes this handle has started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The status code of `/readyz` (`Err` when it does not answer).
    pub fn readyz(&self) -> Result<u16, String> {
        let addr = self.addr.ok_or("the operator is not running")?;
        http_get(addr, "/readyz").map(|(code, _)| code)
    }

    /// The metrics address (while running).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> Result<String, String> {
        let addr = self.addr.ok_or("the operator is not running")?;
        match http_get(addr, "/metrics")? {
            (200, body) => Ok(body),
            (code, body) => Err(format!("/metrics answered {code}: {body}")),
        }
    }

    /// The operator's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the operator log.
    pub fn log_tail(&self, n: usize) -> String {
        std::fs::read_to_string(&self.log)
            .map(|t| tail(&t, n))
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

static OPERATOR: OnceLock<Result<Mutex<Operator>, String>> = OnceLock::new();

/// The operator of this test binary, started on first use. Do not hold the guard across an `.await`.
pub fn handle() -> MutexGuard<'static, Operator> {
    let cell = OPERATOR.get_or_init(|| {
        let mut op = Operator::new(cluster())?;
        op.try_start()?;
        Ok(Mutex::new(op))
    });
    match cell {
        Ok(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
        Err(e) => panic!("the operator is not available:\n{e}"),
    }
}

/// Starts the operator if this test binary has not yet, and panics if it is not running.
#[track_caller]
pub fn ensure() {
    handle().assert_running();
}

/// SIGKILLs the operator.
pub fn kill() {
    handle().kill();
}

/// Starts a new operator process (after [`kill`]) and waits until it is ready.
#[track_caller]
pub fn start() {
    handle().start();
}

/// The last `n` lines of the operator log (empty when no operator was started in this binary).
pub fn log_tail(n: usize) -> String {
    match OPERATOR.get() {
        Some(Ok(m)) => {
            let op = m.lock().unwrap_or_else(|p| p.into_inner());
            format!(
                "----- last {n} lines of {} -----\n{}",
                op.log.display(),
                op.log_tail(n)
            )
        }
        _ => String::new(),
    }
}

/// The operator's `/metrics`.
#[track_caller]
pub fn metrics() -> String {
    match handle().metrics() {
        Ok(m) => m,
        Err(e) => panic!("cannot read the operator's metrics: {e}"),
    }
}

/// The sum of a metric's samples (all label sets) in Prometheus text, 0 when absent.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The samples of a metric, as `(labels, value)` lines, for messages.
pub fn metric_samples(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .map(str::to_string)
        .collect()
}

/// How each sample of a metric changed between two scrapes, e.g. `{kind="ResourceQuota"} +1`.
pub fn metric_deltas(before: &str, after: &str, name: &str) -> Vec<String> {
    let parse = |text: &str| -> std::collections::BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let (labels, value) = rest.rsplit_once(' ')?;
                Some((labels.trim().to_string(), value.parse().ok()?))
            })
            .collect()
    };
    let (b, a) = (parse(before), parse(after));
    a.iter()
        .filter_map(|(k, v)| {
            let d = v - b.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| format!("{k} {d:+}"))
        })
        .collect()
}

/// `covenant_writes_total` summed over kinds.
#[track_caller]
pub fn writes_total() -> f64 {
    metric_sum(&metrics(), "covenant_writes_total")
}

/// The operator binary: `COVENANT_BIN`, or `target/<profile>/covenant`.
fn operator_binary() -> PathBuf {
    std::env::var_os("COVENANT_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("covenant"))
}

/// A free port on 127.0.0.1 (bound and released: good enough on a test machine).
fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// A minimal HTTP/1.1 GET: `(status, body)`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP response: {text}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed status line: {head}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A detached process that SIGKILLs `pid` (only while its command line still contains `command`) as
/// soon as this test binary is gone, and exits when `pid` does: nothing the tests start outlives them.
pub fn spawn_kill_watchdog(pid: u32, command: &str, what: &str) {
    let r = Command::new("setsid")
        .arg("bash")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
               if kill -0 "$2" 2>/dev/null && tr '\0' ' ' <"/proc/$2/cmdline" | grep -q "$3"; then kill -9 "$2"; fi"#,
        )
        .arg(format!("covenant-e2e-{what}-watchdog"))
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = r {
        eprintln!("[e2e] cannot start the {what} watchdog ({e}); {what} pid {pid}");
    }
}

/// The identity an operator of a test's own making runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The operator's ServiceAccount (`deploy/operator-rbac.yaml`), impersonated by the admin.
    ServiceAccount,
    /// The cluster administrator (`system:masters`), as `make run` runs it.
    Admin,
}

/// Writes a kubeconfig for an operator running as `identity` (see [`Operator::custom`]).
pub fn kubeconfig_for(c: &Cluster, identity: Identity, out: &Path) -> Result<(), String> {
    write_operator_kubeconfig(&c.kubeconfig, out, identity == Identity::Admin)
}

/// The admin kubeconfig, impersonating the operator's ServiceAccount unless `as_admin` (the harness's
/// operator: `COVENANT_E2E_OPERATOR_IDENTITY=admin`): so the tests exercise
/// `deploy/operator-rbac.yaml`.
fn write_operator_kubeconfig(admin: &Path, out: &Path, as_admin: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(admin)
        .map_err(|e| format!("cannot read {}: {e}", admin.display()))?;
    let text = if as_admin {
        text
    } else {
        let mut v: serde_yaml::Value = serde_yaml::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", admin.display()))?;
        let users = v
            .get_mut("users")
            .and_then(|u| u.as_sequence_mut())
            .ok_or_else(|| format!("{} has no users", admin.display()))?;
        for u in users {
            if let Some(user) = u.get_mut("user").and_then(|u| u.as_mapping_mut()) {
                user.insert("as".into(), OPERATOR_SERVICEACCOUNT.into());
                user.insert(
                    "as-groups".into(),
                    serde_yaml::Value::Sequence(vec![
                        "system:serviceaccounts".into(),
                        "system:serviceaccounts:covenant-system".into(),
                        "system:authenticated".into(),
                    ]),
                );
            }
        }
        serde_yaml::to_string(&v).map_err(|e| e.to_string())?
    };
    // It holds the admin's key: readable by the owner only.
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Starts the harness's operator again when dropped, if a test stopped it and ended without starting it
/// (it failed half-way): the other tests of the binary, and the cleanup of this one (the Account
/// finalizer), need it. Hold one for the length of a test that stops the operator.
pub struct EnsureRunning;

impl Drop for EnsureRunning {
    fn drop(&mut self) {
        if handle().running() {
            return;
        }
        // In a thread of its own: a panic while this thread unwinds would abort the test binary.
        if std::thread::spawn(start).join().is_err() {
            eprintln!("[e2e] the operator could not be started again after a test that stopped it");
        }
    }
}
