//! The `switchyard` binary: parse the command line, set up telemetry, run the command, exit
//! with a documented code (see `switchyard::cli::exit_code`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use switchyard::aws::{self, AwsAdapters, ClientSettings, DynamoStore};
use switchyard::cli::{self, CliError, exit_code};
use switchyard::clock::Clock;
use switchyard::config::{self, LogFormat, Settings};
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::demo::{self, DemoOptions};
use switchyard::state::ControllerState;

/// A reconciling release controller for blue/green and canary releases of Amazon ECS services.
///
/// Exit codes: 0 success, 1 invalid input, 2 usage error, 3 conflict or not found, 4 AWS or
/// network error.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller against a simulated AWS with four example releases (no AWS needed).
    Demo {
        /// Virtual seconds per real second.
        #[arg(long, default_value_t = 30.0, value_parser = parse_speed)]
        speed: f64,
        /// Exit (0) once every release has settled.
        #[arg(long)]
        exit_when_settled: bool,
        /// `json` prints one JSON object on stdout at the end; progress goes to stderr.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Where the dashboard and API listen [default: 127.0.0.1:8080, or a free port if
        /// that is taken].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check that a running controller answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to check [default: http://<SWITCHYARD_LISTEN or 127.0.0.1:8080>/healthz].
        #[arg(long)]
        url: Option<String>,
    },
    /// Run the controller against AWS (the standard AWS environment picks credentials,
    /// region and endpoints).
    Run {
        /// A configuration file (see config/controller.yaml); defaults and SWITCHYARD_*
        /// variables suffice without one.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// The HTTP server's address (overrides `listen` of the configuration).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate release documents offline (for pre-commit hooks); non-zero exit on any error.
    Validate {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate release documents, then write each as the desired state of its release.
    Apply {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        table: TableArg,
    },
    /// Show a release's spec and status.
    Get {
        name: String,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Json)]
        output: Output,
        #[command(flatten)]
        table: TableArg,
    },
    /// Manage the DynamoDB table.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Create the table (with its stream) for local use; Terraform does it in production.
    Create {
        #[command(flatten)]
        table: TableArg,
    },
}

#[derive(Debug, clap::Args)]
struct TableArg {
    /// The DynamoDB table of the releases.
    #[arg(long, env = "SWITCHYARD_TABLE", default_value = config::DEFAULT_TABLE)]
    table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let speed: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if speed.is_finite() && (0.1..=10_000.0).contains(&speed) {
        Ok(speed)
    } else {
        Err("must be between 0.1 and 10000".into())
    }
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo {
                speed,
                exit_when_settled,
                output,
                listen,
            } => {
                init_telemetry("warn", LogFormat::Text);
                run_demo(DemoOptions {
                    speed,
                    exit_when_settled,
                    json: output == Output::Json,
                    listen,
                })
                .await
            }
            Command::Healthcheck { url } => healthcheck(url).await,
            Command::Run { config, listen } => run_controller(config, listen).await,
            Command::Validate { files } => validate(&files),
            Command::Apply { files, table } => {
                init_telemetry("warn", LogFormat::Text);
                apply(&files, &table.table).await
            }
            Command::Get {
                name,
                output,
                table,
            } => {
                init_telemetry("warn", LogFormat::Text);
                get(&name, output, &table.table).await
            }
            Command::Table {
                command: TableCommand::Create { table },
            } => {
                init_telemetry("warn", LogFormat::Text);
                table_create(&table.table).await
            }
        }
    });
    // Do not wait for stray blocking tasks (a stdin reader, a slow resolver) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(exit_code::OK),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
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

async fn run_demo(options: DemoOptions) -> Result<(), CliError> {
    let json = options.json;
    let report = demo::run(options)
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Invalid(format!("cannot encode the report: {e}")))?;
        println!("{text}");
    }
    Ok(())
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

    let sdk = aws::load_sdk_config(&ClientSettings {
        region: settings.region.clone(),
        ..ClientSettings::default()
    })
    .await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        settings.table.clone(),
    );
    let ctx = Context::new(
        Arc::new(store),
        Arc::new(AwsAdapters::new(sdk, aws::build_ports)),
        Clock::system(),
        controller_config(&settings),
        ControllerState::new(),
    );
    let state = ctx.state.clone();
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
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server.handle).await;
    tracing::info!(
        passes = summary.passes,
        failed = summary.failed_passes,
        cancelled = summary.cancelled_passes,
        "controller stopped"
    );
    Ok(())
}

