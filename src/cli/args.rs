//! The command line: clap's types for every command, flag and value, and the parsers of the
//! values clap cannot check by itself. What each command does is in `commands.rs` (and the
//! daemon, `run`, in `main.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{EnvArg, Format, ImageArg, parse_env_arg, parse_image_arg, parse_selector};
use crate::config;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  invalid input (a bad document, file or flag value); nothing was written
  2  usage error (unknown command or flag, missing argument)
  3  conflict (other writers kept winning) or not found
  4  AWS or network error, including an AWS identity that cannot be determined
  5  watch: the release settled without becoming Healthy (RolledBack, Failed, Invalid, Paused)
  6  watch: the timeout passed before the release settled
  7  diff --exit-code: something would change

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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    #[command(flatten)]
    Store(StoreCommand),
}

/// `validate` and the commands on the release store (`--table`).
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
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
            value_parser = parse_selector,
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
    /// Show what `apply` would change, reading the table and AWS, writing nothing.
    ///
    /// Per release: the spec fields that would change (as `apply --dry-run` lists them; a
    /// release the table does not hold is shown as created), then the candidate task
    /// definition the controller would deploy, resolved as the controller resolves it,
    /// against the live one: a new revision it would register, a revision it would reuse,
    /// or the live one (nothing to deploy). The text output is a unified diff of the two
    /// task definitions' JSON (keys sorted, unchanged fields left out); `-o json` prints
    /// `{"releases": [{"name", "changes", "liveTaskDefinitionArn",
    /// "candidateTaskDefinition"}]}`, where `candidateTaskDefinition` is the input
    /// `RegisterTaskDefinition` would get. Environment values are shown only with
    /// `--show-values`; otherwise the text lists which keys are added, removed or changed,
    /// and JSON has `"(hidden)"`.
    ///
    /// Exit 0 whether or not something would change (7 with `--exit-code` when something
    /// would), 1 for invalid documents.
    Diff {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// The output format.
        #[arg(long, short = 'o', value_enum, default_value_t = DiffOutput::Text)]
        output: DiffOutput,
        /// Show environment variables' values (hidden by default: they often hold secrets).
        #[arg(long)]
        show_values: bool,
        /// Exit 7 when something would change (0 when nothing would).
        #[arg(long)]
        exit_code: bool,
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
    /// Let the rollout in flight past the gate it waits at: CodeDeploy's `Ready`, a canary's
    /// pause, an ECS `PAUSE` hook.
    ///
    /// Records a request beside the spec (never bumps the generation, never calls AWS); the
    /// controller applies it to the rollout in flight once and records that in the history,
    /// or declines it with the reason when nothing is in flight.
    Promote {
        /// The release's name (`metadata.name`).
        name: String,
        /// Skip every remaining step of a `taskSets` canary, not only the current pause.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        table: TableArg,
    },
    /// Ask the controller to roll the rollout in flight back.
    ///
    /// Records a request beside the spec (never bumps the generation, never calls AWS);
    /// with nothing in flight the controller declines it, saying so in the history.
    Abort {
        /// The release's name (`metadata.name`).
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Ask the controller to roll the candidate out again after it rolled back or failed (a
    /// new rollout), or to ask again at once for a call AWS refused.
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
pub enum ReleaseCommand {
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
        #[arg(long = "image", value_name = "CONTAINER=IMAGE", value_parser = parse_image_arg, required_unless_present = "env")]
        images: Vec<ImageArg>,
        /// CONTAINER:KEY=VALUE, merged over the task definition's environment (repeatable).
        #[arg(long = "env", value_name = "CONTAINER:KEY=VALUE", value_parser = parse_env_arg)]
        env: Vec<EnvArg>,
        #[command(flatten)]
        table: TableArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create the table (with its stream) for local use; Terraform does it in production.
    Create {
        #[command(flatten)]
        table: TableArg,
    },
}

#[derive(Debug, Args)]
pub struct TableArg {
    /// The DynamoDB table of the releases.
    #[arg(long, env = "SWITCHYARD_TABLE", default_value = config::DEFAULT_TABLE)]
    pub table: String,
}

#[derive(Debug, Args)]
pub struct OutputArg {
    /// The output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
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
pub enum DiffOutput {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoOutput {
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
