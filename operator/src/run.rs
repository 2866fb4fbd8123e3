//! `covenant run`: the long-running operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

use crate::clock::SystemClock;
use crate::controller::{self, Settings};
use crate::http::{self, Health};
use crate::metrics::Metrics;

/// Options of `covenant run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The git revision the binary was built from (set by `main`, not a flag): `covenant_build_info`.
    #[arg(skip)]
    pub revision: Option<String>,
    /// Address of the /livez, /readyz and /metrics endpoints.
    #[arg(long, env = "COVENANT_METRICS_ADDR", default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// How many objects of one kind are reconciled at once (DeprecationNotices: four times as many).
    #[arg(long, env = "COVENANT_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Where suspension notices are POSTed as JSON (optional).
    #[arg(long, env = "COVENANT_NOTIFY_URL")]
    pub notify_url: Option<String>,
    /// Log filter, e.g. `info` or `covenant=debug,kube=info`.
    #[arg(long, env = "COVENANT_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log as JSON lines.
    #[arg(long, env = "COVENANT_LOG_JSON")]
    pub log_json: bool,
    /// Reconcile only while holding a coordination.k8s.io Lease (run several replicas for HA).
    #[arg(long, env = "COVENANT_LEADER_ELECT")]
    pub leader_elect: bool,
    /// The operator's namespace: of the leader-election Lease, and of the hostname claims (ConfigMaps
    /// `covenant-hostnames-<namespace>`, which the policy `covenant-hostnames` reads there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "covenant-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "COVENANT_LEASE_NAME", default_value = "covenant")]
    pub lease_name: String,
    /// Seconds a leader's lease stays valid without renewal (a follower takes over after it).
    #[arg(long, env = "COVENANT_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Seconds between checks of the API server's /readyz (readiness follows the answer).
    #[arg(long, env = "COVENANT_API_CHECK_INTERVAL", default_value_t = 5)]
    pub api_check_interval: u64,
}

