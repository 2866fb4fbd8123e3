use std::process::ExitCode;

use clap::{Parser, Subcommand};
use covenant::{api, check};

/// The git revision the binary was built from (operator/build.rs: `COVENANT_REVISION` when the build
/// sets it, else the commit checked out, `unknown` without git).
const REVISION: &str = env!("COVENANT_REVISION");

/// `covenant --version`: `covenant <version> (git <revision>)`.
fn version() -> &'static str {
    Box::leak(format!("{} (git {REVISION})", env!("CARGO_PKG_VERSION")).into_boxed_str())
}

/// Covenant: tenants provisioned and governed under a platform's service terms.
#[derive(Parser, Debug)]
#[command(name = "covenant", version = version(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `covenant check -o`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Output {
    /// A YAML stream.
    Yaml,
    /// A JSON array.
    Json,
    /// Nothing (the exit code and the problems only).
    None,
}

/// `covenant check --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Problems on standard error, objects on standard output.
    Text,
    /// GitHub Actions workflow commands.
    Github,
    /// A JUnit XML report.
    Junit,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster config).
    Run(covenant::run::RunArgs),
    /// Print the four CustomResourceDefinitions as a YAML stream, or write one file per CRD.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Validate manifests offline and print each Covenant object with the status the operator
    /// would compute. Exit 0: valid; 1: invalid object or notice window too short; 2: unreadable input.
    Check {
        /// Evaluate at this instant (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
        /// How the checked objects are printed on standard output (with `--format text`).
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
        output: Output,
        /// How problems are reported: `text` (one line each on standard error, the objects on
        /// standard output), `github` (workflow commands that annotate the files in a pull request) or
        /// `junit` (a JUnit XML report), the last two on standard output instead of the objects.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Resolve packages and accounts that the files name but do not hold against the cluster of
        /// the current kubeconfig.
        #[arg(long)]
        cluster: bool,
        /// Manifest files or directories (walked for .yaml/.yml files); `-` reads standard input.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// The calendar of obligations: every instant still to come that changes something for a tenant
    /// (rejection deadlines, effective instants, access reviews due, suspensions starting or ending,
    /// retention purges), sorted, with the accounts each touches. From the cluster of the current
    /// kubeconfig, or from manifest files (their status computed as `covenant check` does).
    Timeline {
        /// List from this instant (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
        /// Write an iCalendar file (RFC 5545) to this path (`-`: standard output) instead of a table.
        #[arg(long)]
        ics: Option<String>,
        /// Manifest files (multi-document YAML; `-` reads standard input). None: read the cluster.
        files: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(mut args) => {
            args.revision = Some(REVISION.to_string());
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(covenant::run::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("covenant: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Crd { dir: None } => {
            print!("{}", api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { dir: Some(dir) } => {
            for (file, yaml) in api::crd_files() {
                if let Err(e) = std::fs::write(dir.join(&file), yaml) {
                    eprintln!("cannot write {}: {e}", dir.join(file).display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Command::Timeline { now, ics, files } => timeline(now, ics, files),
        Command::Check {
            now,
            output,
            format,
            cluster,
            files,
        } => {
            let Some(now) = instant(now) else {
                return ExitCode::from(2);
            };
            let context = if cluster {
                match cluster_context() {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("--cluster: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                check::Context::default()
            };
            let mut report = check::Report::default();
            let docs = check::read_docs(&files, &mut report);
            check::check_with(docs, &context, now, &mut report);
            match format {
                Format::Text => {
                    match output {
                        Output::Yaml => print!("{}", check::render(&report)),
                        Output::Json => print!("{}", check::render_json(&report)),
                        Output::None => {}
                    }
                    for line in report.unreadable.iter().chain(&report.problems) {
                        eprintln!("{line}");
                    }
                }
                Format::Github => print!("{}", check::render_github(&report)),
                Format::Junit => print!("{}", check::render_junit(&report)),
            }
            ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(2))
        }
    }
}

fn timeline(now: Option<String>, ics: Option<String>, files: Vec<String>) -> ExitCode {
    use covenant::timeline;
    let Some(now) = instant(now) else {
        return ExitCode::from(2);
    };
    let objects = if files.is_empty() {
        let read = with_cluster(|client| async move {
            timeline::from_cluster(&client)
                .await
                .map_err(|e| format!("cannot read the cluster: {e}"))
        });
        match read {
            Ok(o) => o,
            Err(e) => {
                eprintln!("covenant timeline: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut report = check::Report::default();
        let docs = check::read_docs(&files, &mut report);
        // Namespaces (a retained one carries its purge instant) are not Covenant's kinds: taken as
        // they are; the Covenant objects with the status `covenant check` computes.
        let namespaces: Vec<serde_json::Value> = docs
            .iter()
            .filter(|d| d.value.get("kind").and_then(|k| k.as_str()) == Some("Namespace"))
            .map(|d| d.value.clone())
            .collect();
        check::check(docs, now, &mut report);
        for line in report.unreadable.iter().chain(&report.problems) {
            eprintln!("{line}");
        }
        if !report.unreadable.is_empty() {
            return ExitCode::from(2);
        }
        let mut values = report.objects;
        values.extend(namespaces);
        timeline::Objects::from_values(&values)
    };
    let entries = timeline::timeline(&objects, now);
    match ics.as_deref() {
        None => print!("{}", timeline::render_text(&entries)),
        Some("-") => print!("{}", timeline::render_ics(&entries, now)),
        Some(path) => {
            if let Err(e) = std::fs::write(path, timeline::render_ics(&entries, now)) {
                eprintln!("cannot write {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs `f` with a client of the cluster of the current kubeconfig, on a runtime of its own.
fn with_cluster<T, F, Fut>(f: F) -> Result<T, String>
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot reach the cluster: {e}"))?;
        f(client).await
    })
}

/// The SupportPackages and Accounts of the cluster of the current kubeconfig.
fn cluster_context() -> Result<check::Context, String> {
    with_cluster(|client| async move {
        let lp = kube::api::ListParams::default();
        let packages = kube::Api::<api::SupportPackage>::all(client.clone())
            .list(&lp)
            .await
            .map_err(|e| format!("cannot list SupportPackages: {e}"))?
            .items;
        let accounts = kube::Api::<api::Account>::all(client)
            .list(&lp)
            .await
            .map_err(|e| format!("cannot list Accounts: {e}"))?
            .items;
        Ok(check::Context { packages, accounts })
    })
}

/// `--now`: the instant given (RFC 3339), or now; `None` (said on standard error) when it is no instant.
fn instant(now: Option<String>) -> Option<jiff::Timestamp> {
    match now.map(|s| s.parse::<jiff::Timestamp>()) {
        None => Some(jiff::Timestamp::now()),
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("--now: not an RFC 3339 instant: {e}");
            None
        }
    }
}
