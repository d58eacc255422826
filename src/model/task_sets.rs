//! `strategy.taskSets`: the document's section for the controller-driven canary on two
//! target groups, its validation, and its part of the status.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::duration::DurationSpec;
use super::field_error::FieldError;

/// A canary on an `EXTERNAL` service: each version runs as a task set on one of two target
/// groups, and switchyard moves production traffic between them step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSetsStrategy {
    /// The pair of target groups (names or ARNs); their roles alternate.
    pub target_groups: Vec<String>,
    /// Listeners (their default action) or listener rules whose forward action switchyard
    /// weights; by default every one of the pair's load balancers that forwards to the pair
    /// (or to the live group only), but the test listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<String>,
    /// Listeners or rules pointed at the candidate group before production traffic moves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_listeners: Vec<String>,
    /// The container (and port) that receives traffic; by default the live task set's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerTarget>,
    /// The steps; by default one: `setWeight: 100`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CanaryStep>,
    /// How long the old version is kept after the switch (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<DurationSpec>,
    /// How long the candidate is kept after traffic is restored (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay: Option<DurationSpec>,
    /// A rollout that makes no progress for this long is rolled back (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<DurationSpec>,
}

/// The container of the task set that receives the target group's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerTarget {
    pub name: String,
    pub port: u16,
}

/// One step of a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CanaryStep {
    /// Percent of production traffic on the candidate (0..=100, never going down).
    SetWeight(u32),
    /// A bake (with a duration) or a manual gate (without: waits for `switchyard promote`).
    Pause(PauseStep),
    /// An analysis of the candidate at the current weight: a failed one rolls back.
    Analysis(super::analysis::AnalysisSpec),
}

/// `pause: {duration: 5m}` or `pause: {}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationSpec>,
}

impl CanaryStep {
    /// How the step reads in the status and the CLI (`setWeight 10`, `pause 5m`, `pause`).
    pub fn describe(&self) -> String {
        match self {
            CanaryStep::SetWeight(weight) => format!("setWeight {weight}"),
            CanaryStep::Pause(PauseStep {
                duration: Some(duration),
            }) => format!("pause {}", duration.as_str()),
            CanaryStep::Pause(PauseStep { duration: None }) => "pause (until promoted)".into(),
            CanaryStep::Analysis(analysis) => format!("analysis ({})", analysis.describe()),
        }
    }
}

/// Defaults of the optional durations.
pub const DEFAULT_SCALE_DOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(30);
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(10);
pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

impl TaskSetsStrategy {
    /// The steps in force: the document's, or one `setWeight: 100`.
    pub fn effective_steps(&self) -> Vec<CanaryStep> {
        if self.steps.is_empty() {
            vec![CanaryStep::SetWeight(100)]
        } else {
            self.steps.clone()
        }
    }

    pub fn scale_down_delay(&self) -> std::time::Duration {
        self.scale_down_delay
            .as_ref()
            .map_or(DEFAULT_SCALE_DOWN_DELAY, DurationSpec::get)
    }

    pub fn abort_scale_down_delay(&self) -> std::time::Duration {
        self.abort_scale_down_delay
            .as_ref()
            .map_or(DEFAULT_ABORT_SCALE_DOWN_DELAY, DurationSpec::get)
    }

    pub fn progress_deadline(&self) -> std::time::Duration {
        self.progress_deadline
            .as_ref()
            .map_or(DEFAULT_PROGRESS_DEADLINE, DurationSpec::get)
    }
}

