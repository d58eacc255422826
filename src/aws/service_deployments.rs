//! ECS's own deployments on the AWS SDK: `UpdateService` with a deployment configuration,
//! service deployments and revisions, answers to lifecycle hooks, and stops.
//!
//! `EcsAdapter` (in `ecs.rs`) delegates its service-deployment operations here, one line
//! each, and takes the service's `EcsDeploymentView` from [`map_ecs_deployment`].

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types as sdk;
use aws_smithy_types::DateTime;
use jiff::Timestamp;

use super::error::{CodeMap, classify};
use crate::ports::{
    AdvancedLoadBalancer, AwsError, AwsErrorKind, EcsDeploymentSettings, EcsDeploymentStrategy,
    EcsDeploymentView, HookAction, LifecycleHookDetail, ServiceDeployment, ServiceDeploymentStatus,
    ServiceRevision, TrafficSteps, UpdateServiceRequest,
};

const SERVICE: &str = "ecs";

/// AWS's limit on ARNs per `DescribeServiceDeployments` and `DescribeServiceRevisions` call
/// (the API model: "You can specify a maximum of 20 ARNs").
pub const DESCRIBE_SERVICE_DEPLOYMENTS_BATCH: usize = 20;

/// The largest page `ListServiceDeployments` answers (`maxResults` 1..=100).
const LIST_PAGE_SIZE: i32 = 100;

/// `UpdateService`: a missing service or cluster is `NotFound` (an INACTIVE service too:
/// ECS will not update it again); `ClientException` (an unknown task definition, a
/// configuration ECS refuses) is `InvalidRequest`.
const UPDATE_SERVICE_CODES: CodeMap = CodeMap {
    not_found: &[
        "ServiceNotFoundException",
        "ServiceNotActiveException",
        "ClusterNotFoundException",
    ],
    conflict: &[],
    invalid: &[
        "ClientException",
        "PlatformTaskDefinitionIncompatibilityException",
        "PlatformUnknownException",
        "UnsupportedFeatureException",
    ],
};

/// The reads: a missing service or cluster is `NotFound`.
const READ_CODES: CodeMap = CodeMap {
    not_found: &["ServiceNotFoundException", "ClusterNotFoundException"],
    conflict: &[],
    invalid: &["ClientException", "UnsupportedFeatureException"],
};

/// `ContinueServiceDeployment` models no `ConflictException`: ECS answers a hook that is not
/// `AWAITING_ACTION` (stale, answered already, of a deployment that ended) with a
/// `ClientException`. That is a conflict with the deployment's state, to be read again,
/// never a request to repeat as it is.
const CONTINUE_CODES: CodeMap = CodeMap {
    not_found: &["ServiceDeploymentNotFoundException"],
    conflict: &["ClientException"],
    invalid: &["UnsupportedFeatureException"],
};

/// `StopServiceDeployment`: a deployment that cannot be stopped any more (finished, already
/// rolling back) is a `ConflictException`.
const STOP_CODES: CodeMap = CodeMap {
    not_found: &["ServiceDeploymentNotFoundException"],
    conflict: &["ConflictException"],
    invalid: &["ClientException", "UnsupportedFeatureException"],
};

fn error(operation: &'static str, kind: AwsErrorKind, message: impl Into<String>) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message)
}

// ----- UpdateService --------------------------------------------------------------------

