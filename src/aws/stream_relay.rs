//! Stream readers within AWS's advice: at most two replicas read the release table's stream,
//! and hand the other replicas the names of their releases through the table.
//!
//! DynamoDB advises at most two readers per stream shard (more are throttled). With several
//! replicas, only the holders of the shard leases in [`READER_SHARDS`] read the stream: two
//! leases, so at most two replicas, whatever their number (one when there is one shard or one
//! replica). A reader wakes the releases of the shards it holds itself; for every other
//! release it writes the stream record's sequence number into the attribute `w#<name>` of the
//! item `wake#<shard>` (its shard's wake item, `SET` only: the two readers write the same
//! value for one record). Every replica that does not read polls the wake items of the shards
//! it holds every [`FOLLOWER_POLL`] (one BatchGetItem for up to 100 shards), wakes the names
//! it finds and removes them under the condition that they still hold the value it read, so
//! a newer write is never removed unseen. Readers poll theirs too, every
//! [`READER_POLL`], for what was relayed to them before they became readers.
//!
//! The failure modes (also in ARCHITECTURE.md, "Stream readers"): a relay write that fails,
//! or a wake item written for a shard whose lease is moving, is covered by the resync (and a
//! new owner's first pass over every release of a lease it takes); a name woken twice (by
//! the stream and a relay, or a removal that lost its condition) costs one pass that finds
//! nothing new. A reader that loses its reader lease stops reading at once (`held_safely`);
//! the next holder starts from LATEST, and the other reader covers the gap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use tokio::sync::mpsc;

use crate::lease::shard_of;

/// The shard leases whose holders read the stream.
pub const READER_SHARDS: [u32; 2] = [0, 1];
/// How often a replica that does not read the stream looks at its wake items: a write
/// reaches its owner within a reader's poll, a relay write and this.
pub const FOLLOWER_POLL: Duration = Duration::from_millis(500);
/// How often a reader looks at its wake items (names relayed to it before it read).
pub const READER_POLL: Duration = Duration::from_secs(5);
/// The key prefix of wake items, and the attribute prefix of a relayed name.
const WAKE_PREFIX: &str = "wake#";
const NAME_PREFIX: &str = "w#";
/// Keys per BatchGetItem (the API's maximum).
const KEYS_PER_BATCH: usize = 100;
/// Names removed per UpdateItem (the expression stays well under its 4 KB limit).
const NAMES_PER_REMOVAL: usize = 20;

/// Whether a replica holding `held` reads the stream.
pub fn is_stream_reader(held: &BTreeSet<u32>) -> bool {
    READER_SHARDS.iter().any(|shard| held.contains(shard))
}

/// Where a reader sends a changed release: its own feed, or the wake item of its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Local,
    Relay(u32),
}

pub fn route(name: &str, shards: u32, held: &BTreeSet<u32>) -> Route {
    let shard = shard_of(name, shards);
    if held.contains(&shard) {
        Route::Local
    } else {
        Route::Relay(shard)
    }
}

fn wake_key(shard: u32) -> HashMap<String, AttributeValue> {
    HashMap::from([(
        "pk".to_string(),
        AttributeValue::S(format!("{WAKE_PREFIX}{shard}")),
    )])
}

/// Hands `name`, changed by the stream record `sequence`, to the owner of `shard`.
pub async fn relay(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    shard: u32,
    name: &str,
    sequence: &str,
) {
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(wake_key(shard)))
        .update_expression("SET #w = :seq")
        .expression_attribute_names("#w", format!("{NAME_PREFIX}{name}"))
        .expression_attribute_values(":seq", AttributeValue::S(sequence.to_string()))
        .send()
        .await;
    if let Err(error) = result {
        // Best effort: the owner's resync picks the change up.
        tracing::warn!(table, shard, release = name, cause = ?aws_smithy_types::error::display::DisplayErrorContext(&error), "could not hand a change to its owner through the table");
    }
}

