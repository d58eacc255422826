//! `analysis`: measurements of the candidate that gate a rollout (a `taskSets` step, the
//! answer to an ECS `PAUSE` hook, the gate of a CodeDeploy deployment waiting in `Ready`),
//! the document's section with its validation, and the analysis's part of the status.
//!
//! Thresholds are typed (`above`, `below`): there is no expression language to get wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;
use super::field_error::FieldError;

/// The placeholders a CloudWatch dimension value (or a metric math expression) may use,
/// replaced with the target groups' `TargetGroup` dimension values (`targetgroup/NAME/ID`).
pub const CANDIDATE_TARGET_GROUP: &str = "CANDIDATE_TARGET_GROUP";
pub const LIVE_TARGET_GROUP: &str = "LIVE_TARGET_GROUP";

/// The id of the query a CloudWatch metric's `expression` is sent as (the one whose data
/// `GetMetricData` returns); the document's own metric ids must differ from it.
pub const EXPRESSION_ID: &str = "switchyard";

/// GetMetricData's limits (the CloudWatch API reference): queries per call, the length of an
/// expression and of an id, dimensions per metric.
pub const MAX_QUERIES: usize = 500;
pub const MAX_EXPRESSION_LENGTH: usize = 2048;
pub const MAX_ID_LENGTH: usize = 255;
pub const MAX_DIMENSIONS: usize = 30;

/// The default and the longest timeout of an HTTP probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most measurements one analysis takes.
pub const MAX_COUNT: i64 = 10_000;

/// An analysis: `count` measurements of every metric, `interval` apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisSpec {
    /// The time between measurements (the first is taken one interval after the start).
    pub interval: DurationSpec,
    /// How many measurements; the analysis succeeds after the last one.
    pub count: i64,
    /// More failed measurements of a metric than this: the analysis fails (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_limit: i64,
    /// More inconclusive measurements of a metric than this: the rollout waits for a human
    /// (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconclusive_limit: i64,
    pub metrics: Vec<AnalysisMetric>,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// One metric of an analysis: a CloudWatch query or an HTTP probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisMetric {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch: Option<CloudWatchQuery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    /// When a CloudWatch value is a failed measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_when: Option<Threshold>,
    /// What an empty CloudWatch result is (default inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<OnNoData>,
}

/// One `GetMetricData` query: a metric, or metric math over several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudWatchQuery {
    /// Metric math over `metrics` (by id); without it, `metrics` holds exactly one metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The metrics, by the id the expression uses.
    pub metrics: BTreeMap<String, MetricStatSpec>,
    /// The granularity of the datapoints.
    pub period: DurationSpec,
}

