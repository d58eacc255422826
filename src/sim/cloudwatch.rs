//! Simulated CloudWatch alarms: metric, composite and log alarms, described as AWS does
//! (composite and log alarms only when `AlarmTypes` asks for them).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::ports::{AlarmState, Alarms, AwsError, AwsErrorKind};

use super::SimAws;
use super::world::{AlarmType, SimAlarm, World};

const SERVICE: &str = "cloudwatch";

/// AWS's limit on alarm names per `DescribeAlarms` call.
pub const DESCRIBE_ALARMS_LIMIT: usize = 100;

/// One alarm as `DescribeAlarms` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedAlarm {
    pub name: String,
    pub alarm_type: AlarmType,
    pub state: AlarmState,
}

impl World {
    /// `DescribeAlarms` with `AlarmNames` and `AlarmTypes`: the named alarms that exist and
    /// are of a type asked for (metric alarms only when `types` is empty), in name order.
    fn describe_alarms(
        &self,
        names: &[String],
        types: &[AlarmType],
    ) -> Result<Vec<DescribedAlarm>, AwsError> {
        if names.len() > DESCRIBE_ALARMS_LIMIT {
            return Err(AwsError::new(
                SERVICE,
                "DescribeAlarms",
                AwsErrorKind::InvalidRequest,
                format!(
                    "AlarmNames can contain at most {DESCRIBE_ALARMS_LIMIT} names, got {}",
                    names.len()
                ),
            )
            .with_code("ValidationError"));
        }
        let wanted = |t: AlarmType| {
            if types.is_empty() {
                t == AlarmType::MetricAlarm
            } else {
                types.contains(&t)
            }
        };
        let mut found: Vec<DescribedAlarm> = self
            .alarms
            .iter()
            .filter(|(name, alarm)| names.contains(name) && wanted(alarm.alarm_type))
            .map(|(name, alarm)| DescribedAlarm {
                name: name.clone(),
                alarm_type: alarm.alarm_type,
                state: alarm.state,
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

impl SimAws {
    /// `DescribeAlarms` of these names and types, counted as `cloudwatch:DescribeAlarms`.
    pub async fn describe_alarms(
        &self,
        names: &[String],
        types: &[AlarmType],
    ) -> Result<Vec<DescribedAlarm>, AwsError> {
        self.call(SERVICE, "DescribeAlarms", |world, _| {
            world.describe_alarms(names, types)
        })
        .await
    }

    /// Sets an alarm's state, creating a metric alarm if no alarm has that name.
    pub fn set_alarm(&self, name: &str, state: AlarmState) {
        self.with_world(|world| {
            world
                .alarms
                .entry(name.to_string())
                .and_modify(|alarm| alarm.state = state)
                .or_insert(SimAlarm {
                    alarm_type: AlarmType::MetricAlarm,
                    state,
                });
        });
    }

    /// Creates an alarm of this type in this state (replacing any alarm of that name).
    pub fn add_alarm(&self, name: &str, alarm_type: AlarmType, state: AlarmState) {
        self.with_world(|world| {
            world
                .alarms
                .insert(name.to_string(), SimAlarm { alarm_type, state });
        });
    }

    /// Deletes an alarm (`DeleteAlarms`); a name that is no alarm is ignored, as AWS does.
    pub fn delete_alarm(&self, name: &str) {
        self.with_world(|world| {
            world.alarms.remove(name);
        });
    }
}

#[async_trait]
impl Alarms for SimAws {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        // Every type asked for, as the real adapter does: DescribeAlarms returns composite and
        // log alarms only when asked.
        Ok(self
            .describe_alarms(names, &AlarmType::ALL)
            .await?
            .into_iter()
            .map(|alarm| (alarm.name, alarm.state))
            .collect())
    }
}
