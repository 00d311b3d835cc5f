//! The control endpoint's listeners and who they serve.
//!
//! * AF_VSOCK on any local CID: a connection is served only when its peer CID is
//!   `VMADDR_CID_HOST` (2); any other peer (another VM, a process in this VM over the loopback
//!   CID) is closed unanswered and logged. The host is authenticated by vsock locality alone.
//! * A Unix socket (development and tests): created with mode 0600 (an existing socket file is
//!   replaced, anything else refused), and a connection is served only when the peer's uid
//!   (SO_PEERCRED) is the socket file's owner (the agent's uid) or root.
//!
//! At most [`MAX_CONNECTIONS`] control connections are served at once.

use super::http::serve_connection;
use super::status::Sources;
use super::ControlError;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_vsock::{VsockAddr, VsockListener, VMADDR_CID_ANY, VMADDR_CID_HOST};

/// Concurrent control connections.
pub const MAX_CONNECTIONS: usize = 8;

/// Whether a vsock peer may use the control endpoint: only the host.
pub fn vsock_peer_allowed(peer_cid: u32) -> bool {
    peer_cid == VMADDR_CID_HOST
}

/// Whether a Unix-socket peer may use it: the socket's owner or root.
pub fn unix_peer_allowed(peer_uid: u32, owner_uid: u32) -> bool {
    peer_uid == owner_uid || peer_uid == 0
}

/// Binds the vsock listener (fails start-up when the port is unavailable).
pub fn bind_vsock(port: u32) -> Result<VsockListener, ControlError> {
    VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port))
        .map_err(|source| ControlError::BindVsock { port, source })
}

/// A bound Unix listener and the uid that owns its socket file.
pub struct UnixControl {
    listener: UnixListener,
    path: PathBuf,
    owner_uid: u32,
}

/// Binds the Unix socket with mode 0600 (see the module documentation).
pub fn bind_unix(path: &Path) -> Result<UnixControl, ControlError> {
    let err = |what, source| ControlError::Unix {
        path: path.to_path_buf(),
        what,
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| err("removing the old socket", e))?
        }
        Ok(_) => {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("reading", e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| err("binding", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err("setting mode 0600", e))?;
    let owner_uid = std::fs::metadata(path)
        .map_err(|e| err("reading", e))?
        .uid();
    Ok(UnixControl {
        listener,
        path: path.to_path_buf(),
        owner_uid,
    })
}

/// Serves the vsock listener until the task is aborted.
pub fn spawn_vsock(listener: VsockListener, sources: Arc<Sources>) -> JoinHandle<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "control endpoint: vsock accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !vsock_peer_allowed(peer.cid()) {
                tracing::warn!(
                    peer_cid = peer.cid(),
                    peer_port = peer.port(),
                    "control endpoint: refused a vsock peer that is not the host (CID 2)"
                );
                continue;
            }
            let sources = sources.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(
                    stream,
                    sources,
                    format!("vsock:{}:{}", peer.cid(), peer.port()),
                )
                .await;
            });
        }
    })
}

/// Serves the Unix listener until the task is aborted; the socket file is removed when the
/// task ends.
pub fn spawn_unix(control: UnixControl, sources: Arc<Sources>) -> JoinHandle<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let _cleanup = RemoveOnDrop(control.path.clone());
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let stream = match control.listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control endpoint: unix accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let uid = match stream.peer_cred() {
                Ok(cred) => cred.uid(),
                Err(e) => {
                    tracing::warn!(error = %e, "control endpoint: no peer credentials; closing");
                    continue;
                }
            };
            if !unix_peer_allowed(uid, control.owner_uid) {
                tracing::warn!(
                    peer_uid = uid,
                    "control endpoint: refused a unix peer of another user"
                );
                continue;
            }
            let sources = sources.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(stream, sources, format!("unix:uid={uid}")).await;
            });
        }
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_cid_is_served() {
        assert!(vsock_peer_allowed(2));
        for cid in [0, 1, 3, 100, 101, u32::MAX] {
            assert!(!vsock_peer_allowed(cid), "{cid}");
        }
        assert_eq!(VMADDR_CID_HOST, 2);
    }

    #[test]
    fn unix_peers_are_the_owner_or_root() {
        assert!(unix_peer_allowed(1000, 1000));
        assert!(unix_peer_allowed(0, 1000));
        assert!(!unix_peer_allowed(1001, 1000));
    }

    #[tokio::test]
    async fn unix_socket_is_private_and_replaces_only_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let c = bind_unix(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        drop(c);
        // A stale socket file is replaced ...
        bind_unix(&path).unwrap();
        // ... a regular file is not.
        let file = dir.path().join("file");
        std::fs::write(&file, b"keep").unwrap();
        assert!(matches!(
            bind_unix(&file),
            Err(ControlError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[tokio::test]
    async fn vsock_binds_on_any_cid() {
        // AF_VSOCK may be missing entirely (no vsock module); then binding fails with a
        // message naming the port, which is what `serve` reports.
        match bind_vsock(0xC0C0_0001) {
            Ok(l) => assert_eq!(l.local_addr().unwrap().port(), 0xC0C0_0001),
            Err(e) => assert!(e.to_string().contains("vsock port 3233808385"), "{e}"),
        }
    }
}
