//! Attestation start-up steps against a simulated TD through the production provider code:
//! TD selection, RTMR3 measurement and its refusals, certificate issuance (one quote per key)
//! and the certificate store the TLS listener serves from.

use clap::Parser;
use cocoon_agent::attest::evidence;
use cocoon_agent::attest::measure::{self, Measurement};
use cocoon_agent::attest::measured::MeasuredConfig;
use cocoon_agent::attest::td::{Td, TdSelection};
use cocoon_agent::attest::tls::CertStore;
use cocoon_agent::attest::{AttestError, Mode};
use cocoon_agent::cli::{Cli, Command};
use cocoon_measure::ratls;
use cocoon_measure::rtmr3::{self, kinds};
use cocoon_tdx::layout::{body, HEADER_LEN};
use cocoon_tdx::simulated::{SimulatedRegisters, SimulatedTd};
use sha2::{Digest, Sha256};
use std::time::Duration;

const MODEL_SHA: [u8; 32] = [0x42; 32];

/// A measured config as `serve` builds it from its command line.
fn measured(extra: &[&str]) -> MeasuredConfig {
    let mut args = vec![
        "cocoon-agent",
        "serve",
        "--model",
        "/models/tiny.gguf",
        "--model-sha256",
        "4242424242424242424242424242424242424242424242424242424242424242",
    ];
    if !extra.contains(&"--tls-listen") {
        args.extend_from_slice(&["--tls-listen", "0.0.0.0:8443"]);
    }
    args.extend_from_slice(extra);
    let Command::Serve(a) = Cli::try_parse_from(args).unwrap().command else {
        unreachable!()
    };
    MeasuredConfig::from_config(&a.into_config().unwrap())
}

fn simulated(seed: u64) -> (tempfile::TempDir, Td) {
    let dir = tempfile::tempdir().unwrap();
    let td = Td::open(&TdSelection::Simulated {
        dir: dir.path().join("td"),
        seed,
        registers: None,
    })
    .unwrap();
    (dir, td)
}

fn rtmr3_of(td: &Td) -> [u8; 48] {
    td.simulated().unwrap().rtmrs()[3]
}

#[test]
fn measuring_extends_the_three_events_and_rtmr3_replays() {
    let (_dir, td) = simulated(1);
    assert_eq!(td.mode(), Mode::Simulated);
    let config = measured(&[]);
    let m = measure::measure(td.provider(), &config, &MODEL_SHA, td.mode()).unwrap();
    let kinds_of: Vec<&str> = m.events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds_of, [kinds::CONFIG, kinds::MODEL, kinds::MODE]);
    let config_sha: [u8; 32] = Sha256::digest(&m.config_json).into();
    assert_eq!(m.events[0].payload(), config_sha);
    assert_eq!(m.events[1].payload(), MODEL_SHA);
    assert_eq!(m.events[2].payload(), b"simulated");
    // The register the TD holds, what the agent read back, and the replay all agree.
    assert_eq!(rtmr3_of(&td), rtmr3::replay(&m.events).value());
    assert_eq!(m.rtmr3, rtmr3_of(&td));
    assert_ne!(m.rtmr3, [0; 48]);
}

#[test]
fn a_non_zero_rtmr3_refuses_start_and_extends_nothing() {
    let (_dir, td) = simulated(2);
    td.provider().extend_rtmr3(&[0x99; 48]).unwrap();
    let before = rtmr3_of(&td);
    let err = measure::measure(td.provider(), &measured(&[]), &MODEL_SHA, td.mode())
        .expect_err("RTMR3 was extended by someone else");
    assert!(matches!(err, AttestError::Rtmr3NotZero { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&hex::encode(before)), "{msg}");
    assert!(msg.contains("something else extended it"), "{msg}");
    assert_eq!(rtmr3_of(&td), before, "nothing was extended");

    // An agent restarted in the same TD with another config is refused the same way ...
    let (_dir, td) = simulated(3);
    let first = measure::measure(td.provider(), &measured(&[]), &MODEL_SHA, td.mode()).unwrap();
    assert!(matches!(
        measure::measure(
            td.provider(),
            &measured(&["--ctx", "4096"]),
            &MODEL_SHA,
            td.mode()
        ),
        Err(AttestError::Rtmr3NotZero { .. })
    ));
    assert!(matches!(
        measure::measure(td.provider(), &measured(&[]), &[0x55; 32], td.mode()),
        Err(AttestError::Rtmr3NotZero { .. })
    ));
    // ... while one with the same config and model finds its own events there and extends
    // nothing.
    let again = measure::measure(td.provider(), &measured(&[]), &MODEL_SHA, td.mode()).unwrap();
    assert_eq!(again, first);
    assert_eq!(rtmr3_of(&td), first.rtmr3);
}

#[test]
fn measured_config_follows_acceptance_settings_and_ignores_unmeasured_ones() {
    let base = measured(&[]);
    let json: serde_json::Value = serde_json::from_slice(&base.canonical_json()).unwrap();
    assert_eq!(json["model_id"], "tiny");
    assert_eq!(json["model_sha256"], hex::encode(MODEL_SHA));
    assert_eq!(json["plain_http"], false);
    assert_eq!(json["tls"]["cert_lifetime_secs"], 3600);
    // Measured settings change the digest ...
    for extra in [
        &["--ctx", "4096"][..],
        &["--queue", "3"],
        &["--body-limit", "4096"],
        &["--chat-template", "chatml"],
        &["--cert-lifetime", "30m"],
        &["--listen", "127.0.0.1:1"],
        &["--model-id", "other"],
        &[
            "--open-data-disk",
            "/bin/true",
            "--data-key-service",
            "127.0.0.1:1",
            "--data-key-service-pin",
            PIN.as_str(),
        ],
    ] {
        assert_ne!(measured(extra).sha256(), base.sha256(), "{extra:?}");
    }
    // ... unmeasured ones (threads, addresses, simulated TD settings) do not.
    for extra in [
        &["--threads", "3"][..],
        &["--tls-listen", "127.0.0.1:9"],
        &["--simulated-td", "/tmp/elsewhere", "--simulated-seed", "9"],
        // A SIMULATED data-disk key has no service to pin.
        &[
            "--simulated-td",
            "/tmp/elsewhere",
            "--open-data-disk",
            "/bin/true",
        ],
    ] {
        assert_eq!(measured(extra), base, "{extra:?}");
    }
    let pinned = serde_json::from_slice::<serde_json::Value>(
        &measured(&[
            "--open-data-disk",
            "/bin/true",
            "--data-key-service",
            "10.0.0.1:1",
            "--data-key-service-pin",
            PIN.as_str(),
        ])
        .canonical_json(),
    )
    .unwrap();
    assert_eq!(pinned["data_key_service_pin"], *PIN);
}

static PIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "ab".repeat(32));

