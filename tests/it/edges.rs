//! The controller at the edges, against the simulated AWS in paused time: refusals back
//! off, a panicking pass wedges nothing, the wrong target is never touched.

use switchyard::model::{Phase, Reason, RequestKind};
use switchyard::sim::{Fault, FaultRule};

use crate::harness::{Harness, ReleaseOptions, minutes};

#[tokio::test(start_paused = true)]
async fn a_refused_registration_backs_off_fails_the_release_and_retry_deploys_at_once() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.aws.inject(FaultRule::always(
        "ecs:RegisterTaskDefinition",
        Fault::AccessDenied,
    ));
    h.apply("web", &ReleaseOptions::default()).await;

    h.run_for(minutes(1)).await;
    let attempts = h.calls("ecs:RegisterTaskDefinition");
    assert!(
        (1..=8).contains(&attempts),
        "a refusal is asked again with a backoff: {attempts} attempts in a minute"
    );
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Failed, "{}", status.message);
    assert_eq!(
        status
            .condition(switchyard::model::ConditionType::Ready)
            .map(|c| c.reason),
        Some(Reason::Refused)
    );
    assert!(
        status.message.contains("ecs:RegisterTaskDefinition"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("AccessDeniedException"),
        "{}",
        status.message
    );

    // Ten minutes more: the backoff grows, capped at five minutes.
    h.run_for(minutes(10)).await;
    let later = h.calls("ecs:RegisterTaskDefinition");
    assert!(
        later - attempts <= 5,
        "{} more attempts in ten minutes",
        later - attempts
    );

    // The permission is granted; `switchyard retry` asks again at once.
    h.aws.clear_faults();
    let before = h.calls("ecs:RegisterTaskDefinition");
    h.request("web", RequestKind::Retry).await;
    h.run_for(std::time::Duration::from_secs(5)).await;
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), before + 1);
    h.run_for(minutes(5)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_pass_is_reported_retried_and_wedges_no_other_release() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.add_service("api", |_| {});
    // The first look at web's deployment group panics (a bug, injected), twice.
    h.aws.inject(FaultRule::times(
        "codedeploy:GetDeploymentGroup",
        Fault::Panic,
        2,
    ));
    h.apply("web", &ReleaseOptions::default()).await;
    h.run_for(std::time::Duration::from_millis(500)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Failed, "{}", status.message);
    assert!(
        status.message.contains("internal error"),
        "{}",
        status.message
    );

    h.apply("api", &ReleaseOptions::default()).await;
    h.run_for(minutes(10)).await;
    let web = h.status("web").await;
    let api = h.status("api").await;
    assert_eq!(
        web.phase,
        Phase::Healthy,
        "retried after the panic: {}",
        web.message
    );
    assert_eq!(api.phase, Phase::Healthy, "{}", api.message);
}

#[tokio::test(start_paused = true)]
async fn a_group_that_deploys_another_service_is_never_used() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.add_service("api", |_| {});
    let yaml = crate::harness::release_yaml("web", &ReleaseOptions::default())
        .replace("application: web", "application: api")
        .replace("deploymentGroup: web-prod", "deploymentGroup: api-prod");
    let document = &switchyard::model::parse_documents(&yaml).unwrap()[0];
    h.put_raw_spec("web", serde_json::to_value(&document.spec).unwrap())
        .await;

    h.run_for(minutes(5)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Failed, "{}", status.message);
    for name in ["prod/api", "prod/web", "api/api-prod"] {
        assert!(status.message.contains(name), "{name}: {}", status.message);
    }
    assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 0);
    assert_eq!(h.calls("codedeploy:CreateDeployment"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_stop_is_sent_once_and_followed_until_codedeploy_has_stopped() {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into();
    });
    // CodeDeploy takes three minutes to stop (a hook in progress finishes first).
    h.aws.set_stop_delay(minutes(3));
    h.aws
        .set_alarm("web-5xx", switchyard::ports::AlarmState::Ok);
    let options = ReleaseOptions {
        alarms: vec!["web-5xx".into()],
        ..ReleaseOptions::default()
    };
    h.apply("web", &options).await;
    h.run_for(minutes(2)).await;
    h.aws
        .set_alarm("web-5xx", switchyard::ports::AlarmState::Alarm);
    h.run_for(minutes(2)).await;
    let stopping = h.status("web").await;
    assert_eq!(stopping.phase, Phase::Progressing, "{}", stopping.message);
    assert_eq!(
        h.calls("codedeploy:StopDeployment"),
        1,
        "sent once, then followed"
    );

    h.run_for(minutes(5)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    assert!(h.aws.stop_calls().values().all(|calls| *calls == 1));
}
