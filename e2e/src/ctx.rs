//! Per-test context: unique names, an admin client, cleanup of what the test created, and a dump of
//! the cluster's Covenant state and the operator log when the test fails.

use std::sync::Mutex;

use kube::Client;
use kube::core::DynamicObject;

use crate::cluster::{cluster, kubectl, tail};
use crate::{k8s, operator};

/// What [`TestCtx::apply`] applies: YAML text (one or more documents), or an object that serializes
/// with its `apiVersion` and `kind` (the operator's kinds, Kubernetes' kinds, a `json!` value).
pub trait Manifest {
    /// The manifest as YAML (JSON is YAML).
    fn manifest(&self) -> String;
}

impl Manifest for str {
    fn manifest(&self) -> String {
        self.to_string()
    }
}

impl Manifest for String {
    fn manifest(&self) -> String {
        self.clone()
    }
}

macro_rules! serialized_manifest {
    ($($t:ty),* $(,)?) => {$(
        impl Manifest for $t {
            fn manifest(&self) -> String {
                serde_json::to_string(self).expect("an object serializes to JSON")
            }
        }
    )*};
}

serialized_manifest!(
    serde_json::Value,
    covenant::api::Account,
    covenant::api::SupportPackage,
    covenant::api::Suspension,
    covenant::api::DeprecationNotice,
    covenant::api::NoticeResponse,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::RoleBinding,
);

/// What a test created, to delete afterwards, and what to print if it fails.
pub struct TestCtx {
    /// The test's name (for messages).
    pub test: String,
    /// The random suffix of every name the test makes.
    pub suffix: String,
    /// An admin client.
    pub client: Client,
    accounts: Mutex<Vec<String>>,
    packages: Mutex<Vec<String>>,
    namespaces: Mutex<Vec<String>>,
    cluster_scoped: Mutex<Vec<(String, String)>>,
}

impl TestCtx {
    /// A test that needs the operator: starts the cluster and the operator on first use.
    pub async fn new(test: &str) -> Self {
        let ctx = Self::without_operator(test).await;
        operator::ensure();
        ctx
    }

    /// A test of the cluster alone (no operator).
    pub async fn without_operator(test: &str) -> Self {
        cluster();
        TestCtx {
            test: test.to_string(),
            suffix: crate::unique(),
            client: k8s::client().await,
            accounts: Mutex::default(),
            packages: Mutex::default(),
            namespaces: Mutex::default(),
            cluster_scoped: Mutex::default(),
        }
    }

    /// `<base>-<suffix>`: unique across tests and runs.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    /// A unique Account name, deleted (and its namespaces) after the test.
    pub fn account(&self, base: &str) -> String {
        let n = self.name(base);
        lock(&self.accounts).push(n.clone());
        n
    }

    /// A unique SupportPackage name, deleted after the test.
    pub fn package(&self, base: &str) -> String {
        let n = self.name(base);
        lock(&self.packages).push(n.clone());
        n
    }

    /// A unique namespace name, deleted after the test (for namespaces the test creates itself, or
    /// that an account of another test's making might leave behind).
    pub fn namespace(&self, base: &str) -> String {
        let n = self.name(base);
        lock(&self.namespaces).push(n.clone());
        n
    }

    /// Deletes the cluster-scoped object `kind/name` after the test.
    pub fn track(&self, kind: &str, name: &str) {
        lock(&self.cluster_scoped).push((kind.to_string(), name.to_string()));
    }

    /// A User `<base>-<suffix>` granted `rules` cluster-wide (a ClusterRole and its binding, both
    /// deleted after the test), and a client that impersonates it.
    pub async fn user_with_cluster_rules(
        &self,
        base: &str,
        rules: serde_json::Value,
    ) -> (String, kube::Client) {
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        use kube::Api;
        use kube::api::PostParams;
        let user = self.name(base);
        let role = self.name(&format!("{base}-role"));
        self.track("clusterroles", &role);
        self.track("clusterrolebindings", &role);
        let cr: ClusterRole = serde_json::from_value(
            serde_json::json!({ "metadata": { "name": role }, "rules": rules }),
        )
        .expect("a ClusterRole");
        Api::<ClusterRole>::all(self.client.clone())
            .create(&PostParams::default(), &cr)
            .await
            .unwrap_or_else(|e| panic!("ClusterRole {role}: {e}"));
        let crb: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": { "name": role },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        }))
        .expect("a ClusterRoleBinding");
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .create(&PostParams::default(), &crb)
            .await
            .unwrap_or_else(|e| panic!("ClusterRoleBinding {role}: {e}"));
        // The authorizer learns of a new binding from its own watch: until it has, the user's
        // requests are refused as if it held nothing. Wait until it answers yes to the first verb on
        // the first resource of every rule.
        for rule in rules.as_array().into_iter().flatten() {
            let first = |field: &str| {
                rule[field][0]
                    .as_str()
                    .unwrap_or_else(|| panic!("a rule without {field}: {rule}"))
                    .to_string()
            };
            let (group, resource, verb) = (first("apiGroups"), first("resources"), first("verbs"));
            let (resource, sub) = match resource.split_once('/') {
                Some((r, sub)) => (r.to_string(), sub.to_string()),
                None => (resource, String::new()),
            };
            let resource = match group.as_str() {
                "" => resource,
                g => format!("{resource}.{g}"),
            };
            crate::eventually(
                &format!("the authorizer lets {user} {verb} {resource}"),
                crate::TIMEOUT,
                || {
                    let (c, user, verb, resource, sub) = (
                        self.client.clone(),
                        user.clone(),
                        verb.clone(),
                        resource.clone(),
                        sub.clone(),
                    );
                    async move {
                        if k8s::can(&c, &user, &[], &verb, &resource, &sub, "").await {
                            Ok(())
                        } else {
                            Err("not yet".to_string())
                        }
                    }
                },
            )
            .await;
        }
        let client = k8s::impersonate(&user, &[]).await;
        (user, client)
    }

