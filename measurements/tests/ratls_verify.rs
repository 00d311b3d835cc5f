//! RA-TLS certificate verification against real simulated-TD evidence: the accepted identity,
//! and one test per refusal reason.

mod ratls_support;

use cocoon_measure::quote::QuoteError;
use cocoon_measure::ratls::{
    self, issue_with_raw_extensions, Evidence, RatlsVerifier, Refusal, SetupError, MAX_QUOTE_EXT,
    OID_ARC, OID_CONFIG, OID_QUOTE, OID_RTMR3_EVENTS,
};
use cocoon_measure::rtmr3::{self, kinds, Rtmr3Event};
use ratls_support::*;
use sha2::{Digest, Sha256};
use std::time::Duration;

fn refusal(v: &RatlsVerifier, der: &[u8]) -> Refusal {
    v.verify_certificate(der, now()).unwrap_err()
}

#[test]
fn simulated_worker_is_accepted_with_its_identity() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let id = v.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(id.release, "ratls-test-1");
    assert_eq!(id.shape, "sim-1cpu");
    assert_eq!(id.mode, "simulated");
    assert_eq!(id.tcb_status, "UpToDate");
    assert!(id.simulated_root);
    assert_eq!(id.model_sha256, MODEL_SHA256);
    let config_sha: [u8; 32] = Sha256::digest(CONFIG_JSON).into();
    assert_eq!(id.config_sha256, config_sha);
    assert_eq!(id.config["model"], "qwen");
    let cert_sha: [u8; 32] = Sha256::digest(&cert.der).into();
    assert_eq!(id.cert_sha256, cert_sha);
    assert!(id.to_string().contains("SIMULATED"));
}

#[test]
fn cache_verifies_a_certificate_once() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let a = v.verify_cached(&cert.der, now()).unwrap();
    let b = v.verify_cached(&cert.der, now()).unwrap();
    assert_eq!(a, b);
    let stats = v.stats();
    assert_eq!(stats.full_verifications, 1);
    assert_eq!(stats.cache_hits, 1);
    // Past not_after the cached entry is not used: the certificate is re-verified and refused.
    let later = now() + Duration::from_secs(7200);
    assert!(matches!(
        v.verify_cached(&cert.der, later),
        Err(Refusal::Expired { .. })
    ));
}

#[test]
fn wrong_measurement_is_refused() {
    let fx = Fixture::start();
    let mut other_mrtd = fx.td.config().mr_td;
    other_mrtd[0] ^= 1;
    let m = manifest(other_mrtd, None);
    let v = RatlsVerifier::new(verifier_config(&fx, m, true)).unwrap();
    let cert = issue(&fx, "simulated");
    let r = refusal(&v, &cert.der);
    assert!(matches!(r, Refusal::UnknownMeasurement { .. }), "{r}");
    assert!(r.to_string().contains(&hex::encode(fx.td.config().mr_td)));
}

