//! The release table's DynamoDB stream as a feed of changed release names (a wake-up signal).
//!
//! A spawned consumer task reads every open shard of the table's stream and sends the names of
//! releases whose user-written part changed. It is best effort by design: the controller also
//! resyncs periodically, so the consumer favours never stopping over never missing a record.
//! It starts at LATEST (history before the controller started is covered by its first full
//! list), resumes after the last sequence number it saw, follows shard splits, backs off while
//! the stream or table is unreachable (a shard that fails backs off on its own while the
//! others are read), and ends only when the receiver is dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{
    AttributeValue, OperationType, Record, Shard, ShardIteratorType,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::sync::mpsc;

use super::stream_relay::{
    FOLLOWER_POLL, READER_POLL, Route, is_stream_reader, poll_wakes, relay, route,
};
use crate::ports::HeldShards;

/// Names waiting for the controller; a full channel pauses reading (nothing is dropped).
const CHANNEL_CAPACITY: usize = 1024;
/// How long the consumer waits between polls of an idle stream: a write wakes its release
/// well within a second.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The first delay after a failure; it doubles with each failure in a row up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the consumer looks for new shards (and a new stream) even when no shard closed:
/// DynamoDB may list a child shard only some time after its parent closed.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
/// How soon the consumer looks again at a stream that had no shard to read.
const EMPTY_STREAM_DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// Records per GetRecords call (the API's maximum).
const RECORDS_PER_CALL: i32 = 1000;

/// The key prefix of release items (see the table layout in `store.rs`).
const RELEASE_PREFIX: &str = "release#";
/// The attributes only the controller writes: a change to them alone wakes nobody.
const CONTROLLER_ATTRIBUTES: [&str; 2] = ["status", "statusVersion"];

/// The names of releases as they change in `table`, read from its DynamoDB stream by a
/// spawned task that runs until the returned stream is dropped. The stream never ends.
///
/// With `replica`, the feed of one replica among several: it reads the stream only while it
/// holds a reader lease (`stream_relay`), and takes the names of its releases from the
/// readers through the table otherwise.
pub fn stream_changes(
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    replica: Option<Arc<dyn HeldShards>>,
) -> BoxStream<'static, String> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let consumer = Consumer {
        dynamodb,
        streams,
        table,
        tracker: ShardTracker::default(),
        replica,
    };
    let task = async move {
        // Dropping the receiver ends the task at whatever call or sleep it is in.
        tokio::select! {
            _ = sender.closed() => {}
            _ = consumer.run(&sender) => {}
        }
    };
    let names = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|name| (name, receiver))
    });
    match tokio::runtime::Handle::try_current() {
        // Start finding the stream now rather than at the first poll, so the feed is live
        // as early as possible (it reads from LATEST once it has found the stream).
        Ok(runtime) => {
            runtime.spawn(task);
            names.boxed()
        }
        // Outside a runtime, start on the first poll (which is inside one).
        Err(_) => stream::once(async move {
            tokio::spawn(task);
            names
        })
        .flatten()
        .boxed(),
    }
}

/// The name of the release a stream record wakes, if any: `None` for items that are not
/// releases and for changes that touch only the controller's own status. A record without
/// both images (an insert, a removal, a stream without images) always wakes its release.
fn changed_release(record: &Record) -> Option<String> {
    let change = record.dynamodb()?;
    let name = match change.keys()?.get("pk")? {
        AttributeValue::S(pk) => pk.strip_prefix(RELEASE_PREFIX)?.to_string(),
        _ => return None,
    };
    let is_modify = record.event_name() == Some(&OperationType::Modify);
    if is_modify
        && let (Some(old), Some(new)) = (change.old_image(), change.new_image())
        && is_controller_only_change(old, new)
    {
        return None;
    }
    Some(name)
}

/// True when two images differ at most in the attributes the controller writes.
fn is_controller_only_change(
    old: &HashMap<String, AttributeValue>,
    new: &HashMap<String, AttributeValue>,
) -> bool {
    let user_part = |image: &HashMap<String, AttributeValue>| {
        image
            .iter()
            .filter(|(name, _)| !CONTROLLER_ATTRIBUTES.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<HashMap<_, _>>()
    };
    user_part(old) == user_part(new)
}

/// Where a shard's reading starts before any record of it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    /// Shards open when the consumer started: only what happens from now on.
    Latest,
    /// Shards that appeared later (children of a split): everything in them.
    TrimHorizon,
}

