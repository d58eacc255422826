//! Simulated CodeDeploy: deployment groups and the ECS blue/green deployment lifecycle,
//! progressed lazily over virtual time by a pure step function (`World::advance`).

use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::ports::{
    AwsError, AwsErrorKind, CodeDeploy, CreateDeploymentRequest, Deployment, DeploymentCreator,
    DeploymentErrorInfo, DeploymentFilter, DeploymentGroup, DeploymentStatus, DeploymentTarget,
    LifecycleEvent, LifecycleEventStatus, ReadyAction, RollbackInfo, TargetTaskSet, TaskSetStatus,
    WeightedTargetGroup, target_group_name_from_arn,
};

use super::SimAws;
use super::appspec::{self, AppSpec};
use super::world::{SimDeployment, SimGroup, SimService, SimTaskSet, Stage, TrafficRouting, World};

// Step durations of the lifecycle, in virtual time.

/// From `CreateDeployment` until the deployment is `InProgress` and `BeforeInstall` starts.
pub const CREATED_TO_IN_PROGRESS: Duration = Duration::from_secs(1);
/// Duration of each hook-only lifecycle event (`BeforeInstall`, `AfterInstall`,
/// `AfterAllowTestTraffic`, `BeforeAllowTraffic`, `AfterAllowTraffic`).
pub const HOOK_EVENT: Duration = Duration::from_secs(1);
/// Duration of `AllowTestTraffic` (the test listener moves to the replacement at its start).
pub const ALLOW_TEST_TRAFFIC: Duration = Duration::from_secs(2);
/// During `Install`, one more replacement task is running every this long.
pub const TASK_START_INTERVAL: Duration = Duration::from_secs(5);
/// How long `Install` waits for replacement tasks that never become healthy before failing.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a rollback deployment stays active.
pub const ROLLBACK_DURATION: Duration = Duration::from_secs(5);
/// How long CodeDeploy takes, by default, to stop a deployment after StopDeployment.
pub const STOP_DELAY: Duration = Duration::from_secs(10);

/// The lifecycle events of an ECS deployment, in order.
pub const LIFECYCLE_EVENTS: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];
const BEFORE_INSTALL: usize = 0;
const INSTALL: usize = 1;
const AFTER_INSTALL: usize = 2;
const ALLOW_TEST_TRAFFIC_EVENT: usize = 3;
const AFTER_ALLOW_TEST_TRAFFIC: usize = 4;
const BEFORE_ALLOW_TRAFFIC: usize = 5;
const ALLOW_TRAFFIC: usize = 6;
const AFTER_ALLOW_TRAFFIC: usize = 7;

const SERVICE: &str = "codedeploy";

impl TrafficRouting {
    /// The routing of one of the five predefined ECS configs.
    pub fn predefined(name: &str) -> Option<Self> {
        Some(match name {
            "CodeDeployDefault.ECSAllAtOnce" => Self::AllAtOnce,
            "CodeDeployDefault.ECSCanary10Percent5Minutes" => Self::Canary {
                percent: 10,
                interval_minutes: 5,
            },
            "CodeDeployDefault.ECSCanary10Percent15Minutes" => Self::Canary {
                percent: 10,
                interval_minutes: 15,
            },
            "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" => Self::Linear {
                percent: 10,
                interval_minutes: 1,
            },
            "CodeDeployDefault.ECSLinear10PercentEvery3Minutes" => Self::Linear {
                percent: 10,
                interval_minutes: 3,
            },
            _ => return None,
        })
    }

    fn first_percent(self) -> u32 {
        match self {
            Self::AllAtOnce => 100,
            Self::Canary { percent, .. } | Self::Linear { percent, .. } => percent.min(100),
        }
    }

    fn next_percent(self, current: u32) -> u32 {
        match self {
            Self::AllAtOnce | Self::Canary { .. } => 100,
            Self::Linear { percent, .. } => (current + percent.max(1)).min(100),
        }
    }