/// `UpdateService` with the candidate task definition and, only when `request.deployment`
/// is set, the deployment configuration (and, for blue/green, linear and canary with load
/// balancer settings, the load balancer's advanced configuration). Nothing else: no forced
/// deployment, no desired count. Returns the answer's `currentServiceDeployment`.
///
/// With a deployment configuration, the service is described first: `UpdateService`
/// replaces `deploymentConfiguration` and `loadBalancers` as wholes, and the port's view of
/// the service does not carry what the document does not set (circuit breaker, alarms,
/// minimum and maximum percent, Lambda hooks, the load balancer entries as ECS holds them),
/// so the adapter copies them from what ECS reports, as it does for a task definition copy.
pub(super) async fn update_service(
    client: &Client,
    request: &UpdateServiceRequest,
) -> Result<Option<String>, AwsError> {
    const OP: &str = "UpdateService";
    let mut call = client
        .update_service()
        .cluster(&request.cluster)
        .service(&request.service)
        .task_definition(&request.task_definition);
    if let Some(settings) = &request.deployment {
        let current = describe_one_service(client, &request.cluster, &request.service).await?;
        call = call.deployment_configuration(deployment_configuration(
            current.deployment_configuration(),
            settings,
        ));
        if let Some(advanced) = advanced_load_balancer(settings) {
            let load_balancers = with_advanced_configuration(current.load_balancers(), advanced)
                .map_err(|message| error(OP, AwsErrorKind::InvalidRequest, message))?;
            call = call.set_load_balancers(Some(load_balancers));
        }
    }
    let output = call
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, UPDATE_SERVICE_CODES))?;
    Ok(output
        .service()
        .and_then(|s| s.current_service_deployment())
        .map(str::to_string))
}

/// The load balancer settings to write: only blue/green, linear and canary use them.
fn advanced_load_balancer(settings: &EcsDeploymentSettings) -> Option<&AdvancedLoadBalancer> {
    match settings.strategy {
        EcsDeploymentStrategy::Rolling => None,
        _ => settings.load_balancer.as_ref(),
    }
}

/// The service as `DescribeServices` reports it (for the fields `UpdateService` would
/// otherwise reset).
async fn describe_one_service(
    client: &Client,
    cluster: &str,
    service: &str,
) -> Result<sdk::Service, AwsError> {
    const OP: &str = "DescribeServices";
    let output = client
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, READ_CODES))?;
    output.services().first().cloned().ok_or_else(|| {
        let reason = output
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("MISSING");
        error(
            OP,
            AwsErrorKind::NotFound,
            format!("service {service} of cluster {cluster} was not found ({reason})"),
        )
        .with_code("ServiceNotFoundException")
    })
}

fn sdk_strategy(strategy: EcsDeploymentStrategy) -> sdk::DeploymentStrategy {
    match strategy {
        EcsDeploymentStrategy::Rolling => sdk::DeploymentStrategy::Rolling,
        EcsDeploymentStrategy::BlueGreen => sdk::DeploymentStrategy::BlueGreen,
        EcsDeploymentStrategy::Linear => sdk::DeploymentStrategy::Linear,
        EcsDeploymentStrategy::Canary => sdk::DeploymentStrategy::Canary,
    }
}

fn minutes(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The service's deployment configuration with the document's settings written over it:
/// strategy, bake time, canary and linear settings as the document says (absent ones
/// removed), one `PAUSE` hook per stage of `pause_at` in place of the service's `PAUSE`
/// hooks; everything else (circuit breaker, alarms, minimum and maximum percent, early
/// success criteria, Lambda hooks) kept as ECS reported it.
pub(crate) fn deployment_configuration(
    current: Option<&sdk::DeploymentConfiguration>,
    settings: &EcsDeploymentSettings,
) -> sdk::DeploymentConfiguration {
    let mut config = current
        .cloned()
        .unwrap_or_else(|| sdk::DeploymentConfiguration::builder().build());
    config.strategy = Some(sdk_strategy(settings.strategy));
    config.bake_time_in_minutes = settings.bake_time_minutes.map(minutes);
    config.canary_configuration = settings.canary.map(|(percent, bake)| {
        sdk::CanaryConfiguration::builder()
            .canary_percent(percent)
            .canary_bake_time_in_minutes(minutes(bake))
            .build()
    });
    config.linear_configuration = settings.linear.map(|(percent, bake)| {
        sdk::LinearConfiguration::builder()
            .step_percent(percent)
            .step_bake_time_in_minutes(minutes(bake))
            .build()
    });
    let had_hooks = config
        .lifecycle_hooks
        .as_ref()
        .is_some_and(|h| !h.is_empty());
    let mut hooks: Vec<sdk::DeploymentLifecycleHook> = config
        .lifecycle_hooks
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|hook| hook.target_type() != Some(&sdk::DeploymentLifecycleHookTargetType::Pause))
        .collect();
    hooks.extend(settings.pause_at.iter().map(|stage| {
        sdk::DeploymentLifecycleHook::builder()
            .target_type(sdk::DeploymentLifecycleHookTargetType::Pause)
            .lifecycle_stages(sdk::DeploymentLifecycleHookStage::from(stage.as_str()))
            .build()
    }));
    // An empty list removes the hooks the service had; with none before and none now, the
    // member is left out.
    config.lifecycle_hooks = (had_hooks || !hooks.is_empty()).then_some(hooks);
    config
}

