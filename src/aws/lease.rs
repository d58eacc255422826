//! Shard leases on DynamoDB: the items `pk = "lease#<shard>"` of the release table, with
//! `kind = "lease"`, `owner` (S, absent when released), `counter` (N) and `term` (N). Every
//! mutation is an UpdateItem conditioned on the counter the caller saw (KCL-style).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use backon::{BackoffBuilder as _, ExponentialBuilder};

use super::store::{DynamoStore, LEASE_PREFIX, PARTITION_KEY, lease_key, number, store_error};
use crate::ports::{LeaseRecord, LeaseStore, StoreError};

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_LIMIT: usize = 100;

/// How the lease read asks again for the keys BatchGetItem left unprocessed. DynamoDB leaves
/// keys unprocessed when the table is throttled, and AWS asks callers to back off
/// exponentially before asking again: 50 ms, doubling, each with a random jitter of up to as
/// much again, five times at most (1.55 s to 3.1 s of waiting in all, well within a renew
/// period); keys still unprocessed then make the read fail as throttled.
fn unprocessed_keys_backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_factor(2.0)
        .with_max_delay(Duration::from_millis(800))
        .with_max_times(5)
        .with_jitter()
}

fn read_u64(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

fn record(shard: u32, item: &HashMap<String, AttributeValue>) -> LeaseRecord {
    LeaseRecord {
        shard,
        owner: match item.get("owner") {
            Some(AttributeValue::S(owner)) if !owner.is_empty() => Some(owner.clone()),
            _ => None,
        },
        counter: read_u64(item, "counter"),
        term: read_u64(item, "term"),
    }
}

fn conflict(shard: u32) -> StoreError {
    StoreError::ConditionFailed {
        name: format!("{LEASE_PREFIX}{shard}"),
    }
}

impl DynamoStore {
    /// One conditional lease update; a failed condition is `ConditionFailed`.
    async fn update_lease(
        &self,
        shard: u32,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<LeaseRecord, StoreError> {
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PARTITION_KEY, lease_key(shard))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#counter", "counter")
            .return_values(ReturnValue::AllNew);
        if update.contains("#owner") || condition.contains("#owner") {
            request = request.expression_attribute_names("#owner", "owner");
        }
        if update.contains("#term") {
            request = request.expression_attribute_names("#term", "term");
        }
        if update.contains("#kind") {
            request = request.expression_attribute_names("#kind", "kind");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(output) => Ok(record(
                shard,
                output.attributes().unwrap_or(&HashMap::new()),
            )),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(conflict(shard))
            }
            Err(error) => Err(store_error(self.table(), "UpdateItem", error)),
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn leases(&self, shards: u32) -> Result<Vec<LeaseRecord>, StoreError> {
        let mut found: HashMap<u32, LeaseRecord> = HashMap::new();
        let all: Vec<u32> = (0..shards).collect();
        for chunk in all.chunks(BATCH_GET_LIMIT) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|shard| HashMap::from([(PARTITION_KEY.to_string(), lease_key(*shard))]))
                .collect();
            // BatchGetItem may return some keys unprocessed (throttling): ask again for them,
            // after a delay (tokio's clock).
            let mut delays = unprocessed_keys_backoff().build();
            loop {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Other {
                        message: format!("cannot build the lease read: {e}"),
                    })?;
                let output = self
                    .client()
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(|e| store_error(self.table(), "BatchGetItem", e))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(self.table()))
                    .into_iter()
                    .flatten()
                {
                    if let Some(AttributeValue::S(pk)) = item.get(PARTITION_KEY)
                        && let Some(shard) =
                            pk.strip_prefix(LEASE_PREFIX).and_then(|s| s.parse().ok())
                    {
                        found.insert(shard, record(shard, item));
                    }
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(self.table()))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                let Some(delay) = delays.next() else {
                    return Err(StoreError::Unavailable {
                        message: format!(
                            "lease read: BatchGetItem left {} key(s) unprocessed after \
                             retrying with backoff (throttled)",
                            keys.len()
                        ),
                        throttled: true,
                    });
                };
                tokio::time::sleep(delay).await;
            }
        }
        Ok(all
            .into_iter()
            .map(|shard| {
                found.remove(&shard).unwrap_or(LeaseRecord {
                    shard,
                    owner: None,
                    counter: 0,
                    term: 0,
                })
            })
            .collect())
    }

    async fn renew_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        self.update_lease(
            shard,
            "SET #counter = :next",
            "#owner = :owner AND #counter = :expected",
            vec![
                (":next", number(expected_counter + 1)),
                (":owner", AttributeValue::S(owner.to_string())),
                (":expected", number(expected_counter)),
            ],
        )
        .await
    }

    async fn take_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        // A lease never written has counter 0: the item may not exist yet.
        let condition = if expected_counter == 0 {
            "attribute_not_exists(#counter) OR #counter = :expected"
        } else {
            "#counter = :expected"
        };
        self.update_lease(
            shard,
            "SET #counter = :next, #term = :next, #owner = :owner, #kind = :kind",
            condition,
            vec![
                (":next", number(expected_counter + 1)),
                (":owner", AttributeValue::S(owner.to_string())),
                (":expected", number(expected_counter)),
                (":kind", AttributeValue::S("lease".into())),
            ],
        )
        .await
    }

    async fn release_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<(), StoreError> {
        self.update_lease(
            shard,
            "SET #counter = :next REMOVE #owner",
            "#owner = :owner AND #counter = :expected",
            vec![
                (":next", number(expected_counter + 1)),
                (":owner", AttributeValue::S(owner.to_string())),
                (":expected", number(expected_counter)),
            ],
        )
        .await
        .map(|_| ())
    }
}
