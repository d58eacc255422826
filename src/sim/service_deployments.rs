//! Simulated ECS deployments: services with the ECS deployment controller, `UpdateService`,
//! service revisions and service deployments (rolling, blue/green, linear, canary) with
//! their lifecycle stages, `PAUSE` hooks, circuit breaker, deployment alarms, rollbacks and
//! stops, progressed lazily over virtual time like the CodeDeploy deployments.
//!
//! A deployment goes through these stages (`lifecycleStage`), each taking [`STAGE_DURATION`]
//! unless said otherwise:
//!
//! 1. `PENDING` for [`SERVICE_DEPLOYMENT_START`], then `IN_PROGRESS`;
//! 2. `PRE_SCALE_UP`;
//! 3. `SCALE_UP`: one target task starts every [`SERVICE_TASK_START_INTERVAL`] until the
//!    desired count runs (a rolling deployment's production traffic moves with them); tasks
//!    that never become healthy fail at the same pace, and the circuit breaker, if on, trips
//!    after `clamp(desired / 2, 3, 200)` failures; without it the deployment waits for ever;
//! 4. `POST_SCALE_UP`; a rolling deployment goes on with step 8;
//! 5. `TEST_TRAFFIC_SHIFT`, `POST_TEST_TRAFFIC_SHIFT`;
//! 6. per production traffic step (blue/green: one of 100%; canary: the canary percent, its
//!    bake, then 100%; linear: a step percent at a time, a step bake between steps):
//!    `PRE_PRODUCTION_TRAFFIC_SHIFT` (a hook stage only; the deployment reports
//!    `PRODUCTION_TRAFFIC_SHIFT`, as the stage enum has no `PRE_` member), then the shift;
//! 7. `POST_PRODUCTION_TRAFFIC_SHIFT`, then `BAKE_TIME` for `bakeTimeInMinutes`;
//! 8. `CLEAN_UP`, then `SUCCESSFUL`.
//!
//! At a stage with a `PAUSE` hook the deployment first waits with a fresh hook id
//! (`AWAITING_ACTION`, expiring after the hook timeout, whose action is `ROLLBACK`).
//! A rollback (`ContinueServiceDeployment` with `ROLLBACK`, a hook timeout,
//! `StopServiceDeployment`, the circuit breaker, a deployment alarm in `ALARM`) is
//! `ROLLBACK_IN_PROGRESS` for [`SERVICE_ROLLBACK_DURATION`], then `ROLLBACK_SUCCESSFUL` with
//! the service back on the last successful revision. A new `UpdateService` while a
//! deployment is in flight stops that one (`STOPPED`) and starts its own.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::ports::{
    AdvancedLoadBalancer, AlarmState, AwsError, AwsErrorKind, DeploymentControllerType,
    EcsDeploymentStrategy, EcsDeploymentView, HookAction, LifecycleHookDetail, LoadBalancerBinding,
    Service, ServiceDeployment, ServiceDeploymentStatus, ServiceRevision, TaskDefinition,
    TrafficSteps, UpdateServiceRequest,
};

use super::SimAws;
use super::ecs::requested_cluster;
use super::world::{
    CircuitBreaker, PlannedStage, ServicePhase, SimDeploymentConfiguration, SimEcsLoadBalancer,
    SimEcsService, SimHook, SimService, SimServiceDeployment, SimServiceRevision, StageWork, World,
};

const SERVICE: &str = "ecs";

/// From `UpdateService` until the deployment is `IN_PROGRESS`.
pub const SERVICE_DEPLOYMENT_START: Duration = Duration::from_secs(1);
/// Duration of each stage that only passes (hook stages, test traffic, a traffic shift,
/// clean-up).
pub const STAGE_DURATION: Duration = Duration::from_secs(1);
/// During `SCALE_UP`, one more target task runs (or fails to) every this long.
pub const SERVICE_TASK_START_INTERVAL: Duration = Duration::from_secs(5);
/// How long a rollback takes.
pub const SERVICE_ROLLBACK_DURATION: Duration = Duration::from_secs(5);
/// From an accepted `StopServiceDeployment` (`ROLLBACK_REQUESTED`) until the rollback starts.
pub const SERVICE_STOP_DELAY: Duration = Duration::from_secs(1);
/// A `PAUSE` hook's timeout when the configuration names none (ECS's default, 24 hours).
pub const DEFAULT_HOOK_TIMEOUT_MINUTES: u32 = 1440;
/// AWS's limit on ARNs per `DescribeServiceDeployments` and `DescribeServiceRevisions` call.
pub const DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT: usize = 20;

/// `statusReason` and rollback reason of a deployment the circuit breaker failed.
pub const CIRCUIT_BREAKER_REASON: &str =
    "ECS deployment circuit breaker: tasks failed to start and the failure threshold was reached.";

/// The lifecycle stages a `PAUSE` hook may name (the hook stage enum, less the two where ECS
/// allows Lambda hooks only).
pub const PAUSE_HOOK_STAGES: [&str; 6] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// Everything needed to set up one service with the ECS deployment controller: its first
/// task definition revision, a load balancer entry (target group A, with B as the alternate
/// and production and test listener rules for blue/green, linear and canary), and its
/// deployment configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsServiceSetup {
    /// The ECS cluster name.
    pub cluster: String,
    /// The ECS service name.
    pub service: String,
    /// The task definition family.
    pub family: String,
    /// The container that receives load balancer traffic (the only container).
    pub container_name: String,
    /// Its port.
    pub container_port: u16,
    /// The container image of the first revision.
    pub image: String,
    /// The service's desired task count.
    pub desired_count: u32,
    /// `deploymentConfiguration.strategy`.
    pub strategy: EcsDeploymentStrategy,
    /// `bakeTimeInMinutes`.
    pub bake_time_minutes: Option<u32>,
    /// `canaryConfiguration` (percent, bake minutes).
    pub canary: Option<(f64, u32)>,
    /// `linearConfiguration` (step percent, step bake minutes).
    pub linear: Option<(f64, u32)>,
    /// Lifecycle stages with a `PAUSE` hook.
    pub pause_at: Vec<String>,
    /// The `PAUSE` hooks' timeout in minutes (their timeout action is `ROLLBACK`).
    pub hook_timeout_minutes: u32,
    /// The deployment circuit breaker, if on.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Deployment alarms (they roll back).
    pub alarms: Vec<String>,
    /// Whether the service has a load balancer entry at all.
    pub load_balanced: bool,
    /// Whether its load balancer entry has the advanced configuration (alternate target
    /// group, listener rules, role) that blue/green, linear and canary need.
    pub advanced_load_balancer: bool,
}

