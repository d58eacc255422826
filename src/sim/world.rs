//! The simulated account's state (the `World` and the resources it holds) and its
//! deterministic identifiers (ARNs, ids).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::ports::{
    AdvancedLoadBalancer, CapacityProviderItem, DeploymentControllerType, DeploymentCreator,
    DeploymentErrorInfo, DeploymentStatus, EcsDeploymentStrategy, HookAction, LifecycleEvent,
    LoadBalancerBinding, NetworkConfiguration, ReadyAction, RollbackInfo, ServiceDeploymentStatus,
    TargetHealthState, TaskDefinition, TaskSet, TaskSetStatus, UpdateServiceRequest,
    WeightedTargetGroup,
};

use super::appspec::{AppSpec, LaunchSettings};

/// The simulated AWS's home: the controller's own region and account.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "111122223333";

/// One account's resources in one region: what AWS keeps apart. Resources of one scope are
/// invisible from every other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Default for Scope {
    /// The home scope.
    fn default() -> Self {
        Self::new(ACCOUNT, REGION)
    }
}

impl Scope {
    pub fn new(account: &str, region: &str) -> Self {
        Self {
            account: account.to_string(),
            region: region.to_string(),
        }
    }

    fn is_home(&self) -> bool {
        *self == Self::default()
    }
}

/// Everything one simulated account holds in one region. Only ever touched under the
/// `SimAws` lock, and always advanced to the clock's `now` first (see `World::advance`).
#[derive(Default)]
pub(crate) struct World {
    /// The account and region this world is: its ARNs say so.
    pub scope: Scope,
    /// Services by (cluster, name).
    pub services: BTreeMap<(String, String), SimService>,
    /// Task definition revisions by family; revision `n` is at index `n - 1`.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// The ARNs of the load balancers (their listeners and rules are below).
    pub load_balancers: BTreeSet<String>,
    /// Listeners by ARN.
    pub listeners: BTreeMap<String, SimListener>,
    /// Listener rules (but the default rules, which are the listeners' default actions) by ARN.
    pub rules: BTreeMap<String, SimRule>,
    /// Target groups by ARN.
    pub target_groups: BTreeMap<String, SimTargetGroup>,
    /// Deployment groups by application, then group name.
    pub applications: BTreeMap<String, BTreeMap<String, SimGroup>>,
    /// Every deployment ever created, in creation order.
    pub deployments: Vec<SimDeployment>,
    pub custom_configs: BTreeMap<String, TrafficRouting>,
    /// Alarms by name (names are unique across alarm types, as in CloudWatch).
    pub alarms: BTreeMap<String, SimAlarm>,
    /// Image substrings whose replacement tasks never become healthy.
    pub failing_images: Vec<String>,
    /// How long CodeDeploy takes to stop a deployment after StopDeployment (the hook in
    /// progress finishes first); the deployment stays in its status meanwhile.
    pub stop_delay: std::time::Duration,
    /// Services with the ECS deployment controller by (cluster, name); `services` holds the
    /// `CODE_DEPLOY` ones. A (cluster, name) is in at most one of the two.
    pub ecs_services: BTreeMap<(String, String), SimEcsService>,
    /// Every service revision, in creation order.
    pub service_revisions: Vec<SimServiceRevision>,
    /// Every ECS service deployment, in creation order.
    pub service_deployments: Vec<SimServiceDeployment>,
    /// Task definition ARNs whose tasks never become healthy in a service deployment.
    pub unhealthy_task_definitions: Vec<String>,
    /// The time service deployments were last advanced to: alarm states have not changed
    /// since (every change advances the world first).
    pub service_deployments_advanced_to: Option<Timestamp>,
    /// The earliest moment a task of a task set starts, turns healthy or unhealthy, or a
    /// target or task set finishes draining (`None`: nothing pending); see
    /// `World::advance_task_sets`.
    pub next_task_event: Option<Timestamp>,
    /// CloudWatch metrics by (namespace, name, dimensions), and the `GetMetricData` requests
    /// accepted (`metrics.rs`).
    pub metrics: BTreeMap<MetricKey, SimMetric>,
    pub metric_requests: Vec<crate::ports::MetricDataRequest>,
    /// What HTTP probes of a URL get, and how many there were.
    pub http_answers: BTreeMap<String, Result<u16, crate::ports::ProbeError>>,
    pub http_probes: BTreeMap<String, u64>,
    /// Every task set `CreateTaskSet` created, in creation order (deleted ones included).
    pub task_sets_created: Vec<CreatedTaskSet>,
    /// How fast the tasks of a created task set start and pass (or fail) their health
    /// checks: `(TASK_START, HEALTH_CHECK)` unless set.
    pub target_timings: Option<(std::time::Duration, std::time::Duration)>,
    /// Calls that reached this world, per `"<service>:<Operation>"`.
    pub calls: BTreeMap<String, u64>,
    counters: Counters,
}

