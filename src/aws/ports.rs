//! Builds the four AWS ports of one region from one SDK configuration.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::{CloudWatchAlarms, CodeDeployAdapter, EcsAdapter, ElbAdapter};
use crate::ports::AwsPorts;

/// The production `PortsFactory`: one SDK client per service, all sharing `config`
/// (credentials, region, endpoints, retries, timeouts).
pub fn build_ports(config: &SdkConfig) -> AwsPorts {
    AwsPorts {
        ecs: Arc::new(EcsAdapter::new(aws_sdk_ecs::Client::new(config))),
        codedeploy: Arc::new(CodeDeployAdapter::new(aws_sdk_codedeploy::Client::new(
            config,
        ))),
        load_balancer: Arc::new(ElbAdapter::new(
            aws_sdk_elasticloadbalancingv2::Client::new(config),
        )),
        alarms: Arc::new(CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(
            config,
        ))),
    }
}
