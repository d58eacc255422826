//! Simulated release store: DynamoDB-like conditional writes and a change feed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::model::{
    AuditEntry, OperatorRequest, ReleaseStatus, RequestKind, Requests, append_audit, bounded_detail,
};
use crate::ports::{
    Fence, LeaseRecord, LeaseStore, ReleaseStore, SpecPrecondition, SpecWrite, StoreError,
    StoredRelease,
};

use super::faults::{Decision as FaultDecision, Fault, FaultInjector, FaultRule};
use super::lock;

/// How many change notifications a slow reader may fall behind before it skips some.
const CHANGE_FEED_CAPACITY: usize = 1024;

/// A stored item: a decodable release, or a record a test marked undecodable.
/// Releases per page of `list_pages` (DynamoDB pages by size: 1 MB is about 700 releases).
const SIM_PAGE: usize = 500;

#[derive(Debug, Clone)]
enum Item {
    Release(Box<StoredRelease>),
    Corrupt { message: String },
}

struct Inner {
    clock: Clock,
    items: Mutex<BTreeMap<String, Item>>,
    /// Shard leases (the `lease#<n>` items of the table). Locked after `items` when both are
    /// needed (a fenced status write), never before.
    leases: Mutex<BTreeMap<u32, LeaseRecord>>,
    faults: FaultInjector,
    changes: broadcast::Sender<String>,
    /// Told about every committed status write (see `observe_status_writes`).
    status_observer: Mutex<Option<StatusObserver>>,
}

/// A status write the store committed, as `observe_status_writes` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedStatusWrite {
    pub release: String,
    /// The fence the write was conditioned on (held, since the write committed).
    pub fence: Option<Fence>,
    /// The status version the write produced.
    pub status_version: u64,
    pub status: ReleaseStatus,
}

type StatusObserver = Arc<dyn Fn(&CommittedStatusWrite) + Send + Sync>;

/// An in-process [`ReleaseStore`] with DynamoDB's conditional-write semantics, call counting
/// (`dynamodb:Scan`, `GetItem`, `UpdateItem`, `DeleteItem`) and fault injection. Cheap to
/// clone; clones share the same data.
#[derive(Clone)]
pub struct SimStore {
    inner: Arc<Inner>,
}

impl SimStore {
    /// An empty store whose injected latency passes on `clock`.
    pub fn new(clock: Clock) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                clock,
                items: Mutex::new(BTreeMap::new()),
                leases: Mutex::new(BTreeMap::new()),
                faults: FaultInjector::new(),
                changes,
                status_observer: Mutex::new(None),
            }),
        }
    }

    /// Reseeds the random source of probabilistic fault rules.
    pub fn with_seed(self, seed: u64) -> Self {
        self.inner.faults.reseed(seed);
        self
    }

    /// Adds a fault rule (operations `dynamodb:Scan`, `dynamodb:GetItem`,
    /// `dynamodb:UpdateItem`, `dynamodb:DeleteItem`, or `*`).
    pub fn inject(&self, rule: FaultRule) {
        self.inner.faults.inject(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
    }

    /// Calls `observer` with every status write the store commits, in commit order, at the
    /// moment it commits (under the store's lock: the observer must not call the store). A
    /// write whose response is then lost is reported too: it took effect. For the
    /// simulation's invariant checks; replaces any earlier observer.
    pub fn observe_status_writes(
        &self,
        observer: impl Fn(&CommittedStatusWrite) + Send + Sync + 'static,
    ) {
        *lock(&self.inner.status_observer) = Some(Arc::new(observer));
    }

    /// Calls per operation, including calls failed by injected faults.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.faults.counts()
    }

    /// The stored release, read without counting a call or meeting faults (for tests).
    pub fn peek(&self, name: &str) -> Option<StoredRelease> {
        match lock(&self.inner.items).get(name)? {
            Item::Release(r) => Some((**r).clone()),
            Item::Corrupt { .. } => None,
        }
    }

    /// Every decodable release, sorted by name, without counting a call or injecting a fault:
    /// for observers (the demo's progress, tests) that are not the controller.
    pub fn peek_all(&self) -> Vec<StoredRelease> {
        lock(&self.inner.items)
            .values()
            .filter_map(|item| match item {
                Item::Release(r) => Some((**r).clone()),
                Item::Corrupt { .. } => None,
            })
            .collect()
    }

    /// Replaces `name` with a record that cannot be decoded (as a hand-edited item could be):
    /// `get` reports it as `Corrupt`, `list` skips it.
    pub fn insert_corrupt(&self, name: &str, message: &str) {
        lock(&self.inner.items).insert(
            name.to_string(),
            Item::Corrupt {
                message: message.to_string(),
            },
        );
        self.notify(name);
    }

    fn notify(&self, name: &str) {
        // No receivers is fine: the feed is a best-effort wake-up signal.
        let _ = self.inner.changes.send(name.to_string());
    }

    /// Runs one store call: counts it, applies injected faults (latency first, then failures;
    /// a lost response still performs the call), then `body` under the lock. `body` pushes
    /// the names it changed; they are announced on the change feed once the lock is released,
    /// even when the response is then lost (the write happened).
    async fn call<T>(
        &self,
        operation: &'static str,
        body: impl FnOnce(&mut BTreeMap<String, Item>, &mut Vec<String>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let decision = self.before(operation).await?;
        let mut changed = Vec::new();
        let result = body(&mut lock(&self.inner.items), &mut changed);
        for name in &changed {
            self.notify(name);
        }
        Self::after(operation, &decision)?;
        result
    }

    /// Runs one lease call with the same counting and faults as any other store call.
    async fn call_leases<T>(
        &self,
        operation: &'static str,
        body: impl FnOnce(&mut BTreeMap<u32, LeaseRecord>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let decision = self.before(operation).await?;
        let result = body(&mut lock(&self.inner.leases));
        Self::after(operation, &decision)?;
        result
    }

    /// Counts the call and applies injected latency and failures that happen before it.
    async fn before(&self, operation: &'static str) -> Result<FaultDecision, StoreError> {
        let decision = self.inner.faults.on_call(operation);
        if !decision.latency.is_zero() {
            self.inner.clock.sleep(decision.latency).await;
        }
        match decision.failure {
            Some(Fault::Throttle) => Err(StoreError::Unavailable {
                message: format!("{operation}: ProvisionedThroughputExceededException (injected)"),
                throttled: true,
            }),
            Some(Fault::ServerError) => Err(StoreError::Unavailable {
                message: format!("{operation}: InternalServerError (injected)"),
                throttled: false,
            }),
            Some(Fault::AccessDenied) => Err(StoreError::Other {
                message: format!("{operation}: AccessDeniedException (injected)"),
            }),
            Some(Fault::Panic) => panic!("injected panic in {operation}"),
            _ => Ok(decision),
        }
    }

    /// A lost response: the call took effect, but the caller hears a failure.
    fn after(operation: &'static str, decision: &FaultDecision) -> Result<(), StoreError> {
        if decision.failure == Some(Fault::LostResponse) {
            return Err(StoreError::Unavailable {
                message: format!(
                    "{operation}: the response was lost (injected); the call may have taken effect"
                ),
                throttled: false,
            });
        }
        Ok(())
    }
}

fn decoded<'a>(name: &str, item: &'a mut Item) -> Result<&'a mut StoredRelease, StoreError> {
    match item {
        Item::Release(r) => Ok(r),
        Item::Corrupt { message } => Err(StoreError::Corrupt {
            name: name.to_string(),
            message: message.clone(),
        }),
    }
}

