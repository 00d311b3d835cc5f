//! Ed25519 signatures over the canonical manifest body, and the key file formats.
//!
//! Key files are text: 64 lowercase hex digits (the 32-byte Ed25519 seed for a private key,
//! the 32-byte compressed point for a public key) and a newline. Whitespace around them is
//! ignored when reading.

use super::{hexser, ManifestBody, ManifestError};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Domain tag of manifest signatures v1; a zero byte separates it from the canonical body.
pub const SIGNATURE_DOMAIN_V1: &str = "cocoon-measure-manifest-signature/v1";
/// The only signature algorithm of format v1.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// The embedded signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    pub algorithm: String,
    #[serde(with = "hexser::fixed")]
    pub public_key: [u8; 32],
    #[serde(with = "hexser::fixed")]
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not 64 lowercase hex digits: {0}")]
    Encoding(String),
    #[error("public key is not a valid Ed25519 point")]
    BadPoint,
    #[error("no operating-system randomness: {0}")]
    Random(String),
}

fn message(body: &ManifestBody) -> Vec<u8> {
    let mut m = SIGNATURE_DOMAIN_V1.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(&body.canonical());
    m
}

pub(super) fn sign(body: &ManifestBody, key: &SigningKey) -> SignatureBlock {
    SignatureBlock {
        algorithm: SIGNATURE_ALGORITHM.to_string(),
        public_key: key.verifying_key().to_bytes(),
        signature: key.sign(&message(body)).to_bytes(),
    }
}

pub(super) fn verify(
    body: &ManifestBody,
    sig: &SignatureBlock,
    key: &VerifyingKey,
) -> Result<(), ManifestError> {
    if sig.algorithm != SIGNATURE_ALGORITHM {
        return Err(ManifestError::Algorithm {
            found: sig.algorithm.clone(),
        });
    }
    if sig.public_key != key.to_bytes() {
        return Err(ManifestError::WrongKey {
            signed_by: hex::encode(sig.public_key),
            expected: hex::encode(key.to_bytes()),
        });
    }
    let signature = Signature::from_bytes(&sig.signature);
    key.verify_strict(&message(body), &signature)
        .map_err(|_| ManifestError::BadSignature)
}

/// A new signing key from the operating system's random number generator.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The key file line for 32 key bytes.
pub fn encode_key(bytes: &[u8; 32]) -> String {
    format!("{}\n", hex::encode(bytes))
}

fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    hexser::decode_fixed::<32>(text.trim()).map_err(KeyError::Encoding)
}

pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyError> {
    let mut seed = decode_key(text)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&decode_key(text)?).map_err(|_| KeyError::BadPoint)
}
