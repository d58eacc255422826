//! The deterministic multi-replica simulation (the `switchyard-simulation` crate) inside the suite: a
//! bounded number of small seeds by default, as many as `SWITCHYARD_SIM_SEEDS` says otherwise
//! (`cargo run --release --example simulate` runs the larger default configuration).
//!
//! Violations of a kind listed in `KNOWN_OPEN` come from controller bugs that are reported
//! and not fixed yet: they are printed, counted, and tolerated unless
//! `SWITCHYARD_SIM_STRICT=1`. The list is empty: the bugs the simulation found are fixed, and
//! the seeds that showed each are kept below as regression tests.
//!
//! A check that found nothing must have had something to look at: the sweep also asserts
//! that its seeds made edits that keep the candidate while rollouts were in flight, wanted
//! candidates again, refused, panicked, failed status writes after actions, and handled
//! requests (the counts are printed).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_simulation::{SeedReport, SimulationConfig, Stats, ViolationKind};

/// Seeds run by default: about 0.3 s of CPU each in a debug build, on up to four threads.
const DEFAULT_SEEDS: u64 = 150;

/// Violation kinds of open controller bugs (see the module documentation).
const KNOWN_OPEN: &[ViolationKind] = &[
    // Empty: the bugs the simulation found (a recorded stop never re-sent, a release dropped
    // while its lease was unsafe, no lease check before the AWS call, a panicking resync that
    // ended the resyncs, a stop sent again after its recording write failed, a registration
    // repeated while the first was on its way) are fixed.
];

/// The small configuration the suite runs.
fn suite_config(seed: u64) -> SimulationConfig {
    SimulationConfig {
        seed,
        replicas: 3,
        releases: 3,
        minutes: 8,
        settle_minutes: 45,
        ..SimulationConfig::default()
    }
}

/// One seed on its own current-thread runtime with paused time.
fn run_seed(config: &SimulationConfig) -> SeedReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
        .block_on(switchyard_simulation::run(config))
}

/// Written straight to the process's stderr, past the test harness's capture, so that it is
/// seen even when the test passes.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs `seeds` seeds of `config` on a few threads; reports in seed order.
fn run_many(first: u64, seeds: u64, config: fn(u64) -> SimulationConfig) -> Vec<SeedReport> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4) as u64;
    let next = AtomicU64::new(first);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(seeds.max(1)) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= first + seeds {
                        return;
                    }
                    let mut report = run_seed(&config(seed));
                    report.log = Vec::new();
                    reports.lock().unwrap().push(report);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|r| r.config.seed);
    reports
}

