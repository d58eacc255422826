//! What the controller shares with its readers (the HTTP server, the demo): readiness, the
//! latest view of every release, and the metrics.
//!
//! The controller writes it after each pass and each resync; readers never call the store or
//! AWS, so a dashboard refreshing every two seconds costs nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{Outcome, Phase};
use crate::ports::StoredRelease;

/// The controller's shared state. Cheap to clone (an `Arc` inside).
#[derive(Clone, Default)]
pub struct ControllerState {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The first full resync has completed.
    synced: AtomicBool,
    /// The last store call succeeded.
    store_reachable: AtomicBool,
    releases: RwLock<Releases>,
    metrics: Metrics,
}

/// The latest record of every release, and what is derived from them incrementally as they
/// change (never by scanning the fleet): the count per phase, and the releases in flight
/// with the alarms that can roll them back.
#[derive(Default)]
struct Releases {
    by_name: BTreeMap<String, Arc<StoredRelease>>,
    phases: [i64; Phase::ALL.len()],
    in_flight: BTreeMap<String, Watched>,
}

/// A release with a deployment possibly in flight, as the alarm watcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// `spec.service.region`; `None`: the controller's region.
    pub region: Option<String>,
    /// `spec.service.roleArn`; `None`: the controller's own credentials and account.
    pub role_arn: Option<String>,
    /// `spec.strategy.codeDeploy.rollback.alarms`.
    pub alarms: Vec<String>,
}

/// Phases in which a deployment of the release may be in flight.
pub fn is_in_flight(phase: Phase) -> bool {
    matches!(phase, Phase::Progressing | Phase::AwaitingPromotion)
}

fn phase_of(release: &StoredRelease) -> Phase {
    // A release the controller has not looked at yet is Pending.
    release.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn phase_index(phase: Phase) -> usize {
    Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0)
}

impl Releases {
    /// Inserts or replaces one release; returns the phases whose counts changed.
    fn put(&mut self, release: Arc<StoredRelease>) -> [Option<Phase>; 2] {
        let phase = phase_of(&release);
        let name = release.name.clone();
        let watched = watched(&release);
        let old = self.by_name.insert(name.clone(), release);
        let old_phase = old.as_deref().map(phase_of);
        match watched {
            Some(w) => {
                self.in_flight.insert(name, w);
            }
            None => {
                self.in_flight.remove(&name);
            }
        }
        if old_phase == Some(phase) {
            return [None, None];
        }
        self.phases[phase_index(phase)] += 1;
        if let Some(old_phase) = old_phase {
            self.phases[phase_index(old_phase)] -= 1;
        }
        [Some(phase), old_phase]
    }

    fn remove(&mut self, name: &str) -> Option<Phase> {
        let old = self.by_name.remove(name)?;
        self.in_flight.remove(name);
        let phase = phase_of(&old);
        self.phases[phase_index(phase)] -= 1;
        Some(phase)
    }
}

/// What the alarm watcher needs of a release in flight; `None` when none is in flight or it
/// watches no alarm. Parses the spec, which is done only for releases in flight.
fn watched(release: &StoredRelease) -> Option<Watched> {
    if !is_in_flight(phase_of(release)) {
        return None;
    }
    let spec = crate::model::parse::parse_spec_value(&release.spec.value()).ok()?;
    let alarms = spec.rollback_alarms();
    (!alarms.is_empty()).then(|| Watched {
        region: spec.service.region.clone(),
        role_arn: spec.service.role_arn.clone(),
        alarms: alarms.to_vec(),
    })
}

