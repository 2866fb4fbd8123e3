//! The account-wide quota (`accountQuota`): one cap on the sum over all of an account's namespaces.
//!
//! No webhook decides admissions. Each tenant namespace holds a ResourceQuota
//! [`SHARE_NAME`] (operator-owned, protected like the other managed quotas), and the API server
//! enforces each one exactly and atomically. The shares partition the cap: for every capped resource,
//! the sum of the shares' `hard` never exceeds the cap, so whatever races between namespaces, the API
//! server cannot admit more than the cap in total (each namespace's usage stays under its share's
//! `hard`). The operator only moves room between shares, as a pure function of the cap and each
//! share's `hard` and `used`: [`rebalance`].
//!
//! Moving room keeps the invariant after every single write: the writes that give room (lowering a
//! share, never below what the snapshot says it uses) come first, and only once they all succeeded
//! are the receivers raised. A lowering is written with the snapshot's resourceVersion as a
//! precondition, so a share whose usage grew meanwhile is recomputed rather than lowered under it.
//!
//! Who gets the free room (`cap − Σ used`): while some namespaces grew recently ("active"), they
//! take it, and every other namespace gets at most an even part of the free room rounded down (so
//! one busy namespace can take everything the idle ones hold); when none is active, the namespaces
//! whose usage reached their share (`used ≥ hard`: their next object would be refused) take it, and
//! the others keep up to an even part rounded up (so claimants at rest never pass the last units
//! back and forth). A namespace whose usage shrank recently ("giving": pods deleted, say) is no
//! claimant and keeps only an even part rounded down: what it freed goes to the namespaces that used
//! up their shares, even when their own activity lapsed while they were refused (without it, the
//! last units freed would stay with the namespace that freed them while the others wait for room
//! they cannot grow to signal). When the usage is above the
//! cap (the cap was lowered), every share's `hard` is 0 for that resource: nothing new is admitted
//! anywhere until the usage is at or under the cap again.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{ACCOUNT_LABEL, Account, AccountQuotaStatus, ResourceMap, SupportPackage};
use crate::model::account::MANAGED_BY;

/// The name of the per-namespace ResourceQuota that holds a namespace's share of the account's cap.
pub const SHARE_NAME: &str = "covenant-account-share";

/// The cap of `account` on `package`: the package's `accountQuota` with the account's entries on top
/// (`None` when neither sets any entry).
pub fn effective(account: &Account, package: Option<&SupportPackage>) -> Option<ResourceMap> {
    let mut cap = package
        .and_then(|p| p.spec.account_quota.clone())
        .unwrap_or_default();
    if let Some(o) = &account.spec.account_quota {
        cap.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    (!cap.is_empty()).then_some(cap)
}

/// The share a namespace starts with: every capped resource at 0, so that it holds no room until the
/// rebalancer gives it some (creating it never lets the shares add up to more than the cap).
pub fn new_share(account: &str, namespace: &str, cap: &ResourceMap) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some(SHARE_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                (ACCOUNT_LABEL.to_string(), account.to_string()),
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(
                cap.keys()
                    .map(|k| (k.clone(), Quantity("0".into())))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One namespace's share as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Share {
    /// The namespace.
    pub namespace: String,
    /// The share's `spec.hard`.
    pub hard: ResourceMap,
    /// The share's `status.used`.
    pub used: ResourceMap,
    /// The share's `status.hard`: what admission enforces (the quota controller copies `spec.hard`
    /// there after every change of it; until then the old value is in force).
    pub enforced: ResourceMap,
    /// Whether its usage grew recently (see the module's documentation).
    pub active: bool,
    /// Whether its usage shrank recently (see the module's documentation).
    pub giving: bool,
}

/// One write of a share's `hard`.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The namespace of the share.
    pub namespace: String,
    /// The whole new `hard` (only the capped resources).
    pub hard: ResourceMap,
}

/// The writes that move the account's room, in two steps: every `lower` (none raises any value), then
/// every `raise` (none lowers any value), each step only once the previous one fully succeeded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rebalance {
    /// Shares that give room or gain a newly capped resource: written first, each with a precondition.
    pub lower: Vec<Write>,
    /// Shares that receive room or lose a resource no longer capped: written only once no share
    /// enforces more than its `spec.hard` (empty, with `waiting`, until then).
    pub raise: Vec<Write>,
    /// Raises are due but wait until every lowering is in force (`status.hard`).
    pub waiting: bool,
    /// With `waiting`: the namespaces whose raise waits (the claimants the room is being moved to).
    pub deferred: Vec<String>,
}

