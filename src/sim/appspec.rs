//! Parsing and structural validation of an ECS AppSpec (JSON form), as CodeDeploy does it.

use serde_json::{Map, Value};

use crate::ports::{CapacityProviderItem, NetworkConfiguration};

/// The settings a task set runs with that CodeDeploy takes from the AppSpec (and silently
/// resets when the AppSpec omits them). The service reports its primary task set's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaunchSettings {
    pub network_configuration: Option<NetworkConfiguration>,
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    pub platform_version: Option<String>,
}

/// What a deployment takes from its AppSpec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppSpec {
    /// The full task definition ARN (checked for registration by the caller).
    pub task_definition: String,
    pub container_name: String,
    pub container_port: u16,
    /// What the replacement task set runs with. An omitted `CapacityProviderStrategy` is an
    /// empty one: CodeDeploy drops the service's strategy in that case.
    pub settings: LaunchSettings,
}

const HOOK_NAMES: [&str; 5] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// Parses and checks the structure of an AppSpec; the error is a message naming what is
/// wrong. Only JSON is accepted (the YAML-compatible form the controller sends).
pub(crate) fn parse(content: &str) -> Result<AppSpec, String> {
    let root: Value =
        serde_json::from_str(content).map_err(|e| format!("The AppSpec is not valid JSON: {e}"))?;
    let root = object(&root, "the AppSpec")?;
    only_keys(root, "the AppSpec", &["version", "Resources", "Hooks"])?;

    match root.get("version") {
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => {}
        Some(Value::String(s)) if s == "0.0" => {}
        Some(other) => return Err(format!("AppSpec version must be 0.0, got {other}")),
        None => return Err("The AppSpec has no 'version'".to_string()),
    }

    let resources = root
        .get("Resources")
        .and_then(Value::as_array)
        .ok_or("The AppSpec has no 'Resources' list")?;
    let [resource] = resources.as_slice() else {
        return Err(format!(
            "An ECS AppSpec must have exactly one resource, found {}",
            resources.len()
        ));
    };
    let resource = object(resource, "Resources[0]")?;
    let [(resource_name, target)] = resource.iter().collect::<Vec<_>>()[..] else {
        return Err("Resources[0] must have exactly one key (e.g. 'TargetService')".to_string());
    };
    let target = object(target, resource_name)?;
    only_keys(target, resource_name, &["Type", "Properties"])?;
    match target.get("Type").and_then(Value::as_str) {
        Some("AWS::ECS::Service") => {}
        other => {
            return Err(format!(
                "{resource_name}.Type must be 'AWS::ECS::Service', got {other:?}"
            ));
        }
    }
    let properties = object(
        target
            .get("Properties")
            .ok_or_else(|| format!("{resource_name} has no 'Properties'"))?,
        "Properties",
    )?;
    only_keys(
        properties,
        "Properties",
        &[
            "TaskDefinition",
            "LoadBalancerInfo",
            "PlatformVersion",
            "NetworkConfiguration",
            "CapacityProviderStrategy",
        ],
    )?;

    let task_definition = string(properties, "TaskDefinition", "Properties")?;
    if !(task_definition.starts_with("arn:aws:ecs:")
        && task_definition.contains(":task-definition/"))
    {
        return Err(format!(
            "TaskDefinition must be a full task definition ARN, got '{task_definition}'"
        ));
    }

    let lb = object(
        properties
            .get("LoadBalancerInfo")
            .ok_or("Properties has no 'LoadBalancerInfo'")?,
        "LoadBalancerInfo",
    )?;
    only_keys(lb, "LoadBalancerInfo", &["ContainerName", "ContainerPort"])?;
    let container_name = string(lb, "ContainerName", "LoadBalancerInfo")?;
    let container_port = lb
        .get("ContainerPort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or("LoadBalancerInfo.ContainerPort must be a port number")?;

    let platform_version = match properties.get("PlatformVersion") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("PlatformVersion must be a string".to_string()),
    };
    let network_configuration = properties
        .get("NetworkConfiguration")
        .map(network_configuration)
        .transpose()?;
    let capacity_provider_strategy = match properties.get("CapacityProviderStrategy") {
        None => Vec::new(),
        Some(value) => capacity_provider_strategy(value)?,
    };

    if let Some(hooks) = root.get("Hooks") {
        check_hooks(hooks)?;
    }

    Ok(AppSpec {
        task_definition,
        container_name,
        container_port,
        settings: LaunchSettings {
            network_configuration,
            capacity_provider_strategy,
            platform_version,
        },
    })
}

