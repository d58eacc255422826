//! The binary's commands (all but the daemon, `run`, which `main.rs` runs): each takes its
//! parsed arguments, connects to the release store on `--table` when it needs one, runs the
//! command of this module's siblings against it and prints to stdout.

use std::collections::BTreeSet;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use serde::Serialize;

use super::args::{DemoOutput, DiffOutput, ReleaseCommand, StoreCommand, TableArg, TableCommand};
use super::{
    ApplyOptions, Author, CliError, DiffError, Format, HistoryItem, ListView, PruneScope,
    ReleaseView, SetArgs, SourceDocument, WatchOptions,
};
use crate::aws::{AwsSession, CallerIdentityError, ClientSettings, DynamoStore};
use crate::clock::Clock;
use crate::config;
use crate::demo::{self, DemoOptions};
use crate::model::RequestKind;
use crate::ports::ReleaseStore;

/// Runs `validate` or a command on the release store.
pub async fn execute(command: StoreCommand) -> Result<(), CliError> {
    let mut out = std::io::stdout();
    match command {
        StoreCommand::Validate { files } => validate(&files),
        StoreCommand::Apply {
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
            apply(&files, ApplyOptions { dry_run, prune }, &table).await
        }
        StoreCommand::Diff {
            files,
            output,
            show_values,
            exit_code,
            table,
        } => diff(&files, output, show_values, exit_code, &table).await,
        StoreCommand::Get {
            name,
            output,
            table,
        } => get(name.as_deref(), output.output.into(), &table).await,
        StoreCommand::History {
            name,
            output,
            table,
        } => history(&name, output.output.into(), &table).await,
        StoreCommand::Watch {
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
            let session = Session::connect(&table).await?;
            super::watch(&session.store, &name, &options, &mut out)
                .await
                .map(|_| ())
        }
        StoreCommand::Release {
            command:
                ReleaseCommand::Set {
                    name,
                    images,
                    env,
                    table,
                },
        } => {
            let session = Session::connect(&table).await?;
            let author = session.author().await?;
            let args = SetArgs { images, env };
            super::release_set(&session.store, &name, &args, &author, &mut out)
                .await
                .map(|_| ())
        }
        StoreCommand::Delete {
            name,
            ignore_not_found,
            table,
        } => {
            let session = Session::connect(&table).await?;
            super::delete(&session.store, &name, ignore_not_found, &mut out)
                .await
                .map(|_| ())
        }
        StoreCommand::Promote { name, full, table } => {
            let session = Session::connect(&table).await?;
            let author = session.author().await?;
            super::edit::request_full(
                &session.store,
                &name,
                RequestKind::Promote,
                full,
                &author,
                &mut std::io::stdout(),
            )
            .await
            .map(|_| ())
        }
        StoreCommand::Abort { name, table } => request(&name, RequestKind::Abort, &table).await,
        StoreCommand::Retry { name, table } => request(&name, RequestKind::Retry, &table).await,
        StoreCommand::Pause { name, table } => pause(&name, true, &table).await,
        StoreCommand::Resume { name, table } => pause(&name, false, &table).await,
        StoreCommand::Table {
            command: TableCommand::Create { table },
        } => table_create(&table).await,
    }
}

/// `switchyard demo`: the controller against the simulated AWS; with `-o json`, the report
/// on stdout at the end. `heap` reads the binary's allocator for `/metrics`.
pub async fn demo(
    speed: f64,
    exit_when_settled: bool,
    output: DemoOutput,
    listen: Option<std::net::SocketAddr>,
    heap: Option<fn() -> Option<crate::state::HeapStats>>,
) -> Result<(), CliError> {
    let json = output == DemoOutput::Json;
    let report = demo::run(DemoOptions {
        speed,
        exit_when_settled,
        json,
        listen,
        heap,
    })
    .await
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Invalid(format!("cannot encode the report: {e}")))?;
        println!("{text}");
    }
    Ok(())
}

