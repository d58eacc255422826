//! The imperative shell: observes each release, calls the pure `decide`, applies at most one
//! action, writes the status, and schedules the next pass.

mod alarms;
mod analysis;
mod budget;
mod caches;
mod codedeploy;
mod ecs;
mod leases;
mod lookup;
mod metered;
mod notifier;
mod observe;
mod pass;
mod queue;
mod resync;
mod task_definitions;
mod task_sets;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use budget::{
    ApiBudgets, BUDGET_SERVICES, BudgetSettings, INCREASE_PER_SECOND, MIN_FACTOR, Priority, Rate,
    current_priority, with_priority,
};
pub use caches::{ALARM_POLL, Caches, GROUP_TTL};
pub use leases::{Leases, RoundOutcome};
pub use metered::{MeteredProbe, MeteredProvider, MeteredStore};
pub use notifier::{Notifier, SEND_TIMEOUT};
pub use observe::describe_service;
pub use pass::{PassError, PassReport, observe_release, reconcile_guarded, reconcile_once};
pub use queue::WorkQueue;
pub use resync::{DESCRIBE_SERVICES_BATCH, Snapshot, take_snapshot};
pub use task_definitions::{FAMILY_SCAN_LIMIT, TaskDefinitionReader};

use crate::access::{AwsAccess, SessionSettings};
use crate::clock::Clock;
use crate::ports::{AwsProvider, HttpProbe, ReleaseStore};
use crate::state::ControllerState;

/// How the controller loop behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Every release is looked at again at least this often (virtual time).
    pub resync_period: Duration,
    /// At most this many passes run at once.
    pub concurrency: usize,
    /// On shutdown, in-flight passes get this long (real time) before they are cancelled.
    pub drain_timeout: Duration,
    /// The first delay after a failed pass; doubles per consecutive failure (with jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Seed for the backoff jitter; fixed in tests so runs repeat exactly.
    pub jitter_seed: Option<u64>,
    /// The fleet's API budgets per service, for every account and Region (`budget.rs`).
    pub api_budgets: BudgetSettings,
    /// At most this many routine passes (the resync's looks, a lease taken) exist at once,
    /// running or waiting for the API budget; the others wait in the queue, where a due
    /// release is still found behind them. A pass waiting for the budget holds no slot of
    /// `concurrency`, so without this bound a resync or a start with every release due
    /// spawned a pass per release at once (a task of about 60 KB each, whose memory the
    /// allocator then keeps): memory grew with the fleet. Due passes are never held by it.
    pub max_routine_passes: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync_period: Duration::from_secs(60),
            concurrency: 8,
            drain_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            jitter_seed: None,
            api_budgets: BudgetSettings::default(),
            max_routine_passes: MAX_ROUTINE_PASSES,
        }
    }
}

/// The default of [`ControllerConfig::max_routine_passes`]: enough routine looks waiting to
/// keep every place's budget busy, a few megabytes at most whatever the fleet's size.
pub const MAX_ROUTINE_PASSES: usize = 64;

/// Everything a pass needs, injected.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn ReleaseStore>,
    /// Every AWS call about a release gets its ports here: its region and account, with its
    /// role's credentials (metered).
    pub aws: Arc<AwsAccess>,
    pub clock: Clock,
    pub config: ControllerConfig,
    /// What the controller shares with the HTTP server and the demo.
    pub state: ControllerState,
    /// Deployment groups and alarm states shared by the passes.
    pub caches: Arc<Caches>,
    /// This replica's shard leases; `None`: this controller is alone and acts on every
    /// release (the demo, single-process tests).
    pub leases: Option<Leases>,
    /// The analyses' HTTP probes (metered); hyper from the controller's network by default.
    pub probe: Arc<dyn HttpProbe>,
    /// Sends the releases' notifications (`notifier.rs`).
    pub notifier: Arc<Notifier>,
    /// This replica's share of the fleet's API budget, which every AWS call about a release
    /// takes a token of (`budget.rs`).
    pub budgets: Arc<ApiBudgets>,
}

