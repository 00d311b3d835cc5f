//! Test support: start the real `cocoon-agent` binary and talk raw HTTP/1.1 to it.
#![allow(dead_code)]

use cocoon_measure::manifest::Manifest;
use cocoon_measure::ratls::{CollateralSource, RatlsVerifier, VerifierConfig};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cocoon-agent");

/// A running agent, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub model_id: String,
    /// The simulated TD's directory (no TDX here); removed after the child is killed.
    pub td_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve` on 127.0.0.1:0 with the model's recorded digest, in a simulated TD, and
    /// waits for readiness.
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        let sha = cocoon_tests::fixtures::model_sha256(model).expect("model digest sidecar");
        let td_dir = tempfile::tempdir().expect("simulated TD directory");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--model"])
            .arg(model)
            .args(["--model-sha256", &sha])
            .arg("--simulated-td")
            .arg(td_dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cocoon-agent");
        let line = cocoon_tests::process::first_line(&mut child, "cocoon-agent");
        let addr = line
            .trim()
            .strip_prefix("cocoon-agent: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        let model_id = model
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".gguf")
            .to_string();
        let s = Server {
            child,
            addr,
            model_id,
            td_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(r) = s.get("/healthz") {
                if r.status == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    pub fn get(&self, path: &str) -> std::io::Result<Resp> {
        request(self.addr, "GET", path, b"")
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Resp {
        request(self.addr, "POST", path, body).expect("request")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.post(path, body.to_string().as_bytes())
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = String::from_utf8(self.get("/metrics").unwrap().body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .parse()
            .unwrap()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The JSON payloads of an SSE body and whether it ended with `[DONE]`.
    pub fn sse(&self) -> (Vec<Value>, bool) {
        let text = String::from_utf8(self.body.clone()).expect("SSE is UTF-8");
        let mut events = Vec::new();
        let mut done = false;
        for block in text.split("\n\n").filter(|b| !b.is_empty()) {
            let data = block.strip_prefix("data: ").expect("data: frame");
            assert!(!done, "frame after [DONE]");
            if data == "[DONE]" {
                done = true;
            } else {
                events.push(serde_json::from_str(data).expect("frame JSON"));
            }
        }
        (events, done)
    }

    /// An OpenAI error object's `code`, checking the object's shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].is_string(), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("param").is_some(), "{v}");
        e["code"].as_str().expect("code").to_string()
    }
}

/// Writes a raw request head + body on a fresh connection.
pub fn send_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    // A server may answer (413) before reading everything: ignore write errors on the body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let headers = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
}

/// Concatenated text of a stream's chunks (chat `delta.content` or completion `text`).
pub fn stream_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| {
            let c = e["choices"].get(0)?;
            c["delta"]["content"]
                .as_str()
                .or(c["text"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// `cocoon-agent serve` on the tiny model in a SIMULATED TD, with a plain and an RA-TLS listener
/// on ephemeral loopback ports; killed on drop. Not waited for: callers decide what ready means.
pub struct SimulatedAgent {
    pub child: Child,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub td_dir: tempfile::TempDir,
    pub model: std::path::PathBuf,
    pub model_sha256: String,
}

impl Drop for SimulatedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_after(line: &str, prefix: &str) -> SocketAddr {
    line.trim()
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .expect("address")
}

impl SimulatedAgent {
    /// Starts the agent with simulated-TD seed `seed`, `extra` arguments and `env` variables,
    /// and reads both listening addresses from its stdout.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        seed: u64,
        extra: &[S],
        env: &[(&str, &str)],
    ) -> SimulatedAgent {
        let model = cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)");
        let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
        let td_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
            ])
            .args(["--ctx", "256", "--parallel", "2", "--threads", "2"])
            .arg("--simulated-td")
            .arg(td_dir.path())
            .args(["--simulated-seed", &seed.to_string(), "--model"])
            .arg(&model)
            .args(["--model-sha256", &sha])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cocoon-agent");
        let lines = cocoon_tests::process::first_lines(&mut child, "cocoon-agent", 2);
        let plain = addr_after(&lines[0], "cocoon-agent: listening on http://");
        let tls = addr_after(&lines[1], "cocoon-agent: listening on https://");
        SimulatedAgent {
            child,
            plain,
            tls,
            td_dir,
            model,
            model_sha256: sha,
        }
    }
}

/// Runs `cocoon-agent simulated-pki` and returns its output directory.
pub fn simulated_pki(seed: u64) -> tempfile::TempDir {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["simulated-pki", "--seed", &seed.to_string(), "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIMULATED"));
    out_dir
}

/// A verifier built only from the files `simulated-pki` wrote, as a host-side gateway would.
pub fn verifier_from_files(dir: &Path) -> std::sync::Arc<RatlsVerifier> {
    let key = cocoon_measure::manifest::parse_verifying_key(
        &std::fs::read_to_string(dir.join("manifest-key.pub")).unwrap(),
    )
    .unwrap();
    let manifest =
        Manifest::parse_verified(&std::fs::read(dir.join("manifest.json")).unwrap(), &key).unwrap();
    let config = VerifierConfig::new(
        manifest,
        key,
        CollateralSource::File(dir.join("collateral.json")),
    )
    .trust_simulated(std::fs::read(dir.join("root-ca.der")).unwrap());
    std::sync::Arc::new(RatlsVerifier::new(config).unwrap())
}
