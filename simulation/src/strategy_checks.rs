//! The invariants of the `taskSets` and `ecs` strategies (13 to 18), checked over one run's
//! event log and what the simulated AWS remembers (every task set `CreateTaskSet` created,
//! the service deployments someone else started).
//!
//! A call is judged against its **intent**: the last status the replica that sent it
//! committed for the release (every mutating call is preceded by a fenced status write of
//! the pass that decided it, so that status is the decision the call carries out).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use crate::log::{EcsSeen, Entry, Event, RouteSeen, StepSeen, TaskSetsSeen};
use crate::{Violation, ViolationKind};
use switchyard::model::{Outcome, TaskSetsStage};
use switchyard::ports::TaskSetStatus;
use switchyard::sim::CreatedTaskSet;

/// What the strategy checks looked at, so that a run shows they were not vacuous.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StrategyCounts {
    /// Production weight changes judged against the step in force (13).
    pub weight_changes: u32,
    /// Candidate task sets created (14).
    pub task_sets_created: u32,
    /// Task sets scaled to 0 or deleted, each judged against the routes then (15).
    pub task_set_removals: u32,
    /// Task-set rollouts that ended rolled back or superseded, judged (15).
    pub rollbacks: u32,
    /// `UpdateService` calls that took effect, each with its intent (16).
    pub service_updates: u32,
    /// `PAUSE` hooks answered, each judged against the hook that waited (18).
    pub hook_answers: u32,
}

impl StrategyCounts {
    pub fn add(&mut self, other: &StrategyCounts) {
        self.weight_changes += other.weight_changes;
        self.task_sets_created += other.task_sets_created;
        self.task_set_removals += other.task_set_removals;
        self.rollbacks += other.rollbacks;
        self.service_updates += other.service_updates;
        self.hook_answers += other.hook_answers;
    }
}

/// The status a replica last committed for a release.
#[derive(Clone, Copy)]
struct Intent<'a> {
    seq: u64,
    observed_generation: u64,
    serial: Option<u32>,
    task_sets: Option<&'a TaskSetsSeen>,
    ecs: Option<&'a EcsSeen>,
}

/// Per (replica, release): its last committed status, kept up to date entry by entry.
#[derive(Default)]
struct Intents<'a> {
    last: BTreeMap<(&'a str, &'a str), Intent<'a>>,
}

impl<'a> Intents<'a> {
    fn observe(&mut self, entry: &'a Entry) {
        if let Event::StatusCommitted {
            release,
            fence: Some(fence),
            observed_generation,
            rollout,
            task_sets,
            ecs,
            ..
        } = &entry.event
        {
            self.last.insert(
                (fence.owner.as_str(), release.as_str()),
                Intent {
                    seq: entry.seq,
                    observed_generation: *observed_generation,
                    serial: rollout.as_ref().map(|r| r.serial),
                    task_sets: task_sets.as_deref(),
                    ecs: ecs.as_deref(),
                },
            );
        }
    }

    fn of(&self, replica: &str, release: &str) -> Option<Intent<'a>> {
        self.last.get(&(replica, release)).copied()
    }
}

/// Whether a call with this outcome took effect in the simulated AWS (a lost reply did).
fn took_effect(outcome: &str) -> bool {
    matches!(outcome, "ok" | "ambiguous")
}

