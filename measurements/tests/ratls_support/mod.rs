//! Shared fixture of the RA-TLS tests: a simulated TD driven through the production provider,
//! a signed manifest whose shape registers are the TD's, and certificates issued from real
//! quotes.
#![allow(dead_code)]

use cocoon_measure::identity::{
    cocoon_image_hash, identity_hash, CocoonImageRegisters, TdIdentity,
};
use cocoon_measure::manifest::{
    ImageStatic, Manifest, ManifestBody, Registers, Rtmr3Pin, ShapeEntry, TdPolicy, FORMAT_V1,
};
use cocoon_measure::ratls::{self, CollateralSource, Evidence, RatlsVerifier, VerifierConfig};
use cocoon_measure::rtmr3::{self, kinds, PublishedEvent, Rtmr3Event};
use cocoon_tdx::simulated::{SimulatedCollateral, SimulatedTd, SimulatedTdConfig};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z, inside the mock PKI's validity.
pub const NOW_UNIX: u64 = 1_767_225_600;
pub const SEED: u64 = 4242;
pub const CONFIG_JSON: &[u8] = br#"{"model":"qwen","price_per_token":3,"workers":2}"#;
pub const MODEL_SHA256: [u8; 32] = [0x5a; 32];

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

pub struct Fixture {
    pub td: SimulatedTd,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut SimulatedTdConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimulatedTdConfig::new(SEED);
        f(&mut config);
        let td = SimulatedTd::start_with(config, dir.path()).unwrap();
        Fixture { td, _dir: dir }
    }

    pub fn collateral_json(&self) -> Vec<u8> {
        self.td.collateral().to_json().into_bytes()
    }

    /// Extends RTMR3 with `events` through the provider, as the agent does at start.
    pub fn extend(&self, events: &[Rtmr3Event]) {
        let provider = self.td.provider();
        for e in events {
            provider.extend_rtmr3(&e.digest()).unwrap();
        }
    }

    /// A quote through the provider binding `report_data`.
    pub fn quote(&self, report_data: [u8; 64]) -> Vec<u8> {
        self.td.provider().get_quote(report_data).unwrap()
    }
}

pub fn standard_events(config_json: &[u8], mode: &str) -> Vec<Rtmr3Event> {
    let config: [u8; 32] = Sha256::digest(config_json).into();
    vec![
        Rtmr3Event::new(kinds::CONFIG, config).unwrap(),
        Rtmr3Event::new(kinds::MODEL, MODEL_SHA256).unwrap(),
        Rtmr3Event::new(kinds::MODE, mode).unwrap(),
    ]
}

pub fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

/// A signed manifest with one shape whose MRTD is `mrtd`, RTMR0-2 zero (the simulated TD's
/// boot registers), and the simulated TD's default TD policy; RTMR3 pinned to `pin` if given.
pub fn manifest(mrtd: [u8; 48], pin: Option<&[Rtmr3Event]>) -> Manifest {
    let td = TdPolicy {
        attributes: cocoon_measure::manifest::DEFAULT_TD_ATTRIBUTES,
        xfam: cocoon_tdx::simulated::SIMULATED_XFAM,
        mr_config_id: [0; 48],
        mr_owner: [0; 48],
        mr_owner_config: [0; 48],
    };
    let rtmr3_pin = pin.map(|events| Rtmr3Pin {
        events: events.iter().map(PublishedEvent::from).collect(),
        value: rtmr3::replay(events).value(),
    });
    let rtmr3_value = rtmr3_pin.as_ref().map(|p| p.value);
    let (identity_sha384, image_hash) = match rtmr3_value {
        Some(r3) => {
            let rtmr = [[0; 48], [0; 48], [0; 48], r3];
            (
                Some(identity_hash(&TdIdentity {
                    mrtd,
                    rtmr,
                    td_attributes: td.attributes,
                    xfam: td.xfam,
                })),
                Some(cocoon_image_hash(&CocoonImageRegisters {
                    mrtd,
                    mr_config_id: td.mr_config_id,
                    mr_owner: td.mr_owner,
                    mr_owner_config: td.mr_owner_config,
                    rtmr,
                })),
            )
        }
        None => (None, None),
    };
    let body = ManifestBody {
        format: FORMAT_V1.to_string(),
        release: "ratls-test-1".to_string(),
        commit: "0123456789abcdef".to_string(),
        td,
        image: ImageStatic {
            mrtd,
            rtmr1: Some([0; 48]),
            rtmr2: Some([0; 48]),
            firmware_sha256: [1; 32],
            kernel_sha256: [2; 32],
            initrd_sha256: None,
            cmdline: "console=hvc0".to_string(),
        },
        rtmr3: rtmr3_pin,
        shapes: vec![ShapeEntry {
            name: "sim-1cpu".to_string(),
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
                rtmr3: rtmr3_value,
            },
            identity_sha384,
            cocoon_image_hash: image_hash,
        }],
    };
    body.validate().unwrap();
    let mut m = Manifest {
        body,
        signature: None,
    };
    m.sign(&signing_key());
    // Round trip through the file format, as a consumer reads it.
    Manifest::parse_verified(m.to_json().as_bytes(), &signing_key().verifying_key()).unwrap()
}

