//! The driver of one run: sets the world up, starts the replicas, plays the seeded events of
//! the fault window, quiesces, waits for the releases to settle, and reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::log::{
    AnalysisSeen, EcsSeen, Event, EventLog, HandledRequest, MetricSeen, RolloutSeen, StepSeen,
    TaskSetsSeen, digest,
};
use crate::notification_checks::{self, ReleaseNotifications};
use crate::passes::PassLog;
use crate::replica::{Gate, ReplicaNotifications, ReplicaProbe, replica_ports};
use crate::{
    LEASE_TIMING, REGISTRY, ReleaseOutcome, SeedReport, SimulationConfig, Stats, checks,
    strategy_checks,
};
use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig, Leases, RunSummary};
use switchyard::lease::shard_of;
use switchyard::model::notifications::{
    EventBridgeTarget, EventKind, NotificationDestination, NotificationMessage, WebhookFormat,
    WebhookTarget,
};
use switchyard::model::parse::parse_documents;
use switchyard::model::{
    AuditAction, ConditionType, OperatorRequest, Phase, Reason, ReleaseStatus, RequestKind,
    StrategyStatus, TaskSetsStage,
};
use switchyard::ports::{
    AdvancedLoadBalancer, AlarmState, EcsDeploymentStrategy, LeaseStore, ReadyAction, ReleaseStore,
    SpecPrecondition, SpecWrite, StoreError, TaskSetStatus, UpdateServiceRequest,
};
use switchyard::reconcile::codedeploy::parse_deployment_description;
use switchyard::reconcile::pending_request;
use switchyard::sim::{
    ACCOUNT, BlueGreenSetup, CircuitBreaker, EcsServiceSetup, ExternalRule, ExternalSetup, Fault,
    FaultRule, REGION, SimAws, SimNotifications, SimRole, SimStore,
};
use switchyard::state::ControllerState;

/// Image tags containing this never become healthy (their Install fails).
const BAD_TAG: &str = "-bad";

/// Where the releases live, round robin by index (no random draw, so every other choice of a
/// seed stays as it was): the controller's own region and account, another region, and
/// another account reached through a role. (account, region, the role of `spec.service.roleArn`)
const PLACES: [(&str, &str, Option<&str>); 3] = [
    (ACCOUNT, REGION, None),
    (ACCOUNT, "eu-west-1", None),
    (
        "444455556666",
        REGION,
        Some("arn:aws:iam::444455556666:role/switchyard-deployer"),
    ),
];
/// The SNS topics of the simulated account (one in the controller's region, one in another:
/// a topic is published to in its own region) and its EventBridge buses.
const TOPICS: [&str; 2] = [
    "arn:aws:sns:us-east-1:111122223333:releases",
    "arn:aws:sns:eu-west-1:111122223333:releases-eu",
];
const BUSES: [&str; 2] = ["default", "switchyard"];
/// The events a destination with a filter wants.
const FILTERED_EVENTS: [EventKind; 4] = [
    EventKind::RolloutStarted,
    EventKind::RolloutSucceeded,
    EventKind::RolloutRolledBack,
    EventKind::RolloutFailed,
];
/// The seed of the notification draws is the run's, mixed with this: they have an `Rng` of
/// their own, so that the draws of everything else stay what they were.
const NOTIFY_SEED_MIX: u64 = 0x6e6f_7469_6679_0001;
const ANALYSIS_SEED_MIX: u64 = 0x616e_616c_7973_0002;

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
/// The longest a stop takes CodeDeploy (drawn per run from zero to this): hooks finish first.
const MAX_STOP_DELAY_SECS: u64 = 180;
/// The mutating calls a refusal episode may hit.
const REFUSABLE: [&str; 13] = [
    "ecs:RegisterTaskDefinition",
    "codedeploy:CreateDeployment",
    "codedeploy:ContinueDeployment",
    "codedeploy:StopDeployment",
    "ecs:CreateTaskSet",
    "ecs:UpdateTaskSet",
    "ecs:UpdateServicePrimaryTaskSet",
    "ecs:DeleteTaskSet",
    "elbv2:ModifyListener",
    "elbv2:ModifyRule",
    "ecs:UpdateService",
    "ecs:ContinueServiceDeployment",
    "ecs:StopServiceDeployment",
];
/// The calls that start a rollout, whose replies the run loses at a rate of its own (then
/// the controller must find what they did before calling again).
const LOST_START_REPLIES: [&str; 3] = [
    "codedeploy:CreateDeployment",
    "ecs:CreateTaskSet",
    "ecs:UpdateService",
];
/// The AWS calls an injected panic may hit (every one a pass, the resync or the alarm
/// watcher makes).
const PANICKABLE: [&str; 26] = [
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "ecs:RegisterTaskDefinition",
    "codedeploy:GetDeploymentGroup",
    "codedeploy:GetDeployment",
    "codedeploy:GetDeploymentTarget",
    "codedeploy:ListDeployments",
    "codedeploy:CreateDeployment",
    "codedeploy:ContinueDeployment",
    "codedeploy:StopDeployment",
    "elbv2:DescribeListeners",
    "cloudwatch:DescribeAlarms",
    "elbv2:DescribeRules",
    "elbv2:DescribeTargetGroups",
    "elbv2:DescribeTargetHealth",
    "elbv2:ModifyListener",
    "ecs:CreateTaskSet",
    "ecs:UpdateTaskSet",
    "ecs:DeleteTaskSet",
    "ecs:UpdateService",
    "ecs:ListServiceDeployments",
    "ecs:DescribeServiceDeployments",
    "ecs:DescribeServiceRevisions",
    "ecs:ContinueServiceDeployment",
    "ecs:StopServiceDeployment",
];
/// The mutations a replica may be armed to crash right after.
const CRASH_POINTS: [&str; 14] = [
    "codedeploy:CreateDeployment",
    "codedeploy:CreateDeployment",
    "ecs:RegisterTaskDefinition",
    "codedeploy:StopDeployment",
    "ecs:CreateTaskSet",
    "ecs:CreateTaskSet",
    "elbv2:ModifyListener",
    "elbv2:ModifyRule",
    "ecs:UpdateTaskSet",
    "ecs:DeleteTaskSet",
    "ecs:UpdateService",
    "ecs:UpdateService",
    "ecs:ContinueServiceDeployment",
    "ecs:StopServiceDeployment",
];

/// The fields of a release's spec the driver edits.
#[derive(Debug, Clone, PartialEq)]
struct Knobs {
    /// The image tag: the only field that changes the candidate.
    tag: String,
    /// `promotion: manual` (`codeDeploy`, and `ecs` where a `PAUSE` hook can wait).
    manual: bool,
    /// The steps (`taskSets`).
    steps: Vec<StepKnob>,
    /// The bake of the document's `deployment` (`ecs` blue/green with one), in minutes.
    bake_minutes: u32,
    /// `rollback.alarms` names the release's alarm.
    alarms: bool,
    paused: bool,
    /// `onDrift: converge`.
    converge: bool,
    /// The cluster given as its ARN (the same target as its name).
    cluster_arn: bool,
    labels: BTreeMap<String, String>,
}

/// A step of a `taskSets` release.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StepKnob {
    SetWeight(u32),
    /// A timed pause (its seconds), or one that waits for a promotion (`None`).
    Pause(Option<u64>),
    /// The release's analysis (`ReleasePlan::analysis`), at the weight in force.
    Analysis,
}

impl StepKnob {
    fn seen(self) -> StepSeen {
        match self {
            StepKnob::SetWeight(weight) => StepSeen::SetWeight(weight),
            // An analysis holds the weight, as a pause does.
            StepKnob::Pause(_) | StepKnob::Analysis => StepSeen::Pause,
        }
    }

    fn yaml(self) -> String {
        match self {
            StepKnob::SetWeight(weight) => format!("        - setWeight: {weight}\n"),
            StepKnob::Pause(Some(secs)) => format!("        - pause: {{duration: {secs}s}}\n"),
            StepKnob::Pause(None) => "        - pause: {}\n".to_string(),
            StepKnob::Analysis => String::new(),
        }
    }
}

/// Draws the steps of a canary: one to three weights going up, each followed by a timed
/// pause, a manual one, or none.
fn draw_steps(rng: &mut fastrand::Rng) -> Vec<StepKnob> {
    const WEIGHTS: [u32; 8] = [5, 10, 20, 25, 33, 50, 75, 100];
    let mut weights: Vec<u32> = (0..rng.u32(1..=3))
        .map(|_| WEIGHTS[rng.usize(0..WEIGHTS.len())])
        .collect();
    weights.sort_unstable();
    weights.dedup();
    let mut steps = Vec::new();
    for weight in weights {
        steps.push(StepKnob::SetWeight(weight));
        match rng.u32(0..10) {
            0..=4 => steps.push(StepKnob::Pause(Some(rng.u64(5..=90)))),
            5..=6 => steps.push(StepKnob::Pause(None)),
            _ => {}
        }
    }
    steps
}

/// Which strategy a release uses, and how its service is set up.
enum Setup {
    CodeDeploy {
        /// The deployment config named in the spec (else the group's default applies).
        spec_config: Option<String>,
        /// The group waits in `Ready` for a ContinueDeployment (an analysis can gate it).
        waits_in_ready: bool,
    },
    TaskSets(TaskSetsSetup),
    Ecs(EcsSetup),
}

