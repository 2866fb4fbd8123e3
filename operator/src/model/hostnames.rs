//! Hostnames across tenants (pure): whatever the package says, no hostname is held by two tenants, and
//! the first claimant keeps it.
//!
//! The API server cannot see every tenant's hosts in the one object it admits, so the operator records
//! them: per tenant namespace, in the operator's namespace, one ConfigMap of the hosts its Ingresses
//! hold and one of the hosts its routes hold ([`records`]), which the ValidatingAdmissionPolicy
//! `covenant-hostnames` (deploy/hostnames-policy.yaml) reads as params and checks every Ingress and
//! route of another account against: one claim space for every kind. This module decides, from the
//! cached objects and the claims already recorded, who holds what (the recorded holder first, then the
//! earliest `creationTimestamp`, ties by UID) and which objects were admitted for a host someone else
//! holds (inside the window before a claim is recorded): those are reported on their Account, never
//! deleted.
//!
//! What is claimed, per kind (the table below is the one place a kind is added):
//!
//! | kind | hosts | wired |
//! |---|---|---|
//! | `networking.k8s.io/v1` Ingress | `spec.rules[].host` (a rule without host, and `spec.defaultBackend`: the catch-all) | yes |
//! | `gateway.networking.k8s.io/v1` HTTPRoute | `spec.hostnames[]` (none: the catch-all) | yes, where served (`controller::gateway`) |
//! | `gateway.networking.k8s.io/v1` GRPCRoute | `spec.hostnames[]` (none: the catch-all) | yes, where served (`controller::gateway`) |
//! | `gateway.networking.k8s.io/v1` Gateway | `spec.listeners[].hostname` (a listener without one claims nothing) | yes, where served (`controller::gateway`) |
//!
//! An Ingress wildcard matches one label (as Ingress controllers match it): `*.example.com` matches
//! `shop.example.com`, not `a.shop.example.com`. A Gateway API wildcard (of a route or a Gateway
//! listener) matches any depth, and where Gateways of a class share a data plane the most specific
//! listener takes a request whoever's routes the others hold, so precedence protects no one across
//! tenants: a Gateway API wildcard `*.example.com` overlaps every host and wildcard under
//! `example.com` at any depth, whichever kind holds them ([`conflicts`]).
//!
//! Keys of the claims ConfigMaps (a ConfigMap key may hold `[-._a-zA-Z0-9]`, and hostnames never hold
//! `_`, so every key with `_` is unambiguous):
//! - `shop.example.com`: the concrete host;
//! - `_.example.com`: the wildcard `*.example.com`;
//! - `_in.example.com`: some concrete host one label under `example.com` is held (so that a wildcard
//!   `*.example.com` of another tenant is refused without listing every key);
//! - `_catch-all`: a rule without host (or a default backend), which receives every host nobody names.

use std::collections::{BTreeMap, BTreeSet};

/// The key of the catch-all claim (rules without host).
pub const CATCH_ALL: &str = "_catch-all";
/// The prefix of the keys saying a concrete host under a domain is held.
pub const UNDER: &str = "_in.";
/// The label of the claims ConfigMaps (value [`CLAIMS`]); they also carry the account and namespace.
pub const CLAIMS_LABEL: &str = "covenant.dev/hostnames";
/// The value of [`CLAIMS_LABEL`].
pub const CLAIMS: &str = "claims";
/// The label naming the tenant namespace whose claims a ConfigMap records.
pub const NAMESPACE_LABEL: &str = "covenant.dev/namespace";
/// The longest ConfigMap key the API server accepts (a DNS subdomain's length).
pub const MAX_KEY: usize = 253;
/// The prefix of the names of the ConfigMaps of the hosts a namespace's Ingresses hold
/// (`covenant-hostnames-<namespace>`).
pub const CONFIGMAP_PREFIX: &str = "covenant-hostnames-";
/// The prefix of the names of the ConfigMaps of the hosts a namespace's routes hold
/// (`covenant-route-hostnames-<namespace>`; no namespace name makes one prefix the other's).
pub const ROUTE_CONFIGMAP_PREFIX: &str = "covenant-route-hostnames-";
/// The prefix of the names of the ConfigMaps of the hosts a namespace's Gateways' listeners hold
/// (`covenant-gateway-hostnames-<namespace>`).
pub const GATEWAY_CONFIGMAP_PREFIX: &str = "covenant-gateway-hostnames-";
/// The record of the hosts a namespace's Gateway API routes hold (the others are `"Ingress"` and
/// [`GATEWAYS`]).
pub const ROUTES: &str = "routes";
/// The record of the hosts a namespace's Gateways' listeners hold.
pub const GATEWAYS: &str = "gateways";
/// The condition on an Account that reports Ingresses admitted for a host another tenant holds.
pub const CONDITION: &str = "HostnamesHeld";
/// The field manager of what this controller writes (its own, so the account controller's status
/// apply and this one's never remove each other's condition).
pub const FIELD_MANAGER: &str = "covenant-hostnames";

