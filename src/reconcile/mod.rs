//! The pure core: `decide(desired, observed, now) -> Decision`.
//!
//! Nothing in this module awaits, reads a clock or names an AWS SDK type. The shell
//! (`controller`) observes the world, calls [`decide`], applies at most one [`Action`], writes
//! the status, and comes back after [`Decision::requeue_after`].
//!
//! # The spine every strategy follows
//!
//! 1. **Validate.** A document that fails validation is `Invalid` and reaches no AWS API.
//! 2. **Check the target** before anything is registered: the service exists and fits the
//!    strategy (its deployment controller, the group or target groups it names).
//! 3. **Resolve the candidate** (`candidate.rs`): a task definition that is a pure function of
//!    the base revision and the spec, registered once.
//! 4. **Roll it out.** A rollout is identified by its candidate and its target, never by the
//!    spec's generation: an edit that keeps both (labels, `paused`, alarms, promotion,
//!    `onDrift`) never stops, restarts or rolls back the rollout in flight. A new candidate
//!    or target supersedes it: the strategy winds it down, then the newest candidate rolls
//!    out. The strategy's module carries the rollout out, one mutating call per pass.
//! 5. **Gate.** Rollback alarms and `abort` roll back; `promote` lets a rollout past the gate
//!    it waits at; `paused: true` holds it where it is (no promotion) and starts nothing new.
//! 6. **Verdict**: `Healthy` (the candidate is live), `RolledBack` (the live version is back
//!    and serves all production traffic), `Failed` (a human must act; the message says
//!    what). A rollout that ended stays ended: only a new candidate or target, a `retry`, or
//!    drift convergence (`onDrift: converge`) starts another.
//!
//! Requests (`promote`, `abort`, `retry`) apply to the rollout in flight whatever the
//! generation, and are handled once: carried out when the call that carries them out
//! succeeded, or declined with the reason in the history.
//!
//! A call AWS refuses (access denied, invalid, missing) is not asked again at once: the
//! release is `Failed` with the operation, the error code and what to fix, and the call is
//! asked again with an exponential backoff per release (`refusal_delay`), or at once on a
//! spec change or a `retry`.

pub mod analysis;
pub mod candidate;
pub mod codedeploy;
pub mod ecs;
pub mod events;
pub mod outbox;
pub mod plan;
pub mod task_sets;

use std::time::Duration;

use jiff::Timestamp;

pub use candidate::{Registration, Resolution, TaskDefinitions};
pub use plan::{ObservationPlan, family_of, plan_observation};

use crate::model::validate::FieldError;
use crate::model::{
    Candidate, Condition, ConditionStatus, ConditionType, HISTORY_LIMIT, HistoryEntry, OnDrift,
    OperatorRequest, Outcome, Phase, Placement, Reason, Refusal, ReleaseSpec, ReleaseStatus,
    RequestKind, Requests, Rollout, SelectedStrategy, TrafficWeights,
};
use crate::ports::{
    AlarmState, AwsError, AwsErrorKind, Service, TaskDefinition, task_definition_short_name,
};

/// The desired side of one release: its validated spec (or why it is invalid), its
/// generation, and the operator requests stored beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRelease {
    pub name: String,
    pub generation: u64,
    pub spec: Result<ReleaseSpec, Vec<FieldError>>,
    pub requests: Requests,
    /// Where the release lives (resolved by the shell from the spec and the controller's
    /// own region and account; the controller's own when the spec is invalid).
    pub placement: Placement,
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
    /// What resolving the candidate needs.
    pub task_definitions: TaskDefinitions,
    /// The release's rollback alarms that exist, with their states (`None`: not looked
    /// up). An alarm named in the spec and absent here does not exist.
    pub alarms: Option<std::collections::BTreeMap<String, AlarmState>>,
    /// What the release's strategy observed.
    pub strategy: StrategyObserved,
    /// The measurement the shell took for the analysis in progress, when one was due.
    pub analysis: Option<analysis::Measured>,
}

/// What one strategy observed.
// One value per pass, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StrategyObserved {
    #[default]
    NotLookedUp,
    CodeDeploy(codedeploy::Observed),
    TaskSets(task_sets::Observed),
    Ecs(ecs::Observed),
}

/// The one mutating call a pass may make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Register the candidate (the status already holds the intent).
    RegisterTaskDefinition(Registration),
    CodeDeploy(codedeploy::Action),
    TaskSets(task_sets::Action),
    Ecs(ecs::Action),
}

impl Action {
    /// `service:Operation`, for logs, metrics and messages.
    pub fn operation(&self) -> &'static str {
        match self {
            Action::RegisterTaskDefinition(_) => "ecs:RegisterTaskDefinition",
            Action::CodeDeploy(action) => action.operation(),
            Action::TaskSets(action) => action.operation(),
            Action::Ecs(action) => action.operation(),
        }
    }

    /// The operation's name alone (`RegisterTaskDefinition`).
    pub fn as_str(&self) -> &'static str {
        let operation = self.operation();
        operation
            .split_once(':')
            .map_or(operation, |(_, name)| name)
    }
}

/// What an action returned, for [`record_outcome`].
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    Registered(TaskDefinition),
    CodeDeploy(codedeploy::ActionResult),
    TaskSets(task_sets::ActionResult),
    Ecs(ecs::ActionResult),
}

/// A request that the decision's action carries out: marked handled, with its history
/// entry, once the call succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub kind: RequestKind,
    pub requested_at: Timestamp,
    pub entry: HistoryEntry,
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
    /// The request the action carries out, if any.
    pub ack: Option<Ack>,
}

