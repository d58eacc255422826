//! The fleet's shared API budget (`controller/budget.rs`), against the simulated AWS in paused
//! time: the calls AWS sees per account, Region and service stay within the fleet's rate
//! however many replicas share the releases; one place's burst never holds up another's;
//! AWS's throttling lowers only its own place's rate, which recovers; due calls go first;
//! routine passes waiting for the budget are bounded, whatever the fleet's size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use switchyard::controller::{
    self, ApiBudgets, BudgetSettings, Context, Leases, MeteredProvider, Priority, Rate,
    with_priority,
};
use switchyard::lease::LeaseTiming;
use switchyard::model::parse::parse_documents;
use switchyard::model::{AuditAction, Phase};
use switchyard::ports::{AwsProvider, ReleaseStore, SpecPrecondition, SpecWrite};
use switchyard::sim::{ACCOUNT, BlueGreenSetup, PlacedCall, REGION, SimAws};
use switchyard::state::ControllerState;

use crate::harness::{Harness, ReleaseOptions, minutes, release_yaml};

const SHARDS: u32 = 8;

/// A small budget, so that a few dozen releases press on it: ECS and CodeDeploy at 4 calls a
/// second with a burst of 8 (one per shard, so every replica's share is whole).
fn tight() -> BudgetSettings {
    let mut settings = BudgetSettings::default();
    for service in ["ecs", "codedeploy"] {
        settings.by_service.insert(
            service.into(),
            Rate {
                per_second: 4.0,
                burst: 8.0,
            },
        );
    }
    settings
}

fn replica(h: &Harness, id: &str) -> Context {
    let leases = Leases::new(
        Arc::new(h.store.clone()),
        id,
        SHARDS,
        LeaseTiming {
            duration: Duration::from_secs(20),
            renew_period: Duration::from_secs(5),
            safety_margin: Duration::from_secs(5),
        },
        &h.clock,
    );
    h.context().with_leases(leases)
}

/// Writes release `name` with `extra` added to its `spec.service` (`region: ...`).
async fn apply_in(h: &Harness, name: &str, extra: &str) {
    let yaml = release_yaml(name, &ReleaseOptions::default()).replace(
        &format!("service: {{cluster: prod, name: {name}}}"),
        &format!("service: {{cluster: prod, name: {name}{extra}}}"),
    );
    let documents = parse_documents(&yaml).expect("the test document is valid");
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
        .unwrap();
}

