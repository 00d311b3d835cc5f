//! An RA-TLS certificate as a verifier receives it from a peer: size, X.509 parsing,
//! self-signature, the evidence extensions and the event list they carry.
#![no_main]

use cocoon_measure::ratls;
use cocoon_measure::rtmr3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = ratls::parse_certificate(data) else {
        return;
    };
    let _ = ratls::report_data(&cert.spki_der);
    if let Ok(evidence) = cert.evidence() {
        assert!(evidence.quote.len() <= ratls::MAX_QUOTE_EXT);
        assert!(evidence.config_json.len() <= ratls::MAX_CONFIG_EXT);
        if let Ok(events) = rtmr3::from_json(&evidence.events_json) {
            let _ = rtmr3::replay(&events);
        }
    }
});
