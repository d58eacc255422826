//! Simulated Elastic Load Balancing v2: load balancers, listeners and their rules with forward
//! actions (weights 0..=999), target groups and the health of their targets.
//!
//! Each port method makes the same ELB calls the real adapter makes (`describe_routes` is one
//! `DescribeListeners` and one `DescribeRules` per listener; `set_forward_weights` reads the
//! route, then modifies it), each through `SimAws::call`, so call counts and faults are the
//! ones AWS would see.

use async_trait::async_trait;

use crate::ports::{
    AwsError, AwsErrorKind, ExpectedShare, Listener, LoadBalancer, Route, TargetGroup,
    TargetHealth, WeightedTargetGroup,
};

use super::SimAws;
use super::world::{SimListener, SimRule, SimTargetGroup, World, rule_arn};

const SERVICE: &str = "elbv2";

/// ELB's limit on the weight of one target group in a forward action.
pub const MAX_FORWARD_WEIGHT: u32 = 999;
/// ELB's limit on the target groups of one forward action.
pub const MAX_FORWARD_TARGET_GROUPS: usize = 5;

fn error(operation: &'static str, kind: AwsErrorKind, code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, kind, message).with_code(code)
}

fn listener_not_found(operation: &'static str, arn: &str) -> AwsError {
    error(
        operation,
        AwsErrorKind::NotFound,
        "ListenerNotFound",
        format!("One or more listeners not found: {arn}"),
    )
}

fn rule_not_found(operation: &'static str, arn: &str) -> AwsError {
    error(
        operation,
        AwsErrorKind::NotFound,
        "RuleNotFound",
        format!("One or more rules not found: {arn}"),
    )
}

fn target_group_not_found(operation: &'static str, reference: &str) -> AwsError {
    error(
        operation,
        AwsErrorKind::NotFound,
        "TargetGroupNotFound",
        format!("One or more target groups not found: {reference}"),
    )
}

/// What a route ARN names.
enum RouteKind {
    Listener,
    Rule,
}

fn route_kind(operation: &'static str, arn: &str) -> Result<RouteKind, AwsError> {
    if arn.contains(":listener-rule/") {
        Ok(RouteKind::Rule)
    } else if arn.contains(":listener/") {
        Ok(RouteKind::Listener)
    } else {
        Err(error(
            operation,
            AwsErrorKind::InvalidRequest,
            "ValidationError",
            format!("'{arn}' is not a valid listener or listener rule ARN"),
        ))
    }
}

impl SimListener {
    pub fn view(&self) -> Listener {
        Listener {
            arn: self.arn.clone(),
            port: self.port,
            forward: self.forward.clone(),
        }
    }

    fn route(&self) -> Route {
        Route {
            arn: self.arn.clone(),
            listener_arn: self.arn.clone(),
            load_balancer_arn: self.load_balancer_arn.clone(),
            port: Some(self.port),
            rule_priority: None,
            forward: (!self.forward.is_empty()).then(|| self.forward.clone()),
        }
    }
}

impl SimRule {
    fn route(&self, listener: &SimListener) -> Route {
        Route {
            arn: self.arn.clone(),
            listener_arn: listener.arn.clone(),
            load_balancer_arn: listener.load_balancer_arn.clone(),
            port: Some(listener.port),
            rule_priority: Some(self.priority.to_string()),
            forward: (!self.forward.is_empty()).then(|| self.forward.clone()),
        }
    }
}

impl World {
    /// Creates an application load balancer named `name`.
    pub fn create_load_balancer(&mut self, name: &str) -> String {
        let hex = self.next_hex();
        let arn = self.scope.load_balancer_arn(name, &hex);
        self.load_balancers.insert(arn.clone());
        arn
    }

    /// Creates an empty target group (IP targets) named `name`.
    pub fn create_target_group(&mut self, name: &str, port: u16) -> String {
        let hex = self.next_hex();
        let arn = self.scope.target_group_arn(name, &hex);
        self.target_groups.insert(
            arn.clone(),
            SimTargetGroup {
                arn: arn.clone(),
                name: name.to_string(),
                port,
                targets: Vec::new(),
            },
        );
        arn
    }

    /// Creates a listener of a load balancer whose default action forwards as given.
    pub fn create_listener(
        &mut self,
        load_balancer_arn: &str,
        port: u16,
        forward: Vec<WeightedTargetGroup>,
    ) -> String {
        let arn = format!(
            "{}/{}",
            load_balancer_arn.replacen(":loadbalancer/", ":listener/", 1),
            self.next_hex()
        );
        self.listeners.insert(
            arn.clone(),
            SimListener {
                arn: arn.clone(),
                load_balancer_arn: load_balancer_arn.to_string(),
                port,
                forward,
            },
        );
        arn
    }

