//! Issuing an RA-TLS certificate: a fresh key, exactly one quote for it, a short-lived
//! self-signed certificate carrying the quote, the RTMR3 events and the measured config.
//!
//! Invariant: [`issue`] is the only place the agent asks for a quote, and it asks once per key;
//! TLS connections only ever receive an already issued certificate (see [`super::tls`]).

use super::measure::Measurement;
use super::AttestError;
use cocoon_measure::ratls::{self, Evidence};
use cocoon_tdx::TdxProvider;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far `not_before` is set in the past, so that peers whose clocks lag a little accept a
/// fresh certificate. Counted in the validity period that verifiers bound.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The rustls key and chain (the certificate alone).
    pub certified: Arc<CertifiedKey>,
    pub cert_der: Vec<u8>,
    /// SHA-256 of `cert_der`, as verifiers and logs name the certificate.
    pub cert_sha256: [u8; 32],
    /// When this certificate was issued (the moment the validity period is counted from).
    pub issued_at: SystemTime,
    pub not_after: SystemTime,
}

impl IssuedCert {
    /// `not_after` as Unix seconds (0 if before 1970, which `issue` never produces).
    pub fn not_after_unix(&self) -> u64 {
        self.not_after
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Issues a certificate valid from `now - BACKDATE` to `now + lifetime`. Blocking (quote).
pub fn issue(
    provider: &TdxProvider,
    measurement: &Measurement,
    lifetime: Duration,
) -> Result<IssuedCert, AttestError> {
    let key = ratls::new_key().map_err(AttestError::Certificate)?;
    let spki = ratls::spki_der(&key);
    let quote = provider.get_quote(ratls::report_data(&spki))?;
    let evidence = Evidence {
        quote,
        events: measurement.events.clone(),
        config_json: measurement.config_json.clone(),
    };
    let now = SystemTime::now();
    let not_before = now
        .checked_sub(BACKDATE)
        .ok_or_else(|| AttestError::Clock("the clock is before 1970".into()))?;
    let not_after = now
        .checked_add(lifetime)
        .ok_or_else(|| AttestError::Clock(format!("now + {lifetime:?} overflows")))?;
    let cert_der = ratls::issue_certificate(&key, &evidence, not_before, not_after, &[])
        .map_err(AttestError::Certificate)?;
    let cert_sha256 = Sha256::digest(&cert_der).into();
    let certified =
        ratls::rustls_certified_key(&key, cert_der.clone()).map_err(AttestError::Certificate)?;
    Ok(IssuedCert {
        certified,
        cert_der,
        cert_sha256,
        issued_at: now,
        not_after,
    })
}
