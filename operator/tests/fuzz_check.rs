//! `covenant check` on hostile input: arbitrary text and arbitrary values in every field of the
//! examples never panic, and always end in one of the documented exit codes.

use covenant::check::{self, Report};
use proptest::prelude::*;
use serde_json::Value;

const NOW: &str = "2026-11-28T12:00:00Z";

fn run_text(text: &str) -> Report {
    let mut report = Report::default();
    let docs = check::parse_docs("fuzz.yaml", text, &mut report);
    check::check(docs, NOW.parse().expect("now"), &mut report);
    let _ = check::render(&report);
    report
}

fn examples() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            let mut report = Report::default();
            out.extend(
                check::parse_docs("e", &text, &mut report)
                    .into_iter()
                    .map(|d| d.value),
            );
        }
    }
    out
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("2027-02-29T00:00:00Z".into())),
        Just(Value::String("9999-12-31T23:59:59Z".into())),
        Just(Value::String("-0001-01-01T00:00:00Z".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer to a value inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            pointers(
                x,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let code = run_text(&text).exit_code();
        prop_assert!([0, 1, 2].contains(&code));
    }

    #[test]
    fn arbitrary_values_in_example_fields_never_panic(pick in any::<prop::sample::Index>(), field in any::<prop::sample::Index>(), value in arbitrary_json()) {
        let objs = examples();
        let mut obj = objs[pick.index(objs.len())].clone();
        let mut ptrs = Vec::new();
        pointers(&obj, String::new(), &mut ptrs);
        let ptr = ptrs[field.index(ptrs.len())].clone();
        if ptr.is_empty() {
            obj = value;
        } else if let Some(slot) = obj.pointer_mut(&ptr) {
            *slot = value;
        }
        let text = serde_yaml::to_string(&obj).unwrap_or_default();
        let report = run_text(&text);
        let code = report.exit_code();
        prop_assert!([0, 1, 2].contains(&code));
        // An invalid object is always explained.
        if code == 1 {
            prop_assert!(!report.problems.is_empty());
        }
    }
}
