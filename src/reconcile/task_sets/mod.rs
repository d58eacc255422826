//! `strategy.taskSets`: a canary the controller drives itself, on an `EXTERNAL` service
//! with two target groups, moving production traffic by weighting the listeners' forward
//! actions, one mutating call per pass:
//!
//! 1. **Target.** Before anything is registered: the service uses the `EXTERNAL`
//!    deployment controller and has a primary (live) task set on one group of the pair; both
//!    target groups exist and are attached to a load balancer; the listeners (listed, or
//!    found: every listener and rule of the pair's load balancers that forwards to the pair
//!    or to the live group only, the test listeners left out) forward to no group outside
//!    the pair. Roles alternate: the live task set's group is **live**, the other one is the
//!    **candidate** group.
//! 2. **Create** the candidate task set on the candidate group, at 100 percent of the
//!    service's desired count (never writing the desired count: autoscaling owns it), with
//!    the live task set's launch settings and container. The intent is written first; the
//!    call carries the rollout's client token and external id, so a pass that finds the
//!    intent looks for the task set before asking again.
//! 3. **Wait** until it is `STEADY_STATE` and its group has healthy targets (at least one,
//!    and no fewer than its running tasks). The looks back off ([`starting_poll`]); the
//!    targets' health is read only once the task set reports `STEADY_STATE`, and that look
//!    reads the routes too, so it goes on to test traffic and the first weight at once.
//! 4. **Test traffic**: every test listener forwards to the candidate group.
//! 5. **Steps**, in order: `setWeight: N` rewrites each production route to candidate N /
//!    live 100-N (one route per pass, each verified by reading it back); a timed `pause`
//!    waits (a promote skips it); `pause: {}` waits for `switchyard promote`. At the end of a
//!    timed pause (and for the first weight, once the candidate is steady) the pass does not
//!    read the production routes: the next write is guarded by the share switchyard set
//!    ([`ExpectedShare`]), so the read every write makes anyway verifies the last write and
//!    notices a hand change (the route is not written; the next pass reads it and holds the
//!    rollout, even for a share the next step would allow). A weight
//!    changed by hand (below the weight applied, or above the step's) holds the rollout
//!    (`AwaitingPromotion`, condition `Drifted`): promote writes that route's weights again,
//!    abort rolls back; a route switchyard already moved is never lowered. Edited steps
//!    continue from the first step whose weight is at least the highest share a route gives
//!    the candidate: a weight is never lowered by an edit, not even mid-step.
//!    During the steps a pass takes the service (its task sets) from the pass before
//!    ([`remembered_service`]: the steps decide on the routes) instead of describing it.
//! 6. **Switch**: every production route to 100 on the candidate, then, on a service described
//!    afresh, `UpdateServicePrimaryTaskSet` (a candidate draining or gone rolls back): the
//!    release is `Healthy`. After `scaleDownDelay` the old
//!    task set is scaled to 0 and deleted (clean-up; it never blocks the verdict). A candidate
//!    found primary has succeeded, whatever the status says (the switch's reply or the write
//!    after it was lost): nothing rolls it back, not even a newer candidate.
//! 7. **Roll back** (an alarm, an abort, a newer candidate, the progress deadline): first
//!    every production route back to 100 on the live group and the test listeners back to
//!    it; then the verdict (`RolledBack`, or `Superseded`); after `abortScaleDownDelay` the
//!    candidate task set is scaled to 0 and deleted. Nothing is deleted while it has weight.
//!
//! A rollout that makes no progress for `progressDeadline` (a task set never steady,
//! targets never healthy, weights that do not read back) is rolled back, saying what it
//! waited for; a manual gate is not a lack of progress. A controller killed at any point
//! resumes at the step it was on: everything it needs is in the status and in AWS.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::names;
use crate::model::task_sets::{CleanUp, RollingBack, TaskSetsStage, TaskSetsStatus, steps_digest};
use crate::model::{
    CanaryStep, ConditionStatus, ConditionType, Outcome, PauseStep, Phase, Reason, ReleaseSpec,
    ReleaseStatus, Rollout, StrategyStatus, TaskSetsStrategy, TrafficWeights,
};
use crate::ports::{
    AwsError, AwsErrorKind, CreateTaskSetRequest, DeploymentControllerType, ExpectedShare,
    LoadBalancerBinding, Route, Service, StabilityStatus, TargetGroup, TargetHealth,
    TargetHealthState, TaskSet, TaskSetStatus, WeightedTargetGroup, task_definition_short_name,
};

use super::analysis::AnalysisProgress;
use super::{
    AFTER_ACTION, Gate, Lookup, POLL_ACTIVE, POLL_FAILED, Pass, Progress, Step, Verdict,
    waiting_poll, waiting_until,
};

/// The shortest spacing of the looks while the candidate task set starts (see
/// [`starting_poll`]).
pub const POLL_STARTING: Duration = Duration::from_secs(5);
/// The longest spacing of the looks while the candidate task set starts.
pub const POLL_STARTING_MAX: Duration = Duration::from_secs(30);
/// The first look after `CreateTaskSet`: its reply says the task set exists; no task of it
/// can have started and passed a health check sooner.
pub const FIRST_LOOK_AFTER_CREATE: Duration = Duration::from_secs(10);
/// A timed pause's end is looked at no sooner than this after the look that computed it.
const PAUSE_END_MIN_WAIT: Duration = Duration::from_millis(100);

/// What the shell observed of the load balancer for the release.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The pair, in the document's order.
    pub target_groups: Lookup<Vec<TargetGroup>>,
    /// The routes the rollout weights (or, before it starts, every route of the pair's load
    /// balancers), and its test routes.
    pub routes: Vec<Route>,
    /// The candidate group's targets, while the rollout waits for them.
    pub candidate_health: Option<Vec<TargetHealth>>,
    /// The rollout's routes this pass did not read ([`routes_to_read`] leaves out those its
    /// stage does not decide on): a decision that needs one looks again first.
    pub unread_routes: Vec<String>,
    /// The service (and its task sets) is the one an earlier pass of the rollout described
    /// (see [`remembered_service`]), not described by this pass.
    pub service_remembered: bool,
}

/// Whether a pass of this release may take its service from memory instead of describing it:
/// `Some((candidate task set, may reuse))` while a task-set rollout is in flight with its
/// candidate created and not rolling back (remember the service seen), reusable during the
/// steps. What the steps decide on is the routes; of the service they read only what does not
/// change before the switch (the deployment controller, the live revision), and the switch
/// makes no call on a remembered service (it describes it first). The resync's look hands
/// every pass a fresh one.
pub fn remembered_service(status: &ReleaseStatus) -> Option<(&str, bool)> {
    status.rollout_in_flight()?;
    let state = task_sets_status(status)?;
    if state.rolling_back.is_some() {
        return None;
    }
    let candidate = state.candidate_task_set.as_deref()?;
    Some((candidate, state.stage == TaskSetsStage::Steps))
}

