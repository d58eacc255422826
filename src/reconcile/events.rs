//! Which notifications a status write records: a pure function of the status before and
//! after it (`record`), called by the shell for every status it writes.
//!
//! An event is recorded in the release's outbox (`status.notifications`) in the same
//! conditional, lease-fenced write as the change it announces, so it is recorded once
//! whatever replica wrote it: a write that fails records nothing, and the next pass finds the
//! same change again. Sending is the shell's (`controller/notifier.rs`), from the outbox of a
//! written status only.
//!
//! The events, and what makes each:
//! 1. `RolloutStarted`: the status holds a rollout it did not hold before (a new serial; a
//!    candidate that was already live is no rollout).
//! 2. `StepCompleted`: a `taskSets` rollout's step index moved on under the same steps (one
//!    event per step passed; an edit of the steps moves the index without completing any).
//! 3. `AwaitingPromotion`: the phase became `AwaitingPromotion` (once per gate of a rollout).
//! 4. `AnalysisFailed`: the rollout's analysis (at a `taskSets` step, an ECS `PAUSE` hook or
//!    CodeDeploy's `Ready`) became `Failed`: once per rollout and gate.
//! 5. `RolloutSucceeded`, `RolloutRolledBack` (superseded rollouts too: their candidate was
//!    rolled back to make way for a newer one) and `RolloutFailed`: a new history entry ends
//!    a rollout; its message is the verdict's.
//! 6. `DriftDetected`: the `Drifted` condition became true.
//! 7. `RolloutFailed`, outside a verdict: the phase became `Failed` for a cause a human must
//!    fix (a refused call, a missing service, group or alarm, a panicked pass); once per
//!    rollout, cause and generation, however often a backoff retries.
//!
//! Every event of a rollout, in a pass, comes in that order; the terminal event of an older
//! rollout before the start of a newer one.

use jiff::Timestamp;
use sha2::Digest;

use crate::model::notifications::{
    EventKind, NotificationDestination, NotificationMessage, NotificationsStatus, OutboxEntry,
    PendingDelivery,
};
use crate::model::{
    AnalysisPhase, ConditionStatus, ConditionType, Outcome, Phase, Reason, ReleaseSpec,
    ReleaseStatus, SelectedStrategy, StrategyStatus,
};
use crate::ports::task_definition_short_name;

/// At most this many events wait in a release's outbox; a newer one drops the oldest
/// (counted in `dropped` and said in `lastFailure`).
pub const OUTBOX_LIMIT: usize = 20;
/// How many keys of recorded events a status remembers, so that a phase that flaps (a
/// refused call retried with backoff, a gate left and entered again) announces itself once.
pub const RECENT_KEYS: usize = 32;
/// The longest `message` a notification carries (status messages are one line; this bounds
/// what a destination receives whatever a message holds).
pub const MESSAGE_MAX_CHARS: usize = 1000;

/// What the events of a release need besides the statuses.
#[derive(Debug, Clone, Copy)]
pub struct Recording<'a> {
    pub release: &'a str,
    pub generation: u64,
    /// The release's valid spec (its strategy and steps).
    pub spec: &'a ReleaseSpec,
    /// Where its events go: the spec's `notifications`, or the controller's defaults.
    pub destinations: &'a [NotificationDestination],
}

/// An event found between two statuses, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub kind: EventKind,
    /// What makes it once: the same key is never recorded twice in a row of
    /// [`RECENT_KEYS`] events.
    pub key: String,
    pub message: String,
    pub candidate: Option<String>,
    /// For ordering: the rollout it belongs to.
    serial: u32,
    order: u8,
}

/// Records in `after`'s outbox every event between `before` and `after` that some
/// destination wants, each with a fresh unique id and the destinations that want it.
/// Records nothing when no destination is configured. Returns the events recorded.
pub fn record(
    recording: &Recording<'_>,
    before: Option<&ReleaseStatus>,
    after: &mut ReleaseStatus,
    now: Timestamp,
) -> Vec<NotificationMessage> {
    if recording.destinations.is_empty() {
        return Vec::new();
    }
    let detected = detect(recording.spec, before, after);
    let mut recorded = Vec::new();
    for event in detected {
        let pending: Vec<PendingDelivery> = recording
            .destinations
            .iter()
            .filter(|d| d.wants(event.kind))
            .filter_map(|d| d.destination())
            .map(|d| PendingDelivery {
                destination: d.key(),
                attempts: 0,
                retry_at: None,
                last_error: None,
                sending_since: None,
            })
            .collect();
        let notifications = after.notifications.get_or_insert_with(Default::default);
        if notifications.recent.contains(&event.key) {
            continue;
        }
        remember(notifications, &event.key);
        if pending.is_empty() {
            continue;
        }
        let message = NotificationMessage {
            event: event.kind,
            release: recording.release.to_string(),
            generation: recording.generation,
            strategy: recording
                .spec
                .strategy
                .selected()
                .map_or("", |s| s.name())
                .to_string(),
            live_task_definition: after.live_task_definition.clone(),
            candidate_task_definition: event.candidate.clone(),
            message: cut(&event.message),
            time: now,
            id: event_id(recording.release, &event.key, now),
        };
        push(
            notifications,
            OutboxEntry {
                message: message.clone(),
                pending,
            },
            now,
        );
        recorded.push(message);
    }
    if after
        .notifications
        .as_ref()
        .is_some_and(NotificationsStatus::is_empty)
    {
        after.notifications = None;
    }
    recorded
}