/// How soon to look again after a mutation: the world just changed.
pub const AFTER_ACTION: Duration = Duration::from_secs(1);
/// Polling while a deployment can change at any moment (install, test traffic, ready,
/// rollback). Looks are spaced from the start of each pass, so a change waits at most this
/// long to be seen, and the calls of the look that acts come on top: 1.5 s keeps the
/// controller's added latency at a gate within 2 s with calls of up to 100 ms.
pub const POLL_ACTIVE: Duration = Duration::from_millis(1500);
/// Polling while the lifecycle hooks run and nothing waits for the controller (the group
/// shifts traffic as soon as the candidate is ready, and rollback alarms are watched
/// separately): only the status's lifecycle event lags, by at most this much.
pub const POLL_PASSIVE: Duration = Duration::from_secs(5);
/// Polling while a deployment someone else started is in flight: the rollout starts once it
/// has ended.
pub const POLL_WAITING: Duration = Duration::from_secs(15);
/// Polling at most this far apart during a long canary bake or termination wait. Nothing
/// the controller must act on changes there before the predicted step: rollback alarms are
/// watched separately (in one batch for all releases, every 2 s), and promote and abort
/// requests wake the release through the change feed. What is left, a deployment stopped
/// outside switchyard, shows in the status within this long.
pub const POLL_SLOW: Duration = Duration::from_secs(300);
/// The budget of a rollout that waits, for a human (a manual promotion, a paused release,
/// weights changed by hand), a bake or a timed pause: at most this many AWS calls a minute
/// of its own. Nothing that ends or breaks such a wait needs its looks: a `promote` or an
/// `abort` wakes the release through the change feed at once, a rollback alarm through the
/// alarm watcher (one batched DescribeAlarms every 2 s for every release in flight, however
/// many), and the end of a timed wait is scheduled exactly (a pause's end, a bake's
/// predicted end). The looks only keep the status fresh and notice what changed behind the
/// controller's back (a deployment stopped in the console, a hook that timed out, weights
/// changed by hand), for which a minute or two is soon enough, while a look every few
/// seconds over a wait of hours would cost AWS more calls than the rollout itself.
pub const WAIT_CALLS_PER_MINUTE: u32 = 2;

/// How far apart the looks at a waiting rollout are when each look makes `calls` AWS calls:
/// as often as [`WAIT_CALLS_PER_MINUTE`] allows, a minute for a look of two calls. Looks are
/// spaced from the start of each pass, so the budget holds however long a look takes.
pub fn waiting_poll(calls: u32) -> Duration {
    Duration::from_secs(60) * calls.max(1) / WAIT_CALLS_PER_MINUTE
}

/// The next look during a wait that ends `left` from now: the looks left are spread evenly
/// over the wait, as many as the budget allows (see [`waiting_poll`]), the last one at its
/// end exactly. Never two looks closer than the budget's spacing before the end, as a look
/// just before it and one at it would be.
pub fn waiting_until(left: Duration, calls: u32) -> Duration {
    let spacing = waiting_poll(calls);
    let looks = (left.as_nanos() / spacing.as_nanos()).max(1);
    left / u32::try_from(looks).unwrap_or(u32::MAX)
}
/// Slack after a predicted traffic step, so the step has happened when the pass looks.
pub const STEP_SLACK: Duration = Duration::from_secs(1);
/// Re-checking a release that failed for an environmental reason (a missing service).
pub const POLL_FAILED: Duration = Duration::from_secs(60);
/// The longest wait before asking again for a call AWS refused.
pub const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Decides the next step for one release. Pure: same inputs, same decision.
pub fn decide(desired: &DesiredRelease, observed: &Observed, now: Timestamp) -> Decision {
    Pass::new(desired, observed, now).run()
}

/// The service part of every strategy's target key: a cluster given as an ARN is the same
/// cluster as its name.
pub fn service_key(spec: &ReleaseSpec) -> String {
    format!(
        "{}/{}/{}",
        spec.service.region.as_deref().unwrap_or(""),
        crate::model::names::cluster_key(&spec.service.cluster),
        spec.service.name
    )
}

/// The rollout's target for `spec`, normalized: a change of it is a new rollout.
pub fn target_key(spec: &ReleaseSpec, strategy: SelectedStrategy<'_>) -> String {
    match strategy {
        SelectedStrategy::CodeDeploy(s) => codedeploy::target_key(spec, s),
        SelectedStrategy::TaskSets(s) => task_sets::target_key(spec, s),
        SelectedStrategy::Ecs(s) => ecs::target_key(spec, s),
    }
}

/// What a strategy concluded for the rollout in flight.
// One value per pass, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Progress {
    /// The rollout goes on: this is the step.
    Step(Step),
    /// The rollout ended with this verdict.
    Ended(Verdict),
}

impl Progress {
    /// The request this progress carries out (marked handled with it).
    fn completing(self, request: Option<RequestKind>) -> Self {
        match self {
            Progress::Step(step) => Progress::Step(step.completing(request)),
            Progress::Ended(mut verdict) => {
                verdict.completes = verdict.completes.or(request);
                Progress::Ended(verdict)
            }
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub message: String,
    /// The request that ended it, if one did.
    pub completes: Option<RequestKind>,
}

impl Verdict {
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
            completes: None,
        }
    }
}

/// Why the rollout in flight must roll back now.
#[derive(Debug, Clone, PartialEq)]
pub struct RollBack {
    pub reason: Reason,
    pub message: String,
    /// The request that asks for it (`abort`), handled once the rollback is under way.
    pub request: Option<RequestKind>,
}

/// What the spine's gate says for the rollout in flight.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gate {
    /// Roll back now (an `abort`, a rollback alarm in ALARM).
    pub roll_back: Option<RollBack>,
    /// A `promote` request waits to be carried out.
    pub promote: Option<RequestKind>,
    /// `spec.paused`: hold the rollout where it is (no promotion).
    pub paused: bool,
}

/// What a step concluded: the phase, why, a message, and optionally an action and a requeue.
#[derive(Debug)]
pub struct Step {
    phase: Phase,
    reason: Reason,
    message: String,
    action: Option<Action>,
    requeue_after: Option<Duration>,
    completes: Option<RequestKind>,
}

impl Step {
    pub fn new(phase: Phase, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            phase,
            reason,
            message: message.into(),
            action: None,
            requeue_after: None,
            completes: None,
        }
    }

    pub fn act(mut self, action: Action) -> Self {
        self.action = Some(action);
        self.requeue_after = Some(AFTER_ACTION);
        self
    }

    pub fn requeue(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after);
        self
    }

    /// Marks `request` handled by this step (with its action's success, when it has one).
    pub fn completing(mut self, request: Option<RequestKind>) -> Self {
        if request.is_some() {
            self.completes = request;
        }
        self
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
}

/// One evaluation; holds the inputs and the status being built. Strategies read the inputs
/// and write their part of `next`.
pub struct Pass<'a> {
    pub desired: &'a DesiredRelease,
    pub observed: &'a Observed,
    pub now: Timestamp,
    prev: Option<&'a ReleaseStatus>,
    pub next: ReleaseStatus,
}

