//! STS: the roles the controller assumes, with its own credentials, to act in the accounts
//! its releases live in (`spec.service.roleArn`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::AwsError;

/// What `AssumeRole` is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    /// What the role's trust policy asks for (`sts:ExternalId`), from the controller's
    /// configuration.
    pub external_id: Option<String>,
    /// Names the session in the target account's CloudTrail: the controller replica.
    pub session_name: String,
    /// How long the session's credentials last (STS: 15 minutes to the role's maximum; one
    /// hour at most when the controller's own credentials are themselves a role's).
    pub duration: Duration,
}

/// The temporary credentials of an assumed role. Their secret parts are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleSession {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When the credentials stop working.
    pub expires_at: Timestamp,
}

impl fmt::Debug for RoleSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleSession")
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"(hidden)")
            .field("session_token", &"(hidden)")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// AWS Security Token Service, as the controller itself (its own credentials and region).
#[async_trait]
pub trait Sts: Send + Sync {
    /// A session of `request.role_arn`: `AccessDenied` when the role does not trust the
    /// controller (or the external id does not match), `InvalidRequest` for a malformed
    /// request.
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_never_prints_its_secrets() {
        let session = RoleSession {
            role_arn: "arn:aws:iam::444455556666:role/deployer".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: "token-secret".into(),
            expires_at: Timestamp::from_second(0).unwrap(),
        };
        let printed = format!("{session:?}");
        assert!(printed.contains("ASIAEXAMPLE"), "{printed}");
        assert!(!printed.contains("very-secret") && !printed.contains("token-secret"));
    }
}