    fn interval(self) -> SignedDuration {
        match self {
            Self::AllAtOnce => SignedDuration::ZERO,
            Self::Canary {
                interval_minutes, ..
            }
            | Self::Linear {
                interval_minutes, ..
            } => SignedDuration::from_mins(i64::from(interval_minutes)),
        }
    }
}

impl SimDeployment {
    pub fn view(&self) -> Deployment {
        Deployment {
            id: self.id.clone(),
            application: self.application.clone(),
            deployment_group: self.group.clone(),
            status: self.status.clone(),
            description: self.description.clone(),
            creator: self.creator.clone(),
            deployment_config: self.config_name.clone(),
            create_time: Some(self.create_time),
            complete_time: self.complete_time,
            error: self.error.clone(),
            rollback: self.rollback.clone(),
        }
    }

    fn start_event(&mut self, index: usize, at: Timestamp) {
        let event = &mut self.events[index];
        event.status = LifecycleEventStatus::InProgress;
        event.start_time = Some(at);
    }

    fn end_event(&mut self, index: usize, status: LifecycleEventStatus, at: Timestamp) {
        let event = &mut self.events[index];
        event.status = status;
        event.end_time = Some(at);
    }

    /// Ends the deployment: the running event fails, events not reached are skipped.
    fn finish(&mut self, status: DeploymentStatus, at: Timestamp) {
        let failed = status != DeploymentStatus::Succeeded;
        for event in &mut self.events {
            match event.status {
                LifecycleEventStatus::InProgress => {
                    event.status = if failed {
                        LifecycleEventStatus::Failed
                    } else {
                        LifecycleEventStatus::Succeeded
                    };
                    event.end_time = Some(at);
                }
                LifecycleEventStatus::Pending if failed => {
                    event.status = LifecycleEventStatus::Skipped;
                }
                _ => {}
            }
        }
        self.status = status;
        self.complete_time = Some(at);
        self.stage = Stage::Done;
        self.next_at = None;
    }
}

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at + SignedDuration::try_from(duration).expect("step durations fit a SignedDuration")
}

fn pending_events(names: &[&str]) -> Vec<LifecycleEvent> {
    names
        .iter()
        .map(|name| LifecycleEvent {
            name: (*name).to_string(),
            status: LifecycleEventStatus::Pending,
            start_time: None,
            end_time: None,
        })
        .collect()
}

