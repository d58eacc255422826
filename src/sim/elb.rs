//! Simulated Elastic Load Balancing v2 (listeners, read-only) and CloudWatch alarms.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::ports::{AlarmState, Alarms, AwsError, AwsErrorKind, Listener, LoadBalancer};

use super::SimAws;

/// AWS's limit on alarm names per `DescribeAlarms` call.
pub const DESCRIBE_ALARMS_LIMIT: usize = 100;

#[async_trait]
impl LoadBalancer for SimAws {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        const OP: &str = "DescribeListeners";
        self.call("elbv2", OP, |world, _| {
            world.listeners.get(listener_arn).cloned().ok_or_else(|| {
                AwsError::new(
                    "elbv2",
                    OP,
                    AwsErrorKind::NotFound,
                    format!("One or more listeners not found: {listener_arn}"),
                )
                .with_code("ListenerNotFound")
            })
        })
        .await
    }
}

#[async_trait]
impl Alarms for SimAws {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        const OP: &str = "DescribeAlarms";
        self.call("cloudwatch", OP, |world, _| {
            if names.len() > DESCRIBE_ALARMS_LIMIT {
                return Err(AwsError::new(
                    "cloudwatch",
                    OP,
                    AwsErrorKind::InvalidRequest,
                    format!(
                        "AlarmNames can contain at most {DESCRIBE_ALARMS_LIMIT} names, got {}",
                        names.len()
                    ),
                )
                .with_code("ValidationError"));
            }
            Ok(names
                .iter()
                .filter_map(|name| Some((name.clone(), *world.alarms.get(name)?)))
                .collect())
        })
        .await
    }
}
