//! Adapters: the ports implemented on the AWS SDK for Rust. The only module that names
//! `aws_sdk_*` types. Adapters map requests, responses and errors; they decide nothing.

pub mod actions;
mod attempts;
mod clients;
mod cloudwatch;
mod codedeploy;
mod ecs;
mod ecs_registration;
mod elb;
mod error;
mod eventbridge;
mod lease;
mod notify;
mod ports;
mod routes;
mod service_deployments;
mod sns;
mod store;
mod stream_relay;
mod streams;
mod sts;
mod task_sets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

pub use clients::{AwsSession, CallerIdentityError};
pub use error::{CodeMap, classify, kind_for};
// Adapter re-exports (each adapter's author adds its line below).
pub use cloudwatch::{CloudWatchAlarms, CloudWatchMetricData};
pub use codedeploy::CodeDeployAdapter;
pub use ecs::EcsAdapter;
pub use elb::ElbAdapter;
pub use eventbridge::EventBridgeAdapter;
pub use notify::AwsNotifications;
pub use ports::build_ports;
pub use service_deployments::DESCRIBE_SERVICE_DEPLOYMENTS_BATCH;
pub use sns::SnsAdapter;
pub use store::{
    DynamoStore, ITEM_ATTRIBUTES, STORE_ACTIONS, TABLE_ADMIN_ACTIONS, TableCreated, create_table,
    decode_item,
};
pub use streams::stream_changes;
pub use sts::StsAdapter;

use crate::model::Home;
use crate::ports::{AwsPorts, AwsProvider, RoleSession, Sts};

/// Timeouts and retries for every AWS client. The SDK sets no operation or attempt timeout
/// by default; a controller that must drain on SIGTERM needs both.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// The controller's own region; `None` takes the standard chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    /// Attempts per call in standard retry mode (CreateDeployment always gets one).
    pub max_attempts: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            region: None,
            connect_timeout: Duration::from_millis(3100),
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 3,
        }
    }
}

/// Loads the shared SDK configuration: the standard credential chain and region, the
/// standard endpoint overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), standard
/// retry mode, and the timeouts above.
pub async fn load_sdk_config(settings: &ClientSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .operation_attempt_timeout(settings.attempt_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// Builds the AWS ports of one region from an SDK configuration (`build_ports` in
/// production, something else in tests).
pub type PortsFactory = fn(&SdkConfig) -> AwsPorts;

/// The ports of one region and identity, and the slot its assumed role's session is in.
#[derive(Clone)]
struct Clients {
    ports: AwsPorts,
    slot: Option<Arc<sts::SessionSlot>>,
}

/// The AWS ports per region and identity (the controller itself, or an assumed role), built
/// on first use from one SDK configuration and reused: one set of clients per (role,
/// region), so one HTTP connection pool, one retry budget per place.
pub struct AwsAdapters {
    base: SdkConfig,
    factory: PortsFactory,
    /// The controller's own account, when it is known.
    account: Option<String>,
    clients: Mutex<HashMap<(Option<String>, String), Clients>>,
}

impl AwsAdapters {
    pub fn new(base: SdkConfig, factory: PortsFactory) -> Self {
        Self {
            base,
            factory,
            account: None,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The controller's own account (from STS GetCallerIdentity).
    pub fn with_account(mut self, account: Option<String>) -> Self {
        self.account = account;
        self
    }

    /// The controller's own region, as resolved by the SDK configuration.
    pub fn region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// The SDK configuration of `region`, signing as `slot`'s session when there is one.
    fn config_for(&self, region: &str, slot: Option<&Arc<sts::SessionSlot>>) -> SdkConfig {
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()));
        if let Some(slot) = slot {
            builder = builder
                .credentials_provider(SharedCredentialsProvider::new(sts::SlotCredentials(
                    slot.clone(),
                )))
                .identity_cache(IdentityCache::no_cache());
        }
        builder.build()
    }
}

impl AwsProvider for AwsAdapters {
    fn home(&self) -> Home {
        Home::new(self.region().unwrap_or_default(), self.account.clone())
    }

    fn ports_for(&self, region: &str, session: Option<&RoleSession>) -> AwsPorts {
        let key = (session.map(|s| s.role_arn.clone()), region.to_string());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let clients = clients.entry(key).or_insert_with(|| {
            let slot = session.map(|_| Arc::new(sts::SessionSlot::default()));
            let config = self.config_for(region, slot.as_ref());
            Clients {
                ports: (self.factory)(&config),
                slot,
            }
        });
        if let (Some(slot), Some(session)) = (&clients.slot, session) {
            slot.update(session);
        }
        clients.ports.clone()
    }

    fn sts(&self) -> Arc<dyn Sts> {
        Arc::new(StsAdapter::new(aws_sdk_sts::Client::new(&self.base)))
    }
}
