//! Identity hashes of a TD: one value that pins everything a verifier checks.
//!
//! - [`identity_hash`] (format v1, ours):
//!   `SHA-384( "cocoon-td-identity/v1" || 0x00 || MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3 ||
//!   TDATTRIBUTES (8 bytes, little-endian as in the TD report) || XFAM (8 bytes, little-endian) )`,
//!   5 * 48 + 16 bytes after the 22-byte tag. Every field has a fixed size, so the encoding is
//!   injective without length prefixes. All 64 bits of the attributes and of XFAM are included:
//!   verifiers compare them exactly (DEBUG, SEPT_VE_DISABLE, PKS, KL, PERFMON and the XSAVE
//!   feature set all change what the TD can do).
//! - [`cocoon_image_hash`]: Telegram COCOON's image hash, SHA-256 over
//!   `MRTD || MRCONFIGID || MROWNER || MROWNERCONFIG || RTMR0 || RTMR1 || RTMR2 || RTMR3 || 64 zero
//!   bytes` (448 bytes), so COCOON-style allow-lists can be filled from our images.

use crate::register::Digest384;
use sha2::{Digest, Sha256, Sha384};

/// Domain tag of identity format v1, followed by one zero byte.
pub const IDENTITY_DOMAIN_V1: &str = "cocoon-td-identity/v1";

/// The measured identity of a TD as a quote reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdIdentity {
    pub mrtd: Digest384,
    pub rtmr: [Digest384; 4],
    pub td_attributes: u64,
    pub xfam: u64,
}

/// Identity hash format v1 (see module docs).
pub fn identity_hash(id: &TdIdentity) -> Digest384 {
    let mut h = Sha384::new();
    h.update(IDENTITY_DOMAIN_V1.as_bytes());
    h.update([0u8]);
    h.update(id.mrtd);
    for r in &id.rtmr {
        h.update(r);
    }
    h.update(id.td_attributes.to_le_bytes());
    h.update(id.xfam.to_le_bytes());
    h.finalize().into()
}

/// The registers COCOON's image hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CocoonImageRegisters {
    pub mrtd: Digest384,
    pub mr_config_id: Digest384,
    pub mr_owner: Digest384,
    pub mr_owner_config: Digest384,
    pub rtmr: [Digest384; 4],
}

/// Length of the hashed input of [`cocoon_image_hash`].
pub const COCOON_IMAGE_HASH_INPUT_LEN: usize = 48 * 8 + 64;

/// COCOON's image hash (see module docs).
pub fn cocoon_image_hash(r: &CocoonImageRegisters) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(r.mrtd);
    h.update(r.mr_config_id);
    h.update(r.mr_owner);
    h.update(r.mr_owner_config);
    for x in &r.rtmr {
        h.update(x);
    }
    h.update([0u8; 64]);
    h.finalize().into()
}
