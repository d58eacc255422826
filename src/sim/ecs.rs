//! Simulated ECS: `CODE_DEPLOY` services with their task sets, and task definition revisions.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::ports::{
    AwsError, AwsErrorKind, ContainerDefinition, CreateTaskSetRequest, Ecs, HookAction,
    LaunchSettings, LoadBalancerBinding, Service, ServiceDeployment, ServiceRevision,
    StabilityStatus, TaskDefinition, TaskSet, TaskSetStatus, UpdateServiceRequest,
};

use super::SimAws;
use super::world::{Scope, SimService, SimTaskSet, World};
use crate::model::names;

const SERVICE: &str = "ecs";

/// AWS's limit on names per `DescribeServices` call.
pub const DESCRIBE_SERVICES_LIMIT: usize = 10;

impl SimTaskSet {
    fn view(&self, desired_count: u32) -> TaskSet {
        let computed = self.computed_desired(desired_count);
        TaskSet {
            id: self.id.clone(),
            arn: self.arn.clone(),
            status: self.status,
            task_definition: self.task_definition.clone(),
            external_id: self.external_id.clone(),
            started_by: self.started_by.clone(),
            scale_percent: self.scale_percent,
            computed_desired_count: computed,
            pending_count: self.pending_count(computed),
            running_count: self.running_count,
            stability: if self.is_steady(computed) {
                StabilityStatus::SteadyState
            } else {
                StabilityStatus::Stabilizing
            },
            target_group_arns: vec![self.target_group_arn.clone()],
            load_balancers: vec![LoadBalancerBinding {
                target_group_arn: self.target_group_arn.clone(),
                container_name: self.container_name.clone(),
                container_port: self.container_port,
            }],
            launch: LaunchSettings {
                launch_type: self.launch_type.clone(),
                capacity_provider_strategy: self.settings.capacity_provider_strategy.clone(),
                platform_version: self.settings.platform_version.clone(),
                network_configuration: self.settings.network_configuration.clone(),
            },
        }
    }
}

impl SimService {
    /// The service's task sets as `DescribeServices` shows them.
    pub fn task_set_views(&self) -> impl Iterator<Item = TaskSet> + '_ {
        self.task_sets.iter().map(|t| t.view(self.desired_count))
    }

    pub fn primary(&self) -> Option<&SimTaskSet> {
        self.task_sets
            .iter()
            .find(|t| t.status == TaskSetStatus::Primary)
    }

    pub fn task_set(&self, id: &str) -> Option<&SimTaskSet> {
        self.task_sets.iter().find(|t| t.id == id)
    }

    pub fn task_set_mut(&mut self, id: &str) -> Option<&mut SimTaskSet> {
        self.task_sets.iter_mut().find(|t| t.id == id)
    }

    pub fn remove_task_set(&mut self, id: &str) {
        self.task_sets.retain(|t| t.id != id);
    }

    /// The service as `DescribeServices` shows it: the service-level task definition and
    /// launch settings are the primary task set's.
    pub fn view(&self) -> Service {
        let primary = self.primary();
        let settings = primary.map_or(&self.base_settings, |p| &p.settings);
        Service {
            cluster: self.cluster.clone(),
            name: self.name.clone(),
            arn: self.arn.clone(),
            status: "ACTIVE".to_string(),
            deployment_controller: self.deployment_controller,
            task_definition: primary.map(|p| p.task_definition.clone()),
            desired_count: self.desired_count,
            task_sets: self.task_set_views().collect(),
            load_balancers: vec![self.binding.clone()],
            network_configuration: settings.network_configuration.clone(),
            capacity_provider_strategy: settings.capacity_provider_strategy.clone(),
            platform_version: settings.platform_version.clone(),
            current_service_deployment: None,
            ecs_deployment: None,
        }
    }
}

impl World {
    /// Registers the next revision of `family`.
    pub fn register_revision(
        &mut self,
        family: &str,
        containers: Vec<ContainerDefinition>,
        other_fields_digest: &str,
        tags: BTreeMap<String, String>,
    ) -> TaskDefinition {
        let revisions = self.task_definitions.entry(family.to_string()).or_default();
        let revision = u32::try_from(revisions.len() + 1).expect("fewer than 2^32 revisions");
        let definition = TaskDefinition {
            arn: self.scope.task_definition_arn(family, revision),
            family: family.to_string(),
            revision,
            status: "ACTIVE".to_string(),
            containers,
            other_fields_digest: other_fields_digest.to_string(),
            tags,
        };
        revisions.push(definition.clone());
        definition
    }

