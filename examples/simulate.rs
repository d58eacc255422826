//! Deterministic simulation of several controller replicas under seeded faults, crashes and
//! pauses (the `switchyard-simulation` crate in `simulation/`), over many seeds.
//!
//! ```text
//! cargo run --release --example simulate -- --seeds 500 --replicas 3
//! cargo run --release --example simulate -- --seed 17 --replicas 3 --releases 6 --minutes 30 --log
//! ```
//!
//! For each seed with violations it prints them and the command that runs exactly that seed
//! again; the last line on stdout is always `N seeds, V violations`. Exits with 1 when any
//! invariant was violated.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use switchyard_simulation::{SeedReport, SimulationConfig, Stats};
use tracing_subscriber::Layer;

#[derive(Debug, Parser)]
#[command(about = "Run the deterministic multi-replica simulation over many seeds")]
struct Args {
    /// How many seeds to run (from --seed on). Default: 100, or 1 when --seed is given.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Controller replicas running at once.
    #[arg(long, default_value_t = SimulationConfig::default().replicas)]
    replicas: u32,
    /// Releases, each on its own service.
    #[arg(long, default_value_t = SimulationConfig::default().releases)]
    releases: u32,
    /// Virtual minutes of faults, writes, crashes and pauses.
    #[arg(long, default_value_t = SimulationConfig::default().minutes)]
    minutes: u64,
    /// The most virtual minutes the releases get to settle after the faults stop.
    #[arg(long, default_value_t = SimulationConfig::default().settle_minutes)]
    settle_minutes: u64,
    /// Lease shards.
    #[arg(long, default_value_t = SimulationConfig::default().shards)]
    shards: u32,
    /// Threads running seeds (each seed runs alone on its own paused runtime).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print each seed's event log (to stdout, before the summary).
    #[arg(long)]
    log: bool,
    /// Print one line per seed (to stderr).
    #[arg(long)]
    verbose: bool,
    /// Print the controllers' own tracing at this level (to stderr), e.g. `info`.
    #[arg(long)]
    trace: Option<String>,
}

/// Runs one seed on its own current-thread runtime with paused time.
fn run_seed(config: &SimulationConfig) -> SeedReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
        .block_on(switchyard_simulation::run(config))
}

fn main() {
    let args = Args::parse();
    if let Some(level) = &args.trace {
        // The simulation records every pass from the controller's spans: its recorder goes
        // into this subscriber too.
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let printer = tracing_subscriber::fmt::layer()
            .without_time()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::new(level.as_str()));
        tracing_subscriber::registry()
            .with(printer)
            .with(switchyard_simulation::PassRecorder::new())
            .init();
    }
    let first = args.seed.unwrap_or(1);
    let count = args
        .seeds
        .unwrap_or(if args.seed.is_some() { 1 } else { 100 });
    let template = SimulationConfig {
        seed: first,
        replicas: args.replicas,
        releases: args.releases,
        minutes: args.minutes,
        settle_minutes: args.settle_minutes,
        shards: args.shards,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, count.max(1) as usize);

    // Wall time only for the report of how long the run took; nothing simulated reads it.
    let started = std::time::Instant::now();
    let next = AtomicU64::new(first);
    let reports: Mutex<Vec<SeedReport>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= first + count {
                        return;
                    }
                    let config = SimulationConfig {
                        seed,
                        ..template.clone()
                    };
                    let mut report = run_seed(&config);
                    if args.verbose {
                        eprintln!(
                            "seed {seed}: {} violations, digest {}, {:.1} virtual minutes, settled after {}, stops take {}s; {}",
                            report.violations.len(),
                            report.digest,
                            report.virtual_time.as_secs_f64() / 60.0,
                            report
                                .stats
                                .settled_after
                                .map_or("never".to_string(), |d| format!("{:.1} min", d.as_secs_f64() / 60.0)),
                            report.stats.stop_delay_secs,
                            report.stats.summary()
                        );
                    }
                    if !args.log {
                        report.log = Vec::new();
                    }
                    reports.lock().unwrap().push(report);
                }
            });
        }
    });
    let wall = started.elapsed();
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|r| r.config.seed);

    let mut violations = 0;
    let mut virtual_time = Duration::ZERO;
    let mut totals = Stats::default();
    for report in &reports {
        virtual_time += report.virtual_time;
        totals.add(&report.stats);
        if args.log {
            println!("--- seed {} (digest {})", report.config.seed, report.digest);
            for line in &report.log {
                println!("{line}");
            }
        }
        if report.violations.is_empty() {
            continue;
        }
        violations += report.violations.len();
        println!(
            "seed {}: {} violation(s) (digest {})",
            report.config.seed,
            report.violations.len(),
            report.digest
        );
        for violation in &report.violations {
            println!("  {violation}");
        }
        println!("  reproduce: {}", report.config.command());
    }
    eprintln!(
        "{} seeds ({} replicas, {} releases, {} minutes of faults each) in {:.1} s wall on {jobs} thread(s); {:.1} virtual hours in all ({:.0}x real time)",
        reports.len(),
        template.replicas,
        template.releases,
        template.minutes,
        wall.as_secs_f64(),
        virtual_time.as_secs_f64() / 3600.0,
        virtual_time.as_secs_f64() / wall.as_secs_f64().max(1e-9),
    );
    eprintln!("in all: {}", totals.summary());
    println!("{} seeds, {violations} violations", reports.len());
    if violations > 0 {
        std::process::exit(1);
    }
}
