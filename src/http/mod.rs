//! The read-only HTTP server of `switchyard run` and `switchyard demo`: health, readiness,
//! Prometheus metrics, the status API and the dashboard. Handlers read the controller's
//! shared state only; none calls the store or AWS.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;

use crate::state::ControllerState;
use crate::view::ReleaseView;

/// The dashboard: one self-contained page (no CDN, no remote fonts) that polls the API.
const DASHBOARD: &str = include_str!("dashboard.html");

/// The router, for `serve` and for tests.
pub fn router(state: ControllerState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/releases", get(list_releases))
        .route("/api/v1/releases/{name}", get(get_release))
        .with_state(state)
}

/// Binds `addr` (an error names it if taken) and serves until `shutdown` completes.
pub async fn serve(
    state: ControllerState,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let local_addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(Server { local_addr, handle })
}

/// A running server.
pub struct Server {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    pub handle: tokio::task::JoinHandle<()>,
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ControllerState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first sync, or the release store is unreachable\n",
        )
            .into_response()
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic Prometheus text
/// format for everyone else (promtool, curl, older agents).
async fn metrics(State(state): State<ControllerState>, headers: axum::http::HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = state.metrics().encode();
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            openmetrics_to_prometheus_text(&text),
        )
            .into_response()
    }
}

/// Converts an OpenMetrics exposition to the classic Prometheus text format: counter
/// families are named with their `_total` suffix in HELP and TYPE (as their samples are),
/// and the OpenMetrics-only `# UNIT` and `# EOF` lines are dropped.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// `{"releases": [...]}`, written one release at a time from the records the state shares:
/// the fleet is never copied whole for a listing (its views, each with the spec parsed and
/// written again, were several times the fleet), only the JSON text is. The dashboard asks
/// every two seconds.
async fn list_releases(State(state): State<ControllerState>) -> Response {
    let releases = state.releases_shared();
    let mut body = Vec::with_capacity(64 + releases.len() * 1024);
    body.extend_from_slice(b"{\"releases\":[");
    for (index, release) in releases.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        let view = ReleaseView::from(crate::ports::StoredRelease::clone(release));
        if let Err(error) = serde_json::to_writer(&mut body, &view) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(
                    serde_json::json!({"error": format!("cannot write the release list: {error}")}),
                ),
            )
                .into_response();
        }
    }
    body.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn get_release(State(state): State<ControllerState>, Path(name): Path<String>) -> Response {
    match state.release(&name) {
        Some(release) => Json(ReleaseView::from(release)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("release {name} not found")})),
        )
            .into_response(),
    }
}

/// The URL `switchyard healthcheck` checks by default: `/healthz` of the server listening on
/// `listen` (`SWITCHYARD_LISTEN`, or the default), reached on loopback when it listens on
/// every address.
pub fn default_healthcheck_url(listen: &str) -> Result<String, String> {
    let mut address: SocketAddr = listen.trim().parse().map_err(|_| {
        format!(
            "SWITCHYARD_LISTEN: {listen:?} is not an address and port such as 0.0.0.0:8080 \
             (or give --url)"
        )
    })?;
    // The unspecified address (0.0.0.0 or ::) accepts on every interface, loopback included;
    // it cannot be connected to itself.
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{address}/healthz"))
}

/// `switchyard healthcheck`: GETs `url` and succeeds on HTTP 200. The runtime image has no
/// shell or curl, and one plain HTTP/1.1 request does not justify an HTTP client crate.
pub async fn healthcheck(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(64 * 1024)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("cannot read the response: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let status_line = text.lines().next().unwrap_or_default().to_string();
        if status_line.split_whitespace().nth(1) == Some("200") {
            Ok(())
        } else {
            Err(format!("{url} answered `{status_line}`"))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), request)
        .await
        .map_err(|_| format!("{url} did not answer within 5 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_healthcheck_url_reaches_a_wildcard_listener_on_loopback() {
        for (listen, url) in [
            // Specific addresses are kept as they are, even when they contain `0.0.0.0`.
            ("10.0.0.0:8080", "http://10.0.0.0:8080/healthz"),
            ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
            ("[::]:8080", "http://[::1]:8080/healthz"),
            ("127.0.0.1:9000", "http://127.0.0.1:9000/healthz"),
            // As the configuration reads it.
            (" 0.0.0.0:8080 ", "http://127.0.0.1:8080/healthz"),
            ("100.0.0.0:80", "http://100.0.0.0:80/healthz"),
            (
                "[::ffff:10.0.0.0]:8080",
                "http://[::ffff:10.0.0.0]:8080/healthz",
            ),
            ("[fd00::1]:8080", "http://[fd00::1]:8080/healthz"),
            ("[0:0:0:0:0:0:0:0]:8080", "http://[::1]:8080/healthz"),
        ] {
            assert_eq!(
                default_healthcheck_url(listen).as_deref(),
                Ok(url),
                "{listen:?}"
            );
        }
        for listen in ["localhost:8080", "0.0.0.0", "", "http://0.0.0.0:8080"] {
            let error = default_healthcheck_url(listen).unwrap_err();
            assert!(error.contains("SWITCHYARD_LISTEN"), "{error}");
        }
    }

    #[test]
    fn counters_get_their_total_suffix_and_openmetrics_only_lines_go() {
        let openmetrics = "# HELP x_calls Calls.\n# TYPE x_calls counter\nx_calls_total{a=\"b\"} 1\n# HELP x_seconds Time.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\nx_seconds_count 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(openmetrics),
            "# HELP x_calls_total Calls.\n# TYPE x_calls_total counter\nx_calls_total{a=\"b\"} 1\n# HELP x_seconds Time.\n# TYPE x_seconds histogram\nx_seconds_count 1\n"
        );
    }
}
