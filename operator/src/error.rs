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
    pub fn category(&self) -> &'static str {
        if self.conflict() {
            "conflict"
        } else {
            self.stage()
        }
    }

    /// The stage that failed; through the finalizer, the stage it ran.
    fn stage(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Observe { .. } => "observe",
            Error::Apply { .. } => "apply",
            Error::Scale { .. } => "scale",
            Error::Release { .. } => "release",
            Error::Status { .. } => "status",
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.stage(),
                _ => "finalizer",
            },
        }
    }

    /// Whether the API server answered that the object changed meanwhile: 409, or the finalizer's
    /// JSON-patch test failing (422). A stage the finalizer ran is retried like any other failure.
    fn conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(f) => matches!(
                f.as_ref(),
                F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s))
                    if s.code == 409 || s.code == 422
            ),
            e => e
                .cause()
                .and_then(Cause::api)
                .is_some_and(|s| s.code == 409),
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
        assert_eq!(apply(api(422, "max < default")).category(), "apply");
        assert_eq!(apply(api(409, "modified")).category(), "conflict");
        let status = Error::Status {
            object: "Account acme".into(),
            source: api(500, "etcd"),
        };
        assert_eq!(status.category(), "status");
        let leading = Error::Release {
            object: "namespace acme-prod".into(),
            source: Cause::NotLeading("lease lost".into()),
        };
        assert_eq!(leading.category(), "release");
    }

    #[test]
    fn through_the_finalizer_the_category_is_the_stage_it_ran() {
        use kube::runtime::finalizer::Error as F;
        let ran = F::ApplyFailed(Error::Apply {
            object: "Namespace acme-prod".into(),
            source: api(409, "modified"),
        });
        // A conflict in the stage the finalizer ran is retried after the usual pause.
        assert_eq!(Error::Finalizer(Box::new(ran)).category(), "apply");
        let Cause::Kube(e) = api(409, "modified") else {
            unreachable!()
        };
        let remove = Error::Finalizer(Box::new(F::RemoveFinalizer(e)));
        assert_eq!(remove.category(), "conflict");
        let unnamed = F::<Error>::UnnamedObject;
        assert_eq!(Error::Finalizer(Box::new(unnamed)).category(), "finalizer");
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
