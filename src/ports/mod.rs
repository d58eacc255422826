//! Ports: one trait per external system, in domain terms. Adapters (the simulation today,
//! the AWS SDK later) implement them; nothing outside an adapter names an SDK type.

mod alarms;
mod codedeploy;
mod ecs;
mod elb;
mod error;
mod lease;
mod metric_data;
mod notify;
mod probe;
mod store;

use std::sync::Arc;

pub use alarms::*;
pub use codedeploy::*;
pub use ecs::*;
pub use elb::*;
pub use error::*;
pub use lease::*;
pub use metric_data::*;
pub use notify::*;
pub use probe::*;
pub use store::*;

/// The AWS ports of one region.
#[derive(Clone)]
pub struct AwsPorts {
    pub ecs: Arc<dyn Ecs>,
    pub codedeploy: Arc<dyn CodeDeploy>,
    pub load_balancer: Arc<dyn LoadBalancer>,
    pub alarms: Arc<dyn Alarms>,
    /// CloudWatch metric data, for analyses (the same CloudWatch client as `alarms`).
    pub metric_data: Arc<dyn MetricData>,
}

/// Hands out the AWS ports for a release's region (`None`: the controller's own region).
pub trait AwsProvider: Send + Sync {
    fn ports_for(&self, region: Option<&str>) -> AwsPorts;
}
