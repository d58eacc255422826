//! The simulated account's state and its deterministic identifiers (ARNs, ids).

use std::collections::BTreeMap;

use crate::ports::{Listener, TaskDefinition};

use super::cloudwatch::SimAlarm;
use super::codedeploy::{SimDeployment, SimGroup, TrafficRouting};
use super::ecs::SimService;

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "111122223333";

/// Everything the simulated account holds. Only ever touched under the `SimAws` lock, and
/// always advanced to the clock's `now` first (see `World::advance`).
#[derive(Default)]
pub(crate) struct World {
    /// Services by (cluster, name).
    pub services: BTreeMap<(String, String), SimService>,
    /// Task definition revisions by family; revision `n` is at index `n - 1`.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// Listeners by ARN.
    pub listeners: BTreeMap<String, Listener>,
    /// Deployment groups by application, then group name.
    pub applications: BTreeMap<String, BTreeMap<String, SimGroup>>,
    /// Every deployment ever created, in creation order.
    pub deployments: Vec<SimDeployment>,
    pub custom_configs: BTreeMap<String, TrafficRouting>,
    /// Alarms by name (names are unique across alarm types, as in CloudWatch).
    pub alarms: BTreeMap<String, SimAlarm>,
    /// Image substrings whose replacement tasks never become healthy.
    pub failing_images: Vec<String>,
    /// How long CodeDeploy takes to stop a deployment after StopDeployment (the hook in
    /// progress finishes first); the deployment stays in its status meanwhile.
    pub stop_delay: std::time::Duration,
    counters: Counters,
}

/// Separate counters per kind of identifier, so e.g. the deployment ids a test sees do not
/// depend on how many target groups it created first.
#[derive(Default)]
struct Counters {
    deployments: u64,
    task_sets: u64,
    hex: u64,
}

/// 36^9: the number of 9-character upper-case alphanumeric strings.
const ID_SPACE: u128 = 101_559_956_668_416;

impl World {
    /// The next deployment id: `d-` and 9 upper-case alphanumerics. Counter-based, scrambled
    /// by an affine map that is a bijection modulo 36^9 (the factor is coprime to 36), so ids
    /// are unique, deterministic and do not look sequential.
    pub fn next_deployment_id(&mut self) -> String {
        self.counters.deployments += 1;
        let n = u128::from(self.counters.deployments);
        let mut v = (n * 1_000_000_007 + 48_271_000_000) % ID_SPACE;
        let mut chars = [b'0'; 9];
        const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for c in chars.iter_mut().rev() {
            *c = DIGITS[(v % 36) as usize];
            v /= 36;
        }
        format!("d-{}", String::from_utf8_lossy(&chars))
    }

    /// The next task set id, shaped like ECS's `ecs-svc/` and 19 digits.
    pub fn next_task_set_id(&mut self) -> String {
        self.counters.task_sets += 1;
        format!(
            "ecs-svc/{:019}",
            4_000_000_000_000_000_000u64 + self.counters.task_sets * 7_919
        )
    }

    /// The next 16 hex digits for ARN suffixes (odd multiplier: a bijection on u64).
    pub fn next_hex(&mut self) -> String {
        self.counters.hex += 1;
        format!(
            "{:016x}",
            self.counters.hex.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    }
}

pub(crate) fn service_arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}")
}

pub(crate) fn task_set_arn(cluster: &str, service: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-set/{cluster}/{service}/{id}")
}

pub(crate) fn task_definition_arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

pub(crate) fn target_group_arn(name: &str, hex: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}/{hex}")
}

pub(crate) fn listener_arn(load_balancer: &str, lb_hex: &str, listener_hex: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/{load_balancer}/{lb_hex}/{listener_hex}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_unique_and_well_formed() {
        let mut world = World::default();
        let ids: Vec<String> = (0..1000).map(|_| world.next_deployment_id()).collect();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let tail = id.strip_prefix("d-").expect("d- prefix");
            assert_eq!(tail.len(), 9);
            assert!(
                tail.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            );
        }
    }
}