/// The service's load balancer entries with `advanced` added to the one entry that has a
/// target group (the alternate target group pairs with it). A service with no such entry,
/// or with several (the document carries one advanced configuration), is refused before
/// anything is sent.
pub(crate) fn with_advanced_configuration(
    current: &[sdk::LoadBalancer],
    advanced: &AdvancedLoadBalancer,
) -> Result<Vec<sdk::LoadBalancer>, String> {
    let with_target_group: Vec<&str> = current
        .iter()
        .filter_map(|lb| lb.target_group_arn())
        .collect();
    if with_target_group.len() != 1 {
        return Err(format!(
            "the load balancer settings need exactly one load balancer entry with a target \
             group on the service, and it has {}{}",
            with_target_group.len(),
            if with_target_group.is_empty() {
                String::new()
            } else {
                format!(" ({})", with_target_group.join(", "))
            }
        ));
    }
    let configuration = sdk::AdvancedConfiguration::builder()
        .alternate_target_group_arn(&advanced.alternate_target_group_arn)
        .production_listener_rule(&advanced.production_listener_rule)
        .set_test_listener_rule(advanced.test_listener_rule.clone())
        .role_arn(&advanced.role_arn)
        .build();
    Ok(current
        .iter()
        .cloned()
        .map(|mut lb| {
            if lb.target_group_arn.is_some() {
                lb.advanced_configuration = Some(configuration.clone());
            }
            lb
        })
        .collect())
}

// ----- the service's view ------------------------------------------------------------------

