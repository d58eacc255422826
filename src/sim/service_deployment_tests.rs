//! Behaviour tests of the simulated ECS service deployments, under paused tokio time.

use std::time::Duration;

use super::*;
use crate::ports::{
    AlarmState, AwsErrorKind, DeploymentControllerType, Ecs, EcsDeploymentSettings,
    EcsDeploymentStrategy, HookAction, ServiceDeployment, ServiceDeploymentStatus,
    UpdateServiceRequest,
};

async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// From `UpdateService` until a rolling deployment of 2 tasks is done: PENDING, PRE_SCALE_UP,
/// two tasks, POST_SCALE_UP, CLEAN_UP.
fn rolling_duration() -> Duration {
    SERVICE_DEPLOYMENT_START
        + STAGE_DURATION
        + SERVICE_TASK_START_INTERVAL * 2
        + STAGE_DURATION
        + STAGE_DURATION
}

/// From `UpdateService` until a deployment of 2 tasks reaches `POST_SCALE_UP`'s start.
fn until_post_scale_up() -> Duration {
    SERVICE_DEPLOYMENT_START + STAGE_DURATION + SERVICE_TASK_START_INTERVAL * 2
}

struct Fixture {
    aws: SimAws,
    handles: EcsServiceHandles,
}

impl Fixture {
    fn new(strategy: EcsDeploymentStrategy, configure: impl FnOnce(&mut EcsServiceSetup)) -> Self {
        let aws = SimAws::new(Clock::fixed_epoch());
        let mut setup = EcsServiceSetup::new("prod", "web", strategy);
        configure(&mut setup);
        let handles = aws.add_ecs_service(setup);
        Self { aws, handles }
    }

    /// Registers a new revision with another image through the ECS port.
    async fn revision(&self, image: &str) -> String {
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
            .arn
    }

    fn request(&self, task_definition: &str) -> UpdateServiceRequest {
        UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: task_definition.to_string(),
            deployment: None,
        }
    }

    /// `UpdateService` with the candidate only; the deployment it started.
    async fn deploy(&self, task_definition: &str) -> String {
        self.aws
            .update_service(&self.request(task_definition))
            .await
            .expect("updated")
            .expect("a deployment started")
    }

    async fn describe(&self, arn: &str) -> ServiceDeployment {
        let mut found = self
            .aws
            .describe_service_deployments(&[arn.to_string()])
            .await
            .expect("described");
        assert_eq!(found.len(), 1, "{arn}");
        found.remove(0)
    }

    fn web(&self) -> crate::ports::Service {
        self.aws.service("prod", "web").expect("the service")
    }

    fn settings(&self, strategy: EcsDeploymentStrategy) -> EcsDeploymentSettings {
        EcsDeploymentSettings {
            strategy,
            bake_time_minutes: Some(1),
            canary: None,
            linear: None,
            pause_at: Vec::new(),
            load_balancer: Some(self.handles.load_balancer.clone()),
        }
    }

    /// Advances one second at a time until the deployment ends (at most `limit`), and
    /// returns the lifecycle stages it went through, each once, in order.
    async fn stages_until_done(&self, arn: &str, limit: Duration) -> Vec<String> {
        let mut stages: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let deployment = self.aws.service_deployment(arn).expect("known");
            if let Some(stage) = &deployment.lifecycle_stage
                && stages.last() != Some(stage)
            {
                stages.push(stage.clone());
            }
            if deployment.status.is_terminal() {
                return stages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not done after {limit:?}: {deployment:?}"
            );
            advance(Duration::from_secs(1)).await;
        }
    }
}

fn waiting_hook(deployment: &ServiceDeployment) -> &crate::ports::LifecycleHookDetail {
    deployment
        .hooks
        .iter()
        .find(|h| h.is_waiting_pause())
        .unwrap_or_else(|| panic!("no hook awaits action: {deployment:?}"))
}

// ----- the service --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_ecs_service_is_described_with_its_deployment_configuration_and_current_deployment() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
    });
    let described = f
        .aws
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("described");
    assert_eq!(described.len(), 1);
    let web = &described[0];
    assert_eq!(web.deployment_controller, DeploymentControllerType::Ecs);
    assert!(web.task_sets.is_empty());
    assert_eq!(
        web.task_definition.as_deref(),
        Some(f.handles.task_definition.arn.as_str())
    );
    assert_eq!(
        web.current_service_deployment.as_deref(),
        Some(f.handles.initial_deployment.as_str())
    );
    assert_eq!(
        web.load_balancers[0].target_group_arn,
        f.handles.target_group_arns[0]
    );
    let view = web.ecs_deployment.clone().expect("an ECS deployment view");
    assert_eq!(view.strategy.as_deref(), Some("BLUE_GREEN"));
    assert_eq!(view.bake_time_minutes, Some(5));
    assert_eq!(view.pause_hook_stages, ["POST_TEST_TRAFFIC_SHIFT"]);
    assert!(!view.circuit_breaker);
    assert!(view.load_balancers_have_advanced_configuration);

    let initial = f.describe(&f.handles.initial_deployment).await;
    assert_eq!(initial.status, ServiceDeploymentStatus::Successful);

    let rolling = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let view = rolling.web().ecs_deployment.expect("a view");
    assert_eq!(view.strategy.as_deref(), Some("ROLLING"));
    assert!(view.circuit_breaker);
    assert!(!view.load_balancers_have_advanced_configuration);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "ECS would refuse this service")]
