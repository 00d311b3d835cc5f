//! The signed measurement manifest of one release.
//!
//! File layout (format `cocoon-measure-manifest/v1`, documented in docs/measurements.md):
//!
//! ```text
//! {"manifest":<body, canonical JSON>,"signature":{"algorithm":"ed25519","public_key":hex,"signature":hex}}
//! ```
//!
//! The signature is embedded and covers `"cocoon-measure-manifest-signature/v1" || 0x00 ||
//! canonical(body)`, where `canonical` is the compact JSON serialisation of [`ManifestBody`]
//! (fields in declaration order, lowercase hex, no whitespace).
//!
//! Invariants enforced by [`Manifest::parse`]: the body's bytes in the file *are* its canonical
//! form (so the bytes verified are the bytes read, and any change to any byte of the body is
//! either a parse error or a signature failure); unknown fields are refused; the body is
//! internally consistent ([`ManifestBody::validate`]): every event list replays to the registers
//! it stands next to, shapes agree on the image-static registers, embedded ACPI blobs match
//! their digests, and identity hashes are those of the registers.

mod build;
pub mod hexser;
pub mod keyfile;
mod sign;
mod validate;

pub use validate::valid_name;

pub use build::{build, ImageFiles, ReleaseInfo, ShapeBuild};
pub use sign::{
    encode_key, generate_signing_key, parse_signing_key, parse_verifying_key, KeyError,
    SignatureBlock, SIGNATURE_ALGORITHM, SIGNATURE_DOMAIN_V1,
};

use crate::eventlog::{Expectation, ExpectedEvent};
use crate::register::Digest384;
use crate::rtmr3::PublishedEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `format` of this version of the manifest body.
pub const FORMAT_V1: &str = "cocoon-measure-manifest/v1";
/// Largest manifest file accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;
/// Most VM shapes in one manifest.
pub const MAX_SHAPES: usize = 256;
/// Most events in one event list of a manifest.
pub const MAX_EVENTS: usize = 4096;
/// Most ACPI blobs per shape (QEMU produces three).
pub const MAX_ACPI_BLOBS: usize = 16;

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {len} bytes, more than the limit of {MAX_MANIFEST_BYTES}")]
    TooLarge { len: usize },
    #[error("manifest is not valid JSON of format {FORMAT_V1}: {0}")]
    Json(String),
    #[error(
        "the manifest body is not in canonical form (it was edited or reformatted after it was \
         written); rebuild it, or re-sign it with `cocoon-measure manifest sign`"
    )]
    NotCanonical,
    #[error("manifest format is {found:?}; this tool reads {FORMAT_V1:?}")]
    Format { found: String },
    #[error("manifest field {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("manifest is not signed")]
    Unsigned,
    #[error("manifest signature algorithm is {found:?}, expected {SIGNATURE_ALGORITHM:?}")]
    Algorithm { found: String },
    #[error("manifest was signed by key {signed_by}, not by the expected key {expected}")]
    WrongKey { signed_by: String, expected: String },
    #[error("manifest signature is invalid: the manifest was modified after signing, or the signature is corrupt")]
    BadSignature,
    #[error("manifest has no VM shape named {name:?} (it has: {available})")]
    NoSuchShape { name: String, available: String },
    #[error("cannot build manifest: {0}")]
    Build(String),
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Expected TD configuration: attributes, XFAM and the host-chosen registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdPolicy {
    /// TDATTRIBUTES as a u64 (the quote stores it little-endian).
    #[serde(with = "hexser::u64_hex")]
    pub attributes: u64,
    #[serde(with = "hexser::u64_hex")]
    pub xfam: u64,
    #[serde(with = "hexser::fixed")]
    pub mr_config_id: Digest384,
    #[serde(with = "hexser::fixed")]
    pub mr_owner: Digest384,
    #[serde(with = "hexser::fixed")]
    pub mr_owner_config: Digest384,
}

/// TDATTRIBUTES of a production COCOON TD: only SEPT_VE_DISABLE (bit 28); DEBUG (bit 0) off.
pub const DEFAULT_TD_ATTRIBUTES: u64 = 1 << 28;
/// XFAM QEMU enables for a TD on Sapphire Rapids and later: x87, SSE, AVX, AVX-512 state,
/// PKRU, AMX (XTILECFG, XTILEDATA).
pub const DEFAULT_XFAM: u64 = 0x0006_02e7;

impl Default for TdPolicy {
    fn default() -> Self {
        Self {
            attributes: DEFAULT_TD_ATTRIBUTES,
            xfam: DEFAULT_XFAM,
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
        }
    }
}

/// Values that depend only on the release files, not on the VM shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStatic {
    #[serde(with = "hexser::fixed")]
    pub mrtd: Digest384,
    /// RTMR1 of every shape; `null` when it depends on the shape (the firmware measures a kernel
    /// setup header that QEMU patched with the memory size).
    #[serde(with = "hexser::opt_fixed")]
    pub rtmr1: Option<Digest384>,
    /// RTMR2 of every shape; `null` when it depends on the shape.
    #[serde(with = "hexser::opt_fixed")]
    pub rtmr2: Option<Digest384>,
    #[serde(with = "hexser::fixed")]
    pub firmware_sha256: [u8; 32],
    #[serde(with = "hexser::fixed")]
    pub kernel_sha256: [u8; 32],
    #[serde(with = "hexser::opt_fixed")]
    pub initrd_sha256: Option<[u8; 32]>,
    pub cmdline: String,
}

/// RTMR3 as the agent extends it for this release's reference configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rtmr3Pin {
    pub events: Vec<PublishedEvent>,
    #[serde(with = "hexser::fixed")]
    pub value: Digest384,
}

