//! `cocoon-measure gateway` end to end: the binary in front of a TLS upstream that presents a
//! certificate issued from a simulated TD's quote.

mod ratls_support;

use bytes::Bytes;
use cocoon_measure::manifest::encode_key;
use cocoon_measure::ratls::{self, tls};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ratls_support::*;
use rustls::sign::SingleCertAndKey;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    tls_connections: AtomicUsize,
    requests: Mutex<Vec<(String, String, Vec<u8>)>>,
    /// Released by the test to let the streamed response finish.
    release: Notify,
}

/// A TLS upstream with an RA-TLS certificate: `/stream` answers an SSE body in two parts, the
/// second only after the test saw the first; other paths echo.
async fn upstream(cert: &Issued) -> (std::net::SocketAddr, Arc<Seen>) {
    let ck = ratls::rustls_certified_key(&cert.key, cert.der.clone()).unwrap();
    let config = tls::server_config(Arc::new(SingleCertAndKey::from(ck)), None).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = s.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.tls_connections.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().to_string();
                        let body = req.into_body().collect().await?.to_bytes().to_vec();
                        seen.requests
                            .lock()
                            .unwrap()
                            .push((method, path.clone(), body.clone()));
                        let (mut tx, body_out) =
                            http_body_util::channel::Channel::<Bytes, hyper::Error>::new(4);
                        if path == "/stream" {
                            tokio::spawn(async move {
                                let _ = tx.send_data(Bytes::from_static(b"data: one\n\n")).await;
                                seen.release.notified().await;
                                let _ = tx.send_data(Bytes::from_static(b"data: two\n\n")).await;
                            });
                        } else {
                            tokio::spawn(async move {
                                let mut echo = b"echo:".to_vec();
                                echo.extend_from_slice(&body);
                                let _ = tx.send_data(Bytes::from(echo)).await;
                            });
                        }
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(body_out)
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

struct Gateway {
    child: Child,
    addr: std::net::SocketAddr,
    _files: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// Starts the gateway binary with collateral from a file; returns once it is listening.
fn gateway(fx: &Fixture, upstream: std::net::SocketAddr, trusting: bool) -> Gateway {
    let files = tempfile::tempdir().unwrap();
    let collateral = write(files.path(), "collateral.json", &fx.collateral_json());
    gateway_with(
        fx,
        upstream,
        trusting,
        files,
        &["--collateral", &collateral],
    )
}

/// Starts the gateway binary with `collateral_args`; returns once it is listening.
fn gateway_with(
    fx: &Fixture,
    upstream: std::net::SocketAddr,
    trusting: bool,
    files: tempfile::TempDir,
    collateral_args: &[&str],
) -> Gateway {
    let d = files.path();
    let m = manifest(fx.td.config().mr_td, None);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cocoon-measure"));
    cmd.arg("gateway")
        .args([
            "--manifest",
            &write(d, "manifest.json", m.to_json().as_bytes()),
        ])
        .args([
            "--pubkey",
            &write(
                d,
                "manifest.pub",
                encode_key(&signing_key().verifying_key().to_bytes()).as_bytes(),
            ),
        ])
        .args(collateral_args)
        .args(["--upstream", &upstream.to_string()])
        .args(["--server-name", "worker.test"])
        .args(["--listen", "127.0.0.1:0"]);
    if trusting {
        cmd.arg("--trust-simulated")
            .args(["--root-ca", &write(d, "root.der", fx.td.root_ca_der())]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[gateway] {line}");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split(',').next().unwrap().to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gateway did not start")
        .parse()
        .unwrap();
    Gateway {
        child,
        addr,
        _files: files,
    }
}

async fn client(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn request(method: &str, path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

async fn settle(c: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
    c.ready().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn live_cert(fx: &Fixture) -> Issued {
    let now = SystemTime::now();
    issue_at(
        fx,
        standard_events(CONFIG_JSON, "simulated"),
        CONFIG_JSON,
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_a_verified_worker_and_streams() {
    let fx = Fixture::start();
    let cert = live_cert(&fx);
    let (up, seen) = upstream(&cert).await;
    let gw = gateway(&fx, up, true);
    let mut c = client(gw.addr).await;

    let resp = c
        .send_request(request(
            "POST",
            "/v1/chat/completions",
            br#"{"model":"qwen"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"echo:{"model":"qwen"}"#);
    {
        let reqs = seen.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, "POST");
        assert_eq!(reqs[0].1, "/v1/chat/completions");
    }

    // Streaming: the first event arrives while the upstream still holds the second.
    // (A short pause between requests lets the gateway return the upstream connection to its
    // idle list, which happens once the previous response has ended.)
    settle(&mut c).await;
    let resp = c
        .send_request(request("GET", "/stream", b""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first event was buffered by the gateway")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    seen.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: two\n\n");

    // The upstream connection (and its verification) was reused.
    settle(&mut c).await;
    let resp = c.send_request(request("GET", "/again", b"")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    assert_eq!(seen.requests.lock().unwrap().len(), 3);
    assert_eq!(seen.tls_connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collateral_from_a_pccs() {
    let fx = Fixture::start();
    let cert = live_cert(&fx);
    let (up, seen) = upstream(&cert).await;
    let (pccs_url, pccs_seen) = pccs(fx.td.collateral(), false);
    let files = tempfile::tempdir().unwrap();
    let cache = files.path().join("collateral-cache");
    let cache = cache.display().to_string();
    let gw = gateway_with(
        &fx,
        up,
        true,
        files,
        &["--pccs-url", &pccs_url, "--collateral-cache", &cache],
    );
    let mut c = client(gw.addr).await;
    let resp = c
        .send_request(request("GET", "/v1/models", b""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen.requests.lock().unwrap().len(), 1);
    let fetched = pccs_seen.lock().unwrap().clone();
    assert_eq!(fetched.len(), 4, "{fetched:?}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_gateway_refuses_a_simulated_worker_with_502() {
    let fx = Fixture::start();
    let cert = live_cert(&fx);
    let (up, seen) = upstream(&cert).await;
    let gw = gateway(&fx, up, false);
    let mut c = client(gw.addr).await;
    let resp = c
        .send_request(request(
            "POST",
            "/v1/chat/completions",
            br#"{"secret":"prompt"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["type"], "attestation_refused");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not end at Intel's SGX Root CA"),
        "{message}"
    );
    // The handshake was attempted, but no request reached the upstream.
    assert!(seen.requests.lock().unwrap().is_empty());
}

#[test]
fn refuses_a_non_loopback_listen_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_cocoon-measure"))
        .args([
            "gateway",
            "--manifest",
            "m",
            "--pubkey",
            "k",
            "--collateral",
            "c",
            "--upstream",
            "worker:443",
            "--listen",
            "0.0.0.0:8080",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn refuses_a_tampered_manifest_at_start() {
    let fx = Fixture::start();
    let files = tempfile::tempdir().unwrap();
    let d = files.path();
    let m = manifest(fx.td.config().mr_td, None)
        .to_json()
        .replace("ratls-test-1", "ratls-test-2");
    let out = Command::new(env!("CARGO_BIN_EXE_cocoon-measure"))
        .arg("gateway")
        .args(["--manifest", &write(d, "m.json", m.as_bytes())])
        .args([
            "--pubkey",
            &write(
                d,
                "k.pub",
                encode_key(&signing_key().verifying_key().to_bytes()).as_bytes(),
            ),
        ])
        .args(["--collateral", &write(d, "c.json", &fx.collateral_json())])
        .args(["--upstream", "127.0.0.1:9", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signature"), "{stderr}");
}