async fn a_blue_green_service_without_the_advanced_load_balancer_configuration_cannot_be_set_up() {
    Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.advanced_load_balancer = false;
    });
}

// ----- UpdateService ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn update_service_with_a_new_task_definition_creates_a_revision_and_a_pending_deployment() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    assert!(
        arn.starts_with("arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/web/"),
        "{arn}"
    );
    assert_eq!(service_of_deployment_arn(&arn), Some("web"));
    let web = f.web();
    assert_eq!(
        web.current_service_deployment.as_deref(),
        Some(arn.as_str())
    );
    assert_eq!(web.task_definition.as_deref(), Some(v2.as_str()));
    assert_eq!(
        f.aws.running_task_definition("prod", "web"),
        Some(f.handles.task_definition.arn.clone()),
        "nothing runs the candidate yet"
    );

    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.status, ServiceDeploymentStatus::Pending);
    let revision = deployment.target_revision_arn.expect("a target revision");
    assert!(
        revision.contains(":service-revision/prod/web/"),
        "{revision}"
    );
    let revisions = f
        .aws
        .describe_service_revisions(std::slice::from_ref(&revision))
        .await
        .expect("described");
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].task_definition, v2);
    assert_eq!(
        f.aws.update_service_requests("prod", "web"),
        [f.request(&v2)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rolling_deployment_scales_up_and_succeeds_with_the_new_task_definition_running() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    let stages = f.stages_until_done(&arn, minutes(1)).await;
    assert_eq!(
        stages,
        ["PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "CLEAN_UP"]
    );
    let done = f.describe(&arn).await;
    assert_eq!(done.status, ServiceDeploymentStatus::Successful);
    assert_eq!(
        done.circuit_breaker_status.as_deref(),
        Some("MONITORING_COMPLETE")
    );
    assert_eq!(done.alarms_status.as_deref(), Some("DISABLED"));
    assert!(done.finished_at.is_some());
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v2));
}

#[tokio::test(start_paused = true)]
async fn a_rolling_deployment_takes_the_documented_time() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(rolling_duration() - Duration::from_secs(1)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::InProgress
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_that_changes_nothing_starts_no_deployment() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let first = f.deploy(&v2).await;
    let again = f
        .aws
        .update_service(&f.request(&v2))
        .await
        .expect("updated");
    assert_eq!(again.as_deref(), Some(first.as_str()), "the current one");
    assert_eq!(f.aws.service_deployments_of("prod", "web").len(), 2);
    assert_eq!(f.aws.call_counts()["ecs:UpdateService"], 2);
}

#[tokio::test(start_paused = true)]
async fn a_new_update_while_one_is_in_progress_stops_the_older_one() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let v3 = f.revision("web:3").await;
    let older = f.deploy(&v2).await;
    advance(SERVICE_DEPLOYMENT_START + STAGE_DURATION).await;
    assert_eq!(
        f.describe(&older).await.status,
        ServiceDeploymentStatus::InProgress
    );
    let newer = f.deploy(&v3).await;
    assert_ne!(older, newer);
    let stopped = f.describe(&older).await;
    assert_eq!(stopped.status, ServiceDeploymentStatus::Stopped);
    assert!(stopped.finished_at.is_some());
    assert!(
        stopped
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("newer service deployment")),
        "{stopped:?}"
    );
    advance(rolling_duration()).await;
    assert_eq!(
        f.describe(&newer).await.status,
        ServiceDeploymentStatus::Successful
    );
    assert_eq!(
        f.describe(&older).await.status,
        ServiceDeploymentStatus::Stopped
    );
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v3));
}

