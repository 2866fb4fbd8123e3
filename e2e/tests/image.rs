//! The container image ("Container image: build it in a test"): the OCI archive `hack/build-image.sh`
//! writes, named by `COVENANT_IMAGE_ARCHIVE` (`e2e/run.sh`, stage `image`, builds it and sets it).
//!
//! The archive is read blob by blob with every sha256 digest verified; its runtime config and the
//! files of its layers are checked against what the README promises and against the Dockerfile's final
//! stage (which CI cannot build: there is no Docker daemon). Then the `/covenant` taken out of the
//! image is run on its own (version, CRDs) and inside the image with buildah (as the image's user).
//! Last, on a cluster of this binary's own ([`bare_cluster`], with `crds/` and `deploy/` applied), the
//! operator provisions an Account twice: run from the extracted binary with a ServiceAccount token,
//! and run by buildah in the image with nothing but the in-cluster credentials a pod gets.
//!
//! Nothing is skipped: without the archive, buildah or root, the tests fail and say why.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use covenant_e2e::cluster::{CRDS, Cluster, bare_cluster};
use covenant_e2e::fixtures::{account, label};
use covenant_e2e::operator::Operator;
use covenant_e2e::{Manifest, apply_yaml, client, kubectl, repo_root, unique, wait_account_ready};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::Api;
use serde_json::{Value, json};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARY: &str = "/covenant";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The image's user and group (the chart's `runAsUser`/`runAsGroup`).
const UID: u32 = 65532;
const GID: u32 = 65532;

// --- the archive ----------------------------------------------------------------------------------

/// A file or directory of the image's root filesystem (all layers applied).
#[derive(Debug)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
}

/// The OCI archive, read and verified.
#[derive(Debug)]
struct Image {
    path: PathBuf,
    index: Value,
    manifest: Value,
    config: Value,
    /// By absolute path (`/covenant`, `/etc`, ...).
    files: BTreeMap<String, Entry>,
}

impl Image {
    /// The runtime config (`User`, `Entrypoint`, ...).
    fn runtime(&self) -> &Value {
        &self.config["config"]
    }

    /// The `org.opencontainers.image.*` labels.
    fn oci_labels(&self) -> BTreeMap<String, String> {
        self.runtime()["Labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("org.opencontainers.image."))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    fn file(&self, path: &str) -> &Entry {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("{} has no {path}", self.path.display()))
    }
}

/// The archive `COVENANT_IMAGE_ARCHIVE` names, read once.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| read_image(&archive_path()))
}

fn archive_path() -> PathBuf {
    covenant_e2e::release::image_archive()
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every entry of a tar stream, in order, with its path as written (`blobs/sha256/...`, `./etc/`).
fn tar_entries(data: &[u8], what: &str) -> Vec<(String, Entry)> {
    let mut archive = tar::Archive::new(data);
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("{what} is not a tar archive: {e}"));
    entries
        .map(|entry| {
            let mut entry = entry.unwrap_or_else(|e| panic!("{what}: a broken tar entry: {e}"));
            let path = entry
                .path()
                .unwrap_or_else(|e| panic!("{what}: an entry without a path: {e}"))
                .to_string_lossy()
                .into_owned();
            let header = entry.header();
            let (kind, mode) = (header.entry_type(), header.mode().unwrap_or(0) & 0o7777);
            let (uid, gid) = (
                header.uid().unwrap_or(u64::MAX),
                header.gid().unwrap_or(u64::MAX),
            );
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .unwrap_or_else(|e| panic!("{what}: cannot read {path}: {e}"));
            let entry = Entry {
                kind,
                mode,
                uid,
                gid,
                data,
            };
            (path, entry)
        })
        .collect()
}

