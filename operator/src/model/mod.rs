//! The pure stages of every reconcile: from observed objects and an injected `now` to the desired
//! children, the status and the next instant at which the answer changes. No I/O happens here, so
//! the operator and `covenant check` share one code path and every time window is unit-testable.

pub mod account;
pub mod account_quota;
pub mod gateway;
pub mod hostnames;
pub mod notice;
pub mod package;
pub mod phase;
pub mod plan;
pub mod policies;
pub mod quantity;
pub mod quota_names;
pub mod selfservice;
pub mod suspension;
pub mod tenant_policies;

/// A stable 64-bit FNV-1a hash (std's hasher may change between releases; this one is stored).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
