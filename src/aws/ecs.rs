//! The ECS port on the AWS SDK: services with their task sets, and task definitions.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types as sdk;
use sha2::{Digest, Sha256};

use super::error::{CodeMap, classify};
use crate::ports::{
    AwsError, AwsErrorKind, CapacityProviderItem, ContainerDefinition, CreateTaskSetRequest,
    DeploymentControllerType, Ecs, HookAction, LaunchSettings, LoadBalancerBinding,
    NetworkConfiguration, Service, ServiceDeployment, ServiceRevision, StabilityStatus,
    TaskDefinition, TaskSet, TaskSetStatus, UpdateServiceRequest,
};

const SERVICE: &str = "ecs";

/// AWS's limit on names per `DescribeServices` call.
pub const DESCRIBE_SERVICES_BATCH: usize = 10;

/// ECS answers `ClientException` for many client errors; only this wording means "no such
/// task definition".
const MISSING_TASK_DEFINITION: &str = "Unable to describe task definition";

const DESCRIBE_SERVICES_CODES: CodeMap = CodeMap {
    not_found: &["ClusterNotFoundException"],
    conflict: &[],
    invalid: &["ClientException"],
};

const TASK_DEFINITION_CODES: CodeMap = CodeMap {
    not_found: &[],
    conflict: &[],
    invalid: &["ClientException"],
};

/// ECS through the AWS SDK.
#[derive(Debug, Clone)]
pub struct EcsAdapter {
    client: Client,
}

impl EcsAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// `DescribeTaskDefinition`, optionally with its tags; a missing one is `NotFound`.
    async fn describe_raw(
        &self,
        task_definition: &str,
        with_tags: bool,
    ) -> Result<(sdk::TaskDefinition, Vec<sdk::Tag>), AwsError> {
        let operation = "DescribeTaskDefinition";
        let mut request = self
            .client
            .describe_task_definition()
            .task_definition(task_definition);
        if with_tags {
            request = request.include(sdk::TaskDefinitionField::Tags);
        }
        let output = request.send().await.map_err(|e| {
            missing_task_definition(classify(SERVICE, operation, e, TASK_DEFINITION_CODES))
        })?;
        let tags = output.tags().to_vec();
        let definition = output.task_definition.ok_or_else(|| {
            AwsError::new(
                SERVICE,
                operation,
                AwsErrorKind::Other,
                format!(
                    "DescribeTaskDefinition({task_definition}) answered without a taskDefinition"
                ),
            )
        })?;
        Ok((definition, tags))
    }
}

/// Turns ECS's "Unable to describe task definition" `ClientException` into `NotFound`.
fn missing_task_definition(mut error: AwsError) -> AwsError {
    if error.code.as_deref() == Some("ClientException")
        && error.message.contains(MISSING_TASK_DEFINITION)
    {
        error.kind = AwsErrorKind::NotFound;
    }
    error
}

