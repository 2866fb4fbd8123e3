//! Suspensions of one account (§2.4): whether any is in force, and the notice of its cause.

use covenant_terms as terms;
use jiff::Timestamp;
use kube::ResourceExt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Suspension, SuspensionPhase, SuspensionReason, SuspensionStatus};
use crate::status::{Cond, merge, reasons, types};

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
    /// The suspensions in force whose notice is given: (name, reason, cause). A withheld one is never
    /// named, nor its reason or cause: the tenant can read everything these feed (its Account's
    /// status, the Events about it).
    fn disclosed(&self) -> impl Iterator<Item = (&str, SuspensionReason, &str)> {
        self.in_force
            .iter()
            .filter_map(|(name, reason, cause)| Some((name.as_str(), *reason, cause.as_deref()?)))
    }

    /// One line naming each suspension in force whose notice is given, with its reason and cause; a
    /// suspension whose notice is withheld adds nothing (when it is the only one, the line says only
    /// that access is suspended).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .disclosed()
            .map(|(name, reason, cause)| format!("{name}: {reason:?}: {cause}"))
            .collect();
        if parts.is_empty() {
            "access to the account is suspended (§2.4)".to_string()
        } else {
            format!("suspended (§2.4) by {}", parts.join("; "))
        }
    }

    /// The Account's `Suspended` condition: True while any is in force, with the reason and cause of
    /// those whose notice is given; reason `Suspended` when every one in force is withheld.
    pub fn condition(&self) -> Cond {
        if !self.active {
            return Cond::new(
                types::SUSPENDED,
                false,
                "NotSuspended",
                "no suspension is in force",
            );
        }
        let reason = self
            .disclosed()
            .next()
            .map(|(_, reason, _)| format!("{reason:?}"))
            .unwrap_or_else(|| reasons::SUSPENDED.to_string());
        Cond::new(types::SUSPENDED, true, reason, self.summary())
    }
}

/// What the pure stage decides for one suspension.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The status to write.
    pub status: SuspensionStatus,
    /// Give notice of the cause now (it is in force, not withheld, and not given before).
    pub give_notice: bool,
    /// It was lifted by `endAt` just now (not recorded before).
    pub lifted_now: bool,
    /// When the answer changes next.
    pub next_change: Option<jiff::Timestamp>,
}