#[tokio::test(start_paused = true)]
async fn update_service_with_a_deployment_configuration_sets_it_and_keeps_circuit_breaker_and_alarms()
 {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |s| {
        s.alarms = vec!["web-5xx".into()];
    });
    let v2 = f.revision("web:2").await;
    let mut request = f.request(&v2);
    request.deployment = Some(EcsDeploymentSettings {
        pause_at: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
        ..f.settings(EcsDeploymentStrategy::BlueGreen)
    });
    let arn = f
        .aws
        .update_service(&request)
        .await
        .expect("updated")
        .expect("a deployment");
    let view = f.web().ecs_deployment.expect("a view");
    assert_eq!(view.strategy.as_deref(), Some("BLUE_GREEN"));
    assert_eq!(view.bake_time_minutes, Some(1));
    assert_eq!(view.pause_hook_stages, ["POST_TEST_TRAFFIC_SHIFT"]);
    assert!(view.circuit_breaker, "kept");
    assert!(view.load_balancers_have_advanced_configuration);
    let deployment = f.describe(&arn).await;
    assert_eq!(
        deployment.alarms_status.as_deref(),
        Some("MONITORING"),
        "kept"
    );

    // The same configuration again changes nothing.
    let again = f.aws.update_service(&request).await.expect("updated");
    assert_eq!(again.as_deref(), Some(arn.as_str()));
}

#[tokio::test(start_paused = true)]
async fn a_new_deployment_configuration_alone_starts_a_deployment() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |_| {});
    let mut request = f.request(&f.handles.task_definition.arn);
    request.deployment = Some(EcsDeploymentSettings {
        bake_time_minutes: Some(2),
        ..f.settings(EcsDeploymentStrategy::BlueGreen)
    });
    let arn = f
        .aws
        .update_service(&request)
        .await
        .expect("updated")
        .expect("a deployment");
    assert_ne!(arn, f.handles.initial_deployment);
}

#[tokio::test(start_paused = true)]
async fn blue_green_without_the_load_balancer_settings_is_refused() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let mut request = f.request(&v2);
    request.deployment = Some(EcsDeploymentSettings {
        load_balancer: None,
        ..f.settings(EcsDeploymentStrategy::BlueGreen)
    });
    let error = f.aws.update_service(&request).await.expect_err("refused");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
    assert_eq!(error.code.as_deref(), Some("InvalidParameterException"));
    assert!(error.message.contains("advancedConfiguration"), "{error}");
    assert_eq!(f.aws.service_deployments_of("prod", "web").len(), 1);
    assert_eq!(
        f.web().task_definition.as_deref(),
        Some(f.handles.task_definition.arn.as_str()),
        "a refused update changes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn deployment_settings_outside_what_ecs_accepts_are_refused() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |_| {});
    let v2 = f.revision("web:2").await;
    let canary = f.settings(EcsDeploymentStrategy::Canary);
    let linear = f.settings(EcsDeploymentStrategy::Linear);
    let cases = [
        (
            "canary percent below 0.1",
            EcsDeploymentSettings {
                canary: Some((0.05, 5)),
                ..canary.clone()
            },
        ),
        (
            "canary percent not in tenths",
            EcsDeploymentSettings {
                canary: Some((10.25, 5)),
                ..canary.clone()
            },
        ),
        (
            "linear step below 3",
            EcsDeploymentSettings {
                linear: Some((2.0, 1)),
                ..linear.clone()
            },
        ),
        (
            "bake above 1440 minutes",
            EcsDeploymentSettings {
                bake_time_minutes: Some(1441),
                ..f.settings(EcsDeploymentStrategy::BlueGreen)
            },
        ),
        (
            "a pause at TEST_TRAFFIC_SHIFT",
            EcsDeploymentSettings {
                pause_at: vec!["TEST_TRAFFIC_SHIFT".into()],
                ..f.settings(EcsDeploymentStrategy::BlueGreen)
            },
        ),
        (
            "a pause at PRODUCTION_TRAFFIC_SHIFT",
            EcsDeploymentSettings {
                pause_at: vec!["PRODUCTION_TRAFFIC_SHIFT".into()],
                ..f.settings(EcsDeploymentStrategy::BlueGreen)
            },
        ),
        (
            "canary settings with the linear strategy",
            EcsDeploymentSettings {
                canary: Some((10.0, 5)),
                ..linear.clone()
            },
        ),
    ];
    for (case, settings) in cases {
        let mut request = f.request(&v2);
        request.deployment = Some(settings);
        let error = f.aws.update_service(&request).await.expect_err(case);
        assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{case}: {error}");
    }
    assert_eq!(f.aws.service_deployments_of("prod", "web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn update_service_on_a_code_deploy_service_is_refused() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let handles = aws.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
    let error = aws
        .update_service(&UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: handles.task_definition.arn.clone(),
            deployment: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
    assert!(
        error
            .message
            .contains("Unable to update task definition on services with a CODE_DEPLOY"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_service_cluster_or_task_definition_is_refused() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let mut request = f.request(&f.handles.task_definition.arn);
    request.service = "ghost".into();
    let error = f.aws.update_service(&request).await.expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound);
    assert_eq!(error.code.as_deref(), Some("ServiceNotFoundException"));

    let mut request = f.request(&f.handles.task_definition.arn);
    request.cluster = "staging".into();
    let error = f.aws.update_service(&request).await.expect_err("missing");
    assert_eq!(error.code.as_deref(), Some("ClusterNotFoundException"));

    let error = f
        .aws
        .update_service(&f.request("web:99"))
        .await
        .expect_err("no such revision");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
    assert_eq!(error.code.as_deref(), Some("ClientException"));

    let error = f
        .aws
        .list_service_deployments("prod", "ghost", None)
        .await
        .expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound);
}

// ----- blue/green, canary, linear ----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_blue_green_deployment_goes_through_every_lifecycle_stage_in_order() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.bake_time_minutes = Some(1);
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    let stages = f.stages_until_done(&arn, minutes(5)).await;
    assert_eq!(
        stages,
        [
            "PRE_SCALE_UP",
            "SCALE_UP",
            "POST_SCALE_UP",
            "TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
            "CLEAN_UP"
        ]
    );
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v2));
}

