//! Behaviour tests of the simulated AWS and store, under paused tokio time.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;

use super::*;
use crate::model::{AuditAction, OperatorRequest, Phase, ReleaseStatus, RequestKind};
use crate::ports::{
    AlarmState, AwsErrorKind, CodeDeploy, CreateDeploymentRequest, DeploymentCreator,
    DeploymentFilter, DeploymentStatus, Ecs, LifecycleEventStatus, ReleaseStore, SpecPrecondition,
    SpecWrite, StoreError,
};

const CANARY: &str = "CodeDeployDefault.ECSCanary10Percent5Minutes";
const LINEAR: &str = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes";

/// Virtual time from `CreateDeployment` until `AllowTraffic` starts, for `desired` tasks:
/// Created 1 s, BeforeInstall 1 s, one task per 5 s, AfterInstall 1 s, AllowTestTraffic 2 s,
/// AfterAllowTestTraffic 1 s, BeforeAllowTraffic 1 s.
fn until_allow_traffic(desired: u32) -> Duration {
    CREATED_TO_IN_PROGRESS
        + HOOK_EVENT
        + TASK_START_INTERVAL * desired
        + HOOK_EVENT
        + ALLOW_TEST_TRAFFIC
        + HOOK_EVENT
        + HOOK_EVENT
}

async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

struct Fixture {
    aws: SimAws,
    handles: BlueGreenHandles,
    setup: BlueGreenSetup,
}

impl Fixture {
    fn new(configure: impl FnOnce(&mut BlueGreenSetup)) -> Self {
        let aws = SimAws::new(Clock::fixed_epoch());
        let mut setup = BlueGreenSetup::new("prod", "web");
        configure(&mut setup);
        let handles = aws.add_bluegreen_service(setup.clone());
        Self {
            aws,
            handles,
            setup,
        }
    }

    /// Registers a new revision with another image through the ECS port.
    async fn new_revision(&self, image: &str) -> TaskDefinition {
        let mut container = self.handles.task_definition.containers[0].clone();
        container.image = image.to_string();
        self.aws
            .register_task_definition(
                &self.handles.task_definition,
                &[container],
                &Default::default(),
            )
            .await
            .expect("register")
    }

    fn appspec(&self, task_definition_arn: &str) -> String {
        appspec_text(
            task_definition_arn,
            &self.setup.container_name,
            self.setup.container_port,
        )
    }

    fn request(&self, appspec: String) -> CreateDeploymentRequest {
        CreateDeploymentRequest {
            application: self.setup.application.clone(),
            deployment_group: self.setup.deployment_group.clone(),
            appspec_content: appspec,
            description: "switchyard release web generation 2".to_string(),
            deployment_config: None,
        }
    }

    async fn deploy(&self, image: &str) -> (TaskDefinition, String) {
        let td = self.new_revision(image).await;
        let id = self
            .aws
            .create_deployment(&self.request(self.appspec(&td.arn)))
            .await
            .expect("create deployment");
        (td, id)
    }

    async fn status(&self, id: &str) -> DeploymentStatus {
        self.aws
            .get_deployment(id)
            .await
            .expect("deployment")
            .status
    }

    fn production(&self) -> BTreeMap<String, u32> {
        weights(&self.aws, &self.handles.production_listener_arn)
    }

    fn test_listener(&self) -> BTreeMap<String, u32> {
        weights(&self.aws, &self.handles.test_listener_arn)
    }

    fn web(&self) -> Service {
        self.aws.service("prod", "web").expect("service")
    }
}

fn appspec_text(task_definition_arn: &str, container: &str, port: u16) -> String {
    serde_json::json!({
        "version": 0.0,
        "Resources": [{"TargetService": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "TaskDefinition": task_definition_arn,
                "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port},
                "PlatformVersion": "LATEST",
                "NetworkConfiguration": {"AwsvpcConfiguration": {
                    "Subnets": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                    "SecurityGroups": ["sg-0a1b2c3d4e5f60001"],
                    "AssignPublicIp": "DISABLED"
                }}
            }
        }}]
    })
    .to_string()
}

/// Listener weights by target group name (`web-tg-a`, `web-tg-b`).
fn weights(aws: &SimAws, listener_arn: &str) -> BTreeMap<String, u32> {
    aws.listener(listener_arn)
        .expect("listener")
        .forward
        .iter()
        .map(|t| {
            (
                crate::ports::target_group_name_from_arn(&t.target_group_arn).to_string(),
                t.weight,
            )
        })
        .collect()
}