/// Which shard iterator to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IteratorPosition {
    Latest,
    TrimHorizon,
    AfterSequenceNumber(String),
}

impl IteratorPosition {
    fn iterator_type(&self) -> ShardIteratorType {
        match self {
            IteratorPosition::Latest => ShardIteratorType::Latest,
            IteratorPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
            IteratorPosition::AfterSequenceNumber(_) => ShardIteratorType::AfterSequenceNumber,
        }
    }

    fn sequence_number(&self) -> Option<String> {
        match self {
            IteratorPosition::AfterSequenceNumber(sequence) => Some(sequence.clone()),
            _ => None,
        }
    }
}

/// The reading position in one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardCursor {
    shard_id: String,
    start: StartAt,
    last_sequence_number: Option<String>,
    iterator: Option<String>,
    /// Transient failures of this shard in a row: it backs off on its own, and the other
    /// shards are read meanwhile.
    failures: u32,
    /// Not read again before this, after a transient failure.
    retry_at: Option<tokio::time::Instant>,
}

impl ShardCursor {
    fn new(shard_id: &str, start: StartAt) -> Self {
        Self {
            shard_id: shard_id.to_string(),
            start,
            last_sequence_number: None,
            iterator: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// The iterator to acquire: right after the last record seen, else where the shard
    /// started. A shard read from LATEST whose iterator expired before any record arrived
    /// starts at LATEST again; records in that gap are left to the periodic resync, which is
    /// cheaper than replaying a day of the shard's history.
    fn compute_iterator_position(&self) -> IteratorPosition {
        match (&self.last_sequence_number, self.start) {
            (Some(sequence), _) => IteratorPosition::AfterSequenceNumber(sequence.clone()),
            (None, StartAt::Latest) => IteratorPosition::Latest,
            (None, StartAt::TrimHorizon) => IteratorPosition::TrimHorizon,
        }
    }
}

/// A shard as DescribeStream lists it, reduced to what the tracker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardInfo {
    shard_id: String,
    /// A closed shard has an ending sequence number and receives no new records.
    is_open: bool,
}

impl ShardInfo {
    fn from_shard(shard: &Shard) -> Option<Self> {
        Some(Self {
            shard_id: shard.shard_id()?.to_string(),
            is_open: shard
                .sequence_number_range()
                .and_then(|range| range.ending_sequence_number())
                .is_none(),
        })
    }
}

/// Which shards of which stream the consumer reads, and where it is in each: the pure part
/// of following a stream through shard splits and stream changes.
#[derive(Debug, Default)]
struct ShardTracker {
    stream_arn: Option<String>,
    /// Every shard of the current stream ever listed, read or deliberately skipped.
    seen: BTreeSet<String>,
    cursors: Vec<ShardCursor>,
}

impl ShardTracker {
    /// Takes in a listing of the table's stream. A stream seen for the first time (at start,
    /// or after the stream was replaced) is read from LATEST in its open shards; its closed
    /// shards hold only history. On the known stream, every shard not seen before is a child
    /// of a split and is read from its beginning.
    /// Returns true when the stream is new to the tracker.
    fn apply_discovery(&mut self, stream_arn: &str, shards: &[ShardInfo]) -> bool {
        if self.stream_arn.as_deref() != Some(stream_arn) {
            self.stream_arn = Some(stream_arn.to_string());
            self.seen = shards.iter().map(|s| s.shard_id.clone()).collect();
            self.cursors = shards
                .iter()
                .filter(|s| s.is_open)
                .map(|s| ShardCursor::new(&s.shard_id, StartAt::Latest))
                .collect();
            return true;
        }
        for shard in shards {
            if self.seen.insert(shard.shard_id.clone()) {
                self.cursors
                    .push(ShardCursor::new(&shard.shard_id, StartAt::TrimHorizon));
            }
        }
        false
    }

