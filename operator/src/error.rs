//! Reconcile errors, one variant per stage, each with a stable category for metrics and Event reasons.

use std::error::Error as _;

/// Anything that stops a reconcile. Invalid user input is not an error: it is reported in conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to the API server failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// An object could not be turned into JSON for an apply.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// An object the controller relies on is missing its name or another required field.
    #[error("malformed object: {0}")]
    Malformed(String),
    /// This replica may no longer lead (the fence), so it does nothing it cannot take back.
    #[error("not leading: {0}")]
    NotLeading(String),
}

impl Error {
    /// A stable, low-cardinality name of the failure, for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Finalizer(f) if matches!(f.as_ref(), kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(s)) | kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) if s.code == 409 || s.code == 422) => {
                "conflict"
            }
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::Finalizer(_) => "finalizer",
            Error::Serialization(_) => "serialization",
            Error::Malformed(_) => "malformed",
            Error::NotLeading(_) => "not_leading",
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

/// The result of a reconcile stage.
pub type Result<T, E = Error> = std::result::Result<T, E>;
