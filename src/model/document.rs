//! The release document (`apiVersion: switchyard.dev/v1`, `kind: Release`): the desired state
//! a user writes, in YAML in git, as input of `apply`, and as the stored spec.
//!
//! Unknown fields are errors everywhere (`deny_unknown_fields`), so a typo never silently
//! changes what gets deployed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "switchyard.dev/v1";
pub const KIND: &str = "Release";

/// A whole release document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ReleaseSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The release's key: lower-case letters, digits and '-', at most 63 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The desired state of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseSpec {
    pub service: ServiceRef,
    pub task_definition: TaskDefinitionSpec,
    pub strategy: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
    /// True: start nothing new.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "OnDrift::is_default")]
    pub on_drift: OnDrift,
    /// Where the release's events go; the controller's defaults when absent (`[]`: nowhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<super::notifications::NotificationDestination>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The ECS service a release manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    pub cluster: String,
    pub name: String,
    /// The controller's region when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The IAM role the controller assumes (through STS, with its own credentials) for every
    /// call about the release; the controller's own credentials and account when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Which task definition to deploy: a base revision and the changes applied to a copy of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionSpec {
    /// A family (its latest ACTIVE revision, resolved once per generation) or a full ARN.
    pub from: String,
    /// Changes to apply to the copy, by container name.
    pub containers: BTreeMap<String, ContainerChange>,
}

/// The changes to one container of the copied task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Merged over the copy's environment: listed keys are set, others kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

/// How to roll out. Exactly one strategy is set (validation says so otherwise); adding a
/// strategy adds a field here and a variant to [`SelectedStrategy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Strategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_deploy: Option<CodeDeployStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_sets: Option<super::task_sets::TaskSetsStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<super::ecs::EcsStrategy>,
}

/// The one strategy a spec selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectedStrategy<'a> {
    CodeDeploy(&'a CodeDeployStrategy),
    TaskSets(&'a super::task_sets::TaskSetsStrategy),
    Ecs(&'a super::ecs::EcsStrategy),
}

impl Strategy {
    /// The document names of every strategy, for messages.
    pub const NAMES: &'static [&'static str] = &["codeDeploy", "taskSets", "ecs"];

    /// Every strategy that is set, in document order.
    pub fn all_set(&self) -> Vec<SelectedStrategy<'_>> {
        let mut set = Vec::new();
        if let Some(s) = &self.code_deploy {
            set.push(SelectedStrategy::CodeDeploy(s));
        }
        if let Some(s) = &self.task_sets {
            set.push(SelectedStrategy::TaskSets(s));
        }
        if let Some(s) = &self.ecs {
            set.push(SelectedStrategy::Ecs(s));
        }
        set
    }

    /// The strategy, when exactly one is set.
    pub fn selected(&self) -> Option<SelectedStrategy<'_>> {
        match self.all_set().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

impl SelectedStrategy<'_> {
    /// The strategy's name in the document (`codeDeploy`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            SelectedStrategy::CodeDeploy(_) => "codeDeploy",
            SelectedStrategy::TaskSets(_) => "taskSets",
            SelectedStrategy::Ecs(_) => "ecs",
        }
    }
}

/// Blue/green through AWS CodeDeploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeDeployStrategy {
    pub application: String,
    pub deployment_group: String,
    /// The group's own config when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<String>,
    #[serde(default, skip_serializing_if = "Promotion::is_default")]
    pub promotion: Promotion,
    /// Runs while the deployment waits in `Ready` with test traffic on the candidate, before
    /// ContinueDeployment; the group must wait for approval longer than it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisSpec>,
}

pub use super::promotion::Promotion;

/// When to roll back beyond CodeDeploy's own failure handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackSpec {
    /// CloudWatch alarms; any in ALARM during a deployment aborts it and rolls back.
    #[serde(default)]
    pub alarms: Vec<String>,
}

/// What to do when the live task definition is not the one the controller deployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnDrift {
    /// Say so in the status; change nothing.
    #[default]
    Report,
    /// Deploy the desired version again.
    Converge,
}

impl OnDrift {
    fn is_default(&self) -> bool {
        *self == Self::Report
    }
}

impl ReleaseSpec {
    pub fn rollback_alarms(&self) -> &[String] {
        self.rollback
            .as_ref()
            .map(|r| r.alarms.as_slice())
            .unwrap_or(&[])
    }
}
