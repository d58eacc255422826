//! The cost of `decide`: decisions per second on one core (thread CPU time) and allocations
//! per decision (a counting global allocator), for a mix of lifecycle states.
//!
//! The inputs are not hand-made: each state is reached by running the real controller
//! against the simulated AWS in paused time, and the `Observed` value is then built by the
//! controller's own observation (`controller::observe_release`, what a pass does before it
//! decides), so the sizes of statuses, histories and deployments are the real ones.
//!
//! `cargo bench --bench decide [-- --seconds 0.5 --out PATH]`

#[path = "../examples/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::model::{OperatorRequest, RequestKind};
use switchyard::ports::{AlarmState, CreateDeploymentRequest, ReadyAction, ReleaseStore};
use switchyard::reconcile::{
    Action, ActionResult, DesiredRelease, Observed, decide, record_outcome,
};
use switchyard::sim::{BlueGreenSetup, SimAws, SimStore};
use switchyard::state::ControllerState;

use common::ReleaseOptions;

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

const CLUSTER: &str = "prod";
const NAME: &str = "web";
const ALARM: &str = "web-5xx";

/// One lifecycle state: the inputs of `decide` as the controller would have them.
struct Case {
    name: &'static str,
    desired: DesiredRelease,
    observed: Observed,
    now: Timestamp,
}

fn main() {
    let mut seconds = 0.5_f64;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds takes a number")
            }
            "--out" => out = args.next().map(PathBuf::from),
            "--help" | "-h" => {
                println!(
                    "decide: decisions per second (thread CPU time) and allocations per decision\n\n\
                     usage: cargo bench --bench decide [-- --seconds S] [--out PATH]\n\n\
                     --seconds S   CPU time measured per state [default: 0.5]\n\
                     --out PATH    the JSON report [default: target/bench/decide.json]"
                );
                return;
            }
            // `cargo bench` passes `--bench`; a name filter is not supported.
            _ => {}
        }
    }
    let budget = Duration::from_secs_f64(seconds);

    let cases = common::paused_runtime().block_on(build_cases());
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for case in &cases {
        let decision = decide(&case.desired, &case.observed, case.now);
        let action = decision.action.as_ref().map(|a| a.as_str()).unwrap_or("-");
        let m = measure(budget, || {
            black_box(decide(
                black_box(&case.desired),
                black_box(&case.observed),
                case.now,
            ));
        });
        rows.push(vec![
            case.name.to_string(),
            decision.status.phase.as_str().to_string(),
            action.to_string(),
            format!("{:.0}", m.per_second),
            format!("{:.2}", m.ns_per_decision / 1000.0),
            format!("{:.1}", m.allocations),
            format!("{:.0}", m.bytes),
        ]);
        results.push(json!({
            "state": case.name,
            "phase": decision.status.phase.as_str(),
            "action": action,
            "decisions_per_cpu_second": m.per_second,
            "cpu_us_per_decision": m.ns_per_decision / 1000.0,
            "allocations_per_decision": m.allocations,
            "allocated_bytes_per_decision": m.bytes,
            "iterations": m.iterations,
        }));
    }
    // The mix: every state in turn, equally often.
    let mut next = 0;
    let mix = measure(budget * 2, || {
        let case = &cases[next % cases.len()];
        next += 1;
        black_box(decide(
            black_box(&case.desired),
            black_box(&case.observed),
            case.now,
        ));
    });
    rows.push(vec![
        "mix (all states in turn)".into(),
        String::new(),
        String::new(),
        format!("{:.0}", mix.per_second),
        format!("{:.2}", mix.ns_per_decision / 1000.0),
        format!("{:.1}", mix.allocations),
        format!("{:.0}", mix.bytes),
    ]);

    let report = json!({
        "benchmark": "decide",
        "environment": common::environment(),
        "method": {
            "cpu_seconds_per_state": seconds,
            "clock": "CLOCK_THREAD_CPUTIME_ID (one core)",
            "allocations": "counting #[global_allocator]; a decision and dropping it",
        },
        "states": results,
        "mix": {
            "decisions_per_cpu_second": mix.per_second,
            "cpu_us_per_decision": mix.ns_per_decision / 1000.0,
            "allocations_per_decision": mix.allocations,
            "allocated_bytes_per_decision": mix.bytes,
        },
    });
    let path = common::write_report("decide", &report, out.as_deref());
    println!("decide(): one core, thread CPU time; allocations counted per decision");
    common::print_table(
        &[
            "state",
            "phase",
            "action",
            "decisions/s",
            "us/decision",
            "allocs",
            "bytes",
        ],
        &rows,
    );
    println!("\nreport: {}", path.display());
}

