//! The invariants of notifications (19 to 21), checked over one run's event log (the outbox
//! of every committed status, every send a replica made) and what the simulated
//! destinations received (`SimNotifications::received`).
//!
//! A delivery is one event (its `id`) to one destination. The destinations name themselves
//! by a key in the status (`webhook:https://host#digest`: a webhook URL is a secret) and by
//! their address at the receiver (`webhook:URL`); the driver gives each release's pairs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use crate::log::{Entry, Event};
use crate::{Violation, ViolationKind};
use switchyard::model::Outcome;
use switchyard::model::notifications::{EventKind, NotificationMessage};
use switchyard::sim::Received;

/// The fields of every message body, as the contract lists them.
const CONTRACT_FIELDS: [&str; 9] = [
    "event",
    "release",
    "generation",
    "strategy",
    "liveTaskDefinition",
    "candidateTaskDefinition",
    "message",
    "time",
    "id",
];

/// What the checks need to know of one release's notifications.
#[derive(Debug, Clone, Default)]
pub struct ReleaseNotifications {
    /// `codeDeploy`, `taskSets` or `ecs`.
    pub strategy: &'static str,
    /// Each destination's key in the status, with its address at the receiver.
    pub receivers: BTreeMap<String, String>,
    /// Some destination wants `RolloutStarted` (so every rollout must record one).
    pub wants_started: bool,
}

/// One run's notifications, as the checks see them.
pub struct Notifications<'a> {
    pub releases: &'a BTreeMap<String, ReleaseNotifications>,
    /// Everything the destinations received, in order.
    pub received: &'a [Received],
    /// Every event recorded in a committed status: its release and message, by id.
    pub recorded: &'a BTreeMap<String, (String, NotificationMessage)>,
    /// The wall time of the log's start.
    pub origin: Timestamp,
}

/// What the notification checks looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotificationCounts {
    /// Events recorded in a committed status.
    pub events: u32,
    /// Deliveries recorded (an event to a destination), each checked to arrive (19).
    pub deliveries: u32,
    /// Of those, given up as the status says (a refusal for good, a full outbox, an hour).
    pub given_up: u32,
    /// Messages the destinations received, each checked to be recorded (19).
    pub received: u32,
    /// Second receipts of one delivery, each excused by an outcome lost before it (20).
    pub duplicates: u32,
    /// Receipts whose sender got an error or no answer although the message arrived.
    pub outcomes_lost: u32,
}

impl NotificationCounts {
    pub fn add(&mut self, other: &NotificationCounts) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.given_up += other.given_up;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.outcomes_lost += other.outcomes_lost;
    }
}

/// The message a body carries: the body itself (SNS, EventBridge, a `json` webhook), or the
/// code block of a `slack` webhook's `text`.
pub fn message_of(body: &str) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    if value.get("id").is_some() {
        return Some(value);
    }
    let text = value.get("text")?.as_str()?;
    let start = text.find("```")? + 3;
    let end = text.rfind("```")?;
    let inner = text.get(start..end)?;
    let unescaped = inner
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&unescaped).ok()
}

/// The event id a body carries.
pub fn event_id_of(body: &str) -> Option<String> {
    Some(message_of(body)?.get("id")?.as_str()?.to_string())
}

type Pair = (String, String);