impl World {
    /// Moves every in-flight deployment through its state machine up to `now`, one step at a
    /// time in time order across all deployments (ties in creation order), so interactions
    /// such as a rollback created by a timeout are seen in the order they happened. The tasks
    /// of task sets created with `CreateTaskSet` (never part of a CodeDeploy deployment) are
    /// brought up to `now` first.
    pub fn advance(&mut self, now: Timestamp) {
        self.advance_task_sets(now);
        while let Some((at, index)) = self
            .deployments
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.next_at.filter(|t| *t <= now).map(|t| (t, i)))
            .min()
        {
            self.step(index, at);
        }
        // ECS's own deployments (service_deployments.rs) never touch CodeDeploy's.
        self.advance_service_deployments(now);
    }

    /// Performs the transition of deployment `i` that is due at `at`.
    fn step(&mut self, i: usize, at: Timestamp) {
        match self.deployments[i].stage {
            Stage::Created => {
                let d = &mut self.deployments[i];
                d.status = DeploymentStatus::InProgress;
                self.begin_event(i, BEFORE_INSTALL, HOOK_EVENT, at);
            }
            Stage::Event(index) => {
                self.deployments[i].end_event(index, LifecycleEventStatus::Succeeded, at);
                match index {
                    BEFORE_INSTALL => self.begin_install(i, at),
                    AFTER_INSTALL => {
                        self.route_test_traffic_to_replacement(i);
                        self.begin_event(i, ALLOW_TEST_TRAFFIC_EVENT, ALLOW_TEST_TRAFFIC, at);
                    }
                    ALLOW_TEST_TRAFFIC_EVENT => {
                        self.begin_event(i, AFTER_ALLOW_TEST_TRAFFIC, HOOK_EVENT, at)
                    }
                    AFTER_ALLOW_TEST_TRAFFIC => {
                        self.begin_event(i, BEFORE_ALLOW_TRAFFIC, HOOK_EVENT, at)
                    }
                    BEFORE_ALLOW_TRAFFIC => match self.deployments[i].ready_action {
                        ReadyAction::StopDeployment { wait_minutes } => {
                            let d = &mut self.deployments[i];
                            d.status = DeploymentStatus::Ready;
                            d.stage = Stage::Ready;
                            d.next_at =
                                Some(at + SignedDuration::from_mins(i64::from(wait_minutes)));
                        }
                        ReadyAction::ContinueDeployment => self.begin_allow_traffic(i, at),
                    },
                    AFTER_ALLOW_TRAFFIC => {
                        let d = &mut self.deployments[i];
                        d.stage = Stage::TerminationWait;
                        d.next_at = Some(
                            at + SignedDuration::from_mins(i64::from(d.termination_wait_minutes)),
                        );
                    }
                    other => unreachable!("event {other} is not a timed event"),
                }
            }
            Stage::Installing => self.install_tick(i, at),
            Stage::Ready => self.stop(
                i,
                at,
                DeploymentErrorInfo {
                    code: "TIMEOUT".to_string(),
                    message: "The deployment timed out while waiting for ContinueDeployment \
                              before rerouting traffic."
                        .to_string(),
                },
                true,
            ),
            Stage::Shifting => {
                let d = &self.deployments[i];
                let percent = d.routing.next_percent(d.traffic_percent);
                self.shift_to(i, percent, at);
            }
            Stage::TerminationWait => {
                if let Some(original) = self.deployments[i].original_task_set.clone() {
                    self.with_service(i, |svc| svc.remove_task_set(&original));
                }
                self.deployments[i].finish(DeploymentStatus::Succeeded, at);
            }
            Stage::Stopping { rollback } => self.stop(
                i,
                at,
                DeploymentErrorInfo {
                    code: "MANUAL_STOP".to_string(),
                    message: "Deployment was stopped by user".to_string(),
                },
                rollback,
            ),
            Stage::RollingBack => {
                if let Some(replacement) = self.deployments[i].replacement_task_set.clone() {
                    self.with_service(i, |svc| svc.remove_task_set(&replacement));
                }
                self.deployments[i].finish(DeploymentStatus::Succeeded, at);
            }
            Stage::Done => self.deployments[i].next_at = None,
        }
    }

    fn begin_event(&mut self, i: usize, index: usize, duration: Duration, at: Timestamp) {
        let d = &mut self.deployments[i];
        d.start_event(index, at);
        d.stage = Stage::Event(index);
        d.next_at = Some(after(at, duration));
    }

    fn with_service<R>(&mut self, i: usize, f: impl FnOnce(&mut SimService) -> R) -> Option<R> {
        let d = &self.deployments[i];
        let (cluster, service) = (d.cluster.clone(), d.service.clone());
        self.service_mut(&cluster, &service).map(f)
    }

    /// `Install`: creates the replacement task set on the target group the primary does not
    /// use. Leftovers of an earlier deployment stopped without rollback are removed first.
    fn begin_install(&mut self, i: usize, at: Timestamp) {
        self.deployments[i].start_event(INSTALL, at);
        let Some(spec) = self.deployments[i].appspec.clone() else {
            return self.fail(i, at, "ECS_UPDATE_ERROR", "The deployment has no AppSpec.");
        };
        let never_healthy = self
            .find_task_definition(&spec.task_definition)
            .is_some_and(|td| {
                td.containers.iter().any(|c| {
                    self.failing_images
                        .iter()
                        .any(|needle| c.image.contains(needle.as_str()))
                })
            });
        let id = self.next_task_set_id();
        let deployment_id = self.deployments[i].id.clone();
        let scope = self.scope.clone();
        let created = self.with_service(i, |svc| {
            svc.task_sets.retain(|t| t.status == TaskSetStatus::Primary);
            let primary = svc.primary()?;
            let original = primary.id.clone();
            let target_group = svc
                .target_group_arns
                .iter()
                .find(|tg| **tg != primary.target_group_arn)?
                .clone();
            svc.task_sets.push(SimTaskSet {
                arn: scope.task_set_arn(&svc.cluster, &svc.name, &id),
                id: id.clone(),
                status: TaskSetStatus::Active,
                task_definition: spec.task_definition.clone(),
                external_id: Some(deployment_id),
                started_by: Some("CODE_DEPLOY".to_string()),
                running_count: 0,
                target_group_arn: target_group,
                container_name: spec.container_name.clone(),
                container_port: spec.container_port,
                traffic_weight: 0.0,
                settings: spec.settings.clone(),
                launch_type: None,
                scale_percent: 100.0,
                tasks: Vec::new(),
                never_healthy: false,
                drained_at: None,
            });
            Some((original, svc.desired_count))
        });
        let Some(Some((original, desired))) = created else {
            return self.fail(
                i,
                at,
                "ECS_UPDATE_ERROR",
                "The ECS service has no primary task set to replace.",
            );
        };
        let d = &mut self.deployments[i];
        d.original_task_set = Some(original);
        d.replacement_task_set = Some(id);
        d.stage = Stage::Installing;
        d.next_at = Some(if never_healthy {
            after(at, INSTALL_TIMEOUT)
        } else if desired == 0 {
            at
        } else {
            after(at, TASK_START_INTERVAL)
        });
        d.install_never_healthy = never_healthy;
    }

    fn install_tick(&mut self, i: usize, at: Timestamp) {
        if self.deployments[i].install_never_healthy {
            if let Some(replacement) = self.deployments[i].replacement_task_set.clone() {
                self.with_service(i, |svc| svc.remove_task_set(&replacement));
            }
            return self.fail(
                i,
                at,
                "ECS_UPDATE_ERROR",
                "The ECS service cannot reach a steady state: the tasks of the replacement \
                 task set did not become healthy before the Install timeout.",
            );
        }
        let replacement = self.deployments[i].replacement_task_set.clone();
        let progress = self.with_service(i, |svc| {
            let desired = svc.desired_count;
            let ts = svc.task_set_mut(replacement.as_deref()?)?;
            if ts.running_count < desired {
                ts.running_count += 1;
            }
            Some(ts.running_count >= desired)
        });
        match progress.flatten() {
            Some(true) => {
                self.deployments[i].end_event(INSTALL, LifecycleEventStatus::Succeeded, at);
                self.begin_event(i, AFTER_INSTALL, HOOK_EVENT, at);
            }
            Some(false) => self.deployments[i].next_at = Some(after(at, TASK_START_INTERVAL)),
            None => self.fail(
                i,
                at,
                "ECS_UPDATE_ERROR",
                "The replacement task set disappeared during Install.",
            ),
        }
    }

    fn fail(&mut self, i: usize, at: Timestamp, code: &str, message: &str) {
        let d = &mut self.deployments[i];
        d.error = Some(DeploymentErrorInfo {
            code: code.to_string(),
            message: message.to_string(),
        });
        d.finish(DeploymentStatus::Failed, at);
    }

    /// `AllowTestTraffic`: the test listener forwards to the replacement's target group.
    fn route_test_traffic_to_replacement(&mut self, i: usize) {
        let replacement = self.deployments[i].replacement_task_set.clone();
        let wiring = self.with_service(i, |svc| {
            let tg = svc
                .task_set(replacement.as_deref()?)?
                .target_group_arn
                .clone();
            Some((svc.test_listener.clone()?, tg))
        });
        if let Some(Some((listener, tg))) = wiring {
            self.set_forward(&listener, vec![(tg, 1)]);
        }
    }

    /// `AllowTraffic` starts: the first step of the config's routing.
    fn begin_allow_traffic(&mut self, i: usize, at: Timestamp) {
        let d = &mut self.deployments[i];
        d.status = DeploymentStatus::InProgress;
        d.start_event(ALLOW_TRAFFIC, at);
        let percent = d.routing.first_percent();
        self.shift_to(i, percent, at);
    }

    /// Sets production traffic to `percent` on the replacement; at 100% the replacement
    /// becomes PRIMARY and `AfterAllowTraffic` starts.
    fn shift_to(&mut self, i: usize, percent: u32, at: Timestamp) {
        let d = &self.deployments[i];
        let (original, replacement) = (
            d.original_task_set.clone().unwrap_or_default(),
            d.replacement_task_set.clone().unwrap_or_default(),
        );
        let done = percent >= 100;
        let listener = self.with_service(i, |svc| {
            let mut forward = Vec::new();
            for tg in svc.target_group_arns.clone() {
                let weight = svc
                    .task_sets
                    .iter_mut()
                    .find(|t| t.target_group_arn == tg)
                    .map_or(0, |ts| {
                        let weight = if ts.id == replacement {
                            percent
                        } else if ts.id == original {
                            100 - percent
                        } else {
                            0
                        };
                        ts.traffic_weight = f64::from(weight);
                        if done {
                            ts.status = if ts.id == replacement {
                                TaskSetStatus::Primary
                            } else {
                                TaskSetStatus::Active
                            };
                        }
                        weight
                    });
                forward.push((tg, weight));
            }
            (svc.production_listener.clone(), forward)
        });
        if let Some((listener, forward)) = listener {
            self.set_forward(&listener, forward);
        }
        let d = &mut self.deployments[i];
        d.traffic_percent = percent;
        if done {
            d.end_event(ALLOW_TRAFFIC, LifecycleEventStatus::Succeeded, at);
            self.begin_event(i, AFTER_ALLOW_TRAFFIC, HOOK_EVENT, at);
        } else {
            d.stage = Stage::Shifting;
            d.next_at = Some(at + d.routing.interval());
        }
    }

    /// Rewrites a listener's forward action (weights as given; one entry = single target).
    pub fn set_forward(&mut self, listener_arn: &str, forward: Vec<(String, u32)>) {
        if let Some(listener) = self.listeners.get_mut(listener_arn) {
            listener.forward = forward
                .into_iter()
                .map(|(target_group_arn, weight)| WeightedTargetGroup {
                    target_group_arn,
                    weight,
                })
                .collect();
        }
    }

    /// Stops deployment `i`; with `rollback`, and a replacement to roll back from, starts a
    /// rollback deployment that puts all traffic back on the original task set.
    fn stop(&mut self, i: usize, at: Timestamp, error: DeploymentErrorInfo, rollback: bool) {
        let d = &mut self.deployments[i];
        d.error = Some(error);
        d.finish(DeploymentStatus::Stopped, at);
        let d = &self.deployments[i];
        let is_rollback = d.creator == DeploymentCreator::CodeDeployRollback;
        let has_replacement = d.replacement_task_set.as_ref().is_some_and(|id| {
            self.service(&d.cluster, &d.service)
                .is_some_and(|svc| svc.task_set(id).is_some())
        });
        if rollback && has_replacement && !is_rollback {
            self.start_rollback(i, at);
        }
    }

    fn start_rollback(&mut self, i: usize, at: Timestamp) {
        let id = self.next_deployment_id();
        let original = &mut self.deployments[i];
        let message = format!(
            "Deployment {} was rolled back by deployment {id}.",
            original.id
        );
        original.rollback = Some(RollbackInfo {
            rollback_deployment_id: Some(id.clone()),
            rollback_triggering_deployment_id: None,
            rollback_message: Some(message.clone()),
        });
        let mut events = pending_events(&["AllowTraffic"]);
        events[0].status = LifecycleEventStatus::InProgress;
        events[0].start_time = Some(at);
        let rollback = SimDeployment {
            id: id.clone(),
            status: DeploymentStatus::InProgress,
            description: None,
            creator: DeploymentCreator::CodeDeployRollback,
            create_time: at,
            complete_time: None,
            error: None,
            rollback: Some(RollbackInfo {
                rollback_deployment_id: None,
                rollback_triggering_deployment_id: Some(original.id.clone()),
                rollback_message: Some(message),
            }),
            appspec_content: None,
            appspec: None,
            events,
            stage: Stage::RollingBack,
            next_at: Some(after(at, ROLLBACK_DURATION)),
            ..original.clone()
        };
        let (original_ts, replacement_ts) = (
            rollback.original_task_set.clone().unwrap_or_default(),
            rollback.replacement_task_set.clone().unwrap_or_default(),
        );
        self.deployments.push(rollback);

        // Reroute at once: all production and test traffic back to the original.
        let listeners = self.with_service(i, |svc| {
            for ts in &mut svc.task_sets {
                if ts.id == original_ts {
                    ts.status = TaskSetStatus::Primary;
                    ts.traffic_weight = 100.0;
                } else if ts.id == replacement_ts {
                    ts.status = TaskSetStatus::Active;
                    ts.traffic_weight = 0.0;
                }
            }
            let original_tg = svc.task_set(&original_ts)?.target_group_arn.clone();
            let forward = svc
                .target_group_arns
                .iter()
                .map(|tg| (tg.clone(), if *tg == original_tg { 100 } else { 0 }))
                .collect::<Vec<_>>();
            Some((
                svc.production_listener.clone(),
                forward,
                svc.test_listener.clone(),
                original_tg,
            ))
        });
        if let Some(Some((production, forward, test, original_tg))) = listeners {
            self.set_forward(&production, forward);
            if let Some(test) = test {
                self.set_forward(&test, vec![(original_tg, 1)]);
            }
        }
    }

    fn group(&self, application: &str, group: &str) -> Result<&SimGroup, (&'static str, String)> {
        let groups = self.applications.get(application).ok_or((
            "ApplicationDoesNotExistException",
            format!("No application found for name: {application}"),
        ))?;
        groups.get(group).ok_or((
            "DeploymentGroupDoesNotExistException",
            format!("No Deployment Group found for name: {group}"),
        ))
    }

    fn deployment_index(&self, id: &str) -> Option<usize> {
        self.deployments.iter().position(|d| d.id == id)
    }
}

