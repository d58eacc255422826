//! `strategy.ecs` against the simulated AWS in paused time, as a user would run it: ECS's
//! own rolling and blue/green deployments, started once, gated by switchyard.

use std::collections::BTreeMap;

use switchyard::model::{AuditAction, Outcome, Phase, RequestKind};
use switchyard::ports::{
    AlarmState, EcsDeploymentStrategy, HookAction, ReleaseStore, SpecPrecondition, SpecWrite,
};
use switchyard::sim::EcsServiceSetup;

use crate::harness::{Harness, REGISTRY, minutes};

/// The YAML of an `ecs` release of service `name`: `strategy` is the `strategy.ecs` body.
fn ecs_release(name: &str, tag: &str, strategy: &str, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {REGISTRY}/{name}:{tag}\n  strategy:\n    ecs:\n{strategy}{extra}"
    )
}

async fn apply_yaml(h: &Harness, name: &str, yaml: &str) -> u64 {
    let documents = switchyard::model::parse_documents(yaml).expect("the document is valid");
    h.store
        .put_spec(SpecWrite {
            name: name.into(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&documents[0].spec).unwrap(),
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .expect("spec written")
}

#[tokio::test(start_paused = true)]
async fn a_rolling_release_costs_one_update_service_with_only_the_candidate() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup::new(
        "prod",
        "web",
        EcsDeploymentStrategy::Rolling,
    ));
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: auto\n", ""),
    )
    .await;

    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let requests = h.aws.update_service_requests("prod", "web");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].deployment, None,
        "no deployment configuration without one in the document"
    );
    let running = h.aws.running_task_definition("prod", "web").unwrap();
    assert_eq!(h.image_of(&running, "web"), format!("{REGISTRY}/web:2.0.0"));
    assert_eq!(status.history[0].outcome, Outcome::Succeeded);

    // A restart adds nothing: no second UpdateService.
    h.run_for(minutes(5)).await;
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_release_waits_at_its_hook_and_promote_continues_it_with_the_hook_id() {
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: manual\n", ""),
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
    let arn = waiting
        .deployment_id
        .clone()
        .expect("the service deployment");
    assert!(h.aws.hook_answers(&arn).is_empty());

    h.request("web", RequestKind::Promote).await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let answers = h.aws.hook_answers(&arn);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].1, HookAction::Continue);
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == Outcome::Promoted)
    );
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_a_blue_green_release_back_with_one_call() {
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    let before = h.aws.running_task_definition("prod", "web").unwrap();
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: manual\n", ""),
    )
    .await;
    h.run_for(minutes(10)).await;
    let arn = h.status("web").await.deployment_id.unwrap();

    h.request("web", RequestKind::Abort).await;
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(status.message.contains("aborted by"), "{}", status.message);
    let answers = h.aws.hook_answers(&arn);
    assert_eq!(answers, vec![(answers[0].0.clone(), HookAction::Rollback)]);
    assert!(h.aws.service_deployment_stop_calls().is_empty());
    assert_eq!(
        h.aws.running_task_definition("prod", "web").unwrap(),
        before
    );
}