    /// Forgets the stream: the next discovery starts over from LATEST.
    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// What the consumer does about a failed stream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamFailure {
    /// The shard iterator is older than 15 minutes: acquire a new one.
    ExpiredIterator,
    /// The position is older than the stream's 24-hour retention: start from the oldest record.
    Trimmed,
    /// The stream or table is gone (or not yet there): find the stream again.
    Gone,
    /// Throttling, a server error or the network: keep the position and back off.
    Transient,
}

fn classify_stream_failure(code: Option<&str>) -> StreamFailure {
    match code {
        Some("ExpiredIteratorException") => StreamFailure::ExpiredIterator,
        Some("TrimmedDataAccessException") => StreamFailure::Trimmed,
        Some("ResourceNotFoundException") => StreamFailure::Gone,
        _ => StreamFailure::Transient,
    }
}

/// The delay after `failures` failures in a row (at least one).
fn compute_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// The latest stream of the table, with its shards.
enum Discovery {
    Stream {
        stream_arn: String,
        shards: Vec<ShardInfo>,
    },
    /// The table has no enabled stream: nothing to read until someone enables one.
    NoStream,
}

/// Why one step of the consumer failed.
struct StepError {
    failure: StreamFailure,
    message: String,
}

impl StepError {
    fn from_sdk<E: ProvideErrorMetadata + std::fmt::Debug>(operation: &str, error: E) -> Self {
        Self {
            failure: classify_stream_failure(error.code()),
            message: format!(
                "{operation}: {}",
                error
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{error:?}"))
            ),
        }
    }
}

/// What one round over the shards achieved.
#[derive(Debug, Default)]
struct RoundOutcome {
    /// Some shard returned records: poll again at once, there may be more.
    read_records: bool,
    /// Some shard closed: look for the shards that follow it.
    shard_closed: bool,
}

struct Consumer {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    tracker: ShardTracker,
    /// The replica's leases, when it shares the releases with others.
    replica: Option<Arc<dyn HeldShards>>,
}

impl Consumer {
    /// Reads the stream forever (the caller stops it by dropping this future).
    async fn run(mut self, sender: &mpsc::Sender<String>) {
        // Discovery (DescribeTable, DescribeStream) and reading back off separately: a table
        // that cannot be described for a while must not stop the reading of known shards.
        let mut discovery_failures: u32 = 0;
        let mut read_failures: u32 = 0;
        let mut warned_no_stream = false;
        let mut next_discovery = tokio::time::Instant::now();
        let mut next_wake_poll = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if let Some(replica) = &self.replica {
                let held = replica.held_safely();
                if !is_stream_reader(&held) {
                    if self.tracker.stream_arn.is_some() {
                        tracing::debug!(table = %self.table, "no longer a reader of the release table's stream: other replicas hand this one its changes");
                        self.tracker.reset();
                    }
                    if !poll_wakes(&self.dynamodb, &self.table, &held, sender).await {
                        return;
                    }
                    tokio::time::sleep(FOLLOWER_POLL).await;
                    continue;
                }
                if now >= next_wake_poll {
                    if !poll_wakes(&self.dynamodb, &self.table, &held, sender).await {
                        return;
                    }
                    next_wake_poll = now + READER_POLL;
                }
            }
            if self.tracker.stream_arn.is_none() || now >= next_discovery {
                match self.discover().await {
                    Ok(Discovery::Stream { stream_arn, shards }) => {
                        if self.tracker.apply_discovery(&stream_arn, &shards) {
                            tracing::debug!(table = %self.table, stream = %stream_arn, shards = self.tracker.cursors.len(), "reading the release table's stream from now on");
                        }
                        if discovery_failures > 0 {
                            tracing::info!(table = %self.table, "found the release table's stream again");
                        }
                        discovery_failures = 0;
                        warned_no_stream = false;
                        // A stream without open shards (still enabling, or a split whose
                        // children are not listed yet) is looked at again soon.
                        next_discovery = if self.tracker.cursors.is_empty() {
                            now + EMPTY_STREAM_DISCOVERY_INTERVAL
                        } else {
                            now + DISCOVERY_INTERVAL
                        };
                    }
                    Ok(Discovery::NoStream) => {
                        if !warned_no_stream {
                            tracing::warn!(table = %self.table, "the release table has no enabled stream; changes are picked up only by the periodic resync");
                            warned_no_stream = true;
                        }
                        self.tracker.reset();
                        tokio::time::sleep(MAX_BACKOFF).await;
                        continue;
                    }
                    Err(error) => {
                        discovery_failures += 1;
                        self.log_failure(discovery_failures, &error);
                        if error.failure == StreamFailure::Gone {
                            self.tracker.reset();
                        }
                        let delay = compute_backoff(discovery_failures);
                        next_discovery = now + delay;
                        if self.tracker.cursors.is_empty() {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                }
            }
            match self.read_round(sender).await {
                Ok(outcome) => {
                    if read_failures > 0 {
                        tracing::info!(table = %self.table, "reading the release table's stream again");
                        read_failures = 0;
                    }
                    if outcome.shard_closed {
                        next_discovery = tokio::time::Instant::now();
                    }
                    if !outcome.read_records {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                Err(error) => {
                    read_failures += 1;
                    self.log_failure(read_failures, &error);
                    tokio::time::sleep(compute_backoff(read_failures)).await;
                }
            }
        }
    }

    /// Warns on the first failure of a streak only, so an outage logs once, not every 5 s.
    fn log_failure(&self, failures: u32, error: &StepError) {
        if failures == 1 {
            tracing::warn!(table = %self.table, cause = %error.message, "the release table's stream is unreachable; retrying with backoff");
        } else {
            tracing::debug!(table = %self.table, cause = %error.message, failures, "the release table's stream is still unreachable");
        }
    }

    /// Finds the table's latest stream and lists its shards.
    async fn discover(&self) -> Result<Discovery, StepError> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("DescribeTable", e))?;
        let description = table.table();
        let enabled = description
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        let Some(stream_arn) = description.and_then(|t| t.latest_stream_arn()) else {
            return Ok(Discovery::NoStream);
        };
        if !enabled {
            return Ok(Discovery::NoStream);
        }
        let mut shards = Vec::new();
        let mut start_after: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start_after.take())
                .send()
                .await
                .map_err(|e| StepError::from_sdk("DescribeStream", e))?;
            let Some(description) = output.stream_description() else {
                break;
            };
            shards.extend(
                description
                    .shards()
                    .iter()
                    .filter_map(ShardInfo::from_shard),
            );
            match description.last_evaluated_shard_id() {
                Some(last) => start_after = Some(last.to_string()),
                None => break,
            }
        }
        Ok(Discovery::Stream {
            stream_arn: stream_arn.to_string(),
            shards,
        })
    }