/// One object that claims hosts: an Ingress or a route in a tenant namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Its kind (a row of the table of claimable kinds above).
    pub kind: &'static str,
    /// The account of its namespace.
    pub account: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID (breaks ties of `created`).
    pub uid: String,
    /// Its `creationTimestamp` (seconds).
    pub created: jiff::Timestamp,
    /// Its hosts as the object says them (`""` for the catch-all, `*.x` for a wildcard).
    pub hosts: Vec<String>,
}

/// A host an object claims that another account holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lost {
    /// The object's kind.
    pub kind: &'static str,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The host, as the object says it.
    pub host: String,
}

/// Who holds what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The hosts each tenant namespace holds, by namespace: (account, hosts).
    pub held: BTreeMap<String, (String, BTreeSet<String>)>,
    /// The hosts each account's objects claim that another account holds.
    pub lost: BTreeMap<String, BTreeSet<Lost>>,
}

/// `host` as a claims key ([`keys`] adds the `_in.` key of a concrete host).
pub fn key(host: &str) -> String {
    if host.is_empty() {
        CATCH_ALL.to_string()
    } else if let Some(rest) = host.strip_prefix('*') {
        format!("_{rest}")
    } else {
        host.to_string()
    }
}

/// The host a claims key stands for (`None` for the `_in.` keys, which are derived).
pub fn host_of(key: &str) -> Option<String> {
    if key == CATCH_ALL {
        Some(String::new())
    } else if key.starts_with(UNDER) {
        None
    } else if let Some(rest) = key.strip_prefix('_') {
        Some(format!("*{rest}"))
    } else {
        Some(key.to_string())
    }
}

/// The domain one label above a concrete host (`shop.example.com` → `.example.com`), if any.
fn parent(host: &str) -> Option<&str> {
    host.find('.').map(|i| &host[i..])
}

/// Every key that records `hosts` held (what the policy looks up).
///
/// A host's own key is never longer than the host (at most 253 characters, as a key may be), but the
/// `_in.` key of a concrete host of 252 or 253 characters whose first label is one character would be
/// longer: it is left out (the API server would refuse the whole ConfigMap, leaving every host of the
/// namespace unrecorded). What it would refuse — a wildcard of another tenant over such a host, itself
/// 252 characters or more — is then admitted and settled by the operator like a race (reported, the
/// host staying with its holder).
pub fn keys<'a>(hosts: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for h in hosts {
        out.insert(key(h));
        if !h.is_empty()
            && !h.starts_with('*')
            && let Some(p) = parent(h)
        {
            let under = format!("_in{p}");
            if under.len() <= MAX_KEY {
                out.insert(under);
            }
        }
    }
    out
}

/// Whether a kind's wildcards match hosts at any depth (the Gateway API's) rather than one label
/// (Ingress).
pub fn deep(kind: &str) -> bool {
    kind != "Ingress"
}

