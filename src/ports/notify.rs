//! The destinations of notifications, as the controller uses them: an SNS topic, an
//! EventBridge bus and a webhook each receive one event's message per call.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::AwsError;

/// The `source` of every EventBridge event switchyard puts.
pub const EVENT_SOURCE: &str = "switchyard.dev";

/// One event, as a destination receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The event's name: the EventBridge detail-type, an SNS message attribute.
    pub event: String,
    /// The message, one JSON object: the SNS message, the EventBridge detail.
    pub body: String,
    /// A line a person reads, at most 100 printable ASCII characters: SNS's `Subject`.
    pub subject: String,
    /// The event's unique id: a FIFO topic's deduplication id.
    pub id: String,
    /// The release: a FIFO topic's message group (its events stay in order).
    pub release: String,
    /// When the event happened: the EventBridge event's time.
    pub time: Timestamp,
}

impl Publication {
    /// What the destinations receive of `message`.
    pub fn of(message: &crate::model::notifications::NotificationMessage) -> Self {
        Self {
            event: message.event.as_str().to_string(),
            body: message.to_json(),
            subject: message.subject(),
            id: message.id.clone(),
            release: message.release.clone(),
            time: message.time,
        }
    }
}

/// SNS as the controller uses it.
#[async_trait]
pub trait Sns: Send + Sync {
    /// Publishes one message to a topic (`Publish`), in the topic's region.
    async fn publish(&self, topic_arn: &str, message: &Publication) -> Result<(), AwsError>;
}

/// EventBridge as the controller uses it.
#[async_trait]
pub trait EventBridge: Send + Sync {
    /// Puts one event on a bus (`PutEvents`), source [`EVENT_SOURCE`], detail-type the
    /// event, detail the message. An entry the bus rejects (PutEvents answers with a failed
    /// entry, not an error) is an error.
    async fn put_event(&self, bus: &str, message: &Publication) -> Result<(), AwsError>;
}

/// Webhooks: an HTTP(S) POST of a JSON body.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// POSTs `body` (`application/json`) to `url`; any 2xx answer is a delivery.
    async fn post(&self, url: &str, body: &str) -> Result<(), WebhookError>;
}

/// Why a webhook POST was not a delivery. Never names the URL (it may carry a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The receiver answered with a status other than 2xx.
    #[error("the webhook answered HTTP {status}")]
    Status { status: u16 },
    /// No answer within the timeout: the POST may or may not have arrived.
    #[error("the webhook did not answer in time")]
    Timeout,
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("could not reach the webhook: {0}")]
    Transport(String),
    /// The request cannot be made (an unusable URL): asking again would fail again.
    #[error("the webhook request is invalid: {0}")]
    Invalid(String),
}

impl WebhookError {
    /// Asking again unchanged would fail again: a 4xx other than 408 (timeout) and 429 (too
    /// many requests), or an invalid request.
    pub fn is_permanent(&self) -> bool {
        match self {
            WebhookError::Status { status } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            WebhookError::Invalid(_) => true,
            WebhookError::Timeout | WebhookError::Transport(_) => false,
        }
    }
}

/// The destinations' clients: SNS per topic region (topics are reached in their ARN's
/// region), EventBridge in the controller's region, and webhooks.
pub trait NotificationProvider: Send + Sync {
    fn sns(&self, region: &str) -> Arc<dyn Sns>;
    fn event_bridge(&self) -> Arc<dyn EventBridge>;
    fn webhooks(&self) -> Arc<dyn Webhooks>;
}
