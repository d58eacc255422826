//! The HTTP probe port: one `GET` of a URL per measurement of an analysis, answered with the
//! response's status or why there was none.

use std::time::Duration;

use async_trait::async_trait;

/// Why a probe got no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection (DNS, TCP, TLS) or the request failed.
    #[error("{0}")]
    Failed(String),
}

/// HTTP probes, from the controller's network.
#[async_trait]
pub trait HttpProbe: Send + Sync {
    /// `GET url`, following no redirect: the response's status, once its headers arrived
    /// within `timeout` (the body is not read).
    async fn probe(&self, url: &str, timeout: Duration) -> Result<u16, ProbeError>;
}
