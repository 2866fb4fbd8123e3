//! `covenant check`: validates manifests offline by the same schema, CEL rules and terms as the
//! operator, and prints each Covenant object with the status the operator would compute.

use std::io::Read;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResourceExt, ResourceExt};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{
    Account, AccountStatus, DeprecationNotice, GROUP, NoticeResponse, SupportPackage,
    SupportPackageStatus, Suspension, schema,
};
use crate::model;
use crate::status::merge;

/// Exit codes of `covenant check`.
pub mod exit {
    /// Every object is valid and every notice window is satisfied or exempt.
    pub const OK: i32 = 0;
    /// An object is invalid or a notice window is too short.
    pub const INVALID: i32 = 1;
    /// Input could not be read or parsed.
    pub const UNREADABLE: i32 = 2;
}

/// The result of checking a set of documents.
#[derive(Debug, Default)]
pub struct Report {
    /// Each Covenant object with its computed status, in input order.
    pub objects: Vec<Value>,
    /// What is wrong with the objects, each with where it is and how to fix it.
    pub problems: Vec<Problem>,
    /// Documents that could not be read or parsed.
    pub unreadable: Vec<Problem>,
}

/// One problem: where it is and what it says. Shown as one line, `<source>: <Kind>/<name>: <message>`
/// (or `<source>: <message>` when it names no object); the renderers read the parts, never the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file#document`, or `file` (or a directory, or nothing) when no document is concerned.
    pub source: String,
    /// `Kind/name` of the object, when the problem concerns one.
    pub object: Option<String>,
    /// What is wrong and how to fix it (for fields: `<field>: ...`).
    pub message: String,
}

impl Problem {
    /// A problem of the document or file `source` that names no object.
    pub fn of(source: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            source: source.into(),
            object: None,
            message: message.into(),
        }
    }

    /// The file the problem is in (without the `#document` suffix), if any.
    pub fn file(&self) -> Option<&str> {
        (!self.source.is_empty()).then(|| {
            self.source
                .split_once('#')
                .map_or(self.source.as_str(), |(f, _)| f)
        })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.source.is_empty() {
            write!(f, "{}: ", self.source)?;
        }
        if let Some(o) = &self.object {
            write!(f, "{o}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Report {
    /// The process exit code for this report.
    pub fn exit_code(&self) -> i32 {
        if !self.unreadable.is_empty() {
            exit::UNREADABLE
        } else if !self.problems.is_empty() {
            exit::INVALID
        } else {
            exit::OK
        }
    }
}

/// A document read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Doc {
    /// `file` or `file#index`.
    pub source: String,
    /// The parsed document.
    pub value: Value,
}

/// Reads every YAML document of each path (`-` is standard input). Unreadable files or documents go to
/// the report's `unreadable`.
pub fn read_docs(paths: &[String], report: &mut Report) -> Vec<Doc> {
    let mut docs = Vec::new();
    for path in &expand(paths, report) {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(path)
        };
        match text {
            Ok(text) => docs.extend(parse_docs(path, &text, report)),
            Err(e) => report
                .unreadable
                .push(Problem::of(path.as_str(), format!("cannot read: {e}"))),
        }
    }
    docs
}

/// `paths` with each directory replaced by the `.yaml` and `.yml` files under it (recursively,
/// sorted, hidden entries skipped), as a GitOps repository is laid out.
pub fn expand(paths: &[String], report: &mut Report) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>, report: &mut Report) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                report.unreadable.push(Problem::of(
                    dir.display().to_string(),
                    format!("cannot read: {e}"),
                ));
                return;
            }
        };
        let mut paths: Vec<std::path::PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                walk(&p, out, report);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let p = std::path::Path::new(path);
        if path != "-" && p.is_dir() {
            walk(p, &mut out, report);
        } else {
            out.push(path.clone());
        }
    }
    out
}

/// Parses a multi-document YAML text.
pub fn parse_docs(source: &str, text: &str, report: &mut Report) -> Vec<Doc> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(value) => docs.push(Doc {
                source: format!("{source}#{}", i + 1),
                value,
            }),
            Err(e) => {
                report.unreadable.push(Problem::of(
                    format!("{source}#{}", i + 1),
                    format!("not valid YAML: {e}"),
                ));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        }
    }
    docs
}

