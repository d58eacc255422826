//! `switchyard demo`: the controller against a simulated AWS inside the process, with a
//! built-in scenario covering every strategy: CodeDeploy canaries (one that succeeds, one
//! whose alarm fires mid-shift, one promoted by hand, one paused in flight and resumed), an
//! ECS-native blue/green deployment promoted at its hook, a canary switchyard drives on two
//! target groups (10%, a bake, 50%, a manual gate), and an invalid document.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::clock::Clock;
use crate::controller::{self, Context, ControllerConfig};
use crate::model::{AuditAction, OperatorRequest, Phase, ReleaseStatus, RequestKind};
use crate::ports::{
    AlarmState, ReadyAction, ReleaseStore, SpecPrecondition, SpecWrite, StoredRelease,
    task_definition_short_name,
};
use crate::sim::{BlueGreenSetup, SimAws, SimNotifications, SimStore};
use crate::state::ControllerState;

/// The demo's documents, as a user would keep them in git.
pub const DEMO_RELEASES: &str = include_str!("demo_releases.yaml");

/// The alarm the demo fires while `search` shifts traffic.
const SEARCH_ALARM: &str = "search-5xx";
/// The health endpoint `reviews`' analysis probes.
const REVIEWS_HEALTH: &str = "http://reviews.shop.internal:8081/health";
/// When the alarm fires: once this share of traffic reached the candidate.
const ALARM_AT_CANDIDATE_PERCENT: f64 = 30.0;
/// How long (virtual) the demo's operator looks at a release that waits for a promotion
/// before promoting it.
const PROMOTE_AFTER: Duration = Duration::from_secs(90);
/// How long (virtual) `catalog` stays paused in flight.
const PAUSED_FOR: Duration = Duration::from_secs(120);
/// The demo gives up if the scenario has not settled after this much virtual time.
const SCENARIO_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Virtual seconds per real second.
    pub speed: f64,
    pub exit_when_settled: bool,
    pub json: bool,
    /// Where the dashboard and API listen; `None`: 127.0.0.1:8080, or a free port if taken.
    pub listen: Option<std::net::SocketAddr>,
    /// How to read the process's heap for `/metrics` (the binary's allocator), if it can.
    pub heap: Option<fn() -> Option<crate::state::HeapStats>>,
}

/// One release in the demo's final report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    pub name: String,
    pub phase: Phase,
    pub observed_generation: u64,
    pub live_task_definition: Option<String>,
    pub desired_task_definition: Option<String>,
    pub deployment_id: Option<String>,
    pub message: String,
}

/// The demo's final report (printed as JSON with `--output json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    pub releases: Vec<ReleaseSummary>,
    pub api_calls: BTreeMap<String, u64>,
}

/// Why the demo did not finish as intended.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The built-in scenario could not be set up.
    #[error("setting up the demo failed: {0}")]
    Setup(String),
    /// The scenario did not settle in time.
    #[error("the demo did not settle within {} virtual minutes; releases not settled: {}", SCENARIO_LIMIT.as_secs() / 60, .0.join(", "))]
    NotSettled(Vec<String>),
}

/// The simulated world of the demo: AWS, the store, and the clock they share.
pub struct DemoWorld {
    pub aws: SimAws,
    pub store: SimStore,
    pub clock: Clock,
    /// Where the releases' events go: the demo's webhook receiver.
    pub notifications: SimNotifications,
}

/// The demo's fleet-wide notification destination (a simulated receiver: nothing leaves the
/// process).
pub const DEMO_WEBHOOK: &str = "https://hooks.demo.example/switchyard";

