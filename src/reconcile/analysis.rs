//! An analysis, as every strategy runs it at its gate (a `taskSets` step, an ECS `PAUSE`
//! hook, a CodeDeploy deployment waiting in `Ready`): when the next measurement is due, what a
//! measurement means, and the verdict. Pure; the shell takes the measurements.
//!
//! 1. **Start.** The first pass at a gate records the analysis in the status (`gate`, the
//!    start, the target groups the placeholders stand for). The first measurement is due one
//!    `interval` later, so a CloudWatch metric has seen the candidate for that long.
//! 2. **Measure.** A pass that finds a measurement due (by the status and the clock, through
//!    [`plan`]) has the shell take it: one `GetMetricData` query or one HTTP probe per
//!    metric, all numbered with the measurement's number. [`run`] records it only when that
//!    number is the next one: never twice, never skipped. The next is due one `interval`
//!    after it was taken; one that is late (a restart, a takeover) is taken at once, and the
//!    schedule moves with it.
//! 3. **Judge** each metric's value: a CloudWatch value over its `failWhen` threshold, an HTTP
//!    probe that failed, timed out or answered another status, is a failed measurement; an
//!    empty result is what `onNoData` says (inconclusive by default); a measurement that could
//!    not be taken (an AWS error) is retried for a while, then inconclusive.
//! 4. **Verdict.** A metric with more failed measurements than `failureLimit`: failed, the
//!    rollout rolls back. More inconclusive ones than `inconclusiveLimit`: inconclusive, the
//!    rollout waits in `AwaitingPromotion` (`promote` goes on, `abort` rolls back). All
//!    `count` measurements taken otherwise: successful. A `promote` skips a running analysis
//!    (recorded as skipped). Nothing passes silently.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::analysis::{
    AnalysisMetric, AnalysisPhase, AnalysisSpec, AnalysisStatus, CANDIDATE_TARGET_GROUP,
    CloudWatchQuery, EXPRESSION_ID, LIVE_TARGET_GROUP, Measurement, MeasurementResult,
    MetricStatus, format_value,
};
use crate::model::{CanaryStep, ReleaseSpec, ReleaseStatus, SelectedStrategy, StrategyStatus};
use crate::ports::{
    MetricDataKind, MetricDataQuery, MetricDataRequest, MetricDatapoint, ProbeError,
};

use super::Pass;

/// How soon a measurement that could not be taken (throttled, a blip) is tried again.
pub const RETRY_MEASUREMENT: Duration = Duration::from_secs(5);
/// How long after it was due a measurement that keeps failing to be taken is retried before
/// it counts as inconclusive (or half an interval, if that is shorter).
pub const MEASUREMENT_GRACE: Duration = Duration::from_secs(60);

/// What the shell read for one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The datapoints of the metric's `GetMetricData` query, newest first.
    CloudWatch(Vec<MetricDatapoint>),
    /// The HTTP probe's status, or why it got none.
    Http(Result<u16, ProbeError>),
    /// The measurement could not be taken (an AWS error, a placeholder without a value).
    Error { message: String, retryable: bool },
}

/// A measurement the shell took in this pass, for the analysis the status records.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub gate: String,
    /// The measurement's number (1 for the first).
    pub number: u32,
    pub at: Timestamp,
    /// By metric name.
    pub readings: Vec<(String, Reading)>,
}

/// A measurement that is due: what the shell must take.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementPlan {
    pub gate: String,
    pub number: u32,
    pub interval: Duration,
    pub metrics: Vec<AnalysisMetric>,
    /// The target groups the placeholders stand for: ARNs, or names to look up.
    pub live_target_group: Option<String>,
    pub candidate_target_group: Option<String>,
}

/// The analysis the rollout in flight runs now, by its strategy: the current `taskSets`
/// step's, or the strategy's own (ECS, CodeDeploy).
pub fn current_spec<'s>(spec: &'s ReleaseSpec, status: &ReleaseStatus) -> Option<&'s AnalysisSpec> {
    match spec.strategy.selected()? {
        SelectedStrategy::CodeDeploy(s) => s.analysis.as_ref(),
        SelectedStrategy::Ecs(s) => s.analysis.as_ref(),
        SelectedStrategy::TaskSets(s) => {
            let Some(StrategyStatus::TaskSets(state)) = &status.strategy else {
                return None;
            };
            // The steps the index refers to (an edit is followed by the next decision).
            if crate::model::task_sets::steps_digest(&s.effective_steps()) != state.steps_digest {
                return None;
            }
            match s.steps.get(state.step_index?)? {
                CanaryStep::Analysis(analysis) => Some(analysis),
                _ => None,
            }
        }
    }
}

