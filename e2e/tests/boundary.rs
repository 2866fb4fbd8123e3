//! The tenant boundary, by effect: each test is an attack on it, named as a sentence, carried out on
//! the real control plane with the operator running, and what the API server answers is what counts.
//! Authorization is asked of the API server itself (a `SubjectAccessReview` answers what RBAC grants)
//! and tried with real requests under impersonation (they also meet the admission policies: the
//! read-only guard of suspended and retained namespaces, the guard of Covenant's namespace labels, the
//! RoleBinding policies, Pod Security). There is no kubelet, so pods never run: admission and
//! authorization are what is tested.
//!
//! Every test makes its own packages, accounts, namespaces and users (random suffix) and deletes them;
//! none marks a package `default: true`.

use std::time::{Duration, Instant};

use covenant::api::{
    Account, NetworkSpec, PackageNetwork, PodSecurityLevel, SupportPackage, SupportPackageSpec,
};
use covenant_e2e::fixtures::{self, api_error, deployment, forbidden, label, pod};
use covenant_e2e::netpol::{self, Peer, Probe};
use covenant_e2e::{
    Manifest, TIMEOUT, Tenant, TestCtx, can, condition, eventually, impersonate, wait_account,
    wait_account_ready, wait_for, wait_gone,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Pod, ResourceQuota, Secret, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const ACCOUNT_LABEL: &str = "covenant.dev/account";
const UID_ANNOTATION: &str = "covenant.dev/account-uid";
const ALLOWED_SUBJECTS: &str = "covenant.dev/allowed-subjects";
const READ_ONLY_LABEL: &str = "covenant.dev/read-only";
const RETAINED_UNTIL: &str = "covenant.dev/retained-until";
const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
const WARN: &str = "pod-security.kubernetes.io/warn";
const AUDIT: &str = "pod-security.kubernetes.io/audit";
const SUSPENSIONS: &str = "suspensions.covenant.dev";
const ADMIN_ROLE: &str = "covenant-tenant-admin";
const READONLY_ROLE: &str = "covenant-tenant-readonly";
const FREEZE: &str = "covenant-freeze";
const DENY_ALL: &str = "covenant-suspension-deny-all";
const ISOLATION: &str = "covenant-isolation";
const EGRESS: &str = "covenant-egress";
const NARROWED: &str = "covenant-narrowed";
/// The label the API server sets on every namespace to its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The tenant's own objects, made before any test state: a pod, a Deployment, a Secret.
const KEEP: &str = "keep";
const WEB: &str = "web";
const KEEP_SECRET: &str = "keep-secret";
/// The Role a tenant administrator makes with write access, and the ServiceAccount it binds it to.
const WRITER: &str = "writer";
const DEPLOYER: &str = "deployer";

/// Writes every tenant identity tries: `(verb, resource, subresource)`, a resource as
/// `resource.group`.
const WRITES: &[(&str, &str, &str)] = &[
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("create", "secrets", ""),
    ("delete", "secrets", ""),
    ("patch", "deployments.apps", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("create", "pods", "exec"),
    ("create", "serviceaccounts", "token"),
];
/// Writes only Covenant's own binding gives the administrators (the Role they made for themselves
/// holds none of them): how the authorizer shows which of Covenant's bindings is in place.
const ADMIN_ONLY: &[(&str, &str, &str)] = &[
    ("create", "configmaps", ""),
    ("create", "deployments.apps", ""),
];
/// Reads an administrator keeps in every state.
const READS: &[(&str, &str, &str)] = &[
    ("get", "pods", ""),
    ("list", "pods", ""),
    ("get", "secrets", ""),
];
/// What the built-in `view` role grants (pods) and what it does not (secrets, any write).
const VIEW_GRANTS: &[(&str, &str, &str)] = &[("get", "pods", ""), ("list", "pods", "")];
const VIEW_DENIES: &[(&str, &str, &str)] = &[
    ("get", "secrets", ""),
    ("create", "pods", ""),
    ("delete", "pods", ""),
];

// ---------------------------------------------------------------------------------------------------
// Tenants, identities and states.

/// Someone a request can be made as: a user, or a ServiceAccount with the groups the API server gives
/// its tokens.
#[derive(Debug, Clone)]
struct Identity {
    user: String,
    groups: Vec<String>,
}

impl Identity {
    fn user(name: &str) -> Self {
        Identity {
            user: name.to_string(),
            groups: Vec::new(),
        }
    }

    fn service_account(ns: &str, name: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ],
        }
    }

    fn groups(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }

    /// A client making its requests as this identity (impersonated by the admin).
    async fn client(&self) -> Client {
        impersonate(&self.user, &self.groups()).await
    }

    /// `Ok` when the API server's authorizer answers `expect` to every check in `ns`.
    async fn authorized(
        &self,
        admin: &Client,
        checks: &[(&str, &str, &str)],
        ns: &str,
        expect: bool,
    ) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (verb, resource, sub) in checks {
            let allowed = can(admin, &self.user, &self.groups(), verb, resource, sub, ns).await;
            if allowed != expect {
                wrong.push(format!(
                    "{verb} {resource}{}{sub}: {}",
                    if sub.is_empty() { "" } else { "/" },
                    if allowed { "allowed" } else { "denied" }
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "SubjectAccessReview for {} in {ns}, expected every answer to be {}: {}",
                self.user,
                if expect { "allowed" } else { "denied" },
                wrong.join("; ")
            ))
        }
    }
}

/// `Ok` once `check` is, or its last error after [`TIMEOUT`] (RBAC answers from the API server's
/// informers, which follow a binding's change within moments).
async fn eventually_result<F, Fut>(what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(format!("{what}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A SupportPackage `base-<suffix>` (room for 10 pods) that `edit` changes.
async fn new_package(
    t: &TestCtx,
    base: &str,
    edit: impl FnOnce(&mut SupportPackageSpec),
) -> String {
    let name = t.package(base);
    let mut p = fixtures::package(
        &name,
        json!({ "pods": "10", "requests.cpu": "4", "configmaps": "20" }),
    );
    edit(&mut p.spec);
    t.apply(&p).await;
    name
}

/// The network settings of a package whose platform namespace is `platform` (by name), denying
/// `denied` on top of the metadata addresses.
fn platform_network(platform: &str, denied: &[&str]) -> PackageNetwork {
    PackageNetwork {
        ingress_from: vec![LabelSelector {
            match_labels: Some(fixtures::map(&[(NAME_LABEL, platform)])),
            ..Default::default()
        }],
        denied_cidrs: denied.iter().map(|c| c.to_string()).collect(),
    }
}

async fn wait_default_sa(client: &Client, ns: &str) {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for(&sa, "default", "be created", TIMEOUT, |_| true).await;
}

/// Applies a Suspension `base-<suffix>` of `account` (deleted after the test) and returns its name.
async fn suspend(t: &TestCtx, base: &str, account: &str) -> String {
    let name = t.name(base);
    t.track(SUSPENSIONS, &name);
    t.apply(&fixtures::suspension(
        &name,
        account,
        "AcceptableUsePolicy",
        &format!("Abuse report {} confirmed", t.suffix),
        json!({}),
    ))
    .await;
    name
}

/// Lifts a suspension by deleting it.
async fn lift(t: &TestCtx, suspension: &str) {
    let api: Api<covenant::api::Suspension> = Api::all(t.client.clone());
    api.delete(suspension, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete Suspension {suspension}: {e}"));
    wait_gone(&api, suspension, false, TIMEOUT).await;
}

/// A JSON merge patch of the namespace `name` through `api`.
async fn merge_patch(
    api: &Api<Namespace>,
    name: &str,
    body: Value,
) -> Result<Namespace, kube::Error> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
}

/// Waits until namespace `ns` carries `covenant.dev/read-only=<value>` (None: no such label).
async fn wait_read_only(t: &TestCtx, ns: &str, value: Option<&str>) -> Namespace {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let what = match value {
        Some(v) => format!("carry {READ_ONLY_LABEL}={v}"),
        None => format!("carry no {READ_ONLY_LABEL} label"),
    };
    wait_for(&nss, ns, &what, TIMEOUT, |n| {
        label(n, READ_ONLY_LABEL).as_deref() == value
    })
    .await
}

/// The names of the NetworkPolicies in `ns`, sorted.
async fn network_policies(client: &Client, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list NetworkPolicies in {ns}: {e}"))
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// Waits until the NetworkPolicies in `ns` are exactly `want` (sorted).
async fn wait_network_policies(t: &TestCtx, ns: &str, want: &[&str]) {
    eventually(
        &format!("the NetworkPolicies in {ns} are exactly {want:?}"),
        TIMEOUT,
        || async {
            let have = network_policies(&t.client, ns).await;
            if have == want {
                Ok(())
            } else {
                Err(format!("{have:?}"))
            }
        },
    )
    .await;
}

/// Waits until `ns` is frozen for new pods: `covenant-freeze` allows none and the quota controller has
/// filled its status (admission enforces a quota only from then on).
async fn wait_frozen(t: &TestCtx, ns: &str) {
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), ns);
    wait_for(
        &quotas,
        FREEZE,
        "allow no pods (spec.hard and status.hard pods=0)",
        TIMEOUT,
        |q| {
            fixtures::hard(q).get("pods").map(String::as_str) == Some("0")
                && fixtures::status_hard(q).get("pods").map(String::as_str) == Some("0")
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------
// Requests.

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "stringData": { "invoice": "42" }
    }))
    .expect("a valid Secret")
}

fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": data }))
        .expect("a valid ConfigMap")
}

/// A RoleBinding of `role_kind`/`role` to `subjects`.
fn role_binding(name: &str, role_kind: &str, role: &str, subjects: Value) -> RoleBinding {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role },
        "subjects": subjects
    }))
    .expect("a valid RoleBinding")
}

fn user_subject(name: &str) -> Value {
    json!({ "kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io" })
}

fn sa_subject(ns: &str, name: &str) -> Value {
    json!({ "kind": "ServiceAccount", "name": name, "namespace": ns })
}

/// `POST pods/<pod>/exec` (the verb `create` on `pods/exec`, admitted as CONNECT). With no kubelet
/// it can never attach; what matters is whether the API server refuses it with 403 first.
async fn exec(c: &Client, ns: &str, pod: &str) -> Result<String, kube::Error> {
    let req = http::Request::post(format!(
        "/api/v1/namespaces/{ns}/pods/{pod}/exec?command=true&stdout=true&container=pause"
    ))
    .body(Vec::new())
    .expect("a valid request");
    c.request_text(req).await
}

/// Asks for a token of ServiceAccount `sa` (`create` on `serviceaccounts/token`).
async fn token(c: &Client, ns: &str, sa: &str) -> Result<Value, kube::Error> {
    token_for(c, ns, sa, 600).await
}

/// A TokenRequest for ServiceAccount `sa` lasting `seconds`.
async fn token_for(c: &Client, ns: &str, sa: &str, seconds: i64) -> Result<Value, kube::Error> {
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": seconds }
    });
    Api::<ServiceAccount>::namespaced(c.clone(), ns)
        .create_subresource("token", sa, &PostParams::default(), &body)
        .await
}

/// `Ok` when `r` was refused by the read-only guard of a suspended or retained namespace: 403
/// Forbidden, and the message says read-only, names the namespace and the account, and says why
/// (`suspended` or `retained`).
fn refused_read_only<T>(
    what: &str,
    r: Result<T, kube::Error>,
    ns: &str,
    account: &str,
    why: &str,
) -> Result<(), String> {
    match r {
        Err(kube::Error::Api(s))
            if s.code == 403
                && s.reason == "Forbidden"
                && s.message.contains("read-only")
                && s.message.contains(ns)
                && s.message.contains(account)
                && s.message.to_lowercase().contains(why) =>
        {
            Ok(())
        }
        Err(kube::Error::Api(s)) => Err(format!(
            "{what}: expected 403 Forbidden from the read-only guard (naming {ns}, {account}, {why}), got {} {}: {}",
            s.code, s.reason, s.message
        )),
        Err(e) => Err(format!(
            "{what}: expected 403 Forbidden from the read-only guard, got {e}"
        )),
        Ok(_) => Err(format!(
            "{what}: expected 403 Forbidden from the read-only guard, but it was allowed"
        )),
    }
}

