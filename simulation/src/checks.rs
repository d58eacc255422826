//! The invariants, checked over one run's event log and final state.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::log::{Entry, Event};
use crate::{ReleaseOutcome, Violation, ViolationKind};
use switchyard::lease::Fence;
use switchyard::model::Phase;
use switchyard::ports::Deployment;
use switchyard::reconcile::codedeploy::parse_deployment_description;

/// 1. Never two deployments for one rollout of a release.
pub(super) fn one_deployment_per_attempt(deployments: &[Deployment]) -> Vec<Violation> {
    let mut seen: BTreeMap<(String, u32), &str> = BTreeMap::new();
    let mut violations = Vec::new();
    for deployment in deployments {
        let Some(key) = deployment
            .description
            .as_deref()
            .and_then(parse_deployment_description)
        else {
            continue;
        };
        if let Some(first) = seen.get(&key) {
            violations.push(Violation::new(
                ViolationKind::DuplicateDeployment,
                format!(
                    "two deployments for release {} rollout {}: {first} and {}",
                    key.0, key.1, deployment.id
                ),
            ));
        } else {
            seen.insert(key, &deployment.id);
        }
    }
    violations
}

/// 2. Never two replicas acting on one release in overlapping lease terms.
///
/// Over the status writes the store committed: every write is fenced; per shard the terms
/// never go backwards in commit order; each term has one owner. Over the mutating AWS calls:
/// each was sent under the fence of a status write its replica heard succeed, and never
/// after another replica's write for the same release committed in a newer term. A call sent
/// before that write (in flight when the lease moved) is the documented limit: AWS cannot
/// check a fence.
pub(super) fn one_owner_per_term(
    entries: &[Entry],
    shard_of: impl Fn(&str) -> u32,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut last_term: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut owners: BTreeMap<(u32, u64), String> = BTreeMap::new();
    // Per release, the committed fenced writes so far: (seq, fence).
    let mut committed: BTreeMap<&str, Vec<(u64, &Fence)>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::StatusCommitted {
                release,
                fence: None,
                ..
            } => violations.push(Violation::new(
                ViolationKind::UnfencedStatusWrite,
                format!(
                    "#{} a status write for {release} committed without a fence",
                    entry.seq
                ),
            )),
            Event::StatusCommitted {
                release,
                fence: Some(fence),
                ..
            } => {
                if fence.shard != shard_of(release) {
                    violations.push(Violation::new(
                        ViolationKind::WrongShard,
                        format!(
                            "#{} {release} written under shard {}'s lease; it belongs to shard {}",
                            entry.seq,
                            fence.shard,
                            shard_of(release)
                        ),
                    ));
                }
                if let Some((term, seq)) = last_term.get(&fence.shard)
                    && fence.term < *term
                {
                    violations.push(Violation::new(
                        ViolationKind::TermWentBack,
                        format!(
                            "#{} shard {} went back from term {term} (#{seq}) to term {} ({} writing {release})",
                            entry.seq, fence.shard, fence.term, fence.owner
                        ),
                    ));
                }
                last_term.insert(fence.shard, (fence.term, entry.seq));
                match owners.get(&(fence.shard, fence.term)) {
                    Some(owner) if owner != &fence.owner => violations.push(Violation::new(
                        ViolationKind::TwoOwnersInOneTerm,
                        format!(
                            "#{} shard {} term {} has two owners: {owner} and {}",
                            entry.seq, fence.shard, fence.term, fence.owner
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        owners.insert((fence.shard, fence.term), fence.owner.clone());
                    }
                }
                committed
                    .entry(release.as_str())
                    .or_default()
                    .push((entry.seq, fence));
            }
            Event::MutationIssued {
                replica,
                release,
                operation,
                detail,
                fence,
            } => {
                let Some(fence) = fence else {
                    violations.push(Violation::new(
                        ViolationKind::UnfencedMutation,
                        format!(
                            "#{} {replica} sent {operation} ({detail}) for {release} without having written its status under a fence",
                            entry.seq
                        ),
                    ));
                    continue;
                };
                let newer = committed.get(release.as_str()).and_then(|writes| {
                    writes
                        .iter()
                        .find(|(_, other)| other.owner != *replica && other.term > fence.term)
                });
                if let Some((seq, other)) = newer {
                    violations.push(Violation::new(
                        ViolationKind::MutationAfterNewerTerm,
                        format!(
                            "#{} {replica} sent {operation} ({detail}) for {release} under shard {} term {}, after {} had written its status in term {} (#{seq})",
                            entry.seq, fence.shard, fence.term, other.owner, other.term
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

/// 4. observedGeneration never goes backwards, over every committed status write.
pub(super) fn observed_generation_never_goes_back(entries: &[Entry]) -> Vec<Violation> {
    let mut last: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut violations = Vec::new();
    for entry in entries {
        if let Event::StatusCommitted {
            release,
            observed_generation,
            ..
        } = &entry.event
        {
            if let Some((previous, seq)) = last.get(release.as_str())
                && observed_generation < previous
            {
                violations.push(Violation::new(
                    ViolationKind::GenerationWentBack,
                    format!(
                        "#{} observedGeneration of {release} went back from {previous} (#{seq}) to {observed_generation}",
                        entry.seq
                    ),
                ));
            }
            last.insert(release, (*observed_generation, entry.seq));
        }
    }
    violations
}

/// 3 and 5. Every release settled on its latest spec (Healthy with the desired image live)
/// or on an explicit RolledBack or Failed; the stored generation is the last one written,
/// with the last spec written, and the status describes it and what is live.
pub(super) fn converged(outcomes: &[ReleaseOutcome], entries: &[Entry]) -> Vec<Violation> {
    let stops = stops(entries);
    let mut last_write: BTreeMap<&str, u64> = BTreeMap::new();
    let mut last_write_at: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut last_spec: BTreeMap<&str, (u64, Duration)> = BTreeMap::new();
    let mut settle_end = Duration::ZERO;
    for entry in entries {
        match &entry.event {
            Event::StatusCommitted { release, .. } => {
                last_write.insert(release, entry.seq);
                last_write_at.insert(release, entry.at);
            }
            Event::SpecWritten { release, .. } => {
                last_spec.insert(release, (entry.seq, entry.at));
            }
            Event::Settled { .. } => settle_end = entry.at,
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for outcome in outcomes {
        let name = &outcome.release;
        if outcome.stored_generation != outcome.last_written_generation {
            violations.push(Violation::new(
                ViolationKind::GenerationLost,
                format!(
                    "{name}: the stored generation is {}, the last one written {}",
                    outcome.stored_generation, outcome.last_written_generation
                ),
            ));
        }
        if outcome.stored_tag != outcome.last_written_tag {
            violations.push(Violation::new(
                ViolationKind::SpecLost,
                format!(
                    "{name}: the stored image tag is {}, the last one written {}",
                    outcome.stored_tag, outcome.last_written_tag
                ),
            ));
        }
        let Some(phase) = outcome.phase else {
            violations.push(Violation::new(
                ViolationKind::NotSettled,
                format!("{name}: no status at all"),
            ));
            continue;
        };
        let describe = format!(
            "{phase} for generation {}: {}",
            outcome.observed_generation.unwrap_or(0),
            outcome.message
        );
        let settled = matches!(phase, Phase::Healthy | Phase::RolledBack | Phase::Failed);
        if outcome.observed_generation != Some(outcome.stored_generation) {
            // No pass since the spec was written: the controller never looked again. A status
            // for an older generation written after the spec would be a lost version.
            let spec = last_spec.get(name.as_str());
            let looked_since = spec.is_some_and(|(spec_seq, _)| {
                last_write
                    .get(name.as_str())
                    .is_some_and(|seq| seq > spec_seq)
            });
            let (kind, why) = if looked_since {
                (ViolationKind::StatusNotOnLatest, String::new())
            } else {
                (
                    ViolationKind::StaleStatus,
                    format!(
                        "; generation {} was written at {:.0}s and no status write came after it: no pass has looked since",
                        outcome.stored_generation,
                        spec.map_or(0.0, |(_, at)| at.as_secs_f64())
                    ),
                )
            };
            violations.push(Violation::new(
                kind,
                format!(
                    "{name}: the status describes generation {:?}, the spec is at {} ({describe}){why}",
                    outcome.observed_generation, outcome.stored_generation
                ),
            ));
            continue;
        }
        let quiet_for = last_write_at
            .get(name.as_str())
            .map(|at| settle_end.saturating_sub(*at));
        if !settled {
            let unsent_stop = outcome
                .stop_requested
                .as_deref()
                .filter(|id| stops.get(id).is_some_and(|stop| stop.sent.is_none()));
            let (kind, why) = if let Some(id) = unsent_stop {
                (
                    ViolationKind::StuckOnUnsentStop,
                    format!("it recorded a stop of {id} that never reached CodeDeploy"),
                )
            } else if let Some(quiet) = quiet_for.filter(|quiet| *quiet >= STALE_AFTER) {
                (
                    ViolationKind::StaleStatus,
                    format!(
                        "no status write for {:.0} minutes: no pass has looked since",
                        quiet.as_secs_f64() / 60.0
                    ),
                )
            } else if outcome.active_deployments == 0 {
                (
                    ViolationKind::StaleStatus,
                    "no deployment of its group is active: no pass has looked since".to_string(),
                )
            } else if outcome.tracked_deployment_active == Some(false) {
                (
                    ViolationKind::StaleStatus,
                    "the deployment it tracks has ended: no pass has looked since".to_string(),
                )
            } else if let Some(request) = outcome.unhandled_request {
                (
                    ViolationKind::StaleStatus,
                    format!("a {request} request is waiting: no pass has looked since"),
                )
            } else {
                (
                    ViolationKind::NotSettled,
                    format!("{} deployment(s) still active", outcome.active_deployments),
                )
            };
            violations.push(Violation::new(
                kind,
                format!("{name}: not settled at the limit ({describe}); {why}"),
            ));
            continue;
        }
        if outcome.active_deployments > 0 {
            violations.push(Violation::new(
                ViolationKind::ActiveDeploymentWhenSettled,
                format!(
                    "{name}: {} deployment(s) still active ({describe})",
                    outcome.active_deployments
                ),
            ));
        }
        if phase == Phase::Healthy {
            if outcome.live_image.as_deref() != Some(outcome.last_written_image.as_str()) {
                violations.push(Violation::new(
                    ViolationKind::HealthyButNotLive,
                    format!(
                        "{name}: Healthy, but {} is live, not {}",
                        outcome.live_image.as_deref().unwrap_or("nothing"),
                        outcome.last_written_image
                    ),
                ));
            }
            if outcome.desired_task_definition != outcome.live_task_definition {
                violations.push(Violation::new(
                    ViolationKind::HealthyButNotLive,
                    format!(
                        "{name}: Healthy, but the desired task definition {:?} is not the live {:?}",
                        outcome.desired_task_definition, outcome.live_task_definition
                    ),
                ));
            }
        }
        if outcome.status_live_task_definition != outcome.live_task_definition {
            violations.push(Violation::new(
                ViolationKind::StatusDisagreesWithAws,
                format!(
                    "{name}: the status says {:?} is live, AWS says {:?} ({describe})",
                    outcome.status_live_task_definition, outcome.live_task_definition
                ),
            ));
        }
    }
    violations
}

/// A release whose status nobody wrote for this long while it was not settled was not looked
/// at: no step of a simulated deployment takes this long (the longest, a canary's wait
/// before shifting the rest of the traffic, takes 15 minutes).
const STALE_AFTER: Duration = Duration::from_secs(20 * 60);

/// A recorded stop must have been sent once the release's owner was up (alive, not paused,
/// holding the lease) for this long in all, faults or not: a pass gets through long before,
/// even through the longest backoff.
const STOP_AVAILABLE_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Or once the owner was up for this long after the faults stopped.
const STOP_AVAILABLE_QUIET_LIMIT: Duration = Duration::from_secs(5 * 60);

/// A stop some status recorded, and whether it reached CodeDeploy after that.
struct Stop<'a> {
    seq: u64,
    at: Duration,
    release: &'a str,
    message: &'a str,
    /// The seq of a StopDeployment that took effect (or found it finished) after the record.
    sent: Option<u64>,
}

/// Every stop recorded in a committed status (its first record), by deployment id.
fn stops(entries: &[Entry]) -> BTreeMap<&str, Stop<'_>> {
    let mut stops: BTreeMap<&str, Stop<'_>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::StatusCommitted {
                release,
                stop_requested: Some(id),
                message,
                ..
            } => {
                stops.entry(id.as_str()).or_insert(Stop {
                    seq: entry.seq,
                    at: entry.at,
                    release,
                    message,
                    sent: None,
                });
            }
            // Sent: it took effect (a lost reply took effect too) or found the deployment
            // already finished.
            Event::MutationReturned {
                operation: "codedeploy:StopDeployment",
                detail,
                outcome,
                ..
            } if matches!(outcome.as_str(), "ok" | "ambiguous" | "conflict") => {
                if let Some(stop) = stops.get_mut(detail.as_str()) {
                    stop.sent.get_or_insert(entry.seq);
                }
            }
            _ => {}
        }
    }
    stops
}

/// Invariant 6: a stop the controller recorded in the status (superseded, alarm, abort) is
/// sent: a StopDeployment for that deployment reaches CodeDeploy after the record, unless the
/// deployment ended by itself before the release's owner had a fair chance to send it (see
/// `STOP_AVAILABLE_LIMIT`). Recording the stop and then never sending it (the call failed,
/// the reply to the status write was lost, the replica died in between) leaves an unwanted
/// deployment running to its end.
pub(super) fn recorded_stops_are_sent(
    entries: &[Entry],
    deployments: &[Deployment],
    origin: Timestamp,
    shard_of: impl Fn(&str) -> u32,
) -> Vec<Violation> {
    let owners = Availability::new(entries);
    let mut violations = Vec::new();
    for (id, stop) in stops(entries) {
        if stop.sent.is_some() {
            continue;
        }
        let Some(deployment) = deployments.iter().find(|d| d.id == id) else {
            continue;
        };
        let ended_at = deployment
            .complete_time
            .map(|t| switchyard::clock::elapsed_between(origin, t));
        let until = ended_at.unwrap_or(owners.end);
        let shard = shard_of(stop.release);
        let up = owners.up(shard, stop.at, until);
        let up_quiet = owners.up(shard, stop.at.max(owners.quiesced), until);
        if up < STOP_AVAILABLE_LIMIT && up_quiet < STOP_AVAILABLE_QUIET_LIMIT {
            continue;
        }
        violations.push(Violation::new(
            ViolationKind::StopNeverSent,
            format!(
                "#{} at {:.0}s the status of {} records a stop of {id} (\"{}\"), but no StopDeployment reached CodeDeploy although its owner was up for {:.0}s ({:.0}s without faults); {id} ended {} ({})",
                stop.seq,
                stop.at.as_secs_f64(),
                stop.release,
                stop.message,
                up.as_secs_f64(),
                up_quiet.as_secs_f64(),
                ended_at.map_or("never".to_string(), |end| format!(
                    "at {:.0}s",
                    end.as_secs_f64()
                )),
                deployment.status.as_str()
            ),
        ));
    }
    violations
}

/// Who held each shard's lease when, and when each replica was down or paused: how long a
/// shard had an owner able to act.
struct Availability<'a> {
    /// Per shard: (from, owner), in order; an owner holds until the next entry.
    holders: BTreeMap<u32, Vec<(Duration, Option<&'a str>)>>,
    /// Per replica: when it crashed or was told to stop.
    down_from: BTreeMap<&'a str, Duration>,
    /// Per replica: the intervals it was paused.
    paused: BTreeMap<&'a str, Vec<(Duration, Duration)>>,
    quiesced: Duration,
    end: Duration,
}

impl<'a> Availability<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        let mut this = Self {
            holders: BTreeMap::new(),
            down_from: BTreeMap::new(),
            paused: BTreeMap::new(),
            quiesced: Duration::MAX,
            end: Duration::ZERO,
        };
        for entry in entries {
            this.end = this.end.max(entry.at);
            match &entry.event {
                Event::LeaseTaken { replica, shard, .. } => this
                    .holders
                    .entry(*shard)
                    .or_default()
                    .push((entry.at, Some(replica))),
                Event::LeaseReleased { shard, .. } => this
                    .holders
                    .entry(*shard)
                    .or_default()
                    .push((entry.at, None)),
                Event::ReplicaCrashed { replica, .. } | Event::ReplicaStopping { replica } => {
                    this.down_from.entry(replica).or_insert(entry.at);
                }
                Event::ReplicaFrozen { replica, for_secs } => {
                    this.paused
                        .entry(replica)
                        .or_default()
                        .push((entry.at, entry.at + Duration::from_secs(*for_secs)));
                }
                Event::Quiesced => this.quiesced = entry.at,
                _ => {}
            }
        }
        this
    }

    /// How long within `[from, until)` the shard's holder was alive and not paused.
    fn up(&self, shard: u32, from: Duration, until: Duration) -> Duration {
        let Some(holders) = self.holders.get(&shard) else {
            return Duration::ZERO;
        };
        let mut total = Duration::ZERO;
        for (index, (start, holder)) in holders.iter().enumerate() {
            let Some(holder) = holder else { continue };
            let stop = holders.get(index + 1).map_or(until, |(next, _)| *next);
            let down = self.down_from.get(holder).copied().unwrap_or(Duration::MAX);
            let (a, b) = ((*start).max(from), stop.min(until).min(down));
            if a >= b {
                continue;
            }
            let paused: Duration = self
                .paused
                .get(holder)
                .into_iter()
                .flatten()
                .map(|(p, q)| {
                    let (p, q) = ((*p).max(a), (*q).min(b));
                    q.saturating_sub(p)
                })
                .sum();
            total += (b - a).saturating_sub(paused);
        }
        total
    }
}
