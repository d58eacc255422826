//! Simulated ECS task sets of `EXTERNAL` services: `CreateTaskSet`, `UpdateTaskSet`,
//! `UpdateServicePrimaryTaskSet` and `DeleteTaskSet`, strict where ECS is (only on `EXTERNAL`
//! services, at most 5 task sets per service, scale 0..=100 percent of the desired count
//! rounded up, one target group that a load balancer already forwards to, a container and
//! port the task definition has, `clientToken` idempotency, no delete of a task set that still
//! has a scale unless forced).
//!
//! A task set's tasks start one every [`TASK_START`], register with its target group as
//! `initial` targets, and pass its health checks [`HEALTH_CHECK`] later (or fail them, for an
//! image given to `SimAws::fail_install_for_image`); the task set is `STABILIZING` until every
//! task it should run runs and is healthy. Tasks that stop (scale down, delete) leave their
//! target `draining` for [`DEREGISTRATION_DELAY`]; a deleted task set is `DRAINING` as long.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::ports::{
    AwsError, AwsErrorKind, CreateTaskSetRequest, DeploymentControllerType, TargetHealthState,
    TaskSet, TaskSetStatus,
};

use super::appspec::LaunchSettings;
use super::ecs::requested_cluster;
use super::world::{CreatedTaskSet, SimService, SimTarget, SimTask, SimTaskSet, World};

const SERVICE: &str = "ecs";

/// Time between two tasks of a task set starting (the first starts this long after the call).
pub const TASK_START: Duration = Duration::from_secs(5);
/// Time from a task registering with its target group until its health checks decide.
pub const HEALTH_CHECK: Duration = Duration::from_secs(10);
/// How long a deregistered target stays `draining` (the target group's deregistration delay).
pub const DEREGISTRATION_DELAY: Duration = Duration::from_secs(30);
/// ECS's limit of task sets (deployments) per service.
pub const TASK_SETS_PER_SERVICE: usize = 5;
/// ECS's limit on the length of `clientToken`.
pub const CLIENT_TOKEN_MAX_LEN: usize = 36;

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at + SignedDuration::try_from(duration).expect("a simulated delay fits a SignedDuration")
}

fn error(operation: &'static str, kind: AwsErrorKind, code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message).with_code(code)
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    error(
        operation,
        AwsErrorKind::InvalidRequest,
        "InvalidParameterException",
        message,
    )
}

fn check_scale(operation: &'static str, scale_percent: f64) -> Result<(), AwsError> {
    if (0.0..=100.0).contains(&scale_percent) {
        Ok(())
    } else {
        Err(invalid(
            operation,
            format!("scale.value must be between 0 and 100 (PERCENT), got {scale_percent}"),
        ))
    }
}

impl SimTaskSet {
    /// How many tasks the task set runs: its scale of the service's desired count, rounded
    /// up as ECS rounds (none once deleted).
    pub fn computed_desired(&self, desired_count: u32) -> u32 {
        if self.drained_at.is_some() {
            return 0;
        }
        let exact = f64::from(desired_count) * self.scale_percent / 100.0;
        // A product that is a whole number must not round up through floating-point noise.
        let nearest = exact.round();
        let count = if (exact - nearest).abs() < 1e-9 {
            nearest
        } else {
            exact.ceil()
        };
        count as u32
    }

    pub fn pending_count(&self, computed: u32) -> u32 {
        computed.saturating_sub(self.running_count)
    }

    /// `STEADY_STATE`: every task it should run runs, and (for task sets created with
    /// `CreateTaskSet`) every one of them passed its target group's health checks.
    pub fn is_steady(&self, computed: u32) -> bool {
        // A task set whose tasks fail their health checks never is.
        let healthy = !self.never_healthy || self.tasks.is_empty();
        healthy && self.running_count >= computed && self.tasks.iter().all(|t| t.checked)
    }
}

fn earliest(next: &mut Option<Timestamp>, at: Timestamp) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

