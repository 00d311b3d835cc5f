//! The control endpoint's HTTP/1.1 service: `GET /status` and `GET /logs?lines=N`, one request
//! per connection, JSON bodies with `Content-Length`.
//!
//! Read-only by construction: the router answers GET on two paths and 404/405 otherwise; it
//! never reads a request body. Errors are `{"error": "<reason>"}`.

use super::log_ring::{self, LogRing};
use super::status::{Sources, StatusReport};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The `format` of the `/logs` reply.
pub const LOGS_FORMAT: &str = "cocoon-agent-logs/v1";
/// Lines `/logs` returns without `lines=`.
pub const DEFAULT_LINES: usize = 100;
/// The most lines one `/logs` request may ask for (the ring's capacity).
pub const MAX_LINES: usize = log_ring::CAPACITY;
/// A request's head must arrive within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct LogsReply {
    pub format: &'static str,
    /// Oldest first.
    pub lines: Vec<String>,
    /// Lines logged since start, including those no longer kept.
    pub total_logged: u64,
    pub capacity: usize,
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"serialising the reply: {e}\"}}").into_bytes());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// The `lines` of a `/logs` query: absent means [`DEFAULT_LINES`]; anything but one
/// `lines=<0..=MAX_LINES>` is refused with the reason.
pub fn parse_logs_query(query: Option<&str>) -> Result<usize, String> {
    let mut lines = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "lines" {
            return Err(format!("unknown query parameter {key:?} (only `lines`)"));
        }
        if lines.is_some() {
            return Err("`lines` given twice".into());
        }
        if value.is_empty() || value.len() > 7 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("lines={value:?} is not a whole number"));
        }
        let n: usize = value
            .parse()
            .map_err(|_| format!("lines={value:?} is not a whole number"))?;
        if n > MAX_LINES {
            return Err(format!("lines={n} is more than the {MAX_LINES} kept"));
        }
        lines = Some(n);
    }
    Ok(lines.unwrap_or(DEFAULT_LINES))
}

/// Answers one request (see the module documentation).
pub fn route<B>(req: &Request<B>, sources: &Sources, ring: &LogRing) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/status" && path != "/logs" {
        return error(
            StatusCode::NOT_FOUND,
            format!("no route {path}: the control endpoint serves GET /status and GET /logs"),
        );
    }
    if req.method() != Method::GET {
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} {path}: the control endpoint is read-only (GET)",
                req.method()
            ),
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    if path == "/status" {
        if req.uri().query().is_some_and(|q| !q.is_empty()) {
            return error(StatusCode::BAD_REQUEST, "/status takes no query parameters");
        }
        return json(StatusCode::OK, &StatusReport::read(sources));
    }
    match parse_logs_query(req.uri().query()) {
        Ok(n) => {
            let (lines, total_logged) = ring.tail(n);
            json(
                StatusCode::OK,
                &LogsReply {
                    format: LOGS_FORMAT,
                    lines,
                    total_logged,
                    capacity: log_ring::CAPACITY,
                },
            )
        }
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

/// Serves one connection: one request, then the connection closes.
pub async fn serve_connection<IO>(io: IO, sources: Arc<Sources>, peer: String)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let log_peer = peer.clone();
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let resp = route(&req, &sources, log_ring::global());
        tracing::debug!(
            peer = %log_peer,
            method = %req.method(),
            path = req.uri().path(),
            status = resp.status().as_u16(),
            "control request"
        );
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "control connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::Mode;
    use crate::metrics::Metrics;
    use crate::readiness::{Readiness, MODEL_GATE};
    use std::time::Instant;

    fn sources() -> Sources {
        Sources {
            readiness: Readiness::with_gates(&[MODEL_GATE]),
            metrics: Arc::new(Metrics::new()),
            mode: Mode::Simulated,
            model_id: "tiny".into(),
            model_sha256: [0xab; 32],
            rtmr3: [0xcd; 48],
            config_sha256: [0xef; 32],
            certs: None,
            started: Instant::now(),
        }
    }

    fn get(method: Method, uri: &str) -> (StatusCode, serde_json::Value) {
        let ring = LogRing::new(5);
        for i in 0..8 {
            ring.push(format!("line {i}"));
        }
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        let resp = route(&req, &sources(), &ring);
        let status = resp.status();
        let body = futures_body(resp.into_body());
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn futures_body(body: Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(body.collect()).unwrap().to_bytes().to_vec()
    }

    #[test]
    fn status_reports_the_sources() {
        let (status, v) = get(Method::GET, "/status");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["format"], "cocoon-agent-status/v1");
        assert_eq!(v["ready"], false);
        assert_eq!(v["pending"], serde_json::json!(["model"]));
        assert_eq!(v["mode"], "simulated");
        assert_eq!(v["model"]["sha256"], "ab".repeat(32));
        assert_eq!(v["attestation"]["rtmr3"], "cd".repeat(48));
        assert_eq!(v["attestation"]["certificate"], serde_json::Value::Null);
    }

    #[test]
    fn logs_returns_the_tail_and_refuses_bad_queries() {
        let (status, v) = get(Method::GET, "/logs?lines=2");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["lines"], serde_json::json!(["line 6", "line 7"]));
        assert_eq!(v["total_logged"], 8);
        let (_, v) = get(Method::GET, "/logs");
        assert_eq!(v["lines"].as_array().unwrap().len(), 5);
        for bad in [
            "/logs?lines=1001",
            "/logs?lines=-1",
            "/logs?lines=",
            "/logs?lines=1e3",
            "/logs?lines=99999999999999999999",
            "/logs?lines=1&lines=2",
            "/logs?prompt=1",
            "/status?verbose=1",
        ] {
            let (status, v) = get(Method::GET, bad);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(v["error"].as_str().unwrap().len() > 5, "{bad}");
        }
    }

    #[test]
    fn only_get_on_known_paths() {
        assert_eq!(
            get(Method::POST, "/status").0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            get(Method::DELETE, "/logs").0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(get(Method::GET, "/v1/models").0, StatusCode::NOT_FOUND);
        assert_eq!(get(Method::GET, "/").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn query_parser_bounds() {
        assert_eq!(parse_logs_query(None), Ok(DEFAULT_LINES));
        assert_eq!(parse_logs_query(Some("lines=0")), Ok(0));
        assert_eq!(parse_logs_query(Some("lines=1000")), Ok(1000));
        assert!(parse_logs_query(Some("lines=1001")).is_err());
        assert!(parse_logs_query(Some("lines")).is_err());
    }
}