/// A CloudWatch metric and the statistic to read of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStatSpec {
    pub namespace: String,
    pub name: String,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount`, or a percentile (`p99`).
    pub stat: String,
    /// Values may be `CANDIDATE_TARGET_GROUP` or `LIVE_TARGET_GROUP`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// An HTTP probe: a request that fails, times out or answers another status is a failed
/// measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbeSpec {
    pub url: String,
    /// Default 5s, at most 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// The statuses that pass; any 2xx by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
}

/// `failWhen`: exactly one of `above` and `below`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}

impl Eq for Threshold {}

/// What an empty CloudWatch result counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnNoData {
    /// No evidence either way (the default: Argo counting it as success is its users' bug
    /// #4147).
    #[default]
    Inconclusive,
    Pass,
    Fail,
}

impl OnNoData {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnNoData::Inconclusive => "inconclusive",
            OnNoData::Pass => "pass",
            OnNoData::Fail => "fail",
        }
    }
}

impl AnalysisSpec {
    pub fn interval(&self) -> Duration {
        self.interval.get()
    }

    /// The number of measurements (validated: 1 to [`MAX_COUNT`]).
    pub fn count(&self) -> u32 {
        self.count.clamp(1, MAX_COUNT) as u32
    }

    pub fn failure_limit(&self) -> u32 {
        self.failure_limit.clamp(0, i64::from(u32::MAX)) as u32
    }

    pub fn inconclusive_limit(&self) -> u32 {
        self.inconclusive_limit.clamp(0, i64::from(u32::MAX)) as u32
    }

    /// How long the analysis lasts when every measurement is on time: `count` × `interval`.
    pub fn duration(&self) -> Duration {
        self.interval().saturating_mul(self.count())
    }

    /// Whether a metric names `placeholder` in a dimension value or its expression.
    pub fn uses(&self, placeholder: &str) -> bool {
        self.metrics.iter().any(|m| {
            m.cloud_watch.as_ref().is_some_and(|q| {
                q.expression
                    .as_deref()
                    .is_some_and(|e| e.contains(placeholder))
                    || q.metrics
                        .values()
                        .any(|s| s.dimensions.values().any(|v| v.contains(placeholder)))
            })
        })
    }

    /// How the analysis reads in messages: `10 measurements 30s apart`.
    pub fn describe(&self) -> String {
        format!(
            "{} measurement{} {} apart",
            self.count(),
            if self.count() == 1 { "" } else { "s" },
            self.interval.as_str()
        )
    }
}

impl AnalysisMetric {
    pub fn on_no_data(&self) -> OnNoData {
        self.on_no_data.unwrap_or_default()
    }
}

impl HttpProbeSpec {
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_ref()
            .map_or(DEFAULT_PROBE_TIMEOUT, DurationSpec::get)
    }

    /// Whether `status` passes.
    pub fn expects(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    /// The statuses that pass, for messages.
    pub fn expected(&self) -> String {
        if self.expect_status.is_empty() {
            "2xx".into()
        } else {
            self.expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }
}

/// Checks an analysis (`base` is its path); pushes one error per problem.
pub fn validate(base: &str, analysis: &AnalysisSpec, errors: &mut Vec<FieldError>) {
    let mut error = |path: String, message: String| errors.push(FieldError::new(path, message));
    if analysis.interval().is_zero() {
        error(
            format!("{base}.interval"),
            "must be longer than 0s (the time between measurements)".into(),
        );
    }
    if analysis.count < 1 || analysis.count > MAX_COUNT {
        error(
            format!("{base}.count"),
            format!(
                "must be 1 to {MAX_COUNT} measurements (got {})",
                analysis.count
            ),
        );
    }
    for (field, value) in [
        ("failureLimit", analysis.failure_limit),
        ("inconclusiveLimit", analysis.inconclusive_limit),
    ] {
        if value < 0 {
            error(
                format!("{base}.{field}"),
                format!("must be 0 or more (got {value})"),
            );
        }
    }
    if analysis.metrics.is_empty() {
        error(
            format!("{base}.metrics"),
            "must list at least one metric (a cloudWatch query or an http probe)".into(),
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, metric) in analysis.metrics.iter().enumerate() {
        let path = format!("{base}.metrics[{i}]");
        validate_metric(&path, metric, &mut error);
        if seen.contains(&metric.name.as_str()) {
            error(
                format!("{path}.name"),
                format!("{:?} names two metrics; names must be unique", metric.name),
            );
        }
        seen.push(&metric.name);
    }
}

fn validate_metric(path: &str, metric: &AnalysisMetric, error: &mut impl FnMut(String, String)) {
    let name = metric.name.trim();
    if name.is_empty() || name.len() > 63 || name != metric.name {
        error(
            format!("{path}.name"),
            format!(
                "must be 1 to 63 characters without surrounding spaces (got {:?})",
                metric.name
            ),
        );
    }
    match (&metric.cloud_watch, &metric.http) {
        (None, None) => error(
            path.to_string(),
            "must set one of cloudWatch (a GetMetricData query) and http (a probe)".into(),
        ),
        (Some(_), Some(_)) => error(
            path.to_string(),
            "must set one of cloudWatch and http, not both (make them two metrics)".into(),
        ),
        (Some(query), None) => {
            validate_query(&format!("{path}.cloudWatch"), query, error);
            match &metric.fail_when {
                None => error(
                    format!("{path}.failWhen"),
                    "is required for a cloudWatch metric: {above: N} or {below: N}".into(),
                ),
                Some(threshold) => {
                    validate_threshold(&format!("{path}.failWhen"), threshold, error)
                }
            }
        }
        (None, Some(probe)) => {
            validate_probe(&format!("{path}.http"), probe, error);
            if metric.fail_when.is_some() {
                error(
                    format!("{path}.failWhen"),
                    "is for cloudWatch metrics; an http probe fails on a status outside expectStatus, a timeout or an error".into(),
                );
            }
            if metric.on_no_data.is_some() {
                error(
                    format!("{path}.onNoData"),
                    "is for cloudWatch metrics; an http probe always answers or fails".into(),
                );
            }
        }
    }
}

fn validate_threshold(path: &str, threshold: &Threshold, error: &mut impl FnMut(String, String)) {
    match (threshold.above, threshold.below) {
        (Some(_), Some(_)) => error(
            path.to_string(),
            "must set one of above and below, not both".into(),
        ),
        (None, None) => error(path.to_string(), "must set one of above and below".into()),
        (Some(value), None) | (None, Some(value)) if !value.is_finite() => error(
            path.to_string(),
            format!("must be a finite number (got {value})"),
        ),
        _ => {}
    }
}

fn validate_probe(path: &str, probe: &HttpProbeSpec, error: &mut impl FnMut(String, String)) {
    if let Err(message) = check_http_url(&probe.url) {
        error(format!("{path}.url"), message);
    }
    if let Some(timeout) = &probe.timeout
        && (timeout.get().is_zero() || timeout.get() > MAX_PROBE_TIMEOUT)
    {
        error(
            format!("{path}.timeout"),
            format!(
                "must be longer than 0s and at most {}s (got {})",
                MAX_PROBE_TIMEOUT.as_secs(),
                timeout.as_str()
            ),
        );
    }
    for (i, status) in probe.expect_status.iter().enumerate() {
        if !(100..=599).contains(status) {
            error(
                format!("{path}.expectStatus[{i}]"),
                format!("must be an HTTP status, 100 to 599 (got {status})"),
            );
        }
    }
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("must be an http:// or https:// URL (got {url:?})"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("must name a host (got {url:?})"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain spaces or control characters (got {url:?})"
        ));
    }
    if let Some(port) = authority
        .rsplit_once(']')
        .map_or(authority, |(_, tail)| tail)
        .rsplit_once(':')
        .map(|(_, port)| port)
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "has a port that is not a number, 1 to 65535 (got {url:?})"
        ));
    }
    Ok(())
}

fn validate_query(path: &str, query: &CloudWatchQuery, error: &mut impl FnMut(String, String)) {
    let period = query.period.get();
    let seconds = period.as_secs();
    let high_resolution = [1, 5, 10, 20, 30];
    if period.subsec_nanos() != 0
        || seconds == 0
        || !(high_resolution.contains(&seconds) || seconds.is_multiple_of(60))
    {
        error(
            format!("{path}.period"),
            format!(
                "must be 1s, 5s, 10s, 20s, 30s or a multiple of 60s, as CloudWatch takes it (got {})",
                query.period.as_str()
            ),
        );
    }
    if query.metrics.is_empty() {
        error(
            format!("{path}.metrics"),
            "must name at least one metric".into(),
        );
    }
    match &query.expression {
        None if query.metrics.len() > 1 => error(
            format!("{path}.metrics"),
            format!(
                "holds {} metrics without an expression; add an expression over them (m1 / m2 * 100) or keep one",
                query.metrics.len()
            ),
        ),
        Some(expression) if expression.trim().is_empty() => error(
            format!("{path}.expression"),
            "must not be empty; leave it out to read the metric itself".into(),
        ),
        Some(expression) if expression.len() > MAX_EXPRESSION_LENGTH => error(
            format!("{path}.expression"),
            format!(
                "must be at most {MAX_EXPRESSION_LENGTH} characters (got {})",
                expression.len()
            ),
        ),
        _ => {}
    }
    if query.metrics.len() + 1 > MAX_QUERIES {
        error(
            format!("{path}.metrics"),
            format!("GetMetricData takes at most {MAX_QUERIES} queries"),
        );
    }
    for (id, stat) in &query.metrics {
        let metric_path = super::field_error::key_path(&format!("{path}.metrics"), id);
        if let Err(message) = check_query_id(id) {
            error(metric_path.clone(), message);
        }
        for (field, value, max) in [
            ("namespace", &stat.namespace, 255),
            ("name", &stat.name, 255),
        ] {
            if value.trim().is_empty() || value.len() > max {
                error(
                    format!("{metric_path}.{field}"),
                    format!("must be 1 to {max} characters"),
                );
            }
        }
        if !is_statistic(&stat.stat) {
            error(
                format!("{metric_path}.stat"),
                format!(
                    "must be SampleCount, Average, Sum, Minimum, Maximum or a percentile such as p99 (got {:?})",
                    stat.stat
                ),
            );
        }
        if stat.dimensions.len() > MAX_DIMENSIONS {
            error(
                format!("{metric_path}.dimensions"),
                format!("CloudWatch takes at most {MAX_DIMENSIONS} dimensions per metric"),
            );
        }
        for (name, value) in &stat.dimensions {
            let dimension_path =
                super::field_error::key_path(&format!("{metric_path}.dimensions"), name);
            if name.is_empty() || name.len() > 255 {
                error(
                    dimension_path.clone(),
                    "a dimension's name must be 1 to 255 characters".into(),
                );
            }
            if value.is_empty() || value.len() > 1024 {
                error(dimension_path, "must be 1 to 1024 characters".into());
            }
        }
        if let Some(unit) = &stat.unit
            && unit.trim().is_empty()
        {
            error(format!("{metric_path}.unit"), "must not be empty".into());
        }
    }
}

/// Whether `id` is a GetMetricData query id: a lower-case letter, then letters, digits and
/// `_`, at most 255 characters; not the id switchyard gives the expression.
pub fn check_query_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        || id.len() > MAX_ID_LENGTH
    {
        return Err(format!(
            "{id:?} is not a GetMetricData id: a lower-case letter, then letters, digits or _ (at most {MAX_ID_LENGTH})"
        ));
    }
    if id == EXPRESSION_ID {
        return Err(format!(
            "{EXPRESSION_ID:?} is the id switchyard gives the expression; name the metric otherwise"
        ));
    }
    Ok(())
}

/// Whether `stat` is a statistic GetMetricData takes: the five basic ones, or a percentile,
/// trimmed mean, winsorized mean, trimmed count, trimmed sum or percentile rank, as `p99`,
/// `tm90`, `TM(10%:90%)`, `PR(:300)`.
pub fn is_statistic(stat: &str) -> bool {
    const BASIC: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
    if BASIC.contains(&stat) {
        return true;
    }
    let number = |s: &str| {
        !s.is_empty()
            && s.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v))
            && s.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    for prefix in ["p", "tm", "wm", "tc", "ts", "IQM"] {
        if prefix == "IQM" && stat == "IQM" {
            return true;
        }
        if let Some(rest) = stat.strip_prefix(prefix)
            && prefix != "IQM"
            && number(rest)
        {
            return true;
        }
    }
    for prefix in ["TM(", "WM(", "TC(", "TS(", "PR("] {
        if let Some(range) = stat.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'))
            && let Some((low, high)) = range.split_once(':')
            && !(low.is_empty() && high.is_empty())
            && [low, high].iter().all(|bound| {
                bound.is_empty()
                    || bound
                        .strip_suffix('%')
                        .unwrap_or(bound)
                        .parse::<f64>()
                        .is_ok()
            })
        {
            return true;
        }
    }
    false
}

// ----- the status ---------------------------------------------------------------------

/// How an analysis stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalysisPhase {
    /// Taking measurements.
    #[default]
    Running,
    /// Every measurement taken, no metric over its limits.
    Successful,
    /// A metric had more failed measurements than `failureLimit`: the rollout rolls back.
    Failed,
    /// A metric had more inconclusive measurements than `inconclusiveLimit`: the rollout
    /// waits for `promote` (go on) or `abort` (roll back).
    Inconclusive,
    /// Ended early by `promote`.
    Skipped,
    /// Ended without a verdict: the rollout rolled back for another reason (an alarm, an
    /// abort, a newer candidate) or its gate went away (a hook answered by someone else).
    Stopped,
}

impl AnalysisPhase {
    pub fn as_str(&self) -> &'static str {
        match self {
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Skipped => "Skipped",
            AnalysisPhase::Stopped => "Stopped",
        }
    }
}

/// What one measurement of one metric was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MeasurementResult {
    Successful,
    Failed,
    Inconclusive,
}

impl MeasurementResult {
    pub const ALL: [MeasurementResult; 3] = [
        MeasurementResult::Successful,
        MeasurementResult::Failed,
        MeasurementResult::Inconclusive,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MeasurementResult::Successful => "successful",
            MeasurementResult::Failed => "failed",
            MeasurementResult::Inconclusive => "inconclusive",
        }
    }
}

/// The analysis of the rollout in flight (or of the last one, with its verdict); the
/// measurements taken so far are its memory, so a restarted or new replica goes on with the
/// next one, never taking one twice or skipping one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// Which gate the analysis runs at (`step 3`, `PAUSE hook HOOK_ID`, `deployment ID in
    /// Ready`): a different gate is a new analysis.
    pub gate: String,
    pub phase: AnalysisPhase,
    pub started_at: Timestamp,
    /// Measurements taken, and how many the analysis takes.
    pub taken: u32,
    pub count: u32,
    /// When the last was taken, and when the next one is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_measured_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_measurement_at: Option<Timestamp>,
    /// The target groups the placeholders stand for (ARNs, or names to look up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_target_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_target_group: Option<String>,
    pub metrics: Vec<MetricStatus>,
    /// Why it failed, is inconclusive or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

