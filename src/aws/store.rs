//! The release store on DynamoDB: conditional writes of spec, requests and status.
//!
//! # Table layout
//!
//! This layout is the contract shared with the Terraform in `deploy/` and with operators who
//! read or edit the table by hand.
//!
//! - One table, partition key `pk` (String), no sort key, billing on demand, stream
//!   `NEW_AND_OLD_IMAGES`.
//! - A release is the item `pk = "release#<name>"` with attributes: `kind = "release"`, `name`
//!   (S), `generation` (N, bumped by every spec write), `labels` (M), `spec` (M: the spec
//!   exactly as written, converted with serde_dynamo from the `serde_json::Value`),
//!   `specUpdatedBy` (S), `specUpdatedAt` (S, RFC 3339), `requestPromote` / `requestAbort` /
//!   `requestRetry` (M, an `OperatorRequest`; separate top-level attributes so a request write
//!   never needs a parent map to exist), `status` (M, the `ReleaseStatus` via serde_dynamo),
//!   `statusVersion` (N, starts at 0 on creation, bumped by every status write), `audit` (L of
//!   M: the audit trail, oldest first, each entry an `AuditEntry`: `at` (S, RFC 3339), `by`
//!   (S, the writer's AWS ARN), `action` (S: `apply`, `release set`, `pause`, `resume`,
//!   `promote`, `abort`, `retry`), `generation` (N), `detail` (S)).
//! - Users write spec/labels/generation/requests/audit; the controller writes only
//!   status/statusVersion; each write is an UpdateItem that SETs only its own attributes, so
//!   the two never overwrite each other.
//! - Every spec write and every request appends its audit entry in the same UpdateItem, with
//!   `SET audit = list_append(if_not_exists(audit, :empty), :entry)`, so the entry exists if
//!   and only if the write happened. A spec write sets `generation` to an explicit value (the
//!   one its condition read, plus one), so the entry names the generation it created; a write
//!   without a precondition reads the generation first and writes under a condition on it,
//!   retrying a few times if it moves.
//! - The audit keeps about the newest `AUDIT_LIMIT` (50) entries: when a write returns a list
//!   longer than that, a second UpdateItem removes the oldest entries (`REMOVE audit[0],
//!   audit[1], ...`) under the condition `size(audit) = <the length the write returned>`. A
//!   concurrent append makes that condition fail and the trim is skipped (the next write trims
//!   again, everything over the bound), so the bound is approximate under concurrent writers:
//!   briefly over it, never below it. A failed trim never fails the write. An `audit`
//!   attribute that does not decode is read as an empty trail (entries that do not decode are
//!   skipped): the audit is informational and must never make a release `Corrupt`. (An
//!   `audit` that is not a list does make later user writes fail, as `list_append` refuses
//!   it: remove the attribute to repair it.)
//! - Other item kinds use other `pk` prefixes: the shard leases `lease#<shard>`
//!   (`aws/lease.rs`) and the wake items `wake#<shard>` (`aws/stream_relay.rs`: one attribute
//!   `w#<name>` per release whose change a stream reader handed to the shard's owner, holding
//!   the stream record's sequence number, removed by the owner once woken). `list` only
//!   returns `release#` items.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableDescription, TableStatus, TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::stream::BoxStream;
use jiff::Timestamp;
use serde::Deserialize;
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};

use crate::model::{
    AUDIT_LIMIT, AuditEntry, OperatorRequest, ReleaseStatus, RequestKind, Requests, bounded_detail,
};
use crate::ports::{
    AwsErrorKind, Fence, ReleaseStore, SpecPrecondition, SpecWrite, StoreError, StoredRelease,
};
use crate::retry::{Attempt, ConflictPolicy, GaveUp, retry_on_conflict};

use super::error::{CodeMap, classify};
use super::streams::stream_changes;

/// Every IAM action the store and its stream consumer call (the `switchyard run` policy).
pub const STORE_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Scan",
    // Shard leases: read in one batch; fenced status writes are transactions of a lease
    // condition check and an update (authorized as ConditionCheckItem and UpdateItem).
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    // The stream consumer finds the table's stream through DescribeTable.
    "dynamodb:DescribeTable",
    "dynamodb:DescribeStream",
    "dynamodb:GetShardIterator",
    "dynamodb:GetRecords",
];