impl Context {
    /// A context whose store and AWS ports are metered into `state`.
    pub fn new(
        store: Arc<dyn ReleaseStore>,
        aws: Arc<dyn AwsProvider>,
        clock: Clock,
        config: ControllerConfig,
        state: ControllerState,
    ) -> Self {
        let home = aws.home();
        let budgets = Arc::new(ApiBudgets::at_speed(
            config.api_budgets.clone(),
            state.clone(),
            clock.speed(),
        ));
        let metered: Arc<dyn AwsProvider> = Arc::new(MeteredProvider {
            inner: aws,
            state: state.clone(),
            budgets: budgets.clone(),
            home: home.clone(),
        });
        Self {
            store: Arc::new(MeteredStore {
                inner: store,
                state: state.clone(),
                place: home.place_of_home(),
            }),
            aws: Arc::new(AwsAccess::new(
                metered,
                clock.clone(),
                SessionSettings::default(),
            )),
            clock,
            config,
            caches: Arc::new(Caches::default()),
            leases: None,
            probe: Arc::new(MeteredProbe {
                inner: Arc::new(crate::probe::HyperProbe::new()),
                state: state.clone(),
                place: home.place_of_home(),
            }),
            notifier: Arc::new(Notifier::default()),
            budgets,
            state,
        }
    }

    /// Probes HTTP endpoints through `probe` (metered) instead of the network: the demo and
    /// tests give the simulated endpoints.
    pub fn with_probe(mut self, probe: Arc<dyn HttpProbe>) -> Self {
        self.probe = Arc::new(MeteredProbe {
            inner: probe,
            state: self.state.clone(),
            place: self.aws.home().place_of_home(),
        });
        self
    }

    /// Sends notifications through `provider`, to `defaults` for releases whose spec names
    /// no destination.
    pub fn with_notifications(
        mut self,
        provider: Arc<dyn crate::ports::NotificationProvider>,
        defaults: Vec<crate::model::notifications::NotificationDestination>,
    ) -> Self {
        self.notifier = Arc::new(
            Notifier::new(Some(provider), defaults).at_home(self.aws.home().place_of_home()),
        );
        self
    }

    /// Assumes the releases' roles as `settings` says (the replica's session name, the
    /// external id); before the controller runs.
    pub fn with_session_settings(mut self, settings: SessionSettings) -> Self {
        self.aws = Arc::new(self.aws.with_settings(&self.clock, settings));
        self
    }

    /// A stored spec as the controller reads it: parsed and validated, its ARNs checked
    /// against where the controller resolves the release to live, and a `region` that is the
    /// controller's own left out (`Home::normalize`: not a new rollout target).
    pub(crate) fn parse_spec(
        &self,
        stored: &crate::ports::StoredSpec,
    ) -> Result<crate::model::ReleaseSpec, Vec<crate::model::validate::FieldError>> {
        let mut spec = crate::model::parse::parse_spec_value(&stored.value())?;
        let home = self.aws.home();
        let errors = home.check(&spec);
        if errors.is_empty() {
            home.normalize(&mut spec);
            Ok(spec)
        } else {
            Err(errors)
        }
    }

    /// Shares the releases with other replicas through `leases`; the replica's share of
    /// the API budget follows the shards it holds (none yet: one shard's).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.budgets.set_share(0, leases.shards);
        self.leases = Some(leases);
        self
    }

    /// Whether this replica may act on `release` now, and with which fence.
    pub(crate) fn may_act(&self, release: &str) -> Result<Option<crate::lease::Fence>, ()> {
        match &self.leases {
            None => Ok(None),
            Some(leases) => leases.fence_for(release).map(Some).ok_or(()),
        }
    }
}

/// How a run of the loop ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub passes: u64,
    pub failed_passes: u64,
    /// Passes still running when the drain limit passed, cancelled.
    pub cancelled_passes: usize,
}

