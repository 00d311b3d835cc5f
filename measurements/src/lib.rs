//! Offline computation and verification of Intel TDX measurements for the COCOON worker image.
//!
//! Proxies and auditors use this crate to predict MRTD and RTMR0-3 from the released files and
//! the VM shape, to replay event logs, and to build, sign and verify measurement manifests.

pub mod boot;
pub mod register;

pub use register::{replay, sha384, Digest384, Event, Register, Rtmr};
