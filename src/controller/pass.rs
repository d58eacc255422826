//! One reconcile pass for one release: read, observe per the plan, decide, write the status,
//! act, record the outcome.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use jiff::Timestamp;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Context;
use super::observe::{observe, ports_for};
use super::resync::Snapshot;
use crate::lease::Fence;
use crate::ports::{AwsError, AwsPorts, Service, StoreError, StoredRelease};
use crate::reconcile::{
    Action, ActionResult, DesiredRelease, Lookup, Observed, codedeploy, decide, is_refusal,
    record_outcome, record_refusal, refusal_delay,
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
    /// The pass panicked: a bug. The release is retried with backoff; others go on.
    #[error("the pass panicked: {0}")]
    Panicked(String),
}

impl PassError {
    pub fn is_throttling(&self) -> bool {
        match self {
            PassError::Store(e) => e.is_throttling(),
            PassError::Aws(e) => e.is_throttling(),
            PassError::Panicked(_) => false,
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
    /// Results of analysis measurements this pass recorded (for the measurement metrics).
    pub new_measurements: Vec<crate::model::MeasurementResult>,
    /// The action taken, if any.
    pub action: Option<&'static str>,
    /// Whether the status was written.
    pub status_written: bool,
    pub requeue_after: Option<Duration>,
    /// When a notification needs a pass (a retry, an unconfirmed attempt); the loop keeps
    /// the rollout's own schedule beside it, so deliveries never move the rollout's looks.
    pub notify_after: Option<Duration>,
}

/// Runs one pass for `name` like [`reconcile_once`], but a pass that panics does not take
/// the controller (or the release's place in the queue) with it: the panic is caught,
/// counted in the metrics, logged with the release, and shown in the status (`Failed`, an
/// internal error); the loop retries the release with backoff.
pub async fn reconcile_guarded(
    ctx: &Context,
    name: &str,
    snapshot: Option<Snapshot>,
    fence: Option<Fence>,
) -> Result<PassReport, PassError> {
    use futures::FutureExt;
    let pass = std::panic::AssertUnwindSafe(reconcile_once(ctx, name, snapshot, fence.clone()));
    match pass.catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            ctx.state.metrics().pass_panics.inc();
            tracing::error!(release = %name, panic = %what, "a reconcile pass panicked");
            if let Err(error) = record_internal_error(ctx, name, &what, fence.as_ref()).await {
                warn!(release = %name, cause = %error, "could not record the panic in the status");
            }
            Err(PassError::Panicked(what))
        }
    }
}

/// What a caught panic said.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Writes `Failed` (an internal error) into the release's status after a panic.
async fn record_internal_error(
    ctx: &Context,
    name: &str,
    what: &str,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    let Some(record) = ctx.store.get(name).await? else {
        return Ok(());
    };
    // What an earlier action returned and could not be written is kept, not overwritten.
    let unrecorded = known_outcomes(ctx, &record);
    let written = unrecorded.is_some();
    let mut status = unrecorded
        .or_else(|| record.status.clone())
        .unwrap_or_default();
    status.observed_generation = record.generation;
    crate::reconcile::record_internal_error(&mut status, what, ctx.clock.now());
    if written || record.status.as_ref() != Some(&status) {
        ctx.store
            .write_status(name, &status, record.status_version, fence)
            .await?;
        ctx.caches.recorded(name);
    }
    Ok(())
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
    // The pass decides as of its start: the loop schedules the next look from the start too
    // (`requeue_after` counts from there), so a look due at a time (the end of a bake) comes
    // at that time, not early by however long this pass observed and then late by a pass.
    let now = ctx.clock.now();
    let first = match snapshot {
        Some(snapshot) => run_pass(ctx, snapshot, fence, now).await,
        None => fresh_pass(ctx, name, fence, now).await,
    };
    match first {
        Err(PassError::Store(StoreError::ConditionFailed { .. })) => {
            debug!(release = %name, "the release (or its lease) changed during the pass; reading it again");
            // A new decision, on what is read now: as of now. (Decided as of the first
            // attempt's start, an intent would be dated before the spec it carries out was
            // written, and could share its time with the intent of the rollout it replaces.)
            fresh_pass(ctx, name, fence, ctx.clock.now()).await
        }
        other => other,
    }
}

async fn fresh_pass(
    ctx: &Context,
    name: &str,
    fence: Option<&Fence>,
    now: Timestamp,
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
        now,
    )
    .await
}