#[tokio::test(start_paused = true)]
async fn production_traffic_moves_to_the_candidate_before_the_bake() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.bake_time_minutes = Some(10);
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.lifecycle_stage.as_deref(), Some("BAKE_TIME"));
    assert_eq!(f.aws.production_traffic_percent(&arn), Some(100.0));
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v2));
    assert_eq!(deployment.status, ServiceDeploymentStatus::InProgress);
}

/// The production traffic percent at every second until the deployment ends, each change
/// once.
async fn traffic_steps(f: &Fixture, arn: &str, limit: Duration) -> Vec<f64> {
    let mut steps = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !f.aws.service_deployment(arn).unwrap().status.is_terminal() {
        let percent = f.aws.production_traffic_percent(arn).unwrap();
        if steps.last() != Some(&percent) {
            steps.push(percent);
        }
        assert!(tokio::time::Instant::now() < deadline, "not done");
        advance(Duration::from_secs(1)).await;
    }
    steps
}

#[tokio::test(start_paused = true)]
async fn a_canary_deployment_shifts_the_canary_percent_bakes_then_shifts_the_rest() {
    let f = Fixture::new(EcsDeploymentStrategy::Canary, |s| {
        s.canary = Some((10.0, 3));
        s.bake_time_minutes = Some(0);
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    let start = tokio::time::Instant::now();
    assert_eq!(
        traffic_steps(&f, &arn, minutes(10)).await,
        [0.0, 10.0, 100.0]
    );
    assert!(
        start.elapsed() >= minutes(3),
        "the canary bakes 3 minutes: {:?}",
        start.elapsed()
    );
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
}

#[tokio::test(start_paused = true)]
async fn a_linear_deployment_shifts_in_equal_steps_with_a_bake_between_them() {
    let f = Fixture::new(EcsDeploymentStrategy::Linear, |s| {
        s.linear = Some((25.0, 2));
        s.bake_time_minutes = Some(0);
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    let start = tokio::time::Instant::now();
    assert_eq!(
        traffic_steps(&f, &arn, minutes(20)).await,
        [0.0, 25.0, 50.0, 75.0, 100.0]
    );
    let took = start.elapsed();
    assert!(
        took >= minutes(6) && took < minutes(7),
        "three bakes of 2 minutes between four steps, none after the last: {took:?}"
    );
}

// ----- PAUSE hooks ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_pause_hook_waits_with_a_fresh_hook_id_awaiting_action() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(30)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.status, ServiceDeploymentStatus::InProgress);
    assert_eq!(
        deployment.lifecycle_stage.as_deref(),
        Some("POST_TEST_TRAFFIC_SHIFT")
    );
    let hook = waiting_hook(&deployment);
    assert!(hook.hook_id.starts_with("ecs-pause-"), "{hook:?}");
    assert_eq!(hook.hook_id.len(), "ecs-pause-".len() + 43);
    assert_eq!(hook.target_type, "PAUSE");
    assert_eq!(hook.status, "AWAITING_ACTION");
    let created = deployment.created_at.unwrap();
    let expires = hook.expires_at.expect("an expiry");
    assert!(
        expires > created + jiff::SignedDuration::from_mins(1439)
            && expires < created + jiff::SignedDuration::from_mins(1441),
        "ECS's default timeout of 24 hours: {expires} after {created}"
    );
    assert_eq!(f.aws.production_traffic_percent(&arn), Some(0.0));

    // A second deployment waiting at the same stage has another id.
    let v3 = f.revision("web:3").await;
    let other = f.deploy(&v3).await;
    advance(minutes(1)).await;
    let other = f.describe(&other).await;
    assert_ne!(waiting_hook(&other).hook_id, hook.hook_id);
}

#[tokio::test(start_paused = true)]
async fn continuing_the_waiting_hook_goes_on_to_the_next_stage() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
        s.bake_time_minutes = Some(1);
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let hook_id = waiting_hook(&f.describe(&arn).await).hook_id.clone();
    f.aws
        .continue_service_deployment(&arn, &hook_id, HookAction::Continue)
        .await
        .expect("continued");
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.hooks[0].status, "SUCCEEDED");
    // The rest of POST_TEST_TRAFFIC_SHIFT, then PRE_PRODUCTION_TRAFFIC_SHIFT.
    advance(STAGE_DURATION * 2).await;
    assert_eq!(
        f.describe(&arn).await.lifecycle_stage.as_deref(),
        Some("PRODUCTION_TRAFFIC_SHIFT")
    );
    advance(minutes(2)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
    assert_eq!(f.aws.hook_answers(&arn), [(hook_id, HookAction::Continue)]);

    // Answering it again is refused: it no longer waits.
    let error = f
        .aws
        .continue_service_deployment(
            &arn,
            &f.describe(&arn).await.hooks[0].hook_id,
            HookAction::Continue,
        )
        .await
        .expect_err("answered already");
    assert_eq!(error.kind, AwsErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn rolling_back_the_waiting_hook_rolls_the_deployment_back_with_a_reason() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
    });
    let v1 = f.handles.task_definition.arn.clone();
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let hook_id = waiting_hook(&f.describe(&arn).await).hook_id.clone();
    f.aws
        .continue_service_deployment(&arn, &hook_id, HookAction::Rollback)
        .await
        .expect("rolled back");
    let rolling_back = f.describe(&arn).await;
    assert_eq!(
        rolling_back.status,
        ServiceDeploymentStatus::RollbackInProgress
    );
    assert_eq!(rolling_back.hooks[0].status, "FAILED");
    advance(SERVICE_ROLLBACK_DURATION).await;
    let done = f.describe(&arn).await;
    assert_eq!(done.status, ServiceDeploymentStatus::RollbackSuccessful);
    let reason = done.rollback_reason.expect("a rollback reason");
    assert!(
        reason.contains(&hook_id) && reason.contains("ROLLBACK"),
        "{reason}"
    );
    assert_eq!(f.web().task_definition.as_deref(), Some(v1.as_str()));
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v1));
}

