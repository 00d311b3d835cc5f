//! Measurement manifests (format `cocoon-measure-manifest/v1`, parsed and checked by the
//! `cocoon-measure` library): loading with an optional signature check, finding the entry of a
//! VM shape, and checking that the release files on this host are the manifest's.
//!
//! Invariant: a [`Manifest`] returned by [`load`] passed `Manifest::parse` (canonical form,
//! internal consistency) and, when a key was given, `Manifest::verify` against that key.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cocoon_measure::manifest::{self, Manifest, ShapeEntry, MAX_MANIFEST_BYTES};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::boot::{BootSpec, VmShape};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("manifest {path}: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("manifest {path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: manifest::ManifestError,
    },
}

/// Reads, parses and (with `key`) verifies a manifest file.
pub fn load(path: &Path, key: Option<&VerifyingKey>) -> Result<Manifest, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let invalid = |source| ManifestError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    match key {
        Some(k) => Manifest::parse_verified(&bytes, k).map_err(invalid),
        None => Manifest::parse(&bytes).map_err(invalid),
    }
}

/// The first entry for `shape` (vCPUs, memory bytes, GPU count).
pub fn shape_entry<'a>(m: &'a Manifest, shape: &VmShape) -> Option<&'a ShapeEntry> {
    m.body
        .shapes
        .iter()
        .find(|s| shape.matches(s.cpus, s.memory_bytes, s.gpus))
}

