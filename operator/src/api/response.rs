use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Decision, ResponseDecision};

/// A tenant's own answer to a DeprecationNotice, created by the account's administrators in one of
/// its namespaces. Its time is the API server's `creationTimestamp`, never a self-reported one; it
/// cannot be changed once made (a later answer is a new NoticeResponse: the latest one given by the
/// deadline stands).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "covenant.dev",
    version = "v1alpha1",
    kind = "NoticeResponse",
    namespaced,
    status = "NoticeResponseStatus",
    shortname = "answer",
    category = "covenant",
    derive = "PartialEq",
    doc = "A tenant's answer (Accept or Reject) to a DeprecationNotice, given in one of its namespaces.",
    printcolumn(name = "Notice", type_ = "string", json_path = ".spec.notice"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(
        name = "Honoured",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Honoured\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Honoured\")].reason"
    ),
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".status.account",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("a NoticeResponse cannot be changed once given: create a new one (the latest given by the deadline stands)"),
)]
pub struct NoticeResponseSpec {
    /// The DeprecationNotice's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub notice: String,
    /// `Accept` or `Reject`.
    pub decision: ResponseDecision,
}

/// What became of a NoticeResponse.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoticeResponseStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Account this namespace belongs to, for which the response answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The account's decision on the notice, all its answers considered: on the answer that stands
    /// only (the Account's `status.notices` has it for every notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_decision: Option<Decision>,
    /// `Honoured`: True when this response is the account's answer; False says why not (`Superseded`,
    /// `AfterDeadline`, `NotRejectable`, `UnknownNotice` (also for a notice that does not concern the
    /// account), `BeforeNotice` (given before the notice was issued: an earlier one of that name),
    /// `NoAccount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
