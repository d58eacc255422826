//! Builds the AWS ports of one region from one SDK configuration.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::attempts::CountAttempts;
use super::{CloudWatchAlarms, CloudWatchMetricData, CodeDeployAdapter, EcsAdapter, ElbAdapter};
use crate::ports::AwsPorts;

/// The production `PortsFactory`: one SDK client per service, all sharing `config`
/// (credentials, region, endpoints, retries, timeouts), each counting the requests it sends
/// for the fleet's API budget (`attempts.rs`).
pub fn build_ports(config: &SdkConfig) -> AwsPorts {
    // Alarms and metric data share one CloudWatch client: one place to point it elsewhere.
    let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(config)
            .interceptor(CountAttempts)
            .build(),
    );
    let ecs = aws_sdk_ecs::config::Builder::from(config)
        .interceptor(CountAttempts)
        .build();
    let codedeploy = aws_sdk_codedeploy::config::Builder::from(config)
        .interceptor(CountAttempts)
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
        .interceptor(CountAttempts)
        .build();
    AwsPorts {
        ecs: Arc::new(EcsAdapter::new(aws_sdk_ecs::Client::from_conf(ecs))),
        codedeploy: Arc::new(CodeDeployAdapter::new(
            aws_sdk_codedeploy::Client::from_conf(codedeploy),
        )),
        load_balancer: Arc::new(ElbAdapter::new(
            aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        )),
        alarms: Arc::new(CloudWatchAlarms::new(cloudwatch.clone())),
        metric_data: Arc::new(CloudWatchMetricData::new(cloudwatch)),
    }
}
