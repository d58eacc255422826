//! `strategy.ecs`: ECS's own deployments (rolling, blue/green, linear, canary), started and
//! gated by switchyard, one mutating call per pass:
//!
//! 1. **Target.** Before anything is registered: the service uses the `ECS` deployment
//!    controller; a blue/green, linear or canary deployment has the load balancer's advanced
//!    configuration (from the document or the service); manual promotion has a `PAUSE` hook
//!    to wait on (the document's `pauseAt`, or the service's own hooks).
//! 2. **Start.** Nothing else in flight (a service deployment switchyard did not start is
//!    waited for, never stopped): the intent (`updatingSince`) is written, then one
//!    `UpdateService` carries the candidate (and the document's deployment configuration,
//!    when it has one) and nothing else. The service deployment it answers with is the
//!    rollout's. After a crash, the intent makes the next pass adopt the newest deployment
//!    created since it whose target revision runs the candidate, before ever updating again.
//! 3. **Follow** its status and lifecycle stage. A `PAUSE` hook that waits is answered
//!    `CONTINUE` (automatic promotion, or a `promote`), or shows `AwaitingPromotion`;
//!    `paused: true` holds it.
//! 4. **Gate.** An abort or a rollback alarm makes exactly one call: `ROLLBACK` on the hook
//!    that waits, if one does, else `StopServiceDeployment` (rollback). A deployment that
//!    makes no progress (no new stage, no hook waiting) for `progressDeadline` is stopped.
//!    Every answer is recorded before its call and sent once. A newer candidate replaces the
//!    deployment in flight with the next rollout's `UpdateService`, as ECS itself does; an
//!    intent whose deployment is not recorded yet is looked for first, so that the deployment
//!    it started stays known as switchyard's. A next rollout rolled back before it sends its
//!    `UpdateService` rolls that deployment back instead (or it would wait at its hook).
//! 5. **Verdict**, from the service deployment's terminal status: `SUCCESSFUL` is `Healthy`
//!    (ECS's bake time is part of the rollout); `ROLLBACK_SUCCESSFUL` is `RolledBack`, with
//!    ECS's own reason when ECS rolled back (circuit breaker, alarms); `ROLLBACK_FAILED`, or
//!    a deployment replaced by someone else's, is `Failed`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::analysis::AnalysisPhase;
use crate::model::ecs::{EcsAnswer, EcsDeploymentType, EcsStatus, OWN_DEPLOYMENTS_KEPT};
use crate::model::{
    EcsStrategy, Outcome, Phase, Promotion, Reason, ReleaseSpec, ReleaseStatus, Rollout,
    StrategyStatus,
};
use crate::ports::{
    AdvancedLoadBalancer, AwsError, AwsErrorKind, DeploymentControllerType, EcsDeploymentSettings,
    EcsDeploymentStrategy, HookAction, Service, ServiceDeployment, ServiceDeploymentStatus,
    ServiceRevision, UpdateServiceRequest, task_definition_short_name,
};

use super::analysis::{AnalysisGate, AnalysisProgress};
use super::{
    AFTER_ACTION, Gate, POLL_ACTIVE, POLL_FAILED, POLL_PASSIVE, POLL_WAITING, Pass, Progress,
    STEP_SLACK, Step, Verdict, waiting_poll, waiting_until,
};

/// How long an answer or stop whose call's outcome was lost is followed before it is sent
/// again.
pub const ANSWER_UNCONFIRMED_WAIT: Duration = Duration::from_secs(60);
/// The AWS calls of a look at the rollout, for the wait budget: DescribeServices and
/// DescribeServiceDeployments (up to twenty deployments in one call); the alarm states come
/// from the alarm watcher.
const LOOK_CALLS: u32 = 2;
/// How far before a recorded intent to search, for clock skew between host and AWS.
const INTENT_SEARCH_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// What the shell observed of the service's deployments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The rollout's deployment, the service's current one, and (for an intent without a
    /// deployment) those created since the intent.
    pub deployments: Vec<ServiceDeployment>,
    /// The target revisions of those found by the search.
    pub revisions: Vec<ServiceRevision>,
    /// When the search for deployments created since an intent started (if it ran).
    pub searched_since: Option<Timestamp>,
    /// The ARN of the document's alternate target group, when it names it by name.
    pub alternate_target_group: Option<String>,
}

/// The calls a pass may make.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per pass, never stored in bulk: boxing would only add an indirection"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    UpdateService(UpdateServiceRequest),
    Answer {
        deployment: String,
        hook_id: String,
        action: HookAction,
    },
    Stop {
        deployment: String,
    },
}

impl Action {
    pub fn operation(&self) -> &'static str {
        match self {
            Action::UpdateService(_) => "ecs:UpdateService",
            Action::Answer { .. } => "ecs:ContinueServiceDeployment",
            Action::Stop { .. } => "ecs:StopServiceDeployment",
        }
    }
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    /// `UpdateService`: the service deployment it started, when it named one.
    Updated(Option<String>),
    Done,
}

