//! The RTMR3 event list a verifier reads from an agent's certificate.
#![no_main]

use cocoon_measure::rtmr3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = rtmr3::from_json(data) {
        let again = rtmr3::from_json(rtmr3::to_json(&events).as_bytes()).expect("round trip");
        assert_eq!(again, events);
        let _ = rtmr3::replay(&events);
    }
});