/// Reads the archive; panics unless every descriptor's blob is there with its size and digest, and
/// every layer's uncompressed digest is the config's `diff_id`.
fn read_image(path: &Path) -> Image {
    let what = path.display().to_string();
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {what}: {e}"));
    let archive: BTreeMap<String, Vec<u8>> = tar_entries(&data, &what)
        .into_iter()
        .filter(|(_, e)| e.kind == tar::EntryType::Regular)
        .map(|(path, e)| (path, e.data))
        .collect();
    let json = |name: &str, bytes: &[u8]| -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: {name} is not JSON: {e}"))
    };
    let blob = |desc: &Value| -> &[u8] {
        let digest = desc["digest"].as_str().unwrap_or_default();
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("{what}: not a sha256 digest: {desc}"));
        let name = format!("blobs/sha256/{hex}");
        let bytes = archive
            .get(&name)
            .unwrap_or_else(|| panic!("{what}: no blob {name}"));
        assert_eq!(
            desc["size"].as_u64(),
            Some(bytes.len() as u64),
            "{what}: {name} has another size than its descriptor says"
        );
        assert_eq!(
            sha256_hex(bytes),
            hex,
            "{what}: {name} does not match its digest"
        );
        bytes
    };

    let top = |name: &str| json(name, archive.get(name).map_or(&[][..], Vec::as_slice));
    assert_eq!(
        top("oci-layout")["imageLayoutVersion"],
        "1.0.0",
        "{what}: oci-layout"
    );
    let index = top("index.json");
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        manifests.len(),
        1,
        "{what}: exactly one manifest expected: {index:#}"
    );
    assert_eq!(
        manifests[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{what}: the manifest's media type"
    );
    let manifest = json("the manifest", blob(&manifests[0]));
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{what}: the config's media type"
    );
    let config = json("the config", blob(&manifest["config"]));

    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(config["rootfs"]["type"], "layers", "{what}: rootfs.type");
    assert_eq!(
        layers.len(),
        diff_ids.len(),
        "{what}: one diff_id per layer expected"
    );
    let mut files = BTreeMap::new();
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let compressed = blob(layer);
        let tar = match layer["mediaType"].as_str() {
            Some("application/vnd.oci.image.layer.v1.tar+gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(compressed)
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("{what}: a layer is not gzip: {e}"));
                out
            }
            Some("application/vnd.oci.image.layer.v1.tar") => compressed.to_vec(),
            other => panic!("{what}: unexpected layer media type {other:?}"),
        };
        assert_eq!(
            diff_id.as_str(),
            Some(format!("sha256:{}", sha256_hex(&tar)).as_str()),
            "{what}: a layer's content does not match its diff_id"
        );
        // Applied in order: a later layer's entry replaces an earlier one's.
        for (raw, entry) in tar_entries(&tar, &format!("{what}: layer {diff_id}")) {
            let path = format!(
                "/{}",
                raw.trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/')
            );
            assert!(
                !path.contains("/.wh."),
                "{what}: a whiteout ({path}): the image is built FROM scratch and deletes nothing"
            );
            files.insert(path, entry);
        }
    }
    Image {
        path: path.to_path_buf(),
        index,
        manifest,
        config,
        files,
    }
}

// --- running what is in the image -------------------------------------------------------------------

/// Runs `cmd` to completion. A binary this process has just written can be busy for an instant
/// (ETXTBSY: a process forked by another test thread during the write holds it open until it execs):
/// then it tries again.
fn output(cmd: &mut Command) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd.stdin(Stdio::null()).output() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
            Ok(out) => return out,
        }
    }
}

/// Panics with both streams unless the command exited 0; returns its stdout.
#[track_caller]
fn expect_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{cmd:?} printed no UTF-8: {e}"))
}

/// `/covenant` written out of the image into a temporary directory (removed when dropped).
struct Extracted {
    dir: tempfile::TempDir,
}

impl Extracted {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("covenant-image-")
            .tempdir()
            .expect("a temporary directory");
        let entry = image().file(BINARY);
        let path = dir.path().join("covenant");
        std::fs::write(&path, &entry.data)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(entry.mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
        Extracted { dir }
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("covenant")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.binary());
        cmd.args(args);
        cmd
    }
}