/// What the observation plan asks the shell to look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub deployment_arns: Vec<String>,
    pub search_since: Option<Timestamp>,
}

/// The plan for a release of this strategy, from its status and service.
pub fn plan(status: Option<&ReleaseStatus>, service: &Service) -> Plan {
    let state = status.and_then(ecs_status);
    let mut deployment_arns: Vec<String> = Vec::new();
    if let Some(arn) = state.and_then(|s| s.service_deployment.clone()) {
        deployment_arns.push(arn);
    }
    if let Some(current) = &service.current_service_deployment
        && !deployment_arns.contains(current)
    {
        deployment_arns.push(current.clone());
    }
    let search_since = state
        .filter(|s| s.service_deployment.is_none())
        .and_then(|s| s.updating_since)
        .map(|since| since - INTENT_SEARCH_SLACK);
    Plan {
        deployment_arns,
        search_since,
    }
}

/// Whether ECS is still deploying the service's task definition: the service's current
/// service deployment, as observed, is in flight. ECS sets the service's task definition
/// when `UpdateService` starts a deployment, long before that version serves.
pub fn deploying(observed: &super::Observed) -> bool {
    let Some(current) = observed
        .service
        .found()
        .and_then(|s| s.current_service_deployment.as_ref())
    else {
        return false;
    };
    match &observed.strategy {
        super::StrategyObserved::Ecs(ecs) => ecs
            .deployments
            .iter()
            .any(|d| &d.arn == current && !d.status.is_terminal()),
        _ => false,
    }
}

/// The rollout's target, normalized.
pub fn target_key(spec: &ReleaseSpec, _strategy: &EcsStrategy) -> String {
    format!("ecs:{}", super::service_key(spec))
}

fn ecs_status(status: &ReleaseStatus) -> Option<&EcsStatus> {
    match &status.strategy {
        Some(StrategyStatus::Ecs(status)) => Some(status),
        _ => None,
    }
}

/// The gate of an analysis answering the `PAUSE` hook `hook_id`.
fn hook_gate(hook_id: &str) -> String {
    format!("PAUSE hook {hook_id}")
}

/// The strategy's part of `status`, created when missing.
pub fn status_of(status: &mut ReleaseStatus) -> &mut EcsStatus {
    if !matches!(status.strategy, Some(StrategyStatus::Ecs(_))) {
        status.strategy = Some(StrategyStatus::Ecs(EcsStatus::default()));
    }
    match &mut status.strategy {
        Some(StrategyStatus::Ecs(status)) => status,
        _ => unreachable!("set just above"),
    }
}

/// What a new rollout keeps of the last one's status: which deployments were switchyard's.
pub fn carry_over(previous: &EcsStatus) -> EcsStatus {
    EcsStatus {
        own_deployments: previous.own_deployments.clone(),
        ..EcsStatus::default()
    }
}

/// The deployment type the rollout uses: the document's, else the service's.
fn deployment_type(strategy: &EcsStrategy, service: &Service) -> EcsDeploymentType {
    if let Some(deployment) = &strategy.deployment {
        return deployment.kind;
    }
    match service
        .ecs_deployment
        .as_ref()
        .and_then(|d| d.strategy.as_deref())
    {
        Some("BLUE_GREEN") => EcsDeploymentType::BlueGreen,
        Some("LINEAR") => EcsDeploymentType::Linear,
        Some("CANARY") => EcsDeploymentType::Canary,
        _ => EcsDeploymentType::Rolling,
    }
}

/// Checks the target before anything is registered. `Err` is the step to take instead.
#[allow(clippy::result_large_err)]
pub fn check_target(strategy: &EcsStrategy, service: &Service) -> Result<(), Step> {
    let failed = |reason: Reason, message: String| {
        Err(Step::new(Phase::Failed, reason, message).requeue(POLL_FAILED))
    };
    if service.deployment_controller != DeploymentControllerType::Ecs {
        return failed(
            Reason::WrongDeploymentController,
            format!(
                "service {}/{} uses the {} deployment controller; the ecs strategy needs ECS (for CODE_DEPLOY use codeDeploy, for EXTERNAL taskSets)",
                service.cluster,
                service.name,
                service.deployment_controller.as_str()
            ),
        );
    }
    let kind = deployment_type(strategy, service);
    let has_load_balancer = strategy
        .deployment
        .as_ref()
        .is_some_and(|d| d.load_balancer.is_some())
        || service
            .ecs_deployment
            .as_ref()
            .is_some_and(|d| d.load_balancers_have_advanced_configuration);
    if kind != EcsDeploymentType::Rolling && !has_load_balancer {
        return failed(
            Reason::MisconfiguredService,
            format!(
                "a {} deployment needs the load balancer's advanced configuration (alternate target group, production listener rule, role); set spec.strategy.ecs.deployment.loadBalancer or configure it on service {}/{}",
                kind.as_str(),
                service.cluster,
                service.name
            ),
        );
    }
    let hooks = match &strategy.deployment {
        Some(deployment) => !deployment.pause_at.is_empty(),
        None => service
            .ecs_deployment
            .as_ref()
            .is_some_and(|d| !d.pause_hook_stages.is_empty()),
    };
    if (strategy.promotion == Promotion::Manual || strategy.analysis.is_some()) && !hooks {
        let example = if kind == EcsDeploymentType::Rolling {
            "postScaleUp"
        } else {
            "postTestTrafficShift"
        };
        return failed(
            Reason::MisconfiguredService,
            format!(
                "{} needs a PAUSE lifecycle hook to wait on; add spec.strategy.ecs.deployment.pauseAt: [{example}] (or a PAUSE hook on the service)",
                if strategy.promotion == Promotion::Manual {
                    "promotion: manual"
                } else {
                    "an analysis"
                }
            ),
        );
    }
    Ok(())
}

