//! Installing Covenant the ways a user does, shared by the suites that install it on a cluster of their
//! own (`chart`, `dist`, `oci`, `oci_upgrade`): Helm against the test cluster, a kubeconfig with a
//! ServiceAccount's token (what a pod of the operator's Deployment gets mounted), the operator's
//! arguments as a Deployment holds them, the CRDs Established, and an OCI registry on loopback
//! ([`Registry`]: `crane registry serve`, with crane as its client) to publish to and install from.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use serde_json::json;

use crate::cluster::{CRDS, Cluster, KubectlOutput, kubectl, repo_root};

/// Runs `$BIN/helm` against the cluster `c` (admin), in the repository, with its cache, config and
/// registry credentials under the log dir (never the user's).
pub fn helm(c: &Cluster, args: &[&str]) -> KubectlOutput {
    let home = c.log_dir.join("helm-home");
    let command = format!("helm {}", args.join(" "));
    let out = Command::new(c.bin.join("helm"))
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output();
    output(command, out)
}

/// `helm install ARGS...` (`args` start with `install`). The chart's CRDs are release objects and
/// its default SupportPackage a post-install hook: when the API server's discovery has not yet caught
/// up with CRDs created a moment before, Helm cannot map the hook's kind and fails the install
/// ("ensure CRDs are installed first"), the release marked failed, nothing lost. What a user does
/// then, and docs/install.md says: run it again (`helm upgrade --install`, the same values), which finds the
/// CRDs in place.
pub fn helm_install(c: &Cluster, args: &[&str]) -> KubectlOutput {
    let first = helm(c, args);
    if first.success || !first.stderr.contains("ensure CRDs are installed first") {
        return first;
    }
    eprintln!(
        "[helm] the install met Helm's CRD discovery race; running it again as upgrade --install:\n{}",
        first.stderr
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut again = vec!["upgrade", "--install"];
    again.extend(args.iter().skip(1).copied());
    helm(c, &again)
}

fn output(command: String, out: std::io::Result<std::process::Output>) -> KubectlOutput {
    match out {
        Ok(o) => KubectlOutput {
            command,
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => KubectlOutput {
            command,
            success: false,
            stdout: String::new(),
            stderr: format!("cannot run it: {e}"),
        },
    }
}

/// A kubeconfig that authenticates with a token of the ServiceAccount `namespace/name` from the
/// TokenRequest API (`kubectl create token`), with the admin kubeconfig's server and CA: what a pod of
/// the operator's Deployment gets mounted. Written (0600) to the log dir, named after `tag`; checked
/// with `kubectl auth whoami` (the API server sees the ServiceAccount itself: no impersonation, no
/// admin credentials). Returns its path.
#[track_caller]
pub fn service_account_kubeconfig(c: &Cluster, namespace: &str, name: &str, tag: &str) -> PathBuf {
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let token = kubectl(&["create", "token", name, "-n", namespace, "--duration=1h"])
        .expect_ok()
        .trim()
        .to_string();
    assert!(
        token.split('.').count() == 3,
        "`kubectl create token` printed no JWT: {token}"
    );
    let admin: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(&c.kubeconfig).expect("read the admin kubeconfig"),
    )
    .expect("parse the admin kubeconfig");
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "covenant", "cluster": {
            "server": cluster["server"].as_str().expect("a server in the kubeconfig"),
            "certificate-authority-data": cluster["certificate-authority-data"]
                .as_str()
                .expect("certificate-authority-data in the kubeconfig"),
        } }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "sa", "context": { "cluster": "covenant", "user": user } }],
        "current-context": "sa"
    });
    let path = c
        .log_dir
        .join(format!("{tag}-{}-sa.kubeconfig", std::process::id()));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(serde_yaml::to_string(&kc).expect("yaml").as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let who = kubectl(&[
        "--kubeconfig",
        &path.to_string_lossy(),
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(
        who.expect_ok().trim(),
        user,
        "the token kubeconfig authenticates as the ServiceAccount"
    );
    path
}

/// The operator container of a Deployment: its image, its args and its env var names.
pub fn operator_container(d: &Deployment) -> (String, Vec<String>, Vec<String>) {
    let c = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .unwrap_or_else(|| panic!("the Deployment has no container: {d:?}"));
    (
        c.image.clone().unwrap_or_default(),
        c.args.clone().unwrap_or_default(),
        c.env.iter().flatten().map(|e| e.name.clone()).collect(),
    )
}

/// The arguments a Deployment's `args` give `covenant run`, for [`crate::operator::Operator::custom`]:
/// without `run` (which must come first) and the listen address (the harness picks a free port).
#[track_caller]
pub fn run_args(args: &[String]) -> Vec<&str> {
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--metrics-addr"))
        .collect()
}

/// Waits until every Covenant CRD is Established.
pub async fn wait_crds_established(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in CRDS {
        crate::wait_for(&crds, crd, "be Established", crate::TIMEOUT, |c| {
            c.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .await;
    }
}

/// `make dist` (hack/dist.sh) into `dir`, with the cluster's helm; returns `dir`.
#[track_caller]
pub fn make_dist(c: &Cluster, dir: &Path) -> PathBuf {
    let path = format!(
        "{}:{}",
        c.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = output(
        format!("hack/dist.sh {}", dir.display()),
        Command::new("bash")
            .arg("hack/dist.sh")
            .arg(dir)
            .env("PATH", path)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output(),
    );
    out.expect_ok();
    dir.to_path_buf()
}

/// The container image archive `hack/build-image.sh` wrote (an OCI archive), named by
/// `COVENANT_IMAGE_ARCHIVE` (`e2e/run.sh` builds it and sets it). Panics, saying how to build it,
/// when it is not set or not a file.
pub fn image_archive() -> PathBuf {
    let path = std::env::var_os("COVENANT_IMAGE_ARCHIVE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "COVENANT_IMAGE_ARCHIVE is not set: build the image with \
                 `hack/build-image.sh target/covenant-image.tar` and set COVENANT_IMAGE_ARCHIVE to it \
                 (e2e/run.sh does both)"
            )
        });
    assert!(
        path.is_file(),
        "COVENANT_IMAGE_ARCHIVE={} is not a file: build it with `hack/build-image.sh {}`",
        path.display(),
        path.display()
    );
    path
}

/// An OCI registry on a free loopback port, plain HTTP, in memory: `crane registry serve` of
/// go-containerregistry (built from its Go module by `e2e/tools/build.sh`, like the other judges).
/// Killed when dropped; its log (every request) is `<log dir>/registry-<binary>-<pid>.log`.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`: the registry's host in image references and `oci://` URLs.
    pub host: String,
    log: PathBuf,
    crane: PathBuf,
    dir: PathBuf,
}

impl Registry {
    /// Starts the registry and waits until it accepts connections.
    pub fn start(c: &Cluster) -> Registry {
        let crane = crate::tools::dir()
            .unwrap_or_else(|e| panic!("the judges of e2e/tools: {e}"))
            .join("crane");
        let stem = format!(
            "registry-{}-{}",
            crate::cluster::binary_name(),
            std::process::id()
        );
        let log = c.log_dir.join(format!("{stem}.log"));
        let dir = c.log_dir.join(stem);
        std::fs::create_dir_all(&dir).expect("the registry's work directory");
        let file = std::fs::File::create(&log).expect("the registry log");
        // `--address 127.0.0.1:0`: loopback only, a port the kernel picks; the log says which.
        let child = Command::new(&crane)
            .args(["registry", "serve", "--address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} registry serve: {e}", crane.display()));
        crate::operator::spawn_kill_watchdog(child.id(), "registry serve", "registry");
        let mut r = Registry {
            child,
            host: String::new(),
            log,
            crane,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            if let Some(p) = text
                .lines()
                .find_map(|l| l.split("serving on port ").nth(1))
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break p;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("crane registry serve exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "crane registry serve said no port in 20 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        r.host = format!("127.0.0.1:{port}");
        let addr = r.host.parse().expect("a socket address");
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry on {} does not accept connections",
                r.host
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "[registry] crane registry serve on {} (log {})",
            r.host,
            r.log.display()
        );
        r
    }

    /// Runs crane (the registry's own client) with `args`.
    pub fn crane(&self, args: &[&str]) -> KubectlOutput {
        output(
            format!("crane {}", args.join(" ")),
            Command::new(&self.crane)
                .args(args)
                .env("DOCKER_CONFIG", self.dir.join("docker-config"))
                .stdin(Stdio::null())
                .output(),
        )
    }

    /// Pushes the image of the OCI archive `archive` (as `hack/build-image.sh` writes it) as
    /// `<host>/<name>` (`covenant:0.2.0`) with `crane push` (which reads an OCI layout: the archive,
    /// unpacked). Returns the manifest the archive holds: its digest and its bytes.
    #[track_caller]
    pub fn push_image(&self, archive: &Path, name: &str) -> (String, Vec<u8>) {
        let layout = self.dir.join(format!("layout-{}", crate::unique()));
        std::fs::create_dir_all(&layout).expect("the layout directory");
        let untar = Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout)
            .status()
            .expect("run tar");
        assert!(untar.success(), "tar -xf {} failed", archive.display());
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(layout.join("index.json")).expect("the archive's index.json"),
        )
        .expect("index.json is JSON");
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
        let digest = manifests[0]["digest"]
            .as_str()
            .expect("a digest")
            .to_string();
        let blob = layout.join("blobs").join(digest.replace(':', "/"));
        let manifest = std::fs::read(&blob).expect("the manifest blob");
        let reference = format!("{}/{name}", self.host);
        self.crane(&["push", &layout.to_string_lossy(), &reference])
            .expect_ok();
        (digest, manifest)
    }

    /// Pushes the packaged chart `tgz` to `oci://<host>/charts` with `helm push --plain-http`;
    /// returns the digest helm reports.
    #[track_caller]
    pub fn push_chart(&self, c: &Cluster, tgz: &Path) -> String {
        let out = helm(
            c,
            &[
                "push",
                &tgz.to_string_lossy(),
                &format!("oci://{}/charts", self.host),
                "--plain-http",
            ],
        );
        out.expect_ok();
        // helm prints "Pushed: ..." and "Digest: sha256:..." (on stderr in Helm 3).
        let text = format!("{}\n{}", out.stdout, out.stderr);
        text.lines()
            .find_map(|l| l.strip_prefix("Digest: "))
            .unwrap_or_else(|| panic!("`{}` printed no digest:\n{text}", out.command))
            .trim()
            .to_string()
    }

    /// `oci://<host>/charts/covenant`: where [`Registry::push_chart`] put the chart.
    pub fn chart_url(&self) -> String {
        format!("oci://{}/charts/covenant", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an Account `<base>-<suffix>` that names no package and waits until it is Ready; returns
/// its name and its quota's `pods`, which say which package it was provisioned on (the shipped
/// `standard` allows 20).
pub async fn ready_account_on_the_default_package(
    t: &crate::TestCtx,
    base: &str,
) -> (String, Option<String>) {
    let acct = t.account(base);
    t.apply(&crate::fixtures::account(
        &acct,
        None,
        &[],
        &[&format!("alice-{}", t.suffix)],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    crate::wait_account_ready(&t.client, &acct).await;
    let q = Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(t.client.clone(), &acct)
        .get("covenant-quota")
        .await
        .unwrap_or_else(|e| panic!("ResourceQuota {acct}/covenant-quota: {e}"));
    let pods = crate::fixtures::hard(&q).get("pods").cloned();
    (acct, pods)
}