impl EcsServiceSetup {
    /// A service of `strategy` with sane defaults: family and container named after the
    /// service, port 8080, image `111122223333.dkr.ecr.us-east-1.amazonaws.com/<service>:1.0.0`,
    /// 2 tasks, a load balancer entry; rolling with the circuit breaker (with rollback);
    /// blue/green, linear and canary with the advanced load balancer configuration and a
    /// 5-minute bake (canary 10% for 5 minutes, linear 25% steps of 1 minute). No hooks, no
    /// alarms.
    pub fn new(cluster: &str, service: &str, strategy: EcsDeploymentStrategy) -> Self {
        let rolling = strategy == EcsDeploymentStrategy::Rolling;
        Self {
            cluster: cluster.to_string(),
            service: service.to_string(),
            family: service.to_string(),
            container_name: service.to_string(),
            container_port: 8080,
            image: format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{service}:1.0.0"),
            desired_count: 2,
            strategy,
            bake_time_minutes: (!rolling).then_some(5),
            canary: (strategy == EcsDeploymentStrategy::Canary).then_some((10.0, 5)),
            linear: (strategy == EcsDeploymentStrategy::Linear).then_some((25.0, 1)),
            pause_at: Vec::new(),
            hook_timeout_minutes: DEFAULT_HOOK_TIMEOUT_MINUTES,
            circuit_breaker: rolling.then_some(CircuitBreaker { rollback: true }),
            alarms: Vec::new(),
            load_balanced: true,
            advanced_load_balancer: !rolling,
        }
    }

    /// The same, with `PAUSE` hooks at these stages.
    pub fn pausing_at(mut self, stages: &[&str]) -> Self {
        self.pause_at = stages.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// What `add_ecs_service` created.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsServiceHandles {
    /// `arn:aws:ecs:us-east-1:111122223333:service/<cluster>/<service>`.
    pub service_arn: String,
    /// The first registered revision, running when the service is created.
    pub task_definition: TaskDefinition,
    /// Target groups A (`<service>-tg-a`, the service's entry) and B (the alternate).
    pub target_group_arns: [String; 2],
    /// Load balancer settings that fit this service (alternate target group B, the
    /// production and test listener rules, the ECS infrastructure role): what a document's
    /// `deployment.loadBalancer` would name.
    pub load_balancer: AdvancedLoadBalancer,
    /// The deployment ECS made when it created the service (`SUCCESSFUL`).
    pub initial_deployment: String,
}

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at + SignedDuration::try_from(duration).expect("step durations fit a SignedDuration")
}

fn after_minutes(at: Timestamp, minutes: u32) -> Timestamp {
    at + SignedDuration::from_mins(i64::from(minutes))
}

fn error(operation: &'static str, kind: AwsErrorKind, code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message).with_code(code)
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    error(
        operation,
        AwsErrorKind::InvalidRequest,
        "InvalidParameterException",
        message,
    )
}

fn strategy_name(strategy: EcsDeploymentStrategy) -> &'static str {
    match strategy {
        EcsDeploymentStrategy::Rolling => "ROLLING",
        EcsDeploymentStrategy::BlueGreen => "BLUE_GREEN",
        EcsDeploymentStrategy::Linear => "LINEAR",
        EcsDeploymentStrategy::Canary => "CANARY",
    }
}

/// A percent in tenths (ECS takes multiples of 0.1), if it is one.
fn tenths(percent: f64) -> Option<u32> {
    let scaled = percent * 10.0;
    let rounded = scaled.round();
    ((scaled - rounded).abs() < 1e-6 && (0.0..=1000.0).contains(&rounded)).then_some(rounded as u32)
}

impl SimDeploymentConfiguration {
    /// The stages a deployment under this configuration goes through (module docs).
    fn plan(&self) -> Vec<PlannedStage> {
        fn stage(
            lifecycle_stage: &'static str,
            hook_stage: Option<&'static str>,
            work: StageWork,
        ) -> PlannedStage {
            PlannedStage {
                lifecycle_stage,
                hook_stage,
                work,
            }
        }
        let mut plan = vec![
            stage("PRE_SCALE_UP", Some("PRE_SCALE_UP"), StageWork::Pass),
            stage("SCALE_UP", None, StageWork::ScaleUp),
            stage("POST_SCALE_UP", Some("POST_SCALE_UP"), StageWork::Pass),
        ];
        if self.strategy != EcsDeploymentStrategy::Rolling {
            plan.push(stage(
                "TEST_TRAFFIC_SHIFT",
                Some("TEST_TRAFFIC_SHIFT"),
                StageWork::Pass,
            ));
            plan.push(stage(
                "POST_TEST_TRAFFIC_SHIFT",
                Some("POST_TEST_TRAFFIC_SHIFT"),
                StageWork::Pass,
            ));
            for (percent, bake) in self.production_steps() {
                plan.push(stage(
                    "PRODUCTION_TRAFFIC_SHIFT",
                    Some("PRE_PRODUCTION_TRAFFIC_SHIFT"),
                    StageWork::Pass,
                ));
                plan.push(stage(
                    "PRODUCTION_TRAFFIC_SHIFT",
                    Some("PRODUCTION_TRAFFIC_SHIFT"),
                    StageWork::Shift(percent),
                ));
                if let Some(minutes) = bake {
                    plan.push(stage(
                        "PRODUCTION_TRAFFIC_SHIFT",
                        None,
                        StageWork::Bake(minutes),
                    ));
                }
            }
            plan.push(stage(
                "POST_PRODUCTION_TRAFFIC_SHIFT",
                Some("POST_PRODUCTION_TRAFFIC_SHIFT"),
                StageWork::Pass,
            ));
            plan.push(stage(
                "BAKE_TIME",
                None,
                StageWork::Bake(self.bake_time_minutes.unwrap_or(0)),
            ));
        }
        plan.push(stage("CLEAN_UP", None, StageWork::Pass));
        plan
    }

    /// Production traffic steps: (percent after the step, bake after it).
    fn production_steps(&self) -> Vec<(f64, Option<u32>)> {
        match self.strategy {
            EcsDeploymentStrategy::Rolling => Vec::new(),
            EcsDeploymentStrategy::BlueGreen => vec![(100.0, None)],
            EcsDeploymentStrategy::Canary => {
                // ECS's defaults: 5% for 10 minutes.
                let (percent, bake) = self.canary.unwrap_or((5.0, 10));
                if percent >= 100.0 {
                    vec![(100.0, None)]
                } else {
                    vec![(percent, Some(bake)), (100.0, None)]
                }
            }
            EcsDeploymentStrategy::Linear => {
                // ECS's defaults: 10% steps, 6 minutes apart.
                let (step, bake) = self.linear.unwrap_or((10.0, 6));
                let step = tenths(step).unwrap_or(100).max(1);
                let mut steps = Vec::new();
                let mut reached = 0;
                while reached < 1000 {
                    reached = (reached + step).min(1000);
                    let bake = (reached < 1000).then_some(bake);
                    steps.push((f64::from(reached) / 10.0, bake));
                }
                steps
            }
        }
    }

    /// The configuration with a document's settings written over it (what the adapter
    /// sends): circuit breaker and alarms kept; the `PAUSE` hooks replaced (with ECS's
    /// default timeout, as the adapter names none).
    fn with_settings(&self, settings: &crate::ports::EcsDeploymentSettings) -> Self {
        Self {
            strategy: settings.strategy,
            bake_time_minutes: settings.bake_time_minutes,
            canary: settings.canary,
            linear: settings.linear,
            pause_at: settings.pause_at.clone(),
            hook_timeout_minutes: DEFAULT_HOOK_TIMEOUT_MINUTES,
            circuit_breaker: self.circuit_breaker,
            alarms: self.alarms.clone(),
        }
    }

