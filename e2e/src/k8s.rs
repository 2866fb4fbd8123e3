//! Kubernetes helpers: clients (admin or impersonating), server-side apply of YAML, and waits that
//! fail with the object's YAML and its recent events.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use covenant::api::Account;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::Scope;
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{cluster, kubectl};
use crate::{POLL, TIMEOUT};

/// The field manager of the tests' applies.
pub const FIELD_MANAGER: &str = "covenant-e2e";

async fn config(user: Option<(&str, &[&str])>) -> Config {
    let c = cluster();
    let kc = Kubeconfig::read_from(&c.kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", c.kubeconfig.display()));
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", c.kubeconfig.display()));
    if let Some((user, groups)) = user {
        cfg.auth_info.impersonate = Some(user.to_string());
        cfg.auth_info.impersonate_groups =
            (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    }
    cfg.read_timeout = Some(Duration::from_secs(60));
    cfg
}

/// A client of the cluster admin (system:masters).
pub async fn client() -> Client {
    Client::try_from(config(None).await).expect("a kube client")
}

/// A client acting as `user` with `groups` (plus `system:authenticated`, which the API server adds).
pub async fn impersonate(user: &str, groups: &[&str]) -> Client {
    Client::try_from(config(Some((user, groups))).await).expect("an impersonating kube client")
}

/// What the API server's authorizer (RBAC) answers to `user` in `groups` asking to `verb` the
/// `resource` (`pods`, or `deployments.apps`: the resource, a dot, its API group) with `subresource`
/// (`""` for none) in namespace `ns`: a `SubjectAccessReview` created by the admin. It answers for
/// authorization only: what an admission policy would refuse, only a real request shows.
pub async fn can(
    client: &Client,
    user: &str,
    groups: &[&str],
    verb: &str,
    resource: &str,
    subresource: &str,
    ns: &str,
) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                subresource: (!subresource.is_empty()).then(|| subresource.to_string()),
                namespace: Some(ns.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&Default::default(), &review)
        .await
        .unwrap_or_else(|e| {
            panic!("SubjectAccessReview of {user} {verb} {resource}/{subresource} in {ns}: {e}")
        });
    answer.status.is_some_and(|s| s.allowed)
}

/// Server-side applies every document of a multi-document YAML (field manager `covenant-e2e`,
/// forced), in order. Returns the applied objects, or the first error.
pub async fn apply_yaml(client: &Client, yaml: &str) -> anyhow::Result<Vec<DynamicObject>> {
    use serde::Deserialize;
    let mut applied = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value)?;
        let types = obj
            .types
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("a document without apiVersion/kind:\n{yaml}"))?;
        let gvk = GroupVersionKind::try_from(types)?;
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let name = obj.name_any();
        let body = serde_json::to_value(&obj)?;
        let out = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        applied.push(out);
    }
    Ok(applied)
}

/// The condition of `type_` of an Account.
pub fn condition<'a>(account: &'a Account, type_: &str) -> Option<&'a Condition> {
    account
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The recent events about an object named `name` (any namespace), as kubectl prints them.
pub fn events_about(name: &str) -> String {
    let out = kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "--sort-by=.lastTimestamp",
    ]);
    let text = if out.success { out.stdout } else { out.stderr };
    crate::cluster::tail(&text, 30)
}

fn describe<K: Resource<DynamicType = ()>>(name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{} {ns}/{name}", K::kind(&())),
        None => format!("{} {name}", K::kind(&())),
    }
}

/// Polls `api` every 250 ms until the object `name` exists and satisfies `pred`, and returns it. On
/// timeout, panics with `what`, the object's last YAML and its recent events.
#[track_caller]
pub fn wait_for<'a, K>(
    api: &'a Api<K>,
    name: &'a str,
    what: &'a str,
    timeout: Duration,
    pred: impl Fn(&K) -> bool + 'a,
) -> impl Future<Output = K> + 'a
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
{
    wait_for_at(
        std::panic::Location::caller(),
        api,
        name,
        what.to_string(),
        timeout,
        pred,
    )
}

