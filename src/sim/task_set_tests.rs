//! Behaviour tests of the simulated `EXTERNAL` services: task sets, their tasks and targets
//! over virtual time, load balancer routes and forward weights, under paused tokio time.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::ports::{
    AwsErrorKind, CreateTaskSetRequest, Ecs, LaunchSettings, LoadBalancer, StabilityStatus,
    TargetHealthState, TaskSet,
};

struct Fixture {
    aws: SimAws,
    handles: ExternalHandles,
    setup: ExternalSetup,
}

impl Fixture {
    fn new(configure: impl FnOnce(&mut ExternalSetup)) -> Self {
        let aws = SimAws::new(Clock::fixed_epoch());
        let mut setup = ExternalSetup::new("prod", "web");
        configure(&mut setup);
        let handles = aws.add_external_service(setup.clone());
        Self {
            aws,
            handles,
            setup,
        }
    }

    fn a(&self) -> &str {
        &self.handles.target_group_arns[0]
    }

    fn b(&self) -> &str {
        &self.handles.target_group_arns[1]
    }

    /// A `CreateTaskSet` of the first revision on target group B, launched as the primary.
    fn request(&self, token: &str, scale_percent: f64) -> CreateTaskSetRequest {
        CreateTaskSetRequest {
            cluster: self.setup.cluster.clone(),
            service: self.setup.service.clone(),
            task_definition: self.handles.task_definition.arn.clone(),
            load_balancer: LoadBalancerBinding {
                target_group_arn: self.b().to_string(),
                container_name: self.setup.container_name.clone(),
                container_port: self.setup.container_port,
            },
            scale_percent,
            client_token: token.to_string(),
            external_id: format!("web/{token}"),
            launch: self.setup.launch.clone(),
        }
    }

    async fn create(&self, token: &str, scale_percent: f64) -> TaskSet {
        self.aws
            .create_task_set(&self.request(token, scale_percent))
            .await
            .expect("task set created")
    }

    fn web(&self) -> Service {
        self.aws.service("prod", "web").expect("the service exists")
    }

    fn task_set(&self, arn: &str) -> Option<TaskSet> {
        self.web().task_sets.into_iter().find(|t| t.arn == arn)
    }

    fn health(&self, target_group_arn: &str) -> Vec<TargetHealthState> {
        self.aws
            .target_health(target_group_arn)
            .expect("the target group exists")
            .into_iter()
            .map(|t| t.state)
            .collect()
    }

    fn weights(&self, route_arn: &str) -> Vec<(String, u32)> {
        self.aws
            .route(route_arn)
            .expect("the route exists")
            .forward
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.target_group_arn, t.weight))
            .collect()
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

async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

// ---------------------------------------------------------------------------------------
// The setup

#[tokio::test(start_paused = true)]
async fn an_external_service_starts_with_a_steady_primary_task_set_on_target_group_a() {
    let f = Fixture::new(|_| {});
    let web = f.web();
    assert_eq!(
        web.deployment_controller,
        DeploymentControllerType::External
    );
    assert_eq!(web.task_sets.len(), 1);
    let primary = web.primary_task_set().expect("a primary task set");
    assert_eq!(primary.arn, f.handles.primary_task_set_arn);
    assert_eq!(primary.scale_percent, 100.0);
    assert_eq!(primary.computed_desired_count, 2);
    assert_eq!(primary.running_count, 2);
    assert_eq!(primary.stability, StabilityStatus::SteadyState);
    assert_eq!(primary.target_group_arns, vec![f.a().to_string()]);
    assert_eq!(
        primary.load_balancers,
        vec![LoadBalancerBinding {
            target_group_arn: f.a().to_string(),
            container_name: "web".into(),
            container_port: 8080,
        }]
    );
    assert_eq!(primary.launch, f.setup.launch);
    assert_eq!(
        f.health(f.a()),
        vec![TargetHealthState::Healthy, TargetHealthState::Healthy]
    );
    assert!(f.health(f.b()).is_empty());
    assert_eq!(
        f.weights(&f.handles.production_listener_arn),
        vec![(f.a().to_string(), 1)],
        "the production listener forwards to the live group only"
    );
    assert_eq!(
        f.weights(f.handles.test_listener_arn.as_deref().unwrap()),
        vec![(f.b().to_string(), 1)]
    );
}