fn controller_config(settings: &Settings) -> ControllerConfig {
    ControllerConfig {
        resync_period: settings.resync_period,
        concurrency: settings.concurrency,
        drain_timeout: settings.drain_timeout,
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

async fn healthcheck(url: Option<String>) -> Result<(), CliError> {
    let url = url.unwrap_or_else(|| {
        let listen =
            std::env::var("SWITCHYARD_LISTEN").unwrap_or_else(|_| config::DEFAULT_LISTEN.into());
        // A wildcard listen address is reached on loopback.
        let listen = listen
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{listen}/healthz")
    });
    switchyard::http::healthcheck(&url)
        .await
        .map_err(CliError::Aws)?;
    println!("healthy");
    Ok(())
}

async fn store_for(table: &str) -> Result<DynamoStore, CliError> {
    let table =
        config::parse_table(table).map_err(|m| CliError::Invalid(format!("--table: {m}")))?;
    let sdk = aws::load_sdk_config(&ClientSettings::default()).await;
    Ok(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        table,
    ))
}

/// Who the CLI writes as, for the audit trail.
fn caller() -> String {
    std::env::var("USER")
        .map(|user| format!("cli:{user}"))
        .unwrap_or_else(|_| "cli".into())
}

fn validate(paths: &[PathBuf]) -> Result<(), CliError> {
    let files = cli::collect_files(paths)?;
    match cli::read_documents(&files) {
        Ok(documents) => {
            println!(
                "{} document(s) in {} file(s) valid",
                documents.len(),
                files.len()
            );
            Ok(())
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            Err(CliError::Invalid(format!(
                "{} error(s); nothing is valid until all are fixed",
                errors.len()
            )))
        }
    }
}

async fn apply(paths: &[PathBuf], table: &str) -> Result<(), CliError> {
    let files = cli::collect_files(paths)?;
    let documents = match cli::read_documents(&files) {
        Ok(documents) => documents,
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            return Err(CliError::Invalid(format!(
                "{} error(s); nothing was written",
                errors.len()
            )));
        }
    };
    let store = store_for(table).await?;
    let documents: Vec<_> = documents.into_iter().map(|(_, d)| d).collect();
    let results = cli::apply(&store, &documents, &caller(), jiff::Timestamp::now()).await?;
    for result in &results {
        println!(
            "release/{} {} (generation {})",
            result.name,
            result.change.as_str(),
            result.generation
        );
    }
    if results.iter().all(|r| r.change == cli::Change::Unchanged) {
        println!("nothing to change");
    }
    Ok(())
}

async fn get(name: &str, output: Output, table: &str) -> Result<(), CliError> {
    let store = store_for(table).await?;
    let view = cli::get(&store, name).await?;
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(&view)
                .map_err(|e| CliError::Invalid(format!("cannot encode: {e}")))?;
            println!("{text}");
        }
        Output::Text => {
            let status = view.status.clone().unwrap_or_default();
            println!("NAME\tGENERATION\tOBSERVED\tPHASE\tMESSAGE");
            println!(
                "{}\t{}\t{}\t{}\t{}",
                view.metadata.name,
                view.metadata.generation,
                status.observed_generation,
                status.phase,
                status.message
            );
        }
    }
    Ok(())
}

async fn table_create(table: &str) -> Result<(), CliError> {
    let table =
        config::parse_table(table).map_err(|m| CliError::Invalid(format!("--table: {m}")))?;
    let sdk = aws::load_sdk_config(&ClientSettings::default()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let created = aws::create_table(&client, &table)
        .await
        .with_context(|| format!("creating table {table}"))
        .map_err(|e| CliError::Aws(format!("{e:#}")))?;
    println!("table {table}: {created}");
    Ok(())
}