impl Rebalance {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty() && self.raise.is_empty() && !self.waiting
    }
}

/// The smallest amount moved between shares of `resource`, in thousandths: a thousandth of a CPU
/// for CPU, one unit (a byte, an object) for everything else.
fn granule(resource: &str) -> i128 {
    if resource == "cpu" || resource.ends_with(".cpu") {
        1
    } else {
        1000
    }
}

/// `q` in thousandths of its unit, rounded up (`up`) or down; `None` if it is no quantity.
pub fn milli(q: &str, up: bool) -> Option<i128> {
    let s = q.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 30 || int.len() > 30 {
        return None;
    }
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    // value = digits * num / den, times 1000 for thousandths.
    let (mut num, mut den): (i128, i128) = (1000, 10i128.checked_pow(frac.len() as u32)?);
    let pow = |b: i128, e: u32| b.checked_pow(e);
    match suffix {
        "" => {}
        "n" => den = den.checked_mul(pow(10, 9)?)?,
        "u" => den = den.checked_mul(pow(10, 6)?)?,
        "m" => den = den.checked_mul(1000)?,
        "k" => num *= 1000,
        "M" => num = num.checked_mul(pow(10, 6)?)?,
        "G" => num = num.checked_mul(pow(10, 9)?)?,
        "T" => num = num.checked_mul(pow(10, 12)?)?,
        "P" => num = num.checked_mul(pow(10, 15)?)?,
        "E" => num = num.checked_mul(pow(10, 18)?)?,
        "Ki" => num = num.checked_mul(pow(1024, 1)?)?,
        "Mi" => num = num.checked_mul(pow(1024, 2)?)?,
        "Gi" => num = num.checked_mul(pow(1024, 3)?)?,
        "Ti" => num = num.checked_mul(pow(1024, 4)?)?,
        "Pi" => num = num.checked_mul(pow(1024, 5)?)?,
        "Ei" => num = num.checked_mul(pow(1024, 6)?)?,
        e if e.starts_with(['e', 'E']) => {
            let x: i32 = e[1..].parse().ok()?;
            if x >= 0 {
                num = num.checked_mul(pow(10, x as u32)?)?;
            } else {
                den = den.checked_mul(pow(10, x.unsigned_abs())?)?;
            }
        }
        _ => return None,
    }
    let n = digits.checked_mul(num)?;
    Some(if up { (n + den - 1) / den } else { n / den })
}

/// A quantity of `m` thousandths, written as Kubernetes writes it (`250m`, `4`).
pub fn format_milli(m: i128) -> Quantity {
    Quantity(if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    })
}

/// The room of one resource: the cap and each namespace's used and hard (`None`: not capped yet), in
/// granules. Returns each namespace's target `hard`.
fn allocate(
    cap: i128,
    used: &[i128],
    hard: &[Option<i128>],
    active: &[bool],
    giving: &[bool],
) -> Vec<i128> {
    let n = used.len();
    let total: i128 = used.iter().sum();
    if total > cap || n == 0 {
        return vec![0; n];
    }
    let free = cap - total;
    let starved: Vec<bool> = (0..n)
        .map(|i| hard[i].is_none_or(|h| used[i] >= h))
        .collect();
    let any_active = active.iter().any(|a| *a);
    let n_i = n as i128;
    let mut target = used.to_vec();
    let mut remaining = free;
    let claimant: Vec<bool> = if any_active {
        // The active namespaces take the room; every other one gets at most an even part of the free
        // room rounded down (an exhausted one gets that part, one with room keeps up to it).
        let part = free / n_i;
        for i in (0..n).filter(|&i| !active[i]) {
            let headroom = hard[i].map_or(0, |h| (h - used[i]).max(0));
            let keep = if starved[i] { part } else { headroom.min(part) }.min(remaining);
            target[i] += keep;
            remaining -= keep;
        }
        active.to_vec()
    } else {
        // At rest, the exhausted namespaces take the room; the others keep up to an even part of the
        // free room rounded up, so that the last units do not go back and forth between claimants;
        // one that just freed room keeps only an even part rounded down, and claims nothing.
        let (up, down) = ((free + n_i - 1) / n_i, free / n_i);
        for i in (0..n).filter(|&i| !starved[i] || giving[i]) {
            let headroom = hard[i].map_or(0, |h| (h - used[i]).max(0));
            let part = if giving[i] { down } else { up };
            let keep = headroom.min(part).min(remaining);
            target[i] += keep;
            remaining -= keep;
        }
        (0..n).map(|i| starved[i] && !giving[i]).collect()
    };
    // The claimants split the rest evenly; the remainder goes to them in name order.
    let order: Vec<usize> = (0..n).filter(|&i| claimant[i]).collect();
    if order.is_empty() {
        return target;
    }
    let k = order.len() as i128;
    let (even, mut extra) = (remaining / k, remaining % k);
    for i in order {
        target[i] += even;
        if extra > 0 {
            target[i] += 1;
            extra -= 1;
        }
    }
    target
}

