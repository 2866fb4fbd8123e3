//! Reconcile errors, one variant per stage, each with a stable category for metrics and Event reasons.
//!
//! A stage's error names the object it concerned and carries its [`Cause`]: what the request (or the
//! preparation of one) failed with. Helpers that make requests return a `Cause` (the default of
//! [`Result`]); the reconcile says which stage it was in when one fails.

use std::error::Error as _;

/// What a request failed with: the source of every stage's error.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The API server refused the request, or could not be reached.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be turned into JSON for a request.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// This replica may no longer lead (the fence), so it does nothing it cannot take back.
    #[error("not leading: {0}")]
    NotLeading(String),
}

impl Cause {
    /// The API server's own answer, when it refused the request.
    pub fn api(&self) -> Option<&kube::core::Status> {
        match self {
            Cause::Kube(kube::Error::Api(s)) => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// What an API server's refusal means to the caller. The one place that reads HTTP status codes, so
/// that "not found" or "changed meanwhile" mean the same at every call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 404 or 410: the object (or its namespace) is not there, or no longer.
    NotFound,
    /// 409 with reason AlreadyExists: a create found the name taken.
    AlreadyExists,
    /// Any other 409: the object changed since it was read (a resourceVersion or UID precondition).
    Conflict,
    /// 422: the object was refused as invalid; also what a failing JSON-patch `test` answers.
    Invalid,
    /// 413, or an answer that says the request or object is too large.
    TooLarge,
    /// 403: refused by authorization or by an admission policy.
    Forbidden,
    /// 429: throttled by API priority and fairness.
    Throttled,
    /// Any other 4xx.
    Rejected,
    /// 5xx, or no answer at all (transport, timeout).
    Unavailable,
}

impl ApiErrorKind {
    /// The kind of the API server's answer `s`.
    pub fn of_status(s: &kube::core::Status) -> Self {
        let too_large = s.message.to_lowercase().contains("too large");
        match s.code {
            413 => Self::TooLarge,
            _ if too_large && (s.code == 422 || s.code >= 500) => Self::TooLarge,
            404 | 410 => Self::NotFound,
            409 if s.reason == "AlreadyExists" => Self::AlreadyExists,
            409 => Self::Conflict,
            422 => Self::Invalid,
            403 => Self::Forbidden,
            429 => Self::Throttled,
            400..=499 => Self::Rejected,
            _ => Self::Unavailable,
        }
    }

    /// The kind of a failed request: the API server's answer, or `Unavailable` when there was none.
    pub fn of(e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => Self::of_status(s),
            _ => Self::Unavailable,
        }
    }

    /// Whether only a person can fix it (the object itself was refused): everything but a race
    /// (`Conflict`, `AlreadyExists`), throttling and an unavailable API server, which are retried.
    pub fn permanent(self) -> bool {
        !matches!(
            self,
            Self::Conflict | Self::AlreadyExists | Self::Throttled | Self::Unavailable
        )
    }
}

/// A stable, low-cardinality name of a failure: the stage that failed, or `Conflict` when someone else
/// wrote in between. Its string form labels metrics and names Event reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Reading what the reconcile needs failed.
    Observe,
    /// Applying or deleting a managed object failed.
    Apply,
    /// Scaling workloads down or back failed.
    Scale,
    /// Releasing or deleting a namespace failed.
    Release,
    /// Writing a status failed.
    Status,
    /// Adding or removing the finalizer failed.
    Finalizer,
    /// Someone else wrote in between: retried at once, no alert.
    Conflict,
}

