//! `cocoon-host`: the GPU owner's tool. Checks that a host can run a confidential COCOON worker,
//! hands GPUs to vfio-pci, builds the QEMU command line for the TD, predicts and publishes its
//! measurements, and packs model disks.
//!
//! [`boot::BootSpec`] is the one description of a TD boot: `launch` renders it as QEMU
//! arguments, `measure` and `publish` hand it to the `cocoon-measure` library.
//!
//! Everything that reads the host goes through [`root::HostRoot`] and [`runner::Runner`], every
//! sysfs write through [`gpu::sysfs::SysfsWriter`], so tests run against fake trees.

pub mod acpi_capture;
pub mod boot;
pub mod check;
pub mod control_client;
pub mod gpu;
pub mod launch;
pub mod manifest;
pub mod measure;
pub mod model_pack;
pub mod pci;
pub mod publish;
pub mod report;
pub mod root;
pub mod runner;
pub mod shapes_file;
pub mod ton_address;
pub mod verify_running;
pub mod verity;
