//! The generator's round trip on real items, and the seed corpora (`fuzz/seeds/<target>/`).
//!
//! `cargo test --manifest-path fuzz/Cargo.toml` checks that the committed seeds are the ones
//! these tests make from the project's real documents; with `SWITCHYARD_WRITE_SEEDS=1` it
//! writes them instead.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use serde_json::{Value, json};
use switchyard::model::{AuditEntry, OperatorRequest, ReleaseStatus};

use super::*;

fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML documents of a file, split at its `---` lines, comments kept.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().unwrap();
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
    });
    documents
}

/// Every real release document of the project: the demo's (one of which, `inventory`, is
/// invalid on purpose) and the Terraform example's.
fn real_documents() -> Vec<(String, String)> {
    let mut documents = Vec::new();
    for (i, doc) in split_documents(&repo_file("src/demo_releases.yaml"))
        .into_iter()
        .enumerate()
    {
        documents.push((format!("demo-{i}"), doc));
    }
    documents.push((
        "terraform-example".to_owned(),
        repo_file("deploy/terraform/examples/complete/release.yaml"),
    ));
    documents
}

fn yaml_value(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("a real document is valid YAML")
}

/// A timestamp of the type the field has (jiff's, without a dependency on jiff here).
fn timestamp<T: std::str::FromStr<Err: std::fmt::Debug>>(text: &str) -> T {
    text.parse().unwrap()
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A release item as the store writes it (see the table layout in `src/aws/store.rs`): a spec
/// write (`apply`), a promote request, and a status from the middle of a canary rollout.
fn real_item(name: &str, spec: &Value, with_status: bool) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("pk".to_owned(), s(&format!("release#{name}")));
    item.insert("kind".to_owned(), s("release"));
    item.insert("name".to_owned(), s(name));
    item.insert("generation".to_owned(), n(2));
    let labels: BTreeMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
    item.insert("labels".to_owned(), to_attribute_value(&labels).unwrap());
    item.insert("spec".to_owned(), to_attribute_value(spec).unwrap());
    item.insert(
        "specUpdatedBy".to_owned(),
        s("arn:aws:iam::111122223333:user/alice"),
    );
    item.insert(
        "specUpdatedAt".to_owned(),
        // How serde_dynamo writes a jiff timestamp: an RFC 3339 string.
        s("2025-01-02T03:04:05Z"),
    );
    item.insert("statusVersion".to_owned(), n(0));
    let audit = [AuditEntry {
        at: timestamp("2025-01-02T03:04:05Z"),
        by: "arn:aws:iam::111122223333:user/alice".to_owned(),
        action: "apply".to_owned(),
        generation: 2,
        detail: "image web=public.ecr.aws/nginx/nginx:1.27".to_owned(),
    }];
    item.insert("audit".to_owned(), to_attribute_value(audit).unwrap());
    if with_status {
        let request = OperatorRequest {
            generation: 2,
            requested_by: "arn:aws:iam::111122223333:user/bob".to_owned(),
            requested_at: timestamp("2025-01-02T03:10:00Z"),
            full: false,
        };
        item.insert(
            "requestPromote".to_owned(),
            to_attribute_value(&request).unwrap(),
        );
        item.insert("statusVersion".to_owned(), n(7));
        item.insert(
            "status".to_owned(),
            to_attribute_value(real_status()).unwrap(),
        );
    }
    item
}

fn real_status() -> ReleaseStatus {
    serde_json::from_value(json!({
        "observedGeneration": 2,
        "phase": "AwaitingPromotion",
        "message": "deployment d-ABC123 waits for `switchyard promote`",
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "AwaitingPromotion",
             "message": "test traffic on the new version", "lastTransitionTime": "2025-01-02T03:06:00Z"},
            {"type": "Ready", "status": "False", "reason": "DeploymentInProgress",
             "message": "deploying", "lastTransitionTime": "2025-01-02T03:05:00Z"}
        ],
        "liveTaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4",
        "desiredTaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:5",
        "deploymentId": "d-ABC123",
        "trafficWeights": {"live": 100.0, "candidate": 0.0},
        "lifecycleEvent": "AfterAllowTestTraffic",
        "history": [
            {"generation": 1, "attempt": 1, "outcome": "Succeeded",
             "taskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4",
             "deploymentId": "d-XYZ", "startedAt": "2025-01-01T00:00:00Z",
             "finishedAt": "2025-01-01T00:10:00Z", "message": "deployed"}
        ],
        "resolvedFrom": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4",
        "attempt": 1,
        "intent": {"generation": 2, "attempt": 1,
                   "taskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:5",
                   "recordedAt": "2025-01-02T03:05:00Z"},
        "rolloutStartedAt": "2025-01-02T03:05:00Z",
        "previousTaskDefinition": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4",
        "handledRequests": {"retry": "2024-12-31T00:00:00Z"}
    }))
    .expect("the real status matches ReleaseStatus")
}

