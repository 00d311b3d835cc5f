//! The host side of the agent's read-only control endpoint (`cocoon-host status|logs`).
//!
//! The agent serves HTTP/1.1 (`GET /status`, `GET /logs?lines=N`, one request per connection,
//! JSON bodies with `Content-Length`; see agent/src/control) on AF_VSOCK port
//! [`DEFAULT_CONTROL_PORT`] of the guest, whose CID is the one `launch` gives the instance
//! ([`crate::launch::argv::guest_cid`]). The agent answers only the host's CID, so vsock
//! locality is the authentication. For development the agent can listen on a Unix socket.
//!
//! Invariants: every exchange is bounded in time (connect, then a deadline for the whole reply)
//! and size ([`MAX_REPLY_BYTES`]); the reply parser never panics on any bytes; text output
//! escapes control characters, so a guest cannot send escape sequences to the operator's
//! terminal.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The guest vsock port of the control endpoint (the agent's `--control-vsock-port` in the
/// image).
pub const DEFAULT_CONTROL_PORT: u32 = 5000;
/// Default time allowed for connecting and for the whole reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply accepted (1000 log lines of at most 1 KiB, JSON-escaped, fit).
pub const MAX_REPLY_BYTES: usize = 8 << 20;
/// The most log lines the agent keeps and returns.
pub const MAX_LINES: u32 = 1000;

/// Where the control endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Vsock { cid: u32, port: u32 },
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Vsock { cid, port } => write!(f, "vsock CID {cid} port {port}"),
            Endpoint::Unix(p) => write!(f, "unix socket {}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("nothing is listening on {endpoint} ({source}): is the VM running (`cocoon-host launch ... --instance N`) and its agent serving the control endpoint?")]
    NotListening {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("AF_VSOCK is not available on this host ({source}): load the vhost_vsock module")]
    NoVsock {
        #[source]
        source: io::Error,
    },
    #[error("connecting to {endpoint} timed out: is the VM running (`cocoon-host launch ... --instance N`)?")]
    ConnectTimeout { endpoint: Endpoint },
    #[error("{endpoint}: no complete reply within {secs} s")]
    Timeout { endpoint: Endpoint, secs: u64 },
    #[error("{endpoint}: {source}")]
    Io {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("{endpoint}: reply larger than {max} bytes")]
    TooLarge { endpoint: Endpoint, max: usize },
    #[error("{endpoint}: malformed reply: {what}")]
    Malformed { endpoint: Endpoint, what: String },
    #[error("{endpoint}: the agent answered {status}: {message}")]
    Agent {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },
    #[error("--lines {0} is outside 0..={MAX_LINES}")]
    BadLines(u32),
}

/// `GET /status` of the agent (format `cocoon-agent-status/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub format: String,
    pub version: String,
    pub ready: bool,
    pub pending: Vec<String>,
    pub mode: String,
    pub model: ModelStatus,
    pub attestation: AttestationStatus,
    pub uptime_secs: u64,
    pub engine: EngineStatus,
    pub requests: RequestCounters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub id: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationStatus {
    pub rtmr3: String,
    pub config_sha256: String,
    pub certificate: Option<CertificateStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    pub sha256: String,
    pub not_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub queue_depth: i64,
    pub active_sequences: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounters {
    pub http_total: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// `GET /logs` of the agent (format `cocoon-agent-logs/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsReply {
    pub format: String,
    pub lines: Vec<String>,
    pub total_logged: u64,
    pub capacity: usize,
}

pub const STATUS_FORMAT: &str = "cocoon-agent-status/v1";
pub const LOGS_FORMAT: &str = "cocoon-agent-logs/v1";

trait Conn: Read + Write {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()>;
    fn set_write_timeout(&self, t: Duration) -> io::Result<()>;
}

impl Conn for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, Some(t))
    }
    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, Some(t))
    }
}

impl Conn for vsock::VsockStream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        vsock::VsockStream::set_read_timeout(self, Some(t))
    }
    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        vsock::VsockStream::set_write_timeout(self, Some(t))
    }
}

