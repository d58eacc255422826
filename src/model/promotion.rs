//! Whether a rollout waits for `switchyard promote` at its gate (CodeDeploy's `Ready`, an
//! ECS `PAUSE` hook), shared by the strategies that have such a gate.

use serde::{Deserialize, Serialize};

/// Whether a rollout at its gate goes on by itself or waits for `promote`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Promotion {
    #[default]
    Auto,
    Manual,
}

impl Promotion {
    pub fn is_default(&self) -> bool {
        *self == Self::Auto
    }
}
