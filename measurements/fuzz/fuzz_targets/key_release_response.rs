//! What the agent reads from the key service (the answer body), and the measured config the
//! service reads the owner from.
#![no_main]

use cocoon_measure::key_release;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = key_release::parse_key_response(data) {
        assert_eq!(key.len(), key_release::KEY_LEN);
    }
    if let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(owner) = key_release::owner_of(&config) {
            assert!(!owner.is_empty());
        }
    }
});
