//! One deployment, for each of the five predefined ECS deployment configs, in the simulated
//! AWS (paused tokio time): the AWS calls the controller makes for the whole deployment
//! against the minimum sequence (defined in BENCHMARKS.md and in `minimum_sequence` below),
//! and the controller's added latency, in virtual time, at each gate:
//!
//! - new desired version written -> CreateDeployment;
//! - Ready reached (the simulation's transition time) -> ContinueDeployment (automatic
//!   promotion);
//! - promote request written -> ContinueDeployment (manual promotion);
//! - alarm set to ALARM -> StopDeployment.
//!
//! Calls are counted and timestamped by a decorator around the simulation's ports
//! (`common::RecordingAws`), so the controller's calls are told apart from the benchmark's own
//! look-ups. The gates that depend on when something happens relative to the controller's
//! polling are measured in several trials, each starting the event at another phase.
//!
//! `cargo run --release --example deployment`

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jiff::Timestamp;
use serde_json::json;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig, RunSummary};
use switchyard::model::{OperatorRequest, Phase, ReleaseStatus, RequestKind};
use switchyard::ports::{AlarmState, ReadyAction, ReleaseStore};
use switchyard::sim::{BlueGreenHandles, BlueGreenSetup, Fault, FaultRule, SimAws, SimStore};
use switchyard::state::ControllerState;

use common::{Recorder, RecordingAws, RecordingStore, ReleaseOptions};

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

const CONFIGS: [&str; 5] = [
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
];

const CLUSTER: &str = "prod";
const SERVICE: &str = "web";
const ALARM: &str = "web-5xx";
/// Gate trials start their event this far apart (plus half a second): not a multiple of any
/// whole-second poll interval, so with five trials the events fall at different phases of any
/// poll interval from 2 to 60 s.
const TRIAL_SPACING_SECS: f64 = 12.7;
/// The most virtual time any one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(3 * 3600);
/// The targets.
const TARGET_CALL_RATIO: f64 = 1.5;
const TARGET_GATE_SECS: f64 = 2.0;

/// One deployment per predefined ECS config: calls against the minimum, latency per gate.
#[derive(Debug, Parser)]
#[command(name = "deployment")]
struct Args {
    /// Deployment configs to measure, comma-separated [default: the five predefined ECS ones].
    #[arg(long, value_delimiter = ',')]
    configs: Vec<String>,
    /// Trials per gate; each trial runs its own world with another AWS call latency (and,
    /// for the promote request and the alarm, another delay), so the events fall at other
    /// phases of the controller's polling.
    #[arg(long, default_value_t = 5)]
    trials: u32,
    /// Latency of every simulated AWS call in the first trial, in milliseconds (the
    /// simulation answers at once otherwise, which would align every transition with the
    /// controller's polls).
    #[arg(long, default_value_t = 20)]
    call_latency_ms: u64,
    /// How much more latency each further trial gets, in milliseconds.
    #[arg(long, default_value_t = 20)]
    call_latency_step_ms: u64,
    /// The deployment group's termination wait (the original task set is kept this long
    /// after all traffic moved; the controller still watches the alarms then).
    #[arg(long, default_value_t = 5)]
    termination_wait_minutes: u32,
    /// Where to write the JSON report [default: target/bench/deployment.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let configs: Vec<String> = if args.configs.is_empty() {
        CONFIGS.iter().map(|c| c.to_string()).collect()
    } else {
        args.configs.clone()
    };
    let results: Vec<serde_json::Value> = configs
        .iter()
        .map(|config| {
            eprintln!("deployment: {config} ...");
            common::paused_runtime().block_on(measure_config(config, &args))
        })
        .collect();
    let report = json!({
        "benchmark": "deployment",
        "environment": common::environment(),
        "method": {
            "trials_per_gate": args.trials,
            "call_latency_ms_per_trial": (0..args.trials).map(|t| args.latency(t).as_millis() as u64).collect::<Vec<_>>(),
            "termination_wait_minutes": args.termination_wait_minutes,
            "controller": "defaults (resync 60 s, concurrency 8), one release, one service with 2 tasks",
            "minimum_sequence": "mutations: DescribeTaskDefinition (base), RegisterTaskDefinition, CreateDeployment; \
                observing the new version before creating: DescribeServices, GetDeploymentGroup, ListDeployments (active); \
                per state change of the deployment (8 lifecycle events, plus each traffic step after the first): GetDeployment + GetDeploymentTarget; \
                the end: GetDeployment (Succeeded) + DescribeServices (the new live task definition)",
        },
        "targets": {
            "calls_over_minimum_max": TARGET_CALL_RATIO,
            "controller_added_latency_per_gate_max_s": TARGET_GATE_SECS,
        },
        "results": results,
    });
    let path = common::write_report("deployment", &report, args.out.as_deref());
    print_summary(&report);
    println!("\nreport: {}", path.display());
}

