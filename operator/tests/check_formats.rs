//! `covenant check` in pipelines: directories walked, objects as JSON, problems as GitHub workflow
//! commands or a JUnit report (read back by an independent XML parser, roxmltree), and a package an
//! account names but nobody has reported.

use std::path::Path;
use std::process::Command;

const NOW: &str = "2026-11-28T12:00:00Z";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs the `covenant` binary built for these tests; returns (exit code, stdout, stderr).
fn covenant(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_covenant"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("covenant runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn invalid_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("examples/invalid"))
        .unwrap()
        .map(|e| {
            format!(
                "examples/invalid/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_directory_is_walked_like_its_files() {
    let (code, _, by_dir) = covenant(&["check", "--now", NOW, "-o", "none", "examples/invalid"]);
    let mut args = vec!["check", "--now", NOW, "-o", "none"];
    let files = invalid_files();
    args.extend(files.iter().map(String::as_str));
    let (code2, _, by_files) = covenant(&args);
    assert_eq!((code, code2), (1, 1));
    assert_eq!(by_dir, by_files);
    assert_eq!(
        by_dir.lines().count(),
        files.len(),
        "one problem per invalid example"
    );
}

#[test]
fn objects_print_as_json() {
    let (code, out, err) = covenant(&[
        "check",
        "--now",
        NOW,
        "-o",
        "json",
        "examples/accounts.yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "globex"]);
    assert!(v[0]["status"].is_object());
}

#[test]
fn problems_annotate_the_files_in_a_pull_request() {
    let (code, out, _) = covenant(&[
        "check",
        "--now",
        NOW,
        "--format",
        "github",
        "examples/invalid",
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), invalid_files().len(), "{out}");
    // ::error file=<path>,title=<...>::<message>, property values with ':' and ',' escaped: each
    // invalid example annotated once.
    let mut annotated: Vec<String> = lines
        .iter()
        .map(|line| {
            let props = line.strip_prefix("::error ").expect(line);
            let (props, message) = props.split_once("::").expect(line);
            assert!(!message.is_empty());
            assert!(props.contains(",title=covenant check%3A "), "{line}");
            props
                .strip_prefix("file=")
                .and_then(|p| p.split_once(','))
                .map(|(f, _)| f.to_string())
                .expect(line)
        })
        .collect();
    annotated.sort();
    assert_eq!(annotated, invalid_files());
}

#[test]
fn a_junit_report_has_one_case_per_object_and_the_failures() {
    let mut args = vec![
        "check",
        "--now",
        NOW,
        "--format",
        "junit",
        "examples/accounts.yaml",
    ];
    args.extend([
        "examples/invalid/notice-bad-type.yaml",
        "examples/invalid/suspension-empty-cause.yaml",
    ]);
    let (code, out, _) = covenant(&args);
    assert_eq!(code, 1);
    let doc = roxmltree::Document::parse(&out).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(
        names,
        [
            "Account/acme",
            "Account/globex",
            "DeprecationNotice/rebrand",
            "Suspension/bad-cause"
        ]
    );
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|f| f.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(
        failed,
        ["DeprecationNotice/rebrand", "Suspension/bad-cause"]
    );
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let message = cases[2]
        .children()
        .find(|f| f.has_tag_name("failure"))
        .unwrap()
        .attribute("message")
        .unwrap();
    assert!(
        message.contains("unsupported value \"Rebrand\""),
        "{message}"
    );
}

#[test]
fn an_account_naming_a_package_nobody_has_is_reported() {
    let dir = tempfile_dir();
    let file = dir.join("account.yaml");
    std::fs::write(
        &file,
        "apiVersion: covenant.dev/v1alpha1\nkind: Account\nmetadata: {name: lost}\nspec:\n  supportPackage: platinum\n",
    )
    .unwrap();
    let (code, _, err) = covenant(&[
        "check",
        "--now",
        NOW,
        "examples/support-packages.yaml",
        &file.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Account/lost") && err.contains("platinum"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("covenant-check-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
