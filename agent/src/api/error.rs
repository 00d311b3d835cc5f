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
    /// Extra members of the error object (e.g. `balance`, `required` of a 402).
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
            extra: Vec::new(),
        }
    }

    /// No or malformed bearer token while billing is on (401 with `WWW-Authenticate`).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// The account cannot cover the request's maximum cost (402).
    pub fn insufficient_funds(balance: u64, required: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_funds",
            format!(
                "The account's balance of {balance} nanoTON does not cover this request's \
                 maximum cost of {required} nanoTON (prompt tokens plus max_tokens at this \
                 worker's prices); deposit more or lower max_tokens"
            ),
        );
        e.extra = vec![("balance", balance.into()), ("required", required.into())];
        e
    }

    /// A billing or refund failure with its own status and code.
    pub fn with_status(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::new(status, code, message)
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
            401 => "authentication_error",
            402 => "insufficient_funds",
            429 => "rate_limit_error",
            503 => "service_unavailable",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }});
        for (k, x) in &self.extra {
            v["error"][*k] = x.clone();
        }
        v
    }

    pub fn into_response(self) -> Resp {
        let mut resp = json_response(self.status, &self.to_json());
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(hyper::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
