//! Validation of raw objects against the generated CRD schemas: the same OpenAPI constraints and CEL
//! rules the API server enforces, so that `covenant check` rejects offline what the cluster would.
//!
//! The schema is taken from the CRD generated from the Rust types (one source for both enforcers); the
//! structural keywords used by those schemas are checked here and the `x-kubernetes-validations` are
//! evaluated by kube's CEL engine.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{LazyLock, Mutex};

use serde_json::Value;

/// One violated rule: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.retentionMonths`.
    pub path: String,
    /// What is wrong and, where it is not obvious, how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Validates `object` (a whole resource: apiVersion, kind, metadata, spec) against `schema` (a CRD
/// version's `openAPIV3Schema`), structural rules first and then CEL rules. `old` enables transition
/// rules (`oldSelf`) as on an update.
pub fn validate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    structural(schema, object, "", &mut errors);
    // CEL rules assume a structurally valid object (as in the API server, which evaluates them only
    // after the schema passed).
    if errors.is_empty() {
        let defaulted = kube::core::cel::apply_defaults(schema, object);
        if let Err(cel_errors) = kube::core::cel::validate_compiled(
            &kube::core::cel::compile_schema(schema),
            &defaulted,
            old,
        ) {
            errors.extend(cel_errors.iter().map(|e| FieldError {
                path: e.field_path.trim_start_matches('.').to_string(),
                message: e.message.clone(),
            }));
        }
    }
    errors
}

fn push(errors: &mut Vec<FieldError>, path: &str, message: impl Into<String>) {
    errors.push(FieldError {
        path: path.to_string(),
        message: message.into(),
    });
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

static REGEXES: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn matches(pattern: &str, s: &str) -> bool {
    let mut cache = REGEXES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    // A pattern the regex crate cannot compile is one we generated ourselves; accept rather than
    // reject every object (the API server still checks it).
    re.as_ref().is_none_or(|re| re.is_match(s))
}

fn structural(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            push(errors, path, "must not be null");
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        // Value validations apply by the value's type, as in the API server: `pattern` and lengths to
        // a string, bounds to an integer.
        if value.is_string() {
            string(schema, value, path, errors);
        } else if value.is_i64() || value.is_u64() {
            bounds(schema, value.as_f64().unwrap_or(0.0), path, errors);
        } else {
            push(
                errors,
                path,
                format!("must be an integer or a string, not {}", type_name(value)),
            );
        }
        return;
    }
    if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array) {
        let ok = any_of.iter().any(|s| {
            let mut sub = Vec::new();
            structural(s, value, path, &mut sub);
            sub.is_empty()
        });
        if !ok {
            push(errors, path, "does not match any allowed form");
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        push(
            errors,
            path,
            format!(
                "unsupported value {value}: must be one of {}",
                names.join(", ")
            ),
        );
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => object(schema, value, path, errors),
        Some("array") => array(schema, value, path, errors),
        Some("string") => string(schema, value, path, errors),
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                push(
                    errors,
                    path,
                    format!("must be an integer, not {}", type_name(value)),
                );
            } else {
                bounds(schema, value.as_f64().unwrap_or(0.0), path, errors);
            }
        }
        Some("number") => match value.as_f64() {
            Some(n) => bounds(schema, n, path, errors),
            None => push(
                errors,
                path,
                format!("must be a number, not {}", type_name(value)),
            ),
        },
        Some("boolean") if !value.is_boolean() => {
            push(
                errors,
                path,
                format!("must be true or false, not {}", type_name(value)),
            );
        }
        _ => {}
    }
}

fn bounds(
    schema: &serde_json::Map<String, Value>,
    n: f64,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        push(errors, path, format!("must be at least {min}, got {n}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        push(errors, path, format!("must be at most {max}, got {n}"));
    }
}

fn object(
    schema: &serde_json::Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(map) = value.as_object() else {
        push(
            errors,
            path,
            format!("must be an object, not {}", type_name(value)),
        );
        return;
    };
    // The root's apiVersion/kind/metadata are checked by the API machinery, not the CRD schema.
    let root = path.is_empty();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                push(errors, &join(path, key), "required field is missing");
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    for (key, v) in map {
        let p = join(path, key);
        if let Some(sub) = properties.and_then(|props| props.get(key)) {
            if root && key == "metadata" {
                continue;
            }
            structural(sub, v, &p, errors);
        } else if let Some(sub) = additional.filter(|a| a.is_object()) {
            structural(sub, v, &p, errors);
        } else if !preserve
            && (!root || !matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
        {
            push(
                errors,
                &p,
                "unknown field (the API server would drop it): check its spelling",
            );
        }
    }
}

fn array(
    schema: &serde_json::Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(items) = value.as_array() else {
        push(
            errors,
            path,
            format!("must be a list, not {}", type_name(value)),
        );
        return;
    };
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        push(
            errors,
            path,
            format!("must have at most {max} items, has {}", items.len()),
        );
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        push(
            errors,
            path,
            format!("must have at least {min} items, has {}", items.len()),
        );
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            structural(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    push(
                        errors,
                        &format!("{path}[{i}]"),
                        format!("duplicate value {item}"),
                    );
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<String> = keys
                    .iter()
                    .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                    .collect();
                if !seen.insert(key.clone()) {
                    push(
                        errors,
                        &format!("{path}[{i}]"),
                        format!("duplicate entry for {}", key.join(", ")),
                    );
                }
            }
        }
        _ => {}
    }
}

fn string(
    schema: &serde_json::Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(s) = value.as_str() else {
        push(
            errors,
            path,
            format!("must be a string, not {}", type_name(value)),
        );
        return;
    };
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        push(
            errors,
            path,
            format!("must be at most {max} characters long, is {len}"),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        push(
            errors,
            path,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters long")
            },
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !matches(pattern, s)
    {
        push(
            errors,
            path,
            format!("{s:?} does not match the pattern {pattern}"),
        );
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && s.parse::<jiff::Timestamp>().is_err()
    {
        push(
            errors,
            path,
            format!("{s:?} is not an RFC 3339 date-time, e.g. 2027-01-31T00:00:00Z"),
        );
    }
}
