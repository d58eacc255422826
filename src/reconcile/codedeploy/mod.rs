//! `strategy.codeDeploy`: blue/green through AWS CodeDeploy, as the controller drives it.
//!
//! The spine (`reconcile/mod.rs`) resolves the candidate and opens a rollout; this module
//! carries the rollout out, one mutating call per pass:
//!
//! 1. **Target.** Before anything is registered: the service uses the `CODE_DEPLOY`
//!    deployment controller, and the deployment group exists and deploys exactly the
//!    release's cluster and service.
//! 2. **Create.** Nothing of the group in flight: the intent (`creatingSince`) is written to
//!    the status, then CreateDeployment is called with an AppSpec built from the live service
//!    and a description naming the release and the rollout (`switchyard release=web
//!    rollout=3`). CreateDeployment has no idempotency token: a pass that finds the intent
//!    without a deployment searches the group's deployments created since then for that
//!    description, and adopts what it finds, before ever creating another. A deployment the
//!    controller did not start is waited for, never fought.
//! 3. **Follow.** CodeDeploy installs the candidate task set, opens test traffic and, when
//!    the group's ready option says STOP_DEPLOYMENT, waits in `Ready`: the controller
//!    continues it (`promotion: auto`, or a `promote` request), or shows `AwaitingPromotion`.
//!    `paused: true` holds it in `Ready` (CodeDeploy's own traffic shifting, once started,
//!    goes on).
//! 4. **Gate.** A firing rollback alarm or an `abort` stops the deployment with rollback; a
//!    new candidate or target stops it too (superseded). StopDeployment is asynchronous: it
//!    is sent until one call succeeds (`stop.sent`), never after, and the stop is followed.
//! 5. **Verdict**, from the state CodeDeploy reports once the deployment is final:
//!    `Succeeded` is `Healthy`; `Failed` or `Stopped` waits for CodeDeploy's rollback
//!    deployment to end: `RolledBack` when it succeeded (or, without one, when the version
//!    that was live is live again), `Failed` otherwise.

mod appspec;

use std::time::Duration;

use jiff::Timestamp;

pub use appspec::{AppSpecError, build_appspec};

use crate::model::{
    CodeDeployStatus, CodeDeployStrategy, Outcome, Phase, Promotion, Reason, ReleaseSpec,
    ReleaseStatus, Rollout, StopRecord, StrategyStatus, TrafficWeights,
};
use crate::ports::{
    AwsError, AwsErrorKind, CreateDeploymentRequest, Deployment, DeploymentControllerType,
    DeploymentCreator, DeploymentGroup, DeploymentStatus, DeploymentTarget, LifecycleEventStatus,
    Listener, ReadyAction, Service, task_definition_short_name,
};

/// How long a stop whose call's outcome was lost is followed before it is sent again.
pub const STOP_UNCONFIRMED_WAIT: Duration = Duration::from_secs(60);

/// The AWS calls of a look at the deployment being followed: GetDeployment and
/// GetDeploymentTarget. The service seen when it started serves until it ends, the group
/// is cached while it is followed, and the alarm states come from the alarm watcher.
const FOLLOWING_LOOK_CALLS: u32 = 2;
/// The AWS calls of a look at a rollout that has not created its deployment yet:
/// DescribeServices, ListDeployments (the group's active ones) and, at most every five
/// minutes, GetDeploymentGroup.
const CREATING_LOOK_CALLS: u32 = 3;

use super::analysis::{AnalysisGate, AnalysisProgress};
use super::{
    AFTER_ACTION, Gate, Lookup, POLL_ACTIVE, POLL_FAILED, POLL_PASSIVE, POLL_SLOW, POLL_WAITING,
    Pass, Progress, STEP_SLACK, Step, Verdict, waiting_poll,
};

/// What the shell observed of CodeDeploy for the release.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub group: Lookup<DeploymentGroup>,
    /// Every deployment of the group the shell looked at: the active one, the one the status
    /// tracks, those found for a recorded intent, and rollbacks of ours.
    pub deployments: Vec<Deployment>,
    /// When the shell searched the group's deployments created since (for an intent).
    pub searched_since: Option<Timestamp>,
    /// The ECS target of the active deployment.
    pub target: Option<DeploymentTarget>,
    /// The group's production listener (read for traffic weights before the target has them).
    pub listener: Option<Listener>,
}

