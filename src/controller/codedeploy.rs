//! The CodeDeploy strategy's shell: what it looks at (the deployment group, the deployments
//! of the release's rollouts, the active deployment's ECS target and the production
//! listener) and the calls it makes. The decisions are in `reconcile/codedeploy`.

use super::Context;
use super::lookup::lookup;
use crate::ports::{
    AwsError, AwsPorts, DeploymentFilter, DeploymentStatus, Service, StoredRelease,
};
use crate::reconcile::codedeploy::{Action, ActionResult, Observed};
use crate::reconcile::{DesiredRelease, Lookup};

/// What a look at the followed deployment already fetched, handed to [`observe`].
pub struct Seen {
    deployments: Vec<crate::ports::Deployment>,
}

/// The deployment of the release's rollout the status tracks, if any.
fn followed_deployment(record: &StoredRelease) -> Option<&str> {
    record
        .status
        .as_ref()
        .filter(|s| s.rollout_in_flight().is_some())
        .and_then(|s| s.deployment_id.as_deref())
}

/// Following a deployment of ours: the service seen when it started serves until it ends,
/// so look at the deployment first, and describe the service only if it has ended.
/// `Some((service, seen))` when the cached service still serves.
pub async fn observe_followed(
    ctx: &Context,
    ports: &AwsPorts,
    _desired: &DesiredRelease,
    record: &StoredRelease,
) -> Result<Option<(Service, Seen)>, AwsError> {
    let Some(id) = followed_deployment(record) else {
        return Ok(None);
    };
    let Some(service) = ctx.caches.following(&record.name, id) else {
        return Ok(None);
    };
    let mut seen = Seen {
        deployments: Vec::new(),
    };
    let mut ids = vec![id.to_string()];
    fetch_deployments(ports, &mut ids, &mut seen.deployments).await?;
    let active = seen
        .deployments
        .iter()
        .any(|d| d.id == id && !d.status.is_terminal());
    Ok(active.then_some((service, seen)))
}

