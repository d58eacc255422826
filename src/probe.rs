//! The HTTP probe port on hyper (the HTTP client and rustls the AWS SDK already uses):
//! `GET` a URL from the controller's network, over `http://` or `https://` (the system's
//! root certificates), and answer the response's status.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::ports::{HttpProbe, ProbeError};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// HTTP probes through hyper. Every probe opens a connection of its own (none is kept
/// idle), as a new client of the service would. The client (and the root certificates) is
/// made on the first probe: a controller without HTTP metrics never reads them.
#[derive(Default)]
pub struct HyperProbe {
    client: std::sync::OnceLock<HttpsClient>,
}

impl std::fmt::Debug for HyperProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HyperProbe")
    }
}

impl HyperProbe {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self) -> &HttpsClient {
        self.client.get_or_init(Self::build)
    }

    /// A client trusting the system's root certificates (none found: `https://` probes fail
    /// with the reason, `http://` ones work).
    fn build() -> HttpsClient {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(cause = %error, "no root certificates: https probes will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("the default provider supports the default versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector)
    }
}

/// What a probe sends as its `User-Agent`.
pub const USER_AGENT: &str = concat!("switchyard-analysis/", env!("CARGO_PKG_VERSION"));

#[async_trait]
impl HttpProbe for HyperProbe {
    async fn probe(&self, url: &str, timeout: Duration) -> Result<u16, ProbeError> {
        let request = hyper::Request::get(url)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Failed(format!("not a URL to GET: {e}")))?;
        match tokio::time::timeout(timeout, self.client().request(request)).await {
            Err(_) => Err(ProbeError::Timeout(timeout)),
            Ok(Err(error)) => Err(ProbeError::Failed(describe(&error))),
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }
}

/// The error and its causes on one line (`client error (Connect): tcp connect error:
/// Connection refused`).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