enum Parsed {
    Account(Box<Account>),
    Package(Box<SupportPackage>),
    Suspension(Box<Suspension>),
    Notice(Box<DeprecationNotice>),
    Response(Box<NoticeResponse>),
}

fn schema_of(kind: &str) -> Option<Value> {
    let crd = match kind {
        "Account" => Account::crd(),
        "SupportPackage" => SupportPackage::crd(),
        "Suspension" => Suspension::crd(),
        "DeprecationNotice" => DeprecationNotice::crd(),
        "NoticeResponse" => NoticeResponse::crd(),
        _ => return None,
    };
    let schema = crd
        .spec
        .versions
        .first()?
        .schema
        .as_ref()?
        .open_api_v3_schema
        .as_ref()?;
    serde_json::to_value(schema).ok()
}

/// A problem of the object in `doc`.
fn at(doc: &Doc, message: impl Into<String>) -> Problem {
    let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = doc
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    Problem {
        source: doc.source.clone(),
        object: Some(format!("{kind}/{name}")),
        message: message.into(),
    }
}

/// Validates and evaluates `docs` at `now`.
pub fn check(docs: Vec<Doc>, now: Timestamp, report: &mut Report) {
    check_with(docs, &Context::default(), now, report)
}

/// What the checked objects may refer to besides each other: the SupportPackages and Accounts of a
/// cluster (`covenant check --cluster`). A checked object of the same name takes the place of the
/// cluster's.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// SupportPackages to resolve accounts' packages against.
    pub packages: Vec<SupportPackage>,
    /// Accounts that suspensions and notices may name.
    pub accounts: Vec<Account>,
}

