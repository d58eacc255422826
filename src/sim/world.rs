//! The simulated account's state (the `World` and the resources it holds) and its
//! deterministic identifiers (ARNs, ids).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::ports::{
    DeploymentCreator, DeploymentErrorInfo, DeploymentStatus, LifecycleEvent, Listener,
    LoadBalancerBinding, ReadyAction, RollbackInfo, TaskDefinition, TaskSetStatus,
};

use super::appspec::{AppSpec, LaunchSettings};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "111122223333";

/// Everything the simulated account holds. Only ever touched under the `SimAws` lock, and
/// always advanced to the clock's `now` first (see `World::advance`).
#[derive(Default)]
pub(crate) struct World {
    /// Services by (cluster, name).
    pub services: BTreeMap<(String, String), SimService>,
    /// Task definition revisions by family; revision `n` is at index `n - 1`.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// Listeners by ARN.
    pub listeners: BTreeMap<String, Listener>,
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
    counters: Counters,
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
    /// Percent of production traffic (reported by `GetDeploymentTarget`).
    pub traffic_weight: f64,
    pub settings: LaunchSettings,
}

/// One blue/green service and the load balancer wiring CodeDeploy uses for it.
#[derive(Debug, Clone)]
pub(crate) struct SimService {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    pub desired_count: u32,
    /// The service's load balancer entry as created (ECS keeps target group A there).
    pub binding: LoadBalancerBinding,
    /// Used only if the service has no primary task set.
    pub base_settings: LaunchSettings,
    pub task_sets: Vec<SimTaskSet>,
    /// The two target groups of the deployment group, in a fixed order (A, B).
    pub target_group_arns: [String; 2],
    pub production_listener: String,
    pub test_listener: String,
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

/// Separate counters per kind of identifier, so e.g. the deployment ids a test sees do not
/// depend on how many target groups it created first.
#[derive(Default)]
struct Counters {
    deployments: u64,
    task_sets: u64,
    hex: u64,
}

/// 36^9: the number of 9-character upper-case alphanumeric strings.
const ID_SPACE: u128 = 101_559_956_668_416;

impl World {
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

    /// The next 16 hex digits for ARN suffixes (odd multiplier: a bijection on u64).
    pub fn next_hex(&mut self) -> String {
        self.counters.hex += 1;
        format!(
            "{:016x}",
            self.counters.hex.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    }
}

pub(crate) fn service_arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}")
}

pub(crate) fn task_set_arn(cluster: &str, service: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-set/{cluster}/{service}/{id}")
}

pub(crate) fn task_definition_arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

pub(crate) fn target_group_arn(name: &str, hex: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}/{hex}")
}

pub(crate) fn listener_arn(load_balancer: &str, lb_hex: &str, listener_hex: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/{load_balancer}/{lb_hex}/{listener_hex}"
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