/// Whether the shares need any write: a resource is uncapped in some share or capped where it no
/// longer should be, the shares hold more than the cap, the usage is over the cap with room left in a
/// share, or a share is exhausted (or its namespace active) while the account has room left elsewhere.
fn needs_work(cap: i128, used: &[i128], hard: &[Option<i128>], active: &[bool]) -> bool {
    let total: i128 = used.iter().sum();
    if hard.iter().any(Option::is_none) {
        return true;
    }
    let hards: i128 = hard.iter().flatten().sum();
    if hards > cap {
        return true;
    }
    if total > cap {
        return hard.iter().flatten().any(|h| *h > 0);
    }
    let exhausted = (0..used.len()).any(|i| hard[i].is_some_and(|h| used[i] >= h));
    let room = cap - total > 0;
    room && (exhausted || active.iter().any(|a| *a) && hards < cap)
}

/// The writes that bring the shares to their targets for `cap`, ordered so that the sum of the
/// shares' `hard` never exceeds the cap after any single write (when it did not before). Shares are
/// taken in namespace order; a quantity that does not parse counts as 0 used, or as no cap.
pub fn rebalance(cap: &ResourceMap, shares: &[Share]) -> Rebalance {
    let mut shares: Vec<&Share> = shares.iter().collect();
    shares.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    let active: Vec<bool> = shares.iter().map(|s| s.active).collect();
    let giving: Vec<bool> = shares.iter().map(|s| s.giving).collect();
    // The target per namespace and resource (in thousandths), for the resources that need work.
    let mut target: Vec<BTreeMap<String, i128>> = vec![BTreeMap::new(); shares.len()];
    let mut current: Vec<BTreeMap<String, i128>> = vec![BTreeMap::new(); shares.len()];
    for (resource, q) in cap {
        let Some(c) = milli(&q.0, false) else {
            continue;
        };
        let g = granule(resource);
        let used: Vec<i128> = shares
            .iter()
            .map(|s| {
                s.used
                    .get(resource)
                    .and_then(|u| milli(&u.0, true))
                    .map_or(0, |u| (u + g - 1) / g)
            })
            .collect();
        let hard: Vec<Option<i128>> = shares
            .iter()
            .map(|s| s.hard.get(resource).and_then(|h| milli(&h.0, false)))
            .collect();
        for (i, h) in hard.iter().enumerate() {
            if let Some(h) = h {
                current[i].insert(resource.clone(), *h);
            }
        }
        let hard_g: Vec<Option<i128>> = hard.iter().map(|h| h.map(|h| h / g)).collect();
        let cap_g = c / g;
        let t = if needs_work(cap_g, &used, &hard_g, &active) {
            allocate(cap_g, &used, &hard_g, &active, &giving)
                .into_iter()
                .map(|x| x * g)
                .collect()
        } else {
            // Nothing moves: every share keeps exactly what it has.
            hard.iter().map(|h| h.unwrap_or(0)).collect::<Vec<_>>()
        };
        for (i, x) in t.into_iter().enumerate() {
            target[i].insert(resource.clone(), x);
        }
    }
    let capped: BTreeSet<&String> = target
        .first()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    let mut plan = Rebalance::default();
    for (i, s) in shares.iter().enumerate() {
        // Step one: each value at most both the current and the target (a resource not capped yet
        // gets its target at once: from no limit, that is a lowering).
        let first: BTreeMap<String, i128> = target[i]
            .iter()
            .map(|(r, t)| (r.clone(), current[i].get(r).map_or(*t, |c| (*c).min(*t))))
            .collect();
        let stale_keys = s.hard.keys().any(|k| !capped.contains(k));
        let unparsed = s
            .hard
            .iter()
            .any(|(k, v)| capped.contains(k) && milli(&v.0, false).is_none());
        let lowers = first.iter().any(|(r, v)| current[i].get(r) != Some(v)) || unparsed;
        let kept_stale = |m: &BTreeMap<String, i128>| -> ResourceMap {
            m.iter()
                .map(|(r, v)| (r.clone(), format_milli(*v)))
                .collect()
        };
        if lowers {
            // Resources no longer capped are kept in the first step (dropping one raises it).
            let mut hard = kept_stale(&first);
            for (k, v) in &s.hard {
                if !capped.contains(k) {
                    hard.insert(k.clone(), v.clone());
                }
            }
            plan.lower.push(Write {
                namespace: s.namespace.clone(),
                hard,
            });
        }
        if first != target[i] || stale_keys {
            plan.raise.push(Write {
                namespace: s.namespace.clone(),
                hard: kept_stale(&target[i]),
            });
        }
    }
    // Admission enforces `status.hard`: a lowering counts only once it is there. Until then (a
    // lowering written now, or one the quota controller has not copied yet), nothing is raised.
    let in_force = plan.lower.is_empty()
        && shares.iter().all(|s| {
            capped.iter().all(|r| {
                let spec = s.hard.get(*r).and_then(|q| milli(&q.0, false));
                let enforced = s.enforced.get(*r).and_then(|q| milli(&q.0, false));
                match (spec, enforced) {
                    // Not in status.hard yet: admission does not restrict it at all.
                    (_, None) => false,
                    (Some(spec), Some(e)) => e <= spec,
                    (None, Some(_)) => false,
                }
            })
        });
    if !in_force && !plan.raise.is_empty() {
        plan.deferred = plan.raise.drain(..).map(|w| w.namespace).collect();
        plan.waiting = true;
    }
    plan
}