/// The deployment configuration `UpdateService` sets, from the document; the alternate
/// target group as an ARN (ECS takes nothing else).
fn settings(strategy: &EcsStrategy, alternate_arn: Option<&str>) -> Option<EcsDeploymentSettings> {
    let deployment = strategy.deployment.as_ref()?;
    let minutes =
        |d: &crate::model::duration::DurationSpec| crate::model::ecs::whole_minutes(d).unwrap_or(0);
    Some(EcsDeploymentSettings {
        strategy: match deployment.kind {
            EcsDeploymentType::Rolling => EcsDeploymentStrategy::Rolling,
            EcsDeploymentType::BlueGreen => EcsDeploymentStrategy::BlueGreen,
            EcsDeploymentType::Linear => EcsDeploymentStrategy::Linear,
            EcsDeploymentType::Canary => EcsDeploymentStrategy::Canary,
        },
        bake_time_minutes: deployment.bake_time.as_ref().map(minutes),
        canary: deployment
            .canary
            .as_ref()
            .map(|c| (c.percent, minutes(&c.bake))),
        linear: deployment
            .linear
            .as_ref()
            .map(|l| (l.step_percent, minutes(&l.step_bake))),
        pause_at: deployment
            .pause_at
            .iter()
            .filter_map(|s| crate::model::ecs::stage_name(s))
            .map(str::to_string)
            .collect(),
        load_balancer: deployment
            .load_balancer
            .as_ref()
            .map(|lb| AdvancedLoadBalancer {
                alternate_target_group_arn: alternate_arn
                    .map(str::to_string)
                    .unwrap_or_else(|| lb.alternate_target_group.clone()),
                production_listener_rule: lb.production_listener_rule.clone(),
                test_listener_rule: lb.test_listener_rule.clone(),
                role_arn: lb.role_arn.clone(),
            }),
    })
}

/// Carries the rollout in flight one step further.
pub fn progress<'a>(
    pass: &mut Pass<'a>,
    spec: &'a ReleaseSpec,
    strategy: &'a EcsStrategy,
    rollout: &Rollout,
    gate: &Gate,
    superseded: Option<&str>,
) -> Progress {
    let all: &'a super::Observed = pass.observed;
    let Some(service) = all.service.found() else {
        return Progress::Step(
            Step::new(Phase::Pending, Reason::Resolving, "observing the service")
                .requeue(AFTER_ACTION),
        );
    };
    let observed = match &all.strategy {
        super::StrategyObserved::Ecs(observed) => observed,
        _ => {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "looking at the service's deployments",
                )
                .requeue(AFTER_ACTION),
            );
        }
    };
    // ECS sets the service's task definition at UpdateService: while the rollout is in
    // flight, the live version is the one it started from.
    pass.next.live_task_definition = rollout.live.clone();
    let mut ecs = Ecs {
        pass,
        spec,
        strategy,
        service,
        observed,
        rollout: rollout.clone(),
    };
    ecs.progress(gate, superseded)
}

struct Ecs<'p, 'a> {
    pass: &'p mut Pass<'a>,
    spec: &'a ReleaseSpec,
    strategy: &'a EcsStrategy,
    service: &'a Service,
    observed: &'a Observed,
    rollout: Rollout,
}