/// What a tenant administrator makes in `ns` before any test state: the ServiceAccount `deployer`, a
/// Role `writer` with the writes of [`WRITES`] (and the reads they need), bound to the ServiceAccount
/// and to the administrator itself. A tenant-made binding is exactly what a suspension does not
/// touch, so only the read-only guard stands between these identities and a write. Retries while the
/// admission policy has not yet seen the stamped namespace.
async fn arm_writer(admin: &Client, ns: &str, admin_user: &str) {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": DEPLOYER } })).unwrap(),
    )
    .await
    .expect("the administrator creates a ServiceAccount");
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": WRITER },
        "rules": [
            { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"] },
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "delete"] },
            { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"] },
            { "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
              "verbs": ["get", "create", "delete"] },
            { "apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"] },
            { "apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"] }
        ]
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("the administrator creates a Role within its own rights");
    let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    for (name, subject) in [
        ("deployer-writer", sa_subject(ns, DEPLOYER)),
        ("self-writer", user_subject(admin_user)),
    ] {
        let rb = role_binding(name, "Role", WRITER, json!([subject]));
        eventually(
            &format!("the administrator binds {WRITER} in {ns} ({name})"),
            TIMEOUT,
            || async {
                match rbs.create(&PostParams::default(), &rb).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
    }
}

/// The tenant's data, made by the cluster admin: the pod `keep`, the Deployment `web`, the Secret
/// `keep-secret`.
async fn tenant_data(admin: &Client, ns: &str) {
    Api::<Pod>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &pod(KEEP))
        .await
        .unwrap_or_else(|e| panic!("create pod {ns}/{KEEP}: {e}"));
    Api::<Deployment>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &deployment(WEB))
        .await
        .unwrap_or_else(|e| panic!("create Deployment {ns}/{WEB}: {e}"));
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &secret(KEEP_SECRET))
        .await
        .unwrap_or_else(|e| panic!("create Secret {ns}/{KEEP_SECRET}: {e}"));
}

/// Every write of [`WRITES`] as `c` in `ns`, for real: create and delete a pod, a Secret and a
/// RoleBinding, patch the Deployment, exec into the pod (never 403: it fails later, without a
/// kubelet), ask for a ServiceAccount token. `Ok` when each succeeds. `tag` names the new objects.
async fn writes_work(c: &Client, ns: &str, tag: &str) -> Result<(), String> {
    let mut failures = Vec::new();
    let dp = DeleteParams::default();
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let name = format!("{tag}-pod");
    match pods.create(&PostParams::default(), &pod(&name)).await {
        Ok(_) => {
            if let Err(e) = pods.delete(&name, &dp).await {
                failures.push(format!("delete pod {name}: {e}"));
            }
        }
        Err(e) => failures.push(format!("create pod {name}: {e}")),
    }
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let name = format!("{tag}-secret");
    match secrets.create(&PostParams::default(), &secret(&name)).await {
        Ok(_) => {
            if let Err(e) = secrets.delete(&name, &dp).await {
                failures.push(format!("delete secret {name}: {e}"));
            }
        }
        Err(e) => failures.push(format!("create secret {name}: {e}")),
    }
    let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), ns);
    let name = format!("{tag}-binding");
    let rb = role_binding(&name, "Role", WRITER, json!([sa_subject(ns, DEPLOYER)]));
    match rbs.create(&PostParams::default(), &rb).await {
        Ok(_) => {
            if let Err(e) = rbs.delete(&name, &dp).await {
                failures.push(format!("delete RoleBinding {name}: {e}"));
            }
        }
        Err(e) => failures.push(format!("create RoleBinding {name}: {e}")),
    }
    if let Err(e) = Api::<Deployment>::namespaced(c.clone(), ns)
        .patch(
            WEB,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "e2e/touched-by": tag } } })),
        )
        .await
    {
        failures.push(format!("patch Deployment {WEB}: {e}"));
    }
    if let Err(kube::Error::Api(s)) = exec(c, ns, KEEP).await
        && s.code == 403
    {
        failures.push(format!("exec into pod {KEEP}: 403 {}", s.message));
    }
    if let Err(e) = token(c, ns, DEPLOYER).await {
        failures.push(format!("create a token of ServiceAccount {DEPLOYER}: {e}"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("writes in {ns} as {tag}:\n{}", failures.join("\n")))
    }
}

/// Every write of [`WRITES`] as `c` in `ns`, for real; `Ok` when the read-only guard refuses each
/// (see [`refused_read_only`]).
async fn writes_refused(
    c: &Client,
    ns: &str,
    account: &str,
    why: &str,
    tag: &str,
) -> Result<(), String> {
    let pp = PostParams::default();
    let dp = DeleteParams::default();
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let rb = role_binding(
        &format!("{tag}-binding"),
        "Role",
        WRITER,
        json!([sa_subject(ns, DEPLOYER)]),
    );
    let results = vec![
        refused_read_only(
            "create a pod",
            pods.create(&pp, &pod(&format!("{tag}-pod"))).await,
            ns,
            account,
            why,
        ),
        refused_read_only(
            "delete a pod",
            pods.delete(KEEP, &dp).await,
            ns,
            account,
            why,
        ),
        refused_read_only(
            "create a secret",
            secrets.create(&pp, &secret(&format!("{tag}-secret"))).await,
            ns,
            account,
            why,
        ),
        refused_read_only(
            "delete a secret",
            secrets.delete(KEEP_SECRET, &dp).await,
            ns,
            account,
            why,
        ),
        refused_read_only(
            "patch a Deployment",
            deps.patch(
                WEB,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 7 } })),
            )
            .await,
            ns,
            account,
            why,
        ),
        refused_read_only(
            "create a RoleBinding",
            rbs.create(&pp, &rb).await,
            ns,
            account,
            why,
        ),
        refused_read_only("exec into a pod", exec(c, ns, KEEP).await, ns, account, why),
        refused_read_only(
            "create a ServiceAccount token",
            token(c, ns, DEPLOYER).await,
            ns,
            account,
            why,
        ),
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("writes in {ns} as {tag}:\n{}", failures.join("\n")))
    }
}

/// Waits until the read-only guard refuses a (dry-run) Secret as `c`: the admission policy reads the
/// namespace's label from the API server's informer, a moment after it changed.
async fn wait_guard_refuses(c: &Client, ns: &str, account: &str, why: &str) {
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    eventually(
        &format!("the read-only guard refuses writes in {ns}"),
        TIMEOUT,
        || async {
            refused_read_only(
                "create a secret (dry run)",
                secrets.create(&dry_run(), &secret("probe")).await,
                ns,
                account,
                why,
            )
        },
    )
    .await;
}

