//! Response bodies and reading request bodies within a size limit.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use std::convert::Infallible;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Resp = Response<Body>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Resp {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Reading a request body failed.
#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    Io(String),
}

/// Collects at most `limit` bytes; a longer body (declared or actual) is `TooLarge`.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    use hyper::body::Body as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ReadError::TooLarge)
            } else {
                Err(ReadError::Io(e.to_string()))
            }
        }
    }
}
