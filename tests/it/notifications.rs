//! Notifications end to end against the simulated AWS and destinations, in paused time: each
//! event once per destination, with the contract's fields; a failing webhook delays nothing;
//! a replica that stops mid-send leaves the delivery to the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::controller::{self, Context};
use switchyard::model::{AuditAction, Phase};
use switchyard::ports::{ReleaseStore, SpecPrecondition, SpecWrite};
use switchyard::sim::{Fault, FaultRule, Received, SimNotifications};

use crate::harness::{Harness, REGISTRY, ReleaseOptions, minutes, release_yaml};

const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:releases";
const HOOK: &str = "https://hooks.example.com/switchyard";

/// Writes `yaml`'s spec with these `notifications`, as `apply` would.
async fn apply_with(h: &Harness, name: &str, yaml: &str, notifications: Value) {
    let documents = switchyard::model::parse_documents(yaml).expect("the document is valid");
    let mut spec = serde_json::to_value(&documents[0].spec).unwrap();
    spec["notifications"] = notifications;
    switchyard::model::parse::parse_spec_value(&spec).expect("the notifications are valid");
    h.store
        .put_spec(SpecWrite {
            name: name.into(),
            labels: BTreeMap::new(),
            spec,
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .expect("spec written");
}

fn destinations() -> SimNotifications {
    let clock = switchyard::clock::Clock::fixed_epoch();
    let sim = SimNotifications::new(clock);
    sim.add_topic(TOPIC);
    sim
}

fn context(h: &Harness, sim: &SimNotifications) -> Context {
    h.context()
        .with_notifications(Arc::new(sim.clone()), Vec::new())
}

async fn run_for(h: &Harness, sim: &SimNotifications, duration: Duration) {
    controller::run(context(h, sim), tokio::time::sleep(duration)).await;
}

fn bodies(received: &[Received], destination: &str) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r.destination == destination)
        .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
        .collect()
}

fn events(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap().to_string())
        .collect()
}

/// Every field of the contract, with its type, and nothing else.
fn assert_contract_fields(body: &Value) {
    let object = body.as_object().expect("one JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "candidateTaskDefinition",
            "event",
            "generation",
            "id",
            "liveTaskDefinition",
            "message",
            "release",
            "strategy",
            "time"
        ]
    );
    assert!(body["generation"].is_u64(), "{body}");
    for field in ["event", "release", "strategy", "message", "id", "time"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    for field in ["liveTaskDefinition", "candidateTaskDefinition"] {
        assert!(body[field].is_string() || body[field].is_null(), "{body}");
    }
    let time = body["time"].as_str().unwrap();
    time.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{time} is no RFC 3339 time: {e}"));
}

#[tokio::test(start_paused = true)]
async fn a_rollout_notifies_every_destination_once_per_event_with_the_contract_fields() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let sim = destinations();
    apply_with(
        &h,
        "web",
        &release_yaml("web", &ReleaseOptions::default()),
        json!([
            {"sns": TOPIC},
            {"eventBridge": {"bus": "default"}},
            {"webhook": {"url": HOOK, "format": "json"}},
        ]),
    )
    .await;

    run_for(&h, &sim, minutes(10)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let received = sim.received();
    for destination in [
        format!("sns:{TOPIC}"),
        "eventBridge:default".to_string(),
        format!("webhook:{HOOK}"),
    ] {
        let bodies = bodies(&received, &destination);
        assert_eq!(
            events(&bodies),
            ["RolloutStarted", "RolloutSucceeded"],
            "{destination}"
        );
        for body in &bodies {
            assert_contract_fields(body);
            assert_eq!(body["release"], "web");
            assert_eq!(body["strategy"], "codeDeploy");
        }
        assert_ne!(bodies[0]["id"], bodies[1]["id"]);
        assert_eq!(
            bodies[1]["candidateTaskDefinition"], bodies[1]["liveTaskDefinition"],
            "the candidate is live when it succeeded"
        );
    }
    // EventBridge's detail-type is the event.
    let kinds: Vec<&str> = received
        .iter()
        .filter(|r| r.destination == "eventBridge:default")
        .map(|r| r.kind.as_str())
        .collect();
    assert_eq!(kinds, ["RolloutStarted", "RolloutSucceeded"]);
    // Delivered and marked so: nothing left in the outbox.
    let notifications = status.notifications.expect("the delivery record");
    assert!(notifications.outbox.is_empty(), "{notifications:?}");
    assert_eq!(notifications.delivered, 6);
    assert_eq!(notifications.resent, 0);
}

