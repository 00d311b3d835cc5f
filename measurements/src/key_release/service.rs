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
/// Connections handled at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;

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

/// The answer to `method path` from an accepted `worker` (see the module invariants).
fn decide(
    secret: &ServiceSecret,
    pin: [u8; 32],
    method: &Method,
    path: &str,
    worker: &AcceptedIdentity,
) -> Response<Full<Bytes>> {
    if path != PATH {
        return refuse(StatusCode::NOT_FOUND, &format!("the only path is {PATH}"));
    }
    if method != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, &format!("use POST {PATH}"));
    }
    // The worker names the service it trusts in its measured config; a worker that pins
    // another service reached this one by mistake (or through a proxy) and gets nothing.
    let pinned = worker
        .config
        .get("data_key_service_pin")
        .and_then(|p| p.as_str());
    let own = hex::encode(pin);
    if pinned != Some(own.as_str()) {
        let why = format!(
            "the worker's measured data_key_service_pin is {}, not this service's {own}",
            pinned.unwrap_or("null"),
        );
        eprintln!("key-service: refused ({why}): worker {worker}");
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    match owner_of(&worker.config) {
        Err(e) => {
            eprintln!("key-service: refused ({e}): worker {worker}");
            refuse(StatusCode::FORBIDDEN, &e.to_string())
        }
        Ok(owner) => {
            let key = secret.data_key(owner);
            eprintln!("key-service: released the data key of owner {owner} to worker {worker}");
            let key_hex = zeroize::Zeroizing::new(hex::encode(key.as_slice()));
            json(
                StatusCode::OK,
                serde_json::json!({"key": key_hex.as_str(), "owner": owner}),
            )
        }
    }
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
        decide(
            &self.secret,
            self.pin,
            req.method(),
            req.uri().path(),
            worker,
        )
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
        let now = self.verifier.effective_time(SystemTime::now());
        let worker = match tls::peer_identity(&self.verifier, certs, now) {
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

    /// Accepts connections on `listener` forever: at most [`MAX_CONNECTIONS`] at once, each for
    /// at most [`CONNECTION_TIMEOUT`]. A failed accept (e.g. out of file descriptors) is
    /// logged and retried after a pause, never fatal.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("key-service: accepting a connection: {e}; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let service = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn worker(config: serde_json::Value) -> AcceptedIdentity {
        AcceptedIdentity {
            release: "r".into(),
            shape: "s".into(),
            config_sha256: [0; 32],
            model_sha256: [0; 32],
            mode: "simulated".into(),
            tcb_status: "UpToDate".into(),
            advisory_ids: vec![],
            simulated_root: true,
            config,
            cert_sha256: [0; 32],
            not_before: 0,
            not_after: 0,
        }
    }

    fn body(resp: Response<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let status = resp.status();
        let Ok(collected) = block_on(resp.into_body().collect());
        let bytes = collected.to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn releases_only_to_workers_that_pin_this_service_and_name_an_owner() {
        let secret = ServiceSecret::from_hex(&"11".repeat(32)).unwrap();
        let pin_bytes = secret.tls_key().unwrap().spki_sha256;
        let pin = hex::encode(pin_bytes);
        let decide = |method: &Method, path: &str, w: &AcceptedIdentity| {
            decide(&secret, pin_bytes, method, path, w)
        };
        let owner = "0:aa";
        let good = worker(
            serde_json::json!({"data_key_service_pin": pin, "billing": {"owner_address": owner}}),
        );
        let (status, json) = body(decide(&Method::POST, PATH, &good));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["key"], hex::encode(secret.data_key(owner).as_slice()));
        assert_eq!(json["owner"], owner);

        for (config, status, why) in [
            (
                serde_json::json!({"data_key_service_pin": "00".repeat(32), "billing": {"owner_address": owner}}),
                StatusCode::FORBIDDEN,
                "not this service's",
            ),
            (
                serde_json::json!({"billing": {"owner_address": owner}}),
                StatusCode::FORBIDDEN,
                "data_key_service_pin is null",
            ),
            (
                serde_json::json!({"data_key_service_pin": pin, "billing": null}),
                StatusCode::FORBIDDEN,
                "no billing.owner_address",
            ),
        ] {
            let (got, json) = body(decide(&Method::POST, PATH, &worker(config)));
            assert_eq!(got, status);
            let message = json["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains(why), "{message}");
            assert!(json.get("key").is_none());
        }
        assert_eq!(
            body(decide(&Method::GET, PATH, &good)).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            body(decide(&Method::POST, "/v1/other", &good)).0,
            StatusCode::NOT_FOUND
        );
    }
}