/// Validates and evaluates `docs` at `now`, resolving references against `context` too.
pub fn check_with(docs: Vec<Doc>, context: &Context, now: Timestamp, report: &mut Report) {
    let mut parsed: Vec<(Doc, Parsed)> = Vec::new();
    let mut others: Vec<Doc> = Vec::new();
    for doc in docs {
        let api_version = doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if api_version.split('/').next() != Some(GROUP) {
            // Not a Covenant object: GitOps repositories mix kinds. A tenant's workloads are judged
            // against its package's policies below; the rest is the API server's business.
            others.push(doc);
            continue;
        }
        if api_version != "covenant.dev/v1alpha1" {
            report.problems.push(at(
                &doc,
                format!("apiVersion {api_version} is not served: use covenant.dev/v1alpha1"),
            ));
            continue;
        }
        let Some(schema) = schema_of(&kind) else {
            report.problems.push(at(
                &doc,
                format!("unknown kind {kind:?}: Covenant serves Account, SupportPackage, Suspension, DeprecationNotice and NoticeResponse"),
            ));
            continue;
        };
        if doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            report
                .problems
                .push(at(&doc, "metadata.name: required field is missing"));
            continue;
        }
        let errors = schema::validate(&schema, &doc.value, None);
        if !errors.is_empty() {
            report
                .problems
                .extend(errors.iter().map(|e| at(&doc, e.to_string())));
            continue;
        }
        let typed = match kind.as_str() {
            "Account" => {
                serde_json::from_value(doc.value.clone()).map(|a| Parsed::Account(Box::new(a)))
            }
            "SupportPackage" => {
                serde_json::from_value(doc.value.clone()).map(|a| Parsed::Package(Box::new(a)))
            }
            "Suspension" => {
                serde_json::from_value(doc.value.clone()).map(|a| Parsed::Suspension(Box::new(a)))
            }
            "NoticeResponse" => {
                serde_json::from_value(doc.value.clone()).map(|a| Parsed::Response(Box::new(a)))
            }
            _ => serde_json::from_value(doc.value.clone()).map(|a| Parsed::Notice(Box::new(a))),
        };
        match typed {
            Ok(p) => parsed.push((doc, p)),
            Err(e) => report.problems.push(at(&doc, e.to_string())),
        }
    }

    let accounts: Vec<Account> = parsed
        .iter()
        .filter_map(|(_, p)| {
            if let Parsed::Account(a) = p {
                Some((**a).clone())
            } else {
                None
            }
        })
        .collect();
    let mut packages: Vec<SupportPackage> = parsed
        .iter()
        .filter_map(|(_, p)| {
            if let Parsed::Package(a) = p {
                Some((**a).clone())
            } else {
                None
            }
        })
        .collect();
    // The cluster's objects, where no checked one of the same name stands in for them.
    let known = |names: &[String], name: &String| names.contains(name);
    let checked: Vec<String> = packages.iter().map(|p| p.name_any()).collect();
    packages.extend(
        context
            .packages
            .iter()
            .filter(|p| !known(&checked, &p.name_any()))
            .cloned(),
    );
    let checked: Vec<String> = accounts.iter().map(|a| a.name_any()).collect();
    let accounts: Vec<Account> = accounts
        .into_iter()
        .chain(
            context
                .accounts
                .iter()
                .filter(|a| !known(&checked, &a.name_any()))
                .cloned(),
        )
        .collect();
    // The Suspensions among the files: an Account they name is suspended as the operator would have
    // it (its `Suspended` condition, with the reason and cause, or withheld).
    let suspensions: Vec<Suspension> = parsed
        .iter()
        .filter_map(|(_, p)| {
            if let Parsed::Suspension(s) = p {
                Some((**s).clone())
            } else {
                None
            }
        })
        .collect();
    // A response in a file has no creation time yet: it counts as given at `now`, as it would be
    // if applied then. It answers for the checked Account whose namespaces hold it.
    let responses: Vec<NoticeResponse> = parsed
        .iter()
        .filter_map(|(_, p)| {
            if let Parsed::Response(r) = p {
                let mut r = (**r).clone();
                r.metadata.creation_timestamp.get_or_insert(Time(now));
                Some(r)
            } else {
                None
            }
        })
        .collect();
    let answers: Vec<Vec<model::notice::Answer>> = accounts
        .iter()
        .map(|a| {
            let own = a.desired_namespaces();
            model::notice::answers(a, &responses, |ns| own.iter().any(|o| o == ns))
        })
        .collect();
    let with_answers = || accounts.iter().zip(answers.iter().map(Vec::as_slice));
    // Notices are evaluated first: the accounts' view needs their served instants.
    let notices: Vec<DeprecationNotice> = parsed
        .iter()
        .filter_map(|(_, p)| {
            if let Parsed::Notice(n) = p {
                Some((**n).clone())
            } else {
                None
            }
        })
        .map(|mut n| {
            let outcome = model::notice::evaluate(&n, with_answers(), now);
            n.status = Some(outcome.status);
            n
        })
        .collect();

    workload_problems(&others, &accounts, &packages, report);
    self_service_problems(&others, &accounts, &packages, report);

    for (doc, p) in parsed {
        let value = match p {
            Parsed::Notice(n) => {
                let outcome = model::notice::evaluate(&n, with_answers(), now);
                report
                    .problems
                    .extend(outcome.errors.iter().map(|e| at(&doc, e.to_string())));
                let mut n = *n;
                n.status = Some(outcome.status);
                serde_json::to_value(n)
            }
            Parsed::Account(a) => {
                let mut a = *a;
                let mine = accounts
                    .iter()
                    .position(|o| o.name_any() == a.name_any())
                    .map(|i| answers[i].as_slice())
                    .unwrap_or_default();
                let own: Vec<Suspension> = suspensions
                    .iter()
                    .filter(|s| s.spec.account == a.name_any())
                    .cloned()
                    .collect();
                let checked = Checked {
                    packages: &packages,
                    notices: &notices,
                    answers: mine,
                    suspensions: &own,
                };
                let status = account_status(&a, &checked, now, &mut |e| {
                    report.problems.push(at(&doc, e))
                });
                // What the API server would refuse in the ResourceQuotas Covenant writes from them. An
                // Account may raise its package's entries (the platform writes the Account).
                for (field, map, writes) in [
                    ("spec.quota", a.spec.quota.as_ref(), QUOTA_WRITES),
                    (
                        "spec.accountQuota",
                        a.spec.account_quota.as_ref(),
                        SHARE_WRITES,
                    ),
                ] {
                    for e in model::quota_names::problems(field, map, writes) {
                        report.problems.push(at(&doc, e));
                    }
                }
                a.status = Some(status);
                serde_json::to_value(a)
            }
            Parsed::Response(r) => {
                let mut r = *r;
                r.metadata.creation_timestamp.get_or_insert(Time(now));
                let ns = r.metadata.namespace.clone().unwrap_or_default();
                let owner = accounts
                    .iter()
                    .position(|a| a.desired_namespaces().contains(&ns));
                let notice = notices.iter().find(|n| n.name_any() == r.spec.notice);
                let (status, _) = model::notice::response_status(
                    &r,
                    owner.map(|i| &accounts[i]),
                    notice,
                    owner.map(|i| answers[i].as_slice()).unwrap_or_default(),
                    now,
                );
                if let Some(c) = status.conditions.first() {
                    // What a pipeline can know: the namespace, the notice and whether it concerns
                    // the account, when those objects are among the checked ones.
                    let judged = match c.reason.as_str() {
                        "NoAccount" => !accounts.is_empty(),
                        "UnknownNotice" => !notices.is_empty(),
                        _ => false,
                    };
                    if judged {
                        report.problems.push(at(&doc, c.message.clone()));
                    }
                }
                r.status = Some(status);
                serde_json::to_value(r)
            }
            Parsed::Package(p) => {
                let mut p = *p;
                for (field, map, writes) in [
                    ("spec.quota", p.spec.quota.as_ref(), QUOTA_WRITES),
                    (
                        "spec.accountQuota",
                        p.spec.account_quota.as_ref(),
                        SHARE_WRITES,
                    ),
                ] {
                    for e in model::quota_names::problems(field, map, writes) {
                        report.problems.push(at(&doc, e));
                    }
                }
                let ready = model::package::package_ready(&p, &packages);
                let stalled = crate::status::stalled(&ready);
                let conds = vec![ready, stalled];
                if !conds[0].status {
                    report.problems.push(at(&doc, conds[0].message.clone()));
                }
                p.status = Some(SupportPackageStatus {
                    observed_generation: p.metadata.generation,
                    accounts: model::package::account_count(&p, &accounts, &packages),
                    conditions: merge(&[], conds, p.metadata.generation, now),
                });
                serde_json::to_value(p)
            }
            Parsed::Suspension(s) => {
                let mut s = *s;
                let known = accounts.iter().any(|a| a.name_any() == s.spec.account);
                if !accounts.is_empty() && !known {
                    report.problems.push(at(
                        &doc,
                        format!(
                            "spec.account: Account {:?} is not among the checked objects: check the name",
                            s.spec.account
                        ),
                    ));
                }
                // The operator's own evaluation; with no Accounts among the files, the account is
                // taken to exist (it may live elsewhere in the repository).
                let outcome =
                    model::suspension::evaluate(&s, accounts.is_empty() || known, None, now);
                s.status = Some(outcome.status);
                serde_json::to_value(s)
            }
        };
        match value {
            Ok(v) => report.objects.push(v),
            Err(e) => report
                .problems
                .push(at(&doc, format!("cannot serialize: {e}"))),
        }
    }
}

