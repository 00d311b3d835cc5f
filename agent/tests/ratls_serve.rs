//! The RA-TLS listener end to end: the real binary in a simulated TD, real TLS 1.3 over
//! loopback, certificates checked with the measurements crate's verifier and by hand.

mod common;

use cocoon_measure::manifest::Manifest;
use cocoon_measure::ratls::{self, CollateralSource, RatlsVerifier, VerifierConfig};
use cocoon_measure::rtmr3::{self, kinds};
use cocoon_tdx::layout::{body, HEADER_LEN};
use cocoon_tdx::simulated::{simulated_paths, MockPki};
use cocoon_tdx::TdxProvider;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-agent");

fn tiny() -> PathBuf {
    cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)")
}

/// The agent with a plain and an RA-TLS listener in a simulated TD, ready; killed on drop.
struct Agent {
    sim: common::SimulatedAgent,
    seed: u64,
}

impl std::ops::Deref for Agent {
    type Target = common::SimulatedAgent;
    fn deref(&self) -> &common::SimulatedAgent {
        &self.sim
    }
}

impl Agent {
    fn start(seed: u64, extra: &[&str]) -> Agent {
        let agent = Agent {
            sim: common::SimulatedAgent::spawn(seed, extra, &[]),
            seed,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while get_plain(agent.plain, "/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "agent never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    /// Quotes the simulated TD has produced (configfs-tsm `generation`).
    fn quotes_served(&self) -> u64 {
        let path = simulated_paths(self.td_dir.path())
            .tsm_entry()
            .join("generation");
        std::fs::read_to_string(&path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

fn get_plain(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, vec![]);
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let status = String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

// ---- verifier fixture: a manifest whose one shape is the simulated TD's registers ----

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// The same manifest `cocoon-agent simulated-pki` publishes for this seed, signed by the test key.
fn manifest(seed: u64) -> Manifest {
    let body = cocoon_agent::attest::simulated::manifest_body(seed);
    let mut m = Manifest {
        body,
        signature: None,
    };
    m.sign(&signing_key());
    Manifest::parse_verified(m.to_json().as_bytes(), &signing_key().verifying_key()).unwrap()
}

/// A verifier for the agent's simulated TD; `trusting` adds the mock root (else production).
fn verifier(seed: u64, trusting: bool) -> Arc<RatlsVerifier> {
    let pki = MockPki::new(seed).unwrap();
    let mut c = VerifierConfig::new(
        manifest(seed),
        signing_key().verifying_key(),
        CollateralSource::Json(pki.collateral().to_json().into_bytes()),
    );
    if trusting {
        c = c.trust_simulated(pki.root_ca_der().to_vec());
    }
    Arc::new(RatlsVerifier::new(c).unwrap())
}

// ---- a blocking RA-TLS client ----

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, verifier: Arc<RatlsVerifier>) -> std::io::Result<Tls> {
    let config = ratls::tls::client_config(verifier).map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("cocoon-worker").unwrap(),
    )
    .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Drive the handshake to completion now, so that a refusal surfaces here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn peer_cert(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().expect("server certificate")[0].to_vec()
}

/// Sends one keep-alive request and reads one response (Content-Length bodies only).
fn request(tls: &mut Tls, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: w\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body).unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("response head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0; len];
    tls.read_exact(&mut body).unwrap();
    (status, body)
}

fn report_data_of(quote: &[u8]) -> &[u8] {
    let at = HEADER_LEN + body::REPORT_DATA;
    &quote[at..at + 64]
}

fn rtmr3_in(dir: &Path) -> [u8; 48] {
    TdxProvider::new(simulated_paths(dir)).read_rtmr(3).unwrap()
}

#[test]
fn chat_over_verified_ratls_with_bound_key_replayable_rtmr3_and_one_quote() {
    let agent = Agent::start(11, &[]);
    let trusting = verifier(agent.seed, true);

    // Several connections, each verified in full by the measurements crate's verifier.
    let mut certs = Vec::new();
    for _ in 0..4 {
        let mut tls = connect(agent.tls, trusting.clone()).expect("verified handshake");
        let (status, body) = request(&mut tls, "GET", "/healthz", b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        certs.push(peer_cert(&tls));
    }
    // One key, one certificate, one quote for all of them.
    assert!(certs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(agent.quotes_served(), 1);

    // A chat completion over RA-TLS.
    let mut tls = connect(agent.tls, trusting.clone()).unwrap();
    let model_id = "tiny-llama-v1-seed1";
    let req = json!({"model": model_id, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "hello"}]});
    let (status, body) = request(
        &mut tls,
        "POST",
        "/v1/chat/completions",
        req.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(agent.quotes_served(), 1);

    // What the verifier accepted.
    let id = trusting
        .verify_certificate(&certs[0], std::time::SystemTime::now())
        .unwrap();
    assert_eq!(id.mode, "simulated");
    assert!(id.simulated_root);
    assert_eq!(hex::encode(id.model_sha256), agent.model_sha256);
    assert_eq!(id.config["model_id"], model_id);
    assert_eq!(id.config["plain_http"], true);
    assert_eq!(id.config["tls"]["client_auth"], "none");

    // By hand: the quote binds the certificate's key ...
    let parsed = ratls::parse_certificate(&certs[0]).unwrap();
    let evidence = parsed.evidence().unwrap();
    assert_eq!(
        report_data_of(&evidence.quote),
        ratls::report_data(&parsed.spki_der)
    );
    // ... RTMR3 in the TD's sysfs file is the replay of the published events ...
    let events = rtmr3::from_json(&evidence.events_json).unwrap();
    let rtmr3_now = rtmr3_in(agent.td_dir.path());
    assert_eq!(rtmr3_now, rtmr3::replay(&events).value());
    let at = HEADER_LEN + body::RTMR0 + 3 * 48;
    assert_eq!(&evidence.quote[at..at + 48], &rtmr3_now);
    // ... and the events are the documented three, in order, about this config and model.
    let kinds_of: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds_of, [kinds::CONFIG, kinds::MODEL, kinds::MODE]);
    let config_sha: [u8; 32] = Sha256::digest(&evidence.config_json).into();
    assert_eq!(events[0].payload(), config_sha);
    assert_eq!(hex::encode(events[1].payload()), agent.model_sha256);
    assert_eq!(events[2].payload(), b"simulated");

    // A production verifier (Intel's root only) refuses the simulated worker at the handshake.
    let production = verifier(agent.seed, false);
    let err = connect(agent.tls, production).expect_err("simulated evidence must not pass");
    assert!(
        ratls::tls::refusal_of(&err).is_some(),
        "not a verifier refusal: {err}"
    );
    // Refused handshakes do not cause quotes either.
    assert_eq!(agent.quotes_served(), 1);
}

#[test]
fn renewal_keeps_open_connections_and_serves_new_certificates() {
    let agent = Agent::start(12, &["--cert-lifetime", "6s"]);
    let v = verifier(agent.seed, true);
    let mut old = connect(agent.tls, v.clone()).unwrap();
    assert_eq!(request(&mut old, "GET", "/healthz", b"").0, 200);
    let first = peer_cert(&old);
    let p = ratls::parse_certificate(&first).unwrap();
    assert_eq!(
        p.not_after - p.not_before,
        6 + 60,
        "lifetime plus the backdate"
    );

    // Renewal at 2/3 of 6 s: new connections get a new certificate. (The second quote is
    // served a moment before the certificate built on it is installed, so poll the handshake.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut new, second) = loop {
        let conn = connect(agent.tls, v.clone()).expect("the served certificate verifies");
        let cert = peer_cert(&conn);
        if cert != first {
            break (conn, cert);
        }
        assert!(Instant::now() < deadline, "certificate never renewed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        agent.quotes_served() >= 2,
        "a renewed certificate carries a new quote"
    );
    let p2 = ratls::parse_certificate(&second).unwrap();
    assert_ne!(p.spki_der, p2.spki_der, "a new key per certificate");
    assert_eq!(request(&mut new, "GET", "/healthz", b"").0, 200);
    // The connection made before the renewal still works.
    assert_eq!(request(&mut old, "GET", "/v1/models", b"").0, 200);
    // No more quotes than certificates: at most one renewal can have happened in this time
    // beyond the one observed.
    assert!(agent.quotes_served() <= 3);
}

#[test]
fn preset_registers_appear_in_the_served_quote() {
    let regs = cocoon_tdx::simulated::SimulatedRegisters {
        mrtd: [0xa1; 48],
        rtmr0: [0xb0; 48],
        rtmr1: [0xb1; 48],
        rtmr2: [0xb2; 48],
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), regs.to_json()).unwrap();
    let agent = Agent::start(
        13,
        &["--simulated-registers", file.path().to_str().unwrap()],
    );
    // A manifest for the seeded MRTD no longer matches: the verifier names the registers.
    let err = connect(agent.tls, verifier(agent.seed, true)).expect_err("shape must not match");
    let refusal = ratls::tls::refusal_of(&err)
        .expect("a verifier refusal")
        .to_string();
    assert!(refusal.contains(&hex::encode(regs.mrtd)), "{refusal}");

    // Read the served quote without verification to see the registers it carries.
    let cert = served_cert_unverified(agent.tls);
    let quote = ratls::parse_certificate(&cert)
        .unwrap()
        .evidence()
        .unwrap()
        .quote;
    let field = |off: usize| &quote[HEADER_LEN + off..HEADER_LEN + off + 48];
    assert_eq!(field(body::MR_TD), &regs.mrtd);
    assert_eq!(field(body::RTMR0), &regs.rtmr0);
    assert_eq!(field(body::RTMR0 + 48), &regs.rtmr1);
    assert_eq!(field(body::RTMR0 + 96), &regs.rtmr2);
}

/// The end-entity certificate a server presents, taken with a verifier that accepts anything
/// (only to inspect it).
fn served_cert_unverified(addr: SocketAddr) -> Vec<u8> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    #[derive(Debug)]
    struct Capture(std::sync::Mutex<Vec<u8>>);
    impl ServerCertVerifier for Capture {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = end_entity.to_vec();
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }
    let capture = Arc::new(Capture(Default::default()));
    let config = rustls::ClientConfig::builder_with_provider(ratls::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("w").unwrap())
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let cert = capture.0.lock().unwrap().clone();
    cert
}

#[test]
fn tls_1_2_is_refused() {
    let agent = Agent::start(14, &[]);
    let config = rustls::ClientConfig::builder_with_provider(ratls::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("w").unwrap())
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(agent.tls).unwrap());
    let mut result = Ok(());
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            result = Err(e);
            break;
        }
    }
    let err = result.expect_err("TLS 1.2 handshake must fail");
    assert!(
        err.to_string().to_lowercase().contains("protocol"),
        "unexpected error: {err}"
    );
}

