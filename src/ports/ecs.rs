//! The ECS port: services with their task sets, and task definitions.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::AwsError;

/// Which deployment controller a service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentControllerType {
    Ecs,
    CodeDeploy,
    External,
}

impl DeploymentControllerType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ecs => "ECS",
            Self::CodeDeploy => "CODE_DEPLOY",
            Self::External => "EXTERNAL",
        }
    }
}

/// A task set's role in its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskSetStatus {
    Primary,
    Active,
    Draining,
}

/// Whether a task set has reached its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StabilityStatus {
    SteadyState,
    Stabilizing,
}

/// One task set of a service, as `DescribeServices` returns it inline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSet {
    pub id: String,
    pub arn: String,
    pub status: TaskSetStatus,
    pub task_definition: String,
    /// The CodeDeploy deployment id when CodeDeploy created the task set.
    pub external_id: Option<String>,
    pub started_by: Option<String>,
    pub scale_percent: f64,
    pub computed_desired_count: u32,
    pub pending_count: u32,
    pub running_count: u32,
    pub stability: StabilityStatus,
    pub target_group_arns: Vec<String>,
    /// The task set's load balancer entries: which container and port each target group
    /// sends traffic to.
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancerBinding>,
    /// How its tasks are launched: what a new task set of the service must copy.
    #[serde(default)]
    pub launch: LaunchSettings,
}

/// How a task set's tasks are launched (`CreateTaskSet` takes them; a new task set copies
/// the live one's, so that a release never changes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchSettings {
    /// `FARGATE`, `EC2` or `EXTERNAL`; absent with a capacity provider strategy.
    pub launch_type: Option<String>,
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    pub platform_version: Option<String>,
    pub network_configuration: Option<NetworkConfiguration>,
}

/// What `CreateTaskSet` needs for a candidate task set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTaskSetRequest {
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    /// The candidate target group and the container (and port) that receives its traffic.
    pub load_balancer: LoadBalancerBinding,
    /// Percent (0..=100) of the service's desired count.
    pub scale_percent: f64,
    /// ECS's idempotency token (at most 36 characters): a retried call with the same token
    /// creates no second task set.
    pub client_token: String,
    /// Marks the task set as the rollout's (`externalId`), so it is found again after a crash.
    pub external_id: String,
    pub launch: LaunchSettings,
}

/// A service's load balancer entry: which container and port receive traffic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerBinding {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

/// The awsvpc network configuration of a service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// One entry of a capacity provider strategy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderItem {
    pub capacity_provider: String,
    pub base: u32,
    pub weight: u32,
}

/// A live ECS service as the controller needs to see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub deployment_controller: DeploymentControllerType,
    /// The service-level task definition (for `CODE_DEPLOY` services: the primary task set's).
    pub task_definition: Option<String>,
    pub desired_count: u32,
    pub task_sets: Vec<TaskSet>,
    pub load_balancers: Vec<LoadBalancerBinding>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    pub platform_version: Option<String>,
    /// The service deployment in progress or last finished (`currentServiceDeployment`), for
    /// services with the ECS deployment controller.
    #[serde(default)]
    pub current_service_deployment: Option<String>,
    /// The service's own deployment configuration (ECS deployment controller).
    #[serde(default)]
    pub ecs_deployment: Option<EcsDeploymentView>,
}

/// What a service's `deploymentConfiguration` says of ECS's own deployments.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsDeploymentView {
    /// `ROLLING`, `BLUE_GREEN`, `LINEAR` or `CANARY` (absent: `ROLLING`).
    pub strategy: Option<String>,
    pub bake_time_minutes: Option<u32>,
    /// Linear and canary deployments: how many production traffic steps there are (a
    /// canary's percent, then the rest: 2; linear: one per step percent) and the bake after
    /// each but the last, in minutes (`canaryConfiguration`, `linearConfiguration`).
    #[serde(default)]
    pub traffic_steps: Option<TrafficSteps>,
    /// The lifecycle stages (AWS names, `POST_TEST_TRAFFIC_SHIFT`) where a `PAUSE` hook waits.
    pub pause_hook_stages: Vec<String>,
    /// Whether the deployment circuit breaker is on (rolling updates).
    pub circuit_breaker: bool,
    /// Whether every load balancer of the service has the advanced configuration
    /// (alternate target group, listener rules, role) that blue/green, linear and canary need.
    pub load_balancers_have_advanced_configuration: bool,
}

/// The production traffic steps of a linear or canary deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSteps {
    pub steps: u32,
    pub bake_minutes: u32,
}

impl TrafficSteps {
    /// A canary of `percent` (0.1 to 100), then the rest after `bake_minutes`.
    pub fn canary(percent: f64, bake_minutes: u32) -> Self {
        Self {
            steps: if percent >= 100.0 { 1 } else { 2 },
            bake_minutes,
        }
    }