/// Checks `strategy.taskSets` (`base` is its path); pushes one error per problem.
pub fn validate(base: &str, strategy: &TaskSetsStrategy, errors: &mut Vec<FieldError>) {
    let path = |field: &str| format!("{base}.{field}");
    let groups = &strategy.target_groups;
    if groups.len() != 2 {
        errors.push(FieldError::new(
            path("targetGroups"),
            format!(
                "must name exactly two target groups, the pair the versions alternate on (got {})",
                groups.len()
            ),
        ));
    }
    let mut names = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        match super::names::target_group_name(group) {
            Ok(name) => names.push(name),
            Err(error) => errors.push(FieldError::new(
                format!("{}[{i}]", path("targetGroups")),
                error.to_string(),
            )),
        }
    }
    if names.len() == 2 && names[0] == names[1] {
        errors.push(FieldError::new(
            path("targetGroups"),
            format!(
                "must name two distinct target groups (both are {:?})",
                names[0]
            ),
        ));
    }
    for (field, list) in [
        ("listeners", &strategy.listeners),
        ("testListeners", &strategy.test_listeners),
    ] {
        for (i, arn) in list.iter().enumerate() {
            if !is_listener_or_rule_arn(arn) {
                errors.push(FieldError::new(
                    format!("{}[{i}]", path(field)),
                    format!(
                        "must be a listener ARN (…:listener/app/LB/ID/ID) or a listener rule ARN (…:listener-rule/app/LB/ID/ID/ID), got {arn:?}"
                    ),
                ));
            }
        }
    }
    for arn in &strategy.test_listeners {
        if strategy.listeners.contains(arn) {
            errors.push(FieldError::new(
                path("testListeners"),
                format!("{arn} is also in listeners: production and test traffic are routed apart"),
            ));
        }
    }
    if let Some(container) = &strategy.container {
        if container.name.trim().is_empty() {
            errors.push(FieldError::new(path("container.name"), "must not be empty"));
        }
        if container.port == 0 {
            errors.push(FieldError::new(
                path("container.port"),
                "must be a port, 1 to 65535",
            ));
        }
    }
    let mut last_weight = 0;
    for (i, step) in strategy.steps.iter().enumerate() {
        let step_path = format!("{}[{i}]", path("steps"));
        match step {
            CanaryStep::SetWeight(weight) => {
                if *weight > 100 {
                    errors.push(FieldError::new(
                        format!("{step_path}.setWeight"),
                        format!("must be a percentage, 0 to 100 (got {weight})"),
                    ));
                } else if *weight < last_weight {
                    errors.push(FieldError::new(
                        format!("{step_path}.setWeight"),
                        format!(
                            "weights never go down: {weight} comes after {last_weight}; to move traffic back, abort"
                        ),
                    ));
                }
                last_weight = last_weight.max(*weight);
            }
            CanaryStep::Pause(_) => {}
            CanaryStep::Analysis(analysis) => {
                super::analysis::validate(&format!("{step_path}.analysis"), analysis, errors);
            }
        }
    }
}

/// Whether `arn` names an ELBv2 listener or listener rule.
fn is_listener_or_rule_arn(arn: &str) -> bool {
    super::names::Arn::parse(arn).is_ok_and(|parsed| {
        parsed.service == "elasticloadbalancing"
            && (parsed.resource.starts_with("listener/")
                || parsed.resource.starts_with("listener-rule/"))
    })
}

/// Where a task-set rollout stands; the strategy's part of the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSetsStatus {
    /// What the rollout is doing (see [`TaskSetsStage`]).
    #[serde(default)]
    pub stage: TaskSetsStage,
    /// The live task set and its target group (when the rollout started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_task_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_target_group: Option<String>,
    /// The candidate task set (its ARN, once created) and its target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_task_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_target_group: Option<String>,
    /// The routes switchyard weights (production) and points at the candidate (test).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_routes: Vec<String>,
    /// The step the rollout is at (index into the steps), its kind, and how many there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default)]
    pub step_count: usize,
    /// The digest of the steps the index refers to: edited steps are re-read from the
    /// current weight.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub steps_digest: String,
    /// When the current step began, and (a timed pause) when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ends_at: Option<Timestamp>,
    /// The candidate's share of production traffic switchyard set last (percent).
    #[serde(default)]
    pub weight: u32,
    /// Every change of that share during the rollout, oldest first (for the dashboard's
    /// weight-over-time chart); bounded by the number of steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightPoint>,
    /// The last time the rollout made progress (for the progress deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<Timestamp>,
    /// Why the rollout rolls back, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_back: Option<RollingBack>,
    /// Written before CreateTaskSet (its client token is the rollout's): a pass that finds it
    /// without a candidate task set looks for one with the rollout's external id first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating_since: Option<Timestamp>,
    /// The task set to scale down and delete, and from when (clean-up after the switch or
    /// after a rollback; never blocks the verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_up: Option<CleanUp>,
    /// A guarded weight write found a production route changed outside switchyard (its share
    /// was not the one switchyard set): until every production route reads that share again
    /// (or `promote` writes it again), any other share holds the rollout as a weight changed
    /// by hand, even one the step in flight would allow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub route_changed: bool,
}

