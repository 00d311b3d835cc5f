//! Collateral from a PCCS: a local HTTP server serving the simulated TD's collateral the way a
//! PCCS does, the verifier fetching it per platform and caching it in memory and on disk.

mod ratls_support;

use cocoon_measure::ratls::collateral::expiry;
use cocoon_measure::ratls::{CollateralSource, RatlsVerifier, Refusal};
use ratls_support::*;

fn pccs_verifier(fx: &Fixture, url: &str, cache: &std::path::Path) -> RatlsVerifier {
    let mut c = verifier_config(fx, manifest(fx.td.config().mr_td, None), true);
    c.collateral = CollateralSource::Pccs {
        url: url.to_string(),
        cache_dir: Some(cache.to_path_buf()),
    };
    RatlsVerifier::new(c).unwrap()
}

#[test]
fn fetches_once_then_serves_from_memory_and_disk() {
    let fx = Fixture::start();
    let (url, seen) = pccs(fx.td.collateral(), false);
    let cache = tempfile::tempdir().unwrap();
    let cert = issue(&fx, "simulated");

    let v = pccs_verifier(&fx, &url, cache.path());
    let id = v.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(id.tcb_status, "UpToDate");
    assert_eq!(v.stats().collateral_fetches, 1);
    {
        let paths = seen.lock().unwrap();
        assert_eq!(paths.len(), 4, "{paths:?}");
        assert!(paths[0].starts_with("/sgx/certification/v4/pckcrl?ca="));
        assert!(paths[1].starts_with("/tdx/certification/v4/tcb?fmspc="));
    }
    // Same verifier: memory.
    v.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4);
    // A new verifier with the same cache directory: disk.
    let v2 = pccs_verifier(&fx, &url, cache.path());
    v2.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(v2.stats().collateral_fetches, 0);
    assert_eq!(seen.lock().unwrap().len(), 4);
    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn expired_cache_is_fetched_again() {
    let fx = Fixture::start();
    let (url, seen) = pccs(fx.td.collateral(), false);
    let cache = tempfile::tempdir().unwrap();
    let cert = issue(&fx, "simulated");
    pccs_verifier(&fx, &url, cache.path())
        .verify_certificate(&cert.der, now())
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4);
    // Rewrite the cached TCB info's nextUpdate into the past.
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(text.contains("2049-12-31T00:00:00Z"));
    std::fs::write(
        &entry,
        text.replace("2049-12-31T00:00:00Z", "2025-01-01T00:00:00Z"),
    )
    .unwrap();
    let v = pccs_verifier(&fx, &url, cache.path());
    v.verify_certificate(&cert.der, now()).unwrap();
    assert_eq!(v.stats().collateral_fetches, 1);
    assert_eq!(seen.lock().unwrap().len(), 8);
    // The refetched collateral replaced the stale file.
    let fresh = std::fs::read(&entry).unwrap();
    let parsed = cocoon_measure::quote::parse_collateral(&fresh).unwrap();
    assert!(expiry(&parsed).unwrap() > NOW_UNIX as i64);
}

#[test]
fn unavailable_pccs_is_a_refusal_naming_the_url() {
    let fx = Fixture::start();
    let (url, _) = pccs(fx.td.collateral(), true);
    let cache = tempfile::tempdir().unwrap();
    let v = pccs_verifier(&fx, &url, cache.path());
    let r = v
        .verify_certificate(&issue(&fx, "simulated").der, now())
        .unwrap_err();
    assert!(
        matches!(&r, Refusal::Collateral(why) if why.contains(&url) && why.contains("404")),
        "{r}"
    );
}

#[test]
fn collateral_expiry_is_the_earliest_next_update() {
    let fx = Fixture::start();
    let c = cocoon_measure::quote::parse_collateral(&fx.collateral_json()).unwrap();
    // The mock PKI's documents and CRLs all run to 2049-12-31.
    let e = expiry(&c).unwrap();
    assert!((2_524_000_000..2_525_000_000).contains(&e), "{e}");
    let mut early = c.clone();
    early.qe_identity = early
        .qe_identity
        .replace("2049-12-31T00:00:00Z", "2030-01-01T00:00:00Z");
    assert_eq!(expiry(&early).unwrap(), 1_893_456_000);
    let mut broken = c;
    broken.tcb_info = "{}".into();
    assert!(expiry(&broken).is_err());
}