fn map(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

// ---------------------------------------------------------------------------------------
// CodeDeploy lifecycle

#[tokio::test(start_paused = true)]
async fn all_at_once_deployment_replaces_the_task_set_and_succeeds() {
    let f = Fixture::new(|_| {});
    let original = f.web().task_sets[0].clone();
    assert_eq!(f.production(), map(&[("web-tg-a", 1)]));

    let (td, id) = f.deploy("web:2.0.0").await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Created);

    advance(CREATED_TO_IN_PROGRESS + HOOK_EVENT + TASK_START_INTERVAL).await;
    let web = f.web();
    let replacement = web
        .task_sets
        .iter()
        .find(|t| t.external_id.as_deref() == Some(id.as_str()))
        .expect("replacement task set")
        .clone();
    assert_eq!(replacement.status, TaskSetStatus::Active);
    assert_eq!(replacement.started_by.as_deref(), Some("CODE_DEPLOY"));
    assert_eq!(replacement.task_definition, td.arn);
    assert_eq!(
        (replacement.running_count, replacement.pending_count),
        (1, 1)
    );
    assert_eq!(
        crate::ports::target_group_name_from_arn(&replacement.target_group_arns[0]),
        "web-tg-b"
    );
    assert_eq!(f.status(&id).await, DeploymentStatus::InProgress);

    advance(until_allow_traffic(2) - (CREATED_TO_IN_PROGRESS + HOOK_EVENT + TASK_START_INTERVAL))
        .await;
    assert_eq!(f.test_listener(), map(&[("web-tg-b", 1)]));
    assert_eq!(f.production(), map(&[("web-tg-a", 0), ("web-tg-b", 100)]));
    let web = f.web();
    assert_eq!(web.primary_task_set().unwrap().id, replacement.id);
    assert_eq!(web.task_definition.as_deref(), Some(td.arn.as_str()));

    advance(HOOK_EVENT).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Succeeded);
    let web = f.web();
    assert_eq!(web.task_sets.len(), 1);
    assert!(web.task_sets.iter().all(|t| t.id != original.id));
    // The old target group stays in the forward config at weight 0, as CodeDeploy leaves it.
    assert_eq!(f.production(), map(&[("web-tg-a", 0), ("web-tg-b", 100)]));

    let target = f.aws.get_deployment_target(&id, "prod:web").await.unwrap();
    assert_eq!(target.status, "Succeeded");
    assert!(
        target
            .lifecycle_events
            .iter()
            .all(|e| e.status == LifecycleEventStatus::Succeeded)
    );
    let names: Vec<_> = target
        .lifecycle_events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, LIFECYCLE_EVENTS);
}

#[tokio::test(start_paused = true)]
async fn canary_shifts_ten_percent_then_all_after_five_minutes() {
    let f = Fixture::new(|s| s.deployment_config = CANARY.to_string());
    let (td, id) = f.deploy("web:2.0.0").await;

    advance(until_allow_traffic(2) + Duration::from_secs(10)).await;
    assert_eq!(f.production(), map(&[("web-tg-a", 90), ("web-tg-b", 10)]));
    let target = f.aws.get_deployment_target(&id, "prod:web").await.unwrap();
    let by_label: BTreeMap<_, _> = target
        .task_sets
        .iter()
        .map(|t| {
            (
                t.label.clone().unwrap(),
                (t.status.clone(), t.traffic_weight),
            )
        })
        .collect();
    assert_eq!(by_label["Blue"], ("PRIMARY".to_string(), 90.0));
    assert_eq!(by_label["Green"], ("ACTIVE".to_string(), 10.0));
    let allow = &target.lifecycle_events[6];
    assert_eq!(
        (allow.name.as_str(), allow.status),
        ("AllowTraffic", LifecycleEventStatus::InProgress)
    );

    // Just before the five minutes are up: still 10%.
    advance(Duration::from_secs(5 * 60 - 11)).await;
    assert_eq!(f.production(), map(&[("web-tg-a", 90), ("web-tg-b", 10)]));

    advance(Duration::from_secs(1)).await;
    assert_eq!(f.production(), map(&[("web-tg-a", 0), ("web-tg-b", 100)]));
    assert_eq!(f.web().task_definition.as_deref(), Some(td.arn.as_str()));

    // A call much later sees the whole rest of the lifecycle at once.
    advance(Duration::from_secs(20 * 60)).await;
    let deployment = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Succeeded);
    assert_eq!(deployment.deployment_config, CANARY);
    let complete = deployment.complete_time.unwrap();
    let created = deployment.create_time.unwrap();
    assert_eq!(
        complete.duration_since(created).as_secs(),
        (until_allow_traffic(2) + Duration::from_secs(5 * 60) + HOOK_EVENT).as_secs() as i64
    );
}

#[tokio::test(start_paused = true)]
async fn linear_shifts_ten_percent_every_minute() {
    let f = Fixture::new(|_| {});
    let td = f.new_revision("web:2.0.0").await;
    let mut request = f.request(f.appspec(&td.arn));
    request.deployment_config = Some(LINEAR.to_string());
    f.aws.create_deployment(&request).await.unwrap();

    advance(until_allow_traffic(2)).await;
    for step in 1..=9 {
        assert_eq!(
            f.production(),
            map(&[("web-tg-a", 100 - 10 * step), ("web-tg-b", 10 * step)])
        );
        advance(Duration::from_secs(60)).await;
    }
    assert_eq!(f.production(), map(&[("web-tg-a", 0), ("web-tg-b", 100)]));
}

