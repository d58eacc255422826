//! The whole controller loop against the simulated AWS, in paused time: the calls it makes
//! and the invariants it keeps.

use std::time::Duration;

use switchyard::model::{ConditionType, Outcome, Phase, RequestKind};
use switchyard::ports::{AlarmState, CreateDeploymentRequest, ReadyAction};
use switchyard::sim::{Fault, FaultRule};

use crate::harness::{Harness, REGISTRY, ReleaseOptions, minutes};

#[tokio::test(start_paused = true)]
async fn converges_to_healthy_with_exactly_one_deployment() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let original = h.live_task_definition("web");
    h.apply("web", &ReleaseOptions::default()).await;

    h.run_for(minutes(10)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(status.observed_generation, 1);
    let live = h.live_task_definition("web");
    assert_ne!(live, original);
    assert_eq!(status.live_task_definition.as_deref(), Some(live.as_str()));
    assert_eq!(
        status.desired_task_definition.as_deref(),
        Some(live.as_str())
    );
    assert_eq!(h.image_of(&live, "web"), format!("{REGISTRY}/web:2.0.0"));
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 1);
    assert_eq!(status.history[0].outcome, Outcome::Succeeded);
    assert_eq!(
        status.condition(ConditionType::Ready).map(|c| c.status),
        Some(switchyard::model::ConditionStatus::True)
    );
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_canary_walks_through_ten_percent_before_all_traffic() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent5Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;

    h.run_for(minutes(3)).await;
    let mid = h.status("web").await;
    assert_eq!(mid.phase, Phase::Progressing, "{}", mid.message);
    assert_eq!(mid.traffic_weights.map(|t| t.candidate.round()), Some(10.0));
    assert_eq!(mid.stage().as_deref(), Some("AllowTraffic"));

    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_alarm_mid_shift_rolls_back_and_leaves_the_previous_version_live() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent5Minutes".into();
    });
    h.aws.set_alarm("web-5xx", AlarmState::Ok);
    let original = h.live_task_definition("web");
    h.apply(
        "web",
        &ReleaseOptions {
            alarms: vec!["web-5xx".into()],
            ..ReleaseOptions::default()
        },
    )
    .await;

    h.run_for(minutes(2)).await;
    assert_eq!(h.status("web").await.phase, Phase::Progressing);
    h.aws.set_alarm("web-5xx", AlarmState::Alarm);
    h.run_for(minutes(5)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(
        status.message.contains("alarm web-5xx is in ALARM"),
        "{}",
        status.message
    );
    assert_eq!(h.live_task_definition("web"), original);
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    assert_eq!(status.history[0].outcome, Outcome::RolledBack);

    // It stays rolled back: no second attempt without a retry request.
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::RolledBack);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_request_deploys_the_rolled_back_generation_again() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.aws.fail_install_for_image("web:2.0.0");
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(
        status.message.contains("ECS_UPDATE_ERROR"),
        "{}",
        status.message
    );

    h.aws.clear_failing_images();
    h.request("web", RequestKind::Retry).await;
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(status.rollout.as_ref().map(|r| r.serial), Some(2));
    assert_eq!(h.deployments_of("web").len(), 2);
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn manual_promotion_waits_for_a_promote_request() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 };
    });
    h.apply(
        "web",
        &ReleaseOptions {
            manual: true,
            ..ReleaseOptions::default()
        },
    )
    .await;

    h.run_for(minutes(10)).await;
    let waiting = h.status("web").await;
    assert_eq!(
        waiting.phase,
        Phase::AwaitingPromotion,
        "{}",
        waiting.message
    );
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 0);

    h.request("web", RequestKind::Promote).await;
    h.run_for(minutes(5)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == Outcome::Promoted)
    );
}

