//! The ValidatingAdmissionPolicy in `deploy/admission-policy.yaml` (third-party access, §1), evaluated
//! offline with kube's CEL engine against sample RoleBindings and tenant Namespaces.
//!
//! `VapEvaluator` binds `object`, `request` and `namespaceObject` but not the policy's `variables`, so
//! the test inlines each `variables.<name>` as its parenthesised expression (in declaration order, so a
//! variable may use the ones before it): the same value the API server computes lazily.

use std::path::{Path, PathBuf};

use kube::core::cel::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, VapEvaluator, VapExpression,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The documents of a YAML stream as JSON values.
fn load_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("valid YAML");
            serde_json::to_value(v).expect("YAML is JSON-compatible")
        })
        .filter(|v| !v.is_null())
        .collect()
}

struct Policy {
    doc: Value,
    /// The validations with every `variables.X` inlined.
    validations: Vec<VapExpression>,
}

/// Replaces `variables.<name>` (a whole identifier) with `(<expr>)`.
fn inline(expr: &str, vars: &[(String, String)]) -> String {
    let mut out = expr.to_string();
    for (name, value) in vars {
        let re = regex::Regex::new(&format!(r"\bvariables\.{}\b", regex::escape(name))).unwrap();
        out = re
            .replace_all(&out, regex::NoExpand(&format!("({value})")))
            .into_owned();
    }
    assert!(
        !out.contains("variables."),
        "unknown variable left in {out}"
    );
    out
}

fn policy() -> Policy {
    let docs = load_yaml(&repo().join("deploy/admission-policy.yaml"));
    let doc = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("a ValidatingAdmissionPolicy")
        .clone();
    let mut vars: Vec<(String, String)> = Vec::new();
    for v in doc["spec"]["variables"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap().to_string();
        let expr = inline(v["expression"].as_str().unwrap(), &vars);
        vars.push((name, expr));
    }
    let validations = doc["spec"]["validations"]
        .as_array()
        .expect("validations")
        .iter()
        .map(|v| VapExpression {
            expression: inline(v["expression"].as_str().unwrap(), &vars),
            message: v["message"].as_str().map(str::to_string),
            message_expression: v["messageExpression"].as_str().map(|m| inline(m, &vars)),
        })
        .collect();
    Policy { doc, validations }
}

fn namespace(name: &str, annotations: Option<Value>) -> Value {
    let mut ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"covenant.dev/account": ACCOUNT, "kubernetes.io/metadata.name": name}},
    });
    if let Some(a) = annotations {
        ns["metadata"]["annotations"] = a;
    }
    ns
}

/// A tenant namespace as Covenant stamps it: administrators alice and group acme-admins, allowed
/// subject ServiceAccount partner:auditor and User bob@partner.example, namespaces acme and acme-dev.
fn stamped(name: &str) -> Value {
    namespace(
        name,
        Some(json!({
            "covenant.dev/allowed-subjects":
                "Group:acme-admins\nServiceAccount:partner:auditor\nUser:alice@acme.example\nUser:bob@partner.example",
            "covenant.dev/namespaces": "acme,acme-dev",
        })),
    )
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}
fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}
fn sa(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn role_binding(ns: &str, subjects: Option<Vec<Value>>) -> Value {
    let mut rb = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "test", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "covenant-tenant-admin"},
    });
    if let Some(s) = subjects {
        rb["subjects"] = Value::Array(s);
    }
    rb
}

/// Evaluates the policy; `Ok(())` when admitted, `Err(messages)` when denied.
fn admit(ns: Value, rb: Value) -> Result<(), Vec<String>> {
    let p = policy();
    let namespace = rb["metadata"]["namespace"].as_str().unwrap().to_string();
    let evaluator = VapEvaluator::builder()
        .object(rb)
        .namespace_object(ns)
        .request(AdmissionRequest {
            operation: "CREATE".into(),
            username: "alice@acme.example".into(),
            name: "test".into(),
            namespace,
            kind: GroupVersionKind {
                group: "rbac.authorization.k8s.io".into(),
                version: "v1".into(),
                kind: "RoleBinding".into(),
            },
            resource: GroupVersionResource {
                group: "rbac.authorization.k8s.io".into(),
                version: "v1".into(),
                resource: "rolebindings".into(),
            },
            ..Default::default()
        })
        .build();
    let results = evaluator.evaluate(&p.validations);
    let denied: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.message.clone().unwrap_or_default())
        .collect();
    // An evaluation error would deny too (failurePolicy: Fail), but it is a bug in the policy.
    for m in &denied {
        assert!(
            !m.starts_with("evaluation error")
                && !m.contains("failed to compile")
                && !m.contains("non-boolean"),
            "the policy itself failed: {m}"
        );
    }
    if denied.is_empty() {
        Ok(())
    } else {
        Err(denied)
    }
}

