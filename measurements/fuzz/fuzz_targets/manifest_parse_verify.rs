//! Manifest parsing and signature verification on arbitrary bytes: never panics, and whatever
//! parses re-serialises to a manifest that parses to the same value.
#![no_main]

use cocoon_measure::manifest::Manifest;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    if let Ok(m) = Manifest::parse(data) {
        let _ = m.verify(&key);
        let again = Manifest::parse(m.to_json().as_bytes()).expect("a parsed manifest re-parses");
        assert_eq!(again, m);
    }
});