/// What a service's `deploymentConfiguration` says of ECS's own deployments; `None` for a
/// service with another deployment controller (its configuration means nothing to ECS
/// deployments).
pub(crate) fn map_ecs_deployment(service: &sdk::Service) -> Option<EcsDeploymentView> {
    let controller = service.deployment_controller().map(|d| d.r#type());
    if !matches!(controller, None | Some(sdk::DeploymentControllerType::Ecs)) {
        return None;
    }
    let config = service.deployment_configuration();
    let load_balancers = service.load_balancers();
    Some(EcsDeploymentView {
        strategy: config
            .and_then(|c| c.strategy())
            .map(|s| s.as_str().to_string()),
        bake_time_minutes: config
            .and_then(|c| c.bake_time_in_minutes())
            .and_then(|m| u32::try_from(m).ok()),
        traffic_steps: config.and_then(traffic_steps),
        pause_hook_stages: config
            .map(|c| c.lifecycle_hooks())
            .unwrap_or_default()
            .iter()
            .filter(|h| h.target_type() == Some(&sdk::DeploymentLifecycleHookTargetType::Pause))
            .flat_map(|h| h.lifecycle_stages())
            .map(|stage| stage.as_str().to_string())
            .collect(),
        circuit_breaker: config
            .and_then(|c| c.deployment_circuit_breaker())
            .is_some_and(|b| b.enable()),
        // A service without any load balancer has nothing to shift traffic with.
        load_balancers_have_advanced_configuration: !load_balancers.is_empty()
            && load_balancers
                .iter()
                .all(|lb| lb.advanced_configuration().is_some()),
    })
}

/// The production traffic steps of a linear or canary deployment configuration.
fn traffic_steps(config: &sdk::DeploymentConfiguration) -> Option<TrafficSteps> {
    let minutes = |m: Option<i32>| m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
    match config.strategy() {
        Some(sdk::DeploymentStrategy::Canary) => config.canary_configuration().map(|c| {
            TrafficSteps::canary(
                c.canary_percent().unwrap_or(100.0),
                minutes(c.canary_bake_time_in_minutes()),
            )
        }),
        Some(sdk::DeploymentStrategy::Linear) => config.linear_configuration().map(|c| {
            TrafficSteps::linear(
                c.step_percent().unwrap_or(100.0),
                minutes(c.step_bake_time_in_minutes()),
            )
        }),
        _ => None,
    }
}

// ----- service deployments --------------------------------------------------------------

fn timestamp(time: &DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

fn date_time(time: Timestamp) -> DateTime {
    DateTime::from_millis(time.as_millisecond())
}

/// `ListServiceDeployments`, every page, newest first (by `createdAt`; ECS does not
/// promise an order).
pub(super) async fn list_service_deployments(
    client: &Client,
    cluster: &str,
    service: &str,
    since: Option<Timestamp>,
) -> Result<Vec<String>, AwsError> {
    const OP: &str = "ListServiceDeployments";
    let created_at = since.map(|since| sdk::CreatedAt::builder().after(date_time(since)).build());
    let mut found: Vec<(Option<Timestamp>, String)> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let output = client
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .set_created_at(created_at.clone())
            .max_results(LIST_PAGE_SIZE)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| classify(SERVICE, OP, e, READ_CODES))?;
        found.extend(output.service_deployments().iter().filter_map(|brief| {
            let arn = brief.service_deployment_arn()?.to_string();
            Some((brief.created_at().and_then(timestamp), arn))
        }));
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
            _ => break,
        }
    }
    // Stable: deployments created at the same instant keep ECS's order.
    found.sort_by_key(|(created_at, _)| std::cmp::Reverse(*created_at));
    Ok(found.into_iter().map(|(_, arn)| arn).collect())
}

/// `DescribeServiceDeployments`, at most [`DESCRIBE_SERVICE_DEPLOYMENTS_BATCH`] ARNs per
/// call. ARNs ECS reports as failures (`MISSING`) are absent from the result.
pub(super) async fn describe_service_deployments(
    client: &Client,
    arns: &[String],
) -> Result<Vec<ServiceDeployment>, AwsError> {
    const OP: &str = "DescribeServiceDeployments";
    let mut deployments = Vec::with_capacity(arns.len());
    for batch in arns.chunks(DESCRIBE_SERVICE_DEPLOYMENTS_BATCH) {
        let output = client
            .describe_service_deployments()
            .set_service_deployment_arns(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, OP, e, READ_CODES))?;
        log_failures(OP, output.failures());
        deployments.extend(
            output
                .service_deployments()
                .iter()
                .map(map_service_deployment),
        );
    }
    Ok(deployments)
}

/// `DescribeServiceRevisions`, batched like [`describe_service_deployments`].
pub(super) async fn describe_service_revisions(
    client: &Client,
    arns: &[String],
) -> Result<Vec<ServiceRevision>, AwsError> {
    const OP: &str = "DescribeServiceRevisions";
    let mut revisions = Vec::with_capacity(arns.len());
    for batch in arns.chunks(DESCRIBE_SERVICE_DEPLOYMENTS_BATCH) {
        let output = client
            .describe_service_revisions()
            .set_service_revision_arns(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, OP, e, READ_CODES))?;
        log_failures(OP, output.failures());
        revisions.extend(output.service_revisions().iter().map(|revision| {
            ServiceRevision {
                arn: revision
                    .service_revision_arn()
                    .unwrap_or_default()
                    .to_string(),
                task_definition: revision.task_definition().unwrap_or_default().to_string(),
            }
        }));
    }
    Ok(revisions)
}

