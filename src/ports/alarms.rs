//! The CloudWatch alarms port: alarm states by name, batched, of every alarm type.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::AwsError;

/// The state of an alarm that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    /// Not enough data to decide, or a state the adapter cannot read: no evidence either way.
    InsufficientData,
}

/// CloudWatch alarms as the controller uses them.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// The state of each named alarm that exists, whatever its type (metric, composite or
    /// log alarm: adapters ask for every type).
    ///
    /// The map's keys are exactly the names that exist: a name absent from the map is no
    /// alarm at all (a typo, a deleted alarm, an alarm of another region or account), never
    /// an alarm that is OK. An alarm that exists always has an entry, `InsufficientData`
    /// when its state cannot be read. [`missing_alarms`] lists the absent names.
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError>;
}

/// The names among `names` that `states` (an answer of [`Alarms::alarm_states`] for them)
/// does not hold: alarms that do not exist. In the order given, each once.
pub fn missing_alarms<'a>(
    names: &'a [String],
    states: &BTreeMap<String, AlarmState>,
) -> Vec<&'a str> {
    let mut missing: Vec<&str> = Vec::new();
    for name in names {
        if !states.contains_key(name) && !missing.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_alarms_are_the_names_the_answer_does_not_hold_not_the_ok_ones() {
        let names: Vec<String> = ["web-5xx", "web-typo", "web-ok", "web-typo", "web-gone"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let states = BTreeMap::from([
            ("web-5xx".to_string(), AlarmState::Alarm),
            ("web-ok".to_string(), AlarmState::Ok),
        ]);
        assert_eq!(missing_alarms(&names, &states), ["web-typo", "web-gone"]);
        assert!(missing_alarms(&names[..1], &states).is_empty());
    }
}
