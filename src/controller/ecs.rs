//! The ECS strategy's shell: what it looks at (the service's deployments, the revisions they
//! run, the alternate target group's ARN) and the calls it makes. The decisions are in
//! `reconcile/ecs`.

use crate::model::ReleaseSpec;
use crate::ports::{AwsError, AwsPorts};
use crate::reconcile::ecs::{Action, ActionResult, Observed, Plan};

/// Looks at the service's deployments, per the plan.
pub async fn observe(
    ports: &AwsPorts,
    spec: &ReleaseSpec,
    plan: &Plan,
) -> Result<Observed, AwsError> {
    let mut observed = Observed::default();
    let mut arns = plan.deployment_arns.clone();
    if let Some(since) = plan.search_since {
        observed.searched_since = Some(since);
        let cluster = crate::model::names::cluster_key(&spec.service.cluster);
        for arn in ports
            .ecs
            .list_service_deployments(cluster, &spec.service.name, Some(since))
            .await?
        {
            if !arns.contains(&arn) {
                arns.push(arn);
            }
        }
    }
    if !arns.is_empty() {
        observed.deployments = ports.ecs.describe_service_deployments(&arns).await?;
    }
    if plan.search_since.is_some() {
        let mut revisions: Vec<String> = observed
            .deployments
            .iter()
            .filter_map(|d| d.target_revision_arn.clone())
            .collect();
        revisions.sort();
        revisions.dedup();
        if !revisions.is_empty() {
            observed.revisions = ports.ecs.describe_service_revisions(&revisions).await?;
        }
    }
    let named_alternate = spec
        .strategy
        .ecs
        .as_ref()
        .and_then(|e| e.deployment.as_ref())
        .and_then(|d| d.load_balancer.as_ref())
        .map(|lb| lb.alternate_target_group.clone())
        .filter(|group| !group.starts_with("arn:"));
    if let Some(name) = named_alternate {
        observed.alternate_target_group = ports
            .load_balancer
            .describe_target_groups(std::slice::from_ref(&name))
            .await?
            .into_iter()
            .find(|g| g.name == name)
            .map(|g| g.arn);
    }
    Ok(observed)
}

/// Makes the call; never retried here.
pub async fn apply(ports: &AwsPorts, action: &Action) -> Result<ActionResult, AwsError> {
    match action {
        Action::UpdateService(request) => ports
            .ecs
            .update_service(request)
            .await
            .map(ActionResult::Updated),
        Action::Answer {
            deployment,
            hook_id,
            action,
        } => ports
            .ecs
            .continue_service_deployment(deployment, hook_id, *action)
            .await
            .map(|()| ActionResult::Done),
        Action::Stop { deployment } => ports
            .ecs
            .stop_service_deployment(deployment)
            .await
            .map(|()| ActionResult::Done),
    }
}
