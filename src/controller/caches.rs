//! Short-lived caches shared by the passes: deployment groups (they change rarely), alarm
//! states (refreshed in one batch for every release by the alarm watcher), the service of
//! each release while the controller follows its deployment, and what an action returned
//! while the status write recording it failed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::model::ReleaseStatus;
use crate::ports::{AlarmState, DeploymentGroup, Route, Service, TargetGroup, TaskDefinition};

/// How long a deployment group is trusted (virtual time).
pub const GROUP_TTL: Duration = Duration::from_secs(300);
/// How often the alarm watcher polls CloudWatch for all watched alarms (virtual time); also
/// how stale an alarm state may be when a pass uses it.
pub const ALARM_POLL: Duration = Duration::from_secs(2);

/// How long an alarm known not to exist is trusted to stay missing (virtual time).
pub const MISSING_ALARM_TTL: Duration = Duration::from_secs(60);

/// At most this many task definitions are cached.
const TASK_DEFINITIONS_CACHED: usize = 256;

/// Deployment groups, alarms and target groups are cached per place (`Placement::scope_key`:
/// account and region).
type GroupKey = (String, String, String);
type AlarmKey = (String, String);
/// The place and the references the document gives.
type TargetGroupsKey = (String, Vec<String>);
/// The place and a load balancer's ARN.
type RoutesKey = (String, String);

/// How long a load balancer's routes, as a task-set release about to start discovered them,
/// serve the next pass: the pass that checks the target and registers the candidate is
/// followed at once by the pass that starts the rollout, which needs the same routes. Any
/// later look reads them again, and a weight this controller writes drops them.
pub const DISCOVERED_ROUTES_TTL: Duration = Duration::from_secs(5);

/// Drops the entries of `cache` that expired before `now`.
fn drop_expired<K: Ord, V>(cache: &Mutex<BTreeMap<K, (Instant, V)>>, now: Instant) {
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|_, (expires, _)| *expires > now);
}

/// The caches; one per controller.
#[derive(Default)]
pub struct Caches {
    /// Deployment groups: (fresh until, last used by a followed deployment, the group).
    groups: Mutex<BTreeMap<GroupKey, (Instant, Instant, DeploymentGroup)>>,
    /// Alarm states by name; `None`: the alarm does not exist (its absence is cached too).
    alarms: Mutex<BTreeMap<AlarmKey, (Instant, Option<AlarmState>)>>,
    /// Task definitions by full ARN (a revision's content never changes), as registered or
    /// described, for a short while: the creation pass needs the candidate just registered.
    task_definitions: Mutex<BTreeMap<String, (Instant, TaskDefinition)>>,
    /// The pairs of target groups of task-set releases, by the references the document gives
    /// (they change rarely; their load balancers are what a rollout discovers routes on).
    target_groups: Mutex<BTreeMap<TargetGroupsKey, (Instant, Vec<TargetGroup>)>>,
    /// Every route of a load balancer, as discovered for a task-set release about to start,
    /// for [`DISCOVERED_ROUTES_TTL`].
    discovered_routes: Mutex<BTreeMap<RoutesKey, (Instant, Vec<Route>)>>,
    /// release -> (the deployment of ours being followed, the service seen when it started).
    following: Mutex<BTreeMap<String, (String, Service)>>,
    /// release -> (the status version it was to replace, the status recording what an action
    /// returned) when that write failed: the replica knows what it did even though the store
    /// does not say so yet.
    unrecorded: Mutex<BTreeMap<String, (u64, ReleaseStatus)>>,
    /// release -> the deployment whose StopDeployment this replica saw accepted (the last).
    stops_sent: Mutex<BTreeMap<String, String>>,
}

