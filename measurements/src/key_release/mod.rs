//! The data-disk key-release protocol: a service that hands a worker the LUKS2 passphrase of its
//! data disk only after the worker's RA-TLS certificate passed [`crate::ratls::RatlsVerifier`]
//! (see docs/image.md, "Data disk", and `cocoon-measure key-service`).
//!
//! The protocol, in full:
//! * TLS 1.3. The service's certificate is self-signed with an Ed25519 key derived from its
//!   secret ([`ServiceSecret::tls_key`]); the worker accepts it only if the SHA-256 of its
//!   SubjectPublicKeyInfo equals the pin in the worker's measured config ([`PinnedServer`]).
//! * The worker presents its RA-TLS certificate as the client certificate (mutual TLS); the
//!   service verifies quote, manifest and RTMR3 replay before any request byte is read.
//! * The worker sends `POST` [`PATH`] with an empty body; the answer is
//!   `{"key":"<64 hex digits>","owner":"<address>"}` (200) or
//!   `{"error":{"type":"refused","message":...}}` (403).
//!
//! Invariant: a key is released only to a worker whose measured config pins this service
//! (`data_key_service_pin`), and it is a function of the service secret and of the
//! `billing.owner_address` string in the worker's *measured* config only
//! ([`ServiceSecret::data_key`]). The image, the
//! VM shape and the rest of the config may change (within what the manifest admits) and the
//! disk still opens; a TD whose measured config names another owner gets another key.

mod service;
pub use service::{Service, CONNECTION_TIMEOUT};

use hkdf::Hkdf;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The one request path.
pub const PATH: &str = "/v1/data-key";
/// Length of a data-disk key (the LUKS2 keyslot passphrase), in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the service secret, in bytes.
pub const SECRET_LEN: usize = 32;
/// Largest response body a client reads.
pub const MAX_RESPONSE: usize = 4096;

const HKDF_SALT: &[u8] = b"cocoon-key-service/v1";
const INFO_TLS_KEY: &[u8] = b"cocoon-key-service/v1 tls-ed25519-seed";
/// Followed by a zero byte and the owner address.
const INFO_DATA_KEY: &[u8] = b"cocoon-data-disk/v1 owner";

#[derive(Debug, thiserror::Error)]
pub enum KeyReleaseError {
    #[error("service secret: expected {SECRET_LEN} bytes as 64 hex digits, found {0}")]
    SecretFormat(String),
    #[error("service TLS key: {0}")]
    TlsKey(String),
    #[error("the worker's measured config has no billing.owner_address: {0}")]
    NoOwner(&'static str),
    #[error("key service pin {0:?} is not 64 hex digits (the SHA-256 of its TLS SubjectPublicKeyInfo, as `key-service init` prints it)")]
    Pin(String),
}

/// The service's only secret: 32 random bytes, from which both its TLS key and every data key
/// are derived. Zeroed when dropped.
pub struct ServiceSecret(Zeroizing<[u8; SECRET_LEN]>);

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(<redacted>)")
    }
}

impl ServiceSecret {
    /// A fresh secret from the operating system's randomness.
    pub fn generate() -> Result<ServiceSecret, KeyReleaseError> {
        let mut s = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::fill(s.as_mut_slice())
            .map_err(|e| KeyReleaseError::SecretFormat(format!("no randomness: {e}")))?;
        Ok(ServiceSecret(s))
    }

