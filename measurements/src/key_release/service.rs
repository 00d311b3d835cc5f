//! The key service's server side (what `cocoon-measure key-service serve` runs).
//!
//! Every connection is TLS 1.3 with a client certificate that passed [`RatlsVerifier`] during
//! the handshake; a refused certificate ends the connection before a request byte is read. An
//! accepted worker gets the key of the owner its measured config names, nothing else. Each
//! release and each refusal is one line on stderr, without the key.

use super::{owner_of, KeyReleaseError, ServiceSecret, PATH};
use crate::ratls::{tls, AcceptedIdentity, RatlsVerifier};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Time a connection may take from accept to the answer.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A running service's state: the secret, the verifier and the TLS acceptor.
pub struct Service {
    secret: ServiceSecret,
    verifier: Arc<RatlsVerifier>,
    acceptor: TlsAcceptor,
    pin: [u8; 32],
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn refuse(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"error": {"type": "refused", "message": message}}),
    )
}

impl Service {
    pub fn new(
        secret: ServiceSecret,
        verifier: Arc<RatlsVerifier>,
    ) -> Result<Service, KeyReleaseError> {
        let tls_key = secret.tls_key()?;
        let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(
            tls_key.certified.as_ref().clone(),
        ));
        let server = tls::server_config(resolver, Some(verifier.clone()))
            .map_err(|e| KeyReleaseError::TlsKey(e.to_string()))?;
        Ok(Service {
            secret,
            verifier,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            pin: tls_key.spki_sha256,
        })
    }

    /// SHA-256 of the service's TLS SubjectPublicKeyInfo.
    pub fn pin(&self) -> [u8; 32] {
        self.pin
    }

    fn answer(&self, req: &Request<Incoming>, worker: &AcceptedIdentity) -> Response<Full<Bytes>> {
        if req.uri().path() != PATH {
            return refuse(StatusCode::NOT_FOUND, &format!("the only path is {PATH}"));
        }
        if req.method() != Method::POST {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, &format!("use POST {PATH}"));
        }
        match owner_of(&worker.config) {
            Err(e) => {
                eprintln!("key-service: refused ({e}): worker {worker}");
                refuse(StatusCode::FORBIDDEN, &e.to_string())
            }
            Ok(owner) => {
                let key = self.secret.data_key(owner);
                eprintln!("key-service: released the data key of owner {owner} to worker {worker}");
                let key_hex = zeroize::Zeroizing::new(hex::encode(key.as_slice()));
                json(
                    StatusCode::OK,
                    serde_json::json!({"key": key_hex.as_str(), "owner": owner}),
                )
            }
        }
    }

    async fn connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let stream = match self.acceptor.accept(tcp).await {
            Ok(s) => s,
            Err(e) => {
                let why = tls::refusal_of(&e).map_or_else(|| e.to_string(), |r| r.to_string());
                eprintln!("key-service: {peer}: handshake refused: {why}");
                return;
            }
        };
        let certs = stream.get_ref().1.peer_certificates();
        let worker = match tls::peer_identity(&self.verifier, certs, SystemTime::now()) {
            Ok(w) => w,
            Err(r) => {
                eprintln!("key-service: {peer}: refused: {r}");
                return;
            }
        };
        let this = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let resp = this.answer(&req, &worker);
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// Accepts connections on `listener` until accepting fails; each connection gets at most
    /// [`CONNECTION_TIMEOUT`].
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = listener.accept().await?;
            let service = self.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(CONNECTION_TIMEOUT, service.connection(tcp, peer))
                    .await
                    .is_err()
                {
                    eprintln!(
                        "key-service: {peer}: closed after {} s",
                        CONNECTION_TIMEOUT.as_secs()
                    );
                }
            });
        }
    }
}
