//! The analysis's adapters: CloudWatch `GetMetricData` through the SDK (answered by
//! `aws-smithy-mocks` with outputs shaped like the AWS API model's: moto cannot speak this
//! SDK's CloudWatch protocol), and the HTTP probe against a real local server.

use std::time::Duration;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MessageData, MetricDataResult, ScanBy, StatusCode};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use jiff::Timestamp;
use switchyard::aws::CloudWatchMetricData;
use switchyard::ports::{
    AwsErrorKind, HttpProbe, MetricData, MetricDataKind, MetricDataQuery, MetricDataRequest,
    ProbeError,
};
use switchyard::probe::HyperProbe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).unwrap()
}

fn sdk_time(second: i64) -> DateTime {
    DateTime::from_secs(1_800_000_000 + second)
}

/// Errors over requests, as an analysis asks: two metrics and the expression returned.
fn error_rate_request() -> MetricDataRequest {
    let stat = |id: &str, name: &str| MetricDataQuery {
        id: id.into(),
        kind: MetricDataKind::Stat {
            namespace: "AWS/ApplicationELB".into(),
            metric_name: name.into(),
            dimensions: vec![
                ("LoadBalancer".into(), "app/web/1".into()),
                ("TargetGroup".into(), "targetgroup/web-b/2".into()),
            ],
            period_seconds: 60,
            stat: "Sum".into(),
            unit: None,
        },
        return_data: false,
    };
    MetricDataRequest {
        queries: vec![
            stat("m1", "HTTPCode_Target_5XX_Count"),
            stat("m2", "RequestCount"),
            MetricDataQuery {
                id: "switchyard".into(),
                kind: MetricDataKind::Expression {
                    expression: "m1 / m2 * 100".into(),
                    period_seconds: 60,
                },
                return_data: true,
            },
        ],
        start: at(0),
        end: at(300),
    }
}

fn result(id: &str, points: &[(i64, f64)]) -> MetricDataResult {
    let mut builder = MetricDataResult::builder()
        .id(id)
        .status_code(StatusCode::Complete);
    for (second, value) in points {
        builder = builder.timestamps(sdk_time(*second)).values(*value);
    }
    builder.build()
}

#[tokio::test]
async fn get_metric_data_sends_the_queries_reads_every_page_and_returns_the_expression_newest_first()
 {
    let first = mock!(Client::get_metric_data)
        .match_requests(|r| {
            let queries = r.metric_data_queries();
            let m1 = &queries[0];
            let stat = m1.metric_stat().expect("a MetricStat");
            let metric = stat.metric().expect("its metric");
            r.next_token().is_none()
                && r.start_time() == Some(&sdk_time(0))
                && r.end_time() == Some(&sdk_time(300))
                && r.scan_by() == Some(&ScanBy::TimestampDescending)
                && queries.len() == 3
                && m1.id() == Some("m1")
                && m1.return_data() == Some(false)
                && metric.namespace() == Some("AWS/ApplicationELB")
                && metric.metric_name() == Some("HTTPCode_Target_5XX_Count")
                && metric.dimensions().len() == 2
                && metric.dimensions()[1].name() == Some("TargetGroup")
                && metric.dimensions()[1].value() == Some("targetgroup/web-b/2")
                && stat.period() == Some(60)
                && stat.stat() == Some("Sum")
                && queries[2].expression() == Some("m1 / m2 * 100")
                && queries[2].return_data() == Some(true)
                && queries[2].period() == Some(60)
        })
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result("switchyard", &[(240, 0.5), (180, 0.25)]))
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::get_metric_data)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result("switchyard", &[(120, 4.0)]))
                // A result of another id is never read as this one's.
                .metric_data_results(result("other", &[(299, 99.0)]))
                .build()
        });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first, &second]);
    let points = CloudWatchMetricData::new(client)
        .get_metric_data(&error_rate_request())
        .await
        .expect("datapoints");
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    let read: Vec<(Timestamp, f64)> = points.iter().map(|p| (p.at, p.value)).collect();
    assert_eq!(read, [(at(240), 0.5), (at(180), 0.25), (at(120), 4.0)]);
}

#[tokio::test]
async fn a_result_cloudwatch_could_not_compute_is_an_error_never_no_data() {
    for (code, kind) in [
        (StatusCode::Forbidden, AwsErrorKind::AccessDenied),
        (StatusCode::InternalError, AwsErrorKind::Transient),
    ] {
        let answer = code.clone();
        let rule = mock!(Client::get_metric_data).then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("switchyard")
                        .status_code(answer.clone())
                        .messages(
                            MessageData::builder()
                                .code("Forbidden")
                                .value("not authorized for namespace AWS/ApplicationELB")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let error = CloudWatchMetricData::new(client)
            .get_metric_data(&error_rate_request())
            .await
            .expect_err("not no data");
        assert_eq!(error.kind, kind, "{error}");
        assert_eq!(error.operation, "GetMetricData");
        assert!(
            error.message.contains("not authorized for namespace"),
            "{error}"
        );
    }
    // An empty result is no data: an empty list.
    let empty = mock!(Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .metric_data_results(result("switchyard", &[]))
            .build()
    });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&empty]);
    let points = CloudWatchMetricData::new(client)
        .get_metric_data(&error_rate_request())
        .await
        .expect("no data");
    assert!(points.is_empty());
}

/// A local HTTP server: answers every request with `status` after `delay` (`None`: never).
async fn serve(status: u16, delay: Option<Duration>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                assert!(
                    request.starts_with("GET /health?deep=1 HTTP/1.1\r\n"),
                    "{request}"
                );
                assert!(
                    request
                        .to_lowercase()
                        .contains("user-agent: switchyard-analysis/")
                );
                match delay {
                    None => std::future::pending::<()>().await,
                    Some(delay) => tokio::time::sleep(delay).await,
                }
                let response = format!(
                    "HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/health?deep=1")
}

#[tokio::test]
async fn the_http_probe_answers_the_status_a_timeout_or_why_it_failed() {
    let probe = HyperProbe::new();
    let timeout = Duration::from_millis(500);
    let ok = serve(200, Some(Duration::ZERO)).await;
    assert_eq!(probe.probe(&ok, timeout).await, Ok(200));
    let unavailable = serve(503, Some(Duration::ZERO)).await;
    assert_eq!(probe.probe(&unavailable, timeout).await, Ok(503));
    let silent = serve(200, None).await;
    assert_eq!(
        probe.probe(&silent, timeout).await,
        Err(ProbeError::Timeout(timeout))
    );
    // Nothing listens on a port just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/health", listener.local_addr().unwrap())
    };
    let Err(ProbeError::Failed(why)) = probe.probe(&closed, timeout).await else {
        panic!("connection refused is a failure");
    };
    assert!(why.to_lowercase().contains("connect"), "{why}");
}