/// A rootful buildah with a store of its own (vfs: no overlay mounts, no daemon), removed when
/// dropped, and a working container from the archive.
struct Buildah {
    store: tempfile::TempDir,
    container: String,
}

impl Buildah {
    fn from_archive(archive: &Path) -> Self {
        let store = tempfile::Builder::new()
            .prefix("covenant-buildah-")
            .tempdir()
            .expect("a temporary directory");
        let mut b = Buildah {
            store,
            container: String::new(),
        };
        let name = format!("covenant-image-test-{}", unique());
        let source = format!("oci-archive:{}", archive.display());
        b.container = expect_ok(&mut b.command(&["from", "--quiet", "--name", &name, &source]))
            .trim()
            .to_string();
        b
    }

    /// `buildah` and the options that select this store.
    fn argv(&self) -> Vec<String> {
        let root = self.store.path();
        vec![
            "buildah".into(),
            "--storage-driver=vfs".into(),
            format!("--root={}", root.join("root").display()),
            format!("--runroot={}", root.join("run").display()),
        ]
    }

    fn command(&self, args: &[&str]) -> Command {
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).args(args);
        cmd
    }

    /// `buildah run` in the container: the image's user unless `args` say otherwise, `mounts` as
    /// read-only volumes `(host path, container path)`.
    fn run(&self, args: &[&str], mounts: &[(&Path, &str)], command: &[&str]) -> Output {
        let volumes: Vec<String> = mounts
            .iter()
            .map(|(host, ctr)| format!("--volume={}:{ctr}:ro", host.display()))
            .collect();
        let mut a = vec!["run", "--isolation=chroot"];
        a.extend(volumes.iter().map(String::as_str));
        a.extend_from_slice(args);
        a.push(&self.container);
        a.push("--");
        a.extend_from_slice(command);
        output(&mut self.command(&a))
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        if !self.container.is_empty() {
            let _ = self.command(&["rm", &self.container]).output();
        }
    }
}

// --- the archive, the config and the files ----------------------------------------------------------

#[test]
fn the_archive_holds_one_linux_amd64_image_whose_blobs_match_their_digests() {
    // read_image verified every size and digest on the way.
    let img = image();
    assert_eq!(img.index["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(img.config["os"], "linux");
    assert_eq!(img.config["architecture"], "amd64");
    let layers = img.manifest["layers"].as_array().map(Vec::len);
    assert!(
        layers.is_some_and(|n| n >= 1),
        "the image has no layers: {:#}",
        img.manifest
    );
    eprintln!(
        "[image] {}: {} ({} layer(s), {} bytes compressed)",
        img.path.display(),
        img.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        layers.unwrap_or_default(),
        img.manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["size"].as_u64())
            .sum::<u64>()
    );
}

#[test]
fn the_config_runs_covenant_run_as_65532_with_the_oci_labels() {
    let img = image();
    let rt = img.runtime();
    assert_eq!(rt["User"], format!("{UID}:{GID}"));
    assert_eq!(rt["Entrypoint"], json!([BINARY]));
    assert_eq!(rt["Cmd"], json!(["run"]));
    assert_eq!(
        rt["ExposedPorts"],
        json!({"8080/tcp": {}}),
        "the metrics port"
    );
    let labels = img.oci_labels();
    let revision = labels
        .get("org.opencontainers.image.revision")
        .cloned()
        .unwrap_or_default();
    assert_is_a_revision_of_this_repository(&revision);
    let expected: BTreeMap<String, String> = [
        ("title", "covenant"),
        (
            "description",
            "Kubernetes operator that provisions tenants and runs their lifecycle under a platform's service terms",
        ),
        ("source", "https://github.com/covenant-dev/covenant"),
        ("licenses", env!("CARGO_PKG_LICENSE")),
        ("version", VERSION),
        ("revision", &revision),
    ]
    .into_iter()
    .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.to_string()))
    .collect();
    assert_eq!(labels, expected);
}