/// The events between two statuses, in order (see the module comment).
pub fn detect(
    spec: &ReleaseSpec,
    before: Option<&ReleaseStatus>,
    after: &ReleaseStatus,
) -> Vec<Detected> {
    let mut events = Vec::new();
    let before_rollout = before.and_then(|b| b.rollout.as_ref());
    let serial = after.rollout.as_ref().map_or(0, |r| r.serial);

    // 1. A new rollout.
    if let Some(rollout) = after.rollout.as_ref()
        && rollout.outcome != Some(Outcome::AlreadyLive)
        && before_rollout.map(|r| r.serial) != Some(rollout.serial)
    {
        let live = rollout
            .live
            .as_deref()
            .map(task_definition_short_name)
            .unwrap_or("nothing");
        events.push(Detected {
            kind: EventKind::RolloutStarted,
            key: format!("RolloutStarted/{}", rollout.serial),
            message: format!(
                "rollout {} started: {} replaces {live}",
                rollout.serial,
                task_definition_short_name(&rollout.candidate)
            ),
            candidate: Some(rollout.candidate.clone()),
            serial: rollout.serial,
            order: 0,
        });
    }

    // 2. Steps done.
    if let (Some(StrategyStatus::TaskSets(now)), Some(rollout)) =
        (after.strategy.as_ref(), after.rollout.as_ref())
        && let Some(StrategyStatus::TaskSets(was)) = before.and_then(|b| b.strategy.as_ref())
        && before_rollout.map(|r| r.serial) == Some(rollout.serial)
        && was.steps_digest == now.steps_digest
        && let (Some(from), Some(to)) = (was.step_index, now.step_index)
    {
        let steps = match spec.strategy.selected() {
            Some(SelectedStrategy::TaskSets(s)) => s.effective_steps(),
            _ => Vec::new(),
        };
        let count = now.step_count.max(steps.len());
        for index in from..to.min(count) {
            let what = steps
                .get(index)
                .map(|s| format!(": {}", s.describe()))
                .unwrap_or_default();
            events.push(Detected {
                kind: EventKind::StepCompleted,
                key: format!("StepCompleted/{}/{index}", rollout.serial),
                message: format!("step {}/{count} done{what}", index + 1),
                candidate: Some(rollout.candidate.clone()),
                serial: rollout.serial,
                order: 1,
            });
        }
    }

    // 3. A gate that waits for `switchyard promote`.
    let was_awaiting = before.is_some_and(|b| {
        b.phase == Phase::AwaitingPromotion
            && b.rollout.as_ref().map(|r| r.serial) == after.rollout.as_ref().map(|r| r.serial)
    });
    if after.phase == Phase::AwaitingPromotion && !was_awaiting {
        let gate = match after.strategy.as_ref() {
            Some(StrategyStatus::TaskSets(s)) => s
                .step_index
                .map_or_else(|| "-".to_string(), |i| i.to_string()),
            _ => "-".to_string(),
        };
        events.push(Detected {
            kind: EventKind::AwaitingPromotion,
            key: format!(
                "AwaitingPromotion/{serial}/{gate}/{}",
                phase_reason(after).map_or("", |r| r.as_str())
            ),
            message: after.message.clone(),
            candidate: after.rollout.as_ref().map(|r| r.candidate.clone()),
            serial,
            order: 2,
        });
    }

    // 4. A failed analysis (before the verdict it causes).
    let failed_analysis = |s: &ReleaseStatus| {
        s.analysis
            .as_ref()
            .filter(|a| a.phase == AnalysisPhase::Failed)
            .map(|a| (a.gate.clone(), a.started_at))
    };
    if let Some((gate, started_at)) = failed_analysis(after)
        && before.and_then(failed_analysis) != Some((gate.clone(), started_at))
    {
        let analysis = after.analysis.as_ref();
        events.push(Detected {
            kind: EventKind::AnalysisFailed,
            key: format!("AnalysisFailed/{serial}/{gate}"),
            message: analysis
                .and_then(|a| a.message.clone())
                .unwrap_or_else(|| format!("the analysis at {gate} failed")),
            candidate: after.rollout.as_ref().map(|r| r.candidate.clone()),
            serial,
            order: 2,
        });
    }

    // 5. Verdicts: the history entries this write adds that end a rollout.
    let old_history = before.map(|b| b.history.as_slice()).unwrap_or(&[]);
    let added: Vec<_> = after
        .history
        .iter()
        .take_while(|entry| !old_history.contains(entry))
        .collect();
    let mut verdict = false;
    for entry in added.into_iter().rev() {
        let kind = match entry.outcome {
            Outcome::Succeeded => EventKind::RolloutSucceeded,
            Outcome::RolledBack | Outcome::Superseded => EventKind::RolloutRolledBack,
            Outcome::Failed => EventKind::RolloutFailed,
            _ => continue,
        };
        verdict = true;
        events.push(Detected {
            kind,
            key: format!("{kind}/{}", entry.rollout),
            message: entry.message.clone(),
            candidate: entry.task_definition.clone(),
            serial: entry.rollout,
            order: 3,
        });
    }

    // 6. Drift.
    let drifted = |s: &ReleaseStatus| {
        s.condition(ConditionType::Drifted)
            .is_some_and(|c| c.status == ConditionStatus::True)
    };
    if drifted(after) && !before.is_some_and(drifted) {
        let message = after
            .condition(ConditionType::Drifted)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        events.push(Detected {
            kind: EventKind::DriftDetected,
            key: format!(
                "DriftDetected/{serial}/{}",
                after.live_task_definition.as_deref().unwrap_or("")
            ),
            message,
            candidate: after.desired_task_definition.clone(),
            serial,
            order: 4,
        });
    }

    // 7. Failed for a cause a human must fix.
    let reason = phase_reason(after);
    if after.phase == Phase::Failed
        && before.is_none_or(|b| b.phase != Phase::Failed)
        && !verdict
        && !matches!(reason, Some(Reason::Drifted | Reason::DeploymentFailed))
    {
        events.push(Detected {
            kind: EventKind::RolloutFailed,
            key: format!(
                "RolloutFailed/{serial}/{}/{}",
                reason.map_or("", |r| r.as_str()),
                after.observed_generation
            ),
            message: after.message.clone(),
            candidate: after.desired_task_definition.clone(),
            serial,
            order: 5,
        });
    }

    events.sort_by_key(|e| (e.serial, e.order));
    events
}

