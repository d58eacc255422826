//! Which notifications a pass records (`events::record`, as the shell calls it around every
//! status write), and the outbox's bookkeeping (`outbox`), on the CodeDeploy world of
//! `tests.rs`.

use super::*;
use crate::model::notifications::{
    EventBridgeTarget, NotificationDestination, NotificationMessage, WebhookFormat, WebhookTarget,
};
use crate::model::{EventKind, TaskSetsStatus};
use crate::reconcile::events::{OUTBOX_LIMIT, Recording, record};
use crate::reconcile::outbox::{self, Attempt, DeliveryOutcome, GIVE_UP_AFTER};

const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:releases";

fn sns() -> NotificationDestination {
    NotificationDestination {
        sns: Some(TOPIC.into()),
        event_bridge: None,
        webhook: None,
        events: None,
    }
}

fn bus(events: Option<Vec<EventKind>>) -> NotificationDestination {
    NotificationDestination {
        sns: None,
        event_bridge: Some(EventBridgeTarget {
            bus: "default".into(),
        }),
        webhook: None,
        events,
    }
}

/// One pass as the shell makes it: the events between the recorded status and the decided
/// one are recorded in the decided one before it is written; after the call, the events
/// between it and the status recording the call's outcome.
fn pass_notifying(
    world: &mut World,
    destinations: &[NotificationDestination],
) -> Vec<NotificationMessage> {
    pass_notifying_answering(world, destinations, Aws::answer)
}

fn pass_notifying_answering(
    world: &mut World,
    destinations: &[NotificationDestination],
    reply: impl FnOnce(&mut Aws, &Action) -> Result<ActionResult, AwsError>,
) -> Vec<NotificationMessage> {
    let before = world.status.clone();
    let mut decision = check(world);
    let spec = world.desired.spec.clone().expect("a valid spec");
    let recording = Recording {
        release: NAME,
        generation: world.desired.generation,
        spec: &spec,
        destinations,
    };
    let mut events = record(&recording, before.as_ref(), &mut decision.status, world.now);
    let status = match decision.action.clone() {
        Some(action) => {
            let result = reply(&mut world.aws, &action);
            let mut recorded = record_outcome(&decision, &action, &result, NAME, world.now);
            events.extend(record(
                &recording,
                Some(&decision.status),
                &mut recorded,
                world.now,
            ));
            recorded
        }
        None => decision.status,
    };
    world.status = Some(status);
    events
}

fn kinds(events: &[NotificationMessage]) -> Vec<EventKind> {
    events.iter().map(|e| e.event).collect()
}

fn outbox_ids(status: &ReleaseStatus) -> Vec<String> {
    status
        .notifications
        .iter()
        .flat_map(|n| n.outbox.iter().map(|e| e.message.id.clone()))
        .collect()
}

#[test]
fn a_rollout_records_one_started_and_one_succeeded_with_the_contract_fields() {
    let mut world = World::new();
    let destinations = [sns()];
    let mut all = Vec::new();
    all.extend(pass_notifying(&mut world, &destinations)); // registers
    all.extend(pass_notifying(&mut world, &destinations)); // creates d-1
    world.aws.target = Some(target("Install", 0.0));
    for _ in 0..3 {
        all.extend(pass_notifying(&mut world, &destinations));
    }
    world = world.succeeded();
    for _ in 0..3 {
        all.extend(pass_notifying(&mut world, &destinations));
    }
    assert_eq!(world.status().phase, Phase::Healthy);
    assert_eq!(
        kinds(&all),
        [EventKind::RolloutStarted, EventKind::RolloutSucceeded]
    );
    let started = &all[0];
    assert_eq!(started.release, "web");
    assert_eq!(started.generation, 1);
    assert_eq!(started.strategy, "codeDeploy");
    assert_eq!(
        started.live_task_definition.as_deref(),
        Some(td_arn(1).as_str())
    );
    assert_eq!(
        started.candidate_task_definition.as_deref(),
        Some(td_arn(2).as_str())
    );
    assert_eq!(started.time, now());
    assert!(
        started.message.contains("web:2 replaces web:1"),
        "{}",
        started.message
    );
    let succeeded = &all[1];
    assert_eq!(
        succeeded.live_task_definition.as_deref(),
        Some(td_arn(2).as_str())
    );
    assert_ne!(started.id, succeeded.id);
    assert_eq!(started.id.len(), 36, "a UUID: {}", started.id);
    // Both wait in the outbox, in order, for the topic.
    assert_eq!(
        outbox_ids(world.status()),
        [started.id.clone(), succeeded.id.clone()]
    );
    let pending = &world.status().notifications.as_ref().unwrap().outbox[0].pending;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].destination, format!("sns:{TOPIC}"));
}