/// What Covenant writes from `quota`, for the messages of [`model::quota_names::problems`].
const QUOTA_WRITES: &str = "the ResourceQuota covenant-quota of each namespace";
/// What Covenant writes from `accountQuota`.
const SHARE_WRITES: &str =
    "each namespace's share of the account-wide quota, the ResourceQuota covenant-account-share";

/// What the checked files say that an Account's status depends on.
struct Checked<'a> {
    packages: &'a [SupportPackage],
    notices: &'a [DeprecationNotice],
    /// The account's answers.
    answers: &'a [model::notice::Answer],
    /// The Suspensions of the account among the files.
    suspensions: &'a [Suspension],
}

/// The parts of an Account's status that need no cluster: the operator's own plan
/// ([`model::plan::plan`]) with every object assumed applied and the files' packages, notices and
/// suspensions of the account, of which only what the files decide is kept (the namespaces, the package, the access review, the notices with
/// `TermsCurrent`, and `Suspended`).
fn account_status(
    account: &Account,
    files: &Checked<'_>,
    now: Timestamp,
    problem: &mut dyn FnMut(String),
) -> AccountStatus {
    let Checked {
        packages,
        notices,
        answers,
        suspensions,
    } = *files;
    // Packages may live elsewhere in a GitOps repository: judged only when some were given.
    if !packages.is_empty() {
        match model::package::resolve(account, packages) {
            Ok(p) => {
                model::account::validate_on_package(account, p)
                    .into_iter()
                    .chain(model::package::account_limit_problems(account, p))
                    .chain(account.spec.policies.as_ref().map_or_else(Vec::new, |a| {
                        model::policies::widenings(p.spec.policies.as_ref(), a)
                            .into_iter()
                            .map(|w| {
                                format!("{w}: an Account may only narrow its package's policies")
                            })
                            .collect()
                    }))
                    .for_each(&mut *problem);
            }
            Err(e) => problem(e.to_string()),
        }
    }
    // The operator's own plan, on what the files hold, with every declared namespace assumed created
    // for the account (so a package the files leave out lists them, as once applied).
    let mut assumed = account.clone();
    let uid = assumed
        .metadata
        .uid
        .get_or_insert_with(|| "covenant-check".into())
        .clone();
    let mut observed = model::plan::Observed::of(&assumed);
    observed.packages = packages.to_vec();
    observed.suspensions = suspensions.to_vec();
    observed.notices = notices.to_vec();
    observed.answers = answers.to_vec();
    for ns in account.desired_namespaces() {
        let namespace = k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(ns.clone()),
                labels: Some([(crate::api::ACCOUNT_LABEL.to_string(), account.name_any())].into()),
                annotations: Some(
                    [(crate::api::ACCOUNT_UID_ANNOTATION.to_string(), uid.clone())].into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        observed.namespaces.insert(
            ns,
            model::plan::SeenNamespace {
                namespace: std::sync::Arc::new(namespace),
                workload_records: false,
                policy_records: false,
                deny_all: false,
            },
        );
    }
    let plan = model::plan::plan(&observed, now);
    let mut status = plan.status;
    for r in &status.notices {
        if let Some(m) = &r.message {
            problem(format!("answer to {}: {m}", r.name));
        }
    }
    // Only what the files decide: whether it is Ready needs the cluster.
    status.phase = None;
    status.conditions.retain(|c| {
        [
            model::account::ACCESS_REVIEW_CURRENT,
            "TermsCurrent",
            crate::status::types::SUSPENDED,
        ]
        .contains(&c.type_.as_str())
    });
    if packages.is_empty() {
        status.support_package = account.spec.support_package.clone();
    }
    status
}

/// Renders the report's objects as a YAML stream.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for o in &report.objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o).unwrap_or_default());
    }
    out
}

