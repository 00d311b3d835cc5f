//! Simulated TD quotes, produced through the unchanged provider, verified end to end.

use cocoon_measure::quote::{
    parse_collateral, verify_quote, QuoteCollateralV3, QuoteError, QuotePolicy, XfamPolicy,
};
use cocoon_tdx::simulated::{SimulatedTd, SimulatedTdConfig};
use sha2::{Digest, Sha384};

/// 2026-01-01T00:00:00Z, inside the mock PKI's validity window.
const NOW: u64 = 1_767_225_600;

fn collateral(td: &SimulatedTd) -> QuoteCollateralV3 {
    parse_collateral(td.collateral().to_json().as_bytes()).expect("simulated collateral parses")
}

fn trusting() -> QuotePolicy {
    QuotePolicy {
        trust_simulated: true,
        ..QuotePolicy::default()
    }
}

#[test]
fn provider_quote_verifies_with_trust_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let provider = td.provider();
    let digest: [u8; 48] = Sha384::digest(b"agent binary").into();
    provider.extend_rtmr3(&digest).unwrap();
    let mut report_data = [0u8; 64];
    report_data[..5].copy_from_slice(b"hello");
    let quote = provider.get_quote(report_data).unwrap();

    let v = verify_quote(
        &quote,
        &collateral(&td),
        NOW,
        &trusting(),
        Some(td.root_ca_der()),
    )
    .unwrap();
    assert!(v.simulated_root_used);
    assert_eq!(v.status, "UpToDate");
    assert!(v.advisory_ids.is_empty());
    assert_eq!(v.report_data, report_data);
    assert_eq!(v.mrtd, td.config().mr_td);
    let mut expected = Sha384::new();
    expected.update([0u8; 48]);
    expected.update(digest);
    let expected: [u8; 48] = expected.finalize().into();
    assert_eq!(v.rtmr[3], expected);
    assert_eq!(v.rtmr[0], [0u8; 48]);
    assert_eq!(provider.read_rtmrs().unwrap()[3], expected);
}

fn start_with(dir: &std::path::Path, f: impl FnOnce(&mut SimulatedTdConfig)) -> SimulatedTd {
    let mut config = SimulatedTdConfig::new(9);
    f(&mut config);
    SimulatedTd::start_with(config, dir).unwrap()
}

fn quote_of(td: &SimulatedTd) -> Vec<u8> {
    td.provider().get_quote([7u8; 64]).unwrap()
}

#[test]
fn simulated_quote_fails_without_trust_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let quote = quote_of(&td);
    let c = collateral(&td);
    // The production policy: Intel's root only.
    let err = verify_quote(&quote, &c, NOW, &QuotePolicy::default(), None).unwrap_err();
    assert!(matches!(err, QuoteError::Verification(_)), "{err}");
    // Handing over the mock root without trusting simulated evidence is a configuration error.
    let err = verify_quote(
        &quote,
        &c,
        NOW,
        &QuotePolicy::default(),
        Some(td.root_ca_der()),
    )
    .unwrap_err();
    assert!(matches!(err, QuoteError::Config(_)), "{err}");
    // Trusting simulated evidence with no mock root is one too.
    assert!(matches!(
        verify_quote(&quote, &c, NOW, &trusting(), None).unwrap_err(),
        QuoteError::Config(_)
    ));
}

#[test]
fn simulated_quote_fails_under_another_seeds_root() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = SimulatedTd::start(43, other_dir.path()).unwrap();
    let quote = quote_of(&td);
    let err = verify_quote(
        &quote,
        &collateral(&td),
        NOW,
        &trusting(),
        Some(other.root_ca_der()),
    )
    .unwrap_err();
    assert!(matches!(err, QuoteError::Verification(_)), "{err}");
    // Collateral of another seed does not fit either (different signer of the TCB info).
    let err = verify_quote(
        &quote,
        &collateral(&other),
        NOW,
        &trusting(),
        Some(td.root_ca_der()),
    )
    .unwrap_err();
    assert!(matches!(err, QuoteError::Verification(_)), "{err}");
}

#[test]
fn tampered_simulated_quote_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let quote = quote_of(&td);
    let c = collateral(&td);
    for at in [0, 20, 48 + 136, 48 + 520, 48 + 583, 640, 710, 800, 1200] {
        let mut q = quote.clone();
        q[at] ^= 0x10;
        assert!(
            verify_quote(&q, &c, NOW, &trusting(), Some(td.root_ca_der())).is_err(),
            "byte {at}"
        );
    }
}

