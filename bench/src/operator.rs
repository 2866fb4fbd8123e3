//! The operator under measurement: `covenant run` as a child process, its `/readyz` and `/metrics`, and
//! its memory from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long the operator may take to answer 200 on `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A `covenant run` process (killed when dropped).
pub struct Operator {
    bin: PathBuf,
    kubeconfig: PathBuf,
    log_dir: PathBuf,
    concurrency: u16,
    addr: SocketAddr,
    child: Option<Child>,
    starts: u32,
}

impl Operator {
    /// An operator that runs `bin` with `kubeconfig`, logging into `log_dir`. Not started.
    pub fn new(bin: &Path, kubeconfig: &Path, log_dir: &Path, concurrency: u16) -> Result<Self> {
        if !bin.is_file() {
            bail!(
                "the operator binary {} does not exist: cargo build --release -p covenant",
                bin.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Operator {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            concurrency,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            starts: 0,
        })
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts a process; returns once it is spawned (see [`Operator::wait_ready`]).
    pub fn spawn(&mut self) -> Result<Instant> {
        self.starts += 1;
        let log = self.log_dir.join(format!("operator-{}.log", self.starts));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .args([
                "run",
                "--metrics-addr",
                &self.addr.to_string(),
                "--concurrency",
                &self.concurrency.to_string(),
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("COVENANT_METRICS_ADDR")
            .env_remove("COVENANT_CONCURRENCY")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        // bench.sh kills it by this id if the benchmark itself is interrupted.
        if let Some(pid) = child.id() {
            let _ = std::fs::write(self.log_dir.join("operator.pid"), pid.to_string());
        }
        self.child = Some(child);
        Ok(started)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "the operator exited ({status}); see {}",
                    self.log_dir.display()
                );
            }
            if let Ok((200, _)) = get(self.addr, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the operator was not ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a process and waits until it is ready; returns the time from spawn to ready.
    pub async fn start(&mut self) -> Result<Duration> {
        let t0 = self.spawn()?;
        self.wait_ready().await?;
        Ok(t0.elapsed())
    }

    /// SIGKILL (a crash), and waits for the process to be gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill().ok();
            c.wait().await?;
        }
        let _ = std::fs::remove_file(self.log_dir.join("operator.pid"));
        Ok(())
    }

    /// The operator's `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        match get(self.addr, "/metrics").await? {
            (200, body) => Ok(body),
            (code, body) => bail!("/metrics answered {code}: {body}"),
        }
    }

    /// `covenant_writes_total`, all kinds.
    pub async fn writes(&self) -> Result<f64> {
        Ok(crate::prom::sum(
            &self.metrics().await?,
            "covenant_writes_total",
            &[],
        ))
    }

    /// `covenant_writes_total` by kind of object written.
    pub async fn writes_by_kind(&self) -> Result<std::collections::BTreeMap<String, f64>> {
        Ok(crate::prom::by_label(
            &self.metrics().await?,
            "covenant_writes_total",
            "kind",
        ))
    }

    /// `covenant_reconciles_total` of `kind` (all kinds when None).
    pub async fn reconciles(&self, kind: Option<&str>) -> Result<f64> {
        let text = self.metrics().await?;
        Ok(match kind {
            Some(k) => crate::prom::sum(&text, "covenant_reconciles_total", &[("kind", k)]),
            None => crate::prom::sum(&text, "covenant_reconciles_total", &[]),
        })
    }

    /// Seconds spent in reconciles of `kind`, in all (`covenant_reconcile_duration_seconds_sum`).
    pub async fn reconcile_seconds(&self, kind: &str) -> Result<f64> {
        Ok(crate::prom::sum(
            &self.metrics().await?,
            "covenant_reconcile_duration_seconds_sum",
            &[("kind", kind)],
        ))
    }

    /// The process's CPU time (user and system), seconds, from its metrics.
    pub async fn cpu_seconds(&self) -> Result<f64> {
        Ok(crate::prom::sum(
            &self.metrics().await?,
            "process_cpu_seconds_total",
            &[],
        ))
    }

    /// Waits until no reconcile of any kind has started for `quiet`, at most `cap`. Returns how long it
    /// waited and whether it got quiet.
    pub async fn wait_quiet(&self, quiet: Duration, cap: Duration) -> Result<(Duration, bool)> {
        let t0 = Instant::now();
        let mut last = self.reconciles(None).await?;
        let mut since = Instant::now();
        loop {
            // Each scrape computes the gauges per account (about a dozen series each) from the
            // caches: at N = 10,000 a scrape is real work for the operator, so the benchmark looks
            // once a second, not more.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.reconciles(None).await?;
            if now != last {
                last = now;
                since = Instant::now();
            }
            if since.elapsed() >= quiet {
                return Ok((t0.elapsed(), true));
            }
            if t0.elapsed() >= cap {
                return Ok((t0.elapsed(), false));
            }
        }
    }

    /// (VmHWM, VmRSS) of the process in MiB.
    pub fn memory(&self) -> Result<(f64, f64)> {
        let pid = self.pid().context("the operator is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            let kb: f64 = line
                .split_whitespace()
                .nth(1)
                .context("malformed /proc status")?
                .parse()?;
            Ok(kb / 1024.0)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }
}

/// A plain HTTP/1.1 GET on loopback: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status")?;
        // axum answers with a Content-Length here, so the body is not chunked.
        anyhow::Ok((code, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .context("HTTP GET timed out")?
}
