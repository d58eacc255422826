//! The pure core: `decide(desired, observed, now) -> Decision`.
//!
//! Nothing in this module awaits, reads a clock or names an AWS SDK type. The shell
//! (`controller`) observes the world, calls [`decide`], applies at most one [`Action`], writes
//! the status, and comes back after [`Decision::requeue_after`].
//!
//! # The CodeDeploy blue/green sequence, as the controller drives it
//!
//! 1. A new generation is accepted (`Pending`). `spec.taskDefinition.from` is resolved to one
//!    revision ARN and recorded in the status, so a revision registered later by someone else
//!    does not change what this generation deploys.
//! 2. The candidate task definition is computed: a copy of that revision with the container
//!    changes. If the live revision already has that content, there is nothing to deploy
//!    (`Healthy`). If the family's latest revision has it, it is reused; otherwise the
//!    controller registers it.
//! 3. The intent to deploy (generation, attempt, candidate) is written to the status, then
//!    CreateDeployment is called with an AppSpec built from the live service and a description
//!    naming release, generation and attempt. After a crash, the intent makes the next pass
//!    search the group's recent deployments for that description before creating anything.
//! 4. CodeDeploy installs the replacement task set, opens test traffic and, when the group's
//!    ready option says STOP_DEPLOYMENT, waits in `Ready`: the controller continues it at once
//!    (`promotion: auto`) or shows `AwaitingPromotion` until a promote request for this
//!    generation arrives (`promotion: manual`).
//! 5. CodeDeploy shifts production traffic per the deployment config. Meanwhile every pass
//!    checks the release's rollback alarms: one in ALARM stops the deployment with rollback.
//!    An abort request does the same.
//! 6. The deployment ends. `Succeeded`: `Healthy`. `Failed` or `Stopped`: `RolledBack` once
//!    traffic is back on the previous task definition, `Failed` otherwise. The attempt is
//!    recorded in the history; a retry request for this generation starts attempt + 1.
//!
//! Policies where AWS leaves a choice:
//! - A newer generation while the controller's deployment of an older one is in flight: the
//!   older one is stopped with rollback (it is no longer wanted), and the newest generation is
//!   deployed once the group is free. Intermediate generations are never deployed.
//! - A deployment the controller did not start is in flight: wait (`Pending`), never fight.
//! - Drift (nothing in flight, live task definition not the one deployed): the `Drifted`
//!   condition and phase `Failed` say so; `onDrift: converge` deploys the desired version again
//!   as a new attempt.
//! - `paused: true`: nothing new starts (no registration, no deployment, no automatic
//!   promotion); a deployment already in flight is still followed and still rolled back on
//!   alarm.

mod appspec;
mod observe;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::Timestamp;

pub use appspec::{AppSpecError, build_appspec};
pub use observe::{ObservationPlan, TaskDefinitionLookups, family_of, plan_observation};

use crate::model::validate::FieldError;
use crate::model::{
    Condition, ConditionStatus, ConditionType, DeploymentIntent, HISTORY_LIMIT, HistoryEntry,
    Outcome, Phase, Promotion, Reason, ReleaseSpec, ReleaseStatus, RequestKind, Requests,
    StopRequest, TrafficWeights,
};
use crate::ports::{
    AlarmState, AwsError, AwsErrorKind, ContainerDefinition, CreateDeploymentRequest, Deployment,
    DeploymentControllerType, DeploymentCreator, DeploymentGroup, DeploymentStatus,
    DeploymentTarget, LifecycleEventStatus, Listener, ReadyAction, Service, TaskDefinition,
    task_definition_short_name,
};

/// The desired side of one release: its validated spec (or why it is invalid), its
/// generation, and the operator requests stored beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRelease {
    pub name: String,
    pub generation: u64,
    pub spec: Result<ReleaseSpec, Vec<FieldError>>,
    pub requests: Requests,
}

/// The result of looking something up.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Lookup<T> {
    /// The shell did not look (the observation plan did not need it).
    #[default]
    NotLookedUp,
    /// It does not exist.
    Missing,
    Found(T),
}

impl<T> Lookup<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// What the shell observed for one release in one pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The status the controller recorded last: its memory.
    pub status: Option<ReleaseStatus>,
    pub service: Lookup<Service>,
    /// The revision `from` resolves to (the recorded one, else the family's latest).
    pub base: Lookup<TaskDefinition>,
    /// The latest ACTIVE revision of the base's family.
    pub family_latest: Lookup<TaskDefinition>,
    /// The content of the live task definition.
    pub live: Lookup<TaskDefinition>,
    pub deployment_group: Lookup<DeploymentGroup>,
    /// Every deployment of the group the shell looked at: the active one, the one the status
    /// tracks, those found for a recorded intent, and rollbacks of ours.
    pub deployments: Vec<Deployment>,
    /// The ECS target of the active deployment.
    pub target: Option<DeploymentTarget>,
    /// The deployment group's production listener.
    pub listener: Option<Listener>,
    /// States of the release's rollback alarms (missing alarms are absent).
    pub alarms: std::collections::BTreeMap<String, AlarmState>,
}

/// The one mutating call a pass may make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Register a copy of `base` with these containers.
    RegisterTaskDefinition {
        base: TaskDefinition,
        containers: Vec<ContainerDefinition>,
    },
    /// Start the deployment; the decision's status already holds the intent.
    CreateDeployment(CreateDeploymentRequest),
    /// Shift production traffic of a `Ready` deployment (ContinueDeployment READY_WAIT).
    ContinueDeployment { deployment_id: String },
    /// Stop a deployment, rolling back.
    StopDeployment { deployment_id: String },
}

impl Action {
    /// A stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::RegisterTaskDefinition { .. } => "RegisterTaskDefinition",
            Action::CreateDeployment(_) => "CreateDeployment",
            Action::ContinueDeployment { .. } => "ContinueDeployment",
            Action::StopDeployment { .. } => "StopDeployment",
        }
    }
}