/// The measurement due now, if one is: a running analysis of the rollout in flight whose
/// next measurement's time has come. Pure, from the status and the time.
pub fn plan(
    spec: &ReleaseSpec,
    status: Option<&ReleaseStatus>,
    now: Timestamp,
) -> Option<MeasurementPlan> {
    let status = status?;
    status.rollout_in_flight()?;
    let state = status.analysis.as_ref()?;
    if state.phase != AnalysisPhase::Running || state.next_measurement_at? > now {
        return None;
    }
    let analysis = current_spec(spec, status)?;
    if state.taken >= analysis.count() {
        return None;
    }
    Some(MeasurementPlan {
        gate: state.gate.clone(),
        number: state.taken + 1,
        interval: analysis.interval(),
        metrics: analysis.metrics.clone(),
        live_target_group: state.live_target_group.clone(),
        candidate_target_group: state.candidate_target_group.clone(),
    })
}

/// The `GetMetricData` request of one measurement of `query`, taken `at`: its metrics (the
/// placeholders replaced by the target groups' dimension values) and, with an expression,
/// the expression as the one query that returns data; over the last interval and one period
/// of complete periods (the range ends where the period in progress starts). `Err`: a placeholder without a
/// value.
pub fn metric_data_request(
    query: &CloudWatchQuery,
    live_dimension: Option<&str>,
    candidate_dimension: Option<&str>,
    interval: Duration,
    at: Timestamp,
) -> Result<MetricDataRequest, String> {
    let replace = |text: &str| -> Result<String, String> {
        let mut text = text.to_string();
        for (placeholder, value) in [
            (CANDIDATE_TARGET_GROUP, candidate_dimension),
            (LIVE_TARGET_GROUP, live_dimension),
        ] {
            if text.contains(placeholder) {
                let value = value.ok_or_else(|| {
                    format!("{placeholder} has no value here: no such target group in this rollout")
                })?;
                text = text.replace(placeholder, value);
            }
        }
        Ok(text)
    };
    let period = query.period.get().as_secs().max(1) as u32;
    let mut queries = Vec::new();
    for (id, stat) in &query.metrics {
        let dimensions = stat
            .dimensions
            .iter()
            .map(|(name, value)| Ok((name.clone(), replace(value)?)))
            .collect::<Result<Vec<_>, String>>()?;
        queries.push(MetricDataQuery {
            id: id.clone(),
            kind: MetricDataKind::Stat {
                namespace: stat.namespace.clone(),
                metric_name: stat.name.clone(),
                dimensions,
                period_seconds: period,
                stat: stat.stat.clone(),
                unit: stat.unit.clone(),
            },
            return_data: query.expression.is_none(),
        });
    }
    if let Some(expression) = &query.expression {
        queries.push(MetricDataQuery {
            id: EXPRESSION_ID.to_string(),
            kind: MetricDataKind::Expression {
                expression: replace(expression)?,
                period_seconds: period,
            },
            return_data: true,
        });
    }
    // Complete periods only: the one in progress holds part of a period's data (a `Sum`
    // that looks low), so the range ends where it starts.
    let seconds = i64::from(period);
    let end = Timestamp::from_second(at.as_second().div_euclid(seconds) * seconds).unwrap_or(at);
    let window = interval + query.period.get();
    let start = end - SignedDuration::try_from(window).unwrap_or(SignedDuration::from_secs(60));
    Ok(MetricDataRequest {
        queries,
        start,
        end,
    })
}

/// What the analysis at a gate concluded in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisProgress {
    /// Still measuring: the message says where it stands; look again after this long.
    Running { message: String, after: Duration },
    /// Every measurement passed (or a `promote` skipped the rest): go on. `promoted`: the
    /// pending `promote` skipped it in this pass (the caller marks it handled).
    Passed { message: String, promoted: bool },
    /// Too many failed measurements: roll back.
    Failed { message: String },
    /// Too many inconclusive measurements: wait for `promote` or `abort`.
    Inconclusive { message: String },
}

