//! The ECS adapter's service-deployment operations: against answers shaped exactly like the
//! AWS API model's (moto implements no service deployments, test-world.md), and against moto
//! for what it does implement (`UpdateService` on an ECS-controller service changes the task
//! definition and keeps what it is sent; `DescribeServices` shows it back).

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
use aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceInput;
use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use jiff::Timestamp;
use serde_json::json;
use switchyard::aws::{DESCRIBE_SERVICE_DEPLOYMENTS_BATCH, EcsAdapter};
use switchyard::ports::{
    AdvancedLoadBalancer, AwsErrorKind, DeploymentControllerType, Ecs, EcsDeploymentSettings,
    EcsDeploymentStrategy, HookAction, LifecycleHookDetail, ServiceDeploymentStatus,
    UpdateServiceRequest,
};

use crate::moto::Moto;

const ACCOUNT_PREFIX: &str = "arn:aws:ecs:us-east-1:111122223333";
const TG_A: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-a/0123456789abcdef";
const TG_B: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-b/fedcba9876543210";
const PROD_RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
const TEST_RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/50dc6c495c0c9188/3d2a5c8efc522ab3/1a2b2d02a6cabe00";
const LB_ROLE: &str = "arn:aws:iam::111122223333:role/ecsInfrastructureRoleForLoadBalancers";

fn arn(resource: &str) -> String {
    format!("{ACCOUNT_PREFIX}:{resource}")
}

fn deployment_arn(id: &str) -> String {
    arn(&format!("service-deployment/prod/web/{id}"))
}

fn revision_arn(id: &str) -> String {
    arn(&format!("service-revision/prod/web/{id}"))
}

/// An answer the way ECS's JSON protocol (awsJson1_1) sends it.
fn ecs_ok(body: serde_json::Value) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body.to_string()),
    )
}

/// An error answer the way ECS's JSON protocol sends it.
fn ecs_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(json!({"__type": code, "message": message}).to_string()),
    )
}

fn no_retries(builder: aws_sdk_ecs::config::Builder) -> aws_sdk_ecs::config::Builder {
    builder.retry_config(RetryConfig::disabled())
}

/// A blue/green service as `DescribeServices` returns it, with every deployment setting the
/// document does not carry: circuit breaker, alarms, minimum and maximum percent, a Lambda
/// hook, and a `PAUSE` hook the document will replace.
fn described_service() -> serde_json::Value {
    json!({
        "services": [{
            "serviceArn": arn("service/prod/web"),
            "serviceName": "web",
            "clusterArn": arn("cluster/prod"),
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "pendingCount": 0,
            "launchType": "FARGATE",
            "platformVersion": "LATEST",
            "taskDefinition": arn("task-definition/web:3"),
            "deploymentController": {"type": "ECS"},
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "alarms": {"alarmNames": ["web-5xx"], "enable": true, "rollback": true},
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 10,
                "lifecycleHooks": [
                    {
                        "targetType": "AWS_LAMBDA",
                        "hookTargetArn": "arn:aws:lambda:us-east-1:111122223333:function:smoke",
                        "roleArn": "arn:aws:iam::111122223333:role/ecs-hooks",
                        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                        "hookDetails": {"suite": "smoke"}
                    },
                    {"targetType": "PAUSE", "lifecycleStages": ["PRE_SCALE_UP"]}
                ]
            },
            "loadBalancers": [{
                "targetGroupArn": TG_A,
                "containerName": "web",
                "containerPort": 8080,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": TG_B,
                    "productionListenerRule": PROD_RULE,
                    "testListenerRule": TEST_RULE,
                    "roleArn": LB_ROLE
                }
            }],
            "networkConfiguration": {"awsvpcConfiguration": {
                "subnets": ["subnet-0a1b2c3d4e5f60001"],
                "securityGroups": ["sg-0a1b2c3d4e5f60001"],
                "assignPublicIp": "DISABLED"
            }},
            "currentServiceDeployment": deployment_arn("r9i43YFjvgF_xlg7m2eJ1r"),
            "deployments": [],
            "taskSets": [],
            "events": [],
            "createdAt": 1767225600.0,
            "schedulingStrategy": "REPLICA"
        }],
        "failures": []
    })
}

/// `UpdateService`'s answer: the service with its new current deployment.
fn updated_service(current: &str) -> serde_json::Value {
    let mut service = described_service()["services"][0].clone();
    service["currentServiceDeployment"] = json!(current);
    json!({"service": service})
}

fn settings(strategy: EcsDeploymentStrategy) -> EcsDeploymentSettings {
    EcsDeploymentSettings {
        strategy,
        bake_time_minutes: Some(5),
        canary: None,
        linear: None,
        pause_at: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
        load_balancer: Some(AdvancedLoadBalancer {
            alternate_target_group_arn: TG_B.into(),
            production_listener_rule: PROD_RULE.into(),
            test_listener_rule: Some(TEST_RULE.into()),
            role_arn: LB_ROLE.into(),
        }),
    }
}

fn request(deployment: Option<EcsDeploymentSettings>) -> UpdateServiceRequest {
    UpdateServiceRequest {
        cluster: "prod".into(),
        service: "web".into(),
        task_definition: arn("task-definition/web:4"),
        deployment,
    }
}

type Captured<T> = Arc<Mutex<Vec<T>>>;

// ----- UpdateService --------------------------------------------------------------------------