fn error(operation: &'static str, kind: AwsErrorKind, code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message).with_code(code)
}

fn not_found(operation: &'static str, (code, message): (&'static str, String)) -> AwsError {
    error(operation, AwsErrorKind::NotFound, code, message)
}

fn no_such_deployment(operation: &'static str, id: &str) -> AwsError {
    error(
        operation,
        AwsErrorKind::NotFound,
        "DeploymentDoesNotExistException",
        format!("The deployment {id} could not be found."),
    )
}

fn invalid_revision(operation: &'static str, message: String) -> AwsError {
    error(
        operation,
        AwsErrorKind::InvalidRequest,
        "InvalidRevisionException",
        message,
    )
}

/// Checks the AppSpec against the registered task definitions.
fn validate_appspec(world: &World, content: &str) -> Result<AppSpec, String> {
    let spec = appspec::parse(content)?;
    let td = world
        .find_task_definition(&spec.task_definition)
        .filter(|td| td.arn == spec.task_definition)
        .ok_or_else(|| {
            format!(
                "The task definition {} in the AppSpec is not registered.",
                spec.task_definition
            )
        })?;
    let container = td.container(&spec.container_name).ok_or_else(|| {
        format!(
            "The container '{}' named in the AppSpec's LoadBalancerInfo does not exist in \
             task definition {}.",
            spec.container_name,
            td.short_name()
        )
    })?;
    if !container.container_ports.contains(&spec.container_port) {
        return Err(format!(
            "The container '{}' of task definition {} has no port mapping for ContainerPort {}.",
            spec.container_name,
            td.short_name(),
            spec.container_port
        ));
    }
    Ok(spec)
}

