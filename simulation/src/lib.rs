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
//! 1. sets up `releases` blue/green services with mixed deployment configs, ready options,
//!    promotion modes and alarms, and writes a first version of each;
//! 2. starts `replicas` controllers (`controller::run`), each with its own state, its own
//!    leases under a unique replica id, and its own decorators of the shared store and AWS
//!    (`replica.rs`: freeze, kill, record);
//! 3. for `minutes` of virtual time: injects faults (throttling, server errors, latency,
//!    lost responses, with a CreateDeployment whose reply is lost among them), writes new
//!    desired versions under the current generation, asks for promotions, aborts and retries,
//!    pulses alarms, crashes replicas (their leases are not released; one may crash right
//!    after CreateDeployment returned, before recording the id) and restarts them under a
//!    new id, restarts them gracefully (leases released), and freezes one for longer than a
//!    lease lasts;
//! 4. stops the faults and writes, restarts every crashed replica, promotes what waits for a
//!    promotion, and waits (at most `settle_minutes`) until every release has settled;
//! 5. shuts every replica down and checks the invariants (`checks.rs`).
//!
//! The invariants, each violation named by a [`ViolationKind`]:
//! 1. never two deployments for one (release, generation, attempt) (from the descriptions of
//!    every deployment CodeDeploy holds);
//! 2. never two replicas acting on one release in overlapping lease terms: every status write
//!    the store commits is fenced, per shard the terms never go back in commit order and each
//!    term has one owner; every mutating AWS call (RegisterTaskDefinition, CreateDeployment,
//!    ContinueDeployment, StopDeployment) is sent under the fence of a status write its
//!    replica heard succeed, and never after another replica's write for the release in a
//!    newer term committed. A call sent before that write, in flight when the lease moved,
//!    is the limit fencing cannot lift: AWS checks no fence;
//! 3. every release converges, once the faults stop, to its latest spec (Healthy, with the
//!    desired image live and the status saying so) or to an explicit RolledBack or Failed;
//! 4. observedGeneration never goes back (over every committed status write);
//! 5. no desired version is lost: the stored generation and spec are the last ones written,
//!    and the status describes that generation;
//! 6. a stop the controller recorded in a status (superseded, alarm, abort) reaches
//!    CodeDeploy while the release's owner is up, or the deployment ended by itself first.
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

mod checks;
mod driver;
mod log;
mod replica;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

pub use log::{Entry, Event, EventLog, digest};

use driver::Driver;
use switchyard::lease::LeaseTiming;
use switchyard::model::Phase;

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
    /// 1: two deployments for one (release, generation, attempt).
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
}

impl ViolationKind {
    /// The invariant (1 to 6) this kind breaks.
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
            | StatusDisagreesWithAws => 3,
            GenerationWentBack => 4,
            GenerationLost | SpecLost | StatusNotOnLatest => 5,
            StopNeverSent => 6,
        }
    }

    pub fn invariant_name(self) -> &'static str {
        match self.invariant() {
            1 => "one deployment per attempt",
            2 => "one owner per lease term",
            3 => "convergence",
            4 => "observedGeneration never goes back",
            5 => "no desired version lost",
            _ => "a recorded stop is sent",
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

    /// 1: one deployment per attempt; 2: one owner per term; 3: convergence;
    /// 4: observedGeneration never goes back; 5: no desired version is lost; 6: a stop the
    /// controller recorded is sent.
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

/// What happened in one run, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub spec_writes: u32,
    pub requests: u32,
    pub alarm_pulses: u32,
    pub crashes: u32,
    pub crashes_after_create: u32,
    pub graceful_restarts: u32,
    pub freezes: u32,
    pub replicas_started: u32,
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
    driver.run(crash_rx).await
}
