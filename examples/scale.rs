//! Steady state at scale: N releases, all Healthy, in the simulated AWS (paused tokio time).
//! Per full resync pass: AWS and store calls by operation against the floor, CPU time per
//! release, peak RSS and live heap; and how each grows with N.
//!
//! Method: N CODE_DEPLOY services spread over clusters (50 a cluster by default) and one
//! release each; the controller deploys them all (AllAtOnce) until every release is Healthy;
//! then exactly K full resyncs are measured, from the start of one to the start of the one
//! after the last, and divided by K. Each N runs in a child process of its own, so its peak RSS is its own.
//!
//! `cargo run --release --example scale -- --releases 100,1000,10000`

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::model::Phase;
use switchyard::ports::StoredRelease;
use switchyard::sim::{BlueGreenSetup, SimAws, SimStore};
use switchyard::state::{ControllerState, PhaseLabel, PhaseLabels};

use common::{Recorder, RecordingAws, RecordingStore, ReleaseOptions};

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

/// DynamoDB returns at most 1 MB of items per Scan page.
const SCAN_PAGE_BYTES: u64 = 1024 * 1024;
/// ECS DescribeServices takes at most 10 services per call.
const DESCRIBE_SERVICES_BATCH: usize = 10;
/// How long the controller may take to bring every release to Healthy (virtual time).
// The fleet's API budget (CodeDeploy 8 calls a second in one account and region) paces the
// first deployments: 10,000 releases take about 5 hours of virtual time to reach Healthy.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// Steady state at scale in the simulation: calls, CPU and memory per full resync pass.
#[derive(Debug, Parser)]
#[command(name = "scale")]
struct Args {
    /// Release counts to measure, comma-separated; each runs in its own child process.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 10000])]
    releases: Vec<usize>,
    /// Services per ECS cluster.
    #[arg(long, default_value_t = 50)]
    services_per_cluster: usize,
    /// The controller's resync period, in virtual seconds.
    #[arg(long, default_value_t = 60)]
    resync_secs: u64,
    /// Full resyncs measured (the figures are divided by this); more resyncs, less noise in
    /// the CPU figures of small fleets.
    #[arg(long, default_value_t = 20)]
    periods: u32,
    /// Passes at once (the daemon's default).
    #[arg(long, default_value_t = switchyard::config::Settings::default().concurrency)]
    concurrency: usize,
    /// Where to write the JSON report [default: target/bench/scale.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: measure the single N given and print its result as JSON on stdout.
    #[arg(long, hide = true)]
    child: bool,
}

fn main() {
    let args = Args::parse();
    if args.child {
        let [n] = args.releases[..] else {
            panic!("--child takes exactly one release count");
        };
        let result = common::paused_runtime().block_on(measure(n, &args));
        println!("{}", serde_json::to_string(&result).expect("serializes"));
        return;
    }

    let mut results = Vec::new();
    for &n in &args.releases {
        eprintln!("scale: measuring {n} releases ...");
        let output = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args([
                "--child",
                "--releases",
                &n.to_string(),
                "--services-per-cluster",
                &args.services_per_cluster.to_string(),
                "--resync-secs",
                &args.resync_secs.to_string(),
                "--periods",
                &args.periods.to_string(),
                "--concurrency",
                &args.concurrency.to_string(),
            ])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("the child runs");
        assert!(output.status.success(), "the child for N={n} failed");
        let result: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the child prints JSON");
        results.push(result);
    }

    let growth = growth(&results);
    let report = json!({
        "benchmark": "scale",
        "environment": common::environment(),
        "method": {
            "services_per_cluster": args.services_per_cluster,
            "resync_period_secs": args.resync_secs,
            "resyncs_measured": args.periods,
            "concurrency": args.concurrency,
            "scan_page_bytes": SCAN_PAGE_BYTES,
            "floor": "per pass: sum over clusters of ceil(n/10) DescribeServices + ceil(item bytes / 1 MB) Scan pages; nothing else",
        },
        "targets": {
            "calls_over_floor_max": 1.1,
            "cpu_us_per_release_per_pass_max": 50.0,
            "peak_rss_mib_at_10000_max": 150.0,
            "growth": "linear in N (exponent about 1)",
        },
        "results": results,
        "growth": growth,
    });
    let path = common::write_report("scale", &report, args.out.as_deref());
    print_summary(&report);
    println!("\nreport: {}", path.display());
}

