//! The task-set and route operations of the ECS and ELB adapters: against moto over HTTP, on
//! an `EXTERNAL` service world (`tests/fixtures/moto_world.py --external`), and against
//! AWS-shaped mocks where moto is not AWS (it deletes a task set that still has a scale,
//! accepts weights above 999 and unknown target groups, answers a missing task set with
//! HTTP 500, ignores `clientToken`, and registers no targets for task sets).

use aws_config::SdkConfig;
use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use switchyard::aws::{EcsAdapter, ElbAdapter};
use switchyard::ports::{
    AwsErrorKind, CreateTaskSetRequest, DeploymentControllerType, Ecs, LaunchSettings,
    LoadBalancer, LoadBalancerBinding, NetworkConfiguration, Route, StabilityStatus,
    TargetHealthState, TaskSetStatus, WeightedTargetGroup,
};

use crate::aws_adapters::RequestCounter;
use crate::daemon::create_external_world;
use crate::moto::Moto;

const CLUSTER: &str = "prod";
const SERVICE: &str = "web";

/// A moto server holding one `EXTERNAL` service world, with the fixture's names and ARNs.
struct World {
    _moto: Moto,
    config: SdkConfig,
    json: Value,
}

async fn world() -> World {
    let moto = Moto::start();
    let json = create_external_world(&moto, &[SERVICE])[SERVICE].clone();
    let config = moto.sdk_config().await;
    World {
        _moto: moto,
        config,
        json,
    }
}