// ---------------------------------------------------------------------------------------
// Task sets

#[tokio::test(start_paused = true)]
async fn a_task_set_is_stabilizing_until_its_tasks_run_and_pass_health_checks() {
    let f = Fixture::new(|_| {});
    let created = f.create("t1", 100.0).await;
    assert_eq!(created.status, TaskSetStatus::Active);
    assert_eq!(created.external_id.as_deref(), Some("web/t1"));
    assert_eq!(created.computed_desired_count, 2);
    assert_eq!(created.running_count, 0);
    assert_eq!(created.pending_count, 2);
    assert_eq!(created.stability, StabilityStatus::Stabilizing);
    assert!(f.health(f.b()).is_empty(), "no task runs yet");

    advance(TASK_START).await;
    let one = f.task_set(&created.arn).unwrap();
    assert_eq!((one.running_count, one.pending_count), (1, 1));
    assert_eq!(one.stability, StabilityStatus::Stabilizing);
    assert_eq!(f.health(f.b()), vec![TargetHealthState::Initial]);

    advance(TASK_START).await;
    let both = f.task_set(&created.arn).unwrap();
    assert_eq!((both.running_count, both.pending_count), (2, 0));
    assert_eq!(
        both.stability,
        StabilityStatus::Stabilizing,
        "running, but the health checks have not decided"
    );

    advance(HEALTH_CHECK).await;
    let steady = f.task_set(&created.arn).unwrap();
    assert_eq!(steady.stability, StabilityStatus::SteadyState);
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Healthy, TargetHealthState::Healthy]
    );
    assert_eq!(
        f.web().task_sets.len(),
        2,
        "DescribeServices returns both task sets inline"
    );
}

#[tokio::test(start_paused = true)]
async fn scale_is_a_percent_of_the_desired_count_rounded_up() {
    let f = Fixture::new(|s| s.desired_count = 3);
    let created = f.create("t1", 34.0).await;
    assert_eq!(
        created.computed_desired_count, 2,
        "3 x 34% = 1.02, rounded up"
    );
    let arn = created.arn.clone();
    for (scale, computed) in [(10.0, 1), (50.0, 2), (100.0, 3), (0.0, 0)] {
        let updated = f
            .aws
            .update_task_set_scale("prod", "web", &arn, scale)
            .await
            .expect("scale updated");
        assert_eq!(updated.scale_percent, scale);
        assert_eq!(updated.computed_desired_count, computed, "{scale}%");
    }
    let empty = f.task_set(&arn).unwrap();
    assert_eq!(
        empty.stability,
        StabilityStatus::SteadyState,
        "scale 0 is steady at once"
    );
    for scale in [100.5, -1.0] {
        let error = f
            .aws
            .update_task_set_scale("prod", "web", &arn, scale)
            .await
            .unwrap_err();
        assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{scale}: {error}");
        assert_eq!(error.code.as_deref(), Some("InvalidParameterException"));
    }
    let error = f
        .aws
        .create_task_set(&f.request("t2", 101.0))
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
}

#[tokio::test(start_paused = true)]
async fn scaling_down_drains_the_stopped_tasks_out_of_the_target_group() {
    let f = Fixture::new(|_| {});
    let created = f.create("t1", 100.0).await;
    advance(TASK_START * 2 + HEALTH_CHECK).await;
    f.aws
        .update_task_set_scale("prod", "web", &created.arn, 50.0)
        .await
        .unwrap();
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Healthy, TargetHealthState::Draining]
    );
    assert_eq!(f.task_set(&created.arn).unwrap().running_count, 1);
    advance(DEREGISTRATION_DELAY).await;
    assert_eq!(f.health(f.b()), vec![TargetHealthState::Healthy]);
}

