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

/// A lease store whose calls about one shard never answer once `hang` is set, as a
/// DynamoDB request can stall until the SDK's attempt timeout and beyond.
struct OneShardHangs {
    inner: switchyard::sim::SimStore,
    shard: u32,
    hang: std::sync::atomic::AtomicBool,
}

impl OneShardHangs {
    async fn maybe_hang(&self, shard: u32) {
        if shard == self.shard && self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl LeaseStore for OneShardHangs {
    async fn leases(&self, shards: u32) -> Result<Vec<switchyard::lease::LeaseRecord>, StoreError> {
        self.inner.leases(shards).await
    }
    async fn renew_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<switchyard::lease::LeaseRecord, StoreError> {
        self.maybe_hang(shard).await;
        self.inner.renew_lease(shard, owner, expected_counter).await
    }
    async fn take_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<switchyard::lease::LeaseRecord, StoreError> {
        self.maybe_hang(shard).await;
        self.inner.take_lease(shard, owner, expected_counter).await
    }
    async fn release_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<(), StoreError> {
        self.maybe_hang(shard).await;
        self.inner
            .release_lease(shard, owner, expected_counter)
            .await
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_call_that_never_answers_delays_neither_the_other_shards_nor_the_shutdown() {
    let h = Harness::new();
    let hung = 2;
    let store = Arc::new(OneShardHangs {
        inner: h.store.clone(),
        shard: hung,
        hang: false.into(),
    });
    let leases = Leases::new(store.clone(), "replica-a", SHARDS, timing(), &h.clock);
    let ctx = h.context().with_leases(leases.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(timing().renew_period * 2).await;
    assert_eq!(
        leases.held_safely().len(),
        SHARDS as usize,
        "all shards taken"
    );

    // From now on every call about the hung shard stalls; the others must still be renewed.
    store.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(timing().duration * 3).await;
    let expected: BTreeSet<u32> = (0..SHARDS).filter(|s| *s != hung).collect();
    assert_eq!(
        leases.held_safely(),
        expected,
        "every other shard kept safe"
    );

    // Shutdown releases what it can and does not wait forever for the hung shard.
    let _ = stop.send(());
    tokio::time::timeout(timing().duration, run)
        .await
        .expect("the controller stops although one release never answers")
        .unwrap();
    let records = h.store.leases(SHARDS).await.unwrap();
    let released: BTreeSet<u32> = records
        .iter()
        .filter(|r| r.owner.is_none())
        .map(|r| r.shard)
        .collect();
    assert_eq!(released, expected, "the others handed over at once");
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

/// A `switchyard run` replica; its log (lease lines included) goes to `log`, for the failure
/// message of a test that waited in vain.
fn daemon(moto: &Moto, table: &str, log: &std::path::Path) -> Child {
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
        .env("SWITCHYARD_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("a daemon log file"));
    for (key, value) in moto.env() {
        command.env(key, value);
    }
    command.spawn().expect("switchyard run starts")
}

/// The owner of `shard` as the table says, polled until `done` holds or `limit` passes. On
/// timeout it fails with the replicas' logs under `logs`.
async fn wait_for_owner(
    store: &switchyard::aws::DynamoStore,
    shard: u32,
    limit: Duration,
    logs: &std::path::Path,
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
        if StdInstant::now() >= deadline {
            panic!(
                "lease of shard {shard} still owned by {owner:?} after {limit:?}\n{}",
                daemon_logs(logs)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of every replica's log.
fn daemon_logs(dir: &std::path::Path) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            format!("--- {} ---\n{tail}", path.display())
        })
        .collect::<Vec<_>>()
        .join("\n")
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

    let dir = tempfile::Builder::new()
        .prefix("switchyard-ha-")
        .tempdir()
        .unwrap();
    let logs = dir.path();
    let mut daemons: Vec<Child> = (0..3)
        .map(|i| daemon(&moto, table, &logs.join(format!("replica-{i}.log"))))
        .collect();
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
    let owner = wait_for_owner(&store, shard, Duration::from_secs(5), logs, |o| o.is_some())
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
    let next = wait_for_owner(
        &store,
        shard,
        LEASE_DURATION + RENEW_PERIOD * 3,
        logs,
        |o| o.is_some_and(|o| o != owner),
    )
    .await
    .unwrap();
    let took = killed_at.elapsed();
    assert!(
        took <= LEASE_DURATION + RENEW_PERIOD + Duration::from_secs(2),
        "taken over after {took:?} (lease {LEASE_DURATION:?} + renew {RENEW_PERIOD:?})\n{}",
        daemon_logs(logs)
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
    let last = wait_for_owner(&store, shard, LEASE_DURATION, logs, |o| {
        o.is_some_and(|o| o != next && o != owner)
    })
    .await
    .unwrap();
    let took = terminated_at.elapsed();
    assert!(
        took < LEASE_DURATION,
        "handed over after {took:?}, without waiting for expiry\n{}",
        daemon_logs(logs)
    );
    assert_eq!(pid_of(&last), daemons[0].id());
    for mut daemon in daemons {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}