#[test]
fn td_policy_mismatch_is_refused() {
    let fx = Fixture::start_with(|c| c.mr_owner = [3; 48]);
    let v = verifier(&fx, true);
    let r = refusal(&v, &issue(&fx, "simulated").der);
    assert!(
        matches!(
            r,
            Refusal::TdMismatch {
                field: "MR_OWNER",
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn debug_td_is_refused() {
    let fx = Fixture::start_with(|c| c.td_attributes |= 1);
    let v = verifier(&fx, true);
    let r = refusal(&v, &issue(&fx, "simulated").der);
    assert!(matches!(r, Refusal::Quote(_)), "{r}");
    assert!(r.to_string().to_lowercase().contains("debug"), "{r}");
}

#[test]
fn tcb_status_policy_applies() {
    let fx = Fixture::start();
    let collateral = fx
        .td
        .pki()
        .collateral_with_status("OutOfDate", &["INTEL-SA-00837"])
        .unwrap()
        .to_json()
        .into_bytes();
    let cert = issue(&fx, "simulated");
    let mut config = verifier_config(&fx, manifest(fx.td.config().mr_td, None), true);
    config.collateral = ratls::CollateralSource::Json(collateral);
    let strict = RatlsVerifier::new(config.clone()).unwrap();
    let r = refusal(&strict, &cert.der);
    assert!(
        matches!(r, Refusal::Quote(QuoteError::TcbStatus { .. })),
        "{r}"
    );
    config.quote_policy = config.quote_policy.allow_tcb_status("OutOfDate").unwrap();
    let lenient = RatlsVerifier::new(config).unwrap();
    let id = lenient.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(id.tcb_status, "OutOfDate");
    assert_eq!(id.advisory_ids, vec!["INTEL-SA-00837".to_string()]);
}

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let late = now() + Duration::from_secs(3601);
    let r = v.verify_certificate(&cert.der, late).unwrap_err();
    assert!(matches!(r, Refusal::Expired { .. }), "{r}");
    let early = now() - Duration::from_secs(61);
    let r = v.verify_certificate(&cert.der, early).unwrap_err();
    assert!(matches!(r, Refusal::NotYetValid { .. }), "{r}");
    // The edges of the window are inside it.
    assert!(v
        .verify_certificate(&cert.der, now() + Duration::from_secs(3600))
        .is_ok());
    assert!(v
        .verify_certificate(&cert.der, now() - Duration::from_secs(60))
        .is_ok());
}

#[test]
fn validity_longer_than_allowed_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let long = ratls::issue_certificate(
        &cert.key,
        &cert.evidence,
        now() - Duration::from_secs(60),
        now() + Duration::from_secs(2 * 24 * 3600),
        &[],
    )
    .unwrap();
    let r = refusal(&v, &long);
    assert!(matches!(r, Refusal::ValidityTooLong { .. }), "{r}");
}

#[test]
fn key_not_bound_to_the_quote_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let events = standard_events(CONFIG_JSON, "simulated");
    fx.extend(&events);
    let key = ratls::new_key().unwrap();
    // A quote over report_data that is not the key's binding.
    let evidence = Evidence {
        quote: fx.quote([0x11; 64]),
        events,
        config_json: CONFIG_JSON.to_vec(),
    };
    let (nb, na) = validity();
    let der = ratls::issue_certificate(&key, &evidence, nb, na, &[]).unwrap();
    let r = refusal(&v, &der);
    assert!(matches!(r, Refusal::KeyNotBound { .. }), "{r}");
}

#[test]
fn quote_reused_with_another_key_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let genuine = issue(&fx, "simulated");
    assert!(v.verify_certificate(&genuine.der, now()).is_ok());
    let thief = ratls::new_key().unwrap();
    let (nb, na) = validity();
    let der = ratls::issue_certificate(&thief, &genuine.evidence, nb, na, &[]).unwrap();
    let r = refusal(&v, &der);
    assert!(matches!(r, Refusal::KeyNotBound { .. }), "{r}");
    assert!(r
        .to_string()
        .contains(&hex::encode(ratls::report_data(&ratls::spki_der(&thief)))));
}

fn raw(cert: &Issued, extra: &[(&str, bool, &[u8])]) -> Vec<u8> {
    let events = rtmr3::to_json(&cert.evidence.events);
    let mut exts: Vec<(&str, bool, &[u8])> = vec![
        (OID_QUOTE, true, &cert.evidence.quote),
        (OID_RTMR3_EVENTS, true, events.as_bytes()),
        (OID_CONFIG, true, &cert.evidence.config_json),
    ];
    exts.extend_from_slice(extra);
    let (nb, na) = validity();
    issue_with_raw_extensions(&cert.key, &exts, nb, na).unwrap()
}

#[test]
fn raw_issue_with_our_extensions_is_accepted() {
    // The control for the extension tests below: the same construction without the defect.
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    assert!(v.verify_certificate(&raw(&cert, &[]), now()).is_ok());
    // Unknown non-critical extensions are ignored (RFC 5280).
    let der = raw(&cert, &[("1.3.6.1.4.1.99999.1", false, b"x")]);
    assert!(v.verify_certificate(&der, now()).is_ok());
}

#[test]
fn unknown_critical_extension_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let der = raw(&cert, &[("1.3.6.1.4.1.99999.1", true, b"x")]);
    let r = refusal(&v, &der);
    assert!(
        matches!(&r, Refusal::UnknownCriticalExtension { oid } if oid == "1.3.6.1.4.1.99999.1"),
        "{r}"
    );
    // An unassigned OID under our own arc is just as unknown.
    let ours4 = format!("{OID_ARC}.4");
    let der = raw(&cert, &[(&ours4, true, b"x")]);
    let r = refusal(&v, &der);
    assert!(
        matches!(&r, Refusal::UnknownCriticalExtension { oid } if *oid == ours4),
        "{r}"
    );
}

#[test]
fn duplicate_missing_and_non_critical_extensions_are_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let r = refusal(&v, &raw(&cert, &[(OID_CONFIG, true, b"{}")]));
    assert!(matches!(r, Refusal::DuplicateExtension { .. }), "{r}");
    let (nb, na) = validity();
    let der = issue_with_raw_extensions(
        &cert.key,
        &[(OID_QUOTE, true, &cert.evidence.quote)],
        nb,
        na,
    )
    .unwrap();
    let r = refusal(&v, &der);
    assert!(matches!(r, Refusal::MissingExtension { .. }), "{r}");
    let events = rtmr3::to_json(&cert.evidence.events);
    let der = issue_with_raw_extensions(
        &cert.key,
        &[
            (OID_QUOTE, true, &cert.evidence.quote),
            (OID_RTMR3_EVENTS, false, events.as_bytes()),
            (OID_CONFIG, true, &cert.evidence.config_json),
        ],
        nb,
        na,
    )
    .unwrap();
    let r = refusal(&v, &der);
    assert!(matches!(r, Refusal::NotCritical { .. }), "{r}");
}