/// Sets up logging from the options.
pub fn telemetry(args: &RunArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init()
    } else {
        builder.init()
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry(&args);
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    metrics.set_build_info(
        env!("CARGO_PKG_VERSION"),
        args.revision.as_deref().unwrap_or("unknown"),
    );
    let health = Arc::new(Health::default());
    health.healthy.store(true, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let shutdown = {
        let mut rx = rx.clone();
        shared(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    };
    let listener = http::bind(args.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.metrics_addr))?;
    tokio::spawn(watch_api_server(
        client.clone(),
        Duration::from_secs(args.api_check_interval.max(1)),
        health.clone(),
        metrics.clone(),
    ));
    let server = tokio::spawn(http::serve(
        listener,
        health.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });

    // Controllers start only once their CRDs are established.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "accounts.covenant.dev",
        "supportpackages.covenant.dev",
        "suspensions.covenant.dev",
        "deprecationnotices.covenant.dev",
        "noticeresponses.covenant.dev",
    ] {
        tracing::info!(crd = name, "waiting for the CRD to be established");
        loop {
            match tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds.clone(), name, conditions::is_crd_established()),
            )
            .await
            {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(crd = name, error = %e, "cannot watch the CRD; retrying")
                }
                Err(_) => tracing::warn!(
                    crd = name,
                    "CRD not established yet (install crds/); still waiting"
                ),
            }
            if *rx.borrow() {
                return Ok(());
            }
        }
    }

    let settings = Settings {
        concurrency: args.concurrency.max(1),
        notify_url: args.notify_url.clone(),
        namespace: args.lease_namespace.clone(),
    };
    if !args.leader_elect {
        tracing::info!("starting controllers");
        metrics.leader.set(1);
        controller::run(
            client,
            settings,
            Arc::new(SystemClock),
            metrics,
            health,
            None,
            shutdown,
        )
        .await;
        let _ = server.await;
        return Ok(());
    }

    // Only the leader reconciles. Losing the lease, or the lease task dying, ends the process: a
    // restart comes back as a follower, which is simpler and safer than stopping controllers midway.
    let identity =
        std::env::var("POD_NAME").unwrap_or_else(|_| format!("covenant-{}", std::process::id()));
    let duration = args.lease_duration.max(3);
    // As client-go: the leader renews well before the lease expires (every half lease here) and gives
    // up when it could not renew within the renew deadline (two thirds of the lease), so it stops
    // before a follower may take over.
    let renew_deadline = Duration::from_millis(duration * 1000 * 2 / 3);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 2).max(1))
        .with_field_manager(crate::api::FIELD_MANAGER)
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    tracing::info!(identity, lease = %args.lease_name, namespace = %args.lease_namespace, "waiting for leadership");
    // A standby is ready: it serves and is one lease expiry away from leading. (A Deployment whose
    // followers were never ready would never roll out, and its PDB would block every drain.)
    health.synced.store(true, Ordering::Relaxed);
    let mut stop = rx.clone();
    tokio::select! {
        r = leading.wait_for(|l| *l) => { r.map_err(|_| anyhow::anyhow!("the leader-election task ended"))?; }
        _ = stop.wait_for(|s| *s) => return Ok(()),
    }
    tracing::info!(identity, "leading: starting controllers");
    metrics.leader.set(1);
    // Not ready again until the leader's caches have synced.
    health.synced.store(false, Ordering::Relaxed);
    let fence = Arc::new(crate::fence::Fence::new(
        Api::namespaced(client.clone(), &args.lease_namespace),
        &args.lease_name,
        &identity,
        renew_deadline,
    ));
    // The Lease as just acquired: the fence counts from this renewal.
    fence.confirm().await.ok();
    let controllers = controller::run(
        client,
        settings,
        Arc::new(SystemClock),
        metrics,
        health.clone(),
        Some(fence.clone()),
        shutdown,
    );
    tokio::select! {
        _ = controllers => { let _ = server.await; Ok(()) }
        why = fence.expired() => {
            health.healthy.store(false, Ordering::Relaxed);
            anyhow::bail!("{why}; exiting so a restart rejoins as a follower")
        }
        r = leading.wait_for(|l| !*l) => {
            health.healthy.store(false, Ordering::Relaxed);
            match r {
                Ok(_) => anyhow::bail!("lost the leader-election lease; exiting so a restart rejoins as a follower"),
                Err(_) => anyhow::bail!("the leader-election task ended; exiting"),
            }
        }
        r = lease_task => {
            health.healthy.store(false, Ordering::Relaxed);
            anyhow::bail!("the leader-election task ended: {r:?}")
        }
    }
}

/// Asks the API server's `/readyz` every `interval` and records the answer in `health` (so that this
/// replica's readiness shows an outage of the API server or of etcd behind it) and in the
/// `covenant_api_server_up` metric. Watches and reconciles retry by themselves meanwhile: an outage
/// never ends the process.
async fn watch_api_server(
    client: Client,
    interval: Duration,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = None;
    loop {
        ticks.tick().await;
        let answer = match axum::http::Request::get("/readyz").body(Vec::new()) {
            Ok(request) => tokio::time::timeout(interval, client.request_text(request))
                .await
                .map_err(|_| format!("no answer within {interval:?}"))
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        // A failing /readyz answers with every check's line: the first ones tell enough.
        let answer = answer.map_err(|e| e.chars().take(300).collect::<String>());
        let up = answer.is_ok();
        health.api_server_up.store(up, Ordering::Relaxed);
        metrics.api_server_up.set(i64::from(up));
        match (was_up, answer) {
            (Some(true) | None, Err(e)) => {
                tracing::warn!(error = %e, "the API server is not ready; not ready until it is")
            }
            (Some(false), Ok(_)) => tracing::info!("the API server is ready again"),
            _ => {}
        }
        was_up = Some(up);
    }
}

fn shared(
    f: impl std::future::Future<Output = ()> + Send + 'static,
) -> futures::future::Shared<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    use futures::FutureExt;
    let b: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(f);
    b.shared()
}