struct Measured {
    iterations: u64,
    per_second: f64,
    ns_per_decision: f64,
    allocations: f64,
    bytes: f64,
}

/// Runs `f` in batches until `budget` of this thread's CPU time has passed.
fn measure(budget: Duration, mut f: impl FnMut()) -> Measured {
    const BATCH: u64 = 256;
    for _ in 0..BATCH * 4 {
        f();
    }
    let alloc_before = common::alloc_snapshot();
    let started = common::thread_cpu();
    let mut iterations = 0;
    let spent = loop {
        for _ in 0..BATCH {
            f();
        }
        iterations += BATCH;
        let spent = common::thread_cpu() - started;
        if spent >= budget {
            break spent;
        }
    };
    let alloc_after = common::alloc_snapshot();
    let n = iterations as f64;
    Measured {
        iterations,
        per_second: n / spent.as_secs_f64(),
        ns_per_decision: spent.as_nanos() as f64 / n,
        allocations: (alloc_after.allocations - alloc_before.allocations) as f64 / n,
        bytes: (alloc_after.allocated_bytes - alloc_before.allocated_bytes) as f64 / n,
    }
}

/// A simulated world with one service, driven by the real controller.
struct Scenario {
    clock: Clock,
    sim: SimAws,
    store: SimStore,
}

impl Scenario {
    fn new(edit: impl FnOnce(&mut BlueGreenSetup)) -> Self {
        let clock = Clock::fixed_epoch();
        let sim = SimAws::new(clock.clone());
        let mut setup = BlueGreenSetup::new(CLUSTER, NAME);
        edit(&mut setup);
        sim.add_bluegreen_service(setup);
        sim.set_alarm(ALARM, AlarmState::Ok);
        Self {
            store: SimStore::new(clock.clone()),
            sim,
            clock,
        }
    }

    async fn apply(&self, edit: impl FnOnce(&mut ReleaseOptions)) {
        let mut release = ReleaseOptions::new(CLUSTER, NAME);
        edit(&mut release);
        self.store
            .put_spec(release.write(self.clock.now()))
            .await
            .expect("the spec is written");
    }

    fn context(&self) -> Context {
        Context::new(
            Arc::new(self.store.clone()),
            Arc::new(self.sim.clone()),
            self.clock.clone(),
            ControllerConfig {
                jitter_seed: Some(7),
                ..ControllerConfig::default()
            },
            ControllerState::new(),
        )
    }

    async fn run_for(&self, duration: Duration) {
        controller::run(self.context(), tokio::time::sleep(duration)).await;
    }

    async fn request(&self, kind: RequestKind) {
        let generation = self.store.peek(NAME).expect("release").generation;
        self.store
            .put_request(
                NAME,
                kind,
                OperatorRequest {
                    generation,
                    requested_by: "arn:aws:iam::111122223333:user/bench".into(),
                    requested_at: self.clock.now(),
                    full: false,
                },
            )
            .await
            .expect("the request is written");
    }