/// Traffic steps of a predefined config: how many times production traffic moves.
fn traffic_steps(config: &str) -> u64 {
    match config {
        "CodeDeployDefault.ECSAllAtOnce" => 1,
        "CodeDeployDefault.ECSCanary10Percent5Minutes"
        | "CodeDeployDefault.ECSCanary10Percent15Minutes" => 2,
        "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
        | "CodeDeployDefault.ECSLinear10PercentEvery3Minutes" => 10,
        _ => 1,
    }
}

/// The least a controller must call to carry one deployment with this config from a new
/// desired version to Healthy, by operation (automatic promotion, no Ready wait, no alarms).
fn minimum_sequence(config: &str) -> BTreeMap<String, u64> {
    // 8 lifecycle events, and each traffic step after the first (the first is AllowTraffic
    // starting).
    let state_changes = 8 + traffic_steps(config) - 1;
    [
        // The mutations.
        ("ecs:DescribeTaskDefinition", 1),
        ("ecs:RegisterTaskDefinition", 1),
        ("codedeploy:CreateDeployment", 1),
        // Observing the new version: the live service (AppSpec, nothing in flight), the
        // group (exists, its listener), no active deployment in the group. And at the end,
        // the new live task definition for the status.
        ("ecs:DescribeServices", 2),
        ("codedeploy:GetDeploymentGroup", 1),
        ("codedeploy:ListDeployments", 1),
        // Each state change: its status, and its lifecycle event and traffic weights; the
        // end: its status only.
        ("codedeploy:GetDeployment", state_changes + 1),
        ("codedeploy:GetDeploymentTarget", state_changes),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_string(), n))
    .collect()
}

/// One simulated world with the controller running against it.
struct World {
    clock: Clock,
    sim: SimAws,
    store: SimStore,
    recorder: Recorder,
    handles: BlueGreenHandles,
    latency: Duration,
    stop: tokio::sync::oneshot::Sender<()>,
    controller: tokio::task::JoinHandle<RunSummary>,
}

impl Args {
    /// The latency of every simulated AWS call in trial `trial`.
    fn latency(&self, trial: u32) -> Duration {
        Duration::from_millis(self.call_latency_ms + self.call_latency_step_ms * u64::from(trial))
    }
}

/// How the world's group and release are set up.
struct Setup<'a> {
    config: &'a str,
    latency: Duration,
    ready_action: ReadyAction,
    termination_wait_minutes: u32,
    manual: bool,
    alarms: bool,
}

