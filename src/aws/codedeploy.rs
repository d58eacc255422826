//! The CodeDeploy port on the AWS SDK: deployment groups and ECS blue/green deployments.

use async_trait::async_trait;
use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::config::retry::RetryConfig;
use aws_sdk_codedeploy::types as sdk;
use aws_smithy_types::DateTime;
use jiff::Timestamp;

use super::error::{CodeMap, classify};
use crate::ports::{
    AwsError, AwsErrorKind, CodeDeploy, CreateDeploymentRequest, Deployment, DeploymentCreator,
    DeploymentErrorInfo, DeploymentFilter, DeploymentGroup, DeploymentStatus, DeploymentTarget,
    LifecycleEvent, LifecycleEventStatus, ReadyAction, RollbackInfo, TargetTaskSet,
};

const SERVICE: &str = "codedeploy";

/// What CodeDeploy uses for an ECS group or deployment that names no config.
const DEFAULT_ECS_CONFIG: &str = "CodeDeployDefault.ECSAllAtOnce";

const GROUP_CODES: CodeMap = CodeMap {
    not_found: &[
        "ApplicationDoesNotExistException",
        "DeploymentGroupDoesNotExistException",
    ],
    conflict: &[],
    invalid: &["DeploymentConfigDoesNotExistException"],
};

const DEPLOYMENT_CODES: CodeMap = CodeMap {
    not_found: &["DeploymentDoesNotExistException"],
    conflict: &[],
    invalid: &[],
};

const TARGET_CODES: CodeMap = CodeMap {
    // A deployment that has not started has no target yet: the same "nothing there" to the
    // controller as a target that does not exist.
    not_found: &[
        "DeploymentDoesNotExistException",
        "DeploymentTargetDoesNotExistException",
        "DeploymentNotStartedException",
    ],
    conflict: &[],
    invalid: &[],
};

const CREATE_CODES: CodeMap = CodeMap {
    not_found: &[
        "ApplicationDoesNotExistException",
        "DeploymentGroupDoesNotExistException",
    ],
    conflict: &[],
    invalid: &[
        "DeploymentConfigDoesNotExistException",
        "RevisionDoesNotExistException",
        "DescriptionTooLongException",
        "AlarmsLimitExceededException",
    ],
};

const CONTINUE_CODES: CodeMap = CodeMap {
    not_found: &["DeploymentDoesNotExistException"],
    conflict: &[
        "DeploymentIsNotInReadyStateException",
        "DeploymentAlreadyCompletedException",
        "InvalidDeploymentStatusException",
    ],
    invalid: &["UnsupportedActionForDeploymentTypeException"],
};

const STOP_CODES: CodeMap = CodeMap {
    not_found: &[
        "DeploymentDoesNotExistException",
        "DeploymentGroupDoesNotExistException",
    ],
    conflict: &["DeploymentAlreadyCompletedException"],
    invalid: &["UnsupportedActionForDeploymentTypeException"],
};

/// CodeDeploy through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CodeDeployAdapter {
    client: Client,
}

impl CodeDeployAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// CodeDeploy names its validation errors `Invalid...Exception` and `...RequiredException`:
/// the request is wrong and will fail the same way again.
fn refine(mut error: AwsError) -> AwsError {
    if error.kind == AwsErrorKind::Other
        && error
            .code
            .as_deref()
            .is_some_and(|c| c.starts_with("Invalid") || c.ends_with("RequiredException"))
    {
        error.kind = AwsErrorKind::InvalidRequest;
    }
    error
}

