//! The CloudWatch alarms port on the AWS SDK: alarm states by name, batched and paginated,
//! of every alarm type (metric, composite and log alarms).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types as sdk;

use super::error::{CodeMap, classify};
use crate::ports::{
    AlarmState, Alarms, AwsError, AwsErrorKind, MetricData, MetricDataKind, MetricDataQuery,
    MetricDataRequest, MetricDatapoint,
};

const SERVICE: &str = "cloudwatch";

/// AWS's limit on `AlarmNames` per `DescribeAlarms` call.
pub const DESCRIBE_ALARMS_BATCH: usize = 100;

const DESCRIBE_ALARMS_CODES: CodeMap = CodeMap {
    not_found: &[],
    conflict: &[],
    invalid: &["InvalidNextToken", "ValidationError"],
};

/// CloudWatch alarms through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The state of an alarm that exists. A state this SDK does not know, or none at all, is not
/// evidence either way, like missing data; the alarm still exists, so it is never left out.
fn map_state(state: Option<&sdk::StateValue>) -> AlarmState {
    match state {
        Some(sdk::StateValue::Ok) => AlarmState::Ok,
        Some(sdk::StateValue::Alarm) => AlarmState::Alarm,
        _ => AlarmState::InsufficientData,
    }
}

/// Every alarm type of the pinned SDK's model. Without `AlarmTypes`, DescribeAlarms returns
/// metric alarms only; composite and log alarms come back only when asked for, and a
/// rollback alarm can be any of them.
const EVERY_ALARM_TYPE: [sdk::AlarmType; 3] = [
    sdk::AlarmType::MetricAlarm,
    sdk::AlarmType::CompositeAlarm,
    sdk::AlarmType::LogAlarm,
];

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        const OP: &str = "DescribeAlarms";
        let mut states = BTreeMap::new();
        for batch in names.chunks(DESCRIBE_ALARMS_BATCH) {
            let mut pages = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .set_alarm_types(Some(EVERY_ALARM_TYPE.to_vec()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(SERVICE, OP, e, DESCRIBE_ALARMS_CODES))?;
                let metric = page
                    .metric_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                let composite = page
                    .composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                let log = page
                    .log_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                for (name, state) in metric.chain(composite).chain(log) {
                    if let Some(name) = name {
                        states.insert(name.to_string(), map_state(state));
                    }
                }
            }
        }
        Ok(states)
    }
}

/// CloudWatch metric data through the AWS SDK: the same client as the alarms'.
#[derive(Debug, Clone)]
pub struct CloudWatchMetricData {
    client: Client,
}

impl CloudWatchMetricData {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

const GET_METRIC_DATA_CODES: CodeMap = CodeMap {
    not_found: &[],
    conflict: &[],
    invalid: &[
        "InvalidNextToken",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
        "ValidationError",
    ],
};

fn to_sdk_time(at: jiff::Timestamp) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(
        at.as_second(),
        at.subsec_nanosecond().max(0) as u32,
    )
}

fn from_sdk_time(at: &aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(at.secs(), at.subsec_nanos() as i32).ok()
}

fn to_sdk_query(query: &MetricDataQuery) -> sdk::MetricDataQuery {
    let mut builder = sdk::MetricDataQuery::builder()
        .id(&query.id)
        .return_data(query.return_data);
    builder = match &query.kind {
        MetricDataKind::Stat {
            namespace,
            metric_name,
            dimensions,
            period_seconds,
            stat,
            unit,
        } => {
            let mut metric = sdk::Metric::builder()
                .namespace(namespace)
                .metric_name(metric_name);
            for (name, value) in dimensions {
                metric =
                    metric.dimensions(sdk::Dimension::builder().name(name).value(value).build());
            }
            let mut metric_stat = sdk::MetricStat::builder()
                .metric(metric.build())
                .period(i32::try_from(*period_seconds).unwrap_or(i32::MAX))
                .stat(stat);
            if let Some(unit) = unit {
                metric_stat = metric_stat.unit(sdk::StandardUnit::from(unit.as_str()));
            }
            builder.metric_stat(metric_stat.build())
        }
        MetricDataKind::Expression {
            expression,
            period_seconds,
        } => builder
            .expression(expression)
            .period(i32::try_from(*period_seconds).unwrap_or(i32::MAX)),
    };
    builder.build()
}

#[async_trait]
impl MetricData for CloudWatchMetricData {
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        const OP: &str = "GetMetricData";
        let queries = request.queries.iter().map(to_sdk_query).collect::<Vec<_>>();
        let returned = request.returned_id().unwrap_or_default().to_string();
        let mut pages = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(to_sdk_time(request.start))
            .end_time(to_sdk_time(request.end))
            .scan_by(sdk::ScanBy::TimestampDescending)
            .into_paginator()
            .send();
        let mut datapoints = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, OP, e, GET_METRIC_DATA_CODES))?;
            for result in page.metric_data_results() {
                if result.id() != Some(returned.as_str()) {
                    continue;
                }
                // A result CloudWatch could not compute is an error, never "no data".
                if let Some(code @ (sdk::StatusCode::InternalError | sdk::StatusCode::Forbidden)) =
                    result.status_code()
                {
                    let said: Vec<&str> = result
                        .messages()
                        .iter()
                        .chain(page.messages())
                        .filter_map(|m| m.value())
                        .collect();
                    let kind = if *code == sdk::StatusCode::Forbidden {
                        AwsErrorKind::AccessDenied
                    } else {
                        AwsErrorKind::Transient
                    };
                    return Err(AwsError::new(
                        SERVICE,
                        OP,
                        kind,
                        format!(
                            "the result of query {returned} is {}{}",
                            code.as_str(),
                            if said.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", said.join("; "))
                            }
                        ),
                    )
                    .with_code(code.as_str()));
                }
                for (at, value) in result.timestamps().iter().zip(result.values()) {
                    if let Some(at) = from_sdk_time(at) {
                        datapoints.push(MetricDatapoint { at, value: *value });
                    }
                }
            }
        }
        datapoints.sort_by_key(|d| std::cmp::Reverse(d.at));
        Ok(datapoints)
    }
}