/// The routes a pass reads for a rollout (or its clean-up), and those it leaves unread: the
/// ELB describe rate is shared by the whole account and Region, so a pass reads only what its
/// stage decides on, given what the service (described first) shows. Waiting for the
/// candidate reads none until the task set reports `STEADY_STATE` (then the test routes: the
/// same pass moves on to test traffic and the first weight); the steps and the switch read the
/// production routes (hand-changed weights hold the rollout), except at the end of a timed
/// pause (`pause_ended`), none once the candidate is the primary (the switch took effect:
/// nothing is decided on a route any more). A production route left unread is written only
/// guarded ([`ExpectedShare`]: the share switchyard set), so the write's own read verifies the
/// last write and notices a weight changed by hand; creating, test
/// traffic and a rollback read them all; a clean-up reads them all only when its task set may
/// be deleted (scaled down: no task set with weight on a route is deleted) or the pass resolves
/// a new candidate (`resolving`: it may register one, and the target is checked first). A stage that moves
/// on in the same pass to one that needs an unread route looks again first.
pub fn routes_to_read(
    state: &TaskSetsStatus,
    in_flight: Option<&Rollout>,
    release: &str,
    service: &Service,
    pause_ended: bool,
    resolving: bool,
) -> (Vec<String>, Vec<String>) {
    let production = state.routes.clone();
    let test = state.test_routes.clone();
    let all = || production.iter().chain(&test).cloned().collect::<Vec<_>>();
    let Some(rollout) = in_flight else {
        let deletable = state.clean_up.as_ref().is_some_and(|job| {
            service.task_sets.iter().any(|t| {
                t.arn == job.task_set
                    && t.status != TaskSetStatus::Primary
                    && (job.scaled_down || t.scale_percent <= 0.0)
            })
        });
        // A pass that resolves a new candidate may register it: the target is checked first.
        return if deletable || resolving {
            (all(), Vec::new())
        } else {
            (Vec::new(), all())
        };
    };
    let candidate = find_candidate(state, release, rollout.serial, service);
    match state.stage {
        TaskSetsStage::WaitingForCandidate if !candidate.is_some_and(is_steady) => {
            (Vec::new(), all())
        }
        // Steady: test traffic is decided on its routes; the first weight's write is guarded.
        TaskSetsStage::WaitingForCandidate => (test, production),
        // The next step's write (guarded) reads the production route it rewrites.
        TaskSetsStage::Steps if pause_ended => (Vec::new(), all()),
        TaskSetsStage::Switching
            if candidate.is_some_and(|t| t.status == TaskSetStatus::Primary) =>
        {
            (Vec::new(), all())
        }
        TaskSetsStage::Steps | TaskSetsStage::Switching => (production, test),
        TaskSetsStage::Creating | TaskSetsStage::TestTraffic | TaskSetsStage::RollingBack => {
            (all(), Vec::new())
        }
    }
}

/// The target group whose targets' health a pass reads: the candidate group, while the
/// rollout waits for its task set and the task set reports `STEADY_STATE` (ECS's own counts
/// say it is not ready before that, so reading its targets would decide nothing).
pub fn candidate_health_to_read(
    state: &TaskSetsStatus,
    in_flight: Option<&Rollout>,
    release: &str,
    service: &Service,
) -> Option<String> {
    let rollout = in_flight?;
    if !matches!(
        state.stage,
        TaskSetsStage::Creating | TaskSetsStage::WaitingForCandidate
    ) {
        return None;
    }
    find_candidate(state, release, rollout.serial, service)
        .filter(|t| is_steady(t))
        .and(state.candidate_target_group.clone())
}

fn is_steady(task_set: &TaskSet) -> bool {
    task_set.stability == StabilityStatus::SteadyState
}

/// The rollout's candidate task set in the service: by the ARN recorded, or (created, its
/// reply lost) by the rollout's external id.
fn find_candidate<'s>(
    state: &TaskSetsStatus,
    release: &str,
    serial: u32,
    service: &'s Service,
) -> Option<&'s TaskSet> {
    let marker = external_id(release, serial);
    service.task_sets.iter().find(|t| {
        state.candidate_task_set.as_deref() == Some(t.arn.as_str())
            || t.external_id.as_deref() == Some(marker.as_str())
    })
}

/// The next look while the candidate task set starts: a back-off on the time waited since it
/// was created (half of it, from [`POLL_STARTING`] to [`POLL_STARTING_MAX`]), so a task set
/// that starts in seconds is seen soon after, one that takes minutes (images pulled, health
/// checks passed) costs a few looks rather than one every few seconds. Each look is at most
/// half the time waited late, and at most [`POLL_STARTING_MAX`].
pub fn starting_poll(waited: Duration) -> Duration {
    (waited / 2).clamp(POLL_STARTING, POLL_STARTING_MAX)
}

/// The calls a pass may make.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per pass, never stored in bulk: boxing would only add an indirection"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateTaskSet(CreateTaskSetRequest),
    /// Rewrites one route's forward action; with `expected`, only if the route still gives
    /// the candidate that share (a route the pass did not read: the write's own read is the
    /// look).
    SetWeights {
        route: String,
        weights: Vec<WeightedTargetGroup>,
        expected: Option<ExpectedShare>,
    },
    UpdatePrimary {
        cluster: String,
        service: String,
        task_set: String,
    },
    Scale {
        cluster: String,
        service: String,
        task_set: String,
        percent: f64,
    },
    Delete {
        cluster: String,
        service: String,
        task_set: String,
    },
}

impl Action {
    pub fn operation(&self) -> &'static str {
        match self {
            Action::CreateTaskSet(_) => "ecs:CreateTaskSet",
            Action::SetWeights { route, .. } if route.contains(":listener-rule/") => {
                "elasticloadbalancing:ModifyRule"
            }
            Action::SetWeights { .. } => "elasticloadbalancing:ModifyListener",
            Action::UpdatePrimary { .. } => "ecs:UpdateServicePrimaryTaskSet",
            Action::Scale { .. } => "ecs:UpdateTaskSet",
            Action::Delete { .. } => "ecs:DeleteTaskSet",
        }
    }
}

/// What a call returned.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per pass, never stored in bulk: boxing would only add an indirection"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    Created(TaskSet),
    Done,
}

/// The external id that marks the rollout's candidate task set.
pub fn external_id(release: &str, serial: u32) -> String {
    format!("switchyard:{release}:{serial}")
}