/// One ACPI blob QEMU generates for a shape (`etc/table-loader`, `etc/acpi/rsdp`,
/// `etc/acpi/tables`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcpiBlob {
    pub name: String,
    pub size: u64,
    #[serde(with = "hexser::fixed")]
    pub sha256: [u8; 32],
    /// The blob itself, standard base64, when embedded.
    pub data_base64: Option<String>,
}

impl AcpiBlob {
    /// The manifest entries of QEMU's three blobs, in [`crate::acpi::BLOB_NAMES`] order, with
    /// the blobs themselves embedded when `embed` is set.
    pub fn entries(blobs: &crate::acpi::AcpiBlobs, embed: bool) -> Vec<AcpiBlob> {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        let data = [&blobs.table_loader, &blobs.rsdp, &blobs.tables];
        crate::acpi::BLOB_NAMES
            .iter()
            .zip(data)
            .map(|(name, bytes)| AcpiBlob {
                name: name.to_string(),
                size: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
                data_base64: embed.then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
            })
            .collect()
    }
}

/// The full register set a quote must report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registers {
    #[serde(with = "hexser::fixed")]
    pub mrtd: Digest384,
    #[serde(with = "hexser::fixed")]
    pub rtmr0: Digest384,
    #[serde(with = "hexser::fixed")]
    pub rtmr1: Digest384,
    #[serde(with = "hexser::fixed")]
    pub rtmr2: Digest384,
    /// Present when the manifest pins RTMR3.
    #[serde(with = "hexser::opt_fixed")]
    pub rtmr3: Option<Digest384>,
}

/// Expected measurements for one VM shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeEntry {
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: u32,
    pub acpi: Vec<AcpiBlob>,
    /// The events of RTMR0, RTMR1 and RTMR2, in extension order.
    pub events: Vec<ExpectedEvent>,
    pub registers: Registers,
    /// [`crate::identity::identity_hash`]; present when RTMR3 is pinned.
    #[serde(with = "hexser::opt_fixed")]
    pub identity_sha384: Option<Digest384>,
    /// [`crate::identity::cocoon_image_hash`]; present when RTMR3 is pinned.
    #[serde(with = "hexser::opt_fixed")]
    pub cocoon_image_hash: Option<[u8; 32]>,
}

/// The signed part of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBody {
    pub format: String,
    pub release: String,
    pub commit: String,
    pub td: TdPolicy,
    pub image: ImageStatic,
    pub rtmr3: Option<Rtmr3Pin>,
    pub shapes: Vec<ShapeEntry>,
}

impl ManifestBody {
    /// The canonical serialisation that the signature covers.
    pub fn canonical(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (string keys, no maps with other keys).
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn shape(&self, name: &str) -> Result<&ShapeEntry, ManifestError> {
        self.shapes
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ManifestError::NoSuchShape {
                name: name.to_string(),
                available: self
                    .shapes
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The shape whose expected MRTD and RTMR0-2 equal the values a verified quote reports
    /// (RTMR3 is checked separately, by replaying the agent's event list).
    pub fn shape_for_registers(
        &self,
        mrtd: &Digest384,
        rtmr0_2: &[Digest384; 3],
    ) -> Option<&ShapeEntry> {
        self.shapes.iter().find(|s| {
            let r = &s.registers;
            &r.mrtd == mrtd && [r.rtmr0, r.rtmr1, r.rtmr2] == *rtmr0_2
        })
    }

    /// The events a TD of shape `name` logs for RTMR0-2 (RTMR3 is the agent's and not in the
    /// firmware log).
    pub fn expectation(&self, name: &str) -> Result<Expectation, ManifestError> {
        let shape = self.shape(name)?;
        Ok(Expectation {
            events: shape.events.clone(),
            covers: [true, true, true, false],
            origin: format!("manifest release {} shape {}", self.release, shape.name),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    manifest: Box<RawValue>,
    #[serde(default)]
    signature: Option<SignatureBlock>,
}

/// A parsed manifest file: a checked body and its signature, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub body: ManifestBody,
    pub signature: Option<SignatureBlock>,
}

impl Manifest {
    /// Parses a manifest file and checks the body's form and consistency (not the signature:
    /// see [`Manifest::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let file: ManifestFile =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let raw = file.manifest.get();
        let body: ManifestBody =
            serde_json::from_str(raw).map_err(|e| ManifestError::Json(format!("body: {e}")))?;
        if body.format != FORMAT_V1 {
            return Err(ManifestError::Format { found: body.format });
        }
        if raw.as_bytes() != body.canonical().as_slice() {
            return Err(ManifestError::NotCanonical);
        }
        body.validate()?;
        Ok(Self {
            body,
            signature: file.signature,
        })
    }

    /// Parses and verifies in one step: what a consumer of a manifest should call.
    pub fn parse_verified(
        bytes: &[u8],
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<Self, ManifestError> {
        let m = Self::parse(bytes)?;
        m.verify(key)?;
        Ok(m)
    }

    /// The manifest file: `{"manifest":<canonical body>,"signature":{..}}` and a newline.
    pub fn to_json(&self) -> String {
        let body = String::from_utf8(self.body.canonical()).unwrap_or_default();
        match &self.signature {
            Some(sig) => {
                let sig = serde_json::to_string(sig).unwrap_or_default();
                format!("{{\"manifest\":{body},\"signature\":{sig}}}\n")
            }
            None => format!("{{\"manifest\":{body}}}\n"),
        }
    }

    /// Signs (or re-signs) the body.
    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        self.signature = Some(sign::sign(&self.body, key));
    }

    /// Checks the signature against `key`; refuses unsigned manifests.
    pub fn verify(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(), ManifestError> {
        let sig = self.signature.as_ref().ok_or(ManifestError::Unsigned)?;
        sign::verify(&self.body, sig, key)
    }
}
