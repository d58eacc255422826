//! Classifies AWS SDK errors into the ports' `AwsError`, once, where they enter.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::{AwsError, AwsErrorKind};

/// Error codes AWS uses for throttling across services.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "LimitExceededException",
];

/// Whether AWS's error `code` means it throttled the request.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Codes that mean the caller lacks a permission.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
];

/// Codes that mean the request itself is wrong.
const INVALID_REQUEST_CODES: &[&str] = &[
    "ValidationException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MissingParameter",
    "SerializationException",
];

/// How one operation's service-specific codes map onto kinds: the codes listed here win over
/// the generic rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct CodeMap {
    pub not_found: &'static [&'static str],
    pub conflict: &'static [&'static str],
    pub invalid: &'static [&'static str],
}

/// Classifies any SDK error. `E` is the operation's modelled error.
pub fn classify<E>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
    codes: CodeMap,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error {
        // The request may have reached AWS: it may or may not have taken effect.
        SdkError::TimeoutError(_) => AwsError::new(
            service,
            operation,
            AwsErrorKind::Ambiguous,
            "the call timed out",
        ),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_user() {
                AwsErrorKind::Other
            } else if failure.is_timeout() || failure.is_io() {
                AwsErrorKind::Ambiguous
            } else {
                AwsErrorKind::Transient
            };
            AwsError::new(
                service,
                operation,
                kind,
                format!("dispatch failure: {failure:?}"),
            )
        }
        SdkError::ResponseError(response) => AwsError::new(
            service,
            operation,
            AwsErrorKind::Ambiguous,
            format!("unreadable response: {response:?}"),
        ),
        SdkError::ConstructionFailure(failure) => AwsError::new(
            service,
            operation,
            AwsErrorKind::InvalidRequest,
            format!("the request could not be built: {failure:?}"),
        ),
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let error = context.into_err();
            let code = error.code().unwrap_or_default().to_string();
            let message = error
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            let kind = kind_for(&code, Some(status), codes);
            let mut classified = AwsError::new(service, operation, kind, message);
            if !code.is_empty() {
                classified = classified.with_code(code);
            }
            classified
        }
        other => AwsError::new(
            service,
            operation,
            AwsErrorKind::Other,
            format!("{other:?}"),
        ),
    }
}

/// The kind for a service error code and HTTP status.
pub fn kind_for(code: &str, status: Option<u16>, codes: CodeMap) -> AwsErrorKind {
    if codes.not_found.contains(&code) {
        AwsErrorKind::NotFound
    } else if codes.conflict.contains(&code) {
        AwsErrorKind::Conflict
    } else if codes.invalid.contains(&code) || INVALID_REQUEST_CODES.contains(&code) {
        AwsErrorKind::InvalidRequest
    } else if THROTTLING_CODES.contains(&code) || status == Some(429) {
        AwsErrorKind::Throttling
    } else if ACCESS_DENIED_CODES.contains(&code) || status == Some(403) {
        AwsErrorKind::AccessDenied
    } else if code == "ResourceNotFoundException" || code.ends_with("NotFoundException") {
        AwsErrorKind::NotFound
    } else if status.is_some_and(|s| s >= 500) {
        AwsErrorKind::Transient
    } else {
        AwsErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_and_429_are_throttling() {
        for code in [
            "ThrottlingException",
            "Throttling",
            "RequestLimitExceeded",
            "ProvisionedThroughputExceededException",
        ] {
            assert_eq!(
                kind_for(code, Some(400), CodeMap::default()),
                AwsErrorKind::Throttling,
                "{code}"
            );
        }
        assert_eq!(
            kind_for("", Some(429), CodeMap::default()),
            AwsErrorKind::Throttling
        );
    }

    #[test]
    fn operation_codes_win_over_generic_rules() {
        let codes = CodeMap {
            not_found: &["ClientException"],
            ..CodeMap::default()
        };
        assert_eq!(
            kind_for("ClientException", Some(400), codes),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            kind_for("ClientException", Some(400), CodeMap::default()),
            AwsErrorKind::Other
        );
    }

    #[test]
    fn server_errors_are_transient_and_access_is_denied() {
        assert_eq!(
            kind_for("InternalFailure", Some(500), CodeMap::default()),
            AwsErrorKind::Transient
        );
        assert_eq!(
            kind_for("AccessDeniedException", Some(400), CodeMap::default()),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            kind_for("ClusterNotFoundException", Some(400), CodeMap::default()),
            AwsErrorKind::NotFound
        );
    }
}