    /// Steps of `step_percent` (3 to 100) until all traffic moved, `bake_minutes` apart.
    pub fn linear(step_percent: f64, bake_minutes: u32) -> Self {
        let steps = (100.0 / step_percent.max(0.1)).ceil();
        Self {
            steps: if steps.is_finite() && steps >= 1.0 {
                steps.min(1000.0) as u32
            } else {
                1
            },
            bake_minutes,
        }
    }
}

/// ECS's own deployment strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EcsDeploymentStrategy {
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

/// The deployment configuration switchyard sets with `UpdateService` (from the document's
/// `strategy.ecs.deployment`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsDeploymentSettings {
    pub strategy: EcsDeploymentStrategy,
    pub bake_time_minutes: Option<u32>,
    /// `canaryConfiguration`: percent of traffic (0.1..=100), bake minutes.
    pub canary: Option<(f64, u32)>,
    /// `linearConfiguration`: step percent (3..=100), step bake minutes.
    pub linear: Option<(f64, u32)>,
    /// `PAUSE` lifecycle hooks at these stages (AWS names, `POST_TEST_TRAFFIC_SHIFT`).
    pub pause_at: Vec<String>,
    /// The load balancer's advanced configuration (blue/green, linear, canary).
    pub load_balancer: Option<AdvancedLoadBalancer>,
}

/// `loadBalancers[].advancedConfiguration` of an ECS blue/green, linear or canary service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedLoadBalancer {
    pub alternate_target_group_arn: String,
    pub production_listener_rule: String,
    pub test_listener_rule: Option<String>,
    pub role_arn: String,
}

/// `UpdateService` for a service with the ECS deployment controller: the candidate task
/// definition and, when the document carries one, the deployment configuration; nothing
/// else (no forced deployment, no desired count).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceRequest {
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub deployment: Option<EcsDeploymentSettings>,
}

/// The status of an ECS service deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ServiceDeploymentStatus {
    Pending,
    InProgress,
    Successful,
    StopRequested,
    Stopped,
    RollbackRequested,
    RollbackInProgress,
    RollbackSuccessful,
    RollbackFailed,
    /// A status this version does not know; treated as non-terminal.
    Other(String),
}

impl ServiceDeploymentStatus {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Stopped | Self::RollbackSuccessful | Self::RollbackFailed
        )
    }
}

/// One lifecycle hook of a service deployment (`lifecycleHookDetails`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHookDetail {
    /// The id `ContinueServiceDeployment` answers.
    pub hook_id: String,
    /// `PAUSE` or `AWS_LAMBDA`.
    pub target_type: String,
    /// `AWAITING_ACTION`, `IN_PROGRESS`, `SUCCEEDED`, `FAILED` or `TIMED_OUT`.
    pub status: String,
    pub expires_at: Option<jiff::Timestamp>,
}

impl LifecycleHookDetail {
    /// A `PAUSE` hook that waits for `ContinueServiceDeployment`.
    pub fn is_waiting_pause(&self) -> bool {
        self.target_type == "PAUSE" && self.status == "AWAITING_ACTION"
    }
}

/// An ECS service deployment, as `DescribeServiceDeployments` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeployment {
    pub arn: String,
    pub status: ServiceDeploymentStatus,
    pub status_reason: Option<String>,
    /// `SCALE_UP`, `TEST_TRAFFIC_SHIFT`, `BAKE_TIME`, ... (AWS names).
    pub lifecycle_stage: Option<String>,
    /// The service revision it deploys.
    pub target_revision_arn: Option<String>,
    pub created_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    /// Why ECS rolled it back, when it did.
    pub rollback_reason: Option<String>,
    /// The circuit breaker's and the deployment alarms' status (`TRIGGERED`, ...).
    pub circuit_breaker_status: Option<String>,
    pub alarms_status: Option<String>,
    pub triggered_alarms: Vec<String>,
    pub hooks: Vec<LifecycleHookDetail>,
}

/// A service revision: which task definition a service deployment runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRevision {
    pub arn: String,
    pub task_definition: String,
}

/// The answer to a lifecycle hook (`ContinueServiceDeployment`'s `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HookAction {
    Continue,
    Rollback,
}

impl Service {
    /// The task set serving production now, if the service has task sets.
    pub fn primary_task_set(&self) -> Option<&TaskSet> {
        self.task_sets
            .iter()
            .find(|t| t.status == TaskSetStatus::Primary)
    }

    /// The task definition serving production: the primary task set's, else the service's.
    pub fn live_task_definition(&self) -> Option<&str> {
        self.primary_task_set()
            .map(|t| t.task_definition.as_str())
            .or(self.task_definition.as_deref())
    }
}

/// A container of a task definition: the fields a release can change, the port mappings the
/// AppSpec needs, and a digest of everything else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    pub environment: BTreeMap<String, String>,
    pub container_ports: Vec<u16>,
    /// A digest of every other field of the container definition, computed by the adapter:
    /// equal digests mean equal content.
    pub other_fields_digest: String,
}

