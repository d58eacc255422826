//! The alarm watcher: every `ALARM_POLL`, one batched DescribeAlarms per place (region,
//! account and role) for the rollback alarms of every release with a deployment in flight;
//! a release whose alarm is in ALARM is woken at once. Passes read the states from the cache instead of asking again.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

use super::caches::ALARM_POLL;
use super::{Context, Event};
use crate::model::Placement;
use crate::ports::AlarmState;

pub(super) async fn watch_alarms(ctx: Context, events: UnboundedSender<Event>) {
    loop {
        ctx.clock.sleep(ALARM_POLL).await;
        // A round that panics (a bug) is logged and the next one runs as usual.
        if let Ok(false) = super::catching_panics("the alarm watcher", round(&ctx, &events)).await {
            return;
        }
    }
}

/// One round of the watcher; `false` once the loop no longer listens.
async fn round(ctx: &Context, events: &UnboundedSender<Event>) -> bool {
    // place (region, account, role) -> alarm -> releases watching it. The state keeps the
    // releases in flight up to date as passes report: nothing here scans the fleet.
    let mut watched: BTreeMap<Placement, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (name, release) in ctx.state.in_flight() {
        // Only releases this replica acts on: the others' owners watch theirs.
        if ctx.may_act(&name).is_err() {
            continue;
        }
        let placement = ctx
            .aws
            .home()
            .place(release.region.as_deref(), release.role_arn.as_deref());
        let by_alarm = watched.entry(placement).or_default();
        for alarm in release.alarms {
            by_alarm.entry(alarm).or_default().insert(name.clone());
        }
    }
    for (placement, alarms) in watched {
        let names: Vec<String> = alarms.keys().cloned().collect();
        let ports = match ctx.aws.ports(&placement).await {
            Ok(ports) => ports,
            Err(error) => {
                debug!(role = ?placement.role_arn, cause = %error, "alarm watcher: no ports; passes will ask themselves");
                continue;
            }
        };
        match ports.alarms.alarm_states(&names).await {
            Ok(states) => {
                ctx.caches
                    .put_alarms(&ctx.clock, &placement.scope_key(), &names, &states);
                let firing: BTreeSet<String> = states
                    .iter()
                    .filter(|(_, state)| **state == AlarmState::Alarm)
                    .flat_map(|(alarm, _)| alarms[alarm].iter().cloned())
                    .collect();
                if !firing.is_empty()
                    && events
                        .send(Event::AlarmFired(firing.into_iter().collect()))
                        .is_err()
                {
                    return false;
                }
            }
            Err(error) => {
                debug!(cause = %error, "alarm watcher: DescribeAlarms failed; passes will ask themselves")
            }
        }
    }
    true
}
