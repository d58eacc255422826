//! Adapters: the ports implemented on the AWS SDK for Rust. The only module that names
//! `aws_sdk_*` types. Adapters map requests, responses and errors; they decide nothing.

pub mod actions;
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
mod task_sets;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

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

use crate::ports::{AwsPorts, AwsProvider};

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

/// The AWS ports per region, built on first use from one SDK configuration.
pub struct AwsAdapters {
    base: SdkConfig,
    factory: PortsFactory,
    by_region: Mutex<HashMap<Option<String>, AwsPorts>>,
}

impl AwsAdapters {
    pub fn new(base: SdkConfig, factory: PortsFactory) -> Self {
        Self {
            base,
            factory,
            by_region: Mutex::new(HashMap::new()),
        }
    }

    /// The controller's own region, as resolved by the SDK configuration.
    pub fn region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }
}

impl AwsProvider for AwsAdapters {
    fn ports_for(&self, region: Option<&str>) -> AwsPorts {
        let key = region
            .filter(|r| Some(*r) != self.base.region().map(|r| r.as_ref()))
            .map(str::to_string);
        let mut cache = self.by_region.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key.clone())
            .or_insert_with(|| {
                let config = match &key {
                    Some(region) => self
                        .base
                        .to_builder()
                        .region(Region::new(region.clone()))
                        .build(),
                    None => self.base.clone(),
                };
                (self.factory)(&config)
            })
            .clone()
    }
}
