//! The HTTP server as its users see it: the status API, health and readiness, the Prometheus
//! exposition checked by `promtool`, the dashboard rendered by headless Chromium, and the
//! Grafana dashboard in `deploy/grafana`, which must query only metrics the code exports.
//!
//! API tests send their requests to the server's router in process (`tower`'s `oneshot`, no
//! socket); the `healthcheck` client and Chromium get a server on a free port; the promtool
//! and Chromium tests run the `switchyard demo` binary on a free port. Both tools are Debian
//! packages (`apt-get install -y chromium prometheus`; `./scripts/test.sh` installs them): a
//! missing one fails its test with that hint.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::model::Outcome;
use switchyard::ports::StoredRelease;
use switchyard::state::ControllerState;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The metric families the controller exports; dashboards and alerts depend on these names.
const FAMILIES: &[&str] = &[
    "switchyard_releases",
    "switchyard_reconcile_duration_seconds",
    "switchyard_aws_calls_total",
    "switchyard_aws_throttles_total",
    "switchyard_deployments_total",
    "switchyard_queue_depth",
    "switchyard_passes_in_flight",
    "switchyard_analysis_measurements_total",
    "switchyard_api_budget_rate",
    "switchyard_api_budget_fleet_rate",
    "switchyard_api_budget_share",
    "switchyard_api_budget_admitted_total",
    "switchyard_api_budget_wait_seconds_total",
    "switchyard_heap_allocated_bytes",
    "switchyard_heap_resident_bytes",
];

/// How long the demo may take to settle at `--speed 600` before a test gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

// ---- Requests: in process through the router, or over a socket to the demo binary. --------

pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// `GET path` through the server's router, in process: what the server answers, without a
/// socket.
pub(crate) async fn fetch(state: &ControllerState, path: &str) -> Response {
    let request = axum::http::Request::get(path)
        .header(axum::http::header::ACCEPT, "*/*")
        .body(axum::body::Body::empty())
        .expect("a valid request");
    let response = switchyard::http::router(state.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the whole body");
    Response {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    }
}

/// One blocking `GET path` over a socket, for the demo binary (which answers every GET with
/// a `Content-Length`, so reading to the end of the connection is the whole body).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let response = Response {
        status,
        headers,
        body: body.to_string(),
    };
    if response.header("content-length").is_none() {
        return Err(std::io::Error::other(format!(
            "GET {path}: no Content-Length (a chunked body?): {head}"
        )));
    }
    Ok(response)
}

// ---- In-process server with releases put in the controller state. ------------------------