/// What a pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// At most one mutating call.
    pub action: Option<Action>,
    /// The status to persist (before the action, so an intent is durable first).
    pub status: ReleaseStatus,
    /// When to look again; `None` means only on a change or the periodic resync.
    pub requeue_after: Option<Duration>,
}

/// What an action returned, for [`record_outcome`].
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    Registered(TaskDefinition),
    Created { deployment_id: String },
    Done,
}

/// How soon to look again after a mutation: the world just changed.
pub const AFTER_ACTION: Duration = Duration::from_secs(1);
/// Polling while a deployment can change at any moment (install, test traffic, ready,
/// rollback). Looks are spaced from the start of each pass, so a change waits at most this
/// long to be seen, and the calls of the look that acts come on top: 1.5 s keeps the
/// controller's added latency at a gate within 2 s with calls of up to 100 ms.
pub const POLL_ACTIVE: Duration = Duration::from_millis(1500);
/// Polling while the lifecycle hooks run and nothing waits for the controller (the group
/// shifts traffic as soon as the replacement is ready, and rollback alarms are watched
/// separately): only the status's lifecycle event lags, by at most this much.
pub const POLL_PASSIVE: Duration = Duration::from_secs(5);
/// Polling while waiting for someone else: a promotion (requests also wake the release
/// through the change feed), a foreign deployment.
pub const POLL_WAITING: Duration = Duration::from_secs(15);
/// Polling at most this far apart during a long canary bake or termination wait. Nothing
/// the controller must act on changes there before the predicted step: rollback alarms are
/// watched separately (in one batch for all releases, every 2 s), and promote and abort
/// requests wake the release through the change feed. What is left, a deployment stopped
/// outside switchyard, shows in the status within this long.
pub const POLL_SLOW: Duration = Duration::from_secs(300);
/// Slack after a predicted traffic step, so the step has happened when the pass looks.
pub const STEP_SLACK: Duration = Duration::from_secs(1);
/// Re-checking a release that failed for an environmental reason (a missing service).
pub const POLL_FAILED: Duration = Duration::from_secs(60);

/// The description that marks a deployment as the controller's, for one release, generation
/// and attempt. CodeDeploy has no other place for it and no idempotency token.
pub fn deployment_description(release: &str, generation: u64, attempt: u32) -> String {
    format!("switchyard release={release} generation={generation} attempt={attempt}")
}

/// Parses [`deployment_description`]: `Some((release, generation, attempt))` for ours.
pub fn parse_deployment_description(description: &str) -> Option<(String, u64, u32)> {
    let rest = description.strip_prefix("switchyard release=")?;
    let (release, rest) = rest.split_once(" generation=")?;
    let (generation, attempt) = rest.split_once(" attempt=")?;
    Some((
        release.to_string(),
        generation.parse().ok()?,
        attempt.parse().ok()?,
    ))
}

/// Who a deployment belongs to, from this release's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Ours, for this (generation, attempt).
    Current,
    /// Ours, for an older generation or attempt.
    Older,
    /// CodeDeploy's rollback of one of ours.
    RollbackOfOurs,
    /// Started by someone else (the console, another pipeline, another release).
    Foreign,
}

/// Decides the next step for one release. Pure: same inputs, same decision.
pub fn decide(desired: &DesiredRelease, observed: &Observed, now: Timestamp) -> Decision {
    Pass::new(desired, observed, now).run()
}

/// One evaluation; holds the inputs and the status being built.
struct Pass<'a> {
    desired: &'a DesiredRelease,
    observed: &'a Observed,
    now: Timestamp,
    prev: Option<&'a ReleaseStatus>,
    next: ReleaseStatus,
}

/// What a step concluded: the phase, why, a message, and optionally an action and a requeue.
struct Step {
    phase: Phase,
    reason: Reason,
    message: String,
    action: Option<Action>,
    requeue_after: Option<Duration>,
}

impl Step {
    fn new(phase: Phase, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            phase,
            reason,
            message: message.into(),
            action: None,
            requeue_after: None,
        }
    }

    fn act(mut self, action: Action) -> Self {
        self.action = Some(action);
        self.requeue_after = Some(AFTER_ACTION);
        self
    }

    fn requeue(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after);
        self
    }
}

impl<'a> Pass<'a> {
    fn new(desired: &'a DesiredRelease, observed: &'a Observed, now: Timestamp) -> Self {
        let prev = observed.status.as_ref();
        let mut next = prev.cloned().unwrap_or_default();
        if prev.is_none() || next.observed_generation != desired.generation {
            // A new generation: forget what was decided for the old one, keep the history,
            // the handled requests and any stop in progress.
            next.observed_generation = desired.generation;
            next.resolved_from = None;
            next.desired_task_definition = None;
            next.deployment_id = None;
            next.intent = None;
            next.rollout_started_at = None;
            next.previous_task_definition = None;
            next.lifecycle_event = None;
            next.traffic_weights = None;
            next.attempt = 1;
        }
        if next.attempt == 0 {
            next.attempt = 1;
        }
        Self {
            desired,
            observed,
            now,
            prev,
            next,
        }
    }

    fn run(mut self) -> Decision {
        let step = self.evaluate();
        self.finish(step)
    }

    fn generation(&self) -> u64 {
        self.desired.generation
    }

    fn attempt(&self) -> u32 {
        self.next.attempt
    }