impl World {
    fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {}", self.json))
            .to_string()
    }

    fn a(&self) -> String {
        self.json["targetGroupArns"][0]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn b(&self) -> String {
        self.json["targetGroupArns"][1]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn subnets(&self) -> Vec<String> {
        self.json["subnets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    fn launch(&self) -> LaunchSettings {
        LaunchSettings {
            launch_type: Some("FARGATE".into()),
            capacity_provider_strategy: vec![],
            platform_version: Some("LATEST".into()),
            network_configuration: Some(NetworkConfiguration {
                subnets: self.subnets(),
                security_groups: vec![self.str("securityGroup")],
                assign_public_ip: false,
            }),
        }
    }

    fn ecs(&self) -> EcsAdapter {
        EcsAdapter::new(aws_sdk_ecs::Client::new(&self.config))
    }

    fn elb(&self) -> ElbAdapter {
        ElbAdapter::new(self.elb_client())
    }

    fn elb_client(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.config)
    }

    fn request(&self, token: &str, scale_percent: f64) -> CreateTaskSetRequest {
        CreateTaskSetRequest {
            cluster: CLUSTER.into(),
            service: SERVICE.into(),
            task_definition: self.str("taskDefinitionArn"),
            load_balancer: LoadBalancerBinding {
                target_group_arn: self.b(),
                container_name: SERVICE.into(),
                container_port: 8080,
            },
            scale_percent,
            client_token: token.into(),
            external_id: format!("web/{token}"),
            launch: self.launch(),
        }
    }

    async fn route(&self, arn: &str) -> Route {
        self.elb()
            .describe_route(arn)
            .await
            .expect("route described")
    }
}

fn weighted(entries: &[(&str, u32)]) -> Vec<WeightedTargetGroup> {
    entries
        .iter()
        .map(|(arn, weight)| WeightedTargetGroup {
            target_group_arn: arn.to_string(),
            weight: *weight,
        })
        .collect()
}

// ----- ECS task sets against moto --------------------------------------------------------

#[tokio::test]
async fn an_external_service_is_described_with_its_primary_task_sets_binding_and_launch_settings() {
    let w = world().await;
    let services = w
        .ecs()
        .describe_services(CLUSTER, &[SERVICE.to_string()])
        .await
        .unwrap();
    let web = &services[0];
    assert_eq!(
        web.deployment_controller,
        DeploymentControllerType::External
    );
    let primary = web.primary_task_set().expect("a primary task set");
    assert_eq!(primary.arn, w.str("primaryTaskSetArn"));
    assert_eq!(primary.external_id.as_deref(), Some("initial"));
    assert_eq!(primary.scale_percent, 100.0);
    assert_eq!(
        primary.load_balancers,
        vec![LoadBalancerBinding {
            target_group_arn: w.a(),
            container_name: SERVICE.into(),
            container_port: 8080,
        }]
    );
    // moto's EXTERNAL service reports launchType EC2 at service level: the task set's own
    // launch settings are the ones a new task set must copy.
    assert_eq!(primary.launch, w.launch());
    assert_eq!(
        (primary.running_count, primary.computed_desired_count),
        (0, 0),
        "moto reports no counts (null): read as 0"
    );
}

#[tokio::test]
async fn a_task_set_is_created_scaled_made_primary_and_deleted() {
    let w = world().await;
    let ecs_adapter = w.ecs();
    let created = ecs_adapter
        .create_task_set(&w.request("rollout-1", 100.0))
        .await
        .expect("created");
    assert_eq!(created.status, TaskSetStatus::Active);
    assert_eq!(created.external_id.as_deref(), Some("web/rollout-1"));
    assert_eq!(created.task_definition, w.str("taskDefinitionArn"));
    assert_eq!(created.scale_percent, 100.0);
    assert_eq!(created.target_group_arns, vec![w.b()]);
    assert_eq!(created.launch, w.launch(), "the live task set's settings");
    assert_eq!(
        created.stability,
        StabilityStatus::SteadyState,
        "moto: at once"
    );

    let scaled = ecs_adapter
        .update_task_set_scale(CLUSTER, SERVICE, &created.arn, 50.0)
        .await
        .expect("scaled");
    assert_eq!(scaled.scale_percent, 50.0);

    let primary = ecs_adapter
        .update_service_primary_task_set(CLUSTER, SERVICE, &created.arn)
        .await
        .expect("made primary");
    assert_eq!(primary.arn, created.arn);
    let web = &ecs_adapter
        .describe_services(CLUSTER, &[SERVICE.to_string()])
        .await
        .unwrap()[0];
    assert_eq!(web.task_sets.len(), 2);
    assert_eq!(web.primary_task_set().unwrap().arn, created.arn);
    let old = web
        .task_sets
        .iter()
        .find(|t| t.arn == w.str("primaryTaskSetArn"))
        .unwrap();
    assert_eq!(old.status, TaskSetStatus::Active);

    ecs_adapter
        .update_task_set_scale(CLUSTER, SERVICE, &old.arn, 0.0)
        .await
        .unwrap();
    ecs_adapter
        .delete_task_set(CLUSTER, SERVICE, &old.arn, false)
        .await
        .expect("deleted");
    let web = &ecs_adapter
        .describe_services(CLUSTER, &[SERVICE.to_string()])
        .await
        .unwrap()[0];
    assert_eq!(
        web.task_sets.iter().map(|t| &t.arn).collect::<Vec<_>>(),
        vec![&created.arn]
    );
}

// ----- ELB routes against moto -------------------------------------------------------------

#[tokio::test]
async fn target_groups_are_described_by_names_and_arns_at_once_and_a_missing_one_is_not_found() {
    let w = world().await;
    // ELB refuses names and ARNs in one call: the adapter asks twice.
    let groups = w
        .elb()
        .describe_target_groups(&["web-tg-a".to_string(), w.b()])
        .await
        .expect("described");
    assert_eq!(
        groups.iter().map(|g| g.arn.clone()).collect::<Vec<_>>(),
        vec![w.a(), w.b()],
        "in the order asked"
    );
    assert_eq!(groups[0].name, "web-tg-a");
    assert_eq!(groups[1].name, "web-tg-b");
    assert_eq!(groups[0].port, Some(8080));
    assert_eq!(
        groups[0].load_balancer_arns,
        vec![w.str("loadBalancerArn")],
        "once, though moto lists it once per listener and rule"
    );
    assert_eq!(groups[1].load_balancer_arns, vec![w.str("loadBalancerArn")]);

    let error = w
        .elb()
        .describe_target_groups(&["web-tg-a".to_string(), "ghost".to_string()])
        .await
        .expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn routes_are_each_listeners_default_action_and_its_rules_but_the_default_one() {
    let w = world().await;
    let routes = w
        .elb()
        .describe_routes(&w.str("loadBalancerArn"))
        .await
        .expect("described");
    let production = w.str("productionListenerArn");
    let rule = w.str("ruleArn");
    let test = w.str("testListenerArn");
    let mut seen: Vec<(String, Option<String>, Option<Vec<WeightedTargetGroup>>)> = routes
        .iter()
        .map(|r| (r.arn.clone(), r.rule_priority.clone(), r.forward.clone()))
        .collect();
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected = vec![
        (production.clone(), None, Some(weighted(&[(&w.a(), 1)]))),
        (
            rule.clone(),
            Some("10".into()),
            Some(weighted(&[(&w.a(), 1)])),
        ),
        (test.clone(), None, Some(weighted(&[(&w.b(), 1)]))),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(seen, expected);
    let rule_route = routes.iter().find(|r| r.arn == rule).unwrap();
    assert_eq!(rule_route.listener_arn, production);
    assert_eq!(rule_route.load_balancer_arn, w.str("loadBalancerArn"));
    assert_eq!(rule_route.port, Some(80));
}

#[tokio::test]
async fn a_route_is_described_by_its_listener_or_rule_arn_and_a_missing_one_is_not_found() {
    let w = world().await;
    let listener = w.route(&w.str("productionListenerArn")).await;
    assert_eq!(listener.rule_priority, None);
    assert_eq!(listener.port, Some(80));
    assert_eq!(listener.load_balancer_arn, w.str("loadBalancerArn"));
    let rule = w.route(&w.str("ruleArn")).await;
    assert_eq!(rule.rule_priority.as_deref(), Some("10"));
    assert_eq!(rule.listener_arn, w.str("productionListenerArn"));
    assert_eq!(rule.port, Some(80));

    for missing in [
        format!("{}0", w.str("productionListenerArn")),
        format!("{}0", w.str("ruleArn")),
    ] {
        let error = w.elb().describe_route(&missing).await.expect_err("missing");
        assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    }
    let error = w
        .elb()
        .describe_route(&w.a())
        .await
        .expect_err("not a route");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
}

#[tokio::test]
async fn forward_weights_are_rewritten_on_a_listener_and_a_rule_and_read_back() {
    let w = world().await;
    let (a, b) = (w.a(), w.b());
    let production = w.str("productionListenerArn");
    w.elb()
        .set_forward_weights(&production, &weighted(&[(&a, 90), (&b, 10)]), None)
        .await
        .expect("listener weighted");
    let route = w.route(&production).await;
    assert_eq!(route.forward, Some(weighted(&[(&a, 90), (&b, 10)])));
    assert_eq!(route.percent_to(&b), Some(10.0));
    let listener = w.elb().describe_listener(&production).await.unwrap();
    assert_eq!(listener.forward, weighted(&[(&a, 90), (&b, 10)]));

    let rule = w.str("ruleArn");
    w.elb()
        .set_forward_weights(&rule, &weighted(&[(&a, 0), (&b, 999)]), None)
        .await
        .expect("rule weighted");
    assert_eq!(
        w.route(&rule).await.forward,
        Some(weighted(&[(&a, 0), (&b, 999)]))
    );
    assert_eq!(
        w.route(&w.str("testListenerArn")).await.forward,
        Some(weighted(&[(&b, 1)])),
        "the test listener is untouched"
    );

    // What moto stored: one forward action, a weighted ForwardConfig, its stickiness as ELB
    // reports it back.
    let stored = w
        .elb_client()
        .describe_rules()
        .rule_arns(&rule)
        .send()
        .await
        .unwrap();
    let actions = stored.rules()[0].actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].target_group_arn(), None);
    assert!(actions[0].forward_config().is_some());
}

#[tokio::test]
async fn a_weight_above_999_is_refused_before_it_reaches_elb() {
    let w = world().await;
    let production = w.str("productionListenerArn");
    let requests = RequestCounter::default();
    let counted = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        aws_sdk_elasticloadbalancingv2::config::Builder::from(&w.config)
            .interceptor(requests.clone())
            .build(),
    );
    let error = ElbAdapter::new(counted)
        .set_forward_weights(&production, &weighted(&[(&w.a(), 1000)]), None)
        .await
        .expect_err("refused");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
    assert_eq!(error.operation, "ModifyListener");
    assert_eq!(requests.count(), 0, "not even the read was sent");
    assert_eq!(
        w.route(&production).await.forward,
        Some(weighted(&[(&w.a(), 1)])),
        "moto would have taken it; nothing was sent"
    );
}