/// Looks at CodeDeploy for the release, per the plan.
#[allow(
    clippy::too_many_arguments,
    reason = "the observation's inputs, each used once; a struct would only name them again"
)]
pub async fn observe(
    ctx: &Context,
    ports: &AwsPorts,
    desired: &DesiredRelease,
    record: &StoredRelease,
    observed_so_far: &crate::reconcile::Observed,
    deployment_ids: &[String],
    search_since: Option<jiff::Timestamp>,
    seen: Option<Seen>,
) -> Result<Observed, AwsError> {
    let mut observed = Observed::default();
    let Ok(spec) = &desired.spec else {
        return Ok(observed);
    };
    let Some(crate::model::SelectedStrategy::CodeDeploy(strategy)) = spec.strategy.selected()
    else {
        return Ok(observed);
    };
    let scope = desired.placement.scope_key();
    let still_following = seen.is_some();
    if let Some(seen) = seen {
        observed.deployments = seen.deployments;
    }
    let cached = if still_following {
        ctx.caches
            .group_any_age(&scope, &strategy.application, &strategy.deployment_group)
    } else {
        ctx.caches
            .group(&scope, &strategy.application, &strategy.deployment_group)
    };
    let group = match cached {
        Some(group) => group,
        None => match lookup(
            ports
                .codedeploy
                .get_deployment_group(&strategy.application, &strategy.deployment_group)
                .await,
        )? {
            Lookup::Found(group) => {
                ctx.caches.put_group(&ctx.clock, &scope, &group);
                group
            }
            _ => {
                observed.group = Lookup::Missing;
                return Ok(observed);
            }
        },
    };
    observed.group = Lookup::Found(group.clone());

    // The deployments the status tracks first: if one of them is still active, it is the
    // group's only active deployment (CodeDeploy allows one), and listing is not needed.
    let mut ids: Vec<String> = deployment_ids.to_vec();
    fetch_deployments(ports, &mut ids, &mut observed.deployments).await?;
    let tracked_active = observed.deployments.iter().any(|d| !d.status.is_terminal());
    if !tracked_active {
        let active = ports
            .codedeploy
            .list_deployments(&group.application, &group.name, DeploymentFilter::Active)
            .await?;
        ids.extend(active);
        if let Some(since) = search_since {
            ids.extend(
                ports
                    .codedeploy
                    .list_deployments(
                        &group.application,
                        &group.name,
                        DeploymentFilter::CreatedSince(since),
                    )
                    .await?,
            );
            observed.searched_since = Some(since);
        }
        fetch_deployments(ports, &mut ids, &mut observed.deployments).await?;
    }

    let active = observed
        .deployments
        .iter()
        .find(|d| !d.status.is_terminal())
        .cloned();
    match (&active, followed_deployment(record)) {
        (Some(active), Some(id)) if active.id == id => {
            if !still_following && let Lookup::Found(service) = &observed_so_far.service {
                ctx.caches.follow(&record.name, id, service);
            }
        }
        _ => ctx.caches.unfollow(&record.name),
    }
    let Some(active) = active else {
        return Ok(observed);
    };
    // A deployment that has not started (Created, Queued) has no target yet.
    let started = !matches!(
        active.status,
        DeploymentStatus::Created | DeploymentStatus::Queued
    );
    if started {
        // CodeDeploy names an ECS target `<cluster name>:<service name>`, never the ARN.
        let target_id = format!(
            "{}:{}",
            crate::model::names::cluster_key(&spec.service.cluster),
            spec.service.name
        );
        observed.target = match ports
            .codedeploy
            .get_deployment_target(&active.id, &target_id)
            .await
        {
            Ok(target) => Some(target),
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(error),
        };
    }
    // The target carries the traffic weights; the listener is read only without them, and
    // not before the deployment starts (nothing has moved yet).
    let has_weights = observed.target.as_ref().is_some_and(|t| {
        t.task_sets
            .iter()
            .any(|ts| ts.label.as_deref() == Some("Green"))
    });
    if started
        && !has_weights
        && let Some(listener_arn) = group.production_listener_arns.first()
    {
        observed.listener = lookup(ports.load_balancer.describe_listener(listener_arn).await)?
            .found()
            .cloned();
    }
    Ok(observed)
}

/// Gets each id not yet observed, following the rollback deployment of any it gets.
async fn fetch_deployments(
    ports: &AwsPorts,
    ids: &mut Vec<String>,
    deployments: &mut Vec<crate::ports::Deployment>,
) -> Result<(), AwsError> {
    let mut index = 0;
    while index < ids.len() {
        let id = ids[index].clone();
        index += 1;
        if deployments.iter().any(|d| d.id == id) {
            continue;
        }
        if let Lookup::Found(deployment) = lookup(ports.codedeploy.get_deployment(&id).await)? {
            if let Some(rollback_id) = deployment
                .rollback
                .as_ref()
                .and_then(|r| r.rollback_deployment_id.clone())
                && !ids.contains(&rollback_id)
            {
                ids.push(rollback_id);
            }
            deployments.push(deployment);
        }
    }
    Ok(())
}

/// Makes the call. Never retried here: CreateDeployment has no idempotency token, and every
/// call is decided afresh on the next pass from what is then observed.
pub async fn apply(ports: &AwsPorts, action: &Action) -> Result<ActionResult, AwsError> {
    match action {
        Action::Create(request) => ports
            .codedeploy
            .create_deployment(request)
            .await
            .map(|deployment_id| ActionResult::Created { deployment_id }),
        Action::Continue { deployment_id } => ports
            .codedeploy
            .continue_deployment(deployment_id)
            .await
            .map(|()| ActionResult::Done),
        Action::Stop { deployment_id } => ports
            .codedeploy
            .stop_deployment(deployment_id, true)
            .await
            .map(|()| ActionResult::Done),
    }
}
