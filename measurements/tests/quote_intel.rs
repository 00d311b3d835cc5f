//! Real Intel-signed TDX quotes (from the dcap-qvl package, see testdata/README.md) verified
//! under Intel's root at a fixed time, and refused once tampered with, truncated or padded.

use cocoon_measure::quote::{
    parse_collateral, verify_quote, QuoteCollateralV3, QuoteError, QuotePolicy, MAX_QUOTE_LEN,
};

const V4_QUOTE: &[u8] = include_bytes!("../testdata/intel_tdx_quote_v4.bin");
const V4_COLLATERAL: &[u8] = include_bytes!("../testdata/intel_tdx_quote_v4_collateral.json");
/// 2025-06-20T00:00:00Z: inside the v4 collateral's TCB info window (2025-06-19 to 07-19).
const V4_NOW: u64 = 1_750_377_600;
const V5_QUOTE: &[u8] = include_bytes!("../testdata/intel_tdx_quote_v5_td15.bin");
const V5_COLLATERAL: &[u8] = include_bytes!("../testdata/intel_tdx_quote_v5_td15_collateral.json");
/// 2026-10-09T09:33:20Z: inside the v5 collateral's window (2026-10-08 to 11-07).
const V5_NOW: u64 = 1_791_500_000;

fn v4_collateral() -> QuoteCollateralV3 {
    parse_collateral(V4_COLLATERAL).unwrap()
}

fn verify_v4(quote: &[u8]) -> Result<cocoon_measure::quote::VerifiedQuote, QuoteError> {
    verify_quote(
        quote,
        &v4_collateral(),
        V4_NOW,
        &QuotePolicy::default(),
        None,
    )
}