#[tokio::test]
async fn target_health_lists_the_registered_targets_of_a_group() {
    let w = world().await;
    let a = w.elb().describe_target_health(&w.a()).await.unwrap();
    assert_eq!(a.len(), 2, "the fixture registered the primary's two tasks");
    assert!(a.iter().all(|t| t.port == Some(8080)));
    assert!(a.iter().all(|t| t.state == TargetHealthState::Healthy));
    assert!(
        w.elb()
            .describe_target_health(&w.b())
            .await
            .unwrap()
            .is_empty(),
        "moto registers no targets for a task set"
    );
    // As ECS would for a candidate task set's task.
    w.elb_client()
        .register_targets()
        .target_group_arn(w.b())
        .targets(
            elb::TargetDescription::builder()
                .id("10.0.9.9")
                .port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let b = w.elb().describe_target_health(&w.b()).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, "10.0.9.9");
}

// ----- ECS with mocked answers -------------------------------------------------------------

fn ecs_ok(body: Value) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body.to_string()),
    )
}

/// An error answer the way ECS's JSON protocol sends it.
fn ecs_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(serde_json::json!({"__type": code, "message": message}).to_string()),
    )
}

/// A task set as ECS's API model shapes it.
fn task_set_json(status: &str, scale: f64) -> Value {
    serde_json::json!({
        "id": "ecs-svc/1234567890123456789",
        "taskSetArn": "arn:aws:ecs:us-east-1:111122223333:task-set/prod/web/ecs-svc/1234567890123456789",
        "serviceArn": "arn:aws:ecs:us-east-1:111122223333:service/prod/web",
        "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
        "externalId": "web/rollout-1",
        "status": status,
        "taskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7",
        "computedDesiredCount": 3,
        "pendingCount": 2,
        "runningCount": 1,
        "createdAt": 1767225600.0,
        "updatedAt": 1767225600.0,
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 1}],
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}},
        "loadBalancers": [{"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-b/1",
                           "containerName": "web", "containerPort": 8080}],
        "serviceRegistries": [],
        "scale": {"value": scale, "unit": "PERCENT"},
        "stabilityStatus": "STABILIZING",
        "stabilityStatusAt": 1767225600.0,
        "tags": []
    })
}