/// What `covenant --version` of the image's binary prints: the workspace version and the revision it
/// was built from, the one the image's `org.opencontainers.image.revision` label carries
/// (hack/build-image.sh builds both from hack/revision.sh).
fn version_line() -> String {
    let labels = image().oci_labels();
    let revision = labels
        .get("org.opencontainers.image.revision")
        .map(String::as_str)
        .unwrap_or("unknown");
    format!("covenant {VERSION} (git {revision})")
}

/// A commit of this repository (not necessarily HEAD: a commit may land between the build and the
/// test), or `unknown` (the Dockerfile's default) when this is no git checkout.
fn assert_is_a_revision_of_this_repository(revision: &str) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if git(&["rev-parse", "--git-dir"]) {
        assert!(
            revision.len() == 40
                && revision.chars().all(|c| c.is_ascii_hexdigit())
                && git(&["cat-file", "-e", &format!("{revision}^{{commit}}")]),
            "the revision label is not a commit of this repository: {revision:?}"
        );
    } else {
        assert_eq!(
            revision, "unknown",
            "the revision label outside a git checkout"
        );
    }
}

/// The Dockerfile's final stage, continuation lines joined and comments dropped:
/// `(INSTRUCTION, arguments)` from its last `FROM` on.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || (current.is_empty() && line.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let from = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    instructions[from..]
        .iter()
        .map(|i| {
            let (op, args) = i.split_once(' ').unwrap_or((i, ""));
            (op.to_string(), args.trim().to_string())
        })
        .collect()
}

/// `key="value" key=value ...` of a LABEL instruction.
fn label_pairs(mut rest: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("LABEL: no key=value in {rest:?}"));
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => quoted
                .split_once('"')
                .unwrap_or_else(|| panic!("LABEL: no closing quote in {after:?}")),
            None => after.split_once(' ').unwrap_or((after, "")),
        };
        out.insert(key.trim().to_string(), value.to_string());
        rest = tail.trim_start();
    }
    out
}

#[test]
fn the_image_is_the_dockerfiles_final_stage() {
    // CI has no Docker daemon to build the Dockerfile: the buildah image stands in for it, so the two
    // must not drift apart.
    let img = image();
    let rt = img.runtime();
    let labels = img.oci_labels();
    let mut dockerfile_labels = BTreeMap::new();
    let mut copied = BTreeSet::new();
    for (op, args) in dockerfile_final_stage() {
        match op.as_str() {
            "FROM" => assert_eq!(args, "scratch", "the final stage's base"),
            "ARG" => {}
            "LABEL" => dockerfile_labels.extend(label_pairs(&args)),
            "COPY" => {
                copied.insert(args.rsplit(' ').next().unwrap_or_default().to_string());
            }
            "USER" => assert_eq!(rt["User"], args, "USER"),
            "EXPOSE" => {
                let ports: serde_json::Map<String, Value> = args
                    .split_whitespace()
                    .map(|p| {
                        let p = if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        };
                        (p, json!({}))
                    })
                    .collect();
                assert_eq!(rt["ExposedPorts"], Value::Object(ports), "EXPOSE");
            }
            "ENTRYPOINT" | "CMD" => {
                let field = if op == "CMD" { "Cmd" } else { "Entrypoint" };
                let value: Value = serde_json::from_str(&args)
                    .unwrap_or_else(|e| panic!("{op} is not in JSON form ({e}): {args}"));
                assert_eq!(rt[field], value, "{op}");
            }
            other => panic!("the Dockerfile's final stage has {other}: check it against the image"),
        }
    }
    // The build arguments: the version this workspace has, the revision the image was built from.
    let revision = labels
        .get("org.opencontainers.image.revision")
        .cloned()
        .unwrap_or_default();
    let dockerfile_labels: BTreeMap<String, String> = dockerfile_labels
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .replace("${VERSION}", VERSION)
                .replace("${REVISION}", &revision);
            (k, v)
        })
        .collect();
    assert_eq!(labels, dockerfile_labels, "LABEL");
    let regular: BTreeSet<String> = img
        .files
        .iter()
        .filter(|(_, e)| e.kind == tar::EntryType::Regular)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(regular, copied, "the files COPY puts in the image");
}

