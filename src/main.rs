//! The `switchyard` binary: parse the command line, set up telemetry, run the command, exit
//! with a documented code (see `switchyard::cli::exit_code`). The daemon (`run`) is the script
//! below; every other command is in `switchyard::cli`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;

use switchyard::access::SessionSettings;
use switchyard::aws::{AwsSession, ClientSettings};
use switchyard::cli::args::{Cli, Command};
use switchyard::cli::{self, CliError, exit_code};
use switchyard::clock::Clock;
use switchyard::config::{self, LogFormat, Settings};
use switchyard::controller::{self, Context, ControllerConfig, Leases};
use switchyard::state::ControllerState;

/// jemalloc, not the system's allocator: a daemon whose fleet is read, compared and dropped
/// every resync frees memory among long-lived records, and glibc kept that free memory
/// resident (BENCHMARKS 2b: at 500 releases, 55.8 MiB of RSS under glibc, 43.4 under jemalloc,
/// 56.2 under mimalloc). It also reports its heap, for `switchyard_heap_*_bytes`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's figures (refreshed first: they are cached until the epoch advances).
fn jemalloc_heap() -> Option<switchyard::state::HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(switchyard::state::HeapStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(exit_code::INVALID);
        }
    };
    let result = runtime.block_on(run_command(cli.command));
    // Do not wait for stray blocking tasks (a stdin reader, a slow resolver) at exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(exit_code::OK),
        Err(error) => {
            // Messages carry text from AWS and documents; the CLI's own line breaks stay.
            let message = cli::escape_controls_keeping_lines(&error.to_string());
            if error.is_failure() {
                eprintln!("error: {message}");
            } else {
                eprintln!("{message}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run_command(command: Command) -> Result<(), CliError> {
    match command {
        // The daemon sets up telemetry from its configuration.
        Command::Run { config, listen } => run_controller(config, listen).await,
        Command::Demo {
            speed,
            exit_when_settled,
            output,
            listen,
        } => {
            init_telemetry("warn", LogFormat::Text);
            cli::demo(
                speed,
                exit_when_settled,
                output,
                listen,
                Some(jemalloc_heap),
            )
            .await
        }
        Command::Healthcheck { url } => {
            init_telemetry("warn", LogFormat::Text);
            cli::healthcheck(url).await
        }
        Command::Store(command) => {
            init_telemetry("warn", LogFormat::Text);
            cli::execute(command).await
        }
    }
}

/// Logs go to stderr. `RUST_LOG` wins over the given default filter.
fn init_telemetry(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The daemon: configuration (exit 1 if invalid, before anything starts), telemetry, AWS
/// clients, the controller until SIGTERM or SIGINT, then a bounded drain.
async fn run_controller(
    config_file: Option<PathBuf>,
    listen: Option<String>,
) -> Result<(), CliError> {
    let mut env = config::process_env();
    if let Some(listen) = listen {
        env.insert(config::env_var_for("listen"), listen);
    }
    let settings =
        config::load(config_file.as_deref(), &env).map_err(|e| CliError::Invalid(e.to_string()))?;
    init_telemetry(&settings.log_level, settings.log_format);
    tracing::info!(table = %settings.table, resync = ?settings.resync_period, concurrency = settings.concurrency, "starting the controller");

    let aws = AwsSession::load(&ClientSettings {
        region: settings.region.clone(),
        ..ClientSettings::default()
    })
    .await;
    // The controller's own region and account: its table, leases and statuses live there,
    // and so do releases that name no other.
    let adapters = aws.adapters();
    let Some(region) = adapters.region() else {
        return Err(CliError::Invalid(
            "region: not set; set AWS_REGION, the profile's region, or the configuration's \
             region"
                .into(),
        ));
    };
    let account = aws.caller_account().await;
    tracing::info!(region = %region, account = account.as_deref().unwrap_or("unknown"), "acting from this region and account");
    let adapters = adapters.with_account(account);
    let store = Arc::new(aws.release_store(settings.table.clone()));
    let clock = Clock::system();
    // Replicas share the releases through shard leases; one replica simply takes them all.
    let replica = replica_id();
    let sessions = SessionSettings::for_replica(&replica, settings.external_id.clone());
    tracing::info!(replica = %replica, shards = settings.shards, "taking part in lease assignment");
    let leases = Leases::new(
        store.clone(),
        replica,
        settings.shards,
        settings.lease_timing(),
        &clock,
    );
    let ctx = Context::new(
        store,
        Arc::new(adapters),
        clock,
        controller_config(&settings),
        ControllerState::new(),
    )
    .with_session_settings(sessions)
    .with_leases(leases)
    .with_notifications(
        Arc::new(
            aws.notifications(Arc::new(switchyard::webhook::HttpWebhooks::new().map_err(
                |e| CliError::Invalid(format!("the webhook client has no root certificates: {e}")),
            )?)),
        ),
        settings.notifications.clone(),
    );
    let state = ctx.state.clone();
    state.metrics().read_heap_with(jemalloc_heap);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = switchyard::http::serve(state, settings.listen, async move {
        let _ = server_stopped.await;
    })
    .await
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    tracing::info!(listen = %server.local_addr, "serving /healthz, /readyz, /metrics, /api/v1 and the dashboard");
    let summary = controller::run(ctx, shutdown_signal()).await;
    // The server answers until the drain is over, then stops.
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server.handle).await;
    tracing::info!(
        passes = summary.passes,
        failed = summary.failed_passes,
        cancelled = summary.cancelled_passes,
        "controller stopped"
    );
    Ok(())
}

/// A replica's identity in the lease table: the host (the ECS task), the process, and a
/// random part so that a restarted process never reuses its predecessor's identity.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn controller_config(settings: &Settings) -> ControllerConfig {
    ControllerConfig {
        resync_period: settings.resync_period,
        concurrency: settings.concurrency,
        drain_timeout: settings.drain_timeout,
        api_budgets: settings.api_budgets.clone(),
        ..ControllerConfig::default()
    }
}

/// Completes on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutdown requested; draining (a second signal exits at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