/// A task set `CreateTaskSet` created, as it was created (it may be gone since).
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedTaskSet {
    pub cluster: String,
    pub service: String,
    pub arn: String,
    /// The `externalId` it was created with.
    pub external_id: Option<String>,
    pub target_group_arn: String,
    pub task_definition: String,
    pub created_at: Timestamp,
}

// The resources of the account. Their behaviour lives with the service that owns them
// (`ecs.rs`, `codedeploy.rs`); their definitions are here, below both, so that the world can
// hold them without either service module and the world importing each other.

/// One task set of a service.
#[derive(Debug, Clone)]
pub(crate) struct SimTaskSet {
    pub id: String,
    pub arn: String,
    pub status: TaskSetStatus,
    pub task_definition: String,
    pub external_id: Option<String>,
    pub started_by: Option<String>,
    pub running_count: u32,
    pub target_group_arn: String,
    /// The container (and port) its target group sends traffic to.
    pub container_name: String,
    pub container_port: u16,
    /// Percent of production traffic (reported by `GetDeploymentTarget`).
    pub traffic_weight: f64,
    pub settings: LaunchSettings,
    /// `FARGATE`, `EC2` or `EXTERNAL` (task sets of `EXTERNAL` services only).
    pub launch_type: Option<String>,
    /// Percent (0..=100) of the service's desired count; CodeDeploy's task sets run at 100.
    pub scale_percent: f64,
    /// The tasks of a task set created with `CreateTaskSet` (CodeDeploy's task sets count
    /// `running_count` only): each registers with the target group once it runs.
    pub tasks: Vec<SimTask>,
    /// Its tasks never pass the target group's health checks (`fail_install_for_image`).
    pub never_healthy: bool,
    /// Deleted: DRAINING until this moment, then gone.
    pub drained_at: Option<Timestamp>,
}

/// One task of a task set created with `CreateTaskSet`.
#[derive(Debug, Clone)]
pub(crate) struct SimTask {
    /// Its private IP: the target id in the target group.
    pub ip: String,
    /// When it runs and registers with the target group (state `initial`).
    pub runs_at: Timestamp,
    /// When its health checks have decided: `healthy`, or `unhealthy` for a task set whose
    /// tasks never become healthy.
    pub checked_at: Timestamp,
    pub running: bool,
    pub checked: bool,
}

/// A listener and its default action.
#[derive(Debug, Clone)]
pub(crate) struct SimListener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub port: u16,
    /// The default action's forward targets and weights (a single-target forward is one entry
    /// of weight 1); empty when the default action does not forward (a fixed response).
    pub forward: Vec<WeightedTargetGroup>,
}

/// A listener rule other than the default one (its conditions are not modelled: which
/// requests a rule matches is none of the controller's business).
#[derive(Debug, Clone)]
pub(crate) struct SimRule {
    pub arn: String,
    pub listener_arn: String,
    pub priority: u32,
    /// As `SimListener::forward`: empty for a rule that does not forward.
    pub forward: Vec<WeightedTargetGroup>,
}

/// A target group and its registered targets.
#[derive(Debug, Clone)]
pub(crate) struct SimTargetGroup {
    pub arn: String,
    pub name: String,
    pub port: u16,
    pub targets: Vec<SimTarget>,
}

