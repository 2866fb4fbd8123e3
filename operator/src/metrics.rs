//! Prometheus metrics: reconciles by kind and outcome, their durations, errors by category; and, read
//! from the caches when scraped (so no reconcile pays for them), accounts by phase, each account's
//! conditions and the instants that will change something for it; the build and the process.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind reconciled.
    pub kind: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind reconciled.
    pub kind: String,
    /// `Error::category`.
    pub category: String,
}

/// Labels of gauges keyed by a state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// A phase or decision.
    pub state: String,
}

/// Labels of the notices gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoticeLabels {
    /// Amendment, Discontinuation or URLTermsUpdate.
    #[prometheus(flatten)]
    pub kind: StateLabels,
    /// The notice type.
    pub notice_type: String,
}

/// Labels of the build information.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The release.
    pub version: String,
    /// The git revision it was built from.
    pub revision: String,
}

/// What the scrape-time gauges are computed from (the caches), at `now`.
pub struct Snapshot<'a> {
    /// Every parsed Account.
    pub accounts: Vec<&'a crate::api::Account>,
    /// Every parsed DeprecationNotice.
    pub notices: Vec<&'a crate::api::DeprecationNotice>,
    /// Every parsed Suspension.
    pub suspensions: Vec<&'a crate::api::Suspension>,
    /// The labelled namespaces (retained ones carry their purge instant).
    pub namespaces: Vec<&'a k8s_openapi::api::core::v1::Namespace>,
    /// Now.
    pub now: jiff::Timestamp,
}

/// Fills the scrape-time gauges of a [`Metrics`] (see [`Metrics::set_source`]).
pub type Source = Box<dyn Fn(&Metrics) + Send + Sync>;

/// All metrics of the operator.
pub struct Metrics {
    /// Covenant's metrics, and the process's.
    registry: Mutex<(Registry, Registry)>,
    /// Reconciles started, by kind.
    pub reconciles: Family<KindLabels, Counter>,
    /// Reconcile failures, by kind and error category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations, by kind.
    pub duration: Family<KindLabels, Histogram>,
    /// Accounts by phase.
    pub accounts: Family<StateLabels, Gauge>,
    /// Accounts whose access review is overdue.
    pub access_reviews_overdue: Gauge,
    /// Notices by type and state (Pending, Effective, WindowTooShort).
    pub notices: Family<NoticeLabels, Gauge>,
    /// Writes made by the operator (applies, patches, deletes), by kind of object written.
    pub writes: Family<KindLabels, Counter>,
    /// Account-quota rebalances that read the shares from the API server (one list each).
    pub account_quota_rebalances: Counter,
    /// 1 while this replica leads (or runs without leader election), else 0.
    pub leader: Gauge,
    /// Stored Covenant objects that do not parse (skipped), by kind.
    pub invalid: Family<KindLabels, Gauge>,
    /// 1 while the API server answers its readiness check, else 0.
    pub api_server_up: Gauge,
    /// The gauges per account, computed at a scrape and dropped once encoded (see [`PerAccount`]).
    per_account: Mutex<PerAccount>,
    /// 1, labelled with the version and revision.
    pub build_info: Family<BuildLabels, Gauge>,
    process: Process,
    source: Mutex<Option<Source>>,
}

