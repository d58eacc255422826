//! The status the controller writes next to each release, and the operator requests stored
//! beside the spec.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a release stands. See `product.md` for the meaning of each.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Phase {
    #[default]
    Pending,
    Progressing,
    AwaitingPromotion,
    Paused,
    Healthy,
    RolledBack,
    Failed,
    Invalid,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Progressing,
        Phase::AwaitingPromotion,
        Phase::Paused,
        Phase::Healthy,
        Phase::RolledBack,
        Phase::Failed,
        Phase::Invalid,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::AwaitingPromotion => "AwaitingPromotion",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::RolledBack => "RolledBack",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
        }
    }

    /// Settled phases: nothing will change without a new spec, a request or outside action.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Phase::Healthy | Phase::RolledBack | Phase::Failed | Phase::Invalid | Phase::Paused
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a condition has its status: one stable vocabulary shared by conditions, logs and
/// metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    InvalidSpec,
    Unresolvable,
    ServiceNotFound,
    WrongDeploymentController,
    DeploymentGroupNotFound,
    MisconfiguredService,
    AwsError,
    Paused,
    Resolving,
    RegisteringTaskDefinition,
    CreatingDeployment,
    WaitingForForeignDeployment,
    Superseded,
    DeploymentInProgress,
    AwaitingPromotion,
    Promoting,
    AlarmFired,
    Aborted,
    RollingBack,
    RolledBack,
    DeploymentFailed,
    DeploymentSucceeded,
    AlreadyLive,
    Drifted,
    InSync,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::InvalidSpec => "InvalidSpec",
            Reason::Unresolvable => "Unresolvable",
            Reason::ServiceNotFound => "ServiceNotFound",
            Reason::WrongDeploymentController => "WrongDeploymentController",
            Reason::DeploymentGroupNotFound => "DeploymentGroupNotFound",
            Reason::MisconfiguredService => "MisconfiguredService",
            Reason::AwsError => "AwsError",
            Reason::Paused => "Paused",
            Reason::Resolving => "Resolving",
            Reason::RegisteringTaskDefinition => "RegisteringTaskDefinition",
            Reason::CreatingDeployment => "CreatingDeployment",
            Reason::WaitingForForeignDeployment => "WaitingForForeignDeployment",
            Reason::Superseded => "Superseded",
            Reason::DeploymentInProgress => "DeploymentInProgress",
            Reason::AwaitingPromotion => "AwaitingPromotion",
            Reason::Promoting => "Promoting",
            Reason::AlarmFired => "AlarmFired",
            Reason::Aborted => "Aborted",
            Reason::RollingBack => "RollingBack",
            Reason::RolledBack => "RolledBack",
            Reason::DeploymentFailed => "DeploymentFailed",
            Reason::DeploymentSucceeded => "DeploymentSucceeded",
            Reason::AlreadyLive => "AlreadyLive",
            Reason::Drifted => "Drifted",
            Reason::InSync => "InSync",
        }
    }
}

/// The kinds of condition the controller maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionType {
    /// True when the live task definition is this generation's and nothing is in flight.
    Ready,
    /// True while this generation is being rolled out (or waiting to be).
    Progressing,
    /// True when the live task definition is not the one the controller deployed.
    Drifted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A Kubernetes-style condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
    pub last_transition_time: Timestamp,
}

/// Live versus candidate share of production traffic, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    pub live: f64,
    pub candidate: f64,
}

impl Eq for TrafficWeights {}

/// How a rollout or an operator request ended, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Succeeded,
    RolledBack,
    Failed,
    /// A newer generation replaced it before it finished.
    Superseded,
    /// Nothing to deploy: the desired task definition was already live.
    AlreadyLive,
    /// An operator request that the controller acted on.
    Promoted,
    Aborted,
    Retried,
}

/// One entry of the bounded history of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub generation: u64,
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub message: String,
}

/// How many history entries a status keeps.
pub const HISTORY_LIMIT: usize = 20;

/// The controller's durable note that it is about to call CreateDeployment for one
/// (generation, attempt). Written before the call; found again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentIntent {
    pub generation: u64,
    pub attempt: u32,
    pub task_definition: String,
    pub recorded_at: Timestamp,
}

/// A stop the controller asked for: which deployment and why (for the status message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRequest {
    pub deployment_id: String,
    pub reason: String,
}

/// The `requestedAt` of the last operator request of each kind the controller acted on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Timestamp>,
}

/// The status of one release, written only by the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The generation this status describes.
    pub observed_generation: u64,
    pub phase: Phase,
    /// One line a human can act on.
    pub message: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_task_definition: Option<String>,
    /// The task definition this generation deploys (registered by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_task_definition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_weights: Option<TrafficWeights>,
    /// The lifecycle event the deployment is in (`Install`, `AllowTraffic`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,

    // The controller's memory: what it decided earlier and must not decide differently later.
    /// The revision `spec.taskDefinition.from` resolved to for `observed_generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
    /// The deployment attempt for `observed_generation`: 1, plus one per `retry` or drift
    /// convergence.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<DeploymentIntent>,
    /// When the current rollout started (for the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Timestamp>,
    /// The live task definition before the current rollout: where a rollback returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_task_definition: Option<String>,
    /// The deployment the controller asked CodeDeploy to stop, and why, so it asks once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested: Option<StopRequest>,
    #[serde(default)]
    pub handled_requests: HandledRequests,
}

impl ReleaseStatus {
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// The kinds of operator request stored beside the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// Shift production traffic of a `Ready` deployment (ContinueDeployment).
    Promote,
    /// Stop the in-flight deployment and roll back.
    Abort,
    /// Deploy this generation again after it rolled back or failed.
    Retry,
}

impl RequestKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestKind::Promote => "promote",
            RequestKind::Abort => "abort",
            RequestKind::Retry => "retry",
        }
    }
}

/// One operator request: which generation it applies to, who asked and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorRequest {
    pub generation: u64,
    pub requested_by: String,
    pub requested_at: Timestamp,
}

/// The latest request of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<OperatorRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<OperatorRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<OperatorRequest>,
}

impl Requests {
    pub fn get(&self, kind: RequestKind) -> Option<&OperatorRequest> {
        match kind {
            RequestKind::Promote => self.promote.as_ref(),
            RequestKind::Abort => self.abort.as_ref(),
            RequestKind::Retry => self.retry.as_ref(),
        }
    }

    pub fn set(&mut self, kind: RequestKind, request: OperatorRequest) {
        match kind {
            RequestKind::Promote => self.promote = Some(request),
            RequestKind::Abort => self.abort = Some(request),
            RequestKind::Retry => self.retry = Some(request),
        }
    }
}

impl HandledRequests {
    pub fn get(&self, kind: RequestKind) -> Option<Timestamp> {
        match kind {
            RequestKind::Promote => self.promote,
            RequestKind::Abort => self.abort,
            RequestKind::Retry => self.retry,
        }
    }

    pub fn set(&mut self, kind: RequestKind, at: Timestamp) {
        match kind {
            RequestKind::Promote => self.promote = Some(at),
            RequestKind::Abort => self.abort = Some(at),
            RequestKind::Retry => self.retry = Some(at),
        }
    }
}
