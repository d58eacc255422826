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
    AlarmNotFound,
    AwsError,
    Refused,
    InternalError,
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
    /// An analysis is taking measurements of the candidate.
    Analyzing,
    /// An analysis failed: the rollout rolls back.
    AnalysisFailed,
    /// Too many inconclusive measurements: the rollout waits for a human.
    AnalysisInconclusive,
    /// The CodeDeploy group does not wait in `Ready` long enough for the analysis.
    AnalysisNotGated,
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
            Reason::AlarmNotFound => "AlarmNotFound",
            Reason::AwsError => "AwsError",
            Reason::Refused => "Refused",
            Reason::InternalError => "InternalError",
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
            Reason::Analyzing => "Analyzing",
            Reason::AnalysisFailed => "AnalysisFailed",
            Reason::AnalysisInconclusive => "AnalysisInconclusive",
            Reason::AnalysisNotGated => "AnalysisNotGated",
        }
    }
}

/// The kinds of condition the controller maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionType {
    /// True when the candidate is live and nothing is in flight.
    Ready,
    /// True while a rollout is in flight (or about to start).
    Progressing,
    /// True when the live task definition is not the one the controller deployed, or (task
    /// sets) when production weights were changed by hand during a rollout.
    Drifted,
    /// True while `spec.paused` holds the release: a rollout in flight is held where it is,
    /// nothing new starts.
    Paused,
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

impl TrafficWeights {
    /// Everything on the live version.
    pub const ALL_LIVE: TrafficWeights = TrafficWeights {
        live: 100.0,
        candidate: 0.0,
    };
}

/// How a rollout or an operator request ended, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Succeeded,
    RolledBack,
    Failed,
    /// A newer candidate (or target) replaced it before it finished.
    Superseded,
    /// Nothing to deploy: the candidate was already live.
    AlreadyLive,
    /// An operator request that the controller carried out.
    Promoted,
    Aborted,
    Retried,
    /// An operator request that could not apply (the message says why).
    Declined,
}

impl Outcome {
    /// Whether this outcome ends a rollout (as opposed to recording a request).
    pub fn ends_rollout(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded
                | Outcome::RolledBack
                | Outcome::Failed
                | Outcome::Superseded
                | Outcome::AlreadyLive
        )
    }
}

/// One entry of the bounded history of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The generation of the spec when the entry was written.
    pub generation: u64,
    /// The rollout it is about (see [`Rollout::serial`]).
    #[serde(alias = "attempt")]
    pub rollout: u32,
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

/// The candidate the controller resolved for the spec's task definition: what `from` was
/// resolved to, the fingerprint of the content, and the revision that carries it.
///
/// Resolved again only when `spec.taskDefinition` changes (its digest) or on `retry`, so a
/// revision someone registers meanwhile never turns an unrelated edit into a new rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The digest of the `spec.taskDefinition` it was resolved for.
    pub spec_digest: String,
    /// The revision it is a copy of (the base).
    pub base: String,
    /// The fingerprint of the candidate's content.
    pub fingerprint: String,
    /// The revision with that content: the live one, the base, or one the controller
    /// registered. `None` while a registration is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// When the controller asked ECS to register it (the intent, written before the call):
    /// a pass that finds it without `arn` looks for a revision with the fingerprint first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registering_since: Option<Timestamp>,
}

/// A rollout: one candidate rolled out to one target. Identified by the candidate's
/// fingerprint and the target, never by the spec's generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// 1 for the release's first rollout, one more for each later one (a new candidate or
    /// target, a `retry`, a drift convergence). Marks what the strategy starts in AWS.
    pub serial: u32,
    /// The candidate task definition.
    pub candidate: String,
    pub fingerprint: String,
    /// The strategy's target, normalized (`codeDeploy:APP/GROUP`, ...).
    pub target: String,
    /// The task definition that was live when it started: where a rollback returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// The generation that started it.
    pub generation: u64,
    pub started_at: Timestamp,
    /// The verdict, once it ended (its history entry is written then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

impl Rollout {
    pub fn is_in_flight(&self) -> bool {
        self.outcome.is_none()
    }
}

/// The CodeDeploy strategy's part of the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeDeployStatus {
    /// The lifecycle event the deployment is in (`Install`, `AllowTraffic`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<String>,
    /// Written before CreateDeployment for the rollout; cleared once its deployment is known.
    /// A pass that finds it without a deployment searches the group's deployments created
    /// since then for the rollout's description first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating_since: Option<Timestamp>,
    /// A stop the controller decided: which deployment, why, and whether a call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopRecord>,
}