fn log_failures(operation: &'static str, failures: &[sdk::Failure]) {
    for failure in failures {
        // MISSING is the documented "no such ARN" (or one from before October 2024).
        if failure.reason() != Some("MISSING") {
            tracing::warn!(
                operation,
                arn = failure.arn().unwrap_or_default(),
                reason = failure.reason().unwrap_or_default(),
                detail = failure.detail().unwrap_or_default(),
                "ECS reported a failure other than MISSING"
            );
        }
    }
}

fn map_status(status: Option<&sdk::ServiceDeploymentStatus>) -> ServiceDeploymentStatus {
    use sdk::ServiceDeploymentStatus as S;
    match status {
        Some(S::Pending) => ServiceDeploymentStatus::Pending,
        Some(S::InProgress) => ServiceDeploymentStatus::InProgress,
        Some(S::Successful) => ServiceDeploymentStatus::Successful,
        Some(S::StopRequested) => ServiceDeploymentStatus::StopRequested,
        Some(S::Stopped) => ServiceDeploymentStatus::Stopped,
        Some(S::RollbackRequested) => ServiceDeploymentStatus::RollbackRequested,
        Some(S::RollbackInProgress) => ServiceDeploymentStatus::RollbackInProgress,
        Some(S::RollbackSuccessful) => ServiceDeploymentStatus::RollbackSuccessful,
        Some(S::RollbackFailed) => ServiceDeploymentStatus::RollbackFailed,
        // A newer status, or none: never terminal by accident.
        Some(other) => ServiceDeploymentStatus::Other(other.as_str().to_string()),
        None => ServiceDeploymentStatus::Other(String::new()),
    }
}

fn map_hook(hook: &sdk::DeploymentLifecycleHookDetail) -> LifecycleHookDetail {
    LifecycleHookDetail {
        hook_id: hook.hook_id().unwrap_or_default().to_string(),
        target_type: hook
            .target_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        status: hook
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        expires_at: hook.expires_at().and_then(timestamp),
    }
}

pub(crate) fn map_service_deployment(deployment: &sdk::ServiceDeployment) -> ServiceDeployment {
    let alarms = deployment.alarms();
    ServiceDeployment {
        arn: deployment
            .service_deployment_arn()
            .unwrap_or_default()
            .to_string(),
        status: map_status(deployment.status()),
        status_reason: deployment.status_reason().map(str::to_string),
        lifecycle_stage: deployment.lifecycle_stage().map(|s| s.as_str().to_string()),
        target_revision_arn: deployment
            .target_service_revision()
            .and_then(|r| r.arn())
            .map(str::to_string),
        created_at: deployment.created_at().and_then(timestamp),
        // A deployment that ended without finishing (STOPPED) has only `stoppedAt`.
        finished_at: deployment
            .finished_at()
            .or(deployment.stopped_at())
            .and_then(timestamp),
        rollback_reason: deployment
            .rollback()
            .and_then(|r| r.reason())
            .map(str::to_string),
        circuit_breaker_status: deployment
            .deployment_circuit_breaker()
            .and_then(|b| b.status())
            .map(|s| s.as_str().to_string()),
        alarms_status: alarms
            .and_then(|a| a.status())
            .map(|s| s.as_str().to_string()),
        triggered_alarms: alarms
            .map(|a| a.triggered_alarm_names().to_vec())
            .unwrap_or_default(),
        hooks: deployment
            .lifecycle_hook_details()
            .iter()
            .map(map_hook)
            .collect(),
    }
}

// ----- answers and stops ------------------------------------------------------------------

