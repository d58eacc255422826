//! Simulated Elastic Load Balancing v2 (listeners, read-only).

use async_trait::async_trait;

use crate::ports::{AwsError, AwsErrorKind, Listener, LoadBalancer};

use super::SimAws;

#[async_trait]
impl LoadBalancer for SimAws {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        const OP: &str = "DescribeListeners";
        self.call("elbv2", OP, |world, _| {
            world.listeners.get(listener_arn).cloned().ok_or_else(|| {
                AwsError::new(
                    "elbv2",
                    OP,
                    AwsErrorKind::NotFound,
                    format!("One or more listeners not found: {listener_arn}"),
                )
                .with_code("ListenerNotFound")
            })
        })
        .await
    }
}