#[async_trait]
impl Ecs for EcsAdapter {
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        const OP: &str = "DescribeServices";
        let mut services = Vec::with_capacity(names.len());
        // AWS refuses more than 10 names per call, so larger requests go in batches.
        for batch in names.chunks(DESCRIBE_SERVICES_BATCH) {
            let output = self
                .client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| classify(SERVICE, OP, e, DESCRIBE_SERVICES_CODES))?;
            for failure in output.failures() {
                // MISSING is the documented "no such service": absent from the result.
                if failure.reason() != Some("MISSING") {
                    tracing::warn!(
                        cluster,
                        arn = failure.arn().unwrap_or_default(),
                        reason = failure.reason().unwrap_or_default(),
                        detail = failure.detail().unwrap_or_default(),
                        "DescribeServices reported a failure other than MISSING"
                    );
                }
            }
            services.extend(output.services().iter().map(|s| map_service(cluster, s)));
        }
        Ok(services)
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError> {
        let (definition, tags) = self.describe_raw(task_definition, true).await?;
        Ok(map_task_definition(&definition, &tags))
    }

    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListTaskDefinitions";
        let mut arns = Vec::new();
        // `familyPrefix` matches every family that starts with `family`: keep exactly it.
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(sdk::TaskDefinitionStatus::Active)
            .sort(sdk::SortOrder::Desc)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, OP, e, TASK_DEFINITION_CODES))?;
            for arn in page.task_definition_arns() {
                if crate::reconcile::family_of(arn) == family {
                    arns.push(arn.clone());
                    if arns.len() >= limit {
                        return Ok(arns);
                    }
                }
            }
        }
        Ok(arns)
    }

    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        super::service_deployments::update_service(&self.client, request).await
    }

    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        super::service_deployments::list_service_deployments(&self.client, cluster, service, since)
            .await
    }

    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        super::service_deployments::describe_service_deployments(&self.client, arns).await
    }

    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        super::service_deployments::describe_service_revisions(&self.client, arns).await
    }

    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        super::service_deployments::continue_service_deployment(
            &self.client,
            deployment_arn,
            hook_id,
            action,
        )
        .await
    }

    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        super::service_deployments::stop_service_deployment(&self.client, deployment_arn).await
    }

    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        super::task_sets::create_task_set(&self.client, request)
            .await
            .map(|t| map_task_set(&t))
    }

    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        super::task_sets::update_task_set_scale(
            &self.client,
            cluster,
            service,
            task_set_arn,
            scale_percent,
        )
        .await
        .map(|t| map_task_set(&t))
    }

    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        super::task_sets::update_service_primary_task_set(
            &self.client,
            cluster,
            service,
            task_set_arn,
        )
        .await
        .map(|t| map_task_set(&t))
    }

    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        super::task_sets::delete_task_set(&self.client, cluster, service, task_set_arn, force).await
    }

    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        extra_tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError> {
        const OP: &str = "RegisterTaskDefinition";
        // Re-read the base rather than trusting the caller's struct: the port models only a
        // few fields, and the copy must carry every one of them (and the tags).
        let (definition, mut tags) = self.describe_raw(&base.arn, true).await?;
        tags.retain(|t| !t.key().is_some_and(|k| extra_tags.contains_key(k)));
        tags.extend(
            extra_tags
                .iter()
                .map(|(key, value)| sdk::Tag::builder().key(key).value(value).build()),
        );
        let request = copy_registration(
            self.client.register_task_definition(),
            &definition,
            tags,
            containers,
        )
        .map_err(|message| AwsError::new(SERVICE, OP, AwsErrorKind::InvalidRequest, message))?;
        let output = request
            .send()
            .await
            .map_err(|e| classify(SERVICE, OP, e, TASK_DEFINITION_CODES))?;
        let registered_tags = output.tags().to_vec();
        let registered = output.task_definition().ok_or_else(|| {
            AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "RegisterTaskDefinition answered without a taskDefinition",
            )
        })?;
        Ok(map_task_definition(registered, &registered_tags))
    }

    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        super::ecs_registration::registration_input(&self.client, base, containers, tags).await
    }
}

// ----- RegisterTaskDefinition -----------------------------------------------------------

