//! Request routing and the endpoint handlers.

use super::account::{self, authenticate, billing_error, receipt_header, RECEIPT_HEADER};
use super::body::{full, json_response, read_limited, ReadError, Resp};
use super::error::ApiError;
use super::responses::{Endpoint, Meta};
use super::sse::SseBody;
use super::types::{parse_chat, parse_completion, Options};
use super::AppState;
use crate::billing::Charge;
use crate::engine::{prompt, Event, GenRequest, SubmitError};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Dispatches one request and records its status in the metrics.
pub async fn route(state: Arc<AppState>, req: Request<Incoming>) -> Resp {
    let received = Instant::now();
    let path = req.uri().path().to_string();
    let (label, result) = match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/chat/completions") => (
            Endpoint::Chat.label(),
            generate(&state, req, Endpoint::Chat, received).await,
        ),
        (&Method::POST, "/v1/completions") => (
            Endpoint::Completions.label(),
            generate(&state, req, Endpoint::Completions, received).await,
        ),
        (&Method::GET, "/v1/models") => ("models", Ok(models(&state))),
        (&Method::GET, "/healthz") => ("healthz", Ok(healthz(&state))),
        (&Method::GET, "/metrics") => ("metrics", Ok(metrics(&state))),
        (&Method::GET, "/v1/account") => ("account", account::account(&state, &req)),
        (&Method::POST, "/v1/account/refund") => ("refund", account::refund(&state, req).await),
        (
            _,
            "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/models"
            | "/healthz"
            | "/metrics"
            | "/v1/account"
            | "/v1/account/refund",
        ) => ("other", Err(ApiError::method_not_allowed())),
        _ => ("other", Err(ApiError::not_found(&path))),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            state.metrics.error(e.code);
            e.into_response()
        }
    };
    state.metrics.request(label, resp.status().as_u16());
    resp
}

fn healthz(state: &AppState) -> Resp {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        json_response(StatusCode::OK, &json!({"status": "ok"}))
    } else {
        let mut r = json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "starting", "waiting_for": pending}),
        );
        r.headers_mut().insert(hyper::header::RETRY_AFTER, 1.into());
        r
    }
}

