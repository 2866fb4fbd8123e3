//! Figures: each measured value is appended as one JSON line (with the load average around its
//! measurement), and `report` turns a results file into the markdown table of BENCHMARKS.md.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// One measured value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// Accounts present.
    pub n: usize,
    /// What was measured (see [`ROWS`]).
    pub key: String,
    /// `covenant` or `raw`.
    pub who: String,
    /// The scenario: empty for the standard one, `accountQuota` when the package has an account-wide
    /// quota (`--account-quota`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scenario: String,
    /// The value, in `unit`.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The 1-minute load average at the start and at the end of the measurement.
    pub load: String,
    /// More about the value (breakdowns, counts).
    #[serde(default)]
    pub detail: String,
    /// When it was measured (RFC 3339).
    pub at: String,
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The load average when a measurement started.
#[derive(Clone, Copy, Debug)]
pub struct Load(f64);

impl Load {
    /// Now.
    pub fn now() -> Self {
        Load(loadavg())
    }

    /// "start→end".
    pub fn span(&self) -> String {
        format!("{:.2}→{:.2}", self.0, loadavg())
    }
}

/// Appends figures to a results file and echoes them on stderr.
pub struct Recorder {
    path: PathBuf,
    n: usize,
    who: &'static str,
    scenario: &'static str,
}

impl Recorder {
    /// Figures of `who` at `n` accounts, appended to `path`.
    pub fn new(path: &Path, n: usize, who: &'static str) -> Self {
        Recorder {
            path: path.to_path_buf(),
            n,
            who,
            scenario: "",
        }
    }

    /// The same, for the figures of a scenario (see [`Figure::scenario`]).
    pub fn scenario(self, scenario: &'static str) -> Self {
        Recorder { scenario, ..self }
    }

    /// Records one figure.
    pub fn emit(
        &self,
        key: &str,
        value: f64,
        unit: &str,
        load: &Load,
        detail: impl Into<String>,
    ) -> Result<()> {
        let f = Figure {
            n: self.n,
            key: key.into(),
            who: self.who.into(),
            scenario: self.scenario.into(),
            value,
            unit: unit.into(),
            load: load.span(),
            detail: detail.into(),
            at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string(),
        };
        eprintln!(
            "[bench] N={}{} {} {key} = {} {unit} (load {}) {}",
            f.n,
            label(&f.scenario),
            f.who,
            fmt(value),
            f.load,
            f.detail
        );
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        writeln!(out, "{}", serde_json::to_string(&f)?)?;
        Ok(())
    }
}

/// The scenario of `--account-quota`.
pub const ACCOUNT_QUOTA_SCENARIO: &str = "accountQuota";

/// How a scenario is shown next to N: nothing for the standard one.
fn label(scenario: &str) -> String {
    if scenario.is_empty() {
        String::new()
    } else {
        format!(" ({scenario})")
    }
}

/// p-th percentile (nearest rank) of `v`, NaN when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if (v == v.trunc() && v.abs() < 1e9) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A row of the table: a Covenant figure, optionally a baseline figure, and the goal.
struct Row {
    label: &'static str,
    key: &'static str,
    baseline: Option<(&'static str, &'static str)>,
    /// How to compute the ratio: covenant / baseline (true) or not at all (false).
    ratio: bool,
    goal: &'static str,
}

const fn row(
    label: &'static str,
    key: &'static str,
    baseline: Option<(&'static str, &'static str)>,
    ratio: bool,
    goal: &'static str,
) -> Row {
    Row {
        label,
        key,
        baseline,
        ratio,
        goal,
    }
}