impl World {
    /// Starts the controller (defaults, fixed jitter seed) with no release yet, and lets its
    /// first resync pass.
    async fn start(setup: &Setup<'_>) -> World {
        let clock = Clock::fixed_epoch();
        let sim = SimAws::new(clock.clone());
        let store = SimStore::new(clock.clone());
        let mut service = BlueGreenSetup::new(CLUSTER, SERVICE);
        service.deployment_config = setup.config.to_string();
        service.ready_action = setup.ready_action;
        service.termination_wait_minutes = setup.termination_wait_minutes;
        let handles = sim.add_bluegreen_service(service);
        if setup.alarms {
            sim.set_alarm(ALARM, AlarmState::Ok);
        }
        if !setup.latency.is_zero() {
            sim.inject(FaultRule::always("*", Fault::Latency(setup.latency)));
        }
        let recorder = Recorder::new(clock.clone(), true);
        let ctx = Context::new(
            Arc::new(RecordingStore {
                inner: Arc::new(store.clone()),
                recorder: recorder.clone(),
            }),
            Arc::new(RecordingAws {
                inner: Arc::new(sim.clone()),
                recorder: recorder.clone(),
            }),
            clock.clone(),
            ControllerConfig {
                jitter_seed: Some(7),
                ..ControllerConfig::default()
            },
            ControllerState::new(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(controller::run(ctx, async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        World {
            clock,
            sim,
            store,
            recorder,
            handles,
            latency: setup.latency,
            stop,
            controller,
        }
    }

    /// Writes the release as `apply` would (straight to the store, so it is not counted as
    /// the controller's); returns the write time.
    async fn write_release(&self, setup: &Setup<'_>) -> Timestamp {
        let mut release = ReleaseOptions::new(CLUSTER, SERVICE);
        release.deployment_config = Some(setup.config.to_string());
        release.manual = setup.manual;
        if setup.alarms {
            release.alarms = vec![ALARM.to_string()];
        }
        let at = self.clock.now();
        self.store
            .put_spec(release.write(at))
            .await
            .expect("the spec is written");
        at
    }

    fn status(&self) -> Option<ReleaseStatus> {
        self.store.peek(SERVICE).and_then(|r| r.status)
    }

    /// Waits (polling every `step` of virtual time, uncounted) until `done` holds.
    async fn wait_until(&self, what: &str, step: Duration, done: impl Fn(&World) -> bool) {
        let started = tokio::time::Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < RUN_LIMIT,
                "{what}: not reached within {RUN_LIMIT:?}; status: {:?}",
                self.status().map(|s| (s.phase, s.message))
            );
            tokio::time::sleep(step).await;
        }
    }

    /// Production traffic has started to move to the replacement's target group.
    fn production_shifted(&self) -> bool {
        self.sim
            .listener(&self.handles.production_listener_arn)
            .is_some_and(|l| {
                l.forward.iter().any(|w| {
                    w.target_group_arn == self.handles.target_group_arns[1] && w.weight > 0
                })
            })
    }

    /// When the simulation put the controller's deployment into `Ready`: the end of
    /// `BeforeAllowTraffic` (read from the simulation directly, not through the recorder).
    async fn ready_at(&self) -> Option<Timestamp> {
        let deployment = self.sim.all_deployments().into_iter().next()?;
        let target = self
            .sim
            .ports()
            .codedeploy
            .get_deployment_target(&deployment.id, &format!("{CLUSTER}:{SERVICE}"))
            .await
            .ok()?;
        target
            .lifecycle_events
            .iter()
            .find(|e| e.name == "BeforeAllowTraffic")?
            .end_time
    }

    /// The gate from `from` to the controller's first `operation` call at or after it.
    fn sample(&self, from: Timestamp, operation: &str) -> Sample {
        let events = self.recorder.events();
        let to = events
            .iter()
            .find(|e| e.operation == operation && e.at >= from)
            .map(|e| e.at);
        let calls_between = to.map_or(0, |to| {
            events
                .iter()
                .filter(|e| e.at >= from && e.at < to && !e.operation.starts_with("dynamodb:"))
                .count()
        });
        Sample {
            secs: to.map_or(f64::NAN, |to| common::between(from, to).as_secs_f64()),
            call_latency: self.latency,
            calls_between,
        }
    }

    async fn finish(self) -> RunSummary {
        let _ = self.stop.send(());
        self.controller.await.expect("the controller ends")
    }
}

/// One measurement of a gate.
struct Sample {
    /// Virtual seconds from the event to the controller's call.
    secs: f64,
    /// The latency of each simulated AWS call in this trial.
    call_latency: Duration,
    /// The controller's AWS calls in between (its look at the world, and any concurrent
    /// calls): with the latency, the part of the gate that is not waiting for the next look.
    calls_between: usize,
}

/// Latencies of one gate over its trials, in virtual seconds.
fn gate(samples: &[Sample]) -> serde_json::Value {
    let secs: Vec<f64> = samples.iter().map(|s| s.secs).collect();
    let max = secs.iter().copied().fold(f64::NAN, f64::max);
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    json!({
        "samples": samples.iter().map(|s| json!({
            "s": (s.secs * 1000.0).round() / 1000.0,
            "call_latency_ms": s.call_latency.as_millis() as u64,
            "calls_between": s.calls_between,
        })).collect::<Vec<_>>(),
        "max_s": max,
        "mean_s": mean,
        "meets_target": max <= TARGET_GATE_SECS,
    })
}

async fn measure_config(config: &str, args: &Args) -> serde_json::Value {
    let mut write_to_create = Vec::new();

    // A. The whole deployment, for the call count: automatic promotion, no Ready wait, no
    //    alarms.
    let setup = Setup {
        config,
        latency: args.latency(0),
        ready_action: ReadyAction::ContinueDeployment,
        termination_wait_minutes: args.termination_wait_minutes,
        manual: false,
        alarms: false,
    };
    let world = World::start(&setup).await;
    let before = world.recorder.counts();
    let written = world.write_release(&setup).await;
    world
        .wait_until("Healthy", Duration::from_secs(1), |w| {
            w.status()
                .is_some_and(|s| s.phase == Phase::Healthy && s.observed_generation == 1)
        })
        .await;
    let deployment_duration = common::between(written, world.clock.now());
    let calls = common::count_delta(&world.recorder.counts(), &before);
    write_to_create.push(world.sample(written, "codedeploy:CreateDeployment"));
    // When the controller looked at the deployment (one GetDeployment per look), from the
    // write: shows where the calls beyond the minimum go.
    let looks: Vec<f64> = world
        .recorder
        .events()
        .iter()
        .filter(|e| e.operation == "codedeploy:GetDeployment")
        .map(|e| (common::between(written, e.at).as_secs_f64() * 10.0).round() / 10.0)
        .collect();
    // Every call of the run, by operation, in seconds from the write.
    let mut calls_at: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for event in world.recorder.events().iter().filter(|e| e.at >= written) {
        calls_at
            .entry(event.operation)
            .or_default()
            .push((common::between(written, event.at).as_secs_f64() * 10.0).round() / 10.0);
    }
    let deployments = world.sim.all_deployments().len();
    let summary = world.finish().await;

    let minimum = minimum_sequence(config);
    let aws_calls: BTreeMap<&String, &u64> = calls
        .iter()
        .filter(|(op, _)| !op.starts_with("dynamodb:"))
        .collect();
    let store_calls: BTreeMap<&String, &u64> = calls
        .iter()
        .filter(|(op, _)| op.starts_with("dynamodb:"))
        .collect();
    let aws_total: u64 = aws_calls.values().copied().sum();
    let minimum_total: u64 = minimum.values().sum();
    let ratio = aws_total as f64 / minimum_total as f64;

    // B. Automatic promotion out of a Ready wait: Ready -> ContinueDeployment.
    let mut auto_promotion = Vec::new();
    for trial in 0..args.trials {
        let setup = Setup {
            config,
            latency: args.latency(trial),
            ready_action: ReadyAction::StopDeployment { wait_minutes: 60 },
            termination_wait_minutes: args.termination_wait_minutes,
            manual: false,
            alarms: false,
        };
        let world = World::start(&setup).await;
        let written = world.write_release(&setup).await;
        world
            .wait_until("ContinueDeployment", Duration::from_millis(100), |w| {
                w.recorder.count("codedeploy:ContinueDeployment") > 0
            })
            .await;
        write_to_create.push(world.sample(written, "codedeploy:CreateDeployment"));
        let ready_at = world
            .ready_at()
            .await
            .expect("the deployment reached Ready");
        auto_promotion.push(world.sample(ready_at, "codedeploy:ContinueDeployment"));
        world.finish().await;
    }

    // C. Manual promotion: promote request -> ContinueDeployment, at several phases.
    let mut manual_promotion = Vec::new();
    for trial in 0..args.trials {
        let setup = Setup {
            config,
            latency: args.latency(trial),
            ready_action: ReadyAction::StopDeployment { wait_minutes: 60 },
            termination_wait_minutes: args.termination_wait_minutes,
            manual: true,
            alarms: false,
        };
        let world = World::start(&setup).await;
        let written = world.write_release(&setup).await;
        world
            .wait_until("AwaitingPromotion", Duration::from_secs(1), |w| {
                w.status()
                    .is_some_and(|s| s.phase == Phase::AwaitingPromotion)
            })
            .await;
        tokio::time::sleep(trial_offset(trial)).await;
        let requested_at = world.clock.now();
        world
            .store
            .put_request(
                SERVICE,
                RequestKind::Promote,
                OperatorRequest {
                    generation: 1,
                    requested_by: "arn:aws:iam::111122223333:user/bench".into(),
                    requested_at,
                    full: false,
                },
            )
            .await
            .expect("the request is written");
        world
            .wait_until("ContinueDeployment", Duration::from_millis(100), |w| {
                w.recorder.count("codedeploy:ContinueDeployment") > 0
            })
            .await;
        write_to_create.push(world.sample(written, "codedeploy:CreateDeployment"));
        manual_promotion.push(world.sample(requested_at, "codedeploy:ContinueDeployment"));
        world.finish().await;
    }

    // D. An alarm while production traffic is on the candidate: ALARM -> StopDeployment,
    //    at several phases.
    let mut alarm_to_stop = Vec::new();
    let (mut alarm_checks, mut watched_secs) = (0_u64, 0.0_f64);
    for trial in 0..args.trials {
        let setup = Setup {
            config,
            latency: args.latency(trial),
            ready_action: ReadyAction::ContinueDeployment,
            termination_wait_minutes: args.termination_wait_minutes.max(1),
            manual: false,
            alarms: true,
        };
        let world = World::start(&setup).await;
        let written = world.write_release(&setup).await;
        world
            .wait_until(
                "production traffic shifted",
                Duration::from_millis(100),
                |w| w.production_shifted(),
            )
            .await;
        let shifted_at = world.clock.now();
        let before = world.recorder.count("cloudwatch:DescribeAlarms");
        tokio::time::sleep(trial_offset(trial)).await;
        // The alarm checks while traffic is on the candidate.
        alarm_checks += world.recorder.count("cloudwatch:DescribeAlarms") - before;
        watched_secs += common::between(shifted_at, world.clock.now()).as_secs_f64();
        world.sim.set_alarm(ALARM, AlarmState::Alarm);
        let alarmed_at = world.clock.now();
        world
            .wait_until("StopDeployment", Duration::from_millis(100), |w| {
                w.recorder.count("codedeploy:StopDeployment") > 0
            })
            .await;
        write_to_create.push(world.sample(written, "codedeploy:CreateDeployment"));
        alarm_to_stop.push(world.sample(alarmed_at, "codedeploy:StopDeployment"));
        world.finish().await;
    }

    json!({
        "config": config,
        "calls": {
            "aws_by_operation": aws_calls,
            "aws_total": aws_total,
            "minimum_by_operation": minimum,
            "minimum_total": minimum_total,
            "aws_over_minimum": ratio,
            "meets_target": ratio <= TARGET_CALL_RATIO,
            "store_by_operation": store_calls,
            // Write to Healthy seen (the benchmark looks once a virtual second).
            "virtual_duration_s": deployment_duration.as_secs_f64(),
            "deployments_created": deployments,
            "failed_passes": summary.failed_passes,
            "looks_at_s": looks,
            "calls_at_s": calls_at,
        },
        "gates": {
            "write_to_create_deployment": gate(&write_to_create),
            "ready_to_continue_auto": gate(&auto_promotion),
            "promote_request_to_continue": gate(&manual_promotion),
            "alarm_to_stop_deployment": gate(&alarm_to_stop),
        },
        // DescribeAlarms calls per minute while production traffic was on the candidate,
        // over all alarm trials.
        "alarm_checks_per_minute_while_shifted": alarm_checks as f64 * 60.0 / watched_secs.max(f64::MIN_POSITIVE),
    })
}

/// When trial `i`'s event happens after its precondition is seen: 0.5 s, 12.5 s, 24.5 s, ...
fn trial_offset(trial: u32) -> Duration {
    Duration::from_secs_f64(0.5 + TRIAL_SPACING_SECS * f64::from(trial))
}

fn print_summary(report: &serde_json::Value) {
    let empty = Vec::new();
    let results = report["results"].as_array().unwrap_or(&empty);
    let f = |v: &serde_json::Value, digits: usize| match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    };
    let short = |config: &serde_json::Value| {
        config
            .as_str()
            .unwrap_or("?")
            .trim_start_matches("CodeDeployDefault.")
            .to_string()
    };
    println!(
        "one deployment: AWS calls against the minimum sequence; added latency per gate (virtual s, max over trials)"
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let c = &r["calls"];
            let g = &r["gates"];
            vec![
                short(&r["config"]),
                c["aws_total"].to_string(),
                c["minimum_total"].to_string(),
                format!("{}x", f(&c["aws_over_minimum"], 2)),
                f(&g["write_to_create_deployment"]["max_s"], 2),
                f(&g["ready_to_continue_auto"]["max_s"], 2),
                f(&g["promote_request_to_continue"]["max_s"], 2),
                format!(
                    "{} ({})",
                    f(&g["alarm_to_stop_deployment"]["max_s"], 2),
                    f(&g["alarm_to_stop_deployment"]["mean_s"], 2)
                ),
            ]
        })
        .collect();
    common::print_table(
        &[
            "config",
            "calls",
            "minimum",
            "ratio",
            "write->create",
            "ready->continue",
            "promote->continue",
            "alarm->stop (mean)",
        ],
        &rows,
    );
    // Calls by operation: measured/minimum per config.
    let mut operations: Vec<String> = Vec::new();
    for r in results {
        for key in ["aws_by_operation", "minimum_by_operation"] {
            if let Some(map) = r["calls"][key].as_object() {
                for op in map.keys() {
                    if !operations.contains(op) {
                        operations.push(op.clone());
                    }
                }
            }
        }
    }
    operations.sort();
    println!("\ncalls by operation (measured/minimum)");
    let rows: Vec<Vec<String>> = operations
        .iter()
        .map(|op| {
            let mut row = vec![op.clone()];
            for r in results {
                let measured = r["calls"]["aws_by_operation"][op].as_u64().unwrap_or(0);
                let minimum = r["calls"]["minimum_by_operation"][op].as_u64().unwrap_or(0);
                row.push(format!("{measured}/{minimum}"));
            }
            row
        })
        .collect();
    let headers: Vec<String> = std::iter::once("operation".to_string())
        .chain(results.iter().map(|r| short(&r["config"])))
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    common::print_table(&headers, &rows);
}