/// The delay before retrying a release after `failures` consecutive failed passes.
/// Throttling doubles it again: AWS asked us to slow down.
pub fn backoff_delay(
    config: &ControllerConfig,
    failures: u32,
    throttled: bool,
    seed: u64,
) -> Duration {
    let builder = ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_factor(2.0)
        .with_jitter()
        .with_jitter_seed(seed)
        .without_max_times();
    let delay = builder
        .build()
        .nth(failures.saturating_sub(1) as usize)
        .unwrap_or(config.backoff_max);
    let delay = if throttled { delay * 2 } else { delay };
    delay.min(config.backoff_max)
}

/// Displays an error followed by each of its causes, `: `-separated.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Messages from spawned tasks back to the loop.
enum Event {
    /// A full resync described these releases' services (or will not): their passes now.
    ResyncPart(Vec<Snapshot>),
    /// A full resync finished: every release it listed was in a part before; these are
    /// their names (the releases that still exist).
    Resynced(Result<Vec<String>, crate::ports::StoreError>),
    /// The alarm watcher saw a watched alarm in ALARM: look at these releases now.
    AlarmFired(Vec<String>),
    /// This replica took these shards' leases: their releases need a pass now (a new owner
    /// reconciles recorded intents first, which every pass does).
    LeasesTaken(Vec<u32>),
    /// A notification attempt for this release ended: its outcome needs writing.
    Delivered(String),
}