    /// ECS's checks of a deployment configuration.
    fn validate(&self, operation: &'static str) -> Result<(), AwsError> {
        let minutes_ok = |m: u32| m <= 1440;
        if let Some(bake) = self.bake_time_minutes
            && !minutes_ok(bake)
        {
            return Err(invalid(
                operation,
                format!("bakeTimeInMinutes must be between 0 and 1440, got {bake}"),
            ));
        }
        match (self.strategy, self.canary) {
            (EcsDeploymentStrategy::Canary, Some((percent, bake))) => {
                if !tenths(percent).is_some_and(|t| (1..=1000).contains(&t)) {
                    return Err(invalid(
                        operation,
                        format!(
                            "canaryPercent must be a multiple of 0.1 from 0.1 to 100, got {percent}"
                        ),
                    ));
                }
                if !minutes_ok(bake) {
                    return Err(invalid(
                        operation,
                        format!("canaryBakeTimeInMinutes must be between 0 and 1440, got {bake}"),
                    ));
                }
            }
            (EcsDeploymentStrategy::Canary, None) | (_, None) => {}
            (other, Some(_)) => {
                return Err(invalid(
                    operation,
                    format!(
                        "canaryConfiguration is only valid with the CANARY strategy, not {}",
                        strategy_name(other)
                    ),
                ));
            }
        }
        match (self.strategy, self.linear) {
            (EcsDeploymentStrategy::Linear, Some((percent, bake))) => {
                if !tenths(percent).is_some_and(|t| (30..=1000).contains(&t)) {
                    return Err(invalid(
                        operation,
                        format!(
                            "stepPercent must be a multiple of 0.1 from 3 to 100, got {percent}"
                        ),
                    ));
                }
                if !minutes_ok(bake) {
                    return Err(invalid(
                        operation,
                        format!("stepBakeTimeInMinutes must be between 0 and 1440, got {bake}"),
                    ));
                }
            }
            (EcsDeploymentStrategy::Linear, None) | (_, None) => {}
            (other, Some(_)) => {
                return Err(invalid(
                    operation,
                    format!(
                        "linearConfiguration is only valid with the LINEAR strategy, not {}",
                        strategy_name(other)
                    ),
                ));
            }
        }
        for stage in &self.pause_at {
            if !PAUSE_HOOK_STAGES.contains(&stage.as_str()) {
                return Err(invalid(
                    operation,
                    format!(
                        "PAUSE hooks cannot be configured at the {stage} stage (valid: {})",
                        PAUSE_HOOK_STAGES.join(", ")
                    ),
                ));
            }
        }
        if !(1..=20160).contains(&self.hook_timeout_minutes) {
            return Err(invalid(
                operation,
                format!(
                    "timeoutInMinutes must be between 1 and 20160, got {}",
                    self.hook_timeout_minutes
                ),
            ));
        }
        Ok(())
    }

    fn view(&self, load_balancers: &[SimEcsLoadBalancer]) -> EcsDeploymentView {
        EcsDeploymentView {
            strategy: Some(strategy_name(self.strategy).to_string()),
            bake_time_minutes: self.bake_time_minutes,
            traffic_steps: match self.strategy {
                EcsDeploymentStrategy::Canary => self
                    .canary
                    .map(|(percent, bake)| TrafficSteps::canary(percent, bake)),
                EcsDeploymentStrategy::Linear => self
                    .linear
                    .map(|(step, bake)| TrafficSteps::linear(step, bake)),
                _ => None,
            },
            pause_hook_stages: self.pause_at.clone(),
            circuit_breaker: self.circuit_breaker.is_some(),
            load_balancers_have_advanced_configuration: !load_balancers.is_empty()
                && load_balancers.iter().all(|lb| lb.advanced.is_some()),
        }
    }
}

/// ECS's check that a load balancer setup fits a strategy: blue/green, linear and canary
/// need every load balancer entry to carry the advanced configuration.
fn validate_load_balancers(
    operation: &'static str,
    strategy: EcsDeploymentStrategy,
    load_balancers: &[SimEcsLoadBalancer],
) -> Result<(), AwsError> {
    if strategy == EcsDeploymentStrategy::Rolling {
        return Ok(());
    }
    if load_balancers.is_empty() || load_balancers.iter().any(|lb| lb.advanced.is_none()) {
        return Err(invalid(
            operation,
            format!(
                "The {} deployment strategy requires an advancedConfiguration (alternate \
                 target group, production listener rule, role) on every load balancer of the \
                 service.",
                strategy_name(strategy)
            ),
        ));
    }
    for lb in load_balancers {
        if let Some(advanced) = &lb.advanced
            && advanced.alternate_target_group_arn == lb.binding.target_group_arn
        {
            return Err(invalid(
                operation,
                "The alternate target group must differ from the load balancer's target group."
                    .to_string(),
            ));
        }
    }
    Ok(())
}

impl SimEcsService {
    /// The service as `DescribeServices` shows it.
    pub fn view(&self) -> Service {
        Service {
            cluster: self.cluster.clone(),
            name: self.name.clone(),
            arn: self.arn.clone(),
            status: "ACTIVE".to_string(),
            deployment_controller: DeploymentControllerType::Ecs,
            task_definition: Some(self.task_definition.clone()),
            desired_count: self.desired_count,
            task_sets: Vec::new(),
            load_balancers: self
                .load_balancers
                .iter()
                .map(|lb| lb.binding.clone())
                .collect(),
            network_configuration: self.network_configuration.clone(),
            capacity_provider_strategy: self.capacity_provider_strategy.clone(),
            platform_version: self.platform_version.clone(),
            current_service_deployment: self.current_deployment.clone(),
            ecs_deployment: Some(self.config.view(&self.load_balancers)),
        }
    }
}

impl SimServiceDeployment {
    fn is_in_flight(&self) -> bool {
        !self.status.is_terminal()
    }

    /// In flight and not already rolling back: the circuit breaker and alarms watch it.
    fn is_monitored(&self) -> bool {
        matches!(
            self.status,
            ServiceDeploymentStatus::Pending | ServiceDeploymentStatus::InProgress
        )
    }

    fn monitor_status(&self, enabled: bool, triggered: bool) -> Option<String> {
        Some(
            if !enabled {
                "DISABLED"
            } else if triggered {
                "TRIGGERED"
            } else if self.is_monitored() {
                "MONITORING"
            } else {
                "MONITORING_COMPLETE"
            }
            .to_string(),
        )
    }

    /// The deployment as `DescribeServiceDeployments` shows it.
    pub fn view(&self) -> ServiceDeployment {
        ServiceDeployment {
            arn: self.arn.clone(),
            status: self.status.clone(),
            status_reason: self.status_reason.clone(),
            lifecycle_stage: self.lifecycle_stage.map(str::to_string),
            target_revision_arn: Some(self.target_revision.clone()),
            created_at: Some(self.created_at),
            finished_at: self.finished_at,
            rollback_reason: self.rollback_reason.clone(),
            circuit_breaker_status: self.monitor_status(
                self.config.circuit_breaker.is_some(),
                self.circuit_breaker_triggered,
            ),
            alarms_status: self.monitor_status(
                !self.config.alarms.is_empty(),
                !self.triggered_alarms.is_empty(),
            ),
            triggered_alarms: self.triggered_alarms.clone(),
            hooks: self
                .hooks
                .iter()
                .map(|hook| LifecycleHookDetail {
                    hook_id: hook.hook_id.clone(),
                    target_type: "PAUSE".to_string(),
                    status: hook.status.to_string(),
                    expires_at: Some(hook.expires_at),
                })
                .collect(),
        }
    }