impl Eq for AnalysisStatus {}

/// One metric's measurements so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    pub name: String,
    #[serde(default)]
    pub successful: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub inconclusive: u32,
    /// The latest value (a CloudWatch datapoint, an HTTP status), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<MeasurementResult>,
    /// What the latest measurement means (`3.2 is above 1`, `no data`, `HTTP 503`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// The latest measurements, newest last (at most [`MEASUREMENTS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// How many measurements of each metric the status keeps.
pub const MEASUREMENTS_KEPT: usize = 10;

/// One measurement of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Which one it is (1 for the first): each is taken once.
    pub number: u32,
    pub at: Timestamp,
    pub result: MeasurementResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MetricStatus {
    pub fn count(&self, result: MeasurementResult) -> u32 {
        match result {
            MeasurementResult::Successful => self.successful,
            MeasurementResult::Failed => self.failed,
            MeasurementResult::Inconclusive => self.inconclusive,
        }
    }

    /// Records a measurement.
    pub fn record(&mut self, measurement: Measurement) {
        match measurement.result {
            MeasurementResult::Successful => self.successful += 1,
            MeasurementResult::Failed => self.failed += 1,
            MeasurementResult::Inconclusive => self.inconclusive += 1,
        }
        self.last_value = measurement.value;
        self.last_result = Some(measurement.result);
        self.last_message = measurement.message.clone();
        self.measurements.push(measurement);
        let excess = self.measurements.len().saturating_sub(MEASUREMENTS_KEPT);
        self.measurements.drain(..excess);
    }
}