/// Runs the controller until `shutdown` completes, then drains within the configured limit.
///
/// Passes are woken by the store's change feed (at once), by the periodic resync (from a
/// snapshot: no per-release reads), by the alarm watcher, and by each pass's own requeue.
pub async fn run(ctx: Context, shutdown: impl Future<Output = ()>) -> RunSummary {
    let mut summary = RunSummary::default();
    let mut queue = WorkQueue::new();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    // Snapshots from the last resync, used by the next pass of each release unless something
    // newer (a change, a finished pass) made them stale.
    let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut passes: JoinSet<(String, Instant, Result<PassReport, PassError>)> = JoinSet::new();
    // Which release each pass task runs for, so that a task that dies (aborted, or a panic
    // that escaped) still gives its release back to the queue.
    let mut pass_names: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    // Looks a rollout had scheduled when a pass for its notifications came first, and
    // releases whose delivery ended while their pass ran (see `Event::Delivered`).
    let mut held_looks: BTreeMap<String, Instant> = BTreeMap::new();
    let mut woken_after: BTreeSet<String> = BTreeSet::new();
    let mut changes = match &ctx.leases {
        Some(leases) => ctx.store.replica_changes(Arc::new(leases.clone())),
        None => ctx.store.changes(),
    };
    let mut resync_due = Instant::now();
    let mut resync_running = false;
    // Releases the change feed woke while a resync ran: written after it listed the store,
    // perhaps, so it cannot tell that they were deleted (their own passes will).
    let mut changed_in_resync: BTreeSet<String> = BTreeSet::new();
    let mut resync_task: Option<AbortOnDrop> = None;
    let mut jitter_counter: u64 = ctx.config.jitter_seed.unwrap_or(0);
    // Background tasks belong to this loop: dropping it (a cancelled run, a crash in a test)
    // aborts them, exactly as a dying process would.
    // A rollback alarm's look is due work: it goes ahead of routine looks in the budget.
    let _watcher = AbortOnDrop(tokio::spawn(with_priority(
        Priority::Due,
        alarms::watch_alarms(ctx.clone(), events_tx.clone()),
    )));
    let lease_keeper = ctx.leases.clone().map(|leases| {
        let tx = events_tx.clone();
        let budgets = ctx.budgets.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                let round = catching_panics("the lease keeper", leases.round()).await;
                // The budget's share follows the shards held after every round.
                budgets.set_share(leases.held_safely().len(), leases.shards);
                let Ok(round) = round else {
                    tokio::time::sleep(leases.renew_period()).await;
                    continue;
                };
                match round {
                    Ok(outcome) if !outcome.taken.is_empty() => {
                        if tx.send(Event::LeasesTaken(outcome.taken)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => warn!(cause = %error, "reading the leases failed"),
                }
                tokio::time::sleep(leases.renew_period()).await;
            }
        }))
    });
    let _deliveries = {
        let tx = events_tx.clone();
        AbortOnDrop(tokio::spawn(Arc::clone(&ctx.notifier).deliveries(
            ctx.state.clone(),
            ctx.clock.clone(),
            move |release| {
                let _ = tx.send(Event::Delivered(release));
            },
        )))
    };
    tokio::pin!(shutdown);

    // A pass for a routine look (the resync's, a lease taken: `WorkQueue::enqueue_routine`)
    // yields its calls to due ones in the API budget. Every other pass (its own scheduled
    // look, a change, an alarm, a delivery, a retry) is due.
    // Releases whose last pass acted: their next pass reads the action back, and goes ahead
    // of due looks in the budget as the action did (a rollout in the middle of a step: with
    // a full bucket, a look queued behind every other release's would delay each step by a
    // round of the whole queue).
    let mut reading_back: BTreeSet<String> = BTreeSet::new();
    // The routine passes spawned and not yet ended (`ControllerConfig::max_routine_passes`).
    let mut routine_passes: BTreeSet<tokio::task::Id> = BTreeSet::new();
    // Passes waiting for the API budget hold no slot: others (other places, due work that
    // goes first in the budget) start meanwhile.
    let active = |passes: &JoinSet<_>| passes.len().saturating_sub(ctx.budgets.waiting());

    loop {
        // Start due passes while there is capacity. Routine passes at their limit: only due
        // work starts, found behind them; the routine looks left wait for one to end (and the
        // loop does not wake for them until then).
        let mut routine_held = false;
        while active(&passes) < ctx.config.concurrency {
            let routine_too = routine_passes.len() < ctx.config.max_routine_passes.max(1);
            routine_held = !routine_too;
            let Some((name, routine)) = queue.pop_due(Instant::now(), routine_too) else {
                break;
            };
            let reads_back = reading_back.remove(&name);
            let priority = if routine && !reads_back {
                Priority::Routine
            } else if reads_back {
                Priority::Action
            } else {
                Priority::Due
            };
            let snapshot = snapshots.remove(&name);
            let Ok(fence) = ctx.may_act(&name) else {
                // Another replica owns it (or this one cannot be sure it still does). Forget
                // its backoff too, so the next resync (or lease take) schedules it again.
                queue.finish(&name);
                failures.remove(&name);
                continue;
            };
            let ctx = ctx.clone();
            let task_name = name.clone();
            let handle = passes.spawn(async move {
                let started = Instant::now();
                let result =
                    with_priority(priority, reconcile_guarded(&ctx, &name, snapshot, fence)).await;
                ctx.state
                    .metrics()
                    .record_pass(started.elapsed(), result.is_ok());
                (name, started, result)
            });
            pass_names.insert(handle.id(), task_name);
            if priority == Priority::Routine {
                routine_passes.insert(handle.id());
            }
        }
        if !resync_running && Instant::now() >= resync_due {
            resync_running = true;
            changed_in_resync.clear();
            let ctx = ctx.clone();
            let tx = events_tx.clone();
            // Releases in flight with a look of their own scheduled (or in one now) are not
            // described by the resync: following a deployment needs no DescribeServices.
            let mut scheduled = queue.scheduled_or_running();
            scheduled.retain(|name| ctx.state.is_in_flight(name));
            resync_task = Some(AbortOnDrop(tokio::spawn(async move {
                let parts = tx.clone();
                let hand_over = move |part: Vec<Snapshot>| {
                    let _ = parts.send(Event::ResyncPart(part));
                };
                // A resync that panics (a bug) fails like one that cannot list: the loop
                // tries again soon. Ending silently would leave `resync_running` set, and no
                // resync would ever run again.
                let listed =
                    catching_panics("the resync", take_snapshot(&ctx, &scheduled, &hand_over))
                        .await
                        .unwrap_or_else(|what| {
                            Err(crate::ports::StoreError::Other {
                                message: format!("the resync panicked: {what}"),
                            })
                        });
                let _ = tx.send(Event::Resynced(listed));
            })));
        }
        let next_queued = queue.next_due(!routine_held);
        let next_wake = match (next_queued, resync_running) {
            (Some(due), false) => due.min(resync_due),
            (Some(due), true) => due,
            (None, false) => resync_due,
            (None, true) => Instant::now() + Duration::from_secs(3600),
        };
        let capacity = active(&passes) < ctx.config.concurrency;
        ctx.state.metrics().queue_depth.set(queue.len() as i64);
        ctx.state
            .metrics()
            .passes_in_flight
            .set(passes.len() as i64);

        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(joined) = passes.join_next_with_id(), if !passes.is_empty() => {
                let (name, started, result) = match joined {
                    Ok((id, outcome)) => {
                        pass_names.remove(&id);
                        routine_passes.remove(&id);
                        outcome
                    }
                    Err(error) => {
                        routine_passes.remove(&error.id());
                        let Some(name) = pass_names.remove(&error.id()) else { continue };
                        let why = if error.is_panic() { "the pass task panicked" } else { "the pass task was cancelled" };
                        (name, Instant::now(), Err(PassError::Panicked(why.into())))
                    }
                };
                summary.passes += 1;
                queue.finish(&name);
                match result {
                    Ok(report) => {
                        failures.remove(&name);
                        // Looks are spaced from the start of the pass: polling every n
                        // seconds means a look every n seconds, however long a look takes.
                        let at = |after: Duration| (started + ctx.clock.to_tokio(after)).max(Instant::now());
                        let mut next = report.requeue_after.map(at);
                        // A pass made early for a notification never postpones the look
                        // the rollout had scheduled.
                        if let Some(held) = held_looks.remove(&name).filter(|h| *h > started) {
                            next = Some(next.map_or(held, |n| n.min(held)));
                        }
                        let mut notify = report.notify_after.map(at);
                        if woken_after.remove(&name) {
                            notify = Some(Instant::now());
                        }
                        if let Some(notify) = notify
                            && next.is_none_or(|n| notify < n)
                        {
                            if let Some(look) = next {
                                held_looks.insert(name.clone(), look);
                            }
                            next = Some(notify);
                        }
                        if let Some(release) = report.release {
                            // With a change feed, any write by someone else wakes the
                            // release and drops this record; until then it is the latest
                            // (and status writes are conditional anyway), so the next pass
                            // need not read it again. Kept only when a pass is scheduled:
                            // a settled release's next look comes with the next resync.
                            if changes.is_some()
                                && !report.deleted
                                && next.is_some()
                                && let Some(spec) = report.spec
                            {
                                let service = match report.service {
                                    Some(service) => crate::reconcile::Lookup::Found(service),
                                    None => crate::reconcile::Lookup::NotLookedUp,
                                };
                                snapshots.insert(name.clone(), Snapshot {
                                    spec: Some(spec),
                                    record: release.clone(),
                                    service,
                                });
                            }
                            ctx.state.update_release(release);
                        }
                        ctx.state.metrics().record_outcomes(report.new_outcomes.iter().copied());
                        ctx.state
                            .metrics()
                            .record_measurements(report.new_measurements.iter().copied());
                        if report.action.is_some() && !report.deleted {
                            reading_back.insert(name.clone());
                        } else {
                            reading_back.remove(&name);
                        }
                        if report.deleted {
                            known.remove(&name);
                            queue.forget(&name);
                            held_looks.remove(&name);
                            woken_after.remove(&name);
                            ctx.notifier.forget(&name);
                            snapshots.remove(&name);
                            ctx.caches.unfollow(&name);
                            ctx.state.remove_release(&name);
                        } else if let Some(due) = next {
                            queue.enqueue(&name, due);
                        }
                    }
                    Err(error) => {
                        reading_back.remove(&name);
                        summary.failed_passes += 1;
                        let count = failures.entry(name.clone()).or_insert(0);
                        *count += 1;
                        jitter_counter = jitter_counter.wrapping_add(1);
                        let delay = backoff_delay(&ctx.config, *count, error.is_throttling(), jitter_counter);
                        warn!(release = %name, cause = %ErrorChain(&error), failures = *count, retry_in = ?delay, "reconcile pass failed");
                        queue.enqueue(&name, ctx.clock.deadline_after(delay));
                    }
                }
            }
            Some(event) = events_rx.recv() => match event {
                Event::ResyncPart(part) => {
                    take_in_resync_part(&ctx, part, &mut queue, &failures, &mut snapshots);
                }
                Event::Resynced(Ok(names)) => {
                    resync_running = false;
                    resync_due = ctx.clock.deadline_after(ctx.config.resync_period);
                    let mut names: BTreeSet<String> = names.into_iter().collect();
                    names.append(&mut changed_in_resync);
                    finish_resync(&ctx, names, &mut queue, &mut failures, &mut snapshots, &mut known);
                }
                Event::Resynced(Err(error)) => {
                    resync_running = false;
                    resync_due = ctx.clock.deadline_after(ctx.config.backoff_min.max(Duration::from_secs(5)));
                    warn!(cause = %error, "listing releases failed; resync retries soon");
                }
                Event::LeasesTaken(shards) => {
                    if let Some(leases) = &ctx.leases {
                        for name in known.iter().filter(|n| shards.contains(&leases.shard_of(n))) {
                            snapshots.remove(name);
                            queue.enqueue_routine(name, Instant::now());
                        }
                    }
                }
                Event::Delivered(name) => {
                    // Its outcome needs writing: a pass now, keeping the rollout's next look.
                    if queue.is_running(&name) {
                        woken_after.insert(name);
                    } else {
                        if let Some(due) = queue.due(&name) {
                            let held = held_looks.entry(name.clone()).or_insert(due);
                            *held = (*held).min(due);
                        }
                        queue.enqueue(&name, Instant::now());
                    }
                }
                Event::AlarmFired(names) => {
                    for name in names {
                        snapshots.remove(&name);
                        queue.enqueue(&name, Instant::now());
                    }
                }
            },
            Some(name) = next_change(&mut changes) => {
                debug!(release = %name, "woken by a change");
                if resync_running {
                    changed_in_resync.insert(name.clone());
                }
                known.insert(name.clone());
                snapshots.remove(&name);
                queue.enqueue(&name, Instant::now());
            }
            _ = tokio::time::sleep_until(next_wake), if capacity => {}
            // A pass that starts waiting for the budget frees its slot.
            _ = ctx.budgets.wait_started(), if !capacity => {}
        }
    }

    // Background work never outlives the loop: a resync or alarm poll stuck on a hanging AWS
    // call is cancelled, not waited for; the lease keeper stops renewing before the release.
    drop(_watcher);
    drop(resync_task);
    drop(lease_keeper);
    info!(
        in_flight = passes.len(),
        "shutting down: draining in-flight passes"
    );
    let drained = tokio::time::timeout(ctx.config.drain_timeout, async {
        while passes.join_next().await.is_some() {
            summary.passes += 1;
        }
    })
    .await;
    if drained.is_err() {
        summary.cancelled_passes = passes.len();
        warn!(
            cancelled = passes.len(),
            "drain limit reached; cancelling in-flight passes"
        );
        passes.abort_all();
        while passes.join_next().await.is_some() {}
    }
    // Hand the shards over at once rather than making the next owner wait for expiry.
    if let Some(leases) = &ctx.leases {
        leases.release_all().await;
    }
    summary
}

