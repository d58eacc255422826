//! The task-set operations of the ECS port on the AWS SDK, for services with the `EXTERNAL`
//! deployment controller: `CreateTaskSet` (with `clientToken` and `externalId`, scale in
//! PERCENT), `UpdateTaskSet`, `UpdateServicePrimaryTaskSet`, `DeleteTaskSet`.
//!
//! Each returns the SDK's task set; `ecs.rs` maps it (`map_task_set`), so that the one
//! mapping of a task set serves `DescribeServices` and these calls alike.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types as sdk;

use super::error::{CodeMap, classify};
use crate::ports::{
    AwsError, AwsErrorKind, CapacityProviderItem, CreateTaskSetRequest, NetworkConfiguration,
};

const SERVICE: &str = "ecs";

/// How the task-set operations' codes map onto kinds. A service that is not ACTIVE any more
/// (deleted) is as good as missing; a quota reached (`LimitExceededException`) conflicts with
/// the current state, it is no throttling. ECS answers `InvalidParameterException` for a
/// service without the `EXTERNAL` controller and for the limit of 5 task sets.
const TASK_SET_CODES: CodeMap = CodeMap {
    not_found: &[
        "ClusterNotFoundException",
        "ServiceNotFoundException",
        "ServiceNotActiveException",
        "TaskSetNotFoundException",
    ],
    conflict: &["LimitExceededException"],
    invalid: &[
        "ClientException",
        "InvalidParameterException",
        "UnsupportedFeatureException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
    ],
};

fn answered_without_task_set(operation: &'static str) -> AwsError {
    AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::Other,
        format!("{operation} answered without a taskSet"),
    )
}

/// ECS refuses to delete a task set that still has a scale (unless forced) with a client
/// error whose message speaks of the scale: that is the state of the task set, not a bad
/// request, and the same call succeeds once it is scaled to 0.
fn refused_while_scaled(mut error: AwsError) -> AwsError {
    let client_error = matches!(
        error.code.as_deref(),
        Some("InvalidParameterException" | "ClientException")
    );
    if client_error && error.message.to_ascii_lowercase().contains("scale") {
        error.kind = AwsErrorKind::Conflict;
    }
    error
}

fn network(config: &NetworkConfiguration) -> Result<sdk::NetworkConfiguration, String> {
    let vpc = sdk::AwsVpcConfiguration::builder()
        .set_subnets(Some(config.subnets.clone()))
        .set_security_groups(Some(config.security_groups.clone()))
        .assign_public_ip(if config.assign_public_ip {
            sdk::AssignPublicIp::Enabled
        } else {
            sdk::AssignPublicIp::Disabled
        })
        .build()
        .map_err(|e| format!("awsvpc configuration: {e}"))?;
    Ok(sdk::NetworkConfiguration::builder()
        .awsvpc_configuration(vpc)
        .build())
}

fn strategy(
    items: &[CapacityProviderItem],
) -> Result<Vec<sdk::CapacityProviderStrategyItem>, String> {
    items
        .iter()
        .map(|item| {
            sdk::CapacityProviderStrategyItem::builder()
                .capacity_provider(&item.capacity_provider)
                .base(i32::try_from(item.base).unwrap_or(i32::MAX))
                .weight(i32::try_from(item.weight).unwrap_or(i32::MAX))
                .build()
                .map_err(|e| format!("capacity provider strategy: {e}"))
        })
        .collect()
}

fn percent(value: f64) -> sdk::Scale {
    sdk::Scale::builder()
        .value(value)
        .unit(sdk::ScaleUnit::Percent)
        .build()
}