/// Fills a `RegisterTaskDefinition` request with every registrable field of `base`, its
/// user tags, and each container of `containers` (by name) taking its image and environment
/// from there. A container that `base` does not define is an error.
///
/// Every member of `RegisterTaskDefinitionInput` is set here; a unit test fails when the SDK
/// grows a member this function does not know about.
// Inference accelerators are deprecated, but a base that still has them is copied as it is:
// dropping them would silently change the task, and AWS decides whether it still accepts them.
#[allow(deprecated)]
pub(crate) fn copy_registration(
    request: RegisterTaskDefinitionFluentBuilder,
    base: &sdk::TaskDefinition,
    tags: Vec<sdk::Tag>,
    containers: &[ContainerDefinition],
) -> Result<RegisterTaskDefinitionFluentBuilder, String> {
    let mut definitions = base.container_definitions().to_vec();
    for change in containers {
        let Some(target) = definitions
            .iter_mut()
            .find(|c| c.name() == Some(change.name.as_str()))
        else {
            let known: Vec<&str> = definitions.iter().filter_map(|c| c.name()).collect();
            return Err(format!(
                "container '{}' is not defined in task definition {} (it has: {})",
                change.name,
                base.task_definition_arn().unwrap_or_default(),
                known.join(", ")
            ));
        };
        target.image = Some(change.image.clone());
        // BTreeMap iteration is name order: the same environment always registers the same.
        target.environment = Some(
            change
                .environment
                .iter()
                .map(|(name, value)| sdk::KeyValuePair::builder().name(name).value(value).build())
                .collect(),
        );
    }
    // Keys starting with `aws:` are reserved for AWS (CloudFormation puts some there) and
    // cannot be set by a caller; copying them would fail the whole registration.
    let tags: Vec<sdk::Tag> = tags
        .into_iter()
        .filter(|t| {
            !t.key()
                .is_some_and(|k| k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")))
        })
        .collect();
    Ok(request
        .set_family(base.family.clone())
        .set_task_role_arn(base.task_role_arn.clone())
        .set_execution_role_arn(base.execution_role_arn.clone())
        .set_network_mode(base.network_mode.clone())
        .set_container_definitions(Some(definitions))
        .set_volumes(base.volumes.clone())
        .set_placement_constraints(base.placement_constraints.clone())
        .set_requires_compatibilities(base.requires_compatibilities.clone())
        .set_cpu(base.cpu.clone())
        .set_memory(base.memory.clone())
        .set_tags((!tags.is_empty()).then_some(tags))
        .set_pid_mode(base.pid_mode.clone())
        .set_ipc_mode(base.ipc_mode.clone())
        .set_proxy_configuration(base.proxy_configuration.clone())
        .set_inference_accelerators(base.inference_accelerators.clone())
        .set_ephemeral_storage(base.ephemeral_storage.clone())
        .set_runtime_platform(base.runtime_platform.clone())
        .set_enable_fault_injection(base.enable_fault_injection))
}

// ----- mapping -----------------------------------------------------------------------

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The resource name at the end of an ECS ARN (`...:cluster/NAME`), or the input.
fn name_from_arn(arn: &str) -> &str {
    arn.rsplit_once('/').map_or(arn, |(_, name)| name)
}

fn map_controller(service: &sdk::Service) -> DeploymentControllerType {
    match service.deployment_controller().map(|d| d.r#type()) {
        // ECS reports no controller for services created without one: the ECS default.
        None | Some(sdk::DeploymentControllerType::Ecs) => DeploymentControllerType::Ecs,
        Some(sdk::DeploymentControllerType::CodeDeploy) => DeploymentControllerType::CodeDeploy,
        Some(sdk::DeploymentControllerType::External) => DeploymentControllerType::External,
        Some(other) => {
            // A newer controller type: certainly not CODE_DEPLOY, so the controller refuses it.
            tracing::warn!(
                controller = other.as_str(),
                "unknown ECS deployment controller type"
            );
            DeploymentControllerType::External
        }
    }
}

fn map_task_set_status(status: Option<&str>) -> TaskSetStatus {
    match status {
        Some("PRIMARY") => TaskSetStatus::Primary,
        Some("DRAINING") => TaskSetStatus::Draining,
        Some("ACTIVE") => TaskSetStatus::Active,
        other => {
            // Never PRIMARY by accident: an unknown status does not serve production.
            tracing::warn!(
                status = other.unwrap_or_default(),
                "unknown ECS task set status"
            );
            TaskSetStatus::Active
        }
    }
}

/// A load balancer entry with a target group; entries without one (Classic Load Balancers)
/// take no part in blue/green or task-set releases.
fn map_binding(lb: &sdk::LoadBalancer) -> Option<LoadBalancerBinding> {
    Some(LoadBalancerBinding {
        target_group_arn: lb.target_group_arn()?.to_string(),
        container_name: lb.container_name()?.to_string(),
        container_port: u16::try_from(lb.container_port()?).ok()?,
    })
}

pub(crate) fn map_task_set(task_set: &sdk::TaskSet) -> TaskSet {
    TaskSet {
        id: task_set.id().unwrap_or_default().to_string(),
        arn: task_set.task_set_arn().unwrap_or_default().to_string(),
        status: map_task_set_status(task_set.status()),
        task_definition: task_set.task_definition().unwrap_or_default().to_string(),
        external_id: task_set.external_id().map(str::to_string),
        started_by: task_set.started_by().map(str::to_string),
        // The only unit is PERCENT; a task set without a scale runs at full size.
        scale_percent: task_set.scale().map_or(100.0, |s| s.value()),
        computed_desired_count: count(task_set.computed_desired_count()),
        pending_count: count(task_set.pending_count()),
        running_count: count(task_set.running_count()),
        // Only an explicit STEADY_STATE counts as steady.
        stability: match task_set.stability_status() {
            Some(sdk::StabilityStatus::SteadyState) => StabilityStatus::SteadyState,
            _ => StabilityStatus::Stabilizing,
        },
        target_group_arns: task_set
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_string))
            .collect(),
        load_balancers: task_set
            .load_balancers()
            .iter()
            .filter_map(map_binding)
            .collect(),
        launch: LaunchSettings {
            launch_type: task_set.launch_type().map(|l| l.as_str().to_string()),
            capacity_provider_strategy: map_strategy(task_set.capacity_provider_strategy()),
            platform_version: task_set.platform_version().map(str::to_string),
            network_configuration: task_set.network_configuration().and_then(map_network),
        },
    }
}