    /// The hook that waits for an answer, if the deployment waits on one.
    fn waiting_hook(&self) -> Option<&SimHook> {
        match self.phase {
            ServicePhase::Hook(_) => self
                .hooks
                .iter()
                .rev()
                .find(|h| h.status == "AWAITING_ACTION"),
            _ => None,
        }
    }

    /// Marks the waiting hook (if any) with `status`.
    fn settle_waiting_hook(&mut self, status: &'static str) {
        if let Some(hook) = self
            .hooks
            .iter_mut()
            .rev()
            .find(|h| h.status == "AWAITING_ACTION")
        {
            hook.status = status;
        }
    }
}

impl World {
    /// The service as `DescribeServices` shows it, whatever its deployment controller.
    pub fn service_view(&self, cluster: &str, name: &str) -> Option<Service> {
        self.service(cluster, name)
            .map(SimService::view)
            .or_else(|| {
                self.ecs_services
                    .get(&(cluster.to_string(), name.to_string()))
                    .map(SimEcsService::view)
            })
    }

    /// Whether the account has this cluster (it has one for each of its services).
    pub fn has_cluster(&self, cluster: &str) -> bool {
        self.services.keys().any(|(c, _)| c == cluster)
            || self.ecs_services.keys().any(|(c, _)| c == cluster)
    }

    fn ecs_service_mut(&mut self, cluster: &str, name: &str) -> Option<&mut SimEcsService> {
        self.ecs_services
            .get_mut(&(cluster.to_string(), name.to_string()))
    }

    fn service_deployment_index(&self, arn: &str) -> Option<usize> {
        self.service_deployments.iter().position(|d| d.arn == arn)
    }

    /// Whether tasks of this task definition never become healthy: named by
    /// `fail_tasks_of_task_definition`, or an image matching `fail_install_for_image`.
    fn is_task_definition_unhealthy(&self, task_definition: &str) -> bool {
        self.unhealthy_task_definitions
            .iter()
            .any(|t| t == task_definition)
            || self
                .find_task_definition(task_definition)
                .is_some_and(|definition| {
                    definition.containers.iter().any(|c| {
                        self.failing_images
                            .iter()
                            .any(|image| c.image.contains(image.as_str()))
                    })
                })
    }

    fn new_service_revision(
        &mut self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> String {
        let id = format!(
            "{:019}",
            u64::from_str_radix(&self.next_hex()[..15], 16).unwrap_or(0)
        );
        let arn = self.scope.service_revision_arn(cluster, service, &id);
        self.service_revisions.push(SimServiceRevision {
            arn: arn.clone(),
            task_definition: task_definition.to_string(),
        });
        arn
    }

    fn revision_task_definition(&self, arn: &str) -> Option<String> {
        self.service_revisions
            .iter()
            .find(|r| r.arn == arn)
            .map(|r| r.task_definition.clone())
    }

    // ----- UpdateService ----------------------------------------------------------------

    /// `UpdateService` on a service with the ECS deployment controller: a new task
    /// definition or deployment configuration makes a revision and a deployment (stopping
    /// the one in flight); an update that changes nothing makes none. `record` keeps the
    /// request for [`SimAws::update_service_requests`] (the port's calls, not foreign ones).
    fn update_ecs_service(
        &mut self,
        request: &UpdateServiceRequest,
        now: Timestamp,
        record: bool,
    ) -> Result<Option<String>, AwsError> {
        const OP: &str = "UpdateService";
        let cluster = requested_cluster(&self.scope, OP, &request.cluster)?
            .unwrap_or_default()
            .to_string();
        if self.service(&cluster, &request.service).is_some() {
            return Err(invalid(
                OP,
                "Unable to update task definition on services with a CODE_DEPLOY deployment \
                 controller. Use AWS CodeDeploy to deploy new task definitions."
                    .to_string(),
            ));
        }
        let key = (cluster.clone(), request.service.clone());
        if !self.ecs_services.contains_key(&key) {
            return Err(if self.has_cluster(&cluster) {
                error(
                    OP,
                    AwsErrorKind::NotFound,
                    "ServiceNotFoundException",
                    "Service not found.".to_string(),
                )
            } else {
                error(
                    OP,
                    AwsErrorKind::NotFound,
                    "ClusterNotFoundException",
                    "Cluster not found.".to_string(),
                )
            });
        }
        let task_definition = self
            .find_task_definition(&request.task_definition)
            .map(|t| t.arn.clone())
            .ok_or_else(|| {
                error(
                    OP,
                    AwsErrorKind::InvalidRequest,
                    "ClientException",
                    "Unable to describe task definition.".to_string(),
                )
            })?;
        let service = &self.ecs_services[&key];
        let mut config = service.config.clone();
        let mut load_balancers = service.load_balancers.clone();
        if let Some(settings) = &request.deployment {
            config = config.with_settings(settings);
            if settings.strategy != EcsDeploymentStrategy::Rolling
                && let Some(advanced) = &settings.load_balancer
            {
                if load_balancers.len() != 1 {
                    return Err(invalid(
                        OP,
                        format!(
                            "loadBalancers: expected the service's one load balancer with an \
                             advancedConfiguration, the service has {}",
                            load_balancers.len()
                        ),
                    ));
                }
                load_balancers[0].advanced = Some(advanced.clone());
            }
        }
        config.validate(OP)?;
        validate_load_balancers(OP, config.strategy, &load_balancers)?;

        let service = self.ecs_services.get_mut(&key).expect("checked above");
        if record {
            service.update_requests.push(request.clone());
        }
        let changed = task_definition != service.task_definition
            || config != service.config
            || load_balancers != service.load_balancers;
        if !changed {
            return Ok(service.current_deployment.clone());
        }
        service.task_definition = task_definition.clone();
        service.config = config.clone();
        service.load_balancers = load_balancers;
        let source_revision = service.stable_revision.clone();

        // ECS runs one deployment per service: a new one stops the one in flight.
        let newer = format!(
            "Service deployment stopped because a newer service deployment of service {} started.",
            request.service
        );
        for deployment in self
            .service_deployments
            .iter_mut()
            .filter(|d| d.cluster == cluster && d.service == request.service && d.is_in_flight())
        {
            deployment.settle_waiting_hook("FAILED");
            deployment.status = ServiceDeploymentStatus::Stopped;
            deployment.status_reason = Some(newer.clone());
            deployment.finished_at = Some(now);
            deployment.phase = ServicePhase::Done;
            deployment.next_at = None;
        }

        let revision = self.new_service_revision(&cluster, &request.service, &task_definition);
        let source_task_definition = self.revision_task_definition(&source_revision);
        let arn = self.start_service_deployment(
            &cluster,
            &request.service,
            source_task_definition,
            revision,
            config,
            now,
        );
        if let Some(started) = self.service_deployments.last_mut() {
            // The port's calls are recorded; anyone else's is foreign.
            started.foreign = !record;
        }
        Ok(Some(arn))
    }

    /// Creates a `PENDING` deployment of `target_revision` and makes it the service's
    /// current one.
    fn start_service_deployment(
        &mut self,
        cluster: &str,
        service: &str,
        source_task_definition: Option<String>,
        target_revision: String,
        config: SimDeploymentConfiguration,
        now: Timestamp,
    ) -> String {
        let target_task_definition = self
            .revision_task_definition(&target_revision)
            .expect("revisions are created before their deployments");
        let never_healthy = self.is_task_definition_unhealthy(&target_task_definition);
        let id = self.next_ecs_token(22);
        let arn = self.scope.service_deployment_arn(cluster, service, &id);
        self.service_deployments.push(SimServiceDeployment {
            arn: arn.clone(),
            cluster: cluster.to_string(),
            service: service.to_string(),
            status: ServiceDeploymentStatus::Pending,
            status_reason: None,
            lifecycle_stage: None,
            target_revision,
            source_task_definition,
            target_task_definition,
            plan: config.plan(),
            config,
            phase: ServicePhase::Pending,
            next_at: Some(after(now, SERVICE_DEPLOYMENT_START)),
            created_at: now,
            started_at: None,
            finished_at: None,
            rollback_reason: None,
            never_healthy,
            running_tasks: 0,
            failed_tasks: 0,
            production_percent: 0.0,
            circuit_breaker_triggered: false,
            triggered_alarms: Vec::new(),
            hooks: Vec::new(),
            hook_answers: Vec::new(),
            stop_calls: 0,
            foreign: false,
        });
        if let Some(svc) = self.ecs_service_mut(cluster, service) {
            svc.current_deployment = Some(arn.clone());
        }
        arn
    }

    // ----- progress over time -------------------------------------------------------------

    /// Moves every in-flight service deployment up to `now`, one transition at a time in
    /// time order (ties in creation order). A deployment alarm in `ALARM` rolls a monitored
    /// deployment back at the time the world was last advanced to: alarm states only change
    /// after the world was advanced, so the state seen now has held since then.
    pub fn advance_service_deployments(&mut self, now: Timestamp) {
        let since = self.service_deployments_advanced_to.unwrap_or(now).min(now);
        loop {
            let alarmed = self
                .service_deployments
                .iter()
                .enumerate()
                .find(|(_, d)| {
                    d.is_monitored() && !self.service_deployment_alarms_in_alarm(d).is_empty()
                })
                .map(|(i, _)| (since, i));
            let due = self
                .service_deployments
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.next_at.filter(|t| *t <= now).map(|t| (t, i)))
                .min();
            match (alarmed, due) {
                (Some((at, i)), due) if due.is_none_or(|(t, _)| at <= t) => {
                    let names =
                        self.service_deployment_alarms_in_alarm(&self.service_deployments[i]);
                    let reason = format!(
                        "Service deployment rolled back because CloudWatch alarms were in ALARM: {}.",
                        names.join(", ")
                    );
                    let d = &mut self.service_deployments[i];
                    d.triggered_alarms = names;
                    self.roll_back_service_deployment(i, at, reason);
                }
                (_, Some((at, i))) => self.step_service_deployment(i, at),
                (_, None) => break,
            }
        }
        self.service_deployments_advanced_to = Some(now);
    }