#[tokio::test(start_paused = true)]
async fn a_circuit_breaker_rollback_by_ecs_is_rolled_back_with_ecs_reason() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup::new(
        "prod",
        "web",
        EcsDeploymentStrategy::Rolling,
    ));
    h.aws.fail_install_for_image("web:2.0.0");
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: auto\n", ""),
    )
    .await;

    h.run_for(minutes(30)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(
        status.message.to_lowercase().contains("circuit breaker"),
        "ECS's reason is in the message: {}",
        status.message
    );
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_alarm_stops_a_deployment_in_flight_with_one_call() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup {
        bake_time_minutes: Some(20),
        ..EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
    });
    h.aws.set_alarm("web-5xx", AlarmState::Ok);
    apply_yaml(
        &h,
        "web",
        &ecs_release(
            "web",
            "2.0.0",
            "      promotion: auto\n",
            "  rollback:\n    alarms: [web-5xx]\n",
        ),
    )
    .await;
    h.run_for(minutes(3)).await;
    assert_eq!(h.status("web").await.phase, Phase::Progressing);
    h.aws.set_alarm("web-5xx", AlarmState::Alarm);
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(status.message.contains("web-5xx"), "{}", status.message);
    let stops: u32 = h.aws.service_deployment_stop_calls().values().sum();
    assert_eq!(stops, 1);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_someone_else_started_is_waited_for_and_never_stopped() {
    let h = Harness::new();
    let handles = h.aws.add_ecs_service(EcsServiceSetup {
        bake_time_minutes: Some(10),
        ..EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
    });
    let _ = handles;
    // Someone deploys a revision of their own by hand first.
    let mut containers = h.aws.task_definitions("web")[0].containers.clone();
    containers[0].image = format!("{REGISTRY}/web:1.5.0");
    let by_hand = h.aws.add_task_definition("web", containers, "by-hand").arn;
    h.aws
        .update_service_as_someone_else(&switchyard::ports::UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: by_hand,
            deployment: None,
        })
        .expect("a deployment by hand");
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: auto\n", ""),
    )
    .await;

    h.run_for(std::time::Duration::from_secs(30)).await;
    let waiting = h.status("web").await;
    assert_eq!(waiting.phase, Phase::Pending, "{}", waiting.message);
    assert!(
        waiting.message.contains("not started by switchyard"),
        "{}",
        waiting.message
    );
    assert!(h.aws.update_service_requests("prod", "web").is_empty());

    h.run_for(minutes(30)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert!(h.aws.service_deployment_stop_calls().is_empty());
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn manual_promotion_without_a_pause_hook_fails_before_anything_is_deployed() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup::new(
        "prod",
        "web",
        EcsDeploymentStrategy::Rolling,
    ));
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: manual\n", ""),
    )
    .await;
    h.run_for(minutes(2)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Failed, "{}", status.message);
    assert!(status.message.contains("pauseAt"), "{}", status.message);
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 0);
    assert!(h.aws.update_service_requests("prod", "web").is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_document_s_deployment_block_is_sent_with_the_candidate() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup::new(
        "prod",
        "web",
        EcsDeploymentStrategy::BlueGreen,
    ));
    let strategy = "      promotion: manual\n      deployment:\n        type: blueGreen\n        bakeTime: 1m\n        pauseAt: [postTestTrafficShift]\n";
    apply_yaml(&h, "web", &ecs_release("web", "2.0.0", strategy, "")).await;
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::AwaitingPromotion, "{}", status.message);
    let requests = h.aws.update_service_requests("prod", "web");
    assert_eq!(requests.len(), 1);
    let deployment = requests[0].deployment.clone().expect("the configuration");
    assert_eq!(deployment.strategy, EcsDeploymentStrategy::BlueGreen);
    assert_eq!(deployment.bake_time_minutes, Some(1));
    assert_eq!(
        deployment.pause_at,
        vec!["POST_TEST_TRAFFIC_SHIFT".to_string()]
    );
    h.request("web", RequestKind::Promote).await;
    h.run_for(minutes(15)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_restart_while_updating_adopts_the_deployment_instead_of_updating_again() {
    let h = Harness::new();
    h.aws.add_ecs_service(EcsServiceSetup {
        bake_time_minutes: Some(10),
        ..EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::Rolling)
    });
    // UpdateService takes effect but its reply is lost.
    h.aws.inject(switchyard::sim::FaultRule::times(
        "ecs:UpdateService",
        switchyard::sim::Fault::LostResponse,
        1,
    ));
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: auto\n", ""),
    )
    .await;
    h.run_for(minutes(30)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
}

/// A rollout superseded while its deployment waits at a hook, then wanted again before any
/// newer `UpdateService` (the newer version's registration was refused meanwhile): the
/// service's task definition already names the candidate, but ECS has not finished deploying
/// it, so it is not already live. The release follows that deployment again (it waits for
/// its promotion) and never says `Healthy` while it is in flight. The deterministic
/// simulation found it (seed 3 of the suite's configuration, once it covered this strategy).
#[tokio::test(start_paused = true)]
async fn a_candidate_wanted_again_while_its_deployment_is_in_flight_is_not_already_live() {
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    let manual = "      promotion: manual\n";
    apply_yaml(&h, "web", &ecs_release("web", "2.0.0", manual, "")).await;
    h.run_for(minutes(10)).await;
    let waiting = h.status("web").await;
    assert_eq!(
        waiting.phase,
        Phase::AwaitingPromotion,
        "{}",
        waiting.message
    );
    let arn = waiting
        .deployment_id
        .clone()
        .expect("the service deployment");

    // A newer version that cannot be registered, then the first one again.
    h.aws.inject(switchyard::sim::FaultRule::always(
        "ecs:RegisterTaskDefinition",
        switchyard::sim::Fault::AccessDenied,
    ));
    apply_yaml(&h, "web", &ecs_release("web", "3.0.0", manual, "")).await;
    h.run_for(minutes(1)).await;
    apply_yaml(&h, "web", &ecs_release("web", "2.0.0", manual, "")).await;
    h.run_for(minutes(2)).await;
    let again = h.status("web").await;
    assert!(
        !h.aws.service_deployment(&arn).unwrap().status.is_terminal(),
        "the deployment still waits at its hook"
    );
    assert_eq!(again.phase, Phase::AwaitingPromotion, "{}", again.message);
    assert_eq!(again.deployment_id.as_deref(), Some(arn.as_str()));

    h.request("web", RequestKind::Promote).await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let running = h.aws.running_task_definition("prod", "web").unwrap();
    assert_eq!(h.image_of(&running, "web"), format!("{REGISTRY}/web:2.0.0"));
    assert_eq!(h.aws.hook_answers(&arn).len(), 1);
    assert_eq!(
        h.aws.service_deployments_of("prod", "web").len(),
        2,
        "the first deployment (made with the service) and the one followed throughout"
    );
}