/// Wakes the names relayed to the shards in `held` and removes them from the wake items.
/// Returns false when the channel's receiver is gone.
pub async fn poll_wakes(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    held: &BTreeSet<u32>,
    sender: &mpsc::Sender<String>,
) -> bool {
    let shards: Vec<u32> = held.iter().copied().collect();
    for chunk in shards.chunks(KEYS_PER_BATCH) {
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(chunk.iter().map(|s| wake_key(*s)).collect()))
            .consistent_read(true)
            .build();
        let Ok(keys) = keys else { continue };
        let output = match dynamodb
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                tracing::debug!(table, cause = ?aws_smithy_types::error::display::DisplayErrorContext(&error), "reading the wake items failed");
                continue;
            }
        };
        let items = output
            .responses()
            .and_then(|r| r.get(table))
            .cloned()
            .unwrap_or_default();
        for item in items {
            let Some(AttributeValue::S(pk)) = item.get("pk") else {
                continue;
            };
            let relayed: BTreeMap<String, String> = item
                .iter()
                .filter_map(|(attribute, value)| {
                    let name = attribute.strip_prefix(NAME_PREFIX)?;
                    let AttributeValue::S(sequence) = value else {
                        return None;
                    };
                    Some((name.to_string(), sequence.clone()))
                })
                .collect();
            for name in relayed.keys() {
                tracing::debug!(release = %name, "relayed change picked up");
                if sender.send(name.clone()).await.is_err() {
                    return false;
                }
            }
            let relayed: Vec<(String, String)> = relayed.into_iter().collect();
            for batch in relayed.chunks(NAMES_PER_REMOVAL) {
                remove_woken(dynamodb, table, pk, batch).await;
            }
        }
    }
    true
}

/// Removes woken names from a wake item, unless a newer relay wrote one of them meanwhile
/// (then nothing is removed, and the next poll wakes them again).
async fn remove_woken(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    woken: &[(String, String)],
) {
    let mut request = dynamodb
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_string()));
    let mut removes = Vec::new();
    let mut conditions = Vec::new();
    for (index, (name, sequence)) in woken.iter().enumerate() {
        request = request
            .expression_attribute_names(format!("#w{index}"), format!("{NAME_PREFIX}{name}"))
            .expression_attribute_values(format!(":s{index}"), AttributeValue::S(sequence.clone()));
        removes.push(format!("#w{index}"));
        conditions.push(format!("#w{index} = :s{index}"));
    }
    let result = request
        .update_expression(format!("REMOVE {}", removes.join(", ")))
        .condition_expression(conditions.join(" AND "))
        .send()
        .await;
    if let Err(error) = result {
        tracing::debug!(table, item = pk, cause = ?aws_smithy_types::error::display::DisplayErrorContext(&error), "woken names not removed (a newer relay, or a failure): the next poll wakes them again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the replicas and however the shards are spread among them, at most two read.
    #[test]
    fn at_most_two_replicas_read_whatever_the_assignment() {
        for shards in [1u32, 2, 3, 16, 64] {
            for replicas in 1..=7usize {
                for offset in 0..replicas {
                    let mut held = vec![BTreeSet::new(); replicas];
                    for shard in 0..shards {
                        held[(shard as usize + offset) % replicas].insert(shard);
                    }
                    let readers = held.iter().filter(|h| is_stream_reader(h)).count();
                    assert!(readers <= 2, "{readers} readers");
                    assert!(readers >= 1, "nobody reads");
                    if shards == 1 || replicas == 1 {
                        assert_eq!(readers, 1);
                    }
                }
            }
        }
        assert!(!is_stream_reader(&BTreeSet::new()));
    }

    #[test]
    fn a_reader_wakes_its_own_releases_and_relays_the_others() {
        let shards = 16;
        let web = shard_of("web", shards);
        let held = BTreeSet::from([web]);
        assert_eq!(route("web", shards, &held), Route::Local);
        let other = (0..)
            .map(|i| format!("svc-{i}"))
            .find(|n| shard_of(n, shards) != web)
            .unwrap();
        assert_eq!(
            route(&other, shards, &held),
            Route::Relay(shard_of(&other, shards))
        );
    }
}
