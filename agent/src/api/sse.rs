//! Server-sent-event response bodies fed directly by the engine's event channel.
//!
//! The body owns the request's event receiver: when hyper drops the body (client gone, write
//! timeout), the receiver is dropped and the engine frees the sequence at its next step.

use super::error::ApiError;
use super::responses::Meta;
use crate::engine::Event;
use bytes::Bytes;
use hyper::body::Frame;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc::UnboundedReceiver;

pub struct SseBody {
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
    /// The chat role chunk is sent first.
    role_pending: bool,
    done: bool,
}

impl SseBody {
    pub fn new(meta: Meta, rx: UnboundedReceiver<Event>, include_usage: bool) -> SseBody {
        let role_pending = meta.endpoint == super::responses::Endpoint::Chat;
        SseBody {
            meta,
            rx,
            include_usage,
            role_pending,
            done: false,
        }
    }
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
        if this.role_pending {
            this.role_pending = false;
            let chunk = this.meta.chunk(Some(""), true, None);
            return Poll::Ready(Some(Ok(Frame::data(frame(&chunk).into()))));
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Event::Text(t))) => {
                let chunk = this.meta.chunk(Some(&t), false, None);
                Poll::Ready(Some(Ok(Frame::data(frame(&chunk).into()))))
            }
            Poll::Ready(Some(Event::Done { finish, usage })) => {
                this.done = true;
                let mut out = frame(&this.meta.chunk(None, false, Some(finish)));
                if this.include_usage {
                    out.push_str(&frame(&this.meta.usage_chunk(usage)));
                }
                out.push_str("data: [DONE]\n\n");
                Poll::Ready(Some(Ok(Frame::data(out.into()))))
            }
            Poll::Ready(Some(Event::Failed(msg))) => {
                this.done = true;
                let err = ApiError::internal(msg).to_json();
                Poll::Ready(Some(Ok(Frame::data(frame(&err).into()))))
            }
            Poll::Ready(None) => {
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