/// The candidate's share of production traffic from a point in time on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightPoint {
    pub at: Timestamp,
    pub candidate: u32,
}

impl TaskSetsStatus {
    /// Records that the candidate's share is now `weight` (a change only).
    pub fn set_weight(&mut self, weight: u32, at: Timestamp) {
        if self.weights.last().map(|p| p.candidate) != Some(weight) {
            self.weights.push(WeightPoint {
                at,
                candidate: weight,
            });
            // At most one point per step, and a few for the switch and a rollback.
            if self.weights.len() > 64 {
                self.weights.remove(0);
            }
        }
        self.weight = weight;
    }
}

/// Why a task-set rollout rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingBack {
    pub reason: String,
    /// Whether it makes way for a newer rollout (`Superseded`, not `RolledBack`).
    #[serde(default)]
    pub superseded: bool,
}

/// A task set to scale to 0 and delete once `due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanUp {
    pub task_set: String,
    pub due: Timestamp,
    /// Its scale is 0 already: only the deletion is left.
    #[serde(default)]
    pub scaled_down: bool,
}

/// The stages of a task-set rollout, in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskSetsStage {
    /// Creating the candidate task set.
    #[default]
    Creating,
    /// Waiting until it is steady and its targets are healthy.
    WaitingForCandidate,
    /// Pointing the test listeners at the candidate group.
    TestTraffic,
    /// Running the steps.
    Steps,
    /// All production traffic on the candidate; making it the primary task set.
    Switching,
    /// Restoring all production traffic to the live group.
    RollingBack,
}

impl TaskSetsStatus {
    /// Where the rollout stands, for `watch`, `get` and the dashboard.
    pub fn describe(&self) -> Option<String> {
        Some(match self.stage {
            TaskSetsStage::Creating => "creating the candidate task set".into(),
            TaskSetsStage::WaitingForCandidate => {
                "waiting for the candidate task set to be steady and healthy".into()
            }
            TaskSetsStage::TestTraffic => "test traffic to the candidate".into(),
            TaskSetsStage::Steps => {
                let weights = format!(
                    "{}% on the candidate, {}% on the live group",
                    self.weight,
                    100u32.saturating_sub(self.weight)
                );
                match (self.step_index, &self.step) {
                    (Some(index), Some(step)) => {
                        let until = self
                            .pause_ends_at
                            .map(|at| format!(" until {}", to_the_second(at)))
                            .unwrap_or_default();
                        format!(
                            "step {}/{}: {step}{until}, {weights}",
                            index + 1,
                            self.step_count,
                        )
                    }
                    _ => weights,
                }
            }
            TaskSetsStage::Switching => "making the candidate the primary task set".into(),
            TaskSetsStage::RollingBack => "restoring production traffic to the live group".into(),
        })
    }
}

