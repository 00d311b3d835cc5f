//! RA-TLS: TLS certificates that carry TDX attestation evidence, and their verification.
//!
//! A worker makes an ECDSA P-256 key inside the TD ([`new_key`]), asks for a quote whose
//! report_data is [`report_data`] of the key's SubjectPublicKeyInfo, and issues a self-signed
//! certificate ([`issue_certificate`]) carrying, in critical extensions under [`OID_ARC`]:
//!
//! | OID            | content (raw bytes in `extnValue`)                                  | limit |
//! |----------------|---------------------------------------------------------------------|-------|
//! | `OID_ARC.1`    | the TD quote (raw v4/v5 quote bytes)                                 | [`MAX_QUOTE_EXT`] |
//! | `OID_ARC.2`    | the RTMR3 event list, UTF-8 JSON ([`crate::rtmr3::to_json`])        | [`MAX_EVENTS_EXT`] |
//! | `OID_ARC.3`    | the measured config: the bytes whose SHA-256 is the `cocoon.config` payload | [`MAX_CONFIG_EXT`] |
//!
//! A verifier ([`RatlsVerifier`]) checks the certificate, the quote and the measurements against
//! a signed manifest; [`tls`] plugs it into rustls. See docs/ratls.md.

mod cache;
pub mod collateral;
mod der;
mod http;
mod issue;
mod parse;
mod refusal;
pub mod tls;
mod verify;

pub use cache::{IdentityCache, DEFAULT_CACHE_CAPACITY};
pub use issue::{
    issue_certificate, issue_with_raw_extensions, new_key, rustls_certified_key, spki_der,
    SUBJECT_CN,
};
pub use parse::{parse_certificate, ParsedCertificate, RawEvidence};
pub use refusal::Refusal;
pub use verify::{
    AcceptedIdentity, CollateralSource, RatlsVerifier, SetupError, VerifierConfig, VerifierStats,
    DEFAULT_MAX_VALIDITY, MODE_PRODUCTION, MODE_SIMULATED,
};

use sha2::{Digest, Sha512};

/// The OID arc of our extensions: `2.25.<UUID as integer>` (ITU-T X.667), allocated to COCOON.
pub const OID_ARC: &str = "2.25.129806449498227228635882236015258237426";
/// `OID_ARC.1`: the TD quote.
pub const OID_QUOTE: &str = "2.25.129806449498227228635882236015258237426.1";
/// `OID_ARC.2`: the RTMR3 event list JSON.
pub const OID_RTMR3_EVENTS: &str = "2.25.129806449498227228635882236015258237426.2";
/// `OID_ARC.3`: the measured config JSON.
pub const OID_CONFIG: &str = "2.25.129806449498227228635882236015258237426.3";

/// Domain tag of the report_data binding; a zero byte separates it from the SPKI.
pub const REPORT_DATA_DOMAIN: &[u8] = b"cocoon-ratls-report-data/v1";

/// Largest quote extension accepted.
pub const MAX_QUOTE_EXT: usize = 64 * 1024;
/// Largest RTMR3 event list extension accepted.
pub const MAX_EVENTS_EXT: usize = crate::rtmr3::MAX_LIST_JSON;
/// Largest config extension accepted.
pub const MAX_CONFIG_EXT: usize = 64 * 1024;
/// Largest certificate accepted (DER).
pub const MAX_CERT_LEN: usize = 256 * 1024;

/// The report_data a quote must carry for a certificate with this SubjectPublicKeyInfo:
/// `SHA-512(REPORT_DATA_DOMAIN || 0x00 || spki_der)`.
pub fn report_data(spki_der: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(REPORT_DATA_DOMAIN);
    h.update([0u8]);
    h.update(spki_der);
    h.finalize().into()
}

/// What the certificate carries besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Raw TD quote whose report_data is [`report_data`] of the certificate key.
    pub quote: Vec<u8>,
    /// The RTMR3 events the agent extended, in order.
    pub events: Vec<crate::rtmr3::Rtmr3Event>,
    /// The canonical config JSON whose SHA-256 is the `cocoon.config` event payload.
    pub config_json: Vec<u8>,
}

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum RatlsError {
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    #[error("certificate key must be ECDSA P-256 with SHA-256, got {0}")]
    KeyAlgorithm(String),
    #[error("{what} is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("validity: {0}")]
    Validity(String),
    #[error("DNS name {name:?}: {what}")]
    DnsName { name: String, what: String },
    #[error("extension OID {oid:?} is not a dotted OID with arcs below 2^128")]
    Extension { oid: String },
    #[error("signing the certificate failed: {0}")]
    Signing(String),
    #[error("loading the key into rustls failed: {0}")]
    Rustls(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_oids_are_under_the_arc() {
        for (oid, n) in [(OID_QUOTE, 1), (OID_RTMR3_EVENTS, 2), (OID_CONFIG, 3)] {
            assert_eq!(oid, format!("{OID_ARC}.{n}"));
        }
    }

    #[test]
    fn report_data_is_the_documented_hash() {
        let mut input = b"cocoon-ratls-report-data/v1\0".to_vec();
        input.extend_from_slice(b"spki");
        let expected: [u8; 64] = Sha512::digest(&input).into();
        assert_eq!(report_data(b"spki"), expected);
        assert_ne!(report_data(b"spki"), report_data(b"spkj"));
    }
}