fn mocked_request() -> CreateTaskSetRequest {
    CreateTaskSetRequest {
        cluster: CLUSTER.into(),
        service: SERVICE.into(),
        task_definition: "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7".into(),
        load_balancer: LoadBalancerBinding {
            target_group_arn:
                "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-b/1".into(),
            container_name: "web".into(),
            container_port: 8080,
        },
        scale_percent: 100.0,
        client_token: "web-g3-a1-0123456789abcdef".into(),
        external_id: "web/rollout-1".into(),
        launch: LaunchSettings {
            launch_type: None,
            capacity_provider_strategy: vec![switchyard::ports::CapacityProviderItem {
                capacity_provider: "FARGATE_SPOT".into(),
                base: 1,
                weight: 3,
            }],
            platform_version: Some("1.4.0".into()),
            network_configuration: Some(NetworkConfiguration {
                subnets: vec!["subnet-1".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: false,
            }),
        },
    }
}

#[tokio::test]
async fn create_task_set_sends_the_client_token_external_id_percent_scale_and_launch_settings() {
    use aws_sdk_ecs::Client;
    let create = mock!(Client::create_task_set)
        .match_requests(|r| {
            let lb = &r.load_balancers()[0];
            let vpc = r
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration());
            r.cluster() == Some(CLUSTER)
                && r.service() == Some(SERVICE)
                && r.client_token() == Some("web-g3-a1-0123456789abcdef")
                && r.external_id() == Some("web/rollout-1")
                && r.scale()
                    == Some(
                        &ecs::Scale::builder()
                            .value(100.0)
                            .unit(ecs::ScaleUnit::Percent)
                            .build(),
                    )
                && lb.container_name() == Some("web")
                && lb.container_port() == Some(8080)
                && r.launch_type().is_none()
                && r.capacity_provider_strategy()[0].capacity_provider() == "FARGATE_SPOT"
                && r.platform_version() == Some("1.4.0")
                && vpc.is_some_and(|v| {
                    v.subnets() == ["subnet-1"]
                        && v.assign_public_ip() == Some(&ecs::AssignPublicIp::Disabled)
                })
        })
        .then_http_response(|| {
            ecs_ok(serde_json::json!({"taskSet": task_set_json("ACTIVE", 100.0)}))
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&create]);
    let created = EcsAdapter::new(client)
        .create_task_set(&mocked_request())
        .await
        .expect("created");
    assert_eq!(create.num_calls(), 1);
    assert_eq!(created.status, TaskSetStatus::Active);
    assert_eq!(
        (
            created.computed_desired_count,
            created.pending_count,
            created.running_count
        ),
        (3, 2, 1)
    );
    assert_eq!(created.stability, StabilityStatus::Stabilizing);
    assert_eq!(created.launch, mocked_request().launch);
    assert_eq!(created.load_balancers, vec![mocked_request().load_balancer]);
}