impl World {
    /// Brings the tasks of task sets created with `CreateTaskSet` up to `now`: tasks start and
    /// register, health checks decide, draining targets and deleted task sets go. Does nothing
    /// before the next pending event.
    pub fn advance_task_sets(&mut self, now: Timestamp) {
        if self.next_task_event.is_none_or(|at| at > now) {
            return;
        }
        let mut next = None;
        let World {
            services,
            target_groups,
            ..
        } = self;
        for svc in services.values_mut() {
            if svc.deployment_controller != DeploymentControllerType::External {
                continue;
            }
            svc.task_sets
                .retain(|ts| ts.drained_at.is_none_or(|at| at > now));
            for ts in &mut svc.task_sets {
                if let Some(at) = ts.drained_at {
                    earliest(&mut next, at);
                }
                let (port, never_healthy) = (ts.container_port, ts.never_healthy);
                let mut group = target_groups.get_mut(&ts.target_group_arn);
                for task in &mut ts.tasks {
                    if !task.running && task.runs_at <= now {
                        task.running = true;
                        if let Some(group) = group.as_deref_mut() {
                            group.targets.push(SimTarget {
                                id: task.ip.clone(),
                                port,
                                state: TargetHealthState::Initial,
                                leaves_at: None,
                            });
                        }
                    }
                    if task.running && !task.checked && task.checked_at <= now {
                        task.checked = true;
                        if let Some(target) = group
                            .as_deref_mut()
                            .and_then(|g| g.targets.iter_mut().find(|t| t.id == task.ip))
                        {
                            target.state = if never_healthy {
                                TargetHealthState::Unhealthy
                            } else {
                                TargetHealthState::Healthy
                            };
                        }
                    }
                    if !task.running {
                        earliest(&mut next, task.runs_at);
                    } else if !task.checked {
                        earliest(&mut next, task.checked_at);
                    }
                }
                ts.running_count = ts.tasks.iter().filter(|t| t.running).count() as u32;
            }
        }
        for group in target_groups.values_mut() {
            group
                .targets
                .retain(|t| t.leaves_at.is_none_or(|at| at > now));
            for target in &group.targets {
                if let Some(at) = target.leaves_at {
                    earliest(&mut next, at);
                }
            }
        }
        self.next_task_event = next;
    }

    /// The `EXTERNAL` service a task-set call names, with ECS's errors: an unknown cluster,
    /// an unknown service, a service with another deployment controller.
    fn external_service(
        &self,
        operation: &'static str,
        cluster: &str,
        service: &str,
    ) -> Result<(String, String), AwsError> {
        let cluster = requested_cluster(&self.scope, operation, cluster)?.unwrap_or_default();
        if !self.services.keys().any(|(c, _)| c == cluster) {
            return Err(error(
                operation,
                AwsErrorKind::NotFound,
                "ClusterNotFoundException",
                "Cluster not found.".to_string(),
            ));
        }
        // ECS takes the service by name or ARN.
        let name = service.rsplit('/').next().unwrap_or(service);
        let svc = self.service(cluster, name).ok_or_else(|| {
            error(
                operation,
                AwsErrorKind::NotFound,
                "ServiceNotFoundException",
                "Service not found.".to_string(),
            )
        })?;
        if svc.deployment_controller != DeploymentControllerType::External {
            return Err(invalid(
                operation,
                format!(
                    "The service {} uses the {} deployment controller: task sets can only be \
                     managed on services that use the EXTERNAL deployment controller.",
                    svc.name,
                    svc.deployment_controller.as_str()
                ),
            ));
        }
        Ok((svc.cluster.clone(), svc.name.clone()))
    }

    /// The index of a live (not deleted) task set of a service, by ARN or id.
    fn task_set_index(
        svc: &SimService,
        operation: &'static str,
        reference: &str,
    ) -> Result<usize, AwsError> {
        svc.task_sets
            .iter()
            .position(|t| (t.arn == reference || t.id == reference) && t.drained_at.is_none())
            .ok_or_else(|| {
                error(
                    operation,
                    AwsErrorKind::NotFound,
                    "TaskSetNotFoundException",
                    format!("The specified task set {reference} does not exist."),
                )
            })
    }

    fn view_of(&self, key: &(String, String), id: &str) -> TaskSet {
        self.services[key]
            .task_set_views()
            .find(|t| t.id == id)
            .expect("the task set just handled exists")
    }

    /// Starts or stops tasks until the task set runs its computed desired count.
    fn resize_task_set(&mut self, key: &(String, String), id: &str, now: Timestamp) {
        let (computed, have) = {
            let svc = &self.services[key];
            let ts = svc.task_set(id).expect("the task set exists");
            (
                ts.computed_desired(svc.desired_count) as usize,
                ts.tasks.len(),
            )
        };
        let ips: Vec<String> = (have..computed).map(|_| self.next_ip()).collect();
        let (task_start, health_check) = self.target_timings.unwrap_or((TASK_START, HEALTH_CHECK));
        let svc = self.services.get_mut(key).expect("the service exists");
        let ts = svc.task_set_mut(id).expect("the task set exists");
        for (i, ip) in ips.into_iter().enumerate() {
            let runs_at = after(now, task_start * (i as u32 + 1));
            ts.tasks.push(SimTask {
                ip,
                runs_at,
                checked_at: after(runs_at, health_check),
                running: false,
                checked: false,
            });
        }
        let stopped = ts.tasks.split_off(computed.min(ts.tasks.len()));
        ts.running_count = ts.tasks.iter().filter(|t| t.running).count() as u32;
        let group = ts.target_group_arn.clone();
        self.deregister(&group, stopped.iter().filter(|t| t.running), now);
        self.next_task_event = Some(now);
    }