#[test]
fn every_seed_keeps_the_invariants() {
    let seeds = match std::env::var("SWITCHYARD_SIM_SEEDS") {
        Ok(value) => value
            .trim()
            .parse()
            .expect("SWITCHYARD_SIM_SEEDS is a number of seeds"),
        Err(_) => {
            say(&format!(
                "\n*** simulation: SWITCHYARD_SIM_SEEDS is not set: running {DEFAULT_SEEDS} small seeds. \
                 Set SWITCHYARD_SIM_SEEDS=2000 for a longer run, or use \
                 `cargo run --release --example simulate -- --seeds 1000`. ***\n"
            ));
            DEFAULT_SEEDS
        }
    };
    let strict = env_flag("SWITCHYARD_SIM_STRICT");
    let reports = run_many(1, seeds, suite_config);

    let mut failures = Vec::new();
    let mut known = std::collections::BTreeMap::<ViolationKind, usize>::new();
    let mut first_known: Vec<String> = Vec::new();
    for report in &reports {
        let (open, new): (Vec<_>, Vec<_>) = report
            .violations
            .iter()
            .partition(|v| !strict && KNOWN_OPEN.contains(&v.kind));
        for violation in &open {
            *known.entry(violation.kind).or_default() += 1;
            if first_known.len() < 3 {
                first_known.push(format!(
                    "seed {}: {violation}\n  reproduce: {}",
                    report.config.seed,
                    report.config.command()
                ));
            }
        }
        if !new.is_empty() {
            let lines: Vec<String> = new.iter().map(|v| format!("  {v}")).collect();
            failures.push(format!(
                "seed {}:\n{}\n  reproduce: {}",
                report.config.seed,
                lines.join("\n"),
                report.config.command()
            ));
        }
    }
    let total: usize = reports.iter().map(|r| r.violations.len()).sum();
    let mut totals = Stats::default();
    for report in &reports {
        totals.add(&report.stats);
    }
    say(&format!(
        "simulation: {} seeds, {total} violations; in all: {}",
        reports.len(),
        totals.summary()
    ));
    if !known.is_empty() {
        say(&format!(
            "*** simulation: {} violations of known open bugs tolerated ({known:?}); \
             SWITCHYARD_SIM_STRICT=1 fails on them. First ones:\n{}",
            known.values().sum::<usize>(),
            first_known.join("\n")
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds violated an invariant:\n{}",
        failures.len(),
        reports.len(),
        failures.join("\n")
    );
    if seeds >= 100 {
        assert_checks_had_work(&totals);
    }
}

/// Every check had something to look at over the sweep (see the module documentation).
fn assert_checks_had_work(totals: &Stats) {
    let work = [
        (
            "edits keeping the candidate in flight (7)",
            totals.edits_in_flight as usize,
        ),
        ("stops judged (7)", totals.stops_justified as usize),
        (
            "candidates wanted again (8)",
            totals.candidates_wanted_again as usize,
        ),
        ("registrations (8)", totals.registrations),
        ("stops accepted (9)", totals.stops_accepted as usize),
        ("continues accepted (9)", totals.continues_accepted as usize),
        (
            "crashes right after a mutation (9)",
            totals.crashes_after_action as usize,
        ),
        ("status writes failed (9)", totals.status_writes_failed),
        ("write faults armed (9)", totals.write_faults_armed as usize),
        ("requests handled (10)", totals.requests_handled),
        ("requests declined (10)", totals.requests_declined),
        ("passes (11)", totals.passes),
        ("passes panicked (11)", totals.passes_panicked as usize),
        ("refusal episodes (12)", totals.refusal_episodes as usize),
        ("attempts refused (12)", totals.refused_attempts),
        (
            "production weight changes (13)",
            totals.strategy.weight_changes as usize,
        ),
        (
            "weights moved by hand (13)",
            totals.weights_moved_by_hand as usize,
        ),
        (
            "task sets created (14)",
            totals.strategy.task_sets_created as usize,
        ),
        (
            "task sets removed (15)",
            totals.strategy.task_set_removals as usize,
        ),
        (
            "task-set rollbacks (15)",
            totals.strategy.rollbacks as usize,
        ),
        (
            "UpdateService calls (16)",
            totals.strategy.service_updates as usize,
        ),
        (
            "foreign service deployments (17)",
            totals.foreign_deployments as usize,
        ),
        ("hook answers (18)", totals.strategy.hook_answers as usize),
        (
            "notification deliveries (19)",
            totals.notifications.deliveries as usize,
        ),
        (
            "notification deliveries given up (19)",
            totals.notifications.given_up as usize,
        ),
        (
            "second arrivals after a lost outcome (20)",
            totals.notifications.duplicates as usize,
        ),
        (
            "notification events recorded (21)",
            totals.notifications.events as usize,
        ),
        (
            "analysis measurements (22)",
            totals.analyses.measurements as usize,
        ),
        ("failed analyses (23)", totals.analyses.failed as usize),
    ];
    let idle: Vec<&str> = work
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(what, _)| *what)
        .collect();
    assert!(
        idle.is_empty(),
        "checks with nothing to look at over the sweep: {idle:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [3, 17] {
        let first = run_seed(&suite_config(seed));
        let second = run_seed(&suite_config(seed));
        assert_eq!(
            first.digest, second.digest,
            "seed {seed} ran differently twice"
        );
        assert_eq!(first.log, second.log);
        assert!(
            first.log.len() > 100,
            "seed {seed} did too little to compare: {} events",
            first.log.len()
        );
    }
    let other = run_seed(&suite_config(4));
    assert_ne!(
        run_seed(&suite_config(3)).digest,
        other.digest,
        "different seeds should give different runs"
    );
}

/// Runs one seed and asserts it shows no violation of `kinds`.
fn assert_seed_free_of(config: SimulationConfig, kinds: &[ViolationKind]) {
    let report = run_seed(&config);
    let hits: Vec<String> = report
        .violations
        .iter()
        .filter(|v| kinds.contains(&v.kind))
        .map(|v| format!("  {v}"))
        .collect();
    assert!(
        hits.is_empty(),
        "seed {}:\n{}\n  reproduce: {}",
        config.seed,
        hits.join("\n"),
        config.command()
    );
}

// The seeds below showed each bug, now fixed, with the code as of its report. A change of the
// controller changes every run, so a seed may no longer reach the same situation: the sweep
// over every seed above is what keeps each kind away (`SWITCHYARD_SIM_STRICT=1
// SWITCHYARD_SIM_SEEDS=1000` for a longer one); these keep the original reproducers.

/// Seed 1: the status of app-1 records a stop of the generation-1 deployment (superseded by
/// generation 2), the StopDeployment call fails with a 5xx, and it is never sent again: the
/// superseded deployment runs to its end.
#[test]
fn a_stop_recorded_in_the_status_is_sent_even_when_the_first_call_fails() {
    assert_seed_free_of(
        suite_config(1),
        &[
            ViolationKind::StopNeverSent,
            ViolationKind::StuckOnUnsentStop,
        ],
    );
}

/// Seed 3: a pass of app-1 fails (GetDeploymentTarget 5xx), its retry comes due while the
/// lease is briefly not safe, it is dropped from the queue, and the resync skips it because
/// it is in backoff: its status stays at "Install" for the rest of the run.
#[test]
fn a_release_whose_retry_finds_its_lease_unsafe_is_looked_at_again() {
    assert_seed_free_of(suite_config(3), &[ViolationKind::StaleStatus]);
}

/// Seed 47: replica-3's status write commits while it is paused, the reply reaches it after
/// replica-2 took the shard over in a newer term and wrote, and replica-3 then registers a
/// task definition for app-0 anyway.
#[test]
fn a_replica_paused_after_its_status_write_does_not_act_once_its_lease_moved() {
    assert_seed_free_of(suite_config(47), &[ViolationKind::MutationAfterNewerTerm]);
}

/// Seed 13 (the example's default configuration): replica-11 is paused just as its intent
/// to create generation 6's deployment of app-1 commits; replica-17 takes the shard over and
/// deploys generation 6, which succeeds; replica-11 wakes up and sends its CreateDeployment:
/// a second deployment for one rollout of app-1 (then keyed by generation and attempt).
#[test]
fn a_paused_replica_never_creates_a_second_deployment_for_one_attempt() {
    assert_seed_free_of(
        SimulationConfig {
            seed: 13,
            ..SimulationConfig::default()
        },
        &[
            ViolationKind::DuplicateDeployment,
            ViolationKind::MutationAfterNewerTerm,
        ],
    );
}

/// The example's default configuration for `seed`.
fn example_config(seed: u64) -> SimulationConfig {
    SimulationConfig {
        seed,
        ..SimulationConfig::default()
    }
}

/// Seeds 7 and 47 (the example's configuration, with the invariants of rollouts): an
/// injected panic in the resync's DescribeServices ended the resync task of a replica for
/// good, and its releases at rest had no pass for the rest of the run (no wedged release).
#[test]
fn a_panic_in_the_resync_wedges_no_release() {
    for seed in [7, 47] {
        assert_seed_free_of(example_config(seed), &[ViolationKind::Wedged]);
    }
}

/// Seed 172: a StopDeployment succeeded, its four recording writes failed, and the same
/// replica sent it again 60 s later while CodeDeploy was still stopping (stops took 142 s).
#[test]
fn a_failed_recording_write_never_sends_a_stop_twice() {
    assert_seed_free_of(example_config(172), &[ViolationKind::StopSentTwice]);
}

/// Seed 245: the owner's RegisterTaskDefinition was on its way (5 s of latency) when
/// another replica took the shard over and registered the same candidate again.
#[test]
fn a_registration_on_its_way_is_not_repeated_by_the_next_owner() {
    assert_seed_free_of(example_config(245), &[ViolationKind::DuplicateRegistration]);
}

/// The seeds that found the strategy bugs once the simulation covered `taskSets` and `ecs`
/// (the suite's configuration; each has a scenario test of its own in
/// `task_sets_strategy.rs` or `ecs_strategy.rs`): seed 134, a switch whose verdict was not
/// recorded was rolled back onto the old task set and the next candidate created beside it;
/// seed 115, a promote after a hand change mid-step lowered a route switchyard had moved;
/// seeds 95 and 135, a superseded `UpdateService` whose reply was lost left its deployment
/// waited for as someone else's, for good.
#[test]
fn the_seeds_that_found_the_strategy_bugs_keep_their_invariants() {
    use ViolationKind::*;
    let cases: [(u64, &[ViolationKind]); 4] = [
        (134, &[CandidateBesideLeftover, ActiveDeploymentWhenSettled]),
        (115, &[WeightWentDown, WeightAboveStep]),
        (95, &[StaleStatus, NotSettled]),
        (135, &[StaleStatus, NotSettled, LostRequest]),
    ];
    for (seed, kinds) in cases {
        assert_seed_free_of(suite_config(seed), kinds);
    }
}

/// The seed that found a refused task-set clean-up asked again at every pass once
/// notifications woke the release (the suite's configuration; its scenario test is
/// `a_refused_clean_up_backs_off_whatever_wakes_the_release` in `task_sets_strategy.rs`).
#[test]
fn the_seed_that_found_the_refused_clean_up_keeps_its_backoff() {
    assert_seed_free_of(suite_config(174), &[ViolationKind::RefusedCallAskedHot]);
}

/// The notification checks (19 to 21) hold on a few seeds and have deliveries to look at
/// (the checks' unit tests, in the simulation crate's `notification_checks.rs`, craft each
/// violation they are for: a delivery taken out of an outbox without arriving or being
/// counted given up, a message no status recorded, a second arrival by a replica that had
/// heard the first delivered, a rollout without its `RolloutStarted`).
#[test]
fn the_notification_checks_hold_and_have_work() {
    let mut totals = switchyard_simulation::NotificationCounts::default();
    for seed in 0..8 {
        let report = run_seed(&suite_config(seed));
        let notification_kinds = [
            ViolationKind::NotificationLost,
            ViolationKind::NotificationNotRecorded,
            ViolationKind::NotificationDeliveredTwice,
            ViolationKind::EventsDisagreeWithRollouts,
        ];
        let found: Vec<_> = report
            .violations
            .iter()
            .filter(|v| notification_kinds.contains(&v.kind))
            .collect();
        assert!(found.is_empty(), "seed {seed}: {found:?}");
        totals.add(&report.stats.notifications);
    }
    assert!(totals.deliveries > 0 && totals.received > 0, "{totals:?}");
}

/// The seed that found a pass retried after a conflict deciding as of the first attempt's
/// start (the suite's configuration, once analyses and notifications were drawn): the new
/// rollout's `UpdateService` intent was dated before its spec was written, at the very time
/// of the intent of the rollout it replaced, so two calls shared one intent.
#[test]
fn the_seed_that_found_a_stale_intent_after_a_conflict_keeps_one_update_per_intent() {
    assert_seed_free_of(suite_config(329), &[ViolationKind::UpdateServiceTwice]);
}

/// Seed 465: app-1 (ECS) reverts to the version its first rollout deployed two minutes
/// earlier; the revert's `UpdateService` intent is written but its reply lost and the call
/// never made; the replica that takes over looks for what that intent started and adopted
/// the first rollout's finished deployment of the same task definition (within the search's
/// slack): the revert was called succeeded, the service stayed on the newer version with its
/// deployment waiting at a hook for good, and the release Failed as drifted.
#[test]
fn the_seed_that_found_an_earlier_rollouts_deployment_adopted_for_a_lost_intent() {
    assert_seed_free_of(
        suite_config(465),
        &[ViolationKind::ActiveDeploymentWhenSettled],
    );
}
