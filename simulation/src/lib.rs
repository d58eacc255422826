//! Deterministic simulation: several controller replicas sharing one simulated AWS account
//! and one simulated store, under seeded faults, crashes and pauses, checked against the
//! invariants. Used by `examples/simulate.rs` and the `simulation` tests.
//!
//! One run is one seed. A `fastrand::Rng` seeded from it draws everything random (the
//! releases, the fault probabilities and the seeds of the simulation's own fault draws,
//! every write, request, alarm, crash, restart and pause, the backoff jitter of every
//! replica); tokio time is paused and the runtime has one thread, so the same seed gives the
//! same run, event for event (compare [`SeedReport::digest`]).
//!
//! A run:
//! 1. sets up `releases` services, each with one of the three strategies drawn from the
//!    seed: `codeDeploy` (blue/green services with mixed deployment configs, ready options and
//!    promotion modes), `taskSets` (an `EXTERNAL` service with one to three tasks, two target
//!    groups, a test listener or none, forwarding rules of the production listener or none,
//!    the routes listed in the spec or found, one to three weight steps with timed or manual
//!    pauses) or `ecs` (rolling with ECS's circuit breaker or blue/green, `PAUSE` hooks of
//!    the service's own or the document's `pauseAt`, ECS deployment alarms sometimes, the
//!    document's `deployment` block or none, manual promotion where a hook can wait); alarms
//!    (every release has one; its spec names it or not) and cluster references (a name or its
//!    ARN); and writes a first version of each;
//! 2. starts `replicas` controllers (`controller::run`), each with its own state, its own
//!    leases under a unique replica id, and its own decorators of the shared store and AWS
//!    (`replica.rs`: freeze, kill, fail status writes after an action, record);
//! 3. for `minutes` of virtual time: injects faults (below), writes new desired versions
//!    under the current generation (a new image, sometimes the previous one again), makes
//!    edits that keep the candidate (labels, `paused` on and off, `rollback.alarms` on and
//!    off, `promotion`, `onDrift`, the cluster as its name or its ARN, a canary's steps, an
//!    ECS blue/green's bake time), mostly of releases with a rollout in flight, asks for
//!    promotions (some `--full`), aborts and retries, pulses alarms,
//!    crashes replicas (their leases are not released; one may crash right after
//!    CreateDeployment, RegisterTaskDefinition, StopDeployment, CreateTaskSet, a weight
//!    change, UpdateTaskSet, DeleteTaskSet, UpdateService, ContinueServiceDeployment or
//!    StopServiceDeployment returned, before recording what it returned) and restarts them
//!    under a new id, restarts them gracefully (leases released), and freezes one for longer
//!    than a lease lasts;
//! 4. stops the faults and writes, restarts every crashed replica, resumes what is paused,
//!    promotes what waits for a promotion, and waits (at most `settle_minutes`) until every
//!    release has settled: a final phase for its latest generation (`Failed` only for a
//!    verdict or drift), no request pending, nothing of its own active (a CodeDeploy
//!    deployment, a task set other than the primary that is not draining, a service
//!    deployment in flight);
//! 5. shuts every replica down and checks the invariants (`checks.rs`) over the event log
//!    (`log.rs`), the passes (`passes.rs`) and the final state of the store and AWS.
//!
//! The faults, drawn from the seed (the seed report's first `FaultsInjected` line says which
//! rates and delays a run drew; later lines name each burst and episode):
//! - AWS calls: throttling, server errors, latency (below the adapters' attempt timeout),
//!   lost replies (the call took effect), a CreateDeployment, CreateTaskSet, UpdateService
//!   or ContinueServiceDeployment whose reply is lost, bursts;
//! - refusals: `AccessDeniedException` on any mutating call of the three strategies
//!   (RegisterTaskDefinition, CreateDeployment, ContinueDeployment, StopDeployment,
//!   CreateTaskSet, UpdateTaskSet, UpdateServicePrimaryTaskSet, DeleteTaskSet, ModifyListener,
//!   ModifyRule, UpdateService, ContinueServiceDeployment, StopServiceDeployment) for 30 s to
//!   6 min, then gone (`Event::Refusals`);
//! - panics: the next one to three calls of an AWS operation panic (`Fault::Panic`), in a
//!   pass, the resync or the alarm watcher;
//! - the store: throttling, server errors, latency, lost replies, and on status writes in
//!   particular: server errors and lost replies at a rate of their own, bursts of them, and a
//!   replica armed to fail (or lose the replies of) its next one to four status writes right
//!   after its next successful mutation: the write recording what the call returned;
//! - slow stops: CodeDeploy takes from 0 to 3 minutes (drawn per run) to stop a deployment
//!   after StopDeployment, as while a hook runs; `SimAws::stop_calls` counts the accepted
//!   calls;
//! - slow targets (per run): tasks start every 1 to 30 s and pass their health checks 5 to
//!   120 s later, so candidate task sets and ECS's own deployments take their time;
//! - strategy-specific events: an operator moves a canary's production traffic back to the
//!   live group by hand (a hand-changed weight); someone else (the console, a pipeline)
//!   updates an `ecs` release's service to a hotfix revision and answers its `PAUSE` hook a
//!   while later (a deployment switchyard did not start); ECS rolls back by itself (its
//!   circuit breaker on images that never get healthy, its deployment alarms);
//! - crashes, graceful restarts and freezes of replicas (above);
//! - notifications: each release names none (the controller's fleet default applies, when
//!   the seed drew one), one, two or three destinations: SNS topics (in the controller's
//!   region or another: a topic is published to in its own), EventBridge buses, `json` and
//!   `slack` webhooks, a quarter of them wanting only the events that start and end
//!   rollouts; their calls are throttled, fail with a 5xx, lose their outcome (the message
//!   arrives, the sender hears an error or a timeout: `Received::outcome_lost`), are slow
//!   (3 s) or slower than the notifier's 10 s attempt timeout (nothing arrives); webhooks
//!   answer 503 for a while, or 404, which the controller gives up on at once
//!   (`Event::WebhookOutage`). The notification draws have an `Rng` of their own (the seed
//!   mixed with a constant), so that the other draws of a seed stay what they were;
//! - analyses: half the releases with a gate to hold get an analysis there (a `taskSets`
//!   step after the first weight, the `PAUSE` hook of an `ecs` release that has one,
//!   CodeDeploy's `Ready` gate where the group waits for approval, two hours, longer than
//!   any analysis): an HTTP probe of the release's health URL and sometimes a CloudWatch
//!   `GetMetricData` of its error metric, 2 to 4 measurements 10 to 30 s apart, failure and
//!   inconclusive limits of 0 or 1. The endpoint and metric start healthy (200, a low
//!   value), unhealthy (503, a high value) or silent (the probe times out, the metric has
//!   no data: inconclusive), and change a few times during the run (`Event::HealthSet`);
//!   healthy again once the faults stop. Probes go through the replica's gate and are
//!   logged (`Event::ProbeSent`); GetMetricData takes the AWS faults of every call. Its own
//!   `Rng` too.
//!
//! The invariants, each violation named by a [`ViolationKind`]:
//! 1. never two deployments for one rollout of a release (from the descriptions of every
//!    deployment CodeDeploy holds: `switchyard release=NAME rollout=N`);
//! 2. never two replicas acting on one release in overlapping lease terms: every status write
//!    the store commits is fenced, per shard the terms never go back in commit order and each
//!    term has one owner; every mutating AWS call (RegisterTaskDefinition, CreateDeployment,
//!    ContinueDeployment, StopDeployment) is sent under the fence of a status write its
//!    replica heard succeed, and never after another replica's write for the release in a
//!    newer term committed. A call sent before that write, in flight when the lease moved,
//!    is the limit fencing cannot lift: AWS checks no fence;
//! 3. every release converges, once the faults stop, to its latest spec (Healthy, with the
//!    desired image live and the status saying so) or to an explicit RolledBack or Failed
//!    (a verdict or drift: never a refusal or a panic whose cause is gone);
//! 4. observedGeneration never goes back (over every committed status write);
//! 5. no desired version is lost: the stored generation and spec are the last ones written,
//!    and the status describes that generation;
//! 6. a stop the controller recorded in a status (superseded, alarm, abort) reaches
//!    CodeDeploy while the release's owner is up, or the deployment ended by itself first,
//!    or (superseded only) a later generation asked for the stopped rollout's candidate
//!    again before it was sent, and the status dropped it;
//! 7. an edit that keeps the candidate never stops its rollout: every stop a status records
//!    as superseding was decided under a generation asking for another image than the
//!    stopped rollout's; every other stop has a cause (an abort since the deployment was
//!    created, or the release's alarm in ALARM while the spec names it); no rollout ends
//!    `Superseded` while every generation during it asked for its image. Not vacuous: the
//!    seed report counts the edits that kept the candidate while a deployment was in flight
//!    (`Stats::edits_in_flight`) and the stops judged;
//! 8. at most one RegisterTaskDefinition per candidate fingerprint per release, across
//!    restarts, takeovers and retries: no two revisions ECS holds carry one release's
//!    `switchyard.dev/fingerprint` twice (counted: registrations, and generations asking for
//!    an image an earlier one asked for, reverts and edits);
//! 9. no mutation twice per intent: no deployment accepts a second StopDeployment after a
//!    first one succeeded (`SimAws::stop_calls` and the log), unless the replica that made it
//!    could not record it and another one sent the second (the first crashed, stopped, froze,
//!    or its lease moved on before its status said the stop was sent); the same replica
//!    never sends it twice, whatever write failed, and nobody does once a status says it was
//!    sent; no deployment accepts two ContinueDeployment calls (`SimAws::continue_calls`);
//!    one deployment per rollout is check 1, one registration per candidate check 8;
//! 10. no lost request: every promote, abort and retry written is handled by the end (its
//!     `requestedAt` in `handledRequests`) unless a newer one of its kind replaced it first,
//!     and the status that handled it holds its history entry: carried out, or `Declined`
//!     with the reason;
//! 11. no wedged release: a release's shard owner is never up (alive, not paused, holding
//!     the lease) for more than 8 minutes without a pass of it (passes are read from the
//!     controller's `reconcile` span, `passes.rs`);
//! 12. refusals back off: while AWS refuses an operation, each release asks for it no more
//!     often than the refusal backoff (1 s doubling, at most 5 min) allows, counted from
//!     each spec write, retry or successful call of the release, plus one per status write
//!     of it that failed and per replica crash or stop.
//!
//!
//! The strategies' own (`strategy_checks.rs`; a call is judged by its intent, the last
//! status its replica committed for the release):
//! 13. a task-set rollout's weights follow its steps: no production weight a replica sets
//!     puts more on the candidate than the step its status records allows (the step's
//!     weight or the weight applied already; all of it only once it switches; none before
//!     its steps or while it rolls back), and none lowers the candidate's share of a route
//!     during a rollout except while it rolls back;
//! 14. one candidate task set per rollout: no two task sets created with one rollout's
//!     external id, and none created while a task set other than the primary still runs;
//! 15. traffic first: no task set scaled to 0 or deleted while a route forwards to its
//!     target group, and no rollout ends rolled back or superseded while a production or test
//!     route still forwards to its candidate group;
//! 16. one `UpdateService` per intent: every call that took effect was sent under a status
//!     of its replica recording the intent (`updatingSince`), and no two for one intent;
//! 17. a service deployment someone else started is never stopped, never answered, and
//!     never replaced by an `UpdateService` of a replica that had seen it in flight;
//! 18. a `PAUSE` hook is answered only with the id of the hook that waits.
//!
//! Notifications (`notification_checks.rs`; every committed status's outbox is logged,
//! `Event::NotificationsCommitted`, and every send with what its replica heard,
//! `Event::NotificationSent`):
//! 19. every delivery (an event to a destination) a committed status recorded arrives at
//!     least once, or is given up as the status counts it: a commit that takes deliveries
//!     out of the outbox that never arrived must count as many more in `dropped` (a refusal
//!     for good, an hour, a full outbox), and none still waits once the run settled (the
//!     settling waits for every outbox to empty); nothing arrives that no committed status
//!     recorded for that destination, and it arrives as recorded, with the contract's
//!     fields;
//! 20. a delivery arrives twice only after the outcome of an earlier arrival was lost to
//!     whoever sent it again (the sender heard an error or nothing, or another replica sent
//!     it), and never after a committed status recorded it delivered;
//! 21. the events follow the rollouts: one `RolloutStarted` per rollout in the committed
//!     statuses (a candidate found live already is none), `StepCompleted` only in `taskSets`
//!     releases, each event naming its release and strategy.
//!
//! Analyses (`analysis_checks.rs`; every committed status's analysis is logged,
//! `Event::AnalysisCommitted`):
//! 22. one measurement per slot, across restarts and takeovers: each numbered measurement
//!     of a metric, once a committed status recorded it, keeps its time, result and value;
//!     the numbers run without a gap; `taken` never goes back; every HTTP measurement
//!     recorded was a probe some replica made;
//! 23. a failed analysis always rolls back: its rollout never ends `Succeeded` (check 7
//!     counts a failed analysis as the cause of a CodeDeploy stop);
//! 24. an analysis with more inconclusive measurements than `inconclusiveLimit` is never
//!     still running or successful, and the write that makes it inconclusive holds the
//!     release in `AwaitingPromotion` (unless its rollout ended).
//!
//! Never acting twice for one intent, per strategy: checks 1, 8 and 9 (CodeDeploy and the
//! registration), 14 (CreateTaskSet) and 16 (UpdateService). Every release settling once the
//! faults stop is check 3, for all three strategies.
//!
//! Each check has a unit test on a log written by hand (`checks.rs`,
//! `strategy_checks.rs`), and the suite's sweep asserts that its seeds gave every check
//! something to look at.
//!
//! How the faults are modelled, and where the model stops:
//! - A crash aborts the replica's task and kills its gate: nothing it sends afterwards
//!   reaches the world, nothing returns to it, and a call on its way when it died is
//!   abandoned (the world had not performed it yet). Its leases stay held until they expire.
//! - A pause freezes the replica's ports: a call is not sent while it is paused, and a reply
//!   (of a call the world performed) is held until the pause ends, as in a long GC or VM
//!   stall. Its lease renewals stop with it, so its leases expire under it.
//! - Latency injected into AWS calls, which delays the call before it takes effect, stays
//!   below the adapters' attempt timeout (10 s): AWS does not act on a request long after the
//!   client gave up, and no design without an idempotency token could keep a CreateDeployment
//!   that lands after that from duplicating one.
//! - An injected panic fires before the call reaches the world: the call did not happen.
//! - What a replica learned from a call and could not write (its status writes failed) lives
//!   in its memory only: when its lease moves to another replica first, the new owner cannot
//!   know that a stop was accepted, and sends it again once it waited for it in vain (check 9
//!   counts these as `Stats::stop_resends_after_handover`).