#[test]
fn the_layers_hold_only_the_binary_and_the_ca_bundle() {
    let img = image();
    let listing: Vec<String> = img
        .files
        .iter()
        .map(|(p, e)| format!("{:?} {:o} {}:{} {p}", e.kind, e.mode, e.uid, e.gid))
        .collect();
    let paths: BTreeSet<&str> = img.files.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> =
        BTreeSet::from(["/etc", "/etc/ssl", "/etc/ssl/certs", CA_BUNDLE, BINARY]);
    assert_eq!(
        paths, expected,
        "the image's files (no shell, nothing else):\n{listing:#?}"
    );
    for (path, e) in &img.files {
        let (kind, mode) = match path.as_str() {
            BINARY => (tar::EntryType::Regular, 0o755),
            CA_BUNDLE => (tar::EntryType::Regular, 0o644),
            _ => (tar::EntryType::Directory, 0o755),
        };
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid),
            (kind, mode, 0, 0),
            "{path}: kind, mode, owner"
        );
    }
    let bundle = String::from_utf8_lossy(&img.file(CA_BUNDLE).data).into_owned();
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(
        certificates >= 50,
        "{CA_BUNDLE} holds {certificates} certificates: not a CA bundle"
    );
}

#[test]
fn covenant_is_a_static_x86_64_elf() {
    let elf = &image().file(BINARY).data;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8 bytes"));
    assert!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF"),
        "{BINARY} is not ELF"
    );
    assert_eq!(
        (elf[4], elf[5]),
        (2, 1),
        "{BINARY} is not 64-bit little-endian"
    );
    assert_eq!(u16_at(0x12), 0x3e, "{BINARY} is not x86-64 (e_machine)");
    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;
    assert!(
        [ET_EXEC, ET_DYN].contains(&u16_at(0x10)),
        "{BINARY} is not an executable (e_type {})",
        u16_at(0x10)
    );
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let types: Vec<u32> = (0..usize::from(phnum))
        .map(|i| u32_at(phoff + i * usize::from(phentsize)))
        .collect();
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    assert!(types.contains(&PT_LOAD), "no PT_LOAD segment: {types:?}");
    // No program interpreter: nothing in a scratch image could load it.
    assert!(
        !types.contains(&PT_INTERP),
        "{BINARY} has a PT_INTERP (it is dynamically linked): program headers {types:?}"
    );
    // A static-pie binary has a dynamic section for its own relocations, but it must name no
    // shared library (DT_NEEDED).
    let mut needed = 0;
    for (i, _) in types.iter().enumerate().filter(|(_, t)| **t == PT_DYNAMIC) {
        let ph = phoff + i * usize::from(phentsize);
        let (offset, size) = (u64_at(ph + 8) as usize, u64_at(ph + 32) as usize);
        const DT_NULL: u64 = 0;
        const DT_NEEDED: u64 = 1;
        for entry in (offset..offset + size).step_by(16) {
            match u64_at(entry) {
                DT_NULL => break,
                DT_NEEDED => needed += 1,
                _ => {}
            }
        }
    }
    assert_eq!(
        needed, 0,
        "{BINARY} needs {needed} shared libraries (DT_NEEDED)"
    );
    eprintln!(
        "[image] {BINARY}: {} bytes, program headers {types:?}, no PT_INTERP, no DT_NEEDED",
        elf.len()
    );
}

// --- running the binary ------------------------------------------------------------------------------

