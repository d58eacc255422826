//! The notification clients: `AwsNotifications` hands out the SNS adapter per topic region
//! (`sns.rs`), the EventBridge adapter of the controller's region (`eventbridge.rs`) and the
//! webhook client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::{Region, SdkConfig};

use super::eventbridge::EventBridgeAdapter;
use super::sns::SnsAdapter;
use crate::ports::{EventBridge, NotificationProvider, Sns, Webhooks};

/// The notification clients of a controller: SNS per topic region, built on first use from
/// one SDK configuration (the controller's credentials), EventBridge in its region, and the
/// webhook client.
pub struct AwsNotifications {
    base: SdkConfig,
    sns: Mutex<HashMap<String, Arc<SnsAdapter>>>,
    event_bridge: Arc<EventBridgeAdapter>,
    webhooks: Arc<dyn Webhooks>,
}

impl AwsNotifications {
    pub fn new(base: SdkConfig, webhooks: Arc<dyn Webhooks>) -> Self {
        Self {
            event_bridge: Arc::new(EventBridgeAdapter::new(aws_sdk_eventbridge::Client::new(
                &base,
            ))),
            base,
            sns: Mutex::new(HashMap::new()),
            webhooks,
        }
    }
}

impl NotificationProvider for AwsNotifications {
    fn sns(&self, region: &str) -> Arc<dyn Sns> {
        let mut cache = self.sns.lock().unwrap_or_else(|e| e.into_inner());
        let adapter = cache.entry(region.to_string()).or_insert_with(|| {
            let config = if region.is_empty() {
                self.base.clone()
            } else {
                self.base
                    .to_builder()
                    .region(Region::new(region.to_string()))
                    .build()
            };
            Arc::new(SnsAdapter::new(aws_sdk_sns::Client::new(&config)))
        });
        adapter.clone()
    }

    fn event_bridge(&self) -> Arc<dyn EventBridge> {
        self.event_bridge.clone()
    }

    fn webhooks(&self) -> Arc<dyn Webhooks> {
        self.webhooks.clone()
    }
}
