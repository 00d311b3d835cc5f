//! `cocoon-host verify-running` against a worker stand-in: a TLS 1.3 server in this test
//! presenting an RA-TLS certificate issued over a real quote from a simulated TD (the same
//! provider code the agent uses), checked by the binary with the measurements crate's
//! verifier against a signed manifest.

use cocoon_measure::manifest::{
    ImageStatic, Manifest, ManifestBody, Registers, ShapeEntry, TdPolicy, FORMAT_V1,
};
use cocoon_measure::ratls::{self, Evidence};
use cocoon_measure::rtmr3::{kinds, Rtmr3Event};
use cocoon_tdx::simulated::{SimulatedTd, SimulatedTdConfig};
use rustls::sign::SingleCertAndKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-host");
const SEED: u64 = 77;
const CONFIG_JSON: &[u8] = br#"{"format":"test","model_id":"tiny"}"#;
const MODEL_SHA256: [u8; 32] = [0x5a; 32];

fn signing_key(byte: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[byte; 32])
}

/// A signed manifest with one shape holding the simulated TD's registers (MRTD from the
/// seed, RTMR0-2 zero).
fn manifest(mrtd: [u8; 48], key: &ed25519_dalek::SigningKey) -> String {
    let body = ManifestBody {
        format: FORMAT_V1.to_string(),
        release: "verify-running-test-1".to_string(),
        commit: "0123456789abcdef".to_string(),
        td: TdPolicy {
            attributes: cocoon_measure::manifest::DEFAULT_TD_ATTRIBUTES,
            xfam: cocoon_tdx::simulated::SIMULATED_XFAM,
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
        },
        image: ImageStatic {
            mrtd,
            rtmr1: Some([0; 48]),
            rtmr2: Some([0; 48]),
            firmware_sha256: [1; 32],
            kernel_sha256: [2; 32],
            initrd_sha256: None,
            cmdline: "console=hvc0".to_string(),
        },
        rtmr3: None,
        shapes: vec![ShapeEntry {
            name: "c1-m1g-g0".to_string(),
            cpus: 1,
            memory_bytes: 1 << 30,
            gpus: 0,
            acpi: vec![],
            events: vec![],
            registers: Registers {
                mrtd,
                rtmr0: [0; 48],
                rtmr1: [0; 48],
                rtmr2: [0; 48],
                rtmr3: None,
            },
            identity_sha384: None,
            cocoon_image_hash: None,
        }],
    };
    body.validate().unwrap();
    let mut m = Manifest {
        body,
        signature: None,
    };
    m.sign(key);
    m.to_json()
}

/// The worker stand-in and the verifier's files. Field order matters: the simulated TD stops
/// before its directory is removed.
struct Worker {
    _td: SimulatedTd,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    cert_sha256: String,
}

