//! The AWS call budget of a rollout that waits, for every strategy, against the simulated AWS
//! in paused time: at most two calls a minute of the release's own while it waits for a
//! human (a manual promotion, a paused release), a bake or a timed pause, while a `promote`
//! is still acted on at once (the change feed wakes the release) and a rollback alarm within
//! the alarm watcher's period (its batched DescribeAlarms is the fleet's, not the release's,
//! and is left out of the count).

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard::controller::{self, ALARM_POLL};
use switchyard::model::{AuditAction, Phase, ReleaseStatus, RequestKind, StrategyStatus};
use switchyard::ports::{
    AlarmState, EcsDeploymentStrategy, ReadyAction, ReleaseStore, SpecPrecondition, SpecWrite,
};
use switchyard::sim::{EcsServiceSetup, ExternalRule, ExternalSetup};

use crate::harness::{Harness, REGISTRY, ReleaseOptions, minutes};

/// The budget: a waiting release's own AWS calls per minute.
const BUDGET_PER_MINUTE: u64 = 2;
const ALARM: &str = "web-5xx";

/// A controller running in the background of a test until dropped.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<controller::RunSummary>>,
}

impl Running {
    fn start(h: &Harness) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(h.context(), async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The release's own AWS calls so far: every call but the alarm watcher's DescribeAlarms.
fn own_calls(h: &Harness) -> BTreeMap<String, u64> {
    h.aws
        .call_counts()
        .into_iter()
        .filter(|(operation, _)| !operation.starts_with("cloudwatch:"))
        .collect()
}

fn spent(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Sleeps (virtual time) until the status of `name` satisfies `done`, at most `limit`.
async fn wait_for(
    h: &Harness,
    name: &str,
    limit: Duration,
    done: impl Fn(&ReleaseStatus) -> bool,
) -> ReleaseStatus {
    let step = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        if let Some(status) = h.store.get(name).await.unwrap().and_then(|r| r.status)
            && done(&status)
        {
            return status;
        }
        assert!(waited < limit, "{name} never got there");
        tokio::time::sleep(step).await;
        waited += step;
    }
}

/// Lets the wait go on for `wait`, and asserts the release's own calls stayed within the
/// budget and the status still shows the wait.
async fn assert_wait_within_budget(
    h: &Harness,
    wait: Duration,
    still_waiting: impl Fn(&ReleaseStatus) -> bool,
) {
    let before = own_calls(h);
    tokio::time::sleep(wait).await;
    let calls = spent(&own_calls(h), &before);
    let total: u64 = calls.values().sum();
    let budget = BUDGET_PER_MINUTE * wait.as_secs() / 60;
    assert!(
        total <= budget,
        "{total} calls in {} minutes of waiting (budget {budget}): {calls:?}",
        wait.as_secs() / 60
    );
    let status = h.status("web").await;
    assert!(still_waiting(&status), "{}", status.message);
}

async fn apply_yaml(h: &Harness, yaml: &str) {
    let documents = switchyard::model::parse_documents(yaml).expect("the document is valid");
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
        .expect("spec written");
}

fn release(strategy: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: {REGISTRY}/web:2.0.0\n  strategy:\n{strategy}  rollback:\n    alarms: [{ALARM}]\n"
    )
}

/// A task-set canary on a service whose production listener has `rules` forwarding rules
/// besides its default action (each a route the rollout weights, and reads on every look);
/// returns the release's YAML.
fn task_sets_world(h: &Harness, rules: u32, steps: &str) -> String {
    let mut setup = ExternalSetup::new("prod", "web");
    setup.rules = (1..=rules)
        .map(|priority| ExternalRule {
            priority,
            forwards: true,
        })
        .collect();
    let handles = h.aws.add_external_service(setup);
    let test = handles.test_listener_arn.expect("a test listener");
    h.aws.set_alarm(ALARM, AlarmState::Ok);
    release(&format!(
        "    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      testListeners: [\"{test}\"]\n      steps:\n{steps}"
    ))
}

fn ecs_stage(status: &ReleaseStatus) -> Option<&str> {
    match &status.strategy {
        Some(StrategyStatus::Ecs(ecs)) => ecs.lifecycle_stage.as_deref(),
        _ => None,
    }
}

// ----- CodeDeploy ---------------------------------------------------------------------------

async fn code_deploy_waiting_for_promotion(h: &Harness) -> Running {
    h.add_service("web", |s| {
        s.ready_action = ReadyAction::StopDeployment {
            wait_minutes: 24 * 60,
        }
    });
    h.aws.set_alarm(ALARM, AlarmState::Ok);
    h.apply(
        "web",
        &ReleaseOptions {
            manual: true,
            alarms: vec![ALARM.into()],
            ..ReleaseOptions::default()
        },
    )
    .await;
    let running = Running::start(h);
    wait_for(h, "web", minutes(10), |s| {
        s.phase == Phase::AwaitingPromotion
    })
    .await;
    running
}

#[tokio::test(start_paused = true)]
async fn a_code_deploy_release_waiting_for_promotion_makes_at_most_two_calls_a_minute_and_a_promote_continues_it_at_once()
 {
    let h = Harness::new();
    let running = code_deploy_waiting_for_promotion(&h).await;
    assert_wait_within_budget(&h, minutes(30), |s| s.phase == Phase::AwaitingPromotion).await;

    h.request("web", RequestKind::Promote).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.calls("codedeploy:ContinueDeployment"), 1);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_code_deploy_release_waiting_for_promotion_is_stopped_within_the_alarm_watchers_period() {
    let h = Harness::new();
    let running = code_deploy_waiting_for_promotion(&h).await;
    tokio::time::sleep(minutes(7)).await;
    h.aws.set_alarm(ALARM, AlarmState::Alarm);
    tokio::time::sleep(ALARM_POLL + Duration::from_millis(500)).await;
    assert_eq!(h.calls("codedeploy:StopDeployment"), 1);
    running.stop().await;
}

// ----- task sets ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_task_set_canary_at_a_manual_pause_makes_at_most_two_calls_a_minute_and_a_promote_moves_it_at_once()
 {
    let h = Harness::new();
    let yaml = task_sets_world(&h, 0, "        - setWeight: 10\n        - pause: {}\n");
    apply_yaml(&h, &yaml).await;
    let running = Running::start(&h);
    wait_for(&h, "web", minutes(10), |s| {
        s.phase == Phase::AwaitingPromotion
    })
    .await;
    assert_wait_within_budget(&h, minutes(30), |s| s.phase == Phase::AwaitingPromotion).await;

    let weights = h.calls("elbv2:ModifyListener");
    h.request("web", RequestKind::Promote).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        h.calls("elbv2:ModifyListener") > weights,
        "the promote moved no weight"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_set_canary_with_many_routes_stays_within_the_budget_during_a_timed_pause_and_ends_it_on_time()
 {
    let h = Harness::new();
    // Three production routes and a test listener: a look reads four routes.
    let yaml = task_sets_world(
        &h,
        2,
        "        - setWeight: 10\n        - pause: {duration: 20m}\n        - setWeight: 50\n        - pause: {}\n",
    );
    apply_yaml(&h, &yaml).await;
    let running = Running::start(&h);
    let baking = wait_for(
        &h,
        "web",
        minutes(10),
        |s| matches!(&s.strategy, Some(StrategyStatus::TaskSets(t)) if t.pause_ends_at.is_some()),
    )
    .await;
    let ends = match &baking.strategy {
        Some(StrategyStatus::TaskSets(t)) => t.pause_ends_at.unwrap(),
        _ => unreachable!(),
    };
    let before = own_calls(&h);
    // Up to a second before the pause's end.
    let left = switchyard::clock::elapsed_between(h.clock.now(), ends);
    tokio::time::sleep(left - Duration::from_secs(1)).await;
    let calls = spent(&own_calls(&h), &before);
    let total: u64 = calls.values().sum();
    let minutes_waited = (left.as_secs() - 1) / 60;
    assert!(
        total <= BUDGET_PER_MINUTE * minutes_waited.max(1),
        "{total} calls in {minutes_waited} minutes of a timed pause: {calls:?}"
    );
    // The next step is set at the pause's end, not a look later.
    let weights = h.calls("elbv2:ModifyListener") + h.calls("elbv2:ModifyRule");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        h.calls("elbv2:ModifyListener") + h.calls("elbv2:ModifyRule") > weights,
        "the pause did not end on time"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_set_canary_at_a_manual_pause_rolls_back_within_the_alarm_watchers_period() {
    let h = Harness::new();
    let yaml = task_sets_world(&h, 0, "        - setWeight: 10\n        - pause: {}\n");
    apply_yaml(&h, &yaml).await;
    let running = Running::start(&h);
    wait_for(&h, "web", minutes(10), |s| {
        s.phase == Phase::AwaitingPromotion
    })
    .await;
    tokio::time::sleep(minutes(7)).await;
    let weights = h.calls("elbv2:ModifyListener");
    h.aws.set_alarm(ALARM, AlarmState::Alarm);
    tokio::time::sleep(ALARM_POLL + Duration::from_millis(500)).await;
    assert!(
        h.calls("elbv2:ModifyListener") > weights,
        "the alarm moved no weight back"
    );
    running.stop().await;
}

// ----- ECS ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_ecs_release_waiting_at_its_hook_makes_at_most_two_calls_a_minute_and_a_promote_continues_it_at_once()
 {
    let h = Harness::new();
    h.aws.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
    );
    h.aws.set_alarm(ALARM, AlarmState::Ok);
    apply_yaml(&h, &release("    ecs:\n      promotion: manual\n")).await;
    let running = Running::start(&h);
    wait_for(&h, "web", minutes(10), |s| {
        s.phase == Phase::AwaitingPromotion
    })
    .await;
    assert_wait_within_budget(&h, minutes(30), |s| s.phase == Phase::AwaitingPromotion).await;

    h.request("web", RequestKind::Promote).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.calls("ecs:ContinueServiceDeployment"), 1);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ecs_canary_bake_makes_at_most_two_calls_a_minute_and_an_alarm_rolls_it_back_within_the_watchers_period()
 {
    let h = Harness::new();
    let mut setup = EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::Canary);
    setup.canary = Some((10.0, 15));
    setup.bake_time_minutes = Some(0);
    h.aws.add_ecs_service(setup);
    h.aws.set_alarm(ALARM, AlarmState::Ok);
    apply_yaml(&h, &release("    ecs:\n      progressDeadline: 30m\n")).await;
    let running = Running::start(&h);
    wait_for(&h, "web", minutes(10), |s| {
        ecs_stage(s) == Some("PRODUCTION_TRAFFIC_SHIFT")
    })
    .await;
    assert_wait_within_budget(&h, minutes(10), |s| {
        ecs_stage(s) == Some("PRODUCTION_TRAFFIC_SHIFT")
    })
    .await;

    h.aws.set_alarm(ALARM, AlarmState::Alarm);
    tokio::time::sleep(ALARM_POLL + Duration::from_millis(500)).await;
    assert_eq!(
        h.calls("ecs:StopServiceDeployment") + h.calls("ecs:ContinueServiceDeployment"),
        1
    );
    running.stop().await;
}