/// A server on a free port, for what needs a socket (the `healthcheck` client, Chromium);
/// stops when dropped.
pub(crate) struct InProcess {
    pub(crate) addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn serve(state: &ControllerState) -> InProcess {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = switchyard::http::serve(state.clone(), "127.0.0.1:0".parse().unwrap(), async {
        let _ = stopped.await;
    })
    .await
    .expect("the server binds a free port");
    InProcess {
        addr: server.local_addr,
        _stop: stop,
    }
}

fn spec(name: &str) -> Value {
    json!({
        "service": {"cluster": "prod", "name": name},
        "taskDefinition": {"from": name, "containers": {name: {"image": format!("registry.example.com/{name}:2.0.0")}}},
        "strategy": {"codeDeploy": {"application": name, "deploymentGroup": format!("{name}-prod")}}
    })
}

fn td(name: &str, revision: u32) -> String {
    format!("arn:aws:ecs:us-east-1:111122223333:task-definition/{name}:{revision}")
}

/// A release as the store would hold it, built from JSON so that fields added later with
/// defaults do not break the test.
fn stored(name: &str, generation: u64, status: Option<Value>) -> StoredRelease {
    serde_json::from_value(json!({
        "name": name,
        "generation": generation,
        "labels": {"team": "storefront"},
        "spec": spec(name),
        "status": status,
        "specUpdatedBy": "arn:aws:iam::111122223333:role/ci",
        "specUpdatedAt": "2026-01-01T10:00:00Z",
    }))
    .expect("a valid stored release")
}

/// Three releases: one rolling out, one rolled back with history, one not yet looked at.
fn releases() -> Vec<StoredRelease> {
    let condition = |kind: &str, status: &str, reason: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": "m",
               "lastTransitionTime": "2026-01-01T10:01:00Z"})
    };
    vec![
        stored(
            "web",
            3,
            Some(json!({
                "observedGeneration": 3,
                "phase": "Progressing",
                "message": "deployment d-WEB3: AllowTraffic, 10% of production traffic on the candidate",
                "conditions": [condition("Ready", "False", "DeploymentInProgress"),
                               condition("Progressing", "True", "DeploymentInProgress")],
                "liveTaskDefinition": td("web", 6),
                "desiredTaskDefinition": td("web", 7),
                "deploymentId": "d-WEB3",
                "trafficWeights": {"live": 90.0, "candidate": 10.0},
                "strategy": {"codeDeploy": {"lifecycleEvent": "AllowTraffic"}},
                "history": [{
                    "generation": 2, "rollout": 1, "outcome": "Succeeded",
                    "taskDefinition": td("web", 6), "deploymentId": "d-WEB2",
                    "startedAt": "2025-12-31T09:00:00Z", "finishedAt": "2025-12-31T09:06:00Z",
                    "message": "deployment d-WEB2 succeeded"
                }],
            })),
        ),
        stored(
            "search",
            1,
            Some(json!({
                "observedGeneration": 1,
                "phase": "RolledBack",
                "message": "deployment d-S1 stopped (alarm search-5xx is in ALARM); traffic is back on search:1",
                "conditions": [condition("Ready", "False", "RolledBack")],
                "liveTaskDefinition": td("search", 1),
                "desiredTaskDefinition": td("search", 2),
                "trafficWeights": {"live": 100.0, "candidate": 0.0},
                "history": [{
                    "generation": 1, "rollout": 1, "outcome": "RolledBack",
                    "taskDefinition": td("search", 2), "deploymentId": "d-S1",
                    "startedAt": "2026-01-01T10:00:00Z", "finishedAt": "2026-01-01T10:03:00Z",
                    "message": "deployment d-S1 stopped (alarm search-5xx is in ALARM)"
                }],
            })),
        ),
        stored("queued", 1, None),
    ]
}

#[tokio::test]
async fn the_release_list_shows_metadata_spec_and_status_of_every_release() {
    let state = ControllerState::new();
    for release in releases() {
        state.update_release(release);
    }

    let response = fetch(&state, "/api/v1/releases").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content type: {:?}",
        response.header("content-type")
    );
    let body = response.json();
    let list = body["releases"].as_array().expect("a `releases` array");
    let names: Vec<&str> = list
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["queued", "search", "web"], "sorted by name");

    let web = &list[2];
    assert_eq!(
        web["metadata"],
        json!({"name": "web", "labels": {"team": "storefront"}, "generation": 3,
               "updatedBy": "arn:aws:iam::111122223333:role/ci",
               "updatedAt": "2026-01-01T10:00:00Z"})
    );
    assert_eq!(web["spec"], spec("web"));
    let status = &web["status"];
    assert_eq!(status["phase"], "Progressing");
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["liveTaskDefinition"], td("web", 6));
    assert_eq!(status["desiredTaskDefinition"], td("web", 7));
    assert_eq!(status["deploymentId"], "d-WEB3");
    assert_eq!(
        status["trafficWeights"],
        json!({"live": 90.0, "candidate": 10.0})
    );
    assert_eq!(
        status["strategy"]["codeDeploy"]["lifecycleEvent"],
        "AllowTraffic"
    );
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        "2026-01-01T10:01:00Z"
    );
    assert_eq!(status["history"][0]["outcome"], "Succeeded");

    // A release the controller has not looked at yet has no status (the dashboard shows it
    // as Pending).
    assert_eq!(list[0]["status"], Value::Null);
}

#[tokio::test]
async fn one_release_is_served_with_its_history() {
    let state = ControllerState::new();
    for release in releases() {
        state.update_release(release);
    }

    let response = fetch(&state, "/api/v1/releases/search").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    assert_eq!(body["metadata"]["name"], "search");
    assert_eq!(body["status"]["phase"], "RolledBack");
    assert_eq!(
        body["status"]["history"],
        json!([{
            "generation": 1, "rollout": 1, "outcome": "RolledBack",
            "taskDefinition": td("search", 2), "deploymentId": "d-S1",
            "startedAt": "2026-01-01T10:00:00Z", "finishedAt": "2026-01-01T10:03:00Z",
            "message": "deployment d-S1 stopped (alarm search-5xx is in ALARM)"
        }])
    );

    // A later status replaces the earlier one: the API shows the latest view.
    let mut newer = releases().remove(1);
    let status = newer.status.as_mut().unwrap();
    status.history.push(switchyard::model::HistoryEntry {
        generation: 1,
        rollout: 2,
        outcome: Outcome::Retried,
        task_definition: None,
        deployment_id: None,
        started_at: None,
        finished_at: "2026-01-01T11:00:00Z".parse().unwrap(),
        message: "retry requested by ops".into(),
    });
    state.update_release(newer);
    let body = fetch(&state, "/api/v1/releases/search").await.json();
    let history = body["status"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["outcome"], "Retried");
    assert_eq!(history[1]["rollout"], 2);
}