pub mod analysis_checks;
mod checks;
mod driver;
mod log;
pub mod notification_checks;
mod passes;
mod replica;
mod strategy_checks;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

pub use analysis_checks::AnalysisCounts;
pub use log::{
    EcsSeen, Entry, Event, EventLog, HandledRequest, RolloutSeen, RouteSeen, StepSeen, TaskSetSeen,
    TaskSetsSeen, digest,
};
pub use notification_checks::NotificationCounts;
pub use passes::{PassLog, PassRecorder};
pub use strategy_checks::StrategyCounts;

use driver::Driver;
use switchyard::lease::LeaseTiming;
use switchyard::model::{Phase, Reason};

/// The image registry of every simulated service.
pub const REGISTRY: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
/// Short leases, so that handovers happen often within a run.
pub const LEASE_TIMING: LeaseTiming = LeaseTiming {
    duration: Duration::from_secs(20),
    renew_period: Duration::from_secs(5),
    safety_margin: Duration::from_secs(5),
};
/// What one run simulates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationConfig {
    pub seed: u64,
    /// Controller replicas running at once (crashed ones are restarted under a new id).
    pub replicas: u32,
    /// Releases, each on its own service.
    pub releases: u32,
    /// Virtual minutes of faults, writes, crashes and pauses.
    pub minutes: u64,
    /// The most virtual minutes the releases get to settle once the faults stop.
    pub settle_minutes: u64,
    /// Lease shards.
    pub shards: u32,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            replicas: 3,
            releases: 6,
            minutes: 30,
            settle_minutes: 60,
            shards: 8,
        }
    }
}