/// `CreateTaskSet`: the candidate's task definition on its target group, launched as the
/// request says (the live task set's settings), at a scale in PERCENT.
pub(crate) async fn create_task_set(
    client: &Client,
    request: &CreateTaskSetRequest,
) -> Result<sdk::TaskSet, AwsError> {
    const OP: &str = "CreateTaskSet";
    let invalid =
        |message: String| AwsError::new(SERVICE, OP, AwsErrorKind::InvalidRequest, message);
    let binding = &request.load_balancer;
    let launch = &request.launch;
    let network_configuration = launch
        .network_configuration
        .as_ref()
        .map(network)
        .transpose()
        .map_err(invalid)?;
    let capacity_provider_strategy =
        strategy(&launch.capacity_provider_strategy).map_err(invalid)?;
    let output = client
        .create_task_set()
        .cluster(&request.cluster)
        .service(&request.service)
        .task_definition(&request.task_definition)
        .external_id(&request.external_id)
        .client_token(&request.client_token)
        .load_balancers(
            sdk::LoadBalancer::builder()
                .target_group_arn(&binding.target_group_arn)
                .container_name(&binding.container_name)
                .container_port(i32::from(binding.container_port))
                .build(),
        )
        .scale(percent(request.scale_percent))
        .set_launch_type(launch.launch_type.as_deref().map(sdk::LaunchType::from))
        .set_capacity_provider_strategy(
            (!capacity_provider_strategy.is_empty()).then_some(capacity_provider_strategy),
        )
        .set_platform_version(launch.platform_version.clone())
        .set_network_configuration(network_configuration)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, TASK_SET_CODES))?;
    output.task_set.ok_or_else(|| answered_without_task_set(OP))
}

/// `UpdateTaskSet`: a new scale (percent of the service's desired count).
pub(crate) async fn update_task_set_scale(
    client: &Client,
    cluster: &str,
    service: &str,
    task_set_arn: &str,
    scale_percent: f64,
) -> Result<sdk::TaskSet, AwsError> {
    const OP: &str = "UpdateTaskSet";
    let output = client
        .update_task_set()
        .cluster(cluster)
        .service(service)
        .task_set(task_set_arn)
        .scale(percent(scale_percent))
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, TASK_SET_CODES))?;
    output.task_set.ok_or_else(|| answered_without_task_set(OP))
}

/// `UpdateServicePrimaryTaskSet`, with the task set's ARN (ECS takes an id too; moto answers
/// an id with 200 and changes nothing).
pub(crate) async fn update_service_primary_task_set(
    client: &Client,
    cluster: &str,
    service: &str,
    task_set_arn: &str,
) -> Result<sdk::TaskSet, AwsError> {
    const OP: &str = "UpdateServicePrimaryTaskSet";
    let output = client
        .update_service_primary_task_set()
        .cluster(cluster)
        .service(service)
        .primary_task_set(task_set_arn)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, TASK_SET_CODES))?;
    output.task_set.ok_or_else(|| answered_without_task_set(OP))
}