impl ControllerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ready: the first sync is done and the store answered its last call.
    pub fn is_ready(&self) -> bool {
        self.inner.synced.load(Ordering::Relaxed)
            && self.inner.store_reachable.load(Ordering::Relaxed)
    }

    pub fn mark_synced(&self) {
        self.inner.synced.store(true, Ordering::Relaxed);
    }

    pub fn set_store_reachable(&self, reachable: bool) {
        self.inner
            .store_reachable
            .store(reachable, Ordering::Relaxed);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Releases> {
        self.inner
            .releases
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Releases> {
        self.inner
            .releases
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records the latest known record of a release (after a pass or a resync). Passing the
    /// `Arc` already held (a pass that changed nothing) costs nothing.
    pub fn update_release(&self, release: impl Into<Arc<StoredRelease>>) {
        let release = release.into();
        let mut releases = self.write();
        if releases
            .by_name
            .get(&release.name)
            .is_some_and(|held| Arc::ptr_eq(held, &release))
        {
            return;
        }
        self.inner.metrics.set_release_series(&release);
        let changed = releases.put(release);
        self.set_phase_gauges(&releases, changed.into_iter().flatten());
    }

    /// Replaces the whole view after a full resync (releases deleted since are dropped).
    pub fn replace_releases(&self, listed: Vec<Arc<StoredRelease>>) {
        let mut releases = self.write();
        let mut fresh = Releases::default();
        for release in listed {
            // A record written by another replica, or changed in the store by hand, moves
            // its series too; one the resync kept costs nothing.
            let unchanged = releases
                .by_name
                .get(&release.name)
                .is_some_and(|held| Arc::ptr_eq(held, &release) || held.status == release.status);
            if !unchanged {
                self.inner.metrics.set_release_series(&release);
            }
            fresh.put(release);
        }
        for name in releases.by_name.keys() {
            if !fresh.by_name.contains_key(name) {
                self.inner.metrics.forget_release(name);
            }
        }
        *releases = fresh;
        self.set_phase_gauges(&releases, Phase::ALL);
    }

    /// Takes in records a resync listed (a part of the fleet): a record already held (the
    /// same `Arc`) costs nothing; one written by another replica, or changed in the store by
    /// hand, moves its series too.
    pub fn refresh_releases(&self, listed: Vec<Arc<StoredRelease>>) {
        let mut releases = self.write();
        let mut phases = Vec::new();
        for release in listed {
            match releases.by_name.get(&release.name) {
                Some(held) if Arc::ptr_eq(held, &release) => continue,
                Some(held) if held.status == release.status => {}
                _ => self.inner.metrics.set_release_series(&release),
            }
            phases.extend(releases.put(release).into_iter().flatten());
        }
        self.set_phase_gauges(&releases, phases);
    }

    /// Forgets every release not in `listed` (deleted since): the end of a full resync.
    pub fn retain_releases(&self, listed: &std::collections::BTreeSet<String>) {
        let mut releases = self.write();
        let gone: Vec<String> = releases
            .by_name
            .keys()
            .filter(|name| !listed.contains(*name))
            .cloned()
            .collect();
        let mut phases = Vec::new();
        for name in gone {
            self.inner.metrics.forget_release(&name);
            phases.extend(releases.remove(&name));
        }
        self.set_phase_gauges(&releases, phases);
    }

    pub fn remove_release(&self, name: &str) {
        self.inner.metrics.forget_release(name);
        let mut releases = self.write();
        if let Some(phase) = releases.remove(name) {
            self.set_phase_gauges(&releases, [phase]);
        }
    }

    /// Every release, sorted by name.
    pub fn releases(&self) -> Vec<StoredRelease> {
        self.read()
            .by_name
            .values()
            .map(|r| StoredRelease::clone(r))
            .collect()
    }

    /// Every release, sorted by name, shared (no record is copied).
    pub fn releases_shared(&self) -> Vec<Arc<StoredRelease>> {
        self.read().by_name.values().cloned().collect()
    }

    pub fn release(&self, name: &str) -> Option<StoredRelease> {
        self.read()
            .by_name
            .get(name)
            .map(|r| StoredRelease::clone(r))
    }

    /// The latest record of a release, shared (no copy).
    pub fn release_shared(&self, name: &str) -> Option<Arc<StoredRelease>> {
        self.read().by_name.get(name).cloned()
    }

    /// Whether `name`'s last known phase may have a deployment in flight.
    pub fn is_in_flight(&self, name: &str) -> bool {
        self.read()
            .by_name
            .get(name)
            .is_some_and(|r| is_in_flight(phase_of(r)))
    }

    /// The releases with a deployment possibly in flight that watch rollback alarms, by
    /// name. Kept up to date as releases change: reading it never scans the fleet.
    pub fn in_flight(&self) -> Vec<(String, Watched)> {
        self.read()
            .in_flight
            .iter()
            .map(|(name, watched)| (name.clone(), watched.clone()))
            .collect()
    }

    /// How many releases are in each phase.
    pub fn phase_counts(&self) -> BTreeMap<Phase, i64> {
        let releases = self.read();
        Phase::ALL
            .iter()
            .map(|p| (*p, releases.phases[phase_index(*p)]))
            .collect()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn set_phase_gauges(&self, releases: &Releases, phases: impl IntoIterator<Item = Phase>) {
        for phase in phases {
            self.inner
                .metrics
                .releases
                .get_or_create(&PhaseLabels {
                    phase: PhaseLabel(phase),
                })
                .set(releases.phases[phase_index(phase)]);
        }
    }
}

/// A release phase as a metric label value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PhaseLabel(pub Phase);

impl EncodeLabelValue for PhaseLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// One release.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabels {
    pub release: String,
}

/// Where a release lives: the region and account its AWS calls go to (empty until its
/// status says).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlaceLabels {
    pub release: String,
    pub region: String,
    pub account: String,
}

/// Where a release's rollout in flight stands, in its strategy's own terms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub release: String,
    /// `codeDeploy`, `taskSets` or `ecs`.
    pub strategy: String,
    /// A bounded set per strategy: CodeDeploy's lifecycle event (`AfterAllowTestTraffic`),
    /// the task-set stage (`steps`), ECS's lifecycle stage (`POST_TEST_TRAFFIC_SHIFT`).
    pub stage: String,
}

