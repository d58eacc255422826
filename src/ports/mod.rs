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
mod sts;

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
pub use sts::*;

/// The AWS ports of one region of one account, acting as one identity.
#[derive(Clone)]
pub struct AwsPorts {
    pub ecs: Arc<dyn Ecs>,
    pub codedeploy: Arc<dyn CodeDeploy>,
    pub load_balancer: Arc<dyn LoadBalancer>,
    pub alarms: Arc<dyn Alarms>,
    /// CloudWatch metric data, for analyses (the same CloudWatch client as `alarms`).
    pub metric_data: Arc<dyn MetricData>,
}

/// Hands out AWS ports per region and identity, making their clients on first use and
/// reusing them. The shell reaches it through `access::AwsAccess`, which resolves where a
/// release lives and assumes its role.
pub trait AwsProvider: Send + Sync {
    /// The controller's own region and account.
    fn home(&self) -> crate::model::Home;
    /// The ports of `region`: with `session` `None`, as the controller itself, in its own
    /// account; with a session, as that assumed role, in the role's account.
    fn ports_for(&self, region: &str, session: Option<&RoleSession>) -> AwsPorts;
    /// STS as the controller itself (its own credentials, its own region): what assumes the
    /// releases' roles.
    fn sts(&self) -> Arc<dyn Sts>;
}
