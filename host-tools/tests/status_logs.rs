//! `cocoon-host status|logs` against a fake agent control endpoint on a Unix socket: output
//! formatting, exit codes and every way the exchange can fail.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-host");

/// A fake control endpoint: answers every connection with `reply(request_line)` (raw bytes;
/// `None` keeps the connection open without answering). Records the request lines.
struct FakeAgent {
    path: PathBuf,
    seen: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    fn start(reply: impl Fn(&str) -> Option<Vec<u8>> + Send + 'static) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let line = text.lines().next().unwrap_or("").to_string();
                log.lock().unwrap().push(line.clone());
                match reply(&line) {
                    Some(bytes) => {
                        let _ = s.write_all(&bytes);
                    }
                    None => held.push(s),
                }
            }
        });
        FakeAgent {
            path,
            seen,
            _dir: dir,
        }
    }

    fn json(status: u16, value: Value) -> FakeAgent {
        FakeAgent::start(move |_| Some(http(status, value.to_string().as_bytes())))
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&[args, &["--control-unix", self.path.to_str().unwrap()]].concat())
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn http(status: u16, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status_value(ready: bool) -> Value {
    json!({
        "format": "cocoon-agent-status/v1",
        "version": "0.1.0",
        "ready": ready,
        "pending": if ready { json!([]) } else { json!(["model"]) },
        "mode": "simulated",
        "model": {"id": "tiny", "sha256": "ab".repeat(32)},
        "attestation": {
            "rtmr3": "cd".repeat(48),
            "config_sha256": "ef".repeat(32),
            "certificate": {"sha256": "12".repeat(32), "not_after": now() + 3 * 3600 + 30},
        },
        "uptime_secs": 3725,
        "engine": {"queue_depth": 2, "active_sequences": 3},
        "requests": {"http_total": 10, "completed": 7, "cancelled": 1,
                     "prompt_tokens": 400, "completion_tokens": 90},
    })
}

#[test]
fn status_prints_the_agent_summary_and_exits_by_readiness() {
    let agent = FakeAgent::json(200, status_value(true));
    let out = agent.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(": READY\n"), "{text}");
    assert!(
        text.contains(&format!("model          tiny (sha256 {})", "ab".repeat(32))),
        "{text}"
    );
    assert!(
        text.contains(&format!("RTMR3          {}", "cd".repeat(48))),
        "{text}"
    );
    assert!(text.contains("SIMULATED TD"), "{text}");
    assert!(
        text.contains(&format!("sha256 {}, expires in 3h 00m", "12".repeat(32))),
        "{text}"
    );
    assert!(text.contains("uptime         1h 02m"), "{text}");
    assert!(text.contains("2 queued, 3 active sequences"), "{text}");
    assert!(
        text.contains("10 HTTP, 7 completed, 1 cancelled; tokens 400 prompt, 90 completion"),
        "{text}"
    );
    assert_eq!(agent.seen.lock().unwrap()[0], "GET /status HTTP/1.1");

    let out = agent.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = status_value(true);
    for key in [
        "format",
        "ready",
        "mode",
        "model",
        "engine",
        "requests",
        "uptime_secs",
    ] {
        assert_eq!(v[key], expected[key], "{key}");
    }
    assert_eq!(v["attestation"]["rtmr3"], expected["attestation"]["rtmr3"]);

    let agent = FakeAgent::json(200, status_value(false));
    let out = agent.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("NOT READY (waiting for: model)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn logs_prints_lines_escaped_and_asks_for_the_count() {
    let agent = FakeAgent::json(
        200,
        json!({"format": "cocoon-agent-logs/v1",
               "lines": ["2026-01-01T00:00:00.000Z  INFO cocoon_agent: one", "two \u{1b}[31mred\nfake line"],
               "total_logged": 57, "capacity": 1000}),
    );
    let out = agent.run(&["logs", "--lines", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2026-01-01T00:00:00.000Z  INFO cocoon_agent: one\ntwo \\u{1b}[31mred\\u{a}fake line\n"
    );
    assert_eq!(agent.seen.lock().unwrap()[0], "GET /logs?lines=2 HTTP/1.1");
    let out = agent.run(&["logs", "--lines", "2", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_logged"], 57);
    // Default count, and a reply with more lines than asked is refused.
    let out = agent.run(&["logs", "--lines", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("2 lines for a request of 1"),
        "{}",
        stderr(&out)
    );
    let _ = agent.run(&["logs"]);
    assert_eq!(
        agent.seen.lock().unwrap().last().unwrap(),
        "GET /logs?lines=100 HTTP/1.1"
    );
    // Out-of-range counts never reach the agent.
    let before = agent.seen.lock().unwrap().len();
    assert_eq!(
        agent.run(&["logs", "--lines", "1001"]).status.code(),
        Some(2)
    );
    assert_eq!(agent.seen.lock().unwrap().len(), before);
}

fn refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in {}",
        stderr(out)
    );
}

#[test]
fn clear_errors_for_nothing_listening_timeouts_and_bad_replies() {
    // Nothing there.
    let out = run(&["status", "--control-unix", "/nonexistent/control.sock"]);
    refused(
        &out,
        "nothing is listening on unix socket /nonexistent/control.sock",
    );
    let dir = tempfile::tempdir().unwrap();
    let dead: PathBuf = dir.path().join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    refused(
        &run(&["logs", "--control-unix", dead.to_str().unwrap()]),
        "nothing is listening",
    );

    // A peer that never answers: bounded by --timeout.
    let silent = FakeAgent::start(|_| None);
    let started = Instant::now();
    let out = silent.run(&["status", "--timeout", "1"]);
    refused(&out, "no complete reply within 1 s");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The agent's own error is shown.
    let agent = FakeAgent::json(
        400,
        json!({"error": "lines=5000 is more than the 1000 kept"}),
    );
    refused(
        &agent.run(&["logs"]),
        "the agent answered 400: lines=5000 is more than the 1000 kept",
    );

    // Malformed replies of every kind.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
            "malformed reply: no end of the HTTP head",
        ),
        (Vec::new(), "the connection closed without a reply"),
        (http(200, b"{not json"), "malformed reply: status"),
        (
            http(200, br#"{"format":"cocoon-agent-status/v1"}"#),
            "malformed reply: status: missing field",
        ),
        (
            http(
                200,
                status_value(true)
                    .to_string()
                    .replace("cocoon-agent-status/v1", "other/v9")
                    .as_bytes(),
            ),
            "status format \"other/v9\"",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}".to_vec(),
            "content-length is 100 but 2 body bytes arrived",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "unexpected transfer-encoding",
        ),
    ];
    for (reply, needle) in cases {
        let agent = FakeAgent::start(move |_| Some(reply.clone()));
        refused(&agent.run(&["status"]), needle);
    }

    // A reply over the size limit is cut off, not buffered without bound.
    let big = FakeAgent::start(|_| {
        let mut b = b"HTTP/1.1 200 OK\r\ncontent-length: 9000000\r\n\r\n".to_vec();
        b.resize(9_100_000, b'x');
        Some(b)
    });
    refused(&big.run(&["logs"]), "reply larger than 8388608 bytes");
}

#[test]
fn instances_map_to_guest_cids_and_bad_instances_are_usage_errors() {
    let out = run(&["status", "--instance", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--instance 1000 is out of range 0..=999"),
        "{}",
        stderr(&out)
    );
    // Instance 7 is guest CID 107; no VM runs here, so the error names it (whatever the
    // host's vsock support: no device, no transport, or a connect timeout).
    let out = run(&[
        "logs",
        "--instance",
        "7",
        "--control-port",
        "5999",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("vsock CID 107 port 5999") || err.contains("AF_VSOCK is not available"),
        "{err}"
    );
}