#[tokio::test]
async fn a_missing_release_is_a_404_that_names_it() {
    let state = ControllerState::new();
    state.update_release(releases().remove(0));

    let response = fetch(&state, "/api/v1/releases/nope").await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert_eq!(response.json(), json!({"error": "release nope not found"}));
}

#[tokio::test]
async fn healthz_answers_200_from_the_start() {
    let state = ControllerState::new();
    let response = fetch(&state, "/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok\n");
    // And through the `switchyard healthcheck` client the container image uses.
    let server = serve(&state).await;
    switchyard::http::healthcheck(&format!("http://{}/healthz", server.addr))
        .await
        .expect("healthcheck passes");
}

#[tokio::test]
async fn readyz_is_503_until_the_first_sync_with_a_reachable_store() {
    let state = ControllerState::new();
    let readyz = || fetch(&state, "/readyz");

    let response = readyz().await;
    assert_eq!(response.status, 503, "before anything: {}", response.body);
    assert!(response.body.contains("not ready"), "{}", response.body);

    state.mark_synced();
    assert_eq!(
        readyz().await.status,
        503,
        "synced, store not known reachable"
    );

    state.set_store_reachable(true);
    let response = readyz().await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body, "ready\n");

    state.set_store_reachable(false);
    assert_eq!(readyz().await.status, 503, "the store became unreachable");
    // And through the `switchyard healthcheck` client the container image uses.
    let server = serve(&state).await;
    let url = format!("http://{}/readyz", server.addr);
    assert!(switchyard::http::healthcheck(&url).await.is_err());
}

#[tokio::test]
async fn the_dashboard_is_one_self_contained_page_that_never_injects_markup() {
    let response = fetch(&ControllerState::new(), "/").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "content type: {:?}",
        response.header("content-type")
    );
    let page = response.body;
    assert!(page.contains("api/v1/releases"), "the page polls the API");

    // No external assets: nothing is loaded from another origin, and no <link> or <img> is
    // needed at all (styles, script and icons are inline).
    let lower = page.to_ascii_lowercase();
    for forbidden in [
        "<link", "<img", "<iframe", "@import", "url(", "src=", "//fonts.",
    ] {
        assert!(
            !lower.contains(forbidden),
            "the dashboard must not reference external assets; found `{forbidden}`"
        );
    }
    for scheme in ["http://", "https://", "ws://", "wss://"] {
        for (i, _) in lower.match_indices(scheme) {
            assert!(
                lower[i..].starts_with("http://www.w3.org/2000/svg"),
                "the dashboard must not reference another origin: {}",
                &page[i..(i + 60).min(page.len())]
            );
        }
    }

    // Data reaches the DOM as text only.
    for sink in [
        "innerhtml",
        "outerhtml",
        "insertadjacenthtml",
        "document.write",
        "eval(",
    ] {
        assert!(!lower.contains(sink), "the dashboard uses `{sink}`");
    }
}