async fn wait_for_at<K>(
    caller: &'static std::panic::Location<'static>,
    api: &Api<K>,
    name: &str,
    what: String,
    timeout: Duration,
    pred: impl Fn(&K) -> bool,
) -> K
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
{
    let deadline = Instant::now() + timeout;
    // A watch of the one object (kube's own wait): the change is seen when it happens. Where the
    // watch cannot run (an identity that may only get), or fails, the rest of the time is polled.
    let watched = kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&K>| {
        o.is_some_and(&pred)
    });
    match tokio::time::timeout(timeout, watched).await {
        Ok(Ok(Some(o))) => return o,
        Ok(Ok(None)) | Ok(Err(_)) => {}
        Err(_) => {}
    }
    let mut last: Option<K> = None;
    let mut last_err = String::new();
    loop {
        match api.get_opt(name).await {
            Ok(Some(o)) => {
                if pred(&o) {
                    return o;
                }
                last = Some(o);
                last_err.clear();
            }
            Ok(None) => {
                last = None;
                last_err.clear();
            }
            Err(e) => last_err = e.to_string(),
        }
        if Instant::now() >= deadline {
            let ns = api.namespace().map(str::to_string);
            let yaml = match &last {
                Some(o) => serde_yaml::to_string(o).unwrap_or_default(),
                None if last_err.is_empty() => "(not found)".into(),
                None => format!("(cannot get it: {last_err})"),
            };
            panic!(
                "{caller}: timed out after {timeout:?} waiting for {} to {what}.\nLast seen:\n{yaml}\nRecent events about it:\n{}",
                describe::<K>(name, ns.as_deref()),
                events_about(name)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `name` does not exist (or, with `terminating_ok`, is being deleted).
#[track_caller]
pub fn wait_gone<'a, K>(
    api: &'a Api<K>,
    name: &'a str,
    terminating_ok: bool,
    timeout: Duration,
) -> impl Future<Output = ()> + 'a
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match api.get_opt(name).await {
                Ok(None) => return,
                Ok(Some(o)) if terminating_ok && o.meta().deletion_timestamp.is_some() => return,
                Ok(Some(o)) => serde_yaml::to_string(&o).unwrap_or_default(),
                Err(e) => format!("(cannot get it: {e})"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "{caller}: timed out after {timeout:?} waiting for {} to be gone{}.\nLast seen:\n{last}\nRecent events about it:\n{}",
                    describe::<K>(name, api.namespace()),
                    if terminating_ok {
                        " or terminating"
                    } else {
                        ""
                    },
                    events_about(name)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Polls `f` every 250 ms until it returns `Ok`; on timeout panics with `what` and the last error.
#[track_caller]
pub fn eventually<'a, T, F, Fut>(
    what: &'a str,
    timeout: Duration,
    mut f: F,
) -> impl Future<Output = T> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<T, String>> + 'a,
    T: 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match f().await {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!("{caller}: timed out after {timeout:?} waiting until {what}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits until the Account's condition `type_` has `status` (and `reason`, when given) for its
/// current generation.
#[track_caller]
pub fn wait_account<'a>(
    client: &'a Client,
    name: &'a str,
    type_: &'a str,
    status: &'a str,
    reason: Option<&'a str>,
) -> impl Future<Output = Account> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let api: Api<Account> = Api::all(client.clone());
        let what = format!(
            "have condition {type_}={status}{} for its generation",
            reason.map(|r| format!(" reason {r}")).unwrap_or_default()
        );
        wait_for_at(caller, &api, name, what, TIMEOUT, |a: &Account| {
            let generation = a.metadata.generation;
            a.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == generation)
                && condition(a, type_)
                    .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
        })
        .await
    }
}

/// Waits until the Account is Ready=True for its current generation.
#[track_caller]
pub fn wait_account_ready<'a>(
    client: &'a Client,
    name: &'a str,
) -> impl Future<Output = Account> + 'a {
    wait_account(client, name, "Ready", "True", None)
}

/// Creates `obj` through `api` as a client would: a create that the API server's quota admission
/// answers with a conflict on a ResourceQuota (409: the quota's usage was updated by a concurrent
/// create, and its own retries ran out) is tried again, a few times; any other answer is returned.
pub async fn create_retrying_quota_conflicts<K>(
    api: &Api<K>,
    params: &kube::api::PostParams,
    obj: &K,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let mut attempt = 0;
    loop {
        match api.create(params, obj).await {
            Err(kube::Error::Api(s))
                if s.code == 409
                    && s.details
                        .as_ref()
                        .is_some_and(|d| d.kind == "resourcequotas")
                    && attempt < 5 =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r,
        }
    }
}
