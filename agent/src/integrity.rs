//! Model integrity: the model file must hash to the SHA-256 the operator configured.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("--model-sha256 must be 64 hex digits, got {len} characters")]
    BadDigestLength { len: usize },
    #[error("--model-sha256 is not hexadecimal")]
    BadDigestHex,
    #[error("reading model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "model {path} has SHA-256 {actual}, but {expected} was configured: refusing to serve it"
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// Parses a configured digest (64 hex digits, either case).
pub fn parse_digest(hex_text: &str) -> Result<[u8; 32], IntegrityError> {
    let t = hex_text.trim();
    if t.len() != 64 {
        return Err(IntegrityError::BadDigestLength { len: t.len() });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(t, &mut out).map_err(|_| IntegrityError::BadDigestHex)?;
    Ok(out)
}

/// SHA-256 of a file, streamed in 1 MiB reads.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], IntegrityError> {
    let mut f = std::fs::File::open(path).map_err(|source| IntegrityError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    sha256_reader(&mut f, path)
}

fn sha256_reader(f: &mut std::fs::File, path: &Path) -> Result<[u8; 32], IntegrityError> {
    let io = |source| IntegrityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().into())
}

/// A model file whose contents were verified, kept open so that the loader reads the same file
/// (not whatever the path names later).
#[derive(Debug)]
pub struct VerifiedModel {
    file: std::fs::File,
    path: PathBuf,
}

impl VerifiedModel {
    /// Opens `path` once, hashes it through that descriptor and keeps it open.
    pub fn open(path: &Path, expected: &[u8; 32]) -> Result<VerifiedModel, IntegrityError> {
        let mut file = std::fs::File::open(path).map_err(|source| IntegrityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let actual = sha256_reader(&mut file, path)?;
        if &actual != expected {
            return Err(IntegrityError::Mismatch {
                path: path.to_path_buf(),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        Ok(VerifiedModel {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The path the loader should open: on Linux `/proc/self/fd/N` of the verified descriptor
    /// (the same inode even if the original path is replaced afterwards), else the path itself.
    pub fn load_path(&self) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let p = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
            if p.exists() {
                return p;
            }
        }
        self.path.clone()
    }
}

/// Fails unless `path` hashes to `expected`.
pub fn verify(path: &Path, expected: &[u8; 32]) -> Result<(), IntegrityError> {
    VerifiedModel::open(path, expected).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing_rejects_bad_input() {
        assert!(matches!(
            parse_digest("abc"),
            Err(IntegrityError::BadDigestLength { len: 3 })
        ));
        assert!(matches!(
            parse_digest(&"g".repeat(64)),
            Err(IntegrityError::BadDigestHex)
        ));
        assert!(parse_digest(&"Ab".repeat(32)).is_ok());
    }

    #[test]
    fn verify_detects_a_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, b"hello").unwrap();
        // sha256("hello")
        let good = parse_digest("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
            .unwrap();
        verify(&p, &good).unwrap();
        std::fs::write(&p, b"hellp").unwrap();
        assert!(matches!(
            verify(&p, &good),
            Err(IntegrityError::Mismatch { .. })
        ));
        assert!(matches!(
            verify(&dir.path().join("missing"), &good),
            Err(IntegrityError::Io { .. })
        ));
        assert!(matches!(
            VerifiedModel::open(&p, &good),
            Err(IntegrityError::Mismatch { .. })
        ));
    }

    #[test]
    fn the_verified_descriptor_survives_a_swapped_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, b"hello").unwrap();
        let good = parse_digest("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
            .unwrap();
        let v = VerifiedModel::open(&p, &good).unwrap();
        // Replace the file behind the path: the loader still reads the verified bytes.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"evil!").unwrap();
        assert_eq!(std::fs::read(v.load_path()).unwrap(), b"hello");
    }
}