/// The cap the shares divide once the room still held by namespaces that lost their share is taken
/// out: a namespace being deleted loses its share (the namespace controller deletes it with the rest)
/// before what it holds is gone (pods in their grace period, objects kept by finalizers), and that
/// room must not go to the other namespaces meanwhile. `held`: per such namespace, its usage last seen
/// (thousandths per resource), or `None` when it was never seen (the whole cap is held until it goes).
pub fn less_held(cap: &ResourceMap, held: &[Option<BTreeMap<String, i128>>]) -> ResourceMap {
    cap.iter()
        .map(|(r, q)| {
            let c = milli(&q.0, false).unwrap_or(0);
            let taken: i128 = held
                .iter()
                .map(|h| h.as_ref().map_or(c, |h| h.get(r).copied().unwrap_or(0)))
                .sum();
            (r.clone(), format_milli((c - taken).max(0)))
        })
        .collect()
}

/// The account's status: the cap and the sum of what its namespaces use, per capped resource.
pub fn status(cap: &ResourceMap, shares: &[Share]) -> AccountQuotaStatus {
    let used = cap
        .keys()
        .map(|r| {
            let sum: i128 = shares
                .iter()
                .filter_map(|s| s.used.get(r).and_then(|u| milli(&u.0, true)))
                .sum();
            (r.clone(), format_milli(sum))
        })
        .collect();
    AccountQuotaStatus {
        hard: cap.clone(),
        used,
    }
}

/// The resources of `cap` on which the account is full (its namespaces use all of it, or more) while a
/// namespace has exhausted its share: the reason a refusal stays a refusal.
pub fn exhausted(cap: &ResourceMap, shares: &[Share]) -> Vec<String> {
    cap.iter()
        .filter(|(r, c)| {
            let Some(c) = milli(&c.0, false) else {
                return false;
            };
            let used: i128 = shares
                .iter()
                .filter_map(|s| s.used.get(*r).and_then(|u| milli(&u.0, true)))
                .sum();
            let g = granule(r);
            used + g > c
        })
        .map(|(r, _)| r.clone())
        .collect()
}