/// The id of the active deployment named in a `DeploymentLimitExceededException` message:
/// the quoted token right after the word "Deployment" or "deploying". Both wordings are
/// seen (`... already has an active Deployment 'd-XXXX'`, `... is already deploying
/// 'd-XXXX'`); the group name is quoted too (after "Deployment Group"), so the position of
/// the quote matters, not its mere presence.
pub(crate) fn active_deployment_id(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    for keyword in ["deployment", "deploying"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(keyword) {
            let start = from + found;
            from = start + keyword.len();
            // Whole words only ("redeployment" is not "deployment").
            let before = lower[..start].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            let after = message[from..].trim_start();
            let Some(quote) = after
                .chars()
                .next()
                .filter(|c| matches!(c, '\'' | '"' | '`'))
            else {
                continue;
            };
            let body = &after[quote.len_utf8()..];
            if let Some(end) = body.find(quote) {
                let id = body[..end].trim();
                if !id.is_empty() {
                    return Some(id.to_string());
                }
            }
        }
    }
    None
}

/// Classifies a `CreateDeployment` failure; a refused second deployment carries the id of
/// the active one when the message names it.
fn create_error(error: AwsError) -> AwsError {
    let mut error = refine(error);
    if error.code.as_deref() == Some("DeploymentLimitExceededException") {
        error.kind = AwsErrorKind::DeploymentLimitExceeded {
            active_deployment_id: active_deployment_id(&error.message),
        };
    }
    error
}