async fn run_pass(
    ctx: &Context,
    snapshot: Snapshot,
    fence: Option<&Fence>,
    now: Timestamp,
) -> Result<PassReport, PassError> {
    let span = info_span!(
        "reconcile",
        release = %snapshot.record.name,
        generation = snapshot.record.generation
    );
    reconcile_record(ctx, snapshot, fence, now)
        .instrument(span)
        .await
}

async fn reconcile_record(
    ctx: &Context,
    snapshot: Snapshot,
    fence: Option<&Fence>,
    now: Timestamp,
) -> Result<PassReport, PassError> {
    let Snapshot {
        record,
        spec,
        service,
    } = snapshot;
    debug!("pass starts");
    // An action of an earlier pass of this replica whose outcome could not be written: start
    // from the status that records it, as if the write had succeeded, and write it now.
    let (record, unrecorded) = match known_outcomes(ctx, &record) {
        Some(status) => {
            debug!("starting from the outcome an earlier pass could not write");
            let mut patched = StoredRelease::clone(&record);
            patched.status = Some(status);
            (Arc::new(patched), true)
        }
        None => (record, false),
    };
    let desired = desired_release(ctx, &record, spec);
    let observed = match observe(ctx, &desired, &record, service, now).await {
        Ok(observed) => observed,
        Err(error) if is_refusal(&error) => {
            // A look AWS refuses (access denied, say) is refused again at once: say so in
            // the status, and let the loop back off.
            let mut status = record.status.clone().unwrap_or_default();
            status.observed_generation = desired.generation;
            status.region = Some(desired.placement.region.clone());
            status.account = desired.placement.account.clone();
            let operation = format!("{}:{}", error.service, error.operation);
            record_refusal(
                &mut status,
                &desired.name,
                &operation,
                &error,
                ctx.clock.now(),
            );
            let notifications = prepare_notifications(ctx, &desired, &record, None, &mut status);
            if unrecorded || record.status.as_ref() != Some(&status) {
                ctx.store
                    .write_status(&record.name, &status, record.status_version, fence)
                    .await?;
                ctx.caches.recorded(&record.name);
                dispatch_notifications(ctx, &record.name, fence, notifications);
            }
            return Err(PassError::Aws(error));
        }
        Err(error) => return Err(PassError::Aws(error)),
    };
    debug!("observed");
    let mut decision = decide(&desired, &observed, now);
    let notifications = prepare_notifications(ctx, &desired, &record, None, &mut decision.status);

    let mut report = PassReport {
        requeue_after: decision.requeue_after,
        notify_after: notifications_due(ctx, &record.name, &decision.status),
        ..PassReport::default()
    };
    let mut version = record.status_version;
    // An action's first call takes its budget token before its intent is written: no wait
    // for the budget between the intent and the call.
    let prepaid = match &decision.action {
        Some(action) => {
            let place = desired.placement.place();
            ctx.budgets.prepay(&place, action.operation()).await
        }
        None => None,
    };
    // The status is written before any action, even unchanged: the write's condition (same
    // status version, same generation) proves the spec did not change since it was read,
    // and an intent becomes durable before the call it announces.
    if unrecorded || record.status.as_ref() != Some(&decision.status) || decision.action.is_some() {
        version = ctx
            .store
            .write_status(&record.name, &decision.status, version, fence)
            .await?;
        ctx.caches.recorded(&record.name);
        dispatch_notifications(ctx, &record.name, fence, notifications);
        report.status_written = true;
        debug!("status written");
        if record.status.as_ref().map(|s| s.phase) != Some(decision.status.phase) {
            info!(phase = %decision.status.phase, message = %decision.status.message, "phase changed");
        }
    }
    let Some(action) = decision.action.clone() else {
        report.finish(&record, decision.status, version);
        report.spec = Some(desired.spec);
        return Ok(report);
    };
    report.action = Some(action.as_str());
    if matches!(action, Action::RegisterTaskDefinition(_)) {
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
    // The session that observed is good for minutes more (`access::MIN_REMAINING`).
    let ports = ports_for(ctx, &desired).await?;
    info!(action = action.as_str(), "acting");
    if let Action::TaskSets(crate::reconcile::task_sets::Action::SetWeights { route, .. }) = &action
    {
        // A discovery that holds the route no longer tells its weights.
        ctx.caches
            .forget_route(&desired.placement.scope_key(), route);
    }
    // The action goes ahead of looks whatever woke the pass (`Priority::Action`). A
    // wait for the budget comes between the check above and the call, so the lease is
    // checked again once the token came, right before each call.
    let check: super::budget::BeforeCall = match fence {
        Some(fence) => {
            let (ctx, name, fence) = (ctx.clone(), record.name.clone(), fence.clone());
            Arc::new(move || ctx.may_act(&name).ok().flatten().as_ref() == Some(&fence))
        }
        None => Arc::new(|| true),
    };
    let result = super::budget::with_check(
        check,
        super::budget::with_prepaid(
            prepaid,
            super::budget::with_priority(super::budget::Priority::Action, apply(&ports, &action)),
        ),
    )
    .await;
    debug!(action = action.as_str(), ok = result.is_ok(), "acted");
    match (&result, &observed.service) {
        (
            Ok(ActionResult::CodeDeploy(codedeploy::ActionResult::Created { deployment_id })),
            Lookup::Found(service),
        ) => {
            ctx.caches.follow(&record.name, deployment_id, service);
        }
        (Ok(ActionResult::Registered(registered)), _) => {
            ctx.caches.put_task_definition(&ctx.clock, registered);
        }
        _ => {}
    }
    if let Action::CodeDeploy(codedeploy::Action::Stop { deployment_id }) = &action
        && match &result {
            Ok(_) => true,
            Err(error) => error.kind == crate::ports::AwsErrorKind::Conflict,
        }
    {
        ctx.caches.stop_sent(&record.name, deployment_id);
    }
    let mut recorded = record_outcome(&decision, &action, &result, &desired.name, ctx.clock.now());
    let notifications = prepare_notifications(
        ctx,
        &desired,
        &record,
        Some(&decision.status),
        &mut recorded,
    );
    report.notify_after = notifications_due(ctx, &record.name, &recorded);
    if recorded != decision.status {
        version = match write_recorded(ctx, &record.name, &recorded, version, fence).await {
            Ok(version) => version,
            Err(error) => {
                // The call is done and this replica knows how it went: its next pass starts
                // from that (unless someone writes the status first), never from the intent.
                ctx.caches
                    .keep_unrecorded(&record.name, version, recorded.clone());
                return Err(error.into());
            }
        };
        debug!("outcome written");
        dispatch_notifications(ctx, &record.name, fence, notifications);
    }
    match result {
        Err(error) if error.is_retryable() => Err(PassError::Aws(error)),
        Err(error) if is_refusal(&error) => {
            warn!(cause = %error, "AWS refused the call; backing off");
            report.requeue_after = recorded
                .refusal
                .as_ref()
                .map(|r| refusal_delay(&desired.name, r.count));
            report.finish(&record, recorded, version);
            report.spec = Some(desired.spec);
            Ok(report)
        }
        _ => {
            report.finish(&record, recorded, version);
            report.spec = Some(desired.spec);
            Ok(report)
        }
    }
}

/// Records the notifications of the status about to be written (the events since `before`,
/// the stored status when `None`), with the outcomes of this replica's finished attempts
/// and the claims of due deliveries (see `notifier.rs`).
fn prepare_notifications(
    ctx: &Context,
    desired: &DesiredRelease,
    record: &StoredRelease,
    before: Option<&crate::model::ReleaseStatus>,
    status: &mut crate::model::ReleaseStatus,
) -> super::notifier::Prepared {
    ctx.notifier.prepare(
        &record.name,
        desired.generation,
        desired.spec.as_ref().ok(),
        before.or(record.status.as_ref()),
        status,
        ctx.clock.now(),
    )
}

/// After the write that carried them: the claimed deliveries are made, unless the lease
/// was lost meanwhile (the next owner sends them after the unconfirmed wait).
fn dispatch_notifications(
    ctx: &Context,
    name: &str,
    fence: Option<&Fence>,
    prepared: super::notifier::Prepared,
) {
    let send = fence.is_none_or(|fence| ctx.may_act(name).ok().flatten().as_ref() == Some(fence));
    ctx.notifier.dispatch(&ctx.state, name, prepared, send);
}

/// When the release's notifications need a pass, from now (never sooner than a second: a
/// delivery never makes a release spin).
fn notifications_due(
    ctx: &Context,
    name: &str,
    status: &crate::model::ReleaseStatus,
) -> Option<Duration> {
    let at = ctx.notifier.next_due(name, status)?;
    Some(crate::clock::elapsed_between(ctx.clock.now(), at).max(Duration::from_secs(1)))
}

/// The stored status with what this replica knows and the store may not say yet: the
/// outcome of its last action whose recording write failed (while nobody wrote the status
/// since), and a stop it saw accepted (CodeDeploy stops asynchronously: a stop sent again
/// would be a second mutation for one intent). `None`: the stored status says it all.
fn known_outcomes(ctx: &Context, record: &StoredRelease) -> Option<crate::model::ReleaseStatus> {
    let mut status = ctx.caches.unrecorded(&record.name, record.status_version);
    let known = status.is_some();
    let sent = ctx.caches.sent_stop(&record.name);
    let base = status.get_or_insert_with(|| record.status.clone().unwrap_or_default());
    let mut patched = false;
    if let Some(crate::model::StrategyStatus::CodeDeploy(cd)) = base.strategy.as_mut()
        && let Some(stop) = cd.stop.as_mut()
        && !stop.sent
        && sent.as_deref() == Some(stop.deployment_id.as_str())
    {
        stop.sent = true;
        patched = true;
    }
    (known || patched).then_some(status).flatten()
}

/// Writes what an action returned. A store that throttles or blinks is tried a few times
/// more: every intent is recoverable from AWS if this write is lost after all (a pass that
/// finds an intent without its outcome looks for it first), but a stop whose outcome is
/// unknown is only sent again after a while.
async fn write_recorded(
    ctx: &Context,
    name: &str,
    status: &crate::model::ReleaseStatus,
    version: u64,
    fence: Option<&Fence>,
) -> Result<u64, StoreError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_times(3);
    (|| async { ctx.store.write_status(name, status, version, fence).await })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(StoreError::is_retryable)
        .await
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
        self.new_measurements = crate::reconcile::analysis::new_measurements(
            record.status.as_ref().and_then(|s| s.analysis.as_ref()),
            status.analysis.as_ref(),
        );
        let mut release = StoredRelease::clone(record);
        release.status = Some(status);
        release.status_version = version;
        self.release = Some(Arc::new(release));
    }
}