fn issue(td: &Td, m: &Measurement) -> evidence::IssuedCert {
    evidence::issue(td.provider(), m, Duration::from_secs(600)).unwrap()
}

#[test]
fn each_certificate_costs_exactly_one_quote_bound_to_its_key() {
    let (_dir, td) = simulated(4);
    let m = measure::measure(td.provider(), &measured(&[]), &MODEL_SHA, td.mode()).unwrap();
    let sim: &SimulatedTd = td.simulated().unwrap();
    assert_eq!(sim.quotes_served(), 0);
    let a = issue(&td, &m);
    assert_eq!(sim.quotes_served(), 1);
    let b = issue(&td, &m);
    assert_eq!(sim.quotes_served(), 2);
    assert_eq!(a.cert_sha256, <[u8; 32]>::from(Sha256::digest(&a.cert_der)));
    let (pa, pb) = (
        ratls::parse_certificate(&a.cert_der).unwrap(),
        ratls::parse_certificate(&b.cert_der).unwrap(),
    );
    assert_ne!(pa.spki_der, pb.spki_der, "a new key per certificate");
    for p in [&pa, &pb] {
        let ev = p.evidence().unwrap();
        let at = HEADER_LEN + body::REPORT_DATA;
        assert_eq!(&ev.quote[at..at + 64], &ratls::report_data(&p.spki_der));
        assert_eq!(ev.config_json, m.config_json);
        assert_eq!(rtmr3::from_json(&ev.events_json).unwrap(), m.events);
    }
    assert_eq!(pa.not_after - pa.not_before, 600 + 60);

    // The store serves the certificate it holds, and the new one after a swap.
    let store = CertStore::new(a.clone());
    assert_eq!(store.current().cert_sha256, a.cert_sha256);
    store.replace(b.clone());
    assert_eq!(store.current().cert_sha256, b.cert_sha256);
    assert_eq!(sim.quotes_served(), 2, "swapping issues nothing");
}

#[test]
fn simulated_td_with_preset_registers_and_bad_register_files() {
    let dir = tempfile::tempdir().unwrap();
    let regs = SimulatedRegisters {
        mrtd: [1; 48],
        rtmr0: [2; 48],
        rtmr1: [3; 48],
        rtmr2: [4; 48],
    };
    let file = dir.path().join("regs.json");
    std::fs::write(&file, regs.to_json()).unwrap();
    let td = Td::open(&TdSelection::Simulated {
        dir: dir.path().join("td"),
        seed: 1,
        registers: Some(file.clone()),
    })
    .unwrap();
    assert_eq!(
        td.provider().read_rtmrs().unwrap(),
        [regs.rtmr0, regs.rtmr1, regs.rtmr2, [0; 48]]
    );
    assert_eq!(td.simulated().unwrap().config().mr_td, regs.mrtd);

    std::fs::write(&file, r#"{"mrtd":"00"}"#).unwrap();
    let err = Td::open(&TdSelection::Simulated {
        dir: dir.path().join("td2"),
        seed: 1,
        registers: Some(file),
    })
    .unwrap_err();
    assert!(matches!(err, AttestError::Registers(_)), "{err}");
}

#[test]
fn linux_selection_outside_a_td_names_the_missing_interface() {
    if std::path::Path::new("/sys/kernel/config/tsm/report").exists() {
        eprintln!("skipped: configfs-tsm exists here");
        return;
    }
    let err = Td::open(&TdSelection::Linux).unwrap_err();
    assert!(matches!(err, AttestError::NotATd(_)), "{err}");
    assert!(
        err.to_string().starts_with(
            "no configfs-tsm at /sys/kernel/config/tsm/report: not running in a TDX guest"
        ),
        "{err}"
    );
}