impl SimulationConfig {
    /// The command that runs exactly this seed again.
    pub fn command(&self) -> String {
        let defaults = Self::default();
        let mut command = format!(
            "cargo run --release --example simulate -- --seed {} --replicas {} --releases {} --minutes {}",
            self.seed, self.replicas, self.releases, self.minutes
        );
        if self.settle_minutes != defaults.settle_minutes {
            command.push_str(&format!(" --settle-minutes {}", self.settle_minutes));
        }
        if self.shards != defaults.shards {
            command.push_str(&format!(" --shards {}", self.shards));
        }
        command
    }
}

/// What exactly went wrong; each kind belongs to one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// 1: two deployments for one rollout of a release.
    DuplicateDeployment,
    /// 2: a status write committed without a fence.
    UnfencedStatusWrite,
    /// 2: a status write committed under another shard's lease.
    WrongShard,
    /// 2: a shard's term went back in commit order.
    TermWentBack,
    /// 2: one term of a shard had two owners.
    TwoOwnersInOneTerm,
    /// 2: a mutation sent without a status write under a fence before it.
    UnfencedMutation,
    /// 2: a mutation sent after another replica's write for the release in a newer term.
    MutationAfterNewerTerm,
    /// 3: not settled at the limit, for no reason the checks can name.
    NotSettled,
    /// 3: not settled: the status waits for a stop it recorded but never sent.
    StuckOnUnsentStop,
    /// 3: not settled: the status lags what the controller could see (a finished deployment,
    /// an unhandled request): no pass ran for the release.
    StaleStatus,
    /// 3: a settled phase while a deployment of the release is still active.
    ActiveDeploymentWhenSettled,
    /// 3: Healthy, but the desired version is not what is live.
    HealthyButNotLive,
    /// 3: the status names another live task definition than AWS serves.
    StatusDisagreesWithAws,
    /// 3: Failed at the end for a cause that is gone (a refusal, a panicked pass).
    FailedForAGoneCause,
    /// 4: observedGeneration went back.
    GenerationWentBack,
    /// 5: the stored generation is not the last one written.
    GenerationLost,
    /// 5: the stored spec is not the last one written.
    SpecLost,
    /// 5: the status does not describe the latest generation.
    StatusNotOnLatest,
    /// 6: a stop recorded in the status never reached CodeDeploy.
    StopNeverSent,
    /// 7: a stop recorded as superseding, decided under a generation that asks for the
    /// stopped rollout's own candidate.
    EditStoppedRollout,
    /// 7: a rollout ended Superseded while no generation during it asked for another
    /// candidate.
    SupersededWithoutNewCandidate,
    /// 7: a stop recorded for neither a new candidate, an abort nor a firing alarm.
    StopWithoutCause,
    /// 8: two revisions registered for one candidate fingerprint of a release.
    DuplicateRegistration,
    /// 9: a deployment accepted a second StopDeployment after a first one succeeded and
    /// its replica, up, knew.
    StopSentTwice,
    /// 9: a deployment accepted two ContinueDeployment calls.
    ContinuedTwice,
    /// 10: a request never handled.
    LostRequest,
    /// 10: a request handled without its history entry (or declined without a reason).
    RequestWithoutHistory,
    /// 11: a release without a pass for too long while its owner was up.
    Wedged,
    /// 12: a refused call asked again more often than the refusal backoff allows.
    RefusedCallAskedHot,
    /// 13: a production weight above what the step in force allows.
    WeightAboveStep,
    /// 13: a production weight lowered during a rollout that was not rolling back.
    WeightWentDown,
    /// 14: two task sets created for one rollout.
    SecondCandidateTaskSet,
    /// 14: a candidate task set created while another non-primary one still ran.
    CandidateBesideLeftover,
    /// 15: a task set scaled to 0 or deleted while a route forwarded to its group.
    TaskSetRemovedWithWeight,
    /// 15: a rollout ended rolled back (or superseded) with traffic still on its candidate.
    RolledBackWithTraffic,
    /// 16: two `UpdateService` calls took effect for one intent.
    UpdateServiceTwice,
    /// 16: an `UpdateService` sent without a status recording its intent.
    UpdateServiceWithoutIntent,
    /// 17: a service deployment someone else started was stopped or answered.
    ForeignDeploymentTouched,
    /// 17: a service deployment someone else started, seen in flight, was replaced.
    ForeignDeploymentReplaced,
    /// 18: a hook answered with an id other than the one of the hook that waited.
    StaleHookAnswer,
    /// 19: a recorded delivery never arrived and was not counted as given up.
    NotificationLost,
    /// 19: a destination received a message no committed status recorded for it, or other
    /// than recorded.
    NotificationNotRecorded,
    /// 20: a delivery arrived twice without a lost outcome to explain it.
    NotificationDeliveredTwice,
    /// 21: the events recorded disagree with the rollouts (a missing or second
    /// `RolloutStarted`, a step completed without steps, another release or strategy).
    EventsDisagreeWithRollouts,
    /// 22: one slot of an analysis recorded twice (differently), or `taken` went back.
    MeasurementTakenTwice,
    /// 22: a slot skipped, or an HTTP measurement recorded that no probe took.
    MeasurementSkipped,
    /// 23: a rollout succeeded although its analysis failed.
    FailedAnalysisPromoted,
    /// 24: too many inconclusive measurements, and the release not held for a human.
    InconclusiveNotHeld,
}