/// The IAM actions of `switchyard table create` only: the controller never creates tables.
pub const TABLE_ADMIN_ACTIONS: &[&str] = &["dynamodb:CreateTable", "dynamodb:DescribeTable"];

/// The partition key attribute of every item.
pub(super) const PARTITION_KEY: &str = "pk";
/// The `pk` prefix of release items; other kinds of item use other prefixes.
const RELEASE_PREFIX: &str = "release#";
/// The `pk` prefix of shard lease items (`src/aws/lease.rs`).
pub(super) const LEASE_PREFIX: &str = "lease#";
/// The `kind` attribute of release items, which `list` filters on.
const RELEASE_KIND: &str = "release";

/// How long `create_table` waits for a new table to become ACTIVE, and how often it looks.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const TABLE_ACTIVE_POLL: Duration = Duration::from_secs(1);

/// Every attribute of a release item (the layout above): the key, the kind, and the fields
/// of `ReleaseItem`. The fuzz targets and the property tests generate items from it; a test
/// keeps it equal to what the decoder reads.
pub const ITEM_ATTRIBUTES: &[&str] = &[
    "pk",
    "kind",
    "name",
    "generation",
    "labels",
    "spec",
    "specUpdatedBy",
    "specUpdatedAt",
    "requestPromote",
    "requestAbort",
    "requestRetry",
    "status",
    "statusVersion",
    AUDIT_ATTRIBUTE,
];

/// The DynamoDB item of a release, decoded by serde_dynamo. Unknown attributes are ignored so
/// that later versions can add attributes without breaking older controllers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseItem {
    name: String,
    generation: u64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    spec: serde_json::Value,
    #[serde(default)]
    spec_updated_by: Option<String>,
    #[serde(default)]
    spec_updated_at: Option<Timestamp>,
    #[serde(default)]
    request_promote: Option<OperatorRequest>,
    #[serde(default)]
    request_abort: Option<OperatorRequest>,
    #[serde(default)]
    request_retry: Option<OperatorRequest>,
    #[serde(default)]
    status: Option<ReleaseStatus>,
    #[serde(default)]
    status_version: u64,
    #[serde(default, deserialize_with = "lenient_audit")]
    audit: Vec<AuditEntry>,
}

/// The audit trail, skipping entries that do not decode and reading anything but a list as
/// empty: a hand-edited audit must never make the release undecodable.
fn lenient_audit<'de, D>(deserializer: D) -> Result<Vec<AuditEntry>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // Untagged fallbacks to `IgnoredAny` accept every DynamoDB value, binary included (a
    // `serde_json::Value` cannot hold bytes, and would make such an item undecodable).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MaybeEntry {
        Entry(AuditEntry),
        Other(serde::de::IgnoredAny),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MaybeList {
        List(Vec<MaybeEntry>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match MaybeList::deserialize(deserializer)? {
        MaybeList::List(entries) => entries
            .into_iter()
            .filter_map(|entry| match entry {
                MaybeEntry::Entry(entry) => Some(entry),
                MaybeEntry::Other(_) => None,
            })
            .collect(),
        MaybeList::Other(_) => Vec::new(),
    })
}

impl From<ReleaseItem> for StoredRelease {
    fn from(item: ReleaseItem) -> Self {
        StoredRelease {
            name: item.name,
            generation: item.generation,
            labels: item.labels,
            spec: item.spec.into(),
            requests: Requests {
                promote: item.request_promote,
                abort: item.request_abort,
                retry: item.request_retry,
            },
            status: item.status,
            status_version: item.status_version,
            spec_updated_by: item.spec_updated_by,
            spec_updated_at: item.spec_updated_at,
            audit: item.audit,
        }
    }
}

/// The attribute that holds one kind of request.
fn request_attribute(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Promote => "requestPromote",
        RequestKind::Abort => "requestAbort",
        RequestKind::Retry => "requestRetry",
    }
}

fn release_key(name: &str) -> AttributeValue {
    AttributeValue::S(format!("{RELEASE_PREFIX}{name}"))
}

