//! Parsing an RA-TLS certificate (untrusted bytes): size, X.509 structure, self-signature,
//! and the evidence extensions.
//!
//! Invariants enforced here: the input is at most [`MAX_CERT_LEN`] bytes and one complete DER
//! certificate; it is signed with ecdsa-with-SHA256 by the P-256 key it certifies; every
//! extension OID occurs once; every critical extension is one of ours; each of ours is present,
//! critical and within its size limit. Nothing here panics on any input.

use super::der;
use super::refusal::Refusal;
use super::{
    MAX_CERT_LEN, MAX_CONFIG_EXT, MAX_EVENTS_EXT, MAX_QUOTE_EXT, OID_CONFIG, OID_QUOTE,
    OID_RTMR3_EVENTS,
};
use std::collections::BTreeSet;
use x509_parser::prelude::*;

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, 66-byte BIT STRING).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Content octets of ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// A certificate whose structure and self-signature have been checked; the evidence
/// extensions are checked by [`ParsedCertificate::evidence`].
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    /// SubjectPublicKeyInfo DER of the certified key.
    pub spki_der: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    extensions: Vec<RawExtension>,
}

#[derive(Debug, Clone)]
struct RawExtension {
    oid: Vec<u8>,
    critical: bool,
    value: Vec<u8>,
}

/// The evidence extensions' bytes, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvidence {
    pub quote: Vec<u8>,
    pub events_json: Vec<u8>,
    pub config_json: Vec<u8>,
}

/// Dotted text of OID content octets (arcs up to 128 bits), or hex when malformed.
pub(crate) fn dotted(content: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    let mut ok = !content.is_empty() && content.last().is_some_and(|b| b & 0x80 == 0);
    for b in content {
        if value > (u128::MAX >> 7) {
            ok = false;
            break;
        }
        value = (value << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let Some(first) = arcs.first().copied().filter(|_| ok) else {
        return format!("(malformed OID {})", hex::encode(content));
    };
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in arcs.iter().skip(1) {
        out.push_str(&format!(".{arc}"));
    }
    out
}

/// Checks size, structure and self-signature of `der_bytes`.
pub fn parse_certificate(der_bytes: &[u8]) -> Result<ParsedCertificate, Refusal> {
    if der_bytes.len() > MAX_CERT_LEN {
        return Err(Refusal::CertificateTooLarge {
            len: der_bytes.len(),
            max: MAX_CERT_LEN,
        });
    }
    let (rest, cert) =
        X509Certificate::from_der(der_bytes).map_err(|e| Refusal::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Refusal::Parse(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let tbs = &cert.tbs_certificate;
    if cert.signature_algorithm.algorithm.as_bytes() != ECDSA_WITH_SHA256
        || tbs.signature.algorithm.as_bytes() != ECDSA_WITH_SHA256
    {
        return Err(Refusal::SelfSignature(format!(
            "algorithm {} is not ecdsa-with-SHA256",
            dotted(cert.signature_algorithm.algorithm.as_bytes())
        )));
    }
    let spki = tbs.subject_pki.raw;
    if spki.len() != P256_SPKI_PREFIX.len() + 65 || !spki.starts_with(&P256_SPKI_PREFIX) {
        return Err(Refusal::SelfSignature(
            "the certified key is not an uncompressed ECDSA P-256 key".into(),
        ));
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        &*tbs.subject_pki.subject_public_key.data,
    );
    key.verify(tbs.as_ref(), &cert.signature_value.data)
        .map_err(|_| {
            Refusal::SelfSignature(
                "does not verify with the certified key (tampered, or not self-signed)".into(),
            )
        })?;
    let validity = tbs.validity();
    let extensions = cert
        .extensions()
        .iter()
        .map(|e| RawExtension {
            oid: e.oid.as_bytes().to_vec(),
            critical: e.critical,
            value: e.value.to_vec(),
        })
        .collect();
    Ok(ParsedCertificate {
        spki_der: spki.to_vec(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        extensions,
    })
}

/// The SubjectPublicKeyInfo DER of a certificate, without checking anything else (for the
/// handshake signature, after [`parse_certificate`] accepted the same certificate).
pub fn spki_of(der_bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    if der_bytes.len() > MAX_CERT_LEN {
        return Err(Refusal::CertificateTooLarge {
            len: der_bytes.len(),
            max: MAX_CERT_LEN,
        });
    }
    let (_, cert) =
        X509Certificate::from_der(der_bytes).map_err(|e| Refusal::Parse(e.to_string()))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

struct Ours {
    name: &'static str,
    oid: Vec<u8>,
    max: usize,
}

impl ParsedCertificate {
    /// Checks the extensions (each OID once; every critical one known; ours present, critical
    /// and within limits) and returns the evidence they carry.
    pub fn evidence(&self) -> Result<RawEvidence, Refusal> {
        let ours = [
            ("quote (OID_ARC.1)", OID_QUOTE, MAX_QUOTE_EXT),
            ("RTMR3 events (OID_ARC.2)", OID_RTMR3_EVENTS, MAX_EVENTS_EXT),
            ("config (OID_ARC.3)", OID_CONFIG, MAX_CONFIG_EXT),
        ]
        .map(|(name, oid, max)| Ours {
            name,
            oid: der::oid_content(oid).unwrap_or_default(),
            max,
        });
        let mut seen = BTreeSet::new();
        let mut found: [Option<&[u8]>; 3] = [None; 3];
        for ext in &self.extensions {
            if !seen.insert(ext.oid.as_slice()) {
                return Err(Refusal::DuplicateExtension {
                    oid: dotted(&ext.oid),
                });
            }
            let Some(index) = ours.iter().position(|o| o.oid == ext.oid) else {
                if ext.critical {
                    return Err(Refusal::UnknownCriticalExtension {
                        oid: dotted(&ext.oid),
                    });
                }
                continue;
            };
            let Some(o) = ours.get(index) else { continue };
            if !ext.critical {
                return Err(Refusal::NotCritical { name: o.name });
            }
            if ext.value.len() > o.max {
                return Err(Refusal::ExtensionTooLarge {
                    name: o.name,
                    len: ext.value.len(),
                    max: o.max,
                });
            }
            if let Some(slot) = found.get_mut(index) {
                *slot = Some(&ext.value);
            }
        }
        let [quote, events, config] = found;
        let take = |v: Option<&[u8]>, i: usize| {
            v.map(<[u8]>::to_vec).ok_or(Refusal::MissingExtension {
                name: ours.get(i).map_or("?", |o| o.name),
            })
        };
        Ok(RawEvidence {
            quote: take(quote, 0)?,
            events_json: take(events, 1)?,
            config_json: take(config, 2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_prints_big_arcs_and_survives_garbage() {
        let content = der::oid_content(OID_CONFIG).unwrap();
        assert_eq!(dotted(&content), OID_CONFIG);
        assert_eq!(dotted(&[0x55, 0x1d, 0x11]), "2.5.29.17");
        assert!(dotted(&[]).starts_with("(malformed"));
        assert!(dotted(&[0x81]).starts_with("(malformed"));
        assert!(dotted(&[0xff; 40]).starts_with("(malformed"));
    }
}