/// `ContinueServiceDeployment` with the hook's id and `CONTINUE` or `ROLLBACK`.
pub(super) async fn continue_service_deployment(
    client: &Client,
    deployment_arn: &str,
    hook_id: &str,
    action: HookAction,
) -> Result<(), AwsError> {
    const OP: &str = "ContinueServiceDeployment";
    client
        .continue_service_deployment()
        .service_deployment_arn(deployment_arn)
        .hook_id(hook_id)
        .action(match action {
            HookAction::Continue => sdk::DeploymentLifecycleHookAction::Continue,
            HookAction::Rollback => sdk::DeploymentLifecycleHookAction::Rollback,
        })
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, CONTINUE_CODES))?;
    Ok(())
}

/// `StopServiceDeployment` with `stopType` `ROLLBACK`.
pub(super) async fn stop_service_deployment(
    client: &Client,
    deployment_arn: &str,
) -> Result<(), AwsError> {
    const OP: &str = "StopServiceDeployment";
    client
        .stop_service_deployment()
        .service_deployment_arn(deployment_arn)
        .stop_type(sdk::StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, STOP_CODES))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target_group: Option<&str>, name: Option<&str>) -> sdk::LoadBalancer {
        sdk::LoadBalancer::builder()
            .set_target_group_arn(target_group.map(str::to_string))
            .set_load_balancer_name(name.map(str::to_string))
            .container_name("web")
            .container_port(8080)
            .build()
    }

    fn advanced() -> AdvancedLoadBalancer {
        AdvancedLoadBalancer {
            alternate_target_group_arn: "arn:tg-b".into(),
            production_listener_rule: "arn:rule".into(),
            test_listener_rule: None,
            role_arn: "arn:role".into(),
        }
    }

    #[test]
    fn the_advanced_configuration_goes_to_the_one_entry_with_a_target_group() {
        let entries = [entry(None, Some("classic")), entry(Some("arn:tg-a"), None)];
        let written = with_advanced_configuration(&entries, &advanced()).unwrap();
        assert_eq!(written[0].advanced_configuration(), None);
        let configuration = written[1].advanced_configuration().expect("added");
        assert_eq!(configuration.alternate_target_group_arn(), Some("arn:tg-b"));
        assert_eq!(configuration.test_listener_rule(), None);
        assert_eq!(written[1].target_group_arn(), Some("arn:tg-a"));
    }

    #[test]
    fn the_advanced_configuration_needs_exactly_one_entry_with_a_target_group() {
        let none = with_advanced_configuration(&[], &advanced()).unwrap_err();
        assert!(none.contains("has 0"), "{none}");
        let two = [entry(Some("arn:tg-a"), None), entry(Some("arn:tg-c"), None)];
        let error = with_advanced_configuration(&two, &advanced()).unwrap_err();
        assert!(
            error.contains("has 2") && error.contains("arn:tg-c"),
            "{error}"
        );
    }

    #[test]
    fn a_service_without_hooks_and_without_pause_stages_is_sent_no_hook_list() {
        let settings = EcsDeploymentSettings {
            strategy: EcsDeploymentStrategy::Rolling,
            bake_time_minutes: None,
            canary: None,
            linear: None,
            pause_at: Vec::new(),
            load_balancer: None,
        };
        let config = deployment_configuration(None, &settings);
        assert_eq!(config.lifecycle_hooks, None);
        assert_eq!(config.strategy(), Some(&sdk::DeploymentStrategy::Rolling));

        // A service whose only hook was a PAUSE hook: an empty list removes it.
        let with_pause = sdk::DeploymentConfiguration::builder()
            .lifecycle_hooks(
                sdk::DeploymentLifecycleHook::builder()
                    .target_type(sdk::DeploymentLifecycleHookTargetType::Pause)
                    .lifecycle_stages(sdk::DeploymentLifecycleHookStage::PostScaleUp)
                    .build(),
            )
            .build();
        let config = deployment_configuration(Some(&with_pause), &settings);
        assert_eq!(config.lifecycle_hooks, Some(Vec::new()));
    }
}