#[test]
fn v4_sample_verifies_under_intel_root() {
    let v = verify_v4(V4_QUOTE).unwrap();
    assert_eq!(v.status, "UpToDate");
    assert!(v.advisory_ids.is_empty());
    assert!(!v.simulated_root_used);
    assert_eq!(
        hex::encode(v.mrtd),
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(&v.report_data[..], &V4_QUOTE[48 + 520..48 + 584]);
    assert_eq!(v.rtmr[3], [0u8; 48]);
    assert_eq!(v.td_attributes, 0x1000_0000);
    assert_eq!(v.xfam, 0x602e7);
}

#[test]
fn v5_td15_sample_verifies_under_intel_root() {
    let collateral = parse_collateral(V5_COLLATERAL).unwrap();
    let v = verify_quote(V5_QUOTE, &collateral, V5_NOW, &QuotePolicy::default(), None).unwrap();
    assert_eq!(v.status, "UpToDate");
    assert!(!v.simulated_root_used);
    assert_eq!(
        hex::encode(&v.mrtd[..8]),
        "2a674327c50218db",
        "MRTD of the TD 1.5 sample"
    );
}

#[test]
fn intel_quote_still_reports_intel_root_when_simulated_is_trusted() {
    // Trusting the simulated root adds an anchor; it never relabels Intel evidence.
    let dir = tempfile::tempdir().unwrap();
    let td = cocoon_tdx::simulated::SimulatedTd::start(5, dir.path()).unwrap();
    let policy = QuotePolicy {
        trust_simulated: true,
        ..QuotePolicy::default()
    };
    let v = verify_quote(
        V4_QUOTE,
        &v4_collateral(),
        V4_NOW,
        &policy,
        Some(td.root_ca_der()),
    )
    .unwrap();
    assert!(!v.simulated_root_used);
}

#[test]
fn refused_outside_the_collateral_window() {
    let c = v4_collateral();
    let p = QuotePolicy::default();
    // A day before the TCB info was issued, and a year after its next update.
    for now in [V4_NOW - 2 * 86_400, V4_NOW + 365 * 86_400] {
        let err = verify_quote(V4_QUOTE, &c, now, &p, None).unwrap_err();
        assert!(matches!(err, QuoteError::Verification(_)), "{now}: {err}");
    }
}

/// Offsets in the v4 sample: header 0..48, body 48..632, signature data length 632..636,
/// then the ECDSA signature (636..700), attestation key (700..764), certification data
/// header (764..770), QE report (770..1154), QE report signature (1154..1218), QE auth
/// data, and the PCK chain.
#[test]
fn one_flipped_bit_anywhere_signed_is_refused() {
    let positions: &[(usize, &str)] = &[
        (0, "header: version"),
        (8, "header: QE SVN"),
        (12, "header: QE vendor ID"),
        (30, "header: QE vendor ID end"),
        (40, "header: user data"),
        (48, "body: TEE TCB SVN"),
        (48 + 16, "body: MRSEAM"),
        (48 + 120, "body: TD attributes"),
        (48 + 136, "body: MRTD"),
        (48 + 328, "body: RTMR0"),
        (48 + 520, "body: report data"),
        (48 + 583, "body: last byte"),
        (636, "signature: r"),
        (699, "signature: s"),
        (700, "attestation key"),
        (770 + 10, "QE report"),
        (770 + 320, "QE report: report data"),
        (1154 + 5, "QE report signature"),
        (1220, "QE auth data"),
    ];
    for &(at, what) in positions {
        for bit in [0u8, 7] {
            let mut q = V4_QUOTE.to_vec();
            q[at] ^= 1 << bit;
            let err = verify_v4(&q).expect_err(what);
            assert!(
                matches!(
                    err,
                    QuoteError::Verification(_) | QuoteError::Malformed { .. }
                ),
                "{what} (byte {at}, bit {bit}): {err}"
            );
        }
    }
}

#[test]
fn truncated_quotes_are_errors() {
    // 4936 is where the signature data ends (zero padding follows).
    for len in [
        0,
        1,
        47,
        48,
        631,
        632,
        636,
        700,
        1000,
        V4_QUOTE.len() / 2,
        4935,
    ] {
        let err = verify_v4(&V4_QUOTE[..len]).expect_err("truncated");
        assert!(matches!(err, QuoteError::Malformed { .. }), "{len}: {err}");
    }
}

#[test]
fn oversized_quotes_are_errors() {
    // The sample already ends in 70 bytes of unsigned zero padding; more zeroes are
    // tolerated, a non-zero unsigned byte is not.
    let mut padded = V4_QUOTE.to_vec();
    padded.extend_from_slice(&[0; 100]);
    assert!(verify_v4(&padded).is_ok());
    let mut tagged = V4_QUOTE.to_vec();
    tagged.push(1);
    let err = verify_v4(&tagged).unwrap_err();
    assert!(err.to_string().contains("non-zero bytes after"), "{err}");
    let mut tagged = V4_QUOTE.to_vec();
    tagged[4936] = 0x80;
    assert!(verify_v4(&tagged).is_err());

    let mut huge = V4_QUOTE.to_vec();
    huge.resize(MAX_QUOTE_LEN + 1, 0);
    let err = verify_v4(&huge).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");

    // A signature length field claiming far more than the quote holds.
    let mut lying = V4_QUOTE.to_vec();
    lying[632..636].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(verify_v4(&lying).is_err());
}

#[test]
fn garbage_and_wrong_collateral_are_errors() {
    for junk in [
        vec![0u8; 5006],
        vec![0xffu8; 5006],
        b"not a quote".repeat(500),
    ] {
        assert!(verify_v4(&junk).is_err());
    }
    // The v4 quote against the v5 sample's collateral: different FMSPC and TCB info.
    let other = parse_collateral(V5_COLLATERAL).unwrap();
    assert!(verify_quote(V4_QUOTE, &other, V4_NOW, &QuotePolicy::default(), None).is_err());
    // Tampered TCB info JSON no longer matches its signature.
    let mut c = v4_collateral();
    c.tcb_info = c.tcb_info.replacen("UpToDate", "UpToDatf", 1);
    assert!(verify_quote(V4_QUOTE, &c, V4_NOW, &QuotePolicy::default(), None).is_err());
    assert!(parse_collateral(b"{\"tcb_info\": 1}").is_err());
    assert!(parse_collateral(&V4_COLLATERAL[..100]).is_err());
}

/// Many pseudo-random byte changes, cuts and insertions. Up to the PCK chain (which starts at
/// byte 1258) everything is covered by a signature, so every change is refused; the PEM chain
/// authenticates itself through its certificates' signatures, and re-encodings of it (an
/// inserted newline, say) may verify, so there only the absence of panics is checked.
#[test]
fn random_mutations_are_refused_without_panicking() {
    let collateral = v4_collateral();
    let policy = QuotePolicy::default();
    let chain_start = 1258;
    let signed_end = 4936; // end of the signature data; zero padding follows
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: usize| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound as u64) as usize
    };
    for round in 0..600 {
        let mut q = V4_QUOTE.to_vec();
        let at = next(signed_end);
        match round % 3 {
            0 => q[at] ^= (next(255) + 1) as u8,
            1 => q.truncate(at),
            _ => q.insert(at, next(256) as u8),
        }
        let result = verify_quote(&q, &collateral, V4_NOW, &policy, None);
        if at < chain_start || round % 3 == 1 {
            assert!(
                result.is_err(),
                "round {round}: change at {at} was accepted"
            );
        }
    }
}
