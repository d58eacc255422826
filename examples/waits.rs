//! What a rollout costs while it waits, for each strategy, in the simulated AWS (paused tokio
//! time): a manual promotion left waiting for 30 minutes, a 15-minute bake, and a task-set
//! canary's timed pauses. For each wait: the release's own AWS calls per minute (by
//! operation; the budget is 2), the most calls in any 60 seconds of it, the status writes,
//! and how soon the controller reacts to what ends or breaks the wait:
//!
//! - a `promote` request written -> the call that carries it out (manual waits);
//! - a rollback alarm set to `ALARM` -> the call that rolls back (every wait);
//! - the end of the bake or pause -> the controller's next look or call (bakes and pauses).
//!
//! The alarm watcher's `DescribeAlarms` is reported apart: it is one batched call per 2 s for
//! every release in flight of the replica together, whatever their number, not a cost of
//! the waiting release. Calls are timestamped by a decorator around the simulation's ports
//! (`common::RecordingAws`), so the benchmark's own look-ups never count.
//!
//! `cargo run --release --example waits`

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jiff::Timestamp;
use serde_json::json;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::model::{
    AuditAction, OperatorRequest, Phase, ReleaseStatus, RequestKind, StrategyStatus,
};
use switchyard::ports::{
    AlarmState, EcsDeploymentStrategy, ReadyAction, ReleaseStore, SpecPrecondition, SpecWrite,
};
use switchyard::sim::{
    AlarmType, BlueGreenSetup, EcsServiceSetup, ExternalSetup, SimAws, SimStore,
};
use switchyard::state::ControllerState;

use common::{CallEvent, REGISTRY, Recorder, RecordingAws, RecordingStore};

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

const NAME: &str = "web";
const ALARM: &str = "web-5xx";
/// The budget: a waiting release's own AWS calls per minute, at most.
const BUDGET_CALLS_PER_MINUTE: f64 = 2.0;
/// The controller's added latency at a promote, at most.
const TARGET_PROMOTE_SECS: f64 = 2.0;
/// How often the benchmark looks at the status and the world (virtual time). Offset from
/// whole and half seconds, where the controller's passes fall, so a sample never shares an
/// instant with a pass.
const SAMPLE: Duration = Duration::from_millis(250);
const SAMPLE_OFFSET: Duration = Duration::from_millis(110);
/// The most virtual time a run may take to reach its wait.
const REACH_LIMIT: Duration = Duration::from_secs(30 * 60);
/// How far into most waits the trials set off their event.
const EVENT_AFTER: Duration = Duration::from_secs(5 * 60);
const EVENT_OFFSETS_SECS: [f64; 3] = [0.3, 23.7, 51.1];

/// Calls per release per minute while a rollout waits, per strategy and wait.
#[derive(Debug, Parser)]
#[command(name = "waits")]
struct Args {
    /// How long a manual promotion is left waiting, in minutes.
    #[arg(long, default_value_t = 30)]
    manual_wait_minutes: u64,
    /// Scenarios to run (keys such as `codeDeploy/manual`), comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write the JSON report [default: target/bench/waits.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What breaks or ends the wait, and which call answers it.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// A `promote` request; the controller's answer is `call`.
    Promote { call: &'static str },
    /// The wait ends by itself (a bake, a timed pause): the first call after its end.
    Timed,
}

struct Scenario {
    key: &'static str,
    strategy: &'static str,
    wait: &'static str,
    /// Builds the world and returns the release's YAML.
    build: fn(&SimAws) -> String,
    /// Whether the status shows the wait.
    in_wait: fn(&ReleaseStatus) -> bool,
    /// When the wait ended in the world, if the world says (bakes the controller does not
    /// drive): sampled with the status.
    world_done: Option<fn(&SimAws, &ReleaseStatus) -> bool>,
    ending: Ending,
    /// The call that rolls back when the alarm fires.
    rollback_call: &'static str,
    /// How far into the wait the promote and alarm trials set off their event (plus the
    /// trial's offset, so the events fall at different phases of the controller's looks).
    event_after: Duration,
}

fn release(strategy: &str, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {NAME}\nspec:\n  service: {{cluster: prod, name: {NAME}}}\n  taskDefinition:\n    from: {NAME}\n    containers:\n      {NAME}:\n        image: {REGISTRY}/{NAME}:2.0.0\n  strategy:\n{strategy}  rollback:\n    alarms: [{ALARM}]\n{extra}"
    )
}

