//! Reaction over the wire: how long from writing a release to the DynamoDB table until the
//! daemon calls CreateDeployment, with only the DynamoDB Stream to wake it.
//!
//! Against a moto server (started here, as `tests/it/moto.rs` does): the world of N services
//! is made by `tests/fixtures/moto_world.py`, the table by `switchyard table create`, and the
//! release binary runs as `switchyard run` with a resync period of 300 s, so only the stream
//! can wake it in time. Then, one release at a time, each to its own service and deployment
//! group, the benchmark writes the release (with `DynamoStore`, as `apply` does) and measures
//! the time to:
//!
//! - the daemon's `acting action=CreateDeployment` log line (JSON logs carry a timestamp): the
//!   moment the controller makes the call (the headline);
//! - the deployment being visible in moto's ListDeployments for that group (polled every
//!   20 ms): the call completed.
//!
//! This is real (wall-clock) time over a real wire on a shared machine: it is noisy, and is
//! reported as such. `cargo build --release && cargo run --release --example reaction`

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use jiff::Timestamp;
use serde_json::json;

use switchyard::aws::DynamoStore;
use switchyard::ports::ReleaseStore;

use common::ReleaseOptions;

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

const TABLE: &str = "switchyard-bench";

/// The segments of the path from a write to CreateDeployment (see [`decompose`]).
const PATH_SEGMENTS: [(&str, &str); 14] = [
    ("write_to_stream_read_s", "write -> stream reader reads it"),
    (
        "stream_read_to_woken_s",
        "stream read -> loop wakes it (relay)",
    ),
    ("woken_to_pass1_s", "woken -> pass 1 starts (queue)"),
    ("pass1_observe_s", "pass 1: observe (AWS calls)"),
    (
        "pass1_status_write_s",
        "pass 1: intent write (TransactWriteItems)",
    ),
    (
        "pass1_to_register_s",
        "pass 1: -> RegisterTaskDefinition sent",
    ),
    ("register_call_s", "RegisterTaskDefinition call"),
    (
        "pass1_outcome_write_s",
        "pass 1: outcome write (TransactWriteItems)",
    ),
    (
        "outcome_to_pass2_s",
        "outcome written -> pass 2 starts (queue)",
    ),
    ("pass2_observe_s", "pass 2: observe (AWS calls)"),
    (
        "pass2_status_write_s",
        "pass 2: intent write (TransactWriteItems)",
    ),
    (
        "pass2_retry_s",
        "pass 2: its write failed: read again, retried",
    ),
    ("pass2_to_create_s", "pass 2: -> CreateDeployment sent"),
    ("create_call_s", "CreateDeployment call"),
];
const TARGET_P99_SECS: f64 = 1.5;
/// How long the daemon may take to start, take its leases and deploy the warm-up release.
const WARMUP_LIMIT: Duration = Duration::from_secs(300);

/// Write-to-CreateDeployment latency of the daemon against moto, woken by the stream only.
#[derive(Debug, Parser)]
#[command(name = "reaction")]
struct Args {
    /// Releases measured, one at a time, each to its own service (at least 50 for a p99).
    #[arg(long, default_value_t = 50)]
    releases: usize,
    /// The daemon's resync period: long, so that only the stream wakes it.
    #[arg(long, default_value = "300s")]
    resync_period: String,
    /// How often moto's ListDeployments is polled for the new deployment, in milliseconds.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// Keep every measured release in flight (their deployments stay `Created` forever in
    /// moto, so the daemon keeps polling them all): each later release is measured under
    /// the load of all the earlier ones. By default each release is deleted (management
    /// stops) once its deployment is seen, so each is measured alone.
    #[arg(long)]
    keep_in_flight: bool,
    /// The daemon's log filter (JSON logs; `acting` lines are at info, the events of the
    /// path that decompose the latency at debug).
    #[arg(long, default_value = "switchyard=debug,warn")]
    log_level: String,
    /// The switchyard binary [default: target/release/switchyard].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where to write the JSON report [default: target/bench/reaction.json, or
    /// reaction-loaded.json with --keep-in-flight].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// moto_server: `SWITCHYARD_MOTO_SERVER`, the repository's `.venv-moto`, or the PATH.
fn moto_server() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHYARD_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = repo().join(".venv-moto/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("moto_server"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            eprintln!(
                "error: moto_server not found. Install it with ./scripts/test.sh (which creates \
                 .venv-moto), or `python3 -m pip install 'moto[server]==5.2.5'`, or set \
                 SWITCHYARD_MOTO_SERVER"
            );
            std::process::exit(1)
        })
}

