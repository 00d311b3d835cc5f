//! The VM shapes a measurement manifest lists (`.shapes[]` of `{cpus, memory_bytes, gpus}`).
//!
//! Deliberately small and isolated: the manifest format belongs to `cocoon-measure`
//! (measurements/), and this module is the one place to switch to that crate's parser. Only the
//! shapes are read; signatures and measurement values are not checked here.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A manifest is a few KiB per shape; refuse anything beyond this before parsing.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Shape {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Number of GPUs passed through.
    pub gpus: u32,
}

#[derive(Debug, Deserialize)]
struct ShapeList {
    shapes: Vec<Shape>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path}: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error(
        "manifest {path}: no readable `.shapes[]` list of {{cpus, memory_bytes, gpus}}: {reason}"
    )]
    Parse { path: PathBuf, reason: String },
}

pub fn read_shapes(path: &Path) -> Result<Vec<Shape>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let list: ShapeList = serde_json::from_slice(&bytes).map_err(|e| ManifestError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(list.shapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shapes_and_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        let good = r#"{"version":1,"shapes":[{"cpus":8,"memory_bytes":68719476736,"gpus":1,"mrtd":"00"}]}"#;
        fs::write(&p, good).unwrap();
        assert_eq!(
            read_shapes(&p).unwrap(),
            vec![Shape {
                cpus: 8,
                memory_bytes: 64 << 30,
                gpus: 1
            }]
        );
        for bad in [
            &good[..good.len() / 2],
            "{}",
            r#"{"shapes":[{"cpus":-1,"memory_bytes":1,"gpus":0}]}"#,
            "",
        ] {
            fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_shapes(&p), Err(ManifestError::Parse { .. })),
                "{bad}"
            );
        }
        let f = fs::File::create(&p).unwrap();
        f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
        assert!(matches!(
            read_shapes(&p),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