    /// Polls every shard once and sends the names of changed releases. A shard that fails
    /// for a transient reason (throttling, a server error, the network) backs off on its
    /// own, keeping its iterator and position, while the round goes on with the others: one
    /// unhealthy shard never deafens the consumer to the rest of the table. Only a stream
    /// that is gone ends the round with an error (the table is described again).
    async fn read_round(
        &mut self,
        sender: &mpsc::Sender<String>,
    ) -> Result<RoundOutcome, StepError> {
        let mut outcome = RoundOutcome::default();
        let Some(stream_arn) = self.tracker.stream_arn.clone() else {
            return Ok(outcome);
        };
        let now = tokio::time::Instant::now();
        let held = self
            .replica
            .as_ref()
            .map(|replica| (replica.shards(), replica.held_safely()));
        let mut index = 0;
        while index < self.tracker.cursors.len() {
            let cursor = &mut self.tracker.cursors[index];
            if cursor.retry_at.is_some_and(|at| now < at) {
                index += 1;
                continue;
            }
            match read_shard(&self.streams, &stream_arn, cursor).await {
                Ok(read) => {
                    if cursor.failures > 0 {
                        tracing::info!(table = %self.table, shard = %cursor.shard_id, "reading the stream shard again");
                    }
                    cursor.failures = 0;
                    cursor.retry_at = None;
                    outcome.read_records |= read.record_count > 0;
                    for (name, sequence) in read.changes {
                        let to = match &held {
                            Some((shards, held)) => route(&name, *shards, held),
                            None => Route::Local,
                        };
                        match to {
                            Route::Local => {
                                tracing::debug!(release = %name, "stream change read");
                                if sender.send(name).await.is_err() {
                                    // The receiver is gone; the select in `stream_changes`
                                    // ends us.
                                    return Ok(outcome);
                                }
                            }
                            Route::Relay(shard) => {
                                tracing::debug!(release = %name, shard, "stream change read; relaying it to its owner");
                                relay(&self.dynamodb, &self.table, shard, &name, &sequence).await
                            }
                        }
                    }
                    if read.closed {
                        // A closed shard was split, or its stream was disabled: look for
                        // what follows it.
                        self.tracker.cursors.remove(index);
                        outcome.shard_closed = true;
                        continue;
                    }
                }
                Err(error) => match error.failure {
                    // Both only need a new iterator, which the next round acquires.
                    StreamFailure::ExpiredIterator => cursor.iterator = None,
                    StreamFailure::Trimmed => {
                        cursor.iterator = None;
                        cursor.last_sequence_number = None;
                        cursor.start = StartAt::TrimHorizon;
                    }
                    StreamFailure::Gone => {
                        // The stream went away under us: start over from the table.
                        self.tracker.reset();
                        return Err(error);
                    }
                    StreamFailure::Transient => {
                        cursor.failures += 1;
                        cursor.retry_at = Some(now + compute_backoff(cursor.failures));
                        if cursor.failures == 1 {
                            tracing::warn!(table = %self.table, shard = %cursor.shard_id, cause = %error.message, "a stream shard is unreachable; retrying it with backoff while the others are read");
                        } else {
                            tracing::debug!(table = %self.table, shard = %cursor.shard_id, cause = %error.message, failures = cursor.failures, "a stream shard is still unreachable");
                        }
                    }
                },
            }
            index += 1;
        }
        Ok(outcome)
    }
}