#[tokio::test(start_paused = true)]
async fn a_stale_or_wrong_hook_id_is_refused_as_a_conflict() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_SCALE_UP".into(), "POST_TEST_TRAFFIC_SHIFT".into()];
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(until_post_scale_up()).await;
    let first = waiting_hook(&f.describe(&arn).await).hook_id.clone();
    f.aws
        .continue_service_deployment(&arn, &first, HookAction::Continue)
        .await
        .expect("continued");
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(
        deployment.lifecycle_stage.as_deref(),
        Some("POST_TEST_TRAFFIC_SHIFT")
    );
    let second = waiting_hook(&deployment).hook_id.clone();
    assert_ne!(first, second, "every pause has its own id");

    for wrong in [first.as_str(), "ecs-pause-not-a-hook-of-this-deployment"] {
        let error = f
            .aws
            .continue_service_deployment(&arn, wrong, HookAction::Continue)
            .await
            .expect_err("refused");
        assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
        assert_eq!(error.code.as_deref(), Some("ClientException"));
    }
    assert_eq!(
        waiting_hook(&f.describe(&arn).await).hook_id,
        second,
        "still waiting on the right hook"
    );
    let error = f
        .aws
        .continue_service_deployment(
            "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/web/nope",
            &second,
            HookAction::Continue,
        )
        .await
        .expect_err("no such deployment");
    assert_eq!(error.kind, AwsErrorKind::NotFound);
    assert_eq!(
        error.code.as_deref(),
        Some("ServiceDeploymentNotFoundException")
    );
}