impl AnalysisStatus {
    /// One line: `analysis at step 3: 4/10 measurements; error-rate 0.3 (4 ok)`.
    pub fn summary(&self) -> String {
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .map(|m| {
                let value = m.last_value.map(format_value).unwrap_or_else(|| "-".into());
                format!(
                    "{} {value} ({} ok, {} failed, {} inconclusive)",
                    m.name, m.successful, m.failed, m.inconclusive
                )
            })
            .collect();
        format!(
            "analysis {} at {}: {}/{} measurements; {}",
            self.phase.as_str().to_lowercase(),
            self.gate,
            self.taken,
            self.count,
            metrics.join(", ")
        )
    }

    /// The total of each result over every metric.
    pub fn totals(&self) -> BTreeMap<&'static str, u32> {
        MeasurementResult::ALL
            .iter()
            .map(|r| (r.as_str(), self.metrics.iter().map(|m| m.count(*r)).sum()))
            .collect()
    }
}

/// A value as people read it: integers without a fraction, others with at most 4 digits.
pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::parse::parse_documents;

    /// The errors of a `codeDeploy` release whose analysis is `analysis` (flow YAML).
    fn errors(analysis: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {{name: web}}\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition: {{from: web, containers: {{web: {{image: registry/web:2}}}}}}\n  strategy:\n    codeDeploy:\n      application: web\n      deploymentGroup: web-prod\n      analysis: {analysis}\n"
        );
        match parse_documents(&yaml) {
            Ok(_) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const PROBE: &str = "{name: up, http: {url: \"http://web/health\"}}";
    const QUERY: &str = "{metrics: {m1: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum}}, period: 60s}";

    #[test]
    fn bad_analyses_are_refused_naming_the_field() {
        let base = "spec.strategy.codeDeploy.analysis";
        let cases = [
            (format!("{{interval: 30s, count: 0, metrics: [{PROBE}]}}"), format!("{base}.count: must be 1 to 10000")),
            (format!("{{interval: soon, count: 3, metrics: [{PROBE}]}}"), format!("{base}.interval")),
            (format!("{{interval: 30s, count: 3, failureLimit: -1, metrics: [{PROBE}]}}"), format!("{base}.failureLimit: must be 0 or more")),
            (format!("{{interval: 30s, count: 3, inconclusiveLimit: -2, metrics: [{PROBE}]}}"), format!("{base}.inconclusiveLimit: must be 0 or more")),
            ("{interval: 30s, count: 3, metrics: [{name: m}]}".to_string(), format!("{base}.metrics[0]: must set one of cloudWatch")),
            (format!("{{interval: 30s, count: 3, metrics: [{{name: m, cloudWatch: {QUERY}, http: {{url: \"http://x\"}}, failWhen: {{above: 1}}}}]}}"), format!("{base}.metrics[0]: must set one of cloudWatch and http, not both")),
            (format!("{{interval: 30s, count: 3, metrics: [{{name: m, cloudWatch: {QUERY}, failWhen: {{above: 1, below: 0}}}}]}}"), format!("{base}.metrics[0].failWhen: must set one of above and below, not both")),
            (format!("{{interval: 30s, count: 3, metrics: [{{name: m, cloudWatch: {QUERY}, failWhen: {{}}}}]}}"), format!("{base}.metrics[0].failWhen: must set one of above and below")),
            ("{interval: 30s, count: 3, metrics: [{name: m, http: {url: \"ftp://web/health\"}}]}".to_string(), format!("{base}.metrics[0].http.url: must be an http:// or https:// URL")),
            ("{interval: 30s, count: 3, metrics: [{name: m, cloudWatch: {metrics: {m1: {namespace: N, name: X, stat: Sum}}, period: 45s}, failWhen: {above: 1}}]}".to_string(), format!("{base}.metrics[0].cloudWatch.period: must be 1s, 5s, 10s, 20s, 30s or a multiple of 60s")),
            (format!("{{interval: 30s, count: 3, metrics: [{PROBE}, {PROBE}]}}"), format!("{base}.metrics[1].name: \"up\" names two metrics")),
        ];
        for (analysis, expected) in cases {
            let found = errors(&analysis);
            assert!(
                found.iter().any(|e| e.contains(&expected)),
                "{analysis}: expected {expected:?}, got {found:?}"
            );
        }
        assert_eq!(
            errors(&format!("{{interval: 30s, count: 3, metrics: [{PROBE}]}}")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn statistics_are_those_cloudwatch_takes() {
        for ok in [
            "Sum",
            "Average",
            "p99",
            "p99.9",
            "tm90",
            "TM(10%:90%)",
            "PR(:300)",
            "IQM",
        ] {
            assert!(is_statistic(ok), "{ok}");
        }
        for bad in ["sum", "avg", "p", "p101", "TM()", "TM(:)", "Max", ""] {
            assert!(!is_statistic(bad), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        for ok in [
            "http://internal-alb.example:8081/health",
            "https://example.com",
            "http://127.0.0.1:9/x?y=1",
            "http://[::1]:8080/",
        ] {
            assert!(check_http_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "example.com/health",
            "http://",
            "http:///path",
            "http://host:port/",
            "http://exa mple.com/",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_ids_follow_getmetricdata() {
        assert!(check_query_id("m1").is_ok());
        assert!(check_query_id("errors_5xx").is_ok());
        for bad in ["M1", "1m", "m-1", "", EXPRESSION_ID] {
            assert!(check_query_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(format_value(200.0), "200");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1.0 / 3.0), "0.3333");
    }
}