/// Takes in a part of a full resync (releases listed, and their services described): refreshes
/// the shared state, and schedules a pass now for every release, except those in flight with
/// a look of their own scheduled and nothing new in the store (the resync would only add a
/// look, and did not describe their services; their record from their last pass is at least
/// as new), those in backoff (they keep it) and those running (they read afresh).
fn take_in_resync_part(
    ctx: &Context,
    part: Vec<Snapshot>,
    queue: &mut WorkQueue,
    failures: &BTreeMap<String, u32>,
    snapshots: &mut BTreeMap<String, Snapshot>,
) {
    let mut records = Vec::with_capacity(part.len());
    let mut fresh = Vec::with_capacity(part.len());
    for mut snapshot in part {
        // A resync lists first and describes after, for as long as its place's budget takes:
        // a pass may have written a newer record since. That one stands, with the service
        // just described.
        if let Some(held) = ctx.state.release_shared(&snapshot.record.name)
            && newer(&held, &snapshot.record)
        {
            snapshot.record = held;
        }
        let name = &snapshot.record.name;
        let kept = queue
            .due(name)
            .filter(|_| ctx.state.is_in_flight(name))
            .and_then(|_| ctx.state.release_shared(name))
            .filter(|held| nothing_new(&snapshot.record, held));
        match kept {
            // Its snapshot from its last pass, if any, stays.
            Some(held) => records.push(held),
            None => {
                records.push(snapshot.record.clone());
                fresh.push(snapshot);
            }
        }
    }
    ctx.state.refresh_releases(records);
    for snapshot in fresh {
        let name = snapshot.record.name.clone();
        // A release in backoff keeps its backoff; a running one gets a fresh read.
        if failures.contains_key(&name) || queue.is_running(&name) {
            snapshots.remove(&name);
            continue;
        }
        // A look the release had scheduled anyway stays due; otherwise the resync's is routine.
        queue.enqueue_routine(&name, Instant::now());
        snapshots.insert(name, snapshot);
    }
}

