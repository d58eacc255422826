//! The release document files named on the command line, read and validated.
//!
//! Whatever the bytes, reading never panics and never hangs: only regular files are read,
//! at most `MAX_SOURCE_BYTES` of each (a larger file is refused from its size), directories
//! are walked without following symbolic links to directories (no cycles), and the parser
//! bounds everything else (see `model::parse`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::model::parse::{DOCUMENT_PATH, MAX_SOURCE_BYTES};
use crate::model::{ReleaseDocument, parse_documents_indexed};

use super::CliError;
use crate::terminal::escape_controls;

/// A path as error messages show it: its control characters escaped (file names can hold
/// any byte but `/` and NUL).
fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string()).into_owned()
}

/// A valid document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDocument {
    pub file: PathBuf,
    /// 1-based position of the document in its file.
    pub number: usize,
    pub document: ReleaseDocument,
}

/// The release document files named on the command line (directories recursively, taking
/// `*.yaml`, `*.yml` and `*.json`; a file named explicitly is read whatever its name),
/// sorted and without duplicates.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| {
            CliError::Invalid(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{}: no such file or directory", shown(path))
                }
                _ => format!("{}: {e}", shown(path)),
            })
        })?;
        if metadata.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    CliError::Invalid(format!("{}: cannot read the directory: {e}", shown(&dir)))
                })?;
                for entry in entries.filter_map(Result::ok) {
                    let entry_path = entry.path();
                    // `file_type` does not follow symbolic links: a link to a directory is
                    // skipped (no cycles), a link to a file is read if its name fits.
                    let Ok(file_type) = entry.file_type() else {
                        continue;
                    };
                    if file_type.is_dir() {
                        stack.push(entry_path);
                    } else if is_document_file(&entry_path)
                        && std::fs::metadata(&entry_path).is_ok_and(|m| m.is_file())
                    {
                        files.push(entry_path);
                    }
                }
            }
        } else if metadata.is_file() {
            files.push(path.clone());
        } else {
            return Err(CliError::Invalid(format!(
                "{}: not a regular file or directory",
                shown(path)
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

/// One error line: `FILE: document N: PATH: MESSAGE`.
fn error_line(file: &Path, number: usize, path: &str, message: &str) -> String {
    format!("{}: document {number}: {path}: {message}", shown(file))
}

/// A file's text, or the error line that says why it cannot be read. Reads at most one byte
/// more than the limit, so a huge (or endless) file costs nothing.
fn read_source(file: &Path) -> Result<String, String> {
    let whole_file = |message: String| error_line(file, 1, DOCUMENT_PATH, &message);
    let opened = std::fs::File::open(file).map_err(|e| whole_file(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read: {e}")))?;
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(whole_file(format!(
            "the file is larger than {MAX_SOURCE_BYTES} bytes (4 MiB); split it into several \
             files"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        whole_file(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reads and validates every document of every file. On any error, returns every error
/// line, each naming the file, the document's position in it (1-based) and the field path
/// (`<document>` for a whole document or file): `FILE: document N: PATH: MESSAGE`. A file
/// without any document is an error (an empty or truncated file is most likely a mistake),
/// and so is a release defined twice.
pub fn read_documents(files: &[PathBuf]) -> Result<Vec<SourceDocument>, Vec<String>> {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let text = match read_source(file) {
            Ok(text) => text,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        match parse_documents_indexed(&text) {
            Ok(parsed) if parsed.is_empty() => errors.push(error_line(
                file,
                1,
                DOCUMENT_PATH,
                "the file holds no release document (it is empty or only comments)",
            )),
            Ok(parsed) => {
                documents.extend(parsed.into_iter().map(|(index, document)| SourceDocument {
                    file: file.clone(),
                    number: index + 1,
                    document,
                }))
            }
            Err(document_errors) => {
                for document in document_errors {
                    for error in &document.errors {
                        errors.push(error_line(
                            file,
                            document.index + 1,
                            &error.path,
                            &error.message,
                        ));
                    }
                }
            }
        }
    }
    // Within one file the parser already refuses a name used twice; across files, here.
    let mut first_by_name: BTreeMap<&str, &SourceDocument> = BTreeMap::new();
    for source in &documents {
        let name = source.document.metadata.name.as_str();
        match first_by_name.get(name) {
            Some(first) if first.file != source.file => errors.push(error_line(
                &source.file,
                source.number,
                "metadata.name",
                &format!(
                    "release {name:?} is also defined in {} (document {}); each release needs \
                     its own name",
                    shown(&first.file),
                    first.number
                ),
            )),
            Some(_) => {}
            None => {
                first_by_name.insert(name, source);
            }
        }
    }
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(errors)
    }
}
