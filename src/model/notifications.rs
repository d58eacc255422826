//! Notifications: where a release's events go (`spec.notifications`, or the controller's
//! fleet-wide defaults), the message each event carries, and the release's outbox in the
//! status, which makes each event sent once across replicas and restarts.
//!
//! ```yaml
//! notifications:
//!   - sns: arn:aws:sns:us-east-1:111122223333:releases
//!   - eventBridge: {bus: default}
//!   - webhook: {url: https://hooks.slack.com/services/..., format: slack}
//!     events: [RolloutFailed, RolloutRolledBack]     # optional: only these
//! ```

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::field_error::FieldError;
use super::names::Arn;

/// What happened to a release, as its notifications name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A rollout of a new candidate began.
    RolloutStarted,
    /// A step of a `taskSets` canary is done.
    StepCompleted,
    /// The rollout waits for `switchyard promote`.
    AwaitingPromotion,
    /// An analysis failed (the rollout rolls back).
    AnalysisFailed,
    /// The candidate is live and serves all production traffic.
    RolloutSucceeded,
    /// The rollout was rolled back: all production traffic is on the live version again.
    RolloutRolledBack,
    /// The rollout failed, or the release needs a human (the message says what to fix).
    RolloutFailed,
    /// The live version is not the one switchyard deployed, or production weights were
    /// changed by hand.
    DriftDetected,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::RolloutStarted,
        EventKind::StepCompleted,
        EventKind::AwaitingPromotion,
        EventKind::AnalysisFailed,
        EventKind::RolloutSucceeded,
        EventKind::RolloutRolledBack,
        EventKind::RolloutFailed,
        EventKind::DriftDetected,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::RolloutStarted => "RolloutStarted",
            EventKind::StepCompleted => "StepCompleted",
            EventKind::AwaitingPromotion => "AwaitingPromotion",
            EventKind::AnalysisFailed => "AnalysisFailed",
            EventKind::RolloutSucceeded => "RolloutSucceeded",
            EventKind::RolloutRolledBack => "RolloutRolledBack",
            EventKind::RolloutFailed => "RolloutFailed",
            EventKind::DriftDetected => "DriftDetected",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One destination of a release's events: exactly one of `sns`, `eventBridge` and
/// `webhook`, and optionally the events it wants (every event when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationDestination {
    /// An SNS topic ARN; published to in the ARN's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns: Option<String>,
    /// An EventBridge bus of the controller's region (source `switchyard.dev`, detail-type
    /// the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bridge: Option<EventBridgeTarget>,
    /// An HTTP(S) endpoint that receives a POST per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// Only these events go to this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventKind>>,
}

/// `eventBridge: {bus: NAME_OR_ARN}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventBridgeTarget {
    /// The bus's name (`default`) or ARN.
    pub bus: String,
}

/// `webhook: {url: URL, format: json|slack}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    pub url: String,
    #[serde(default, skip_serializing_if = "WebhookFormat::is_default")]
    pub format: WebhookFormat,
}

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// The message itself.
    #[default]
    Json,
    /// For Slack's incoming webhooks: a human line around the message.
    Slack,
}

impl WebhookFormat {
    fn is_default(&self) -> bool {
        *self == Self::Json
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        }
    }
}

/// A destination with its kind resolved: what a sender needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Sns { topic_arn: String },
    EventBridge { bus: String },
    Webhook { url: String, format: WebhookFormat },
}

/// The kind of a destination, for metric labels and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationKind {
    Sns,
    EventBridge,
    Webhook,
}

impl DestinationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DestinationKind::Sns => "sns",
            DestinationKind::EventBridge => "eventBridge",
            DestinationKind::Webhook => "webhook",
        }
    }
}

impl Destination {
    pub fn kind(&self) -> DestinationKind {
        match self {
            Destination::Sns { .. } => DestinationKind::Sns,
            Destination::EventBridge { .. } => DestinationKind::EventBridge,
            Destination::Webhook { .. } => DestinationKind::Webhook,
        }
    }