impl ViolationKind {
    /// The invariant (1 to 24) this kind breaks.
    pub fn invariant(self) -> u8 {
        use ViolationKind::*;
        match self {
            DuplicateDeployment => 1,
            UnfencedStatusWrite
            | WrongShard
            | TermWentBack
            | TwoOwnersInOneTerm
            | UnfencedMutation
            | MutationAfterNewerTerm => 2,
            NotSettled
            | StuckOnUnsentStop
            | StaleStatus
            | ActiveDeploymentWhenSettled
            | HealthyButNotLive
            | StatusDisagreesWithAws
            | FailedForAGoneCause => 3,
            GenerationWentBack => 4,
            GenerationLost | SpecLost | StatusNotOnLatest => 5,
            StopNeverSent => 6,
            EditStoppedRollout | SupersededWithoutNewCandidate | StopWithoutCause => 7,
            DuplicateRegistration => 8,
            StopSentTwice | ContinuedTwice => 9,
            LostRequest | RequestWithoutHistory => 10,
            Wedged => 11,
            RefusedCallAskedHot => 12,
            WeightAboveStep | WeightWentDown => 13,
            SecondCandidateTaskSet | CandidateBesideLeftover => 14,
            TaskSetRemovedWithWeight | RolledBackWithTraffic => 15,
            UpdateServiceTwice | UpdateServiceWithoutIntent => 16,
            ForeignDeploymentTouched | ForeignDeploymentReplaced => 17,
            StaleHookAnswer => 18,
            NotificationLost | NotificationNotRecorded => 19,
            NotificationDeliveredTwice => 20,
            EventsDisagreeWithRollouts => 21,
            MeasurementTakenTwice | MeasurementSkipped => 22,
            FailedAnalysisPromoted => 23,
            InconclusiveNotHeld => 24,
        }
    }