#[tokio::test]
async fn deleting_a_task_set_that_still_has_a_scale_is_a_conflict_and_force_is_sent() {
    use aws_sdk_ecs::Client;
    let refused = mock!(Client::delete_task_set)
        .match_requests(|r| r.force() == Some(false))
        .then_http_response(|| {
            ecs_error(
                "InvalidParameterException",
                "The specified task set has a non-zero scale; set its scale to 0 or delete it with force.",
            )
        });
    let forced = mock!(Client::delete_task_set)
        .match_requests(|r| r.force() == Some(true) && r.task_set() == Some("ts-arn"))
        .then_http_response(|| {
            ecs_ok(serde_json::json!({"taskSet": task_set_json("DRAINING", 50.0)}))
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&refused, &forced]);
    let adapter = EcsAdapter::new(client);
    let error = adapter
        .delete_task_set(CLUSTER, SERVICE, "ts-arn", false)
        .await
        .expect_err("refused");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
    assert_eq!(error.operation, "DeleteTaskSet");
    adapter
        .delete_task_set(CLUSTER, SERVICE, "ts-arn", true)
        .await
        .expect("forced");
    assert_eq!(forced.num_calls(), 1);
}

#[tokio::test]
async fn task_set_errors_are_classified_not_found_invalid_and_access_denied() {
    use aws_sdk_ecs::Client;
    let answers = [
        (
            "ServiceNotFoundException",
            "Service not found.",
            AwsErrorKind::NotFound,
        ),
        (
            "TaskSetNotFoundException",
            "The specified task set does not exist.",
            AwsErrorKind::NotFound,
        ),
        (
            "ClusterNotFoundException",
            "Cluster not found.",
            AwsErrorKind::NotFound,
        ),
        (
            "InvalidParameterException",
            "5 deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.",
            AwsErrorKind::InvalidRequest,
        ),
        (
            "ClientException",
            "TaskDefinition not found.",
            AwsErrorKind::InvalidRequest,
        ),
        (
            "AccessDeniedException",
            "User is not authorized to perform: ecs:UpdateTaskSet",
            AwsErrorKind::AccessDenied,
        ),
    ];
    for (code, message, kind) in answers {
        let update =
            mock!(Client::update_task_set).then_http_response(move || ecs_error(code, message));
        let primary = mock!(Client::update_service_primary_task_set)
            .then_http_response(move || ecs_error(code, message));
        let create =
            mock!(Client::create_task_set).then_http_response(move || ecs_error(code, message));
        let client = mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&update, &primary, &create]
        );
        let adapter = EcsAdapter::new(client);
        let errors = [
            adapter
                .update_task_set_scale(CLUSTER, SERVICE, "ts", 10.0)
                .await
                .unwrap_err(),
            adapter
                .update_service_primary_task_set(CLUSTER, SERVICE, "ts")
                .await
                .unwrap_err(),
            adapter
                .create_task_set(&mocked_request())
                .await
                .unwrap_err(),
        ];
        for error in errors {
            assert_eq!(error.kind, kind, "{code}: {error}");
            assert_eq!(error.code.as_deref(), Some(code));
        }
    }
}