    /// The deployment's alarms that are in `ALARM` now.
    fn service_deployment_alarms_in_alarm(&self, deployment: &SimServiceDeployment) -> Vec<String> {
        deployment
            .config
            .alarms
            .iter()
            .filter(|name| {
                self.alarms
                    .get(name.as_str())
                    .is_some_and(|a| a.state == AlarmState::Alarm)
            })
            .cloned()
            .collect()
    }

    /// Performs the transition of deployment `i` that is due at `at`.
    fn step_service_deployment(&mut self, i: usize, at: Timestamp) {
        match self.service_deployments[i].phase {
            ServicePhase::Pending => {
                let d = &mut self.service_deployments[i];
                d.status = ServiceDeploymentStatus::InProgress;
                d.started_at = Some(at);
                self.enter_service_stage(i, 0, at);
            }
            ServicePhase::Hook(index) => {
                // The hook timed out; its timeout action is ROLLBACK.
                let d = &mut self.service_deployments[i];
                let hook_id = d
                    .waiting_hook()
                    .map(|h| h.hook_id.clone())
                    .unwrap_or_default();
                let action = d
                    .waiting_hook()
                    .map_or(HookAction::Rollback, |h| h.timeout_action);
                d.settle_waiting_hook("TIMED_OUT");
                match action {
                    HookAction::Continue => self.begin_service_stage_work(i, index, at),
                    HookAction::Rollback => self.roll_back_service_deployment(
                        i,
                        at,
                        format!(
                            "Service deployment rolled back because lifecycle hook {hook_id} \
                             timed out."
                        ),
                    ),
                }
            }
            ServicePhase::Working(index) => {
                if self.service_deployments[i].plan[index].work == StageWork::ScaleUp {
                    self.scale_up_service_tick(i, index, at);
                } else {
                    self.finish_service_stage(i, index, at);
                }
            }
            ServicePhase::RollbackRequested => {
                self.roll_back_service_deployment(
                    i,
                    at,
                    "Service deployment rolled back by StopServiceDeployment.".to_string(),
                );
            }
            ServicePhase::RollingBack => {
                let d = &mut self.service_deployments[i];
                d.status = ServiceDeploymentStatus::RollbackSuccessful;
                d.finished_at = Some(at);
                d.phase = ServicePhase::Done;
                d.next_at = None;
                d.production_percent = 0.0;
                let (cluster, service) = (d.cluster.clone(), d.service.clone());
                let source = d.source_task_definition.clone();
                if let (Some(svc), Some(source)) =
                    (self.ecs_service_mut(&cluster, &service), source)
                {
                    svc.task_definition = source.clone();
                    svc.running_task_definition = source;
                }
            }
            ServicePhase::Done => self.service_deployments[i].next_at = None,
        }
    }

    /// Enters planned stage `index`: waits on a `PAUSE` hook first if the configuration has
    /// one there.
    fn enter_service_stage(&mut self, i: usize, index: usize, at: Timestamp) {
        let d = &self.service_deployments[i];
        let stage = &d.plan[index];
        let lifecycle_stage = stage.lifecycle_stage;
        let paused = stage
            .hook_stage
            .filter(|hook_stage| d.config.pause_at.iter().any(|p| p == hook_stage));
        self.service_deployments[i].lifecycle_stage = Some(lifecycle_stage);
        let Some(hook_stage) = paused else {
            self.begin_service_stage_work(i, index, at);
            return;
        };
        let hook_id = format!("ecs-pause-{}", self.next_ecs_token(43));
        let d = &mut self.service_deployments[i];
        let expires_at = after_minutes(at, d.config.hook_timeout_minutes);
        d.hooks.push(SimHook {
            hook_id,
            stage: hook_stage.to_string(),
            status: "AWAITING_ACTION",
            expires_at,
            timeout_action: HookAction::Rollback,
        });
        d.phase = ServicePhase::Hook(index);
        d.next_at = Some(expires_at);
    }