    /// The targets of stopped tasks start draining.
    fn deregister<'a>(
        &mut self,
        target_group_arn: &str,
        tasks: impl Iterator<Item = &'a SimTask>,
        now: Timestamp,
    ) {
        let Some(group) = self.target_groups.get_mut(target_group_arn) else {
            return;
        };
        for task in tasks {
            if let Some(target) = group.targets.iter_mut().find(|t| t.id == task.ip) {
                target.state = TargetHealthState::Draining;
                target.leaves_at = Some(after(now, DEREGISTRATION_DELAY));
            }
        }
    }

    pub fn create_task_set(
        &mut self,
        request: &CreateTaskSetRequest,
        now: Timestamp,
    ) -> Result<TaskSet, AwsError> {
        const OP: &str = "CreateTaskSet";
        let key = self.external_service(OP, &request.cluster, &request.service)?;
        if request.client_token.len() > CLIENT_TOKEN_MAX_LEN {
            return Err(invalid(
                OP,
                format!("clientToken can have at most {CLIENT_TOKEN_MAX_LEN} characters"),
            ));
        }
        let svc = &self.services[&key];
        if let Some(created) = svc.client_tokens.get(&request.client_token) {
            // The same token: the same task set, as it is now (or as it was created, if it
            // is gone since).
            return Ok(svc
                .task_set_views()
                .find(|t| t.id == created.id)
                .unwrap_or_else(|| created.clone()));
        }
        check_scale(OP, request.scale_percent)?;
        let task_definition = self
            .find_task_definition(&request.task_definition)
            .filter(|t| t.status == "ACTIVE")
            .ok_or_else(|| {
                error(
                    OP,
                    AwsErrorKind::InvalidRequest,
                    "ClientException",
                    "TaskDefinition not found.".to_string(),
                )
            })?
            .clone();
        let binding = &request.load_balancer;
        if !task_definition
            .container(&binding.container_name)
            .is_some_and(|c| c.container_ports.contains(&binding.container_port))
        {
            return Err(invalid(
                OP,
                format!(
                    "The container {} does not have a container port {} defined.",
                    binding.container_name, binding.container_port
                ),
            ));
        }
        if !self.target_groups.contains_key(&binding.target_group_arn) {
            return Err(invalid(
                OP,
                format!(
                    "The target group with targetGroupArn {} does not exist.",
                    binding.target_group_arn
                ),
            ));
        }
        if self.load_balancers_of(&binding.target_group_arn).is_empty() {
            return Err(invalid(
                OP,
                format!(
                    "The target group with targetGroupArn {} does not have an associated load balancer.",
                    binding.target_group_arn
                ),
            ));
        }
        let launch = &request.launch;
        if launch.launch_type.is_some() && !launch.capacity_provider_strategy.is_empty() {
            return Err(invalid(
                OP,
                "Specifying both a launch type and capacity provider strategy is not supported."
                    .to_string(),
            ));
        }
        if svc.base_settings.network_configuration.is_some()
            && launch.network_configuration.is_none()
        {
            return Err(invalid(
                OP,
                "Network Configuration must be provided when networkMode 'awsvpc' is specified."
                    .to_string(),
            ));
        }
        if svc.task_sets.len() >= TASK_SETS_PER_SERVICE {
            return Err(invalid(
                OP,
                format!(
                    "{} deployments exist on the service. Unable to create new TaskSet since \
                     this exceeds the maximum limit.",
                    svc.task_sets.len()
                ),
            ));
        }
        let never_healthy = task_definition.containers.iter().any(|c| {
            self.failing_images
                .iter()
                .any(|needle| c.image.contains(needle.as_str()))
        });
        let id = self.next_task_set_id();
        let svc = self.services.get_mut(&key).expect("the service exists");
        svc.task_sets.push(SimTaskSet {
            arn: self.scope.task_set_arn(&svc.cluster, &svc.name, &id),
            id: id.clone(),
            status: TaskSetStatus::Active,
            task_definition: task_definition.arn.clone(),
            external_id: Some(request.external_id.clone()).filter(|e| !e.is_empty()),
            started_by: None,
            running_count: 0,
            target_group_arn: binding.target_group_arn.clone(),
            container_name: binding.container_name.clone(),
            container_port: binding.container_port,
            traffic_weight: 0.0,
            settings: LaunchSettings {
                network_configuration: launch.network_configuration.clone(),
                capacity_provider_strategy: launch.capacity_provider_strategy.clone(),
                platform_version: launch.platform_version.clone(),
            },
            launch_type: launch.launch_type.clone(),
            scale_percent: request.scale_percent,
            tasks: Vec::new(),
            never_healthy,
            drained_at: None,
        });
        self.resize_task_set(&key, &id, now);
        let view = self.view_of(&key, &id);
        self.task_sets_created.push(CreatedTaskSet {
            cluster: key.0.clone(),
            service: key.1.clone(),
            arn: view.arn.clone(),
            external_id: view.external_id.clone(),
            target_group_arn: binding.target_group_arn.clone(),
            task_definition: task_definition.arn.clone(),
            created_at: now,
        });
        self.services
            .get_mut(&key)
            .expect("the service exists")
            .client_tokens
            .insert(request.client_token.clone(), view.clone());
        Ok(view)
    }

    pub fn update_task_set_scale(
        &mut self,
        cluster: &str,
        service: &str,
        task_set: &str,
        scale_percent: f64,
        now: Timestamp,
    ) -> Result<TaskSet, AwsError> {
        const OP: &str = "UpdateTaskSet";
        let key = self.external_service(OP, cluster, service)?;
        let index = Self::task_set_index(&self.services[&key], OP, task_set)?;
        check_scale(OP, scale_percent)?;
        let svc = self.services.get_mut(&key).expect("the service exists");
        let ts = &mut svc.task_sets[index];
        ts.scale_percent = scale_percent;
        let id = ts.id.clone();
        self.resize_task_set(&key, &id, now);
        Ok(self.view_of(&key, &id))
    }

    pub fn update_service_primary_task_set(
        &mut self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<TaskSet, AwsError> {
        const OP: &str = "UpdateServicePrimaryTaskSet";
        let key = self.external_service(OP, cluster, service)?;
        let index = Self::task_set_index(&self.services[&key], OP, task_set)?;
        let svc = self.services.get_mut(&key).expect("the service exists");
        for (i, ts) in svc.task_sets.iter_mut().enumerate() {
            if i == index {
                ts.status = TaskSetStatus::Primary;
            } else if ts.status == TaskSetStatus::Primary {
                ts.status = TaskSetStatus::Active;
            }
        }
        let id = svc.task_sets[index].id.clone();
        Ok(self.view_of(&key, &id))
    }

    pub fn delete_task_set(
        &mut self,
        cluster: &str,
        service: &str,
        task_set: &str,
        force: bool,
        now: Timestamp,
    ) -> Result<(), AwsError> {
        const OP: &str = "DeleteTaskSet";
        let key = self.external_service(OP, cluster, service)?;
        let index = Self::task_set_index(&self.services[&key], OP, task_set)?;
        let svc = self.services.get_mut(&key).expect("the service exists");
        let ts = &mut svc.task_sets[index];
        if ts.scale_percent > 0.0 && !force {
            return Err(error(
                OP,
                AwsErrorKind::Conflict,
                "InvalidParameterException",
                format!(
                    "The task set {} has a scale of {}%: scale it to 0 before deleting it, or \
                     force the delete.",
                    ts.id, ts.scale_percent
                ),
            ));
        }
        let stopped = std::mem::take(&mut ts.tasks);
        let had_running = stopped.iter().any(|t| t.running);
        ts.status = TaskSetStatus::Draining;
        ts.running_count = 0;
        ts.drained_at = Some(if had_running {
            after(now, DEREGISTRATION_DELAY)
        } else {
            now
        });
        let group = ts.target_group_arn.clone();
        self.deregister(&group, stopped.iter().filter(|t| t.running), now);
        self.next_task_event = Some(now);
        Ok(())
    }

    /// Sets a service's desired count (as autoscaling would) and resizes its task sets.
    pub fn set_desired_count(
        &mut self,
        cluster: &str,
        service: &str,
        desired: u32,
        now: Timestamp,
    ) {
        let key = (cluster.to_string(), service.to_string());
        let Some(svc) = self.services.get_mut(&key) else {
            return;
        };
        svc.desired_count = desired;
        if svc.deployment_controller != DeploymentControllerType::External {
            return;
        }
        let ids: Vec<String> = svc
            .task_sets
            .iter()
            .filter(|t| t.drained_at.is_none())
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            self.resize_task_set(&key, &id, now);
        }
    }
}
