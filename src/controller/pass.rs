//! One reconcile pass for one release: read, observe per the plan, decide, write the status,
//! act, record the outcome.

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, debug, info, info_span};

use super::Context;
use super::resync::Snapshot;
use crate::lease::Fence;
use crate::model::parse::parse_spec_value;
use crate::ports::{
    AwsError, AwsPorts, DeploymentFilter, DeploymentStatus, Service, StoreError, StoredRelease,
};
use crate::reconcile::{
    Action, ActionResult, DesiredRelease, Lookup, Observed, decide, plan_observation,
    record_outcome,
};

/// Why a pass failed; the loop retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Reading or writing the release store failed.
    #[error("release store")]
    Store(#[source] StoreError),
    /// An AWS call failed in a way worth retrying.
    #[error("AWS call")]
    Aws(#[source] AwsError),
}

impl PassError {
    pub fn is_throttling(&self) -> bool {
        match self {
            PassError::Store(e) => e.is_throttling(),
            PassError::Aws(e) => e.is_throttling(),
        }
    }
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        PassError::Store(e)
    }
}

impl From<AwsError> for PassError {
    fn from(e: AwsError) -> Self {
        PassError::Aws(e)
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// The release no longer exists.
    pub deleted: bool,
    /// The release as the pass left it (its record with the status written); the record it
    /// read, shared, when the pass changed nothing.
    pub release: Option<Arc<StoredRelease>>,
    /// The service as this pass saw it, when the next pass may use it instead of describing
    /// it again: after registering a task definition (which does not touch the service),
    /// the creation follows at once.
    pub service: Option<Service>,
    /// The spec as parsed for this pass, for the next one.
    pub spec: Option<Result<crate::model::ReleaseSpec, Vec<crate::model::validate::FieldError>>>,
    /// Outcomes of history entries this pass added (for the deployment metrics).
    pub new_outcomes: Vec<crate::model::Outcome>,
    /// The action taken, if any.
    pub action: Option<&'static str>,
    /// Whether the status was written.
    pub status_written: bool,
    pub requeue_after: Option<Duration>,
}

/// Runs one pass for `name`, from a resync snapshot when one is given (no store read, no
/// describe) or from a fresh read. A conditional write that finds the record changed since
/// it was read (someone wrote the spec, the snapshot was stale) retries once from a fresh
/// read at once: the controller converges on the latest spec without a backoff.
///
/// With a `fence` (this replica's lease on the release's shard), every status write is
/// conditioned on it: a replica that lost the lease cannot write, and so cannot act.
pub async fn reconcile_once(
    ctx: &Context,
    name: &str,
    snapshot: Option<Snapshot>,
    fence: Option<Fence>,
) -> Result<PassReport, PassError> {
    let fence = fence.as_ref();
    let first = match snapshot {
        Some(snapshot) => run_pass(ctx, snapshot, fence).await,
        None => fresh_pass(ctx, name, fence).await,
    };
    match first {
        Err(PassError::Store(StoreError::ConditionFailed { .. })) => {
            debug!(release = %name, "the release (or its lease) changed during the pass; reading it again");
            fresh_pass(ctx, name, fence).await
        }
        other => other,
    }
}

async fn fresh_pass(
    ctx: &Context,
    name: &str,
    fence: Option<&Fence>,
) -> Result<PassReport, PassError> {
    let Some(record) = ctx.store.get(name).await? else {
        debug!(release = %name, "release not found; nothing to manage");
        return Ok(PassReport {
            deleted: true,
            ..PassReport::default()
        });
    };
    run_pass(
        ctx,
        Snapshot {
            record: Arc::new(record),
            spec: None,
            service: Lookup::NotLookedUp,
        },
        fence,
    )
    .await
}

async fn run_pass(
    ctx: &Context,
    snapshot: Snapshot,
    fence: Option<&Fence>,
) -> Result<PassReport, PassError> {
    let span = info_span!(
        "reconcile",
        release = %snapshot.record.name,
        generation = snapshot.record.generation
    );
    reconcile_record(ctx, snapshot, fence)
        .instrument(span)
        .await
}

async fn reconcile_record(
    ctx: &Context,
    snapshot: Snapshot,
    fence: Option<&Fence>,
) -> Result<PassReport, PassError> {
    let Snapshot {
        record,
        spec,
        service,
    } = snapshot;
    let desired = DesiredRelease {
        name: record.name.clone(),
        generation: record.generation,
        spec: spec.unwrap_or_else(|| parse_spec_value(&record.spec)),
        requests: record.requests.clone(),
    };
    let observed = observe(ctx, &desired, &record, service).await?;
    let decision = decide(&desired, &observed, ctx.clock.now());

    let mut report = PassReport {
        requeue_after: decision.requeue_after,
        ..PassReport::default()
    };
    let mut version = record.status_version;
    // The status is written before any action, even unchanged: the write's condition (same
    // status version, same generation) proves the spec did not change since it was read,
    // and an intent becomes durable before the call it announces.
    if record.status.as_ref() != Some(&decision.status) || decision.action.is_some() {
        version = ctx
            .store
            .write_status(&record.name, &decision.status, version, fence)
            .await?;
        report.status_written = true;
        if record.status.as_ref().map(|s| s.phase) != Some(decision.status.phase) {
            info!(phase = %decision.status.phase, message = %decision.status.message, "phase changed");
        }
    }
    let Some(action) = decision.action else {
        report.finish(&record, decision.status, version);
        report.spec = Some(desired.spec);
        return Ok(report);
    };
    report.action = Some(action.as_str());
    if matches!(action, Action::RegisterTaskDefinition { .. }) {
        report.service = observed.service.found().cloned();
    }
    // The fenced write proved the lease when it committed; a replica paused since then may
    // have lost it. Check again right before the call (fencing cannot reach AWS itself).
    if let Some(fence) = fence
        && ctx.may_act(&record.name).ok().flatten().as_ref() != Some(fence)
    {
        return Err(PassError::Store(StoreError::Unavailable {
            message: "the lease is no longer safe to act on".into(),
            throttled: false,
        }));
    }
    let ports = ports_for(ctx, &desired);
    info!(action = action.as_str(), "acting");
    let result = apply(&ports, &action).await;
    match (&result, &observed.service) {
        (Ok(ActionResult::Created { deployment_id }), Lookup::Found(service)) => {
            ctx.caches.follow(&record.name, deployment_id, service);
        }
        (Ok(ActionResult::Registered(registered)), _) => {
            ctx.caches.put_task_definition(&ctx.clock, registered);
        }
        _ => {}
    }
    let recorded = record_outcome(decision.status.clone(), &action, &result, ctx.clock.now());
    if recorded != decision.status {
        version = ctx
            .store
            .write_status(&record.name, &recorded, version, fence)
            .await?;
    }
    match result {
        Err(error) if error.is_retryable() => Err(PassError::Aws(error)),
        _ => {
            report.finish(&record, recorded, version);
            report.spec = Some(desired.spec);
            Ok(report)
        }
    }
}

impl PassReport {
    /// Records the release as the pass left it, and the history entries it added.
    fn finish(
        &mut self,
        record: &Arc<StoredRelease>,
        status: crate::model::ReleaseStatus,
        version: u64,
    ) {
        if version == record.status_version && record.status.as_ref() == Some(&status) {
            self.release = Some(Arc::clone(record));
            return;
        }
        let old_history = record
            .status
            .as_ref()
            .map(|s| s.history.as_slice())
            .unwrap_or(&[]);
        self.new_outcomes = status
            .history
            .iter()
            .take_while(|entry| !old_history.contains(entry))
            .map(|entry| entry.outcome)
            .collect();
        let mut release = StoredRelease::clone(record);
        release.status = Some(status);
        release.status_version = version;
        self.release = Some(Arc::new(release));
    }
}

fn ports_for(ctx: &Context, desired: &DesiredRelease) -> AwsPorts {
    let region = desired
        .spec
        .as_ref()
        .ok()
        .and_then(|s| s.service.region.as_deref());
    ctx.aws.ports_for(region)
}

/// Performs the action. Never retried here: CreateDeployment has no idempotency token, and
/// every action is decided afresh on the next pass from what is then observed.
async fn apply(ports: &AwsPorts, action: &Action) -> Result<ActionResult, AwsError> {
    match action {
        Action::RegisterTaskDefinition { base, containers } => ports
            .ecs
            .register_task_definition(base, containers)
            .await
            .map(ActionResult::Registered),
        Action::CreateDeployment(request) => ports
            .codedeploy
            .create_deployment(request)
            .await
            .map(|deployment_id| ActionResult::Created { deployment_id }),
        Action::ContinueDeployment { deployment_id } => ports
            .codedeploy
            .continue_deployment(deployment_id)
            .await
            .map(|()| ActionResult::Done),
        Action::StopDeployment { deployment_id } => ports
            .codedeploy
            .stop_deployment(deployment_id, true)
            .await
            .map(|()| ActionResult::Done),
    }
}

/// What a pass observes of `record` before it decides, without deciding or acting: the
/// inputs of `decide`. Exactly the pass's own observation (with the context's caches); for
/// benchmarks and diagnostics.
pub async fn observe_release(
    ctx: &Context,
    record: &StoredRelease,
) -> Result<(DesiredRelease, Observed), PassError> {
    let desired = DesiredRelease {
        name: record.name.clone(),
        generation: record.generation,
        spec: parse_spec_value(&record.spec),
        requests: record.requests.clone(),
    };
    let observed = observe(ctx, &desired, record, Lookup::NotLookedUp).await?;
    Ok((desired, observed))
}

/// Maps a `NotFound` error to `Missing`; other errors fail the pass.
fn lookup<T>(result: Result<T, AwsError>) -> Result<Lookup<T>, AwsError> {
    match result {
        Ok(value) => Ok(Lookup::Found(value)),
        Err(error) if error.is_not_found() => Ok(Lookup::Missing),
        Err(error) => Err(error),
    }
}

/// Looks up what `decide` needs, following the pure observation plan, spending as few calls
/// as it can: the service may come from the resync's batch, the deployment group from a
/// short cache, the active deployment from the one the status tracks, traffic from the
/// deployment target, and alarm states from the alarm watcher's batch.
async fn observe(
    ctx: &Context,
    desired: &DesiredRelease,
    record: &StoredRelease,
    service: Lookup<Service>,
) -> Result<Observed, PassError> {
    let mut observed = Observed {
        status: record.status.clone(),
        ..Observed::default()
    };
    let Ok(spec) = &desired.spec else {
        return Ok(observed);
    };
    let region = spec.service.region.as_deref();
    let ports = ports_for(ctx, desired);
    // Following a deployment of ours: the service seen when it started serves until it ends,
    // so look at the deployment first, and describe the service only if it has ended.
    let following = match (&service, followed_deployment(desired, record)) {
        (Lookup::NotLookedUp, Some(id)) => match ctx.caches.following(&record.name, id) {
            Some(service) => {
                let mut ids = vec![id.to_string()];
                fetch_deployments(&ports, &mut ids, &mut observed).await?;
                let active = observed
                    .deployments
                    .iter()
                    .any(|d| d.id == id && !d.status.is_terminal());
                active.then_some(service)
            }
            None => None,
        },
        _ => None,
    };
    let still_following = following.is_some();
    let service = match (following, service) {
        (Some(service), _) => service,
        (None, Lookup::Found(service)) => service,
        (None, Lookup::Missing) => {
            observed.service = Lookup::Missing;
            return Ok(observed);
        }
        (None, Lookup::NotLookedUp) => {
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
            let found = described.found().and_then(|services| {
                services
                    .iter()
                    .find(|s| s.name == spec.service.name)
                    .cloned()
            });
            match found {
                Some(service) => service,
                None => {
                    observed.service = Lookup::Missing;
                    return Ok(observed);
                }
            }
        }
    };
    let plan = plan_observation(desired, record.status.as_ref(), &service);
    observed.service = Lookup::Found(service.clone());

    if let Some(lookups) = &plan.task_definitions {
        observed.base = describe_task_definition(ctx, &ports, &lookups.base).await?;
        if !lookups.family.is_empty() {
            observed.family_latest = if lookups.family == lookups.base {
                observed.base.clone()
            } else {
                describe_task_definition(ctx, &ports, &lookups.family).await?
            };
        }
        if let Some(live) = &lookups.live {
            let already = [observed.base.found(), observed.family_latest.found()]
                .into_iter()
                .flatten()
                .find(|t| &t.arn == live)
                .cloned();
            observed.live = match already {
                Some(t) => Lookup::Found(t),
                None => describe_task_definition(ctx, &ports, live).await?,
            };
        }
    }

    if !plan.codedeploy {
        return Ok(observed);
    }
    let Some(strategy) = spec.code_deploy() else {
        return Ok(observed);
    };
    let cached = if still_following {
        ctx.caches
            .group_any_age(region, &strategy.application, &strategy.deployment_group)
    } else {
        ctx.caches
            .group(region, &strategy.application, &strategy.deployment_group)
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
                ctx.caches.put_group(&ctx.clock, region, &group);
                group
            }
            _ => {
                observed.deployment_group = Lookup::Missing;
                return Ok(observed);
            }
        },
    };
    observed.deployment_group = Lookup::Found(group.clone());

    // The deployments the status tracks first: if one of them is still active, it is the
    // group's only active deployment (CodeDeploy allows one), and listing is not needed.
    let mut ids: Vec<String> = plan.deployment_ids.clone();
    fetch_deployments(&ports, &mut ids, &mut observed).await?;
    let tracked_active = observed.deployments.iter().any(|d| !d.status.is_terminal());
    if !tracked_active {
        let active = ports
            .codedeploy
            .list_deployments(&group.application, &group.name, DeploymentFilter::Active)
            .await?;
        ids.extend(active);
        if let Some(since) = plan.search_since {
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
        }
        fetch_deployments(&ports, &mut ids, &mut observed).await?;
    }

    let active = observed
        .deployments
        .iter()
        .find(|d| !d.status.is_terminal())
        .cloned();
    match (&active, followed_deployment(desired, record)) {
        (Some(active), Some(id)) if active.id == id => {
            if !still_following && let Lookup::Found(service) = &observed.service {
                ctx.caches.follow(&record.name, id, service);
            }
        }
        _ => ctx.caches.unfollow(&record.name),
    }
    let Some(active) = active else {
        return Ok(observed);
    };
    // A deployment that has not started (Created, Queued) has no target yet.
    if !matches!(
        active.status,
        DeploymentStatus::Created | DeploymentStatus::Queued
    ) {
        let target_id = format!("{}:{}", spec.service.cluster, spec.service.name);
        observed.target = match ports
            .codedeploy
            .get_deployment_target(&active.id, &target_id)
            .await
        {
            Ok(target) => Some(target),
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(error.into()),
        };
    }
    // The target carries the traffic weights; the listener is read only without them, and
    // not before the deployment starts (nothing has moved yet).
    let started = !matches!(
        active.status,
        DeploymentStatus::Created | DeploymentStatus::Queued
    );
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
    let alarms = spec.rollback_alarms();
    if !alarms.is_empty() {
        observed.alarms = match ctx.caches.alarms(region, alarms) {
            Some(states) => states,
            None => {
                let states = ports.alarms.alarm_states(alarms).await?;
                ctx.caches.put_alarms(&ctx.clock, region, &states);
                states
            }
        };
    }
    Ok(observed)
}

