//! The DynamoDB release store and its stream against moto, with the behavioural checks shared
//! with the simulated store; the lease read against a throttled table with aws-smithy-mocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use switchyard::aws::{DynamoStore, TableCreated, create_table};
use switchyard::clock::Clock;
use switchyard::model::parse::parse_documents;
use switchyard::model::{
    AUDIT_DETAIL_MAX_CHARS, AUDIT_LIMIT, AuditAction, AuditEntry, Condition, ConditionStatus,
    ConditionType, HistoryEntry, OperatorRequest, Outcome, Phase, Reason, ReleaseStatus,
    RequestKind, TrafficWeights,
};
use switchyard::ports::{LeaseStore, ReleaseStore, SpecPrecondition, SpecWrite, StoreError};
use switchyard::sim::SimStore;
use tokio::time::Instant;

use crate::harness::{ReleaseOptions, release_yaml};
use crate::moto::Moto;

const TABLE: &str = "switchyard-releases";

/// How long a write may take to arrive on the change feed.
const CHANGE_DEADLINE: Duration = Duration::from_secs(2);

/// A DynamoDB store on a fresh moto server with the table created, plus a raw client for
/// writing items the store never would.
struct DynamoFixture {
    store: DynamoStore,
    raw: aws_sdk_dynamodb::Client,
    _moto: Moto,
}

async fn dynamo() -> DynamoFixture {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let raw = aws_sdk_dynamodb::Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    create_table(&raw, TABLE)
        .await
        .expect("the table is created");
    DynamoFixture {
        store: DynamoStore::new(raw.clone(), streams, TABLE),
        raw,
        _moto: moto,
    }
}

fn sim() -> SimStore {
    SimStore::new(Clock::system())
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid timestamp")
}

/// A realistic spec: the document `apply` would store, parsed and validated first.
fn spec_of(name: &str, tag: &str) -> serde_json::Value {
    let options = ReleaseOptions {
        image_tag: tag.into(),
        manual: true,
        alarms: vec![format!("{name}-5xx")],
        ..ReleaseOptions::default()
    };
    let documents = parse_documents(&release_yaml(name, &options)).expect("a valid document");
    serde_json::to_value(&documents[0].spec).expect("the spec serializes")
}

fn write(name: &str, tag: &str, precondition: SpecPrecondition) -> SpecWrite {
    SpecWrite {
        name: name.into(),
        labels: BTreeMap::from([("team".to_string(), "storefront".to_string())]),
        spec: spec_of(name, tag),
        precondition,
        written_by: "arn:aws:iam::111122223333:user/alice".into(),
        written_at: at("2025-03-04T05:06:07.123Z"),
        action: AuditAction::Apply,
        detail: "test".into(),
    }
}

fn request(generation: u64) -> OperatorRequest {
    OperatorRequest {
        generation,
        requested_by: "arn:aws:iam::111122223333:user/bob".into(),
        requested_at: at("2025-03-04T06:00:00Z"),
        full: false,
    }
}