fn models(state: &AppState) -> Resp {
    let mut entry = json!({
        "id": state.config.model_id,
        "object": "model",
        "created": unix_now(),
        "owned_by": "cocoon-worker",
    });
    if let Some(engine) = state.engine.get() {
        entry["context_length"] = engine.ctx_per_seq().into();
        entry["chat_template"] = json!({
            "name": engine.template().label,
            "source": engine.template().source.as_str(),
        });
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": [entry]}))
}

fn metrics(state: &AppState) -> Resp {
    let mut text = state.metrics.render();
    if let Some(b) = &state.billing {
        b.render_metrics(&mut text);
    }
    let mut r = Response::new(full(text));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Prompt text or chat transcript, before tokenization.
enum PromptInput {
    Text(String),
    Chat(Vec<(String, String)>),
}

async fn generate(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    received: Instant,
) -> Result<Resp, ApiError> {
    // With billing on, the caller must name its account before anything else is done.
    let payer = authenticate(state, req.headers())?;
    // Content-Type is not enforced (curl's -d sends a form type); the body must be JSON.
    let limit = state.config.body_limit;
    let body = tokio::time::timeout(
        state.config.io_timeout,
        read_limited(req.into_body(), limit),
    )
    .await
    .map_err(|_| ApiError::invalid("body", "timed out reading the request body"))?
    .map_err(|e| match e {
        ReadError::TooLarge => ApiError::too_large(limit),
        ReadError::Io(m) => ApiError::invalid("body", format!("reading the body: {m}")),
    })?;
    let request_hash: [u8; 32] = Sha256::digest(&body).into();
    let (input, opts) = match endpoint {
        Endpoint::Chat => {
            let r = parse_chat(&body)?;
            let opts = r.common.validate(&state.config.model_id)?;
            (PromptInput::Chat(r.transcript()?), opts)
        }
        Endpoint::Completions => {
            let r = parse_completion(&body)?;
            let opts = r.common.validate(&state.config.model_id)?;
            (PromptInput::Text(r.prompt_text()?.to_string()), opts)
        }
    };
    drop(body);
    let engine = match state.engine.get() {
        Some(e) => e.clone(),
        None => return Err(ApiError::not_ready(&state.readiness.pending())),
    };
    let pending = state.readiness.pending();
    if !pending.is_empty() {
        return Err(ApiError::not_ready(&pending));
    }
    // Rendering and tokenizing up to a body's worth of text is CPU work: off the I/O threads.
    let tok_engine = engine.clone();
    let tokens = tokio::task::spawn_blocking(move || match input {
        PromptInput::Text(t) => Ok(prompt::tokenize(tok_engine.model(), &t)),
        PromptInput::Chat(msgs) => {
            let text = tok_engine
                .template()
                .render(tok_engine.model(), &msgs)
                .map_err(|e| match e {
                    prompt::PromptError::Nul { index, field } => ApiError::invalid(
                        &format!("messages[{index}].{field}"),
                        "NUL characters are not allowed",
                    ),
                    other => ApiError::invalid("messages", other.to_string()),
                })?;
            Ok(prompt::tokenize(tok_engine.model(), &text))
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizer task failed: {e}")))??;
    if tokens.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "the prompt is empty (zero tokens)",
        ));
    }
    let max_tokens = check_context(tokens.len(), opts.max_tokens, engine.ctx_per_seq())?;
    // The most this request can cost is held before the engine sees it (402 otherwise).
    let charge = match &payer {
        Some((billing, account)) => Some(
            billing
                .authorize(account, tokens.len() as u32, max_tokens, request_hash)
                .map_err(billing_error)?,
        ),
        None => None,
    };
    let progress = charge.as_ref().map(Charge::progress).unwrap_or_default();
    tracing::debug!(
        endpoint = endpoint.label(),
        prompt_tokens = tokens.len(),
        max_tokens,
        stream = opts.stream,
        "request admitted"
    );

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let Options {
        sampling,
        stop,
        stream,
        include_usage,
        ..
    } = opts;
    let submitted = engine.submit(GenRequest {
        prompt: tokens,
        max_tokens,
        sampling,
        stop,
        events: tx,
        received,
        progress,
    });
    if let Err(e) = submitted {
        if let Some(c) = charge {
            c.release();
        }
        return Err(match e {
            SubmitError::QueueFull(n) => ApiError::queue_full(n),
            SubmitError::Stopped => ApiError::internal("the engine has stopped"),
        });
    }

    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let created = unix_now();
    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl",
        Endpoint::Completions => "cmpl",
    };
    let meta = Meta {
        endpoint,
        id: format!("{prefix}-{created:x}{n:08x}"),
        created,
        model: state.config.model_id.clone(),
    };
    if stream {
        let mut r = Response::new(SseBody::new(meta, rx, include_usage, charge).boxed());
        let h = r.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        return Ok(r);
    }
    collect(meta, rx, charge).await
}

/// Resolves `max_tokens` against the per-sequence context; rejects before any work is queued.
fn check_context(prompt: usize, max_tokens: Option<u32>, ctx: u32) -> Result<u32, ApiError> {
    let ctx = ctx as usize;
    if prompt >= ctx {
        return Err(ApiError::context_exceeded(format!(
            "The prompt is {prompt} tokens; this worker's context is {ctx} tokens per request"
        )));
    }
    match max_tokens {
        None => Ok((ctx - prompt) as u32),
        Some(m) if prompt + m as usize <= ctx => Ok(m),
        Some(m) => Err(ApiError::context_exceeded(format!(
            "The prompt ({prompt} tokens) plus max_tokens ({m}) exceeds this worker's context of {ctx} tokens per request"
        ))),
    }
}

/// Gathers a non-streamed response. With billing, the exact usage is debited before the
/// response is returned and the receipt goes in the `X-Cocoon-Receipt` header; if this future
/// is dropped (client gone), the charge bills what was generated (see `billing::charge`).
async fn collect(
    meta: Meta,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    mut charge: Option<Charge>,
) -> Result<Resp, ApiError> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => {
                if let Some(c) = &mut charge {
                    c.observe_text(&t);
                }
                text.push_str(&t)
            }
            Event::Done { finish, usage } => {
                let receipt = match charge {
                    Some(c) => Some(c.settle(usage).await.map_err(billing_error)?),
                    None => None,
                };
                let mut r = json_response(StatusCode::OK, &meta.full(text, finish, usage));
                if let Some(receipt) = receipt {
                    r.headers_mut()
                        .insert(RECEIPT_HEADER, receipt_header(&receipt)?);
                }
                return Ok(r);
            }
            Event::Failed(m) => {
                if let Some(c) = charge {
                    c.release();
                }
                return Err(ApiError::internal(m));
            }
        }
    }
    if let Some(c) = charge {
        c.release();
    }
    Err(ApiError::internal("the engine stopped before finishing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_check_is_exact_at_the_boundary() {
        assert_eq!(check_context(10, Some(6), 16).unwrap(), 6);
        assert_eq!(check_context(10, None, 16).unwrap(), 6);
        assert_eq!(
            check_context(10, Some(7), 16).unwrap_err().code,
            "context_length_exceeded"
        );
        assert!(check_context(16, None, 16).is_err());
        assert!(check_context(0, Some(u32::MAX), 16).is_err());
    }
}
