//! `covenant check` on the shipped examples: every valid example passes and every invalid one fails
//! with the message documented in its `# expect-check:` line.

use std::path::{Path, PathBuf};

use covenant::check::{self, Report};

const NOW: &str = "2026-11-28T12:00:00Z";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn run(files: &[PathBuf]) -> Report {
    let mut report = Report::default();
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let docs = check::read_docs(&paths, &mut report);
    check::check(docs, NOW.parse().expect("now"), &mut report);
    report
}

#[test]
fn valid_examples_pass_together() {
    let files = yaml_files(&examples());
    assert!(
        files.len() >= 4,
        "expected the example manifests, found {files:?}"
    );
    let report = run(&files);
    assert_eq!(report.problems, Vec::new());
    assert_eq!(report.exit_code(), check::exit::OK);
    let kinds: Vec<&str> = report
        .objects
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    for kind in [
        "Account",
        "SupportPackage",
        "Suspension",
        "DeprecationNotice",
    ] {
        assert!(kinds.contains(&kind), "no {kind} among the examples");
    }
    // Every printed object carries a computed status.
    assert!(report.objects.iter().all(|o| o.get("status").is_some()));
}

#[test]
fn a_tenants_answer_is_checked_with_its_account_and_notice() {
    // examples/tenant/ holds what a tenant administrator applies (not the platform's `-f examples/`).
    let mut files = yaml_files(&examples());
    files.extend(yaml_files(&examples().join("tenant")));
    let report = run(&files);
    assert_eq!(report.problems, Vec::new());
    let answer = report
        .objects
        .iter()
        .find(|o| o["kind"] == "NoticeResponse")
        .expect("the example answer");
    assert_eq!(answer["status"]["account"], "acme");
    assert_eq!(answer["status"]["conditions"][0]["reason"], "Stands");
    assert_eq!(answer["status"]["accountDecision"], "Rejected");
    let acme = report
        .objects
        .iter()
        .find(|o| o["kind"] == "Account" && o["metadata"]["name"] == "acme")
        .unwrap();
    let row = acme["status"]["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "data-processing-addendum-2027")
        .expect("the amendment concerns acme");
    assert_eq!(row["decision"], "Rejected");
    assert_eq!(row["answeredBy"], "acme/reject-dpa-2027");
}

#[test]
fn each_invalid_example_fails_with_its_documented_message() {
    let files = yaml_files(&examples().join("invalid"));
    assert!(files.len() >= 8);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-check: "))
            .unwrap_or_else(|| panic!("{} has no '# expect-check:' line", file.display()));
        let report = run(std::slice::from_ref(&file));
        assert_eq!(
            report.exit_code(),
            check::exit::INVALID,
            "{}: {:?}",
            file.display(),
            report.problems
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.to_string().contains(expected)),
            "{}: expected a problem containing {expected:?}, got {:?}",
            file.display(),
            report.problems
        );
    }
}

#[test]
fn an_account_may_raise_its_packages_account_quota_but_every_entry_must_be_a_quota_resource() {
    // The Account is the platform's: like `quota`, its `accountQuota` entries replace the package's,
    // higher or lower, and the API server admits both. What it refuses is the ResourceQuota made of
    // an entry it does not count, or a fraction of a count.
    let check_text = |text: &str| {
        let mut report = Report::default();
        let docs = check::parse_docs("inline.yaml", text, &mut report);
        check::check(docs, NOW.parse().expect("now"), &mut report);
        report
    };
    let package = "apiVersion: covenant.dev/v1alpha1\nkind: SupportPackage\nmetadata: {name: small}\n\
                   spec: {default: true, accountQuota: {pods: \"10\", requests.cpu: \"2\"}}\n";
    let raised = format!(
        "{package}---\napiVersion: covenant.dev/v1alpha1\nkind: Account\nmetadata: {{name: big}}\n\
         spec: {{accountQuota: {{pods: \"500\", requests.cpu: \"64\", count/deployments.apps: \"100\"}}}}\n"
    );
    let report = check_text(&raised);
    assert_eq!(report.problems, Vec::new());
    let account = report
        .objects
        .iter()
        .find(|o| o["kind"] == "Account")
        .expect("the account");
    assert_eq!(account["spec"]["accountQuota"]["pods"], "500");

    let wrong = format!(
        "{package}---\napiVersion: covenant.dev/v1alpha1\nkind: Account\nmetadata: {{name: odd}}\n\
         spec: {{accountQuota: {{pod: \"5\", count/configmaps: \"1.5\"}}, quota: {{storage: 1Gi}}}}\n"
    );
    let report = check_text(&wrong);
    assert_eq!(report.exit_code(), check::exit::INVALID);
    let said: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    for expected in [
        "Account/odd: spec.accountQuota[pod]: Invalid value: \"pod\": must be a standard resource for quota",
        "Account/odd: spec.accountQuota[count/configmaps]: Invalid value: \"1.5\": must be an integer",
        "Account/odd: spec.quota[storage]: Invalid value: \"storage\": must be a standard resource for quota",
    ] {
        assert!(
            said.iter().any(|p| p.contains(expected)),
            "expected {expected:?} among {said:?}"
        );
    }
}

#[test]
fn unparsable_input_exits_2() {
    let mut report = Report::default();
    let docs = check::parse_docs("bad.yaml", "kind: [unclosed", &mut report);
    check::check(docs, NOW.parse().expect("now"), &mut report);
    assert_eq!(report.exit_code(), check::exit::UNREADABLE);
}

#[test]
fn the_binary_uses_the_documented_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_covenant");
    let ok = std::process::Command::new(bin)
        .args(["check", "--now", NOW])
        .args(yaml_files(&examples()))
        .output()
        .expect("run covenant");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("enforcedEffectiveAt"));
    let bad = std::process::Command::new(bin)
        .args(["check", "--now", NOW])
        .args(yaml_files(&examples().join("invalid")))
        .output()
        .expect("run covenant");
    assert_eq!(bad.status.code(), Some(1));
    let missing = std::process::Command::new(bin)
        .args(["check", "/nonexistent.yaml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn an_account_suspended_in_the_same_files_is_shown_suspended() {
    // examples/suspension.yaml suspends globex; acme has no suspension: check gives each the
    // `Suspended` condition the operator would.
    let report = run(&yaml_files(&examples()));
    let suspended = |name: &str| {
        let account = report
            .objects
            .iter()
            .find(|o| o["kind"] == "Account" && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("account {name} among the examples"));
        account["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Suspended"))
            .cloned()
            .unwrap_or_else(|| panic!("{name} has a Suspended condition"))
    };
    let globex = suspended("globex");
    assert_eq!(globex["status"], "True");
    assert_eq!(globex["reason"], "AcceptableUsePolicy");
    let message = globex["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("exceeded the AUP's rate limits"),
        "the cause is told: {message}"
    );
    assert_eq!(suspended("acme")["status"], "False");
}