#[test]
fn linux_td_outside_a_tdx_guest_fails_clearly() {
    if Path::new("/sys/kernel/config/tsm/report").exists() {
        eprintln!("skipped: this machine has configfs-tsm (a TDX guest?)");
        return;
    }
    let model = tiny();
    let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--tls-listen",
            "127.0.0.1:0",
            "--td",
            "linux",
            "--model",
        ])
        .arg(&model)
        .args(["--model-sha256", &sha])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "no configfs-tsm at /sys/kernel/config/tsm/report: not running in a TDX guest"
        ),
        "{err}"
    );
    assert!(err.contains("--simulated-td DIR"), "{err}");
    assert!(out.stdout.is_empty(), "it must not listen");
}

#[test]
fn simulated_pki_files_let_a_host_verifier_accept_the_simulated_worker() {
    let seed = 15;
    let pki_dir = common::simulated_pki(seed);
    let pki = MockPki::new(seed).unwrap();
    assert_eq!(
        std::fs::read(pki_dir.path().join("root-ca.der")).unwrap(),
        pki.root_ca_der()
    );
    let written: Value =
        serde_json::from_slice(&std::fs::read(pki_dir.path().join("collateral.json")).unwrap())
            .unwrap();
    let expected: Value = serde_json::from_str(&pki.collateral().to_json()).unwrap();
    assert_eq!(written, expected);

    let agent = Agent::start(seed, &[]);
    let mut tls =
        connect(agent.tls, common::verifier_from_files(pki_dir.path())).expect("accepted");
    assert_eq!(request(&mut tls, "GET", "/healthz", b"").0, 200);
    // Files for another seed describe another TD and another root: refused.
    let other = common::simulated_pki(seed + 1);
    let err =
        connect(agent.tls, common::verifier_from_files(other.path())).expect_err("other seed");
    assert!(ratls::tls::refusal_of(&err).is_some(), "{err}");
}

