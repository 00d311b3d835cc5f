//! The node's Ed25519 key.
//!
//! The same key controls the node's TON wallet and signs receipts. In a TDX guest the key file
//! lives on the encrypted data volume; [`SimulatedKeyProvider`] exists for tests and demos and
//! says so in its name and in [`KeyProvider::describe`].

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// First line of a key file.
const KEY_FILE_HEADER: &str = "cocoon-node-key v1";
/// A key file is tiny; anything larger is not ours.
const KEY_FILE_MAX: u64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key file {path} is readable by group or others (mode {mode:o}); expected 0600")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// The node's signing key. Cloning copies the secret; keep copies to a minimum.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey(public {})", hex::encode(self.public_key()))
    }
}

impl NodeKey {
    pub fn from_seed(seed: [u8; 32]) -> NodeKey {
        NodeKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn generate() -> NodeKey {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        NodeKey::from_seed(seed)
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// The key in the layout `tonlib-core` (NaCl) expects: 64-byte secret = seed || public.
    pub(crate) fn ton_key_pair(&self) -> tonlib_core::wallet::mnemonic::KeyPair {
        tonlib_core::wallet::mnemonic::KeyPair {
            public_key: self.public_key().to_vec(),
            secret_key: self.signing.to_keypair_bytes().to_vec(),
        }
    }
}

/// Where the node key comes from.
pub trait KeyProvider: Send + Sync {
    fn node_key(&self) -> Result<NodeKey, KeyError>;
    /// One line for logs and status pages: where the key lives.
    fn describe(&self) -> String;
}

/// A key file on the data volume, mode 0600, created (with a fresh random key) if missing.
#[derive(Debug, Clone)]
pub struct FileKeyProvider {
    path: PathBuf,
}

impl FileKeyProvider {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyProvider { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: io::Error) -> KeyError {
        KeyError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn create(&self) -> Result<Option<NodeKey>, KeyError> {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
        {
            Ok(f) => f,
            // Someone else created it first: load theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let text = format!("{KEY_FILE_HEADER}\n{}\n", hex::encode(seed));
        f.write_all(text.as_bytes()).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(Some(NodeKey::from_seed(seed)))
    }

    fn load(&self) -> Result<NodeKey, KeyError> {
        let f = fs::File::open(&self.path).map_err(|e| self.io(e))?;
        let meta = f.metadata().map_err(|e| self.io(e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: self.path.clone(),
                mode,
            });
        }
        let malformed = |reason: String| KeyError::Malformed {
            path: self.path.clone(),
            reason,
        };
        let mut text = String::new();
        f.take(KEY_FILE_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| malformed(format!("not UTF-8 text: {e}")))?;
        if text.len() as u64 > KEY_FILE_MAX {
            return Err(malformed(format!("larger than {KEY_FILE_MAX} bytes")));
        }
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(malformed(format!("first line must be {KEY_FILE_HEADER:?}")));
        }
        let seed_hex = lines
            .next()
            .ok_or_else(|| malformed("missing key line".into()))?;
        if lines.next().is_some() {
            return Err(malformed("trailing lines after the key".into()));
        }
        let seed = crate::hexser::decode_fixed::<32>(seed_hex)
            .map_err(|e| malformed(format!("key line: {e}")))?;
        Ok(NodeKey::from_seed(seed))
    }
}

impl KeyProvider for FileKeyProvider {
    fn node_key(&self) -> Result<NodeKey, KeyError> {
        match fs::symlink_metadata(&self.path) {
            Ok(_) => self.load(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.create()? {
                Some(k) => Ok(k),
                None => self.load(),
            },
            Err(e) => Err(self.io(e)),
        }
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}

/// A deterministic key derived from a label. NOT protected by anything: for tests and demos.
#[derive(Debug, Clone)]
pub struct SimulatedKeyProvider {
    label: String,
}

impl SimulatedKeyProvider {
    pub fn new(label: impl Into<String>) -> Self {
        SimulatedKeyProvider {
            label: label.into(),
        }
    }
}

impl KeyProvider for SimulatedKeyProvider {
    fn node_key(&self) -> Result<NodeKey, KeyError> {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"cocoon-simulated-node-key:")
            .chain_update(self.label.as_bytes())
            .finalize()
            .into();
        Ok(NodeKey::from_seed(seed))
    }

    fn describe(&self) -> String {
        format!("SIMULATED key (label {:?}, not confidential)", self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_key_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = FileKeyProvider::new(dir.path().join("node.key"));
        let k1 = p.node_key().unwrap();
        let mode = fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = p.node_key().unwrap();
        assert_eq!(k1.public_key(), k2.public_key());
    }

    #[test]
    fn file_key_rejects_loose_permissions_and_bad_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let p = FileKeyProvider::new(&path);
        p.node_key().unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(p.node_key(), Err(KeyError::Permissions { .. })));

        for bad in [
            "".to_string(),
            "cocoon-node-key v1\n".to_string(),
            "cocoon-node-key v1\nabcd\n".to_string(),
            format!("cocoon-node-key v2\n{}\n", "00".repeat(32)),
            format!("cocoon-node-key v1\n{}\nextra\n", "00".repeat(32)),
            format!("cocoon-node-key v1\n{}\n", "zz".repeat(32)),
            "x".repeat(10_000),
        ] {
            fs::write(&path, bad.as_bytes()).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                matches!(p.node_key(), Err(KeyError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn simulated_key_is_deterministic_and_labelled() {
        let a = SimulatedKeyProvider::new("a");
        assert_eq!(
            a.node_key().unwrap().public_key(),
            a.node_key().unwrap().public_key()
        );
        assert_ne!(
            a.node_key().unwrap().public_key(),
            SimulatedKeyProvider::new("b")
                .node_key()
                .unwrap()
                .public_key()
        );
        assert!(a.describe().contains("SIMULATED"));
    }
}