/// Where an analysis runs and what it may use: its gate, the target groups the placeholders
/// stand for, and whether a `promote` waits to skip it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnalysisGate {
    pub gate: String,
    pub live_target_group: Option<String>,
    pub candidate_target_group: Option<String>,
    pub promote: bool,
}

/// Runs the analysis at `at_gate` one pass further: starts it, records the measurement the
/// shell took (when it is the next one), and judges.
pub fn run(
    pass: &mut Pass<'_>,
    analysis: &AnalysisSpec,
    at_gate: &AnalysisGate,
) -> AnalysisProgress {
    let now = pass.now;
    let fresh = pass
        .next
        .analysis
        .as_ref()
        // A stopped analysis never passes: back at its gate, it starts again.
        .is_none_or(|s| s.gate != at_gate.gate || s.phase == AnalysisPhase::Stopped);
    if fresh {
        pass.next.analysis = Some(AnalysisStatus {
            gate: at_gate.gate.clone(),
            phase: AnalysisPhase::Running,
            started_at: now,
            taken: 0,
            count: analysis.count(),
            last_measured_at: None,
            next_measurement_at: Some(after(now, analysis.interval())),
            live_target_group: at_gate.live_target_group.clone(),
            candidate_target_group: at_gate.candidate_target_group.clone(),
            metrics: Vec::new(),
            message: None,
            ended_at: None,
        });
    }
    let measured = pass
        .observed
        .analysis
        .as_ref()
        .filter(|m| m.gate == at_gate.gate);
    let state = pass.next.analysis.as_mut().expect("set above");
    // An edited analysis goes on under the new rules: its count, its metrics.
    state.count = analysis.count();
    for metric in &analysis.metrics {
        if !state.metrics.iter().any(|m| m.name == metric.name) {
            state.metrics.push(MetricStatus {
                name: metric.name.clone(),
                ..MetricStatus::default()
            });
        }
    }
    match state.phase {
        AnalysisPhase::Running => {}
        AnalysisPhase::Successful | AnalysisPhase::Skipped | AnalysisPhase::Stopped => {
            return AnalysisProgress::Passed {
                message: state.message.clone().unwrap_or_else(|| state.summary()),
                promoted: false,
            };
        }
        AnalysisPhase::Failed => {
            return AnalysisProgress::Failed {
                message: state.message.clone().unwrap_or_else(|| state.summary()),
            };
        }
        AnalysisPhase::Inconclusive if at_gate.promote => {
            state.phase = AnalysisPhase::Skipped;
            state.ended_at = Some(now);
            let message = format!(
                "{}; promoted past it",
                state.message.clone().unwrap_or_default()
            );
            state.message = Some(message.clone());
            return AnalysisProgress::Passed {
                message,
                promoted: true,
            };
        }
        AnalysisPhase::Inconclusive => {
            return AnalysisProgress::Inconclusive {
                message: state.message.clone().unwrap_or_else(|| state.summary()),
            };
        }
    }

    // 2. The measurement the shell took, if it is the next one.
    let due = state.next_measurement_at.unwrap_or(now);
    let mut retry = None;
    if let Some(measured) = measured.filter(|m| m.number == state.taken + 1) {
        let grace = MEASUREMENT_GRACE.min(analysis.interval() / 2);
        let in_grace = measured.at < after(due, grace);
        let retryable = measured.readings.iter().find(|(_, r)| {
            matches!(
                r,
                Reading::Error {
                    retryable: true,
                    ..
                }
            )
        });
        match retryable {
            Some((name, Reading::Error { message, .. })) if in_grace => {
                retry = Some(format!("{name}: {message}; trying again"));
            }
            _ => record(state, analysis, measured),
        }
    }

    // 4. The verdict.
    let failure_limit = analysis.failure_limit();
    let inconclusive_limit = analysis.inconclusive_limit();
    let over = |result: MeasurementResult, limit: u32| {
        state
            .metrics
            .iter()
            .filter(|m| analysis.metrics.iter().any(|spec| spec.name == m.name))
            .find(|m| m.count(result) > limit)
            .cloned()
    };
    if let Some(metric) = over(MeasurementResult::Failed, failure_limit) {
        let message = format!(
            "analysis at {} failed: metric {} failed {} of {} measurements (failureLimit {failure_limit}); last: {}",
            state.gate,
            metric.name,
            metric.failed,
            state.taken,
            metric.last_message.as_deref().unwrap_or("-")
        );
        return end(state, AnalysisPhase::Failed, message, now, |message| {
            AnalysisProgress::Failed { message }
        });
    }
    if let Some(metric) = over(MeasurementResult::Inconclusive, inconclusive_limit) {
        let message = format!(
            "analysis at {} is inconclusive: metric {} was inconclusive {} of {} measurements (inconclusiveLimit {inconclusive_limit}); last: {}",
            state.gate,
            metric.name,
            metric.inconclusive,
            state.taken,
            metric.last_message.as_deref().unwrap_or("-")
        );
        if at_gate.promote {
            return end(
                state,
                AnalysisPhase::Skipped,
                format!("{message}; promoted past it"),
                now,
                |message| AnalysisProgress::Passed {
                    message,
                    promoted: true,
                },
            );
        }
        return end(
            state,
            AnalysisPhase::Inconclusive,
            message,
            now,
            |message| AnalysisProgress::Inconclusive { message },
        );
    }
    if state.taken >= state.count {
        let message = format!(
            "analysis at {} passed: {} measurements, no metric over its limits",
            state.gate, state.taken
        );
        return end(state, AnalysisPhase::Successful, message, now, |message| {
            AnalysisProgress::Passed {
                message,
                promoted: false,
            }
        });
    }
    if at_gate.promote {
        let message = format!(
            "analysis at {} skipped by promote after {} of {} measurements",
            state.gate, state.taken, state.count
        );
        return end(state, AnalysisPhase::Skipped, message, now, |message| {
            AnalysisProgress::Passed {
                message,
                promoted: true,
            }
        });
    }
    let next = state.next_measurement_at.unwrap_or(now);
    let (wait, when) = match &retry {
        Some(why) => (RETRY_MEASUREMENT, why.clone()),
        None if next <= now => (Duration::ZERO, "measuring now".to_string()),
        None => {
            let left = crate::clock::elapsed_between(now, next);
            (left, format!("next in {}", super::friendly(left)))
        }
    };
    AnalysisProgress::Running {
        message: format!("{}; {when}", state.summary()),
        after: wait.max(Duration::from_millis(100)),
    }
}