impl<'a> Pass<'a> {
    fn new(desired: &'a DesiredRelease, observed: &'a Observed, now: Timestamp) -> Self {
        let prev = observed.status.as_ref();
        let mut next = prev.cloned().unwrap_or_default();
        next.observed_generation = desired.generation;
        if desired.spec.is_ok() {
            next.region = Some(desired.placement.region.clone());
            next.account = desired.placement.account.clone();
        }
        // A refusal is asked again at once under a new generation.
        if next
            .refusal
            .as_ref()
            .is_some_and(|r| r.generation != desired.generation)
        {
            next.refusal = None;
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

    pub fn generation(&self) -> u64 {
        self.desired.generation
    }

    /// Whether the pending promote asks to skip every remaining step (`promote --full`).
    pub fn promote_is_full(&self) -> bool {
        self.pending_request(RequestKind::Promote)
            .is_some_and(|r| r.full)
    }

    /// The content of a task definition the pass looked up, by ARN.
    pub fn candidate_content(&self, arn: &str) -> Option<&'a TaskDefinition> {
        let looked_up = &self.observed.task_definitions;
        [
            looked_up.candidate.found(),
            looked_up.base.found(),
            looked_up.live.found(),
        ]
        .into_iter()
        .flatten()
        .chain(looked_up.registered.iter())
        .find(|t| t.arn == arn)
    }

    fn evaluate(&mut self) -> Step {
        let spec: &'a ReleaseSpec = match &self.desired.spec {
            Ok(spec) => spec,
            Err(errors) => return self.invalid(errors),
        };
        let Some(strategy) = spec.strategy.selected() else {
            return self.invalid(&[FieldError::new(
                "spec.strategy",
                format!(
                    "must set exactly one strategy ({})",
                    crate::model::Strategy::NAMES.join(", ")
                ),
            )]);
        };

        // 2. The target.
        let service: &'a Service = match &self.observed.service {
            Lookup::Found(service) => service,
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
        self.next.live_task_definition = service.live_task_definition().map(str::to_string);
        if let Err(step) = self.check_target(spec, strategy, service) {
            return step;
        }
        // The same service name in another account is another target.
        let target = self.desired.placement.target_prefix() + &target_key(spec, strategy);
        self.set_paused_condition(spec);

        // 4. The rollout in flight, if any.
        if let Some(rollout) = self.next.rollout.clone().filter(Rollout::is_in_flight) {
            match self.carry_on(spec, strategy, &target, &rollout) {
                Ok(step) => return step,
                Err(verdict) => {
                    self.end_rollout(&rollout, verdict);
                    // A strategy may show the version it started from while in flight
                    // (ECS sets the service's task definition at once): the verdict is
                    // read against the service as it is.
                    self.next.live_task_definition =
                        service.live_task_definition().map(str::to_string);
                }
            }
        }

        // Nothing in flight: requests that need a rollout in flight are declined.
        self.decline(RequestKind::Abort, "abort: nothing in flight");
        self.decline(RequestKind::Promote, "promote: nothing in flight");
        if spec.paused {
            return self.paused(spec);
        }

        // 3. The candidate.
        let last = self.next.rollout.clone();
        let retry = self.pending_request(RequestKind::Retry).is_some();
        let retryable = last.as_ref().is_some_and(|r| {
            matches!(
                r.outcome,
                Some(Outcome::RolledBack | Outcome::Failed | Outcome::Superseded)
            )
        });
        let candidate = match self.resolve_candidate(spec, retry && retryable) {
            Ok(candidate) => candidate,
            Err(step) => return *step,
        };
        let candidate_arn = candidate.arn.clone().unwrap_or_default();
        let same = |r: &Rollout| r.fingerprint == candidate.fingerprint && r.target == target;
        let live = self.next.live_task_definition.as_deref() == Some(candidate_arn.as_str());

        // A rollout that ended stays ended: only a retry, a new candidate or target, or
        // drift convergence starts another.
        match last.as_ref().filter(|r| same(r)).and_then(|r| r.outcome) {
            Some(outcome @ (Outcome::RolledBack | Outcome::Failed)) => {
                if !retry {
                    return self.after_failure(outcome);
                }
                self.handle(RequestKind::Retry, Outcome::Retried, "retrying".into());
            }
            Some(Outcome::Succeeded | Outcome::AlreadyLive) if live => {
                self.decline(
                    RequestKind::Retry,
                    "retry: nothing to retry, the candidate is live",
                );
                self.clear_drift();
                return self.healthy(&candidate_arn, true);
            }
            Some(Outcome::Succeeded | Outcome::AlreadyLive) => {
                // It was deployed (or already live) and someone changed the live version.
                let message = format!(
                    "drift: the live task definition is {}, not {} that rollout {} deployed",
                    task_definition_short_name(
                        self.next.live_task_definition.as_deref().unwrap_or("none")
                    ),
                    task_definition_short_name(&candidate_arn),
                    last.as_ref().map_or(0, |r| r.serial)
                );
                self.set_condition(
                    ConditionType::Drifted,
                    ConditionStatus::True,
                    Reason::Drifted,
                    message.clone(),
                );
                self.decline(
                    RequestKind::Retry,
                    "retry: nothing to retry, the release is not rolled back",
                );
                if spec.on_drift != OnDrift::Converge {
                    self.next.traffic_weights = None;
                    return Step::new(
                        Phase::Failed,
                        Reason::Drifted,
                        format!("{message}; set onDrift: converge or apply a new version"),
                    );
                }
            }
            // Superseded before it finished, and wanted again: a new rollout of it (or
            // nothing, when it is live). Never rolled out yet: the same.
            Some(_) | None => {
                if retry && retryable {
                    self.handle(
                        RequestKind::Retry,
                        Outcome::Retried,
                        format!(
                            "retrying with {}",
                            task_definition_short_name(&candidate_arn)
                        ),
                    );
                } else {
                    self.decline(RequestKind::Retry, "retry: nothing to retry");
                }
                // ECS names the candidate as the service's task definition as soon as a
                // deployment of it starts: while that deployment is in flight (a superseded
                // rollout's, wanted again), it is not live yet, and the rollout follows it.
                if live && !ecs::deploying(self.observed) {
                    self.clear_drift();
                    self.record_already_live(&candidate, &target, last.as_ref());
                    return self.healthy(&candidate_arn, false);
                }
            }
        }
        self.start_rollout(spec, strategy, &candidate, &target, last.as_ref())
    }