/// The `pk` of a shard's lease item. Here rather than in `lease.rs`, beside the release key:
/// the fenced status write names the lease item too, and `lease.rs` builds on this module.
pub(super) fn lease_key(shard: u32) -> AttributeValue {
    AttributeValue::S(format!("{LEASE_PREFIX}{shard}"))
}

pub(super) fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Decodes a release item; `name` is the release the caller asked for (or found in `pk`).
fn decode_release(
    name: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<StoredRelease, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        name: name.to_string(),
        message,
    };
    // Through serde_path_to_error, so that the message names the attribute at fault.
    let item: serde_dynamo::Item = item.into();
    let deserializer = serde_dynamo::Deserializer::from_attribute_value(
        serde_dynamo::AttributeValue::M(item.into()),
    );
    let item: ReleaseItem =
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            match e.path().to_string().as_str() {
                "." | "" => corrupt(e.inner().to_string()),
                path => corrupt(format!("attribute {path}: {}", e.inner())),
            }
        })?;
    // The key and the name attribute are written together; a mismatch means a hand edit.
    if item.name != name {
        return Err(corrupt(format!(
            "its name attribute is {:?} but its key names {name:?}",
            item.name
        )));
    }
    Ok(item.into())
}

/// Decodes one release item as read from the table (the name comes from its key). Public for
/// fuzzing and tests: no input may panic, every rejection is a `Corrupt` error naming why.
pub fn decode_item(item: HashMap<String, AttributeValue>) -> Result<StoredRelease, StoreError> {
    let Some(name) = name_in_key(&item).map(str::to_string) else {
        return Err(StoreError::Corrupt {
            name: String::new(),
            message: format!("its key is not a {RELEASE_PREFIX}<name> string"),
        });
    };
    decode_release(&name, item)
}

/// The release name in an item's `pk`, for log lines about items that do not decode.
fn name_in_key(item: &HashMap<String, AttributeValue>) -> Option<&str> {
    match item.get(PARTITION_KEY) {
        Some(AttributeValue::S(pk)) => pk.strip_prefix(RELEASE_PREFIX),
        _ => None,
    }
}

/// Maps an SDK error to a store error. Conditional-check failures are handled by each caller
/// before this, since only the caller knows what the condition meant.
pub(super) fn store_error<E>(
    table: &str,
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let error = classify("dynamodb", operation, error, CodeMap::default());
    match error.kind {
        AwsErrorKind::Throttling => StoreError::Unavailable {
            message: error.to_string(),
            throttled: true,
        },
        // A timed-out write may or may not have happened: the caller reads again and
        // retries, and the conditions make a repeated write fail rather than apply twice.
        AwsErrorKind::Transient | AwsErrorKind::Ambiguous => StoreError::Unavailable {
            message: error.to_string(),
            throttled: false,
        },
        AwsErrorKind::NotFound if error.code.as_deref() == Some("ResourceNotFoundException") => {
            StoreError::Other {
                message: missing_table_message(table, &error.to_string()),
            }
        }
        _ => StoreError::Other {
            message: error.to_string(),
        },
    }
}

fn missing_table_message(table: &str, cause: &str) -> String {
    format!(
        "the DynamoDB table {table} does not exist or is not ACTIVE; create it with \
         `switchyard table create` or the Terraform in deploy/ ({cause})"
    )
}

/// The condition of a status write. An item written by hand may lack `statusVersion`, which
/// reads as version 0 (see `ReleaseItem`), so version 0 also accepts a missing attribute;
/// otherwise the controller could never write that release's first status.
fn status_condition(expected_version: u64) -> String {
    let version = if expected_version == 0 {
        "(attribute_not_exists(#statusVersion) OR #statusVersion = :expected)"
    } else {
        "#statusVersion = :expected"
    };
    format!("attribute_exists({PARTITION_KEY}) AND {version} AND #generation = :generation")
}

/// A [`ReleaseStore`] on one DynamoDB table (see the module documentation for its layout),
/// with its stream as the change feed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    scan_page_limit: Option<i32>,
}