    /// Looks a task definition up by family (latest ACTIVE revision), `family:revision` or
    /// full ARN (which must be exactly the registered one).
    pub fn find_task_definition(&self, key: &str) -> Option<&TaskDefinition> {
        if key.starts_with("arn:") {
            let (_, tail) = key.split_once(":task-definition/")?;
            let found = self.find_task_definition(tail)?;
            return (found.arn == key && tail.contains(':')).then_some(found);
        }
        match key.split_once(':') {
            Some((family, revision)) => {
                let revision: usize = revision.parse().ok()?;
                self.task_definitions
                    .get(family)?
                    .get(revision.checked_sub(1)?)
            }
            None => self
                .task_definitions
                .get(key)?
                .iter()
                .rev()
                .find(|t| t.status == "ACTIVE"),
        }
    }

    pub fn service_mut(&mut self, cluster: &str, name: &str) -> Option<&mut SimService> {
        self.services
            .get_mut(&(cluster.to_string(), name.to_string()))
    }

    pub fn service(&self, cluster: &str, name: &str) -> Option<&SimService> {
        self.services.get(&(cluster.to_string(), name.to_string()))
    }
}

fn error(operation: &'static str, kind: AwsErrorKind, code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message).with_code(code)
}

/// The name of the cluster a request names, as ECS reads it: its name, or its ARN
/// (`arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`). `None` for the ARN of a cluster in another
/// account or region (not this account's cluster); an ARN that names no cluster is refused.
pub(crate) fn requested_cluster<'a>(
    scope: &Scope,
    operation: &'static str,
    reference: &'a str,
) -> Result<Option<&'a str>, AwsError> {
    if !reference.starts_with("arn:") {
        return Ok(Some(reference));
    }
    let name = names::cluster_name(reference).map_err(|e| {
        error(
            operation,
            AwsErrorKind::InvalidRequest,
            "InvalidParameterException",
            format!("Invalid identifier: {}", e.problem),
        )
    })?;
    let arn = names::Arn::parse(reference).expect("a valid cluster ARN is an ARN");
    Ok((arn.account == scope.account && arn.region == scope.region).then_some(name))
}

#[async_trait]
impl Ecs for SimAws {
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        const OP: &str = "DescribeServices";
        self.call(SERVICE, OP, |world, _| {
            if names.len() > DESCRIBE_SERVICES_LIMIT {
                return Err(error(
                    OP,
                    AwsErrorKind::InvalidRequest,
                    "InvalidParameterException",
                    format!(
                        "services can contain at most {DESCRIBE_SERVICES_LIMIT} items, got {}",
                        names.len()
                    ),
                ));
            }
            let cluster = requested_cluster(&world.scope, OP, cluster)?.unwrap_or_default();
            if !world.has_cluster(cluster) {
                return Err(error(
                    OP,
                    AwsErrorKind::NotFound,
                    "ClusterNotFoundException",
                    "Cluster not found.".to_string(),
                ));
            }
            Ok(names
                .iter()
                .filter_map(|name| world.service_view(cluster, name))
                .collect())
        })
        .await
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError> {
        const OP: &str = "DescribeTaskDefinition";
        self.call(SERVICE, OP, |world, _| {
            world
                .find_task_definition(task_definition)
                .cloned()
                .ok_or_else(|| {
                    error(
                        OP,
                        AwsErrorKind::NotFound,
                        "ClientException",
                        "Unable to describe task definition.".to_string(),
                    )
                })
        })
        .await
    }

    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListTaskDefinitions";
        self.call(SERVICE, OP, |world, _| {
            Ok(world
                .task_definitions
                .get(family)
                .map(|revisions| {
                    revisions
                        .iter()
                        .rev()
                        .filter(|t| t.status == "ACTIVE")
                        .take(limit)
                        .map(|t| t.arn.clone())
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }

    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        self.sim_update_service(request).await
    }

    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        self.sim_list_service_deployments(cluster, service, since)
            .await
    }

    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        self.sim_describe_service_deployments(arns).await
    }

    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        self.sim_describe_service_revisions(arns).await
    }

    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        self.sim_continue_service_deployment(deployment_arn, hook_id, action)
            .await
    }

    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        self.sim_stop_service_deployment(deployment_arn).await
    }

    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        self.call(SERVICE, "CreateTaskSet", |world, now| {
            world.create_task_set(request, now)
        })
        .await
    }

    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        self.call(SERVICE, "UpdateTaskSet", |world, now| {
            world.update_task_set_scale(cluster, service, task_set_arn, scale_percent, now)
        })
        .await
    }

    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        self.call(SERVICE, "UpdateServicePrimaryTaskSet", |world, _| {
            world.update_service_primary_task_set(cluster, service, task_set_arn)
        })
        .await
    }

    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        self.call(SERVICE, "DeleteTaskSet", |world, now| {
            world.delete_task_set(cluster, service, task_set_arn, force, now)
        })
        .await
    }

    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError> {
        const OP: &str = "RegisterTaskDefinition";
        self.call(SERVICE, OP, |world, _| {
            let (stored, copy, all_tags) = registration(world, OP, base, containers, tags)?;
            Ok(
                world.register_revision(
                    &stored.family,
                    copy,
                    &stored.other_fields_digest,
                    all_tags,
                ),
            )
        })
        .await
    }

    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        // Like the adapter, it reads the base (and only reads: nothing is registered).
        const OP: &str = "DescribeTaskDefinition";
        self.call(SERVICE, OP, |world, _| {
            let (stored, copy, all_tags) = registration(world, OP, base, containers, tags)?;
            Ok(registration_json(&stored.family, &copy, &all_tags))
        })
        .await
    }
}