/// State with a sample of every metric family, as a long-running controller would have.
fn state_with_every_metric() -> ControllerState {
    let state = ControllerState::new();
    for release in releases() {
        state.update_release(release);
    }
    let metrics = state.metrics();
    metrics.read_heap_with(|| {
        Some(switchyard::state::HeapStats {
            allocated: 3 << 20,
            resident: 5 << 20,
        })
    });
    let home = switchyard::model::Place::new(Some("111122223333"), "us-east-1");
    metrics.record_call("ecs", "DescribeServices", "ok", &home);
    metrics.record_call("codedeploy", "CreateDeployment", "throttling", &home);
    metrics.record_call("dynamodb", "UpdateItem", "transient", &home);
    metrics.record_pass(Duration::from_millis(12), true);
    metrics.record_pass(Duration::from_millis(300), false);
    metrics.record_deployment("started");
    metrics.record_outcomes([Outcome::Succeeded, Outcome::RolledBack, Outcome::Failed]);
    metrics.queue_depth.set(2);
    metrics.passes_in_flight.set(1);
    let budget = switchyard::state::BudgetLabels {
        service: "elasticloadbalancing".into(),
        region: "us-east-1".into(),
        account: "111122223333".into(),
    };
    metrics.api_budget_rate.get_or_create(&budget).set(2.5);
    metrics
        .api_budget_fleet_rate
        .get_or_create(&budget)
        .set(8.0);
    metrics.api_budget_share.get_or_create(&budget).set(0.625);
    metrics
        .api_budget_admitted
        .get_or_create(&budget)
        .inc_by(40);
    metrics.api_budget_wait.get_or_create(&budget).inc_by(1.5);
    state
}