#[test]
fn every_expression_compiles() {
    let p = policy();
    let evaluator = VapEvaluator::builder().build();
    for (i, c) in evaluator
        .compile_expressions(&p.validations)
        .iter()
        .enumerate()
    {
        assert!(
            c.is_ok(),
            "validation {i} does not compile: {:?}",
            c.as_ref().err()
        );
    }
}

#[test]
fn policy_matches_rolebindings_in_tenant_namespaces_and_denies() {
    let p = policy();
    let spec = &p.doc["spec"];
    assert_eq!(spec["failurePolicy"], "Fail");
    assert_eq!(
        spec["matchConstraints"]["namespaceSelector"]["matchExpressions"],
        json!([{"key": "covenant.dev/account", "operator": "Exists"}])
    );
    let rule = &spec["matchConstraints"]["resourceRules"][0];
    assert_eq!(rule["apiGroups"], json!(["rbac.authorization.k8s.io"]));
    assert_eq!(rule["resources"], json!(["rolebindings"]));
    assert_eq!(rule["operations"], json!(["CREATE", "UPDATE"]));
    assert!(
        spec.get("paramKind").is_none(),
        "the policy takes no params"
    );

    let docs = load_yaml(&repo().join("deploy/admission-policy.yaml"));
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("a ValidatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], p.doc["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
}

#[test]
fn administrators_are_allowed() {
    let rb = role_binding(
        "acme",
        Some(vec![user("alice@acme.example"), group("acme-admins")]),
    );
    assert_eq!(admit(stamped("acme"), rb), Ok(()));
}

#[test]
fn covenants_own_binding_passes_without_a_bypass() {
    let mut rb = role_binding(
        "acme",
        Some(vec![user("alice@acme.example"), group("acme-admins")]),
    );
    rb["metadata"]["name"] = json!("covenant-tenant-admin");
    assert_eq!(admit(stamped("acme"), rb.clone()), Ok(()));
    // The name does not help an outsider.
    rb["subjects"] = json!([user("mallory")]);
    assert!(admit(stamped("acme"), rb).is_err());
}

#[test]
fn own_service_accounts_are_allowed() {
    let rb = role_binding("acme", Some(vec![sa("acme", "builder")]));
    assert_eq!(admit(stamped("acme"), rb), Ok(()));
    // RBAC reads a ServiceAccount subject without a namespace as one of the RoleBinding's namespace.
    let rb = role_binding(
        "acme",
        Some(vec![json!({"kind": "ServiceAccount", "name": "builder"})]),
    );
    assert_eq!(admit(stamped("acme"), rb), Ok(()));
}

#[test]
fn service_accounts_of_the_accounts_other_namespaces_are_allowed() {
    let rb = role_binding("acme", Some(vec![sa("acme-dev", "deployer")]));
    assert_eq!(admit(stamped("acme"), rb), Ok(()));
    let rb = role_binding("acme-dev", Some(vec![sa("acme", "deployer")]));
    assert_eq!(admit(stamped("acme-dev"), rb), Ok(()));
}

#[test]
fn allowed_subjects_are_allowed() {
    let rb = role_binding(
        "acme",
        Some(vec![sa("partner", "auditor"), user("bob@partner.example")]),
    );
    assert_eq!(admit(stamped("acme"), rb), Ok(()));
}

#[test]
fn a_binding_without_subjects_is_allowed() {
    assert_eq!(admit(stamped("acme"), role_binding("acme", None)), Ok(()));
    assert_eq!(
        admit(stamped("acme"), role_binding("acme", Some(vec![]))),
        Ok(())
    );
    assert_eq!(
        admit(namespace("acme", None), role_binding("acme", None)),
        Ok(())
    );
}

#[test]
fn outsiders_are_rejected_and_named() {
    let err = admit(
        stamped("acme"),
        role_binding("acme", Some(vec![user("mallory")])),
    )
    .unwrap_err();
    assert_eq!(
        err,
        vec![
            "RoleBinding subjects must be the administrators, ServiceAccounts or spec.allowedSubjects of \
             Account acme; not allowed: User:mallory"
                .to_string()
        ]
    );
    // A ServiceAccount of another tenant, and one whose name merely equals an allowed one elsewhere.
    for subject in [
        sa("globex", "builder"),
        sa("globex", "auditor"),
        group("system:authenticated"),
    ] {
        assert!(
            admit(
                stamped("acme"),
                role_binding("acme", Some(vec![subject.clone()]))
            )
            .is_err(),
            "{subject}"
        );
    }
    // The kind matters: a Group named like an allowed User is not allowed.
    assert!(
        admit(
            stamped("acme"),
            role_binding("acme", Some(vec![group("alice@acme.example")]))
        )
        .is_err()
    );
    // Tokens match whole: no prefix or substring of the annotation is allowed.
    for subject in [
        user("alice"),
        user("alice@acme.example\nUser:mallory"),
        group("acme"),
    ] {
        assert!(
            admit(
                stamped("acme"),
                role_binding("acme", Some(vec![subject.clone()]))
            )
            .is_err(),
            "{subject}"
        );
    }
}

#[test]
fn a_mixed_list_is_rejected_naming_only_the_outsiders() {
    let rb = role_binding(
        "acme",
        Some(vec![
            user("alice@acme.example"),
            user("mallory"),
            sa("acme", "builder"),
            json!({"kind": "ServiceAccount", "name": "miner", "namespace": "globex"}),
        ]),
    );
    let err = admit(stamped("acme"), rb).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].ends_with("not allowed: User:mallory, ServiceAccount:globex:miner"),
        "{}",
        err[0]
    );
}