#[tokio::test(start_paused = true)]
async fn termination_wait_keeps_the_original_until_it_ends() {
    let f = Fixture::new(|s| s.termination_wait_minutes = 5);
    let (_, id) = f.deploy("web:2.0.0").await;
    advance(until_allow_traffic(2) + HOOK_EVENT).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::InProgress);
    let web = f.web();
    assert_eq!(web.task_sets.len(), 2);
    let original = web
        .task_sets
        .iter()
        .find(|t| t.external_id.is_none())
        .unwrap();
    assert_eq!(original.status, TaskSetStatus::Active);

    advance(Duration::from_secs(5 * 60)).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Succeeded);
    assert_eq!(f.web().task_sets.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn target_groups_swap_roles_on_every_deployment() {
    let f = Fixture::new(|_| {});
    let (_, first) = f.deploy("web:2.0.0").await;
    advance(Duration::from_secs(60)).await;
    assert_eq!(f.status(&first).await, DeploymentStatus::Succeeded);

    let (td, second) = f.deploy("web:3.0.0").await;
    advance(Duration::from_secs(60)).await;
    assert_eq!(f.status(&second).await, DeploymentStatus::Succeeded);
    assert_eq!(f.production(), map(&[("web-tg-a", 100), ("web-tg-b", 0)]));
    assert_eq!(f.test_listener(), map(&[("web-tg-a", 1)]));
    let primary = f.web().primary_task_set().unwrap().clone();
    assert_eq!(primary.task_definition, td.arn);
    assert_eq!(
        crate::ports::target_group_name_from_arn(&primary.target_group_arns[0]),
        "web-tg-a"
    );
}

#[tokio::test(start_paused = true)]
async fn second_create_deployment_fails_naming_the_active_id() {
    let f = Fixture::new(|_| {});
    let (td, first) = f.deploy("web:2.0.0").await;
    let err = f
        .aws
        .create_deployment(&f.request(f.appspec(&td.arn)))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        AwsErrorKind::DeploymentLimitExceeded {
            active_deployment_id: Some(first.clone())
        }
    );
    assert_eq!(
        err.code.as_deref(),
        Some("DeploymentLimitExceededException")
    );
    assert_eq!(
        err.message,
        format!("The Deployment Group 'web-prod' already has an active Deployment '{first}'")
    );
    assert_eq!(
        f.aws
            .list_deployments("web", "web-prod", DeploymentFilter::Active)
            .await
            .unwrap(),
        vec![first.clone()]
    );

    // Once the first finished, a new one is accepted; lists are newest first.
    advance(Duration::from_secs(60)).await;
    let second = f
        .aws
        .create_deployment(&f.request(f.appspec(&td.arn)))
        .await
        .unwrap();
    assert!(second.starts_with("d-") && second.len() == 11 && second != first);
    let epoch = Timestamp::from_second(1_767_225_600).unwrap();
    assert_eq!(
        f.aws
            .list_deployments("web", "web-prod", DeploymentFilter::CreatedSince(epoch))
            .await
            .unwrap(),
        vec![second.clone(), first.clone()]
    );
    assert_eq!(
        f.aws
            .list_deployments(
                "web",
                "web-prod",
                DeploymentFilter::CreatedSince(epoch + jiff::SignedDuration::from_secs(30))
            )
            .await
            .unwrap(),
        vec![second]
    );
}

#[tokio::test(start_paused = true)]
async fn ready_deployment_waits_for_continue() {
    let f = Fixture::new(|s| s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 });
    let (td, id) = f.deploy("web:2.0.0").await;

    let early = f.aws.continue_deployment(&id).await.unwrap_err();
    assert_eq!(early.kind, AwsErrorKind::Conflict);
    assert_eq!(
        early.code.as_deref(),
        Some("DeploymentIsNotInReadyStateException")
    );

    advance(Duration::from_secs(30 * 60)).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Ready);
    assert_eq!(f.production(), map(&[("web-tg-a", 1)]));
    assert_eq!(f.test_listener(), map(&[("web-tg-b", 1)]));
    let target = f.aws.get_deployment_target(&id, "prod:web").await.unwrap();
    assert_eq!(target.status, "Ready");
    assert_eq!(
        target.lifecycle_events[6].status,
        LifecycleEventStatus::Pending
    );

    assert!(
        f.aws.continue_calls().is_empty(),
        "the early call was refused"
    );
    f.aws.continue_deployment(&id).await.unwrap();
    assert_eq!(f.status(&id).await, DeploymentStatus::InProgress);
    assert_eq!(f.production(), map(&[("web-tg-a", 0), ("web-tg-b", 100)]));
    let again = f.aws.continue_deployment(&id).await.unwrap_err();
    assert_eq!(again.kind, AwsErrorKind::Conflict, "no longer Ready");
    assert_eq!(f.aws.continue_calls().get(&id), Some(&1));
    advance(HOOK_EVENT).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Succeeded);
    assert_eq!(f.web().task_definition.as_deref(), Some(td.arn.as_str()));
}

#[tokio::test(start_paused = true)]
async fn ready_deployment_not_continued_in_time_stops_and_rolls_back() {
    let f = Fixture::new(|s| s.ready_action = ReadyAction::StopDeployment { wait_minutes: 10 });
    let original_td = f.handles.task_definition.arn.clone();
    let (_, id) = f.deploy("web:2.0.0").await;

    advance(until_allow_traffic(2) + Duration::from_secs(10 * 60 + 10)).await;
    let deployment = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Stopped);
    assert_eq!(deployment.error.unwrap().code, "TIMEOUT");
    let rollback_id = deployment.rollback.unwrap().rollback_deployment_id.unwrap();
    assert_eq!(f.status(&rollback_id).await, DeploymentStatus::Succeeded);
    let web = f.web();
    assert_eq!(web.task_sets.len(), 1);
    assert_eq!(web.task_definition.as_deref(), Some(original_td.as_str()));
    assert_eq!(f.test_listener(), map(&[("web-tg-a", 1)]));
}

