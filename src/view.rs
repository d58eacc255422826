//! A release as people read it: the shape `switchyard get -o json|yaml` and `watch` print
//! and the status API (`/api/v1/releases`) serves. Below both the CLI and the HTTP server, so
//! that neither depends on the other for it.

use jiff::Timestamp;
use serde::Serialize;

use crate::model::ReleaseStatus;
use crate::ports::StoredRelease;

/// One release as `get -o json` and the status API show it: metadata, the spec as written,
/// the status the controller wrote last.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub metadata: ReleaseMetadataView,
    pub spec: serde_json::Value,
    pub status: Option<ReleaseStatus>,
}

/// Who wrote the spec last, and when, beside the release's name, labels and generation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseMetadataView {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub generation: u64,
    pub updated_by: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl From<StoredRelease> for ReleaseView {
    fn from(release: StoredRelease) -> Self {
        Self {
            metadata: ReleaseMetadataView {
                name: release.name,
                labels: release.labels,
                generation: release.generation,
                updated_by: release.spec_updated_by,
                updated_at: release.spec_updated_at,
            },
            spec: canonical_spec(release.spec.value()),
            status: release.status,
        }
    }
}

/// The spec in a stable order whatever order the store returned its maps in: as `apply`
/// writes it when it is valid, with every map's keys sorted otherwise.
fn canonical_spec(spec: serde_json::Value) -> serde_json::Value {
    match crate::model::parse_spec_value(&spec) {
        Ok(typed) => serde_json::to_value(typed).unwrap_or_else(|_| sorted(spec)),
        Err(_) => sorted(spec),
    }
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted(value)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}