#[tokio::test(start_paused = true)]
async fn automatic_promotion_continues_a_deployment_that_waits_in_ready() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 };
    });
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_newer_generation_mid_deployment_stops_the_older_and_deploys_the_newest() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(2)).await;
    assert_eq!(h.status("web").await.phase, Phase::Progressing);

    // Two more versions in quick succession: only the newest is deployed.
    h.apply(
        "web",
        &ReleaseOptions {
            image_tag: "3.0.0".into(),
            ..ReleaseOptions::default()
        },
    )
    .await;
    h.apply(
        "web",
        &ReleaseOptions {
            image_tag: "4.0.0".into(),
            ..ReleaseOptions::default()
        },
    )
    .await;
    h.run_for(minutes(30)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(status.observed_generation, 3);
    let live = h.live_task_definition("web");
    assert_eq!(h.image_of(&live, "web"), format!("{REGISTRY}/web:4.0.0"));
    let rollouts: Vec<u32> = h
        .deployments_of("web")
        .iter()
        .filter_map(|d| {
            switchyard::reconcile::codedeploy::parse_deployment_description(
                d.description.as_deref()?,
            )
        })
        .map(|(_, rollout)| rollout)
        .collect();
    assert_eq!(
        rollouts,
        vec![1, 2],
        "two rollouts: generation 1's and generation 3's"
    );
    let images: Vec<String> = h
        .aws
        .task_definitions("web")
        .iter()
        .filter_map(|t| t.container("web").map(|c| c.image.clone()))
        .collect();
    assert!(
        !images.contains(&format!("{REGISTRY}/web:3.0.0")),
        "generation 2 is never registered nor deployed: {images:?}"
    );
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == Outcome::Superseded && e.generation == 1)
    );
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_adopts_the_deployment_in_flight() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;
    for _ in 0..6 {
        // Six controller lifetimes of two minutes each, like a crash-looping pod.
        h.run_for(minutes(2)).await;
    }
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_lost_create_deployment_reply_is_adopted_not_repeated() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    // The deployment is created, but the reply never arrives.
    h.aws.inject(FaultRule::times(
        "codedeploy:CreateDeployment",
        Fault::LostResponse,
        1,
    ));
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(10)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.deployments_of("web").len(), 1);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_and_server_errors_slow_the_controller_down_but_never_duplicate() {
    let h = Harness::new();
    for name in ["web", "api", "worker"] {
        h.add_service(name, |s| {
            s.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
        });
        h.apply(name, &ReleaseOptions::default()).await;
    }
    h.aws
        .inject(FaultRule::always("*", Fault::Throttle).with_probability(0.3));
    h.aws
        .inject(FaultRule::always("*", Fault::ServerError).with_probability(0.1));
    let faulty = h.run_for(minutes(20)).await;
    assert!(
        faulty.failed_passes > 10,
        "faults were injected: {faulty:?}"
    );
    h.aws.clear_faults();
    h.run_for(minutes(20)).await;

    for name in ["web", "api", "worker"] {
        let status = h.status(name).await;
        assert_eq!(status.phase, Phase::Healthy, "{name}: {}", status.message);
        assert_eq!(h.deployments_of(name).len(), 1, "{name}");
    }
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_deployment_switchyard_did_not_start_is_waited_for_not_fought() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
    });
    // Someone deploys from the console first.
    let live = h.live_task_definition("web");
    let ports = h.aws.ports();
    let console_td = ports.ecs.describe_task_definition(&live).await.unwrap();
    let appspec = format!(
        r#"{{"version":0.0,"Resources":[{{"TargetService":{{"Type":"AWS::ECS::Service","Properties":{{"TaskDefinition":"{}","LoadBalancerInfo":{{"ContainerName":"web","ContainerPort":8080}}}}}}}}]}}"#,
        console_td.arn
    );
    let foreign = ports
        .codedeploy
        .create_deployment(&CreateDeploymentRequest {
            application: "web".into(),
            deployment_group: "web-prod".into(),
            appspec_content: appspec,
            description: "hotfix from the console".into(),
            deployment_config: None,
        })
        .await
        .unwrap();

    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(3)).await;
    let waiting = h.status("web").await;
    assert_eq!(waiting.phase, Phase::Pending, "{}", waiting.message);
    assert!(waiting.message.contains(&foreign), "{}", waiting.message);
    assert_eq!(
        h.calls("codedeploy:CreateDeployment"),
        1,
        "only the console's"
    );
    assert_eq!(h.calls("codedeploy:StopDeployment"), 0, "never fights it");

    h.run_for(minutes(30)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.deployments_of("web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_stored_document_is_invalid_and_reaches_no_aws_api() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let mut spec: serde_json::Value = serde_json::to_value(
        &switchyard::model::parse::parse_documents(&crate::harness::release_yaml(
            "web",
            &ReleaseOptions::default(),
        ))
        .unwrap()[0]
            .spec,
    )
    .unwrap();
    spec["taskDefinition"]["containers"]["web"]["image"] = serde_json::json!("");
    h.put_raw_spec("web", spec).await;
    let before = h.aws.call_counts();

    h.run_for(minutes(5)).await;

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Invalid);
    assert!(
        status
            .message
            .starts_with("spec.taskDefinition.containers.web.image"),
        "{}",
        status.message
    );
    assert_eq!(
        h.aws.call_counts(),
        before,
        "no AWS call for an invalid document"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_release_is_not_deployed_until_resumed() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply(
        "web",
        &ReleaseOptions {
            paused: true,
            ..ReleaseOptions::default()
        },
    )
    .await;
    h.run_for(minutes(5)).await;
    assert_eq!(h.status("web").await.phase, Phase::Paused);
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 0);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 0);

    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_release_costs_one_describe_services_per_resync_and_no_status_writes() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);

    let before_aws = h.aws.call_counts();
    let before_store = h.store.call_counts();
    h.run_for(minutes(10)).await;
    let after_aws = h.aws.call_counts();
    let after_store = h.store.call_counts();

    let delta = |after: &std::collections::BTreeMap<String, u64>,
                 before: &std::collections::BTreeMap<String, u64>,
                 op: &str| {
        after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0)
    };
    let describes = delta(&after_aws, &before_aws, "ecs:DescribeServices");
    assert!(
        (10..=12).contains(&describes),
        "one per 60 s resync, got {describes}"
    );
    let other: u64 = after_aws
        .iter()
        .filter(|(op, _)| op.as_str() != "ecs:DescribeServices")
        .map(|(op, n)| n - before_aws.get(op).copied().unwrap_or(0))
        .sum();
    assert_eq!(other, 0, "no CodeDeploy, ELB or CloudWatch calls at rest");
    assert_eq!(
        delta(&after_store, &before_store, "dynamodb:UpdateItem"),
        0,
        "status is written only when it changes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_bake_is_followed_without_describes_and_looked_at_every_five_minutes() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;
    // One controller throughout (`run_for` would restart it, with empty caches).
    let controller = tokio::spawn(switchyard::controller::run(
        h.context(),
        tokio::time::sleep(minutes(28)),
    ));
    tokio::time::sleep(minutes(3)).await;
    let baking = h.status("web").await;
    assert_eq!(baking.phase, Phase::Progressing, "{}", baking.message);
    assert_eq!(baking.stage().as_deref(), Some("AllowTraffic"));

    // Ten minutes into the 15-minute bake: ten resyncs, nothing to see until the step.
    let before = h.aws.call_counts();
    tokio::time::sleep(minutes(10)).await;
    let after = h.aws.call_counts();
    let delta =
        |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    assert_eq!(
        delta("ecs:DescribeServices"),
        0,
        "a followed deployment needs no DescribeServices, and the resync leaves it alone"
    );
    assert_eq!(
        delta("codedeploy:GetDeployment"),
        2,
        "one look every 5 minutes during the bake"
    );

    controller.await.expect("the controller runs to its end");
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn drift_is_reported_and_converged_only_when_asked() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.add_service("api", |_| {});
    h.apply("web", &ReleaseOptions::default()).await;
    h.apply(
        "api",
        &ReleaseOptions {
            converge_drift: true,
            ..ReleaseOptions::default()
        },
    )
    .await;
    h.run_for(minutes(10)).await;

    // Someone rolls both back by hand to revision 1 from the console.
    for name in ["web", "api"] {
        let ports = h.aws.ports();
        let first = ports
            .ecs
            .describe_task_definition(&format!("{name}:1"))
            .await
            .unwrap();
        let appspec = format!(
            r#"{{"version":0.0,"Resources":[{{"TargetService":{{"Type":"AWS::ECS::Service","Properties":{{"TaskDefinition":"{}","LoadBalancerInfo":{{"ContainerName":"{name}","ContainerPort":8080}}}}}}}}]}}"#,
            first.arn
        );
        ports
            .codedeploy
            .create_deployment(&CreateDeploymentRequest {
                application: name.into(),
                deployment_group: format!("{name}-prod"),
                appspec_content: appspec,
                description: "emergency rollback".into(),
                deployment_config: None,
            })
            .await
            .unwrap();
    }
    h.run_for(minutes(15)).await;

    let web = h.status("web").await;
    assert_eq!(web.phase, Phase::Failed, "{}", web.message);
    assert!(web.message.contains("drift"), "{}", web.message);
    assert_eq!(h.deployments_of("web").len(), 1, "report only");

    let api = h.status("api").await;
    assert_eq!(api.phase, Phase::Healthy, "{}", api.message);
    assert_eq!(
        h.deployments_of("api").len(),
        2,
        "converged with a second attempt"
    );
    assert_eq!(api.rollout.as_ref().map(|r| r.serial), Some(2));
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_within_its_limit_even_while_aws_hangs() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(1)).await;
    assert_eq!(h.status("web").await.phase, Phase::Progressing);

    let limit = Duration::from_secs(5) + h.config.drain_timeout + Duration::from_millis(100);

    // Following the deployment now hangs: the next run's pass is stuck in it at shutdown.
    h.aws.inject(FaultRule::always(
        "codedeploy:GetDeployment",
        Fault::Latency(Duration::from_secs(3600)),
    ));
    let started = tokio::time::Instant::now();
    let summary = h.run_for(Duration::from_secs(5)).await;
    assert!(started.elapsed() <= limit, "took {:?}", started.elapsed());
    assert!(
        summary.cancelled_passes >= 1,
        "the stuck pass was cancelled: {summary:?}"
    );

    // Every AWS call hangs, the resync's included: shutdown still ends within the limit.
    h.aws.inject(FaultRule::always(
        "*",
        Fault::Latency(Duration::from_secs(3600)),
    ));
    let started = tokio::time::Instant::now();
    h.run_for(Duration::from_secs(5)).await;
    assert!(started.elapsed() <= limit, "took {:?}", started.elapsed());
}