/// Starts moto on a free port; returns it and its endpoint.
fn start_moto() -> (Process, String) {
    let mut child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(url) = line.split("Running on ").nth(1) {
                let _ = tx.send(url.trim().to_string());
                sent = true;
            }
        }
    });
    let endpoint = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("moto_server printed its address within 60 s");
    let address = endpoint.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server does not accept connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), endpoint)
}

fn moto_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

fn switchyard(binary: &PathBuf, endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env("SWITCHYARD_TABLE", TABLE)
        .env_remove("RUST_LOG");
    for (key, value) in moto_env(endpoint) {
        command.env(key, value);
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// When the daemon logged `acting` for (release, action), by the log line's own timestamp.
type Actions = Arc<Mutex<HashMap<(String, String), Timestamp>>>;

/// One of the daemon's events on the way from a write to its calls: (timestamp, message,
/// action).
type Event = (Timestamp, String, Option<String>);

/// The daemon's events per release, in log order.
type Trail = Arc<Mutex<HashMap<String, Vec<Event>>>>;

/// The debug events (`SWITCHYARD_LOG_LEVEL=switchyard=debug`) that mark the path of a write.
const TRAIL_EVENTS: [&str; 11] = [
    "stream change read",
    "stream change read; relaying it to its owner",
    "relayed change picked up",
    "woken by a change",
    "pass starts",
    "observed",
    "status written",
    "acting",
    "acted",
    "outcome written",
    "the release (or its lease) changed during the pass; reading it again",
];

/// Reads the daemon's JSON log lines, keeping the first `acting` time per (release, action),
/// and copies them all to `log` for a post-mortem.
fn follow_log(
    daemon: &mut Child,
    log: &std::path::Path,
) -> (Actions, Trail, Arc<Mutex<Vec<String>>>) {
    let actions: Actions = Arc::default();
    let trail: Trail = Arc::default();
    let trail_w = trail.clone();
    let tail: Arc<Mutex<Vec<String>>> = Arc::default();
    let stderr = daemon.stderr.take().expect("stderr piped");
    let (actions_w, tail_w) = (actions.clone(), tail.clone());
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).expect("the log directory can be created");
    }
    let mut copy = std::io::BufWriter::new(std::fs::File::create(log).expect("the log file"));
    std::thread::spawn(move || {
        use std::io::Write;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(copy, "{line}");
            let _ = copy.flush();
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(message) = event["message"].as_str()
                && TRAIL_EVENTS.contains(&message)
                && let (Some(release), Some(at)) = (
                    event["release"]
                        .as_str()
                        .or_else(|| event["span"]["release"].as_str()),
                    event["timestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok()),
                )
            {
                trail_w
                    .lock()
                    .unwrap()
                    .entry(release.to_string())
                    .or_default()
                    .push((
                        at,
                        message.to_string(),
                        event["action"].as_str().map(str::to_string),
                    ));
            }
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "acting"
                && let (Some(release), Some(action), Some(at)) = (
                    event["span"]["release"].as_str(),
                    event["action"].as_str(),
                    event["timestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok()),
                )
            {
                actions_w
                    .lock()
                    .unwrap()
                    .entry((release.to_string(), action.to_string()))
                    .or_insert(at);
            }
            let mut tail = tail_w.lock().unwrap();
            tail.push(line);
            if tail.len() > 200 {
                tail.remove(0);
            }
        }
    });
    (actions, trail, tail)
}

/// Where the time from the write to CreateDeployment went, for one release: each segment of
/// the path in seconds (None when an event is missing). The path: the stream reader reads
/// the change (and relays it, when another replica owns it), the loop wakes the release,
/// a first pass observes, writes the status (its intent) and registers the task
/// definition, a second pass observes, writes the intent and creates the deployment.
fn decompose(written: Timestamp, events: &[Event]) -> serde_json::Value {
    let find = |from: usize, pick: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, e)| e.0 >= written && pick(e))
            .map(|(i, e)| (i, e.0))
    };
    let is = |message: &'static str| move |e: &Event| e.1 == message;
    let acting =
        |action: &'static str| move |e: &Event| e.1 == "acting" && e.2.as_deref() == Some(action);
    let acted =
        |action: &'static str| move |e: &Event| e.1 == "acted" && e.2.as_deref() == Some(action);
    let read = find(0, &|e| e.1.starts_with("stream change read"));
    let picked = find(0, &is("relayed change picked up"));
    let woken = find(0, &is("woken by a change"));
    let register = find(0, &acting("RegisterTaskDefinition"));
    let registered = find(0, &acted("RegisterTaskDefinition"));
    let create = find(0, &acting("CreateDeployment"));
    let created = find(0, &acted("CreateDeployment"));
    // The pass that registered: the last start before its call. The next pass: the first
    // start after the call's outcome was written; its intent write ends with "status
    // written", or with a failed condition (then the pass reads the release again and
    // writes once more: the retry).
    let pass1 = events[..register.map_or(0, |(i, _)| i)]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, e)| e.1 == "pass starts" && e.0 >= written)
        .map(|(i, e)| (i, e.0));
    let after =
        |from: Option<(usize, Timestamp)>, message: &'static str| find(from?.0, &is(message));
    let observed1 = after(pass1, "observed");
    let written1 = after(pass1, "status written");
    let outcome1 = after(registered, "outcome written");
    let pass2 = after(outcome1, "pass starts");
    let observed2 = after(pass2, "observed");
    let failed2 = after(
        observed2,
        "the release (or its lease) changed during the pass; reading it again",
    )
    .filter(|(i, _)| create.is_some_and(|(c, _)| *i < c));
    let written2 = after(observed2, "status written");
    let first_write_end = match (failed2, written2) {
        (Some(f), Some(w)) if f.0 < w.0 => Some(f),
        (_, w) => w,
    };
    let span =
        |a: Option<(usize, Timestamp)>, b: Option<(usize, Timestamp)>| Some(seconds(a?.1, b?.1));
    let from_write = Some((0, written));
    json!({
        "write_to_stream_read_s": span(from_write, read),
        "stream_read_to_woken_s": span(read, woken),
        "relayed": picked.is_some(),
        "woken_to_pass1_s": span(woken, pass1),
        "pass1_observe_s": span(pass1, observed1),
        "pass1_status_write_s": span(observed1, written1),
        "pass1_to_register_s": span(written1, register),
        "register_call_s": span(register, registered),
        "pass1_outcome_write_s": span(registered, outcome1),
        "outcome_to_pass2_s": span(outcome1, pass2),
        "pass2_observe_s": span(pass2, observed2),
        "pass2_status_write_s": span(observed2, first_write_end),
        "pass2_write_failed": failed2.is_some(),
        "pass2_retry_s": if failed2.is_some() { span(failed2, written2) } else { Some(0.0) },
        "pass2_to_create_s": span(written2, create),
        "create_call_s": span(create, created),
    })
}

