//! Suspensions of one account (§2.4): whether any is in force, and the notice of its cause.

use covenant_terms as terms;
use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Suspension, SuspensionReason};
use crate::status::{Cond, types};

/// The suspensions of one account that are in force now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActiveSuspensions {
    /// Whether any suspension is in force.
    pub active: bool,
    /// The suspensions in force: (name, reason, cause or None when withheld).
    pub in_force: Vec<(String, SuspensionReason, Option<String>)>,
    /// Whether any suspension in force asks for workloads to be scaled to zero.
    pub scale_workloads: bool,
    /// The next instant at which a suspension starts or ends.
    pub next_change: Option<Timestamp>,
}

/// Which of `suspensions` (all of one account) are in force at `now`. Several may overlap: the
/// account stays suspended until the last one ends.
pub fn active_suspensions(suspensions: &[Suspension], now: Timestamp) -> ActiveSuspensions {
    let mut out = ActiveSuspensions::default();
    let mut next = Vec::new();
    let mut sorted: Vec<&Suspension> = suspensions
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    sorted.sort_by_key(|s| s.name_any());
    for s in sorted {
        let w = terms::evaluate_suspension(
            s.spec.start_at.as_ref().map(|t| t.0),
            s.spec.end_at.as_ref().map(|t| t.0),
            now,
        );
        next.push(w.next_change);
        if w.active {
            out.active = true;
            out.scale_workloads |= s.spec.scale_workloads;
            out.in_force.push((
                s.name_any(),
                s.spec.reason,
                (!s.spec.withhold_notice).then(|| s.spec.cause.clone()),
            ));
        }
    }
    out.next_change = terms::earliest_after(next, now);
    out
}

impl ActiveSuspensions {
    /// One line naming each suspension in force with its reason and cause (or that notice is withheld).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .in_force
            .iter()
            .map(|(name, reason, cause)| match cause {
                Some(c) => format!("{name}: {reason:?}: {c}"),
                None => {
                    format!("{name}: {reason:?} (notice of the cause withheld as the law requires)")
                }
            })
            .collect();
        format!("suspended (§2.4) by {}", parts.join("; "))
    }

    /// The Account's `Suspended` condition: True with the reason and cause while any is in force.
    pub fn condition(&self) -> Cond {
        match self.in_force.first() {
            None => Cond::new(
                types::SUSPENDED,
                false,
                "NotSuspended",
                "no suspension is in force",
            ),
            Some((_, reason, _)) => Cond::new(
                types::SUSPENDED,
                true,
                format!("{reason:?}"),
                self.summary(),
            ),
        }
    }
}