#[test]
fn without_destinations_nothing_is_recorded_and_a_filter_keeps_its_events_only() {
    let mut world = World::new();
    for _ in 0..2 {
        assert!(pass_notifying(&mut world, &[]).is_empty());
    }
    assert_eq!(world.status().notifications, None);

    let mut world = World::new();
    let destinations = [sns(), bus(Some(vec![EventKind::RolloutSucceeded]))];
    pass_notifying(&mut world, &destinations);
    let started = pass_notifying(&mut world, &destinations);
    assert_eq!(kinds(&started), [EventKind::RolloutStarted]);
    let entry = &world.status().notifications.as_ref().unwrap().outbox[0];
    assert_eq!(
        entry
            .pending
            .iter()
            .map(|p| p.destination.as_str())
            .collect::<Vec<_>>(),
        [format!("sns:{TOPIC}")],
        "the bus only wants RolloutSucceeded"
    );
}

#[test]
fn an_event_no_destination_wants_is_not_recorded() {
    let mut world = World::new();
    let destinations = [bus(Some(vec![EventKind::RolloutSucceeded]))];
    pass_notifying(&mut world, &destinations);
    assert!(pass_notifying(&mut world, &destinations).is_empty());
    assert!(outbox_ids(world.status()).is_empty());
}

#[test]
fn a_gate_is_announced_once_however_long_it_waits() {
    let mut world = World::new().manual().in_flight().ready();
    let destinations = [sns()];
    let first = pass_notifying(&mut world, &destinations);
    assert_eq!(kinds(&first), [EventKind::AwaitingPromotion]);
    assert!(first[0].message.contains("switchyard promote web"));
    for minutes in 1..5 {
        world = world.at(after(Duration::from_secs(60 * minutes)));
        assert!(pass_notifying(&mut world, &destinations).is_empty());
    }
}

#[test]
fn an_alarm_rolls_back_and_records_the_verdict_with_its_message() {
    let mut world = World::new()
        .watched_by("web-5xx", AlarmState::Ok)
        .in_flight();
    let destinations = [sns()];
    world.aws.alarms.insert("web-5xx".into(), AlarmState::Alarm);
    let mut events = pass_notifying(&mut world, &destinations); // stops d-1
    world.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::Succeeded,
    );
    for _ in 0..3 {
        events.extend(pass_notifying(&mut world, &destinations));
    }
    assert_eq!(world.status().phase, Phase::RolledBack);
    assert_eq!(kinds(&events), [EventKind::RolloutRolledBack]);
    assert!(
        events[0].message.contains("web-5xx"),
        "{}",
        events[0].message
    );
    assert_eq!(
        events[0].candidate_task_definition.as_deref(),
        Some(td_arn(2).as_str())
    );
}

