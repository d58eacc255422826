//! The release store port: desired-release documents, operator requests and status.
//!
//! Spec and status are separate parts of one record, written by different parties: users
//! write the spec (which bumps `generation` under a condition), the controller writes the
//! status (under a condition on `status_version`). Neither write touches the other's part.
//!
//! Every user write (a spec write or an operator request) also appends an [`AuditEntry`] to
//! the release's audit trail, which keeps the newest [`AUDIT_LIMIT`](crate::model::AUDIT_LIMIT) entries (approximately,
//! in DynamoDB, under concurrent writers). Status writes are not audited: the status has its
//! own history.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;

use crate::lease::Fence;
use crate::model::{
    AuditAction, AuditEntry, OperatorRequest, ReleaseStatus, RequestKind, Requests,
};

/// One stored release as the store returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRelease {
    pub name: String,
    /// Bumped by every spec write; never by requests or status.
    pub generation: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The spec as stored. The controller validates it: a store can hold a document written
    /// by hand, and such a document must surface as `Invalid`, never reach AWS.
    pub spec: StoredSpec,
    #[serde(default)]
    pub requests: Requests,
    #[serde(default)]
    pub status: Option<ReleaseStatus>,
    /// Bumped by every status write; status writes are conditional on it.
    #[serde(default)]
    pub status_version: u64,
    /// Who wrote the current spec, and when (the audit trail of spec changes).
    #[serde(default)]
    pub spec_updated_by: Option<String>,
    #[serde(default)]
    pub spec_updated_at: Option<Timestamp>,
    /// Who changed the spec or asked for something, when and how, oldest first; at most
    /// [`AUDIT_LIMIT`](crate::model::AUDIT_LIMIT) entries (see the module documentation).
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// A stored spec, held as its compact JSON text with every object's keys sorted.
///
/// The controller holds one per release for as long as it runs: as a `serde_json::Value`
/// a spec took eight to twelve times its text (each object a map of its own, each key and
/// string a heap allocation: 2.9 KB for a 354-byte CodeDeploy spec, 10.9 KB for a 982-byte
/// canary with analysis), most of what the daemon held per release (`BENCHMARKS.md` 2b).
/// The text is parsed where it is read (a pass parses its spec anyway). Sorted keys make
/// two equal specs equal texts, whatever order the store gave their keys in (DynamoDB's
/// maps have none); the order shown to people is the document's (`crate::view`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSpec(Box<str>);

impl StoredSpec {
    pub fn new(mut value: serde_json::Value) -> Self {
        value.sort_all_objects();
        Self(value.to_string().into_boxed_str())
    }

    /// The spec as a JSON value (parsed from the text).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0)
            .expect("a stored spec's text is JSON: it was written from a value")
    }

    /// The compact JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl From<serde_json::Value> for StoredSpec {
    fn from(value: serde_json::Value) -> Self {
        Self::new(value)
    }
}

/// Equal when the value is the same spec (the order of keys aside).
impl PartialEq<serde_json::Value> for StoredSpec {
    fn eq(&self, other: &serde_json::Value) -> bool {
        *self == Self::new(other.clone())
    }
}

impl std::fmt::Debug for StoredSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for StoredSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for StoredSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self::new)
    }
}

/// The condition of a spec write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecPrecondition {
    /// The release must not exist yet.
    Absent,
    /// The release must exist at exactly this generation.
    Generation(u64),
    /// Create or replace, whatever is there.
    Any,
}

/// A spec write.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecWrite {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: serde_json::Value,
    pub precondition: SpecPrecondition,
    pub written_by: String,
    pub written_at: Timestamp,
    /// What the write does, for the audit entry it appends.
    pub action: AuditAction,
    /// What changed, for the audit entry (cut to `AUDIT_DETAIL_MAX_CHARS`).
    pub detail: String,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the record in another state (someone else wrote first).
    #[error("the release {name} changed concurrently; read it again and retry")]
    ConditionFailed { name: String },
    /// The release does not exist.
    #[error("release {name} not found")]
    NotFound { name: String },
    /// The store is throttling or briefly unreachable; try again later.
    #[error("the release store is unavailable: {message}")]
    Unavailable { message: String, throttled: bool },
    /// A stored record cannot be decoded.
    #[error("the stored record of {name} cannot be decoded: {message}")]
    Corrupt { name: String, message: String },
    /// Any other failure.
    #[error("release store error: {message}")]
    Other { message: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub fn is_throttling(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable {
                throttled: true,
                ..
            }
        )
    }
}

