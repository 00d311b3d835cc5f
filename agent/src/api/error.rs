//! OpenAI-style errors: `{"error":{"message","type","param","code"}}` with the matching status.

use super::body::{json_response, Resp};
use hyper::StatusCode;
use serde_json::json;

/// An error returned to the client. `kind` is also the metrics label.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
    pub code: &'static str,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
        }
    }

    /// A request field has a bad value.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", message);
        e.param = Some(param.to_string());
        e
    }

    pub fn bad_json(message: impl Into<String>, param: Option<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
        e.param = param;
        e
    }

    pub fn context_exceeded(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "context_length_exceeded", message);
        e.param = Some("messages".into());
        e
    }

    pub fn model_not_found(model: &str) -> ApiError {
        let shown: String = model.chars().take(100).collect();
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("The model `{shown}` does not exist on this worker"),
        );
        e.param = Some("model".into());
        e
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("The request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn queue_full(waiting: usize) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("The worker is at capacity ({waiting} requests queued); retry later"),
        );
        e.retry_after = Some(1);
        e
    }

    pub fn not_ready(pending: &[String]) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "The worker is not ready yet (waiting for: {})",
                pending.join(", ")
            ),
        );
        e.retry_after = Some(1);
        e
    }

    pub fn not_found(path: &str) -> ApiError {
        let shown: String = path.chars().take(100).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No route for {shown}"),
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed on this path",
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The OpenAI `type` for this status.
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            429 => "rate_limit_error",
            503 => "service_unavailable",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }

    pub fn into_response(self) -> Resp {
        let mut resp = json_response(self.status, &self.to_json());
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(hyper::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