fn map_network(config: &sdk::NetworkConfiguration) -> Option<NetworkConfiguration> {
    let vpc = config.awsvpc_configuration()?;
    Some(NetworkConfiguration {
        subnets: vpc.subnets().to_vec(),
        security_groups: vpc.security_groups().to_vec(),
        assign_public_ip: vpc.assign_public_ip() == Some(&sdk::AssignPublicIp::Enabled),
    })
}

fn map_strategy(items: &[sdk::CapacityProviderStrategyItem]) -> Vec<CapacityProviderItem> {
    items
        .iter()
        .map(|item| CapacityProviderItem {
            capacity_provider: item.capacity_provider().to_string(),
            base: count(item.base()),
            weight: count(item.weight()),
        })
        .collect()
}

fn map_service(cluster: &str, service: &sdk::Service) -> Service {
    let task_sets: Vec<TaskSet> = service.task_sets().iter().map(map_task_set).collect();
    let primary = service
        .task_sets()
        .iter()
        .find(|t| t.status() == Some("PRIMARY"));
    // What runs is the primary task set's launch settings; the service-level ones are what
    // the service was created with. Prefer the running ones, or an AppSpec built from this
    // view would silently change the service.
    let network_configuration = primary
        .and_then(|p| p.network_configuration())
        .or(service.network_configuration())
        .and_then(map_network);
    let strategy = match primary.map(|p| p.capacity_provider_strategy()) {
        Some(items) if !items.is_empty() => items,
        _ => service.capacity_provider_strategy(),
    };
    let platform_version = primary
        .and_then(|p| p.platform_version())
        .or(service.platform_version())
        .map(str::to_string);
    Service {
        // The name, as CodeDeploy's target ids use it, even when the caller passed an ARN.
        cluster: name_from_arn(service.cluster_arn().unwrap_or(cluster)).to_string(),
        name: service.service_name().unwrap_or_default().to_string(),
        arn: service.service_arn().unwrap_or_default().to_string(),
        status: service.status().unwrap_or_default().to_string(),
        deployment_controller: map_controller(service),
        task_definition: service.task_definition().map(str::to_string),
        desired_count: count(service.desired_count()),
        task_sets,
        load_balancers: service
            .load_balancers()
            .iter()
            .filter_map(map_binding)
            .collect(),
        network_configuration,
        capacity_provider_strategy: map_strategy(strategy),
        platform_version,
        current_service_deployment: service.current_service_deployment().map(str::to_string),
        ecs_deployment: super::service_deployments::map_ecs_deployment(service),
    }
}

