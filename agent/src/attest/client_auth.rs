//! Mutual RA-TLS (`--tls-client-auth ratls`): which client certificates the RA-TLS listener
//! accepts. Clients must present an RA-TLS certificate that the measurements crate's
//! [`RatlsVerifier`] accepts against a signed manifest (`--client-manifest`, signed by
//! `--client-manifest-key`), with quote collateral from `--client-collateral` and, for
//! simulated peers only, the mock root from `--client-simulated-root-ca`.
//!
//! Every input of that decision changes what the agent accepts, so all of it is measured
//! ([`MeasuredClientAuth`]): the SHA-256 of the manifest file, the manifest key, the SHA-256 of
//! the collateral file and of the simulated root (or `null`).

use super::AttestError;
use cocoon_measure::manifest::{parse_verifying_key, Manifest, MAX_MANIFEST_BYTES};
use cocoon_measure::ratls::{CollateralSource, RatlsVerifier, VerifierConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest collateral file read.
pub const MAX_COLLATERAL_FILE: usize = 1 << 20;
/// Largest key or root CA file read.
const MAX_SMALL_FILE: usize = 64 * 1024;

/// The files named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPolicyFiles {
    pub manifest: PathBuf,
    pub manifest_key: PathBuf,
    pub collateral: PathBuf,
    /// Trust simulated client evidence chaining to this mock root (tests only).
    pub simulated_root_ca: Option<PathBuf>,
}

/// What is measured about the client policy (hex strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasuredClientAuth {
    pub manifest_sha256: String,
    pub manifest_key: String,
    pub collateral_sha256: String,
    pub simulated_root_ca_sha256: Option<String>,
}

/// A loaded client policy: the verifier and its measured description.
#[derive(Debug)]
pub struct ClientPolicy {
    pub verifier: Arc<RatlsVerifier>,
    pub measured: MeasuredClientAuth,
}

fn read_limited(path: &Path, limit: usize, what: &str) -> Result<Vec<u8>, AttestError> {
    let err =
        |detail: String| AttestError::ClientPolicy(format!("{what} {}: {detail}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut data = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| err(e.to_string()))?;
    if data.len() > limit {
        return Err(err(format!("more than {limit} bytes")));
    }
    Ok(data)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl ClientPolicy {
    /// Reads and checks every file and builds the verifier (production quote policy; the mock
    /// root only when given).
    pub fn load(files: &ClientPolicyFiles) -> Result<ClientPolicy, AttestError> {
        let key_text = read_limited(&files.manifest_key, MAX_SMALL_FILE, "--client-manifest-key")?;
        let key_text = String::from_utf8_lossy(&key_text);
        let key = parse_verifying_key(&key_text).map_err(|e| {
            AttestError::ClientPolicy(format!(
                "--client-manifest-key {}: {e}",
                files.manifest_key.display()
            ))
        })?;
        let manifest_bytes =
            read_limited(&files.manifest, MAX_MANIFEST_BYTES, "--client-manifest")?;
        let manifest = Manifest::parse_verified(&manifest_bytes, &key).map_err(|e| {
            AttestError::ClientPolicy(format!(
                "--client-manifest {}: {e}",
                files.manifest.display()
            ))
        })?;
        let collateral = read_limited(
            &files.collateral,
            MAX_COLLATERAL_FILE,
            "--client-collateral",
        )?;
        let root = match &files.simulated_root_ca {
            None => None,
            Some(path) => Some(read_limited(
                path,
                MAX_SMALL_FILE,
                "--client-simulated-root-ca",
            )?),
        };
        let measured = MeasuredClientAuth {
            manifest_sha256: sha256_hex(&manifest_bytes),
            manifest_key: hex::encode(key.to_bytes()),
            collateral_sha256: sha256_hex(&collateral),
            simulated_root_ca_sha256: root.as_deref().map(sha256_hex),
        };
        let mut config = VerifierConfig::new(manifest, key, CollateralSource::Json(collateral));
        if let Some(root) = root {
            config = config.trust_simulated(root);
        }
        let verifier = RatlsVerifier::new(config)
            .map_err(|e| AttestError::ClientPolicy(format!("client verifier: {e}")))?;
        Ok(ClientPolicy {
            verifier: Arc::new(verifier),
            measured,
        })
    }
}
