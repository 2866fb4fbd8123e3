//! The ValidatingAdmissionPolicy in `deploy/admission-policy.yaml` (third-party access, §1), evaluated
//! offline with kube's CEL engine (the `cel` crate with every Kubernetes extension function of
//! `kube-cel` registered) against sample RoleBindings and tenant Namespaces.
//!
//! Why not `kube::core::cel::VapEvaluator`: it converts objects as if they were custom resources and
//! escapes every map key (`covenant.dev/account` becomes `covenant__dot__dev__slash__account`), while
//! the API server does not escape the keys of a native object's `labels`/`annotations` maps; and it does
//! not bind the policy's `variables`. So this test binds `object`, `oldObject`, `request`,
//! `namespaceObject` and `variables` itself, as the API server does, and evaluates each variable in
//! declaration order (a variable may use the ones before it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kube::core::cel::{KubeCelExt, cel};
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

fn policy() -> Value {
    load_yaml(&repo().join("deploy/admission-policy.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("a ValidatingAdmissionPolicy")
}

fn compile(expr: &str) -> cel::Program {
    cel::Program::compile(expr).unwrap_or_else(|e| panic!("does not compile: {expr}\n{e}"))
}

/// A CEL value from JSON, keys as they are (no CRD escaping: these are native objects).
fn to_cel(v: &Value) -> cel::Value {
    cel::to_value(v).expect("JSON converts to CEL")
}

/// A context with the admission variables bound, and `variables` holding `vars`.
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

/// The operator's identity in `deploy/` (exempt from the policy by its matchConditions).
const OPERATOR: &str = "system:serviceaccount:covenant-system:covenant";

/// Evaluates the policy on a CREATE of `rb` in the namespace `ns` by a tenant administrator.
fn admit(ns: Value, rb: Value) -> Result<(), Vec<String>> {
    admit_as("alice@acme.example", ns, rb)
}

/// Evaluates the policy on a CREATE of `rb` in the namespace `ns` by `username`; `Ok(())` when
/// admitted (also when a matchCondition excludes the request, as the API server then skips the
/// policy), `Err(messages)` (one per failed validation) when denied. Panics when an expression
/// errors: that would deny too (failurePolicy: Fail), but it is a bug in the policy.
fn admit_as(username: &str, ns: Value, rb: Value) -> Result<(), Vec<String>> {
    let p = policy();
    let namespace = rb["metadata"]["namespace"].as_str().unwrap().to_string();
    let request = json!({
        "operation": "CREATE",
        "name": rb["metadata"]["name"],
        "namespace": namespace,
        "dryRun": false,
        "kind": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "RoleBinding"},
        "resource": {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "rolebindings"},
        "userInfo": {"username": username, "groups": ["system:authenticated"]},
    });
    let inputs = [
        ("object", to_cel(&rb)),
        ("oldObject", cel::Value::Null),
        ("request", to_cel(&request)),
        ("namespaceObject", to_cel(&ns)),
    ];
    for c in p["spec"]["matchConditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expr = c["expression"].as_str().unwrap();
        match compile(expr).execute(&context(&inputs, &HashMap::new())) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(()),
            other => panic!("matchCondition {expr} gives {other:?}"),
        }
    }
    let mut vars = HashMap::new();
    for v in p["spec"]["variables"].as_array().into_iter().flatten() {
        let (name, expr) = (
            v["name"].as_str().unwrap(),
            v["expression"].as_str().unwrap(),
        );
        let value = compile(expr)
            .execute(&context(&inputs, &vars))
            .unwrap_or_else(|e| panic!("variable {name} fails: {e}"));
        vars.insert(name.to_string(), value);
    }
    let ctx = context(&inputs, &vars);
    let mut denied = Vec::new();
    for v in p["spec"]["validations"].as_array().expect("validations") {
        let expr = v["expression"].as_str().unwrap();
        match compile(expr).execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = match v["messageExpression"].as_str() {
                    Some(m) => match compile(m).execute(&ctx) {
                        Ok(cel::Value::String(s)) => s.to_string(),
                        other => panic!("messageExpression {m} gives {other:?}"),
                    },
                    None => v["message"].as_str().unwrap_or(expr).to_string(),
                };
                denied.push(message);
            }
            other => panic!("validation {expr} gives {other:?}"),
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        Err(denied)
    }
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
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    });
    if let Some(s) = subjects {
        rb["subjects"] = Value::Array(s);
    }
    rb
}

