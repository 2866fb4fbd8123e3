//! `covenant --version` names the commit the binary was built from, also after a plain `cargo build`
//! (no Makefile setting `COVENANT_REVISION`): the build script asks git.

use std::process::Command;

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = Command::new(env!("CARGO_BIN_EXE_covenant"))
        .arg("--version")
        .output()
        .expect("covenant runs");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).expect("UTF-8");
    // What the build was given, else what git says of this checkout (tests run in the same one).
    let expected = match std::env::var("COVENANT_REVISION") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            // Outside a git checkout (a source tarball) there is nothing to name.
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        }
    };
    assert_eq!(
        printed.trim(),
        format!("covenant {} (git {expected})", env!("CARGO_PKG_VERSION"))
    );
}
