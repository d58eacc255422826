//! What `RegisterTaskDefinition` would be sent, without sending it: `switchyard diff` shows
//! the candidate task definition exactly as the controller would register it.
//!
//! ECS speaks awsJson1.1, so the serialized HTTP body of a request *is* its input as JSON.
//! Rather than building that JSON a second way (which would drift from what is really sent),
//! the very registration the controller makes ([`EcsAdapter::register_task_definition`]:
//! the base re-read with its tags, `copy_registration`) runs on a client built for the
//! purpose, whose interceptor keeps the serialized body of `RegisterTaskDefinition` and
//! fails the call right after serialization: before signing, before any byte leaves. Every
//! other operation (the base's `DescribeTaskDefinition`) goes through unchanged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use super::EcsAdapter;
use crate::ports::{AwsError, AwsErrorKind, ContainerDefinition, Ecs, TaskDefinition};

const OPERATION: &str = "RegisterTaskDefinition";
/// The one operation the capturing client sends: the registration re-reads its base.
const READ_BASE: &str = "DescribeTaskDefinition";

/// Keeps the serialized body of `RegisterTaskDefinition` and stops the call there; lets
/// `DescribeTaskDefinition` through and stops every other operation.
#[derive(Debug, Clone, Default)]
struct CaptureRegistration {
    body: Arc<Mutex<Option<Vec<u8>>>>,
}

impl CaptureRegistration {
    fn take(&self) -> Option<Vec<u8>> {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The error that stops the captured call; never seen by a caller.
#[derive(Debug, thiserror::Error)]
#[error("RegisterTaskDefinition captured, not sent")]
struct Captured;

/// Any other operation on the capturing client: refused unsent.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not sent by the client that captures a registration")]
struct NotAllowed(String);

impl Intercept for CaptureRegistration {
    fn name(&self) -> &'static str {
        "CaptureRegistration"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit_once('.'))
            .map(|(_, operation)| operation);
        let operation = cfg.load::<Metadata>().map(Metadata::name).or(target);
        // Fail safe: the base's read goes through, nothing else ever leaves this client.
        if operation == Some(READ_BASE) {
            return Ok(());
        }
        if operation != Some(OPERATION) {
            return Err(Box::new(NotAllowed(operation.unwrap_or("?").to_string())));
        }
        let body = context
            .request()
            .body()
            .bytes()
            .unwrap_or_default()
            .to_vec();
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        Err(Box::new(Captured))
    }
}

/// The JSON input of the registration `EcsAdapter::register_task_definition(base,
/// containers, tags)` would send on `client`'s configuration, captured unsent.
pub(super) async fn registration_input(
    client: &Client,
    base: &TaskDefinition,
    containers: &[ContainerDefinition],
    tags: &BTreeMap<String, String>,
) -> Result<serde_json::Value, AwsError> {
    let capture = CaptureRegistration::default();
    let config = client
        .config()
        .to_builder()
        .interceptor(capture.clone())
        .build();
    let capturing = EcsAdapter::new(Client::from_conf(config));
    let outcome = capturing
        .register_task_definition(base, containers, tags)
        .await;
    let body = match (capture.take(), outcome) {
        (Some(body), _) => body,
        // The base could not be read, or the request could not be built: that error.
        (None, Err(error)) => return Err(error),
        (None, Ok(registered)) => {
            return Err(AwsError::new(
                "ecs",
                OPERATION,
                AwsErrorKind::Other,
                format!(
                    "the registration input was not captured, and {} was registered",
                    registered.arn
                ),
            ));
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        AwsError::new(
            "ecs",
            OPERATION,
            AwsErrorKind::Other,
            format!("the serialized RegisterTaskDefinition input is not JSON: {e}"),
        )
    })
}
