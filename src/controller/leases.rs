//! The lease manager: renews this replica's shard leases, takes free and expired ones up to a
//! fair share (the pure `lease::plan` decides), releases them on shutdown, and tells the loop
//! which releases it may act on: only those whose shard lease it holds and can still be sure
//! of (renewed within the lease duration minus the safety margin).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::lease::{Fence, Held, LeaseAction, LeaseTiming, Seen, is_safe, plan, shard_of};
use crate::ports::{LeaseStore, StoreError};

/// This replica's leases.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn LeaseStore>,
    /// This replica's identity (unique per process).
    pub me: String,
    pub shards: u32,
    /// Lease timing in tokio time (already scaled by the clock's speed).
    timing: LeaseTiming,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    held: BTreeMap<u32, Held>,
    seen: BTreeMap<u32, Seen>,
}

/// `call`, given up after `limit`: an unanswered call is an unavailable store, its outcome
/// unknown like any failed write's.
async fn within<T>(
    limit: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable {
            message: format!("{what} took longer than {limit:?}; given up"),
            throttled: false,
        })
    })
}

/// What one lease write changed, for the round's outcome.
enum Changed {
    Nothing,
    Taken,
    Lost,
}

/// What one round changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Shards this replica took in this round: their releases need a pass now.
    pub taken: Vec<u32>,
    /// Shards it lost (someone else's renew or take won).
    pub lost: Vec<u32>,
}

