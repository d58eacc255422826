//! The load balancer port's routes on the AWS SDK, for the task-set strategy: target groups
//! (`DescribeTargetGroups`), a load balancer's listeners and rules with their forward actions
//! (`DescribeListeners`, `DescribeRules`), target health (`DescribeTargetHealth`), and
//! rewriting the weights of one forward action (`ModifyListener`, `ModifyRule`).
//!
//! A forward action comes in two shapes: a single `TargetGroupArn`, or a `ForwardConfig` of
//! target groups with weights (AWS reports both for a single target group); both are read.
//! A rewrite keeps every other action, their order and the forward action's stickiness, and
//! always writes a weighted `ForwardConfig`.

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types as sdk;

use super::error::{CodeMap, classify};
use crate::ports::{
    AwsError, AwsErrorKind, ExpectedShare, Route, TargetGroup, TargetHealth, TargetHealthState,
    WeightedTargetGroup,
};

const SERVICE: &str = "elbv2";

/// ELB's limit on one target group's weight in a forward action.
pub(crate) const MAX_WEIGHT: u32 = 999;

/// The query protocol's wire codes (`ListenerNotFound`) and the model's shape names
/// (`ListenerNotFoundException`) alike.
const ROUTE_CODES: CodeMap = CodeMap {
    not_found: &[
        "ListenerNotFound",
        "ListenerNotFoundException",
        "RuleNotFound",
        "RuleNotFoundException",
        "LoadBalancerNotFound",
        "LoadBalancerNotFoundException",
        "TargetGroupNotFound",
        "TargetGroupNotFoundException",
    ],
    conflict: &[],
    invalid: &[
        "ValidationError",
        "UnsupportedProtocol",
        "InvalidLoadBalancerAction",
        "InvalidTarget",
        "TargetGroupAssociationLimit",
        "TooManyActions",
        "TooManyTargets",
        "TooManyRegistrationsForTargetId",
        "TooManyUniqueTargetGroupsPerLoadBalancer",
        "IncompatibleProtocols",
        "OperationNotPermitted",
    ],
};

fn invalid(operation: &'static str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, AwsErrorKind::InvalidRequest, message)
}

fn not_found(operation: &'static str, message: String) -> AwsError {
    AwsError::new(SERVICE, operation, AwsErrorKind::NotFound, message)
}

