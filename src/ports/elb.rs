//! The Elastic Load Balancing v2 port: listeners and their forward actions.

use async_trait::async_trait;

use super::AwsError;

/// One target group of a forward action with its weight (0..=999). A single-target forward
/// action is represented as one entry of weight 1.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WeightedTargetGroup {
    pub target_group_arn: String,
    pub weight: u32,
}

/// A listener's default forward action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listener {
    pub arn: String,
    pub port: u16,
    pub forward: Vec<WeightedTargetGroup>,
}

impl Listener {
    /// The percentage (0..=100) of this listener's traffic that reaches the named target group.
    pub fn percent_to(&self, target_group_name: &str) -> Option<f64> {
        let total: u32 = self.forward.iter().map(|t| t.weight).sum();
        if total == 0 {
            return None;
        }
        let to: u32 = self
            .forward
            .iter()
            .filter(|t| target_group_name_from_arn(&t.target_group_arn) == target_group_name)
            .map(|t| t.weight)
            .sum();
        Some(f64::from(to) * 100.0 / f64::from(total))
    }
}

/// The name inside a target group ARN (`...:targetgroup/NAME/ID`), or the input itself.
pub fn target_group_name_from_arn(arn: &str) -> &str {
    arn.split_once(":targetgroup/")
        .and_then(|(_, tail)| tail.split('/').next())
        .unwrap_or(arn)
}

/// The load balancer as the controller uses it (read-only for the CodeDeploy strategy).
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError>;
}
