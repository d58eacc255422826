//! The `switchyard` binary: parse the command line, set up telemetry, run the command, exit
//! with a documented code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use switchyard::demo::{self, DemoOptions};
use switchyard::model::parse::parse_documents;

/// Exit codes (clap itself uses 2 for usage errors).
mod exit {
    pub const OK: u8 = 0;
    /// Invalid input: a bad document, a demo that did not settle.
    pub const INVALID: u8 = 1;
}

/// A reconciling release controller for blue/green and canary releases of Amazon ECS services.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
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
    },
    /// Validate release documents offline (for pre-commit hooks); non-zero exit on any error.
    Validate {
        /// Files or directories (`*.yaml`, `*.yml`, `*.json` inside, recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
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
    init_telemetry();
    match cli.command {
        Command::Demo {
            speed,
            exit_when_settled,
            output,
        } => run_demo(DemoOptions {
            speed,
            exit_when_settled,
            json: output == Output::Json,
        }),
        Command::Validate { files } => validate(&files),
    }
}

/// Logs go to stderr, warnings and up unless `RUST_LOG` says otherwise.
fn init_telemetry() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run_demo(options: DemoOptions) -> ExitCode {
    let json = options.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(exit::INVALID);
        }
    };
    match runtime.block_on(demo::run(options)) {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: cannot encode the report: {error}");
                        return ExitCode::from(exit::INVALID);
                    }
                }
            }
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(exit::INVALID)
        }
    }
}

/// Collects the document files named on the command line (directories recursively).
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?;
                let mut found: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                found.sort();
                for entry in found {
                    if entry.is_dir() {
                        stack.push(entry);
                    } else if matches!(
                        entry.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    ) {
                        files.push(entry);
                    }
                }
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    files.sort();
    Ok(files)
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let files = match collect_files(paths) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(exit::INVALID);
        }
    };
    let mut documents = 0;
    let mut failed = false;
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("{}: cannot read: {error}", file.display());
                failed = true;
                continue;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            eprintln!("{}: not UTF-8 text", file.display());
            failed = true;
            continue;
        };
        match parse_documents(&text) {
            Ok(parsed) => documents += parsed.len(),
            Err(errors) => {
                failed = true;
                for document in errors {
                    for error in &document.errors {
                        eprintln!("{}: document {}: {error}", file.display(), document.index);
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::from(exit::INVALID)
    } else {
        println!("{documents} document(s) in {} file(s) valid", files.len());
        ExitCode::from(exit::OK)
    }
}
