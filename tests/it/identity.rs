//! Rollouts keyed by their candidate, against the simulated AWS in paused time: edits that
//! keep the candidate never stop a rollout, requests apply to the rollout in flight
//! whatever the generation, and the candidate never depends on the controller's history.

use std::collections::BTreeMap;

use switchyard::model::{ConditionStatus, ConditionType, Outcome, Phase, RequestKind};
use switchyard::ports::{AlarmState, ReadyAction};

use crate::harness::{Harness, REGISTRY, ReleaseOptions, minutes};

fn paused_condition(status: &switchyard::model::ReleaseStatus) -> Option<ConditionStatus> {
    status.condition(ConditionType::Paused).map(|c| c.status)
}

fn canary() -> ReleaseOptions {
    ReleaseOptions::default()
}

#[tokio::test(start_paused = true)]
async fn pause_and_resume_of_a_rollout_in_flight_never_stop_it() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.apply("web", &canary()).await;
    h.run_for(minutes(2)).await;
    let before = h.status("web").await;
    assert_eq!(before.phase, Phase::Progressing, "{}", before.message);
    let deployment = before
        .deployment_id
        .clone()
        .expect("a deployment in flight");

    let paused = ReleaseOptions {
        paused: true,
        ..canary()
    };
    let generation = h.apply("web", &paused).await;
    h.run_for(minutes(2)).await;
    let held = h.status("web").await;
    assert_eq!(held.observed_generation, generation);
    assert_ne!(held.phase, Phase::Paused, "a held rollout is not settled");
    assert_eq!(held.phase, Phase::Progressing, "{}", held.message);
    assert_eq!(paused_condition(&held), Some(ConditionStatus::True));
    assert_eq!(held.deployment_id.as_deref(), Some(deployment.as_str()));

    let generation = h.apply("web", &canary()).await;
    h.run_for(minutes(30)).await;
    let done = h.status("web").await;
    assert_eq!(done.observed_generation, generation);
    assert_eq!(done.phase, Phase::Healthy, "{}", done.message);
    assert_eq!(paused_condition(&done), Some(ConditionStatus::False));
    assert_eq!(h.calls("codedeploy:StopDeployment"), 0);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    assert_eq!(done.deployment_id.as_deref(), Some(deployment.as_str()));
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn edits_of_labels_alarms_promotion_or_on_drift_never_stop_a_rollout() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.aws.set_alarm("web-5xx", AlarmState::Ok);
    h.apply("web", &canary()).await;
    h.run_for(minutes(2)).await;
    let deployment = h.status("web").await.deployment_id.expect("in flight");

    let edits = [
        ReleaseOptions {
            labels: BTreeMap::from([("team".to_string(), "storefront".to_string())]),
            ..canary()
        },
        ReleaseOptions {
            alarms: vec!["web-5xx".into()],
            ..canary()
        },
        ReleaseOptions {
            converge_drift: true,
            ..canary()
        },
        ReleaseOptions {
            manual: true,
            ..canary()
        },
    ];
    for edit in edits {
        let generation = h.apply("web", &edit).await;
        h.run_for(minutes(1)).await;
        let status = h.status("web").await;
        assert_eq!(status.observed_generation, generation);
        assert_eq!(status.phase, Phase::Progressing, "{}", status.message);
        assert_eq!(status.deployment_id.as_deref(), Some(deployment.as_str()));
    }
    h.run_for(minutes(30)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:StopDeployment"), 0);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_promote_recorded_before_a_label_edit_still_promotes() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 };
    });
    let manual = ReleaseOptions {
        manual: true,
        ..canary()
    };
    h.apply("web", &manual).await;
    // The rollout has started, its deployment is not Ready yet.
    h.run_for(std::time::Duration::from_secs(3)).await;
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    h.request("web", RequestKind::Promote).await;
    h.apply(
        "web",
        &ReleaseOptions {
            labels: BTreeMap::from([("owner".to_string(), "alice".to_string())]),
            ..manual
        },
    )
    .await;

    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == Outcome::Promoted),
        "{:?}",
        status.history
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_rollout_at_its_gate_waits_for_resume_then_promotes() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 };
    });
    h.apply("web", &canary()).await;
    // Paused before the deployment is Ready: automatic promotion is held.
    h.run_for(std::time::Duration::from_secs(2)).await;
    h.apply(
        "web",
        &ReleaseOptions {
            paused: true,
            ..canary()
        },
    )
    .await;
    h.run_for(minutes(10)).await;
    let held = h.status("web").await;
    assert_eq!(held.phase, Phase::Progressing, "{}", held.message);
    assert_eq!(paused_condition(&held), Some(ConditionStatus::True));
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 0);

    h.apply("web", &canary()).await;
    h.run_for(minutes(5)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
    assert_eq!(h.calls("codedeploy:StopDeployment"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_alarm_still_rolls_a_paused_rollout_back() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    h.aws.set_alarm("web-5xx", AlarmState::Ok);
    let options = ReleaseOptions {
        alarms: vec!["web-5xx".into()],
        ..canary()
    };
    h.apply("web", &options).await;
    h.run_for(minutes(2)).await;
    h.apply(
        "web",
        &ReleaseOptions {
            paused: true,
            ..options
        },
    )
    .await;
    h.run_for(minutes(1)).await;
    h.aws.set_alarm("web-5xx", AlarmState::Alarm);
    h.run_for(minutes(5)).await;
    let status = h.status("web").await;
    // Paused and nothing in flight any more: the phase says Paused; the history says how
    // the rollout ended.
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    assert_eq!(status.history[0].outcome, Outcome::RolledBack, "{status:?}");
    assert!(status.history[0].message.contains("web-5xx"));
}

#[tokio::test(start_paused = true)]
async fn a_variable_removed_from_the_spec_is_removed_from_the_next_candidate() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.environment = BTreeMap::from([("MODE".to_string(), "prod".to_string())]);
    });
    h.apply(
        "web",
        &ReleaseOptions {
            environment: BTreeMap::from([("FEATURE_X".to_string(), "on".to_string())]),
            ..canary()
        },
    )
    .await;
    h.run_for(minutes(10)).await;
    let first = h.live_task_definition("web");
    let env = |arn: &str| {
        h.aws
            .task_definitions("web")
            .into_iter()
            .find(|t| t.arn == arn)
            .and_then(|t| t.container("web").map(|c| c.environment.clone()))
            .unwrap()
    };
    assert_eq!(env(&first).get("FEATURE_X").map(String::as_str), Some("on"));

    h.apply(
        "web",
        &ReleaseOptions {
            image_tag: "3.0.0".into(),
            ..canary()
        },
    )
    .await;
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let second = h.live_task_definition("web");
    assert_ne!(second, first);
    assert_eq!(h.image_of(&second, "web"), format!("{REGISTRY}/web:3.0.0"));
    let environment = env(&second);
    assert_eq!(environment.get("FEATURE_X"), None, "{environment:?}");
    assert_eq!(environment.get("MODE").map(String::as_str), Some("prod"));
    // Both candidates were copied from web:1, the revision switchyard did not register.
    let base_of = |arn: &str| {
        h.aws
            .task_definitions("web")
            .into_iter()
            .find(|t| t.arn == arn)
            .and_then(|t| t.tags.get("switchyard.dev/base").cloned())
    };
    assert_eq!(base_of(&first), base_of(&second));
    assert!(base_of(&second).unwrap().ends_with("task-definition/web:1"));
}