fn connect_error(endpoint: &Endpoint, source: io::Error) -> ControlError {
    use io::ErrorKind as K;
    match source.raw_os_error() {
        // ENODEV: no VM has this CID; EHOSTUNREACH/ENETUNREACH: same through some kernels.
        Some(19 | 113 | 101) => {
            return ControlError::NotListening {
                endpoint: endpoint.clone(),
                source,
            }
        }
        // EAFNOSUPPORT
        Some(97) => return ControlError::NoVsock { source },
        _ => {}
    }
    match source.kind() {
        K::ConnectionRefused | K::NotFound | K::ConnectionReset => ControlError::NotListening {
            endpoint: endpoint.clone(),
            source,
        },
        K::TimedOut | K::WouldBlock => ControlError::ConnectTimeout {
            endpoint: endpoint.clone(),
        },
        _ => ControlError::Io {
            endpoint: endpoint.clone(),
            source,
        },
    }
}

fn connect(endpoint: &Endpoint) -> Result<Box<dyn Conn>, ControlError> {
    let conn: Box<dyn Conn> = match endpoint {
        Endpoint::Unix(path) => Box::new(
            std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| connect_error(endpoint, e))?,
        ),
        // The kernel bounds a vsock connect by its connect timeout (2 s by default).
        Endpoint::Vsock { cid, port } => Box::new(
            vsock::VsockStream::connect_with_cid_port(*cid, *port)
                .map_err(|e| connect_error(endpoint, e))?,
        ),
    };
    Ok(conn)
}

/// Sends `GET path` and returns the body of a 200 reply (see the module invariants).
pub fn get(endpoint: &Endpoint, path: &str, timeout: Duration) -> Result<Vec<u8>, ControlError> {
    let deadline = Instant::now() + timeout;
    let mut conn = connect(endpoint)?;
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ControlError::Timeout {
            endpoint: endpoint.clone(),
            secs: timeout.as_secs().max(1),
        },
        _ => ControlError::Io {
            endpoint: endpoint.clone(),
            source,
        },
    };
    conn.set_write_timeout(timeout).map_err(io_err)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: cocoon-agent\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).map_err(io_err)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ControlError::Timeout {
                endpoint: endpoint.clone(),
                secs: timeout.as_secs().max(1),
            });
        }
        conn.set_read_timeout(left).map_err(io_err)?;
        let n = match conn.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if n == 0 {
            break;
        }
        if raw.len() + n > MAX_REPLY_BYTES {
            return Err(ControlError::TooLarge {
                endpoint: endpoint.clone(),
                max: MAX_REPLY_BYTES,
            });
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
    let malformed = |what: String| ControlError::Malformed {
        endpoint: endpoint.clone(),
        what,
    };
    let (status, body) = parse_reply(&raw).map_err(malformed)?;
    if status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| escape_text(&String::from_utf8_lossy(body)));
        return Err(ControlError::Agent {
            endpoint: endpoint.clone(),
            status,
            message,
        });
    }
    Ok(body.to_vec())
}

/// Splits an HTTP/1.1 reply read to EOF into status and body. The body must be exactly
/// `Content-Length` bytes (chunked replies are not produced by the agent and are refused).
pub fn parse_reply(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    if raw.is_empty() {
        return Err("the connection closed without a reply".into());
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the HTTP head")?;
    let head = raw.get(..split).ok_or("no HTTP head")?;
    let body = raw.get(split + 4..).unwrap_or(&[]);
    let head = std::str::from_utf8(head).map_err(|_| "the HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!(
            "status line {:?} is not HTTP/1.x",
            escape_text(status_line)
        ));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "status code {:?} is not three digits",
            escape_text(code)
        ));
    }
    let status: u16 = code.parse().map_err(|_| "bad status code")?;
    let mut length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {:?} has no colon", escape_text(line)))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!(
                "unexpected transfer-encoding {:?}",
                escape_text(value)
            ));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| format!("content-length {:?} is not a number", escape_text(value)))?;
            if length.replace(n).is_some_and(|old| old != n) {
                return Err("conflicting content-length headers".into());
            }
        }
    }
    let length = length.ok_or("no content-length")?;
    if body.len() != length {
        return Err(format!(
            "content-length is {length} but {} body bytes arrived",
            body.len()
        ));
    }
    Ok((status, body))
}

fn decode<T: serde::de::DeserializeOwned>(
    endpoint: &Endpoint,
    body: &[u8],
    what: &str,
) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| ControlError::Malformed {
        endpoint: endpoint.clone(),
        what: format!("{what}: {e}"),
    })
}