    /// Starts the work of planned stage `index`.
    fn begin_service_stage_work(&mut self, i: usize, index: usize, at: Timestamp) {
        let d = &mut self.service_deployments[i];
        let work = d.plan[index].work;
        d.phase = ServicePhase::Working(index);
        d.lifecycle_stage = Some(d.plan[index].lifecycle_stage);
        d.next_at = match work {
            StageWork::Pass => Some(after(at, STAGE_DURATION)),
            StageWork::Bake(minutes) => Some(after_minutes(at, minutes)),
            StageWork::Shift(percent) => {
                d.production_percent = percent;
                Some(after(at, STAGE_DURATION))
            }
            StageWork::ScaleUp => {
                d.running_tasks = 0;
                // ECS keeps replacing tasks that fail: without a circuit breaker the
                // deployment never ends on its own.
                (!d.never_healthy || d.config.circuit_breaker.is_some())
                    .then(|| after(at, SERVICE_TASK_START_INTERVAL))
            }
        };
        if matches!(work, StageWork::Shift(percent) if percent >= 100.0) {
            self.serve_service_target(i);
        }
    }

    /// The deployment's target task definition now serves all production traffic.
    fn serve_service_target(&mut self, i: usize) {
        let d = &self.service_deployments[i];
        let key = (d.cluster.clone(), d.service.clone());
        let target = d.target_task_definition.clone();
        if let Some(service) = self.ecs_services.get_mut(&key) {
            service.running_task_definition = target;
        }
    }

    /// One more target task started (or failed to) during `SCALE_UP`.
    fn scale_up_service_tick(&mut self, i: usize, index: usize, at: Timestamp) {
        let desired = {
            let d = &self.service_deployments[i];
            self.ecs_services
                .get(&(d.cluster.clone(), d.service.clone()))
                .map_or(1, |s| s.desired_count)
        };
        let d = &mut self.service_deployments[i];
        if d.never_healthy {
            d.failed_tasks += 1;
            let threshold = desired.div_ceil(2).clamp(3, 200);
            match d.config.circuit_breaker {
                Some(breaker) if d.failed_tasks >= threshold => {
                    d.circuit_breaker_triggered = true;
                    if breaker.rollback {
                        self.roll_back_service_deployment(
                            i,
                            at,
                            CIRCUIT_BREAKER_REASON.to_string(),
                        );
                    } else {
                        d.status = ServiceDeploymentStatus::Stopped;
                        d.status_reason = Some(CIRCUIT_BREAKER_REASON.to_string());
                        d.finished_at = Some(at);
                        d.phase = ServicePhase::Done;
                        d.next_at = None;
                    }
                }
                _ => d.next_at = Some(after(at, SERVICE_TASK_START_INTERVAL)),
            }
            return;
        }
        d.running_tasks += 1;
        if d.running_tasks < desired {
            d.next_at = Some(after(at, SERVICE_TASK_START_INTERVAL));
            return;
        }
        if d.config.strategy == EcsDeploymentStrategy::Rolling {
            // A rolling update serves production from the new tasks as they start.
            d.production_percent = 100.0;
            self.serve_service_target(i);
        }
        self.finish_service_stage(i, index, at);
    }

    /// Planned stage `index` is done: the next one, or success.
    fn finish_service_stage(&mut self, i: usize, index: usize, at: Timestamp) {
        if index + 1 < self.service_deployments[i].plan.len() {
            self.enter_service_stage(i, index + 1, at);
            return;
        }
        let d = &mut self.service_deployments[i];
        d.status = ServiceDeploymentStatus::Successful;
        d.finished_at = Some(at);
        d.phase = ServicePhase::Done;
        d.next_at = None;
        d.production_percent = 100.0;
        let (cluster, service) = (d.cluster.clone(), d.service.clone());
        let (revision, target) = (d.target_revision.clone(), d.target_task_definition.clone());
        if let Some(svc) = self.ecs_service_mut(&cluster, &service) {
            svc.stable_revision = revision;
            svc.running_task_definition = target;
        }
    }

    /// Starts rolling deployment `i` back to its source revision.
    fn roll_back_service_deployment(&mut self, i: usize, at: Timestamp, reason: String) {
        let d = &mut self.service_deployments[i];
        d.settle_waiting_hook("FAILED");
        d.status = ServiceDeploymentStatus::RollbackInProgress;
        d.status_reason = Some(reason.clone());
        d.rollback_reason = Some(reason);
        d.phase = ServicePhase::RollingBack;
        d.next_at = Some(after(at, SERVICE_ROLLBACK_DURATION));
    }

    // ----- answers and stops --------------------------------------------------------------

    fn continue_service_deployment(
        &mut self,
        arn: &str,
        hook_id: &str,
        action: HookAction,
        now: Timestamp,
    ) -> Result<(), AwsError> {
        const OP: &str = "ContinueServiceDeployment";
        let i = self.service_deployment_index(arn).ok_or_else(|| {
            error(
                OP,
                AwsErrorKind::NotFound,
                "ServiceDeploymentNotFoundException",
                format!("The service deployment {arn} does not exist."),
            )
        })?;
        let d = &mut self.service_deployments[i];
        let waiting = d.waiting_hook().map(|h| h.hook_id.clone());
        let ServicePhase::Hook(index) = d.phase else {
            return Err(not_awaiting(OP, arn, hook_id, &d.status));
        };
        if d.status != ServiceDeploymentStatus::InProgress || waiting.as_deref() != Some(hook_id) {
            return Err(not_awaiting(OP, arn, hook_id, &d.status));
        }
        d.hook_answers.push((hook_id.to_string(), action));
        match action {
            HookAction::Continue => {
                d.settle_waiting_hook("SUCCEEDED");
                self.begin_service_stage_work(i, index, now);
            }
            HookAction::Rollback => {
                d.settle_waiting_hook("FAILED");
                self.roll_back_service_deployment(
                    i,
                    now,
                    format!(
                        "Service deployment rolled back by ContinueServiceDeployment with \
                         action ROLLBACK on lifecycle hook {hook_id}."
                    ),
                );
            }
        }
        Ok(())
    }

    fn stop_service_deployment(&mut self, arn: &str, now: Timestamp) -> Result<(), AwsError> {
        const OP: &str = "StopServiceDeployment";
        let i = self.service_deployment_index(arn).ok_or_else(|| {
            error(
                OP,
                AwsErrorKind::NotFound,
                "ServiceDeploymentNotFoundException",
                format!("The service deployment {arn} does not exist."),
            )
        })?;
        let d = &mut self.service_deployments[i];
        if !d.is_monitored() {
            return Err(error(
                OP,
                AwsErrorKind::Conflict,
                "ConflictException",
                format!(
                    "The service deployment {arn} cannot be stopped in its current state ({}).",
                    status_name(&d.status)
                ),
            ));
        }
        d.stop_calls += 1;
        d.settle_waiting_hook("FAILED");
        d.status = ServiceDeploymentStatus::RollbackRequested;
        d.phase = ServicePhase::RollbackRequested;
        d.next_at = Some(after(now, SERVICE_STOP_DELAY));
        Ok(())
    }
}

