//! The host-control endpoint: a read-only HTTP/1.1 service that tells the host operator how
//! the agent is doing, without revealing anything about the requests it serves.
//!
//! Transports ([`listen`]): AF_VSOCK (`serve --control-vsock-port PORT`), where only the host
//! (peer CID 2, `VMADDR_CID_HOST`) is served, i.e. callers are authenticated by vsock locality;
//! and, for development and tests, a Unix socket (`--control-unix PATH`, mode 0600, peers of
//! the socket owner's uid or root only).
//!
//! Routes ([`http`]): `GET /status` ([`status::StatusReport`]: readiness, mode, model id and
//! SHA-256, RTMR3, the current RA-TLS certificate, uptime, queue, counters, version) and
//! `GET /logs?lines=N` (the agent's most recent log lines from [`log_ring`], N <= 1000).
//!
//! Invariants: nothing here can change the agent (only GET/HEAD routes exist and they only
//! read); nothing here exposes request content (status holds counters, logs hold what the log
//! statements write, which is sizes and counts, never prompts or completions); the endpoint is
//! bound only after the agent measured itself into RTMR3.

pub mod http;
pub mod listen;
pub mod log_ring;
pub mod status;

use std::path::PathBuf;

/// The vsock port the image's start script passes as `--control-vsock-port`, and the one
/// `cocoon-host status|logs` connects to by default.
pub const DEFAULT_VSOCK_PORT: u32 = 5000;

/// Where the control endpoint listens (both may be set; neither means no endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlConfig {
    /// AF_VSOCK port, any local CID; only the host's CID is served.
    pub vsock_port: Option<u32>,
    /// Unix socket path (development and tests).
    pub unix: Option<PathBuf>,
}

impl ControlConfig {
    pub fn is_enabled(&self) -> bool {
        self.vsock_port.is_some() || self.unix.is_some()
    }
}

/// Why the control endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control endpoint: binding vsock port {port} (any CID): {source}")]
    BindVsock {
        port: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("control endpoint: {path}: {what}: {source}")]
    Unix {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("control endpoint: {path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
}
