//! What the `cli_*` tests share: the `switchyard` binary run against one moto server (with
//! its requests serialized, so conditional writes are atomic as in DynamoDB), a table, and a
//! scratch directory of release documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use switchyard::aws::DynamoStore;
use tempfile::TempDir;

use crate::moto::Moto;

pub const TABLE: &str = "switchyard-cli";

/// The identity moto's STS returns for the test credentials.
pub const MOTO_IDENTITY: &str = "arn:aws:sts::123456789012:user/moto";

pub struct Cli {
    pub moto: Moto,
    /// Removed when the `Cli` is dropped.
    pub dir: TempDir,
}

impl Cli {
    /// A moto server with the table created, and an empty scratch directory.
    pub fn start() -> Cli {
        let cli = Cli {
            moto: Moto::start_serialized(),
            dir: scratch_dir(),
        };
        let created = cli.run(&["table", "create"]);
        assert_success(&created, "table create");
        cli
    }

    /// `switchyard ARGS` against this moto server and table, stdout and stderr captured.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(args)
            .env("SWITCHYARD_TABLE", TABLE)
            .env_remove("RUST_LOG")
            .env_remove("COLUMNS")
            .stdin(Stdio::null());
        for (key, value) in self.moto.env() {
            command.env(key, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("switchyard runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_success(&output, &args.join(" "));
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard starts")
    }

    /// `get NAME -o json`.
    pub fn get(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", name, "-o", "json"])).expect("get prints JSON")
    }

    /// Every release's name, as `get -o json` lists them.
    pub fn names(&self) -> Vec<String> {
        let list: Value =
            serde_json::from_str(&self.ok(&["get", "-o", "json"])).expect("get prints JSON");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Writes `release_yaml` to `DIR/FILE` and returns the path.
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The store the binary writes to, for what a test must do beside the CLI (writing the
    /// controller's status).
    pub async fn store(&self) -> DynamoStore {
        let sdk = self.moto.sdk_config().await;
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_dynamodbstreams::Client::new(&sdk),
            TABLE,
        )
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("switchyard-cli-")
        .tempdir()
        .expect("a scratch directory")
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "`switchyard {what}` exited with {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts the exit code and returns (stdout, stderr).
pub fn assert_exit(output: &Output, code: i32, what: &str) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "`switchyard {what}`\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// A valid release document.
pub fn release_yaml(name: &str, tag: &str, labels: &BTreeMap<&str, &str>) -> String {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("  labels: {{{}}}\n", pairs.join(", "))
    };
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\n{labels}spec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: registry.example.com/{name}:{tag}\n        environment: {{FEATURE_X: \"on\"}}\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
    )
}

pub fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

pub fn path_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