impl DynamoStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            streams,
            table: table.into(),
            scan_page_limit: None,
        }
    }

    /// Limits how many items one Scan page evaluates, so tests can make `list` follow many
    /// pages without writing a megabyte of items. Production leaves DynamoDB's 1 MB pages.
    pub fn with_scan_page_limit(mut self, limit: i32) -> Self {
        self.scan_page_limit = Some(limit);
        self
    }

    /// The table this store reads and writes.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates this store's table (see [`create_table`]).
    pub async fn create_table(&self) -> Result<TableCreated, StoreError> {
        create_table(&self.client, &self.table).await
    }

    /// The status write of a replica holding a shard lease: one transaction of a condition
    /// check on the lease item (same owner, same term) and the conditional status update, so
    /// a replica that lost the lease cannot write, however late its request arrives.
    async fn write_status_fenced(
        &self,
        name: &str,
        status: &ReleaseStatus,
        value: AttributeValue,
        expected_version: u64,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let lease_check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, lease_key(fence.shard))
            .condition_expression("#owner = :owner AND #term = :term")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#term", "term")
            .expression_attribute_values(":owner", AttributeValue::S(fence.owner.clone()))
            .expression_attribute_values(":term", number(fence.term))
            .build()
            .map_err(|e| StoreError::Other {
                message: format!("cannot build the lease check: {e}"),
            })?;
        let update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .update_expression("SET #status = :status, #statusVersion = :next")
            .condition_expression(status_condition(expected_version))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#statusVersion", "statusVersion")
            .expression_attribute_names("#generation", "generation")
            .expression_attribute_values(":status", value)
            .expression_attribute_values(":next", number(expected_version + 1))
            .expression_attribute_values(":expected", number(expected_version))
            .expression_attribute_values(":generation", number(status.observed_generation))
            .build()
            .map_err(|e| StoreError::Other {
                message: format!("cannot build the status update: {e}"),
            })?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(lease_check)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                // A failed condition on either item: the lease moved on, or the release
                // changed (or was deleted) since it was read. Either way: not this write.
                Err(StoreError::ConditionFailed {
                    name: name.to_string(),
                })
            }
            Err(error) => Err(store_error(&self.table, "TransactWriteItems", error)),
        }
    }

    /// The DynamoDB client (for the lease adapter, which shares the table).
    pub(super) fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }
}

/// What a spec write expects to find, and so the generation it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// No item: the write creates generation 1.
    Absent,
    /// The item at this generation: the write creates the next one.
    Generation(u64),
    /// An item whose generation cannot be read (a hand edit): the write replaces it as
    /// generation 1, as the simulated store does.
    Unreadable,
}

/// The attribute of the audit trail.
const AUDIT_ATTRIBUTE: &str = "audit";

fn audit_entry_value(entry: &AuditEntry) -> Result<AttributeValue, serde_dynamo::Error> {
    Ok(AttributeValue::L(vec![to_attribute_value(entry)?]))
}

/// The length of the audit list in the attributes an UpdateItem returned.
fn audit_length(attributes: Option<&HashMap<String, AttributeValue>>) -> usize {
    match attributes.and_then(|a| a.get(AUDIT_ATTRIBUTE)) {
        Some(AttributeValue::L(entries)) => entries.len(),
        _ => 0,
    }
}

