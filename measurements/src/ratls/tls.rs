//! rustls integration: RA-TLS certificate verifiers for clients (proxies connecting to a
//! worker) and servers (mutual authentication), and ready-made TLS 1.3-only configurations.
//!
//! Certificate checks are [`RatlsVerifier::verify_cached`]: a certificate's quote is verified
//! once and the result cached until the certificate expires. The handshake signature is checked
//! on every connection against the certificate's own key with the ring provider's algorithms.
//! TLS 1.2 is refused (the configurations below enable only TLS 1.3; the verifiers also fail a
//! TLS 1.2 signature). The server name is not checked: the attested identity replaces it.
//! Session resumption is disabled in these configurations: a resumed TLS 1.3 session carries no
//! certificate, so it would skip the check (and outlive the certificate's validity); every
//! connection presents its certificate and the cached verification answers instead.
//! A refusal reaches the caller as `rustls::Error::InvalidCertificate(CertificateError::Other)`
//! wrapping the [`Refusal`]; [`refusal_of`] digs it out of an I/O error.

use super::parse::spki_of;
use super::refusal::Refusal;
use super::verify::{AcceptedIdentity, RatlsVerifier};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature_with_raw_key, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ring crypto provider, shared.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn system_time(now: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

fn refused(r: Refusal) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(r))))
}

type DynError = dyn std::error::Error + 'static;

/// `err` and its causes. An `io::Error` (how tokio-rustls and hyper carry TLS errors) is
/// followed into the error it wraps, which its `source()` skips.
fn causes(err: &DynError) -> impl Iterator<Item = &DynError> {
    std::iter::successors(Some(err), |e| match e.downcast_ref::<std::io::Error>() {
        Some(io) if io.get_ref().is_some() => io.get_ref().map(|inner| inner as &DynError),
        _ => e.source(),
    })
}

/// The rustls error behind a failed connection or exchange, if there is one.
pub fn tls_error_of(err: &DynError) -> Option<&Error> {
    causes(err).find_map(|e| e.downcast_ref::<Error>())
}

/// The [`Refusal`] behind a failed handshake, if the failure was one.
pub fn refusal_of<'a>(err: &'a DynError) -> Option<&'a Refusal> {
    for e in causes(err) {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r);
        }
        if let Some(Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) =
            e.downcast_ref::<Error>()
        {
            let inner: &'a DynError = inner.as_ref();
            return inner.downcast_ref::<Refusal>();
        }
    }
    None
}

/// Shared by both verifiers.
#[derive(Debug)]
struct Common {
    verifier: Arc<RatlsVerifier>,
    provider: Arc<CryptoProvider>,
}

impl Common {
    fn check_cert(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
        self.verifier
            .verify_cached(
                end_entity.as_ref(),
                self.verifier.effective_time(system_time(now)),
            )
            .map(|_| ())
            .map_err(refused)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // rustls calls this only after the certificate verifier accepted this certificate.
        let spki = spki_of(cert.as_ref()).map_err(refused)?;
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub(crate) fn tls12_refused() -> Error {
    Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

/// Verifies a worker's RA-TLS server certificate (for proxies and clients).
#[derive(Debug)]
pub struct RatlsServerCertVerifier(Common);

impl RatlsServerCertVerifier {
    pub fn new(verifier: Arc<RatlsVerifier>) -> Self {
        RatlsServerCertVerifier(Common {
            verifier,
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for RatlsServerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.0.check_cert(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// Verifies a peer's RA-TLS client certificate (mutual authentication); a certificate is
/// mandatory.
#[derive(Debug)]
pub struct RatlsClientCertVerifier(Common);

impl RatlsClientCertVerifier {
    pub fn new(verifier: Arc<RatlsVerifier>) -> Self {
        RatlsClientCertVerifier(Common {
            verifier,
            provider: provider(),
        })
    }
}

impl ClientCertVerifier for RatlsClientCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.0.check_cert(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// A TLS 1.3-only client configuration that accepts only workers `verifier` accepts, without
/// a client certificate.
pub fn client_config(verifier: Arc<RatlsVerifier>) -> Result<rustls::ClientConfig, Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RatlsServerCertVerifier::new(verifier)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Like [`client_config`], presenting the RA-TLS certificate `cert` for mutual authentication.
pub fn client_config_with_cert(
    verifier: Arc<RatlsVerifier>,
    cert: Arc<dyn rustls::client::ResolvesClientCert>,
) -> Result<rustls::ClientConfig, Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RatlsServerCertVerifier::new(verifier)))
        .with_client_cert_resolver(cert);
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// A TLS 1.3-only server configuration serving `cert`; with `client_verifier`, clients must
/// present an RA-TLS certificate it accepts.
pub fn server_config(
    cert: Arc<dyn rustls::server::ResolvesServerCert>,
    client_verifier: Option<Arc<RatlsVerifier>>,
) -> Result<rustls::ServerConfig, Error> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_verifier {
        Some(v) => builder.with_client_cert_verifier(Arc::new(RatlsClientCertVerifier::new(v))),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The identity of the peer of a finished handshake: its end-entity certificate looked up in
/// (or, if evicted, re-verified by) `verifier`.
pub fn peer_identity(
    verifier: &RatlsVerifier,
    peer_certificates: Option<&[CertificateDer<'_>]>,
    now: SystemTime,
) -> Result<Arc<AcceptedIdentity>, Refusal> {
    let cert = peer_certificates
        .and_then(<[CertificateDer<'_>]>::first)
        .ok_or(Refusal::NoPeerCertificate)?;
    verifier.verify_cached(cert.as_ref(), now)
}
