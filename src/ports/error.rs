//! The one error type every AWS port returns, classified where it enters.

use std::fmt;

/// What kind of failure an AWS call met; the controller's retry and status logic depend only
/// on this classification, never on SDK error types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The call was throttled (`ThrottlingException`, `Throttling`, `RequestLimitExceeded`, ...).
    Throttling,
    /// A transient server or network failure (5xx, connection reset); the call did not take effect.
    Transient,
    /// The call timed out or its reply was lost: it may or may not have taken effect.
    Ambiguous,
    /// The named resource does not exist.
    NotFound,
    /// The request conflicts with the current state (wrong state for the operation).
    Conflict,
    /// The request itself is invalid and will fail the same way again.
    InvalidRequest,
    /// The caller lacks a permission.
    AccessDenied,
    /// CodeDeploy refused a second active deployment for a group; carries the active id when
    /// the message names one.
    DeploymentLimitExceeded {
        active_deployment_id: Option<String>,
    },
    /// Anything else.
    Other,
}

impl AwsErrorKind {
    /// A stable name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Throttling => "throttling",
            Self::Transient => "transient",
            Self::Ambiguous => "ambiguous",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::InvalidRequest => "invalid_request",
            Self::AccessDenied => "access_denied",
            Self::DeploymentLimitExceeded { .. } => "deployment_limit_exceeded",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed AWS call: which service and operation, how it is classified, and AWS's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}:{operation} failed ({kind}){}: {message}", code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    /// The AWS error code, when there is one (`DeploymentGroupDoesNotExistException`, ...).
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        kind: AwsErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            kind,
            code: None,
            message: message.into(),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Worth trying again later without any change (throttling, transient, ambiguous).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            AwsErrorKind::Throttling | AwsErrorKind::Transient | AwsErrorKind::Ambiguous
        )
    }

    /// The call may or may not have taken effect (a timeout, a lost reply).
    pub fn is_ambiguous(&self) -> bool {
        self.kind == AwsErrorKind::Ambiguous
    }

    pub fn is_throttling(&self) -> bool {
        self.kind == AwsErrorKind::Throttling
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == AwsErrorKind::NotFound
    }
}
