//! The EventBridge port on the AWS SDK: `PutEvents` of one entry on a bus of the
//! controller's region, a failed entry of a successful call being an error.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::error::{CodeMap, classify, kind_for};
use crate::ports::{AwsError, AwsErrorKind, EVENT_SOURCE, EventBridge, Publication};

const PUT_EVENTS_CODES: CodeMap = CodeMap {
    not_found: &["ResourceNotFoundException"],
    conflict: &[],
    invalid: &["ValidationException", "InvalidArgument", "MalformedDetail"],
};

/// EventBridge through the AWS SDK.
#[derive(Debug, Clone)]
pub struct EventBridgeAdapter {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeAdapter {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl EventBridge for EventBridgeAdapter {
    async fn put_event(&self, bus: &str, message: &Publication) -> Result<(), AwsError> {
        const OP: &str = "PutEvents";
        let time = aws_smithy_types::DateTime::from_secs_and_nanos(
            message.time.as_second(),
            message.time.subsec_nanosecond().max(0) as u32,
        );
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(EVENT_SOURCE)
            .detail_type(&message.event)
            .detail(&message.body)
            .time(time)
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify("events", OP, e, PUT_EVENTS_CODES))?;
        // PutEvents answers 200 with the entries it could not put.
        if output.failed_entry_count() > 0 {
            let failed = output.entries().iter().find(|e| e.error_code().is_some());
            let code = failed.and_then(|e| e.error_code()).unwrap_or("Unknown");
            let message = failed
                .and_then(|e| e.error_message())
                .unwrap_or("the entry was not put");
            let kind = match kind_for(code, None, PUT_EVENTS_CODES) {
                // "InternalFailure" and the like: worth another attempt.
                AwsErrorKind::Other => AwsErrorKind::Transient,
                kind => kind,
            };
            return Err(AwsError::new("events", OP, kind, message).with_code(code));
        }
        Ok(())
    }
}
