//! Typed errors of the TDX provider and the simulated TD; each names the path and the problem.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TdxError {
    /// An I/O operation on one of the TDX interfaces failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An interface returned data that does not have the expected shape.
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    /// The configfs-tsm entry is served by a provider other than `tdx_guest`.
    #[error("{}: TSM provider is {found:?}, expected \"tdx_guest\"", path.display())]
    WrongProvider { path: PathBuf, found: String },
    /// Another writer changed the configfs-tsm entry while our request was in flight, on
    /// every attempt.
    #[error(
        "{}: generation went from {before} to {after} during the request (another writer raced us) in {attempts} attempts",
        path.display()
    )]
    GenerationRace {
        path: PathBuf,
        before: u64,
        after: u64,
        attempts: u32,
    },
    /// The TDX_CMD_GET_REPORT0 ioctl failed.
    #[error("TDX_CMD_GET_REPORT0 ioctl on {}: {errno}", path.display())]
    Ioctl {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    /// A TDX guest interface does not exist: not a TDX guest, or a kernel without it.
    #[error("no {what} at {}: {hint}", path.display())]
    InterfaceMissing {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    /// The simulated TD could not be set up or its mock PKI could not issue a certificate.
    #[error("simulated TD: {0}")]
    Simulated(String),
}

impl TdxError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TdxError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        TdxError::Invalid {
            path: path.into(),
            what: what.into(),
        }
    }
}
