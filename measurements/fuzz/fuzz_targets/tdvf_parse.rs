//! TDVF metadata of a firmware image.
#![no_main]

use cocoon_measure::tdvf::TdvfMetadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TdvfMetadata::parse(data);
});
