//! Notifications as a user runs them: two `switchyard run` replicas against moto, a release
//! whose spec names an SNS topic, the default EventBridge bus (both read back through SQS)
//! and a local webhook that answers 500 at first. Each event reaches each destination once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws_notify::{Receiver, drain, notify_fixture};
use crate::daemon::{create_world, start_daemon, stop_daemon, switchyard, wait_for};
use crate::moto::Moto;

fn write_release(dir: &std::path::Path, topic: &str, webhook: &str) -> std::path::PathBuf {
    let path = dir.join("web.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: registry.example.com/web:2.0.0\n  strategy:\n    codeDeploy:\n      application: web\n      deploymentGroup: web-prod\n  notifications:\n    - sns: {topic}\n    - eventBridge: {{bus: default}}\n    - webhook: {{url: \"{webhook}\"}}\n"
        ),
    )
    .unwrap();
    path
}

/// The message of each body (SNS wraps it in its envelope, EventBridge in its event).
fn messages(bodies: &[Value], unwrap: impl Fn(&Value) -> Value) -> Vec<Value> {
    bodies.iter().map(unwrap).collect()
}

fn assert_typed(message: &Value) {
    assert!(message["event"].is_string(), "{message}");
    assert_eq!(message["release"], "web");
    assert!(message["generation"].is_u64(), "{message}");
    assert_eq!(message["strategy"], "codeDeploy");
    assert!(message["liveTaskDefinition"].is_string() || message["liveTaskDefinition"].is_null());
    assert!(message["candidateTaskDefinition"].is_string());
    assert!(message["message"].is_string());
    assert!(
        message["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert!(message["id"].is_string());
    assert_eq!(message.as_object().unwrap().len(), 9, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_notify_each_event_once_and_a_failing_webhook_gets_it_when_it_recovers() {
    let moto = Moto::start_serialized();
    create_world(&moto, &["web"]);
    let destinations = notify_fixture(&moto, &["setup"]);
    let topic = destinations["topicArn"].as_str().unwrap();
    let webhook = Receiver::start(Duration::from_secs(8)).await;

    let created = switchyard(&moto, &["table", "create"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let dir = tempfile::Builder::new()
        .prefix("switchyard-notify-")
        .tempdir()
        .unwrap();
    let release = write_release(dir.path(), topic, &webhook.url());
    let applied = switchyard(&moto, &["apply", "-f", release.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let first = start_daemon(&moto);
    let second = start_daemon(&moto);
    // The rollout goes on while the webhook fails: it does not wait for it.
    let view = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    assert!(
        webhook.received.lock().unwrap().is_empty(),
        "the webhook still fails: {view:#}"
    );
    // Once it recovers, it gets the event (retries back off from a second, doubling).
    let deadline = Instant::now() + Duration::from_secs(60);
    while webhook.received.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the webhook never got the event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let view = wait_for(&moto, "web", Duration::from_secs(30), |v| {
        v["status"]["notifications"]["outbox"].is_null()
    });
    let first_log = stop_daemon(first, Duration::from_secs(15));
    let second_log = stop_daemon(second, Duration::from_secs(15));
    let logs = format!("{first_log}\n{second_log}");

    let sns = messages(
        &drain(&moto, destinations["snsQueueUrl"].as_str().unwrap()),
        |envelope| serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap(),
    );
    let events = messages(
        &drain(&moto, destinations["eventsQueueUrl"].as_str().unwrap()),
        |event| {
            assert_eq!(event["source"], "switchyard.dev");
            assert_eq!(event["detail-type"], event["detail"]["event"]);
            event["detail"].clone()
        },
    );
    let hooks: Vec<Value> = webhook
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for (destination, received) in [("sns", &sns), ("eventBridge", &events), ("webhook", &hooks)] {
        let started: Vec<&Value> = received
            .iter()
            .filter(|m| m["event"] == "RolloutStarted")
            .collect();
        assert_eq!(started.len(), 1, "{destination}: {received:#?}\n{logs}");
        let mut ids: Vec<&str> = received.iter().map(|m| m["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            received.len(),
            "{destination}: no two messages share an id"
        );
        for message in received {
            assert_typed(message);
            // Every destination receives the same message for one event.
            let id = message["id"].as_str().unwrap().to_string();
            if let Some(seen) = by_id.insert(id, message.clone()) {
                assert_eq!(&seen, message);
            }
        }
    }
    let notifications = &view["status"]["notifications"];
    assert!(
        notifications["delivered"].as_u64().unwrap() >= 3,
        "{view:#}"
    );
    assert!(
        notifications["failedAttempts"].as_u64().unwrap() >= 1,
        "{view:#}"
    );
}