impl Category {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Observe => "observe",
            Category::Apply => "apply",
            Category::Scale => "scale",
            Category::Release => "release",
            Category::Status => "status",
            Category::Finalizer => "finalizer",
            Category::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Anything that stops a reconcile, by the stage that failed. Invalid user input is not an error: it
/// is reported in conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading what the reconcile needs and the caches do not hold (an object, a CRD) failed.
    #[error("reading {object}: {source}")]
    Observe {
        /// What was read.
        object: String,
        /// Why it could not be read.
        #[source]
        source: Cause,
    },
    /// Applying a managed object (or deleting one no longer wanted) failed.
    #[error("{object}: {source}")]
    Apply {
        /// The object, as `Kind namespace/name`, or the objects, as in the condition message.
        object: String,
        /// Why it could not be applied.
        #[source]
        source: Cause,
    },
    /// Scaling a suspended tenant's workloads down, or restoring them, failed.
    #[error("{object}: {source}")]
    Scale {
        /// Which workloads (`workloads in <namespace>`).
        object: String,
        /// Why they could not be scaled.
        #[source]
        source: Cause,
    },
    /// Releasing a tenant namespace (Retain) or deleting it (Delete, or its retention ended) failed.
    #[error("{object}: {source}")]
    Release {
        /// The namespace, as in the condition message.
        object: String,
        /// Why it could not be released or deleted.
        #[source]
        source: Cause,
    },
    /// Writing the object's status failed.
    #[error("writing the status of {object}: {source}")]
    Status {
        /// The object, as `Kind name`.
        object: String,
        /// Why the status could not be written.
        #[source]
        source: Cause,
    },
    /// Adding or removing the finalizer failed, or the stage it ran (apply or cleanup) did.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A stable, low-cardinality name of the failure, for metrics labels and Event reasons: the stage
    /// that failed, or `conflict` when someone else wrote in between (retried at once; no alert).
    pub fn category(&self) -> Category {
        if self.conflict() {
            Category::Conflict
        } else {
            self.stage()
        }
    }

    /// The stage that failed; through the finalizer, the stage it ran.
    fn stage(&self) -> Category {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Observe { .. } => Category::Observe,
            Error::Apply { .. } => Category::Apply,
            Error::Scale { .. } => Category::Scale,
            Error::Release { .. } => Category::Release,
            Error::Status { .. } => Category::Status,
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.stage(),
                _ => Category::Finalizer,
            },
        }
    }

    /// Whether the API server answered that the object changed meanwhile: 409, or the finalizer's
    /// JSON-patch test failing (422). A stage the finalizer ran is retried like any other failure.
    fn conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(f) => match f.as_ref() {
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => matches!(
                    ApiErrorKind::of(e),
                    ApiErrorKind::Conflict | ApiErrorKind::Invalid
                ),
                _ => false,
            },
            e => e
                .cause()
                .and_then(Cause::api)
                .is_some_and(|s| ApiErrorKind::of_status(s) == ApiErrorKind::Conflict),
        }
    }

    /// What the failed stage concerned, if it names an object.
    pub fn object(&self) -> Option<&str> {
        match self {
            Error::Observe { object, .. }
            | Error::Apply { object, .. }
            | Error::Scale { object, .. }
            | Error::Release { object, .. }
            | Error::Status { object, .. } => Some(object),
            Error::Finalizer(_) => None,
        }
    }

    /// What the request of the failed stage failed with (`None` for the finalizer's own error).
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Error::Observe { source, .. }
            | Error::Apply { source, .. }
            | Error::Scale { source, .. }
            | Error::Release { source, .. }
            | Error::Status { source, .. } => Some(source),
            Error::Finalizer(_) => None,
        }
    }

    /// The error with its whole source chain, for logs and Warning events.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur = self.source();
        while let Some(e) = cur {
            let m = e.to_string();
            if !s.contains(&m) {
                s.push_str(": ");
                s.push_str(&m);
            }
            cur = e.source();
        }
        s
    }
}