/// A SIMULATED peer TD in this process with an RA-TLS client certificate, as a proxy in its
/// own TD would hold one.
struct ClientTd {
    // Declared (so dropped) before its directory: the TD's threads stop through its FIFOs.
    _td: cocoon_tdx::simulated::SimulatedTd,
    _dir: tempfile::TempDir,
    cert: Vec<u8>,
    key: rcgen::KeyPair,
}

fn client_td(seed: u64) -> ClientTd {
    let dir = tempfile::tempdir().unwrap();
    let td = cocoon_tdx::simulated::SimulatedTd::start(seed, dir.path()).unwrap();
    let provider = td.provider();
    let config_json = br#"{"role":"proxy"}"#.to_vec();
    let events = vec![
        rtmr3::Rtmr3Event::new(kinds::CONFIG, Sha256::digest(&config_json).to_vec()).unwrap(),
        rtmr3::Rtmr3Event::new(kinds::MODEL, [0u8; 32]).unwrap(),
        rtmr3::Rtmr3Event::new(kinds::MODE, "simulated").unwrap(),
    ];
    for e in &events {
        provider.extend_rtmr3(&e.digest()).unwrap();
    }
    let key = ratls::new_key().unwrap();
    let quote = provider
        .get_quote(ratls::report_data(&ratls::spki_der(&key)))
        .unwrap();
    let now = std::time::SystemTime::now();
    let cert = ratls::issue_certificate(
        &key,
        &ratls::Evidence {
            quote,
            events,
            config_json,
        },
        now - Duration::from_secs(60),
        now + Duration::from_secs(600),
        &[],
    )
    .unwrap();
    ClientTd {
        _dir: dir,
        _td: td,
        cert,
        key,
    }
}