#[test]
fn a_refusal_retried_with_backoff_is_announced_once() {
    let mut world = World::new().registered();
    let destinations = [sns()];
    let mut events = Vec::new();
    let refuse = |_: &mut Aws, _: &Action| -> Result<ActionResult, AwsError> {
        Err(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"))
    };
    events.extend(pass_notifying_answering(&mut world, &destinations, refuse));
    let mut waited = Duration::ZERO;
    for count in 1..6 {
        waited += refusal_delay(NAME, count);
        world = world.at(after(waited));
        events.extend(pass_notifying_answering(&mut world, &destinations, refuse));
    }
    assert_eq!(world.status().refusal.as_ref().unwrap().count, 6);
    assert_eq!(
        kinds(&events),
        [EventKind::RolloutStarted, EventKind::RolloutFailed]
    );
    assert!(
        events[1].message.contains("AccessDeniedException"),
        "{}",
        events[1].message
    );
}

#[test]
fn drift_is_announced_once_while_it_lasts() {
    let mut world = World::new().healthy();
    world.aws.set_live(7);
    let destinations = [sns()];
    let events = pass_notifying(&mut world, &destinations);
    assert_eq!(kinds(&events), [EventKind::DriftDetected]);
    assert!(events[0].message.contains("web:7"), "{}", events[0].message);
    assert!(pass_notifying(&mut world, &destinations).is_empty());
}

#[test]
fn a_write_that_failed_is_decided_again_and_records_once() {
    // The status written last is the memory: the same change seen again from it records
    // the event again (the lost write recorded nothing), and from the written one, never.
    let mut world = World::new().registered();
    let destinations = [sns()];
    let before = world.clone();
    let first = pass_notifying(&mut world, &destinations);
    let mut again = before;
    let second = pass_notifying(&mut again, &destinations);
    assert_eq!(kinds(&first), kinds(&second));
    assert_eq!(kinds(&first), [EventKind::RolloutStarted]);
    assert!(pass_notifying(&mut world, &destinations).is_empty());
}

#[test]
fn a_full_outbox_drops_its_oldest_event_and_says_so() {
    let mut status = ReleaseStatus::default();
    let spec = spec();
    let destinations = [sns()];
    let recording = Recording {
        release: NAME,
        generation: 1,
        spec: &spec,
        destinations: &destinations,
    };
    for serial in 1..=(OUTBOX_LIMIT as u32 + 2) {
        let before = status.clone();
        status.rollout = Some(Rollout {
            serial,
            candidate: td_arn(2),
            fingerprint: "f".into(),
            target: "t".into(),
            live: Some(td_arn(1)),
            generation: 1,
            started_at: now(),
            outcome: None,
        });
        assert_eq!(
            record(&recording, Some(&before), &mut status, now()).len(),
            1
        );
    }
    let notifications = status.notifications.as_ref().unwrap();
    assert_eq!(notifications.outbox.len(), OUTBOX_LIMIT);
    assert_eq!(notifications.dropped, 2);
    assert!(
        notifications.outbox[0]
            .message
            .message
            .starts_with("rollout 3 ")
    );
    let failure = notifications.last_failure.as_ref().unwrap();
    assert!(
        failure.dropped && failure.error.contains("at most 20 events"),
        "{failure:?}"
    );
}

#[test]
fn completed_steps_are_one_event_each_and_an_edit_of_the_steps_completes_none() {
    use crate::model::{CanaryStep, PauseStep, TaskSetsStrategy};
    let mut spec = spec();
    spec.strategy = Strategy {
        task_sets: Some(TaskSetsStrategy {
            target_groups: vec!["a".into(), "b".into()],
            listeners: vec![],
            test_listeners: vec![],
            container: None,
            steps: vec![
                CanaryStep::SetWeight(10),
                CanaryStep::Pause(PauseStep::default()),
                CanaryStep::SetWeight(50),
            ],
            scale_down_delay: None,
            abort_scale_down_delay: None,
            progress_deadline: None,
        }),
        ..Strategy::default()
    };
    let at = |index: usize, digest: &str| {
        let mut status = ReleaseStatus {
            rollout: Some(Rollout {
                serial: 4,
                candidate: td_arn(2),
                fingerprint: "f".into(),
                target: "t".into(),
                live: Some(td_arn(1)),
                generation: 1,
                started_at: now(),
                outcome: None,
            }),
            ..ReleaseStatus::default()
        };
        status.strategy = Some(crate::model::StrategyStatus::TaskSets(TaskSetsStatus {
            step_index: Some(index),
            step_count: 3,
            steps_digest: digest.into(),
            ..TaskSetsStatus::default()
        }));
        status
    };
    let detected = crate::reconcile::events::detect(&spec, Some(&at(0, "d")), &at(3, "d"));
    let messages: Vec<&str> = detected.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "step 1/3 done: setWeight 10",
            "step 2/3 done: pause (until promoted)",
            "step 3/3 done: setWeight 50"
        ]
    );
    assert!(detected.iter().all(|e| e.kind == EventKind::StepCompleted));
    assert!(crate::reconcile::events::detect(&spec, Some(&at(0, "d")), &at(2, "e")).is_empty());
    assert!(crate::reconcile::events::detect(&spec, Some(&at(2, "d")), &at(2, "d")).is_empty());
}

// ----- the outbox ----------------------------------------------------------------------