#[test]
fn a_namespace_without_the_annotation_fails_closed() {
    // No annotations at all, and other annotations but not ours.
    for ns in [
        namespace("acme", None),
        namespace("acme", Some(json!({"covenant.dev/namespaces": "acme"}))),
    ] {
        for subjects in [
            vec![user("alice@acme.example")],
            vec![sa("acme", "builder")],
        ] {
            let err = admit(ns.clone(), role_binding("acme", Some(subjects))).unwrap_err();
            assert_eq!(err.len(), 1, "{err:?}");
            assert!(
                err[0].contains("until Covenant has reconciled Account acme"),
                "{}",
                err[0]
            );
        }
    }
}

#[test]
fn an_account_with_no_allowed_subjects_still_allows_its_service_accounts() {
    let ns = namespace("acme", Some(json!({"covenant.dev/allowed-subjects": ""})));
    assert_eq!(
        admit(
            ns.clone(),
            role_binding("acme", Some(vec![sa("acme", "builder")]))
        ),
        Ok(())
    );
    // Without covenant.dev/namespaces only the RoleBinding's own namespace counts.
    assert!(
        admit(
            ns.clone(),
            role_binding("acme", Some(vec![sa("acme-dev", "builder")]))
        )
        .is_err()
    );
    assert!(
        admit(
            ns,
            role_binding("acme", Some(vec![user("alice@acme.example")]))
        )
        .is_err()
    );
}

/// The chart ships the same policy and roles: everything from `spec:` / `rules:` on must be identical
/// (only metadata is templated there).
#[test]
fn the_chart_ships_the_same_policy_and_roles() {
    fn bodies(text: &str, key: &str) -> Vec<String> {
        text.split("\n---")
            .filter_map(|doc| {
                let start = doc.find(&format!("\n{key}:"))?;
                Some(doc[start..].trim_end().to_string())
            })
            .collect()
    }
    for (deploy, chart, key) in [
        (
            "deploy/admission-policy.yaml",
            "charts/covenant/templates/admission-policy.yaml",
            "spec",
        ),
        (
            "deploy/tenant-roles.yaml",
            "charts/covenant/templates/tenant-roles.yaml",
            "rules",
        ),
    ] {
        let d = std::fs::read_to_string(repo().join(deploy)).unwrap();
        let c = std::fs::read_to_string(repo().join(chart)).unwrap();
        let (db, cb) = (bodies(&d, key), bodies(&c, key));
        assert!(!db.is_empty());
        assert_eq!(db, cb, "{chart} has drifted from {deploy}");
    }
}