/// 19, 20 and 21: every recorded delivery arrives at least once (or is given up as the
/// status counts); nothing arrives that no committed status recorded, and it arrives as
/// recorded; a delivery arrives twice only when the outcome of an earlier arrival was lost
/// to whoever sent it again; the events recorded follow the rollouts.
pub fn notifications_delivered(
    entries: &[Entry],
    world: &Notifications<'_>,
) -> (Vec<Violation>, NotificationCounts) {
    let mut violations = Vec::new();
    let mut counts = NotificationCounts {
        events: world.recorded.len() as u32,
        received: world.received.len() as u32,
        ..NotificationCounts::default()
    };
    let since = |at: Timestamp| -> Duration {
        Duration::try_from(at.duration_since(world.origin)).unwrap_or_default()
    };
    let receipts_of = {
        let mut map: BTreeMap<Pair, Vec<usize>> = BTreeMap::new();
        for (index, received) in world.received.iter().enumerate() {
            if let Some(id) = event_id_of(&received.body) {
                map.entry((received.destination.clone(), id))
                    .or_default()
                    .push(index);
            }
        }
        map
    };
    let receiver = |release: &str, key: &str| -> String {
        world
            .releases
            .get(release)
            .and_then(|r| r.receivers.get(key))
            .cloned()
            .unwrap_or_else(|| format!("unknown destination {key}"))
    };

    // 19: every delivery a committed status recorded arrives, or the status gives it up.
    // Per release, commit by commit: a delivery that leaves the outbox without ever having
    // arrived must be counted in `dropped` by that very commit.
    #[derive(Default)]
    struct Previous {
        pairs: BTreeSet<Pair>,
        dropped: u64,
    }
    let mut previous: BTreeMap<&str, Previous> = BTreeMap::new();
    // (receiver, id): when a commit recorded it delivered.
    let mut recorded_delivered: BTreeMap<Pair, Duration> = BTreeMap::new();
    let mut expected: BTreeSet<Pair> = BTreeSet::new();
    let mut rollouts: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut not_rollouts: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::StatusCommitted {
                release,
                rollout: Some(rollout),
                ..
            } => {
                // A candidate found live already is no rollout (nothing starts).
                let serials = rollouts.entry(release.as_str()).or_default();
                if rollout.outcome == Some(Outcome::AlreadyLive) {
                    not_rollouts
                        .entry(release.as_str())
                        .or_default()
                        .insert(rollout.serial);
                } else {
                    serials.insert(rollout.serial);
                }
            }
            Event::NotificationsCommitted {
                release,
                version,
                outbox,
                dropped,
                ..
            } => {
                let pairs: BTreeSet<Pair> = outbox
                    .iter()
                    .flat_map(|(id, keys)| {
                        keys.iter()
                            .map(|key| (receiver(release, key), id.clone()))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let before = previous.entry(release.as_str()).or_default();
                let mut unexplained = Vec::new();
                for pair in before.pairs.difference(&pairs) {
                    if receipts_of.contains_key(pair) {
                        recorded_delivered.entry(pair.clone()).or_insert(entry.at);
                    } else {
                        unexplained.push(pair.clone());
                    }
                }
                let given_up = dropped.saturating_sub(before.dropped);
                counts.given_up += unexplained.len().min(given_up as usize) as u32;
                if unexplained.len() as u64 > given_up {
                    violations.push(Violation::new(
                        ViolationKind::NotificationLost,
                        format!(
                            "{release}: status version {version} took {} deliveries out of its outbox that never arrived ({}), but counts {given_up} given up",
                            unexplained.len(),
                            unexplained
                                .iter()
                                .map(|(to, id)| format!("{id} to {to}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                expected.extend(pairs.iter().cloned());
                before.pairs = pairs;
                before.dropped = *dropped;
            }
            _ => {}
        }
    }
    counts.deliveries = expected.len() as u32;
    for (release, last) in &previous {
        for pair in &last.pairs {
            let (to, id) = pair;
            let arrived = if receipts_of.contains_key(pair) {
                "arrived, but its status still waits to deliver it"
            } else {
                "never arrived: it was still waiting in the outbox"
            };
            violations.push(Violation::new(
                ViolationKind::NotificationLost,
                format!("{release}: {id} to {to} {arrived} when the run ended"),
            ));
        }
    }

    // 19: nothing arrives that no committed status recorded for that destination, and it
    // arrives as recorded, with the contract's fields.
    for received in world.received {
        if received.outcome_lost {
            counts.outcomes_lost += 1;
        }
        let Some(message) = message_of(&received.body) else {
            violations.push(Violation::new(
                ViolationKind::NotificationNotRecorded,
                format!(
                    "{} received a body that carries no message: {}",
                    received.destination, received.body
                ),
            ));
            continue;
        };
        let id = message
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if !expected.contains(&(received.destination.clone(), id.clone())) {
            violations.push(Violation::new(
                ViolationKind::NotificationNotRecorded,
                format!(
                    "{} received {id}, which no committed status recorded for it",
                    received.destination
                ),
            ));
            continue;
        }
        let fields: BTreeSet<&str> = message
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let as_recorded = world
            .recorded
            .get(&id)
            .and_then(|(_, m)| serde_json::to_value(m).ok());
        if fields != BTreeSet::from(CONTRACT_FIELDS) || as_recorded.as_ref() != Some(&message) {
            violations.push(Violation::new(
                ViolationKind::NotificationNotRecorded,
                format!(
                    "{} received {id} other than recorded: {message} (recorded {as_recorded:?})",
                    received.destination
                ),
            ));
        }
    }

    // 20: a second arrival of one delivery only after the outcome of an earlier one was lost
    // to whoever sent it again; never after a committed status recorded it delivered.
    let mut senders: BTreeMap<usize, (&str, bool)> = BTreeMap::new();
    for entry in entries {
        if let Event::NotificationSent {
            replica,
            heard,
            receipt: Some(receipt),
            ..
        } = &entry.event
        {
            senders.insert(*receipt, (replica.as_str(), *heard));
        }
    }
    for (pair, receipts) in &receipts_of {
        for (k, &index) in receipts.iter().enumerate().skip(1) {
            let received = &world.received[index];
            let at = since(received.at);
            if let Some(&recorded_at) = recorded_delivered.get(pair)
                && recorded_at < at
            {
                violations.push(Violation::new(
                    ViolationKind::NotificationDeliveredTwice,
                    format!(
                        "{} to {} arrived again at {:.3}s, after a status recorded it delivered at {:.3}s",
                        pair.1,
                        pair.0,
                        at.as_secs_f64(),
                        recorded_at.as_secs_f64()
                    ),
                ));
                continue;
            }
            let sender = senders.get(&index).map(|(replica, _)| *replica);
            let all_heard_by_sender = sender.is_some()
                && receipts[..k].iter().all(|earlier| {
                    senders
                        .get(earlier)
                        .is_some_and(|(replica, heard)| Some(*replica) == sender && *heard)
                });
            if all_heard_by_sender {
                violations.push(Violation::new(
                    ViolationKind::NotificationDeliveredTwice,
                    format!(
                        "{} to {} arrived again at {:.3}s, sent by {} which had heard every earlier send of it delivered",
                        pair.1,
                        pair.0,
                        at.as_secs_f64(),
                        sender.unwrap_or_default()
                    ),
                ));
            } else {
                counts.duplicates += 1;
            }
        }
    }

    // 21: the events recorded follow the rollouts: each names its release and strategy; a
    // step completes only in a `taskSets` rollout; one `RolloutStarted` per rollout.
    let mut started: BTreeMap<&str, u32> = BTreeMap::new();
    for (id, (release, message)) in world.recorded {
        let Some(plan) = world.releases.get(release) else {
            continue;
        };
        if message.release != *release || message.strategy != plan.strategy {
            violations.push(Violation::new(
                ViolationKind::EventsDisagreeWithRollouts,
                format!(
                    "{release}: event {id} names release {} and strategy {} (the release uses {})",
                    message.release, message.strategy, plan.strategy
                ),
            ));
        }
        if message.event == EventKind::StepCompleted && plan.strategy != "taskSets" {
            violations.push(Violation::new(
                ViolationKind::EventsDisagreeWithRollouts,
                format!(
                    "{release}: StepCompleted {id} in a {} release, which has no steps",
                    plan.strategy
                ),
            ));
        }
        if message.event == EventKind::RolloutStarted {
            *started.entry(release.as_str()).or_default() += 1;
        }
    }
    for (release, plan) in world.releases {
        if !plan.wants_started || plan.receivers.is_empty() {
            continue;
        }
        let serials = rollouts.get(release.as_str()).map_or(0, |serials| {
            let already_live = not_rollouts.get(release.as_str());
            serials
                .iter()
                .filter(|serial| already_live.is_none_or(|s| !s.contains(serial)))
                .count()
        }) as u32;
        let events = started.get(release.as_str()).copied().unwrap_or(0);
        if serials != events {
            violations.push(Violation::new(
                ViolationKind::EventsDisagreeWithRollouts,
                format!(
                    "{release}: {serials} rollouts in its committed statuses, {events} RolloutStarted events recorded"
                ),
            ));
        }
    }
    (violations, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::RolloutSeen;
    use switchyard::model::Phase;

    const KEY: &str = "webhook:https://hooks.example.com#0000";
    const HOOK: &str = "webhook:https://hooks.example.com/web";

    fn origin() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn log(events: Vec<Event>) -> Vec<Entry> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, event)| Entry {
                seq: seq as u64,
                at: Duration::from_secs(10 * seq as u64),
                event,
            })
            .collect()
    }

    fn message(id: &str, event: EventKind) -> NotificationMessage {
        NotificationMessage {
            event,
            release: "web".into(),
            generation: 1,
            strategy: "ecs".into(),
            live_task_definition: None,
            candidate_task_definition: Some("web:2".into()),
            message: "started".into(),
            time: origin(),
            id: id.into(),
        }
    }

    fn committed(outbox: Vec<(&str, Vec<&str>)>, dropped: u64) -> Event {
        Event::NotificationsCommitted {
            release: "web".into(),
            version: 1,
            outbox: outbox
                .into_iter()
                .map(|(id, keys)| (id.to_string(), keys.into_iter().map(String::from).collect()))
                .collect(),
            delivered: 0,
            dropped,
            resent: 0,
        }
    }

    fn status(serial: u32) -> Event {
        Event::StatusCommitted {
            release: "web".into(),
            fence: None,
            version: 1,
            observed_generation: 1,
            phase: Phase::Progressing,
            message: String::new(),
            stop_requested: None,
            stop_sent: false,
            stop_superseded: false,
            rollout: Some(RolloutSeen {
                serial,
                generation: 1,
                candidate: "web:2".into(),
                outcome: None,
            }),
            handled: Vec::new(),
            task_sets: None,
            ecs: None,
        }
    }

    fn sent(replica: &str, heard: bool, receipt: Option<usize>) -> Event {
        Event::NotificationSent {
            replica: replica.into(),
            destination: HOOK.into(),
            id: "e1".into(),
            heard,
            receipt,
        }
    }

    fn receipt(id: &str, secs: i64, lost: bool) -> Received {
        Received {
            destination: HOOK.into(),
            body: message(id, EventKind::RolloutStarted).to_json(),
            kind: String::new(),
            at: origin() + jiff::SignedDuration::from_secs(secs),
            outcome_lost: lost,
        }
    }

    fn check(entries: &[Entry], received: &[Received]) -> Vec<ViolationKind> {
        let releases = BTreeMap::from([(
            "web".to_string(),
            ReleaseNotifications {
                strategy: "ecs",
                receivers: BTreeMap::from([(KEY.to_string(), HOOK.to_string())]),
                wants_started: true,
            },
        )]);
        let recorded = BTreeMap::from([(
            "e1".to_string(),
            ("web".to_string(), message("e1", EventKind::RolloutStarted)),
        )]);
        let world = Notifications {
            releases: &releases,
            received,
            recorded: &recorded,
            origin: origin(),
        };
        notifications_delivered(entries, &world)
            .0
            .into_iter()
            .map(|v| v.kind)
            .collect()
    }

    #[test]
    fn a_delivery_made_once_and_recorded_is_clean() {
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", true, Some(0)),
            committed(vec![], 0),
        ]);
        assert_eq!(check(&entries, &[receipt("e1", 15, false)]), vec![]);
    }

    #[test]
    fn a_delivery_taken_out_of_the_outbox_without_arriving_is_lost() {
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            committed(vec![], 0),
        ]);
        assert_eq!(check(&entries, &[]), vec![ViolationKind::NotificationLost]);
        // Counted as given up by the commit that took it out: accepted.
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            committed(vec![], 1),
        ]);
        assert_eq!(check(&entries, &[]), vec![]);
    }

    #[test]
    fn a_delivery_still_waiting_at_the_end_is_lost() {
        let entries = log(vec![status(1), committed(vec![("e1", vec![KEY])], 0)]);
        assert_eq!(check(&entries, &[]), vec![ViolationKind::NotificationLost]);
    }

    #[test]
    fn a_message_no_status_recorded_is_reported() {
        let entries = log(vec![status(1), committed(vec![], 0)]);
        let kinds = check(&entries, &[receipt("e1", 15, false)]);
        assert!(
            kinds.contains(&ViolationKind::NotificationNotRecorded),
            "{kinds:?}"
        );
    }

    #[test]
    fn a_second_send_by_the_replica_that_heard_the_first_is_reported() {
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", true, Some(0)),
            sent("r1", true, Some(1)),
            committed(vec![], 0),
        ]);
        let received = [receipt("e1", 15, false), receipt("e1", 25, false)];
        assert_eq!(
            check(&entries, &received),
            vec![ViolationKind::NotificationDeliveredTwice]
        );
    }

    #[test]
    fn a_second_send_after_a_lost_outcome_is_excused() {
        // The first answer was lost (the replica heard an error), or another replica sent it
        // again after the first stopped without recording it.
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", false, Some(0)),
            sent("r1", true, Some(1)),
            committed(vec![], 0),
        ]);
        let received = [receipt("e1", 15, true), receipt("e1", 25, false)];
        assert_eq!(check(&entries, &received), vec![]);
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", true, Some(0)),
            sent("r2", true, Some(1)),
            committed(vec![], 0),
        ]);
        let received = [receipt("e1", 15, false), receipt("e1", 25, false)];
        assert_eq!(check(&entries, &received), vec![]);
    }

    #[test]
    fn a_send_after_the_status_recorded_the_delivery_is_reported() {
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", true, Some(0)),
            committed(vec![], 0),
            sent("r2", true, Some(1)),
        ]);
        let received = [receipt("e1", 15, false), receipt("e1", 45, false)];
        assert_eq!(
            check(&entries, &received),
            vec![ViolationKind::NotificationDeliveredTwice]
        );
    }

    #[test]
    fn a_rollout_without_its_started_event_is_reported() {
        let entries = log(vec![
            status(1),
            committed(vec![("e1", vec![KEY])], 0),
            sent("r1", true, Some(0)),
            committed(vec![], 0),
            status(2),
        ]);
        assert_eq!(
            check(&entries, &[receipt("e1", 15, false)]),
            vec![ViolationKind::EventsDisagreeWithRollouts]
        );
    }
}