#[tokio::test]
async fn update_service_without_deployment_settings_sends_the_candidate_and_nothing_else() {
    let sent: Captured<UpdateServiceInput> = Arc::default();
    let capture = sent.clone();
    let update = mock!(Client::update_service)
        .match_requests(move |r| {
            capture.lock().unwrap().push(r.clone());
            true
        })
        .then_http_response(|| ecs_ok(updated_service(&deployment_arn("NEW0000000000000000001"))));
    let describe =
        mock!(Client::describe_services).then_http_response(|| ecs_ok(described_service()));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &describe]);

    let started = EcsAdapter::new(client)
        .update_service(&request(None))
        .await
        .expect("updated");
    assert_eq!(started, Some(deployment_arn("NEW0000000000000000001")));
    assert_eq!(describe.num_calls(), 0, "nothing to keep, nothing read");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let input = &sent[0];
    assert_eq!(input.cluster(), Some("prod"));
    assert_eq!(input.service(), Some("web"));
    assert_eq!(
        input.task_definition(),
        Some(arn("task-definition/web:4").as_str())
    );
    // Nothing else: every other member of the request is unset.
    let mut rest = input.clone();
    rest.cluster = None;
    rest.service = None;
    rest.task_definition = None;
    let empty = UpdateServiceInput::builder().build().unwrap();
    assert_eq!(
        rest, empty,
        "only cluster, service and task definition are sent"
    );
}

#[tokio::test]
async fn update_service_with_blue_green_settings_keeps_what_the_document_does_not_carry() {
    let sent: Captured<UpdateServiceInput> = Arc::default();
    let capture = sent.clone();
    let update = mock!(Client::update_service)
        .match_requests(move |r| {
            capture.lock().unwrap().push(r.clone());
            true
        })
        .then_http_response(|| ecs_ok(updated_service(&deployment_arn("NEW0000000000000000002"))));
    let describe = mock!(Client::describe_services)
        .match_requests(|r| r.cluster() == Some("prod") && r.services() == ["web"])
        .then_http_response(|| ecs_ok(described_service()));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &describe]);

    let started = EcsAdapter::new(client)
        .update_service(&request(Some(settings(EcsDeploymentStrategy::BlueGreen))))
        .await
        .expect("updated");
    assert_eq!(started, Some(deployment_arn("NEW0000000000000000002")));
    assert_eq!(describe.num_calls(), 1);
    let sent = sent.lock().unwrap();
    let input = &sent[0];
    assert_eq!(input.force_new_deployment(), None, "no forced deployment");
    assert_eq!(input.desired_count(), None, "no desired count");

    let config = input.deployment_configuration().expect("a configuration");
    assert_eq!(config.strategy(), Some(&ecs::DeploymentStrategy::BlueGreen));
    assert_eq!(config.bake_time_in_minutes(), Some(5));
    assert_eq!(config.canary_configuration(), None);
    assert_eq!(config.linear_configuration(), None);
    // Kept as DescribeServices reported them.
    let breaker = config.deployment_circuit_breaker().expect("kept");
    assert!(breaker.enable() && breaker.rollback());
    assert_eq!(config.maximum_percent(), Some(200));
    assert_eq!(config.minimum_healthy_percent(), Some(100));
    let alarms = config.alarms().expect("kept");
    assert_eq!(alarms.alarm_names(), ["web-5xx"]);
    assert!(alarms.enable() && alarms.rollback());
    // The Lambda hook kept; the old PAUSE hook replaced by one per document stage.
    let hooks = config.lifecycle_hooks();
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert_eq!(
        hooks[0].target_type(),
        Some(&ecs::DeploymentLifecycleHookTargetType::AwsLambda)
    );
    assert!(hooks[0].hook_details().is_some(), "hook details kept");
    assert_eq!(
        hooks[1].target_type(),
        Some(&ecs::DeploymentLifecycleHookTargetType::Pause)
    );
    assert_eq!(
        hooks[1].lifecycle_stages(),
        [ecs::DeploymentLifecycleHookStage::PostTestTrafficShift]
    );
    assert_eq!(
        hooks[1].hook_target_arn(),
        None,
        "a PAUSE hook has no target"
    );

    let load_balancers = input.load_balancers();
    assert_eq!(load_balancers.len(), 1);
    assert_eq!(load_balancers[0].target_group_arn(), Some(TG_A));
    assert_eq!(load_balancers[0].container_name(), Some("web"));
    assert_eq!(load_balancers[0].container_port(), Some(8080));
    let advanced = load_balancers[0]
        .advanced_configuration()
        .expect("advanced configuration");
    assert_eq!(advanced.alternate_target_group_arn(), Some(TG_B));
    assert_eq!(advanced.production_listener_rule(), Some(PROD_RULE));
    assert_eq!(advanced.test_listener_rule(), Some(TEST_RULE));
    assert_eq!(advanced.role_arn(), Some(LB_ROLE));
}