/// A status with every part filled in, so a round trip loses nothing unnoticed.
fn status(observed_generation: u64, message: &str) -> ReleaseStatus {
    ReleaseStatus {
        observed_generation,
        phase: Phase::Progressing,
        message: message.into(),
        conditions: vec![Condition {
            kind: ConditionType::Progressing,
            status: ConditionStatus::True,
            reason: Reason::DeploymentInProgress,
            message: "deployment d-1 is shifting traffic".into(),
            last_transition_time: at("2025-03-04T05:10:00Z"),
        }],
        live_task_definition: Some(
            "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7".into(),
        ),
        deployment_id: Some("d-1".into()),
        traffic_weights: Some(TrafficWeights {
            live: 90.0,
            candidate: 10.5,
        }),
        history: vec![HistoryEntry {
            generation: observed_generation,
            rollout: 1,
            outcome: Outcome::RolledBack,
            task_definition: None,
            deployment_id: Some("d-0".into()),
            started_at: None,
            finished_at: at("2025-03-04T05:00:00Z"),
            message: "alarm web-5xx fired".into(),
        }],
        rollout: Some(switchyard::model::Rollout {
            serial: 2,
            candidate: "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4".into(),
            fingerprint: "0123456789abcdef0123456789abcdef".into(),
            target: "codeDeploy:web/web-prod:/prod/web".into(),
            live: Some("arn:aws:ecs:us-east-1:111122223333:task-definition/web:3".into()),
            generation: observed_generation,
            started_at: at("2025-03-04T04:00:00Z"),
            outcome: None,
        }),
        strategy: Some(switchyard::model::StrategyStatus::CodeDeploy(
            switchyard::model::CodeDeployStatus {
                lifecycle_event: Some("AllowTraffic".into()),
                creating_since: None,
                stop: Some(switchyard::model::StopRecord {
                    deployment_id: "d-0".into(),
                    reason: "alarm web-5xx is in ALARM".into(),
                    requested_at: at("2025-03-04T04:30:00Z"),
                    sent: true,
                    superseded: false,
                }),
            },
        )),
        ..ReleaseStatus::default()
    }
}

fn assert_condition_failed(result: Result<u64, StoreError>, what: &str) {
    match result {
        Err(StoreError::ConditionFailed { .. }) => {}
        other => panic!("{what}: expected ConditionFailed, got {other:?}"),
    }
}

// Behaviour shared by every store: each check runs against the simulation and against
// DynamoDB (moto), so the two cannot drift apart.

async fn check_spec_preconditions(store: &dyn ReleaseStore) {
    assert_eq!(
        store
            .put_spec(write("web", "1", SpecPrecondition::Absent))
            .await,
        Ok(1)
    );
    assert_condition_failed(
        store
            .put_spec(write("web", "1", SpecPrecondition::Absent))
            .await,
        "Absent on an existing release",
    );
    assert_eq!(
        store
            .put_spec(write("web", "2", SpecPrecondition::Generation(1)))
            .await,
        Ok(2)
    );
    assert_condition_failed(
        store
            .put_spec(write("web", "3", SpecPrecondition::Generation(1)))
            .await,
        "a stale generation",
    );
    assert_eq!(
        store
            .put_spec(write("web", "3", SpecPrecondition::Any))
            .await,
        Ok(3)
    );
    assert_condition_failed(
        store
            .put_spec(write("api", "1", SpecPrecondition::Generation(1)))
            .await,
        "a generation of a missing release",
    );
    assert_eq!(
        store
            .put_spec(write("api", "1", SpecPrecondition::Any))
            .await,
        Ok(1)
    );

    let web = store.get("web").await.unwrap().expect("web exists");
    let expected = write("web", "3", SpecPrecondition::Any);
    assert_eq!(web.name, "web");
    assert_eq!(web.generation, 3);
    assert_eq!(
        web.spec, expected.spec,
        "the spec comes back exactly as written"
    );
    assert_eq!(web.labels, expected.labels);
    assert_eq!(
        web.spec_updated_by.as_deref(),
        Some(expected.written_by.as_str())
    );
    assert_eq!(web.spec_updated_at, Some(expected.written_at));
    assert_eq!(web.status, None);
    assert_eq!(web.status_version, 0);
    assert_eq!(store.get("nope").await, Ok(None));
}