#[test]
fn the_binary_prints_the_workspace_version_its_revision_and_the_repositorys_crds() {
    let bin = Extracted::new();
    assert_eq!(
        expect_ok(&mut bin.command(&["--version"])).trim(),
        version_line()
    );

    // `crd --dir` writes the layout of crds/: the same files, byte for byte.
    let crds = repo_root().join("crds");
    let read_dir = |dir: &Path| -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| {
                let path = e.expect("a directory entry").path();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                (
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    text,
                )
            })
            .collect()
    };
    let out = tempfile::tempdir().expect("a temporary directory");
    let dir = out.path().to_string_lossy().into_owned();
    expect_ok(&mut bin.command(&["crd", "--dir", &dir]));
    let in_repo = read_dir(&crds);
    let written = read_dir(out.path());
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        in_repo.keys().collect::<Vec<_>>(),
        "`covenant crd --dir` writes other files than crds/ holds"
    );
    let stale: Vec<&String> = in_repo
        .iter()
        .filter(|(file, text)| written.get(*file) != Some(text))
        .map(|(file, _)| file)
        .collect();
    assert!(
        stale.is_empty(),
        "the image's binary generates other CRDs than crds/ holds, for {stale:?}"
    );

    // `crd` prints the same CRDs as one stream (without the files' "generated" header).
    let printed = expect_ok(&mut bin.command(&["crd"]));
    let mut docs: Vec<String> = printed
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .collect();
    let mut files: Vec<String> = in_repo
        .values()
        .map(|text| {
            text.lines()
                .skip_while(|l| l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect()
        })
        .collect();
    docs.sort();
    files.sort();
    assert_eq!(
        docs.len(),
        CRDS.len(),
        "`covenant crd` prints {} documents",
        docs.len()
    );
    assert!(
        docs == files,
        "`covenant crd` prints other CRDs than crds/ holds"
    );
}

#[test]
fn the_image_runs_under_buildah_as_65532() {
    use std::os::unix::fs::PermissionsExt;
    let archive = archive_path();
    let b = Buildah::from_archive(&archive);

    // The default user and the entrypoint, as a runtime would start the image.
    let out = b.run(&[], &[], &[BINARY, "--version"]);
    assert!(
        out.status.success(),
        "`buildah run {BINARY} --version` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), version_line());

    // Which user that is, from what it may read: a file only 65532 may read, one only group 65532 may
    // read, and one only root may read (65532 has no capabilities to read past the mode bits).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let probe = |name: &str, uid: u32, gid: u32, mode: u32| -> PathBuf {
        let path = dir.path().join(name);
        let doc = format!(
            "apiVersion: covenant.dev/v1alpha1\nkind: SupportPackage\nmetadata: {{name: {name}}}\n\
             spec: {{displayName: Probe}}\n"
        );
        std::fs::write(&path, doc).expect("write a probe file");
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap_or_else(|e| {
            panic!(
                "cannot chown {} to {uid}:{gid} ({e}): the image tests run as root (buildah is rootful here)",
                path.display()
            )
        });
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("chmod a probe file");
        path
    };
    // 0o711: the probes' directory must be traversable by 65532.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod the probe directory");
    let user_only = probe("user-only", UID, 0, 0o400);
    let group_only = probe("group-only", 0, GID, 0o040);
    let root_only = probe("root-only", 0, 0, 0o400);
    let mounts = [
        (user_only.as_path(), "/probe/user-only"),
        (group_only.as_path(), "/probe/group-only"),
        (root_only.as_path(), "/probe/root-only"),
    ];
    let check = |args: &[&str], file: &str| -> (Option<i32>, String) {
        let out = b.run(
            args,
            &mounts,
            &[BINARY, "check", "--now=2026-01-01T00:00:00Z", file],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    for file in ["/probe/user-only", "/probe/group-only"] {
        let (code, text) = check(&[], file);
        assert_eq!(
            code,
            Some(0),
            "the image's user cannot read {file}:\n{text}"
        );
        assert!(text.contains("kind: SupportPackage"), "{file}:\n{text}");
    }
    let (code, text) = check(&[], "/probe/root-only");
    assert_eq!(
        code,
        Some(2),
        "the image's user read a root-only file:\n{text}"
    );
    assert!(text.contains("Permission denied"), "{text}");
    // The control: the same file as root, so the denial above came from the user, not the mount.
    let (code, text) = check(&["--user=0:0"], "/probe/root-only");
    assert_eq!(
        code,
        Some(0),
        "root cannot read the root-only probe:\n{text}"
    );
}

// --- the binary as the operator --------------------------------------------------------------------

/// `kubectl apply --server-side` of a directory of the repository, as docs/install.md's "Install on a cluster"
/// says.
fn apply_dir(dir: &str) {
    let path = repo_root().join(dir);
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=covenant-e2e-image",
        "-f",
        &path.to_string_lossy(),
    ])
    .expect_ok();
}