impl Caches {
    /// A cached deployment group, if fresh.
    pub fn group(&self, scope: &str, application: &str, group: &str) -> Option<DeploymentGroup> {
        self.group_entry(scope, application, group)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, g)| g)
    }

    /// A cached deployment group, however old: good enough while following a deployment,
    /// which needs the group only for its termination wait and listener. The use keeps it
    /// from the sweep.
    pub fn group_any_age(
        &self,
        scope: &str,
        application: &str,
        group: &str,
    ) -> Option<DeploymentGroup> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            scope.to_string(),
            application.to_string(),
            group.to_string(),
        );
        groups.get_mut(&key).map(|(_, used, group)| {
            *used = Instant::now();
            group.clone()
        })
    }

    fn group_entry(
        &self,
        scope: &str,
        application: &str,
        group: &str,
    ) -> Option<(Instant, DeploymentGroup)> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            scope.to_string(),
            application.to_string(),
            group.to_string(),
        );
        groups
            .get(&key)
            .map(|(expires, _, group)| (*expires, group.clone()))
    }

    pub fn put_group(&self, clock: &Clock, scope: &str, group: &DeploymentGroup) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            scope.to_string(),
            group.application.clone(),
            group.name.clone(),
        );
        groups.insert(
            key,
            (
                clock.deadline_after(GROUP_TTL),
                Instant::now(),
                group.clone(),
            ),
        );
    }

    /// Alarm states known fresh for all of `names` (alarms known not to exist are absent
    /// from the map), or `None` if any is unknown or stale.
    pub fn alarms(&self, scope: &str, names: &[String]) -> Option<BTreeMap<String, AlarmState>> {
        let alarms = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut states = BTreeMap::new();
        for name in names {
            let key = (scope.to_string(), name.clone());
            match alarms.get(&key) {
                Some((expires, Some(state))) if *expires > now => {
                    states.insert(name.clone(), *state);
                }
                Some((expires, None)) if *expires > now => {}
                _ => return None,
            }
        }
        Some(states)
    }

    /// Records fresh alarm states of `names`: those absent from `states` do not exist, and
    /// that is cached for longer ([`MISSING_ALARM_TTL`]): creating an alarm is rare, asking
    /// CloudWatch about it on every pass is not.
    pub fn put_alarms(
        &self,
        clock: &Clock,
        scope: &str,
        names: &[String],
        states: &BTreeMap<String, AlarmState>,
    ) {
        let mut alarms = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let expires = clock.deadline_after(ALARM_POLL * 2);
        let missing_expires = clock.deadline_after(MISSING_ALARM_TTL);
        for name in names {
            let state = states.get(name).copied();
            let expires = if state.is_some() {
                expires
            } else {
                missing_expires
            };
            alarms.insert((scope.to_string(), name.clone()), (expires, state));
        }
    }

    /// The target groups named by `references`, if cached and fresh.
    pub fn target_groups(&self, scope: &str, references: &[String]) -> Option<Vec<TargetGroup>> {
        let cached = self.target_groups.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .get(&(scope.to_string(), references.to_vec()))
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, groups)| groups.clone())
    }

    pub fn put_target_groups(
        &self,
        clock: &Clock,
        scope: &str,
        references: &[String],
        groups: &[TargetGroup],
    ) {
        let mut cached = self.target_groups.lock().unwrap_or_else(|e| e.into_inner());
        cached.insert(
            (scope.to_string(), references.to_vec()),
            (clock.deadline_after(GROUP_TTL), groups.to_vec()),
        );
    }

    /// The routes of a load balancer discovered less than [`DISCOVERED_ROUTES_TTL`] ago.
    pub fn discovered_routes(&self, scope: &str, load_balancer: &str) -> Option<Vec<Route>> {
        let cached = self
            .discovered_routes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cached
            .get(&(scope.to_string(), load_balancer.to_string()))
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, routes)| routes.clone())
    }

    pub fn put_discovered_routes(
        &self,
        clock: &Clock,
        scope: &str,
        load_balancer: &str,
        routes: &[Route],
    ) {
        let mut cached = self
            .discovered_routes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        cached.retain(|_, (expires, _)| *expires > now);
        cached.insert(
            (scope.to_string(), load_balancer.to_string()),
            (clock.deadline_after(DISCOVERED_ROUTES_TTL), routes.to_vec()),
        );
    }

    /// Drops every discovery that holds `route` (its weights are being written).
    pub fn forget_route(&self, scope: &str, route: &str) {
        let mut cached = self
            .discovered_routes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cached.retain(|(s, _), (_, routes)| s != scope || routes.iter().all(|r| r.arn != route));
    }

    /// The service seen when `deployment` of `release` started, if that is the deployment
    /// being followed.
    pub fn following(&self, release: &str, deployment: &str) -> Option<Service> {
        let following = self.following.lock().unwrap_or_else(|e| e.into_inner());
        following
            .get(release)
            .filter(|(id, _)| id == deployment)
            .map(|(_, service)| service.clone())
    }

    /// Remembers the service while `deployment` of `release` is followed: until it ends, a
    /// look at the deployment needs no DescribeServices (the deployment target carries the
    /// task sets and their weights; what `decide` reads of the service, its deployment
    /// controller and the live revision, does not change before the deployment ends).
    pub fn follow(&self, release: &str, deployment: &str, service: &Service) {
        let mut following = self.following.lock().unwrap_or_else(|e| e.into_inner());
        following.insert(
            release.to_string(),
            (deployment.to_string(), service.clone()),
        );
    }

    /// Keeps the status recording what an action of `release` returned, whose write (to
    /// replace status version `version`) failed, for the next pass: a failed write must not
    /// make the controller act again on an intent it already carried out.
    pub fn keep_unrecorded(&self, release: &str, version: u64, status: ReleaseStatus) {
        let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        unrecorded.insert(release.to_string(), (version, status));
    }

    /// The status a pass of `release` could not write, while the stored status is still the
    /// one it was to replace (`version`). Forgotten once anyone wrote the status since: that
    /// write took effect after all (its reply was lost), or another replica, which does not
    /// know, owns the release now.
    pub fn unrecorded(&self, release: &str, version: u64) -> Option<ReleaseStatus> {
        let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        match unrecorded.get(release) {
            Some((kept, status)) if *kept == version => Some(status.clone()),
            Some(_) => {
                unrecorded.remove(release);
                None
            }
            None => None,
        }
    }

    /// Remembers that CodeDeploy accepted this replica's StopDeployment of `deployment_id`
    /// (or found it finished): whatever the store says, it is not sent again from here.
    pub fn stop_sent(&self, release: &str, deployment_id: &str) {
        let mut stops = self.stops_sent.lock().unwrap_or_else(|e| e.into_inner());
        stops.insert(release.to_string(), deployment_id.to_string());
    }

    /// The deployment of `release` this replica last saw a StopDeployment accepted for.
    pub fn sent_stop(&self, release: &str) -> Option<String> {
        let stops = self.stops_sent.lock().unwrap_or_else(|e| e.into_inner());
        stops.get(release).cloned()
    }

    /// Forgets the unrecorded status of `release`: a status built on it was written.
    pub fn recorded(&self, release: &str) {
        let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        unrecorded.remove(release);
    }

    /// Forgets the followed deployment of `release` (it ended, or the release is gone).
    pub fn unfollow(&self, release: &str) {
        let mut following = self.following.lock().unwrap_or_else(|e| e.into_inner());
        following.remove(release);
    }

    /// A task definition known by its full ARN, if cached and fresh.
    pub fn task_definition(&self, arn: &str) -> Option<TaskDefinition> {
        let cached = self
            .task_definitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cached
            .get(arn)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, t)| t.clone())
    }

    /// Drops what no pass can use any more, so that a fleet at rest holds no cache entry per
    /// release (the resync calls it): deployment groups expired for longer than
    /// [`GROUP_TTL`] and not used by a followed deployment within it (a followed deployment
    /// uses one of any age, so a long wait never reads it again), and expired alarm states, target groups, discovered routes and
    /// task definitions (only fresh ones are used).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (expires, used, _)| *expires + GROUP_TTL > now || *used + GROUP_TTL > now);
        drop_expired(&self.alarms, now);
        drop_expired(&self.target_groups, now);
        drop_expired(&self.discovered_routes, now);
        drop_expired(&self.task_definitions, now);
    }

    pub fn put_task_definition(&self, clock: &Clock, task_definition: &TaskDefinition) {
        let mut cached = self
            .task_definitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if cached.len() >= TASK_DEFINITIONS_CACHED {
            cached.retain(|_, (expires, _)| *expires > now);
        }
        // Full of fresh ones: the oldest goes (not the first by ARN, which would evict the
        // same families over and over and leave others cached for ever).
        if cached.len() >= TASK_DEFINITIONS_CACHED
            && let Some(oldest) = cached
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(arn, _)| arn.clone())
        {
            cached.remove(&oldest);
        }
        cached.insert(
            task_definition.arn.clone(),
            (clock.deadline_after(GROUP_TTL), task_definition.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_definition(family: &str) -> TaskDefinition {
        TaskDefinition {
            arn: format!("arn:aws:ecs:us-east-1:111122223333:task-definition/{family}:1"),
            family: family.to_string(),
            revision: 1,
            status: "ACTIVE".to_string(),
            containers: Vec::new(),
            other_fields_digest: String::new(),
            tags: BTreeMap::new(),
        }
    }

    fn group(name: &str) -> DeploymentGroup {
        DeploymentGroup {
            application: name.to_string(),
            name: format!("{name}-prod"),
            ecs_service: None,
            deployment_config: "CodeDeployDefault.ECSAllAtOnce".to_string(),
            ready_action: crate::ports::ReadyAction::ContinueDeployment,
            termination_wait_minutes: 5,
            target_group_names: Vec::new(),
            production_listener_arns: Vec::new(),
            test_listener_arns: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_keeps_a_group_a_followed_deployment_may_use_and_drops_older_ones() {
        let caches = Caches::default();
        let clock = Clock::fixed_epoch();
        let scope = "111122223333/us-east-1";
        caches.put_group(&clock, scope, &group("old"));
        caches.put_group(&clock, scope, &group("followed"));
        caches.put_task_definition(&clock, &task_definition("web"));
        tokio::time::advance(GROUP_TTL).await;
        caches.put_group(&clock, scope, &group("expired"));
        tokio::time::advance(GROUP_TTL + Duration::from_secs(1)).await;
        // A deployment followed through a long wait uses its group on every look.
        assert!(
            caches
                .group_any_age(scope, "followed", "followed-prod")
                .is_some()
        );
        caches.put_group(&clock, scope, &group("fresh"));

        caches.sweep();
        let any_age = |name: &str| caches.group_any_age(scope, name, &format!("{name}-prod"));
        assert!(
            any_age("old").is_none(),
            "expired for longer than its TTL: dropped"
        );
        assert!(any_age("followed").is_some(), "as old, but in use: kept");
        assert!(
            any_age("expired").is_some(),
            "expired lately: kept for a followed deployment"
        );
        assert!(caches.group(scope, "fresh", "fresh-prod").is_some());
        assert!(
            caches.task_definitions.lock().unwrap().is_empty(),
            "an expired task definition is dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_task_definition_cache_lets_the_oldest_go() {
        let caches = Caches::default();
        let clock = Clock::fixed_epoch();
        // Filled in reverse order of ARN: the first cached is the last by ARN.
        let families: Vec<String> = (0..TASK_DEFINITIONS_CACHED)
            .rev()
            .map(|i| format!("family-{i:04}"))
            .collect();
        for family in &families {
            caches.put_task_definition(&clock, &task_definition(family));
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        caches.put_task_definition(&clock, &task_definition("newcomer"));
        let cached = |family: &str| {
            caches
                .task_definition(&task_definition(family).arn)
                .is_some()
        };
        assert!(cached("newcomer"));
        assert!(!cached(&families[0]), "the oldest entry went");
        assert!(
            families[1..].iter().all(|f| cached(f)),
            "every other entry stays, the first by ARN included"
        );
    }
}