    /// The destination's name in the status, the logs and the deliveries' bookkeeping:
    /// `sns:ARN`, `eventBridge:BUS`, and for a webhook its scheme, host and port with a digest
    /// of the whole URL and format (`webhook:https://hooks.slack.com#3f2a1b9c`), because a
    /// webhook URL is often a credential (Slack's carries its secret in the path) and the
    /// status is shown to anyone who may read the release.
    pub fn key(&self) -> String {
        match self {
            Destination::Sns { topic_arn } => format!("sns:{topic_arn}"),
            Destination::EventBridge { bus } => format!("eventBridge:{bus}"),
            Destination::Webhook { url, format } => {
                let digest = sha2::Sha256::digest(format!("{}\n{url}", format.as_str()));
                let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
                let origin = url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| {
                        let scheme = uri.scheme_str()?.to_string();
                        let authority = uri.authority()?;
                        let host = authority.host().to_string();
                        Some(match authority.port_u16() {
                            Some(port) => format!("{scheme}://{host}:{port}"),
                            None => format!("{scheme}://{host}"),
                        })
                    })
                    .unwrap_or_else(|| "?".into());
                format!("webhook:{origin}#{short}")
            }
        }
    }
}

impl NotificationDestination {
    /// The destination this entry names, when it names exactly one.
    pub fn destination(&self) -> Option<Destination> {
        match (&self.sns, &self.event_bridge, &self.webhook) {
            (Some(topic_arn), None, None) => Some(Destination::Sns {
                topic_arn: topic_arn.clone(),
            }),
            (None, Some(target), None) => Some(Destination::EventBridge {
                bus: target.bus.clone(),
            }),
            (None, None, Some(target)) => Some(Destination::Webhook {
                url: target.url.clone(),
                format: target.format,
            }),
            _ => None,
        }
    }

    /// Whether this destination wants `event`.
    pub fn wants(&self, event: EventKind) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(&event))
    }
}

/// `base.name` (the validator's own helpers live in `validate.rs`, which names the document
/// that names this module).
fn field_path(base: &str, name: &str) -> String {
    format!("{base}.{name}")
}

/// `base[i]`.
fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// The most destinations one release (or the defaults) may name.
pub const MAX_DESTINATIONS: usize = 10;
/// The longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

/// Checks the destinations at `base` (`spec.notifications`, or `notifications` for the
/// controller's defaults): each names exactly one valid destination, at most
/// [`MAX_DESTINATIONS`], none twice.
pub fn validate(
    base: &str,
    destinations: &[NotificationDestination],
    errors: &mut Vec<FieldError>,
) {
    if destinations.len() > MAX_DESTINATIONS {
        errors.push(FieldError::new(
            base,
            format!(
                "must list at most {MAX_DESTINATIONS} destinations (got {}); fan out with an SNS topic or an EventBridge rule",
                destinations.len()
            ),
        ));
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, entry) in destinations.iter().enumerate() {
        let path = index_path(base, i);
        let set: Vec<&str> = [
            entry.sns.as_ref().map(|_| "sns"),
            entry.event_bridge.as_ref().map(|_| "eventBridge"),
            entry.webhook.as_ref().map(|_| "webhook"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() != 1 {
            errors.push(FieldError::new(
                path.clone(),
                if set.is_empty() {
                    "must name one destination: sns, eventBridge or webhook".to_string()
                } else {
                    format!(
                        "must name one destination: sns, eventBridge or webhook, not {}; list each as an entry of its own",
                        set.join(" and ")
                    )
                },
            ));
        }
        if let Some(topic) = &entry.sns
            && let Err(message) = check_topic_arn(topic)
        {
            errors.push(FieldError::new(field_path(&path, "sns"), message));
        }
        if let Some(target) = &entry.event_bridge
            && let Err(message) = check_bus(&target.bus)
        {
            errors.push(FieldError::new(
                field_path(&field_path(&path, "eventBridge"), "bus"),
                message,
            ));
        }
        if let Some(target) = &entry.webhook
            && let Err(message) = check_webhook_url(&target.url)
        {
            errors.push(FieldError::new(
                field_path(&field_path(&path, "webhook"), "url"),
                message,
            ));
        }
        if entry.events.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new(
                field_path(&path, "events"),
                "must name at least one event; leave it out for every event, or remove the destination",
            ));
        }
        if let Some(destination) = entry.destination() {
            let key = destination.key();
            match seen.iter().find(|(k, _)| *k == key) {
                Some((_, first)) => errors.push(FieldError::new(
                    path,
                    format!(
                        "names the same destination as {}; list each destination once",
                        index_path(base, *first)
                    ),
                )),
                None => seen.push((key, i)),
            }
        }
    }
}

