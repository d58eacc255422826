//! The CLI's commands against a release store, independent of the argument parser, so they
//! run the same against DynamoDB and against the simulated store in tests; and, on top of
//! them, the binary's command line.
//!
//! - `args.rs`: clap's types (every command, flag and value).
//! - `commands.rs`: each command of the binary but the daemon: connect to the table, run the
//!   command, print.
//! - `files.rs`: the document files named on the command line, read and validated.
//! - `apply.rs`: `apply` (with `--dry-run`, `--prune`) and `delete`.
//! - `diff.rs`: `diff`: the spec changes and the candidate task definition against the live
//!   one, reading the table and AWS, writing nothing.
//! - `edit.rs`: conditional spec edits (`release set`, `pause`, `resume`) retried on conflict,
//!   and operator requests (`promote`, `abort`, `retry`).
//! - `view.rs`: `get` and `history` as tables, JSON and YAML.
//! - `watch.rs`: `watch`, until the release settles.
//!
//! Commands write what they did to the `out` they are given (stdout in the binary) and
//! return a [`CliError`] whose [`CliError::exit_code`] is the process's exit code.

mod apply;
pub mod args;
mod commands;
mod diff;
mod edit;
mod files;
mod view;
mod watch;

use jiff::Timestamp;

use crate::model::AuditEntry;
use crate::ports::{ReleaseStore, StoreError, StoredRelease};

pub use crate::terminal::{escape_controls, escape_controls_keeping_lines};
pub use apply::{
    Applied, ApplyOptions, ApplyReport, Change, PruneScope, Pruned, apply, delete, parse_selector,
};
pub use commands::{demo, execute, healthcheck};
pub use diff::{
    CandidateDiff, CandidateSource, DiffError, ReleaseDiff, ReuseReason, diff, render_json,
    write_text,
};
pub use edit::{
    EditOutcome, EnvArg, ImageArg, RequestOutcome, SetArgs, parse_env_arg, parse_image_arg,
    release_set, request, set_paused,
};
pub use files::{SourceDocument, collect_files, read_documents};
pub use view::{
    Format, HistoryItem, ListView, format_age, history_items, render_history, render_list, to_json,
    to_yaml,
};
pub use watch::{WatchOptions, watch};
// The shape `get -o json|yaml` prints, shared with the status API.
pub use crate::view::{ReleaseMetadataView, ReleaseView};

/// Exit codes shared by every command. clap itself exits with 2 on a usage error.
pub mod exit_code {
    pub const OK: u8 = 0;
    /// Invalid input: a bad document, flag value or configuration. Nothing was written.
    pub const INVALID: u8 = 1;
    /// A usage error (unknown flag, missing argument), reported by the argument parser.
    pub const USAGE: u8 = 2;
    /// A conflict (someone else kept writing first) or something not found.
    pub const CONFLICT_OR_NOT_FOUND: u8 = 3;
    /// AWS or the network failed, including when the caller's identity cannot be
    /// determined (STS GetCallerIdentity).
    pub const AWS: u8 = 4;
    /// `watch`: the release settled without becoming Healthy (RolledBack, Failed, Invalid,
    /// or Paused).
    pub const NOT_HEALTHY: u8 = 5;
    /// `watch`: the timeout passed before the release settled.
    pub const TIMEOUT: u8 = 6;
    /// `diff --exit-code`: something would change.
    pub const WOULD_CHANGE: u8 = 7;
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input is invalid (documents, files, flag values, configuration).
    #[error("{0}")]
    Invalid(String),
    /// A concurrent write won (more often than the command retries), or the release does
    /// not exist.
    #[error("{0}")]
    ConflictOrNotFound(String),
    /// The store or AWS failed.
    #[error("{0}")]
    Aws(String),
    /// `watch`: the release settled in a phase other than Healthy.
    #[error("{0}")]
    NotHealthy(String),
    /// `watch`: the timeout passed first.
    #[error("{0}")]
    Timeout(String),
    /// `diff --exit-code`: something would change. Not a failure: the message is a note.
    #[error("{0}")]
    WouldChange(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) => exit_code::INVALID,
            CliError::ConflictOrNotFound(_) => exit_code::CONFLICT_OR_NOT_FOUND,
            CliError::Aws(_) => exit_code::AWS,
            CliError::NotHealthy(_) => exit_code::NOT_HEALTHY,
            CliError::Timeout(_) => exit_code::TIMEOUT,
            CliError::WouldChange(_) => exit_code::WOULD_CHANGE,
        }
    }

    /// Whether the command failed (as opposed to reporting a finding through its exit code).
    pub fn is_failure(&self) -> bool {
        !matches!(self, CliError::WouldChange(_))
    }

    fn not_found(name: &str) -> Self {
        CliError::ConflictOrNotFound(format!("release {name} not found"))
    }
}

impl From<StoreError> for CliError {
    /// The store's message carries AWS's text: its control characters are escaped here, so
    /// the only line breaks of an error are the CLI's own.
    fn from(error: StoreError) -> Self {
        let message = escape_controls(&error.to_string()).into_owned();
        match error {
            StoreError::ConditionFailed { .. } | StoreError::NotFound { .. } => {
                CliError::ConflictOrNotFound(message)
            }
            _ => CliError::Aws(message),
        }
    }
}

impl From<std::io::Error> for CliError {
    /// Writing the output failed (a closed pipe, a full disk).
    fn from(error: std::io::Error) -> Self {
        CliError::Invalid(format!("cannot write the output: {error}"))
    }
}

/// Who writes, and when: every write's audit entry names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The caller's AWS identity (STS GetCallerIdentity's ARN).
    pub by: String,
    pub at: Timestamp,
}

/// One release's spec and status.
pub async fn get(store: &dyn ReleaseStore, name: &str) -> Result<ReleaseView, CliError> {
    Ok(ReleaseView::from(get_release(store, name).await?))
}

/// One stored release, or `ConflictOrNotFound` naming it.
pub async fn get_release(store: &dyn ReleaseStore, name: &str) -> Result<StoredRelease, CliError> {
    store
        .get(name)
        .await?
        .ok_or_else(|| CliError::not_found(name))
}

/// The audit trail of a release, newest first.
pub fn audit_newest_first(release: &StoredRelease) -> Vec<AuditEntry> {
    release.audit.iter().rev().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn every_exit_code_is_documented_in_the_help_and_the_readme() {
        let codes = [
            (exit_code::OK, "success"),
            (exit_code::INVALID, "invalid input"),
            (exit_code::USAGE, "usage error"),
            (exit_code::CONFLICT_OR_NOT_FOUND, "conflict"),
            (exit_code::AWS, "AWS or network error"),
            (exit_code::NOT_HEALTHY, "watch"),
            (exit_code::TIMEOUT, "watch"),
            (exit_code::WOULD_CHANGE, "diff --exit-code"),
        ];
        let readme = include_str!("../../README.md");
        for (code, words) in codes {
            assert!(
                super::args::EXIT_CODES.contains(&format!("\n  {code}  {words}")),
                "exit code {code} ({words}) missing from args::EXIT_CODES"
            );
            assert!(
                readme.contains(&format!("\n| `{code}` |")),
                "exit code {code} missing from the README's table"
            );
        }
        assert!(
            readme.contains("| `7` | `diff --exit-code`: something would change |"),
            "the README says what 7 means"
        );
    }
}