/// The report's objects as a JSON array.
pub fn render_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&report.objects).unwrap_or_default();
    s.push('\n');
    s
}

/// The problems as GitHub Actions workflow commands (`::error file=…,title=…::…`), one per line, so
/// that a pull request shows each on the file it concerns.
pub fn render_github(report: &Report) -> String {
    // Workflow command values: `%`, CR and LF escaped; properties also `:` and `,`.
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn property(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for f in report.unreadable.iter().chain(&report.problems) {
        let mut props = Vec::new();
        if let Some(file) = f.file() {
            props.push(format!("file={}", property(file)));
        }
        props.push(format!(
            "title={}",
            property(&format!(
                "covenant check: {}",
                f.object.as_deref().unwrap_or("input")
            ))
        ));
        out.push_str(&format!(
            "::error {}::{}\n",
            props.join(","),
            data(&f.message)
        ));
    }
    out
}

/// The report as a JUnit XML document: one test case per checked object (failed with its problems),
/// plus one per problem that names no object, so that CI systems show them as test results.
pub fn render_junit(report: &Report) -> String {
    fn xml(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    }
    let mut cases: Vec<(String, Vec<String>)> = report
        .objects
        .iter()
        .map(|o| {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or("?");
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            (format!("{kind}/{name}"), Vec::new())
        })
        .collect();
    for f in report.unreadable.iter().chain(&report.problems) {
        match f
            .object
            .as_deref()
            .and_then(|o| cases.iter_mut().find(|(n, _)| n == o))
        {
            Some((_, problems)) => problems.push(f.to_string()),
            None => cases.push((
                f.object
                    .as_deref()
                    .or(f.file())
                    .unwrap_or("input")
                    .to_string(),
                vec![f.to_string()],
            )),
        }
    }
    let failures = cases.iter().filter(|(_, p)| !p.is_empty()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"covenant check\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"covenant check\" tests=\"{}\" failures=\"{failures}\">\n",
        cases.len(),
        cases.len()
    ));
    for (name, problems) in &cases {
        if problems.is_empty() {
            out.push_str(&format!(
                "    <testcase classname=\"covenant\" name=\"{}\"/>\n",
                xml(name)
            ));
        } else {
            out.push_str(&format!(
                "    <testcase classname=\"covenant\" name=\"{}\">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(name),
                xml(&problems[0]),
                xml(&problems.join("\n"))
            ));
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Judges the tenant workloads and NetworkPolicies among `docs` (objects in a namespace of a checked
/// Account) by the admission policies of `deploy/workload-policies-policy.yaml`,
/// `deploy/tenant-network-policies-policy.yaml` and `deploy/hostnames-policy.yaml` (those without
/// params) — the same CEL text the API server runs — against
/// what the operator writes on the account's namespaces for them to read.
/// The forced node labels and default classes the API server sets first are set here too.
fn workload_problems(
    docs: &[Doc],
    accounts: &[Account],
    packages: &[SupportPackage],
    report: &mut Report,
) {
    let shipped = [
        crate::admission::WORKLOAD_POLICIES,
        crate::admission::TENANT_NETWORK_POLICIES,
        crate::admission::HOSTNAMES_POLICIES,
    ];
    // Those that read params (which tenant holds a host) need the cluster's state: not judged here.
    let policies = match shipped
        .iter()
        .map(|yaml| crate::admission::policies(yaml))
        .collect::<Result<Vec<_>, _>>()
        .map(|p| {
            p.concat()
                .into_iter()
                .filter(|p| p["spec"]["paramKind"].is_null())
                .collect::<Vec<_>>()
        }) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push(Problem::of(
                "",
                format!("the built-in admission policies: {e}"),
            ));
            return;
        }
    };
    for doc in docs {
        let Some(ns) = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Some(account) = accounts
            .iter()
            .find(|a| a.desired_namespaces().iter().any(|n| n == ns))
        else {
            continue;
        };
        let Ok(package) = model::package::resolve(account, packages) else {
            continue;
        };
        // Even without annotations some policies judge (ingress snippets are refused by default).
        let mut annotations = model::account::policy_annotations(account, Some(package));
        annotations.insert(
            model::account::NAMESPACES_ANNOTATION.to_string(),
            account.desired_namespaces().join(","),
        );
        let namespace = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "annotations": annotations},
        });
        let object = with_defaults(&doc.value, &annotations);
        for p in &policies {
            if !crate::admission::matches(p, &object, "CREATE") {
                continue;
            }
            match crate::admission::evaluate(p, &object, None, &namespace, "covenant-check") {
                Ok(denied) => report
                    .problems
                    .extend(denied.iter().map(|m| at(doc, m.to_string()))),
                Err(e) => report.problems.push(at(
                    doc,
                    format!(
                        "policy {} fails on it (the API server would refuse it): {e}",
                        p["metadata"]["name"].as_str().unwrap_or_default()
                    ),
                )),
            }
        }
    }
}

