//! Several replicas sharing releases through shard leases: in the simulation (paused time),
//! the DynamoDB lease adapter against moto, and real `switchyard run` processes against moto.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use switchyard::controller::{self, Context, Leases};
use switchyard::lease::{Fence, LeaseTiming, shard_of};
use switchyard::model::{Phase, ReleaseStatus};
use switchyard::ports::{LeaseStore, ReleaseStore, StoreError};

use crate::harness::{Harness, ReleaseOptions, minutes};
use crate::moto::Moto;

const SHARDS: u32 = 8;

fn timing() -> LeaseTiming {
    LeaseTiming {
        duration: Duration::from_secs(20),
        renew_period: Duration::from_secs(5),
        safety_margin: Duration::from_secs(5),
    }
}

impl Harness {
    /// A replica's context: the shared simulation, its own state and leases.
    fn replica(&self, id: &str) -> (Context, Leases) {
        let leases = Leases::new(
            Arc::new(self.store.clone()),
            id,
            SHARDS,
            timing(),
            &self.clock,
        );
        (self.context().with_leases(leases.clone()), leases)
    }
}

#[tokio::test(start_paused = true)]
async fn two_replicas_share_the_releases_and_each_release_is_deployed_once() {
    let h = Harness::new();
    let names: Vec<String> = (0..6).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        h.add_service(name, |_| {});
        h.apply(name, &ReleaseOptions::default()).await;
    }
    let (a, leases_a) = h.replica("replica-a");
    let (b, leases_b) = h.replica("replica-b");
    let run_a = tokio::spawn(controller::run(a, tokio::time::sleep(minutes(15))));
    let run_b = tokio::spawn(controller::run(b, tokio::time::sleep(minutes(15))));
    tokio::time::sleep(minutes(14)).await;
    let held_a: BTreeSet<u32> = leases_a.held().into_iter().collect();
    let held_b: BTreeSet<u32> = leases_b.held().into_iter().collect();
    run_a.await.unwrap();
    run_b.await.unwrap();

    assert!(held_a.is_disjoint(&held_b), "{held_a:?} {held_b:?}");
    assert_eq!(
        held_a.len() + held_b.len(),
        SHARDS as usize,
        "every shard owned"
    );
    assert_eq!(
        held_a.len(),
        held_b.len(),
        "balanced: {held_a:?} {held_b:?}"
    );
    for name in &names {
        assert_eq!(h.status(name).await.phase, Phase::Healthy, "{name}");
        assert_eq!(h.deployments_of(name).len(), 1, "{name}");
    }
    h.assert_one_deployment_per_rollout();
}

#[tokio::test(start_paused = true)]
async fn a_crashed_owners_releases_are_taken_over_after_the_lease_expires_without_a_second_deployment()
 {
    let h = Harness::new();
    h.add_service("web", |s| {
        s.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
    });
    h.apply("web", &ReleaseOptions::default()).await;

    // Replica A deploys, then crashes mid-deployment: its task is aborted, leases kept.
    let (a, _) = h.replica("replica-a");
    let run_a = tokio::spawn(controller::run(a, std::future::pending::<()>()));
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(h.status("web").await.phase, Phase::Progressing);
    run_a.abort();
    let _ = run_a.await;
    let crashed_at = tokio::time::Instant::now();

    // Replica B takes over once the lease has stood still for a full duration.
    let (b, leases_b) = h.replica("replica-b");
    let shard = shard_of("web", SHARDS);
    let run_b = tokio::spawn(controller::run(b, tokio::time::sleep(minutes(20))));
    while !leases_b.held().contains(&shard) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = crashed_at.elapsed();
    assert!(
        took >= timing().duration && took <= timing().duration + timing().renew_period * 2,
        "taken over after {took:?}"
    );
    run_b.await.unwrap();
    assert_eq!(h.status("web").await.phase, Phase::Healthy);
    assert_eq!(h.deployments_of("web").len(), 1, "adopted, not duplicated");
}