fn port(value: Option<i32>) -> Option<u16> {
    value.and_then(|p| u16::try_from(p).ok())
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

/// The index of the action that sends the traffic: the forward action with the lowest
/// `order` (authentication actions may come first).
fn forward_index(actions: &[sdk::Action]) -> Option<usize> {
    actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.r#type() == Some(&sdk::ActionTypeEnum::Forward))
        .min_by_key(|(_, a)| a.order().unwrap_or(i32::MAX))
        .map(|(i, _)| i)
}

fn forward_of(actions: &[sdk::Action]) -> Option<Vec<WeightedTargetGroup>> {
    forward_index(actions).map(|i| forward_targets(&actions[i]))
}

fn listener_route(listener: &sdk::Listener) -> Route {
    let arn = listener.listener_arn().unwrap_or_default().to_string();
    Route {
        arn: arn.clone(),
        listener_arn: arn,
        load_balancer_arn: listener.load_balancer_arn().unwrap_or_default().to_string(),
        port: port(listener.port()),
        rule_priority: None,
        forward: forward_of(listener.default_actions()),
    }
}

fn rule_route(rule: &sdk::Rule, listener: &sdk::Listener) -> Route {
    Route {
        arn: rule.rule_arn().unwrap_or_default().to_string(),
        listener_arn: listener.listener_arn().unwrap_or_default().to_string(),
        load_balancer_arn: listener.load_balancer_arn().unwrap_or_default().to_string(),
        port: port(listener.port()),
        rule_priority: rule.priority().map(str::to_string),
        forward: forward_of(rule.actions()),
    }
}

/// The default rule is the listener's default action, reported by `DescribeListeners`.
fn is_default_rule(rule: &sdk::Rule) -> bool {
    rule.is_default() == Some(true) || rule.priority() == Some("default")
}

/// The listener a rule belongs to: `...:listener-rule/app/LB/ID/LISTENER/RULE` is a rule of
/// `...:listener/app/LB/ID/LISTENER`.
pub(crate) fn listener_of_rule(rule_arn: &str) -> Option<String> {
    let (listener, _rule) = rule_arn.rsplit_once('/')?;
    listener
        .contains(":listener-rule/")
        .then(|| listener.replacen(":listener-rule/", ":listener/", 1))
}

/// What ELB would refuse of any forward action: no target group, a weight above 999.
fn check_weights(weights: &[WeightedTargetGroup]) -> Result<(), String> {
    if weights.is_empty() {
        return Err("a forward action needs at least one target group".to_string());
    }
    match weights.iter().find(|w| w.weight > MAX_WEIGHT) {
        Some(heavy) => Err(format!(
            "the weight {} of {} is not between 0 and {MAX_WEIGHT}",
            heavy.weight, heavy.target_group_arn
        )),
        None => Ok(()),
    }
}

/// The actions of a listener (its default actions) or a rule, with the forward action's
/// target groups replaced by `weights` (a weighted `ForwardConfig`, the single
/// `TargetGroupArn` dropped), its stickiness and order kept, and every other action kept as
/// it is. An OIDC action is sent back with `UseExistingClientSecret` (Describe does not return
/// the secret). Refused: no forward action, no target group, a weight above 999.
pub(crate) fn rewrite_forward(
    actions: &[sdk::Action],
    weights: &[WeightedTargetGroup],
) -> Result<Vec<sdk::Action>, String> {
    check_weights(weights)?;
    let forward = forward_index(actions).ok_or("the route has no forward action to weight")?;
    let tuples: Vec<sdk::TargetGroupTuple> = weights
        .iter()
        .map(|w| {
            sdk::TargetGroupTuple::builder()
                .target_group_arn(&w.target_group_arn)
                .weight(i32::try_from(w.weight).unwrap_or(i32::MAX))
                .build()
        })
        .collect();
    Ok(actions
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let mut action = action.clone();
            if i == forward {
                let stickiness = action
                    .forward_config()
                    .and_then(|f| f.target_group_stickiness_config())
                    .cloned();
                action.target_group_arn = None;
                action.forward_config = Some(
                    sdk::ForwardActionConfig::builder()
                        .set_target_groups(Some(tuples.clone()))
                        .set_target_group_stickiness_config(stickiness)
                        .build(),
                );
            } else if let Some(oidc) = action.authenticate_oidc_config.as_mut()
                && oidc.client_secret.is_none()
            {
                oidc.use_existing_client_secret = Some(true);
            }
            action
        })
        .collect())
}

async fn listener(client: &Client, arn: &str) -> Result<sdk::Listener, AwsError> {
    const OP: &str = "DescribeListeners";
    let output = client
        .describe_listeners()
        .listener_arns(arn)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
    output
        .listeners()
        .iter()
        .find(|l| l.listener_arn() == Some(arn))
        .cloned()
        .ok_or_else(|| not_found(OP, format!("listener {arn} not in the answer")))
}

async fn rule(client: &Client, arn: &str) -> Result<sdk::Rule, AwsError> {
    const OP: &str = "DescribeRules";
    let output = client
        .describe_rules()
        .rule_arns(arn)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
    output
        .rules()
        .iter()
        .find(|r| r.rule_arn() == Some(arn))
        .cloned()
        .ok_or_else(|| not_found(OP, format!("rule {arn} not in the answer")))
}

/// What a route ARN names.
enum RouteArn {
    Listener,
    Rule { listener_arn: String },
}

fn route_arn(operation: &'static str, arn: &str) -> Result<RouteArn, AwsError> {
    if let Some(listener_arn) = listener_of_rule(arn) {
        Ok(RouteArn::Rule { listener_arn })
    } else if arn.contains(":listener/") {
        Ok(RouteArn::Listener)
    } else {
        Err(invalid(
            operation,
            format!("{arn} is neither a listener nor a listener rule ARN"),
        ))
    }
}

