//! The lease port: one lease per shard of releases, in the same store as the releases.

use async_trait::async_trait;

use super::StoreError;
pub use crate::lease::{Fence, LeaseRecord};

/// Shard leases. Every mutation is conditioned on the counter the caller last saw and
/// increments it; a failed condition is `StoreError::ConditionFailed`.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// The leases of shards `0..shards`; a lease never written is free with counter 0.
    async fn leases(&self, shards: u32) -> Result<Vec<LeaseRecord>, StoreError>;

    /// Renews a lease `owner` holds: counter + 1 if the counter is still `expected_counter`
    /// and the owner still `owner`. The term is unchanged.
    async fn renew_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError>;

    /// Takes a lease (free, expired, or stolen): owner = `owner`, counter + 1, and the term
    /// becomes the new counter, if the counter is still `expected_counter`.
    async fn take_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError>;

    /// Releases a lease `owner` holds (owner cleared, counter + 1), so the next replica can
    /// take it at once instead of waiting for it to expire.
    async fn release_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<(), StoreError>;
}