/// An SNS topic ARN: `arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`, the topic 1 to 256 letters,
/// digits, `-` and `_` (a FIFO topic's name ends with `.fifo`).
pub fn check_topic_arn(arn: &str) -> Result<(), String> {
    const FORM: &str = "an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:releases";
    let parsed = Arn::parse(arn)
        .map_err(|problem| format!("must be {FORM} (got {}): {problem}", shorten(arn)))?;
    if parsed.service != "sns" {
        return Err(format!(
            "must be {FORM}; this ARN is of service {:?}, not \"sns\"",
            parsed.service
        ));
    }
    if parsed.region.is_empty() {
        return Err(format!("must be {FORM}: the ARN names no region"));
    }
    let name = parsed.resource;
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let valid = (1..=256).contains(&name.len())
        && !base.is_empty()
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "must be {FORM}: the topic name is 1 to 256 letters, digits, '-' and '_' (with .fifo for a FIFO topic), got {}",
            shorten(name)
        ));
    }
    Ok(())
}

/// The region an SNS topic ARN names (`None` if it is no ARN).
pub fn topic_region(arn: &str) -> Option<&str> {
    Arn::parse(arn).ok().map(|a| a.region)
}

/// Whether an SNS topic ARN names a FIFO topic (its publishes need a group and a
/// deduplication id).
pub fn is_fifo_topic(arn: &str) -> bool {
    arn.ends_with(".fifo")
}

/// An EventBridge bus: its name (1 to 256 letters, digits and `.-_/`) or its ARN
/// (`arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME`).
pub fn check_bus(bus: &str) -> Result<(), String> {
    let name_ok = |name: &str| {
        (1..=256).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    };
    if bus.starts_with("arn:") {
        let parsed = Arn::parse(bus).map_err(|problem| {
            format!(
                "must be an EventBridge bus name or ARN such as arn:aws:events:us-east-1:111122223333:event-bus/releases (got {}): {problem}",
                shorten(bus)
            )
        })?;
        if parsed.service != "events" {
            return Err(format!(
                "must be an EventBridge bus ARN (service \"events\"), not an ARN of service {:?}",
                parsed.service
            ));
        }
        return match parsed.resource.strip_prefix("event-bus/") {
            Some(name) if name_ok(name) => Ok(()),
            _ => Err(format!(
                "must be an EventBridge bus ARN, whose resource is event-bus/NAME (got {})",
                shorten(parsed.resource)
            )),
        };
    }
    if name_ok(bus) {
        Ok(())
    } else {
        Err(format!(
            "must be an EventBridge bus name (1 to 256 letters, digits, '.', '-', '_' and '/'; `default` for the account's default bus) or ARN (got {})",
            shorten(bus)
        ))
    }
}

/// A webhook URL: `http://` or `https://`, a host, no credentials before the host, at most
/// 2048 characters.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    // The URL is never echoed in full: it may carry a secret.
    let scheme = url.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("http" | "https")) {
        return Err(
            "must be an http:// or https:// URL, such as https://hooks.slack.com/services/..."
                .into(),
        );
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!(
            "must be at most {MAX_URL_LEN} characters (got {})",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "is not a valid URL (scheme://host[:port]/path)".to_string())?;
    let Some(authority) = uri.authority() else {
        return Err("must name a host (scheme://host[:port]/path)".into());
    };
    if authority.as_str().contains('@') {
        return Err("must not carry credentials before the host (user:password@); put a token in the path or query as the receiver expects".into());
    }
    if authority.host().is_empty() {
        return Err("must name a host (scheme://host[:port]/path)".into());
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

/// The body of every notification (the SNS message, the EventBridge detail, the webhook
/// body): exactly the contract's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationMessage {
    pub event: EventKind,
    /// The release's name.
    pub release: String,
    /// The spec's generation when the event happened.
    pub generation: u64,
    /// `codeDeploy`, `taskSets` or `ecs`.
    pub strategy: String,
    /// The task definition serving production (`null` when there is none).
    pub live_task_definition: Option<String>,
    /// The candidate being rolled out (`null` before one was resolved).
    pub candidate_task_definition: Option<String>,
    pub message: String,
    pub time: Timestamp,
    /// Unique per event: a receiver drops a second delivery of one id.
    pub id: String,
}

impl NotificationMessage {
    /// The body as one JSON object.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and a timestamp always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One line a person reads (Slack's text).
    pub fn headline(&self) -> String {
        format!("{} {}: {}", self.release, self.event, self.message)
    }

    /// An SNS subject: `switchyard: RELEASE EVENT`, printable ASCII only (SNS refuses line
    /// breaks and control characters), at most 100 characters.
    pub fn subject(&self) -> String {
        let line = format!("switchyard: {} {}", self.release, self.event);
        line.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(SUBJECT_MAX_CHARS)
            .collect()
    }

    /// A webhook's body: the message itself (`json`), or for Slack's incoming webhooks a
    /// `text` with the headline and the message as a code block (`slack`).
    pub fn webhook_body(&self, format: WebhookFormat) -> String {
        match format {
            WebhookFormat::Json => self.to_json(),
            WebhookFormat::Slack => {
                // Slack's markup escapes only these three.
                let escape = |s: &str| {
                    s.replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                };
                let text = format!(
                    "{}\n```{}```",
                    escape(&self.headline()),
                    escape(&self.to_json())
                );
                serde_json::json!({ "text": text }).to_string()
            }
        }
    }
}

/// SNS's limit on a message's `Subject`.
pub const SUBJECT_MAX_CHARS: usize = 100;

/// The outbox and the delivery record of one release, in its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsStatus {
    /// Events recorded and not yet delivered to every destination, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<OutboxEntry>,
    /// Deliveries made (one event to one destination).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delivered: u64,
    /// Delivery attempts that failed (each is retried with backoff).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_attempts: u64,
    /// Deliveries given up: dropped from a full outbox, too old, or refused for good.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Deliveries sent again because the outcome of an earlier attempt was never recorded
    /// (a replica stopped or lost its lease mid-send): each may have reached its
    /// destination twice, which the message's `id` lets the receiver tell.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// The last failed attempt, or the last delivery given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DeliveryFailure>,
    /// Keys of the latest events recorded (newest last): an event that a flapping phase
    /// would announce again is recorded once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One recorded event and the destinations it has not reached yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    pub message: NotificationMessage,
    pub pending: Vec<PendingDelivery>,
}

