//! The driver of one run: sets the world up, starts the replicas, plays the seeded events of
//! the fault window, quiesces, waits for the releases to settle, and reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::log::{Event, EventLog, digest};
use crate::replica::{Gate, replica_ports};
use crate::{LEASE_TIMING, REGISTRY, ReleaseOutcome, SeedReport, SimulationConfig, Stats, checks};
use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig, Leases, RunSummary};
use switchyard::lease::shard_of;
use switchyard::model::parse::parse_documents;
use switchyard::model::{AuditAction, OperatorRequest, Phase, RequestKind};
use switchyard::ports::{
    AlarmState, LeaseStore, ReadyAction, ReleaseStore, SpecPrecondition, SpecWrite, StoreError,
};
use switchyard::sim::{BlueGreenSetup, Fault, FaultRule, SimAws, SimStore};
use switchyard::state::ControllerState;

/// Image tags containing this never become healthy (their Install fails).
const BAD_TAG: &str = "-bad";
/// How long a deployment waits in Ready for a ContinueDeployment before CodeDeploy stops it:
/// longer than the settling limit, so a promotion or a stop that is never sent shows.
const READY_WAIT_MINUTES: u32 = 120;
/// How often the settling phase looks at the releases.
const SETTLE_CHECK: Duration = Duration::from_secs(60);
/// Settled means: every release settled and no status written for this many checks in a row,
/// longer than two resync periods, so every owner has looked at every release again.
const SETTLED_CHECKS: u32 = 3;
/// How long shutting the replicas down may take at the end (virtual).
const FINAL_SHUTDOWN_LIMIT: Duration = Duration::from_secs(600);

/// One simulated release: how its service is set up and what was last written.
struct ReleasePlan {
    name: String,
    manual: bool,
    alarm: Option<String>,
    /// The deployment config named in the spec (else the group's default applies).
    spec_config: Option<String>,
    versions: u32,
    last_generation: u64,
    last_tag: String,
    last_spec: serde_json::Value,
    alarm_firing: bool,
}

impl ReleasePlan {
    fn image(&self, tag: &str) -> String {
        format!("{REGISTRY}/{}:{tag}", self.name)
    }

    /// The release's spec with this image tag, parsed and validated as `apply` would.
    fn spec(&self, tag: &str) -> serde_json::Value {
        let name = &self.name;
        let mut yaml = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {image}\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n",
            image = self.image(tag)
        );
        if let Some(config) = &self.spec_config {
            yaml.push_str(&format!("      deploymentConfig: {config}\n"));
        }
        if self.manual {
            yaml.push_str("      promotion: manual\n");
        }
        if let Some(alarm) = &self.alarm {
            yaml.push_str(&format!("  rollback:\n    alarms: [{alarm}]\n"));
        }
        let documents = parse_documents(&yaml).expect("the simulation's documents are valid");
        serde_json::to_value(&documents[0].spec).expect("a spec serializes")
    }
}

/// A running replica.
struct Replica {
    id: String,
    gate: Arc<Gate>,
    task: JoinHandle<RunSummary>,
    shutdown: oneshot::Sender<()>,
}

/// Something the driver does at a set time.
#[derive(Debug, Clone, Copy)]
enum Scheduled {
    /// Start a replica (under a new id) in this slot, if it is empty.
    Restart(usize),
    /// Set this release's alarm back to OK.
    AlarmOk(usize),
}

/// The predefined configs the releases' groups and specs draw from, with weights: mostly fast
/// ones, so that most runs finish many deployments.
const DEPLOYMENT_CONFIGS: [(&str, u32); 4] = [
    ("CodeDeployDefault.ECSAllAtOnce", 4),
    ("CodeDeployDefault.ECSCanary10Percent5Minutes", 2),
    ("CodeDeployDefault.ECSLinear10PercentEvery1Minutes", 2),
    ("CodeDeployDefault.ECSCanary10Percent15Minutes", 1),
];