/// CodeDeploy of the simulation, except that once a StopDeployment succeeds, the store fails
/// the next `writes` status writes: the write recording the stop among them.
struct StopThenStoreFails {
    aws: switchyard::sim::SimAws,
    store: switchyard::sim::SimStore,
    writes: u32,
}

#[async_trait::async_trait]
impl switchyard::ports::CodeDeploy for StopThenStoreFails {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<switchyard::ports::DeploymentGroup, switchyard::ports::AwsError> {
        self.aws.get_deployment_group(application, group).await
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: switchyard::ports::DeploymentFilter,
    ) -> Result<Vec<String>, switchyard::ports::AwsError> {
        self.aws.list_deployments(application, group, filter).await
    }

    async fn get_deployment(
        &self,
        deployment_id: &str,
    ) -> Result<switchyard::ports::Deployment, switchyard::ports::AwsError> {
        self.aws.get_deployment(deployment_id).await
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<switchyard::ports::DeploymentTarget, switchyard::ports::AwsError> {
        self.aws
            .get_deployment_target(deployment_id, target_id)
            .await
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, switchyard::ports::AwsError> {
        self.aws.create_deployment(request).await
    }

    async fn continue_deployment(
        &self,
        deployment_id: &str,
    ) -> Result<(), switchyard::ports::AwsError> {
        self.aws.continue_deployment(deployment_id).await
    }

    async fn stop_deployment(
        &self,
        deployment_id: &str,
        rollback: bool,
    ) -> Result<(), switchyard::ports::AwsError> {
        let result = self.aws.stop_deployment(deployment_id, rollback).await;
        if result.is_ok() {
            self.store.inject(FaultRule::times(
                "dynamodb:UpdateItem",
                Fault::ServerError,
                self.writes,
            ));
        }
        result
    }
}

struct WithCodeDeploy(switchyard::sim::SimAws, std::sync::Arc<StopThenStoreFails>);

impl switchyard::ports::AwsProvider for WithCodeDeploy {
    fn home(&self) -> switchyard::model::Home {
        self.0.home()
    }

    fn ports_for(
        &self,
        region: &str,
        session: Option<&switchyard::ports::RoleSession>,
    ) -> switchyard::ports::AwsPorts {
        switchyard::ports::AwsPorts {
            codedeploy: self.1.clone(),
            ..self.0.ports_for(region, session)
        }
    }

    fn sts(&self) -> std::sync::Arc<dyn switchyard::ports::Sts> {
        self.0.sts()
    }
}

/// Found by the simulation (seed 172 of 200, 3 replicas): a StopDeployment succeeded, every
/// write recording it failed, and 60 s later the same replica, up all along, sent it again
/// while CodeDeploy was still stopping the deployment (stops take minutes while hooks run).
/// The replica knows what it did: its next pass starts from the outcome it could not write.
#[tokio::test(start_paused = true)]
async fn a_stop_whose_recording_write_fails_is_not_sent_again() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.aws.set_stop_delay(minutes(3));
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(minutes(2)).await;
    let first = h.deployments_of("web")[0].id.clone();

    // A new candidate supersedes the rollout: one stop, whose recording write (and the three
    // retries of it) fail.
    h.apply(
        "web",
        &ReleaseOptions {
            image_tag: "3.0.0".into(),
            ..ReleaseOptions::default()
        },
    )
    .await;
    let hooked = std::sync::Arc::new(StopThenStoreFails {
        aws: h.aws.clone(),
        store: h.store.clone(),
        writes: 4,
    });
    let ctx = switchyard::controller::Context::new(
        std::sync::Arc::new(h.store.clone()),
        std::sync::Arc::new(WithCodeDeploy(h.aws.clone(), hooked)),
        h.clock.clone(),
        h.config.clone(),
        switchyard::state::ControllerState::new(),
    );
    switchyard::controller::run(ctx, tokio::time::sleep(minutes(30))).await;

    assert_eq!(
        h.aws.stop_calls().get(&first),
        Some(&1),
        "the stop reached CodeDeploy once"
    );
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let live = h.live_task_definition("web");
    assert_eq!(h.image_of(&live, "web"), format!("{REGISTRY}/web:3.0.0"));
    h.assert_one_deployment_per_rollout();
}

/// Found by the simulation (seeds 7 and 47 of 50, 3 replicas): an injected panic in the
/// resync's batched DescribeServices ended the resync task without a word to the loop, which
/// then waited for it forever: no resync ran again in that replica, and its releases at rest
/// had no pass for the rest of the run. A panicking resync now fails like one that cannot
/// list, and the next one comes soon.
#[tokio::test(start_paused = true)]
async fn a_panic_in_the_resync_does_not_end_the_resyncs() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &ReleaseOptions::default()).await;
    let aws = h.aws.clone();
    let injected = tokio::spawn(async move {
        // Healthy by then: only the resync describes the service, once a minute.
        tokio::time::sleep(minutes(5)).await;
        aws.inject(FaultRule::times("ecs:DescribeServices", Fault::Panic, 1));
        aws.call_counts()
            .get("ecs:DescribeServices")
            .copied()
            .unwrap_or(0)
    });
    h.run_for(minutes(15)).await;
    let before = injected.await.unwrap();
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    let after = h.calls("ecs:DescribeServices");
    assert!(
        after >= before + 8,
        "resyncs go on after one panicked: {before} DescribeServices before, {after} after ten minutes"
    );
}