/// Where desired releases live.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Every release. Records that cannot be decoded at all are reported as `Corrupt` by
    /// `get`, and skipped (with a log line) by `list`.
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError>;

    /// Every release, handed to `page` a page at a time as the pages arrive (sorted within a
    /// page, in no particular order across pages), so that a caller keeping only what changed
    /// never holds a second copy of the whole table. Skips what `list` skips. The default
    /// reads `list` as a single page.
    async fn list_pages(
        &self,
        page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        page(self.list().await?);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError>;

    /// Writes a spec under its precondition and returns the new generation. Appends an
    /// [`AuditEntry`] (`written_at`, `written_by`, `action`, the new generation, `detail`).
    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError>;

    /// Records an operator request beside the spec; never bumps the generation. Appends an
    /// [`AuditEntry`] (`requested_at`, `requested_by`, the kind as action, the request's
    /// generation, no detail).
    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError>;

    /// Writes the status if `status_version` is still `expected_version` and the release is
    /// still at `status.observed_generation` (a status, and the action it precedes, never
    /// applies to a spec that has since changed); returns the new version. With a `fence`,
    /// the write also requires the fence's shard lease to be held by `fence.owner` in term
    /// `fence.term`, atomically with the write, so a replica that lost the lease cannot
    /// overwrite the new owner. Any condition failing is `ConditionFailed`.
    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError>;

    /// Deletes a release (stops its management). Deleting a missing release is not an error.
    async fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// Names of releases as they change, as a wake-up signal (best effort: the controller
    /// also resyncs periodically). `None` when the store offers no change feed.
    fn changes(&self) -> Option<BoxStream<'static, String>>;

    /// The change feed of one replica among several: the names of the releases whose shard
    /// leases `replica` holds, as they change. A store whose feed costs per reader (a
    /// DynamoDB Stream, where AWS advises at most two readers per shard) has only some
    /// replicas read it and hand the others their names (see ARCHITECTURE.md, "Stream
    /// readers"). The default is `changes`, every name: a feed any number may read.
    fn replica_changes(
        &self,
        replica: std::sync::Arc<dyn HeldShards>,
    ) -> Option<BoxStream<'static, String>> {
        let _ = replica;
        self.changes()
    }
}

/// What a replica's change feed needs of its leases: how many shards there are and which
/// it holds (and can still be sure of) now.
pub trait HeldShards: Send + Sync {
    fn shards(&self) -> u32;
    fn held_safely(&self) -> std::collections::BTreeSet<u32>;
}

#[cfg(test)]
mod tests {
    use super::StoredSpec;
    use serde_json::json;

    /// DynamoDB's maps have no order: one spec read twice can come with its keys in two
    /// orders, and must be the same spec (a resync keeps the record it holds when the listed
    /// one is equal: otherwise every resync would copy the fleet).
    #[test]
    fn a_spec_is_the_same_whatever_order_its_keys_come_in() {
        let one = json!({"service": {"cluster": "prod", "name": "web"}, "paused": true});
        let other = json!({"paused": true, "service": {"name": "web", "cluster": "prod"}});
        assert_ne!(one.to_string(), other.to_string(), "two orders");
        assert_eq!(
            StoredSpec::from(one.clone()),
            StoredSpec::from(other.clone())
        );
        assert_eq!(StoredSpec::from(one.clone()), other);
        assert_ne!(StoredSpec::from(one), json!({"paused": false}));
    }

    #[test]
    fn a_spec_goes_through_every_format_it_is_stored_or_shown_in_unchanged() {
        let value = json!({"service": {"cluster": "prod", "name": "web"}, "weights": [1, 2.5]});
        let spec = StoredSpec::from(value.clone());
        assert_eq!(spec.value(), value);
        let item = serde_dynamo::to_attribute_value::<_, serde_dynamo::AttributeValue>(&spec)
            .expect("to DynamoDB");
        let back: StoredSpec = serde_dynamo::from_attribute_value(item).expect("from DynamoDB");
        assert_eq!(back, spec);
        let yaml = serde_saphyr::to_string(&spec).expect("to YAML");
        assert!(yaml.contains("cluster: prod"), "{yaml}");
        let json: StoredSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(json, spec);
    }
}