// ----- ELB with mocked answers -------------------------------------------------------------

const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
const LOAD_BALANCER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188";
const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-a/1";
const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-b/2";

fn forward_single(target_group: &str, order: i32) -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::Forward)
        .order(order)
        .target_group_arn(target_group)
        .forward_config(
            elb::ForwardActionConfig::builder()
                .target_groups(
                    elb::TargetGroupTuple::builder()
                        .target_group_arn(target_group)
                        .weight(1)
                        .build(),
                )
                .target_group_stickiness_config(
                    elb::TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(600)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn cognito(order: i32) -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::AuthenticateCognito)
        .order(order)
        .authenticate_cognito_config(
            elb::AuthenticateCognitoActionConfig::builder()
                .user_pool_arn("arn:aws:cognito-idp:us-east-1:111122223333:userpool/us-east-1_abc")
                .user_pool_client_id("client")
                .user_pool_domain("login")
                .build(),
        )
        .build()
}

fn listener(port: i32, actions: Vec<elb::Action>) -> elb::Listener {
    elb::Listener::builder()
        .listener_arn(LISTENER)
        .load_balancer_arn(LOAD_BALANCER)
        .port(port)
        .protocol(elb::ProtocolEnum::Https)
        .set_default_actions(Some(actions))
        .build()
}

/// An error answer the way ELB's query protocol sends it.
fn elb_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(format!(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>a2b4c6d8-0000-1111-2222-333344445555</RequestId></ErrorResponse>"
        )),
    )
}