    /// Performs the registration `case` decides and records it in the status, as a pass
    /// does, without going on to the next step.
    async fn register_as_decided(&self, case: &Case) {
        let decision = decide(&case.desired, &case.observed, case.now);
        let Some(action @ Action::RegisterTaskDefinition(registration)) = &decision.action else {
            panic!("the first pass registers, got {:?}", decision.action);
        };
        let registered = self
            .sim
            .ports()
            .ecs
            .register_task_definition(
                &registration.base,
                &registration.containers,
                &registration.tags,
            )
            .await
            .expect("registered");
        let status = record_outcome(
            &decision,
            action,
            &Ok(ActionResult::Registered(registered)),
            NAME,
            case.now,
        );
        let version = self.store.peek(NAME).expect("release").status_version;
        self.store
            .write_status(NAME, &status, version, None)
            .await
            .expect("the status is written");
    }

    /// The inputs of the next pass, as the controller would observe them now.
    async fn case(&self, name: &'static str) -> Case {
        let record = self.store.peek(NAME).expect("release");
        // A fresh context: no cache changes what the pass sees.
        let (desired, observed) = controller::observe_release(&self.context(), &record)
            .await
            .expect("the simulation answers");
        Case {
            name,
            desired,
            observed,
            now: self.clock.now(),
        }
    }
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

async fn build_cases() -> Vec<Case> {
    let canary = |s: &mut BlueGreenSetup| {
        s.deployment_config = "CodeDeployDefault.ECSCanary10Percent15Minutes".into()
    };
    let with_alarm = |r: &mut ReleaseOptions| r.alarms = vec![ALARM.to_string()];
    let mut cases = Vec::new();

    let world = Scenario::new(|_| {});
    world.apply(|_| {}).await;
    let first = world.case("new release, first pass").await;
    // The controller registers and creates in one go; stop in between, as its pass does.
    world.register_as_decided(&first).await;
    cases.push(first);
    cases.push(world.case("candidate registered, creating").await);

    let world = Scenario::new(canary);
    world.apply(with_alarm).await;
    world.run_for(minutes(3)).await;
    cases.push(world.case("mid-canary at 10%, alarms OK").await);
    world.sim.set_alarm(ALARM, AlarmState::Alarm);
    cases.push(world.case("mid-canary at 10%, alarm firing").await);
    world.run_for(minutes(5)).await;
    cases.push(world.case("rolled back").await);

    let world =
        Scenario::new(|s| s.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 });
    world.apply(|r| r.manual = true).await;
    world.run_for(minutes(2)).await;
    cases.push(world.case("Ready, awaiting promotion").await);
    world.request(RequestKind::Promote).await;
    cases.push(world.case("Ready, promote requested").await);

    let world = Scenario::new(|_| {});
    world.apply(|_| {}).await;
    world.run_for(minutes(10)).await;
    cases.push(world.case("healthy steady state").await);
    world.apply(|r| r.image_tag = "3.0.0".into()).await;
    cases.push(world.case("new generation of a healthy release").await);

    let world = Scenario::new(|_| {});
    world.apply(|_| {}).await;
    world.run_for(minutes(10)).await;
    roll_back_by_hand(&world).await;
    world.run_for(minutes(15)).await;
    cases.push(world.case("drifted").await);
    cases
}

/// Someone deploys revision 1 again from the console: the live version drifts.
async fn roll_back_by_hand(world: &Scenario) {
    let ports = world.sim.ports();
    let first = ports
        .ecs
        .describe_task_definition(&format!("{NAME}:1"))
        .await
        .expect("revision 1");
    let appspec = format!(
        r#"{{"version":0.0,"Resources":[{{"TargetService":{{"Type":"AWS::ECS::Service","Properties":{{"TaskDefinition":"{}","LoadBalancerInfo":{{"ContainerName":"{NAME}","ContainerPort":8080}}}}}}}}]}}"#,
        first.arn
    );
    ports
        .codedeploy
        .create_deployment(&CreateDeploymentRequest {
            application: NAME.into(),
            deployment_group: format!("{NAME}-prod"),
            appspec_content: appspec,
            description: "emergency rollback".into(),
            deployment_config: None,
        })
        .await
        .expect("the console deployment starts");
}
