//! The notification adapters over real HTTP: SNS and EventBridge against moto (read back
//! through SQS subscriptions, `tests/fixtures/moto_notify.py`), and the webhook client against
//! a local receiver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use switchyard::aws::AwsNotifications;
use switchyard::model::EventKind;
use switchyard::model::notifications::{NotificationMessage, WebhookFormat};
use switchyard::ports::{AwsErrorKind, NotificationProvider, Publication, WebhookError, Webhooks};
use switchyard::webhook::HttpWebhooks;

use crate::moto::Moto;

/// Runs `moto_notify.py ENDPOINT ARGS...` and returns what it printed.
pub(crate) fn notify_fixture(moto: &Moto, args: &[&str]) -> Value {
    let python = std::env::var("SWITCHYARD_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/python")
        });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moto_notify.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(&moto.endpoint)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs ({e}); run ./scripts/test.sh", python.display()));
    assert!(
        output.status.success(),
        "moto_notify.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("moto_notify.py prints JSON")
}

/// The bodies waiting in an SQS queue, each parsed (and removed from the queue).
pub(crate) fn drain(moto: &Moto, queue_url: &str) -> Vec<Value> {
    notify_fixture(moto, &["drain", queue_url])
        .as_array()
        .expect("a list")
        .iter()
        .map(|body| serde_json::from_str(body.as_str().unwrap()).expect("a JSON body"))
        .collect()
}

fn message() -> NotificationMessage {
    NotificationMessage {
        event: EventKind::RolloutStarted,
        release: "web".into(),
        generation: 2,
        strategy: "codeDeploy".into(),
        live_task_definition: Some(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
        ),
        candidate_task_definition: Some(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2".into(),
        ),
        message: "rollout 1 started: web:2 replaces web:1".into(),
        time: "2026-12-07T01:00:00Z".parse().unwrap(),
        id: "0b7e9d3c-5a41-8f2e-9c3d-1e2f3a4b5c6d".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_and_eventbridge_carry_the_message_raw_through_moto() {
    let moto = Moto::start();
    let world = notify_fixture(&moto, &["setup"]);
    let topic = world["topicArn"].as_str().unwrap();
    let provider = AwsNotifications::new(
        moto.sdk_config().await,
        Arc::new(HttpWebhooks::new().unwrap()),
    );
    let message = message();
    let publication = Publication::of(&message);
    let expected: Value = serde_json::from_str(&message.to_json()).unwrap();

    provider
        .sns("us-east-1")
        .publish(topic, &publication)
        .await
        .expect("published");
    provider
        .event_bridge()
        .put_event("default", &publication)
        .await
        .expect("put");

    // SNS: the message raw in the envelope, with a subject and the event as an attribute.
    let received = drain(&moto, world["snsQueueUrl"].as_str().unwrap());
    assert_eq!(received.len(), 1, "{received:?}");
    let envelope = &received[0];
    let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body, expected);
    assert_eq!(envelope["Subject"], "switchyard: web RolloutStarted");
    assert_eq!(
        envelope["MessageAttributes"]["event"]["Value"],
        "RolloutStarted"
    );

    // EventBridge: source switchyard.dev, detail-type the event, detail the message.
    let received = drain(&moto, world["eventsQueueUrl"].as_str().unwrap());
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["source"], "switchyard.dev");
    assert_eq!(received[0]["detail-type"], "RolloutStarted");
    assert_eq!(received[0]["detail"], expected);

    // A topic or bus that does not exist is classified, not a mystery.
    let missing = format!("{topic}-missing");
    let error = provider
        .sns("us-east-1")
        .publish(&missing, &publication)
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    let error = provider
        .event_bridge()
        .put_event("missing", &publication)
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

/// A local webhook receiver: records what it is sent; answers `fail_first` requests with 500,
/// then 200 (404 on any path but `/hook`).
pub(crate) struct Receiver {
    pub address: SocketAddr,
    pub received: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(fail_for: std::time::Duration) -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let until = std::time::Instant::now() + fail_for;
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let sink = sink.clone();
                async move {
                    if std::time::Instant::now() < until {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    sink.lock().unwrap().push((content_type, body));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            address,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_client_posts_json_and_classifies_what_the_receiver_answers() {
    let receiver = Receiver::start(std::time::Duration::from_millis(300)).await;
    let webhooks = HttpWebhooks::new().unwrap();
    let message = message();

    // Failing at first: a 500 is worth another attempt.
    let error = webhooks
        .post(&receiver.url(), &message.to_json())
        .await
        .unwrap_err();
    assert_eq!(error, WebhookError::Status { status: 500 });
    assert!(!error.is_permanent());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    webhooks
        .post(&receiver.url(), &message.to_json())
        .await
        .expect("delivered once the receiver recovered");
    webhooks
        .post(&receiver.url(), &message.webhook_body(WebhookFormat::Slack))
        .await
        .expect("delivered");
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].0, "application/json");
    assert_eq!(received[0].1, message.to_json());
    let slack: Value = serde_json::from_str(&received[1].1).unwrap();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("web RolloutStarted: rollout 1 started"),
        "{slack}"
    );

    // A 404 will not get better; a refused connection may.
    let error = webhooks
        .post(&format!("http://{}/other", receiver.address), "{}")
        .await
        .unwrap_err();
    assert_eq!(error, WebhookError::Status { status: 404 });
    assert!(error.is_permanent());
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = webhooks
        .post(&format!("http://{closed}/hook"), "{}")
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Transport(_)), "{error:?}");
    assert!(!error.is_permanent());
}