/// A registered target.
#[derive(Debug, Clone)]
pub(crate) struct SimTarget {
    pub id: String,
    pub port: u16,
    pub state: TargetHealthState,
    /// Deregistered: `draining` until this moment, then gone.
    pub leaves_at: Option<Timestamp>,
}

/// One service: a `CODE_DEPLOY` service and the load balancer wiring CodeDeploy uses for it,
/// or an `EXTERNAL` service whose task sets are created by hand.
#[derive(Debug, Clone)]
pub(crate) struct SimService {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    pub deployment_controller: DeploymentControllerType,
    pub desired_count: u32,
    /// The service's load balancer entry as created (ECS keeps target group A there).
    pub binding: LoadBalancerBinding,
    /// Used only if the service has no primary task set.
    pub base_settings: LaunchSettings,
    pub task_sets: Vec<SimTaskSet>,
    /// The two target groups of the deployment group (or of the `EXTERNAL` setup), in a
    /// fixed order (A, B).
    pub target_group_arns: [String; 2],
    pub production_listener: String,
    pub test_listener: Option<String>,
    /// `CreateTaskSet` client tokens seen, with the task set each created as it was created.
    pub client_tokens: BTreeMap<String, TaskSet>,
}

/// How a deployment config shifts production traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficRouting {
    /// 100% at once.
    AllAtOnce,
    /// `percent` at once, the rest after `interval_minutes` (`TimeBasedCanary`).
    Canary {
        /// Percent of production traffic shifted first.
        percent: u32,
        /// Minutes before the rest is shifted.
        interval_minutes: u32,
    },
    /// `percent` at once, then `percent` more every `interval_minutes` until 100%
    /// (`TimeBasedLinear`).
    Linear {
        /// Percent of production traffic shifted per step.
        percent: u32,
        /// Minutes between steps.
        interval_minutes: u32,
    },
}

/// A deployment group (one per service) and the wiring it deploys through.
#[derive(Debug, Clone)]
pub(crate) struct SimGroup {
    pub application: String,
    pub name: String,
    pub cluster: String,
    pub service: String,
    pub deployment_config: String,
    pub ready_action: ReadyAction,
    pub termination_wait_minutes: u32,
}

/// Where a deployment is in its internal state machine; `next_at` says when it moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Created,
    /// In a timed lifecycle event (index into `LIFECYCLE_EVENTS`).
    Event(usize),
    /// Replacement tasks are starting (or, for a failing image, never will).
    Installing,
    /// Waiting for `ContinueDeployment`; `next_at` is the ready-wait timeout.
    Ready,
    /// Production traffic is partly shifted; `next_at` is the next step.
    Shifting,
    /// Traffic is on the replacement; the original is removed at `next_at`.
    TerminationWait,
    /// A rollback deployment rerouting traffic to the original.
    RollingBack,
    /// StopDeployment was accepted; the deployment stops (with rollback or not) at `next_at`.
    Stopping {
        rollback: bool,
    },
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct SimDeployment {
    pub id: String,
    pub application: String,
    pub group: String,
    pub cluster: String,
    pub service: String,
    pub status: DeploymentStatus,
    pub description: Option<String>,
    pub creator: DeploymentCreator,
    pub config_name: String,
    pub routing: TrafficRouting,
    pub ready_action: ReadyAction,
    pub termination_wait_minutes: u32,
    pub create_time: Timestamp,
    pub complete_time: Option<Timestamp>,
    pub error: Option<DeploymentErrorInfo>,
    pub rollback: Option<RollbackInfo>,
    /// The AppSpec text as submitted (`None` for rollback deployments).
    pub appspec_content: Option<String>,
    pub appspec: Option<AppSpec>,
    pub events: Vec<LifecycleEvent>,
    pub original_task_set: Option<String>,
    pub replacement_task_set: Option<String>,
    /// The replacement's image matches `fail_install_for_image`: `Install` times out.
    pub install_never_healthy: bool,
    /// Percent of production traffic on the replacement, as last set by `AllowTraffic`.
    pub traffic_percent: u32,
    pub stage: Stage,
    pub next_at: Option<Timestamp>,
    /// StopDeployment calls that CodeDeploy accepted for it (a second one while it stops is
    /// accepted again, and counted, so checks can see a stop sent twice).
    pub stop_calls: u32,
    /// ContinueDeployment calls that CodeDeploy accepted for it (at most one can be: the
    /// deployment leaves `Ready` at once; counted so checks need not trust that).
    pub continue_calls: u32,
}

