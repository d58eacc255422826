//! The invariants, checked over one run's event log and final state.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::log::{Entry, Event};
use crate::{ReleaseOutcome, Violation, ViolationKind};
use switchyard::lease::Fence;
use switchyard::model::{Outcome, Phase, Reason};
use switchyard::ports::{Deployment, TaskDefinition};
use switchyard::reconcile::REFUSAL_BACKOFF_MAX;
use switchyard::reconcile::candidate::{TAG_FINGERPRINT, TAG_RELEASE};
use switchyard::reconcile::codedeploy::parse_deployment_description;

/// Invariant 1: Never two deployments for one rollout of a release (its deployments' descriptions
/// name the release and the rollout).
pub(super) fn one_deployment_per_rollout(deployments: &[Deployment]) -> Vec<Violation> {
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

/// Invariant 2: Never two replicas acting on one release in overlapping lease terms.
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

/// Invariant 4: observedGeneration never goes backwards, over every committed status write.
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

/// Invariants 3 and 5: Every release settled on its latest spec (Healthy with the desired image live)
/// or on an explicit RolledBack or Failed; the stored generation is the last one written,
/// with the last spec written, and the status describes it and what is live.
pub(super) fn converged(
    outcomes: &[ReleaseOutcome],
    entries: &[Entry],
    candidates: &Candidates<'_>,
) -> Vec<Violation> {
    let stops = stops(entries, candidates);
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
        if phase == Phase::Failed
            && !matches!(
                outcome.reason,
                Some(Reason::DeploymentFailed | Reason::Drifted)
            )
        {
            // A refusal or a panic is asked again once its backoff ends: once the faults are
            // gone, a release does not rest on one.
            violations.push(Violation::new(
                ViolationKind::FailedForAGoneCause,
                format!(
                    "{name}: {describe} ({:?}), although the faults stopped",
                    outcome.reason
                ),
            ));
            continue;
        }
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
    /// The seq of a status that dropped the stop, unsent, because a later generation asked
    /// for the stopped rollout's candidate again (a superseded rollout wanted again goes on).
    withdrawn: Option<u64>,
}

/// Every stop recorded in a committed status (its first record), by deployment id.
fn stops<'a>(entries: &'a [Entry], candidates: &Candidates<'a>) -> BTreeMap<&'a str, Stop<'a>> {
    let mut stops: BTreeMap<&str, Stop<'_>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::StatusCommitted {
                release,
                stop_requested,
                message,
                observed_generation,
                ..
            } => {
                for (id, stop) in stops.iter_mut() {
                    if stop.release == release
                        && stop.sent.is_none()
                        && stop.withdrawn.is_none()
                        && stop_requested.as_deref() != Some(*id)
                        && candidates
                            .asked(release, *observed_generation)
                            .zip(candidates.image_of_deployment(id))
                            .is_some_and(|(asked, image)| asked.image == image)
                    {
                        stop.withdrawn = Some(entry.seq);
                    }
                }
                if let Some(id) = stop_requested {
                    stops.entry(id.as_str()).or_insert(Stop {
                        seq: entry.seq,
                        at: entry.at,
                        release,
                        message,
                        sent: None,
                        withdrawn: None,
                    });
                }
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
    candidates: &Candidates<'_>,
    origin: Timestamp,
    shard_of: impl Fn(&str) -> u32,
) -> Vec<Violation> {
    let owners = Availability::new(entries);
    let mut violations = Vec::new();
    for (id, stop) in stops(entries, candidates) {
        if stop.sent.is_some() || stop.withdrawn.is_some() {
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

    /// Whether `replica` crashed, was told to stop, or was paused at some point within
    /// `[from, until]`.
    fn down_or_paused(&self, replica: &str, from: Duration, until: Duration) -> bool {
        self.down_from
            .get(replica)
            .is_some_and(|down| *down <= until)
            || self
                .paused
                .get(replica)
                .into_iter()
                .flatten()
                .any(|(p, q)| *p <= until && *q >= from)
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

/// Virtual time since the run started, of a timestamp of the simulated world.
fn since(origin: Timestamp, at: Timestamp) -> Duration {
    switchyard::clock::elapsed_between(origin, at)
}

/// What the driver wrote for one generation of a release.
pub(super) struct Written {
    pub image: String,
    pub alarms: bool,
}

/// What each generation asked for and what each rollout deployed: the candidates to
/// compare (in the simulation a candidate differs from another by its image only, and the
/// target never changes: the cluster's two forms are one target).
pub(super) struct Candidates<'a> {
    /// Release -> generation -> what it asked for.
    written: BTreeMap<&'a str, BTreeMap<u64, Written>>,
    /// Release -> rollout serial -> its candidate task definition, from the statuses.
    rollouts: BTreeMap<&'a str, BTreeMap<u32, &'a str>>,
    /// Deployment id -> (release, rollout serial), from the descriptions of ours.
    deployments: BTreeMap<&'a str, (String, u32)>,
    /// Task definition ARN -> its image.
    images: &'a BTreeMap<String, String>,
}

impl<'a> Candidates<'a> {
    pub(super) fn new(
        entries: &'a [Entry],
        deployments: &'a [Deployment],
        images: &'a BTreeMap<String, String>,
    ) -> Self {
        let mut written: BTreeMap<&str, BTreeMap<u64, Written>> = BTreeMap::new();
        let mut rollouts: BTreeMap<&str, BTreeMap<u32, &str>> = BTreeMap::new();
        for entry in entries {
            match &entry.event {
                Event::SpecWritten {
                    release,
                    generation,
                    image,
                    alarms,
                    ..
                } => {
                    written.entry(release.as_str()).or_default().insert(
                        *generation,
                        Written {
                            image: image.clone(),
                            alarms: *alarms,
                        },
                    );
                }
                Event::StatusCommitted {
                    release,
                    rollout: Some(rollout),
                    ..
                } => {
                    rollouts
                        .entry(release.as_str())
                        .or_default()
                        .entry(rollout.serial)
                        .or_insert(rollout.candidate.as_str());
                }
                _ => {}
            }
        }
        let deployments = deployments
            .iter()
            .filter_map(|d| {
                let ours = d
                    .description
                    .as_deref()
                    .and_then(parse_deployment_description)?;
                Some((d.id.as_str(), ours))
            })
            .collect();
        Self {
            written,
            rollouts,
            deployments,
            images,
        }
    }

    /// What this generation of the release asked for.
    pub(super) fn asked(&self, release: &str, generation: u64) -> Option<&Written> {
        self.written.get(release)?.get(&generation)
    }

    /// The generations written from `from` to `to` (inclusive), in order.
    fn asked_between(&self, release: &str, from: u64, to: u64) -> impl Iterator<Item = &Written> {
        self.written
            .get(release)
            .into_iter()
            .flat_map(move |generations| generations.range(from..=to).map(|(_, w)| w))
    }

    /// The image of a rollout's candidate.
    pub(super) fn image_of_rollout(&self, release: &str, serial: u32) -> Option<&str> {
        let candidate = self.rollouts.get(release)?.get(&serial)?;
        self.images.get(*candidate).map(String::as_str)
    }

    /// The release and rollout of one of our deployments.
    fn rollout_of_deployment(&self, id: &str) -> Option<(&str, u32)> {
        self.deployments
            .get(id)
            .map(|(release, serial)| (release.as_str(), *serial))
    }

    /// The image of the candidate one of our deployments rolls out.
    pub(super) fn image_of_deployment(&self, id: &str) -> Option<&str> {
        let (release, serial) = self.rollout_of_deployment(id)?;
        self.image_of_rollout(release, serial)
    }
}

/// What the edits check counted, so that a run shows it was not vacuous.
#[derive(Debug, Default)]
pub(super) struct EditCounts {
    /// Edits that kept the candidate while a deployment of the release was active.
    pub in_flight: u32,
    /// Stops recorded (each checked against the spec in force when it was decided).
    pub stops: u32,
    /// Generations asking for an image an earlier generation of the release asked for.
    pub wanted_again: u32,
}

/// How long before a deployment was created an abort may have been written and still be
/// what stops it (the pass that created it had read the requests before).
const ABORT_BEFORE_CREATE: Duration = Duration::from_secs(120);

/// Invariant 7: No edit that keeps the candidate stops a rollout.
///
/// - Every stop a status records as superseding (`stop.superseded`) was decided under a
///   generation whose image is not the image of the stopped deployment's rollout.
/// - Every other stop recorded has a cause: an abort written since (about) the deployment
///   was created, or the release's alarm in ALARM during the deployment while the spec of
///   that generation names it.
/// - No rollout ends `Superseded` while every generation written from its start to its end
///   asked for its image.
///
/// A stop is judged by the first status that records it (its decision); a stop recorded,
/// cleared (its call failed) and recorded again is judged again.
pub(super) fn edits_keep_rollouts(
    entries: &[Entry],
    deployments: &[Deployment],
    candidates: &Candidates<'_>,
    origin: Timestamp,
) -> (Vec<Violation>, EditCounts) {
    let mut counts = EditCounts::default();
    let mut violations = Vec::new();
    let mut seen_images: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut stop_now: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    let mut outcomes: BTreeMap<(&str, u32), Option<Outcome>> = BTreeMap::new();
    let mut aborts: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    // Per alarm: (at, firing).
    let mut alarm_states: BTreeMap<&str, Vec<(Duration, bool)>> = BTreeMap::new();
    // Per (release, rollout): the first entry whose analysis failed (pushed right after the
    // status write that recorded it).
    let mut failed_analyses: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for entry in entries {
        if let Event::AnalysisCommitted(analysis) = &entry.event
            && analysis.phase == switchyard::model::analysis::AnalysisPhase::Failed
            && let Some(serial) = analysis.serial
        {
            failed_analyses
                .entry((analysis.release.as_str(), serial))
                .or_insert(entry.seq);
        }
    }
    for entry in entries {
        match &entry.event {
            Event::SpecWritten {
                release,
                image,
                keeps_candidate,
                in_flight,
                ..
            } => {
                if *keeps_candidate && in_flight.is_some() {
                    counts.in_flight += 1;
                }
                let seen = seen_images.entry(release.as_str()).or_default();
                if seen.contains(&image.as_str()) {
                    counts.wanted_again += 1;
                }
                seen.push(image);
            }
            Event::Requested {
                release,
                kind: "abort",
                ok: true,
                ..
            } => aborts.entry(release.as_str()).or_default().push(entry.at),
            Event::AlarmSet { alarm, state } => alarm_states
                .entry(alarm.as_str())
                .or_default()
                .push((entry.at, *state == "ALARM")),
            Event::StatusCommitted {
                release,
                observed_generation,
                stop_requested,
                stop_superseded,
                rollout,
                ..
            } => {
                let previous = stop_now
                    .insert(release.as_str(), stop_requested.as_deref())
                    .flatten();
                if let Some(id) = stop_requested.as_deref()
                    && previous != Some(id)
                {
                    counts.stops += 1;
                    let context = StopContext {
                        deployments,
                        candidates,
                        aborts: &aborts,
                        alarm_states: &alarm_states,
                        failed_analyses: &failed_analyses,
                        origin,
                    };
                    violations.extend(judge_stop(
                        entry,
                        release,
                        *observed_generation,
                        id,
                        *stop_superseded,
                        &context,
                    ));
                }
                let Some(rollout) = rollout else { continue };
                let before = outcomes.insert((release.as_str(), rollout.serial), rollout.outcome);
                if rollout.outcome != Some(Outcome::Superseded)
                    || before.flatten() == Some(Outcome::Superseded)
                {
                    continue;
                }
                let Some(image) = candidates.image_of_rollout(release, rollout.serial) else {
                    continue;
                };
                let mut asked = candidates
                    .asked_between(release, rollout.generation, *observed_generation)
                    .peekable();
                if asked.peek().is_some() && asked.all(|w| w.image == image) {
                    violations.push(Violation::new(
                        ViolationKind::SupersededWithoutNewCandidate,
                        format!(
                            "#{} rollout {} of {release} ({image}) ended Superseded at generation {observed_generation}, but every generation since it started ({}) asked for that image",
                            entry.seq, rollout.serial, rollout.generation
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    (violations, counts)
}

/// What judging a recorded stop needs.
struct StopContext<'c, 'a> {
    deployments: &'c [Deployment],
    candidates: &'c Candidates<'a>,
    aborts: &'c BTreeMap<&'a str, Vec<Duration>>,
    alarm_states: &'c BTreeMap<&'a str, Vec<(Duration, bool)>>,
    failed_analyses: &'c BTreeMap<(&'a str, u32), u64>,
    origin: Timestamp,
}

/// Judges one stop a status records for the first time (see [`edits_keep_rollouts`]).
fn judge_stop(
    entry: &Entry,
    release: &str,
    generation: u64,
    id: &str,
    superseded: bool,
    ctx: &StopContext<'_, '_>,
) -> Option<Violation> {
    let deployment = ctx.deployments.iter().find(|d| d.id == id)?;
    let (owner, serial) = ctx.candidates.rollout_of_deployment(id)?;
    if owner != release {
        return None;
    }
    let image = ctx.candidates.image_of_rollout(release, serial)?;
    let asked = ctx.candidates.asked(release, generation)?;
    if superseded {
        return (asked.image == image).then(|| {
            Violation::new(
                ViolationKind::EditStoppedRollout,
                format!(
                    "#{} the status of {release} records a stop of {id} (rollout {serial}, {image}) as superseded at generation {generation}, which asks for the same image",
                    entry.seq
                ),
            )
        });
    }
    let created = deployment
        .create_time
        .map_or(Duration::ZERO, |t| since(ctx.origin, t));
    let aborted = ctx.aborts.get(release).is_some_and(|times| {
        times
            .iter()
            .any(|at| *at + ABORT_BEFORE_CREATE >= created && *at <= entry.at)
    });
    let alarm = format!("{release}-5xx");
    let fired = asked.alarms
        && ctx.alarm_states.get(alarm.as_str()).is_some_and(|states| {
            let firing_at_create = states
                .iter()
                .take_while(|(at, _)| *at <= created)
                .last()
                .is_some_and(|(_, firing)| *firing);
            firing_at_create
                || states
                    .iter()
                    .any(|(at, firing)| *firing && *at >= created && *at <= entry.at)
        });
    // A failed analysis (at CodeDeploy's Ready gate) rolls its rollout back: recorded in
    // the same write as the stop, or before it.
    let analysis_failed = ctx
        .failed_analyses
        .get(&(release, serial))
        .is_some_and(|seq| *seq <= entry.seq + 2);
    (!aborted && !fired && !analysis_failed).then(|| {
        Violation::new(
            ViolationKind::StopWithoutCause,
            format!(
                "#{} the status of {release} records a stop of {id} (rollout {serial}) at generation {generation} for neither a new candidate, an abort, a firing alarm the spec names nor a failed analysis",
                entry.seq
            ),
        )
    })
}

/// Invariant 8: At most one RegisterTaskDefinition per candidate fingerprint per release: no two
/// revisions ECS holds carry the same release and fingerprint tags. Returns the number of
/// revisions switchyard registered.
pub(super) fn one_registration_per_candidate(
    task_definitions: &[TaskDefinition],
) -> (Vec<Violation>, usize) {
    let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut registered = 0;
    for revision in task_definitions {
        let (Some(release), Some(fingerprint)) = (
            revision.tags.get(TAG_RELEASE),
            revision.tags.get(TAG_FINGERPRINT),
        ) else {
            continue;
        };
        registered += 1;
        match seen.get(&(release.as_str(), fingerprint.as_str())) {
            Some(first) => violations.push(Violation::new(
                ViolationKind::DuplicateRegistration,
                format!(
                    "{release}: candidate {fingerprint} registered twice: {first} and {}",
                    revision.arn
                ),
            )),
            None => {
                seen.insert((release, fingerprint), &revision.arn);
            }
        }
    }
    (violations, registered)
}

/// What the one-mutation-per-intent check counted.
#[derive(Debug, Default)]
pub(super) struct MutationCounts {
    /// StopDeployment calls CodeDeploy accepted.
    pub stops_accepted: u32,
    /// Accepted StopDeployment calls after a first one that succeeded, excused because the
    /// replica that made the first one crashed, stopped or froze before recording it.
    pub resends_excused: u32,
    /// The same, excused because its lease moved to another replica before it could
    /// record it (the new owner cannot know; see [`one_mutation_per_intent`]).
    pub resends_after_handover: u32,
    pub continues_accepted: u32,
}

/// One StopDeployment call of a replica, as the log shows it.
struct StopCall<'a> {
    replica: &'a str,
    issued: u64,
    issued_at: Duration,
    /// (seq, at, outcome) once it returned.
    returned: Option<(u64, Duration, &'a str)>,
}

/// Invariant 9: No mutation twice per intent.
///
/// - No deployment accepts a second StopDeployment after a first one succeeded, unless the
///   replica that made the first one could not record it and someone else sent the second:
///   that replica crashed, was stopped or was frozen, or its lease moved to another replica,
///   before a status of its saying the stop was sent committed. A call whose reply was lost
///   is no success here (its replica saw an error). A failed status write is no excuse for
///   the replica itself: it is up and knows (the same replica never sends it twice). Once a
///   committed status says the stop was sent, nobody sends it again.
/// - No deployment accepts two ContinueDeployment calls (one Ready period each in the
///   simulation).
/// - CreateDeployment: check 1 (one deployment per rollout); RegisterTaskDefinition: check 8.
pub(super) fn one_mutation_per_intent(
    entries: &[Entry],
    deployments: &[Deployment],
    stop_calls: &BTreeMap<String, u32>,
    continue_calls: &BTreeMap<String, u32>,
    origin: Timestamp,
    shard_of: impl Fn(&str) -> u32,
) -> (Vec<Violation>, MutationCounts) {
    let mut counts = MutationCounts {
        stops_accepted: stop_calls.values().sum(),
        continues_accepted: continue_calls.values().sum(),
        ..MutationCounts::default()
    };
    let mut violations = Vec::new();
    for (id, n) in continue_calls {
        if *n > 1 {
            violations.push(Violation::new(
                ViolationKind::ContinuedTwice,
                format!("{id} accepted {n} ContinueDeployment calls"),
            ));
        }
    }
    let availability = Availability::new(entries);
    for (id, n) in stop_calls {
        if *n < 2 {
            continue;
        }
        let mut calls: Vec<StopCall<'_>> = Vec::new();
        let mut release = None;
        for entry in entries {
            match &entry.event {
                Event::MutationIssued {
                    replica,
                    release: of,
                    operation: "codedeploy:StopDeployment",
                    detail,
                    ..
                } if detail == id => {
                    release = Some(of.as_str());
                    calls.push(StopCall {
                        replica,
                        issued: entry.seq,
                        issued_at: entry.at,
                        returned: None,
                    });
                }
                Event::MutationReturned {
                    replica,
                    operation: "codedeploy:StopDeployment",
                    detail,
                    outcome,
                    ..
                } if detail == id => {
                    if let Some(call) = calls
                        .iter_mut()
                        .rev()
                        .find(|c| c.replica == replica && c.returned.is_none())
                    {
                        call.returned = Some((entry.seq, entry.at, outcome));
                    }
                }
                _ => {}
            }
        }
        let Some(release) = release else { continue };
        let shard = shard_of(release);
        let completed = deployments
            .iter()
            .find(|d| &d.id == id)
            .and_then(|d| d.complete_time)
            .map(|t| since(origin, t));
        // A later call was accepted if it succeeded, or its reply was lost while the
        // deployment was still going.
        let accepted = |call: &StopCall<'_>| match call.returned {
            Some((_, _, "ok")) => true,
            Some((_, at, "ambiguous")) => completed.is_none_or(|end| at < end),
            _ => false,
        };
        let mut found = None;
        for (i, first) in calls.iter().enumerate() {
            let Some((returned_seq, _, "ok")) = first.returned else {
                continue;
            };
            for second in calls[i + 1..].iter().filter(|c| c.issued > returned_seq) {
                if !accepted(second) {
                    continue;
                }
                let between = &entries[returned_seq as usize..second.issued as usize];
                let recorded = between.iter().any(|e| {
                    matches!(&e.event, Event::StatusCommitted {
                        stop_requested: Some(stopping),
                        stop_sent: true,
                        ..
                    } if stopping == id)
                });
                let went_down =
                    availability.down_or_paused(first.replica, first.issued_at, second.issued_at);
                // The lease may have moved while the first call was on its way.
                let since_sent = &entries[first.issued as usize..second.issued as usize];
                let handed_over = since_sent.iter().any(|e| {
                    matches!(&e.event, Event::LeaseTaken { replica, shard: taken, .. }
                        if *taken == shard && replica != first.replica)
                });
                let other = second.replica != first.replica;
                if !recorded && other && went_down {
                    counts.resends_excused += 1;
                } else if !recorded && other && handed_over {
                    counts.resends_after_handover += 1;
                } else if found.is_none() {
                    found = Some(Violation::new(
                        ViolationKind::StopSentTwice,
                        format!(
                            "#{} {} sent StopDeployment {id} again (accepted) after #{} {}'s call had succeeded (#{returned_seq}); {}",
                            second.issued,
                            second.replica,
                            first.issued,
                            first.replica,
                            if recorded {
                                "a committed status said the stop was sent".to_string()
                            } else if !other {
                                "the same replica, which knew".to_string()
                            } else {
                                format!(
                                    "{} was up, kept its lease and did not record it",
                                    first.replica
                                )
                            }
                        ),
                    ));
                }
            }
        }
        violations.extend(found);
    }
    (violations, counts)
}

/// What the requests check counted.
#[derive(Debug, Default)]
pub(super) struct RequestCounts {
    pub handled: usize,
    pub declined: usize,
    /// Requests overwritten by a newer one of the same kind before any pass handled them.
    pub replaced: usize,
}

/// A request: (release, kind, requestedAt).
type HandledKey<'a> = (&'a str, &'a str, Timestamp);
/// The first status that handled a request: its seq and the request's history entry.
type FirstHandled<'a> = (u64, Option<&'a (Outcome, String)>);

/// Invariant 10: No lost request: every promote, abort and retry the driver wrote is handled (its
/// `requestedAt` among the status's `handledRequests`) by the end, unless a newer request of
/// the same kind replaced it first; and the status that first records it handled holds its
/// history entry: carried out (`Promoted`, `Aborted`, `Retried`), or `Declined` with the
/// reason.
pub(super) fn requests_are_handled(entries: &[Entry]) -> (Vec<Violation>, RequestCounts) {
    // (release, kind) -> requests in order: (seq, requested_at).
    let mut requests: BTreeMap<(&str, &str), Vec<(u64, Timestamp)>> = BTreeMap::new();
    // (release, kind, requested_at) -> (seq, history entry) of the first status handling it.
    let mut handled: BTreeMap<HandledKey<'_>, FirstHandled<'_>> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::Requested {
                release,
                kind,
                requested_at,
                ok: true,
                ..
            } => requests
                .entry((release.as_str(), *kind))
                .or_default()
                .push((entry.seq, *requested_at)),
            Event::StatusCommitted {
                release,
                handled: records,
                ..
            } => {
                for record in records {
                    handled
                        .entry((release.as_str(), record.kind, record.requested_at))
                        .or_insert((entry.seq, record.entry.as_ref()));
                }
            }
            _ => {}
        }
    }
    let mut counts = RequestCounts::default();
    let mut violations = Vec::new();
    for ((release, kind), list) in &requests {
        for (i, (seq, requested_at)) in list.iter().enumerate() {
            let first = handled.get(&(*release, *kind, *requested_at));
            let replaced_at = list.get(i + 1).map(|(next, _)| *next);
            match first {
                None => {
                    if replaced_at.is_some() {
                        counts.replaced += 1;
                    } else {
                        violations.push(Violation::new(
                            ViolationKind::LostRequest,
                            format!(
                                "#{seq} the {kind} request of {release} ({requested_at}) was never handled"
                            ),
                        ));
                    }
                }
                Some((handled_seq, entry)) => {
                    counts.handled += 1;
                    let carried_out = match *kind {
                        "promote" => Outcome::Promoted,
                        "abort" => Outcome::Aborted,
                        _ => Outcome::Retried,
                    };
                    match entry {
                        Some((Outcome::Declined, why)) if !why.trim().is_empty() => {
                            counts.declined += 1;
                        }
                        Some((outcome, _)) if *outcome == carried_out => {}
                        other => violations.push(Violation::new(
                            ViolationKind::RequestWithoutHistory,
                            format!(
                                "#{handled_seq} the status of {release} records the {kind} request of #{seq} handled, with {} in its history",
                                match other {
                                    Some((outcome, why)) => format!("{outcome:?} \"{why}\""),
                                    None => "no entry for it".to_string(),
                                }
                            ),
                        )),
                    }
                }
            }
        }
    }
    (violations, counts)
}

/// A release's owner up this long in all (alive, not paused, holding the lease) without a
/// pass for it is wedged: a failed pass is retried within the loop's backoff (at most 5
/// minutes), and every other release is looked at by every resync (each minute).
const WEDGED_AFTER: Duration = Duration::from_secs(8 * 60);

/// Invariant 11: No wedged release: between two passes of a release (and from the start to its first
/// pass, and from its last pass to the end of the settling), its shard's owner is never up
/// for longer than [`WEDGED_AFTER`]. Returns the longest such stretch.
pub(super) fn no_wedged_release(
    entries: &[Entry],
    passes: &BTreeMap<String, Vec<Duration>>,
    releases: &[String],
    shard_of: impl Fn(&str) -> u32,
) -> (Vec<Violation>, Duration) {
    let owners = Availability::new(entries);
    let end = entries
        .iter()
        .find_map(|e| matches!(e.event, Event::Settled { .. }).then_some(e.at))
        .unwrap_or(owners.end);
    let mut violations = Vec::new();
    let mut longest = Duration::ZERO;
    for release in releases {
        let shard = shard_of(release);
        let times = passes.get(release).map(Vec::as_slice).unwrap_or(&[]);
        let mut from = Duration::ZERO;
        let mut worst: Option<(Duration, Duration, Duration)> = None;
        for until in times
            .iter()
            .copied()
            .filter(|t| *t <= end)
            .chain(std::iter::once(end))
        {
            let up = owners.up(shard, from, until);
            longest = longest.max(up);
            if up > WEDGED_AFTER && worst.is_none_or(|(w, _, _)| up > w) {
                worst = Some((up, from, until));
            }
            from = until;
        }
        if let Some((up, from, until)) = worst {
            violations.push(Violation::new(
                ViolationKind::Wedged,
                format!(
                    "{release}: no pass from {:.0}s to {:.0}s, while its owner was up for {:.0}s of it",
                    from.as_secs_f64(),
                    until.as_secs_f64(),
                    up.as_secs_f64()
                ),
            ));
        }
    }
    (violations, longest)
}

/// The most attempts a refused call may get in `length` when each is asked again only after
/// the refusal backoff (`refusal_delay`: 1 s doubling per refusal, at most
/// [`REFUSAL_BACKOFF_MAX`], jitter only adding to it).
fn refusal_budget(length: Duration) -> usize {
    let mut attempts = 1;
    let mut elapsed = Duration::ZERO;
    let mut delay = Duration::from_secs(1);
    loop {
        elapsed += delay;
        if elapsed > length {
            return attempts;
        }
        attempts += 1;
        delay = (delay * 2).min(REFUSAL_BACKOFF_MAX);
    }
}

/// Invariant 12: Refusals back off: while AWS refuses an operation (an episode of
/// `AccessDeniedException`), each release asks for it no more often than the refusal
/// backoff allows. The budget starts again wherever the controller rightly starts again: a
/// spec write, a `retry`, any call of the release that succeeded; and it grows by one for
/// each of the release's status writes that failed (a refusal not recorded is asked again)
/// and each crash or stop of a replica within the episode. Returns the number of refused
/// attempts.
pub(super) fn refusals_back_off(entries: &[Entry]) -> (Vec<Violation>, usize) {
    // Episodes: (operation, start, end).
    let mut episodes: Vec<(&str, Duration, Duration)> = Vec::new();
    let mut open: BTreeMap<&str, Duration> = BTreeMap::new();
    let end = entries.last().map_or(Duration::ZERO, |e| e.at);
    for entry in entries {
        if let Event::Refusals { operation, on } = &entry.event {
            if *on {
                open.insert(operation, entry.at);
            } else if let Some(start) = open.remove(operation) {
                episodes.push((operation, start, entry.at));
            }
        }
    }
    episodes.extend(open.into_iter().map(|(op, start)| (op, start, end)));

    let mut violations = Vec::new();
    let mut refused = 0;
    for (operation, start, stop) in episodes {
        let within = entries
            .iter()
            .filter(|e| e.at >= start && e.at <= stop)
            .collect::<Vec<_>>();
        let crashes = within
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    Event::ReplicaCrashed { .. } | Event::ReplicaStopping { .. }
                )
            })
            .count();
        // Per release: attempts, resets, failed writes.
        let mut attempts: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut resets: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut failed_writes: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &within {
            match &e.event {
                Event::MutationReturned {
                    release,
                    operation: op,
                    outcome,
                    ..
                } if *op == operation && outcome == "access_denied" => {
                    attempts.entry(release.as_str()).or_default().push(e.at);
                }
                Event::MutationReturned {
                    release, outcome, ..
                } if outcome == "ok" => resets.entry(release.as_str()).or_default().push(e.at),
                Event::SpecWritten { release, .. }
                | Event::Requested {
                    release,
                    kind: "retry",
                    ok: true,
                    ..
                } => resets.entry(release.as_str()).or_default().push(e.at),
                Event::StatusWriteFailed { release, .. } => {
                    *failed_writes.entry(release.as_str()).or_default() += 1;
                }
                _ => {}
            }
        }
        for (release, times) in attempts {
            refused += times.len();
            let mut cuts = vec![start];
            cuts.extend(resets.get(release).into_iter().flatten().copied());
            cuts.push(stop);
            let budget: usize = cuts
                .windows(2)
                .map(|w| refusal_budget(w[1].saturating_sub(w[0])))
                .sum::<usize>()
                + failed_writes.get(release).copied().unwrap_or(0)
                + crashes;
            if times.len() > budget {
                violations.push(Violation::new(
                    ViolationKind::RefusedCallAskedHot,
                    format!(
                        "{release}: {operation} was refused from {:.0}s to {:.0}s and asked {} times; the refusal backoff allows {budget}",
                        start.as_secs_f64(),
                        stop.as_secs_f64(),
                        times.len()
                    ),
                ));
            }
        }
    }
    (violations, refused)
}

/// Each new check, on small logs written by hand: it finds what it is for, and lets pass
/// what the controller rightly does.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{HandledRequest, RolloutSeen};
    use switchyard::ports::{DeploymentCreator, DeploymentStatus};

    fn origin() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    /// Entries at the given seconds, numbered in order.
    fn log(events: Vec<(u64, Event)>) -> Vec<Entry> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, (at, event))| Entry {
                seq: seq as u64,
                at: Duration::from_secs(at),
                event,
            })
            .collect()
    }

    fn fence(owner: &str, term: u64) -> Option<Fence> {
        Some(Fence {
            shard: 0,
            owner: owner.into(),
            term,
        })
    }

    fn image(tag: &str) -> String {
        format!("registry/web:{tag}")
    }

    fn spec(generation: u64, tag: &str, keeps_candidate: bool) -> Event {
        Event::SpecWritten {
            release: "web".into(),
            generation,
            tag: tag.into(),
            image: image(tag),
            edit: "test".into(),
            keeps_candidate,
            alarms: false,
            paused: false,
            in_flight: None,
            strategy: "codeDeploy",
            steps: Vec::new(),
        }
    }

    /// A committed status of `web` at `generation`, with rollout 1 (web:2) and a stop.
    fn status(
        generation: u64,
        stop: Option<(&str, bool, bool)>,
        outcome: Option<Outcome>,
    ) -> Event {
        Event::StatusCommitted {
            release: "web".into(),
            fence: fence("replica-1", 1),
            version: 0,
            observed_generation: generation,
            phase: Phase::Progressing,
            message: String::new(),
            stop_requested: stop.map(|(id, _, _)| id.to_string()),
            stop_sent: stop.is_some_and(|(_, sent, _)| sent),
            stop_superseded: stop.is_some_and(|(_, _, superseded)| superseded),
            rollout: Some(RolloutSeen {
                serial: 1,
                generation: 1,
                candidate: "web:2".into(),
                outcome,
            }),
            handled: Vec::new(),
            task_sets: None,
            ecs: None,
        }
    }

    fn deployment(id: &str) -> Deployment {
        Deployment {
            id: id.into(),
            application: "web".into(),
            deployment_group: "web-prod".into(),
            status: DeploymentStatus::InProgress,
            description: Some("switchyard release=web rollout=1".into()),
            creator: DeploymentCreator::User,
            deployment_config: "CodeDeployDefault.ECSAllAtOnce".into(),
            create_time: Some(origin()),
            complete_time: None,
            error: None,
            rollback: None,
        }
    }

    fn images() -> BTreeMap<String, String> {
        BTreeMap::from([("web:2".to_string(), image("2.0"))])
    }

    fn kinds(violations: &[Violation]) -> Vec<ViolationKind> {
        violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_stop_superseding_a_rollout_under_its_own_candidate_is_found() {
        let deployments = [deployment("d-1")];
        let images = images();
        // A label edit (generation 2 keeps 2.0) followed by a stop "superseded".
        let entries = log(vec![
            (0, spec(1, "2.0", false)),
            (1, status(1, None, None)),
            (10, spec(2, "2.0", true)),
            (11, status(2, Some(("d-1", false, true)), None)),
            (60, status(2, None, Some(Outcome::Superseded))),
        ]);
        let candidates = Candidates::new(&entries, &deployments, &images);
        let (violations, counts) =
            edits_keep_rollouts(&entries, &deployments, &candidates, origin());
        assert_eq!(
            kinds(&violations),
            [
                ViolationKind::EditStoppedRollout,
                ViolationKind::SupersededWithoutNewCandidate
            ]
        );
        assert_eq!(counts.stops, 1);

        // A new image: the same stop is right.
        let entries = log(vec![
            (0, spec(1, "2.0", false)),
            (1, status(1, None, None)),
            (10, spec(2, "3.0", false)),
            (11, status(2, Some(("d-1", false, true)), None)),
            (60, status(2, None, Some(Outcome::Superseded))),
        ]);
        let candidates = Candidates::new(&entries, &deployments, &images);
        let (violations, _) = edits_keep_rollouts(&entries, &deployments, &candidates, origin());
        assert_eq!(kinds(&violations), []);
    }

    #[test]
    fn a_stop_without_an_abort_or_a_firing_alarm_is_found() {
        let deployments = [deployment("d-1")];
        let images = images();
        let abort = Event::Requested {
            release: "web".into(),
            kind: "abort",
            generation: 1,
            requested_at: origin(),
            ok: true,
            full: false,
        };
        for (cause, found) in [(None, true), (Some(abort), false)] {
            let mut events = vec![(0, spec(1, "2.0", false)), (1, status(1, None, None))];
            events.extend(cause.map(|c| (5, c)));
            events.push((11, status(1, Some(("d-1", false, false)), None)));
            let entries = log(events);
            let candidates = Candidates::new(&entries, &deployments, &images);
            let (violations, _) =
                edits_keep_rollouts(&entries, &deployments, &candidates, origin());
            assert_eq!(
                kinds(&violations) == [ViolationKind::StopWithoutCause],
                found
            );
        }
    }

    fn registered(arn: &str, fingerprint: &str) -> TaskDefinition {
        TaskDefinition {
            arn: arn.into(),
            family: "web".into(),
            revision: 0,
            status: "ACTIVE".into(),
            containers: Vec::new(),
            other_fields_digest: String::new(),
            tags: BTreeMap::from([
                (TAG_RELEASE.to_string(), "web".to_string()),
                (TAG_FINGERPRINT.to_string(), fingerprint.to_string()),
            ]),
        }
    }

    #[test]
    fn two_revisions_for_one_fingerprint_are_found() {
        let (violations, n) =
            one_registration_per_candidate(&[registered("web:2", "a"), registered("web:3", "b")]);
        assert_eq!((kinds(&violations), n), (vec![], 2));
        let (violations, _) =
            one_registration_per_candidate(&[registered("web:2", "a"), registered("web:3", "a")]);
        assert_eq!(kinds(&violations), [ViolationKind::DuplicateRegistration]);
    }

    fn stop_call(replica: &str, outcome: &str) -> [Event; 2] {
        [
            Event::MutationIssued {
                replica: replica.into(),
                release: "web".into(),
                operation: "codedeploy:StopDeployment",
                detail: "d-1".into(),
                fence: fence(replica, 1),
            },
            Event::MutationReturned {
                replica: replica.into(),
                release: "web".into(),
                operation: "codedeploy:StopDeployment",
                detail: "d-1".into(),
                outcome: outcome.into(),
            },
        ]
    }

    fn stops_twice(between: Vec<Event>, second: &str) -> (Vec<ViolationKind>, MutationCounts) {
        let mut events: Vec<(u64, Event)> = Vec::new();
        events.push((
            0,
            Event::LeaseTaken {
                replica: "replica-1".into(),
                shard: 0,
                term: 1,
            },
        ));
        events.extend(stop_call("replica-1", "ok").map(|e| (10, e)));
        events.extend(between.into_iter().map(|e| (20, e)));
        events.extend(stop_call(second, "ok").map(|e| (90, e)));
        let entries = log(events);
        let calls = BTreeMap::from([("d-1".to_string(), 2)]);
        let (violations, counts) = one_mutation_per_intent(
            &entries,
            &[deployment("d-1")],
            &calls,
            &BTreeMap::new(),
            origin(),
            |_| 0,
        );
        (kinds(&violations), counts)
    }

    #[test]
    fn a_stop_sent_again_by_who_knew_it_succeeded_is_found() {
        // The same replica, whose recording write failed.
        let (found, _) = stops_twice(vec![], "replica-1");
        assert_eq!(found, [ViolationKind::StopSentTwice]);
        // Another replica after a status said it was sent.
        let recorded = status(1, Some(("d-1", true, false)), None);
        let taken = Event::LeaseTaken {
            replica: "replica-2".into(),
            shard: 0,
            term: 2,
        };
        let (found, _) = stops_twice(vec![recorded, taken.clone()], "replica-2");
        assert_eq!(found, [ViolationKind::StopSentTwice]);
        // Another replica, after the first crashed before recording it: excused.
        let crashed = Event::ReplicaCrashed {
            replica: "replica-1".into(),
            point: "at a random point",
        };
        let (found, counts) = stops_twice(vec![crashed, taken.clone()], "replica-2");
        assert_eq!((found, counts.resends_excused), (vec![], 1));
        // Another replica, after the lease moved before the first could record it.
        let (found, counts) = stops_twice(vec![taken], "replica-2");
        assert_eq!((found, counts.resends_after_handover), (vec![], 1));
        // The lease moved while the first call was on its way (seed 619 of 2000).
        let mut events: Vec<(u64, Event)> = Vec::new();
        let [issued, returned] = stop_call("replica-1", "ok");
        events.push((10, issued));
        events.push((
            11,
            Event::LeaseTaken {
                replica: "replica-2".into(),
                shard: 0,
                term: 2,
            },
        ));
        events.push((12, returned));
        events.extend(stop_call("replica-2", "ok").map(|e| (90, e)));
        let (violations, counts) = one_mutation_per_intent(
            &log(events),
            &[deployment("d-1")],
            &BTreeMap::from([("d-1".to_string(), 2)]),
            &BTreeMap::new(),
            origin(),
            |_| 0,
        );
        assert_eq!(
            (kinds(&violations), counts.resends_after_handover),
            (vec![], 1)
        );
    }

    #[test]
    fn a_second_continue_accepted_is_found() {
        let calls = BTreeMap::from([("d-1".to_string(), 2)]);
        let (violations, counts) =
            one_mutation_per_intent(&[], &[], &BTreeMap::new(), &calls, origin(), |_| 0);
        assert_eq!(kinds(&violations), [ViolationKind::ContinuedTwice]);
        assert_eq!(counts.continues_accepted, 2);
    }

    fn request(kind: &'static str, second: u64) -> Event {
        Event::Requested {
            release: "web".into(),
            kind,
            generation: 1,
            requested_at: origin() + jiff::SignedDuration::from_secs(second as i64),
            ok: true,
            full: false,
        }
    }

    fn handling(kind: &'static str, second: u64, entry: Option<(Outcome, &str)>) -> Event {
        let mut event = status(1, None, None);
        if let Event::StatusCommitted { handled, .. } = &mut event {
            handled.push(HandledRequest {
                kind,
                requested_at: origin() + jiff::SignedDuration::from_secs(second as i64),
                entry: entry.map(|(o, m)| (o, m.to_string())),
            });
        }
        event
    }

    #[test]
    fn requests_never_handled_or_handled_without_a_history_entry_are_found() {
        let check = |events: Vec<Event>| {
            let entries = log(events.into_iter().map(|e| (1, e)).collect());
            let (violations, counts) = requests_are_handled(&entries);
            (kinds(&violations), counts)
        };
        let (found, _) = check(vec![request("promote", 1)]);
        assert_eq!(found, [ViolationKind::LostRequest]);
        let (found, counts) = check(vec![
            request("promote", 1),
            handling("promote", 1, Some((Outcome::Promoted, "promoted"))),
            request("abort", 2),
            handling(
                "abort",
                2,
                Some((Outcome::Declined, "abort: nothing in flight")),
            ),
            // Replaced before any pass saw it.
            request("retry", 3),
            request("retry", 4),
            handling("retry", 4, Some((Outcome::Retried, "retrying"))),
        ]);
        assert_eq!(found, []);
        assert_eq!(
            (counts.handled, counts.declined, counts.replaced),
            (3, 1, 1)
        );
        let (found, _) = check(vec![
            request("abort", 2),
            handling("abort", 2, Some((Outcome::Declined, " "))),
            request("retry", 3),
            handling("retry", 3, None),
            request("promote", 4),
            handling("promote", 4, Some((Outcome::Aborted, "aborted"))),
        ]);
        assert_eq!(found, [ViolationKind::RequestWithoutHistory; 3]);
    }

    #[test]
    fn a_release_without_a_pass_while_its_owner_is_up_is_found() {
        let entries = log(vec![
            (
                0,
                Event::LeaseTaken {
                    replica: "replica-1".into(),
                    shard: 0,
                    term: 1,
                },
            ),
            (3600, Event::Settled { all: true }),
        ]);
        let releases = ["web".to_string()];
        let every_minute: Vec<Duration> = (0..60).map(|m| Duration::from_secs(m * 60)).collect();
        let passes = BTreeMap::from([("web".to_string(), every_minute.clone())]);
        let (violations, longest) = no_wedged_release(&entries, &passes, &releases, |_| 0);
        assert_eq!(
            (kinds(&violations), longest),
            (vec![], Duration::from_secs(60))
        );

        let mut stalled = every_minute;
        stalled.retain(|t| *t < Duration::from_secs(600) || *t > Duration::from_secs(1200));
        let passes = BTreeMap::from([("web".to_string(), stalled)]);
        let (violations, _) = no_wedged_release(&entries, &passes, &releases, |_| 0);
        assert_eq!(kinds(&violations), [ViolationKind::Wedged]);
    }

    #[test]
    fn the_refusal_budget_follows_the_backoff() {
        // Attempts at 0, 1, 3, 7, 15, 31, 63 s, then every 300 s at most.
        assert_eq!(refusal_budget(Duration::ZERO), 1);
        assert_eq!(refusal_budget(Duration::from_secs(60)), 6);
        assert_eq!(refusal_budget(Duration::from_secs(63)), 7);
        assert_eq!(refusal_budget(Duration::from_secs(511 + 300)), 11);
    }

    #[test]
    fn a_refused_call_asked_too_often_is_found() {
        let refused = |at: u64| {
            (
                at,
                Event::MutationReturned {
                    replica: "replica-1".into(),
                    release: "web".into(),
                    operation: "ecs:RegisterTaskDefinition",
                    detail: "web:1".into(),
                    outcome: "access_denied".into(),
                },
            )
        };
        let episode = |attempts: Vec<u64>| {
            let mut events = vec![(
                100,
                Event::Refusals {
                    operation: "ecs:RegisterTaskDefinition",
                    on: true,
                },
            )];
            events.extend(attempts.into_iter().map(refused));
            events.push((
                160,
                Event::Refusals {
                    operation: "ecs:RegisterTaskDefinition",
                    on: false,
                },
            ));
            let (violations, refused) = refusals_back_off(&log(events));
            (kinds(&violations), refused)
        };
        assert_eq!(episode(vec![100, 101, 103, 107, 115, 131]), (vec![], 6));
        assert_eq!(
            episode((100..160).step_by(2).collect()),
            (vec![ViolationKind::RefusedCallAskedHot], 30)
        );
    }
}
