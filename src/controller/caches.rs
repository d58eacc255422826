//! Short-lived caches shared by the passes: deployment groups (they change rarely) and
//! alarm states (refreshed in one batch for every release by the alarm watcher).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::ports::{AlarmState, DeploymentGroup};

/// How long a deployment group is trusted (virtual time).
pub const GROUP_TTL: Duration = Duration::from_secs(300);
/// How often the alarm watcher polls CloudWatch for all watched alarms (virtual time); also
/// how stale an alarm state may be when a pass uses it.
pub const ALARM_POLL: Duration = Duration::from_secs(2);

type GroupKey = (Option<String>, String, String);
type AlarmKey = (Option<String>, String);

/// The caches; one per controller.
#[derive(Default)]
pub struct Caches {
    groups: Mutex<BTreeMap<GroupKey, (Instant, DeploymentGroup)>>,
    alarms: Mutex<BTreeMap<AlarmKey, (Instant, AlarmState)>>,
}

impl Caches {
    /// A cached deployment group, if fresh.
    pub fn group(
        &self,
        region: Option<&str>,
        application: &str,
        group: &str,
    ) -> Option<DeploymentGroup> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            region.map(str::to_string),
            application.to_string(),
            group.to_string(),
        );
        groups
            .get(&key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, g)| g.clone())
    }

    pub fn put_group(&self, clock: &Clock, region: Option<&str>, group: &DeploymentGroup) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            region.map(str::to_string),
            group.application.clone(),
            group.name.clone(),
        );
        groups.insert(key, (clock.deadline_after(GROUP_TTL), group.clone()));
    }

    /// Alarm states known fresh for all of `names`, or `None` if any is missing or stale.
    pub fn alarms(
        &self,
        region: Option<&str>,
        names: &[String],
    ) -> Option<BTreeMap<String, AlarmState>> {
        let alarms = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut states = BTreeMap::new();
        for name in names {
            let key = (region.map(str::to_string), name.clone());
            match alarms.get(&key) {
                Some((expires, state)) if *expires > now => {
                    states.insert(name.clone(), *state);
                }
                // Known fresh to be absent is recorded as expiry without state: not here.
                _ => return None,
            }
        }
        Some(states)
    }

    /// Records fresh alarm states (absent names are recorded as missing by not being set).
    pub fn put_alarms(
        &self,
        clock: &Clock,
        region: Option<&str>,
        states: &BTreeMap<String, AlarmState>,
    ) {
        let mut alarms = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let expires = clock.deadline_after(ALARM_POLL * 2);
        for (name, state) in states {
            alarms.insert(
                (region.map(str::to_string), name.clone()),
                (expires, *state),
            );
        }
    }
}
