//! Lease assignment, as a pure function: which shard leases a replica should renew, take or
//! steal, given what it observed of the lease table and when.
//!
//! Releases are spread over a fixed number of shards (a stable hash of the name); each shard
//! has one lease. KCL-style, every renew and take increments the lease's counter under a
//! condition on its expected value. A contender judges expiry by its own clock only: a lease
//! is free when its counter has not moved for a full lease duration since the contender first
//! saw that value, or when its owner released it. No host trusts another host's wall clock.
//!
//! The fencing token is the lease's term: the counter value when the current owner took it.
//! Writes for a release are conditioned on (owner, term) of its shard's lease, so a replica
//! that lost a lease (paused, partitioned) cannot overwrite the new owner, while renewals,
//! which do not change the term, never invalidate the owner's own writes.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// A shard's lease as read from the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseRecord {
    pub shard: u32,
    /// `None` when released (free to take at once).
    pub owner: Option<String>,
    /// Incremented by every renew, take and release.
    pub counter: u64,
    /// The counter value when the current owner took the lease: the fencing token.
    pub term: u64,
}

/// The proof a writer carries: whose lease, which term. Writes conditioned on it fail once
/// the lease has moved on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fence {
    pub shard: u32,
    pub owner: String,
    pub term: u64,
}

/// Lease timing; validated so that expiry is well above the renew period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// A lease whose counter does not move for this long is free.
    pub duration: Duration,
    /// How often the owner renews.
    pub renew_period: Duration,
    /// The owner stops acting on a lease this long before it could have expired for others
    /// (renewal failing past `duration - safety_margin`).
    pub safety_margin: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(20),
            renew_period: Duration::from_secs(5),
            safety_margin: Duration::from_secs(5),
        }
    }
}

impl LeaseTiming {
    /// The duration must leave room for several renewals and the safety margin.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_period.is_zero() {
            return Err("leaseRenewPeriod must be positive".into());
        }
        if self.duration < self.renew_period * 3 {
            return Err(format!(
                "leaseDuration ({:?}) must be at least three times leaseRenewPeriod ({:?}), so one lost renewal does not lose the lease",
                self.duration, self.renew_period
            ));
        }
        if self.safety_margin < self.renew_period
            || self.safety_margin >= self.duration - self.renew_period
        {
            return Err(format!(
                "the safety margin ({:?}) must be at least one renew period and leave more than one renew period of the lease duration",
                self.safety_margin
            ));
        }
        Ok(())
    }
}

/// The shard of a release: a stable hash (FNV-1a) of its name, so every replica and every
/// version agrees.
pub fn shard_of(release: &str, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in release.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(shards.max(1))) as u32
}

/// A lease this replica holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub counter: u64,
    pub term: u64,
    /// When the last successful renew or take was sent (this replica's clock).
    pub renewed_at: Instant,
}

/// What this replica has seen of a lease it does not hold: a counter value and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub counter: u64,
    pub since: Instant,
}

/// One lease operation to attempt, each conditioned on `expected_counter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    Renew {
        shard: u32,
        expected_counter: u64,
    },
    /// Take a free or expired lease.
    Take {
        shard: u32,
        expected_counter: u64,
    },
    /// Take a live lease from a replica holding more than its fair share.
    Steal {
        shard: u32,
        expected_counter: u64,
        from: String,
    },
}

/// Updates `seen` with the latest records and decides what to renew, take and steal.
/// Pure: the time is a parameter.
pub fn plan(
    me: &str,
    now: Instant,
    timing: LeaseTiming,
    records: &[LeaseRecord],
    held: &BTreeMap<u32, Held>,
    seen: &mut BTreeMap<u32, Seen>,
) -> Vec<LeaseAction> {
    let mut actions = Vec::new();
    for (shard, lease) in held {
        actions.push(LeaseAction::Renew {
            shard: *shard,
            expected_counter: lease.counter,
        });
    }

    // Classify the others' leases: live (counter moved within a lease duration) or free.
    let mut free = Vec::new();
    let mut live_by_owner: BTreeMap<&str, Vec<&LeaseRecord>> = BTreeMap::new();
    for record in records {
        if held.contains_key(&record.shard) {
            continue;
        }
        let entry = seen.entry(record.shard).or_insert(Seen {
            counter: record.counter,
            since: now,
        });
        if entry.counter != record.counter {
            *entry = Seen {
                counter: record.counter,
                since: now,
            };
        }
        let expired = now.saturating_duration_since(entry.since) >= timing.duration;
        match &record.owner {
            Some(owner) if owner != me && !expired => {
                live_by_owner
                    .entry(owner.as_str())
                    .or_default()
                    .push(record);
            }
            _ => free.push(record),
        }
    }
    seen.retain(|shard, _| records.iter().any(|r| r.shard == *shard) && !held.contains_key(shard));

    // Fair share: the shards divided among the replicas that hold a live lease, and me.
    let replicas = live_by_owner.len() + 1;
    let shards = records.len();
    let target = shards.div_ceil(replicas);
    let mut holding = held.len();

    free.sort_by_key(|r| r.shard);
    for record in free {
        if holding >= target {
            break;
        }
        actions.push(LeaseAction::Take {
            shard: record.shard,
            expected_counter: record.counter,
        });
        holding += 1;
    }
    // Still short: steal one lease per round from the replica holding the most, if it holds
    // more than its share (one per round keeps handovers gradual).
    if holding < target
        && let Some((owner, leases)) = live_by_owner
            .iter()
            .filter(|(_, leases)| leases.len() > target)
            .max_by_key(|(owner, leases)| (leases.len(), std::cmp::Reverse(*owner)))
        && let Some(lease) = leases.iter().max_by_key(|l| l.shard)
    {
        actions.push(LeaseAction::Steal {
            shard: lease.shard,
            expected_counter: lease.counter,
            from: owner.to_string(),
        });
    }
    actions
}