#[test]
fn every_expression_compiles() {
    let p = policy();
    let spec = &p["spec"];
    for v in spec["variables"].as_array().expect("variables") {
        compile(v["expression"].as_str().unwrap());
    }
    for v in spec["validations"].as_array().expect("validations") {
        compile(v["expression"].as_str().unwrap());
        // Every refusal says why: a message built from the object, or a fixed one.
        match v["messageExpression"].as_str() {
            Some(m) => {
                compile(m);
            }
            None => assert!(
                v["message"].as_str().is_some_and(|m| !m.trim().is_empty()),
                "every validation has a message or a messageExpression: {v}"
            ),
        }
    }
}

#[test]
fn policy_matches_rolebindings_in_tenant_namespaces_and_denies() {
    let p = policy();
    let spec = &p["spec"];
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
    assert_eq!(binding["spec"]["policyName"], p["metadata"]["name"]);
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
fn only_covenant_binds_its_own_roles() {
    let mut rb = role_binding(
        "acme",
        Some(vec![user("alice@acme.example"), group("acme-admins")]),
    );
    rb["metadata"]["name"] = json!("covenant-tenant-admin");
    rb["roleRef"]["name"] = json!("covenant-tenant-admin");
    // The operator writes it (its own identity is exempt)...
    assert_eq!(admit_as(OPERATOR, stamped("acme"), rb.clone()), Ok(()));
    // ...and nobody else, not even for the administrators themselves.
    let denied = admit(stamped("acme"), rb.clone()).unwrap_err();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("cannot reference ClusterRole covenant-tenant-admin"),
        "{denied:?}"
    );
    // The name does not help an outsider either.
    rb["roleRef"]["name"] = json!("view");
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
            "RoleBinding subjects must be the administrators, ServiceAccounts, spec.allowedSubjects or people of spec.organization.domains of \
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
        // The chart names the release's operator where deploy/ names covenant-system's.
        let c = std::fs::read_to_string(repo().join(chart)).unwrap().replace(
            "system:serviceaccount:{{ .Release.Namespace }}:{{ include \"covenant.serviceAccountName\" . }}",
            OPERATOR,
        );
        let (db, cb) = (bodies(&d, key), bodies(&c, key));
        assert!(!db.is_empty());
        assert_eq!(db, cb, "{chart} has drifted from {deploy}");
    }
}

/// `stamped` plus the organization's identity domain acme.example.
fn with_domain(name: &str) -> Value {
    let mut ns = stamped(name);
    let a = ns["metadata"]["annotations"]["covenant.dev/allowed-subjects"]
        .as_str()
        .unwrap()
        .to_string();
    ns["metadata"]["annotations"]["covenant.dev/allowed-subjects"] =
        json!(format!("Domain:acme.example\n{a}"));
    ns
}

#[test]
fn the_organizations_people_are_bound_by_their_administrators_without_the_platform() {
    // Anyone of the client's own identity domain...
    let rb = role_binding("acme", Some(vec![user("carol@acme.example")]));
    assert_eq!(admit(with_domain("acme"), rb.clone()), Ok(()));
    // ...only once the account names the domain.
    assert!(admit(stamped("acme"), rb).is_err());
    // Not a look-alike: another domain, a subdomain, a second '@', an empty name, or a Group.
    for name in [
        "carol@acme.example.evil",
        "carol@evil.acme.example",
        "carol@evil.example@acme.example",
        "@acme.example",
        "acme.example",
    ] {
        let rb = role_binding("acme", Some(vec![user(name)]));
        assert!(admit(with_domain("acme"), rb).is_err(), "{name}");
    }
    let rb = role_binding("acme", Some(vec![group("carol@acme.example")]));
    assert!(admit(with_domain("acme"), rb).is_err());
}