/// A weight change's detail (`ROUTE: GROUP=WEIGHT,GROUP=WEIGHT`) as a route.
fn parse_weights(detail: &str) -> Option<RouteSeen> {
    let (arn, weights) = detail.split_once(": ")?;
    let forward = weights
        .split(',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let (group, weight) = w.rsplit_once('=')?;
            Some((group.to_string(), weight.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RouteSeen {
        arn: arn.to_string(),
        forward,
    })
}

/// The most of production traffic a rollout may put on its candidate in this stage: the
/// step it is at (never below the weight it applied already), all of it once it switches,
/// none before its steps or while it rolls back.
fn ceiling(state: &TaskSetsSeen, steps: Option<&[StepSeen]>) -> u32 {
    match state.stage {
        TaskSetsStage::Switching => 100,
        TaskSetsStage::Steps => match state
            .step_index
            .and_then(|index| steps.and_then(|s| s.get(index)))
        {
            Some(StepSeen::SetWeight(weight)) => (*weight).max(state.weight),
            _ => state.weight,
        },
        TaskSetsStage::Creating
        | TaskSetsStage::WaitingForCandidate
        | TaskSetsStage::TestTraffic
        | TaskSetsStage::RollingBack => 0,
    }
}

/// Invariant 13: a task-set rollout's weights follow its steps. Every production weight a
/// replica sets puts on the candidate at most what the step its status records allows (the
/// step's weight, or the weight applied already; 100 only once it switches; none before the
/// steps or while rolling back), and never less than the route gives it then (as the last
/// change of the route, by a replica or by hand, left it), except while it rolls back.
pub(super) fn weights_follow_the_steps(
    entries: &[Entry],
    counts: &mut StrategyCounts,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut intents = Intents::default();
    let mut steps: BTreeMap<(&str, u64), &[StepSeen]> = BTreeMap::new();
    // (release, route) -> the route as the last change left it, and that change's seq.
    let mut current: BTreeMap<(&str, &str), (&RouteSeen, u64)> = BTreeMap::new();
    for entry in entries {
        intents.observe(entry);
        match &entry.event {
            Event::TrafficSeen {
                release, routes, ..
            } => {
                for route in routes {
                    current.insert((release.as_str(), route.arn.as_str()), (route, entry.seq));
                }
            }
            Event::SpecWritten {
                release,
                generation,
                steps: written,
                ..
            } => {
                steps.insert((release.as_str(), *generation), written.as_slice());
            }
            Event::MutationIssued {
                replica,
                release,
                operation: "elbv2:ModifyListener" | "elbv2:ModifyRule",
                detail,
                ..
            } => {
                let Some(intent) = intents.of(replica, release) else {
                    continue;
                };
                let (Some(state), Some(route)) = (intent.task_sets, parse_weights(detail)) else {
                    continue;
                };
                let Some(candidate) = state.candidate_group.as_deref() else {
                    continue;
                };
                if !state.routes.contains(&route.arn) {
                    // A test route: it follows the candidate whole, not the steps.
                    continue;
                }
                counts.weight_changes += 1;
                let percent = route.percent_to(candidate);
                let allowed = ceiling(
                    state,
                    steps
                        .get(&(release.as_str(), intent.observed_generation))
                        .copied(),
                );
                if percent > allowed {
                    violations.push(Violation::new(
                        ViolationKind::WeightAboveStep,
                        format!(
                            "#{} {replica} set {percent}% on the candidate of {release} on {} while its status (#{}, generation {}) is at {:?} step {:?} with {}% applied: at most {allowed}% allowed",
                            entry.seq,
                            route.arn,
                            intent.seq,
                            intent.observed_generation,
                            state.stage,
                            state.step_index,
                            state.weight
                        ),
                    ));
                }
                if state.stage != TaskSetsStage::RollingBack
                    && let Some((before, before_seq)) =
                        current.get(&(release.as_str(), route.arn.as_str()))
                    && percent < before.percent_to(candidate)
                {
                    violations.push(Violation::new(
                        ViolationKind::WeightWentDown,
                        format!(
                            "#{} {replica} lowered the candidate's share of {} from {}% (#{before_seq}) to {percent}% during rollout {:?} of {release}, which is not rolling back ({:?})",
                            entry.seq,
                            route.arn,
                            before.percent_to(candidate),
                            intent.serial,
                            state.stage
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

/// Invariant 14: one candidate task set per rollout. No two task sets were ever created with
/// one rollout's external id (whatever was deleted since), and a candidate is created only
/// when the service runs nothing but its primary task set (and what is draining): never
/// beside a candidate or an old version left over.
pub(super) fn one_candidate_per_rollout(
    entries: &[Entry],
    created: &[CreatedTaskSet],
    counts: &mut StrategyCounts,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut by_rollout: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for task_set in created {
        counts.task_sets_created += 1;
        let Some(external_id) = task_set.external_id.as_deref() else {
            continue;
        };
        match by_rollout.get(&(task_set.service.as_str(), external_id)) {
            Some(first) => violations.push(Violation::new(
                ViolationKind::SecondCandidateTaskSet,
                format!(
                    "{}: two task sets created for rollout {external_id}: {first} and {}",
                    task_set.service, task_set.arn
                ),
            )),
            None => {
                by_rollout.insert((task_set.service.as_str(), external_id), &task_set.arn);
            }
        }
    }
    for entry in entries {
        let Event::TrafficSeen {
            release,
            by,
            change,
            outcome,
            task_sets,
            ..
        } = &entry.event
        else {
            continue;
        };
        if !change.starts_with("ecs:CreateTaskSet") || !took_effect(outcome) {
            continue;
        }
        let running: Vec<&str> = task_sets
            .iter()
            .filter(|t| !matches!(t.status, TaskSetStatus::Primary | TaskSetStatus::Draining))
            .map(|t| t.arn.as_str())
            .collect();
        if running.len() > 1 {
            violations.push(Violation::new(
                ViolationKind::CandidateBesideLeftover,
                format!(
                    "#{} {by} created a task set for {release} while another non-primary one still ran: {}",
                    entry.seq,
                    running.join(", ")
                ),
            ));
        }
    }
    violations
}

/// The task set a scale-down or deletion removes: `ecs:DeleteTaskSet ARN (force: ..)` or
/// `ecs:UpdateTaskSet ARN to 0%`.
fn removed_task_set(change: &str) -> Option<&str> {
    if let Some(rest) = change.strip_prefix("ecs:DeleteTaskSet ") {
        return rest.split_whitespace().next();
    }
    let rest = change.strip_prefix("ecs:UpdateTaskSet ")?;
    let (arn, scale) = rest.split_once(" to ")?;
    let percent: f64 = scale.trim_end_matches('%').parse().ok()?;
    (percent == 0.0).then_some(arn)
}

/// Invariant 15: traffic first. No task set is scaled to 0 or deleted while a route forwards
/// any traffic to its target group (read right after the call took effect), and a task-set
/// rollout ends rolled back or superseded only once no production or test route forwards to
/// its candidate group any more.
pub(super) fn traffic_before_removal(
    entries: &[Entry],
    counts: &mut StrategyCounts,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    // Per release: the routes and task sets as last seen, and the latest candidate group
    // of each rollout.
    let mut latest: BTreeMap<&str, &[RouteSeen]> = BTreeMap::new();
    let mut groups: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    let mut candidates: BTreeMap<(&str, u32), &TaskSetsSeen> = BTreeMap::new();
    let mut ended: BTreeSet<(&str, u32)> = BTreeSet::new();
    for entry in entries {
        match &entry.event {
            Event::TrafficSeen {
                release,
                by,
                change,
                outcome,
                routes,
                task_sets,
            } => {
                let known = groups.entry(release.as_str()).or_default();
                for task_set in task_sets {
                    known.insert(&task_set.arn, &task_set.target_group);
                }
                latest.insert(release.as_str(), routes.as_slice());
                let Some(arn) = removed_task_set(change).filter(|_| took_effect(outcome)) else {
                    continue;
                };
                counts.task_set_removals += 1;
                let Some(group) = known.get(arn) else {
                    continue;
                };
                if let Some(route) = routes.iter().find(|r| r.percent_to(group) > 0) {
                    violations.push(Violation::new(
                        ViolationKind::TaskSetRemovedWithWeight,
                        format!(
                            "#{} {by} sent {change} for {release} while {} forwarded {}% to its group {group}",
                            entry.seq,
                            route.arn,
                            route.percent_to(group)
                        ),
                    ));
                }
            }
            Event::StatusCommitted {
                release,
                rollout: Some(rollout),
                task_sets: Some(state),
                ..
            } => {
                let state: &TaskSetsSeen = state;
                let key = (release.as_str(), rollout.serial);
                if state.candidate_group.is_some() {
                    candidates.insert(key, state);
                }
                if !matches!(
                    rollout.outcome,
                    Some(Outcome::RolledBack | Outcome::Superseded)
                ) || !ended.insert(key)
                {
                    continue;
                }
                counts.rollbacks += 1;
                let Some(state) = candidates.get(&key) else {
                    continue;
                };
                let Some(group) = state.candidate_group.as_deref() else {
                    continue;
                };
                let routes = latest.get(release.as_str()).copied().unwrap_or_default();
                if let Some(route) = routes.iter().find(|r| {
                    (state.routes.contains(&r.arn) || state.test_routes.contains(&r.arn))
                        && r.percent_to(group) > 0
                }) {
                    violations.push(Violation::new(
                        ViolationKind::RolledBackWithTraffic,
                        format!(
                            "#{} rollout {} of {release} ended {:?} while {} still forwarded {}% to its candidate group {group}",
                            entry.seq,
                            rollout.serial,
                            rollout.outcome,
                            route.arn,
                            route.percent_to(group)
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

/// Invariants 16 to 18, the `ecs` strategy's:
/// - 16: one `UpdateService` per intent: each call that took effect was sent under a status
///   of its replica recording the intent (`updatingSince`), and no two calls that took
///   effect carry one intent of a release (whichever replicas sent them);
/// - 17: a service deployment switchyard did not start is never stopped, never answered, and
///   never replaced by an `UpdateService` of a replica that saw it as the service's current
///   deployment while it was in flight;
/// - 18: a `PAUSE` hook is answered only with the id of the hook that waits (a hook id from
///   an earlier hook, or from another deployment, is never sent while another hook waits).
///
/// `foreign` holds the deployments someone else started, with when each finished (since
/// the run started; `None`: never), `origin` the run's start on the simulated clock.
pub(super) fn ecs_rollouts(
    entries: &[Entry],
    foreign: &BTreeMap<String, Option<Timestamp>>,
    origin: Timestamp,
    counts: &mut StrategyCounts,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut intents = Intents::default();
    // (release, intent) -> the first call that took effect for it.
    let mut updates: BTreeMap<(&str, Timestamp), (u64, &str)> = BTreeMap::new();
    // Per (replica, release): the foreign deployment in flight it saw before its update.
    let mut replacing: BTreeMap<(&str, &str), (u64, &str)> = BTreeMap::new();
    let in_flight_at = |arn: &str, at: Duration| {
        foreign.get(arn).is_some_and(|finished| {
            finished.is_none_or(|t| switchyard::clock::elapsed_between(origin, t) > at)
        })
    };
    for entry in entries {
        intents.observe(entry);
        match &entry.event {
            Event::ServiceViewAtUpdate {
                replica,
                release,
                current: Some(current),
                ..
            } => {
                if in_flight_at(current, entry.at) {
                    replacing.insert((replica.as_str(), release.as_str()), (entry.seq, current));
                } else {
                    replacing.remove(&(replica.as_str(), release.as_str()));
                }
            }
            Event::ServiceViewAtUpdate {
                replica, release, ..
            } => {
                replacing.remove(&(replica.as_str(), release.as_str()));
            }
            Event::MutationReturned {
                replica,
                release,
                operation: "ecs:UpdateService",
                detail,
                outcome,
            } if took_effect(outcome) => {
                counts.service_updates += 1;
                if let Some((seen, arn)) = replacing.remove(&(replica.as_str(), release.as_str())) {
                    violations.push(Violation::new(
                        ViolationKind::ForeignDeploymentReplaced,
                        format!(
                            "#{} {replica} updated {release} to {detail} although it had seen (#{seen}) {arn}, which someone else started, in flight",
                            entry.seq
                        ),
                    ));
                }
                let since = intents
                    .of(replica, release)
                    .and_then(|intent| intent.ecs)
                    .and_then(|ecs| ecs.updating_since);
                let Some(since) = since else {
                    violations.push(Violation::new(
                        ViolationKind::UpdateServiceWithoutIntent,
                        format!(
                            "#{} {replica} updated {release} to {detail} without a status of its recording the intent (updatingSince)",
                            entry.seq
                        ),
                    ));
                    continue;
                };
                match updates.get(&(release.as_str(), since)) {
                    Some((first, by)) => violations.push(Violation::new(
                        ViolationKind::UpdateServiceTwice,
                        format!(
                            "#{} {replica} updated {release} to {detail} for the intent of {since}, for which {by}'s UpdateService (#{first}) had taken effect already",
                            entry.seq
                        ),
                    )),
                    None => {
                        updates.insert((release.as_str(), since), (entry.seq, replica));
                    }
                }
            }
            Event::MutationIssued {
                replica,
                release,
                operation:
                    operation @ ("ecs:StopServiceDeployment" | "ecs:ContinueServiceDeployment"),
                detail,
                ..
            } => {
                let arn = detail.split_whitespace().next().unwrap_or_default();
                if foreign.contains_key(arn) {
                    violations.push(Violation::new(
                        ViolationKind::ForeignDeploymentTouched,
                        format!(
                            "#{} {replica} sent {operation} {detail} for {release}: someone else started {arn}",
                            entry.seq
                        ),
                    ));
                }
            }
            Event::HookAnswerSent {
                replica,
                release,
                deployment,
                hook_id,
                waiting,
            } => {
                counts.hook_answers += 1;
                if let Some(waiting) = waiting
                    && waiting != hook_id
                {
                    violations.push(Violation::new(
                        ViolationKind::StaleHookAnswer,
                        format!(
                            "#{} {replica} answered hook {hook_id} of {deployment} ({release}) while hook {waiting} waited",
                            entry.seq
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

/// Each check, on small logs written by hand: it finds what it is for, and lets pass what
/// the controller rightly does.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{RolloutSeen, TaskSetSeen};
    use switchyard::lease::Fence;

    fn log(events: Vec<Event>) -> Vec<Entry> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, event)| Entry {
                seq: seq as u64,
                at: Duration::from_secs(seq as u64),
                event,
            })
            .collect()
    }

    const ROUTE: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/80";
    const TEST_ROUTE: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/8080";
    const LIVE: &str = "tg-a";
    const CANDIDATE: &str = "tg-b";

    fn spec(generation: u64, steps: Vec<StepSeen>) -> Event {
        Event::SpecWritten {
            release: "web".into(),
            generation,
            tag: "2.0".into(),
            image: "web:2.0".into(),
            edit: "new version".into(),
            keeps_candidate: false,
            alarms: false,
            paused: false,
            in_flight: None,
            strategy: "taskSets",
            steps,
        }
    }

    fn state(stage: TaskSetsStage, step_index: Option<usize>, weight: u32) -> TaskSetsSeen {
        TaskSetsSeen {
            stage,
            step_index,
            weight,
            candidate_task_set: Some("ts-2".into()),
            live_group: Some(LIVE.into()),
            candidate_group: Some(CANDIDATE.into()),
            routes: vec![ROUTE.into()],
            test_routes: vec![TEST_ROUTE.into()],
            rolling_back: (stage == TaskSetsStage::RollingBack).then_some(false),
            clean_up: None,
        }
    }

    fn committed(
        owner: &str,
        serial: u32,
        outcome: Option<Outcome>,
        task_sets: Option<TaskSetsSeen>,
        ecs: Option<EcsSeen>,
    ) -> Event {
        Event::StatusCommitted {
            release: "web".into(),
            fence: Some(Fence {
                shard: 0,
                owner: owner.into(),
                term: 1,
            }),
            version: 1,
            observed_generation: 1,
            phase: switchyard::model::Phase::Progressing,
            message: String::new(),
            stop_requested: None,
            stop_sent: false,
            stop_superseded: false,
            rollout: Some(RolloutSeen {
                serial,
                generation: 1,
                candidate: "web:2".into(),
                outcome,
            }),
            handled: Vec::new(),
            task_sets: task_sets.map(Box::new),
            ecs: ecs.map(Box::new),
        }
    }

    fn set_weight(replica: &str, route: &str, candidate: u32) -> Event {
        Event::MutationIssued {
            replica: replica.into(),
            release: "web".into(),
            operation: "elbv2:ModifyListener",
            detail: format!(
                "{route}: {LIVE}={},{CANDIDATE}={candidate}",
                100 - candidate
            ),
            fence: None,
        }
    }

    fn traffic(change: &str, candidate: u32, task_sets: Vec<TaskSetSeen>) -> Event {
        Event::TrafficSeen {
            release: "web".into(),
            by: "r1".into(),
            change: change.into(),
            outcome: "ok".into(),
            routes: vec![RouteSeen {
                arn: ROUTE.into(),
                forward: vec![
                    (LIVE.into(), 100 - candidate),
                    (CANDIDATE.into(), candidate),
                ],
            }],
            task_sets,
        }
    }

    fn task_set(arn: &str, group: &str, status: TaskSetStatus) -> TaskSetSeen {
        TaskSetSeen {
            arn: arn.into(),
            target_group: group.into(),
            status,
            scale: 100.0,
            external_id: None,
        }
    }

    fn kinds(violations: &[Violation]) -> Vec<ViolationKind> {
        violations.iter().map(|v| v.kind).collect()
    }

    fn weights(events: Vec<Event>) -> Vec<ViolationKind> {
        kinds(&weights_follow_the_steps(
            &log(events),
            &mut StrategyCounts::default(),
        ))
    }

    #[test]
    fn a_weight_above_the_step_in_force_is_found() {
        let steps = vec![
            StepSeen::SetWeight(10),
            StepSeen::Pause,
            StepSeen::SetWeight(50),
        ];
        let at_first = state(TaskSetsStage::Steps, Some(0), 0);
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed("r1", 1, None, Some(at_first.clone()), None),
                set_weight("r1", ROUTE, 10),
            ]),
            []
        );
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed("r1", 1, None, Some(at_first), None),
                set_weight("r1", ROUTE, 50),
            ]),
            [ViolationKind::WeightAboveStep]
        );
        // At the pause, the weight applied is the most.
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed(
                    "r1",
                    1,
                    None,
                    Some(state(TaskSetsStage::Steps, Some(1), 10)),
                    None
                ),
                set_weight("r1", ROUTE, 50),
            ]),
            [ViolationKind::WeightAboveStep]
        );
        // Before the steps, no production traffic moves; the test route is not a step's.
        let test = state(TaskSetsStage::TestTraffic, None, 0);
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed("r1", 1, None, Some(test.clone()), None),
                set_weight("r1", TEST_ROUTE, 100),
            ]),
            []
        );
        assert_eq!(
            weights(vec![
                spec(1, steps),
                committed("r1", 1, None, Some(test), None),
                set_weight("r1", ROUTE, 10),
            ]),
            [ViolationKind::WeightAboveStep]
        );
    }

    #[test]
    fn a_call_is_judged_by_its_own_replica_s_intent() {
        let steps = vec![StepSeen::SetWeight(10), StepSeen::SetWeight(50)];
        // r2's status is at the second step; r1's call follows r1's own status.
        assert_eq!(
            weights(vec![
                spec(1, steps),
                committed(
                    "r1",
                    1,
                    None,
                    Some(state(TaskSetsStage::Steps, Some(0), 0)),
                    None
                ),
                committed(
                    "r2",
                    1,
                    None,
                    Some(state(TaskSetsStage::Steps, Some(1), 10)),
                    None
                ),
                set_weight("r1", ROUTE, 50),
            ]),
            [ViolationKind::WeightAboveStep]
        );
    }

    #[test]
    fn a_weight_going_down_is_found_unless_rolling_back() {
        let steps = vec![StepSeen::SetWeight(10), StepSeen::SetWeight(50)];
        let second = state(TaskSetsStage::Steps, Some(1), 10);
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed("r1", 1, None, Some(second.clone()), None),
                set_weight("r1", ROUTE, 50),
                traffic("elbv2:ModifyListener", 50, vec![]),
                set_weight("r1", ROUTE, 20),
            ]),
            [ViolationKind::WeightWentDown]
        );
        // Moved back by hand: setting the step's weight again raises it.
        assert_eq!(
            weights(vec![
                spec(1, steps.clone()),
                committed("r1", 1, None, Some(second.clone()), None),
                set_weight("r1", ROUTE, 50),
                traffic("elbv2:ModifyListener", 50, vec![]),
                traffic("hand", 0, vec![]),
                set_weight("r1", ROUTE, 10),
            ]),
            []
        );
        assert_eq!(
            weights(vec![
                spec(1, steps),
                committed("r1", 1, None, Some(second), None),
                set_weight("r1", ROUTE, 50),
                traffic("elbv2:ModifyListener", 50, vec![]),
                committed(
                    "r1",
                    1,
                    None,
                    Some(state(TaskSetsStage::RollingBack, Some(1), 50)),
                    None
                ),
                set_weight("r1", ROUTE, 0),
            ]),
            []
        );
    }

    #[test]
    fn a_second_task_set_for_one_rollout_or_beside_a_leftover_is_found() {
        let created = |arn: &str, external_id: &str| CreatedTaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            arn: arn.into(),
            external_id: Some(external_id.into()),
            target_group_arn: CANDIDATE.into(),
            task_definition: "web:2".into(),
            created_at: Timestamp::UNIX_EPOCH,
        };
        let check = |entries: Vec<Event>, created: &[CreatedTaskSet]| {
            kinds(&one_candidate_per_rollout(
                &log(entries),
                created,
                &mut StrategyCounts::default(),
            ))
        };
        assert_eq!(
            check(
                vec![],
                &[created("ts-1", "web/t1"), created("ts-2", "web/t2")]
            ),
            []
        );
        assert_eq!(
            check(
                vec![],
                &[created("ts-1", "web/t1"), created("ts-2", "web/t1")]
            ),
            [ViolationKind::SecondCandidateTaskSet]
        );
        let create = |others: TaskSetStatus| {
            traffic(
                "ecs:CreateTaskSet web:2 on tg-b at 100% (token t)",
                0,
                vec![
                    task_set("ts-0", LIVE, TaskSetStatus::Primary),
                    task_set("ts-1", CANDIDATE, others),
                    task_set("ts-2", CANDIDATE, TaskSetStatus::Active),
                ],
            )
        };
        assert_eq!(check(vec![create(TaskSetStatus::Draining)], &[]), []);
        assert_eq!(
            check(vec![create(TaskSetStatus::Active)], &[]),
            [ViolationKind::CandidateBesideLeftover]
        );
    }

    #[test]
    fn a_task_set_removed_with_weight_or_a_rollback_ending_with_traffic_is_found() {
        let sets = || {
            vec![
                task_set("ts-1", LIVE, TaskSetStatus::Primary),
                task_set("ts-2", CANDIDATE, TaskSetStatus::Active),
            ]
        };
        let check = |events: Vec<Event>| {
            kinds(&traffic_before_removal(
                &log(events),
                &mut StrategyCounts::default(),
            ))
        };
        assert_eq!(
            check(vec![traffic(
                "ecs:DeleteTaskSet ts-2 (force: false)",
                0,
                sets()
            )]),
            []
        );
        assert_eq!(
            check(vec![traffic(
                "ecs:DeleteTaskSet ts-2 (force: true)",
                10,
                sets()
            )]),
            [ViolationKind::TaskSetRemovedWithWeight]
        );
        assert_eq!(
            check(vec![traffic("ecs:UpdateTaskSet ts-2 to 0%", 10, sets())]),
            [ViolationKind::TaskSetRemovedWithWeight]
        );
        // Scaling up is not a removal.
        assert_eq!(
            check(vec![traffic("ecs:UpdateTaskSet ts-2 to 100%", 10, sets())]),
            []
        );
        let rolling_back = Some(state(TaskSetsStage::RollingBack, Some(1), 10));
        let ended = Some(state(TaskSetsStage::RollingBack, Some(1), 0));
        for (candidate, found) in [
            (0, vec![]),
            (10, vec![ViolationKind::RolledBackWithTraffic]),
        ] {
            assert_eq!(
                check(vec![
                    committed("r1", 1, None, rolling_back.clone(), None),
                    traffic("elbv2:ModifyListener", candidate, sets()),
                    committed("r1", 1, Some(Outcome::RolledBack), ended.clone(), None),
                ]),
                found
            );
        }
    }

    fn ecs_check(events: Vec<Event>, foreign: &[(&str, Option<u64>)]) -> Vec<ViolationKind> {
        let origin = Timestamp::from_second(1_800_000_000).unwrap();
        let foreign = foreign
            .iter()
            .map(|(arn, finished)| {
                (
                    arn.to_string(),
                    finished.map(|s| origin + jiff::SignedDuration::from_secs(s as i64)),
                )
            })
            .collect();
        kinds(&ecs_rollouts(
            &log(events),
            &foreign,
            origin,
            &mut StrategyCounts::default(),
        ))
    }

    fn intent(owner: &str, since: Option<u64>) -> Event {
        committed(
            owner,
            1,
            None,
            None,
            Some(EcsSeen {
                service_deployment: None,
                updating_since: since.map(|s| Timestamp::from_second(s as i64).unwrap()),
                answer: None,
                rolling_back: None,
            }),
        )
    }

    fn update(replica: &str, outcome: &str) -> Event {
        Event::MutationReturned {
            replica: replica.into(),
            release: "web".into(),
            operation: "ecs:UpdateService",
            detail: "web:2".into(),
            outcome: outcome.into(),
        }
    }

    #[test]
    fn a_second_update_for_one_intent_or_one_without_an_intent_is_found() {
        assert_eq!(
            ecs_check(vec![intent("r1", Some(10)), update("r1", "ok")], &[]),
            []
        );
        // A throttled call did not take effect: the second one is the only one.
        assert_eq!(
            ecs_check(
                vec![
                    intent("r1", Some(10)),
                    update("r1", "throttling"),
                    update("r1", "ok")
                ],
                &[]
            ),
            []
        );
        // A lost reply took effect: another replica updating for the same intent acts twice.
        assert_eq!(
            ecs_check(
                vec![
                    intent("r1", Some(10)),
                    update("r1", "ambiguous"),
                    intent("r2", Some(10)),
                    update("r2", "ok")
                ],
                &[]
            ),
            [ViolationKind::UpdateServiceTwice]
        );
        // A new intent is a new rollout.
        assert_eq!(
            ecs_check(
                vec![
                    intent("r1", Some(10)),
                    update("r1", "ok"),
                    intent("r1", Some(20)),
                    update("r1", "ok")
                ],
                &[]
            ),
            []
        );
        assert_eq!(
            ecs_check(vec![intent("r1", None), update("r1", "ok")], &[]),
            [ViolationKind::UpdateServiceWithoutIntent]
        );
    }

    #[test]
    fn touching_a_deployment_someone_else_started_is_found() {
        let sent = |operation: &'static str, detail: &str| Event::MutationIssued {
            replica: "r1".into(),
            release: "web".into(),
            operation,
            detail: detail.into(),
            fence: None,
        };
        let foreign = [("arn:theirs", None)];
        assert_eq!(
            ecs_check(
                vec![sent("ecs:StopServiceDeployment", "arn:ours")],
                &foreign
            ),
            []
        );
        assert_eq!(
            ecs_check(
                vec![sent("ecs:StopServiceDeployment", "arn:theirs")],
                &foreign
            ),
            [ViolationKind::ForeignDeploymentTouched]
        );
        assert_eq!(
            ecs_check(
                vec![sent(
                    "ecs:ContinueServiceDeployment",
                    "arn:theirs h1 Rollback"
                )],
                &foreign
            ),
            [ViolationKind::ForeignDeploymentTouched]
        );
        let view = |current: &str| Event::ServiceViewAtUpdate {
            replica: "r1".into(),
            release: "web".into(),
            current: Some(current.into()),
            seen_at: Some(Duration::ZERO),
        };
        // Seen in flight (it finishes at 100 s), then replaced.
        assert_eq!(
            ecs_check(
                vec![
                    intent("r1", Some(10)),
                    view("arn:theirs"),
                    update("r1", "ok")
                ],
                &[("arn:theirs", Some(100))]
            ),
            [ViolationKind::ForeignDeploymentReplaced]
        );
        // Seen once it had finished: updating is right.
        assert_eq!(
            ecs_check(
                vec![
                    intent("r1", Some(10)),
                    view("arn:theirs"),
                    update("r1", "ok")
                ],
                &[("arn:theirs", Some(0))]
            ),
            []
        );
    }

    #[test]
    fn an_answer_with_a_hook_id_other_than_the_waiting_one_is_found() {
        let answer = |hook: &str, waiting: Option<&str>| Event::HookAnswerSent {
            replica: "r1".into(),
            release: "web".into(),
            deployment: "arn:ours".into(),
            hook_id: hook.into(),
            waiting: waiting.map(str::to_string),
        };
        assert_eq!(ecs_check(vec![answer("h2", Some("h2"))], &[]), []);
        // The hook was answered or expired meanwhile: AWS refuses it, nothing else waits.
        assert_eq!(ecs_check(vec![answer("h1", None)], &[]), []);
        assert_eq!(
            ecs_check(vec![answer("h1", Some("h2"))], &[]),
            [ViolationKind::StaleHookAnswer]
        );
    }
}