    // ----- the target ---------------------------------------------------------------

    // `Err` is the step to take instead: one per pass, moved once.
    #[allow(clippy::result_large_err)]
    fn check_target(
        &mut self,
        spec: &'a ReleaseSpec,
        strategy: SelectedStrategy<'a>,
        service: &'a Service,
    ) -> Result<(), Step> {
        match strategy {
            SelectedStrategy::CodeDeploy(s) => {
                let observed = match &self.observed.strategy {
                    StrategyObserved::CodeDeploy(o) => Some(o),
                    _ => None,
                };
                codedeploy::check_target(spec, s, service, observed)
            }
            SelectedStrategy::TaskSets(s) => {
                let observed = match &self.observed.strategy {
                    StrategyObserved::TaskSets(o) => Some(o),
                    _ => None,
                };
                let in_flight = self.next.rollout_in_flight().is_some();
                task_sets::check_target(spec, s, service, observed, in_flight)
            }
            SelectedStrategy::Ecs(s) => ecs::check_target(s, service),
        }
    }

    // ----- the rollout in flight ----------------------------------------------------

    /// Carries the rollout in flight on, or superseded by a new candidate or target.
    /// `Err(verdict)`: it ended.
    fn carry_on(
        &mut self,
        spec: &'a ReleaseSpec,
        strategy: SelectedStrategy<'a>,
        target: &str,
        rollout: &Rollout,
    ) -> Result<Step, Verdict> {
        self.next.desired_task_definition = Some(rollout.candidate.clone());
        let mut superseded = None;
        let mut held = None;
        if rollout.target != *target {
            superseded = Some(format!(
                "superseded by generation {}: the target changed",
                self.generation()
            ));
        } else if !candidate::is_current(self.next.candidate.as_ref(), spec) {
            // The spec's task definition changed: is it a new candidate?
            match self.resolve_without_registering(spec) {
                Some(fingerprint) if fingerprint == rollout.fingerprint => {}
                Some(_) => {
                    superseded = Some(format!(
                        "superseded by generation {}: a new candidate",
                        self.generation()
                    ));
                }
                None => {
                    return Ok(Step::new(
                        Phase::Progressing,
                        Reason::Resolving,
                        "resolving the new task definition",
                    )
                    .requeue(AFTER_ACTION));
                }
            }
        }
        if spec.paused && superseded.is_some() {
            // Nothing new starts while paused: the rollout in flight is held as it is.
            held = superseded.take();
        }
        let gate = self.gate(spec);
        if let Some(why) =
            (gate.roll_back.as_ref().map(|r| r.message.as_str())).or(superseded.as_deref())
        {
            // Rolling back for another reason: the analysis in flight has no say any more.
            analysis::stop_running(&mut self.next, why, self.now);
        }
        let progress = match strategy {
            SelectedStrategy::CodeDeploy(s) => {
                codedeploy::progress(self, s, rollout, &gate, superseded.as_deref())
            }
            SelectedStrategy::TaskSets(s) => {
                task_sets::progress(self, spec, s, rollout, &gate, superseded.as_deref())
            }
            SelectedStrategy::Ecs(s) => {
                ecs::progress(self, spec, s, rollout, &gate, superseded.as_deref())
            }
        };
        match progress {
            Progress::Step(mut step) => {
                if held.is_some() {
                    step.message.push_str(&format!(
                        "; generation {}'s new version waits until `switchyard resume {}`",
                        self.generation(),
                        self.desired.name
                    ));
                }
                Ok(step)
            }
            Progress::Ended(verdict) => Err(verdict),
        }
    }

    /// The gate for the rollout in flight: abort, rollback alarms, promote, pause.
    fn gate(&self, spec: &ReleaseSpec) -> Gate {
        let abort = self.pending_request(RequestKind::Abort).map(|r| RollBack {
            reason: Reason::Aborted,
            message: format!("aborted by {}", r.requested_by),
            request: Some(RequestKind::Abort),
        });
        let alarm = self.firing_alarm(spec).map(|name| RollBack {
            reason: Reason::AlarmFired,
            message: format!("alarm {name} is in ALARM"),
            request: None,
        });
        Gate {
            roll_back: abort.or(alarm),
            promote: self
                .pending_request(RequestKind::Promote)
                .map(|_| RequestKind::Promote),
            paused: spec.paused,
        }
    }

    fn firing_alarm(&self, spec: &'a ReleaseSpec) -> Option<&'a str> {
        let states = self.observed.alarms.as_ref()?;
        spec.rollback_alarms()
            .iter()
            .find(|name| states.get(*name) == Some(&AlarmState::Alarm))
            .map(String::as_str)
    }

    /// Records the verdict of `rollout`: its outcome, its history entry, the request that
    /// ended it.
    fn end_rollout(&mut self, rollout: &Rollout, verdict: Verdict) {
        if let Some(kind) = verdict.completes {
            let outcome = match kind {
                RequestKind::Promote => Outcome::Promoted,
                RequestKind::Abort => Outcome::Aborted,
                RequestKind::Retry => Outcome::Retried,
            };
            self.handle(kind, outcome, verdict.message.clone());
        }
        if let Some(current) = self.next.rollout.as_mut() {
            current.outcome = Some(verdict.outcome);
        }
        let entry = HistoryEntry {
            generation: rollout.generation,
            rollout: rollout.serial,
            outcome: verdict.outcome,
            task_definition: Some(rollout.candidate.clone()),
            deployment_id: self.next.deployment_id.clone(),
            started_at: Some(rollout.started_at),
            finished_at: self.now,
            message: verdict.message,
        };
        self.push_history(entry);
        self.next.traffic_weights = Some(TrafficWeights::ALL_LIVE);
    }

    // ----- the candidate ------------------------------------------------------------

    fn resolve_candidate(
        &mut self,
        spec: &ReleaseSpec,
        re_resolve: bool,
    ) -> Result<Candidate, Box<Step>> {
        let resolution = candidate::resolve(
            &self.desired.name,
            spec,
            self.next.candidate.as_ref(),
            re_resolve,
            &self.observed.task_definitions,
            self.now,
        );
        match resolution {
            Resolution::Ready(candidate) => {
                self.next.desired_task_definition = candidate.arn.clone();
                self.next.candidate = Some(candidate.clone());
                Ok(candidate)
            }
            Resolution::NeedsRegistration(candidate, registration) => {
                self.next.desired_task_definition = None;
                self.next.candidate = Some(candidate);
                let message = format!(
                    "registering a copy of {} with the spec's containers",
                    registration.base.short_name()
                );
                Err(Box::new(
                    Step::new(Phase::Pending, Reason::RegisteringTaskDefinition, message)
                        .act(Action::RegisterTaskDefinition(*registration))
                        // The next step (starting the rollout) is ours: no reason to wait.
                        .requeue(Duration::ZERO),
                ))
            }
            Resolution::Registering(candidate, wait) => {
                self.next.desired_task_definition = None;
                self.next.candidate = Some(candidate);
                Err(Box::new(
                    Step::new(
                        Phase::Pending,
                        Reason::RegisteringTaskDefinition,
                        "waiting for the registration an earlier pass asked for (its call may still be on its way)",
                    )
                    .requeue(wait.min(POLL_PASSIVE)),
                ))
            }
            Resolution::NeedsLookup => Err(Box::new(
                Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "resolving the task definition",
                )
                .requeue(AFTER_ACTION),
            )),
            Resolution::Invalid(errors) => Err(Box::new(self.invalid(&errors))),
        }
    }