impl<'a> Ecs<'_, 'a> {
    fn status(&mut self) -> &mut EcsStatus {
        status_of(&mut self.pass.next)
    }

    fn state(&self) -> EcsStatus {
        ecs_status(&self.pass.next).cloned().unwrap_or_default()
    }

    fn release(&self) -> &'a str {
        &self.pass.desired.name
    }

    fn deployment(&self, arn: &str) -> Option<&'a ServiceDeployment> {
        self.observed.deployments.iter().find(|d| d.arn == arn)
    }

    fn progress(&mut self, gate: &Gate, superseded: Option<&str>) -> Progress {
        if let Some(why) = superseded {
            // An intent without its deployment: find what that UpdateService started first,
            // and keep it as switchyard's, or the next rollout would wait for it as someone
            // else's (at a `PAUSE` hook nobody answers, for good).
            let state = self.state();
            if let (None, Some(since)) = (&state.service_deployment, state.updating_since) {
                if self.observed.searched_since.is_none() {
                    return Progress::Step(
                        Step::new(
                            Phase::Pending,
                            Reason::CreatingDeployment,
                            "looking for the service deployment an earlier pass may have started",
                        )
                        .requeue(AFTER_ACTION),
                    );
                }
                if let Some(found) = self.adoptable(since) {
                    let arn = found.arn.clone();
                    self.own(&arn);
                    self.status().service_deployment = Some(arn);
                }
                self.status().updating_since = None;
            }
            // The next rollout's UpdateService replaces this deployment, as ECS itself does.
            return Progress::Ended(Verdict::new(
                Outcome::Superseded,
                format!("{why}; the next UpdateService replaces its deployment"),
            ));
        }
        let state = self.state();
        match state.service_deployment.clone() {
            Some(arn) => self.follow(&arn, gate),
            None => self.start(gate),
        }
    }

    // ----- step 2 -------------------------------------------------------------------

    fn start(&mut self, gate: &Gate) -> Progress {
        let state = self.state();
        // An intent without a deployment: adopt what the last UpdateService started.
        if let Some(since) = state.updating_since {
            if self.observed.searched_since.is_none() {
                return Progress::Step(
                    Step::new(
                        Phase::Pending,
                        Reason::CreatingDeployment,
                        "looking for the service deployment an earlier pass may have started",
                    )
                    .requeue(AFTER_ACTION),
                );
            }
            if let Some(found) = self.adoptable(since) {
                let arn = found.arn.clone();
                self.own(&arn);
                let status = self.status();
                status.service_deployment = Some(arn.clone());
                status.updating_since = None;
                return self.follow(&arn, gate);
            }
        }
        if let Some(foreign) = self.foreign_in_flight(&state) {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::WaitingForForeignDeployment,
                    format!(
                        "waiting for service deployment {foreign}, not started by switchyard for this release, to finish"
                    ),
                )
                .requeue(POLL_WAITING),
            );
        }
        // Rolled back before it deployed anything while a deployment of switchyard's from a
        // superseded rollout is still in flight (it counted on this rollout's UpdateService
        // to replace it): that deployment is rolled back as this rollout's, or it would wait
        // at its hook for good.
        if gate.roll_back.is_some()
            && let Some(earlier) = self.own_in_flight(&state)
        {
            self.status().service_deployment = Some(earlier.clone());
            return self.follow(&earlier, gate);
        }
        if let Some(roll_back) = &gate.roll_back {
            return Progress::Ended(Verdict::new(
                Outcome::RolledBack,
                format!("{} before its deployment started", roll_back.message),
            ))
            .completing(roll_back.request);
        }
        if gate.paused {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Paused,
                    format!(
                        "rollout {} has not started its deployment yet; it waits until `switchyard resume {}`",
                        self.rollout.serial,
                        self.release()
                    ),
                )
                .requeue(waiting_poll(LOOK_CALLS)),
            );
        }
        let named = self
            .strategy
            .deployment
            .as_ref()
            .and_then(|d| d.load_balancer.as_ref())
            .is_some_and(|lb| !lb.alternate_target_group.starts_with("arn:"));
        if named && self.observed.alternate_target_group.is_none() {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "looking up the alternate target group",
                )
                .requeue(AFTER_ACTION),
            );
        }
        let request = UpdateServiceRequest {
            cluster: crate::model::names::cluster_key(&self.spec.service.cluster).to_string(),
            service: self.spec.service.name.clone(),
            task_definition: self.rollout.candidate.clone(),
            deployment: settings(
                self.strategy,
                self.observed.alternate_target_group.as_deref(),
            ),
        };
        let now = self.pass.now;
        let status = self.status();
        status.updating_since = Some(now);
        status.progress_at = Some(now);
        Progress::Step(
            Step::new(
                Phase::Pending,
                Reason::CreatingDeployment,
                format!(
                    "updating service {}/{} to {}",
                    request.cluster,
                    request.service,
                    task_definition_short_name(&self.rollout.candidate)
                ),
            )
            .act(super::Action::Ecs(Action::UpdateService(request))),
        )
    }

    /// The newest deployment created since the intent whose target revision runs the
    /// candidate (after a retry, an older one may run it too).
    fn adoptable(&self, since: Timestamp) -> Option<&'a ServiceDeployment> {
        let from = since - INTENT_SEARCH_SLACK;
        // A deployment an earlier rollout of this release started is not this intent's, even
        // of the same task definition within the slack (a revert to a version deployed
        // minutes ago): adopting it would call a rollout that never deployed succeeded.
        let earlier = self.state().own_deployments;
        let mut found: Vec<&ServiceDeployment> =
            self.observed
                .deployments
                .iter()
                .filter(|d| !earlier.contains(&d.arn))
                .filter(|d| d.created_at.is_none_or(|at| at >= from))
                .filter(|d| {
                    d.target_revision_arn.as_deref().is_some_and(|revision| {
                        self.observed.revisions.iter().any(|r| {
                            r.arn == revision && r.task_definition == self.rollout.candidate
                        })
                    })
                })
                .collect();
        found.sort_by_key(|d| d.created_at);
        found.pop()
    }

    /// A service deployment in flight that switchyard did not start for this release.
    /// The service's deployment in flight, and whether switchyard started it.
    fn in_flight(&self, state: &EcsStatus) -> Option<(String, bool)> {
        let current = self.service.current_service_deployment.as_ref()?;
        let deployment = self.deployment(current)?;
        (!deployment.status.is_terminal())
            .then(|| (current.clone(), state.own_deployments.contains(current)))
    }

    fn foreign_in_flight(&self, state: &EcsStatus) -> Option<String> {
        self.in_flight(state)
            .and_then(|(arn, own)| (!own).then_some(arn))
    }

    /// The service's deployment in flight when switchyard started it (for an earlier rollout).
    fn own_in_flight(&self, state: &EcsStatus) -> Option<String> {
        self.in_flight(state)
            .and_then(|(arn, own)| own.then_some(arn))
    }

    fn own(&mut self, arn: &str) {
        let status = self.status();
        if !status.own_deployments.iter().any(|a| a == arn) {
            status.own_deployments.push(arn.to_string());
            let excess = status
                .own_deployments
                .len()
                .saturating_sub(OWN_DEPLOYMENTS_KEPT);
            status.own_deployments.drain(..excess);
        }
    }

    // ----- steps 3 to 5 -------------------------------------------------------------

    fn follow(&mut self, full_arn: &str, gate: &Gate) -> Progress {
        self.pass.next.deployment_id = Some(full_arn.to_string());
        let arn = full_arn;
        let short = short_id(arn).to_string();
        let Some(deployment) = self.deployment(arn) else {
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::DeploymentInProgress,
                    format!("looking at service deployment {short}"),
                )
                .requeue(AFTER_ACTION),
            );
        };
        let state = self.state();
        if deployment.lifecycle_stage != state.lifecycle_stage {
            let now = self.pass.now;
            let status = self.status();
            status.lifecycle_stage = deployment.lifecycle_stage.clone();
            status.progress_at = Some(now);
        }
        let waiting = deployment.hooks.iter().find(|h| h.is_waiting_pause());
        self.status().waiting_hook = waiting.map(|h| h.hook_id.clone());
        if let Some(running) = self
            .pass
            .next
            .analysis
            .as_ref()
            .filter(|a| a.phase == AnalysisPhase::Running)
            .map(|a| a.gate.clone())
            && waiting.is_none_or(|h| hook_gate(&h.hook_id) != running)
        {
            // Its hook was answered by someone else (or the deployment ended).
            let now = self.pass.now;
            super::analysis::stop_running(
                &mut self.pass.next,
                &format!("service deployment {short}'s PAUSE hook no longer waits"),
                now,
            );
        }
        if deployment.status.is_terminal() {
            return self.verdict(deployment);
        }
        let state = self.state();
        let stage = deployment
            .lifecycle_stage
            .clone()
            .unwrap_or_else(|| format!("{:?}", deployment.status));

        // An answer or stop recorded before its call: sent once, then followed.
        if let Some(answer) = &state.answer {
            let still_waiting = match &answer.hook_id {
                Some(hook) => waiting.is_some_and(|h| &h.hook_id == hook),
                None => !matches!(
                    deployment.status,
                    ServiceDeploymentStatus::StopRequested
                        | ServiceDeploymentStatus::RollbackRequested
                        | ServiceDeploymentStatus::RollbackInProgress
                ),
            };
            let waited = crate::clock::elapsed_between(answer.at, self.pass.now);
            if still_waiting && !answer.sent && waited >= ANSWER_UNCONFIRMED_WAIT {
                return self.send_answer(
                    arn,
                    answer.hook_id.clone(),
                    &answer.action,
                    "sending it again: its reply was lost",
                );
            }
            if still_waiting || answer.action == "ROLLBACK" {
                let reason = if answer.action == "ROLLBACK" {
                    Reason::RollingBack
                } else {
                    Reason::Promoting
                };
                return Progress::Step(
                    Step::new(
                        Phase::Progressing,
                        reason,
                        format!(
                            "{}service deployment {short}: {stage}",
                            state
                                .rolling_back
                                .as_ref()
                                .map(|r| format!("{r}: rolling back; "))
                                .unwrap_or_default()
                        ),
                    )
                    .requeue(POLL_ACTIVE),
                );
            }
            // The hook answered CONTINUE moved on: forget the answer.
            self.status().answer = None;
        }
        if matches!(
            deployment.status,
            ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress
        ) {
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::RollingBack,
                    format!("ECS is rolling service deployment {short} back"),
                )
                .requeue(POLL_ACTIVE),
            );
        }
        if let Some(roll_back) = &gate.roll_back {
            let reason = roll_back.message.clone();
            self.status().rolling_back = Some(reason.clone());
            return self
                .send_answer(arn, waiting.map(|h| h.hook_id.clone()), "ROLLBACK", &reason)
                .completing(roll_back.request);
        }
        // ECS's own bakes are progress by design: the deadline runs from their end.
        let bakes = self.bakes(&stage);
        let baking_for = bakes
            .as_ref()
            .and_then(|b| b.last().copied())
            .unwrap_or_default();
        if waiting.is_none()
            && let Some(since) = state.progress_at
            && crate::clock::elapsed_between(since, self.pass.now)
                > self.strategy.progress_deadline() + baking_for
        {
            let reason = format!(
                "no progress for {}: service deployment {short} stayed at {stage}",
                super::friendly(self.strategy.progress_deadline())
            );
            self.status().rolling_back = Some(reason.clone());
            return self.send_answer(arn, None, "ROLLBACK", &reason);
        }
        if let Some(hook) = waiting {
            let manual = self.strategy.promotion == Promotion::Manual;
            let mut skipped_by_promote = false;
            if let Some(analysis) = &self.strategy.analysis {
                let (live, candidate) = self.analysis_target_groups();
                let at_gate = AnalysisGate {
                    gate: hook_gate(&hook.hook_id),
                    live_target_group: live,
                    candidate_target_group: candidate,
                    promote: gate.promote.is_some(),
                };
                match super::analysis::run(self.pass, analysis, &at_gate) {
                    AnalysisProgress::Running { message, after } => {
                        return Progress::Step(
                            Step::new(
                                Phase::Progressing,
                                Reason::Analyzing,
                                format!("service deployment {short} waits at {stage}; {message}"),
                            )
                            .requeue(after.min(POLL_WAITING)),
                        );
                    }
                    AnalysisProgress::Failed { message } => {
                        self.status().rolling_back = Some(message.clone());
                        return self.send_answer(
                            arn,
                            Some(hook.hook_id.clone()),
                            "ROLLBACK",
                            &message,
                        );
                    }
                    AnalysisProgress::Inconclusive { message } => {
                        return Progress::Step(
                            Step::new(
                                Phase::AwaitingPromotion,
                                Reason::AnalysisInconclusive,
                                format!(
                                    "service deployment {short} waits at {stage}; {message}; `switchyard promote {0}` answers CONTINUE, `switchyard abort {0}` ROLLBACK",
                                    self.release()
                                ),
                            )
                            .requeue(waiting_poll(LOOK_CALLS)),
                        );
                    }
                    // Passed: promotion decides as without an analysis. A `promote` that
                    // skipped it is carried out by the same answer.
                    AnalysisProgress::Passed { promoted, .. } => skipped_by_promote = promoted,
                }
            }
            if gate.paused {
                return Progress::Step(
                    Step::new(
                        if manual { Phase::AwaitingPromotion } else { Phase::Progressing },
                        Reason::Paused,
                        format!(
                            "service deployment {short} waits at {stage}; its hook is answered once the release is resumed (`switchyard resume {}`)",
                            self.release()
                        ),
                    )
                    .requeue(waiting_poll(LOOK_CALLS)),
                );
            }
            if !manual || gate.promote.is_some() {
                let why = if self.strategy.analysis.is_some() && !skipped_by_promote {
                    "its analysis passed"
                } else {
                    "promoted"
                };
                let step = self.send_answer(arn, Some(hook.hook_id.clone()), "CONTINUE", why);
                return if manual || skipped_by_promote {
                    step.completing(gate.promote)
                } else {
                    step
                };
            }
            return Progress::Step(
                Step::new(
                    Phase::AwaitingPromotion,
                    Reason::AwaitingPromotion,
                    format!(
                        "service deployment {short} waits at {stage}; run `switchyard promote {}` to go on",
                        self.release()
                    ),
                )
                // A wait for a human, within the wait budget: the promote wakes the
                // release through the change feed, an alarm through the alarm watcher.
                .requeue(waiting_poll(LOOK_CALLS)),
            );
        }
        let poll = self.poll_interval(state.progress_at, bakes.as_deref());
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::DeploymentInProgress,
                format!("service deployment {short}: {stage}"),
            )
            .requeue(poll),
        )
    }

    /// The target groups an analysis's placeholders stand for: the document's alternate
    /// target group is the candidate's (ECS shifts test traffic to it first); the live one is
    /// the service's other target group.
    fn analysis_target_groups(&self) -> (Option<String>, Option<String>) {
        let candidate = self.observed.alternate_target_group.clone().or_else(|| {
            let deployment = self.strategy.deployment.as_ref()?;
            Some(
                deployment
                    .load_balancer
                    .as_ref()?
                    .alternate_target_group
                    .clone(),
            )
        });
        let candidate_name = candidate
            .as_deref()
            .map(crate::ports::target_group_name_from_arn);
        let live = self
            .service
            .load_balancers
            .iter()
            .map(|b| b.target_group_arn.as_str())
            .find(|arn| Some(crate::ports::target_group_name_from_arn(arn)) != candidate_name)
            .map(str::to_string);
        (live, candidate)
    }

    /// When ECS's own bakes in `stage` end, as offsets from the stage's start, from the
    /// service's deployment configuration: `BAKE_TIME`, the bake after the last traffic
    /// shift; `PRODUCTION_TRAFFIC_SHIFT` of a linear or canary deployment, the bake after
    /// each step but the last. `None`: the stage bakes for a time the configuration does not
    /// say; empty: the stage does not bake.
    fn bakes(&self, stage: &str) -> Option<Vec<Duration>> {
        let config = self.service.ecs_deployment.as_ref();
        let minutes = |m: u32| Duration::from_secs(u64::from(m) * 60);
        match stage {
            "BAKE_TIME" => Some(
                config
                    .and_then(|c| c.bake_time_minutes)
                    .map(|m| vec![minutes(m)])?,
            ),
            "PRODUCTION_TRAFFIC_SHIFT"
                if matches!(
                    deployment_type(self.strategy, self.service),
                    EcsDeploymentType::Linear | EcsDeploymentType::Canary
                ) =>
            {
                let steps = config.and_then(|c| c.traffic_steps)?;
                Some(
                    (1..steps.steps)
                        .map(|k| minutes(steps.bake_minutes) * k)
                        .collect(),
                )
            }
            _ => Some(Vec::new()),
        }
    }

    /// How soon to look again at a deployment that goes on by itself. Nothing waits for the
    /// controller there but a `PAUSE` hook, and alarms come from the alarm watcher, so
    /// stages are looked at every `POLL_PASSIVE`; ECS's own bakes (its bake time, a canary's
    /// or a linear step's bake) are waits within the budget, looked at right after each
    /// predicted end and at most as often as the budget allows before. A bake of unknown
    /// length is looked at as the budget allows, unless a `PAUSE` hook the controller must
    /// answer at once (automatic promotion) may wait at its end.
    fn poll_interval(
        &self,
        stage_since: Option<jiff::Timestamp>,
        bakes: Option<&[Duration]>,
    ) -> Duration {
        match bakes {
            Some([]) => POLL_PASSIVE,
            Some(ends) => {
                let into = stage_since
                    .map(|since| crate::clock::elapsed_between(since, self.pass.now))
                    .unwrap_or_default();
                match ends.iter().find(|end| **end + STEP_SLACK > into) {
                    Some(end) => {
                        waiting_until(*end + STEP_SLACK - into, LOOK_CALLS).max(POLL_ACTIVE)
                    }
                    // Past the last bake: the stage ends soon.
                    None => POLL_PASSIVE,
                }
            }
            None => {
                let hook_ahead = self.strategy.promotion == Promotion::Auto
                    && self.service.ecs_deployment.as_ref().is_some_and(|c| {
                        c.pause_hook_stages.iter().any(|s| {
                            matches!(
                                s.as_str(),
                                "PRE_PRODUCTION_TRAFFIC_SHIFT" | "POST_PRODUCTION_TRAFFIC_SHIFT"
                            )
                        })
                    });
                if hook_ahead {
                    POLL_PASSIVE
                } else {
                    waiting_poll(LOOK_CALLS)
                }
            }
        }
    }

    /// Records an answer (or, without a hook, a stop) and makes its call.
    fn send_answer(
        &mut self,
        arn: &str,
        hook_id: Option<String>,
        action: &str,
        why: &str,
    ) -> Progress {
        let short = short_id(arn);
        let now = self.pass.now;
        self.status().answer = Some(EcsAnswer {
            hook_id: hook_id.clone(),
            action: action.to_string(),
            at: now,
            sent: false,
        });
        let (call, message, reason) = match (hook_id, action) {
            (Some(hook_id), "CONTINUE") => (
                Action::Answer {
                    deployment: arn.to_string(),
                    hook_id,
                    action: HookAction::Continue,
                },
                format!("service deployment {short}: answering its PAUSE hook CONTINUE ({why})"),
                Reason::Promoting,
            ),
            (Some(hook_id), _) => (
                Action::Answer {
                    deployment: arn.to_string(),
                    hook_id,
                    action: HookAction::Rollback,
                },
                format!("{why}: answering the PAUSE hook of {short} ROLLBACK"),
                Reason::RollingBack,
            ),
            (None, _) => (
                Action::Stop {
                    deployment: arn.to_string(),
                },
                format!(
                    "{why}: stopping service deployment {} with rollback",
                    short_id(arn)
                ),
                Reason::RollingBack,
            ),
        };
        Progress::Step(Step::new(Phase::Progressing, reason, message).act(super::Action::Ecs(call)))
    }

    fn verdict(&mut self, deployment: &ServiceDeployment) -> Progress {
        let state = self.state();
        let short = short_id(&deployment.arn);
        let ecs_reason = deployment
            .rollback_reason
            .clone()
            .or_else(|| {
                (deployment.circuit_breaker_status.as_deref() == Some("TRIGGERED"))
                    .then(|| "the deployment circuit breaker was triggered".to_string())
            })
            .or_else(|| {
                (!deployment.triggered_alarms.is_empty()).then(|| {
                    format!(
                        "ECS deployment alarms in ALARM: {}",
                        deployment.triggered_alarms.join(", ")
                    )
                })
            })
            .or_else(|| deployment.status_reason.clone());
        let arn = &deployment.arn;
        match &deployment.status {
            ServiceDeploymentStatus::Successful => Progress::Ended(Verdict::new(
                Outcome::Succeeded,
                format!("service deployment {short} succeeded"),
            )),
            ServiceDeploymentStatus::RollbackSuccessful => {
                let why = state
                    .rolling_back
                    .clone()
                    .or(ecs_reason)
                    .unwrap_or_else(|| "ECS rolled it back".into());
                Progress::Ended(Verdict::new(
                    Outcome::RolledBack,
                    format!(
                        "service deployment {short} rolled back ({why}); traffic is back on {}",
                        task_definition_short_name(self.rollout.live.as_deref().unwrap_or("?"))
                    ),
                ))
            }
            ServiceDeploymentStatus::RollbackFailed => Progress::Ended(Verdict::new(
                Outcome::Failed,
                format!(
                    "service deployment {short} failed to roll back ({}); check the service",
                    ecs_reason.unwrap_or_else(|| "no reason given".into())
                ),
            )),
            _ => {
                // STOPPED: replaced by another deployment, or stopped without rollback.
                let replaced_by = self
                    .service
                    .current_service_deployment
                    .as_ref()
                    .filter(|current| *current != arn);
                Progress::Ended(Verdict::new(
                    Outcome::Failed,
                    match replaced_by {
                        Some(other) => format!(
                            "service deployment {short} was replaced by {}, which switchyard did not start; run `switchyard retry {}` to roll the candidate out again",
                            short_id(other),
                            self.release()
                        ),
                        None => format!(
                            "service deployment {short} was stopped ({}); run `switchyard retry {}` to roll the candidate out again",
                            ecs_reason.unwrap_or_else(|| "no reason given".into()),
                            self.release()
                        ),
                    },
                ))
            }
        }
    }
}