fn end(
    state: &mut AnalysisStatus,
    phase: AnalysisPhase,
    message: String,
    now: Timestamp,
    progress: impl FnOnce(String) -> AnalysisProgress,
) -> AnalysisProgress {
    state.phase = phase;
    state.message = Some(message.clone());
    state.ended_at = Some(now);
    state.next_measurement_at = None;
    progress(message)
}

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at + SignedDuration::try_from(duration).unwrap_or(SignedDuration::ZERO)
}

/// Records the measurement: one result per metric of the analysis, the count, the schedule.
fn record(state: &mut AnalysisStatus, analysis: &AnalysisSpec, measured: &Measured) {
    let number = measured.number;
    for metric in &analysis.metrics {
        let reading = measured
            .readings
            .iter()
            .find(|(name, _)| *name == metric.name)
            .map(|(_, reading)| reading);
        let (result, value, message) = match reading {
            Some(reading) => judge(metric, reading),
            None => (
                MeasurementResult::Inconclusive,
                None,
                "not measured".to_string(),
            ),
        };
        if let Some(status) = state.metrics.iter_mut().find(|m| m.name == metric.name) {
            status.record(Measurement {
                number,
                at: measured.at,
                result,
                value,
                message: Some(message),
            });
        }
    }
    state.taken = number;
    state.last_measured_at = Some(measured.at);
    state.next_measurement_at = Some(after(measured.at, analysis.interval()));
}

