//! A problem in a document, named by the path of the field at fault.

use std::fmt;

use serde::Serialize;

/// One problem in a document: where (a path of camelCase field names, map keys and `[i]` list
/// positions, such as `spec.rollback.alarms[2]`) and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

/// `base.name`, for a field name (always a plain camelCase identifier).
pub(crate) fn field_path(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

/// `base.key` for a map key made of letters, digits, '-' and '_'; otherwise `base["key"]`, so
/// that a key holding '.', spaces or quotes (a label such as `app.kubernetes.io/name`) still
/// gives an unambiguous path.
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        field_path(base, key)
    } else {
        // Serializing a &str to JSON cannot fail; the fallback only keeps this panic-free.
        let json = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
        format!("{base}[{json}]")
    }
}