fn status_name(status: &ServiceDeploymentStatus) -> String {
    match status {
        ServiceDeploymentStatus::Pending => "PENDING".to_string(),
        ServiceDeploymentStatus::InProgress => "IN_PROGRESS".to_string(),
        ServiceDeploymentStatus::Successful => "SUCCESSFUL".to_string(),
        ServiceDeploymentStatus::StopRequested => "STOP_REQUESTED".to_string(),
        ServiceDeploymentStatus::Stopped => "STOPPED".to_string(),
        ServiceDeploymentStatus::RollbackRequested => "ROLLBACK_REQUESTED".to_string(),
        ServiceDeploymentStatus::RollbackInProgress => "ROLLBACK_IN_PROGRESS".to_string(),
        ServiceDeploymentStatus::RollbackSuccessful => "ROLLBACK_SUCCESSFUL".to_string(),
        ServiceDeploymentStatus::RollbackFailed => "ROLLBACK_FAILED".to_string(),
        ServiceDeploymentStatus::Other(other) => other.clone(),
    }
}

/// ECS's answer to a hook id that is not the one awaiting action (stale, answered, of a
/// deployment that ended): a `ClientException`, which the adapter classifies as a conflict.
fn not_awaiting(
    operation: &'static str,
    arn: &str,
    hook_id: &str,
    status: &ServiceDeploymentStatus,
) -> AwsError {
    error(
        operation,
        AwsErrorKind::Conflict,
        "ClientException",
        format!(
            "The lifecycle hook {hook_id} of service deployment {arn} is not awaiting action \
             (the deployment is {}).",
            status_name(status)
        ),
    )
}

/// The service a service deployment ARN names (`.../service-deployment/CLUSTER/SERVICE/ID`).
pub fn service_of_deployment_arn(arn: &str) -> Option<&str> {
    let (_, tail) = arn.split_once(":service-deployment/")?;
    let mut parts = tail.split('/');
    let _cluster = parts.next()?;
    parts.next()
}

impl SimAws {
    /// Creates a service with the ECS deployment controller (see [`EcsServiceSetup`]): its
    /// first task definition revision, its first revision and the `SUCCESSFUL` deployment ECS
    /// makes when it creates a service.
    ///
    /// Panics on a setup ECS would refuse, or if the service exists (test setup mistakes).
    pub fn add_ecs_service(&self, setup: EcsServiceSetup) -> EcsServiceHandles {
        assert!(
            !setup.cluster.starts_with("arn:")
                && crate::model::names::cluster_name(&setup.cluster).is_ok(),
            "the simulated account creates a cluster by its cluster name, not {:?}",
            setup.cluster
        );
        self.with_world(|world| {
            let key = (setup.cluster.clone(), setup.service.clone());
            assert!(
                !world.services.contains_key(&key) && !world.ecs_services.contains_key(&key),
                "service {}/{} already exists",
                setup.cluster,
                setup.service
            );
            let now = self.inner.clock.now();
            let task_definition = world.register_revision(
                &setup.family,
                vec![crate::ports::ContainerDefinition {
                    name: setup.container_name.clone(),
                    image: setup.image.clone(),
                    environment: Default::default(),
                    container_ports: vec![setup.container_port],
                    other_fields_digest: "sim-container-defaults".to_string(),
                }],
                "sim-task-defaults",
                Default::default(),
            );
            let [hex_a, hex_b] = [world.next_hex(), world.next_hex()];
            let target_group_arns = [
                world
                    .scope
                    .target_group_arn(&format!("{}-tg-a", setup.service), &hex_a),
                world
                    .scope
                    .target_group_arn(&format!("{}-tg-b", setup.service), &hex_b),
            ];
            let lb_name = format!("{}-alb", setup.service);
            let lb_hex = world.next_hex();
            let production_listener = world.next_hex();
            let test_listener = world.next_hex();
            let [production_rule, test_rule] = [world.next_hex(), world.next_hex()];
            let load_balancer = AdvancedLoadBalancer {
                alternate_target_group_arn: target_group_arns[1].clone(),
                production_listener_rule: world
                    .scope
                    .listener_rule_arn(&lb_name, [&lb_hex, &production_listener, &production_rule]),
                test_listener_rule: Some(
                    world
                        .scope
                        .listener_rule_arn(&lb_name, [&lb_hex, &test_listener, &test_rule]),
                ),
                role_arn: world
                    .scope
                    .role_arn("ecsInfrastructureRoleForLoadBalancers"),
            };
            let load_balancers = if setup.load_balanced {
                vec![SimEcsLoadBalancer {
                    binding: LoadBalancerBinding {
                        target_group_arn: target_group_arns[0].clone(),
                        container_name: setup.container_name.clone(),
                        container_port: setup.container_port,
                    },
                    advanced: setup.advanced_load_balancer.then(|| load_balancer.clone()),
                }]
            } else {
                Vec::new()
            };
            let config = SimDeploymentConfiguration {
                strategy: setup.strategy,
                bake_time_minutes: setup.bake_time_minutes,
                canary: setup.canary,
                linear: setup.linear,
                pause_at: setup.pause_at.clone(),
                hook_timeout_minutes: setup.hook_timeout_minutes,
                circuit_breaker: setup.circuit_breaker,
                alarms: setup.alarms.clone(),
            };
            if let Err(refused) = config.validate("CreateService").and_then(|()| {
                validate_load_balancers("CreateService", setup.strategy, &load_balancers)
            }) {
                panic!("ECS would refuse this service: {refused}");
            }
            let revision =
                world.new_service_revision(&setup.cluster, &setup.service, &task_definition.arn);
            let service_arn = world.scope.service_arn(&setup.cluster, &setup.service);
            world.ecs_services.insert(
                key,
                SimEcsService {
                    cluster: setup.cluster.clone(),
                    name: setup.service.clone(),
                    arn: service_arn.clone(),
                    desired_count: setup.desired_count,
                    task_definition: task_definition.arn.clone(),
                    running_task_definition: task_definition.arn.clone(),
                    stable_revision: revision.clone(),
                    current_deployment: None,
                    load_balancers,
                    network_configuration: None,
                    capacity_provider_strategy: Vec::new(),
                    platform_version: Some("LATEST".to_string()),
                    config: config.clone(),
                    update_requests: Vec::new(),
                },
            );
            let initial_deployment = world.start_service_deployment(
                &setup.cluster,
                &setup.service,
                None,
                revision.clone(),
                config,
                now,
            );
            let d = world.service_deployments.last_mut().expect("just started");
            d.status = ServiceDeploymentStatus::Successful;
            d.started_at = Some(now);
            d.finished_at = Some(now);
            d.phase = ServicePhase::Done;
            d.next_at = None;
            d.running_tasks = setup.desired_count;
            d.production_percent = 100.0;
            EcsServiceHandles {
                service_arn,
                task_definition,
                target_group_arns,
                load_balancer,
                initial_deployment,
            }
        })
    }