/// Waits until a (dry-run) Secret as `c` is allowed again.
async fn wait_guard_allows(c: &Client, ns: &str) {
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    eventually(
        &format!("writes in {ns} are allowed again"),
        TIMEOUT,
        || async {
            secrets
                .create(&dry_run(), &secret("probe"))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// The administrator's real reads: the pod, the pod list, the Secret with its data.
async fn reads_work(c: &Client, ns: &str) -> Result<(), String> {
    let mut failures = Vec::new();
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    if let Err(e) = pods.get(KEEP).await {
        failures.push(format!("get pod {KEEP}: {e}"));
    }
    if let Err(e) = pods.list(&ListParams::default()).await {
        failures.push(format!("list pods: {e}"));
    }
    match Api::<Secret>::namespaced(c.clone(), ns)
        .get(KEEP_SECRET)
        .await
    {
        Ok(s) if s.data.as_ref().is_some_and(|d| d.contains_key("invoice")) => {}
        Ok(s) => failures.push(format!("get secret {KEEP_SECRET}: no data: {s:?}")),
        Err(e) => failures.push(format!("get secret {KEEP_SECRET}: {e}")),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("reads in {ns}:\n{}", failures.join("\n")))
    }
}

/// Events regarding the object named `name` (any namespace).
async fn events_about(client: &Client, name: &str) -> Vec<Event> {
    Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap_or_else(|e| panic!("list events about {name}: {e}"))
        .items
}

// ---------------------------------------------------------------------------------------------------
// Authorization in every state, for every identity a tenant holds.

/// Who acts for a tenant in the identities test: its administrator alice, alice's ServiceAccount
/// (bound to the writer Role she made), and bob (an allowed subject alice bound to `view`), each with
/// a client that impersonates it.
struct Cast {
    alice: Identity,
    sa: Identity,
    bob: Identity,
    as_alice: Client,
    as_sa: Client,
    as_bob: Client,
}

/// Every identity a tenant can hold, in every state of the tenant, as the API server answers: the
/// administrator `alice`, a ServiceAccount the tenant made (bound by alice to a Role of her making),
/// and `bob`, an allowed subject alice bound to the built-in `view` role.
///
/// - Active: alice and the ServiceAccount create and delete pods, Secrets and RoleBindings, patch a
///   Deployment, exec into a pod and ask for tokens; bob reads pods, nothing more. Binding the
///   ServiceAccount to `covenant-tenant-admin` is refused: only Covenant binds that role.
/// - Suspended: every write is refused by the read-only guard, for alice and for the ServiceAccount,
///   although their own RoleBindings still grant the writes in RBAC; reads stay allowed.
/// - Lifted: the writes work again.
/// - Consent withdrawn from bob (removed from `allowedSubjects`): within seconds bob can no longer
///   get pods, the binding alice made no longer names him, and a Warning Event on the Account names
///   the binding.
/// - Retained (the Account, `deletionPolicy: Retain`, deleted): the administrator reads, writes are
///   refused; the tenant's ServiceAccount is taken out of its bindings and can do nothing there.
#[tokio::test]
async fn no_identity_of_a_tenant_writes_while_it_is_suspended_or_retained_and_withdrawn_consent_takes_access_away()
 {
    let t = TestCtx::new("identities").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let bob = Identity::user(&t.name("bob"));
    let allowed = vec![fixtures::user(&bob.user)];
    // deletionPolicy and retentionMonths left to their defaults: Retain, 13 months.
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .retain()
        .spec(|s| s.allowed_subjects = allowed)
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    let alice = Identity::user(&ten.admin);
    let sa = Identity::service_account(ns, DEPLOYER);
    let (as_alice, as_sa, as_bob) = (alice.client().await, sa.client().await, bob.client().await);
    tenant_data(&t.client, ns).await;
    arm_writer(&as_alice, ns, &alice.user).await;
    let rbs: Api<RoleBinding> = Api::namespaced(as_alice.clone(), ns);
    rbs.create(
        &PostParams::default(),
        &role_binding(
            "bob-view",
            "ClusterRole",
            "view",
            json!([user_subject(&bob.user), sa_subject(ns, "reader")]),
        ),
    )
    .await
    .expect("alice binds the built-in view role to bob, an allowed subject, and her reader");
    // Only Covenant binds covenant-tenant-admin, whoever it would name.
    let to_admin = role_binding(
        "deployer-admin",
        "ClusterRole",
        ADMIN_ROLE,
        json!([sa_subject(ns, DEPLOYER)]),
    );
    let refused = api_error(
        "alice binds covenant-tenant-admin to her ServiceAccount",
        rbs.create(&PostParams::default(), &to_admin).await,
    );
    assert_eq!(refused.code, 403, "{refused:?}");

    let cast = Cast {
        alice,
        sa,
        bob,
        as_alice,
        as_sa,
        as_bob,
    };
    assert_every_identity_writes_while_active(&t, &cast, &ten).await;
    let susp = assert_no_identity_writes_while_suspended(&t, &cast, &ten).await;
    assert_the_lift_gives_the_writes_back(&t, &cast, &ten, &susp).await;
    assert_withdrawn_consent_takes_bobs_access_away(&t, &cast, &ten).await;
    assert_no_identity_writes_while_retained(&t, &cast, &ten).await;
}

/// Active: the administrator and its ServiceAccount write, bob reads what `view` grants and no more.
async fn assert_every_identity_writes_while_active(t: &TestCtx, cast: &Cast, ten: &Tenant) {
    let Cast {
        alice,
        sa,
        bob,
        as_alice,
        as_sa,
        as_bob,
        ..
    } = cast;
    let ns = ten.ns.as_str();
    // Active. RBAC sees new bindings once the API server's informers have them: wait for that first.
    eventually("the bindings alice made are in force", TIMEOUT, || async {
        sa.authorized(&t.client, WRITES, ns, true).await?;
        bob.authorized(&t.client, VIEW_GRANTS, ns, true).await
    })
    .await;
    let mut failures = Vec::new();
    for who in [&alice, &sa] {
        failures.extend(
            who.authorized(&t.client, WRITES, ns, true)
                .await
                .err()
                .into_iter()
                .chain(who.authorized(&t.client, READS, ns, true).await.err()),
        );
    }
    failures.extend(
        alice
            .authorized(&t.client, ADMIN_ONLY, ns, true)
            .await
            .err(),
    );
    failures.extend(bob.authorized(&t.client, VIEW_GRANTS, ns, true).await.err());
    failures.extend(
        bob.authorized(&t.client, VIEW_DENIES, ns, false)
            .await
            .err(),
    );
    failures.extend(writes_work(as_alice, ns, "alice-active").await.err());
    failures.extend(writes_work(as_sa, ns, "sa-active").await.err());
    failures.extend(reads_work(as_alice, ns).await.err());
    if let Err(e) = Api::<Pod>::namespaced(as_bob.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        failures.push(format!("bob lists pods while active: {e}"));
    }
    failures.extend(
        forbidden(
            "bob creates a pod while active",
            Api::<Pod>::namespaced(as_bob.clone(), ns)
                .create(&dry_run(), &pod("bobs"))
                .await,
        )
        .err(),
    );
    assert!(
        failures.is_empty(),
        "active tenant:\n{}",
        failures.join("\n")
    );
}

/// Suspended: Covenant's binding of the administrator is the read-only one, the read-only guard
/// stops the writes of the bindings the tenant made, nothing is written; reads go on. Returns the
/// Suspension.
async fn assert_no_identity_writes_while_suspended(
    t: &TestCtx,
    cast: &Cast,
    ten: &Tenant,
) -> String {
    let Cast {
        alice,
        bob,
        as_alice,
        as_sa,
        ..
    } = cast;
    let ns = ten.ns.as_str();
    // Suspended.
    let susp = suspend(t, "aup", &ten.account).await;
    wait_account(&t.client, &ten.account, "Suspended", "True", None).await;
    wait_read_only(t, ns, Some("suspended")).await;
    // Covenant's binding of alice is the read-only one now; the bindings the tenant made stay, so
    // what stops their writes is the read-only guard.
    eventually(
        "alice holds only Covenant's read-only role",
        TIMEOUT,
        || alice.authorized(&t.client, ADMIN_ONLY, ns, false),
    )
    .await;
    wait_guard_refuses(as_alice, ns, &ten.account, "suspended").await;
    wait_guard_refuses(as_sa, ns, &ten.account, "suspended").await;
    let mut failures = Vec::new();
    failures.extend(
        writes_refused(as_alice, ns, &ten.account, "suspended", "alice-suspended")
            .await
            .err(),
    );
    failures.extend(
        writes_refused(as_sa, ns, &ten.account, "suspended", "sa-suspended")
            .await
            .err(),
    );
    failures.extend(alice.authorized(&t.client, READS, ns, true).await.err());
    failures.extend(reads_work(as_alice, ns).await.err());
    failures.extend(bob.authorized(&t.client, VIEW_GRANTS, ns, true).await.err());
    failures.extend(
        bob.authorized(&t.client, VIEW_DENIES, ns, false)
            .await
            .err(),
    );
    assert!(
        failures.is_empty(),
        "suspended tenant:\n{}",
        failures.join("\n")
    );
    // Nothing was written, not even by a request the guard should have caught.
    Api::<Pod>::namespaced(t.client.clone(), ns)
        .get(KEEP)
        .await
        .expect("the pod survives the suspension");
    let web = Api::<Deployment>::namespaced(t.client.clone(), ns)
        .get(WEB)
        .await
        .unwrap();
    assert_eq!(
        web.spec.replicas,
        Some(1),
        "the Deployment was patched while suspended"
    );
    susp
}

/// Lifted: the administrator holds its rights again and every identity writes.
async fn assert_the_lift_gives_the_writes_back(t: &TestCtx, cast: &Cast, ten: &Tenant, susp: &str) {
    let Cast {
        alice,
        as_alice,
        as_sa,
        ..
    } = cast;
    let ns = ten.ns.as_str();
    // Lifted.
    lift(t, susp).await;
    wait_account(&t.client, &ten.account, "Suspended", "False", None).await;
    wait_read_only(t, ns, None).await;
    eventually(
        "alice holds the administrators' rights again",
        TIMEOUT,
        || alice.authorized(&t.client, ADMIN_ONLY, ns, true),
    )
    .await;
    wait_guard_allows(as_alice, ns).await;
    wait_guard_allows(as_sa, ns).await;
    let mut failures = Vec::new();
    failures.extend(writes_work(as_alice, ns, "alice-lifted").await.err());
    failures.extend(writes_work(as_sa, ns, "sa-lifted").await.err());
    failures.extend(reads_work(as_alice, ns).await.err());
    assert!(
        failures.is_empty(),
        "lifted tenant:\n{}",
        failures.join("\n")
    );
}

/// Consent withdrawn: bob leaves allowedSubjects, loses access, is taken out of the binding alice
/// made (which stays for its other subject), and a Warning Event says so.
async fn assert_withdrawn_consent_takes_bobs_access_away(t: &TestCtx, cast: &Cast, ten: &Tenant) {
    let mut failures = Vec::new();
    let Cast { bob, as_bob, .. } = cast;
    let ns = ten.ns.as_str();
    // Consent withdrawn: bob leaves allowedSubjects.
    let withdrawn_at = Instant::now();
    let mut withdrawn = ten.applied.clone();
    withdrawn.spec.allowed_subjects.clear();
    t.apply(&withdrawn).await;
    eventually(
        "the authorizer no longer lets bob get pods",
        TIMEOUT,
        || async {
            if can(&t.client, &bob.user, &[], "get", "pods", "", ns).await {
                Err("bob may still get pods".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    eprintln!(
        "bob lost access {:.1} s after leaving allowedSubjects",
        withdrawn_at.elapsed().as_secs_f64()
    );
    let admin_rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), ns);
    let rb = admin_rbs
        .get("bob-view")
        .await
        .expect("the binding alice made stays for its other subjects");
    let names: Vec<&str> = rb
        .subjects
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec!["reader"],
        "bob-view must name only alice's reader now: {rb:?}"
    );
    assert!(
        can(
            &t.client,
            &format!("system:serviceaccount:{ns}:reader"),
            &["system:serviceaccounts"],
            "get",
            "pods",
            "",
            ns
        )
        .await,
        "the subject that still has consent keeps its access"
    );
    failures.extend(
        forbidden(
            "bob lists pods after consent was withdrawn",
            Api::<Pod>::namespaced(as_bob.clone(), ns)
                .list(&ListParams::default())
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eventually(
        "a Warning Event ConsentWithdrawn on the Account names the binding and bob",
        TIMEOUT,
        || async {
            let evs = events_about(&t.client, &ten.account).await;
            let found = evs.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("ConsentWithdrawn")
                    && e.involved_object.kind.as_deref() == Some("Account")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("bob-view") && m.contains(&bob.user))
            });
            if found {
                Ok(())
            } else {
                Err(format!(
                    "events about the Account: {:?}",
                    evs.iter()
                        .map(|e| format!(
                            "{} {}: {}",
                            e.type_.as_deref().unwrap_or("?"),
                            e.reason.as_deref().unwrap_or("?"),
                            e.message.as_deref().unwrap_or("")
                        ))
                        .collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
}

/// Retained: once the Account is deleted (Retain), nobody writes, the ServiceAccount loses every
/// right, the administrators keep reading.
async fn assert_no_identity_writes_while_retained(t: &TestCtx, cast: &Cast, ten: &Tenant) {
    let Cast {
        alice,
        sa,
        as_alice,
        as_sa,
        ..
    } = cast;
    let ns = ten.ns.as_str();
    // Retained: the Account is deleted with deletionPolicy Retain.
    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .delete(&ten.account, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &ten.account, false, TIMEOUT).await;
    wait_read_only(t, ns, Some("retained")).await;
    wait_guard_refuses(as_alice, ns, &ten.account, "retained").await;
    let mut failures = Vec::new();
    failures.extend(
        writes_refused(as_alice, ns, &ten.account, "retained", "alice-retained")
            .await
            .err(),
    );
    // Only the administrators keep (read-only) access to retained data: the tenant's ServiceAccount
    // was taken out of the bindings alice made, so the API server grants it nothing there any more,
    // neither writes nor reads, and its real requests are refused.
    failures.extend(
        eventually_result("the ServiceAccount loses every right", || async {
            sa.authorized(&t.client, WRITES, ns, false).await?;
            sa.authorized(&t.client, READS, ns, false).await
        })
        .await
        .err(),
    );
    failures.extend(
        forbidden(
            "the ServiceAccount lists Secrets of the retained namespace",
            Api::<Secret>::namespaced(as_sa.clone(), ns)
                .list(&ListParams::default())
                .await,
        )
        .err(),
    );
    failures.extend(alice.authorized(&t.client, READS, ns, true).await.err());
    failures.extend(
        alice
            .authorized(&t.client, ADMIN_ONLY, ns, false)
            .await
            .err(),
    );
    failures.extend(reads_work(as_alice, ns).await.err());
    assert!(
        failures.is_empty(),
        "retained tenant:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------
// Attacks on Covenant's own roles, names and labels.

/// A tenant administrator holds every permission of `covenant-tenant-admin` (and of
/// `covenant-tenant-readonly`) in its namespace, so RBAC's escalation check would let it bind them:
/// to itself in a second binding that no suspension swaps (`backup`), to anyone. The API server
/// refuses any tenant RoleBinding to a role named `covenant-*`; only Covenant binds them.
#[tokio::test]
async fn a_tenant_admin_cannot_bind_covenant_tenant_admin_to_itself_as_a_backup() {
    let t = TestCtx::new("backup-binding").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    let as_alice = impersonate(&ten.admin, &[]).await;
    let rbs: Api<RoleBinding> = Api::namespaced(as_alice.clone(), ns);
    // The control: alice binds a role she made to herself (so the namespace is stamped and seen).
    arm_writer(&as_alice, ns, &ten.admin).await;
    let mut failures = Vec::new();
    for (name, role) in [("backup", ADMIN_ROLE), ("backup-readonly", READONLY_ROLE)] {
        let rb = role_binding(name, "ClusterRole", role, json!([user_subject(&ten.admin)]));
        failures.extend(
            forbidden(
                &format!("alice binds ClusterRole {role} to herself as {name}"),
                rbs.create(&PostParams::default(), &rb).await,
            )
            .err(),
        );
        if Api::<RoleBinding>::namespaced(t.client.clone(), ns)
            .get_opt(name)
            .await
            .unwrap()
            .is_some()
        {
            failures.push(format!("RoleBinding {ns}/{name} exists"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tenant cannot take the name of a binding Covenant uses: a RoleBinding it makes named
/// `covenant-tenant-readonly` (or `covenant-operator`, or any `covenant-*`) is refused, so a later
/// suspension finds the name free and takes effect: the account is `Suspended=True`, Covenant's
/// read-only binding is in place and the namespace is read-only by effect.
#[tokio::test]
async fn a_tenant_cannot_squat_the_name_of_covenants_read_only_binding_to_escape_a_suspension() {
    let t = TestCtx::new("squat").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    tenant_data(&t.client, ns).await;
    let as_alice = impersonate(&ten.admin, &[]).await;
    arm_writer(&as_alice, ns, &ten.admin).await;
    let rbs: Api<RoleBinding> = Api::namespaced(as_alice.clone(), ns);
    let mut failures = Vec::new();
    for name in [READONLY_ROLE, "covenant-operator", "covenant-anything"] {
        // Bound to a role alice made, so RBAC has nothing against it: only the name is wrong.
        let rb = role_binding(name, "Role", WRITER, json!([user_subject(&ten.admin)]));
        failures.extend(
            forbidden(
                &format!("alice creates a RoleBinding named {name}"),
                rbs.create(&PostParams::default(), &rb).await,
            )
            .err(),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    suspend(&t, "aup", &ten.account).await;
    wait_account(&t.client, &ten.account, "Suspended", "True", None).await;
    wait_read_only(&t, ns, Some("suspended")).await;
    let ro = wait_for(
        &Api::<RoleBinding>::namespaced(t.client.clone(), ns),
        READONLY_ROLE,
        "be Covenant's read-only binding",
        TIMEOUT,
        |rb| {
            rb.role_ref.kind == "ClusterRole"
                && rb.role_ref.name == READONLY_ROLE
                && label(rb, ACCOUNT_LABEL).as_deref() == Some(ten.account.as_str())
        },
    )
    .await;
    assert!(
        ro.subjects.iter().flatten().any(|s| s.name == ten.admin),
        "{ro:?}"
    );
    wait_guard_refuses(&as_alice, ns, &ten.account, "suspended").await;
    let sa = Identity::service_account(ns, DEPLOYER).client().await;
    writes_refused(&sa, ns, &ten.account, "suspended", "sa")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Only Covenant (and `system:masters`) may set Covenant's labels and annotations on namespaces. A user
/// `mallory`, granted by a cluster admin the right to create, patch and update namespaces, can do that
/// to ordinary labels, but the API server refuses each of these: labelling a foreign namespace as the
/// account's; marking a tenant namespace retained until 1970; changing its account UID; rewriting its
/// allowed subjects; removing its account label; lowering its Pod Security level; removing the
/// read-only label of a suspended namespace; creating a namespace with the account's label. The same
/// holds through the `namespaces/status` and `namespaces/finalize` subresources, which write labels
/// as well.
#[tokio::test]
async fn a_user_who_may_patch_namespaces_cannot_forge_or_strip_covenants_labels() {
    let t = TestCtx::new("ns-labels").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.clone();
    let (mallory, as_mallory) = t
        .user_with_cluster_rules(
            "mallory",
            json!([
                { "apiGroups": [""], "resources": ["namespaces"],
                  "verbs": ["get", "list", "watch", "create", "patch", "update"] },
                { "apiGroups": [""], "resources": ["namespaces/status", "namespaces/finalize"],
                  "verbs": ["patch", "update"] }
            ]),
        )
        .await;
    let foreign = t.namespace("foreign");
    let nss: Api<Namespace> = Api::all(t.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": foreign } })).unwrap(),
    )
    .await
    .unwrap();
    let before = nss.get(&ns).await.unwrap();
    assert!(
        before.annotations().contains_key(UID_ANNOTATION),
        "a namespace Covenant created records its Account's UID: {:?}",
        before.annotations()
    );

    let theirs: Api<Namespace> = Api::all(as_mallory.clone());
    assert_the_grant_works_on_what_covenant_does_not_own(&t, &theirs, &foreign).await;
    assert_covenants_labels_cannot_be_patched(&theirs, &ten, &foreign, &mallory).await;
    assert_nor_by_finalize_or_create(&t, &theirs, &ten, &foreign, &before).await;
    assert_the_read_only_label_of_a_suspended_namespace_stays(&t, &theirs, &ten).await;
}

/// The control: mallory's grant works on namespaces Covenant does not own, through the namespace and
/// its status subresource, and creates a namespace without Covenant's labels.
async fn assert_the_grant_works_on_what_covenant_does_not_own(
    t: &TestCtx,
    theirs: &Api<Namespace>,
    foreign: &str,
) {
    // The control: the grant works for what Covenant does not own (RBAC catches up in a moment).
    eventually(
        "mallory labels a foreign namespace team=red",
        TIMEOUT,
        || async {
            merge_patch(
                theirs,
                foreign,
                json!({ "metadata": { "labels": { "team": "red" } } }),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        },
    )
    .await;
    // The status and finalize subresources write a namespace's labels too.
    let via_status = theirs
        .patch_status(
            foreign,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "via": "status" } } })),
        )
        .await
        .expect("mallory labels a foreign namespace through namespaces/status");
    assert_eq!(
        label(&via_status, "via").as_deref(),
        Some("status"),
        "namespaces/status writes labels"
    );
    let plain = t.namespace("mallory-plain");
    theirs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": plain } })).unwrap(),
        )
        .await
        .expect("mallory creates a namespace without Covenant's labels");
}

/// Covenant's labels and annotations cannot be forged, changed or stripped by a patch of the
/// namespace or of its status.
async fn assert_covenants_labels_cannot_be_patched(
    theirs: &Api<Namespace>,
    ten: &Tenant,
    foreign: &str,
    mallory: &str,
) {
    let ns = ten.ns.as_str();
    // Covenant's labels and annotations cannot be forged, changed or stripped by a patch.
    let mut failures = Vec::new();
    let attacks: Vec<(String, &str, Value)> = vec![
        (
            format!(
                "label the foreign namespace {ACCOUNT_LABEL}={}",
                ten.account
            ),
            foreign,
            json!({ "metadata": { "labels": { ACCOUNT_LABEL: ten.account } } }),
        ),
        (
            format!("add {RETAINED_UNTIL}=0 to the tenant namespace"),
            ns,
            json!({ "metadata": { "labels": { RETAINED_UNTIL: "0" } } }),
        ),
        (
            format!("change {UID_ANNOTATION} of the tenant namespace"),
            ns,
            json!({ "metadata": { "annotations": { UID_ANNOTATION: "00000000-0000-0000-0000-000000000000" } } }),
        ),
        (
            format!("rewrite {ALLOWED_SUBJECTS} of the tenant namespace"),
            ns,
            json!({ "metadata": { "annotations": { ALLOWED_SUBJECTS: format!("User:{mallory}") } } }),
        ),
        (
            format!("remove {ACCOUNT_LABEL} from the tenant namespace"),
            ns,
            json!({ "metadata": { "labels": { ACCOUNT_LABEL: null } } }),
        ),
        (
            format!("lower {ENFORCE} of the tenant namespace to privileged"),
            ns,
            json!({ "metadata": { "labels": { ENFORCE: "privileged" } } }),
        ),
    ];
    for (what, target, body) in attacks {
        failures.extend(forbidden(&what, merge_patch(theirs, target, body).await).err());
    }
    failures.extend(
        forbidden(
            &format!("add {RETAINED_UNTIL}=0 to the tenant namespace through namespaces/status"),
            theirs
                .patch_status(
                    ns,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "labels": { RETAINED_UNTIL: "0" } } })),
                )
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Nor through namespaces/finalize, nor on a namespace mallory creates: the tenant namespace's labels
/// and annotations are what they were, the foreign namespace has no account label.
async fn assert_nor_by_finalize_or_create(
    t: &TestCtx,
    theirs: &Api<Namespace>,
    ten: &Tenant,
    foreign: &str,
    before: &Namespace,
) {
    let ns = ten.ns.as_str();
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // Nor through namespaces/finalize, nor on a namespace mallory creates.
    let mut failures = Vec::new();
    let mut labelled = nss.get(foreign).await.unwrap();
    labelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert(ACCOUNT_LABEL.to_string(), ten.account.clone());
    failures.extend(
        forbidden(
            &format!("label the foreign namespace {ACCOUNT_LABEL} through namespaces/finalize"),
            theirs
                .replace_subresource("finalize", foreign, &PostParams::default(), &labelled)
                .await,
        )
        .err(),
    );
    let forged = t.namespace("mallory-forged");
    failures.extend(
        forbidden(
            &format!(
                "create a namespace labelled {ACCOUNT_LABEL}={}",
                ten.account
            ),
            theirs
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": { "name": forged, "labels": { ACCOUNT_LABEL: ten.account } }
                    }))
                    .unwrap(),
                )
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = nss.get(ns).await.unwrap();
    assert_eq!(
        (after.labels(), after.annotations()),
        (before.labels(), before.annotations()),
        "the tenant namespace's labels and annotations changed"
    );
    assert!(
        label(&nss.get(foreign).await.unwrap(), ACCOUNT_LABEL).is_none(),
        "the foreign namespace got the account label"
    );
}

/// Suspended: the read-only label cannot be removed (nor set to anything else), by any write of the
/// namespace.
async fn assert_the_read_only_label_of_a_suspended_namespace_stays(
    t: &TestCtx,
    theirs: &Api<Namespace>,
    ten: &Tenant,
) {
    let ns = ten.ns.as_str();
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // Suspended: the read-only label cannot be removed (nor set to anything else).
    suspend(t, "aup", &ten.account).await;
    wait_read_only(t, ns, Some("suspended")).await;
    let mut failures = Vec::new();
    failures.extend(
        forbidden(
            &format!("remove {READ_ONLY_LABEL} from the suspended namespace"),
            merge_patch(
                theirs,
                ns,
                json!({ "metadata": { "labels": { READ_ONLY_LABEL: null } } }),
            )
            .await,
        )
        .err(),
    );
    let mut replaced = nss.get(ns).await.unwrap();
    replaced
        .metadata
        .labels
        .get_or_insert_default()
        .remove(READ_ONLY_LABEL);
    failures.extend(
        forbidden(
            &format!("replace the suspended namespace without {READ_ONLY_LABEL}"),
            theirs.replace(ns, &PostParams::default(), &replaced).await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            &format!("remove {READ_ONLY_LABEL} through namespaces/status"),
            theirs
                .patch_status(
                    ns,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "labels": { READ_ONLY_LABEL: null } } })),
                )
                .await,
        )
        .err(),
    );
    failures.extend(
        forbidden(
            &format!("remove {READ_ONLY_LABEL} through namespaces/finalize"),
            theirs
                .replace_subresource("finalize", ns, &PostParams::default(), &replaced)
                .await,
        )
        .err(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        label(&nss.get(ns).await.unwrap(), READ_ONLY_LABEL).as_deref(),
        Some("suspended")
    );
}

/// A namespace a cluster admin (`system:masters`, who may) creates with the label
/// `covenant.dev/account=<account>` but without the Account's UID is not the account's: Covenant does
/// not adopt it (the Account reports a conflict when it asks for it), does not freeze it when the
/// account is suspended, and does not delete it when the account is deleted and its retention ends.
#[tokio::test]
async fn a_namespace_forged_with_an_accounts_label_is_never_adopted_frozen_or_deleted() {
    let t = TestCtx::new("forged-ns").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    // Retain for 0 months: deleting the account deletes what it owns at once.
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .retain()
        .spec(|s| s.retention_months = 0)
        .with_default_service_accounts()
        .await;
    let forged = t.namespace("forged");
    let nss: Api<Namespace> = Api::all(t.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": { "name": forged, "labels": { ACCOUNT_LABEL: ten.account } }
        }))
        .unwrap(),
    )
    .await
    .expect("a cluster admin creates a namespace with the account's label");
    Api::<ConfigMap>::namespaced(t.client.clone(), &forged)
        .create(
            &PostParams::default(),
            &config_map("precious", json!({ "k": "v" })),
        )
        .await
        .unwrap();
    wait_default_sa(&t.client, &forged).await;
    let before = nss.get(&forged).await.unwrap();

    // Not adopted, also when the account asks for it: a conflict naming it.
    let mut claiming = ten.applied.clone();
    claiming.spec.namespaces.push(forged.clone());
    t.apply(&claiming).await;
    let a = wait_account(
        &t.client,
        &ten.account,
        "Ready",
        "False",
        Some("NamespaceConflict"),
    )
    .await;
    let msg = &condition(&a, "Ready").unwrap().message;
    assert!(msg.contains(&forged), "the conflict names {forged}: {msg}");

    assert_a_suspension_leaves_the_forged_namespace_alone(&t, &ten, &forged, &before).await;
    assert_deleting_the_account_leaves_the_forged_namespace_and_its_data(&t, &ten, &forged).await;
}

/// Suspended while it asks for it: the guardrails reach the namespace it owns, not the forged one
/// (no label, quota, binding or policy appears there, and a new pod is not frozen).
async fn assert_a_suspension_leaves_the_forged_namespace_alone(
    t: &TestCtx,
    ten: &Tenant,
    forged: &str,
    before: &Namespace,
) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // Suspended while it asks for it: the guardrails reach the namespace it owns, not the forged one.
    suspend(t, "aup", &ten.account).await;
    wait_read_only(t, ten.ns.as_str(), Some("suspended")).await;
    wait_frozen(t, ten.ns.as_str()).await;
    // The notice (cause included) goes into the namespace it owns, none into the forged one, whose
    // Events are its holder's to read.
    let notices = |ns: String| {
        let c = t.client.clone();
        async move {
            Api::<Event>::namespaced(c, &ns)
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some("Suspended"))
                        .count()
                })
                .map_err(|e| e.to_string())
        }
    };
    eventually("the notice is in its own namespace", TIMEOUT, || async {
        match notices(ten.ns.clone()).await? {
            0 => Err("no Suspended Event yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        notices(forged.to_string()).await.unwrap(),
        0,
        "the suspension's notice was published in the forged namespace {forged}"
    );
    let n = nss.get(forged).await.unwrap();
    assert_eq!(
        (n.labels(), n.annotations()),
        (before.labels(), before.annotations()),
        "the forged namespace's labels or annotations changed"
    );
    let quotas = Api::<ResourceQuota>::namespaced(t.client.clone(), forged)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        quotas.items.is_empty(),
        "quotas appeared in {forged}: {:?}",
        quotas.items
    );
    let rbs = Api::<RoleBinding>::namespaced(t.client.clone(), forged)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        rbs.items.is_empty(),
        "RoleBindings appeared in {forged}: {:?}",
        rbs.items
    );
    assert_eq!(
        network_policies(&t.client, forged).await,
        Vec::<String>::new(),
        "NetworkPolicies appeared in {forged}"
    );
    Api::<Pod>::namespaced(t.client.clone(), forged)
        .create(&PostParams::default(), &pod("runs"))
        .await
        .expect("a new pod in the forged namespace is not frozen");
}