fn code_deploy_world(aws: &SimAws, config: &str, ready: ReadyAction) {
    let mut setup = BlueGreenSetup::new("prod", NAME);
    setup.deployment_config = config.to_string();
    setup.ready_action = ready;
    setup.termination_wait_minutes = 5;
    let handles = aws.add_bluegreen_service(setup);
    PRODUCTION_LISTENER.with(|l| {
        *l.borrow_mut() = Some((
            handles.production_listener_arn,
            handles.target_group_arns[1].clone(),
        ))
    });
}

fn task_sets_release(aws: &SimAws, steps: &str) -> String {
    let handles = aws.add_external_service(ExternalSetup::new("prod", NAME));
    let test = handles.test_listener_arn.expect("a test listener");
    release(
        &format!(
            "    taskSets:\n      targetGroups: [{NAME}-tg-a, {NAME}-tg-b]\n      testListeners: [\"{test}\"]\n      steps:\n{steps}"
        ),
        "",
    )
}

fn ecs_status(status: &ReleaseStatus) -> Option<&switchyard::model::ecs::EcsStatus> {
    match &status.strategy {
        Some(StrategyStatus::Ecs(ecs)) => Some(ecs),
        _ => None,
    }
}

fn task_sets_status(status: &ReleaseStatus) -> Option<&switchyard::model::TaskSetsStatus> {
    match &status.strategy {
        Some(StrategyStatus::TaskSets(t)) => Some(t),
        _ => None,
    }
}