#[tokio::test(start_paused = true)]
async fn the_desired_count_rescales_every_task_set() {
    let f = Fixture::new(|_| {});
    let candidate = f.create("t1", 50.0).await;
    assert_eq!(candidate.computed_desired_count, 1);
    f.aws.set_desired_count("prod", "web", 4);
    let web = f.web();
    assert_eq!(web.desired_count, 4);
    assert_eq!(web.primary_task_set().unwrap().computed_desired_count, 4);
    assert_eq!(
        f.task_set(&candidate.arn).unwrap().computed_desired_count,
        2
    );
    advance(TASK_START * 4 + HEALTH_CHECK).await;
    assert_eq!(f.health(f.a()).len(), 4);
    assert_eq!(f.health(f.b()).len(), 2);
    assert!(
        f.web()
            .task_sets
            .iter()
            .all(|t| t.stability == StabilityStatus::SteadyState)
    );
}

#[tokio::test(start_paused = true)]
async fn task_sets_are_refused_on_services_without_the_external_controller() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let bluegreen = aws.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
    let request = CreateTaskSetRequest {
        cluster: "prod".into(),
        service: "web".into(),
        task_definition: bluegreen.task_definition.arn.clone(),
        load_balancer: LoadBalancerBinding {
            target_group_arn: bluegreen.target_group_arns[1].clone(),
            container_name: "web".into(),
            container_port: 8080,
        },
        scale_percent: 100.0,
        client_token: "t1".into(),
        external_id: "x".into(),
        launch: LaunchSettings::default(),
    };
    let primary = aws.service("prod", "web").unwrap().task_sets[0].arn.clone();
    let errors = [
        aws.create_task_set(&request).await.unwrap_err(),
        aws.update_task_set_scale("prod", "web", &primary, 50.0)
            .await
            .unwrap_err(),
        aws.update_service_primary_task_set("prod", "web", &primary)
            .await
            .unwrap_err(),
        aws.delete_task_set("prod", "web", &primary, true)
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
        assert!(error.message.contains("CODE_DEPLOY"), "{error}");
    }
    assert_eq!(aws.service("prod", "web").unwrap().task_sets.len(), 1);

    let missing = aws
        .update_task_set_scale("prod", "ghost", &primary, 50.0)
        .await
        .unwrap_err();
    assert_eq!(missing.kind, AwsErrorKind::NotFound);
    assert_eq!(missing.code.as_deref(), Some("ServiceNotFoundException"));
    let no_cluster = CreateTaskSetRequest {
        cluster: "staging".into(),
        ..request
    };
    assert_eq!(
        aws.create_task_set(&no_cluster)
            .await
            .unwrap_err()
            .code
            .as_deref(),
        Some("ClusterNotFoundException")
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_create_with_the_same_client_token_returns_the_same_task_set() {
    let f = Fixture::new(|_| {});
    let first = f.create("rollout-1", 100.0).await;
    let again = f.create("rollout-1", 100.0).await;
    assert_eq!(again.arn, first.arn);
    assert_eq!(f.web().task_sets.len(), 2, "no second task set");
    assert_eq!(f.aws.call_count("ecs:CreateTaskSet"), 2);

    let other = f.create("rollout-2", 100.0).await;
    assert_ne!(other.arn, first.arn, "another token, another task set");

    let too_long = f
        .aws
        .create_task_set(&f.request(&"x".repeat(CLIENT_TOKEN_MAX_LEN + 1), 100.0))
        .await
        .unwrap_err();
    assert_eq!(too_long.kind, AwsErrorKind::InvalidRequest);

    // A token whose task set was deleted since still answers with that task set.
    f.aws
        .delete_task_set("prod", "web", &first.arn, true)
        .await
        .unwrap();
    advance(DEREGISTRATION_DELAY).await;
    let replayed = f.create("rollout-1", 100.0).await;
    assert_eq!(replayed.arn, first.arn);
    assert!(f.task_set(&first.arn).is_none(), "not created again");
}

#[tokio::test(start_paused = true)]
async fn a_service_holds_at_most_five_task_sets() {
    let f = Fixture::new(|_| {});
    for i in 0..TASK_SETS_PER_SERVICE - 1 {
        f.create(&format!("t{i}"), 0.0).await;
    }
    let error = f
        .aws
        .create_task_set(&f.request("one-too-many", 0.0))
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
    assert!(
        error.message.contains("5 deployments exist on the service"),
        "{error}"
    );
    assert_eq!(f.web().task_sets.len(), TASK_SETS_PER_SERVICE);
}

#[tokio::test(start_paused = true)]
async fn a_task_set_needs_a_target_group_that_a_load_balancer_forwards_to() {
    let f = Fixture::new(|s| s.test_port = None);
    let error = f
        .aws
        .create_task_set(&f.request("t1", 100.0))
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
    assert!(
        error
            .message
            .contains("does not have an associated load balancer"),
        "{error}"
    );
    // B at weight 0 on the production listener associates it, without moving any traffic.
    f.aws
        .set_forward_weights(
            &f.handles.production_listener_arn,
            &weighted(&[(f.a(), 100), (f.b(), 0)]),
            None,
        )
        .await
        .unwrap();
    f.create("t1", 100.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_task_set_must_fit_its_task_definition_and_launch_settings() {
    let f = Fixture::new(|_| {});
    let mut wrong_port = f.request("t1", 100.0);
    wrong_port.load_balancer.container_port = 9090;
    let mut wrong_container = f.request("t2", 100.0);
    wrong_container.load_balancer.container_name = "sidecar".into();
    let mut unknown_group = f.request("t3", 100.0);
    unknown_group.load_balancer.target_group_arn = format!("{}0", f.b());
    let mut unknown_definition = f.request("t4", 100.0);
    unknown_definition.task_definition = "web:9".into();
    let mut no_network = f.request("t5", 100.0);
    no_network.launch.network_configuration = None;
    let mut both_launch_kinds = f.request("t6", 100.0);
    both_launch_kinds
        .launch
        .capacity_provider_strategy
        .push(CapacityProviderItem {
            capacity_provider: "FARGATE_SPOT".into(),
            base: 0,
            weight: 1,
        });
    for (what, request) in [
        ("container port", wrong_port),
        ("container", wrong_container),
        ("target group", unknown_group),
        ("task definition", unknown_definition),
        ("awsvpc network", no_network),
        ("launch type and capacity providers", both_launch_kinds),
    ] {
        let error = f.aws.create_task_set(&request).await.unwrap_err();
        assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{what}: {error}");
    }
    assert_eq!(f.web().task_sets.len(), 1, "nothing created");
}

#[tokio::test(start_paused = true)]
async fn deleting_a_task_set_with_a_scale_is_refused_unless_forced() {
    let f = Fixture::new(|_| {});
    let scaled = f.create("t1", 50.0).await;
    let refused = f
        .aws
        .delete_task_set("prod", "web", &scaled.arn, false)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, AwsErrorKind::Conflict, "{refused}");
    assert_eq!(
        f.task_set(&scaled.arn).unwrap().status,
        TaskSetStatus::Active
    );

    f.aws
        .update_task_set_scale("prod", "web", &scaled.arn, 0.0)
        .await
        .unwrap();
    f.aws
        .delete_task_set("prod", "web", &scaled.arn, false)
        .await
        .expect("a task set at scale 0 is deleted");

    let forced = f.create("t2", 100.0).await;
    f.aws
        .delete_task_set("prod", "web", &forced.id, true)
        .await
        .expect("force deletes a task set with a scale, by id too");

    let gone = f
        .aws
        .delete_task_set("prod", "web", &forced.arn, true)
        .await
        .unwrap_err();
    assert_eq!(gone.kind, AwsErrorKind::NotFound);
    assert_eq!(gone.code.as_deref(), Some("TaskSetNotFoundException"));
}

#[tokio::test(start_paused = true)]
async fn a_deleted_task_set_drains_its_targets_out_of_the_group() {
    let f = Fixture::new(|_| {});
    let created = f.create("t1", 100.0).await;
    advance(TASK_START * 2 + HEALTH_CHECK).await;
    f.aws
        .delete_task_set("prod", "web", &created.arn, true)
        .await
        .unwrap();
    let draining = f
        .task_set(&created.arn)
        .expect("still listed while it drains");
    assert_eq!(draining.status, TaskSetStatus::Draining);
    assert_eq!(draining.running_count, 0);
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Draining, TargetHealthState::Draining]
    );
    advance(DEREGISTRATION_DELAY).await;
    assert!(f.task_set(&created.arn).is_none());
    assert!(f.health(f.b()).is_empty(), "its targets left the group");
    assert_eq!(f.health(f.a()).len(), 2, "the primary's targets stay");
}

