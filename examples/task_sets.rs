//! `strategy.taskSets` in the simulated AWS (paused tokio time), issue 15's performance
//! figures:
//!
//! - **canary**: one release, 10% → 5 s bake → 50% → 5 s bake → switch → clean-up, in several
//!   trials with another AWS call latency each: the API calls of the whole rollout against
//!   the minimal sequence (`minimal_sequence` below, and BENCHMARKS.md), and how late each due
//!   step (the end of a timed pause) is acted on;
//! - **bake**: one release with a 10-minute bake: API calls per minute while it bakes;
//! - **fleet**: N releases (default 100) written at once, each on its own `EXTERNAL` service
//!   and load balancer in one account and region: every due step's lateness, and the ELB
//!   `Describe*` requests per second against ELB's describe rate (a token bucket of 40,
//!   refilled at 10 per second, per account and region);
//! - **large fleet**: the same with `--large-releases` (default 1,000) releases and ELB's
//!   describe rate enforced, the controller within its API budget (`apiBudgets`, ELB 8 a
//!   second, bursts of 20): how late due steps run when the describe rate, not the
//!   controller, is the limit.
//!
//! Calls are read from the simulation itself (`SimAws::call_times`: every API call with the
//! virtual time it reached AWS), so a port call that is several API calls (reading a route
//! before weighting it) counts as what AWS would see. The weights written are taken from a
//! decorator around the load balancer port, per route.
//!
//! `cargo run --release --example task_sets`

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use jiff::Timestamp;
use serde_json::json;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::model::{AuditAction, Phase, StrategyStatus};
use switchyard::ports::{
    AwsError, AwsPorts, AwsProvider, ExpectedShare, Listener, LoadBalancer, ReleaseStore, Route,
    SpecPrecondition, SpecWrite, TargetGroup, TargetHealth, WeightedTargetGroup,
};
use switchyard::sim::{ExternalHandles, ExternalSetup, Fault, FaultRule, SimAws, SimStore};
use switchyard::state::ControllerState;

use common::{REGISTRY, Recorder, RecordingStore};

const CLUSTER: &str = "prod";
/// ELB's describe rate per account and Region (aws-facts.md): a bucket of 40, 10 a second.
const ELB_DESCRIBE_BURST: f64 = 40.0;
const ELB_DESCRIBE_REFILL_PER_S: f64 = 10.0;
/// The targets.
const TARGET_CALL_RATIO: f64 = 1.5;
const TARGET_DUE_STEP_S: f64 = 2.0;
const TARGET_BAKE_CALLS_PER_MIN: f64 = 2.0;
/// The most virtual time one run may take, per 100 releases (at least an hour).
const RUN_LIMIT_PER_100: Duration = Duration::from_secs(3600);
/// How long the run goes on once every release is done, for the controller's last look.
const LINGER: Duration = Duration::from_secs(5);
/// How often the benchmark reads the statuses (uncounted) to see when each pause ends, per
/// 100 releases (the pause ends are read from the status, so a sample a second still sees
/// each 30 s pause; only when a release became Healthy is rounded to it).
const SAMPLE_PER_100: Duration = Duration::from_millis(100);

#[derive(Debug, Parser)]
#[command(name = "task_sets")]
struct Args {
    /// Releases rolling out at once in the fleet run.
    #[arg(long, default_value_t = 100)]
    releases: usize,
    /// Releases rolling out at once in the large fleet run, with ELB's rate enforced (0: no
    /// such run).
    #[arg(long, default_value_t = 1000)]
    large_releases: usize,
    /// The fleet's two bakes, in seconds each.
    #[arg(long, default_value_t = 30)]
    fleet_bake_s: u64,
    /// The AWS call latency in the fleet run, in milliseconds.
    #[arg(long, default_value_t = 50)]
    fleet_latency_ms: u64,
    /// Trials of the single canary; trial t gives every AWS call 20·(t+1) ms of latency.
    #[arg(long, default_value_t = 5)]
    trials: u32,
    /// The long bake of the bake run, in minutes.
    #[arg(long, default_value_t = 10)]
    bake_minutes: u64,
    /// Where to write the JSON report [default: target/bench/task_sets.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let runtime = || common::paused_runtime();

