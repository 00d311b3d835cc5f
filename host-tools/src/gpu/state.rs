//! The record of what a GPU group was bound to before `gpu bind`, so `gpu unbind` can restore it.
//! One JSON file per GPU: `STATE_DIR/gpu/BDF.json`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A record is a few hundred bytes; larger files are not ours.
const MAX_STATE_FILE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    pub bdf: String,
    /// The driver it was bound to before, `None` when it had none.
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRecord {
    pub gpu: String,
    pub iommu_group: String,
    pub devices: Vec<DeviceRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a bind record: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

pub fn record_path(state_dir: &Path, gpu: &str) -> PathBuf {
    state_dir.join("gpu").join(format!("{gpu}.json"))
}

/// Loads the record for `gpu`, `Ok(None)` when there is none.
pub fn load(state_dir: &Path, gpu: &str) -> Result<Option<BindRecord>, StateError> {
    let path = record_path(state_dir, gpu);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    if meta.len() > MAX_STATE_FILE {
        return Err(StateError::Corrupt {
            path,
            reason: format!("{} bytes, more than {MAX_STATE_FILE}", meta.len()),
        });
    }
    let bytes = fs::read(&path).map_err(|source| StateError::Io {
        path: path.clone(),
        source,
    })?;
    let rec: BindRecord = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if rec.gpu != gpu {
        return Err(StateError::Corrupt {
            path,
            reason: format!("it names GPU {}", rec.gpu),
        });
    }
    Ok(Some(rec))
}

/// Writes the record atomically (temp file + rename).
pub fn save(state_dir: &Path, rec: &BindRecord) -> Result<(), StateError> {
    let path = record_path(state_dir, &rec.gpu);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    let dir = state_dir.join("gpu");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(rec).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    fs::write(&tmp, json).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

pub fn remove(state_dir: &Path, gpu: &str) -> Result<(), StateError> {
    let path = record_path(state_dir, gpu);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let rec = BindRecord {
            gpu: "0000:17:00.0".into(),
            iommu_group: "7".into(),
            devices: vec![DeviceRecord {
                bdf: "0000:17:00.0".into(),
                driver: Some("nvidia".into()),
            }],
        };
        save(dir.path(), &rec).unwrap();
        assert_eq!(load(dir.path(), "0000:17:00.0").unwrap(), Some(rec));
        assert_eq!(load(dir.path(), "0000:18:00.0").unwrap(), None);

        let p = record_path(dir.path(), "0000:17:00.0");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            load(dir.path(), "0000:17:00.0"),
            Err(StateError::Corrupt { .. })
        ));
        fs::write(
            &p,
            text.replace("0000:17:00.0\",\n  \"iommu", "0000:99:00.0\",\n  \"iommu"),
        )
        .unwrap();
        assert!(matches!(
            load(dir.path(), "0000:17:00.0"),
            Err(StateError::Corrupt { .. })
        ));
        fs::write(&p, vec![b' '; (MAX_STATE_FILE + 1) as usize]).unwrap();
        assert!(matches!(
            load(dir.path(), "0000:17:00.0"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