    fn evaluate(&mut self) -> Step {
        let spec = match &self.desired.spec {
            Ok(spec) => spec.clone(),
            Err(errors) => return self.invalid(errors),
        };
        let Some(strategy) = spec.code_deploy().cloned() else {
            return self.invalid(&[FieldError {
                path: "spec.strategy".into(),
                message: "must set exactly one strategy (codeDeploy)".into(),
            }]);
        };

        let service = match &self.observed.service {
            Lookup::Found(service) => service.clone(),
            Lookup::Missing => {
                return Step::new(
                    Phase::Failed,
                    Reason::ServiceNotFound,
                    format!(
                        "ECS service {}/{} not found; create it or fix spec.service",
                        spec.service.cluster, spec.service.name
                    ),
                )
                .requeue(POLL_FAILED);
            }
            Lookup::NotLookedUp => {
                return Step::new(Phase::Pending, Reason::Resolving, "observing the service")
                    .requeue(AFTER_ACTION);
            }
        };
        if service.deployment_controller != DeploymentControllerType::CodeDeploy {
            return Step::new(
                Phase::Failed,
                Reason::WrongDeploymentController,
                format!(
                    "service {}/{} uses the {} deployment controller; the codeDeploy strategy needs CODE_DEPLOY",
                    service.cluster,
                    service.name,
                    service.deployment_controller.as_str()
                ),
            )
            .requeue(POLL_FAILED);
        }
        self.next.live_task_definition = service.live_task_definition().map(str::to_string);

        let group = match &self.observed.deployment_group {
            Lookup::Found(group) => Some(group.clone()),
            Lookup::Missing => {
                return Step::new(
                    Phase::Failed,
                    Reason::DeploymentGroupNotFound,
                    format!(
                        "CodeDeploy deployment group {}/{} not found; create it or fix spec.strategy.codeDeploy",
                        strategy.application, strategy.deployment_group
                    ),
                )
                .requeue(POLL_FAILED);
            }
            Lookup::NotLookedUp => None,
        };

        // 1. Something is in flight in the group: follow ours, stop a superseded one, wait for
        //    anyone else's.
        if let Some(active) = self.active_deployment() {
            return match self.owner(active) {
                Owner::Current => self.follow(&spec, &strategy.promotion, &service, active),
                Owner::Older => self.stop_superseded(active),
                Owner::RollbackOfOurs => self.wait_for_rollback(active),
                Owner::Foreign => self.wait_for_foreign(active),
            };
        }

        // 2. Our deployment for this attempt exists and has ended.
        if let Some(finished) = self.current_deployment().cloned()
            && finished.status.is_terminal()
        {
            self.record_finished(&finished);
        }

        // 3. This attempt already ended (recorded in the history): stay, unless a retry or
        //    drift convergence starts the next attempt.
        if let Some(ended) = self.ended_attempt().cloned() {
            match self.after_ended_attempt(&spec, &ended) {
                Some(step) => return step,
                None => {
                    // A new attempt starts below.
                }
            }
        }

        // 4. Start this attempt, one step per pass.
        self.roll_out(&spec, &strategy, &service, group.as_ref())
    }

    // ----- classification -------------------------------------------------------------