/// Performs the action. Never retried here: CreateDeployment has no idempotency token, and
/// every action is decided afresh on the next pass from what is then observed.
async fn apply(ports: &AwsPorts, action: &Action) -> Result<ActionResult, AwsError> {
    match action {
        Action::RegisterTaskDefinition(registration) => ports
            .ecs
            .register_task_definition(
                &registration.base,
                &registration.containers,
                &registration.tags,
            )
            .await
            .map(ActionResult::Registered),
        Action::CodeDeploy(action) => super::codedeploy::apply(ports, action)
            .await
            .map(ActionResult::CodeDeploy),
        Action::TaskSets(action) => super::task_sets::apply(ports, action)
            .await
            .map(ActionResult::TaskSets),
        Action::Ecs(action) => super::ecs::apply(ports, action)
            .await
            .map(ActionResult::Ecs),
    }
}

/// The desired side of `record`: its spec (as the snapshot parsed it, or parsed now) as
/// the controller reads it (`Context::parse_spec`), and where the release lives.
fn desired_release(
    ctx: &Context,
    record: &StoredRelease,
    spec: Option<Result<crate::model::ReleaseSpec, Vec<crate::model::validate::FieldError>>>,
) -> DesiredRelease {
    let spec = spec.unwrap_or_else(|| ctx.parse_spec(&record.spec));
    let placement = match &spec {
        Ok(spec) => ctx.aws.place(spec),
        Err(_) => ctx.aws.home().place(None, None),
    };
    DesiredRelease {
        name: record.name.clone(),
        generation: record.generation,
        spec,
        requests: record.requests.clone(),
        placement,
    }
}

/// What a pass observes of `record` before it decides, without deciding or acting: the
/// inputs of `decide`. Exactly the pass's own observation (with the context's caches); for
/// benchmarks and diagnostics.
pub async fn observe_release(
    ctx: &Context,
    record: &StoredRelease,
) -> Result<(DesiredRelease, Observed), PassError> {
    let desired = desired_release(ctx, record, None);
    let observed = observe(ctx, &desired, record, Lookup::NotLookedUp, ctx.clock.now()).await?;
    Ok((desired, observed))
}