#[tokio::test(start_paused = true)]
async fn a_revision_registered_meanwhile_never_turns_a_label_edit_into_a_rollout() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &canary()).await;
    h.run_for(minutes(10)).await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    let live = h.live_task_definition("web");
    // Someone registers a new revision of the family by hand.
    let mut by_hand = h.aws.task_definitions("web")[0].containers.clone();
    by_hand[0].image = format!("{REGISTRY}/web:9.9.9");
    h.aws.add_task_definition("web", by_hand, "by-hand");

    h.apply(
        "web",
        &ReleaseOptions {
            labels: BTreeMap::from([("team".to_string(), "storefront".to_string())]),
            ..canary()
        },
    )
    .await;
    h.run_for(minutes(10)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.live_task_definition("web"), live);
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 1);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_same_content_applied_twice_registers_once_and_deploys_once() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &canary()).await;
    h.run_for(minutes(10)).await;
    // The same document again, as `apply` of an unchanged file with a new label would.
    h.apply(
        "web",
        &ReleaseOptions {
            labels: BTreeMap::from([("x".to_string(), "y".to_string())]),
            ..canary()
        },
    )
    .await;
    // Spelling the base as an ARN instead of its family is the same candidate too.
    h.run_for(minutes(10)).await;
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 1);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
}