    fn active_deployment(&self) -> Option<&'a Deployment> {
        self.observed
            .deployments
            .iter()
            .find(|d| !d.status.is_terminal())
    }

    fn owner(&self, deployment: &Deployment) -> Owner {
        if deployment.creator == DeploymentCreator::CodeDeployRollback {
            let triggered_by = deployment
                .rollback
                .as_ref()
                .and_then(|r| r.rollback_triggering_deployment_id.as_deref());
            let ours = triggered_by.is_some_and(|id| {
                self.next.deployment_id.as_deref() == Some(id)
                    || self
                        .next
                        .stop_requested
                        .as_ref()
                        .map(|s| s.deployment_id.as_str())
                        == Some(id)
                    || self
                        .observed
                        .deployments
                        .iter()
                        .any(|d| d.id == id && self.ours_key(d).is_some())
            });
            return if ours {
                Owner::RollbackOfOurs
            } else {
                Owner::Foreign
            };
        }
        match self.ours_key(deployment) {
            Some((generation, attempt))
                if generation == self.generation() && attempt == self.attempt() =>
            {
                Owner::Current
            }
            Some(_) => Owner::Older,
            None => Owner::Foreign,
        }
    }

    /// (generation, attempt) when the deployment is this release's.
    fn ours_key(&self, deployment: &Deployment) -> Option<(u64, u32)> {
        let (release, generation, attempt) =
            parse_deployment_description(deployment.description.as_deref()?)?;
        (release == self.desired.name).then_some((generation, attempt))
    }

    /// Our deployment for the current (generation, attempt), newest first.
    fn current_deployment(&self) -> Option<&'a Deployment> {
        let key = (self.generation(), self.attempt());
        self.observed
            .deployments
            .iter()
            .filter(|d| d.creator != DeploymentCreator::CodeDeployRollback)
            .find(|d| self.ours_key(d) == Some(key))
    }

    /// The history entry that ended the current attempt, if it has ended.
    fn ended_attempt(&self) -> Option<&HistoryEntry> {
        self.next.history.iter().find(|h| {
            h.generation == self.generation()
                && h.attempt == self.attempt()
                && matches!(
                    h.outcome,
                    Outcome::Succeeded
                        | Outcome::RolledBack
                        | Outcome::Failed
                        | Outcome::AlreadyLive
                        | Outcome::Superseded
                )
        })
    }

    /// A request of this kind for this generation that the controller has not acted on.
    fn pending_request(&self, kind: RequestKind) -> Option<&'a crate::model::OperatorRequest> {
        let request = self.desired.requests.get(kind)?;
        let handled = self.next.handled_requests.get(kind);
        (request.generation == self.generation() && handled != Some(request.requested_at))
            .then_some(request)
    }

    fn mark_handled(&mut self, kind: RequestKind, outcome: Outcome, message: String) {
        if let Some(request) = self.desired.requests.get(kind).cloned() {
            self.next.handled_requests.set(kind, request.requested_at);
            let entry = HistoryEntry {
                generation: self.generation(),
                attempt: self.attempt(),
                outcome,
                task_definition: self.next.desired_task_definition.clone(),
                deployment_id: self.next.deployment_id.clone(),
                started_at: Some(request.requested_at),
                finished_at: self.now,
                message: format!("{message} (requested by {})", request.requested_by),
            };
            self.push_history(entry);
        }
    }

    fn push_history(&mut self, entry: HistoryEntry) {
        self.next.history.insert(0, entry);
        self.next.history.truncate(HISTORY_LIMIT);
    }

    // ----- steps ----------------------------------------------------------------------

    fn invalid(&mut self, errors: &[FieldError]) -> Step {
        let first = errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the release document is invalid".into());
        let message = if errors.len() > 1 {
            format!("{first} (and {} more)", errors.len() - 1)
        } else {
            first
        };
        self.next.traffic_weights = None;
        self.next.lifecycle_event = None;
        Step::new(Phase::Invalid, Reason::InvalidSpec, message)
    }

    fn follow(
        &mut self,
        spec: &ReleaseSpec,
        promotion: &Promotion,
        service: &Service,
        active: &Deployment,
    ) -> Step {
        let id = active.id.clone();
        self.adopt(active);
        self.next.lifecycle_event = self
            .observed
            .target
            .as_ref()
            .and_then(current_lifecycle_event);
        self.next.traffic_weights = self.traffic_weights(service);

        if self.stop_pending_for(&id) {
            // The stop was decided (and recorded) but the deployment is still active: the
            // call may have failed or never been sent. Send it again; once CodeDeploy has
            // stopped it, this branch is no longer reached.
            return Step::new(
                Phase::Progressing,
                Reason::RollingBack,
                format!("stopping {id} and rolling back"),
            )
            .act(Action::StopDeployment { deployment_id: id });
        }
        if let Some(request) = self.pending_request(RequestKind::Abort) {
            let by = request.requested_by.clone();
            let reason = format!("aborted by {by}");
            self.mark_handled(
                RequestKind::Abort,
                Outcome::Aborted,
                format!("aborted {id}"),
            );
            return self.stop(&id, Reason::Aborted, reason);
        }
        let firing: Vec<&String> = spec
            .rollback_alarms()
            .iter()
            .filter(|name| self.observed.alarms.get(*name) == Some(&AlarmState::Alarm))
            .collect();
        if let Some(first) = firing.first() {
            let reason = format!("alarm {first} is in ALARM");
            return self.stop(&id, Reason::AlarmFired, reason);
        }

        if active.status == DeploymentStatus::Ready {
            let paused = spec.paused;
            match (promotion, self.pending_request(RequestKind::Promote)) {
                (Promotion::Manual, Some(_)) | (Promotion::Auto, _) if !paused => {
                    if *promotion == Promotion::Manual {
                        self.mark_handled(
                            RequestKind::Promote,
                            Outcome::Promoted,
                            format!("promoted {id}"),
                        );
                    }
                    return Step::new(
                        Phase::Progressing,
                        Reason::Promoting,
                        format!("{id} is ready; shifting production traffic"),
                    )
                    .act(Action::ContinueDeployment { deployment_id: id });
                }
                _ => {
                    let message = if paused {
                        format!("{id} is ready; promotion waits until the release is resumed")
                    } else {
                        format!(
                            "{id} is ready with test traffic on the candidate; run `switchyard promote {}` to shift production traffic",
                            self.desired.name
                        )
                    };
                    return Step::new(Phase::AwaitingPromotion, Reason::AwaitingPromotion, message)
                        .requeue(POLL_WAITING);
                }
            }
        }

        let event = self
            .next
            .lifecycle_event
            .clone()
            .unwrap_or_else(|| active.status.as_str().to_string());
        let traffic = self
            .next
            .traffic_weights
            .filter(|t| t.candidate > 0.0)
            .map(|t| {
                format!(
                    ", {:.0}% of production traffic on the candidate",
                    t.candidate
                )
            })
            .unwrap_or_default();
        let message = format!("deployment {id}: {event}{traffic}");
        let poll = self.poll_interval(active);
        Step::new(Phase::Progressing, Reason::DeploymentInProgress, message).requeue(poll)
    }

    /// Records a deployment of the current attempt as the one the status tracks.
    fn adopt(&mut self, deployment: &Deployment) {
        if self.next.deployment_id.as_deref() != Some(deployment.id.as_str()) {
            self.next.deployment_id = Some(deployment.id.clone());
        }
        self.next.intent = None;
        if self.next.rollout_started_at.is_none() {
            self.next.rollout_started_at = deployment.create_time.or(Some(self.now));
        }
        if self.next.previous_task_definition.is_none() {
            self.next.previous_task_definition = self.next.live_task_definition.clone();
        }
    }

    fn stop_pending_for(&self, id: &str) -> bool {
        self.next
            .stop_requested
            .as_ref()
            .is_some_and(|s| s.deployment_id == id)
    }

    fn stop(&mut self, id: &str, reason: Reason, why: String) -> Step {
        self.next.stop_requested = Some(StopRequest {
            deployment_id: id.to_string(),
            reason: why.clone(),
        });
        Step::new(
            Phase::Progressing,
            reason,
            format!("{why}: stopping {id} and rolling back"),
        )
        .act(Action::StopDeployment {
            deployment_id: id.to_string(),
        })
    }

    fn stop_superseded(&mut self, active: &Deployment) -> Step {
        let id = active.id.clone();
        let (generation, attempt) = self.ours_key(active).unwrap_or((0, 0));
        let message = format!(
            "generation {} waits for {id} (generation {generation}) to stop: it is superseded",
            self.generation()
        );
        if self.stop_pending_for(&id) {
            // Still active after the recorded stop: send it again (see `follow`).
            return Step::new(Phase::Pending, Reason::Superseded, message)
                .act(Action::StopDeployment { deployment_id: id });
        }
        self.push_history(HistoryEntry {
            generation,
            attempt,
            outcome: Outcome::Superseded,
            task_definition: None,
            deployment_id: Some(id.clone()),
            started_at: active.create_time,
            finished_at: self.now,
            message: format!("superseded by generation {}", self.generation()),
        });
        self.next.stop_requested = Some(StopRequest {
            deployment_id: id.clone(),
            reason: format!("superseded by generation {}", self.generation()),
        });
        Step::new(Phase::Pending, Reason::Superseded, message)
            .act(Action::StopDeployment { deployment_id: id })
    }

    fn wait_for_rollback(&mut self, active: &Deployment) -> Step {
        let triggered_by = active
            .rollback
            .as_ref()
            .and_then(|r| r.rollback_triggering_deployment_id.clone())
            .unwrap_or_default();
        if self.next.deployment_id.as_deref() == Some(triggered_by.as_str()) {
            let why = self
                .next
                .stop_requested
                .as_ref()
                .filter(|s| s.deployment_id == triggered_by)
                .map(|s| s.reason.clone())
                .unwrap_or_else(|| "the deployment ended".into());
            Step::new(
                Phase::Progressing,
                Reason::RollingBack,
                format!(
                    "{why}: CodeDeploy is rolling {triggered_by} back ({})",
                    active.id
                ),
            )
            .requeue(POLL_ACTIVE)
        } else {
            Step::new(
                Phase::Pending,
                Reason::Superseded,
                format!(
                    "generation {} waits for the rollback of {triggered_by} ({}) to finish",
                    self.generation(),
                    active.id
                ),
            )
            .requeue(POLL_ACTIVE)
        }
    }

    fn wait_for_foreign(&mut self, active: &Deployment) -> Step {
        Step::new(
            Phase::Pending,
            Reason::WaitingForForeignDeployment,
            format!(
                "waiting for deployment {} ({}), not started by switchyard for this release, to finish",
                active.id,
                active.status.as_str()
            ),
        )
        .requeue(POLL_WAITING)
    }

    /// Writes the history entry for a finished deployment of the current attempt, once.
    fn record_finished(&mut self, deployment: &Deployment) {
        if self.ended_attempt().is_some() {
            return;
        }
        self.adopt(deployment);
        let live = self.next.live_task_definition.clone();
        let candidate = self.next.desired_task_definition.clone();
        let (outcome, message) = match deployment.status {
            DeploymentStatus::Succeeded => (
                Outcome::Succeeded,
                format!("deployment {} succeeded", deployment.id),
            ),
            _ => {
                let why = self
                    .next
                    .stop_requested
                    .as_ref()
                    .filter(|s| s.deployment_id == deployment.id)
                    .map(|s| s.reason.clone())
                    .or_else(|| {
                        deployment
                            .error
                            .as_ref()
                            .map(|e| format!("{}: {}", e.code, e.message))
                    })
                    .unwrap_or_else(|| format!("deployment {}", deployment.status.as_str()));
                let back_on_previous = live.is_some() && live != candidate;
                if back_on_previous {
                    (
                        Outcome::RolledBack,
                        format!(
                            "deployment {} {} ({why}); traffic is back on {}",
                            deployment.id,
                            deployment.status.as_str().to_lowercase(),
                            task_definition_short_name(live.as_deref().unwrap_or_default())
                        ),
                    )
                } else {
                    (
                        Outcome::Failed,
                        format!(
                            "deployment {} {} ({why}) and traffic is not back on the previous version; check the service",
                            deployment.id,
                            deployment.status.as_str().to_lowercase()
                        ),
                    )
                }
            }
        };
        let entry = HistoryEntry {
            generation: self.generation(),
            attempt: self.attempt(),
            outcome,
            task_definition: candidate,
            deployment_id: Some(deployment.id.clone()),
            started_at: self.next.rollout_started_at.or(deployment.create_time),
            finished_at: deployment.complete_time.unwrap_or(self.now),
            message,
        };
        self.push_history(entry);
    }

    /// After the current attempt ended: the settled step, or `None` to start a new attempt.
    fn after_ended_attempt(&mut self, spec: &ReleaseSpec, ended: &HistoryEntry) -> Option<Step> {
        self.next.lifecycle_event = None;
        let live = self.next.live_task_definition.clone();
        match ended.outcome {
            Outcome::RolledBack | Outcome::Failed | Outcome::Superseded => {
                if self.pending_request(RequestKind::Retry).is_some() {
                    self.mark_handled(
                        RequestKind::Retry,
                        Outcome::Retried,
                        format!("retrying generation {}", self.generation()),
                    );
                    self.start_next_attempt();
                    return None;
                }
                self.next.traffic_weights = Some(TrafficWeights {
                    live: 100.0,
                    candidate: 0.0,
                });
                let (phase, reason) = if ended.outcome == Outcome::RolledBack {
                    (Phase::RolledBack, Reason::RolledBack)
                } else {
                    (Phase::Failed, Reason::DeploymentFailed)
                };
                let hint = format!(
                    "; fix the cause and apply a new version or run `switchyard retry {}`",
                    self.desired.name
                );
                Some(Step::new(phase, reason, format!("{}{hint}", ended.message)))
            }
            _ => {
                // Succeeded or already live: Healthy unless the live version drifted.
                self.ignore_request(
                    RequestKind::Retry,
                    "nothing to retry: the release is healthy",
                );
                self.next.traffic_weights = Some(TrafficWeights {
                    live: 100.0,
                    candidate: 0.0,
                });
                let desired_td = self.next.desired_task_definition.clone();
                if desired_td.is_some() && live.is_some() && live != desired_td {
                    let message = format!(
                        "drift: the live task definition is {}, not {} that generation {} deployed",
                        task_definition_short_name(live.as_deref().unwrap_or_default()),
                        task_definition_short_name(desired_td.as_deref().unwrap_or_default()),
                        self.generation()
                    );
                    self.set_condition(
                        ConditionType::Drifted,
                        ConditionStatus::True,
                        Reason::Drifted,
                        message.clone(),
                    );
                    if spec.on_drift == crate::model::OnDrift::Converge && !spec.paused {
                        self.start_next_attempt();
                        return None;
                    }
                    return Some(Step::new(
                        Phase::Failed,
                        Reason::Drifted,
                        format!("{message}; set onDrift: converge or apply a new version"),
                    ));
                }
                if self.next.condition(ConditionType::Drifted).is_some() {
                    self.set_condition(
                        ConditionType::Drifted,
                        ConditionStatus::False,
                        Reason::InSync,
                        "the live task definition is the deployed one".into(),
                    );
                }
                let reason = if ended.outcome == Outcome::AlreadyLive {
                    Reason::AlreadyLive
                } else {
                    Reason::DeploymentSucceeded
                };
                Some(Step::new(
                    Phase::Healthy,
                    reason,
                    format!(
                        "{} is live",
                        task_definition_short_name(live.as_deref().unwrap_or("?"))
                    ),
                ))
            }
        }
    }

    fn ignore_request(&mut self, kind: RequestKind, why: &str) {
        if let Some(request) = self.pending_request(kind).cloned() {
            self.next.handled_requests.set(kind, request.requested_at);
            let _ = why;
        }
    }

    fn start_next_attempt(&mut self) {
        self.next.attempt += 1;
        self.next.deployment_id = None;
        self.next.intent = None;
        self.next.rollout_started_at = None;
        self.next.previous_task_definition = None;
        self.next.lifecycle_event = None;
        self.next.traffic_weights = None;
    }

    /// Steps 1 to 3 of the sequence for the current attempt.
    fn roll_out(
        &mut self,
        spec: &ReleaseSpec,
        strategy: &crate::model::CodeDeployStrategy,
        service: &Service,
        group: Option<&DeploymentGroup>,
    ) -> Step {
        // Requests that need a deployment in flight are acknowledged and ignored otherwise.
        self.ignore_request(RequestKind::Abort, "nothing in flight to abort");

        if spec.paused {
            self.next.traffic_weights = None;
            return Step::new(
                Phase::Paused,
                Reason::Paused,
                format!(
                    "paused: generation {} is not deployed until `switchyard resume {}`",
                    self.generation(),
                    self.desired.name
                ),
            );
        }

        // The candidate: recorded for this generation, or computed from the resolved base.
        let candidate_arn = match self.next.desired_task_definition.clone() {
            Some(arn) => arn,
            None => match self.resolve_candidate(spec) {
                Ok(arn) => arn,
                Err(step) => return *step,
            },
        };

        if self.next.live_task_definition.as_deref() == Some(candidate_arn.as_str()) {
            let entry = HistoryEntry {
                generation: self.generation(),
                attempt: self.attempt(),
                outcome: Outcome::AlreadyLive,
                task_definition: Some(candidate_arn.clone()),
                deployment_id: None,
                started_at: None,
                finished_at: self.now,
                message: format!(
                    "{} is already live; nothing to deploy",
                    task_definition_short_name(&candidate_arn)
                ),
            };
            self.push_history(entry);
            self.next.traffic_weights = Some(TrafficWeights {
                live: 100.0,
                candidate: 0.0,
            });
            return Step::new(
                Phase::Healthy,
                Reason::AlreadyLive,
                format!("{} is live", task_definition_short_name(&candidate_arn)),
            );
        }

        let Some(group) = group else {
            return Step::new(
                Phase::Pending,
                Reason::Resolving,
                "looking up the deployment group",
            )
            .requeue(AFTER_ACTION);
        };
        let candidate = match self
            .observed
            .base
            .found()
            .into_iter()
            .chain(self.observed.family_latest.found())
            .chain(self.observed.live.found())
            .find(|t| t.arn == candidate_arn)
        {
            Some(t) => t.clone(),
            None => {
                // The candidate is known by ARN only; the AppSpec needs its containers, so
                // describe it on the next pass.
                return Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    format!(
                        "looking up task definition {}",
                        task_definition_short_name(&candidate_arn)
                    ),
                )
                .requeue(AFTER_ACTION);
            }
        };
        let appspec = match build_appspec(service, &candidate, &group.target_group_names) {
            Ok(appspec) => appspec,
            Err(AppSpecError(message)) => {
                return Step::new(Phase::Failed, Reason::MisconfiguredService, message)
                    .requeue(POLL_FAILED);
            }
        };

        // An intent without a deployment: the observation searched the group's recent
        // deployments for ours and found none, so the earlier call never took effect.
        let request = CreateDeploymentRequest {
            application: strategy.application.clone(),
            deployment_group: strategy.deployment_group.clone(),
            appspec_content: appspec,
            description: deployment_description(
                &self.desired.name,
                self.generation(),
                self.attempt(),
            ),
            deployment_config: strategy.deployment_config.clone(),
        };
        self.next.intent = Some(DeploymentIntent {
            generation: self.generation(),
            attempt: self.attempt(),
            task_definition: candidate_arn.clone(),
            recorded_at: self.now,
        });
        self.next.previous_task_definition = self.next.live_task_definition.clone();
        self.next.rollout_started_at = Some(self.now);
        Step::new(
            Phase::Pending,
            Reason::CreatingDeployment,
            format!(
                "creating a deployment of {} in {}/{}",
                task_definition_short_name(&candidate_arn),
                strategy.application,
                strategy.deployment_group
            ),
        )
        .act(Action::CreateDeployment(request))
    }

    /// Resolves `from`, checks the container changes against it and finds or registers the
    /// candidate. `Ok(arn)` when the candidate exists; `Err(step)` for the step to take.
    fn resolve_candidate(&mut self, spec: &ReleaseSpec) -> Result<String, Box<Step>> {
        let base = match &self.observed.base {
            Lookup::Found(base) => base.clone(),
            Lookup::Missing => {
                return Err(Box::new(self.invalid(&[FieldError {
                    path: "spec.taskDefinition.from".into(),
                    message: format!(
                        "task definition {} not found (no ACTIVE revision)",
                        self.next.resolved_from.as_deref().unwrap_or(&spec.task_definition.from)
                    ),
                }])));
            }
            Lookup::NotLookedUp => {
                return Err(Box::new(
                    Step::new(
                        Phase::Pending,
                        Reason::Resolving,
                        "resolving the task definition",
                    )
                    .requeue(AFTER_ACTION),
                ));
            }
        };
        self.next.resolved_from = Some(base.arn.clone());

        let mut errors = Vec::new();
        for name in spec.task_definition.containers.keys() {
            if base.container(name).is_none() {
                let known: Vec<&str> = base.containers.iter().map(|c| c.name.as_str()).collect();
                errors.push(FieldError {
                    path: format!("spec.taskDefinition.containers.{name}"),
                    message: format!(
                        "task definition {} has no container {name} (it has: {})",
                        base.short_name(),
                        known.join(", ")
                    ),
                });
            }
        }
        if !errors.is_empty() {
            return Err(Box::new(self.invalid(&errors)));
        }

        let containers = compute_candidate_containers(&base, spec);
        let candidate = TaskDefinition {
            arn: String::new(),
            family: base.family.clone(),
            revision: 0,
            status: "ACTIVE".into(),
            containers: containers.clone(),
            other_fields_digest: base.other_fields_digest.clone(),
        };
        let existing = [
            self.observed.live.found(),
            Some(&base),
            self.observed.family_latest.found(),
        ]
        .into_iter()
        .flatten()
        .find(|t| t.has_same_content(&candidate));
        if let Some(existing) = existing {
            self.next.desired_task_definition = Some(existing.arn.clone());
            return Ok(existing.arn.clone());
        }
        Err(Box::new(
            Step::new(
                Phase::Pending,
                Reason::RegisteringTaskDefinition,
                format!(
                    "registering a copy of {} with the new containers",
                    base.short_name()
                ),
            )
            .act(Action::RegisterTaskDefinition { base, containers })
            // The next step (creating the deployment) is ours: no reason to wait.
            .requeue(Duration::ZERO),
        ))
    }

    // ----- derived values -------------------------------------------------------------

    fn traffic_weights(&self, service: &Service) -> Option<TrafficWeights> {
        if let Some(target) = &self.observed.target {
            let original = target
                .task_sets
                .iter()
                .find(|t| t.label.as_deref() == Some("Blue"));
            let replacement = target
                .task_sets
                .iter()
                .find(|t| t.label.as_deref() == Some("Green"));
            if let (Some(original), Some(replacement)) = (original, replacement) {
                return Some(TrafficWeights {
                    live: original.traffic_weight,
                    candidate: replacement.traffic_weight,
                });
            }
        }
        // No target yet: the listener tells how much reaches the primary's target group.
        let listener = self.observed.listener.as_ref()?;
        let primary_tg = service.primary_task_set()?.target_group_arns.first()?;
        let live = listener.percent_to(crate::ports::target_group_name_from_arn(primary_tg))?;
        Some(TrafficWeights {
            live,
            candidate: 100.0 - live,
        })
    }

    /// How soon to look again at an in-flight deployment of ours: often while anything can
    /// change at any moment; during a canary or linear bake, right after the next traffic
    /// step; during the termination wait, when it ends. Rollback alarms need no polling here:
    /// the alarm watcher wakes the release.
    fn poll_interval(&self, active: &Deployment) -> Duration {
        // Until traffic shifts, a group that waits in Ready needs the controller there within
        // 2 s (to continue, or to report AwaitingPromotion); one that continues on its own
        // does not.
        let hooks = match self.observed.deployment_group.found() {
            Some(group) if group.ready_action == ReadyAction::ContinueDeployment => POLL_PASSIVE,
            _ => POLL_ACTIVE,
        };
        let Some(target) = &self.observed.target else {
            return hooks;
        };
        let event = |name: &str| target.lifecycle_events.iter().find(|e| e.name == name);
        let now = self.now;
        let until = |at: Timestamp| crate::clock::elapsed_between(now, at);
        if let Some(allow) =
            event("AllowTraffic").filter(|e| e.status == LifecycleEventStatus::InProgress)
        {
            let step = traffic_step_interval(&active.deployment_config);
            let Some(started) = allow.start_time.filter(|_| !step.is_zero()) else {
                return hooks;
            };
            let elapsed = crate::clock::elapsed_between(started, now);
            let into_step = Duration::from_nanos((elapsed.as_nanos() % step.as_nanos()) as u64);
            return (step - into_step + STEP_SLACK).clamp(POLL_ACTIVE, POLL_SLOW);
        }
        let after =
            event("AfterAllowTraffic").filter(|e| e.status == LifecycleEventStatus::Succeeded);
        if let (Some(after), Some(group)) = (after, self.observed.deployment_group.found()) {
            let wait = Duration::from_secs(u64::from(group.termination_wait_minutes) * 60);
            if let Some(ended) = after.end_time {
                let ends =
                    ended + jiff::SignedDuration::try_from(wait + STEP_SLACK).unwrap_or_default();
                return until(ends).clamp(POLL_ACTIVE, POLL_SLOW);
            }
        }
        hooks
    }

    fn set_condition(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: String,
    ) {
        let previous = self
            .prev
            .and_then(|p| p.condition(kind))
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time);
        let condition = Condition {
            kind,
            status,
            reason,
            message,
            last_transition_time: previous.unwrap_or(self.now),
        };
        match self.next.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(existing) => *existing = condition,
            None => {
                self.next.conditions.push(condition);
                self.next.conditions.sort_by_key(|c| c.kind);
            }
        }
    }

    fn finish(mut self, step: Step) -> Decision {
        let Step {
            phase,
            reason,
            message,
            action,
            requeue_after,
        } = step;
        self.next.phase = phase;
        self.next.message = message.clone();
        let (ready, progressing) = match phase {
            Phase::Healthy => (ConditionStatus::True, ConditionStatus::False),
            Phase::Pending | Phase::Progressing | Phase::AwaitingPromotion => {
                (ConditionStatus::False, ConditionStatus::True)
            }
            _ => (ConditionStatus::False, ConditionStatus::False),
        };
        self.set_condition(ConditionType::Ready, ready, reason, message.clone());
        self.set_condition(ConditionType::Progressing, progressing, reason, message);
        if phase != Phase::Progressing && phase != Phase::AwaitingPromotion {
            self.next.lifecycle_event = None;
        }
        if let Some(stop) = &self.next.stop_requested {
            // Forget a stop once its deployment is no longer in flight.
            let still_active = self
                .observed
                .deployments
                .iter()
                .any(|d| d.id == stop.deployment_id && !d.status.is_terminal());
            let rollback_active = self.observed.deployments.iter().any(|d| {
                !d.status.is_terminal()
                    && d.rollback
                        .as_ref()
                        .and_then(|r| r.rollback_triggering_deployment_id.as_deref())
                        == Some(stop.deployment_id.as_str())
            });
            let just_requested = matches!(&action, Some(Action::StopDeployment { deployment_id }) if *deployment_id == stop.deployment_id);
            let observed_any = !self.observed.deployments.is_empty()
                || self.observed.deployment_group.found().is_some();
            if observed_any && !still_active && !rollback_active && !just_requested {
                self.next.stop_requested = None;
            }
        }
        Decision {
            action,
            status: self.next,
            requeue_after,
        }
    }
}

