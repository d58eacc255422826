//! `strategy.ecs`: the document's section for ECS's own deployments (rolling, blue/green,
//! linear, canary) gated by switchyard, its validation, and its part of the status.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;
use super::field_error::FieldError;
use super::promotion::Promotion;

/// ECS's own deployments, started by switchyard with one `UpdateService` and gated by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcsStrategy {
    /// `manual`: a `PAUSE` lifecycle hook waits for `switchyard promote`.
    #[serde(default, skip_serializing_if = "Promotion::is_default")]
    pub promotion: Promotion,
    /// Runs while a `PAUSE` hook waits; its verdict answers the hook (`CONTINUE` or
    /// `ROLLBACK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisSpec>,
    /// The service's deployment configuration, set by switchyard with the candidate; without
    /// it, the service's own configuration decides the mechanics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<EcsDeployment>,
    /// A rollout that makes no progress for this long is rolled back (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<DurationSpec>,
}

/// `strategy.ecs.deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcsDeployment {
    #[serde(rename = "type")]
    pub kind: EcsDeploymentType,
    /// Whole minutes, 0 to 1440.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_time: Option<DurationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearSettings>,
    /// Lifecycle stages where switchyard adds a `PAUSE` hook (`postTestTrafficShift`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_at: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<EcsLoadBalancer>,
}

/// ECS's deployment strategies, as the document writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EcsDeploymentType {
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

impl EcsDeploymentType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Rolling => "rolling",
            Self::BlueGreen => "blueGreen",
            Self::Linear => "linear",
            Self::Canary => "canary",
        }
    }
}

/// `canary: {percent, bake}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySettings {
    /// 0.1 to 100, in steps of 0.1.
    pub percent: f64,
    pub bake: DurationSpec,
}

impl Eq for CanarySettings {}

/// `linear: {stepPercent, stepBake}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinearSettings {
    /// 3 to 100.
    pub step_percent: f64,
    pub step_bake: DurationSpec,
}

impl Eq for LinearSettings {}

/// The load balancer's advanced configuration that ECS blue/green, linear and canary need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcsLoadBalancer {
    /// The second target group (name or ARN).
    pub alternate_target_group: String,
    pub production_listener_rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    /// The role ECS assumes to change the listener rules.
    pub role_arn: String,
}

/// The lifecycle stages where ECS takes a hook, in the document's camelCase and the API's
/// names; `PAUSE` hooks are not allowed at the two traffic shifts themselves.
pub const PAUSE_STAGES: &[(&str, &str)] = &[
    ("preScaleUp", "PRE_SCALE_UP"),
    ("postScaleUp", "POST_SCALE_UP"),
    ("postTestTrafficShift", "POST_TEST_TRAFFIC_SHIFT"),
    ("preProductionTrafficShift", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
    (
        "postProductionTrafficShift",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    ),
    ("reconcileService", "RECONCILE_SERVICE"),
];

/// The stages a rolling deployment has, of [`PAUSE_STAGES`].
pub const ROLLING_PAUSE_STAGES: &[&str] = &["preScaleUp", "postScaleUp", "reconcileService"];

/// The API name of a document's lifecycle stage (`postTestTrafficShift` → `POST_TEST_TRAFFIC_SHIFT`).
pub fn stage_name(stage: &str) -> Option<&'static str> {
    PAUSE_STAGES
        .iter()
        .find(|(camel, _)| *camel == stage)
        .map(|(_, api)| *api)
}

/// The longest bake ECS takes, in minutes.
pub const MAX_BAKE_MINUTES: u64 = 1440;

/// Defaults.
pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

impl EcsStrategy {
    pub fn progress_deadline(&self) -> std::time::Duration {
        self.progress_deadline
            .as_ref()
            .map_or(DEFAULT_PROGRESS_DEADLINE, DurationSpec::get)
    }
}

/// Whole minutes of a bake, or why not.
pub fn whole_minutes(duration: &DurationSpec) -> Result<u32, String> {
    let seconds = duration.get().as_secs();
    if duration.get().subsec_nanos() != 0 || !seconds.is_multiple_of(60) {
        return Err(format!(
            "ECS bakes in whole minutes, 0 to {MAX_BAKE_MINUTES} (got {})",
            duration.as_str()
        ));
    }
    let minutes = seconds / 60;
    if minutes > MAX_BAKE_MINUTES {
        return Err(format!(
            "ECS bakes at most {MAX_BAKE_MINUTES} minutes (got {})",
            duration.as_str()
        ));
    }
    Ok(minutes as u32)
}