impl DynamoStore {
    /// The generation of `name` as a condition to write under: one strongly consistent
    /// GetItem of that attribute alone.
    async fn read_generation(&self, name: &str) -> Result<Expected, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .projection_expression("#pk, #generation")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#generation", "generation")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&self.table, "GetItem", e))?;
        Ok(match output.item {
            None => Expected::Absent,
            Some(item) => match item
                .get("generation")
                .and_then(|g| from_attribute_value::<u64>(g.clone()).ok())
            {
                Some(generation) => Expected::Generation(generation),
                None => Expected::Unreadable,
            },
        })
    }

    /// One conditional spec write with its audit entry; returns the new generation.
    async fn write_spec(&self, write: &SpecWrite, expected: Expected) -> Result<u64, StoreError> {
        let encode = |what: &str, e: serde_dynamo::Error| StoreError::Other {
            message: format!("the {what} of {} cannot be encoded: {e}", write.name),
        };
        let generation = match expected {
            Expected::Absent | Expected::Unreadable => 1,
            Expected::Generation(current) => current + 1,
        };
        let spec = to_attribute_value(&write.spec).map_err(|e| encode("spec", e))?;
        let labels = to_attribute_value(&write.labels).map_err(|e| encode("labels", e))?;
        let written_at =
            to_attribute_value(write.written_at).map_err(|e| encode("write time", e))?;
        let entry = audit_entry_value(&AuditEntry {
            at: write.written_at,
            by: write.written_by.clone(),
            action: write.action.as_str().to_string(),
            generation,
            detail: bounded_detail(&write.detail),
        })
        .map_err(|e| encode("audit entry", e))?;
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(&write.name))
            .update_expression(
                "SET #spec = :spec, #labels = :labels, #name = :name, #kind = :kind, \
                 #specUpdatedBy = :by, #specUpdatedAt = :at, #generation = :generation, \
                 #statusVersion = if_not_exists(#statusVersion, :zero), \
                 #audit = list_append(if_not_exists(#audit, :empty), :entry)",
            )
            .expression_attribute_names("#spec", "spec")
            .expression_attribute_names("#labels", "labels")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#specUpdatedBy", "specUpdatedBy")
            .expression_attribute_names("#specUpdatedAt", "specUpdatedAt")
            .expression_attribute_names("#generation", "generation")
            .expression_attribute_names("#statusVersion", "statusVersion")
            .expression_attribute_names("#audit", AUDIT_ATTRIBUTE)
            .expression_attribute_values(":spec", spec)
            .expression_attribute_values(":labels", labels)
            .expression_attribute_values(":name", AttributeValue::S(write.name.clone()))
            .expression_attribute_values(":kind", AttributeValue::S(RELEASE_KIND.into()))
            .expression_attribute_values(":by", AttributeValue::S(write.written_by.clone()))
            .expression_attribute_values(":at", written_at)
            .expression_attribute_values(":generation", number(generation))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", entry)
            .return_values(ReturnValue::UpdatedNew);
        // DynamoDB rejects expression values that no expression uses, so each precondition
        // adds exactly the values it needs.
        request = match expected {
            Expected::Absent => {
                request.condition_expression(format!("attribute_not_exists({PARTITION_KEY})"))
            }
            Expected::Generation(current) => request
                .condition_expression("#generation = :expectedGeneration")
                .expression_attribute_values(":expectedGeneration", number(current)),
            Expected::Unreadable => {
                request.condition_expression(format!("attribute_exists({PARTITION_KEY})"))
            }
        };
        match request.send().await {
            Ok(output) => {
                self.trim_audit(&write.name, audit_length(output.attributes()))
                    .await;
                Ok(generation)
            }
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(StoreError::ConditionFailed {
                    name: write.name.clone(),
                })
            }
            Err(error) => Err(store_error(&self.table, "UpdateItem", error)),
        }
    }

    /// Removes the oldest audit entries beyond `AUDIT_LIMIT` when a write returned a list of
    /// `length` entries, on the condition that nobody appended since (see the module
    /// documentation). Best effort: the write it follows has happened whatever this does.
    async fn trim_audit(&self, name: &str, length: usize) {
        if length <= AUDIT_LIMIT {
            return;
        }
        let removals: Vec<String> = (0..length - AUDIT_LIMIT)
            .map(|i| format!("#audit[{i}]"))
            .collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .update_expression(format!("REMOVE {}", removals.join(", ")))
            .condition_expression("size(#audit) = :length")
            .expression_attribute_names("#audit", AUDIT_ATTRIBUTE)
            .expression_attribute_values(":length", number(length as u64))
            .send()
            .await;
        match result {
            Ok(_) => {}
            // Someone appended (or deleted the release) since: the next write trims.
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) => {}
            Err(error) => {
                let error = store_error(&self.table, "UpdateItem", error);
                tracing::warn!(table = %self.table, release = %name, cause = %error, "could not trim the audit trail; the next write tries again");
            }
        }
    }
}

#[async_trait]
impl ReleaseStore for DynamoStore {
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError> {
        let mut releases = Vec::new();
        self.list_pages(&mut |page| releases.extend(page)).await?;
        releases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(releases)
    }