#[tokio::test(start_paused = true)]
async fn the_primary_task_set_is_switched_by_arn_or_id() {
    let f = Fixture::new(|_| {});
    let candidate = f.create("t1", 100.0).await;
    let primary = f
        .aws
        .update_service_primary_task_set("prod", "web", &candidate.arn)
        .await
        .unwrap();
    assert_eq!(primary.status, TaskSetStatus::Primary);
    let web = f.web();
    assert_eq!(web.primary_task_set().unwrap().arn, candidate.arn);
    assert_eq!(
        f.task_set(&f.handles.primary_task_set_arn).unwrap().status,
        TaskSetStatus::Active
    );
    let old_id = f.task_set(&f.handles.primary_task_set_arn).unwrap().id;
    f.aws
        .update_service_primary_task_set("prod", "web", &old_id)
        .await
        .unwrap();
    assert_eq!(
        f.web().primary_task_set().unwrap().arn,
        f.handles.primary_task_set_arn
    );
    let unknown = f
        .aws
        .update_service_primary_task_set("prod", "web", "ecs-svc/0")
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, AwsErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn tasks_of_a_failing_image_run_but_never_become_healthy() {
    let f = Fixture::new(|_| {});
    let mut container = f.handles.task_definition.containers[0].clone();
    container.image = "registry/web:broken".into();
    let broken = f
        .aws
        .register_task_definition(&f.handles.task_definition, &[container], &BTreeMap::new())
        .await
        .unwrap();
    f.aws.fail_install_for_image(":broken");
    let mut request = f.request("t1", 100.0);
    request.task_definition = broken.arn.clone();
    let created = f.aws.create_task_set(&request).await.unwrap();
    advance(Duration::from_secs(3600)).await;
    let stuck = f.task_set(&created.arn).unwrap();
    assert_eq!(stuck.running_count, 2);
    assert_eq!(stuck.stability, StabilityStatus::Stabilizing);
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Unhealthy, TargetHealthState::Unhealthy]
    );
}

