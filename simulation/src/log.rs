//! The event log of one simulated run: everything the driver did and everything the replicas
//! did that the invariants look at, in the order it happened, with a digest for determinism.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use switchyard::lease::Fence;
use switchyard::model::analysis::{AnalysisPhase, MeasurementResult};
use switchyard::model::{Outcome, Phase, TaskSetsStage};
use switchyard::ports::TaskSetStatus;

/// Locks a mutex, ignoring poisoning: a replica task that panicked must not hide the log
/// and the gates from the checks.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Something that happened, as the invariant checks need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The driver wrote a desired version (`put_spec` under the current generation).
    SpecWritten {
        release: String,
        generation: u64,
        tag: String,
        /// The image the spec asks for (the candidate's only change to the base).
        image: String,
        /// What this write changed (`image 1.3.0`, `revert to 1.2.0`, `labels`, `paused`,
        /// `resumed`, `alarms on`, `promotion manual`, `onDrift converge`, `cluster as ARN`).
        edit: String,
        /// The image is the previous generation's: the candidate and the target are kept.
        keeps_candidate: bool,
        /// `rollback.alarms` names the release's alarm.
        alarms: bool,
        paused: bool,
        /// A deployment of the release that was active when the write committed (the
        /// CodeDeploy deployment, the candidate task set, the service deployment).
        in_flight: Option<String>,
        /// `codeDeploy`, `taskSets` or `ecs`.
        strategy: &'static str,
        /// The steps of a `taskSets` release (empty for the others).
        steps: Vec<StepSeen>,
    },
    /// A spec write failed and did not take effect.
    SpecWriteFailed {
        release: String,
        cause: String,
    },
    /// The driver wrote an operator request.
    Requested {
        release: String,
        kind: &'static str,
        generation: u64,
        requested_at: Timestamp,
        ok: bool,
        /// `promote --full`.
        full: bool,
    },
    AlarmSet {
        alarm: String,
        state: &'static str,
    },
    FaultsInjected {
        description: String,
    },
    /// AWS refuses every call of `operation` (`AccessDeniedException`) from now on
    /// (`on`), or no longer.
    Refusals {
        operation: &'static str,
        on: bool,
    },
    /// The next `writes` status writes of the replica after its next successful mutation
    /// fail (`lost`: they take effect, but the reply is lost).
    WriteFaultArmed {
        replica: String,
        writes: u32,
        lost: bool,
    },
    FaultsCleared,
    ReplicaStarted {
        replica: String,
    },
    /// The replica's task was aborted: its leases are not released.
    ReplicaCrashed {
        replica: String,
        point: &'static str,
    },
    /// The replica was told to shut down (drain, release its leases).
    ReplicaStopping {
        replica: String,
    },
    ReplicaStopped {
        replica: String,
        passes: u64,
        failed_passes: u64,
    },
    /// Every port call of the replica is held until then (its leases expire under it).
    ReplicaFrozen {
        replica: String,
        for_secs: u64,
    },
    /// The replica will crash right after its next successful call of `operation`.
    CrashArmed {
        replica: String,
        operation: &'static str,
    },
    /// What a committed status says of its notifications: pushed right after its
    /// `StatusCommitted` (every commit of a release that has destinations).
    NotificationsCommitted {
        release: String,
        version: u64,
        /// Each event in the outbox (its id) with the destinations (keys) it still waits for.
        outbox: Vec<(String, Vec<String>)>,
        delivered: u64,
        dropped: u64,
        resent: u64,
    },
    /// A notification send returned to the replica that made it (logged by its decorator;
    /// a send whose replica died or timed out on its way logs nothing).
    NotificationSent {
        replica: String,
        /// The receiver's name (`sns:ARN`, `eventBridge:BUS`, `webhook:URL`).
        destination: String,
        id: String,
        /// The replica heard that it was delivered.
        heard: bool,
        /// What the destination received during this call: its index among everything the
        /// simulated destinations received (`SimNotifications::received`).
        receipt: Option<usize>,
    },
    /// What an analysed release's health endpoint and error metric say from now on.
    HealthSet {
        release: String,
        health: String,
    },
    /// A replica's HTTP probe returned (logged by its decorator).
    ProbeSent {
        replica: String,
        url: String,
        status: Option<u16>,
    },
    /// What a committed status says of its analysis (pushed right after its
    /// `StatusCommitted`).
    AnalysisCommitted(Box<AnalysisSeen>),
    /// A webhook answers this status instead of 200 for a while.
    WebhookOutage {
        url: String,
        status: u16,
        for_secs: u64,
    },
    /// The store committed a status write (observed inside the store, in commit order).
    StatusCommitted {
        release: String,
        fence: Option<Fence>,
        version: u64,
        observed_generation: u64,
        phase: Phase,
        message: String,
        /// The deployment the status says the controller is stopping.
        stop_requested: Option<String>,
        /// The stop was sent (a StopDeployment call succeeded) as the status records it.
        stop_sent: bool,
        /// The stop is because the rollout was superseded (not an alarm or an abort).
        stop_superseded: bool,
        /// The rollout the status records last.
        rollout: Option<RolloutSeen>,
        /// The requests the status records as handled, with their history entries.
        handled: Vec<HandledRequest>,
        /// The task-set rollout as the status records it (`taskSets` releases; boxed, as
        /// most statuses have none).
        task_sets: Option<Box<TaskSetsSeen>>,
        /// The ECS rollout as the status records it (`ecs` releases).
        ecs: Option<Box<EcsSeen>>,
    },
    /// The routes and task sets of a `taskSets` release's service right after something
    /// changed them: a replica's call (`by` is the replica; `change` the operation and what
    /// it was given) or an operator moving traffic by hand (`by` is `hand`).
    TrafficSeen {
        release: String,
        by: String,
        change: String,
        /// What the call returned (`ok`, an error kind), or `done` for a change by hand.
        outcome: String,
        routes: Vec<RouteSeen>,
        task_sets: Vec<TaskSetSeen>,
    },
    /// A replica is about to send `UpdateService` for a release: the current service
    /// deployment its last `DescribeServices` of the service named, and when it saw it.
    ServiceViewAtUpdate {
        replica: String,
        release: String,
        current: Option<String>,
        seen_at: Option<Duration>,
    },
    /// A replica is about to answer a `PAUSE` hook of a service deployment: the hook id it
    /// sends, and the hook that waits then (`None`: none waits any more).
    HookAnswerSent {
        replica: String,
        release: String,
        deployment: String,
        hook_id: String,
        waiting: Option<String>,
    },
    /// Someone else started a service deployment of an `ecs` release's service (`arn`:
    /// the deployment ECS started, `None` when the update changed nothing).
    ForeignDeployment {
        release: String,
        arn: Option<String>,
        task_definition: String,
    },
    /// A replica's status write failed (or it heard so: a lost reply).
    StatusWriteFailed {
        replica: String,
        release: String,
        /// `injected` (a write the driver armed to fail), or the store's error.
        cause: String,
    },
    /// A replica heard that its status write succeeded.
    StatusAcknowledged {
        replica: String,
        release: String,
        fence: Option<Fence>,
        version: u64,
    },
    LeaseTaken {
        replica: String,
        shard: u32,
        term: u64,
    },
    LeaseReleased {
        replica: String,
        shard: u32,
    },
    /// A replica issued a mutating AWS call for a release, with the fence of its last
    /// acknowledged status write for that release (`None`: it had none).
    MutationIssued {
        replica: String,
        release: String,
        operation: &'static str,
        detail: String,
        fence: Option<Fence>,
    },
    MutationReturned {
        replica: String,
        release: String,
        operation: &'static str,
        detail: String,
        /// `ok`, the kind of the error (`throttling`, `ambiguous`, ...), or `panicked`.
        outcome: String,
    },
    /// Faults and writes stopped; from here on the releases must settle.
    Quiesced,
    Settled {
        all: bool,
    },
}

