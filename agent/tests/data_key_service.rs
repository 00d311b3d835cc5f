//! `serve --open-data-disk` with the key from `cocoon-measure key-service`, as an operator sets
//! it up: the service (the library the CLI runs, in this process) verifies the SIMULATED
//! worker's RA-TLS client certificate against the files `cocoon-agent simulated-pki` wrote, and
//! releases the key of the owner in the worker's measured billing config; the real agent binary
//! measures itself, fetches the key over mutual TLS with the service pinned, and pipes it into
//! the disk program before billing opens its ledger on the "disk".

mod common;

use cocoon_measure::key_release::{Service, ServiceSecret};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::BIN;
const OWNER: &str = "0:abababababababababababababababababababababababababababababababab";

/// Stands in for /usr/lib/cocoon/open-data-disk: keeps the key it was given, "mounts" the
/// disk by creating the directory the ledger lives in, and says so.
const DISK_PROGRAM: &str = r#"#!/bin/sh
set -eu
cat >"$0.key"
mkdir "$(dirname "$0")/mnt"
echo "disk program: mounted" >&2
"#;

/// A key service on an ephemeral port, running until the test ends.
struct KeyService {
    addr: SocketAddr,
    pin: [u8; 32],
    secret_hex: String,
    _runtime: tokio::runtime::Runtime,
}

impl KeyService {
    fn start(pki: &Path) -> KeyService {
        let secret = ServiceSecret::generate().unwrap();
        let secret_hex = secret.to_hex().trim().to_string();
        let service = Arc::new(Service::new(secret, common::verifier_from_files(pki)).unwrap());
        let pin = service.pin();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(service.serve(listener));
        KeyService {
            addr,
            pin,
            secret_hex,
            _runtime: runtime,
        }
    }

    fn key_of(&self, owner: &str) -> Vec<u8> {
        ServiceSecret::from_hex(&self.secret_hex)
            .unwrap()
            .data_key(owner)
            .to_vec()
    }
}

/// One worker's files: the disk program and a billing config whose ledger is on the "disk".
struct Worker {
    dir: tempfile::TempDir,
}

