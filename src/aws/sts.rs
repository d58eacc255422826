//! The STS port on the AWS SDK (`AssumeRole`, with the controller's own credentials), and
//! the credentials an assumed role's clients sign with: whatever session the shell handed
//! over last (the shell's cache decides when to assume the role again, on its clock).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_sts::Client;

use super::error::{CodeMap, classify};
use crate::ports::{AssumeRoleRequest, AwsError, AwsErrorKind, RoleSession, Sts};

const SERVICE: &str = "sts";

const ASSUME_ROLE_CODES: CodeMap = CodeMap {
    not_found: &[],
    conflict: &[],
    invalid: &[
        "ValidationError",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        // STS is not enabled in the controller's region: an administrator must enable it.
        "RegionDisabledException",
    ],
};

/// STS through the AWS SDK.
#[derive(Debug, Clone)]
pub struct StsAdapter {
    client: Client,
}

impl StsAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Sts for StsAdapter {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
        let duration = i32::try_from(request.duration.as_secs()).unwrap_or(i32::MAX);
        let output = self
            .client
            .assume_role()
            .role_arn(&request.role_arn)
            .role_session_name(&request.session_name)
            .set_external_id(request.external_id.clone())
            .duration_seconds(duration)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "AssumeRole", e, ASSUME_ROLE_CODES))?;
        let missing = |what: &str| {
            AwsError::new(
                SERVICE,
                "AssumeRole",
                AwsErrorKind::Other,
                format!("STS answered AssumeRole without {what}"),
            )
        };
        let credentials = output.credentials.ok_or_else(|| missing("credentials"))?;
        let expiration = credentials.expiration();
        let expires_at = jiff::Timestamp::new(expiration.secs(), expiration.subsec_nanos() as i32)
            .map_err(|_| missing("a valid expiration"))?;
        Ok(RoleSession {
            role_arn: request.role_arn.clone(),
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
            expires_at,
        })
    }
}

/// The session an assumed role's clients sign with: replaced by the shell whenever it
/// refreshed the session, read on every call.
#[derive(Debug, Default)]
pub(super) struct SessionSlot {
    session: RwLock<Option<RoleSession>>,
}

impl SessionSlot {
    /// Hands the slot a session of the shell's: kept when it lasts longer than the one held
    /// (callers still holding the previous session during a refresh do not put it back).
    pub fn update(&self, session: &RoleSession) {
        let is_newer = |held: &Option<RoleSession>| {
            held.as_ref()
                .is_none_or(|held| held.expires_at < session.expires_at)
        };
        if !is_newer(&self.session.read().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let mut held = self.session.write().unwrap_or_else(|e| e.into_inner());
        if is_newer(&held) {
            *held = Some(session.clone());
        }
    }
}

/// Credentials from a [`SessionSlot`]. The clients using them have no identity cache of
/// their own: the shell's session cache is the only one, on the controller's clock.
#[derive(Debug, Clone)]
pub(super) struct SlotCredentials(pub Arc<SessionSlot>);

impl ProvideCredentials for SlotCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let held = self.0.session.read().unwrap_or_else(|e| e.into_inner());
        future::ProvideCredentials::ready(match held.as_ref() {
            Some(session) => Ok(Credentials::new(
                &session.access_key_id,
                &session.secret_access_key,
                Some(session.session_token.clone()),
                None,
                "switchyard-assumed-role",
            )),
            None => Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no session of the role was handed over yet",
                ),
            ),
        })
    }
}
