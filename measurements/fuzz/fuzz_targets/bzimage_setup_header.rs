//! The Linux boot protocol setup header of a bzImage.
#![no_main]

use cocoon_measure::bzimage::SetupHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SetupHeader::parse(data);
});