/// The gauges with a label set per account, written as OpenMetrics text from the caches at each scrape
/// and dropped once sent: between scrapes the operator holds none of them. They are written straight
/// as text, with no map of label sets: at N = 10,000 a scrape has about 120,000 of them, and a map of
/// their label strings would be several times the size of the text and grow the heap at every scrape.
#[derive(Default)]
struct PerAccount {
    /// Each account's conditions: 1 for the current status of each type.
    account_condition: String,
    /// Each account's account-wide quota (`status.quota.hard`), per resource, in the resource's unit.
    account_quota_hard: String,
    /// What all of an account's namespaces use of it together (`status.quota.used`).
    account_quota_used: String,
    /// The instants (unix seconds) that will change something for an account, by (account, what,
    /// object): one series each (a later one for the same labels replaces an earlier one).
    deadlines: std::collections::BTreeMap<(String, &'static str, String), i64>,
}

/// The families of [`PerAccount`]: name (after Covenant's prefix) and help, in the order written.
const PER_ACCOUNT_FAMILIES: [(&str, &str); 4] = [
    (
        "account_quota_hard",
        "Each Account's account-wide quota (accountQuota) per resource, in the resource's unit",
    ),
    (
        "account_quota_used",
        "What all of an Account's namespaces use together of each resource its accountQuota caps",
    ),
    (
        "account_condition",
        "Each Account's conditions: 1, labelled with the type and its current status",
    ),
    (
        "deadline_timestamp_seconds",
        "When something will change for an account: rejection deadlines, effective instants, access reviews due, suspension ends, retention purges",
    ),
];

/// One sample line of the OpenMetrics text format: `covenant_<name>{k="v",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    use std::fmt::Write;
    out.push_str("covenant_");
    out.push_str(name);
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        // Label values escape backslash, double quote and line feed (OpenMetrics).
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

impl PerAccount {
    /// Appends the families to `out` (each with its HELP and TYPE lines, also when it has no sample).
    fn encode(self, out: &mut String) {
        let mut deadlines = String::new();
        for ((account, what, object), at) in &self.deadlines {
            sample(
                &mut deadlines,
                "deadline_timestamp_seconds",
                &[("account", account), ("what", what), ("object", object)],
                at,
            );
        }
        let bodies = [
            self.account_quota_hard,
            self.account_quota_used,
            self.account_condition,
            deadlines,
        ];
        out.reserve(bodies.iter().map(String::len).sum::<usize>() + 1024);
        for ((name, help), body) in PER_ACCOUNT_FAMILIES.iter().zip(&bodies) {
            out.push_str(&format!(
                "# HELP covenant_{name} {help}.\n# TYPE covenant_{name} gauge\n"
            ));
            out.push_str(body);
        }
    }
}

/// The standard `process_*` metrics, read from /proc when scraped (Linux).
#[derive(Default, Clone)]
struct Process {
    resident: Gauge,
    virtual_memory: Gauge,
    cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    open_fds: Gauge,
    max_fds: Gauge,
    start: Gauge,
    threads: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("covenant");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        let accounts = Family::<StateLabels, Gauge>::default();
        let access_reviews_overdue = Gauge::default();
        let notices = Family::<NoticeLabels, Gauge>::default();
        let writes = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let invalid = Family::<KindLabels, Gauge>::default();
        let api_server_up = Gauge::default();
        registry.register(
            "invalid_objects",
            "Stored Covenant objects that do not parse and are skipped, by kind",
            invalid.clone(),
        );
        registry.register(
            "api_server_up",
            "1 while the API server answers its /readyz check",
            api_server_up.clone(),
        );
        registry.register("leader", "1 while this replica reconciles", leader.clone());
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register("accounts", "Accounts by phase", accounts.clone());
        registry.register(
            "access_reviews_overdue",
            "Accounts whose monthly access review is overdue",
            access_reviews_overdue.clone(),
        );
        registry.register(
            "notices",
            "DeprecationNotices by type and state",
            notices.clone(),
        );
        registry.register(
            "writes",
            "Objects written by the operator, by kind",
            writes.clone(),
        );
        let account_quota_rebalances = Counter::default();
        registry.register(
            "account_quota_rebalances",
            "Account-quota rebalances that listed an account's shares from the API server before moving room",
            account_quota_rebalances.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "The release and git revision of the running operator",
            build_info.clone(),
        );
        let process = Process::default();
        // The standard process_* names, without Covenant's prefix.
        let mut process_registry = Registry::with_prefix("process");
        {
            let p = &mut process_registry;
            p.register(
                "resident_memory_bytes",
                "Resident memory size in bytes",
                process.resident.clone(),
            );
            p.register(
                "virtual_memory_bytes",
                "Virtual memory size in bytes",
                process.virtual_memory.clone(),
            );
            p.register(
                "cpu_seconds",
                "Total user and system CPU time spent in seconds",
                process.cpu.clone(),
            );
            p.register(
                "open_fds",
                "Number of open file descriptors",
                process.open_fds.clone(),
            );
            p.register(
                "max_fds",
                "Maximum number of open file descriptors",
                process.max_fds.clone(),
            );
            p.register(
                "start_time_seconds",
                "Start time of the process since the unix epoch in seconds",
                process.start.clone(),
            );
            p.register("threads", "Number of OS threads", process.threads.clone());
        }
        Metrics {
            registry: Mutex::new((registry, process_registry)),
            per_account: Default::default(),
            account_quota_rebalances,
            build_info,
            process,
            source: Mutex::new(None),
            reconciles,
            errors,
            duration,
            accounts,
            access_reviews_overdue,
            notices,
            writes,
            leader,
            invalid,
            api_server_up,
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and its duration.
    pub fn observe(&self, kind: &str, elapsed: Duration) {
        let l = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&l).inc();
        self.duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed reconcile.
    pub fn error(&self, kind: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                category: category.to_string(),
            })
            .inc();
    }

