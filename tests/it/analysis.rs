//! Analyses against the simulated AWS in paused time, as a user would run them: a `taskSets`
//! analysis step, an ECS `PAUSE` hook answered by its analysis, a CodeDeploy deployment
//! gated in `Ready`; HTTP probes and CloudWatch metrics; restarts in the middle.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard::model::analysis::{AnalysisPhase, MeasurementResult};
use switchyard::model::{AuditAction, Outcome, Phase, ReleaseStatus};
use switchyard::ports::{MetricDataKind, ProbeError, ReleaseStore, SpecPrecondition, SpecWrite};
use switchyard::sim::{ExternalHandles, ExternalSetup};

use crate::harness::{Harness, REGISTRY, minutes};

const HEALTH: &str = "http://web.internal:8081/health";

/// Writes `yaml` (one release document) as `apply` would; returns its generation.
async fn apply(h: &Harness, yaml: &str) -> u64 {
    let documents = switchyard::model::parse_documents(yaml).expect("the document is valid");
    let document = &documents[0];
    h.store
        .put_spec(SpecWrite {
            name: document.metadata.name.clone(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&document.spec).unwrap(),
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .expect("spec written")
}

/// A `taskSets` release of service `web` whose steps are 10%, `analysis`, 50%.
fn canary(analysis: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {REGISTRY}/web:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      steps:\n        - setWeight: 10\n        - analysis:\n{analysis}        - setWeight: 50\n      scaleDownDelay: 30s\n      abortScaleDownDelay: 10s\n"
    )
}

/// An analysis of one HTTP probe of [`HEALTH`]: `count` measurements 10 s apart.
fn http_analysis(count: u32, failure_limit: u32) -> String {
    format!(
        "            interval: 10s\n            count: {count}\n            failureLimit: {failure_limit}\n            metrics:\n              - name: health\n                http: {{url: \"{HEALTH}\", timeout: 2s, expectStatus: [200]}}\n"
    )
}

fn external(h: &Harness) -> ExternalHandles {
    h.aws
        .add_external_service(ExternalSetup::new("prod", "web"))
}

/// Runs the controller for `duration`, sampling the candidate group's share of production
/// traffic every second.
async fn run_sampling(h: &Harness, handles: &ExternalHandles, duration: Duration) -> Vec<u32> {
    let candidate = handles.target_group_arns[1].clone();
    let listener = handles.production_listener_arn.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(switchyard::controller::run(h.context(), async move {
        let _ = stop_rx.await;
    }));
    let mut samples = Vec::new();
    for _ in 0..duration.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(
            h.aws
                .route(&listener)
                .and_then(|r| r.percent_to(&candidate))
                .map_or(0, |p| p.round() as u32),
        );
    }
    let _ = stop_tx.send(());
    let _ = controller.await;
    samples
}