/// How a failure detector of ECS deployments (the circuit breaker) ends a failed deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Roll back to the last successful revision (else the deployment just stops).
    pub rollback: bool,
}

/// A service's `deploymentConfiguration` as ECS deployments use it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimDeploymentConfiguration {
    pub strategy: EcsDeploymentStrategy,
    pub bake_time_minutes: Option<u32>,
    pub canary: Option<(f64, u32)>,
    pub linear: Option<(f64, u32)>,
    /// Lifecycle stages with a `PAUSE` hook.
    pub pause_at: Vec<String>,
    /// The `PAUSE` hooks' timeout (their timeout action is `ROLLBACK`).
    pub hook_timeout_minutes: u32,
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Deployment alarms (with rollback).
    pub alarms: Vec<String>,
}

/// One load balancer entry of an ECS service, with its advanced configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimEcsLoadBalancer {
    pub binding: LoadBalancerBinding,
    pub advanced: Option<AdvancedLoadBalancer>,
}

/// A service with the ECS deployment controller.
#[derive(Debug, Clone)]
pub(crate) struct SimEcsService {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    pub desired_count: u32,
    /// The service's task definition (the latest `UpdateService` asked for; set back by a
    /// rollback).
    pub task_definition: String,
    /// The task definition serving production now.
    pub running_task_definition: String,
    /// The revision of the last successful deployment: what a rollback returns to.
    pub stable_revision: String,
    /// `currentServiceDeployment`.
    pub current_deployment: Option<String>,
    pub load_balancers: Vec<SimEcsLoadBalancer>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    pub platform_version: Option<String>,
    pub config: SimDeploymentConfiguration,
    /// Every accepted `UpdateService` request made through the port (not the foreign ones).
    pub update_requests: Vec<UpdateServiceRequest>,
}

/// A service revision: what one deployment deploys.
#[derive(Debug, Clone)]
pub(crate) struct SimServiceRevision {
    pub arn: String,
    pub task_definition: String,
}

/// What one stage of a service deployment does once its hook (if any) is answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StageWork {
    /// Nothing but time passing (hook-only stages, test traffic, clean-up).
    Pass,
    /// The target revision's tasks start, one at a time (they may never become healthy).
    ScaleUp,
    /// Production traffic on the target revision becomes this percent.
    Shift(f64),
    /// A bake of this many minutes.
    Bake(u32),
}

/// One planned stage of a service deployment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedStage {
    /// `lifecycleStage` while in it.
    pub lifecycle_stage: &'static str,
    /// The hook stage a `PAUSE` hook names to wait here (none for the bakes between steps).
    pub hook_stage: Option<&'static str>,
    pub work: StageWork,
}

/// Where a service deployment is in its state machine; `next_at` says when it moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServicePhase {
    Pending,
    /// Waiting on the `PAUSE` hook of planned stage `n` (`next_at` is its expiry).
    Hook(usize),
    /// Doing the work of planned stage `n`.
    Working(usize),
    /// `StopServiceDeployment` was accepted; the rollback starts at `next_at`.
    RollbackRequested,
    RollingBack,
    Done,
}

/// One lifecycle hook of a service deployment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimHook {
    pub hook_id: String,
    /// The hook stage it waits at.
    pub stage: String,
    /// `AWAITING_ACTION`, `SUCCEEDED`, `FAILED` or `TIMED_OUT`.
    pub status: &'static str,
    pub expires_at: Timestamp,
    pub timeout_action: HookAction,
}

