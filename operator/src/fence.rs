//! Fencing of the leader (client-go's renew deadline): a replica that leads by a Lease stops acting as
//! soon as its own clock says the lease may have expired, before a follower can take over, and it
//! re-reads the Lease right before anything it cannot take back (deleting a namespace).
//!
//! The lease library renews the Lease and only logs a failed renewal; the fence watches the same Lease
//! and compares the last renewal this replica wrote (its own `renewTime`, so no clock skew between
//! replicas is involved) with the renew deadline, which is shorter than the lease duration.

use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::watcher;

/// The leader's fence.
pub struct Fence {
    identity: String,
    name: String,
    api: Api<Lease>,
    renew_deadline: Duration,
    last_renew: Mutex<Option<Timestamp>>,
}

impl Fence {
    /// A fence on the Lease `name` of `api` held by `identity`, valid for `renew_deadline` after each
    /// renewal.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, renew_deadline: Duration) -> Self {
        Fence {
            identity: identity.to_string(),
            name: name.to_string(),
            api,
            renew_deadline,
            last_renew: Mutex::new(None),
        }
    }

    /// Records the renewal in `lease` when this replica holds it.
    pub fn observe(&self, lease: &Lease) {
        let Some(spec) = &lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        if let Some(t) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
            let mut last = self.last_renew.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|l| t.0 > l) {
                *last = Some(t.0);
            }
        }
    }

    /// Whether, by this replica's clock, the lease it renewed last is still within the renew deadline.
    pub fn valid(&self, now: Timestamp) -> bool {
        let last = *self.last_renew.lock().unwrap_or_else(|p| p.into_inner());
        // A renewal "in the future" (the clock stepped back) counts as now, never as more time.
        last.is_some_and(|l| {
            now.duration_since(l.min(now))
                .try_into()
                .is_ok_and(|d: Duration| d < self.renew_deadline)
        })
    }

    /// Reads the Lease now and says whether this replica still leads (for the last check before a
    /// deletion).
    pub async fn confirm(&self) -> Result<(), String> {
        match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => {
                let holder = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if holder != self.identity {
                    return Err(format!("the Lease is held by {holder:?}"));
                }
                self.observe(&lease);
                if self.valid(Timestamp::now()) {
                    Ok(())
                } else {
                    Err("the lease was not renewed within the renew deadline".into())
                }
            }
            Ok(None) => Err("the Lease does not exist".into()),
            Err(e) => Err(format!("cannot read the Lease: {e}")),
        }
    }

    /// Follows the Lease and returns (with the reason) once this replica's last renewal is older than
    /// the renew deadline. Call it once leadership was acquired.
    pub async fn expired(&self) -> String {
        let mut leases = std::pin::pin!(watcher::watch_object(self.api.clone(), &self.name));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                ev = leases.next() => match ev {
                    Some(Ok(Some(lease))) => self.observe(&lease),
                    Some(Ok(None)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cannot watch the leader-election Lease");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(500)).await,
                },
                _ = tick.tick() => {
                    if !self.valid(Timestamp::now()) {
                        return format!(
                            "the leader-election lease was not renewed within the renew deadline ({:?}): it may have expired",
                            self.renew_deadline
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renew: &str) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renew.parse().unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fence() -> Fence {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        Fence::new(
            Api::namespaced(client, "covenant-system"),
            "covenant",
            "me",
            Duration::from_secs(10),
        )
    }

    #[tokio::test]
    async fn a_leader_is_fenced_once_its_own_renewal_is_older_than_the_deadline() {
        let f = fence();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // Never renewed by this replica: not valid.
        assert!(!f.valid(at("2026-01-01T00:00:00Z")));
        f.observe(&lease("me", "2026-01-01T00:00:00Z"));
        assert!(f.valid(at("2026-01-01T00:00:09Z")));
        assert!(!f.valid(at("2026-01-01T00:00:10Z")));
        // Someone else's renewal does not extend this replica's fence.
        f.observe(&lease("other", "2026-01-01T00:00:20Z"));
        assert!(!f.valid(at("2026-01-01T00:00:21Z")));
        f.observe(&lease("me", "2026-01-01T00:00:20Z"));
        assert!(f.valid(at("2026-01-01T00:00:21Z")));
    }
}
