//! Conditions with stable transition times: a condition's `lastTransitionTime` moves only when its
//! status does, so recomputing an unchanged status yields an identical object and no write.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as the pure stages compute it, before transition times are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// The condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What the condition means for the user, with the dates and the fix.
    pub message: String,
}

impl Cond {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Condition types, one name each (kstatus reads `Ready`, `Reconciling` and `Stalled`).
pub mod types {
    /// Everything the object asks for is in place (kstatus: `Current` when True).
    pub const READY: &str = "Ready";
    /// Work is under way and will finish by itself (kstatus: `InProgress` when True).
    pub const RECONCILING: &str = "Reconciling";
    /// Only a person can fix what is wrong; the reason and message say what (kstatus: `Failed` when True).
    pub const STALLED: &str = "Stalled";
    /// An account's namespaces exist and are its own.
    pub const NAMESPACES_READY: &str = "NamespacesReady";
    /// An account's quota and limits are applied.
    pub const QUOTA_APPLIED: &str = "QuotaApplied";
    /// An account's network policies are applied.
    pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
    /// An account's administrators are bound.
    pub const ACCESS_GRANTED: &str = "AccessGranted";
    /// A suspension of the account is in force.
    pub const SUSPENDED: &str = "Suspended";
}

/// Condition reasons shared by the kinds (each kind's own are next to the rules that give them).
pub mod reasons {
    /// Ready: everything is in place.
    pub const READY: &str = "Ready";
    /// Stalled=False: nothing needs a person.
    pub const NOT_STALLED: &str = "NotStalled";
    /// Reconciling=False: no work under way.
    pub const RECONCILED: &str = "Reconciled";
    /// The API server refused a managed object (or could not be reached for it).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Limits that do not fit in a LimitRange (`defaultRequest ≤ default ≤ max`).
    pub const INVALID_LIMITS: &str = "InvalidLimits";
    /// Namespaces that belong to someone else.
    pub const NAMESPACE_CONFLICT: &str = "NamespaceConflict";
    /// The account's SupportPackage cannot be resolved.
    pub const PACKAGE_UNRESOLVED: &str = "PackageUnresolved";
    /// More namespaces than the package allows.
    pub const TOO_MANY_NAMESPACES: &str = "TooManyNamespaces";
    /// A suspension is in force (the account is Ready with its guardrails).
    pub const SUSPENDED: &str = "Suspended";
}

/// The `Stalled` condition of a kind whose every problem needs a person (nothing it does is retried
/// by itself): True with `ready`'s reason and message when `ready` is False, else False.
pub fn stalled(ready: &Cond) -> Cond {
    if ready.status {
        Cond::new(
            types::STALLED,
            false,
            reasons::NOT_STALLED,
            "nothing needs a person",
        )
    } else {
        Cond::new(
            types::STALLED,
            true,
            ready.reason.clone(),
            ready.message.clone(),
        )
    }
}

/// Turns computed conditions into API conditions, keeping `lastTransitionTime` from `previous` when the
/// status of a type did not change, and using `now` when it did (or the type is new).
pub fn merge(
    previous: &[Condition],
    computed: Vec<Cond>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    computed
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_string();
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Whether an Account condition's present state is announced as a warning (`None`: never announced):
/// the summary conditions only. The parts' (NamespacesReady, QuotaApplied, NetworkIsolated,
/// AccessGranted) move with them and would repeat them, and a part's reason can be a word that means
/// something else as an Event (AccessGranted=False `Suspended` is not the suspension notice, which a
/// withheld suspension must not give).
pub fn account_warning(c: &Condition) -> Option<bool> {
    const ANNOUNCED: [&str; 5] = [
        types::READY,
        types::STALLED,
        types::SUSPENDED,
        "AccessReviewCurrent",
        "TermsCurrent",
    ];
    ANNOUNCED.contains(&c.type_.as_str()).then_some(matches!(
        (c.type_.as_str(), c.status.as_str()),
        ("Suspended", "True") | ("Ready" | "AccessReviewCurrent" | "TermsCurrent", "False")
    ))
}

/// The conditions of `current` that an Event announces, each with whether it is a warning: one whose
/// status differs from the same condition in `previous`, or one that appears for the first time when
/// it is a warning (an object's first good news is no news). `warning` says, per condition, whether its
/// present state is a warning, or `None` for conditions that are never announced. The one rule by which
/// every kind turns its conditions into Events.
pub fn announced<'a>(
    previous: &[Condition],
    current: &'a [Condition],
    warning: impl Fn(&Condition) -> Option<bool>,
) -> Vec<(&'a Condition, bool)> {
    current
        .iter()
        .filter_map(|c| {
            let warn = warning(c)?;
            let changed = match find(previous, &c.type_) {
                Some(before) => before.status != c.status,
                None => warn,
            };
            changed.then_some((c, warn))
        })
        .collect()
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Conditions of an Account that another controller of Covenant writes, under its own field manager
/// (the account controller neither writes nor compares them).
pub const FOREIGN_CONDITIONS: [&str; 2] = [
    crate::model::hostnames::CONDITION,
    crate::model::policies::COMPLIANCE_CONDITION,
];

/// `status` without the [`FOREIGN_CONDITIONS`]: what the account controller compares with what it
/// computes.
pub fn own(status: &crate::api::AccountStatus) -> crate::api::AccountStatus {
    let mut s = status.clone();
    s.conditions
        .retain(|c| !FOREIGN_CONDITIONS.contains(&c.type_.as_str()));
    // The account-wide quota's usage is the account-quota controller's (its own field manager).
    s.quota = None;
    s
}

/// Whether two statuses serialize alike. Instants serialize at second precision, so a computed
/// instant with a fraction (from a client that writes milliseconds) equals the stored one and
/// causes no write.
pub fn unchanged<T: serde::Serialize>(computed: &T, stored: &T) -> bool {
    matches!((serde_json::to_value(computed), serde_json::to_value(stored)), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let first = merge(
            &[],
            vec![Cond::new("Ready", false, "Provisioning", "a")],
            Some(1),
            t0,
        );
        let same = merge(
            &first,
            vec![Cond::new("Ready", false, "Waiting", "b")],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        assert_eq!(same[0].reason, "Waiting");
        let flipped = merge(
            &same,
            vec![Cond::new("Ready", true, "Ready", "c")],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, Time(t1));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn an_event_announces_a_change_of_status_or_a_first_warning() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |conds: Vec<Cond>| merge(&[], conds, Some(1), t0);
        let warning =
            |c: &Condition| (c.type_ != "Quiet").then(|| c.type_ == "Ready" && c.status == "False");
        let first = at(vec![
            Cond::new("Ready", false, "Provisioning", "a"),
            Cond::new("Suspended", false, "Active", "b"),
            Cond::new("Quiet", false, "Never", "c"),
        ]);
        // A new object: its first warning is announced, its first good news and the unannounced
        // condition are not.
        let shown: Vec<_> = announced(&[], &first, warning)
            .into_iter()
            .map(|(c, w)| (c.type_.as_str(), w))
            .collect();
        assert_eq!(shown, [("Ready", true)]);
        // Same statuses, other reasons: nothing to announce.
        let again = at(vec![
            Cond::new("Ready", false, "Waiting", "a2"),
            Cond::new("Suspended", false, "Active", "b"),
            Cond::new("Quiet", true, "Now", "c"),
        ]);
        assert!(announced(&first, &again, warning).is_empty());
        // A flip is announced either way, as a warning or not by the present state.
        let flipped = at(vec![
            Cond::new("Ready", true, "Ready", "ok"),
            Cond::new("Suspended", true, "Suspended", "held"),
        ]);
        let shown: Vec<_> = announced(&again, &flipped, warning)
            .into_iter()
            .map(|(c, w)| (c.type_.as_str(), w))
            .collect();
        assert_eq!(shown, [("Ready", false), ("Suspended", false)]);
    }
}