#[tokio::test(start_paused = true)]
async fn stop_with_rollback_restores_the_original_task_set_and_listener() {
    let f = Fixture::new(|s| s.deployment_config = LINEAR.to_string());
    let original = f.web().primary_task_set().unwrap().clone();
    let (_, id) = f.deploy("web:2.0.0").await;
    advance(until_allow_traffic(2) + Duration::from_secs(90)).await;
    assert_eq!(f.production(), map(&[("web-tg-a", 80), ("web-tg-b", 20)]));

    f.aws.stop_deployment(&id, true).await.unwrap();
    // CodeDeploy stops asynchronously: the deployment keeps its status for a while, and a
    // second StopDeployment meanwhile is accepted (and counted).
    let stopping = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(stopping.status, DeploymentStatus::InProgress);
    f.aws.stop_deployment(&id, true).await.unwrap();
    assert_eq!(f.aws.stop_calls().get(&id), Some(&2));
    advance(crate::sim::STOP_DELAY).await;
    let stopped = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(stopped.status, DeploymentStatus::Stopped);
    let error = stopped.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("MANUAL_STOP", "Deployment was stopped by user")
    );
    let rollback_id = stopped.rollback.unwrap().rollback_deployment_id.unwrap();
    let rollback = f.aws.get_deployment(&rollback_id).await.unwrap();
    assert_eq!(rollback.creator, DeploymentCreator::CodeDeployRollback);
    assert_eq!(rollback.status, DeploymentStatus::InProgress);
    assert_eq!(rollback.deployment_group, "web-prod");
    assert_eq!(
        rollback.rollback.unwrap().rollback_triggering_deployment_id,
        Some(id.clone())
    );

    // Traffic is back at once; the rollback is the group's active deployment for a while.
    assert_eq!(f.production(), map(&[("web-tg-a", 100), ("web-tg-b", 0)]));
    assert_eq!(f.test_listener(), map(&[("web-tg-a", 1)]));
    assert_eq!(f.web().primary_task_set().unwrap().id, original.id);
    assert_eq!(
        f.aws
            .list_deployments("web", "web-prod", DeploymentFilter::Active)
            .await
            .unwrap(),
        vec![rollback_id.clone()]
    );
    let td = f.handles.task_definition.arn.clone();
    let err = f
        .aws
        .create_deployment(&f.request(f.appspec(&td)))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        AwsErrorKind::DeploymentLimitExceeded {
            active_deployment_id: Some(rollback_id.clone())
        }
    );

    advance(ROLLBACK_DURATION).await;
    assert_eq!(f.status(&rollback_id).await, DeploymentStatus::Succeeded);
    let web = f.web();
    assert_eq!(web.task_sets.len(), 1);
    assert_eq!(web.task_sets[0].id, original.id);
    assert_eq!(web.task_definition.as_deref(), Some(td.as_str()));
    assert_eq!(f.aws.all_deployments().len(), 2);

    let again = f.aws.stop_deployment(&id, true).await.unwrap_err();
    assert_eq!(again.kind, AwsErrorKind::Conflict);
    assert_eq!(
        again.code.as_deref(),
        Some("DeploymentAlreadyCompletedException")
    );
}

#[tokio::test(start_paused = true)]
async fn stop_without_rollback_leaves_traffic_where_it_is() {
    let f = Fixture::new(|s| s.deployment_config = LINEAR.to_string());
    let (_, id) = f.deploy("web:2.0.0").await;
    advance(until_allow_traffic(2) + Duration::from_secs(30)).await;
    f.aws.stop_deployment(&id, false).await.unwrap();
    advance(Duration::from_secs(10 * 60)).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Stopped);
    assert_eq!(f.aws.all_deployments().len(), 1);
    assert_eq!(f.production(), map(&[("web-tg-a", 90), ("web-tg-b", 10)]));
}

#[tokio::test(start_paused = true)]
async fn install_failure_fails_the_deployment_after_the_timeout() {
    let f = Fixture::new(|_| {});
    f.aws.fail_install_for_image("-broken");
    let original_td = f.handles.task_definition.arn.clone();
    let (_, id) = f.deploy("web:2.0.0-broken").await;

    advance(INSTALL_TIMEOUT).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::InProgress);
    let target = f.aws.get_deployment_target(&id, "prod:web").await.unwrap();
    let green = target
        .task_sets
        .iter()
        .find(|t| t.label.as_deref() == Some("Green"))
        .unwrap();
    assert_eq!((green.running_count, green.pending_count), (0, 2));
    assert_eq!(
        target.lifecycle_events[1].status,
        LifecycleEventStatus::InProgress
    );

    advance(CREATED_TO_IN_PROGRESS + HOOK_EVENT).await;
    let deployment = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    assert_eq!(deployment.error.unwrap().code, "ECS_UPDATE_ERROR");
    assert!(deployment.rollback.is_none());
    assert_eq!(f.aws.all_deployments().len(), 1);
    let web = f.web();
    assert_eq!(web.task_sets.len(), 1);
    assert_eq!(web.task_definition.as_deref(), Some(original_td.as_str()));
    assert_eq!(f.production(), map(&[("web-tg-a", 1)]));
    let events = f
        .aws
        .get_deployment_target(&id, "prod:web")
        .await
        .unwrap()
        .lifecycle_events;
    assert_eq!(events[1].status, LifecycleEventStatus::Failed);
    assert_eq!(events[2].status, LifecycleEventStatus::Skipped);
}

// ---------------------------------------------------------------------------------------
// CreateDeployment validation

