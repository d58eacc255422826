//! Client construction for the binary: one SDK configuration per process, and what the
//! daemon and the CLI build from it (the release store, the AWS ports, the caller's identity).

use aws_config::SdkConfig;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{AwsAdapters, ClientSettings, DynamoStore, build_ports, load_sdk_config};

/// The SDK configuration a process loaded (credentials, region, endpoints, retries and
/// timeouts; see [`load_sdk_config`]), and the clients built from it.
#[derive(Debug, Clone)]
pub struct AwsSession {
    sdk: SdkConfig,
}

/// Why the caller's AWS identity could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum CallerIdentityError {
    /// STS GetCallerIdentity failed (no credentials, an unreachable endpoint, a refusal);
    /// the message is the SDK error with its causes.
    #[error("{0}")]
    CallFailed(String),
    /// STS answered without an ARN.
    #[error("STS GetCallerIdentity returned no ARN")]
    NoArn,
}

impl AwsSession {
    /// Loads the SDK configuration from the standard environment with these settings.
    pub async fn load(settings: &ClientSettings) -> Self {
        Self {
            sdk: load_sdk_config(settings).await,
        }
    }

    /// The release store on `table`, with the table's stream as its change feed.
    pub fn release_store(&self, table: impl Into<String>) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            aws_sdk_dynamodbstreams::Client::new(&self.sdk),
            table,
        )
    }

    /// The AWS ports of every region and role the releases name ([`build_ports`] per region
    /// and identity); the controller's own account is not known until
    /// [`AwsAdapters::with_account`] says it.
    pub fn adapters(&self) -> AwsAdapters {
        AwsAdapters::new(self.sdk.clone(), build_ports)
    }

    /// The notification clients (SNS per topic region, EventBridge, and `webhooks`).
    pub fn notifications(
        &self,
        webhooks: std::sync::Arc<dyn crate::ports::Webhooks>,
    ) -> super::AwsNotifications {
        super::AwsNotifications::new(self.sdk.clone(), webhooks)
    }

    /// The caller's own AWS account (STS GetCallerIdentity); `None` when it cannot be
    /// determined (the caller then checks releases' ARNs against its region only).
    pub async fn caller_account(&self) -> Option<String> {
        match aws_sdk_sts::Client::new(&self.sdk)
            .get_caller_identity()
            .send()
            .await
        {
            Ok(identity) => identity.account.filter(|a| !a.is_empty()),
            Err(error) => {
                tracing::warn!(cause = %DisplayErrorContext(error), "the caller's account could not be determined (STS GetCallerIdentity)");
                None
            }
        }
    }

    /// The caller's AWS identity: the ARN STS GetCallerIdentity returns.
    pub async fn caller_arn(&self) -> Result<String, CallerIdentityError> {
        let identity = aws_sdk_sts::Client::new(&self.sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CallerIdentityError::CallFailed(DisplayErrorContext(e).to_string()))?;
        identity
            .arn
            .filter(|arn| !arn.is_empty())
            .ok_or(CallerIdentityError::NoArn)
    }
}