fn measurement_numbers(status: &ReleaseStatus, metric: &str) -> Vec<u32> {
    status
        .analysis
        .as_ref()
        .and_then(|a| a.metrics.iter().find(|m| m.name == metric))
        .map(|m| m.measurements.iter().map(|m| m.number).collect())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_canary_whose_http_analysis_fails_rolls_back_at_its_analysis_step_never_past_its_first_weight()
 {
    let h = Harness::new();
    let handles = external(&h);
    h.aws.set_http_answer(HEALTH, Ok(503));
    apply(&h, &canary(&http_analysis(5, 1))).await;

    let samples = run_sampling(&h, &handles, Duration::from_secs(120)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert!(samples.contains(&10), "{samples:?}");
    assert!(
        samples.iter().all(|s| *s <= 10),
        "past the first weight: {samples:?}"
    );
    assert_eq!(*samples.last().unwrap(), 0, "traffic restored");
    let analysis = status
        .analysis
        .as_ref()
        .expect("the analysis is in the status");
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    assert_eq!(analysis.gate, "step 2");
    let health = &analysis.metrics[0];
    assert_eq!((health.failed, health.successful), (2, 0));
    assert_eq!(health.last_value, Some(503.0));
    assert_eq!(
        health.last_message.as_deref(),
        Some("HTTP 503, expected 200")
    );
    // The verdict names the metric and why.
    assert!(
        status.history[0]
            .message
            .contains("metric health failed 2 of 2")
            && status.history[0].message.contains("HTTP 503"),
        "{}",
        status.history[0].message
    );
    assert_eq!(status.history[0].outcome, Outcome::RolledBack);
    // Two measurements: the limit of one failure was passed at the second.
    assert_eq!(h.aws.http_probes(HEALTH), 2);
}

#[tokio::test(start_paused = true)]
async fn the_same_canary_with_a_healthy_endpoint_ends_healthy_after_count_measurements() {
    let h = Harness::new();
    let handles = external(&h);
    h.aws.set_http_answer(HEALTH, Ok(200));
    apply(&h, &canary(&http_analysis(4, 0))).await;

    let samples = run_sampling(&h, &handles, Duration::from_secs(150)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert!(
        samples.contains(&50) && samples.ends_with(&[100]),
        "{samples:?}"
    );
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Successful);
    assert_eq!((analysis.taken, analysis.count), (4, 4));
    assert_eq!(measurement_numbers(&status, "health"), [1, 2, 3, 4]);
    assert_eq!(analysis.metrics[0].successful, 4);
    assert_eq!(h.aws.http_probes(HEALTH), 4);
    // Measurements are an interval apart, the first one interval after the start.
    let times: Vec<_> = analysis.metrics[0]
        .measurements
        .iter()
        .map(|m| m.at)
        .collect();
    assert!(times[0].duration_since(analysis.started_at).as_secs() >= 10);
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).as_secs_f64();
        assert!((10.0..11.0).contains(&gap), "{gap}");
    }
}

const CLOUDWATCH: &str = "            interval: 30s\n            count: 5\n            metrics:\n              - name: error-rate\n                cloudWatch:\n                  expression: \"m1 / m2 * 100\"\n                  metrics:\n                    m1: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: CANDIDATE_TARGET_GROUP, LoadBalancer: app/web/1}}\n                    m2: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {TargetGroup: CANDIDATE_TARGET_GROUP, LoadBalancer: app/web/1}}\n                  period: 60s\n                failWhen: {above: 1.0}\n";

/// The candidate group's CloudWatch dimension value (`targetgroup/NAME/ID`).
fn dimension(arn: &str) -> String {
    arn.rsplit_once(':').unwrap().1.to_string()
}

