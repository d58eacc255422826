//! A fault-injecting HTTP proxy in front of moto: counts every AWS call by operation and
//! answers the operations a test names with the error AWS would send, so that the real
//! binary meets refusals as it would in an account.
//!
//! It understands the JSON protocols (ECS, CodeDeploy, DynamoDB: the operation is in
//! `X-Amz-Target`) and the query protocol (ELBv2, STS: `Action=` in the form body); it keeps
//! every call it saw, in order, with its body, so a test can read what was asked and when.
//! Refusals are answered in the JSON protocols' shape only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A fault: every call of `operation` (`RegisterTaskDefinition`) is answered with this
/// error until it is removed.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub operation: String,
    pub code: String,
    pub message: String,
}

/// One call that reached the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation (`CreateTaskSet`, `ModifyListener`).
    pub operation: String,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The same, on the wall clock (to compare with times the daemon wrote).
    pub wall: jiff::Timestamp,
    /// The request body: JSON for the JSON protocols, a form for the query protocol.
    pub body: String,
}

impl Call {
    /// The query protocol's parameters (`ListenerArn`, `DefaultActions.member.1.Type`).
    pub fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The JSON protocols' body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: Client<HttpConnector, Body>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    log: Arc<Mutex<Vec<Call>>>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub endpoint: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (moto's endpoint) on a free loopback port.
    pub async fn start(upstream: &str) -> FaultProxy {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            refusals: Arc::default(),
            counts: Arc::default(),
            log: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FaultProxy {
            endpoint,
            shared,
            task,
        }
    }

    /// Answers every call of `operation` with AWS's `AccessDeniedException`.
    pub fn deny(&self, operation: &str) {
        self.shared.refusals.lock().unwrap().push(Refusal {
            operation: operation.to_string(),
            code: "AccessDeniedException".into(),
            message: format!(
                "User: arn:aws:sts::123456789012:assumed-role/switchyard/controller is not authorized to perform: ecs:{operation} on resource: * because no identity-based policy allows the ecs:{operation} action"
            ),
        });
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.shared.refusals.lock().unwrap().clear();
    }

    /// How many calls of `operation` reached the proxy (refused or not).
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Every call of these operations that reached the proxy, in the order they arrived.
    pub fn log_of(&self, operations: &[&str]) -> Vec<Call> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| operations.contains(&c.operation.as_str()))
            .cloned()
            .collect()
    }

    /// Environment variables that point a `switchyard` process at this proxy.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Shared>, request: Request<Body>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .map(str::to_string)
        .or_else(|| {
            // The query protocol: `Action=DescribeListeners&Version=...` in a form body.
            form_urlencoded::parse(&body)
                .find(|(key, _)| key == "Action")
                .map(|(_, action)| action.into_owned())
        });
    if let Some(operation) = &operation {
        *shared
            .counts
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
        shared.log.lock().unwrap().push(Call {
            operation: operation.clone(),
            at: std::time::Instant::now(),
            wall: jiff::Timestamp::now(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let refusal = shared
            .refusals
            .lock()
            .unwrap()
            .iter()
            .find(|r| &r.operation == operation)
            .cloned();
        if let Some(refusal) = refusal {
            let body = serde_json::json!({"__type": refusal.code, "message": refusal.message});
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-errortype", refusal.code.as_str())
                .body(Body::from(body.to_string()))
                .unwrap();
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = format!("{}{path}", shared.upstream).parse().unwrap();
    match shared
        .client
        .request(Request::from_parts(parts, Body::from(body)))
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(error) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(format!("proxy: {error}")))
            .unwrap(),
    }
}