/// The stage of the ECS rollout's service deployment, as ECS has it now.
fn ecs_stage(aws: &SimAws, status: &ReleaseStatus) -> Option<String> {
    let arn = ecs_status(status)?.service_deployment.clone()?;
    let deployment = aws.service_deployment(&arn)?;
    if deployment.status.is_terminal() {
        return Some("ENDED".into());
    }
    deployment.lifecycle_stage
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            key: "codeDeploy/manual",
            strategy: "codeDeploy",
            wait: "manual promotion (Ready)",
            build: |aws| {
                code_deploy_world(
                    aws,
                    "CodeDeployDefault.ECSAllAtOnce",
                    ReadyAction::StopDeployment {
                        wait_minutes: 24 * 60,
                    },
                );
                release(
                    &format!(
                        "    codeDeploy:\n      application: {NAME}\n      deploymentGroup: {NAME}-prod\n      promotion: manual\n"
                    ),
                    "",
                )
            },
            in_wait: |s| s.phase == Phase::AwaitingPromotion,
            world_done: None,
            ending: Ending::Promote {
                call: "codedeploy:ContinueDeployment",
            },
            rollback_call: "codedeploy:StopDeployment",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "codeDeploy/bake",
            strategy: "codeDeploy",
            wait: "15-minute canary bake (10%)",
            build: |aws| {
                code_deploy_world(
                    aws,
                    "CodeDeployDefault.ECSCanary10Percent15Minutes",
                    ReadyAction::ContinueDeployment,
                );
                release(
                    &format!(
                        "    codeDeploy:\n      application: {NAME}\n      deploymentGroup: {NAME}-prod\n"
                    ),
                    "",
                )
            },
            in_wait: |s| {
                s.phase == Phase::Progressing
                    && s.traffic_weights
                        .is_some_and(|t| t.candidate > 0.0 && t.candidate < 100.0)
            },
            world_done: Some(|aws, _| production_percent_on_b(aws) >= 100.0),
            ending: Ending::Timed,
            rollback_call: "codedeploy:StopDeployment",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "taskSets/manual",
            strategy: "taskSets",
            wait: "manual promotion (pause: {})",
            build: |aws| task_sets_release(aws, "        - setWeight: 10\n        - pause: {}\n"),
            in_wait: |s| s.phase == Phase::AwaitingPromotion,
            world_done: None,
            ending: Ending::Promote {
                call: "elasticloadbalancing:SetForwardWeights",
            },
            rollback_call: "elasticloadbalancing:SetForwardWeights",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "taskSets/pause-15m",
            strategy: "taskSets",
            wait: "15-minute timed pause (a bake)",
            build: |aws| {
                task_sets_release(
                    aws,
                    "        - setWeight: 10\n        - pause: {duration: 15m}\n        - setWeight: 50\n",
                )
            },
            in_wait: |s| task_sets_status(s).is_some_and(|t| t.pause_ends_at.is_some()),
            world_done: None,
            ending: Ending::Timed,
            rollback_call: "elasticloadbalancing:SetForwardWeights",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "taskSets/pause-90s",
            strategy: "taskSets",
            wait: "90-second timed pause",
            build: |aws| {
                task_sets_release(
                    aws,
                    "        - setWeight: 10\n        - pause: {duration: 90s}\n        - setWeight: 50\n",
                )
            },
            in_wait: |s| task_sets_status(s).is_some_and(|t| t.pause_ends_at.is_some()),
            world_done: None,
            ending: Ending::Timed,
            rollback_call: "elasticloadbalancing:SetForwardWeights",
            event_after: Duration::from_secs(10),
        },
        Scenario {
            key: "ecs/manual",
            strategy: "ecs",
            wait: "manual promotion (PAUSE hook)",
            build: |aws| {
                aws.add_ecs_service(
                    EcsServiceSetup::new("prod", NAME, EcsDeploymentStrategy::BlueGreen)
                        .pausing_at(&["POST_TEST_TRAFFIC_SHIFT"]),
                );
                release("    ecs:\n      promotion: manual\n", "")
            },
            in_wait: |s| s.phase == Phase::AwaitingPromotion,
            world_done: None,
            ending: Ending::Promote {
                call: "ecs:ContinueServiceDeployment",
            },
            rollback_call: "ecs:ContinueServiceDeployment",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "ecs/bake",
            strategy: "ecs",
            wait: "15-minute bake (BAKE_TIME)",
            build: |aws| {
                let mut setup =
                    EcsServiceSetup::new("prod", NAME, EcsDeploymentStrategy::BlueGreen);
                setup.bake_time_minutes = Some(15);
                aws.add_ecs_service(setup);
                release("    ecs:\n      progressDeadline: 30m\n", "")
            },
            in_wait: |s| {
                ecs_status(s).and_then(|e| e.lifecycle_stage.as_deref()) == Some("BAKE_TIME")
            },
            world_done: Some(|aws, status| {
                ecs_stage(aws, status).is_some_and(|stage| stage != "BAKE_TIME")
            }),
            ending: Ending::Timed,
            rollback_call: "ecs:StopServiceDeployment",
            event_after: EVENT_AFTER,
        },
        Scenario {
            key: "ecs/canary-bake",
            strategy: "ecs",
            wait: "15-minute canary bake (10%)",
            build: |aws| {
                let mut setup = EcsServiceSetup::new("prod", NAME, EcsDeploymentStrategy::Canary);
                setup.canary = Some((10.0, 15));
                setup.bake_time_minutes = Some(0);
                aws.add_ecs_service(setup);
                release("    ecs:\n      progressDeadline: 30m\n", "")
            },
            in_wait: |s| {
                ecs_status(s).and_then(|e| e.lifecycle_stage.as_deref())
                    == Some("PRODUCTION_TRAFFIC_SHIFT")
            },
            world_done: Some(|aws, status| {
                ecs_stage(aws, status).is_some_and(|stage| stage != "PRODUCTION_TRAFFIC_SHIFT")
            }),
            ending: Ending::Timed,
            rollback_call: "ecs:StopServiceDeployment",
            event_after: EVENT_AFTER,
        },
    ]
}