/// Ends a full resync whose parts were all taken in: forgets the releases deleted since the
/// last one (`names`: those listed, and those written since), sweeps the caches, and marks
/// the controller synced.
fn finish_resync(
    ctx: &Context,
    names: BTreeSet<String>,
    queue: &mut WorkQueue,
    failures: &mut BTreeMap<String, u32>,
    snapshots: &mut BTreeMap<String, Snapshot>,
    known: &mut BTreeSet<String>,
) {
    for gone in known.difference(&names) {
        debug!(release = %gone, "release deleted; management stops");
        queue.forget(gone);
        failures.remove(gone);
        ctx.caches.unfollow(gone);
    }
    snapshots.retain(|name, _| names.contains(name));
    ctx.state.retain_releases(&names);
    ctx.caches.sweep();
    ctx.state.mark_synced();
    *known = names;
}

/// Whether `held` (from a pass) is newer than `listed` (from a resync that listed the store
/// before that pass wrote): a later spec, or a later status of the same spec.
fn newer(held: &crate::ports::StoredRelease, listed: &crate::ports::StoredRelease) -> bool {
    held.generation > listed.generation
        || (held.generation == listed.generation && held.status_version > listed.status_version)
}

/// Whether a listed record brings nothing the controller has not seen in `known`, its record
/// as its last pass left it: the same spec and requests, and no status written by anyone else
/// (a listing taken while a pass was writing may be older).
fn nothing_new(listed: &crate::ports::StoredRelease, known: &crate::ports::StoredRelease) -> bool {
    listed.generation == known.generation
        && listed.requests == known.requests
        && listed.status_version <= known.status_version
}

/// Runs background work of the loop (a resync, a round of the lease keeper or of the alarm
/// watcher) so that a panic in it, a bug, is caught and logged instead of silently ending
/// the task that runs it: `Err` is what the panic said.
pub(crate) async fn catching_panics<T>(
    what: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, String> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(done) => Ok(done),
        Err(panic) => {
            let message = pass::panic_message(panic.as_ref());
            tracing::error!(task = what, panic = %message, "a background task of the controller panicked; it goes on");
            Err(message)
        }
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next name from the store's change feed, or never if it has none (or it ended).
async fn next_change(
    changes: &mut Option<futures::stream::BoxStream<'static, String>>,
) -> Option<String> {
    match changes {
        Some(stream) => match stream.next().await {
            Some(name) => Some(name),
            None => {
                *changes = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