/// The number of passes that have ended well, from `/metrics`.
fn passes_ended(state: &switchyard::state::ControllerState) -> u64 {
    let metrics = state.metrics().encode();
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("switchyard_reconcile_duration_seconds_count{outcome=\"ok\"} ")
        })
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// 30 Healthy releases under one controller (running for 30 minutes from the start), then
/// every DescribeServices made to take 20 s: returns once the next resync has listed the
/// store, whose three batches then take a minute.
async fn healthy_fleet_in_a_slow_resync() -> (
    Harness,
    switchyard::state::ControllerState,
    tokio::task::JoinHandle<switchyard::controller::RunSummary>,
) {
    let h = Harness::new();
    let names: Vec<String> = (0..30).map(|i| format!("svc-{i:02}")).collect();
    for name in &names {
        h.add_service(name, |_| {});
        h.apply(name, &ReleaseOptions::default()).await;
    }
    let ctx = h.context();
    let state = ctx.state.clone();
    let controller = h.run_until_healthy(ctx, &names).await;
    h.slow_describes_from_the_next_resync(Duration::from_secs(20))
        .await;
    (h, state, controller)
}

/// A resync used to describe every service of the fleet before any release's pass ran, and
/// held a snapshot (with its described service) per release until then: a resync's memory
/// peak grew with the fleet, and the first batch's releases waited for the last batch's
/// describe. Each batch now goes to its passes as soon as it is described.
#[tokio::test(start_paused = true)]
async fn a_resync_hands_each_described_batch_to_its_passes_before_describing_the_next() {
    let (h, state, controller) = healthy_fleet_in_a_slow_resync().await;
    let before = passes_ended(&state);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after_first_batch = passes_ended(&state) - before;
    assert!(
        (10..30).contains(&after_first_batch),
        "30 s into a resync whose describes take 20 s each, the first batch's 10 releases \
         have had their passes and the last batch's not: {after_first_batch} passes"
    );
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(passes_ended(&state) - before, 30, "then every release's");
    h.aws.clear_faults();
    controller.await.unwrap();
}

