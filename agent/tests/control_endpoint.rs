//! The host-control endpoint end to end: the real binary in a simulated TD with
//! `--control-unix`, queried over the Unix socket as `cocoon-host status|logs --control-unix`
//! would.

mod common;

use cocoon_tdx::simulated::simulated_paths;
use cocoon_tdx::TdxProvider;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-agent");
/// A prompt no log line may ever contain.
const SECRET: &str = "zebra-quokka-7f3a9c-secret-prompt";

struct Agent {
    sim: common::SimulatedAgent,
    control: PathBuf,
    _sock_dir: tempfile::TempDir,
    model_id: String,
}

impl std::ops::Deref for Agent {
    type Target = common::SimulatedAgent;
    fn deref(&self) -> &common::SimulatedAgent {
        &self.sim
    }
}

impl Agent {
    fn start() -> Agent {
        let sock_dir = tempfile::tempdir().unwrap();
        let control = sock_dir.path().join("control.sock");
        // As verbose as it gets: the ring must still never see request content.
        let extra = [std::ffi::OsStr::new("--control-unix"), control.as_os_str()];
        let sim = common::SimulatedAgent::spawn(1, &extra, &[("RUST_LOG", "trace")]);
        let model_id = sim
            .model
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("model file name")
            .to_string();
        Agent {
            sim,
            control,
            _sock_dir: sock_dir,
            model_id,
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, v) = control(&self.control, "GET /status");
            assert_eq!(status, 200, "{v}");
            if v["ready"] == true {
                return;
            }
            assert!(Instant::now() < deadline, "agent never became ready: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends `request_line` (e.g. `GET /status`) as HTTP/1.1 over the control socket; returns the
/// status and the JSON body.
fn control(path: &Path, request_line: &str) -> (u16, Value) {
    let raw = control_raw(
        path,
        format!("{request_line} HTTP/1.1\r\nHost: control\r\n\r\n").as_bytes(),
    );
    parse(&raw)
}

fn control_raw(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).expect("connect to the control socket");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    raw
}

fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, value)
}

fn post_plain(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

#[test]
fn status_and_logs_over_the_control_socket_never_reveal_prompts() {
    let agent = Agent::start();
    agent.wait_ready();
    let _ = agent.tls;

    // The socket is private to the agent's user.
    let mode = std::fs::metadata(&agent.control)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Inference with a recognisable prompt, chat and completion, streamed and not.
    let model_id = agent.model_id.as_str();
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": model_id, "messages": [{"role": "user", "content": SECRET}], "max_tokens": 4, "temperature": 0}),
        ),
        (
            "/v1/completions",
            json!({"model": model_id, "prompt": SECRET, "max_tokens": 4, "stream": true}),
        ),
    ] {
        let (status, v) = post_plain(agent.plain, path, &body);
        assert_eq!(status, 200, "{path}: {v}");
    }
    // A rejected request (bad field) whose body also holds the secret.
    let (status, _) = post_plain(
        agent.plain,
        "/v1/chat/completions",
        &json!({"model": model_id, "messages": [{"role": "user", "content": SECRET}], "temperature": SECRET}),
    );
    assert_eq!(status, 400);

    // status: ready, simulated, the configured model digest, RTMR3 as in the TD's register.
    let (status, v) = control(&agent.control, "GET /status");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["format"], "cocoon-agent-status/v1");
    assert_eq!(v["ready"], true);
    assert_eq!(v["pending"], json!([]));
    assert_eq!(v["mode"], "simulated");
    assert_eq!(v["model"]["id"], model_id);
    assert_eq!(v["model"]["sha256"], agent.model_sha256);
    let rtmr3 = TdxProvider::new(simulated_paths(agent.td_dir.path()))
        .read_rtmr(3)
        .unwrap();
    assert_ne!(rtmr3, [0; 48]);
    assert_eq!(v["attestation"]["rtmr3"], hex::encode(rtmr3));
    let cert_sha = v["attestation"]["certificate"]["sha256"]
        .as_str()
        .expect("certificate")
        .to_string();
    assert_eq!(cert_sha.len(), 64);
    let not_after = v["attestation"]["certificate"]["not_after"]
        .as_u64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(not_after > now && not_after <= now + 3600, "{not_after}");
    assert!(v["requests"]["completed"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["requests"]["http_total"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["requests"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(!v.to_string().contains(SECRET));

    // logs: the agent's own lines, including the certificate status reports, never the prompt.
    let (status, v) = control(&agent.control, "GET /logs?lines=1000");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["format"], "cocoon-agent-logs/v1");
    let lines: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("RTMR3 extended")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RA-TLS certificate issued") && l.contains(&cert_sha)),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("request admitted")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("request finished")),
        "{lines:#?}"
    );
    for l in &lines {
        assert!(!l.contains(SECRET), "prompt leaked into the log ring: {l}");
        assert!(!l.contains("zebra"), "part of the prompt leaked: {l}");
        assert!(l.len() <= 1024);
    }
    // Nothing below the ring's cap entered it: no TRACE lines, no foreign DEBUG lines.
    assert!(!lines.iter().any(|l| l.contains(" TRACE ")), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("DEBUG hyper")),
        "{lines:#?}"
    );

    let (_, v) = control(&agent.control, "GET /logs?lines=3");
    assert_eq!(v["lines"].as_array().unwrap().len(), 3);
    assert!(v["total_logged"].as_u64().unwrap() >= lines.len() as u64);

    // Bad requests: read-only, bounded, unknown paths, garbage.
    for (req, expected) in [
        ("POST /status", 405),
        ("DELETE /logs", 405),
        ("GET /logs?lines=1001", 400),
        ("GET /logs?lines=abc", 400),
        ("GET /logs?lines=5&follow=1", 400),
        ("GET /status?x=1", 400),
        ("GET /v1/chat/completions", 404),
        ("GET /metrics", 404),
    ] {
        let (status, v) = control(&agent.control, req);
        assert_eq!(status, expected, "{req}: {v}");
        assert!(v["error"].is_string(), "{req}: {v}");
    }
    let raw = control_raw(&agent.control, b"\x00\x01garbage\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // A client that connects and says nothing does not stop others from being served.
    let _idle = UnixStream::connect(&agent.control).unwrap();
    let (status, _) = control(&agent.control, "GET /status");
    assert_eq!(status, 200);
}

#[test]
fn a_path_that_is_not_a_socket_stops_the_agent_before_it_serves() {
    let model = cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)");
    let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
    let td_dir = tempfile::tempdir().unwrap();
    let file = td_dir.path().join("not-a-socket");
    std::fs::write(&file, b"data").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&model)
        .args(["--model-sha256", &sha, "--simulated-td"])
        .arg(td_dir.path().join("td"))
        .arg("--control-unix")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}
