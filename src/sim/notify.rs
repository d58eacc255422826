//! The simulated notification destinations: SNS topics, EventBridge buses and webhook
//! receivers, strict where AWS is (sizes, subjects, FIFO parameters, regions, entries that
//! fail inside a successful PutEvents), with faults (`sns:Publish`, `events:PutEvents`,
//! `webhook:POST`), and what each received, for the tests' checks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;

use super::faults::FaultInjector;
use super::{Fault, FaultRule, lock};
use crate::clock::Clock;
use crate::ports::{
    AwsError, AwsErrorKind, EVENT_SOURCE, EventBridge, NotificationProvider, Publication, Sns,
    WebhookError, Webhooks,
};

/// SNS's limit on a message (the body; attributes count too, ours are small).
pub const SNS_MESSAGE_MAX_BYTES: usize = 262_144;
/// SNS's limit on a subject.
pub const SNS_SUBJECT_MAX_CHARS: usize = 100;
/// EventBridge's limit on one PutEvents entry.
pub const EVENT_ENTRY_MAX_BYTES: usize = 262_144;
/// EventBridge's limit on a detail-type.
pub const DETAIL_TYPE_MAX_CHARS: usize = 128;
/// The region of the simulated controller (its EventBridge buses).
pub const CONTROLLER_REGION: &str = "us-east-1";
const ACCOUNT: &str = "111122223333";

/// One message a destination accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `sns:ARN`, `eventBridge:BUS` (as given) or `webhook:URL`.
    pub destination: String,
    /// The body: the SNS message, the EventBridge detail, the webhook body.
    pub body: String,
    /// The detail-type, or the SNS subject; empty for webhooks.
    pub kind: String,
    pub at: Timestamp,
    /// The message was accepted but the sender got an error or a timeout instead of the
    /// answer (an injected `Fault::LostResponse`): the sender cannot know it arrived.
    pub outcome_lost: bool,
}

#[derive(Default)]
struct Destinations {
    topics: BTreeSet<String>,
    buses: BTreeSet<String>,
    received: Vec<Received>,
    /// Webhook URLs answering this status instead of 200, until the given time (`None`:
    /// until told otherwise).
    failing: BTreeMap<String, (u16, Option<Timestamp>)>,
}

struct Inner {
    clock: Clock,
    state: Mutex<Destinations>,
    faults: FaultInjector,
}

/// The simulated destinations. Cheap to clone; clones share what they received.
#[derive(Clone)]
pub struct SimNotifications {
    inner: Arc<Inner>,
}

