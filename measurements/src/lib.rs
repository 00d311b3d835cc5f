//! Offline computation and verification of Intel TDX measurements for the COCOON worker image.
//!
//! Proxies and auditors use this crate to predict MRTD and RTMR0-3 from the released files and
//! the VM shape, to replay event logs, and to build, sign and verify measurement manifests.

pub mod acpi;
pub mod boot;
pub mod bzimage;
pub mod eventlog;
pub mod identity;
pub mod key_release;
pub mod manifest;
pub mod pe;
pub mod quote;
pub mod ratls;
pub mod register;
pub mod rtmr3;
pub mod td_hob;
pub mod tdvf;
pub mod uefi_events;

pub use register::{replay, sha384, Digest384, Event, Register, Rtmr};