/// The containers of the candidate: the base's, with each change applied (image replaced,
/// environment merged over the copy's).
pub fn compute_candidate_containers(
    base: &TaskDefinition,
    spec: &ReleaseSpec,
) -> Vec<ContainerDefinition> {
    base.containers
        .iter()
        .map(|container| {
            let mut container = container.clone();
            if let Some(change) = spec.task_definition.containers.get(&container.name) {
                if let Some(image) = &change.image {
                    container.image = image.clone();
                }
                for (key, value) in &change.environment {
                    container.environment.insert(key.clone(), value.clone());
                }
            }
            container
        })
        .collect()
}

/// The lifecycle event in progress, else the last one that finished.
pub fn current_lifecycle_event(target: &DeploymentTarget) -> Option<String> {
    target
        .lifecycle_events
        .iter()
        .find(|e| e.status == LifecycleEventStatus::InProgress)
        .or_else(|| {
            target.lifecycle_events.iter().rev().find(|e| {
                matches!(
                    e.status,
                    LifecycleEventStatus::Succeeded | LifecycleEventStatus::Failed
                )
            })
        })
        .map(|e| e.name.clone())
}

/// The time between traffic steps of a deployment config, from its name (predefined configs)
/// or a default for custom ones.
pub fn traffic_step_interval(config: &str) -> Duration {
    let minutes = match config {
        "CodeDeployDefault.ECSCanary10Percent5Minutes" => 5,
        "CodeDeployDefault.ECSCanary10Percent15Minutes" => 15,
        "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" => 1,
        "CodeDeployDefault.ECSLinear10PercentEvery3Minutes" => 3,
        "CodeDeployDefault.ECSAllAtOnce" => 0,
        _ => 1,
    };
    Duration::from_secs(minutes * 60)
}