#[tokio::test(start_paused = true)]
async fn the_hook_of_a_superseded_deployment_is_refused() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_SCALE_UP".into()];
    });
    let v2 = f.revision("web:2").await;
    let older = f.deploy(&v2).await;
    advance(until_post_scale_up()).await;
    let hook_id = waiting_hook(&f.describe(&older).await).hook_id.clone();
    let v3 = f.revision("web:3").await;
    f.deploy(&v3).await;
    let error = f
        .aws
        .continue_service_deployment(&older, &hook_id, HookAction::Continue)
        .await
        .expect_err("the deployment was stopped");
    assert_eq!(error.kind, AwsErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_hook_rolls_back_when_it_expires() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
        s.hook_timeout_minutes = 30;
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let expires_at = waiting_hook(&f.describe(&arn).await)
        .expires_at
        .expect("an expiry");
    let until_expiry = Duration::try_from(expires_at.duration_since(f.aws.clock().now())).unwrap();
    assert!(
        until_expiry > minutes(28),
        "30 minutes after it began waiting"
    );
    advance(until_expiry - Duration::from_secs(1)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::InProgress
    );
    advance(Duration::from_secs(1) + SERVICE_ROLLBACK_DURATION).await;
    let done = f.describe(&arn).await;
    assert_eq!(done.status, ServiceDeploymentStatus::RollbackSuccessful);
    assert_eq!(done.hooks[0].status, "TIMED_OUT");
    assert!(
        done.rollback_reason
            .as_deref()
            .is_some_and(|r| r.contains("timed out")),
        "{done:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_before_production_traffic_waits_before_every_canary_step() {
    let f = Fixture::new(EcsDeploymentStrategy::Canary, |s| {
        s.canary = Some((10.0, 1));
        s.bake_time_minutes = Some(0);
        s.pause_at = vec!["PRE_PRODUCTION_TRAFFIC_SHIFT".into()];
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    let mut answered = Vec::new();
    for percent_before in [0.0, 10.0] {
        advance(minutes(2)).await;
        let deployment = f.describe(&arn).await;
        assert_eq!(
            deployment.lifecycle_stage.as_deref(),
            Some("PRODUCTION_TRAFFIC_SHIFT")
        );
        assert_eq!(f.aws.production_traffic_percent(&arn), Some(percent_before));
        let hook_id = waiting_hook(&deployment).hook_id.clone();
        assert!(!answered.contains(&hook_id), "a fresh hook per step");
        f.aws
            .continue_service_deployment(&arn, &hook_id, HookAction::Continue)
            .await
            .expect("continued");
        answered.push(hook_id);
    }
    advance(minutes(1)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
}

#[tokio::test(start_paused = true)]
async fn a_rolling_deployment_pauses_at_its_own_stages() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |s| {
        s.pause_at = vec!["POST_SCALE_UP".into()];
    });
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.lifecycle_stage.as_deref(), Some("POST_SCALE_UP"));
    waiting_hook(&deployment);
}

// ----- stops ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stopping_a_finished_deployment_is_refused_as_a_conflict() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let error = f
        .aws
        .stop_service_deployment(&f.handles.initial_deployment)
        .await
        .expect_err("finished");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
    assert_eq!(error.code.as_deref(), Some("ConflictException"));
    assert!(f.aws.service_deployment_stop_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stopping_a_deployment_in_progress_rolls_it_back() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
    });
    let v1 = f.handles.task_definition.arn.clone();
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    f.aws.stop_service_deployment(&arn).await.expect("stopped");
    let stopping = f.describe(&arn).await;
    assert_eq!(stopping.status, ServiceDeploymentStatus::RollbackRequested);
    assert_eq!(stopping.hooks[0].status, "FAILED", "the pause is over");
    let error = f
        .aws
        .stop_service_deployment(&arn)
        .await
        .expect_err("already stopping");
    assert_eq!(error.kind, AwsErrorKind::Conflict);
    advance(SERVICE_STOP_DELAY + SERVICE_ROLLBACK_DURATION).await;
    let done = f.describe(&arn).await;
    assert_eq!(done.status, ServiceDeploymentStatus::RollbackSuccessful);
    assert!(
        done.rollback_reason
            .as_deref()
            .is_some_and(|r| r.contains("StopServiceDeployment"))
    );
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v1));
    assert_eq!(f.aws.service_deployment_stop_calls()[&arn], 1);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_returns_to_the_last_successful_revision_not_a_superseded_one() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_SCALE_UP".into()];
    });
    let v1 = f.handles.task_definition.arn.clone();
    let v2 = f.revision("web:2").await;
    let v3 = f.revision("web:3").await;
    f.deploy(&v2).await;
    advance(Duration::from_secs(2)).await;
    let newer = f.deploy(&v3).await;
    advance(minutes(1)).await;
    f.aws
        .stop_service_deployment(&newer)
        .await
        .expect("stopped");
    advance(minutes(1)).await;
    assert_eq!(
        f.describe(&newer).await.status,
        ServiceDeploymentStatus::RollbackSuccessful
    );
    assert_eq!(f.web().task_definition.as_deref(), Some(v1.as_str()));
}