/// Deleted, its retention of 0 months ends at once: its own namespace goes, the forged one stays,
/// unreleased, with its data.
async fn assert_deleting_the_account_leaves_the_forged_namespace_and_its_data(
    t: &TestCtx,
    ten: &Tenant,
    forged: &str,
) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // Deleted, its retention of 0 months ends at once: its own namespace goes, the forged one stays.
    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .delete(&ten.account, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &ten.account, false, TIMEOUT).await;
    wait_gone(&nss, ten.ns.as_str(), true, TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nss.get(forged).await.unwrap();
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "the forged namespace is being deleted"
    );
    assert!(
        label(&n, RETAINED_UNTIL).is_none() && label(&n, READ_ONLY_LABEL).is_none(),
        "the forged namespace was released as the account's: {:?}",
        n.labels()
    );
    let cm = Api::<ConfigMap>::namespaced(t.client.clone(), forged)
        .get("precious")
        .await
        .expect("the forged namespace keeps its data");
    assert_eq!(
        cm.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );
}

/// Deleting an Account with `deletionPolicy: Retain` keeps its namespaces, read-only, for its
/// retention; a new Account of the same name is another account (another UID) and does not adopt
/// them: it is Ready=False with reason `NamespaceConflict` and a message that names the namespace and
/// says how to restore it on purpose. The retained namespace keeps its data, its marks and its
/// read-only access, and the new account's administrator gets nothing there.
#[tokio::test]
async fn a_new_account_with_a_deleted_accounts_name_does_not_adopt_its_retained_namespaces() {
    let t = TestCtx::new("same-name").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let old = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .retain()
        .with_default_service_accounts()
        .await;
    let ns = old.ns.as_str().to_string();
    Api::<ConfigMap>::namespaced(t.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &config_map("data", json!({ "invoice": "42" })),
        )
        .await
        .unwrap();
    let accounts: Api<Account> = Api::all(t.client.clone());
    let old_uid = accounts.get(&old.account).await.unwrap().uid();
    accounts
        .delete(&old.account, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &old.account, false, TIMEOUT).await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    wait_for(&nss, &ns, "be retained", TIMEOUT, |n| {
        label(n, RETAINED_UNTIL).is_some()
    })
    .await;
    let retained = wait_read_only(&t, &ns, Some("retained")).await;

    assert_an_account_of_the_same_name_does_not_adopt_it(&t, &old, &pkg, old_uid, &retained).await;
}