/// The rollout's `CreateTaskSet` client token (at most 36 characters).
pub fn client_token(release: &str, serial: u32) -> String {
    let digest = Sha256::digest(format!("{release}/{serial}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sy-{hex}")
}

/// The rollout's target, normalized: the service, the pair, the listeners, the container.
pub fn target_key(spec: &ReleaseSpec, strategy: &TaskSetsStrategy) -> String {
    let mut groups: Vec<&str> = strategy
        .target_groups
        .iter()
        .map(|g| names::target_group_name(g).unwrap_or(g))
        .collect();
    groups.sort_unstable();
    let mut listeners = strategy.listeners.clone();
    listeners.sort();
    let mut tests = strategy.test_listeners.clone();
    tests.sort();
    format!(
        "taskSets:{}:{}:{}:{}:{}",
        super::service_key(spec),
        groups.join(","),
        listeners.join(","),
        tests.join(","),
        strategy
            .container
            .as_ref()
            .map(|c| format!("{}:{}", c.name, c.port))
            .unwrap_or_default()
    )
}

/// The strategy's part of `status`, created when missing.
pub fn status_of(status: &mut ReleaseStatus) -> &mut TaskSetsStatus {
    if !matches!(status.strategy, Some(StrategyStatus::TaskSets(_))) {
        status.strategy = Some(StrategyStatus::TaskSets(TaskSetsStatus::default()));
    }
    match &mut status.strategy {
        Some(StrategyStatus::TaskSets(status)) => status,
        _ => unreachable!("set just above"),
    }
}

fn task_sets_status(status: &ReleaseStatus) -> Option<&TaskSetsStatus> {
    match &status.strategy {
        Some(StrategyStatus::TaskSets(status)) => Some(status),
        _ => None,
    }
}

/// The roles of the pair: (live group, candidate group), from the primary task set.
fn roles<'t>(
    service: &Service,
    groups: &'t [TargetGroup],
) -> Option<(&'t TargetGroup, &'t TargetGroup)> {
    let primary = service.primary_task_set()?;
    let live = groups
        .iter()
        .find(|g| primary.target_group_arns.contains(&g.arn))?;
    let candidate = groups.iter().find(|g| g.arn != live.arn)?;
    Some((live, candidate))
}

/// The production routes of a rollout about to start: the listed ones, or every route of the
/// pair's load balancers that forwards to the pair or to the live group only (the test
/// routes left out).
fn production_routes<'r>(
    strategy: &TaskSetsStrategy,
    routes: &'r [Route],
    live: &TargetGroup,
    candidate: &TargetGroup,
) -> Vec<&'r Route> {
    if !strategy.listeners.is_empty() {
        return routes
            .iter()
            .filter(|r| strategy.listeners.contains(&r.arn))
            .collect();
    }
    routes
        .iter()
        .filter(|r| !strategy.test_listeners.contains(&r.arn))
        .filter(|r| {
            let Some(forward) = &r.forward else {
                return false;
            };
            let names_live = forward.iter().any(|t| t.target_group_arn == live.arn);
            let only_pair = forward
                .iter()
                .all(|t| t.target_group_arn == live.arn || t.target_group_arn == candidate.arn);
            names_live && only_pair
        })
        .collect()
}

/// Checks the target before anything is registered. `Err` is the step to take instead.
#[allow(clippy::result_large_err)]
pub fn check_target(
    spec: &ReleaseSpec,
    strategy: &TaskSetsStrategy,
    service: &Service,
    observed: Option<&Observed>,
    in_flight: bool,
) -> Result<(), Step> {
    let failed = |reason: Reason, message: String| {
        Err(Step::new(Phase::Failed, reason, message).requeue(POLL_FAILED))
    };
    if service.deployment_controller != DeploymentControllerType::External {
        return failed(
            Reason::WrongDeploymentController,
            format!(
                "service {}/{} uses the {} deployment controller; the taskSets strategy needs EXTERNAL",
                service.cluster,
                service.name,
                service.deployment_controller.as_str()
            ),
        );
    }
    let Some(observed) = observed else {
        return Ok(());
    };
    let groups = match &observed.target_groups {
        Lookup::Found(groups) => groups,
        Lookup::Missing => {
            return failed(
                Reason::MisconfiguredService,
                format!(
                    "target groups {} not found; create them or fix spec.strategy.taskSets.targetGroups",
                    strategy.target_groups.join(" and ")
                ),
            );
        }
        Lookup::NotLookedUp => return Ok(()),
    };
    if groups.iter().all(|g| g.load_balancer_arns.is_empty()) {
        return failed(
            Reason::MisconfiguredService,
            format!(
                "target groups {} and {} are on no listener; forward a listener (or a rule) of the load balancer to the live group first",
                groups[0].name,
                groups.get(1).map_or("", |g| g.name.as_str())
            ),
        );
    }
    if in_flight || !observed.unread_routes.is_empty() {
        // The roles and routes are the rollout's, recorded when it started; or the pass read
        // no route (a clean-up that is not deleting, with nothing to register: a rollout
        // starts only after the clean-up, on routes discovered then).
        return Ok(());
    }
    let Some((live, candidate)) = roles(service, groups) else {
        return failed(
            Reason::MisconfiguredService,
            format!(
                "service {}/{} has no primary task set on target group {} or {}; create the first task set before releasing (the external-service Terraform module's bootstrap_script does)",
                service.cluster,
                service.name,
                groups[0].name,
                groups.get(1).map_or("", |g| g.name.as_str())
            ),
        );
    };
    for arn in strategy.listeners.iter().chain(&strategy.test_listeners) {
        let Some(route) = observed.routes.iter().find(|r| &r.arn == arn) else {
            return failed(
                Reason::MisconfiguredService,
                format!("listener or rule {arn} not found; fix spec.strategy.taskSets"),
            );
        };
        let outside: Vec<&str> = route
            .forward
            .iter()
            .flatten()
            .filter(|t| t.target_group_arn != live.arn && t.target_group_arn != candidate.arn)
            .map(|t| t.target_group_arn.as_str())
            .collect();
        if route.forward.is_none() || !outside.is_empty() {
            return failed(
                Reason::MisconfiguredService,
                format!(
                    "{arn} forwards to {}, outside the pair {} and {}; list only routes that forward to the pair",
                    if outside.is_empty() {
                        "nothing".to_string()
                    } else {
                        outside.join(", ")
                    },
                    live.name,
                    candidate.name
                ),
            );
        }
    }
    if production_routes(strategy, &observed.routes, live, candidate).is_empty() {
        return failed(
            Reason::MisconfiguredService,
            format!(
                "no listener or rule of the pair's load balancers forwards to {}; add one or list spec.strategy.taskSets.listeners",
                live.name
            ),
        );
    }
    let _ = spec;
    Ok(())
}

/// Carries the rollout in flight one step further.
pub fn progress<'a>(
    pass: &mut Pass<'a>,
    spec: &'a ReleaseSpec,
    strategy: &'a TaskSetsStrategy,
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
        super::StrategyObserved::TaskSets(observed) if observed.target_groups.found().is_some() => {
            observed
        }
        _ => {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "looking up the target groups",
                )
                .requeue(AFTER_ACTION),
            );
        }
    };
    let mut ts = TaskSets {
        pass,
        spec,
        strategy,
        service,
        observed,
        rollout: rollout.clone(),
    };
    ts.progress(gate, superseded)
}

struct TaskSets<'p, 'a> {
    pass: &'p mut Pass<'a>,
    spec: &'a ReleaseSpec,
    strategy: &'a TaskSetsStrategy,
    service: &'a Service,
    observed: &'a Observed,
    rollout: Rollout,
}