impl SimNotifications {
    /// No topics, the `default` bus of [`CONTROLLER_REGION`], every webhook answering 200.
    pub fn new(clock: Clock) -> Self {
        let mut state = Destinations::default();
        state.buses.insert("default".into());
        Self {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(state),
                faults: FaultInjector::new(),
            }),
        }
    }

    /// Creates an SNS topic (`arn:aws:sns:REGION:ACCOUNT:NAME`).
    pub fn add_topic(&self, arn: &str) {
        lock(&self.inner.state).topics.insert(arn.to_string());
    }

    /// Creates an EventBridge bus of the controller's region, by name.
    pub fn add_bus(&self, name: &str) {
        lock(&self.inner.state).buses.insert(name.to_string());
    }

    /// The webhook at `url` answers `status` until `until` (for good when `None`).
    pub fn fail_webhook(&self, url: &str, status: u16, until: Option<Timestamp>) {
        lock(&self.inner.state)
            .failing
            .insert(url.to_string(), (status, until));
    }

    /// Injects a fault rule (`sns:Publish`, `events:PutEvents`, `webhook:POST`).
    pub fn inject(&self, rule: FaultRule) {
        self.inner.faults.inject(rule);
    }

    /// Draws the probabilistic faults from `seed` (reproducible runs).
    pub fn with_seed(self, seed: u64) -> Self {
        self.inner.faults.reseed(seed);
        self
    }

    /// Removes every fault rule, and every webhook's failure.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
        lock(&self.inner.state).failing.clear();
    }

    /// Everything accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.state).received.clone()
    }

    /// Calls made per `service:Operation`, faults included.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.faults.counts()
    }

    /// Counts the call, applies faults (a lost response takes effect, then fails), and runs
    /// `body`, which accepts (`Ok(Some(received))`) or refuses.
    async fn call(
        &self,
        operation: &'static str,
        body: impl FnOnce(&Destinations, Timestamp) -> Result<Received, AwsError>,
    ) -> Result<(), AwsError> {
        let (service, name) = operation.split_once(':').unwrap_or(("", operation));
        let service: &'static str = match service {
            "sns" => "sns",
            "events" => "events",
            _ => "webhook",
        };
        let name: &'static str = match name {
            "Publish" => "Publish",
            "PutEvents" => "PutEvents",
            _ => "POST",
        };
        let decision = self.inner.faults.on_call(operation);
        if !decision.latency.is_zero() {
            self.inner.clock.sleep(decision.latency).await;
        }
        let injected = |kind: AwsErrorKind, code: &str| {
            Err(AwsError::new(service, name, kind, format!("{code} (injected)")).with_code(code))
        };
        match decision.failure {
            Some(Fault::Throttle) => return injected(AwsErrorKind::Throttling, "Throttling"),
            Some(Fault::ServerError) => {
                return injected(AwsErrorKind::Transient, "InternalFailure");
            }
            Some(Fault::AccessDenied) => {
                return injected(AwsErrorKind::AccessDenied, "AuthorizationError");
            }
            Some(Fault::Panic) => panic!("injected panic in {operation}"),
            _ => {}
        }
        let now = self.inner.clock.now();
        {
            let mut state = lock(&self.inner.state);
            let mut received = body(&state, now)?;
            received.outcome_lost = decision.failure == Some(Fault::LostResponse);
            state.received.push(received);
        }
        if decision.failure == Some(Fault::LostResponse) {
            return injected(AwsErrorKind::Ambiguous, "RequestTimeout");
        }
        Ok(())
    }
}

fn invalid(
    service: &'static str,
    operation: &'static str,
    code: &str,
    message: String,
) -> AwsError {
    AwsError::new(service, operation, AwsErrorKind::InvalidRequest, message).with_code(code)
}

/// SNS in one region.
struct RegionalSns {
    sim: SimNotifications,
    region: String,
}

#[async_trait]
impl Sns for RegionalSns {
    async fn publish(&self, topic_arn: &str, message: &Publication) -> Result<(), AwsError> {
        let region = self.region.clone();
        self.sim
            .call("sns:Publish", |state, now| {
                let bad = |m: String| invalid("sns", "Publish", "InvalidParameter", m);
                let topic_region = topic_arn.split(':').nth(3).unwrap_or("");
                if topic_region != region {
                    return Err(bad(format!(
                        "Invalid parameter: TopicArn: {topic_arn} is not in region {region}"
                    )));
                }
                if !state.topics.contains(topic_arn) {
                    return Err(AwsError::new(
                        "sns",
                        "Publish",
                        AwsErrorKind::NotFound,
                        "Topic does not exist",
                    )
                    .with_code("NotFound"));
                }
                if message.body.is_empty() || message.body.len() > SNS_MESSAGE_MAX_BYTES {
                    return Err(bad(format!(
                        "Invalid parameter: Message: must be 1 to {SNS_MESSAGE_MAX_BYTES} bytes, got {}",
                        message.body.len()
                    )));
                }
                let subject_ok = !message.subject.is_empty()
                    && message.subject.chars().count() <= SNS_SUBJECT_MAX_CHARS
                    && message
                        .subject
                        .chars()
                        .all(|c| c.is_ascii_graphic() || c == ' ');
                if !subject_ok {
                    return Err(bad(
                        "Invalid parameter: Subject: 1 to 100 printable ASCII characters, no line breaks"
                            .into(),
                    ));
                }
                if topic_arn.ends_with(".fifo")
                    && (message.release.is_empty()
                        || message.release.len() > 128
                        || message.id.is_empty()
                        || message.id.len() > 128)
                {
                    return Err(bad(
                        "Invalid parameter: a FIFO topic needs MessageGroupId and MessageDeduplicationId (1 to 128 characters)"
                            .into(),
                    ));
                }
                Ok(Received {
                    destination: format!("sns:{topic_arn}"),
                    body: message.body.clone(),
                    kind: message.subject.clone(),
                    at: now,
                    outcome_lost: false,
                })
            })
            .await
    }
}