    /// The fingerprint of the candidate the spec asks for now, without registering it or
    /// recording anything; `None` when it needs a lookup first.
    fn resolve_without_registering(&self, spec: &ReleaseSpec) -> Option<String> {
        match candidate::resolve(
            &self.desired.name,
            spec,
            self.next.candidate.as_ref(),
            false,
            &self.observed.task_definitions,
            self.now,
        ) {
            Resolution::Ready(c)
            | Resolution::NeedsRegistration(c, _)
            | Resolution::Registering(c, _) => Some(c.fingerprint),
            // A spec that cannot be resolved is not the candidate in flight.
            Resolution::Invalid(_) => Some(String::new()),
            Resolution::NeedsLookup => None,
        }
    }

    // ----- starting a rollout -------------------------------------------------------

    fn start_rollout(
        &mut self,
        spec: &'a ReleaseSpec,
        strategy: SelectedStrategy<'a>,
        candidate: &Candidate,
        target: &str,
        last: Option<&Rollout>,
    ) -> Step {
        // Every rollback alarm must exist: a rollout watched by an alarm that cannot fire is
        // not the rollout the document asked for.
        let alarms = spec.rollback_alarms();
        if !alarms.is_empty() {
            let Some(states) = &self.observed.alarms else {
                return Step::new(
                    Phase::Pending,
                    Reason::Resolving,
                    "looking up the rollback alarms",
                )
                .requeue(AFTER_ACTION);
            };
            if let Some(missing) = alarms.iter().find(|name| !states.contains_key(*name)) {
                return Step::new(
                    Phase::Failed,
                    Reason::AlarmNotFound,
                    format!(
                        "CloudWatch alarm {missing} (spec.rollback.alarms) does not exist in {}; create it or fix spec.rollback.alarms",
                        spec.service.region.as_deref().unwrap_or("the controller's region")
                    ),
                )
                .requeue(POLL_FAILED);
            }
        }
        // The last rollout's clean-up comes first (a new candidate task set must not join a
        // task set still waiting to be deleted); it is due at once.
        if let SelectedStrategy::TaskSets(_) = strategy
            && let Some(crate::model::StrategyStatus::TaskSets(state)) = self.next.strategy.as_mut()
            && let Some(job) = state.clean_up.as_mut()
        {
            job.due = job.due.min(self.now);
            match task_sets::clean_up(self, spec) {
                task_sets::CleanUpStep::Done => {}
                task_sets::CleanUpStep::Due(clean_up, what) => {
                    return Step::new(
                        Phase::Pending,
                        Reason::Resolving,
                        format!("the last rollout's clean-up comes first: {what}"),
                    )
                    .act(Action::TaskSets(clean_up));
                }
                task_sets::CleanUpStep::Waiting(after, what) => {
                    return Step::new(
                        Phase::Pending,
                        Reason::Resolving,
                        format!("the last rollout's clean-up comes first: {what}"),
                    )
                    .requeue(after);
                }
            }
        }
        let rollout = Rollout {
            serial: last.map_or(1, |r| r.serial + 1),
            candidate: candidate.arn.clone().unwrap_or_default(),
            fingerprint: candidate.fingerprint.clone(),
            target: target.to_string(),
            live: self.next.live_task_definition.clone(),
            generation: self.generation(),
            started_at: self.now,
            outcome: None,
        };
        self.next.rollout = Some(rollout.clone());
        self.next.deployment_id = None;
        // Every analysis of the new rollout is its own.
        self.next.analysis = None;
        // A new rollout starts its strategy's status afresh, keeping what must outlive a
        // rollout (ECS: which service deployments were switchyard's).
        self.next.strategy = match &self.next.strategy {
            Some(crate::model::StrategyStatus::Ecs(previous)) => {
                Some(crate::model::StrategyStatus::Ecs(ecs::carry_over(previous)))
            }
            _ => None,
        };
        self.next.traffic_weights = None;
        self.clear_drift();
        match self.carry_on(spec, strategy, target, &rollout) {
            Ok(step) => step,
            Err(verdict) => {
                // Ended before it started (an abort, nothing to do): settle on it.
                let outcome = verdict.outcome;
                self.end_rollout(&rollout, verdict);
                self.after_failure(outcome)
            }
        }
    }

    fn record_already_live(&mut self, candidate: &Candidate, target: &str, last: Option<&Rollout>) {
        let arn = candidate.arn.clone().unwrap_or_default();
        let rollout = Rollout {
            serial: last.map_or(1, |r| r.serial + 1),
            candidate: arn.clone(),
            fingerprint: candidate.fingerprint.clone(),
            target: target.to_string(),
            live: Some(arn.clone()),
            generation: self.generation(),
            started_at: self.now,
            outcome: Some(Outcome::AlreadyLive),
        };
        self.push_history(HistoryEntry {
            generation: self.generation(),
            rollout: rollout.serial,
            outcome: Outcome::AlreadyLive,
            task_definition: Some(arn.clone()),
            deployment_id: None,
            started_at: None,
            finished_at: self.now,
            message: format!(
                "{} is already live; nothing to deploy",
                task_definition_short_name(&arn)
            ),
        });
        self.next.rollout = Some(rollout);
        self.next.deployment_id = None;
        // What must outlive the last rollout stays: a task set still to clean up (with the
        // routes that say whether it still has weight), which service deployments were
        // switchyard's.
        self.next.strategy = match self.next.strategy.take() {
            Some(crate::model::StrategyStatus::Ecs(previous)) => Some(
                crate::model::StrategyStatus::Ecs(ecs::carry_over(&previous)),
            ),
            Some(crate::model::StrategyStatus::TaskSets(previous))
                if previous.clean_up.is_some() =>
            {
                Some(crate::model::StrategyStatus::TaskSets(previous))
            }
            _ => None,
        };
    }