/// Connects presenting `client`'s certificate (or none) and asks for /healthz; the result is
/// the HTTP status or the I/O error (a refused client certificate surfaces here in TLS 1.3).
fn healthz_as(
    addr: SocketAddr,
    server: Arc<RatlsVerifier>,
    client: Option<&ClientTd>,
) -> std::io::Result<u16> {
    #[derive(Debug)]
    struct Presented(Arc<rustls::sign::CertifiedKey>);
    impl rustls::client::ResolvesClientCert for Presented {
        fn resolve(
            &self,
            _root_hint_subjects: &[&[u8]],
            _sigschemes: &[rustls::SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }
    let config = match client {
        Some(c) => {
            let certified = ratls::rustls_certified_key(&c.key, c.cert.clone()).unwrap();
            ratls::tls::client_config_with_cert(server, Arc::new(Presented(certified))).unwrap()
        }
        None => ratls::tls::client_config(server).unwrap(),
    };
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("w").unwrap())
        .unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")?;
    tls.flush()?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw)?;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))
}

/// Whether the server ended the handshake with a TLS alert about the client's certificate
/// (not some unrelated I/O failure).
fn refused_by_alert(r: std::io::Result<u16>) -> bool {
    match r {
        Ok(status) => {
            eprintln!("unexpectedly served: HTTP {status}");
            false
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("refused: {msg}");
            msg.contains("received fatal alert") && msg.to_lowercase().contains("certificate")
        }
    }
}

#[test]
fn mutual_ratls_accepts_only_attested_clients_of_the_manifest() {
    let client_seed = 31;
    let pki = common::simulated_pki(client_seed);
    let p = |name: &str| pki.path().join(name).to_str().unwrap().to_string();
    let policy = [
        "--tls-client-auth".to_string(),
        "ratls".into(),
        "--client-manifest".into(),
        p("manifest.json"),
        "--client-manifest-key".into(),
        p("manifest-key.pub"),
        "--client-collateral".into(),
        p("collateral.json"),
    ];
    let mut trusting: Vec<&str> = policy.iter().map(String::as_str).collect();
    let root = p("root-ca.der");
    trusting.extend(["--client-simulated-root-ca", &root]);
    let agent = Agent::start(32, &trusting);
    let server = verifier(agent.seed, true);

    let good = client_td(client_seed);
    assert_eq!(
        healthz_as(agent.tls, server.clone(), Some(&good)).unwrap(),
        200
    );
    assert!(
        refused_by_alert(healthz_as(agent.tls, server.clone(), None)),
        "a client without a certificate is refused"
    );
    let stranger = client_td(client_seed + 2);
    assert!(
        refused_by_alert(healthz_as(agent.tls, server.clone(), Some(&stranger))),
        "a client TD outside the manifest (and its root) is refused"
    );

    // The client policy is part of the measured config the agent's certificate carries.
    let cert = served_cert_unverified(agent.tls);
    let id = server
        .verify_certificate(&cert, std::time::SystemTime::now())
        .unwrap();
    assert_eq!(id.config["tls"]["client_auth"], "ratls");
    let manifest_sha = hex::encode(Sha256::digest(
        std::fs::read(pki.path().join("manifest.json")).unwrap(),
    ));
    assert_eq!(
        id.config["tls"]["client_policy"]["manifest_sha256"],
        manifest_sha
    );
    assert!(id.config["tls"]["client_policy"]["simulated_root_ca_sha256"].is_string());
    drop(agent);

    // Without the mock root, the same simulated client is refused (production policy).
    let strict: Vec<&str> = policy.iter().map(String::as_str).collect();
    let agent = Agent::start(33, &strict);
    let server = verifier(agent.seed, true);
    assert!(refused_by_alert(healthz_as(agent.tls, server, Some(&good))));
}