#[tokio::test]
async fn a_rewrite_keeps_the_authentication_action_the_order_and_the_stickiness() {
    use aws_sdk_elasticloadbalancingv2::Client;
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput;
    use aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerOutput;
    let describe = mock!(Client::describe_listeners)
        .match_requests(|r| r.listener_arns() == [LISTENER])
        .then_output(|| {
            DescribeListenersOutput::builder()
                .listeners(listener(443, vec![cognito(1), forward_single(TG_A, 2)]))
                .build()
        });
    let modify = mock!(Client::modify_listener)
        .match_requests(|r| {
            let actions = r.default_actions();
            let forward = &actions[1];
            let config = forward.forward_config().unwrap();
            r.listener_arn() == Some(LISTENER)
                && actions.len() == 2
                && actions[0] == cognito(1)
                && forward.order() == Some(2)
                && forward.target_group_arn().is_none()
                && config.target_groups()
                    == [
                        elb::TargetGroupTuple::builder()
                            .target_group_arn(TG_A)
                            .weight(90)
                            .build(),
                        elb::TargetGroupTuple::builder()
                            .target_group_arn(TG_B)
                            .weight(10)
                            .build(),
                    ]
                && config
                    .target_group_stickiness_config()
                    .is_some_and(|s| s.enabled() == Some(true) && s.duration_seconds() == Some(600))
        })
        .then_output(|| ModifyListenerOutput::builder().build());
    let client = mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&describe, &modify]
    );
    ElbAdapter::new(client)
        .set_forward_weights(LISTENER, &weighted(&[(TG_A, 90), (TG_B, 10)]), None)
        .await
        .expect("rewritten");
    assert_eq!((describe.num_calls(), modify.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_rule_is_rewritten_with_modify_rule_and_elbs_refusals_are_classified() {
    use aws_sdk_elasticloadbalancingv2::Client;
    use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
    let describe = mock!(Client::describe_rules)
        .match_requests(|r| r.rule_arns() == [RULE])
        .then_output(|| {
            DescribeRulesOutput::builder()
                .rules(
                    elb::Rule::builder()
                        .rule_arn(RULE)
                        .priority("10")
                        .is_default(false)
                        .actions(forward_single(TG_A, 1))
                        .build(),
                )
                .build()
        });
    let unknown_group = mock!(Client::modify_rule)
        .match_requests(|r| r.rule_arn() == Some(RULE))
        .then_http_response(|| {
            elb_error("TargetGroupNotFound", "One or more target groups not found")
        });
    let client = mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&describe, &unknown_group]
    );
    let error = ElbAdapter::new(client)
        .set_forward_weights(RULE, &weighted(&[(TG_A, 50), (TG_B, 50)]), None)
        .await
        .expect_err("moto accepts unknown target groups; ELB does not");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    assert_eq!(error.operation, "ModifyRule");
    assert_eq!(unknown_group.num_calls(), 1);

    for (code, kind) in [
        ("TargetGroupAssociationLimit", AwsErrorKind::InvalidRequest),
        ("ValidationError", AwsErrorKind::InvalidRequest),
        ("RuleNotFound", AwsErrorKind::NotFound),
        ("Throttling", AwsErrorKind::Throttling),
        ("AccessDenied", AwsErrorKind::AccessDenied),
    ] {
        let describe =
            mock!(Client::describe_rules).then_http_response(move || elb_error(code, "refused"));
        let client = mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            [&describe]
        );
        let error = ElbAdapter::new(client)
            .describe_route(RULE)
            .await
            .expect_err("refused");
        assert_eq!(error.kind, kind, "{code}: {error}");
    }
}