/// The result of a request, or (with `E = Error`) of a reconcile stage.
pub type Result<T, E = Cause> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> Cause {
        Cause::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "").with_code(code),
        )))
    }

    #[test]
    fn the_category_is_the_stage_unless_someone_else_wrote_in_between() {
        let apply = |source| Error::Apply {
            object: "LimitRange acme/limits".into(),
            source,
        };
        assert_eq!(apply(api(422, "max < default")).category(), Category::Apply);
        assert_eq!(apply(api(409, "modified")).category(), Category::Conflict);
        let status = Error::Status {
            object: "Account acme".into(),
            source: api(500, "etcd"),
        };
        assert_eq!(status.category(), Category::Status);
        let leading = Error::Release {
            object: "namespace acme-prod".into(),
            source: Cause::NotLeading("lease lost".into()),
        };
        assert_eq!(leading.category(), Category::Release);
    }

    #[test]
    fn through_the_finalizer_the_category_is_the_stage_it_ran() {
        use kube::runtime::finalizer::Error as F;
        let ran = F::ApplyFailed(Error::Apply {
            object: "Namespace acme-prod".into(),
            source: api(409, "modified"),
        });
        // A conflict in the stage the finalizer ran is retried after the usual pause.
        assert_eq!(Error::Finalizer(Box::new(ran)).category(), Category::Apply);
        let Cause::Kube(e) = api(409, "modified") else {
            unreachable!()
        };
        let remove = Error::Finalizer(Box::new(F::RemoveFinalizer(e)));
        assert_eq!(remove.category(), Category::Conflict);
        let unnamed = F::<Error>::UnnamedObject;
        assert_eq!(
            Error::Finalizer(Box::new(unnamed)).category(),
            Category::Finalizer
        );
    }

    fn status(code: u16, reason: &str, message: &str) -> kube::core::Status {
        kube::core::Status::failure(message, reason).with_code(code)
    }

    #[test]
    fn each_answer_of_the_api_server_has_one_kind() {
        use ApiErrorKind as K;
        let cases = [
            (404, "NotFound", "namespaces \"x\" not found", K::NotFound),
            (410, "Gone", "too old resource version", K::NotFound),
            (
                409,
                "AlreadyExists",
                "namespaces \"x\" already exists",
                K::AlreadyExists,
            ),
            (409, "Conflict", "the object has been modified", K::Conflict),
            (422, "Invalid", "spec.hard: Invalid value", K::Invalid),
            (
                422,
                "Invalid",
                "metadata.annotations: Too long: must have at most 262144 bytes",
                K::Invalid,
            ),
            (
                413,
                "RequestEntityTooLarge",
                "request entity too large",
                K::TooLarge,
            ),
            (
                500,
                "InternalError",
                "etcdserver: request is too large",
                K::TooLarge,
            ),
            (422, "Invalid", "object is too large", K::TooLarge),
            (
                403,
                "Forbidden",
                "denied by ValidatingAdmissionPolicy",
                K::Forbidden,
            ),
            (429, "TooManyRequests", "throttled", K::Throttled),
            (400, "BadRequest", "bad patch", K::Rejected),
            (500, "InternalError", "etcd leader changed", K::Unavailable),
            (503, "ServiceUnavailable", "", K::Unavailable),
        ];
        for (code, reason, message, kind) in cases {
            assert_eq!(
                ApiErrorKind::of_status(&status(code, reason, message)),
                kind,
                "{code} {reason}: {message}"
            );
        }
    }

    #[test]
    fn only_races_throttling_and_outages_are_retried_without_a_person() {
        use ApiErrorKind as K;
        for k in [K::Conflict, K::AlreadyExists, K::Throttled, K::Unavailable] {
            assert!(!k.permanent(), "{k:?}");
        }
        for k in [
            K::NotFound,
            K::Invalid,
            K::TooLarge,
            K::Forbidden,
            K::Rejected,
        ] {
            assert!(k.permanent(), "{k:?}");
        }
    }

    #[test]
    fn the_chain_names_the_object_and_the_api_servers_answer() {
        let e = Error::Apply {
            object: "LimitRange acme-prod/limits".into(),
            source: api(422, "max cpu 250m is below the default 500m"),
        };
        let chain = e.chain();
        assert!(
            chain.starts_with("LimitRange acme-prod/limits: "),
            "{chain}"
        );
        assert!(
            chain.contains("max cpu 250m is below the default 500m"),
            "{chain}"
        );
        // The sources repeat what the stage already says: nothing is appended twice.
        assert_eq!(chain, e.to_string());
    }
}
