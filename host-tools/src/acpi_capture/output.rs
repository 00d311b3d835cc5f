//! Writes captured blobs as an ACPI directory (`etc/table-loader`, `etc/acpi/rsdp`,
//! `etc/acpi/tables`: the layout `measure --acpi-dir` and `publish --shape ...:ACPI_DIR`
//! read).
//!
//! Invariant: `DIR` appears complete or not at all: the files are written and synced into
//! `DIR.tmp`, loaded back with [`AcpiBlobs::load`], and only then renamed to `DIR`. An existing
//! non-empty `DIR` is refused unless `force` is given.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cocoon_measure::acpi::{AcpiBlobs, AcpiError};

use super::serial::CapturedFile;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0} exists and is not empty: pass --force to replace it")]
    Exists(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotDir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the captured blobs do not load as an ACPI directory: {0}")]
    Load(#[source] AcpiError),
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses `dir` when it exists and is not an empty directory (unless `force`). Checked before
/// the capture starts, and again before the rename.
pub fn check_target(dir: &Path, force: bool) -> Result<(), OutputError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(dir)(e)),
        Ok(m) if !m.is_dir() => Err(OutputError::NotDir(dir.to_path_buf())),
        Ok(_) if force => Ok(()),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(io_at(dir))?;
            if entries.next().is_some() {
                Err(OutputError::Exists(dir.to_path_buf()))
            } else {
                Ok(())
            }
        }
    }
}

/// `dir` without a trailing `/` or `.` component, so `DIR.tmp` is a sibling, not a child.
fn normalize(dir: &Path) -> PathBuf {
    dir.components().collect()
}

/// The temporary sibling `DIR.tmp`.
pub fn temp_dir(dir: &Path) -> PathBuf {
    let mut name = normalize(dir).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), OutputError> {
    let mut f = fs::File::create(path).map_err(io_at(path))?;
    f.write_all(data).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

/// Writes `files` into `dir` (see the module invariant) and returns what loaded back.
pub fn write_dir(
    dir: &Path,
    files: &[CapturedFile],
    force: bool,
) -> Result<AcpiBlobs, OutputError> {
    let dir = &normalize(dir);
    check_target(dir, force)?;
    let tmp = temp_dir(dir);
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp).map_err(io_at(&tmp))?;
    }
    let result = (|| {
        for f in files {
            let path = tmp.join(f.name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            write_synced(&path, &f.data)?;
        }
        let blobs = AcpiBlobs::load(&tmp).map_err(OutputError::Load)?;
        check_target(dir, force)?;
        if fs::symlink_metadata(dir).is_ok() {
            fs::remove_dir_all(dir).map_err(io_at(dir))?;
        }
        fs::rename(&tmp, dir).map_err(io_at(dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename durable; a failure here leaves a complete directory anyway.
            let _ = fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(blobs)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(seed: u8) -> Vec<CapturedFile> {
        let mut rsdp = b"RSD PTR ".to_vec();
        rsdp.resize(36, seed);
        [
            ("etc/table-loader", vec![seed; 256]),
            ("etc/acpi/rsdp", rsdp),
            ("etc/acpi/tables", vec![seed; 1000]),
        ]
        .into_iter()
        .map(|(name, data)| CapturedFile {
            name,
            sha256: [0; 32],
            data,
        })
        .collect()
    }

    #[test]
    fn writes_a_sibling_temp_then_renames() {
        let d = tempfile::tempdir().unwrap();
        // A trailing slash must not put the temporary directory inside DIR.
        let out = d.path().join("acpi");
        let with_slash = PathBuf::from(format!("{}/", out.display()));
        assert_eq!(temp_dir(&with_slash), d.path().join("acpi.tmp"));
        let blobs = write_dir(&with_slash, &files(1), false).unwrap();
        assert_eq!(blobs.rsdp.len(), 36);
        assert_eq!(AcpiBlobs::load(&out).unwrap(), blobs);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["acpi"]);
        assert!(matches!(
            write_dir(&out, &files(2), false),
            Err(OutputError::Exists(_))
        ));
        write_dir(&out, &files(2), true).unwrap();
        assert_eq!(
            fs::read(out.join("etc/table-loader")).unwrap(),
            vec![2; 256]
        );
        // Files that do not load leave the old directory as it was, and no temporary one.
        let mut bad = files(3);
        bad[0].data = vec![3; 100];
        assert!(matches!(
            write_dir(&out, &bad, true),
            Err(OutputError::Load(_))
        ));
        assert_eq!(
            fs::read(out.join("etc/table-loader")).unwrap(),
            vec![2; 256]
        );
        assert!(!d.path().join("acpi.tmp").exists());
    }
}