/// An ECS service deployment.
#[derive(Debug, Clone)]
pub(crate) struct SimServiceDeployment {
    pub arn: String,
    pub cluster: String,
    pub service: String,
    pub status: ServiceDeploymentStatus,
    pub status_reason: Option<String>,
    pub lifecycle_stage: Option<&'static str>,
    pub target_revision: String,
    /// What a rollback returns to: the task definition of the last successful revision.
    pub source_task_definition: Option<String>,
    pub target_task_definition: String,
    pub config: SimDeploymentConfiguration,
    pub plan: Vec<PlannedStage>,
    pub phase: ServicePhase,
    pub next_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub rollback_reason: Option<String>,
    /// The target revision's tasks never become healthy.
    pub never_healthy: bool,
    pub running_tasks: u32,
    /// Tasks that failed to start (what the circuit breaker counts).
    pub failed_tasks: u32,
    pub production_percent: f64,
    /// `TRIGGERED` once the circuit breaker or an alarm rolled the deployment back.
    pub circuit_breaker_triggered: bool,
    pub triggered_alarms: Vec<String>,
    pub hooks: Vec<SimHook>,
    /// Every accepted `ContinueServiceDeployment` answer: (hook id, action).
    pub hook_answers: Vec<(String, HookAction)>,
    /// Accepted `StopServiceDeployment` calls.
    pub stop_calls: u32,
    /// Started by an `UpdateService` of someone else (not the port's).
    pub foreign: bool,
}

/// Separate counters per kind of identifier, so e.g. the deployment ids a test sees do not
/// depend on how many target groups it created first.
#[derive(Default)]
struct Counters {
    deployments: u64,
    task_sets: u64,
    hex: u64,
    ecs_tokens: u64,
    ips: u64,
}

/// 36^9: the number of 9-character upper-case alphanumeric strings.
const ID_SPACE: u128 = 101_559_956_668_416;

impl World {
    /// An empty world for `scope`. Its identifiers are distinct from other scopes' (a home
    /// world counts as it always did, so seeds replay as before).
    pub fn for_scope(scope: Scope) -> Self {
        let offset = if scope.is_home() {
            0
        } else {
            // FNV-1a of the scope: a stable block of identifiers per scope.
            let hash = format!("{}/{}", scope.account, scope.region)
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
            (hash % 20_000 + 1) * 1_000_000_000
        };
        Self {
            scope,
            counters: Counters {
                deployments: offset,
                task_sets: offset,
                hex: offset,
                ecs_tokens: offset,
                ips: 0,
            },
            ..Self::default()
        }
    }

    /// The next deployment id: `d-` and 9 upper-case alphanumerics. Counter-based, scrambled
    /// by an affine map that is a bijection modulo 36^9 (the factor is coprime to 36), so ids
    /// are unique, deterministic and do not look sequential.
    pub fn next_deployment_id(&mut self) -> String {
        self.counters.deployments += 1;
        let n = u128::from(self.counters.deployments);
        let mut v = (n * 1_000_000_007 + 48_271_000_000) % ID_SPACE;
        let mut chars = [b'0'; 9];
        const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for c in chars.iter_mut().rev() {
            *c = DIGITS[(v % 36) as usize];
            v /= 36;
        }
        format!("d-{}", String::from_utf8_lossy(&chars))
    }

    /// The next task set id, shaped like ECS's `ecs-svc/` and 19 digits.
    pub fn next_task_set_id(&mut self) -> String {
        self.counters.task_sets += 1;
        format!(
            "ecs-svc/{:019}",
            4_000_000_000_000_000_000u64 + self.counters.task_sets * 7_919
        )
    }

    /// The next private IP address of a task (`10.x.y.z`, unique per account).
    pub fn next_ip(&mut self) -> String {
        self.counters.ips += 1;
        let n = self.counters.ips;
        format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
    }

