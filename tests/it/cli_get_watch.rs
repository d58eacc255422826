//! `get` (table, JSON, YAML) and `watch` (exit 0 on Healthy, 5 on RolledBack, 6 on timeout,
//! 3 when missing), through the binary against moto, with the status written by the test as
//! the controller would (moto never finishes a deployment).

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use switchyard::aws::DynamoStore;
use switchyard::model::{Phase, ReleaseStatus, TrafficWeights};
use switchyard::ports::ReleaseStore;

use crate::cli_support::{Cli, assert_exit, labels, path_arg, release_yaml};

const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition";

fn status(observed_generation: u64, phase: Phase, message: &str) -> ReleaseStatus {
    ReleaseStatus {
        observed_generation,
        phase,
        message: message.into(),
        ..ReleaseStatus::default()
    }
}

/// Writes a status for the release's current state, as the controller would.
async fn write_status(store: &DynamoStore, name: &str, status: ReleaseStatus) {
    let version = store.get(name).await.unwrap().unwrap().status_version;
    store
        .write_status(name, &status, version, None)
        .await
        .unwrap();
}

fn progressing(candidate: f64) -> ReleaseStatus {
    ReleaseStatus {
        live_task_definition: Some(format!("{TD}/web:3")),
        desired_task_definition: Some(format!("{TD}/web:4")),
        deployment_id: Some("d-WEB".into()),
        strategy: Some(switchyard::model::StrategyStatus::CodeDeploy(
            switchyard::model::CodeDeployStatus {
                lifecycle_event: Some("AllowTraffic".into()),
                ..Default::default()
            },
        )),
        traffic_weights: Some(TrafficWeights {
            live: 100.0 - candidate,
            candidate,
        }),
        ..status(
            1,
            Phase::Progressing,
            "d-WEB is shifting production traffic to web:4, 10 percent every minute, watching web-5xx",
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_shows_every_release_as_a_table_and_one_or_all_as_json_and_yaml() {
    let cli = Cli::start();
    let store = cli.store().await;
    for name in ["web", "api"] {
        let file = cli.write(
            &format!("{name}.yaml"),
            &release_yaml(name, "1.0", &labels(&[("team", "a")])),
        );
        cli.ok(&["apply", "-f", path_arg(&file)]);
    }
    write_status(&store, "web", progressing(10.0)).await;

    let table = cli.ok(&["get"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let columns: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "PHASE",
            "GEN/OBSERVED",
            "LIVE",
            "DESIRED",
            "TRAFFIC",
            "UPDATED",
            "MESSAGE"
        ]
    );
    let api: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(api[..3], ["api", "<none>", "1/-"], "{table}");
    let web: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        web[..6],
        ["web", "Progressing", "1/1", "web:3", "web:4", "90/10"],
        "{table}"
    );
    assert!(
        lines[2].ends_with("watching web-5xx"),
        "piped output is not cut: {table}"
    );
    // Cut to the width: COLUMNS (or the terminal's).
    let output = cli
        .command(&["get"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let (narrow, _) = assert_exit(&output, 0, "get with COLUMNS=100");
    for line in narrow.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
    assert!(narrow.lines().nth(2).unwrap().ends_with("..."), "{narrow}");
    // `-o text` is the table too (the UPDATED ages may have ticked by a second in between).
    let without_ages = |text: &str| -> String {
        text.lines()
            .map(|line| {
                line.split_whitespace()
                    .filter(|word| {
                        !(word.ends_with('s')
                            && word[..word.len() - 1].chars().all(|c| c.is_ascii_digit())
                            && word.len() > 1)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_ages(&cli.ok(&["get", "-o", "text"])),
        without_ages(&table)
    );
    assert_eq!(cli.ok(&["get", "web"]).lines().count(), 2);

    let list: Value = serde_json::from_str(&cli.ok(&["get", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "ReleaseList");
    assert_eq!(list["items"][0]["metadata"]["name"], "api");
    assert_eq!(list["items"][1]["status"]["phase"], "Progressing");
    let one: Value = serde_json::from_str(&cli.ok(&["get", "web", "-o", "json"])).unwrap();
    assert_eq!(one, list["items"][1]);
    assert_eq!(one["metadata"]["labels"]["team"], "a");
    assert_eq!(one["status"]["trafficWeights"]["candidate"], 10.0);
    let yaml: Value = serde_saphyr::from_str(&cli.ok(&["get", "web", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, one, "YAML and JSON say the same");
    let yaml_list: Value = serde_saphyr::from_str(&cli.ok(&["get", "-o", "yaml"])).unwrap();
    assert_eq!(yaml_list, list);
    let history: Value =
        serde_saphyr::from_str(&cli.ok(&["history", "web", "-o", "yaml"])).unwrap();
    assert_eq!(history["items"][0]["action"], "apply");

    let output = cli.run(&["get", "nope"]);
    let (_, stderr) = assert_exit(&output, 3, "get a missing release");
    assert!(stderr.contains("release nope not found"), "{stderr}");
    assert_exit(&cli.run(&["get", "-o", "xml"]), 2, "get -o xml");
}

/// How long a spawned `watch` may take to show a change.
const WATCH_LIMIT: Duration = Duration::from_secs(30);

/// A spawned `switchyard watch`, its stdout read line by line as it prints.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(cli: &Cli, args: &[&str]) -> Watcher {
        let mut child = cli.spawn(args);
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits, at most `WATCH_LIMIT`, until the watcher prints a line that is `wanted`.
    fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + WATCH_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = wanted(&line);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "watch did not show {what} within {WATCH_LIMIT:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the watcher to exit (its own `--timeout` bounds it): its exit code, all it
    /// printed on stdout, and its stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let status = self.child.wait().unwrap();
        // The reader ends at the end of stdout, after the process exited.
        self.seen.extend(self.lines.iter());
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status.code(), self.seen.join("\n") + "\n", stderr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_exits_0_when_healthy_5_when_rolled_back_6_on_timeout_and_3_when_missing() {
    let cli = Cli::start();
    let store = cli.store().await;
    for name in ["web", "api"] {
        let file = cli.write(
            &format!("{name}.yaml"),
            &release_yaml(name, "1.0", &labels(&[])),
        );
        cli.ok(&["apply", "-f", path_arg(&file)]);
    }

    let output = cli.run(&["watch", "nope"]);
    let (_, stderr) = assert_exit(&output, 3, "watch a missing release");
    assert!(stderr.contains("release nope not found"), "{stderr}");
    assert_exit(
        &cli.run(&["watch", "web", "--timeout", "soon"]),
        2,
        "watch with a bad duration",
    );

    // Healthy: the watcher follows the rollout and exits 0. Each status is written once the
    // watcher has shown the one before, however slowly it runs.
    let mut watcher = Watcher::start(
        &cli,
        &["watch", "web", "--interval", "200ms", "--timeout", "60s"],
    );
    watcher.wait_for_line("no status yet", |line| line.ends_with("no status yet"));
    write_status(&store, "web", progressing(10.0)).await;
    watcher.wait_for_line("10% new", |line| line.contains("traffic 10% new"));
    write_status(&store, "web", progressing(60.0)).await;
    watcher.wait_for_line("60% new", |line| line.contains("traffic 60% new"));
    write_status(
        &store,
        "web",
        ReleaseStatus {
            live_task_definition: Some(format!("{TD}/web:4")),
            traffic_weights: Some(TrafficWeights {
                live: 100.0,
                candidate: 0.0,
            }),
            ..status(1, Phase::Healthy, "web:4 is live")
        },
    )
    .await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || watcher.finish())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "watch until Healthy\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with("release/web  generation 1  no status yet"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Progressing  event AllowTraffic  traffic 10% new  d-WEB is shifting"),
        "{stdout}"
    );
    assert!(stdout.contains("traffic 60% new"), "{stdout}");
    assert_eq!(
        *lines.last().unwrap(),
        "release/web is Healthy (generation 1): web:4 is live"
    );
    // One line per change, not per read.
    assert_eq!(lines.len(), 5, "{stdout}");

    // Settled needs the status of the current generation: a Healthy status of generation 1
    // does not end the watch of generation 2.
    write_status(&store, "api", status(1, Phase::Healthy, "api:1 is live")).await;
    cli.ok(&[
        "release",
        "set",
        "api",
        "--image",
        "api=registry.example.com/api:2.0",
    ]);
    let output = cli.run(&["watch", "api", "--interval", "200ms", "--timeout", "1s"]);
    let (stdout, stderr) = assert_exit(&output, 6, "watch past its timeout");
    assert!(
        stdout.contains("Healthy (of generation 1; generation 2 not yet observed)"),
        "{stdout}"
    );
    assert!(stderr.contains("did not settle within 1s"), "{stderr}");

    // RolledBack: exit 5, with JSON lines on request.
    write_status(
        &store,
        "api",
        status(
            2,
            Phase::RolledBack,
            "alarm api-5xx fired; rolled back to api:1",
        ),
    )
    .await;
    let output = cli.run(&["watch", "api", "-o", "json", "--interval", "200ms"]);
    let (stdout, stderr) = assert_exit(&output, 5, "watch a rolled-back release");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"]["phase"], "RolledBack");
    assert_eq!(last["metadata"]["generation"], 2);
    assert!(
        stderr.contains("release/api is RolledBack (generation 2): alarm api-5xx fired"),
        "{stderr}"
    );
}