impl<'a> TaskSets<'_, 'a> {
    fn status(&mut self) -> &mut TaskSetsStatus {
        status_of(&mut self.pass.next)
    }

    fn state(&self) -> TaskSetsStatus {
        task_sets_status(&self.pass.next)
            .cloned()
            .unwrap_or_default()
    }

    /// The AWS calls of a look at the rollout, for the wait budget: DescribeServices (the
    /// task sets come with it); per route the rollout weights or points at the candidate,
    /// DescribeListeners for a listener's default action, DescribeRules and DescribeListeners
    /// (its port) for a rule; and DescribeTargetGroups for the pair, counted in every look
    /// although its answer is cached for five minutes.
    fn look_calls(&self) -> u32 {
        let routes = task_sets_status(&self.pass.next)
            .map(|s| s.routes.iter().chain(&s.test_routes))
            .into_iter()
            .flatten()
            .map(|arn| {
                if arn.contains(":listener-rule/") {
                    2
                } else {
                    1
                }
            })
            .sum::<u32>();
        2 + routes
    }

    fn release(&self) -> &'a str {
        &self.pass.desired.name
    }

    fn cluster(&self) -> String {
        names::cluster_key(&self.spec.service.cluster).to_string()
    }

    fn progress(&mut self, gate: &Gate, superseded: Option<&str>) -> Progress {
        if task_sets_status(&self.pass.next).is_none()
            && let Err(step) = self.start()
        {
            return Progress::Step(step);
        }
        let state = self.state();
        self.pass.next.deployment_id = state.candidate_task_set.clone();
        self.pass.next.traffic_weights = Some(self.observed_weights(&state));

        // Rolling back already, or must: restore traffic first.
        if state.stage == TaskSetsStage::RollingBack {
            return self.roll_back();
        }
        // The switch took effect (the call's reply, or the status write after it, was
        // lost): the candidate serves production as the primary task set and the rollout
        // has succeeded. Nothing rolls it back any more; a newer candidate starts after it.
        if state.stage == TaskSetsStage::Switching
            && self
                .candidate_task_set(&state)
                .is_some_and(|t| t.status == TaskSetStatus::Primary)
        {
            return self.switched(&state);
        }
        let why = superseded.map(|s| (s.to_string(), true, None)).or_else(|| {
            gate.roll_back
                .as_ref()
                .map(|r| (r.message.clone(), false, r.request))
        });
        if let Some((reason, superseded, request)) = why {
            return self.begin_roll_back(reason, superseded).completing(request);
        }
        if let Some(expired) = self.deadline_passed(&state) {
            return self.begin_roll_back(expired, false);
        }
        match state.stage {
            TaskSetsStage::Creating => self.create(gate),
            TaskSetsStage::WaitingForCandidate => self.wait_for_candidate(gate),
            TaskSetsStage::TestTraffic => self.test_traffic(gate),
            TaskSetsStage::Steps => self.steps(gate),
            TaskSetsStage::Switching => self.switch(gate),
            TaskSetsStage::RollingBack => unreachable!("handled above"),
        }
    }

    /// Records the roles and routes of a rollout that starts.
    #[allow(clippy::result_large_err)]
    fn start(&mut self) -> Result<(), Step> {
        // The production routes are recorded from what this pass read: a pass that read no
        // route (the one whose clean-up of the last rollout just finished, say) would record
        // none, and a rollout on no route would move no traffic. The next pass discovers them
        // (no task-set state: the plan reads every route of the pair's load balancers).
        if !self.observed.unread_routes.is_empty() {
            return Err(Step::new(
                Phase::Progressing,
                Reason::DeploymentInProgress,
                "reading the listeners before the rollout starts".to_string(),
            )
            .requeue(AFTER_ACTION));
        }
        let groups = self
            .observed
            .target_groups
            .found()
            .cloned()
            .unwrap_or_default();
        let Some((live, candidate)) = roles(self.service, &groups) else {
            return Err(Step::new(
                Phase::Failed,
                Reason::MisconfiguredService,
                "the service has no primary task set on the pair".to_string(),
            )
            .requeue(POLL_FAILED));
        };
        let routes: Vec<String> =
            production_routes(self.strategy, &self.observed.routes, live, candidate)
                .into_iter()
                .map(|r| r.arn.clone())
                .collect();
        let steps = self.strategy.effective_steps();
        let now = self.pass.now;
        let live_task_set = self.service.primary_task_set().map(|t| t.arn.clone());
        *self.status() = TaskSetsStatus {
            stage: TaskSetsStage::Creating,
            live_task_set,
            live_target_group: Some(live.arn.clone()),
            candidate_target_group: Some(candidate.arn.clone()),
            routes,
            test_routes: self.strategy.test_listeners.clone(),
            step_count: steps.len(),
            steps_digest: steps_digest(&steps),
            progress_at: Some(now),
            weights: vec![crate::model::task_sets::WeightPoint {
                at: now,
                candidate: 0,
            }],
            ..TaskSetsStatus::default()
        };
        Ok(())
    }

    // ----- observed values ----------------------------------------------------------

    /// Whether this pass left any of `routes` unread (see [`routes_to_read`]).
    fn unread(&self, routes: &[String]) -> bool {
        routes
            .iter()
            .any(|arn| self.observed.unread_routes.contains(arn))
    }

    fn route(&self, arn: &str) -> Option<&'a Route> {
        self.observed.routes.iter().find(|r| r.arn == arn)
    }

    /// The candidate's percentage on a route, as observed.
    fn candidate_percent(&self, state: &TaskSetsStatus, arn: &str) -> Option<u32> {
        let candidate = state.candidate_target_group.as_deref()?;
        let route = self.route(arn)?;
        route.percent_to(candidate).map(|p| p.round() as u32)
    }

    fn observed_weights(&self, state: &TaskSetsStatus) -> TrafficWeights {
        let percent = state
            .routes
            .first()
            .and_then(|arn| self.candidate_percent(state, arn))
            .unwrap_or(state.weight);
        TrafficWeights {
            live: f64::from(100 - percent.min(100)),
            candidate: f64::from(percent.min(100)),
        }
    }

    fn candidate_task_set(&self, state: &TaskSetsStatus) -> Option<&'a TaskSet> {
        find_candidate(state, self.release(), self.rollout.serial, self.service)
    }

    fn weights_for(
        &self,
        state: &TaskSetsStatus,
        candidate_percent: u32,
    ) -> Vec<WeightedTargetGroup> {
        let candidate = state.candidate_target_group.clone().unwrap_or_default();
        let live = state.live_target_group.clone().unwrap_or_default();
        vec![
            WeightedTargetGroup {
                target_group_arn: live,
                weight: 100 - candidate_percent,
            },
            WeightedTargetGroup {
                target_group_arn: candidate,
                weight: candidate_percent,
            },
        ]
    }

    /// The first route (production or test, per `routes`) not at `percent`: the next write.
    fn next_route_to_set(
        &self,
        state: &TaskSetsStatus,
        routes: &[String],
        percent: u32,
    ) -> Option<String> {
        routes
            .iter()
            .find(|arn| self.candidate_percent(state, arn) != Some(percent))
            .cloned()
    }

    fn set_weights(
        &mut self,
        route: String,
        percent: u32,
        phase: Phase,
        reason: Reason,
        message: String,
    ) -> Progress {
        let state = self.state();
        let weights = self.weights_for(&state, percent);
        // A route this pass did not read: only if it still gives the share switchyard set.
        let expected = self
            .unread(std::slice::from_ref(&route))
            .then(|| ExpectedShare {
                target_group_arn: state.candidate_target_group.clone().unwrap_or_default(),
                percent: state.weight,
            });
        Progress::Step(
            Step::new(phase, reason, message).act(super::Action::TaskSets(Action::SetWeights {
                route,
                weights,
                expected,
            })),
        )
    }

    fn deadline_passed(&self, state: &TaskSetsStatus) -> Option<String> {
        let waiting = match state.stage {
            TaskSetsStage::Creating | TaskSetsStage::WaitingForCandidate => {
                "the candidate task set to be steady with healthy targets"
            }
            TaskSetsStage::TestTraffic | TaskSetsStage::Switching => {
                "the listeners to read back the weights switchyard set"
            }
            // Steps wait on purpose (pauses, promotions); a weight that does not read back
            // is caught by the write's own retries.
            TaskSetsStage::Steps | TaskSetsStage::RollingBack => return None,
        };
        let since = state.progress_at?;
        let deadline = self.strategy.progress_deadline();
        (crate::clock::elapsed_between(since, self.pass.now) > deadline).then(|| {
            format!(
                "no progress for {}: waited for {waiting}",
                super::friendly(deadline)
            )
        })
    }

    fn advanced(&mut self) {
        let now = self.pass.now;
        self.status().progress_at = Some(now);
    }

    // ----- the stages ---------------------------------------------------------------

    /// Step 2: the intent, then CreateTaskSet.
    fn create(&mut self, gate: &Gate) -> Progress {
        let state = self.state();
        if let Some(found) = self.candidate_task_set(&state) {
            let arn = found.arn.clone();
            let status = self.status();
            status.candidate_task_set = Some(arn);
            status.creating_since = None;
            status.stage = TaskSetsStage::WaitingForCandidate;
            self.advanced();
            return self.wait_for_candidate(gate);
        }
        // ECS refuses a task set on a target group no listener forwards to: a production
        // route names the candidate group first, at weight 0 (no traffic moves).
        let candidate_group = state.candidate_target_group.clone().unwrap_or_default();
        let attached = self
            .observed
            .target_groups
            .found()
            .and_then(|groups| groups.iter().find(|g| g.arn == candidate_group))
            .is_some_and(|g| !g.load_balancer_arns.is_empty())
            || self.observed.routes.iter().any(|r| {
                r.forward
                    .iter()
                    .flatten()
                    .any(|t| t.target_group_arn == candidate_group)
            });
        if !attached
            && !gate.paused
            && let Some(route) = state.routes.first().cloned()
        {
            return self.set_weights(
                    route,
                    0,
                    Phase::Progressing,
                    Reason::DeploymentInProgress,
                    "naming the candidate group in the production route at weight 0 (ECS needs it on a listener)".into(),
                );
        }
        if gate.paused {
            return Progress::Step(
                Step::new(
                    Phase::Pending,
                    Reason::Paused,
                    format!(
                        "rollout {} has not created its task set yet; it waits until `switchyard resume {}`",
                        self.rollout.serial,
                        self.release()
                    ),
                )
                .requeue(waiting_poll(self.look_calls())),
            );
        }
        let Some(live) = self.service.primary_task_set() else {
            return Progress::Step(
                Step::new(
                    Phase::Failed,
                    Reason::MisconfiguredService,
                    "the service has no primary task set to copy the launch settings from",
                )
                .requeue(POLL_FAILED),
            );
        };
        let container = match (&self.strategy.container, live.load_balancers.first()) {
            (Some(c), _) => LoadBalancerBinding {
                target_group_arn: String::new(),
                container_name: c.name.clone(),
                container_port: c.port,
            },
            (None, Some(binding)) => binding.clone(),
            (None, None) => {
                return Progress::Step(
                    Step::new(
                        Phase::Failed,
                        Reason::MisconfiguredService,
                        "the live task set names no container for its target group; set spec.strategy.taskSets.container",
                    )
                    .requeue(POLL_FAILED),
                );
            }
        };
        if let Some(content) = self.pass.candidate_content(&self.rollout.candidate)
            && content
                .container(&container.container_name)
                .is_none_or(|c| {
                    !c.container_ports.is_empty()
                        && !c.container_ports.contains(&container.container_port)
                })
        {
            return Progress::Step(
                Step::new(
                    Phase::Failed,
                    Reason::MisconfiguredService,
                    format!(
                        "task definition {} has no container {} with port {}; fix spec.strategy.taskSets.container",
                        content.short_name(),
                        container.container_name,
                        container.container_port
                    ),
                )
                .requeue(POLL_FAILED),
            );
        }
        let request = CreateTaskSetRequest {
            cluster: self.cluster(),
            service: self.spec.service.name.clone(),
            task_definition: self.rollout.candidate.clone(),
            load_balancer: LoadBalancerBinding {
                target_group_arn: state.candidate_target_group.clone().unwrap_or_default(),
                ..container
            },
            scale_percent: 100.0,
            client_token: client_token(self.release(), self.rollout.serial),
            external_id: external_id(self.release(), self.rollout.serial),
            launch: live.launch.clone(),
        };
        let now = self.pass.now;
        self.status().creating_since = Some(now);
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::DeploymentInProgress,
                format!(
                    "creating the candidate task set of {} on {}",
                    task_definition_short_name(&self.rollout.candidate),
                    names::target_group_name(&request.load_balancer.target_group_arn)
                        .unwrap_or(&request.load_balancer.target_group_arn)
                ),
            )
            .act(super::Action::TaskSets(Action::CreateTaskSet(request)))
            .requeue(FIRST_LOOK_AFTER_CREATE),
        )
    }

    /// Step 3: steady, with healthy targets.
    fn wait_for_candidate(&mut self, gate: &Gate) -> Progress {
        let state = self.state();
        let Some(candidate) = self.candidate_task_set(&state) else {
            return self.begin_roll_back(
                "the candidate task set disappeared (deleted outside switchyard)".into(),
                false,
            );
        };
        let healthy = self.observed.candidate_health.as_ref().map(|targets| {
            targets
                .iter()
                .filter(|t| t.state == TargetHealthState::Healthy)
                .count() as u32
        });
        let steady = candidate.stability == StabilityStatus::SteadyState;
        let enough = healthy.is_some_and(|h| h >= 1 && h >= candidate.running_count);
        if steady && enough {
            let status = self.status();
            status.stage = TaskSetsStage::TestTraffic;
            self.advanced();
            return self.test_traffic(gate);
        }
        let waited = state
            .progress_at
            .map(|since| crate::clock::elapsed_between(since, self.pass.now))
            .unwrap_or_default();
        let message = match healthy {
            Some(healthy) => format!(
                "waiting for the candidate task set: {}, {healthy} of {} targets healthy",
                if steady { "steady" } else { "stabilizing" },
                candidate.running_count.max(1)
            ),
            None => format!(
                "waiting for the candidate task set: stabilizing, {} of {} tasks running",
                candidate.running_count, candidate.computed_desired_count
            ),
        };
        Progress::Step(
            Step::new(Phase::Progressing, Reason::DeploymentInProgress, message)
                .requeue(starting_poll(waited)),
        )
    }

    /// Step 4: the test listeners to the candidate group.
    fn test_traffic(&mut self, gate: &Gate) -> Progress {
        let state = self.state();
        if self.unread(&state.test_routes) {
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::DeploymentInProgress,
                    "the candidate task set is steady and its targets healthy; reading the listeners before test traffic",
                )
                .requeue(AFTER_ACTION),
            );
        }
        if let Some(route) = self.next_route_to_set(&state, &state.test_routes, 100) {
            let message = format!("pointing test listener {route} at the candidate group");
            return self.set_weights(
                route,
                100,
                Phase::Progressing,
                Reason::DeploymentInProgress,
                message,
            );
        }
        let now = self.pass.now;
        let status = self.status();
        status.stage = TaskSetsStage::Steps;
        status.step_index = Some(0);
        status.step_started_at = Some(now);
        self.advanced();
        self.steps(gate)
    }

    /// Step 5: the steps, from the one the status records.
    fn steps(&mut self, gate: &Gate) -> Progress {
        let steps = self.strategy.effective_steps();
        self.follow_edited_steps(&steps);
        let promote = gate.promote.is_some();
        let full = promote && self.pass.promote_is_full();
        if full {
            let status = self.status();
            status.step_index = Some(steps.len());
            status.stage = TaskSetsStage::Switching;
            // As after a promoted pause: handled with the status that skips the steps.
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::Promoting,
                    "promoted in full: the switch starts now",
                )
                .requeue(Duration::ZERO),
            )
            .completing(gate.promote);
        }
        // Hand-changed weights hold the rollout.
        let state = self.state();
        if let Some((route, drift)) = self.hand_changed(&state, &steps) {
            if promote {
                // Applies the current step again: the weights of the route changed by hand,
                // written anew (a route already at the step's target stays there).
                return self
                    .set_weights(
                        route,
                        state.weight,
                        Phase::Progressing,
                        Reason::Promoting,
                        format!("{drift}; promoted: setting the step's weights again"),
                    )
                    .completing(gate.promote);
            }
            self.pass.set_condition(
                ConditionType::Drifted,
                ConditionStatus::True,
                Reason::Drifted,
                drift.clone(),
            );
            return Progress::Step(
                Step::new(
                    Phase::AwaitingPromotion,
                    Reason::Drifted,
                    format!(
                        "{drift}; the rollout is held: `switchyard promote {0}` sets the step's weights again, `switchyard abort {0}` rolls back",
                        self.release()
                    ),
                )
                .requeue(waiting_poll(self.look_calls())),
            );
        }
        self.pass.clear_drift();
        if state.route_changed && !self.unread(&state.routes) {
            self.status().route_changed = false;
        }
        loop {
            let state = self.state();
            let index = state.step_index.unwrap_or(0);
            let Some(step) = steps.get(index) else {
                self.status().stage = TaskSetsStage::Switching;
                return self.switch(gate);
            };
            {
                let status = self.status();
                status.step = Some(step.describe());
                status.step_count = steps.len();
            }
            match step {
                CanaryStep::SetWeight(target) => {
                    let target = (*target).max(state.weight);
                    if gate.paused {
                        return self.held(index, &steps);
                    }
                    if let Some(route) = self.next_route_to_set(&state, &state.routes, target) {
                        let message = format!(
                            "step {}/{}: setting {target}% of production traffic on the candidate",
                            index + 1,
                            steps.len()
                        );
                        return self.set_weights(
                            route,
                            target,
                            Phase::Progressing,
                            Reason::DeploymentInProgress,
                            message,
                        );
                    }
                    self.next_step(target);
                }
                CanaryStep::Pause(PauseStep { duration }) => {
                    if promote {
                        self.next_step(state.weight);
                        return self.continue_after_promote(gate);
                    }
                    let started = state.step_started_at.unwrap_or(self.pass.now);
                    match duration {
                        Some(duration) => {
                            let ends = started
                                + jiff::SignedDuration::try_from(duration.get())
                                    .unwrap_or_default();
                            self.status().pause_ends_at = Some(ends);
                            if self.pass.now >= ends && !gate.paused {
                                self.next_step(state.weight);
                                continue;
                            }
                            // The next step is set at the pause's end exactly; looks before
                            // it stay within the wait budget. The message names the end
                            // rather than the time left, so a look that sees nothing new
                            // writes nothing.
                            let left = crate::clock::elapsed_between(self.pass.now, ends);
                            return Progress::Step(
                                Step::new(
                                    Phase::Progressing,
                                    if gate.paused { Reason::Paused } else { Reason::DeploymentInProgress },
                                    // The end, not the time left: the message stays true
                                    // (and the status unwritten) until the bake ends.
                                    format!(
                                        "step {}/{}: baking {}% on the candidate until {}{}",
                                        index + 1,
                                        steps.len(),
                                        state.weight,
                                        crate::model::task_sets::to_the_second(ends),
                                        if gate.paused { " (the release is paused: the rollout stays here after it)" } else { "" }
                                    ),
                                )
                                .requeue(if gate.paused && self.pass.now >= ends {
                                    // Held past the end: a wait like any hold (`resume`
                                    // arrives through the stream), not the end's countdown.
                                    waiting_poll(self.look_calls())
                                } else {
                                    waiting_until(left, self.look_calls()).max(PAUSE_END_MIN_WAIT)
                                }),
                            );
                        }
                        None => {
                            return Progress::Step(
                                Step::new(
                                    Phase::AwaitingPromotion,
                                    Reason::AwaitingPromotion,
                                    format!(
                                        "step {}/{}: {}% on the candidate; run `switchyard promote {}` to go on",
                                        index + 1,
                                        steps.len(),
                                        state.weight,
                                        self.release()
                                    ),
                                )
                                .requeue(waiting_poll(self.look_calls())),
                            );
                        }
                    }
                }
                CanaryStep::Analysis(analysis) => {
                    let at_gate = super::analysis::AnalysisGate {
                        gate: format!("step {}", index + 1),
                        live_target_group: state.live_target_group.clone(),
                        candidate_target_group: state.candidate_target_group.clone(),
                        promote,
                    };
                    let at = format!("step {}/{}", index + 1, steps.len());
                    match super::analysis::run(self.pass, analysis, &at_gate) {
                        AnalysisProgress::Running { message, after } => {
                            let held = if gate.paused {
                                " (the release is paused: the rollout stays here after it)"
                            } else {
                                ""
                            };
                            return Progress::Step(
                                Step::new(
                                    Phase::Progressing,
                                    Reason::Analyzing,
                                    format!(
                                        "{at}: {}% on the candidate; {message}{held}",
                                        state.weight
                                    ),
                                )
                                .requeue(after),
                            );
                        }
                        AnalysisProgress::Failed { message } => {
                            return self.begin_roll_back(message, false);
                        }
                        AnalysisProgress::Inconclusive { message } => {
                            return Progress::Step(
                                Step::new(
                                    Phase::AwaitingPromotion,
                                    Reason::AnalysisInconclusive,
                                    format!(
                                        "{at}: {message}; `switchyard promote {0}` goes on, `switchyard abort {0}` rolls back",
                                        self.release()
                                    ),
                                )
                                .requeue(waiting_poll(self.look_calls())),
                            );
                        }
                        AnalysisProgress::Passed { promoted, .. } => {
                            if gate.paused {
                                return self.held(index, &steps);
                            }
                            self.next_step(state.weight);
                            if promoted {
                                return self.continue_after_promote(gate);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A promote ended a pause. The status that moves past it carries the promote as
    /// handled, and makes no call: the next pass, at once, starts the next step. (Were the
    /// next step's call made in this pass, the promote would be handled only once that call
    /// succeeded, while the step it ended is already behind: a failed call would leave it
    /// pending, to end the next manual pause by itself.)
    fn continue_after_promote(&mut self, gate: &Gate) -> Progress {
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::Promoting,
                "promoted past the pause; the next step starts now",
            )
            .requeue(Duration::ZERO),
        )
        .completing(gate.promote)
    }

    fn next_step(&mut self, weight: u32) {
        let now = self.pass.now;
        let status = self.status();
        status.set_weight(weight, now);
        status.step_index = Some(status.step_index.unwrap_or(0) + 1);
        status.step_started_at = Some(now);
        status.pause_ends_at = None;
        self.advanced();
    }

    fn held(&mut self, index: usize, steps: &[CanaryStep]) -> Progress {
        let weight = self.state().weight;
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::Paused,
                format!(
                    "step {}/{}: {weight}% on the candidate; held while the release is paused (`switchyard resume {}`)",
                    index + 1,
                    steps.len(),
                    self.release()
                ),
            )
            .requeue(waiting_poll(self.look_calls())),
        )
    }

    /// Steps edited during the rollout: continue from the first step whose weight is at least
    /// the current one (never lowering it). The current one is the highest share a production
    /// route gives the candidate: edited in the middle of a step, some routes are at that
    /// step's weight already, and none of them goes back.
    fn follow_edited_steps(&mut self, steps: &[CanaryStep]) {
        let digest = steps_digest(steps);
        let state = self.state();
        if state.steps_digest == digest {
            return;
        }
        let weight = state
            .routes
            .iter()
            .filter_map(|arn| self.candidate_percent(&state, arn))
            .fold(state.weight, u32::max);
        let index = steps
            .iter()
            .position(|s| matches!(s, CanaryStep::SetWeight(w) if *w >= weight))
            .unwrap_or(steps.len());
        let now = self.pass.now;
        let status = self.status();
        status.steps_digest = digest;
        status.step_count = steps.len();
        status.step_index = Some(index);
        status.step_started_at = Some(now);
        status.pause_ends_at = None;
    }

    /// A production route whose candidate weight is below the applied weight or above the
    /// step's target: someone changed it by hand. Mid-step, a route is anywhere from the one
    /// to the other (moved already or not yet, or moved by an edit of the steps that kept
    /// what was applied). The route, and what to say.
    fn hand_changed(
        &self,
        state: &TaskSetsStatus,
        steps: &[CanaryStep],
    ) -> Option<(String, String)> {
        let target = match state.step_index.and_then(|i| steps.get(i)) {
            Some(CanaryStep::SetWeight(t)) => (*t).max(state.weight),
            _ => state.weight,
        };
        state.routes.iter().find_map(|arn| {
            let percent = self.candidate_percent(state, arn)?;
            // A guarded write found a route changed: nothing but the share switchyard set.
            let target = if state.route_changed {
                state.weight
            } else {
                target
            };
            (percent < state.weight || percent > target).then(|| {
                let drift = format!(
                    "the weights of {arn} were changed outside switchyard ({percent}% on the candidate, switchyard set {}%)",
                    state.weight
                );
                (arn.clone(), drift)
            })
        })
    }

    /// Step 6: all production traffic on the candidate, then the primary task set.
    fn switch(&mut self, gate: &Gate) -> Progress {
        let state = self.state();
        if gate.paused {
            let steps = self.strategy.effective_steps();
            return self.held(
                state
                    .step_index
                    .unwrap_or(steps.len())
                    .min(steps.len().saturating_sub(1)),
                &steps,
            );
        }
        if let Some(route) = self.next_route_to_set(&state, &state.routes, 100) {
            return self.set_weights(
                route,
                100,
                Phase::Progressing,
                Reason::Promoting,
                "moving all production traffic to the candidate".into(),
            );
        }
        if state.weight != 100 {
            let now = self.pass.now;
            self.status().set_weight(100, now);
            self.advanced();
        }
        if self.observed.service_remembered {
            // The steps went on with the service an earlier pass described; the switch
            // decides on the candidate task set as it is now.
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::Promoting,
                    "all production traffic is on the candidate; looking at the task sets before making it the primary",
                )
                .requeue(Duration::ZERO),
            );
        }
        // Deleted outside switchyard (draining): it can never be the primary.
        let Some(candidate) = self
            .candidate_task_set(&state)
            .filter(|t| t.status != TaskSetStatus::Draining)
        else {
            return self.begin_roll_back("the candidate task set disappeared".into(), false);
        };
        if candidate.status == TaskSetStatus::Primary {
            return self.switched(&state);
        }
        let arn = candidate.arn.clone();
        Progress::Step(
            Step::new(
                Phase::Progressing,
                Reason::Promoting,
                "making the candidate task set the primary",
            )
            .act(super::Action::TaskSets(Action::UpdatePrimary {
                cluster: self.cluster(),
                service: self.spec.service.name.clone(),
                task_set: arn,
            })),
        )
    }

    /// The candidate is the primary task set: the rollout succeeded; the old task set is
    /// cleaned up after `scaleDownDelay`.
    fn switched(&mut self, state: &TaskSetsStatus) -> Progress {
        let now = self.pass.now;
        if state.weight != 100 {
            self.status().set_weight(100, now);
            self.advanced();
        }
        let due = now
            + jiff::SignedDuration::try_from(self.strategy.scale_down_delay()).unwrap_or_default();
        let status = self.status();
        status.clean_up = state.live_task_set.clone().map(|task_set| CleanUp {
            task_set,
            due,
            scaled_down: false,
        });
        status.step = None;
        status.pause_ends_at = None;
        Progress::Ended(Verdict::new(
            Outcome::Succeeded,
            format!(
                "{} serves all production traffic as the primary task set",
                task_definition_short_name(&self.rollout.candidate)
            ),
        ))
    }

    /// Step 7 begins: recorded, then traffic is restored.
    fn begin_roll_back(&mut self, reason: String, superseded: bool) -> Progress {
        let status = self.status();
        status.stage = TaskSetsStage::RollingBack;
        status.rolling_back = Some(RollingBack { reason, superseded });
        self.roll_back()
    }

    /// Step 7: every production route to the live group, then the test listeners; then the
    /// verdict, and the candidate's clean-up after `abortScaleDownDelay`.
    fn roll_back(&mut self) -> Progress {
        let state = self.state();
        let reason = state
            .rolling_back
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_else(|| "rolling back".into());
        // A route that was never weighted (still single-target on the live group) reads 0.
        let restore: Vec<String> = state
            .routes
            .iter()
            .chain(&state.test_routes)
            .cloned()
            .collect();
        // Production first, at once; a route this pass did not read is read first.
        let read: Vec<String> = restore
            .iter()
            .filter(|arn| !self.unread(std::slice::from_ref(*arn)))
            .cloned()
            .collect();
        if let Some(route) = self.next_route_to_set(&state, &read, 0) {
            let message =
                format!("{reason}: restoring production traffic to the live group ({route})");
            return self.set_weights(route, 0, Phase::Progressing, Reason::RollingBack, message);
        }
        if self.unread(&restore) {
            return Progress::Step(
                Step::new(
                    Phase::Progressing,
                    Reason::RollingBack,
                    format!("{reason}: reading the listeners before restoring them"),
                )
                .requeue(AFTER_ACTION),
            );
        }
        let superseded = state.rolling_back.as_ref().is_some_and(|r| r.superseded);
        let candidate = self.candidate_task_set(&state).map(|t| t.arn.clone());
        let due = self.pass.now
            + jiff::SignedDuration::try_from(self.strategy.abort_scale_down_delay())
                .unwrap_or_default();
        let now = self.pass.now;
        let status = self.status();
        status.set_weight(0, now);
        status.clean_up = candidate.map(|task_set| CleanUp {
            task_set,
            due,
            scaled_down: false,
        });
        status.step = None;
        status.pause_ends_at = None;
        Progress::Ended(Verdict::new(
            if superseded {
                Outcome::Superseded
            } else {
                Outcome::RolledBack
            },
            format!("{reason}; all production traffic is back on the live version"),
        ))
    }
}