    // ----- settled steps ------------------------------------------------------------

    fn healthy(&mut self, live: &str, deployed: bool) -> Step {
        self.next.traffic_weights = Some(TrafficWeights::ALL_LIVE);
        let reason = if deployed
            && self
                .next
                .rollout
                .as_ref()
                .is_some_and(|r| r.outcome == Some(Outcome::Succeeded))
        {
            Reason::DeploymentSucceeded
        } else {
            Reason::AlreadyLive
        };
        Step::new(
            Phase::Healthy,
            reason,
            format!("{} is live", task_definition_short_name(live)),
        )
    }

    fn after_failure(&mut self, outcome: Outcome) -> Step {
        self.next.traffic_weights = Some(TrafficWeights::ALL_LIVE);
        let last = self
            .next
            .history
            .iter()
            .find(|h| h.outcome.ends_rollout())
            .map(|h| h.message.clone())
            .unwrap_or_default();
        let hint = format!(
            "; fix the cause and apply a new version or run `switchyard retry {}`",
            self.desired.name
        );
        let (phase, reason) = match outcome {
            Outcome::RolledBack | Outcome::Superseded => (Phase::RolledBack, Reason::RolledBack),
            _ => (Phase::Failed, Reason::DeploymentFailed),
        };
        Step::new(phase, reason, format!("{last}{hint}"))
    }

    fn paused(&mut self, spec: &ReleaseSpec) -> Step {
        let _ = spec;
        self.next.traffic_weights = None;
        Step::new(
            Phase::Paused,
            Reason::Paused,
            format!(
                "paused: nothing new starts until `switchyard resume {}`",
                self.desired.name
            ),
        )
    }

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
        Step::new(Phase::Invalid, Reason::InvalidSpec, message)
    }

    // ----- requests -----------------------------------------------------------------

    /// A request of this kind the controller has not handled yet.
    fn pending_request(&self, kind: RequestKind) -> Option<&'a OperatorRequest> {
        pending_request(&self.desired.requests, &self.next, kind)
    }

    /// Marks a pending request handled now, with a history entry.
    fn handle(&mut self, kind: RequestKind, outcome: Outcome, message: String) {
        if let Some(request) = self.pending_request(kind) {
            let entry = self.request_entry(request, outcome, &message);
            self.next.handled_requests.set(kind, request.requested_at);
            self.push_history(entry);
        }
    }

    fn decline(&mut self, kind: RequestKind, why: &str) {
        self.handle(kind, Outcome::Declined, why.to_string());
    }

    fn request_entry(
        &self,
        request: &OperatorRequest,
        outcome: Outcome,
        message: &str,
    ) -> HistoryEntry {
        HistoryEntry {
            generation: self.generation(),
            rollout: self.next.rollout.as_ref().map_or(0, |r| r.serial),
            outcome,
            task_definition: self.next.desired_task_definition.clone(),
            deployment_id: self.next.deployment_id.clone(),
            started_at: Some(request.requested_at),
            finished_at: self.now,
            message: format!("{message} (requested by {})", request.requested_by),
        }
    }

    // ----- status helpers -----------------------------------------------------------

    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.next.history.insert(0, entry);
        self.next.history.truncate(HISTORY_LIMIT);
    }

    pub(crate) fn clear_drift(&mut self) {
        if self
            .next
            .condition(ConditionType::Drifted)
            .is_some_and(|c| c.status == ConditionStatus::True)
        {
            self.set_condition(
                ConditionType::Drifted,
                ConditionStatus::False,
                Reason::InSync,
                "the live task definition is the deployed one".into(),
            );
        }
    }

    fn set_paused_condition(&mut self, spec: &ReleaseSpec) {
        if spec.paused {
            self.set_condition(
                ConditionType::Paused,
                ConditionStatus::True,
                Reason::Paused,
                "spec.paused holds the release".into(),
            );
        } else if self.next.condition(ConditionType::Paused).is_some() {
            self.set_condition(
                ConditionType::Paused,
                ConditionStatus::False,
                Reason::Paused,
                "not paused".into(),
            );
        }
    }

    pub fn set_condition(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: String,
    ) {
        set_condition(
            &mut self.next,
            self.prev,
            kind,
            status,
            reason,
            message,
            self.now,
        );
    }

    /// When `action` was refused and its backoff has not ended: until when, and the
    /// refusal's message. A pending `retry` asks at once (it is handled here, and the
    /// refusal forgotten).
    fn refusal_holds_back(&mut self, action: &Action) -> Option<(Timestamp, String)> {
        let refusal = self.next.refusal.clone()?;
        if action.operation() != refusal.operation {
            return None;
        }
        if self.pending_request(RequestKind::Retry).is_some() {
            self.handle(
                RequestKind::Retry,
                Outcome::Retried,
                format!("retrying {}", refusal.operation),
            );
            self.next.refusal = None;
            return None;
        }
        let due = refusal.at
            + jiff::SignedDuration::try_from(refusal_delay(&self.desired.name, refusal.count))
                .unwrap_or_default();
        (due > self.now).then_some((due, refusal.message))
    }

    fn finish(mut self, step: Step) -> Decision {
        let Step {
            mut phase,
            mut reason,
            mut message,
            mut action,
            mut requeue_after,
            mut completes,
        } = step;
        // A refused call is not asked again before its backoff ends (or a retry).
        if let Some((due, refused)) = action
            .clone()
            .and_then(|action| self.refusal_holds_back(&action))
        {
            // Held back: nothing of the call happens, its intent included, and the
            // request it would carry out stays pending.
            action = None;
            completes = None;
            phase = Phase::Failed;
            reason = Reason::Refused;
            message = refused;
            requeue_after = Some(crate::clock::elapsed_between(self.now, due));
            self.next.candidate = self.prev.and_then(|p| p.candidate.clone());
            if let Some(status) = self.next.strategy.as_mut() {
                drop_intents(status, self.prev.and_then(|p| p.strategy.as_ref()));
            }
        }
        if !matches!(
            phase,
            Phase::Progressing | Phase::AwaitingPromotion | Phase::Pending
        ) && let Some(status) = self.next.strategy.as_mut()
        {
            clear_stage(status);
        }
        // Clean-up after a rollout ended (a task set to scale down and delete) rides on the
        // settled step: it never changes the verdict.
        if action.is_none()
            && self.next.rollout_in_flight().is_none()
            && let Ok(spec) = &self.desired.spec
            && let Some(SelectedStrategy::TaskSets(_)) = spec.strategy.selected()
        {
            match task_sets::clean_up(&mut self, spec) {
                task_sets::CleanUpStep::Done => {}
                task_sets::CleanUpStep::Due(clean_up, what) => {
                    let clean_up = Action::TaskSets(clean_up);
                    // A refused clean-up backs off like any refused call: held back until
                    // its backoff ends (or a retry), whatever woke this pass.
                    match self.refusal_holds_back(&clean_up) {
                        Some((due, refused)) => {
                            phase = Phase::Failed;
                            reason = Reason::Refused;
                            message = refused;
                            requeue_after = Some(crate::clock::elapsed_between(self.now, due));
                        }
                        None => {
                            action = Some(clean_up);
                            message = format!("{message}; {what}");
                            requeue_after = Some(AFTER_ACTION);
                        }
                    }
                }
                task_sets::CleanUpStep::Waiting(after, what) => {
                    message = format!("{message}; {what}");
                    requeue_after = Some(requeue_after.map_or(after, |r| r.min(after)));
                }
            }
        }
        apply_phase(&mut self.next, self.prev, phase, reason, &message, self.now);
        let mut ack = None;
        if let Some(kind) = completes {
            match &action {
                // Carried out by the action: handled once the call succeeded.
                Some(_) => {
                    if let Some(request) = self.pending_request(kind) {
                        let outcome = match kind {
                            RequestKind::Promote => Outcome::Promoted,
                            RequestKind::Abort => Outcome::Aborted,
                            RequestKind::Retry => Outcome::Retried,
                        };
                        ack = Some(Ack {
                            kind,
                            requested_at: request.requested_at,
                            entry: self.request_entry(request, outcome, &message),
                        });
                    }
                }
                None => {
                    let outcome = match kind {
                        RequestKind::Promote => Outcome::Promoted,
                        RequestKind::Abort => Outcome::Aborted,
                        RequestKind::Retry => Outcome::Retried,
                    };
                    self.handle(kind, outcome, message.clone());
                }
            }
        }
        Decision {
            action,
            status: self.next,
            requeue_after,
            ack,
        }
    }
}