#[test]
fn oversized_extension_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    let mut big_quote = cert.evidence.quote.clone();
    big_quote.resize(MAX_QUOTE_EXT + 1, 0);
    let events = rtmr3::to_json(&cert.evidence.events);
    let (nb, na) = validity();
    let der = issue_with_raw_extensions(
        &cert.key,
        &[
            (OID_QUOTE, true, &big_quote),
            (OID_RTMR3_EVENTS, true, events.as_bytes()),
            (OID_CONFIG, true, &cert.evidence.config_json),
        ],
        nb,
        na,
    )
    .unwrap();
    let r = refusal(&v, &der);
    assert!(
        matches!(r, Refusal::ExtensionTooLarge { len, .. } if len == MAX_QUOTE_EXT + 1),
        "{r}"
    );
    // And the issuer refuses to produce it.
    let too_big = Evidence {
        quote: big_quote,
        ..cert.evidence.clone()
    };
    assert!(ratls::issue_certificate(&cert.key, &too_big, nb, na, &[]).is_err());
}

#[test]
fn whole_certificate_size_is_bounded() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let r = refusal(&v, &vec![0x30; ratls::MAX_CERT_LEN + 1]);
    assert!(matches!(r, Refusal::CertificateTooLarge { .. }), "{r}");
}

#[test]
fn simulated_evidence_never_passes_a_production_verifier() {
    let fx = Fixture::start();
    let production = verifier(&fx, false);
    for mode in ["production", "simulated"] {
        let cert = issue(&fx, mode);
        let r = refusal(&production, &cert.der);
        assert!(matches!(r, Refusal::UntrustedRoot(_)), "{mode}: {r}");
        assert!(r.to_string().contains("Intel's SGX Root CA"), "{r}");
    }
    // Even with the mock root handed over, a verifier that does not trust simulated evidence
    // cannot be built.
    let mut c = verifier_config(&fx, manifest(fx.td.config().mr_td, None), false);
    c.simulated_root_ca = Some(fx.td.root_ca_der().to_vec());
    assert!(matches!(RatlsVerifier::new(c), Err(SetupError::Config(_))));
}

#[test]
fn tampered_manifest_is_refused() {
    let fx = Fixture::start();
    let mut m = manifest(fx.td.config().mr_td, None);
    m.body.release = "ratls-test-2".into();
    let r = RatlsVerifier::new(verifier_config(&fx, m, true)).unwrap_err();
    assert!(matches!(r, SetupError::Manifest(_)), "{r}");
    assert!(r.to_string().contains("signature"), "{r}");
    // Signed by another key.
    let mut m = manifest(fx.td.config().mr_td, None);
    m.sign(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
    assert!(RatlsVerifier::new(verifier_config(&fx, m, true)).is_err());
}

#[test]
fn events_not_matching_the_quote_are_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    // The TD measured "production"; the certificate claims "simulated".
    let measured = standard_events(CONFIG_JSON, "production");
    fx.extend(&measured);
    let key = ratls::new_key().unwrap();
    let evidence = Evidence {
        quote: fx.quote(ratls::report_data(&ratls::spki_der(&key))),
        events: standard_events(CONFIG_JSON, "simulated"),
        config_json: CONFIG_JSON.to_vec(),
    };
    let (nb, na) = validity();
    let der = ratls::issue_certificate(&key, &evidence, nb, na, &[]).unwrap();
    let r = refusal(&v, &der);
    assert!(matches!(r, Refusal::Rtmr3Mismatch { .. }), "{r}");
}

#[test]
fn config_not_matching_its_event_is_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue_with(
        &fx,
        standard_events(CONFIG_JSON, "simulated"),
        br#"{"model":"qwen","price_per_token":0,"workers":2}"#,
    );
    let r = refusal(&v, &cert.der);
    assert!(matches!(r, Refusal::ConfigMismatch { .. }), "{r}");
}

#[test]
fn config_must_be_a_json_object() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue_with(&fx, standard_events(b"[1]", "simulated"), b"[1]");
    let r = refusal(&v, &cert.der);
    assert!(matches!(r, Refusal::ConfigJson(_)), "{r}");
}