    let mut canary = Vec::new();
    for trial in 0..args.trials {
        let latency = Duration::from_millis(20 * u64::from(trial + 1));
        eprintln!("task_sets: canary, call latency {latency:?} ...");
        let plan = Plan {
            releases: 1,
            steps: vec![
                Step::Weight(10),
                Step::Pause(5),
                Step::Weight(50),
                Step::Pause(5),
            ],
            latency,
            elb_rate_enforced: false,
        };
        canary.push(runtime().block_on(run(&plan)));
    }
    eprintln!("task_sets: bake of {} minutes ...", args.bake_minutes);
    let bake_plan = Plan {
        releases: 1,
        steps: vec![Step::Weight(10), Step::Pause(args.bake_minutes * 60)],
        latency: Duration::from_millis(50),
        elb_rate_enforced: false,
    };
    let bake = runtime().block_on(run(&bake_plan));
    eprintln!("task_sets: fleet of {} ...", args.releases);
    let fleet_plan = Plan {
        releases: args.releases,
        steps: vec![
            Step::Weight(10),
            Step::Pause(args.fleet_bake_s),
            Step::Weight(50),
            Step::Pause(args.fleet_bake_s),
        ],
        latency: Duration::from_millis(args.fleet_latency_ms),
        elb_rate_enforced: false,
    };
    let fleet = runtime().block_on(run(&fleet_plan));
    eprintln!(
        "task_sets: fleet of {} with ELB's describe rate enforced ...",
        args.releases
    );
    let large_plan = Plan {
        releases: args.large_releases,
        steps: fleet_plan.steps.clone(),
        latency: fleet_plan.latency,
        elb_rate_enforced: true,
    };
    let limited = runtime().block_on(run(&Plan {
        elb_rate_enforced: true,
        ..fleet_plan
    }));
    let large = (args.large_releases > 0).then(|| {
        eprintln!(
            "task_sets: fleet of {} with ELB's describe rate enforced ...",
            args.large_releases
        );
        runtime().block_on(run(&large_plan))
    });
    let large_json = large.as_ref().map(|large| {
        let late = large.due_steps_late_s();
        json!({
            "releases": args.large_releases,
            "all_healthy": large.all_healthy,
            "virtual_s_to_all_healthy": large.healthy_after_s,
            "due_steps": late.len(),
            "due_steps_missed": large.due_steps_missed(),
            "due_step_late_s": summary(&late),
            "due_step_late_histogram_s": histogram(&late),
            "due_step_late_parts": large.lateness_parts(),
            "calls_per_release": large.calls_per_release(),
            "throttled_calls": large.throttled,
            "not_healthy": large.not_healthy,
            "passes": large.passes,
            "failed_passes": large.failed_passes,
            "virtual_s_run": large.virtual_s_run,
            "calls_by_operation": large.calls,
            "elb_describe": large.elb_describe_rate(),
        })
    });