/// An `EXTERNAL` service with two target groups (`add_external_service`).
struct TaskSetsSetup {
    /// The production routes: the production listener and its rules that forward.
    production_routes: Vec<String>,
    /// The test listener: the setup has one exactly when the spec names it.
    test_listener: Option<String>,
    /// The spec lists the production routes (else the controller finds them).
    list_listeners: bool,
    progress_deadline_secs: u64,
}

/// A service with the ECS deployment controller (`add_ecs_service`).
struct EcsSetup {
    blue_green: bool,
    /// The service has a `PAUSE` hook of its own.
    service_hooks: bool,
    /// The document's `deployment`, when it has one.
    document: Option<EcsDocument>,
    /// The revision someone else deploys: registered by hand at setup, so it is the base
    /// every candidate is copied from (with the spec's image: the same content as from the
    /// first revision).
    hotfix: String,
    progress_deadline_secs: u64,
}

/// A document's `strategy.ecs.deployment`.
struct EcsDocument {
    /// Its `pauseAt` stage, if any.
    pause_at: Option<&'static str>,
    /// Blue/green: the load balancer's advanced configuration.
    load_balancer: Option<AdvancedLoadBalancer>,
}

impl EcsSetup {
    /// Whether a `PAUSE` hook waits in the release's deployments: `promotion: manual` needs one.
    fn has_hook(&self) -> bool {
        match &self.document {
            Some(document) => document.pause_at.is_some(),
            None => self.service_hooks,
        }
    }
}

impl Setup {
    fn strategy(&self) -> &'static str {
        match self {
            Setup::CodeDeploy { .. } => "codeDeploy",
            Setup::TaskSets(_) => "taskSets",
            Setup::Ecs(_) => "ecs",
        }
    }
}

/// One simulated release: how its service is set up and what was last written.
struct ReleasePlan {
    name: String,
    /// Where it lives: an index into [`PLACES`].
    place: usize,
    /// The release's alarm (it exists in CloudWatch; the spec names it or not).
    alarm: String,
    setup: Setup,
    versions: u32,
    /// The spec as last written.
    knobs: Knobs,
    /// Every image tag written, oldest first.
    tags: Vec<String>,
    last_generation: u64,
    last_spec: serde_json::Value,
    alarm_firing: bool,
    /// The spec's `notifications` (none: the controller's defaults apply).
    notifications: Vec<NotificationDestination>,
    /// The release's analysis (a `taskSets` step, the ECS `PAUSE` hook's, CodeDeploy's
    /// `Ready` gate's), if it has one.
    analysis: Option<AnalysisDraw>,
}

/// A release's analysis: an HTTP probe of the release's health URL, and sometimes a
/// CloudWatch metric of the release's errors.
#[derive(Debug, Clone)]
pub(crate) struct AnalysisDraw {
    /// The `analysis` block, in YAML's flow style.
    yaml: String,
    url: String,
    /// It reads the CloudWatch metric `App/Errors` of the release's `Service` too.
    metric: bool,
    inconclusive_limit: u32,
}

/// What a release's health endpoint and error metric say for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    Healthy,
    /// The probe answers 503 and the errors are above the limit.
    Unhealthy,
    /// The probe times out (a failed measurement) and the metric has no data
    /// (inconclusive).
    Silent,
}

impl ReleasePlan {
    fn image(&self, tag: &str) -> String {
        format!("{REGISTRY}/{}:{tag}", self.name)
    }