#[tokio::test]
async fn routes_follow_the_next_marker_of_listeners_and_rules() {
    use aws_sdk_elasticloadbalancingv2::Client;
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
    let second_listener = LISTENER.replace("f2f7dc8efc522ab2", "0000000000000002");
    let listeners_page_1 = mock!(Client::describe_listeners)
        .match_requests(|r| r.load_balancer_arn() == Some(LOAD_BALANCER) && r.marker().is_none())
        .then_output(|| {
            DescribeListenersOutput::builder()
                .listeners(listener(80, vec![forward_single(TG_A, 1)]))
                .next_marker("listeners-2")
                .build()
        });
    let page_2_listener = second_listener.clone();
    let listeners_page_2 = mock!(Client::describe_listeners)
        .match_requests(|r| r.marker() == Some("listeners-2"))
        .then_output(move || {
            let mut test = listener(8080, vec![forward_single(TG_B, 1)]);
            test.listener_arn = Some(page_2_listener.clone());
            DescribeListenersOutput::builder().listeners(test).build()
        });
    let rule = |arn: &str, priority: &str, default: bool| {
        elb::Rule::builder()
            .rule_arn(arn)
            .priority(priority)
            .is_default(default)
            .actions(forward_single(TG_A, 1))
            .build()
    };
    let rules_page_1 = mock!(Client::describe_rules)
        .match_requests(|r| r.listener_arn() == Some(LISTENER) && r.marker().is_none())
        .then_output(move || {
            DescribeRulesOutput::builder()
                .rules(rule(RULE, "10", false))
                .next_marker("rules-2")
                .build()
        });
    let rules_page_2 = mock!(Client::describe_rules)
        .match_requests(|r| r.listener_arn() == Some(LISTENER) && r.marker() == Some("rules-2"))
        .then_output(move || {
            DescribeRulesOutput::builder()
                .rules(rule(&format!("{RULE}0"), "20", false))
                .rules(rule(&format!("{RULE}1"), "default", true))
                .build()
        });
    let second = second_listener.clone();
    let rules_of_second = mock!(Client::describe_rules)
        .match_requests(move |r| r.listener_arn() == Some(second.as_str()))
        .then_output(|| DescribeRulesOutput::builder().build());
    let client = mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [
            &listeners_page_1,
            &listeners_page_2,
            &rules_page_1,
            &rules_page_2,
            &rules_of_second
        ]
    );
    let routes = ElbAdapter::new(client)
        .describe_routes(LOAD_BALANCER)
        .await
        .expect("described");
    let seen: Vec<(String, Option<String>)> = routes
        .iter()
        .map(|r| (r.arn.clone(), r.rule_priority.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (LISTENER.to_string(), None),
            (RULE.to_string(), Some("10".into())),
            (format!("{RULE}0"), Some("20".into())),
            (second_listener.clone(), None),
        ],
        "every page, the default rule left out"
    );
    assert_eq!(routes[3].port, Some(8080));
    assert_eq!(routes[3].forward, Some(weighted(&[(TG_B, 1)])));
}

/// A guarded weight write (`ExpectedShare`) checks the share it reads before writing: the
/// listener forwards all to A, the write expects 10% on B, so nothing is written and the
/// error says the route changed (a `Conflict` the controller reads as a weight changed by
/// hand); expecting the share the route gives, it writes.
#[tokio::test]
async fn a_guarded_rewrite_writes_nothing_when_the_route_changed() {
    use aws_sdk_elasticloadbalancingv2::Client;
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput;
    use aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerOutput;
    use switchyard::ports::ExpectedShare;
    let describe = mock!(Client::describe_listeners)
        .match_requests(|r| r.listener_arns() == [LISTENER])
        .then_output(|| {
            DescribeListenersOutput::builder()
                .listeners(listener(443, vec![forward_single(TG_A, 1)]))
                .build()
        });
    let modify =
        mock!(Client::modify_listener).then_output(|| ModifyListenerOutput::builder().build());
    let client = mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&describe, &modify]
    );
    let adapter = ElbAdapter::new(client);
    let share = |percent| ExpectedShare {
        target_group_arn: TG_B.into(),
        percent,
    };
    let error = adapter
        .set_forward_weights(
            LISTENER,
            &weighted(&[(TG_A, 50), (TG_B, 50)]),
            Some(&share(10)),
        )
        .await
        .expect_err("the route gives B nothing, not 10%");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
    assert_eq!(error.code.as_deref(), Some(ExpectedShare::ROUTE_CHANGED));
    assert_eq!((describe.num_calls(), modify.num_calls()), (1, 0));
    adapter
        .set_forward_weights(
            LISTENER,
            &weighted(&[(TG_A, 50), (TG_B, 50)]),
            Some(&share(0)),
        )
        .await
        .expect("the route gives B 0%, as expected");
    assert_eq!((describe.num_calls(), modify.num_calls()), (2, 1));
}