/// Builds the simulated account and stores the demo's documents (the invalid one as if
/// written to the table by hand, since `apply` would refuse it).
pub async fn build_world(clock: Clock) -> Result<DemoWorld, DemoError> {
    let aws = SimAws::new(clock.clone());
    let store = SimStore::new(clock.clone());

    let mut checkout = BlueGreenSetup::new("shop", "checkout");
    checkout.deployment_config = "CodeDeployDefault.ECSCanary10Percent5Minutes".into();
    aws.add_bluegreen_service(checkout);

    let mut search = BlueGreenSetup::new("shop", "search");
    search.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
    aws.add_bluegreen_service(search);
    aws.set_alarm(SEARCH_ALARM, AlarmState::Ok);

    let mut payments = BlueGreenSetup::new("shop", "payments");
    payments.ready_action = ReadyAction::StopDeployment { wait_minutes: 60 };
    aws.add_bluegreen_service(payments);

    aws.add_bluegreen_service(BlueGreenSetup::new("shop", "inventory"));

    let mut catalog = BlueGreenSetup::new("shop", "catalog");
    catalog.deployment_config = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into();
    aws.add_bluegreen_service(catalog);

    aws.add_ecs_service(crate::sim::EcsServiceSetup::new(
        "shop",
        "orders",
        crate::ports::EcsDeploymentStrategy::BlueGreen,
    ));

    aws.add_external_service(crate::sim::ExternalSetup::new("shop", "storefront"));

    // `reviews`: its candidate target group answers 8% errors; its health endpoint is up.
    let reviews = aws.add_external_service(crate::sim::ExternalSetup::new("shop", "reviews"));
    // CloudWatch's `TargetGroup` dimension: the ARN's resource, `targetgroup/NAME/ID`.
    let candidate = &reviews.target_group_arns[1];
    let dimension = candidate
        .rsplit_once(':')
        .map_or(candidate.as_str(), |(_, d)| d);
    let dimensions = [("TargetGroup", dimension)];
    aws.set_metric(
        "AWS/ApplicationELB",
        "RequestCount",
        &dimensions,
        Some(250.0),
    );
    aws.set_metric(
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        &dimensions,
        Some(20.0),
    );
    aws.set_http_answer(REVIEWS_HEALTH, Ok(200));

    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(DEMO_RELEASES)
        .map_err(|e| DemoError::Setup(format!("the built-in documents do not parse: {e}")))?;
    for document in documents {
        let name = document["metadata"]["name"]
            .as_str()
            .ok_or_else(|| DemoError::Setup("a built-in document has no name".into()))?
            .to_string();
        store
            .put_spec(SpecWrite {
                name,
                labels: serde_json::from_value(document["metadata"]["labels"].clone())
                    .unwrap_or_default(),
                spec: document["spec"].clone(),
                precondition: SpecPrecondition::Absent,
                written_by: "switchyard-demo".into(),
                written_at: clock.now(),
                action: AuditAction::Apply,
                detail: "the demo's built-in release".into(),
            })
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))?;
    }
    Ok(DemoWorld {
        aws,
        store,
        notifications: SimNotifications::new(clock.clone()),
        clock,
    })
}

