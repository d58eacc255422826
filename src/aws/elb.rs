//! The Elastic Load Balancing v2 port on the AWS SDK: a listener's default forward action;
//! target groups, routes, target health and forward weights are in `routes.rs`.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types as sdk;

use super::error::{CodeMap, classify};
use super::routes::forward_targets;
use crate::ports::{
    AwsError, AwsErrorKind, ExpectedShare, Listener, LoadBalancer, Route, TargetGroup,
    TargetHealth, WeightedTargetGroup,
};

const SERVICE: &str = "elbv2";

const DESCRIBE_LISTENERS_CODES: CodeMap = CodeMap {
    // The query protocol's wire code is `ListenerNotFound`; the model's shape name is the
    // longer one.
    not_found: &[
        "ListenerNotFound",
        "ListenerNotFoundException",
        "LoadBalancerNotFound",
        "LoadBalancerNotFoundException",
    ],
    conflict: &[],
    invalid: &["ValidationError", "UnsupportedProtocol"],
};

/// ELBv2 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct ElbAdapter {
    client: Client,
}

impl ElbAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

pub(crate) fn map_listener(listener: &sdk::Listener) -> Listener {
    // Authentication actions may come first (lower `order`); traffic goes where the
    // forward action says.
    let forward = listener
        .default_actions()
        .iter()
        .filter(|a| a.r#type() == Some(&sdk::ActionTypeEnum::Forward))
        .min_by_key(|a| a.order().unwrap_or(i32::MAX))
        .map(forward_targets)
        .unwrap_or_default();
    Listener {
        arn: listener.listener_arn().unwrap_or_default().to_string(),
        port: listener
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0),
        forward,
    }
}

#[async_trait]
impl LoadBalancer for ElbAdapter {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        const OP: &str = "DescribeListeners";
        let output = self
            .client
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
            .map_err(|e| classify(SERVICE, OP, e, DESCRIBE_LISTENERS_CODES))?;
        output
            .listeners()
            .iter()
            .find(|l| l.listener_arn() == Some(listener_arn))
            .or(output.listeners().first())
            .map(map_listener)
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::NotFound,
                    format!("listener {listener_arn} not in the answer"),
                )
            })
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        super::routes::describe_target_groups(&self.client, references).await
    }

    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        super::routes::describe_routes(&self.client, load_balancer_arn).await
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        super::routes::describe_route(&self.client, arn).await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        super::routes::describe_target_health(&self.client, target_group_arn).await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        super::routes::set_forward_weights(&self.client, route_arn, weights, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(arn: &str, weight: Option<i32>) -> sdk::TargetGroupTuple {
        sdk::TargetGroupTuple::builder()
            .target_group_arn(arn)
            .set_weight(weight)
            .build()
    }

    #[test]
    fn a_forward_config_wins_and_a_missing_weight_is_one() {
        let listener = sdk::Listener::builder()
            .listener_arn("arn:l")
            .port(443)
            .default_actions(
                sdk::Action::builder()
                    .r#type(sdk::ActionTypeEnum::AuthenticateOidc)
                    .order(1)
                    .build(),
            )
            .default_actions(
                sdk::Action::builder()
                    .r#type(sdk::ActionTypeEnum::Forward)
                    .order(2)
                    .target_group_arn("arn:blue")
                    .forward_config(
                        sdk::ForwardActionConfig::builder()
                            .target_groups(tuple("arn:blue", Some(0)))
                            .target_groups(tuple("arn:green", None))
                            .build(),
                    )
                    .build(),
            )
            .build();
        let mapped = map_listener(&listener);
        assert_eq!(mapped.port, 443);
        assert_eq!(
            mapped.forward,
            vec![
                WeightedTargetGroup {
                    target_group_arn: "arn:blue".into(),
                    weight: 0
                },
                WeightedTargetGroup {
                    target_group_arn: "arn:green".into(),
                    weight: 1
                },
            ]
        );
    }
}
