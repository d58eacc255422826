//! Stream readers within AWS's advice, against moto: with 1, 3 and 5 replicas sharing 16
//! lease shards, at most two replicas read the release table's stream, and a spec write
//! reaches the feed of the replica that holds its release's shard, and no other (the readers
//! hand the others their names through the table's wake items). Each run prints its
//! latencies, write → owner, for BENCHMARKS.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use switchyard::aws::{DynamoStore, create_table};
use switchyard::lease::shard_of;
use switchyard::model::AuditAction;
use switchyard::model::parse::parse_documents;
use switchyard::ports::{HeldShards, ReleaseStore, SpecPrecondition, SpecWrite};
use tokio::time::Instant;

use crate::aws_adapters::RequestCounter;
use crate::harness::{ReleaseOptions, release_yaml};
use crate::moto::Moto;

const TABLE: &str = "switchyard-releases";
const SHARDS: u32 = 16;
/// A write that has not reached its owner within this long is lost (the latency itself, 2 s
/// at p99 as the goal, is a measurement printed for BENCHMARKS.md, not asserted: a loaded
/// machine slows moto down by seconds).
const DEADLINE: Duration = Duration::from_secs(15);
/// Releases written and measured per run.
const WRITES: usize = 24;

/// A replica's leases, fixed: shards spread round-robin over the replicas.
struct Fixed(BTreeSet<u32>);

impl HeldShards for Fixed {
    fn shards(&self) -> u32 {
        SHARDS
    }

    fn held_safely(&self) -> BTreeSet<u32> {
        self.0.clone()
    }
}

fn owner(name: &str, replicas: usize) -> usize {
    shard_of(name, SHARDS) as usize % replicas
}

fn spec_write(name: &str) -> SpecWrite {
    let yaml = release_yaml(name, &ReleaseOptions::default());
    let documents = parse_documents(&yaml).expect("a valid document");
    SpecWrite {
        name: name.into(),
        labels: BTreeMap::new(),
        spec: serde_json::to_value(&documents[0].spec).unwrap(),
        precondition: SpecPrecondition::Any,
        written_by: "arn:aws:iam::111122223333:user/alice".into(),
        written_at: Timestamp::now(),
        action: AuditAction::Apply,
        detail: String::new(),
    }
}

/// A name of a release whose shard `replica` of `replicas` holds.
fn name_owned_by(replica: usize, replicas: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| owner(name, replicas) == replica)
        .unwrap()
}

struct Run {
    /// Write → owner's feed, seconds, per write.
    latencies: Vec<f64>,
    /// Stream API requests per replica during the measured writes.
    stream_requests: Vec<usize>,
    measured: Duration,
}

async fn run(replicas: usize) -> Run {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let raw = aws_sdk_dynamodb::Client::new(&config);
    create_table(&raw, TABLE).await.expect("the table");
    let writer = DynamoStore::new(
        raw.clone(),
        aws_sdk_dynamodbstreams::Client::new(&config),
        TABLE,
    );
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut counters = Vec::new();
    let mut feeds = Vec::new();
    for replica in 0..replicas {
        let counter = RequestCounter::default();
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&config)
                .interceptor(counter.clone())
                .build(),
        );
        let store = DynamoStore::new(raw.clone(), streams, TABLE);
        let held = (0..SHARDS)
            .filter(|s| *s as usize % replicas == replica)
            .collect();
        let mut feed = store
            .replica_changes(Arc::new(Fixed(held)))
            .expect("DynamoDB has a change feed");
        let tx = seen_tx.clone();
        feeds.push(tokio::spawn(async move {
            while let Some(name) = feed.next().await {
                if tx.send((replica, name, Instant::now())).is_err() {
                    return;
                }
            }
        }));
        counters.push(counter);
    }

    // Every replica's feed is live once a write of one of its releases reaches it.
    let mut live = BTreeSet::new();
    let start = Instant::now();
    while live.len() < replicas {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "feeds live: {live:?}"
        );
        for replica in (0..replicas).filter(|r| !live.contains(r)) {
            let name = name_owned_by(replica, replicas, "warmup");
            writer.put_spec(spec_write(&name)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok((replica, _, _)) = seen.try_recv() {
            live.insert(replica);
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    while seen.try_recv().is_ok() {}

    let before: Vec<usize> = counters.iter().map(RequestCounter::count).collect();
    let measuring = Instant::now();
    let mut latencies = Vec::new();
    for i in 0..WRITES {
        let name = format!("svc-{i}");
        let written = Instant::now();
        writer.put_spec(spec_write(&name)).await.unwrap();
        let arrived = loop {
            let (replica, seen_name, at) = tokio::time::timeout_at(written + DEADLINE, seen.recv())
                .await
                .unwrap_or_else(|_| panic!("{name} did not reach its owner within {DEADLINE:?}"))
                .expect("the feeds run");
            if seen_name == name {
                assert_eq!(
                    replica,
                    owner(&name, replicas),
                    "{name} reached a replica that does not own it"
                );
                break at;
            }
        };
        latencies.push((arrived - written).as_secs_f64());
        // Writes at different phases of the readers' polls.
        tokio::time::sleep(Duration::from_millis(110 + 37 * (i as u64 % 7))).await;
    }
    let measured = measuring.elapsed();
    let stream_requests = counters
        .iter()
        .zip(&before)
        .map(|(c, b)| c.count() - b)
        .collect();
    for feed in feeds {
        feed.abort();
    }
    Run {
        latencies,
        stream_requests,
        measured,
    }
}

async fn check(replicas: usize) {
    let run = run(replicas).await;
    let readers = run.stream_requests.iter().filter(|n| **n > 0).count();
    let mut sorted = run.latencies.clone();
    sorted.sort_by(f64::total_cmp);
    // One line per run, for BENCHMARKS.md ("Stream readers").
    eprintln!(
        "{}",
        serde_json::json!({
            "replicas": replicas,
            "readers": readers,
            "stream_requests_per_second": run.stream_requests.iter().sum::<usize>() as f64 / run.measured.as_secs_f64(),
            "stream_requests_by_replica": run.stream_requests,
            "write_to_owner_s": {"p50": sorted[sorted.len() / 2], "max": sorted[sorted.len() - 1]},
        })
    );
    assert!(
        (1..=2).contains(&readers),
        "{readers} replicas read the stream: {:?}",
        run.stream_requests
    );
    // Replicas 0 and 1 hold the reader shards 0 and 1.
    for (replica, requests) in run.stream_requests.iter().enumerate().skip(2) {
        assert_eq!(*requests, 0, "replica {replica} read the stream");
    }
}

#[tokio::test]
async fn one_replica_reads_the_stream_and_gets_every_write() {
    check(1).await;
}

#[tokio::test]
async fn with_three_replicas_two_read_the_stream_and_every_write_reaches_its_owner() {
    check(3).await;
}

#[tokio::test]
async fn with_five_replicas_two_read_the_stream_and_every_write_reaches_its_owner() {
    check(5).await;
}
