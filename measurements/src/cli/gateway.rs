//! `cocoon-measure gateway`: a local plain-HTTP proxy that forwards requests only to a worker
//! whose RA-TLS certificate the verifier accepted.
//!
//! Every upstream connection is a TLS 1.3 connection whose certificate passed
//! [`RatlsVerifier`] before the first request byte is written; a refused certificate answers
//! 502 `{"error":{"type":"attestation_refused","message":<reason>}}` and the request is never
//! sent. Verified connections are reused (HTTP/1.1 keep-alive, at most [`MAX_IDLE`] idle) until
//! the certificate they were verified with expires. Response bodies are streamed through as
//! they arrive (server-sent events included).

use super::verifier_args::VerifierArgs;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Args;
use cocoon_measure::ratls::{tls, AcceptedIdentity, RatlsVerifier};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// Most idle upstream connections kept for reuse.
pub const MAX_IDLE: usize = 32;
/// Time allowed to connect to the upstream and finish the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `cocoon-measure gateway` (the help text is on the subcommand in `cli/mod.rs`).
#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    verifier: VerifierArgs,
    /// The worker, HOST:PORT (TLS).
    #[arg(long, value_name = "HOST:PORT")]
    upstream: String,
    /// Local address to listen on for plain HTTP; must be a loopback address.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// TLS server name to send (SNI); default: the host of --upstream.
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
}

/// An idle verified upstream connection and when its certificate expires.
struct Idle {
    sender: SendRequest<Incoming>,
    not_after: i64,
}

struct Gateway {
    verifier: Arc<RatlsVerifier>,
    connector: TlsConnector,
    upstream: String,
    server_name: ServerName<'static>,
    host_header: HeaderValue,
    idle: Mutex<Vec<Idle>>,
    /// Certificates whose identity was logged already.
    logged: Mutex<HashSet<[u8; 32]>>,
}

type Body = BoxBody<Bytes, hyper::Error>;

/// Why no upstream connection could be used.
enum Unavailable {
    Refused(String),
    Network(String),
}

fn json_error(kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"type": kind, "message": message}}).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Gateway {
    fn log_identity(&self, id: &AcceptedIdentity) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() > 100_000 {
            logged.clear();
        }
        if logged.insert(id.cert_sha256) {
            eprintln!(
                "cocoon-measure gateway: accepted worker {}: {id}",
                self.upstream
            );
        }
    }

    /// An idle connection whose certificate has not expired (expired ones are dropped).
    fn take_idle(&self) -> Option<Idle> {
        let now = unix_now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.not_after >= now && entry.sender.is_ready() {
                return Some(entry);
            }
        }
        None
    }

    /// A new, verified upstream connection.
    async fn connect(&self) -> Result<(SendRequest<Incoming>, i64), Unavailable> {
        let tcp = TcpStream::connect(&self.upstream)
            .await
            .map_err(|e| Unavailable::Network(format!("connecting to {}: {e}", self.upstream)))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| match tls::refusal_of(&e) {
                Some(r) => Unavailable::Refused(r.to_string()),
                None => Unavailable::Network(format!("TLS with {}: {e}", self.upstream)),
            })?;
        let identity = tls::peer_identity(
            &self.verifier,
            tls.get_ref().1.peer_certificates(),
            self.verifier.effective_time(SystemTime::now()),
        )
        .map_err(|r| Unavailable::Refused(r.to_string()))?;
        self.log_identity(&identity);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Unavailable::Network(format!("HTTP/1.1 with {}: {e}", self.upstream)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, identity.not_after))
    }

    /// Puts `sender` back in the idle list once its connection can take another request
    /// (for HTTP/1.1: once the response body has been read to the end).
    fn recycle(self: &Arc<Self>, mut sender: SendRequest<Incoming>, not_after: i64) {
        let this = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = this.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(Idle { sender, not_after });
                }
            }
        });
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(HOST, self.host_header.clone());
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => pq.as_str().parse().unwrap_or_default(),
            None => hyper::Uri::from_static("/"),
        };
        parts.version = hyper::Version::HTTP_11;
        let mut req = Request::from_parts(parts, body);
        // A pooled connection first; if it turns out closed before the request was sent,
        // the request comes back and goes on a new connection.
        if let Some(Idle {
            mut sender,
            not_after,
        }) = self.take_idle()
        {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.recycle(sender, not_after);
                    return self.respond(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return json_error("upstream_error", &e.error().to_string()),
                },
            }
        }
        let (mut sender, not_after) = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(Unavailable::Refused(why))) => {
                eprintln!(
                    "cocoon-measure gateway: refused worker {}: {why}",
                    self.upstream
                );
                return json_error("attestation_refused", &why);
            }
            Ok(Err(Unavailable::Network(why))) => return json_error("upstream_unavailable", &why),
            Err(_) => {
                return json_error(
                    "upstream_unavailable",
                    &format!(
                        "no connection to {} within {CONNECT_TIMEOUT:?}",
                        self.upstream
                    ),
                )
            }
        };
        match sender.send_request(req).await {
            Ok(resp) => {
                self.recycle(sender, not_after);
                self.respond(resp)
            }
            Err(e) => json_error("upstream_error", &e.to_string()),
        }
    }

    fn respond(&self, resp: Response<Incoming>) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, body.boxed())
    }
}

async fn serve(gateway: Arc<Gateway>, listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await.context("accepting a connection")?;
        let _ = tcp.set_nodelay(true);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen {} is not a loopback address: the gateway serves plain HTTP and must only \
             be reachable from this machine (use 127.0.0.1 or [::1])",
            args.listen
        );
    }
    let host = match args.upstream.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        _ => bail!("--upstream {:?} is not HOST:PORT", args.upstream),
    };
    let name = args.server_name.clone().unwrap_or(host);
    let server_name =
        ServerName::try_from(name.clone()).map_err(|e| anyhow!("TLS server name {name:?}: {e}"))?;
    let host_header = HeaderValue::from_str(&args.upstream)
        .map_err(|e| anyhow!("--upstream {:?}: {e}", args.upstream))?;
    let verifier = Arc::new(args.verifier.build()?);
    if args.verifier.trust_simulated {
        eprintln!(
            "cocoon-measure gateway: WARNING: --trust-simulated: simulated workers (no TDX \
             protection at all) are accepted"
        );
    }
    let client = tls::client_config(verifier.clone()).context("TLS client configuration")?;
    let gateway = Arc::new(Gateway {
        verifier,
        connector: TlsConnector::from(Arc::new(client)),
        upstream: args.upstream.clone(),
        server_name,
        host_header,
        idle: Mutex::new(Vec::new()),
        logged: Mutex::new(HashSet::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr().context("local address")?;
        eprintln!(
            "cocoon-measure gateway: listening on http://{local}, forwarding to verified worker {}",
            args.upstream
        );
        serve(gateway, listener).await
    })?;
    Ok(ExitCode::SUCCESS)
}
