//! The host root: every host path (`/sys/...`, `/proc/...`, `/dev/...`, `/run/...`) is read
//! through a [`HostRoot`], so tests point the tool at a fake tree they build in a temp dir.
//!
//! Invariant: a host path given to [`HostRoot::path`] is absolute and has no `..` component;
//! it is joined below the root and can never escape it.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Files read from the host tree are small text files; anything larger is refused.
pub const MAX_HOST_FILE: u64 = 4 << 20;

/// Errors reading the host tree.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("host path {0:?} must be absolute and must not contain `..`")]
    BadPath(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: file is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
}

impl RootError {
    /// True when the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(self, RootError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// A directory standing for `/` on the host (`/` in production).
#[derive(Debug, Clone)]
pub struct HostRoot {
    base: PathBuf,
}

impl HostRoot {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        HostRoot { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Maps a host path such as `/sys/kernel/iommu_groups` to its place below the root.
    pub fn path(&self, host_path: &str) -> Result<PathBuf, RootError> {
        let p = Path::new(host_path);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(RootError::BadPath(host_path.to_string()));
        }
        let mut out = self.base.clone();
        for c in p.components() {
            if let Component::Normal(part) = c {
                out.push(part);
            }
        }
        Ok(out)
    }

    /// Reads a small text file, trimming trailing whitespace.
    pub fn read_trimmed(&self, host_path: &str) -> Result<String, RootError> {
        let path = self.path(host_path)?;
        read_small(&path).map(|s| s.trim_end().to_string())
    }

    /// Reads a small text file as is.
    pub fn read(&self, host_path: &str) -> Result<String, RootError> {
        let path = self.path(host_path)?;
        read_small(&path)
    }

    pub fn exists(&self, host_path: &str) -> bool {
        self.path(host_path).map(|p| p.exists()).unwrap_or(false)
    }

    /// Names of the entries of a directory, sorted; a missing directory is an error.
    pub fn list_dir(&self, host_path: &str) -> Result<Vec<String>, RootError> {
        let path = self.path(host_path)?;
        let rd = fs::read_dir(&path).map_err(|source| RootError::Io {
            path: path.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| RootError::Io {
                path: path.clone(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The last component of a symlink's target (sysfs `driver`, `iommu_group` links).
    pub fn link_name(&self, host_path: &str) -> Result<String, RootError> {
        let path = self.path(host_path)?;
        let target = fs::read_link(&path).map_err(|source| RootError::Io {
            path: path.clone(),
            source,
        })?;
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| RootError::Io {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "link target has no name"),
            })
    }
}

fn read_small(path: &Path) -> Result<String, RootError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|source| RootError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = Vec::new();
    file.take(MAX_HOST_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|source| RootError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > MAX_HOST_FILE {
        return Err(RootError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_HOST_FILE,
        });
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_below_root_and_refuses_escape() {
        let r = HostRoot::new("/tmp/fake");
        assert_eq!(
            r.path("/sys/kernel").unwrap(),
            PathBuf::from("/tmp/fake/sys/kernel")
        );
        assert!(r.path("sys/kernel").is_err());
        assert!(r.path("/sys/../etc").is_err());
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        fs::write(&f, vec![b'a'; (MAX_HOST_FILE + 1) as usize]).unwrap();
        let r = HostRoot::new(dir.path());
        assert!(matches!(r.read("/big"), Err(RootError::TooLarge { .. })));
    }
}
