//! What the shell must look up for a release in this pass: a pure plan, so that steady
//! releases cost one batched DescribeServices and nothing else.

use jiff::{SignedDuration, Timestamp};

use crate::model::{
    Candidate, Outcome, Phase, Reason, ReleaseSpec, ReleaseStatus, RequestKind, SelectedStrategy,
};
use crate::ports::Service;

use super::{DesiredRelease, candidate, pending_request};

/// The task definitions to look up to resolve the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveLookups {
    /// The base to describe: the revision recorded for this `spec.taskDefinition`, else
    /// `spec.taskDefinition.from` (a family: its latest revision switchyard did not register;
    /// or an ARN).
    pub base: String,
    /// The base's family: its revisions switchyard registered for this release are listed.
    pub family: String,
    /// The live task definition, for its content (it may already be the candidate).
    pub live: Option<String>,
}

/// The lookups one pass needs after the service has been described.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservationPlan {
    pub resolve: Option<ResolveLookups>,
    /// The recorded candidate, when a strategy needs its content to start a rollout.
    pub candidate: Option<String>,
    /// Look at the strategy's world (and the rollback alarms).
    pub strategy: Option<StrategyPlan>,
}

/// Which routes (listener default actions and rules) a task-set pass reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesPlan {
    /// The rollout's own, by ARN: those to read, and those the pass leaves unread.
    Known {
        read: Vec<String>,
        unread: Vec<String>,
    },
    /// Every route of the pair's load balancers, and the listed ones.
    Discover { listed: Vec<String> },
}

/// What to look at in the strategy's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategyPlan {
    Ecs(super::ecs::Plan),
    TaskSets {
        /// The pair, as the document names it.
        target_groups: Vec<String>,
        routes: RoutesPlan,
        /// The candidate group whose targets' health the rollout waits for.
        candidate_health: Option<String>,
    },
    CodeDeploy {
        /// Deployments to get by id (the one the status tracks, one being stopped).
        deployment_ids: Vec<String>,
        /// Search the group's deployments created since then (an intent without id).
        search_since: Option<Timestamp>,
    },
}

/// How far before a recorded intent to search, for clock skew between host and AWS.
const INTENT_SEARCH_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// Whether a status describes a release that needs no look beyond its service: it
/// describes this generation, settled, with nothing in flight and nothing asked for.
pub fn is_at_rest(desired: &DesiredRelease, status: Option<&ReleaseStatus>) -> bool {
    let Some(status) = status.filter(|s| s.observed_generation == desired.generation) else {
        return false;
    };
    let nothing_asked = [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry]
        .into_iter()
        .all(|kind| pending_request(&desired.requests, status, kind).is_none());
    let settled = match status.phase {
        Phase::Healthy | Phase::RolledBack | Phase::Invalid | Phase::Paused => true,
        // A rollout's verdict, or drift reported: settled. Other failures (a missing group,
        // a refusal) are looked at again.
        Phase::Failed => status
            .condition(crate::model::ConditionType::Ready)
            .is_some_and(|c| matches!(c.reason, Reason::DeploymentFailed | Reason::Drifted)),
        Phase::Pending | Phase::Progressing | Phase::AwaitingPromotion => false,
    };
    let cleaning_up = matches!(
        &status.strategy,
        Some(crate::model::StrategyStatus::TaskSets(t)) if t.clean_up.is_some()
    );
    settled && nothing_asked && status.rollout_in_flight().is_none() && !cleaning_up
}

