//! `cocoon-host verify-running`: connect to a running worker's RA-TLS port and check its
//! certificate with the measurements crate's verifier against the release manifest.
//!
//! The handshake uses `cocoon_measure::ratls::tls::client_config` (TLS 1.3 only, no session
//! resumption), so the worker is judged exactly as proxies and `cocoon-measure gateway` judge
//! it; the result is the verifier's [`AcceptedIdentity`] or its [`Refusal`] text. Nothing is
//! sent after the handshake.
//!
//! Invariant: connecting and the handshake are bounded by one timeout each; a worker that
//! stalls is reported as a timeout, never waited on forever.

use cocoon_measure::ratls::{tls, AcceptedIdentity, RatlsVerifier};
use rustls::pki_types::ServerName;
use serde::Serialize;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Default time allowed for connecting, and then for the handshake (first collateral fetch
/// from a PCCS included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{addr}: cannot resolve: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {addr}: {source}: is the VM running and its agent port forwarded?")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{addr}: the TLS handshake did not finish within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("{addr}: TLS handshake failed (not a certificate refusal): {source}")]
    Handshake {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS client configuration: {0}")]
    Config(rustls::Error),
}

/// What the worker at an address proved, or why the verifier refused it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Accepted(Arc<AcceptedIdentity>),
    Refused(String),
}

/// The `--json` form of an [`Outcome`].
#[derive(Debug, Serialize)]
pub struct Report {
    pub addr: String,
    pub accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IdentityJson {
    pub release: String,
    pub shape: String,
    pub mode: String,
    pub config_sha256: String,
    pub model_sha256: String,
    pub tcb_status: String,
    pub advisory_ids: Vec<String>,
    pub simulated_root: bool,
    pub cert_sha256: String,
    pub not_before: i64,
    pub not_after: i64,
    pub config: serde_json::Value,
}

impl Report {
    pub fn new(addr: &str, outcome: &Outcome) -> Report {
        match outcome {
            Outcome::Accepted(id) => Report {
                addr: addr.to_string(),
                accepted: true,
                identity: Some(IdentityJson {
                    release: id.release.clone(),
                    shape: id.shape.clone(),
                    mode: id.mode.clone(),
                    config_sha256: hex::encode(id.config_sha256),
                    model_sha256: hex::encode(id.model_sha256),
                    tcb_status: id.tcb_status.clone(),
                    advisory_ids: id.advisory_ids.clone(),
                    simulated_root: id.simulated_root,
                    cert_sha256: hex::encode(id.cert_sha256),
                    not_before: id.not_before,
                    not_after: id.not_after,
                    config: id.config.clone(),
                }),
                refusal: None,
            },
            Outcome::Refused(reason) => Report {
                addr: addr.to_string(),
                accepted: false,
                identity: None,
                refusal: Some(reason.clone()),
            },
        }
    }
}

/// The text lines for the operator.
pub fn text(addr: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted(id) => {
            let mut out = format!("ACCEPTED: the worker at {addr} is a measured COCOON worker\n");
            let advisories = if id.advisory_ids.is_empty() {
                String::new()
            } else {
                format!(" (advisories {})", id.advisory_ids.join(", "))
            };
            let rows = [
                ("release", id.release.clone()),
                ("shape", id.shape.clone()),
                (
                    "mode",
                    if id.simulated_root || id.mode == "simulated" {
                        format!(
                            "{} (SIMULATED: not confidential, development only)",
                            id.mode
                        )
                    } else {
                        id.mode.clone()
                    },
                ),
                ("config sha256", hex::encode(id.config_sha256)),
                ("model sha256", hex::encode(id.model_sha256)),
                ("TCB status", format!("{}{advisories}", id.tcb_status)),
                ("certificate", hex::encode(id.cert_sha256)),
                ("valid until", id.not_after.to_string()),
            ];
            for (k, v) in rows {
                out.push_str(&format!("  {k:<14} {v}\n"));
            }
            out
        }
        Outcome::Refused(reason) => format!("REFUSED: the worker at {addr}: {reason}\n"),
    }
}

/// Connects to `addr`, runs the RA-TLS handshake with `verifier` and returns its verdict.
pub fn verify(
    addr: &str,
    verifier: Arc<RatlsVerifier>,
    timeout: Duration,
) -> Result<Outcome, VerifyError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| VerifyError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or_else(|| VerifyError::Connect {
        addr: addr.to_string(),
        source: last,
    })?;
    let timed_out = || VerifyError::Timeout {
        addr: addr.to_string(),
        secs: timeout.as_secs().max(1),
    };
    let io_setup = |source| VerifyError::Connect {
        addr: addr.to_string(),
        source,
    };
    tcp.set_read_timeout(Some(timeout)).map_err(io_setup)?;
    tcp.set_write_timeout(Some(timeout)).map_err(io_setup)?;
    let config = tls::client_config(verifier.clone()).map_err(VerifyError::Config)?;
    // The attested identity replaces the server name; rustls needs one anyway.
    let name = ServerName::try_from("cocoon-worker")
        .map_err(|e| VerifyError::Config(rustls::Error::General(format!("server name: {e}"))))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(VerifyError::Config)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let deadline = std::time::Instant::now() + timeout;
    while stream.conn.is_handshaking() {
        if std::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            if let Some(refusal) = tls::refusal_of(&e) {
                return Ok(Outcome::Refused(refusal.to_string()));
            }
            return Err(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timed_out(),
                _ => VerifyError::Handshake {
                    addr: addr.to_string(),
                    source: e,
                },
            });
        }
    }
    let outcome = match tls::peer_identity(
        &verifier,
        stream.conn.peer_certificates(),
        SystemTime::now(),
    ) {
        Ok(id) => Outcome::Accepted(id),
        Err(refusal) => Outcome::Refused(refusal.to_string()),
    };
    stream.conn.send_close_notify();
    let _ = stream.conn.complete_io(&mut stream.sock);
    Ok(outcome)
}
