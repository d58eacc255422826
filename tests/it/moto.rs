//! A moto server per test, on a free loopback port, for adapter tests over real HTTP.
//!
//! moto comes from PyPI (`moto[server]`); `scripts/test.sh` installs it into `.venv-moto`.
//! A test that needs it and cannot find it fails with the command that installs it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server; killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

/// Where the moto server binary is: `SWITCHYARD_MOTO_SERVER`, the repository's
/// `.venv-moto`, or `moto_server` on the PATH.
fn moto_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHYARD_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    if let Ok(path) = which("moto_server") {
        return path;
    }
    panic!(
        "moto_server not found. Install it with `./scripts/test.sh` (which creates .venv-moto), \
         or `python3 -m pip install 'moto[server]==5.2.5'`, or set SWITCHYARD_MOTO_SERVER"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}

impl Moto {
    /// Starts a fresh moto server on a free port and waits until it answers.
    pub fn start() -> Moto {
        Self::start_command(Command::new(moto_server_binary()))
    }

    /// Like [`Moto::start`], but the server handles one request at a time
    /// (`tests/fixtures/moto_serialized.py`), so that its conditional writes are atomic as
    /// DynamoDB's are: for tests that run concurrent writers.
    pub fn start_serialized() -> Moto {
        let python = std::env::var("SWITCHYARD_MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/python");
                // The interpreter next to the moto_server script has moto installed.
                if venv.exists() {
                    venv
                } else {
                    moto_server_binary().with_file_name("python")
                }
            });
        let mut command = Command::new(python);
        command.arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moto_serialized.py"),
        );
        Self::start_command(command)
    }

    fn start_command(mut command: Command) -> Moto {
        let mut child = command
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
                // Keep draining so moto never blocks on a full pipe.
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server printed its address within 60 s");
        let moto = Moto { child, endpoint };
        moto.wait_until_ready();
        moto
    }

    fn wait_until_ready(&self) {
        let address = self.endpoint.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&address).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "moto_server at {} did not accept connections",
            self.endpoint
        );
    }

    /// An SDK configuration pointing every client at this server, with test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }

    /// Environment variables that point a `switchyard` process at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
