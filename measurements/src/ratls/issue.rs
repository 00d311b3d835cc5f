//! Issuing RA-TLS certificates (the agent side).
//!
//! The certificate is X.509 v3, self-signed with ECDSA P-256/SHA-256 by the key it certifies:
//! subject and issuer `CN=cocoon RA-TLS`, a random positive 128-bit serial, the three evidence
//! extensions under [`super::OID_ARC`] (critical, raw bytes in `extnValue`) and, when DNS names
//! are given, a non-critical subjectAltName. The private key never leaves the process that
//! called [`new_key`]; only its SubjectPublicKeyInfo is hashed into the quote.

use super::der::{self, wrap};
use super::{
    Evidence, RatlsError, MAX_CERT_LEN, MAX_CONFIG_EXT, MAX_EVENTS_EXT, MAX_QUOTE_EXT, OID_CONFIG,
    OID_QUOTE, OID_RTMR3_EVENTS,
};
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use std::time::{SystemTime, UNIX_EPOCH};

/// Subject and issuer common name of every RA-TLS certificate.
pub const SUBJECT_CN: &str = "cocoon RA-TLS";
const OID_ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// A fresh ECDSA P-256 key pair from the operating system's randomness.
pub fn new_key() -> Result<KeyPair, RatlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| RatlsError::KeyGeneration(e.to_string()))
}

/// The key's SubjectPublicKeyInfo (DER): the input of [`super::report_data`].
pub fn spki_der(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

fn oid(dotted: &str) -> Vec<u8> {
    // Every OID passed here is one of this module's constants, checked by the unit tests.
    wrap(der::OID, &der::oid_content(dotted).unwrap_or_default())
}

fn name() -> Vec<u8> {
    let mut atv = oid(OID_COMMON_NAME);
    der::tlv(&mut atv, der::UTF8_STRING, SUBJECT_CN.as_bytes());
    wrap(der::SEQUENCE, &wrap(der::SET, &wrap(der::SEQUENCE, &atv)))
}

/// UTCTime for 1950..=2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5); whole seconds.
fn time(t: SystemTime, which: &str) -> Result<Vec<u8>, RatlsError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| RatlsError::Validity(format!("{which} is before 1970")))?
        .as_secs();
    let secs = i64::try_from(secs)
        .map_err(|_| RatlsError::Validity(format!("{which} is out of range")))?;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| RatlsError::Validity(format!("{which}: {e}")))?;
    let year = dt.year();
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    Ok(match year {
        1950..=2049 => wrap(der::UTC_TIME, format!("{:02}{rest}", year % 100).as_bytes()),
        0..=9999 => wrap(der::GENERALIZED_TIME, format!("{year:04}{rest}").as_bytes()),
        _ => return Err(RatlsError::Validity(format!("{which}: year {year}"))),
    })
}

fn subject_alt_name(dns_names: &[String]) -> Result<Vec<u8>, RatlsError> {
    let mut names = Vec::new();
    for n in dns_names {
        let ok = !n.is_empty()
            && n.len() <= 253
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'*'));
        if !ok {
            return Err(RatlsError::DnsName {
                name: n.clone(),
                what: "must be 1..=253 ASCII letters, digits, '.', '-' or '*'".into(),
            });
        }
        // dNSName [2] IMPLICIT IA5String
        der::tlv(&mut names, 0x82, n.as_bytes());
    }
    Ok(wrap(der::SEQUENCE, &names))
}

fn check_size(what: &'static str, len: usize, max: usize) -> Result<(), RatlsError> {
    if len > max {
        return Err(RatlsError::TooLarge { what, len, max });
    }
    Ok(())
}

fn serial() -> Result<Vec<u8>, RatlsError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| RatlsError::KeyGeneration(e.to_string()))?;
    // Positive, and minimal (no leading zero byte): top bit clear, next bit set.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(wrap(der::INTEGER, &serial))
}

/// Issues the self-signed RA-TLS certificate (DER) for `key` carrying `evidence`.
///
/// Refuses evidence larger than a verifier accepts, `not_after` not after `not_before`, and
/// DNS names that are not plain ASCII host names.
pub fn issue_certificate(
    key: &KeyPair,
    evidence: &Evidence,
    not_before: SystemTime,
    not_after: SystemTime,
    dns_names: &[String],
) -> Result<Vec<u8>, RatlsError> {
    let events_json = crate::rtmr3::to_json(&evidence.events);
    check_size("quote", evidence.quote.len(), MAX_QUOTE_EXT)?;
    check_size("RTMR3 event list", events_json.len(), MAX_EVENTS_EXT)?;
    check_size("config", evidence.config_json.len(), MAX_CONFIG_EXT)?;
    let mut extensions = vec![
        (OID_QUOTE, true, evidence.quote.as_slice()),
        (OID_RTMR3_EVENTS, true, events_json.as_bytes()),
        (OID_CONFIG, true, evidence.config_json.as_slice()),
    ];
    let san = if dns_names.is_empty() {
        None
    } else {
        Some(subject_alt_name(dns_names)?)
    };
    if let Some(san) = &san {
        extensions.push((OID_SUBJECT_ALT_NAME, false, san.as_slice()));
    }
    let cert = issue_with_raw_extensions(key, &extensions, not_before, not_after)?;
    check_size("certificate", cert.len(), MAX_CERT_LEN)?;
    Ok(cert)
}