/// What one reading of a metric means: its result, its value, and a message saying why.
pub fn judge(
    metric: &AnalysisMetric,
    reading: &Reading,
) -> (MeasurementResult, Option<f64>, String) {
    match reading {
        Reading::CloudWatch(datapoints) => {
            let newest = datapoints
                .iter()
                .filter(|d| d.value.is_finite())
                .max_by_key(|d| d.at);
            let Some(value) = newest.map(|d| d.value) else {
                let on_no_data = metric.on_no_data();
                let result = match on_no_data {
                    crate::model::analysis::OnNoData::Inconclusive => {
                        MeasurementResult::Inconclusive
                    }
                    crate::model::analysis::OnNoData::Pass => MeasurementResult::Successful,
                    crate::model::analysis::OnNoData::Fail => MeasurementResult::Failed,
                };
                return (
                    result,
                    None,
                    format!("no data (onNoData: {})", on_no_data.as_str()),
                );
            };
            let shown = format_value(value);
            match metric.fail_when.as_ref().map(|t| (t.above, t.below)) {
                Some((Some(limit), _)) if value > limit => (
                    MeasurementResult::Failed,
                    Some(value),
                    format!("{shown} is above {}", format_value(limit)),
                ),
                Some((_, Some(limit))) if value < limit => (
                    MeasurementResult::Failed,
                    Some(value),
                    format!("{shown} is below {}", format_value(limit)),
                ),
                Some((Some(limit), _)) => (
                    MeasurementResult::Successful,
                    Some(value),
                    format!("{shown} (fails above {})", format_value(limit)),
                ),
                Some((_, Some(limit))) => (
                    MeasurementResult::Successful,
                    Some(value),
                    format!("{shown} (fails below {})", format_value(limit)),
                ),
                // Refused at validation: never passes silently.
                _ => (
                    MeasurementResult::Inconclusive,
                    Some(value),
                    format!("{shown}, and no failWhen to judge it by"),
                ),
            }
        }
        Reading::Http(result) => {
            let probe = metric.http.as_ref();
            match result {
                Ok(status) if probe.is_some_and(|p| p.expects(*status)) => (
                    MeasurementResult::Successful,
                    Some(f64::from(*status)),
                    format!("HTTP {status}"),
                ),
                Ok(status) => (
                    MeasurementResult::Failed,
                    Some(f64::from(*status)),
                    format!(
                        "HTTP {status}, expected {}",
                        probe.map_or_else(|| "2xx".into(), |p| p.expected())
                    ),
                ),
                Err(error) => (
                    MeasurementResult::Failed,
                    None,
                    format!("GET failed: {error}"),
                ),
            }
        }
        Reading::Error { message, .. } => (
            MeasurementResult::Inconclusive,
            None,
            format!("not measured: {message}"),
        ),
    }
}

/// Ends a running analysis without a verdict (`Stopped`, saying why): the rollout rolls back
/// for another reason, or the gate it ran at went away. No measurement is due after it.
pub fn stop_running(status: &mut ReleaseStatus, why: &str, now: Timestamp) {
    if let Some(state) = status
        .analysis
        .as_mut()
        .filter(|s| s.phase == AnalysisPhase::Running)
    {
        let message = format!(
            "analysis at {} stopped after {} of {} measurements: {why}",
            state.gate, state.taken, state.count
        );
        end(state, AnalysisPhase::Stopped, message, now, |_| {
            AnalysisProgress::Passed {
                message: String::new(),
                promoted: false,
            }
        });
    }
}

/// Whether the status's analysis runs at `gate` and is still running.
pub fn running_at(status: &ReleaseStatus, gate: &str) -> bool {
    status
        .analysis
        .as_ref()
        .is_some_and(|s| s.phase == AnalysisPhase::Running && s.gate == gate)
}