/// Runs the demo: the controller, the scripted operator, and the progress printer.
pub async fn run(options: DemoOptions) -> Result<DemoReport, DemoError> {
    let clock = Clock::system_at_speed(options.speed);
    let world = build_world(clock.clone()).await?;
    let store: Arc<dyn ReleaseStore> = Arc::new(world.store.clone());
    let state = ControllerState::new();
    if let Some(heap) = options.heap {
        state.metrics().read_heap_with(heap);
    }
    let ctx = Context::new(
        store.clone(),
        Arc::new(world.aws.clone()),
        clock.clone(),
        ControllerConfig {
            resync_period: Duration::from_secs(30),
            concurrency: 4,
            ..ControllerConfig::default()
        },
        state.clone(),
    )
    // The analyses' probes reach the simulated endpoints.
    .with_probe(Arc::new(world.aws.clone()))
    .with_notifications(
        Arc::new(world.notifications.clone()),
        vec![crate::model::notifications::NotificationDestination {
            sns: None,
            event_bridge: None,
            webhook: Some(crate::model::notifications::WebhookTarget {
                url: DEMO_WEBHOOK.into(),
                format: crate::model::notifications::WebhookFormat::Json,
            }),
            events: None,
        }],
    );
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = start_server(state.clone(), options.listen, async move {
        let _ = server_stopped.await;
    })
    .await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));

    eprintln!(
        "switchyard demo: {} releases against a simulated AWS, time x{} (Ctrl-C to stop)",
        world.store.peek_all().len(),
        options.speed
    );
    eprintln!("dashboard: http://{}/", server.local_addr);
    let started = clock.now();
    let mut printer = ProgressPrinter::new(started);
    let mut operator = ScriptedOperator::default();
    let outcome = loop {
        // Observed without counting: the report's API calls are the controller's alone.
        let releases = world.store.peek_all();
        printer.print_changes(&releases, clock.now());
        printer.print_notifications(&world.notifications, clock.now());
        operator.act(&world, &releases, &printer).await;
        let unsettled: Vec<String> = releases
            .iter()
            .filter(|r| !is_settled(r))
            .map(|r| r.name.clone())
            .collect();
        if unsettled.is_empty() && options.exit_when_settled {
            break Ok(releases);
        }
        if crate::clock::elapsed_between(started, clock.now()) > SCENARIO_LIMIT
            && options.exit_when_settled
        {
            break Err(DemoError::NotSettled(unsettled));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c() => break Ok(releases),
        }
    };
    let _ = stop_tx.send(());
    let _ = controller.await;
    let _ = stop_server.send(());
    let _ = server.handle.await;
    let releases = outcome?;

    let mut api_calls = world.aws.call_counts();
    api_calls.extend(world.store.call_counts());
    let report = DemoReport {
        releases: releases.iter().map(summarize).collect(),
        api_calls,
    };
    if !options.json {
        print_table(&report);
    }
    Ok(report)
}

/// Starts the HTTP server on `listen`, or on 127.0.0.1:8080 and, if that is taken, a free
/// port (a newcomer's demo must not fail because something else uses 8080).
async fn start_server(
    state: ControllerState,
    listen: Option<std::net::SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<crate::http::Server, DemoError> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = shutdown_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    match listen {
        Some(addr) => crate::http::serve(state, addr, stopped(shutdown_rx))
            .await
            .map_err(|e| DemoError::Setup(e.to_string())),
        None => {
            let default: std::net::SocketAddr =
                crate::config::DEFAULT_LISTEN.parse().expect("valid");
            match crate::http::serve(state.clone(), default, stopped(shutdown_rx.clone())).await {
                Ok(server) => Ok(server),
                Err(_) => {
                    crate::http::serve(state, ([127, 0, 0, 1], 0).into(), stopped(shutdown_rx))
                        .await
                        .map_err(|e| DemoError::Setup(e.to_string()))
                }
            }
        }
    }
}

/// Settled: the status describes the current generation and its phase is a resting one.
pub fn is_settled(release: &StoredRelease) -> bool {
    release
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == release.generation && s.phase.is_settled())
}

fn summarize(release: &StoredRelease) -> ReleaseSummary {
    let status = release.status.clone().unwrap_or_default();
    ReleaseSummary {
        name: release.name.clone(),
        phase: status.phase,
        observed_generation: status.observed_generation,
        live_task_definition: status.live_task_definition,
        desired_task_definition: status.desired_task_definition,
        deployment_id: status.deployment_id,
        message: status.message,
    }
}

/// Plays the operator of the scenario: fires `search`'s alarm mid-shift, promotes every
/// release that waits for a promotion a while after it started waiting, and pauses
/// `catalog` in flight, resuming it a while later.
#[derive(Default)]
struct ScriptedOperator {
    alarm_fired: bool,
    /// Since when each release has waited for a promotion (reset once promoted).
    awaiting_since: BTreeMap<String, Timestamp>,
    /// The `requestedAt` of the last promote sent per release.
    promoted_at: BTreeMap<String, Timestamp>,
    paused_at: Option<Timestamp>,
    resumed: bool,
}

