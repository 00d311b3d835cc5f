//! The ACPI blobs QEMU serves over fw_cfg, which OVMF's `QemuFwCfgAcpiPlatformDxe` measures
//! into RTMR0 (`EV_PLATFORM_CONFIG_FLAGS`, one event per blob, digest = SHA-384 of the blob).
//!
//! They depend on the VM (vCPUs, memory, devices, QEMU version), so they are an input: a
//! directory holding `etc/table-loader`, `etc/acpi/rsdp` and `etc/acpi/tables` exactly as QEMU
//! generated them for the VM shape (e.g. dumped from a QEMU started with the same command line).

use std::path::{Path, PathBuf};

/// Upper bound on one blob (QEMU's tables are a few hundred KiB at most).
pub const MAX_BLOB_BYTES: u64 = 16 << 20;
/// One `BiosLinkerLoaderEntry` of the table-loader script.
const LOADER_COMMAND_BYTES: usize = 128;

/// The three blobs, in the order OVMF measures them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiBlobs {
    pub table_loader: Vec<u8>,
    pub rsdp: Vec<u8>,
    pub tables: Vec<u8>,
}

/// What is wrong with an ACPI blob directory.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {MAX_BLOB_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// The relative paths of the blobs inside the directory, in measurement order.
pub const BLOB_NAMES: [&str; 3] = ["etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables"];

fn read_limited(path: &Path) -> Result<Vec<u8>, AcpiError> {
    let io = |error| AcpiError::Io {
        path: path.to_path_buf(),
        error,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_BLOB_BYTES {
        return Err(AcpiError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    std::fs::read(path).map_err(io)
}

impl AcpiBlobs {
    /// Reads and sanity-checks the blobs: the loader script is a non-empty sequence of
    /// 128-byte commands, the RSDP starts with `"RSD PTR "` and is 20 (ACPI 1.0) or 36 bytes,
    /// the tables blob is non-empty.
    pub fn load(dir: &Path) -> Result<Self, AcpiError> {
        let [l, r, t] = BLOB_NAMES.map(|n| dir.join(n));
        let blobs = Self {
            table_loader: read_limited(&l)?,
            rsdp: read_limited(&r)?,
            tables: read_limited(&t)?,
        };
        let bad = |path: &PathBuf, reason: &str| AcpiError::Malformed {
            path: path.clone(),
            reason: reason.into(),
        };
        if blobs.table_loader.is_empty() || blobs.table_loader.len() % LOADER_COMMAND_BYTES != 0 {
            return Err(bad(&l, "not a sequence of 128-byte table-loader commands"));
        }
        if !blobs.rsdp.starts_with(b"RSD PTR ") || !matches!(blobs.rsdp.len(), 20 | 36) {
            return Err(bad(
                &r,
                "not an RSDP (\"RSD PTR \" signature, 20 or 36 bytes)",
            ));
        }
        if blobs.tables.is_empty() {
            return Err(bad(&t, "empty"));
        }
        Ok(blobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn write_blobs(dir: &Path, loader: &[u8], rsdp: &[u8], tables: &[u8]) {
        std::fs::create_dir_all(dir.join("etc/acpi")).unwrap();
        std::fs::write(dir.join("etc/table-loader"), loader).unwrap();
        std::fs::write(dir.join("etc/acpi/rsdp"), rsdp).unwrap();
        std::fs::write(dir.join("etc/acpi/tables"), tables).unwrap();
    }

    #[test]
    fn loads_and_validates() {
        let d = std::env::temp_dir().join(format!("cocoon-acpi-test-{}", std::process::id()));
        let mut rsdp = b"RSD PTR ".to_vec();
        rsdp.resize(36, 1);
        write_blobs(&d, &[0u8; 256], &rsdp, b"DSDT....");
        let b = AcpiBlobs::load(&d).unwrap();
        assert_eq!(b.rsdp.len(), 36);
        write_blobs(&d, &[0u8; 100], &rsdp, b"DSDT");
        assert!(matches!(
            AcpiBlobs::load(&d),
            Err(AcpiError::Malformed { .. })
        ));
        write_blobs(&d, &[0u8; 128], b"RSD PTX ", b"DSDT");
        assert!(matches!(
            AcpiBlobs::load(&d),
            Err(AcpiError::Malformed { .. })
        ));
        std::fs::remove_file(d.join("etc/acpi/tables")).unwrap();
        assert!(matches!(AcpiBlobs::load(&d), Err(AcpiError::Io { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