/// An ECS `PAUSE` lifecycle hook that waits for an answer. The hook's id is not a label (a
/// new one per deployment would make a new series each time); the status carries it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub release: String,
    /// The lifecycle stage it waits at.
    pub stage: String,
}

/// The series of one release whose labels move with its rollout, as set last (so that a
/// change removes the old series).
#[derive(Clone, Debug, Default, PartialEq)]
struct RolloutSeries {
    stage: Option<StageLabels>,
    hook: Option<HookLabels>,
}

/// The stage and waiting hook of a release's rollout in flight, as metric labels.
fn rollout_series(release: &StoredRelease) -> RolloutSeries {
    use crate::model::StrategyStatus;
    let Some(status) = release
        .status
        .as_ref()
        .filter(|s| s.rollout_in_flight().is_some())
    else {
        return RolloutSeries::default();
    };
    let stage = |strategy: &str, stage: String| StageLabels {
        release: release.name.clone(),
        strategy: strategy.to_string(),
        stage,
    };
    match &status.strategy {
        Some(StrategyStatus::CodeDeploy(cd)) => RolloutSeries {
            stage: cd
                .lifecycle_event
                .clone()
                .map(|event| stage("codeDeploy", event)),
            hook: None,
        },
        Some(StrategyStatus::TaskSets(ts)) => RolloutSeries {
            stage: serde_json::to_value(ts.stage)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .map(|name| stage("taskSets", name)),
            hook: None,
        },
        Some(StrategyStatus::Ecs(ecs)) => RolloutSeries {
            stage: ecs.lifecycle_stage.clone().map(|name| stage("ecs", name)),
            hook: ecs.waiting_hook.as_ref().map(|_| HookLabels {
                release: release.name.clone(),
                stage: ecs
                    .lifecycle_stage
                    .clone()
                    .unwrap_or_else(|| "UNKNOWN".to_string()),
            }),
        },
        None => RolloutSeries::default(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: PhaseLabel,
}

/// One AWS API call: which service and operation, where, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `ecs`, `codedeploy`, `elasticloadbalancing`, `cloudwatch`, `dynamodb`, `sts`.
    pub service: String,
    pub operation: String,
    /// `ok`, or the error kind (`throttling`, `transient`, `not_found`, ...).
    pub outcome: String,
    pub region: String,
    pub account: String,
}

/// The labels of one API budget: a service in a place.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub service: String,
    pub region: String,
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: String,
    pub operation: String,
    pub region: String,
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// `started`, `succeeded`, `rolled_back`, `failed`.
    pub event: String,
}

