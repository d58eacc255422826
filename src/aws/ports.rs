//! Builds the AWS ports of one region from one SDK configuration.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::{CloudWatchAlarms, CloudWatchMetricData, CodeDeployAdapter, EcsAdapter, ElbAdapter};
use crate::ports::AwsPorts;

/// The production `PortsFactory`: one SDK client per service, all sharing `config`
/// (credentials, region, endpoints, retries, timeouts).
pub fn build_ports(config: &SdkConfig) -> AwsPorts {
    // Alarms and metric data share one CloudWatch client: one place to point it elsewhere.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(config);
    AwsPorts {
        ecs: Arc::new(EcsAdapter::new(aws_sdk_ecs::Client::new(config))),
        codedeploy: Arc::new(CodeDeployAdapter::new(aws_sdk_codedeploy::Client::new(
            config,
        ))),
        load_balancer: Arc::new(ElbAdapter::new(
            aws_sdk_elasticloadbalancingv2::Client::new(config),
        )),
        alarms: Arc::new(CloudWatchAlarms::new(cloudwatch.clone())),
        metric_data: Arc::new(CloudWatchMetricData::new(cloudwatch)),
    }
}
