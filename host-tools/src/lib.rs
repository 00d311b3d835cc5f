//! `cocoon-host`: the GPU owner's tool. Checks that a host can run a confidential COCOON worker,
//! hands GPUs to vfio-pci, builds the QEMU command line for the TD and packs model disks.
//!
//! Everything that reads the host goes through [`root::HostRoot`] and [`runner::Runner`], every
//! sysfs write through [`gpu::sysfs::SysfsWriter`], so tests run against fake trees.

pub mod check;
pub mod gpu;
pub mod launch;
pub mod model_pack;
pub mod pci;
pub mod report;
pub mod root;
pub mod runner;
pub mod ton_address;
pub mod verity;