/// `switchyard healthcheck`: the controller at `url` (by default the one this environment's
/// `SWITCHYARD_LISTEN` describes) answers `/healthz`.
pub async fn healthcheck(url: Option<String>) -> Result<(), CliError> {
    let url = match url {
        Some(url) => url,
        None => {
            let listen = std::env::var("SWITCHYARD_LISTEN")
                .unwrap_or_else(|_| config::DEFAULT_LISTEN.into());
            crate::http::default_healthcheck_url(&listen).map_err(CliError::Invalid)?
        }
    };
    crate::http::healthcheck(&url)
        .await
        .map_err(CliError::Aws)?;
    println!("healthy");
    Ok(())
}

/// A command's connection to AWS and the release store on `--table`.
struct Session {
    aws: AwsSession,
    store: DynamoStore,
}

impl Session {
    async fn connect(table: &TableArg) -> Result<Session, CliError> {
        let table = config::parse_table(&table.table)
            .map_err(|m| CliError::Invalid(format!("--table: {m}")))?;
        let aws = AwsSession::load(&ClientSettings::default()).await;
        let store = aws.release_store(table);
        Ok(Session { aws, store })
    }

    /// Who writes (the caller's AWS identity, once per command) and when.
    async fn author(&self) -> Result<Author, CliError> {
        let by = self.aws.caller_arn().await.map_err(|e| match e {
            CallerIdentityError::CallFailed(cause) => CliError::Aws(format!(
                "the caller's AWS identity could not be determined (STS GetCallerIdentity), \
                 and every write records it; nothing was written: {cause}"
            )),
            CallerIdentityError::NoArn => CliError::Aws(format!(
                "the caller's AWS identity could not be determined: {e}; nothing was written"
            )),
        })?;
        Ok(Author {
            by,
            at: Clock::system().now(),
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
    let columns = terminal_size::terminal_size_of(std::io::stdout())
        .map(|(terminal_size::Width(columns), _)| usize::from(columns));
    columns.or(Some(80))
}

/// Prints each error line on stderr and returns the error that ends the command.
fn invalid_documents(errors: &[String], files: usize, consequence: &str) -> CliError {
    for error in errors {
        eprintln!("{}", super::escape_controls(error));
    }
    CliError::Invalid(format!(
        "{} error(s) in {files} file(s); {consequence}",
        errors.len()
    ))
}

fn read_all(paths: &[PathBuf], consequence: &str) -> Result<Vec<SourceDocument>, CliError> {
    let files = super::collect_files(paths)?;
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
    super::read_documents(&files)
        .map_err(|errors| invalid_documents(&errors, files.len(), consequence))
}

fn validate(paths: &[PathBuf]) -> Result<(), CliError> {
    let documents = read_all(paths, "nothing is valid until all are fixed")?;
    let files: BTreeSet<&PathBuf> = documents.iter().map(|d| &d.file).collect();
    println!(
        "{} document(s) in {} file(s) valid",
        documents.len(),
        files.len()
    );
    Ok(())
}

async fn apply(paths: &[PathBuf], options: ApplyOptions, table: &TableArg) -> Result<(), CliError> {
    let documents = read_all(paths, "nothing was written")?;
    let session = Session::connect(table).await?;
    let author = if options.dry_run {
        Author {
            by: "(dry run)".into(),
            at: Clock::system().now(),
        }
    } else {
        session.author().await?
    };
    let documents: Vec<_> = documents.into_iter().map(|d| d.document).collect();
    super::apply(
        &session.store,
        &documents,
        &options,
        &author,
        &mut std::io::stdout(),
    )
    .await
    .map(|_| ())
}

/// `diff`: reads every document (invalid ones exit 1 as in `apply`), then the table and AWS;
/// prints what would change and writes nothing.
async fn diff(
    paths: &[PathBuf],
    output: DiffOutput,
    show_values: bool,
    exit_code: bool,
    table: &TableArg,
) -> Result<(), CliError> {
    let consequence = "nothing was compared";
    let documents = read_all(paths, consequence)?;
    let session = Session::connect(table).await?;
    // As the controller reaches the releases: their region and account, as their roles.
    let external_id = match std::env::var(config::env_var_for("externalId")) {
        Ok(value) => Some(
            config::parse_external_id(&value)
                .map_err(|m| CliError::Invalid(format!("SWITCHYARD_EXTERNAL_ID: {m}")))?,
        ),
        Err(_) => None,
    };
    let account = session.aws.caller_account().await;
    let aws = crate::access::AwsAccess::new(
        std::sync::Arc::new(session.aws.adapters().with_account(account)),
        Clock::system(),
        crate::access::SessionSettings {
            external_id,
            session_name: "switchyard-diff".into(),
        },
    );
    let diffs = match super::diff(&session.store, &aws, &documents, Clock::system().now()).await {
        Ok(diffs) => diffs,
        Err(DiffError::Invalid(errors)) => {
            let files: BTreeSet<&PathBuf> = documents.iter().map(|d| &d.file).collect();
            return Err(invalid_documents(&errors, files.len(), consequence));
        }
        Err(DiffError::Failed(error)) => return Err(error),
    };
    match output {
        DiffOutput::Json => print(&super::render_json(&diffs, show_values))?,
        DiffOutput::Text => {
            let mut out = std::io::stdout().lock();
            super::write_text(&mut out, &diffs, show_values)?;
            out.flush()?;
        }
    }
    let changing = diffs.iter().filter(|d| d.would_change()).count();
    if exit_code && changing > 0 {
        return Err(CliError::WouldChange(format!(
            "{changing} release(s) would change"
        )));
    }
    Ok(())
}

fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn get(name: Option<&str>, format: Format, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let releases = match name {
        Some(name) => vec![super::get_release(&session.store, name).await?],
        None => {
            let releases = ReleaseStore::list(&session.store).await?;
            if releases.is_empty() && format == Format::Table {
                eprintln!("no releases in table {}", session.store.table());
                return Ok(());
            }
            releases
        }
    };
    let text = match (format, name) {
        (Format::Table, _) => super::render_list(&releases, Clock::system().now(), output_width()),
        (Format::Json, Some(_)) => super::to_json(&ReleaseView::from(releases[0].clone()))?,
        (Format::Yaml, Some(_)) => super::to_yaml(&ReleaseView::from(releases[0].clone()))?,
        (Format::Json, None) => super::to_json(&ListView::new(releases))?,
        (Format::Yaml, None) => super::to_yaml(&ListView::new(releases))?,
    };
    print(&text)
}

/// `history -o json|yaml`.
#[derive(Serialize)]
struct HistoryView {
    name: String,
    generation: u64,
    items: Vec<HistoryItem>,
}

async fn history(name: &str, format: Format, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let release = super::get_release(&session.store, name).await?;
    let items = super::history_items(&release);
    let text = match format {
        Format::Table => super::render_history(&items, output_width()),
        Format::Json | Format::Yaml => {
            let view = HistoryView {
                name: release.name.clone(),
                generation: release.generation,
                items,
            };
            if format == Format::Json {
                super::to_json(&view)?
            } else {
                super::to_yaml(&view)?
            }
        }
    };
    print(&text)
}

async fn request(name: &str, kind: RequestKind, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let author = session.author().await?;
    super::request(&session.store, name, kind, &author, &mut std::io::stdout())
        .await
        .map(|_| ())
}

async fn pause(name: &str, paused: bool, table: &TableArg) -> Result<(), CliError> {
    let session = Session::connect(table).await?;
    let author = session.author().await?;
    super::set_paused(
        &session.store,
        name,
        paused,
        &author,
        &mut std::io::stdout(),
    )
    .await
    .map(|_| ())
}

async fn table_create(table: &TableArg) -> Result<(), CliError> {
    let table = config::parse_table(&table.table)
        .map_err(|m| CliError::Invalid(format!("--table: {m}")))?;
    let store = AwsSession::load(&ClientSettings::default())
        .await
        .release_store(table.clone());
    let created = store
        .create_table()
        .await
        .map_err(|e| CliError::Aws(format!("creating table {table}: {e}")))?;
    println!("table {table}: {created}");
    Ok(())
}