/// The measurements recorded in `after` that `before` did not have, by result (for
/// `/metrics`).
pub fn new_measurements(
    before: Option<&AnalysisStatus>,
    after: Option<&AnalysisStatus>,
) -> Vec<MeasurementResult> {
    let Some(after) = after else {
        return Vec::new();
    };
    let taken_before = before
        .filter(|b| b.gate == after.gate && b.started_at == after.started_at)
        .map_or(0, |b| b.taken);
    after
        .metrics
        .iter()
        .flat_map(|m| m.measurements.iter())
        .filter(|m| m.number > taken_before)
        .map(|m| m.result)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::analysis::{HttpProbeSpec, OnNoData, Threshold};
    use crate::model::parse::parse_documents;
    use crate::reconcile::{DesiredRelease, Observed};

    const SPEC: &str = "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {name: web}\nspec:\n  service: {cluster: prod, name: web}\n  taskDefinition: {from: web, containers: {web: {image: registry/web:2}}}\n  strategy:\n    codeDeploy:\n      application: web\n      deploymentGroup: web-prod\n      analysis:\n        interval: 30s\n        count: 3\n        failureLimit: 1\n        metrics:\n          - name: errors\n            cloudWatch: {metrics: {m1: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: CANDIDATE_TARGET_GROUP}}}, period: 60s}\n            failWhen: {above: 5}\n          - name: health\n            http: {url: \"http://web/health\"}\n";

    fn spec() -> ReleaseSpec {
        parse_documents(SPEC).unwrap().remove(0).spec
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn gate() -> AnalysisGate {
        AnalysisGate {
            gate: "deployment d-1 in Ready".into(),
            live_target_group: Some(
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-a/1".into(),
            ),
            candidate_target_group: Some(
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-b/2".into(),
            ),
            promote: false,
        }
    }

    fn value(v: f64, at: Timestamp) -> Reading {
        Reading::CloudWatch(vec![MetricDatapoint { at, value: v }])
    }

    /// One pass of the analysis at `now`, from `status`, with what the shell measured.
    fn pass(
        status: &mut ReleaseStatus,
        measured: Option<Measured>,
        now: Timestamp,
        at_gate: &AnalysisGate,
    ) -> AnalysisProgress {
        let spec = spec();
        let desired = DesiredRelease {
            name: "web".into(),
            generation: 1,
            spec: Ok(spec.clone()),
            requests: Default::default(),
            placement: crate::model::Home::new("us-east-1", Some("111122223333".into()))
                .place(None, None),
        };
        let observed = Observed {
            status: Some(status.clone()),
            analysis: measured,
            ..Observed::default()
        };
        let mut pass = Pass::new(&desired, &observed, now);
        let analysis = spec
            .strategy
            .code_deploy
            .as_ref()
            .unwrap()
            .analysis
            .clone()
            .unwrap();
        let progress = run(&mut pass, &analysis, at_gate);
        *status = pass.next;
        progress
    }

    fn measured(number: u32, at: Timestamp, errors: Reading, health: Reading) -> Measured {
        Measured {
            gate: gate().gate,
            number,
            at,
            readings: vec![("errors".into(), errors), ("health".into(), health)],
        }
    }

    fn in_flight() -> ReleaseStatus {
        ReleaseStatus {
            rollout: Some(crate::model::Rollout {
                serial: 1,
                candidate: "td:2".into(),
                fingerprint: "f".into(),
                target: "t".into(),
                live: None,
                generation: 1,
                started_at: t(0),
                outcome: None,
            }),
            ..ReleaseStatus::default()
        }
    }

    #[test]
    fn the_first_measurement_is_due_one_interval_after_the_start_and_planned_then() {
        let mut status = in_flight();
        let progress = pass(&mut status, None, t(0), &gate());
        assert!(
            matches!(progress, AnalysisProgress::Running { after, .. } if after == Duration::from_secs(30))
        );
        assert_eq!(plan(&spec(), Some(&status), t(29)), None);
        let due = plan(&spec(), Some(&status), t(30)).expect("due at 30 s");
        assert_eq!((due.number, due.metrics.len()), (1, 2));
        assert_eq!(due.candidate_target_group, gate().candidate_target_group);
    }

    #[test]
    fn a_measurement_is_recorded_once_under_its_number_and_never_out_of_turn() {
        let mut status = in_flight();
        pass(&mut status, None, t(0), &gate());
        let ok = || measured(1, t(30), value(1.0, t(0)), Reading::Http(Ok(200)));
        pass(&mut status, Some(ok()), t(30), &gate());
        assert_eq!(status.analysis.as_ref().unwrap().taken, 1);
        // The same measurement seen again (a retried pass), or one numbered out of turn.
        pass(&mut status, Some(ok()), t(31), &gate());
        let mut skipping = ok();
        skipping.number = 3;
        pass(&mut status, Some(skipping), t(62), &gate());
        let state = status.analysis.as_ref().unwrap();
        assert_eq!(state.taken, 1);
        assert_eq!(state.metrics[0].successful, 1);
        assert_eq!(state.next_measurement_at, Some(t(60)));
        // Another gate's measurement is not this analysis's.
        let mut elsewhere = ok();
        elsewhere.number = 2;
        elsewhere.gate = "step 2".into();
        pass(&mut status, Some(elsewhere), t(62), &gate());
        assert_eq!(status.analysis.as_ref().unwrap().taken, 1);
    }

    #[test]
    fn more_failures_than_the_limit_fail_the_analysis_naming_the_metric() {
        let mut status = in_flight();
        pass(&mut status, None, t(0), &gate());
        let bad = |n: u32, at: i64| measured(n, t(at), value(9.0, t(at)), Reading::Http(Ok(200)));
        let progress = pass(&mut status, Some(bad(1, 30)), t(30), &gate());
        assert!(
            matches!(progress, AnalysisProgress::Running { .. }),
            "{progress:?}"
        );
        let progress = pass(&mut status, Some(bad(2, 60)), t(60), &gate());
        let AnalysisProgress::Failed { message } = progress else {
            panic!("{progress:?}");
        };
        assert!(
            message.contains(
                "metric errors failed 2 of 2 measurements (failureLimit 1); last: 9 is above 5"
            ),
            "{message}"
        );
        // Its verdict stays, whatever is seen later.
        let progress = pass(&mut status, Some(bad(3, 90)), t(90), &gate());
        assert!(matches!(progress, AnalysisProgress::Failed { .. }));
        assert_eq!(
            status.analysis.as_ref().unwrap().phase,
            AnalysisPhase::Failed
        );
    }

    #[test]
    fn a_measurement_that_cannot_be_taken_is_retried_then_inconclusive() {
        let mut status = in_flight();
        pass(&mut status, None, t(0), &gate());
        let throttled = |at: i64| {
            measured(
                1,
                t(at),
                Reading::Error {
                    message: "Rate exceeded".into(),
                    retryable: true,
                },
                Reading::Http(Ok(200)),
            )
        };
        let progress = pass(&mut status, Some(throttled(30)), t(30), &gate());
        assert!(
            matches!(progress, AnalysisProgress::Running { after, .. } if after == RETRY_MEASUREMENT),
            "{progress:?}"
        );
        assert_eq!(status.analysis.as_ref().unwrap().taken, 0);
        // Past the grace (half the interval): recorded as inconclusive, over the limit of 0.
        let progress = pass(&mut status, Some(throttled(46)), t(46), &gate());
        let AnalysisProgress::Inconclusive { message } = progress else {
            panic!("{progress:?}");
        };
        assert!(
            message.contains("metric errors was inconclusive 1 of 1")
                && message.contains("Rate exceeded"),
            "{message}"
        );
        // A promote goes on past it.
        let promoted = AnalysisGate {
            promote: true,
            ..gate()
        };
        let progress = pass(&mut status, None, t(50), &promoted);
        assert!(
            matches!(progress, AnalysisProgress::Passed { promoted: true, .. }),
            "{progress:?}"
        );
        assert_eq!(
            status.analysis.as_ref().unwrap().phase,
            AnalysisPhase::Skipped
        );
    }

    #[test]
    fn count_measurements_without_too_many_failures_pass() {
        let mut status = in_flight();
        pass(&mut status, None, t(0), &gate());
        for (n, at) in [(1, 30), (2, 61), (3, 95)] {
            let errors = if n == 2 {
                value(7.0, t(at))
            } else {
                value(1.0, t(at))
            };
            let progress = pass(
                &mut status,
                Some(measured(n, t(at), errors, Reading::Http(Ok(204)))),
                t(at),
                &gate(),
            );
            if n < 3 {
                assert!(
                    matches!(progress, AnalysisProgress::Running { .. }),
                    "{progress:?}"
                );
            } else {
                assert!(
                    matches!(
                        progress,
                        AnalysisProgress::Passed {
                            promoted: false,
                            ..
                        }
                    ),
                    "{progress:?}"
                );
            }
        }
        let state = status.analysis.as_ref().unwrap();
        assert_eq!(state.phase, AnalysisPhase::Successful);
        assert_eq!(
            (state.metrics[0].successful, state.metrics[0].failed),
            (2, 1)
        );
        assert_eq!(state.metrics[1].last_value, Some(204.0));
        // The schedule follows the measurements taken: an interval after each.
        assert_eq!(state.last_measured_at, Some(t(95)));
    }

    #[test]
    fn readings_mean_what_the_document_says() {
        let metric = |fail_when: Option<Threshold>, on_no_data: Option<OnNoData>| AnalysisMetric {
            name: "m".into(),
            cloud_watch: None,
            http: None,
            fail_when,
            on_no_data,
        };
        let above = Some(Threshold {
            above: Some(1.0),
            below: None,
        });
        let below = Some(Threshold {
            above: None,
            below: Some(10.0),
        });
        let at = t(0);
        let cases = [
            (
                metric(above.clone(), None),
                value(1.0, at),
                MeasurementResult::Successful,
                "1 (fails above 1)",
            ),
            (
                metric(above.clone(), None),
                value(1.5, at),
                MeasurementResult::Failed,
                "1.5 is above 1",
            ),
            (
                metric(below.clone(), None),
                value(3.0, at),
                MeasurementResult::Failed,
                "3 is below 10",
            ),
            (
                metric(above.clone(), None),
                Reading::CloudWatch(vec![]),
                MeasurementResult::Inconclusive,
                "no data (onNoData: inconclusive)",
            ),
            (
                metric(above.clone(), Some(OnNoData::Pass)),
                Reading::CloudWatch(vec![]),
                MeasurementResult::Successful,
                "no data (onNoData: pass)",
            ),
            (
                metric(above.clone(), Some(OnNoData::Fail)),
                Reading::CloudWatch(vec![MetricDatapoint {
                    at,
                    value: f64::NAN,
                }]),
                MeasurementResult::Failed,
                "no data (onNoData: fail)",
            ),
            (
                metric(None, None),
                value(1.0, at),
                MeasurementResult::Inconclusive,
                "1, and no failWhen to judge it by",
            ),
        ];
        for (metric, reading, result, message) in cases {
            let judged = judge(&metric, &reading);
            assert_eq!((judged.0, judged.2.as_str()), (result, message));
        }
        // The newest datapoint is the value.
        let series = Reading::CloudWatch(vec![
            MetricDatapoint {
                at: t(0),
                value: 9.0,
            },
            MetricDatapoint {
                at: t(60),
                value: 0.5,
            },
        ]);
        assert_eq!(judge(&metric(above, None), &series).1, Some(0.5));
        let mut probe = metric(None, None);
        probe.http = Some(HttpProbeSpec {
            url: "http://x".into(),
            timeout: None,
            expect_status: vec![],
        });
        assert_eq!(
            judge(&probe, &Reading::Http(Ok(204))).0,
            MeasurementResult::Successful
        );
        assert_eq!(
            judge(&probe, &Reading::Http(Ok(301))).2,
            "HTTP 301, expected 2xx"
        );
        let failed = judge(
            &probe,
            &Reading::Http(Err(ProbeError::Failed("connection refused".into()))),
        );
        assert_eq!(
            (failed.0, failed.2.as_str()),
            (MeasurementResult::Failed, "GET failed: connection refused")
        );
    }

    #[test]
    fn requests_replace_the_placeholders_and_return_the_expression_only() {
        let spec = spec();
        let query = spec.strategy.code_deploy.unwrap().analysis.unwrap().metrics[0]
            .cloud_watch
            .clone()
            .unwrap();
        let request = metric_data_request(
            &query,
            Some("targetgroup/web-a/1"),
            Some("targetgroup/web-b/2"),
            Duration::from_secs(30),
            t(640),
        )
        .unwrap();
        assert_eq!(request.returned_id(), Some("m1"));
        assert_eq!((request.start, request.end), (t(550), t(640)));
        // Never the period in progress: 45 s into a period, the range ends where it started.
        let late = metric_data_request(
            &query,
            None,
            Some("targetgroup/web-b/2"),
            Duration::from_secs(30),
            t(685),
        )
        .unwrap();
        assert_eq!((late.start, late.end), (t(550), t(640)));
        let MetricDataKind::Stat { dimensions, .. } = &request.queries[0].kind else {
            panic!()
        };
        assert_eq!(
            dimensions,
            &[("TargetGroup".to_string(), "targetgroup/web-b/2".to_string())]
        );
        let error =
            metric_data_request(&query, None, None, Duration::from_secs(30), t(600)).unwrap_err();
        assert!(
            error.contains("CANDIDATE_TARGET_GROUP has no value"),
            "{error}"
        );
    }
}
