//! Authenticode SHA-384 of a PE image (the kernel's EFI stub).
#![no_main]

use cocoon_measure::pe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pe::authenticode_sha384(data);
});