/// The rows of the table, in order.
const ROWS: &[Row] = &[
    row(
        "1. Provisioning throughput (accounts/s)",
        "throughput",
        Some(("raw", "throughput")),
        true,
        "ratio ≥ 0.9",
    ),
    row(
        "1. Provisioning wall time (s)",
        "provision_time",
        Some(("raw", "provision_time")),
        true,
        "",
    ),
    row(
        "1. API requests per provisioned account",
        "requests_per_account",
        Some(("raw", "requests_per_account")),
        true,
        "",
    ),
    row(
        "2. Time to Ready p50 (ms) vs one tenant sequentially",
        "ready_p50",
        Some(("raw", "tenant_seq_p50")),
        true,
        "",
    ),
    row(
        "2. Time to Ready p99 (ms) vs one tenant sequentially",
        "ready_p99",
        Some(("raw", "tenant_seq_p99")),
        true,
        "",
    ),
    row(
        "2. Time to Ready p50 (ms) vs raw batch, from batch start",
        "ready_p50",
        Some(("raw", "ready_p50")),
        true,
        "",
    ),
    row(
        "2. Time to Ready p99 (ms) vs raw batch, from batch start",
        "ready_p99",
        Some(("raw", "ready_p99")),
        true,
        "",
    ),
    row(
        "3. Writes at rest: resourceVersion changes",
        "rest_changes",
        None,
        false,
        "0",
    ),
    row(
        "3. Writes at rest: covenant_writes_total delta",
        "rest_writes",
        None,
        false,
        "0",
    ),
    row(
        "4. Restart: spawn → /readyz (s)",
        "restart_readyz",
        None,
        false,
        "",
    ),
    row(
        "4. Restart: spawn → every Account reconciled (s)",
        "restart_converge",
        None,
        false,
        "",
    ),
    row(
        "4. Restart: covenant_writes_total",
        "restart_writes",
        None,
        false,
        "0",
    ),
    row(
        "4. Restart: resourceVersion changes",
        "restart_changes",
        None,
        false,
        "0",
    ),
    row("5. Memory: peak VmHWM (MiB)", "mem_peak", None, false, ""),
    row(
        "5. Memory: steady VmRSS after rest (MiB)",
        "mem_rss",
        None,
        false,
        "",
    ),
    row(
        "5. Memory: VmRSS on the empty cluster (MiB)",
        "mem_empty",
        None,
        false,
        "",
    ),
    row(
        "5. Memory: (steady − empty VmRSS) per 1000 accounts (MiB)",
        "mem_rss_per_1000",
        None,
        false,
        "",
    ),
    row(
        "5. A /metrics scrape at rest, bytes per account",
        "metrics_bytes_per_account",
        None,
        false,
        "",
    ),
    row(
        "5. Memory: peak VmHWM after restart (MiB)",
        "restart_mem_peak",
        None,
        false,
        "",
    ),
    row(
        "6. API requests at rest (whole window)",
        "rest_requests",
        None,
        false,
        "",
    ),
    row(
        "6. Reconciles at rest (whole window)",
        "rest_reconciles",
        None,
        false,
        "",
    ),
    row(
        "6. API requests per no-op reconcile (N accounts touched)",
        "noop_requests_per_reconcile",
        None,
        false,
        "",
    ),
    row(
        "6. Time in one no-op Account reconcile (ms, mean over the N touched)",
        "noop_reconcile_ms",
        None,
        false,
        "flat in N",
    ),
    row(
        "6. Operator CPU per reconcile in the touch (ms, every kind)",
        "noop_cpu_ms",
        None,
        false,
        "flat in N",
    ),
    row(
        "6. API requests per reconcile during restart",
        "restart_requests_per_reconcile",
        None,
        false,
        "",
    ),
    row(
        "6. One edited account: API requests",
        "edit_requests",
        None,
        false,
        "",
    ),
    row(
        "6. One edited account: reconciles",
        "edit_reconciles",
        None,
        false,
        "",
    ),
    row(
        "6. One edited account: edit → new quota (ms)",
        "edit_latency",
        None,
        false,
        "",
    ),
    row(
        "7. Notice Effective lateness p50 (ms, watch)",
        "notice_late_p50",
        None,
        false,
        "",
    ),
    row(
        "7. Notice Effective lateness p99 (ms, watch)",
        "notice_late_p99",
        None,
        false,
        "",
    ),
    row(
        "7. Notice lastTransitionTime − enforcedEffectiveAt p50 (s)",
        "notice_ltt_p50",
        None,
        false,
        "",
    ),
    row(
        "7. Notice lastTransitionTime − enforcedEffectiveAt p99 (s)",
        "notice_ltt_p99",
        None,
        false,
        "",
    ),
    row(
        "7. Accounts' updates at the instant drained (s after the instant)",
        "notice_drain",
        None,
        false,
        "",
    ),
    row(
        "7. While they drain: GET as the operator's identity p50 (ms)",
        "drain_get_p50",
        None,
        false,
        "",
    ),
    row(
        "7. While they drain: GET as the operator's identity p99 (ms)",
        "drain_get_p99",
        None,
        false,
        "",
    ),
    row(
        "7. Largest notice object (bytes of JSON, as the API server returns it)",
        "notice_bytes_max",
        None,
        false,
        "flat in N",
    ),
    row(
        "8. Account quota: operator requests per pod admitted (its metrics: writes + share lists)",
        "quota_requests_per_pod",
        None,
        false,
        "flat in N",
    ),
    row(
        "8. Account quota: API requests per pod admitted (API server's count, operator identity)",
        "quota_apiserver_requests_per_pod",
        None,
        false,
        "",
    ),
    row(
        "8. Account quota: rebalances (share lists before moving room)",
        "quota_rebalances",
        None,
        false,
        "",
    ),
    row(
        "8. Account quota: refusals by a share (each retried until admitted)",
        "quota_refusals",
        None,
        false,
        "",
    ),
    row(
        "8. Account quota: refusal → success of its retry p50 (ms)",
        "quota_retry_p50",
        None,
        false,
        "seconds",
    ),
    row(
        "8. Account quota: refusal → success of its retry p99 (ms)",
        "quota_retry_p99",
        None,
        false,
        "seconds",
    ),
    row(
        "8. Account quota: pods not admitted though the account had room",
        "quota_unadmitted",
        None,
        false,
        "0",
    ),
    row(
        "8. Account quota: accounts holding more than the cap (read back)",
        "quota_over_cap",
        None,
        false,
        "0",
    ),
    row(
        "8. Account quota: pods admitted per second (workload)",
        "quota_pods_per_s",
        None,
        false,
        "",
    ),
    row(
        "8. Account quota: covenant_writes_total at rest after the workload",
        "quota_rest_writes",
        None,
        false,
        "0",
    ),
];