impl ScriptedOperator {
    async fn act(
        &mut self,
        world: &DemoWorld,
        releases: &[StoredRelease],
        printer: &ProgressPrinter,
    ) {
        let now = world.clock.now();
        for release in releases {
            let Some(status) = &release.status else {
                continue;
            };
            match release.name.as_str() {
                "search" if !self.alarm_fired => {
                    let shifted = status
                        .traffic_weights
                        .is_some_and(|t| t.candidate >= ALARM_AT_CANDIDATE_PERCENT);
                    if status.phase == Phase::Progressing && shifted {
                        world.aws.set_alarm(SEARCH_ALARM, AlarmState::Alarm);
                        self.alarm_fired = true;
                        printer.note(now, "search", &format!("the demo sets alarm {SEARCH_ALARM} to ALARM (errors on the candidate)"));
                    }
                }
                "catalog" if self.paused_at.is_none() => {
                    let shifted = status.traffic_weights.is_some_and(|t| t.candidate >= 10.0);
                    if status.phase == Phase::Progressing
                        && shifted
                        && set_paused(world, release, true).await
                    {
                        self.paused_at = Some(now);
                        printer.note(now, "catalog", "the demo operator runs `switchyard pause catalog` (the rollout is held, not rolled back)");
                    }
                }
                "catalog" if !self.resumed => {
                    let since = self.paused_at.unwrap_or(now);
                    if crate::clock::elapsed_between(since, now) >= PAUSED_FOR
                        && set_paused(world, release, false).await
                    {
                        self.resumed = true;
                        printer.note(
                            now,
                            "catalog",
                            "the demo operator runs `switchyard resume catalog`",
                        );
                    }
                }
                _ => {}
            }
            if status.phase != Phase::AwaitingPromotion {
                self.awaiting_since.remove(&release.name);
                continue;
            }
            let since = *self
                .awaiting_since
                .entry(release.name.clone())
                .or_insert(now);
            let already = self
                .promoted_at
                .get(&release.name)
                .is_some_and(|at| *at >= since);
            if !already && crate::clock::elapsed_between(since, now) >= PROMOTE_AFTER {
                let request = OperatorRequest {
                    generation: release.generation,
                    requested_by: "demo-operator".into(),
                    requested_at: now,
                    full: false,
                };
                if world
                    .store
                    .put_request(&release.name, RequestKind::Promote, request)
                    .await
                    .is_ok()
                {
                    self.promoted_at.insert(release.name.clone(), now);
                    printer.note(
                        now,
                        &release.name,
                        &format!(
                            "the demo operator runs `switchyard promote {}`",
                            release.name
                        ),
                    );
                }
            }
        }
    }
}

/// Sets `spec.paused` as `switchyard pause` / `resume` would (a spec edit).
async fn set_paused(world: &DemoWorld, release: &StoredRelease, paused: bool) -> bool {
    let mut spec = release.spec.value();
    spec["paused"] = serde_json::Value::Bool(paused);
    world
        .store
        .put_spec(SpecWrite {
            name: release.name.clone(),
            labels: release.labels.clone(),
            spec,
            precondition: SpecPrecondition::Generation(release.generation),
            written_by: "demo-operator".into(),
            written_at: world.clock.now(),
            action: if paused {
                AuditAction::Pause
            } else {
                AuditAction::Resume
            },
            detail: format!("spec.paused: {} -> {paused}", !paused),
        })
        .await
        .is_ok()
}

/// Prints a line whenever a release's phase, lifecycle event, traffic split or message
/// changes, stamped with the virtual time since the demo started.
struct ProgressPrinter {
    started: Timestamp,
    last: BTreeMap<String, (Phase, Option<String>, Option<i64>, String)>,
    /// How many of the webhook's deliveries were printed.
    notified: usize,
}