async fn check_requests(store: &dyn ReleaseStore) {
    store
        .put_spec(write("web", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    store
        .put_request("web", RequestKind::Promote, request(1))
        .await
        .unwrap();
    store
        .put_request("web", RequestKind::Retry, request(1))
        .await
        .unwrap();
    let web = store.get("web").await.unwrap().unwrap();
    assert_eq!(web.generation, 1, "a request never bumps the generation");
    assert_eq!(web.requests.promote, Some(request(1)));
    assert_eq!(web.requests.retry, Some(request(1)));
    assert_eq!(web.requests.abort, None);

    // A spec write keeps the requests (they name the generation they apply to).
    store
        .put_spec(write("web", "2", SpecPrecondition::Generation(1)))
        .await
        .unwrap();
    let web = store.get("web").await.unwrap().unwrap();
    assert_eq!(web.requests.promote, Some(request(1)));

    assert_eq!(
        store
            .put_request("missing", RequestKind::Abort, request(1))
            .await,
        Err(StoreError::NotFound {
            name: "missing".into()
        })
    );
    assert_eq!(
        store.get("missing").await,
        Ok(None),
        "a request creates nothing"
    );
}

async fn check_status_conditions(store: &dyn ReleaseStore) {
    store
        .put_spec(write("web", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    let first = status(1, "first");
    assert_eq!(store.write_status("web", &first, 0, None).await, Ok(1));
    assert_condition_failed(
        store
            .write_status("web", &status(1, "again"), 0, None)
            .await,
        "a stale status version",
    );
    let web = store.get("web").await.unwrap().unwrap();
    assert_eq!(
        web.status.as_ref(),
        Some(&first),
        "the status comes back exactly"
    );
    assert_eq!(web.status_version, 1);
    assert_eq!(
        web.spec,
        spec_of("web", "1"),
        "a status write never touches the spec"
    );
    assert_eq!(web.generation, 1);

    // The spec moves on: a status decided for generation 1 no longer applies.
    store
        .put_spec(write("web", "2", SpecPrecondition::Generation(1)))
        .await
        .unwrap();
    assert_condition_failed(
        store.write_status("web", &status(1, "late"), 1, None).await,
        "a status for an old generation",
    );
    let web = store.get("web").await.unwrap().unwrap();
    assert_eq!(
        web.status.as_ref(),
        Some(&first),
        "a spec write never touches the status"
    );
    assert_eq!(web.status_version, 1);

    assert_eq!(
        store
            .write_status("web", &status(2, "second"), 1, None)
            .await,
        Ok(2)
    );
    assert_eq!(
        store
            .write_status("missing", &status(1, "x"), 0, None)
            .await,
        Err(StoreError::NotFound {
            name: "missing".into()
        })
    );
}

async fn check_list_and_delete(store: &dyn ReleaseStore) {
    for name in ["orders", "api", "web"] {
        store
            .put_spec(write(name, "1", SpecPrecondition::Absent))
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["api", "orders", "web"], "sorted by name");

    store.delete("orders").await.unwrap();
    assert_eq!(store.get("orders").await, Ok(None));
    store
        .delete("orders")
        .await
        .expect("deleting a missing release is no error");
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["api", "web"]);

    // A deleted release starts again at generation 1.
    assert_eq!(
        store
            .put_spec(write("orders", "2", SpecPrecondition::Absent))
            .await,
        Ok(1)
    );
}

#[tokio::test]
async fn spec_writes_follow_their_preconditions_in_the_simulation() {
    check_spec_preconditions(&sim()).await;
}

#[tokio::test]
async fn spec_writes_follow_their_preconditions_in_dynamodb() {
    check_spec_preconditions(&dynamo().await.store).await;
}

#[tokio::test]
async fn requests_never_bump_the_generation_in_the_simulation() {
    check_requests(&sim()).await;
}

#[tokio::test]
async fn requests_never_bump_the_generation_in_dynamodb() {
    check_requests(&dynamo().await.store).await;
}

#[tokio::test]
async fn status_writes_are_conditional_on_version_and_generation_in_the_simulation() {
    check_status_conditions(&sim()).await;
}

#[tokio::test]
async fn status_writes_are_conditional_on_version_and_generation_in_dynamodb() {
    check_status_conditions(&dynamo().await.store).await;
}

#[tokio::test]
async fn list_is_sorted_and_delete_is_idempotent_in_the_simulation() {
    check_list_and_delete(&sim()).await;
}

#[tokio::test]
async fn list_is_sorted_and_delete_is_idempotent_in_dynamodb() {
    check_list_and_delete(&dynamo().await.store).await;
}

async fn check_audit(store: &dyn ReleaseStore) {
    let carol = "arn:aws:sts::111122223333:assumed-role/deployer/carol";
    let mut created = write("web", "1", SpecPrecondition::Absent);
    created.detail = "created".into();
    assert_eq!(store.put_spec(created.clone()).await, Ok(1));
    store
        .put_request("web", RequestKind::Promote, request(1))
        .await
        .unwrap();
    let mut set = write("web", "2", SpecPrecondition::Generation(1));
    set.action = AuditAction::ReleaseSet;
    set.written_by = carol.into();
    set.written_at = at("2025-03-04T07:00:00Z");
    set.detail = "x".repeat(2 * AUDIT_DETAIL_MAX_CHARS);
    assert_eq!(store.put_spec(set).await, Ok(2));
    // A write that fails its condition leaves no entry.
    assert_condition_failed(
        store
            .put_spec(write("web", "9", SpecPrecondition::Generation(1)))
            .await,
        "a stale generation",
    );
    let web = store.get("web").await.unwrap().expect("web exists");
    assert_eq!(
        web.audit,
        vec![
            AuditEntry {
                at: created.written_at,
                by: created.written_by.clone(),
                action: "apply".into(),
                generation: 1,
                detail: "created".into(),
            },
            AuditEntry {
                at: request(1).requested_at,
                by: request(1).requested_by,
                action: "promote".into(),
                generation: 1,
                detail: String::new(),
            },
            AuditEntry {
                at: at("2025-03-04T07:00:00Z"),
                by: carol.into(),
                action: "release set".into(),
                generation: 2,
                detail: format!("{}...", "x".repeat(AUDIT_DETAIL_MAX_CHARS - 3)),
            },
        ]
    );
    // A write without a precondition names the generation it created too.
    assert_eq!(
        store
            .put_spec(write("web", "3", SpecPrecondition::Any))
            .await,
        Ok(3)
    );
    assert_eq!(
        store.get("web").await.unwrap().unwrap().audit[3].generation,
        3
    );

    // The newest AUDIT_LIMIT entries are kept.
    for i in 0..AUDIT_LIMIT as u64 {
        store
            .put_spec(write(
                "web",
                &format!("4.{i}"),
                SpecPrecondition::Generation(3 + i),
            ))
            .await
            .unwrap();
    }
    let web = store.get("web").await.unwrap().unwrap();
    assert_eq!(web.generation, 3 + AUDIT_LIMIT as u64);
    assert_eq!(web.audit.len(), AUDIT_LIMIT);
    let generations: Vec<u64> = web.audit.iter().map(|e| e.generation).collect();
    let expected: Vec<u64> = (4..=3 + AUDIT_LIMIT as u64).collect();
    assert_eq!(
        generations, expected,
        "oldest first, the four oldest dropped"
    );
}

#[tokio::test]
async fn every_user_write_appends_to_a_bounded_audit_trail_in_the_simulation() {
    check_audit(&sim()).await;
}

#[tokio::test]
async fn every_user_write_appends_to_a_bounded_audit_trail_in_dynamodb() {
    let fixture = dynamo().await;
    check_audit(&fixture.store).await;

    // An audit attribute edited by hand into something else never makes the release corrupt.
    fixture
        .raw
        .update_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S("release#web".into()))
        .update_expression("SET audit = :broken")
        .expression_attribute_values(":broken", AttributeValue::S("oops".into()))
        .send()
        .await
        .unwrap();
    let web = fixture
        .store
        .get("web")
        .await
        .unwrap()
        .expect("still decodes");
    assert!(web.audit.is_empty());
    assert_eq!(
        fixture
            .store
            .list()
            .await
            .unwrap()
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["web"]
    );
}

// DynamoDB only.

#[tokio::test]
async fn table_create_is_idempotent() {
    let fixture = dynamo().await;
    assert_eq!(
        create_table(&fixture.raw, TABLE).await,
        Ok(TableCreated::AlreadyExists)
    );
    assert_eq!(
        create_table(&fixture.raw, "another").await,
        Ok(TableCreated::Created)
    );
}

#[tokio::test]
async fn table_create_refuses_an_existing_table_with_another_layout() {
    let fixture = dynamo().await;
    fixture
        .raw
        .create_table()
        .table_name("foreign")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    match create_table(&fixture.raw, "foreign").await {
        Err(StoreError::Other { message }) => {
            assert!(message.contains("foreign"), "{message}");
            assert!(message.contains("`pk`"), "{message}");
            assert!(message.contains("no stream"), "{message}");
        }
        other => panic!("expected a clear refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_table_names_the_command_that_creates_it() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_dynamodbstreams::Client::new(&config),
        "nowhere",
    );
    match store.get("web").await {
        Err(StoreError::Other { message }) => {
            assert!(message.contains("nowhere"), "{message}");
            assert!(message.contains("switchyard table create"), "{message}");
        }
        other => panic!("expected an error naming the table, got {other:?}"),
    }
}

#[tokio::test]
async fn list_pages_through_more_items_than_one_page_holds() {
    let fixture = dynamo().await;
    let store = fixture.store.clone().with_scan_page_limit(2);
    let mut expected = Vec::new();
    for index in 0..9 {
        let name = format!("svc-{index}");
        store
            .put_spec(write(&name, "1", SpecPrecondition::Absent))
            .await
            .unwrap();
        expected.push(name);
    }
    // Items of other kinds share the table and are never listed.
    fixture
        .raw
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S("lease#svc-0".into()))
        .item("kind", AttributeValue::S("lease".into()))
        .send()
        .await
        .unwrap();
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn a_corrupt_item_is_skipped_by_list_and_reported_by_get() {
    let fixture = dynamo().await;
    let store = &fixture.store;
    store
        .put_spec(write("web", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    let item: HashMap<String, AttributeValue> = HashMap::from([
        ("pk".to_string(), AttributeValue::S("release#broken".into())),
        ("kind".to_string(), AttributeValue::S("release".into())),
        ("name".to_string(), AttributeValue::S("broken".into())),
        // Written by hand as a string: no generation can be read from it.
        ("generation".to_string(), AttributeValue::S("one".into())),
        ("spec".to_string(), AttributeValue::M(HashMap::new())),
    ]);
    fixture
        .raw
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    match store.get("broken").await {
        Err(StoreError::Corrupt { name, message }) => {
            assert_eq!(name, "broken");
            assert!(!message.is_empty());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["web"]);
    // The controller's status write reports the record as corrupt, as the simulation does.
    assert!(matches!(
        store.write_status("broken", &status(1, "x"), 0, None).await,
        Err(StoreError::Corrupt { .. })
    ));
    // Deleting it is how an operator gets rid of it.
    store.delete("broken").await.unwrap();
    assert_eq!(store.get("broken").await, Ok(None));
}

#[tokio::test]
async fn a_hand_written_item_without_a_status_version_takes_its_first_status() {
    let fixture = dynamo().await;
    let store = &fixture.store;
    let item: HashMap<String, AttributeValue> = HashMap::from([
        ("pk".to_string(), AttributeValue::S("release#web".into())),
        ("kind".to_string(), AttributeValue::S("release".into())),
        ("name".to_string(), AttributeValue::S("web".into())),
        ("generation".to_string(), AttributeValue::N("1".into())),
        ("spec".to_string(), AttributeValue::M(HashMap::new())),
    ]);
    fixture
        .raw
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let web = store.get("web").await.unwrap().expect("the item decodes");
    assert_eq!(web.status_version, 0);
    assert_eq!(
        store
            .write_status("web", &status(1, "first"), 0, None)
            .await,
        Ok(1)
    );
    assert_condition_failed(
        store
            .write_status("web", &status(1, "again"), 0, None)
            .await,
        "version 0 once a status exists",
    );
}

/// Waits for `name` on the feed for at most `limit`; returns every name seen until then.
async fn wait_for(
    changes: &mut BoxStream<'static, String>,
    name: &str,
    limit: Duration,
) -> Result<Vec<String>, Vec<String>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, changes.next()).await {
            Ok(Some(next)) => {
                let found = next == name;
                seen.push(next);
                if found {
                    return Ok(seen);
                }
            }
            Ok(None) => panic!("the change feed ended"),
            Err(_) => return Err(seen),
        }
    }
}

/// The feed reads from LATEST once it has found the stream, so a test first writes until
/// the feed shows a write: from then on, every write must arrive.
async fn wait_until_the_feed_is_live(
    store: &DynamoStore,
    changes: &mut BoxStream<'static, String>,
) {
    for _ in 0..20 {
        store
            .put_spec(write("warmup", "1", SpecPrecondition::Any))
            .await
            .unwrap();
        if wait_for(changes, "warmup", Duration::from_millis(500))
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("the change feed showed no write within 10 s");
}

#[tokio::test]
async fn spec_request_and_delete_writes_arrive_on_the_change_feed() {
    let fixture = dynamo().await;
    let store = &fixture.store;
    let mut changes = store.changes().expect("DynamoDB has a change feed");
    wait_until_the_feed_is_live(store, &mut changes).await;

    store
        .put_spec(write("web", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    wait_for(&mut changes, "web", CHANGE_DEADLINE)
        .await
        .expect("a spec write arrives within 2 s");

    store
        .put_request("web", RequestKind::Promote, request(1))
        .await
        .unwrap();
    wait_for(&mut changes, "web", CHANGE_DEADLINE)
        .await
        .expect("a request arrives within 2 s");

    store.delete("web").await.unwrap();
    wait_for(&mut changes, "web", CHANGE_DEADLINE)
        .await
        .expect("a delete arrives within 2 s");
}

#[tokio::test]
async fn a_status_only_write_does_not_arrive_on_the_change_feed() {
    let fixture = dynamo().await;
    let store = &fixture.store;
    store
        .put_spec(write("web", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    store
        .put_spec(write("marker", "1", SpecPrecondition::Absent))
        .await
        .unwrap();
    let mut changes = store.changes().expect("DynamoDB has a change feed");
    wait_until_the_feed_is_live(store, &mut changes).await;

    store
        .write_status("web", &status(1, "first"), 0, None)
        .await
        .unwrap();
    store
        .write_status("web", &status(1, "second"), 1, None)
        .await
        .unwrap();
    // One stream shard keeps records in order: once the marker's request arrives, any
    // record of the status writes before it has been read too.
    store
        .put_request("marker", RequestKind::Abort, request(1))
        .await
        .unwrap();
    let seen = wait_for(&mut changes, "marker", CHANGE_DEADLINE)
        .await
        .expect("the marker arrives within 2 s");
    assert!(
        !seen.iter().any(|name| name == "web"),
        "status-only writes woke their release: {seen:?}"
    );
}

#[tokio::test]
async fn the_change_feed_survives_its_table_being_deleted_and_created_again() {
    let fixture = dynamo().await;
    let store = &fixture.store;
    let mut changes = store.changes().expect("DynamoDB has a change feed");
    wait_until_the_feed_is_live(store, &mut changes).await;

    fixture
        .raw
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        create_table(&fixture.raw, TABLE).await,
        Ok(TableCreated::Created)
    );

    // The new table has a new stream; the consumer finds it on its next look at the table
    // (at most every 10 s) and reads it from then on. The feed itself never ends.
    for _ in 0..60 {
        store
            .put_spec(write("web", "1", SpecPrecondition::Any))
            .await
            .unwrap();
        if wait_for(&mut changes, "web", Duration::from_millis(500))
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("no write to the new table arrived within 30 s");
}

// ---- The lease read against a throttled table (aws-smithy-mocks: moto never throttles). ----

/// A store whose BatchGetItem is answered by `answer`, which is told how many calls came
/// before; the time of every call (tokio's clock) goes to the returned log.
fn throttled_lease_store(
    answer: impl Fn(usize, &BatchGetItemInput) -> BatchGetItemOutput + Send + Sync + 'static,
) -> (DynamoStore, Arc<Mutex<Vec<Instant>>>) {
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = calls.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |input| {
        let mut calls = log.lock().unwrap();
        calls.push(Instant::now());
        answer(calls.len() - 1, input)
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
    // The lease read never touches the stream.
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .build(),
    );
    (DynamoStore::new(client, streams, TABLE), calls)
}

/// The keys a BatchGetItem asked for.
fn requested_keys(input: &BatchGetItemInput) -> Vec<HashMap<String, AttributeValue>> {
    input
        .request_items()
        .and_then(|items| items.get(TABLE))
        .map(|k| k.keys().to_vec())
        .unwrap_or_default()
}

/// BatchGetItem's answer that processed none of `keys`, as DynamoDB gives when throttled.
fn none_processed(keys: Vec<HashMap<String, AttributeValue>>) -> BatchGetItemOutput {
    BatchGetItemOutput::builder()
        .responses(TABLE, Vec::new())
        .unprocessed_keys(
            TABLE,
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .unwrap(),
        )
        .build()
}

fn gaps(calls: &[Instant]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn the_lease_read_backs_off_before_asking_again_for_unprocessed_keys() {
    let (store, calls) = throttled_lease_store(|call, input| {
        let keys = requested_keys(input);
        if call < 2 {
            return none_processed(keys);
        }
        let items = keys
            .into_iter()
            .map(|mut key| {
                key.insert("owner".into(), AttributeValue::S("replica-a".into()));
                key.insert("counter".into(), AttributeValue::N("7".into()));
                key.insert("term".into(), AttributeValue::N("3".into()));
                key
            })
            .collect();
        BatchGetItemOutput::builder()
            .responses(TABLE, items)
            .build()
    });

    let leases = LeaseStore::leases(&store, 2)
        .await
        .expect("the read succeeds");
    assert_eq!(leases.len(), 2);
    assert!(
        leases
            .iter()
            .all(|l| l.owner.as_deref() == Some("replica-a") && l.counter == 7 && l.term == 3),
        "{leases:?}"
    );
    let gaps = gaps(&calls.lock().unwrap());
    assert_eq!(gaps.len(), 2, "asked three times");
    // Exponential with jitter: each delay is in [base, 2 * base), the base doubling; tokio's
    // timer rounds a sleep up to the next millisecond, so 2 * base itself can be seen.
    for (gap, base) in gaps.iter().zip([50, 100]) {
        let base = Duration::from_millis(base);
        assert!(
            *gap >= base && *gap <= 2 * base,
            "waited {gap:?} before asking again; expected [{base:?}, {:?}]",
            2 * base
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_lease_read_fails_as_throttled_when_keys_stay_unprocessed() {
    let (store, calls) = throttled_lease_store(|_, input| none_processed(requested_keys(input)));

    let started = Instant::now();
    let error = LeaseStore::leases(&store, 3)
        .await
        .expect_err("keys never processed");
    assert!(
        matches!(
            error,
            StoreError::Unavailable {
                throttled: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("3 key(s) unprocessed"),
        "{error}"
    );
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 6, "the first call and five retries");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1550) && waited < Duration::from_millis(3100),
        "bounded backoff, waited {waited:?}"
    );
}