#[tokio::test(start_paused = true)]
async fn a_cloudwatch_analysis_reads_the_candidate_group_and_fails_when_errors_rise() {
    let h = Harness::new();
    let handles = external(&h);
    let candidate = dimension(&handles.target_group_arns[1]);
    let dims = [
        ("LoadBalancer", "app/web/1"),
        ("TargetGroup", candidate.as_str()),
    ];
    h.aws
        .set_metric("AWS/ApplicationELB", "RequestCount", &dims, Some(200.0));
    h.aws.set_metric(
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        &dims,
        Some(1.0),
    );
    // The metrics have a history: complete periods exist when the analysis starts (it reads
    // complete periods only).
    tokio::time::sleep(minutes(2)).await;
    apply(&h, &canary(CLOUDWATCH)).await;
    // 0.5% of errors: the first measurement passes.
    h.run_for(Duration::from_secs(75)).await;
    let status = h.status("web").await;
    let analysis = status.analysis.as_ref().expect("running");
    assert_eq!(analysis.phase, AnalysisPhase::Running, "{}", status.message);
    assert_eq!(analysis.metrics[0].successful, 1, "{analysis:?}");
    assert_eq!(analysis.metrics[0].last_value, Some(0.5));
    // The query named the candidate group, the expression is the one returned.
    let request = h.aws.metric_data_requests().pop().unwrap();
    assert_eq!(request.returned_id(), Some("switchyard"));
    for query in &request.queries {
        if let MetricDataKind::Stat { dimensions, .. } = &query.kind {
            assert!(
                dimensions.contains(&("TargetGroup".to_string(), candidate.clone())),
                "{dimensions:?}"
            );
        }
    }
    // 5% of errors: failed, rolled back.
    h.aws.set_metric(
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        &dims,
        Some(10.0),
    );
    h.run_for(minutes(2)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    assert_eq!(analysis.metrics[0].last_value, Some(5.0));
    assert!(
        status.message.contains("metric error-rate") && status.message.contains("5 is above 1"),
        "{}",
        status.message
    );
}

#[tokio::test(start_paused = true)]
async fn no_data_is_inconclusive_by_default_and_holds_the_rollout_until_promoted() {
    let h = Harness::new();
    let handles = external(&h);
    apply(&h, &canary(CLOUDWATCH)).await;
    let samples = run_sampling(&h, &handles, Duration::from_secs(90)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::AwaitingPromotion, "{}", status.message);
    assert!(
        status.message.contains("inconclusive") && status.message.contains("no data"),
        "{}",
        status.message
    );
    assert_eq!(*samples.last().unwrap(), 10, "held at its weight");
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Inconclusive);
    assert_eq!(
        analysis.metrics[0].last_result,
        Some(MeasurementResult::Inconclusive)
    );
    // Held: nothing more is measured.
    let requests = h.aws.metric_data_requests().len();
    h.run_for(minutes(2)).await;
    assert_eq!(h.aws.metric_data_requests().len(), requests);
    assert_eq!(h.status("web").await.phase, Phase::AwaitingPromotion);

    h.request("web", switchyard::model::RequestKind::Promote)
        .await;
    h.run_for(minutes(2)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(
        status.analysis.as_ref().unwrap().phase,
        AnalysisPhase::Skipped
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_an_analysis_neither_repeats_nor_skips_a_measurement() {
    let h = Harness::new();
    let _handles = external(&h);
    h.aws.set_http_answer(HEALTH, Ok(200));
    apply(&h, &canary(&http_analysis(6, 0))).await;
    // Two measurements in, the controller stops; it is down for 25 s (a takeover's time).
    h.run_for(Duration::from_secs(47)).await;
    let status = h.status("web").await;
    let taken = status.analysis.as_ref().map_or(0, |a| a.taken);
    assert!((1..6).contains(&taken), "{taken}: {}", status.message);
    tokio::time::sleep(Duration::from_secs(25)).await;
    h.run_for(minutes(3)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(measurement_numbers(&status, "health"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(h.aws.http_probes(HEALTH), 6, "one probe per measurement");
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_times_out_is_a_failed_measurement() {
    let h = Harness::new();
    let _handles = external(&h);
    h.aws
        .set_http_answer(HEALTH, Err(ProbeError::Timeout(Duration::from_secs(2))));
    apply(&h, &canary(&http_analysis(3, 0))).await;
    h.run_for(minutes(2)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    let health = &status.analysis.as_ref().unwrap().metrics[0];
    assert_eq!(health.failed, 1);
    assert!(
        health
            .last_message
            .as_deref()
            .is_some_and(|m| m.contains("no response within 2s")),
        "{health:?}"
    );
}

// ----- CodeDeploy: the gate while the deployment waits in `Ready` ---------------------------

/// A `codeDeploy` release of service `web` whose analysis probes [`HEALTH`] `count` times, 30 s
/// apart.
fn code_deploy_with_analysis(count: u32) -> String {
    crate::harness::release_yaml("web", &crate::harness::ReleaseOptions::default()).replace(
        "      deploymentGroup: web-prod\n",
        &format!(
            "      deploymentGroup: web-prod\n      analysis:\n        interval: 30s\n        count: {count}\n        metrics:\n          - name: health\n            http: {{url: \"{HEALTH}\", expectStatus: [200]}}\n"
        ),
    )
}

fn ready_for(h: &Harness, minutes: u32) {
    h.add_service("web", |s| {
        s.ready_action = switchyard::ports::ReadyAction::StopDeployment {
            wait_minutes: minutes,
        };
    });
}

#[tokio::test(start_paused = true)]
async fn a_codedeploy_deployment_in_ready_is_continued_only_after_its_analysis_passes() {
    let h = Harness::new();
    ready_for(&h, 30);
    h.aws.set_http_answer(HEALTH, Ok(200));
    apply(&h, &code_deploy_with_analysis(4)).await;

    // Until every measurement passed, production traffic stays where it is.
    let mut continued_after = None;
    for second in 0..900 {
        h.run_for(Duration::from_secs(1)).await;
        if continued_after.is_none() && h.calls("codedeploy:ContinueDeployment") > 0 {
            continued_after = Some(second);
            let status = h.status("web").await;
            let analysis = status.analysis.as_ref().expect("analysed");
            assert_eq!(analysis.phase, AnalysisPhase::Successful, "{analysis:?}");
            assert_eq!(measurement_numbers(&status, "health"), [1, 2, 3, 4]);
        }
        if h.status("web").await.phase == Phase::Healthy {
            break;
        }
    }
    assert!(continued_after.is_some(), "never continued");
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
    assert_eq!(h.aws.http_probes(HEALTH), 4, "one probe per measurement");
    let analysis = status.analysis.as_ref().unwrap();
    assert!(analysis.gate.ends_with("in Ready"), "{}", analysis.gate);
}

#[tokio::test(start_paused = true)]
async fn a_codedeploy_deployment_whose_analysis_fails_is_rolled_back_from_ready() {
    let h = Harness::new();
    ready_for(&h, 30);
    h.aws.set_http_answer(HEALTH, Ok(503));
    apply(&h, &code_deploy_with_analysis(4)).await;
    h.run_for(minutes(20)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 0);
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    assert_eq!(analysis.metrics[0].failed, 1, "failureLimit 0: one failure");
    assert!(
        status.history[0].message.contains("metric health failed")
            && status.history[0].message.contains("HTTP 503"),
        "{}",
        status.history[0].message
    );
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_codedeploy_group_that_does_not_wait_in_ready_longer_than_the_analysis_fails_before_deploying()
 {
    for ready in [
        switchyard::ports::ReadyAction::ContinueDeployment,
        // 4 × 30 s is 2 minutes: a 2-minute wait is not longer.
        switchyard::ports::ReadyAction::StopDeployment { wait_minutes: 2 },
    ] {
        let h = Harness::new();
        h.add_service("web", |s| s.ready_action = ready);
        h.aws.set_http_answer(HEALTH, Ok(200));
        apply(&h, &code_deploy_with_analysis(4)).await;
        h.run_for(minutes(5)).await;
        let status = h.status("web").await;
        assert_eq!(status.phase, Phase::Failed, "{ready:?}: {}", status.message);
        assert!(
            status
                .message
                .contains("STOP_DEPLOYMENT with waitTimeInMinutes of at least 3"),
            "{}",
            status.message
        );
        assert!(
            h.deployments_of("web").is_empty(),
            "never an ungated rollout"
        );
        assert_eq!(h.calls("ecs:RegisterTaskDefinition"), 0);
    }
}

// ----- ECS: the answer to a PAUSE hook ------------------------------------------------------

fn ecs_with_analysis(count: u32) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {REGISTRY}/web:2.0.0\n  strategy:\n    ecs:\n      analysis:\n        interval: 20s\n        count: {count}\n        metrics:\n          - name: health\n            http: {{url: \"{HEALTH}\", expectStatus: [200]}}\n"
    )
}

fn ecs_service(h: &Harness) {
    h.aws.add_ecs_service(
        switchyard::sim::EcsServiceSetup::new(
            "prod",
            "web",
            switchyard::ports::EcsDeploymentStrategy::BlueGreen,
        )
        .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
}

#[tokio::test(start_paused = true)]
async fn an_ecs_pause_hook_is_answered_continue_when_its_analysis_passes() {
    let h = Harness::new();
    ecs_service(&h);
    h.aws.set_http_answer(HEALTH, Ok(200));
    apply(&h, &ecs_with_analysis(3)).await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    let arn = status.deployment_id.clone().unwrap();
    let answers = h.aws.hook_answers(&arn);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].1, switchyard::ports::HookAction::Continue);
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Successful);
    assert!(analysis.gate.starts_with("PAUSE hook"), "{}", analysis.gate);
    assert_eq!(measurement_numbers(&status, "health"), [1, 2, 3]);
    assert_eq!(h.aws.http_probes(HEALTH), 3);
}

#[tokio::test(start_paused = true)]
async fn an_ecs_pause_hook_is_answered_rollback_when_its_analysis_fails() {
    let h = Harness::new();
    ecs_service(&h);
    h.aws.set_http_answer(HEALTH, Ok(500));
    apply(&h, &ecs_with_analysis(3)).await;
    h.run_for(minutes(15)).await;
    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    let arn = status.deployment_id.clone().unwrap();
    let answers = h.aws.hook_answers(&arn);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].1, switchyard::ports::HookAction::Rollback);
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    assert!(
        status.history[0].message.contains("metric health failed"),
        "{}",
        status.history[0].message
    );
}

// ----- A takeover by another replica ----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_takeover_by_another_replica_in_the_middle_of_an_analysis_neither_repeats_nor_skips_a_measurement()
 {
    use std::sync::Arc;
    use switchyard::controller::Leases;
    use switchyard::lease::{LeaseTiming, shard_of};
    const SHARDS: u32 = 4;
    let timing = LeaseTiming {
        duration: Duration::from_secs(20),
        renew_period: Duration::from_secs(5),
        safety_margin: Duration::from_secs(5),
    };
    let h = Harness::new();
    let replica = |id: &str| {
        let leases = Leases::new(Arc::new(h.store.clone()), id, SHARDS, timing, &h.clock);
        (h.context().with_leases(leases.clone()), leases)
    };
    let _handles = external(&h);
    h.aws.set_http_answer(HEALTH, Ok(200));
    apply(&h, &canary(&http_analysis(8, 0))).await;

    // Replica A starts the analysis and crashes after a few measurements, its leases kept.
    let (a, _) = replica("replica-a");
    let run_a = tokio::spawn(switchyard::controller::run(a, std::future::pending::<()>()));
    let mut taken = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        taken = h.status("web").await.analysis.map_or(0, |a| a.taken);
        if taken >= 2 {
            break;
        }
    }
    assert!(taken >= 2, "replica A measured");
    run_a.abort();
    let _ = run_a.await;

    // Replica B takes the release over once A's lease expires (slots pass meanwhile).
    let (b, leases_b) = replica("replica-b");
    let shard = shard_of("web", SHARDS);
    let run_b = tokio::spawn(switchyard::controller::run(
        b,
        tokio::time::sleep(minutes(5)),
    ));
    while !leases_b.held().contains(&shard) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    run_b.await.unwrap();

    let status = h.status("web").await;
    assert_eq!(status.phase, Phase::Healthy, "{}", status.message);
    assert_eq!(
        measurement_numbers(&status, "health"),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    let analysis = status.analysis.as_ref().unwrap();
    assert_eq!((analysis.taken, analysis.metrics[0].successful), (8, 8));
    // One slot, one measurement: never two less than an interval apart.
    let times: Vec<_> = analysis.metrics[0]
        .measurements
        .iter()
        .map(|m| m.at)
        .collect();
    for pair in times.windows(2) {
        assert!(pair[1].duration_since(pair[0]).as_secs() >= 10, "{times:?}");
    }
    // A probe is a read: at most the one a crash cut off before it was recorded is repeated.
    let probes = h.aws.http_probes(HEALTH);
    assert!((8..=9).contains(&probes), "{probes} probes");
}