impl Leases {
    /// `timing` is in virtual time; it is converted with the clock's speed.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        me: impl Into<String>,
        shards: u32,
        timing: LeaseTiming,
        clock: &Clock,
    ) -> Self {
        let timing = LeaseTiming {
            duration: clock.to_tokio(timing.duration),
            renew_period: clock.to_tokio(timing.renew_period),
            safety_margin: clock.to_tokio(timing.safety_margin),
        };
        Self {
            store,
            me: me.into(),
            shards: shards.max(1),
            timing,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// The renew period in tokio time.
    pub fn renew_period(&self) -> std::time::Duration {
        self.timing.renew_period
    }

    pub fn shard_of(&self, release: &str) -> u32 {
        shard_of(release, self.shards)
    }

    /// The fence for writes about `release`, if this replica holds its shard's lease and can
    /// still be sure of it.
    pub fn fence_for(&self, release: &str) -> Option<Fence> {
        let shard = self.shard_of(release);
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .held
            .get(&shard)
            .filter(|held| is_safe(held, Instant::now(), self.timing))
            .map(|held| Fence {
                shard,
                owner: self.me.clone(),
                term: held.term,
            })
    }

    /// The shards held now and still safe to act on (see `fence_for`).
    pub fn held_safely(&self) -> BTreeSet<u32> {
        let now = Instant::now();
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .held
            .iter()
            .filter(|(_, held)| is_safe(held, now, self.timing))
            .map(|(shard, _)| *shard)
            .collect()
    }

    /// The shards held now (safe or not).
    pub fn held(&self) -> Vec<u32> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.held.keys().copied().collect()
    }

    /// One round: read every lease, renew ours, take or steal up to a fair share.
    ///
    /// The writes go out together, and each is given up after a renew period: one shard's
    /// call stalling (a DynamoDB request can hang until the SDK's attempt timeout, and retry)
    /// must not keep the others from being renewed before they stop being safe. A write given
    /// up has an unknown outcome, as any failed one: a renewal keeps the lease until
    /// `fence_for` finds it unsafe; a take is decided again by the next round's read.
    pub async fn round(&self) -> Result<RoundOutcome, StoreError> {
        let limit = self.timing.renew_period;
        let records = within(limit, "reading the leases", self.store.leases(self.shards)).await?;
        let now = Instant::now();
        let actions = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Inner { held, seen } = &mut *inner;
            plan(&self.me, now, self.timing, &records, held, seen)
        };
        let done = futures::future::join_all(
            actions
                .into_iter()
                .map(|action| async move { (action.clone(), self.apply(action, limit).await) }),
        )
        .await;
        let mut outcome = RoundOutcome::default();
        for (action, changed) in done {
            match (action, changed) {
                (LeaseAction::Renew { shard, .. }, Changed::Lost) => outcome.lost.push(shard),
                (
                    LeaseAction::Take { shard, .. } | LeaseAction::Steal { shard, .. },
                    Changed::Taken,
                ) => outcome.taken.push(shard),
                _ => {}
            }
        }
        Ok(outcome)
    }

    /// Sends one lease write, given up after `limit`, and records what it changed.
    async fn apply(&self, action: LeaseAction, limit: std::time::Duration) -> Changed {
        let sent_at = Instant::now();
        match action {
            LeaseAction::Renew {
                shard,
                expected_counter,
            } => {
                let renewed = within(
                    limit,
                    "renewing a lease",
                    self.store.renew_lease(shard, &self.me, expected_counter),
                )
                .await;
                match renewed {
                    Ok(record) => {
                        self.hold(shard, record.counter, record.term, sent_at);
                        Changed::Nothing
                    }
                    Err(StoreError::ConditionFailed { .. }) => {
                        warn!(
                            shard,
                            "lease lost: another replica took it, or a renewal given up earlier went through (taken again next round if free)"
                        );
                        self.drop_lease(shard);
                        Changed::Lost
                    }
                    // Unknown outcome (failed, or given up): keep the lease; `fence_for` stops
                    // acting on it once it is no longer safe.
                    Err(error) => {
                        debug!(shard, cause = %error, "lease renewal failed");
                        Changed::Nothing
                    }
                }
            }
            LeaseAction::Take {
                shard,
                expected_counter,
            }
            | LeaseAction::Steal {
                shard,
                expected_counter,
                ..
            } => {
                let taken = within(
                    limit,
                    "taking a lease",
                    self.store.take_lease(shard, &self.me, expected_counter),
                )
                .await;
                match taken {
                    Ok(record) => {
                        info!(shard, term = record.term, "lease taken");
                        self.hold(shard, record.counter, record.term, sent_at);
                        Changed::Taken
                    }
                    Err(StoreError::ConditionFailed { .. }) => {
                        debug!(shard, "lease taken by someone else first");
                        Changed::Nothing
                    }
                    Err(error) => {
                        debug!(shard, cause = %error, "taking a lease failed");
                        Changed::Nothing
                    }
                }
            }
        }
    }

    fn hold(&self, shard: u32, counter: u64, term: u64, renewed_at: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.seen.remove(&shard);
        inner.held.insert(
            shard,
            Held {
                counter,
                term,
                renewed_at,
            },
        );
    }

    fn drop_lease(&self, shard: u32) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.held.remove(&shard);
    }

    /// Releases every held lease (on graceful shutdown), so the next owner need not wait for
    /// them to expire. Best effort, all at once and each given up after a renew period: a
    /// lease that fails to release simply expires.
    pub async fn release_all(&self) {
        let held: Vec<(u32, u64)> = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut inner.held)
                .into_iter()
                .map(|(shard, held)| (shard, held.counter))
                .collect()
        };
        let limit = self.timing.renew_period;
        futures::future::join_all(held.into_iter().map(|(shard, counter)| async move {
            let released = within(
                limit,
                "releasing a lease",
                self.store.release_lease(shard, &self.me, counter),
            )
            .await;
            match released {
                Ok(()) => info!(shard, "lease released"),
                Err(error) => {
                    warn!(shard, cause = %error, "releasing a lease failed; it will expire")
                }
            }
        }))
        .await;
    }
}

impl crate::ports::HeldShards for Leases {
    fn shards(&self) -> u32 {
        self.shards
    }

    fn held_safely(&self) -> BTreeSet<u32> {
        Leases::held_safely(self)
    }
}
