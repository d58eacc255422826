//! The SNS port on the AWS SDK: `Publish`, in the topic's region (one client per region,
//! handed out by `AwsNotifications`).

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use super::error::{CodeMap, classify};
use crate::ports::{AwsError, AwsErrorKind, Publication, Sns};

const PUBLISH_CODES: CodeMap = CodeMap {
    not_found: &["NotFound", "NotFoundException"],
    conflict: &[],
    invalid: &[
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidMessageContents",
    ],
};

/// SNS through the AWS SDK, in one region.
#[derive(Debug, Clone)]
pub struct SnsAdapter {
    client: aws_sdk_sns::Client,
}

impl SnsAdapter {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Sns for SnsAdapter {
    async fn publish(&self, topic_arn: &str, message: &Publication) -> Result<(), AwsError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&message.event)
            .build()
            .map_err(|e| {
                AwsError::new(
                    "sns",
                    "Publish",
                    AwsErrorKind::InvalidRequest,
                    e.to_string(),
                )
            })?;
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .subject(&message.subject)
            .message(&message.body)
            .message_attributes("event", attribute);
        if crate::model::notifications::is_fifo_topic(topic_arn) {
            // A FIFO topic keeps a release's events in order and drops a second publish of
            // one id within five minutes.
            request = request
                .message_group_id(&message.release)
                .message_deduplication_id(&message.id);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("sns", "Publish", e, PUBLISH_CODES))
    }
}