/// Describes a task definition, from the cache when `reference` is a full ARN (a revision
/// never changes); a family name asks for its latest revision, which only ECS knows.
async fn describe_task_definition(
    ctx: &Context,
    ports: &AwsPorts,
    reference: &str,
) -> Result<Lookup<crate::ports::TaskDefinition>, AwsError> {
    if let Some(cached) = ctx.caches.task_definition(reference) {
        return Ok(Lookup::Found(cached));
    }
    let described = lookup(ports.ecs.describe_task_definition(reference).await)?;
    if let Lookup::Found(task_definition) = &described {
        ctx.caches.put_task_definition(&ctx.clock, task_definition);
    }
    Ok(described)
}

/// The deployment of this generation the status tracks, if any: the one a pass follows.
fn followed_deployment<'a>(desired: &DesiredRelease, record: &'a StoredRelease) -> Option<&'a str> {
    record
        .status
        .as_ref()
        .filter(|s| s.observed_generation == desired.generation)
        .and_then(|s| s.deployment_id.as_deref())
}

/// Gets each id not yet observed, following the rollback deployment of any it gets.
async fn fetch_deployments(
    ports: &AwsPorts,
    ids: &mut Vec<String>,
    observed: &mut Observed,
) -> Result<(), PassError> {
    let mut index = 0;
    while index < ids.len() {
        let id = ids[index].clone();
        index += 1;
        if observed.deployments.iter().any(|d| d.id == id) {
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
            observed.deployments.push(deployment);
        }
    }
    Ok(())
}