/// Reads a results file.
pub fn read(path: &Path) -> Result<Vec<Figure>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// The markdown table of `figures` (the last figure of each key wins), and the details below it.
pub fn table(figures: &[Figure]) -> String {
    let find = |(n, scenario): &(usize, String), who: &str, key: &str| {
        figures
            .iter()
            .rev()
            .find(|f| f.n == *n && f.scenario == *scenario && f.who == who && f.key == key)
    };
    // Each scenario's sizes, the standard one first.
    let ns: BTreeSet<(usize, String)> = figures.iter().map(|f| (f.n, f.scenario.clone())).collect();
    let mut ns: Vec<(usize, String)> = ns.into_iter().collect();
    ns.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    let mut out = String::from(
        "| Figure | N | Covenant | Baseline (raw client) | Ratio | Goal | Load 1m (Covenant; raw) |\n|---|---:|---:|---:|---:|---|---|\n",
    );
    for r in ROWS {
        for n in &ns {
            let Some(c) = find(n, "covenant", r.key) else {
                continue;
            };
            let b = r.baseline.and_then(|(who, key)| find(n, who, key));
            let ratio = match (r.ratio, b) {
                (true, Some(b)) if b.value != 0.0 => fmt(c.value / b.value),
                _ => String::new(),
            };
            let load = match b {
                Some(b) => format!("{}; {}", c.load, b.load),
                None => c.load.clone(),
            };
            out.push_str(&format!(
                "| {} | {}{} | {} | {} | {ratio} | {} | {load} |\n",
                r.label,
                n.0,
                label(&n.1),
                fmt(c.value),
                b.map(|b| fmt(b.value)).unwrap_or_default(),
                r.goal,
            ));
        }
    }
    let mem: Vec<(usize, f64)> = ns
        .iter()
        .filter(|n| n.1.is_empty())
        .filter_map(|n| find(n, "covenant", "mem_rss").map(|f| (n.0, f.value)))
        .collect();
    if let (Some(&(n1, r1)), Some(&(n2, r2))) = (mem.first(), mem.last())
        && n2 > n1
    {
        out.push_str(&format!(
            "\nMarginal steady VmRSS between N={n1} and N={n2}: {} MiB per 1000 accounts.\n",
            fmt((r2 - r1) * 1000.0 / (n2 - n1) as f64)
        ));
    }
    out.push_str("\nDetails:\n\n");
    for f in figures.iter().filter(|f| !f.detail.is_empty()) {
        out.push_str(&format!(
            "- N={}{} {} `{}` = {} {}: {}\n",
            f.n,
            label(&f.scenario),
            f.who,
            f.key,
            fmt(f.value),
            f.unit,
            f.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