    /// The next 16 hex digits for ARN suffixes (odd multiplier: a bijection on u64).
    pub fn next_hex(&mut self) -> String {
        self.counters.hex += 1;
        format!(
            "{:016x}",
            self.counters.hex.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    }
}

impl World {
    /// The next `length` characters of ECS's URL-safe base64 identifiers (service deployment
    /// ids, hook ids): a counter mixed by SplitMix64, so ids are deterministic, distinct in
    /// practice and do not look sequential.
    pub fn next_ecs_token(&mut self, length: usize) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut token = String::with_capacity(length);
        while token.len() < length {
            self.counters.ecs_tokens += 1;
            let mut z = self.counters.ecs_tokens.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            for _ in 0..10 {
                if token.len() == length {
                    break;
                }
                token.push(char::from(ALPHABET[(z & 63) as usize]));
                z >>= 6;
            }
        }
        token
    }
}

impl Scope {
    pub(crate) fn service_deployment_arn(&self, cluster: &str, service: &str, id: &str) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:ecs:{region}:{account}:service-deployment/{cluster}/{service}/{id}")
    }

    pub(crate) fn service_revision_arn(&self, cluster: &str, service: &str, id: &str) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:ecs:{region}:{account}:service-revision/{cluster}/{service}/{id}")
    }

    pub(crate) fn listener_rule_arn(&self, load_balancer: &str, hexes: [&str; 3]) -> String {
        let Scope { account, region } = self;
        let [lb, listener, rule] = hexes;
        format!(
            "arn:aws:elasticloadbalancing:{region}:{account}:listener-rule/app/{load_balancer}/{lb}/{listener}/{rule}"
        )
    }

    pub(crate) fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.account)
    }

    pub(crate) fn service_arn(&self, cluster: &str, service: &str) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:ecs:{region}:{account}:service/{cluster}/{service}")
    }

    pub(crate) fn task_set_arn(&self, cluster: &str, service: &str, id: &str) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:ecs:{region}:{account}:task-set/{cluster}/{service}/{id}")
    }

    pub(crate) fn task_definition_arn(&self, family: &str, revision: u32) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:ecs:{region}:{account}:task-definition/{family}:{revision}")
    }

    pub(crate) fn target_group_arn(&self, name: &str, hex: &str) -> String {
        let Scope { account, region } = self;
        format!("arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/{hex}")
    }

    pub(crate) fn load_balancer_arn(&self, load_balancer: &str, lb_hex: &str) -> String {
        let Scope { account, region } = self;
        format!(
            "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/{load_balancer}/{lb_hex}"
        )
    }
}

/// A rule's ARN: its listener's, as `listener-rule/...`, and the rule's own id.
pub(crate) fn rule_arn(listener_arn: &str, rule_hex: &str) -> String {
    format!(
        "{}/{rule_hex}",
        listener_arn.replacen(":listener/", ":listener-rule/", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_unique_and_well_formed() {
        let mut world = World::default();
        let ids: Vec<String> = (0..1000).map(|_| world.next_deployment_id()).collect();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let tail = id.strip_prefix("d-").expect("d- prefix");
            assert_eq!(tail.len(), 9);
            assert!(
                tail.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            );
        }
    }
}

/// CloudWatch's alarm types (`AlarmType` in the API). `DescribeAlarms` lists each type
/// separately and returns only the types its `AlarmTypes` names, metric alarms alone when it
/// names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmType {
    MetricAlarm,
    CompositeAlarm,
    /// A metric alarm on a CloudWatch Logs query ("log alarm").
    LogAlarm,
}

impl AlarmType {
    /// Every type, as a caller that wants every alarm must ask.
    pub const ALL: [AlarmType; 3] = [
        AlarmType::MetricAlarm,
        AlarmType::CompositeAlarm,
        AlarmType::LogAlarm,
    ];
}

/// One alarm of the simulated account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SimAlarm {
    pub alarm_type: AlarmType,
    pub state: crate::ports::AlarmState,
}

/// One metric's values over time: each value is in force from its time on.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimMetric {
    pub timeline: Vec<(Timestamp, Option<f64>)>,
}

impl SimMetric {
    pub(crate) fn value_at(&self, at: Timestamp) -> Option<f64> {
        self.timeline
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .and_then(|(_, value)| *value)
    }
}

/// A metric's identity: namespace, name and the exact set of dimensions.
pub(crate) type MetricKey = (String, String, BTreeMap<String, String>);
