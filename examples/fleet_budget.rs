//! The fleet's shared API budget (issue 20), in the simulated AWS with paused tokio time:
//! N releases (default 10,000) spread round robin over 6 places (3 regions of the controller's
//! own account, and the same 3 regions of another account reached through a role), all written
//! at the same instant, carried to Healthy by 1, 3 and 5 replicas sharing the leases; for each
//! account, region and service, the most calls that reached AWS in any one second against the
//! fleet's budget (its rate plus its burst), whatever the number of replicas.
//!
//! Calls are read from the simulated AWS itself (`SimAws::placed_call_times`: every call with
//! the virtual time it arrived, its account and its region), so what is counted is what AWS
//! would see. The simulated AWS also enforces ELB's describe rate (40, 10 a second) per place.
//!
//! `cargo run --release --example fleet_budget -- --releases 10000 --replicas 1,3,5`

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jiff::Timestamp;
use serde_json::json;

use switchyard::access::SessionSettings;
use switchyard::clock::Clock;
use switchyard::controller::{self, BudgetSettings, Context, ControllerConfig, Leases};
use switchyard::lease::LeaseTiming;
use switchyard::model::Phase;
use switchyard::ports::{ReleaseStore, SpecWrite};
use switchyard::sim::{ACCOUNT, BlueGreenSetup, PlacedCall, REGION, SimAws, SimRole, SimStore};
use switchyard::state::ControllerState;

use common::ReleaseOptions;

const OTHER_ACCOUNT: &str = "444455556666";
const ROLE: &str = "arn:aws:iam::444455556666:role/switchyard-deployer";
const REGIONS: [&str; 3] = [REGION, "eu-west-1", "ap-southeast-2"];
const SHARDS: u32 = 16;
/// Services per ECS cluster.
const PER_CLUSTER: usize = 50;
/// The most virtual time one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Parser)]
#[command(name = "fleet_budget")]
struct Args {
    /// Releases, spread over the 6 places.
    #[arg(long, default_value_t = 10_000)]
    releases: usize,
    /// Replica counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3, 5])]
    replicas: Vec<usize>,
    /// Where to write the JSON report [default: target/bench/fleet_budget.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let budgets = BudgetSettings::default();
    let mut runs = Vec::new();
    for &replicas in &args.replicas {
        eprintln!(
            "fleet_budget: {} releases, {replicas} replicas ...",
            args.releases
        );
        let run = common::paused_runtime().block_on(run(args.releases, replicas));
        runs.push(report_run(&run, replicas, &budgets));
    }
    let report = json!({
        "benchmark": "fleet_budget",
        "environment": common::environment(),
        "method": {
            "places": "3 regions (us-east-1, eu-west-1, ap-southeast-2) of the controller's account and of 444455556666 through a role; releases round robin over them",
            "releases": "codeDeploy blue/green, one service each (50 to a cluster), all written at the same instant after the replicas spread the 16 leases (30 s)",
            "controller": "defaults (resync 60 s, concurrency 8 per replica, jitter seed 7), the default API budgets",
            "calls": "API calls as they reach the simulated AWS (SimAws::placed_call_times), per account, region and service; the most in any window of one second (sliding over every call)",
            "aws": "ELB's describe rate enforced per place (40, 10 a second); no other AWS limit",
            "api_budgets": format!("{:?}", budgets.by_service),
        },
        "results": runs,
    });
    let path = common::write_report("fleet_budget", &report, args.out.as_deref());
    print_summary(&report);
    println!("\nreport: {}", path.display());
}

struct Run {
    releases: usize,
    all_healthy: bool,
    healthy: usize,
    virtual_s_to_all_healthy: f64,
    calls: Vec<PlacedCall>,
    throttled: u64,
}

/// The place of release `i`: `(account, region)`.
fn place_of(i: usize) -> (&'static str, &'static str) {
    let account = if (i / REGIONS.len()).is_multiple_of(2) {
        ACCOUNT
    } else {
        OTHER_ACCOUNT
    };
    (account, REGIONS[i % REGIONS.len()])
}

fn write_of(i: usize, at: Timestamp) -> SpecWrite {
    let (account, region) = place_of(i);
    let cluster = format!("cluster-{:03}", i / PER_CLUSTER);
    let service = format!("svc-{i:05}");
    let options = ReleaseOptions::new(&cluster, &service);
    let mut extra = String::new();
    if region != REGION {
        extra.push_str(&format!(", region: {region}"));
    }
    if account != ACCOUNT {
        extra.push_str(&format!(", roleArn: \"{ROLE}\""));
    }
    let yaml = options.yaml().replace(
        &format!("service: {{cluster: {cluster}, name: {service}}}"),
        &format!("service: {{cluster: {cluster}, name: {service}{extra}}}"),
    );
    let documents = switchyard::model::parse_documents(&yaml).expect("a valid document");
    SpecWrite {
        spec: serde_json::to_value(&documents[0].spec).expect("a spec"),
        ..options.write(at)
    }
}