/// The controller's Prometheus metrics. Names are stable: dashboards depend on them.
pub struct Metrics {
    registry: Registry,
    /// `switchyard_releases{phase}`: releases by phase.
    pub releases: Family<PhaseLabels, Gauge>,
    /// `switchyard_reconcile_duration_seconds`: the wall time of one pass.
    pub reconcile_duration: Family<OutcomeLabels, Histogram>,
    /// `switchyard_aws_calls_total{service,operation,outcome,region,account}`.
    pub aws_calls: Family<CallLabels, Counter>,
    /// `switchyard_aws_throttles_total{service,operation,region,account}`.
    pub aws_throttles: Family<OperationLabels, Counter>,
    /// `switchyard_deployments_total{event}`.
    pub deployments: Family<DeploymentLabels, Counter>,
    /// `switchyard_queue_depth`: releases waiting for a pass.
    pub queue_depth: Gauge,
    /// `switchyard_passes_in_flight`: passes running now.
    pub passes_in_flight: Gauge,
    /// `switchyard_pass_panics_total`: passes that panicked (a bug; the release is retried
    /// with backoff and its status says so).
    pub pass_panics: Counter,
    /// `switchyard_candidate_weight{release}`: the candidate's percent of production
    /// traffic, for releases with a rollout in flight (the series goes when it ends).
    pub candidate_weight: Family<ReleaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `switchyard_analysis_measurements_total{result}`: analysis measurements of one metric
    /// by result (`successful`, `failed`, `inconclusive`).
    pub analysis_measurements: Family<ResultLabels, Counter>,
    /// `switchyard_notifications_total{destination,outcome}`: notification deliveries by
    /// destination kind (`sns`, `eventBridge`, `webhook`) and outcome (`delivered`, `failed`:
    /// an attempt to be retried, `dropped`: given up, `resent`: sent again after an attempt
    /// whose outcome was lost).
    pub notifications: Family<NotificationLabels, Counter>,
    /// `switchyard_rollout_stage{release,strategy,stage}`: 1 at the stage the release's
    /// rollout in flight is at (the series goes when the stage changes or the rollout ends).
    pub rollout_stage: Family<StageLabels, Gauge>,
    /// `switchyard_ecs_hook_waiting{release,stage}`: 1 while an ECS `PAUSE` lifecycle hook of
    /// the release's rollout waits for an answer (the series goes once it is answered).
    pub ecs_hook_waiting: Family<HookLabels, Gauge>,
    /// `switchyard_release_info{release,region,account}`: 1 per release, saying where it
    /// lives (join on `release` to place the other per-release series).
    pub release_info: Family<PlaceLabels, Gauge>,
    /// `switchyard_api_budget_rate{service,region,account}`: the calls per second this
    /// replica's budget for the place and service refills at now (its share of the fleet's
    /// rate, lowered while AWS throttles).
    pub api_budget_rate: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `switchyard_api_budget_fleet_rate{service,region,account}`: the configured rate the
    /// whole fleet stays under.
    pub api_budget_fleet_rate: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `switchyard_api_budget_share{service,region,account}`: this replica's share of it
    /// (the fraction of the lease shards it holds).
    pub api_budget_share: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `switchyard_api_budget_admitted_total{service,region,account}`: AWS calls the budget
    /// let through.
    pub api_budget_admitted: Family<BudgetLabels, Counter>,
    /// `switchyard_api_budget_wait_seconds_total{service,region,account}`: time calls waited
    /// for the budget.
    pub api_budget_wait: Family<BudgetLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    rollout_series: std::sync::Mutex<std::collections::HashMap<String, RolloutSeries>>,
    release_places: std::sync::Mutex<std::collections::HashMap<String, PlaceLabels>>,
    /// `switchyard_heap_allocated_bytes` and `switchyard_heap_resident_bytes`, read from the
    /// allocator on each scrape once the binary says how ([`Metrics::read_heap_with`]).
    heap: std::sync::Arc<HeapCollector>,
}

