//! The task-set strategy's shell: what it looks at (the pair of target groups, the routes
//! the rollout weights, the candidate group's target health) and the calls it makes. The
//! decisions are in `reconcile/task_sets`.

use super::Context;
use super::lookup::lookup;
use crate::ports::{AwsError, AwsPorts, Route, TargetGroup};
use crate::reconcile::Lookup;
use crate::reconcile::plan::RoutesPlan;
use crate::reconcile::task_sets::{Action, ActionResult, Observed};

/// Looks at the load balancer for the release, per the plan.
pub async fn observe(
    ctx: &Context,
    ports: &AwsPorts,
    scope: &str,
    target_groups: &[String],
    routes: &RoutesPlan,
    candidate_health: Option<&str>,
) -> Result<Observed, AwsError> {
    let mut observed = Observed::default();
    let groups: Lookup<Vec<TargetGroup>> = match ctx.caches.target_groups(scope, target_groups) {
        Some(groups) => Lookup::Found(groups),
        None => {
            let described = lookup(
                ports
                    .load_balancer
                    .describe_target_groups(target_groups)
                    .await,
            )?;
            if let Lookup::Found(groups) = &described {
                ctx.caches
                    .put_target_groups(&ctx.clock, scope, target_groups, groups);
            }
            described
        }
    };
    // In the document's order, whatever the order of the answer.
    observed.target_groups = match groups {
        Lookup::Found(groups) => {
            let ordered: Option<Vec<TargetGroup>> = target_groups
                .iter()
                .map(|reference| {
                    groups
                        .iter()
                        .find(|g| &g.arn == reference || &g.name == reference)
                        .cloned()
                })
                .collect();
            match ordered {
                Some(ordered) => Lookup::Found(ordered),
                None => Lookup::Missing,
            }
        }
        other => other,
    };
    let Lookup::Found(groups) = &observed.target_groups else {
        return Ok(observed);
    };
    observed.routes = match routes {
        RoutesPlan::Known { read, unread } => {
            observed.unread_routes = unread.clone();
            describe_each(ports, read).await?
        }
        RoutesPlan::Discover { listed } => {
            let mut found: Vec<Route> = Vec::new();
            let mut balancers: Vec<&String> =
                groups.iter().flat_map(|g| &g.load_balancer_arns).collect();
            balancers.sort();
            balancers.dedup();
            for balancer in balancers {
                let routes = match ctx.caches.discovered_routes(scope, balancer) {
                    Some(routes) => routes,
                    None => {
                        let routes = ports.load_balancer.describe_routes(balancer).await?;
                        ctx.caches
                            .put_discovered_routes(&ctx.clock, scope, balancer, &routes);
                        routes
                    }
                };
                for route in routes {
                    if !found.iter().any(|r| r.arn == route.arn) {
                        found.push(route);
                    }
                }
            }
            let missing: Vec<String> = listed
                .iter()
                .filter(|arn| !found.iter().any(|r| &r.arn == *arn))
                .cloned()
                .collect();
            found.extend(describe_each(ports, &missing).await?);
            found
        }
    };
    if let Some(group) = candidate_health {
        observed.candidate_health = Some(ports.load_balancer.describe_target_health(group).await?);
    }
    Ok(observed)
}

/// Describes each route by ARN; one that does not exist is left out (the strategy says so).
async fn describe_each(ports: &AwsPorts, arns: &[String]) -> Result<Vec<Route>, AwsError> {
    let mut routes = Vec::with_capacity(arns.len());
    for arn in arns {
        if let Lookup::Found(route) = lookup(ports.load_balancer.describe_route(arn).await)? {
            routes.push(route);
        }
    }
    Ok(routes)
}

/// Makes the call. Never retried here: each call is decided afresh on the next pass from
/// what is then observed (CreateTaskSet carries its client token besides).
pub async fn apply(ports: &AwsPorts, action: &Action) -> Result<ActionResult, AwsError> {
    match action {
        Action::CreateTaskSet(request) => ports
            .ecs
            .create_task_set(request)
            .await
            .map(ActionResult::Created),
        Action::SetWeights {
            route,
            weights,
            expected,
        } => ports
            .load_balancer
            .set_forward_weights(route, weights, expected.as_ref())
            .await
            .map(|()| ActionResult::Done),
        Action::UpdatePrimary {
            cluster,
            service,
            task_set,
        } => ports
            .ecs
            .update_service_primary_task_set(cluster, service, task_set)
            .await
            .map(|_| ActionResult::Done),
        Action::Scale {
            cluster,
            service,
            task_set,
            percent,
        } => ports
            .ecs
            .update_task_set_scale(cluster, service, task_set, *percent)
            .await
            .map(|_| ActionResult::Done),
        Action::Delete {
            cluster,
            service,
            task_set,
        } => ports
            .ecs
            .delete_task_set(cluster, service, task_set, false)
            .await
            .map(|()| ActionResult::Done),
    }
}