    pub fn invariant_name(self) -> &'static str {
        match self.invariant() {
            1 => "one deployment per rollout",
            2 => "one owner per lease term",
            3 => "convergence",
            4 => "observedGeneration never goes back",
            5 => "no desired version lost",
            6 => "a recorded stop is sent",
            7 => "an edit that keeps the candidate never stops its rollout",
            8 => "one registration per candidate",
            9 => "one mutation per intent",
            10 => "no lost request",
            11 => "no wedged release",
            12 => "refusals back off",
            13 => "task-set weights follow the steps",
            14 => "one candidate task set per rollout",
            15 => "traffic first, then task sets",
            16 => "one UpdateService per intent",
            17 => "deployments someone else started are left alone",
            18 => "a hook is answered with its current id",
            19 => "every recorded notification arrives, and only those",
            20 => "a notification arrives twice only after a lost outcome",
            21 => "the events follow the rollouts",
            22 => "one measurement per slot of an analysis",
            23 => "a failed analysis rolls back",
            _ => "too many inconclusive measurements wait for a human",
        }
    }
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub message: String,
}

impl Violation {
    fn new(kind: ViolationKind, message: String) -> Self {
        Self { kind, message }
    }

    /// The invariant it breaks (see [`ViolationKind::invariant_name`]).
    pub fn invariant(&self) -> u8 {
        self.kind.invariant()
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{} {}: {:?}] {}",
            self.invariant(),
            self.kind.invariant_name(),
            self.kind,
            self.message
        )
    }
}