/// A status whose outbox holds the rollout's two events for the topic and a webhook.
fn with_outbox() -> (ReleaseStatus, [String; 2], String, String) {
    let mut world = World::new();
    let hook = NotificationDestination {
        sns: None,
        event_bridge: None,
        webhook: Some(WebhookTarget {
            url: "https://hooks.example.com/x".into(),
            format: WebhookFormat::Json,
        }),
        events: None,
    };
    let destinations = [sns(), hook.clone()];
    let mut events = pass_notifying(&mut world, &destinations);
    events.extend(pass_notifying(&mut world, &destinations));
    world.aws.target = Some(target("Install", 0.0));
    world = world.succeeded();
    events.extend(pass_notifying(&mut world, &destinations));
    assert_eq!(events.len(), 2);
    (
        world.status().clone(),
        [events[0].id.clone(), events[1].id.clone()],
        format!("sns:{TOPIC}"),
        hook.destination().unwrap().key(),
    )
}

fn delivered(id: &str, destination: &str, at: Timestamp) -> DeliveryOutcome {
    DeliveryOutcome {
        id: id.into(),
        destination: destination.into(),
        attempt: Attempt::Delivered,
        at,
    }
}

fn failed(id: &str, destination: &str, at: Timestamp, permanent: bool) -> DeliveryOutcome {
    DeliveryOutcome {
        id: id.into(),
        destination: destination.into(),
        attempt: Attempt::Failed {
            error: "webhook answered 500".into(),
            permanent,
        },
        at,
    }
}

fn due_now(status: &ReleaseStatus, at: Timestamp) -> Vec<(String, String)> {
    outbox::due(status, at)
        .into_iter()
        .map(|d| (d.message.id.clone(), d.destination.to_string()))
        .collect()
}

#[test]
fn each_destination_gets_its_oldest_event_first_and_one_at_a_time() {
    let (mut status, [first, second], topic, hook) = with_outbox();
    assert_eq!(
        due_now(&status, now()),
        [
            (first.clone(), topic.clone()),
            (first.clone(), hook.clone())
        ]
    );
    assert!(outbox::apply(
        &mut status,
        &[delivered(&first, &topic, now())]
    ));
    assert_eq!(
        due_now(&status, now()),
        [
            (first.clone(), hook.clone()),
            (second.clone(), topic.clone())
        ]
    );
    outbox::apply(
        &mut status,
        &[
            delivered(&first, &hook, now()),
            delivered(&second, &topic, now()),
            delivered(&second, &hook, now()),
        ],
    );
    let notifications = status.notifications.as_ref().unwrap();
    assert!(notifications.outbox.is_empty());
    assert_eq!(notifications.delivered, 4);
    // An outcome for an event no longer in the outbox changes nothing.
    assert!(!outbox::apply(
        &mut status,
        &[delivered(&first, &topic, now())]
    ));
}

#[test]
fn a_failed_attempt_backs_off_and_holds_the_destination_but_not_the_others() {
    let (mut status, [first, second], topic, hook) = with_outbox();
    outbox::apply(&mut status, &[failed(&first, &hook, now(), false)]);
    let delay = outbox::retry_delay(&first, 1);
    assert!(delay >= Duration::from_secs(1) && delay < Duration::from_millis(1250));
    assert_eq!(due_now(&status, now()), [(first.clone(), topic.clone())]);
    let mut claimed = status.clone();
    // Claims the topic's head; the webhook's waits for its backoff.
    assert_eq!(outbox::claim(&mut claimed, now(), |_, _| false).len(), 1);
    assert_eq!(
        outbox::next_due(&claimed, |_, d| d == topic),
        Some(after(delay)),
        "the webhook's retry is the next due when the topic is busy"
    );
    outbox::apply(&mut status, &[delivered(&first, &topic, now())]);
    assert_eq!(due_now(&status, now()), [(second.clone(), topic.clone())]);
    assert_eq!(
        due_now(&status, after(delay)),
        [(first.clone(), hook.clone()), (second.clone(), topic)]
    );
    let notifications = status.notifications.as_ref().unwrap();
    assert_eq!(notifications.failed_attempts, 1);
    let failure = notifications.last_failure.as_ref().unwrap();
    assert_eq!(
        (failure.destination.as_str(), failure.dropped),
        (hook.as_str(), false)
    );
    let pending = &notifications.outbox[0].pending[0];
    assert_eq!(pending.attempts, 1);
    assert_eq!(pending.last_error.as_deref(), Some("webhook answered 500"));
}