/// The operator's ServiceAccount (`deploy/operator-rbac.yaml`).
const SA_NAMESPACE: &str = "covenant-system";
const SA_USER: &str = "system:serviceaccount:covenant-system:covenant";

/// A token of the operator's ServiceAccount from the TokenRequest API (what a pod gets mounted).
fn serviceaccount_token() -> String {
    kubectl(&[
        "create",
        "token",
        "covenant",
        "-n",
        SA_NAMESPACE,
        "--duration=1h",
    ])
    .expect_ok()
    .trim()
    .to_string()
}

/// `clusters[0].cluster` of the admin kubeconfig: `server` and `certificate-authority-data`.
fn admin_cluster(c: &Cluster) -> serde_json::Value {
    let kubeconfig: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(&c.kubeconfig).expect("read the admin kubeconfig"),
    )
    .expect("parse the admin kubeconfig");
    kubeconfig["clusters"][0]["cluster"].clone()
}

/// A kubeconfig (0600, in `dir`) with a token of the operator's ServiceAccount.
fn serviceaccount_kubeconfig(c: &Cluster, dir: &Path) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "covenant", "cluster": admin_cluster(c) }],
        "users": [{ "name": SA_USER, "user": { "token": serviceaccount_token() } }],
        "contexts": [{ "name": "covenant", "context": { "cluster": "covenant", "user": SA_USER } }],
        "current-context": "covenant"
    });
    let path = dir.join("operator.kubeconfig");
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(kubeconfig.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The CRDs and `deploy/` on this binary's cluster, once.
fn install() -> &'static Cluster {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let c = bare_cluster();
    INSTALLED.get_or_init(|| {
        apply_dir("crds");
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        let crds: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
        wait.extend(crds.iter().map(String::as_str));
        kubectl(&wait).expect_ok();
        // After the CRDs: it holds the `standard` SupportPackage, besides the operator's RBAC.
        apply_dir("deploy");
    });
    c
}

