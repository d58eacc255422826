//! The CloudWatch metrics port: one `GetMetricData` query per measurement of an analysis.

use async_trait::async_trait;
use jiff::Timestamp;

use super::AwsError;

/// One entry of `MetricDataQueries`: a metric's statistic, or metric math over others.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDataQuery {
    /// Ties the query to its result and names it in expressions.
    pub id: String,
    pub kind: MetricDataKind,
    /// Whether `GetMetricData` returns this query's datapoints.
    pub return_data: bool,
}

/// What a query reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricDataKind {
    /// `MetricStat`: one metric (namespace, name, dimensions), one statistic per period.
    Stat {
        namespace: String,
        metric_name: String,
        /// Dimension names and values, the placeholders already replaced.
        dimensions: Vec<(String, String)>,
        period_seconds: u32,
        stat: String,
        unit: Option<String>,
    },
    /// Metric math over the other queries' ids.
    Expression {
        expression: String,
        period_seconds: u32,
    },
}

/// A `GetMetricData` request: the queries (exactly one returns data) over a time range.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDataRequest {
    pub queries: Vec<MetricDataQuery>,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl MetricDataRequest {
    /// The id of the query whose data is returned.
    pub fn returned_id(&self) -> Option<&str> {
        self.queries
            .iter()
            .find(|q| q.return_data)
            .map(|q| q.id.as_str())
    }
}

/// One datapoint of the returned query.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricDatapoint {
    pub at: Timestamp,
    pub value: f64,
}

/// CloudWatch metric data as an analysis reads it.
#[async_trait]
pub trait MetricData: Send + Sync {
    /// `GetMetricData`: the datapoints of the query that returns data, newest first (every
    /// page read); empty when CloudWatch has none in the range. A result CloudWatch marks
    /// `InternalError` or `Forbidden` is an error, never an empty result.
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError>;
}