/// The same name, the same namespace, another administrator: the new Account reports the conflict
/// and how to restore; the retained namespace, its data and its access stay the deleted account's.
async fn assert_an_account_of_the_same_name_does_not_adopt_it(
    t: &TestCtx,
    old: &Tenant,
    pkg: &str,
    old_uid: Option<String>,
    retained: &Namespace,
) {
    let ns = old.ns.clone();
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // The same name, the same namespace, another administrator.
    let eve = t.name("eve");
    t.apply(&fixtures::account(
        &old.account,
        Some(pkg),
        &[&ns],
        &[&eve],
        json!({ "deletionPolicy": "Delete" }),
    ))
    .await;
    let a = wait_account(
        &t.client,
        &old.account,
        "Ready",
        "False",
        Some("NamespaceConflict"),
    )
    .await;
    assert_ne!(a.uid(), old_uid, "the new Account is another object");
    let msg = &condition(&a, "Ready").unwrap().message;
    assert!(
        msg.contains(&ns) && msg.to_lowercase().contains("restore"),
        "the conflict names the retained namespace and says how to restore it: {msg}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nss.get(&ns).await.unwrap();
    assert_eq!(
        (n.labels(), n.annotations()),
        (retained.labels(), retained.annotations()),
        "the retained namespace's labels or annotations changed"
    );
    assert_eq!(
        n.annotations().get(UID_ANNOTATION),
        old_uid.as_ref(),
        "the retained namespace still records the deleted account's UID"
    );
    let cm = Api::<ConfigMap>::namespaced(t.client.clone(), &ns)
        .get("data")
        .await
        .expect("the retained data survives");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("invoice")
            .map(String::as_str),
        Some("42")
    );
    let rbs = Api::<RoleBinding>::namespaced(t.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        rbs.items
            .iter()
            .all(|rb| rb.name_any() != ADMIN_ROLE
                && rb.subjects.iter().flatten().all(|s| s.name != eve)),
        "the new account's administrator got into the retained namespace: {:?}",
        rbs.items
    );
    assert!(
        !can(&t.client, &eve, &[], "get", "configmaps", "", &ns).await,
        "the new account's administrator can read the retained data"
    );
    assert!(
        can(&t.client, &old.admin, &[], "get", "configmaps", "", &ns).await,
        "the deleted account's administrator keeps read access to its retained data"
    );
}

/// Subjects are written into a newline-separated annotation the admission policy reads, so a subject
/// name with a newline could smuggle in another subject. The API server rejects such an Account
/// (CRD validation), in `administrators` and in `allowedSubjects`.
#[tokio::test]
async fn an_account_naming_a_subject_with_a_newline_is_rejected_by_the_api_server() {
    let t = TestCtx::new("newline").await;
    let acct = t.account("acct");
    let smuggled = format!("alice\nUser:mallory-{}", t.suffix);
    for field in ["administrators", "allowedSubjects"] {
        let mut account = fixtures::account(&acct, None, &[], &[], json!({}));
        let subjects = vec![fixtures::user(&smuggled)];
        match field {
            "administrators" => account.spec.administrators = subjects,
            _ => account.spec.allowed_subjects = subjects,
        }
        let manifest = account.manifest();
        let err = covenant_e2e::apply_yaml(&t.client, &manifest)
            .await
            .expect_err("an Account whose subject name has a newline must be rejected");
        match err.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => assert_eq!(
                (s.code, s.reason.as_str()),
                (422, "Invalid"),
                "{field}: {s:?}"
            ),
            _ => panic!("{field}: expected the API server to reject it, got {err:#}"),
        }
        assert!(
            Api::<Account>::all(t.client.clone())
                .get_opt(&acct)
                .await
                .unwrap()
                .is_none(),
            "the Account was stored"
        );
    }
}

/// A pod spec from [`fixtures::restricted_pod_spec`] changed by `f`.
fn pod_with(name: &str, f: impl FnOnce(&mut Value)) -> Pod {
    let mut spec = fixtures::restricted_pod_spec();
    f(&mut spec);
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
        .expect("a valid Pod")
}

/// The pods Pod Security must refuse in every tenant namespace, with the word its message uses.
fn host_pods() -> Vec<(Pod, &'static str)> {
    vec![
        (
            pod_with("privileged", |s| {
                s["containers"][0]["securityContext"] = json!({ "privileged": true });
            }),
            "privileged",
        ),
        (
            pod_with("host-network", |s| s["hostNetwork"] = json!(true)),
            "hostNetwork",
        ),
        (
            pod_with("host-path", |s| {
                s["volumes"] = json!([{ "name": "root", "hostPath": { "path": "/" } }]);
                s["containers"][0]["volumeMounts"] =
                    json!([{ "name": "root", "mountPath": "/host" }]);
            }),
            "hostPath",
        ),
    ]
}