impl Worker {
    fn start(mode: &str) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let td =
            SimulatedTd::start_with(SimulatedTdConfig::new(SEED), &dir.path().join("td")).unwrap();
        // As the agent does: extend RTMR3 with its events, then one quote for a fresh key.
        let events = vec![
            Rtmr3Event::new(kinds::CONFIG, Sha256::digest(CONFIG_JSON).to_vec()).unwrap(),
            Rtmr3Event::new(kinds::MODEL, MODEL_SHA256.to_vec()).unwrap(),
            Rtmr3Event::new(kinds::MODE, mode.as_bytes().to_vec()).unwrap(),
        ];
        let provider = td.provider();
        for e in &events {
            provider.extend_rtmr3(&e.digest()).unwrap();
        }
        let key = ratls::new_key().unwrap();
        let quote = provider
            .get_quote(ratls::report_data(&ratls::spki_der(&key)))
            .unwrap();
        let evidence = Evidence {
            quote,
            events,
            config_json: CONFIG_JSON.to_vec(),
        };
        let now = SystemTime::now();
        let der = ratls::issue_certificate(
            &key,
            &evidence,
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
            &[],
        )
        .unwrap();
        let cert_sha256 = hex::encode(Sha256::digest(&der));
        let certified = ratls::rustls_certified_key(&key, der).unwrap();
        let config = Arc::new(
            ratls::tls::server_config(Arc::new(SingleCertAndKey::from(certified)), None).unwrap(),
        );

        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes);
        write(
            "manifest.json",
            manifest(td.config().mr_td, &signing_key(9)).as_bytes(),
        )
        .unwrap();
        write(
            "other-manifest.json",
            manifest(td.config().mr_td, &signing_key(8)).as_bytes(),
        )
        .unwrap();
        write(
            "manifest.pub",
            format!(
                "{}\n",
                hex::encode(signing_key(9).verifying_key().to_bytes())
            )
            .as_bytes(),
        )
        .unwrap();
        write("collateral.json", td.collateral().to_json().as_bytes()).unwrap();
        write("root-ca.der", td.root_ca_der()).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { return };
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            return;
                        }
                    }
                    // Wait for the client to close.
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let mut buf = [0u8; 64];
                    let _ = tls.read(&mut buf);
                });
            }
        });
        Worker {
            addr,
            dir,
            cert_sha256,
            _td: td,
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `verify-running --addr` with the manifest, key and collateral, plus `extra`.
    fn verify(&self, extra: &[&str]) -> Output {
        let addr = self.addr.to_string();
        let (m, k, c) = (
            self.file("manifest.json"),
            self.file("manifest.pub"),
            self.file("collateral.json"),
        );
        let mut args = vec![
            "verify-running",
            "--addr",
            &addr,
            "--manifest",
            &m,
            "--pubkey",
            &k,
            "--collateral",
            &c,
        ];
        args.extend_from_slice(extra);
        Command::new(BIN).args(&args).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_simulated_worker_is_accepted_only_when_simulated_evidence_is_trusted() {
    let w = Worker::start("simulated");
    let root = w.file("root-ca.der");
    let out = w.verify(&["--trust-simulated", "--root-ca", &root]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("ACCEPTED: the worker at {}", w.addr)),
        "{text}"
    );
    for needle in [
        "release        verify-running-test-1".to_string(),
        "shape          c1-m1g-g0".to_string(),
        "mode           simulated (SIMULATED".to_string(),
        format!(
            "config sha256  {}",
            hex::encode(Sha256::digest(CONFIG_JSON))
        ),
        format!("model sha256   {}", hex::encode(MODEL_SHA256)),
        "TCB status     UpToDate".to_string(),
        format!("certificate    {}", w.cert_sha256),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in {text}");
    }
    assert!(stderr(&out).contains("WARNING: --trust-simulated"));

    let out = w.verify(&["--trust-simulated", "--root-ca", &root, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accepted"], true);
    assert_eq!(v["addr"], w.addr.to_string());
    assert_eq!(v["identity"]["shape"], "c1-m1g-g0");
    assert_eq!(v["identity"]["mode"], "simulated");
    assert_eq!(v["identity"]["simulated_root"], true);
    assert_eq!(v["identity"]["cert_sha256"], w.cert_sha256);
    assert_eq!(v["identity"]["config"]["model_id"], "tiny");

    // The production policy (Intel's root only) refuses the same worker, with the reason.
    let out = w.verify(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("REFUSED: the worker at {}", w.addr)),
        "{text}"
    );
    assert!(
        text.contains("does not end at Intel's SGX Root CA"),
        "{text}"
    );
    let out = w.verify(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accepted"], false);
    assert!(
        v["refusal"]
            .as_str()
            .unwrap()
            .contains("Intel's SGX Root CA"),
        "{v}"
    );
    assert!(v.get("identity").is_none());
}

#[test]
fn a_worker_measuring_production_mode_on_simulated_evidence_is_refused_too() {
    // Even claiming `production`, its quote chains to the mock root: refused by production.
    let w = Worker::start("production");
    let out = w.verify(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Intel's SGX Root CA"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_inputs_and_unreachable_workers() {
    let w = Worker::start("simulated");
    let (m, other, k, c) = (
        w.file("manifest.json"),
        w.file("other-manifest.json"),
        w.file("manifest.pub"),
        w.file("collateral.json"),
    );
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    // A manifest signed by another key.
    let out = run(&[
        "verify-running",
        "--addr",
        &w.addr.to_string(),
        "--manifest",
        &other,
        "--pubkey",
        &k,
        "--collateral",
        &c,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not by the expected key"),
        "{}",
        stderr(&out)
    );
    // A missing key file, a bad root CA.
    let out = run(&[
        "verify-running",
        "--addr",
        "127.0.0.1:1",
        "--manifest",
        &m,
        "--pubkey",
        "/nonexistent.pub",
        "--collateral",
        &c,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent.pub"),
        "{}",
        stderr(&out)
    );
    let out = w.verify(&["--trust-simulated", "--root-ca", &m]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a DER certificate"),
        "{}",
        stderr(&out)
    );
    // --trust-simulated without --root-ca is a usage error.
    assert_eq!(w.verify(&["--trust-simulated"]).status.code(), Some(2));

    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(&[
        "verify-running",
        "--addr",
        &closed.to_string(),
        "--manifest",
        &m,
        "--pubkey",
        &k,
        "--collateral",
        &c,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("connecting to {closed}")),
        "{}",
        stderr(&out)
    );

    // A peer that accepts and never speaks TLS: bounded by --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(conns);
    });
    let started = Instant::now();
    let out = run(&[
        "verify-running",
        "--addr",
        &silent_addr.to_string(),
        "--manifest",
        &m,
        "--pubkey",
        &k,
        "--collateral",
        &c,
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did not finish within 1 s"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Writes a launch config whose instance `instance` forwards to `addr`'s port.
fn launch_config(dir: &Path, addr: SocketAddr, instance: u16) -> PathBuf {
    let text = format!(
        "owner_address = \"0:{}\"\nmanifest = \"manifest.json\"\n\n[image]\ndir = \"release\"\n\n\
         [vm]\nvcpus = 1\nmemory = \"1G\"\n\n[data_disk]\npath = \"data.img\"\nsize = \"1G\"\n\n\
         [model_disk]\npath = \"model.img\"\nverity = \"model.verity\"\nroot_hash = \"{}\"\n\n\
         [config_share]\ndir = \"worker-config\"\n\n[agent]\nport = {}\nhost_address = \"{}\"\n",
        "ab".repeat(32),
        "cd".repeat(32),
        addr.port() - instance,
        addr.ip()
    );
    let p = dir.join("launch.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_instance_port_and_manifest_come_from_the_launch_config() {
    let w = Worker::start("simulated");
    let config = launch_config(w.dir.path(), w.addr, 3);
    let (k, c, root) = (
        w.file("manifest.pub"),
        w.file("collateral.json"),
        w.file("root-ca.der"),
    );
    let out = Command::new(BIN)
        .args([
            "verify-running",
            "--config",
            config.to_str().unwrap(),
            "--instance",
            "3",
        ])
        .args([
            "--pubkey",
            &k,
            "--collateral",
            &c,
            "--trust-simulated",
            "--root-ca",
            &root,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("the worker at {}", w.addr)),
        "{}",
        stdout(&out)
    );
    // Instance 2 of the same config is another port, where nothing listens.
    let out = Command::new(BIN)
        .args([
            "verify-running",
            "--config",
            config.to_str().unwrap(),
            "--instance",
            "2",
        ])
        .args(["--pubkey", &k, "--collateral", &c])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let other = SocketAddr::new(w.addr.ip(), w.addr.port() - 1);
    assert!(
        stderr(&out).contains(&format!("connecting to {other}")),
        "{}",
        stderr(&out)
    );
    // Neither --config nor --addr.
    let out = Command::new(BIN)
        .args(["verify-running", "--manifest", "m.json", "--pubkey", &k])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