/// Why the status has its phase (the `Ready` condition's reason, which the phase sets).
fn phase_reason(status: &ReleaseStatus) -> Option<Reason> {
    status.condition(ConditionType::Ready).map(|c| c.reason)
}

fn remember(notifications: &mut NotificationsStatus, key: &str) {
    notifications.recent.push(key.to_string());
    let excess = notifications.recent.len().saturating_sub(RECENT_KEYS);
    notifications.recent.drain(..excess);
}

/// Adds an entry to the outbox, dropping the oldest beyond [`OUTBOX_LIMIT`].
fn push(notifications: &mut NotificationsStatus, entry: OutboxEntry, now: Timestamp) {
    notifications.outbox.push(entry);
    while notifications.outbox.len() > OUTBOX_LIMIT {
        let oldest = notifications.outbox.remove(0);
        notifications.dropped += oldest.pending.len() as u64;
        if let Some(first) = oldest.pending.first() {
            notifications.last_failure = Some(crate::model::notifications::DeliveryFailure {
                destination: first.destination.clone(),
                event: oldest.message.event,
                id: oldest.message.id.clone(),
                error: format!(
                    "dropped undelivered: the outbox holds at most {OUTBOX_LIMIT} events{}",
                    first
                        .last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                ),
                at: now,
                dropped: true,
            });
        }
    }
}

fn cut(message: &str) -> String {
    if message.chars().count() <= MESSAGE_MAX_CHARS {
        message.to_string()
    } else {
        let head: String = message.chars().take(MESSAGE_MAX_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// A unique id for an event: a digest of the release, the event's key and the time,
/// formatted as a UUID (version 8, name-based). Pure, so a pass decides it like everything
/// else; the time makes two releases of one name (deleted and created again) differ.
pub fn event_id(release: &str, key: &str, now: Timestamp) -> String {
    let digest = sha2::Sha256::digest(format!("{release}\n{key}\n{}", now.as_nanosecond()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