/// Per resource on which some namespace has used up its share while the account still has room:
/// the namespaces that hold that room and how much (`resource`, [(namespace, room)]). At rest these
/// are the last units, fewer than the namespaces that want them, and they stay where they are (moving
/// them would only refuse someone else): this says where they are.
pub fn held(cap: &ResourceMap, shares: &[Share]) -> Vec<(String, Vec<(String, Quantity)>)> {
    let mut out = Vec::new();
    for (r, c) in cap {
        let Some(c) = milli(&c.0, false) else {
            continue;
        };
        let used = |s: &Share| s.used.get(r).and_then(|u| milli(&u.0, true)).unwrap_or(0);
        let hard = |s: &Share| s.hard.get(r).and_then(|h| milli(&h.0, false));
        let total: i128 = shares.iter().map(used).sum();
        let starved = shares.iter().any(|s| hard(s).is_none_or(|h| used(s) >= h));
        if total >= c || !starved {
            continue;
        }
        let holders: Vec<(String, Quantity)> = shares
            .iter()
            .filter_map(|s| {
                let room = hard(s)? - used(s);
                (room > 0).then(|| (s.namespace.clone(), format_milli(room)))
            })
            .collect();
        if !holders.is_empty() {
            out.push((r.clone(), holders));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> ResourceMap {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    fn share(ns: &str, hard: &[(&str, &str)], used: &[(&str, &str)], active: bool) -> Share {
        Share {
            namespace: ns.into(),
            hard: map(hard),
            used: map(used),
            enforced: map(hard),
            active,
            giving: false,
        }
    }

    fn value(m: &ResourceMap, r: &str) -> Option<i128> {
        m.get(r).and_then(|q| milli(&q.0, false))
    }

    /// Runs the rebalancer to rest as the operator does: each round's writes one by one, then the
    /// quota controller copies every `spec.hard` to `status.hard` (the enforced value), then the
    /// next round. After every single write, for every capped resource, the sum over the shares of
    /// the larger of the written and the enforced `hard` (what admission may enforce at that moment,
    /// whichever copy the quota controller made last) is at most the cap (or, when it was above the
    /// cap before, never grew); no lowering raises a value and no raise lowers one; nothing is
    /// negative. Returns the shares at rest.
    fn settle(cap: &ResourceMap, shares: &[Share]) -> Vec<Share> {
        let mut now: Vec<Share> = shares.to_vec();
        let worst = |now: &[Share], r: &str| -> Option<i128> {
            now.iter()
                .map(|s| match (value(&s.hard, r), value(&s.enforced, r)) {
                    (Some(h), Some(e)) => Some(h.max(e)),
                    (Some(h), None) => Some(h),
                    _ => None,
                })
                .sum::<Option<i128>>()
        };
        let before: BTreeMap<String, Option<i128>> =
            cap.keys().map(|r| (r.clone(), worst(&now, r))).collect();
        for _round in 0..4 {
            let plan = rebalance(cap, &now);
            if plan.is_empty() {
                break;
            }
            assert!(
                plan.lower.is_empty() || plan.raise.is_empty(),
                "raises wait for the lowerings to be in force"
            );
            for (step, writes) in [(0, &plan.lower), (1, &plan.raise)] {
                for w in writes {
                    let s = now
                        .iter_mut()
                        .find(|s| s.namespace == w.namespace)
                        .expect("a write names a share");
                    for r in cap.keys() {
                        let (old, new) = (value(&s.hard, r), value(&w.hard, r));
                        if step == 0 {
                            assert!(
                                old.is_none() || new <= old,
                                "{}: a lowering raises {r}",
                                w.namespace
                            );
                        } else {
                            assert!(new >= old, "{}: a raise lowers {r}", w.namespace);
                        }
                        assert!(new.is_some_and(|v| v >= 0), "{r} is never negative");
                    }
                    s.hard = w.hard.clone();
                    for (r, c) in cap {
                        let c = milli(&c.0, false).expect("cap");
                        if let Some(total) = worst(&now, r) {
                            let limit = match before[r] {
                                Some(b) if b > c => b,
                                _ => c,
                            };
                            assert!(
                                total <= limit,
                                "after writing {}: the shares of {r} may enforce {total} > {limit}",
                                w.namespace
                            );
                        }
                    }
                }
            }
            for s in &mut now {
                s.enforced = s.hard.clone();
            }
        }
        assert!(rebalance(cap, &now).is_empty(), "not at rest: {now:?}");
        for (r, c) in cap {
            let total = worst(&now, r).expect("every share capped in the end");
            assert!(
                total <= milli(&c.0, false).expect("cap"),
                "{r} over the cap"
            );
        }
        now
    }

    fn hard_of(shares: &[Share], ns: &str, r: &str) -> i128 {
        let s = shares.iter().find(|s| s.namespace == ns).expect("share");
        value(&s.hard, r).expect("capped") / 1000
    }

    #[test]
    fn quantities_are_read_exactly_in_thousandths() {
        for (q, up, want) in [
            ("4", false, 4000),
            ("250m", false, 250),
            ("1.5", false, 1500),
            ("1Gi", false, 1024 * 1024 * 1024 * 1000),
            ("2k", false, 2_000_000),
            ("1e3", false, 1_000_000),
            ("1n", true, 1),
            ("1n", false, 0),
            ("0.0005", true, 1),
        ] {
            assert_eq!(milli(q, up), Some(want), "{q}");
        }
        assert_eq!(milli("abc", false), None);
        assert_eq!(format_milli(4000).0, "4");
        assert_eq!(format_milli(250).0, "250m");
    }

    #[test]
    fn new_shares_split_the_cap_evenly_and_never_add_up_to_more() {
        let cap = map(&[("pods", "10"), ("requests.cpu", "1")]);
        let shares: Vec<Share> = ["a", "b", "c"]
            .iter()
            .map(|ns| share(ns, &[("pods", "0"), ("requests.cpu", "0")], &[], false))
            .collect();
        let plan = rebalance(&cap, &shares);
        assert!(plan.lower.is_empty(), "from nothing, only raises");
        let end = settle(&cap, &shares);
        let pods: Vec<i128> = ["a", "b", "c"]
            .iter()
            .map(|n| hard_of(&end, n, "pods"))
            .collect();
        assert_eq!(pods, vec![4, 3, 3]);
        let cpu: Vec<Option<i128>> = end.iter().map(|s| value(&s.hard, "requests.cpu")).collect();
        assert_eq!(cpu, vec![Some(334), Some(333), Some(333)]);
        // At rest (settle checks it), the plan on its own result writes nothing.
        assert!(rebalance(&cap, &end).is_empty());
    }

    #[test]
    fn a_share_without_the_cap_yet_is_lowered_first() {
        // A namespace whose share was created before the cap named pods has no pods limit: it gets
        // one in the first step, before anybody is raised.
        let cap = map(&[("pods", "6")]);
        let shares = vec![
            share("a", &[], &[("pods", "1")], false),
            share("b", &[("pods", "2")], &[("pods", "2")], false),
        ];
        let plan = rebalance(&cap, &shares);
        assert_eq!(plan.lower.len(), 1);
        assert_eq!(plan.lower[0].namespace, "a");
        assert!(plan.raise.is_empty(), "nothing is raised in the same round");
        settle(&cap, &shares);
    }

    #[test]
    fn one_busy_namespace_takes_all_the_room_of_the_idle_ones() {
        let cap = map(&[("pods", "6")]);
        let mut shares: Vec<Share> = ["a", "b", "c"]
            .iter()
            .map(|ns| share(ns, &[("pods", "0")], &[], false))
            .collect();
        shares = settle(&cap, &shares);
        // "b" creates pods until refused, each refusal followed by the operator's rebalance.
        let mut used = 0;
        for _ in 0..10 {
            let hard = hard_of(&shares, "b", "pods");
            used = hard; // every pod up to its share is admitted
            let s = shares.iter_mut().find(|s| s.namespace == "b").unwrap();
            s.used = map(&[("pods", &used.to_string())]);
            s.active = true;
            shares = settle(&cap, &shares);
        }
        assert_eq!(used, 6, "b reaches the whole cap");
        assert_eq!(
            hard_of(&shares, "a", "pods") + hard_of(&shares, "c", "pods"),
            0
        );
    }

    #[test]
    fn claimants_at_rest_do_not_pass_the_last_unit_back_and_forth() {
        // a holds the one free unit; b and c are exhausted; nobody grows.
        let cap = map(&[("pods", "10")]);
        let shares = vec![
            share("a", &[("pods", "6")], &[("pods", "5")], false),
            share("b", &[("pods", "3")], &[("pods", "3")], false),
            share("c", &[("pods", "1")], &[("pods", "1")], false),
        ];
        assert!(rebalance(&cap, &shares).is_empty());
        // The same when exhausted namespaces are the only ones with room to take: one pass settles.
        let shares = vec![
            share("a", &[("pods", "5")], &[("pods", "5")], false),
            share("b", &[("pods", "3")], &[("pods", "3")], false),
            share("c", &[("pods", "1")], &[("pods", "1")], false),
        ];
        let end = settle(&cap, &shares);
        assert!(rebalance(&cap, &end).is_empty(), "{end:?}");
    }

    #[test]
    fn an_active_claimant_keeps_what_it_was_given() {
        let cap = map(&[("pods", "10")]);
        let shares = vec![
            share("a", &[("pods", "5")], &[("pods", "5")], false),
            share("b", &[("pods", "4")], &[("pods", "3")], true),
            share("c", &[("pods", "1")], &[("pods", "1")], false),
        ];
        assert!(rebalance(&cap, &shares).is_empty());
    }

    #[test]
    fn a_cap_below_usage_admits_nothing_anywhere() {
        let cap = map(&[("pods", "4")]);
        let shares = vec![
            share("a", &[("pods", "6")], &[("pods", "6")], false),
            share("b", &[("pods", "4")], &[("pods", "2")], false),
        ];
        let plan = rebalance(&cap, &shares);
        assert!(plan.raise.is_empty());
        let end = settle(&cap, &shares);
        assert_eq!(hard_of(&end, "a", "pods"), 0);
        assert_eq!(hard_of(&end, "b", "pods"), 0);
        // Still over (one pod gone), then at the cap: still nothing for anyone.
        let mut s = end.clone();
        s[0].used = map(&[("pods", "3")]);
        assert!(rebalance(&cap, &s).is_empty());
        s[0].used = map(&[("pods", "2")]);
        assert!(rebalance(&cap, &s).is_empty());
        // Under the cap: the freed unit is there again, and no more.
        s[0].used = map(&[("pods", "1")]);
        let end = settle(&cap, &s);
        let room: i128 = ["a", "b"]
            .iter()
            .map(|n| hard_of(&end, n, "pods"))
            .sum::<i128>()
            - 3;
        assert_eq!(room, 1, "{end:?}");
    }

    #[test]
    fn a_lowered_cap_above_usage_lowers_first_then_raises() {
        let cap = map(&[("pods", "8")]);
        let shares = vec![
            share("a", &[("pods", "2")], &[("pods", "2")], true),
            share("b", &[("pods", "10")], &[("pods", "1")], false),
        ];
        let plan = rebalance(&cap, &shares);
        assert_eq!(plan.lower[0].namespace, "b");
        assert!(plan.raise.is_empty() && plan.waiting);
        let end = settle(&cap, &shares);
        assert!(hard_of(&end, "a", "pods") > 2);
    }

    #[test]
    fn nothing_is_raised_while_a_lowering_is_not_in_force() {
        // b was lowered from 5 to 1, but the quota controller has not copied it to status.hard yet:
        // admission still lets b use 5, so a may not be raised yet.
        let cap = map(&[("pods", "6")]);
        let mut shares = vec![
            share("a", &[("pods", "1")], &[("pods", "1")], true),
            share("b", &[("pods", "1")], &[], false),
        ];
        shares[1].enforced = map(&[("pods", "5")]);
        let plan = rebalance(&cap, &shares);
        assert!(plan.lower.is_empty() && plan.raise.is_empty() && plan.waiting);
        assert_eq!(plan.deferred, vec!["a".to_string()], "a's raise waits");
        shares[1].enforced = map(&[("pods", "1")]);
        let plan = rebalance(&cap, &shares);
        assert!(!plan.waiting);
        assert_eq!(plan.raise.len(), 1);
        assert_eq!(plan.raise[0].namespace, "a");
    }

    #[test]
    fn a_resource_no_longer_capped_is_dropped_last() {
        let cap = map(&[("pods", "4")]);
        let shares = vec![share("a", &[("pods", "4"), ("secrets", "9")], &[], false)];
        let plan = rebalance(&cap, &shares);
        assert!(plan.lower.is_empty());
        assert_eq!(plan.raise.len(), 1);
        assert_eq!(plan.raise[0].hard, map(&[("pods", "4")]));
    }

    #[test]
    fn every_order_of_usage_keeps_the_sum_under_the_cap() {
        // A small exhaustive table: 3 namespaces, every used/hard pair in 0..=4, cap 6, with and
        // without activity; the invariant holds after every write, and a second pass from the end
        // state (nothing changed meanwhile) writes nothing.
        let cap = map(&[("pods", "6")]);
        let mut cases = 0;
        for code in 0..(5u32.pow(6)) {
            let mut c = code;
            let mut next = || {
                let v = c % 5;
                c /= 5;
                v
            };
            let (h, u): (Vec<u32>, Vec<u32>) = (0..3).map(|_| (next(), next())).unzip();
            if h.iter().sum::<u32>() > 6 || (0..3).any(|i| u[i] > h[i]) {
                continue;
            }
            for active in [[false, false, false], [true, false, false]] {
                let shares: Vec<Share> = (0..3)
                    .map(|i| Share {
                        namespace: format!("n{i}"),
                        hard: map(&[("pods", &h[i].to_string())]),
                        used: map(&[("pods", &u[i].to_string())]),
                        enforced: map(&[("pods", &h[i].to_string())]),
                        active: active[i],
                        giving: false,
                    })
                    .collect();
                let end = settle(&cap, &shares);
                assert!(
                    rebalance(&cap, &end).is_empty(),
                    "not settled: {shares:?} -> {end:?}"
                );
                cases += 1;
            }
        }
        assert!(cases > 100);
    }

    #[test]
    fn the_room_a_namespace_frees_goes_to_the_exhausted_ones_at_rest_and_stays_there() {
        // The cap is used up in b and c, which stopped growing (refused, so not active); a frees
        // its pods. What it freed goes to them, not back to a, even where it is one unit for two
        // claimants; and once a's shrinking is no longer recent, nothing moves again.
        let cap = map(&[("pods", "5")]);
        for freed in 1..=3 {
            let left = 3 - freed;
            let mut shares = vec![
                share("a", &[("pods", "3")], &[("pods", &left.to_string())], false),
                share("b", &[("pods", "1")], &[("pods", "1")], false),
                share("c", &[("pods", "1")], &[("pods", "1")], false),
            ];
            shares[0].giving = true;
            let end = settle(&cap, &shares);
            // a keeps an even part of what it freed rounded down; the rest went to b and c.
            let to_others = hard_of(&end, "b", "pods") + hard_of(&end, "c", "pods") - 2;
            assert_eq!(to_others, freed - freed / 3, "freed {freed}: {end:?}");
            assert_eq!(hard_of(&end, "a", "pods"), left + freed / 3, "{end:?}");
            let mut rest = end.clone();
            for s in &mut rest {
                s.giving = false;
            }
            assert!(rebalance(&cap, &rest).is_empty(), "at rest: {rest:?}");
        }
    }

    #[test]
    fn where_the_last_units_are_is_said() {
        let cap = map(&[("pods", "10")]);
        let shares = vec![
            share("a", &[("pods", "6")], &[("pods", "5")], false),
            share("b", &[("pods", "3")], &[("pods", "3")], false),
            share("c", &[("pods", "1")], &[("pods", "1")], false),
        ];
        let h = held(&cap, &shares);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "pods");
        assert_eq!(h[0].1, vec![("a".to_string(), Quantity("1".into()))]);
        // Nobody wants room: nothing to say.
        let idle = vec![share("a", &[("pods", "6")], &[("pods", "5")], false)];
        assert!(held(&cap, &idle).is_empty());
    }

    #[test]
    fn status_sums_usage_over_the_namespaces() {
        let cap = map(&[("pods", "10"), ("requests.memory", "1Gi")]);
        let shares = vec![
            share(
                "a",
                &[],
                &[("pods", "2"), ("requests.memory", "512Mi")],
                false,
            ),
            share(
                "b",
                &[],
                &[("pods", "3"), ("requests.memory", "256Mi")],
                false,
            ),
        ];
        let st = status(&cap, &shares);
        assert_eq!(st.used["pods"].0, "5");
        assert_eq!(
            milli(&st.used["requests.memory"].0, false),
            Some(768 * 1024 * 1024 * 1000)
        );
        assert_eq!(st.hard, cap);
    }

    /// Room held by namespaces that lost their share comes out of the cap; unseen, all of it.
    #[test]
    fn held_room_is_not_divided() {
        let cap = map(&[("secrets", "4"), ("requests.cpu", "2")]);
        let seen: BTreeMap<String, i128> = [("secrets".to_string(), 3000)].into_iter().collect();
        let left = less_held(&cap, &[Some(seen.clone())]);
        assert_eq!(left, map(&[("secrets", "1"), ("requests.cpu", "2")]));
        let left = less_held(&cap, &[Some(seen), None]);
        assert_eq!(left, map(&[("secrets", "0"), ("requests.cpu", "0")]));
        assert_eq!(less_held(&cap, &[]), cap);
    }
}