/// The CodeDeploy calls a pass may make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the rollout's deployment; the status already holds the intent.
    Create(CreateDeploymentRequest),
    /// Shift production traffic of a `Ready` deployment (ContinueDeployment READY_WAIT).
    Continue { deployment_id: String },
    /// Stop a deployment, rolling back.
    Stop { deployment_id: String },
}

impl Action {
    pub fn operation(&self) -> &'static str {
        match self {
            Action::Create(_) => "codedeploy:CreateDeployment",
            Action::Continue { .. } => "codedeploy:ContinueDeployment",
            Action::Stop { .. } => "codedeploy:StopDeployment",
        }
    }
}

/// What a CodeDeploy call returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    Created { deployment_id: String },
    Done,
}

/// The description that marks a deployment as the one of a release's rollout. CodeDeploy
/// has no other place for it and no idempotency token.
pub fn deployment_description(release: &str, rollout: u32) -> String {
    format!("switchyard release={release} rollout={rollout}")
}

/// Parses [`deployment_description`]: `Some((release, rollout))` for ours.
pub fn parse_deployment_description(description: &str) -> Option<(String, u32)> {
    let rest = description.strip_prefix("switchyard release=")?;
    let (release, rollout) = rest.split_once(" rollout=")?;
    Some((release.to_string(), rollout.parse().ok()?))
}

/// The rollout's target, normalized: a change of it is a new rollout.
pub fn target_key(spec: &ReleaseSpec, strategy: &CodeDeployStrategy) -> String {
    format!(
        "codeDeploy:{}/{}:{}",
        strategy.application,
        strategy.deployment_group,
        super::service_key(spec)
    )
}

/// Who a deployment belongs to, from the point of view of the rollout in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The deployment of this rollout.
    Current,
    /// A deployment of an earlier rollout of this release.
    Earlier,
    /// CodeDeploy's rollback of a deployment of this release.
    RollbackOfOurs,
    /// Started by someone else (the console, another pipeline, another release).
    Foreign,
}

/// Checks the target before anything is registered: the service's deployment controller
/// and the deployment group (it must exist and deploy exactly this service). `Err` is the
/// step to take instead.
#[allow(clippy::result_large_err)]
pub fn check_target(
    spec: &ReleaseSpec,
    strategy: &CodeDeployStrategy,
    service: &Service,
    observed: Option<&Observed>,
) -> Result<(), Step> {
    if service.deployment_controller != DeploymentControllerType::CodeDeploy {
        return Err(Step::new(
            Phase::Failed,
            Reason::WrongDeploymentController,
            format!(
                "service {}/{} uses the {} deployment controller; the codeDeploy strategy needs CODE_DEPLOY",
                service.cluster,
                service.name,
                service.deployment_controller.as_str()
            ),
        )
        .requeue(POLL_FAILED));
    }
    let Some(group) = observed.and_then(|o| match &o.group {
        Lookup::Found(group) => Some(group),
        Lookup::Missing => None,
        Lookup::NotLookedUp => None,
    }) else {
        if observed.is_some_and(|o| o.group == Lookup::Missing) {
            return Err(Step::new(
                Phase::Failed,
                Reason::DeploymentGroupNotFound,
                format!(
                    "CodeDeploy deployment group {}/{} not found; create it or fix spec.strategy.codeDeploy",
                    strategy.application, strategy.deployment_group
                ),
            )
            .requeue(POLL_FAILED));
        }
        return Ok(());
    };
    let cluster = crate::model::names::cluster_key(&spec.service.cluster);
    match &group.ecs_service {
        Some((group_cluster, group_service))
            if crate::model::names::cluster_key(group_cluster) == cluster
                && group_service == &spec.service.name =>
        {
            check_analysis_gate(strategy, group)
        }
        other => {
            let deploys = match other {
                Some((c, s)) => format!("service {}/{}", crate::model::names::cluster_key(c), s),
                None => "no ECS service".to_string(),
            };
            Err(Step::new(
                Phase::Failed,
                Reason::MisconfiguredService,
                format!(
                    "deployment group {}/{} deploys {deploys}, not service {cluster}/{} of this release; fix spec.strategy.codeDeploy or the group",
                    strategy.application, strategy.deployment_group, spec.service.name
                ),
            )
            .requeue(POLL_FAILED))
        }
    }
}