#[async_trait]
impl ReleaseStore for SimStore {
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError> {
        // A BTreeMap iterates in key order: releases come sorted by name.
        self.call("dynamodb:Scan", |items, _| {
            Ok(items
                .values()
                .filter_map(|item| match item {
                    Item::Release(r) => Some((**r).clone()),
                    Item::Corrupt { .. } => None,
                })
                .collect())
        })
        .await
    }

    /// One counted call, like `list`, handing out copies a page of [`SIM_PAGE`] releases at a
    /// time, as DynamoDB's Scan pages do.
    async fn list_pages(
        &self,
        page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        self.call("dynamodb:Scan", |items, _| {
            let mut releases = Vec::with_capacity(SIM_PAGE);
            for item in items.values() {
                if let Item::Release(r) = item {
                    releases.push((**r).clone());
                }
                if releases.len() == SIM_PAGE {
                    page(std::mem::replace(
                        &mut releases,
                        Vec::with_capacity(SIM_PAGE),
                    ));
                }
            }
            if !releases.is_empty() {
                page(releases);
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError> {
        self.call("dynamodb:GetItem", |items, _| match items.get_mut(name) {
            None => Ok(None),
            Some(item) => decoded(name, item).map(|r| Some(r.clone())),
        })
        .await
    }

    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError> {
        self.call("dynamodb:UpdateItem", |items, changed| {
            let condition_failed = || StoreError::ConditionFailed {
                name: write.name.clone(),
            };
            let current = items.get(&write.name);
            let current_generation = match current {
                Some(Item::Release(r)) => Some(r.generation),
                // An undecodable item still exists and has no readable generation.
                Some(Item::Corrupt { .. }) => None,
                None => None,
            };
            match write.precondition {
                SpecPrecondition::Absent if current.is_some() => return Err(condition_failed()),
                SpecPrecondition::Generation(g) if current_generation != Some(g) => {
                    return Err(condition_failed());
                }
                _ => {}
            }
            let generation = current_generation.unwrap_or(0) + 1;
            let entry = AuditEntry {
                at: write.written_at,
                by: write.written_by.clone(),
                action: write.action.as_str().to_string(),
                generation,
                detail: bounded_detail(&write.detail),
            };
            let mut release = match items.remove(&write.name) {
                // Only the spec part is written; requests, status and audit are kept.
                Some(Item::Release(mut r)) => {
                    r.generation = generation;
                    r.labels = write.labels;
                    r.spec = write.spec.into();
                    r.spec_updated_by = Some(write.written_by);
                    r.spec_updated_at = Some(write.written_at);
                    r
                }
                Some(Item::Corrupt { .. }) | None => Box::new(StoredRelease {
                    name: write.name.clone(),
                    generation,
                    labels: write.labels,
                    spec: write.spec.into(),
                    requests: Requests::default(),
                    status: None,
                    status_version: 0,
                    spec_updated_by: Some(write.written_by),
                    spec_updated_at: Some(write.written_at),
                    audit: Vec::new(),
                }),
            };
            append_audit(&mut release.audit, entry);
            changed.push(write.name.clone());
            items.insert(write.name, Item::Release(release));
            Ok(generation)
        })
        .await
    }

    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError> {
        self.call("dynamodb:UpdateItem", |items, changed| {
            let item = items.get_mut(name).ok_or_else(|| StoreError::NotFound {
                name: name.to_string(),
            })?;
            let release = decoded(name, item)?;
            let entry = AuditEntry {
                at: request.requested_at,
                by: request.requested_by.clone(),
                action: kind.as_str().to_string(),
                generation: request.generation,
                detail: String::new(),
            };
            release.requests.set(kind, request);
            append_audit(&mut release.audit, entry);
            changed.push(name.to_string());
            Ok(())
        })
        .await
    }

    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError> {
        // A fenced write is one transaction (lease check + update), as in DynamoDB.
        let operation = if fence.is_some() {
            "dynamodb:TransactWriteItems"
        } else {
            "dynamodb:UpdateItem"
        };
        let leases = &self.inner.leases;
        let observer = lock(&self.inner.status_observer).clone();
        // No change notification: these are the controller's own writes.
        self.call(operation, |items, _| {
            if let Some(fence) = fence {
                let leases = lock(leases);
                let held = leases.get(&fence.shard).is_some_and(|lease| {
                    lease.owner.as_deref() == Some(fence.owner.as_str()) && lease.term == fence.term
                });
                if !held {
                    return Err(StoreError::ConditionFailed {
                        name: name.to_string(),
                    });
                }
            }
            let item = items.get_mut(name).ok_or_else(|| StoreError::NotFound {
                name: name.to_string(),
            })?;
            let release = decoded(name, item)?;
            // Both conditions of the port: the controller's own version, and a spec that has
            // not moved on since the status was decided.
            if release.status_version != expected_version
                || release.generation != status.observed_generation
            {
                return Err(StoreError::ConditionFailed {
                    name: name.to_string(),
                });
            }
            release.status = Some(status.clone());
            release.status_version += 1;
            if let Some(observer) = &observer {
                observer(&CommittedStatusWrite {
                    release: name.to_string(),
                    fence: fence.cloned(),
                    status_version: release.status_version,
                    status: status.clone(),
                });
            }
            Ok(release.status_version)
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.call("dynamodb:DeleteItem", |items, changed| {
            // Like a DynamoDB stream: deleting a missing item is no change.
            if items.remove(name).is_some() {
                changed.push(name.to_string());
            }
            Ok(())
        })
        .await
    }

    fn changes(&self) -> Option<BoxStream<'static, String>> {
        let receiver = self.inner.changes.subscribe();
        Some(
            stream::unfold(receiver, |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(name) => return Some((name, receiver)),
                        // Missed notifications are fine: the controller resyncs anyway.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .boxed(),
        )
    }
}

#[async_trait]
impl LeaseStore for SimStore {
    async fn leases(&self, shards: u32) -> Result<Vec<LeaseRecord>, StoreError> {
        self.call_leases("dynamodb:BatchGetItem", |leases| {
            Ok((0..shards)
                .map(|shard| {
                    leases.get(&shard).cloned().unwrap_or(LeaseRecord {
                        shard,
                        owner: None,
                        counter: 0,
                        term: 0,
                    })
                })
                .collect())
        })
        .await
    }

    async fn renew_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        self.call_leases("dynamodb:UpdateItem", |leases| {
            let lease = leases
                .get_mut(&shard)
                .filter(|l| l.owner.as_deref() == Some(owner) && l.counter == expected_counter)
                .ok_or_else(|| lease_conflict(shard))?;
            lease.counter += 1;
            Ok(lease.clone())
        })
        .await
    }

    async fn take_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        self.call_leases("dynamodb:UpdateItem", |leases| {
            let lease = leases.entry(shard).or_insert(LeaseRecord {
                shard,
                owner: None,
                counter: 0,
                term: 0,
            });
            if lease.counter != expected_counter {
                return Err(lease_conflict(shard));
            }
            lease.counter += 1;
            lease.term = lease.counter;
            lease.owner = Some(owner.to_string());
            Ok(lease.clone())
        })
        .await
    }

    async fn release_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<(), StoreError> {
        self.call_leases("dynamodb:UpdateItem", |leases| {
            let lease = leases
                .get_mut(&shard)
                .filter(|l| l.owner.as_deref() == Some(owner) && l.counter == expected_counter)
                .ok_or_else(|| lease_conflict(shard))?;
            lease.counter += 1;
            lease.owner = None;
            Ok(())
        })
        .await
    }
}

fn lease_conflict(shard: u32) -> StoreError {
    StoreError::ConditionFailed {
        name: format!("lease#{shard}"),
    }
}