#[tokio::test]
async fn metrics_with_every_family_pass_promtool() {
    let response = fetch(&state_with_every_metric(), "/metrics").await;
    assert_eq!(response.status, 200);
    let text = response.body;

    let samples = sample_names(&text);
    for family in FAMILIES {
        assert!(
            samples.iter().any(|s| s.starts_with(family)),
            "{family} is missing from /metrics:\n{text}"
        );
    }
    assert!(text.contains(r#"switchyard_releases{phase="RolledBack"} 1"#));
    assert!(
        text.contains("switchyard_heap_allocated_bytes 3145728\n"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_heap_resident_bytes 5242880\n"),
        "{text}"
    );
    assert!(text.contains(r#"switchyard_releases{phase="Pending"} 1"#));
    assert!(text.contains(
        r#"switchyard_aws_throttles_total{service="codedeploy",operation="CreateDeployment",region="us-east-1",account="111122223333"} 1"#
    ));
    promtool_check(&text);
}

#[test]
fn a_running_demo_serves_metrics_that_pass_promtool() {
    let demo = Demo::start();
    demo.wait_until(|releases| {
        releases.len() == demo_release_count() && releases.iter().all(has_status)
    });
    let response = get(demo.addr, "/metrics").expect("GET /metrics");
    assert_eq!(response.status, 200);
    let text = response.body;

    let samples = sample_names(&text);
    // The demo never gets throttled nor waits for its API budget, and a family without
    // samples is not exported: the throttles counter and the budget's wait are checked by
    // `metrics_with_every_family_pass_promtool`.
    for family in FAMILIES.iter().filter(|f| {
        **f != "switchyard_aws_throttles_total" && **f != "switchyard_api_budget_wait_seconds_total"
    }) {
        assert!(
            samples.iter().any(|s| s.starts_with(family)),
            "{family} is missing from the demo's /metrics:\n{text}"
        );
    }
    promtool_check(&text);
}

#[test]
fn the_dashboard_shows_every_demo_release_with_its_phase_in_headless_chromium() {
    let chromium = tool(
        "chromium",
        "SWITCHYARD_CHROMIUM",
        "apt-get install -y chromium prometheus",
    );
    let demo = Demo::start();
    let settled = demo.wait_until(|releases| {
        releases.len() == demo_release_count()
            && releases.iter().all(|r| {
                let status = &r["status"];
                status["observedGeneration"] == r["metadata"]["generation"]
                    && ["Healthy", "RolledBack", "Failed", "Invalid", "Paused"]
                        .contains(&status["phase"].as_str().unwrap_or(""))
            })
    });
    let url = format!("http://{}/", demo.addr);

    // The rendered DOM, after the page fetched the API and rendered it.
    let profile = scratch_dir("chromium-dom");
    let output = run_with_limit(
        Command::new(&chromium)
            .args(chromium_flags(profile.path()))
            .args(["--virtual-time-budget=5000", "--dump-dom"])
            .arg(&url),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dom = String::from_utf8_lossy(&output.stdout).to_string();

    let expected = [
        ("checkout", "Healthy"),
        ("search", "RolledBack"),
        ("payments", "Healthy"),
        ("inventory", "Invalid"),
        ("catalog", "Healthy"),
        ("orders", "Healthy"),
        ("storefront", "Healthy"),
        ("reviews", "RolledBack"),
    ];
    let cards = cards(&dom);
    for (name, phase) in expected {
        assert!(
            cards.iter().any(|(n, p)| n == name && p == phase),
            "the dashboard does not show {name} as {phase}; cards: {cards:?}; API: {settled:#}"
        );
        assert!(
            dom.contains(&format!(">{name}</h2>")),
            "no heading for {name}"
        );
    }
    // Releases that need attention come first.
    let order: Vec<&str> = cards.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        order,
        [
            "reviews",
            "search",
            "inventory",
            "catalog",
            "checkout",
            "orders",
            "payments",
            "storefront"
        ],
        "RolledBack, then Invalid, then Healthy by name"
    );
    assert!(
        dom.contains(&format!(
            "3 of {} releases need attention",
            demo_release_count()
        )),
        "the headline counts what needs attention"
    );
    assert!(
        dom.contains(r#"id="lost" class="lost-banner" role="alert" hidden"#),
        "the connection-lost banner is hidden while the API answers"
    );
    assert!(
        dom.contains(r#"data-phase="RolledBack" data-count="2""#)
            && dom.contains(r#"data-phase="Healthy" data-count="5""#),
        "the summary counts releases by phase"
    );

    // Where each release lives: its region and account, as the status says.
    let checkout = settled["releases"]
        .as_array()
        .and_then(|releases| {
            releases
                .iter()
                .find(|r| r["metadata"]["name"] == "checkout")
        })
        .expect("checkout in the API");
    let region = checkout["status"]["region"].as_str().expect("a region");
    let account = checkout["status"]["account"].as_str().expect("an account");
    assert!(
        dom.contains(&format!(
            r#"<dt>Where</dt><dd><span class="mono">{region} · {account}</span></dd>"#
        )),
        "the dashboard shows where checkout lives ({region} · {account})"
    );

    // The analysis that rolled reviews back: its verdict and each metric's measurements.
    assert!(
        dom.contains("Analysis failed at step 2")
            && dom.contains(">error-rate</th>")
            && dom.contains(">health</th>"),
        "the dashboard shows reviews' analysis"
    );

    // A screenshot, kept as a test artifact (`test-artifacts/` is not in git).
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    let profile = scratch_dir("chromium-shot");
    let output = run_with_limit(
        Command::new(&chromium)
            .args(chromium_flags(profile.path()))
            .args([
                "--virtual-time-budget=5000",
                "--hide-scrollbars",
                "--window-size=1280,900",
            ])
            .arg(format!("--screenshot={}", png.display()))
            .arg(&url),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 30_000,
        "the screenshot is suspiciously small ({} bytes): a blank page?",
        bytes.len()
    );
}

#[test]
fn the_dashboard_says_connection_lost_when_the_api_is_gone() {
    let chromium = tool(
        "chromium",
        "SWITCHYARD_CHROMIUM",
        "apt-get install -y chromium prometheus",
    );
    // Serve the page from a server that answers everything but the API with the page.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let page = include_str!("../../src/http/dashboard.html");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let reply = if request.starts_with("GET / ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                )
            } else {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let profile = scratch_dir("chromium-lost");
    let output = run_with_limit(
        Command::new(&chromium)
            .args(chromium_flags(profile.path()))
            .args(["--virtual-time-budget=3000", "--dump-dom"])
            .arg(format!("http://{addr}/")),
        Duration::from_secs(120),
    );
    assert!(output.status.success());
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("Connection lost: cannot reach the switchyard API"),
        "no connection-lost banner in:\n{dom}"
    );
    assert!(dom.contains("The API answered HTTP 503"), "{dom}");
    assert!(dom.contains(r#"class="conn lost""#), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_hostile_text_as_text() {
    let chromium = tool(
        "chromium",
        "SWITCHYARD_CHROMIUM",
        "apt-get install -y chromium prometheus",
    );
    let state = ControllerState::new();
    let server = serve(&state).await;
    let mut release: StoredRelease = serde_json::from_value(json!({
        "name": "evil",
        "generation": 1,
        "labels": {"team": "<script>document.title='pwned-label'</script>"},
        "spec": spec("evil"),
        "status": {
            "observedGeneration": 1,
            "phase": "Failed",
            "message": "<img src=x onerror=\"document.title='pwned-message'\">",
            "strategy": {"codeDeploy": {"lifecycleEvent": "<b>bold-event</b>"}},
            "history": [{"generation": 1, "rollout": 1, "outcome": "Failed",
                         "finishedAt": "2026-01-01T10:00:00Z",
                         "message": "</li><b>bold-history</b>"}],
        },
    }))
    .unwrap();
    release.spec_updated_by = Some("<i>someone</i>".into());
    state.update_release(release);

    let url = format!("http://{}/", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        let profile = scratch_dir("chromium-hostile");
        run_with_limit(
            Command::new(&chromium)
                .args(chromium_flags(profile.path()))
                .args(["--virtual-time-budget=3000", "--dump-dom"])
                .arg(&url),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(r#"data-release="evil" data-phase="Failed""#),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;img src=x onerror="),
        "the message is text: {dom}"
    );
    assert!(dom.contains("&lt;b&gt;bold-history&lt;/b&gt;"), "{dom}");
    assert!(dom.contains("&lt;i&gt;someone&lt;/i&gt;"), "{dom}");
    for injected in ["<img", "<b>bold", "<i>someone", "<script>document"] {
        assert!(
            !dom.contains(injected),
            "`{injected}` reached the DOM as markup: {dom}"
        );
    }
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next());
    assert!(
        title.is_some_and(|t| !t.contains("pwned")),
        "a script ran: title {title:?}"
    );
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_the_controller_exports() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/switchyard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"));

    // Importable: a title, a uid, and the data source as an input.
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "the data source is the DS_PROMETHEUS input"
    );

    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    assert!(panels.len() >= 8, "only {} panels", panels.len());
    let mut exprs = Vec::new();
    for panel in &panels {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {} uses another data source",
            panel["title"]
        );
        let targets = panel["targets"].as_array().unwrap_or_else(|| {
            panic!("panel {} has no targets", panel["title"]);
        });
        for target in targets {
            exprs.push(
                target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a target of {} has no expr", panel["title"]))
                    .to_string(),
            );
        }
    }

    let scraped = sample_names(&fetch(&state_with_every_metric(), "/metrics").await.body);
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        queried.extend(metric_names(expr));
    }
    assert!(!queried.is_empty());
    let missing: Vec<_> = queried.difference(&scraped).collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries metrics /metrics does not export: {missing:?}\nexported: {scraped:?}"
    );
    // And every family is on the dashboard.
    for family in FAMILIES {
        assert!(
            queried.iter().any(|q| q.starts_with(family)),
            "{family} is not on the Grafana dashboard"
        );
    }
}

fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// `switchyard_*` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("switchyard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The sample names of an exposition (`name` in `name{labels} value`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Pipes an exposition into `promtool check metrics` and asserts it is clean. promtool exits
/// 0 when it has nothing to say, 1 on a parse error and 3 on lint problems.
pub(crate) fn promtool_check(text: &str) {
    let promtool = tool(
        "promtool",
        "SWITCHYARD_PROMTOOL",
        "apt-get install -y prometheus (the Debian package `prometheus` provides promtool)",
    );
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", promtool.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics exited {:?}:\n{}{}\n--- the exposition ---\n{text}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- The demo binary and external tools. -------------------------------------------------

/// `switchyard demo --speed 600` on a free port; killed when dropped.
struct Demo {
    child: Child,
    addr: SocketAddr,
    log: TempDir,
}

impl Demo {
    fn start() -> Self {
        // Port 0, and the address the demo prints: no other test can take the port between
        // choosing it and binding it.
        let log = scratch_dir("demo");
        let stderr_path = log.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["demo", "--speed", "600", "--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("switchyard demo starts");
        let started = Instant::now();
        let addr = loop {
            let printed = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            if let Some(addr) = printed
                .lines()
                .find_map(|line| line.strip_prefix("dashboard: http://"))
                .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("the demo did not print its dashboard address:\n{printed}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, addr, log }
    }

    /// Polls the API until `done` holds for its releases; returns the last answer.
    fn wait_until(&self, done: impl Fn(&[Value]) -> bool) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < SETTLE_LIMIT {
            if let Ok(response) = get(self.addr, "/api/v1/releases")
                && response.status == 200
            {
                last = response.json();
                if done(last["releases"].as_array().map_or(&[][..], Vec::as_slice)) {
                    return last;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the demo did not get there within {SETTLE_LIMIT:?}; API: {last:#}\ndemo log:\n{}",
            std::fs::read_to_string(self.log.path().join("stderr")).unwrap_or_default()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_status(release: &Value) -> bool {
    release["status"].is_object()
}

/// `(data-release, data-phase)` of every release card in a dumped DOM, in page order.
fn cards(dom: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let key = format!(" {name}=\"");
        tag.find(&key).map(|i| {
            let value = &tag[i + key.len()..];
            value[..value.find('"').unwrap_or(value.len())].to_string()
        })
    };
    dom.match_indices("<article ")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>').unwrap_or(0)];
            Some((attr(tag, "data-release")?, attr(tag, "data-phase")?))
        })
        .collect()
}

/// The flags test-world.md gives for a headless Chromium that stays off the network.
pub(crate) fn chromium_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// A tool from `$override_var`, else from PATH; a missing tool fails the test with how to
/// install it (both tools are Debian packages).
pub(crate) fn tool(name: &str, override_var: &str, install: &str) -> PathBuf {
    if let Ok(path) = std::env::var(override_var) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: {install} (./scripts/test.sh installs it), or set {override_var}"
            )
        })
}

/// Runs a command to completion, killing it after `limit`.
pub(crate) fn run_with_limit(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
pub(crate) fn scratch_dir(what: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("switchyard-http-{what}-"))
        .tempdir()
        .expect("a scratch directory")
}

// ---- deploy/gitops: the pre-commit hook and the CI workflow. ------------------------------

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("SWITCHYARD", env!("CARGO_BIN_EXE_switchyard"))
        .env_remove("SWITCHYARD_RELEASES_DIR")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs (install git)")
}

fn release_document(name: &str, image: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\n  labels: {{managed-by: gitops}}\nspec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: \"{image}\"\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
    )
}

#[test]
fn the_pre_commit_hook_validates_staged_release_documents_only() {
    let repo = scratch_dir("gitops");
    let dir = repo.path();
    assert!(git(dir, &["init", "-q", "-b", "main"]).status.success());
    git(dir, &["config", "user.email", "dev@example.com"]);
    git(dir, &["config", "user.name", "dev"]);
    let hook = dir.join(".git/hooks/pre-commit");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gitops/pre-commit"),
        &hook,
    )
    .unwrap();
    let commit = |message: &str| git(dir, &["commit", "-q", "-m", message]);
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };

    // A commit without release documents: the hook does not even look for switchyard.
    write("README.md", "releases\n");
    git(dir, &["add", "README.md"]);
    let out = commit("readme");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A valid document passes.
    write(
        "releases/web.yaml",
        &release_document("web", "registry/web:1.0"),
    );
    git(dir, &["add", "releases"]);
    let out = commit("web 1.0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An invalid staged document is refused, with the message naming the file and field.
    write("releases/web.yaml", &release_document("web", ""));
    git(dir, &["add", "releases"]);
    let out = commit("broken");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid document was committed");
    assert!(
        stderr.contains("releases/web.yaml") && stderr.contains("image"),
        "the message names the file and the field: {stderr}"
    );

    // What is validated is what is staged: a valid staged version commits even though the
    // working tree is broken...
    write(
        "releases/web.yaml",
        &release_document("web", "registry/web:1.1"),
    );
    git(dir, &["add", "releases"]);
    write("releases/web.yaml", &release_document("web", ""));
    let out = commit("web 1.1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ...and a commit that does not touch releases/ is not held up by it.
    write("README.md", "releases, in git\n");
    git(dir, &["add", "README.md"]);
    let out = commit("readme again");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Deleting every document is fine too.
    git(dir, &["rm", "-q", "--cached", "releases/web.yaml"]);
    let out = commit("no more releases");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_gitops_workflow_validates_everywhere_diffs_pull_requests_and_applies_main_with_flags_the_cli_has()
 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gitops/github-workflow.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let workflow: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    let runs = |job: &str| -> String {
        workflow["jobs"][job]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("no job {job}"))
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(runs("validate").contains("switchyard validate -f releases/"));
    // Pull requests show `switchyard diff` (and what would be pruned) in the step summary.
    assert!(runs("diff").contains("switchyard diff -f releases/ 2>&1"));
    assert!(runs("diff").contains("GITHUB_STEP_SUMMARY"));
    assert!(
        workflow["jobs"]["diff"]["if"]
            .as_str()
            .unwrap()
            .starts_with("github.event_name == 'pull_request'")
    );
    assert!(
        runs("diff").contains(
            "switchyard apply -f releases/ --dry-run --prune --selector managed-by=gitops"
        )
    );
    assert!(
        runs("apply")
            .contains("switchyard apply -f releases/ --prune --selector managed-by=gitops")
    );
    assert_eq!(
        workflow["jobs"]["apply"]["if"],
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    );
    for job in ["diff", "apply"] {
        assert_eq!(
            workflow["jobs"][job]["permissions"]["id-token"], "write",
            "{job} gets AWS credentials through OIDC"
        );
    }

    // The flags the workflow uses exist.
    for (command, flags) in [
        (
            "apply",
            &["--dry-run", "--prune", "--selector", "--filename"][..],
        ),
        ("diff", &["--filename"][..]),
    ] {
        let help = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "`switchyard {command}` has no {flag}:\n{help}"
            );
        }
    }
}

/// Every string of a release that the dashboard shows comes from outside (documents, AWS,
/// the store): each one here is markup that would become an element, or run a script, if it
/// were ever inserted as HTML. All must show as text, attributes stay attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_field_from_outside_as_text() {
    let chromium = tool(
        "chromium",
        "SWITCHYARD_CHROMIUM",
        "apt-get install -y chromium prometheus",
    );
    let hostile = |field: &str| {
        format!(
            "<b class=\"inj\">{field}</b><img src=x onerror=\"document.title='pwned-{field}'\">"
        )
    };
    let td = |field: &str| {
        format!(
            "arn:aws:ecs:us-east-1:111122223333:task-definition/{}",
            hostile(field)
        )
    };
    let state = ControllerState::new();
    let server = serve(&state).await;
    let mut release: StoredRelease = serde_json::from_value(json!({
        "name": hostile("name"),
        "generation": 1,
        "labels": {hostile("label-key"): hostile("label-value")},
        "spec": {
            "service": {"cluster": hostile("cluster"), "name": hostile("service"), "region": hostile("region")},
            "strategy": {"codeDeploy": {
                "application": hostile("application"),
                "deploymentGroup": hostile("group"),
                "deploymentConfig": hostile("config"),
            }},
        },
        "status": {
            "observedGeneration": 1,
            "phase": "Failed",
            "message": hostile("message"),
            "strategy": {"codeDeploy": {"lifecycleEvent": hostile("event")}},
            "deploymentId": hostile("deployment"),
            "liveTaskDefinition": td("live-td"),
            "desiredTaskDefinition": td("desired-td"),
            "conditions": [{"type": "Drifted", "status": "True", "reason": "AwsError",
                            "message": hostile("condition"),
                            "lastTransitionTime": "2026-01-01T10:00:00Z"}],
            "history": [{"generation": 1, "rollout": 1, "outcome": "Failed",
                         "finishedAt": "2026-01-01T10:00:00Z",
                         "message": hostile("history"),
                         "taskDefinition": td("history-td"),
                         "deploymentId": hostile("history-deployment")}],
        },
    }))
    .unwrap();
    release.spec_updated_by = Some(hostile("updated-by"));
    state.update_release(release);

    let url = format!("http://{}/", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        let profile = TempDir::new().unwrap();
        run_with_limit(
            Command::new(&chromium)
                .args(chromium_flags(profile.path()))
                .args(["--virtual-time-budget=3000", "--dump-dom"])
                .arg(&url),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(r#"data-phase="Failed""#),
        "the card is shown: {dom}"
    );
    for field in [
        "name",
        "label-key",
        "label-value",
        "cluster",
        "service",
        "region",
        "application",
        "group",
        "config",
        "message",
        "event",
        "deployment",
        "live-td",
        "desired-td",
        "history",
        "history-td",
        "history-deployment",
        "updated-by",
    ] {
        assert!(
            dom.contains(&format!(r#"&lt;b class="inj"&gt;{field}&lt;/b&gt;"#)),
            "`{field}` is not shown as text: {dom}"
        );
    }
    // As an element the marker serializes with its quotes; as text its brackets are escaped
    // and as an attribute value its quotes are.
    assert!(
        !dom.contains(r#"<b class="inj">"#),
        "markup became an element: {dom}"
    );
    assert!(
        !dom.contains(r#"<img src="x""#),
        "an image was injected: {dom}"
    );
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next());
    assert!(
        title.is_some_and(|t| !t.contains("pwned")),
        "a script ran: title {title:?}"
    );
}

/// How many releases the demo has: its built-in documents.
fn demo_release_count() -> usize {
    switchyard::demo::DEMO_RELEASES
        .lines()
        .filter(|line| *line == "kind: Release")
        .count()
}