/// What one GetRecords on a shard yielded.
struct ShardRead {
    /// Records read, including those that wake nobody (a full batch means more may follow).
    record_count: usize,
    /// Changed releases, each once, in the order of their first record, with the sequence
    /// number of their last record.
    changes: Vec<(String, String)>,
    /// The shard is closed and fully read.
    closed: bool,
}

/// Reads one batch from a shard, acquiring an iterator first if the cursor has none, and
/// advances the cursor.
async fn read_shard(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    cursor: &mut ShardCursor,
) -> Result<ShardRead, StepError> {
    let iterator = match cursor.iterator.take() {
        Some(iterator) => iterator,
        None => {
            let position = cursor.compute_iterator_position();
            let output = streams
                .get_shard_iterator()
                .stream_arn(stream_arn)
                .shard_id(&cursor.shard_id)
                .shard_iterator_type(position.iterator_type())
                .set_sequence_number(position.sequence_number())
                .send()
                .await
                .map_err(|e| StepError::from_sdk("GetShardIterator", e))?;
            match output.shard_iterator {
                Some(iterator) => iterator,
                // No iterator: the shard has nothing more to read.
                None => {
                    return Ok(ShardRead {
                        record_count: 0,
                        changes: Vec::new(),
                        closed: true,
                    });
                }
            }
        }
    };
    let output = match streams
        .get_records()
        .shard_iterator(&iterator)
        .limit(RECORDS_PER_CALL)
        .send()
        .await
    {
        Ok(output) => output,
        Err(error) => {
            let error = StepError::from_sdk("GetRecords", error);
            // A throttled or failed call can be repeated with the same iterator.
            if error.failure == StreamFailure::Transient {
                cursor.iterator = Some(iterator);
            }
            return Err(error);
        }
    };
    let mut changes: Vec<(String, String)> = Vec::new();
    for record in output.records() {
        let sequence = record.dynamodb().and_then(|d| d.sequence_number());
        if let Some(sequence) = sequence {
            cursor.last_sequence_number = Some(sequence.to_string());
        }
        if let Some(name) = changed_release(record) {
            let sequence = sequence.unwrap_or_default().to_string();
            match changes.iter_mut().find(|(known, _)| *known == name) {
                Some(change) => change.1 = sequence,
                None => changes.push((name, sequence)),
            }
        }
    }
    let record_count = output.records().len();
    cursor.iterator = output.next_shard_iterator;
    Ok(ShardRead {
        record_count,
        changes,
        closed: cursor.iterator.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::StreamRecord;

    fn image(entries: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    fn record(
        event: OperationType,
        pk: &str,
        old: Option<HashMap<String, AttributeValue>>,
        new: Option<HashMap<String, AttributeValue>>,
    ) -> Record {
        let change = StreamRecord::builder()
            .keys("pk", AttributeValue::S(pk.to_string()))
            .sequence_number("100")
            .set_old_image(old)
            .set_new_image(new)
            .build();
        Record::builder().event_name(event).dynamodb(change).build()
    }

    #[test]
    fn a_spec_change_wakes_its_release() {
        let old = image(&[("spec", "a"), ("status", "x")]);
        let new = image(&[("spec", "b"), ("status", "x")]);
        let r = record(OperationType::Modify, "release#web", Some(old), Some(new));
        assert_eq!(changed_release(&r), Some("web".to_string()));
    }

    #[test]
    fn a_status_only_change_wakes_nobody() {
        let old = image(&[("spec", "a"), ("status", "x"), ("statusVersion", "1")]);
        let new = image(&[("spec", "a"), ("status", "y"), ("statusVersion", "2")]);
        let r = record(OperationType::Modify, "release#web", Some(old), Some(new));
        assert_eq!(changed_release(&r), None);
    }

    #[test]
    fn a_first_status_write_adding_the_attribute_wakes_nobody() {
        let old = image(&[("spec", "a")]);
        let new = image(&[("spec", "a"), ("status", "y")]);
        let r = record(OperationType::Modify, "release#web", Some(old), Some(new));
        assert_eq!(changed_release(&r), None);
    }

    #[test]
    fn inserts_removals_and_records_without_images_wake_their_release() {
        let new = image(&[("spec", "a")]);
        let insert = record(
            OperationType::Insert,
            "release#web",
            None,
            Some(new.clone()),
        );
        let remove = record(OperationType::Remove, "release#web", Some(new), None);
        let keys_only = record(OperationType::Modify, "release#web", None, None);
        for r in [insert, remove, keys_only] {
            assert_eq!(changed_release(&r), Some("web".to_string()));
        }
    }

    #[test]
    fn items_that_are_not_releases_are_ignored() {
        let r = record(OperationType::Insert, "lease#web", None, Some(image(&[])));
        assert_eq!(changed_release(&r), None);
        let no_change = Record::builder().event_name(OperationType::Insert).build();
        assert_eq!(changed_release(&no_change), None);
    }

    #[test]
    fn the_iterator_resumes_after_the_last_record_seen() {
        let mut cursor = ShardCursor::new("s1", StartAt::Latest);
        assert_eq!(cursor.compute_iterator_position(), IteratorPosition::Latest);
        cursor.last_sequence_number = Some("42".into());
        assert_eq!(
            cursor.compute_iterator_position(),
            IteratorPosition::AfterSequenceNumber("42".into())
        );
        let child = ShardCursor::new("s2", StartAt::TrimHorizon);
        assert_eq!(
            child.compute_iterator_position(),
            IteratorPosition::TrimHorizon
        );
    }

    fn shard(id: &str, is_open: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.to_string(),
            is_open,
        }
    }

    fn followed(tracker: &ShardTracker) -> Vec<(&str, StartAt)> {
        tracker
            .cursors
            .iter()
            .map(|c| (c.shard_id.as_str(), c.start))
            .collect()
    }

    #[test]
    fn at_start_only_open_shards_are_read_from_latest() {
        let mut tracker = ShardTracker::default();
        tracker.apply_discovery("arn1", &[shard("old", false), shard("s1", true)]);
        assert_eq!(followed(&tracker), vec![("s1", StartAt::Latest)]);
    }

    #[test]
    fn children_of_a_split_are_read_from_their_beginning_and_old_shards_stay_skipped() {
        let mut tracker = ShardTracker::default();
        tracker.apply_discovery("arn1", &[shard("old", false), shard("s1", true)]);
        tracker.cursors.clear(); // s1 closed and was read to its end
        tracker.apply_discovery(
            "arn1",
            &[
                shard("old", false),
                shard("s1", false),
                shard("s2", true),
                shard("s3", true),
            ],
        );
        assert_eq!(
            followed(&tracker),
            vec![("s2", StartAt::TrimHorizon), ("s3", StartAt::TrimHorizon)]
        );
        // Listing the same shards again adds nothing.
        tracker.apply_discovery("arn1", &[shard("s2", true), shard("s3", true)]);
        assert_eq!(tracker.cursors.len(), 2);
    }

    #[test]
    fn a_new_stream_starts_over_from_latest() {
        let mut tracker = ShardTracker::default();
        assert!(tracker.apply_discovery("arn1", &[shard("s1", true)]));
        tracker.cursors[0].last_sequence_number = Some("7".into());
        assert!(!tracker.apply_discovery("arn1", &[shard("s1", true)]));
        assert!(tracker.apply_discovery("arn2", &[shard("t1", true)]));
        assert_eq!(followed(&tracker), vec![("t1", StartAt::Latest)]);
        assert_eq!(tracker.cursors[0].last_sequence_number, None);
    }

    #[test]
    fn failures_are_classified_by_code() {
        assert_eq!(
            classify_stream_failure(Some("ExpiredIteratorException")),
            StreamFailure::ExpiredIterator
        );
        assert_eq!(
            classify_stream_failure(Some("TrimmedDataAccessException")),
            StreamFailure::Trimmed
        );
        assert_eq!(
            classify_stream_failure(Some("ResourceNotFoundException")),
            StreamFailure::Gone
        );
        assert_eq!(
            classify_stream_failure(Some("LimitExceededException")),
            StreamFailure::Transient
        );
        assert_eq!(classify_stream_failure(None), StreamFailure::Transient);
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert_eq!(compute_backoff(1), Duration::from_millis(500));
        assert_eq!(compute_backoff(2), Duration::from_secs(1));
        assert_eq!(compute_backoff(4), Duration::from_secs(4));
        assert_eq!(compute_backoff(5), MAX_BACKOFF);
        assert_eq!(compute_backoff(u32::MAX), MAX_BACKOFF);
    }

    /// One shard of two failing: the other shard's records are still delivered, and the
    /// failing one backs off on its own (not asked again at once) keeping its iterator.
    #[tokio::test(start_paused = true)]
    async fn a_failing_shard_backs_off_alone_and_the_round_reads_the_others() {
        use aws_sdk_dynamodbstreams::Client;
        use aws_sdk_dynamodbstreams::operation::get_records::{GetRecordsError, GetRecordsOutput};
        use aws_sdk_dynamodbstreams::types::error::InternalServerError;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let failing = mock!(Client::get_records)
            .match_requests(|r| r.shard_iterator() == Some("it-a"))
            .then_error(|| {
                GetRecordsError::InternalServerError(
                    InternalServerError::builder().message("boom").build(),
                )
            });
        let healthy = mock!(Client::get_records)
            .match_requests(|r| r.shard_iterator() == Some("it-b"))
            .then_output(|| {
                GetRecordsOutput::builder()
                    .records(record(OperationType::Insert, "release#web", None, None))
                    .next_shard_iterator("it-b")
                    .build()
            });
        let streams = mock_client!(
            aws_sdk_dynamodbstreams,
            RuleMode::MatchAny,
            [&failing, &healthy],
            |c| c.retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        );
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        );
        let mut tracker = ShardTracker::default();
        tracker.apply_discovery("arn:stream", &[shard("a", true), shard("b", true)]);
        for (cursor, iterator) in tracker.cursors.iter_mut().zip(["it-a", "it-b"]) {
            cursor.iterator = Some(iterator.to_string());
        }
        let mut consumer = Consumer {
            dynamodb,
            streams,
            table: "releases".into(),
            tracker,
            replica: None,
        };
        let (sender, mut receiver) = mpsc::channel(8);

        let outcome = consumer
            .read_round(&sender)
            .await
            .ok()
            .expect("the round goes on");
        assert!(outcome.read_records);
        assert_eq!(receiver.try_recv().ok().as_deref(), Some("web"));
        let a = &consumer.tracker.cursors[0];
        assert_eq!((a.failures, a.iterator.as_deref()), (1, Some("it-a")));

        // At once again: shard a waits out its backoff, shard b is read.
        consumer
            .read_round(&sender)
            .await
            .ok()
            .expect("the round goes on");
        assert_eq!((failing.num_calls(), healthy.num_calls()), (1, 2));
        // After the backoff, shard a is asked again.
        tokio::time::advance(FIRST_BACKOFF).await;
        consumer
            .read_round(&sender)
            .await
            .ok()
            .expect("the round goes on");
        assert_eq!((failing.num_calls(), healthy.num_calls()), (2, 3));
        assert_eq!(consumer.tracker.cursors[0].failures, 2);
    }
}
