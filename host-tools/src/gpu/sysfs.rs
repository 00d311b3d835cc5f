//! Writes to sysfs control files (`driver_override`, `unbind`, `bind`, `drivers_probe`).
//!
//! Real sysfs writes make the kernel act (rebind a device); a fake tree cannot. So every write
//! goes through [`SysfsWriter`]: production uses [`RealSysfs`], tests use a fake that records the
//! writes and applies the kernel's effect to their tree.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::root::{HostRoot, RootError};

#[derive(Debug, thiserror::Error)]
pub enum SysfsWriteError {
    #[error(transparent)]
    Path(#[from] RootError),
    #[error("writing {value:?} to {path}: {source}")]
    Io {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
}

/// Writes `value` to the sysfs file at `host_path` (an absolute host path such as
/// `/sys/bus/pci/drivers_probe`).
pub trait SysfsWriter {
    fn write(&mut self, host_path: &str, value: &str) -> Result<(), SysfsWriteError>;
}

/// Writes to the real files below a [`HostRoot`]; never creates or truncates a file.
#[derive(Debug, Clone)]
pub struct RealSysfs {
    root: HostRoot,
}

impl RealSysfs {
    pub fn new(root: HostRoot) -> Self {
        RealSysfs { root }
    }
}

impl SysfsWriter for RealSysfs {
    fn write(&mut self, host_path: &str, value: &str) -> Result<(), SysfsWriteError> {
        let path = self.root.path(host_path)?;
        let io_err = |source| SysfsWriteError::Io {
            path: path.clone(),
            value: value.to_string(),
            source,
        };
        let mut f = OpenOptions::new().write(true).open(&path).map_err(io_err)?;
        f.write_all(value.as_bytes()).map_err(io_err)
    }
}