/// `GetDeploymentTarget`'s status for a deployment status.
fn target_status(status: &DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Created | DeploymentStatus::Queued => "Pending",
        DeploymentStatus::Ready => "Ready",
        DeploymentStatus::Succeeded => "Succeeded",
        DeploymentStatus::Failed | DeploymentStatus::Stopped => "Failed",
        DeploymentStatus::InProgress | DeploymentStatus::Baking | DeploymentStatus::Other(_) => {
            "InProgress"
        }
    }
}

fn task_set_status(status: TaskSetStatus) -> &'static str {
    match status {
        TaskSetStatus::Primary => "PRIMARY",
        TaskSetStatus::Active => "ACTIVE",
        TaskSetStatus::Draining => "DRAINING",
    }
}

#[async_trait]
impl CodeDeploy for SimAws {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError> {
        const OP: &str = "GetDeploymentGroup";
        self.call(SERVICE, OP, |world, _| {
            let g = world
                .group(application, group)
                .map_err(|e| not_found(OP, e))?;
            let svc = world.service(&g.cluster, &g.service);
            Ok(DeploymentGroup {
                application: g.application.clone(),
                name: g.name.clone(),
                ecs_service: Some((g.cluster.clone(), g.service.clone())),
                deployment_config: g.deployment_config.clone(),
                ready_action: g.ready_action,
                termination_wait_minutes: g.termination_wait_minutes,
                target_group_names: svc.map_or_else(Vec::new, |s| {
                    s.target_group_arns
                        .iter()
                        .map(|arn| target_group_name_from_arn(arn).to_string())
                        .collect()
                }),
                production_listener_arns: svc
                    .map(|s| vec![s.production_listener.clone()])
                    .unwrap_or_default(),
                test_listener_arns: svc
                    .and_then(|s| s.test_listener.clone())
                    .into_iter()
                    .collect(),
            })
        })
        .await
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListDeployments";
        self.call(SERVICE, OP, |world, _| {
            world
                .group(application, group)
                .map_err(|e| not_found(OP, e))?;
            // Creation order is time order, so newest first is the reverse.
            Ok(world
                .deployments
                .iter()
                .rev()
                .filter(|d| d.application == application && d.group == group)
                .filter(|d| match &filter {
                    DeploymentFilter::Active => !d.status.is_terminal(),
                    DeploymentFilter::CreatedSince(t) => d.create_time >= *t,
                })
                .map(|d| d.id.clone())
                .collect())
        })
        .await
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError> {
        const OP: &str = "GetDeployment";
        self.call(SERVICE, OP, |world, _| {
            world
                .deployment_index(deployment_id)
                .map(|i| world.deployments[i].view())
                .ok_or_else(|| no_such_deployment(OP, deployment_id))
        })
        .await
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError> {
        const OP: &str = "GetDeploymentTarget";
        self.call(SERVICE, OP, |world, _| {
            let i = world
                .deployment_index(deployment_id)
                .ok_or_else(|| no_such_deployment(OP, deployment_id))?;
            let d = &world.deployments[i];
            // CodeDeploy's target id holds the cluster's name: an ARN in its place is no target.
            if target_id != format!("{}:{}", d.cluster, d.service) {
                return Err(error(
                    OP,
                    AwsErrorKind::NotFound,
                    "DeploymentTargetDoesNotExistException",
                    format!("The target {target_id} of deployment {deployment_id} does not exist."),
                ));
            }
            let svc = world.service(&d.cluster, &d.service);
            let labelled = [
                (d.original_task_set.as_deref(), "Blue"),
                (d.replacement_task_set.as_deref(), "Green"),
            ];
            let task_sets = labelled
                .into_iter()
                .filter_map(|(id, label)| {
                    let svc = svc?;
                    let ts = svc.task_set(id?)?;
                    Some(TargetTaskSet {
                        identifier: ts.id.clone(),
                        status: task_set_status(ts.status).to_string(),
                        traffic_weight: ts.traffic_weight,
                        desired_count: svc.desired_count,
                        pending_count: svc.desired_count.saturating_sub(ts.running_count),
                        running_count: ts.running_count,
                        target_group_name: Some(
                            target_group_name_from_arn(&ts.target_group_arn).to_string(),
                        ),
                        label: Some(label.to_string()),
                    })
                })
                .collect();
            Ok(DeploymentTarget {
                status: target_status(&d.status).to_string(),
                lifecycle_events: d.events.clone(),
                task_sets,
            })
        })
        .await
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateDeployment";
        self.call(SERVICE, OP, |world, now| {
            let group = world
                .group(&request.application, &request.deployment_group)
                .map_err(|e| not_found(OP, e))?
                .clone();
            let config_name = request
                .deployment_config
                .clone()
                .unwrap_or_else(|| group.deployment_config.clone());
            let routing = TrafficRouting::predefined(&config_name)
                .or_else(|| world.custom_configs.get(&config_name).copied())
                .ok_or_else(|| {
                    error(
                        OP,
                        AwsErrorKind::InvalidRequest,
                        "DeploymentConfigDoesNotExistException",
                        format!("No deployment configuration found for name: {config_name}"),
                    )
                })?;
            let spec = validate_appspec(world, &request.appspec_content)
                .map_err(|message| invalid_revision(OP, message))?;
            if let Some(active) = world.deployments.iter().find(|d| {
                d.application == group.application
                    && d.group == group.name
                    && !d.status.is_terminal()
            }) {
                return Err(error(
                    OP,
                    AwsErrorKind::DeploymentLimitExceeded {
                        active_deployment_id: Some(active.id.clone()),
                    },
                    "DeploymentLimitExceededException",
                    format!(
                        "The Deployment Group '{}' already has an active Deployment '{}'",
                        group.name, active.id
                    ),
                ));
            }
            let id = world.next_deployment_id();
            world.deployments.push(SimDeployment {
                id: id.clone(),
                application: group.application.clone(),
                group: group.name.clone(),
                cluster: group.cluster.clone(),
                service: group.service.clone(),
                status: DeploymentStatus::Created,
                description: Some(request.description.clone()),
                creator: DeploymentCreator::User,
                config_name,
                routing,
                ready_action: group.ready_action,
                termination_wait_minutes: group.termination_wait_minutes,
                create_time: now,
                complete_time: None,
                error: None,
                rollback: None,
                appspec_content: Some(request.appspec_content.clone()),
                appspec: Some(spec),
                events: pending_events(&LIFECYCLE_EVENTS),
                original_task_set: None,
                replacement_task_set: None,
                install_never_healthy: false,
                traffic_percent: 0,
                stage: Stage::Created,
                next_at: Some(after(now, CREATED_TO_IN_PROGRESS)),
                stop_calls: 0,
                continue_calls: 0,
            });
            Ok(id)
        })
        .await
    }

    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError> {
        const OP: &str = "ContinueDeployment";
        self.call(SERVICE, OP, |world, now| {
            let i = world
                .deployment_index(deployment_id)
                .ok_or_else(|| no_such_deployment(OP, deployment_id))?;
            if world.deployments[i].status != DeploymentStatus::Ready
                || matches!(world.deployments[i].stage, Stage::Stopping { .. })
            {
                return Err(error(
                    OP,
                    AwsErrorKind::Conflict,
                    "DeploymentIsNotInReadyStateException",
                    format!(
                        "The deployment {deployment_id} is not in the Ready state (it is {}).",
                        world.deployments[i].status.as_str()
                    ),
                ));
            }
            world.deployments[i].continue_calls += 1;
            world.begin_allow_traffic(i, now);
            Ok(())
        })
        .await
    }

    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError> {
        const OP: &str = "StopDeployment";
        self.call(SERVICE, OP, |world, now| {
            let i = world
                .deployment_index(deployment_id)
                .ok_or_else(|| no_such_deployment(OP, deployment_id))?;
            if world.deployments[i].status.is_terminal() {
                return Err(error(
                    OP,
                    AwsErrorKind::Conflict,
                    "DeploymentAlreadyCompletedException",
                    format!("The deployment {deployment_id} has already completed."),
                ));
            }
            // CodeDeploy stops asynchronously: the hook in progress finishes first, and the
            // deployment keeps its status until then. Without rollback, task sets and
            // listeners stay exactly as they are (as in AWS).
            let delay = world.stop_delay;
            let d = &mut world.deployments[i];
            d.stop_calls += 1;
            if !matches!(d.stage, Stage::Stopping { .. }) {
                d.stage = Stage::Stopping { rollback };
                d.next_at = Some(after(now, delay));
            }
            if delay.is_zero() {
                world.advance(now);
            }
            Ok(())
        })
        .await
    }
}