/// `DescribeTargetGroups` by name or ARN, one call per kind (ELB takes names or ARNs, not
/// both at once), paginated; the answer follows the order of `references`.
pub(crate) async fn describe_target_groups(
    client: &Client,
    references: &[String],
) -> Result<Vec<TargetGroup>, AwsError> {
    const OP: &str = "DescribeTargetGroups";
    let (arns, names): (Vec<&String>, Vec<&String>) =
        references.iter().partition(|r| r.starts_with("arn:"));
    let mut found: Vec<sdk::TargetGroup> = Vec::new();
    for (by_arn, batch) in [(true, arns), (false, names)] {
        if batch.is_empty() {
            continue;
        }
        let batch: Vec<String> = batch.into_iter().cloned().collect();
        let request = client.describe_target_groups();
        let request = if by_arn {
            request.set_target_group_arns(Some(batch))
        } else {
            request.set_names(Some(batch))
        };
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
            found.extend(page.target_groups().iter().cloned());
        }
    }
    references
        .iter()
        .map(|reference| {
            found
                .iter()
                .find(|g| {
                    g.target_group_arn() == Some(reference.as_str())
                        || g.target_group_name() == Some(reference.as_str())
                })
                .map(|g| {
                    // Each load balancer once (moto repeats one per listener and rule).
                    let mut load_balancer_arns: Vec<String> = Vec::new();
                    for arn in g.load_balancer_arns() {
                        if !load_balancer_arns.contains(arn) {
                            load_balancer_arns.push(arn.clone());
                        }
                    }
                    TargetGroup {
                        arn: g.target_group_arn().unwrap_or_default().to_string(),
                        name: g.target_group_name().unwrap_or_default().to_string(),
                        load_balancer_arns,
                        port: port(g.port()),
                    }
                })
                .ok_or_else(|| not_found(OP, format!("target group {reference} not found")))
        })
        .collect()
}

/// Every listener of a load balancer (its default action) and every other rule of each, in
/// the order ELB gives (rules by priority): `DescribeListeners`, then `DescribeRules` per
/// listener, each paginated.
pub(crate) async fn describe_routes(
    client: &Client,
    load_balancer_arn: &str,
) -> Result<Vec<Route>, AwsError> {
    let mut listeners = Vec::new();
    let mut pages = client
        .describe_listeners()
        .load_balancer_arn(load_balancer_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify(SERVICE, "DescribeListeners", e, ROUTE_CODES))?;
        listeners.extend(page.listeners().iter().cloned());
    }
    let mut routes = Vec::new();
    for listener in &listeners {
        routes.push(listener_route(listener));
        let mut pages = client
            .describe_rules()
            .listener_arn(listener.listener_arn().unwrap_or_default())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "DescribeRules", e, ROUTE_CODES))?;
            routes.extend(
                page.rules()
                    .iter()
                    .filter(|r| !is_default_rule(r))
                    .map(|r| rule_route(r, listener)),
            );
        }
    }
    Ok(routes)
}

/// One route: a listener (`DescribeListeners`) or a rule (`DescribeRules`, then
/// `DescribeListeners` of its listener for the port and the load balancer).
pub(crate) async fn describe_route(client: &Client, arn: &str) -> Result<Route, AwsError> {
    match route_arn("DescribeRules", arn)? {
        RouteArn::Listener => Ok(listener_route(&listener(client, arn).await?)),
        RouteArn::Rule { listener_arn } => {
            let rule = rule(client, arn).await?;
            Ok(rule_route(&rule, &listener(client, &listener_arn).await?))
        }
    }
}

fn map_health_state(state: Option<&sdk::TargetHealthStateEnum>) -> TargetHealthState {
    use sdk::TargetHealthStateEnum as S;
    match state {
        Some(S::Initial) => TargetHealthState::Initial,
        Some(S::Healthy) => TargetHealthState::Healthy,
        Some(S::Unhealthy) => TargetHealthState::Unhealthy,
        Some(S::Unused) => TargetHealthState::Unused,
        // Unhealthy and on its way out: it takes no new traffic either way.
        Some(S::Draining | S::UnhealthyDraining) => TargetHealthState::Draining,
        // Unavailable, and states this version does not know: never counted as healthy.
        _ => TargetHealthState::Unavailable,
    }
}