/// An analysis gates the deployment while it waits in `Ready`: the group must wait there
/// (`STOP_DEPLOYMENT`) for longer than the analysis lasts, or production traffic would move
/// before its verdict. Never an ungated rollout: `Failed` before `CreateDeployment`.
#[allow(clippy::result_large_err)]
fn check_analysis_gate(strategy: &CodeDeployStrategy, group: &DeploymentGroup) -> Result<(), Step> {
    let Some(analysis) = &strategy.analysis else {
        return Ok(());
    };
    let lasts = analysis.duration();
    let needed = lasts.as_secs() / 60 + 1;
    let waits = match group.ready_action {
        ReadyAction::StopDeployment { wait_minutes } => {
            if u64::from(wait_minutes) * 60 > lasts.as_secs() {
                return Ok(());
            }
            format!("waits in Ready for {wait_minutes} minutes only")
        }
        ReadyAction::ContinueDeployment => {
            "shifts production traffic without waiting in Ready (CONTINUE_DEPLOYMENT)".to_string()
        }
    };
    Err(Step::new(
        Phase::Failed,
        Reason::AnalysisNotGated,
        format!(
            "deployment group {}/{} {waits}, but spec.strategy.codeDeploy.analysis lasts {} ({}): set the group's deploymentReadyOption to STOP_DEPLOYMENT with waitTimeInMinutes of at least {needed}, or shorten the analysis",
            strategy.application,
            strategy.deployment_group,
            super::friendly(lasts),
            analysis.describe()
        ),
    )
    .requeue(POLL_FAILED))
}

/// Carries the rollout in flight one step further. `superseded` says why it must give way
/// (a new candidate or target) when it must.
pub fn progress<'a>(
    pass: &mut Pass<'a>,
    strategy: &'a CodeDeployStrategy,
    rollout: &Rollout,
    gate: &Gate,
    superseded: Option<&str>,
) -> Progress {
    let all: &'a super::Observed = pass.observed;
    let observed = match &all.strategy {
        super::StrategyObserved::CodeDeploy(observed) if observed.group.found().is_some() => {
            observed
        }
        _ => {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "looking up the deployment group",
                )
                .requeue(AFTER_ACTION),
            );
        }
    };
    let mut cd = CodeDeploy {
        pass,
        strategy,
        observed,
        rollout: rollout.clone(),
    };
    cd.progress(gate, superseded)
}

/// The strategy's view of one pass.
struct CodeDeploy<'p, 'a> {
    pass: &'p mut Pass<'a>,
    strategy: &'a CodeDeployStrategy,
    observed: &'a Observed,
    rollout: Rollout,
}