/// The most calls of `service` in `region` that reached AWS within any one second.
fn most_in_any_second(calls: &[PlacedCall], region: &str, service: &str) -> usize {
    let times: Vec<Timestamp> = calls
        .iter()
        .filter(|c| c.region == region && c.service == service)
        .map(|c| c.at)
        .collect();
    let mut most = 0;
    let mut start = 0;
    for (end, at) in times.iter().enumerate() {
        while at.duration_since(times[start]) >= jiff::SignedDuration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn the_calls_aws_sees_per_second_stay_within_the_fleet_budget_with_1_3_and_5_replicas() {
    for replicas in [1, 3, 5] {
        let mut h = Harness::new();
        h.config.api_budgets = tight();
        let names: Vec<String> = (0..32).map(|i| format!("svc-{i:02}")).collect();
        for name in &names {
            h.add_service(name, |_| {});
        }
        h.aws.keep_call_times();
        let runs: Vec<_> = (0..replicas)
            .map(|i| {
                let ctx = replica(&h, &format!("replica-{i}"));
                tokio::spawn(controller::run(ctx, tokio::time::sleep(minutes(30))))
            })
            .collect();
        // The leases are spread first; then the burst: every release at once.
        tokio::time::sleep(Duration::from_secs(30)).await;
        for name in &names {
            h.apply(name, &ReleaseOptions::default()).await;
        }
        for run in runs {
            run.await.unwrap();
        }
        for name in &names {
            let status = h.status(name).await;
            assert_eq!(status.phase, Phase::Healthy, "{replicas} replicas, {name}");
        }
        let calls = h.aws.placed_call_times();
        for service in ["ecs", "codedeploy"] {
            let most = most_in_any_second(&calls, REGION, service);
            // A second holds the burst and one second's rate at most.
            assert!(
                most <= 4 + 8,
                "{replicas} replicas: {most} {service} calls in one second"
            );
            assert!(
                most >= 4,
                "{replicas} replicas: the budget was pressed ({most})"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn one_places_burst_does_not_delay_another_places_release() {
    // How long the release in Ireland takes alone, and beside a burst of 40 at home.
    let mut healthy_after = Vec::new();
    for burst in [0, 40] {
        let mut h = Harness::new();
        h.config.api_budgets = tight();
        let ireland = h.aws.scoped(ACCOUNT, "eu-west-1");
        ireland.add_bluegreen_service(BlueGreenSetup::new("prod", "api"));
        for i in 0..burst {
            let name = format!("svc-{i:02}");
            h.add_service(&name, |_| {});
            h.apply(&name, &ReleaseOptions::default()).await;
        }
        apply_in(&h, "api", ", region: eu-west-1").await;
        let start = h.clock.now();
        let ctx = h.context();
        let state = ctx.state.clone();
        let run = tokio::spawn(controller::run(ctx, tokio::time::sleep(minutes(30))));
        let mut healthy = None;
        for _ in 0..(30 * 60) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let status = h.store.get("api").await.unwrap().and_then(|r| r.status);
            if status.is_some_and(|s| s.phase == Phase::Healthy) {
                healthy = Some(h.clock.now().duration_since(start));
                break;
            }
        }
        run.abort();
        healthy_after.push(healthy.expect("api becomes Healthy"));
        let waited_at_home = waited_seconds(&state, "ecs", REGION);
        if burst > 0 {
            assert!(
                waited_at_home > 1.0,
                "the home burst waited: {waited_at_home}"
            );
        }
        assert_eq!(waited_seconds(&state, "ecs", "eu-west-1"), 0.0);
    }
    assert!(
        healthy_after[1] <= healthy_after[0] + jiff::SignedDuration::from_secs(2),
        "alone {:?}, beside the burst {:?}",
        healthy_after[0],
        healthy_after[1]
    );
}

/// `switchyard_api_budget_wait_seconds_total` of `service` in `region` (0 without a series).
fn waited_seconds(state: &ControllerState, service: &str, region: &str) -> f64 {
    first_sample(
        state,
        &format!(
            "switchyard_api_budget_wait_seconds_total{{service=\"{service}\",region=\"{region}\","
        ),
    )
}

/// The value of the first series on /metrics whose line starts with `prefix` (0 without one).
fn first_sample(state: &ControllerState, prefix: &str) -> f64 {
    state
        .metrics()
        .encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(start_paused = true)]
async fn aws_throttling_lowers_only_its_own_places_rate_and_it_recovers() {
    let h = Harness::new();
    let ireland = h.aws.scoped(ACCOUNT, "eu-west-1");
    // AWS at home lets through two ECS Describe* calls at once and one a second.
    h.aws.limit_rate_here("ecs", "Describe", 2.0, 1.0);
    for i in 0..6 {
        let home = format!("home-{i}");
        h.add_service(&home, |_| {});
        h.apply(&home, &ReleaseOptions::default()).await;
        let away = format!("away-{i}");
        ireland.add_bluegreen_service(BlueGreenSetup::new("prod", &away));
        apply_in(&h, &away, ", region: eu-west-1").await;
    }
    let ctx = h.context();
    let budgets = ctx.budgets.clone();
    let home = switchyard::model::Place::new(Some(ACCOUNT), REGION);
    let away = switchyard::model::Place::new(Some(ACCOUNT), "eu-west-1");
    let configured = BudgetSettings::default().by_service["ecs"].per_second;
    let run = tokio::spawn(controller::run(ctx, tokio::time::sleep(minutes(40))));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(h.aws.throttled_calls() > 0, "AWS throttled at home");
    let lowered = budgets.current_rate(&home, "ecs").unwrap();
    assert!(lowered < configured, "home's rate lowered: {lowered}");
    assert_eq!(budgets.current_rate(&away, "ecs"), Some(configured));
    run.await.unwrap();
    // Once the rollouts are done the calls are few, AWS throttles none, and the successes
    // bring the rate back.
    assert_eq!(budgets.current_rate(&home, "ecs"), Some(configured));
    for i in 0..6 {
        assert_eq!(h.status(&format!("home-{i}")).await.phase, Phase::Healthy);
    }
}

#[tokio::test(start_paused = true)]
async fn due_calls_reach_aws_before_routine_calls_that_waited_longer() {
    let sim = SimAws::new(switchyard::clock::Clock::fixed_epoch());
    sim.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
    let state = ControllerState::new();
    let mut settings = BudgetSettings::default();
    settings.by_service.insert(
        "ecs".into(),
        Rate {
            per_second: 1.0,
            burst: 1.0,
        },
    );
    let provider = MeteredProvider {
        inner: Arc::new(sim.clone()),
        state: state.clone(),
        budgets: Arc::new(ApiBudgets::new(settings, state.clone())),
        home: sim.home(),
    };
    let ecs = provider.ports_for(REGION, None).ecs;
    let served = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    // Five routine looks queue up first, then one due call.
    for (i, priority) in [Priority::Routine; 5]
        .into_iter()
        .chain([Priority::Due])
        .enumerate()
    {
        let ecs = ecs.clone();
        let served = served.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            with_priority(priority, async {
                let _ = ecs.list_task_definitions("web", 1).await;
            })
            .await;
            served.lock().unwrap().push(priority);
        });
    }
    while tasks.join_next().await.is_some() {}
    // The first routine look took the one token; the due call is next, ahead of four that
    // waited longer.
    assert_eq!(
        *served.lock().unwrap(),
        [
            Priority::Routine,
            Priority::Due,
            Priority::Routine,
            Priority::Routine,
            Priority::Routine,
            Priority::Routine
        ]
    );
    assert!(
        waited_seconds(&state, "ecs", REGION) > 0.0,
        "the wait is on /metrics"
    );
}

/// A stand-in for ECS on a local port (the JSON protocol): it throttles the first `throttles`
/// requests as ECS does, then answers DescribeServices with no service. Counts the requests.
async fn throttling_ecs(throttles: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < throttles {
                    (
                        StatusCode::BAD_REQUEST,
                        [(
                            "x-amzn-ErrorType",
                            "ThrottlingException:http://internal.amazon.com/",
                        )],
                        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                    )
                } else {
                    (
                        StatusCode::OK,
                        [("content-type", "application/x-amz-json-1.1")],
                        r#"{"services":[],"failures":[]}"#,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), seen)
}

/// The SDK's own retries are requests AWS counts: a call the SDK retried twice past ECS's
/// throttling costs three tokens, and the throttles it retried away lower the place's rate
/// although the call itself succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_retries_are_charged_and_a_throttle_they_hid_lowers_the_rate() {
    use std::sync::atomic::Ordering;
    let (endpoint, seen) = throttling_ecs(2).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .load()
        .await;
    let home = switchyard::model::Home {
        region: REGION.to_string(),
        account: Some(ACCOUNT.to_string()),
    };
    let state = ControllerState::new();
    // A burst of 3 and almost no refill: what the call took is what the bucket lost.
    let mut settings = BudgetSettings::default();
    settings.by_service.insert(
        "ecs".into(),
        Rate {
            per_second: 0.01,
            burst: 3.0,
        },
    );
    let budgets = Arc::new(ApiBudgets::new(settings, state.clone()));
    let provider = MeteredProvider {
        inner: Arc::new(switchyard::aws::AwsAdapters::new(
            config,
            switchyard::aws::build_ports,
        )),
        state: state.clone(),
        budgets: budgets.clone(),
        home: home.clone(),
    };
    let ports = provider.ports_for(REGION, None);
    let place = switchyard::model::Place::new(Some(ACCOUNT), REGION);

    let services = ports
        .ecs
        .describe_services("prod", &["web".to_string()])
        .await
        .expect("the SDK's third attempt succeeds");
    assert!(services.is_empty());
    assert_eq!(seen.load(Ordering::SeqCst), 3, "ECS saw three requests");
    let admitted = first_sample(
        &state,
        "switchyard_api_budget_admitted_total{service=\"ecs\"",
    );
    assert_eq!(admitted, 3.0, "three tokens paid for three requests");
    let rate = budgets.current_rate(&place, "ecs").unwrap();
    assert!(rate < 0.01, "the hidden throttles lowered the rate: {rate}");
    // The bucket is spent: the next call has to wait for the refill.
    let next = tokio::time::timeout(
        Duration::from_millis(200),
        budgets.acquire(&place, "ecs", Priority::Due),
    )
    .await;
    assert!(
        next.is_err(),
        "no token left after paying for three requests"
    );
}

/// The simulated AWS, with every load balancer call logged with the budget priority it was
/// made at.
struct PriorityLog {
    sim: SimAws,
    calls: Arc<std::sync::Mutex<Vec<(&'static str, Priority)>>>,
}

impl AwsProvider for PriorityLog {
    fn home(&self) -> switchyard::model::Home {
        self.sim.home()
    }

    fn ports_for(
        &self,
        region: &str,
        session: Option<&switchyard::ports::RoleSession>,
    ) -> switchyard::ports::AwsPorts {
        let ports = self.sim.ports_for(region, session);
        switchyard::ports::AwsPorts {
            load_balancer: Arc::new(LoggedPriorities {
                inner: ports.load_balancer.clone(),
                calls: self.calls.clone(),
            }),
            ..ports
        }
    }

    fn sts(&self) -> Arc<dyn switchyard::ports::Sts> {
        self.sim.sts()
    }
}

struct LoggedPriorities {
    inner: Arc<dyn switchyard::ports::LoadBalancer>,
    calls: Arc<std::sync::Mutex<Vec<(&'static str, Priority)>>>,
}

impl LoggedPriorities {
    fn log(&self, operation: &'static str) {
        self.calls
            .lock()
            .unwrap()
            .push((operation, controller::current_priority()));
    }
}

#[async_trait::async_trait]
impl switchyard::ports::LoadBalancer for LoggedPriorities {
    async fn describe_listener(
        &self,
        listener_arn: &str,
    ) -> Result<switchyard::ports::Listener, switchyard::ports::AwsError> {
        self.log("describe_listener");
        self.inner.describe_listener(listener_arn).await
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<switchyard::ports::TargetGroup>, switchyard::ports::AwsError> {
        self.log("describe_target_groups");
        self.inner.describe_target_groups(references).await
    }

    async fn describe_routes(
        &self,
        load_balancer_arn: &str,
    ) -> Result<Vec<switchyard::ports::Route>, switchyard::ports::AwsError> {
        self.log("describe_routes");
        self.inner.describe_routes(load_balancer_arn).await
    }

    async fn describe_route(
        &self,
        arn: &str,
    ) -> Result<switchyard::ports::Route, switchyard::ports::AwsError> {
        self.log("describe_route");
        self.inner.describe_route(arn).await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<switchyard::ports::TargetHealth>, switchyard::ports::AwsError> {
        self.log("describe_target_health");
        self.inner.describe_target_health(target_group_arn).await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[switchyard::ports::WeightedTargetGroup],
        expected: Option<&switchyard::ports::ExpectedShare>,
    ) -> Result<(), switchyard::ports::AwsError> {
        self.log("set_forward_weights");
        self.inner
            .set_forward_weights(route_arn, weights, expected)
            .await
    }
}

/// With a bucket full of looks (a thousand canaries share ELB's 8 describes a second), a step
/// whose look queued behind every other release's would wait a round of the whole queue at
/// each step: the weight written at a pause's end and the look that reads a write back go
/// ahead of due looks (`Priority::Action`); the looks that wait for the candidate stay due.
#[tokio::test(start_paused = true)]
async fn a_canary_s_weight_writes_and_their_read_backs_go_ahead_of_due_looks() {
    let h = Harness::new();
    let handles = h
        .aws
        .add_external_service(switchyard::sim::ExternalSetup::new("prod", "web"));
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ctx = Context::new(
        Arc::new(h.store.clone()),
        Arc::new(PriorityLog {
            sim: h.aws.clone(),
            calls: calls.clone(),
        }),
        h.clock.clone(),
        h.config.clone(),
        ControllerState::new(),
    );
    let yaml = format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {}/web:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      steps:\n        - setWeight: 10\n        - pause: {{duration: 30s}}\n        - setWeight: 50\n        - pause: {{duration: 30s}}\n      scaleDownDelay: 30s\n",
        crate::harness::REGISTRY
    );
    let documents = parse_documents(&yaml).expect("the test document is valid");
    h.store
        .put_spec(SpecWrite {
            name: "web".into(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&documents[0].spec).unwrap(),
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(minutes(5)).await;
    let _ = stop.send(());
    let _ = controller.await;
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert!(
        h.aws
            .service("prod", "web")
            .is_some_and(|s| s.task_sets.len() == 1),
        "cleaned up: {:?}",
        handles.primary_task_set_arn
    );

    let calls = calls.lock().unwrap().clone();
    let writes: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op == "set_forward_weights")
        .map(|(i, _)| i)
        .collect();
    // 10, 50 and 100 on the production listener.
    assert!(writes.len() >= 3, "{calls:?}");
    for &at in &writes {
        assert!(
            calls[at].1 < Priority::Due,
            "a weight write goes ahead of due looks: {calls:?}"
        );
        // The next load balancer call reads the write back.
        let (op, priority) = calls[at + 1];
        assert_eq!(op, "describe_route", "{calls:?}");
        assert!(
            priority < Priority::Due,
            "the read-back of the write at {at} goes ahead of due looks: {calls:?}"
        );
    }
    // The look that sees the candidate steady (its targets' health) is no action's read-back.
    let health = calls
        .iter()
        .find(|(op, _)| *op == "describe_target_health")
        .expect("the candidate's targets are read");
    assert_eq!(health.1, Priority::Due, "{calls:?}");
}

/// The most passes that existed at once (`switchyard_passes_in_flight`) while 40 releases,
/// each at its live version (so each needs a first look of several calls and no
/// deployment), were looked at for the first time under a tight budget, with 2 passes at
/// once and at most `max_routine_passes` routine ones; all 40 end Healthy.
async fn most_passes_at_once_over_a_first_look_of_40_releases(max_routine_passes: usize) -> i64 {
    let mut h = Harness::new();
    h.config.api_budgets = tight();
    h.config.concurrency = 2;
    h.config.max_routine_passes = max_routine_passes;
    let names: Vec<String> = (0..40).map(|i| format!("svc-{i:02}")).collect();
    let live = ReleaseOptions {
        image_tag: "1.0.0".into(),
        ..ReleaseOptions::default()
    };
    for name in &names {
        h.add_service(name, |_| {});
        h.apply(name, &live).await;
    }
    let ctx = h.context();
    let state = ctx.state.clone();
    let run = tokio::spawn(controller::run(ctx, tokio::time::sleep(minutes(10))));
    let mut most = 0;
    let mut all_healthy = false;
    for _ in 0..(10 * 60 * 20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        most = most.max(state.metrics().passes_in_flight.get());
        let view = state.releases();
        if view.len() == names.len()
            && view
                .iter()
                .all(|r| r.status.as_ref().is_some_and(|s| s.phase == Phase::Healthy))
        {
            all_healthy = true;
            break;
        }
    }
    run.abort();
    assert!(
        all_healthy,
        "every release ends Healthy (limit {max_routine_passes})"
    );
    assert_eq!(
        h.calls("CreateDeployment"),
        0,
        "at its live version: no deployment"
    );
    most
}

#[tokio::test(start_paused = true)]
async fn routine_passes_waiting_for_the_budget_are_bounded_whatever_the_fleets_size() {
    // Passes waiting for the budget hold no slot of `concurrency`: unbounded, every release
    // of the first look had a pass (a task of tens of KB) at once.
    let unbounded = most_passes_at_once_over_a_first_look_of_40_releases(usize::MAX).await;
    assert!(
        unbounded > 20,
        "without a limit the first look piles up passes: {unbounded}"
    );
    let bounded = most_passes_at_once_over_a_first_look_of_40_releases(5).await;
    assert!(
        bounded <= 5,
        "at most 5 routine passes at once (no due pass here): {bounded}"
    );
}