impl Worker {
    fn new(billing: bool) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("open-data-disk");
        std::fs::write(&program, DISK_PROGRAM).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        if billing {
            let cfg = serde_json::json!({
                "prices": {"prompt_nanoton_per_token": 1, "completion_nanoton_per_token": 1},
                "payout": {"owner_address": OWNER, "threshold_nanoton": 1_000_000_000u64},
                // Nothing listens there: chain work only logs its failures.
                "chain": {"endpoint": "http://127.0.0.1:9", "request_timeout_secs": 1, "total_timeout_secs": 1},
                "ledger": dir.path().join("mnt/payments.ledger"),
                "wallet_key": dir.path().join("mnt/node.key"),
            });
            std::fs::write(dir.path().join("billing.json"), cfg.to_string()).unwrap();
        }
        Worker { dir }
    }

    fn program(&self) -> PathBuf {
        self.dir.path().join("open-data-disk")
    }

    fn received_key(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("open-data-disk.key")).ok()
    }

    /// Runs `serve` until it listens (then kills it) or exits.
    fn serve(&self, seed: u64, extra: &[&str]) -> Output {
        let model = cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)");
        let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
        let td = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--ctx",
            "128",
        ])
        .arg("--model")
        .arg(&model)
        .args([
            "--model-sha256",
            &sha,
            "--simulated-seed",
            &seed.to_string(),
        ])
        .arg("--simulated-td")
        .arg(td.path())
        .arg("--open-data-disk")
        .arg(self.program())
        .args(extra);
        let billing = self.dir.path().join("billing.json");
        if billing.exists() {
            cmd.arg("--billing").arg(billing);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first stdout line is the listening announcement; EOF means it exited.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        if !line.is_empty() {
            let _ = child.kill();
        }
        let mut out = child.wait_with_output().unwrap();
        out.stdout = line.into_bytes();
        out
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn service_args(service: &KeyService, pin: &str) -> Vec<String> {
    vec![
        "--data-key-service".into(),
        service.addr.to_string(),
        "--data-key-service-pin".into(),
        pin.into(),
        "--data-key-timeout".into(),
        "3s".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_verified_worker_gets_its_owners_key_before_billing_opens_the_ledger() {
    let seed = 21;
    let pki = common::simulated_pki(seed);
    let service = KeyService::start(pki.path());
    let worker = Worker::new(true);
    let args = service_args(&service, &hex::encode(service.pin));
    let out = worker.serve(seed, &strs(&args));
    let err = stderr(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("cocoon-agent: listening on http://"),
        "the agent did not start:\n{err}"
    );
    assert_eq!(worker.received_key(), Some(service.key_of(OWNER)), "{err}");
    assert!(err.contains("disk program: mounted"), "{err}");
    // Billing opened its ledger in the directory the program made: after the disk, not before.
    assert!(
        worker.dir.path().join("mnt/payments.ledger").exists(),
        "{err}"
    );

    // The same owner on another boot gets the same key; the service's key depends on nothing
    // else of the worker's.
    let again = Worker::new(true);
    assert!(again
        .serve(seed, &strs(&args))
        .stdout
        .starts_with(b"cocoon-agent: listening"));
    assert_eq!(again.received_key(), worker.received_key());
}

#[test]
fn a_worker_the_manifest_does_not_admit_gets_nothing() {
    let seed = 22;
    let pki = common::simulated_pki(seed);
    let service = KeyService::start(pki.path());
    let args = service_args(&service, &hex::encode(service.pin));
    // Another image or VM shape: registers the manifest does not list (same mock root).
    let registers = tempfile::NamedTempFile::new().unwrap();
    let other = serde_json::json!({
        "mrtd": "11".repeat(48), "rtmr0": "22".repeat(48), "rtmr1": "33".repeat(48), "rtmr2": "44".repeat(48),
    });
    std::fs::write(registers.path(), other.to_string()).unwrap();
    let mut with_registers = strs(&args);
    with_registers.extend(["--simulated-registers", registers.path().to_str().unwrap()]);
    // Another machine: seed 23's mock root, which the service does not trust.
    for (seed, extra) in [(seed, with_registers), (23, strs(&args))] {
        let worker = Worker::new(true);
        let out = worker.serve(seed, &extra);
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(out.stdout.is_empty(), "it must not listen:\n{err}");
        // Retried (the service might refuse for a passing reason) until the time is up. The
        // last error is the service's alert, or the connection it closed, depending on timing.
        assert!(err.contains("gave no key within 3 s"), "{err}");
        assert!(err.contains("attempts); last error: "), "{err}");
        assert_eq!(worker.received_key(), None, "the disk program ran");
    }
}

#[test]
fn a_worker_without_billing_has_no_owner_and_gets_nothing() {
    let seed = 24;
    let service = KeyService::start(common::simulated_pki(seed).path());
    let worker = Worker::new(false);
    let out = worker.serve(
        seed,
        &strs(&service_args(&service, &hex::encode(service.pin))),
    );
    let err = stderr(&out);
    assert!(out.stdout.is_empty(), "it must not listen:\n{err}");
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains("the worker's measured config has no billing.owner_address"),
        "{err}"
    );
    assert_eq!(worker.received_key(), None);
}

#[test]
fn a_service_that_does_not_match_the_pin_is_not_trusted() {
    let seed = 25;
    let service = KeyService::start(common::simulated_pki(seed).path());
    let worker = Worker::new(true);
    let out = worker.serve(seed, &strs(&service_args(&service, &"00".repeat(32))));
    let err = stderr(&out);
    assert!(out.stdout.is_empty(), "it must not listen:\n{err}");
    assert!(
        err.contains(&format!(
            "key service public key SHA-256 is {}, the pin is {}",
            hex::encode(service.pin),
            "00".repeat(32)
        )),
        "{err}"
    );
    assert_eq!(worker.received_key(), None);
}

#[test]
fn an_unreachable_service_is_retried_then_reported() {
    let worker = Worker::new(true);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = worker.serve(
        26,
        &[
            "--data-key-service",
            &format!("127.0.0.1:{port}"),
            "--data-key-service-pin",
            &"00".repeat(32),
            "--data-key-timeout",
            "2s",
        ],
    );
    let err = stderr(&out);
    assert!(out.stdout.is_empty(), "{err}");
    assert!(err.contains("gave no key within 2 s"), "{err}");
    assert!(err.contains("attempts); last error: connecting"), "{err}");
    assert_eq!(worker.received_key(), None);
}

#[test]
fn a_failing_disk_program_stops_the_agent_before_it_listens() {
    let worker = Worker::new(true);
    std::fs::write(
        worker.program(),
        "#!/bin/sh\ncat >/dev/null\necho 'cocoon-data: data disk: foreign content' >&2\nexit 3\n",
    )
    .unwrap();
    // SIMULATED key (no --data-key-service on a simulated TD).
    let out = worker.serve(27, &[]);
    let err = stderr(&out);
    assert!(out.stdout.is_empty(), "{err}");
    assert!(
        err.contains("cocoon-data: data disk: foreign content"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "data disk: {} failed (exit status: 3)",
            worker.program().display()
        )),
        "{err}"
    );
    assert!(!worker.dir.path().join("mnt/payments.ledger").exists());
}

/// `serve` on a real TD (no simulated TD) with `extra`: refused at configuration, before the
/// model is read; returns stderr.
fn refused_on_a_real_td(extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "/nonexistent.gguf",
        ])
        .args([
            "--model-sha256",
            &"42".repeat(32),
            "--open-data-disk",
            "/bin/true",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success());
    stderr(&out)
}

#[test]
fn a_real_td_needs_a_key_service() {
    let err = refused_on_a_real_td(&[]);
    assert!(
        err.contains("--open-data-disk on a real TD needs --data-key-service HOST:PORT"),
        "{err}"
    );
    // A pin that is not a SHA-256 is refused before anything starts.
    let err = refused_on_a_real_td(&[
        "--data-key-service",
        "127.0.0.1:1",
        "--data-key-service-pin",
        "abc",
    ]);
    assert!(
        err.contains("data disk: key service pin \"abc\" is not 64 hex digits"),
        "{err}"
    );
}