/// `at` to the second, in UTC (`2026-01-01T10:00:05Z`).
pub fn to_the_second(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// The digest of a list of steps (`TaskSetsStatus::steps_digest`): an edit of the steps is
/// seen by it.
pub fn steps_digest(steps: &[CanaryStep]) -> String {
    let rendering = serde_json::to_string(steps).unwrap_or_default();
    Sha256::digest(rendering.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_documents;

    const BASE: &str = "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {name: web}\nspec:\n  service: {cluster: prod, name: web}\n  taskDefinition: {from: web, containers: {web: {image: registry/web:2}}}\n  strategy:\n    taskSets:\n";

    #[test]
    fn the_stage_shows_the_step_its_kind_the_weights_and_the_end_of_a_timed_pause() {
        let at = |s: i64| Timestamp::from_second(1_767_261_600 + s).unwrap();
        let mut status = TaskSetsStatus {
            stage: TaskSetsStage::Steps,
            step_index: Some(1),
            step: Some("pause 5s".into()),
            step_count: 4,
            pause_ends_at: Some(at(5) + jiff::SignedDuration::from_millis(250)),
            ..TaskSetsStatus::default()
        };
        status.set_weight(10, at(0));
        assert_eq!(
            status.describe().as_deref(),
            Some(
                "step 2/4: pause 5s until 2026-01-01T10:00:05Z, 10% on the candidate, 90% on the live group"
            )
        );
        status.step_index = Some(2);
        status.step = Some("setWeight 50".into());
        status.pause_ends_at = None;
        assert_eq!(
            status.describe().as_deref(),
            Some("step 3/4: setWeight 50, 10% on the candidate, 90% on the live group")
        );
    }

    fn errors(strategy: &str) -> Vec<String> {
        match parse_documents(&format!("{BASE}{strategy}")) {
            Ok(_) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn one_error(strategy: &str) -> String {
        let errors = errors(strategy);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].clone()
    }

    #[test]
    fn a_full_task_sets_strategy_parses_and_keeps_its_durations_as_written() {
        let yaml = "      targetGroups: [web-a, web-b]\n      container: {name: web, port: 8080}\n      steps:\n        - setWeight: 10\n        - pause: {duration: 5m}\n        - setWeight: 50\n        - pause: {}\n      scaleDownDelay: 45s\n";
        let documents = parse_documents(&format!("{BASE}{yaml}")).unwrap();
        let strategy = documents[0].spec.strategy.task_sets.clone().unwrap();
        assert_eq!(strategy.steps.len(), 4);
        assert_eq!(
            strategy.scale_down_delay(),
            std::time::Duration::from_secs(45)
        );
        assert_eq!(
            strategy.abort_scale_down_delay(),
            DEFAULT_ABORT_SCALE_DOWN_DELAY
        );
        assert_eq!(strategy.steps[1].describe(), "pause 5m");
        let back = serde_json::to_value(&strategy).unwrap();
        assert_eq!(back["scaleDownDelay"], "45s");
        assert_eq!(back["steps"][0]["setWeight"], 10);
    }

    #[test]
    fn no_steps_mean_one_step_to_all_traffic() {
        let strategy = TaskSetsStrategy {
            target_groups: vec!["a".into(), "b".into()],
            listeners: vec![],
            test_listeners: vec![],
            container: None,
            steps: vec![],
            scale_down_delay: None,
            abort_scale_down_delay: None,
            progress_deadline: None,
        };
        assert_eq!(strategy.effective_steps(), vec![CanaryStep::SetWeight(100)]);
    }

    #[test]
    fn bad_task_sets_input_is_refused_naming_the_field() {
        let cases = [
            (
                "      targetGroups: [web-a, web-b]\n      steps: [{setWeight: 120}]\n",
                "spec.strategy.taskSets.steps[0].setWeight: must be a percentage, 0 to 100",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      steps: [{setWeight: 50}, {setWeight: 10}]\n",
                "spec.strategy.taskSets.steps[1].setWeight: weights never go down",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      steps: [{jump: 10}]\n",
                "spec.strategy.taskSets.steps[0]",
            ),
            (
                "      targetGroups: [web-a, web-a]\n",
                "spec.strategy.taskSets.targetGroups: must name two distinct target groups",
            ),
            (
                "      targetGroups: [web-a]\n",
                "spec.strategy.taskSets.targetGroups: must name exactly two target groups",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      steps: [{pause: {duration: soon}}]\n",
                "spec.strategy.taskSets.steps[0].pause.duration",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      scaleDownDelay: tomorrow\n",
                "spec.strategy.taskSets.scaleDownDelay",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      steps: [{analysis: {interval: 10s, count: 0, metrics: [{name: up, http: {url: http://web/health}}]}}]\n",
                "spec.strategy.taskSets.steps[0].analysis.count: must be 1 to 10000 measurements (got 0)",
            ),
            (
                "      targetGroups: [web-a, web-b]\n      listeners: [not-an-arn]\n",
                "spec.strategy.taskSets.listeners[0]: must be a listener ARN",
            ),
        ];
        for (yaml, expected) in cases {
            let error = one_error(yaml);
            assert!(
                error.contains(expected),
                "{yaml}\n{error}\nwanted: {expected}"
            );
        }
    }

    #[test]
    fn two_strategies_at_once_are_refused() {
        let yaml = "      targetGroups: [web-a, web-b]\n    codeDeploy: {application: web, deploymentGroup: web-prod}\n";
        let error = one_error(yaml);
        assert!(
            error.contains("spec.strategy: must set exactly one strategy")
                && error.contains("not codeDeploy and taskSets"),
            "{error}"
        );
    }
}
