//! The simulated STS and the little of IAM it needs: roles that trust the controller (with an
//! external id, or not), sessions that expire, and AssumeRole refusing as AWS does. A port
//! handle acting as an assumed role has every call checked against its session: an unknown
//! or expired session is refused, so a controller that lets a session expire sees it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use super::world::{ACCOUNT, Scope};
use super::{SimAws, lock};
use crate::model::names::RoleArn;
use crate::ports::{AssumeRoleRequest, AwsError, AwsErrorKind, RoleSession, Sts};

const SERVICE: &str = "sts";

/// A role in one of the simulated accounts, as its trust policy and settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRole {
    pub arn: String,
    /// The `sts:ExternalId` its trust policy asks for, if any.
    pub external_id: Option<String>,
    /// Its maximum session duration (IAM: 1 to 12 hours; 1 hour by default).
    pub max_session: Duration,
    /// Whether its trust policy still lets the controller assume it.
    pub trusts_controller: bool,
}

impl SimRole {
    /// A role that trusts the controller, without an external id, with 1-hour sessions.
    pub fn new(arn: &str) -> Self {
        assert!(RoleArn::parse(arn).is_ok(), "{arn:?} is no role ARN");
        Self {
            arn: arn.to_string(),
            external_id: None,
            max_session: Duration::from_secs(3600),
            trusts_controller: true,
        }
    }

    /// The same role, asking for `external_id`.
    pub fn requiring_external_id(mut self, external_id: &str) -> Self {
        self.external_id = Some(external_id.to_string());
        self
    }
}

/// A session STS issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub role_arn: String,
    pub account: String,
    pub session_name: String,
    pub expires_at: Timestamp,
}

/// Roles and issued sessions, across accounts (IAM and STS are global).
#[derive(Default)]
pub(crate) struct Iam {
    roles: BTreeMap<String, SimRole>,
    sessions: BTreeMap<String, Issued>,
    issued: u64,
}

fn denied(code: &str, message: String) -> AwsError {
    AwsError::new(SERVICE, "AssumeRole", AwsErrorKind::AccessDenied, message).with_code(code)
}

fn invalid(message: String) -> AwsError {
    AwsError::new(SERVICE, "AssumeRole", AwsErrorKind::InvalidRequest, message)
        .with_code("ValidationError")
}

impl Iam {
    pub fn put_role(&mut self, role: SimRole) {
        self.roles.insert(role.arn.clone(), role);
    }

    pub fn role_mut(&mut self, arn: &str) -> Option<&mut SimRole> {
        self.roles.get_mut(arn)
    }

    /// The session of an access key id, if STS issued it.
    pub fn session(&self, access_key_id: &str) -> Option<&Issued> {
        self.sessions.get(access_key_id)
    }