/// A registered task definition revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    /// The full ARN, `arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION`.
    pub arn: String,
    pub family: String,
    pub revision: u32,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    pub containers: Vec<ContainerDefinition>,
    /// A digest of every registrable task-level field not modelled here (roles, volumes,
    /// cpu, memory, network mode, ...), computed by the adapter.
    pub other_fields_digest: String,
    /// The revision's tags (switchyard marks what it registers).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl TaskDefinition {
    pub fn container(&self, name: &str) -> Option<&ContainerDefinition> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Whether `self` registers exactly the same content as `other` (ARNs aside).
    pub fn has_same_content(&self, other: &TaskDefinition) -> bool {
        self.family == other.family
            && self.other_fields_digest == other.other_fields_digest
            && self.containers == other.containers
    }

    /// `family:revision`, the short name people use.
    pub fn short_name(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }
}

/// The short `family:revision` form of a task definition ARN (or the input if it is not one).
pub fn task_definition_short_name(arn: &str) -> &str {
    arn.rsplit_once("task-definition/")
        .map(|(_, tail)| tail)
        .unwrap_or(arn)
}

/// The error of an operation an implementation of a port does not offer.
fn unsupported(operation: &'static str) -> AwsError {
    AwsError::new(
        "ecs",
        operation,
        super::AwsErrorKind::InvalidRequest,
        format!("{operation} is not offered by this implementation of the ECS port"),
    )
}

/// ECS as the controller uses it.
#[async_trait]
pub trait Ecs: Send + Sync {
    /// Describes up to 10 services of one cluster (AWS's limit), the cluster given by its
    /// name or its ARN (ECS takes either; `Service::cluster` is the name). Services that do
    /// not exist are absent from the result.
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError>;

    /// Describes a task definition, with its tags, by family (its latest ACTIVE revision),
    /// `family:revision` or full ARN. A missing one is an error of kind `NotFound`.
    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError>;

    /// The ARNs of the ACTIVE revisions of exactly `family` (not of other families sharing
    /// its prefix), newest first, at most `limit` of them.
    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError>;

    /// `CreateTaskSet` on an `EXTERNAL` service; returns the new task set.
    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        let _ = request;
        Err(unsupported("CreateTaskSet"))
    }

    /// `UpdateTaskSet`: sets the task set's scale (percent of the service's desired count).
    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        let _ = (cluster, service, task_set_arn, scale_percent);
        Err(unsupported("UpdateTaskSet"))
    }

    /// `UpdateServicePrimaryTaskSet`: makes the task set the service's primary.
    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        let _ = (cluster, service, task_set_arn);
        Err(unsupported("UpdateServicePrimaryTaskSet"))
    }

    /// `DeleteTaskSet`; AWS refuses a task set whose scale is above 0 unless `force`.
    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        let _ = (cluster, service, task_set_arn, force);
        Err(unsupported("DeleteTaskSet"))
    }

    /// `UpdateService` on a service with the ECS deployment controller; returns the service
    /// deployment it started (`currentServiceDeployment` of the answer), when it names one.
    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        let _ = request;
        Err(unsupported("UpdateService"))
    }

    /// `ListServiceDeployments`: the service's deployments created at or after `since`
    /// (all when `None`), newest first, as ARNs.
    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        let _ = (cluster, service, since);
        Err(unsupported("ListServiceDeployments"))
    }

    /// `DescribeServiceDeployments` (at most 20 per call; adapters batch).
    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        let _ = arns;
        Err(unsupported("DescribeServiceDeployments"))
    }

    /// `DescribeServiceRevisions` (at most 20 per call; adapters batch).
    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        let _ = arns;
        Err(unsupported("DescribeServiceRevisions"))
    }

    /// `ContinueServiceDeployment`: answers the lifecycle hook `hook_id` of a deployment.
    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        let _ = (deployment_arn, hook_id, action);
        Err(unsupported("ContinueServiceDeployment"))
    }

    /// `StopServiceDeployment` with rollback.
    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        let _ = deployment_arn;
        Err(unsupported("StopServiceDeployment"))
    }

    /// Registers a new revision of `base`'s family: a copy of every registrable field of
    /// `base` (its tags included), with each container of `containers` (matched by name)
    /// taking its image and environment from there, and `tags` added. Returns the new
    /// revision.
    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError>;

    /// The input [`Ecs::register_task_definition`] would send for the same arguments, as
    /// JSON in ECS's own form (`RegisterTaskDefinition`'s request members, camelCase),
    /// built exactly as the registration builds it and never sent: nothing is registered.
    /// With no containers and no tags, a revision rendered as a registration of itself, so
    /// two renderings compare field by field. Reads the base as the registration does.
    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        let _ = (base, containers, tags);
        Err(unsupported("RegisterTaskDefinition"))
    }
}