#[test]
fn event_sequence_is_exact() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let mut events = standard_events(CONFIG_JSON, "simulated");
    events.swap(0, 1);
    let r = refusal(&v, &issue_with(&fx, events, CONFIG_JSON).der);
    assert!(matches!(r, Refusal::EventSequence(_)), "{r}");

    let fx = Fixture::start();
    let mut events = standard_events(CONFIG_JSON, "simulated");
    events.push(Rtmr3Event::new("cocoon.extra", b"x".to_vec()).unwrap());
    let r = refusal(&v, &issue_with(&fx, events, CONFIG_JSON).der);
    assert!(matches!(r, Refusal::EventSequence(_)), "{r}");

    let fx = Fixture::start();
    let mut events = standard_events(CONFIG_JSON, "debug");
    events.truncate(3);
    let r = refusal(&v, &issue_with(&fx, events, CONFIG_JSON).der);
    assert!(
        matches!(&r, Refusal::EventSequence(why) if why.contains("debug")),
        "{r}"
    );

    let fx = Fixture::start();
    let events = vec![
        Rtmr3Event::new(kinds::CONFIG, [0u8; 31]).unwrap(),
        Rtmr3Event::new(kinds::MODEL, MODEL_SHA256).unwrap(),
        Rtmr3Event::new(kinds::MODE, "simulated").unwrap(),
    ];
    let r = refusal(&v, &issue_with(&fx, events, CONFIG_JSON).der);
    assert!(
        matches!(&r, Refusal::EventSequence(why) if why.contains("31 bytes")),
        "{r}"
    );
}

#[test]
fn pinned_rtmr3_is_enforced() {
    let fx = Fixture::start();
    let pinned = standard_events(CONFIG_JSON, "production");
    let m = manifest(fx.td.config().mr_td, Some(&pinned));
    let v = RatlsVerifier::new(verifier_config(&fx, m, true)).unwrap();
    let r = refusal(&v, &issue(&fx, "simulated").der);
    assert!(matches!(r, Refusal::Rtmr3Pin(_)), "{r}");

    let fx2 = Fixture::start();
    let m = manifest(fx2.td.config().mr_td, Some(&pinned));
    let v = RatlsVerifier::new(verifier_config(&fx2, m, true)).unwrap();
    let id = v
        .verify_certificate(&issue(&fx2, "production").der, now())
        .unwrap();
    assert_eq!(id.mode, "production");
}

#[test]
fn allow_lists_are_enforced() {
    let fx = Fixture::start();
    let cert = issue(&fx, "simulated");
    let mut c = verifier_config(&fx, manifest(fx.td.config().mr_td, None), true);
    c.allowed_model_sha256 = Some(vec![[0; 32]]);
    let r = refusal(&RatlsVerifier::new(c.clone()).unwrap(), &cert.der);
    assert!(
        matches!(r, Refusal::NotAllowed { what: "model", .. }),
        "{r}"
    );
    c.allowed_model_sha256 = Some(vec![MODEL_SHA256]);
    c.allowed_config_sha256 = Some(vec![[0; 32]]);
    let r = refusal(&RatlsVerifier::new(c.clone()).unwrap(), &cert.der);
    assert!(
        matches!(r, Refusal::NotAllowed { what: "config", .. }),
        "{r}"
    );
    c.allowed_config_sha256 = Some(vec![Sha256::digest(CONFIG_JSON).into()]);
    assert!(RatlsVerifier::new(c)
        .unwrap()
        .verify_certificate(&cert.der, now())
        .is_ok());
}

#[test]
fn tampered_certificate_bytes_are_refused() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    // Flip one bit in a sample of positions (every byte would be slow: each may reach the
    // quote verifier). No flip may be accepted.
    let step = (cert.der.len() / 97).max(1);
    for i in (0..cert.der.len()).step_by(step) {
        let mut t = cert.der.clone();
        if let Some(b) = t.get_mut(i) {
            *b ^= 0x01;
        }
        assert!(v.verify_certificate(&t, now()).is_err(), "flip at {i}");
    }
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    let cert = issue(&fx, "simulated");
    for len in 0..cert.der.len() {
        let r = v.verify_certificate(cert.der.get(..len).unwrap(), now());
        assert!(
            matches!(r, Err(Refusal::Parse(_)) | Err(Refusal::SelfSignature(_))),
            "prefix {len}: {r:?}"
        );
    }
    let mut trailing = cert.der.clone();
    trailing.push(0);
    assert!(matches!(
        v.verify_certificate(&trailing, now()),
        Err(Refusal::Parse(_))
    ));
    let mut state = 0x1234_5678_9abc_def0u64;
    for len in [0usize, 1, 2, 16, 100, 1000, 5000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(v.verify_certificate(&bytes, now()).is_err());
        let mut seq = vec![0x30, 0x82, 0x13, 0x88];
        seq.extend_from_slice(&bytes);
        assert!(v.verify_certificate(&seq, now()).is_err());
    }
}
