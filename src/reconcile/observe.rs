//! What the shell must look up for a release in this pass: a pure plan, so that steady
//! releases cost one batched DescribeServices and nothing else.

use jiff::{SignedDuration, Timestamp};

use crate::model::{Phase, ReleaseStatus, RequestKind};
use crate::ports::Service;

use super::DesiredRelease;

/// The task definitions to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinitionLookups {
    /// The base: the revision recorded for this generation, else `spec.taskDefinition.from`.
    pub base: String,
    /// The base's family, for its latest revision (an identical one may be registered).
    pub family: String,
    /// The live task definition, for its content (it may already be the candidate).
    pub live: Option<String>,
    /// The recorded candidate, when only its ARN is known (the AppSpec needs its containers).
    pub candidate: Option<String>,
}

/// The lookups one pass needs after the service has been described.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservationPlan {
    pub task_definitions: Option<TaskDefinitionLookups>,
    /// Look at CodeDeploy: the deployment group and its active deployment.
    pub codedeploy: bool,
    /// Deployments to get by id (the one the status tracks, one being stopped).
    pub deployment_ids: Vec<String>,
    /// Search the group's deployments created since then for ours (an intent without id).
    pub search_since: Option<Timestamp>,
}

/// How far before a recorded intent to search, for clock skew between host and AWS.
const INTENT_SEARCH_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// Plans the lookups for one release, given its last status and its described service.
pub fn plan_observation(
    desired: &DesiredRelease,
    status: Option<&ReleaseStatus>,
    service: &Service,
) -> ObservationPlan {
    let Ok(spec) = &desired.spec else {
        return ObservationPlan::default();
    };
    let generation = desired.generation;
    let same_generation = status.is_some_and(|s| s.observed_generation == generation);
    let status_now = status.filter(|_| same_generation);

    let has_pending_request = [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry]
        .into_iter()
        .any(|kind| {
            desired.requests.get(kind).is_some_and(|r| {
                r.generation == generation
                    && status.and_then(|s| s.handled_requests.get(kind)) != Some(r.requested_at)
            })
        });
    let settled = status_now.is_some_and(|s| {
        matches!(
            s.phase,
            Phase::Healthy | Phase::RolledBack | Phase::Failed | Phase::Invalid | Phase::Paused
        ) && s.intent.is_none()
            && s.stop_requested.is_none()
    });
    let something_in_flight = service.task_sets.len() > 1;
    let drifted = status_now.is_some_and(|s| {
        s.desired_task_definition.is_some()
            && service.live_task_definition() != s.desired_task_definition.as_deref()
    });
    let paused_and_idle =
        spec.paused && !something_in_flight && status_now.is_some_and(|s| s.phase == Phase::Paused);

    let codedeploy = !paused_and_idle
        && (!settled
            || something_in_flight
            || has_pending_request
            || (drifted && spec.on_drift == crate::model::OnDrift::Converge));

    let needs_candidate =
        !spec.paused && status_now.is_none_or(|s| s.desired_task_definition.is_none());
    let task_definitions = if needs_candidate {
        let base = status_now
            .and_then(|s| s.resolved_from.clone())
            .unwrap_or_else(|| spec.task_definition.from.clone());
        Some(TaskDefinitionLookups {
            family: family_of(&base).to_string(),
            base,
            live: service.live_task_definition().map(str::to_string),
            candidate: None,
        })
    } else if codedeploy && !settled {
        // The candidate is known by ARN; creating the deployment needs its containers.
        status_now
            .filter(|s| s.deployment_id.is_none())
            .and_then(|s| s.desired_task_definition.clone())
            .map(|candidate| TaskDefinitionLookups {
                base: candidate.clone(),
                family: String::new(),
                live: None,
                candidate: Some(candidate),
            })
    } else {
        None
    };

    let mut deployment_ids = Vec::new();
    let mut search_since = None;
    if codedeploy && let Some(status) = status {
        if let Some(id) = &status.deployment_id {
            deployment_ids.push(id.clone());
        }
        if let Some(stop) = &status.stop_requested
            && !deployment_ids.contains(&stop.deployment_id)
        {
            deployment_ids.push(stop.deployment_id.clone());
        }
        if let Some(intent) = &status.intent {
            search_since = Some(intent.recorded_at - INTENT_SEARCH_SLACK);
        }
    }
    ObservationPlan {
        task_definitions,
        codedeploy,
        deployment_ids,
        search_since,
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