/// Judges the Namespaces among `docs` that ask to be an account's own (labelled
/// `covenant.dev/tenant=<account>`) as the operator would: by [`model::selfservice::plan`], in file
/// order, against the checked Accounts and packages — reserved names, the package's prefix rule and
/// switch, names another account declares, and `maxNamespaces` over declared and self-made together.
/// A request for an account that is not among the checked ones is reported only when some are.
fn self_service_problems(
    docs: &[Doc],
    accounts: &[Account],
    packages: &[SupportPackage],
    report: &mut Report,
) {
    use model::selfservice as ss;
    let requests: Vec<(&Doc, String, String)> = docs
        .iter()
        .filter(|d| d.value["kind"] == "Namespace")
        .filter_map(|d| {
            let account = d
                .value
                .pointer(&format!(
                    "/metadata/labels/{}",
                    crate::api::TENANT_REQUEST_LABEL.replace('/', "~1")
                ))
                .and_then(Value::as_str)?;
            let name = d.value.pointer("/metadata/name").and_then(Value::as_str)?;
            Some((d, account.to_string(), name.to_string()))
        })
        .collect();
    for (doc, account, _) in &requests {
        if !accounts.is_empty() && !accounts.iter().any(|a| a.name_any() == *account) {
            report.problems.push(at(
                doc,
                format!(
                    "metadata.labels.{}: Account {account:?} is not among the checked objects: check the name",
                    crate::api::TENANT_REQUEST_LABEL
                ),
            ));
        }
    }
    for a in accounts {
        let mine: Vec<&(&Doc, String, String)> = requests
            .iter()
            .filter(|(_, acct, _)| *acct == a.name_any())
            .collect();
        if mine.is_empty() {
            continue;
        }
        // Packages may live elsewhere in a GitOps repository: judge only when some were given.
        let package = if packages.is_empty() {
            None
        } else {
            match model::package::resolve(a, packages) {
                Ok(p) => Some(p),
                Err(_) => continue,
            }
        };
        // File order stands for creation order (the operator decides by creation time, then name).
        let start = Timestamp::UNIX_EPOCH;
        let candidates: Vec<ss::Candidate> = mine
            .iter()
            .enumerate()
            .map(|(i, (_, _, name))| ss::Candidate {
                name: name.clone(),
                created: start
                    .checked_add(jiff::SignedDuration::from_secs(i as i64))
                    .ok(),
                resource_version: None,
                uid: None,
                terminating: false,
            })
            .collect();
        let declared_by_other = |n: &str| {
            accounts
                .iter()
                .find(|o| {
                    o.name_any() != a.name_any() && o.desired_namespaces().iter().any(|d| d == n)
                })
                .map(|o| o.name_any())
        };
        let plan = ss::plan(&ss::PlanInput {
            account: a,
            cap: ss::cap(package),
            require_prefix: ss::require_prefix(package),
            open: ss::enabled(package),
            candidates: &candidates,
            declared_by_other: &declared_by_other,
        });
        for (doc, _, name) in &mine {
            if let Some((_, _, why)) = plan.refuse.iter().find(|(n, _, _)| n == name) {
                report.problems.push(at(
                    doc,
                    format!(
                        "Covenant would refuse (and delete) this self-service namespace: {why}"
                    ),
                ));
            } else if plan.pending.contains(name) {
                report.problems.push(at(
                    doc,
                    "self-service is turned off for the account's package (selfService.enabled: false): the namespace would be neither taken nor provisioned",
                ));
            }
        }
    }
}