/// A request of this kind that `status` has not handled yet.
pub fn pending_request<'r>(
    requests: &'r Requests,
    status: &ReleaseStatus,
    kind: RequestKind,
) -> Option<&'r OperatorRequest> {
    let request = requests.get(kind)?;
    (status.handled_requests.get(kind) != Some(request.requested_at)).then_some(request)
}

/// Takes back the intents a step wrote for a call that is held back (the strategy's
/// intents as they were before the pass).
fn drop_intents(
    status: &mut crate::model::StrategyStatus,
    before: Option<&crate::model::StrategyStatus>,
) {
    match status {
        crate::model::StrategyStatus::CodeDeploy(s) => {
            let before = match before {
                Some(crate::model::StrategyStatus::CodeDeploy(b)) => Some(b),
                _ => None,
            };
            s.creating_since = before.and_then(|b| b.creating_since);
            s.stop = before.and_then(|b| b.stop.clone());
        }
        crate::model::StrategyStatus::TaskSets(s) => {
            let before = match before {
                Some(crate::model::StrategyStatus::TaskSets(b)) => Some(b),
                _ => None,
            };
            task_sets::drop_intents(s, before);
        }
        crate::model::StrategyStatus::Ecs(s) => {
            let before = match before {
                Some(crate::model::StrategyStatus::Ecs(b)) => Some(b),
                _ => None,
            };
            ecs::drop_intents(s, before);
        }
    }
}

/// Forgets the strategy's view of where a rollout stands once nothing is in flight.
fn clear_stage(status: &mut crate::model::StrategyStatus) {
    match status {
        crate::model::StrategyStatus::CodeDeploy(s) => s.lifecycle_event = None,
        crate::model::StrategyStatus::TaskSets(s) => {
            s.step = None;
            s.pause_ends_at = None;
        }
        crate::model::StrategyStatus::Ecs(s) => {
            s.lifecycle_stage = None;
            s.waiting_hook = None;
        }
    }
}

fn set_condition(
    next: &mut ReleaseStatus,
    prev: Option<&ReleaseStatus>,
    kind: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: String,
    now: Timestamp,
) {
    let previous = prev
        .and_then(|p| p.condition(kind))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time);
    let condition = Condition {
        kind,
        status,
        reason,
        message,
        last_transition_time: previous.unwrap_or(now),
    };
    match next.conditions.iter_mut().find(|c| c.kind == kind) {
        Some(existing) => *existing = condition,
        None => {
            next.conditions.push(condition);
            next.conditions.sort_by_key(|c| c.kind);
        }
    }
}

/// Sets the phase, the message and the `Ready` and `Progressing` conditions that follow
/// from them.
fn apply_phase(
    next: &mut ReleaseStatus,
    prev: Option<&ReleaseStatus>,
    phase: Phase,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    next.phase = phase;
    next.message = message.to_string();
    let (ready, progressing) = match phase {
        Phase::Healthy => (ConditionStatus::True, ConditionStatus::False),
        Phase::Pending | Phase::Progressing | Phase::AwaitingPromotion => {
            (ConditionStatus::False, ConditionStatus::True)
        }
        _ => (ConditionStatus::False, ConditionStatus::False),
    };
    set_condition(
        next,
        prev,
        ConditionType::Ready,
        ready,
        reason,
        message.to_string(),
        now,
    );
    set_condition(
        next,
        prev,
        ConditionType::Progressing,
        progressing,
        reason,
        message.to_string(),
        now,
    );
}