#[tokio::test(start_paused = true)]
async fn a_webhook_failing_for_a_minute_delays_nothing_and_gets_the_events_once_it_recovers() {
    // The same rollout, once with a healthy webhook and once with one answering 500 for
    // the first minute: the rollout takes exactly as long.
    let mut healthy_at = Vec::new();
    for failing in [false, true] {
        let h = Harness::new();
        h.add_service("web", |_| {});
        let sim = destinations();
        if failing {
            let recovers = h.clock.now() + jiff::SignedDuration::from_secs(60);
            sim.fail_webhook(HOOK, 500, Some(recovers));
        }
        apply_with(
            &h,
            "web",
            &release_yaml("web", &ReleaseOptions::default()),
            json!([{"webhook": {"url": HOOK}}]),
        )
        .await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ctx = context(&h, &sim);
        let state = ctx.state.clone();
        let controller = tokio::spawn(controller::run(ctx, async move {
            let _ = stop_rx.await;
        }));
        let mut healthy = None;
        for second in 0..600u64 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if healthy.is_none()
                && h.store
                    .get("web")
                    .await
                    .unwrap()
                    .and_then(|r| r.status)
                    .is_some_and(|s| s.phase == Phase::Healthy)
            {
                healthy = Some(second);
            }
        }
        let _ = stop_tx.send(());
        let _ = controller.await;
        healthy_at.push(healthy.expect("the rollout ends Healthy"));

        let received = bodies(&sim.received(), &format!("webhook:{HOOK}"));
        assert_eq!(
            events(&received),
            ["RolloutStarted", "RolloutSucceeded"],
            "failing: {failing}"
        );
        let status = h.status("web").await;
        let notifications = status.notifications.expect("the delivery record");
        assert!(notifications.outbox.is_empty(), "{notifications:?}");
        let attempts = sim.call_counts().get("webhook:POST").copied().unwrap_or(0);
        let metrics = state.metrics().encode();
        assert!(
            metrics.contains(
                "switchyard_notifications_total{destination=\"webhook\",outcome=\"delivered\"} 2"
            ),
            "{metrics}"
        );
        assert_eq!(
            metrics.contains("outcome=\"failed\""),
            failing,
            "failed attempts are counted: {metrics}"
        );
        if failing {
            assert!(notifications.failed_attempts > 0);
            let failure = notifications
                .last_failure
                .expect("the last failure is shown");
            assert_eq!(failure.error, "the webhook answered HTTP 500");
            // Backing off, not spinning: 1 s doubling, so a handful of attempts in a minute.
            assert!((3..=10).contains(&attempts), "{attempts} attempts");
        } else {
            assert_eq!(attempts, 2);
        }
    }
    assert_eq!(
        healthy_at[0], healthy_at[1],
        "a failing webhook delays nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_stopped_mid_send_leaves_the_delivery_to_the_next_after_the_unconfirmed_wait() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let sim = destinations();
    // Every POST takes 5 s: the first replica stops while the first one is on its way.
    sim.inject(FaultRule::always(
        "webhook:POST",
        Fault::Latency(Duration::from_secs(5)),
    ));
    apply_with(
        &h,
        "web",
        &release_yaml("web", &ReleaseOptions::default()),
        json!([{"webhook": {"url": HOOK}}]),
    )
    .await;
    let mut seen_intent = false;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(context(&h, &sim), async move {
        let _ = stop_rx.await;
    }));
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = h.status("web").await;
        if status.notifications.as_ref().is_some_and(|n| {
            n.outbox
                .iter()
                .any(|e| e.pending.iter().any(|p| p.sending_since.is_some()))
        }) {
            seen_intent = true;
            break;
        }
    }
    assert!(seen_intent, "the intent is written before the attempt");
    let _ = stop_tx.send(());
    controller.abort();
    let _ = controller.await;
    assert!(
        sim.received().is_empty(),
        "the attempt died with its replica"
    );

    // A new replica: the intent has no outcome, and nothing of its own explains it.
    run_for(&h, &sim, minutes(10)).await;
    let received = bodies(&sim.received(), &format!("webhook:{HOOK}"));
    assert_eq!(events(&received), ["RolloutStarted", "RolloutSucceeded"]);
    let notifications = h.status("web").await.notifications.unwrap();
    assert_eq!(notifications.resent, 1);
    assert!(notifications.outbox.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_task_set_canary_notifies_each_step_and_the_fleet_defaults_apply() {
    let h = Harness::new();
    h.aws
        .add_external_service(switchyard::sim::ExternalSetup::new("prod", "web"));
    let sim = destinations();
    let yaml = format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {REGISTRY}/web:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      steps:\n        - setWeight: 10\n        - pause: {{duration: 5s}}\n        - setWeight: 50\n      scaleDownDelay: 30s\n"
    );
    let documents = switchyard::model::parse_documents(&yaml).expect("valid");
    h.store
        .put_spec(SpecWrite {
            name: "web".into(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&documents[0].spec).unwrap(),
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .unwrap();
    let defaults =
        switchyard::model::parse::parse_destinations(&json!([{"sns": TOPIC}]), "notifications")
            .unwrap();
    let ctx = h
        .context()
        .with_notifications(Arc::new(sim.clone()), defaults);
    controller::run(ctx, tokio::time::sleep(minutes(15))).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let received = bodies(&sim.received(), &format!("sns:{TOPIC}"));
    assert_eq!(
        events(&received),
        [
            "RolloutStarted",
            "StepCompleted",
            "StepCompleted",
            "StepCompleted",
            "RolloutSucceeded"
        ]
    );
    for body in &received {
        assert_contract_fields(body);
        assert_eq!(body["strategy"], "taskSets");
    }
    let mut ids: Vec<&str> = received.iter().map(|b| b["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "no two messages share an id");
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_refuses_for_good_is_given_up_counted_and_said_in_the_status() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let sim = destinations();
    sim.fail_webhook(HOOK, 404, None);
    apply_with(
        &h,
        "web",
        &release_yaml("web", &ReleaseOptions::default()),
        json!([{"webhook": {"url": HOOK}}, {"sns": TOPIC}]),
    )
    .await;
    let ctx = context(&h, &sim);
    let state = ctx.state.clone();
    controller::run(ctx, tokio::time::sleep(minutes(10))).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let notifications = status.notifications.expect("the delivery record");
    assert!(notifications.outbox.is_empty(), "{notifications:?}");
    assert_eq!((notifications.delivered, notifications.dropped), (2, 2));
    let failure = notifications.last_failure.expect("said in the status");
    assert!(failure.dropped, "{failure:?}");
    assert_eq!(failure.error, "the webhook answered HTTP 404");
    assert!(
        failure
            .destination
            .starts_with("webhook:https://hooks.example.com#")
    );
    assert!(
        !failure.destination.contains("/switchyard"),
        "the URL's path stays out"
    );
    assert_eq!(
        sim.call_counts().get("webhook:POST").copied(),
        Some(2),
        "a 404 is not asked again"
    );
    let metrics = state.metrics().encode();
    assert!(
        metrics.contains(
            "switchyard_notifications_total{destination=\"webhook\",outcome=\"dropped\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "switchyard_notifications_total{destination=\"sns\",outcome=\"delivered\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_analysis_is_announced_once_before_the_rollback_it_causes() {
    const HEALTH: &str = "http://web.internal:8081/health";
    let h = Harness::new();
    h.aws
        .add_external_service(switchyard::sim::ExternalSetup::new("prod", "web"));
    h.aws.set_http_answer(HEALTH, Ok(503));
    let sim = destinations();
    let yaml = format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {REGISTRY}/web:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      steps:\n        - setWeight: 10\n        - analysis:\n            interval: 10s\n            count: 5\n            failureLimit: 1\n            metrics:\n              - name: health\n                http: {{url: \"{HEALTH}\", timeout: 2s, expectStatus: [200]}}\n        - setWeight: 50\n      scaleDownDelay: 30s\n      abortScaleDownDelay: 10s\n"
    );
    apply_with(&h, "web", &yaml, json!([{"webhook": {"url": HOOK}}])).await;
    run_for(&h, &sim, minutes(5)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    let received = bodies(&sim.received(), &format!("webhook:{HOOK}"));
    assert_eq!(
        events(&received),
        [
            "RolloutStarted",
            "StepCompleted",
            "AnalysisFailed",
            "RolloutRolledBack"
        ]
    );
    let failed = &received[2];
    assert_contract_fields(failed);
    assert!(
        failed["message"].as_str().unwrap().contains("health"),
        "the message names the metric: {failed}"
    );
}
