//! `cocoon-agent simulated-pki`: what a verifier on the host needs to accept a SIMULATED TD's
//! evidence, written to a directory:
//!
//! | file | content |
//! |---|---|
//! | `root-ca.der` | the seed's mock DCAP root CA (trust it with `--trust-simulated --root-ca`) |
//! | `collateral.json` | quote collateral in dcap-qvl's `QuoteCollateralV3` JSON layout |
//! | `manifest.json` | a signed manifest whose one shape, `simulated`, has the simulated TD's MRTD and RTMR0-2 (zero) and its TD attributes and XFAM; RTMR3 not pinned |
//! | `manifest-key.pub` | the Ed25519 public key (hex) that signed it |
//!
//! The manifest is signed with a fresh random key whose private half is discarded, so it
//! vouches for nothing but the simulated TD's register values. Its image fields (firmware and
//! kernel digests, command line) are placeholders, named as such. Everything here is for tests
//! and development: anyone who knows the seed can mint evidence that these files accept.

use cocoon_measure::manifest::{
    encode_key, generate_signing_key, ImageStatic, Manifest, ManifestBody, Registers, ShapeEntry,
    TdPolicy, FORMAT_V1,
};
use cocoon_tdx::simulated::{MockPki, SimulatedTdConfig};
use std::path::{Path, PathBuf};

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SimulatedPkiError {
    #[error("simulated PKI for seed {seed}: {what}")]
    Build { seed: u64, what: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files written, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedPkiFiles {
    pub root_ca: PathBuf,
    pub collateral: PathBuf,
    pub manifest: PathBuf,
    pub manifest_key: PathBuf,
}

/// The manifest body for a simulated TD with default registers for `seed`.
pub fn manifest_body(seed: u64) -> ManifestBody {
    let td_config = SimulatedTdConfig::new(seed);
    let mrtd = td_config.mr_td;
    let zero = [0u8; 48];
    ManifestBody {
        format: FORMAT_V1.to_string(),
        release: format!("simulated-td-seed-{seed}"),
        // Placeholder (no source commit): seven zero hex digits, the shortest form allowed.
        commit: "0000000".to_string(),
        td: TdPolicy {
            attributes: td_config.td_attributes,
            xfam: td_config.xfam,
            mr_config_id: td_config.mr_config_id,
            mr_owner: td_config.mr_owner,
            mr_owner_config: td_config.mr_owner_config,
        },
        image: ImageStatic {
            mrtd,
            rtmr1: Some(zero),
            rtmr2: Some(zero),
            // Placeholders: a simulated TD boots no firmware or kernel.
            firmware_sha256: [0; 32],
            kernel_sha256: [0; 32],
            initrd_sha256: None,
            cmdline: "simulated-td-placeholder".to_string(),
        },
        rtmr3: None,
        shapes: vec![ShapeEntry {
            name: "simulated".to_string(),
            cpus: 1,
            memory_bytes: 1 << 30,
            gpus: 0,
            acpi: vec![],
            events: vec![],
            registers: Registers {
                mrtd,
                rtmr0: zero,
                rtmr1: zero,
                rtmr2: zero,
                rtmr3: None,
            },
            identity_sha384: None,
            cocoon_image_hash: None,
        }],
    }
}

fn write(path: PathBuf, data: &[u8]) -> Result<PathBuf, SimulatedPkiError> {
    std::fs::write(&path, data).map_err(|source| SimulatedPkiError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes the four files for `seed` into `out` (created if needed).
pub fn write_files(seed: u64, out: &Path) -> Result<SimulatedPkiFiles, SimulatedPkiError> {
    let build = |what: String| SimulatedPkiError::Build { seed, what };
    let pki = MockPki::new(seed).map_err(|e| build(e.to_string()))?;
    let body = manifest_body(seed);
    body.validate().map_err(|e| build(e.to_string()))?;
    let key = generate_signing_key().map_err(|e| build(e.to_string()))?;
    let mut manifest = Manifest {
        body,
        signature: None,
    };
    manifest.sign(&key);
    std::fs::create_dir_all(out).map_err(|source| SimulatedPkiError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(SimulatedPkiFiles {
        root_ca: write(out.join("root-ca.der"), pki.root_ca_der())?,
        collateral: write(
            out.join("collateral.json"),
            pki.collateral().to_json().as_bytes(),
        )?,
        manifest: write(out.join("manifest.json"), manifest.to_json().as_bytes())?,
        manifest_key: write(
            out.join("manifest-key.pub"),
            encode_key(&key.verifying_key().to_bytes()).as_bytes(),
        )?,
    })
}