    let minimal = minimal_sequence(&canary_steps());
    let minimal_total: u64 = minimal.values().sum();
    let canary_json: Vec<_> = canary
        .iter()
        .map(|r| {
            let total = r.calls_per_release();
            json!({
                "call_latency_ms": r.latency.as_millis() as u64,
                "all_healthy": r.all_healthy,
                "calls": total,
                "minimal": minimal_total,
                "calls_over_minimal": total / minimal_total as f64,
                "calls_by_operation": r.calls,
                "store_calls": r.store_calls,
                "due_steps_late_s": r.due_steps_late_s(),
                "due_steps_missed": r.due_steps_missed(),
                "virtual_s_to_healthy": r.healthy_after_s,
                "timeline": r.timeline(),
            })
        })
        .collect();
    let bake_rate = bake.bake_calls_per_minute();
    let fleet_elb = fleet.elb_describe_rate();
    let fleet_late = fleet.due_steps_late_s();
    let limited_late = limited.due_steps_late_s();
    let report = json!({
        "benchmark": "task_sets",
        "environment": common::environment(),
        "method": {
            "controller": "defaults (resync 60 s, concurrency 8, jitter seed 7); services of 2 tasks, each with its own load balancer (a production and a test listener)",
            "calls": "API calls as they reach the simulated AWS (SimAws::call_times), the controller's only",
            "due_step": "from the end of a timed pause (the status's pauseEndsAt) to the end of the controller's next weight write on the production listener (its read of the route and ModifyListener done)",
            "minimal_sequence": minimal,
            "elb_describe_rate": format!("token bucket of {ELB_DESCRIBE_BURST} refilled at {ELB_DESCRIBE_REFILL_PER_S}/s over every elbv2:Describe* call of the account and Region"),
            "api_budget": format!("{:?}", switchyard::controller::BudgetSettings::default().by_service),
        },
        "targets": {
            "calls_over_minimal_max": TARGET_CALL_RATIO,
            "due_step_late_max_s": TARGET_DUE_STEP_S,
            "bake_calls_per_release_per_minute_max": TARGET_BAKE_CALLS_PER_MIN,
            "elb_describe": {"burst": ELB_DESCRIBE_BURST, "per_second": ELB_DESCRIBE_REFILL_PER_S},
        },
        "results": {
            "canary": canary_json,
            "bake": {
                "bake_minutes": args.bake_minutes,
                "all_healthy": bake.all_healthy,
                "calls_per_minute_during_the_bake": bake_rate.0,
                "calls_during_the_bake": bake_rate.1,
                "calls": bake.calls_per_release(),
                "calls_by_operation": bake.calls,
            },
            "fleet": {
                "releases": args.releases,
                "bake_s": args.fleet_bake_s,
                "call_latency_ms": args.fleet_latency_ms,
                "all_healthy": fleet.all_healthy,
                "virtual_s_to_all_healthy": fleet.healthy_after_s,
                "due_steps": fleet_late.len(),
                "due_steps_missed": fleet.due_steps_missed(),
                "due_step_late_s": summary(&fleet_late),
                "calls_per_release": fleet.calls_per_release(),
                "calls_by_operation": fleet.calls,
                "store_calls": fleet.store_calls,
                "elb_describe": fleet_elb,
            },
            "fleet_at_elb_rate": {
                "releases": args.releases,
                "all_healthy": limited.all_healthy,
                "virtual_s_to_all_healthy": limited.healthy_after_s,
                "due_steps": limited_late.len(),
                "due_steps_missed": limited.due_steps_missed(),
                "due_step_late_s": summary(&limited_late),
                "due_step_late_parts": limited.lateness_parts(),
                "calls_per_release": limited.calls_per_release(),
                "throttled_calls": limited.throttled,
                "not_healthy": limited.not_healthy,
                "passes": limited.passes,
                "failed_passes": limited.failed_passes,
                "calls_by_operation": limited.calls,
                "elb_describe": limited.elb_describe_rate(),
            },
            "large_fleet_at_elb_rate": large_json,
        },
    });
    let path = common::write_report("task_sets", &report, args.out.as_deref());
    print_summary(&report);
    println!("\nreport: {}", path.display());
}

// ----- the plan --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    Weight(u32),
    /// A timed pause, in seconds.
    Pause(u64),
}

fn canary_steps() -> Vec<Step> {
    vec![
        Step::Weight(10),
        Step::Pause(5),
        Step::Weight(50),
        Step::Pause(5),
    ]
}

struct Plan {
    releases: usize,
    steps: Vec<Step>,
    latency: Duration,
    /// Whether the simulated AWS enforces ELB's describe rate (throttling beyond it).
    elb_rate_enforced: bool,
}

fn release_name(i: usize) -> String {
    format!("web-{i:03}")
}

fn release_yaml(name: &str, handles: &ExternalHandles, steps: &[Step]) -> String {
    let test = handles
        .test_listener_arn
        .as_deref()
        .expect("a test listener");
    let steps: String = steps
        .iter()
        .map(|step| match step {
            Step::Weight(w) => format!("        - setWeight: {w}\n"),
            Step::Pause(s) => format!("        - pause: {{duration: {s}s}}\n"),
        })
        .collect();
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: {CLUSTER}, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {REGISTRY}/{name}:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [{name}-tg-a, {name}-tg-b]\n      testListeners: [\"{test}\"]\n      steps:\n{steps}      scaleDownDelay: 30s\n"
    )
}

