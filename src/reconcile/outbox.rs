//! The outbox's bookkeeping, pure: which deliveries are due, and what a delivery's outcome
//! does to the status (the shell makes the calls, `controller/notifier.rs`).
//!
//! 1. Each destination receives a release's events in the order they were recorded, one at
//!    a time: its oldest pending delivery is the one due, once its `retryAt` has passed.
//! 2. A delivery made is removed from its entry (an entry with none left leaves the
//!    outbox) and counted in `delivered`.
//! 3. A failed attempt is counted, said in `lastFailure`, and tried again after a backoff
//!    (1 s doubling, at most 5 minutes, with a jitter drawn from the event's id); it is given
//!    up (counted in `dropped`) when the destination refused it for good (an invalid request,
//!    a webhook's 4xx) or the event is older than [`GIVE_UP_AFTER`].
//!
//! An outcome for an event no longer in the outbox (recorded already, or dropped) changes
//! nothing.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::ReleaseStatus;
use crate::model::notifications::{DeliveryFailure, NotificationMessage, NotificationsStatus};

/// An event not delivered after this long is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);
/// The longest wait between two attempts of one delivery.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Failed {
        error: String,
        /// Asking again unchanged would fail again (give it up now).
        permanent: bool,
    },
}

/// One attempt's outcome, as the shell reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub id: String,
    pub destination: String,
    pub attempt: Attempt,
    /// When the attempt ended.
    pub at: Timestamp,
}

/// A delivery to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due<'a> {
    pub destination: &'a str,
    pub message: &'a NotificationMessage,
}

/// The deliveries due at `now`: per destination, its oldest pending one, if its retry time
/// has come.
pub fn due(status: &ReleaseStatus, now: Timestamp) -> Vec<Due<'_>> {
    let Some(notifications) = status.notifications.as_ref() else {
        return Vec::new();
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut due = Vec::new();
    for entry in &notifications.outbox {
        for pending in &entry.pending {
            if seen.contains(&pending.destination.as_str()) {
                continue;
            }
            seen.push(&pending.destination);
            if pending.retry_at.is_none_or(|at| at <= now) {
                due.push(Due {
                    destination: &pending.destination,
                    message: &entry.message,
                });
            }
        }
    }
    due
}

/// When the earliest head-of-line delivery not in `busy` (destinations with an attempt on
/// its way) becomes due; `None` when nothing waits.
pub fn next_due(status: &ReleaseStatus, busy: &[String]) -> Option<Timestamp> {
    let notifications = status.notifications.as_ref()?;
    let mut seen: Vec<&str> = Vec::new();
    let mut next: Option<Timestamp> = None;
    for entry in &notifications.outbox {
        for pending in &entry.pending {
            if seen.contains(&pending.destination.as_str()) {
                continue;
            }
            seen.push(&pending.destination);
            if busy.contains(&pending.destination) {
                continue;
            }
            let at = pending.retry_at.unwrap_or(entry.message.time);
            next = Some(next.map_or(at, |n: Timestamp| n.min(at)));
        }
    }
    next
}

/// Applies attempts' outcomes to the status; returns whether it changed.
pub fn apply(status: &mut ReleaseStatus, outcomes: &[DeliveryOutcome]) -> bool {
    let Some(notifications) = status.notifications.as_mut() else {
        return false;
    };
    let before = notifications.clone();
    for outcome in outcomes {
        apply_one(notifications, outcome);
    }
    let changed = *notifications != before;
    if notifications.is_empty() {
        status.notifications = None;
    }
    changed
}

fn apply_one(notifications: &mut NotificationsStatus, outcome: &DeliveryOutcome) {
    let Some(index) = notifications
        .outbox
        .iter()
        .position(|e| e.message.id == outcome.id)
    else {
        return;
    };
    let entry = &mut notifications.outbox[index];
    let Some(at) = entry
        .pending
        .iter()
        .position(|p| p.destination == outcome.destination)
    else {
        return;
    };
    match &outcome.attempt {
        Attempt::Delivered => {
            entry.pending.remove(at);
            notifications.delivered += 1;
        }
        Attempt::Failed { error, permanent } => {
            let age = crate::clock::elapsed_between(entry.message.time, outcome.at);
            let give_up = *permanent || age >= GIVE_UP_AFTER;
            let pending = &mut entry.pending[at];
            pending.attempts += 1;
            pending.last_error = Some(error.clone());
            pending.retry_at = Some(
                outcome.at
                    + SignedDuration::try_from(retry_delay(&outcome.id, pending.attempts))
                        .unwrap_or_default(),
            );
            notifications.failed_attempts += 1;
            let event = entry.message.event;
            if give_up {
                entry.pending.remove(at);
                notifications.dropped += 1;
            }
            notifications.last_failure = Some(DeliveryFailure {
                destination: outcome.destination.clone(),
                event,
                id: outcome.id.clone(),
                error: if give_up && !*permanent {
                    format!(
                        "{error}; given up after {}",
                        super::friendly(GIVE_UP_AFTER)
                    )
                } else {
                    error.clone()
                },
                at: outcome.at,
                dropped: give_up,
            });
        }
    }
    if notifications.outbox[index].pending.is_empty() {
        notifications.outbox.remove(index);
    }
}

/// How long to wait before attempting a delivery again after `attempts` failures: from 1 s,
/// doubling, at most [`RETRY_BACKOFF_MAX`], plus up to a quarter more drawn from the event's
/// id (pure: every replica agrees, and deliveries of many releases to one recovering
/// destination spread out).
pub fn retry_delay(id: &str, attempts: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(RETRY_BACKOFF_MAX);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(attempts.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let jitter = base.mul_f64((hash % 1000) as f64 / 4000.0);
    (base + jitter).min(RETRY_BACKOFF_MAX)
}