#[tokio::test]
async fn update_service_with_canary_and_linear_settings_sends_their_configuration() {
    let sent: Captured<UpdateServiceInput> = Arc::default();
    let capture = sent.clone();
    let update = mock!(Client::update_service)
        .match_requests(move |r| {
            capture.lock().unwrap().push(r.clone());
            true
        })
        .then_http_response(|| ecs_ok(updated_service(&deployment_arn("NEW0000000000000000003"))));
    let describe =
        mock!(Client::describe_services).then_http_response(|| ecs_ok(described_service()));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &describe]);
    let adapter = EcsAdapter::new(client);

    let canary = EcsDeploymentSettings {
        canary: Some((10.0, 3)),
        pause_at: Vec::new(),
        ..settings(EcsDeploymentStrategy::Canary)
    };
    adapter
        .update_service(&request(Some(canary)))
        .await
        .expect("updated");
    let linear = EcsDeploymentSettings {
        linear: Some((25.0, 2)),
        pause_at: Vec::new(),
        ..settings(EcsDeploymentStrategy::Linear)
    };
    adapter
        .update_service(&request(Some(linear)))
        .await
        .expect("updated");
    let rolling = EcsDeploymentSettings {
        pause_at: Vec::new(),
        ..settings(EcsDeploymentStrategy::Rolling)
    };
    adapter
        .update_service(&request(Some(rolling)))
        .await
        .expect("updated");

    let sent = sent.lock().unwrap();
    let canary = sent[0].deployment_configuration().unwrap();
    assert_eq!(canary.strategy(), Some(&ecs::DeploymentStrategy::Canary));
    let canary_configuration = canary.canary_configuration().expect("canary settings");
    assert_eq!(canary_configuration.canary_percent(), Some(10.0));
    assert_eq!(canary_configuration.canary_bake_time_in_minutes(), Some(3));
    assert_eq!(
        canary.lifecycle_hooks().len(),
        1,
        "the old PAUSE hook removed, the Lambda hook kept"
    );
    let linear = sent[1].deployment_configuration().unwrap();
    let linear_configuration = linear.linear_configuration().expect("linear settings");
    assert_eq!(linear_configuration.step_percent(), Some(25.0));
    assert_eq!(linear_configuration.step_bake_time_in_minutes(), Some(2));
    assert_eq!(linear.canary_configuration(), None);
    // Rolling: the load balancers are left alone.
    assert!(sent[0].load_balancers.is_some());
    assert_eq!(sent[2].load_balancers, None);
    assert_eq!(
        sent[2].deployment_configuration().unwrap().strategy(),
        Some(&ecs::DeploymentStrategy::Rolling)
    );
}

#[tokio::test]
async fn load_balancer_settings_for_a_service_without_a_target_group_are_refused_before_any_update()
{
    let update = mock!(Client::update_service)
        .then_http_response(|| ecs_ok(updated_service(&deployment_arn("NEVER"))));
    let describe = mock!(Client::describe_services).then_http_response(|| {
        let mut answer = described_service();
        answer["services"][0]["loadBalancers"] = json!([]);
        ecs_ok(answer)
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &describe]);
    let error = EcsAdapter::new(client)
        .update_service(&request(Some(settings(EcsDeploymentStrategy::BlueGreen))))
        .await
        .expect_err("refused");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_service_that_describe_services_reports_missing_is_not_found() {
    let update = mock!(Client::update_service)
        .then_http_response(|| ecs_ok(updated_service(&deployment_arn("NEVER"))));
    let describe = mock!(Client::describe_services).then_http_response(|| {
        ecs_ok(json!({
            "services": [],
            "failures": [{"arn": arn("service/prod/web"), "reason": "MISSING"}]
        }))
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &describe]);
    let error = EcsAdapter::new(client)
        .update_service(&request(Some(settings(EcsDeploymentStrategy::BlueGreen))))
        .await
        .expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn update_service_errors_are_classified() {
    let cases = [
        (
            "ServiceNotFoundException",
            "Service not found.",
            AwsErrorKind::NotFound,
        ),
        (
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
            AwsErrorKind::NotFound,
        ),
        (
            "ClusterNotFoundException",
            "Cluster not found.",
            AwsErrorKind::NotFound,
        ),
        (
            "InvalidParameterException",
            "Unable to update task definition on services with a CODE_DEPLOY deployment controller.",
            AwsErrorKind::InvalidRequest,
        ),
        (
            "ClientException",
            "Unable to describe task definition.",
            AwsErrorKind::InvalidRequest,
        ),
        (
            "AccessDeniedException",
            "User is not authorized to perform: ecs:UpdateService",
            AwsErrorKind::AccessDenied,
        ),
        (
            "ThrottlingException",
            "Rate exceeded",
            AwsErrorKind::Throttling,
        ),
    ];
    for (code, message, kind) in cases {
        let refused =
            mock!(Client::update_service).then_http_response(move || ecs_error(code, message));
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&refused], no_retries);
        let error = EcsAdapter::new(client)
            .update_service(&request(None))
            .await
            .expect_err(code);
        assert_eq!(error.kind, kind, "{code}: {error}");
        assert_eq!(error.code.as_deref(), Some(code));
        assert_eq!(error.operation, "UpdateService");
    }
}

// ----- DescribeServices' view -------------------------------------------------------------------

#[tokio::test]
async fn describe_services_maps_the_ecs_deployment_configuration_and_current_deployment() {
    let describe =
        mock!(Client::describe_services).then_http_response(|| ecs_ok(described_service()));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let services = EcsAdapter::new(client)
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described");
    let web = &services[0];
    assert_eq!(web.deployment_controller, DeploymentControllerType::Ecs);
    assert_eq!(
        web.current_service_deployment.as_deref(),
        Some(deployment_arn("r9i43YFjvgF_xlg7m2eJ1r").as_str())
    );
    let view = web.ecs_deployment.clone().expect("an ECS deployment view");
    assert_eq!(view.strategy.as_deref(), Some("BLUE_GREEN"));
    assert_eq!(view.bake_time_minutes, Some(10));
    assert_eq!(view.pause_hook_stages, ["PRE_SCALE_UP"], "PAUSE hooks only");
    assert!(view.circuit_breaker);
    assert!(view.load_balancers_have_advanced_configuration);
}