    /// Creates a rule of a listener.
    pub fn create_rule(
        &mut self,
        listener_arn: &str,
        priority: u32,
        forward: Vec<WeightedTargetGroup>,
    ) -> String {
        let arn = rule_arn(listener_arn, &self.next_hex());
        self.rules.insert(
            arn.clone(),
            SimRule {
                arn: arn.clone(),
                listener_arn: listener_arn.to_string(),
                priority,
                forward,
            },
        );
        arn
    }

    /// The load balancers whose listeners or rules forward to a target group (at any weight,
    /// 0 included: that is what associates a target group with a load balancer).
    pub fn load_balancers_of(&self, target_group_arn: &str) -> Vec<String> {
        let forwards_to = |forward: &[WeightedTargetGroup]| {
            forward
                .iter()
                .any(|t| t.target_group_arn == target_group_arn)
        };
        let mut arns: Vec<String> = self
            .listeners
            .values()
            .filter(|l| {
                forwards_to(&l.forward)
                    || self
                        .rules
                        .values()
                        .any(|r| r.listener_arn == l.arn && forwards_to(&r.forward))
            })
            .map(|l| l.load_balancer_arn.clone())
            .collect();
        arns.sort();
        arns.dedup();
        arns
    }

    fn target_group_view(&self, group: &SimTargetGroup) -> TargetGroup {
        TargetGroup {
            arn: group.arn.clone(),
            name: group.name.clone(),
            load_balancer_arns: self.load_balancers_of(&group.arn),
            port: Some(group.port),
        }
    }

    /// A route as `describe_route` shows it (listener or rule ARN).
    pub fn route_view(&self, arn: &str) -> Option<Route> {
        if let Some(listener) = self.listeners.get(arn) {
            return Some(listener.route());
        }
        let rule = self.rules.get(arn)?;
        Some(rule.route(self.listeners.get(&rule.listener_arn)?))
    }

    /// The targets of a target group and their health, as `DescribeTargetHealth` shows them.
    pub fn target_health_view(&self, target_group_arn: &str) -> Option<Vec<TargetHealth>> {
        Some(
            self.target_groups
                .get(target_group_arn)?
                .targets
                .iter()
                .map(|t| TargetHealth {
                    id: t.id.clone(),
                    port: Some(t.port),
                    state: t.state,
                })
                .collect(),
        )
    }

    /// Rewrites a route's forward targets, unchecked (traffic moved by hand, or by CodeDeploy).
    pub fn set_route_forward(&mut self, arn: &str, forward: Vec<WeightedTargetGroup>) -> bool {
        if let Some(listener) = self.listeners.get_mut(arn) {
            listener.forward = forward;
            true
        } else if let Some(rule) = self.rules.get_mut(arn) {
            rule.forward = forward;
            true
        } else {
            false
        }
    }

    /// `ModifyListener`/`ModifyRule` of the forward action, with ELB's checks: a route that
    /// forwards, 1 to 5 distinct target groups that exist, weights 0..=999, and no target
    /// group associated with another load balancer.
    fn modify_forward(
        &mut self,
        operation: &'static str,
        arn: &str,
        weights: &[WeightedTargetGroup],
    ) -> Result<(), AwsError> {
        let route = self
            .route_view(arn)
            .ok_or_else(|| match route_kind(operation, arn) {
                Ok(RouteKind::Rule) => rule_not_found(operation, arn),
                _ => listener_not_found(operation, arn),
            })?;
        let invalid = |code: &str, message: String| {
            Err(error(
                operation,
                AwsErrorKind::InvalidRequest,
                code,
                message,
            ))
        };
        if weights.is_empty() {
            return invalid(
                "ValidationError",
                "A forward action needs at least one target group".to_string(),
            );
        }
        if weights.len() > MAX_FORWARD_TARGET_GROUPS {
            return invalid(
                "TooManyTargetGroups",
                format!(
                    "A forward action can have at most {MAX_FORWARD_TARGET_GROUPS} target groups, got {}",
                    weights.len()
                ),
            );
        }
        for (i, target) in weights.iter().enumerate() {
            if target.weight > MAX_FORWARD_WEIGHT {
                return invalid(
                    "ValidationError",
                    format!(
                        "The weight {} of target group '{}' is not between 0 and {MAX_FORWARD_WEIGHT}",
                        target.weight, target.target_group_arn
                    ),
                );
            }
            if weights[..i]
                .iter()
                .any(|t| t.target_group_arn == target.target_group_arn)
            {
                return invalid(
                    "ValidationError",
                    format!(
                        "Target group '{}' is specified more than once",
                        target.target_group_arn
                    ),
                );
            }
            if !self.target_groups.contains_key(&target.target_group_arn) {
                return Err(target_group_not_found(operation, &target.target_group_arn));
            }
            if let Some(other) = self
                .load_balancers_of(&target.target_group_arn)
                .into_iter()
                .find(|lb| *lb != route.load_balancer_arn)
            {
                return invalid(
                    "TargetGroupAssociationLimit",
                    format!(
                        "The target group '{}' is already associated with a different load balancer: {other}",
                        target.target_group_arn
                    ),
                );
            }
        }
        self.set_route_forward(arn, weights.to_vec());
        Ok(())
    }
}

