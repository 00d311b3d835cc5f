//! The OpenAI-compatible HTTP API on hyper 1.x.
//!
//! Connections are bounded (`max_connections`), request headers and bodies must arrive within
//! `io_timeout`, and a response write that makes no progress for `io_timeout` closes the
//! connection, so a client that never reads cannot pin resources beyond its own socket.

mod account;
mod body;
mod error;
mod handlers;
mod responses;
mod sse;
mod types;

pub use error::ApiError;

use crate::billing::Billing;
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The id clients must send as `model`.
    pub model_id: String,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    pub io_timeout: Duration,
    pub max_connections: usize,
}

/// State shared by all connections.
pub struct AppState {
    pub config: ApiConfig,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    /// Set once the model is loaded.
    pub engine: OnceLock<EngineHandle>,
    /// Prepaid accounts and payments; `None` serves for free (no `--billing`).
    pub billing: Option<Arc<Billing>>,
    next_id: AtomicU64,
}

impl AppState {
    pub fn new(config: ApiConfig, readiness: Readiness, metrics: Arc<Metrics>) -> AppState {
        AppState {
            config,
            readiness,
            metrics,
            engine: OnceLock::new(),
            billing: None,
            next_id: AtomicU64::new(0),
        }
    }

    /// Turns billing on: bearer tokens, 402s, debits and receipts, `/v1/account`.
    pub fn with_billing(mut self, billing: Option<Arc<Billing>>) -> AppState {
        self.billing = billing;
        self
    }
}

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            () = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, state).await;
        });
    }
}

/// Serves HTTP/1.1 on one accepted connection (plain TCP, or TLS from the RA-TLS listener)
/// until it closes, with the header-read and write-progress timeouts described above.
pub async fn serve_connection<IO>(stream: IO, peer: std::net::SocketAddr, state: Arc<AppState>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let timeout = state.config.io_timeout;
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(timeout));
    let io = TokioIo::new(Box::pin(stream));
    let svc_state = state.clone();
    let service = service_fn(move |req| {
        let st = svc_state.clone();
        async move { Ok::<_, std::convert::Infallible>(handlers::route(st, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