/// A StopDeployment the controller decided (written before the call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRecord {
    pub deployment_id: String,
    /// Why, for the status message and the history.
    pub reason: String,
    pub requested_at: Timestamp,
    /// A StopDeployment call for it succeeded: never send another. CodeDeploy stops
    /// asynchronously (hooks finish first); the controller follows the stop.
    #[serde(default)]
    pub sent: bool,
    /// The stop makes way for a newer rollout (its outcome is `Superseded`, not `RolledBack`).
    #[serde(default)]
    pub superseded: bool,
}

/// The strategy-specific part of the status, beside the fields every strategy shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StrategyStatus {
    CodeDeploy(CodeDeployStatus),
    TaskSets(super::task_sets::TaskSetsStatus),
    Ecs(super::ecs::EcsStatus),
}

/// The `requestedAt` of the last operator request of each kind the controller handled
/// (carried out, or declined with the reason in the history).
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
///
/// The fields up to `history` are an interface (dashboards, scripts and `watch` read them)
/// and keep their names for every strategy; what only one strategy has goes in `strategy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The generation this status describes.
    pub observed_generation: u64,
    pub phase: Phase,
    /// One line a human can act on.
    pub message: String,
    /// Where the release lives: the region its AWS calls go to (`spec.service.region`, or
    /// the controller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ... and the account (that of `spec.service.roleArn`, or the controller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_task_definition: Option<String>,
    /// The candidate task definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_task_definition: Option<String>,
    /// The strategy's deployment (CodeDeploy deployment, task set, ECS service deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_weights: Option<TrafficWeights>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// What only the release's strategy reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyStatus>,
    /// The analysis of the rollout in flight (a `taskSets` step, an ECS `PAUSE` hook, a
    /// CodeDeploy deployment in `Ready`), or the last one, with its measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisStatus>,

    // The controller's memory: what it decided earlier and must not decide differently later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    /// The rollout in flight, or the last one (with its outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The last mutating call AWS refused, while the controller backs off before asking
    /// again (a spec change or `retry` asks again at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    #[serde(default)]
    pub handled_requests: HandledRequests,
    /// The events recorded and not yet delivered, and how deliveries went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::notifications::NotificationsStatus>,
}

/// A mutating call AWS refused (access denied, an invalid parameter, a missing resource):
/// asking again at once would be refused again, so the controller backs off, per release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// `service:Operation`.
    pub operation: String,
    /// AWS's error code, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    /// When it was refused last.
    pub at: Timestamp,
    /// How many times in a row.
    pub count: u32,
    /// The generation it was refused under: a new one asks again at once.
    pub generation: u64,
}

impl ReleaseStatus {
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// The rollout in flight, if any.
    pub fn rollout_in_flight(&self) -> Option<&Rollout> {
        self.rollout.as_ref().filter(|r| r.is_in_flight())
    }

    pub fn code_deploy(&self) -> Option<&CodeDeployStatus> {
        match &self.strategy {
            Some(StrategyStatus::CodeDeploy(status)) => Some(status),
            _ => None,
        }
    }

    /// Where the rollout in flight stands, in the strategy's own words (CodeDeploy's
    /// lifecycle event, ...), for `watch`, `get` and the demo.
    pub fn stage(&self) -> Option<String> {
        match &self.strategy {
            Some(StrategyStatus::CodeDeploy(status)) => status.lifecycle_event.clone(),
            Some(StrategyStatus::TaskSets(status)) => {
                self.rollout_in_flight().and_then(|_| status.describe())
            }
            Some(StrategyStatus::Ecs(status)) => self.rollout_in_flight().and_then(|_| {
                match (&status.lifecycle_stage, &status.waiting_hook) {
                    (Some(stage), Some(hook)) => {
                        Some(format!("{stage} (PAUSE hook {hook} waits for an answer)"))
                    }
                    (Some(stage), None) => Some(stage.clone()),
                    (None, _) => None,
                }
            }),
            None => None,
        }
    }
}

/// The kinds of operator request stored beside the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// Let the rollout in flight past the gate it waits at (CodeDeploy's `Ready`, ...).
    Promote,
    /// Roll the rollout in flight back.
    Abort,
    /// Roll the candidate out again after it rolled back or failed.
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

/// One operator request: who asked, when, and the spec's generation at the time (for the
/// audit trail). A request applies to the rollout in flight whatever the generation; the
/// controller handles it once (`HandledRequests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorRequest {
    pub generation: u64,
    pub requested_by: String,
    pub requested_at: Timestamp,
    /// `promote --full`: skip every remaining step, not only the current pause.
    #[serde(default, skip_serializing_if = "is_false")]
    pub full: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
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