/// A rollout as a committed status records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSeen {
    pub serial: u32,
    /// The generation that started it.
    pub generation: u64,
    /// The candidate task definition.
    pub candidate: String,
    pub outcome: Option<Outcome>,
}

/// A step of a `taskSets` release as the driver wrote it: a timed pause and a manual one
/// both hold the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepSeen {
    SetWeight(u32),
    Pause,
}

/// A committed status's task-set rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetsSeen {
    pub stage: TaskSetsStage,
    pub step_index: Option<usize>,
    /// The candidate weight the rollout applied last.
    pub weight: u32,
    pub candidate_task_set: Option<String>,
    pub live_group: Option<String>,
    pub candidate_group: Option<String>,
    /// The production routes the rollout weights, and its test routes.
    pub routes: Vec<String>,
    pub test_routes: Vec<String>,
    /// Rolling back: whether because the rollout was superseded.
    pub rolling_back: Option<bool>,
    /// The task set waiting to be scaled down and deleted.
    pub clean_up: Option<String>,
}

/// A committed status's ECS rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsSeen {
    pub service_deployment: Option<String>,
    pub updating_since: Option<Timestamp>,
    /// The answer (or stop, without a hook) recorded before its call: (hook id, action,
    /// sent).
    pub answer: Option<(Option<String>, String, bool)>,
    pub rolling_back: Option<String>,
}