fn map_container(container: &sdk::ContainerDefinition) -> ContainerDefinition {
    ContainerDefinition {
        name: container.name().unwrap_or_default().to_string(),
        image: container.image().unwrap_or_default().to_string(),
        environment: container
            .environment()
            .iter()
            .filter_map(|kv| {
                Some((
                    kv.name()?.to_string(),
                    kv.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        container_ports: container
            .port_mappings()
            .iter()
            .filter_map(|p| u16::try_from(p.container_port()?).ok())
            .collect(),
        other_fields_digest: container_digest(container),
    }
}

pub(crate) fn map_task_definition(
    definition: &sdk::TaskDefinition,
    tags: &[sdk::Tag],
) -> TaskDefinition {
    TaskDefinition {
        arn: definition
            .task_definition_arn()
            .unwrap_or_default()
            .to_string(),
        family: definition.family().unwrap_or_default().to_string(),
        revision: count(definition.revision()),
        status: definition
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        containers: definition
            .container_definitions()
            .iter()
            .map(map_container)
            .collect(),
        other_fields_digest: task_digest(definition),
        tags: tags
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
    }
}

// ----- digests -----------------------------------------------------------------------
//
// A digest is SHA-256 over the SDK value's `Debug` rendering, after taking out the fields
// the port models separately. `Debug` covers every member, including members a newer SDK
// adds, so no field is forgotten. Two things in it are not deterministic content and are
// handled here: `HashMap` members (iteration order differs per process) are taken out and
// rendered sorted, and members the SDK marks sensitive (rendered as a fixed placeholder) are
// taken out and rendered explicitly.

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The deterministic rendering behind a container's `other_fields_digest`: every member but
/// name, image and environment.
pub(crate) fn container_rendering(container: &sdk::ContainerDefinition) -> String {
    let mut rest = container.clone();
    rest.name = None;
    rest.image = None;
    rest.environment = None;
    // Redacted by the SDK's Debug: rendered here so a change of registry credentials counts.
    let repository_credentials = rest
        .repository_credentials
        .take()
        .map(|r| r.credentials_parameter);
    let docker_labels = rest.docker_labels.take().map(sorted);
    let log_options = rest
        .log_configuration
        .as_mut()
        .and_then(|l| l.options.take())
        .map(sorted);
    let firelens_options = rest
        .firelens_configuration
        .as_mut()
        .and_then(|f| f.options.take())
        .map(sorted);
    format!(
        "{rest:?}\nrepository_credentials={repository_credentials:?}\ndocker_labels={docker_labels:?}\n\
         log_configuration.options={log_options:?}\nfirelens_configuration.options={firelens_options:?}"
    )
}

/// The deterministic rendering behind a task definition's `other_fields_digest`: every
/// registrable member but the family and the container definitions (modelled separately),
/// and none of the members ECS sets itself (ARN, revision, status, registration and
/// deregistration stamps, required attributes, compatibilities).
pub(crate) fn task_rendering(definition: &sdk::TaskDefinition) -> String {
    let mut rest = definition.clone();
    rest.task_definition_arn = None;
    rest.family = None;
    rest.revision = 0;
    rest.status = None;
    rest.registered_at = None;
    rest.registered_by = None;
    rest.deregistered_at = None;
    rest.delete_requested_at = None;
    rest.requires_attributes = None;
    rest.compatibilities = None;
    rest.container_definitions = None;
    let volume_maps: Vec<_> = rest
        .volumes
        .iter_mut()
        .flatten()
        .map(|volume| {
            let docker = volume.docker_volume_configuration.as_mut();
            match docker {
                Some(docker) => (
                    docker.driver_opts.take().map(sorted),
                    docker.labels.take().map(sorted),
                ),
                None => (None, None),
            }
        })
        .collect();
    format!("{rest:?}\nvolumes.docker_volume_configuration(driver_opts, labels)={volume_maps:?}")
}

fn container_digest(container: &sdk::ContainerDefinition) -> String {
    sha256_hex(&container_rendering(container))
}

fn task_digest(definition: &sdk::TaskDefinition) -> String {
    sha256_hex(&task_rendering(definition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;

    /// What the SDK prints instead of a sensitive member.
    const REDACTED: &str = "*** Sensitive Data Redacted ***";

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A rich container; `reverse` inserts every map in the opposite order.
    fn container(reverse: bool) -> sdk::ContainerDefinition {
        let mut labels = vec![
            ("team", "payments"),
            ("tier", "web"),
            ("cost", "42"),
            ("z", "1"),
        ];
        let mut options = vec![
            ("awslogs-group", "/ecs/web"),
            ("awslogs-region", "eu-west-1"),
            ("awslogs-stream-prefix", "web"),
            ("mode", "non-blocking"),
        ];
        if reverse {
            labels.reverse();
            options.reverse();
        }
        let mut docker_labels = HashMap::new();
        for (k, v) in &labels {
            docker_labels.insert(k.to_string(), v.to_string());
        }
        let mut log_options = HashMap::new();
        for (k, v) in &options {
            log_options.insert(k.to_string(), v.to_string());
        }
        sdk::ContainerDefinition::builder()
            .name("web")
            .image("web:1")
            .memory(512)
            .port_mappings(sdk::PortMapping::builder().container_port(8080).build())
            .environment(sdk::KeyValuePair::builder().name("A").value("1").build())
            .secrets(
                sdk::Secret::builder()
                    .name("DB_PASSWORD")
                    .value_from("arn:aws:secretsmanager:eu-west-1:1:secret:db")
                    .build()
                    .unwrap(),
            )
            .repository_credentials(
                sdk::RepositoryCredentials::builder()
                    .credentials_parameter("arn:aws:secretsmanager:eu-west-1:1:secret:registry")
                    .build()
                    .unwrap(),
            )
            .set_docker_labels(Some(docker_labels))
            .log_configuration(
                sdk::LogConfiguration::builder()
                    .log_driver(sdk::LogDriver::Awslogs)
                    .set_options(Some(log_options.clone()))
                    .build()
                    .unwrap(),
            )
            .firelens_configuration(
                sdk::FirelensConfiguration::builder()
                    .r#type(sdk::FirelensConfigurationType::Fluentbit)
                    .set_options(Some(map(&[
                        ("enable-ecs-log-metadata", "true"),
                        ("config-file-type", "file"),
                    ])))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn task(reverse: bool) -> sdk::TaskDefinition {
        let mut opts = vec![
            ("type", "nfs"),
            ("device", ":/export"),
            ("o", "addr=10.0.0.1"),
        ];
        let mut labels = vec![("x", "1"), ("y", "2"), ("w", "3")];
        if reverse {
            opts.reverse();
            labels.reverse();
        }
        let mut driver_opts = HashMap::new();
        for (k, v) in &opts {
            driver_opts.insert(k.to_string(), v.to_string());
        }
        let mut volume_labels = HashMap::new();
        for (k, v) in &labels {
            volume_labels.insert(k.to_string(), v.to_string());
        }
        sdk::TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:1:task-definition/web:3")
            .family("web")
            .revision(3)
            .cpu("256")
            .memory("512")
            .network_mode(sdk::NetworkMode::Awsvpc)
            .task_role_arn("arn:aws:iam::1:role/task")
            .container_definitions(container(reverse))
            .volumes(
                sdk::Volume::builder()
                    .name("data")
                    .docker_volume_configuration(
                        sdk::DockerVolumeConfiguration::builder()
                            .driver("local")
                            .set_driver_opts(Some(driver_opts))
                            .set_labels(Some(volume_labels))
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn equal_definitions_with_maps_inserted_in_different_orders_have_equal_digests() {
        // Each HashMap gets its own random hash keys, so rebuilding the maps a few times
        // exercises different iteration orders within one process too.
        for _ in 0..20 {
            assert_eq!(
                container_digest(&container(false)),
                container_digest(&container(true))
            );
            assert_eq!(task_digest(&task(false)), task_digest(&task(true)));
        }
        let a = map_task_definition(&task(false), &[]);
        let b = map_task_definition(&task(true), &[]);
        assert_eq!(a, b);
        assert!(a.has_same_content(&b));
    }

    #[test]
    fn changing_any_other_field_changes_the_digest() {
        let base = container(false);
        let digest = container_digest(&base);

        let mut changed = base.clone();
        changed.cpu = 128;
        assert_ne!(container_digest(&changed), digest, "cpu");

        let mut changed = base.clone();
        changed
            .log_configuration
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .insert("awslogs-group".into(), "/ecs/other".into());
        assert_ne!(container_digest(&changed), digest, "log option");

        let mut changed = base.clone();
        changed.secrets.as_mut().unwrap()[0].value_from = "arn:other".into();
        assert_ne!(container_digest(&changed), digest, "secret");

        let mut changed = base.clone();
        changed
            .docker_labels
            .as_mut()
            .unwrap()
            .insert("team".into(), "search".into());
        assert_ne!(container_digest(&changed), digest, "docker label");

        let mut changed = base.clone();
        changed
            .repository_credentials
            .as_mut()
            .unwrap()
            .credentials_parameter = "arn:other".into();
        assert_ne!(
            container_digest(&changed),
            digest,
            "repository credentials (redacted by Debug)"
        );

        let mut changed = base.clone();
        changed
            .firelens_configuration
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .remove("config-file-type");
        assert_ne!(container_digest(&changed), digest, "firelens option");

        // The modelled fields do not count.
        let mut changed = base.clone();
        changed.image = Some("web:2".into());
        changed.environment = None;
        assert_eq!(
            container_digest(&changed),
            digest,
            "image and environment are modelled"
        );

        let task_base = task(false);
        let digest = task_digest(&task_base);
        let mut changed = task_base.clone();
        changed.cpu = Some("512".into());
        assert_ne!(task_digest(&changed), digest, "task cpu");
        let mut changed = task_base.clone();
        changed.volumes.as_mut().unwrap()[0]
            .docker_volume_configuration
            .as_mut()
            .unwrap()
            .driver_opts
            .as_mut()
            .unwrap()
            .insert("o".into(), "addr=10.0.0.2".into());
        assert_ne!(task_digest(&changed), digest, "volume driver option");
        let mut changed = task_base.clone();
        changed.execution_role_arn = Some("arn:aws:iam::1:role/exec".into());
        assert_ne!(task_digest(&changed), digest, "execution role");

        // Containers, ARN, revision and registration stamps do not count at task level.
        let mut changed = task_base.clone();
        changed.task_definition_arn = Some("arn:aws:ecs:eu-west-1:1:task-definition/web:4".into());
        changed.revision = 4;
        changed.container_definitions.as_mut().unwrap()[0].image = Some("web:9".into());
        changed.registered_at = Some(aws_smithy_types::DateTime::from_secs(1_700_000_000));
        assert_eq!(task_digest(&changed), digest);
    }

    #[test]
    fn renderings_hide_nothing_behind_the_sdk_redaction() {
        // The container's Debug always prints the marker for its two sensitive members
        // (repository credentials and environment, both rendered or modelled separately).
        // Any further marker is a newly sensitive member the digest would not see.
        assert_eq!(
            container_rendering(&container(false))
                .matches(REDACTED)
                .count(),
            2
        );
        assert_eq!(task_rendering(&task(false)).matches(REDACTED).count(), 0);
    }

    fn test_client() -> Client {
        Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
                .region(aws_sdk_ecs::config::Region::new("us-east-1"))
                .build(),
        )
    }

    /// The top-level `(member, value)` pairs of a struct's Debug rendering.
    fn top_level_members(rendering: &str) -> Vec<(String, String)> {
        let open = rendering.find('{').expect("a struct");
        let inner = &rendering[open + 1..rendering.len() - 1];
        let mut members = Vec::new();
        let (mut depth, mut start, mut quoted) = (0i32, 0, false);
        for (i, c) in inner.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '{' | '[' | '(' if !quoted => depth += 1,
                '}' | ']' | ')' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    members.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        members.push(&inner[start..]);
        members
            .into_iter()
            .map(|m| {
                let (name, value) = m.split_once(':').expect("name: value");
                (name.trim().to_string(), value.trim().to_string())
            })
            .collect()
    }

    /// The member names of `RegisterTaskDefinitionInput`, from its Debug rendering.
    fn register_input_members() -> Vec<String> {
        let empty = format!(
            "{:?}",
            RegisterTaskDefinitionInput::builder().build().unwrap()
        );
        top_level_members(&empty)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    // The base carries a (deprecated) inference accelerator to prove it is copied too.
    #[allow(deprecated)]
    fn the_copy_sets_every_member_register_task_definition_accepts() {
        let copied = [
            "family",
            "task_role_arn",
            "execution_role_arn",
            "network_mode",
            "container_definitions",
            "volumes",
            "placement_constraints",
            "requires_compatibilities",
            "cpu",
            "memory",
            "tags",
            "pid_mode",
            "ipc_mode",
            "proxy_configuration",
            "inference_accelerators",
            "ephemeral_storage",
            "runtime_platform",
            "enable_fault_injection",
        ];
        assert_eq!(
            register_input_members(),
            copied,
            "RegisterTaskDefinitionInput changed: copy the new member in copy_registration"
        );

        let base = sdk::TaskDefinition::builder()
            .family("web")
            .task_role_arn("arn:aws:iam::1:role/task")
            .execution_role_arn("arn:aws:iam::1:role/exec")
            .network_mode(sdk::NetworkMode::Awsvpc)
            .container_definitions(container(false))
            .volumes(sdk::Volume::builder().name("data").build())
            .placement_constraints(
                sdk::TaskDefinitionPlacementConstraint::builder()
                    .r#type(sdk::TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:ecs.os-type == linux")
                    .build(),
            )
            .requires_compatibilities(sdk::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .pid_mode(sdk::PidMode::Task)
            .ipc_mode(sdk::IpcMode::None)
            .proxy_configuration(
                sdk::ProxyConfiguration::builder()
                    .container_name("envoy")
                    .build()
                    .unwrap(),
            )
            .inference_accelerators(
                sdk::InferenceAccelerator::builder()
                    .device_name("a")
                    .device_type("eia2.medium")
                    .build()
                    .unwrap(),
            )
            .ephemeral_storage(sdk::EphemeralStorage::builder().size_in_gib(30).build())
            .runtime_platform(
                sdk::RuntimePlatform::builder()
                    .cpu_architecture(sdk::CpuArchitecture::Arm64)
                    .build(),
            )
            .enable_fault_injection(true)
            .build();
        let tags = vec![
            sdk::Tag::builder().key("team").value("payments").build(),
            sdk::Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("s")
                .build(),
        ];
        let change = ContainerDefinition {
            name: "web".into(),
            image: "web:2".into(),
            environment: [
                ("B".to_string(), "2".to_string()),
                ("A".to_string(), "1".to_string()),
            ]
            .into_iter()
            .collect(),
            container_ports: vec![8080],
            other_fields_digest: String::new(),
        };
        let input = copy_registration(
            test_client().register_task_definition(),
            &base,
            tags,
            &[change],
        )
        .unwrap()
        .as_input()
        .clone()
        .build()
        .unwrap();
        let rendering = format!("{input:?}");
        for (member, value) in top_level_members(&rendering) {
            assert_ne!(value, "None", "{member} not copied: {rendering}");
        }
        let web = &input.container_definitions()[0];
        assert_eq!(web.image(), Some("web:2"));
        let env: Vec<_> = web
            .environment()
            .iter()
            .map(|kv| kv.name().unwrap())
            .collect();
        assert_eq!(env, ["A", "B"], "environment written name-sorted");
        assert_eq!(
            web.secrets(),
            base.container_definitions()[0].secrets(),
            "everything else kept"
        );
        let tag_keys: Vec<_> = input.tags().iter().filter_map(|t| t.key()).collect();
        assert_eq!(tag_keys, ["team"], "aws: tags are reserved and not copied");
    }

    #[test]
    fn a_container_the_base_lacks_is_refused() {
        let base = task(false);
        let change = ContainerDefinition {
            name: "worker".into(),
            image: "worker:1".into(),
            environment: BTreeMap::new(),
            container_ports: vec![],
            other_fields_digest: String::new(),
        };
        let error = copy_registration(
            test_client().register_task_definition(),
            &base,
            vec![],
            &[change],
        )
        .unwrap_err();
        assert!(
            error.contains("'worker'") && error.contains("web"),
            "{error}"
        );
    }

    #[test]
    fn services_prefer_the_primary_task_sets_launch_settings() {
        let service = sdk::Service::builder()
            .cluster_arn("arn:aws:ecs:eu-west-1:1:cluster/prod")
            .service_name("web")
            .service_arn("arn:aws:ecs:eu-west-1:1:service/prod/web")
            .status("ACTIVE")
            .desired_count(2)
            .deployment_controller(
                sdk::DeploymentController::builder()
                    .r#type(sdk::DeploymentControllerType::CodeDeploy)
                    .build()
                    .unwrap(),
            )
            .platform_version("1.3.0")
            .task_sets(
                sdk::TaskSet::builder()
                    .id("ecs-svc/1")
                    .status("PRIMARY")
                    .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/web:3")
                    .platform_version("1.4.0")
                    .capacity_provider_strategy(
                        sdk::CapacityProviderStrategyItem::builder()
                            .capacity_provider("FARGATE_SPOT")
                            .weight(1)
                            .base(1)
                            .build()
                            .unwrap(),
                    )
                    .network_configuration(
                        sdk::NetworkConfiguration::builder()
                            .awsvpc_configuration(
                                sdk::AwsVpcConfiguration::builder()
                                    .subnets("subnet-1")
                                    .security_groups("sg-1")
                                    .assign_public_ip(sdk::AssignPublicIp::Enabled)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .scale(
                        sdk::Scale::builder()
                            .value(50.0)
                            .unit(sdk::ScaleUnit::Percent)
                            .build(),
                    )
                    .stability_status(sdk::StabilityStatus::Stabilizing)
                    .build(),
            )
            .build();
        let mapped = map_service("prod", &service);
        assert_eq!(mapped.cluster, "prod");
        assert_eq!(
            mapped.deployment_controller,
            DeploymentControllerType::CodeDeploy
        );
        assert_eq!(mapped.platform_version.as_deref(), Some("1.4.0"));
        assert_eq!(
            mapped.capacity_provider_strategy[0].capacity_provider,
            "FARGATE_SPOT"
        );
        assert_eq!(
            mapped.network_configuration,
            Some(NetworkConfiguration {
                subnets: vec!["subnet-1".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: true,
            })
        );
        assert_eq!(mapped.task_sets[0].status, TaskSetStatus::Primary);
        assert_eq!(mapped.task_sets[0].scale_percent, 50.0);
        assert_eq!(mapped.task_sets[0].stability, StabilityStatus::Stabilizing);
    }

    #[test]
    fn a_missing_task_definition_is_not_found_and_other_client_errors_are_invalid() {
        let missing = AwsError::new(
            SERVICE,
            "DescribeTaskDefinition",
            AwsErrorKind::InvalidRequest,
            "Unable to describe task definition.",
        )
        .with_code("ClientException");
        assert_eq!(
            missing_task_definition(missing).kind,
            AwsErrorKind::NotFound
        );
        let other = AwsError::new(
            SERVICE,
            "DescribeTaskDefinition",
            AwsErrorKind::InvalidRequest,
            "Invalid revision number.",
        )
        .with_code("ClientException");
        assert_eq!(
            missing_task_definition(other).kind,
            AwsErrorKind::InvalidRequest
        );
    }
}
