//! The pure stages of every reconcile: from observed objects and an injected `now` to the desired
//! children, the status and the next instant at which the answer changes. No I/O happens here, so
//! the operator and `covenant check` share one code path and every time window is unit-testable.

pub mod account;
pub mod hostnames;
pub mod notice;
pub mod package;
pub mod phase;
pub mod policies;
pub mod suspension;

#[cfg(test)]
mod tests;