/// `DeleteTaskSet`; without `force`, ECS refuses a task set that still has a scale above 0
/// (kind `Conflict`).
pub(crate) async fn delete_task_set(
    client: &Client,
    cluster: &str,
    service: &str,
    task_set_arn: &str,
    force: bool,
) -> Result<(), AwsError> {
    const OP: &str = "DeleteTaskSet";
    client
        .delete_task_set()
        .cluster(cluster)
        .service(service)
        .task_set(task_set_arn)
        .force(force)
        .send()
        .await
        .map_err(|e| refused_while_scaled(classify(SERVICE, OP, e, TASK_SET_CODES)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ecs::map_task_set;
    use crate::aws::error::kind_for;
    use crate::ports::{LaunchSettings, LoadBalancerBinding};

    #[test]
    fn a_task_set_is_mapped_with_its_load_balancers_and_launch_settings() {
        let task_set = sdk::TaskSet::builder()
            .id("ecs-svc/1")
            .task_set_arn("arn:aws:ecs:eu-west-1:1:task-set/prod/web/ecs-svc/1")
            .status("ACTIVE")
            .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/web:3")
            .launch_type(sdk::LaunchType::Fargate)
            .platform_version("1.4.0")
            .network_configuration(
                network(&NetworkConfiguration {
                    subnets: vec!["subnet-1".into(), "subnet-2".into()],
                    security_groups: vec!["sg-1".into()],
                    assign_public_ip: true,
                })
                .unwrap(),
            )
            .load_balancers(
                sdk::LoadBalancer::builder()
                    .target_group_arn("arn:tg-b")
                    .container_name("web")
                    .container_port(8080)
                    .build(),
            )
            // A Classic Load Balancer entry has no target group: not a binding.
            .load_balancers(
                sdk::LoadBalancer::builder()
                    .load_balancer_name("classic")
                    .container_name("web")
                    .container_port(8080)
                    .build(),
            )
            .build();
        let mapped = map_task_set(&task_set);
        assert_eq!(
            mapped.load_balancers,
            vec![LoadBalancerBinding {
                target_group_arn: "arn:tg-b".into(),
                container_name: "web".into(),
                container_port: 8080,
            }]
        );
        assert_eq!(
            mapped.launch,
            LaunchSettings {
                launch_type: Some("FARGATE".into()),
                capacity_provider_strategy: vec![],
                platform_version: Some("1.4.0".into()),
                network_configuration: Some(NetworkConfiguration {
                    subnets: vec!["subnet-1".into(), "subnet-2".into()],
                    security_groups: vec!["sg-1".into()],
                    assign_public_ip: true,
                }),
            }
        );

        let spot = sdk::TaskSet::builder()
            .capacity_provider_strategy(
                strategy(&[CapacityProviderItem {
                    capacity_provider: "FARGATE_SPOT".into(),
                    base: 1,
                    weight: 3,
                }])
                .unwrap()
                .remove(0),
            )
            .build();
        let mapped = map_task_set(&spot);
        assert_eq!(mapped.launch.launch_type, None);
        assert_eq!(
            mapped.launch.capacity_provider_strategy,
            vec![CapacityProviderItem {
                capacity_provider: "FARGATE_SPOT".into(),
                base: 1,
                weight: 3,
            }]
        );
    }

    #[test]
    fn task_set_errors_are_classified_where_they_enter() {
        for (code, kind) in [
            ("ServiceNotFoundException", AwsErrorKind::NotFound),
            ("TaskSetNotFoundException", AwsErrorKind::NotFound),
            ("ClusterNotFoundException", AwsErrorKind::NotFound),
            ("ServiceNotActiveException", AwsErrorKind::NotFound),
            ("InvalidParameterException", AwsErrorKind::InvalidRequest),
            ("ClientException", AwsErrorKind::InvalidRequest),
            ("UnsupportedFeatureException", AwsErrorKind::InvalidRequest),
            ("LimitExceededException", AwsErrorKind::Conflict),
            ("AccessDeniedException", AwsErrorKind::AccessDenied),
            ("ThrottlingException", AwsErrorKind::Throttling),
            ("ServerException", AwsErrorKind::Other),
        ] {
            assert_eq!(kind_for(code, Some(400), TASK_SET_CODES), kind, "{code}");
        }
        assert_eq!(
            kind_for("ServerException", Some(500), TASK_SET_CODES),
            AwsErrorKind::Transient
        );
    }

    #[test]
    fn a_delete_refused_for_the_scale_is_a_conflict_and_other_refusals_stay_invalid() {
        let scaled = AwsError::new(
            SERVICE,
            "DeleteTaskSet",
            AwsErrorKind::InvalidRequest,
            "The task set cannot be deleted while its scale is greater than zero.",
        )
        .with_code("InvalidParameterException");
        assert_eq!(refused_while_scaled(scaled).kind, AwsErrorKind::Conflict);
        let other = AwsError::new(
            SERVICE,
            "DeleteTaskSet",
            AwsErrorKind::InvalidRequest,
            "Invalid identifier.",
        )
        .with_code("InvalidParameterException");
        assert_eq!(
            refused_while_scaled(other).kind,
            AwsErrorKind::InvalidRequest
        );
        let missing = AwsError::new(
            SERVICE,
            "DeleteTaskSet",
            AwsErrorKind::NotFound,
            "The specified task set does not exist (scale unknown).",
        )
        .with_code("TaskSetNotFoundException");
        assert_eq!(refused_while_scaled(missing).kind, AwsErrorKind::NotFound);
    }
}