async fn run(n: usize, replicas: usize) -> Run {
    let clock = Clock::fixed_epoch();
    let sim = SimAws::new(clock.clone());
    let store = SimStore::new(clock.clone());
    sim.add_role(SimRole::new(ROLE));
    sim.limit_rate("elbv2", "Describe", 40.0, 10.0);
    for i in 0..n {
        let (account, region) = place_of(i);
        sim.scoped(account, region)
            .add_bluegreen_service(BlueGreenSetup::new(
                &format!("cluster-{:03}", i / PER_CLUSTER),
                &format!("svc-{i:05}"),
            ));
    }
    let mut stops = Vec::new();
    let mut controllers = Vec::new();
    for r in 0..replicas {
        let id = format!("replica-{r}");
        let leases = Leases::new(
            Arc::new(store.clone()),
            &id,
            SHARDS,
            LeaseTiming {
                duration: Duration::from_secs(20),
                renew_period: Duration::from_secs(5),
                safety_margin: Duration::from_secs(5),
            },
            &clock,
        );
        let ctx = Context::new(
            Arc::new(store.clone()),
            Arc::new(sim.clone()),
            clock.clone(),
            ControllerConfig {
                jitter_seed: Some(7),
                ..ControllerConfig::default()
            },
            ControllerState::new(),
        )
        .with_leases(leases)
        .with_session_settings(SessionSettings::for_replica(&id, None));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        controllers.push(tokio::spawn(controller::run(ctx, async move {
            let _ = stopped.await;
        })));
    }
    // The replicas spread the leases first.
    tokio::time::sleep(Duration::from_secs(30)).await;
    sim.keep_call_times();
    let started = clock.now();
    for i in 0..n {
        store
            .put_spec(write_of(i, clock.now()))
            .await
            .expect("the spec is written");
    }
    let waited = tokio::time::Instant::now();
    let mut healthy = 0;
    let mut all_healthy_at = None;
    while waited.elapsed() < RUN_LIMIT {
        tokio::time::sleep(Duration::from_secs(10)).await;
        healthy = (0..n)
            .filter(|i| {
                store
                    .peek(&format!("svc-{i:05}"))
                    .and_then(|r| r.status)
                    .is_some_and(|s| s.phase == Phase::Healthy)
            })
            .count();
        if healthy == n {
            all_healthy_at = Some(clock.now());
            break;
        }
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for controller in controllers {
        let _ = controller.await;
    }
    Run {
        releases: n,
        all_healthy: healthy == n,
        healthy,
        virtual_s_to_all_healthy: all_healthy_at
            .map(|at| common::between(started, at).as_secs_f64())
            .unwrap_or(f64::NAN),
        calls: sim.placed_call_times(),
        throttled: sim.throttled_calls(),
    }
}

/// The budget's name of a simulated service.
fn budget_service(service: &str) -> &str {
    match service {
        "elbv2" => "elasticloadbalancing",
        other => other,
    }
}

fn report_run(run: &Run, replicas: usize, budgets: &BudgetSettings) -> serde_json::Value {
    let mut by_key: BTreeMap<(String, String, &'static str), Vec<Timestamp>> = BTreeMap::new();
    let mut by_operation: BTreeMap<(String, String, &'static str), BTreeMap<&'static str, u64>> =
        BTreeMap::new();
    for call in &run.calls {
        let key = (call.account.clone(), call.region.clone(), call.service);
        *by_operation
            .entry(key.clone())
            .or_default()
            .entry(call.operation)
            .or_default() += 1;
        by_key.entry(key).or_default().push(call.at);
    }
    let mut places = Vec::new();
    let mut all_within = true;
    for ((account, region, service), times) in &by_key {
        let most = most_in_a_second(times);
        let span = common::between(times[0], times[times.len() - 1]).as_secs_f64();
        let budget = budgets.by_service.get(budget_service(service));
        let allowed = budget.map(|b| b.per_second + b.burst);
        let within = allowed.is_none_or(|a| most as f64 <= a);
        all_within &= within;
        places.push(json!({
            "account": account,
            "region": region,
            "service": service,
            "calls": times.len(),
            "calls_by_operation": by_operation.get(&(account.clone(), region.clone(), *service)),
            "over_seconds": span,
            "mean_per_second": if span > 0.0 { times.len() as f64 / span } else { 0.0 },
            "most_in_any_second": most,
            "budget": budget.map(|b| json!({"per_second": b.per_second, "burst": b.burst})),
            "within_rate_plus_burst": within,
        }));
    }
    json!({
        "replicas": replicas,
        "releases": run.releases,
        "all_healthy": run.all_healthy,
        "healthy": run.healthy,
        "virtual_s_to_all_healthy": run.virtual_s_to_all_healthy,
        "calls": run.calls.len(),
        "throttled_by_aws": run.throttled,
        "every_place_within_its_budget": all_within,
        "places": places,
    })
}

/// The most of `times` (sorted) within any one second.
fn most_in_a_second(times: &[Timestamp]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in times.iter().enumerate() {
        while common::between(times[start], *at) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

fn print_summary(report: &serde_json::Value) {
    for run in report["results"].as_array().into_iter().flatten() {
        println!(
            "\n{} releases, {} replicas: {} Healthy after {:.0} s; {} calls, {} throttled by AWS; every place within its budget: {}",
            run["releases"],
            run["replicas"],
            run["healthy"],
            run["virtual_s_to_all_healthy"].as_f64().unwrap_or(f64::NAN),
            run["calls"],
            run["throttled_by_aws"],
            run["every_place_within_its_budget"],
        );
        let rows: Vec<Vec<String>> = run["places"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                vec![
                    p["account"].as_str().unwrap_or("").to_string(),
                    p["region"].as_str().unwrap_or("").to_string(),
                    p["service"].as_str().unwrap_or("").to_string(),
                    p["calls"].to_string(),
                    format!("{:.2}", p["mean_per_second"].as_f64().unwrap_or(f64::NAN)),
                    p["most_in_any_second"].to_string(),
                    p["budget"].to_string(),
                ]
            })
            .collect();
        common::print_table(
            &[
                "account",
                "region",
                "service",
                "calls",
                "mean/s",
                "most in 1 s",
                "budget",
            ],
            &rows,
        );
    }
}