    async fn list_pages(
        &self,
        each_page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        // The SDK's paginator follows `LastEvaluatedKey`: a filtered page can be empty and
        // still not be the last.
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("#kind = :release")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":release", AttributeValue::S(RELEASE_KIND.into()))
            .set_limit(self.scan_page_limit)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error(&self.table, "Scan", e))?;
            let mut releases = Vec::new();
            for item in page.items.unwrap_or_default() {
                let Some(name) = name_in_key(&item).map(str::to_string) else {
                    tracing::warn!(table = %self.table, "skipping a release item without a release# key");
                    continue;
                };
                match decode_release(&name, item) {
                    Ok(release) => releases.push(release),
                    Err(error) => {
                        tracing::warn!(table = %self.table, release = %name, cause = %error, "skipping a release that cannot be decoded");
                    }
                }
            }
            releases.sort_by(|a, b| a.name.cmp(&b.name));
            if !releases.is_empty() {
                each_page(releases);
            }
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&self.table, "GetItem", e))?;
        match output.item {
            None => Ok(None),
            Some(item) => decode_release(name, item).map(Some),
        }
    }

    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError> {
        match write.precondition {
            SpecPrecondition::Absent => self.write_spec(&write, Expected::Absent).await,
            SpecPrecondition::Generation(generation) => {
                self.write_spec(&write, Expected::Generation(generation))
                    .await
            }
            // Read the generation and write under a condition on it, so the audit entry names
            // the generation this write creates.
            SpecPrecondition::Any => {
                let written = retry_on_conflict(ConflictPolicy::STORE_UNCONDITIONAL_WRITE, || {
                    let write = &write;
                    async move {
                        let expected = self.read_generation(&write.name).await?;
                        match self.write_spec(write, expected).await {
                            Err(StoreError::ConditionFailed { .. }) => Err(Attempt::Conflict),
                            other => other.map_err(Attempt::Failed),
                        }
                    }
                })
                .await;
                written.map_err(|gave_up| match gave_up {
                    GaveUp::Conflicts { .. } => StoreError::ConditionFailed { name: write.name },
                    GaveUp::Failed(error) => error,
                })
            }
        }
    }

    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError> {
        let encode = |what: &str, e: serde_dynamo::Error| StoreError::Other {
            message: format!(
                "the {what} of the {} request of {name} cannot be encoded: {e}",
                kind.as_str()
            ),
        };
        let entry = audit_entry_value(&AuditEntry {
            at: request.requested_at,
            by: request.requested_by.clone(),
            action: kind.as_str().to_string(),
            generation: request.generation,
            detail: String::new(),
        })
        .map_err(|e| encode("audit entry", e))?;
        let value = to_attribute_value(&request).map_err(|e| encode("value", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .update_expression(
                "SET #request = :request, #audit = list_append(if_not_exists(#audit, :empty), :entry)",
            )
            .condition_expression(format!("attribute_exists({PARTITION_KEY})"))
            .expression_attribute_names("#request", request_attribute(kind))
            .expression_attribute_names("#audit", AUDIT_ATTRIBUTE)
            .expression_attribute_values(":request", value)
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", entry)
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.trim_audit(name, audit_length(output.attributes()))
                    .await;
                Ok(())
            }
            // The only condition is that the item exists.
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(StoreError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(error) => Err(store_error(&self.table, "UpdateItem", error)),
        }
    }

    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError> {
        let value = to_attribute_value(status).map_err(|e| StoreError::Other {
            message: format!("the status of {name} cannot be encoded: {e}"),
        })?;
        let next_version = expected_version + 1;
        if let Some(fence) = fence {
            return self
                .write_status_fenced(name, status, value, expected_version, fence)
                .await
                .map(|()| next_version);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .update_expression("SET #status = :status, #statusVersion = :next")
            // Both conditions of the port: the controller's own version, and a spec that has
            // not moved on since the status was decided.
            .condition_expression(status_condition(expected_version))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#statusVersion", "statusVersion")
            .expression_attribute_names("#generation", "generation")
            .expression_attribute_values(":status", value)
            .expression_attribute_values(":next", number(next_version))
            .expression_attribute_values(":expected", number(expected_version))
            .expression_attribute_values(":generation", number(status.observed_generation))
            // The old item tells a missing release from a moved one without a second read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(next_version),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(failed) = context.into_err()
                else {
                    unreachable!("matched above");
                };
                Err(match failed.item {
                    None => StoreError::NotFound {
                        name: name.to_string(),
                    },
                    // Like the simulated store: an undecodable record is reported as such,
                    // not as a concurrent change that a retry could resolve.
                    Some(item) => match decode_release(name, item) {
                        Err(corrupt) => corrupt,
                        Ok(_) => StoreError::ConditionFailed {
                            name: name.to_string(),
                        },
                    },
                })
            }
            Err(error) => Err(store_error(&self.table, "UpdateItem", error)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        // DeleteItem of a missing item succeeds: deleting is idempotent, as the port asks.
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, release_key(name))
            .send()
            .await
            .map_err(|e| store_error(&self.table, "DeleteItem", e))?;
        Ok(())
    }

    /// Each call starts its own stream consumer: one more reader of every shard, where
    /// DynamoDB advises at most two per shard. Call it once per process; replicas sharing the
    /// releases call `replica_changes`, which keeps the readers to two.
    fn changes(&self) -> Option<BoxStream<'static, String>> {
        Some(stream_changes(
            self.client.clone(),
            self.streams.clone(),
            self.table.clone(),
            None,
        ))
    }

    /// Reads the stream only while `replica` holds a reader lease, and takes the names of its
    /// releases from the readers through the table's wake items otherwise (`stream_relay`).
    fn replica_changes(
        &self,
        replica: std::sync::Arc<dyn crate::ports::HeldShards>,
    ) -> Option<BoxStream<'static, String>> {
        Some(stream_changes(
            self.client.clone(),
            self.streams.clone(),
            self.table.clone(),
            Some(replica),
        ))
    }
}