    /// The release's spec with these fields, parsed and validated as `apply` would.
    fn spec(&self, knobs: &Knobs) -> serde_json::Value {
        let name = &self.name;
        let (account, region, role) = PLACES[self.place];
        let cluster = if knobs.cluster_arn {
            format!("arn:aws:ecs:{region}:{account}:cluster/prod")
        } else {
            "prod".to_string()
        };
        let mut place = String::new();
        if region != REGION {
            place.push_str(&format!(", region: {region}"));
        }
        if let Some(role) = role {
            place.push_str(&format!(", roleArn: \"{role}\""));
        }
        let mut yaml = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: \"{cluster}\", name: {name}{place}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {image}\n  strategy:\n",
            image = self.image(&knobs.tag)
        );
        match &self.setup {
            Setup::CodeDeploy { spec_config, .. } => {
                yaml.push_str(&format!(
                    "    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
                ));
                if let Some(config) = spec_config {
                    yaml.push_str(&format!("      deploymentConfig: {config}\n"));
                }
                if knobs.manual {
                    yaml.push_str("      promotion: manual\n");
                }
                if let Some(analysis) = &self.analysis {
                    yaml.push_str(&format!("      analysis: {}\n", analysis.yaml));
                }
            }
            Setup::TaskSets(setup) => {
                yaml.push_str(&format!(
                    "    taskSets:\n      targetGroups: [{name}-tg-a, {name}-tg-b]\n"
                ));
                let quoted = |arns: &[String]| {
                    arns.iter()
                        .map(|a| format!("\"{a}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if setup.list_listeners {
                    yaml.push_str(&format!(
                        "      listeners: [{}]\n",
                        quoted(&setup.production_routes)
                    ));
                }
                if let Some(test) = &setup.test_listener {
                    yaml.push_str(&format!(
                        "      testListeners: [{}]\n",
                        quoted(std::slice::from_ref(test))
                    ));
                }
                yaml.push_str("      steps:\n");
                for step in &knobs.steps {
                    match (step, &self.analysis) {
                        (StepKnob::Analysis, Some(analysis)) => {
                            yaml.push_str(&format!("        - analysis: {}\n", analysis.yaml));
                        }
                        _ => yaml.push_str(&step.yaml()),
                    }
                }
                yaml.push_str(&format!(
                    "      scaleDownDelay: 30s\n      abortScaleDownDelay: 10s\n      progressDeadline: {}s\n",
                    setup.progress_deadline_secs
                ));
            }
            Setup::Ecs(setup) => {
                yaml.push_str(&format!(
                    "    ecs:\n      promotion: {}\n      progressDeadline: {}s\n",
                    if knobs.manual { "manual" } else { "auto" },
                    setup.progress_deadline_secs
                ));
                if let Some(analysis) = &self.analysis {
                    yaml.push_str(&format!("      analysis: {}\n", analysis.yaml));
                }
                if let Some(document) = &setup.document {
                    yaml.push_str(&format!(
                        "      deployment:\n        type: {}\n",
                        if setup.blue_green {
                            "blueGreen"
                        } else {
                            "rolling"
                        }
                    ));
                    if setup.blue_green {
                        yaml.push_str(&format!("        bakeTime: {}m\n", knobs.bake_minutes));
                    }
                    if let Some(stage) = document.pause_at {
                        yaml.push_str(&format!("        pauseAt: [{stage}]\n"));
                    }
                    if let Some(lb) = &document.load_balancer {
                        yaml.push_str(&format!(
                            "        loadBalancer: {{alternateTargetGroup: \"{}\", productionListenerRule: \"{}\", testListenerRule: \"{}\", roleArn: \"{}\"}}\n",
                            lb.alternate_target_group_arn,
                            lb.production_listener_rule,
                            lb.test_listener_rule.as_deref().unwrap_or_default(),
                            lb.role_arn
                        ));
                    }
                }
            }
        }
        if knobs.alarms {
            yaml.push_str(&format!("  rollback:\n    alarms: [{}]\n", self.alarm));
        }
        if knobs.paused {
            yaml.push_str("  paused: true\n");
        }
        if knobs.converge {
            yaml.push_str("  onDrift: converge\n");
        }
        if !self.notifications.is_empty() {
            // YAML takes JSON as it is.
            let destinations =
                serde_json::to_string(&self.notifications).expect("destinations serialize");
            yaml.push_str(&format!("  notifications: {destinations}\n"));
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
#[derive(Debug, Clone)]
enum Scheduled {
    /// Start a replica (under a new id) in this slot, if it is empty.
    Restart(usize),
    /// Set this release's alarm back to OK.
    AlarmOk(usize),
    /// Resume this release (if it is still paused).
    Resume(usize),
    /// AWS stops refusing this operation.
    EndRefusals(&'static str),
    /// This webhook answers this status for this many seconds.
    WebhookOutage(String, u16, u64),
    /// This release's health endpoint and error metric say this from now on.
    Health(usize, Health),
    /// Someone else answers the hook their service deployment waits at.
    ContinueForeign(usize, String),
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
    /// When each release had a pass.
    passes: PassLog,
    /// Operations AWS refuses now (one episode each).
    refusing: Vec<&'static str>,
    /// Every replica's shared state, for its count of panicked passes.
    replica_states: Vec<ControllerState>,
    /// The notification destinations every replica sends to, and the draws about them.
    notifications: SimNotifications,
    notify_rng: fastrand::Rng,
    /// The analysis draws, on an `Rng` of their own as the notification draws.
    analysis_rng: fastrand::Rng,
    /// The controller's destinations for releases whose spec names none.
    default_destinations: Vec<NotificationDestination>,
    /// Every event a committed status recorded: its release and message, by id.
    recorded: Arc<std::sync::Mutex<BTreeMap<String, (String, NotificationMessage)>>>,
}

impl Driver {
    pub(super) fn new(config: SimulationConfig, crash_tx: mpsc::UnboundedSender<String>) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let clock = Clock::fixed_epoch();
        let aws = SimAws::new(clock.clone()).with_seed(rng.u64(..));
        let store = SimStore::new(clock.clone()).with_seed(rng.u64(..));
        let log = EventLog::new();
        let clock_origin = clock.now();
        let mut notify_rng = fastrand::Rng::with_seed(config.seed ^ NOTIFY_SEED_MIX);
        let config_seed = config.seed;
        let notifications = SimNotifications::new(clock.clone()).with_seed(notify_rng.u64(..));
        let recorded: Arc<std::sync::Mutex<BTreeMap<String, (String, NotificationMessage)>>> =
            Arc::default();
        let recorder = recorded.clone();
        let observer = log.clone();
        store.observe_status_writes(move |write| {
            let stop = write.status.code_deploy().and_then(|s| s.stop.as_ref());
            observer.push(Event::StatusCommitted {
                release: write.release.clone(),
                fence: write.fence.clone(),
                version: write.status_version,
                observed_generation: write.status.observed_generation,
                phase: write.status.phase,
                message: write.status.message.clone(),
                stop_requested: stop.map(|s| s.deployment_id.clone()),
                stop_sent: stop.is_some_and(|s| s.sent),
                stop_superseded: stop.is_some_and(|s| s.superseded),
                rollout: write.status.rollout.as_ref().map(|r| RolloutSeen {
                    serial: r.serial,
                    generation: r.generation,
                    candidate: r.candidate.clone(),
                    outcome: r.outcome,
                }),
                handled: handled_requests(&write.status),
                task_sets: task_sets_seen(&write.status).map(Box::new),
                ecs: ecs_seen(&write.status).map(Box::new),
            });
            let notifications = write.status.notifications.clone().unwrap_or_default();
            let mut recorded = crate::log::lock(&recorder);
            for entry in &notifications.outbox {
                recorded
                    .entry(entry.message.id.clone())
                    .or_insert_with(|| (write.release.clone(), entry.message.clone()));
            }
            drop(recorded);
            if let Some(analysis) = &write.status.analysis {
                observer.push(Event::AnalysisCommitted(Box::new(AnalysisSeen {
                    release: write.release.clone(),
                    serial: write.status.rollout.as_ref().map(|r| r.serial),
                    outcome: write.status.rollout.as_ref().and_then(|r| r.outcome),
                    release_phase: write.status.phase,
                    gate: analysis.gate.clone(),
                    started_at: analysis.started_at,
                    phase: analysis.phase,
                    taken: analysis.taken,
                    metrics: analysis
                        .metrics
                        .iter()
                        .map(|m| MetricSeen {
                            name: m.name.clone(),
                            failed: m.failed,
                            inconclusive: m.inconclusive,
                            measurements: m
                                .measurements
                                .iter()
                                .map(|x| (x.number, x.at, x.result, x.value))
                                .collect(),
                        })
                        .collect(),
                })));
            }
            observer.push(Event::NotificationsCommitted {
                release: write.release.clone(),
                version: write.status_version,
                outbox: notifications
                    .outbox
                    .iter()
                    .map(|entry| {
                        (
                            entry.message.id.clone(),
                            entry
                                .pending
                                .iter()
                                .map(|p| p.destination.clone())
                                .collect(),
                        )
                    })
                    .collect(),
                delivered: notifications.delivered,
                dropped: notifications.dropped,
                resent: notifications.resent,
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
            passes: PassLog::new(),
            refusing: Vec::new(),
            replica_states: Vec::new(),
            notifications,
            notify_rng,
            analysis_rng: fastrand::Rng::with_seed(config_seed ^ ANALYSIS_SEED_MIX),
            default_destinations: Vec::new(),
            recorded,
        }
    }

    /// When each release had a pass (the run records into it).
    pub(super) fn pass_log(&self) -> PassLog {
        self.passes.clone()
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

        // Quiesce: no more faults, pauses, crashes or writes; everyone back up; the operator
        // resumes what is paused.
        self.aws.clear_faults();
        self.store.clear_faults();
        self.notifications.clear_faults();
        for operation in std::mem::take(&mut self.refusing) {
            self.log.push(Event::Refusals {
                operation,
                on: false,
            });
        }
        self.log.push(Event::FaultsCleared);
        while let Ok(replica) = crash_rx.try_recv() {
            self.on_self_crash(&replica);
        }
        for replica in self.slots.iter().flatten() {
            replica.gate.arm_crash_after(None);
            replica.gate.disarm_write_faults();
        }
        for index in 0..self.releases.len() {
            if self.releases[index].alarm_firing {
                self.set_alarm(index, AlarmState::Ok);
            }
        }
        for index in 0..self.releases.len() {
            self.set_health(index, Health::Healthy);
        }
        self.schedule
            .retain(|_, s| matches!(s, Scheduled::Restart(_)));
        self.run_scheduled(Instant::now() + Duration::from_secs(24 * 3600))
            .await;
        for index in 0..self.releases.len() {
            if self.releases[index].knobs.paused {
                self.resume(index).await;
            }
        }
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
            // Someone else answers the hooks their deployments wait at.
            for place in 0..PLACES.len() {
                let aws = self.place(place);
                for arn in aws.foreign_service_deployments() {
                    aws.continue_as_someone_else(&arn);
                }
            }
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
                Scheduled::Resume(index) => {
                    if self.releases[index].knobs.paused {
                        self.resume(index).await;
                    }
                }
                Scheduled::EndRefusals(operation) => self.end_refusals(operation),
                Scheduled::Health(index, health) => self.set_health(index, health),
                Scheduled::WebhookOutage(url, status, secs) => {
                    let until = self.clock.now() + jiff::SignedDuration::from_secs(secs as i64);
                    self.notifications.fail_webhook(&url, status, Some(until));
                    self.log.push(Event::WebhookOutage {
                        url,
                        status,
                        for_secs: secs,
                    });
                }
                Scheduled::ContinueForeign(place, arn) => self.continue_foreign(place, arn),
            }
        }
    }

    async fn set_up_releases(&mut self) {
        for (_, _, role) in PLACES {
            if let Some(role) = role {
                self.aws.add_role(SimRole::new(role));
            }
        }
        for place in 0..PLACES.len() {
            self.place(place).fail_install_for_image(BAD_TAG);
        }
        for topic in TOPICS {
            self.notifications.add_topic(topic);
        }
        for bus in BUSES {
            self.notifications.add_bus(bus);
        }
        if self.notify_rng.bool() {
            self.default_destinations = vec![self.draw_destination("fleet")];
        }
        for index in 0..self.config.releases {
            let place = index as usize % PLACES.len();
            let name = format!("app-{index}");
            // Every release has an alarm; its spec names it or not (an edit switches).
            let alarm = format!("{name}-5xx");
            self.place(place).set_alarm(&alarm, AlarmState::Ok);
            let (setup, manual) = match self.rng.u32(0..3) {
                0 => self.set_up_codedeploy(place, &name),
                1 => self.set_up_task_sets(place, &name),
                _ => self.set_up_ecs(place, &name, &alarm),
            };
            let knobs = Knobs {
                tag: "1.0.0".into(),
                manual,
                steps: draw_steps(&mut self.rng),
                bake_minutes: self.rng.u32(0..=2),
                alarms: self.rng.bool(),
                paused: false,
                converge: self.rng.u32(0..4) == 0,
                cluster_arn: self.rng.u32(0..4) == 0,
                labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
            };
            let mut plan = ReleasePlan {
                name,
                place,
                alarm,
                setup,
                versions: 0,
                knobs,
                tags: Vec::new(),
                last_generation: 0,
                last_spec: serde_json::Value::Null,
                alarm_firing: false,
                notifications: Vec::new(),
                analysis: None,
            };
            // None (the defaults, if any, apply), one, or several.
            let count = [0, 0, 1, 1, 1, 2, 3][self.notify_rng.usize(0..7)];
            for _ in 0..count {
                let destination = self.draw_destination(&plan.name);
                let same =
                    |d: &NotificationDestination| d.destination() == destination.destination();
                if !plan.notifications.iter().any(same) {
                    plan.notifications.push(destination);
                }
            }
            self.draw_analysis(&mut plan);
            self.releases.push(plan);
        }
        for index in 0..self.releases.len() {
            if let Setup::TaskSets(_) = self.releases[index].setup {
                self.log_traffic(index, "setup", "the world as set up");
            }
            self.write_version(index, false).await;
        }
    }

    /// A notification destination: an SNS topic (of this region or another), an EventBridge
    /// bus, or a webhook (`json` or `slack`) of `owner`'s; a quarter of them want only the
    /// events that start and end rollouts.
    fn draw_destination(&mut self, owner: &str) -> NotificationDestination {
        let rng = &mut self.notify_rng;
        let mut destination = NotificationDestination {
            sns: None,
            event_bridge: None,
            webhook: None,
            events: None,
        };
        match rng.u32(0..4) {
            0 => destination.sns = Some(TOPICS[rng.usize(0..TOPICS.len())].to_string()),
            1 => {
                destination.event_bridge = Some(EventBridgeTarget {
                    bus: BUSES[rng.usize(0..BUSES.len())].to_string(),
                });
            }
            2 => {
                destination.webhook = Some(WebhookTarget {
                    url: format!("https://hooks.example.com/{owner}?token=s3cr3t"),
                    format: WebhookFormat::Json,
                });
            }
            _ => {
                destination.webhook = Some(WebhookTarget {
                    url: format!("https://hooks.slack.com/services/T0/{owner}/XYZ"),
                    format: WebhookFormat::Slack,
                });
            }
        }
        if rng.u32(0..4) == 0 {
            destination.events = Some(FILTERED_EVENTS.to_vec());
        }
        destination
    }

    /// Half the releases whose strategy has a gate to hold get an analysis there: a
    /// `taskSets` step after the first weight, the `PAUSE` hook of an `ecs` release that has
    /// one, the `Ready` gate of a CodeDeploy group that waits there (longer than any
    /// analysis). Its endpoint and metric start healthy or not, and change during the run.
    fn draw_analysis(&mut self, plan: &mut ReleasePlan) {
        let gated = match &plan.setup {
            Setup::CodeDeploy { waits_in_ready, .. } => *waits_in_ready,
            Setup::TaskSets(_) => true,
            Setup::Ecs(setup) => setup.has_hook(),
        };
        let rng = &mut self.analysis_rng;
        if !gated || !rng.bool() {
            return;
        }
        let name = &plan.name;
        let url = format!("http://{name}.internal:8081/health");
        let metric = rng.bool();
        let inconclusive_limit = rng.u32(0..=1);
        let mut metrics = vec![format!(
            "{{name: health, http: {{url: \"{url}\", timeout: 2s, expectStatus: [200]}}}}"
        )];
        if metric {
            metrics.push(format!(
                "{{name: errors, cloudWatch: {{metrics: {{m1: {{namespace: App, name: Errors, stat: Sum, dimensions: {{Service: {name}}}}}}}, period: 60s}}, failWhen: {{above: 5}}}}"
            ));
        }
        let yaml = format!(
            "{{interval: {}s, count: {}, failureLimit: {}, inconclusiveLimit: {inconclusive_limit}, metrics: [{}]}}",
            [10, 20, 30][rng.usize(0..3)],
            rng.u32(2..=4),
            rng.u32(0..=1),
            metrics.join(", ")
        );
        if let Setup::TaskSets(_) = plan.setup {
            let at = plan
                .knobs
                .steps
                .iter()
                .position(|s| matches!(s, StepKnob::SetWeight(_)))
                .map_or(0, |i| i + 1);
            plan.knobs.steps.insert(at, StepKnob::Analysis);
        }
        plan.analysis = Some(AnalysisDraw {
            yaml,
            url,
            metric,
            inconclusive_limit,
        });
    }

    fn draw_health(&mut self) -> Health {
        match self.analysis_rng.u32(0..20) {
            0..=11 => Health::Healthy,
            12..=16 => Health::Unhealthy,
            _ => Health::Silent,
        }
    }

    /// Sets what the release's health endpoint and error metric say.
    fn set_health(&mut self, index: usize, health: Health) {
        let plan = &self.releases[index];
        let Some(analysis) = plan.analysis.clone() else {
            return;
        };
        let (answer, value) = match health {
            Health::Healthy => (Ok(200), Some(1.0)),
            Health::Unhealthy => (Ok(503), Some(10.0)),
            Health::Silent => (
                Err(switchyard::ports::ProbeError::Timeout(Duration::from_secs(
                    2,
                ))),
                None,
            ),
        };
        // Probes leave from the controller's network; metrics are read where the release
        // lives.
        self.aws.set_http_answer(&analysis.url, answer);
        if analysis.metric {
            let name = plan.name.clone();
            self.place(plan.place).set_metric(
                "App",
                "Errors",
                &[("Service", name.as_str())],
                value,
            );
        }
        self.log.push(Event::HealthSet {
            release: plan.name.clone(),
            health: format!("{health:?}"),
        });
    }

    /// The destinations of `plan`'s events: its spec's, or the controller's defaults.
    fn destinations_of(&self, plan: &ReleasePlan) -> Vec<NotificationDestination> {
        if plan.notifications.is_empty() {
            self.default_destinations.clone()
        } else {
            plan.notifications.clone()
        }
    }

    /// A `CODE_DEPLOY` service with its deployment group; whether its promotion is manual.
    fn set_up_codedeploy(&mut self, place: usize, name: &str) -> (Setup, bool) {
        let mut setup = BlueGreenSetup::new("prod", name);
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
        self.place(place).add_bluegreen_service(setup);
        let spec_config = (self.rng.u32(0..3) == 0).then(|| pick_config(&mut self.rng));
        let manual = waits_in_ready && self.rng.bool();
        (
            Setup::CodeDeploy {
                spec_config,
                waits_in_ready,
            },
            manual,
        )
    }

    /// An `EXTERNAL` service: one to three tasks, a test listener (named in the spec) or
    /// none, sometimes rules of the production listener, the routes listed in the spec or
    /// found.
    fn set_up_task_sets(&mut self, place: usize, name: &str) -> (Setup, bool) {
        let mut setup = ExternalSetup::new("prod", name);
        setup.desired_count = self.rng.u32(1..=3);
        let test = self.rng.u32(0..3) != 0;
        setup.test_port = test.then_some(8080);
        if self.rng.u32(0..3) == 0 {
            setup.rules = vec![
                ExternalRule {
                    priority: 10,
                    forwards: true,
                },
                ExternalRule {
                    priority: 20,
                    forwards: false,
                },
            ];
        }
        let forwarding_rules = setup.rules.iter().map(|r| r.forwards).collect::<Vec<_>>();
        let handles = self.place(place).add_external_service(setup);
        let mut production_routes = vec![handles.production_listener_arn.clone()];
        production_routes.extend(
            handles
                .rule_arns
                .iter()
                .zip(forwarding_rules)
                .filter(|(_, forwards)| *forwards)
                .map(|(arn, _)| arn.clone()),
        );
        let setup = TaskSetsSetup {
            production_routes,
            test_listener: handles.test_listener_arn.clone(),
            list_listeners: self.rng.bool(),
            progress_deadline_secs: 60 * self.rng.u64(3..=10),
        };
        (Setup::TaskSets(setup), false)
    }

    /// A service with the ECS deployment controller: rolling (with its circuit breaker) or
    /// blue/green (with one or none), `PAUSE` hooks of its own or not, ECS deployment alarms
    /// sometimes (the release's alarm: ECS rolls back by itself), the document's
    /// `deployment` or not; and the revision someone else deploys. Whether its promotion is
    /// manual (only where a hook waits).
    fn set_up_ecs(&mut self, place: usize, name: &str, alarm: &str) -> (Setup, bool) {
        let blue_green = self.rng.bool();
        let strategy = if blue_green {
            EcsDeploymentStrategy::BlueGreen
        } else {
            EcsDeploymentStrategy::Rolling
        };
        let stage = if blue_green {
            ("postTestTrafficShift", "POST_TEST_TRAFFIC_SHIFT")
        } else {
            ("postScaleUp", "POST_SCALE_UP")
        };
        let mut setup = EcsServiceSetup::new("prod", name, strategy);
        setup.desired_count = self.rng.u32(1..=3);
        let service_hooks = self.rng.bool();
        if service_hooks {
            setup.pause_at = vec![stage.1.to_string()];
        }
        if blue_green {
            setup.bake_time_minutes = Some(self.rng.u32(0..=2));
            if self.rng.bool() {
                setup.circuit_breaker = Some(CircuitBreaker { rollback: true });
            }
        }
        if self.rng.u32(0..3) == 0 {
            setup.alarms = vec![alarm.to_string()];
        }
        let handles = self.place(place).add_ecs_service(setup);
        let document = self.rng.bool().then(|| EcsDocument {
            pause_at: self.rng.bool().then_some(stage.0),
            load_balancer: blue_green.then(|| handles.load_balancer.clone()),
        });
        let mut containers = handles.task_definition.containers.clone();
        for container in &mut containers {
            container.image = format!("{REGISTRY}/{name}:hotfix");
        }
        let hotfix = self
            .place(place)
            .add_task_definition(
                name,
                containers,
                &handles.task_definition.other_fields_digest,
            )
            .arn;
        let setup = EcsSetup {
            blue_green,
            service_hooks,
            document,
            hotfix,
            progress_deadline_secs: 60 * self.rng.u64(3..=10),
        };
        let manual = setup.has_hook() && self.rng.bool();
        (Setup::Ecs(setup), manual)
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
        // Status writes fail more often than other store calls: the write after an action
        // among them.
        let status_error = rng.f64() * 0.05;
        let status_lost = rng.f64() * 0.03;
        // Realistic CodeDeploy timings: a stop waits for the hook in progress.
        let stop_delay = rng.u64(0..=MAX_STOP_DELAY_SECS);
        self.aws.set_stop_delay(Duration::from_secs(stop_delay));
        self.stats.stop_delay_secs = stop_delay;
        // Targets slow to start and to pass (or fail) their health checks: for the whole
        // run, as a property of the service rather than a fault.
        let task_start = rng.u64(1..=30);
        let health_check = rng.u64(5..=120);
        for place in 0..PLACES.len() {
            self.place(place).set_target_timings(
                Duration::from_secs(task_start),
                Duration::from_secs(health_check),
            );
        }
        let rule = |operation: &str, fault: Fault, probability: f64| {
            FaultRule::always(operation, fault).with_probability(probability)
        };
        // The first error-like rule that fires decides: the rules of the calls that start a
        // rollout go first.
        for operation in LOST_START_REPLIES {
            self.aws
                .inject(rule(operation, Fault::LostResponse, lost_create));
        }
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
        self.store.inject(rule(
            "dynamodb:TransactWriteItems",
            Fault::ServerError,
            status_error,
        ));
        self.store.inject(rule(
            "dynamodb:TransactWriteItems",
            Fault::LostResponse,
            status_lost,
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
        let rng = &mut self.notify_rng;
        let notify_throttle = rng.f64() * 0.05;
        let notify_error = rng.f64() * 0.10;
        let notify_lost = rng.f64() * 0.15;
        let notify_latency = rng.f64() * 0.10;
        // Longer than the notifier's 10 s attempt timeout: the attempt gives up before the
        // destination receives anything.
        let notify_slow = rng.f64() * 0.05;
        for operation in ["sns:Publish", "events:PutEvents", "webhook:POST"] {
            self.notifications
                .inject(rule(operation, Fault::Throttle, notify_throttle));
            self.notifications
                .inject(rule(operation, Fault::ServerError, notify_error));
            self.notifications
                .inject(rule(operation, Fault::LostResponse, notify_lost));
            self.notifications.inject(rule(
                operation,
                Fault::Latency(Duration::from_secs(3)),
                notify_latency,
            ));
            self.notifications.inject(rule(
                operation,
                Fault::Latency(Duration::from_secs(15)),
                notify_slow,
            ));
        }
        // What the analysed releases' endpoints and metrics say: drawn at the start, and
        // again a few times during the fault window.
        let window = self.config.minutes * 60;
        for index in 0..self.releases.len() {
            if self.releases[index].analysis.is_none() {
                continue;
            }
            let first = self.draw_health();
            self.set_health(index, first);
            for _ in 0..self.analysis_rng.u32(0..=3) {
                let at = self.analysis_rng.u64(0..window.max(1));
                let health = self.draw_health();
                self.schedule_at(
                    Instant::now() + Duration::from_secs(at),
                    Scheduled::Health(index, health),
                );
            }
        }
        // Webhook outages: a 503 for a while, or (a quarter of them) a 404, which the
        // controller gives up on at once.
        let mut urls: Vec<String> = self
            .releases
            .iter()
            .flat_map(|plan| plan.notifications.iter())
            .chain(self.default_destinations.iter())
            .filter_map(|d| d.webhook.as_ref().map(|w| w.url.clone()))
            .collect();
        urls.sort();
        urls.dedup();
        for url in urls {
            for _ in 0..self.notify_rng.u32(0..=2) {
                let start = self.notify_rng.u64(0..window.max(1));
                let status = if self.notify_rng.u32(0..4) == 0 {
                    404
                } else {
                    503
                };
                let secs = self.notify_rng.u64(20..=300);
                self.schedule_at(
                    Instant::now() + Duration::from_secs(start),
                    Scheduled::WebhookOutage(url.clone(), status, secs),
                );
            }
        }
        self.log.push(Event::FaultsInjected {
            description: format!(
                "notifications: throttle {notify_throttle:.3}, 5xx {notify_error:.3}, lost outcome {notify_lost:.3}, latency 3s {notify_latency:.3}, latency 15s {notify_slow:.3}; aws: lost CreateDeployment, CreateTaskSet and UpdateService {lost_create:.3}, targets start every {task_start}s and are checked {health_check}s later, throttle {aws_throttle:.3}, 5xx {aws_error:.3}, lost {aws_lost:.3}, latency 2s {aws_latency:.3}, latency {aws_long_secs}s {aws_long:.3}, stops take {stop_delay}s; store: status write 5xx {status_error:.3}, status write lost {status_lost:.3}, throttle {store_throttle:.3}, 5xx {store_error:.3}, lost {store_lost:.3}, latency 1s {store_latency:.3}, latency {store_long_secs}s {store_long:.3}"
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
            &self.passes,
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
        let state = ControllerState::new();
        self.replica_states.push(state.clone());
        let notifications = ReplicaNotifications {
            replica: id.clone(),
            inner: self.notifications.clone(),
            gate: gate.clone(),
            log: self.log.clone(),
        };
        let ctx = Context::new(store, Arc::new(aws), self.clock.clone(), config, state)
            .with_leases(leases)
            .with_notifications(Arc::new(notifications), self.default_destinations.clone())
            .with_probe(Arc::new(ReplicaProbe {
                replica: id.clone(),
                inner: self.aws.clone(),
                gate: gate.clone(),
                log: self.log.clone(),
            }));
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

    /// A replica crashed itself right after a mutation; its task goes too.
    fn on_self_crash(&mut self, id: &str) {
        let Some(slot) = (0..self.slots.len())
            .find(|&slot| self.slots[slot].as_ref().is_some_and(|r| r.id == id))
        else {
            return;
        };
        if let Some(replica) = self.slots[slot].take() {
            replica.task.abort();
            self.stats.crashes_after_action += 1;
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

    /// The simulated AWS as the account and region of [`PLACES`]`[place]` (for setting up and
    /// inspecting what lives there).
    fn place(&self, place: usize) -> SimAws {
        let (account, region, _) = PLACES[place];
        self.aws.scoped(account, region)
    }

    /// Every CodeDeploy deployment in every place (ids are unique across places).
    fn all_deployments(&self) -> Vec<switchyard::ports::Deployment> {
        (0..PLACES.len())
            .flat_map(|place| self.place(place).all_deployments())
            .collect()
    }

    fn set_alarm(&mut self, index: usize, state: AlarmState) {
        let plan = &mut self.releases[index];
        let alarm = plan.alarm.clone();
        plan.alarm_firing = state == AlarmState::Alarm;
        let place = plan.place;
        self.place(place).set_alarm(&alarm, state);
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
        match self.rng.u32(0..106) {
            0..=25 => {
                let revert = self.rng.u32(0..5) == 0;
                self.write_version(index, revert).await;
            }
            26..=39 => self.edit_keeping_candidate().await,
            40..=51 => {
                let kind = match self.rng.u32(0..10) {
                    0..=3 => RequestKind::Promote,
                    4..=6 => RequestKind::Abort,
                    _ => RequestKind::Retry,
                };
                // `promote --full` skips a canary's remaining steps.
                let full = kind == RequestKind::Promote && self.rng.u32(0..4) == 0;
                self.request(index, kind, full).await;
            }
            52..=57 => {
                if !self.releases[index].alarm_firing {
                    self.stats.alarm_pulses += 1;
                    self.set_alarm(index, AlarmState::Alarm);
                    let ok_at = Instant::now() + Duration::from_secs(self.rng.u64(20..=240));
                    self.schedule_at(ok_at, Scheduled::AlarmOk(index));
                }
            }
            58..=63 => {
                if let Some(slot) = self.pick_running() {
                    self.crash(slot, "at a random point");
                }
            }
            64..=67 => {
                if let Some(slot) = self.pick_running() {
                    let operation = CRASH_POINTS[self.rng.usize(0..CRASH_POINTS.len())];
                    let replica = self.slots[slot].as_ref().expect("running");
                    replica.gate.arm_crash_after(Some(operation));
                    self.log.push(Event::CrashArmed {
                        replica: replica.id.clone(),
                        operation,
                    });
                }
            }
            68..=72 => {
                if let Some(slot) = self.pick_running() {
                    self.restart_gracefully(slot);
                }
            }
            73..=78 => {
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
            79..=82 => {
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
            83..=85 => {
                let operation = match self.rng.u32(0..4) {
                    3 => "ecs:ContinueServiceDeployment",
                    n => LOST_START_REPLIES[n as usize],
                };
                self.aws
                    .inject(FaultRule::times(operation, Fault::LostResponse, 1));
                self.log.push(Event::FaultsInjected {
                    description: format!("the next {operation}'s reply is lost"),
                });
            }
            86..=89 => self.start_refusals(),
            90..=93 => {
                let operation = PANICKABLE[self.rng.usize(0..PANICKABLE.len())];
                let times = self.rng.u32(1..=3);
                self.aws
                    .inject(FaultRule::times(operation, Fault::Panic, times));
                self.stats.panics_injected += times;
                self.log.push(Event::FaultsInjected {
                    description: format!("the next {times} {operation} call(s) panic"),
                });
            }
            94..=97 => {
                if let Some(slot) = self.pick_running() {
                    let writes = self.rng.u32(1..=4);
                    let lost = self.rng.bool();
                    let replica = self.slots[slot].as_ref().expect("running");
                    replica.gate.arm_write_faults(writes, lost);
                    self.stats.write_faults_armed += 1;
                    self.log.push(Event::WriteFaultArmed {
                        replica: replica.id.clone(),
                        writes,
                        lost,
                    });
                }
            }
            98..=99 => {
                let times = self.rng.u32(2..=12);
                let (fault, name) = if self.rng.bool() {
                    (Fault::ServerError, "5xx")
                } else {
                    (Fault::LostResponse, "lost replies")
                };
                self.store.inject(FaultRule::times(
                    "dynamodb:TransactWriteItems",
                    fault,
                    times,
                ));
                self.log.push(Event::FaultsInjected {
                    description: format!("a burst of {times} {name} on status writes"),
                });
            }
            100..=102 => self.move_traffic_by_hand(),
            _ => self.deploy_as_someone_else(),
        }
    }

    /// An operator moves production traffic off a canary by hand (an emergency): one
    /// production route of a `taskSets` release whose rollout is at its steps, back to
    /// 100% on the live group.
    fn move_traffic_by_hand(&mut self) {
        let at_steps: Vec<(usize, String, String)> = (0..self.releases.len())
            .filter_map(|index| {
                let status = self.store.peek(&self.releases[index].name)?.status?;
                let Some(StrategyStatus::TaskSets(state)) = &status.strategy else {
                    return None;
                };
                (status.rollout_in_flight().is_some()
                    && state.stage == TaskSetsStage::Steps
                    && state.weight > 0)
                    .then(|| {
                        Some((
                            index,
                            state.live_target_group.clone()?,
                            state.candidate_target_group.clone()?,
                        ))
                    })
                    .flatten()
            })
            .collect();
        if at_steps.is_empty() {
            return;
        }
        let (index, live, candidate) = at_steps[self.rng.usize(0..at_steps.len())].clone();
        let Setup::TaskSets(setup) = &self.releases[index].setup else {
            return;
        };
        let route =
            setup.production_routes[self.rng.usize(0..setup.production_routes.len())].clone();
        self.place(self.releases[index].place)
            .set_forward(&route, &[(live.as_str(), 100), (candidate.as_str(), 0)]);
        self.stats.weights_moved_by_hand += 1;
        self.log_traffic(
            index,
            "hand",
            &format!("{route}: all traffic back to {live}"),
        );
    }

    /// Someone else (the console, a pipeline) deploys the hotfix revision on an `ecs`
    /// release's service; a `PAUSE` hook of theirs is answered by them a while later.
    fn deploy_as_someone_else(&mut self) {
        let ecs: Vec<usize> = (0..self.releases.len())
            .filter(|&index| matches!(self.releases[index].setup, Setup::Ecs(_)))
            .collect();
        if ecs.is_empty() {
            return;
        }
        let index = ecs[self.rng.usize(0..ecs.len())];
        let plan = &self.releases[index];
        let Setup::Ecs(setup) = &plan.setup else {
            return;
        };
        let request = UpdateServiceRequest {
            cluster: "prod".into(),
            service: plan.name.clone(),
            task_definition: setup.hotfix.clone(),
            deployment: None,
        };
        let place = plan.place;
        let Ok(arn) = self.place(place).update_service_as_someone_else(&request) else {
            return;
        };
        self.stats.foreign_deployments += 1;
        self.log.push(Event::ForeignDeployment {
            release: plan.name.clone(),
            arn: arn.clone(),
            task_definition: request.task_definition,
        });
        if let Some(arn) = arn {
            let at = Instant::now() + Duration::from_secs(self.rng.u64(20..=180));
            self.schedule_at(at, Scheduled::ContinueForeign(place, arn));
        }
    }

    /// Someone else answers the hook their deployment waits at, if it waits (else looks
    /// again later, while it is in flight).
    fn continue_foreign(&mut self, place: usize, arn: String) {
        let aws = self.place(place);
        let Some(deployment) = aws.service_deployment(&arn) else {
            return;
        };
        if deployment.status.is_terminal() {
            return;
        }
        if !aws.continue_as_someone_else(&arn) {
            let at = Instant::now() + Duration::from_secs(30);
            self.schedule_at(at, Scheduled::ContinueForeign(place, arn));
        }
    }

    /// Logs the routes and task sets of a `taskSets` release's service now.
    fn log_traffic(&self, index: usize, by: &str, change: &str) {
        let name = &self.releases[index].name;
        let place = self.place(self.releases[index].place);
        let (routes, task_sets) = crate::replica::traffic_of(&place, "prod", name);
        self.log.push(Event::TrafficSeen {
            release: name.clone(),
            by: by.to_string(),
            change: change.to_string(),
            outcome: "done".to_string(),
            routes,
            task_sets,
        });
    }

    /// AWS refuses one mutating operation (AccessDeniedException) for a while, as when a
    /// policy is changed and changed back.
    fn start_refusals(&mut self) {
        let operation = REFUSABLE[self.rng.usize(0..REFUSABLE.len())];
        if self.refusing.contains(&operation) {
            return;
        }
        self.aws
            .inject(FaultRule::always(operation, Fault::AccessDenied));
        self.refusing.push(operation);
        self.stats.refusal_episodes += 1;
        self.log.push(Event::Refusals {
            operation,
            on: true,
        });
        let ends = Instant::now() + Duration::from_secs(self.rng.u64(30..=360));
        self.schedule_at(ends, Scheduled::EndRefusals(operation));
    }

    fn end_refusals(&mut self, operation: &'static str) {
        if !self.refusing.contains(&operation) {
            return;
        }
        self.aws
            .remove_fault(&FaultRule::always(operation, Fault::AccessDenied));
        self.refusing.retain(|o| *o != operation);
        self.log.push(Event::Refusals {
            operation,
            on: false,
        });
    }

    /// The releases with a rollout in flight.
    fn release_in_flight(&self) -> Vec<usize> {
        (0..self.releases.len())
            .filter(|&index| self.in_flight_of(index).is_some())
            .collect()
    }

    /// What a release has in flight: its active CodeDeploy deployment of its own, or (task
    /// sets, ECS) the candidate task set or service deployment of the rollout its status
    /// records in flight.
    fn in_flight_of(&self, index: usize) -> Option<String> {
        let plan = &self.releases[index];
        if let Setup::CodeDeploy { .. } = plan.setup {
            return active_deployment_of(&self.place(plan.place).all_deployments(), &plan.name)
                .map(|d| d.id.clone());
        }
        let status = self.store.peek(&plan.name)?.status?;
        let rollout = status.rollout_in_flight()?;
        Some(
            status
                .deployment_id
                .clone()
                .unwrap_or_else(|| format!("rollout {}", rollout.serial)),
        )
    }

    /// An edit that keeps the candidate (labels, pause, alarms, promotion, onDrift, the
    /// cluster's form), mostly of a release with a rollout in flight.
    async fn edit_keeping_candidate(&mut self) {
        let in_flight = self.release_in_flight();
        let index = if !in_flight.is_empty() && self.rng.u32(0..4) != 0 {
            in_flight[self.rng.usize(0..in_flight.len())]
        } else {
            self.rng.usize(0..self.releases.len().max(1))
        };
        let mut knobs = self.releases[index].knobs.clone();
        let manual_allowed = match &self.releases[index].setup {
            Setup::CodeDeploy { .. } => true,
            Setup::TaskSets(_) => false,
            Setup::Ecs(setup) => setup.has_hook(),
        };
        let edit = match self.rng.u32(0..6) {
            0 => {
                let value = format!("v{}", self.rng.u32(0..1000));
                knobs.labels.insert("edited".into(), value);
                "labels".to_string()
            }
            1 => {
                knobs.paused = !knobs.paused;
                if knobs.paused {
                    let resume_at = Instant::now() + Duration::from_secs(self.rng.u64(20..=300));
                    self.schedule_at(resume_at, Scheduled::Resume(index));
                    "paused".to_string()
                } else {
                    "resumed".to_string()
                }
            }
            2 => {
                knobs.alarms = !knobs.alarms;
                format!("alarms {}", if knobs.alarms { "on" } else { "off" })
            }
            3 => match &self.releases[index].setup {
                Setup::TaskSets(_) => {
                    knobs.steps = draw_steps(&mut self.rng);
                    let steps: Vec<String> = knobs.steps.iter().map(|s| format!("{s:?}")).collect();
                    format!("steps {}", steps.join(", "))
                }
                Setup::Ecs(EcsSetup {
                    blue_green: true,
                    document: Some(_),
                    ..
                }) if !manual_allowed || self.rng.bool() => {
                    knobs.bake_minutes = (knobs.bake_minutes + 1) % 3;
                    format!("bakeTime {}m", knobs.bake_minutes)
                }
                _ if manual_allowed => {
                    knobs.manual = !knobs.manual;
                    format!("promotion {}", if knobs.manual { "manual" } else { "auto" })
                }
                _ => {
                    let value = format!("v{}", self.rng.u32(0..1000));
                    knobs.labels.insert("edited".into(), value);
                    "labels".to_string()
                }
            },
            4 => {
                knobs.converge = !knobs.converge;
                format!(
                    "onDrift {}",
                    if knobs.converge { "converge" } else { "report" }
                )
            }
            _ => {
                knobs.cluster_arn = !knobs.cluster_arn;
                format!(
                    "cluster as {}",
                    if knobs.cluster_arn { "ARN" } else { "name" }
                )
            }
        };
        self.write_spec(index, knobs, edit).await;
    }

    /// The operator resumes a paused release.
    async fn resume(&mut self, index: usize) {
        let mut knobs = self.releases[index].knobs.clone();
        knobs.paused = false;
        self.write_spec(index, knobs, "resumed".into()).await;
    }

    /// Writes a new desired version (a new image tag; `revert`: the one before the current
    /// one again, when there is one).
    async fn write_version(&mut self, index: usize, revert: bool) {
        let plan = &mut self.releases[index];
        let previous = plan
            .tags
            .iter()
            .rev()
            .find(|t| **t != plan.knobs.tag)
            .cloned();
        let (tag, edit) = match previous.filter(|_| revert) {
            Some(tag) => (tag.clone(), format!("revert to {tag}")),
            None => {
                plan.versions += 1;
                let bad = plan.versions > 1 && self.rng.u32(0..8) == 0;
                let tag = format!("1.{}.0{}", plan.versions, if bad { BAD_TAG } else { "" });
                (tag.clone(), format!("image {tag}"))
            }
        };
        let mut knobs = self.releases[index].knobs.clone();
        knobs.tag = tag;
        self.write_spec(index, knobs, edit).await;
    }

    /// Writes the spec with these fields as a user would: read the generation, write under
    /// it. A reply lost on the way back is resolved by looking at what the store holds.
    async fn write_spec(&mut self, index: usize, knobs: Knobs, edit: String) {
        let plan = &self.releases[index];
        let spec = plan.spec(&knobs);
        let name = plan.name.clone();
        let keeps_candidate = plan.last_generation > 0 && knobs.tag == plan.knobs.tag;
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
                labels: knobs.labels.clone(),
                spec: spec.clone(),
                precondition,
                written_by: "simulation".into(),
                written_at: self.clock.now(),
                action: AuditAction::Apply,
                detail: edit.clone(),
            })
            .await;
        let written = match result {
            Ok(generation) => Ok(generation),
            Err(error @ StoreError::Unavailable { .. }) => match self.store.peek(&name) {
                Some(record)
                    if record.generation == expected
                        && record.spec == spec
                        && record.labels == knobs.labels =>
                {
                    Ok(expected)
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        };
        match written {
            Ok(generation) => {
                let in_flight = self.in_flight_of(index);
                let plan = &mut self.releases[index];
                plan.last_generation = generation;
                plan.last_spec = spec;
                if plan.tags.last() != Some(&knobs.tag) {
                    plan.tags.push(knobs.tag.clone());
                }
                let image = plan.image(&knobs.tag);
                let event = Event::SpecWritten {
                    release: name,
                    generation,
                    tag: knobs.tag.clone(),
                    image,
                    edit,
                    keeps_candidate,
                    alarms: knobs.alarms,
                    paused: knobs.paused,
                    in_flight,
                    strategy: plan.setup.strategy(),
                    steps: match plan.setup {
                        Setup::TaskSets(_) => knobs.steps.iter().map(|s| s.seen()).collect(),
                        _ => Vec::new(),
                    },
                };
                plan.knobs = knobs;
                self.stats.spec_writes += 1;
                if keeps_candidate {
                    self.stats.edits_keeping_candidate += 1;
                }
                self.log.push(event);
            }
            Err(error) => {
                self.log.push(Event::SpecWriteFailed {
                    release: name,
                    cause: error.to_string(),
                });
            }
        }
    }

    async fn request(&mut self, index: usize, kind: RequestKind, full: bool) {
        let name = self.releases[index].name.clone();
        let Some(generation) = self.store.peek(&name).map(|r| r.generation) else {
            return;
        };
        let requested_at = self.clock.now();
        let result = self
            .store
            .put_request(
                &name,
                kind,
                OperatorRequest {
                    generation,
                    requested_by: "arn:aws:iam::111122223333:user/simulation".into(),
                    requested_at,
                    full,
                },
            )
            .await;
        // A lost reply: the request is there or not.
        let ok = result.is_ok()
            || self.store.peek(&name).is_some_and(|r| {
                r.requests
                    .get(kind)
                    .is_some_and(|stored| stored.requested_at == requested_at)
            });
        self.stats.requests += 1;
        self.log.push(Event::Requested {
            release: name,
            kind: kind.as_str(),
            generation,
            requested_at,
            ok,
            full,
        });
    }

    /// The operator promotes every release that waits for it and has no promotion pending.
    async fn promote_waiting(&mut self) {
        for index in 0..self.releases.len() {
            let Some(record) = self.store.peek(&self.releases[index].name) else {
                continue;
            };
            let Some(status) = record.status.as_ref() else {
                continue;
            };
            let waiting = status.phase == Phase::AwaitingPromotion
                && status.observed_generation == record.generation;
            let pending = pending_request(&record.requests, status, RequestKind::Promote).is_some();
            if waiting && !pending {
                self.request(index, RequestKind::Promote, false).await;
            }
        }
    }

    /// `(name, status version)` of every release when all have settled: a final phase for
    /// the latest generation (`Failed` only for a verdict or drift, not for a refusal or an
    /// internal error, which are asked again), no request pending, and no deployment of
    /// theirs still active.
    fn settled_snapshot(&self) -> Option<Vec<(String, u64)>> {
        let deployments = self.all_deployments();
        let mut snapshot = Vec::new();
        for (index, plan) in self.releases.iter().enumerate() {
            let record = self.store.peek(&plan.name)?;
            let status = record.status.as_ref()?;
            let settled = status.observed_generation == record.generation && is_final(status);
            let asked = [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry]
                .into_iter()
                .any(|kind| pending_request(&record.requests, status, kind).is_some());
            let active = self.active_of(index, &deployments) > 0;
            let undelivered = status
                .notifications
                .as_ref()
                .is_some_and(|n| !n.outbox.is_empty());
            if !settled || asked || active || undelivered {
                return None;
            }
            snapshot.push((plan.name.clone(), record.status_version));
        }
        Some(snapshot)
    }

    /// What of a release is still active in AWS: deployments of its CodeDeploy group not
    /// finished, task sets other than the primary that are not draining (a candidate, or an
    /// old version not cleaned up), service deployments of its service in flight.
    fn active_of(&self, index: usize, deployments: &[switchyard::ports::Deployment]) -> usize {
        let name = &self.releases[index].name;
        let aws = self.place(self.releases[index].place);
        match &self.releases[index].setup {
            Setup::CodeDeploy { .. } => deployments
                .iter()
                .filter(|d| d.application == *name && !d.status.is_terminal())
                .count(),
            Setup::TaskSets(_) => aws.service("prod", name).map_or(0, |service| {
                service
                    .task_sets
                    .iter()
                    .filter(|t| {
                        !matches!(t.status, TaskSetStatus::Primary | TaskSetStatus::Draining)
                    })
                    .count()
            }),
            Setup::Ecs(_) => aws
                .service_deployments_of("prod", name)
                .iter()
                .filter(|d| !d.status.is_terminal())
                .count(),
        }
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
        let deployments = self.all_deployments();
        self.releases
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                let aws = self.place(plan.place);
                let record = self.store.peek(&plan.name);
                let status = record.as_ref().and_then(|r| r.status.clone());
                let live = aws
                    .service("prod", &plan.name)
                    .and_then(|s| s.live_task_definition().map(str::to_string));
                let live_image = live.as_ref().and_then(|arn| {
                    aws.task_definitions(switchyard::reconcile::family_of(arn))
                        .into_iter()
                        .find(|t| &t.arn == arn)
                        .and_then(|t| t.container(&plan.name).map(|c| c.image.clone()))
                });
                let stored_tag = match &record {
                    Some(r) if r.spec == plan.last_spec => plan.knobs.tag.clone(),
                    Some(r) => format!("(another spec, generation {})", r.generation),
                    None => "(no release)".into(),
                };
                ReleaseOutcome {
                    release: plan.name.clone(),
                    stored_generation: record.as_ref().map_or(0, |r| r.generation),
                    last_written_generation: plan.last_generation,
                    stored_tag,
                    last_written_tag: plan.knobs.tag.clone(),
                    last_written_image: plan.image(&plan.knobs.tag),
                    phase: status.as_ref().map(|s| s.phase),
                    reason: status
                        .as_ref()
                        .and_then(|s| s.condition(ConditionType::Ready))
                        .map(|c| c.reason),
                    message: status
                        .as_ref()
                        .map(|s| s.message.clone())
                        .unwrap_or_default(),
                    observed_generation: status.as_ref().map(|s| s.observed_generation),
                    active_deployments: self.active_of(index, &deployments),
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
                        .and_then(|id| match &plan.setup {
                            Setup::CodeDeploy { .. } => deployments
                                .iter()
                                .find(|d| &d.id == id)
                                .map(|d| !d.status.is_terminal()),
                            Setup::TaskSets(_) => aws.service("prod", &plan.name).map(|s| {
                                s.task_sets
                                    .iter()
                                    .any(|t| &t.arn == id && t.status != TaskSetStatus::Draining)
                            }),
                            Setup::Ecs(_) => {
                                aws.service_deployment(id).map(|d| !d.status.is_terminal())
                            }
                        }),
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
        let deployments = self.all_deployments();
        let outcomes = self.outcomes();
        let shards = self.config.shards;
        let shard = |release: &str| shard_of(release, shards);
        let names: Vec<String> = self.releases.iter().map(|p| p.name.clone()).collect();
        let task_definitions: Vec<_> = self
            .releases
            .iter()
            .flat_map(|plan| self.place(plan.place).task_definitions(&plan.name))
            .collect();
        // The image of every revision (each family's one container is named after it).
        let images: BTreeMap<String, String> = task_definitions
            .iter()
            .filter_map(|t| {
                t.container(&t.family)
                    .map(|c| (t.arn.clone(), c.image.clone()))
            })
            .collect();
        // Deployment ids are unique across places: the maps merge.
        let stop_calls: BTreeMap<_, _> = (0..PLACES.len())
            .flat_map(|place| self.place(place).stop_calls())
            .collect();
        let continue_calls: BTreeMap<_, _> = (0..PLACES.len())
            .flat_map(|place| self.place(place).continue_calls())
            .collect();
        let passes = self.passes.passes();

        let mut stats = std::mem::take(&mut self.stats);
        let mut violations = checks::one_deployment_per_rollout(&deployments);
        violations.extend(checks::one_owner_per_term(&entries, shard));
        let candidates = checks::Candidates::new(&entries, &deployments, &images);
        violations.extend(checks::converged(&outcomes, &entries, &candidates));
        violations.extend(checks::observed_generation_never_goes_back(&entries));
        violations.extend(checks::recorded_stops_are_sent(
            &entries,
            &deployments,
            &candidates,
            self.clock_origin,
            shard,
        ));
        let (found, edits) =
            checks::edits_keep_rollouts(&entries, &deployments, &candidates, self.clock_origin);
        violations.extend(found);
        stats.edits_in_flight = edits.in_flight;
        stats.stops_justified = edits.stops;
        stats.candidates_wanted_again = edits.wanted_again;
        let (found, registrations) = checks::one_registration_per_candidate(&task_definitions);
        violations.extend(found);
        stats.registrations = registrations;
        let (found, mutations) = checks::one_mutation_per_intent(
            &entries,
            &deployments,
            &stop_calls,
            &continue_calls,
            self.clock_origin,
            shard,
        );
        violations.extend(found);
        stats.stops_accepted = mutations.stops_accepted;
        stats.stop_resends_excused = mutations.resends_excused;
        stats.stop_resends_after_handover = mutations.resends_after_handover;
        stats.continues_accepted = mutations.continues_accepted;
        let (found, requests) = checks::requests_are_handled(&entries);
        violations.extend(found);
        stats.requests_handled = requests.handled;
        stats.requests_declined = requests.declined;
        stats.requests_replaced = requests.replaced;
        let (found, longest_gap) = checks::no_wedged_release(&entries, &passes, &names, shard);
        violations.extend(found);
        stats.passes = passes.values().map(Vec::len).sum();
        stats.longest_pass_gap = longest_gap;
        let (found, refused) = checks::refusals_back_off(&entries);
        violations.extend(found);
        stats.refused_attempts = refused;
        let mut counts = crate::StrategyCounts::default();
        violations.extend(strategy_checks::weights_follow_the_steps(
            &entries,
            &mut counts,
        ));
        violations.extend(strategy_checks::one_candidate_per_rollout(
            &entries,
            &(0..PLACES.len())
                .flat_map(|place| self.place(place).task_sets_created())
                .collect::<Vec<_>>(),
            &mut counts,
        ));
        violations.extend(strategy_checks::traffic_before_removal(
            &entries,
            &mut counts,
        ));
        let foreign: BTreeMap<String, Option<jiff::Timestamp>> = (0..PLACES.len())
            .flat_map(|place| {
                let aws = self.place(place);
                aws.foreign_service_deployments()
                    .into_iter()
                    .map(|arn| {
                        let finished = aws.service_deployment(&arn).and_then(|d| d.finished_at);
                        (arn, finished)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        violations.extend(strategy_checks::ecs_rollouts(
            &entries,
            &foreign,
            self.clock_origin,
            &mut counts,
        ));
        stats.strategy = counts;
        let releases: BTreeMap<String, ReleaseNotifications> = self
            .releases
            .iter()
            .map(|plan| {
                let destinations = self.destinations_of(plan);
                let receivers = destinations
                    .iter()
                    .filter_map(NotificationDestination::destination)
                    .map(|d| {
                        let address = match &d {
                            switchyard::model::notifications::Destination::Sns { topic_arn } => {
                                format!("sns:{topic_arn}")
                            }
                            switchyard::model::notifications::Destination::EventBridge { bus } => {
                                format!("eventBridge:{bus}")
                            }
                            switchyard::model::notifications::Destination::Webhook {
                                url, ..
                            } => format!("webhook:{url}"),
                        };
                        (d.key(), address)
                    })
                    .collect();
                let wants_started = destinations
                    .iter()
                    .any(|d| d.wants(EventKind::RolloutStarted));
                (
                    plan.name.clone(),
                    ReleaseNotifications {
                        strategy: plan.setup.strategy(),
                        receivers,
                        wants_started,
                    },
                )
            })
            .collect();
        let received = self.notifications.received();
        let recorded = crate::log::lock(&self.recorded).clone();
        let (found, notified) = notification_checks::notifications_delivered(
            &entries,
            &notification_checks::Notifications {
                releases: &releases,
                received: &received,
                recorded: &recorded,
                origin: self.clock_origin,
            },
        );
        violations.extend(found);
        stats.notifications = notified;
        let analysed: BTreeMap<String, crate::analysis_checks::AnalysedRelease> = self
            .releases
            .iter()
            .filter_map(|plan| {
                let analysis = plan.analysis.as_ref()?;
                Some((
                    plan.name.clone(),
                    crate::analysis_checks::AnalysedRelease {
                        url: analysis.url.clone(),
                        inconclusive_limit: analysis.inconclusive_limit,
                    },
                ))
            })
            .collect();
        let (found, analysed) = crate::analysis_checks::analyses_hold(&entries, &analysed);
        violations.extend(found);
        stats.analyses = analysed;
        violations.sort_by_key(|v| v.kind);

        stats.deployments = deployments.len();
        for entry in &entries {
            match entry.event {
                Event::MutationIssued { .. } => stats.mutations += 1,
                Event::StatusCommitted { .. } => stats.status_writes += 1,
                Event::StatusWriteFailed { .. } => stats.status_writes_failed += 1,
                Event::LeaseTaken { .. } => stats.lease_takes += 1,
                Event::SpecWritten {
                    keeps_candidate: false,
                    ref edit,
                    ..
                } if edit.starts_with("revert") => stats.reverts += 1,
                _ => {}
            }
        }
        stats.passes_panicked = self
            .replica_states
            .iter()
            .map(|state| state.metrics().pass_panics.get())
            .sum();
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
                "deployment {} {} {:?} {:?} stop calls {}",
                deployment.id,
                deployment.application,
                deployment.status,
                deployment.description,
                stop_calls.get(&deployment.id).copied().unwrap_or(0)
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

/// The active deployment of the release's own (not a rollback), if any.
fn active_deployment_of<'a>(
    deployments: &'a [switchyard::ports::Deployment],
    release: &str,
) -> Option<&'a switchyard::ports::Deployment> {
    deployments.iter().find(|d| {
        !d.status.is_terminal()
            && d.description
                .as_deref()
                .and_then(parse_deployment_description)
                .is_some_and(|(owner, _)| owner == release)
    })
}

/// Whether a status is where a release may rest at the end: `Healthy`, `RolledBack`, or
/// `Failed` for a verdict or drift (a refusal or an internal error is asked again).
fn is_final(status: &ReleaseStatus) -> bool {
    match status.phase {
        Phase::Healthy | Phase::RolledBack => true,
        Phase::Failed => status
            .condition(ConditionType::Ready)
            .is_some_and(|c| matches!(c.reason, Reason::DeploymentFailed | Reason::Drifted)),
        _ => false,
    }
}

/// A status's task-set rollout, for the log.
fn task_sets_seen(status: &ReleaseStatus) -> Option<TaskSetsSeen> {
    let Some(StrategyStatus::TaskSets(state)) = &status.strategy else {
        return None;
    };
    Some(TaskSetsSeen {
        stage: state.stage,
        step_index: state.step_index,
        weight: state.weight,
        candidate_task_set: state.candidate_task_set.clone(),
        live_group: state.live_target_group.clone(),
        candidate_group: state.candidate_target_group.clone(),
        routes: state.routes.clone(),
        test_routes: state.test_routes.clone(),
        rolling_back: state.rolling_back.as_ref().map(|r| r.superseded),
        clean_up: state.clean_up.as_ref().map(|c| c.task_set.clone()),
    })
}

/// A status's ECS rollout, for the log.
fn ecs_seen(status: &ReleaseStatus) -> Option<EcsSeen> {
    let Some(StrategyStatus::Ecs(state)) = &status.strategy else {
        return None;
    };
    Some(EcsSeen {
        service_deployment: state.service_deployment.clone(),
        updating_since: state.updating_since,
        answer: state
            .answer
            .as_ref()
            .map(|a| (a.hook_id.clone(), a.action.clone(), a.sent)),
        rolling_back: state.rolling_back.clone(),
    })
}

/// The requests a status records as handled, each with its history entry if still held.
fn handled_requests(status: &ReleaseStatus) -> Vec<HandledRequest> {
    [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry]
        .into_iter()
        .filter_map(|kind| {
            let at = status.handled_requests.get(kind)?;
            let entry = status
                .history
                .iter()
                .find(|h| h.started_at == Some(at) && !h.outcome.ends_rollout())
                .map(|h| (h.outcome, h.message.clone()));
            Some(HandledRequest {
                kind: kind.as_str(),
                requested_at: at,
                entry,
            })
        })
        .collect()
}
