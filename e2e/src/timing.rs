//! Time helpers shared by the suites that measure when a change lands: watch an object until a
//! predicate holds (and note when), and format instants and durations for the test output.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Watches one object until `pred` holds; returns it and when it was seen (a watch, so the time is
/// close to when the change was written). Panics with the last version seen after `timeout`.
pub async fn watch_until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&K) -> bool,
) -> (K, Timestamp)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
{
    use kube::runtime::{WatchStreamExt, watcher};
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<K> = None;
    let mut last_err = String::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(o))) => {
                let seen = Timestamp::now();
                if pred(&o) {
                    return (o, seen);
                }
                last = Some(o);
            }
            Ok(Some(Err(e))) => last_err = e.to_string(),
            Ok(None) | Err(_) => break,
        }
    }
    panic!(
        "timed out after {timeout:?} watching {} {name} until it would {what}; last watch error: {last_err:?}; last seen:\n{}",
        K::kind(&()),
        last.map(|o| serde_yaml::to_string(&o).unwrap_or_default())
            .unwrap_or_else(|| "(nothing)".into())
    );
}

pub fn rfc3339(ts: Timestamp) -> String {
    format!("{ts:.0}")
}

pub fn secs(d: SignedDuration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The time left until `at`, plus 30 s.
pub fn until_plus_30s(at: Timestamp) -> Duration {
    Duration::from_secs(30)
        + Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default()
}
