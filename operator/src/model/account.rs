//! Account rules that need no cluster: the access review (§4.2(2)), the namespace cap, and the
//! account's view of the notices that concern it.

use covenant_terms as terms;
use jiff::Timestamp;

use crate::api::{Account, SupportPackage};
use crate::status::Cond;

/// Condition type of the monthly access review.
pub const ACCESS_REVIEW_CURRENT: &str = "AccessReviewCurrent";

/// The access review's condition, when it is due, and when the answer changes (§4.2(2): reviews are
/// monthly; a review more than 30 days old is overdue).
pub fn access_review(account: &Account, now: Timestamp) -> (Cond, Timestamp, Option<Timestamp>) {
    let created = account.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let last = account.spec.access_review.as_ref().and_then(|r| r.last_reviewed_at.as_ref()).map(|t| t.0);
    let r = terms::evaluate_access_review(last, created, now);
    let due = terms::fmt_instant(r.due_at);
    let cond = match (r.current, last) {
        (true, Some(l)) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "Reviewed",
            format!("access last reviewed {}; next review due by {due}", terms::fmt_instant(l)),
        ),
        (true, None) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            true,
            "NewAccount",
            format!("first access review due by {due}"),
        ),
        (false, _) => Cond::new(
            ACCESS_REVIEW_CURRENT,
            false,
            "ReviewOverdue",
            format!(
                "the monthly access review was due by {due} (§4.2(2)): review who has access and set spec.accessReview.lastReviewedAt"
            ),
        ),
    };
    (cond, r.due_at, r.next_change)
}

/// Problems that make an account invalid on its package (the namespace cap), with the fix.
pub fn validate_on_package(account: &Account, package: &SupportPackage) -> Vec<String> {
    let mut errors = Vec::new();
    let wanted = account.desired_namespaces().len();
    if let Some(max) = package.spec.max_namespaces {
        if wanted > max as usize {
            errors.push(format!(
                "the account asks for {wanted} namespaces but its SupportPackage {:?} allows at most {max}: remove namespaces or move to a larger package",
                kube::ResourceExt::name_any(package)
            ));
        }
    }
    errors
}