/// What `create_table` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCreated {
    /// The table was created and is ACTIVE.
    Created,
    /// A table of that name already existed, with the key and stream switchyard needs.
    AlreadyExists,
}

impl std::fmt::Display for TableCreated {
    /// Reads as the end of "table releases: ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableCreated::Created => "created (ACTIVE, stream NEW_AND_OLD_IMAGES)",
            TableCreated::AlreadyExists => "already exists with the expected layout",
        })
    }
}

/// Creates the release table with the layout in the module documentation and waits until it
/// is ACTIVE. Idempotent: an existing table is checked (key `pk`, a stream with both images)
/// and reported as [`TableCreated::AlreadyExists`].
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<TableCreated, StoreError> {
    let build_error = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Other {
        message: format!("the CreateTable request cannot be built: {e}"),
    };
    let result = client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PARTITION_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PARTITION_KEY)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build_error)?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    let outcome = match result {
        Ok(_) => TableCreated::Created,
        Err(error) if error.code() == Some("ResourceInUseException") => TableCreated::AlreadyExists,
        Err(error) => return Err(store_error(table, "CreateTable", error)),
    };
    let description = wait_until_active(client, table).await?;
    if outcome == TableCreated::AlreadyExists {
        check_layout(table, &description)?;
    }
    Ok(outcome)
}

/// Polls DescribeTable until the table is ACTIVE, for at most `TABLE_ACTIVE_TIMEOUT`.
async fn wait_until_active(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<TableDescription, StoreError> {
    let attempts = TABLE_ACTIVE_TIMEOUT.as_millis() / TABLE_ACTIVE_POLL.as_millis();
    let mut last_status = None;
    for _ in 0..attempts {
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| store_error(table, "DescribeTable", e))?;
        if let Some(description) = output.table {
            if description.table_status() == Some(&TableStatus::Active) {
                return Ok(description);
            }
            last_status = description.table_status().cloned();
        }
        tokio::time::sleep(TABLE_ACTIVE_POLL).await;
    }
    Err(StoreError::Other {
        message: format!(
            "the DynamoDB table {table} did not become ACTIVE within {} s (last status: {})",
            TABLE_ACTIVE_TIMEOUT.as_secs(),
            last_status.as_ref().map_or("unknown", |s| s.as_str())
        ),
    })
}