/// What the process's allocator says of its heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the program holds.
    pub allocated: u64,
    /// Bytes of the allocator's memory resident in RAM: what it holds, its metadata, and
    /// free memory it has not yet given back.
    pub resident: u64,
}

type HeapReader = Box<dyn Fn() -> Option<HeapStats> + Send + Sync>;

/// Encodes the heap's two gauges on each scrape, if a reader is set (the binary's allocator
/// can tell; the library's users, tests among them, may run on another that cannot).
#[derive(Default)]
struct HeapCollector {
    reader: std::sync::OnceLock<HeapReader>,
}

impl std::fmt::Debug for HeapCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapCollector")
            .field("reader", &self.reader.get().is_some())
            .finish()
    }
}

impl prometheus_client::collector::Collector for HeapCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        let Some(stats) = self.reader.get().and_then(|read| read()) else {
            return Ok(());
        };
        let bytes = prometheus_client::registry::Unit::Bytes;
        for (name, help, value) in [
            (
                "heap_allocated",
                "Heap memory the controller holds, as its allocator counts it",
                stats.allocated,
            ),
            (
                "heap_resident",
                "The allocator's memory resident in RAM (held, metadata, and free memory not yet returned)",
                stats.resident,
            ),
        ] {
            let gauge = prometheus_client::metrics::gauge::ConstGauge::new(
                i64::try_from(value).unwrap_or(i64::MAX),
            );
            let metric =
                encoder.encode_descriptor(name, help, Some(&bytes), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub destination: String,
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let releases = Family::<PhaseLabels, Gauge>::default();
        for phase in Phase::ALL {
            releases
                .get_or_create(&PhaseLabels {
                    phase: PhaseLabel(phase),
                })
                .set(0);
        }
        registry.register("releases", "Releases by phase", releases.clone());
        let reconcile_duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of one reconcile pass",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            aws_calls.clone(),
        );
        let aws_throttles = Family::<OperationLabels, Counter>::default();
        registry.register(
            "aws_throttles",
            "AWS API calls that were throttled",
            aws_throttles.clone(),
        );
        let deployments = Family::<DeploymentLabels, Counter>::default();
        registry.register(
            "deployments",
            "Deployments started, succeeded, rolled back and failed",
            deployments.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Releases waiting for a reconcile pass",
            queue_depth.clone(),
        );
        let passes_in_flight = Gauge::default();
        registry.register(
            "passes_in_flight",
            "Reconcile passes running now",
            passes_in_flight.clone(),
        );
        let pass_panics = Counter::default();
        registry.register(
            "pass_panics",
            "Reconcile passes that panicked",
            pass_panics.clone(),
        );
        let candidate_weight =
            Family::<ReleaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "candidate_weight",
            "Percent of production traffic on the candidate, per release with a rollout in flight",
            candidate_weight.clone(),
        );
        let analysis_measurements = Family::<ResultLabels, Counter>::default();
        for result in crate::model::MeasurementResult::ALL {
            let _ = analysis_measurements.get_or_create(&ResultLabels {
                result: result.as_str().to_string(),
            });
        }
        registry.register(
            "analysis_measurements",
            "Analysis measurements (one metric, one measurement) by result",
            analysis_measurements.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification deliveries by destination kind and outcome",
            notifications.clone(),
        );
        let rollout_stage = Family::<StageLabels, Gauge>::default();
        registry.register(
            "rollout_stage",
            "The stage of the rollout in flight, per release (1 at its current stage)",
            rollout_stage.clone(),
        );
        let ecs_hook_waiting = Family::<HookLabels, Gauge>::default();
        registry.register(
            "ecs_hook_waiting",
            "ECS PAUSE lifecycle hooks waiting for an answer, per release",
            ecs_hook_waiting.clone(),
        );
        let release_info = Family::<PlaceLabels, Gauge>::default();
        registry.register(
            "release_info",
            "Where each release lives: the region and account its AWS calls go to (always 1)",
            release_info.clone(),
        );
        let api_budget_rate =
            Family::<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "api_budget_rate",
            "Calls per second this replica's API budget refills at, per service and place",
            api_budget_rate.clone(),
        );
        let api_budget_fleet_rate =
            Family::<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "api_budget_fleet_rate",
            "Calls per second the whole fleet stays under, per service and place",
            api_budget_fleet_rate.clone(),
        );
        let api_budget_share =
            Family::<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "api_budget_share",
            "This replica's share of the fleet's API budget (shards held over shards)",
            api_budget_share.clone(),
        );
        let api_budget_admitted = Family::<BudgetLabels, Counter>::default();
        registry.register(
            "api_budget_admitted",
            "AWS calls the API budget let through",
            api_budget_admitted.clone(),
        );
        let api_budget_wait =
            Family::<BudgetLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "api_budget_wait",
            "Time AWS calls waited for the API budget",
            prometheus_client::registry::Unit::Seconds,
            api_budget_wait.clone(),
        );
        let heap = std::sync::Arc::new(HeapCollector::default());
        registry.register_collector(Box::new(heap.clone()));
        Self {
            registry,
            heap,
            api_budget_rate,
            api_budget_fleet_rate,
            api_budget_share,
            api_budget_admitted,
            api_budget_wait,
            releases,
            reconcile_duration,
            aws_calls,
            aws_throttles,
            deployments,
            queue_depth,
            passes_in_flight,
            pass_panics,
            candidate_weight,
            analysis_measurements,
            notifications,
            rollout_stage,
            ecs_hook_waiting,
            release_info,
            rollout_series: Default::default(),
            release_places: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts `count` notification deliveries to a kind of destination with this outcome.
    pub fn record_notifications(&self, destination: &str, outcome: &str, count: u64) {
        if count > 0 {
            self.notifications
                .get_or_create(&NotificationLabels {
                    destination: destination.to_string(),
                    outcome: outcome.to_string(),
                })
                .inc_by(count);
        }
    }

    /// Says how to read the allocator's figures for `switchyard_heap_*_bytes` (the binary
    /// sets this once; a second reader is ignored).
    pub fn read_heap_with(&self, reader: impl Fn() -> Option<HeapStats> + Send + Sync + 'static) {
        let _ = self.heap.reader.set(Box::new(reader));
    }

    /// The Prometheus text exposition (OpenMetrics text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Sets (or removes) the candidate weight of a release from its status.
    pub fn set_candidate_weight(&self, release: &StoredRelease) {
        let labels = ReleaseLabels {
            release: release.name.clone(),
        };
        let weight = release
            .status
            .as_ref()
            .filter(|s| s.rollout_in_flight().is_some())
            .and_then(|s| s.traffic_weights)
            .map(|w| w.candidate);
        match weight {
            Some(weight) => {
                self.candidate_weight.get_or_create(&labels).set(weight);
            }
            None => {
                self.candidate_weight.remove(&labels);
            }
        }
    }

    /// Sets every series that follows a release's status: its candidate weight, the stage of
    /// its rollout in flight and the ECS hook that waits.
    pub fn set_release_series(&self, release: &StoredRelease) {
        self.set_candidate_weight(release);
        self.set_rollout_stage(release);
        self.set_release_place(release);
    }

    /// Sets where a release lives from its status, removing the series it had before.
    pub fn set_release_place(&self, release: &StoredRelease) {
        let status = release.status.as_ref();
        let labels = PlaceLabels {
            release: release.name.clone(),
            region: status.and_then(|s| s.region.clone()).unwrap_or_default(),
            account: status.and_then(|s| s.account.clone()).unwrap_or_default(),
        };
        let mut held = self
            .release_places
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if held.get(&release.name) == Some(&labels) {
            return;
        }
        if let Some(previous) = held.insert(release.name.clone(), labels.clone()) {
            self.release_info.remove(&previous);
        }
        self.release_info.get_or_create(&labels).set(1);
    }

    /// Sets the stage (and the waiting ECS hook) of a release's rollout in flight from its
    /// status, removing the series it had before.
    pub fn set_rollout_stage(&self, release: &StoredRelease) {
        let series = rollout_series(release);
        let mut held = self
            .rollout_series
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let previous = held.get(&release.name).cloned().unwrap_or_default();
        if previous == series {
            return;
        }
        self.remove_series(&previous);
        if let Some(labels) = &series.stage {
            self.rollout_stage.get_or_create(labels).set(1);
        }
        if let Some(labels) = &series.hook {
            self.ecs_hook_waiting.get_or_create(labels).set(1);
        }
        if series == RolloutSeries::default() {
            held.remove(&release.name);
        } else {
            held.insert(release.name.clone(), series);
        }
    }

    fn remove_series(&self, series: &RolloutSeries) {
        if let Some(labels) = &series.stage {
            self.rollout_stage.remove(labels);
        }
        if let Some(labels) = &series.hook {
            self.ecs_hook_waiting.remove(labels);
        }
    }

    /// Forgets every series of a deleted release.
    pub fn forget_release(&self, name: &str) {
        self.candidate_weight.remove(&ReleaseLabels {
            release: name.to_string(),
        });
        let place = self
            .release_places
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(place) = place {
            self.release_info.remove(&place);
        }
        let previous = self
            .rollout_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(previous) = previous {
            self.remove_series(&previous);
        }
    }

    /// Counts one AWS call, made in `place`.
    pub fn record_call(
        &self,
        service: &str,
        operation: &str,
        outcome: &str,
        place: &crate::model::Place,
    ) {
        self.aws_calls
            .get_or_create(&CallLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
                region: place.region.clone(),
                account: place.account.clone(),
            })
            .inc();
        if outcome == "throttling" {
            self.aws_throttles
                .get_or_create(&OperationLabels {
                    service: service.to_string(),
                    operation: operation.to_string(),
                    region: place.region.clone(),
                    account: place.account.clone(),
                })
                .inc();
        }
    }

    pub fn record_pass(&self, duration: Duration, ok: bool) {
        self.reconcile_duration
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    pub fn record_deployment(&self, event: &str) {
        self.deployments
            .get_or_create(&DeploymentLabels {
                event: event.to_string(),
            })
            .inc();
    }

    /// Counts the analysis measurements a pass recorded.
    pub fn record_measurements(
        &self,
        results: impl IntoIterator<Item = crate::model::MeasurementResult>,
    ) {
        for result in results {
            self.analysis_measurements
                .get_or_create(&ResultLabels {
                    result: result.as_str().to_string(),
                })
                .inc();
        }
    }

    /// Counts the deployment events that a pass's new history entries represent.
    pub fn record_outcomes(&self, new_outcomes: impl IntoIterator<Item = Outcome>) {
        for outcome in new_outcomes {
            match outcome {
                Outcome::Succeeded => self.record_deployment("succeeded"),
                Outcome::RolledBack => self.record_deployment("rolled_back"),
                Outcome::Failed => self.record_deployment("failed"),
                _ => {}
            }
        }
    }
}
