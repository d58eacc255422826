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

/// A target group as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    /// The load balancers whose listeners (or rules) forward to it.
    pub load_balancer_arns: Vec<String>,
    pub port: Option<u16>,
}

impl TargetGroup {
    /// The value of CloudWatch's `TargetGroup` dimension: `targetgroup/NAME/ID`.
    pub fn dimension(&self) -> &str {
        self.arn
            .rsplit_once(':')
            .map_or(self.arn.as_str(), |(_, tail)| tail)
    }
}

/// Where a listener sends traffic: its default action, or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The listener's ARN (its default action) or the rule's ARN.
    pub arn: String,
    pub listener_arn: String,
    pub load_balancer_arn: String,
    /// The listener's port.
    pub port: Option<u16>,
    /// `None` for the listener's default action; the rule's priority otherwise.
    pub rule_priority: Option<String>,
    /// The forward action's target groups and weights (0..=999; a single-target forward is
    /// one entry of weight 1); `None` when the route does not forward (a redirect, a fixed
    /// response).
    pub forward: Option<Vec<WeightedTargetGroup>>,
}

impl Route {
    /// The weight of `target_group_arn` in the forward action (0 when it is not there).
    pub fn weight_of(&self, target_group_arn: &str) -> u32 {
        self.forward
            .iter()
            .flatten()
            .filter(|t| t.target_group_arn == target_group_arn)
            .map(|t| t.weight)
            .sum()
    }

    /// The percentage (0..=100) of this route's traffic that reaches `target_group_arn`.
    pub fn percent_to(&self, target_group_arn: &str) -> Option<f64> {
        let total: u32 = self.forward.iter().flatten().map(|t| t.weight).sum();
        (total > 0).then(|| f64::from(self.weight_of(target_group_arn)) * 100.0 / f64::from(total))
    }
}

/// The health of one target of a target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TargetHealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

/// One registered target and its health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// The target's id (an IP address or instance id).
    pub id: String,
    pub port: Option<u16>,
    pub state: TargetHealthState,
}

/// What a guarded weight write expects a route to show: the candidate group's share of its
/// traffic, in percent (0 when the forward action does not name it). Every weight write reads
/// the route first (`ModifyListener` and `ModifyRule` take the whole action list); a guarded
/// one that finds another share writes nothing and fails with [`ExpectedShare::ROUTE_CHANGED`]
/// (kind `Conflict`): the read before the write is the look that verifies the last write and
/// notices weights changed by hand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedShare {
    pub target_group_arn: String,
    pub percent: u32,
}

impl ExpectedShare {
    /// The error code of a guarded write that found another share (switchyard's own: the
    /// check is made before ELB is asked).
    pub const ROUTE_CHANGED: &'static str = "RouteChanged";

    /// `Ok` when `forward` (a route's forward action, as read) gives the expected share.
    pub fn check(
        &self,
        operation: &'static str,
        route_arn: &str,
        forward: Option<&[WeightedTargetGroup]>,
    ) -> Result<(), super::AwsError> {
        let total: u32 = forward.iter().copied().flatten().map(|t| t.weight).sum();
        let share = forward.filter(|_| total > 0).map(|targets| {
            let weight: u32 = targets
                .iter()
                .filter(|t| t.target_group_arn == self.target_group_arn)
                .map(|t| t.weight)
                .sum();
            (f64::from(weight) * 100.0 / f64::from(total)).round() as u32
        });
        if share == Some(self.percent) {
            return Ok(());
        }
        Err(super::AwsError::new(
            "elbv2",
            operation,
            super::AwsErrorKind::Conflict,
            format!(
                "{route_arn} gives {} the candidate group, not the {}% switchyard set: changed outside switchyard; not written",
                share.map_or("nothing to".to_string(), |p| format!("{p}% to")),
                self.percent
            ),
        )
        .with_code(Self::ROUTE_CHANGED))
    }
}

/// The load balancer as the controller uses it: read-only for the CodeDeploy strategy;
/// the task-set strategy also weights forward actions.
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError>;

    /// `DescribeTargetGroups` by name or ARN; one that does not exist is `NotFound`.
    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        let _ = references;
        Err(unsupported("DescribeTargetGroups"))
    }

    /// Every listener's default action and every rule (but the default rule, which is the
    /// listener's default action) of a load balancer (`DescribeListeners`, `DescribeRules`).
    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        let _ = load_balancer_arn;
        Err(unsupported("DescribeListeners"))
    }

    /// One route by its ARN: a listener (its default action) or a rule.
    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        let _ = arn;
        Err(unsupported("DescribeRules"))
    }

    /// `DescribeTargetHealth` of a target group.
    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        let _ = target_group_arn;
        Err(unsupported("DescribeTargetHealth"))
    }

    /// Rewrites the target groups and weights of a route's forward action (`ModifyListener`
    /// for a listener's default action, `ModifyRule` for a rule), keeping every other action
    /// and the forward action's stickiness as they are. With `expected`, only if the route
    /// (read first, as always) still gives that share (see [`ExpectedShare`]).
    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        let _ = (route_arn, weights, expected);
        Err(unsupported("ModifyListener"))
    }
}

/// The error of an operation an implementation of the port does not offer.
fn unsupported(operation: &'static str) -> AwsError {
    AwsError::new(
        "elbv2",
        operation,
        super::AwsErrorKind::InvalidRequest,
        format!("{operation} is not offered by this implementation of the load balancer port"),
    )
}