fn timestamp(time: &DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn minutes(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn map_group(application: &str, group: &str, info: &sdk::DeploymentGroupInfo) -> DeploymentGroup {
    let blue_green = info.blue_green_deployment_configuration();
    let ready = blue_green.and_then(|b| b.deployment_ready_option());
    let ready_action = match ready.and_then(|r| r.action_on_timeout()) {
        Some(sdk::DeploymentReadyAction::StopDeployment) => ReadyAction::StopDeployment {
            wait_minutes: ready.map_or(0, |r| minutes(r.wait_time_in_minutes())),
        },
        // CONTINUE_DEPLOYMENT is also CodeDeploy's default when the option is absent.
        _ => ReadyAction::ContinueDeployment,
    };
    let pairs = info
        .load_balancer_info()
        .map(|l| l.target_group_pair_info_list())
        .unwrap_or_default();
    let listeners = |route: Option<&sdk::TrafficRoute>| -> Vec<String> {
        route
            .map(|r| r.listener_arns().to_vec())
            .unwrap_or_default()
    };
    DeploymentGroup {
        application: info.application_name().unwrap_or(application).to_string(),
        name: info.deployment_group_name().unwrap_or(group).to_string(),
        ecs_service: info
            .ecs_services()
            .first()
            .and_then(|s| Some((s.cluster_name()?.to_string(), s.service_name()?.to_string()))),
        deployment_config: info
            .deployment_config_name()
            .unwrap_or(DEFAULT_ECS_CONFIG)
            .to_string(),
        ready_action,
        termination_wait_minutes: blue_green
            .and_then(|b| b.terminate_blue_instances_on_deployment_success())
            .map_or(0, |t| minutes(t.termination_wait_time_in_minutes())),
        target_group_names: pairs
            .iter()
            .flat_map(|p| p.target_groups())
            .filter_map(|t| t.name().map(str::to_string))
            .collect(),
        production_listener_arns: pairs
            .iter()
            .flat_map(|p| listeners(p.prod_traffic_route()))
            .collect(),
        test_listener_arns: pairs
            .iter()
            .flat_map(|p| listeners(p.test_traffic_route()))
            .collect(),
    }
}

fn map_creator(creator: Option<&sdk::DeploymentCreator>) -> DeploymentCreator {
    match creator {
        Some(sdk::DeploymentCreator::User) => DeploymentCreator::User,
        Some(sdk::DeploymentCreator::CodeDeployRollback) => DeploymentCreator::CodeDeployRollback,
        Some(other) => DeploymentCreator::Other(other.as_str().to_string()),
        None => DeploymentCreator::Other(String::new()),
    }
}

pub(crate) fn map_deployment(id: &str, info: &sdk::DeploymentInfo) -> Deployment {
    Deployment {
        id: info.deployment_id().unwrap_or(id).to_string(),
        application: info.application_name().unwrap_or_default().to_string(),
        deployment_group: info.deployment_group_name().unwrap_or_default().to_string(),
        status: DeploymentStatus::parse(info.status().map_or("", |s| s.as_str())),
        description: info.description().map(str::to_string),
        creator: map_creator(info.creator()),
        deployment_config: info
            .deployment_config_name()
            .unwrap_or(DEFAULT_ECS_CONFIG)
            .to_string(),
        create_time: info.create_time().and_then(timestamp),
        complete_time: info.complete_time().and_then(timestamp),
        // An empty `errorInformation` object (moto sends one) is no error.
        error: info
            .error_information()
            .filter(|e| e.code().is_some() || e.message().is_some())
            .map(|e| DeploymentErrorInfo {
                code: e.code().map(|c| c.as_str().to_string()).unwrap_or_default(),
                message: e.message().unwrap_or_default().to_string(),
            }),
        rollback: info.rollback_info().map(|r| RollbackInfo {
            rollback_deployment_id: r.rollback_deployment_id().map(str::to_string),
            rollback_triggering_deployment_id: r
                .rollback_triggering_deployment_id()
                .map(str::to_string),
            rollback_message: r.rollback_message().map(str::to_string),
        }),
    }
}

fn map_event_status(status: Option<&sdk::LifecycleEventStatus>) -> LifecycleEventStatus {
    match status {
        Some(sdk::LifecycleEventStatus::Pending) => LifecycleEventStatus::Pending,
        Some(sdk::LifecycleEventStatus::InProgress) => LifecycleEventStatus::InProgress,
        Some(sdk::LifecycleEventStatus::Succeeded) => LifecycleEventStatus::Succeeded,
        Some(sdk::LifecycleEventStatus::Failed) => LifecycleEventStatus::Failed,
        Some(sdk::LifecycleEventStatus::Skipped) => LifecycleEventStatus::Skipped,
        _ => LifecycleEventStatus::Unknown,
    }
}

pub(crate) fn map_target(target: &sdk::EcsTarget) -> DeploymentTarget {
    DeploymentTarget {
        status: target
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        lifecycle_events: target
            .lifecycle_events()
            .iter()
            .map(|e| LifecycleEvent {
                name: e.lifecycle_event_name().unwrap_or_default().to_string(),
                status: map_event_status(e.status()),
                start_time: e.start_time().and_then(timestamp),
                end_time: e.end_time().and_then(timestamp),
            })
            .collect(),
        task_sets: target
            .task_sets_info()
            .iter()
            .map(|t| TargetTaskSet {
                // The API spells the member `identifer`.
                identifier: t.identifer().unwrap_or_default().to_string(),
                status: t.status().unwrap_or_default().to_string(),
                traffic_weight: t.traffic_weight(),
                desired_count: count(t.desired_count()),
                pending_count: count(t.pending_count()),
                running_count: count(t.running_count()),
                target_group_name: t.target_group().and_then(|g| g.name()).map(str::to_string),
                label: t.task_set_label().map(|l| l.as_str().to_string()),
            })
            .collect(),
    }
}

#[async_trait]
impl CodeDeploy for CodeDeployAdapter {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError> {
        const OP: &str = "GetDeploymentGroup";
        let output = self
            .client
            .get_deployment_group()
            .application_name(application)
            .deployment_group_name(group)
            .send()
            .await
            .map_err(|e| refine(classify(SERVICE, OP, e, GROUP_CODES)))?;
        let info = output.deployment_group_info().ok_or_else(|| {
            AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "answer without deploymentGroupInfo",
            )
        })?;
        Ok(map_group(application, group, info))
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListDeployments";
        let mut request = self
            .client
            .list_deployments()
            .application_name(application)
            .deployment_group_name(group);
        request = match filter {
            DeploymentFilter::Active => DeploymentStatus::ACTIVE.iter().fold(request, |r, s| {
                r.include_only_statuses(sdk::DeploymentStatus::from(*s))
            }),
            DeploymentFilter::CreatedSince(since) => request.create_time_range(
                sdk::TimeRange::builder()
                    // Milliseconds, rounded down: a start a little early only widens the search.
                    .start(DateTime::from_millis(since.as_millisecond()))
                    .build(),
            ),
        };
        // Kept in AWS's order (newest first as AWS answers); sorting would need a
        // GetDeployment per id.
        let mut pages = request.into_paginator().items().send();
        let mut ids = Vec::new();
        while let Some(id) = pages.next().await {
            ids.push(id.map_err(|e| refine(classify(SERVICE, OP, e, GROUP_CODES)))?);
        }
        Ok(ids)
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError> {
        const OP: &str = "GetDeployment";
        let output = self
            .client
            .get_deployment()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| refine(classify(SERVICE, OP, e, DEPLOYMENT_CODES)))?;
        let info = output.deployment_info().ok_or_else(|| {
            AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "answer without deploymentInfo",
            )
        })?;
        Ok(map_deployment(deployment_id, info))
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError> {
        const OP: &str = "GetDeploymentTarget";
        let output = self
            .client
            .get_deployment_target()
            .deployment_id(deployment_id)
            .target_id(target_id)
            .send()
            .await
            .map_err(|e| refine(classify(SERVICE, OP, e, TARGET_CODES)))?;
        let target = output
            .deployment_target()
            .and_then(|t| t.ecs_target())
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::Other,
                    format!("target {target_id} of {deployment_id} is not an ECS target"),
                )
            })?;
        Ok(map_target(target))
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateDeployment";
        let revision = sdk::RevisionLocation::builder()
            .revision_type(sdk::RevisionLocationType::AppSpecContent)
            .app_spec_content(
                sdk::AppSpecContent::builder()
                    .content(&request.appspec_content)
                    .build(),
            )
            .build();
        let output = self
            .client
            .create_deployment()
            .application_name(&request.application)
            .deployment_group_name(&request.deployment_group)
            .revision(revision)
            .description(&request.description)
            .set_deployment_config_name(request.deployment_config.clone())
            .customize()
            // No idempotency token: a retried CreateDeployment whose first attempt reached
            // AWS starts a second deployment. One attempt; the caller decides what next.
            .config_override(
                aws_sdk_codedeploy::config::Builder::default()
                    .retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| create_error(classify(SERVICE, OP, e, CREATE_CODES)))?;
        output.deployment_id().map(str::to_string).ok_or_else(|| {
            // The deployment may exist: the caller must look before creating another.
            AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Ambiguous,
                "CreateDeployment answered without a deploymentId",
            )
        })
    }

    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError> {
        const OP: &str = "ContinueDeployment";
        self.client
            .continue_deployment()
            .deployment_id(deployment_id)
            .deployment_wait_type(sdk::DeploymentWaitType::ReadyWait)
            .send()
            .await
            .map_err(|e| refine(classify(SERVICE, OP, e, CONTINUE_CODES)))?;
        Ok(())
    }

    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError> {
        const OP: &str = "StopDeployment";
        self.client
            .stop_deployment()
            .deployment_id(deployment_id)
            .auto_rollback_enabled(rollback)
            .send()
            .await
            .map_err(|e| refine(classify(SERVICE, OP, e, STOP_CODES)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_deployment_id_is_the_quoted_token_after_deployment_or_deploying() {
        assert_eq!(
            active_deployment_id(
                "The Deployment Group 'web-dg' already has an active Deployment 'd-ABCDEF123'"
            )
            .as_deref(),
            Some("d-ABCDEF123")
        );
        assert_eq!(
            active_deployment_id("Deployment group 'web-dg' is already deploying 'd-XYZ'")
                .as_deref(),
            Some("d-XYZ")
        );
        // Ids are not always `d-...`.
        assert_eq!(
            active_deployment_id(
                "The Deployment Group 'g' already has an active Deployment \"1a2b3c\""
            )
            .as_deref(),
            Some("1a2b3c")
        );
        assert_eq!(
            active_deployment_id("already has an active deployment 'rollback-42'.").as_deref(),
            Some("rollback-42")
        );
    }

    #[test]
    fn a_message_without_an_id_gives_none() {
        for message in [
            "",
            "The Deployment Group 'web-dg' already has an active Deployment",
            "The Deployment Group 'web-dg' is already deploying",
            "Deployment limit exceeded",
            "The Deployment Group 'web-dg' already has an active Deployment ''",
            "redeployment 'x' is not a deployment id",
        ] {
            assert_eq!(active_deployment_id(message), None, "{message}");
        }
    }

    #[test]
    fn a_refused_second_deployment_carries_the_active_id() {
        let error = AwsError::new(
            SERVICE,
            "CreateDeployment",
            AwsErrorKind::Other,
            "The Deployment Group 'web-dg' already has an active Deployment 'd-1'",
        )
        .with_code("DeploymentLimitExceededException");
        assert_eq!(
            create_error(error).kind,
            AwsErrorKind::DeploymentLimitExceeded {
                active_deployment_id: Some("d-1".into())
            }
        );
    }

    #[test]
    fn codedeploy_validation_codes_are_invalid_requests() {
        for code in ["InvalidRevisionException", "DeploymentIdRequiredException"] {
            let error = AwsError::new(SERVICE, "X", AwsErrorKind::Other, "m").with_code(code);
            assert_eq!(refine(error).kind, AwsErrorKind::InvalidRequest, "{code}");
        }
        let throttled = AwsError::new(SERVICE, "X", AwsErrorKind::Throttling, "m")
            .with_code("ThrottlingException");
        assert_eq!(refine(throttled).kind, AwsErrorKind::Throttling);
    }

    #[test]
    fn a_group_maps_its_ready_option_termination_wait_and_traffic_routes() {
        let info = sdk::DeploymentGroupInfo::builder()
            .application_name("app")
            .deployment_group_name("dg")
            .deployment_config_name("CodeDeployDefault.ECSCanary10Percent5Minutes")
            .ecs_services(
                sdk::EcsService::builder()
                    .cluster_name("prod")
                    .service_name("web")
                    .build(),
            )
            .blue_green_deployment_configuration(
                sdk::BlueGreenDeploymentConfiguration::builder()
                    .deployment_ready_option(
                        sdk::DeploymentReadyOption::builder()
                            .action_on_timeout(sdk::DeploymentReadyAction::StopDeployment)
                            .wait_time_in_minutes(60)
                            .build(),
                    )
                    .terminate_blue_instances_on_deployment_success(
                        sdk::BlueInstanceTerminationOption::builder()
                            .action(sdk::InstanceAction::Terminate)
                            .termination_wait_time_in_minutes(15)
                            .build(),
                    )
                    .build(),
            )
            .load_balancer_info(
                sdk::LoadBalancerInfo::builder()
                    .target_group_pair_info_list(
                        sdk::TargetGroupPairInfo::builder()
                            .target_groups(sdk::TargetGroupInfo::builder().name("tg-a").build())
                            .target_groups(sdk::TargetGroupInfo::builder().name("tg-b").build())
                            .prod_traffic_route(
                                sdk::TrafficRoute::builder()
                                    .listener_arns("arn:prod")
                                    .build(),
                            )
                            .test_traffic_route(
                                sdk::TrafficRoute::builder()
                                    .listener_arns("arn:test")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build();
        let group = map_group("app", "dg", &info);
        assert_eq!(
            group,
            DeploymentGroup {
                application: "app".into(),
                name: "dg".into(),
                ecs_service: Some(("prod".into(), "web".into())),
                deployment_config: "CodeDeployDefault.ECSCanary10Percent5Minutes".into(),
                ready_action: ReadyAction::StopDeployment { wait_minutes: 60 },
                termination_wait_minutes: 15,
                target_group_names: vec!["tg-a".into(), "tg-b".into()],
                production_listener_arns: vec!["arn:prod".into()],
                test_listener_arns: vec!["arn:test".into()],
            }
        );
    }
}