impl<'a> CodeDeploy<'_, 'a> {
    fn status(&mut self) -> &mut CodeDeployStatus {
        status_of(&mut self.pass.next)
    }

    fn group(&self) -> &'a DeploymentGroup {
        self.observed
            .group
            .found()
            .expect("progress checks that the group was found")
    }

    fn release(&self) -> &'a str {
        &self.pass.desired.name
    }

    fn progress(&mut self, gate: &Gate, superseded: Option<&str>) -> Progress {
        // 1. Something is in flight in the group: follow ours, stop an earlier one of ours,
        //    wait for anyone else's.
        if let Some(active) = self.active_deployment() {
            return match self.owner(active) {
                Owner::Current => self.follow(active, gate, superseded),
                Owner::Earlier => Progress::Step(self.stop_earlier(active)),
                Owner::RollbackOfOurs => Progress::Step(self.wait_for_rollback(active)),
                Owner::Foreign => Progress::Step(self.wait_for_foreign(active)),
            };
        }
        // 2. The rollout's deployment exists and has ended: the verdict.
        if let Some(finished) = self.current_deployment() {
            return self.verdict(finished);
        }
        // 3. Nothing of the rollout in AWS yet.
        if let Some(why) = superseded {
            return Progress::Ended(Verdict::new(
                Outcome::Superseded,
                format!("{why} before its deployment started"),
            ));
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
                        "rollout {} has not created its deployment yet; it waits until `switchyard resume {}`",
                        self.rollout.serial,
                        self.release()
                    ),
                )
                // A wait for a human: `resume` wakes the release through the change feed.
                .requeue(waiting_poll(CREATING_LOOK_CALLS)),
            );
        }
        if let Some(since) = self.status().creating_since
            && self
                .observed
                .searched_since
                .is_none_or(|searched| searched > since)
        {
            // The intent's search has not run yet: look first.
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::CreatingDeployment,
                    "looking for the deployment an earlier pass may have created",
                )
                .requeue(AFTER_ACTION),
            );
        }
        Progress::Step(self.create())
    }

    // ----- classification -----------------------------------------------------------

    fn active_deployment(&self) -> Option<&'a Deployment> {
        self.observed
            .deployments
            .iter()
            .find(|d| !d.status.is_terminal())
    }

    fn ours(&self, deployment: &Deployment) -> Option<u32> {
        let (release, rollout) = parse_deployment_description(deployment.description.as_deref()?)?;
        (release == self.release()).then_some(rollout)
    }

    fn owner(&self, deployment: &Deployment) -> Owner {
        if deployment.creator == DeploymentCreator::CodeDeployRollback {
            let triggered_by = deployment
                .rollback
                .as_ref()
                .and_then(|r| r.rollback_triggering_deployment_id.as_deref());
            let ours = triggered_by.is_some_and(|id| {
                self.pass.next.deployment_id.as_deref() == Some(id)
                    || self
                        .pass
                        .next
                        .code_deploy()
                        .and_then(|s| s.stop.as_ref())
                        .map(|s| s.deployment_id.as_str())
                        == Some(id)
                    || self
                        .observed
                        .deployments
                        .iter()
                        .any(|d| d.id == id && self.ours(d).is_some())
            });
            return if ours {
                Owner::RollbackOfOurs
            } else {
                Owner::Foreign
            };
        }
        match self.ours(deployment) {
            Some(serial) if serial == self.rollout.serial => Owner::Current,
            Some(_) => Owner::Earlier,
            None => Owner::Foreign,
        }
    }

    /// The rollout's own deployment (not a rollback of it).
    fn current_deployment(&self) -> Option<&'a Deployment> {
        self.observed
            .deployments
            .iter()
            .filter(|d| d.creator != DeploymentCreator::CodeDeployRollback)
            .find(|d| self.ours(d) == Some(self.rollout.serial))
    }

    fn deployment(&self, id: &str) -> Option<&'a Deployment> {
        self.observed.deployments.iter().find(|d| d.id == id)
    }

    // ----- steps --------------------------------------------------------------------

    /// Step 2: the intent, then CreateDeployment.
    fn create(&mut self) -> Step {
        let candidate_arn = self.rollout.candidate.clone();
        let Some(candidate) = self.pass.candidate_content(&candidate_arn) else {
            return Step::new(
                Phase::Pending,
                Reason::Resolving,
                format!(
                    "looking up task definition {}",
                    task_definition_short_name(&candidate_arn)
                ),
            )
            .requeue(AFTER_ACTION);
        };
        let Some(service) = self.pass.observed.service.found() else {
            return Step::new(Phase::Pending, Reason::Resolving, "observing the service")
                .requeue(AFTER_ACTION);
        };
        let group = self.group();
        let appspec = match build_appspec(service, candidate, &group.target_group_names) {
            Ok(appspec) => appspec,
            Err(AppSpecError(message)) => {
                return Step::new(Phase::Failed, Reason::MisconfiguredService, message)
                    .requeue(POLL_FAILED);
            }
        };
        let request = CreateDeploymentRequest {
            application: self.strategy.application.clone(),
            deployment_group: self.strategy.deployment_group.clone(),
            appspec_content: appspec,
            description: deployment_description(self.release(), self.rollout.serial),
            deployment_config: self.strategy.deployment_config.clone(),
        };
        let now = self.pass.now;
        self.status().creating_since = Some(now);
        Step::new(
            Phase::Pending,
            Reason::CreatingDeployment,
            format!(
                "creating a deployment of {} in {}/{}",
                task_definition_short_name(&candidate_arn),
                self.strategy.application,
                self.strategy.deployment_group
            ),
        )
        .act(super::Action::CodeDeploy(Action::Create(request)))
    }

    /// Steps 3 and 4: follow the rollout's deployment through its gates.
    fn follow(
        &mut self,
        active: &'a Deployment,
        gate: &Gate,
        superseded: Option<&str>,
    ) -> Progress {
        let id = active.id.clone();
        self.pass.next.deployment_id = Some(id.clone());
        let event = self
            .observed
            .target
            .as_ref()
            .and_then(current_lifecycle_event);
        let weights = self.traffic_weights();
        {
            let status = self.status();
            status.creating_since = None;
            status.lifecycle_event = event;
        }
        self.pass.next.traffic_weights = weights;

        if let Some(stop) = self.status().stop.clone().filter(|s| s.deployment_id == id) {
            return Progress::Step(self.follow_stop(&stop));
        }
        if let Some(why) = superseded {
            return Progress::Step(self.stop(&id, Reason::Superseded, why.to_string(), true));
        }
        if let Some(roll_back) = &gate.roll_back {
            return Progress::Step(self.stop(
                &id,
                roll_back.reason,
                roll_back.message.clone(),
                false,
            ))
            .completing(roll_back.request);
        }
        if active.status == DeploymentStatus::Ready {
            return Progress::Step(self.at_ready(&id, gate));
        }
        if super::analysis::running_at(&self.pass.next, &ready_gate(&id)) {
            let now = self.pass.now;
            super::analysis::stop_running(
                &mut self.pass.next,
                &format!("{id} no longer waits in Ready ({})", active.status.as_str()),
                now,
            );
        }
        let stage = self
            .pass
            .next
            .code_deploy()
            .and_then(|s| s.lifecycle_event.clone())
            .unwrap_or_else(|| active.status.as_str().to_string());
        let traffic = self
            .pass
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
        let poll = self.poll_interval(active);
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::DeploymentInProgress,
                format!("deployment {id}: {stage}{traffic}"),
            )
            .requeue(poll),
        )
    }

    /// The deployment waits in `Ready` with test traffic on the candidate. Waiting for a
    /// human (a `promote`, a `resume`) is within the wait budget: what ends the wait wakes
    /// the release through the change feed, an alarm through the alarm watcher, and a
    /// deployment that times out in Ready (or is stopped in the console) shows within a look.
    fn at_ready(&mut self, id: &str, gate: &Gate) -> Step {
        let manual = self.strategy.promotion == Promotion::Manual;
        let mut skipped_by_promote = false;
        if let Some(analysis) = &self.strategy.analysis {
            let (live, candidate) = self.analysis_target_groups();
            let at_gate = AnalysisGate {
                gate: ready_gate(id),
                live_target_group: live,
                candidate_target_group: candidate,
                promote: gate.promote.is_some(),
            };
            match super::analysis::run(self.pass, analysis, &at_gate) {
                AnalysisProgress::Running { message, after } => {
                    return Step::new(
                        Phase::Progressing,
                        Reason::Analyzing,
                        format!("{id} is ready with test traffic on the candidate; {message}"),
                    )
                    .requeue(after.min(POLL_WAITING));
                }
                AnalysisProgress::Failed { message } => {
                    return self.stop(id, Reason::AnalysisFailed, message, false);
                }
                AnalysisProgress::Inconclusive { message } => {
                    return Step::new(
                        Phase::AwaitingPromotion,
                        Reason::AnalysisInconclusive,
                        format!(
                            "{id} is ready with test traffic on the candidate; {message}; `switchyard promote {0}` shifts production traffic, `switchyard abort {0}` rolls back",
                            self.release()
                        ),
                    )
                    .requeue(waiting_poll(FOLLOWING_LOOK_CALLS));
                }
                // Passed: promotion decides as without an analysis. A `promote` that skipped
                // it is carried out by the same call (one request, one decision).
                AnalysisProgress::Passed { promoted, .. } => skipped_by_promote = promoted,
            }
        }
        if gate.paused {
            let phase = if manual {
                Phase::AwaitingPromotion
            } else {
                Phase::Progressing
            };
            return Step::new(
                phase,
                Reason::Paused,
                format!(
                    "{id} is ready with test traffic on the candidate; promotion is held while the release is paused (`switchyard resume {}`)",
                    self.release()
                ),
            )
            .requeue(waiting_poll(FOLLOWING_LOOK_CALLS));
        }
        if !manual || gate.promote.is_some() {
            let step = Step::new(
                Phase::Progressing,
                Reason::Promoting,
                format!("{id} is ready; shifting production traffic"),
            )
            .act(super::Action::CodeDeploy(Action::Continue {
                deployment_id: id.to_string(),
            }));
            return if manual || skipped_by_promote {
                step.completing(gate.promote)
            } else {
                step
            };
        }
        Step::new(
            Phase::AwaitingPromotion,
            Reason::AwaitingPromotion,
            format!(
                "{id} is ready with test traffic on the candidate; run `switchyard promote {}` to shift production traffic",
                self.release()
            ),
        )
        .requeue(waiting_poll(FOLLOWING_LOOK_CALLS))
    }

    /// Decides a stop: recorded before the call, sent until one call succeeds.
    fn stop(&mut self, id: &str, reason: Reason, why: String, superseded: bool) -> Step {
        let now = self.pass.now;
        self.status().stop = Some(StopRecord {
            deployment_id: id.to_string(),
            reason: why.clone(),
            requested_at: now,
            sent: false,
            superseded,
        });
        Step::new(
            Phase::Progressing,
            reason,
            format!("{why}: stopping {id} and rolling back"),
        )
        .act(super::Action::CodeDeploy(Action::Stop {
            deployment_id: id.to_string(),
        }))
    }

    /// A stop was decided for the active deployment and recorded before its call: follow
    /// it (CodeDeploy stops asynchronously). A call that did not take effect clears the
    /// record (`record_outcome`), so the stop is decided and sent again; a record left
    /// without `sent` means the outcome was lost (an ambiguous reply, a write that failed,
    /// a crash): the call is sent again only if the deployment has not stopped after
    /// [`STOP_UNCONFIRMED_WAIT`], so a stop that reached CodeDeploy is not sent twice.
    fn follow_stop(&mut self, stop: &StopRecord) -> Step {
        let id = &stop.deployment_id;
        let waited = crate::clock::elapsed_between(stop.requested_at, self.pass.now);
        if stop.sent || waited < STOP_UNCONFIRMED_WAIT {
            let message = if stop.sent {
                format!(
                    "{}: CodeDeploy is stopping {id} and rolling back",
                    stop.reason
                )
            } else {
                format!(
                    "{}: waiting for CodeDeploy to stop {id} (the reply to StopDeployment was lost)",
                    stop.reason
                )
            };
            let after = if stop.sent {
                POLL_ACTIVE
            } else {
                (STOP_UNCONFIRMED_WAIT - waited).min(POLL_ACTIVE)
            };
            return Step::new(Phase::Progressing, Reason::RollingBack, message).requeue(after);
        }
        let now = self.pass.now;
        if let Some(stop) = self.status().stop.as_mut() {
            stop.requested_at = now;
        }
        Step::new(
            Phase::Progressing,
            Reason::RollingBack,
            format!("{}: stopping {id} and rolling back", stop.reason),
        )
        .act(super::Action::CodeDeploy(Action::Stop {
            deployment_id: id.clone(),
        }))
    }

    /// A deployment of an earlier rollout of this release is still active (its rollout was
    /// superseded and the record of its stop was lost, or it was adopted late): stop it.
    fn stop_earlier(&mut self, active: &Deployment) -> Step {
        let id = active.id.clone();
        let stop = self.status().stop.clone().filter(|s| s.deployment_id == id);
        let message = format!(
            "rollout {} waits for {id}, of an earlier rollout, to stop",
            self.rollout.serial
        );
        match stop {
            Some(stop) if stop.sent => {
                Step::new(Phase::Pending, Reason::Superseded, message).requeue(POLL_ACTIVE)
            }
            _ => {
                let now = self.pass.now;
                self.status().stop = Some(StopRecord {
                    deployment_id: id.clone(),
                    reason: format!("superseded by rollout {}", self.rollout.serial),
                    requested_at: now,
                    sent: false,
                    superseded: true,
                });
                Step::new(Phase::Pending, Reason::Superseded, message).act(
                    super::Action::CodeDeploy(Action::Stop { deployment_id: id }),
                )
            }
        }
    }

    fn wait_for_rollback(&mut self, active: &Deployment) -> Step {
        let triggered_by = active
            .rollback
            .as_ref()
            .and_then(|r| r.rollback_triggering_deployment_id.clone())
            .unwrap_or_default();
        Step::new(
            Phase::Progressing,
            Reason::RollingBack,
            format!(
                "CodeDeploy is rolling {triggered_by} back ({}); rollout {} waits for it",
                active.id, self.rollout.serial
            ),
        )
        .requeue(POLL_ACTIVE)
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

    /// Step 5: the verdict from the state CodeDeploy reports once the deployment is final.
    fn verdict(&mut self, finished: &'a Deployment) -> Progress {
        self.pass.next.deployment_id = Some(finished.id.clone());
        self.status().creating_since = None;
        if finished.status == DeploymentStatus::Succeeded {
            return Progress::Ended(Verdict::new(
                Outcome::Succeeded,
                format!("deployment {} succeeded", finished.id),
            ));
        }
        let stop = self
            .status()
            .stop
            .clone()
            .filter(|s| s.deployment_id == finished.id);
        let why = stop
            .as_ref()
            .map(|s| s.reason.clone())
            .or_else(|| {
                finished
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, e.message))
            })
            .unwrap_or_else(|| format!("deployment {}", finished.status.as_str()));
        let ended = format!(
            "deployment {} {} ({why})",
            finished.id,
            finished.status.as_str().to_lowercase()
        );
        let rollback_id = finished
            .rollback
            .as_ref()
            .and_then(|r| r.rollback_deployment_id.clone());
        let restored = match rollback_id.as_deref().map(|id| (id, self.deployment(id))) {
            Some((id, None)) => {
                return Progress::Step(
                    Step::new(
                        Phase::Progressing,
                        Reason::RollingBack,
                        format!("{ended}; looking at its rollback {id}"),
                    )
                    .requeue(AFTER_ACTION),
                );
            }
            Some((_, Some(rollback))) if !rollback.status.is_terminal() => {
                return Progress::Step(
                    Step::new(
                        Phase::Progressing,
                        Reason::RollingBack,
                        format!("{ended}; CodeDeploy is rolling back ({})", rollback.id),
                    )
                    .requeue(POLL_ACTIVE),
                );
            }
            Some((_, Some(rollback))) if rollback.status == DeploymentStatus::Succeeded => Ok(()),
            Some((_, Some(rollback))) => Err(format!(
                "its rollback {} {}{}",
                rollback.id,
                rollback.status.as_str().to_lowercase(),
                rollback
                    .error
                    .as_ref()
                    .map(|e| format!(" ({}: {})", e.code, e.message))
                    .unwrap_or_default()
            )),
            None => {
                let live = self.pass.next.live_task_definition.as_deref();
                if live.is_some() && live == self.rollout.live.as_deref() {
                    Ok(())
                } else {
                    Err("the version that was live is not live again".to_string())
                }
            }
        };
        let superseded = stop.as_ref().is_some_and(|s| s.superseded);
        match restored {
            Ok(()) => Progress::Ended(Verdict::new(
                if superseded {
                    Outcome::Superseded
                } else {
                    Outcome::RolledBack
                },
                format!(
                    "{ended}; traffic is back on {}",
                    task_definition_short_name(self.rollout.live.as_deref().unwrap_or("?"))
                ),
            )),
            Err(why_not) => Progress::Ended(Verdict::new(
                Outcome::Failed,
                format!("{ended} and {why_not}; check the service"),
            )),
        }
    }

    // ----- derived values -----------------------------------------------------------

    /// The target groups an analysis's placeholders stand for: CodeDeploy's `Blue` task set's
    /// (live) and `Green` one's (candidate), else the live task set's group and the other
    /// one of the group's pair.
    fn analysis_target_groups(&self) -> (Option<String>, Option<String>) {
        let labelled = |label: &str| {
            self.observed.target.as_ref().and_then(|t| {
                t.task_sets
                    .iter()
                    .find(|s| s.label.as_deref() == Some(label))
                    .and_then(|s| s.target_group_name.clone())
            })
        };
        let live = labelled("Blue").or_else(|| {
            let service = self.pass.observed.service.found()?;
            let arn = service.primary_task_set()?.target_group_arns.first()?;
            Some(crate::ports::target_group_name_from_arn(arn).to_string())
        });
        let candidate = labelled("Green").or_else(|| {
            let live = live.as_deref()?;
            self.group()
                .target_group_names
                .iter()
                .find(|name| name.as_str() != live)
                .cloned()
        });
        (live, candidate)
    }

    fn traffic_weights(&self) -> Option<TrafficWeights> {
        if let Some(target) = &self.observed.target {
            // CodeDeploy labels the task set that was live `Blue` and the candidate `Green`.
            let live = target
                .task_sets
                .iter()
                .find(|t| t.label.as_deref() == Some("Blue"));
            let candidate = target
                .task_sets
                .iter()
                .find(|t| t.label.as_deref() == Some("Green"));
            if let (Some(live), Some(candidate)) = (live, candidate) {
                return Some(TrafficWeights {
                    live: live.traffic_weight,
                    candidate: candidate.traffic_weight,
                });
            }
        }
        // No target yet: the listener tells how much reaches the live task set's group.
        let service = self.pass.observed.service.found()?;
        let listener = self.observed.listener.as_ref()?;
        let live_group = service.primary_task_set()?.target_group_arns.first()?;
        let live = listener.percent_to(crate::ports::target_group_name_from_arn(live_group))?;
        Some(TrafficWeights {
            live,
            candidate: 100.0 - live,
        })
    }

    /// How soon to look again at the rollout's deployment: often while anything can change
    /// at any moment; during a canary or linear bake, right after the next traffic step;
    /// during the termination wait, when it ends. Rollback alarms need no polling here: the
    /// alarm watcher wakes the release. A bake's looks are at most `POLL_SLOW` apart and at
    /// least `POLL_ACTIVE`, one look per predicted step: well within the wait budget
    /// (`WAIT_CALLS_PER_MINUTE`).
    fn poll_interval(&self, active: &Deployment) -> Duration {
        // Until traffic shifts, a group that waits in Ready needs the controller there within
        // 2 s (to continue, or to report AwaitingPromotion); one that continues on its own
        // does not.
        let group = self.group();
        let hooks = if group.ready_action == ReadyAction::ContinueDeployment {
            POLL_PASSIVE
        } else {
            POLL_ACTIVE
        };
        let Some(target) = &self.observed.target else {
            return hooks;
        };
        let event = |name: &str| target.lifecycle_events.iter().find(|e| e.name == name);
        let now = self.pass.now;
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
        if let Some(after) = after {
            let wait = Duration::from_secs(u64::from(group.termination_wait_minutes) * 60);
            if let Some(ended) = after.end_time {
                let ends =
                    ended + jiff::SignedDuration::try_from(wait + STEP_SLACK).unwrap_or_default();
                return crate::clock::elapsed_between(now, ends).clamp(POLL_ACTIVE, POLL_SLOW);
            }
        }
        hooks
    }
}