/// A registration's parts: the stored base, the copy's containers, and its tags.
type CopyParts = (
    TaskDefinition,
    Vec<ContainerDefinition>,
    BTreeMap<String, String>,
);

/// What registering a copy of `base` with `containers` and `tags` makes: the stored base,
/// the copy's containers, and its tags (the base's, with the given ones over them). Refused
/// as AWS refuses it: a base that does not exist, a container it does not define, an empty
/// image.
fn registration(
    world: &World,
    operation: &'static str,
    base: &TaskDefinition,
    containers: &[ContainerDefinition],
    tags: &BTreeMap<String, String>,
) -> Result<CopyParts, AwsError> {
    // Copy the stored record, not the caller's struct: the real adapter re-reads the
    // base, and the digests stand for fields the port does not model.
    let stored = world
        .find_task_definition(&base.arn)
        .cloned()
        .ok_or_else(|| {
            error(
                operation,
                AwsErrorKind::NotFound,
                "ClientException",
                format!("Unable to describe the base task definition {}.", base.arn),
            )
        })?;
    let mut copy = stored.containers.clone();
    for change in containers {
        let Some(target) = copy.iter_mut().find(|c| c.name == change.name) else {
            return Err(error(
                operation,
                AwsErrorKind::InvalidRequest,
                "ClientException",
                format!(
                    "Container '{}' is not defined in task definition {}.",
                    change.name,
                    stored.short_name()
                ),
            ));
        };
        if change.image.trim().is_empty() {
            return Err(error(
                operation,
                AwsErrorKind::InvalidRequest,
                "ClientException",
                format!(
                    "Container.image should not be null or empty (container '{}').",
                    change.name
                ),
            ));
        }
        target.image = change.image.clone();
        target.environment = change.environment.clone();
    }
    // The base's tags are copied (as the adapter does), the given ones added over them.
    let mut all_tags = stored.tags.clone();
    all_tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok((stored, copy, all_tags))
}

/// A registration's input as ECS's JSON has it, for what the simulation models: the family,
/// each container's name, image, environment and ports, and the tags.
fn registration_json(
    family: &str,
    containers: &[ContainerDefinition],
    tags: &BTreeMap<String, String>,
) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| {
            let mut definition = serde_json::json!({
                "name": c.name,
                "image": c.image,
                "environment": c
                    .environment
                    .iter()
                    .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
                    .collect::<Vec<_>>(),
            });
            if !c.container_ports.is_empty() {
                definition["portMappings"] = c
                    .container_ports
                    .iter()
                    .map(|port| serde_json::json!({"containerPort": port}))
                    .collect();
            }
            definition
        })
        .collect();
    let mut input = serde_json::json!({"family": family, "containerDefinitions": containers});
    if !tags.is_empty() {
        input["tags"] = tags
            .iter()
            .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
            .collect();
    }
    input
}