/// The least a controller must call to carry one canary with `steps` from a new desired
/// version to Healthy with the old task set deleted, by API operation, for a service whose
/// load balancer has one production and one test listener (both listeners' default actions):
/// each mutation, what it needs to be made, and one look at each state it leads to (the
/// contract verifies each action by reading it back before the next). Waiting needs no call:
/// the end of a pause is known in advance; a controller that polls while the candidate
/// starts pays for each look beyond the one that sees it steady.
fn minimal_sequence(steps: &[Step]) -> BTreeMap<String, u64> {
    // Weight writes on the production listener: each distinct step weight below 100, and 100
    // at the switch.
    let mut weights: Vec<u32> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Weight(w) if *w > 0 && *w < 100 => Some(*w),
            _ => None,
        })
        .collect();
    weights.dedup();
    // The production listener per weight; the test listener already forwards to the
    // candidate group (ExternalSetup's), so it is read (by the discovery) but not written.
    let writes = weights.len() as u64 + 1;
    [
        // The candidate: its base, and its registration.
        ("ecs:DescribeTaskDefinition", 1),
        ("ecs:RegisterTaskDefinition", 1),
        // The service and its task sets: before creating, then one look at each state the
        // controller must see (the candidate steady, primary, scaled down, deleted).
        ("ecs:DescribeServices", 5),
        ("ecs:CreateTaskSet", 1),
        ("ecs:UpdateServicePrimaryTaskSet", 1),
        // Clean-up after scaleDownDelay: scale to 0, delete.
        ("ecs:UpdateTaskSet", 1),
        ("ecs:DeleteTaskSet", 1),
        // The pair, and the listeners and rules of its load balancer (one DescribeRules per
        // listener), before creating.
        ("elbv2:DescribeTargetGroups", 1),
        ("elbv2:DescribeRules", 2),
        // The candidate's targets healthy, once.
        ("elbv2:DescribeTargetHealth", 1),
        // Each weight write: ModifyListener needs the whole action, so the listener is read
        // first; and each write is verified by reading it back before the next step. Plus
        // the discovery's DescribeListeners.
        ("elbv2:ModifyListener", writes),
        ("elbv2:DescribeListeners", 1 + 2 * writes),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_string(), n))
    .collect()
}

// ----- the run ---------------------------------------------------------------------------

/// A weight written to a route, by the controller: when the write was done (the port's read
/// of the route and its ModifyListener or ModifyRule returned).
#[derive(Debug, Clone)]
struct Write {
    /// When the port call began (its budget token taken).
    started: Timestamp,
    at: Timestamp,
    route: String,
}

/// A load balancer port call: when it began (after its budget token), and for which release.
#[derive(Debug, Clone)]
struct PortCall {
    at: Timestamp,
    release: Option<usize>,
    operation: &'static str,
}

