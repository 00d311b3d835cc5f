//! Reading the Ed25519 key files of `cocoon-measure keygen` (64 lowercase hex digits and a
//! newline), for every tool that signs or checks manifests.
//!
//! Invariant: a private key file readable by group or others is refused; a leaked release key
//! lets anyone publish measurements.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{parse_signing_key, parse_verifying_key};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// A key file is one line; anything longer is not a key file.
const MAX_KEY_FILE: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {reason}")]
    Bad {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn read_text(what: &'static str, path: &Path) -> Result<String, KeyFileError> {
    let bad = |reason: &str| KeyFileError::Bad {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
        .map_err(|source| KeyFileError::Io {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(bad("larger than a key file (64 hex digits)"));
    }
    String::from_utf8(bytes).map_err(|_| bad("not text"))
}

/// The public key that must have signed a manifest.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let text = read_text("public key", path)?;
    parse_verifying_key(&text).map_err(|e| KeyFileError::Bad {
        what: "public key",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A release signing key; refused when group or others may read the file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let what = "private key";
    let mode = fs::metadata(path)
        .map_err(|source| KeyFileError::Io {
            what,
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Bad {
            what,
            path: path.to_path_buf(),
            reason: format!(
                "accessible by group or others (mode {:o}); run chmod 600 on it",
                mode & 0o777
            ),
        });
    }
    let text = read_text(what, path)?;
    parse_signing_key(&text).map_err(|e| KeyFileError::Bad {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_files() {
        let d = tempfile::tempdir().unwrap();
        let sk = SigningKey::from_bytes(&[7; 32]);
        let private = d.path().join("k");
        let public = d.path().join("k.pub");
        fs::write(&private, format!("{}\n", hex::encode([7u8; 32]))).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&public, hex::encode(sk.verifying_key().to_bytes())).unwrap();
        assert_eq!(read_signing_key(&private).unwrap().to_bytes(), [7; 32]);
        assert_eq!(read_verifying_key(&public).unwrap(), sk.verifying_key());

        fs::set_permissions(&private, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_signing_key(&private).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        for bad in [
            "",
            "zz",
            &"a".repeat(63),
            &"A".repeat(64),
            &"0".repeat(2000),
        ] {
            fs::write(&public, bad).unwrap();
            assert!(
                matches!(read_verifying_key(&public), Err(KeyFileError::Bad { .. })),
                "{bad}"
            );
        }
        fs::write(&public, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_verifying_key(&public),
            Err(KeyFileError::Bad { .. })
        ));
        assert!(matches!(
            read_verifying_key(&d.path().join("none")),
            Err(KeyFileError::Io { .. })
        ));
    }
}
