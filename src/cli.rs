//! The CLI's commands against a release store, independent of the argument parser, so they
//! run the same against DynamoDB and against the simulated store in tests.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use crate::model::parse::parse_documents;
use crate::model::{ReleaseDocument, ReleaseStatus};
use crate::ports::{ReleaseStore, SpecPrecondition, SpecWrite, StoreError, StoredRelease};

/// Exit codes shared by every command (clap itself uses 2 for usage errors).
pub mod exit_code {
    pub const OK: u8 = 0;
    /// Invalid input: a bad document or configuration.
    pub const INVALID: u8 = 1;
    /// A conflict (someone else wrote first) or something not found.
    pub const CONFLICT_OR_NOT_FOUND: u8 = 3;
    /// AWS or the network failed.
    pub const AWS: u8 = 4;
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input is invalid (documents, files, configuration).
    #[error("{0}")]
    Invalid(String),
    /// A concurrent write won, or the release does not exist.
    #[error("{0}")]
    ConflictOrNotFound(String),
    /// The store or AWS failed.
    #[error("{0}")]
    Aws(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) => exit_code::INVALID,
            CliError::ConflictOrNotFound(_) => exit_code::CONFLICT_OR_NOT_FOUND,
            CliError::Aws(_) => exit_code::AWS,
        }
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ConditionFailed { .. } | StoreError::NotFound { .. } => {
                CliError::ConflictOrNotFound(error.to_string())
            }
            other => CliError::Aws(other.to_string()),
        }
    }
}

/// The release document files named on the command line (directories recursively, taking
/// `*.yaml`, `*.yml` and `*.json`), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    CliError::Invalid(format!("{}: cannot read directory: {e}", dir.display()))
                })?;
                for entry in entries.filter_map(Result::ok).map(|e| e.path()) {
                    if entry.is_dir() {
                        stack.push(entry);
                    } else if is_document_file(&entry) {
                        files.push(entry);
                    }
                }
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(CliError::Invalid(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn is_document_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads and validates every document of every file. Every error names the file, the
/// document's position in it (1-based) and the field path.
pub fn read_documents(files: &[PathBuf]) -> Result<Vec<(PathBuf, ReleaseDocument)>, Vec<String>> {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    errors.push(format!("{}: not UTF-8 text", file.display()));
                    continue;
                }
            },
            Err(error) => {
                errors.push(format!("{}: cannot read: {error}", file.display()));
                continue;
            }
        };
        match parse_documents(&text) {
            Ok(parsed) => documents.extend(parsed.into_iter().map(|d| (file.clone(), d))),
            Err(document_errors) => {
                for document in document_errors {
                    for error in &document.errors {
                        errors.push(format!(
                            "{}: document {}: {error}",
                            file.display(),
                            document.index + 1
                        ));
                    }
                }
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (file, document) in &documents {
        if let Some(first) = seen.insert(document.metadata.name.clone(), file.clone()) {
            errors.push(format!(
                "{}: release {} is also defined in {}",
                file.display(),
                document.metadata.name,
                first.display()
            ));
        }
    }
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(errors)
    }
}

/// What `apply` did (or would do) to one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub name: String,
    pub change: Change,
    /// The generation after the write (the current one when unchanged).
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// Writes each (already validated) document as the desired state of its release: a
/// conditional write on the generation that was read, so a concurrent writer is never
/// silently overwritten. Unchanged documents are not written.
pub async fn apply(
    store: &dyn ReleaseStore,
    documents: &[ReleaseDocument],
    written_by: &str,
    now: Timestamp,
) -> Result<Vec<Applied>, CliError> {
    let mut results = Vec::new();
    for document in documents {
        let name = &document.metadata.name;
        let spec = serde_json::to_value(&document.spec)
            .map_err(|e| CliError::Invalid(format!("{name}: cannot encode the spec: {e}")))?;
        let existing = store.get(name).await?;
        let precondition = match &existing {
            Some(current) if current.spec == spec && current.labels == document.metadata.labels => {
                results.push(Applied {
                    name: name.clone(),
                    change: Change::Unchanged,
                    generation: current.generation,
                });
                continue;
            }
            Some(current) => SpecPrecondition::Generation(current.generation),
            None => SpecPrecondition::Absent,
        };
        let generation = store
            .put_spec(SpecWrite {
                name: name.clone(),
                labels: document.metadata.labels.clone(),
                spec,
                precondition,
                written_by: written_by.to_string(),
                written_at: now,
            })
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => CliError::ConflictOrNotFound(format!(
                    "{name}: changed by someone else while applying; nothing written for it, run apply again"
                )),
                other => other.into(),
            })?;
        results.push(Applied {
            name: name.clone(),
            change: if existing.is_some() {
                Change::Configured
            } else {
                Change::Created
            },
            generation,
        });
    }
    Ok(results)
}

/// One release as `get -o json` and the status API show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub metadata: ReleaseMetadataView,
    pub spec: serde_json::Value,
    pub status: Option<ReleaseStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseMetadataView {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub generation: u64,
    pub updated_by: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl From<StoredRelease> for ReleaseView {
    fn from(release: StoredRelease) -> Self {
        Self {
            metadata: ReleaseMetadataView {
                name: release.name,
                labels: release.labels,
                generation: release.generation,
                updated_by: release.spec_updated_by,
                updated_at: release.spec_updated_at,
            },
            spec: release.spec,
            status: release.status,
        }
    }
}

/// One release's spec and status.
pub async fn get(store: &dyn ReleaseStore, name: &str) -> Result<ReleaseView, CliError> {
    store
        .get(name)
        .await?
        .map(ReleaseView::from)
        .ok_or_else(|| CliError::ConflictOrNotFound(format!("release {name} not found")))
}
