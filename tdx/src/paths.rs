//! Where the TDX guest interfaces live. [`TdxPaths::default`] is the real Linux layout; the
//! simulated TD hands out a `TdxPaths` that points into its own directory.

use std::path::{Path, PathBuf};

/// Number of runtime measurement registers.
pub const RTMR_COUNT: usize = 4;

/// Locations of the Linux TDX guest interfaces used by [`crate::TdxProvider`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxPaths {
    /// configfs-tsm report directory (`/sys/kernel/config/tsm/report`).
    pub tsm_report_dir: PathBuf,
    /// Name of the report entry this process creates (or reuses) under `tsm_report_dir`.
    pub tsm_entry_name: String,
    /// The TDX guest misc device (`/dev/tdx_guest`), used for TDREPORT.
    pub tdx_guest_device: PathBuf,
    /// Files that read RTMR0-3 (`.../measurements/rtmrN:sha384`, Linux 6.16+).
    pub rtmr_read: [PathBuf; RTMR_COUNT],
    /// Files that extend RTMR0-3 by writing a 48-byte digest. On Linux these are the same
    /// attributes as `rtmr_read`; the simulated TD serves reads and extends on separate
    /// FIFOs (see `simulated::service`).
    pub rtmr_extend: [PathBuf; RTMR_COUNT],
    /// The ACPI CCEL table (`/sys/firmware/acpi/tables/CCEL`).
    pub ccel_table: PathBuf,
    /// The CCEL event log area (`/sys/firmware/acpi/tables/data/CCEL`).
    pub ccel_data: PathBuf,
}

/// The `tdx_guest` measurement attributes directory on Linux 6.16+ (a symlink path to
/// `/sys/devices/virtual/misc/tdx_guest/measurements`, the name in the kernel's ABI document
/// `sysfs-devices-virtual-misc-tdx_guest`). Reads return the 48 raw register bytes; writes
/// must be 48 bytes at offset 0 and extend the register.
pub const LINUX_MEASUREMENTS_DIR: &str = "/sys/class/misc/tdx_guest/measurements";

/// File name of RTMR `index` in the measurements directory.
pub fn rtmr_file_name(index: usize) -> String {
    format!("rtmr{index}:sha384")
}

impl Default for TdxPaths {
    fn default() -> Self {
        let measurements = Path::new(LINUX_MEASUREMENTS_DIR);
        let rtmrs: [PathBuf; RTMR_COUNT] =
            std::array::from_fn(|i| measurements.join(rtmr_file_name(i)));
        TdxPaths {
            tsm_report_dir: PathBuf::from("/sys/kernel/config/tsm/report"),
            tsm_entry_name: format!("cocoon-{}", std::process::id()),
            tdx_guest_device: PathBuf::from("/dev/tdx_guest"),
            rtmr_read: rtmrs.clone(),
            rtmr_extend: rtmrs,
            ccel_table: PathBuf::from("/sys/firmware/acpi/tables/CCEL"),
            ccel_data: PathBuf::from("/sys/firmware/acpi/tables/data/CCEL"),
        }
    }
}

impl TdxPaths {
    /// The configfs-tsm report entry directory used by this process.
    pub fn tsm_entry(&self) -> PathBuf {
        self.tsm_report_dir.join(&self.tsm_entry_name)
    }
}