#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_hands_the_leases_over_at_once() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &ReleaseOptions::default()).await;
    let (a, leases_a) = h.replica("replica-a");
    controller::run(a, tokio::time::sleep(Duration::from_secs(30))).await;
    assert!(leases_a.held().is_empty(), "released on shutdown");
    let records = h.store.leases(SHARDS).await.unwrap();
    assert!(records.iter().all(|r| r.owner.is_none()), "{records:?}");

    let stopped_at = tokio::time::Instant::now();
    let (b, leases_b) = h.replica("replica-b");
    let run_b = tokio::spawn(controller::run(
        b,
        tokio::time::sleep(Duration::from_secs(30)),
    ));
    let shard = shard_of("web", SHARDS);
    while !leases_b.held().contains(&shard) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stopped_at.elapsed() < timing().renew_period,
        "no wait for expiry"
    );
    run_b.await.unwrap();
}

/// The fencing contract, against any `ReleaseStore + LeaseStore`.
async fn fenced_writes_stop_when_the_lease_moves<S: ReleaseStore + LeaseStore>(
    store: &S,
    name: &str,
) {
    let shard = shard_of(name, SHARDS);
    let taken = store.take_lease(shard, "a", 0).await.unwrap();
    assert_eq!(
        (taken.counter, taken.term, taken.owner.as_deref()),
        (1, 1, Some("a"))
    );
    let renewed = store.renew_lease(shard, "a", 1).await.unwrap();
    assert_eq!(
        (renewed.counter, renewed.term),
        (2, 1),
        "renewing keeps the term"
    );
    assert!(matches!(
        store.renew_lease(shard, "b", 2).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert!(matches!(
        store.take_lease(shard, "b", 1).await,
        Err(StoreError::ConditionFailed { .. })
    ));

    let fence_a = Fence {
        shard,
        owner: "a".into(),
        term: 1,
    };
    let status = ReleaseStatus {
        observed_generation: 1,
        ..ReleaseStatus::default()
    };
    let version = store
        .write_status(name, &status, 0, Some(&fence_a))
        .await
        .unwrap();

    // B takes the lease (A paused past its expiry): A's next write is refused.
    let stolen = store.take_lease(shard, "b", 2).await.unwrap();
    assert_eq!((stolen.owner.as_deref(), stolen.term), (Some("b"), 3));
    assert!(matches!(
        store
            .write_status(name, &status, version, Some(&fence_a))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    let fence_b = Fence {
        shard,
        owner: "b".into(),
        term: 3,
    };
    store
        .write_status(name, &status, version, Some(&fence_b))
        .await
        .unwrap();

    store.release_lease(shard, "b", 3).await.unwrap();
    let records = store.leases(SHARDS).await.unwrap();
    assert_eq!(records.len(), SHARDS as usize);
    let released = &records[shard as usize];
    assert_eq!((released.owner.as_deref(), released.counter), (None, 4));
    assert!(
        records
            .iter()
            .filter(|r| r.shard != shard)
            .all(|r| r.counter == 0 && r.owner.is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn the_simulated_store_fences_status_writes_by_lease_term() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    h.apply("web", &ReleaseOptions::default()).await;
    fenced_writes_stop_when_the_lease_moves(&h.store, "web").await;
}

#[tokio::test]
async fn the_dynamodb_store_fences_status_writes_by_lease_term() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    switchyard::aws::create_table(&client, "leases")
        .await
        .unwrap();
    let store = switchyard::aws::DynamoStore::new(
        client,
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        "leases",
    );
    let yaml = crate::harness::release_yaml("web", &ReleaseOptions::default());
    let document = &switchyard::model::parse::parse_documents(&yaml).unwrap()[0];
    store
        .put_spec(switchyard::ports::SpecWrite {
            name: "web".into(),
            labels: Default::default(),
            spec: serde_json::to_value(&document.spec).unwrap(),
            precondition: switchyard::ports::SpecPrecondition::Absent,
            written_by: "test".into(),
            written_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            action: switchyard::model::AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .unwrap();
    fenced_writes_stop_when_the_lease_moves(&store, "web").await;
}

// ----- real processes ------------------------------------------------------------------------

const LEASE_DURATION: Duration = Duration::from_secs(6);
const RENEW_PERIOD: Duration = Duration::from_secs(2);

fn daemon(moto: &Moto, table: &str) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .arg("run")
        .env("SWITCHYARD_TABLE", table)
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHYARD_RESYNC_PERIOD", "2s")
        .env(
            "SWITCHYARD_LEASE_DURATION",
            format!("{}s", LEASE_DURATION.as_secs()),
        )
        .env(
            "SWITCHYARD_LEASE_RENEW_PERIOD",
            format!("{}s", RENEW_PERIOD.as_secs()),
        )
        .env("SWITCHYARD_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in moto.env() {
        command.env(key, value);
    }
    command.spawn().expect("switchyard run starts")
}

/// The owner of `shard` as the table says, polled until `done` holds or `limit` passes.
async fn wait_for_owner(
    store: &switchyard::aws::DynamoStore,
    shard: u32,
    limit: Duration,
    done: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let deadline = StdInstant::now() + limit;
    loop {
        let owner = store.leases(16).await.unwrap()[shard as usize]
            .owner
            .clone();
        if done(owner.as_deref()) {
            return owner;
        }
        assert!(
            StdInstant::now() < deadline,
            "lease of shard {shard} still owned by {owner:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_of(owner: &str) -> u32 {
    // Replica ids are `<host>-<pid>-<random>`.
    owner
        .rsplit('-')
        .nth(1)
        .and_then(|pid| pid.parse().ok())
        .expect("a replica id with a pid")
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_owner_of_a_release_mid_deployment_hands_it_over_without_a_second_deployment() {
    let moto = Moto::start();
    let world = crate::daemon::create_world(&moto, &["web"]);
    let _ = world;
    let sdk = moto.sdk_config().await;
    let table = "switchyard-ha";
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    switchyard::aws::create_table(&client, table).await.unwrap();
    let store = switchyard::aws::DynamoStore::new(
        client,
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        table,
    );
    let codedeploy = aws_sdk_codedeploy::Client::new(&sdk);

    let mut daemons: Vec<Child> = (0..3).map(|_| daemon(&moto, table)).collect();
    let dir = tempfile::Builder::new()
        .prefix("switchyard-ha-")
        .tempdir()
        .unwrap();
    let release = crate::daemon::write_release(dir.path(), "web", "2.0.0");
    crate::daemon::apply(&moto, table, &release);

    // Wait until the release's deployment exists (moto keeps it in flight forever).
    let deadline = StdInstant::now() + Duration::from_secs(60);
    let deployment_id = loop {
        if let Some(id) = store
            .get("web")
            .await
            .unwrap()
            .and_then(|r| r.status)
            .and_then(|s| s.deployment_id)
        {
            break id;
        }
        assert!(StdInstant::now() < deadline, "no deployment within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shard = shard_of("web", 16);
    let owner = wait_for_owner(&store, shard, Duration::from_secs(5), |o| o.is_some())
        .await
        .unwrap();

    // kill -9 the owner.
    let owner_pid = pid_of(&owner);
    let index = daemons
        .iter()
        .position(|d| d.id() == owner_pid)
        .expect("the owner is ours");
    let mut killed = daemons.remove(index);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let killed_at = StdInstant::now();
    let next = wait_for_owner(&store, shard, LEASE_DURATION + RENEW_PERIOD * 3, |o| {
        o.is_some_and(|o| o != owner)
    })
    .await
    .unwrap();
    let took = killed_at.elapsed();
    assert!(
        took <= LEASE_DURATION + RENEW_PERIOD + Duration::from_secs(2),
        "taken over after {took:?} (lease {LEASE_DURATION:?} + renew {RENEW_PERIOD:?})"
    );
    // The new owner looks at the release, and adopts rather than creates.
    tokio::time::sleep(RENEW_PERIOD * 3).await;
    let deployments = codedeploy
        .list_deployments()
        .application_name("web")
        .deployment_group_name("web-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deployments.deployments(),
        std::slice::from_ref(&deployment_id),
        "exactly one deployment"
    );

    // SIGTERM the new owner: it releases at once and the last replica takes over without
    // waiting out the lease.
    let next_pid = pid_of(&next);
    let index = daemons
        .iter()
        .position(|d| d.id() == next_pid)
        .expect("the new owner is ours");
    let mut stopping = daemons.remove(index);
    let terminated_at = StdInstant::now();
    Command::new("kill")
        .args(["-TERM", &next_pid.to_string()])
        .status()
        .unwrap();
    assert!(stopping.wait().unwrap().success());
    let last = wait_for_owner(&store, shard, LEASE_DURATION, |o| {
        o.is_some_and(|o| o != next && o != owner)
    })
    .await
    .unwrap();
    let took = terminated_at.elapsed();
    assert!(
        took < LEASE_DURATION,
        "handed over after {took:?}, without waiting for expiry"
    );
    assert_eq!(pid_of(&last), daemons[0].id());
    for mut daemon in daemons {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}
