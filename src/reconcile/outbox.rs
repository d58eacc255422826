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
//! 4. An attempt is claimed (`claim`) before it is made: its intent, `sendingSince`, is
//!    written with the status, fenced by the lease; its outcome clears it. An intent found
//!    without an outcome that no attempt of this replica explains is sent again after
//!    [`UNCONFIRMED_WAIT`] (counted in `resent`): at least once, and twice only when an
//!    outcome was lost.
//!
//! An outcome for an event no longer in the outbox (recorded already, or dropped) changes
//! nothing.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::ReleaseStatus;
use crate::model::notifications::{
    DeliveryFailure, NotificationMessage, NotificationsStatus, PendingDelivery,
};

/// How long an attempt whose outcome was never recorded is left alone before the delivery
/// is sent again: longer than any attempt lasts (the shell's `SEND_TIMEOUT`), so the
/// attempt of a replica that stopped or lost its lease has ended by then.
pub const UNCONFIRMED_WAIT: Duration = Duration::from_secs(30);
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
/// has come and no attempt of it is under way (an intent without an outcome).
pub fn due(status: &ReleaseStatus, now: Timestamp) -> Vec<Due<'_>> {
    heads(status)
        .into_iter()
        .filter(|(pending, _)| {
            pending.sending_since.is_none() && pending.retry_at.is_none_or(|at| at <= now)
        })
        .map(|(pending, message)| Due {
            destination: &pending.destination,
            message,
        })
        .collect()
}

/// Each destination's oldest pending delivery, with its event, in the outbox's order.
fn heads(status: &ReleaseStatus) -> Vec<(&PendingDelivery, &NotificationMessage)> {
    let Some(notifications) = status.notifications.as_ref() else {
        return Vec::new();
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut heads = Vec::new();
    for entry in &notifications.outbox {
        for pending in &entry.pending {
            if !seen.contains(&pending.destination.as_str()) {
                seen.push(&pending.destination);
                heads.push((pending, &entry.message));
            }
        }
    }
    heads
}

/// A delivery this pass claims: its intent is in the status the pass writes, and the shell
/// makes the attempt once that write succeeded (fenced by the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub destination: String,
    pub message: NotificationMessage,
    /// An earlier attempt's outcome was never recorded: this one may be a duplicate.
    pub resend: bool,
}

/// Claims the deliveries to attempt now, writing their intents (`sendingSince`) into the
/// status. `in_flight(id, destination)`: whether this replica has that attempt on its way
/// (its outcome is not recorded yet, and is not lost).
///
/// An intent found without an outcome and not in flight here is another replica's attempt
/// (still on its way, or its outcome lost with the replica): it is left alone for
/// [`UNCONFIRMED_WAIT`], longer than any attempt lasts, then sent again and counted in
/// `resent`: never blindly at once, and never lost.
pub fn claim(
    status: &mut ReleaseStatus,
    now: Timestamp,
    in_flight: impl Fn(&str, &str) -> bool,
) -> Vec<Claim> {
    let Some(notifications) = status.notifications.as_mut() else {
        return Vec::new();
    };
    let mut seen: Vec<String> = Vec::new();
    let mut claims = Vec::new();
    let mut resent = 0;
    for entry in &mut notifications.outbox {
        for pending in &mut entry.pending {
            if seen.contains(&pending.destination) {
                continue;
            }
            seen.push(pending.destination.clone());
            let resend = match pending.sending_since {
                Some(_) if in_flight(&entry.message.id, &pending.destination) => continue,
                Some(since) if now < since + signed(UNCONFIRMED_WAIT) => continue,
                Some(_) => true,
                None if pending.retry_at.is_some_and(|at| at > now) => continue,
                None => false,
            };
            pending.sending_since = Some(now);
            resent += u64::from(resend);
            claims.push(Claim {
                destination: pending.destination.clone(),
                message: entry.message.clone(),
                resend,
            });
        }
    }
    notifications.resent += resent;
    claims
}

/// When the earliest head-of-line delivery becomes due (to attempt, or to send again after
/// an unconfirmed attempt); deliveries in flight here (`in_flight(id, destination)`) wake
/// their release when they end. `None` when nothing waits.
pub fn next_due(
    status: &ReleaseStatus,
    in_flight: impl Fn(&str, &str) -> bool,
) -> Option<Timestamp> {
    heads(status)
        .into_iter()
        .filter_map(|(pending, message)| match pending.sending_since {
            Some(_) if in_flight(&message.id, &pending.destination) => None,
            Some(since) => Some(since + signed(UNCONFIRMED_WAIT)),
            None => Some(pending.retry_at.unwrap_or(message.time)),
        })
        .min()
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
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
            pending.sending_since = None;
            pending.attempts += 1;
            pending.last_error = Some(error.clone());
            pending.retry_at =
                Some(outcome.at + signed(retry_delay(&outcome.id, pending.attempts)));
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
                    format!("{error}; given up after {}", super::friendly(GIVE_UP_AFTER))
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
    let base =
        Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(RETRY_BACKOFF_MAX);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(attempts.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let jitter = base.mul_f64((hash % 1000) as f64 / 4000.0);
    (base + jitter).min(RETRY_BACKOFF_MAX)
}