/// The shapes of a manifest, for messages: `name (8 vCPUs, 65536 MiB, 1 GPU(s))`.
pub fn list_shapes(m: &Manifest) -> String {
    let list: Vec<String> = m
        .body
        .shapes
        .iter()
        .map(|s| {
            format!(
                "{} ({} vCPUs, {} MiB, {} GPU(s))",
                s.name,
                s.cpus,
                s.memory_bytes >> 20,
                s.gpus
            )
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(h.finalize().into())
}

/// A release file or the command line differs from what the manifest was built from.
#[derive(Debug, thiserror::Error)]
pub enum ImageMismatch {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} has SHA-256 {actual}, the manifest's release has {expected}: the TD would not report the published measurements")]
    File {
        what: &'static str,
        path: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("the manifest's release has no initrd, but {path} is given")]
    UnexpectedInitrd { path: PathBuf },
    #[error("kernel command line {actual:?} differs from the manifest's {expected:?}: the TD would not report the published measurements")]
    Cmdline { actual: String, expected: String },
}

/// Checks firmware, kernel, initrd and command line of `spec` against the manifest's image.
pub fn check_image(m: &Manifest, spec: &BootSpec) -> Result<(), ImageMismatch> {
    let image = &m.body.image;
    let files: [(&'static str, &Path, Option<[u8; 32]>); 3] = [
        ("firmware", &spec.firmware, Some(image.firmware_sha256)),
        ("kernel", &spec.kernel, Some(image.kernel_sha256)),
        ("initrd", &spec.initrd, image.initrd_sha256),
    ];
    for (what, path, expected) in files {
        let Some(expected) = expected else {
            return Err(ImageMismatch::UnexpectedInitrd {
                path: path.to_path_buf(),
            });
        };
        let actual = sha256_file(path).map_err(|source| ImageMismatch::Io {
            what,
            path: path.to_path_buf(),
            source,
        })?;
        if actual != expected {
            return Err(ImageMismatch::File {
                what,
                path: path.to_path_buf(),
                actual: hex::encode(actual),
                expected: hex::encode(expected),
            });
        }
    }
    if spec.cmdline() != image.cmdline {
        return Err(ImageMismatch::Cmdline {
            actual: spec.cmdline().to_string(),
            expected: image.cmdline.clone(),
        });
    }
    Ok(())
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use cocoon_measure::boot::BootMeasurements;
    use cocoon_measure::manifest::{ImageFiles, ReleaseInfo, ShapeBuild};
    use cocoon_measure::{replay, sha384, Event, Rtmr};

    /// A consistent manifest for files `fw`, `k`, `i` in `dir` (initrd optional) and shapes
    /// 2 vCPU / 2 GiB / 0 GPUs and 8 / 64 GiB / 1.
    fn manifest(dir: &Path, with_initrd: bool) -> Manifest {
        let sha = |n: &str| sha256_file(&dir.join(n)).unwrap();
        let shapes = [("a", 2, 2u64 << 30, 0), ("b", 8, 64 << 30, 1)]
            .map(|(name, cpus, memory_bytes, gpus)| {
                let events = vec![
                    Event {
                        rtmr: Rtmr::Rtmr0,
                        event_type: 1,
                        digest: sha384(name.as_bytes()),
                        description: "x".into(),
                        source: "acpi",
                    },
                    Event {
                        rtmr: Rtmr::Rtmr1,
                        event_type: 1,
                        digest: sha384(b"k"),
                        description: "x".into(),
                        source: "kernel",
                    },
                ];
                let r = replay(&events);
                ShapeBuild {
                    name: name.into(),
                    shape: cocoon_measure::boot::VmShape {
                        cpus,
                        memory_bytes,
                        gpus,
                    },
                    acpi: vec![],
                    measurements: BootMeasurements {
                        mrtd: [1; 48],
                        rtmr0: Some(r[0].value()),
                        rtmr1: r[1].value(),
                        rtmr2: r[2].value(),
                        events,
                    },
                }
            })
            .to_vec();
        let body = manifest::build(
            ReleaseInfo {
                release: "r".into(),
                commit: "abcdef0".into(),
                td: Default::default(),
            },
            ImageFiles {
                firmware_sha256: sha("fw"),
                kernel_sha256: sha("k"),
                initrd_sha256: with_initrd.then(|| sha("i")),
                cmdline: "c".into(),
            },
            shapes,
            None,
        )
        .unwrap();
        Manifest {
            body,
            signature: None,
        }
    }

    #[test]
    fn shapes_and_image_checks() {
        let d = tempfile::tempdir().unwrap();
        for n in ["fw", "k", "i"] {
            fs::write(d.path().join(n), n).unwrap();
        }
        let m = manifest(d.path(), true);
        let shape = VmShape::new(8, 64 << 30, 1).unwrap();
        assert_eq!(shape_entry(&m, &shape).unwrap().name, "b");
        assert!(shape_entry(&m, &VmShape::new(8, 64 << 30, 0).unwrap()).is_none());
        assert_eq!(
            list_shapes(&m),
            "a (2 vCPUs, 2048 MiB, 0 GPU(s)), b (8 vCPUs, 65536 MiB, 1 GPU(s))"
        );
        let spec = |cmdline: &str| {
            BootSpec::new(
                d.path().join("fw"),
                d.path().join("k"),
                d.path().join("i"),
                cmdline.into(),
                shape,
            )
            .unwrap()
        };
        check_image(&m, &spec("c")).unwrap();
        assert!(matches!(
            check_image(&m, &spec("c d")),
            Err(ImageMismatch::Cmdline { .. })
        ));
        fs::write(d.path().join("i"), "other").unwrap();
        assert!(matches!(
            check_image(&m, &spec("c")),
            Err(ImageMismatch::File { what: "initrd", .. })
        ));
        fs::remove_file(d.path().join("fw")).unwrap();
        assert!(matches!(
            check_image(&m, &spec("c")),
            Err(ImageMismatch::Io {
                what: "firmware",
                ..
            })
        ));
        fs::write(d.path().join("fw"), "fw").unwrap();
        let no_initrd = manifest(d.path(), false);
        assert!(matches!(
            check_image(&no_initrd, &spec("c")),
            Err(ImageMismatch::UnexpectedInitrd { .. })
        ));
    }

    #[test]
    fn load_checks_form_size_and_signature() {
        let d = tempfile::tempdir().unwrap();
        for n in ["fw", "k", "i"] {
            fs::write(d.path().join(n), n).unwrap();
        }
        let mut m = manifest(d.path(), true);
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let p = d.path().join("m.json");
        fs::write(&p, m.to_json()).unwrap();
        assert_eq!(load(&p, None).unwrap(), m);
        assert!(matches!(
            load(&p, Some(&key.verifying_key())),
            Err(ManifestError::Invalid {
                source: manifest::ManifestError::Unsigned,
                ..
            })
        ));
        m.sign(&key);
        let text = m.to_json();
        fs::write(&p, &text).unwrap();
        assert_eq!(load(&p, Some(&key.verifying_key())).unwrap(), m);
        assert!(matches!(
            load(&p, Some(&other.verifying_key())),
            Err(ManifestError::Invalid {
                source: manifest::ManifestError::WrongKey { .. },
                ..
            })
        ));
        // Every truncation is refused, never a panic.
        for cut in (0..text.len()).step_by(97) {
            fs::write(&p, &text[..cut]).unwrap();
            assert!(load(&p, None).is_err(), "cut at {cut}");
        }
        let f = fs::File::create(&p).unwrap();
        f.set_len(MAX_MANIFEST_BYTES as u64 + 1).unwrap();
        assert!(matches!(
            load(&p, None),
            Err(ManifestError::TooLarge { .. })
        ));
        assert!(matches!(
            load(&d.path().join("none"), None),
            Err(ManifestError::Io { .. })
        ));
    }
}