/// What is left to clean up after a rollout ended (scaling down and deleting a task set).
#[allow(
    clippy::large_enum_variant,
    reason = "one value per pass, never stored in bulk: boxing would only add an indirection"
)]
pub enum CleanUpStep {
    /// Nothing left.
    Done,
    /// A call is due now.
    Due(Action, String),
    /// Not due before this long.
    Waiting(Duration, String),
}

/// The clean-up of the last rollout: the old task set after a switch, the candidate after a
/// rollback. Never deletes a task set whose target group still has weight on a route.
pub fn clean_up(pass: &mut Pass<'_>, spec: &ReleaseSpec) -> CleanUpStep {
    let Some(state) = task_sets_status(&pass.next).cloned() else {
        return CleanUpStep::Done;
    };
    let Some(job) = state.clean_up.clone() else {
        return CleanUpStep::Done;
    };
    let Some(service) = pass.observed.service.found() else {
        return CleanUpStep::Waiting(AFTER_ACTION, "observing the service".into());
    };
    let Some(task_set) = service.task_sets.iter().find(|t| t.arn == job.task_set) else {
        status_of(&mut pass.next).clean_up = None;
        return CleanUpStep::Done;
    };
    let short = task_set.id.clone();
    if job.due > pass.now {
        let left = crate::clock::elapsed_between(pass.now, job.due);
        return CleanUpStep::Waiting(
            left,
            format!(
                "clean-up: task set {short} is scaled down and deleted at {}",
                job.due
            ),
        );
    }
    if task_set.status == TaskSetStatus::Primary {
        // Never remove what serves production.
        status_of(&mut pass.next).clean_up = None;
        return CleanUpStep::Done;
    }
    // `None`: the routes were not read (see `routes_to_read`: a clean-up reads them once its
    // task set may be deleted); nothing is deleted on a guess.
    let weighted = match &pass.observed.strategy {
        super::StrategyObserved::TaskSets(observed) if observed.unread_routes.is_empty() => {
            Some(observed.routes.iter().any(|r| {
                task_set
                    .target_group_arns
                    .iter()
                    .any(|tg| r.weight_of(tg) > 0)
            }))
        }
        _ => None,
    };
    let cluster = names::cluster_key(&spec.service.cluster).to_string();
    let service_name = spec.service.name.clone();
    if task_set.scale_percent > 0.0 && !job.scaled_down {
        return CleanUpStep::Due(
            Action::Scale {
                cluster,
                service: service_name,
                task_set: job.task_set.clone(),
                percent: 0.0,
            },
            format!("clean-up: scaling task set {short} down to 0"),
        );
    }
    match weighted {
        Some(true) => {
            return CleanUpStep::Waiting(
                POLL_ACTIVE,
                format!(
                    "clean-up: task set {short} still has weight on a listener; not deleting it"
                ),
            );
        }
        None => {
            return CleanUpStep::Waiting(
                AFTER_ACTION,
                format!("clean-up: reading the listeners before deleting task set {short}"),
            );
        }
        Some(false) => {}
    }
    CleanUpStep::Due(
        Action::Delete {
            cluster,
            service: service_name,
            task_set: job.task_set.clone(),
        },
        format!("clean-up: deleting task set {short}"),
    )
}