/// One operator at a time on this binary's cluster: each test's operator would reconcile every
/// Account, the other test's too.
static ONE_OPERATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies an Account on the default package and checks that `op` provisions it: Ready, its
/// namespace labelled, the `standard` package's quota in it.
async fn provisions_an_account(op: &mut Operator) {
    let client = client().await;
    let name = format!("image-{}", unique());
    apply_yaml(
        &client,
        &account(&name, None, &[], &["alice@image.example"], json!({})).manifest(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot apply the Account {name}: {e}"));
    let ready = AssertUnwindSafe(wait_account_ready(&client, &name))
        .catch_unwind()
        .await;
    let acct = ready.unwrap_or_else(|panic| {
        eprintln!(
            "----- the operator's log {} -----\n{}",
            op.log_path().display(),
            op.log_tail(80)
        );
        std::panic::resume_unwind(panic)
    });
    let status = acct.status.expect("a status");
    assert_eq!(status.support_package.as_deref(), Some("standard"));
    assert_eq!(status.namespaces, vec![name.clone()]);

    let namespace = Api::<Namespace>::all(client.clone())
        .get(&name)
        .await
        .unwrap_or_else(|e| panic!("the namespace {name} does not exist: {e}"));
    assert_eq!(
        label(&namespace, "covenant.dev/account").as_deref(),
        Some(name.as_str())
    );
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &name)
        .get("covenant-quota")
        .await
        .unwrap_or_else(|e| panic!("no covenant-quota in {name}: {e}"));
    let pods = quota
        .spec
        .and_then(|s| s.hard)
        .and_then(|h| h.get("pods").cloned())
        .map(|q| q.0);
    assert_eq!(
        pods.as_deref(),
        Some("20"),
        "the standard package's pods quota"
    );
    op.assert_running();
}

#[tokio::test]
async fn the_binary_from_the_image_runs_the_operator_and_provisions_an_account() {
    let c = install();
    let _one = ONE_OPERATOR.lock().await;
    let bin = Extracted::new();
    expect_ok(&mut bin.command(&["--version"]));
    let kubeconfig = serviceaccount_kubeconfig(c, bin.dir.path());
    let mut op = Operator::custom(c, "extracted", &kubeconfig, &[], &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .with_binary(&bin.binary());
    op.start();
    provisions_an_account(&mut op).await;
}

/// The files of a pod's ServiceAccount volume (`/var/run/secrets/kubernetes.io/serviceaccount`),
/// written into `dir`: a token, the cluster's CA as the controller-manager publishes it to every
/// namespace, and the namespace; readable by all, as the volume's default mode (0644) makes them.
fn serviceaccount_volume(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    kubectl(&[
        "wait",
        "--for=create",
        "configmap/kube-root-ca.crt",
        "-n",
        SA_NAMESPACE,
        "--timeout=60s",
    ])
    .expect_ok();
    let ca = kubectl(&[
        "get",
        "configmap/kube-root-ca.crt",
        "-n",
        SA_NAMESPACE,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ])
    .expect_ok()
    .to_string();
    let token = serviceaccount_token();
    std::fs::create_dir_all(dir).expect("create the volume's directory");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (file, text) in [
        ("token", token.as_str()),
        ("ca.crt", &ca),
        ("namespace", SA_NAMESPACE),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

#[tokio::test]
async fn the_image_runs_the_operator_as_a_pod_would_and_provisions_an_account() {
    use std::os::unix::fs::PermissionsExt;
    let c = install();
    let _one = ONE_OPERATOR.lock().await;
    let b = Buildah::from_archive(&archive_path());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secrets = dir.path().join("serviceaccount");
    serviceaccount_volume(&secrets);
    let server = admin_cluster(c)["server"]
        .as_str()
        .map(str::to_string)
        .expect("a server in the kubeconfig");
    let (host, port) = server
        .strip_prefix("https://")
        .and_then(|hp| hp.rsplit_once(':'))
        .unwrap_or_else(|| panic!("not https://HOST:PORT: {server}"));

    // The operator's "binary": `covenant ARGS` run by buildah in the image, as the image's user, with
    // no kubeconfig but the in-cluster credentials a pod of the chart's Deployment gets (the same
    // network: chroot isolation keeps the host's, so the API server is on loopback).
    let mut argv = b.argv();
    argv.extend([
        "run".into(),
        "--isolation=chroot".into(),
        format!(
            "--volume={}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            secrets.display()
        ),
        format!("--env=KUBERNETES_SERVICE_HOST={host}"),
        format!("--env=KUBERNETES_SERVICE_PORT={port}"),
    ]);
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\nexec {} \"--env=COVENANT_LOG_LEVEL=${{COVENANT_LOG_LEVEL:-info}}\" {} -- {BINARY} \"$@\"\n",
        argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        quote(&b.container)
    );
    let wrapper = dir.path().join("covenant-in-image");
    std::fs::write(&wrapper, script).expect("write the wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(
        expect_ok(Command::new(&wrapper).arg("--version")).trim(),
        version_line()
    );

    // The kubeconfig the harness passes (KUBECONFIG) does not reach the container: the wrapper
    // forwards no environment but the log level.
    let mut op = Operator::custom(c, "in-image", Path::new("/nonexistent"), &[], &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .with_binary(&wrapper);
    op.start();
    provisions_an_account(&mut op).await;
}