/// Tenant namespaces enforce the package's Pod Security level (`restricted` by default, `baseline`
/// when the package says so; `warn` and `audit` at `restricted`): a tenant administrator cannot create
/// a privileged pod, a hostNetwork pod or a hostPath pod at either level (403, `violates
/// PodSecurity`), and can create a pod the level admits.
#[tokio::test]
async fn a_tenant_admin_cannot_create_privileged_host_network_or_host_path_pods() {
    let t = TestCtx::new("pod-security").await;
    let restricted_pkg = new_package(&t, "restricted", |_| {}).await;
    let baseline_pkg = new_package(&t, "baseline", |p| {
        p.pod_security = PodSecurityLevel::Baseline
    })
    .await;
    let strict = t
        .tenant("strict")
        .package(&restricted_pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let lenient = t
        .tenant("lenient")
        .package(&baseline_pkg)
        .namespaces(1)
        .admin(&t.name("bob"))
        .with_default_service_accounts()
        .await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let mut failures = Vec::new();
    for (ten, level) in [(&strict, "restricted"), (&lenient, "baseline")] {
        let n = nss.get(ten.ns.as_str()).await.unwrap();
        let levels = (label(&n, ENFORCE), label(&n, WARN), label(&n, AUDIT));
        assert_eq!(
            levels,
            (
                Some(level.to_string()),
                Some("restricted".to_string()),
                Some("restricted".to_string())
            ),
            "Pod Security labels of {}",
            ten.ns.as_str()
        );
        let pods: Api<Pod> = Api::namespaced(impersonate(&ten.admin, &[]).await, ten.ns.as_str());
        for (p, word) in host_pods() {
            match pods.create(&PostParams::default(), &p).await {
                Err(kube::Error::Api(s))
                    if s.code == 403
                        && s.message.contains("violates PodSecurity")
                        && s.message.contains(word) => {}
                Err(e) => failures.push(format!(
                    "{level}: a {word} pod: expected 403 violates PodSecurity ({word}), got {e}"
                )),
                Ok(_) => failures.push(format!("{level}: a {word} pod was admitted")),
            }
        }
        if let Err(e) = pods.create(&PostParams::default(), &pod("compliant")).await {
            failures.push(format!("{level}: a restricted-compliant pod: {e}"));
        }
    }
    // What baseline admits and restricted does not: a container running as root with its default
    // capabilities.
    let plain = pod_with("plain", |s| {
        s["securityContext"] = json!({});
        s["containers"][0]["securityContext"] = json!({});
    });
    match Api::<Pod>::namespaced(impersonate(&strict.admin, &[]).await, strict.ns.as_str())
        .create(&PostParams::default(), &plain)
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("violates PodSecurity") => {
        }
        r => failures.push(format!(
            "restricted: a pod without a security context: expected 403 violates PodSecurity, got {r:?}"
        )),
    }
    if let Err(e) =
        Api::<Pod>::namespaced(impersonate(&lenient.admin, &[]).await, lenient.ns.as_str())
            .create(&PostParams::default(), &plain)
            .await
    {
        failures.push(format!("baseline: a pod without a security context: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `covenant-tenant-admin` holds at least what the built-in `view` role holds, so a tenant
/// administrator can delegate `view` to its own ServiceAccount: the RoleBinding is created and the
/// ServiceAccount can then get and list pods, and nothing more than `view` gives.
#[tokio::test]
async fn a_tenant_admin_can_delegate_the_built_in_view_role_to_its_own_service_account() {
    let t = TestCtx::new("delegate-view").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    let as_alice = impersonate(&ten.admin, &[]).await;
    Api::<ServiceAccount>::namespaced(as_alice.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "reader" } })).unwrap(),
        )
        .await
        .expect("alice creates a ServiceAccount");
    let rbs: Api<RoleBinding> = Api::namespaced(as_alice.clone(), ns);
    let rb = role_binding(
        "reader-view",
        "ClusterRole",
        "view",
        json!([sa_subject(ns, "reader")]),
    );
    eventually(
        "alice binds view to her ServiceAccount",
        TIMEOUT,
        || async {
            rbs.create(&PostParams::default(), &rb)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let reader = Identity::service_account(ns, "reader");
    eventually("the ServiceAccount holds view", TIMEOUT, || {
        reader.authorized(&t.client, VIEW_GRANTS, ns, true)
    })
    .await;
    reader
        .authorized(&t.client, VIEW_DENIES, ns, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Api::<Pod>::namespaced(reader.client().await, ns)
        .list(&ListParams::default())
        .await
        .expect("the ServiceAccount lists pods");
}

/// A suspension's guardrails never wait for the account to be valid: an Account whose SupportPackage
/// was deleted (so it is not Ready) is suspended all the same. Its namespace becomes read-only by
/// effect (a ServiceAccount the tenant bound to its own Role is refused), `covenant-freeze` refuses
/// new pods, and `covenant-suspension-deny-all` is the only NetworkPolicy in force. Lifting gives the
/// writes and the allow policies back, the package still missing; once the package is back, the
/// account is Ready again.
#[tokio::test]
async fn a_suspension_takes_effect_on_an_account_that_is_not_ready() {
    let t = TestCtx::new("guardrails").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    tenant_data(&t.client, ns).await;
    let as_alice = impersonate(&ten.admin, &[]).await;
    arm_writer(&as_alice, ns, &ten.admin).await;
    let as_sa = Identity::service_account(ns, DEPLOYER).client().await;
    wait_network_policies(&t, ns, &[EGRESS, ISOLATION, NARROWED]).await;

    let packages: Api<covenant::api::SupportPackage> = Api::all(t.client.clone());
    packages
        .delete(&pkg, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&packages, &pkg, false, TIMEOUT).await;
    wait_account(&t.client, &ten.account, "Ready", "False", None).await;
    // An account that lost its package keeps its isolation.
    assert_eq!(
        network_policies(&t.client, ns).await,
        vec![EGRESS, ISOLATION, NARROWED],
        "the NetworkPolicies of an account whose package is gone"
    );

    let susp = suspend(&t, "aup", &ten.account).await;
    wait_read_only(&t, ns, Some("suspended")).await;
    wait_frozen(&t, ns).await;
    wait_network_policies(&t, ns, &[DENY_ALL]).await;
    wait_guard_refuses(&as_sa, ns, &ten.account, "suspended").await;
    writes_refused(&as_sa, ns, &ten.account, "suspended", "sa-suspended")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = api_error(
        "a cluster admin's new pod in the suspended namespace",
        Api::<Pod>::namespaced(t.client.clone(), ns)
            .create(&PostParams::default(), &pod("late"))
            .await,
    );
    assert!(
        refused.code == 403
            && refused.message.contains("exceeded quota")
            && refused.message.contains(FREEZE),
        "a new pod must be refused by {FREEZE}: {refused:?}"
    );

    lift(&t, &susp).await;
    wait_read_only(&t, ns, None).await;
    wait_gone(
        &Api::<ResourceQuota>::namespaced(t.client.clone(), ns),
        FREEZE,
        false,
        TIMEOUT,
    )
    .await;
    wait_guard_allows(&as_sa, ns).await;
    writes_work(&as_sa, ns, "sa-lifted")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Lifting restores the policies that were there before, package or not.
    wait_network_policies(&t, ns, &[EGRESS, ISOLATION, NARROWED]).await;

    t.apply(&fixtures::package(
        &pkg,
        json!({ "pods": "10", "requests.cpu": "4", "configmaps": "20" }),
    ))
    .await;
    wait_account_ready(&t.client, &ten.account).await;
    wait_network_policies(&t, ns, &[EGRESS, ISOLATION, NARROWED]).await;
    let alice = Identity::user(&ten.admin);
    eventually(
        "alice holds the administrators' rights again",
        TIMEOUT,
        || alice.authorized(&t.client, ADMIN_ONLY, ns, true),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------
// Network, by effect.

/// The ends of the probes of the SPEC's table "Network, by effect".
#[derive(Debug, Clone, Copy)]
enum End {
    /// An ordinary pod (no labels) in the tenant's first namespace: the tenant pod of the table.
    Tenant,
    /// Another pod in the same namespace.
    Neighbour,
    /// A pod in the tenant's second namespace.
    SecondNamespace,
    /// A pod of another tenant.
    OtherTenant,
    /// The cluster DNS: a pod `k8s-app=kube-dns` in kube-system.
    Dns,
    /// An address outside the cluster (never contacted: the engine judges the policies).
    External,
    /// The cloud metadata service.
    Metadata,
    /// An address outside the cluster: another cloud metadata address, or the internet over IPv6.
    Address(&'static str),
    /// A pod in a platform namespace the package names in `network.ingressFrom`.
    Platform,
    /// A pod in a namespace a cluster admin labelled `covenant.dev/account=<the tenant>`.
    Forged,
}

const ALLOW: bool = true;
const DENY: bool = false;

/// The states of the table's columns, in the order the test goes through them.
const STATES: [&str; 5] = [
    "active",
    "active, telephony",
    "suspended",
    "lifted",
    "retained",
];

/// One probe of the SPEC's table "Network, by effect" and its verdict (allowed or not) in each state
/// of [`STATES`].
struct Row {
    probe: &'static str,
    from: End,
    to: End,
    port: u16,
    protocol: &'static str,
    verdicts: [bool; 5],
}

const fn row(
    probe: &'static str,
    from: End,
    to: End,
    port: u16,
    protocol: &'static str,
    verdicts: [bool; 5],
) -> Row {
    Row {
        probe,
        from,
        to,
        port,
        protocol,
        verdicts,
    }
}

/// The SPEC's table "Network, by effect", one row per probe, one column per state of [`STATES`]. SIP
/// is probed on both ports over every protocol; "lifted" follows "active, telephony", so SIP there is
/// allowed "as before".
#[rustfmt::skip]
const NETWORK_TABLE: &[Row] = {
    use End::*;
    const OPEN: [bool; 5] = [ALLOW, ALLOW, DENY, ALLOW, DENY];
    const SIP: [bool; 5] = [DENY, ALLOW, DENY, ALLOW, DENY];
    const NEVER: [bool; 5] = [DENY; 5];
    &[
        row("→ a pod in the same namespace", Tenant, Neighbour, 8080, "TCP", OPEN),
        row("→ a pod in another namespace of the same account", Tenant, SecondNamespace, 8080, "TCP", OPEN),
        row("→ a pod of another tenant", Tenant, OtherTenant, 8080, "TCP", NEVER),
        row("→ cluster DNS, UDP 53", Tenant, Dns, 53, "UDP", OPEN),
        row("→ cluster DNS, TCP 53", Tenant, Dns, 53, "TCP", OPEN),
        row("→ an external address, TCP 443", Tenant, External, 443, "TCP", OPEN),
        row("→ SIP 5060 over TCP", Tenant, External, 5060, "TCP", SIP),
        row("→ SIP 5060 over UDP", Tenant, External, 5060, "UDP", SIP),
        row("→ SIP 5060 over SCTP", Tenant, External, 5060, "SCTP", SIP),
        row("→ SIP 5061 over TCP", Tenant, External, 5061, "TCP", SIP),
        row("→ SIP 5061 over UDP", Tenant, External, 5061, "UDP", SIP),
        row("→ SIP 5061 over SCTP", Tenant, External, 5061, "SCTP", SIP),
        row("→ 169.254.0.0/16 (cloud metadata)", Tenant, Metadata, 80, "TCP", NEVER),
        row("→ 100.100.100.200 (Alibaba Cloud metadata)", Tenant, Address("100.100.100.200"), 80, "TCP", NEVER),
        row("→ fd00:ec2::254 (AWS metadata over IPv6)", Tenant, Address("fd00:ec2::254"), 80, "TCP", NEVER),
        row("→ fd00:c1::a9fe:a9fe (metadata over IPv6)", Tenant, Address("fd00:c1::a9fe:a9fe"), 80, "TCP", NEVER),
        row("→ 64:ff9b::a9fe:a9fe (metadata through NAT64)", Tenant, Address("64:ff9b::a9fe:a9fe"), 80, "TCP", NEVER),
        row("→ an external IPv6 address, TCP 443", Tenant, Address("2606:4700::1111"), 443, "TCP", OPEN),
        row("another tenant's pod → a tenant pod", OtherTenant, Tenant, 8080, "TCP", NEVER),
        row("a platform namespace → a tenant pod", Platform, Tenant, 8080, "TCP", OPEN),
        row("a namespace forged with the account's label → a tenant pod", Forged, Tenant, 8080, "TCP", NEVER),
    ]
};

/// The namespaces of the network test: the peers' namespaces, read from the cluster in each state
/// (namespace selectors see their labels as they are then).
struct NetworkScene {
    tenant: [String; 2],
    other: String,
    platform: String,
    forged: String,
}

impl NetworkScene {
    async fn peer(&self, client: &Client, end: End) -> Peer {
        let ns = |name: &str| {
            let nss: Api<Namespace> = Api::all(client.clone());
            let name = name.to_string();
            async move {
                nss.get(&name)
                    .await
                    .unwrap_or_else(|e| panic!("namespace {name}: {e}"))
            }
        };
        match end {
            End::Tenant => Peer::pod(&ns(&self.tenant[0]).await, "10.244.1.10"),
            End::Neighbour => Peer::pod(&ns(&self.tenant[0]).await, "10.244.1.11"),
            End::SecondNamespace => Peer::pod(&ns(&self.tenant[1]).await, "10.244.2.10"),
            End::OtherTenant => Peer::pod(&ns(&self.other).await, "10.244.3.10"),
            End::Dns => {
                let mut p = Peer::pod(&ns("kube-system").await, "10.244.0.10");
                p.pod_labels = fixtures::map(&[("k8s-app", "kube-dns")]);
                p
            }
            End::External => Peer::external("93.184.216.34"),
            End::Metadata => Peer::external("169.254.169.254"),
            End::Address(ip) => Peer::external(ip),
            End::Platform => Peer::pod(&ns(&self.platform).await, "10.244.4.10"),
            End::Forged => Peer::pod(&ns(&self.forged).await, "10.244.5.10"),
        }
    }

    /// `Ok` when the engine's verdict on every probe of the table is the column of `state`; else
    /// every mismatch with the engine's explanation.
    async fn matches(&self, client: &Client, state: usize) -> Result<(), String> {
        let mut probes = Vec::new();
        for r in NETWORK_TABLE {
            probes.push(Probe {
                name: r.probe.to_string(),
                from: self.peer(client, r.from).await,
                to: self.peer(client, r.to).await,
                port: r.port,
                protocol: r.protocol,
            });
        }
        let verdicts = netpol::evaluate(client, &probes)
            .await
            .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
        let word = |allowed: bool| if allowed { "allow" } else { "deny" };
        let wrong: Vec<String> = NETWORK_TABLE
            .iter()
            .zip(&verdicts)
            .filter(|(r, v)| v.allowed != r.verdicts[state])
            .map(|(r, v)| {
                format!(
                    "{}: the SPEC says {}, the engine says {} (ingress {}, egress {}): {}",
                    r.probe,
                    word(r.verdicts[state]),
                    word(v.allowed),
                    word(v.ingress),
                    word(v.egress),
                    v.explanation
                )
            })
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "state {:?}, {} of {} probes differ from the table:\n{}",
                STATES[state],
                wrong.len(),
                NETWORK_TABLE.len(),
                wrong.join("\n")
            ))
        }
    }

    /// Waits until the live policies give the table's column of `state` (Covenant applies them a
    /// moment after the change); panics with the mismatches and the engine's explanations.
    async fn expect(&self, client: &Client, state: usize) {
        eventually(
            &format!(
                "the NetworkPolicies give the SPEC's verdicts when {}",
                STATES[state]
            ),
            TIMEOUT,
            || self.matches(client, state),
        )
        .await;
        eprintln!(
            "network, {}: the engine agrees with the SPEC on all {} probes",
            STATES[state],
            NETWORK_TABLE.len()
        );
    }
}

/// What a tenant pod may reach, and what may reach it, follows the SPEC's table "Network, by
/// effect" in every state of the tenant: an upstream NetworkPolicy engine (cyclonus' matcher) judges
/// every probe of the table against the live policies of the cluster. The scene: a tenant with two
/// namespaces, another tenant, a platform namespace named by the package's `network.ingressFrom`, and
/// a namespace a cluster admin forged with the tenant's `covenant.dev/account` label; the states:
/// active, with `telephony`, suspended, lifted (telephony as before), retained (the Account deleted
/// with `deletionPolicy: Retain`).
#[tokio::test]
async fn network_follows_the_spec_table_in_every_tenant_state() {
    let t = TestCtx::new("network").await;
    let platform = t.namespace("platform");
    let pkg = new_package(&t, "pkg", |p| {
        p.network = Some(platform_network(&platform, &[]))
    })
    .await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(2)
        .admin(&t.name("alice"))
        .retain()
        .with_default_service_accounts()
        .await;
    let other = t
        .tenant("other")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("bob"))
        .with_default_service_accounts()
        .await;
    let forged = t.namespace("forged");
    let nss: Api<Namespace> = Api::all(t.client.clone());
    for (name, labels) in [
        (&platform, json!({})),
        (&forged, json!({ ACCOUNT_LABEL: ten.account })),
    ] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }
    let scene = NetworkScene {
        tenant: [ten.namespaces[0].clone(), ten.namespaces[1].clone()],
        other: other.ns.as_str().to_string(),
        platform,
        forged,
    };

    scene.expect(&t.client, 0).await;

    let mut telephony = ten.applied.clone();
    telephony.spec.network = Some(NetworkSpec { telephony: true });
    t.apply(&telephony).await;
    wait_account_ready(&t.client, &ten.account).await;
    scene.expect(&t.client, 1).await;

    let susp = suspend(&t, "aup", &ten.account).await;
    wait_account(&t.client, &ten.account, "Suspended", "True", None).await;
    for ns in &ten.namespaces {
        wait_read_only(&t, ns, Some("suspended")).await;
    }
    scene.expect(&t.client, 2).await;

    lift(&t, &susp).await;
    wait_account(&t.client, &ten.account, "Suspended", "False", None).await;
    for ns in &ten.namespaces {
        wait_read_only(&t, ns, None).await;
    }
    scene.expect(&t.client, 3).await;

    let accounts: Api<Account> = Api::all(t.client.clone());
    accounts
        .delete(&ten.account, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &ten.account, false, TIMEOUT).await;
    for ns in &ten.namespaces {
        wait_read_only(&t, ns, Some("retained")).await;
    }
    scene.expect(&t.client, 4).await;
}

/// The addresses of cloud metadata services a tenant pod never reaches, whatever its package says,
/// and one address inside each range the package of the network tests adds (`deniedCidrs`).
const METADATA_ADDRESSES: [(&str, &str); 9] = [
    (
        "169.254.169.254",
        "link-local, AWS/GCE/Azure/OpenStack metadata",
    ),
    ("100.100.100.200", "Alibaba Cloud metadata"),
    ("fd00:ec2::254", "AWS metadata over IPv6"),
    (
        "fd00:c1::a9fe:a9fe",
        "metadata over IPv6 (169.254.169.254 embedded)",
    ),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 through NAT64"),
    ("64:ff9b::6464:64c8", "100.100.100.200 through NAT64"),
    ("fd20:ce::254", "GCE metadata over IPv6"),
    ("192.0.2.10", "a range the package denies (deniedCidrs)"),
    (
        "2001:db8:dead::10",
        "an IPv6 range the package denies (deniedCidrs)",
    ),
];
/// The package's own additions, containing the last two of [`METADATA_ADDRESSES`].
const PACKAGE_DENIED: [&str; 2] = ["192.0.2.0/24", "2001:db8:dead::/48"];

/// A package cannot let a namespace in by a label that whoever may patch namespaces can set: the API
/// server refuses `network.ingressFrom` selectors on any label but `kubernetes.io/metadata.name`
/// (which it sets itself) and Covenant's protected `covenant.dev/*` labels, and selectors that select
/// namespaces by a label they lack (`NotIn`, `DoesNotExist`), every namespace (`{}`, `Exists` on the
/// name) or no CIDR (`deniedCidrs`). Then a user who may patch namespaces labels one with the label a
/// refused selector used, tries Covenant's label and the platform namespace's name label: the first
/// lets nothing in, the others are refused or overwritten; the platform namespace, selected by name,
/// still reaches the tenant. The NetworkPolicy engine judges the live policies, which also deny every
/// cloud metadata address (IPv4, IPv6 and NAT64 forms) and the package's added ranges, and allow the
/// internet over IPv4 and IPv6.
#[tokio::test]
async fn a_package_cannot_let_in_a_namespace_by_a_label_anyone_who_may_patch_namespaces_can_set() {
    let t = TestCtx::new("platform-label").await;
    let platform = t.namespace("platform");
    let squat = t.namespace("squat");
    let refused = [
        (
            json!({ "ingressFrom": [{ "matchLabels": { "team": "platform" } }] }),
            "a platform namespace may be selected only by kubernetes.io/metadata.name",
        ),
        (
            json!({ "ingressFrom": [{ "matchLabels": { NAME_LABEL: platform.clone() },
                "matchExpressions": [{ "key": "app.kubernetes.io/part-of", "operator": "In", "values": ["ingress"] }] }] }),
            "a platform namespace may be selected only by kubernetes.io/metadata.name",
        ),
        (
            json!({ "ingressFrom": [{ "matchExpressions": [{ "key": NAME_LABEL, "operator": "NotIn", "values": ["kube-system"] }] }] }),
            "operator must be In",
        ),
        (
            json!({ "ingressFrom": [{ "matchExpressions": [{ "key": NAME_LABEL, "operator": "Exists" }] }] }),
            "operator must be In",
        ),
        (
            json!({ "ingressFrom": [{}] }),
            "an empty selector selects every namespace",
        ),
        (
            json!({ "deniedCidrs": ["100.100.100.200"] }),
            "each deniedCidrs entry must be a CIDR",
        ),
        (
            json!({ "deniedCidrs": ["0.0.0.0/0"] }),
            "each deniedCidrs entry must be a CIDR",
        ),
    ];
    assert_packages_refused(&t, refused).await;

    let pkg = new_package(&t, "pkg", |p| {
        p.network = Some(platform_network(&platform, &PACKAGE_DENIED))
    })
    .await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    for name in [&platform, &squat] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }

    assert_only_covenants_and_the_api_servers_labels_are_guarded(&t, &squat, &platform).await;
    assert_the_engine_lets_in_only_the_platform_namespace_by_name(&t, &ten, &platform, &squat)
        .await;
}