/// What `deploy/workload-defaults-policy.yaml` sets before the validating policies run: the forced
/// node labels on a Pod, the default StorageClass of a claim and IngressClass of an Ingress that name
/// none.
pub(crate) fn with_defaults(
    object: &Value,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Value {
    let mut o = object.clone();
    match o["kind"].as_str() {
        Some("Pod") => {
            if let Some(forced) = annotations.get(model::policies::NODE_SELECTOR_ANNOTATION) {
                for (k, v) in forced.split(',').filter_map(|p| p.split_once('=')) {
                    o["spec"]["nodeSelector"][k] = Value::String(v.to_string());
                }
            }
        }
        Some(kind @ ("PersistentVolumeClaim" | "Ingress")) => {
            let (field, legacy, stem) = if kind == "Ingress" {
                (
                    "ingressClassName",
                    "kubernetes.io/ingress.class",
                    "ingress-classes",
                )
            } else {
                (
                    "storageClassName",
                    "volume.beta.kubernetes.io/storage-class",
                    "storage-classes",
                )
            };
            let unset = o
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                && o.pointer("/metadata/annotations")
                    .and_then(|a| a.get(legacy))
                    .is_none();
            if let (true, Some(d)) = (
                unset,
                annotations.get(&model::policies::default_annotation(stem)),
            ) {
                o["spec"][field] = Value::String(d.clone());
            }
        }
        _ => {}
    }
    o
}
