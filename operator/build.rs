//! Stamps the git revision into the binary (`covenant --version`): `COVENANT_REVISION` when the build
//! sets it (the Makefile, hack/build-image.sh and the Dockerfile do, from hack/revision.sh), else the
//! commit checked out, so that a plain `cargo build` in a clone says what it was built from; `unknown`
//! only without git (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then_some(())?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=COVENANT_REVISION");
    let revision = match std::env::var("COVENANT_REVISION") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            // Built again when the checked-out commit moves: HEAD, the branch it names, packed refs.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(p) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={p}");
            }
            git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=COVENANT_REVISION={revision}");
}