/// The percent of production traffic on target group B (the candidate's group in the first
/// deployment), read from the production listener of the CodeDeploy world.
fn production_percent_on_b(aws: &SimAws) -> f64 {
    let Some((listener, group_b)) = PRODUCTION_LISTENER.with(|l| l.borrow().clone()) else {
        return 0.0;
    };
    aws.route(&listener)
        .and_then(|route| route.percent_to(&group_b))
        .unwrap_or(0.0)
}

thread_local! {
    /// The CodeDeploy world's production listener (each run builds its world on this thread).
    static PRODUCTION_LISTENER: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// What to set off during the wait.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Nothing: measure the whole wait.
    None,
    Promote(f64),
    Alarm(f64),
}

/// One run of a scenario.
#[derive(Debug, Default)]
struct Run {
    /// The wait, as the status showed it: [first sample in it, last sample in it].
    entered: Option<Timestamp>,
    left: Option<Timestamp>,
    /// When the world ended the wait (bakes), or the status said it would (timed pauses).
    ends_at: Option<Timestamp>,
    /// When the event was set off.
    event_at: Option<Timestamp>,
    events: Vec<CallEvent>,
    store_events: Vec<CallEvent>,
    phase_after: Option<Phase>,
}

async fn run_once(scenario: &Scenario, event: Event, wait_limit: Duration) -> Run {
    let clock = Clock::fixed_epoch();
    let aws = SimAws::new(clock.clone());
    let store = SimStore::new(clock.clone());
    let yaml = (scenario.build)(&aws);
    aws.add_alarm(ALARM, AlarmType::MetricAlarm, AlarmState::Ok);
    let recorder = Recorder::new(clock.clone(), true);
    let store_recorder = Recorder::new(clock.clone(), true);
    let ctx = Context::new(
        Arc::new(RecordingStore {
            inner: Arc::new(store.clone()),
            recorder: store_recorder.clone(),
        }),
        Arc::new(RecordingAws {
            inner: Arc::new(aws.clone()),
            recorder: recorder.clone(),
        }),
        clock.clone(),
        ControllerConfig {
            jitter_seed: Some(7),
            ..ControllerConfig::default()
        },
        ControllerState::new(),
    );
    let documents =
        switchyard::model::parse_documents(&yaml).expect("benchmark documents are valid");
    store
        .put_spec(SpecWrite {
            name: NAME.into(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&documents[0].spec).expect("a spec serializes"),
            precondition: SpecPrecondition::Any,
            written_by: "bench".into(),
            written_at: clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .expect("spec written");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));

    let mut run = Run::default();
    tokio::time::sleep(SAMPLE_OFFSET).await;
    let started = clock.now();
    loop {
        tokio::time::sleep(SAMPLE).await;
        let now = clock.now();
        let Some(status) = store.get(NAME).await.ok().flatten().and_then(|r| r.status) else {
            continue;
        };
        let waiting = (scenario.in_wait)(&status);
        if run.entered.is_none() {
            if waiting {
                run.entered = Some(now);
            } else if common::between(started, now) > REACH_LIMIT {
                panic!(
                    "{}: the wait was never reached: {}",
                    scenario.key, status.message
                );
            }
            continue;
        }
        let entered = run.entered.expect("entered");
        if let Some(ends) = task_sets_status(&status).and_then(|t| t.pause_ends_at) {
            run.ends_at = Some(ends);
        }
        if run.ends_at.is_none()
            && let Some(done) = scenario.world_done
            && done(&aws, &status)
        {
            run.ends_at = Some(now);
        }
        if waiting {
            run.left = Some(now);
        }
        let into = common::between(entered, now);
        if run.event_at.is_none() {
            match event {
                Event::Promote(offset) | Event::Alarm(offset)
                    if into.as_secs_f64() >= scenario.event_after.as_secs_f64() + offset =>
                {
                    run.event_at = Some(now);
                    if matches!(event, Event::Promote(_)) {
                        let generation = store.get(NAME).await.unwrap().unwrap().generation;
                        store
                            .put_request(
                                NAME,
                                RequestKind::Promote,
                                OperatorRequest {
                                    generation,
                                    requested_by: "arn:aws:iam::111122223333:user/bench".into(),
                                    requested_at: now,
                                    full: false,
                                },
                            )
                            .await
                            .expect("request written");
                    } else {
                        aws.set_alarm(ALARM, AlarmState::Alarm);
                    }
                }
                _ => {}
            }
        }
        let done = match event {
            Event::None => (!waiting && run.left.is_some()) || into >= wait_limit,
            // The reaction plus a little: until the controller answered, or a minute.
            Event::Promote(_) | Event::Alarm(_) => run
                .event_at
                .is_some_and(|at| common::between(at, now) > Duration::from_secs(60)),
        };
        if done {
            // A timed wait is followed until the call after its end.
            if matches!(event, Event::None)
                && matches!(scenario.ending, Ending::Timed)
                && !waiting
                && run.ends_at.is_some()
            {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            run.phase_after = Some(status.phase);
            break;
        }
    }
    let _ = stop.send(());
    let _ = controller.await;
    run.events = recorder.events();
    run.store_events = store_recorder.events();
    run
}

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

fn first_call_after<'e>(
    events: &'e [CallEvent],
    after: Timestamp,
    operation: Option<&str>,
) -> Option<&'e CallEvent> {
    events.iter().find(|e| {
        e.at >= after
            && e.operation != "cloudwatch:DescribeAlarms"
            && operation.is_none_or(|op| e.operation == op)
    })
}