#[test]
fn a_permanent_refusal_or_an_hour_of_failures_gives_the_delivery_up() {
    let (mut status, [first, second], topic, hook) = with_outbox();
    outbox::apply(&mut status, &[failed(&first, &hook, now(), true)]);
    assert_eq!(
        due_now(&status, now()),
        [
            (first.clone(), topic.clone()),
            (second.clone(), hook.clone())
        ]
    );
    let late = after(GIVE_UP_AFTER);
    outbox::apply(&mut status, &[failed(&second, &hook, late, false)]);
    let notifications = status.notifications.as_ref().unwrap();
    assert_eq!(notifications.dropped, 2);
    let failure = notifications.last_failure.as_ref().unwrap();
    assert!(
        failure.dropped && failure.error.contains("given up after 1h"),
        "{failure:?}"
    );
    assert_eq!(
        due_now(&status, late),
        [(first, topic)],
        "only the topic's deliveries are left"
    );
}

#[test]
fn retry_delays_double_to_five_minutes() {
    let delays: Vec<u64> = (1..=12)
        .map(|n| outbox::retry_delay("id", n).as_secs())
        .collect();
    assert_eq!(&delays[..3], [1, 2, 4]);
    assert!(delays.iter().all(|d| *d <= 300));
    assert_eq!(delays[11], 300);
}

#[test]
fn a_claim_writes_the_intent_and_holds_its_destination_until_the_outcome() {
    let (mut status, [first, second], topic, hook) = with_outbox();
    let claims = outbox::claim(&mut status, now(), |_, _| false);
    let claimed: Vec<_> = claims
        .iter()
        .map(|c| (c.message.id.clone(), c.destination.clone(), c.resend))
        .collect();
    assert_eq!(
        claimed,
        [
            (first.clone(), topic.clone(), false),
            (first.clone(), hook.clone(), false)
        ]
    );
    let intents = status.notifications.as_ref().unwrap().outbox[0]
        .pending
        .iter()
        .map(|p| p.sending_since)
        .collect::<Vec<_>>();
    assert_eq!(intents, [Some(now()), Some(now())]);
    // Claimed and on its way here: nothing more to claim, and nothing to wake up for.
    assert!(outbox::claim(&mut status, after(Duration::from_secs(60)), |_, _| true).is_empty());
    assert_eq!(outbox::next_due(&status, |_, _| true), None);
    // The outcome clears the intent; the next event of that destination is claimed next.
    outbox::apply(&mut status, &[delivered(&first, &topic, now())]);
    let claims = outbox::claim(&mut status, now(), |id, d| id == first && d == hook);
    assert_eq!(claims.len(), 1);
    assert_eq!(
        (
            claims[0].message.id.as_str(),
            claims[0].destination.as_str()
        ),
        (second.as_str(), topic.as_str())
    );
    // A failed attempt clears its intent and waits for its backoff.
    outbox::apply(&mut status, &[failed(&first, &hook, now(), false)]);
    assert!(outbox::claim(&mut status, now(), |_, _| true).is_empty());
    let retry = after(outbox::retry_delay(&first, 1));
    assert_eq!(outbox::next_due(&status, |_, _| true), Some(retry));
    assert_eq!(outbox::claim(&mut status, retry, |_, _| true).len(), 1);
    assert_eq!(status.notifications.as_ref().unwrap().resent, 0);
}

#[test]
fn an_intent_without_an_outcome_is_sent_again_only_after_the_unconfirmed_wait() {
    let (mut status, [first, _], topic, _) = with_outbox();
    outbox::claim(&mut status, now(), |_, _| false);
    // Another replica (or this one before a restart) claimed it: nothing here is on its way.
    let early = after(outbox::UNCONFIRMED_WAIT - Duration::from_secs(1));
    assert!(outbox::claim(&mut status, early, |_, _| false).is_empty());
    assert_eq!(
        outbox::next_due(&status, |_, _| false),
        Some(after(outbox::UNCONFIRMED_WAIT))
    );
    let late = after(outbox::UNCONFIRMED_WAIT);
    let claims = outbox::claim(&mut status, late, |_, _| false);
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.resend && c.message.id == first));
    assert_eq!(claims[0].destination, topic);
    let notifications = status.notifications.as_ref().unwrap();
    assert_eq!(notifications.resent, 2);
    assert_eq!(notifications.outbox[0].pending[0].sending_since, Some(late));
}
