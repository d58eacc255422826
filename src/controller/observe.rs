//! What a pass looks up before it decides, following the pure observation plan: the
//! service, the task definitions that resolve the candidate, the rollback alarms, and (by
//! the release's strategy module) the strategy's world.

use super::Context;
use super::codedeploy;
use super::lookup::lookup;
use super::task_definitions::TaskDefinitionReader;
use super::task_sets;
use crate::model::ReleaseSpec;
use crate::ports::{AwsError, AwsPorts, Service, StoredRelease, TaskDefinition};
use crate::reconcile::plan::StrategyPlan;
use crate::reconcile::{DesiredRelease, Lookup, Observed, StrategyObserved, plan_observation};

/// The AWS ports of the place the release lives in (its region and account, as its role).
pub async fn ports_for(ctx: &Context, desired: &DesiredRelease) -> Result<AwsPorts, AwsError> {
    ctx.aws.ports(&desired.placement).await
}

/// Looks up what `decide` needs, following the pure observation plan, spending as few calls
/// as it can: the service may come from the resync's batch or from the strategy (while it
/// follows a deployment), task definitions from a cache (a revision never changes), alarm
/// states from the alarm watcher's batch.
pub async fn observe(
    ctx: &Context,
    desired: &DesiredRelease,
    record: &StoredRelease,
    service: Lookup<Service>,
    now: jiff::Timestamp,
) -> Result<Observed, AwsError> {
    let mut observed = Observed {
        status: record.status.clone(),
        ..Observed::default()
    };
    let Ok(spec) = &desired.spec else {
        return Ok(observed);
    };
    let ports = ports_for(ctx, desired).await?;
    // A strategy that follows its rollout may know the service already (it does not change
    // what `decide` reads before the rollout ends) and observes its own world first.
    let followed = match (&service, spec.strategy.selected()) {
        (Lookup::NotLookedUp, Some(crate::model::SelectedStrategy::CodeDeploy(_))) => {
            codedeploy::observe_followed(ctx, &ports, desired, record).await?
        }
        _ => None,
    };
    let (service, strategy_seen) = match followed {
        Some((service, seen)) => (Lookup::Found(service), Some(seen)),
        None => (service, None),
    };
    // A task-set rollout in its steps goes on with the service an earlier pass described.
    let task_sets = matches!(
        spec.strategy.selected(),
        Some(crate::model::SelectedStrategy::TaskSets(_))
    );
    let remembered_for = record
        .status
        .as_ref()
        .and_then(crate::reconcile::task_sets::remembered_service)
        .filter(|_| task_sets);
    let mut service_remembered = false;
    let service = match (service, remembered_for) {
        (Lookup::NotLookedUp, Some((candidate, true))) => {
            match ctx.caches.following(&record.name, candidate) {
                Some(service) => {
                    service_remembered = true;
                    Lookup::Found(service)
                }
                None => Lookup::NotLookedUp,
            }
        }
        (service, _) => service,
    };
    let service = match service {
        Lookup::Found(service) => service,
        Lookup::Missing => {
            observed.service = Lookup::Missing;
            return Ok(observed);
        }
        Lookup::NotLookedUp => match describe_service(&ports, spec).await? {
            Some(service) => service,
            None => {
                observed.service = Lookup::Missing;
                return Ok(observed);
            }
        },
    };
    if task_sets && !service_remembered {
        match remembered_for {
            Some((candidate, _)) => ctx.caches.follow(&record.name, candidate, &service),
            None => ctx.caches.unfollow(&record.name),
        }
    }
    let plan = plan_observation(desired, record.status.as_ref(), &service, now);
    observed.service = Lookup::Found(service);

    if let Some(lookups) = &plan.resolve {
        observed.task_definitions = reader(ctx, &ports)
            .resolve_inputs(&desired.name, lookups)
            .await?;
    } else if let Some(candidate) = &plan.candidate {
        observed.task_definitions.candidate =
            describe_task_definition(ctx, &ports, candidate).await?;
    }
    let Some(strategy_plan) = &plan.strategy else {
        return Ok(observed);
    };
    let alarms = spec.rollback_alarms();
    if !alarms.is_empty() {
        let scope = desired.placement.scope_key();
        observed.alarms = Some(match ctx.caches.alarms(&scope, alarms) {
            Some(states) => states,
            None => {
                let states = ports.alarms.alarm_states(alarms).await?;
                ctx.caches.put_alarms(&ctx.clock, &scope, alarms, &states);
                states
            }
        });
    }
    observed.strategy = match strategy_plan {
        StrategyPlan::CodeDeploy {
            deployment_ids,
            search_since,
        } => StrategyObserved::CodeDeploy(
            codedeploy::observe(
                ctx,
                &ports,
                desired,
                record,
                &observed,
                deployment_ids,
                *search_since,
                strategy_seen,
            )
            .await?,
        ),
        StrategyPlan::Ecs(plan) => {
            StrategyObserved::Ecs(super::ecs::observe(&ports, spec, plan).await?)
        }
        StrategyPlan::TaskSets {
            target_groups,
            routes,
            candidate_health,
        } => StrategyObserved::TaskSets(crate::reconcile::task_sets::Observed {
            service_remembered,
            ..task_sets::observe(
                ctx,
                &ports,
                &desired.placement.scope_key(),
                target_groups,
                routes,
                candidate_health.as_deref(),
            )
            .await?
        }),
    };
    // An analysis's measurement, when one is due: its readings (errors included) go to
    // `decide`, which records it once.
    observed.analysis = super::analysis::measure(ctx, &ports, spec, record.status.as_ref()).await;
    Ok(observed)
}

/// Describes the release's service; `None` when it (or its cluster) does not exist.
pub async fn describe_service(
    ports: &AwsPorts,
    spec: &ReleaseSpec,
) -> Result<Option<Service>, AwsError> {
    // A missing cluster is NotFound (ClusterNotFoundException): the service is missing.
    let described = lookup(
        ports
            .ecs
            .describe_services(
                &spec.service.cluster,
                std::slice::from_ref(&spec.service.name),
            )
            .await,
    )?;
    Ok(described.found().and_then(|services| {
        services
            .iter()
            .find(|s| s.name == spec.service.name)
            .cloned()
    }))
}

/// Describes a task definition through the controller's cache.
pub async fn describe_task_definition(
    ctx: &Context,
    ports: &AwsPorts,
    reference: &str,
) -> Result<Lookup<TaskDefinition>, AwsError> {
    reader(ctx, ports).describe(reference).await
}

fn reader<'a>(ctx: &'a Context, ports: &'a AwsPorts) -> TaskDefinitionReader<'a> {
    TaskDefinitionReader::cached(ports.ecs.as_ref(), &ctx.caches, &ctx.clock)
}