/// How one release ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseOutcome {
    pub release: String,
    pub stored_generation: u64,
    pub last_written_generation: u64,
    pub stored_tag: String,
    pub last_written_tag: String,
    pub last_written_image: String,
    pub phase: Option<Phase>,
    /// The reason of the status's `Ready` condition.
    pub reason: Option<Reason>,
    pub message: String,
    pub observed_generation: Option<u64>,
    /// Deployments of the release's group not yet finished.
    pub active_deployments: usize,
    /// What AWS serves now.
    pub live_task_definition: Option<String>,
    pub live_image: Option<String>,
    /// What the status says.
    pub desired_task_definition: Option<String>,
    pub status_live_task_definition: Option<String>,
    /// The deployment the status says it is stopping.
    pub stop_requested: Option<String>,
    /// Whether the deployment the status tracks is still active (`None`: it tracks none).
    pub tracked_deployment_active: Option<bool>,
    /// An operator request newer than the status has handled.
    pub unhandled_request: Option<&'static str>,
}

/// What happened in one run, counted: the faults injected, and what each check saw (so
/// that a check that found nothing shows it had something to look at).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub spec_writes: u32,
    /// Spec writes that kept the candidate (labels, pause, alarms, promotion, onDrift, the
    /// cluster's form).
    pub edits_keeping_candidate: u32,
    /// Of those, the ones written while a deployment of the release was active (check 7).
    pub edits_in_flight: u32,
    /// Writes of an earlier image again (a revert).
    pub reverts: u32,
    /// Generations asking for an image an earlier generation of the release asked for
    /// (a registration to reuse; check 8).
    pub candidates_wanted_again: u32,
    /// Stops recorded, each judged by check 7.
    pub stops_justified: u32,
    /// Revisions switchyard registered (check 8).
    pub registrations: usize,
    pub requests: u32,
    /// Requests handled (check 10), of which declined; replaced by a newer one first.
    pub requests_handled: usize,
    pub requests_declined: usize,
    pub requests_replaced: usize,
    pub alarm_pulses: u32,
    pub crashes: u32,
    /// Crashes right after a mutation returned (CreateDeployment, RegisterTaskDefinition,
    /// StopDeployment), before its outcome was recorded.
    pub crashes_after_action: u32,
    pub graceful_restarts: u32,
    pub freezes: u32,
    pub replicas_started: u32,
    /// Refusal episodes (an operation refused for a while), and the attempts refused
    /// (check 12).
    pub refusal_episodes: u32,
    pub refused_attempts: usize,
    /// Panics injected into AWS calls, and passes that panicked.
    pub panics_injected: u32,
    pub passes_panicked: u64,
    /// Replicas armed to fail their status writes after an action, and status writes that
    /// failed in all.
    pub write_faults_armed: u32,
    pub status_writes_failed: usize,
    /// How long CodeDeploy took to stop a deployment in this run.
    pub stop_delay_secs: u64,
    /// StopDeployment calls accepted (check 9), and the second ones excused: the replica
    /// that knew crashed, stopped or froze; or its lease moved on before it could record it.
    pub stops_accepted: u32,
    pub stop_resends_excused: u32,
    pub stop_resends_after_handover: u32,
    pub continues_accepted: u32,
    /// Weights an operator moved off a canary by hand, and service deployments someone
    /// else started.
    pub weights_moved_by_hand: u32,
    pub foreign_deployments: u32,
    /// What the strategy checks (13 to 18) looked at.
    pub strategy: StrategyCounts,
    /// What the notification checks (19 to 21) looked at.
    pub notifications: NotificationCounts,
    /// What the analysis checks (22 to 24) looked at.
    pub analyses: AnalysisCounts,
    /// Passes (check 11), and the longest time an owner was up without a pass of one of its
    /// releases.
    pub passes: usize,
    pub longest_pass_gap: Duration,
    pub deployments: usize,
    pub mutations: usize,
    pub status_writes: usize,
    pub lease_takes: usize,
    pub aws_calls: u64,
    pub store_calls: u64,
    /// Virtual time from the end of the faults until every release had settled.
    pub settled_after: Option<Duration>,
    pub final_phases: BTreeMap<Phase, u32>,
}