/// The release's own calls (the alarm watcher's apart) in [from, to).
fn own_calls(events: &[CallEvent], from: Timestamp, to: Timestamp) -> Vec<&CallEvent> {
    events
        .iter()
        .filter(|e| e.at >= from && e.at < to && e.operation != "cloudwatch:DescribeAlarms")
        .collect()
}

fn by_operation(events: &[&CallEvent]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(e.operation.to_string()).or_default() += 1;
    }
    counts
}

/// The most calls in any half-open 60-second window starting at a call.
fn max_per_minute(events: &[&CallEvent]) -> usize {
    events
        .iter()
        .map(|start| {
            events
                .iter()
                .filter(|e| e.at >= start.at && secs(start.at, e.at) < 60.0)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The distinct instants the controller looked (made calls) at, as seconds into the wait.
fn looks(events: &[&CallEvent], entered: Timestamp) -> Vec<f64> {
    let mut at: Vec<f64> = events
        .iter()
        .map(|e| (secs(entered, e.at) * 10.0).round() / 10.0)
        .collect();
    at.dedup();
    at
}

fn measure(scenario: &Scenario, args: &Args) -> serde_json::Value {
    eprintln!("waits: {} ...", scenario.key);
    let wait_limit = match scenario.ending {
        Ending::Promote { .. } => Duration::from_secs(args.manual_wait_minutes * 60),
        Ending::Timed => Duration::from_secs(3600),
    };
    let runtime = common::paused_runtime;
    let whole = runtime().block_on(run_once(scenario, Event::None, wait_limit));
    let entered = whole.entered.expect("the wait was reached");
    let left = whole.left.expect("the wait was seen");
    // The wait as measured: from the first sample in it to the last (the pass that entered
    // it and the one that ended it are not part of it).
    let calls = own_calls(&whole.events, entered, left);
    let minutes = secs(entered, left) / 60.0;
    let per_minute = calls.len() as f64 / minutes;
    let alarm_calls = whole
        .events
        .iter()
        .filter(|e| e.at >= entered && e.at < left && e.operation == "cloudwatch:DescribeAlarms")
        .count();
    let store_writes = whole
        .store_events
        .iter()
        .filter(|e| e.at >= entered && e.at < left && e.operation == "dynamodb:UpdateItem")
        .count();
    let store_reads = whole
        .store_events
        .iter()
        .filter(|e| e.at >= entered && e.at < left && e.operation == "dynamodb:GetItem")
        .count();
    // The end of a timed wait: the first call of the release after it.
    let end = whole.ends_at.map(|ends| {
        let next = first_call_after(&whole.events, ends, None);
        json!({
            "ends_at_s": secs(entered, ends),
            "next_call": next.map(|e| e.operation),
            "next_call_after_s": next.map(|e| secs(ends, e.at)),
        })
    });

    let mut reactions = BTreeMap::new();
    let mut trials = Vec::new();
    if let Ending::Promote { call } = scenario.ending {
        trials.push(("promote", call, EVENT_OFFSETS_SECS.map(Event::Promote)));
    }
    trials.push((
        "alarm",
        scenario.rollback_call,
        EVENT_OFFSETS_SECS.map(Event::Alarm),
    ));
    for (what, call, events) in trials {
        let samples: Vec<f64> = events
            .into_iter()
            .map(|event| {
                let run = runtime().block_on(run_once(scenario, event, wait_limit));
                let at = run.event_at.expect("the event was set off");
                first_call_after(&run.events, at, Some(call))
                    .map(|e| secs(at, e.at))
                    .unwrap_or(f64::INFINITY)
            })
            .collect();
        reactions.insert(
            what,
            json!({
                "call": call,
                "after_s": samples,
                "max_s": samples.iter().cloned().fold(0.0, f64::max),
            }),
        );
    }
    json!({
        "key": scenario.key,
        "strategy": scenario.strategy,
        "wait": scenario.wait,
        "measured_minutes": minutes,
        "own_calls": calls.len(),
        "own_calls_by_operation": by_operation(&calls),
        "own_calls_per_minute": per_minute,
        "own_calls_max_in_60s": max_per_minute(&calls),
        "within_budget": per_minute <= BUDGET_CALLS_PER_MINUTE,
        "looks_at_s": looks(&calls, entered),
        "status_writes": store_writes,
        "store_reads": store_reads,
        "alarm_watcher_describe_alarms_per_minute": alarm_calls as f64 / minutes,
        "end_of_wait": end,
        "reactions": reactions,
        "phase_after": whole.phase_after.map(|p| p.to_string()),
    })
}

fn main() {
    let args = Args::parse();
    let results: Vec<serde_json::Value> = scenarios()
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|k| k == s.key))
        .map(|s| measure(s, &args))
        .collect();
    let report = json!({
        "benchmark": "waits",
        "environment": common::environment(),
        "method": {
            "world": "the simulated AWS, paused tokio time (virtual seconds), one release, controller defaults (resync 60 s)",
            "window": "from the first status sample in the wait to the last (sampled every 0.25 s): the passes that enter and end the wait are not counted",
            "own_calls": "every AWS call of the release's passes (port calls, timestamped by a decorator); the alarm watcher's DescribeAlarms apart",
            "reactions": "virtual seconds from the event (a promote request written, the alarm set to ALARM) to the controller's call, in three trials at different offsets into the wait",
            "manual_wait_minutes": args.manual_wait_minutes,
        },
        "targets": {
            "own_calls_per_minute_max": BUDGET_CALLS_PER_MINUTE,
            "promote_reaction_max_s": TARGET_PROMOTE_SECS,
            "alarm_reaction": "within the alarm watcher's period (2 s) plus a pass",
        },
        "results": results,
    });
    let path = common::write_report("waits", &report, args.out.as_deref());
    print_summary(&report);
    println!("\nreport: {}", path.display());
}

fn print_summary(report: &serde_json::Value) {
    let rows: Vec<Vec<String>> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let f = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
            vec![
                r["key"].as_str().unwrap_or("").to_string(),
                format!("{:.1}", r["measured_minutes"].as_f64().unwrap_or(0.0)),
                r["own_calls"].to_string(),
                f(&r["own_calls_per_minute"]),
                r["own_calls_max_in_60s"].to_string(),
                r["status_writes"].to_string(),
                f(&r["alarm_watcher_describe_alarms_per_minute"]),
                f(&r["reactions"]["promote"]["max_s"]),
                f(&r["reactions"]["alarm"]["max_s"]),
                f(&r["end_of_wait"]["next_call_after_s"]),
            ]
        })
        .collect();
    common::print_table(
        &[
            "wait",
            "minutes",
            "calls",
            "calls/min",
            "max in 60 s",
            "status writes",
            "DescribeAlarms/min (shared)",
            "promote -> call s",
            "alarm -> call s",
            "end -> next call s",
        ],
        &rows,
    );
}