/// The domains above a host, as suffixes from each of its dots: `a.b.example` → `.b.example`,
/// `.example`; `*.b.example` → `.b.example`, `.example`.
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.').map(|(i, _)| &host[i..])
}

/// Whether a request can reach both `a` (claimed by an object whose kind's wildcards are `a_deep`:
/// see [`deep`]) and `b` (likewise): the same host; a wildcard and a concrete host one label under it;
/// a Gateway API wildcard `*.x` and any host or wildcard under `x` at any depth. The catch-all
/// overlaps only itself (named hosts take precedence over it).
pub fn conflicts(a: &str, a_deep: bool, b: &str, b_deep: bool) -> bool {
    if a == b {
        return true;
    }
    let one_label = |w: &str, h: &str| {
        w.strip_prefix('*')
            .is_some_and(|suffix| !h.starts_with('*') && parent(h) == Some(suffix))
    };
    // A deep wildcard `*.x` against a named host or wildcard with `.x` among its domains.
    let any_depth = |w: &str, w_deep: bool, h: &str| {
        w_deep
            && w.strip_prefix('*')
                .is_some_and(|suffix| !h.is_empty() && suffixes(h).any(|s| s == suffix))
    };
    one_label(a, b) || one_label(b, a) || any_depth(a, a_deep, b) || any_depth(b, b_deep, a)
}

/// Decides who holds every claimed host: a host already `recorded` for an account that still claims
/// it stays with that account; then claims in order of `created` (ties by UID) take what no other
/// account holds. A claim of a host that [`conflicts`] with one another account holds is lost: it
/// holds nothing, and is reported. An account's own objects never conflict with each other.
pub fn decide(claims: &[Claim], recorded: &BTreeMap<String, String>) -> Decision {
    let mut order: Vec<(bool, jiff::Timestamp, &str, &Claim, &str)> = Vec::new();
    for c in claims {
        let hosts: BTreeSet<&str> = c.hosts.iter().map(String::as_str).collect();
        for h in hosts {
            let kept = recorded.get(h).is_some_and(|a| *a == c.account);
            order.push((!kept, c.created, c.uid.as_str(), c, h));
        }
    }
    order.sort_by(|a, b| (a.0, a.1, a.2, a.4).cmp(&(b.0, b.1, b.2, b.4)));
    // What is held, indexed for each rule of `conflicts`: the holder of each host; the accounts
    // holding a concrete host one label under each domain; those holding any host under each domain
    // (at any depth); and those holding each Gateway API wildcard (by its domain).
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    let mut under: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut below: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut deep_wild: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut d = Decision::default();
    for (_, _, _, c, h) in order {
        let account = c.account.as_str();
        let other = |a: &&str| *a != account;
        let others = |m: &BTreeMap<&str, BTreeSet<&str>>, k: &str| {
            m.get(k).is_some_and(|s| s.iter().any(|a| *a != account))
        };
        let taken = holder.get(h).is_some_and(other)
            || match h.strip_prefix('*') {
                Some(suffix) => {
                    others(&under, suffix) || (deep(c.kind) && others(&below, suffix))
                }
                None => {
                    !h.is_empty()
                        && parent(h)
                            .and_then(|p| holder.get(format!("*{p}").as_str()))
                            .is_some_and(other)
                }
            }
            // A Gateway API wildcard of another account two labels or more above (one label: above).
            || suffixes(h).skip(1).any(|s| others(&deep_wild, s));
        if taken {
            d.lost.entry(c.account.clone()).or_default().insert(Lost {
                kind: c.kind,
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                host: h.to_string(),
            });
            continue;
        }
        holder.entry(h).or_insert(account);
        if !h.is_empty()
            && !h.starts_with('*')
            && let Some(p) = parent(h)
        {
            under.entry(p).or_default().insert(account);
        }
        for s in suffixes(h) {
            below.entry(s).or_default().insert(account);
        }
        if deep(c.kind)
            && let Some(suffix) = h.strip_prefix('*')
        {
            deep_wild.entry(suffix).or_default().insert(account);
        }
        d.held
            .entry(c.namespace.clone())
            .or_insert_with(|| (c.account.clone(), BTreeSet::new()))
            .1
            .insert(h.to_string());
    }
    d
}

