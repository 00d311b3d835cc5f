//! The capture guest of `cocoon-host acpi capture`: a static `/init` that reads QEMU's ACPI
//! fw_cfg files (`etc/table-loader`, `etc/acpi/rsdp`, `etc/acpi/tables`) through the legacy
//! fw_cfg I/O ports and prints them on the console in the line format of [`wire`], which
//! `cocoon-host` parses from QEMU's serial output.
//!
//! [`fwcfg`] holds the fw_cfg protocol (directory parsing, reading files through any
//! [`fwcfg::FwCfgPort`]) so it is tested on synthetic devices; only the port I/O itself lives in
//! the binary.

pub mod fwcfg;
pub mod wire;

/// The files the capture reads, in the order they are printed (the order OVMF measures them).
pub const CAPTURED_FILES: [&str; 3] = ["etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables"];

/// Largest fw_cfg file the capture reads or `cocoon-host` accepts (the limit of
/// `cocoon_measure::acpi`).
pub const MAX_FILE_BYTES: u32 = 16 << 20;