fn pick_config(rng: &mut fastrand::Rng) -> String {
    let total: u32 = DEPLOYMENT_CONFIGS.iter().map(|(_, w)| w).sum();
    let mut draw = rng.u32(0..total);
    for (name, weight) in DEPLOYMENT_CONFIGS {
        if draw < weight {
            return name.to_string();
        }
        draw -= weight;
    }
    unreachable!("the draw is below the total weight")
}

/// Everything one run holds: the world, the replicas, the releases, the schedule.
pub(super) struct Driver {
    config: SimulationConfig,
    rng: fastrand::Rng,
    clock: Clock,
    aws: SimAws,
    store: SimStore,
    log: EventLog,
    releases: Vec<ReleasePlan>,
    slots: Vec<Option<Replica>>,
    stopping: Vec<(String, JoinHandle<RunSummary>)>,
    schedule: BTreeMap<(Instant, u64), Scheduled>,
    scheduled_count: u64,
    replica_count: u32,
    crash_tx: mpsc::UnboundedSender<String>,
    stats: Stats,
    /// The virtual wall time at which the log's clock starts.
    clock_origin: jiff::Timestamp,
}

impl Driver {
    pub(super) fn new(config: SimulationConfig, crash_tx: mpsc::UnboundedSender<String>) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let clock = Clock::fixed_epoch();
        let aws = SimAws::new(clock.clone()).with_seed(rng.u64(..));
        let store = SimStore::new(clock.clone()).with_seed(rng.u64(..));
        let log = EventLog::new();
        let clock_origin = clock.now();
        let observer = log.clone();
        store.observe_status_writes(move |write| {
            observer.push(Event::StatusCommitted {
                release: write.release.clone(),
                fence: write.fence.clone(),
                version: write.status_version,
                observed_generation: write.status.observed_generation,
                phase: write.status.phase,
                message: write.status.message.clone(),
                stop_requested: write
                    .status
                    .code_deploy()
                    .and_then(|s| s.stop.as_ref())
                    .map(|s| s.deployment_id.clone()),
            });
        });
        Self {
            slots: (0..config.replicas.max(1)).map(|_| None).collect(),
            config,
            rng,
            clock,
            aws,
            store,
            log,
            releases: Vec::new(),
            stopping: Vec::new(),
            schedule: BTreeMap::new(),
            scheduled_count: 0,
            replica_count: 0,
            crash_tx,
            stats: Stats::default(),
            clock_origin,
        }
    }

    pub(super) async fn run(
        &mut self,
        mut crash_rx: mpsc::UnboundedReceiver<String>,
    ) -> SeedReport {
        self.set_up_releases().await;
        for slot in 0..self.slots.len() {
            self.start_replica(slot);
        }
        self.inject_faults();

        // The fault window.
        let fault_end = Instant::now() + Duration::from_secs(self.config.minutes * 60);
        let mut next_event = Instant::now() + self.event_gap();
        while Instant::now() < fault_end {
            let mut wake = next_event.min(fault_end);
            if let Some(((at, _), _)) = self.schedule.first_key_value() {
                wake = wake.min(*at);
            }
            tokio::select! {
                biased;
                Some(replica) = crash_rx.recv() => self.on_self_crash(&replica),
                () = tokio::time::sleep_until(wake) => {}
            }
            self.run_scheduled(Instant::now()).await;
            if Instant::now() >= next_event && Instant::now() < fault_end {
                self.random_event().await;
                next_event = Instant::now() + self.event_gap();
            }
        }

        // Quiesce: no more faults, pauses, crashes or writes; everyone back up.
        self.aws.clear_faults();
        self.store.clear_faults();
        while let Ok(replica) = crash_rx.try_recv() {
            self.on_self_crash(&replica);
        }
        for replica in self.slots.iter().flatten() {
            replica.gate.arm_crash_after_create(false);
        }
        for index in 0..self.releases.len() {
            if self.releases[index].alarm_firing {
                self.set_alarm(index, AlarmState::Ok);
            }
        }
        self.schedule
            .retain(|_, s| matches!(s, Scheduled::Restart(_)));
        self.run_scheduled(Instant::now() + Duration::from_secs(24 * 3600))
            .await;
        self.log.push(Event::Quiesced);
        let quiesced_at = Instant::now();

        // Settle.
        let settle_end = quiesced_at + Duration::from_secs(self.config.settle_minutes * 60);
        let mut previous: Option<Vec<(String, u64)>> = None;
        let mut stable_checks = 0;
        loop {
            while let Ok(replica) = crash_rx.try_recv() {
                self.on_self_crash(&replica);
            }
            self.run_scheduled(Instant::now()).await;
            self.promote_waiting().await;
            let snapshot = self.settled_snapshot();
            stable_checks = if snapshot.is_some() && snapshot == previous {
                stable_checks + 1
            } else {
                0
            };
            if stable_checks >= SETTLED_CHECKS {
                self.stats.settled_after = Some(Instant::now() - quiesced_at);
                self.log.push(Event::Settled { all: true });
                break;
            }
            previous = snapshot;
            if Instant::now() >= settle_end {
                self.log.push(Event::Settled { all: false });
                break;
            }
            tokio::time::sleep(SETTLE_CHECK).await;
        }

        self.shut_down_everyone().await;
        self.report()
    }

    /// A random gap between two driver events.
    fn event_gap(&mut self) -> Duration {
        Duration::from_secs(self.rng.u64(3..=40))
    }

    fn schedule_at(&mut self, at: Instant, what: Scheduled) {
        self.scheduled_count += 1;
        self.schedule.insert((at, self.scheduled_count), what);
    }

    async fn run_scheduled(&mut self, until: Instant) {
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > until {
                break;
            }
            match entry.remove() {
                Scheduled::Restart(slot) => {
                    if self.slots[slot].is_none() {
                        self.start_replica(slot);
                    }
                }
                Scheduled::AlarmOk(index) => self.set_alarm(index, AlarmState::Ok),
            }
        }
    }

    async fn set_up_releases(&mut self) {
        self.aws.fail_install_for_image(BAD_TAG);
        for index in 0..self.config.releases {
            let name = format!("app-{index}");
            let mut setup = BlueGreenSetup::new("prod", &name);
            setup.deployment_config = pick_config(&mut self.rng);
            let waits_in_ready = self.rng.bool();
            if waits_in_ready {
                setup.ready_action = ReadyAction::StopDeployment {
                    wait_minutes: READY_WAIT_MINUTES,
                };
            }
            if self.rng.u32(0..4) == 0 {
                setup.termination_wait_minutes = self.rng.u32(1..=3);
            }
            self.aws.add_bluegreen_service(setup);
            let alarm = self.rng.bool().then(|| format!("{name}-5xx"));
            if let Some(alarm) = &alarm {
                self.aws.set_alarm(alarm, AlarmState::Ok);
            }
            let spec_config = (self.rng.u32(0..3) == 0).then(|| pick_config(&mut self.rng));
            let plan = ReleasePlan {
                manual: waits_in_ready && self.rng.bool(),
                name,
                alarm,
                spec_config,
                versions: 0,
                last_generation: 0,
                last_tag: "1.0.0".into(),
                last_spec: serde_json::Value::Null,
                alarm_firing: false,
            };
            self.releases.push(plan);
        }
        for index in 0..self.releases.len() {
            self.write_spec(index).await;
        }
    }

    /// Installs this seed's background fault rates (they last the whole fault window).
    fn inject_faults(&mut self) {
        let rng = &mut self.rng;
        let lost_create = 0.1 + rng.f64() * 0.3;
        let aws_throttle = rng.f64() * 0.06;
        let aws_error = rng.f64() * 0.04;
        let aws_lost = rng.f64() * 0.03;
        let aws_latency = rng.f64() * 0.10;
        let aws_long = rng.f64() * 0.02;
        // Latency before the call takes effect stays below the adapters' 10 s attempt timeout:
        // AWS does not act on a request much later than the client gave up on it, and no
        // design can keep a CreateDeployment that lands after that from duplicating one.
        let aws_long_secs = rng.u64(4..=9);
        let store_throttle = rng.f64() * 0.05;
        let store_error = rng.f64() * 0.04;
        let store_lost = rng.f64() * 0.03;
        let store_latency = rng.f64() * 0.10;
        let store_long = rng.f64() * 0.02;
        let store_long_secs = rng.u64(8..=25);
        let rule = |operation: &str, fault: Fault, probability: f64| {
            FaultRule::always(operation, fault).with_probability(probability)
        };
        // The first error-like rule that fires decides: the CreateDeployment rule goes first.
        self.aws.inject(rule(
            "codedeploy:CreateDeployment",
            Fault::LostResponse,
            lost_create,
        ));
        self.aws.inject(rule("*", Fault::Throttle, aws_throttle));
        self.aws.inject(rule("*", Fault::ServerError, aws_error));
        self.aws.inject(rule("*", Fault::LostResponse, aws_lost));
        self.aws.inject(rule(
            "*",
            Fault::Latency(Duration::from_secs(2)),
            aws_latency,
        ));
        self.aws.inject(rule(
            "*",
            Fault::Latency(Duration::from_secs(aws_long_secs)),
            aws_long,
        ));
        self.store
            .inject(rule("*", Fault::Throttle, store_throttle));
        self.store
            .inject(rule("*", Fault::ServerError, store_error));
        self.store
            .inject(rule("*", Fault::LostResponse, store_lost));
        self.store.inject(rule(
            "*",
            Fault::Latency(Duration::from_secs(1)),
            store_latency,
        ));
        self.store.inject(rule(
            "*",
            Fault::Latency(Duration::from_secs(store_long_secs)),
            store_long,
        ));
        self.log.push(Event::FaultsInjected {
            description: format!(
                "aws: lost CreateDeployment {lost_create:.3}, throttle {aws_throttle:.3}, 5xx {aws_error:.3}, lost {aws_lost:.3}, latency 2s {aws_latency:.3}, latency {aws_long_secs}s {aws_long:.3}; store: throttle {store_throttle:.3}, 5xx {store_error:.3}, lost {store_lost:.3}, latency 1s {store_latency:.3}, latency {store_long_secs}s {store_long:.3}"
            ),
        });
    }

    fn start_replica(&mut self, slot: usize) {
        self.replica_count += 1;
        self.stats.replicas_started += 1;
        let id = format!("replica-{}", self.replica_count);
        let gate = Gate::new();
        let (store, aws) = replica_ports(
            &id,
            &self.store,
            &self.aws,
            &gate,
            &self.log,
            &self.crash_tx,
        );
        let store = Arc::new(store);
        let lease_store: Arc<dyn LeaseStore> = store.clone();
        let leases = Leases::new(
            lease_store,
            id.clone(),
            self.config.shards,
            LEASE_TIMING,
            &self.clock,
        );
        let config = ControllerConfig {
            jitter_seed: Some(self.rng.u64(..)),
            ..ControllerConfig::default()
        };
        let ctx = Context::new(
            store,
            Arc::new(aws),
            self.clock.clone(),
            config,
            ControllerState::new(),
        )
        .with_leases(leases);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        // The replica's id on the loop's own log lines (`--trace`); passes log their release.
        let span = tracing::info_span!("replica", id = %id);
        let task = tokio::spawn(
            controller::run(ctx, async move {
                let _ = shutdown_rx.await;
            })
            .instrument(span),
        );
        self.log.push(Event::ReplicaStarted {
            replica: id.clone(),
        });
        self.slots[slot] = Some(Replica {
            id,
            gate,
            task,
            shutdown,
        });
    }

    fn running_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&slot| self.slots[slot].is_some())
            .collect()
    }

    fn pick_running(&mut self) -> Option<usize> {
        let running = self.running_slots();
        (!running.is_empty()).then(|| running[self.rng.usize(0..running.len())])
    }

    /// Aborts the replica's task without a shutdown: nothing is drained or released.
    fn crash(&mut self, slot: usize, point: &'static str) {
        let Some(replica) = self.slots[slot].take() else {
            return;
        };
        replica.gate.kill();
        replica.task.abort();
        self.stats.crashes += 1;
        self.log.push(Event::ReplicaCrashed {
            replica: replica.id,
            point,
        });
        let restart = Instant::now() + Duration::from_secs(self.rng.u64(5..=120));
        self.schedule_at(restart, Scheduled::Restart(slot));
    }

    /// A replica crashed itself right after CreateDeployment; its task goes too.
    fn on_self_crash(&mut self, id: &str) {
        let Some(slot) = (0..self.slots.len())
            .find(|&slot| self.slots[slot].as_ref().is_some_and(|r| r.id == id))
        else {
            return;
        };
        if let Some(replica) = self.slots[slot].take() {
            replica.task.abort();
            self.stats.crashes_after_create += 1;
            let restart = Instant::now() + Duration::from_secs(self.rng.u64(5..=120));
            self.schedule_at(restart, Scheduled::Restart(slot));
        }
    }

    /// Shuts the replica down (it drains and releases its leases); a new one takes its slot.
    fn restart_gracefully(&mut self, slot: usize) {
        let Some(replica) = self.slots[slot].take() else {
            return;
        };
        let _ = replica.shutdown.send(());
        self.stats.graceful_restarts += 1;
        self.log.push(Event::ReplicaStopping {
            replica: replica.id.clone(),
        });
        self.stopping.push((replica.id, replica.task));
        let restart = Instant::now() + Duration::from_secs(self.rng.u64(0..=30));
        self.schedule_at(restart, Scheduled::Restart(slot));
    }

    fn set_alarm(&mut self, index: usize, state: AlarmState) {
        let plan = &mut self.releases[index];
        let Some(alarm) = plan.alarm.clone() else {
            return;
        };
        plan.alarm_firing = state == AlarmState::Alarm;
        self.aws.set_alarm(&alarm, state);
        self.log.push(Event::AlarmSet {
            alarm,
            state: match state {
                AlarmState::Alarm => "ALARM",
                AlarmState::Ok => "OK",
                AlarmState::InsufficientData => "INSUFFICIENT_DATA",
            },
        });
    }

    async fn random_event(&mut self) {
        let index = self.rng.usize(0..self.releases.len().max(1));
        match self.rng.u32(0..100) {
            0..=37 => self.write_spec(index).await,
            38..=51 => {
                let kind = match self.rng.u32(0..10) {
                    0..=3 => RequestKind::Promote,
                    4..=6 => RequestKind::Abort,
                    _ => RequestKind::Retry,
                };
                self.request(index, kind).await;
            }
            52..=59 => {
                if self.releases[index].alarm.is_some() && !self.releases[index].alarm_firing {
                    self.stats.alarm_pulses += 1;
                    self.set_alarm(index, AlarmState::Alarm);
                    let ok_at = Instant::now() + Duration::from_secs(self.rng.u64(20..=240));
                    self.schedule_at(ok_at, Scheduled::AlarmOk(index));
                }
            }
            60..=67 => {
                if let Some(slot) = self.pick_running() {
                    self.crash(slot, "at a random point");
                }
            }
            68..=72 => {
                if let Some(slot) = self.pick_running() {
                    let replica = self.slots[slot].as_ref().expect("running");
                    replica.gate.arm_crash_after_create(true);
                    self.log.push(Event::CrashArmed {
                        replica: replica.id.clone(),
                    });
                }
            }
            73..=79 => {
                if let Some(slot) = self.pick_running() {
                    self.restart_gracefully(slot);
                }
            }
            80..=87 => {
                if let Some(slot) = self.pick_running() {
                    let for_secs = self.rng.u64(25..=120);
                    let replica = self.slots[slot].as_ref().expect("running");
                    replica
                        .gate
                        .freeze_until(Instant::now() + Duration::from_secs(for_secs));
                    self.stats.freezes += 1;
                    self.log.push(Event::ReplicaFrozen {
                        replica: replica.id.clone(),
                        for_secs,
                    });
                }
            }
            88..=92 => {
                let times = self.rng.u32(5..=40);
                let (fault, name) = if self.rng.bool() {
                    (Fault::ServerError, "5xx")
                } else {
                    (Fault::Throttle, "throttling")
                };
                let on_store = self.rng.bool();
                let rule = FaultRule::times("*", fault, times);
                if on_store {
                    self.store.inject(rule);
                } else {
                    self.aws.inject(rule);
                }
                self.log.push(Event::FaultsInjected {
                    description: format!(
                        "a burst of {times} {name} on the {}",
                        if on_store { "store" } else { "AWS calls" }
                    ),
                });
            }
            _ => {
                self.aws.inject(FaultRule::times(
                    "codedeploy:CreateDeployment",
                    Fault::LostResponse,
                    1,
                ));
                self.log.push(Event::FaultsInjected {
                    description: "the next CreateDeployment's reply is lost".into(),
                });
            }
        }
    }

    /// Writes a new desired version as a user would: read the generation, write under it.
    /// A reply lost on the way back is resolved by looking at what the store holds.
    async fn write_spec(&mut self, index: usize) {
        let plan = &mut self.releases[index];
        plan.versions += 1;
        let bad = plan.versions > 1 && self.rng.u32(0..8) == 0;
        let tag = format!("1.{}.0{}", plan.versions, if bad { BAD_TAG } else { "" });
        let spec = plan.spec(&tag);
        let name = plan.name.clone();
        let precondition = match self.store.get(&name).await {
            Ok(Some(record)) => SpecPrecondition::Generation(record.generation),
            Ok(None) => SpecPrecondition::Absent,
            Err(error) => {
                self.log.push(Event::SpecWriteFailed {
                    release: name,
                    cause: error.to_string(),
                });
                return;
            }
        };
        let expected = match precondition {
            SpecPrecondition::Generation(g) => g + 1,
            _ => 1,
        };
        let result = self
            .store
            .put_spec(SpecWrite {
                name: name.clone(),
                labels: BTreeMap::new(),
                spec: spec.clone(),
                precondition,
                written_by: "simulation".into(),
                written_at: self.clock.now(),
                action: AuditAction::Apply,
                detail: format!("image tag {tag}"),
            })
            .await;
        let written = match result {
            Ok(generation) => Ok(generation),
            Err(error @ StoreError::Unavailable { .. }) => match self.store.peek(&name) {
                Some(record) if record.generation == expected && record.spec == spec => {
                    Ok(expected)
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        };
        match written {
            Ok(generation) => {
                let plan = &mut self.releases[index];
                plan.last_generation = generation;
                plan.last_tag = tag.clone();
                plan.last_spec = spec;
                self.stats.spec_writes += 1;
                self.log.push(Event::SpecWritten {
                    release: name,
                    generation,
                    tag,
                });
            }
            Err(error) => {
                self.log.push(Event::SpecWriteFailed {
                    release: name,
                    cause: error.to_string(),
                });
            }
        }
    }

    async fn request(&mut self, index: usize, kind: RequestKind) {
        let name = self.releases[index].name.clone();
        let Some(generation) = self.store.peek(&name).map(|r| r.generation) else {
            return;
        };
        let ok = self
            .store
            .put_request(
                &name,
                kind,
                OperatorRequest {
                    generation,
                    requested_by: "arn:aws:iam::111122223333:user/simulation".into(),
                    requested_at: self.clock.now(),
                    full: false,
                },
            )
            .await
            .is_ok();
        self.stats.requests += 1;
        self.log.push(Event::Requested {
            release: name,
            kind: kind.as_str(),
            generation,
            ok,
        });
    }

    /// The operator promotes every release that waits for it (once per generation).
    async fn promote_waiting(&mut self) {
        for index in 0..self.releases.len() {
            let Some(record) = self.store.peek(&self.releases[index].name) else {
                continue;
            };
            let waiting = record.status.as_ref().is_some_and(|s| {
                s.phase == Phase::AwaitingPromotion && s.observed_generation == record.generation
            });
            let asked = record
                .requests
                .promote
                .as_ref()
                .is_some_and(|r| r.generation == record.generation);
            let handled = record
                .status
                .as_ref()
                .and_then(|s| s.handled_requests.promote)
                .zip(record.requests.promote.as_ref())
                .is_some_and(|(handled, asked)| handled >= asked.requested_at);
            if waiting && (!asked || handled) {
                self.request(index, RequestKind::Promote).await;
            }
        }
    }

    /// `(name, status version)` of every release when all have settled: a settled phase for
    /// the latest generation and no deployment of theirs still active.
    fn settled_snapshot(&self) -> Option<Vec<(String, u64)>> {
        let deployments = self.aws.all_deployments();
        let mut snapshot = Vec::new();
        for plan in &self.releases {
            let record = self.store.peek(&plan.name)?;
            let status = record.status.as_ref()?;
            let settled = status.observed_generation == record.generation
                && matches!(
                    status.phase,
                    Phase::Healthy | Phase::RolledBack | Phase::Failed
                );
            let active = deployments
                .iter()
                .any(|d| d.application == plan.name && !d.status.is_terminal());
            if !settled || active {
                return None;
            }
            snapshot.push((plan.name.clone(), record.status_version));
        }
        Some(snapshot)
    }

    async fn shut_down_everyone(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(replica) = self.slots[slot].take() {
                let _ = replica.shutdown.send(());
                self.log.push(Event::ReplicaStopping {
                    replica: replica.id.clone(),
                });
                self.stopping.push((replica.id, replica.task));
            }
        }
        let deadline = Instant::now() + FINAL_SHUTDOWN_LIMIT;
        for (id, task) in std::mem::take(&mut self.stopping) {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(summary)) => {
                    self.log.push(Event::ReplicaStopped {
                        replica: id,
                        passes: summary.passes,
                        failed_passes: summary.failed_passes,
                    });
                }
                _ => {
                    self.log.push(Event::ReplicaStopped {
                        replica: id,
                        passes: 0,
                        failed_passes: 0,
                    });
                }
            }
        }
    }

    fn outcomes(&self) -> Vec<ReleaseOutcome> {
        let deployments = self.aws.all_deployments();
        self.releases
            .iter()
            .map(|plan| {
                let record = self.store.peek(&plan.name);
                let status = record.as_ref().and_then(|r| r.status.clone());
                let live = self
                    .aws
                    .service("prod", &plan.name)
                    .and_then(|s| s.live_task_definition().map(str::to_string));
                let live_image = live.as_ref().and_then(|arn| {
                    self.aws
                        .task_definitions(switchyard::reconcile::family_of(arn))
                        .into_iter()
                        .find(|t| &t.arn == arn)
                        .and_then(|t| t.container(&plan.name).map(|c| c.image.clone()))
                });
                let stored_tag = match &record {
                    Some(r) if r.spec == plan.last_spec => plan.last_tag.clone(),
                    Some(r) => format!("(another spec, generation {})", r.generation),
                    None => "(no release)".into(),
                };
                ReleaseOutcome {
                    release: plan.name.clone(),
                    stored_generation: record.as_ref().map_or(0, |r| r.generation),
                    last_written_generation: plan.last_generation,
                    stored_tag,
                    last_written_tag: plan.last_tag.clone(),
                    last_written_image: plan.image(&plan.last_tag),
                    phase: status.as_ref().map(|s| s.phase),
                    message: status
                        .as_ref()
                        .map(|s| s.message.clone())
                        .unwrap_or_default(),
                    observed_generation: status.as_ref().map(|s| s.observed_generation),
                    active_deployments: deployments
                        .iter()
                        .filter(|d| d.application == plan.name && !d.status.is_terminal())
                        .count(),
                    live_task_definition: live,
                    live_image,
                    desired_task_definition: status
                        .as_ref()
                        .and_then(|s| s.desired_task_definition.clone()),
                    status_live_task_definition: status
                        .as_ref()
                        .and_then(|s| s.live_task_definition.clone()),
                    stop_requested: status
                        .as_ref()
                        .and_then(|s| s.code_deploy().and_then(|c| c.stop.as_ref()))
                        .map(|s| s.deployment_id.clone()),
                    tracked_deployment_active: status
                        .as_ref()
                        .and_then(|s| s.deployment_id.as_ref())
                        .and_then(|id| deployments.iter().find(|d| &d.id == id))
                        .map(|d| !d.status.is_terminal()),
                    unhandled_request: record.as_ref().and_then(|r| {
                        let handled = status
                            .as_ref()
                            .map(|s| s.handled_requests.clone())
                            .unwrap_or_default();
                        [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry]
                            .into_iter()
                            .find(|kind| {
                                r.requests.get(*kind).is_some_and(|request| {
                                    request.generation == r.generation
                                        && handled
                                            .get(*kind)
                                            .is_none_or(|at| at < request.requested_at)
                                })
                            })
                            .map(|kind| kind.as_str())
                    }),
                }
            })
            .collect()
    }

    fn report(&mut self) -> SeedReport {
        let entries = self.log.entries();
        let deployments = self.aws.all_deployments();
        let outcomes = self.outcomes();
        let shards = self.config.shards;

        let mut violations = checks::one_deployment_per_attempt(&deployments);
        violations.extend(checks::one_owner_per_term(&entries, |release| {
            shard_of(release, shards)
        }));
        violations.extend(checks::converged(&outcomes, &entries));
        violations.extend(checks::observed_generation_never_goes_back(&entries));
        violations.extend(checks::recorded_stops_are_sent(
            &entries,
            &deployments,
            self.clock_origin,
            |release| shard_of(release, shards),
        ));
        violations.sort_by_key(|v| v.kind);

        let mut stats = std::mem::take(&mut self.stats);
        stats.deployments = deployments.len();
        for entry in &entries {
            match entry.event {
                Event::MutationIssued { .. } => stats.mutations += 1,
                Event::StatusCommitted { .. } => stats.status_writes += 1,
                Event::LeaseTaken { .. } => stats.lease_takes += 1,
                _ => {}
            }
        }
        stats.aws_calls = self.aws.call_counts().values().sum();
        stats.store_calls = self.store.call_counts().values().sum();
        for outcome in &outcomes {
            if let Some(phase) = outcome.phase {
                *stats.final_phases.entry(phase).or_default() += 1;
            }
        }

        let mut log: Vec<String> = entries.iter().map(ToString::to_string).collect();
        for deployment in &deployments {
            log.push(format!(
                "deployment {} {} {:?} {:?}",
                deployment.id, deployment.application, deployment.status, deployment.description
            ));
        }
        for outcome in &outcomes {
            log.push(format!("{outcome:?}"));
        }
        SeedReport {
            config: self.config.clone(),
            digest: digest(log.iter().map(String::as_str)),
            violations,
            virtual_time: self.log.elapsed(),
            stats,
            log,
        }
    }
}
