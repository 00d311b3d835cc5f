//! The CCEL event-log parser and transcript, and the CCEL table parser, on arbitrary bytes.
#![no_main]

use cocoon_measure::eventlog::{self, ccel, Transcript};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ccel::parse_table(data);
    if let Ok(log) = eventlog::parse(data) {
        // Invariants of a parsed log: events end where padding starts, inside the input.
        assert!(log.end_offset + log.padding_len == data.len());
        let t = Transcript::build(&log, None, None);
        assert_eq!(t.entries.len(), log.events.len());
        let _ = t.to_string();
    }
});
