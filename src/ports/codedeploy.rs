//! The CodeDeploy port: deployment groups and blue/green deployments of ECS services.

use async_trait::async_trait;
use jiff::Timestamp;

use super::AwsError;

/// A deployment's status as CodeDeploy reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeploymentStatus {
    Created,
    Queued,
    InProgress,
    /// Undocumented; treated as non-terminal.
    Baking,
    /// The replacement is up and waiting for `ContinueDeployment` (ready option STOP_DEPLOYMENT).
    Ready,
    Succeeded,
    Failed,
    Stopped,
    /// A status this version does not know; treated as non-terminal.
    Other(String),
}

impl DeploymentStatus {
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "Created",
            Self::Queued => "Queued",
            Self::InProgress => "InProgress",
            Self::Baking => "Baking",
            Self::Ready => "Ready",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Stopped => "Stopped",
            Self::Other(s) => s,
        }
    }

    /// Parses CodeDeploy's wire name; unknown names are kept as `Other`.
    pub fn parse(s: &str) -> Self {
        match s {
            "Created" => Self::Created,
            "Queued" => Self::Queued,
            "InProgress" => Self::InProgress,
            "Baking" => Self::Baking,
            "Ready" => Self::Ready,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "Stopped" => Self::Stopped,
            other => Self::Other(other.to_string()),
        }
    }

    /// The statuses that count as active for `ListDeployments(includeOnlyStatuses)`.
    pub const ACTIVE: [&'static str; 5] = ["Created", "Queued", "InProgress", "Baking", "Ready"];
}

/// Who started a deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeploymentCreator {
    User,
    CodeDeployRollback,
    Other(String),
}

/// `errorInformation` of a failed or stopped deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentErrorInfo {
    /// `ECS_UPDATE_ERROR`, `ALARM_ACTIVE`, `MANUAL_STOP`, `TIMEOUT`, ...
    pub code: String,
    pub message: String,
}

/// `rollbackInfo` of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollbackInfo {
    /// On the original deployment: the deployment that rolls it back.
    pub rollback_deployment_id: Option<String>,
    /// On a rollback deployment: the deployment it rolls back.
    pub rollback_triggering_deployment_id: Option<String>,
    pub rollback_message: Option<String>,
}

/// A deployment as `GetDeployment` returns it (CodeDeploy never returns the AppSpec).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deployment {
    pub id: String,
    pub application: String,
    pub deployment_group: String,
    pub status: DeploymentStatus,
    pub description: Option<String>,
    pub creator: DeploymentCreator,
    pub deployment_config: String,
    pub create_time: Option<Timestamp>,
    pub complete_time: Option<Timestamp>,
    pub error: Option<DeploymentErrorInfo>,
    pub rollback: Option<RollbackInfo>,
}

/// What CodeDeploy does when the replacement is ready (`deploymentReadyOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadyAction {
    /// Shift traffic as soon as the replacement is ready.
    ContinueDeployment,
    /// Wait in `Ready` for `ContinueDeployment`; stop the deployment after this many minutes.
    StopDeployment { wait_minutes: u32 },
}

/// A deployment group as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentGroup {
    pub application: String,
    pub name: String,
    /// The ECS service it deploys, as (cluster, service).
    pub ecs_service: Option<(String, String)>,
    pub deployment_config: String,
    pub ready_action: ReadyAction,
    /// `terminateBlueInstancesOnDeploymentSuccess.terminationWaitTimeInMinutes`.
    pub termination_wait_minutes: u32,
    /// The two target group names of `targetGroupPairInfoList`.
    pub target_group_names: Vec<String>,
    pub production_listener_arns: Vec<String>,
    pub test_listener_arns: Vec<String>,
}

/// The status of one lifecycle event of an ECS deployment target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LifecycleEventStatus {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    Skipped,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleEvent {
    /// `BeforeInstall`, `Install`, `AfterInstall`, `AllowTestTraffic`, `AfterAllowTestTraffic`,
    /// `BeforeAllowTraffic`, `AllowTraffic`, `AfterAllowTraffic`.
    pub name: String,
    pub status: LifecycleEventStatus,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
}

/// One task set of an ECS deployment target (`taskSetsInfo`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetTaskSet {
    /// The task set id (`identifer` in the API, sic).
    pub identifier: String,
    /// `PRIMARY`, `ACTIVE` or `DRAINING`.
    pub status: String,
    /// Percent of production traffic, 0..=100.
    pub traffic_weight: f64,
    pub desired_count: u32,
    pub pending_count: u32,
    pub running_count: u32,
    pub target_group_name: Option<String>,
    /// `Blue` (the original) or `Green` (the replacement).
    pub label: Option<String>,
}

/// `GetDeploymentTarget` for an ECS target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentTarget {
    pub status: String,
    pub lifecycle_events: Vec<LifecycleEvent>,
    pub task_sets: Vec<TargetTaskSet>,
}

/// Everything `CreateDeployment` needs for an ECS blue/green deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateDeploymentRequest {
    pub application: String,
    pub deployment_group: String,
    /// The AppSpec as a JSON string (`revisionType = AppSpecContent`).
    pub appspec_content: String,
    /// Identifies the release and generation; the only place to mark a deployment as ours.
    pub description: String,
    /// Overrides the group's deployment config when set.
    pub deployment_config: Option<String>,
}

/// Which deployments of a group `list_deployments` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentFilter {
    /// Only the active ones (`Created`, `Queued`, `InProgress`, `Baking`, `Ready`).
    Active,
    /// Every deployment created at or after this time, whatever its status.
    CreatedSince(Timestamp),
}

/// CodeDeploy as the controller uses it.
#[async_trait]
pub trait CodeDeploy: Send + Sync {
    /// A missing application or group is an error of kind `NotFound`.
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError>;

    /// Deployment ids of one group, newest first.
    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError>;

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError>;

    /// The ECS target of a deployment; `target_id` is `<cluster name>:<service name>`. With
    /// the cluster's ARN in place of its name CodeDeploy finds no target (`NotFound`):
    /// normalize with `model::names::cluster_name` first.
    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError>;

    /// Starts a deployment and returns its id. Never retried blindly by an adapter: there is
    /// no idempotency token. A second active deployment for the group fails with kind
    /// `DeploymentLimitExceeded`.
    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError>;

    /// `ContinueDeployment(READY_WAIT)`: shift production traffic now.
    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError>;

    /// `StopDeployment`, rolling back when `rollback` is true.
    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError>;
}