/// The last part of a service deployment's ARN: its id, enough for people.
pub fn short_id(arn: &str) -> &str {
    arn.rsplit_once('/').map_or(arn, |(_, id)| id)
}

/// Records what a call returned in the status the pass wrote before it.
pub fn record_outcome(
    status: &mut ReleaseStatus,
    action: &Action,
    result: &Result<ActionResult, AwsError>,
) {
    match (action, result) {
        (Action::UpdateService(_), Ok(ActionResult::Updated(Some(arn)))) => {
            status.deployment_id = Some(arn.clone());
            let state = status_of(status);
            state.service_deployment = Some(arn.clone());
            state.updating_since = None;
            if !state.own_deployments.contains(arn) {
                state.own_deployments.push(arn.clone());
                let excess = state
                    .own_deployments
                    .len()
                    .saturating_sub(OWN_DEPLOYMENTS_KEPT);
                state.own_deployments.drain(..excess);
            }
            status.phase = Phase::Progressing;
            status.message = format!("service deployment {} started", short_id(arn));
        }
        // Updated without naming its deployment: the next pass adopts it by its intent.
        (Action::UpdateService(_), Ok(_)) => {}
        (Action::UpdateService(_), Err(error)) if !error.is_ambiguous() => {
            status_of(status).updating_since = None;
        }
        (Action::Answer { .. } | Action::Stop { .. }, Ok(_)) => {
            if let Some(answer) = status_of(status).answer.as_mut() {
                answer.sent = true;
            }
        }
        (Action::Answer { .. } | Action::Stop { .. }, Err(error))
            if error.kind == AwsErrorKind::Conflict =>
        {
            // The hook was answered or the deployment finished already: the next pass reads
            // how it ended.
            if let Some(answer) = status_of(status).answer.as_mut() {
                answer.sent = true;
            }
        }
        (Action::Answer { .. } | Action::Stop { .. }, Err(error)) if !error.is_ambiguous() => {
            status_of(status).answer = None;
        }
        _ => {}
    }
}

/// Takes back the intents of a call that is held back.
pub fn drop_intents(status: &mut EcsStatus, before: Option<&EcsStatus>) {
    status.updating_since = before.and_then(|b| b.updating_since);
    status.answer = before.and_then(|b| b.answer.clone());
}
