//! The Elastic Load Balancing v2 port on the AWS SDK: a listener's default forward action.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types as sdk;

use super::error::{CodeMap, classify};
use crate::ports::{AwsError, AwsErrorKind, Listener, LoadBalancer, WeightedTargetGroup};

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

/// The target groups a forward action sends to, with their weights. A `ForwardConfig` wins
/// when present (AWS reports both shapes for a single target group); a bare
/// `TargetGroupArn` is one target of weight 1. A tuple without a weight has weight 1, as
/// ELB defaults it.
pub(crate) fn forward_targets(action: &sdk::Action) -> Vec<WeightedTargetGroup> {
    let tuples = action
        .forward_config()
        .map(|f| f.target_groups())
        .unwrap_or_default();
    if !tuples.is_empty() {
        return tuples
            .iter()
            .filter_map(|t| {
                Some(WeightedTargetGroup {
                    target_group_arn: t.target_group_arn()?.to_string(),
                    weight: t.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0)),
                })
            })
            .collect();
    }
    action
        .target_group_arn()
        .map(|arn| {
            vec![WeightedTargetGroup {
                target_group_arn: arn.to_string(),
                weight: 1,
            }]
        })
        .unwrap_or_default()
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

    #[test]
    fn a_bare_target_group_is_one_entry_of_weight_one() {
        let action = sdk::Action::builder()
            .r#type(sdk::ActionTypeEnum::Forward)
            .target_group_arn("arn:blue")
            .build();
        assert_eq!(
            forward_targets(&action),
            vec![WeightedTargetGroup {
                target_group_arn: "arn:blue".into(),
                weight: 1
            }]
        );
    }
}
