//! What the benchmark observes through watches (never by polling the API): when each Account turns
//! Ready, every resourceVersion change of what Covenant manages, and when each notice turns Effective.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use covenant::api::{ACCOUNT_LABEL, Account, DeprecationNotice, SupportPackage, Suspension};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ready=True for the account's current generation (kstatus).
pub fn is_ready(a: &Account) -> bool {
    let Some(s) = &a.status else { return false };
    s.observed_generation == a.metadata.generation
        && covenant::status::is_true(&s.conditions, "Ready")
}

/// When each Account (of a name prefix) was first seen Ready through a watch.
pub struct ReadyWatch {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<Notify>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReadyWatch {
    /// Starts watching every Account whose name starts with `prefix`.
    pub fn start(client: &Client, prefix: &str) -> Self {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
        let notify = Arc::new(Notify::new());
        let synced = Arc::new(AtomicBool::new(false));
        let api: Api<Account> = Api::all(client.clone());
        let (s, n, y, prefix) = (
            seen.clone(),
            notify.clone(),
            synced.clone(),
            prefix.to_string(),
        );
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(a) | watcher::Event::InitApply(a)) => {
                        if a.name_any().starts_with(&prefix) && is_ready(&a) {
                            let now = Instant::now();
                            lock(&s).entry(a.name_any()).or_insert(now);
                            n.notify_waiters();
                        }
                    }
                    Ok(watcher::Event::InitDone) => y.store(true, Ordering::Release),
                    Ok(_) => {}
                    Err(e) => eprintln!("[bench] account watch: {e}; retrying"),
                }
            }
        });
        ReadyWatch {
            seen,
            notify,
            synced,
            task,
        }
    }

    /// Waits until the watch has listed the existing Accounts.
    pub async fn synced(&self) {
        while !self.synced.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many accounts have been seen Ready.
    pub fn count(&self) -> usize {
        lock(&self.seen).len()
    }

    /// Waits until `n` accounts have been seen Ready; false on timeout.
    pub async fn wait(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), notified).await;
        }
    }

    /// When each account was first seen Ready.
    pub fn seen(&self) -> HashMap<String, Instant> {
        lock(&self.seen).clone()
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct RvState {
    rv: HashMap<String, String>,
    armed: bool,
    total: u64,
    by: BTreeMap<String, u64>,
}

/// Counts every resourceVersion change (and creation and deletion) of the objects labelled
/// `covenant.dev/account` and of Covenant's own kinds, attributed to the field manager with the newest
/// `managedFields` entry.
pub struct Changes {
    state: Arc<Mutex<RvState>>,
    synced: Vec<Arc<AtomicBool>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The field manager (and subresource) whose managedFields entry is the newest.
fn last_manager<K: Resource>(obj: &K) -> String {
    let mf = obj.meta().managed_fields.as_deref().unwrap_or_default();
    mf.iter()
        .enumerate()
        .max_by_key(|(i, m)| (m.time.as_ref().map(|t| t.0), *i))
        .map(|(_, m)| {
            let mut s = m.manager.clone().unwrap_or_else(|| "?".into());
            if let Some(sub) = m.subresource.as_deref().filter(|s| !s.is_empty()) {
                s.push('/');
                s.push_str(sub);
            }
            s
        })
        .unwrap_or_else(|| "?".into())
}

impl Changes {
    /// Starts the watches (not counting until [`Changes::arm`]).
    pub fn start(client: &Client) -> Self {
        let mut c = Changes {
            state: Default::default(),
            synced: Vec::new(),
            tasks: Vec::new(),
        };
        let labelled = watcher::Config::default().labels(ACCOUNT_LABEL);
        c.watch::<Namespace>(client, labelled.clone());
        c.watch::<ResourceQuota>(client, labelled.clone());
        c.watch::<LimitRange>(client, labelled.clone());
        c.watch::<NetworkPolicy>(client, labelled.clone());
        c.watch::<RoleBinding>(client, labelled);
        c.watch::<Account>(client, Default::default());
        c.watch::<SupportPackage>(client, Default::default());
        c.watch::<Suspension>(client, Default::default());
        c.watch::<DeprecationNotice>(client, Default::default());
        c
    }

    fn watch<K>(&mut self, client: &Client, wc: watcher::Config)
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let api: Api<K> = Api::all(client.clone());
        let state = self.state.clone();
        let synced = Arc::new(AtomicBool::new(false));
        self.synced.push(synced.clone());
        let kind = K::kind(&()).to_string();
        self.tasks.push(tokio::spawn(async move {
            let mut stream = watcher(api, wc).boxed();
            let key = |o: &K| {
                format!(
                    "{kind} {}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                )
            };
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let rv = o.resource_version().unwrap_or_default();
                        let mut s = lock(&state);
                        let old = s.rv.insert(key(&o), rv.clone());
                        if s.armed && old.as_ref() != Some(&rv) {
                            s.total += 1;
                            let what = if old.is_none() { "created" } else { "changed" };
                            *s.by
                                .entry(format!("{kind} {what} by {}", last_manager(&o)))
                                .or_default() += 1;
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let mut s = lock(&state);
                        s.rv.remove(&key(&o));
                        if s.armed {
                            s.total += 1;
                            *s.by.entry(format!("{kind} deleted")).or_default() += 1;
                        }
                    }
                    Ok(watcher::Event::InitDone) => synced.store(true, Ordering::Release),
                    Ok(watcher::Event::Init) => {}
                    Err(e) => eprintln!("[bench] {kind} watch: {e}; retrying"),
                }
            }
        }));
    }

    /// Waits until every watch has listed its objects.
    pub async fn synced(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.synced.iter().all(|s| s.load(Ordering::Acquire)) {
            if Instant::now() > deadline {
                bail!("the resourceVersion watches did not sync within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts counting from zero.
    pub fn arm(&self) {
        let mut s = lock(&self.state);
        s.armed = true;
        s.total = 0;
        s.by.clear();
    }

    /// The changes counted since [`Changes::arm`]: the total and a breakdown by kind and manager.
    pub fn take(&self) -> (u64, BTreeMap<String, u64>) {
        let s = lock(&self.state);
        (s.total, s.by.clone())
    }

    /// How many objects the watches hold.
    pub fn objects(&self) -> usize {
        lock(&self.state).rv.len()
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// A notice as the watch saw it turn Effective.
#[derive(Clone, Debug)]
pub struct Flip {
    /// Wall-clock time the watch delivered the first status with Effective=True.
    pub observed: Timestamp,
    /// The condition's lastTransitionTime.
    pub transition: Option<Timestamp>,
    /// status.enforcedEffectiveAt.
    pub enforced: Option<Timestamp>,
}

#[derive(Default)]
struct NoticeState {
    /// When the operator's first status (servedAt recorded) was seen.
    processed: HashMap<String, Timestamp>,
    effective: HashMap<String, Flip>,
}

/// Watches DeprecationNotices: when each got its first status and when it turned Effective.
pub struct NoticeWatch {
    state: Arc<Mutex<NoticeState>>,
    notify: Arc<Notify>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl NoticeWatch {
    /// Starts watching the notices whose name starts with `prefix`.
    pub fn start(client: &Client, prefix: &str) -> Self {
        let state: Arc<Mutex<NoticeState>> = Default::default();
        let notify = Arc::new(Notify::new());
        let api: Api<DeprecationNotice> = Api::all(client.clone());
        let synced = Arc::new(AtomicBool::new(false));
        let (s, n, y, prefix) = (
            state.clone(),
            notify.clone(),
            synced.clone(),
            prefix.to_string(),
        );
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let now = Timestamp::now();
                if let Ok(watcher::Event::InitDone) = ev {
                    y.store(true, Ordering::Release);
                }
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let name = o.name_any();
                        let Some(st) = o.status.as_ref().filter(|_| name.starts_with(&prefix))
                        else {
                            continue;
                        };
                        let mut g = lock(&s);
                        if st.served_at.is_some() {
                            g.processed.entry(name.clone()).or_insert(now);
                        }
                        if let Some(c) = covenant::status::find(&st.conditions, "Effective")
                            && c.status == "True"
                        {
                            g.effective.entry(name).or_insert(Flip {
                                observed: now,
                                transition: Some(c.last_transition_time.0),
                                enforced: st.enforced_effective_at.as_ref().map(|t| t.0),
                            });
                            n.notify_waiters();
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("[bench] notice watch: {e}; retrying"),
                }
            }
        });
        NoticeWatch {
            state,
            notify,
            synced,
            task,
        }
    }

    /// Waits until the watch has listed the existing notices.
    pub async fn synced(&self) {
        while !self.synced.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many notices got their first status before `at`.
    pub fn processed_before(&self, at: Timestamp) -> usize {
        lock(&self.state)
            .processed
            .values()
            .filter(|t| **t < at)
            .count()
    }

    /// Waits until `n` notices are Effective; false on timeout.
    pub async fn wait_effective(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if lock(&self.state).effective.len() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), notified).await;
        }
    }

    /// Each Effective notice's flip.
    pub fn flips(&self) -> HashMap<String, Flip> {
        lock(&self.state).effective.clone()
    }
}

impl Drop for NoticeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