/// The gate of an analysis of deployment `id`: its wait in `Ready`.
fn ready_gate(id: &str) -> String {
    format!("deployment {id} in Ready")
}

/// The strategy's part of `status`, created when missing.
pub fn status_of(status: &mut ReleaseStatus) -> &mut CodeDeployStatus {
    if !matches!(status.strategy, Some(StrategyStatus::CodeDeploy(_))) {
        status.strategy = Some(StrategyStatus::CodeDeploy(CodeDeployStatus::default()));
    }
    match &mut status.strategy {
        Some(StrategyStatus::CodeDeploy(status)) => status,
        _ => unreachable!("set just above"),
    }
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

/// Records what a CodeDeploy call returned in the status the pass wrote before it.
pub fn record_outcome(
    status: &mut ReleaseStatus,
    action: &Action,
    result: &Result<ActionResult, AwsError>,
) {
    match (action, result) {
        (Action::Create(_), Ok(ActionResult::Created { deployment_id })) => {
            status.deployment_id = Some(deployment_id.clone());
            status_of(status).creating_since = None;
            status.phase = Phase::Progressing;
            status.message = format!("deployment {deployment_id} created");
        }
        (Action::Create(_), Err(error)) => match &error.kind {
            // It may have taken effect: keep the intent, so the next pass searches first.
            AwsErrorKind::Ambiguous => {
                status.message = format!(
                    "CreateDeployment may not have completed ({error}); looking for it before trying again"
                );
            }
            AwsErrorKind::DeploymentLimitExceeded {
                active_deployment_id,
            } => {
                // The call did not take effect; the active deployment is found next pass.
                status_of(status).creating_since = None;
                status.message = format!(
                    "the deployment group already has an active deployment{}; waiting for it",
                    active_deployment_id
                        .as_deref()
                        .map(|id| format!(" ({id})"))
                        .unwrap_or_default()
                );
            }
            // Refused, throttled or failed before taking effect.
            _ => status_of(status).creating_since = None,
        },
        (Action::Stop { deployment_id }, Ok(_)) => mark_stop_sent(status, deployment_id),
        (Action::Stop { deployment_id }, Err(error)) if error.kind == AwsErrorKind::Conflict => {
            // Already finished: there is nothing left to stop; the next pass reads how it ended.
            mark_stop_sent(status, deployment_id);
            status.message = format!("{deployment_id} had already finished");
        }
        (Action::Stop { .. }, Err(error)) if !error.is_ambiguous() => {
            // It did not take effect: the next pass decides the stop again.
            status_of(status).stop = None;
        }
        (Action::Continue { deployment_id }, Err(error))
            if error.kind == AwsErrorKind::Conflict =>
        {
            status.message = format!("{deployment_id} was no longer waiting in Ready");
        }
        _ => {}
    }
}

fn mark_stop_sent(status: &mut ReleaseStatus, deployment_id: &str) {
    if let Some(stop) = status_of(status)
        .stop
        .as_mut()
        .filter(|s| s.deployment_id == deployment_id)
    {
        stop.sent = true;
    }
}