/// A delivery of one event to one destination, not made yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingDelivery {
    /// The destination's key (see [`Destination::key`]).
    pub destination: String,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not attempted again before this time (backoff after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The intent of an attempt: written (fenced by the lease) before the attempt is made,
    /// cleared with its outcome. Found without an outcome, the attempt may or may not have
    /// reached the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_since: Option<Timestamp>,
}

/// A failed delivery attempt, or a delivery given up, for the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFailure {
    pub destination: String,
    pub event: EventKind,
    pub id: String,
    pub error: String,
    pub at: Timestamp,
    /// Whether it was given up (no further attempt).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

impl NotificationsStatus {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Deliveries still to make.
    pub fn pending_deliveries(&self) -> usize {
        self.outbox.iter().map(|e| e.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(destinations: &[NotificationDestination]) -> Vec<String> {
        let mut errors = Vec::new();
        validate("spec.notifications", destinations, &mut errors);
        errors.iter().map(|e| e.to_string()).collect()
    }

    fn sns(arn: &str) -> NotificationDestination {
        NotificationDestination {
            sns: Some(arn.into()),
            event_bridge: None,
            webhook: None,
            events: None,
        }
    }

    fn webhook(url: &str) -> NotificationDestination {
        NotificationDestination {
            sns: None,
            event_bridge: None,
            webhook: Some(WebhookTarget {
                url: url.into(),
                format: WebhookFormat::Json,
            }),
            events: None,
        }
    }

    fn bus(bus: &str) -> NotificationDestination {
        NotificationDestination {
            sns: None,
            event_bridge: Some(EventBridgeTarget { bus: bus.into() }),
            webhook: None,
            events: None,
        }
    }

    #[test]
    fn valid_destinations_of_every_kind_pass() {
        assert!(
            check(&[
                sns("arn:aws:sns:us-east-1:111122223333:releases"),
                sns("arn:aws-cn:sns:cn-north-1:111122223333:releases.fifo"),
                bus("default"),
                bus("arn:aws:events:eu-west-1:111122223333:event-bus/releases"),
                webhook("https://hooks.slack.com/services/T0/B0/XYZ"),
                webhook("http://127.0.0.1:9000/hook?token=abc"),
            ])
            .is_empty()
        );
    }

    #[test]
    fn an_sns_arn_that_is_no_topic_arn_is_refused_naming_the_field() {
        for arn in [
            "releases",
            "arn:aws:sqs:us-east-1:111122223333:releases",
            "arn:aws:sns:us-east-1:1111:releases",
            "arn:aws:sns:us-east-1:111122223333:bad name",
            "arn:aws:sns::111122223333:releases",
        ] {
            let errors = check(&[bus("default"), sns(arn)]);
            assert_eq!(errors.len(), 1, "{arn}: {errors:?}");
            assert!(
                errors[0].starts_with("spec.notifications[1].sns: must be an SNS topic ARN"),
                "{arn}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_webhook_url_that_is_not_http_is_refused_without_echoing_it() {
        for url in [
            "ftp://example.com/hook",
            "hooks.slack.com/services/SECRET",
            "https://user:SECRET@example.com/",
            "https:///SECRET",
            "https://exa mple.com/SECRET",
        ] {
            let errors = check(&[webhook(url)]);
            assert_eq!(errors.len(), 1, "{url}: {errors:?}");
            assert!(
                errors[0].starts_with("spec.notifications[0].webhook.url: "),
                "{url}: {errors:?}"
            );
            assert!(!errors[0].contains("SECRET"), "{errors:?}");
        }
    }

    #[test]
    fn buses_are_names_or_event_bus_arns() {
        for bad in [
            "",
            "bad bus",
            "arn:aws:sns:us-east-1:111122223333:releases",
            "arn:aws:events:us-east-1:111122223333:rule/x",
        ] {
            let errors = check(&[bus(bad)]);
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert!(
                errors[0].starts_with("spec.notifications[0].eventBridge.bus: "),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn an_entry_names_exactly_one_destination_and_each_destination_once() {
        let mut both = sns("arn:aws:sns:us-east-1:111122223333:releases");
        both.event_bridge = Some(EventBridgeTarget {
            bus: "default".into(),
        });
        let none = NotificationDestination {
            sns: None,
            event_bridge: None,
            webhook: None,
            events: None,
        };
        let errors = check(&[both, none, bus("default"), bus("default")]);
        assert_eq!(
            errors,
            [
                "spec.notifications[0]: must name one destination: sns, eventBridge or webhook, not sns and eventBridge; list each as an entry of its own",
                "spec.notifications[1]: must name one destination: sns, eventBridge or webhook",
                "spec.notifications[3]: names the same destination as spec.notifications[2]; list each destination once",
            ]
        );
        let mut empty = bus("default");
        empty.events = Some(vec![]);
        assert_eq!(
            check(&[empty]),
            [
                "spec.notifications[0].events: must name at least one event; leave it out for every event, or remove the destination"
            ]
        );
        let many: Vec<_> = (0..11).map(|i| bus(&format!("bus-{i}"))).collect();
        assert_eq!(check(&many).len(), 1);
    }

    fn document(notifications: &str) -> String {
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  \
             service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    \
             containers:\n      web: {{image: \"nginx:1.27\"}}\n  strategy:\n    codeDeploy: \
             {{application: web, deploymentGroup: web-prod}}\n  notifications:\n{notifications}"
        )
    }

    fn document_errors(notifications: &str) -> Vec<String> {
        match crate::model::parse_documents(&document(notifications)) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .flat_map(|d| d.errors.iter().map(|e| e.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_contract_example_parses() {
        let docs = crate::model::parse_documents(&document(
            "    - sns: arn:aws:sns:us-east-1:111122223333:releases\n    \
             - eventBridge: {bus: default}\n    \
             - webhook: {url: \"https://hooks.slack.com/services/T/B/X\", format: slack}\n      \
             events: [RolloutFailed, RolloutRolledBack]\n",
        ))
        .expect("valid");
        let destinations = docs[0].spec.notifications.clone().expect("notifications");
        assert_eq!(destinations.len(), 3);
        assert_eq!(
            destinations[2].destination(),
            Some(Destination::Webhook {
                url: "https://hooks.slack.com/services/T/B/X".into(),
                format: WebhookFormat::Slack
            })
        );
        assert!(destinations[2].wants(EventKind::RolloutFailed));
        assert!(!destinations[2].wants(EventKind::RolloutStarted));
        assert!(destinations[0].wants(EventKind::RolloutStarted));
    }

    #[test]
    fn an_unknown_kind_format_or_event_is_refused_naming_the_field() {
        let errors = document_errors("    - slack: {url: \"https://x.example/\"}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.notifications[0].slack: unknown field `slack`, expected one of `sns`, `eventBridge`, `webhook`, `events`"),
            "{errors:?}"
        );
        let errors =
            document_errors("    - webhook: {url: \"https://x.example/\", format: slak}\n");
        assert!(
            errors[0].starts_with("spec.notifications[0].webhook.format: unknown variant `slak`")
                && errors[0].contains("(did you mean `slack`?)"),
            "{errors:?}"
        );
        let errors =
            document_errors("    - eventBridge: {bus: default}\n      events: [RolloutSucceded]\n");
        assert!(
            errors[0]
                .starts_with("spec.notifications[0].events[0]: unknown variant `RolloutSucceded`")
                && errors[0].contains("(did you mean `RolloutSucceeded`?)"),
            "{errors:?}"
        );
        let errors = document_errors("    - sns: arn:aws:sqs:us-east-1:111122223333:q\n");
        assert!(
            errors[0].starts_with("spec.notifications[0].sns: must be an SNS topic ARN"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_defaults_parse_with_the_same_rules() {
        let value = serde_json::json!([{"sns": "arn:aws:sns:us-east-1:111122223333:t"}]);
        let parsed = crate::model::parse::parse_destinations(&value, "notifications").unwrap();
        assert_eq!(parsed.len(), 1);
        let errors = crate::model::parse::parse_destinations(
            &serde_json::json!([{"webhook": {"url": "ftp://x"}}, {"sns": null}]),
            "notifications",
        )
        .unwrap_err();
        assert_eq!(errors[0].path, "notifications[1].sns", "{errors:?}");
        let errors = crate::model::parse::parse_destinations(
            &serde_json::json!([{"webhook": {"url": "ftp://x"}}]),
            "notifications",
        )
        .unwrap_err();
        assert_eq!(errors[0].path, "notifications[0].webhook.url", "{errors:?}");
        let errors = crate::model::parse::parse_destinations(
            &serde_json::json!({"sns": "x"}),
            "notifications",
        )
        .unwrap_err();
        assert_eq!(errors[0].path, "notifications", "{errors:?}");
    }

    #[test]
    fn a_webhook_key_shows_the_origin_and_hides_the_path() {
        let destination = Destination::Webhook {
            url: "https://hooks.slack.com/services/T0/B0/SECRET".into(),
            format: WebhookFormat::Slack,
        };
        let key = destination.key();
        assert!(key.starts_with("webhook:https://hooks.slack.com#"), "{key}");
        assert!(!key.contains("SECRET"));
        let other = Destination::Webhook {
            url: "https://hooks.slack.com/services/T0/B0/OTHER".into(),
            format: WebhookFormat::Slack,
        };
        assert_ne!(
            key,
            other.key(),
            "two URLs of one host are two destinations"
        );
        assert_eq!(
            Destination::Sns {
                topic_arn: "arn:aws:sns:us-east-1:111122223333:t".into()
            }
            .key(),
            "sns:arn:aws:sns:us-east-1:111122223333:t"
        );
    }

    #[test]
    fn a_slack_body_wraps_a_human_line_around_the_message_and_a_subject_fits_sns() {
        let message = NotificationMessage {
            event: EventKind::RolloutRolledBack,
            release: "web".into(),
            generation: 3,
            strategy: "taskSets".into(),
            live_task_definition: None,
            candidate_task_definition: None,
            message: "alarm <web-5xx> & more".into(),
            time: "2026-01-02T03:04:05Z".parse().unwrap(),
            id: "x".into(),
        };
        let body: serde_json::Value =
            serde_json::from_str(&message.webhook_body(WebhookFormat::Slack)).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("web RolloutRolledBack: alarm &lt;web-5xx&gt; &amp; more\n```{"),
            "{text}"
        );
        assert_eq!(message.webhook_body(WebhookFormat::Json), message.to_json());
        let long = NotificationMessage {
            release: format!("{}\u{7}", "r".repeat(120)),
            ..message
        };
        let subject = long.subject();
        assert_eq!(subject.chars().count(), SUBJECT_MAX_CHARS);
        assert!(subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }

    #[test]
    fn the_message_has_exactly_the_contract_fields() {
        let message = NotificationMessage {
            event: EventKind::RolloutStarted,
            release: "web".into(),
            generation: 3,
            strategy: "taskSets".into(),
            live_task_definition: Some("arn:td:1".into()),
            candidate_task_definition: None,
            message: "m".into(),
            time: "2026-01-02T03:04:05Z".parse().unwrap(),
            id: "x".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "event",
                "release",
                "generation",
                "strategy",
                "liveTaskDefinition",
                "candidateTaskDefinition",
                "message",
                "time",
                "id"
            ]
        );
        assert_eq!(value["generation"], 3);
        assert_eq!(value["candidateTaskDefinition"], serde_json::Value::Null);
        assert_eq!(value["time"], "2026-01-02T03:04:05Z");
    }
}
