//! The invariants of analyses (22 to 24), checked over one run's event log: the analysis of
//! every committed status (`Event::AnalysisCommitted`), every HTTP probe a replica made
//! (`Event::ProbeSent`), and how each rollout ended.
//!
//! An analysis is identified by its release, its gate and when it started: a gate met again
//! starts a new one.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::log::{AnalysisSeen, Entry, Event};
use crate::{Violation, ViolationKind};
use switchyard::model::analysis::{AnalysisPhase, MeasurementResult};
use switchyard::model::{Outcome, Phase};

/// What the checks need to know of one analysed release.
#[derive(Debug, Clone)]
pub struct AnalysedRelease {
    /// The URL its analysis probes.
    pub url: String,
    pub inconclusive_limit: u32,
}

/// What the analysis checks looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AnalysisCounts {
    /// Analyses (release, gate, start) seen in committed statuses.
    pub analyses: u32,
    /// Measurements recorded, each checked to be recorded once (22).
    pub measurements: u32,
    /// Analyses that failed, each checked never to promote its candidate (23).
    pub failed: u32,
    /// Analyses held for too many inconclusive measurements (24).
    pub inconclusive: u32,
}

impl AnalysisCounts {
    pub fn add(&mut self, other: &AnalysisCounts) {
        self.analyses += other.analyses;
        self.measurements += other.measurements;
        self.failed += other.failed;
        self.inconclusive += other.inconclusive;
    }
}

type Key = (String, String, Timestamp);
type Recorded = (Timestamp, MeasurementResult, Option<u64>);
/// Per analysis: the most measurements taken, and each metric's measurements by number.
type Seen = BTreeMap<Key, (u32, BTreeMap<String, BTreeMap<u32, Recorded>>)>;