    /// Server-side applies a manifest (YAML, or an object of the operator's or Kubernetes' types) as
    /// the admin; panics with the error.
    #[track_caller]
    pub fn apply<'a, M: Manifest + ?Sized>(
        &'a self,
        manifest: &'a M,
    ) -> impl std::future::Future<Output = Vec<DynamicObject>> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let yaml = manifest.manifest();
            match k8s::apply_yaml(&self.client, &yaml).await {
                Ok(v) => v,
                Err(e) => panic!("{caller}: apply failed: {e:#}\n{yaml}"),
            }
        }
    }

    /// Prints the Covenant objects, the test's namespaces and their managed objects, recent events and
    /// the operator log (to the test's captured output).
    pub fn dump(&self) {
        let mut s = format!(
            "\n========== e2e dump for failed test {} ==========\n",
            self.test
        );
        let mut section = |title: &str, args: &[&str]| {
            let out = kubectl(args);
            s.push_str(&format!("----- {title} (`{}`) -----\n", out.command));
            s.push_str(if out.success {
                &out.stdout
            } else {
                &out.stderr
            });
            s.push('\n');
        };
        section("all Covenant objects", &["get", "covenant", "-o", "yaml"]);
        let accounts = lock(&self.accounts).clone();
        if !accounts.is_empty() {
            let sel = format!("covenant.dev/account in ({})", accounts.join(","));
            section(
                "this test's managed objects",
                &[
                    "get",
                    "namespaces,resourcequotas,limitranges,networkpolicies,rolebindings",
                    "-A",
                    "-l",
                    &sel,
                    "-o",
                    "wide",
                    "--show-labels",
                ],
            );
        }
        let out = kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"]);
        s.push_str("----- recent events (last 60) -----\n");
        s.push_str(&tail(
            if out.success {
                &out.stdout
            } else {
                &out.stderr
            },
            60,
        ));
        s.push('\n');
        s.push_str(&operator::log_tail(80));
        s.push('\n');
        s.push_str("========== end of dump ==========\n");
        eprintln!("{s}");
    }

    /// Deletes what the test created: accounts (waiting for their finalizers), then their namespaces
    /// (by label) and the test's own namespaces, then packages. Returns what could not be deleted.
    fn cleanup(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let accounts = lock(&self.accounts).clone();
        let crd_present = kubectl(&["get", "crd", "accounts.covenant.dev"]).success;
        if !accounts.is_empty() && crd_present {
            let mut args = vec![
                "delete",
                "accounts.covenant.dev",
                "--ignore-not-found",
                "--wait=true",
                // An account with Delete waits for its namespaces to be emptied by the namespace
                // controller: minutes for one full of objects on a loaded machine (a CI run saw a
                // tier test's namespace, with a Deployment, claims and quotas, take 3 minutes).
                "--timeout=300s",
            ];
            args.extend(accounts.iter().map(String::as_str));
            let out = kubectl(&args);
            if !out.success {
                problems.push(format!(
                    "`{}` failed (finalizer not removed?):\n{}{}",
                    out.command, out.stdout, out.stderr
                ));
            }
        }
        let mut ns_args = vec![
            "delete".to_string(),
            "namespaces".into(),
            "--ignore-not-found".into(),
            "--wait=true".into(),
            "--timeout=120s".into(),
        ];
        if !accounts.is_empty() {
            ns_args.push("-l".into());
            ns_args.push(format!("covenant.dev/account in ({})", accounts.join(",")));
            let args: Vec<&str> = ns_args.iter().map(String::as_str).collect();
            let out = kubectl(&args);
            if !out.success {
                problems.push(format!("`{}` failed:\n{}", out.command, out.stderr));
            }
            ns_args.truncate(5);
        }
        let namespaces = lock(&self.namespaces).clone();
        if !namespaces.is_empty() {
            ns_args.extend(namespaces);
            let args: Vec<&str> = ns_args.iter().map(String::as_str).collect();
            let out = kubectl(&args);
            if !out.success {
                problems.push(format!("`{}` failed:\n{}", out.command, out.stderr));
            }
        }
        let packages = lock(&self.packages).clone();
        if !packages.is_empty() && crd_present {
            let mut args = vec![
                "delete",
                "supportpackages.covenant.dev",
                "--ignore-not-found",
                "--timeout=30s",
            ];
            args.extend(packages.iter().map(String::as_str));
            let out = kubectl(&args);
            if !out.success {
                problems.push(format!("`{}` failed:\n{}", out.command, out.stderr));
            }
        }
        for (kind, name) in lock(&self.cluster_scoped).clone() {
            let out = kubectl(&[
                "delete",
                &kind,
                &name,
                "--ignore-not-found",
                "--timeout=60s",
            ]);
            if !out.success {
                problems.push(format!("`{}` failed:\n{}", out.command, out.stderr));
            }
        }
        problems
    }
}

impl Drop for TestCtx {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump();
        }
        let problems = self.cleanup();
        if !problems.is_empty() {
            let msg = format!(
                "cleanup after test {} failed:\n{}",
                self.test,
                problems.join("\n")
            );
            if failed {
                eprintln!("{msg}");
            } else {
                self.dump();
                panic!("{msg}");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