/// A rollout superseded while its `UpdateService` intent has no deployment recorded (the
/// reply was lost) first looks for the deployment that call started and keeps it as
/// switchyard's: the next rollout replaces it rather than waiting for it as someone else's.
/// The deterministic simulation found it (seed 95 of the suite's configuration): the
/// intent was dropped with the superseded rollout, its deployment waited at a `PAUSE` hook
/// nobody would answer, and the release waited for it, `Pending`, for good.
#[tokio::test(start_paused = true)]
async fn a_superseded_update_whose_reply_was_lost_is_still_known_as_switchyard_s() {
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    h.aws.inject(switchyard::sim::FaultRule::times(
        "ecs:UpdateService",
        switchyard::sim::Fault::LostResponse,
        1,
    ));
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: manual\n", ""),
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(switchyard::controller::run(h.context(), async move {
        let _ = stop_rx.await;
    }));
    for _ in 0..600 {
        if !h.aws.update_service_requests("prod", "web").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 1);
    // The next version, before any pass found the first deployment.
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "3.0.0", "      promotion: manual\n", ""),
    )
    .await;
    tokio::time::sleep(minutes(10)).await;
    let waiting = h.status("web").await;
    assert_eq!(
        waiting.phase,
        Phase::AwaitingPromotion,
        "{}",
        waiting.message
    );
    assert_eq!(h.aws.update_service_requests("prod", "web").len(), 2);
    h.request("web", RequestKind::Promote).await;
    tokio::time::sleep(minutes(15)).await;
    let _ = stop_tx.send(());
    let _ = controller.await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let running = h.aws.running_task_definition("prod", "web").unwrap();
    assert_eq!(h.image_of(&running, "web"), format!("{REGISTRY}/web:3.0.0"));
}

/// A rollout superseded while its deployment waits at a `PAUSE` hook counts on the next
/// rollout's `UpdateService` to replace that deployment; when the next rollout is rolled back
/// before it sends one (its alarm already fires), it rolls the deployment in flight back
/// instead of leaving it at its hook for good (the simulation's seeds 167, 8 and 197).
#[tokio::test(start_paused = true)]
async fn a_rollout_rolled_back_before_it_started_rolls_back_the_superseded_deployment_at_its_hook()
{
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    let before = h.aws.running_task_definition("prod", "web").unwrap();
    h.aws.set_alarm("web-5xx", AlarmState::Ok);
    apply_yaml(
        &h,
        "web",
        &ecs_release("web", "2.0.0", "      promotion: manual\n", ""),
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
    let arn = waiting.deployment_id.clone().unwrap();

    h.aws.set_alarm("web-5xx", AlarmState::Alarm);
    apply_yaml(
        &h,
        "web",
        &ecs_release(
            "web",
            "3.0.0",
            "      promotion: manual\n",
            "  rollback:\n    alarms: [web-5xx]\n",
        ),
    )
    .await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(status.message.contains("web-5xx"), "{}", status.message);
    assert_eq!(
        h.aws.update_service_requests("prod", "web").len(),
        1,
        "the new candidate was never deployed"
    );
    let answers = h.aws.hook_answers(&arn);
    assert_eq!(
        answers.iter().map(|a| a.1).collect::<Vec<_>>(),
        vec![HookAction::Rollback],
        "the superseded deployment's hook is answered once, ROLLBACK"
    );
    assert_eq!(
        h.aws.running_task_definition("prod", "web").unwrap(),
        before,
        "the service runs what it ran before either rollout"
    );
}