#[tokio::test(start_paused = true)]
async fn appspec_with_unknown_container_is_rejected() {
    let f = Fixture::new(|_| {});
    let td = f.new_revision("web:2.0.0").await;
    let err = f
        .aws
        .create_deployment(&f.request(appspec_text(&td.arn, "sidecar", 8080)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(err.code.as_deref(), Some("InvalidRevisionException"));
    assert!(err.message.contains("'sidecar'"), "{}", err.message);

    let wrong_port = f
        .aws
        .create_deployment(&f.request(appspec_text(&td.arn, "web", 9090)))
        .await
        .unwrap_err();
    assert!(
        wrong_port.message.contains("9090"),
        "{}",
        wrong_port.message
    );

    let short_name = f
        .aws
        .create_deployment(&f.request(appspec_text(&td.short_name(), "web", 8080)))
        .await
        .unwrap_err();
    assert!(short_name.message.contains("full task definition ARN"));

    let unregistered = f
        .aws
        .create_deployment(&f.request(appspec_text(
            "arn:aws:ecs:us-east-1:111122223333:task-definition/web:99",
            "web",
            8080,
        )))
        .await
        .unwrap_err();
    assert!(unregistered.message.contains("not registered"));
    assert!(f.aws.all_deployments().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deployment_configs_must_exist() {
    let f = Fixture::new(|_| {});
    let td = f.new_revision("web:2.0.0").await;
    let mut request = f.request(f.appspec(&td.arn));
    request.deployment_config = Some("CodeDeployDefault.ECSLinear10PercentEvery1Minute".into());
    let err = f.aws.create_deployment(&request).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(
        err.code.as_deref(),
        Some("DeploymentConfigDoesNotExistException")
    );

    f.aws.add_custom_deployment_config(
        "Canary50Percent2Minutes",
        TrafficRouting::Canary {
            percent: 50,
            interval_minutes: 2,
        },
    );
    request.deployment_config = Some("Canary50Percent2Minutes".into());
    f.aws.create_deployment(&request).await.unwrap();
    advance(until_allow_traffic(2)).await;
    assert_eq!(f.production(), map(&[("web-tg-a", 50), ("web-tg-b", 50)]));
}

#[tokio::test(start_paused = true)]
async fn missing_application_group_and_deployment_are_not_found() {
    let f = Fixture::new(|_| {});
    let app = f
        .aws
        .get_deployment_group("nope", "web-prod")
        .await
        .unwrap_err();
    assert_eq!(
        (app.kind, app.code.as_deref()),
        (
            AwsErrorKind::NotFound,
            Some("ApplicationDoesNotExistException")
        )
    );
    let group = f.aws.get_deployment_group("web", "nope").await.unwrap_err();
    assert_eq!(
        group.code.as_deref(),
        Some("DeploymentGroupDoesNotExistException")
    );
    let deployment = f.aws.get_deployment("d-AAAAAAAAA").await.unwrap_err();
    assert_eq!(
        (deployment.kind, deployment.code.as_deref()),
        (
            AwsErrorKind::NotFound,
            Some("DeploymentDoesNotExistException")
        )
    );

    let g = f.aws.get_deployment_group("web", "web-prod").await.unwrap();
    assert_eq!(g.target_group_names, vec!["web-tg-a", "web-tg-b"]);
    assert_eq!(g.ecs_service, Some(("prod".into(), "web".into())));
    assert_eq!(
        g.production_listener_arns,
        vec![f.handles.production_listener_arn.clone()]
    );
    assert_eq!(
        g.test_listener_arns,
        vec![f.handles.test_listener_arn.clone()]
    );
}

#[tokio::test(start_paused = true)]
async fn an_appspec_without_capacity_provider_strategy_drops_the_services() {
    let f = Fixture::new(|s| {
        s.capacity_provider_strategy = vec![CapacityProviderItem {
            capacity_provider: "FARGATE_SPOT".into(),
            base: 0,
            weight: 1,
        }]
    });
    assert_eq!(f.web().capacity_provider_strategy.len(), 1);
    let (_, id) = f.deploy("web:2.0.0").await;
    advance(Duration::from_secs(60)).await;
    assert_eq!(f.status(&id).await, DeploymentStatus::Succeeded);
    assert!(f.web().capacity_provider_strategy.is_empty());
    assert!(
        f.aws
            .appspec_of(&id)
            .unwrap()
            .contains("AwsvpcConfiguration")
    );
}

// ---------------------------------------------------------------------------------------
// ECS, ELB, CloudWatch

#[tokio::test(start_paused = true)]
async fn describe_services_rejects_more_than_ten_names() {
    let f = Fixture::new(|_| {});
    let names: Vec<String> = (0..11).map(|i| format!("svc-{i}")).collect();
    let err = f.aws.describe_services("prod", &names).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidRequest);

    let found = f
        .aws
        .describe_services("prod", &["web".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let web = &found[0];
    assert_eq!(web.arn, f.handles.service_arn);
    assert_eq!(
        web.deployment_controller,
        crate::ports::DeploymentControllerType::CodeDeploy
    );
    assert_eq!(web.task_sets.len(), 1);
    assert_eq!(web.task_sets[0].running_count, 2);
    assert_eq!(web.load_balancers[0].container_port, 8080);
    assert_eq!(web.platform_version.as_deref(), Some("LATEST"));
}

#[tokio::test(start_paused = true)]
async fn ecs_takes_a_cluster_by_name_or_by_arn() {
    let f = Fixture::new(|_| {});
    let web = vec!["web".to_string()];
    let by_name = f.aws.describe_services("prod", &web).await.unwrap();
    let by_arn = f
        .aws
        .describe_services("arn:aws:ecs:us-east-1:111122223333:cluster/prod", &web)
        .await
        .unwrap();
    assert_eq!(by_arn, by_name);
    assert_eq!(
        by_arn[0].cluster, "prod",
        "ECS answers with the cluster's name"
    );
    assert_eq!(
        f.aws
            .service("arn:aws:ecs:us-east-1:111122223333:cluster/prod", "web")
            .as_ref(),
        Some(&by_name[0])
    );

    // Another account's cluster of that name is not this one; a malformed ARN is refused.
    let other_account = f
        .aws
        .describe_services("arn:aws:ecs:us-east-1:444455556666:cluster/prod", &web)
        .await
        .unwrap_err();
    assert_eq!(
        (other_account.kind, other_account.code.as_deref()),
        (AwsErrorKind::NotFound, Some("ClusterNotFoundException"))
    );
    for malformed in [
        "arn:aws:ecs:us-east-1:111122223333:service/prod/web",
        "arn:aws:ecs:us-east-1:111122223333:cluster/",
    ] {
        let error = f.aws.describe_services(malformed, &web).await.unwrap_err();
        assert_eq!(
            (error.kind, error.code.as_deref()),
            (
                AwsErrorKind::InvalidRequest,
                Some("InvalidParameterException")
            ),
            "{malformed}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn codedeploy_finds_a_deployment_target_by_cluster_name_only() {
    let f = Fixture::new(|_| {});
    let (_, id) = f.deploy("web:2.0.0").await;
    f.aws.get_deployment_target(&id, "prod:web").await.unwrap();
    let error = f
        .aws
        .get_deployment_target(&id, "arn:aws:ecs:us-east-1:111122223333:cluster/prod:web")
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_deref()),
        (
            AwsErrorKind::NotFound,
            Some("DeploymentTargetDoesNotExistException")
        )
    );
}

#[test]
#[should_panic(expected = "cluster name")]
fn a_service_is_set_up_in_a_cluster_named_by_its_name() {
    let aws = SimAws::new(Clock::fixed_epoch());
    aws.add_bluegreen_service(BlueGreenSetup::new(
        "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
        "web",
    ));
}

#[tokio::test(start_paused = true)]
async fn task_definitions_resolve_by_family_revision_and_arn() {
    let f = Fixture::new(|_| {});
    let base = f.handles.task_definition.clone();
    assert_eq!(
        base.arn,
        "arn:aws:ecs:us-east-1:111122223333:task-definition/web:1"
    );
    let mut change = base.containers[0].clone();
    change.image = "web:2.0.0".into();
    change.environment.insert("MODE".into(), "fast".into());
    change.other_fields_digest = "ignored".into();
    let second = f
        .aws
        .register_task_definition(&base, &[change], &Default::default())
        .await
        .unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!(second.other_fields_digest, base.other_fields_digest);
    assert_eq!(
        second.containers[0].other_fields_digest,
        base.containers[0].other_fields_digest
    );
    assert_eq!(second.containers[0].environment["MODE"], "fast");

    assert_eq!(f.aws.describe_task_definition("web").await.unwrap(), second);
    assert_eq!(f.aws.describe_task_definition("web:1").await.unwrap(), base);
    assert_eq!(
        f.aws.describe_task_definition(&second.arn).await.unwrap(),
        second
    );
    let missing = f.aws.describe_task_definition("web:3").await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code.as_deref()),
        (AwsErrorKind::NotFound, Some("ClientException"))
    );

    let mut stranger = base.containers[0].clone();
    stranger.name = "sidecar".into();
    let err = f
        .aws
        .register_task_definition(&base, &[stranger], &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(f.aws.task_definitions("web").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_registration_input_renders_the_copy_and_registers_nothing() {
    let f = Fixture::new(|_| {});
    let base = f.handles.task_definition.clone();
    let mut change = base.containers[0].clone();
    change.image = "web:2.0.0".into();
    change.environment = BTreeMap::from([("MODE".into(), "fast".into())]);
    let tags = BTreeMap::from([("switchyard.dev/release".to_string(), "web".to_string())]);
    let input = f
        .aws
        .registration_input(&base, std::slice::from_ref(&change), &tags)
        .await
        .unwrap();
    assert_eq!(input["family"], "web");
    assert_eq!(
        input["containerDefinitions"][0]["name"],
        change.name.as_str()
    );
    assert_eq!(input["containerDefinitions"][0]["image"], "web:2.0.0");
    assert_eq!(
        input["containerDefinitions"][0]["environment"],
        serde_json::json!([{"name": "MODE", "value": "fast"}])
    );
    assert_eq!(
        input["tags"],
        serde_json::json!([{"key": "switchyard.dev/release", "value": "web"}])
    );
    assert_eq!(f.aws.task_definitions("web").len(), 1, "nothing registered");

    // A revision rendered as a registration of itself, and a container it does not have.
    let itself = f
        .aws
        .registration_input(&base, &[], &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        itself["containerDefinitions"][0]["image"],
        base.containers[0].image.as_str()
    );
    let mut stranger = change.clone();
    stranger.name = "sidecar".into();
    let refused = f
        .aws
        .registration_input(&base, &[stranger], &tags)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(f.aws.task_definitions("web").len(), 1);
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn describe_alarms_returns_composite_and_log_alarms_only_when_asked_like_aws() {
    let aws = SimAws::new(Clock::fixed_epoch());
    aws.add_alarm("web-5xx", AlarmType::MetricAlarm, AlarmState::Ok);
    aws.add_alarm("web-health", AlarmType::CompositeAlarm, AlarmState::Alarm);
    aws.add_alarm("web-log-errors", AlarmType::LogAlarm, AlarmState::Alarm);
    let all = names(&["web-5xx", "web-health", "web-log-errors", "web-typo"]);
    let described = |types: &'static [AlarmType]| {
        let (aws, all) = (aws.clone(), all.clone());
        async move {
            aws.describe_alarms(&all, types)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(described(&[]).await, ["web-5xx"], "metric alarms only");
    assert_eq!(
        described(&[AlarmType::CompositeAlarm]).await,
        ["web-health"]
    );
    assert_eq!(described(&[AlarmType::LogAlarm]).await, ["web-log-errors"]);
    assert_eq!(
        described(&AlarmType::ALL).await,
        ["web-5xx", "web-health", "web-log-errors"]
    );

    // set_alarm keeps an alarm's type; a name that is no alarm becomes a metric alarm.
    aws.set_alarm("web-log-errors", AlarmState::Ok);
    aws.set_alarm("web-latency", AlarmState::Alarm);
    assert_eq!(
        aws.describe_alarms(
            &names(&["web-log-errors", "web-latency"]),
            &[AlarmType::LogAlarm]
        )
        .await
        .unwrap(),
        [DescribedAlarm {
            name: "web-log-errors".into(),
            alarm_type: AlarmType::LogAlarm,
            state: AlarmState::Ok,
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn the_alarms_port_reads_every_alarm_type_and_leaves_out_missing_alarms() {
    use crate::ports::Alarms;
    let aws = SimAws::new(Clock::fixed_epoch());
    aws.add_alarm("web-5xx", AlarmType::MetricAlarm, AlarmState::Ok);
    aws.add_alarm("web-health", AlarmType::CompositeAlarm, AlarmState::Alarm);
    aws.add_alarm("web-log-errors", AlarmType::LogAlarm, AlarmState::Alarm);
    aws.add_alarm("web-gone", AlarmType::MetricAlarm, AlarmState::Ok);
    aws.delete_alarm("web-gone");
    let states = aws
        .alarm_states(&names(&[
            "web-5xx",
            "web-health",
            "web-log-errors",
            "web-gone",
            "web-typo",
        ]))
        .await
        .unwrap();
    assert_eq!(
        states,
        BTreeMap::from([
            ("web-5xx".to_string(), AlarmState::Ok),
            ("web-health".to_string(), AlarmState::Alarm),
            ("web-log-errors".to_string(), AlarmState::Alarm),
        ]),
        "every type read; deleted and unknown names absent, not OK"
    );
    assert_eq!(aws.call_counts().get("cloudwatch:DescribeAlarms"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn alarms_and_listeners_are_described() {
    use crate::ports::{Alarms, LoadBalancer};
    let f = Fixture::new(|_| {});
    f.aws.set_alarm("web-5xx", AlarmState::Ok);
    f.aws.set_alarm("web-5xx", AlarmState::Alarm);
    let states = f
        .aws
        .alarm_states(&["web-5xx".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(
        states,
        BTreeMap::from([("web-5xx".to_string(), AlarmState::Alarm)])
    );
    let too_many: Vec<String> = (0..101).map(|i| format!("a{i}")).collect();
    assert_eq!(
        f.aws.alarm_states(&too_many).await.unwrap_err().kind,
        AwsErrorKind::InvalidRequest
    );
    assert_eq!(
        f.aws.call_counts().get("cloudwatch:DescribeAlarms"),
        Some(&2),
        "one call per alarm_states, the refused one included"
    );

    let listener = f
        .aws
        .describe_listener(&f.handles.production_listener_arn)
        .await
        .unwrap();
    assert_eq!(listener.percent_to("web-tg-a"), Some(100.0));
    assert!(
        f.handles.production_listener_arn.starts_with(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/app/web-alb/"
        )
    );
    assert_eq!(
        f.aws.describe_listener("arn:nope").await.unwrap_err().kind,
        AwsErrorKind::NotFound
    );
}

// ---------------------------------------------------------------------------------------
// Faults and call counts

#[tokio::test(start_paused = true)]
async fn injected_lost_response_still_takes_effect() {
    let f = Fixture::new(|_| {});
    let td = f.new_revision("web:2.0.0").await;
    f.aws.inject(FaultRule::times(
        "codedeploy:CreateDeployment",
        Fault::LostResponse,
        1,
    ));
    let err = f
        .aws
        .create_deployment(&f.request(f.appspec(&td.arn)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::Ambiguous);
    assert!(err.is_retryable());

    let active = f
        .aws
        .list_deployments("web", "web-prod", DeploymentFilter::Active)
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    // A blind retry meets the deployment the lost call created.
    let retry = f
        .aws
        .create_deployment(&f.request(f.appspec(&td.arn)))
        .await
        .unwrap_err();
    assert_eq!(
        retry.kind,
        AwsErrorKind::DeploymentLimitExceeded {
            active_deployment_id: Some(active[0].clone())
        }
    );
    assert_eq!(f.aws.call_counts()["codedeploy:CreateDeployment"], 2);
}

#[tokio::test(start_paused = true)]
async fn injected_throttling_and_server_errors_do_not_take_effect() {
    let f = Fixture::new(|_| {});
    f.aws.inject(FaultRule::times(
        "ecs:RegisterTaskDefinition",
        Fault::Throttle,
        1,
    ));
    f.aws.inject(FaultRule::times("*", Fault::ServerError, 1));
    let base = f.handles.task_definition.clone();

    let throttled = f
        .aws
        .register_task_definition(&base, &base.containers, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(throttled.kind, AwsErrorKind::Throttling);
    assert_eq!(throttled.code.as_deref(), Some("ThrottlingException"));
    // The throttle rule was consulted first; the server error hits the next call.
    let failed = f.aws.describe_task_definition("web").await.unwrap_err();
    assert_eq!(failed.kind, AwsErrorKind::Transient);
    assert_eq!(failed.code.as_deref(), Some("InternalFailure"));
    assert_eq!(f.aws.task_definitions("web").len(), 1);

    f.aws.describe_task_definition("web").await.unwrap();
    let counts = f.aws.call_counts();
    assert_eq!(counts["ecs:RegisterTaskDefinition"], 1);
    assert_eq!(counts["ecs:DescribeTaskDefinition"], 2);
}

#[tokio::test(start_paused = true)]
async fn injected_latency_passes_virtual_time() {
    let f = Fixture::new(|s| s.deployment_config = CANARY.to_string());
    let (_, id) = f.deploy("web:2.0.0").await;
    f.aws.inject(FaultRule::times(
        "codedeploy:GetDeployment",
        Fault::Latency(Duration::from_secs(90)),
        1,
    ));
    let before = f.aws.clock().now();
    let deployment = f.aws.get_deployment(&id).await.unwrap();
    assert_eq!(f.aws.clock().now().duration_since(before).as_secs(), 90);
    // The answer reflects the world after the delay.
    assert_eq!(deployment.status, DeploymentStatus::InProgress);
    assert_eq!(f.production(), map(&[("web-tg-a", 90), ("web-tg-b", 10)]));
}

// ---------------------------------------------------------------------------------------
// Store

fn spec_write(name: &str, precondition: SpecPrecondition) -> SpecWrite {
    SpecWrite {
        name: name.to_string(),
        labels: BTreeMap::new(),
        spec: serde_json::json!({"service": {"cluster": "prod", "name": name}}),
        precondition,
        written_by: "alice".to_string(),
        written_at: Timestamp::from_second(1_767_225_600).unwrap(),
        action: AuditAction::Apply,
        detail: String::new(),
    }
}

fn status(message: &str) -> ReleaseStatus {
    ReleaseStatus {
        observed_generation: 1,
        phase: Phase::Progressing,
        message: message.to_string(),
        ..ReleaseStatus::default()
    }
}

#[tokio::test(start_paused = true)]
async fn store_status_write_is_conditional_on_version() {
    let store = SimStore::new(Clock::fixed_epoch());
    assert!(matches!(
        store.write_status("web", &status("x"), 0, None).await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .put_spec(spec_write("web", SpecPrecondition::Absent))
        .await
        .unwrap();

    assert_eq!(
        store
            .write_status("web", &status("first"), 0, None)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.write_status("web", &status("stale"), 0, None).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(
        store
            .write_status("web", &status("second"), 1, None)
            .await
            .unwrap(),
        2
    );

    let stored = store.get("web").await.unwrap().unwrap();
    assert_eq!(stored.status_version, 2);
    assert_eq!(stored.status.unwrap().message, "second");
    // Status writes never bump the generation.
    assert_eq!(stored.generation, 1);
    assert_eq!(store.call_counts()["dynamodb:UpdateItem"], 5);
}

#[tokio::test(start_paused = true)]
async fn store_spec_writes_check_their_precondition_and_keep_the_status() {
    let store = SimStore::new(Clock::fixed_epoch());
    assert!(matches!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Generation(1)))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Absent))
            .await,
        Ok(1)
    );
    assert!(matches!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Absent))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    store
        .write_status("web", &status("kept"), 0, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Generation(1)))
            .await,
        Ok(2)
    );
    assert!(matches!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Generation(1)))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Any))
            .await,
        Ok(3)
    );
    assert_eq!(
        store
            .put_spec(spec_write("api", SpecPrecondition::Any))
            .await,
        Ok(1)
    );

    let request = OperatorRequest {
        generation: 3,
        requested_by: "bob".into(),
        requested_at: Timestamp::from_second(1_767_225_700).unwrap(),
        full: false,
    };
    store
        .put_request("web", RequestKind::Promote, request.clone())
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_request("nope", RequestKind::Abort, request.clone())
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let listed = store.list().await.unwrap();
    let names: Vec<_> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    let web = &listed[1];
    assert_eq!(web.generation, 3);
    assert_eq!(web.status.as_ref().unwrap().message, "kept");
    assert_eq!(web.status_version, 1);
    assert_eq!(web.requests.promote, Some(request));
    assert_eq!(web.spec_updated_by.as_deref(), Some("alice"));

    store.delete("web").await.unwrap();
    store.delete("web").await.unwrap();
    assert_eq!(store.get("web").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn store_change_feed_skips_status_writes() {
    let store = SimStore::new(Clock::fixed_epoch());
    let mut changes = store.changes().expect("a change feed");
    store
        .put_spec(spec_write("web", SpecPrecondition::Absent))
        .await
        .unwrap();
    assert_eq!(changes.next().now_or_never(), Some(Some("web".to_string())));

    store
        .write_status("web", &status("mine"), 0, None)
        .await
        .unwrap();
    assert_eq!(changes.next().now_or_never(), None);

    let request = OperatorRequest {
        generation: 1,
        requested_by: "bob".into(),
        requested_at: Timestamp::from_second(1_767_225_700).unwrap(),
        full: false,
    };
    store
        .put_request("web", RequestKind::Abort, request)
        .await
        .unwrap();
    assert_eq!(changes.next().now_or_never(), Some(Some("web".to_string())));
    store.delete("web").await.unwrap();
    assert_eq!(changes.next().now_or_never(), Some(Some("web".to_string())));
    store.delete("web").await.unwrap();
    assert_eq!(changes.next().now_or_never(), None);
}

#[tokio::test(start_paused = true)]
async fn store_faults_are_injected_and_counted() {
    let store = SimStore::new(Clock::fixed_epoch());
    store.inject(FaultRule::times(
        "dynamodb:UpdateItem",
        Fault::LostResponse,
        1,
    ));
    let lost = store
        .put_spec(spec_write("web", SpecPrecondition::Absent))
        .await
        .unwrap_err();
    assert!(matches!(
        lost,
        StoreError::Unavailable {
            throttled: false,
            ..
        }
    ));
    // It took effect: the retry's precondition fails.
    assert!(matches!(
        store
            .put_spec(spec_write("web", SpecPrecondition::Absent))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));

    store.inject(FaultRule::times("dynamodb:GetItem", Fault::Throttle, 1));
    let throttled = store.get("web").await.unwrap_err();
    assert!(throttled.is_throttling());
    assert!(store.get("web").await.unwrap().is_some());

    store.insert_corrupt("bad", "not a release");
    assert!(matches!(
        store.get("bad").await,
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(store.list().await.unwrap().len(), 1);

    let counts = store.call_counts();
    assert_eq!(counts["dynamodb:UpdateItem"], 2);
    assert_eq!(counts["dynamodb:GetItem"], 3);
    assert_eq!(counts["dynamodb:Scan"], 1);
}