/// Deletes a release (the daemon stops managing it, and polling its deployment, which stays
/// `Created` forever in moto) once the daemon has recorded its deployment in the status and
/// taken its first look at it (a look 1 s after the creation, whose status write would fail
/// on a deleted release). Deleting under a status write in flight would fail the daemon's
/// TransactWriteItems, and moto answers a failed transaction by restoring a copy of the whole
/// table, after which the stream iterators the daemon holds read nothing ever again (AWS does
/// not do that). After that first look the status of a deployment moto never moves on stays
/// the same, and the daemon writes nothing more.
async fn delete_when_recorded(store: &DynamoStore, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut recorded = None;
    while Instant::now() < deadline {
        recorded = recorded_status_version(store, name).await;
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first look: a status write after the one that recorded the deployment, or nothing
    // to write (then the status stays as it is).
    let look = Instant::now() + Duration::from_millis(2500);
    while let Some(version) = recorded
        && Instant::now() < look
    {
        if recorded_status_version(store, name)
            .await
            .is_some_and(|v| v > version)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pass that wrote has finished its writes by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.delete(name).await.expect("the release is deleted");
}

/// The status version of `name` once its status records a deployment.
async fn recorded_status_version(store: &DynamoStore, name: &str) -> Option<u64> {
    let record = store.get(name).await.ok().flatten()?;
    let recorded = record.status.is_some_and(|s| s.deployment_id.is_some());
    recorded.then_some(record.status_version)
}

/// How long `call` took, in seconds, if it succeeded.
async fn timed<F, Fut>(call: F) -> Option<f64>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    call().await.then(|| started.elapsed().as_secs_f64())
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| repo().join("target/release/switchyard"));
    if !binary.exists() {
        eprintln!(
            "error: {} not found; build it first with `cargo build --release`",
            binary.display()
        );
        std::process::exit(1);
    }

    eprintln!(
        "reaction: starting moto and creating {} services ...",
        args.releases + 1
    );
    let (_moto, endpoint) = start_moto();
    let names: Vec<String> = (0..args.releases).map(|i| format!("svc-{i:02}")).collect();
    let python = std::env::var("SWITCHYARD_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".venv-moto/bin/python"));
    let world = Command::new(&python)
        .arg(repo().join("tests/fixtures/moto_world.py"))
        .arg(&endpoint)
        .arg("warmup")
        .args(&names)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{} runs ({e}); run ./scripts/test.sh", python.display()));
    assert!(world.success(), "moto_world.py failed");
    eprintln!("reaction: world created; creating the table and starting the daemon ...");
    let created = switchyard(&binary, &endpoint, &["table", "create"])
        .output()
        .expect("switchyard table create runs");
    assert!(
        created.status.success(),
        "table create: {}",
        String::from_utf8_lossy(&created.stderr)
    );

    let mut daemon = switchyard(&binary, &endpoint, &["run"])
        .env("SWITCHYARD_RESYNC_PERIOD", &args.resync_period)
        .env("SWITCHYARD_LOG_FORMAT", "json")
        .env("SWITCHYARD_LOG_LEVEL", &args.log_level)
        .env("SWITCHYARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    let daemon_log = common::bench_dir().join(if args.keep_in_flight {
        "reaction-loaded-daemon.log"
    } else {
        "reaction-daemon.log"
    });
    eprintln!("reaction: the daemon's log: {}", daemon_log.display());
    let (actions, trail, tail) = follow_log(&mut daemon, &daemon_log);
    let daemon = Arc::new(Mutex::new(Process(daemon)));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let samples = runtime.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .load()
            .await;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_dynamodbstreams::Client::new(&sdk),
            TABLE,
        );
        let codedeploy = aws_sdk_codedeploy::Client::new(&sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let alive = || {
            let mut daemon = daemon.lock().unwrap();
            if let Ok(Some(status)) = daemon.0.try_wait() {
                let tail = tail.lock().unwrap().join("\n");
                panic!("the daemon exited ({status}):\n{tail}");
            }
        };
        let wait_for_action = |release: &str, action: &str, limit: Duration| {
            let key = (release.to_string(), action.to_string());
            let actions = actions.clone();
            async move {
                let deadline = Instant::now() + limit;
                loop {
                    if let Some(at) = actions.lock().unwrap().get(&key) {
                        return Some(*at);
                    }
                    if Instant::now() > deadline {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };

        // Warm-up: the stream consumer reads from LATEST once it has found the stream, so a
        // write before that wakes nothing. Write the warm-up release again every 10 s until
        // the daemon acts on it: from then on the stream is live.
        let warmup = ReleaseOptions {
            registry: "registry.example.com".into(),
            ..ReleaseOptions::new("prod", "warmup")
        };
        let deadline = Instant::now() + WARMUP_LIMIT;
        loop {
            store
                .put_spec(warmup.write(Timestamp::now()))
                .await
                .expect("the warm-up release is written");
            if wait_for_action("warmup", "CreateDeployment", Duration::from_secs(10))
                .await
                .is_some()
            {
                break;
            }
            alive();
            assert!(
                Instant::now() < deadline,
                "the daemon did not deploy the warm-up release within {WARMUP_LIMIT:?}:\n{}",
                tail.lock().unwrap().join("\n")
            );
        }

        if !args.keep_in_flight {
            delete_when_recorded(&store, "warmup").await;
        }
        eprintln!("reaction: the daemon deployed the warm-up release; measuring ...");
        let mut samples = Vec::new();
        let mut stopped_at: Option<String> = None;
        for (i, name) in names.iter().enumerate() {
            alive();
            let release = ReleaseOptions {
                registry: "registry.example.com".into(),
                ..ReleaseOptions::new("prod", name)
            };
            let write = release.write(Timestamp::now());
            let written = Timestamp::now();
            store.put_spec(write).await.expect("the release is written");
            let acknowledged = Timestamp::now();
            // The deployment as moto shows it, polled.
            let mut visible = None;
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let listed = codedeploy
                    .list_deployments()
                    .application_name(name)
                    .deployment_group_name(format!("{name}-prod"))
                    .send()
                    .await;
                if listed.is_ok_and(|l| !l.deployments().is_empty()) {
                    visible = Some(Timestamp::now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
            }
            let create = wait_for_action(name, "CreateDeployment", Duration::from_secs(5)).await;
            let register = wait_for_action(name, "RegisterTaskDefinition", Duration::ZERO).await;
            // moto alone, at this point of the run: one TransactWriteItems on the same table
            // (an item the daemon ignores: not a release) and one RegisterTaskDefinition,
            // each timed from here, nothing else in flight from the benchmark.
            let moto_transact = timed(|| async {
                dynamodb
                    .transact_write_items()
                    .transact_items(
                        aws_sdk_dynamodb::types::TransactWriteItem::builder()
                            .put(
                                aws_sdk_dynamodb::types::Put::builder()
                                    .table_name(TABLE)
                                    .item(
                                        "pk",
                                        aws_sdk_dynamodb::types::AttributeValue::S(
                                            "bench#probe".into(),
                                        ),
                                    )
                                    .item(
                                        "n",
                                        aws_sdk_dynamodb::types::AttributeValue::N(i.to_string()),
                                    )
                                    .build()
                                    .expect("a put"),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .is_ok()
            })
            .await;
            let moto_register = timed(|| async {
                ecs.register_task_definition()
                    .family("bench-probe")
                    .container_definitions(
                        aws_sdk_ecs::types::ContainerDefinition::builder()
                            .name("probe")
                            .image("registry.example.com/probe:1")
                            .memory(128)
                            .build(),
                    )
                    .send()
                    .await
                    .is_ok()
            })
            .await;
            let events = trail.lock().unwrap().get(name).cloned().unwrap_or_default();
            let sample = json!({
                "release": name,
                "moto_transact_write_items_s": moto_transact,
                "moto_register_task_definition_s": moto_register,
                "path": decompose(written, &events),
                "write_ack_s": seconds(written, acknowledged),
                "to_register_s": register.map(|t| seconds(written, t)),
                "to_create_deployment_s": create.map(|t| seconds(written, t)),
                "to_visible_s": visible.map(|t| seconds(written, t)),
            });
            eprintln!(
                "  {name}: CreateDeployment after {} s",
                sample["to_create_deployment_s"]
            );
            samples.push(sample);
            let missed = samples
                .iter()
                .rev()
                .take_while(|s| s["to_create_deployment_s"].is_null())
                .count();
            if missed >= 3 {
                // moto's quirk (below): a failed TransactWriteItems restores a copy of the
                // whole table and the stream iterators go deaf. Report what was measured,
                // and where it stopped, rather than nothing.
                eprintln!(
                    "reaction: the daemon stopped reacting ({missed} releases in a row \
                     without a CreateDeployment); see its log in {}",
                    daemon_log.display()
                );
                stopped_at = Some(name.clone());
                break;
            }
            if !args.keep_in_flight {
                delete_when_recorded(&store, name).await;
            }
            // Vary where the next write falls in the stream consumer's poll interval.
            tokio::time::sleep(Duration::from_millis(150 + (i as u64 * 137) % 400)).await;
        }

        // Exactly one deployment per group, despite moto not enforcing it.
        let mut duplicates = 0;
        for name in &names {
            let listed = codedeploy
                .list_deployments()
                .application_name(name)
                .deployment_group_name(format!("{name}-prod"))
                .send()
                .await
                .expect("ListDeployments");
            duplicates += listed.deployments().len().saturating_sub(1);
        }
        (samples, duplicates, stopped_at)
    });
    let (samples, duplicates, stopped_at) = samples;
    // SIGTERM, then the drop kills whatever is left.
    {
        let daemon = daemon.lock().unwrap();
        // SAFETY: sending a signal to our own child by its pid.
        unsafe {
            libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    std::thread::sleep(Duration::from_millis(500));

    let stats = |key: &str| {
        let mut values: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.pointer(key).or(Some(&s[key])).and_then(|v| v.as_f64()))
            .collect();
        values.sort_by(f64::total_cmp);
        json!({
            "n": values.len(),
            "missing": samples.len() - values.len(),
            "p50_s": common::percentile(&values, 50.0),
            "p90_s": common::percentile(&values, 90.0),
            "p95_s": common::percentile(&values, 95.0),
            "p99_s": common::percentile(&values, 99.0),
            "max_s": values.last().copied(),
            "min_s": values.first().copied(),
        })
    };
    let create = stats("to_create_deployment_s");
    // The five slowest releases, with their paths: where each one's time went.
    let mut by_latency: Vec<&serde_json::Value> = samples.iter().collect();
    by_latency.sort_by(|a, b| {
        // Missing ones (no CreateDeployment) last: they have no path to show.
        b["to_create_deployment_s"]
            .as_f64()
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(
                &a["to_create_deployment_s"]
                    .as_f64()
                    .unwrap_or(f64::NEG_INFINITY),
            )
    });
    let slowest: Vec<serde_json::Value> = by_latency.into_iter().take(5).cloned().collect();
    let p99 = create["p99_s"].as_f64().unwrap_or(f64::NAN);
    let report = json!({
        "benchmark": "reaction",
        "environment": common::environment(),
        "method": {
            "releases": args.releases,
            "keep_in_flight": args.keep_in_flight,
            "resync_period": args.resync_period,
            "poll_ms": args.poll_ms,
            "clock": "wall clock (real time over a real wire; noisy on a shared machine)",
            "write": "DynamoStore::put_spec, as `switchyard apply` does",
            "create_deployment": "the daemon's `acting action=CreateDeployment` JSON log timestamp",
            "visible": "moto's ListDeployments for the group shows the deployment (polled)",
        },
        "targets": { "p99_write_to_create_deployment_max_s": TARGET_P99_SECS },
        "write_to_register_task_definition": stats("to_register_s"),
        "write_to_create_deployment": create,
        "write_to_visible_in_list_deployments": stats("to_visible_s"),
        "write_acknowledged": stats("write_ack_s"),
        "moto_alone": {
            "transact_write_items": stats("moto_transact_write_items_s"),
            "register_task_definition": stats("moto_register_task_definition_s"),
        },
        "path": PATH_SEGMENTS
            .iter()
            .map(|(key, _)| (key.to_string(), stats(&format!("/path/{key}"))))
            .collect::<serde_json::Map<_, _>>(),
        "slowest": slowest,
        "meets_target": p99 <= TARGET_P99_SECS,
        "duplicate_deployments": duplicates,
        "stopped_reacting_at": stopped_at,
        "samples": samples,
    });
    let name = if args.keep_in_flight {
        "reaction-loaded"
    } else {
        "reaction"
    };
    let path = common::write_report(name, &report, args.out.as_deref());
    let f = |v: &serde_json::Value| match v.as_f64() {
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    };
    println!(
        "reaction over the wire (moto, stream only, {} releases, {}; real time, noisy)",
        args.releases,
        if args.keep_in_flight {
            "all kept in flight"
        } else {
            "each alone"
        }
    );
    let rows: Vec<Vec<String>> = [
        (
            "write -> RegisterTaskDefinition",
            "write_to_register_task_definition",
        ),
        (
            "write -> CreateDeployment (log)",
            "write_to_create_deployment",
        ),
        (
            "write -> visible in ListDeployments",
            "write_to_visible_in_list_deployments",
        ),
        ("write acknowledged", "write_acknowledged"),
    ]
    .iter()
    .map(|(label, key)| {
        let s = &report[*key];
        vec![
            label.to_string(),
            f(&s["p50_s"]),
            f(&s["p90_s"]),
            f(&s["p95_s"]),
            f(&s["p99_s"]),
            f(&s["max_s"]),
            s["missing"].to_string(),
        ]
    })
    .collect();
    common::print_table(
        &["seconds", "p50", "p90", "p95", "p99", "max", "missing"],
        &rows,
    );
    println!("\nwhere the time went (each segment of write -> CreateDeployment):");
    let segment_rows: Vec<Vec<String>> = PATH_SEGMENTS
        .iter()
        .chain(&[
            (
                "moto alone: TransactWriteItems",
                "moto alone: TransactWriteItems",
            ),
            (
                "moto alone: RegisterTaskDefinition",
                "moto alone: RegisterTaskDefinition",
            ),
        ])
        .map(|(key, label)| {
            let s = match *key {
                "moto alone: TransactWriteItems" => &report["moto_alone"]["transact_write_items"],
                "moto alone: RegisterTaskDefinition" => {
                    &report["moto_alone"]["register_task_definition"]
                }
                _ => &report["path"][*key],
            };
            vec![
                label.to_string(),
                f(&s["p50_s"]),
                f(&s["p90_s"]),
                f(&s["p95_s"]),
                f(&s["p99_s"]),
                f(&s["max_s"]),
                s["missing"].to_string(),
            ]
        })
        .collect();
    common::print_table(
        &["segment", "p50", "p90", "p95", "p99", "max", "missing"],
        &segment_rows,
    );
    println!("\nthe slowest releases:");
    for sample in report["slowest"].as_array().into_iter().flatten() {
        let path = &sample["path"];
        let parts: Vec<String> = PATH_SEGMENTS
            .iter()
            .filter_map(|(key, _)| {
                let v = path[*key].as_f64()?;
                (v >= 0.1).then(|| format!("{key}={v:.2}"))
            })
            .collect();
        println!(
            "  {} {} s: {}",
            sample["release"].as_str().unwrap_or("?"),
            f(&sample["to_create_deployment_s"]),
            parts.join(" ")
        );
    }
    println!("duplicate deployments: {duplicates}");
    println!("\nreport: {}", path.display());
}