/// Issues a self-signed certificate with exactly `extensions` (dotted OID, critical, raw
/// `extnValue` content), unchecked against the evidence rules and size limits. For negative
/// tests, fuzz seeds and tools; workers use [`issue_certificate`].
pub fn issue_with_raw_extensions(
    key: &KeyPair,
    extensions: &[(&str, bool, &[u8])],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<Vec<u8>, RatlsError> {
    if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(RatlsError::KeyAlgorithm(format!("{:?}", key.algorithm())));
    }
    if not_after <= not_before {
        return Err(RatlsError::Validity(
            "not_after must be later than not_before".into(),
        ));
    }
    let mut encoded = Vec::new();
    for (dotted, critical, value) in extensions {
        let content = der::oid_content(dotted).ok_or_else(|| RatlsError::Extension {
            oid: dotted.to_string(),
        })?;
        let mut ext = wrap(der::OID, &content);
        if *critical {
            der::tlv(&mut ext, der::BOOLEAN, &[0xff]);
        }
        der::tlv(&mut ext, der::OCTET_STRING, value);
        encoded.extend(wrap(der::SEQUENCE, &ext));
    }

    let sig_alg = wrap(der::SEQUENCE, &oid(OID_ECDSA_WITH_SHA256));
    let mut tbs = wrap(0xa0, &wrap(der::INTEGER, &[2])); // [0] EXPLICIT version v3
    tbs.extend(serial()?);
    tbs.extend_from_slice(&sig_alg);
    tbs.extend(name());
    let mut validity = time(not_before, "not_before")?;
    validity.extend(time(not_after, "not_after")?);
    tbs.extend(wrap(der::SEQUENCE, &validity));
    tbs.extend(name());
    tbs.extend(spki_der(key));
    if !encoded.is_empty() {
        tbs.extend(wrap(0xa3, &wrap(der::SEQUENCE, &encoded)));
    }
    let tbs = wrap(der::SEQUENCE, &tbs);

    let signature = key
        .sign(&tbs)
        .map_err(|e| RatlsError::Signing(e.to_string()))?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(&signature);
    let mut cert = tbs;
    cert.extend_from_slice(&sig_alg);
    der::tlv(&mut cert, der::BIT_STRING, &bits);
    Ok(wrap(der::SEQUENCE, &cert))
}

/// The key and certificate as a rustls `CertifiedKey` (ring provider), for a server or client
/// certificate resolver. Swapping the `Arc` renews the certificate without touching open
/// connections.
pub fn rustls_certified_key(
    key: &KeyPair,
    cert_der: Vec<u8>,
) -> Result<std::sync::Arc<rustls::sign::CertifiedKey>, RatlsError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .map_err(|e| RatlsError::Rustls(e.to_string()))?;
    Ok(std::sync::Arc::new(rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(cert_der)],
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_oids_encode() {
        for o in [OID_ECDSA_WITH_SHA256, OID_COMMON_NAME, OID_SUBJECT_ALT_NAME] {
            assert!(der::oid_content(o).is_some(), "{o}");
        }
    }

    #[test]
    fn times_use_the_rfc5280_encodings() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600); // 2026-01-01
        assert_eq!(time(t, "t").unwrap(), wrap(der::UTC_TIME, b"260101000000Z"));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(2_556_144_000); // 2051-01-01
        assert_eq!(
            time(t, "t").unwrap(),
            wrap(der::GENERALIZED_TIME, b"20510101000000Z")
        );
    }

    #[test]
    fn bad_dns_names_and_windows_are_refused() {
        let key = new_key().unwrap();
        let ev = Evidence {
            quote: vec![1],
            events: vec![],
            config_json: b"{}".to_vec(),
        };
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        assert!(matches!(
            issue_certificate(&key, &ev, t, t, &[]),
            Err(RatlsError::Validity(_))
        ));
        let later = t + std::time::Duration::from_secs(60);
        assert!(matches!(
            issue_certificate(&key, &ev, t, later, &["a b".into()]),
            Err(RatlsError::DnsName { .. })
        ));
        let big = Evidence {
            quote: vec![0; MAX_QUOTE_EXT + 1],
            ..ev.clone()
        };
        assert!(matches!(
            issue_certificate(&key, &big, t, later, &[]),
            Err(RatlsError::TooLarge { what: "quote", .. })
        ));
        assert!(issue_certificate(&key, &ev, t, later, &["worker.example".into()]).is_ok());
    }
}