/// `DescribeTargetHealth` of a target group: every registered target.
pub(crate) async fn describe_target_health(
    client: &Client,
    target_group_arn: &str,
) -> Result<Vec<TargetHealth>, AwsError> {
    const OP: &str = "DescribeTargetHealth";
    let output = client
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
    Ok(output
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let target = d.target()?;
            Some(TargetHealth {
                id: target.id().unwrap_or_default().to_string(),
                port: port(target.port()),
                state: map_health_state(d.target_health().and_then(|h| h.state())),
            })
        })
        .collect())
}

/// Reads the route's actions and writes them back with the forward action's weights
/// replaced (`ModifyListener` with `DefaultActions`, or `ModifyRule` with `Actions`). Weights
/// ELB would refuse are refused before any call.
pub(crate) async fn set_forward_weights(
    client: &Client,
    route: &str,
    weights: &[WeightedTargetGroup],
    expected: Option<&ExpectedShare>,
) -> Result<(), AwsError> {
    let kind = route_arn("ModifyListener", route)?;
    if let Err(message) = check_weights(weights) {
        let operation = match kind {
            RouteArn::Listener => "ModifyListener",
            RouteArn::Rule { .. } => "ModifyRule",
        };
        return Err(invalid(operation, format!("{route}: {message}")));
    }
    match kind {
        RouteArn::Listener => {
            const OP: &str = "ModifyListener";
            let current = listener(client, route).await?;
            if let Some(expected) = expected {
                expected.check(OP, route, forward_of(current.default_actions()).as_deref())?;
            }
            let actions = rewrite_forward(current.default_actions(), weights)
                .map_err(|m| invalid(OP, format!("{route}: {m}")))?;
            client
                .modify_listener()
                .listener_arn(route)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
        }
        RouteArn::Rule { .. } => {
            const OP: &str = "ModifyRule";
            let current = rule(client, route).await?;
            if let Some(expected) = expected {
                expected.check(OP, route, forward_of(current.actions()).as_deref())?;
            }
            let actions = rewrite_forward(current.actions(), weights)
                .map_err(|m| invalid(OP, format!("{route}: {m}")))?;
            client
                .modify_rule()
                .rule_arn(route)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(|e| classify(SERVICE, OP, e, ROUTE_CODES))?;
        }
    }
    Ok(())
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

    fn weights(entries: &[(&str, u32)]) -> Vec<WeightedTargetGroup> {
        entries
            .iter()
            .map(|(arn, weight)| WeightedTargetGroup {
                target_group_arn: arn.to_string(),
                weight: *weight,
            })
            .collect()
    }

    fn oidc() -> sdk::Action {
        sdk::Action::builder()
            .r#type(sdk::ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                sdk::AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example")
                    .authorization_endpoint("https://idp.example/auth")
                    .token_endpoint("https://idp.example/token")
                    .user_info_endpoint("https://idp.example/userinfo")
                    .client_id("client")
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_bare_target_group_is_one_entry_of_weight_one() {
        let action = sdk::Action::builder()
            .r#type(sdk::ActionTypeEnum::Forward)
            .target_group_arn("arn:blue")
            .build();
        assert_eq!(forward_targets(&action), weights(&[("arn:blue", 1)]));
    }

    #[test]
    fn a_forward_config_wins_and_a_missing_weight_is_one() {
        let action = sdk::Action::builder()
            .r#type(sdk::ActionTypeEnum::Forward)
            .target_group_arn("arn:blue")
            .forward_config(
                sdk::ForwardActionConfig::builder()
                    .target_groups(tuple("arn:blue", Some(0)))
                    .target_groups(tuple("arn:green", None))
                    .build(),
            )
            .build();
        assert_eq!(
            forward_targets(&action),
            weights(&[("arn:blue", 0), ("arn:green", 1)])
        );
    }

    #[test]
    fn a_rewrite_replaces_only_the_forward_targets() {
        let stickiness = sdk::TargetGroupStickinessConfig::builder()
            .enabled(true)
            .duration_seconds(300)
            .build();
        let actions = vec![
            oidc(),
            sdk::Action::builder()
                .r#type(sdk::ActionTypeEnum::Forward)
                .order(2)
                .target_group_arn("arn:blue")
                .forward_config(
                    sdk::ForwardActionConfig::builder()
                        .target_groups(tuple("arn:blue", Some(1)))
                        .target_group_stickiness_config(stickiness.clone())
                        .build(),
                )
                .build(),
        ];
        let rewritten =
            rewrite_forward(&actions, &weights(&[("arn:blue", 90), ("arn:green", 10)])).unwrap();
        assert_eq!(rewritten.len(), 2, "no action added or dropped");
        assert_eq!(
            rewritten[0].r#type(),
            Some(&sdk::ActionTypeEnum::AuthenticateOidc),
            "order kept"
        );
        let kept = rewritten[0].authenticate_oidc_config().unwrap();
        assert_eq!(kept.client_id(), Some("client"));
        assert_eq!(
            kept.use_existing_client_secret(),
            Some(true),
            "Describe does not return the secret: keep the existing one"
        );
        let forward = &rewritten[1];
        assert_eq!(forward.order(), Some(2));
        assert_eq!(
            forward.target_group_arn(),
            None,
            "a single TargetGroupArn beside several weighted groups is refused by ELB"
        );
        assert_eq!(
            forward_targets(forward),
            weights(&[("arn:blue", 90), ("arn:green", 10)])
        );
        assert_eq!(
            forward
                .forward_config()
                .unwrap()
                .target_group_stickiness_config(),
            Some(&stickiness),
            "stickiness kept"
        );
    }

    #[test]
    fn a_single_target_forward_becomes_a_weighted_forward_config() {
        let actions = vec![
            sdk::Action::builder()
                .r#type(sdk::ActionTypeEnum::Forward)
                .target_group_arn("arn:blue")
                .build(),
        ];
        let rewritten =
            rewrite_forward(&actions, &weights(&[("arn:blue", 100), ("arn:green", 0)])).unwrap();
        let config = rewritten[0].forward_config().expect("a ForwardConfig");
        assert_eq!(config.target_groups().len(), 2);
        assert_eq!(config.target_groups()[1].weight(), Some(0));
        assert_eq!(rewritten[0].target_group_arn(), None);
    }

    #[test]
    fn a_rewrite_is_refused_without_a_forward_action_or_with_weights_elb_refuses() {
        let fixed = vec![
            sdk::Action::builder()
                .r#type(sdk::ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    sdk::FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        ];
        assert!(rewrite_forward(&fixed, &weights(&[("arn:blue", 1)])).is_err());
        let forward = vec![
            sdk::Action::builder()
                .r#type(sdk::ActionTypeEnum::Forward)
                .target_group_arn("arn:blue")
                .build(),
        ];
        assert!(rewrite_forward(&forward, &weights(&[("arn:blue", 1000)])).is_err());
        assert!(rewrite_forward(&forward, &[]).is_err());
        assert!(rewrite_forward(&forward, &weights(&[("arn:blue", 999)])).is_ok());
    }

    #[test]
    fn a_rule_arn_names_its_listener() {
        assert_eq!(
            listener_of_rule(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/web/50dc/f4b4/9683"
            )
            .as_deref(),
            Some("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/50dc/f4b4")
        );
        assert_eq!(
            listener_of_rule("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/50dc/f4b4"),
            None
        );
    }

    #[test]
    fn every_target_health_state_maps_and_none_is_healthy_by_accident() {
        use sdk::TargetHealthStateEnum as S;
        for (state, expected) in [
            (S::Initial, TargetHealthState::Initial),
            (S::Healthy, TargetHealthState::Healthy),
            (S::Unhealthy, TargetHealthState::Unhealthy),
            (S::Unused, TargetHealthState::Unused),
            (S::Draining, TargetHealthState::Draining),
            (S::UnhealthyDraining, TargetHealthState::Draining),
            (S::Unavailable, TargetHealthState::Unavailable),
            (S::from("future"), TargetHealthState::Unavailable),
        ] {
            assert_eq!(map_health_state(Some(&state)), expected, "{state:?}");
        }
        assert_eq!(map_health_state(None), TargetHealthState::Unavailable);
    }
}