/// A release written after a resync had listed the store was taken for deleted when that
/// resync ended: the controller dropped it from its view (the API, `/metrics`) and forgot
/// its scheduled look until the next resync.
#[tokio::test(start_paused = true)]
async fn a_release_written_during_a_resync_is_not_taken_for_deleted_when_it_ends() {
    let (h, state, controller) = healthy_fleet_in_a_slow_resync().await;
    h.add_service("late", |_| {});
    h.apply("late", &ReleaseOptions::default()).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(state.release("late").is_some(), "its first pass has run");
    // The resync (listed before "late" was written) ends at about 60 s.
    for second in 30..120 {
        assert!(
            state.release("late").is_some(),
            "{second} s into the resync, a release written during it is still in the \
             controller's view"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    h.aws.clear_faults();
    controller.await.unwrap();
}

/// A resync lists the store, then describes for a while (here a minute): a record a pass
/// wrote in between is newer than the listed one. The listed one used to replace it: the
/// controller's view went back a generation (the API showed the old spec and status) and the
/// release's next pass ran on the old record, its conditional status write refused.
#[tokio::test(start_paused = true)]
async fn a_record_written_after_a_resync_listed_it_is_not_replaced_by_the_listed_one() {
    let (h, state, controller) = healthy_fleet_in_a_slow_resync().await;
    // The last batch's release, described about a minute from now.
    h.apply(
        "svc-29",
        &ReleaseOptions {
            image_tag: "3.0.0".into(),
            ..ReleaseOptions::default()
        },
    )
    .await;
    let mut seen_generation = 1;
    for second in 0..120 {
        let held = state.release("svc-29").expect("held");
        assert!(
            held.generation >= seen_generation,
            "{second} s into the resync the controller's view of svc-29 went back from \
             generation {seen_generation} to {}",
            held.generation
        );
        seen_generation = held.generation;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(seen_generation, 2);
    h.aws.clear_faults();
    let summary = controller.await.unwrap();
    assert_eq!(
        summary.failed_passes, 0,
        "no pass ran on a listed record older than held"
    );
    let status = h.status("svc-29").await;
    assert_eq!(
        (status.phase, status.observed_generation),
        (Phase::Healthy, 2)
    );
}