/// Builds the world, converges, measures `args.periods` resync periods. Runs in a child.
async fn measure(n: usize, args: &Args) -> serde_json::Value {
    let clock = Clock::fixed_epoch();
    let sim = SimAws::new(clock.clone());
    let store = SimStore::new(clock.clone());
    let mut per_cluster: BTreeMap<String, usize> = BTreeMap::new();
    let setup_cpu = common::process_cpu();
    for i in 0..n {
        let cluster = format!("cluster-{:03}", i / args.services_per_cluster);
        let service = format!("svc-{i:05}");
        sim.add_bluegreen_service(BlueGreenSetup::new(&cluster, &service));
        let write = ReleaseOptions::new(&cluster, &service).write(clock.now());
        switchyard::ports::ReleaseStore::put_spec(&store, write)
            .await
            .expect("the spec is written");
        *per_cluster.entry(cluster).or_default() += 1;
    }
    let setup_cpu = common::process_cpu() - setup_cpu;
    let rss_world_kib = common::proc_status_kib("VmRSS").unwrap_or(0);
    let heap_world = common::alloc_snapshot().live_bytes;

    let recorder = Recorder::new(clock.clone(), false);
    let state = ControllerState::new();
    let config = ControllerConfig {
        resync_period: Duration::from_secs(args.resync_secs),
        concurrency: args.concurrency,
        jitter_seed: Some(7),
        ..ControllerConfig::default()
    };
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
        config,
        state.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));

    // 1. Converge: every release Healthy.
    let started = tokio::time::Instant::now();
    let converge_cpu = common::process_cpu();
    let healthy = || {
        state
            .metrics()
            .releases
            .get_or_create(&PhaseLabels {
                phase: PhaseLabel(Phase::Healthy),
            })
            .get() as usize
    };
    while healthy() < n {
        assert!(
            started.elapsed() < CONVERGENCE_LIMIT,
            "only {} of {n} releases Healthy after {CONVERGENCE_LIMIT:?}",
            healthy()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let converge_virtual = started.elapsed();
    let converge_cpu = common::process_cpu() - converge_cpu;
    let converge_calls = recorder.counts();
    let peak_converge_kib = common::proc_status_kib("VmHWM").unwrap_or(0);

    // 2. Measure exactly `periods` full resyncs, from the start of one (its listing) to the
    //    start of the one after the last: resyncs never overlap, so the window holds each
    //    one's describes and passes whole. A resync rests `resync_secs` after it ends; a
    //    fleet whose describes take longer than that at its budget's pace (10,000 services
    //    in one place: 1,000 DescribeServices at ECS's 10 a second) is resynced less often
    //    than every `resync_secs`, which the window's length shows.
    let scans = || recorder.count("dynamodb:Scan");
    let wait_for_scans = |target: u64| async move {
        while scans() < target {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let first = scans() + 1;
    wait_for_scans(first).await;
    let window_start = tokio::time::Instant::now();

    let passes_before = reconcile_passes(&state);
    common::reset_peak_rss();
    common::reset_peak_heap();
    let calls_before = recorder.counts();
    let sim_cpu_before = recorder.sim_cpu();
    let alloc_before = common::alloc_snapshot();
    let cpu_before = common::process_cpu();

    wait_for_scans(first + u64::from(args.periods)).await;
    let window = window_start.elapsed();

    let cpu = common::process_cpu() - cpu_before;
    let alloc_after = common::alloc_snapshot();
    let sim_cpu = recorder.sim_cpu() - sim_cpu_before;
    let calls_after = recorder.counts();
    let peak_steady_kib = common::proc_status_kib("VmHWM").unwrap_or(0);
    let rss_end_kib = common::proc_status_kib("VmRSS").unwrap_or(0);
    let passes = reconcile_passes(&state) - passes_before;

    let _ = stop.send(());
    let summary = controller.await.expect("the controller ends");
    let all_healthy_at_end = healthy() == n;
    // With the controller gone, what is left on the heap is the simulated world (AWS and
    // store); the rest of the heap at the end of the window was the controller's.
    drop(state);
    let heap_world_end = common::alloc_snapshot().live_bytes;

    // 3. The floor, from what is stored: DescribeServices batches and Scan pages.
    let items = store.peek_all();
    let item_bytes: u64 = items.iter().map(item_size).sum();
    let scan_pages_per_list = item_bytes.div_ceil(SCAN_PAGE_BYTES).max(1);
    let describe_floor: u64 = per_cluster
        .values()
        .map(|n| n.div_ceil(DESCRIBE_SERVICES_BATCH) as u64)
        .sum();
    let floor_per_pass = describe_floor + scan_pages_per_list;

    let k = f64::from(args.periods);
    // K listings (the first's was before the window, the one after the last's at its end)
    // and K resyncs' describes and passes.
    let delta = common::count_delta(&calls_after, &calls_before);
    let mut per_pass: BTreeMap<String, f64> = BTreeMap::new();
    for (op, count) in &delta {
        per_pass.insert(op.clone(), *count as f64 / k);
    }
    // The simulated store answers a list with one call; DynamoDB needs one Scan per page.
    if let Some(scans) = per_pass.remove("dynamodb:Scan") {
        per_pass.insert(
            "dynamodb:Scan (pages)".into(),
            scans * scan_pages_per_list as f64,
        );
    }
    let total_per_pass: f64 = per_pass.values().sum();
    let aws_per_pass: f64 = per_pass
        .iter()
        .filter(|(op, _)| !op.starts_with("dynamodb:"))
        .map(|(_, n)| n)
        .sum();
    let not_floor_ops: BTreeMap<&String, &f64> = per_pass
        .iter()
        .filter(|(op, _)| {
            !matches!(
                op.as_str(),
                "ecs:DescribeServices" | "dynamodb:Scan (pages)"
            )
        })
        .collect();
    let release_passes = n as f64 * k;
    let cpu_us = cpu.as_secs_f64() * 1e6 / release_passes;
    let controller_cpu_us = cpu.saturating_sub(sim_cpu).as_secs_f64() * 1e6 / release_passes;

    json!({
        "releases": n,
        "clusters": per_cluster.len(),
        "setup": {
            "cpu_s": setup_cpu.as_secs_f64(),
            "rss_world_mib": common::mib(rss_world_kib),
            "heap_world_mib": heap_world as f64 / 1048576.0,
        },
        "convergence": {
            "virtual_s": converge_virtual.as_secs_f64(),
            "cpu_s": converge_cpu.as_secs_f64(),
            "calls": common::count_delta(&converge_calls, &BTreeMap::new()),
        },
        "resync_interval_virtual_s": window.as_secs_f64() / k,
        "per_pass": {
            "calls_by_operation": per_pass,
            "calls_total": total_per_pass,
            "aws_calls_total": aws_per_pass,
            "calls_not_in_floor": not_floor_ops,
            "floor": {
                "describe_services": describe_floor,
                "scan_pages": scan_pages_per_list,
                "total": floor_per_pass,
            },
            "calls_over_floor": total_per_pass / floor_per_pass as f64,
            "aws_calls_over_describe_floor": aws_per_pass / describe_floor as f64,
            "reconcile_passes": passes as f64 / k,
        },
        "cpu_us_per_release_per_pass": cpu_us,
        "cpu_us_per_release_per_pass_excluding_simulation": controller_cpu_us,
        "simulation_cpu_share": if cpu.is_zero() { 0.0 } else { sim_cpu.as_secs_f64() / cpu.as_secs_f64() },
        "allocations_per_release_per_pass": (alloc_after.allocations - alloc_before.allocations) as f64 / release_passes,
        "allocated_bytes_per_release_per_pass": (alloc_after.allocated_bytes - alloc_before.allocated_bytes) as f64 / release_passes,
        "memory": {
            "peak_rss_mib": common::mib(peak_converge_kib.max(peak_steady_kib)),
            "peak_rss_converging_mib": common::mib(peak_converge_kib),
            "peak_rss_steady_mib": common::mib(peak_steady_kib),
            "rss_end_mib": common::mib(rss_end_kib),
            "rss_world_before_controller_mib": common::mib(rss_world_kib),
            "heap_live_end_mib": alloc_after.live_bytes as f64 / 1048576.0,
            "heap_peak_steady_mib": alloc_after.peak_live_bytes as f64 / 1048576.0,
            "heap_world_before_controller_mib": heap_world as f64 / 1048576.0,
            "heap_world_end_mib": heap_world_end as f64 / 1048576.0,
            "heap_controller_end_mib": alloc_after.live_bytes.saturating_sub(heap_world_end) as f64 / 1048576.0,
            "heap_controller_peak_steady_mib": alloc_after.peak_live_bytes.saturating_sub(heap_world_end) as f64 / 1048576.0,
        },
        "store": {
            "item_bytes_total": item_bytes,
            "item_bytes_mean": item_bytes as f64 / n.max(1) as f64,
            "scan_pages_per_full_list": scan_pages_per_list,
        },
        "all_healthy_at_end": all_healthy_at_end,
        "failed_passes": summary.failed_passes,
    })
}

/// The passes the controller has finished, from its own metrics.
fn reconcile_passes(state: &ControllerState) -> u64 {
    state
        .metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("switchyard_reconcile_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The size DynamoDB counts for a release item as `DynamoStore` lays it out (see the table
/// layout in `src/aws/store.rs`): attribute names plus values, strings in UTF-8 bytes,
/// numbers about one byte per two digits plus one, one byte per element and three per
/// container for maps and lists.
fn item_size(release: &StoredRelease) -> u64 {
    use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
    let mut attributes: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)> = vec![
        ("pk", s(format!("release#{}", release.name))),
        ("kind", s("release".into())),
        ("name", s(release.name.clone())),
        ("generation", n(release.generation)),
        ("statusVersion", n(release.status_version)),
        ("spec", to_attribute_value(&release.spec).expect("encodes")),
        (
            "labels",
            to_attribute_value(&release.labels).expect("encodes"),
        ),
    ];
    if let Some(by) = &release.spec_updated_by {
        attributes.push(("specUpdatedBy", s(by.clone())));
    }
    if let Some(at) = release.spec_updated_at {
        attributes.push(("specUpdatedAt", to_attribute_value(at).expect("encodes")));
    }
    if let Some(status) = &release.status {
        attributes.push(("status", to_attribute_value(status).expect("encodes")));
    }
    if !release.audit.is_empty() {
        attributes.push((
            "audit",
            to_attribute_value(&release.audit).expect("encodes"),
        ));
    }
    for (attribute, request) in [
        ("requestPromote", &release.requests.promote),
        ("requestAbort", &release.requests.abort),
        ("requestRetry", &release.requests.retry),
    ] {
        if let Some(request) = request {
            attributes.push((attribute, to_attribute_value(request).expect("encodes")));
        }
    }
    attributes
        .iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn s(value: String) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(value)
}

fn n(value: u64) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(value.to_string())
}

fn value_size(value: &aws_sdk_dynamodb::types::AttributeValue) -> u64 {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match value {
        V::S(text) => text.len() as u64,
        V::N(number) => (number.trim_start_matches('-').len() as u64).div_ceil(2) + 1,
        V::Bool(_) | V::Null(_) => 1,
        V::B(bytes) => bytes.as_ref().len() as u64,
        V::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        V::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        V::Ss(set) => set.iter().map(|v| v.len() as u64).sum(),
        V::Ns(set) => set.iter().map(|v| v.len() as u64 / 2 + 1).sum(),
        V::Bs(set) => set.iter().map(|v| v.as_ref().len() as u64).sum(),
        _ => 0,
    }
}

/// How each figure grows with N: the exponent b of cost ~ N^b between the smallest and the
/// largest N (1 is linear).
fn growth(results: &[serde_json::Value]) -> serde_json::Value {
    let (Some(first), Some(last)) = (results.first(), results.last()) else {
        return json!(null);
    };
    let n0 = first["releases"].as_f64().unwrap_or(0.0);
    let n1 = last["releases"].as_f64().unwrap_or(0.0);
    if results.len() < 2 || n0 <= 0.0 || n1 <= n0 {
        return json!(null);
    }
    let exponent = |total: &dyn Fn(&serde_json::Value) -> f64| {
        let (a, b) = (total(first), total(last));
        if a > 0.0 && b > 0.0 {
            (b / a).ln() / (n1 / n0).ln()
        } else {
            f64::NAN
        }
    };
    json!({
        "from_releases": n0,
        "to_releases": n1,
        "calls_per_pass_exponent": exponent(&|r| r["per_pass"]["calls_total"].as_f64().unwrap_or(0.0)),
        "cpu_per_pass_exponent": exponent(&|r| r["cpu_us_per_release_per_pass"].as_f64().unwrap_or(0.0) * r["releases"].as_f64().unwrap_or(0.0)),
        "heap_live_exponent": exponent(&|r| r["memory"]["heap_live_end_mib"].as_f64().unwrap_or(0.0)),
        "peak_rss_exponent": exponent(&|r| r["memory"]["peak_rss_mib"].as_f64().unwrap_or(0.0)),
    })
}

fn print_summary(report: &serde_json::Value) {
    let empty = Vec::new();
    let results = report["results"].as_array().unwrap_or(&empty);
    let f = |v: &serde_json::Value, digits: usize| match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    };
    println!(
        "steady state: per full resync pass (resync {} s virtual, {} resyncs measured)",
        report["method"]["resync_period_secs"], report["method"]["resyncs_measured"]
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let p = &r["per_pass"];
            vec![
                r["releases"].to_string(),
                f(&p["calls_by_operation"]["ecs:DescribeServices"], 1),
                f(&p["calls_by_operation"]["dynamodb:Scan (pages)"], 1),
                f(&p["calls_total"], 1),
                f(&p["floor"]["total"], 0),
                format!("{}x", f(&p["calls_over_floor"], 2)),
                f(&r["cpu_us_per_release_per_pass"], 1),
                f(&r["cpu_us_per_release_per_pass_excluding_simulation"], 1),
                f(&r["memory"]["peak_rss_mib"], 1),
                f(&r["memory"]["heap_world_end_mib"], 1),
                f(&r["memory"]["heap_controller_peak_steady_mib"], 1),
                f(&r["resync_interval_virtual_s"], 0),
            ]
        })
        .collect();
    common::print_table(
        &[
            "releases",
            "DescribeSvc",
            "Scan pages",
            "calls",
            "floor",
            "vs floor",
            "cpu us/rel",
            "(no sim)",
            "peak RSS MiB",
            "sim heap",
            "ctl heap peak",
            "resync every s",
        ],
        &rows,
    );
    for r in results {
        let extra = &r["per_pass"]["calls_not_in_floor"];
        if extra.as_object().is_some_and(|o| !o.is_empty()) {
            println!(
                "N={}: calls outside the floor per pass: {extra}",
                r["releases"]
            );
        }
    }
    let g = &report["growth"];
    if !g.is_null() {
        println!(
            "growth {}..{} releases (exponent, 1 = linear): calls {}, cpu {}, heap {}, peak RSS {}",
            g["from_releases"],
            g["to_releases"],
            f(&g["calls_per_pass_exponent"], 2),
            f(&g["cpu_per_pass_exponent"], 2),
            f(&g["heap_live_exponent"], 2),
            f(&g["peak_rss_exponent"], 2)
        );
    }
}
