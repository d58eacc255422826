//! End to end against moto: the `switchyard` binary creates its table, applies a release,
//! and the daemon deploys it through the real AWS SDK over HTTP, exactly once, across a
//! restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto::Moto;

const TABLE: &str = "switchyard-e2e";

/// Runs `switchyard ARGS` against moto and returns its output.
pub(crate) fn switchyard(moto: &Moto, args: &[&str]) -> Output {
    command(moto, args).output().expect("switchyard runs")
}

pub(crate) fn command(moto: &Moto, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .args(args)
        .env("SWITCHYARD_TABLE", TABLE)
        .env_remove("RUST_LOG");
    for (key, value) in moto.env() {
        command.env(key, value);
    }
    command
}

/// Creates the service world in moto with boto3 (installed with moto) and returns its JSON.
pub(crate) fn create_world(moto: &Moto, names: &[&str]) -> serde_json::Value {
    run_world_script(moto, names)
}

/// Creates an `EXTERNAL` service world per name (`moto_world.py --external`): target groups A
/// and B, a production listener forwarding to A only, a test listener to B, a rule to A, and
/// a primary task set on A at 100 percent with two registered targets.
pub(crate) fn create_external_world(moto: &Moto, names: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = std::iter::once("--external")
        .chain(names.iter().copied())
        .collect();
    run_world_script(moto, &args)
}

pub(crate) fn run_world_script(moto: &Moto, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("SWITCHYARD_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/python")
        });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moto_world.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(&moto.endpoint)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} runs ({e}); run ./scripts/test.sh to install moto",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "moto_world.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("moto_world.py prints JSON")
}

