//! Prometheus metrics: reconciles by kind and outcome, their durations, errors by category, and
//! accounts by phase.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

/// All metrics of the operator.
pub struct Metrics {
    registry: Mutex<Registry>,
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
    /// 1 while this replica leads (or runs without leader election), else 0.
    pub leader: Gauge,
    /// Stored Covenant objects that do not parse (skipped), by kind.
    pub invalid: Family<KindLabels, Gauge>,
    /// 1 while the API server answers its readiness check, else 0.
    pub api_server_up: Gauge,
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
        Metrics {
            registry: Mutex::new(registry),
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

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
