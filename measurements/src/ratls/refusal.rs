//! Why a verifier refused an RA-TLS certificate: one variant per check, each carrying the
//! exact reason (what was expected, what was found).

use crate::quote::QuoteError;
use crate::rtmr3::Rtmr3Error;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("certificate is {len} bytes, more than the {max}-byte limit")]
    CertificateTooLarge { len: usize, max: usize },
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    #[error("certificate is not valid X.509 DER: {0}")]
    Parse(String),
    #[error("certificate signature: {0}")]
    SelfSignature(String),
    #[error("certificate expired: not_after {not_after} is before now ({now}) (Unix seconds)")]
    Expired { not_after: i64, now: i64 },
    #[error(
        "certificate is not yet valid: not_before {not_before} is after now ({now}) (Unix seconds)"
    )]
    NotYetValid { not_before: i64, now: i64 },
    #[error("certificate validity period is {seconds} s, longer than the allowed {max} s")]
    ValidityTooLong { seconds: i64, max: u64 },
    #[error("unknown critical extension {oid}")]
    UnknownCriticalExtension { oid: String },
    #[error("extension {oid} appears more than once")]
    DuplicateExtension { oid: String },
    #[error("extension {name} is {len} bytes, more than the {max}-byte limit")]
    ExtensionTooLarge {
        name: &'static str,
        len: usize,
        max: usize,
    },
    #[error("extension {name} is missing")]
    MissingExtension { name: &'static str },
    #[error("extension {name} is not marked critical")]
    NotCritical { name: &'static str },
    #[error("no quote collateral: {0}")]
    Collateral(String),
    #[error("quote refused: {0}")]
    Quote(#[from] QuoteError),
    #[error(
        "quote refused: its PCK certificate chain does not end at Intel's SGX Root CA (simulated or forged evidence; a verifier trusts the simulated TD's mock root only when told to): {0}"
    )]
    UntrustedRoot(String),
    #[error(
        "key not bound to the quote: report_data is {found}, but the certificate key requires {expected}"
    )]
    KeyNotBound { expected: String, found: String },
    #[error(
        "measurements match no VM shape of manifest release {release}: MRTD {mrtd}, RTMR0 {rtmr0}, RTMR1 {rtmr1}, RTMR2 {rtmr2}"
    )]
    UnknownMeasurement {
        release: String,
        mrtd: String,
        rtmr0: String,
        rtmr1: String,
        rtmr2: String,
    },
    #[error("TD {field} is {found}, the manifest requires {expected}")]
    TdMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("RTMR3 event list: {0}")]
    EventList(#[from] Rtmr3Error),
    #[error("RTMR3 replayed from the event list is {replayed}, the quote reports {quoted}")]
    Rtmr3Mismatch { replayed: String, quoted: String },
    #[error("RTMR3 events: {0}")]
    EventSequence(String),
    #[error("config is not what was measured: SHA-256 of the config extension is {computed}, the cocoon.config event says {measured}")]
    ConfigMismatch { computed: String, measured: String },
    #[error("config extension is not a JSON object: {0}")]
    ConfigJson(String),
    #[error("RTMR3 events differ from the manifest's pinned events: {0}")]
    Rtmr3Pin(String),
    #[error("mode {mode:?} is not accepted: {why}")]
    Mode { mode: String, why: String },
    #[error("{what} SHA-256 {sha256} is not in the allow-list")]
    NotAllowed { what: &'static str, sha256: String },
}