/// Checks `strategy.ecs` (`base` is its path); pushes one error per problem.
pub fn validate(base: &str, strategy: &EcsStrategy, errors: &mut Vec<FieldError>) {
    if let Some(analysis) = &strategy.analysis {
        let mut found = Vec::new();
        super::analysis::validate(&format!("{base}.analysis"), analysis, &mut found);
        errors.extend(found);
        let alternate = strategy
            .deployment
            .as_ref()
            .is_some_and(|d| d.load_balancer.is_some());
        if analysis.uses(super::analysis::CANDIDATE_TARGET_GROUP) && !alternate {
            errors.push(FieldError::new(
                format!("{base}.analysis"),
                "CANDIDATE_TARGET_GROUP stands for the alternate target group: set spec.strategy.ecs.deployment.loadBalancer.alternateTargetGroup",
            ));
        }
    }
    let mut error = |path: String, message: String| errors.push(FieldError::new(path, message));
    let Some(deployment) = &strategy.deployment else {
        return;
    };
    let base = format!("{base}.deployment");
    let kind = deployment.kind;
    if let Some(bake) = &deployment.bake_time
        && let Err(message) = whole_minutes(bake)
    {
        error(format!("{base}.bakeTime"), message);
    }
    match (&deployment.canary, kind) {
        (Some(canary), EcsDeploymentType::Canary) => {
            let tenths = canary.percent * 10.0;
            if !(0.1..=100.0).contains(&canary.percent) || (tenths - tenths.round()).abs() > 1e-6 {
                error(
                    format!("{base}.canary.percent"),
                    format!(
                        "must be 0.1 to 100 in steps of 0.1 (got {})",
                        canary.percent
                    ),
                );
            }
            if let Err(message) = whole_minutes(&canary.bake) {
                error(format!("{base}.canary.bake"), message);
            }
        }
        (Some(_), other) => error(
            format!("{base}.canary"),
            format!("is for type: canary, not {}", other.as_str()),
        ),
        (None, EcsDeploymentType::Canary) => error(
            format!("{base}.canary"),
            "type: canary needs canary: {percent, bake}".into(),
        ),
        (None, _) => {}
    }
    match (&deployment.linear, kind) {
        (Some(linear), EcsDeploymentType::Linear) => {
            if !(3.0..=100.0).contains(&linear.step_percent) {
                error(
                    format!("{base}.linear.stepPercent"),
                    format!("must be 3 to 100 (got {})", linear.step_percent),
                );
            }
            if let Err(message) = whole_minutes(&linear.step_bake) {
                error(format!("{base}.linear.stepBake"), message);
            }
        }
        (Some(_), other) => error(
            format!("{base}.linear"),
            format!("is for type: linear, not {}", other.as_str()),
        ),
        (None, EcsDeploymentType::Linear) => error(
            format!("{base}.linear"),
            "type: linear needs linear: {stepPercent, stepBake}".into(),
        ),
        (None, _) => {}
    }
    for (i, stage) in deployment.pause_at.iter().enumerate() {
        let path = format!("{base}.pauseAt[{i}]");
        if stage_name(stage).is_none() {
            let allowed: Vec<&str> = PAUSE_STAGES.iter().map(|(c, _)| *c).collect();
            error(
                path,
                format!(
                    "{stage:?} is not a lifecycle stage where ECS allows a PAUSE hook; use one of {}",
                    allowed.join(", ")
                ),
            );
        } else if kind == EcsDeploymentType::Rolling
            && !ROLLING_PAUSE_STAGES.contains(&stage.as_str())
        {
            error(
                path,
                format!(
                    "a rolling deployment has no {stage} stage; use one of {}",
                    ROLLING_PAUSE_STAGES.join(", ")
                ),
            );
        }
    }
    match (&deployment.load_balancer, kind) {
        (Some(_), EcsDeploymentType::Rolling) => error(
            format!("{base}.loadBalancer"),
            "is for blueGreen, linear and canary deployments, not rolling".into(),
        ),
        (Some(lb), _) => {
            if let Err(e) = super::names::target_group_name(&lb.alternate_target_group) {
                error(
                    format!("{base}.loadBalancer.alternateTargetGroup"),
                    e.to_string(),
                );
            }
            for (field, value) in [
                ("productionListenerRule", Some(&lb.production_listener_rule)),
                ("testListenerRule", lb.test_listener_rule.as_ref()),
            ] {
                if let Some(value) = value
                    && !super::names::Arn::parse(value).is_ok_and(|a| {
                        a.service == "elasticloadbalancing"
                            && a.resource.starts_with("listener-rule/")
                    })
                {
                    error(
                        format!("{base}.loadBalancer.{field}"),
                        format!(
                            "must be a listener rule ARN (…:listener-rule/app/LB/ID/ID/ID), got {value:?}"
                        ),
                    );
                }
            }
            if !is_role_arn(&lb.role_arn) {
                error(
                    format!("{base}.loadBalancer.roleArn"),
                    format!("must be an IAM role ARN, got {:?}", lb.role_arn),
                );
            }
        }
        (None, _) => {}
    }
}

/// Whether `arn` is an IAM role ARN (IAM's ARNs have no region: `arn:aws:iam::ACCOUNT:role/NAME`).
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts[..], ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.len() > 5
            && resource.starts_with("role/"))
}

