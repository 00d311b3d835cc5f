//! The RA-TLS listener: TLS 1.3 only (rustls, ring), serving the current RA-TLS certificate
//! and renewing it in the background, in front of the same HTTP service as the plain listener.
//!
//! Invariants:
//! * a handshake only reads the current certificate ([`CertStore`]); it never causes a quote;
//! * renewal ([`renew_forever`]) issues a new key, quote and certificate at 2/3 of the current
//!   one's lifetime and swaps one `Arc`: handshakes after the swap get the new certificate,
//!   connections already established keep their session and are never dropped;
//! * a TLS handshake must finish within the API's I/O timeout, and TLS connections count
//!   against their own `max_connections` limit.

use super::client_auth::ClientPolicy;
use super::evidence::{self, IssuedCert};
use super::measure::Measurement;
use super::td::Td;
use super::AttestError;
use crate::api::{self, AppState};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Shortest certificate lifetime accepted (renewal then runs every 2/3 of it).
pub const MIN_CERT_LIFETIME: Duration = Duration::from_secs(3);
/// Longest certificate lifetime: what verifiers accept by default.
pub const MAX_CERT_LIFETIME: Duration = Duration::from_secs(
    cocoon_measure::ratls::DEFAULT_MAX_VALIDITY.as_secs() - evidence::BACKDATE.as_secs(),
);

/// Client authentication on the RA-TLS listener.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Any TLS client (the server proves itself; clients authenticate, if at all, in HTTP).
    None,
    /// Mutual RA-TLS: a client certificate the policy's verifier accepts is required.
    Ratls(Arc<ClientPolicy>),
}

impl ClientAuth {
    /// The name measured into the config (`none` or `ratls`).
    pub fn name(&self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Ratls(_) => "ratls",
        }
    }

    /// The client verifier, with mutual RA-TLS.
    pub fn policy(&self) -> Option<&ClientPolicy> {
        match self {
            ClientAuth::None => None,
            ClientAuth::Ratls(p) => Some(p),
        }
    }
}

/// The RA-TLS listener's settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    pub cert_lifetime: Duration,
    pub client_auth: ClientAuth,
}

/// Holds the certificate handshakes are served with; swapped atomically on renewal.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<IssuedCert>>,
}

impl CertStore {
    pub fn new(first: IssuedCert) -> CertStore {
        CertStore {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<IssuedCert> {
        // The lock guards one Arc, replaced in one assignment: a poisoned lock is consistent.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves `next` to every later handshake.
    pub fn replace(&self, next: IssuedCert) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

/// The TLS 1.3-only server configuration over `store` (HTTP/1.1 via ALPN).
pub fn server_config(
    store: Arc<CertStore>,
    client_auth: &ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, AttestError> {
    let verifier = client_auth.policy().map(|p| p.verifier.clone());
    let mut config =
        cocoon_measure::ratls::tls::server_config(store, verifier).map_err(AttestError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// When to renew a certificate issued at `issued_at`: 2/3 into `lifetime`.
pub fn renewal_time(issued_at: SystemTime, lifetime: Duration) -> SystemTime {
    issued_at + lifetime * 2 / 3
}

/// Logs a certificate the agent starts serving.
pub fn log_issued(cert: &IssuedCert, what: &str) {
    tracing::info!(
        cert_sha256 = %hex::encode(cert.cert_sha256),
        not_after = cert.not_after_unix(),
        "{what}"
    );
}

/// Renews the certificate in `store` forever (until the task is aborted): at 2/3 of each
/// certificate's lifetime a new key, quote and certificate; a failed renewal is logged and
/// retried every lifetime/30 (1 s to 60 s) while the old certificate keeps being served.
pub async fn renew_forever(
    td: Arc<Td>,
    measurement: Arc<Measurement>,
    store: Arc<CertStore>,
    lifetime: Duration,
) {
    let retry = (lifetime / 30).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let at = renewal_time(store.current().issued_at, lifetime);
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        loop {
            let (td, m) = (td.clone(), measurement.clone());
            let issued =
                tokio::task::spawn_blocking(move || evidence::issue(td.provider(), &m, lifetime))
                    .await;
            match issued {
                Ok(Ok(cert)) => {
                    log_issued(&cert, "RA-TLS certificate renewed");
                    store.replace(cert);
                    break;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, retry_secs = retry.as_secs(), "RA-TLS certificate renewal failed; still serving the previous certificate");
                }
                Err(e) => {
                    tracing::error!(error = %e, "RA-TLS certificate renewal task failed");
                }
            }
            tokio::time::sleep(retry).await;
        }
    }
}

/// Accepts TLS connections until `shutdown` resolves and serves each with the API.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    client_auth: ClientAuth,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(config);
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
                    tracing::warn!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (acceptor, state, client_auth) = (acceptor.clone(), state.clone(), client_auth.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let timeout = state.config.io_timeout;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    if let Some(policy) = client_auth.policy() {
                        // The verifier accepted this certificate during the handshake; this
                        // reads its cached identity for the log.
                        let certs = tls.get_ref().1.peer_certificates();
                        match cocoon_measure::ratls::tls::peer_identity(
                            &policy.verifier,
                            certs,
                            SystemTime::now(),
                        ) {
                            Ok(id) => {
                                tracing::debug!(%peer, identity = %id, "RA-TLS client accepted")
                            }
                            Err(e) => {
                                tracing::warn!(%peer, error = %e, "RA-TLS client identity unavailable; closing");
                                return;
                            }
                        }
                    }
                    api::serve_connection(tls, peer, state).await
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            renewal_time(t, Duration::from_secs(3600)),
            t + Duration::from_secs(2400)
        );
        assert_eq!(
            renewal_time(t, Duration::from_secs(3)),
            t + Duration::from_secs(2)
        );
    }

    #[test]
    fn lifetime_bounds_fit_the_verifiers_limit() {
        // not_before is backdated, so the whole period must stay within the default limit.
        assert_eq!(
            MAX_CERT_LIFETIME + evidence::BACKDATE,
            cocoon_measure::ratls::DEFAULT_MAX_VALIDITY
        );
        assert!(MIN_CERT_LIFETIME < MAX_CERT_LIFETIME);
    }
}
