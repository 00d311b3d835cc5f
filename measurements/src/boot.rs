//! Expected MRTD and RTMR0-2 for QEMU direct kernel boot of a TD with TDVF (OVMF).
//!
//! OWNER: helper "measure-compute". The types below are the interface other modules use;
//! `compute` is being implemented.

use crate::register::{Digest384, Event};
use std::path::PathBuf;

/// The VM shape a measurement is valid for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmShape {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: u32,
}

/// Everything the registers depend on, read from files.
#[derive(Clone, Debug)]
pub struct BootInputs {
    pub firmware: PathBuf,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The kernel command line exactly as passed to QEMU `-append`.
    pub cmdline: String,
    pub shape: VmShape,
    /// Directory with `etc/table-loader`, `etc/acpi/rsdp`, `etc/acpi/tables` as QEMU generated
    /// them for this VM shape; without it RTMR0 cannot be computed.
    pub acpi_dir: Option<PathBuf>,
}

/// The registers a TD booted from [`BootInputs`] will report, with the events behind them.
#[derive(Clone, Debug)]
pub struct BootMeasurements {
    pub mrtd: Digest384,
    /// `None` when no ACPI blobs were given.
    pub rtmr0: Option<Digest384>,
    pub rtmr1: Digest384,
    pub rtmr2: Digest384,
    /// Every event of RTMR0 (if computed), RTMR1 and RTMR2, in extension order.
    pub events: Vec<Event>,
}
