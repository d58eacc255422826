//! The CloudWatch alarms port: alarm states by name, batched.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::AwsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

/// CloudWatch alarms as the controller uses them.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// The state of each named alarm that exists; missing alarms are absent from the map.
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError>;
}