impl SimAws {
    /// `DescribeListeners` of one listener: its route.
    async fn read_listener_route(&self, arn: &str) -> Result<Route, AwsError> {
        const OP: &str = "DescribeListeners";
        self.call(SERVICE, OP, |world, _| {
            world
                .listeners
                .get(arn)
                .map(SimListener::route)
                .ok_or_else(|| listener_not_found(OP, arn))
        })
        .await
    }

    /// `DescribeRules` of one rule, then `DescribeListeners` of its listener (for the port and
    /// the load balancer), as the adapter reads a rule.
    async fn read_rule_route(&self, arn: &str) -> Result<Route, AwsError> {
        const OP: &str = "DescribeRules";
        let listener_arn = self
            .call(SERVICE, OP, |world, _| {
                world
                    .rules
                    .get(arn)
                    .map(|r| r.listener_arn.clone())
                    .ok_or_else(|| rule_not_found(OP, arn))
            })
            .await?;
        self.read_listener_route(&listener_arn).await?;
        self.with_world(|world| world.route_view(arn))
            .ok_or_else(|| rule_not_found(OP, arn))
    }
}

#[async_trait]
impl LoadBalancer for SimAws {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        const OP: &str = "DescribeListeners";
        self.call(SERVICE, OP, |world, _| {
            world
                .listeners
                .get(listener_arn)
                .map(SimListener::view)
                .ok_or_else(|| listener_not_found(OP, listener_arn))
        })
        .await
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        const OP: &str = "DescribeTargetGroups";
        self.call(SERVICE, OP, |world, _| {
            references
                .iter()
                .map(|reference| {
                    let group = if reference.starts_with("arn:") {
                        world.target_groups.get(reference)
                    } else {
                        world.target_groups.values().find(|g| g.name == *reference)
                    };
                    group
                        .map(|g| world.target_group_view(g))
                        .ok_or_else(|| target_group_not_found(OP, reference))
                })
                .collect()
        })
        .await
    }

    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        let listeners = self
            .call(SERVICE, "DescribeListeners", |world, _| {
                if !world.load_balancers.contains(load_balancer_arn) {
                    return Err(error(
                        "DescribeListeners",
                        AwsErrorKind::NotFound,
                        "LoadBalancerNotFound",
                        format!("One or more load balancers not found: {load_balancer_arn}"),
                    ));
                }
                // By port: ELB promises no order; this one is stable and readable.
                let mut listeners: Vec<&SimListener> = world
                    .listeners
                    .values()
                    .filter(|l| l.load_balancer_arn == load_balancer_arn)
                    .collect();
                listeners.sort_by_key(|l| l.port);
                Ok(listeners
                    .into_iter()
                    .map(SimListener::route)
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut routes = Vec::new();
        for listener in listeners {
            let mut rules = self
                .call(SERVICE, "DescribeRules", |world, _| {
                    let listener = world
                        .listeners
                        .get(&listener.arn)
                        .ok_or_else(|| listener_not_found("DescribeRules", &listener.arn))?;
                    Ok(world
                        .rules
                        .values()
                        .filter(|r| r.listener_arn == listener.arn)
                        .map(|r| (r.priority, r.route(listener)))
                        .collect::<Vec<_>>())
                })
                .await?;
            rules.sort_by_key(|(priority, _)| *priority);
            routes.push(listener);
            routes.extend(rules.into_iter().map(|(_, route)| route));
        }
        Ok(routes)
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        match route_kind("DescribeRules", arn)? {
            RouteKind::Listener => self.read_listener_route(arn).await,
            RouteKind::Rule => self.read_rule_route(arn).await,
        }
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        const OP: &str = "DescribeTargetHealth";
        self.call(SERVICE, OP, |world, _| {
            world
                .target_health_view(target_group_arn)
                .ok_or_else(|| target_group_not_found(OP, target_group_arn))
        })
        .await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        let (read, modify) = match route_kind("ModifyListener", route_arn)? {
            RouteKind::Listener => (self.read_listener_route(route_arn).await?, "ModifyListener"),
            RouteKind::Rule => (self.read_rule_route(route_arn).await?, "ModifyRule"),
        };
        if read.forward.is_none() {
            return Err(error(
                modify,
                AwsErrorKind::InvalidRequest,
                "ValidationError",
                format!("{route_arn} has no forward action to weight"),
            ));
        }
        if let Some(expected) = expected {
            expected.check(modify, route_arn, read.forward.as_deref())?;
        }
        self.call(SERVICE, modify, |world, _| {
            world.modify_forward(modify, route_arn, weights)
        })
        .await
    }
}