    /// Parses the secret file's content: hex, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<ServiceSecret, KeyReleaseError> {
        let text = text.trim();
        let mut s = Zeroizing::new([0u8; SECRET_LEN]);
        hex::decode_to_slice(text, s.as_mut_slice()).map_err(|_| {
            KeyReleaseError::SecretFormat(if text.len() == SECRET_LEN * 2 {
                "non-hex characters".to_string()
            } else {
                format!("{} characters", text.len())
            })
        })?;
        Ok(ServiceSecret(s))
    }

    /// The secret file's content.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", hex::encode(self.0.as_slice())))
    }

    fn expand(&self, info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
        let _ = hkdf.expand_multi_info(info, out.as_mut_slice());
        out
    }

    /// The data-disk key of `owner`: HKDF-SHA256(salt "cocoon-key-service/v1", IKM the secret,
    /// info "cocoon-data-disk/v1 owner" || 0x00 || owner).
    pub fn data_key(&self, owner: &str) -> Zeroizing<[u8; KEY_LEN]> {
        self.expand(&[INFO_DATA_KEY, &[0], owner.as_bytes()])
    }

    /// The service's TLS certificate and key: Ed25519 from the seed HKDF-SHA256(..., info
    /// "cocoon-key-service/v1 tls-ed25519-seed"), self-signed, valid 1975-4096 (the pin, not
    /// the validity period, is what clients check).
    pub fn tls_key(&self) -> Result<ServiceTlsKey, KeyReleaseError> {
        let seed = self.expand(&[INFO_TLS_KEY]);
        // RFC 8410 PKCS#8 v1 for Ed25519: a fixed 16-byte prefix, then the 32-byte seed.
        let mut pkcs8 = Zeroizing::new(vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ]);
        pkcs8.extend_from_slice(seed.as_slice());
        let tls = |e: &dyn std::fmt::Display| KeyReleaseError::TlsKey(e.to_string());
        let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| tls(&e))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cocoon key service");
        params.not_before = rcgen::date_time_ymd(1975, 1, 1);
        params.not_after = rcgen::date_time_ymd(4096, 1, 1);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        let cert = params.self_signed(&key).map_err(|e| tls(&e))?;
        let spki_sha256 =
            Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
        let certified =
            crate::ratls::rustls_certified_key(&key, cert.der().to_vec()).map_err(|e| tls(&e))?;
        Ok(ServiceTlsKey {
            certified,
            spki_sha256,
        })
    }
}

/// The service's TLS identity.
pub struct ServiceTlsKey {
    pub certified: Arc<rustls::sign::CertifiedKey>,
    /// SHA-256 of the SubjectPublicKeyInfo: the pin workers are configured with.
    pub spki_sha256: [u8; 32],
}

/// The owner a worker's measured config names (`billing.owner_address`).
pub fn owner_of(config: &serde_json::Value) -> Result<&str, KeyReleaseError> {
    let billing =
        config
            .get("billing")
            .filter(|b| !b.is_null())
            .ok_or(KeyReleaseError::NoOwner(
                "the worker serves without billing, so it keeps no ledger and needs no data disk",
            ))?;
    match billing.get("owner_address").and_then(|o| o.as_str()) {
        Some(owner) if !owner.is_empty() => Ok(owner),
        _ => Err(KeyReleaseError::NoOwner(
            "billing has no non-empty owner_address string",
        )),
    }
}

/// Parses a pin: 64 hex digits.
pub fn parse_pin(text: &str) -> Result<[u8; 32], KeyReleaseError> {
    let mut pin = [0u8; 32];
    hex::decode_to_slice(text, &mut pin).map_err(|_| KeyReleaseError::Pin(text.to_string()))?;
    Ok(pin)
}

