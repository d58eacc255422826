//! The AppSpec for an ECS blue/green deployment, built from the live service so that
//! CodeDeploy does not silently change its network, capacity or platform settings.

use serde_json::{Value, json};

use crate::ports::{Service, TaskDefinition};

/// Why no AppSpec can be built for a service and candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpecError(pub String);

/// Builds the AppSpec (as JSON text) that deploys `candidate` to `service`.
///
/// The container and port come from the service's load balancer entry (preferring the one
/// whose target group belongs to the deployment group), and must exist in the candidate.
pub fn build_appspec(
    service: &Service,
    candidate: &TaskDefinition,
    group_target_groups: &[String],
) -> Result<String, AppSpecError> {
    let binding = service
        .load_balancers
        .iter()
        .find(|lb| {
            let name = crate::ports::target_group_name_from_arn(&lb.target_group_arn);
            group_target_groups.iter().any(|g| g == name)
        })
        .or_else(|| service.load_balancers.first())
        .ok_or_else(|| {
            AppSpecError(format!(
                "service {}/{} has no load balancer entry; CodeDeploy blue/green needs one",
                service.cluster, service.name
            ))
        })?;
    let container = candidate.container(&binding.container_name).ok_or_else(|| {
        AppSpecError(format!(
            "the service routes traffic to container {}, which task definition {} does not have",
            binding.container_name,
            candidate.short_name()
        ))
    })?;
    if !container.container_ports.contains(&binding.container_port) {
        return Err(AppSpecError(format!(
            "the service routes traffic to port {} of container {}, which task definition {} does not map",
            binding.container_port,
            binding.container_name,
            candidate.short_name()
        )));
    }

    let mut properties = serde_json::Map::new();
    properties.insert("TaskDefinition".into(), json!(candidate.arn));
    properties.insert(
        "LoadBalancerInfo".into(),
        json!({"ContainerName": binding.container_name, "ContainerPort": binding.container_port}),
    );
    if let Some(platform) = &service.platform_version {
        properties.insert("PlatformVersion".into(), json!(platform));
    }
    if let Some(network) = &service.network_configuration {
        properties.insert(
            "NetworkConfiguration".into(),
            json!({"AwsvpcConfiguration": {
                "Subnets": network.subnets,
                "SecurityGroups": network.security_groups,
                "AssignPublicIp": if network.assign_public_ip { "ENABLED" } else { "DISABLED" },
            }}),
        );
    }
    if !service.capacity_provider_strategy.is_empty() {
        let items: Vec<Value> = service
            .capacity_provider_strategy
            .iter()
            .map(|c| json!({"CapacityProvider": c.capacity_provider, "Base": c.base, "Weight": c.weight}))
            .collect();
        properties.insert("CapacityProviderStrategy".into(), Value::Array(items));
    }
    let appspec = json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}],
    });
    Ok(appspec.to_string())
}