/// Records what a call returned in the status the pass wrote before it.
pub fn record_outcome(
    status: &mut ReleaseStatus,
    action: &Action,
    result: &Result<ActionResult, AwsError>,
) {
    match (action, result) {
        (Action::CreateTaskSet(_), Ok(ActionResult::Created(task_set))) => {
            let arn = task_set.arn.clone();
            status.deployment_id = Some(arn.clone());
            let state = status_of(status);
            state.candidate_task_set = Some(arn);
            // Created: progress, as of the intent (the wait's back-off counts from it).
            state.progress_at = state.creating_since.or(state.progress_at);
            state.creating_since = None;
            state.stage = TaskSetsStage::WaitingForCandidate;
        }
        (Action::CreateTaskSet(_), Err(error)) if !error.is_ambiguous() => {
            status_of(status).creating_since = None;
        }
        (
            Action::SetWeights {
                expected: Some(_), ..
            },
            Err(error),
        ) if error.code.as_deref() == Some(ExpectedShare::ROUTE_CHANGED) => {
            // Changed by hand: the next pass reads it, and holds the rollout, before the
            // switch as well.
            let state = status_of(status);
            state.route_changed = true;
            if state.stage == TaskSetsStage::Switching {
                state.stage = TaskSetsStage::Steps;
            }
        }
        (Action::Scale { .. }, Ok(_)) => {
            if let Some(job) = status_of(status).clean_up.as_mut() {
                job.scaled_down = true;
            }
        }
        (Action::Delete { .. }, Ok(_)) => status_of(status).clean_up = None,
        (Action::Delete { .. } | Action::Scale { .. }, Err(error))
            if error.kind == AwsErrorKind::NotFound =>
        {
            status_of(status).clean_up = None;
        }
        _ => {}
    }
}

/// Takes back the intents of a call that is held back.
pub fn drop_intents(status: &mut TaskSetsStatus, before: Option<&TaskSetsStatus>) {
    status.creating_since = before.and_then(|b| b.creating_since);
}
