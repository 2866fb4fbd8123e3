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

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
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
}
