//! The `switchyard` binary: parse the command line, set up telemetry, run the command, exit
//! with a documented code (see `switchyard::cli::exit_code`).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use switchyard::aws::{self, AwsAdapters, ClientSettings, DynamoStore};
use switchyard::cli::{
    self, ApplyOptions, Author, CliError, EnvArg, Format, ImageArg, PruneScope, SetArgs,
    WatchOptions, exit_code,
};
use switchyard::clock::Clock;
use switchyard::config::{self, LogFormat, Settings};
use switchyard::controller::{self, Context, ControllerConfig};
use switchyard::demo::{self, DemoOptions};
use switchyard::model::RequestKind;
use switchyard::state::ControllerState;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  invalid input (a bad document, file or flag value); nothing was written
  2  usage error (unknown command or flag, missing argument)
  3  conflict (other writers kept winning) or not found
  4  AWS or network error, including an AWS identity that cannot be determined
  5  watch: the release settled without becoming Healthy (RolledBack, Failed, Invalid, Paused)
  6  watch: the timeout passed before the release settled

Every command that reads or writes releases takes --table or SWITCHYARD_TABLE, and the
standard AWS environment (credentials, AWS_REGION, AWS_ENDPOINT_URL). Every write records
the caller's AWS identity (STS GetCallerIdentity) and the time in the release's audit trail
(`switchyard history NAME`).

`apply` sets the whole spec: in a release managed from git, the next apply overwrites what
`release set`, `pause` or `resume` changed. Change git instead, or use them for emergencies
and then bring git in line.";