/// How long to wait before asking again for a call refused `count` times in a row: from
/// 1 s, doubling, at most [`REFUSAL_BACKOFF_MAX`], with up to a quarter more of jitter
/// drawn from the release's name and the count (pure, so every replica agrees).
pub fn refusal_delay(release: &str, count: u32) -> Duration {
    let base = Duration::from_secs(1u64 << count.saturating_sub(1).min(16));
    let base = base.min(REFUSAL_BACKOFF_MAX);
    // FNV-1a over the name and the count: a stable, well-spread jitter.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in release.bytes().chain(count.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let jitter = base.mul_f64((hash % 1000) as f64 / 4000.0);
    (base + jitter).min(REFUSAL_BACKOFF_MAX)
}

/// A duration as people write it (`4s`, `2m 8s`).
pub(crate) fn friendly(duration: Duration) -> String {
    let whole = Duration::from_secs(duration.as_secs().max(1));
    jiff::SignedDuration::try_from(whole)
        .map(|d| format!("{d:#}"))
        .unwrap_or_else(|_| format!("{}s", whole.as_secs()))
}

/// What to do about a refused call, for its message.
fn refusal_advice(error: &AwsError) -> &'static str {
    match error.kind {
        AwsErrorKind::AccessDenied if error.service == "sts" => {
            "let the controller assume the role: its trust policy must name the controller's \
             role (and the controller's externalId, if it asks for one), and the controller's \
             role needs sts:AssumeRole on it"
        }
        AwsErrorKind::AccessDenied => {
            "grant that action to the role the release acts as (spec.service.roleArn, else the \
             controller's own role)"
        }
        AwsErrorKind::NotFound => "create the resource it names or fix the release",
        _ => "fix the release or the resources it names",
    }
}

/// Whether AWS refused the call: asking again unchanged would be refused again.
pub fn is_refusal(error: &AwsError) -> bool {
    matches!(
        error.kind,
        AwsErrorKind::AccessDenied | AwsErrorKind::InvalidRequest | AwsErrorKind::NotFound
    )
}

/// Records in `status` that AWS refused `operation` (a mutating call, or a look the pass
/// needed): phase `Failed` with the operation, the error code and what to fix.
pub fn record_refusal(
    status: &mut ReleaseStatus,
    release: &str,
    operation: &str,
    error: &AwsError,
    now: Timestamp,
) {
    let count = status
        .refusal
        .as_ref()
        .filter(|r| r.operation == operation && r.generation == status.observed_generation)
        .map_or(1, |r| r.count + 1);
    let delay = refusal_delay(release, count);
    let code = error.code.clone();
    let message = format!(
        "{operation} was refused ({}): {}; {}, then run `switchyard retry {release}` (asking again by itself in {})",
        code.as_deref().unwrap_or(error.kind.as_str()),
        error.message,
        refusal_advice(error),
        friendly(delay)
    );
    status.refusal = Some(Refusal {
        operation: operation.to_string(),
        code,
        message: message.clone(),
        at: now,
        count,
        generation: status.observed_generation,
    });
    let prev = status.clone();
    apply_phase(
        status,
        Some(&prev),
        Phase::Failed,
        Reason::Refused,
        &message,
        now,
    );
}

/// Records in `status` that a pass for it panicked (a bug in the controller): `Failed`, an
/// internal error; the release is retried with backoff.
pub fn record_internal_error(status: &mut ReleaseStatus, what: &str, now: Timestamp) {
    let message = format!(
        "internal error: a reconcile pass panicked ({what}); it is retried with backoff, please report it"
    );
    let prev = status.clone();
    apply_phase(
        status,
        Some(&prev),
        Phase::Failed,
        Reason::InternalError,
        &message,
        now,
    );
}

/// Applies the result of an action to the status the decision wrote, without new
/// observation: the registered task definition, the created deployment, the request it
/// carried out, or the refusal.
pub fn record_outcome(
    decision: &Decision,
    action: &Action,
    result: &Result<ActionResult, AwsError>,
    release: &str,
    now: Timestamp,
) -> ReleaseStatus {
    let mut status = decision.status.clone();
    match (action, result) {
        (Action::RegisterTaskDefinition(_), Ok(ActionResult::Registered(registered))) => {
            status.desired_task_definition = Some(registered.arn.clone());
            if let Some(candidate) = status.candidate.as_mut() {
                candidate.arn = Some(registered.arn.clone());
                candidate.registering_since = None;
            }
            status.message = format!("registered {}", registered.short_name());
        }
        (Action::RegisterTaskDefinition(_), Err(error)) if !error.is_ambiguous() => {
            // It did not take effect: nothing to look for next pass.
            if let Some(candidate) = status.candidate.as_mut() {
                candidate.registering_since = None;
            }
        }
        (Action::CodeDeploy(action), Ok(ActionResult::CodeDeploy(result))) => {
            codedeploy::record_outcome(&mut status, action, &Ok(result.clone()));
        }
        (Action::CodeDeploy(action), Err(error)) => {
            codedeploy::record_outcome(&mut status, action, &Err(error.clone()));
        }
        (Action::TaskSets(action), Ok(ActionResult::TaskSets(result))) => {
            task_sets::record_outcome(&mut status, action, &Ok(result.clone()));
        }
        (Action::TaskSets(action), Err(error)) => {
            task_sets::record_outcome(&mut status, action, &Err(error.clone()));
        }
        (Action::Ecs(action), Ok(ActionResult::Ecs(result))) => {
            ecs::record_outcome(&mut status, action, &Ok(result.clone()));
        }
        (Action::Ecs(action), Err(error)) => {
            ecs::record_outcome(&mut status, action, &Err(error.clone()));
        }
        _ => {}
    }
    match result {
        Ok(_) => {
            status.refusal = None;
            if let Some(ack) = &decision.ack {
                status.handled_requests.set(ack.kind, ack.requested_at);
                status.history.insert(0, ack.entry.clone());
                status.history.truncate(HISTORY_LIMIT);
            }
        }
        Err(error) if is_refusal(error) => {
            record_refusal(&mut status, release, action.operation(), error, now);
        }
        // Unless the strategy already said what the failure means (a deployment already
        // active, a deployment no longer waiting or already finished).
        Err(error) if !error.is_retryable() && status.message == decision.status.message => {
            status.message = format!("{} failed: {error}", action.operation());
        }
        Err(_) => {}
    }
    status
}

#[cfg(test)]
mod tests;
