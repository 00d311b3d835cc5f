//! Per-instance resources: the pid file that claims instance N (and with it guest CID 100+N)
//! and the agent's host port.
//!
//! Invariant: at most one live process holds `STATE_DIR/instances/instance-N.pid`; the file is
//! created with `create_new`, and a file whose pid has no `/proc/PID` (under the host root) is
//! stale and replaced.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};

use crate::root::HostRoot;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("instance {instance} (guest CID {cid}) is taken: process {pid} holds {path}; stop it or pick another --instance")]
    Taken {
        instance: u32,
        cid: u32,
        pid: u32,
        path: PathBuf,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("agent port {addr}:{port} is taken ({source}); stop what listens there or pick another --instance")]
    PortTaken {
        addr: IpAddr,
        port: u16,
        #[source]
        source: io::Error,
    },
}

pub fn pid_file(state_dir: &Path, instance: u32) -> PathBuf {
    state_dir
        .join("instances")
        .join(format!("instance-{instance}.pid"))
}

/// The live pid holding the pid file, if any. An unreadable or garbled file counts as stale.
pub fn holder(root: &HostRoot, state_dir: &Path, instance: u32) -> Option<u32> {
    let text = fs::read_to_string(pid_file(state_dir, instance)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    root.exists(&format!("/proc/{pid}")).then_some(pid)
}

/// Held claim on an instance; dropping it removes the pid file.
#[derive(Debug)]
pub struct InstanceLock {
    path: PathBuf,
}

impl InstanceLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Claims `instance` for the current process.
pub fn acquire(
    root: &HostRoot,
    state_dir: &Path,
    instance: u32,
    cid: u32,
) -> Result<InstanceLock, InstanceError> {
    let path = pid_file(state_dir, instance);
    let io_err = |source| InstanceError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                writeln!(f, "{}", std::process::id()).map_err(io_err)?;
                return Ok(InstanceLock { path });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Some(pid) = holder(root, state_dir, instance) {
                    return Err(InstanceError::Taken {
                        instance,
                        cid,
                        pid,
                        path,
                    });
                }
                // Stale: its process is gone.
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(io_err(io::Error::other(
        "another launch keeps re-creating the pid file",
    )))
}

/// Whether a TCP listener can bind `addr:port` now.
pub fn check_port(addr: IpAddr, port: u16) -> Result<(), InstanceError> {
    TcpListener::bind((addr, port))
        .map(drop)
        .map_err(|source| InstanceError::PortTaken { addr, port, source })
}