impl Stats {
    /// Adds another run's counts (the longest gap is the longest of both).
    pub fn add(&mut self, other: &Stats) {
        self.spec_writes += other.spec_writes;
        self.edits_keeping_candidate += other.edits_keeping_candidate;
        self.edits_in_flight += other.edits_in_flight;
        self.reverts += other.reverts;
        self.candidates_wanted_again += other.candidates_wanted_again;
        self.stops_justified += other.stops_justified;
        self.registrations += other.registrations;
        self.requests += other.requests;
        self.requests_handled += other.requests_handled;
        self.requests_declined += other.requests_declined;
        self.requests_replaced += other.requests_replaced;
        self.alarm_pulses += other.alarm_pulses;
        self.crashes += other.crashes;
        self.crashes_after_action += other.crashes_after_action;
        self.graceful_restarts += other.graceful_restarts;
        self.freezes += other.freezes;
        self.replicas_started += other.replicas_started;
        self.refusal_episodes += other.refusal_episodes;
        self.refused_attempts += other.refused_attempts;
        self.panics_injected += other.panics_injected;
        self.passes_panicked += other.passes_panicked;
        self.write_faults_armed += other.write_faults_armed;
        self.status_writes_failed += other.status_writes_failed;
        self.stop_delay_secs = self.stop_delay_secs.max(other.stop_delay_secs);
        self.stops_accepted += other.stops_accepted;
        self.stop_resends_excused += other.stop_resends_excused;
        self.stop_resends_after_handover += other.stop_resends_after_handover;
        self.continues_accepted += other.continues_accepted;
        self.weights_moved_by_hand += other.weights_moved_by_hand;
        self.foreign_deployments += other.foreign_deployments;
        self.strategy.add(&other.strategy);
        self.notifications.add(&other.notifications);
        self.analyses.add(&other.analyses);
        self.passes += other.passes;
        self.longest_pass_gap = self.longest_pass_gap.max(other.longest_pass_gap);
        self.deployments += other.deployments;
        self.mutations += other.mutations;
        self.status_writes += other.status_writes;
        self.lease_takes += other.lease_takes;
        self.aws_calls += other.aws_calls;
        self.store_calls += other.store_calls;
        for (phase, n) in &other.final_phases {
            *self.final_phases.entry(*phase).or_default() += n;
        }
    }