/// Every seed of every target: `(target, file name, bytes)`.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let demo = repo_file("src/demo_releases.yaml");
    seeds.push((
        "parse_documents",
        "demo-all.yaml".to_owned(),
        demo.clone().into_bytes(),
    ));
    let mut specs = Vec::new();
    let mut all_json = Vec::new();
    for (name, doc) in real_documents() {
        seeds.push((
            "parse_documents",
            format!("{name}.yaml"),
            doc.clone().into_bytes(),
        ));
        let value = yaml_value(&doc);
        let json = serde_json::to_string_pretty(&value).unwrap();
        seeds.push(("parse_documents", format!("{name}.json"), json.into_bytes()));
        let spec = value["spec"].clone();
        seeds.push((
            "parse_spec_value",
            format!("{name}.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        ));
        let release = value["metadata"]["name"].as_str().unwrap().to_owned();
        specs.push((name, release, spec));
        all_json.push(value);
    }
    seeds.push((
        "parse_documents",
        "demo-all.json".to_owned(),
        serde_json::to_vec_pretty(&all_json).unwrap(),
    ));
    for (name, release, spec) in &specs {
        seeds.push((
            "decode_item",
            format!("{name}-applied.bin"),
            encode_item(&real_item(release, spec, false)),
        ));
    }
    let (_, release, spec) = specs.last().unwrap();
    seeds.push((
        "decode_item",
        "terraform-example-rolling-out.bin".to_owned(),
        encode_item(&real_item(release, spec, true)),
    ));
    // The smallest item the store reads (as in the store's own unit tests).
    let minimal: HashMap<String, AttributeValue> = [
        ("pk", s("release#web")),
        ("kind", s("release")),
        ("name", s("web")),
        ("generation", n(3)),
        ("spec", AttributeValue::M(HashMap::new())),
        ("statusVersion", n(0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    seeds.push((
        "decode_item",
        "minimal.bin".to_owned(),
        encode_item(&minimal),
    ));
    seeds
}

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
}

#[test]
fn the_committed_seeds_are_current() {
    let write = std::env::var_os("SWITCHYARD_WRITE_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = seed_dir(target).join(&name);
        if write {
            std::fs::create_dir_all(seed_dir(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is missing or stale: run `SWITCHYARD_WRITE_SEEDS=1 cargo test \
                 --manifest-path fuzz/Cargo.toml`",
                path.display()
            );
        }
    }
}

#[test]
fn every_seed_passes_its_target() {
    for (target, name, bytes) in seeds() {
        match target {
            "parse_documents" => check_parse_documents(&bytes),
            "parse_spec_value" => check_parse_spec_value(&bytes),
            "decode_item" => check_decode_item(&bytes),
            other => panic!("unknown target {other} ({name})"),
        }
    }
}

#[test]
fn real_items_round_trip_through_the_generator() {
    for (_, release, spec) in real_documents().iter().map(|(name, doc)| {
        let value = yaml_value(doc);
        let release = value["metadata"]["name"].as_str().unwrap().to_owned();
        (name.clone(), release, value["spec"].clone())
    }) {
        for with_status in [false, true] {
            let item = real_item(&release, &spec, with_status);
            assert_eq!(item_from_bytes(&encode_item(&item)), item);
            let decoded = switchyard::aws::decode_item(item).expect("a real item decodes");
            assert_eq!(decoded.name, release);
            assert_eq!(decoded.spec, spec);
            assert_eq!(decoded.status.is_some(), with_status);
            assert_eq!(decoded.audit.len(), 1);
        }
    }
}

#[test]
fn odd_items_round_trip_through_the_generator() {
    let item: HashMap<String, AttributeValue> = [
        (
            "pk",
            AttributeValue::L(vec![n(1), AttributeValue::Null(true)]),
        ),
        ("name", AttributeValue::Bool(false)),
        (
            "custom",
            AttributeValue::Ns(vec!["1e400".to_owned(), "x".to_owned()]),
        ),
        ("labels", AttributeValue::Ss(vec!["a".repeat(300)])),
        (
            "spec",
            AttributeValue::Bs(vec![aws_sdk_dynamodb::primitives::Blob::new(vec![0xff, 0])]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(item_from_bytes(&encode_item(&item)), item);
}

#[test]
fn every_short_input_is_an_item_and_decodes_or_is_corrupt() {
    check_decode_item(&[]);
    for a in 0..=255u8 {
        for b in [0u8, 1, 4, 5, 0x85, 0xC1, 0xF0, 0xFF] {
            check_decode_item(&[a, b, a, b, a, b]);
            check_decode_item(&[0, 3, b'w', b'e', b'b', 0, 1, a, b]);
        }
    }
}