#[tokio::test]
async fn a_plain_rolling_service_has_a_view_without_advanced_load_balancers() {
    let describe = mock!(Client::describe_services).then_http_response(|| {
        let mut answer = described_service();
        let service = &mut answer["services"][0];
        service["deploymentConfiguration"] =
            json!({"maximumPercent": 200, "minimumHealthyPercent": 100});
        service["loadBalancers"][0]
            .as_object_mut()
            .unwrap()
            .remove("advancedConfiguration");
        service
            .as_object_mut()
            .unwrap()
            .remove("deploymentController");
        ecs_ok(answer)
    });
    let code_deploy = mock!(Client::describe_services)
        .match_requests(|r| r.services() == ["legacy"])
        .then_http_response(|| {
            let mut answer = described_service();
            answer["services"][0]["serviceName"] = json!("legacy");
            answer["services"][0]["deploymentController"] = json!({"type": "CODE_DEPLOY"});
            ecs_ok(answer)
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&code_deploy, &describe]);
    let adapter = EcsAdapter::new(client);
    let web = &adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")[0];
    let view = web
        .ecs_deployment
        .clone()
        .expect("ECS is the default controller");
    assert_eq!(view.strategy, None, "absent: rolling");
    assert!(view.pause_hook_stages.is_empty());
    assert!(!view.circuit_breaker);
    assert!(!view.load_balancers_have_advanced_configuration);

    let legacy = &adapter
        .describe_services("prod", &["legacy".to_string()])
        .await
        .expect("described")[0];
    assert_eq!(legacy.ecs_deployment, None, "not ECS's own deployments");
}

// ----- ListServiceDeployments -------------------------------------------------------------------

fn brief(id: &str, created_at: f64, status: &str) -> serde_json::Value {
    json!({
        "serviceDeploymentArn": deployment_arn(id),
        "serviceArn": arn("service/prod/web"),
        "clusterArn": arn("cluster/prod"),
        "createdAt": created_at,
        "startedAt": created_at + 1.0,
        "targetServiceRevisionArn": revision_arn(&format!("{id}-rev")),
        "status": status,
        "statusReason": "ECS deployment in progress."
    })
}