// ----- failure detection ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_rolls_back_a_deployment_whose_tasks_never_become_healthy() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v1 = f.handles.task_definition.arn.clone();
    let v2 = f.revision("web:2").await;
    f.aws.fail_tasks_of_task_definition(&v2);
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(
        deployment.status,
        ServiceDeploymentStatus::RollbackSuccessful
    );
    assert_eq!(
        deployment.circuit_breaker_status.as_deref(),
        Some("TRIGGERED")
    );
    assert_eq!(
        deployment.rollback_reason.as_deref(),
        Some(CIRCUIT_BREAKER_REASON)
    );
    assert_eq!(f.web().task_definition.as_deref(), Some(v1.as_str()));
    assert_eq!(f.aws.running_task_definition("prod", "web"), Some(v1));
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_trips_after_as_many_failures_as_its_threshold() {
    // Desired 2: the threshold is its minimum, 3 failed tasks.
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    f.aws.fail_install_for_image("web:bad");
    let bad = f.revision("web:bad").await;
    let arn = f.deploy(&bad).await;
    let before_trip = SERVICE_DEPLOYMENT_START + STAGE_DURATION + SERVICE_TASK_START_INTERVAL * 3;
    advance(before_trip - Duration::from_secs(1)).await;
    assert_eq!(
        f.describe(&arn).await.circuit_breaker_status.as_deref(),
        Some("MONITORING")
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::RollbackInProgress
    );
}

#[tokio::test(start_paused = true)]
async fn a_circuit_breaker_without_rollback_stops_the_deployment() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |s| {
        s.circuit_breaker = Some(CircuitBreaker { rollback: false });
    });
    let v2 = f.revision("web:2").await;
    f.aws.fail_tasks_of_task_definition(&v2);
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.status, ServiceDeploymentStatus::Stopped);
    assert_eq!(
        deployment.status_reason.as_deref(),
        Some(CIRCUIT_BREAKER_REASON)
    );
    assert_eq!(deployment.rollback_reason, None);
}

#[tokio::test(start_paused = true)]
async fn without_a_circuit_breaker_unhealthy_tasks_keep_the_deployment_in_scale_up() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |s| {
        s.circuit_breaker = None;
    });
    let v2 = f.revision("web:2").await;
    f.aws.fail_tasks_of_task_definition(&v2);
    let arn = f.deploy(&v2).await;
    advance(minutes(24 * 60)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(deployment.status, ServiceDeploymentStatus::InProgress);
    assert_eq!(deployment.lifecycle_stage.as_deref(), Some("SCALE_UP"));
    assert_eq!(
        deployment.circuit_breaker_status.as_deref(),
        Some("DISABLED")
    );
}

#[tokio::test(start_paused = true)]
async fn a_deployment_alarm_in_alarm_rolls_back_with_its_name() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.alarms = vec!["web-5xx".into(), "web-latency".into()];
        s.bake_time_minutes = Some(10);
    });
    f.aws.set_alarm("web-5xx", AlarmState::Ok);
    f.aws.set_alarm("web-latency", AlarmState::Ok);
    let v2 = f.revision("web:2").await;
    let arn = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let baking = f.describe(&arn).await;
    assert_eq!(baking.lifecycle_stage.as_deref(), Some("BAKE_TIME"));
    assert_eq!(baking.alarms_status.as_deref(), Some("MONITORING"));

    f.aws.set_alarm("web-latency", AlarmState::Alarm);
    let alarmed_at = f.aws.clock().now();
    advance(minutes(1)).await;
    let deployment = f.describe(&arn).await;
    assert_eq!(
        deployment.status,
        ServiceDeploymentStatus::RollbackSuccessful
    );
    assert_eq!(deployment.alarms_status.as_deref(), Some("TRIGGERED"));
    assert_eq!(deployment.triggered_alarms, ["web-latency"]);
    assert!(
        deployment
            .rollback_reason
            .as_deref()
            .is_some_and(|r| r.contains("web-latency")),
        "{deployment:?}"
    );
    assert_eq!(
        deployment.finished_at,
        Some(alarmed_at + jiff::SignedDuration::try_from(SERVICE_ROLLBACK_DURATION).unwrap()),
        "rolled back from the moment the alarm fired, not from the next look"
    );
}

// ----- reads, counts and faults -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn service_deployments_are_listed_newest_first_and_filtered_by_creation_time() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let v3 = f.revision("web:3").await;
    let second = f.deploy(&v2).await;
    advance(minutes(1)).await;
    let since = f.aws.clock().now();
    let third = f.deploy(&v3).await;
    let all = f
        .aws
        .list_service_deployments("prod", "web", None)
        .await
        .expect("listed");
    assert_eq!(
        all,
        [third.clone(), second, f.handles.initial_deployment.clone()]
    );
    let recent = f
        .aws
        .list_service_deployments("prod", "web", Some(since))
        .await
        .expect("listed");
    assert_eq!(recent, [third]);
}