/// Whether a held lease is still safe to act on: renewed recently enough that no contender
/// can have judged it expired yet.
pub fn is_safe(held: &Held, now: Instant, timing: LeaseTiming) -> bool {
    now.saturating_duration_since(held.renewed_at) < timing.duration - timing.safety_margin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(shard: u32, owner: Option<&str>, counter: u64) -> LeaseRecord {
        LeaseRecord {
            shard,
            owner: owner.map(str::to_string),
            counter,
            term: counter,
        }
    }

    fn takes(actions: &[LeaseAction]) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|a| match a {
                LeaseAction::Take { shard, .. } => Some(*shard),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_replica_takes_every_free_lease() {
        let records: Vec<_> = (0..4).map(|s| record(s, None, 0)).collect();
        let mut seen = BTreeMap::new();
        let actions = plan(
            "a",
            Instant::now(),
            LeaseTiming::default(),
            &records,
            &BTreeMap::new(),
            &mut seen,
        );
        assert_eq!(takes(&actions), vec![0, 1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_is_not_taken_before_its_counter_stood_still_for_a_full_duration() {
        let timing = LeaseTiming::default();
        let records = vec![record(0, Some("b"), 7)];
        let mut seen = BTreeMap::new();
        let start = Instant::now();
        assert!(
            takes(&plan(
                "a",
                start,
                timing,
                &records,
                &BTreeMap::new(),
                &mut seen
            ))
            .is_empty()
        );
        let almost = start + timing.duration - Duration::from_millis(1);
        assert!(
            takes(&plan(
                "a",
                almost,
                timing,
                &records,
                &BTreeMap::new(),
                &mut seen
            ))
            .is_empty()
        );
        let expired = start + timing.duration;
        assert_eq!(
            takes(&plan(
                "a",
                expired,
                timing,
                &records,
                &BTreeMap::new(),
                &mut seen
            )),
            vec![0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewed_lease_restarts_the_contenders_clock() {
        let timing = LeaseTiming::default();
        let mut seen = BTreeMap::new();
        let start = Instant::now();
        plan(
            "a",
            start,
            timing,
            &[record(0, Some("b"), 7)],
            &BTreeMap::new(),
            &mut seen,
        );
        let later = start + timing.duration;
        let renewed = [record(0, Some("b"), 8)];
        assert!(
            takes(&plan(
                "a",
                later,
                timing,
                &renewed,
                &BTreeMap::new(),
                &mut seen
            ))
            .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_balance_by_stealing_one_lease_per_round_from_the_richest() {
        // b holds all 6; a should get 3, one per round.
        let records: Vec<_> = (0..6).map(|s| record(s, Some("b"), 10)).collect();
        let mut seen = BTreeMap::new();
        let actions = plan(
            "a",
            Instant::now(),
            LeaseTiming::default(),
            &records,
            &BTreeMap::new(),
            &mut seen,
        );
        let steals: Vec<_> = actions
            .iter()
            .filter(|a| matches!(a, LeaseAction::Steal { .. }))
            .collect();
        assert_eq!(steals.len(), 1);
        assert!(matches!(steals[0], LeaseAction::Steal { shard: 5, from, .. } if from == "b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_at_its_fair_share_takes_nothing() {
        let now = Instant::now();
        let records = vec![record(0, Some("a"), 3), record(1, Some("b"), 3)];
        let held = BTreeMap::from([(
            0,
            Held {
                counter: 3,
                term: 1,
                renewed_at: now,
            },
        )]);
        let mut seen = BTreeMap::new();
        let actions = plan("a", now, LeaseTiming::default(), &records, &held, &mut seen);
        assert_eq!(
            actions,
            vec![LeaseAction::Renew {
                shard: 0,
                expected_counter: 3
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrenewed_lease_stops_being_safe_before_anyone_can_take_it() {
        let timing = LeaseTiming::default();
        let now = Instant::now();
        let held = Held {
            counter: 1,
            term: 1,
            renewed_at: now,
        };
        assert!(is_safe(
            &held,
            now + timing.duration - timing.safety_margin - Duration::from_millis(1),
            timing
        ));
        assert!(!is_safe(
            &held,
            now + timing.duration - timing.safety_margin,
            timing
        ));
    }

    #[test]
    fn timing_is_validated() {
        assert!(LeaseTiming::default().validate().is_ok());
        let bad = LeaseTiming {
            duration: Duration::from_secs(10),
            renew_period: Duration::from_secs(5),
            safety_margin: Duration::from_secs(5),
        };
        assert!(bad.validate().unwrap_err().contains("three times"));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("web", 16), shard_of("web", 16));
        let mut counts = [0u32; 16];
        for i in 0..1600 {
            counts[shard_of(&format!("release-{i}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (60..=140).contains(c)), "{counts:?}");
    }
}