/// The release an ARN or a target group reference belongs to (`web-NNN` in its name).
fn release_of(arn: &str) -> Option<usize> {
    let at = arn.find("web-")? + 4;
    let digits: String = arn[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

struct RunResult {
    latency: Duration,
    written_at: Timestamp,
    releases: usize,
    all_healthy: bool,
    healthy_after_s: f64,
    calls: BTreeMap<String, u64>,
    store_calls: BTreeMap<&'static str, u64>,
    call_times: Vec<(Timestamp, &'static str, &'static str)>,
    /// Per release: its production listener, and every distinct pause end its status showed
    /// (with when the benchmark first saw it).
    pause_ends: Vec<(String, Vec<(Timestamp, Timestamp)>)>,
    writes: Vec<Write>,
    /// Every load balancer port call, when it began (after its budget token).
    port_calls: Vec<PortCall>,
    /// The bake run: when the pause began (its end minus its length) and ended.
    first_pause: Option<(Timestamp, Timestamp)>,
    /// Calls throttled by the enforced ELB describe rate.
    throttled: u64,
    /// The releases that did not end Healthy, by their last phase and message.
    not_healthy: BTreeMap<String, usize>,
    /// The controller loop's passes, and those that failed (retried with backoff).
    passes: u64,
    failed_passes: u64,
    /// Virtual seconds from the writes to the end of the run.
    virtual_s_run: f64,
}

impl RunResult {
    fn calls_per_release(&self) -> f64 {
        self.calls.values().sum::<u64>() as f64 / self.releases as f64
    }

    /// For each pause end: the seconds until the next weight write on the release's
    /// production listener (`None`: there was none).
    fn due_steps(&self) -> Vec<Option<f64>> {
        self.acted_steps()
            .into_iter()
            .map(|step| step.map(|(end, _, write)| common::between(end, write.at).as_secs_f64()))
            .collect()
    }

    /// For each pause end: the end, when the benchmark first saw it in the status, and the
    /// next weight write on the release's production listener (`None`: there was none).
    fn acted_steps(&self) -> Vec<Option<(Timestamp, Timestamp, &Write)>> {
        self.pause_ends
            .iter()
            .flat_map(|(route, ends)| {
                ends.iter().map(move |(end, seen)| {
                    self.writes
                        .iter()
                        .filter(|w| &w.route == route && w.at >= *end)
                        .min_by_key(|w| w.at)
                        .map(|w| (*end, *seen, w))
                })
            })
            .collect()
    }

    /// Where each due step's lateness goes: the part before the status showed the pause
    /// (the look that started it, and wrote its end, came after the end: its wait for the
    /// budget was longer than the pause), the wait from then to the write's start (the pass
    /// at the pause's end, its looks, and its write's token), and the write itself; and the
    /// load balancer calls of the release in that wait, by port operation.
    fn lateness_parts(&self) -> serde_json::Value {
        let mut shown_late = Vec::new();
        let mut waited = Vec::new();
        let mut writing = Vec::new();
        let mut calls_while_waiting: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (end, seen, write) in self.acted_steps().into_iter().flatten() {
            let shown = seen.max(end);
            shown_late.push(common::between(end, shown).as_secs_f64());
            waited.push(common::between(shown, write.started.max(shown)).as_secs_f64());
            writing.push(common::between(write.started, write.at).as_secs_f64());
            let release = release_of(&write.route);
            for call in &self.port_calls {
                if call.release == release && call.at >= end && call.at < write.started {
                    *calls_while_waiting.entry(call.operation).or_default() += 1;
                }
            }
        }
        for parts in [&mut shown_late, &mut waited, &mut writing] {
            parts.sort_by(f64::total_cmp);
        }
        json!({
            "status_showed_the_pause_after_its_end_s": summary(&shown_late),
            "then_until_the_write_began_s": summary(&waited),
            "the_write_s": summary(&writing),
            "sampling_s": "the status is sampled every 100 ms per 100 releases: the first part is rounded up to it",
            "load_balancer_port_calls_while_waiting": calls_while_waiting,
        })
    }

    /// Every call, as `[seconds since the release was written, "service:Operation"]`.
    fn timeline(&self) -> Vec<(f64, String)> {
        self.call_times
            .iter()
            .map(|(at, service, op)| {
                let since = common::between(self.written_at, *at).as_secs_f64();
                ((since * 1000.0).round() / 1000.0, format!("{service}:{op}"))
            })
            .collect()
    }

    fn due_steps_late_s(&self) -> Vec<f64> {
        let mut late: Vec<f64> = self.due_steps().into_iter().flatten().collect();
        late.sort_by(f64::total_cmp);
        late
    }

    fn due_steps_missed(&self) -> usize {
        self.due_steps().iter().filter(|d| d.is_none()).count()
    }

    /// API calls per minute while the first pause ran, and their count by operation.
    fn bake_calls_per_minute(&self) -> (f64, BTreeMap<String, u64>) {
        let Some((from, to)) = self.first_pause else {
            return (f64::NAN, BTreeMap::new());
        };
        let mut by_op = BTreeMap::new();
        for (at, service, op) in &self.call_times {
            if *at >= from && *at < to {
                *by_op.entry(format!("{service}:{op}")).or_default() += 1;
            }
        }
        let minutes = common::between(from, to).as_secs_f64() / 60.0;
        (by_op.values().sum::<u64>() as f64 / minutes, by_op)
    }

    /// The ELB describe calls against the bucket: the most in any one second, and how many
    /// would have been throttled.
    fn elb_describe_rate(&self) -> serde_json::Value {
        let times: Vec<Timestamp> = self
            .call_times
            .iter()
            .filter(|(_, service, op)| *service == "elbv2" && op.starts_with("Describe"))
            .map(|(at, _, _)| *at)
            .collect();
        let mut max_in_a_second = 0usize;
        let mut start = 0;
        for (end, at) in times.iter().enumerate() {
            while common::between(times[start], *at) >= Duration::from_secs(1) {
                start += 1;
            }
            max_in_a_second = max_in_a_second.max(end - start + 1);
        }
        let mut tokens = ELB_DESCRIBE_BURST;
        let mut lowest = tokens;
        let mut throttled = 0u64;
        let mut last: Option<Timestamp> = None;
        for at in &times {
            if let Some(last) = last {
                let refill = common::between(last, *at).as_secs_f64() * ELB_DESCRIBE_REFILL_PER_S;
                tokens = (tokens + refill).min(ELB_DESCRIBE_BURST);
            }
            last = Some(*at);
            if tokens >= 1.0 {
                tokens -= 1.0;
            } else {
                throttled += 1;
            }
            lowest = lowest.min(tokens);
        }
        let span = match (times.first(), times.last()) {
            (Some(first), Some(last)) => common::between(*first, *last).as_secs_f64(),
            _ => 0.0,
        };
        json!({
            "calls": times.len(),
            "over_seconds": span,
            "mean_per_second": if span > 0.0 { times.len() as f64 / span } else { 0.0 },
            "max_in_any_second": max_in_a_second,
            "bucket_lowest": lowest,
            "would_be_throttled": throttled,
        })
    }
}

async fn run(plan: &Plan) -> RunResult {
    let clock = Clock::fixed_epoch();
    let sim = SimAws::new(clock.clone());
    let store = SimStore::new(clock.clone());
    let names: Vec<String> = (0..plan.releases).map(release_name).collect();
    let handles: Vec<ExternalHandles> = names
        .iter()
        .map(|name| sim.add_external_service(ExternalSetup::new(CLUSTER, name)))
        .collect();
    if !plan.latency.is_zero() {
        sim.inject(FaultRule::always("*", Fault::Latency(plan.latency)));
    }
    if plan.elb_rate_enforced {
        sim.limit_rate(
            "elbv2",
            "Describe",
            ELB_DESCRIBE_BURST,
            ELB_DESCRIBE_REFILL_PER_S,
        );
    }
    let writes = Arc::new(Mutex::new(Vec::new()));
    let port_calls = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder::new(clock.clone(), false);
    let ctx = Context::new(
        Arc::new(RecordingStore {
            inner: Arc::new(store.clone()),
            recorder: recorder.clone(),
        }),
        Arc::new(WeightLog {
            sim: sim.clone(),
            clock: clock.clone(),
            writes: writes.clone(),
            calls: port_calls.clone(),
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

    sim.keep_call_times();
    let calls_before = sim.call_counts();
    let started = clock.now();
    for (name, handles) in names.iter().zip(&handles) {
        let yaml = release_yaml(name, handles, &plan.steps);
        let documents = switchyard::model::parse_documents(&yaml).expect("a valid document");
        store
            .put_spec(SpecWrite {
                name: name.clone(),
                labels: BTreeMap::new(),
                spec: serde_json::to_value(&documents[0].spec).expect("a spec"),
                precondition: SpecPrecondition::Any,
                written_by: "bench".into(),
                written_at: clock.now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .expect("the spec is written");
    }

    // Per release: every distinct pause end its status showed, with when the benchmark first
    // saw it (the sample after the status write that set it).
    let mut pause_ends: Vec<Vec<(Timestamp, Timestamp)>> = vec![Vec::new(); names.len()];
    let mut first_pause: Option<(Timestamp, Timestamp)> = None;
    let mut healthy_at: Vec<Option<Timestamp>> = vec![None; names.len()];
    let pause_length = plan.steps.iter().find_map(|s| match s {
        Step::Pause(s) => Some(Duration::from_secs(*s)),
        _ => None,
    });
    let waited = tokio::time::Instant::now();
    let hundreds = u32::try_from(plan.releases.div_ceil(100).max(1)).unwrap_or(u32::MAX);
    let run_limit = RUN_LIMIT_PER_100 * hundreds;
    let sample = SAMPLE_PER_100 * hundreds;
    loop {
        let mut done = true;
        for (i, name) in names.iter().enumerate() {
            let status = store.peek(name).and_then(|r| r.status);
            if let Some(StrategyStatus::TaskSets(t)) =
                status.as_ref().and_then(|s| s.strategy.as_ref())
                && let Some(end) = t.pause_ends_at
                && !pause_ends[i].iter().any(|(e, _)| *e == end)
            {
                pause_ends[i].push((end, clock.now()));
                if i == 0 && first_pause.is_none() {
                    let length = jiff::SignedDuration::try_from(pause_length.unwrap_or_default())
                        .unwrap_or_default();
                    first_pause = Some((end - length, end));
                }
            }
            let healthy = status.as_ref().is_some_and(|s| s.phase == Phase::Healthy);
            if healthy && healthy_at[i].is_none() {
                healthy_at[i] = Some(clock.now());
            }
            let cleaned_up = sim
                .service(CLUSTER, name)
                .is_some_and(|s| s.task_sets.len() == 1);
            done &= healthy && cleaned_up;
        }
        if done || waited.elapsed() > run_limit {
            // The look that reads back the last action (the deletion) comes after it.
            tokio::time::sleep(LINGER).await;
            break;
        }
        tokio::time::sleep(sample).await;
    }
    let _ = stop.send(());
    let summary = controller.await.unwrap_or_default();
    // How each release ended, for those that did not end Healthy: its phase and message.
    let mut not_healthy: BTreeMap<String, usize> = BTreeMap::new();
    for name in &names {
        let status = store.peek(name).and_then(|r| r.status);
        if let Some(status) = status.filter(|s| s.phase != Phase::Healthy) {
            *not_healthy
                .entry(format!("{}: {}", status.phase, status.message))
                .or_default() += 1;
        }
    }

    let calls_after = sim.call_counts();
    let calls = calls_after
        .iter()
        .map(|(op, n)| (op.clone(), n - calls_before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let all_healthy = healthy_at.iter().all(Option::is_some);
    let healthy_after_s = healthy_at
        .iter()
        .flatten()
        .map(|at| common::between(started, *at).as_secs_f64())
        .fold(0.0, f64::max);
    let writes = writes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    RunResult {
        latency: plan.latency,
        written_at: started,
        releases: plan.releases,
        all_healthy,
        healthy_after_s,
        calls,
        store_calls: recorder.counts(),
        call_times: sim.call_times(),
        pause_ends: handles
            .iter()
            .map(|h| h.production_listener_arn.clone())
            .zip(pause_ends)
            .collect(),
        writes,
        port_calls: port_calls.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        first_pause,
        throttled: sim.throttled_calls(),
        not_healthy,
        passes: summary.passes,
        failed_passes: summary.failed_passes,
        virtual_s_run: common::between(started, clock.now()).as_secs_f64(),
    }
}

// ----- the weight log --------------------------------------------------------------------

/// The simulation's ports, with every weight write logged with its route and time.
struct WeightLog {
    sim: SimAws,
    clock: Clock,
    writes: Arc<Mutex<Vec<Write>>>,
    calls: Arc<Mutex<Vec<PortCall>>>,
}

impl AwsProvider for WeightLog {
    fn home(&self) -> switchyard::model::Home {
        self.sim.home()
    }

    fn ports_for(
        &self,
        region: &str,
        session: Option<&switchyard::ports::RoleSession>,
    ) -> AwsPorts {
        let ports = self.sim.ports_for(region, session);
        AwsPorts {
            load_balancer: Arc::new(LoggedLoadBalancer {
                inner: ports.load_balancer.clone(),
                clock: self.clock.clone(),
                writes: self.writes.clone(),
                calls: self.calls.clone(),
            }),
            ..ports
        }
    }

    fn sts(&self) -> Arc<dyn switchyard::ports::Sts> {
        self.sim.sts()
    }
}

struct LoggedLoadBalancer {
    inner: Arc<dyn LoadBalancer>,
    clock: Clock,
    writes: Arc<Mutex<Vec<Write>>>,
    calls: Arc<Mutex<Vec<PortCall>>>,
}

impl LoggedLoadBalancer {
    /// Logs a port call beginning now, for the release `arn` names.
    fn log(&self, operation: &'static str, arn: &str) -> Timestamp {
        let at = self.clock.now();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PortCall {
                at,
                release: release_of(arn),
                operation,
            });
        at
    }
}

#[async_trait]
impl LoadBalancer for LoggedLoadBalancer {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        self.log("describe_listener", listener_arn);
        self.inner.describe_listener(listener_arn).await
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        let first = references.first().map_or("", String::as_str);
        self.log("describe_target_groups", first);
        self.inner.describe_target_groups(references).await
    }

    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        self.log("describe_routes", load_balancer_arn);
        self.inner.describe_routes(load_balancer_arn).await
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        self.log("describe_route", arn);
        self.inner.describe_route(arn).await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        self.log("describe_target_health", target_group_arn);
        self.inner.describe_target_health(target_group_arn).await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        let started = self.log("set_forward_weights", route_arn);
        let result = self
            .inner
            .set_forward_weights(route_arn, weights, expected)
            .await;
        let at = self.clock.now();
        if result.is_ok() {
            self.writes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Write {
                    started,
                    at,
                    route: route_arn.to_string(),
                });
        }
        result
    }
}

// ----- output ----------------------------------------------------------------------------

/// How many of `late` fall in each bucket of seconds: `[0,2)`, `[2,5)`, `[5,10)`, `[10,30)`,
/// `[30,60)`, `[60,120)`, `[120,∞)`.
fn histogram(late: &[f64]) -> serde_json::Value {
    let edges = [2.0, 5.0, 10.0, 30.0, 60.0, 120.0, f64::INFINITY];
    let mut counts = serde_json::Map::new();
    let mut low = 0.0;
    for high in edges {
        let n = late.iter().filter(|l| **l >= low && **l < high).count();
        let key = if high.is_finite() {
            format!("{low}-{high}")
        } else {
            format!("{low}-")
        };
        counts.insert(key, json!(n));
        low = high;
    }
    serde_json::Value::Object(counts)
}

fn summary(sorted: &[f64]) -> serde_json::Value {
    if sorted.is_empty() {
        return json!(null);
    }
    json!({
        "p50": common::percentile(sorted, 50.0),
        "p90": common::percentile(sorted, 90.0),
        "p99": common::percentile(sorted, 99.0),
        "max": sorted[sorted.len() - 1],
        "mean": sorted.iter().sum::<f64>() / sorted.len() as f64,
    })
}

fn print_summary(report: &serde_json::Value) {
    let results = &report["results"];
    println!("\none canary (10% → 5 s → 50% → 5 s → switch → clean-up), per trial:");
    let rows: Vec<Vec<String>> = results["canary"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let late = r["due_steps_late_s"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let max = late.iter().filter_map(|v| v.as_f64()).fold(0.0, f64::max);
            vec![
                format!("{} ms", r["call_latency_ms"]),
                r["calls"].to_string(),
                r["minimal"].to_string(),
                format!(
                    "{:.2}×",
                    r["calls_over_minimal"].as_f64().unwrap_or(f64::NAN)
                ),
                format!("{max:.2}"),
                r["due_steps_missed"].to_string(),
                r["all_healthy"].to_string(),
            ]
        })
        .collect();
    common::print_table(
        &[
            "latency",
            "calls",
            "minimal",
            "calls / minimal",
            "due step late max (s)",
            "missed",
            "healthy",
        ],
        &rows,
    );
    let bake = &results["bake"];
    println!(
        "\na {}-minute bake: {:.2} calls per minute ({})",
        bake["bake_minutes"],
        bake["calls_per_minute_during_the_bake"]
            .as_f64()
            .unwrap_or(f64::NAN),
        bake["calls_during_the_bake"]
    );
    let fleet = &results["fleet"];
    println!(
        "\n{} releases at once ({} s bakes, {} ms per call): healthy {} after {:.1} s; {} due steps, late p50 {} / p99 {} / max {} s, {} missed; {:.1} calls per release",
        fleet["releases"],
        fleet["bake_s"],
        fleet["call_latency_ms"],
        fleet["all_healthy"],
        fleet["virtual_s_to_all_healthy"]
            .as_f64()
            .unwrap_or(f64::NAN),
        fleet["due_steps"],
        fleet["due_step_late_s"]["p50"],
        fleet["due_step_late_s"]["p99"],
        fleet["due_step_late_s"]["max"],
        fleet["due_steps_missed"],
        fleet["calls_per_release"].as_f64().unwrap_or(f64::NAN),
    );
    println!("ELB describe: {}", fleet["elb_describe"]);
    let limited = &results["fleet_at_elb_rate"];
    println!(
        "\nthe same with ELB's describe rate enforced: healthy {} after {:.1} s; due steps late p50 {} / p99 {} / max {} s, {} missed; {} calls throttled; {:.1} calls per release",
        limited["all_healthy"],
        limited["virtual_s_to_all_healthy"]
            .as_f64()
            .unwrap_or(f64::NAN),
        limited["due_step_late_s"]["p50"],
        limited["due_step_late_s"]["p99"],
        limited["due_step_late_s"]["max"],
        limited["due_steps_missed"],
        limited["throttled_calls"],
        limited["calls_per_release"].as_f64().unwrap_or(f64::NAN),
    );
    println!("ELB describe: {}", limited["elb_describe"]);
    let large = &results["large_fleet_at_elb_rate"];
    if !large.is_null() {
        println!(
            "\n{} releases with ELB's describe rate enforced: healthy {} after {:.1} s; due steps late p50 {} / p99 {} / max {} s ({}), {} missed; {} calls throttled; {:.1} calls per release",
            large["releases"],
            large["all_healthy"],
            large["virtual_s_to_all_healthy"]
                .as_f64()
                .unwrap_or(f64::NAN),
            large["due_step_late_s"]["p50"],
            large["due_step_late_s"]["p99"],
            large["due_step_late_s"]["max"],
            large["due_step_late_histogram_s"],
            large["due_steps_missed"],
            large["throttled_calls"],
            large["calls_per_release"].as_f64().unwrap_or(f64::NAN),
        );
        println!("ELB describe: {}", large["elb_describe"]);
        println!(
            "passes {} ({} failed); not Healthy at the end: {}",
            large["passes"], large["failed_passes"], large["not_healthy"]
        );
    }
}