    /// The counts, one line (the seed report's and the summary's).
    pub fn summary(&self) -> String {
        format!(
            "{} spec writes ({} keeping the candidate, {} of them in flight; {} reverts; {} candidates wanted again), {} stops judged, {} registrations, {} requests ({} handled, {} declined, {} replaced), {} alarm pulses, {} crashes (+{} right after a mutation), {} graceful restarts, {} pauses, {} replicas started, {} refusal episodes ({} attempts refused), {} panics injected ({} passes panicked), {} write faults armed ({} status writes failed), {} stops accepted ({} resends excused, {} after a handover), {} continues accepted, {} weights moved by hand, {} foreign service deployments, {} production weight changes judged, {} task sets created, {} task-set removals judged, {} task-set rollbacks judged, {} UpdateService calls judged, {} hook answers judged, {} notification events recorded ({} deliveries, {} given up; {} received, {} second arrivals after a lost outcome, {} outcomes lost), {} analyses ({} measurements, {} failed, {} inconclusive), {} passes (longest owner-up gap {:.0}s), {} deployments, {} mutations, {} status writes, {} lease takes, {} AWS calls, {} store calls; final phases {:?}",
            self.spec_writes,
            self.edits_keeping_candidate,
            self.edits_in_flight,
            self.reverts,
            self.candidates_wanted_again,
            self.stops_justified,
            self.registrations,
            self.requests,
            self.requests_handled,
            self.requests_declined,
            self.requests_replaced,
            self.alarm_pulses,
            self.crashes,
            self.crashes_after_action,
            self.graceful_restarts,
            self.freezes,
            self.replicas_started,
            self.refusal_episodes,
            self.refused_attempts,
            self.panics_injected,
            self.passes_panicked,
            self.write_faults_armed,
            self.status_writes_failed,
            self.stops_accepted,
            self.stop_resends_excused,
            self.stop_resends_after_handover,
            self.continues_accepted,
            self.weights_moved_by_hand,
            self.foreign_deployments,
            self.strategy.weight_changes,
            self.strategy.task_sets_created,
            self.strategy.task_set_removals,
            self.strategy.rollbacks,
            self.strategy.service_updates,
            self.strategy.hook_answers,
            self.notifications.events,
            self.notifications.deliveries,
            self.notifications.given_up,
            self.notifications.received,
            self.notifications.duplicates,
            self.notifications.outcomes_lost,
            self.analyses.analyses,
            self.analyses.measurements,
            self.analyses.failed,
            self.analyses.inconclusive,
            self.passes,
            self.longest_pass_gap.as_secs_f64(),
            self.deployments,
            self.mutations,
            self.status_writes,
            self.lease_takes,
            self.aws_calls,
            self.store_calls,
            self.final_phases
        )
    }
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub config: SimulationConfig,
    pub violations: Vec<Violation>,
    /// A digest of the event log and the final state: equal for equal runs.
    pub digest: String,
    /// Virtual time the run took.
    pub virtual_time: Duration,
    pub stats: Stats,
    /// The event log, one line per event, then the final state.
    pub log: Vec<String>,
}

/// Runs one seed. Must be the only thing on a current-thread tokio runtime whose time is
/// paused (`Builder::new_current_thread().enable_time().start_paused(true)`), one runtime per
/// seed: that is what makes the run a function of the seed.
pub async fn run(config: &SimulationConfig) -> SeedReport {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "a simulation runs on a current-thread runtime with paused time"
    );
    let (crash_tx, crash_rx) = mpsc::unbounded_channel();
    let mut driver = Driver::new(config.clone(), crash_tx);
    // The passes are recorded from the controller's tracing spans, on this thread.
    let _recording = passes::record_on_this_thread(&driver.pass_log());
    let _subscriber = (!passes::global_recorder_installed())
        .then(|| tracing::subscriber::set_default(passes::PassSubscriber::new()));
    install_panic_filter();
    driver.run(crash_rx).await
}

/// Keeps the panics the simulation injects (`Fault::Panic`) off stderr: the controller
/// catches them, logs them, and the checks look at what follows. Every other panic is
/// reported as before.
fn install_panic_filter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected panic in ") {
                previous(info);
            }
        }));
    });
}
