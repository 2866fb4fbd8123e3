//! The shipped ValidatingAdmissionPolicies evaluated offline with kube's CEL engine (the `cel` crate
//! with kube-cel's Kubernetes functions), as the API server evaluates them: `covenant check` judges
//! tenant workload manifests against a package with the very policy text of `deploy/`, so there is one
//! implementation of what a tier allows.
//!
//! The API server binds `object`, `oldObject`, `request`, `namespaceObject` and `variables` (each
//! variable in declaration order, a later one may use the earlier ones) and does not escape the keys
//! of a native object's maps, so neither does this.

use std::collections::HashMap;

use kube::core::cel::{KubeCelExt, cel};
use serde_json::{Value, json};

/// `deploy/workload-policies-policy.yaml`, compiled into the binary.
pub const WORKLOAD_POLICIES: &str = include_str!("../../deploy/workload-policies-policy.yaml");

/// `deploy/hostnames-policy.yaml`, compiled into the binary (`covenant check` evaluates the policies
/// of it that read no params: the bounds of Ingress and route hosts).
pub const HOSTNAMES_POLICIES: &str = include_str!("../../deploy/hostnames-policy.yaml");

/// `deploy/tenant-network-policies-policy.yaml`, compiled into the binary.
pub const TENANT_NETWORK_POLICIES: &str =
    include_str!("../../deploy/tenant-network-policies-policy.yaml");

/// The ValidatingAdmissionPolicies of a YAML stream.
pub fn policies(yaml: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for d in serde_yaml::Deserializer::from_str(yaml) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(d).map_err(|e| e.to_string())?;
        let v = serde_json::to_value(v).map_err(|e| e.to_string())?;
        if v["kind"] == "ValidatingAdmissionPolicy" {
            out.push(v);
        }
    }
    Ok(out)
}

/// The resource (plural) of a kind, as resourceRules name it.
fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Whether `policy`'s matchConstraints cover a CREATE or UPDATE (`operation`) of `object`.
pub fn matches(policy: &Value, object: &Value, operation: &str) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = resource_of(object["kind"].as_str().unwrap_or_default());
    let has = |list: &Value, x: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == "*" || v == x))
    };
    policy["spec"]["matchConstraints"]["resourceRules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            has(&r["apiGroups"], group)
                && has(&r["apiVersions"], version)
                && has(&r["operations"], operation)
                && has(&r["resources"], &resource)
        })
}

fn compile(expr: &str) -> Result<cel::Program, String> {
    cel::Program::compile(expr).map_err(|e| format!("does not compile: {expr}: {e}"))
}

fn to_cel(v: &Value) -> Result<cel::Value, String> {
    cel::to_value(v).map_err(|e| e.to_string())
}

fn context(
    inputs: &[(&str, cel::Value)],
    vars: &HashMap<String, cel::Value>,
) -> cel::Context<'static> {
    let mut ctx = cel::Context::default().with_all();
    for (name, value) in inputs {
        ctx.add_variable_from_value(*name, value.clone());
    }
    ctx.add_variable_from_value("variables", vars.clone());
    ctx
}

/// Evaluates `policy` on `object` (an UPDATE from `old` when given, else a CREATE) in the namespace
/// `namespace`, requested by `username`: `Ok(messages)`, one per failed validation (empty when
/// admitted, also when a matchCondition excludes the request); `Err` when an expression fails, which
/// the API server (failurePolicy: Fail) would also refuse.
pub fn evaluate(
    policy: &Value,
    object: &Value,
    old: Option<&Value>,
    namespace: &Value,
    username: &str,
) -> Result<Vec<String>, String> {
    evaluate_with_params(policy, object, old, namespace, username, &Value::Null)
}

/// [`evaluate`] with `params` bound (a policy with a paramKind, evaluated against one param object).
pub fn evaluate_with_params(
    policy: &Value,
    object: &Value,
    old: Option<&Value>,
    namespace: &Value,
    username: &str,
    params: &Value,
) -> Result<Vec<String>, String> {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    let request = json!({
        "operation": operation,
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"],
        "dryRun": false,
        "userInfo": {"username": username, "groups": ["system:authenticated"]},
    });
    let inputs = [
        ("object", to_cel(object)?),
        (
            "oldObject",
            old.map(to_cel).transpose()?.unwrap_or(cel::Value::Null),
        ),
        ("request", to_cel(&request)?),
        ("namespaceObject", to_cel(namespace)?),
        ("params", to_cel(params)?),
    ];
    let eval = |expr: &str, vars: &HashMap<String, cel::Value>| {
        compile(expr)?
            .execute(&context(&inputs, vars))
            .map_err(|e| format!("{expr}: {e}"))
    };
    let none = HashMap::new();
    for c in policy["spec"]["matchConditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match eval(c["expression"].as_str().unwrap_or("true"), &none)? {
            cel::Value::Bool(true) => {}
            cel::Value::Bool(false) => return Ok(Vec::new()),
            other => return Err(format!("matchCondition gives {other:?}")),
        }
    }
    let mut vars = HashMap::new();
    for v in policy["spec"]["variables"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default();
        let value = eval(v["expression"].as_str().unwrap_or("null"), &vars)
            .map_err(|e| format!("variable {name}: {e}"))?;
        vars.insert(name.to_string(), value);
    }
    let mut denied = Vec::new();
    for v in policy["spec"]["validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expr = v["expression"].as_str().unwrap_or("true");
        match eval(expr, &vars)? {
            cel::Value::Bool(true) => {}
            cel::Value::Bool(false) => denied.push(match v["messageExpression"].as_str() {
                Some(m) => match eval(m, &vars)? {
                    cel::Value::String(s) => s.to_string(),
                    other => format!("{other:?}"),
                },
                None => v["message"].as_str().unwrap_or(expr).to_string(),
            }),
            other => return Err(format!("validation {expr} gives {other:?}")),
        }
    }
    Ok(denied)
}