/// mallory, who may patch every namespace (as a platform team member or a namespace controller may),
/// labels one team=platform; a covenant.dev/* label is refused; the name label stays the name.
async fn assert_only_covenants_and_the_api_servers_labels_are_guarded(
    t: &TestCtx,
    squat: &str,
    platform: &str,
) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let (_, as_mallory) = t
        .user_with_cluster_rules(
            "mallory",
            json!([{ "apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "patch", "update"] }]),
        )
        .await;
    let theirs: Api<Namespace> = Api::all(as_mallory);
    let label_squat =
        |labels: Value| merge_patch(&theirs, squat, json!({ "metadata": { "labels": labels } }));
    // Any other label on a namespace is anyone's who may patch it: mallory sets team=platform.
    eventually(
        "mallory labels a namespace team=platform",
        TIMEOUT,
        || async {
            label_squat(json!({ "team": "platform" }))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let status = api_error(
        "mallory labels a namespace with a covenant.dev/* label",
        label_squat(json!({ "covenant.dev/platform": "true" })).await,
    );
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains("covenant-namespace-labels"),
        "refused by Covenant's namespace label policy: {status:?}"
    );
    // The name label is the API server's: whatever is sent, it is the namespace's own name.
    let renamed = label_squat(json!({ NAME_LABEL: platform })).await;
    let now = nss.get(squat).await.unwrap();
    assert_eq!(
        label(&now, NAME_LABEL).as_deref(),
        Some(squat),
        "the API server keeps {NAME_LABEL} at the name (the patch answered {renamed:?})"
    );
    assert_eq!(label(&now, "team").as_deref(), Some("platform"));
}

/// The engine's verdicts on the live policies: only the namespace selected by name gets in, and the
/// tenant reaches the internet but not the metadata addresses.
async fn assert_the_engine_lets_in_only_the_platform_namespace_by_name(
    t: &TestCtx,
    ten: &Tenant,
    platform: &str,
    squat: &str,
) {
    let nss: Api<Namespace> = Api::all(t.client.clone());
    // The engine's verdicts on the live policies: the platform namespace by name reaches the tenant,
    // the squatter does not; the internet is reachable, the metadata addresses are not.
    let ns = |name: String| {
        let nss = nss.clone();
        async move { nss.get(&name).await.unwrap() }
    };
    let tenant_pod = Peer::pod(&ns(ten.ns.as_str().to_string()).await, "10.244.1.10");
    let mut probes = vec![
        Probe {
            name: "the platform namespace, selected by name → a tenant pod".into(),
            from: Peer::pod(&ns(platform.to_string()).await, "10.244.4.10"),
            to: tenant_pod.clone(),
            port: 8080,
            protocol: "TCP",
        },
        Probe {
            name: "a namespace labelled team=platform → a tenant pod".into(),
            from: Peer::pod(&ns(squat.to_string()).await, "10.244.5.10"),
            to: tenant_pod.clone(),
            port: 8080,
            protocol: "TCP",
        },
    ];
    let mut expected = vec![true, false];
    for (ip, what) in [
        ("93.184.216.34", "the internet over IPv4"),
        ("2606:4700::1111", "the internet over IPv6"),
    ] {
        probes.push(Probe {
            name: format!("a tenant pod → {ip} ({what}), TCP 443"),
            from: tenant_pod.clone(),
            to: Peer::external(ip),
            port: 443,
            protocol: "TCP",
        });
        expected.push(true);
    }
    for (ip, what) in METADATA_ADDRESSES {
        probes.push(Probe {
            name: format!("a tenant pod → {ip} ({what}), TCP 80"),
            from: tenant_pod.clone(),
            to: Peer::external(ip),
            port: 80,
            protocol: "TCP",
        });
        expected.push(false);
    }
    eventually(
        "the engine's verdicts on the live policies",
        TIMEOUT,
        || async {
            let verdicts = netpol::evaluate(&t.client, &probes)
                .await
                .map_err(|e| format!("the NetworkPolicy engine failed: {e:#}"))?;
            let wrong: Vec<String> = verdicts
                .iter()
                .zip(&expected)
                .filter(|(v, want)| v.allowed != **want)
                .map(|(v, want)| format!("{}: want allowed={want}: {}", v.name, v.explanation))
                .collect();
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("\n"))
            }
        },
    )
    .await;
    eprintln!(
        "network: the engine agrees on all {} probes (platform by name, squatter, internet, metadata)",
        probes.len()
    );
}

/// Each `(network, why)` as a package's network is refused by the API server, saying `why`.
async fn assert_packages_refused(t: &TestCtx, refused: impl IntoIterator<Item = (Value, &str)>) {
    let packages: Api<SupportPackage> = Api::all(t.client.clone());
    for (i, (network, why)) in refused.into_iter().enumerate() {
        let name = t.package(&format!("refused-{i}"));
        let pkg = SupportPackage::new(
            &name,
            SupportPackageSpec {
                network: Some(fixtures::typed("a package network", network.clone())),
                ..fixtures::typed("an empty package spec", json!({}))
            },
        );
        let status = api_error(
            &format!("create a package with network {network}"),
            packages.create(&PostParams::default(), &pkg).await,
        );
        assert_eq!(status.code, 422, "{network}: {status:?}");
        assert!(
            status.message.contains(why),
            "{network}: refused with {why:?}: {}",
            status.message
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Footholds that outlive a withdrawal of access.

/// Makes `user` hold `rules` cluster-wide (a ClusterRole and ClusterRoleBinding of the test's own).
/// A user who may create ClusterRoles (and holds NetworkPolicy rights cluster-wide) cannot hand every
/// tenant administrator more rights by labelling a ClusterRole to be aggregated into
/// `covenant-tenant-admin`: the API server refuses the label on any ClusterRole but Covenant's own, and
/// the tenant administrator still cannot write a NetworkPolicy. The same ClusterRole without the label
/// is created (the refusal is the label's, not RBAC's).
#[tokio::test]
async fn a_user_who_may_create_cluster_roles_cannot_extend_the_tenant_admin_role_by_aggregation() {
    let t = TestCtx::new("aggregation").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let netpol_rights = json!([{ "apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
        "verbs": ["get", "list", "create", "update", "patch", "delete"] }]);
    let mut rules = netpol_rights.clone();
    if let Value::Array(r) = &mut rules {
        r.push(
            json!({ "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
            "verbs": ["create", "get", "delete"] }),
        );
    }
    let (_, as_netops) = t.user_with_cluster_rules("netops", rules).await;
    let roles: Api<ClusterRole> = Api::all(as_netops);
    let name = t.name("netpol-for-tenants");
    t.track("clusterroles", &name);
    let labelled: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "covenant.dev/aggregate-to-tenant-admin": "true" } },
        "rules": netpol_rights
    }))
    .unwrap();
    let status = api_error(
        "netops creates a ClusterRole aggregated into covenant-tenant-admin",
        roles.create(&PostParams::default(), &labelled).await,
    );
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains("covenant-role-aggregation"),
        "refused by the aggregation policy: {status:?}"
    );
    let mut plain = labelled.clone();
    plain.metadata.labels = None;
    roles
        .create(&PostParams::default(), &plain)
        .await
        .expect("the same ClusterRole without the label is within netops' rights");
    // Whatever a tenant administrator holds, it writes no NetworkPolicy that lets more in or out.
    let allow_all: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "allow-everything" },
        "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{}], "egress": [{}] }
    }))
    .unwrap();
    forbidden(
        "alice creates an allow-everything NetworkPolicy",
        Api::<NetworkPolicy>::namespaced(impersonate(&ten.admin, &[]).await, ten.ns.as_str())
            .create(&PostParams::default(), &allow_all)
            .await,
    )
    .unwrap();
}