/// A rustls server verifier that accepts exactly the certificate whose SubjectPublicKeyInfo
/// hashes to the pin (and checks the handshake signature against that key). Names, issuers
/// and validity periods are not looked at: the pin is the whole of the trust.
#[derive(Debug)]
pub struct PinnedServer {
    spki_sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedServer {
    pub fn new(spki_sha256: [u8; 32]) -> PinnedServer {
        PinnedServer {
            spki_sha256,
            provider: crate::ratls::tls::provider(),
        }
    }
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let found: [u8; 32] = Sha256::digest(parsed.subject_public_key_info().as_ref()).into();
        if found != self.spki_sha256 {
            return Err(TlsError::General(format!(
                "key service public key SHA-256 is {}, the pin is {}",
                hex::encode(found),
                hex::encode(self.spki_sha256)
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(crate::ratls::tls::tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses the service's 200 answer into the key.
pub fn parse_key_response(body: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        key: String,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("the key service's answer is not {{\"key\":...}} JSON: {e}"))?;
    let key = Zeroizing::new(answer.key);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(key.as_str(), out.as_mut_slice())
        .map_err(|_| format!("the key service's key is not {} hex digits", KEY_LEN * 2))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ServiceSecret {
        ServiceSecret::from_hex(&"11".repeat(32)).unwrap()
    }

    #[test]
    fn data_key_is_hkdf_of_owner() {
        let s = secret();
        let a = s.data_key("0:aa");
        assert_eq!(a, s.data_key("0:aa"));
        assert_ne!(a, s.data_key("0:ab"));
        // Known answer, computed with Python:
        // hmac-based HKDF(salt=b"cocoon-key-service/v1", ikm=bytes([0x11]*32),
        //                 info=b"cocoon-data-disk/v1 owner\0" + b"0:aa", length=32)
        assert_eq!(hex::encode(a.as_slice()), KNOWN_DATA_KEY);
        let other = ServiceSecret::from_hex(&"12".repeat(32)).unwrap();
        assert_ne!(a, other.data_key("0:aa"));
    }

    const KNOWN_DATA_KEY: &str = "4922aa9d956dc47db6d58b92ce2ec8273f44c42a65c8530bae0c4f8c3a3ef118";

    #[test]
    fn secret_parsing_names_the_problem() {
        let e = ServiceSecret::from_hex("abcd").unwrap_err().to_string();
        assert!(e.contains("found 4 characters"), "{e}");
        let e = ServiceSecret::from_hex(&"zz".repeat(32))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-hex"), "{e}");
        let s = ServiceSecret::generate().unwrap();
        let again = ServiceSecret::from_hex(&s.to_hex()).unwrap();
        assert_eq!(s.data_key("x"), again.data_key("x"));
    }

    #[test]
    fn tls_key_is_stable_and_pinned() {
        let a = secret().tls_key().unwrap();
        let b = secret().tls_key().unwrap();
        assert_eq!(a.spki_sha256, b.spki_sha256);
        let c = ServiceSecret::from_hex(&"12".repeat(32))
            .unwrap()
            .tls_key()
            .unwrap();
        assert_ne!(a.spki_sha256, c.spki_sha256);
        let pinned = PinnedServer::new(a.spki_sha256);
        let name = ServerName::try_from("key-service").unwrap();
        let now = UnixTime::now();
        pinned
            .verify_server_cert(&a.certified.cert[0], &[], &name, &[], now)
            .unwrap();
        let e = pinned
            .verify_server_cert(&c.certified.cert[0], &[], &name, &[], now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the pin is"), "{e}");
    }

    #[test]
    fn owner_comes_from_measured_billing() {
        let config = serde_json::json!({"billing": {"owner_address": "0:ab"}});
        assert_eq!(owner_of(&config).unwrap(), "0:ab");
        for bad in [
            serde_json::json!({"billing": null}),
            serde_json::json!({}),
            serde_json::json!({"billing": {"owner_address": ""}}),
            serde_json::json!({"billing": {"owner_address": 5}}),
        ] {
            assert!(owner_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_response_parsing() {
        let key =
            parse_key_response(format!(r#"{{"key":"{}"}}"#, "ab".repeat(32)).as_bytes()).unwrap();
        assert_eq!(key.as_slice(), [0xab; 32].as_slice());
        for bad in [
            "".to_string(),
            "{}".to_string(),
            format!(r#"{{"key":"{}"}}"#, "ab".repeat(31)),
            format!(r#"{{"key":"{}"}}"#, "zz".repeat(32)),
        ] {
            assert!(parse_key_response(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_pin(&"ab".repeat(32)).is_ok());
        assert!(parse_pin("ab").is_err());
    }
}
