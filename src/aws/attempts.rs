//! Every request an SDK client sends, counted where the budget can see it: an interceptor
//! that notes each attempt (the SDK's standard retries make up to `max_attempts` of them for
//! one call) and whether AWS throttled it ([`crate::retry::attempt_sent`]). Without it the
//! fleet's API budget would pay one token for three requests and never hear of a throttle
//! the SDK retried away.
//!
//! The throttle is read from the raw response, as the SDK's own retry classifier does, in
//! every protocol the budgeted services speak: the query protocol's `<Code>` (ELB), the JSON
//! protocols' `x-amzn-ErrorType` header or `__type` (ECS, CodeDeploy), the query-compatible
//! `x-amzn-query-error` header (CloudWatch's CBOR), and HTTP 429.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::error::is_throttling_code;

/// Notes every attempt of every call made through the client it is added to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CountAttempts;

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "switchyard::CountAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        crate::retry::attempt_sent(context.response().is_some_and(throttled));
        Ok(())
    }
}

/// Whether a response is AWS throttling the request.
pub(crate) fn throttled(response: &HttpResponse) -> bool {
    let status = response.status().as_u16();
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    error_code(response).is_some_and(|code| is_throttling_code(&code))
}

/// The error code of an error response, in whichever protocol it came.
fn error_code(response: &HttpResponse) -> Option<String> {
    let headers = response.headers();
    // `Code;Sender` (query-compatible services) and `Code:http://...` (JSON protocols).
    if let Some(value) = headers.get("x-amzn-query-error") {
        return value.split(';').next().map(str::to_string);
    }
    if let Some(value) = headers.get("x-amzn-errortype") {
        return value.split(':').next().map(bare_code);
    }
    let body = response.body().bytes()?;
    let text = String::from_utf8_lossy(body);
    if let Some(start) = text.find("<Code>") {
        let rest = &text[start + "<Code>".len()..];
        return rest
            .find("</Code>")
            .map(|end| rest[..end].trim().to_string());
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["__type", "code", "Code"]
        .into_iter()
        .find_map(|field| json.get(field)?.as_str())
        .map(|code| bare_code(code.split(':').next().unwrap_or(code)))
}

/// `aws.protocoltests#ThrottlingException` → `ThrottlingException`.
fn bare_code(code: &str) -> String {
    code.rsplit('#').next().unwrap_or(code).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut response = HttpResponse::new(
            status.try_into().expect("a status"),
            SdkBody::from(body.to_string()),
        );
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(name.to_string(), value.to_string());
        }
        response
    }

    #[test]
    fn throttles_are_read_in_every_protocol_the_budgeted_services_speak() {
        // ELB (query protocol).
        let elb = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                   <Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert!(throttled(&response(400, &[], elb)));
        // ECS and CodeDeploy (JSON): the header, or the body's `__type`.
        assert!(throttled(&response(
            400,
            &[(
                "x-amzn-ErrorType",
                "ThrottlingException:http://internal.amazon.com/"
            )],
            "{}"
        )));
        assert!(throttled(&response(
            400,
            &[],
            r#"{"__type":"com.amazonaws.ecs#ThrottlingException","message":"Rate exceeded"}"#
        )));
        // CloudWatch (CBOR, query-compatible errors).
        assert!(throttled(&response(
            400,
            &[("x-amzn-query-error", "Throttling;Sender")],
            ""
        )));
        assert!(throttled(&response(429, &[], "")));
    }

    #[test]
    fn other_errors_and_successes_are_not_throttles() {
        let not_found =
            "<ErrorResponse><Error><Code>ListenerNotFound</Code></Error></ErrorResponse>";
        assert!(!throttled(&response(400, &[], not_found)));
        assert!(!throttled(&response(
            400,
            &[],
            r#"{"__type":"ClusterNotFoundException"}"#
        )));
        assert!(!throttled(&response(500, &[], "")));
        // A success whose body mentions a throttling code is still a success.
        assert!(!throttled(&response(200, &[], "<Code>Throttling</Code>")));
    }
}
