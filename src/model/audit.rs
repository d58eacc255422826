//! The audit trail: who changed a release, when, and how, kept beside the spec.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How many audit entries a release keeps (the newest ones). In DynamoDB the bound is
/// approximate under concurrent writers: see `aws/store.rs`.
pub const AUDIT_LIMIT: usize = 50;

/// Longest `detail` kept in an entry, in characters; longer details are cut.
pub const AUDIT_DETAIL_MAX_CHARS: usize = 512;

/// One write to a release: a spec write (`apply`, `release set`, `pause`, `resume`) or an
/// operator request (`promote`, `abort`, `retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The writer's identity (the caller's AWS ARN for the CLI).
    pub by: String,
    /// `apply`, `release set`, `pause`, `resume`, `promote`, `abort`, `retry` (a string, not an
    /// enum, so that an action added later never makes an older reader fail to decode).
    pub action: String,
    /// For a spec write, the generation it created; for a request, the generation it names.
    pub generation: u64,
    /// What changed, for a human (never an environment variable's value).
    #[serde(default)]
    pub detail: String,
}

/// What a spec write does, as its audit entry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Apply,
    ReleaseSet,
    Pause,
    Resume,
}

impl AuditAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::Apply => "apply",
            AuditAction::ReleaseSet => "release set",
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `detail` cut to [`AUDIT_DETAIL_MAX_CHARS`] characters, so one entry stays small.
pub fn bounded_detail(detail: &str) -> String {
    if detail.chars().count() <= AUDIT_DETAIL_MAX_CHARS {
        detail.to_string()
    } else {
        let mut cut: String = detail.chars().take(AUDIT_DETAIL_MAX_CHARS - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// Appends `entry` to `audit` and drops the oldest entries beyond [`AUDIT_LIMIT`].
pub fn append_audit(audit: &mut Vec<AuditEntry>, entry: AuditEntry) {
    audit.push(entry);
    if audit.len() > AUDIT_LIMIT {
        let excess = audit.len() - AUDIT_LIMIT;
        audit.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u64) -> AuditEntry {
        AuditEntry {
            at: Timestamp::from_second(1_767_225_600).unwrap(),
            by: "arn:aws:iam::111122223333:user/alice".into(),
            action: "apply".into(),
            generation,
            detail: String::new(),
        }
    }

    #[test]
    fn the_audit_keeps_the_newest_entries() {
        let mut audit = Vec::new();
        for generation in 1..=(AUDIT_LIMIT as u64 + 7) {
            append_audit(&mut audit, entry(generation));
        }
        assert_eq!(audit.len(), AUDIT_LIMIT);
        assert_eq!(audit[0].generation, 8);
        assert_eq!(audit.last().unwrap().generation, AUDIT_LIMIT as u64 + 7);
    }

    #[test]
    fn a_long_detail_is_cut() {
        let detail = "x".repeat(2000);
        let cut = bounded_detail(&detail);
        assert_eq!(cut.chars().count(), AUDIT_DETAIL_MAX_CHARS);
        assert!(cut.ends_with("..."));
        assert_eq!(bounded_detail("short"), "short");
    }
}