/// Plans the lookups for one release, given its last status and its described service.
pub fn plan_observation(
    desired: &DesiredRelease,
    status: Option<&ReleaseStatus>,
    service: &Service,
    now: Timestamp,
) -> ObservationPlan {
    let Ok(spec) = &desired.spec else {
        return ObservationPlan::default();
    };
    let Some(strategy) = spec.strategy.selected() else {
        return ObservationPlan::default();
    };
    let live = service.live_task_definition();
    let expected_live = status
        .and_then(|s| s.rollout.as_ref())
        .filter(|r| matches!(r.outcome, Some(Outcome::Succeeded | Outcome::AlreadyLive)))
        .map(|r| r.candidate.as_str());
    let drifted = expected_live.is_some() && expected_live != live;
    // Drift is reported from the service alone; converging it starts a rollout.
    let at_rest = is_at_rest(desired, status)
        && !(drifted && spec.on_drift == crate::model::OnDrift::Converge);
    if at_rest {
        return ObservationPlan::default();
    }
    let in_flight = status.and_then(ReleaseStatus::rollout_in_flight);
    // A clean-up goes on while the release is paused (it is no rollout), and reads the routes
    // before it deletes.
    let cleaning_up = matches!(
        status.and_then(|s| s.strategy.as_ref()),
        Some(crate::model::StrategyStatus::TaskSets(t)) if t.clean_up.is_some()
    );
    let idle_and_paused = spec.paused && in_flight.is_none() && !cleaning_up;
    if idle_and_paused {
        return ObservationPlan::default();
    }

    let recorded = status.and_then(|s| s.candidate.as_ref());
    let current = candidate::is_current(recorded, spec);
    let registering = recorded.is_some_and(|c| c.arn.is_none());
    let retry =
        status.is_some_and(|s| pending_request(&desired.requests, s, RequestKind::Retry).is_some());
    let resolve =
        (!current || registering || retry).then(|| resolve_lookups(spec, recorded, retry, live));
    // Starting a rollout needs the candidate's content (CodeDeploy's AppSpec, the task set's
    // container).
    let candidate = recorded
        .filter(|_| current && resolve.is_none())
        .filter(|_| may_start_rollout(spec, strategy, status))
        .and_then(|c| c.arn.clone());

    let strategy = Some(match strategy {
        SelectedStrategy::CodeDeploy(_) => {
            let cd = status.and_then(ReleaseStatus::code_deploy);
            let mut deployment_ids = Vec::new();
            if let Some(id) = status.and_then(|s| s.deployment_id.clone()) {
                deployment_ids.push(id);
            }
            if let Some(stop) = cd.and_then(|s| s.stop.as_ref())
                && !deployment_ids.contains(&stop.deployment_id)
            {
                deployment_ids.push(stop.deployment_id.clone());
            }
            StrategyPlan::CodeDeploy {
                deployment_ids,
                search_since: cd
                    .and_then(|s| s.creating_since)
                    .map(|since| since - INTENT_SEARCH_SLACK),
            }
        }
        SelectedStrategy::Ecs(_) => StrategyPlan::Ecs(super::ecs::plan(status, service)),
        SelectedStrategy::TaskSets(task_sets) => {
            let state = status.and_then(|s| match &s.strategy {
                Some(crate::model::StrategyStatus::TaskSets(t)) => Some(t),
                _ => None,
            });
            // A rollout in flight (or its clean-up) reads its own routes, those its stage
            // decides on; one about to start finds them on the pair's load balancers.
            let known = state.filter(|t| in_flight.is_some() || t.clean_up.is_some());
            let routes = match known {
                Some(t) => {
                    // The end of a timed pause has come, and nothing holds the next step.
                    let pause_ended = !spec.paused
                        && t.stage == crate::model::TaskSetsStage::Steps
                        && t.pause_ends_at.is_some_and(|end| end <= now);
                    let (read, unread) = super::task_sets::routes_to_read(
                        t,
                        in_flight,
                        &desired.name,
                        service,
                        pause_ended,
                        resolve.is_some(),
                    );
                    RoutesPlan::Known { read, unread }
                }
                None => RoutesPlan::Discover {
                    listed: task_sets
                        .listeners
                        .iter()
                        .chain(&task_sets.test_listeners)
                        .cloned()
                        .collect(),
                },
            };
            let candidate_health = known.and_then(|t| {
                super::task_sets::candidate_health_to_read(t, in_flight, &desired.name, service)
            });
            StrategyPlan::TaskSets {
                target_groups: task_sets.target_groups.clone(),
                routes,
                candidate_health,
            }
        }
    });
    ObservationPlan {
        resolve,
        candidate,
        strategy,
    }
}

/// Whether a pass may start a rollout (and so need the candidate's content), given that the
/// spec's candidate is the recorded one: not while the rollout in flight, of that candidate
/// and of the spec's target, follows its deployment (or task set) and is not being wound
/// down, since it can then only go on or end with a verdict. A long wait would otherwise
/// describe the candidate again every time the cache lets it go.
fn may_start_rollout(
    spec: &ReleaseSpec,
    strategy: SelectedStrategy<'_>,
    status: Option<&ReleaseStatus>,
) -> bool {
    let Some(status) = status else {
        return true;
    };
    let Some(rollout) = status.rollout_in_flight() else {
        return true;
    };
    let winding_down = match &status.strategy {
        Some(crate::model::StrategyStatus::CodeDeploy(cd)) => cd.stop.is_some(),
        Some(crate::model::StrategyStatus::TaskSets(t)) => t.rolling_back.is_some(),
        Some(crate::model::StrategyStatus::Ecs(e)) => e.rolling_back.is_some(),
        None => true,
    };
    status.deployment_id.is_none()
        || winding_down
        || rollout.target != super::target_key(spec, strategy)
}

/// What resolving the candidate for `spec` looks up: the base recorded for this
/// `spec.taskDefinition` (a `retry` resolves `from` again), else `from`; the base's family;
/// and the live task definition. `switchyard diff` resolves with the same lookups.
pub fn resolve_lookups(
    spec: &ReleaseSpec,
    recorded: Option<&Candidate>,
    retry: bool,
    live: Option<&str>,
) -> ResolveLookups {
    let current = candidate::is_current(recorded, spec);
    let base = recorded
        .filter(|_| current && !retry)
        .map(|c| c.base.clone())
        .unwrap_or_else(|| spec.task_definition.from.clone());
    ResolveLookups {
        family: family_of(&base).to_string(),
        base,
        live: live.map(str::to_string),
    }
}

/// The family of a task definition reference: `family`, `family:rev` or a full ARN.
pub fn family_of(reference: &str) -> &str {
    let tail = reference
        .rsplit_once("task-definition/")
        .map(|(_, tail)| tail)
        .unwrap_or(reference);
    tail.split(':').next().unwrap_or(tail)
}
