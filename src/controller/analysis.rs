//! Takes the measurement an analysis has due (`reconcile::analysis::plan`, from the status
//! and the clock): one `GetMetricData` query per CloudWatch metric, in the release's region,
//! and one probe per HTTP metric, all at once. What a reading means is decided by the pure
//! core; a reading that could not be taken is handed over as such, never dropped.

use futures::future::join_all;

use super::Context;
use crate::model::ReleaseSpec;
use crate::model::ReleaseStatus;
use crate::model::analysis::{AnalysisMetric, CANDIDATE_TARGET_GROUP, LIVE_TARGET_GROUP};
use crate::ports::AwsPorts;
use crate::reconcile::analysis::{self, Measured, Reading};

/// The measurement due now for the release's analysis, taken; `None` when none is due.
pub async fn measure(
    ctx: &Context,
    ports: &AwsPorts,
    spec: &ReleaseSpec,
    status: Option<&ReleaseStatus>,
) -> Option<Measured> {
    let at = ctx.clock.now();
    let plan = analysis::plan(spec, status, at)?;
    let uses = |placeholder: &str| plan.metrics.iter().any(|m| metric_uses(m, placeholder));
    let live = match &plan.live_target_group {
        Some(reference) if uses(LIVE_TARGET_GROUP) => Some(dimension(ports, reference).await),
        _ => None,
    };
    let candidate = match &plan.candidate_target_group {
        Some(reference) if uses(CANDIDATE_TARGET_GROUP) => Some(dimension(ports, reference).await),
        _ => None,
    };
    let readings = join_all(plan.metrics.iter().map(|metric| {
        let live = live.clone();
        let candidate = candidate.clone();
        async move {
            let reading = if let Some(query) = &metric.cloud_watch {
                read_cloudwatch(ports, query, live, candidate, plan.interval, at).await
            } else if let Some(probe) = &metric.http {
                Reading::Http(ctx.probe.probe(&probe.url, probe.timeout()).await)
            } else {
                Reading::Error {
                    message: "neither cloudWatch nor http".into(),
                    retryable: false,
                }
            };
            (metric.name.clone(), reading)
        }
    }))
    .await;
    Some(Measured {
        gate: plan.gate,
        number: plan.number,
        at,
        readings,
    })
}

/// Whether a metric names `placeholder`.
fn metric_uses(metric: &AnalysisMetric, placeholder: &str) -> bool {
    metric.cloud_watch.as_ref().is_some_and(|q| {
        q.expression
            .as_deref()
            .is_some_and(|e| e.contains(placeholder))
            || q.metrics
                .values()
                .any(|s| s.dimensions.values().any(|v| v.contains(placeholder)))
    })
}

/// A target group's `TargetGroup` dimension value (`targetgroup/NAME/ID`), from its ARN, or
/// looked up by name; `Err` says why not and whether asking again may help.
async fn dimension(ports: &AwsPorts, reference: &str) -> Result<String, (String, bool)> {
    if reference.starts_with("arn:") {
        return Ok(reference
            .rsplit_once(':')
            .map_or(reference, |(_, tail)| tail)
            .to_string());
    }
    match ports
        .load_balancer
        .describe_target_groups(&[reference.to_string()])
        .await
    {
        Ok(groups) => groups
            .iter()
            .find(|g| g.name == reference || g.arn == reference)
            .map(|g| g.dimension().to_string())
            .ok_or_else(|| (format!("target group {reference} not found"), false)),
        Err(error) => Err((
            format!("looking up target group {reference}: {error}"),
            error.is_retryable(),
        )),
    }
}

async fn read_cloudwatch(
    ports: &AwsPorts,
    query: &crate::model::analysis::CloudWatchQuery,
    live: Option<Result<String, (String, bool)>>,
    candidate: Option<Result<String, (String, bool)>>,
    interval: std::time::Duration,
    at: jiff::Timestamp,
) -> Reading {
    let mut dimensions = [None, None];
    for (slot, looked_up) in dimensions.iter_mut().zip([live, candidate]) {
        match looked_up {
            Some(Ok(value)) => *slot = Some(value),
            Some(Err((message, retryable))) => return Reading::Error { message, retryable },
            None => {}
        }
    }
    let [live, candidate] = dimensions;
    let request = match analysis::metric_data_request(
        query,
        live.as_deref(),
        candidate.as_deref(),
        interval,
        at,
    ) {
        Ok(request) => request,
        Err(message) => {
            return Reading::Error {
                message,
                retryable: false,
            };
        }
    };
    match ports.metric_data.get_metric_data(&request).await {
        Ok(datapoints) => Reading::CloudWatch(datapoints),
        Err(error) => Reading::Error {
            message: format!("GetMetricData: {error}"),
            retryable: error.is_retryable(),
        },
    }
}
