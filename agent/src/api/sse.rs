//! Server-sent-event response bodies fed directly by the engine's event channel.
//!
//! The body owns the request's event receiver: when hyper drops the body (client gone, write
//! timeout), the receiver is dropped and the engine frees the sequence at its next step.
//!
//! With billing, the body also owns the request's [`Charge`]. At `Done` the exact usage is
//! debited (on a spawned task, so the fsynced append completes even if the client leaves)
//! and the signed receipt is added as `cocoon_receipt` to the last chunk before `[DONE]`: the
//! usage chunk with `stream_options.include_usage`, the finish chunk otherwise. A body dropped
//! earlier drops the charge, which bills what was generated.

use super::error::ApiError;
use super::responses::Meta;
use crate::billing::Charge;
use crate::engine::{Event, FinishReason, Usage};
use bytes::Bytes;
use hyper::body::Frame;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

pub struct SseBody {
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
    /// The chat role chunk is sent first.
    role_pending: bool,
    charge: Option<Charge>,
    /// The closing frames, once the debit behind them is recorded.
    finishing: Option<oneshot::Receiver<String>>,
    done: bool,
}

impl SseBody {
    pub fn new(
        meta: Meta,
        rx: UnboundedReceiver<Event>,
        include_usage: bool,
        charge: Option<Charge>,
    ) -> SseBody {
        let role_pending = meta.endpoint == super::responses::Endpoint::Chat;
        SseBody {
            meta,
            rx,
            include_usage,
            role_pending,
            charge,
            finishing: None,
            done: false,
        }
    }
}

/// The frames after the last text: finish chunk, optional usage chunk, `[DONE]`; with a
/// receipt, it rides on the last of the chunks.
fn closing(
    meta: &Meta,
    finish: FinishReason,
    usage: Usage,
    include_usage: bool,
    receipt: Option<serde_json::Value>,
) -> String {
    let mut finish_chunk = meta.chunk(None, false, Some(finish));
    let mut usage_chunk = include_usage.then(|| meta.usage_chunk(usage));
    if let Some(r) = receipt {
        match &mut usage_chunk {
            Some(u) => u["cocoon_receipt"] = r,
            None => finish_chunk["cocoon_receipt"] = r,
        }
    }
    let mut out = frame(&finish_chunk);
    if let Some(u) = usage_chunk {
        out.push_str(&frame(&u));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// Debits the charge, then hands over the closing frames (or an error frame).
async fn settle(
    charge: Charge,
    meta: Meta,
    finish: FinishReason,
    usage: Usage,
    include_usage: bool,
    out: oneshot::Sender<String>,
) {
    let frames = match charge.settle(usage).await {
        Ok(receipt) => closing(
            &meta,
            finish,
            usage,
            include_usage,
            Some(super::account::receipt_json(&receipt)),
        ),
        Err(e) => frame(&super::account::billing_error(e).to_json()),
    };
    let _ = out.send(frames);
}

fn frame(value: &serde_json::Value) -> String {
    format!("data: {value}\n\n")
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(f) = &mut this.finishing {
            return match Pin::new(f).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(r) => {
                    this.done = true;
                    let out = r.unwrap_or_else(|_| {
                        frame(&ApiError::internal("the billing task ended early").to_json())
                    });
                    Poll::Ready(Some(Ok(Frame::data(out.into()))))
                }
            };
        }
        if this.role_pending {
            this.role_pending = false;
            let chunk = this.meta.chunk(Some(""), true, None);
            return Poll::Ready(Some(Ok(Frame::data(frame(&chunk).into()))));
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Event::Text(t))) => {
                if let Some(c) = &mut this.charge {
                    c.observe_text(&t);
                }
                let chunk = this.meta.chunk(Some(&t), false, None);
                Poll::Ready(Some(Ok(Frame::data(frame(&chunk).into()))))
            }
            Poll::Ready(Some(Event::Done { finish, usage })) => {
                if let Some(charge) = this.charge.take() {
                    let (tx, rx) = oneshot::channel();
                    tokio::spawn(settle(
                        charge,
                        this.meta.clone(),
                        finish,
                        usage,
                        this.include_usage,
                        tx,
                    ));
                    this.finishing = Some(rx);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.done = true;
                let out = closing(&this.meta, finish, usage, this.include_usage, None);
                Poll::Ready(Some(Ok(Frame::data(out.into()))))
            }
            Poll::Ready(Some(Event::Failed(msg))) => {
                if let Some(c) = this.charge.take() {
                    c.release();
                }
                this.done = true;
                let err = ApiError::internal(msg).to_json();
                Poll::Ready(Some(Ok(Frame::data(frame(&err).into()))))
            }
            Poll::Ready(None) => {
                if let Some(c) = this.charge.take() {
                    c.release();
                }
                this.done = true;
                let err = ApiError::internal("the engine stopped").to_json();
                Poll::Ready(Some(Ok(Frame::data(frame(&err).into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::responses::Endpoint;

    fn frames(s: &str) -> Vec<serde_json::Value> {
        s.split("\n\n")
            .filter_map(|f| f.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn the_receipt_rides_on_the_last_chunk_before_done() {
        let meta = Meta {
            endpoint: Endpoint::Chat,
            id: "x".into(),
            created: 1,
            model: "m".into(),
        };
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let r = serde_json::json!({"cost": 9});
        let with_usage = closing(&meta, FinishReason::Stop, usage, true, Some(r.clone()));
        assert!(with_usage.ends_with("data: [DONE]\n\n"));
        let f = frames(&with_usage);
        assert_eq!(f.len(), 2);
        assert!(f[0].get("cocoon_receipt").is_none());
        assert_eq!(f[1]["cocoon_receipt"], r);
        assert_eq!(f[1]["usage"]["completion_tokens"], 2);

        let f = frames(&closing(
            &meta,
            FinishReason::Length,
            usage,
            false,
            Some(r.clone()),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["cocoon_receipt"], r);
        assert_eq!(f[0]["choices"][0]["finish_reason"], "length");

        let f = frames(&closing(&meta, FinishReason::Stop, usage, true, None));
        assert!(f.iter().all(|c| c.get("cocoon_receipt").is_none()));
    }
}
