//! The CloudWatch alarms port on the AWS SDK: alarm states by name, batched and paginated.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types as sdk;

use super::error::{CodeMap, classify};
use crate::ports::{AlarmState, Alarms, AwsError};

const SERVICE: &str = "cloudwatch";

/// AWS's limit on `AlarmNames` per `DescribeAlarms` call.
pub const DESCRIBE_ALARMS_BATCH: usize = 100;

const DESCRIBE_ALARMS_CODES: CodeMap = CodeMap {
    not_found: &[],
    conflict: &[],
    invalid: &["InvalidNextToken", "ValidationError"],
};

/// CloudWatch alarms through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn map_state(state: Option<&sdk::StateValue>) -> Option<AlarmState> {
    match state? {
        sdk::StateValue::Ok => Some(AlarmState::Ok),
        sdk::StateValue::Alarm => Some(AlarmState::Alarm),
        sdk::StateValue::InsufficientData => Some(AlarmState::InsufficientData),
        // A state this SDK does not know: not evidence either way, like missing data.
        _ => Some(AlarmState::InsufficientData),
    }
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        const OP: &str = "DescribeAlarms";
        let mut states = BTreeMap::new();
        for batch in names.chunks(DESCRIBE_ALARMS_BATCH) {
            // Without AlarmTypes, DescribeAlarms returns metric alarms only; rollback alarms
            // are often composite.
            let mut pages = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .alarm_types(sdk::AlarmType::MetricAlarm)
                .alarm_types(sdk::AlarmType::CompositeAlarm)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(SERVICE, OP, e, DESCRIBE_ALARMS_CODES))?;
                let metric = page
                    .metric_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                let composite = page
                    .composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                for (name, state) in metric.chain(composite) {
                    if let (Some(name), Some(state)) = (name, map_state(state)) {
                        states.insert(name.to_string(), state);
                    }
                }
            }
        }
        Ok(states)
    }
}