/// A route (a listener's default action or a rule) and its forward weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSeen {
    pub arn: String,
    /// (target group ARN, weight); empty when the route does not forward.
    pub forward: Vec<(String, u32)>,
}

impl RouteSeen {
    /// The percent of the route's traffic that goes to `target_group` (rounded), as ELB
    /// splits it by weight; 0 when the route does not forward there.
    pub fn percent_to(&self, target_group: &str) -> u32 {
        let total: u32 = self.forward.iter().map(|(_, w)| w).sum();
        let mine: u32 = self
            .forward
            .iter()
            .filter(|(g, _)| g == target_group)
            .map(|(_, w)| w)
            .sum();
        if total == 0 {
            0
        } else {
            ((f64::from(mine) * 100.0) / f64::from(total)).round() as u32
        }
    }
}

/// A task set of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetSeen {
    pub arn: String,
    pub target_group: String,
    pub status: TaskSetStatus,
    pub scale: f64,
    pub external_id: Option<String>,
}

/// A request a committed status records as handled.
#[derive(Debug, Clone, PartialEq)]
pub struct HandledRequest {
    pub kind: &'static str,
    pub requested_at: Timestamp,
    /// Its history entry (outcome and message), if the status's history still holds it.
    pub entry: Option<(Outcome, String)>,
}

/// One entry: its place in the order, when (virtual time since the run started), what.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub at: Duration,
    pub event: Event,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.3}s #{:<6} {:?}",
            self.at.as_secs_f64(),
            self.seq,
            self.event
        )
    }
}

/// The shared, append-only log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    start: Instant,
    entries: Vec<Entry>,
}

impl EventLog {
    /// A log whose times count from now (tokio's clock).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                start: Instant::now(),
                entries: Vec::new(),
            })),
        }
    }

    /// Appends an event and returns its sequence number.
    pub fn push(&self, event: Event) -> u64 {
        let mut inner = lock(&self.inner);
        let seq = inner.entries.len() as u64;
        let at = Instant::now().saturating_duration_since(inner.start);
        inner.entries.push(Entry { seq, at, event });
        seq
    }

    /// Virtual time since the log started.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(lock(&self.inner).start)
    }

    pub fn entries(&self) -> Vec<Entry> {
        lock(&self.inner).entries.clone()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// A SHA-256 of the lines, hex, cut to 16 digits: equal runs give equal digests.
pub fn digest<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A committed status's analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSeen {
    pub release: String,
    /// The rollout the status records, and how it ended (if it did).
    pub serial: Option<u32>,
    pub outcome: Option<Outcome>,
    /// The release's phase in that status.
    pub release_phase: Phase,
    pub gate: String,
    pub started_at: Timestamp,
    pub phase: AnalysisPhase,
    pub taken: u32,
    pub metrics: Vec<MetricSeen>,
}

/// One metric of a committed analysis: its counts and its latest measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeen {
    pub name: String,
    pub failed: u32,
    pub inconclusive: u32,
    /// (number, when, result, value), oldest first.
    pub measurements: Vec<(u32, Timestamp, MeasurementResult, Option<f64>)>,
}