/// Applies the result of an action to the status the decision wrote, without new
/// observation: the registered task definition, the created deployment id, or the failure.
pub fn record_outcome(
    mut status: ReleaseStatus,
    action: &Action,
    result: &Result<ActionResult, AwsError>,
    now: Timestamp,
) -> ReleaseStatus {
    match (action, result) {
        (Action::RegisterTaskDefinition { .. }, Ok(ActionResult::Registered(registered))) => {
            status.desired_task_definition = Some(registered.arn.clone());
            status.message = format!("registered {}", registered.short_name());
        }
        (Action::CreateDeployment(_), Ok(ActionResult::Created { deployment_id })) => {
            status.deployment_id = Some(deployment_id.clone());
            status.intent = None;
            status.phase = Phase::Progressing;
            status.message = format!("deployment {deployment_id} created");
            for condition in &mut status.conditions {
                if condition.kind == ConditionType::Progressing {
                    condition.reason = Reason::DeploymentInProgress;
                    condition.message = status.message.clone();
                }
            }
        }
        (Action::CreateDeployment(_), Err(error)) => match &error.kind {
            // The call did not take effect: forget the intent. Someone else's deployment
            // is found by the next pass and waited for.
            AwsErrorKind::DeploymentLimitExceeded {
                active_deployment_id,
            } => {
                status.intent = None;
                status.message = format!(
                    "the deployment group already has an active deployment{}; waiting for it",
                    active_deployment_id
                        .as_deref()
                        .map(|id| format!(" ({id})"))
                        .unwrap_or_default()
                );
            }
            AwsErrorKind::Throttling => {
                status.intent = None;
                status.message = "CreateDeployment was throttled; trying again".into();
            }
            // A definite refusal: this attempt failed and needs a human.
            AwsErrorKind::InvalidRequest | AwsErrorKind::NotFound | AwsErrorKind::AccessDenied => {
                status.intent = None;
                status.phase = Phase::Failed;
                status.message = format!("CreateDeployment failed: {error}");
                status.history.insert(
                    0,
                    HistoryEntry {
                        generation: status.observed_generation,
                        attempt: status.attempt,
                        outcome: Outcome::Failed,
                        task_definition: status.desired_task_definition.clone(),
                        deployment_id: None,
                        started_at: status.rollout_started_at,
                        finished_at: now,
                        message: format!("CreateDeployment failed: {error}"),
                    },
                );
                status.history.truncate(HISTORY_LIMIT);
            }
            // It may have taken effect: keep the intent, so the next pass searches first.
            _ => {
                status.message = format!(
                    "CreateDeployment may not have completed ({error}); checking before trying again"
                );
            }
        },
        (Action::StopDeployment { deployment_id }, Err(error))
            if error.kind == AwsErrorKind::Conflict =>
        {
            // Already finished: nothing to stop; the next pass sees how it ended.
            status.message = format!("{deployment_id} had already finished");
        }
        (_, Err(error)) if !error.is_retryable() => {
            status.message = format!("{} failed: {error}", action.as_str());
        }
        _ => {}
    }
    status
}