/// 22: a measurement is recorded once per slot: each number of each metric of an analysis,
/// once recorded, keeps its time, result and value in every later status; the numbers run
/// without a gap; `taken` never goes back; and every HTTP measurement recorded was a probe
/// some replica made. 23: a failed analysis never lets its rollout succeed. 24: an
/// analysis with more inconclusive measurements than `inconclusiveLimit` holds the release
/// in `AwaitingPromotion` (unless its rollout ended), and one over the limit is never still
/// running or successful.
pub fn analyses_hold(
    entries: &[Entry],
    releases: &BTreeMap<String, AnalysedRelease>,
) -> (Vec<Violation>, AnalysisCounts) {
    let mut violations = Vec::new();
    let mut counts = AnalysisCounts::default();
    // Per analysis: taken so far, and each metric's measurements by number.
    let mut seen: Seen = BTreeMap::new();
    // Per (release, rollout): whether an analysis of it failed, and how it ended.
    let mut failed: BTreeMap<(String, u32), String> = BTreeMap::new();
    let mut outcomes: BTreeMap<(String, u32), Outcome> = BTreeMap::new();
    let mut probes: BTreeMap<&str, u32> = BTreeMap::new();
    let mut inconclusive_seen: BTreeMap<Key, ()> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::ProbeSent { url, .. } => *probes.entry(url.as_str()).or_default() += 1,
            Event::StatusCommitted {
                release,
                rollout: Some(rollout),
                ..
            } => {
                if let Some(outcome) = rollout.outcome {
                    outcomes.insert((release.clone(), rollout.serial), outcome);
                }
            }
            Event::AnalysisCommitted(analysis) => {
                let AnalysisSeen {
                    release,
                    serial,
                    outcome,
                    release_phase,
                    gate,
                    started_at,
                    phase,
                    taken,
                    metrics,
                } = analysis.as_ref();
                let key = (release.clone(), gate.clone(), *started_at);
                let (taken_before, by_metric) = seen.entry(key.clone()).or_default();
                if taken < taken_before {
                    violations.push(Violation::new(
                        ViolationKind::MeasurementTakenTwice,
                        format!(
                            "{release}: the analysis at {gate} went back from {taken_before} measurements taken to {taken}"
                        ),
                    ));
                }
                *taken_before = (*taken_before).max(*taken);
                for metric in metrics {
                    let recorded = by_metric.entry(metric.name.clone()).or_default();
                    for (number, at, result, value) in &metric.measurements {
                        let now = (*at, *result, value.map(f64::to_bits));
                        match recorded.get(number) {
                            Some(before) if *before != now => {
                                violations.push(Violation::new(
                                    ViolationKind::MeasurementTakenTwice,
                                    format!(
                                        "{release}: measurement {number} of {} at {gate} was recorded as {before:?}, later as {now:?}",
                                        metric.name
                                    ),
                                ));
                            }
                            Some(_) => {}
                            None => {
                                recorded.insert(*number, now);
                            }
                        }
                    }
                    // 24: over the limit, never still running or successful.
                    let limit = releases
                        .get(release)
                        .map_or(u32::MAX, |r| r.inconclusive_limit);
                    if metric.inconclusive > limit
                        && matches!(phase, AnalysisPhase::Running | AnalysisPhase::Successful)
                    {
                        violations.push(Violation::new(
                            ViolationKind::InconclusiveNotHeld,
                            format!(
                                "{release}: {} had {} inconclusive measurements (limit {limit}) and the analysis at {gate} is {phase:?}",
                                metric.name, metric.inconclusive
                            ),
                        ));
                    }
                }
                // The write that makes it inconclusive holds the release for a human (a
                // `promote` then goes on past it, an `abort` rolls back).
                if *phase == AnalysisPhase::Inconclusive
                    && inconclusive_seen.insert(key.clone(), ()).is_none()
                    && outcome.is_none()
                    && *release_phase != Phase::AwaitingPromotion
                {
                    violations.push(Violation::new(
                        ViolationKind::InconclusiveNotHeld,
                        format!(
                            "{release}: the analysis at {gate} is inconclusive, the release {release_phase:?} while its rollout goes on"
                        ),
                    ));
                }
                if *phase == AnalysisPhase::Failed
                    && let Some(serial) = serial
                {
                    failed
                        .entry((release.clone(), *serial))
                        .or_insert_with(|| gate.clone());
                }
            }
            _ => {}
        }
    }
    counts.analyses = seen.len() as u32;
    counts.inconclusive = inconclusive_seen.len() as u32;
    let mut http_recorded: BTreeMap<&str, u32> = BTreeMap::new();
    for ((release, gate, _), (_, by_metric)) in &seen {
        for (metric, recorded) in by_metric {
            counts.measurements += recorded.len() as u32;
            let numbers: Vec<u32> = recorded.keys().copied().collect();
            // Statuses keep the latest measurements only: the numbers seen start anywhere,
            // and run without a gap from there.
            if let (Some(first), Some(last)) = (numbers.first(), numbers.last())
                && (last - first + 1) as usize != numbers.len()
            {
                violations.push(Violation::new(
                    ViolationKind::MeasurementSkipped,
                    format!(
                        "{release}: the measurements of {metric} at {gate} skip a number: {numbers:?}"
                    ),
                ));
            }
            if metric == "health" {
                *http_recorded.entry(release.as_str()).or_default() += recorded.len() as u32;
            }
        }
    }
    for (release, recorded) in http_recorded {
        let Some(plan) = releases.get(release) else {
            continue;
        };
        let probed = probes.get(plan.url.as_str()).copied().unwrap_or(0);
        if recorded > probed {
            violations.push(Violation::new(
                ViolationKind::MeasurementSkipped,
                format!(
                    "{release}: {recorded} HTTP measurements recorded, but only {probed} probes of {} made",
                    plan.url
                ),
            ));
        }
    }
    counts.failed = failed.len() as u32;
    for ((release, serial), gate) in &failed {
        if outcomes.get(&(release.clone(), *serial)) == Some(&Outcome::Succeeded) {
            violations.push(Violation::new(
                ViolationKind::FailedAnalysisPromoted,
                format!(
                    "{release}: rollout {serial} succeeded although its analysis at {gate} failed"
                ),
            ));
        }
    }
    (violations, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{MetricSeen, RolloutSeen};
    use std::time::Duration;

    fn origin() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn log(events: Vec<Event>) -> Vec<Entry> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, event)| Entry {
                seq: seq as u64,
                at: Duration::from_secs(10 * seq as u64),
                event,
            })
            .collect()
    }

    fn at(secs: i64) -> Timestamp {
        origin() + jiff::SignedDuration::from_secs(secs)
    }

    fn analysis(
        phase: AnalysisPhase,
        release_phase: Phase,
        measurements: Vec<(u32, i64, MeasurementResult)>,
    ) -> Event {
        let inconclusive = measurements
            .iter()
            .filter(|m| m.2 == MeasurementResult::Inconclusive)
            .count() as u32;
        Event::AnalysisCommitted(Box::new(AnalysisSeen {
            release: "web".into(),
            serial: Some(1),
            outcome: None,
            release_phase,
            gate: "step 1".into(),
            started_at: origin(),
            phase,
            taken: measurements.len() as u32,
            metrics: vec![MetricSeen {
                name: "health".into(),
                failed: 0,
                inconclusive,
                measurements: measurements
                    .into_iter()
                    .map(|(n, secs, result)| (n, at(secs), result, None))
                    .collect(),
            }],
        }))
    }

    fn probe() -> Event {
        Event::ProbeSent {
            replica: "r1".into(),
            url: "http://web/health".into(),
            status: Some(200),
        }
    }

    fn ended(outcome: Outcome) -> Event {
        Event::StatusCommitted {
            release: "web".into(),
            fence: None,
            version: 1,
            observed_generation: 1,
            phase: Phase::Healthy,
            message: String::new(),
            stop_requested: None,
            stop_sent: false,
            stop_superseded: false,
            rollout: Some(RolloutSeen {
                serial: 1,
                generation: 1,
                candidate: "web:2".into(),
                outcome: Some(outcome),
            }),
            handled: Vec::new(),
            task_sets: None,
            ecs: None,
        }
    }

    fn check(entries: &[Entry]) -> Vec<ViolationKind> {
        let releases = BTreeMap::from([(
            "web".to_string(),
            AnalysedRelease {
                url: "http://web/health".into(),
                inconclusive_limit: 0,
            },
        )]);
        analyses_hold(entries, &releases)
            .0
            .into_iter()
            .map(|v| v.kind)
            .collect()
    }

    use AnalysisPhase::*;
    use MeasurementResult::{Failed as Bad, Successful as Good};

    #[test]
    fn measurements_taken_once_each_and_probed_are_clean() {
        let entries = log(vec![
            probe(),
            analysis(Running, Phase::Progressing, vec![(1, 10, Good)]),
            probe(),
            analysis(
                Successful,
                Phase::Progressing,
                vec![(1, 10, Good), (2, 20, Good)],
            ),
            ended(Outcome::Succeeded),
        ]);
        assert_eq!(check(&entries), vec![]);
    }

    #[test]
    fn a_slot_measured_again_is_reported() {
        let entries = log(vec![
            probe(),
            probe(),
            analysis(Running, Phase::Progressing, vec![(1, 10, Good)]),
            analysis(Running, Phase::Progressing, vec![(1, 15, Bad)]),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::MeasurementTakenTwice]);
    }

    #[test]
    fn a_skipped_slot_or_a_measurement_never_probed_is_reported() {
        let entries = log(vec![
            probe(),
            probe(),
            analysis(
                Running,
                Phase::Progressing,
                vec![(1, 10, Good), (3, 30, Good)],
            ),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::MeasurementSkipped]);
        let entries = log(vec![
            probe(),
            analysis(
                Running,
                Phase::Progressing,
                vec![(1, 10, Good), (2, 20, Good)],
            ),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::MeasurementSkipped]);
    }

    #[test]
    fn a_failed_analysis_whose_rollout_succeeds_is_reported() {
        let entries = log(vec![
            probe(),
            analysis(Failed, Phase::Progressing, vec![(1, 10, Bad)]),
            ended(Outcome::Succeeded),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::FailedAnalysisPromoted]);
        let entries = log(vec![
            probe(),
            analysis(Failed, Phase::Progressing, vec![(1, 10, Bad)]),
            ended(Outcome::RolledBack),
        ]);
        assert_eq!(check(&entries), vec![]);
    }

    #[test]
    fn an_inconclusive_analysis_that_does_not_hold_is_reported() {
        let inconclusive = MeasurementResult::Inconclusive;
        let entries = log(vec![
            probe(),
            analysis(Running, Phase::Progressing, vec![(1, 10, inconclusive)]),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::InconclusiveNotHeld]);
        let entries = log(vec![
            probe(),
            analysis(
                Inconclusive,
                Phase::Progressing,
                vec![(1, 10, inconclusive)],
            ),
        ]);
        assert_eq!(check(&entries), vec![ViolationKind::InconclusiveNotHeld]);
        let entries = log(vec![
            probe(),
            analysis(
                Inconclusive,
                Phase::AwaitingPromotion,
                vec![(1, 10, inconclusive)],
            ),
        ]);
        assert_eq!(check(&entries), vec![]);
    }
}
