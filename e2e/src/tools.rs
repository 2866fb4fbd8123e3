//! The tests' independent judges, built from their own Go modules by `e2e/tools/build.sh`
//! (`netpol-oracle`: cyclonus' NetworkPolicy matcher; `kstatus`: cli-utils' kstatus). Found the way the
//! harness finds kubectl: `COVENANT_E2E_TOOLS` names their directory, else the build script prints it
//! (building them on the machine's first run).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::cluster::repo_root;

static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The directory holding `netpol-oracle` and `kstatus`.
pub fn dir() -> anyhow::Result<PathBuf> {
    DIR.get_or_init(find).clone().map_err(anyhow::Error::msg)
}

fn find() -> Result<PathBuf, String> {
    dir_from("COVENANT_E2E_TOOLS", "e2e/tools/build.sh")
}

/// The directory the environment variable `env` names, else the one the repository's `script`
/// prints on its standard output (its standard error goes to the test's).
pub(crate) fn dir_from(env: &str, script: &str) -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let script = repo_root().join(script);
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs the tool `name` with `input` on its standard input; returns its standard output. An exit
/// status other than 0 is an error carrying the tool's standard error.
pub fn run(name: &str, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let path = dir()?.join(name);
    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", path.display()))?;
    // Written from a thread, so a tool that answers before it has read everything cannot deadlock us.
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {}", path.display()))?;
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the thread writing to {name} panicked"))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    written.with_context(|| format!("writing the input of {name}"))?;
    Ok(out.stdout)
}
