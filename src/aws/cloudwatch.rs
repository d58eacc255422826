//! The CloudWatch alarms port on the AWS SDK: alarm states by name, batched and paginated,
//! of every alarm type (metric, composite and log alarms).

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

/// The state of an alarm that exists. A state this SDK does not know, or none at all, is not
/// evidence either way, like missing data; the alarm still exists, so it is never left out.
fn map_state(state: Option<&sdk::StateValue>) -> AlarmState {
    match state {
        Some(sdk::StateValue::Ok) => AlarmState::Ok,
        Some(sdk::StateValue::Alarm) => AlarmState::Alarm,
        _ => AlarmState::InsufficientData,
    }
}

/// Every alarm type of the pinned SDK's model. Without `AlarmTypes`, DescribeAlarms returns
/// metric alarms only; composite and log alarms come back only when asked for, and a
/// rollback alarm can be any of them.
const EVERY_ALARM_TYPE: [sdk::AlarmType; 3] = [
    sdk::AlarmType::MetricAlarm,
    sdk::AlarmType::CompositeAlarm,
    sdk::AlarmType::LogAlarm,
];

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        const OP: &str = "DescribeAlarms";
        let mut states = BTreeMap::new();
        for batch in names.chunks(DESCRIBE_ALARMS_BATCH) {
            let mut pages = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .set_alarm_types(Some(EVERY_ALARM_TYPE.to_vec()))
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
                let log = page
                    .log_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                for (name, state) in metric.chain(composite).chain(log) {
                    if let Some(name) = name {
                        states.insert(name.to_string(), map_state(state));
                    }
                }
            }
        }
        Ok(states)
    }
}