#[test]
fn debug_td_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let td = start_with(dir.path(), |c| {
        c.td_attributes |= cocoon_tdx::layout::td_attributes::DEBUG
    });
    let err = verify_quote(
        &quote_of(&td),
        &collateral(&td),
        NOW,
        &trusting(),
        Some(td.root_ca_der()),
    )
    .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("debug"), "{err}");
}

#[test]
fn unknown_td_attribute_bits_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    // Bit 27 (LASS) is a valid attribute that dcap-qvl accepts but our default policy does
    // not list.
    let td = start_with(dir.path(), |c| c.td_attributes |= 1 << 27);
    let (quote, c) = (quote_of(&td), collateral(&td));
    let err = verify_quote(&quote, &c, NOW, &trusting(), Some(td.root_ca_der())).unwrap_err();
    assert!(matches!(err, QuoteError::TdAttributes { .. }), "{err}");
    let mut policy = trusting();
    policy.allowed_td_attributes |= 1 << 27;
    let v = verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).unwrap();
    assert_eq!(v.td_attributes, (1 << 27) | (1 << 28));
}

#[test]
fn xfam_outside_the_mask_or_allow_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Bit 8: Intel processor trace state.
    let td = start_with(dir.path(), |c| c.xfam |= 1 << 8);
    let (quote, c) = (quote_of(&td), collateral(&td));
    let err = verify_quote(&quote, &c, NOW, &trusting(), Some(td.root_ca_der())).unwrap_err();
    assert!(matches!(err, QuoteError::Xfam { .. }), "{err}");
    let mut policy = trusting();
    policy.xfam = XfamPolicy::AllowList(vec![td.config().xfam]);
    assert!(verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).is_ok());
    policy.xfam = XfamPolicy::AllowList(vec![0x602e7]);
    assert!(verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).is_err());
}

#[test]
fn mrseam_allow_list_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let (quote, c) = (quote_of(&td), collateral(&td));
    let mut policy = trusting();
    policy.mrseam_allow_list = Some(vec![[0u8; 48]]);
    let err = verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).unwrap_err();
    assert!(matches!(err, QuoteError::MrSeam { .. }), "{err}");
    policy.mrseam_allow_list = Some(vec![[0u8; 48], td.config().mr_seam]);
    assert!(verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).is_ok());
}

#[test]
fn tcb_status_other_than_up_to_date_needs_to_be_allowed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let quote = quote_of(&td);
    for (status, advisories) in [
        ("SWHardeningNeeded", vec!["INTEL-SA-00615"]),
        ("OutOfDate", vec!["INTEL-SA-00837", "INTEL-SA-00960"]),
    ] {
        let json = td
            .pki()
            .collateral_with_status(status, &advisories)
            .unwrap()
            .to_json();
        let c = parse_collateral(json.as_bytes()).unwrap();
        let err = verify_quote(&quote, &c, NOW, &trusting(), Some(td.root_ca_der())).unwrap_err();
        assert!(
            matches!(&err, QuoteError::TcbStatus { status: s, .. } if s == status),
            "{err}"
        );
        let policy = trusting().allow_tcb_status(status).unwrap();
        let v = verify_quote(&quote, &c, NOW, &policy, Some(td.root_ca_der())).unwrap();
        assert_eq!(v.status, status);
        assert_eq!(v.advisory_ids, advisories);
    }
    assert!(QuotePolicy::default().allow_tcb_status("Revoked").is_err());
    assert!(QuotePolicy::default().allow_tcb_status("Fine").is_err());
}

#[test]
fn simulated_collateral_expires() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let (quote, c) = (quote_of(&td), collateral(&td));
    // 2050-06-01: after the mock PKI's certificates, CRLs and TCB info have expired.
    let err = verify_quote(
        &quote,
        &c,
        2_537_049_600,
        &trusting(),
        Some(td.root_ca_der()),
    )
    .unwrap_err();
    assert!(matches!(err, QuoteError::Verification(_)), "{err}");
}

#[test]
fn each_quote_reflects_the_registers_at_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(42, dir.path()).unwrap();
    let provider = td.provider();
    let c = collateral(&td);
    let mut expected = [0u8; 48];
    for i in 0..5u8 {
        let digest = [i; 48];
        provider.extend_rtmr3(&digest).unwrap();
        let mut h = Sha384::new();
        h.update(expected);
        h.update(digest);
        expected = h.finalize().into();
        let mut report_data = [0u8; 64];
        report_data[0] = i;
        let quote = provider.get_quote(report_data).unwrap();
        let v = verify_quote(&quote, &c, NOW, &trusting(), Some(td.root_ca_der())).unwrap();
        assert_eq!(v.rtmr[3], expected, "after extend {i}");
        assert_eq!(v.report_data, report_data);
    }
    assert_eq!(td.quotes_served(), 5);
}