fn network_configuration(value: &Value) -> Result<NetworkConfiguration, String> {
    let outer = object(value, "NetworkConfiguration")?;
    only_keys(outer, "NetworkConfiguration", &["AwsvpcConfiguration"])?;
    let awsvpc = object(
        outer
            .get("AwsvpcConfiguration")
            .ok_or("NetworkConfiguration has no 'AwsvpcConfiguration'")?,
        "AwsvpcConfiguration",
    )?;
    only_keys(
        awsvpc,
        "AwsvpcConfiguration",
        &["Subnets", "SecurityGroups", "AssignPublicIp"],
    )?;
    let subnets = strings(awsvpc.get("Subnets"), "AwsvpcConfiguration.Subnets")?;
    if subnets.is_empty() {
        return Err("AwsvpcConfiguration.Subnets must name at least one subnet".to_string());
    }
    let security_groups = match awsvpc.get("SecurityGroups") {
        None => Vec::new(),
        some => strings(some, "AwsvpcConfiguration.SecurityGroups")?,
    };
    let assign_public_ip = match awsvpc.get("AssignPublicIp").map(Value::as_str) {
        None | Some(Some("DISABLED")) => false,
        Some(Some("ENABLED")) => true,
        Some(_) => {
            return Err(
                "AwsvpcConfiguration.AssignPublicIp must be 'ENABLED' or 'DISABLED'".to_string(),
            );
        }
    };
    Ok(NetworkConfiguration {
        subnets,
        security_groups,
        assign_public_ip,
    })
}

fn capacity_provider_strategy(value: &Value) -> Result<Vec<CapacityProviderItem>, String> {
    let items = value
        .as_array()
        .ok_or("CapacityProviderStrategy must be a list")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("CapacityProviderStrategy[{i}]");
            let item = object(item, &what)?;
            only_keys(item, &what, &["CapacityProvider", "Base", "Weight"])?;
            let number = |key: &str| -> Result<u32, String> {
                match item.get(key) {
                    None => Ok(0),
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or(format!("{what}.{key} must be a non-negative number")),
                }
            };
            Ok(CapacityProviderItem {
                capacity_provider: string(item, "CapacityProvider", &what)?,
                base: number("Base")?,
                weight: number("Weight")?,
            })
        })
        .collect()
}

fn check_hooks(hooks: &Value) -> Result<(), String> {
    let hooks = hooks.as_array().ok_or("Hooks must be a list")?;
    for hook in hooks {
        let hook = object(hook, "Hooks[]")?;
        for (name, function) in hook {
            if !HOOK_NAMES.contains(&name.as_str()) {
                return Err(format!("'{name}' is not a valid ECS lifecycle hook"));
            }
            if !function.is_string() {
                return Err(format!("Hook {name} must name a Lambda function"));
            }
        }
    }
    Ok(())
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be a mapping"))
}

fn only_keys(map: &Map<String, Value>, what: &str, allowed: &[&str]) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "{what} has an unknown key '{unknown}' (expected one of {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn string(map: &Map<String, Value>, key: &str, what: &str) -> Result<String, String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("{what}.{key} must be a non-empty string")),
        None => Err(format!("{what} has no '{key}'")),
    }
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    value
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format!("{what} must be a list of strings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(properties: Value) -> String {
        serde_json::json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}]
        })
        .to_string()
    }

    #[test]
    fn a_complete_appspec_parses() {
        let parsed = parse(&spec(serde_json::json!({
            "TaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:3",
            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080},
            "PlatformVersion": "LATEST",
            "NetworkConfiguration": {"AwsvpcConfiguration": {
                "Subnets": ["subnet-1"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "ENABLED"}},
            "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 2}]
        })))
        .unwrap();
        assert_eq!(parsed.container_name, "web");
        assert_eq!(parsed.container_port, 8080);
        assert!(
            parsed
                .settings
                .network_configuration
                .unwrap()
                .assign_public_ip
        );
        assert_eq!(parsed.settings.capacity_provider_strategy[0].weight, 2);
    }

    #[test]
    fn short_task_definition_names_and_string_ports_are_rejected() {
        let err = parse(&spec(serde_json::json!({
            "TaskDefinition": "web:3",
            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}
        })))
        .unwrap_err();
        assert!(err.contains("full task definition ARN"), "{err}");

        let err = parse(&spec(serde_json::json!({
            "TaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:3",
            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": "8080"}
        })))
        .unwrap_err();
        assert!(err.contains("ContainerPort"), "{err}");

        let err = parse(&spec(serde_json::json!({
            "TaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:3",
            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080},
            "Platform": "LATEST"
        })))
        .unwrap_err();
        assert!(err.contains("unknown key 'Platform'"), "{err}");

        assert!(parse("version: 0.0").is_err());
    }
}