#[async_trait]
impl EventBridge for SimNotifications {
    async fn put_event(&self, bus: &str, message: &Publication) -> Result<(), AwsError> {
        self.call("events:PutEvents", |state, now| {
            let name = match bus.strip_prefix("arn:") {
                Some(_) => {
                    let parts: Vec<&str> = bus.splitn(6, ':').collect();
                    if parts.get(3) != Some(&CONTROLLER_REGION) || parts.get(4) != Some(&ACCOUNT) {
                        return Err(invalid(
                            "events",
                            "PutEvents",
                            "ValidationException",
                            format!("the bus {bus} is not of this account and region"),
                        ));
                    }
                    parts
                        .get(5)
                        .and_then(|r| r.strip_prefix("event-bus/"))
                        .unwrap_or("")
                }
                None => bus,
            };
            if !state.buses.contains(name) {
                return Err(AwsError::new(
                    "events",
                    "PutEvents",
                    AwsErrorKind::NotFound,
                    format!("Event bus {name} does not exist."),
                )
                .with_code("ResourceNotFoundException"));
            }
            // A failed entry inside a successful PutEvents (the adapter makes it an error).
            let entry = |m: String| invalid("events", "PutEvents", "InvalidArgument", m);
            if message.event.is_empty() || message.event.chars().count() > DETAIL_TYPE_MAX_CHARS {
                return Err(entry("DetailType must be 1 to 128 characters".into()));
            }
            let detail: serde_json::Value = serde_json::from_str(&message.body)
                .map_err(|_| entry("Detail is malformed.".into()))?;
            if !detail.is_object() {
                return Err(entry("Detail must be a JSON object.".into()));
            }
            let size = EVENT_SOURCE.len() + message.event.len() + message.body.len();
            if size > EVENT_ENTRY_MAX_BYTES {
                return Err(entry(format!(
                    "the entry is {size} bytes, more than {EVENT_ENTRY_MAX_BYTES}"
                )));
            }
            Ok(Received {
                destination: format!("eventBridge:{bus}"),
                body: message.body.clone(),
                kind: message.event.clone(),
                at: now,
                outcome_lost: false,
            })
        })
        .await
    }
}

/// The simulated webhook receivers.
struct SimWebhooks {
    sim: SimNotifications,
}

#[async_trait]
impl Webhooks for SimWebhooks {
    async fn post(&self, url: &str, body: &str) -> Result<(), WebhookError> {
        let mut status = 200;
        let result = self
            .sim
            .call("webhook:POST", |state, now| {
                if let Some((failing, until)) = state.failing.get(url)
                    && until.is_none_or(|until| now < until)
                {
                    status = *failing;
                    return Err(AwsError::new(
                        "webhook",
                        "POST",
                        AwsErrorKind::Other,
                        "refused",
                    ));
                }
                if serde_json::from_str::<serde_json::Value>(body).is_err() {
                    status = 400;
                    return Err(AwsError::new(
                        "webhook",
                        "POST",
                        AwsErrorKind::Other,
                        "not JSON",
                    ));
                }
                Ok(Received {
                    destination: format!("webhook:{url}"),
                    body: body.to_string(),
                    kind: String::new(),
                    at: now,
                    outcome_lost: false,
                })
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(error) => Err(match error.kind {
                AwsErrorKind::Ambiguous => WebhookError::Timeout,
                AwsErrorKind::Other => WebhookError::Status { status },
                AwsErrorKind::Throttling => WebhookError::Status { status: 429 },
                _ => WebhookError::Status { status: 503 },
            }),
        }
    }
}

impl NotificationProvider for SimNotifications {
    fn sns(&self, region: &str) -> Arc<dyn Sns> {
        Arc::new(RegionalSns {
            sim: self.clone(),
            region: region.to_string(),
        })
    }

    fn event_bridge(&self) -> Arc<dyn EventBridge> {
        Arc::new(self.clone())
    }

    fn webhooks(&self) -> Arc<dyn Webhooks> {
        Arc::new(SimWebhooks { sim: self.clone() })
    }
}