/// Checks that an existing table has the layout switchyard needs, and says what differs.
fn check_layout(table: &str, description: &TableDescription) -> Result<(), StoreError> {
    let mut problems = Vec::new();
    let key: Vec<(&str, &KeyType)> = description
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    if key != [(PARTITION_KEY, &KeyType::Hash)] {
        let found: Vec<String> = key
            .iter()
            .map(|(name, kind)| format!("{name} ({})", kind.as_str()))
            .collect();
        problems.push(format!(
            "its key must be the partition key `{PARTITION_KEY}` alone, but is {}",
            found.join(", ")
        ));
    }
    let stream = description.stream_specification();
    match stream {
        Some(stream) if stream.stream_enabled() => {
            if stream.stream_view_type() != Some(&StreamViewType::NewAndOldImages) {
                problems.push(format!(
                    "its stream must have the view type NEW_AND_OLD_IMAGES, but has {}",
                    stream.stream_view_type().map_or("none", |v| v.as_str())
                ));
            }
        }
        _ => problems
            .push("it has no stream; enable one with the view type NEW_AND_OLD_IMAGES".to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Other {
            message: format!(
                "the DynamoDB table {table} already exists but does not fit switchyard: {}",
                problems.join("; ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(entries: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn minimal_item(name: &str) -> HashMap<String, AttributeValue> {
        item(&[
            ("pk", AttributeValue::S(format!("release#{name}"))),
            ("kind", AttributeValue::S("release".into())),
            ("name", AttributeValue::S(name.into())),
            ("generation", number(3)),
            ("spec", AttributeValue::M(HashMap::new())),
            ("statusVersion", number(0)),
        ])
    }

    /// Records the field names a `Deserialize` type asks for, and fails.
    struct FieldNames(Vec<&'static str>);

    impl<'de> serde::Deserializer<'de> for &mut FieldNames {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only structs"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(serde::de::Error::custom("names recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    #[test]
    fn item_attributes_are_the_key_the_kind_and_what_the_decoder_reads() {
        let mut names = FieldNames(Vec::new());
        let _ = ReleaseItem::deserialize(&mut names);
        let mut expected: Vec<&str> = [PARTITION_KEY, "kind"].into_iter().chain(names.0).collect();
        expected.sort_unstable();
        let mut listed = ITEM_ATTRIBUTES.to_vec();
        listed.sort_unstable();
        assert_eq!(listed, expected);
    }

    #[test]
    fn decodes_a_minimal_item_with_defaults() {
        let release = decode_release("web", minimal_item("web")).unwrap();
        assert_eq!(release.name, "web");
        assert_eq!(release.generation, 3);
        assert_eq!(release.requests, Requests::default());
        assert_eq!(release.status, None);
        assert_eq!(release.spec, serde_json::json!({}));
    }

    #[test]
    fn decodes_requests_from_their_own_attributes() {
        let request = OperatorRequest {
            generation: 3,
            requested_by: "alice".into(),
            requested_at: "2025-01-02T03:04:05Z".parse().unwrap(),
            full: false,
        };
        let mut item = minimal_item("web");
        item.insert(
            request_attribute(RequestKind::Abort).into(),
            to_attribute_value(&request).unwrap(),
        );
        let release = decode_release("web", item).unwrap();
        assert_eq!(release.requests.abort, Some(request));
        assert_eq!(release.requests.promote, None);
    }

    #[test]
    fn a_generation_stored_as_a_string_is_corrupt_and_the_message_names_it() {
        let mut item = minimal_item("web");
        item.insert("generation".into(), AttributeValue::S("one".into()));
        let error = decode_release("web", item).unwrap_err();
        assert!(
            matches!(error, StoreError::Corrupt { ref name, ref message }
                if name == "web" && message.starts_with("attribute generation: ")),
            "{error:?}"
        );
    }

    #[test]
    fn a_name_that_differs_from_the_key_is_corrupt() {
        let error = decode_release("api", minimal_item("web")).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    }

    #[test]
    fn the_release_name_comes_from_the_key() {
        assert_eq!(name_in_key(&minimal_item("web")), Some("web"));
        let lease = item(&[("pk", AttributeValue::S("lease#web".into()))]);
        assert_eq!(name_in_key(&lease), None);
    }

    #[test]
    fn an_existing_table_without_a_stream_or_with_another_key_is_refused() {
        let description = TableDescription::builder()
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .build();
        let Err(StoreError::Other { message }) = check_layout("releases", &description) else {
            panic!("a table with another key and no stream must be refused");
        };
        assert!(message.contains("`pk`"), "{message}");
        assert!(message.contains("no stream"), "{message}");
    }
}