// ---------------------------------------------------------------------------------------
// Routes, target groups, target health

fn rules() -> Vec<ExternalRule> {
    vec![
        ExternalRule {
            priority: 20,
            forwards: true,
        },
        ExternalRule {
            priority: 10,
            forwards: false,
        },
    ]
}

#[tokio::test(start_paused = true)]
async fn routes_are_every_listener_default_action_and_every_rule_in_priority_order() {
    let f = Fixture::new(|s| s.rules = rules());
    let routes = f
        .aws
        .describe_routes(&f.handles.load_balancer_arn)
        .await
        .unwrap();
    let production = &f.handles.production_listener_arn;
    let summary: Vec<(String, Option<String>, Option<Vec<WeightedTargetGroup>>)> = routes
        .iter()
        .map(|r| (r.arn.clone(), r.rule_priority.clone(), r.forward.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (production.clone(), None, Some(weighted(&[(f.a(), 1)]))),
            (f.handles.rule_arns[1].clone(), Some("10".into()), None),
            (
                f.handles.rule_arns[0].clone(),
                Some("20".into()),
                Some(weighted(&[(f.a(), 1)]))
            ),
            (
                f.handles.test_listener_arn.clone().unwrap(),
                None,
                Some(weighted(&[(f.b(), 1)]))
            ),
        ]
    );
    for route in &routes[..3] {
        assert_eq!(route.listener_arn, *production);
        assert_eq!(route.load_balancer_arn, f.handles.load_balancer_arn);
        assert_eq!(route.port, Some(80));
    }
    assert!(f.handles.rule_arns[0].contains(":listener-rule/app/web-alb/"));
    assert_eq!(
        (
            f.aws.call_count("elbv2:DescribeListeners"),
            f.aws.call_count("elbv2:DescribeRules")
        ),
        (1, 2),
        "one DescribeListeners, one DescribeRules per listener"
    );
    let missing = f
        .aws
        .describe_routes(&format!("{}0", f.handles.load_balancer_arn))
        .await
        .unwrap_err();
    assert_eq!(missing.kind, AwsErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn a_route_is_read_by_its_listener_or_rule_arn() {
    let f = Fixture::new(|s| s.rules = rules());
    let listener = f
        .aws
        .describe_route(&f.handles.production_listener_arn)
        .await
        .unwrap();
    assert_eq!(listener.rule_priority, None);
    assert_eq!(listener.forward, Some(weighted(&[(f.a(), 1)])));
    let rule = f.aws.describe_route(&f.handles.rule_arns[0]).await.unwrap();
    assert_eq!(rule.arn, f.handles.rule_arns[0]);
    assert_eq!(rule.listener_arn, f.handles.production_listener_arn);
    assert_eq!(rule.port, Some(80));
    assert_eq!(rule.rule_priority.as_deref(), Some("20"));

    let missing_rule = f
        .aws
        .describe_route(&format!("{}0", f.handles.rule_arns[0]))
        .await
        .unwrap_err();
    assert_eq!(missing_rule.code.as_deref(), Some("RuleNotFound"));
    let missing_listener = f
        .aws
        .describe_route(&format!("{}0", f.handles.production_listener_arn))
        .await
        .unwrap_err();
    assert_eq!(missing_listener.kind, AwsErrorKind::NotFound);
    let not_a_route = f.aws.describe_route(f.a()).await.unwrap_err();
    assert_eq!(not_a_route.kind, AwsErrorKind::InvalidRequest);
}

#[tokio::test(start_paused = true)]
async fn forward_weights_are_rewritten_and_read_back() {
    let f = Fixture::new(|s| s.rules = rules());
    let production = f.handles.production_listener_arn.clone();
    f.aws
        .set_forward_weights(&production, &weighted(&[(f.a(), 90), (f.b(), 10)]), None)
        .await
        .unwrap();
    assert_eq!(
        f.weights(&production),
        vec![(f.a().to_string(), 90), (f.b().to_string(), 10)]
    );
    let route = f.aws.describe_route(&production).await.unwrap();
    assert_eq!(route.percent_to(f.b()), Some(10.0));

    let rule = f.handles.rule_arns[0].clone();
    f.aws
        .set_forward_weights(&rule, &weighted(&[(f.a(), 0), (f.b(), 999)]), None)
        .await
        .unwrap();
    assert_eq!(
        f.weights(&rule),
        vec![(f.a().to_string(), 0), (f.b().to_string(), 999)]
    );
    assert_eq!(
        f.weights(&f.handles.rule_arns[1]),
        vec![],
        "the other rule is untouched"
    );
    let counts = f.aws.call_counts();
    assert_eq!(counts.get("elbv2:ModifyListener"), Some(&1));
    assert_eq!(counts.get("elbv2:ModifyRule"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn forward_weights_are_refused_outside_what_elb_accepts() {
    let f = Fixture::new(|s| s.rules = rules());
    let production = f.handles.production_listener_arn.clone();
    let before = f.weights(&production);
    let six: Vec<(String, u32)> = (0..6).map(|i| (format!("{}{i}", f.a()), 1)).collect();
    let six: Vec<(&str, u32)> = six.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let cases: Vec<(&str, Vec<WeightedTargetGroup>, AwsErrorKind)> = vec![
        (
            "weight 1000",
            weighted(&[(f.a(), 1000)]),
            AwsErrorKind::InvalidRequest,
        ),
        (
            "an unknown target group",
            weighted(&[(f.a(), 1), (&format!("{}0", f.b()), 1)]),
            AwsErrorKind::NotFound,
        ),
        (
            "a target group twice",
            weighted(&[(f.a(), 1), (f.a(), 1)]),
            AwsErrorKind::InvalidRequest,
        ),
        (
            "six target groups",
            weighted(&six),
            AwsErrorKind::InvalidRequest,
        ),
        ("no target group", Vec::new(), AwsErrorKind::InvalidRequest),
    ];
    for (what, weights, kind) in cases {
        let error = f
            .aws
            .set_forward_weights(&production, &weights, None)
            .await
            .unwrap_err();
        assert_eq!(error.kind, kind, "{what}: {error}");
    }
    assert_eq!(f.weights(&production), before, "nothing changed");

    let fixed = f
        .aws
        .set_forward_weights(&f.handles.rule_arns[1], &weighted(&[(f.a(), 1)]), None)
        .await
        .unwrap_err();
    assert_eq!(
        fixed.kind,
        AwsErrorKind::InvalidRequest,
        "a rule that does not forward: {fixed}"
    );
    assert_eq!(f.aws.call_count("elbv2:ModifyRule"), 0, "refused before");
}

#[tokio::test(start_paused = true)]
async fn a_target_group_of_another_load_balancer_is_refused() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let web = aws.add_external_service(ExternalSetup::new("prod", "web"));
    let api = aws.add_external_service(ExternalSetup::new("prod", "api"));
    let error = aws
        .set_forward_weights(
            &web.production_listener_arn,
            &weighted(&[
                (&web.target_group_arns[0], 1),
                (&api.target_group_arns[1], 1),
            ]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(error.code.as_deref(), Some("TargetGroupAssociationLimit"));
}

#[tokio::test(start_paused = true)]
async fn target_groups_are_described_by_name_or_arn_with_their_load_balancers() {
    let f = Fixture::new(|s| s.test_port = None);
    let groups = f
        .aws
        .describe_target_groups(&["web-tg-a".to_string(), f.b().to_string()])
        .await
        .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].arn, f.a());
    assert_eq!(groups[0].name, "web-tg-a");
    assert_eq!(groups[0].port, Some(8080));
    assert_eq!(
        groups[0].load_balancer_arns,
        vec![f.handles.load_balancer_arn.clone()]
    );
    assert_eq!(groups[1].name, "web-tg-b");
    assert!(
        groups[1].load_balancer_arns.is_empty(),
        "no listener forwards to B"
    );
    assert!(groups[0].dimension().starts_with("targetgroup/web-tg-a/"));

    let missing = f
        .aws
        .describe_target_groups(&["web-tg-a".to_string(), "ghost".to_string()])
        .await
        .unwrap_err();
    assert_eq!(missing.kind, AwsErrorKind::NotFound);
    assert_eq!(missing.code.as_deref(), Some("TargetGroupNotFound"));

    let health = f.aws.describe_target_health(f.a()).await.unwrap();
    assert_eq!(health.len(), 2);
    assert!(health.iter().all(|t| t.port == Some(8080)));
    assert_eq!(
        f.aws
            .describe_target_health(&format!("{}0", f.a()))
            .await
            .unwrap_err()
            .kind,
        AwsErrorKind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn traffic_moved_by_hand_shows_in_the_route() {
    let f = Fixture::new(|_| {});
    f.aws.set_forward(
        &f.handles.production_listener_arn,
        &[(f.a(), 100), (f.b(), 0)],
    );
    assert_eq!(
        f.weights(&f.handles.production_listener_arn),
        vec![(f.a().to_string(), 100), (f.b().to_string(), 0)]
    );
    assert_eq!(f.aws.call_counts().get("elbv2:ModifyListener"), None);
}

// ---------------------------------------------------------------------------------------
// Faults

#[tokio::test(start_paused = true)]
async fn task_set_and_route_calls_go_through_faults_and_call_counts() {
    let f = Fixture::new(|_| {});
    f.aws
        .inject(FaultRule::times("ecs:CreateTaskSet", Fault::Throttle, 1));
    let throttled = f
        .aws
        .create_task_set(&f.request("t1", 100.0))
        .await
        .unwrap_err();
    assert_eq!(throttled.kind, AwsErrorKind::Throttling);
    assert_eq!(f.web().task_sets.len(), 1, "a throttled call has no effect");

    f.aws.inject(FaultRule::times(
        "elbv2:ModifyListener",
        Fault::LostResponse,
        1,
    ));
    let lost = f
        .aws
        .set_forward_weights(
            &f.handles.production_listener_arn,
            &weighted(&[(f.a(), 50), (f.b(), 50)]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(lost.kind, AwsErrorKind::Ambiguous);
    assert_eq!(
        f.weights(&f.handles.production_listener_arn),
        vec![(f.a().to_string(), 50), (f.b().to_string(), 50)],
        "a lost response took effect"
    );

    f.aws
        .inject(FaultRule::times("ecs:DeleteTaskSet", Fault::ServerError, 1));
    let created = f.create("t1", 0.0).await;
    let failed = f
        .aws
        .delete_task_set("prod", "web", &created.arn, false)
        .await
        .unwrap_err();
    assert_eq!(failed.kind, AwsErrorKind::Transient);
    assert!(f.task_set(&created.arn).is_some());

    f.aws.inject(FaultRule::times(
        "elbv2:DescribeTargetHealth",
        Fault::Latency(Duration::from_secs(3)),
        1,
    ));
    let started = tokio::time::Instant::now();
    f.aws.describe_target_health(f.a()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));

    let counts = f.aws.call_counts();
    for operation in [
        "ecs:CreateTaskSet",
        "ecs:DeleteTaskSet",
        "elbv2:DescribeListeners",
        "elbv2:ModifyListener",
        "elbv2:DescribeTargetHealth",
    ] {
        assert!(counts.contains_key(operation), "{operation}: {counts:?}");
    }
    assert_eq!(counts["ecs:CreateTaskSet"], 2, "the throttled call counts");
}

// ---------------------------------------------------------------------------------------
// What the deterministic simulation reads of the world

#[tokio::test(start_paused = true)]
async fn every_created_task_set_is_remembered_after_it_is_deleted() {
    let f = Fixture::new(|_| {});
    let first = f.create("t1", 0.0).await;
    assert_eq!(
        f.create("t1", 0.0).await.arn,
        first.arn,
        "the same client token: no second task set"
    );
    f.aws
        .delete_task_set("prod", "web", &first.arn, false)
        .await
        .unwrap();
    advance(DEREGISTRATION_DELAY).await;
    assert!(f.task_set(&first.arn).is_none(), "gone from the service");
    let created = f.aws.task_sets_created();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].arn, first.arn);
    assert_eq!(created[0].external_id.as_deref(), Some("web/t1"));
    assert_eq!(created[0].target_group_arn, f.b());
    assert_eq!(
        created[0].task_definition, f.handles.task_definition.arn,
        "what it was created with"
    );
    assert!(
        !created
            .iter()
            .any(|c| c.arn == f.handles.primary_task_set_arn),
        "the setup's task set was not created by CreateTaskSet"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_targets_take_the_timings_they_are_given() {
    let f = Fixture::new(|_| {});
    f.aws
        .set_target_timings(Duration::from_secs(20), Duration::from_secs(60));
    let created = f.create("t1", 100.0).await;
    advance(TASK_START + HEALTH_CHECK).await;
    assert!(
        f.health(f.b()).is_empty(),
        "the first task starts after 20 s, not {TASK_START:?}"
    );
    advance(Duration::from_secs(40) - TASK_START - HEALTH_CHECK).await;
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Initial, TargetHealthState::Initial]
    );
    advance(Duration::from_secs(60)).await;
    let steady = f.task_set(&created.arn).unwrap();
    assert_eq!(steady.stability, StabilityStatus::SteadyState);
    assert_eq!(
        f.health(f.b()),
        vec![TargetHealthState::Healthy, TargetHealthState::Healthy]
    );
}

#[tokio::test(start_paused = true)]
async fn the_routes_of_a_service_are_every_route_of_its_load_balancer() {
    let f = Fixture::new(|s| s.rules = rules());
    let described = f
        .aws
        .describe_routes(&f.handles.load_balancer_arn)
        .await
        .unwrap();
    let before = f.aws.call_counts();
    assert_eq!(f.aws.routes_of_service("prod", "web"), described);
    assert_eq!(f.aws.call_counts(), before, "not a call");
    assert!(f.aws.routes_of_service("prod", "other").is_empty());
}