/// The Suspension's status at `now`, given whether its account exists (pure).
/// `given` is when this process already gave notice for this suspension, if its status does not
/// show it yet (the status write may not be in the cache): notice is then not given twice.
pub fn evaluate(
    s: &Suspension,
    account_exists: bool,
    given: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Outcome {
    let previous = s.status.clone().unwrap_or_default();
    let generation = s.metadata.generation;
    let start = s.spec.start_at.as_ref().map(|t| t.0);
    let end = s.spec.end_at.as_ref().map(|t| t.0);
    let w = terms::evaluate_suspension(start, end, now);
    let mut status = SuspensionStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let (phase, ready) = if !account_exists {
        (
            SuspensionPhase::Invalid,
            Cond::new(
                crate::status::types::READY,
                false,
                "AccountNotFound",
                format!(
                    "Account {:?} does not exist: fix spec.account (it is immutable: delete this Suspension and create another)",
                    s.spec.account
                ),
            ),
        )
    } else {
        match w.phase {
            terms::suspension::SuspensionPhase::Pending => (
                SuspensionPhase::Pending,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "Scheduled",
                    format!(
                        "starts at {}",
                        start.map(terms::fmt_instant).unwrap_or_default()
                    ),
                ),
            ),
            terms::suspension::SuspensionPhase::Active => (
                SuspensionPhase::Active,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "InForce",
                    match end {
                        Some(e) => format!(
                            "account {} suspended until {}",
                            s.spec.account,
                            terms::fmt_instant(e)
                        ),
                        None => format!(
                            "account {} suspended until this Suspension is deleted",
                            s.spec.account
                        ),
                    },
                ),
            ),
            terms::suspension::SuspensionPhase::Ended => (
                SuspensionPhase::Lifted,
                Cond::new(
                    crate::status::types::READY,
                    true,
                    "Lifted",
                    format!(
                        "lifted at {}",
                        end.map(terms::fmt_instant).unwrap_or_default()
                    ),
                ),
            ),
        }
    };
    let active = phase == SuspensionPhase::Active;
    let due = active && !s.spec.withhold_notice && previous.notice_given_at.is_none();
    let give_notice = due && given.is_none();
    if due {
        status.notice_given_at = Some(Time(given.unwrap_or(now)));
    }
    let lifted_now = phase == SuspensionPhase::Lifted && previous.lifted_at.is_none();
    if lifted_now {
        // The instant it ended, not when the operator noticed: stable across restarts.
        status.lifted_at = end.map(Time);
    }
    let notice = if s.spec.withhold_notice {
        Cond::new(
            "NoticeGiven",
            false,
            "Withheld",
            "notice of the cause is withheld to the extent the law requires (§2.4, LegalCompliance)",
        )
    } else if let Some(t) = &status.notice_given_at {
        Cond::new(
            "NoticeGiven",
            true,
            "Given",
            format!(
                "the client was told the cause at {}",
                terms::fmt_instant(t.0)
            ),
        )
    } else {
        Cond::new(
            "NoticeGiven",
            false,
            "NotInForce",
            "notice is given when the suspension takes effect",
        )
    };
    status.phase = Some(phase);
    // An unknown account is fixed only by a person (kstatus: Failed, not InProgress forever).
    let stalled = crate::status::stalled(&ready);
    status.conditions = merge(
        &previous.conditions,
        vec![ready, stalled, notice],
        generation,
        now,
    );
    Outcome {
        status,
        give_notice,
        lifted_now,
        next_change: if account_exists { w.next_change } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SuspensionReason, SuspensionSpec};

    fn suspension(start: Option<&str>, end: Option<&str>, withhold: bool) -> Suspension {
        let mut s = Suspension::new(
            "s",
            SuspensionSpec {
                account: "acme".into(),
                reason: SuspensionReason::LegalCompliance,
                cause: "court order 42".into(),
                withhold_notice: withhold,
                start_at: start.map(|t| Time(t.parse().unwrap())),
                end_at: end.map(|t| Time(t.parse().unwrap())),
                scale_workloads: false,
            },
        );
        s.metadata.generation = Some(1);
        s
    }

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn notice_is_given_once_when_the_suspension_takes_effect() {
        let s = suspension(Some("2027-01-01T00:00:00Z"), None, false);
        let before = evaluate(&s, true, None, at("2026-12-31T23:59:59Z"));
        assert_eq!(before.status.phase, Some(SuspensionPhase::Pending));
        assert!(!before.give_notice);
        assert_eq!(before.next_change, Some(at("2027-01-01T00:00:00Z")));
        let mut s2 = s.clone();
        s2.status = Some(before.status);
        let during = evaluate(&s2, true, None, at("2027-01-01T00:00:00Z"));
        assert_eq!(during.status.phase, Some(SuspensionPhase::Active));
        assert!(during.give_notice);
        assert_eq!(
            during.status.notice_given_at,
            Some(Time(at("2027-01-01T00:00:00Z")))
        );
        s2.status = Some(during.status);
        let again = evaluate(&s2, true, None, at("2027-01-02T00:00:00Z"));
        assert!(!again.give_notice, "notice is given once");
        assert_eq!(
            again.status,
            s2.status.clone().unwrap(),
            "nothing changes at rest"
        );
    }

    /// What the tenant reads of the suspensions in force (its Account's `Suspended` condition, and the
    /// Ready message and Events made of it) never names a withheld one, its reason or its cause.
    #[test]
    fn the_account_condition_names_no_withheld_suspension() {
        let now = at("2027-01-01T00:00:00Z");
        let mut sealed = suspension(None, None, true);
        sealed.metadata.name = Some("hooli-lawful-intercept-case-4471".into());
        let alone = active_suspensions(std::slice::from_ref(&sealed), now);
        let c = alone.condition();
        assert!(c.status, "the account is suspended all the same: {c:?}");
        assert_eq!(c.reason, "Suspended");
        for text in [c.message.as_str(), &alone.summary()] {
            for secret in ["hooli", "LegalCompliance", "court order", "withh"] {
                assert!(!text.contains(secret), "{secret:?} in {text:?}");
            }
        }
        // Beside a suspension whose notice is given, only that one is named.
        let mut aup = suspension(None, None, false);
        aup.metadata.name = Some("abuse-report-7".into());
        aup.spec.reason = SuspensionReason::AcceptableUsePolicy;
        aup.spec.cause = "spam relay".into();
        let both = active_suspensions(&[sealed, aup], now).condition();
        assert_eq!(both.reason, "AcceptableUsePolicy");
        assert!(
            both.message
                .contains("abuse-report-7: AcceptableUsePolicy: spam relay"),
            "{both:?}"
        );
        for secret in ["hooli", "LegalCompliance", "court order", "withh"] {
            assert!(!both.message.contains(secret), "{secret:?} in {both:?}");
        }
    }

    #[test]
    fn withheld_notice_is_never_given() {
        let s = suspension(None, None, true);
        let o = evaluate(&s, true, None, at("2027-01-01T00:00:00Z"));
        assert!(!o.give_notice);
        assert!(o.status.notice_given_at.is_none());
        assert!(
            o.status
                .conditions
                .iter()
                .any(|c| c.type_ == "NoticeGiven" && c.reason == "Withheld")
        );
    }

    #[test]
    fn lifted_at_is_the_end_instant() {
        let s = suspension(None, Some("2027-01-01T00:00:00Z"), false);
        let o = evaluate(&s, true, None, at("2027-01-01T00:00:07Z"));
        assert_eq!(o.status.phase, Some(SuspensionPhase::Lifted));
        assert!(o.lifted_now);
        assert_eq!(o.status.lifted_at, Some(Time(at("2027-01-01T00:00:00Z"))));
    }

    #[test]
    fn notice_already_given_by_this_process_is_not_given_again() {
        let s = suspension(None, None, false);
        let first = at("2027-01-01T00:00:00Z");
        let o = evaluate(&s, true, Some(first), at("2027-01-01T00:00:02Z"));
        assert!(!o.give_notice);
        assert_eq!(
            o.status.notice_given_at,
            Some(Time(first)),
            "the first instant is kept"
        );
    }

    #[test]
    fn unknown_account_is_invalid() {
        let o = evaluate(
            &suspension(None, None, false),
            false,
            None,
            at("2027-01-01T00:00:00Z"),
        );
        assert_eq!(o.status.phase, Some(SuspensionPhase::Invalid));
        assert!(!o.give_notice);
        assert!(
            o.status
                .conditions
                .iter()
                .any(|c| c.reason == "AccountNotFound" && c.message.contains("acme"))
        );
    }
}