    /// `UpdateService` as someone else would send it (the console, a pipeline): not counted
    /// as a call of the port, not recorded with the port's requests. Returns the service
    /// deployment it started (the current one when it changed nothing).
    pub fn update_service_as_someone_else(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        let now = self.inner.clock.now();
        self.with_world(|world| world.update_ecs_service(request, now, false))
    }

    /// Answers the `PAUSE` hook a service deployment waits at with `CONTINUE`, as someone
    /// else would (the console): not counted as a call, not recorded with the port's
    /// answers. Whether a hook was waiting.
    pub fn continue_as_someone_else(&self, deployment_arn: &str) -> bool {
        let now = self.inner.clock.now();
        self.with_world(|world| {
            let Some(i) = world.service_deployment_index(deployment_arn) else {
                return false;
            };
            let d = &mut world.service_deployments[i];
            let ServicePhase::Hook(index) = d.phase else {
                return false;
            };
            if d.waiting_hook().is_none() {
                return false;
            }
            d.settle_waiting_hook("SUCCEEDED");
            world.begin_service_stage_work(i, index, now);
            true
        })
    }

    /// From now on, service deployments of this task definition (its ARN) never get a
    /// healthy task: their `SCALE_UP` fails task after task (see also
    /// [`SimAws::fail_install_for_image`], which service deployments honour too).
    pub fn fail_tasks_of_task_definition(&self, task_definition_arn: &str) {
        self.with_world(|world| {
            world
                .unhealthy_task_definitions
                .push(task_definition_arn.to_string())
        });
    }

    /// The task definition serving production on an ECS-controller service now.
    pub fn running_task_definition(&self, cluster: &str, service: &str) -> Option<String> {
        self.with_world(|world| {
            world
                .ecs_services
                .get(&(cluster.to_string(), service.to_string()))
                .map(|s| s.running_task_definition.clone())
        })
    }

    /// Every service deployment of a service, oldest first.
    pub fn service_deployments_of(&self, cluster: &str, service: &str) -> Vec<ServiceDeployment> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .filter(|d| d.cluster == cluster && d.service == service)
                .map(SimServiceDeployment::view)
                .collect()
        })
    }

    /// A service deployment as `DescribeServiceDeployments` would show it now (not counted).
    pub fn service_deployment(&self, arn: &str) -> Option<ServiceDeployment> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .find(|d| d.arn == arn)
                .map(SimServiceDeployment::view)
        })
    }

    /// The task definition a service deployment deploys.
    pub fn service_deployment_task_definition(&self, arn: &str) -> Option<String> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .find(|d| d.arn == arn)
                .map(|d| d.target_task_definition.clone())
        })
    }

    /// The percent of production traffic a service deployment's target revision serves.
    pub fn production_traffic_percent(&self, arn: &str) -> Option<f64> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .find(|d| d.arn == arn)
                .map(|d| d.production_percent)
        })
    }

    /// Every `UpdateService` request of the port that ECS accepted for a service (those that
    /// changed nothing included; refused ones and foreign ones not), oldest first.
    pub fn update_service_requests(
        &self,
        cluster: &str,
        service: &str,
    ) -> Vec<UpdateServiceRequest> {
        self.with_world(|world| {
            world
                .ecs_services
                .get(&(cluster.to_string(), service.to_string()))
                .map(|s| s.update_requests.clone())
                .unwrap_or_default()
        })
    }

    /// Every accepted `ContinueServiceDeployment` answer to a deployment: (hook id, action).
    pub fn hook_answers(&self, arn: &str) -> Vec<(String, HookAction)> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .find(|d| d.arn == arn)
                .map(|d| d.hook_answers.clone())
                .unwrap_or_default()
        })
    }

    /// The service deployments someone else started (`update_service_as_someone_else`), by
    /// ARN, oldest first.
    pub fn foreign_service_deployments(&self) -> Vec<String> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .filter(|d| d.foreign)
                .map(|d| d.arn.clone())
                .collect()
        })
    }

    /// How many `StopServiceDeployment` calls each service deployment accepted, by ARN.
    pub fn service_deployment_stop_calls(&self) -> std::collections::BTreeMap<String, u32> {
        self.with_world(|world| {
            world
                .service_deployments
                .iter()
                .filter(|d| d.stop_calls > 0)
                .map(|d| (d.arn.clone(), d.stop_calls))
                .collect()
        })
    }

    // ----- the port's operations (`impl Ecs for SimAws` delegates here) ---------------------

    pub(super) async fn sim_update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        self.call(SERVICE, "UpdateService", |world, now| {
            world.update_ecs_service(request, now, true)
        })
        .await
    }

    pub(super) async fn sim_list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListServiceDeployments";
        self.call(SERVICE, OP, |world, _| {
            let cluster = requested_cluster(&world.scope, OP, cluster)?.unwrap_or_default();
            if !world.has_cluster(cluster) {
                return Err(error(
                    OP,
                    AwsErrorKind::NotFound,
                    "ClusterNotFoundException",
                    "Cluster not found.".to_string(),
                ));
            }
            if world.service_view(cluster, service).is_none() {
                return Err(error(
                    OP,
                    AwsErrorKind::NotFound,
                    "ServiceNotFoundException",
                    "Service not found.".to_string(),
                ));
            }
            Ok(world
                .service_deployments
                .iter()
                .rev()
                .filter(|d| d.cluster == cluster && d.service == service)
                .filter(|d| since.is_none_or(|since| d.created_at >= since))
                .map(|d| d.arn.clone())
                .collect())
        })
        .await
    }

    pub(super) async fn sim_describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        const OP: &str = "DescribeServiceDeployments";
        self.call(SERVICE, OP, |world, _| {
            check_batch(OP, arns)?;
            Ok(arns
                .iter()
                .filter_map(|arn| world.service_deployments.iter().find(|d| &d.arn == arn))
                .map(SimServiceDeployment::view)
                .collect())
        })
        .await
    }

    pub(super) async fn sim_describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        const OP: &str = "DescribeServiceRevisions";
        self.call(SERVICE, OP, |world, _| {
            check_batch(OP, arns)?;
            Ok(arns
                .iter()
                .filter_map(|arn| world.service_revisions.iter().find(|r| &r.arn == arn))
                .map(|r| ServiceRevision {
                    arn: r.arn.clone(),
                    task_definition: r.task_definition.clone(),
                })
                .collect())
        })
        .await
    }

    pub(super) async fn sim_continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        self.call(SERVICE, "ContinueServiceDeployment", |world, now| {
            world.continue_service_deployment(deployment_arn, hook_id, action, now)
        })
        .await
    }

    pub(super) async fn sim_stop_service_deployment(
        &self,
        deployment_arn: &str,
    ) -> Result<(), AwsError> {
        self.call(SERVICE, "StopServiceDeployment", |world, now| {
            world.stop_service_deployment(deployment_arn, now)
        })
        .await
    }
}

/// At most [`DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT`] ARNs per describe call, as ECS allows.
fn check_batch(operation: &'static str, arns: &[String]) -> Result<(), AwsError> {
    if arns.len() > DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT {
        return Err(invalid(
            operation,
            format!(
                "You can specify a maximum of {DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT} ARNs, got {}",
                arns.len()
            ),
        ));
    }
    Ok(())
}