/// Which record holds what a claim of `kind` holds: `"Ingress"`, [`GATEWAYS`] or [`ROUTES`].
pub fn record_kind(kind: &str) -> &'static str {
    match kind {
        "Ingress" => "Ingress",
        "Gateway" => GATEWAYS,
        _ => ROUTES,
    }
}

/// What each record holds: by (namespace, [`record_kind`]), the account and the hosts held there that
/// the namespace's objects of that record's kinds claim. A host an Ingress and a route of one namespace
/// both claim is in both records; each record is bounded by its own kinds' quotas.
pub fn records(
    claims: &[Claim],
    decision: &Decision,
) -> BTreeMap<(String, &'static str), (String, BTreeSet<String>)> {
    let mut out: BTreeMap<(String, &'static str), (String, BTreeSet<String>)> = BTreeMap::new();
    for c in claims {
        let Some((account, held)) = decision.held.get(&c.namespace) else {
            continue;
        };
        for h in c.hosts.iter().filter(|h| held.contains(*h)) {
            out.entry((c.namespace.clone(), record_kind(c.kind)))
                .or_insert_with(|| (account.clone(), BTreeSet::new()))
                .1
                .insert(h.clone());
        }
    }
    out
}

/// What an Account's `HostnamesHeld` condition says: `None` when nothing of it is lost; else the
/// message naming its own objects and hosts (never who holds them: tenants learn nothing of other
/// tenants).
pub fn lost_message(lost: &BTreeSet<Lost>) -> Option<String> {
    if lost.is_empty() {
        return None;
    }
    let shown: Vec<String> = lost
        .iter()
        .take(10)
        .map(|l| {
            let what = if l.host.is_empty() && l.kind == "Ingress" {
                "a rule without host (the catch-all)".to_string()
            } else if l.host.is_empty() {
                "no hostnames (the catch-all)".to_string()
            } else {
                format!("host {}", l.host)
            };
            format!("{} {}/{}: {what}", l.kind, l.namespace, l.name)
        })
        .collect();
    let more = match lost.len() {
        n if n > 10 => format!(" (and {} more)", n - 10),
        _ => String::new(),
    };
    Some(format!(
        "{}{more}: held by another tenant, which claimed it first; traffic for it is not yours. \
         Covenant deletes nothing: remove the host from these objects (or delete them) and choose \
         another host",
        shown.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(account: &str, ns: &str, name: &str, at: i64, hosts: &[&str]) -> Claim {
        Claim {
            kind: "Ingress",
            account: account.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            created: jiff::Timestamp::from_second(at).unwrap(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn held(d: &Decision, ns: &str) -> Vec<String> {
        d.held
            .get(ns)
            .map(|(_, h)| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn keys_encode_wildcards_and_the_catch_all_and_decode_back() {
        assert_eq!(key("*.example.com"), "_.example.com");
        assert_eq!(key(""), CATCH_ALL);
        assert_eq!(key("shop.example.com"), "shop.example.com");
        for h in ["*.example.com", "", "shop.example.com"] {
            assert_eq!(host_of(&key(h)).as_deref(), Some(h));
        }
        assert_eq!(host_of("_in.example.com"), None);
        let hosts = ["shop.example.com".to_string(), "*.b.example".to_string()];
        let k: Vec<String> = keys(&hosts).into_iter().collect();
        assert_eq!(
            k,
            ["_.b.example", "_in.example.com", "shop.example.com"].map(String::from)
        );
    }

    #[test]
    fn every_key_of_a_host_as_long_as_an_ingress_allows_is_a_valid_configmap_key() {
        // 253 and 252 characters, the first label one character: `_in.` + the domain would be 255
        // and 254 characters.
        for len in [253, 252, 251] {
            let domain = "x".repeat(len - 2 - ".example".len()) + ".example";
            let host = format!("a.{domain}");
            assert_eq!(host.len(), len);
            let wildcard = format!("*.{domain}");
            let k = keys(&[host.clone(), wildcard]);
            assert!(k.iter().all(|k| k.len() <= MAX_KEY), "{k:?}");
            assert!(k.contains(&host));
            assert!(k.contains(&format!("_.{domain}")));
            assert_eq!(k.contains(&format!("_in.{domain}")), len <= 251, "{k:?}");
        }
    }

    #[test]
    fn an_ingress_wildcard_overlaps_the_hosts_one_label_below_it_only() {
        let ingress = |a, b| conflicts(a, false, b, false);
        assert!(ingress("*.example.com", "shop.example.com"));
        assert!(ingress("shop.example.com", "*.example.com"));
        assert!(!ingress("*.example.com", "a.shop.example.com"));
        assert!(!ingress("*.example.com", "example.com"));
        assert!(!ingress("*.example.com", "*.shop.example.com"));
        assert!(!ingress("", "shop.example.com"));
        assert!(ingress("", ""));
    }

    #[test]
    fn a_gateway_api_wildcard_overlaps_every_host_and_wildcard_under_it_at_any_depth() {
        for (route, ingress) in [(true, false), (true, true)] {
            for (a, b) in [
                ("*.example.com", "shop.example.com"),
                ("*.example.com", "a.shop.example.com"),
                ("*.example.com", "a.b.c.shop.example.com"),
                ("*.example.com", "*.shop.example.com"),
                ("*.example.com", "*.a.shop.example.com"),
            ] {
                assert!(conflicts(a, route, b, ingress), "{a} over {b}");
                assert!(conflicts(b, ingress, a, route), "{b} under {a}");
            }
            // Not the domain itself, a sibling domain, nor one that only ends with the same letters.
            for b in ["example.com", "example.org", "shop.myexample.com", ""] {
                assert!(!conflicts("*.example.com", route, b, ingress), "{b}");
                assert!(!conflicts(b, ingress, "*.example.com", route), "{b}");
            }
        }
        // An Ingress wildcard over a route's deeper host: the Ingress wildcard matches one label.
        assert!(!conflicts(
            "*.example.com",
            false,
            "a.shop.example.com",
            true
        ));
        // A wider wildcard: a route's `*.com` covers `*.example.com`; an Ingress's does not.
        assert!(conflicts("*.com", true, "*.example.com", false));
        assert!(!conflicts("*.com", false, "*.example.com", true));
    }

    #[test]
    fn the_first_claimant_keeps_a_host_and_the_later_one_is_reported() {
        let claims = [
            claim("acme", "acme", "steal", 20, &["shop.globex.example"]),
            claim("globex", "globex", "shop", 10, &["shop.globex.example"]),
        ];
        let d = decide(&claims, &BTreeMap::new());
        assert_eq!(held(&d, "globex"), ["shop.globex.example"]);
        assert!(held(&d, "acme").is_empty());
        let lost: Vec<_> = d.lost["acme"].iter().cloned().collect();
        assert_eq!(
            lost,
            [Lost {
                kind: "Ingress",
                namespace: "acme".into(),
                name: "steal".into(),
                host: "shop.globex.example".into()
            }]
        );
        assert!(!d.lost.contains_key("globex"));
    }

    #[test]
    fn a_recorded_holder_keeps_its_host_against_an_older_object_admitted_in_the_window() {
        // acme updated an old Ingress to globex's new host before globex's claim was recorded.
        let claims = [
            claim("acme", "acme", "old", 1, &["new.globex.example"]),
            claim("globex", "globex", "new", 50, &["new.globex.example"]),
        ];
        let recorded = BTreeMap::from([("new.globex.example".to_string(), "globex".to_string())]);
        let d = decide(&claims, &recorded);
        assert_eq!(held(&d, "globex"), ["new.globex.example"]);
        assert_eq!(d.lost["acme"].len(), 1);
        // Without the record, the older object wins: the order is deterministic either way.
        let d = decide(&claims, &BTreeMap::new());
        assert_eq!(held(&d, "acme"), ["new.globex.example"]);
    }

    #[test]
    fn ties_of_creation_time_are_broken_by_uid_whatever_the_order_of_the_cache() {
        let mut a = claim("acme", "acme", "a", 10, &["x.example"]);
        let mut b = claim("globex", "globex", "b", 10, &["x.example"]);
        a.uid = "2".into();
        b.uid = "1".into();
        let one = decide(&[a.clone(), b.clone()], &BTreeMap::new());
        let two = decide(&[b, a], &BTreeMap::new());
        assert_eq!(one, two);
        assert_eq!(held(&one, "globex"), ["x.example"]);
    }

    #[test]
    fn wildcards_and_concrete_hosts_of_two_tenants_never_overlap() {
        let claims = [
            claim("globex", "globex", "wild", 10, &["*.globex.example"]),
            claim("acme", "acme", "shop", 20, &["shop.globex.example"]),
            claim("acme", "acme", "deep", 21, &["a.shop.globex.example"]),
            claim("initech", "initech", "c", 5, &["api.initech.example"]),
            claim("acme", "acme", "w", 30, &["*.initech.example"]),
        ];
        let d = decide(&claims, &BTreeMap::new());
        assert_eq!(held(&d, "globex"), ["*.globex.example"]);
        assert_eq!(held(&d, "acme"), ["a.shop.globex.example"]);
        let lost: Vec<&str> = d.lost["acme"].iter().map(|l| l.host.as_str()).collect();
        // In the order of the objects' names: "shop", then "w".
        assert_eq!(lost, ["shop.globex.example", "*.initech.example"]);
    }

    #[test]
    fn a_tenants_own_objects_share_its_hosts_and_the_catch_all_is_held_once() {
        let claims = [
            claim("acme", "acme-0", "one", 10, &["shop.acme.example", ""]),
            claim(
                "acme",
                "acme-1",
                "two",
                20,
                &["shop.acme.example", "*.acme.example"],
            ),
            claim("globex", "globex", "any", 30, &[""]),
        ];
        let d = decide(&claims, &BTreeMap::new());
        assert_eq!(held(&d, "acme-0"), ["", "shop.acme.example"]);
        assert_eq!(held(&d, "acme-1"), ["*.acme.example", "shop.acme.example"]);
        assert!(!d.lost.contains_key("acme"));
        assert_eq!(d.lost["globex"].len(), 1);
        let msg = lost_message(&d.lost["globex"]).unwrap();
        assert!(
            msg.contains("Ingress globex/any: a rule without host"),
            "{msg}"
        );
        assert!(!msg.contains("acme"), "the holder is never named: {msg}");
    }

    #[test]
    fn a_gateway_api_wildcard_and_a_deeper_host_of_another_tenant_keep_to_the_first_claimant() {
        let kind = |mut c: Claim, k| {
            c.kind = k;
            c
        };
        // globex's route holds a host two labels under acme's later Gateway listener wildcard, and
        // initech's later Ingress host sits three labels under globex's earlier route wildcard.
        let claims = [
            kind(
                claim("globex", "globex", "deep", 10, &["a.b.x.example"]),
                "HTTPRoute",
            ),
            kind(
                claim("acme", "acme", "edge", 20, &["*.x.example"]),
                "Gateway",
            ),
            kind(
                claim("globex", "globex", "wide", 11, &["*.y.example"]),
                "GRPCRoute",
            ),
            claim("initech", "initech", "ing", 30, &["a.b.c.y.example"]),
            claim("initech", "initech", "ing-wild", 31, &["*.c.y.example"]),
            // An Ingress wildcard matches one label: a deeper host of another tenant is no conflict.
            claim("hooli", "hooli", "one-label", 40, &["*.z.example"]),
            kind(
                claim("umbrella", "umbrella", "deeper", 50, &["q.r.z.example"]),
                "HTTPRoute",
            ),
        ];
        let d = decide(&claims, &BTreeMap::new());
        let lost = |a: &str| -> Vec<String> {
            d.lost
                .get(a)
                .map(|l| l.iter().map(|l| l.host.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(lost("acme"), ["*.x.example"]);
        assert_eq!(lost("initech"), ["a.b.c.y.example", "*.c.y.example"]);
        assert!(
            lost("hooli").is_empty() && lost("umbrella").is_empty(),
            "{d:?}"
        );
        assert_eq!(held(&d, "globex"), ["*.y.example", "a.b.x.example"]);
        // The other order: the wildcard first keeps it, and the deeper host is the one reported.
        let claims = [
            kind(
                claim("globex", "globex", "deep", 30, &["a.b.x.example"]),
                "HTTPRoute",
            ),
            claim("acme", "acme", "ing", 20, &["*.x.example"]),
            kind(
                claim("acme", "acme", "edge", 21, &["*.x.example"]),
                "Gateway",
            ),
        ];
        let d = decide(&claims, &BTreeMap::new());
        assert_eq!(held(&d, "acme"), ["*.x.example"]);
        assert_eq!(
            d.lost["globex"].iter().next().unwrap().host,
            "a.b.x.example"
        );
    }

    #[test]
    fn ingress_and_route_hosts_are_one_claim_space_recorded_per_kind() {
        let mut route = claim("acme", "acme", "web", 20, &["shop.example", ""]);
        route.kind = "HTTPRoute";
        let mut grpc = claim("acme", "acme", "api", 25, &["api.example"]);
        grpc.kind = "GRPCRoute";
        let mut late = claim("initech", "initech", "r", 30, &["x.globex.example"]);
        late.kind = "HTTPRoute";
        let mut gw = claim("acme", "acme", "edge", 26, &["edge.example"]);
        gw.kind = "Gateway";
        let claims = [
            claim("acme", "acme", "shop", 10, &["shop.example"]),
            route,
            grpc,
            gw,
            claim("globex", "globex", "x", 5, &["*.globex.example"]),
            late,
        ];
        let d = decide(&claims, &BTreeMap::new());
        // initech's route lost to globex's Ingress wildcard: one claim space.
        let lost: Vec<String> = d.lost["initech"]
            .iter()
            .map(|l| format!("{} {}", l.kind, l.host))
            .collect();
        assert_eq!(lost, ["HTTPRoute x.globex.example"]);
        let r = records(&claims, &d);
        let hosts = |ns: &str, kind: &'static str| -> Vec<String> {
            r.get(&(ns.to_string(), kind))
                .map(|(_, h)| h.iter().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(hosts("acme", "Ingress"), ["shop.example"]);
        assert_eq!(hosts("acme", ROUTES), ["", "api.example", "shop.example"]);
        assert_eq!(hosts("acme", GATEWAYS), ["edge.example"]);
        assert_eq!(hosts("globex", "Ingress"), ["*.globex.example"]);
        assert!(!r.contains_key(&("initech".to_string(), ROUTES)));
        let mut lost = d.lost["initech"].clone();
        lost.insert(Lost {
            kind: "GRPCRoute",
            namespace: "initech".into(),
            name: "any".into(),
            host: String::new(),
        });
        let msg = lost_message(&lost).unwrap();
        assert!(
            msg.contains("GRPCRoute initech/any: no hostnames (the catch-all)")
                && msg.contains("HTTPRoute initech/r: host x.globex.example"),
            "{msg}"
        );
    }

    #[test]
    fn a_host_is_free_once_its_holder_claims_it_no_more() {
        let recorded = BTreeMap::from([("x.example".to_string(), "globex".to_string())]);
        let claims = [claim("acme", "acme", "a", 10, &["x.example"])];
        let d = decide(&claims, &recorded);
        assert_eq!(held(&d, "acme"), ["x.example"]);
        assert!(d.lost.is_empty());
    }
}