    /// AssumeRole as STS answers it, called with the controller's own credentials.
    fn assume(
        &mut self,
        request: &AssumeRoleRequest,
        now: Timestamp,
    ) -> Result<RoleSession, AwsError> {
        let name = &request.session_name;
        let valid_name = (2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
        if !valid_name {
            return Err(invalid(format!(
                "1 validation error detected: Value '{name}' at 'roleSessionName' failed to \
                 satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            )));
        }
        if let Some(external_id) = &request.external_id {
            let valid = (2..=1224).contains(&external_id.len())
                && external_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
            if !valid {
                return Err(invalid(
                    "1 validation error detected: Value at 'externalId' failed to satisfy \
                     constraint"
                        .into(),
                ));
            }
        }
        let Ok(parsed) = RoleArn::parse(&request.role_arn) else {
            return Err(invalid(format!("{} is invalid", request.role_arn)));
        };
        let not_authorized = || {
            denied(
                "AccessDenied",
                format!(
                    "User: arn:aws:sts::{ACCOUNT}:assumed-role/switchyard-controller/task is not \
                     authorized to perform: sts:AssumeRole on resource: {}",
                    request.role_arn
                ),
            )
        };
        let role = match self.roles.get(&request.role_arn) {
            Some(role) if role.trusts_controller => role,
            _ => return Err(not_authorized()),
        };
        if role.external_id.is_some() && role.external_id != request.external_id {
            return Err(not_authorized());
        }
        let seconds = request.duration.as_secs();
        if !(900..=43_200).contains(&seconds) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to \
                 satisfy constraint: Member must have value between 900 and 43200"
            )));
        }
        if request.duration > role.max_session {
            return Err(invalid(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }
        self.issued += 1;
        let access_key_id = format!("ASIASIM{:013}", self.issued);
        let expires_at =
            now + SignedDuration::try_from(request.duration).unwrap_or(SignedDuration::ZERO);
        self.sessions.insert(
            access_key_id.clone(),
            Issued {
                role_arn: request.role_arn.clone(),
                account: parsed.account.to_string(),
                session_name: name.clone(),
                expires_at,
            },
        );
        Ok(RoleSession {
            role_arn: request.role_arn.clone(),
            access_key_id: access_key_id.clone(),
            secret_access_key: format!("secret-{access_key_id}"),
            session_token: format!("token-{access_key_id}"),
            expires_at,
        })
    }
}

impl SimAws {
    /// Adds (or replaces) a role in its account.
    pub fn add_role(&self, role: SimRole) {
        lock(&self.inner.iam).put_role(role);
    }

    /// The role's trust policy no longer names the controller: AssumeRole is refused from
    /// now on (sessions already issued work until they expire, as in AWS).
    pub fn revoke_role(&self, role_arn: &str) {
        if let Some(role) = lock(&self.inner.iam).role_mut(role_arn) {
            role.trusts_controller = false;
        }
    }

    /// Lets the controller assume the role again.
    pub fn trust_role(&self, role_arn: &str) {
        if let Some(role) = lock(&self.inner.iam).role_mut(role_arn) {
            role.trusts_controller = true;
        }
    }

    /// The role session names AssumeRole issued sessions to, oldest first.
    pub fn session_names(&self) -> Vec<String> {
        let iam = lock(&self.inner.iam);
        let mut issued: Vec<(&String, &Issued)> = iam.sessions.iter().collect();
        issued.sort_by_key(|(key, _)| *key);
        issued
            .into_iter()
            .map(|(_, session)| session.session_name.clone())
            .collect()
    }

    /// Refuses a call made with session credentials STS did not issue or that expired, as
    /// AWS does, before anything else about the call.
    pub(crate) fn check_session(
        &self,
        service: &'static str,
        operation: &'static str,
        now: Timestamp,
    ) -> Result<(), AwsError> {
        let Some(access_key_id) = &self.session else {
            return Ok(());
        };
        let iam = lock(&self.inner.iam);
        match iam.session(access_key_id) {
            None => Err(AwsError::new(
                service,
                operation,
                AwsErrorKind::AccessDenied,
                "The security token included in the request is invalid",
            )
            .with_code("UnrecognizedClientException")),
            Some(session) if now >= session.expires_at => Err(AwsError::new(
                service,
                operation,
                AwsErrorKind::AccessDenied,
                "The security token included in the request is expired",
            )
            .with_code("ExpiredTokenException")),
            Some(session) if session.account != self.scope.account => Err(AwsError::new(
                service,
                operation,
                AwsErrorKind::AccessDenied,
                format!(
                    "The session of {} cannot act in account {}",
                    session.role_arn, self.scope.account
                ),
            )
            .with_code("AccessDeniedException")),
            Some(_) => Ok(()),
        }
    }

    /// The scope a session acts in: its role's account.
    pub(crate) fn session_scope(&self, session: &RoleSession, region: &str) -> Scope {
        let iam = lock(&self.inner.iam);
        let account = iam
            .session(&session.access_key_id)
            .map(|issued| issued.account.clone())
            .or_else(|| {
                RoleArn::parse(&session.role_arn)
                    .ok()
                    .map(|r| r.account.to_string())
            })
            .unwrap_or_default();
        Scope::new(&account, region)
    }
}

#[async_trait]
impl Sts for SimAws {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
        self.call(SERVICE, "AssumeRole", |_world, now| {
            if self.session.is_some() {
                // Only the controller's own credentials assume the releases' roles here.
                return Err(denied(
                    "AccessDenied",
                    "role chaining from a release's role is not how switchyard works".into(),
                ));
            }
            lock(&self.inner.iam).assume(request, now)
        })
        .await
    }
}