pub(crate) fn write_release(dir: &std::path::Path, name: &str, tag: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\n  labels: {{team: storefront}}\nspec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: registry.example.com/{name}:{tag}\n        environment: {{FEATURE_X: \"on\"}}\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn get(moto: &Moto, name: &str) -> serde_json::Value {
    let output = switchyard(moto, &["get", name, "-o", "json"]);
    assert!(
        output.status.success(),
        "get: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("get prints JSON")
}

/// Polls `get` until `done` holds, or panics after `limit`.
pub(crate) fn wait_for(
    moto: &Moto,
    name: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let view = get(moto, name);
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "timed out; last view: {view:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A running `switchyard run`, its log (JSON lines) read as it is written: a pipe nobody
/// reads would fill up and block the daemon.
pub(crate) struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Daemon {
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Where its HTTP server listens (it binds port 0 and logs the address).
    pub(crate) fn http_address(&self, limit: Duration) -> SocketAddr {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.log().lines().find_map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).ok()?;
                entry["listen"].as_str()?.parse().ok()
            });
            if let Some(address) = found {
                return address;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon logged no listen address within {limit:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn start_daemon(moto: &Moto) -> Daemon {
    start_daemon_via(moto.env())
}

/// Starts the daemon with these AWS environment variables (a proxy in front of moto, say);
/// they come last, so they may also override the settings below.
pub(crate) fn start_daemon_via(env: Vec<(&'static str, String)>) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    let mut child = child
        .args(["run"])
        .env("SWITCHYARD_TABLE", TABLE)
        .env_remove("RUST_LOG")
        .env("SWITCHYARD_RESYNC_PERIOD", "1s")
        .env("SWITCHYARD_DRAIN_TIMEOUT", "5s")
        .env("SWITCHYARD_LOG_LEVEL", "switchyard=debug,warn")
        .env("SWITCHYARD_LOG_FORMAT", "json")
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let writer = log.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = writer.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    Daemon { child, log, reader }
}

/// Sends SIGTERM and waits for a clean exit within `limit`; returns the daemon's log.
pub(crate) fn stop_daemon(mut daemon: Daemon, limit: Duration) -> String {
    let pid = daemon.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            daemon
                .reader
                .join()
                .expect("the log reader ends with the daemon");
            let log = daemon.log.lock().unwrap().clone();
            assert!(status.success(), "the daemon exited with {status}: {log}");
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not exit within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the daemon with SIGKILL (no drain, its leases kept until they expire) and returns
/// its log.
pub(crate) fn kill_daemon(mut daemon: Daemon) -> String {
    daemon.child.kill().expect("SIGKILL is sent");
    let status = daemon.child.wait().expect("the killed daemon is reaped");
    assert!(!status.success(), "killed, not exited: {status}");
    daemon
        .reader
        .join()
        .expect("the log reader ends with the daemon");
    daemon.log.lock().unwrap().clone()
}

/// The body of `GET path` from a local HTTP server (one plain HTTP/1.1 request).
pub(crate) fn http_get(address: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the daemon's server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The sum of a metric's samples whose labels include every `label="value"` given.
pub(crate) fn metric(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric_name == name
                && labels
                    .iter()
                    .all(|(key, value)| label_text.contains(&format!("{key}=\"{value}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_deploys_a_release_through_moto_exactly_once_across_a_restart() {
    let moto = Moto::start();
    let world = create_world(&moto, &["web"]);
    let sdk = moto.sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let codedeploy = aws_sdk_codedeploy::Client::new(&sdk);

    let created = switchyard(&moto, &["table", "create"]);
    assert!(
        created.status.success(),
        "table create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let again = switchyard(&moto, &["table", "create"]);
    assert!(again.status.success(), "table create is idempotent");

    let dir = tempfile::Builder::new()
        .prefix("switchyard-e2e-")
        .tempdir()
        .unwrap();
    let release = write_release(dir.path(), "web", "2.0.0");
    let applied = switchyard(&moto, &["apply", "-f", release.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(
        String::from_utf8_lossy(&applied.stdout).contains("release/web created (generation 1)")
    );

    let daemon = start_daemon(&moto);
    let view = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    let log = stop_daemon(daemon, Duration::from_secs(15));

    // The status: generation 1, progressing, with the deployment id.
    let status = &view["status"];
    assert_eq!(status["observedGeneration"], 1, "{view:#}\n{log}");
    assert_eq!(status["phase"], "Progressing", "{view:#}");
    let deployment_id = status["deploymentId"].as_str().unwrap().to_string();

    // A new revision with the new image, and every other field of the base intact.
    let base_arn = world["web"]["taskDefinitionArn"].as_str().unwrap();
    let base = ecs
        .describe_task_definition()
        .task_definition(base_arn)
        .send()
        .await
        .unwrap();
    let base = base.task_definition().unwrap().clone();
    let desired_arn = status["desiredTaskDefinition"].as_str().unwrap();
    assert!(
        desired_arn.ends_with("task-definition/web:2"),
        "{desired_arn}"
    );
    let copy = ecs
        .describe_task_definition()
        .task_definition(desired_arn)
        .send()
        .await
        .unwrap();
    let copy = copy.task_definition().unwrap().clone();
    let web = copy
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("web"))
        .unwrap();
    assert_eq!(web.image(), Some("registry.example.com/web:2.0.0"));
    let env: Vec<(String, String)> = web
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_string(),
                kv.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(env.contains(&("MODE".into(), "prod".into())), "{env:?}");
    assert!(env.contains(&("FEATURE_X".into(), "on".into())), "{env:?}");
    let base_web = base
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("web"))
        .unwrap();
    assert_eq!(web.secrets(), base_web.secrets());
    assert_eq!(web.log_configuration(), base_web.log_configuration());
    assert_eq!(web.docker_labels(), base_web.docker_labels());
    assert_eq!(web.health_check(), base_web.health_check());
    assert_eq!(web.mount_points(), base_web.mount_points());
    assert_eq!(copy.task_role_arn(), base.task_role_arn());
    assert_eq!(copy.execution_role_arn(), base.execution_role_arn());
    assert_eq!(copy.cpu(), base.cpu());
    assert_eq!(copy.memory(), base.memory());
    assert_eq!(copy.volumes(), base.volumes());
    assert_eq!(
        copy.container_definitions()[1],
        base.container_definitions()[1],
        "the sidecar is untouched"
    );

    // Exactly one deployment for the group, ours, naming that revision.
    let deployments = codedeploy
        .list_deployments()
        .application_name("web")
        .deployment_group_name("web-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deployments.deployments(),
        std::slice::from_ref(&deployment_id)
    );
    let info = codedeploy
        .get_deployment()
        .deployment_id(&deployment_id)
        .send()
        .await
        .unwrap();
    let info = info.deployment_info().unwrap();
    assert_eq!(info.description(), Some("switchyard release=web rollout=1"));
    if let Some(content) = info
        .revision()
        .and_then(|r| r.app_spec_content())
        .and_then(|c| c.content())
    {
        // moto keeps the AppSpec (AWS does not return it): check it names the revision, the
        // live container and port, and the live network configuration.
        let appspec: serde_json::Value = serde_json::from_str(content).unwrap();
        let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(properties["TaskDefinition"], desired_arn);
        assert_eq!(properties["LoadBalancerInfo"]["ContainerName"], "web");
        assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert_eq!(
            properties["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"],
            world["web"]["subnets"]
        );
    }

    // A restarted daemon adopts the deployment in flight: it follows it (passes that read
    // the deployment, as its metrics count them) and creates nothing, still exactly one.
    let daemon = start_daemon(&moto);
    let address = daemon.http_address(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = http_get(address, "/metrics");
        let passes = metric(&metrics, "switchyard_reconcile_duration_seconds_count", &[]);
        let followed = metric(
            &metrics,
            "switchyard_aws_calls_total",
            &[("operation", "GetDeployment"), ("outcome", "ok")],
        );
        if passes >= 2.0 && followed >= 1.0 {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted daemon did not follow the deployment within 60 s:\n{metrics}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = stop_daemon(daemon, Duration::from_secs(15));
    // The daemon's allocator reports its heap: what it holds, within what is resident.
    let allocated = metric(&metrics, "switchyard_heap_allocated_bytes", &[]);
    let resident = metric(&metrics, "switchyard_heap_resident_bytes", &[]);
    assert!(
        allocated > 0.0 && resident >= allocated,
        "heap allocated {allocated}, resident {resident}\n{metrics}"
    );
    for (operation, why) in [
        ("CreateDeployment", "the deployment in flight is adopted"),
        (
            "RegisterTaskDefinition",
            "the revision registered before is the desired one",
        ),
        ("StopDeployment", "nothing is stopped"),
    ] {
        assert_eq!(
            metric(
                &metrics,
                "switchyard_aws_calls_total",
                &[("operation", operation)]
            ),
            0.0,
            "{operation}: {why}\n{metrics}\n{log}"
        );
    }
    let deployments = codedeploy
        .list_deployments()
        .application_name("web")
        .deployment_group_name("web-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deployments.deployments().len(),
        1,
        "no second deployment after a restart\n{log}"
    );
    let view = get(&moto, "web");
    assert_eq!(view["status"]["deploymentId"], deployment_id.as_str());
    assert_eq!(view["status"]["phase"], "Progressing");

    // Applying the same document again writes nothing.
    let unchanged = switchyard(&moto, &["apply", "-f", release.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&unchanged.stdout).contains("release/web unchanged"));
}

#[test]
fn an_invalid_configuration_exits_1_before_anything_starts() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run"])
        .env("SWITCHYARD_CONCURRENCY", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("concurrency (from SWITCHYARD_CONCURRENCY): `lots` is not a whole number")
    );
}

/// `switchyard apply -f PATH` against moto with `table`; panics unless it succeeds.
pub(crate) fn apply(moto: &Moto, table: &str, path: &std::path::Path) {
    let output = command(moto, &["apply", "-f", path.to_str().unwrap()])
        .env("SWITCHYARD_TABLE", table)
        .output()
        .expect("switchyard runs");
    assert!(
        output.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
