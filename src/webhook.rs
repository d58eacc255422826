//! The webhook port on HTTP: one POST of a JSON body, over HTTP/1.1 with TLS for https
//! (the platform's root certificates), on hyper, the client the AWS SDK itself builds on.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::ports::{WebhookError, Webhooks};

/// How long connecting may take (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the whole request may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// The most of an answer's body read (and then dropped): receivers' answers are not used.
const ANSWER_LIMIT: usize = 64 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Webhooks over HTTP(S). Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct HttpWebhooks {
    client: Client<Connector, Full<Bytes>>,
    user_agent: String,
}

impl HttpWebhooks {
    /// A client trusting the platform's root certificates. Fails only when none can be
    /// loaded.
    pub fn new() -> Result<Self, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // The provider is named: the build enables rustls's aws-lc-rs backend (as the SDK
        // does), not hyper-rustls's feature that would choose it implicitly.
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(https);
        Ok(Self {
            client,
            user_agent: format!("switchyard/{}", env!("CARGO_PKG_VERSION")),
        })
    }
}

#[async_trait]
impl Webhooks for HttpWebhooks {
    async fn post(&self, url: &str, body: &str) -> Result<(), WebhookError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| WebhookError::Invalid("the URL does not parse".into()))?;
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, &self.user_agent)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| WebhookError::Invalid(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| WebhookError::Transport(describe(&e)))?;
            let status = response.status().as_u16();
            // Read (a bounded part of) the answer so the connection can be reused.
            let mut body = response.into_body();
            let mut read = 0usize;
            while read < ANSWER_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(WebhookError::Status { status })
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| WebhookError::Timeout)?
    }
}

/// An error and its causes, without the URL (hyper's errors do not carry it; the
/// connector's may name the host, which the status shows anyway).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