/// Verifier configuration for the fixture's TD; `trusting` adds the mock root.
pub fn verifier_config(fx: &Fixture, manifest: Manifest, trusting: bool) -> VerifierConfig {
    let mut c = VerifierConfig::new(
        manifest,
        signing_key().verifying_key(),
        CollateralSource::Json(fx.collateral_json()),
    );
    c.fixed_time = Some(now());
    if trusting {
        c = c.trust_simulated(fx.td.root_ca_der().to_vec());
    }
    c
}

pub fn verifier(fx: &Fixture, trusting: bool) -> RatlsVerifier {
    let m = manifest(fx.td.config().mr_td, None);
    RatlsVerifier::new(verifier_config(fx, m, trusting)).unwrap()
}

/// A certificate issued the way the agent issues it: fresh key, RTMR3 extended with the
/// events, quote over report_data(SPKI). Returns the key and the DER.
pub struct Issued {
    pub key: rcgen::KeyPair,
    pub der: Vec<u8>,
    pub evidence: Evidence,
}

pub fn validity() -> (SystemTime, SystemTime) {
    (
        now() - Duration::from_secs(60),
        now() + Duration::from_secs(3600),
    )
}

pub fn issue_with(fx: &Fixture, events: Vec<Rtmr3Event>, config_json: &[u8]) -> Issued {
    let (nb, na) = validity();
    issue_at(fx, events, config_json, nb, na)
}

pub fn issue_at(
    fx: &Fixture,
    events: Vec<Rtmr3Event>,
    config_json: &[u8],
    nb: SystemTime,
    na: SystemTime,
) -> Issued {
    fx.extend(&events);
    let key = ratls::new_key().unwrap();
    let quote = fx.quote(ratls::report_data(&ratls::spki_der(&key)));
    let evidence = Evidence {
        quote,
        events,
        config_json: config_json.to_vec(),
    };
    let der = ratls::issue_certificate(&key, &evidence, nb, na, &["worker.test".into()]).unwrap();
    Issued { key, der, evidence }
}

pub fn issue(fx: &Fixture, mode: &str) -> Issued {
    issue_with(fx, standard_events(CONFIG_JSON, mode), CONFIG_JSON)
}

fn encode_header(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Serves PCCS endpoints for `c`; records every request path. `broken` answers 404 to all.
pub fn pccs(c: SimulatedCollateral, broken: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") && s.read(&mut byte).map(|n| n == 1).unwrap_or(false)
            {
                buf.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let (header, body): (Option<(&str, String)>, Vec<u8>) = if broken {
                (None, Vec::new())
            } else if path.starts_with("/sgx/certification/v4/pckcrl?ca=") {
                (
                    Some((
                        "SGX-PCK-CRL-Issuer-Chain",
                        encode_header(&c.pck_crl_issuer_chain),
                    )),
                    c.pck_crl.clone(),
                )
            } else if path.starts_with("/tdx/certification/v4/tcb?fmspc=") {
                (
                    Some((
                        "TCB-Info-Issuer-Chain",
                        encode_header(&c.tcb_info_issuer_chain),
                    )),
                    format!(
                        r#"{{"tcbInfo":{},"signature":"{}"}}"#,
                        c.tcb_info,
                        hex::encode(&c.tcb_info_signature)
                    )
                    .into_bytes(),
                )
            } else if path == "/tdx/certification/v4/qe/identity" {
                (
                    Some((
                        "SGX-Enclave-Identity-Issuer-Chain",
                        encode_header(&c.qe_identity_issuer_chain),
                    )),
                    format!(
                        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                        c.qe_identity,
                        hex::encode(&c.qe_identity_signature)
                    )
                    .into_bytes(),
                )
            } else if path == "/sgx/certification/v4/rootcacrl" {
                (None, hex::encode(&c.root_ca_crl).into_bytes())
            } else {
                (None, Vec::new())
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let mut resp = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
            if let Some((name, value)) = header {
                resp.push_str(&format!("{name}: {value}\r\n"));
            }
            resp.push_str("Connection: close\r\n\r\n");
            let _ = s.write_all(resp.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (url, seen)
}