/// Where an ECS rollout stands; the strategy's part of the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsStatus {
    /// The service deployment of the rollout (UpdateService's answer, or adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_deployment: Option<String>,
    /// Written before UpdateService: a pass that finds it without a service deployment adopts
    /// the one that runs the candidate and was created after it, before ever updating again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updating_since: Option<Timestamp>,
    /// The service deployment's lifecycle stage (`SCALE_UP`, `BAKE_TIME`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<String>,
    /// The `PAUSE` hook that waits for an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_hook: Option<String>,
    /// An answer or a stop, recorded before its call and sent once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<EcsAnswer>,
    /// Why the rollout rolls back, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_back: Option<String>,
    /// When the deployment last moved (a new stage): the progress deadline's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<Timestamp>,
    /// The service deployments switchyard started for this release, newest last (at most a
    /// few): any other is someone else's, waited for and never fought.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own_deployments: Vec<String>,
}

/// An answer to a lifecycle hook, or a stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsAnswer {
    /// The hook answered, or `None` for StopServiceDeployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<String>,
    /// `CONTINUE` or `ROLLBACK`.
    pub action: String,
    pub at: Timestamp,
    /// A call for it succeeded.
    #[serde(default)]
    pub sent: bool,
}

/// How many of its own service deployments a status remembers.
pub const OWN_DEPLOYMENTS_KEPT: usize = 5;

#[cfg(test)]
mod tests {
    use crate::model::parse::parse_documents;

    const BASE: &str = "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {name: web}\nspec:\n  service: {cluster: prod, name: web}\n  taskDefinition: {from: web, containers: {web: {image: registry/web:2}}}\n  strategy:\n    ecs:\n";

    fn errors(strategy: &str) -> Vec<String> {
        match parse_documents(&format!("{BASE}{strategy}")) {
            Ok(_) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const LB: &str = "        loadBalancer: {alternateTargetGroup: web-b, productionListenerRule: 'arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/lb/0123456789abcdef/0123456789abcdef/0123456789abcdef', roleArn: 'arn:aws:iam::111122223333:role/ecs-lb'}\n";

    #[test]
    fn ecs_documents_parse_with_and_without_a_deployment() {
        assert_eq!(errors("      promotion: auto\n"), Vec::<String>::new());
        let blue_green = format!(
            "      promotion: manual\n      deployment:\n        type: blueGreen\n        bakeTime: 5m\n        pauseAt: [postTestTrafficShift]\n{LB}"
        );
        assert_eq!(errors(&blue_green), Vec::<String>::new());
        let canary = format!(
            "      deployment:\n        type: canary\n        canary: {{percent: 12.5, bake: 10m}}\n{LB}"
        );
        assert_eq!(errors(&canary), Vec::<String>::new());
    }

    #[test]
    fn bad_ecs_input_is_refused_naming_the_field() {
        let cases = [
            (
                "      deployment: {type: sideways}\n".to_string(),
                "spec.strategy.ecs.deployment.type",
            ),
            (
                "      deployment: {type: rolling, bakeTime: 30s}\n".to_string(),
                "spec.strategy.ecs.deployment.bakeTime: ECS bakes in whole minutes",
            ),
            (
                "      deployment: {type: rolling, bakeTime: 25h}\n".to_string(),
                "spec.strategy.ecs.deployment.bakeTime: ECS bakes at most 1440 minutes",
            ),
            (
                format!(
                    "      deployment:\n        type: canary\n        canary: {{percent: 0.05, bake: 5m}}\n{LB}"
                ),
                "spec.strategy.ecs.deployment.canary.percent: must be 0.1 to 100",
            ),
            (
                format!(
                    "      deployment:\n        type: linear\n        linear: {{stepPercent: 2, stepBake: 1m}}\n{LB}"
                ),
                "spec.strategy.ecs.deployment.linear.stepPercent: must be 3 to 100",
            ),
            (
                format!(
                    "      deployment:\n        type: blueGreen\n        canary: {{percent: 10, bake: 5m}}\n{LB}"
                ),
                "spec.strategy.ecs.deployment.canary: is for type: canary, not blueGreen",
            ),
            (
                format!("      deployment:\n        type: linear\n{LB}"),
                "spec.strategy.ecs.deployment.linear: type: linear needs",
            ),
            (
                format!(
                    "      deployment:\n        type: blueGreen\n        pauseAt: [testTrafficShift]\n{LB}"
                ),
                "spec.strategy.ecs.deployment.pauseAt[0]: \"testTrafficShift\" is not a lifecycle stage where ECS allows a PAUSE hook",
            ),
            (
                "      deployment: {type: rolling, pauseAt: [postTestTrafficShift]}\n".to_string(),
                "spec.strategy.ecs.deployment.pauseAt[0]: a rolling deployment has no postTestTrafficShift stage",
            ),
            (
                "      analysis: {interval: 30s, count: 3, metrics: [{name: errors, cloudWatch: {metrics: {m1: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum}}, period: 60s}}]}\n".to_string(),
                "spec.strategy.ecs.analysis.metrics[0].failWhen: is required for a cloudWatch metric",
            ),
        ];
        for (yaml, expected) in cases {
            let errors = errors(&yaml);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{yaml}\n{errors:?}\nwanted: {expected}"
            );
        }
    }
}
