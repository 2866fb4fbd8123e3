//! `covenant-bench`: Covenant's benchmarks on a real control plane. `e2e/bench.sh` runs a whole suite
//! on fresh clusters and prints the table that goes into BENCHMARKS.md.
//!
//! - `raw`: the baseline, a plain client creating exactly the operator's objects (no operator).
//! - `operator`: the operator's figures at N accounts (provisioning, rest, memory, requests, restart,
//!   notices; with `--account-quota`, what the account-wide quota's rebalancing costs).
//! - `report`: the markdown table of a results file.
//! - `machine`: the machine the figures were measured on.
#![forbid(unsafe_code)]

mod k8s;
mod operator;
mod prom;
mod quota;
mod raw;
mod report;
mod suite;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "covenant-bench",
    version,
    about = "Covenant's benchmarks on a real control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The raw-client baseline of figures 1 and 2 (run with no operator).
    Raw(raw::RawArgs),
    /// The operator's figures 1-7 at N accounts (run on a fresh cluster).
    Operator(suite::OperatorArgs),
    /// Prints the markdown table of a results file.
    Report {
        /// The results file (JSON lines) written by `raw` and `operator`.
        results: PathBuf,
    },
    /// Prints the machine: CPU model, cores, memory, kernel, load average, date.
    Machine,
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "- CPU: {model} (nproc {cores})\n- Memory: {mem_gib:.1} GiB\n- Kernel: {}\n- Load average at the end: {}\n- Date: {}\n",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Raw(args) => raw::run(args).await,
        Command::Operator(args) => suite::run(args).await,
        Command::Report { results } => {
            print!("{}", report::table(&report::read(&results)?));
            Ok(())
        }
        Command::Machine => {
            print!("{}", machine());
            Ok(())
        }
    }
}