#[tokio::test(start_paused = true)]
async fn describing_more_than_twenty_is_refused_and_unknown_arns_are_left_out() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let too_many: Vec<String> = (0..=DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT)
        .map(|i| format!("arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/web/{i}"))
        .collect();
    for error in [
        f.aws
            .describe_service_deployments(&too_many)
            .await
            .expect_err("21 ARNs"),
        f.aws
            .describe_service_revisions(&too_many)
            .await
            .expect_err("21 ARNs"),
    ] {
        assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
    }
    let found = f
        .aws
        .describe_service_deployments(&[f.handles.initial_deployment.clone(), too_many[0].clone()])
        .await
        .expect("described");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].arn, f.handles.initial_deployment);
    let revisions = f
        .aws
        .describe_service_revisions(&[too_many[0].clone()])
        .await
        .expect("described");
    assert!(revisions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_foreign_update_starts_a_deployment_without_counting_a_call() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    let arn = f
        .aws
        .update_service_as_someone_else(&f.request(&v2))
        .expect("updated")
        .expect("a deployment");
    assert_eq!(
        f.web().current_service_deployment.as_deref(),
        Some(arn.as_str())
    );
    assert_eq!(f.aws.call_counts().get("ecs:UpdateService"), None);
    assert!(f.aws.update_service_requests("prod", "web").is_empty());
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Pending
    );
    assert_eq!(
        f.aws.foreign_service_deployments(),
        vec![arn.clone()],
        "known as someone else's"
    );
    let v3 = f.revision("web:3").await;
    let ours = f.deploy(&v3).await;
    assert_eq!(
        f.aws.foreign_service_deployments(),
        vec![arn],
        "the port's own deployment is not foreign: {ours}"
    );
}

#[tokio::test(start_paused = true)]
async fn someone_else_continues_the_hook_their_deployment_waits_at() {
    let f = Fixture::new(EcsDeploymentStrategy::BlueGreen, |s| {
        s.pause_at = vec!["POST_TEST_TRAFFIC_SHIFT".into()];
        s.bake_time_minutes = Some(0);
    });
    let v2 = f.revision("web:2").await;
    let arn = f
        .aws
        .update_service_as_someone_else(&f.request(&v2))
        .unwrap()
        .unwrap();
    assert!(!f.aws.continue_as_someone_else(&arn), "no hook waits yet");
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    let waiting = f.describe(&arn).await;
    assert_eq!(
        waiting.lifecycle_stage.as_deref(),
        Some("POST_TEST_TRAFFIC_SHIFT")
    );
    assert!(f.aws.continue_as_someone_else(&arn));
    assert!(f.aws.hook_answers(&arn).is_empty(), "not the port's answer");
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::Successful
    );
}

#[tokio::test(start_paused = true)]
async fn service_deployment_calls_are_counted_and_injected_faults_apply() {
    let f = Fixture::new(EcsDeploymentStrategy::Rolling, |_| {});
    let v2 = f.revision("web:2").await;
    f.aws
        .inject(FaultRule::times("ecs:UpdateService", Fault::Throttle, 1));
    let error = f
        .aws
        .update_service(&f.request(&v2))
        .await
        .expect_err("throttled");
    assert_eq!(error.kind, AwsErrorKind::Throttling);
    assert_eq!(
        f.aws.service_deployments_of("prod", "web").len(),
        1,
        "a throttled call takes no effect"
    );
    let arn = f.deploy(&v2).await;
    f.aws.inject(FaultRule::times(
        "ecs:StopServiceDeployment",
        Fault::LostResponse,
        1,
    ));
    let lost = f
        .aws
        .stop_service_deployment(&arn)
        .await
        .expect_err("reply lost");
    assert_eq!(lost.kind, AwsErrorKind::Ambiguous);
    assert_eq!(
        f.describe(&arn).await.status,
        ServiceDeploymentStatus::RollbackRequested,
        "a lost reply took effect"
    );
    f.aws
        .list_service_deployments("prod", "web", None)
        .await
        .unwrap();
    f.aws.describe_service_revisions(&[]).await.unwrap();
    let counts = f.aws.call_counts();
    for (operation, expected) in [
        ("ecs:UpdateService", 2),
        ("ecs:StopServiceDeployment", 1),
        ("ecs:ListServiceDeployments", 1),
        ("ecs:DescribeServiceDeployments", 1),
        ("ecs:DescribeServiceRevisions", 1),
    ] {
        assert_eq!(counts.get(operation), Some(&expected), "{operation}");
    }
}