/// A tenant cannot mint a ServiceAccount token that outlives a withdrawal of access: a Secret of type
/// `kubernetes.io/service-account-token` (a token that never expires) is refused in its namespaces, and
/// so is a TokenRequest for more than an hour (the kubelet's 3607 s, which the API server extends to a
/// year, or a year outright), while an ordinary Secret and a token of ten minutes are allowed.
#[tokio::test]
async fn a_tenant_cannot_mint_a_service_account_token_that_never_expires() {
    let t = TestCtx::new("legacy-token").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    let as_alice = impersonate(&ten.admin, &[]).await;
    let secrets: Api<Secret> = Api::namespaced(as_alice.clone(), ns);
    let legacy: Secret = serde_json::from_value(json!({
        "metadata": { "name": "forever", "annotations": { "kubernetes.io/service-account.name": "default" } },
        "type": "kubernetes.io/service-account-token"
    }))
    .unwrap();
    let status = api_error(
        "alice creates a long-lived token Secret for the default ServiceAccount",
        secrets.create(&PostParams::default(), &legacy).await,
    );
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains("long-lived ServiceAccount token"),
        "{status:?}"
    );
    secrets
        .create(&PostParams::default(), &secret("ordinary"))
        .await
        .expect("an ordinary Secret is allowed");
    token(&as_alice, ns, "default")
        .await
        .expect("a short-lived token (TokenRequest) is allowed");
    for seconds in [3607, 365 * 24 * 3600] {
        let status = api_error(
            &format!("alice asks for a token of {seconds} s"),
            token_for(&as_alice, ns, "default", seconds).await,
        );
        assert_eq!(status.code, 403, "{seconds} s: {status:?}");
        assert!(status.message.contains("at most 3600 s"), "{status:?}");
    }
}

/// A tenant cannot make a Service that routes traffic around NetworkPolicies: one with external IPs
/// (it would capture what other pods send to those addresses) or an ExternalName alias (a shared
/// ingress controller would follow it to another tenant's Service) is refused; an ordinary Service is
/// created.
#[tokio::test]
async fn a_tenant_cannot_make_a_service_that_routes_around_network_policies() {
    let t = TestCtx::new("services").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(impersonate(&ten.admin, &[]).await, ten.ns.as_str());
    let service = |name: &str, spec: Value| -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).unwrap()
    };
    let port = json!([{ "port": 80, "targetPort": 8080 }]);
    for (name, spec, why) in [
        (
            "capture",
            json!({ "selector": { "app": "web" }, "ports": port, "externalIPs": ["10.96.0.10", "1.1.1.1"] }),
            "spec.externalIPs are refused",
        ),
        (
            "alias",
            json!({ "type": "ExternalName", "externalName": "web.other-tenant.svc.cluster.local" }),
            "ExternalName Services are refused",
        ),
    ] {
        let status = api_error(
            &format!("alice creates Service {name}"),
            services
                .create(&PostParams::default(), &service(name, spec))
                .await,
        );
        assert_eq!(status.code, 403, "{name}: {status:?}");
        assert!(status.message.contains(why), "{name}: {status:?}");
    }
    services
        .create(
            &PostParams::default(),
            &service(
                "web",
                json!({ "selector": { "app": "web" }, "ports": port }),
            ),
        )
        .await
        .expect("an ordinary Service is allowed");
}

/// `scaleWorkloads` cannot be evaded, and a tenant cannot choose what a lift restores. Before the
/// suspension the tenant makes: Deployments padded with annotations close to and exactly up to the
/// size limit (a patch that added Covenant's record to the second is refused: its record goes on the
/// namespace), a bare ReplicaSet, a StatefulSet, a Deployment held in deletion by a finalizer (its
/// ReplicaSet is no longer scaled by the deployment controller), and Deployments carrying a planted
/// record in `covenant.dev/before-suspension` (one running, one at zero). While suspended every one of
/// them runs zero replicas; after the lift each has exactly what it had before, whatever the tenant
/// wrote.
#[tokio::test]
async fn scaling_a_suspended_tenant_to_zero_cannot_be_evaded_and_a_lift_restores_what_it_had() {
    let t = TestCtx::new("scale-evasion").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(1)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let ns = ten.ns.as_str();
    let as_alice = impersonate(&ten.admin, &[]).await;
    let held_rs = workloads_that_try_to_evade_scaling(&t, &as_alice, ns).await;
    assert_a_scaling_suspension_zeroes_every_workload_and_the_lift_restores_it(&t, &ten, &held_rs)
        .await;
}

/// The administrator's workloads that try to evade a scale to zero: Deployments whose annotations
/// leave no room for a record (or forge one), one already at zero, one held by a finalizer after its
/// deletion (its ReplicaSet runs on), a StatefulSet, a bare ReplicaSet. Returns the held Deployment's
/// ReplicaSet.
async fn workloads_that_try_to_evade_scaling(t: &TestCtx, as_alice: &Client, ns: &str) -> String {
    let deps: Api<Deployment> = Api::namespaced(as_alice.clone(), ns);
    let pp = PostParams::default();
    let with = |name: &str, replicas: i32, annotations: Value| -> Deployment {
        let mut d = deployment(name);
        d.spec.replicas = Some(replicas);
        d.metadata.annotations = serde_json::from_value(annotations).unwrap();
        d
    };
    const FORGED: &str = "covenant.dev/before-suspension";
    deps.create(
        &pp,
        &with("bloat", 1, json!({ "pad": "x".repeat(250 * 1024) })),
    )
    .await
    .expect("a Deployment padded close to the annotation size limit");
    // Padded to exactly the limit (256 KiB of keys and values): no room for any record of its own.
    deps.create(
        &pp,
        &with("full", 2, json!({ "pad": "x".repeat(256 * 1024 - 3) })),
    )
    .await
    .expect("a Deployment whose annotations fill the size limit");
    deps.create(&pp, &with("forged", 2, json!({ FORGED: "guess:9" })))
        .await
        .unwrap();
    deps.create(&pp, &with("idle", 0, json!({ FORGED: "guess:15" })))
        .await
        .unwrap();
    let mut held = with("held", 3, json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    deps.create(&pp, &held).await.unwrap();
    let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": { "replicas": 1, "serviceName": "db",
                  "selector": { "matchLabels": { "app": "db" } },
                  "template": { "metadata": { "labels": { "app": "db" } },
                                "spec": fixtures::restricted_pod_spec() } }
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(as_alice.clone(), ns)
        .create(&pp, &sts)
        .await
        .unwrap();
    let bare: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": { "name": "bare" },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "bare" } },
                  "template": { "metadata": { "labels": { "app": "bare" } },
                                "spec": fixtures::restricted_pod_spec() } }
    }))
    .unwrap();
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(t.client.clone(), ns);
    Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(as_alice.clone(), ns)
        .create(&pp, &bare)
        .await
        .unwrap();
    // The held Deployment's ReplicaSet, once the deployment controller made it; then the Deployment
    // is deleted (the finalizer keeps it, and its ReplicaSet keeps running).
    let held_rs = eventually(
        "the held Deployment has a ReplicaSet of 3",
        TIMEOUT,
        || async {
            let list = rss
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|r| {
                    r.owner_references().iter().any(|o| o.name == "held")
                        && r.spec.replicas == Some(3)
                })
                .map(|r| r.name_any())
                .ok_or_else(|| "none yet".to_string())
        },
    )
    .await;
    deps.delete("held", &DeleteParams::default()).await.unwrap();
    held_rs
}

/// A Suspension with scaleWorkloads brings every workload to zero replicas, and its lift gives each
/// the replicas it had.
async fn assert_a_scaling_suspension_zeroes_every_workload_and_the_lift_restores_it(
    t: &TestCtx,
    ten: &Tenant,
    held_rs: &str,
) {
    let ns = ten.ns.as_str();
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(t.client.clone(), ns);
    let name = t.name("scale");
    t.track(SUSPENSIONS, &name);
    let mut suspension = fixtures::suspension(
        &name,
        &ten.account,
        "MaterialBreach",
        "Unpaid invoices",
        json!({}),
    );
    suspension.spec.scale_workloads = true;
    t.apply(&suspension).await;
    let admin_deps: Api<Deployment> = Api::namespaced(t.client.clone(), ns);
    let admin_sts: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(t.client.clone(), ns);
    let counts = || async {
        let mut got = Vec::new();
        for d in ["bloat", "full", "forged", "idle", "held"] {
            got.push((
                d.to_string(),
                admin_deps.get(d).await.ok().and_then(|d| d.spec.replicas),
            ));
        }
        got.push((
            "db".into(),
            admin_sts.get("db").await.ok().and_then(|s| s.spec.replicas),
        ));
        for r in ["bare", held_rs] {
            got.push((
                r.to_string(),
                rss.get(r).await.ok().and_then(|r| r.spec.replicas),
            ));
        }
        got
    };
    let want = |v: [i32; 8]| -> Vec<(String, Option<i32>)> {
        [
            "bloat", "full", "forged", "idle", "held", "db", "bare", held_rs,
        ]
        .iter()
        .zip(v)
        .map(|(n, r)| (n.to_string(), Some(r)))
        .collect()
    };
    let zero = want([0; 8]);
    eventually("every workload runs zero replicas", TIMEOUT, || async {
        let got = counts().await;
        if got == zero {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    lift(t, &name).await;
    let before = want([1, 2, 2, 0, 3, 1, 2, 3]);
    eventually(
        "every workload has what it had before the suspension",
        TIMEOUT,
        || async {
            let got = counts().await;
            if got == before {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await;
    // Let the held Deployment go, so the namespace can be deleted.
    admin_deps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();
}

/// A namespace dropped from an Account takes its ServiceAccounts out of the tenant's bindings in the
/// namespaces it keeps: once the name is no longer the tenant's, whoever gets it next (another tenant,
/// or anyone who may create namespaces once it is deleted) could make a ServiceAccount of that name and
/// inherit what it was granted. Within seconds the binding alice made no longer names it, and the API
/// server grants it nothing.
#[tokio::test]
async fn a_namespace_dropped_from_an_account_takes_its_service_accounts_out_of_the_tenants_bindings()
 {
    let t = TestCtx::new("dropped-ns").await;
    let pkg = new_package(&t, "pkg", |_| {}).await;
    let ten = t
        .tenant("acct")
        .package(&pkg)
        .namespaces(2)
        .admin(&t.name("alice"))
        .with_default_service_accounts()
        .await;
    let (kept, dropped) = (ten.namespaces[0].clone(), ten.namespaces[1].clone());
    let as_alice = impersonate(&ten.admin, &[]).await;
    let rb = role_binding(
        "dev-sa",
        "ClusterRole",
        "view",
        json!([sa_subject(&dropped, "x"), user_subject(&ten.admin)]),
    );
    let rbs: Api<RoleBinding> = Api::namespaced(as_alice, &kept);
    rbs.create(&PostParams::default(), &rb)
        .await
        .expect("alice binds a ServiceAccount of the account's other namespace");
    let sa = Identity::service_account(&dropped, "x");
    // What the built-in `view` role grants.
    const VIEW: &[(&str, &str, &str)] = &[("get", "pods", ""), ("list", "pods", "")];
    // RBAC sees a new binding once the API server's informers have it: ask until it answers.
    eventually(
        "the ServiceAccount reads the namespace it was bound in",
        TIMEOUT,
        || sa.authorized(&t.client, VIEW, &kept, true),
    )
    .await;
    // The account keeps only its first namespace.
    let mut shrunk = ten.applied.clone();
    shrunk.spec.namespaces = vec![kept.clone()];
    t.apply(&shrunk).await;
    let admin_rbs: Api<RoleBinding> = Api::namespaced(t.client.clone(), &kept);
    let after = wait_for(
        &admin_rbs,
        "dev-sa",
        "no longer name the dropped namespace's ServiceAccount",
        TIMEOUT,
        |b| {
            b.subjects
                .iter()
                .flatten()
                .all(|s| s.namespace.as_deref() != Some(dropped.as_str()))
        },
    )
    .await;
    assert!(
        after.subjects.iter().flatten().any(|s| s.name == ten.admin),
        "the administrator stays in the binding: {after:?}"
    );
    eventually(
        "the API server grants the dropped namespace's ServiceAccount nothing",
        TIMEOUT,
        || sa.authorized(&t.client, VIEW, &kept, false),
    )
    .await;
}