impl ProgressPrinter {
    fn new(started: Timestamp) -> Self {
        Self {
            started,
            last: BTreeMap::new(),
            notified: 0,
        }
    }

    /// Prints each event the demo's webhook received since the last call.
    fn print_notifications(&mut self, notifications: &SimNotifications, now: Timestamp) {
        let received = notifications.received();
        for delivery in received.iter().skip(self.notified) {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&delivery.body) else {
                continue;
            };
            let release = message["release"].as_str().unwrap_or("?");
            let id = message["id"].as_str().unwrap_or("");
            self.note(
                now,
                release,
                &format!(
                    "webhook <- {} (id {}…)",
                    message["event"].as_str().unwrap_or("?"),
                    id.get(..8).unwrap_or(id)
                ),
            );
        }
        self.notified = received.len();
    }

    fn print_changes(&mut self, releases: &[StoredRelease], now: Timestamp) {
        for release in releases {
            let Some(status) = &release.status else {
                continue;
            };
            let key = (
                status.phase,
                status.stage(),
                status.traffic_weights.map(|t| t.candidate.round() as i64),
                status.message.clone(),
            );
            if self.last.get(&release.name) == Some(&key) {
                continue;
            }
            let previous = self.last.insert(release.name.clone(), key);
            let phase_changed = previous.as_ref().map(|p| p.0) != Some(status.phase);
            self.print_status(now, &release.name, status, phase_changed);
        }
    }

    fn print_status(
        &self,
        now: Timestamp,
        name: &str,
        status: &ReleaseStatus,
        phase_changed: bool,
    ) {
        let mut line = format!("{name:<10} {:<18}", status.phase.as_str());
        if let Some(t) = status
            .traffic_weights
            .filter(|_| status.phase == Phase::Progressing)
        {
            line.push_str(&format!(" {}", traffic_bar(t.candidate)));
        }
        line.push_str("  ");
        let held = status
            .condition(crate::model::ConditionType::Paused)
            .is_some_and(|c| c.status == crate::model::ConditionStatus::True);
        if held && status.phase != Phase::Paused {
            line.push_str("(paused) ");
        }
        line.push_str(&status.message);
        let marker = if phase_changed { "*" } else { " " };
        let line = crate::terminal::escape_controls(&line);
        eprintln!("{} {marker} {line}", self.elapsed(now));
    }

    fn note(&self, now: Timestamp, name: &str, text: &str) {
        let text = crate::terminal::escape_controls(text);
        eprintln!("{}   {name:<10} >> {text}", self.elapsed(now));
    }

    /// `+mm:ss` of virtual time since the start.
    fn elapsed(&self, now: Timestamp) -> String {
        let secs = crate::clock::elapsed_between(self.started, now).as_secs();
        format!("+{:02}:{:02}", secs / 60, secs % 60)
    }
}

/// `[##--------] 20%`: the candidate's share of production traffic.
pub fn traffic_bar(candidate_percent: f64) -> String {
    let filled = ((candidate_percent / 10.0).round() as usize).min(10);
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        "-".repeat(10 - filled),
        candidate_percent
    )
}

fn print_table(report: &DemoReport) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10} {:<18} {:<4} {:<12} MESSAGE",
        "RELEASE", "PHASE", "GEN", "LIVE"
    );
    for r in &report.releases {
        let _ = writeln!(
            out,
            "{:<10} {:<18} {:<4} {:<12} {}",
            r.name,
            r.phase.as_str(),
            r.observed_generation,
            r.live_task_definition
                .as_deref()
                .map(task_definition_short_name)
                .unwrap_or("-"),
            r.message
        );
    }
    let total: u64 = report.api_calls.values().sum();
    let _ = writeln!(out, "\n{total} simulated API calls:");
    for (operation, count) in &report.api_calls {
        let _ = writeln!(out, "  {operation:<34} {count}");
    }
}