#[tokio::test]
async fn service_deployments_are_listed_page_by_page_newest_first_since_a_time() {
    let since = Timestamp::from_second(1_767_225_000).unwrap();
    let requests: Captured<(Option<String>, Option<ecs::CreatedAt>, Option<i32>)> = Arc::default();
    let capture = requests.clone();
    let first = mock!(Client::list_service_deployments)
        .match_requests(move |r| {
            capture.lock().unwrap().push((
                r.next_token().map(str::to_string),
                r.created_at().cloned(),
                r.max_results(),
            ));
            r.next_token().is_none() && r.cluster() == Some("prod") && r.service() == Some("web")
        })
        .then_http_response(|| {
            ecs_ok(json!({
                "serviceDeployments": [
                    brief("older", 1_767_225_100.0, "SUCCESSFUL"),
                    brief("newest", 1_767_225_900.5, "IN_PROGRESS")
                ],
                "nextToken": "page-2"
            }))
        });
    let capture = requests.clone();
    let second = mock!(Client::list_service_deployments)
        .match_requests(move |r| {
            capture.lock().unwrap().push((
                r.next_token().map(str::to_string),
                r.created_at().cloned(),
                r.max_results(),
            ));
            r.next_token() == Some("page-2")
        })
        .then_http_response(|| {
            ecs_ok(json!({"serviceDeployments": [brief("middle", 1_767_225_500.0, "STOPPED")]}))
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&first, &second]);
    let listed = EcsAdapter::new(client)
        .list_service_deployments("prod", "web", Some(since))
        .await
        .expect("listed");
    assert_eq!(
        listed,
        [
            deployment_arn("newest"),
            deployment_arn("middle"),
            deployment_arn("older")
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    let requests = requests.lock().unwrap();
    let asked: Vec<_> = requests
        .iter()
        .filter(|(_, _, max)| max.is_some())
        .collect();
    for (_, created_at, max_results) in asked {
        assert_eq!(*max_results, Some(100));
        let created_at = created_at.as_ref().expect("a createdAt filter");
        assert_eq!(
            created_at.after().map(|t| t.secs()),
            Some(since.as_second())
        );
        assert_eq!(created_at.before(), None);
    }
}

#[tokio::test]
async fn without_a_time_every_service_deployment_is_listed_and_a_missing_service_is_not_found() {
    let all = mock!(Client::list_service_deployments)
        .match_requests(|r| r.service() == Some("web") && r.created_at().is_none())
        .then_http_response(|| {
            ecs_ok(json!({"serviceDeployments": [brief("only", 1_767_225_100.0, "SUCCESSFUL")]}))
        });
    let missing = mock!(Client::list_service_deployments)
        .match_requests(|r| r.service() == Some("ghost"))
        .then_http_response(|| ecs_error("ServiceNotFoundException", "Service not found."));
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&all, &missing],
        no_retries
    );
    let adapter = EcsAdapter::new(client);
    assert_eq!(
        adapter
            .list_service_deployments("prod", "web", None)
            .await
            .expect("listed"),
        [deployment_arn("only")]
    );
    let error = adapter
        .list_service_deployments("prod", "ghost", None)
        .await
        .expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

// ----- DescribeServiceDeployments ----------------------------------------------------------------

/// Three service deployments as `DescribeServiceDeployments` returns them: one waiting on a
/// `PAUSE` hook, one the circuit breaker rolled back, one stopped by a newer deployment; and
/// a failure for an ARN ECS does not know.
fn described_deployments() -> serde_json::Value {
    let source = json!([{
        "arn": revision_arn("1111111111111111111"),
        "requestedTaskCount": 2, "runningTaskCount": 2, "pendingTaskCount": 0,
        "requestedTestTrafficWeight": 0.0, "requestedProductionTrafficWeight": 100.0
    }]);
    let target = json!({
        "arn": revision_arn("2222222222222222222"),
        "requestedTaskCount": 2, "runningTaskCount": 2, "pendingTaskCount": 0,
        "requestedTestTrafficWeight": 100.0, "requestedProductionTrafficWeight": 0.0
    });
    json!({
        "serviceDeployments": [
            {
                "serviceDeploymentArn": deployment_arn("waiting"),
                "serviceArn": arn("service/prod/web"),
                "clusterArn": arn("cluster/prod"),
                "createdAt": 1_767_225_600.25,
                "startedAt": 1_767_225_601.0,
                "updatedAt": 1_767_225_700.0,
                "sourceServiceRevisions": source,
                "targetServiceRevision": target,
                "status": "IN_PROGRESS",
                "statusReason": "Service deployment in progress.",
                "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
                "lifecycleHookDetails": [{
                    "hookId": "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw",
                    "targetType": "PAUSE",
                    "status": "AWAITING_ACTION",
                    "expiresAt": 1_767_312_000.0,
                    "timeoutAction": "ROLLBACK"
                }],
                "deploymentConfiguration": {
                    "strategy": "BLUE_GREEN",
                    "bakeTimeInMinutes": 5,
                    "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
                },
                "deploymentCircuitBreaker": {"status": "DISABLED", "failureCount": 0, "threshold": 3},
                "alarms": {"status": "MONITORING", "alarmNames": ["web-5xx"], "triggeredAlarmNames": []}
            },
            {
                "serviceDeploymentArn": deployment_arn("rolled-back"),
                "serviceArn": arn("service/prod/web"),
                "clusterArn": arn("cluster/prod"),
                "createdAt": 1_767_220_000.0,
                "startedAt": 1_767_220_001.0,
                "finishedAt": 1_767_220_300.0,
                "updatedAt": 1_767_220_300.0,
                "sourceServiceRevisions": source,
                "targetServiceRevision": {"arn": revision_arn("3333333333333333333"), "requestedTaskCount": 2, "runningTaskCount": 0, "pendingTaskCount": 0},
                "status": "ROLLBACK_SUCCESSFUL",
                "statusReason": "Service deployment rolled back because the circuit breaker threshold was exceeded.",
                "lifecycleStage": "SCALE_UP",
                "lifecycleHookDetails": [],
                "rollback": {
                    "reason": "Service deployment rolled back because the circuit breaker threshold was exceeded.",
                    "startedAt": 1_767_220_200.0,
                    "serviceRevisionArn": revision_arn("1111111111111111111")
                },
                "deploymentCircuitBreaker": {"status": "TRIGGERED", "failureCount": 3, "threshold": 3},
                "alarms": {"status": "TRIGGERED", "alarmNames": ["web-5xx", "web-latency"], "triggeredAlarmNames": ["web-latency"]}
            },
            {
                "serviceDeploymentArn": deployment_arn("stopped"),
                "serviceArn": arn("service/prod/web"),
                "clusterArn": arn("cluster/prod"),
                "createdAt": 1_767_210_000.0,
                "stoppedAt": 1_767_210_100.0,
                "targetServiceRevision": {"arn": revision_arn("4444444444444444444")},
                "status": "STOPPED",
                "statusReason": "Service deployment stopped by a newer service deployment."
            }
        ],
        "failures": [{"arn": deployment_arn("unknown"), "reason": "MISSING", "detail": "The service deployment does not exist."}]
    })
}

#[tokio::test]
async fn described_service_deployments_map_every_field_the_port_reads() {
    let describe = mock!(Client::describe_service_deployments)
        .then_http_response(|| ecs_ok(described_deployments()));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let arns = [
        deployment_arn("waiting"),
        deployment_arn("rolled-back"),
        deployment_arn("stopped"),
        deployment_arn("unknown"),
    ];
    let found = EcsAdapter::new(client)
        .describe_service_deployments(&arns)
        .await
        .expect("described");
    assert_eq!(found.len(), 3, "the unknown ARN is left out");

    let waiting = &found[0];
    assert_eq!(waiting.arn, deployment_arn("waiting"));
    assert_eq!(waiting.status, ServiceDeploymentStatus::InProgress);
    assert_eq!(
        waiting.status_reason.as_deref(),
        Some("Service deployment in progress.")
    );
    assert_eq!(
        waiting.lifecycle_stage.as_deref(),
        Some("POST_TEST_TRAFFIC_SHIFT")
    );
    assert_eq!(
        waiting.target_revision_arn,
        Some(revision_arn("2222222222222222222"))
    );
    assert_eq!(
        waiting.created_at,
        Some(Timestamp::from_millisecond(1_767_225_600_250).unwrap())
    );
    assert_eq!(waiting.finished_at, None);
    assert_eq!(waiting.rollback_reason, None);
    assert_eq!(waiting.circuit_breaker_status.as_deref(), Some("DISABLED"));
    assert_eq!(waiting.alarms_status.as_deref(), Some("MONITORING"));
    assert!(waiting.triggered_alarms.is_empty());
    assert_eq!(
        waiting.hooks,
        [LifecycleHookDetail {
            hook_id: "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw".into(),
            target_type: "PAUSE".into(),
            status: "AWAITING_ACTION".into(),
            expires_at: Some(Timestamp::from_second(1_767_312_000).unwrap()),
        }]
    );
    assert!(waiting.hooks[0].is_waiting_pause());

    let rolled_back = &found[1];
    assert_eq!(
        rolled_back.status,
        ServiceDeploymentStatus::RollbackSuccessful
    );
    assert!(rolled_back.status.is_terminal());
    assert_eq!(
        rolled_back.rollback_reason.as_deref(),
        Some("Service deployment rolled back because the circuit breaker threshold was exceeded.")
    );
    assert_eq!(
        rolled_back.finished_at,
        Some(Timestamp::from_second(1_767_220_300).unwrap())
    );
    assert_eq!(
        rolled_back.circuit_breaker_status.as_deref(),
        Some("TRIGGERED")
    );
    assert_eq!(rolled_back.alarms_status.as_deref(), Some("TRIGGERED"));
    assert_eq!(rolled_back.triggered_alarms, ["web-latency"]);
    assert!(rolled_back.hooks.is_empty());

    let stopped = &found[2];
    assert_eq!(stopped.status, ServiceDeploymentStatus::Stopped);
    assert_eq!(
        stopped.finished_at,
        Some(Timestamp::from_second(1_767_210_100).unwrap()),
        "a stopped deployment ended when it stopped"
    );
    assert_eq!(stopped.circuit_breaker_status, None);
    assert_eq!(stopped.alarms_status, None);
}

#[tokio::test]
async fn every_service_deployment_status_is_mapped_and_an_unknown_one_is_not_terminal() {
    let statuses = [
        ("PENDING", ServiceDeploymentStatus::Pending),
        ("IN_PROGRESS", ServiceDeploymentStatus::InProgress),
        ("SUCCESSFUL", ServiceDeploymentStatus::Successful),
        ("STOP_REQUESTED", ServiceDeploymentStatus::StopRequested),
        ("STOPPED", ServiceDeploymentStatus::Stopped),
        (
            "ROLLBACK_REQUESTED",
            ServiceDeploymentStatus::RollbackRequested,
        ),
        (
            "ROLLBACK_IN_PROGRESS",
            ServiceDeploymentStatus::RollbackInProgress,
        ),
        (
            "ROLLBACK_SUCCESSFUL",
            ServiceDeploymentStatus::RollbackSuccessful,
        ),
        ("ROLLBACK_FAILED", ServiceDeploymentStatus::RollbackFailed),
        (
            "SOMETHING_NEWER",
            ServiceDeploymentStatus::Other("SOMETHING_NEWER".into()),
        ),
    ];
    let names: Vec<&'static str> = statuses.iter().map(|(name, _)| *name).collect();
    let describe = mock!(Client::describe_service_deployments).then_http_response(move || {
        ecs_ok(json!({
            "serviceDeployments": names
                .iter()
                .map(|status| json!({
                    "serviceDeploymentArn": deployment_arn(status),
                    "status": status
                }))
                .collect::<Vec<_>>(),
            "failures": []
        }))
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let found = EcsAdapter::new(client)
        .describe_service_deployments(&[deployment_arn("any")])
        .await
        .expect("described");
    let mapped: Vec<_> = found.iter().map(|d| d.status.clone()).collect();
    let expected: Vec<_> = statuses.iter().map(|(_, status)| status.clone()).collect();
    assert_eq!(mapped, expected);
    assert!(!ServiceDeploymentStatus::Other("SOMETHING_NEWER".into()).is_terminal());
}

#[tokio::test]
async fn service_deployments_and_revisions_are_described_twenty_at_a_time() {
    assert_eq!(
        DESCRIBE_SERVICE_DEPLOYMENTS_BATCH, 20,
        "the API model's maximum"
    );
    let deployment_batches: Captured<usize> = Arc::default();
    let capture = deployment_batches.clone();
    let deployments = mock!(Client::describe_service_deployments).then_compute_output(move |r| {
        capture
            .lock()
            .unwrap()
            .push(r.service_deployment_arns().len());
        DescribeServiceDeploymentsOutput::builder()
            .set_service_deployments(Some(
                r.service_deployment_arns()
                    .iter()
                    .map(|arn| {
                        ecs::ServiceDeployment::builder()
                            .service_deployment_arn(arn)
                            .status(ecs::ServiceDeploymentStatus::Successful)
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let revision_batches: Captured<usize> = Arc::default();
    let capture = revision_batches.clone();
    let revisions = mock!(Client::describe_service_revisions).then_compute_output(move |r| {
        capture
            .lock()
            .unwrap()
            .push(r.service_revision_arns().len());
        DescribeServiceRevisionsOutput::builder()
            .set_service_revisions(Some(
                r.service_revision_arns()
                    .iter()
                    .map(|arn| {
                        ecs::ServiceRevision::builder()
                            .service_revision_arn(arn)
                            .task_definition(format!(
                                "{ACCOUNT_PREFIX}:task-definition/web:{}",
                                arn.len()
                            ))
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&deployments, &revisions]);
    let adapter = EcsAdapter::new(client);

    let deployment_arns: Vec<String> = (0..45).map(|i| deployment_arn(&format!("d{i}"))).collect();
    let found = adapter
        .describe_service_deployments(&deployment_arns)
        .await
        .expect("described");
    assert_eq!(
        found.iter().map(|d| d.arn.clone()).collect::<Vec<_>>(),
        deployment_arns
    );
    assert_eq!(*deployment_batches.lock().unwrap(), [20, 20, 5]);

    let revision_arns: Vec<String> = (0..21).map(|i| revision_arn(&format!("{i:019}"))).collect();
    let found = adapter
        .describe_service_revisions(&revision_arns)
        .await
        .expect("described");
    assert_eq!(found.len(), 21);
    assert_eq!(*revision_batches.lock().unwrap(), [20, 1]);
}

#[tokio::test]
async fn a_service_revision_is_read_with_its_task_definition() {
    let describe = mock!(Client::describe_service_revisions)
        .match_requests(|r| r.service_revision_arns() == [revision_arn("2222222222222222222")])
        .then_http_response(|| {
            ecs_ok(json!({
                "serviceRevisions": [{
                    "serviceRevisionArn": revision_arn("2222222222222222222"),
                    "serviceArn": arn("service/prod/web"),
                    "clusterArn": arn("cluster/prod"),
                    "taskDefinition": arn("task-definition/web:4"),
                    "launchType": "FARGATE",
                    "platformVersion": "1.4.0",
                    "platformFamily": "Linux",
                    "loadBalancers": [{
                        "targetGroupArn": TG_A, "containerName": "web", "containerPort": 8080,
                        "advancedConfiguration": {"alternateTargetGroupArn": TG_B, "productionListenerRule": PROD_RULE, "roleArn": LB_ROLE}
                    }],
                    "containerImages": [{"containerName": "web", "imageDigest": "sha256:0123", "image": "web:4"}],
                    "guardDutyEnabled": false,
                    "createdAt": 1_767_225_600.0
                }],
                "failures": []
            }))
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let revisions = EcsAdapter::new(client)
        .describe_service_revisions(&[revision_arn("2222222222222222222")])
        .await
        .expect("described");
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].arn, revision_arn("2222222222222222222"));
    assert_eq!(revisions[0].task_definition, arn("task-definition/web:4"));
}

// ----- hook answers and stops ---------------------------------------------------------------------

#[tokio::test]
async fn continuing_sends_the_hook_id_and_action_and_a_stale_hook_is_a_conflict() {
    let hook = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw";
    let continued = mock!(Client::continue_service_deployment)
        .match_requests(move |r| {
            r.service_deployment_arn() == Some(deployment_arn("waiting").as_str())
                && r.hook_id() == Some(hook)
                && r.action() == Some(&ecs::DeploymentLifecycleHookAction::Continue)
        })
        .then_http_response(|| ecs_ok(json!({"serviceDeploymentArn": deployment_arn("waiting")})));
    let rolled_back = mock!(Client::continue_service_deployment)
        .match_requests(move |r| {
            r.hook_id() == Some(hook)
                && r.action() == Some(&ecs::DeploymentLifecycleHookAction::Rollback)
        })
        .then_http_response(|| ecs_ok(json!({"serviceDeploymentArn": deployment_arn("waiting")})));
    let stale = mock!(Client::continue_service_deployment)
        .match_requests(|r| r.hook_id() == Some("ecs-pause-stale"))
        .then_http_response(|| {
            ecs_error(
                "ClientException",
                "The lifecycle hook ecs-pause-stale is not in AWAITING_ACTION status.",
            )
        });
    let gone = mock!(Client::continue_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some(deployment_arn("gone").as_str()))
        .then_http_response(|| {
            ecs_error(
                "ServiceDeploymentNotFoundException",
                "The service deployment does not exist.",
            )
        });
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&continued, &rolled_back, &stale, &gone],
        no_retries
    );
    let adapter = EcsAdapter::new(client);

    adapter
        .continue_service_deployment(&deployment_arn("waiting"), hook, HookAction::Continue)
        .await
        .expect("continued");
    adapter
        .continue_service_deployment(&deployment_arn("waiting"), hook, HookAction::Rollback)
        .await
        .expect("rolled back");
    assert_eq!((continued.num_calls(), rolled_back.num_calls()), (1, 1));
    let error = adapter
        .continue_service_deployment(
            &deployment_arn("waiting"),
            "ecs-pause-stale",
            HookAction::Continue,
        )
        .await
        .expect_err("stale");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
    assert_eq!(error.code.as_deref(), Some("ClientException"));
    assert_eq!(error.operation, "ContinueServiceDeployment");
    let error = adapter
        .continue_service_deployment(&deployment_arn("gone"), hook, HookAction::Continue)
        .await
        .expect_err("gone");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn stopping_asks_for_a_rollback_and_a_finished_deployment_is_a_conflict() {
    let stop = mock!(Client::stop_service_deployment)
        .match_requests(|r| {
            r.service_deployment_arn() == Some(deployment_arn("running").as_str())
                && r.stop_type() == Some(&ecs::StopServiceDeploymentStopType::Rollback)
        })
        .then_http_response(|| ecs_ok(json!({"serviceDeploymentArn": deployment_arn("running")})));
    let finished = mock!(Client::stop_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some(deployment_arn("done").as_str()))
        .then_http_response(|| {
            ecs_error(
                "ConflictException",
                "The service deployment is in a terminal state and cannot be stopped.",
            )
        });
    let denied = mock!(Client::stop_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some(deployment_arn("theirs").as_str()))
        .then_http_response(|| {
            ecs_error(
                "AccessDeniedException",
                "User is not authorized to perform: ecs:StopServiceDeployment",
            )
        });
    let invalid = mock!(Client::stop_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some("not-an-arn"))
        .then_http_response(|| {
            ecs_error(
                "InvalidParameterException",
                "Invalid service deployment ARN.",
            )
        });
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&stop, &finished, &denied, &invalid],
        no_retries
    );
    let adapter = EcsAdapter::new(client);

    adapter
        .stop_service_deployment(&deployment_arn("running"))
        .await
        .expect("stopped");
    assert_eq!(stop.num_calls(), 1);
    for (arn, kind) in [
        (deployment_arn("done"), AwsErrorKind::Conflict),
        (deployment_arn("theirs"), AwsErrorKind::AccessDenied),
        ("not-an-arn".to_string(), AwsErrorKind::InvalidRequest),
    ] {
        let error = adapter
            .stop_service_deployment(&arn)
            .await
            .expect_err("refused");
        assert_eq!(error.kind, kind, "{arn}: {error}");
        assert_eq!(error.operation, "StopServiceDeployment");
    }
}

// ----- against moto ---------------------------------------------------------------------------

/// A cluster, two revisions of `web`, and an ECS-controller service `web` on the first, with
/// a load balancer entry, in a fresh moto.
async fn moto_ecs_service() -> (Moto, aws_sdk_ecs::Client, [String; 2]) {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let client = aws_sdk_ecs::Client::new(&config);
    client
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .expect("cluster");
    let mut revisions = Vec::new();
    for image in ["web:1", "web:2"] {
        let arn = client
            .register_task_definition()
            .family("web")
            .container_definitions(
                ecs::ContainerDefinition::builder()
                    .name("web")
                    .image(image)
                    .memory(512)
                    .port_mappings(ecs::PortMapping::builder().container_port(8080).build())
                    .build(),
            )
            .send()
            .await
            .expect("registered")
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .expect("an ARN")
            .to_string();
        revisions.push(arn);
    }
    client
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition(&revisions[0])
        .desired_count(2)
        .deployment_controller(
            ecs::DeploymentController::builder()
                .r#type(ecs::DeploymentControllerType::Ecs)
                .build()
                .unwrap(),
        )
        .load_balancers(
            ecs::LoadBalancer::builder()
                .target_group_arn(TG_A)
                .container_name("web")
                .container_port(8080)
                .build(),
        )
        .send()
        .await
        .expect("service");
    (moto, client, revisions.try_into().unwrap())
}

#[tokio::test]
async fn update_service_on_an_ecs_service_in_moto_changes_the_task_definition_only() {
    let (_moto, client, [v1, v2]) = moto_ecs_service().await;
    let adapter = EcsAdapter::new(client);
    let before = &adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")[0];
    assert_eq!(before.task_definition.as_deref(), Some(v1.as_str()));
    assert_eq!(before.deployment_controller, DeploymentControllerType::Ecs);

    let started = adapter
        .update_service(&UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: v2.clone(),
            deployment: None,
        })
        .await
        .expect("updated");
    assert_eq!(started, None, "moto starts no service deployment");
    let after = &adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")[0];
    assert_eq!(after.task_definition.as_deref(), Some(v2.as_str()));
    assert_eq!(after.desired_count, 2, "the desired count is not touched");
    assert_eq!(after.current_service_deployment, None);
    assert_eq!(after.load_balancers, before.load_balancers);
}

/// The strategy's whole path in moto: the candidate registered as a copy of the live revision
/// with the document's image (and the rollout's tags), then `UpdateService` with it; the
/// service then runs exactly that revision, whose image is the candidate's, and nothing else
/// of the service moved.
#[tokio::test]
async fn the_candidate_registered_from_the_live_revision_is_what_update_service_runs_in_moto() {
    let (_moto, client, [v1, _]) = moto_ecs_service().await;
    let adapter = EcsAdapter::new(client);
    let before = adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")
        .remove(0);
    let base = adapter.describe_task_definition(&v1).await.expect("base");
    let changed = switchyard::ports::ContainerDefinition {
        image: "web:3".into(),
        ..base.container("web").expect("the web container").clone()
    };
    let tags = std::collections::BTreeMap::from([
        ("switchyard:release".to_string(), "web".to_string()),
        ("switchyard:fingerprint".to_string(), "f-1".to_string()),
    ]);
    let candidate = adapter
        .register_task_definition(&base, std::slice::from_ref(&changed), &tags)
        .await
        .expect("the candidate is registered");
    assert_eq!((candidate.family.as_str(), candidate.revision), ("web", 3));

    adapter
        .update_service(&UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: candidate.arn.clone(),
            deployment: None,
        })
        .await
        .expect("updated");
    let after = adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")
        .remove(0);
    assert_eq!(
        after.task_definition.as_deref(),
        Some(candidate.arn.as_str())
    );
    let running = adapter
        .describe_task_definition(after.task_definition.as_deref().unwrap())
        .await
        .expect("the running revision");
    assert_eq!(
        running.container("web").map(|c| c.image.as_str()),
        Some("web:3")
    );
    assert_eq!(running.tags, tags, "the rollout's tags read back");
    assert_eq!(after.desired_count, before.desired_count);
    assert_eq!(after.load_balancers, before.load_balancers);
    assert_eq!(after.deployment_controller, before.deployment_controller);
}

#[tokio::test]
async fn a_deployment_configuration_sent_to_moto_reads_back_with_what_was_kept() {
    let (_moto, client, [_, v2]) = moto_ecs_service().await;
    // The service's own settings, as Terraform or the console would set them.
    client
        .update_service()
        .cluster("prod")
        .service("web")
        .deployment_configuration(
            ecs::DeploymentConfiguration::builder()
                .deployment_circuit_breaker(
                    ecs::DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .maximum_percent(200)
                .minimum_healthy_percent(50)
                .alarms(
                    ecs::DeploymentAlarms::builder()
                        .alarm_names("web-5xx")
                        .enable(true)
                        .rollback(true)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("configured");
    let adapter = EcsAdapter::new(client.clone());
    adapter
        .update_service(&UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: v2.clone(),
            deployment: Some(settings(EcsDeploymentStrategy::BlueGreen)),
        })
        .await
        .expect("updated");

    let web = &adapter
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described")[0];
    assert_eq!(web.task_definition.as_deref(), Some(v2.as_str()));
    let view = web.ecs_deployment.clone().expect("a view");
    assert_eq!(view.strategy.as_deref(), Some("BLUE_GREEN"));
    assert_eq!(view.bake_time_minutes, Some(5));
    assert_eq!(view.pause_hook_stages, ["POST_TEST_TRAFFIC_SHIFT"]);
    assert!(view.circuit_breaker, "kept");
    assert!(view.load_balancers_have_advanced_configuration);

    let raw = client
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .expect("described");
    let config = raw.services()[0]
        .deployment_configuration()
        .expect("a configuration");
    assert_eq!(config.maximum_percent(), Some(200), "kept");
    assert_eq!(config.minimum_healthy_percent(), Some(50), "kept");
    assert_eq!(
        config.alarms().map(|a| a.alarm_names().to_vec()),
        Some(vec!["web-5xx".to_string()]),
        "kept"
    );
    let lb = &raw.services()[0].load_balancers()[0];
    assert_eq!(lb.target_group_arn(), Some(TG_A));
    assert_eq!(
        lb.advanced_configuration()
            .and_then(|a| a.alternate_target_group_arn()),
        Some(TG_B)
    );
}