/// A reconciling release controller for blue/green and canary releases of Amazon ECS services.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, after_help = EXIT_CODES)]
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
        #[arg(long, short = 'o', value_enum, default_value_t = DemoOutput::Text)]
        output: DemoOutput,
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
    /// Validate release documents offline (for pre-commit hooks); exit 1 on any error.
    ///
    /// Every error names the file, the document's position in it (1-based) and the field:
    /// `releases/web.yaml: document 2: spec.taskDefinition.containers.web.image: must not be
    /// empty`. Reads at most 4 MiB per file; never calls AWS.
    Validate {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate release documents, then write each as the desired state of its release.
    ///
    /// Nothing is written if any document is invalid. Each release is written on the
    /// condition that it did not change since it was read (re-read and written again if it
    /// did); unchanged releases are not written. Prints `release/NAME created (generation
    /// N)`, `configured` or `unchanged` per release, then a summary.
    ///
    /// `--prune` deletes the releases in scope (`--selector` or `--all`) that no document
    /// names. Deleting a release stops its management and never touches the ECS service; a
    /// deployment in flight keeps running under CodeDeploy but is no longer followed (no
    /// promotion, no rollback on alarm): the output warns about each such release.
    ///
    /// `apply` sets the whole spec, so in a release managed from git, git wins over
    /// `release set`, `pause` and `resume`.
    Apply {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Write nothing; print what would change, with the spec fields that differ
        /// (environment values hidden).
        #[arg(long)]
        dry_run: bool,
        /// Also delete the releases that none of the documents names, among those selected
        /// by --selector or --all (one of them is required).
        #[arg(long, requires = "prune_scope")]
        prune: bool,
        /// With --prune: only releases whose labels match every KEY=VALUE may be deleted
        /// (repeatable). Every document given is applied whatever its labels.
        #[arg(
            long,
            short = 'l',
            value_name = "KEY=VALUE",
            value_parser = cli::parse_selector,
            group = "prune_scope",
            requires = "prune"
        )]
        selector: Vec<(String, String)>,
        /// With --prune: every release of the table may be deleted.
        #[arg(long, group = "prune_scope", requires = "prune")]
        all: bool,
        #[command(flatten)]
        table: TableArg,
    },
    /// Show releases: all of them (a table by default), or one.
    ///
    /// Table columns: NAME, PHASE, GEN/OBSERVED (the spec's generation / the one the status
    /// describes), LIVE and DESIRED task definitions, TRAFFIC (live/candidate percent),
    /// UPDATED (since the last spec write), MESSAGE (cut to the terminal's width, or to
    /// COLUMNS).
    Get {
        /// The release's name; all releases when absent.
        name: Option<String>,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        table: TableArg,
    },
    /// Show a release's history: the audit trail (who wrote what, when) and the rollouts and
    /// requests the controller finished, merged by time, newest first.
    History {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        table: TableArg,
    },
    /// Follow a release until it settles: phase, lifecycle event, traffic shift.
    ///
    /// On a terminal the view is redrawn in place; otherwise one line per change (or with
    /// -o json one JSON object per line, with -o yaml one YAML document per change). Settled
    /// means the status describes the current generation and its phase is Healthy (exit 0),
    /// or RolledBack, Failed, Invalid or Paused (exit 5). Exit 6 when --timeout passes first,
    /// 3 when the release does not exist.
    Watch {
        /// The release's name (`metadata.name`).
        name: String,
        /// Give up after this long (30s, 10m, 1h); 0 waits for ever.
        #[arg(long, value_parser = config::parse_duration, default_value = "0s")]
        timeout: Duration,
        /// How often to read the release.
        #[arg(long, value_parser = parse_interval, default_value = "2s")]
        interval: Duration,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        table: TableArg,
    },
    /// Change a release's desired state.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Delete a release: stop managing it.
    ///
    /// Never touches the ECS service. A deployment in flight keeps running under CodeDeploy
    /// but is no longer followed (no promotion, no rollback on alarm); the output warns when
    /// the release was not settled. A release managed from git comes back with the next
    /// apply: delete it from git and use `apply --prune` instead.
    Delete {
        /// The release's name (`metadata.name`).
        name: String,
        /// Exit 0 when the release does not exist.
        #[arg(long)]
        ignore_not_found: bool,
        #[command(flatten)]
        table: TableArg,
    },
    /// Ask the controller to shift production traffic to the current generation's deployment
    /// (manual promotion) once it is ready.
    ///
    /// Records a request beside the spec for the current generation (never bumps it, never
    /// calls AWS); the controller acts on it once and records that in the history.
    Promote {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Ask the controller to stop the current generation's deployment and roll back.
    ///
    /// Records a request beside the spec for the current generation (never bumps it, never
    /// calls AWS); with nothing in flight the controller ignores it.
    Abort {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Ask the controller to deploy the current generation again after it rolled back or
    /// failed (a new attempt).
    ///
    /// Records a request beside the spec for the current generation (never bumps it, never
    /// calls AWS).
    Retry {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Pause a release: the controller starts nothing new (no deployment, no automatic
    /// promotion); a deployment in flight is still followed and rolled back on alarm.
    ///
    /// Sets `spec.paused: true` with a conditional spec write (bumps the generation). The
    /// next `apply` of a document without `paused: true` resumes it: git wins.
    Pause {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Resume a paused release: sets `spec.paused: false` (bumps the generation).
    Resume {
        /// The release's name (`metadata.name`).
        name: String,
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
enum ReleaseCommand {
    /// Set container images and environment variables of an existing release.
    ///
    /// Reads the release, changes the named containers in its spec (a container the spec
    /// does not list yet is added; the controller checks that the task definition has it),
    /// validates the result (exit 1 and nothing written if invalid) and writes it on the
    /// condition that nobody wrote in between; if someone did, reads again and re-applies
    /// the change, so concurrent writers never lose an update. Prints `release/NAME
    /// generation N`. Exit 3 if the release does not exist.
    ///
    /// `apply` sets the whole spec, so in a release managed from git, the next apply
    /// overwrites this change: git wins.
    Set {
        /// The release's name (`metadata.name`).
        name: String,
        /// CONTAINER=IMAGE (repeatable).
        #[arg(long = "image", value_name = "CONTAINER=IMAGE", value_parser = cli::parse_image_arg, required_unless_present = "env")]
        images: Vec<ImageArg>,
        /// CONTAINER:KEY=VALUE, merged over the task definition's environment (repeatable).
        #[arg(long = "env", value_name = "CONTAINER:KEY=VALUE", value_parser = cli::parse_env_arg)]
        env: Vec<EnvArg>,
        #[command(flatten)]
        table: TableArg,
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

#[derive(Debug, Args)]
struct TableArg {
    /// The DynamoDB table of the releases.
    #[arg(long, env = "SWITCHYARD_TABLE", default_value = config::DEFAULT_TABLE)]
    table: String,
}

#[derive(Debug, Args)]
struct OutputArg {
    /// The output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    #[value(alias = "text")]
    Table,
    Json,
    Yaml,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Table => Format::Table,
            OutputFormat::Json => Format::Json,
            OutputFormat::Yaml => Format::Yaml,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoOutput {
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

/// A polling interval: a duration of at least 100 ms.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let interval = config::parse_duration(s)?;
    if interval < Duration::from_millis(100) {
        Err(format!("`{s}` is too short; at least 100ms"))
    } else {
        Ok(interval)
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
    let result = runtime.block_on(run_command(cli.command));
    // Do not wait for stray blocking tasks (a stdin reader, a slow resolver) at exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(exit_code::OK),
        Err(error) => {
            // Messages carry text from AWS and documents; the CLI's own line breaks stay.
            let message = cli::escape_controls_keeping_lines(&error.to_string());
            eprintln!("error: {message}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run_command(command: Command) -> Result<(), CliError> {
    if !matches!(command, Command::Demo { .. } | Command::Run { .. }) {
        init_telemetry("warn", LogFormat::Text);
    }
    let mut out = std::io::stdout();
    match command {
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
                json: output == DemoOutput::Json,
                listen,
            })
            .await
        }
        Command::Healthcheck { url } => healthcheck(url).await,
        Command::Run { config, listen } => run_controller(config, listen).await,
        Command::Validate { files } => validate(&files),
        Command::Apply {
            files,
            dry_run,
            prune,
            selector,
            all,
            table,
        } => {
            let prune = match (prune, all) {
                (false, _) => None,
                (true, true) => Some(PruneScope::All),
                (true, false) => Some(PruneScope::Selector(selector.into_iter().collect())),
            };
            apply(&files, ApplyOptions { dry_run, prune }, &table.table).await
        }
        Command::Get {
            name,
            output,
            table,
        } => get(name.as_deref(), output.output.into(), &table.table).await,
        Command::History {
            name,
            output,
            table,
        } => history(&name, output.output.into(), &table.table).await,
        Command::Watch {
            name,
            timeout,
            interval,
            output,
            table,
        } => {
            let format = Format::from(output.output);
            let options = WatchOptions {
                interval,
                timeout: (!timeout.is_zero()).then_some(timeout),
                format,
                terminal: format == Format::Table && std::io::stdout().is_terminal(),
                width: output_width(),
            };
            let session = Session::connect(&table.table).await?;
            cli::watch(&session.store, &name, &options, &mut out)
                .await
                .map(|_| ())
        }
        Command::Release {
            command:
                ReleaseCommand::Set {
                    name,
                    images,
                    env,
                    table,
                },
        } => {
            let session = Session::connect(&table.table).await?;
            let author = session.author().await?;
            let args = SetArgs { images, env };
            cli::release_set(&session.store, &name, &args, &author, &mut out)
                .await
                .map(|_| ())
        }
        Command::Delete {
            name,
            ignore_not_found,
            table,
        } => {
            let session = Session::connect(&table.table).await?;
            cli::delete(&session.store, &name, ignore_not_found, &mut out)
                .await
                .map(|_| ())
        }
        Command::Promote { name, table } => request(&name, RequestKind::Promote, &table).await,
        Command::Abort { name, table } => request(&name, RequestKind::Abort, &table).await,
        Command::Retry { name, table } => request(&name, RequestKind::Retry, &table).await,
        Command::Pause { name, table } => pause(&name, true, &table).await,
        Command::Resume { name, table } => pause(&name, false, &table).await,
        Command::Table {
            command: TableCommand::Create { table },
        } => table_create(&table.table).await,
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
    let store = Arc::new(store);
    let clock = Clock::system();
    // Replicas share the releases through shard leases; one replica simply takes them all.
    let replica = replica_id();
    tracing::info!(replica = %replica, shards = settings.shards, "taking part in lease assignment");
    let leases = switchyard::controller::Leases::new(
        store.clone(),
        replica,
        settings.shards,
        settings.lease_timing(),
        &clock,
    );
    let ctx = Context::new(
        store,
        Arc::new(AwsAdapters::new(sdk, aws::build_ports)),
        clock,
        controller_config(&settings),
        ControllerState::new(),
    )
    .with_leases(leases);
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
    let url = match url {
        Some(url) => url,
        None => {
            let listen = std::env::var("SWITCHYARD_LISTEN")
                .unwrap_or_else(|_| config::DEFAULT_LISTEN.into());
            switchyard::http::default_healthcheck_url(&listen).map_err(CliError::Invalid)?
        }
    };
    switchyard::http::healthcheck(&url)
        .await
        .map_err(CliError::Aws)?;
    println!("healthy");
    Ok(())
}

/// A command's connection to AWS: the SDK configuration and the release store on `--table`.
struct Session {
    sdk: aws_config::SdkConfig,
    store: DynamoStore,
}

impl Session {
    async fn connect(table: &str) -> Result<Session, CliError> {
        let table =
            config::parse_table(table).map_err(|m| CliError::Invalid(format!("--table: {m}")))?;
        let sdk = aws::load_sdk_config(&ClientSettings::default()).await;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_dynamodbstreams::Client::new(&sdk),
            table,
        );
        Ok(Session { sdk, store })
    }

    /// Who writes (the caller's AWS identity, once per command) and when.
    async fn author(&self) -> Result<Author, CliError> {
        let identity = aws_sdk_sts::Client::new(&self.sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                CliError::Aws(format!(
                    "the caller's AWS identity could not be determined (STS \
                     GetCallerIdentity), and every write records it; nothing was written: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(e)
                ))
            })?;
        let by = identity.arn.filter(|arn| !arn.is_empty()).ok_or_else(|| {
            CliError::Aws(
                "the caller's AWS identity could not be determined: STS GetCallerIdentity \
                 returned no ARN; nothing was written"
                    .into(),
            )
        })?;
        Ok(Author {
            by,
            at: jiff::Timestamp::now(),
        })
    }
}

/// The width to fit tables into: `COLUMNS` when set, else the terminal's when stdout is one,
/// else none (a pipe gets whole lines).
fn output_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_columns().or(Some(80))
}

#[cfg(unix)]
fn terminal_columns() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it is given, which lives for the
    // whole call; a failing call leaves it zeroed and returns -1.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (result == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(not(unix))]
fn terminal_columns() -> Option<usize> {
    None
}

/// Prints each error line on stderr and returns the error that ends the command.
fn invalid_documents(errors: &[String], files: usize, consequence: &str) -> CliError {
    for error in errors {
        eprintln!("{}", cli::escape_controls(error));
    }
    CliError::Invalid(format!(
        "{} error(s) in {files} file(s); {consequence}",
        errors.len()
    ))
}

fn read_all(paths: &[PathBuf], consequence: &str) -> Result<Vec<cli::SourceDocument>, CliError> {
    let files = cli::collect_files(paths)?;
    if files.is_empty() {
        return Err(CliError::Invalid(format!(
            "no *.yaml, *.yml or *.json file in {}; {consequence}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    cli::read_documents(&files)
        .map_err(|errors| invalid_documents(&errors, files.len(), consequence))
}

fn validate(paths: &[PathBuf]) -> Result<(), CliError> {
    let documents = read_all(paths, "nothing is valid until all are fixed")?;
    let files: std::collections::BTreeSet<&PathBuf> = documents.iter().map(|d| &d.file).collect();
    println!(
        "{} document(s) in {} file(s) valid",
        documents.len(),
        files.len()
    );
    Ok(())
}

async fn apply(paths: &[PathBuf], options: ApplyOptions, table: &str) -> Result<(), CliError> {
    let documents = read_all(paths, "nothing was written")?;
    let session = Session::connect(table).await?;
    let author = if options.dry_run {
        Author {
            by: "(dry run)".into(),
            at: jiff::Timestamp::now(),
        }
    } else {
        session.author().await?
    };
    let documents: Vec<_> = documents.into_iter().map(|d| d.document).collect();
    cli::apply(
        &session.store,
        &documents,
        &options,
        &author,
        &mut std::io::stdout(),
    )
    .await
    .map(|_| ())
}

fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn get(name: Option<&str>, format: Format, table: &str) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let releases = match name {
        Some(name) => vec![cli::get_release(&session.store, name).await?],
        None => {
            let releases = switchyard::ports::ReleaseStore::list(&session.store).await?;
            if releases.is_empty() && format == Format::Table {
                eprintln!("no releases in table {}", session.store.table());
                return Ok(());
            }
            releases
        }
    };
    let text = match (format, name) {
        (Format::Table, _) => cli::render_list(&releases, Clock::system().now(), output_width()),
        (Format::Json, Some(_)) => cli::to_json(&cli::ReleaseView::from(releases[0].clone()))?,
        (Format::Yaml, Some(_)) => cli::to_yaml(&cli::ReleaseView::from(releases[0].clone()))?,
        (Format::Json, None) => cli::to_json(&cli::ListView::new(releases))?,
        (Format::Yaml, None) => cli::to_yaml(&cli::ListView::new(releases))?,
    };
    print(&text)
}

/// `history -o json|yaml`.
#[derive(serde::Serialize)]
struct HistoryView {
    name: String,
    generation: u64,
    items: Vec<cli::HistoryItem>,
}

async fn history(name: &str, format: Format, table: &str) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let release = cli::get_release(&session.store, name).await?;
    let items = cli::history_items(&release);
    let text = match format {
        Format::Table => cli::render_history(&items, output_width()),
        Format::Json | Format::Yaml => {
            let view = HistoryView {
                name: release.name.clone(),
                generation: release.generation,
                items,
            };
            if format == Format::Json {
                cli::to_json(&view)?
            } else {
                cli::to_yaml(&view)?
            }
        }
    };
    print(&text)
}

async fn request(name: &str, kind: RequestKind, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(&table.table).await?;
    let author = session.author().await?;
    cli::request(&session.store, name, kind, &author, &mut std::io::stdout())
        .await
        .map(|_| ())
}

async fn pause(name: &str, paused: bool, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(&table.table).await?;
    let author = session.author().await?;
    cli::set_paused(
        &session.store,
        name,
        paused,
        &author,
        &mut std::io::stdout(),
    )
    .await
    .map(|_| ())
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