/// The agent's status.
pub fn status(endpoint: &Endpoint, timeout: Duration) -> Result<StatusReport, ControlError> {
    let body = get(endpoint, "/status", timeout)?;
    let report: StatusReport = decode(endpoint, &body, "status")?;
    if report.format != STATUS_FORMAT {
        return Err(ControlError::Malformed {
            endpoint: endpoint.clone(),
            what: format!(
                "status format {:?}, expected {STATUS_FORMAT}",
                escape_text(&report.format)
            ),
        });
    }
    Ok(report)
}

/// The agent's most recent `lines` log lines (0..=[`MAX_LINES`]).
pub fn logs(endpoint: &Endpoint, lines: u32, timeout: Duration) -> Result<LogsReply, ControlError> {
    if lines > MAX_LINES {
        return Err(ControlError::BadLines(lines));
    }
    let body = get(endpoint, &format!("/logs?lines={lines}"), timeout)?;
    let reply: LogsReply = decode(endpoint, &body, "logs")?;
    if reply.format != LOGS_FORMAT {
        return Err(ControlError::Malformed {
            endpoint: endpoint.clone(),
            what: format!(
                "logs format {:?}, expected {LOGS_FORMAT}",
                escape_text(&reply.format)
            ),
        });
    }
    if reply.lines.len() > lines as usize {
        return Err(ControlError::Malformed {
            endpoint: endpoint.clone(),
            what: format!("{} lines for a request of {lines}", reply.lines.len()),
        });
    }
    Ok(reply)
}

/// `s` with control characters (including ESC and newlines) written as `\u{..}`.
pub fn escape_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// The status as text for the operator (values from the guest are escaped).
pub fn status_text(endpoint: &Endpoint, r: &StatusReport, now_unix: u64) -> String {
    let e = escape_text;
    let mut out = format!(
        "agent at {endpoint}: {}\n",
        if r.ready {
            "READY".to_string()
        } else {
            format!("NOT READY (waiting for: {})", e(&r.pending.join(", ")))
        }
    );
    let mode = if r.mode == "simulated" {
        "simulated (SIMULATED TD: not confidential, development only)".to_string()
    } else {
        e(&r.mode)
    };
    let cert = match &r.attestation.certificate {
        None => "none (no RA-TLS listener)".to_string(),
        Some(c) if c.not_after > now_unix => format!(
            "sha256 {}, expires in {}",
            e(&c.sha256),
            duration_text(c.not_after - now_unix)
        ),
        Some(c) => format!(
            "sha256 {}, EXPIRED {} ago",
            e(&c.sha256),
            duration_text(now_unix.saturating_sub(c.not_after))
        ),
    };
    let rows = [
        ("version", e(&r.version)),
        ("mode", mode),
        (
            "model",
            format!("{} (sha256 {})", e(&r.model.id), e(&r.model.sha256)),
        ),
        ("RTMR3", e(&r.attestation.rtmr3)),
        ("config sha256", e(&r.attestation.config_sha256)),
        ("certificate", cert),
        ("uptime", duration_text(r.uptime_secs)),
        (
            "engine",
            format!(
                "{} queued, {} active sequences",
                r.engine.queue_depth, r.engine.active_sequences
            ),
        ),
        (
            "requests",
            format!(
                "{} HTTP, {} completed, {} cancelled; tokens {} prompt, {} completion",
                r.requests.http_total,
                r.requests.completed,
                r.requests.cancelled,
                r.requests.prompt_tokens,
                r.requests.completion_tokens
            ),
        ),
    ];
    for (k, v) in rows {
        out.push_str(&format!("  {k:<14} {v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_only_when_complete_and_consistent() {
        let ok =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_reply(ok), Ok((200, &b"{}"[..])));
        let bad: &[&[u8]] = &[
            b"",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
            b"HTTP/1.1 200",
        ];
        for raw in bad {
            assert!(
                parse_reply(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // Every truncation of a good reply is refused, none panics.
        for i in 0..ok.len() {
            assert!(parse_reply(&ok[..i]).is_err(), "{i}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_text("a\x1b[31mb\nc"), "a\\u{1b}[31mb\\u{a}c");
        assert_eq!(escape_text("plain é"), "plain é");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(59), "0m 59s");
        assert_eq!(duration_text(3600 + 120), "1h 02m");
        assert_eq!(duration_text(2 * 86_400 + 3600), "2d 1h 00m");
    }
}