    /// Counts a write.
    pub fn write(&self, kind: &str) {
        self.writes
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// How many stored objects of `kind` did not parse at the last count.
    pub fn invalid(&self, kind: &str) -> i64 {
        self.invalid
            .get(&KindLabels {
                kind: kind.to_string(),
            })
            .map(|g| g.get())
            .unwrap_or(0)
    }

    /// Sets how many stored objects of `kind` do not parse.
    pub fn set_invalid(&self, kind: &str, n: i64) {
        self.invalid
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .set(n);
    }

    /// Sets the accounts-by-phase and overdue-review gauges from the cached accounts.
    pub fn set_accounts<'a>(&self, accounts: impl Iterator<Item = &'a crate::api::Account>) {
        let mut by_phase: std::collections::BTreeMap<String, i64> = [
            "Provisioning",
            "Active",
            "Suspended",
            "Degraded",
            "Terminating",
        ]
        .iter()
        .map(|p| (p.to_string(), 0))
        .collect();
        let mut overdue = 0;
        for a in accounts {
            let status = a.status.as_ref();
            let phase = status
                .and_then(|s| s.phase)
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Provisioning".into());
            *by_phase.entry(phase).or_default() += 1;
            if status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "AccessReviewCurrent" && c.status == "False")
            }) {
                overdue += 1;
            }
        }
        for (state, n) in by_phase {
            self.accounts.get_or_create(&StateLabels { state }).set(n);
        }
        self.access_reviews_overdue.set(overdue);
    }

    /// Sets the notices gauge (by type and state: Pending, Effective, WindowTooShort).
    pub fn set_notices<'a>(
        &self,
        notices: impl Iterator<Item = &'a crate::api::DeprecationNotice>,
    ) {
        let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for t in ["Amendment", "Discontinuation", "URLTermsUpdate"] {
            for st in ["Pending", "Effective", "WindowTooShort"] {
                counts.insert((st.to_string(), t.to_string()), 0);
            }
        }
        for n in notices {
            let t = serde_json::to_value(n.spec.notice_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let conds = n
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            let state = if crate::status::is_true(conds, "Effective") {
                "Effective"
            } else if crate::status::find(conds, "NoticeWindowSatisfied")
                .is_some_and(|c| c.status == "False")
            {
                "WindowTooShort"
            } else {
                "Pending"
            };
            *counts.entry((state.to_string(), t)).or_default() += 1;
        }
        for ((state, notice_type), n) in counts {
            self.notices
                .get_or_create(&NoticeLabels {
                    kind: StateLabels { state },
                    notice_type,
                })
                .set(n);
        }
    }

    /// Sets what fills the scrape-time gauges (the controllers' caches): called on every scrape, so
    /// that no reconcile pays for gauges over every tenant.
    pub fn set_source(&self, source: impl Fn(&Metrics) + Send + Sync + 'static) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(source));
    }

    /// Records the running release and the git revision it was built from.
    pub fn set_build_info(&self, version: &str, revision: &str) {
        self.build_info
            .get_or_create(&BuildLabels {
                version: version.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
    }

    /// Sets every gauge computed from the caches: accounts by phase, overdue reviews, notices by
    /// state, each account's conditions and its deadlines still to come.
    pub fn set_snapshot(&self, snap: &Snapshot<'_>) {
        self.set_accounts(snap.accounts.iter().copied());
        self.set_notices(snap.notices.iter().copied());
        let mut per = PerAccount::default();
        let now = snap.now;
        let mut deadline =
            |account: &str, what: &'static str, object: &str, at: jiff::Timestamp| {
                if at > now {
                    per.deadlines.insert(
                        (account.to_string(), what, object.to_string()),
                        at.as_second(),
                    );
                }
            };
        let (mut conditions, mut hard, mut used) = (String::new(), String::new(), String::new());
        for a in &snap.accounts {
            let name = kube::ResourceExt::name_any(*a);
            let Some(status) = &a.status else { continue };
            for (i, c) in status.conditions.iter().enumerate() {
                // One series per type (a status never repeats a type; if one did, the first counts).
                if status.conditions[..i].iter().any(|e| e.type_ == c.type_) {
                    continue;
                }
                sample(
                    &mut conditions,
                    "account_condition",
                    &[
                        ("account", &name),
                        ("type", &c.type_),
                        ("status", &c.status),
                    ],
                    1,
                );
            }
            if let Some(q) = &status.quota {
                for (family, out, values) in [
                    ("account_quota_hard", &mut hard, &q.hard),
                    ("account_quota_used", &mut used, &q.used),
                ] {
                    for (resource, v) in values {
                        if let Some(x) = crate::model::quantity::value(&v.0) {
                            sample(
                                out,
                                family,
                                &[("account", &name), ("resource", resource)],
                                format_args!("{x:?}"),
                            );
                        }
                    }
                }
            }
            if let Some(due) = &status.access_review_due_at {
                deadline(&name, "access_review_due", &name, due.0);
            }
            for n in &status.notices {
                if n.decision == crate::api::Decision::Pending
                    && let Some(d) = &n.rejection_deadline
                {
                    deadline(&name, "rejection_deadline", &n.name, d.0);
                }
                deadline(&name, "effective", &n.name, n.effective_at.0);
            }
        }
        for s in &snap.suspensions {
            if let Some(end) = &s.spec.end_at {
                // A withheld suspension is not named where a tenant's dashboard might show it.
                let object = if s.spec.withhold_notice {
                    "withheld".to_string()
                } else {
                    kube::ResourceExt::name_any(*s)
                };
                deadline(&s.spec.account, "suspension_end", &object, end.0);
            }
        }
        for ns in &snap.namespaces {
            let labels = kube::ResourceExt::labels(*ns);
            let until = labels
                .get(crate::api::RETAINED_UNTIL_LABEL)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|v| jiff::Timestamp::from_second(v).ok());
            if let (Some(until), Some(account)) = (until, labels.get(crate::api::ACCOUNT_LABEL)) {
                deadline(
                    account,
                    "retention_purge",
                    &kube::ResourceExt::name_any(*ns),
                    until,
                );
            }
        }
        per.account_condition = conditions;
        per.account_quota_hard = hard;
        per.account_quota_used = used;
        *self.per_account.lock().unwrap_or_else(|p| p.into_inner()) = per;
    }

    /// Reads the process metrics from /proc (left at zero where there is none).
    fn read_process(&self) {
        let p = &self.process;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            // Fields after the command name, from field 3 (state) on.
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
            // The kernel's clock ticks and page size (sysconf): 100 Hz and 4 KiB on most x86_64
            // kernels, but not on every arm64 one (64 KiB pages).
            let ticks = rustix::param::clock_ticks_per_second() as f64;
            if let (Some(u), Some(s)) = (num(14), num(15)) {
                // A counter: it only grows, by what was used since the last scrape.
                let used = (u + s) as f64 / ticks;
                p.cpu.inc_by((used - p.cpu.get()).max(0.0));
            }
            if let Some(t) = num(20) {
                p.threads.set(t as i64);
            }
            if let Some(v) = num(23) {
                p.virtual_memory.set(v as i64);
            }
            if let Some(r) = num(24) {
                p.resident.set(r as i64 * rustix::param::page_size() as i64);
            }
            if let (Some(start), Ok(uptime)) = (num(22), std::fs::read_to_string("/proc/uptime"))
                && let Some(up) = uptime
                    .split_whitespace()
                    .next()
                    .and_then(|u| u.parse::<f64>().ok())
            {
                let now = jiff::Timestamp::now().as_second() as f64;
                p.start.set((now - up + start as f64 / ticks) as i64);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            p.open_fds.set(fds.count() as i64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(line) = limits.lines().find(|l| l.starts_with("Max open files"))
            && let Some(v) = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse::<i64>().ok())
        {
            p.max_fds.set(v);
        }
    }

    /// The metrics in the OpenMetrics text format (see [`CONTENT_TYPE`]), the scrape-time gauges
    /// computed first.
    pub fn encode(&self) -> String {
        if let Some(source) = self
            .source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            source(self);
        }
        self.read_process();
        let mut out = String::new();
        let registries = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        // Encoding into a String cannot fail.
        // The gauges per account are computed from the caches at each scrape (above), and dropped once
        // encoded: their label sets, a few per account, are not kept between scrapes.
        let per_account =
            std::mem::take(&mut *self.per_account.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = encode_registry(&mut out, &registries.0);
        per_account.encode(&mut out);
        let _ = encode_registry(&mut out, &registries.1);
        let _ = encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            last_transition_time: Time(ts("2026-11-01T00:00:00Z")),
            observed_generation: None,
        }
    }

    #[test]
    fn each_account_has_its_conditions_and_the_instants_still_to_come() {
        let mut a = Account::new("acme", AccountSpec::default());
        a.status = Some(AccountStatus {
            access_review_due_at: Some(Time(ts("2026-12-10T00:00:00Z"))),
            notices: vec![
                AccountNoticeStatus {
                    name: "dpa".into(),
                    notice_type: NoticeType::Amendment,
                    summary: None,
                    url: None,
                    effective_at: Time(ts("2026-12-20T00:00:00Z")),
                    rejection_deadline: Some(Time(ts("2026-12-20T00:00:00Z"))),
                    decision: Decision::Pending,
                    answered_by: None,
                    answered_at: None,
                    message: None,
                },
                // In effect already: nothing to come.
                AccountNoticeStatus {
                    name: "old".into(),
                    notice_type: NoticeType::UrlTermsUpdate,
                    summary: None,
                    url: None,
                    effective_at: Time(ts("2026-11-20T00:00:00Z")),
                    rejection_deadline: None,
                    decision: Decision::DeemedAccepted,
                    answered_by: None,
                    answered_at: None,
                    message: None,
                },
            ],
            conditions: vec![cond("Ready", "True"), cond("Stalled", "False")],
            ..Default::default()
        });
        let mut ns = k8s_openapi::api::core::v1::Namespace::default();
        ns.metadata.name = Some("gone".into());
        ns.metadata.labels = Some(
            [
                (ACCOUNT_LABEL.to_string(), "gone".to_string()),
                (RETAINED_UNTIL_LABEL.to_string(), "1830297600".to_string()),
            ]
            .into(),
        );
        let m = Metrics::default();
        m.set_build_info("0.1.0", "abc123");
        m.set_snapshot(&Snapshot {
            accounts: vec![&a],
            notices: vec![],
            suspensions: vec![],
            namespaces: vec![&ns],
            now: ts("2026-12-01T00:00:00Z"),
        });
        let out = m.encode();
        for line in [
            r#"covenant_account_condition{account="acme",type="Ready",status="True"} 1"#,
            r#"covenant_account_condition{account="acme",type="Stalled",status="False"} 1"#,
            r#"covenant_deadline_timestamp_seconds{account="acme",what="rejection_deadline",object="dpa"} 1797724800"#,
            r#"covenant_deadline_timestamp_seconds{account="acme",what="effective",object="dpa"} 1797724800"#,
            r#"covenant_deadline_timestamp_seconds{account="acme",what="access_review_due",object="acme"} 1796860800"#,
            r#"covenant_deadline_timestamp_seconds{account="gone",what="retention_purge",object="gone"} 1830297600"#,
            r#"covenant_build_info{version="0.1.0",revision="abc123"} 1"#,
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
        assert!(
            !out.contains(r#"object="old""#),
            "past instants are not listed:\n{out}"
        );
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
        assert!(out.ends_with("# EOF\n"));
        // A status that changes replaces the series: no stale condition remains.
        a.status.as_mut().unwrap().conditions = vec![cond("Ready", "False")];
        m.set_snapshot(&Snapshot {
            accounts: vec![&a],
            notices: vec![],
            suspensions: vec![],
            namespaces: vec![],
            now: ts("2026-12-01T00:00:00Z"),
        });
        let out = m.encode();
        assert!(out.contains(r#"type="Ready",status="False"} 1"#));
        assert!(!out.contains(r#"type="Ready",status="True""#));
        // The per-account series are not kept between scrapes: a scrape with no source to set them
        // anew lists none (the operator's source sets them at every scrape from the caches).
        let out = m.encode();
        assert!(!out.contains("covenant_account_condition{"), "{out}");
        assert!(
            !out.contains("covenant_deadline_timestamp_seconds{"),
            "{out}"
        );
        assert!(out.contains("covenant_build_info{"), "{out}");
    }

    #[test]
    fn per_account_series_are_one_per_label_set_with_their_values_escaped() {
        let end = Time(ts("2027-01-01T00:00:00Z"));
        let withheld = |name: &str, end: &Time| {
            crate::api::Suspension::new(
                name,
                crate::api::SuspensionSpec {
                    account: "acme".into(),
                    reason: crate::api::SuspensionReason::MaterialBreach,
                    cause: "c".into(),
                    withhold_notice: true,
                    start_at: None,
                    end_at: Some(end.clone()),
                    scale_workloads: false,
                },
            )
        };
        // Two withheld suspensions of one account share their labels: one series (the later one).
        let (s1, s2) = (
            withheld("s1", &Time(ts("2026-12-20T00:00:00Z"))),
            withheld("s2", &end),
        );
        let mut a = Account::new("acme", AccountSpec::default());
        a.status = Some(AccountStatus {
            conditions: vec![cond("Ready", "True")],
            ..Default::default()
        });
        let m = Metrics::default();
        m.set_snapshot(&Snapshot {
            accounts: vec![&a],
            notices: vec![],
            suspensions: vec![&s1, &s2],
            namespaces: vec![],
            now: ts("2026-12-01T00:00:00Z"),
        });
        let out = m.encode();
        let series: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("covenant_deadline_timestamp_seconds{"))
            .collect();
        assert_eq!(
            series,
            [
                r#"covenant_deadline_timestamp_seconds{account="acme",what="suspension_end",object="withheld"} 1798761600"#
            ],
            "{out}"
        );
        // Every family keeps its HELP and TYPE lines, also with no sample.
        for family in [
            "account_quota_hard",
            "account_quota_used",
            "account_condition",
        ] {
            assert!(
                out.contains(&format!("# TYPE covenant_{family} gauge\n")),
                "{family}: {out}"
            );
        }
        // A label value's backslash, double quote and line feed are escaped.
        let mut line = String::new();
        sample(&mut line, "x", &[("a", "q\"b\\c\nd")], 1);
        assert_eq!(line, "covenant_x{a=\"q\\\"b\\\\c\\nd\"} 1\n");
    }
}
